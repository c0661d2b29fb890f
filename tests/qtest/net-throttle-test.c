/*
 * NIC rate limits (-netdev ...,rx-bps=,rx-pps=,tx-bps=,tx-pps= and
 * netdev-set-throttle): two NICs joined by a stream pair (s0 <-> s1),
 * the harness sending as fast as the sender's ring allows and counting
 * what reaches the other NIC over a window.  TX limits are on s0 (what
 * the sending NIC may send), RX limits on s1 (what the receiving NIC
 * may receive); each holds within 10%, changes at run time, and
 * query-net-throttle shows them holding and what they delayed.  The
 * sender is virtio-net or e1000 (both ways the same net layer limits).
 *
 * The rates (hundreds of frames per second) are far below what the pair
 * does unlimited, so the measurement is of the limit; a warm-up fills
 * the limits' bursts before the window.
 */
#include "util/osdep.h"

#include <check.h>

#include "hw/virtio/virtio-spec.h"
#include "tests/qtest/libqos/qos-check.h"
#include "tests/qtest/libqos/iovd-proc.h"
#include "tests/qtest/libqos/vfu-client.h"
#include "tests/qtest/libqos/guest-mem.h"
#include "tests/qtest/libqos/pci.h"
#include "tests/qtest/libqos/qmp-client.h"
#include "tests/qtest/libqos/virtio-net.h"
#include "tests/qtest/libqos/e1000.h"

#define GM_SIZE         (32ULL << 20)
#define WARMUP_MS       500
#define WINDOW_MS       2000

typedef struct Nic {
    VfuClient *c;
    QPCIDevice *pdev;
    GuestMem *gm;
    QVirtioNet *n;
    QE1000 *e;
} Nic;

static IovdProc *proc;
static QmpClient *qmp;
static Nic tx_nic, rx_nic;      /* the sender (vn0 or e0), vn1 */
static uint8_t frame[1514];

/* @sender: "virtio-net-pci" or "e1000"; @limits for s0 and s1. */
static void start(const char *sender, const char *s0, const char *s1)
{
    g_autofree char *link = NULL, *qmp_path = NULL;
    g_autofree char *sock0 = NULL, *sock1 = NULL;

    qos_check_init();
    proc = iovd_proc_new();
    link = iovd_proc_path(proc, "link.sock");
    sock0 = iovd_proc_path(proc, "nic0.sock");
    sock1 = iovd_proc_path(proc, "nic1.sock");
    iovd_proc_add_args(proc, "-netdev", NULL);
    iovd_proc_add_argf(proc, "stream,id=s0,server=on,addr.type=unix,"
                       "addr.path=%s%s", link, s0);
    iovd_proc_add_args(proc, "-netdev", NULL);
    iovd_proc_add_argf(proc, "stream,id=s1,server=off,addr.type=unix,"
                       "addr.path=%s,reconnect-ms=20%s", link, s1);
    iovd_proc_add_args(proc, "-device", NULL);
    iovd_proc_add_argf(proc, "%s,id=nic0,mac=52:54:00:aa:bb:01,netdev=s0,"
                       "socket=%s", sender, sock0);
    iovd_proc_add_args(proc, "-device", NULL);
    iovd_proc_add_argf(proc, "virtio-net-pci,id=nic1,mac=52:54:00:aa:bb:02,"
                       "netdev=s1,socket=%s", sock1);
    qmp_path = iovd_proc_path(proc, "qmp.sock");
    iovd_proc_add_args(proc, "-qmp", NULL);
    iovd_proc_add_argf(proc, "unix:%s,server=on,wait=off", qmp_path);
    iovd_proc_start(proc);
    qmp = qmp_client_open(qmp_path);

    for (unsigned i = 0; i < 2; i++) {
        Nic *n = i ? &rx_nic : &tx_nic;

        n->c = vfu_client_open(i ? sock1 : sock0);
        n->pdev = qpci_device_new(n->c);
        n->gm = guest_mem_new(GUEST_MEM_DEFAULT_BASE, GM_SIZE);
        guest_mem_map_checked(n->gm, n->c, true);
        if (i == 0 && strcmp(sender, "e1000") == 0) {
            n->e = qe1000_new(n->pdev, n->gm);
            qe1000_init(n->e, NULL);
            ck_assert(qe1000_wait_link(n->e, true, QOS_TIMEOUT_MS));
        } else {
            n->n = qvnet_new(n->pdev, n->gm);
            qvnet_init(n->n, &(QVirtioNetInit) {
                .features = QVNET_LINUX_FEATURES &
                            ~VIRTIO_BIT(VIRTIO_NET_F_MQ),
            });
        }
    }
    /* Broadcast frames: every NIC takes them. */
    memset(frame, 0xff, 6);
    memcpy(frame + 6, "\x52\x54\x00\xaa\xbb\x01", 6);
    frame[12] = 0x88;
    frame[13] = 0xb5;           /* local experimental ethertype */
    /* The stream pair connects (s1 reconnects every 20 ms). */
    g_usleep(200 * 1000);
}

