#!/usr/bin/env bash
# The project's test command (see README.md):
#
#   bash tests/run.sh
#
# 1. installs sipp (Debian package sip-tester), python3 and python3-venv
#    when missing;
# 2. cargo fmt --check, the layer check (tests/check-layers.sh: no tokio
#    and no clock in the sans-IO crates), clippy with warnings denied (and
#    clippy.toml's clock rule), the unit and integration tests, a debug
#    build of the daemon; the deterministic simulation's long run (200
#    seeds of 10,000 simulated seconds, release build);
# 3. the end-to-end sipp checks against that binary (tests/sipp/run.sh);
# 4. the attack test: SIPVicious (from PyPI, in a venv) scans and guesses
#    against that binary while real users sign in (tests/attack/sipvicious.sh);
# 5. the cargo-fuzz targets, 60 s each from their committed seeds
#    (tests/fuzz.sh; SB_FUZZ_SECONDS changes the time).
#
# Stops at the first failing step and exits non-zero. Honours
# CARGO_TARGET_DIR (where the daemon binary is looked for).

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

START=$SECONDS
section() {
    printf '\n==================== %s ====================\n' "$*"
}
step() {
    local name="$1"
    shift
    section "$name"
    printf '+ %s\n' "$*"
    local t0=$SECONDS rc=0
    "$@" || rc=$?
    if [[ $rc -ne 0 ]]; then
        printf -- '-- %s: FAILED (exit %d, %ds)\n' "$name" "$rc" $((SECONDS - t0))
        exit 1
    fi
    printf -- '-- %s: ok (%ds)\n' "$name" $((SECONDS - t0))
}

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "tests/run.sh: need root (or sudo) to run: $*" >&2
        return 1
    fi
}

section "prerequisites"
missing=()
command -v sipp >/dev/null 2>&1 || missing+=(sip-tester)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
# python3-venv: the attack test installs SIPVicious from PyPI in a venv.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if [[ ${#missing[@]} -gt 0 ]]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "tests/run.sh: missing ${missing[*]} and no apt-get to install them" >&2
        exit 1
    fi
    echo "installing ${missing[*]} with apt-get"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
sipp_version=$(sipp -v 2>&1 || true)
sipp_version=${sipp_version#*SIPp }
printf 'sipp:    %s\n' "${sipp_version%%[[:space:]]*}"
printf 'python3: %s\n' "$(python3 --version 2>&1)"
printf 'cargo:   %s\n' "$(cargo --version)"
printf 'rustc:   %s\n' "$(rustc --version)"

step "cargo fmt" cargo fmt --all -- --check
step "layers (no tokio, no clock in the sans-IO crates)" bash tests/check-layers.sh
step "cargo clippy" cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo test" cargo test --workspace --locked
step "simulation (200 seeds x 10,000 simulated s, release)" \
    env SB_SIM_SEEDS=200 SB_SIM_SECONDS=10000 \
    cargo test --release --locked -p engine --lib simulation -- --nocapture
step "cargo build (daemon, debug)" cargo build -p switchboard --locked
step "sipp end-to-end" bash tests/sipp/run.sh "${CARGO_TARGET_DIR:-target}/debug/switchboard"
step "attack (SIPVicious from PyPI)" bash tests/attack/sipvicious.sh "${CARGO_TARGET_DIR:-target}/debug/switchboard"
step "fuzz (cargo-fuzz targets, bounded)" bash tests/fuzz.sh

section "all tests passed ($((SECONDS - START))s)"
