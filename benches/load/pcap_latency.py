#!/usr/bin/env python3
"""Request->response latency from a loopback pcap (stdlib only).

sipp's own response times come from CLOCK_MONOTONIC_COARSE and are
quantised to the kernel tick (4 ms here), so percentiles below a few ms are
meaningless.  This reads a tcpdump capture of the trunk side (sipp UAC <->
proxy) and matches requests to responses by Call-ID + CSeq, using kernel
packet timestamps (microseconds).

usage: pcap_latency.py FILE.pcap UAC_PORT
prints one line per measured pair, e.g.
  INVITE->100  n=... avg=... p50=... p95=... p99=... max=... (ms)

Adapted from shared/anchors/kamailio/pcap_latency.py for benches/load:
more pairs (INVITE->486 for the busy-skip workload, REGISTER->401 for the
digest challenge).  With digest auth a registration is two transactions:
REGISTER(CSeq 1)->401 and REGISTER(CSeq 2)->200, matched separately
(Call-ID + CSeq number), so REGISTER->200 is the authenticated round trip.
"""
import struct
import sys


def packets(path):
    with open(path, 'rb') as f:
        hdr = f.read(24)
        magic = struct.unpack('<I', hdr[:4])[0]
        if magic == 0xa1b2c3d4:
            endian, scale = '<', 1e-6
        elif magic == 0xa1b23c4d:
            endian, scale = '<', 1e-9
        elif magic == 0xd4c3b2a1:
            endian, scale = '>', 1e-6
        else:
            raise SystemExit('not a pcap file')
        linktype = struct.unpack(endian + 'I', hdr[20:24])[0]
        while True:
            rh = f.read(16)
            if len(rh) < 16:
                return
            sec, frac, incl, _orig = struct.unpack(endian + 'IIII', rh)
            data = f.read(incl)
            ts = sec + frac * scale
            if linktype == 1:            # Ethernet (Linux lo)
                off = 14
            elif linktype == 113:        # Linux cooked v1
                off = 16
            elif linktype == 276:        # Linux cooked v2
                off = 20
            elif linktype == 0:          # BSD loopback
                off = 4
            else:
                raise SystemExit('unsupported linktype %d' % linktype)
            ip = data[off:]
            if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
                continue
            ihl = (ip[0] & 15) * 4
            sport, dport = struct.unpack('>HH', ip[ihl:ihl + 4])
            yield ts, sport, dport, ip[ihl + 8:]


def header(msg, name):
    for line in msg.split(b'\r\n')[1:]:
        if not line:
            break
        k, _, v = line.partition(b':')
        if k.strip().lower() == name:
            return v.strip()
    return None


def main():
    path, port = sys.argv[1], int(sys.argv[2])
    sent = {}       # (callid, cseqnum, method) -> first request time
    got = {}        # (callid, cseqnum, method, code) -> first response time
    for ts, sport, dport, payload in packets(path):
        first = payload.split(b'\r\n', 1)[0]
        callid = header(payload, b'call-id')
        cseq = header(payload, b'cseq')
        if callid is None or cseq is None:
            continue
        num, _, method = cseq.partition(b' ')
        if sport == port and not first.startswith(b'SIP/2.0'):
            sent.setdefault((callid, num, method.strip()), ts)
        elif dport == port and first.startswith(b'SIP/2.0'):
            code = first.split(b' ')[1]
            got.setdefault((callid, num, method.strip(), code), ts)
    pairs = [(b'INVITE', b'100'), (b'INVITE', b'180'), (b'INVITE', b'200'),
             (b'INVITE', b'486'), (b'BYE', b'200'), (b'REGISTER', b'401'),
             (b'REGISTER', b'200')]
    for method, code in pairs:
        lat = []
        for (callid, num, m, c), t in got.items():
            if m == method and c == code:
                t0 = sent.get((callid, num, m))
                if t0 is not None and t >= t0:
                    lat.append((t - t0) * 1000.0)
        if not lat:
            continue
        lat.sort()
        n = len(lat)
        q = lambda p: lat[min(n - 1, int(n * p))]
        print('%s->%s n=%d avg=%.3f p50=%.3f p95=%.3f p99=%.3f max=%.2f ms' % (
            method.decode(), code.decode(), n, sum(lat) / n, q(0.5), q(0.95),
            q(0.99), lat[-1]))


if __name__ == '__main__':
    main()
