/*
 * NIC rate limits (-netdev ...,rx-bps=,rx-pps=,tx-bps=,tx-pps= and
 * netdev-set-throttle): two NICs joined by a stream pair, nic0 (the NIC
 * under test: virtio-net or e1000) on s0 and nic1 (virtio-net) on s1,
 * the harness sending as fast as the sender's ring allows and counting
 * what reaches the other NIC over a window.  All limits are s0's: TX
 * with nic0 sending, RX with nic0 receiving (s0 then leaves the stream
 * unread, and the back-pressure reaches nic1's ring).  Each holds within
 * 10%, changes at run time, and query-net-throttle shows it holding and
 * what it delayed.
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
#include "tests/qtest/libqos/iovd-upgrade.h"
#include "tests/qtest/libqos/vfu-client.h"
#include "tests/qtest/libqos/guest-mem.h"
#include "tests/qtest/libqos/pci.h"
#include "tests/qtest/libqos/qmp-client.h"
#include "tests/qtest/libqos/virtio-net.h"
#include "tests/qtest/libqos/e1000.h"
#include "tests/qtest/libqos/rate.h"

#define GM_SIZE         (32ULL << 20)

typedef struct Nic {
    VfuClient *c;
    QPCIDevice *pdev;
    GuestMem *gm;
    QVirtioNet *n;
    QE1000 *e;
} Nic;

static IovdProc *proc;
static IovdProc *cur;           /* running: proc, or one that took over */
static QmpClient *qmp;
static Nic nics[2];             /* nic0 (on s0, under test), nic1 */
static uint8_t frame[1514];

/* @sender: "virtio-net-pci" or "e1000"; @limits for s0 and s1. */
static void start(const char *sender, const char *s0, const char *s1)
{
    g_autofree char *link = NULL, *qmp_path = NULL;
    g_autofree char *sock0 = NULL, *sock1 = NULL;

    qos_check_init();
    proc = cur = iovd_proc_new();
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
        Nic *n = &nics[i];

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
    nic_close(&nics[0]);
    nic_close(&nics[1]);
    iovd_proc_stop(cur);
    /* proc's directory holds the sockets of every daemon after it */
    if (cur != proc) {
        iovd_proc_free(cur);
    }
    iovd_proc_free(proc);
    proc = cur = NULL;
}

/* ---- traffic ---- */

/* Fill @n's TX ring with @len-byte frames (as much as fits). */
static void send_some(Nic *n, size_t len)
{
    if (n->e) {
        /* e1000: a few per pass; qe1000_tx waits for ring room. */
        for (int i = 0; i < 4; i++) {
            qe1000_tx(n->e, frame, len, NULL);
        }
        return;
    }
    qvnet_tx_reclaim(n->n, 0);
    while (qvnet_tx_add(n->n, 0, frame, len, NULL, 0) == 0) {
        continue;
    }
    qvnet_tx_kick(n->n, 0);
}

/* Take what @n received; frames, bytes added to *@bytes. */
static uint64_t recv_all(Nic *n, uint64_t *bytes)
{
    static uint8_t buf[2048];
    uint64_t frames = 0;
    ssize_t len;

    if (!n->e) {
        return qvnet_rx_discard(n->n, 0, 1024, bytes);
    }
    while ((len = qe1000_rx(n->e, buf, sizeof(buf), NULL, 0)) >= 0) {
        frames++;
        *bytes += len;
    }
    return frames;
}

/* Every frame and byte the receiving NICs got since the test began. */
static uint64_t got_frames, got_bytes;

