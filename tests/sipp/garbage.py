#!/usr/bin/env python3
"""garbage.py: throws malformed and oversized messages at the daemon.

Usage: garbage.py HOST PORT [LOCAL_PORT]

Sends over UDP: random bytes, NUL bytes, a truncated request, a request
cut inside its body, a 65,507-byte datagram (the largest IPv4 UDP payload),
a stray response, a request with an unknown SIP version, and a request
without Call-ID; over TCP: random bytes and a 70 KB request whose header
never ends. Prints what came back for each.

Fails (exit 1) only when a rule the daemon must keep is broken:
  * the request without Call-ID must be answered 400 (UDP and TCP);
  * no malformed message may be answered with a 2xx.
Whether the daemon survived is checked by run.sh afterwards (process alive,
OPTIONS answered over UDP and TCP).
"""

import os
import random
import socket
import sys
import time

HOST = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 15060
LOCAL_PORT = int(sys.argv[3]) if len(sys.argv) > 3 else 25099

rng = random.Random(20261123)
failures = []


def request(method="OPTIONS", call_id=True, version="SIP/2.0", extra="", body=b"", clen=None):
    branch = "z9hG4bK-garbage-%08x" % rng.getrandbits(32)
    lines = [
        f"{method} sip:switchboard.local {version}",
        f"Via: SIP/2.0/UDP {HOST}:{LOCAL_PORT};branch={branch}",
        f"From: <sip:garbage@{HOST}:{LOCAL_PORT}>;tag=g{rng.getrandbits(24):x}",
        "To: <sip:switchboard.local>",
    ]
    if call_id:
        lines.append(f"Call-ID: garbage-{rng.getrandbits(48):x}@{HOST}")
    lines += [f"CSeq: 1 {method}", "Max-Forwards: 70"]
    if extra:
        lines.append(extra)
    lines.append(f"Content-Length: {len(body) if clen is None else clen}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def udp_case(sock, name, payload, wait=0.5, well_formed=False):
    """Sends one datagram and collects the answers: for `wait` seconds when
    none comes, else until 0.2 s pass without another. A 2xx is a failure
    unless the message is `well_formed` (only its size is unusual)."""
    sock.sendto(payload, (HOST, PORT))
    answers = []
    deadline = time.monotonic() + wait
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(min(left, 0.2) if answers else left)
        try:
            data, _ = sock.recvfrom(70000)
        except socket.timeout:
            break
        answers.append(data.split(b"\r\n", 1)[0].decode("latin-1"))
    shown = "; ".join(answers) if answers else "no answer"
    print(f"  {name} ({len(payload)} bytes): {shown}")
    for a in answers:
        if a.startswith("SIP/2.0 2") and not well_formed:
            failures.append(f"{name}: answered {a!r}")
    return answers


def tcp_case(name, payload):
    """Sends `payload` on a fresh connection; reports answer and whether the
    daemon closed the connection."""
    s = socket.create_connection((HOST, PORT), timeout=3)
    try:
        s.sendall(payload)
    except OSError as e:
        print(f"  {name} ({len(payload)} bytes): send failed: {e} (connection closed by the daemon)")
        s.close()
        return "no answer"
    s.settimeout(1.5)
    received = b""
    closed = False
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                closed = True
                break
            received += chunk
    except socket.timeout:
        pass
    except OSError:
        closed = True
    s.close()
    first = received.split(b"\r\n", 1)[0].decode("latin-1") if received else "no answer"
    state = "connection closed by the daemon" if closed else "connection left open"
    print(f"  {name} ({len(payload)} bytes): {first}; {state}")
    if first.startswith("SIP/2.0 2"):
        failures.append(f"{name}: answered {first!r}")
    return first


def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, LOCAL_PORT))
    print(f"garbage: UDP and TCP to {HOST}:{PORT}, from UDP port {LOCAL_PORT}")

    udp_case(sock, "random bytes", bytes(rng.getrandbits(8) for _ in range(1400)))
    udp_case(sock, "NUL bytes", b"\0" * 512)
    udp_case(sock, "CRLF keep-alive", b"\r\n\r\n")
    udp_case(sock, "random printable line", "".join(chr(rng.randint(32, 126)) for _ in range(300)).encode())
    full = request("INVITE", extra="Content-Type: application/sdp", body=b"v=0\r\n" * 20)
    udp_case(sock, "truncated request (cut in the headers)", full[: len(full) // 3])
    udp_case(sock, "request cut in the body (Content-Length too large)", full[:-30])
    udp_case(sock, "garbage after a request line", b"INVITE sip:+15550100@x SIP/2.0\r\n" + os.urandom(600))
    udp_case(sock, "header without colon", request(extra="This line has no colon"))
    udp_case(sock, "negative Content-Length", request(clen=-5))
    udp_case(sock, "huge CSeq", request().replace(b"CSeq: 1 OPTIONS", b"CSeq: 99999999999999999999 OPTIONS"))
    udp_case(sock, "stray response", b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKnope\r\n"
             b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: nope\r\nCSeq: 1 INVITE\r\n"
             b"Content-Length: 0\r\n\r\n")
    udp_case(sock, "unknown SIP version", request(version="SIP/3.0"))
    # The largest IPv4 UDP payload: 65535 - 20 (IP) - 8 (UDP) = 65,507 bytes.
    pad = 65507 - len(request(extra="X-Padding: "))
    big = request(extra="X-Padding: " + "a" * pad)
    assert len(big) == 65507, len(big)
    # Well-formed, only big: any answer (200, 513) or none is acceptable.
    udp_case(sock, "65,507-byte OPTIONS datagram", big, wait=1.0, well_formed=True)
    udp_case(sock, "65,507 bytes of random data", bytes(rng.getrandbits(8) for _ in range(65507)), wait=1.0)

    answers = udp_case(sock, "request without Call-ID", request(call_id=False), wait=2.0)
    if not any(a.startswith("SIP/2.0 400") for a in answers):
        failures.append(f"request without Call-ID: expected 400, got {answers or 'no answer'}")

    tcp_case("TCP: random bytes", bytes(rng.getrandbits(8) for _ in range(4096)))
    tcp_case("TCP: 70 KB request header that never ends",
             request(extra="X-Padding: " + "a" * 70_000)[:-4])
    first = tcp_case("TCP: request without Call-ID", request(call_id=False))
    if not first.startswith("SIP/2.0 400"):
        failures.append(f"TCP request without Call-ID: expected 400, got {first!r}")
    sock.close()

    if failures:
        for f in failures:
            print(f"garbage: FAIL: {f}")
        return 1
    print("garbage: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
