/*
 * Live upgrade (QMP "upgrade", hw/core/upgrade.h): a new iovd started
 * with only -incoming takes over a running one while the harness, playing
 * the VMM, keeps its vfio-user connections to an NVMe controller and a
 * pci-testdev, with I/O in flight.  Also: failed upgrades resume the old
 * daemon, refusals, and the monitor's deferred reply (the client's next
 * commands wait, other clients are served, a client that leaves first).
 * Network backends: a virtio-net and an e1000 on streams the test serves,
 * and a virtio-net on a tap (root only), keep every frame both ways.
 * Then all five devices in one daemon, upgraded three times with I/O in
 * flight on each, and once on purpose not.
 *
 * The first daemon's temporary directory holds every socket and the disk
 * image for the whole test: each new daemon only has its -incoming socket
 * in its own directory.
 */
#include "util/osdep.h"

#include <check.h>
#include <poll.h>
#include <sched.h>
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <sys/wait.h>

#include "tests/qtest/libqos/qos-check.h"
#include "tests/qtest/libqos/iovd-proc.h"
#include "tests/qtest/libqos/iovd-upgrade.h"
#include "tests/qtest/libqos/qmp-client.h"
#include "tests/qtest/libqos/guest-mem.h"
#include "tests/qtest/libqos/pci.h"
#include "tests/qtest/libqos/pci-testdev.h"
#include "tests/qtest/libqos/nvme-disk.h"
#include "tests/qtest/libqos/nvme-host.h"
#include "tests/qtest/libqos/netpkt.h"
#include "tests/qtest/libqos/netstack.h"
#include "tests/qtest/libqos/virtio-net.h"
#include "tests/qtest/libqos/virtio-blk.h"
#include "tests/qtest/libqos/e1000.h"

#define IMG_SIZE        (8u << 20)
#define GM_SIZE         (16ull << 20)
#define NIO             8           /* NVMe writes in flight per round */
#define NHELD           4           /* queued, doorbell rung only after */
#define BLK             512

static IovdProc *home;              /* the first daemon: sockets, image */
static IovdProc *cur;               /* the daemon that runs now */
static char *qmp_path;
static QmpClient *qmp;

/* The VMM's side: one guest RAM mapped into both devices. */
static GuestMem *gm;
static VfuClient *nvme_c, *t_c, *vb_c;
static QPCIDevice *nvme_dev, *tdev, *vb_dev;
static QNvme *q;
static QVirtioDevice *vb;           /* virtio-blk vb0 on its own image */
#define NVB             6           /* its writes in flight per round */

/* ---- fixture ---- */

static void add_virtio_blk(void)
{
    g_autofree char *img = iovd_proc_image(home, "vblk.img", IMG_SIZE);
    g_autofree char *sock = iovd_proc_path(home, "vb0.sock");

    iovd_proc_add_args(home, "-blockdev", NULL);
    iovd_proc_add_argf(home, "driver=file,node-name=d1,filename=%s", img);
    iovd_proc_add_args(home, "-device", NULL);
    iovd_proc_add_argf(home, "virtio-blk-pci,id=vb0,drive=d1,socket=%s",
                       sock);
}

static void connect_virtio_blk(void)
{
    g_autofree char *sock = iovd_proc_path(home, "vb0.sock");

    vb_c = vfu_client_open(sock);
    vb_dev = qpci_device_new(vb_c);
    guest_mem_map_checked(gm, vb_c, true);
    vb = qvirtio_pci_new(vb_dev, gm);
    qvirtio_init(vb, &(QVirtioInit) {
        .features = VIRTIO_BIT(VIRTIO_F_VERSION_1) |
                    VIRTIO_BIT(VIRTIO_BLK_F_FLUSH),
        .nqueues = 1, .irq = QVIRTIO_IRQ_MSIX,
    });
}

/* NVMe nvme0, pci-testdev t0, virtio-blk vb0 and the monitor. */
static void blk_add(void)
{
    g_autofree char *img = iovd_proc_image(home, "disk.img", IMG_SIZE);
    g_autofree char *bd = NULL, *t_sock = iovd_proc_path(home, "t0.sock");

    bd = g_strdup_printf("driver=file,node-name=d0,filename=%s", img);
    qnvme_disk_configure(home, bd);
    iovd_proc_add_args(home, "-device", NULL);
    iovd_proc_add_argf(home, "pci-testdev,id=t0,socket=%s", t_sock);
    add_virtio_blk();
}

/* The VMM's side of blk_add's devices, brought up as a guest's drivers do. */
static void blk_connect(void)
{
    g_autofree char *nvme_sock = iovd_proc_path(home, "nvme0.sock");
    g_autofree char *t_sock = iovd_proc_path(home, "t0.sock");

    gm = guest_mem_new(GUEST_MEM_DEFAULT_BASE, GM_SIZE);
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
    connect_virtio_blk();
}

static void setup(void)
{
    qos_check_init();
    home = cur = iovd_proc_new();
    blk_add();
    iovd_proc_start(home);
    qmp_path = iovd_proc_path(home, "qmp.sock");
    qmp = qmp_client_open(qmp_path);
    blk_connect();
}

static void blk_free(void)
{
    g_clear_pointer(&q, qnvme_free);
    g_clear_pointer(&vb, qvirtio_free);
    g_clear_pointer(&nvme_dev, qpci_device_free);
    g_clear_pointer(&tdev, qpci_device_free);
    g_clear_pointer(&vb_dev, qpci_device_free);
    g_clear_pointer(&nvme_c, vfu_client_free);
    g_clear_pointer(&t_c, vfu_client_free);
    g_clear_pointer(&vb_c, vfu_client_free);
    g_clear_pointer(&gm, guest_mem_free);
}

/* The daemon that runs now, and the first one's directory. */
static void procs_free(void)
{
    g_clear_pointer(&qmp, qmp_client_free);
    if (cur) {
        iovd_proc_stop(cur);
        if (cur != home) {
            iovd_proc_free(cur);
        }
    }
    g_clear_pointer(&home, iovd_proc_free);
    cur = NULL;
    g_clear_pointer(&qmp_path, g_free);
}

