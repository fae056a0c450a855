#!/usr/bin/env bash
# The layers' rules, checked (step of tests/run.sh):
#   - the sans-IO crates (sip, directory, presence, routing, media, engine) never
#     depend on tokio, directly or through another crate;
#   - they never read the clock: no Instant::now, SystemTime::now,
#     Timestamp::now or Zoned::now outside their tests;
#   - in the daemon, only src/clock.rs reads it.
# clippy.toml's disallowed-methods enforces the clock rule at compile time;
# this script also catches a dependency that brings tokio in.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SANS_IO=(sip directory presence routing media engine)
CLOCK='(Instant|SystemTime|Timestamp|Zoned)::now'
failed=0

for crate in "${SANS_IO[@]}"; do
    if ! tree=$(cargo tree --locked -p "$crate" -e normal --prefix none); then
        echo "check-layers: cargo tree failed for $crate" >&2
        exit 1
    fi
    if grep -Eq '^tokio(-[a-z]+)? ' <<<"$tree"; then
        echo "check-layers: $crate depends on tokio:" >&2
        cargo tree --locked -p "$crate" -e normal -i tokio >&2 || true
        failed=1
    fi
    # Test files and test modules may take an origin instant; the code may not.
    hits=$(grep -rnE "$CLOCK" "crates/$crate/src" --include='*.rs' |
        grep -v '/tests\.rs:' | grep -v '/tests/' || true)
    if [[ -n "$hits" ]]; then
        echo "check-layers: $crate reads the clock:" >&2
        echo "$hits" >&2
        failed=1
    fi
done

hits=$(grep -rnE "$CLOCK" crates/daemon/src --include='*.rs' | grep -v '^crates/daemon/src/clock\.rs:' || true)
if [[ -n "$hits" ]]; then
    echo "check-layers: the daemon reads the clock outside src/clock.rs:" >&2
    echo "$hits" >&2
    failed=1
fi

if [[ $failed -ne 0 ]]; then
    exit 1
fi
echo "check-layers: sans-IO crates (${SANS_IO[*]}) have no tokio and no clock; the daemon reads it in clock.rs only"
