/*
 * Throttle groups (-object throttle-group): two virtio-blk devices on
 * null nodes share one group's limits.  The harness keeps requests in
 * flight on both and measures what completes over a window: together
 * they hold the group's rate within 10%, a light device gets its turns
 * beside a busy one, a qom-set of the limits takes effect at once, and
 * query-throttle-groups shows members and delays.
 *
 * The rates are far below what a null node does on any machine (tens of
 * thousands of requests per second), so what is measured is the
 * throttle; the window (2 s after a warm-up that fills the bursts) keeps
 * the tolerance honest on a loaded machine.  With IOVD_TEST_IOTHREAD=2
 * the two devices run on two iothreads, sharing the group across threads.
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
#include "tests/qtest/libqos/virtio.h"
#include "tests/qtest/libqos/virtio-blk.h"
#include "tests/qtest/libqos/rate.h"

#define GM_SIZE         (64u << 20)
#define NDEVS           2
#define MAX_DEPTH       64
#define MAX_BS          16384u

typedef struct Dev {
    VfuClient *c;
    QPCIDevice *pdev;
    QVirtioDevice *vd;
} Dev;

/* Requests kept in flight on one device's queue. */
typedef struct Load {
    QVirtQueue *vq;
    unsigned depth;
    uint32_t len;
    QVirtioBlkReq r[MAX_DEPTH];
    bool busy[MAX_DEPTH];
    uint8_t buf[MAX_DEPTH][MAX_BS];
    double iops, bps;           /* over measure()'s window */
} Load;

static IovdProc *proc;
static IovdProc *cur;           /* running: proc, or one that took over */
static GuestMem *gm;
static Dev devs[NDEVS];
static QmpClient *qmp;
static Load loads[NDEVS];
/* Reads each device completed since the test began (the harness's). */
static uint64_t done_ops[NDEVS], done_bytes[NDEVS];

static char *dev_sock(unsigned i)
{
    g_autofree char *name = g_strdup_printf("vb%u.sock", i);

    return iovd_proc_path(proc, name);
}

static void start(const char *limits)
{
    g_autofree char *qmp_path = NULL;

    qos_check_init();
    proc = cur = iovd_proc_new();
    iovd_proc_add_args(proc, "-object", NULL);
    iovd_proc_add_argf(proc, "throttle-group,id=g0,%s", limits);
    for (unsigned i = 0; i < NDEVS; i++) {
        g_autofree char *sock = dev_sock(i);

        iovd_proc_add_args(proc, "-blockdev", NULL);
        iovd_proc_add_argf(proc, "driver=null,node-name=d%u,size=64M,"
                           "throttle-group=g0", i);
        iovd_proc_add_args(proc, "-device", NULL);
        iovd_proc_add_argf(proc, "virtio-blk-pci,id=vb%u,drive=d%u,"
                           "socket=%s", i, i, sock);
    }
    qmp_path = iovd_proc_path(proc, "qmp.sock");
    iovd_proc_add_args(proc, "-qmp", NULL);
    iovd_proc_add_argf(proc, "unix:%s,server=on,wait=off", qmp_path);
    iovd_proc_start(proc);
    gm = guest_mem_new(GUEST_MEM_DEFAULT_BASE, GM_SIZE);
    for (unsigned i = 0; i < NDEVS; i++) {
        g_autofree char *sock = dev_sock(i);
        Dev *d = &devs[i];

        d->c = vfu_client_open(sock);
        guest_mem_map_checked(gm, d->c, true);
        d->pdev = qpci_device_new(d->c);
        d->vd = qvirtio_pci_new(d->pdev, gm);
        qvirtio_init(d->vd, &(QVirtioInit) {
            .features = VIRTIO_BIT(VIRTIO_F_VERSION_1), .nqueues = 1,
            .irq = QVIRTIO_IRQ_MSIX,
        });
    }
    qmp = qmp_client_open(qmp_path);
}

static void setup_iops(void)
{
    start("x-iops-total=400");
}

static void setup_bps(void)
{
    start("x-bps-total=2097152");
}

static void teardown(void)
{
    qmp_client_free(qmp);
    qmp = NULL;
    for (unsigned i = 0; i < NDEVS; i++) {
        qvirtio_free(devs[i].vd);
        qpci_device_free(devs[i].pdev);
        vfu_client_free(devs[i].c);
        memset(&devs[i], 0, sizeof(devs[i]));
    }
    guest_mem_free(gm);
    gm = NULL;
    iovd_proc_stop(cur);
    /* proc's directory holds the sockets of every daemon after it */
    if (cur != proc) {
        iovd_proc_free(cur);
    }
    iovd_proc_free(proc);
    proc = cur = NULL;
}

