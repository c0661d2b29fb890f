/*
 * NVM subsystem tests: one daemon, one nvme-subsys with two controllers,
 * each on its own socket with a client of its own (two "VMs", each its
 * own guest RAM), sharing namespaces:
 *
 *   nsid 1  d0  shared=on               attached to both at start
 *   nsid 2  d1  private                 attached to nvme0 (the first)
 *   nsid 3  d2  shared=on,detached=on   attached to none
 *
 * With IOVD_TEST_IOTHREAD=2 the two controllers run on different
 * iothreads.  Every test gets a fresh daemon; the teardown stops it with
 * SIGTERM and requires exit status 0.
 */
#include "util/osdep.h"

#include <check.h>

#include "hw/nvme/nvme-spec.h"
#include "tests/qtest/libqos/qos-check.h"
#include "tests/qtest/libqos/iovd-proc.h"
#include "tests/qtest/libqos/vfu-client.h"
#include "tests/qtest/libqos/guest-mem.h"
#include "tests/qtest/libqos/pci.h"
#include "tests/qtest/libqos/qmp-client.h"
#include "tests/qtest/libqos/nvme.h"
#include "tests/qtest/libqos/nvme-host.h"
#include "tests/qtest/libqos/migration.h"

#define IMG_SIZE        (16ULL << 20)
#define DNR(st)         ((uint16_t)((st) | NVME_DNR))
#define NQN             "nqn.2019-08.org.qemu:subsys0"

typedef struct TestEnv {
    IovdProc *proc;
    QmpClient *qmp;
    QNvmeHost h[2];
    bool iothreads;             /* each controller on an iothread of its own */
    IovdProc *dst;              /* a migration destination */
    QmpClient *dst_qmp;
} TestEnv;

static TestEnv env;

/* ---- environment ---- */

/*
 * The test's configuration on @p (a source, or a migration destination on
 * the same images): the subsystem, two controllers, three namespaces,
 * a monitor whose path is returned.
 */
static char *configure(IovdProc *p)
{
    char *qmp = iovd_proc_path(p, "qmp.sock");

    qnvme_subsys_configure(p, env.proc, 3, env.iothreads);
    iovd_proc_add_args(p,
        "-device", "nvme-ns,id=ns1,subsys=subsys0,nsid=1,drive=d0,shared=on",
        "-device", "nvme-ns,id=ns2,subsys=subsys0,nsid=2,drive=d1",
        "-device", "nvme-ns,id=ns3,subsys=subsys0,nsid=3,drive=d2,"
                   "shared=on,detached=on",
        "-qmp", NULL);
    iovd_proc_add_argf(p, "unix:%s,server=on,wait=off", qmp);
    return qmp;
}

static void setup_env(bool iothreads)
{
    g_autofree char *qmp = NULL;

    memset(&env, 0, sizeof(env));
    env.iothreads = iothreads;
    env.proc = iovd_proc_new();
    qnvme_subsys_images(env.proc, 3, IMG_SIZE);
    qmp = configure(env.proc);
    iovd_proc_start(env.proc);
    env.qmp = qmp_client_open(qmp);
    qnvme_host_open(&env.h[0], env.proc, 0, 2);
    qnvme_host_open(&env.h[1], env.proc, 1, 2);
}

static void setup(void)
{
    setup_env(false);
}

/* Whatever IOVD_TEST_IOTHREAD says: two iothreads, one per controller. */
static void setup_iothreads(void)
{
    setup_env(true);
}

static void teardown(void)
{
    qmp_client_free(env.qmp);
    qmp_client_free(env.dst_qmp);
    qnvme_host_close(&env.h[0]);
    qnvme_host_close(&env.h[1]);
    iovd_proc_stop(env.proc);
    iovd_proc_free(env.proc);
    if (env.dst) {
        iovd_proc_stop(env.dst);
        iovd_proc_free(env.dst);
    }
    memset(&env, 0, sizeof(env));
}

/* ---- helpers ---- */

static void fill(uint8_t *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++) {
        buf[i] = (uint8_t)(i * 7 + seed * 131 + (i >> 9));
    }
}

/* Write @nlb blocks of pattern @seed at @slba of @nsid through @h. */
static uint16_t host_write(QNvmeHost *h, uint32_t nsid, uint64_t slba,
                           uint32_t nlb, unsigned seed)
{
    size_t len = (size_t)nlb * 512;
    g_autofree uint8_t *buf = g_malloc(len);
    uint64_t g = guest_alloc_aligned(h->gm, len, 4096);
    uint16_t st;

    fill(buf, len, seed);
    guest_memwrite(h->gm, g, buf, len);
    st = qnvme_rw(h->q, qnvme_ioq(h->q, 1), NVME_CMD_WRITE, nsid, slba, nlb,
                  g);
    guest_free(h->gm, g);
    return st;
}

/* Read them through @h (I/O queue @qid) and compare with @seed. */
static void host_check(QNvmeHost *h, uint16_t qid, uint32_t nsid,
                       uint64_t slba, uint32_t nlb, unsigned seed)
{
    size_t len = (size_t)nlb * 512;
    g_autofree uint8_t *want = g_malloc(len);
    g_autofree uint8_t *got = g_malloc(len);
    uint64_t g = guest_alloc_aligned(h->gm, len, 4096);

    guest_memset(h->gm, g, 0xee, len);
    ck_assert_int_eq(qnvme_rw(h->q, qnvme_ioq(h->q, qid), NVME_CMD_READ,
                              nsid, slba, nlb, g), NVME_SUCCESS);
    guest_memread(h->gm, g, got, len);
    guest_free(h->gm, g);
    fill(want, len, seed);
    ck_assert_msg(memcmp(got, want, len) == 0,
                  "namespace %u at %" PRIu64 ": not what was written", nsid,
                  slba);
}

