#!/usr/bin/env bash
# Instructions per call of the release daemon, counted by callgrind.
#
# Usage: benches/perf/callgrind.sh            prints the figures, writes $OUT/result.txt
#
# Two runs of `valgrind --tool=callgrind target/release/switchboard`, each a
# fresh daemon with the same config (1 number +15550000 ringing 4 users):
#   calls     register the 4 users (digest auth), then CALLS calls from the
#             trunk, one at a time (sipp -l 1), forked to the 4 users: user 0
#             answers (180, 200, ACK, hold HOLD_MS, BYE), users 1-3 ring and
#             are CANCELled (180, CANCEL/200, 487/ACK);
#   baseline  the same start, registration and phones, then no call for as
#             long as the call phase lasted.
# ir_per_call = (Ir(calls) - Ir(baseline)) / CALLS   (total Ir of the daemon,
# all threads, from callgrind's "totals:" line, less the one-off clock
# calibration of the metrics exporter, whose cost follows wall time).
#
# Environment: OUT [/tmp/sb-perf]  CALLS [200]  RATE [10]  HOLD_MS [100]
#   SIP_PORT [5260] (sipp: +10 trunk, +21..+24 phones, +30 REGISTER)
#   SB_BIN [<repo>/target/release/switchboard]  SKIP_BUILD [0]
#   HOURS [0]   1: the number has business hours (always open, evaluated per call)
# valgrind slows the daemon down ~50x: keep RATE low; every sipp has -m,
# -timeout and coreutils timeout; everything started here is stopped on exit.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(git -C "$HERE" rev-parse --show-toplevel 2>/dev/null || (cd "$HERE/../.." && pwd))
LOAD=$ROOT/benches/load
OUT=${OUT:-/tmp/sb-perf}
CALLS=${CALLS:-200}
RATE=${RATE:-10}
HOLD_MS=${HOLD_MS:-100}
SIP_PORT=${SIP_PORT:-5260}
SB_BIN=${SB_BIN:-$ROOT/target/release/switchboard}
SKIP_BUILD=${SKIP_BUILD:-0}
IP=127.0.0.1
UAC_PORT=$((SIP_PORT + 10)); REG_PORT=$((SIP_PORT + 30))
UAS1=$((SIP_PORT + 21)); UAS2=$((SIP_PORT + 22)); UAS3=$((SIP_PORT + 23)); UAS4=$((SIP_PORT + 24))
SIPP_COMMON="-nostdin -buff_size 4194304 -max_log_size 10000000"

PIDS=""
log() { echo "[$(date +%T)] $*" >&2; }
die() { log "$*"; exit 1; }
children_of() { ps --ppid "$1" -o pid= 2>/dev/null | tr -d ' ' | tr '\n' ' '; }
stop_pids() {
  local p all=""
  for p in "$@"; do all="$all $p $(children_of "$p")"; done
  for p in $all; do kill -0 "$p" 2>/dev/null && kill -TERM "$p" 2>/dev/null; done
  for _ in $(seq 100); do
    local alive=0
    for p in $all; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.3
  done
  for p in $all; do kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null; done
  for p in "$@"; do wait "$p" 2>/dev/null; done
  return 0
}
cleanup() { stop_pids $PIDS; PIDS=""; }
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v valgrind >/dev/null || die "valgrind is not installed"
command -v sipp >/dev/null || die "sipp (sip-tester) is not installed"
for p in $SIP_PORT $UAC_PORT $REG_PORT $UAS1 $UAS2 $UAS3 $UAS4; do
  ss -Hlun "sport = :$p" | grep -q . && die "UDP port $p is in use; set SIP_PORT"
done
if [ "$SKIP_BUILD" != 1 ]; then
  (cd "$ROOT" && timeout 1800 cargo build --release -p switchboard -q) || die "build failed"
fi
[ -x "$SB_BIN" ] || die "no binary $SB_BIN"
rm -rf "$OUT"; mkdir -p "$OUT"
HOURS_FLAG=""; [ "${HOURS:-0}" = 1 ] && HOURS_FLAG="--hours"
python3 "$LOAD/gen_config.py" "$OUT/switchboard.toml" --nums 1 --data-dir "$OUT/data" --udp "$IP:$SIP_PORT" \
  $HOURS_FLAG || die "gen_config failed"
awk -v b="$UAS1" 'BEGIN{print "SEQUENTIAL"; for(i=0;i<4;i++)
  printf "u%05d;[authentication username=u%05d password=u%05dpw];%d;\n", i, i, i, b+i}' > "$OUT/users.csv"
printf 'SEQUENTIAL\n+15550000;\n' > "$OUT/numbers.csv"

sipp_bg() {   # dir, seconds, sipp args...
  local dir=$1 tmo=$2; shift 2
  ( cd "$dir" && exec timeout "$tmo" sipp "$@" $SIPP_COMMON >/dev/null 2>&1 ) &
  SIPP_W=$!; PIDS="$PIDS $SIPP_W"
}

