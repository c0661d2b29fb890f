/*
 * net-e1000-bench: frames per second through two e1000 devices wired back
 * to back by -netdev stream in one daemon, driven by the libqos e1000
 * driver (transmit on one, receive on the other, one frame in flight per
 * ring slot).
 *
 *     net-e1000-bench [--iovd PATH] [SECONDS]
 *
 * Prints "net-e1000-bench: pps64=... gbps1514=..." (64-byte and 1514-byte
 * frames, without the CRC).
 */
#include "util/osdep.h"
#include "hw/net/e1000-regs.h"
#include "tests/qtest/libqos/e1000.h"
#include "tests/qtest/libqos/guest-mem.h"
#include "tests/qtest/libqos/iovd-proc.h"
#include "tests/qtest/libqos/pci.h"
#include "tests/qtest/libqos/vfu-client.h"

typedef struct Nic {
    VfuClient *c;
    QPCIDevice *pdev;
    GuestMem *gm;
    QE1000 *e;
} Nic;

static void nic_open(Nic *n, IovdProc *p, const char *name)
{
    g_autofree char *sock = iovd_proc_path(p, name);

    n->c = vfu_client_open(sock);
    n->pdev = qpci_device_new(n->c);
    n->gm = guest_mem_new(GUEST_MEM_DEFAULT_BASE, GUEST_MEM_DEFAULT_SIZE);
    guest_mem_map_checked(n->gm, n->c, true);
    n->e = qe1000_new(n->pdev, n->gm);
    qe1000_init(n->e, &(QE1000Config){ .rx_ring = 256, .tx_ring = 256 });
}

/* Send frames of @len for @secs seconds; returns frames received. */
static double run(Nic *tx, Nic *rx, size_t len, double secs)
{
    uint8_t frame[1514], buf[16384];
    int64_t end = clock_ns() + (int64_t)(secs * 1e9), t0 = clock_ns();
    uint64_t sent = 0, got = 0;
    QE1000RxInfo info;

    memset(frame, 0xaa, sizeof(frame));
    memcpy(frame, rx->e->mac, 6);                /* to the receiver */
    memcpy(frame + 6, tx->e->mac, 6);
    frame[12] = 0x88;                            /* local experimental */
    frame[13] = 0xb5;
    while (clock_ns() < end) {
        /* A burst, then take what arrived: keeps both rings moving. */
        for (int i = 0; i < 32; i++) {
            qe1000_tx(tx->e, frame, len, NULL);
            sent++;
        }
        while (got < sent && qe1000_rx(rx->e, buf, sizeof(buf), &info,
                                       got + 32 < sent ? 5 : 200) > 0) {
            got++;
        }
    }
    return got / ((clock_ns() - t0) / 1e9);
}

int main(int argc, char **argv)
{
    double secs = 2;
    g_autoptr(IovdProc) p = NULL;
    g_autofree char *link = NULL;
    Nic a, b;
    double pps64, pps1514;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--iovd") && i + 1 < argc) {
            setenv("IOVD_BIN", argv[++i], 1);
        } else {
            secs = g_ascii_strtod(argv[i], NULL);
        }
    }
    p = iovd_proc_new();
    link = iovd_proc_path(p, "link.sock");
    iovd_proc_add_args(p, "-netdev", NULL);
    iovd_proc_add_argf(p, "stream,id=s0,server=on,addr.type=unix,"
                       "addr.path=%s", link);
    iovd_proc_add_args(p, "-netdev", NULL);
    iovd_proc_add_argf(p, "stream,id=s1,server=off,addr.type=unix,"
                       "addr.path=%s,reconnect-ms=20", link);
    for (int i = 0; i < 2; i++) {
        g_autofree char *sock = g_strdup_printf("e%d.sock", i);
        g_autofree char *path = iovd_proc_path(p, sock);

        iovd_proc_add_args(p, "-device", NULL);
        iovd_proc_add_argf(p, "e1000,id=e%d,netdev=s%d,"
                           "mac=52:54:00:00:00:%02x,socket=%s", i, i, i + 1,
                           path);
    }
    iovd_proc_start(p);
    nic_open(&a, p, "e0.sock");
    nic_open(&b, p, "e1.sock");
    qe1000_wait_link(a.e, true, 5000);
    qe1000_wait_link(b.e, true, 5000);
    pps64 = run(&a, &b, 60, secs);
    pps1514 = run(&a, &b, 1514, secs);
    printf("net-e1000-bench: pps64=%.0f pps1514=%.0f gbps1514=%.3f\n",
           pps64, pps1514, pps1514 * 1514 * 8 / 1e9);
    iovd_proc_stop(p);
    return 0;
}
