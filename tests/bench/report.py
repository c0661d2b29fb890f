#!/usr/bin/env python3
"""Turn tests/bench/run.sh's raw result lines into docs/performance.md."""
import re
import sys
import datetime

raw, out, cpu, kernel, secs, file_mb = sys.argv[1:7]
NOTE = ('Reading the ratios: on this machine `fio --ioengine=libaio` on a buffered file reads at only ~30K IOPS at any depth (libaio runs buffered I/O synchronously inside io_submit, and syscalls are slow in this VM), so "vs host fio" above 1 for reads says more about that than about iovd; the `null` rows show iovd\'s own cost per I/O. Each NVMe I/O costs the client and the server several vfio-user messages (SQ tail doorbell, CQ head doorbell) plus an eventfd interrupt; the virtio-blk client batches a whole queue depth per kick with event index, hence its higher QD32 numbers.')
lines = open(raw).read().splitlines()


def kv(line):
    return dict(re.findall(r'(\w+)=([^\s]+)', line))


md = ['# iovd performance', '',
      'Written by `make bench` (tests/bench/run.sh); do not edit by hand.', '',
      f'- date: {datetime.date.today().isoformat()}',
      f'- machine: {cpu}, {kernel}, 2 cores',
      f'- {secs} s per point; image: {file_mb} MiB raw file in the page '
      'cache (`cache.direct=off`, `aio=native`); `null` = the null driver',
      '- the benchmark client is a vfio-user driver in the same machine: it '
      'shares the 2 cores with iovd (and fio runs alone)', '']

fio = {}
for l in lines:
    if l.startswith('fio '):
        d = kv(l)
        fio[(l.split()[1], d['qd'])] = d

nvme = [l for l in lines if l.startswith('nvme ')]
if nvme:
    md += ['## NVMe, 4 KiB random I/O', '',
           'Client: `tests/bench/nvme-bench` (busy-polls the completion '
           'queues, one doorbell write per batch).  Host: `fio '
           '--ioengine=libaio --direct=0` on the same file, same run.', '',
           '| backend | rw | QD | queues | IOPS | p50 µs | p99 µs | '
           'p99.9 µs | iovd CPU µs/IO | vs host fio |',
           '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |']
    for l in nvme:
        backend = l.split()[1]
        d = kv(l)
        ref = fio.get((d['rw'], d['qd']))
        ratio = ''
        if backend == 'file' and ref and int(ref['iops']):
            ratio = f"{float(d['iops']) / int(ref['iops']):.2f}x"
        md.append(f"| {backend} | {d['rw']} | {d['qd']} | {d['queues']} | "
                  f"{float(d['iops']):.0f} | {d['lat_us_p50']} | {d['p99']} "
                  f"| {d['p999']} | {d.get('server_cpu_us_per_io', '')} | "
                  f"{ratio} |")
    md += ['', '| host fio | QD | IOPS | p50 µs |', '| --- | --- | --- | --- |']
    for (rw, qd), d in sorted(fio.items()):
        md.append(f"| {rw} | {qd} | {d['iops']} | {d['lat_us_p50']} |")
    md += ['', NOTE, '']

vb = [l for l in lines if l.startswith('virtio-blk ')]
if vb:
    md += ['## virtio-blk, 4 KiB random I/O', '',
           '| backend | rw | QD | IOPS | p50 µs | p99 µs | iovd CPU µs/IO | '
           'vs host fio |', '| --- | --- | --- | --- | --- | --- | --- | --- |']
    for l in vb:
        backend = l.split()[1]
        d = kv(l)
        ref = fio.get((d['rw'], d['qd']))
        ratio = ''
        if backend == 'file' and ref and int(ref['iops']):
            ratio = f"{float(d['iops']) / int(ref['iops']):.2f}x"
        md.append(f"| {backend} | {d['rw']} | {d['qd']} | "
                  f"{float(d['iops']):.0f} | {d['lat_us_p50']} | {d['p99']} | "
                  f"{d.get('server_cpu_us_per_io', '')} | {ratio} |")
    md.append('')

qmp = [l for l in lines if l.startswith('qmp ')]
if qmp:
    md += ['## QMP', '', 'One client, `query-status` back to back '
           '(`tests/bench/qmp-bench`); target 20,000 round trips/s.', '',
           '```', *[l[4:] for l in qmp], '```', '']

net = [l for l in lines if l.startswith('net ')]
if net:
    md += ['## Network', '', '```', *[l[4:] for l in net], '```', '']

open(out, 'w').write('\n'.join(md) + '\n')
