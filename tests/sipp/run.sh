#!/usr/bin/env bash
# tests/sipp/run.sh: end-to-end checks of the switchboard daemon with sipp.
#
#   bash tests/sipp/run.sh [DAEMON_BINARY]
#
# DAEMON_BINARY defaults to $CARGO_TARGET_DIR/debug/switchboard (target/ when
# CARGO_TARGET_DIR is unset). This script builds nothing.
#
# It writes a test workspace (the demo's shape plus two single-user numbers)
# to a temporary directory, with its own data_dir, starts the daemon, waits
# for its "switchboard listening" line, and runs the checks below against it,
# all on loopback. Every sipp run is bounded by -m, -timeout (with
# -timeout_error) and coreutils timeout. Everything it started is stopped on
# exit (trap). On failure it prints the daemon log and the failing sipp error
# logs, and exits 1.
#
# Ports: no fixed port, so it never collides with a demo daemon on 5060, a
# second run, or anything else listening.
#   * The daemon binds 127.0.0.1:0 for UDP and for TCP: the kernel picks two
#     free ports (usually different) and the script reads them from the
#     daemon's "switchboard listening udp=Some(..) tcp=Some(..)" line. UDP
#     checks use the UDP port, TCP checks (-t t1) the TCP port; garbage.py,
#     which takes one port, is run with its TCP cases pointed at the TCP port.
#     The restart check restarts the daemon on the same two ports (as a real
#     restart would: registered phones know that address), falling back to
#     port 0 again, with a note, only if one was taken in between.
#   * Each sipp instance (and carol's never-called Contact) gets its own
#     port, chosen at start: drawn at random below the kernel's ephemeral
#     range (net.ipv4.ip_local_port_range, which port-0 binds and outgoing
#     connections never get), each checked free on both UDP and TCP. Phones'
#     ports must be known in advance (they are in the REGISTER Contacts and
#     must survive the restart), so they cannot be port 0.
# Readiness: never a fixed sleep. The daemon is ready when it logs its
# listening line (its sockets are bound before it logs it); 15 s at most,
# else the check fails and the log is printed. A sipp UAS is ready when its
# UDP port shows in /proc/net/udp (10 s at most, and it must still be
# running); the busy check waits for the first call's ACK in the UAS message
# log, and the binding checks for the contact in the data directory. The
# only timed waits left are scenario timing (sipp -d call holds) and
# bounded 0.1 s polls.
#
# Environment:
#   SB_SIPP_PORT     daemon UDP+TCP port, instead of port 0 (must be free)
#   SB_SIPP_BASE     fixed sipp ports instead of drawn ones (must be free):
#                    UAC +70..+73, phones +81..+83, carrier +84,
#                    REGISTER +90, probes +95, garbage +99 (e.g. 25000)
#   SB_SIPP_KEEP=1   keep the temporary directory even when all passed
#   RUST_LOG         daemon log filter (default info,switchboard=debug)
#
# Needs: sipp (Debian package sip-tester), python3, coreutils, awk.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SCEN="$ROOT/tests/sipp"
BIN="${1:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/switchboard}"
case "$BIN" in /*) ;; *) BIN="$PWD/$BIN" ;; esac

# The daemon's ports: what it binds (0 = the kernel picks), then what it
# reported in its listening line (set by start_daemon).
BIND_PORT="${SB_SIPP_PORT:-0}"
UDP_PORT=""
TCP_PORT=""
DAEMON_UDP="" # 127.0.0.1:UDP_PORT, for sipp over UDP
DAEMON_TCP="" # 127.0.0.1:TCP_PORT, for sipp -t t1

for tool in sipp python3 timeout awk; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "tests/sipp: $tool is not installed (apt-get install sip-tester python3 coreutils)" >&2
        exit 2
    fi
done
if [[ ! -x "$BIN" ]]; then
    echo "tests/sipp: no daemon binary at $BIN (cargo build -p switchboard)" >&2
    exit 2
fi

# --------------------------------------------------------------------------
# Ports

# port_tool pick N | port_tool check PORT...: "pick" prints N distinct
# ports, one a line, each free on 127.0.0.1 for both UDP and TCP when drawn.
# They are drawn at random from the 12,000 ports below the kernel's
# ephemeral range, which the kernel never hands to a port-0 bind (the
# daemon's) or to an outgoing connection, so nothing else in this run takes
# them between the draw and their use; the sockets of a draw are held until
# it is complete, so the ports are distinct. (With no room below the range,
# the kernel's port-0 choice is used.) "check" fails, naming them, when some
# of the given ports are taken on UDP or TCP.
port_tool() {
    python3 - "$@" <<'PY'
import random, socket, sys

def hold(port):
    """Binds UDP and TCP 127.0.0.1:port (0: the kernel's choice for UDP);
    returns the sockets, or None when either is taken."""
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        u.bind(("127.0.0.1", port))
        t.bind(("127.0.0.1", u.getsockname()[1]))
        return u, t
    except OSError:
        u.close()
        t.close()
        return None

if sys.argv[1] == "check":
    busy = [p for p in sys.argv[2:] if hold(int(p)) is None]
    if busy:
        print(" ".join(busy))
        sys.exit(1)
    sys.exit(0)

n = int(sys.argv[2])
try:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
except (OSError, ValueError, IndexError):
    low = 32768
lo, hi = max(1024, low - 12000), low
held, ports = [], []
for _ in range(5000):
    if len(ports) == n:
        break
    port = random.randrange(lo, hi) if hi - lo >= 1000 else 0
    if port in ports:
        continue
    socks = hold(port)
    if socks is not None:
        held.append(socks)
        ports.append(socks[0].getsockname()[1])
if len(ports) < n:
    sys.exit("port_tool: no %d free UDP+TCP ports in %d..%d" % (n, lo, hi - 1))
print("\n".join(map(str, ports)))
PY
}

if [[ -n "${SB_SIPP_BASE:-}" ]]; then
    BASE="$SB_SIPP_BASE"
    SIPP_PORTS=($((BASE + 70)) $((BASE + 71)) $((BASE + 72)) $((BASE + 81)) $((BASE + 82))
        $((BASE + 83)) $((BASE + 90)) $((BASE + 95)) $((BASE + 99)) $((BASE + 73)) $((BASE + 84)))
else
    mapfile -t SIPP_PORTS < <(port_tool pick 11)
    if [[ ${#SIPP_PORTS[@]} -ne 11 ]]; then
        echo "tests/sipp: could not pick free ports for sipp" >&2
        exit 2
    fi
fi
P_UAC=${SIPP_PORTS[0]}     # trunk: uac_call
P_BUSY=${SIPP_PORTS[1]}    # trunk: uac_busy
P_CANCEL=${SIPP_PORTS[2]}  # trunk: uac_cancel
P_ALICE=${SIPP_PORTS[3]}   # alice's phone (sipp UAS)
P_BOB=${SIPP_PORTS[4]}     # bob's phone (sipp UAS)
P_CAROL=${SIPP_PORTS[5]}   # carol's Contact (registered over TCP, never called)
P_REG=${SIPP_PORTS[6]}     # REGISTER client
P_PROBE=${SIPP_PORTS[7]}   # OPTIONS probe
P_GARBAGE=${SIPP_PORTS[8]} # garbage.py
P_OUT=${SIPP_PORTS[9]}     # alice's softphone calling out: uac_outbound
P_CARRIER=${SIPP_PORTS[10]} # the carrier behind the trunk: uas_carrier
# Fixed ports from the environment must be free now (drawn ones are).
fixed_ports=()
[[ -n "${SB_SIPP_PORT:-}" ]] && fixed_ports+=("$SB_SIPP_PORT")
[[ -n "${SB_SIPP_BASE:-}" ]] && fixed_ports+=("${SIPP_PORTS[@]}")
if [[ ${#fixed_ports[@]} -gt 0 ]] && ! busy=$(port_tool check "${fixed_ports[@]}"); then
    echo "tests/sipp: already in use on UDP or TCP: $busy (change or unset SB_SIPP_PORT / SB_SIPP_BASE)" >&2
    exit 2
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/switchboard-sipp.XXXXXX")"
CFG="$WORK/switchboard.toml"
DATA="$WORK/data"
LOG="$WORK/daemon.log"
: >"$LOG"

DAEMON_PID=""
LISTENING_LINE=""
START_LOG_FROM=1 # first line of the daemon log written by the last start
BG_PIDS=()
RESULTS=()
FAILED=()
FAILED_DIRS=()

# --------------------------------------------------------------------------
# Cleanup: stop what we started, by PID, and show what went wrong.

cleanup() {
    local rc=$?
    set +e
    for pid in "${BG_PIDS[@]}"; do
        kill "$pid" 2>/dev/null
    done
    if [[ -n "$DAEMON_PID" ]] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill -TERM "$DAEMON_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$DAEMON_PID" 2>/dev/null
    fi
    for pid in "${BG_PIDS[@]}" $DAEMON_PID; do
        wait "$pid" 2>/dev/null
    done
    if [[ $rc -ne 0 || ${#FAILED[@]} -gt 0 ]]; then
        echo
        echo "==================== daemon log ($LOG) ===================="
        cat "$LOG"
        for dir in "${FAILED_DIRS[@]}"; do
            for f in "$dir"/*errors.log "$dir"/*.out; do
                [[ -s "$f" ]] || continue
                echo "==================== $f (last 60 lines) ===================="
                tail -n 60 "$f"
            done
        done
        echo
        echo "tests/sipp: work directory kept: $WORK"
    elif [[ "${SB_SIPP_KEEP:-0}" == 1 ]]; then
        echo "tests/sipp: work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --------------------------------------------------------------------------
# The test workspace: the demo's users and numbers, plus +15550300 (only
# alice rings) and +15550400 (only bob rings).

cat >"$CFG" <<EOF
# Written by tests/sipp/run.sh: the demo workspace on test ports.
[server]
domain = "switchboard.local"
sip_udp = "127.0.0.1:$BIND_PORT"
sip_tcp = "127.0.0.1:$BIND_PORT"
data_dir = "$DATA"
log_format = "human"
min_expires = 60
max_expires = 3600
default_expires = 3600
digest_algorithms = ["MD5", "SHA-256"]
# sipp computes its digest over the server's address, not the Request-URI.
digest_uri_check = false

[plan]
seats = 10

[[trunks]]
name = "carrier"
sources = ["127.0.0.1/32", "::1/128"]
outbound = { address = "127.0.0.1:$P_CARRIER", username = "acct", password = "carrier-secret" }

# National numbers are French: 06... goes out as +336...
[outbound]
country_code = "+33"
national_prefix = "0"
deny = ["+1900*"]

[[users]]
id = "alice"
name = "Alice Martin"
status = "active"
password = "alice-secret"
max_calls = 1

[[users]]
id = "bob"
name = "Bob Dupont"
status = "active"
password = "bob-secret"

[[users]]
id = "carol"
name = "Carol Nguyen"
status = "active"
password = "carol-secret"

[[users]]
id = "dave"
name = "Dave Okafor"
status = "invited"
password = "dave-secret"

[[numbers]]
number = "+15550100"
name = "Sales"
timezone = "Europe/Paris"
members = ["alice", "bob", "carol"]
ring_timeout = 30

[numbers.routing]
strategy = "simultaneous"
ring = ["alice", "bob"]

[[numbers]]
number = "+15550200"
name = "Support"
timezone = "America/New_York"
members = ["carol", "alice"]

[numbers.routing]
strategy = "cascade"
ring = ["carol", "alice"]

[[numbers]]
number = "+15550300"
name = "Alice direct"
timezone = "Europe/Paris"
members = ["alice"]

[numbers.routing]
strategy = "simultaneous"
ring = ["alice"]

[[numbers]]
number = "+15550400"
name = "Bob direct"
timezone = "Europe/Paris"
members = ["bob"]

[numbers.routing]
strategy = "simultaneous"
ring = ["bob"]
EOF

# -inf files: field0 = user, field1 = sipp's authentication keyword,
# field2 = the port of the sipp UAS that plays the user's phone.
printf 'SEQUENTIAL\nalice;[authentication username=alice password=alice-secret];%s;\nbob;[authentication username=bob password=bob-secret];%s;\n' \
    "$P_ALICE" "$P_BOB" >"$WORK/phones.csv"
printf 'SEQUENTIAL\nalice;[authentication username=alice password=alice-secret];%s;\n' \
    "$P_ALICE" >"$WORK/alice.csv"
printf 'SEQUENTIAL\ncarol;[authentication username=carol password=carol-secret];%s;\n' \
    "$P_CAROL" >"$WORK/carol.csv"
printf 'SEQUENTIAL\nalice;[authentication username=alice password=not-her-secret];%s;\nmallory;[authentication username=mallory password=whatever];%s;\n' \
    "$P_ALICE" "$P_ALICE" >"$WORK/bad.csv"
printf 'SEQUENTIAL\nalice;[authentication username=alice password=alice-secret];\n' >"$WORK/caller.csv"
printf 'SEQUENTIAL\ndave;[authentication username=dave password=dave-secret];%s;\n' \
    "$P_ALICE" >"$WORK/invited.csv"

# --------------------------------------------------------------------------
# Helpers

say() { printf '%s\n' "$*"; }

# pass/fail NAME [DIR...]: records a check's result.
pass() {
    RESULTS+=("PASS  $1")
    say "  PASS  $1"
}
fail() {
    local name="$1"
    shift
    RESULTS+=("FAIL  $name")
    FAILED+=("$name")
    FAILED_DIRS+=("$@")
    say "  FAIL  $name"
}

# sipp_dir NAME: a fresh directory for one sipp run's logs.
sipp_dir() {
    local dir="$WORK/sipp/$1"
    mkdir -p "$dir"
    printf '%s' "$dir"
}

# sipp_run DIR SECONDS ARGS...: runs sipp in the foreground, bounded by
# -timeout SECONDS (an error when reached) and coreutils timeout; returns
# sipp's exit code (0 = every call succeeded).
sipp_run() {
    local dir="$1" secs="$2"
    shift 2
    (cd "$dir" && timeout -k 5 $((secs + 10)) sipp "$@" \
        -i 127.0.0.1 -nostdin -timeout "${secs}s" -timeout_error \
        -buff_size 4194304 -trace_err -error_file "$dir/errors.log" \
        -max_log_size 1000000 >"$dir/screen.out" 2>&1)
}

# sipp_bg DIR SECONDS ARGS...: same in the background; the PID is in $SIPP_PID.
sipp_bg() {
    local dir="$1" secs="$2"
    shift 2
    (cd "$dir" && exec timeout -k 5 $((secs + 10)) sipp "$@" \
        -i 127.0.0.1 -nostdin -timeout "${secs}s" -timeout_error \
        -buff_size 4194304 -trace_err -error_file "$dir/errors.log" \
        -max_log_size 1000000 >"$dir/screen.out" 2>&1) &
    SIPP_PID=$!
    BG_PIDS+=("$SIPP_PID")
}

# reap PID: waits for a background process, returns its exit code, and
# forgets the PID (so that cleanup never signals a recycled one).
reap() {
    local rc=0 pid keep=()
    wait "$1" || rc=$?
    for pid in "${BG_PIDS[@]}"; do
        [[ "$pid" == "$1" ]] || keep+=("$pid")
    done
    BG_PIDS=("${keep[@]}")
    return "$rc"
}

# udp_bound PORT: some socket is bound to local UDP port PORT (any address;
# the local_address column of /proc/net/udp{,6} only, not the remote one).
udp_bound() {
    local files=() f
    for f in /proc/net/udp /proc/net/udp6; do
        [[ -r "$f" ]] && files+=("$f")
    done
    awk -v port="$(printf ':%04X' "$1")" \
        'FNR > 1 && substr($2, length($2) - 4) == port { found = 1; exit }
         END { exit !found }' "${files[@]}"
}

udp_port_free() { ! udp_bound "$1"; }

# wait_port_free PORT: a sipp UAS can only bind once the previous one left.
wait_port_free() {
    for _ in $(seq 100); do
        udp_port_free "$1" && return 0
        sleep 0.1
    done
    return 1
}

# uas_bg DIR SECONDS PORT ARGS...: starts a sipp UAS on UDP PORT in the
# background (PID in $SIPP_PID) once the previous one left the port, and
# waits until it is listening: its socket bound (then the daemon's INVITE
# waits in its buffer), 10 s at most. Returns 1, saying why, when the port
# stays taken, or the UAS exits or does not bind in time.
uas_bg() {
    local dir="$1" secs="$2" port="$3"
    shift 3
    if ! wait_port_free "$port"; then
        say "    UDP port $port is still taken after 10 s"
        SIPP_PID=""
        return 1
    fi
    sipp_bg "$dir" "$secs" "$@" -p "$port"
    for _ in $(seq 100); do
        udp_bound "$port" && return 0
        if ! kill -0 "$SIPP_PID" 2>/dev/null; then
            say "    the sipp UAS for port $port exited before listening"
            return 1
        fi
        sleep 0.1
    done
    say "    the sipp UAS for port $port was not listening within 10 s"
    return 1
}

# abandon PID...: stops background sipp runs of a check that cannot go on.
abandon() {
    local pid
    for pid in "$@"; do
        [[ -n "$pid" ]] || continue
        kill "$pid" 2>/dev/null || true
        reap "$pid" || true
    done
}

# start_daemon: starts it and waits for the "listening" line (15 s), then
# reads the bound ports from it into UDP_PORT/TCP_PORT and DAEMON_UDP/
# DAEMON_TCP. Returns 1 when the daemon exits, is not listening in time, or
# logs no UDP or TCP address (it goes on running then: cleanup stops it).
start_daemon() {
    local from re='udp=Some\(127\.0\.0\.1:([0-9]+)\) tcp=Some\(127\.0\.0\.1:([0-9]+)\)'
    from=$(($(wc -l <"$LOG") + 1))
    START_LOG_FROM=$from
    NO_COLOR=1 RUST_LOG="${RUST_LOG:-info,switchboard=debug}" \
        "$BIN" --config "$CFG" >>"$LOG" 2>&1 &
    DAEMON_PID=$!
    for _ in $(seq 150); do
        LISTENING_LINE=$(awk -v from="$from" \
            'NR >= from && /switchboard listening/ { print; exit }' "$LOG")
        if [[ -n "$LISTENING_LINE" ]]; then
            if [[ ! "$LISTENING_LINE" =~ $re ]]; then
                say "    no udp=Some(127.0.0.1:PORT) tcp=Some(127.0.0.1:PORT) in: $LISTENING_LINE"
                return 1
            fi
            UDP_PORT=${BASH_REMATCH[1]}
            TCP_PORT=${BASH_REMATCH[2]}
            DAEMON_UDP="127.0.0.1:$UDP_PORT"
            DAEMON_TCP="127.0.0.1:$TCP_PORT"
            return 0
        fi
        if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
            wait "$DAEMON_PID" 2>/dev/null || true
            DAEMON_PID=""
            say "    the daemon exited before listening (log: $LOG)"
            return 1
        fi
        sleep 0.1
    done
    say "    the daemon logged no \"switchboard listening\" within 15 s"
    return 1
}

# bind_config UDP_PORT TCP_PORT: the ports the daemon binds at its next start.
bind_config() {
    sed -i -e "s/^sip_udp = .*/sip_udp = \"127.0.0.1:$1\"/" \
        -e "s/^sip_tcp = .*/sip_tcp = \"127.0.0.1:$2\"/" "$CFG"
}