static void setup_vnet(void)
{
    start("virtio-net-pci", ",tx-pps=500", "");
}

static void setup_e1000(void)
{
    start("e1000", ",tx-pps=500", "");
}

static void nic_close(Nic *n)
{
    if (n->n) {
        qvnet_free(n->n);
    }
    if (n->e) {
        qe1000_free(n->e);
    }
    qpci_device_free(n->pdev);
    vfu_client_free(n->c);
    guest_mem_free(n->gm);
    memset(n, 0, sizeof(*n));
}

static void teardown(void)
{
    qmp_client_free(qmp);
    qmp = NULL;
    nic_close(&tx_nic);
    nic_close(&rx_nic);
    iovd_proc_stop(proc);
    iovd_proc_free(proc);
    proc = NULL;
}

/* ---- traffic ---- */

/* Fill the sender's ring with @len-byte frames (as much as fits). */
static void send_some(size_t len)
{
    if (tx_nic.e) {
        /* e1000: a few per pass; qe1000_tx waits for ring room. */
        for (int i = 0; i < 4; i++) {
            qe1000_tx(tx_nic.e, frame, len, NULL);
        }
        return;
    }
    qvnet_tx_reclaim(tx_nic.n, 0);
    while (qvnet_tx_add(tx_nic.n, 0, frame, len, NULL, 0) == 0) {
        continue;
    }
    qvnet_tx_kick(tx_nic.n, 0);
}

/* Send for @ms; frames and bytes the receiver got. */
static double run(size_t len, int ms, uint64_t *frames, uint64_t *bytes)
{
    int64_t t0 = g_get_monotonic_time();
    int64_t end = t0 + ms * 1000LL;

    *frames = *bytes = 0;
    while (g_get_monotonic_time() < end) {
        send_some(len);
        *frames += qvnet_rx_discard(rx_nic.n, 0, 1024, bytes);
        g_usleep(500);
    }
    return (g_get_monotonic_time() - t0) / 1e6;
}

/* Frames (or bytes) per second at the receiver, after a warm-up. */
static void measure(size_t len, double *fps, double *bps)
{
    uint64_t frames, bytes;
    double secs;

    run(len, WARMUP_MS, &frames, &bytes);
    secs = run(len, WINDOW_MS, &frames, &bytes);
    *fps = frames / secs;
    *bps = bytes / secs;
}

static void assert_rate(const char *what, double got, double want)
{
    printf("%s: %.1f per second, configured %.0f\n", what, got, want);
    ck_assert_msg(got > want * 0.9 && got < want * 1.1,
                  "%s: %.1f per second, configured %.0f (10%%)", what, got,
                  want);
}

static void set_throttle(const char *id, const char *limits)
{
    json_object_put(qmp_okf(qmp, "netdev-set-throttle",
                            "{'id': '%s', %s}", id, limits));
}

/* query-net-throttle's entry for @netdev, direction @dir (caller puts
 * the whole answer, in *@all). */