/* ---- load ---- */

static void load_init(unsigned i, unsigned depth, uint32_t len)
{
    Load *l = &loads[i];

    memset(l, 0, sizeof(*l));
    l->vq = devs[i].vd->vqs[0];
    l->depth = depth;
    l->len = len;
}

/* Keep @l->depth reads in flight; count what completed. */
static void load_step(Load *l)
{
    uint32_t id, len;
    bool added = false;

    while (qvirtqueue_get_used(l->vq, &id, &len)) {
        unsigned k;

        for (k = 0; k < l->depth; k++) {
            if (l->busy[k] && l->r[k].id == (int)id) {
                break;
            }
        }
        ck_assert_uint_lt(k, l->depth);
        ck_assert_uint_eq(qvirtio_blk_finish(l->vq, &l->r[k]),
                          VIRTIO_BLK_S_OK);
        l->busy[k] = false;
        done_ops[l - loads]++;
        done_bytes[l - loads] += l->len;
    }
    for (unsigned k = 0; k < l->depth; k++) {
        if (!l->busy[k]) {
            l->r[k] = (QVirtioBlkReq) {
                .type = VIRTIO_BLK_T_IN, .sector = k * (MAX_BS / 512),
                .data = l->buf[k], .len = l->len,
            };
            ck_assert_int_ge(qvirtio_blk_add(l->vq, &l->r[k]), 0);
            l->busy[k] = true;
            added = true;
        }
    }
    if (added) {
        qvirtqueue_kick(l->vq);
    }
}

/* Run every device's load for @ms; seconds it took. */
static double run_load(int ms)
{
    int64_t t0 = g_get_monotonic_time();
    int64_t end = t0 + ms * 1000LL;

    while (g_get_monotonic_time() < end) {
        for (unsigned i = 0; i < NDEVS; i++) {
            load_step(&loads[i]);
        }
        g_usleep(200);
    }
    return (g_get_monotonic_time() - t0) / 1e6;
}

/* The reads node d@i completed (query-blockstats). */
static void node_reads(uint64_t *ops, uint64_t *bytes)
{
    json_object *ret = qmp_ok(qmp, "query-blockstats", NULL);

    for (size_t k = 0; k < json_object_array_length(ret); k++) {
        json_object *o = json_object_array_get_idx(ret, k);
        const char *node = qmp_get_str(o, "node-name");
        unsigned i = node[1] - '0';

        ck_assert_uint_lt(i, NDEVS);
        ops[i] = qmp_get_int(qmp_get(o, "stats"), "rd_operations");
        bytes[i] = qmp_get_int(qmp_get(o, "stats"), "rd_bytes");
    }
    json_object_put(ret);
}

static void load_run(void *opaque, int ms)
{
    run_load(ms);
}

/* The nodes' requests, then their bytes. */
static void load_read(void *opaque, uint64_t *counters)
{
    node_reads(counters, counters + NDEVS);
}

/*
 * What the nodes completed per second (qos_rate_measure(), the devices
 * keeping many requests queued), into the loads' iops and bps; the
 * group's rate: requests per second, or bytes per second with @bytes.
 */
static double measure(bool bytes)
{
    static const QosRateLoad l = { load_run, load_read, NULL, 2 * NDEVS };
    uint64_t delta[2 * NDEVS];
    double secs = qos_rate_measure(&l, delta);
    double total = 0;

    for (unsigned i = 0; i < NDEVS; i++) {
        loads[i].iops = delta[i] / secs;
        loads[i].bps = delta[NDEVS + i] / secs;
        total += bytes ? loads[i].bps : loads[i].iops;
    }
    return total;
}

/* Let what is in flight complete (the device would wait in reset). */
static void drain(void)
{
    for (unsigned i = 0; i < NDEVS; i++) {
        Load *l = &loads[i];

        for (unsigned k = 0; k < l->depth; k++) {
            if (l->busy[k]) {
                qvirtio_blk_finish(l->vq, &l->r[k]);
                l->busy[k] = false;
                done_ops[i]++;
                done_bytes[i] += l->len;
            }
        }
    }
}

/* All done: the nodes' counters are what the devices completed. */
static void assert_counted(void)
{
    uint64_t ops[NDEVS], bytes[NDEVS];

    drain();
    node_reads(ops, bytes);
    for (unsigned i = 0; i < NDEVS; i++) {
        ck_assert_uint_eq(ops[i], done_ops[i]);
        ck_assert_uint_eq(bytes[i], done_bytes[i]);
    }
}

/* ---- tests ---- */