# stop_daemon: SIGTERM, then waits up to 10 s; returns the daemon's exit code.
stop_daemon() {
    local rc=0
    kill -TERM "$DAEMON_PID" 2>/dev/null || return 1
    for _ in $(seq 100); do
        kill -0 "$DAEMON_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$DAEMON_PID" 2>/dev/null; then
        say "    the daemon did not stop within 10 s of SIGTERM"
        kill -KILL "$DAEMON_PID" 2>/dev/null || true
        wait "$DAEMON_PID" 2>/dev/null || true
        DAEMON_PID=""
        return 1
    fi
    wait "$DAEMON_PID" || rc=$?
    DAEMON_PID=""
    return "$rc"
}

daemon_alive() {
    [[ -n "$DAEMON_PID" ]] && kill -0 "$DAEMON_PID" 2>/dev/null
}

# options_probe NAME [-t t1]: OPTIONS -> 200 over UDP (or TCP).
options_probe() {
    local dir
    dir=$(sipp_dir "$1")
    shift
    if [[ "${1:-}" == -t ]]; then
        sipp_run "$dir" 10 "$DAEMON_TCP" -sf "$SCEN/options.xml" -p "$P_PROBE" -m 1 "$@"
    else
        sipp_run "$dir" 10 "$DAEMON_UDP" -sf "$SCEN/options.xml" -p "$P_PROBE" -m 1 "$@"
    fi
}

