#!/usr/bin/env python3
"""Real-guest integration test: a Linux guest under a vfio-user capable QEMU
drives every iovd device with its own drivers.

IOVD_GUEST_KEEP=1 keeps the logs of a run that passed.

Needs IOVD_QEMU=/path/to/qemu-system-x86_64 (QEMU 10.1 or later, checked
with -device help for vfio-user-pci).  Without one it prints a SKIP line
and exits 0.  Result lines: "guest: <check> <object>: PASS|FAIL detail",
then "N passed, N failed".
"""
import atexit
import ctypes
import hashlib
import json
import os
import queue
import random
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
IOVD = os.environ.get('IOVD_BIN', os.path.join(ROOT, 'build', 'iovd'))
BOOT_TIMEOUT = int(os.environ.get('IOVD_GUEST_TIMEOUT', '900'))
DISK_MB = 96

results = []


def check(name, obj, ok, detail=''):
    results.append((name, obj, ok, detail))
    print(f"guest: {name} {obj}: {'PASS' if ok else 'FAIL'} {detail}",
          flush=True)


def skip(reason):
    print(f'SKIP: check-guest: {reason}')
    print('0 passed, 0 failed, 1 skipped')
    sys.exit(0)


def find_qemu():
    q = os.environ.get('IOVD_QEMU')
    if not q:
        skip('no vfio-user capable QEMU: set IOVD_QEMU to a '
             'qemu-system-x86_64 of QEMU 10.1 or later')
    try:
        out = subprocess.run([q, '-device', 'help'], capture_output=True,
                             text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        skip(f'IOVD_QEMU={q} does not run: {e}')
    if 'vfio-user-pci' not in out:
        skip(f'IOVD_QEMU={q} has no vfio-user-pci device (QEMU >= 10.1 '
             'needed)')
    return q


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Qmp:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.f = self.sock.makefile('rwb')
        json.loads(self.f.readline())
        self.cmd('qmp_capabilities')

    def cmd(self, command, **args):
        msg = {'execute': command}
        if args:
            msg['arguments'] = args
        self.f.write(json.dumps(msg).encode() + b'\r\n')
        self.f.flush()
        while True:
            r = json.loads(self.f.readline())
            if 'event' in r:
                continue
            if 'error' in r:
                raise RuntimeError(f"{command}: {r['error']['desc']}")
            return r['return']


class Sink(threading.Thread):
    """Accepts connections on a loopback port; records what each sent."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(('127.0.0.1', port))
        self.srv.listen(8)
        self.received = []

    def run(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            data = b''
            while True:
                b = c.recv(65536)
                if not b:
                    break
                data += b
            c.close()
            self.received.append(data)


def confined(p):
    """iovd @p runs under its seccomp filter (the guest runs against the
    daemon as shipped)."""
    with open(f'/proc/{p.pid}/status') as f:
        seccomp = [ln.split()[1] for ln in f if ln.startswith('Seccomp:')]
    if seccomp != ['2']:
        print(f'check-guest: iovd {p.pid} runs without its seccomp filter '
              f'(Seccomp: {seccomp})', file=sys.stderr)
    return seccomp == ['2']


def start_iovd(argv, log_path):
    """Starts iovd and waits for -ready-fd; None when it never got ready."""
    rfd, wfd = os.pipe()
    log = open(log_path, 'w')
    p = subprocess.Popen(argv + ['-ready-fd', str(wfd)], pass_fds=[wfd],
                         stderr=log, stdout=log)
    log.close()
    os.close(wfd)
    ready, _, _ = select.select([rfd], [], [], 30)
    ok = bool(ready) and bool(os.read(rfd, 1))
    os.close(rfd)
    if not ok:
        print(f'check-guest: iovd did not become ready ({log_path})',
              file=sys.stderr)
        p.kill()
        return None
    return p


# ---- live upgrade (IOVD_GUEST_UPGRADE=N) ----
#
# The virtio-net is on a tap in a network namespace of its own, where iovd
# runs (it opens the tap there) and the host's end of the TCP transfers
# listens: user networking (libslirp) moves its leases but cannot carry a
# connection across an upgrade.  The e1000 is on user networking: its
# lease must survive.

UP_NS_HOST, UP_NS_GUEST = '10.9.0.1', '10.9.0.2'
CLONE_NEWNET = 0x40000000


def netns_setup():
    """A namespace with the tap, or None (and why) when this cannot."""
    if os.geteuid() != 0 or not shutil.which('ip'):
        return None, 'a tap in a network namespace needs root and ip(8)'
    ns = f'iovdg{os.getpid()}'
    script = ('ip link set lo up && ip tuntap add dev gtap0 mode tap '
              f'vnet_hdr && ip addr add {UP_NS_HOST}/24 dev gtap0 && '
              'ip link set gtap0 up')
    r = subprocess.run(['ip', 'netns', 'add', ns], capture_output=True,
                       text=True)
    if r.returncode == 0:
        atexit.register(subprocess.run, ['ip', 'netns', 'del', ns])
        r = subprocess.run(['ip', 'netns', 'exec', ns, 'sh', '-c', script],
                           capture_output=True, text=True)
    if r.returncode != 0:
        return None, f'network namespace: {r.stderr.strip()}'
    return ns, ''


class NsStream(threading.Thread):
    """One TCP transfer with the guest, served in namespace @ns on @port:
    slowly while the upgrades run (so that they all happen during it),
    then at full speed once @done is set.  Sends (@send) or receives;
    md5 and length of what went through."""

    def __init__(self, ns, port, send, done):
        super().__init__(daemon=True)
        self.ns, self.port, self.send, self.done = ns, port, send, done
        self.md5, self.len, self.error = hashlib.md5(), 0, None
        self.listening = threading.Event()

    def run(self):
        try:
            self.serve()
        except Exception as e:  # noqa: BLE001 - reported as a failure
            self.error = str(e)
        self.listening.set()

    def serve(self):
        libc = ctypes.CDLL('libc.so.6', use_errno=True)
        with open(f'/run/netns/{self.ns}') as f:
            # setns() moves this thread only: the socket is the namespace's
            if libc.setns(f.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), 'setns')
        srv = socket.socket()
        srv.bind((UP_NS_HOST, self.port))
        srv.listen(1)
        self.listening.set()
        srv.settimeout(BOOT_TIMEOUT)
        c, _ = srv.accept()
        srv.close()
        c.settimeout(120)
        tail = 1 << 20          # sent at full speed after the upgrades
        while True:
            slow = not self.done.is_set()
            if self.send:
                b = random.randbytes(16384)
                if not slow:
                    tail -= len(b)
                    if tail < 0:
                        break
                c.sendall(b)
            else:
                b = c.recv(16384)
                if not b:
                    break
            self.md5.update(b)
            self.len += len(b)
            if slow:
                time.sleep(0.01)
        c.close()

    def result(self):
        return f'md5={self.md5.hexdigest()},len={self.len}'


def upgrade_iovd(state, n, qmp_path):
    """Upgrades the daemon in @state n times, 2 s apart: each time a new
    iovd started with -incoming, QMP upgrade, the old one exits 0, the
    new one says it completed.  Returns the monitor of the last."""
    qmp = None
    for k in range(1, n + 1):
        time.sleep(2)
        old = state['iovd']
        uri = f"unix:{state['work']}/upgrade{k}.sock"
        new = start_iovd(state['prefix'] + state['daemon'] +
                         ['-incoming', uri],
                         os.path.join(state['work'], f'iovd-up{k}.log'))
        if not new:
            check('upgrade', f'#{k}', False, 'new iovd did not start')
            return None
        state['iovds'].append(new)
        t0 = time.time()
        try:
            Qmp(qmp_path).cmd('upgrade', uri=uri)
            rc = old.wait(timeout=30)
            qmp = Qmp(qmp_path)
            up = qmp.cmd('query-status').get('upgrade', {})
        except Exception as e:  # noqa: BLE001 - reported as a failure
            check('upgrade', f'#{k}', False, str(e))
            return None
        state['iovd'] = new
        state['downtime'].append(up.get('downtime-us', -1))
        check('upgrade', f'#{k}', rc == 0 and confined(new) and
              up.get('state') == 'completed' and
              up.get('from-pid') == old.pid,
              f"old exit {rc}, {up}, took {time.time() - t0:.2f} s")
    return qmp


def main():
    qemu = find_qemu()
    if not os.path.exists(IOVD):
        print(f'check-guest: {IOVD} not built', file=sys.stderr)
        return 1
    work = tempfile.mkdtemp(prefix='iovd-guest-')
    guest_dir = os.path.join(ROOT, 'build', 'guest')
    subprocess.run([os.path.join(HERE, 'mkguest.sh'), guest_dir], check=True)

    types = subprocess.run([IOVD, '-device', 'help'], capture_output=True,
                           text=True).stdout.split()
    helptext = subprocess.run([IOVD, '--help'], capture_output=True,
                              text=True).stdout
    have_qmp = '-qmp' in helptext
    args = [IOVD, '-d', 'guest_errors']
    # extra daemon arguments, e.g. IOVD_GUEST_IOVD_ARGS='-trace e1000_*'
    args += os.environ.get('IOVD_GUEST_IOVD_ARGS', '').split()
    # IOVD_GUEST_IOTHREAD=N: every device on one of N iothreads, in turn
    # (IOVD_GUEST_POLL_MAX_NS sets their busy polling, 0 = none).
    nthreads = int(os.environ.get('IOVD_GUEST_IOTHREAD', '0') or 0)
    poll = os.environ.get('IOVD_GUEST_POLL_MAX_NS')
    for i in range(nthreads):
        args += ['-object', f'iothread,id=gio{i}' +
                 (f',poll-max-ns={poll}' if poll else '')]
    next_io = [0]
    polling = nthreads and poll != '0'
    if polling:
        # the first doorbell taken from memory / buffers found by polling
        args += ['-trace', 'nvme_db_mem_first', '-trace', 'virtio_poll_first']

    def on_io():
        if not nthreads:
            return ''
        next_io[0] += 1
        return f',iothread=gio{(next_io[0] - 1) % nthreads}'
    if have_qmp:
        args += ['-qmp', f'unix:{work}/qmp.sock,server=on,wait=off']
    socks = []
    disks = {}          # guest-visible serial -> (image, node)
    nics = {}           # mac -> (device id, hostfwd port)
    expect = [('1b36', '0005', None)]

    def disk(node):
        img = os.path.join(work, node + '.img')
        with open(img, 'wb') as f:
            f.truncate(DISK_MB << 20)
        args.extend(['-blockdev',
                     f'driver=file,node-name={node},filename={img}'])
        return img

    # NBD needs nbdkit and a build with libnbd (-blockdev driver=nbd).
    nbd_ok = shutil.which('nbdkit') and 'nbd' in subprocess.run(
        [IOVD, '-blockdev', 'help'], capture_output=True, text=True).stdout
    nbd_nodes, servers = set(), []
    atexit.register(lambda: [p.kill() for p in servers])

    def nbd_disk(node):
        img = os.path.join(work, node + '.img')
        with open(img, 'wb') as f:
            f.truncate(DISK_MB << 20)
        sock = os.path.join(work, node + '.sock')
        servers.append(subprocess.Popen(['nbdkit', '-f', '-U', sock,
                                         'file', img]))
        while not os.path.exists(sock):
            time.sleep(0.05)
        args.extend(['-blockdev', f'driver=nbd,node-name={node},'
                     f'server.type=unix,server.path={sock}'])
        nbd_nodes.add(node)
        return img

    args += ['-device', f'pci-testdev,id=t0,socket={work}/t0.sock{on_io()}']
    socks.append(f'{work}/t0.sock')
    if 'nvme' in types:
        i1, i2 = disk('nvd1'), disk('nvd2')
        args += ['-device', f'nvme,id=nvme0,drive=nvd1,serial=IOVDNVME1,'
                 f'socket={work}/nvme0.sock{on_io()}',
                 '-device', 'nvme-ns,bus=nvme0,drive=nvd2,nsid=2']
        socks.append(f'{work}/nvme0.sock')
        disks['IOVDNVME1-ns1'] = (i1, 'nvd1')
        disks['IOVDNVME1-ns2'] = (i2, 'nvd2')
        expect.append(('1b36', '0010', 'nvme'))
        # Namespace 3 on an NBD export (nbdkit serving an image file).
        if nbd_ok:
            i3 = nbd_disk('nbd1')
            args += ['-device', 'nvme-ns,bus=nvme0,drive=nbd1,nsid=3']
            disks['IOVDNVME1-ns3'] = (i3, 'nbd1')
    # One NVM subsystem, two controllers in this guest, a shared namespace:
    # Linux's native multipath makes one disk of it with two paths.
    multipath = ('nvme-subsys' in types and
                 not os.environ.get('IOVD_GUEST_UPGRADE'))
    if multipath:
        i = disk('mpd1')
        args += ['-device', 'nvme-subsys,id=ss0',
                 '-device', 'nvme-ns,subsys=ss0,nsid=1,drive=mpd1,shared=on']
        for c in (1, 2):
            args += ['-device', f'nvme,id=nvme{c},subsys=ss0,serial=IOVDMP1,'
                     f'socket={work}/nvme{c}.sock{on_io()}']
            socks.append(f'{work}/nvme{c}.sock')
        disks['IOVDMP1-ns1'] = (i, 'mpd1')
    if 'virtio-blk-pci' in types:
        i = disk('vbd1')
        args += ['-device', f'virtio-blk-pci,id=vb0,drive=vbd1,'
                 f'serial=IOVDVBLK1,socket={work}/vb0.sock{on_io()}']
        socks.append(f'{work}/vb0.sock')
        disks['IOVDVBLK1'] = (i, 'vbd1')
        expect.append(('1af4', '1042', 'virtio-pci'))
    nic_models = [m for m in ('virtio-net-pci', 'e1000') if m in types]
    upgrades = int(os.environ.get('IOVD_GUEST_UPGRADE', '0') or 0)
    ns = None
    if upgrades:
        ns, why = netns_setup()
        if not ns:
            skip(f'live upgrade: {why}')
        mac = '52:54:00:12:34:10'
        args += ['-netdev', 'tap,id=tn0,ifname=gtap0',
                 '-device', f'virtio-net-pci,id=nic0,netdev=tn0,mac={mac},'
                 f'socket={work}/nic0.sock{on_io()}']
        socks.append(f'{work}/nic0.sock')
        expect.append(('1af4', '1041', 'virtio-pci'))
        if 'e1000' in types:
            args += ['-netdev', 'user,id=un1', '-device',
                     f'e1000,id=nic1,netdev=un1,mac=52:54:00:12:34:11,'
                     f'socket={work}/nic1.sock{on_io()}']
            socks.append(f'{work}/nic1.sock')
            expect.append(('8086', '100e', 'e1000'))
        nic_models = []
    for n, model in enumerate(nic_models):
        mac = f'52:54:00:12:34:{0x10 + n:02x}'
        fwd = free_port()
        args += ['-netdev', f'user,id=un{n},hostfwd=tcp:127.0.0.1:{fwd}-:5000',
                 '-device', f'{model},id=nic{n},netdev=un{n},mac={mac},'
                 f'socket={work}/nic{n}.sock{on_io()}']
        socks.append(f'{work}/nic{n}.sock')
        nics[mac] = (f'nic{n}', fwd)
        expect.append(('1af4', '1041', 'virtio-pci') if model ==
                      'virtio-net-pci' else ('8086', '100e', 'e1000'))

    # ip netns exec sets the namespace, then execs iovd (same pid).
    prefix = ['ip', 'netns', 'exec', ns] if ns else []
    iovd = start_iovd(prefix + args, os.path.join(work, 'iovd.log'))
    if not iovd or not confined(iovd):
        return 1
    print('check-guest: iovd confined (seccomp filter on)', flush=True)
    # What an upgrade starts: the daemon's own options, not the devices.
    daemon = args[:3] + os.environ.get('IOVD_GUEST_IOVD_ARGS', '').split()
    if polling:
        daemon += ['-trace', 'nvme_db_mem_first',
                   '-trace', 'virtio_poll_first']
    up = {'iovd': iovd, 'iovds': [iovd], 'work': work, 'prefix': prefix,
          'daemon': daemon, 'downtime': []}
    up_done = threading.Event()
    streams = {}
    if upgrades:
        streams = {'upgrade-tcp-in': NsStream(ns, 5001, True, up_done),
                   'upgrade-tcp-out': NsStream(ns, 5002, False, up_done)}
        for t in streams.values():
            t.start()
            t.listening.wait()
    qmp = Qmp(f'{work}/qmp.sock') if have_qmp else None

    out_port = free_port()
    sink = Sink(out_port)
    sink.start()
    # /dev/kvm may exist without working (nested sandboxes): TCG unless
    # the caller says KVM works.
    accel = os.environ.get('IOVD_GUEST_ACCEL', 'tcg')
    tests = ['enum']
    if os.environ.get('IOVD_GUEST_TESTS'):
        tests = os.environ['IOVD_GUEST_TESTS'].split(',')
    elif disks:
        tests += ['disk', 'resize'] + (['multipath'] if multipath else [])
    if nics and not os.environ.get('IOVD_GUEST_TESTS'):
        tests.append('net')
    if upgrades:
        tests = ['enum', 'upgrade']
    # IOVD_GUEST_SHARED=0: private guest RAM, so every DMA goes through
    # DMA_READ/DMA_WRITE messages (the slow path, exercised for real).
    share = os.environ.get('IOVD_GUEST_SHARED', '1') != '0'
    cmd = [qemu, '-machine', f'q35,memory-backend=mem,accel={accel}',
           '-object', 'memory-backend-memfd,id=mem,size=1G,share=on'
           if share else 'memory-backend-ram,id=mem,size=1G',
           '-m', '1G', '-smp', '2', '-cpu', 'max', '-nodefaults',
           '-display', 'none', '-serial', 'stdio', '-no-reboot',
           '-kernel', os.path.join(guest_dir, 'vmlinuz'),
           '-initrd', os.path.join(guest_dir, 'initramfs.cpio.gz'),
           '-append', f"console=ttyS0 panic=-1 iovd.tests={','.join(tests)} "
                      f"iovd.outport={out_port} iovd.fio_secs=10 "
                      f"iovd.upgrades={upgrades} iovd.hip={UP_NS_HOST} "
                      f"iovd.gip={UP_NS_GUEST}"]
    for s in socks:
        cmd += ['-device', json.dumps({'driver': 'vfio-user-pci',
                                       'socket': {'type': 'unix',
                                                  'path': s}})]
    print('check-guest: ' + ' '.join(cmd), flush=True)
    vm = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, bufsize=1)
    console = open(os.path.join(work, 'console.log'), 'w')
    devs, bars, guest_results, sent = [], [], [], {}
    deadline = time.time() + BOOT_TIMEOUT
    done = False
    # A thread reads the console: select() on the pipe would not see lines
    # already in the reader's buffer, and the guest waits for our answer
    # to the last one (an IOVD-WAIT line answered a minute late).
    lines = queue.Queue()

    def read_console():
        for ln in vm.stdout:
            lines.put(ln)
        lines.put(None)
    threading.Thread(target=read_console, daemon=True).start()
    while time.time() < deadline:
        try:
            line = lines.get(timeout=5)
        except queue.Empty:
            continue
        if line is None:
            break
        console.write(line)
        console.flush()
        w = line.split()
        if not w:
            continue
        if w[0] == 'IOVD-DEV':
            devs.append(w[1:])
        elif w[0] == 'IOVD-BAR':
            bars.append(w[1:])
        elif w[0] == 'IOVD-RESULT':
            guest_results.append(w[1:])
        elif w[0] == 'IOVD-WAIT':
            what, obj = w[1], w[2]
            t0 = time.time()
            try:
                if not qmp and what in ('link-down', 'link-up', 'resize'):
                    raise RuntimeError('no monitor in this build')
                if what == 'upgrade':
                    new_qmp = upgrade_iovd(up, int(w[3]),
                                           f'{work}/qmp.sock')
                    qmp = new_qmp or qmp
                    up_done.set()
                elif what == 'tcp-in':
                    data = random.randbytes(1 << 20)
                    sent[obj] = hashlib.md5(data).hexdigest()
                    c = socket.create_connection(('127.0.0.1',
                                                  nics[obj][1]), 30)
                    c.sendall(data)
                    c.close()
                elif what in ('link-down', 'link-up'):
                    qmp.cmd('set_link', name=nics[obj][0],
                            up=what == 'link-up')
                elif what == 'resize':
                    img, node = disks[obj]
                    if node in nbd_nodes:
                        # NBD: the export grows on the server's side
                        os.truncate(img, (DISK_MB + 16) << 20)
                    qmp.cmd('block_resize', **{'node-name': node,
                                               'size': (DISK_MB + 16) << 20})
            except Exception as e:  # noqa: BLE001 - reported as a failure
                check('host-action', f'{what}:{obj}', False, str(e))
            print(f'check-guest: host {what} {obj} took '
                  f'{time.time() - t0:.1f} s', flush=True)
        elif w[0] == 'IOVD-DONE':
            done = True
            if not qmp:
                continue
            # monitor checks while the daemon still serves
            pci = qmp.cmd('query-pci')
            ids = {d.get('qdev_id') for b in pci for d in b['devices']}
            check('monitor', 'query-pci', len(ids) == len(socks),
                  f'{sorted(i for i in ids if i)}')
            for st in qmp.cmd('query-blockstats'):
                node = st.get('node-name')
                wr = st['stats']['wr_operations']
                check('monitor', f'blockstats:{node}', wr > 0, f'wr={wr}')
    try:
        rc = vm.wait(timeout=60)
    except subprocess.TimeoutExpired:
        vm.kill()
        rc = -1
    check('guest', 'completed', done, f'qemu exit {rc}')
    check('guest', 'shutdown', rc == 0, f'qemu exit {rc}')

    for want in expect:
        found = [d for d in devs if d[1] == '0x' + want[0] and
                 d[2] == '0x' + want[1]]
        ok = bool(found) and (want[2] is None or found[0][4] == want[2])
        check('enum', f'{want[0]}:{want[1]}', ok,
              ' '.join(found[0]) if found else 'not found')
    # the test device's BARs as the guest sees them: 4K, 4K, 64K
    tdev = [d[0] for d in devs if d[1] == '0x1b36' and d[2] == '0x0005']
    if tdev:
        sizes = {int(b[1]): int(b[3], 16) - int(b[2], 16) + 1
                 for b in bars if b[0] == tdev[0]}
        check('enum', 'testdev-bars', sizes.get(0) == 0x1000 and
              sizes.get(1) == 0x1000 and sizes.get(2) == 0x10000,
              f'{sizes}')
    outs = list(sink.received)
    for name, obj, status, *detail in guest_results:
        d = detail[0] if detail else ''
        ok = status == 'PASS'
        if ok and name == 'disk' and obj in disks:
            kv = dict(x.split('=') for x in d.split(','))
            with open(disks[obj][0], 'rb') as f:
                f.seek(int(kv['offset']))
                host = hashlib.md5(f.read(int(kv['len']))).hexdigest()
            ok = host == kv['md5']
            d += f' host={host}'
        if ok and name == 'tcp-in':
            got = dict(x.split('=') for x in d.split(','))['md5']
            ok = sent.get(obj) == got
        if name in streams:
            t = streams[name]
            t.join(60)
            ok = ok and not t.error and d == t.result()
            d += f' host={t.error or t.result()}'
        if ok and name == 'tcp-out':
            got = dict(x.split('=') for x in d.split(','))['md5']
            ok = any(hashlib.md5(o).hexdigest() == got for o in outs)
        check(name, obj, ok, d)

    if multipath:
        # one disk through two controllers, and the disk tests on it
        mp = [r for r in guest_results if r[0] == 'multipath']
        check('multipath', 'IOVDMP1-ns1', any(r[1] == 'IOVDMP1-ns1' and
                                              r[2] == 'PASS' for r in mp),
              '; '.join(' '.join(r[3:]) for r in mp) or 'not reported')
        check('multipath', 'disk-tested', any(
            r[0] == 'disk' and r[1] == 'IOVDMP1-ns1' for r in guest_results))
    if qmp:
        qmp.sock.close()
    iovd = up['iovd']
    iovd.terminate()
    try:
        irc = iovd.wait(timeout=30)
    except subprocess.TimeoutExpired:
        iovd.kill()
        irc = -1
    for srv in servers:
        srv.terminate()
        srv.wait()
    # every daemon's log: the first and those that took over
    log = ''.join(open(os.path.join(work, f)).read()
                  for f in sorted(os.listdir(work)) if f.startswith('iovd'))
    if upgrades:
        check('upgrade', 'count', len(up['downtime']) == upgrades,
              f"{len(up['downtime'])} of {upgrades}, downtime-us "
              f"{up['downtime']}")
    errs = [l for l in log.splitlines() if '_err_' in l]
    check('iovd', 'exit', irc == 0, f'exit {irc}')
    if polling:
        # QEMU mapped the doorbell page and the guest rang doorbells there;
        # with shared RAM the virtio rings were polled.
        if 'nvme' in types:
            check('polling', 'nvme0-doorbells-in-memory',
                  'nvme_db_mem_first nvme0' in log, 'trace nvme_db_mem_first')
        if 'virtio-blk-pci' in types and share:
            check('polling', 'vb0-rings-polled',
                  'virtio_poll_first vb0' in log, 'trace virtio_poll_first')
    check('iovd', 'guest-errors', not errs, '; '.join(errs[:5]))

    failed = sum(1 for r in results if not r[2])
    print(f'{len(results) - failed} passed, {failed} failed')
    if failed or os.environ.get('IOVD_GUEST_KEEP'):
        print(f'check-guest: logs in {work}')
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
