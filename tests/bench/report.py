#!/usr/bin/env python3
"""Turn tests/bench/run.sh's raw result lines into docs/performance.md and
the PNG charts next to it (docs/performance-*.png, python3-matplotlib)."""
import datetime
import os
import re
import sys

raw, out, cpu, kernel, secs, file_mb, fstype, ncpu, rounds = sys.argv[1:10]
lines = open(raw).read().splitlines()


def kv(line):
    return dict(re.findall(r'([\w.]+)=([^\s]+)', line))


def rows(prefix):
    return [kv(l) for l in lines if l.startswith(prefix + ' ')]


def find(prefix, **want):
    for d in rows(prefix):
        if all(d.get(k) == str(v) for k, v in want.items()):
            return d
    return None


def num(d, key):
    return float(d[key]) if d and key in d else None


def us_per_io(d):
    """Mean time per I/O at QD1 (the client waits for each)."""
    iops = num(d, 'iops')
    return 1e6 / iops if iops else None


fio = {(d['rw'], d['qd']): d for d in rows('fio io_uring')}


def fio_iops(rw, qd):
    d = fio.get((rw, str(qd)))
    return float(d['iops']) if d else None


def best_fio_iops(rw, qd):
    """The best host engine measured at this rw and QD (psync beats
    io_uring at QD1 on tmpfs: io_uring hands each request to a worker)."""
    refs = [float(d['iops']) for d in rows('fio')
            if d.get('rw') == rw and d.get('qd') == str(qd)]
    return max(refs) if refs else None


def ratio(d, rw, qd):
    ref = best_fio_iops(rw, qd)
    v = num(d, 'iops')
    return v / ref if ref and v is not None else None


def fmt(v, spec='.0f', suffix=''):
    return '' if v is None else format(v, spec) + suffix


LOOPS = {
    'main': 'main loop (default)',
    'iothread-poll': 'iothread, busy polling (default 32 us)',
    'iothread-poll-trap': 'iothread, busy polling, doorbells=trap',
    'iothread-sleep': 'iothread, poll-max-ns=0',
}

steal = next((l.split()[1:] for l in lines if l.startswith('steal ')), None)
steal_pct = None
if steal and float(steal[1]) > float(steal[3]):
    steal_pct = 100 * (float(steal[0]) - float(steal[2])) / \
        (float(steal[1]) - float(steal[3]))

md = ['# iovd performance', '',
      'Written by `make bench` (tests/bench/run.sh, tests/bench/report.py); '
      'do not edit by hand.', '',
      f'- date: {datetime.date.today().isoformat()}',
      f'- machine: {cpu}, kernel {kernel}, {ncpu} cores (a VM'
      + (f'; the hypervisor took {steal_pct:.1f}% of its CPU time during '
         'the run (steal)' if steal_pct is not None else '') + ')',
      f'- image: one {file_mb} MiB raw file on {fstype}, the same for iovd '
      f'and host fio; {secs} s per point, the best of {rounds} runs (iovd '
      'and fio alike: one preemption does not make a point); 4 KiB '
      'random I/O on one queue',
      '- iovd clients are vfio-user drivers in the same machine '
      '(`tests/bench/nvme-bench`, `virtio-blk-bench`): they map guest RAM '
      'from a memfd shared with iovd, bring the device up as Linux does '
      '(NVMe shadow doorbells when offered, the doorbell page mapped when '
      'offered, as QEMU\'s client does), keep QD requests in flight and '
      'busy-poll for completions on the other core; host fio runs alone',
      '- `vs fio` = IOPS / the best host fio engine (io_uring, libaio, '
      'psync; --direct=0) measured at the same QD and rw in this run',
      '- command: `make bench` (BENCH_SECS, BENCH_ROUNDS, BENCH_FILE_MB, '
      'BENCH_IMG_DIR change the defaults)', '']

# ---- targets ----
targets = []


def target(name, value, ok, detail):
    targets.append((name, value, ok, detail))


n = {}
for loop in LOOPS:
    for rw in ('randread', 'randwrite'):
        for qd in (1, 32):
            n[(loop, rw, qd)] = find('nvme', loop=loop, backend='file',
                                     rw=rw, qd=qd)
if fio:
    for loop, lim in (('main', 0.5), ('iothread-poll', 0.9)):
        r = ratio(n[(loop, 'randread', 32)], 'randread', 32)
        target(f'NVMe QD32 randread, {LOOPS[loop]}', fmt(r, '.2f', 'x'),
               r is not None and r >= lim, f'>= {lim}x host fio (best engine)')
