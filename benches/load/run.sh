#!/usr/bin/env bash
# Switchboard vs Kamailio under sipp load, on loopback, on this machine.
#
# Usage (as root, from anywhere):
#   benches/load/run.sh quick     # one short step of every workload, both targets (~3.5 min)
#   benches/load/run.sh full      # the comparison (rate ladders of the Kamailio anchor, ~1 h)
#   benches/load/run.sh reg       # (1) REGISTER storm over distinct users
#   benches/load/run.sh single    # (2) calls routed to one user
#   benches/load/run.sh fork      # (3) calls forked to four users, one answers
#   benches/load/run.sh calls     # single + fork
#   benches/load/run.sh out       # (7) users call out through the trunk (407 per call)
#   benches/load/run.sh hunt      # (4) overlapping calls on shared numbers: busy skip, 486, all free at the end
#   benches/load/run.sh held      # (5) many calls held at once: memory per held call
#   benches/load/run.sh regheld   # (6) many registrations held: memory per registration
#   benches/load/run.sh table [FILE]   # print the table of the last run in FILE ($OUT/results.tsv)
#
# Environment overrides (defaults in brackets; "full" values, "quick" shrinks them):
#   OUT [/tmp/sb-load-run]          work dir: per-step logs, sipp stats, results.tsv
#   TARGETS ["switchboard kamailio"] kamailio is skipped when not installed
#   DURATION [40]                   seconds of call generation per call step
#   HOLD_MS [2000]                  call duration (ACK -> BYE)
#   NUMS [5000]                     numbers per range (<= 10000); users = 4*NUMS
#   RATES_SINGLE ["1000 1200 1400 1600 1800"]   CPS steps, route to 1 user
#   RATES_FORK   ["500 700 800 900"]            CPS steps, fork to 4 users
#   RATES_OUT    ["400 600 800"]                CPS steps, calls out (each with a 407 round)
#   REG_RATES ["2000 4000 6000 8000 10000"]     registrations/s steps
#   REG_DURATION [20]  REG_USERS [100000]       seconds per REGISTER step; distinct AoRs
#   HUNT_RATES ["40 200"]  HUNT_SPACING_MS [250]  HUNT_STEP_MS [100]
#                                   busy skip: a shared number is called every
#                                   HUNT_SPACING_MS; user i answers after i*HUNT_STEP_MS
#   HELD_CALLS [10000]  HELD_RATE [500]  HELD_S [60]    held calls (single-user numbers)
#   HELD_REGS [100000]  HELD_REG_RATE [4000]  REGHELD_SETTLE [34; quick 0]
#                                   held registrations, in two halves, each followed
#                                   by REGHELD_SETTLE s (> Timer J) before memory is read
#   CHILDREN [8]                    kamailio UDP workers (-n)
#   SIP_PORT [5060]                 daemon port; sipp uses SIP_PORT+10 (trunk),
#                                   +11 (verify trunk), +21..+24 (phones), +25 (carrier), +30 (REGISTER)
#   SB_BIN [<repo>/target/release/switchboard]   SKIP_BUILD [0]   SKIP_INSTALL [0]
#   ANCHOR [<repo>/benches/load/kamailio]   the reference kamailio.cfg is taken from there
#
# Every sipp and daemon runs under coreutils timeout and sipp -m/-timeout;
# everything started here is stopped by PID on exit (trap).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(git -C "$HERE" rev-parse --show-toplevel 2>/dev/null || (cd "$HERE/../.." && pwd))
ANCHOR=${ANCHOR:-$HERE/kamailio}
SIPP_DIR=$HERE/sipp
MODE=${1:-}
OUT=${OUT:-/tmp/sb-load-run}
RESULTS=$OUT/results.tsv

usage() { sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }
case "$MODE" in
  quick|full|reg|single|fork|calls|hunt|held|regheld|out) ;;
  table) python3 "$HERE/results_table.py" "${2:-$RESULTS}"; exit $? ;;
  *) usage ;;
esac

TARGETS=${TARGETS:-"switchboard kamailio"}
DURATION=${DURATION:-40}
HOLD_MS=${HOLD_MS:-2000}
NUMS=${NUMS:-5000}
RATES_SINGLE=${RATES_SINGLE:-"1000 1200 1400 1600 1800"}
RATES_FORK=${RATES_FORK:-"500 700 800 900"}
RATES_OUT=${RATES_OUT:-"400 600 800"}
REG_RATES=${REG_RATES:-"2000 4000 6000 8000 10000"}
REG_DURATION=${REG_DURATION:-20}
REG_USERS=${REG_USERS:-100000}
HUNT_RATES=${HUNT_RATES:-"40 200"}
HUNT_SPACING_MS=${HUNT_SPACING_MS:-250}
HUNT_STEP_MS=${HUNT_STEP_MS:-100}
HELD_CALLS=${HELD_CALLS:-10000}
HELD_RATE=${HELD_RATE:-500}
HELD_S=${HELD_S:-60}
HELD_REGS=${HELD_REGS:-100000}
HELD_REG_RATE=${HELD_REG_RATE:-4000}
REGHELD_SETTLE_SET=${REGHELD_SETTLE:-}
REGHELD_SETTLE=${REGHELD_SETTLE:-34}
CHILDREN=${CHILDREN:-8}
SKIP_BUILD=${SKIP_BUILD:-0}
SKIP_INSTALL=${SKIP_INSTALL:-0}
SB_BIN=${SB_BIN:-$ROOT/target/release/switchboard}
if [ "$MODE" = quick ]; then
  DURATION=10; NUMS=1000; RATES_SINGLE=200; RATES_FORK=100; RATES_OUT=100; REG_RATES=2000
  REG_DURATION=8; REG_USERS=16000; HUNT_RATES=40; HELD_CALLS=2000; HELD_RATE=500
  HELD_S=10; HELD_REGS=20000; HELD_REG_RATE=4000; REGHELD_SETTLE=${REGHELD_SETTLE_SET:-0}
fi
USERS=$((4 * NUMS))
IP=127.0.0.1
SIP_PORT=${SIP_PORT:-5060}
UAC_PORT=$((SIP_PORT + 10)); VERIFY_PORT=$((SIP_PORT + 11)); REG_PORT=$((SIP_PORT + 30))
CARRIER_PORT=$((SIP_PORT + 25))
UAS1=$((SIP_PORT + 21)); UAS2=$((SIP_PORT + 22)); UAS3=$((SIP_PORT + 23)); UAS4=$((SIP_PORT + 24))
BUF=4194304                      # sipp -buff_size (pitfall 9)
REG_SETUP_RATE=3000              # registrations/s before call steps (setup, not measured)
HZ=$(getconf CLK_TCK)
SIPP_COMMON="-nostdin -buff_size $BUF -max_log_size 10000000"

