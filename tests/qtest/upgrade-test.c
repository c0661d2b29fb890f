/*
 * Live upgrade (QMP "upgrade", hw/core/upgrade.h): a new iovd started
 * with only -incoming takes over a running one while the harness, playing
 * the VMM, keeps its vfio-user connections to an NVMe controller and a
 * pci-testdev, with I/O in flight.  Also: failed upgrades resume the old
 * daemon, refusals, and the monitor's deferred reply (the client's next
 * commands wait, other clients are served, a client that leaves first).
 *
 * The first daemon's temporary directory holds every socket and the disk
 * image for the whole test: each new daemon only has its -incoming socket
 * in its own directory.
 */
#include "util/osdep.h"

#include <check.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "tests/qtest/libqos/qos-check.h"
#include "tests/qtest/libqos/iovd-proc.h"
#include "tests/qtest/libqos/qmp-client.h"
#include "tests/qtest/libqos/guest-mem.h"
#include "tests/qtest/libqos/pci.h"
#include "tests/qtest/libqos/pci-testdev.h"
#include "tests/qtest/libqos/nvme-disk.h"

#define IMG_SIZE        (8u << 20)
#define GM_SIZE         (16ull << 20)
#define NIO             8           /* NVMe writes in flight per round */
#define NHELD           4           /* queued, doorbell rung only after */
#define BLK             512
#define EXIT_TIMEOUT_MS 15000

static IovdProc *home;              /* the first daemon: sockets, image */
static IovdProc *cur;               /* the daemon that runs now */
static char *qmp_path;
static QmpClient *qmp;

/* The VMM's side: one guest RAM mapped into both devices. */
static GuestMem *gm;
static VfuClient *nvme_c, *t_c;
static QPCIDevice *nvme_dev, *tdev;
static QNvme *q;

/* ---- fixture ---- */

static void setup(void)
{
    g_autofree char *img = NULL, *bd = NULL, *nvme_sock = NULL;
    g_autofree char *t_sock = NULL;

    qos_check_init();
    home = cur = iovd_proc_new();
    img = iovd_proc_image(home, "disk.img", IMG_SIZE);
    bd = g_strdup_printf("driver=file,node-name=d0,filename=%s", img);
    qnvme_disk_configure(home, bd);
    t_sock = iovd_proc_path(home, "t0.sock");
    iovd_proc_add_args(home, "-device", NULL);
    iovd_proc_add_argf(home, "pci-testdev,id=t0,socket=%s", t_sock);
    iovd_proc_start(home);
    qmp_path = iovd_proc_path(home, "qmp.sock");
    qmp = qmp_client_open(qmp_path);

    gm = guest_mem_new(GUEST_MEM_DEFAULT_BASE, GM_SIZE);
    nvme_sock = iovd_proc_path(home, "nvme0.sock");
    nvme_c = vfu_client_open(nvme_sock);
    nvme_dev = qpci_device_new(nvme_c);
    guest_mem_map_checked(gm, nvme_c, true);
    q = qnvme_new(nvme_dev, gm);
    qnvme_init(q, 1, 64);

    t_c = vfu_client_open(t_sock);
    tdev = qpci_device_new(t_c);
    qpci_device_enable(tdev);
    guest_mem_map_checked(gm, t_c, true);
    qpci_msix_enable(tdev, 2);
}

static void teardown(void)
{
    g_clear_pointer(&qmp, qmp_client_free);
    qnvme_free(q);
    qpci_device_free(nvme_dev);
    qpci_device_free(tdev);
    vfu_client_free(nvme_c);
    vfu_client_free(t_c);
    guest_mem_free(gm);
    iovd_proc_stop(cur);
    if (cur != home) {
        iovd_proc_free(cur);
    }
    iovd_proc_free(home);
    g_clear_pointer(&qmp_path, g_free);
}

/* ---- the guest's I/O ---- */

/* LBA of write @i (8 blocks each, 64 apart). */
static uint64_t slot_lba(unsigned i)
{
    return 64ull * i;
}

/* Queue writes [@first, @first + @n) of 4 KiB, pattern @first + i. */
static void queue_writes(unsigned first, unsigned n, bool ring)
{
    QNvmeQueue *ioq = qnvme_ioq(q, 1);

    for (unsigned i = first; i < first + n; i++) {
        uint64_t buf = guest_alloc_aligned(gm, 4096, 4096);
        NvmeCmd cmd;

        guest_memset(gm, buf, (uint8_t)(0x40 + i), 4096);
        qnvme_rw_cmd(q, &cmd, NVME_CMD_WRITE, 1, slot_lba(i), 8, buf);
        qnvme_queue_cmd(q, ioq, &cmd);
    }
    if (ring) {
        qnvme_ring_sq(q, ioq);
    }
}