/* The Identify Active Namespace List of @h, 0-terminated. */
static void active_list(QNvmeHost *h, uint32_t *list)
{
    ck_assert_int_eq(qnvme_identify(h->q, NVME_ID_CNS_NS_ACTIVE_LIST, 0,
                                    list), NVME_SUCCESS);
}

static void assert_active(QNvmeHost *h, uint32_t a, uint32_t b, uint32_t c)
{
    g_autofree uint32_t *list = g_new0(uint32_t, 1024);
    uint32_t want[4] = { a, b, c, 0 };

    active_list(h, list);
    for (unsigned i = 0; i < 4; i++) {
        ck_assert_msg(list[i] == want[i], "active list [%u]: %u, not %u",
                      i, list[i], want[i]);
    }
}

/* A controller list (CNS 12h / 13h) as "n: a b ...". */
static char *ctrl_list(QNvmeHost *h, uint8_t cns, uint32_t nsid, uint16_t min)
{
    uint16_t list[2048];
    GString *s = g_string_new(NULL);

    ck_assert_int_eq(qnvme_identify_cntid(h->q, cns, nsid, min, list),
                     NVME_SUCCESS);
    g_string_append_printf(s, "%u:", list[0]);
    for (unsigned i = 0; i < list[0] && i < 2047; i++) {
        g_string_append_printf(s, " %u", list[1 + i]);
    }
    return g_string_free(s, false);
}

static void assert_ctrl_list(QNvmeHost *h, uint8_t cns, uint32_t nsid,
                             uint16_t min, const char *want)
{
    g_autofree char *got = ctrl_list(h, cns, nsid, min);

    ck_assert_str_eq(got, want);
}

/* AER @cid completes with a Namespace Attribute Changed notice. */
static void wait_ns_changed(QNvmeHost *h, uint16_t cid)
{
    NvmeCqe cqe;

    qnvme_wait(h->q, &h->q->admin, &cqe, 0);
    ck_assert_int_eq(cqe.cid, cid);
    ck_assert_int_eq(qnvme_status(&cqe), NVME_SUCCESS);
    ck_assert_int_eq(NVME_AER_RESULT_TYPE(cqe.result), NVME_AER_TYPE_NOTICE);
    ck_assert_int_eq(NVME_AER_RESULT_INFO(cqe.result),
                     NVME_AER_INFO_NOTICE_NS_ATTR_CHANGED);
    ck_assert_int_eq(NVME_AER_RESULT_LOG(cqe.result),
                     NVME_LOG_CHANGED_NSLIST);
}

/* The Changed Namespace List lists exactly @nsid (and is then cleared). */
static void assert_changed(QNvmeHost *h, uint32_t nsid)
{
    g_autofree uint32_t *list = g_new0(uint32_t, 1024);

    ck_assert_int_eq(qnvme_get_log(h->q, NVME_LOG_CHANGED_NSLIST, 0, false,
                                   0, list, 4096), NVME_SUCCESS);
    ck_assert_uint_eq(list[0], nsid);
    ck_assert_uint_eq(list[1], 0);
}

static void enable_ns_events(QNvmeHost *h)
{
    ck_assert_int_eq(qnvme_set_features(h->q, NVME_FEAT_ASYNC_EVENT_CONF,
                                        NVME_AEC_NS_ATTR, NULL),
                     NVME_SUCCESS);
}

static void qmp_ns(const char *cmd, uint32_t nsid, const char *ctrl)
{
    json_object *ret = qmp_okf(env.qmp, cmd, "{'subsys': 'subsys0', "
                               "'nsid': %u, 'controller': '%s'}", nsid,
                               ctrl);

    json_object_put(ret);
}

/* ---- tests ---- */

static void check_id_ctrl(QNvmeHost *h, unsigned cntlid)
{
    const NvmeIdCtrl *id = &h->q->id;

    ck_assert_uint_eq(id->cntlid, cntlid);
    ck_assert_uint_eq(id->cmic & NVME_CMIC_MULTI_CTRL, NVME_CMIC_MULTI_CTRL);
    ck_assert_str_eq(id->subnqn, NQN);
    /* The subsystem's serial: its first controller's. */
    ck_assert(memcmp(id->sn, "SER0                ", 20) == 0);
}

/* NMIC and the identifiers of @nsid, the same through both controllers. */
static void check_same_ns(uint32_t nsid, bool shared)
{
    NvmeIdNs ns[2];
    uint8_t descr[2][4096];

    for (unsigned i = 0; i < 2; i++) {
        ck_assert_int_eq(qnvme_identify(env.h[i].q, NVME_ID_CNS_NS, nsid,
                                        &ns[i]), NVME_SUCCESS);
        ck_assert_int_eq(qnvme_identify(env.h[i].q, NVME_ID_CNS_NS_DESCR_LIST,
                                        nsid, descr[i]), NVME_SUCCESS);
        ck_assert_uint_eq(ns[i].nmic & NVME_NMIC_SHARED,
                          shared ? NVME_NMIC_SHARED : 0);
        ck_assert_uint_eq(ns[i].nsze, IMG_SIZE / 512);
    }
    ck_assert(memcmp(ns[0].nguid, ns[1].nguid, 16) == 0);
    ck_assert(memcmp(ns[0].eui64, ns[1].eui64, 8) == 0);
    ck_assert(memcmp(descr[0], descr[1], 4096) == 0);
}