START_TEST(test_group_iops)
{
    json_object *ret, *g, *members, *limits;
    double total;

    load_init(0, 64, 4096);
    load_init(1, 64, 4096);
    total = measure(false);
    qos_assert_rate("iops of the group", total, 400);
    /* Both busy: each gets about half (round robin). */
    for (unsigned i = 0; i < NDEVS; i++) {
        ck_assert_msg(loads[i].iops > total * 0.4,
                      "vb%u got %.1f of %.1f iops", i, loads[i].iops, total);
    }

    /* A new limit takes effect at once, while both keep going. */
    json_object_put(qmp_ok(qmp, "qom-set", "{'path': 'g0', "
                           "'property': 'limits', "
                           "'value': {'iops-total': 800}}"));
    qos_assert_rate("iops after qom-set", measure(false), 800);
    assert_counted();

    ret = qmp_ok(qmp, "query-throttle-groups", NULL);
    ck_assert_uint_eq(json_object_array_length(ret), 1);
    g = json_object_array_get_idx(ret, 0);
    ck_assert_str_eq(qmp_get_str(g, "id"), "g0");
    limits = qmp_get(g, "limits");
    ck_assert_int_eq(qmp_get_int(limits, "iops-total"), 800);
    ck_assert_int_eq(qmp_get_int(limits, "bps-total"), 0);
    members = qmp_get(g, "members");
    ck_assert_uint_eq(json_object_array_length(members), 2);
    for (unsigned i = 0; i < NDEVS; i++) {
        json_object *m = json_object_array_get_idx(members, i);
        g_autofree char *name = g_strdup_printf("vb%u", i);

        ck_assert_str_eq(qmp_get_str(m, "device"), name);
        ck_assert_int_gt(qmp_get_int(m, "delayed-requests"), 100);
        ck_assert_int_gt(qmp_get_int(m, "delay-ns"), 0);
    }
    ck_assert_int_eq(qmp_get_int(g, "delayed-requests"),
                     qmp_get_int(json_object_array_get_idx(members, 0),
                                 "delayed-requests") +
                     qmp_get_int(json_object_array_get_idx(members, 1),
                                 "delayed-requests"));
    json_object_put(ret);

    /* query-block: each device shows the group's limits. */
    ret = qmp_ok(qmp, "query-block", NULL);
    for (unsigned i = 0; i < NDEVS; i++) {
        json_object *ins = qmp_get(json_object_array_get_idx(ret, i),
                                   "inserted");

        ck_assert_str_eq(qmp_get_str(ins, "group"), "g0");
        ck_assert_int_eq(qmp_get_int(ins, "iops"), 800);
    }
    json_object_put(ret);
    ret = qmp_ok(qmp, "qom-get", "{'path': '/objects/g0', "
                 "'property': 'x-iops-total'}");
    ck_assert_int_eq(json_object_get_int64(ret), 800);
    json_object_put(ret);
}
END_TEST

START_TEST(test_group_bps_fair)
{
    double total;

    /* vb0 keeps 32 in flight, vb1 one: vb1 still gets its turns. */
    load_init(0, 32, 16384);
    load_init(1, 1, 16384);
    total = measure(true);
    qos_assert_rate("bytes/s of the group", total, 2097152);
    ck_assert_msg(loads[1].bps > total * 0.3,
                  "the light device got %.0f of %.0f bytes/s",
                  loads[1].bps, total);

    json_object_put(qmp_ok(qmp, "qom-set", "{'path': 'g0', "
                           "'property': 'x-bps-total', "
                           "'value': 1048576}"));
    drain();
    load_init(1, 32, 16384);
    qos_assert_rate("bytes/s after qom-set", measure(true), 1048576);
    assert_counted();
}
END_TEST