for loop, lim in (('iothread-poll', 10), ('main', 25)):
    t = us_per_io(n[(loop, 'randread', 1)])
    target(f'NVMe QD1 randread, {LOOPS[loop]}', fmt(t, '.1f', ' us'),
           t is not None and t <= lim, f'<= {lim} us per I/O')
nulls = [d for d in rows('nvme') if d.get('backend') == 'null' and
         d.get('loop') == 'iothread-poll']
best = max((float(d['iops']) for d in nulls), default=None)
target('NVMe null backend, polling iothread, QD32-128', fmt(best, ',.0f'),
       best is not None and best >= 1e6, '>= 1,000,000 IOPS')
for qd in (1, 32):
    v = find('virtio-blk', loop='iothread-poll', backend='file',
             rw='randread', qd=qd)
    nv = n[('iothread-poll', 'randread', qd)]
    if v and nv:
        r = float(v['iops']) / float(nv['iops'])
        target(f'virtio-blk vs NVMe, polling iothread, QD{qd} randread',
               f'{r:.2f}x', r >= 0.8, 'within 20% of NVMe')
scale = {}
for mode in ('irq', 'poll'):
    alone = {d['dev']: float(d['iops']) for d in rows(f'scale mode={mode} alone')}
    both = {d['dev']: float(d['iops']) for d in rows(f'scale mode={mode} both')}
    if alone and both:
        scale[mode] = (alone, both)
if 'irq' in scale:
    alone, both = scale['irq']
    worst = min(both[k] / alone[k] for k in alone if k in both)
    target('two devices on two polling iothreads, together vs alone '
           '(interrupt-driven clients)', f'{worst:.2f}x', worst >= 0.8,
           '>= 0.8x each (2 cores: see below)')
for cfg in ('default', 'idle2ms', 'trap'):
    idle = rows(f'idle cfg={cfg}')
    if idle:
        pct = float(idle[0]['server_cpu_pct'])
        wake = max(int(d['max']) for d in idle)
        label = {'default': 'doorbells in memory, poll-idle-ns default '
                            '(500 us)',
                 'idle2ms': 'doorbells in memory, poll-idle-ns=2000000',
                 'trap': 'doorbells=trap (shadow doorbells polled)'}[cfg]
        target(f'idle, 4 NVMe on one polling iothread, {label}',
               f'{pct:.1f}% CPU, wake <= {wake} us',
               pct < 2 and wake <= 1000, '< 2% of a core; a request after '
               'idle completes within 1 ms')

upg = rows('upgrade')
for d in upg:
    mx = num(d, 'max')
    target(f"live upgrade blackout, 5 devices under load, devices on the "
           f"{'main loop' if d['loop'] == 'main' else 'iothreads'}",
           f"{mx:.1f} ms (max of {d['upgrades']})",
           mx <= 50 and d.get('errors') == '0', '<= 50 ms, nothing lost')

md += ['## Targets', '',
       '| target | measured | met | goal |', '| --- | --- | --- | --- |']
for name, value, ok, detail in targets:
    md.append(f'| {name} | {value} | {"yes" if ok else "**no**"} | '
              f'{detail} |')
md += ['']

# ---- NVMe ----
# The columns of the storage tables, by name.
IO_COLS = {
    'where': lambda d: LOOPS.get(d['loop'], d['loop']),
    'backend': lambda d: d['backend'],
    'RAM': lambda d: d.get('ram', 'shared'),
    'rw': lambda d: d['rw'],
    'QD': lambda d: d['qd'],
    'IOPS': lambda d: f"{float(d['iops']):,.0f}",
    'µs/IO': lambda d: fmt(us_per_io(d), '.1f') if d['qd'] == '1' else '',
    'p50 µs': lambda d: d['lat_us_p50'],
    'p99 µs': lambda d: d['p99'],
    'p99.9 µs': lambda d: d.get('p999', ''),
    'doorbells': lambda d: d.get('doorbells', '') +
    ('+shadow' if d.get('dbbuf') == 'yes' else ''),
    'notifications/IO': lambda d: d.get('kicks_per_io', ''),
    'iovd CPU µs/IO': lambda d: d.get('server_cpu_us_per_io', ''),
    'vs fio': lambda d: fmt(ratio(d, d['rw'], int(d['qd']))
                            if d['backend'] == 'file' else None, '.2f', 'x'),
}