START_TEST(test_identify)
{
    NvmeIdNs ns;

    check_id_ctrl(&env.h[0], 0);
    check_id_ctrl(&env.h[1], 1);
    assert_active(&env.h[0], 1, 2, 0);
    assert_active(&env.h[1], 1, 0, 0);
    check_same_ns(1, true);
    /* The private namespace through its controller: NMIC clear. */
    ck_assert_int_eq(qnvme_identify(env.h[0].q, NVME_ID_CNS_NS, 2, &ns),
                     NVME_SUCCESS);
    ck_assert_uint_eq(ns.nmic, 0);
    ck_assert_uint_eq(ns.nsze, IMG_SIZE / 512);
    /* Inactive through the other: zeroes. */
    ck_assert_int_eq(qnvme_identify(env.h[1].q, NVME_ID_CNS_NS, 2, &ns),
                     NVME_SUCCESS);
    ck_assert_uint_eq(ns.nsze, 0);
    /* Controller lists: the subsystem's, and per namespace. */
    for (unsigned i = 0; i < 2; i++) {
        assert_ctrl_list(&env.h[i], NVME_ID_CNS_CTRL_LIST, 0, 0, "2: 0 1");
        assert_ctrl_list(&env.h[i], NVME_ID_CNS_CTRL_LIST, 0, 1, "1: 1");
        assert_ctrl_list(&env.h[i], NVME_ID_CNS_CTRL_LIST_NS, 1, 0,
                         "2: 0 1");
        assert_ctrl_list(&env.h[i], NVME_ID_CNS_CTRL_LIST_NS, 2, 0, "1: 0");
        assert_ctrl_list(&env.h[i], NVME_ID_CNS_CTRL_LIST_NS, 3, 0, "0:");
    }
    ck_assert_int_eq(qnvme_identify(env.h[0].q, NVME_ID_CNS_CTRL_LIST_NS,
                                    0, &ns), DNR(NVME_INVALID_NSID));
}
END_TEST

START_TEST(test_shared_io)
{
    /* Each VM reads what the other wrote, on every queue. */
    ck_assert_int_eq(host_write(&env.h[0], 1, 0, 16, 1), NVME_SUCCESS);
    host_check(&env.h[1], 1, 1, 0, 16, 1);
    host_check(&env.h[1], 2, 1, 0, 16, 1);
    ck_assert_int_eq(host_write(&env.h[1], 1, 100, 8, 2), NVME_SUCCESS);
    host_check(&env.h[0], 2, 1, 100, 8, 2);
    ck_assert_int_eq(host_write(&env.h[0], 1, 100, 8, 3), NVME_SUCCESS);
    host_check(&env.h[1], 1, 1, 100, 8, 3);
    ck_assert_int_eq(qnvme_flush(env.h[1].q, qnvme_ioq(env.h[1].q, 1), 1),
                     NVME_SUCCESS);
    /* The private namespace only through its controller. */
    ck_assert_int_eq(host_write(&env.h[0], 2, 0, 8, 4), NVME_SUCCESS);
    host_check(&env.h[0], 1, 2, 0, 8, 4);
    ck_assert_int_eq(host_write(&env.h[1], 2, 0, 8, 4),
                     DNR(NVME_INVALID_NSID));
}
END_TEST

START_TEST(test_private_moves)
{
    g_autofree char *err = NULL;

    ck_assert_int_eq(host_write(&env.h[0], 2, 8, 8, 5), NVME_SUCCESS);
    err = qmp_err(env.qmp, "GenericError", "nvme-ns-attach",
                  "{'subsys': 'subsys0', 'nsid': 2, 'controller': 'nvme1'}");
    ck_assert_msg(strstr(err, "private") && strstr(err, "nvme0"), "%s", err);
    assert_active(&env.h[1], 1, 0, 0);

    /* Detach from the first controller: then the second may have it. */
    qmp_ns("nvme-ns-detach", 2, "nvme0");
    qmp_ns("nvme-ns-attach", 2, "nvme1");
    assert_active(&env.h[0], 1, 0, 0);
    assert_active(&env.h[1], 1, 2, 0);
    host_check(&env.h[1], 1, 2, 8, 8, 5);
    ck_assert_int_eq(host_write(&env.h[0], 2, 8, 8, 6),
                     DNR(NVME_INVALID_NSID));
    assert_ctrl_list(&env.h[0], NVME_ID_CNS_CTRL_LIST_NS, 2, 0, "1: 1");
}
END_TEST