# register CSV CALLS [NAME]: signs the phones of a -inf file in.
register() {
    local dir
    dir=$(sipp_dir "${3:-register_$(basename "$1" .csv)}")
    sipp_run "$dir" 15 "$DAEMON_UDP" -sf "$SCEN/register_auth.xml" -inf "$1" -p "$P_REG" -m "$2"
}

# stored_bindings: what the daemon has stored in its data directory: the
# registrations snapshot and its journal, when there is one.
stored_bindings() {
    cat "$DATA"/registrations.json "$DATA"/registrations.journal 2>/dev/null || true
}

# stored_match REGEX: the stored registrations match (grep on the files
# themselves: no pipe, so pipefail cannot turn an early match into failure).
stored_match() {
    grep -Eqs "$1" "$DATA"/registrations.json "$DATA"/registrations.journal
}

# wait_for_stored REGEX SECONDS: until the stored registrations match.
wait_for_stored() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        stored_match "$1" && return 0
        sleep 0.1
    done
    return 1
}

# wait_for_file_match FILE REGEX SECONDS
wait_for_file_match() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -Eq "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# --------------------------------------------------------------------------
# The checks. Each prints PASS/FAIL and never stops the run.

check_config() {
    say "== config: switchboard check"
    local out="$WORK/check.out" rc=0
    if "$BIN" check --config "$CFG" >"$out" 2>&1; then
        pass "config: check accepts the test workspace"
    else
        cat "$out"
        fail "config: check accepts the test workspace"
    fi
    if "$BIN" check --config "$ROOT/config/switchboard.toml" >"$out" 2>&1; then
        pass "config: check accepts config/switchboard.toml"
    else
        cat "$out"
        fail "config: check accepts config/switchboard.toml"
    fi
    # Every kind of error at once: all must be reported, each with the
    # file and the key.
    local bad="$WORK/bad.toml"
    cat >"$bad" <<'EOF'
[server]
domain = "switchboard.local"
sip_udp = "not-an-address"
colour = "blue"

[plan]
seats = 1

[[users]]
id = "alice"
name = "Alice"
status = "active"
password = "a"

[[users]]
id = "alice"
name = "Alice again"
status = "active"
password = "a"

[[numbers]]
number = "+15550100"
name = "One"
timezone = "Mars/Olympus_Mons"
members = ["alice", "zed"]
[numbers.routing]
strategy = "simultaneous"
ring = ["alice", "bob"]

[[numbers]]
number = "+1 555 0100"
name = "Same number"
timezone = "UTC"
members = []
[numbers.routing]
strategy = "simultaneous"
ring = []

[[numbers]]
number = "555-CALL"
name = "Letters"
timezone = "UTC"
members = []
[numbers.routing]
strategy = "simultaneous"
ring = []
EOF
    rc=0
    "$BIN" check --config "$bad" >"$out" 2>&1 || rc=$?
    # The unknown key is a structural error: it is reported alone (the
    # semantic pass only runs on a well-shaped file), so check it apart.
    local ok=1
    if [[ $rc -eq 0 ]]; then ok=0; fi
    grep -q "bad.toml: server.colour: unknown field" "$out" || ok=0
    if [[ $ok -eq 1 ]]; then
        pass "config: unknown key refused (exit $rc, file and key named)"
    else
        say "    exit code $rc; output:"
        sed 's/^/      /' "$out"
        fail "config: unknown key refused (exit $rc, file and key named)"
    fi
    sed -i '/^colour = /d' "$bad"
    rc=0
    "$BIN" check --config "$bad" >"$out" 2>&1 || rc=$?
    ok=1
    [[ $rc -ne 0 ]] || ok=0
    local key
    for key in "server.sip_udp" "plan.seats" "users\[1\].id" "numbers\[0\].timezone" \
        "numbers\[0\].members\[1\]" "numbers\[0\].routing.ring\[1\]" \
        "numbers\[1\].number" "numbers\[2\].number"; do
        if ! grep -q "bad.toml: $key: " "$out"; then
            say "    no error for $key"
            ok=0
        fi
    done
    if [[ $ok -eq 1 ]]; then
        pass "config: every semantic error reported with file and key (exit $rc)"
    else
        say "    exit code $rc; output:"
        sed 's/^/      /' "$out"
        fail "config: every semantic error reported with file and key (exit $rc)"
    fi
}