static void wait_completions(unsigned n)
{
    NvmeCqe cqe;

    for (unsigned i = 0; i < n; i++) {
        qnvme_wait(q, qnvme_ioq(q, 1), &cqe, 0);
        ck_assert_uint_eq(qnvme_status(&cqe), NVME_SUCCESS);
    }
}

/* Read slots [@first, @first + @n) back: each holds its pattern. */
static void check_writes(unsigned first, unsigned n)
{
    uint64_t buf = guest_alloc_aligned(gm, 4096, 4096);

    for (unsigned i = first; i < first + n; i++) {
        const uint8_t *p = guest_ptr(gm, buf, 4096);

        guest_memset(gm, buf, 0xee, 4096);
        ck_assert_uint_eq(qnvme_rw(q, qnvme_ioq(q, 1), NVME_CMD_READ, 1,
                                   slot_lba(i), 8, buf), NVME_SUCCESS);
        ck_assert_msg(p[0] == (uint8_t)(0x40 + i) &&
                      p[4095] == (uint8_t)(0x40 + i),
                      "write %u read back 0x%02x", i, p[0]);
    }
    guest_free(gm, buf);
}

/* One more write completes and signals its MSI-X vector's eventfd. */
static void check_nvme_msix(unsigned slot)
{
    QNvmeQueue *ioq = qnvme_ioq(q, 1);
    int fd = qpci_msix_fd(nvme_dev, ioq->vector);

    qpci_eventfd_clear(fd);
    queue_writes(slot, 1, true);
    ck_assert(qpci_eventfd_wait(nvme_dev, fd, QOS_TIMEOUT_MS));
    wait_completions(1);
    check_writes(slot, 1);
}

/* Registers, a DMA through BAR2 and vector 0 of pci-testdev. */
static void check_testdev(uint32_t scratch, uint8_t seed)
{
    uint64_t out = guest_alloc(gm, 4096);
    const uint8_t *p = guest_ptr(gm, out, 4096);

    ck_assert_uint_eq(testdev_readl(tdev, TESTDEV_REG_ID), TESTDEV_ID_VALUE);
    ck_assert_uint_eq(testdev_readl(tdev, TESTDEV_REG_SCRATCH), scratch);
    qpci_eventfd_clear(qpci_msix_fd(tdev, 0));
    testdev_writel(tdev, TESTDEV_REG_INT_ACK, ~0u);
    guest_memset(gm, out, 0, 4096);
    ck_assert_uint_eq(testdev_dma(tdev, out, 4096, 0x1000,
                                  TESTDEV_DMA_FROM_DEVICE),
                      TESTDEV_INT_DMA_DONE);
    qpci_msix_wait(tdev, 0);
    for (unsigned i = 0; i < 4096; i++) {
        ck_assert_msg(p[i] == (uint8_t)(seed + i * 7), "BAR2 byte %u", i);
    }
    guest_free(gm, out);
}

/* BAR2 [0x1000, +4 KiB) gets pattern @seed by DMA; SCRATCH @scratch. */
static void load_testdev(uint32_t scratch, uint8_t seed)
{
    uint64_t in = guest_alloc(gm, 4096);
    uint8_t *p = guest_ptr(gm, in, 4096);

    for (unsigned i = 0; i < 4096; i++) {
        p[i] = seed + i * 7;
    }
    testdev_writel(tdev, TESTDEV_REG_SCRATCH, scratch);
    testdev_writel(tdev, TESTDEV_REG_INT_ACK, ~0u);
    ck_assert_uint_eq(testdev_dma(tdev, in, 4096, 0x1000,
                                  TESTDEV_DMA_TO_DEVICE),
                      TESTDEV_INT_DMA_DONE);
    guest_free(gm, in);
}

/* ---- daemons ---- */

/* A new daemon with only -incoming; *@uri is where it listens. */
static IovdProc *start_incoming(char **uri)
{
    IovdProc *p = iovd_proc_new();
    g_autofree char *path = iovd_proc_path(p, "upgrade.sock");

    iovd_proc_set_plain(p);
    iovd_proc_add_args(p, "-incoming", NULL);
    iovd_proc_add_argf(p, "unix:%s", path);
    iovd_proc_start(p);
    *uri = g_strdup_printf("unix:%s", path);
    return p;
}

