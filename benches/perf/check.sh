#!/usr/bin/env bash
# Regression check: instructions per call (benches/perf/callgrind.sh) against
# benches/perf/baseline.txt.
#
# Usage: benches/perf/check.sh            exit 1 when ir_per_call > baseline * (1 + MARGIN_PCT/100)
#        UPDATE=1 benches/perf/check.sh   measure and rewrite baseline.txt
# Environment: MARGIN_PCT [10], plus everything callgrind.sh takes (OUT, CALLS,
# RATE, HOLD_MS, SIP_PORT, SB_BIN, SKIP_BUILD). CALLS/RATE/HOLD_MS must stay
# those of the baseline (checked) for the figures to be comparable.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
export OUT=${OUT:-/tmp/sb-perf}
MARGIN_PCT=${MARGIN_PCT:-10}
BASELINE=$HERE/baseline.txt
get() { awk -v k="$1" '$1 == k {print $2}' "$2"; }

"$HERE/callgrind.sh" || { echo "check.sh: callgrind.sh failed" >&2; exit 2; }
NEW=$(get ir_per_call "$OUT/result.txt")
[ -n "$NEW" ] || { echo "check.sh: no ir_per_call in $OUT/result.txt" >&2; exit 2; }
SCEN="calls=${CALLS:-200} rate=${RATE:-10} hold_ms=${HOLD_MS:-100}"

if [ "${UPDATE:-0}" = 1 ]; then
  ROOT=$(git -C "$HERE" rev-parse --show-toplevel 2>/dev/null || echo .)
  {
    echo "# Instructions per call of the release daemon (callgrind, total Ir of the"
    echo "# process minus a run without calls, divided by the calls): 1 number ringing"
    echo "# 4 users, each call forked to 4, user 0 answers, 3 cancelled, one call at a"
    echo "# time. Written by: UPDATE=1 benches/perf/check.sh"
    echo "# $(date -Is) commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo +dirty) $(valgrind --version)"
    echo "scenario $SCEN"
    cat "$OUT/result.txt"
  } > "$BASELINE"
  echo "baseline written: ir_per_call $NEW ($BASELINE)"
  exit 0
fi

[ -f "$BASELINE" ] || { echo "check.sh: no $BASELINE (run UPDATE=1 $0)" >&2; exit 2; }
OLD=$(get ir_per_call "$BASELINE")
BSCEN=$(awk '$1 == "scenario" {$1=""; sub(/^ /, ""); print}' "$BASELINE")
[ "$BSCEN" = "$SCEN" ] || { echo "check.sh: scenario '$SCEN' differs from the baseline's '$BSCEN'" >&2; exit 2; }
LIMIT=$(( OLD * (100 + MARGIN_PCT) / 100 ))
PCT=$(awk -v n="$NEW" -v o="$OLD" 'BEGIN{printf "%+.1f", 100*(n-o)/o}')
echo "ir_per_call: $NEW (baseline $OLD, ${PCT}%, limit $LIMIT = +${MARGIN_PCT}%)"
if [ "$NEW" -gt "$LIMIT" ]; then
  echo "FAIL: instructions per call grew more than ${MARGIN_PCT}% (top functions: $OUT/calls/annotate.txt)"
  exit 1
fi
LOW=$(( OLD * (100 - MARGIN_PCT) / 100 ))
[ "$NEW" -lt "$LOW" ] && echo "note: more than ${MARGIN_PCT}% below the baseline; consider UPDATE=1 $0"
echo "PASS"