check_register() {
    say "== REGISTER"
    local dir
    if options_probe options_udp; then pass "options.xml: OPTIONS -> 200 (UDP)"; else fail "options.xml: OPTIONS -> 200 (UDP)" "$WORK/sipp/options_udp"; fi
    if options_probe options_tcp -t t1; then pass "options.xml: OPTIONS -> 200 (TCP)"; else fail "options.xml: OPTIONS -> 200 (TCP)" "$WORK/sipp/options_tcp"; fi

    if register "$WORK/alice.csv" 1 register_auth; then
        if wait_for_stored "sip:alice@127.0.0.1:$P_ALICE" 5; then
            pass "register_auth.xml: alice 401 -> 200, binding stored"
        else
            say "    no binding for alice in $DATA/registrations.*:"
            stored_bindings
            fail "register_auth.xml: alice 401 -> 200, binding stored" "$WORK/sipp/register_auth"
        fi
    else
        fail "register_auth.xml: alice 401 -> 200, binding stored" "$WORK/sipp/register_auth"
    fi

    dir=$(sipp_dir register_auth_tcp)
    if sipp_run "$dir" 15 "$DAEMON_TCP" -t t1 -sf "$SCEN/register_auth.xml" -inf "$WORK/carol.csv" -p "$P_REG" -m 1; then
        pass "register_auth.xml over TCP: carol 401 -> 200"
    else
        fail "register_auth.xml over TCP: carol 401 -> 200" "$dir"
    fi

    dir=$(sipp_dir register_wrong_password)
    if sipp_run "$dir" 15 "$DAEMON_UDP" -sf "$SCEN/register_wrong_password.xml" -inf "$WORK/bad.csv" -p "$P_REG" -m 2; then
        pass "register_wrong_password.xml: wrong password and unknown user -> 403"
    else
        fail "register_wrong_password.xml: wrong password and unknown user -> 403" "$dir"
    fi

    dir=$(sipp_dir register_invited)
    if sipp_run "$dir" 15 "$DAEMON_UDP" -sf "$SCEN/register_invited.xml" -inf "$WORK/invited.csv" -p "$P_REG" -m 1; then
        pass "register_invited.xml: invited dave, right password -> 403"
    else
        fail "register_invited.xml: invited dave, right password -> 403" "$dir"
    fi
    if stored_match 'sip:(dave|mallory)@|"(dave|mallory)"'; then
        stored_bindings
        fail "no binding stored for refused users"
    else
        pass "no binding stored for refused users"
    fi
}