/* Detach and attach again, seen by the host through AER and log 04h. */
START_TEST(test_detach_attach)
{
    QNvmeHost *h = &env.h[1];
    NvmeIdNs ns;
    uint16_t cid;

    enable_ns_events(h);
    cid = qnvme_submit_aer(h->q);
    qmp_ns("nvme-ns-detach", 1, "nvme1");
    wait_ns_changed(h, cid);
    assert_changed(h, 1);
    assert_active(h, 0, 0, 0);
    ck_assert_int_eq(host_write(h, 1, 0, 8, 7), DNR(NVME_INVALID_NSID));
    ck_assert_int_eq(qnvme_identify(h->q, NVME_ID_CNS_NS, 1, &ns),
                     NVME_SUCCESS);
    ck_assert_uint_eq(ns.nsze, 0);
    assert_ctrl_list(h, NVME_ID_CNS_CTRL_LIST_NS, 1, 0, "1: 0");

    /* The other VM goes on meanwhile. */
    assert_active(&env.h[0], 1, 2, 0);
    ck_assert_int_eq(host_write(&env.h[0], 1, 64, 8, 8), NVME_SUCCESS);

    cid = qnvme_submit_aer(h->q);
    qmp_ns("nvme-ns-attach", 1, "nvme1");
    wait_ns_changed(h, cid);
    assert_changed(h, 1);
    assert_active(h, 1, 0, 0);
    host_check(h, 1, 1, 64, 8, 8);
    check_same_ns(1, true);

    /* The detached=on namespace, attached to both at run time. */
    cid = qnvme_submit_aer(h->q);
    qmp_ns("nvme-ns-attach", 3, "nvme1");
    wait_ns_changed(h, cid);
    assert_changed(h, 3);
    qmp_ns("nvme-ns-attach", 3, "nvme0");
    assert_active(&env.h[0], 1, 2, 3);
    assert_active(h, 1, 3, 0);
    check_same_ns(3, true);
    ck_assert_int_eq(host_write(h, 3, 1, 8, 9), NVME_SUCCESS);
    host_check(&env.h[0], 1, 3, 1, 8, 9);
}
END_TEST

static void check_query(void)
{
    json_object *ret = qmp_ok(env.qmp, "query-nvme-subsystems", NULL);
    json_object *s, *ctrls, *nss, *ns1;

    ck_assert_int_eq(json_object_array_length(ret), 1);
    s = json_object_array_get_idx(ret, 0);
    ck_assert_str_eq(qmp_get_str(s, "id"), "subsys0");
    ck_assert_str_eq(qmp_get_str(s, "nqn"), NQN);
    ctrls = qmp_get(s, "controllers");
    ck_assert_int_eq(json_object_array_length(ctrls), 2);
    ck_assert_str_eq(qmp_get_str(json_object_array_get_idx(ctrls, 1), "id"),
                     "nvme1");
    ck_assert_int_eq(qmp_get_int(json_object_array_get_idx(ctrls, 1),
                                 "cntlid"), 1);
    nss = qmp_get(s, "namespaces");
    ck_assert_int_eq(json_object_array_length(nss), 3);
    ns1 = json_object_array_get_idx(nss, 0);
    ck_assert_int_eq(qmp_get_int(ns1, "nsid"), 1);
    ck_assert(qmp_get_bool(ns1, "shared"));
    ck_assert_str_eq(qmp_get_str(ns1, "drive"), "d0");
    ck_assert_int_eq(json_object_array_length(qmp_get(ns1, "controllers")),
                     2);
    ck_assert(!qmp_get_bool(json_object_array_get_idx(nss, 1), "shared"));
    ck_assert_int_eq(json_object_array_length(
        qmp_get(json_object_array_get_idx(nss, 2), "controllers")), 0);
    json_object_put(ret);
}

static void expect_err(const char *cls, const char *cmd, const char *args,
                       const char *part)
{
    g_autofree char *err = qmp_err(env.qmp, cls, cmd, args);

    ck_assert_msg(strstr(err, part), "%s %s: '%s' lacks '%s'", cmd, args,
                  err, part);
}

START_TEST(test_qmp)
{
    json_object *ret;

    check_query();
    expect_err("DeviceNotFound", "nvme-ns-attach",
               "{'subsys': 'nosuch', 'nsid': 1, 'controller': 'nvme0'}",
               "nosuch");
    expect_err("DeviceNotFound", "nvme-ns-attach",
               "{'subsys': 'nvme0', 'nsid': 1, 'controller': 'nvme0'}",
               "No NVMe subsystem");
    expect_err("GenericError", "nvme-ns-attach",
               "{'subsys': 'subsys0', 'nsid': 9, 'controller': 'nvme0'}",
               "no namespace 9");
    expect_err("GenericError", "nvme-ns-detach",
               "{'subsys': 'subsys0', 'nsid': 0, 'controller': 'nvme0'}",
               "nsid");
    expect_err("DeviceNotFound", "nvme-ns-attach",
               "{'subsys': 'subsys0', 'nsid': 3, 'controller': 'nosuch'}",
               "nosuch");
    expect_err("GenericError", "nvme-ns-attach",
               "{'subsys': 'subsys0', 'nsid': 3, 'controller': 'ns1'}",
               "not a controller of subsystem");
    expect_err("GenericError", "nvme-ns-attach",
               "{'subsys': 'subsys0', 'nsid': 1, 'controller': 'nvme1'}",
               "already attached");
    expect_err("GenericError", "nvme-ns-attach",
               "{'subsys': 'subsys0', 'nsid': 2, 'controller': 'nvme1'}",
               "private");
    expect_err("GenericError", "nvme-ns-detach",
               "{'subsys': 'subsys0', 'nsid': 3, 'controller': 'nvme0'}",
               "not attached");
    expect_err("GenericError", "nvme-ns-detach",
               "{'subsys': 'subsys0', 'nsid': 2, 'controller': 'nvme1'}",
               "not attached");
    expect_err("GenericError", "nvme-ns-attach",
               "{'subsys': 'subsys0', 'nsid': 1}", "controller");
    /* Nothing changed, the monitor is still there, the VMs too. */
    check_query();
    ret = qmp_ok(env.qmp, "query-status", NULL);
    json_object_put(ret);
    ck_assert_int_eq(host_write(&env.h[1], 1, 0, 8, 10), NVME_SUCCESS);
    host_check(&env.h[0], 1, 1, 0, 8, 10);
}
END_TEST

