#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets (tests/fuzz/corpus/*):
well-formed inputs the fuzzer mutates from.  Run from the repository root;
the output is committed."""
import json
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus')


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


# ---- vfio-user: byte 0 fds, byte 1 cut, then messages ----
ids = iter(range(1, 1 << 16))


def msg(cmd, payload=b'', flags=0):
    return struct.pack('<HHIII', next(ids), cmd, 16 + len(payload), flags,
                       0) + payload


def version():
    caps = json.dumps({'capabilities': {'max_msg_fds': 8,
                                        'max_data_xfer_size': 1048576,
                                        'migration': {'pgsize': 4096}}})
    return msg(1, struct.pack('<HH', 0, 0) + caps.encode() + b'\0')


CONFIG, BAR0 = 7, 0
region_rw = lambda off, region, data: struct.pack('<QII', off, region,
                                                  len(data)) + data
seeds = {
    'info': version() + msg(4, struct.pack('<IIII', 16, 0, 0, 0)) +
    b''.join(msg(5, struct.pack('<IIIIQQ', 32, 0, i, 0, 0, 0))
             for i in range(9)) +
    b''.join(msg(7, struct.pack('<IIII', 16, 0, i, 0)) for i in range(5)),
    'config': version() +
    msg(9, struct.pack('<QII', 0, CONFIG, 64)) +
    msg(10, region_rw(4, CONFIG, struct.pack('<H', 0x6))) +
    msg(9, struct.pack('<QII', 0x40, CONFIG, 192)),
    'bar0': version() +
    msg(10, region_rw(4, CONFIG, struct.pack('<H', 0x6))) +
    msg(9, struct.pack('<QII', 0, BAR0, 4)) +
    msg(10, region_rw(0x20, BAR0, struct.pack('<I', 1))) +
    msg(15, struct.pack('<Q', 2) +
        struct.pack('<QII8s', 0x24, BAR0, 4, b'\1\0\0\0\0\0\0\0') +
        struct.pack('<QII8s', 0x24, BAR0, 4, b'\2\0\0\0\0\0\0\0')),
    'dma-nofd': version() +
    msg(2, struct.pack('<IIQQQ', 32, 3, 0, 0x100000, 0x10000)) +
    msg(10, region_rw(4, CONFIG, struct.pack('<H', 0x6))) +
    msg(10, region_rw(0x08, BAR0, struct.pack('<IIIII', 0x100000, 0, 256, 0,
                                              0))) +
    msg(10, region_rw(0x1c, BAR0, struct.pack('<I', 1))) +
    msg(3, struct.pack('<IIQQ', 24, 0, 0x100000, 0x10000)),
    'reset': version() + msg(13) +
    msg(9, struct.pack('<QII', 0, CONFIG, 4)),
}
for name, data in seeds.items():
    write('vfio-user', name, b'\0\0' + data)
# fds: two eventfds for MSI-X vectors 0-1; a memfd mapped as guest RAM.
write('vfio-user', 'irqs', bytes([2, 0]) + version() +
      msg(8, struct.pack('<IIIII', 20, (1 << 2) | (1 << 5), 4, 0, 2)) +
      msg(8, struct.pack('<IIIII', 20, (1 << 0) | (1 << 5), 4, 0, 0)))
write('vfio-user', 'dma-fd', bytes([1 | 4, 0]) + version() +
      msg(2, struct.pack('<IIQQQ', 32, 3, 0, 0x200000, 0x10000)) +
      msg(10, region_rw(4, CONFIG, struct.pack('<H', 0x6))) +
      msg(10, region_rw(0x08, BAR0, struct.pack('<IIIII', 0x200000, 0, 512,
                                                1, 0))) +
      msg(10, region_rw(0x1c, BAR0, struct.pack('<I', 1))))

# Live migration (DEVICE_FEATURE 16, MIG_DATA_READ 17, MIG_DATA_WRITE 18).
GET, SET = 1 << 16, 1 << 17
feat = lambda flags, data=b'': msg(16, struct.pack('<II', 8 + len(data) + 4096,
                                                   flags) + data)
mig_state = lambda st: feat(SET | 2, struct.pack('<Ii', st, -1))
write('vfio-user', 'migrate', bytes([1 | 4, 0]) + version() +
      msg(2, struct.pack('<IIQQQ', 32, 3, 0, 0x200000, 0x10000)) +
      feat(GET | 1) +
      feat(SET | 6, struct.pack('<QII', 4096, 1, 0) +
           struct.pack('<QQ', 0x200000, 0x10000)) +
      mig_state(6) + mig_state(3) +
      msg(17, struct.pack('<II', 8 + 4096, 4096)) +
      msg(17, struct.pack('<II', 8 + 4096, 4096)) +
      feat(GET | 8, struct.pack('<QQQ', 0x200000, 0x10000, 4096)) +
      feat(SET | 7) + mig_state(2))
write('vfio-user', 'resume', b'\0\0' + version() +
      mig_state(1) + mig_state(4) +
      msg(18, struct.pack('<II', 8 + 24, 24) + b'IOVDSTAT' +
          struct.pack('<II', 1, 0) + bytes(8)) +
      mig_state(2) + feat(GET | 2) + msg(13) + feat(GET | 2))

# ---- qmp-args: key=value NUL JSON request ----
qa = {
    'device': ('driver=nvme,id=n0,drive=d0,serial=X',
               {'execute': 'device_add',
                'arguments': {'driver': 'nvme', 'id': 'n0', 'drive': 'd0'}}),
    'blockdev': ('driver=file,node-name=d0,filename=/dev/null,cache.direct=on',
                 {'execute': 'blockdev-add',
                  'arguments': {'driver': 'file', 'node-name': 'd0',
                                'filename': '/dev/null',
                                'cache': {'direct': True}}}),
    'netdev': ('type=stream,id=n0,addr.type=unix,addr.path=/tmp/x,server=on',
               {'execute': 'netdev_add',
                'arguments': {'type': 'stream', 'id': 'n0',
                              'addr': {'type': 'unix', 'path': '/tmp/x'}}}),
    'iothread': ('qom-type=iothread,id=io0,poll-max-ns=65536',
                 {'execute': 'object-add',
                  'arguments': {'qom-type': 'iothread', 'id': 'io0',
                                'poll-max-ns': 65536}}),
    'query': ('id=t0', {'execute': 'query-block', 'id': 7}),
}
for name, (kv, req) in qa.items():
    write('qmp-args', name, kv.encode() + b'\0' + json.dumps(req).encode())

# ---- nvme: count, then (selector, 64-byte SQE) each, then the data area --
def sqe(opc, nsid=0, flags=0, prp1=0, prp2=0, cdw=(0, 0, 0, 0, 0, 0)):
    return struct.pack('<BBHIIIQQQ6I', opc, flags, 0, nsid, 0, 0, 0, prp1,
                       prp2, *cdw)


ADMIN, IO, AREA = 1, 0, 2
prp_list = struct.pack('<4Q', 0x1000, 0x2000, 0x3000, 0x4000)
sgl_seg = struct.pack('<QIxxxB', 0x1000, 4096, 0x00) * 2
nvme = {
    'identify': [(ADMIN | AREA, sqe(0x06, cdw=(1, 0, 0, 0, 0, 0))),
                 (ADMIN | AREA, sqe(0x06, nsid=1, cdw=(0, 0, 0, 0, 0, 0)))],
    'rw-prp': [(IO | AREA, sqe(0x01, 1, prp1=0x1000, prp2=0,
                               cdw=(0, 0, 7, 0, 0, 0))),
               (IO | AREA, sqe(0x02, 1, prp1=0x1000, prp2=0x0,
                               cdw=(0, 0, 31, 0, 0, 0)))],
    'sgl': [(IO | AREA, sqe(0x02, 1, flags=0x40, prp1=0x0,
                            prp2=struct.unpack('<Q', struct.pack(
                                '<IxxxB', 32, 0x20))[0],
                            cdw=(0, 0, 15, 0, 0, 0)))],
    'admin-misc': [(ADMIN | AREA, sqe(0x02, 0xffffffff, prp1=0x1000,
                                      cdw=(0x7f0001, 0, 0, 0, 0, 0))),
                   (ADMIN, sqe(0x09, cdw=(7, 0x10001, 0, 0, 0, 0))),
                   (ADMIN, sqe(0x0a, cdw=(7, 0, 0, 0, 0, 0))),
                   (ADMIN, sqe(0x0c))],
    'io-misc': [(IO | AREA, sqe(0x09, 1, prp1=0x0, cdw=(0, 4, 0, 0, 0, 0))),
                (IO, sqe(0x08, 1, cdw=(0, 0, 7, 0, 0, 0))),
                (IO, sqe(0x00, 1)), (IO, sqe(0x05, 1, cdw=(0, 0, 0, 0, 0, 0)))],
}
for name, cmds in nvme.items():
    data = bytes([len(cmds) - 1])
    for sel, cmd in cmds:
        data += bytes([sel]) + cmd
    data += prp_list + sgl_seg
    write('nvme', name, data)

# ---- virtqueue: features, head/count, 16-byte descriptors, data area ----
def vdesc(addr, length, flags, nxt):
    return struct.pack('<QIHH', addr, length, flags, nxt)


NEXT, WRITE, INDIRECT = 1, 2, 4
blk_hdr = lambda t, sector: struct.pack('<IIQ', t, 0, sector)
vq = {
    'split-read': (0, [vdesc(0, 16, NEXT, 1), vdesc(0x1000, 512, NEXT | WRITE, 2),
                       vdesc(0x2000, 1, WRITE, 0)], blk_hdr(0, 0)),
    'split-write': (2, [vdesc(0, 16, NEXT, 1), vdesc(0x1000, 4096, NEXT, 2),
                        vdesc(0x2000, 1, WRITE, 0)], blk_hdr(1, 8)),
    'split-flush': (2, [vdesc(0, 16, NEXT, 1), vdesc(0x2000, 1, WRITE, 0)],
                    blk_hdr(4, 0)),
    'split-getid': (0, [vdesc(0, 16, NEXT, 1), vdesc(0x1000, 20, NEXT | WRITE, 2),
                        vdesc(0x2000, 1, WRITE, 0)], blk_hdr(8, 0)),
    'packed-read': (1, [vdesc(0, 16, NEXT, 0), vdesc(0x1000, 512, NEXT | WRITE, 0),
                        vdesc(0x2000, 1, WRITE, 0)], blk_hdr(0, 0)),
    'indirect': (4, [vdesc(0x3000, 48, INDIRECT, 0)], blk_hdr(0, 0)),
}
for name, (feat, descs, hdr) in vq.items():
    data = bytes([feat, len(descs) - 1]) + b''.join(descs) + hdr
    write('virtqueue', name, data)

# ---- e1000: count, flags (bit 0 loopback), 16-byte TX descriptors, frames
def legacy(addr, length, cmd, cso=0, css=0, special=0):
    return struct.pack('<QHBBBBH', addr, length, cso, cmd, 0, css, special)


def context(ipcss, ipcso, ipcse, tucss, tucso, tucse, paylen, tucmd, hdr,
            mss):
    return struct.pack('<BBHBBH', ipcss, ipcso, ipcse, tucss, tucso,
                       tucse) + \
        struct.pack('<IBBH', (paylen & 0xfffff) | (0x0 << 20) | (tucmd << 24),
                    0, hdr, mss)


def data_desc(addr, length, dcmd, popts=0, special=0):
    return struct.pack('<QIBBH', addr, (length & 0xfffff) | (1 << 20) |
                       (dcmd << 24), 0, popts, special)


EOP, IFCS, TSE, RS, DEXT, VLE, IC = 1, 2, 4, 8, 0x20, 0x40, 4
eth = bytes.fromhex('525400123456525400abcdef0800')
ip = bytes.fromhex('4500003c1c4640004006b1e6c0a80001c0a800c7')
tcp = bytes.fromhex('0050c00c00000000000000005002200091e40000')
frame = (eth + ip + tcp).ljust(60, b'\0')
big = (eth + ip + tcp + bytes(range(256)) * 12)
e1000 = {
    'legacy': (0, [legacy(0, len(frame), EOP | IFCS | RS)], frame),
    'legacy-split': (0, [legacy(0, 30, IFCS), legacy(30, 30, EOP | RS)],
                     frame),
    'legacy-csum': (0, [legacy(0, len(frame), EOP | IFCS | RS | IC, cso=50,
                               css=34)], frame),
    'vlan': (0, [legacy(0, len(frame), EOP | IFCS | RS | VLE,
                        special=0x0123)], frame),
    'loopback': (1, [legacy(0, len(frame), EOP | IFCS | RS)], frame),
    'tso': (0, [context(14, 24, 33, 34, 50, 0, len(big) - 54, 0x20 | 0x1 |
                        0x2 | 0x4 | TSE, 54, 1000),
                data_desc(0, len(big), EOP | IFCS | RS | DEXT | TSE,
                          popts=0x3)], big),
}
for name, (flags, descs, payload) in e1000.items():
    write('e1000', name, bytes([len(descs) - 1, flags]) + b''.join(descs) +
          payload)

# ---- pci: device, then 14-byte records (op, size, address, value) ----
CFG_W, CFG_R, BAR_W, BAR_R, RAM_W = 0, 2, 3, 4, 5
W1, W2, W4, W8 = 0, 1, 2, 3


def rec(op, width, addr, value, bar=0):
    return struct.pack('<BBIQ', op, width | (bar << 4), addr, value)


enable = rec(CFG_W, W2, 4, 0x0006)
walk = b''.join(rec(CFG_R, W4, off, 0) for off in range(0, 0x100, 4))
nvme_identify = (struct.pack('<IIQQQQQIIIIII', 0x06, 0, 0, 0, 0x3000, 0, 0,
                             1, 0, 0, 0, 0, 0))
nvme_bringup = (enable +
                b''.join(rec(RAM_W, W8, 0x1000 + i, struct.unpack_from(
                    '<Q', nvme_identify, i)[0]) for i in range(0, 64, 8)) +
                rec(BAR_W, W4, 0x24, 0x000f000f) +
                rec(BAR_W, W8, 0x28, 0x1000) + rec(BAR_W, W8, 0x30, 0x2000) +
                rec(BAR_W, W4, 0x14, 0x00460001) + rec(BAR_R, W4, 0x1c, 0) +
                rec(BAR_W, W4, 0x1000, 1) + rec(BAR_R, W4, 0x1c, 0))
e1000_tx = (enable + rec(BAR_W, W4, 0x0, 0x04000000) +     # CTRL.RST
            rec(RAM_W, W8, 0x1000, 0x2000) +
            rec(RAM_W, W8, 0x1008, (0x0b << 24) | 60) +
            rec(BAR_W, W4, 0x3800, 0x1000) + rec(BAR_W, W4, 0x3808, 128) +
            rec(BAR_W, W4, 0x400, 0x0103f0fa) +              # TCTL.EN
            rec(BAR_W, W4, 0x3818, 1) + rec(BAR_R, W4, 0x3810, 0))
pci = {
    'nvme-walk': bytes([0]) + enable + walk,
    'nvme-bringup': bytes([0]) + nvme_bringup,
    'nvme-flr': bytes([0]) + enable + rec(CFG_W, W2, 0x88, 0x8000),
    'virtio-blk-walk': bytes([1]) + enable + walk,
    'virtio-net-walk': bytes([2]) + enable + walk,
    'e1000-tx': bytes([3]) + e1000_tx,
    'testdev-walk': bytes([4]) + enable + walk +
    b''.join(rec(BAR_R, W4, off, 0) for off in range(0, 0x40, 4)),
}
# brought up (byte 0 bit 3): RAM contents, then doorbells (op 6)
DOORBELL = 6


def ram(addr, data):
    data = data.ljust((len(data) + 7) // 8 * 8, b'\0')
    return b''.join(rec(RAM_W, W8, addr + i,
                        struct.unpack_from('<Q', data, i)[0])
                    for i in range(0, len(data), 8))


nvme_read = sqe(0x02, nsid=1, prp1=0x8000)
split_ring = lambda page, heads: (
    ram(page + 0x100, struct.pack('<HH', 0, len(heads)) +
        b''.join(struct.pack('<H', h) for h in heads)))
blk_chain = (vdesc(0x8000, 16, NEXT, 1) + vdesc(0x9000, 512, NEXT | WRITE, 2) +
             vdesc(0xa000, 1, WRITE, 0))
tx_frame = bytes(12) + frame
ctrl_chain = (vdesc(0x8000, 2, NEXT, 1) + vdesc(0x8002, 1, NEXT, 2) +
              vdesc(0xa000, 1, WRITE, 0))
rx_descs = b''.join(struct.pack('<QQ', 0x9000 + 0x800 * i, 0)
                    for i in range(8))
pci.update({
    'nvme-up-read': bytes([8]) + ram(0x5000, nvme_read) +
    rec(DOORBELL, W4, 2, 1),
    'nvme-up-admin': bytes([8]) + ram(0x1080, sqe(0x06, prp1=0x8000,
                                                  cdw=(1, 0, 0, 0, 0, 0))) +
    rec(DOORBELL, W4, 0, 3),
    'virtio-blk-up-read': bytes([9]) + ram(0x1000, blk_chain) +
    ram(0x8000, blk_hdr(0, 0)) + split_ring(0x1000, [0]) +
    rec(DOORBELL, W2, 0, 0),
    'virtio-blk-up-packed': bytes([9 | 16]) + ram(0x1000, blk_chain) +
    ram(0x8000, blk_hdr(0, 0)) + rec(DOORBELL, W2, 0, 0),
    'virtio-net-up-tx': bytes([10]) + ram(0x2000, vdesc(0x8000, len(tx_frame),
                                                        0, 0)) +
    ram(0x8000, tx_frame) + split_ring(0x2000, [0]) + rec(DOORBELL, W2, 1, 0),
    'virtio-net-up-ctrl': bytes([10]) + ram(0x3000, ctrl_chain) +
    ram(0x8000, bytes([0, 0, 1])) + split_ring(0x3000, [0]) +
    rec(DOORBELL, W2, 2, 0),
    'e1000-up-loopback': bytes([11 | 16]) + ram(0x2000, rx_descs) +
    ram(0x1000, legacy(0x8000, len(frame), EOP | IFCS | RS)) +
    ram(0x8000, frame) + rec(DOORBELL, W4, 1, 7) + rec(DOORBELL, W4, 0, 1),
})
for name, data in pci.items():
    write('pci', name, data)

# ---- qmp: a session, one request per line ----
def session(*reqs):
    return '\n'.join(json.dumps({'execute': r[0], 'arguments': r[1]}
                                if len(r) > 1 else {'execute': r[0]})
                     for r in reqs).encode()


qmp = {
    'queries': session(('query-status',), ('query-version',),
                       ('query-pci',), ('query-block',),
                       ('query-blockstats',), ('query-iothreads',),
                       ('query-vfio-user',), ('query-commands',),
                       ('query-rx-filter',), ('query-qmp-schema',)),
    'devices': session(('device_add', {'driver': 'pci-testdev',
                                       'id': 't1'}),
                       ('qom-list', {'path': 't1'}),
                       ('device_del', {'id': 't1'}),
                       ('device_del', {'id': 'n0'}), ('query-pci',)),
    'block': session(('blockdev-add', {'driver': 'null', 'node-name': 'd1',
                                       'size': 1 << 20}),
                     ('block_resize', {'node-name': 'd1', 'size': 2 << 20}),
                     ('block_set_io_throttle', {'device': 'n0', 'bps': 0, 'bps_rd': 0,
                                                'bps_wr': 0, 'iops': 100,
                                                'iops_rd': 0, 'iops_wr': 0}),
                     ('blockdev-del', {'node-name': 'd1'})),
    'iothread': session(('object-add', {'qom-type': 'iothread',
                                        'id': 'io1'}),
                        ('device_add', {'driver': 'e1000', 'id': 'e1',
                                        'iothread': 'io1'}),
                        ('set_link', {'name': 'e1', 'up': False}),
                        ('device_del', {'id': 'e1'}),
                        ('object-del', {'id': 'io1'})),
    'net': session(('netdev_add', {'type': 'user', 'id': 'u0'}),
                   ('device_add', {'driver': 'virtio-net-pci', 'id': 'vn1',
                                   'netdev': 'u0'}),
                   ('query-rx-filter', {'name': 'vn1'}),
                   ('netdev_del', {'id': 'u0'})),
    'runstate': session(('stop',), ('query-status',),
                        ('qom-get', {'path': 't0', 'property': 'id'}),
                        ('qom-set', {'path': 'nic0', 'property': 'x',
                                     'value': 1}),
                        ('cont',), ('quit',)),
}
for name, data in qmp.items():
    write('qmp', name, data)

# ---- virtio-net-ctrl: count, then (class, command, layout, length, data)
def ctrl(cls, cmd, data, layout=0):
    return bytes([cls, cmd, layout, len(data)]) + data


mac = bytes.fromhex('525400123456')
vnc = {
    'rx-modes': [ctrl(0, c, b'\1') for c in range(6)],
    'mac-table': [ctrl(1, 0, struct.pack('<I', 1) + mac +
                       struct.pack('<I', 2) + mac + mac, layout=2)],
    'mac-addr': [ctrl(1, 1, mac, layout=1)],
    'vlan': [ctrl(2, 0, struct.pack('<H', 5)), ctrl(2, 1, struct.pack('<H', 5))],
    'mq': [ctrl(4, 0, struct.pack('<H', 2)), ctrl(4, 0, struct.pack('<H', 9))],
    'offloads': [ctrl(5, 0, struct.pack('<Q', 0x7), layout=16)],
    'bad-status': [ctrl(0, 0, b'\1', layout=4), ctrl(0, 1, b'\0', layout=8)],
}
for name, cmds in vnc.items():
    write('virtio-net-ctrl', name, bytes([len(cmds) - 1]) + b''.join(cmds))

# ---- state: device, flags, then 4-byte edits of the device's own stream ----
for dev, name in enumerate(('nvme', 'virtio-blk', 'virtio-net', 'e1000',
                            'pci-testdev')):
    write('state', name, bytes([dev, 0]))
    # One edit in the first section header (the version), one cut short.
    write('state', name + '-edit', bytes([dev, 0, 18, 0, 0, 2]))
    write('state', name + '-cut', bytes([dev, 1, 0, 1, 0, 0]))