# garbage_run: garbage.py against the daemon, 60 s at most. It takes one
# port for its UDP and its TCP cases; when the daemon's two ports differ, it
# is loaded as a module and its tcp_case() runs with the TCP port (an error,
# not a silent change, should garbage.py lose that function).
garbage_run() {
    if [[ "$UDP_PORT" == "$TCP_PORT" ]]; then
        timeout -k 5 60 python3 "$SCEN/garbage.py" 127.0.0.1 "$UDP_PORT" "$P_GARBAGE"
        return
    fi
    timeout -k 5 60 python3 - "$SCEN/garbage.py" 127.0.0.1 "$UDP_PORT" "$P_GARBAGE" "$TCP_PORT" <<'PY'
import importlib.util, sys
path, tcp_port = sys.argv[1], int(sys.argv[5])
sys.argv = sys.argv[1:5]
spec = importlib.util.spec_from_file_location("garbage", path)
garbage = importlib.util.module_from_spec(spec)
spec.loader.exec_module(garbage)
tcp_case_one_port = garbage.tcp_case
def tcp_case(*args, **kwargs):
    udp_port, garbage.PORT = garbage.PORT, tcp_port
    try:
        return tcp_case_one_port(*args, **kwargs)
    finally:
        garbage.PORT = udp_port
garbage.tcp_case = tcp_case
print(f"garbage (run.sh): the TCP cases go to {garbage.HOST}:{tcp_port}")
sys.exit(garbage.main())
PY
}