/* Namespaces of a subsystem added and removed at run time. */
START_TEST(test_hotplug)
{
    g_autofree char *img = iovd_proc_image(env.proc, "d4.img", IMG_SIZE);
    g_autofree char *err = NULL;
    json_object *ret, *ev;
    uint16_t cid[2];

    ret = qmp_okf(env.qmp, "blockdev-add", "{'driver': 'file', "
                  "'node-name': 'd4', 'filename': '%s'}", img);
    json_object_put(ret);
    for (unsigned i = 0; i < 2; i++) {
        enable_ns_events(&env.h[i]);
        cid[i] = qnvme_submit_aer(env.h[i].q);
    }
    ret = qmp_ok(env.qmp, "device_add", "{'driver': 'nvme-ns', 'id': 'ns4', "
                 "'subsys': 'subsys0', 'drive': 'd4', 'shared': true}");
    json_object_put(ret);
    for (unsigned i = 0; i < 2; i++) {
        wait_ns_changed(&env.h[i], cid[i]);
        assert_changed(&env.h[i], 4);
    }
    ck_assert_int_eq(host_write(&env.h[0], 4, 0, 8, 11), NVME_SUCCESS);
    host_check(&env.h[1], 1, 4, 0, 8, 11);

    /* Bad ones. */
    err = qmp_err(env.qmp, "GenericError", "device_add",
                  "{'driver': 'nvme-ns', 'subsys': 'subsys0', "
                  "'drive': 'd4', 'nsid': 1}");
    ck_assert_msg(strstr(err, "exists"), "%s", err);
    g_free(g_steal_pointer(&err));
    err = qmp_err(env.qmp, "GenericError", "device_add",
                  "{'driver': 'nvme-ns', 'subsys': 'nvme0', 'drive': 'd4'}");
    ck_assert_msg(strstr(err, "not an nvme-subsys"), "%s", err);
    g_free(g_steal_pointer(&err));
    err = qmp_err(env.qmp, "GenericError", "device_add",
                  "{'driver': 'nvme-ns', 'subsys': 'subsys0', "
                  "'bus': 'nvme0', 'drive': 'd4'}");
    ck_assert_msg(strstr(err, "exactly one"), "%s", err);

    /* Removed: both hosts are told; the node is free again. */
    for (unsigned i = 0; i < 2; i++) {
        cid[i] = qnvme_submit_aer(env.h[i].q);
    }
    ret = qmp_ok(env.qmp, "device_del", "{'id': 'ns4'}");
    json_object_put(ret);
    ev = qmp_client_wait_event(env.qmp, "DEVICE_DELETED", 0);
    json_object_put(ev);
    for (unsigned i = 0; i < 2; i++) {
        wait_ns_changed(&env.h[i], cid[i]);
        assert_changed(&env.h[i], 4);
        ck_assert_int_eq(host_write(&env.h[i], 4, 0, 8, 12),
                         DNR(NVME_INVALID_NSID));
    }
    ret = qmp_ok(env.qmp, "blockdev-del", "{'node-name': 'd4'}");
    json_object_put(ret);
}
END_TEST

/*
 * Both VMs write at once, the controllers on two iothreads: each
 * request completes on its own controller's loop.
 */
START_TEST(test_concurrent_io)
{
    enum { N = 12, NLB = 8 };
    uint64_t g[2][N];
    uint16_t cid[2][N];
    g_autofree uint8_t *buf = g_malloc(NLB * 512);

    for (unsigned r = 0; r < 3; r++) {
        for (unsigned i = 0; i < N; i++) {
            for (unsigned v = 0; v < 2; v++) {
                QNvmeHost *h = &env.h[v];
                NvmeCmd cmd;

                g[v][i] = guest_alloc_aligned(h->gm, NLB * 512, 4096);
                fill(buf, NLB * 512, 100 * r + 10 * v + i);
                guest_memwrite(h->gm, g[v][i], buf, NLB * 512);
                qnvme_rw_cmd(h->q, &cmd, NVME_CMD_WRITE, 1,
                             (v * N + i) * NLB, NLB, g[v][i]);
                cid[v][i] = qnvme_submit(h->q, qnvme_ioq(h->q, 1 + i % 2),
                                         &cmd);
            }
        }
        for (unsigned v = 0; v < 2; v++) {
            QNvmeHost *h = &env.h[v];

            for (unsigned i = 0; i < N; i++) {
                NvmeCqe cqe;

                qnvme_wait(h->q, qnvme_ioq(h->q, 1 + i % 2), &cqe, 0);
                ck_assert_int_eq(cqe.cid, cid[v][i]);
                ck_assert_int_eq(qnvme_status(&cqe), NVME_SUCCESS);
                guest_free(h->gm, g[v][i]);
            }
        }
        /* Each reads what the other wrote. */
        for (unsigned v = 0; v < 2; v++) {
            for (unsigned i = 0; i < N; i++) {
                host_check(&env.h[1 - v], 2, 1, (v * N + i) * NLB, NLB,
                           100 * r + 10 * v + i);
            }
        }
    }
}
END_TEST