/* The monitor answers (a fresh client); returns that client. */
static QmpClient *check_monitor(void)
{
    QmpClient *c = qmp_client_open(qmp_path);
    json_object *ret = qmp_ok(c, "query-status", NULL);

    ck_assert(qmp_get_bool(ret, "running"));
    ck_assert_str_eq(qmp_get_str(ret, "status"), "running");
    json_object_put(ret);
    return c;
}

/* Upgrade @cur to a fresh daemon: {} and the old one exits 0. */
static void upgrade_ok(void)
{
    g_autofree char *uri = NULL;
    IovdProc *next = start_incoming(&uri);
    json_object *ret, *ev, *up;
    pid_t old_pid = iovd_proc_pid(cur);
    int status;

    ret = qmp_okf(qmp, "upgrade", "{'uri': '%s'}", uri);
    ck_assert_int_eq(json_object_object_length(ret), 0);
    json_object_put(ret);
    ev = qmp_client_wait_event(qmp, "SHUTDOWN", 0);
    ck_assert_str_eq(qmp_get_str(qmp_get(ev, "data"), "reason"), "upgrade");
    json_object_put(ev);
    status = iovd_proc_wait_exit(cur, EXIT_TIMEOUT_MS);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "the old daemon %s",
                  iovd_proc_describe_status(status));
    iovd_proc_assert_alive(next);
    if (cur != home) {
        iovd_proc_free(cur);
    }
    cur = next;
    /* The old monitor connection ended; the same path reaches the new. */
    qmp_client_free(qmp);
    qmp = check_monitor();
    /* ... which says it took over, and from whom. */
    ret = qmp_ok(qmp, "query-status", NULL);
    up = qmp_get(ret, "upgrade");
    ck_assert_str_eq(qmp_get_str(up, "state"), "completed");
    ck_assert_int_eq(qmp_get_int(up, "from-pid"), old_pid);
    ck_assert_int_gt(qmp_get_int(up, "downtime-us"), 0);
    ck_assert_int_lt(qmp_get_int(up, "downtime-us"), 30 * 1000 * 1000);
    json_object_put(ret);
}

/* ---- the upgrade ---- */

/*
 * One round: writes rung and not waited for, writes queued and rung only
 * after, a testdev DMA started and not waited for, then the upgrade; the
 * connections are never made again.
 */
static void upgrade_round(unsigned round)
{
    unsigned first = round * (NIO + NHELD + 1);
    uint32_t scratch = 0x5eed0000 + round;
    uint64_t out = guest_alloc(gm, 4096);
    const uint8_t *p = guest_ptr(gm, out, 4096);
    uint32_t count;
    NvmeCqe cqe;

    load_testdev(scratch, round);
    count = testdev_readl(tdev, TESTDEV_REG_DMA_COUNT);
    testdev_writel(tdev, TESTDEV_REG_INT_ACK, ~0u);
    guest_memset(gm, out, 0, 4096);
    testdev_dma_start(tdev, out, 4096, 0x1000, TESTDEV_DMA_FROM_DEVICE,
                      true);
    queue_writes(first, NIO, true);
    queue_writes(first + NIO, NHELD, false);

    upgrade_ok();

    ck_assert(!vfu_client_closed(nvme_c));
    ck_assert(!vfu_client_closed(t_c));
    /* The DMA started before ran once, on either side. */
    ck_assert(testdev_dma_wait(tdev) & TESTDEV_INT_DMA_DONE);
    ck_assert_uint_eq(testdev_readl(tdev, TESTDEV_REG_DMA_COUNT), count + 1);
    ck_assert_uint_eq(p[100], (uint8_t)(round + 100 * 7));
    guest_free(gm, out);
    /* The SQ entries behind the doorbell moved with the controller. */
    qnvme_ring_sq(q, qnvme_ioq(q, 1));
    wait_completions(NIO + NHELD);
    ck_assert(!qnvme_try_wait(q, qnvme_ioq(q, 1), &cqe, 100));
    check_writes(first, NIO + NHELD);
    check_nvme_msix(first + NIO + NHELD);
    check_testdev(scratch, round);
    vfu_client_assert_clean(nvme_c);
    vfu_client_assert_clean(t_c);
}

START_TEST(test_upgrade)
{
    upgrade_round(0);
}
END_TEST

