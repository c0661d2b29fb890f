/*
 * net-e1000-bench: frames per second between an e1000 and a virtio-net
 * device wired back to back by -netdev stream in one daemon, each driven
 * by its libqos driver: e1000 -> virtio-net, then virtio-net -> e1000.
 *
 *     net-e1000-bench [--iovd PATH] [SECONDS]
 *
 * Prints "net-e1000-bench: e1000->virtio pps64=... gbps1514=...
 * virtio->e1000 pps64=... gbps1514=..." (frame sizes without the CRC).
 */
#include "util/osdep.h"
#include "hw/net/e1000-regs.h"
#include "hw/virtio/virtio-net-spec.h"
#include "tests/qtest/libqos/e1000.h"
#include "tests/qtest/libqos/guest-mem.h"
#include "tests/qtest/libqos/iovd-proc.h"
#include "tests/qtest/libqos/pci.h"
#include "tests/qtest/libqos/vfu-client.h"
#include "tests/qtest/libqos/virtio-net.h"

#define MAC_E1000  "52:54:00:00:00:01"
#define MAC_VIRTIO "52:54:00:00:00:02"

typedef struct Dev {
    VfuClient *c;
    QPCIDevice *pdev;
    GuestMem *gm;
} Dev;

static void dev_open(Dev *d, IovdProc *p, const char *name)
{
    g_autofree char *sock = iovd_proc_path(p, name);

    d->c = vfu_client_open(sock);
    d->pdev = qpci_device_new(d->c);
    d->gm = guest_mem_new(GUEST_MEM_DEFAULT_BASE, 64ULL << 20);
    guest_mem_map_checked(d->gm, d->c, true);
}

static void make_frame(uint8_t *f, size_t len, const uint8_t *dst,
                       const uint8_t *src)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    f[12] = 0x88;                   /* local experimental ethertype */
    f[13] = 0xb5;
    for (size_t i = 14; i < len; i++) {
        f[i] = (uint8_t)i;
    }
}

static double e1000_to_virtio(QE1000 *e, QVirtioNet *v, size_t len,
                              double secs)
{
    static const uint8_t vmac[6] = { 0x52, 0x54, 0, 0, 0, 2 };
    uint8_t frame[1514];
    uint64_t got = 0, bytes = 0;
    int64_t t0 = clock_ns(), end = t0 + (int64_t)(secs * 1e9);

    make_frame(frame, len, vmac, e->mac);
    while (clock_ns() < end) {
        for (int i = 0; i < 32; i++) {
            qe1000_tx(e, frame, len, NULL);
        }
        got += qvnet_rx_discard(v, 0, 256, &bytes);
    }
    return got / ((clock_ns() - t0) / 1e9);
}

static double virtio_to_e1000(QVirtioNet *v, QE1000 *e, size_t len,
                              double secs)
{
    static const uint8_t vmac[6] = { 0x52, 0x54, 0, 0, 0, 2 };
    uint8_t frame[1514], buf[16384];
    uint64_t got = 0;
    int64_t t0 = clock_ns(), end = t0 + (int64_t)(secs * 1e9);
    QE1000RxInfo info;

    make_frame(frame, len, e->mac, vmac);
    while (clock_ns() < end) {
        unsigned added = 0;

        qvnet_tx_reclaim(v, 0);
        while (added < 32 && qvnet_tx_add(v, 0, frame, len, NULL, 1) >= 0) {
            added++;
        }
        if (added) {
            qvnet_tx_kick(v, 0);
        }
        while (qe1000_rx(e, buf, sizeof(buf), &info, 1) > 0) {
            got++;
        }
    }
    return got / ((clock_ns() - t0) / 1e9);
}

int main(int argc, char **argv)
{
    double secs = 2;
    g_autoptr(IovdProc) p = NULL;
    g_autofree char *link = NULL, *s0 = NULL, *s1 = NULL;
    Dev de, dv;
    QE1000 *e;
    QVirtioNet *v;
    double a64, a1514, b64, b1514;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--iovd") && i + 1 < argc) {
            setenv("IOVD_BIN", argv[++i], 1);
        } else {
            secs = g_ascii_strtod(argv[i], NULL);
        }
    }
    p = iovd_proc_new();
    link = iovd_proc_path(p, "link.sock");
    s0 = iovd_proc_path(p, "e0.sock");
    s1 = iovd_proc_path(p, "v0.sock");
    iovd_proc_add_args(p, "-netdev", NULL);
    iovd_proc_add_argf(p, "stream,id=n0,server=on,addr.type=unix,"
                       "addr.path=%s", link);
    iovd_proc_add_args(p, "-netdev", NULL);
    iovd_proc_add_argf(p, "stream,id=n1,server=off,addr.type=unix,"
                       "addr.path=%s,reconnect-ms=20", link);
    iovd_proc_add_args(p, "-device", NULL);
    iovd_proc_add_argf(p, "e1000,id=e0,netdev=n0,mac=" MAC_E1000
                       ",socket=%s", s0);
    iovd_proc_add_args(p, "-device", NULL);
    iovd_proc_add_argf(p, "virtio-net-pci,id=v0,netdev=n1,mac=" MAC_VIRTIO
                       ",socket=%s", s1);
    iovd_proc_start(p);
    dev_open(&de, p, "e0.sock");
    dev_open(&dv, p, "v0.sock");
    e = qe1000_new(de.pdev, de.gm);
    qe1000_init(e, &(QE1000Config){ .rx_ring = 256, .tx_ring = 256 });
    v = qvnet_new(dv.pdev, dv.gm);
    qvnet_init(v, &(QVirtioNetInit){ .features = QVNET_LINUX_FEATURES });
    qvirtqueue_set_interrupts(v->rx[0], false);
    qvirtqueue_set_interrupts(v->tx[0], false);
    qe1000_wait_link(e, true, 5000);
    a64 = e1000_to_virtio(e, v, 60, secs);
    a1514 = e1000_to_virtio(e, v, 1514, secs);
    b64 = virtio_to_e1000(v, e, 60, secs);
    b1514 = virtio_to_e1000(v, e, 1514, secs);
    printf("net-e1000-bench: e1000->virtio pps64=%.0f gbps1514=%.3f "
           "virtio->e1000 pps64=%.0f gbps1514=%.3f\n", a64,
           a1514 * 1514 * 8 / 1e9, b64, b1514 * 1514 * 8 / 1e9);
    iovd_proc_stop(p);
    return 0;
}