check_garbage() {
    say "== garbage and oversized messages"
    local dir
    dir=$(sipp_dir garbage)
    if garbage_run >"$dir/garbage.out" 2>&1; then
        sed 's/^/    /' "$dir/garbage.out"
        pass "garbage.py: 400 for a request without Call-ID, no 2xx to garbage"
    else
        sed 's/^/    /' "$dir/garbage.out"
        fail "garbage.py: 400 for a request without Call-ID, no 2xx to garbage" "$dir"
    fi
    if daemon_alive && options_probe after_garbage_udp && options_probe after_garbage_tcp -t t1; then
        pass "daemon alive after garbage (OPTIONS -> 200 over UDP and TCP)"
    else
        fail "daemon alive after garbage (OPTIONS -> 200 over UDP and TCP)" "$WORK/sipp/after_garbage_udp" "$WORK/sipp/after_garbage_tcp"
    fi
}

check_trunk_call() {
    say "== trunk call to +15550100 (Sales: alice answers, bob rings and is cancelled)"
    local name="trunk call: uac_call -> +15550100, uas_answer (alice) + uas_ring (bob)"
    if ! register "$WORK/phones.csv" 2 register_phones; then
        fail "$name (REGISTER of alice and bob)" "$WORK/sipp/register_phones"
        return
    fi
    local da db dc pa="" pb="" rc_a=0 rc_b=0 rc_c=0
    da=$(sipp_dir call_alice_answer)
    db=$(sipp_dir call_bob_ring)
    dc=$(sipp_dir call_trunk)
    if ! uas_bg "$da" 30 "$P_ALICE" -sf "$SCEN/uas_answer.xml" -m 1; then
        abandon "$SIPP_PID"
        fail "$name" "$da"
        return
    fi
    pa=$SIPP_PID
    if ! uas_bg "$db" 30 "$P_BOB" -sf "$SCEN/uas_ring.xml" -m 1; then
        abandon "$pa" "$SIPP_PID"
        fail "$name" "$da" "$db"
        return
    fi
    pb=$SIPP_PID
    sipp_run "$dc" 30 "$DAEMON_UDP" -sf "$SCEN/uac_call.xml" -s +15550100 -p "$P_UAC" -m 1 -d 1000 || rc_c=$?
    reap "$pa" || rc_a=$?
    reap "$pb" || rc_b=$?
    say "    exit codes: uac_call=$rc_c uas_answer=$rc_a uas_ring=$rc_b"
    if [[ $rc_a -eq 0 && $rc_b -eq 0 && $rc_c -eq 0 ]]; then
        pass "$name"
    else
        fail "$name" "$da" "$db" "$dc"
    fi
}

