#!/usr/bin/env bash
# tests/fuzz.sh [SECONDS]: the cargo-fuzz targets (fuzz/), each for a
# bounded time (SECONDS, else SB_FUZZ_SECONDS, else 60) from its committed
# seeds:
#   * parse         - the SIP message layer; seeds: the RFC 4475 messages
#                     and every earlier finding (crates/sip/tests/);
#   * engine_input  - a stream of datagrams from several sources into one
#                     engine under a manual clock; seeds: fuzz/seeds/.
# A crash, a failed assertion, a leak or an input slower than 10 s fails
# the run: the input is printed (base64) and kept under
# $CARGO_TARGET_DIR/fuzz-findings/ (target/ by default: it outlives CI's
# throwaway copy of the repository); copy it into the target's regression
# folder (crates/sip/tests/fuzz_regressions/ for parse,
# fuzz/regressions/engine_input/ for engine_input) and the test suite
# replays it from then on.
#
# cargo-fuzz (crates.io, pinned) is installed when missing. libFuzzer needs
# nightly compiler flags; RUSTC_BOOTSTRAP=1 lets the pinned stable
# toolchain take them (the only toolchain a fresh machine has).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECS="${1:-${SB_FUZZ_SECONDS:-60}}"
CARGO_FUZZ_VERSION=0.13.2

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    echo "installing cargo-fuzz $CARGO_FUZZ_VERSION from crates.io"
    cargo install --locked --quiet cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi
export RUSTC_BOOTSTRAP=1
cd "$ROOT/fuzz"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/switchboard-fuzz.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

total=0
for target in parse engine_input; do
    corpus="$WORK/$target"
    mkdir -p "$corpus"
    case "$target" in
        parse) cp "$ROOT"/crates/sip/tests/rfc4475/*.dat "$ROOT"/crates/sip/tests/fuzz_regressions/* "$corpus/" ;;
        engine_input) cp "$ROOT"/fuzz/seeds/engine_input/* "$corpus/" ;;
    esac
    echo "== $target: $(ls "$corpus" | wc -l) seeds, ${SECS}s"
    cargo fuzz build "$target" >/dev/null
    log="$WORK/$target.log"
    rc=0
    cargo fuzz run "$target" "$corpus" -- -max_total_time="$SECS" -dict=sip.dict \
        -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 >"$log" 2>&1 || rc=$?
    runs=$(awk '/stat::number_of_executed_units/ {print $NF}' "$log" | tail -1)
    grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true
    if [[ $rc -ne 0 ]]; then
        tail -n 60 "$log"
        findings="${CARGO_TARGET_DIR:-$ROOT/target}/fuzz-findings/$target"
        mkdir -p "$findings"
        for input in "$ROOT/fuzz/artifacts/$target"/*; do
            [[ -f "$input" ]] || continue
            cp "$input" "$findings/"
            echo "---- $(basename "$input") ($(wc -c <"$input") bytes), base64:"
            base64 -w 76 "$input" | head -c 20000
            echo
        done
        echo "tests/fuzz: $target found a failing input (above; kept in $findings)" >&2
        exit 1
    fi
    echo "$target: ${runs:-0} executions, no crash"
    total=$((total + ${runs:-0}))
done
echo "tests/fuzz: $total executions in all, no crash"