START_TEST(test_upgrade_three_times)
{
    for (unsigned round = 0; round < 3; round++) {
        upgrade_round(round);
    }
    /* Everything written in every round is still there. */
    check_writes(0, 3 * (NIO + NHELD + 1));
}
END_TEST

/* ---- a destination that fails ---- */

typedef enum FakeMode {
    FAKE_CLOSE,         /* accept and close at once */
    FAKE_GARBAGE,       /* read a little, answer garbage, close */
    FAKE_HOLD,          /* read everything until released, then close */
} FakeMode;

/* The test's own listener posing as a new process, on a thread. */
typedef struct FakeDest {
    FakeMode mode;
    char *uri;
    int listen_fd;
    int release_fd;             /* eventfd: FAKE_HOLD lets go */
    gint accepted;
    GThread *thread;
} FakeDest;

/* Read what comes until @f is released, EOF, or a long time. */
static void fake_drain(FakeDest *f, int fd)
{
    struct pollfd pfd[2] = {
        { .fd = fd, .events = POLLIN },
        { .fd = f->release_fd, .events = POLLIN },
    };
    char buf[65536];

    while (poll(pfd, 2, 30000) > 0 && !pfd[1].revents) {
        if (read(fd, buf, sizeof(buf)) <= 0) {
            /* The daemon gave up: wait for the release all the same. */
            pfd[0].fd = -1;
        }
    }
}

static gpointer fake_run(gpointer opaque)
{
    static const char junk[] = "this is no iovd answer\n\xff\xff\xff\xff";
    FakeDest *f = opaque;
    struct pollfd pfd = { .fd = f->listen_fd, .events = POLLIN };
    char buf[4096];
    int fd;

    if (poll(&pfd, 1, 20000) <= 0) {
        return NULL;
    }
    fd = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        return NULL;
    }
    g_atomic_int_set(&f->accepted, 1);
    if (f->mode == FAKE_GARBAGE) {
        pfd.fd = fd;
        if (poll(&pfd, 1, 2000) > 0 && read(fd, buf, sizeof(buf)) > 0) {
            send(fd, junk, sizeof(junk), MSG_NOSIGNAL);
        }
    } else if (f->mode == FAKE_HOLD) {
        fake_drain(f, fd);
    }
    close(fd);
    return NULL;
}