def io_table(title, data, cols):
    out = [f'## {title}', '', '| ' + ' | '.join(cols) + ' |',
           '| ' + ' | '.join('---' for _ in cols) + ' |']
    for d in data:
        out.append('| ' + ' | '.join(IO_COLS[c](d) for c in cols) + ' |')
    return out + ['']


nv = rows('nvme')
if nv:
    md += io_table('NVMe', nv, ['where', 'backend', 'RAM', 'rw', 'QD', 'IOPS',
                                'µs/IO', 'p50 µs', 'p99 µs', 'p99.9 µs',
                                'doorbells', 'iovd CPU µs/IO', 'vs fio'])

nbd = [d for d in nv if d['backend'] == 'nbd']
if nbd:
    md += ['## NBD against the file driver', '',
           'The same image, served by nbdkit (file plugin) on a UNIX socket '
           'in the same machine: what the network protocol costs.', '',
           '| where | rw | QD | nbd IOPS | file IOPS | nbd / file | '
           'nbd p99 µs |', '| --- | --- | --- | --- | --- | --- | --- |']
    for d in nbd:
        f = find('nvme', loop=d['loop'], backend='file', rw=d['rw'],
                 qd=d['qd'])
        fi = num(f, 'iops')
        md.append(f"| {LOOPS.get(d['loop'], d['loop'])} | {d['rw']} | "
                  f"{d['qd']} | {float(d['iops']):,.0f} | "
                  f"{fmt(fi, ',.0f')} | "
                  f"{fmt(float(d['iops']) / fi if fi else None, '.2f', 'x')}"
                  f" | {d['p99']} |")
    md += ['', f'Here nbdkit, the benchmark client and iovd share {ncpu} cores. '
           'The server answers in its own threads, so each request costs two '
           'wake-ups across processes (see the QMP floor below) on top of '
           'the file read; an iothread that busy-polls spins while it waits '
           'for the server\'s reply and takes CPU time nbdkit needs, which '
           'is why the iothread rows fall below the main loop\'s.  Against '
           'a server on another machine the network round trip dominates '
           'instead.', '']

hosts = rows('fio')
if hosts:
    md += ['## Host fio on the same file', '',
           '| engine | rw | QD | IOPS | p50 µs | p99 µs |',
           '| --- | --- | --- | --- | --- | --- |']
    for l in lines:
        if l.startswith('fio '):
            eng = l.split()[1]
            d = kv(l)
            md.append(f"| {eng} | {d['rw']} | {d['qd']} | {int(d['iops']):,} | "
                      f"{d['lat_us_p50']} | {d.get('p99', '')} |")
    md += ['',
           f'On {fstype} a buffered read or write cannot be done "without '
           'waiting" (no RWF_NOWAIT), so io_uring hands every request to a '
           'kernel worker thread: that is why host fio io_uring needs ~50 us '
           'at QD1 while a plain `pread` (psync) takes ~1 us.  iovd reads and '
           'writes files in memory (tmpfs, ramfs, hugetlbfs) directly in its '
           'loop instead, so its QD1 figures beat host fio io_uring; `vs fio` '
           'compares them with psync, the best engine there.', '']

# ---- virtio-blk ----
vb = rows('virtio-blk')
if vb:
    md += io_table('virtio-blk', vb, ['where', 'backend', 'rw', 'QD', 'IOPS',
                                      'µs/IO', 'p50 µs', 'p99 µs',
                                      'notifications/IO', 'iovd CPU µs/IO',
                                      'vs fio'])

# ---- scaling ----
if scale:
    md += ['## Two devices on two iothreads', '',
           '| clients | device | alone IOPS | together IOPS | ratio |',
           '| --- | --- | --- | --- | --- |']
    for mode, (alone, both) in scale.items():
        for k in sorted(alone):
            md.append(f'| {"sleep on interrupts" if mode == "irq" else "busy-poll"} '
                      f'| nvme {k} | {alone[k]:,.0f} | {both.get(k, 0):,.0f} '
                      f'| {both.get(k, 0) / alone[k]:.2f}x |')
    md += ['',
           f'QD32 randread, each device on its own polling iothread.  With '
           'clients that sleep on MSI-X interrupts, as guest drivers do, '
           'each device keeps (or beats: a VM wakes a busy vCPU faster than '
           'a halted one) its figure alone.  With busy-polling clients, '
           'alone a device has one core for its iothread and one for its '
           f'client; together two iothreads and two clients, four spinning '
           f'threads, share the {ncpu} cores and each pair gets about half: '
           'the cores are the limit, not iovd (the iothreads share no lock '
           'on the data path).', '']