static json_object *dir_info(const char *netdev, const char *dir,
                             json_object **all)
{
    *all = qmp_ok(qmp, "query-net-throttle", NULL);
    for (size_t i = 0; i < json_object_array_length(*all); i++) {
        json_object *o = json_object_array_get_idx(*all, i);

        if (strcmp(qmp_get_str(o, "netdev"), netdev) == 0) {
            return qmp_get(o, dir);
        }
    }
    ck_abort_msg("query-net-throttle has no %s", netdev);
    return NULL;
}

/* ---- tests ---- */

START_TEST(test_tx_limits)
{
    json_object *all, *d;
    double fps, bps;

    /* tx-pps=500 from the command line. */
    measure(200, &fps, &bps);
    assert_rate("tx frames", fps, 500);
    d = dir_info("s0", "tx", &all);
    ck_assert_int_eq(qmp_get_int(d, "pps"), 500);
    ck_assert_int_gt(qmp_get_int(d, "holds"), 10);
    ck_assert_int_gt(qmp_get_int(d, "held-ns"), 0);
    ck_assert_int_gt(qmp_get_int(d, "delayed-frames"), 10);
    ck_assert_int_gt(qmp_get_int(d, "delay-ns"), 0);
    ck_assert_int_eq(qmp_get_int(d, "dropped-frames"), 0);
    ck_assert_int_ge(qmp_get_int(d, "frames"), 1000);
    ck_assert_str_eq(qmp_get_str(json_object_array_get_idx(all, 0), "nic"),
                     "nic0");
    json_object_put(all);

    /* At run time: bytes instead of frames (1000-byte frames). */
    set_throttle("nic0", "'tx-pps': 0, 'tx-bps': 150000");
    measure(1000, &fps, &bps);
    assert_rate("tx bytes", bps, 150000);
    /* Lifted: far more than either went through. */
    set_throttle("s0", "'tx-bps': 0");
    measure(200, &fps, &bps);
    ck_assert_msg(fps > 1000, "unlimited: only %.1f frames/s", fps);
}
END_TEST

START_TEST(test_rx_limits)
{
    json_object *all, *d;
    double fps, bps;

    /* The receiver limited: s1's rx (back-pressure through the pair). */
    set_throttle("s0", "'tx-pps': 0");
    set_throttle("s1", "'rx-pps': 400");
    measure(200, &fps, &bps);
    assert_rate("rx frames", fps, 400);
    d = dir_info("s1", "rx", &all);
    ck_assert_int_eq(qmp_get_int(d, "pps"), 400);
    ck_assert_int_gt(qmp_get_int(d, "holds"), 10);
    ck_assert_int_gt(qmp_get_int(d, "held-ns"), 0);
    ck_assert_int_eq(qmp_get_int(d, "dropped-frames"), 0);
    json_object_put(all);

    set_throttle("nic1", "'rx-pps': 0, 'rx-bps': 250000");
    measure(1000, &fps, &bps);
    assert_rate("rx bytes", bps, 250000);
    d = dir_info("s1", "rx", &all);
    ck_assert_int_eq(qmp_get_int(d, "bps"), 250000);
    ck_assert_int_eq(qmp_get_int(d, "pps"), 0);
    json_object_put(all);
}
END_TEST

START_TEST(test_errors)
{
    g_autofree char *e1 = NULL, *e2 = NULL;

    e1 = qmp_err(qmp, "DeviceNotFound", "netdev-set-throttle",
                 "{'id': 'nope', 'tx-pps': 1}");
    e2 = qmp_err(qmp, "GenericError", "netdev-set-throttle",
                 "{'id': 's0', 'tx-pps': -1}");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("net-throttle");
    TCase *tc;

    tc = qos_check_tcase(s, "virtio-net", setup_vnet, teardown, 30);
    tcase_add_test(tc, test_tx_limits);
    tcase_add_test(tc, test_rx_limits);
    tcase_add_test(tc, test_errors);
    tc = qos_check_tcase(s, "e1000", setup_e1000, teardown, 30);
    tcase_add_test(tc, test_tx_limits);
    return qos_check_run(s);
}