/* A controller leaves the subsystem and another joins. */
START_TEST(test_ctrl_unplug)
{
    g_autofree char *sock = iovd_proc_path(env.proc, "nvme9.sock");
    json_object *ret, *ev;

    qnvme_host_close(&env.h[1]);
    ret = qmp_ok(env.qmp, "device_del", "{'id': 'nvme1'}");
    json_object_put(ret);
    ev = qmp_client_wait_event(env.qmp, "DEVICE_DELETED", 0);
    json_object_put(ev);
    ret = qmp_ok(env.qmp, "query-nvme-subsystems", NULL);
    ck_assert_int_eq(json_object_array_length(
        qmp_get(json_object_array_get_idx(ret, 0), "controllers")), 1);
    json_object_put(ret);
    assert_ctrl_list(&env.h[0], NVME_ID_CNS_CTRL_LIST, 0, 0, "1: 0");
    assert_ctrl_list(&env.h[0], NVME_ID_CNS_CTRL_LIST_NS, 1, 0, "1: 0");
    ck_assert_int_eq(host_write(&env.h[0], 1, 0, 8, 20), NVME_SUCCESS);

    /* The newcomer takes the free CNTLID and the shared namespace. */
    ret = qmp_okf(env.qmp, "device_add", "{'driver': 'nvme', 'id': "
                  "'nvme9', 'subsys': 'subsys0', 'socket': '%s'}", sock);
    json_object_put(ret);
    qnvme_host_open(&env.h[1], env.proc, 9, 2);
    check_id_ctrl(&env.h[1], 1);
    assert_active(&env.h[1], 1, 0, 0);
    host_check(&env.h[1], 1, 1, 0, 8, 20);
    check_same_ns(1, true);
}
END_TEST

/* Queue @n 64 KiB writes to @nsid on @h's I/O queue 1 and ring. */
static void flood(QNvmeHost *h, uint32_t nsid, unsigned n)
{
    uint64_t buf = guest_alloc_aligned(h->gm, 65536, 4096);
    QNvmeQueue *queue = qnvme_ioq(h->q, 1);

    guest_memset(h->gm, buf, 0x5a, 65536);
    for (unsigned j = 0; j < n; j++) {
        NvmeCmd cmd;

        qnvme_rw_cmd(h->q, &cmd, NVME_CMD_WRITE, nsid, j * 128, 128, buf);
        qnvme_queue_cmd(h->q, queue, &cmd);
    }
    qnvme_ring_sq(h->q, queue);
}

/*
 * A shared namespace removed while both VMs write to it: each write
 * completes (done, or refused once the namespace is gone), each host is
 * told, and the node is free once DEVICE_DELETED came.
 */
START_TEST(test_unplug_inflight)
{
    json_object *ret, *ev;
    uint16_t cid[2];

    ret = qmp_ok(env.qmp, "blockdev-del", "{'node-name': 'd2'}");
    json_object_put(ret);
    ret = qmp_okf(env.qmp, "blockdev-add", "{'driver': 'null', "
                  "'node-name': 'd2', 'size': %llu}", IMG_SIZE);
    json_object_put(ret);
    ret = qmp_ok(env.qmp, "device_add", "{'driver': 'nvme-ns', 'id': 'ns4', "
                 "'subsys': 'subsys0', 'drive': 'd2', 'shared': true}");
    json_object_put(ret);
    for (unsigned i = 0; i < 2; i++) {
        enable_ns_events(&env.h[i]);
        flood(&env.h[i], 4, 16);
    }
    ret = qmp_ok(env.qmp, "device_del", "{'id': 'ns4'}");
    json_object_put(ret);
    for (unsigned i = 0; i < 2; i++) {
        for (unsigned j = 0; j < 16; j++) {
            NvmeCqe cqe;
            uint16_t st;

            qnvme_wait(env.h[i].q, qnvme_ioq(env.h[i].q, 1), &cqe, 0);
            st = qnvme_status(&cqe);
            ck_assert_msg(st == NVME_SUCCESS || st == DNR(NVME_INVALID_NSID),
                          "status 0x%x", st);
        }
        cid[i] = qnvme_submit_aer(env.h[i].q);
        wait_ns_changed(&env.h[i], cid[i]);
        assert_active(&env.h[i], 1, i ? 0 : 2, 0);
    }
    ev = qmp_client_wait_event(env.qmp, "DEVICE_DELETED", 0);
    json_object_put(ev);
    ret = qmp_ok(env.qmp, "blockdev-del", "{'node-name': 'd2'}");
    json_object_put(ret);
}
END_TEST

/* The subsystem goes: its namespaces with it, its controllers stay. */
START_TEST(test_subsys_unplug)
{
    json_object *ret, *ev;
    uint16_t cid[2];

    for (unsigned i = 0; i < 2; i++) {
        enable_ns_events(&env.h[i]);
        cid[i] = qnvme_submit_aer(env.h[i].q);
    }
    ret = qmp_ok(env.qmp, "device_del", "{'id': 'subsys0'}");
    json_object_put(ret);
    ev = qmp_client_wait_event(env.qmp, "DEVICE_DELETED", 0);
    ck_assert_str_eq(qmp_get_str(qmp_get(ev, "data"), "device"), "subsys0");
    json_object_put(ev);
    for (unsigned i = 0; i < 2; i++) {
        wait_ns_changed(&env.h[i], cid[i]);
        assert_active(&env.h[i], 0, 0, 0);
        ck_assert_int_eq(host_write(&env.h[i], 1, 0, 8, 30),
                         DNR(NVME_INVALID_NSID));
    }
    ret = qmp_ok(env.qmp, "query-nvme-subsystems", NULL);
    ck_assert_int_eq(json_object_array_length(ret), 0);
    json_object_put(ret);
    ret = qmp_ok(env.qmp, "blockdev-del", "{'node-name': 'd0'}");
    json_object_put(ret);
}
END_TEST