one_run() {   # name, calls -> sets IR (total Ir of the daemon)
  local name=$1 calls=$2 d=$OUT/$1
  mkdir -p "$d"; rm -rf "$OUT/data"
  ( cd "$d" && exec timeout 900 valgrind --tool=callgrind --callgrind-out-file="$d/callgrind.out" \
      "$SB_BIN" --config "$OUT/switchboard.toml" > "$d/daemon.log" 2>&1 ) &
  local vg=$!; PIDS="$PIDS $vg"
  local i
  for i in $(seq 300); do ss -Hlun "sport = :$SIP_PORT" | grep -q . && break; sleep 0.2; done
  ss -Hlun "sport = :$SIP_PORT" | grep -q . || die "$name: daemon did not start (see $d/daemon.log)"
  sleep 1
  sipp_bg "$d" 120 $IP:$SIP_PORT -sf "$LOAD/sipp/register_auth.xml" -inf "$OUT/users.csv" -i $IP -p $REG_PORT \
      -r 4 -m 4 -timeout 90s -trace_stat -trace_err
  wait "$SIPP_W" || die "$name: registration failed (see $d)"
  local phones="" spec
  local tmo=$((CALLS / RATE + CALLS * HOLD_MS / 1000 + 240))
  for spec in uas_answer.xml:$UAS1 uas_ring.xml:$UAS2 uas_ring.xml:$UAS3 uas_ring.xml:$UAS4; do
    sipp_bg "$d" "$tmo" -sf "$LOAD/sipp/${spec%%:*}" -i $IP -p "${spec##*:}" -timeout "${tmo}s" -trace_err
    phones="$phones $SIPP_W"
  done
  sleep 1
  local t0 t1 rc=0
  t0=$(date +%s.%N)
  if [ "$calls" -gt 0 ]; then
    sipp_bg "$d" $((tmo + 10)) $IP:$SIP_PORT -sf "$LOAD/sipp/uac_call.xml" -inf "$OUT/numbers.csv" -i $IP -p $UAC_PORT \
        -r "$RATE" -l 1 -m "$calls" -d "$HOLD_MS" -timeout "${tmo}s" -trace_stat -trace_err
    wait "$SIPP_W"; rc=$?
    [ $rc = 0 ] || log "$name: the trunk sipp exited $rc (failed calls; see $d)"
    t1=$(date +%s.%N)
    echo "$t0 $t1" | awk '{printf "%.1f\n", $2-$1}' > "$OUT/call_phase_seconds"
  else
    sleep "$(cat "$OUT/call_phase_seconds" 2>/dev/null || echo 20)"
  fi
  sleep 3
  stop_pids $phones
  kill -TERM $(children_of "$vg") 2>/dev/null     # graceful stop: callgrind writes its file
  for i in $(seq 150); do kill -0 "$vg" 2>/dev/null || break; sleep 0.2; done
  stop_pids "$vg"
  [ -s "$d/callgrind.out" ] || die "$name: no callgrind output"
  local ok; ok=$(awk -F';' 'NR==1{for(i=1;i<=NF;i++) if($i=="SuccessfulCall(C)") k=i} END{print (k ? $k : 0)}' "$d"/uac_call_*_.csv 2>/dev/null)
  [ "$calls" -gt 0 ] && [ "${ok:-0}" != "$calls" ] && die "$name: only ${ok:-0}/$calls calls succeeded (see $d)"
  callgrind_annotate "$d/callgrind.out" 2>/dev/null | head -40 > "$d/annotate.txt"
  IR=$(awk '/^(totals|summary):/{print $2; exit}' "$d/callgrind.out")
  # The metrics exporter's clock (quanta) calibrates once at start by
  # spinning for a stretch of wall time: its instruction count depends on
  # how fast valgrind runs, not on the code. Taken out of both runs.
  local cal
  cal=$(callgrind_annotate --inclusive=yes --threshold=100 "$d/callgrind.out" 2>/dev/null \
        | awk '/quanta::Calibration::calibrate \[/{gsub(",", "", $1); print $1; exit}')
  IR=$(( IR - ${cal:-0} ))
  PIDS=""
}

log "callgrind: $CALLS calls forked to 4 at $RATE cps (one at a time), hold ${HOLD_MS}ms"
one_run calls "$CALLS"; IR_CALLS=$IR
log "callgrind: baseline (same run without calls, $(cat "$OUT/call_phase_seconds") s idle)"
one_run baseline 0; IR_BASE=$IR
PER=$(( (IR_CALLS - IR_BASE) / CALLS ))
{
  echo "ir_calls $IR_CALLS"
  echo "ir_baseline $IR_BASE"
  echo "calls $CALLS"
  echo "ir_per_call $PER"
} | tee "$OUT/result.txt"
log "top functions: $OUT/calls/annotate.txt"
