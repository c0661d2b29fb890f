/*
 * virtio-net throughput: two virtio-net-pci devices of one iovd, wired
 * back to back by a -netdev stream pair (a UNIX socket).  This program
 * plays both guests: it keeps vn0's transmit ring full and drains vn1's
 * receive ring, busy-polling (interrupts suppressed, as a loaded Linux
 * guest runs under NAPI), and counts what arrives.
 *
 *     net-virtio-bench [--iovd PATH] [--seconds S]
 *
 * One result line:
 *     net-virtio-bench: pps64=N gbps1500=G (...)
 * pps64: 64-byte frames per second; gbps1500: Gbit/s of 1514-byte frames
 * (MTU 1500 plus the Ethernet header).  Without --iovd the daemon is
 * $IOVD_BIN or build/iovd.
 */
#include "util/osdep.h"

#include <getopt.h>

#include "tests/qtest/libqos/iovd-proc.h"
#include "tests/qtest/libqos/vfu-client.h"
#include "tests/qtest/libqos/guest-mem.h"
#include "tests/qtest/libqos/pci.h"
#include "tests/qtest/libqos/virtio.h"
#include "tests/qtest/libqos/virtio-net.h"

#define BENCH_GM_SIZE   (32ULL << 20)
#define BENCH_WARMUP_US 200000

typedef struct BenchNic {
    VfuClient *c;
    QPCIDevice *pdev;
    GuestMem *gm;
    QVirtioNet *n;
} BenchNic;

static void nic_open(BenchNic *b, IovdProc *proc, const char *name)
{
    g_autofree char *sock = iovd_proc_path(proc, name);

    b->c = vfu_client_open(sock);
    b->pdev = qpci_device_new(b->c);
    b->gm = guest_mem_new(GUEST_MEM_DEFAULT_BASE, BENCH_GM_SIZE);
    guest_mem_map_checked(b->gm, b->c, true);
    b->n = qvnet_new(b->pdev, b->gm);
    qvnet_init(b->n, &(QVirtioNetInit){ .features = QVNET_LINUX_FEATURES });
    /* Polled: no interrupts wanted on the data queues. */
    qvirtqueue_set_interrupts(b->n->rx[0], false);
    qvirtqueue_set_interrupts(b->n->tx[0], false);
}

static void nic_close(BenchNic *b)
{
    qvnet_free(b->n);
    qpci_device_free(b->pdev);
    vfu_client_free(b->c);
    guest_mem_free(b->gm);
}

static void wait_link(BenchNic *b)
{
    int64_t deadline = qos_deadline(QOS_TIMEOUT_MS);

    while (!(qvnet_config_status(b->n) & VIRTIO_NET_S_LINK_UP)) {
        qos_assert(qos_remaining_ms(deadline), "link stays down");
        vfu_service(b->c, 5);
    }
}

/* Frames per second of @len-byte frames from @tx to @rx; bytes too. */
static double run(BenchNic *tx, BenchNic *rx, size_t len, double seconds,
                  double *bytes_per_s)
{
    static const uint8_t dst[6] = { 0x52, 0x54, 0x00, 0xbe, 0xec, 0x02 };
    static const uint8_t src[6] = { 0x52, 0x54, 0x00, 0xbe, 0xec, 0x01 };
    uint8_t frame[2048];
    int64_t start = 0, end = 0, t0 = g_get_monotonic_time();
    int64_t warm = t0 + BENCH_WARMUP_US;
    uint64_t frames = 0, bytes = 0, f0 = 0, b0 = 0;
    bool measuring = false;

    memcpy(frame, dst, 6);
    memcpy(frame + 6, src, 6);
    frame[12] = 0x88;
    frame[13] = 0xb5;
    for (size_t i = 14; i < len; i++) {
        frame[i] = (uint8_t)i;
    }
    for (;;) {
        int64_t now = g_get_monotonic_time();
        unsigned added = 0;

        if (!measuring && now >= warm) {
            measuring = true;
            start = now;
            f0 = frames;
            b0 = bytes;
        } else if (measuring && now >= start + (int64_t)(seconds * 1e6)) {
            end = now;
            break;
        }
        while (added < 64 && qvnet_tx_add(tx->n, 0, frame, len, NULL,
                                          1) >= 0) {
            added++;
        }
        if (added) {
            qvnet_tx_kick(tx->n, 0);
        }
        frames += qvnet_rx_discard(rx->n, 0, 256, &bytes);
    }
    *bytes_per_s = (bytes - b0) / ((end - start) / 1e6);
    return (frames - f0) / ((end - start) / 1e6);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "iovd", required_argument, NULL, 'i' },
        { "seconds", required_argument, NULL, 's' },
        { NULL, 0, NULL, 0 },
    };
    g_autoptr(IovdProc) proc = NULL;
    g_autofree char *link = NULL, *d0 = NULL, *d1 = NULL;
    double seconds = 2.0, pps64, pps1500, bps64, bps1500;
    BenchNic a, b;
    int c;

    while ((c = getopt_long(argc, argv, "i:s:", opts, NULL)) != -1) {
        switch (c) {
        case 'i':
            setenv("IOVD_BIN", optarg, 1);
            break;
        case 's':
            seconds = g_ascii_strtod(optarg, NULL);
            break;
        default:
            fprintf(stderr, "usage: %s [--iovd PATH] [--seconds S]\n",
                    argv[0]);
            return 2;
        }
    }
    if (seconds <= 0) {
        seconds = 2.0;
    }
    proc = iovd_proc_new();
    link = iovd_proc_path(proc, "link.sock");
    d0 = iovd_proc_path(proc, "vn0.sock");
    d1 = iovd_proc_path(proc, "vn1.sock");
    iovd_proc_add_args(proc, "-netdev", NULL);
    iovd_proc_add_argf(proc, "stream,id=s0,server=on,addr.type=unix,"
                       "addr.path=%s", link);
    iovd_proc_add_args(proc, "-netdev", NULL);
    iovd_proc_add_argf(proc, "stream,id=s1,server=off,addr.type=unix,"
                       "addr.path=%s,reconnect-ms=10", link);
    iovd_proc_add_args(proc, "-device", NULL);
    iovd_proc_add_argf(proc, "virtio-net-pci,id=vn0,netdev=s0,"
                       "mac=52:54:00:be:ec:01,socket=%s", d0);
    iovd_proc_add_args(proc, "-device", NULL);
    iovd_proc_add_argf(proc, "virtio-net-pci,id=vn1,netdev=s1,"
                       "mac=52:54:00:be:ec:02,socket=%s", d1);
    iovd_proc_start(proc);
    nic_open(&a, proc, "vn0.sock");
    nic_open(&b, proc, "vn1.sock");
    wait_link(&a);
    wait_link(&b);

    pps64 = run(&a, &b, 64, seconds, &bps64);
    pps1500 = run(&a, &b, 1514, seconds, &bps1500);
    printf("net-virtio-bench: pps64=%.0f gbps1500=%.2f (vn0 -> stream -> "
           "vn1, one queue pair, polled; 64-byte: %.2f Gbit/s; 1514-byte: "
           "%.0f frames/s; %.1f s each)\n", pps64, bps1500 * 8 / 1e9,
           bps64 * 8 / 1e9, pps1500, seconds);
    fflush(stdout);
    nic_close(&a);
    nic_close(&b);
    iovd_proc_stop(proc);
    return 0;
}