static FakeDest *fake_start(FakeMode mode)
{
    FakeDest *f = g_new0(FakeDest, 1);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    g_autofree char *path = iovd_proc_path(home, "fake.sock");

    unlink(path);
    f->mode = mode;
    f->uri = g_strdup_printf("unix:%s", path);
    f->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    qos_assert(f->listen_fd >= 0 &&
               bind(f->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
               listen(f->listen_fd, 4) == 0, "fake listener: %s",
               g_strerror(errno));
    f->release_fd = eventfd(0, EFD_CLOEXEC);
    qos_assert(f->release_fd >= 0, "eventfd: %s", g_strerror(errno));
    f->thread = g_thread_new("fake-dest", fake_run, f);
    return f;
}

static void fake_wait_accepted(FakeDest *f)
{
    int64_t deadline = qos_deadline(QOS_TIMEOUT_MS);

    while (!g_atomic_int_get(&f->accepted)) {
        qos_assert(qos_remaining_ms(deadline), "the daemon never connected "
                   "to the fake new process");
        g_usleep(2000);
    }
}

static void fake_release(FakeDest *f)
{
    uint64_t one = 1;

    qos_assert(write(f->release_fd, &one, sizeof(one)) == sizeof(one),
               "eventfd write");
}

static void fake_free(FakeDest *f)
{
    fake_release(f);
    g_thread_join(f->thread);
    close(f->listen_fd);
    close(f->release_fd);
    g_free(f->uri);
    g_free(f);
}

static int connect_unix(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    qos_assert(fd >= 0 && connect(fd, (struct sockaddr *)&sa,
                                  sizeof(sa)) == 0,
               "connect(%s): %s", path, g_strerror(errno));
    return fd;
}

/* UPGRADE_FAILED on @c, with a reason. */
static void check_failed_event(QmpClient *c)
{
    json_object *ev = qmp_client_wait_event(c, "UPGRADE_FAILED", 0);

    ck_assert_uint_gt(strlen(qmp_get_str(qmp_get(ev, "data"), "reason")), 0);
    json_object_put(ev);
}

/* The daemon runs on: the same connections, I/O and its monitor. */
static void check_still_running(unsigned slot, uint32_t scratch,
                                uint8_t seed)
{
    g_autoptr(QmpClient) c = NULL;

    iovd_proc_assert_alive(cur);
    ck_assert(!vfu_client_closed(nvme_c));
    ck_assert(!vfu_client_closed(t_c));
    check_nvme_msix(slot);
    check_testdev(scratch, seed);
    c = check_monitor();
}

static void upgrade_fails(FakeMode mode)
{
    FakeDest *f = fake_start(mode);
    g_autofree char *desc = NULL;

    load_testdev(0xfa11, 9);
    queue_writes(0, NIO, true);
    desc = qmp_errf(qmp, "GenericError", "upgrade", "{'uri': '%s'}",
                    f->uri);
    ck_assert_uint_gt(strlen(desc), 0);
    check_failed_event(qmp);
    fake_free(f);
    wait_completions(NIO);
    check_writes(0, NIO);
    check_still_running(NIO, 0xfa11, 9);
    /* And it can still be upgraded. */
    upgrade_round(1);
}

START_TEST(test_fail_closed)
{
    upgrade_fails(FAKE_CLOSE);
}
END_TEST

START_TEST(test_fail_garbage)
{
    upgrade_fails(FAKE_GARBAGE);
}
END_TEST

/* ---- refusals ---- */

START_TEST(test_bad_uri)
{
    g_autofree char *nobody = iovd_proc_path(home, "nobody.sock");
    static const char *const bad[] = {
        "tcp:127.0.0.1:4444", "unix:", "", "unix", "fd:3",
    };

    load_testdev(0xbad, 5);
    for (unsigned i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autofree char *desc = qmp_errf(qmp, "GenericError", "upgrade",
                                         "{'uri': '%s'}", bad[i]);

        ck_assert_uint_gt(strlen(desc), 0);
    }
    g_free(qmp_err(qmp, "GenericError", "upgrade", "{}"));
    g_free(qmp_errf(qmp, "GenericError", "upgrade", "{'uri': 'unix:%s'}",
                    nobody));
    g_free(qmp_err(qmp, "GenericError", "upgrade",
                   "{'uri': 'unix:/x', 'port': 1}"));
    check_still_running(0, 0xbad, 5);
}
END_TEST

START_TEST(test_refused_after_device_add)
{
    g_autofree char *t1 = iovd_proc_path(home, "t1.sock");
    g_autofree char *uri = NULL;
    g_autoptr(IovdProc) next = start_incoming(&uri);
    g_autofree char *desc = NULL;

    json_object_put(qmp_okf(qmp, "device_add", "{'driver': 'pci-testdev', "
                            "'id': 't1', 'socket': '%s'}", t1));
    load_testdev(0xadd, 6);
    desc = qmp_errf(qmp, "GenericError", "upgrade", "{'uri': '%s'}", uri);
    ck_assert_msg(strstr(desc, "device_add") && strstr(desc, "'t1'"),
                  "%s", desc);
    /* Nothing was handed over: the new process still waits. */
    iovd_proc_assert_alive(next);
    check_still_running(0, 0xadd, 6);
}
END_TEST

/* A network backend cannot move yet: refused up front, nothing stops. */
START_TEST(test_refused_netdev)
{
    g_autoptr(IovdProc) p = iovd_proc_new();
    g_autofree char *net = iovd_proc_path(p, "net.sock");
    g_autofree char *mon = iovd_proc_path(p, "qmp.sock");
    g_autofree char *uri = NULL;
    g_autoptr(IovdProc) next = start_incoming(&uri);
    QmpClient *c;
    g_autofree char *desc = NULL;
    json_object *st;

    iovd_proc_add_args(p, "-netdev", NULL);
    iovd_proc_add_argf(p, "stream,id=n0,server=on,addr.type=unix,"
                       "addr.path=%s", net);
    iovd_proc_add_args(p, "-qmp", NULL);
    iovd_proc_add_argf(p, "unix:%s,server=on,wait=off", mon);
    iovd_proc_start(p);
    c = qmp_client_open(mon);
    desc = qmp_errf(c, "GenericError", "upgrade", "{'uri': '%s'}", uri);
    ck_assert_msg(strstr(desc, "netdev 'n0' (stream)"), "%s", desc);
    st = qmp_ok(c, "query-status", NULL);
    ck_assert(qmp_get_bool(st, "running"));
    ck_assert(!json_object_object_get_ex(st, "upgrade", NULL));
    json_object_put(st);
    iovd_proc_assert_alive(next);
    qmp_client_free(c);
    iovd_proc_stop(p);
}
END_TEST

/* ---- the deferred reply ---- */

/*
 * While the reply waits: the client's next command waits behind it,
 * another client is served, commands that would change what is handed
 * over are refused, and a second upgrade too.  Then the answers come in
 * order.
 */
START_TEST(test_reply_deferred)
{
    FakeDest *f = fake_start(FAKE_HOLD);
    g_autoptr(QmpClient) other = qmp_client_open(qmp_path);
    g_autofree char *args = g_strdup_printf("{'uri': '%s'}", f->uri);
    g_autofree char *desc = NULL;
    int64_t up, after;
    json_object *resp, *ret;
    int late;

    load_testdev(0xdef, 7);
    up = qmp_client_send_cmd(qmp, "upgrade", args);
    after = qmp_client_send_cmd(qmp, "query-status", NULL);
    fake_wait_accepted(f);

    ret = qmp_ok(other, "query-version", NULL);
    json_object_put(ret);
    desc = qmp_err(other, "GenericError", "device_del", "{'id': 't0'}");
    ck_assert_msg(strstr(desc, "upgrade is in progress"), "%s", desc);
    g_free(g_steal_pointer(&desc));
    desc = qmp_err(other, "GenericError", "stop", NULL);
    ck_assert_msg(strstr(desc, "upgrade is in progress"), "%s", desc);
    g_free(qmp_err(other, "GenericError", "upgrade", args));
    /* Neither reply yet (a response here fails the test). */
    ck_assert_ptr_null(qmp_client_poll_event(qmp, "NO_SUCH_EVENT", 300));
    /* A client connecting now waits for the upgrade to end. */
    late = connect_unix(qmp_path);
    ck_assert(!qos_poll_fd(late, POLLIN, qos_deadline(200)));

    fake_release(f);
    resp = qmp_client_wait_response(qmp, up, 0);
    ck_assert_msg(json_object_object_get_ex(resp, "error", NULL), "%s",
                  qmp_json(resp));
    json_object_put(resp);
    resp = qmp_client_wait_response(qmp, after, 0);
    ck_assert(qmp_get_bool(qmp_get(resp, "return"), "running"));
    json_object_put(resp);
    check_failed_event(qmp);
    check_failed_event(other);
    fake_free(f);
    /* Its greeting came once the upgrade failed, from this daemon. */
    ck_assert(qos_poll_fd(late, POLLIN, qos_deadline(QOS_TIMEOUT_MS)));
    close(late);
    check_still_running(0, 0xdef, 7);
    /* The configuration did not change: a real upgrade works. */
    upgrade_round(1);
}
END_TEST

/*
 * The client leaves while its reply waits: the reply is dropped when it
 * comes, and nothing else notices.
 */
START_TEST(test_client_leaves)
{
    FakeDest *f = fake_start(FAKE_HOLD);
    g_autoptr(QmpClient) other = qmp_client_open(qmp_path);
    g_autofree char *args = g_strdup_printf("{'uri': '%s'}", f->uri);

    load_testdev(0x1eaf, 8);
    qmp_client_send_cmd(qmp, "upgrade", args);
    fake_wait_accepted(f);
    g_clear_pointer(&qmp, qmp_client_free);
    json_object_put(qmp_ok(other, "query-version", NULL));
    fake_release(f);
    check_failed_event(other);
    fake_free(f);
    json_object_put(qmp_ok(other, "query-status", NULL));
    check_still_running(0, 0x1eaf, 8);
    qmp = qmp_client_open(qmp_path);
    upgrade_round(1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("upgrade");
    TCase *tc;

    g_setenv("IOVD_QMP_STRICT", "1", true);
    tc = qos_check_tcase(s, "upgrade", setup, teardown, 120);
    tcase_add_test(tc, test_upgrade);
    tcase_add_test(tc, test_upgrade_three_times);

    tc = qos_check_tcase(s, "failures", setup, teardown, 120);
    tcase_add_test(tc, test_fail_closed);
    tcase_add_test(tc, test_fail_garbage);
    tcase_add_test(tc, test_bad_uri);
    tcase_add_test(tc, test_refused_after_device_add);
    tcase_add_test(tc, test_refused_netdev);

    tc = qos_check_tcase(s, "monitor", setup, teardown, 120);
    tcase_add_test(tc, test_reply_deferred);
    tcase_add_test(tc, test_client_leaves);
    return qos_check_run(s);
}