PIDS=""        # coreutils-timeout wrappers of everything we started
DPIDS=""       # the daemon's processes (kamailio: main + children)
DWRAP=""       # the daemon's timeout wrapper
TARGET=""
log() { echo "[$(date +%T)] $*" >&2; }
die() { log "$*"; exit 1; }

children_of() { ps --ppid "$1" -o pid= 2>/dev/null | tr -d ' ' | tr '\n' ' '; }
stop_pids() {    # TERM (timeout forwards it to its child), then KILL what is left
  local p all=""
  for p in "$@"; do all="$all $p $(children_of "$p")"; done
  for p in $all; do kill -0 "$p" 2>/dev/null && kill -TERM "$p" 2>/dev/null; done
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    local alive=0
    for p in $all; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.3
  done
  for p in $all; do kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null; done
  for p in "$@"; do wait "$p" 2>/dev/null; done
  return 0
}
forget() { local p; for p in "$@"; do PIDS=$(echo " $PIDS " | sed "s/ $p / /g"); done; }
cleanup() { stop_pids $PIDS $DWRAP; PIDS=""; DWRAP=""; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- setup ---
install_pkgs() {
  [ "$SKIP_INSTALL" = 1 ] && return
  local missing="" c
  command -v sipp >/dev/null || missing="$missing sip-tester"
  command -v tcpdump >/dev/null || missing="$missing tcpdump"
  if echo "$TARGETS" | grep -qw kamailio; then
    command -v kamailio >/dev/null || missing="$missing kamailio kamailio-extra-modules"
    command -v kamcmd >/dev/null || missing="$missing kamailio"
  fi
  for c in python3 ss; do command -v $c >/dev/null || missing="$missing python3 iproute2"; done
  [ -z "$missing" ] && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null || die "apt-get failed"
  else
    die "missing:$missing (run as root to install them with apt-get)"
  fi
}

check_ports() {
  local p
  for p in $SIP_PORT $UAC_PORT $VERIFY_PORT $REG_PORT $UAS1 $UAS2 $UAS3 $UAS4; do
    if ss -Hlun "sport = :$p" | grep -q .; then
      ss -lunp "sport = :$p" >&2
      die "UDP port $p is already in use; stop its owner or set SIP_PORT (e.g. SIP_PORT=35060)"
    fi
  done
}

build() {
  if [ "$SKIP_BUILD" != 1 ] && echo "$TARGETS" | grep -qw switchboard; then
    log "cargo build --release -p switchboard"
    (cd "$ROOT" && timeout 1800 cargo build --release -p switchboard -q) || die "build failed"
  fi
  if echo "$TARGETS" | grep -qw switchboard; then
    [ -x "$SB_BIN" ] || die "no switchboard binary at $SB_BIN"
  fi
}

# sipp CSVs: users (field0 user, field1 credentials, field2 phone port) and numbers
gen_csv() {
  mkdir -p "$OUT/csv"
  local c=$OUT/csv
  awk -v n="$USERS" -v b="$UAS1" 'BEGIN{print "SEQUENTIAL"; for(i=0;i<n;i++)
      printf "u%05d;[authentication username=u%05d password=u%05dpw];%d;\n", i, i, i, b+i%4}' > "$c/users.csv"
  awk -v n="$NUMS" 'BEGIN{print "SEQUENTIAL"; for(i=0;i<n;i++) printf "+1555%04d;\n", i}' > "$c/numbers_fork4.csv"
  awk -v n="$NUMS" 'BEGIN{print "SEQUENTIAL"; for(i=0;i<n;i++) printf "+1556%04d;\n", i}' > "$c/numbers_single.csv"
  local r=$REG_USERS; [ "$HELD_REGS" -gt "$r" ] && r=$HELD_REGS
  REG_POOL=$r
  awk -v n="$r" -v p="$((SIP_PORT + 39))" 'BEGIN{print "SEQUENTIAL"; for(i=0;i<n;i++)
      printf "r%06d;[authentication username=r%06d password=r%06dpw];%d;\n", i, i, i, p}' > "$c/reg_users.csv"
  # held calls: +1556k -> user u(4k), all on phone port UAS1
  awk -v n="$HELD_CALLS" -v b="$UAS1" 'BEGIN{print "SEQUENTIAL"; for(i=0;i<n;i++)
      printf "u%05d;[authentication username=u%05d password=u%05dpw];%d;\n", 4*i, 4*i, 4*i, b}' > "$c/held_users.csv"
  awk -v n="$HELD_CALLS" 'BEGIN{print "SEQUENTIAL"; for(i=0;i<n;i++) printf "+1556%04d;\n", i}' > "$c/held_numbers.csv"
  local s
  for s in 1 2 3; do
    sed "s/@DELAY@/$((s * HUNT_STEP_MS))/g" "$SIPP_DIR/uas_late.xml.in" > "$OUT/csv/uas_late_$s.xml"
  done
  # kamailio.cfg from the anchor, with the listen port substituted when SIP_PORT != 5060
  sed -e "s/^listen=udp:127.0.0.1:5060/listen=udp:127.0.0.1:$SIP_PORT/" \
      -e "s/^alias=\"127.0.0.1:5060\"/alias=\"127.0.0.1:$SIP_PORT\"/" "$ANCHOR/kamailio.cfg" > "$OUT/kamailio.cfg"
  # the "out" workload's own config (ours, not the anchor's), same substitution
  sed -e "s/^listen=udp:127.0.0.1:5060/listen=udp:127.0.0.1:$SIP_PORT/" \
      -e "s/^alias=\"127.0.0.1:5060\"/alias=\"127.0.0.1:$SIP_PORT\"/" "$HERE/kamailio/kamailio_out.cfg" > "$OUT/kamailio_out.cfg"
}

sb_config() {   # $1 = nums, $2 = reg users -> prints config path (generated once)
  local f=$OUT/cfg/sb_n$1_r$2_m${MEDIA_SESSIONS:-0}.toml media=()
  mkdir -p "$OUT/cfg"
  if [ "${MEDIA_SESSIONS:-0}" -gt 0 ]; then
    # a menu that plays all along: 10 minutes of tone
    [ -s "$OUT/cfg/long.wav" ] || python3 - "$OUT/cfg/long.wav" <<'PY'
import math, struct, sys, wave
w = wave.open(sys.argv[1], "wb"); w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000)
w.writeframes(b"".join(struct.pack("<h", int(4000 * math.sin(2 * math.pi * 400 * i / 8000))) for i in range(8000 * 600)))
PY
    media=(--media-prompt "$OUT/cfg/long.wav")
  fi
  [ -s "$f" ] || python3 "$HERE/gen_config.py" "$f" --nums "$1" --reg-users "$2" \
      --data-dir "$OUT/sbdata" --udp "$IP:$SIP_PORT" --outbound "$IP:$CARRIER_PORT" "${media[@]}" \
      || die "gen_config failed"
  echo "$f"
}