/* nqn=, and what a subsystem or its controllers refuse. */
START_TEST(test_subsys_config)
{
    g_autofree char *sock = iovd_proc_path(env.proc, "nvme7.sock");
    g_autofree char *err = NULL;
    g_autofree char *longnqn = g_strnfill(224, 'n');
    json_object *ret, *s;

    ret = qmp_ok(env.qmp, "device_add", "{'driver': 'nvme-subsys', "
                 "'id': 'other', 'nqn': 'nqn.2014-08.org.example:other'}");
    json_object_put(ret);
    ret = qmp_ok(env.qmp, "query-nvme-subsystems", NULL);
    ck_assert_int_eq(json_object_array_length(ret), 2);
    s = json_object_array_get_idx(ret, 1);
    ck_assert_str_eq(qmp_get_str(s, "id"), "other");
    ck_assert_str_eq(qmp_get_str(s, "nqn"), "nqn.2014-08.org.example:other");
    ck_assert_int_eq(json_object_array_length(qmp_get(s, "controllers")),
                     0);
    json_object_put(ret);
    err = qmp_errf(env.qmp, "GenericError", "device_add", "{'driver': "
                   "'nvme-subsys', 'id': 'long', 'nqn': '%s'}", longnqn);
    ck_assert_msg(strstr(err, "nqn"), "%s", err);
    g_free(g_steal_pointer(&err));
    err = qmp_errf(env.qmp, "GenericError", "device_add", "{'driver': "
                   "'nvme', 'id': 'nvme7', 'subsys': 'nosuch', "
                   "'socket': '%s'}", sock);
    ck_assert_msg(strstr(err, "not an nvme-subsys"), "%s", err);
    g_free(g_steal_pointer(&err));
    /* A controller's own namespace 1 against the subsystem's. */
    err = qmp_errf(env.qmp, "GenericError", "device_add", "{'driver': "
                   "'nvme', 'id': 'nvme7', 'subsys': 'subsys0', "
                   "'drive': 'd1', 'share-rw': true, 'socket': '%s'}", sock);
    ck_assert_msg(strstr(err, "namespace 1"), "%s", err);
    g_free(g_steal_pointer(&err));
    err = qmp_err(env.qmp, "GenericError", "device_add", "{'driver': "
                  "'nvme-ns', 'subsys': 'subsys0', 'drive': 'nosuch'}");
    ck_assert_msg(strstr(err, "nosuch"), "%s", err);
    /* Nothing was left half made. */
    ret = qmp_ok(env.qmp, "query-nvme-subsystems", NULL);
    s = json_object_array_get_idx(ret, 0);
    ck_assert_int_eq(json_object_array_length(qmp_get(s, "controllers")),
                     2);
    ck_assert_int_eq(json_object_array_length(qmp_get(s, "namespaces")),
                     3);
    json_object_put(ret);
}
END_TEST

/* One NSID namespace per controller: its own or the subsystem's. */
START_TEST(test_nsid_conflicts)
{
    json_object *ret;
    g_autofree char *err = NULL;
    bool seen = false;

    ret = qmp_ok(env.qmp, "blockdev-add", "{'driver': 'null', "
                 "'node-name': 'n5', 'size': 1048576}");
    json_object_put(ret);
    err = qmp_err(env.qmp, "GenericError", "device_add",
                  "{'driver': 'nvme-ns', 'bus': 'nvme0', 'drive': 'n5', "
                  "'nsid': 3}");
    ck_assert_msg(strstr(err, "subsystem 'subsys0'"), "%s", err);
    ret = qmp_ok(env.qmp, "device_add", "{'driver': 'nvme-ns', 'id': "
                 "'own5', 'bus': 'nvme0', 'drive': 'n5', 'nsid': 5}");
    json_object_put(ret);
    g_free(g_steal_pointer(&err));
    err = qmp_err(env.qmp, "GenericError", "device_add",
                  "{'driver': 'nvme-ns', 'subsys': 'subsys0', "
                  "'drive': 'd2', 'nsid': 5}");
    ck_assert_msg(strstr(err, "of its own"), "%s", err);
    assert_active(&env.h[0], 1, 2, 5);
    /* Each controller opened the shared node with a backend of its own. */
    ret = qmp_ok(env.qmp, "query-block", NULL);
    for (size_t i = 0; i < json_object_array_length(ret); i++) {
        const char *dev = qmp_get_str(json_object_array_get_idx(ret, i),
                                      "device");

        seen |= strcmp(dev, "ns1@nvme1") == 0;
    }
    json_object_put(ret);
    ck_assert(seen);
}
END_TEST

/* A destination daemon on the same images, its devices left reset. */
static void dst_start(void)
{
    g_autofree char *qmp = NULL;

    env.dst = iovd_proc_new();
    qmp = configure(env.dst);
    iovd_proc_start(env.dst);
    env.dst_qmp = qmp_client_open(qmp);
}