static void teardown(void)
{
    blk_free();
    procs_free();
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

/* UPGRADE_TEST_TRACE=PATTERN: every daemon traces those events. */
static void add_trace(IovdProc *p)
{
    if (getenv("UPGRADE_TEST_TRACE")) {
        iovd_proc_add_args(p, "-trace", getenv("UPGRADE_TEST_TRACE"), NULL);
    }
}

/* A new daemon with only -incoming; *@uri is where it listens. */
static IovdProc *start_incoming(char **uri)
{
    return iovd_upgrade_target(uri, NULL);
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

/* Upgrade @cur to a fresh daemon, which becomes @cur. */
static void upgrade_ok(void)
{
    iovd_upgrade_step(home, &cur, &qmp, qmp_path);
}

/* virtio-blk: @n writes of sector 64 * (@first + i), patterned, kicked. */
static void vb_submit(QVirtioBlkReq *reqs, uint8_t (*bufs)[4096],
                      unsigned first, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        memset(bufs[i], 0x60 + first + i, 4096);
        reqs[i] = (QVirtioBlkReq) {
            .type = VIRTIO_BLK_T_OUT, .sector = 64 * (first + i),
            .data = bufs[i], .len = 4096,
        };
        qvirtio_blk_add(vb->vqs[0], &reqs[i]);
    }
    qvirtqueue_kick(vb->vqs[0]);
}

/* ... every one completed OK (on either side), and reads back. */
static void vb_check(QVirtioBlkReq *reqs, unsigned first, unsigned n)
{
    uint8_t buf[4096];

    for (unsigned i = 0; i < n; i++) {
        ck_assert_uint_eq(qvirtio_blk_finish(vb->vqs[0], &reqs[i]),
                          VIRTIO_BLK_S_OK);
    }
    for (unsigned i = 0; i < n; i++) {
        QVirtioBlkReq r = { .type = VIRTIO_BLK_T_IN,
                            .sector = 64 * (first + i), .data = buf,
                            .len = sizeof(buf) };

        memset(buf, 0xee, sizeof(buf));
        ck_assert_uint_eq(qvirtio_blk_request(vb->vqs[0], &r),
                          VIRTIO_BLK_S_OK);
        ck_assert_msg(buf[0] == (uint8_t)(0x60 + first + i) &&
                      buf[4095] == buf[0], "virtio-blk write %u: 0x%02x",
                      first + i, buf[0]);
    }
}

/* ---- the upgrade ---- */

/* What one round left in flight, to check after the upgrade. */
typedef struct BlkRound {
    unsigned round, first;
    uint32_t scratch, count;
    uint64_t out;
    QVirtioBlkReq vreqs[NVB];
} BlkRound;

/*
 * Before: NVMe writes rung and not waited for, writes queued and rung
 * only after, virtio-blk writes kicked, a testdev DMA started and not
 * waited for.
 */
static void blk_before(BlkRound *r, unsigned round)
{
    static uint8_t vbufs[NVB][4096];

    *r = (BlkRound) {
        .round = round, .first = round * (NIO + NHELD + 1),
        .scratch = 0x5eed0000 + round, .out = guest_alloc(gm, 4096),
    };
    load_testdev(r->scratch, round);
    r->count = testdev_readl(tdev, TESTDEV_REG_DMA_COUNT);
    testdev_writel(tdev, TESTDEV_REG_INT_ACK, ~0u);
    guest_memset(gm, r->out, 0, 4096);
    testdev_dma_start(tdev, r->out, 4096, 0x1000, TESTDEV_DMA_FROM_DEVICE,
                      true);
    queue_writes(r->first, NIO, true);
    queue_writes(r->first + NIO, NHELD, false);
    vb_submit(r->vreqs, vbufs, round * NVB, NVB);
}

/* After: the same connections; everything completed once, reads back. */
static void blk_after(BlkRound *r)
{
    const uint8_t *p = guest_ptr(gm, r->out, 4096);
    NvmeCqe cqe;

    ck_assert(!vfu_client_closed(nvme_c));
    ck_assert(!vfu_client_closed(t_c));
    ck_assert(!vfu_client_closed(vb_c));
    vb_check(r->vreqs, r->round * NVB, NVB);
    /* The DMA started before ran once, on either side. */
    ck_assert(testdev_dma_wait(tdev) & TESTDEV_INT_DMA_DONE);
    ck_assert_uint_eq(testdev_readl(tdev, TESTDEV_REG_DMA_COUNT),
                      r->count + 1);
    ck_assert_uint_eq(p[100], (uint8_t)(r->round + 100 * 7));
    guest_free(gm, r->out);
    /* The SQ entries behind the doorbell moved with the controller. */
    qnvme_ring_sq(q, qnvme_ioq(q, 1));
    wait_completions(NIO + NHELD);
    ck_assert(!qnvme_try_wait(q, qnvme_ioq(q, 1), &cqe, 100));
    check_writes(r->first, NIO + NHELD);
    check_nvme_msix(r->first + NIO + NHELD);
    check_testdev(r->scratch, r->round);
    vfu_client_assert_clean(nvme_c);
    vfu_client_assert_clean(t_c);
    vfu_client_assert_clean(vb_c);
}

/* One round with I/O in flight; the connections are never made again. */
static void upgrade_round(unsigned round)
{
    BlkRound r;

    blk_before(&r, round);
    upgrade_ok();
    blk_after(&r);
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

/*
 * The image files move as open files: with both renamed away from the
 * paths the command line gave, the new process still has them.
 */
START_TEST(test_images_move_open)
{
    g_autofree char *img = iovd_proc_path(home, "disk.img");
    g_autofree char *moved = iovd_proc_path(home, "disk-moved.img");
    g_autofree char *vimg = iovd_proc_path(home, "vblk.img");
    g_autofree char *vmoved = iovd_proc_path(home, "vblk-moved.img");
    uint8_t b[4096];
    int fd;

    ck_assert_int_eq(rename(img, moved), 0);
    ck_assert_int_eq(rename(vimg, vmoved), 0);
    upgrade_round(0);
    upgrade_round(1);
    /* What the new processes wrote is in the file the first one had. */
    fd = open(moved, O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pread(fd, b, sizeof(b), slot_lba(NIO + NHELD + 1) * BLK),
                     sizeof(b));
    ck_assert_uint_eq(b[0], (uint8_t)(0x40 + NIO + NHELD + 1));
    close(fd);
    ck_assert(!g_file_test(img, G_FILE_TEST_EXISTS));
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

/*
 * Devices added and deleted at run time: the new process makes the
 * configuration as it is now.  t1 (added) keeps its client and state,
 * t2 (added, deleted) is not made again, t0 and the rest go on.
 */
START_TEST(test_device_add_del)
{
    g_autofree char *t1 = iovd_proc_path(home, "t1.sock");
    g_autofree char *t2 = iovd_proc_path(home, "t2.sock");
    VfuClient *c1;
    QPCIDevice *d1;
    json_object *ev, *pci;

    json_object_put(qmp_okf(qmp, "device_add", "{'driver': 'pci-testdev', "
                            "'id': 't1', 'socket': '%s'}", t1));
    json_object_put(qmp_okf(qmp, "device_add", "{'driver': 'pci-testdev', "
                            "'id': 't2', 'socket': '%s'}", t2));
    json_object_put(qmp_ok(qmp, "device_del", "{'id': 't2'}"));
    ev = qmp_client_wait_event(qmp, "DEVICE_DELETED", 0);
    ck_assert_str_eq(qmp_get_str(qmp_get(ev, "data"), "device"), "t2");
    json_object_put(ev);
    c1 = vfu_client_open(t1);
    d1 = qpci_device_new(c1);
    qpci_device_enable(d1);
    testdev_writel(d1, TESTDEV_REG_SCRATCH, 0xadd1);

    upgrade_round(0);
    upgrade_round(1);
    ck_assert(!vfu_client_closed(c1));
    ck_assert_uint_eq(testdev_readl(d1, TESTDEV_REG_SCRATCH), 0xadd1);
    ck_assert(!g_file_test(t2, G_FILE_TEST_EXISTS));
    pci = qmp_ok(qmp, "query-pci", NULL);
    ck_assert_msg(strstr(qmp_json(pci), "\"t1\"") &&
                  !strstr(qmp_json(pci), "\"t2\""), "%s", qmp_json(pci));
    json_object_put(pci);
    qpci_device_free(d1);
    vfu_client_free(c1);
}
END_TEST

/* A disk resized at run time is that size in the new process. */
START_TEST(test_resize_then_upgrade)
{
    json_object_put(qmp_okf(qmp, "block_resize", "{'node-name': 'd1', "
                            "'size': %u}", IMG_SIZE * 2));
    ck_assert_uint_eq(qvirtio_config_readq(vb, 0), IMG_SIZE * 2 / 512);
    upgrade_round(0);
    ck_assert_uint_eq(qvirtio_config_readq(vb, 0), IMG_SIZE * 2 / 512);
    upgrade_round(1);
}
END_TEST

/* A change the new process would not make again refuses the upgrade. */
START_TEST(test_refused_after_throttle)
{
    g_autofree char *uri = NULL;
    g_autoptr(IovdProc) next = start_incoming(&uri);
    g_autofree char *desc = NULL;

    json_object_put(qmp_ok(qmp, "block_set_io_throttle", "{'id': 'vb0', "
                           "'bps': 0, 'bps_rd': 0, 'bps_wr': 0, "
                           "'iops': 100000, 'iops_rd': 0, 'iops_wr': 0}"));
    load_testdev(0xadd, 6);
    desc = qmp_errf(qmp, "GenericError", "upgrade", "{'uri': '%s'}", uri);
    ck_assert_msg(strstr(desc, "block_set_io_throttle"), "%s", desc);
    /* Nothing was handed over: the new process still waits. */
    iovd_proc_assert_alive(next);
    check_still_running(0, 0xadd, 6);
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

/* ---- network backends: frames both ways across upgrades ---- */

/*
 * A daemon with vn0 (virtio-net-pci) and e0 (e1000), each on a -netdev
 * stream whose other end is the test (a wire).  Every frame carries its
 * direction and a sequence number: each side checks that every frame
 * sent reaches it exactly once, in order, whatever moved meanwhile.
 */
#define NNIC            2           /* 0: vn0 (virtio-net), 1: e0 */
#define ETH_TYPE_TEST   0x88b5      /* IEEE local experimental */
#define FRAME_MAX       2048
#define NET_GM_SIZE     (32ull << 20)
#define NET_BEFORE      8           /* frames each way, before and after */
#define NET_DURING      40          /* to each NIC: more than it holds */
#define NET_FLOOD       200         /* from each NIC, the wire not read */
#define NET_HELD        4           /* vn0: queued, notified after */
#define VN_RX_POST      16          /* vn0's receive buffers */
#define E1K_RX_RING     32          /* e0's receive descriptors */
#define UP_TAP          "uptap0"    /* test_net_tap_upgrade's tap */

static const uint8_t nic_mac[NNIC][6] = {
    { 0x52, 0x54, 0x00, 0x12, 0x34, 0x01 },
    { 0x52, 0x54, 0x00, 0x12, 0x34, 0x02 },
};
static const uint8_t wire_mac[6] = { 0x52, 0x54, 0x00, 0xee, 0xee, 0xee };

typedef struct Wire {
    bool tap;                   /* fd: a packet socket on the tap */
    bool server;                /* the daemon listens, the test connects */
    int lfd, fd;                /* the test's listener, the daemon's */
    uint32_t to_nic, to_nic_rcvd;       /* sent to the NIC, received */
    uint32_t from_nic, from_nic_rcvd;   /* sent by the NIC, received */
} Wire;

static Wire wire[NNIC];
static GuestMem *ngm[NNIC];
static VfuClient *nvc[NNIC];
static QPCIDevice *npdev[NNIC];
static QVirtioNet *vn;
static QE1000 *e1k;

/* Frame @seq from (@out) or to NIC @i; its length. */
static size_t net_frame(uint8_t *f, unsigned i, bool out, uint32_t seq)
{
    size_t len = 1000 + (seq * 37 + i * 11) % 514;

    memcpy(f, out ? wire_mac : nic_mac[i], 6);
    memcpy(f + 6, out ? nic_mac[i] : wire_mac, 6);
    wr16(f + 12, ETH_TYPE_TEST);
    wr32(f + 14, seq);
    f[18] = i;
    f[19] = out;
    for (size_t k = 20; k < len; k++) {
        f[k] = (uint8_t)(seq + k * 7 + i);
    }
    return len;
}

static void net_check_frame(unsigned i, bool out, uint32_t seq,
                            const uint8_t *got, ssize_t len)
{
    uint8_t want[FRAME_MAX];
    size_t wlen = net_frame(want, i, out, seq);

    ck_assert_msg(len >= 20, "NIC %u %s: frame %u missing", i,
                  out ? "out" : "in", seq);
    ck_assert_msg((size_t)len == wlen && !memcmp(got, want, wlen),
                  "NIC %u %s: frame %u expected (%zu bytes), got frame %u "
                  "(%zd bytes)", i, out ? "out" : "in", seq, wlen,
                  rd32(got + 14), len);
}

static int wire_listen(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    qos_assert(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0
               && listen(fd, 4) == 0, "wire %s: %s", path,
               g_strerror(errno));
    return fd;
}

/* @len bytes of the wire's stream to NIC @i (blocking). */
static bool wire_write(unsigned i, const void *p, size_t len)
{
    while (len) {
        ssize_t n = write(wire[i].fd, p, len);

        if (n <= 0) {
            return false;
        }
        p = (const uint8_t *)p + n;
        len -= n;
    }
    return true;
}

/* The next frame to NIC @i, all of it or its first @part bytes. */
static bool wire_send(unsigned i, size_t part)
{
    uint8_t buf[4 + FRAME_MAX];
    size_t len = net_frame(buf + 4, i, false, wire[i].to_nic);

    wr32(buf, len);
    wire[i].to_nic++;
    if (wire[i].tap) {
        /* No half frames on a tap: the whole one now. */
        return send(wire[i].fd, buf + 4, len, 0) == (ssize_t)len;
    }
    return wire_write(i, buf, MIN(part, len + 4));
}

/* The rest of the frame wire_send(@i, @part) began. */
static void wire_send_rest(unsigned i, size_t part)
{
    uint8_t buf[4 + FRAME_MAX];
    size_t len = net_frame(buf + 4, i, false, wire[i].to_nic - 1);

    if (wire[i].tap) {
        return;
    }
    wr32(buf, len);
    ck_assert(wire_write(i, buf + part, len + 4 - part));
}

static bool wire_read(int fd, uint8_t *buf, size_t len, int64_t deadline)
{
    while (len) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        ssize_t n;

        if (poll(&p, 1, qos_remaining_ms(deadline)) != 1) {
            return false;
        }
        n = read(fd, buf, len);
        ck_assert_msg(n > 0, "the wire closed (%s)",
                      n < 0 ? g_strerror(errno) : "EOF");
        buf += n;
        len -= n;
    }
    return true;
}

/* The next test frame the tap's kernel side received (-1: none). */
static ssize_t tap_wire_recv(int fd, uint8_t *buf, int64_t deadline)
{
    for (;;) {
        struct sockaddr_ll sll;
        socklen_t sl = sizeof(sll);
        ssize_t n;

        if (!qos_poll_fd(fd, POLLIN, deadline)) {
            return -1;
        }
        n = recvfrom(fd, buf, FRAME_MAX, MSG_TRUNC, (struct sockaddr *)&sll,
                     &sl);
        ck_assert_int_gt(n, 0);
        if (sll.sll_pkttype != PACKET_OUTGOING && n >= 20 &&
            rd16(buf + 12) == ETH_TYPE_TEST) {
            return n;
        }
    }
}

/* Every frame NIC @i sent reached the wire, once, in order. */
static void wire_expect_all(unsigned i)
{
    uint8_t buf[FRAME_MAX];
    Wire *w = &wire[i];

    while (w->tap && w->from_nic_rcvd < w->from_nic) {
        ssize_t n = tap_wire_recv(w->fd, buf, qos_deadline(QOS_TIMEOUT_MS));

        ck_assert_msg(n > 0, "NIC %u: frame %u of %u never reached the tap",
                      i, w->from_nic_rcvd, w->from_nic);
        net_check_frame(i, true, w->from_nic_rcvd++, buf, n);
    }
    while (w->from_nic_rcvd < w->from_nic) {
        uint8_t hdr[4];
        uint32_t len;

        ck_assert_msg(wire_read(w->fd, hdr, 4, qos_deadline(QOS_TIMEOUT_MS)),
                      "NIC %u: frame %u of %u never reached the wire", i,
                      w->from_nic_rcvd, w->from_nic);
        len = rd32(hdr);
        ck_assert_uint_le(len, FRAME_MAX);
        ck_assert(wire_read(w->fd, buf, len, qos_deadline(QOS_TIMEOUT_MS)));
        net_check_frame(i, true, w->from_nic_rcvd++, buf, len);
    }
}

/* NIC @i transmits @n frames (vn0: notified when @kick). */
static void nic_send(unsigned i, unsigned n, bool kick)
{
    uint8_t f[FRAME_MAX];

    for (unsigned k = 0; k < n; k++) {
        size_t len = net_frame(f, i, true, wire[i].from_nic++);

        if (i == 0) {
            ck_assert_int_ge(qvnet_tx_add(vn, 0, f, len, NULL, 1), 0);
        } else {
            qe1000_tx(e1k, f, len, NULL);
        }
    }
    if (i == 0 && kick) {
        qvnet_tx_kick(vn, 0);
    }
}

/* The next test frame NIC @i received (-1: none). */
static ssize_t nic_recv(unsigned i, uint8_t *buf, int timeout_ms)
{
    int64_t deadline = qos_deadline(timeout_ms);
    ssize_t n;

    do {
        int ms = qos_remaining_ms(deadline);

        n = i == 0 ? qvnet_rx(vn, 0, buf, FRAME_MAX, NULL, ms)
                   : qe1000_rx(e1k, buf, FRAME_MAX, NULL, ms);
    } while (n >= 0 && (n < 20 || rd16(buf + 12) != ETH_TYPE_TEST));
    return n;
}

/* Every frame sent to NIC @i reached its driver, once, in order. */
static void nic_expect_all(unsigned i)
{
    uint8_t buf[FRAME_MAX];
    Wire *w = &wire[i];

    while (w->to_nic_rcvd < w->to_nic) {
        net_check_frame(i, false, w->to_nic_rcvd++, buf,
                        nic_recv(i, buf, QOS_TIMEOUT_MS));
    }
}

/* Nothing more either way, and the wire was never connected again. */
static void net_expect_quiet(void)
{
    uint8_t buf[FRAME_MAX];

    for (unsigned i = 0; i < NNIC; i++) {
        ck_assert_int_lt(nic_recv(i, buf, 50), 0);
        if (wire[i].tap) {
            ck_assert_int_lt(tap_wire_recv(wire[i].fd, buf,
                                           qos_deadline(50)), 0);
            continue;
        }
        ck_assert(!qos_poll_fd(wire[i].fd, POLLIN, qos_deadline(50)));
        ck_assert(!qos_poll_fd(wire[i].lfd, POLLIN, qos_deadline(0)));
    }
    ck_assert(qvnet_config_status(vn) & VIRTIO_NET_S_LINK_UP);
    ck_assert(qe1000_readl(e1k, E1000_STATUS) & E1000_STATUS_LU);
}

static void net_nic_open(unsigned i, const char *id)
{
    g_autofree char *name = g_strdup_printf("%s.sock", id);
    g_autofree char *sock = iovd_proc_path(home, name);

    ngm[i] = guest_mem_new(GUEST_MEM_DEFAULT_BASE, NET_GM_SIZE);
    nvc[i] = vfu_client_open(sock);
    npdev[i] = qpci_device_new(nvc[i]);
    guest_mem_map_checked(ngm[i], nvc[i], true);
}

/* A free loopback TCP port (for a daemon to listen on). */
static unsigned free_tcp_port(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    qos_assert(fd >= 0 && bind(fd, (struct sockaddr *)&sa, len) == 0 &&
               getsockname(fd, (struct sockaddr *)&sa, &len) == 0,
               "a free port: %s", g_strerror(errno));
    close(fd);
    return ntohs(sa.sin_port);
}

static struct sockaddr_storage server_sa[NNIC];

/* Wire @i's netdev listens: NIC 0 on UNIX @path, NIC 1 on TCP. */
static void net_add_server(unsigned i, const char *path)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)&server_sa[i];
    struct sockaddr_in *in = (struct sockaddr_in *)&server_sa[i];

    wire[i].lfd = -1;
    memset(&server_sa[i], 0, sizeof(server_sa[i]));
    if (i == 0) {
        sun->sun_family = AF_UNIX;
        g_strlcpy(sun->sun_path, path, sizeof(sun->sun_path));
        iovd_proc_add_argf(home, "stream,id=w%u,server=on,addr.type=unix,"
                           "addr.path=%s", i, path);
        return;
    }
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    in->sin_port = htons(free_tcp_port());
    iovd_proc_add_argf(home, "stream,id=w%u,server=on,addr.type=inet,"
                       "addr.host=127.0.0.1,addr.port=%u", i,
                       ntohs(in->sin_port));
}

/* The test connects to wire @i's listening netdev. */
static void net_connect_server(unsigned i)
{
    int family = server_sa[i].ss_family;
    socklen_t len = family == AF_UNIX ? sizeof(struct sockaddr_un)
                                      : sizeof(struct sockaddr_in);

    wire[i].fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    qos_assert(wire[i].fd >= 0 &&
               connect(wire[i].fd, (struct sockaddr *)&server_sa[i],
                       len) == 0,
               "connect to netdev w%u: %s", i, g_strerror(errno));
}

static void net_add_nic(unsigned i, const char *driver, const char *id)
{
    g_autofree char *name = g_strdup_printf("wire%u.sock", i);
    g_autofree char *path = iovd_proc_path(home, name);
    g_autofree char *sock = g_strdup_printf("%s.sock", id);
    g_autofree char *dsock = iovd_proc_path(home, sock);
    const uint8_t *m = nic_mac[i];

    iovd_proc_add_args(home, "-netdev", NULL);
    if (wire[i].tap) {
        iovd_proc_add_argf(home, "tap,id=w%u,ifname=" UP_TAP, i);
    } else if (wire[i].server) {
        net_add_server(i, path);
    } else {
        wire[i] = (Wire){ .lfd = wire_listen(path), .fd = -1 };
        iovd_proc_add_argf(home, "stream,id=w%u,server=off,addr.type=unix,"
                           "addr.path=%s,reconnect-ms=20", i, path);
    }
    iovd_proc_add_args(home, "-device", NULL);
    iovd_proc_add_argf(home, "%s,id=%s,netdev=w%u,socket=%s,"
                       "mac=%02x:%02x:%02x:%02x:%02x:%02x", driver, id, i,
                       dsock, m[0], m[1], m[2], m[3], m[4], m[5]);
}

/* vn0 and e0, each on its wire. */
static void net_add(void)
{
    net_add_nic(0, "virtio-net-pci", "vn0");
    net_add_nic(1, "e1000", "e0");
}

/* The wires connected, the NICs brought up as Linux does. */
static void net_connect(void)
{
    for (unsigned i = 0; i < NNIC; i++) {
        if (wire[i].tap) {
            continue;
        }
        if (wire[i].server) {
            net_connect_server(i);
            continue;
        }
        qos_assert(qos_poll_fd(wire[i].lfd, POLLIN,
                               qos_deadline(QOS_TIMEOUT_MS)),
                   "netdev w%u never connected to the wire", i);
        wire[i].fd = accept4(wire[i].lfd, NULL, NULL, SOCK_CLOEXEC);
        qos_assert(wire[i].fd >= 0, "accept: %s", g_strerror(errno));
    }
    net_nic_open(0, "vn0");
    vn = qvnet_new(npdev[0], ngm[0]);
    qvnet_init(vn, &(QVirtioNetInit){ .features = QVNET_LINUX_FEATURES,
                                      .rx_post = VN_RX_POST });
    net_nic_open(1, "e0");
    e1k = qe1000_new(npdev[1], ngm[1]);
    qe1000_init(e1k, &(QE1000Config){ .rx_ring = E1K_RX_RING,
                                      .tx_ring = 256 });
}

/* The daemon with only the NICs. */
static void net_start(void)
{
    home = cur = iovd_proc_new();
    qmp_path = iovd_proc_path(home, "qmp.sock");
    iovd_proc_add_args(home, "-qmp", NULL);
    iovd_proc_add_argf(home, "unix:%s,server=on,wait=off", qmp_path);
    add_trace(home);
    net_add();
    iovd_proc_start(home);
    net_connect();
    qmp = qmp_client_open(qmp_path);
}

static void net_setup(void)
{
    qos_check_init();
    net_start();
}

/* Started in the test, when it can run. */
static void net_tap_setup(void)
{
    qos_check_init();
    home = cur = NULL;
}

static void net_free(void)
{
    g_clear_pointer(&vn, qvnet_free);
    g_clear_pointer(&e1k, qe1000_free);
    for (unsigned i = 0; i < NNIC; i++) {
        g_clear_pointer(&npdev[i], qpci_device_free);
        g_clear_pointer(&nvc[i], vfu_client_free);
        g_clear_pointer(&ngm[i], guest_mem_free);
        if (wire[i].fd > 0) {
            close(wire[i].fd);
        }
        if (wire[i].lfd > 0) {
            close(wire[i].lfd);
        }
    }
    memset(wire, 0, sizeof(wire));
}

static void net_teardown(void)
{
    if (!home) {
        return;                 /* skipped */
    }
    net_free();
    procs_free();
}

/* The wire's side while the upgrade runs: frames, then half of one. */
static gpointer net_during(gpointer opaque)
{
    bool ok = true;

    for (unsigned k = 0; k < NET_DURING && ok; k++) {
        for (unsigned i = 0; i < NNIC && ok; i++) {
            ok = wire_send(i, SIZE_MAX);
        }
        g_usleep(1000);
    }
    for (unsigned i = 0; i < NNIC && ok; i++) {
        ok = wire_send(i, 4 + 100 + i);
    }
    return GINT_TO_POINTER(ok);
}

static void net_both_ways(unsigned n)
{
    for (unsigned i = 0; i < NNIC; i++) {
        nic_send(i, n, true);
        for (unsigned k = 0; k < n; k++) {
            ck_assert(wire_send(i, SIZE_MAX));
        }
    }
}

/*
 * Frames everywhere: the NICs flood the wire, which does not read (the
 * stream's socket fills, a frame is cut, more wait in the net layer's
 * queue); the wire sends the NICs more than their drivers gave buffers
 * for, before the old process stops and (the thread returned) while it
 * does, and half a frame; vn0 has frames queued that it is told of only
 * after.
 */
static GThread *net_before(void)
{
    net_both_ways(NET_BEFORE);
    for (unsigned i = 0; i < NNIC; i++) {
        wire_expect_all(i);
        nic_expect_all(i);
        nic_send(i, NET_FLOOD, true);
    }
    nic_send(0, NET_HELD, false);
    /* More than the drivers took: the rest waits in the old process. */
    for (unsigned i = 0; i < NNIC; i++) {
        for (unsigned k = 0; k < NET_DURING; k++) {
            ck_assert(wire_send(i, SIZE_MAX));
        }
    }
    g_usleep(100 * 1000);
    return g_thread_new("wire", net_during, NULL);
}

/* Every frame, either way, arrived once and in order; nothing more. */
static void net_after(GThread *t)
{
    ck_assert(GPOINTER_TO_INT(g_thread_join(t)));
    for (unsigned i = 0; i < NNIC; i++) {
        wire_send_rest(i, 4 + 100 + i);
    }
    qvnet_tx_kick(vn, 0);
    net_both_ways(NET_BEFORE);
    for (unsigned i = 0; i < NNIC; i++) {
        wire_expect_all(i);
        nic_expect_all(i);
    }
    net_expect_quiet();
}

static void net_round(void)
{
    GThread *t = net_before();

    upgrade_ok();
    net_after(t);
}

START_TEST(test_net_upgrade)
{
    for (unsigned round = 0; round < 3; round++) {
        net_round();
    }
}
END_TEST

/* ---- a tap, in a private network namespace (root only) ---- */

static bool tap_prepare(const char **why)
{
    return qos_private_netns("ip tuntap add dev " UP_TAP " mode tap "
                             "vnet_hdr && ip link set " UP_TAP " up", why);
}

/* The kernel's side of the tap: a packet socket on it. */
static int tap_wire_open(void)
{
    struct sockaddr_ll sll = {
        .sll_family = AF_PACKET,
        .sll_protocol = htons(ETH_P_ALL),
        .sll_ifindex = if_nametoindex(UP_TAP),
    };
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    int size = 16 << 20;

    qos_assert(fd >= 0 && sll.sll_ifindex > 0 &&
               bind(fd, (struct sockaddr *)&sll, sizeof(sll)) == 0,
               "packet socket on " UP_TAP ": %s", g_strerror(errno));
    /* Room for a flood the test reads only after the upgrade. */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
    return fd;
}

/* The kernel sends on the tap only once its link watch saw it up. */
static void tap_wait_running(void)
{
    int64_t deadline = qos_deadline(QOS_TIMEOUT_MS);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr = { 0 };

    g_strlcpy(ifr.ifr_name, UP_TAP, IFNAMSIZ);
    while (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0 ||
           !(ifr.ifr_flags & IFF_RUNNING)) {
        qos_assert(qos_remaining_ms(deadline), UP_TAP " never came up");
        g_usleep(10 * 1000);
    }
    close(fd);
}

/* vn0 on a vnet_hdr tap (what the kernel sees), e0 on a stream. */
START_TEST(test_net_tap_upgrade)
{
    const char *why;

    if (!tap_prepare(&why)) {
        printf("SKIP: test_net_tap_upgrade: %s\n", why);
        return;
    }
    wire[0] = (Wire){ .tap = true, .fd = tap_wire_open(), .lfd = -1 };
    net_start();
    tap_wait_running();
    for (unsigned round = 0; round < 3; round++) {
        net_round();
    }
}
END_TEST

/*
 * The daemon listens (vn0: UNIX, e0: TCP on loopback), the test
 * connects: the connections and the TCP listening socket move.
 */
/* NIC @i's link as its driver reads it becomes @up. */
static void nic_wait_link(unsigned i, bool up)
{
    int64_t deadline = qos_deadline(QOS_TIMEOUT_MS);

    if (i == 1) {
        ck_assert_msg(qe1000_wait_link(e1k, up, QOS_TIMEOUT_MS),
                      "e0: link never %s", up ? "up" : "down");
        return;
    }
    while (!(qvnet_config_status(vn) & VIRTIO_NET_S_LINK_UP) != !up) {
        ck_assert_msg(qos_remaining_ms(deadline), "vn0: link never %s",
                      up ? "up" : "down");
        g_usleep(1000);
    }
}

START_TEST(test_net_server_upgrade)
{
    wire[0].server = wire[1].server = true;
    net_start();
    for (unsigned round = 0; round < 3; round++) {
        net_round();
    }
    /* The listening sockets the last daemon took over still serve. */
    for (unsigned i = 0; i < NNIC; i++) {
        close(wire[i].fd);
        nic_wait_link(i, false);
        net_connect_server(i);
        nic_wait_link(i, true);
    }
    net_both_ways(NET_BEFORE);
    for (unsigned i = 0; i < NNIC; i++) {
        wire_expect_all(i);
        nic_expect_all(i);
    }
    net_expect_quiet();
}
END_TEST

/*
 * The new process fails with frames waiting everywhere: the old one
 * reads, writes and delivers again, and loses none of them.
 */
START_TEST(test_net_upgrade_fails)
{
    FakeDest *f = fake_start(FAKE_GARBAGE);

    for (unsigned i = 0; i < NNIC; i++) {
        nic_send(i, NET_FLOOD, true);
        for (unsigned k = 0; k < NET_DURING; k++) {
            ck_assert(wire_send(i, SIZE_MAX));
        }
        ck_assert(wire_send(i, 4 + 100 + i));
    }
    g_usleep(100 * 1000);
    g_free(qmp_errf(qmp, "GenericError", "upgrade", "{'uri': '%s'}",
                    f->uri));
    check_failed_event(qmp);
    fake_free(f);
    for (unsigned i = 0; i < NNIC; i++) {
        wire_send_rest(i, 4 + 100 + i);
    }
    net_both_ways(NET_BEFORE);
    for (unsigned i = 0; i < NNIC; i++) {
        wire_expect_all(i);
        nic_expect_all(i);
    }
    net_expect_quiet();
    /* And it can still be upgraded. */
    net_round();
}
END_TEST

/* ---- user networking (libslirp) ---- */

#define USER_GUEST_PORT 5000
#define USER_XFER       (64 * 1024)

static const uint8_t user_mac[2][6] = {
    { 0x52, 0x54, 0x00, 0x12, 0x34, 0x01 },     /* vn0's own */
    { 0x52, 0x54, 0x00, 0x12, 0x34, 0x77 },     /* a second host behind it */
};

/* libqos/netstack.h on vn0, checksums computed by the stack. */
static void user_tx(void *opaque, uint8_t *f, size_t len,
                    const NetTxOffload *off)
{
    qvnet_tx(vn, 0, f, len, NULL);
}

static ssize_t user_rx(void *opaque, uint8_t *buf, size_t max,
                       NetRxInfo *ni, int timeout_ms)
{
    return qvnet_rx(vn, 0, buf, max, NULL, timeout_ms);
}

/* A DHCP lease for MAC @i: its address. */
static uint32_t user_lease(NetIf *nif, unsigned i)
{
    NetDhcpLease lease;

    *nif = (NetIf){ .mac = user_mac[i], .tx = user_tx, .rx = user_rx };
    net_dhcp_lease(nif, &lease);
    ck_assert_uint_eq(lease.router, NET_SLIRP_HOST_IP);
    return lease.ip;
}

/* A connection to the hostfwd port reaches the guest; data both ways. */
static void user_hostfwd(NetIf *nif, int port)
{
    NetTcp t = { .nif = nif, .lport = USER_GUEST_PORT, .win = 16384 };

    t.host_fd = net_host_connect(port);
    net_tcp_accept(&t);
    net_tcp_recv_all(&t, USER_XFER);
    net_tcp_send_all(&t, USER_XFER);
    close(t.host_fd);
}

/*
 * vn0 on -netdev user with a hostfwd port.  The DHCP leases move (a
 * second client after the upgrade gets the next address, not the
 * first again), the port is served by the new process, and after a
 * failed upgrade by the old one again.
 */
START_TEST(test_user_netdev)
{
    int port = net_free_tcp_port();
    g_autofree char *sock = NULL;
    NetIf nif;
    FakeDest *f;

    home = cur = iovd_proc_new();
    qmp_path = iovd_proc_path(home, "qmp.sock");
    sock = iovd_proc_path(home, "vn0.sock");
    iovd_proc_add_args(home, "-qmp", NULL);
    iovd_proc_add_argf(home, "unix:%s,server=on,wait=off", qmp_path);
    add_trace(home);
    iovd_proc_add_args(home, "-netdev", NULL);
    iovd_proc_add_argf(home, "user,id=n0,hostfwd=tcp:127.0.0.1:%d-:%d",
                       port, USER_GUEST_PORT);
    iovd_proc_add_args(home, "-device", NULL);
    iovd_proc_add_argf(home, "virtio-net-pci,id=vn0,netdev=n0,socket=%s",
                       sock);
    iovd_proc_start(home);
    qmp = qmp_client_open(qmp_path);
    net_nic_open(0, "vn0");
    vn = qvnet_new(npdev[0], ngm[0]);
    qvnet_init(vn, &(QVirtioNetInit){ .features = QVNET_LINUX_FEATURES });
    /* The second client's frames come to vn0's driver too. */
    ck_assert_uint_eq(qvnet_ctrl_rx(vn, VIRTIO_NET_CTRL_RX_PROMISC, true),
                      VIRTIO_NET_OK);

    ck_assert_uint_eq(user_lease(&nif, 0), NET_SLIRP_GUEST_IP);
    user_hostfwd(&nif, port);

    f = fake_start(FAKE_GARBAGE);
    g_free(qmp_errf(qmp, "GenericError", "upgrade", "{'uri': '%s'}",
                    f->uri));
    check_failed_event(qmp);
    fake_free(f);
    user_hostfwd(&nif, port);           /* bound again by the old one */

    upgrade_ok();
    ck_assert_uint_eq(user_lease(&nif, 1), NET_SLIRP_GUEST_IP + 1);
    ck_assert_uint_eq(user_lease(&nif, 0), NET_SLIRP_GUEST_IP);
    user_hostfwd(&nif, port);
    upgrade_ok();
    user_hostfwd(&nif, port);
}
END_TEST

/* ---- an NVM subsystem's attachments ---- */

/* query-nvme-subsystems: the controllers namespace @nsid is attached to. */
static char *nvme_ns_ctrls(uint32_t nsid)
{
    json_object *ret = qmp_ok(qmp, "query-nvme-subsystems", NULL);
    json_object *ns = qmp_get(json_object_array_get_idx(ret, 0),
                              "namespaces");
    char *s = NULL;

    for (size_t i = 0; i < json_object_array_length(ns); i++) {
        json_object *n = json_object_array_get_idx(ns, i);

        if (qmp_get_int(n, "nsid") == nsid) {
            s = g_strdup(json_object_to_json_string(qmp_get(n,
                                                            "controllers")));
        }
    }
    json_object_put(ret);
    ck_assert_ptr_nonnull(s);
    return s;
}

/*
 * A private namespace moved from one VM's controller to another's at run
 * time stays where the operator put it across upgrades: the new process
 * makes it with attached=.  The VM that lost it still gets Invalid
 * Namespace; the one that has it reads what it wrote.
 */
START_TEST(test_nvme_attachments_move)
{
    QNvmeHost h[2];
    uint64_t buf;
    g_autofree char *before = NULL, *after = NULL;

    home = cur = iovd_proc_new();
    qmp_path = iovd_proc_path(home, "qmp.sock");
    iovd_proc_add_args(home, "-qmp", NULL);
    iovd_proc_add_argf(home, "unix:%s,server=on,wait=off", qmp_path);
    qnvme_subsys_images(home, 2, IMG_SIZE);
    qnvme_subsys_configure(home, home, 2, false);
    iovd_proc_add_args(home, "-device",
                       "nvme-ns,subsys=subsys0,nsid=1,drive=d0,shared=on",
                       "-device", "nvme-ns,subsys=subsys0,nsid=2,drive=d1",
                       NULL);
    iovd_proc_start(home);
    qmp = qmp_client_open(qmp_path);
    for (unsigned i = 0; i < 2; i++) {
        qnvme_host_open(&h[i], home, i, 1);
    }
    json_object_put(qmp_ok(qmp, "nvme-ns-detach", "{'subsys': 'subsys0', "
                           "'nsid': 2, 'controller': 'nvme0'}"));
    json_object_put(qmp_ok(qmp, "nvme-ns-attach", "{'subsys': 'subsys0', "
                           "'nsid': 2, 'controller': 'nvme1'}"));
    before = nvme_ns_ctrls(2);
    buf = guest_alloc_aligned(h[1].gm, 4096, 4096);
    guest_memset(h[1].gm, buf, 0x5a, 4096);
    ck_assert_uint_eq(qnvme_rw(h[1].q, qnvme_ioq(h[1].q, 1), NVME_CMD_WRITE,
                               2, 8, 8, buf), NVME_SUCCESS);

    for (unsigned round = 0; round < 2; round++) {
        upgrade_ok();
        after = nvme_ns_ctrls(2);
        ck_assert_str_eq(after, before);
        g_clear_pointer(&after, g_free);
        guest_memset(h[1].gm, buf, 0, 4096);
        ck_assert_uint_eq(qnvme_rw(h[1].q, qnvme_ioq(h[1].q, 1),
                                   NVME_CMD_READ, 2, 8, 8, buf),
                          NVME_SUCCESS);
        ck_assert_uint_eq(*(uint8_t *)guest_ptr(h[1].gm, buf, 1), 0x5a);
        ck_assert_uint_eq(qnvme_rw(h[0].q, qnvme_ioq(h[0].q, 1),
                                   NVME_CMD_READ, 2, 8, 8, buf) & 0xff,
                          NVME_INVALID_NSID);
    }
    /* A controller that joins now gets the untouched shared one only. */
    json_object_put(qmp_okf(qmp, "device_add", "{'driver': 'nvme', "
                            "'id': 'nvme9', 'subsys': 'subsys0', "
                            "'socket': '%s/nvme9.sock'}",
                            iovd_proc_tmpdir(home)));
    after = nvme_ns_ctrls(2);
    ck_assert_str_eq(after, before);
    g_free(after);
    after = nvme_ns_ctrls(1);
    ck_assert_msg(strstr(after, "nvme9"), "%s", after);
    for (unsigned i = 0; i < 2; i++) {
        qnvme_host_close(&h[i]);
    }
}
END_TEST

/* attached= names one controller at most for a private namespace. */
START_TEST(test_nvme_attached_private)
{
    g_autofree char *err = NULL;

    ck_assert_int_eq(iovd_run(&err, "-device", "nvme-subsys,id=s0",
                              "-blockdev", "driver=null,node-name=n0",
                              "-device", "nvme-ns,subsys=s0,nsid=1,drive=n0,"
                              "attached=a:b", NULL), 1);
    ck_assert_msg(strstr(err, "a private namespace (shared=off) is "
                          "attached to one controller at most"), "%s", err);
}
END_TEST

/* ---- the pidfile ---- */

/* @path holds @pid, as a pidfile does. */
static void check_pidfile(const char *path, pid_t pid)
{
    g_autofree char *text = NULL;

    ck_assert(g_file_get_contents(path, &text, NULL, NULL));
    ck_assert_int_eq(atoi(text), pid);
}

/*
 * The pidfile moves: the new process's pid in it, its lock held (another
 * iovd on it is refused) until the last process stops and removes it.
 */
START_TEST(test_pidfile)
{
    g_autofree char *pidfile = NULL, *t_sock = NULL, *t9 = NULL;
    g_autofree char *err = NULL, *err2 = NULL;
    int status;

    home = cur = iovd_proc_new();
    pidfile = iovd_proc_path(home, "iovd.pid");
    t_sock = iovd_proc_path(home, "t0.sock");
    qmp_path = iovd_proc_path(home, "qmp.sock");
    iovd_proc_add_args(home, "-pidfile", pidfile, "-qmp", NULL);
    iovd_proc_add_argf(home, "unix:%s,server=on,wait=off", qmp_path);
    iovd_proc_add_args(home, "-device", NULL);
    iovd_proc_add_argf(home, "pci-testdev,id=t0,socket=%s", t_sock);
    iovd_proc_start(home);
    qmp = qmp_client_open(qmp_path);
    check_pidfile(pidfile, iovd_proc_pid(home));
    for (unsigned round = 0; round < 2; round++) {
        upgrade_ok();
        check_pidfile(pidfile, iovd_proc_pid(cur));
    }
    t9 = g_strdup_printf("pci-testdev,id=t9,socket=%s/t9.sock",
                         iovd_proc_tmpdir(home));
    ck_assert_int_eq(iovd_run(&err, "-pidfile", pidfile, "-device", t9,
                              NULL), 1);
    ck_assert_msg(strstr(err, "in use by another running iovd"), "%s", err);
    ck_assert_int_eq(iovd_run(&err2, "-pidfile", pidfile, "-incoming",
                              "unix:/nonexistent/x", NULL), 1);
    ck_assert_msg(strstr(err2, "give no -pidfile"), "%s", err2);
    check_pidfile(pidfile, iovd_proc_pid(cur));
    status = iovd_proc_terminate(cur);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert(!g_file_test(pidfile, G_FILE_TEST_EXISTS));
    if (cur != home) {
        iovd_proc_free(cur);
    }
    cur = NULL;                 /* stopped */
}
END_TEST

/* ---- all five devices in one daemon ---- */

/*
 * nvme0, vb0, t0, vn0 and e0 in one daemon: what an operator upgrades.
 * Both block and net harness state live in the globals above, so the
 * rounds are the two kinds' halves around one upgrade.
 */
static void all_setup(void)
{
    qos_check_init();
    home = cur = iovd_proc_new();
    add_trace(home);
    blk_add();
    net_add();
    iovd_proc_start(home);
    qmp_path = iovd_proc_path(home, "qmp.sock");
    qmp = qmp_client_open(qmp_path);
    blk_connect();
    net_connect();
}

static void all_teardown(void)
{
    blk_free();
    net_free();
    procs_free();
}

START_TEST(test_all_five_three_times)
{
    for (unsigned round = 0; round < 3; round++) {
        BlkRound r;
        GThread *t;

        blk_before(&r, round);
        t = net_before();
        upgrade_ok();
        net_after(t);
        blk_after(&r);
    }
    check_writes(0, 3 * (NIO + NHELD + 1));
}
END_TEST

/*
 * The new process answers garbage while all five have I/O in flight:
 * the old one resumes every device and loses nothing, then upgrades.
 */
START_TEST(test_all_five_fails)
{
    FakeDest *f = fake_start(FAKE_GARBAGE);
    BlkRound r;
    GThread *t;

    blk_before(&r, 0);
    t = net_before();
    g_free(qmp_errf(qmp, "GenericError", "upgrade", "{'uri': '%s'}",
                    f->uri));
    check_failed_event(qmp);
    fake_free(f);
    iovd_proc_assert_alive(cur);
    net_after(t);
    blk_after(&r);

    blk_before(&r, 1);
    t = net_before();
    upgrade_ok();
    net_after(t);
    blk_after(&r);
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
    tcase_add_test(tc, test_images_move_open);

    tc = qos_check_tcase(s, "failures", setup, teardown, 120);
    tcase_add_test(tc, test_fail_closed);
    tcase_add_test(tc, test_fail_garbage);
    tcase_add_test(tc, test_bad_uri);
    tcase_add_test(tc, test_refused_after_throttle);
    tcase_add_test(tc, test_device_add_del);
    tcase_add_test(tc, test_resize_then_upgrade);

    tc = qos_check_tcase(s, "net", net_setup, net_teardown, 120);
    tcase_add_test(tc, test_net_upgrade);
    tcase_add_test(tc, test_net_upgrade_fails);

    tc = qos_check_tcase(s, "net-server", net_tap_setup, net_teardown, 120);
    tcase_add_test(tc, test_net_server_upgrade);

    tc = qos_check_tcase(s, "net-tap", net_tap_setup, net_teardown, 120);
    tcase_add_test(tc, test_net_tap_upgrade);

    tc = qos_check_tcase(s, "net-user", net_tap_setup, net_teardown, 120);
    tcase_add_test(tc, test_user_netdev);

    tc = qos_check_tcase(s, "nvme-subsys", net_tap_setup, net_teardown, 120);
    tcase_add_test(tc, test_nvme_attachments_move);
    tcase_add_test(tc, test_nvme_attached_private);

    tc = qos_check_tcase(s, "pidfile", net_tap_setup, net_teardown, 120);
    tcase_add_test(tc, test_pidfile);

    tc = qos_check_tcase(s, "all-five", all_setup, all_teardown, 120);
    tcase_add_test(tc, test_all_five_three_times);
    tcase_add_test(tc, test_all_five_fails);

    tc = qos_check_tcase(s, "monitor", setup, teardown, 120);
    tcase_add_test(tc, test_reply_deferred);
    tcase_add_test(tc, test_client_leaves);
    return qos_check_run(s);
}