# MEDIA_SESSIONS > 0: that many menu sessions run on the daemon during the
# step (tests/src/bin/media_load, attached), their figures in media_load.txt.
media_bg() {   # $1 = step dir
  [ "${MEDIA_SESSIONS:-0}" -gt 0 ] && [ "$TARGET" = switchboard ] || return 0
  local bin=${MEDIA_LOAD:-$ROOT/target/release/media_load}
  [ -x "$bin" ] || die "MEDIA_SESSIONS needs $bin (cargo build --release -p switchboard-tests --bins)"
  ( SB_ATTACH="$IP:$SIP_PORT" SB_MEDIA_NUMBER=+15570000 \
      exec timeout $((DURATION + 60)) "$bin" "$MEDIA_SESSIONS" "$DURATION" ) > "$1/media_load.txt" 2>&1 &
  PIDS="$PIDS $!"
}

# --------------------------------------------------------------- daemons ---
# d_start TARGET NUMS REGUSERS STEPDIR: a fresh daemon, state wiped
d_start() {
  local target=$1 nums=$2 regs=$3 dir=$4 i
  TARGET=$target
  if [ "$target" = switchboard ]; then
    local cfg; cfg=$(sb_config "$nums" "$regs")
    rm -rf "$OUT/sbdata"
    timeout 7200 "$SB_BIN" --config "$cfg" >> "$dir/daemon.log" 2>&1 &
  else
    mkdir -p "$OUT/run"
    timeout 7200 kamailio -f "${KCFG:-$OUT/kamailio.cfg}" -DD -E -m 1024 -M 16 -n "$CHILDREN" -Y "$OUT/run" \
      -A "NUMS=$nums" -A "CTLSOCK=\"unix:$OUT/kamailio_ctl\"" -A "CARRIER=\"$IP:$CARRIER_PORT\"" \
      >> "$dir/daemon.log" 2>&1 &
  fi
  DWRAP=$!
  for i in $(seq 100); do
    ss -Hlun "sport = :$SIP_PORT" | grep -q . && break
    kill -0 "$DWRAP" 2>/dev/null || break
    sleep 0.1
  done
  ss -Hlun "sport = :$SIP_PORT" | grep -q . || { tail -5 "$dir/daemon.log" >&2; die "$target did not start"; }
  if [ "$target" = kamailio ]; then
    for i in $(seq 50); do kamcmd -s "unix:$OUT/kamailio_ctl" core.uptime >/dev/null 2>&1 && break; sleep 0.2; done
  fi
  sleep 0.5
  media_bg "$dir"
  local main; main=$(children_of "$DWRAP")
  DPIDS="$main"
  [ "$target" = kamailio ] && DPIDS="$main $(children_of $main)"
}
d_stop() {
  stop_pids $DWRAP
  DWRAP=""; DPIDS=""
  for _ in $(seq 50); do ss -Hlun "sport = :$SIP_PORT" | grep -q . || break; sleep 0.1; done
}
kstat() { kamcmd -s "unix:$OUT/kamailio_ctl" stats.get_statistics "$1" 2>/dev/null | awk -F' = ' '{print $2}'; }
# registered AoRs: kamailio counter / Switchboard's registrations (snapshot + journal, flushed every second)
aors() {
  if [ "$TARGET" = kamailio ]; then kstat registered_users
  else
    # the store flushes once a second, and a flush that compacts 100k
    # bindings takes a while: give it a few seconds
    sleep 3.5
    # the snapshot, then the journal replayed over it (last line per user wins)
    python3 - "$OUT/sbdata" <<'PY' 2>/dev/null || echo 0
import json, os, sys
d = sys.argv[1]
users = json.load(open(os.path.join(d, "registrations.json")))["users"]
j = os.path.join(d, "registrations.journal")
if os.path.exists(j):
    for line in open(j):
        try:
            e = json.loads(line)
        except ValueError:
            break
        users[e["user"]] = e["bindings"]
print(sum(1 for b in users.values() if b))
PY
  fi
}