static void dst_ns(const char *cmd, uint32_t nsid, const char *ctrl)
{
    json_object *ret = qmp_okf(env.dst_qmp, cmd, "{'subsys': 'subsys0', "
                               "'nsid': %u, 'controller': '%s'}", nsid,
                               ctrl);

    json_object_put(ret);
}

/*
 * VM 2's controller moves to another daemon with the namespaces attached
 * to it (namespace 3 attached at run time, there too); VM 1 stays.
 */
START_TEST(test_migrate)
{
    QNvmeHost *h = &env.h[1];

    qmp_ns("nvme-ns-attach", 3, "nvme1");
    ck_assert_int_eq(host_write(&env.h[0], 1, 0, 8, 40), NVME_SUCCESS);
    ck_assert_int_eq(host_write(h, 3, 0, 8, 41), NVME_SUCCESS);
    dst_start();
    dst_ns("nvme-ns-attach", 3, "nvme1");
    qnvme_host_migrate(h, env.dst, 1);
    /* Through the destination, what both wrote; then the other way. */
    assert_active(h, 1, 3, 0);
    check_id_ctrl(h, 1);
    host_check(h, 1, 1, 0, 8, 40);
    host_check(h, 2, 3, 0, 8, 41);
    ck_assert_int_eq(host_write(h, 1, 16, 8, 42), NVME_SUCCESS);
    ck_assert_int_eq(qnvme_flush(h->q, qnvme_ioq(h->q, 1), 1), NVME_SUCCESS);
    host_check(&env.h[0], 1, 1, 16, 8, 42);
}
END_TEST

/* A destination with other namespaces attached refuses the state. */
START_TEST(test_migrate_other_namespaces)
{
    g_autoptr(GByteArray) state = g_byte_array_new();
    g_autofree char *sock = NULL;
    VfuClient *c;

    qmp_ns("nvme-ns-attach", 3, "nvme1");
    qmp_ns("nvme-ns-detach", 2, "nvme0");
    dst_start();
    sock = iovd_proc_path(env.dst, "nvme1.sock");
    ck_assert_int_eq(qmig_set_state(env.h[1].c, QMIG_STOP_COPY), 0);
    ck_assert_int_eq(qmig_read_state(env.h[1].c, state), 0);
    /* Stopped, its namespaces hold still. */
    expect_err("GenericError", "nvme-ns-detach",
               "{'subsys': 'subsys0', 'nsid': 3, 'controller': 'nvme1'}",
               "is stopped");
    expect_err("GenericError", "nvme-ns-attach",
               "{'subsys': 'subsys0', 'nsid': 2, 'controller': 'nvme1'}",
               "is stopped");
    c = vfu_client_open(sock);
    ck_assert_int_eq(qmig_set_state(c, QMIG_RESUMING), 0);
    ck_assert_int_eq(qmig_write_state(c, state->data, state->len, 0), 0);
    ck_assert_int_eq(qmig_set_state(c, QMIG_STOP), -EINVAL);
    ck_assert_int_eq(vfu_device_reset(c), 0);
    vfu_client_free(c);
    /* The source goes on. */
    ck_assert_int_eq(qmig_set_state(env.h[1].c, QMIG_STOP), 0);
    ck_assert_int_eq(qmig_set_state(env.h[1].c, QMIG_RUNNING), 0);
    ck_assert_int_eq(host_write(&env.h[1], 3, 0, 8, 43), NVME_SUCCESS);
}
END_TEST

static void add(Suite *s, const char *name, const TTest *t)
{
    TCase *tc = qos_check_tcase(s, name, setup, teardown, 60);

    tcase_add_test(tc, t);
}

static void add_iothreads(Suite *s, const char *name, const TTest *t)
{
    TCase *tc = qos_check_tcase(s, name, setup_iothreads, teardown, 60);

    tcase_add_test(tc, t);
}

static Suite *nvme_subsys_suite(void)
{
    Suite *s = suite_create("nvme-subsys");

    add(s, "identify", test_identify);
    add(s, "shared_io", test_shared_io);
    add(s, "private_moves", test_private_moves);
    add(s, "detach_attach", test_detach_attach);
    add(s, "qmp", test_qmp);
    add(s, "hotplug", test_hotplug);
    add(s, "concurrent_io", test_concurrent_io);
    add(s, "ctrl_unplug", test_ctrl_unplug);
    add(s, "subsys_unplug", test_subsys_unplug);
    add(s, "unplug_inflight", test_unplug_inflight);
    add_iothreads(s, "iothreads_unplug_inflight", test_unplug_inflight);
    add(s, "nsid_conflicts", test_nsid_conflicts);
    add(s, "subsys_config", test_subsys_config);
    add(s, "migrate", test_migrate);
    add(s, "migrate_other_namespaces", test_migrate_other_namespaces);
    add_iothreads(s, "iothreads_migrate", test_migrate);
    add_iothreads(s, "iothreads_subsys_unplug", test_subsys_unplug);
    add_iothreads(s, "iothreads_identify", test_identify);
    add_iothreads(s, "iothreads_concurrent_io", test_concurrent_io);
    add_iothreads(s, "iothreads_detach_attach", test_detach_attach);
    add_iothreads(s, "iothreads_hotplug", test_hotplug);
    return s;
}

int main(void)
{
    return qos_check_run(nvme_subsys_suite());
}