# ---- idle ----
idle_rows = [l for l in lines if l.startswith('idle ')]
wake_rows = rows('wakeup')
if idle_rows:
    md += ['## Idle', '',
           '4 NVMe controllers on one polling iothread, I/O queues made, no '
           'I/O for 10 s: iovd\'s CPU; then 20 single reads from each, each '
           'after 50-150 ms idle: how long each took.', '',
           '| configuration | iovd CPU | wake p50 µs | wake max µs |',
           '| --- | --- | --- | --- |']
    for cfg in ('default', 'idle2ms', 'trap'):
        r = rows(f'idle cfg={cfg}')
        if r:
            md.append(f"| {cfg} | {r[0]['server_cpu_pct']}% | "
                      f"{max(int(d['wake_us_p50']) for d in r)} | "
                      f"{max(int(d['max']) for d in r)} |")
    md += ['']
    if wake_rows:
        md += ['What one timed sleep and wake-up costs this machine '
               '(`tests/bench/wakeup-bench`: a thread sleeping in '
               'epoll_pwait2 with that timeout, nothing else):', '',
               '| interval µs | wake-ups/s | CPU µs per wake-up | CPU |',
               '| --- | --- | --- | --- |']
        for d in wake_rows:
            if 'interval_us' in d:
                md.append(f"| {d['interval_us']} | {d['wakeups_per_s']} | "
                          f"{d['cpu_us_per_wakeup']} | {d['cpu_pct']}% |")
        md += ['']
    costs = [float(d['cpu_us_per_wakeup']) for d in wake_rows
             if 'cpu_us_per_wakeup' in d]
    cost = (f'{min(costs):.0f}-{max(costs):.0f} µs of CPU (the table above)'
            if costs else 'tens of µs of CPU')
    md += ['Doorbells in guest-mapped memory notify nobody: an idle '
           'iothread must wake up to look at them, and the longest it '
           'sleeps (`poll-idle-ns`) is the longest a request after idle '
           f'waits.  Here a wake-up alone costs {cost}, so at 1 ms of '
           'wake-up latency four controllers cannot stay under 2% of a '
           'core: the default (500 µs) keeps the latency, '
           '`poll-idle-ns=2000000` trades it for CPU, and `doorbells=trap` '
           'costs nothing idle and, with the shadow doorbells Linux uses, '
           'is polled under load like memory doorbells (its rows in the '
           'NVMe table; nvme-test doorbells_trap_shadow_polled checks that '
           'no doorbell message comes while the loop polls).  The cost is '
           'per iothread, not per device: the four controllers share one '
           'wake-up.', '']

# ---- control path and network ----
qmp = [l for l in lines if l.startswith('qmp ')]
if qmp:
    pp = [d for d in wake_rows if 'pingpong_us' in d]
    md += ['## QMP', '', 'One client, `query-status` back to back '
           '(`tests/bench/qmp-bench`); target 20,000 round trips/s.', '',
           '```', *[l[4:] for l in qmp], '```', '']
    if pp:
        us = float(pp[0]['pingpong_us'])
        md += [f'The floor on this machine: one byte back and forth between '
               f'two processes that sleep in read() takes {us:.0f} µs '
               f'(`wakeup-bench`), at most {1e6 / us:,.0f} round trips/s '
               'before either side does any work; a QMP client that waits '
               'for each reply pays the same two wake-ups.', '']
if upg:
    md += ['## Live upgrade', '',
           'One iovd with all five devices (NVMe and virtio-blk on an image '
           'file each, virtio-net and e1000 wired back to back by a '
           '`-netdev stream` pair, pci-testdev) is upgraded every 0.5 s '
           '(`tests/bench/upgrade-bench`) while nvme-bench and '
           'virtio-blk-bench keep 32 random 4 KiB writes in flight each '
           'and a thread sends frames both ways between the NICs (each '
           'checked) with a testdev DMA every 16.  Downtime: from the '
           'moment the old process began to stop its devices until the new '
           'one started them (`query-status` upgrade.downtime-us).  Net '
           'gap: the longest pause between two frames the harness saw; '
           'p99.9: the block loads\' slowest requests over the whole run. '
           'Image files are not flushed on the way (docs/migration.md).', '',
           '| devices on | upgrades | downtime p50 ms | max ms | net gap ms '
           '| NVMe IOPS | NVMe p99.9 µs | virtio-blk IOPS | virtio-blk '
           'p99.9 µs | lost |', '| --- ' * 10 + '|']
    for d in upg:
        md.append(f"| {'main loop' if d['loop'] == 'main' else 'iothreads'} "
                  f"| {d['upgrades']} | {d['downtime_ms_p50']} | {d['max']} "
                  f"| {d['net_gap_ms_max']} | {float(d['nvme_iops']):,.0f} "
                  f"| {d['nvme_p999_us']} | {float(d['vblk_iops']):,.0f} | "
                  f"{d['vblk_p999_us']} | {d['errors']} |")
    md += ['']