START_TEST(test_group_errors)
{
    g_autofree char *e1 = NULL, *e2 = NULL, *e3 = NULL, *e4 = NULL;
    g_autofree char *e5 = NULL, *e6 = NULL;
    json_object *ret;

    /* A device in a group has the group's limits, not its own. */
    e1 = qmp_err(qmp, "GenericError", "block_set_io_throttle",
                 "{'id': 'vb0', 'bps': 0, 'bps_rd': 0, 'bps_wr': 0, "
                 "'iops': 10, 'iops_rd': 0, 'iops_wr': 0}");
    ck_assert_ptr_nonnull(strstr(e1, "throttle group 'g0'"));
    /* In use by the nodes. */
    e2 = qmp_err(qmp, "GenericError", "object-del", "{'id': 'g0'}");
    ck_assert_ptr_nonnull(strstr(e2, "in use by node 'd0'"));
    e3 = qmp_err(qmp, "GenericError", "qom-set", "{'path': 'g0', "
                 "'property': 'x-bps-nope', 'value': 1}");
    /* A total and a per-direction limit of one kind: refused, unchanged. */
    e4 = qmp_err(qmp, "GenericError", "qom-set", "{'path': 'g0', "
                 "'property': 'x-iops-read', 'value': 10}");
    ret = qmp_ok(qmp, "qom-get", "{'path': 'g0', 'property': 'limits'}");
    ck_assert_int_eq(qmp_get_int(ret, "iops-total"), 400);
    ck_assert_int_eq(qmp_get_int(ret, "iops-read"), 0);
    json_object_put(ret);
    /* ...but both at once through limits: total off, read on. */
    json_object_put(qmp_ok(qmp, "qom-set", "{'path': 'g0', 'property': "
                           "'limits', 'value': {'iops-total': 0, "
                           "'iops-read': 300}}"));
    /* Another group, by QMP, nested limits; unknown group on a node. */
    json_object_put(qmp_ok(qmp, "object-add", "{'qom-type': "
                           "'throttle-group', 'id': 'g1', "
                           "'limits': {'bps-total': 1000000}}"));
    e5 = qmp_err(qmp, "GenericError", "object-add", "{'qom-type': "
                 "'throttle-group', 'id': 'g1'}");
    e6 = qmp_err(qmp, "GenericError", "blockdev-add", "{'driver': 'null', "
                 "'node-name': 'd9', 'throttle-group': 'nope'}");
    ret = qmp_ok(qmp, "query-throttle-groups", NULL);
    ck_assert_uint_eq(json_object_array_length(ret), 2);
    ck_assert_int_eq(qmp_get_int(qmp_get(json_object_array_get_idx(ret, 0),
                                         "limits"), "iops-read"), 300);
    ck_assert_int_eq(qmp_get_int(qmp_get(json_object_array_get_idx(ret, 1),
                                         "limits"), "bps-total"), 1000000);
    ck_assert_uint_eq(json_object_array_length(
        qmp_get(json_object_array_get_idx(ret, 1), "members")), 0);
    json_object_put(ret);
    json_object_put(qmp_ok(qmp, "object-del", "{'id': 'g1'}"));
    /* The group's devices still work. */
    load_init(0, 2, 4096);
    load_init(1, 2, 4096);
    run_load(200);
    ck_assert_uint_gt(done_ops[0], 0);
    ck_assert_uint_gt(done_ops[1], 0);
    assert_counted();
}
END_TEST

START_TEST(test_group_upgrade)
{
    g_autofree char *qmp_path = iovd_proc_path(proc, "qmp.sock");
    json_object *ret, *g;

    /* Requests the group holds back when the daemon hands over. */
    load_init(0, 16, 4096);
    load_init(1, 16, 4096);
    run_load(300);
    iovd_upgrade_step(proc, &cur, &qmp, qmp_path);

    /* The new daemon has the group from the command line, and holds it. */
    ret = qmp_ok(qmp, "query-throttle-groups", NULL);
    g = json_object_array_get_idx(ret, 0);
    ck_assert_str_eq(qmp_get_str(g, "id"), "g0");
    ck_assert_int_eq(qmp_get_int(qmp_get(g, "limits"), "iops-total"), 400);
    ck_assert_uint_eq(json_object_array_length(qmp_get(g, "members")), 2);
    json_object_put(ret);
    qos_assert_rate("iops after an upgrade", measure(false), 400);
    drain();

    /* A run-time change is carried over: the next daemon holds it. */
    json_object_put(qmp_ok(qmp, "qom-set", "{'path': 'g0', "
                           "'property': 'x-iops-total', 'value': 800}"));
    iovd_upgrade_step(proc, &cur, &qmp, qmp_path);
    ret = qmp_ok(qmp, "query-throttle-groups", NULL);
    g = json_object_array_get_idx(ret, 0);
    ck_assert_int_eq(qmp_get_int(qmp_get(g, "limits"), "iops-total"), 800);
    json_object_put(ret);
    load_init(0, 16, 4096);
    load_init(1, 16, 4096);
    qos_assert_rate("iops after a change and an upgrade", measure(false),
                    800);
    drain();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("throttle-group");
    TCase *tc;

    tc = qos_check_tcase(s, "iops", setup_iops, teardown, 30);
    tcase_add_test(tc, test_group_iops);
    tcase_add_test(tc, test_group_errors);
    tcase_add_test(tc, test_group_upgrade);
    tc = qos_check_tcase(s, "bps", setup_bps, teardown, 30);
    tcase_add_test(tc, test_group_bps_fair);
    return qos_check_run(s);
}