# One call to +15550300 (only alice) answered by a uas_answer; the UAS
# traces its messages so the caller can tell when the call is up.
check_busy() {
    say "== busy skip: +15550300 (only alice) while alice is in a call"
    local name="busy skip: second call while alice talks -> 486"
    local da dc db pa pc rc_a=0 rc_c=0 rc_b=0
    da=$(sipp_dir busy_alice_answer)
    dc=$(sipp_dir busy_first_call)
    db=$(sipp_dir busy_second_call)
    if ! uas_bg "$da" 40 "$P_ALICE" -sf "$SCEN/uas_answer.xml" -m 1 -trace_msg -message_file "$da/messages.log"; then
        abandon "$SIPP_PID"
        fail "$name" "$da"
        return
    fi
    pa=$SIPP_PID
    # A long hold (-d 6 s): the second call is placed during it.
    sipp_bg "$dc" 40 "$DAEMON_UDP" -sf "$SCEN/uac_call.xml" -s +15550300 -p "$P_UAC" -m 1 -d 6000
    pc=$SIPP_PID
    if ! wait_for_file_match "$da/messages.log" "^ACK sip:" 10; then
        say "    the first call was not answered within 10 s"
        reap "$pc" || true
        reap "$pa" || true
        fail "$name" "$da" "$dc"
        return
    fi
    sipp_run "$db" 15 "$DAEMON_UDP" -sf "$SCEN/uac_busy.xml" -s +15550300 -p "$P_BUSY" -m 1 || rc_b=$?
    reap "$pc" || rc_c=$?
    reap "$pa" || rc_a=$?
    say "    exit codes: first call uac_call=$rc_c uas_answer=$rc_a, second call uac_busy=$rc_b"
    if [[ $rc_b -eq 0 && $rc_c -eq 0 && $rc_a -eq 0 ]]; then
        pass "$name"
    else
        fail "$name" "$da" "$dc" "$db"
    fi

    name="busy released: after the first call ends, alice rings again"
    da=$(sipp_dir again_alice_answer)
    dc=$(sipp_dir again_call)
    rc_a=0
    rc_c=0
    if ! uas_bg "$da" 30 "$P_ALICE" -sf "$SCEN/uas_answer.xml" -m 1; then
        abandon "$SIPP_PID"
        fail "$name" "$da"
        return
    fi
    pa=$SIPP_PID
    sipp_run "$dc" 30 "$DAEMON_UDP" -sf "$SCEN/uac_call.xml" -s +15550300 -p "$P_UAC" -m 1 -d 500 || rc_c=$?
    reap "$pa" || rc_a=$?
    say "    exit codes: uac_call=$rc_c uas_answer=$rc_a"
    if [[ $rc_a -eq 0 && $rc_c -eq 0 ]]; then
        pass "$name"
    else
        fail "$name" "$da" "$dc"
    fi
}

check_cancel() {
    say "== caller CANCEL while ringing: +15550400 (only bob)"
    local name="caller CANCEL: uac_cancel -> 200 + 487, uas_ring (bob) gets CANCEL"
    local dr dc pr rc_r=0 rc_c=0
    dr=$(sipp_dir cancel_bob_ring)
    dc=$(sipp_dir cancel_trunk)
    if ! uas_bg "$dr" 30 "$P_BOB" -sf "$SCEN/uas_ring.xml" -m 1; then
        abandon "$SIPP_PID"
        fail "$name" "$dr"
        return
    fi
    pr=$SIPP_PID
    sipp_run "$dc" 20 "$DAEMON_UDP" -sf "$SCEN/uac_cancel.xml" -s +15550400 -p "$P_CANCEL" -m 1 || rc_c=$?
    reap "$pr" || rc_r=$?
    say "    exit codes: uac_cancel=$rc_c uas_ring=$rc_r"
    if [[ $rc_c -eq 0 && $rc_r -eq 0 ]]; then
        pass "$name"
    else
        fail "$name" "$dr" "$dc"
    fi
}

# A carrier that requires 100rel (RFC 3262) calls bob, whose phone plays
# early media in a reliable 183: PRACKs on both sides, the 183's SDP reaches
# the carrier, and the call completes.
check_100rel() {
    say "== reliable provisionals and early media: +15550400 (only bob)"
    local name="100rel: uac_100rel (Require: 100rel) -> uas_early_media (bob, reliable 183 with SDP), PRACKed both sides"
    local dr dc pr rc_r=0 rc_c=0
    dr=$(sipp_dir rel_bob_early_media)
    dc=$(sipp_dir rel_carrier)
    if ! uas_bg "$dr" 30 "$P_BOB" -sf "$SCEN/uas_early_media.xml" -m 1; then
        abandon "$SIPP_PID"
        fail "$name" "$dr"
        return
    fi
    pr=$SIPP_PID
    sipp_run "$dc" 20 "$DAEMON_UDP" -sf "$SCEN/uac_100rel.xml" -s +15550400 -p "$P_CANCEL" -m 1 -d 500 || rc_c=$?
    reap "$pr" || rc_r=$?
    say "    exit codes: uac_100rel=$rc_c uas_early_media=$rc_r"
    if [[ $rc_c -eq 0 && $rc_r -eq 0 ]]; then
        pass "$name"
    else
        fail "$name" "$dr" "$dc"
    fi
}

# restart_daemon: starts the daemon again on the ports it had (a real
# restart keeps its address, which registered phones know). Should one of
# them have been taken since the stop, says so and starts it on port 0.
restart_daemon() {
    bind_config "$UDP_PORT" "$TCP_PORT"
    start_daemon && return 0
    if [[ -z "$DAEMON_PID" ]] &&
        tail -n +"$START_LOG_FROM" "$LOG" | grep -q "Address already in use"; then
        say "    UDP $UDP_PORT or TCP $TCP_PORT was taken after the stop: restarting on port 0"
        bind_config 0 0
        start_daemon && return 0
    fi
    return 1
}