net = [l for l in lines if l.startswith('net ')]
if net:
    md += ['## Network', '', '```', *[l[4:] for l in net], '```', '']


# ---- the charts: IOPS at QD32, time per I/O and tail latency at QD1 ----
IOVD, HOST = '#3b6ea5', '#a0a0a0'


def chart_data():
    """[(label, colour, QD32 IOPS, QD1 us/IO, QD1 p99 us)], host first."""
    bars = [('host fio io_uring', HOST, fio_iops('randread', 32),
             us_per_io(fio.get(('randread', '1'))),
             num(fio.get(('randread', '1')), 'p99'))]
    psync = find('fio psync', qd=1)
    if psync:
        bars.append(('host fio psync', HOST, None, us_per_io(psync),
                     num(psync, 'p99')))
    for loop in LOOPS:
        q32, q1 = n[(loop, 'randread', 32)], n[(loop, 'randread', 1)]
        bars.append((f'NVMe, {loop}', IOVD, num(q32, 'iops'), us_per_io(q1),
                     num(q1, 'p99')))
    for loop in ('main', 'iothread-poll'):
        v32 = find('virtio-blk', loop=loop, backend='file', rw='randread',
                   qd=32)
        v1 = find('virtio-blk', loop=loop, backend='file', rw='randread',
                  qd=1)
        bars.append((f'virtio-blk, {loop}', IOVD, num(v32, 'iops'),
                     us_per_io(v1), num(v1, 'p99')))
    return bars


def hbar(ax, bars, title, unit, spec):
    bars = [(label, colour, v) for label, colour, v in bars if v]
    labels = [b[0] for b in bars][::-1]
    values = [b[2] for b in bars][::-1]
    ax.barh(labels, values, color=[b[1] for b in bars][::-1])
    ax.set_title(title, loc='left', fontsize=11, fontweight='bold')
    ax.set_xlabel(unit)
    for y, v in enumerate(values):
        ax.text(v, y, ' ' + format(v, spec), va='center', fontsize=9)
    ax.set_xlim(0, max(values, default=1) * 1.25)
    ax.grid(axis='x', alpha=0.3)


def write_charts():
    """PNG charts next to the report: [(file name, title)], [] without
    matplotlib."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        print('report.py: python3-matplotlib is not installed: no charts',
              file=sys.stderr)
        return []
    bars = chart_data()
    base = os.path.splitext(out)[0]
    charts = [
        ('-iops.png', 'IOPS, 4 KiB random reads, QD32 (more is better)',
         [(l, c, q32) for l, c, q32, _, _ in bars], 'IOPS', ',.0f'),
        ('-latency.png', 'Mean time per I/O, 4 KiB random reads, QD1 '
         '(less is better)', [(l, c, q1) for l, c, _, q1, _ in bars],
         'µs per I/O', '.1f'),
        ('-p99.png', '99th percentile latency, 4 KiB random reads, QD1 '
         '(less is better)', [(l, c, p99) for l, c, _, _, p99 in bars],
         'µs', '.0f'),
    ]
    names = []
    for suffix, title, data, unit, spec in charts:
        fig, ax = plt.subplots(figsize=(9, 0.45 * len(data) + 1.2), dpi=100)
        hbar(ax, data, title, unit, spec)
        fig.tight_layout()
        fig.savefig(base + suffix)
        plt.close(fig)
        names.append((os.path.basename(base + suffix), title))
    return names


charts = write_charts()
stale = os.path.splitext(out)[0] + '.svg'       # the earlier plot
if os.path.exists(stale):
    os.unlink(stale)
md[md.index('## Targets'):md.index('## Targets')] = (
    [f'![{title}]({name})' for name, title in charts] +
    ([''] if charts else ['Charts: install python3-matplotlib and run '
                          '`make bench` again.', '']))

open(out, 'w').write('\n'.join(md) + '\n')
