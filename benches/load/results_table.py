#!/usr/bin/env python3
"""Render benches/load/run.sh's results.tsv: Switchboard and Kamailio side by side.

usage: results_table.py [--all] results.tsv
Without --all only the rows after the last "# run" line are shown.
For every workload and rate there is one line per column group:
  switchboard | kamailio | ratio (switchboard / kamailio) for comparable columns.
"""
import sys

TARGETS = ('switchboard', 'kamailio')
# (column, label, ratio?) per workload
COMMON = [('attempted', 'calls', False), ('failed', 'failed', False), ('retrans', 'retrans', False),
          ('achieved', 'achieved/s', True), ('cpu_pct', 'daemon CPU %', True),
          ('cpu_s_per_1k', 'CPU s/1k', True), ('udp_drops', 'UDP drops', False)]
CALL = [('inv180_p50', '180 p50 ms', True), ('inv180_p99', '180 p99 ms', True),
        ('inv200_p50', '200 p50 ms', True), ('inv200_p99', '200 p99 ms', True)]
VIEW = {
    'reg': COMMON + [('reg200_p50', 'REG->200 p50 ms', True), ('reg200_p99', 'REG->200 p99 ms', True),
                     ('items', 'AoRs', False), ('mem_peak_kb', 'mem kB', True)],
    'single': COMMON + CALL + [('mem_peak_kb', 'mem kB', True)],
    'fork': COMMON + CALL + [('mem_peak_kb', 'mem kB', True)],
    'hunt': COMMON + [('busy486', '486s', False)] + CALL +
            [('inv486_p50', '486 p50 ms', True), ('inv486_p99', '486 p99 ms', True)],
    'held': [('attempted', 'calls', False), ('failed', 'failed', False), ('items', 'held', False),
             ('mem_before_kb', 'mem before kB', True), ('mem_peak_kb', 'mem held kB', True),
             ('mem_after_kb', 'mem after kB', True), ('kb_per_item', 'kB/held call', True),
             ('cpu_s_per_1k', 'CPU s/1k', True)],
    'regheld': [('attempted', 'regs', False), ('failed', 'failed', False), ('items', 'AoRs', False),
                ('mem_before_kb', 'mem before kB', True), ('mem_peak_kb', 'mem half kB', True),
                ('mem_after_kb', 'mem after kB', True), ('kb_per_item', 'kB/registration', True), ('cpu_s_per_1k', 'CPU s/1k', True)],
}
TITLE = {
    'reg': '(1) REGISTER storm, distinct AoRs (rate = registrations/s; Switchboard: digest auth, '
           '2 requests each; Kamailio anchor: NO auth, 1 request)',
    'single': '(2) calls routed to 1 user (rate = CPS)',
    'fork': '(3) calls forked to 4 users, 1 answers, 3 cancelled (rate = CPS)',
    'hunt': '(4) overlapping calls on shared 4-user numbers: busy skip (486 expected), all users free at the end',
    'held': '(5) many calls held at once (mem = PSS of the daemon processes)',
    'regheld': '(6) many registrations held (mem = PSS of the daemon processes)',
}


def num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def main():
    args = [a for a in sys.argv[1:] if a != '--all']
    show_all = '--all' in sys.argv[1:]
    if not args:
        raise SystemExit(__doc__)
    header, rows = None, []
    for line in open(args[0]):
        line = line.rstrip('\n')
        if not line:
            continue
        if line.startswith('workload\t'):
            header = line.split('\t')
            continue
        if line.startswith('# run'):
            if not show_all:
                rows = []
            rows.append(('#', line))
            continue
        if line.startswith('#') or header is None:
            continue
        rows.append(('r', dict(zip(header, line.split('\t')))))
    for kind, r in rows:
        if kind == '#':
            print(r)
    data = [r for k, r in rows if k == 'r']
    for wl in ('reg', 'single', 'fork', 'hunt', 'held', 'regheld'):
        sel = [r for r in data if r['workload'] == wl]
        if not sel:
            continue
        cols = VIEW[wl]
        print('\n' + TITLE[wl])
        rates = []
        for r in sel:
            if r['rate'] not in rates:
                rates.append(r['rate'])
        head = ['rate', 'column'] + [t for t in TARGETS] + ['SB/Kam']
        lines, notes = [], []
        for rate in rates:
            by = {}
            for r in sel:
                if r['rate'] == rate:
                    by[r['target']] = r      # last one wins (repeats: see --all)
            for c, label, ratio in cols:
                vals = [by.get(t, {}).get(c, '-') for t in TARGETS]
                rt = '-'
                a, b = num(vals[0]), num(vals[1])
                if ratio and a is not None and b:
                    rt = '%.2f' % (a / b)
                lines.append([rate, label] + vals + [rt])
            for extra in ('check', 'sipp_errors', 'daemon_warnings'):
                vals = [by.get(t, {}).get(extra, '-') for t in TARGETS]
                lines.append([rate, extra] + [v if len(v) <= 16 else v[:13] + '...' for v in vals] + [''])
            for t in TARGETS:
                r = by.get(t)
                if r and len(r.get('check', '')) > 16:
                    notes.append('rate %s %s check: %s' % (rate, t, r['check']))
            for t in TARGETS:
                r = by.get(t)
                if r and r.get('note', '-') != '-':
                    n = 'rate %s %s: %s' % (rate, t, r['note'])
                    if n.split(': ', 1)[1] not in [x.split(': ', 1)[1] for x in notes]:
                        notes.append(n)
            lines.append(None)
        w = [max(len(str(x[i])) for x in [head] + [l for l in lines if l]) for i in range(len(head))]
        fmt = lambda l: '  '.join(str(v).ljust(w[i]) for i, v in enumerate(l)).rstrip()
        print(fmt(head))
        print('  '.join('-' * x for x in w))
        for l in lines:
            if l:
                print(fmt(l))
        for n in notes:
            print('  note ' + n)


if __name__ == '__main__':
    main()