/* @from sends to @to for @ms. */
static void run(Nic *from, Nic *to, size_t len, int ms)
{
    int64_t end = g_get_monotonic_time() + ms * 1000LL;

    while (g_get_monotonic_time() < end) {
        send_some(from, len);
        got_frames += recv_all(to, &got_bytes);
        g_usleep(500);
    }
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

/* s0's counters of @dir: frames and bytes that passed its limit. */
static void passed(const char *dir, uint64_t *frames, uint64_t *bytes)
{
    json_object *all;
    json_object *d = dir_info("s0", dir, &all);

    *frames = qmp_get_int(d, "frames");
    *bytes = qmp_get_int(d, "bytes");
    json_object_put(all);
}

/* @from sending @len-byte frames to @to through s0's limit of @dir. */
typedef struct Traffic {
    Nic *from, *to;
    const char *dir;
    size_t len;
} Traffic;

static void traffic_run(void *opaque, int ms)
{
    Traffic *t = opaque;

    run(t->from, t->to, t->len, ms);
}

static void traffic_read(void *opaque, uint64_t *counters)
{
    Traffic *t = opaque;

    passed(t->dir, &counters[0], &counters[1]);
}

/*
 * Frames and bytes per second through s0's limit of @dir while @from
 * sends to @to: the limit's own counters (qos_rate_measure()).  Both
 * rings stay full (hundreds of frames).
 */
static void measure(Nic *from, Nic *to, const char *dir, size_t len,
                    double *fps, double *bps)
{
    Traffic t = { from, to, dir, len };
    QosRateLoad l = { traffic_run, traffic_read, &t, 2 };
    uint64_t delta[2];
    double secs = qos_rate_measure(&l, delta);

    *fps = delta[0] / secs;
    *bps = delta[1] / secs;
}

/*
 * Stop sending; once @to received everything, it got exactly what the
 * limit of @dir counted as passed: the counters are the frames the
 * guest got, none lost on the way.
 */
static void assert_delivered(Nic *to, const char *dir)
{
    uint64_t frames, bytes, last = UINT64_MAX;
    json_object *all, *d;

    while (last != got_frames) {
        last = got_frames;
        g_usleep(300 * 1000);
        got_frames += recv_all(to, &got_bytes);
    }
    passed(dir, &frames, &bytes);
    ck_assert_uint_eq(got_frames, frames);
    ck_assert_uint_eq(got_bytes, bytes);
    /* Nothing sent any more: the limit holds nothing. */
    d = dir_info("s0", dir, &all);
    ck_assert(!qmp_get_bool(d, "limited"));
    json_object_put(all);
}

/*
 * s0's frame limit of @dir holds at @pps (nic0 sending for "tx",
 * receiving for "rx"), and query-net-throttle shows it holding frames
 * back, none dropped.  Returns its entry for @dir, in *@all to put.
 */
static json_object *assert_pps(const char *dir, int pps, json_object **all)
{
    bool tx = strcmp(dir, "tx") == 0;
    g_autofree char *what = g_strdup_printf("%s frames", dir);
    json_object *d;
    double fps, bps;

    measure(&nics[tx ? 0 : 1], &nics[tx ? 1 : 0], dir, 200, &fps, &bps);
    qos_assert_rate(what, fps, pps);
    d = dir_info("s0", dir, all);
    ck_assert_int_eq(qmp_get_int(d, "pps"), pps);
    ck_assert_int_gt(qmp_get_int(d, "holds"), 10);
    ck_assert_int_gt(qmp_get_int(d, "held-ns"), 0);
    ck_assert_int_eq(qmp_get_int(d, "dropped-frames"), 0);
    return d;
}

/* ---- tests ---- */

START_TEST(test_tx_limits)
{
    json_object *all, *d;
    double fps, bps;

    /* tx-pps=500 from the command line. */
    d = assert_pps("tx", 500, &all);
    ck_assert_int_gt(qmp_get_int(d, "delayed-frames"), 10);
    ck_assert_int_gt(qmp_get_int(d, "delay-ns"), 0);
    ck_assert_int_ge(qmp_get_int(d, "frames"), 1000);
    ck_assert_str_eq(qmp_get_str(json_object_array_get_idx(all, 0), "nic"),
                     "nic0");
    json_object_put(all);

    /* At run time: bytes instead of frames (1000-byte frames). */
    set_throttle("nic0", "'tx-pps': 0, 'tx-bps': 150000");
    measure(&nics[0], &nics[1], "tx", 1000, &fps, &bps);
    qos_assert_rate("tx bytes", bps, 150000);
    assert_delivered(&nics[1], "tx");
    /* Lifted: far more than either limit went through. */
    set_throttle("s0", "'tx-bps': 0");
    got_frames = 0;
    run(&nics[0], &nics[1], 200, 1000);
    ck_assert_msg(got_frames > 1000, "unlimited: only %" PRIu64
                  " frames in a second", got_frames);
}
END_TEST

START_TEST(test_rx_limits)
{
    json_object *all, *d;
    double fps, bps;

    /* nic0 receives, s0's rx limited (back-pressure through the pair). */
    set_throttle("s0", "'tx-pps': 0, 'rx-pps': 400");
    assert_pps("rx", 400, &all);
    json_object_put(all);

    set_throttle("nic0", "'rx-pps': 0, 'rx-bps': 250000");
    measure(&nics[1], &nics[0], "rx", 1000, &fps, &bps);
    qos_assert_rate("rx bytes", bps, 250000);
    assert_delivered(&nics[0], "rx");
    d = dir_info("s0", "rx", &all);
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

START_TEST(test_upgrade)
{
    g_autofree char *qmp_path = iovd_proc_path(proc, "qmp.sock");
    double fps, bps;

    /* Frames held by the limit when the daemon hands over. */
    run(&nics[0], &nics[1], 200, 300);
    iovd_upgrade_step(proc, &cur, &qmp, qmp_path);
    /* The new daemon limits as the command line said. */
    measure(&nics[0], &nics[1], "tx", 200, &fps, &bps);
    qos_assert_rate("tx frames after an upgrade", fps, 500);

    /* A run-time change is carried over: the next daemon holds it. */
    set_throttle("s0", "'tx-pps': 300");
    iovd_upgrade_step(proc, &cur, &qmp, qmp_path);
    measure(&nics[0], &nics[1], "tx", 200, &fps, &bps);
    qos_assert_rate("tx frames after a change and an upgrade", fps, 300);
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
    tcase_add_test(tc, test_upgrade);
    tc = qos_check_tcase(s, "e1000", setup_e1000, teardown, 30);
    tcase_add_test(tc, test_tx_limits);
    tcase_add_test(tc, test_rx_limits);
    return qos_check_run(s);
}