# ------------------------------------------------------------- measuring ---
ticks() { local t=0 p; for p in "$@"; do [ -r /proc/$p/stat ] && t=$((t + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $t; }
now() { date +%s.%N; }
# proportional set size of all daemon processes, kB (= VmRSS for one process;
# counts kamailio's shared memory once instead of once per process)
mem_kb() { local t=0 p v; for p in $DPIDS; do v=$(awk '/^Pss:/{print $2}' /proc/$p/smaps_rollup 2>/dev/null); t=$((t + ${v:-0})); done; echo $t; }
rss_kb() { local t=0 p v; for p in $DPIDS; do v=$(awk '/^VmRSS:/{print $2}' /proc/$p/status 2>/dev/null); t=$((t + ${v:-0})); done; echo $t; }
# kernel drops on the daemon's UDP socket (/proc/net/udp, last column)
udp_drops() { awk -v a="$(printf '0100007F:%04X' "$SIP_PORT")" '$2 == a {print $NF}' /proc/net/udp | head -1; }
capture() {   # $1 = port, $2 = seconds, $3 = pcap file (bounded by timeout)
  timeout "$2" tcpdump -i lo -n -s 0 -B 32768 -w "$3" "udp port $1 and host $IP" >/dev/null 2>"$3.log"
}
latency() { python3 "$HERE/pcap_latency.py" "$1" "$2" 2>/dev/null; }
latq() {      # $1 = latency output, $2 = pair, $3 = p50|p99 -> value or -
  local v; v=$(echo "$1" | grep "^$2 " | grep -o "$3=[0-9.]*" | cut -d= -f2); echo "${v:--}"
}

# sipp's -trace_stat csv: column by name, last row
statcol() { awk -F';' -v c="$2" 'NR==1{for(i=1;i<=NF;i++) if($i==c) k=i} END{if(k) print $k; else print 0}' "$1" 2>/dev/null; }
statfile() { ls "$1"/${2}_*_.csv 2>/dev/null | head -1; }
# "elapsed_seconds started_calls" from the last row of a live -fd 1 stat file
statnow() {
  local f; f=$(statfile "$1" "$2")
  [ -n "$f" ] || { echo "0 0"; return; }
  awk -F';' 'NR==1{for(i=1;i<=NF;i++){if($i=="ElapsedTime(C)") e=i; if($i=="OutgoingCall(C)") o=i}}
    END{split($e, t, ":"); printf "%.3f %d\n", t[1]*3600+t[2]*60+t[3]+t[4]/1e6, $o}' "$f"
}
# counts file (-trace_counts): last value of the column whose name ends in $2
countcol() { awk -F';' -v c="$2" 'NR==1{for(i=1;i<=NF;i++) if($i ~ c"$") k=i} END{print (k ? $k : 0)}' "$1" 2>/dev/null; }

# sipp in the background under timeout; sets SIPP_W (wrapper pid)
sipp_bg() {   # dir, seconds, sipp args...
  local dir=$1 tmo=$2; shift 2
  ( cd "$dir" && exec timeout "$tmo" sipp "$@" $SIPP_COMMON >/dev/null 2>&1 ) &
  SIPP_W=$!; PIDS="$PIDS $SIPP_W"
}
# phones: sipp UASes; start_phones DIR SECONDS SCENARIO:PORT...
start_phones() {
  local dir=$1 tmo=$2 spec; shift 2
  PHONES=""
  for spec in "$@"; do
    sipp_bg "$dir" "$tmo" -sf "${spec%%:*}" -i $IP -p "${spec##*:}" -timeout "${tmo}s" \
      -trace_err -trace_stat -fd 1
    PHONES="$PHONES $SIPP_W"
  done
  sleep 0.5
}
stop_phones() {   # soft exit (SIGUSR1 to sipp), then stop
  local w
  for w in $PHONES; do kill -USR1 $(children_of "$w") 2>/dev/null; done
  sleep 2.5
  stop_pids $PHONES; forget $PHONES; PHONES=""
}
errsummary() {    # $1 = dir: sipp error lines, without sipp's own ontimeout notices
  find "$1" -name '*_errors.log' -exec cat {} + 2>/dev/null | tr '\r' ' ' | grep -v -e 'jumping to label' -e '^The following events' \
    | grep -E '^[0-9]{4}-' > "$1/errors.txt"
  wc -l < "$1/errors.txt"
}
dlogwarn() { grep -ciE ' (WARN|ERROR)|ERROR:|CRITICAL' "$1/daemon.log" 2>/dev/null || true; }

regscenario() { [ "$TARGET" = kamailio ] && echo "$SIPP_DIR/register_noauth.xml" || echo "$SIPP_DIR/register_auth.xml"; }

# register the phones before call steps (setup, not measured): $1 step dir, $2 csv name, $3 count
register_setup() {
  local d=$1/setup_reg; mkdir -p "$d"
  sipp_bg "$d" $(($3 / REG_SETUP_RATE + 90)) $IP:$SIP_PORT -sf "$(regscenario)" -inf "$OUT/csv/$2.csv" \
      -i $IP -p $REG_PORT -r $REG_SETUP_RATE -m "$3" -timeout $(($3 / REG_SETUP_RATE + 60))s -trace_stat -trace_err
  wait "$SIPP_W"; forget "$SIPP_W"
  local ok; ok=$(statcol "$(statfile "$d" register)" "SuccessfulCall(C)")
  if [ "${ok:-0}" != "$3" ]; then log "$TARGET: only ${ok:-0}/$3 phones registered (see $d)"; return 1; fi
}

# ------------------------------------------------------------ the output ---
COLS="workload target rate attempted ok failed fail_pct retrans unexp busy486 achieved cpu_pct cpu_s_per_1k udp_drops inv180_p50 inv180_p99 inv200_p50 inv200_p99 inv486_p50 inv486_p99 reg200_p50 reg200_p99 mem_before_kb mem_peak_kb mem_after_kb items kb_per_item check sipp_errors daemon_warnings note"
emit() {   # name=value ... -> one TSV row in COLS order ("-" when missing)
  local kv c line="" v
  declare -A R=()
  for kv in "$@"; do R[${kv%%=*}]=${kv#*=}; done
  for c in $COLS; do v=${R[$c]:--}; line="$line${line:+	}$v"; done
  echo "$line" >> "$RESULTS"
  echo "$line" | awk -F'\t' -v h="$COLS" 'BEGIN{n=split(h, H, " ")} {s=""; for(i=1;i<=n;i++) if($i!="-") s=s H[i]"="$i" "; print s}' >&2
}
fmt() { awk -v a="$1" -v b="$2" -v s="${3:-1}" -v p="${4:-1}" 'BEGIN{ if (b+0 == 0) {print "-"; exit} printf "%." p "f", a*s/b }'; }

# window helpers for a step with generation time G seconds:
#   CPU + rate window [W, G-C-1], then a C-second capture of the trunk leg
win() { W=5; C=5; [ "$1" -lt 20 ] && { W=2; C=2; }; SPAN=$(( $1 - W - C - 1 )); [ $SPAN -ge 2 ] || SPAN=2; }

# ------------------------------ (2)(3)(7) calls: single / fork / out ---
# out: every user's softphone (users.csv, in turn) calls +33612345678; the
# daemon challenges each INVITE (407), then takes it to the carrier, a
# uas_answer on CARRIER_PORT (the trunk's outbound address). The latency
# columns include the 407 round. The anchor's Kamailio config has no outbound
# route, so Kamailio runs kamailio/kamailio_out.cfg (ours: digest check of
# the caller, busy caller refused, deny prefix, From and P-Asserted-Identity
# set to the line, record-routed to the carrier).
call_step() {   # target single|fork|out rate
  local target=$1 mode=$2 r=$3
  local d=$OUT/$mode/${target}_r$r; rm -rf "$d"; mkdir -p "$d"
  log "$mode $target ${r} cps x ${DURATION}s"
  KCFG=""; [ "$mode" = out ] && KCFG=$OUT/kamailio_out.cfg
  d_start "$target" "$NUMS" 0 "$d"
  local to=$((DURATION + HOLD_MS / 1000 + 40)) csv scenario=uac_call dial=()
  if [ "$mode" != out ]; then
    register_setup "$d" users "$USERS" || { d_stop; emit workload=$mode target=$target rate=$r check=FAIL note=registration; return; }
  fi
  if [ "$mode" = out ]; then
    csv=$OUT/csv/users.csv scenario=uac_outbound dial=(-s +33612345678)
    start_phones "$d" $((to + 10)) "$SIPP_DIR/uas_answer.xml:$CARRIER_PORT"
  elif [ "$mode" = fork ]; then
    csv=$OUT/csv/numbers_fork4.csv
    start_phones "$d" $((to + 10)) "$SIPP_DIR/uas_answer.xml:$UAS1" "$SIPP_DIR/uas_ring.xml:$UAS2" \
      "$SIPP_DIR/uas_ring.xml:$UAS3" "$SIPP_DIR/uas_ring.xml:$UAS4"
  else
    csv=$OUT/csv/numbers_single.csv
    start_phones "$d" $((to + 10)) "$SIPP_DIR/uas_answer.xml:$UAS1"
  fi
  local drops0; drops0=$(udp_drops)
  sipp_bg "$d" $((to + 20)) $IP:$SIP_PORT -sf "$SIPP_DIR/$scenario.xml" -inf "$csv" "${dial[@]}" -i $IP -p $UAC_PORT \
      -r "$r" -m $((r * DURATION)) -d "$HOLD_MS" -timeout ${to}s -trace_stat -fd 1 -trace_err -trace_screen
  local uac=$SIPP_W
  win "$DURATION"
  sleep "$W"
  local k0 k1 t0 t1 s0 s1
  k0=$(ticks $DPIDS); t0=$(now); s0=$(statnow "$d" $scenario)
  sleep "$SPAN"
  k1=$(ticks $DPIDS); t1=$(now); s1=$(statnow "$d" $scenario)
  local memp; memp=$(mem_kb)
  capture $UAC_PORT "$C" "$d/trunk.pcap"
  wait "$uac"; local rc=$?; forget "$uac"
  local drops1; drops1=$(udp_drops)
  stop_phones
  local dw; dw=$(dlogwarn "$d")
  d_stop
  local st; st=$(statfile "$d" $scenario)
  local tot ok fail retr unexp
  tot=$(statcol "$st" "OutgoingCall(C)"); ok=$(statcol "$st" "SuccessfulCall(C)"); fail=$(statcol "$st" "FailedCall(C)")
  retr=$(statcol "$st" "Retransmissions(C)"); unexp=$(statcol "$st" "FailedUnexpectedMessage(C)")
  local dt ach cpu lat
  dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')
  ach=$(echo "$s0 $s1" | awk '{ if ($3 > $1) printf "%.0f", ($4-$2)/($3-$1); else print 0 }')
  cpu=$(awk -v a="$k0" -v b="$k1" -v dt="$dt" -v hz="$HZ" 'BEGIN{printf "%.1f", 100*(b-a)/hz/dt}')
  lat=$(latency "$d/trunk.pcap" $UAC_PORT); echo "$lat" > "$d/latency.txt"; rm -f "$d/trunk.pcap"
  emit workload=$mode target=$target rate=$r attempted=$tot ok=$ok failed=$fail \
    fail_pct=$(fmt "$fail" "$tot" 100 2) retrans=$retr unexp=$unexp achieved=$ach cpu_pct=$cpu \
    cpu_s_per_1k=$(fmt "$cpu" "$ach" 10 3) udp_drops=$(( ${drops1:-0} - ${drops0:-0} )) \
    inv180_p50=$(latq "$lat" INVITE-\>180 p50) inv180_p99=$(latq "$lat" INVITE-\>180 p99) \
    inv200_p50=$(latq "$lat" INVITE-\>200 p50) inv200_p99=$(latq "$lat" INVITE-\>200 p99) \
    mem_peak_kb=$memp sipp_errors=$(errsummary "$d") daemon_warnings=$dw \
    check=$([ "$rc" = 0 ] && echo PASS || echo "FAIL(rc=$rc)") note="hold=${HOLD_MS}ms"
}

# ------------------------------------------------- (1) REGISTER storm -----
reg_step() {   # target rate
  local target=$1 r=$2 m
  m=$((r * REG_DURATION)); [ "$m" -gt "$REG_USERS" ] && m=$REG_USERS
  local d=$OUT/reg/${target}_r$r; rm -rf "$d"; mkdir -p "$d"
  log "reg $target $r/s x $m distinct AoRs"
  d_start "$target" "$NUMS" "$REG_POOL" "$d"
  local drops0; drops0=$(udp_drops)
  local gen=$(( (m + r - 1) / r ))
  sipp_bg "$d" $((gen + 60)) $IP:$SIP_PORT -sf "$(regscenario)" -inf "$OUT/csv/reg_users.csv" -i $IP -p $REG_PORT \
      -r "$r" -m "$m" -timeout $((gen + 40))s -trace_stat -fd 1 -trace_err
  local uac=$SIPP_W scen; scen=$(basename "$(regscenario)" .xml)
  win "$gen"
  sleep 1; capture $REG_PORT "$C" "$d/reg.pcap"
  local k0 k1 t0 t1 s0 s1
  k0=$(ticks $DPIDS); t0=$(now); s0=$(statnow "$d" "$scen")
  k1=$k0; t1=$t0; s1=$s0
  while kill -0 "$uac" 2>/dev/null; do
    local st; st=$(statnow "$d" "$scen")
    [ "${st#* }" -lt "$m" ] && { k1=$(ticks $DPIDS); t1=$(now); s1=$st; }
    sleep 0.5
  done
  wait "$uac"; local rc=$?; forget "$uac"
  local drops1; drops1=$(udp_drops)
  local n; n=$(aors)
  local memp; memp=$(mem_kb)
  local dw; dw=$(dlogwarn "$d")
  d_stop
  local stf; stf=$(statfile "$d" "$scen")
  local tot ok fail retr unexp dt ach cpu lat
  tot=$(statcol "$stf" "OutgoingCall(C)"); ok=$(statcol "$stf" "SuccessfulCall(C)"); fail=$(statcol "$stf" "FailedCall(C)")
  retr=$(statcol "$stf" "Retransmissions(C)"); unexp=$(statcol "$stf" "FailedUnexpectedMessage(C)")
  dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')
  ach=$(echo "$s0 $s1" | awk '{ if ($3 > $1) printf "%.0f", ($4-$2)/($3-$1); else print 0 }')
  cpu=$(awk -v a="$k0" -v b="$k1" -v dt="$dt" -v hz="$HZ" 'BEGIN{ if (dt>0) printf "%.1f", 100*(b-a)/hz/dt; else print "-" }')
  lat=$(latency "$d/reg.pcap" $REG_PORT); echo "$lat" > "$d/latency.txt"; rm -f "$d/reg.pcap"
  local note="digest auth: REGISTER->401, REGISTER->200 (2 requests/registration)"
  [ "$target" = kamailio ] && note="NO AUTH (anchor kamailio.cfg): 1 REGISTER->200 per registration"
  local chk=PASS; [ "$rc" = 0 ] && [ "$n" = "$m" ] || chk="FAIL(rc=$rc,aors=$n/$m)"
  emit workload=reg target=$target rate=$r attempted=$tot ok=$ok failed=$fail fail_pct=$(fmt "$fail" "$tot" 100 2) \
    retrans=$retr unexp=$unexp achieved=$ach cpu_pct=$cpu cpu_s_per_1k=$(fmt "$cpu" "$ach" 10 3) \
    udp_drops=$(( ${drops1:-0} - ${drops0:-0} )) \
    reg200_p50=$(latq "$lat" REGISTER-\>200 p50) reg200_p99=$(latq "$lat" REGISTER-\>200 p99) \
    mem_peak_kb=$memp items=$n sipp_errors=$(errsummary "$d") daemon_warnings=$dw check="$chk" note="$note"
}

# ------------------------------------ (4) busy skip on shared numbers ------
hunt_step() {   # target rate
  local target=$1 r=$2
  local pool=$(( r * HUNT_SPACING_MS / 1000 )); [ $pool -ge 1 ] || pool=1
  [ $pool -le "$NUMS" ] || die "hunt: $pool numbers needed, NUMS=$NUMS"
  local d=$OUT/hunt/${target}_r$r; rm -rf "$d"; mkdir -p "$d/verify"
  log "hunt $target ${r} cps on $pool shared numbers x ${DURATION}s, hold ${HOLD_MS}ms"
  awk -v n="$pool" 'BEGIN{print "SEQUENTIAL"; for(i=0;i<n;i++) printf "+1555%04d;\n", i}' > "$d/numbers.csv"
  head -n $((4 * pool + 1)) "$OUT/csv/users.csv" > "$OUT/csv/hunt_users.csv"
  d_start "$target" "$NUMS" 0 "$d"
  register_setup "$d" hunt_users $((4 * pool)) || { d_stop; emit workload=hunt target=$target rate=$r check=FAIL note=registration; return; }
  local to=$((DURATION + HOLD_MS / 1000 + 40))
  start_phones "$d" $((to + 10)) "$SIPP_DIR/uas_answer.xml:$UAS1" "$OUT/csv/uas_late_1.xml:$UAS2" \
    "$OUT/csv/uas_late_2.xml:$UAS3" "$OUT/csv/uas_late_3.xml:$UAS4"
  local drops0; drops0=$(udp_drops)
  sipp_bg "$d" $((to + 20)) $IP:$SIP_PORT -sf "$SIPP_DIR/uac_hunt.xml" -inf "$d/numbers.csv" -i $IP -p $UAC_PORT \
      -r "$r" -m $((r * DURATION)) -d "$HOLD_MS" -timeout ${to}s -trace_stat -fd 1 -trace_err -trace_counts -trace_screen
  local uac=$SIPP_W
  win "$DURATION"
  sleep "$W"
  local k0 k1 t0 t1 s0 s1
  k0=$(ticks $DPIDS); t0=$(now); s0=$(statnow "$d" uac_hunt)
  sleep "$SPAN"
  k1=$(ticks $DPIDS); t1=$(now); s1=$(statnow "$d" uac_hunt)
  capture $UAC_PORT "$C" "$d/trunk.pcap"
  wait "$uac"; local rc=$?; forget "$uac"
  local drops1; drops1=$(udp_drops)
  sleep 1
  stop_phones
  # every user must be free again: one call per number now rings all 4 users
  # (fresh phones: 1 answers, 3 ring and are cancelled); each phone must see
  # one INVITE per number and every call must be answered.
  start_phones "$d/verify" 40 "$SIPP_DIR/uas_answer.xml:$UAS1" "$SIPP_DIR/uas_ring.xml:$UAS2" \
    "$SIPP_DIR/uas_ring.xml:$UAS3" "$SIPP_DIR/uas_ring.xml:$UAS4"
  sipp_bg "$d/verify" 45 $IP:$SIP_PORT -sf "$SIPP_DIR/uac_call.xml" -inf "$d/numbers.csv" -i $IP -p $VERIFY_PORT \
      -r 20 -m "$pool" -d 100 -timeout 30s -trace_stat -trace_err
  wait "$SIPP_W"; local vrc=$?; forget "$SIPP_W"
  sleep 1
  local inv="" w f
  for f in $(ls "$d"/verify/uas_*_.csv 2>/dev/null); do inv="$inv $(statcol "$f" "IncomingCall(C)")"; done
  stop_phones
  local dw; dw=$(dlogwarn "$d")
  d_stop
  local vok; vok=$(statcol "$(statfile "$d/verify" uac_call)" "SuccessfulCall(C)")
  local chk=PASS
  [ "$rc" = 0 ] || chk="FAIL(rc=$rc)"
  for w in $inv; do [ "$w" = "$pool" ] || chk="FAIL(not all users free: INVITEs per phone:$inv, want $pool)"; done
  [ "$vrc" = 0 ] && [ "$vok" = "$pool" ] || chk="FAIL(verify calls answered $vok/$pool; INVITEs per phone:$inv)"
  local st; st=$(statfile "$d" uac_hunt)
  local cnt; cnt=$(ls "$d"/uac_hunt_*_counts.csv 2>/dev/null | head -1)
  local tot ok fail retr unexp busy dt ach cpu lat
  tot=$(statcol "$st" "OutgoingCall(C)"); ok=$(statcol "$st" "SuccessfulCall(C)"); fail=$(statcol "$st" "FailedCall(C)")
  retr=$(statcol "$st" "Retransmissions(C)"); unexp=$(statcol "$st" "FailedUnexpectedMessage(C)")
  busy=$(countcol "$cnt" "_486_Recv")
  dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')
  ach=$(echo "$s0 $s1" | awk '{ if ($3 > $1) printf "%.0f", ($4-$2)/($3-$1); else print 0 }')
  cpu=$(awk -v a="$k0" -v b="$k1" -v dt="$dt" -v hz="$HZ" 'BEGIN{printf "%.1f", 100*(b-a)/hz/dt}')
  lat=$(latency "$d/trunk.pcap" $UAC_PORT); echo "$lat" > "$d/latency.txt"; rm -f "$d/trunk.pcap"
  emit workload=hunt target=$target rate=$r attempted=$tot ok=$ok failed=$fail fail_pct=$(fmt "$fail" "$tot" 100 2) \
    retrans=$retr unexp=$unexp busy486=$busy achieved=$ach cpu_pct=$cpu cpu_s_per_1k=$(fmt "$cpu" "$ach" 10 3) \
    udp_drops=$(( ${drops1:-0} - ${drops0:-0} )) \
    inv180_p50=$(latq "$lat" INVITE-\>180 p50) inv180_p99=$(latq "$lat" INVITE-\>180 p99) \
    inv200_p50=$(latq "$lat" INVITE-\>200 p50) inv200_p99=$(latq "$lat" INVITE-\>200 p99) \
    inv486_p50=$(latq "$lat" INVITE-\>486 p50) inv486_p99=$(latq "$lat" INVITE-\>486 p99) \
    sipp_errors=$(errsummary "$d") daemon_warnings=$dw check="$chk" \
    note="pool=$pool numbers x 4 users, answer delays 0/$HUNT_STEP_MS/$((2*HUNT_STEP_MS))/$((3*HUNT_STEP_MS))ms, hold=${HOLD_MS}ms; INVITE->200 includes the answer delay"
}

# ---------------------------------------------- (5) many held calls -------
held_step() {   # target
  local target=$1 n=$HELD_CALLS r=$HELD_RATE
  [ "$n" -le 10000 ] || die "HELD_CALLS <= 10000 (one single-user number each)"
  local nums=$NUMS; [ "$n" -gt "$nums" ] && nums=$n
  local ramp=$(( (n + r - 1) / r ))
  [ "$HELD_S" -ge $((ramp + 6)) ] || die "HELD_S must be >= HELD_CALLS/HELD_RATE + 6 = $((ramp + 6))"
  local d=$OUT/held/${target}_n$n; rm -rf "$d"; mkdir -p "$d"
  log "held $target: $n calls at $r cps, each held ${HELD_S}s"
  d_start "$target" "$nums" 0 "$d"
  register_setup "$d" held_users "$n" || { d_stop; emit workload=held target=$target rate=$r check=FAIL note=registration; return; }
  local to=$((ramp + HELD_S + 40))
  start_phones "$d" $((to + 10)) "$SIPP_DIR/uas_answer.xml:$UAS1"
  sleep 1
  local m0; m0=$(mem_kb)
  local drops0; drops0=$(udp_drops)
  sipp_bg "$d" $((to + 20)) $IP:$SIP_PORT -sf "$SIPP_DIR/uac_call.xml" -inf "$OUT/csv/held_numbers.csv" -i $IP -p $UAC_PORT \
      -r "$r" -m "$n" -l $((n + 100)) -d $((HELD_S * 1000)) -timeout ${to}s -trace_stat -fd 1 -trace_err -trace_screen
  local uac=$SIPP_W
  local k0 t0; k0=$(ticks $DPIDS); t0=$(now)
  sleep $((ramp + 3))
  local k1 t1; k1=$(ticks $DPIDS); t1=$(now)
  local st; st=$(statfile "$d" uac_call)
  local held; held=$(statcol "$st" "CurrentCall")
  local m1; m1=$(mem_kb)
  # idle cost of the held calls: CPU over 3 s with nothing but timers
  local k2 t2 k3 t3; k2=$(ticks $DPIDS); t2=$(now); sleep 3; k3=$(ticks $DPIDS); t3=$(now)
  wait "$uac"; local rc=$?; forget "$uac"
  local drops1; drops1=$(udp_drops)
  sleep 2
  local m2; m2=$(mem_kb)
  stop_phones
  local dw; dw=$(dlogwarn "$d")
  d_stop
  local tot ok fail retr unexp
  tot=$(statcol "$st" "OutgoingCall(C)"); ok=$(statcol "$st" "SuccessfulCall(C)"); fail=$(statcol "$st" "FailedCall(C)")
  retr=$(statcol "$st" "Retransmissions(C)"); unexp=$(statcol "$st" "FailedUnexpectedMessage(C)")
  local cpu idle
  cpu=$(awk -v a="$k0" -v b="$k1" -v t0="$t0" -v t1="$t1" -v hz="$HZ" 'BEGIN{printf "%.1f", 100*(b-a)/hz/(t1-t0)}')
  idle=$(awk -v a="$k2" -v b="$k3" -v t0="$t2" -v t1="$t3" -v hz="$HZ" 'BEGIN{printf "%.1f", 100*(b-a)/hz/(t1-t0)}')
  local cpuk; cpuk=$(awk -v a="$k0" -v b="$k1" -v hz="$HZ" -v n="$n" 'BEGIN{printf "%.3f", 1000*(b-a)/hz/n}')
  emit workload=held target=$target rate=$r attempted=$tot ok=$ok failed=$fail fail_pct=$(fmt "$fail" "$tot" 100 2) \
    retrans=$retr unexp=$unexp cpu_pct=$cpu cpu_s_per_1k=$cpuk udp_drops=$(( ${drops1:-0} - ${drops0:-0} )) \
    mem_before_kb=$m0 mem_peak_kb=$m1 mem_after_kb=$m2 items=$held kb_per_item=$(fmt $((m1 - m0)) "$held" 1 2) \
    sipp_errors=$(errsummary "$d") daemon_warnings=$dw check=$([ "$rc" = 0 ] && echo PASS || echo "FAIL(rc=$rc)") \
    note="$n calls held ${HELD_S}s; CPU while ramping (setup of $n calls); idle CPU with $held held: ${idle}%"
}

# --------------------------------------- (6) many held registrations ------
# Registers HELD_REGS AoRs in two halves. Each half is followed by
# REGHELD_SETTLE s so that the REGISTER transactions (Switchboard keeps a
# completed non-INVITE server transaction for Timer J = 32 s) have expired:
# their memory goes back to the allocator but not to the kernel, so the RSS
# growth of the second half (which reuses it) is the memory a registration
# keeps. REGHELD_SETTLE=0 (quick) gives the naive figure (after-before)/N,
# which includes the transactions.
regheld_step() {   # target
  local target=$1 n=$HELD_REGS r=$HELD_REG_RATE
  [ "$n" -le "$REG_POOL" ] || die "HELD_REGS > REG_POOL"
  local d=$OUT/regheld/${target}_n$n; rm -rf "$d"; mkdir -p "$d/a" "$d/b"
  log "regheld $target: $n registrations at $r/s (two halves, settle ${REGHELD_SETTLE}s)"
  d_start "$target" "$NUMS" "$REG_POOL" "$d"
  sleep 1
  local m0; m0=$(mem_kb)
  local half=$((n / 2)) k0 t0 k1 t1 rc=0 part
  awk -v h="$half" 'NR==1 || NR-1<=h' "$OUT/csv/reg_users.csv" > "$d/a/users.csv"
  awk -v h="$half" -v n="$n" 'NR==1 || (NR-1>h && NR-1<=n)' "$OUT/csv/reg_users.csv" > "$d/b/users.csv"
  local gen=$(( (n - half + r - 1) / r )) cpu_ticks=0 cpu_secs=0 m1 m2 pk=0
  for part in a b; do
    local cnt_part; cnt_part=$(( $(wc -l < "$d/$part/users.csv") - 1 ))
    k0=$(ticks $DPIDS); t0=$(now)
    sipp_bg "$d/$part" $((gen + 90)) $IP:$SIP_PORT -sf "$(regscenario)" -inf "$d/$part/users.csv" -i $IP -p $REG_PORT \
        -r "$r" -m "$cnt_part" -timeout $((gen + 60))s -trace_stat -fd 1 -trace_err
    wait "$SIPP_W"; [ $? = 0 ] || rc=1; forget "$SIPP_W"
    k1=$(ticks $DPIDS); t1=$(now)
    cpu_ticks=$((cpu_ticks + k1 - k0)); cpu_secs=$(awk -v a="$cpu_secs" -v b="$t0" -v c="$t1" 'BEGIN{print a+c-b}')
    local mp; mp=$(mem_kb); [ "$mp" -gt "$pk" ] && pk=$mp
    sleep "$REGHELD_SETTLE"
    [ $part = a ] && m1=$(mem_kb)
  done
  local cnt; cnt=$(aors)
  sleep 1
  m2=$(mem_kb); [ "$m2" -gt "$pk" ] && pk=$m2
  local dw; dw=$(dlogwarn "$d")
  d_stop
  local scen; scen=$(basename "$(regscenario)" .xml)
  local tot=0 ok=0 fail=0 retr=0 f
  for part in a b; do
    f=$(statfile "$d/$part" "$scen")
    tot=$((tot + $(statcol "$f" "OutgoingCall(C)"))); ok=$((ok + $(statcol "$f" "SuccessfulCall(C)")))
    fail=$((fail + $(statcol "$f" "FailedCall(C)"))); retr=$((retr + $(statcol "$f" "Retransmissions(C)")))
  done
  local cpuk; cpuk=$(awk -v a="$cpu_ticks" -v hz="$HZ" -v n="$n" 'BEGIN{printf "%.3f", 1000*a/hz/n}')
  local cpu; cpu=$(awk -v a="$cpu_ticks" -v s="$cpu_secs" -v hz="$HZ" 'BEGIN{printf "%.1f", 100*a/hz/s}')
  local note="digest auth" per
  [ "$target" = kamailio ] && note="NO AUTH (anchor kamailio.cfg)"
  if [ "$REGHELD_SETTLE" -gt 0 ]; then
    per=$(fmt $((m2 - m1)) $((n - half)) 1 3)
    note="$note; kB/registration = growth of the 2nd half after ${REGHELD_SETTLE}s settle; naive (after-before)/N = $(fmt $((m2 - m0)) "$n" 1 3) kB; peak $pk kB"
  else
    per=$(fmt $((m2 - m0)) "$n" 1 3)
    note="$note; kB/registration = (after-before)/N, no settle$([ "$target" = switchboard ] && echo ": includes live REGISTER transactions"); peak $pk kB"
  fi
  local chk=PASS; [ "$rc" = 0 ] && [ "$cnt" = "$n" ] || chk="FAIL(rc=$rc,aors=$cnt/$n)"
  emit workload=regheld target=$target rate=$r attempted=$tot ok=$ok failed=$fail fail_pct=$(fmt "$fail" "$tot" 100 2) \
    retrans=$retr cpu_pct=$cpu cpu_s_per_1k=$cpuk mem_before_kb=$m0 mem_peak_kb=${m1:-0} mem_after_kb=$m2 items=$cnt \
    kb_per_item="$per" sipp_errors=$(errsummary "$d") daemon_warnings=$dw check="$chk" note="$note"
}

# ----------------------------------------------------------------- main ---
[ "$(id -u)" = 0 ] || log "warning: not root (tcpdump needs CAP_NET_RAW)"
install_pkgs
command -v kamailio >/dev/null || { TARGETS=$(echo "$TARGETS" | sed 's/kamailio//'); log "kamailio not installed: Switchboard only"; }
[ -f "$ANCHOR/kamailio.cfg" ] || { TARGETS=$(echo "$TARGETS" | sed 's/kamailio//'); log "no $ANCHOR/kamailio.cfg: Switchboard only"; }
mkdir -p "$OUT"
check_ports
build
gen_csv
[ -s "$RESULTS" ] || (IFS=$'\t'; echo "$COLS" | tr ' ' '\t' > "$RESULTS")
{ echo "# run $(date -Is) mode=$MODE $(kamailio -v 2>/dev/null | head -1 | sed 's/^version: //') / $(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*') / $(nproc) cores / switchboard $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo +dirty)"
  echo "# DURATION=$DURATION HOLD_MS=$HOLD_MS NUMS=$NUMS CHILDREN=$CHILDREN"; } | tee -a "$RESULTS" >&2
log "busy processes not started by this script (they share the cores):"
ps -eo pid,ni,pcpu,comm --sort=-pcpu | awk 'NR>1 && $3>5' | head -5 >&2

want() { [ "$MODE" = "$1" ] || [ "$MODE" = quick ] || [ "$MODE" = full ] || { [ "$MODE" = calls ] && { [ "$1" = single ] || [ "$1" = fork ]; }; }; }
# alternate the targets step by step (same load, back to back)
if want reg; then for r in $REG_RATES; do for t in $TARGETS; do reg_step "$t" "$r"; done; done; fi
if want single; then for r in $RATES_SINGLE; do for t in $TARGETS; do call_step "$t" single "$r"; done; done; fi
if want fork; then for r in $RATES_FORK; do for t in $TARGETS; do call_step "$t" fork "$r"; done; done; fi
if want out; then for r in $RATES_OUT; do for t in $TARGETS; do call_step "$t" out "$r"; done; done; fi
if want hunt; then for r in $HUNT_RATES; do for t in $TARGETS; do hunt_step "$t" "$r"; done; done; fi
if want held; then for t in $TARGETS; do held_step "$t"; done; fi
if want regheld; then for t in $TARGETS; do regheld_step "$t"; done; fi
log "results: $RESULTS (per-step files under $OUT)"
python3 "$HERE/results_table.py" "$RESULTS"
