#!/usr/bin/env bash
# tests/attack/sipvicious.sh: the attackers' own tools against the daemon.
#
#   bash tests/attack/sipvicious.sh [DAEMON_BINARY]
#
# SIPVicious (PyPI `sipvicious`, pinned below, in a venv of its own under
# ~/.cache/switchboard) scans a daemon on loopback the way a server on a
# public address is scanned within minutes of going up:
#   * svmap finds it (a SIP server answers: expected);
#   * svwar tries the users' names and extensions with REGISTER, INVITE and
#     OPTIONS, and must find nobody (every name gets the same answer);
#   * svcrack guesses alice's password from a list that holds it (line 40),
#     and must be banned after a handful of attempts and never find it;
#   * meanwhile real users sign in from another address (sipp,
#     register_auth.xml) and a carrier's call rings one of them: every
#     REGISTER succeeds and the call is answered.
# Addresses: the daemon listens on 127.0.0.1 (port 0: the kernel picks);
# SIPVicious binds every address and reaches it from 127.0.0.1 (so the
# test's trunk is 127.0.0.9, never banned, and 127.0.0.1 is "the
# internet"); the real users are on 127.0.0.3. Everything is bounded
# (timeout, sipp -m, svcrack --maximumtime) and stopped on exit.
#
# Prints the figures the README quotes: names svwar found, svcrack's
# attempts before the ban, REGISTER/s of real users with and without the
# attack (SB_ATTACK_RATE, default 300/s, for SB_ATTACK_SECONDS, default 6).
# Exits 1 on the first broken promise (with the daemon log), 2 when a tool
# is missing or PyPI cannot be reached.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="${1:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/switchboard}"
case "$BIN" in /*) ;; *) BIN="$PWD/$BIN" ;; esac
SIPVICIOUS_VERSION=0.3.4
VENV="${SB_SIPVICIOUS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/switchboard/sipvicious-$SIPVICIOUS_VERSION}"
RATE="${SB_ATTACK_RATE:-300}"
SECONDS_EACH="${SB_ATTACK_SECONDS:-6}"

for tool in sipp python3 timeout awk; do
    command -v "$tool" >/dev/null 2>&1 || { echo "tests/attack: $tool is not installed" >&2; exit 2; }
done
[[ -x "$BIN" ]] || { echo "tests/attack: no daemon binary at $BIN" >&2; exit 2; }

if [[ ! -x "$VENV/bin/sipvicious_svcrack" ]]; then
    echo "installing sipvicious $SIPVICIOUS_VERSION from PyPI into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV" || { echo "tests/attack: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2; exit 2; }
    timeout 300 "$VENV/bin/pip" install --quiet --disable-pip-version-check "sipvicious==$SIPVICIOUS_VERSION" ||
        { echo "tests/attack: could not install sipvicious from PyPI" >&2; rm -rf "$VENV"; exit 2; }
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/switchboard-attack.XXXXXX")"
LOG="$WORK/daemon.log"
DAEMON_PID=""
BG=()
FAILED=0
cleanup() {
    local rc=$?
    set +e
    for pid in "${BG[@]}"; do kill "$pid" 2>/dev/null; done
    if [[ -n "$DAEMON_PID" ]]; then
        kill -TERM "$DAEMON_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$DAEMON_PID" 2>/dev/null
    fi
    wait 2>/dev/null
    if [[ $rc -ne 0 || $FAILED -ne 0 ]]; then
        echo "==================== daemon log ===================="
        tail -n 80 "$LOG"
        echo "tests/attack: work directory kept: $WORK"
        [[ $rc -eq 0 ]] && rc=1
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

pass() { echo "  PASS  $*"; }
fail() { echo "  FAIL  $*"; FAILED=1; }

# Two ports for sipp on 127.0.0.3 (alice's phone, the REGISTER client) and
# one for the carrier on 127.0.0.9: free ones, chosen by binding port 0.
read -r P_PHONE P_REG P_TRUNK < <(python3 - <<'PY'
import socket
# All bound at once, so that the kernel cannot hand out one port twice.
socks = []
for ip in ("127.0.0.3", "127.0.0.3", "127.0.0.9"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((ip, 0))
    socks.append(s)
print(*[s.getsockname()[1] for s in socks])
PY
)

cat >"$WORK/switchboard.toml" <<EOF
# Written by tests/attack/sipvicious.sh.
[server]
domain = "switchboard.local"
sip_udp = "127.0.0.1:0"
data_dir = "$WORK/data"
log_format = "human"
digest_algorithms = ["MD5", "SHA-256"]
# sipp computes its digest over the server's address.
digest_uri_check = false

[plan]
seats = 10

[[trunks]]
name = "carrier"
sources = ["127.0.0.9/32"]

[[users]]
id = "alice"
name = "Alice"
status = "active"
password = "alice-secret"
extension = "101"

[[users]]
id = "bob"
name = "Bob"
status = "active"
password = "bob-secret"
extension = "102"

[[users]]
id = "dave"
name = "Dave"
status = "invited"
password = "dave-secret"

[[numbers]]
number = "+15550300"
name = "Alice direct"
timezone = "Europe/Paris"
members = ["alice"]

[numbers.routing]
strategy = "simultaneous"
ring = ["alice"]
EOF

RUST_LOG="${RUST_LOG:-info}" "$BIN" --config "$WORK/switchboard.toml" >"$LOG" 2>&1 &
DAEMON_PID=$!
PORT=""
for _ in $(seq 150); do
    PORT=$(grep -o 'udp=Some(127.0.0.1:[0-9]*)' "$LOG" | grep -o '[0-9]*)$' | tr -d ')' || true)
    [[ -n "$PORT" ]] && break
    kill -0 "$DAEMON_PID" 2>/dev/null || break
    sleep 0.1
done
[[ -n "$PORT" ]] || { echo "tests/attack: the daemon did not start"; exit 1; }
echo "daemon on 127.0.0.1:$PORT; sipvicious $SIPVICIOUS_VERSION"
SV="$VENV/bin"

# Real users: alice (and bob, alternately) sign in again and again from
# 127.0.0.3, as sipp register_auth.xml, at RATE for SECONDS_EACH seconds.
printf 'SEQUENTIAL\nalice;[authentication username=alice password=alice-secret];%s;\nbob;[authentication username=bob password=bob-secret];%s;\n' \
    "$P_PHONE" "$P_PHONE" >"$WORK/users.csv"
real_users() { # NAME SECONDS: prints "ok failed rate"
    local dir="$WORK/$1" n=$((RATE * $2))
    mkdir -p "$dir"
    (cd "$dir" && timeout $(($2 + 40)) sipp "127.0.0.1:$PORT" -sf "$ROOT/tests/sipp/register_auth.xml" \
        -inf "$WORK/users.csv" -i 127.0.0.3 -p "$P_REG" -r "$RATE" -m "$n" -timeout $(($2 + 30))s \
        -nostdin -buff_size 4194304 -trace_stat -trace_err >/dev/null 2>&1) || true
    local stats
    stats=$(ls "$dir"/register_auth_*_.csv 2>/dev/null | head -1)
    if [[ -z "$stats" ]]; then
        echo "0 -1 0" # sipp wrote no statistics: it did not run
        return
    fi
    awk -F';' 'NR==1{for(i=1;i<=NF;i++){h[$i]=i}} END{
        ok=$h["SuccessfulCall(C)"]; bad=$h["FailedCall(C)"]; split($h["ElapsedTime(C)"], t, ":");
        secs=t[1]*3600+t[2]*60+t[3]+t[4]/1e6; printf "%d %d %.0f\n", ok, bad, (secs > 0 ? ok/secs : 0)}' "$stats"
}

echo "== real users without an attack"
read -r ok0 bad0 rate0 < <(real_users quiet "$SECONDS_EACH")
if [[ $bad0 -eq 0 && $ok0 -eq $((RATE * SECONDS_EACH)) ]]; then
    pass "real users: $ok0 REGISTERs signed in, 0 failed ($rate0/s)"
else
    fail "real users without an attack: $ok0 ok, $bad0 failed"
fi

echo "== svmap"
"$SV/sipvicious_svmap" 127.0.0.1 -p "$PORT" >"$WORK/svmap.out" 2>&1 || true
if grep -q "127.0.0.1:$PORT" "$WORK/svmap.out"; then
    pass "svmap finds the SIP server (expected: it answers OPTIONS)"
else
    fail "svmap did not see the server: $(tail -3 "$WORK/svmap.out")"
fi

# The attack runs while the real users sign in again, for long enough to
# cover all of it (checked below).
WINDOW=$((SECONDS_EACH * 8))
echo "== the attack (svwar, then svcrack), real users signing in for ${WINDOW}s meanwhile"
real_users attacked "$WINDOW" >"$WORK/attacked.txt" &
attack_start=$SECONDS
BG+=($!)
REAL_PID=$!

printf '%s\n' alice bob carol dave admin root test 100 101 102 103 200 1000 >"$WORK/names.txt"
found=0
# svwar takes either a dictionary or a range: the names, then extensions.
for method in REGISTER INVITE OPTIONS; do
    for what in names extensions; do
        out="$WORK/svwar-$method-$what.out"
        if [[ $what == names ]]; then set -- -d "$WORK/names.txt"; else set -- -e100-150; fi
        rc=0
        timeout 120 "$SV/sipvicious_svwar" -v --force -m "$method" "$@" \
            127.0.0.1 -p "$PORT" >"$out" 2>&1 || rc=$?
        # A found extension is a table row ("| name | reqauth |") and exit
        # code 40; 30 is svwar failing to scan at all (no answer).
        rows=$(grep -cE '^\| [^ ]' "$out" || true)
        rows=$((rows > 0 ? rows - 1 : 0)) # minus the header row
        found=$((found + rows))
        if ! grep -q 'Ok SIP device found' "$out"; then
            fail "svwar -m $method ($what) did not reach the server (exit $rc): $(tail -2 "$out" | tr '\n' ' ')"
        elif [[ $rows -eq 0 && $rc -eq 0 ]]; then
            pass "svwar -m $method ($what): found nothing"
        else
            fail "svwar -m $method ($what) reported $rows names (exit $rc): $(grep -E '^\| ' "$out" | tr '\n' ' ')"
        fi
    done
done

# alice's password is line 40 of 60; svcrack stops once nothing answers.
python3 - "$WORK/passwords.txt" <<'PY'
import sys
words = ["password%d" % i for i in range(1, 40)] + ["alice-secret"] + ["guess%d" % i for i in range(20)]
open(sys.argv[1], "w").write("\n".join(words) + "\n")
PY
log_before=$(wc -l <"$LOG")
timeout 120 "$SV/sipvicious_svcrack" -vv -u alice -d "$WORK/passwords.txt" --maximumtime=5 \
    127.0.0.1 -p "$PORT" >"$WORK/svcrack.out" 2>&1 || true
# svcrack sends one guess at a time and logs it before sending; the guess
# after the ban gets no answer, and svcrack gives up after 5 s of silence.
attempts=$(grep -c 'trying ' "$WORK/svcrack.out" || true)
answered=$((attempts > 0 ? attempts - 1 : 0))
if grep -qiE 'alice-secret|found a password|\| alice' "$WORK/svcrack.out"; then
    fail "svcrack found alice's password"
elif ! tail -n +"$((log_before + 1))" "$LOG" | grep -q 'source banned source=127.0.0.1 '; then
    fail "svcrack was not banned ($attempts attempts)"
elif [[ $answered -lt 1 || $answered -gt 5 ]]; then
    fail "svcrack had $answered attempts answered; the ban comes at 5 failures"
elif grep -q 'source banned source=127.0.0.1 ' "$LOG"; then
    pass "svcrack banned after $answered answered attempts (its attempt $attempts got no answer), password not found"
else
    fail "svcrack was not banned ($attempts attempts)"
fi

attack_took=$((SECONDS - attack_start))
[[ $attack_took -lt $WINDOW ]] || fail "the attack ($attack_took s) outlasted the real users' window ($WINDOW s)"
wait "$REAL_PID" || true
read -r ok1 bad1 rate1 <"$WORK/attacked.txt"
if [[ ${bad1:-1} -eq 0 && ${ok1:-0} -eq $((RATE * WINDOW)) ]]; then
    pass "real users during the attack: $ok1 REGISTERs signed in, 0 failed ($rate1/s)"
else
    fail "real users during the attack: ${ok1:-0} ok, ${bad1:-?} failed"
fi

# A carrier's call still rings alice, registered from 127.0.0.3.
echo "== a call to alice after the attack"
mkdir -p "$WORK/call"
(cd "$WORK/call" && timeout 40 sipp -sf "$ROOT/tests/sipp/uas_answer.xml" -i 127.0.0.3 -p "$P_PHONE" -m 1 \
    -timeout 30s -timeout_error -nostdin >/dev/null 2>&1) &
UAS=$!
BG+=("$UAS")
for _ in $(seq 100); do
    grep -qi "$(printf ':%04X' "$P_PHONE")" /proc/net/udp && break
    sleep 0.1
done
rc_call=0
(cd "$WORK/call" && timeout 40 sipp "127.0.0.1:$PORT" -sf "$ROOT/tests/sipp/uac_call.xml" -s +15550300 \
    -i 127.0.0.9 -p "$P_TRUNK" -m 1 -d 500 -timeout 20s -timeout_error -nostdin >/dev/null 2>&1) || rc_call=$?
rc_uas=0
wait "$UAS" || rc_uas=$?
if [[ $rc_call -eq 0 && $rc_uas -eq 0 ]]; then
    pass "the carrier's call to +15550300 rings alice and is answered"
else
    fail "the call after the attack (uac_call=$rc_call uas_answer=$rc_uas)"
fi
if grep -q 'panicked' "$LOG"; then fail "a panic in the daemon log"; fi

echo "== figures"
echo "svwar names found: $found (REGISTER, INVITE, OPTIONS scans; 13 names, then extensions 100-150)"
echo "svcrack attempts answered before the ban: $answered (password at attempt 40: not reached)"
echo "the attack took ${attack_took}s"
echo "real users' REGISTER/s at $RATE/s offered: $rate0 without the attack, ${rate1:-0} in the ${WINDOW}s around it (all served: ${ok1:-0} of $((RATE * WINDOW)))"
[[ $FAILED -eq 0 ]] && echo "tests/attack: all checks passed"