check_restart() {
    say "== restart keeps the bindings"
    local name="restart: SIGTERM saves alice's binding, a new daemon restores it and rings her"
    local rc=0 da dc pa rc_a=0 rc_c=0
    stop_daemon || rc=$?
    if [[ $rc -ne 0 ]]; then
        say "    the daemon exited with $rc on SIGTERM"
        fail "graceful stop on SIGTERM (exit 0)"
    else
        pass "graceful stop on SIGTERM (exit 0)"
    fi
    if ! stored_match "sip:alice@127.0.0.1:$P_ALICE"; then
        say "    no binding for alice in $DATA/registrations.* after the stop:"
        stored_bindings
        fail "$name"
        restart_daemon || true
        return
    fi
    if ! restart_daemon; then
        say "    the daemon did not start again"
        fail "$name"
        return
    fi
    say "    $(sed -e 's/.*switchboard listening/switchboard listening/' <<<"$LISTENING_LINE")"
    if ! grep -Eq "restored_bindings=[1-9]" <<<"$LISTENING_LINE"; then
        say "    no binding restored"
        fail "$name"
        return
    fi
    da=$(sipp_dir restart_alice_answer)
    dc=$(sipp_dir restart_call)
    if ! uas_bg "$da" 30 "$P_ALICE" -sf "$SCEN/uas_answer.xml" -m 1; then
        abandon "$SIPP_PID"
        fail "$name" "$da"
        return
    fi
    pa=$SIPP_PID
    sipp_run "$dc" 30 "$DAEMON_UDP" -sf "$SCEN/uac_call.xml" -s +15550300 -p "$P_UAC" -m 1 -d 500 || rc_c=$?
    reap "$pa" || rc_a=$?
    say "    exit codes: uac_call=$rc_c uas_answer=$rc_a"
    if [[ $rc_a -eq 0 && $rc_c -eq 0 ]]; then
        pass "$name"
    else
        fail "$name" "$da" "$dc"
    fi
}

# A user's softphone (alice, from 127.0.0.1 like the trunk) dials a French
# national number; the daemon answers its 407, takes the call out through
# the trunk with alice's line as caller ID, and answers the carrier's own
# 407 with the trunk's credentials.
check_outbound() {
    say "== outbound call: alice dials 0612345678, the carrier sees +33612345678 from +15550100"
    local name="outbound call: uac_outbound (407, credentials) -> uas_carrier (407, trunk credentials)"
    local dc dp pc="" rc_c=0 rc_p=0
    dc=$(sipp_dir outbound_carrier)
    dp=$(sipp_dir outbound_phone)
    if ! uas_bg "$dc" 30 "$P_CARRIER" -sf "$SCEN/uas_carrier.xml" -m 1; then
        abandon "$SIPP_PID"
        fail "$name" "$dc"
        return
    fi
    pc=$SIPP_PID
    sipp_run "$dp" 30 "$DAEMON_UDP" -sf "$SCEN/uac_outbound.xml" -inf "$WORK/caller.csv" \
        -s 0612345678 -p "$P_OUT" -m 1 -d 1000 || rc_p=$?
    reap "$pc" || rc_c=$?
    say "    exit codes: uac_outbound=$rc_p uas_carrier=$rc_c"
    if [[ $rc_p -eq 0 && $rc_c -eq 0 ]]; then
        pass "$name"
    else
        fail "$name" "$dp" "$dc"
    fi
}

check_final() {
    say "== final state"
    if grep -q "panicked" "$LOG"; then
        fail "no panic in the daemon log"
    else
        pass "no panic in the daemon log"
    fi
    local rc=0
    if daemon_alive; then
        stop_daemon || rc=$?
        if [[ $rc -eq 0 ]]; then pass "final graceful stop (exit 0)"; else fail "final graceful stop (exit 0, got $rc)"; fi
    else
        fail "daemon still running at the end"
    fi
}

# --------------------------------------------------------------------------

say "tests/sipp: daemon $BIN"
say "tests/sipp: work directory $WORK"
say "tests/sipp: sipp ports: uac $P_UAC, busy $P_BUSY, cancel $P_CANCEL, alice $P_ALICE, bob $P_BOB, carol $P_CAROL, register $P_REG, probe $P_PROBE, garbage $P_GARBAGE"

check_config

say "== starting the daemon"
if start_daemon; then
    say "    daemon on UDP $DAEMON_UDP, TCP $DAEMON_TCP (bound to 127.0.0.1:$BIND_PORT)"
    pass "daemon starts and logs \"switchboard listening\""
else
    fail "daemon starts and logs \"switchboard listening\""
    exit 1
fi

check_register
check_garbage
check_trunk_call
check_busy
check_cancel
check_outbound
check_100rel
check_restart
check_final

say
say "==================== summary ===================="
for line in "${RESULTS[@]}"; do
    say "  $line"
done
if [[ ${#FAILED[@]} -gt 0 ]]; then
    say "tests/sipp: ${#FAILED[@]} of ${#RESULTS[@]} checks FAILED"
    exit 1
fi
say "tests/sipp: all ${#RESULTS[@]} checks passed"
