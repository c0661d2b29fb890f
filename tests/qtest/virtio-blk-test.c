/*
 * virtio-blk-pci tests: iovd with one or more virtio-blk devices on raw
 * image files, driven by libqos playing the VMM (vfio-user) and a
 * virtio_pci_modern-style guest driver.
 *
 * Data written through the device is compared with a shadow copy and with
 * the backing file read directly by the test.  Every test gets a fresh
 * daemon (checked fixtures run in the forked test process); the teardown
 * stops it with SIGTERM and requires exit status 0.
 */
#include "util/osdep.h"

#include <check.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include "hw/virtio/virtio-spec.h"
#include "tests/qtest/libqos/qos-check.h"
#include "tests/qtest/libqos/iovd-proc.h"
#include "tests/qtest/libqos/vfu-client.h"
#include "tests/qtest/libqos/guest-mem.h"
#include "tests/qtest/libqos/migration.h"
#include "tests/qtest/libqos/pci.h"
#include "tests/qtest/libqos/qmp-client.h"
#include "tests/qtest/libqos/virtio.h"
#include "tests/qtest/libqos/virtio-blk.h"

#define DISK_SIZE       (16u << 20)
#define GM_SIZE         (64u << 20)
#define MAX_DEVS        3
#define SECTOR          512u
#define UNMAPPED_ADDR   0x10000ULL      /* below guest RAM (at 4 GiB) */

/* What a test asks for: per device, extra -blockdev and -device options. */
typedef struct DevSpec {
    const char *blockdev;
    const char *device;
    bool node0;                 /* use node d0 rather than its own */
} DevSpec;

typedef struct Dev {
    char *sock, *img;
    VfuClient *c;
    QPCIDevice *pdev;
    QVirtioDevice *vd;
} Dev;

static IovdProc *proc;
static GuestMem *gm;
static Dev devs[MAX_DEVS];
static unsigned ndevs;
static uint8_t *shadow[MAX_DEVS];  /* expected disk contents */
static unsigned idle_fds;           /* daemon's fds before any client */
static char *qmp_path;
static GRand *rnd;
static const char *start_object;    /* an -object for the next start() */

/* Features a Linux guest would accept from virtio-blk. */
static const uint64_t blk_features =
    VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX) |
    VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) | VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) |
    VIRTIO_BIT(VIRTIO_BLK_F_TOPOLOGY) | VIRTIO_BIT(VIRTIO_BLK_F_FLUSH) |
    VIRTIO_BIT(VIRTIO_BLK_F_CONFIG_WCE) | VIRTIO_BIT(VIRTIO_BLK_F_MQ) |
    VIRTIO_BIT(VIRTIO_BLK_F_DISCARD) | VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES) |
    VIRTIO_BIT(VIRTIO_BLK_F_RO);
static const uint64_t ring_features =
    VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) | VIRTIO_BIT(VIRTIO_F_EVENT_IDX);

/* ---- fixtures ---- */

static void make_image(const char *path, unsigned i)
{
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);

    ck_assert_msg(fd >= 0, "create %s: %s", path, g_strerror(errno));
    shadow[i] = g_malloc(DISK_SIZE);
    for (size_t k = 0; k < DISK_SIZE; k++) {
        shadow[i][k] = (uint8_t)(k * 7 + (k >> 9) + i * 13);
    }
    ck_assert_int_eq(pwrite(fd, shadow[i], DISK_SIZE, 0), DISK_SIZE);
    close(fd);
}

static void start(const DevSpec *specs, unsigned n, bool share_fd)
{
    qos_check_init();
    rnd = g_rand_new_with_seed(0x1af41042);
    proc = iovd_proc_new();
    ndevs = n;
    for (unsigned i = 0; i < n; i++) {
        Dev *d = &devs[i];
        g_autofree char *sock = g_strdup_printf("vb%u.sock", i);
        g_autofree char *img = g_strdup_printf("d%u.img", i);

        d->sock = iovd_proc_path(proc, sock);
        d->img = iovd_proc_path(proc, img);
        make_image(d->img, i);
        iovd_proc_add_args(proc, "-blockdev", NULL);
        iovd_proc_add_argf(proc, "driver=file,node-name=d%u,filename=%s%s",
                           i, d->img, specs[i].blockdev ? specs[i].blockdev
                                                        : "");
        iovd_proc_add_args(proc, "-device", NULL);
        iovd_proc_add_argf(proc, "virtio-blk-pci,id=vb%u,drive=d%u,"
                           "socket=%s%s", i, specs[i].node0 ? 0 : i, d->sock,
                           specs[i].device ? specs[i].device : "");
    }
    if (start_object) {
        iovd_proc_add_args(proc, "-object", start_object, NULL);
    }
    qmp_path = iovd_proc_path(proc, "qmp.sock");
    iovd_proc_add_args(proc, "-qmp", NULL);
    iovd_proc_add_argf(proc, "unix:%s,server=on,wait=off", qmp_path);
    iovd_proc_add_args(proc, "-d", "guest_errors", NULL);
    if (getenv("VIRTIO_BLK_TEST_TRACE")) {
        iovd_proc_add_args(proc, "-trace", getenv("VIRTIO_BLK_TEST_TRACE"),
                           NULL);
    }
    iovd_proc_start(proc);
    idle_fds = iovd_proc_count_fds(proc);
    gm = guest_mem_new(GUEST_MEM_DEFAULT_BASE, GM_SIZE);
    for (unsigned i = 0; i < n; i++) {
        Dev *d = &devs[i];

        d->c = vfu_client_open(d->sock);
        guest_mem_map_checked(gm, d->c, share_fd);
        d->pdev = qpci_device_new(d->c);
        d->vd = qvirtio_pci_new(d->pdev, gm);
    }
}

static void start1(const char *device_opts)
{
    DevSpec s = { .device = device_opts };

    start(&s, 1, true);
}

static void setup_default(void)
{
    start1(NULL);
}

static void setup_mq_packed(void)
{
    start1(",num-queues=4,packed=on");
}

static void setup_two(void)
{
    DevSpec s[2] = {
        { .device = ",queue-size=16,packed=on" },
        { .device = ",num-queues=2" },
    };

    start(s, 2, true);
}

static void setup_nofd(void)
{
    DevSpec s = { .device = ",num-queues=2,packed=on" };

    start(&s, 1, false);
}

static void stop_dst(void);

static void teardown(void)
{
    for (unsigned i = 0; i < ndevs; i++) {
        Dev *d = &devs[i];

        qvirtio_free(d->vd);
        qpci_device_free(d->pdev);
        if (d->c) {
            /* No reply to a posted write, no malformed message. */
            vfu_client_assert_clean(d->c);
        }
        vfu_client_free(d->c);
        g_free(d->sock);
        g_free(d->img);
        g_free(shadow[i]);
        shadow[i] = NULL;
        memset(d, 0, sizeof(*d));
    }
    ndevs = 0;
    guest_mem_free(gm);
    gm = NULL;
    if (proc) {
        iovd_proc_stop(proc);
        iovd_proc_free(proc);
        proc = NULL;
    }
    stop_dst();
    g_rand_free(rnd);
    rnd = NULL;
    g_free(qmp_path);
    qmp_path = NULL;
}

/* ---- helpers ---- */

static QVirtioDevice *vd0(void)
{
    return devs[0].vd;
}

static void init_dev(QVirtioDevice *vd, uint64_t features, unsigned nq,
                     QVirtioIrq irq)
{
    qvirtio_init(vd, &(QVirtioInit) {
        .features = features, .nqueues = nq, .irq = irq,
    });
}

static void fill_random(uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        buf[i] = g_rand_int(rnd);
    }
}

static void assert_bytes(const uint8_t *got, const uint8_t *want, size_t len,
                         const char *what)
{
    if (memcmp(got, want, len) == 0) {
        return;
    }
    for (size_t i = 0; i < len; i++) {
        ck_assert_msg(got[i] == want[i], "%s: byte %zu of %zu is 0x%02x, "
                      "expected 0x%02x", what, i, len, got[i], want[i]);
    }
}

/* The backing file holds what the shadow says. */
static void assert_file_matches(unsigned i)
{
    g_autofree uint8_t *buf = g_malloc(DISK_SIZE);
    int fd = open(devs[i].img, O_RDONLY | O_CLOEXEC);

    ck_assert(fd >= 0);
    ck_assert_int_eq(pread(fd, buf, DISK_SIZE, 0), DISK_SIZE);
    close(fd);
    assert_bytes(buf, shadow[i], DISK_SIZE, "backing file");
}

static uint8_t blk_io(QVirtQueue *vq, uint32_t type, uint64_t sector,
                      void *buf, uint32_t len, unsigned segs, bool indirect)
{
    QVirtioBlkReq r = {
        .type = type, .sector = sector, .data = buf, .len = len,
        .data_segs = segs, .indirect = indirect,
    };

    return qvirtio_blk_request(vq, &r);
}

/* A write and a read back through @vq of device @i, checked. */
static void smoke_io(unsigned i, QVirtQueue *vq, uint64_t sector)
{
    uint8_t w[4096], r[4096];

    fill_random(w, sizeof(w));
    ck_assert_uint_eq(blk_io(vq, VIRTIO_BLK_T_OUT, sector, w, sizeof(w), 2,
                             false), VIRTIO_BLK_S_OK);
    memcpy(shadow[i] + sector * SECTOR, w, sizeof(w));
    ck_assert_uint_eq(blk_io(vq, VIRTIO_BLK_T_IN, sector, r, sizeof(r), 3,
                             false), VIRTIO_BLK_S_OK);
    assert_bytes(r, w, sizeof(r), "read back");
}

/*
 * Writes then reads on every queue of device @di, many in flight at once,
 * random lengths, segment counts and (when negotiated) a mix of direct
 * and indirect chains.  Each request owns a distinct 64 KiB chunk.
 */
#define CHUNK           (64u << 10)
#define REQS_PER_QUEUE  16

static void workload(unsigned di, unsigned rounds)
{
    QVirtioDevice *vd = devs[di].vd;
    unsigned nq = vd->nvqs;
    QVirtioBlkReq *reqs = g_new0(QVirtioBlkReq, nq * REQS_PER_QUEUE);
    uint8_t *bufs = g_malloc(nq * REQS_PER_QUEUE * CHUNK);

    ck_assert(nq * REQS_PER_QUEUE * CHUNK <= DISK_SIZE);
    for (unsigned round = 0; round < rounds; round++) {
        for (unsigned pass = 0; pass < 2; pass++) {
            bool write = pass == 0;

            for (unsigned q = 0; q < nq; q++) {
                QVirtQueue *vq = vd->vqs[q];

                for (unsigned k = 0; k < REQS_PER_QUEUE; k++) {
                    unsigned c = q * REQS_PER_QUEUE + k;
                    QVirtioBlkReq *r = &reqs[c];
                    uint8_t *buf = bufs + (size_t)c * CHUNK;
                    uint32_t len = CHUNK, off = 0;

                    if (write) {
                        len = SECTOR * g_rand_int_range(rnd, 1,
                                                        CHUNK / SECTOR + 1);
                        off = SECTOR * g_rand_int_range(
                            rnd, 0, (CHUNK - len) / SECTOR + 1);
                        fill_random(buf, len);
                        memcpy(shadow[di] + (size_t)c * CHUNK + off, buf,
                               len);
                    }
                    *r = (QVirtioBlkReq) {
                        .type = write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN,
                        .sector = ((uint64_t)c * CHUNK + off) / SECTOR,
                        .data = buf, .len = len,
                        .data_segs = g_rand_int_range(rnd, 1, 9),
                        .indirect = vq->indirect && g_rand_boolean(rnd),
                    };
                    ck_assert_int_ge(qvirtio_blk_add(vq, r), 0);
                    if (k % 4 == 3) {
                        qvirtqueue_kick(vq);
                    }
                }
                qvirtqueue_kick(vq);
            }
            for (unsigned c = 0; c < nq * REQS_PER_QUEUE; c++) {
                QVirtQueue *vq = vd->vqs[c / REQS_PER_QUEUE];

                ck_assert_uint_eq(qvirtio_blk_finish(vq, &reqs[c]),
                                  VIRTIO_BLK_S_OK);
                ck_assert_uint_eq(reqs[c].used_len,
                                  write ? 1 : reqs[c].len + 1);
                if (!write) {
                    assert_bytes(bufs + (size_t)c * CHUNK,
                                 shadow[di] + (size_t)c * CHUNK, CHUNK,
                                 "chunk read back");
                }
            }
        }
    }
    g_free(reqs);
    g_free(bufs);
}

/* ---- identity and transport ---- */

START_TEST(test_pci_identity)
{
    QVirtioDevice *vd = vd0();
    QPCIDevice *pdev = devs[0].pdev;
    uint8_t msix = qpci_find_capability(pdev, PCI_CAP_ID_MSIX, 0);

    ck_assert_uint_eq(qpci_config_readw(pdev, PCI_VENDOR_ID), 0x1af4);
    ck_assert_uint_eq(qpci_config_readw(pdev, PCI_DEVICE_ID),
                      VIRTIO_PCI_DEVICE_ID_BASE + VIRTIO_ID_BLOCK);
    ck_assert_uint_ge(qpci_config_readb(pdev, PCI_REVISION_ID), 1);
    ck_assert_uint_eq(qpci_config_readw(pdev, PCI_SUBSYSTEM_VENDOR_ID),
                      0x1af4);
    ck_assert_uint_ge(qpci_config_readw(pdev, PCI_SUBSYSTEM_ID),
                      VIRTIO_PCI_SUBSYS_MIN);
    ck_assert_uint_eq(qpci_config_readw(pdev, PCI_CLASS_DEVICE), 0x0100);
    ck_assert_uint_eq(qpci_config_readb(pdev, PCI_INTERRUPT_PIN), 1);
    ck_assert_uint_eq(vd->device_type, VIRTIO_ID_BLOCK);

    /* All structures in one 64-bit BAR, at 4-byte aligned offsets. */
    ck_assert(vd->device.present && vd->pci_cfg.present);
    ck_assert_uint_eq(vd->common.bar, vd->notify.bar);
    ck_assert_uint_eq(vd->common.bar, vd->isr.bar);
    ck_assert_uint_eq(vd->common.bar, vd->device.bar);
    ck_assert(qpci_config_readl(pdev, PCI_BASE_ADDRESS_0 +
                                4 * vd->common.bar) &
              PCI_BASE_ADDRESS_MEM_TYPE_64);
    ck_assert_uint_ge(vd->common.length, VIRTIO_PCI_COMMON_CFG_MIN_SIZE);
    ck_assert_uint_eq(vd->common.offset % 4, 0);
    ck_assert_uint_eq(vd->device.offset % 4, 0);
    ck_assert_uint_ge(vd->device.length, VIRTIO_BLK_CFG_SIZE);
    ck_assert_uint_ge(vd->isr.length, 1);
    ck_assert_uint_eq(vd->notify_mult, 4);
    /* Notify offsets of every queue fit (1 queue here). */
    ck_assert_uint_ge(vd->notify.length, 2);
    ck_assert_uint_eq(qpci_config_readb(pdev, vd->common.cap +
                                        VIRTIO_PCI_CAP_LEN),
                      VIRTIO_PCI_CAP_SIZEOF);
    ck_assert_uint_eq(qpci_config_readb(pdev, vd->notify.cap +
                                        VIRTIO_PCI_CAP_LEN),
                      VIRTIO_PCI_NOTIFY_CAP_SIZEOF);
    ck_assert_uint_eq(qpci_config_readb(pdev, vd->pci_cfg.cap +
                                        VIRTIO_PCI_CAP_LEN),
                      VIRTIO_PCI_CFG_CAP_SIZEOF);

    /* MSI-X: one vector per queue plus one for config changes. */
    ck_assert(msix);
    ck_assert_uint_eq((qpci_config_readw(pdev, msix + PCI_MSIX_FLAGS) &
                       PCI_MSIX_FLAGS_QSIZE) + 1, 2);
    ck_assert_uint_eq(qvirtio_common_readw(vd, VIRTIO_PCI_COMMON_NUMQ), 1);
}
END_TEST

START_TEST(test_pci_identity_mq)
{
    QPCIDevice *pdev = devs[0].pdev;
    uint8_t msix = qpci_find_capability(pdev, PCI_CAP_ID_MSIX, 0);

    ck_assert_uint_eq((qpci_config_readw(pdev, msix + PCI_MSIX_FLAGS) &
                       PCI_MSIX_FLAGS_QSIZE) + 1, 5);
    ck_assert_uint_eq(qvirtio_common_readw(vd0(), VIRTIO_PCI_COMMON_NUMQ), 4);
    ck_assert(qvirtio_device_features(vd0()) &
              VIRTIO_BIT(VIRTIO_BLK_F_MQ));
    ck_assert(qvirtio_device_features(vd0()) &
              VIRTIO_BIT(VIRTIO_F_RING_PACKED));
}
END_TEST

/* Access through the PCI configuration access capability. */
static void cfg_cap_setup(QVirtioDevice *vd, uint32_t off, uint32_t len)
{
    uint8_t cap = vd->pci_cfg.cap;

    qpci_config_writeb(vd->pdev, cap + VIRTIO_PCI_CAP_BAR, vd->common.bar);
    qpci_config_writel(vd->pdev, cap + VIRTIO_PCI_CAP_LENGTH, len);
    qpci_config_writel(vd->pdev, cap + VIRTIO_PCI_CAP_OFFSET, off);
}

START_TEST(test_pci_cfg_cap)
{
    QVirtioDevice *vd = vd0();
    uint8_t data = vd->pci_cfg.cap + VIRTIO_PCI_CFG_CAP_DATA;

    cfg_cap_setup(vd, vd->common.offset + VIRTIO_PCI_COMMON_NUMQ, 2);
    ck_assert_uint_eq(qpci_config_readw(vd->pdev, data), 1);
    cfg_cap_setup(vd, vd->device.offset + VIRTIO_BLK_CFG_CAPACITY, 4);
    ck_assert_uint_eq(qpci_config_readl(vd->pdev, data), DISK_SIZE / SECTOR);
    /* A write: device_status = ACKNOWLEDGE. */
    cfg_cap_setup(vd, vd->common.offset + VIRTIO_PCI_COMMON_STATUS, 1);
    qpci_config_writeb(vd->pdev, data, VIRTIO_CONFIG_S_ACKNOWLEDGE);
    ck_assert_uint_eq(qvirtio_get_status(vd), VIRTIO_CONFIG_S_ACKNOWLEDGE);
    /* An invalid window (bad BAR) does nothing and does not crash. */
    qpci_config_writeb(vd->pdev, vd->pci_cfg.cap + VIRTIO_PCI_CAP_BAR, 2);
    qpci_config_writeb(vd->pdev, data, 0);
    ck_assert_uint_eq(qvirtio_get_status(vd), VIRTIO_CONFIG_S_ACKNOWLEDGE);
}
END_TEST

/* ---- status and features ---- */

START_TEST(test_features)
{
    QVirtioDevice *vd = vd0();
    uint64_t f = qvirtio_device_features(vd);
    uint64_t want = VIRTIO_BIT(VIRTIO_F_VERSION_1) |
                    VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) |
                    VIRTIO_BIT(VIRTIO_F_EVENT_IDX) |
                    VIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX) |
                    VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) |
                    VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) |
                    VIRTIO_BIT(VIRTIO_BLK_F_TOPOLOGY) |
                    VIRTIO_BIT(VIRTIO_BLK_F_FLUSH) |
                    VIRTIO_BIT(VIRTIO_BLK_F_CONFIG_WCE) |
                    VIRTIO_BIT(VIRTIO_BLK_F_DISCARD) |
                    VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES);

    ck_assert_msg((f & want) == want, "features 0x%" PRIx64 " lack 0x%"
                  PRIx64, f, want & ~f);
    /* packed=off by default, one queue, writable node. */
    ck_assert(!(f & VIRTIO_BIT(VIRTIO_F_RING_PACKED)));
    ck_assert(!(f & VIRTIO_BIT(VIRTIO_BLK_F_MQ)));
    ck_assert(!(f & VIRTIO_BIT(VIRTIO_BLK_F_RO)));
    ck_assert_uint_eq(qvirtio_common_readl(vd, VIRTIO_PCI_COMMON_DF), f >> 32);

    /* Accepting a feature that was not offered: FEATURES_OK does not stick. */
    qvirtio_reset(vd);
    qvirtio_add_status(vd, VIRTIO_CONFIG_S_ACKNOWLEDGE |
                       VIRTIO_CONFIG_S_DRIVER);
    ck_assert(!qvirtio_negotiate(vd, VIRTIO_BIT(VIRTIO_F_VERSION_1) |
                                 VIRTIO_BIT(VIRTIO_F_RING_PACKED)));
    ck_assert(!qvirtio_negotiate(vd, VIRTIO_BIT(VIRTIO_F_VERSION_1) |
                                 VIRTIO_BIT(50)));
    /* VERSION_1 is mandatory. */
    ck_assert(!qvirtio_negotiate(vd, VIRTIO_BIT(VIRTIO_BLK_F_FLUSH)));
    ck_assert_uint_eq(qvirtio_get_status(vd), VIRTIO_CONFIG_S_ACKNOWLEDGE |
                      VIRTIO_CONFIG_S_DRIVER);
    /* A good set sticks, and is then frozen. */
    ck_assert(qvirtio_negotiate(vd, VIRTIO_BIT(VIRTIO_F_VERSION_1) |
                                VIRTIO_BIT(VIRTIO_BLK_F_FLUSH)));
    qvirtio_set_driver_features(vd, VIRTIO_BIT(VIRTIO_F_VERSION_1));
    ck_assert_uint_eq(qvirtio_driver_features(vd),
                      VIRTIO_BIT(VIRTIO_F_VERSION_1) |
                      VIRTIO_BIT(VIRTIO_BLK_F_FLUSH));
    ck_assert_uint_eq(qvirtio_get_status(vd), VIRTIO_CONFIG_S_ACKNOWLEDGE |
                      VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
    /* Clearing a bit without a reset is ignored. */
    qvirtio_set_status(vd, VIRTIO_CONFIG_S_ACKNOWLEDGE);
    ck_assert_uint_eq(qvirtio_get_status(vd), VIRTIO_CONFIG_S_ACKNOWLEDGE |
                      VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
    /* Reset clears everything. */
    qvirtio_reset(vd);
    ck_assert_uint_eq(qvirtio_driver_features(vd), 0);
}
END_TEST

START_TEST(test_driver_ok_without_features_ok)
{
    QVirtioDevice *vd = vd0();

    qvirtio_reset(vd);
    qvirtio_add_status(vd, VIRTIO_CONFIG_S_ACKNOWLEDGE |
                       VIRTIO_CONFIG_S_DRIVER);
    qvirtio_add_status(vd, VIRTIO_CONFIG_S_DRIVER_OK);
    ck_assert(qvirtio_get_status(vd) & VIRTIO_CONFIG_S_NEEDS_RESET);
    ck_assert(!(qvirtio_get_status(vd) & VIRTIO_CONFIG_S_DRIVER_OK));
    /* A reset recovers. */
    init_dev(vd, blk_features, 1, QVIRTIO_IRQ_MSIX);
    ck_assert(!(qvirtio_get_status(vd) & VIRTIO_CONFIG_S_NEEDS_RESET));
    smoke_io(0, vd->vqs[0], 0);
}
END_TEST

START_TEST(test_queue_registers)
{
    QVirtioDevice *vd = vd0();

    qvirtio_reset(vd);
    qvirtio_add_status(vd, VIRTIO_CONFIG_S_ACKNOWLEDGE |
                       VIRTIO_CONFIG_S_DRIVER);
    ck_assert(qvirtio_negotiate(vd, VIRTIO_BIT(VIRTIO_F_VERSION_1)));
    qvirtio_setup_irqs(vd, QVIRTIO_IRQ_MSIX, 1);
    /* Vectors: in range sticks, out of range reads NO_VECTOR. */
    ck_assert_uint_eq(qvirtio_set_config_vector(vd, 1), 1);
    ck_assert_uint_eq(qvirtio_set_config_vector(vd, 2), VIRTIO_MSI_NO_VECTOR);
    ck_assert_uint_eq(qvirtio_set_config_vector(vd, VIRTIO_MSI_NO_VECTOR),
                      VIRTIO_MSI_NO_VECTOR);
    qvirtio_common_writew(vd, VIRTIO_PCI_COMMON_Q_SELECT, 0);
    ck_assert_uint_eq(qvirtio_common_readw(vd, VIRTIO_PCI_COMMON_Q_SIZE),
                      256);
    ck_assert_uint_eq(qvirtio_common_readw(vd, VIRTIO_PCI_COMMON_Q_MSIX),
                      VIRTIO_MSI_NO_VECTOR);
    ck_assert_uint_eq(qvirtio_common_readw(vd, VIRTIO_PCI_COMMON_Q_NOFF), 0);
    qvirtio_common_writew(vd, VIRTIO_PCI_COMMON_Q_MSIX, 1);
    ck_assert_uint_eq(qvirtio_common_readw(vd, VIRTIO_PCI_COMMON_Q_MSIX), 1);
    qvirtio_common_writew(vd, VIRTIO_PCI_COMMON_Q_MSIX, 7);
    ck_assert_uint_eq(qvirtio_common_readw(vd, VIRTIO_PCI_COMMON_Q_MSIX),
                      VIRTIO_MSI_NO_VECTOR);
    /* Smaller power of two: fine. */
    qvirtio_common_writew(vd, VIRTIO_PCI_COMMON_Q_SIZE, 64);
    ck_assert_uint_eq(qvirtio_common_readw(vd, VIRTIO_PCI_COMMON_Q_SIZE), 64);
    qvirtio_common_writel(vd, VIRTIO_PCI_COMMON_Q_DESCLO, 0x12345000);
    qvirtio_common_writel(vd, VIRTIO_PCI_COMMON_Q_DESCHI, 0x1);
    ck_assert_uint_eq(qvirtio_common_readl(vd, VIRTIO_PCI_COMMON_Q_DESCLO),
                      0x12345000);
    ck_assert_uint_eq(qvirtio_common_readl(vd, VIRTIO_PCI_COMMON_Q_DESCHI),
                      1);
    /* A queue that does not exist reads size 0. */
    qvirtio_common_writew(vd, VIRTIO_PCI_COMMON_Q_SELECT, 1);
    ck_assert_uint_eq(qvirtio_common_readw(vd, VIRTIO_PCI_COMMON_Q_SIZE), 0);
    /* Not a power of two on a split ring: a protocol error. */
    qvirtio_common_writew(vd, VIRTIO_PCI_COMMON_Q_SELECT, 0);
    qvirtio_common_writew(vd, VIRTIO_PCI_COMMON_Q_SIZE, 100);
    ck_assert(qvirtio_get_status(vd) & VIRTIO_CONFIG_S_NEEDS_RESET);
    /* Reset: registers back to their defaults. */
    qvirtio_reset(vd);
    qvirtio_common_writew(vd, VIRTIO_PCI_COMMON_Q_SELECT, 0);
    ck_assert_uint_eq(qvirtio_common_readw(vd, VIRTIO_PCI_COMMON_Q_SIZE),
                      256);
    ck_assert_uint_eq(qvirtio_common_readw(vd, VIRTIO_PCI_COMMON_Q_ENABLE),
                      0);
    ck_assert_uint_eq(qvirtio_common_readw(vd, VIRTIO_PCI_COMMON_Q_MSIX),
                      VIRTIO_MSI_NO_VECTOR);
    ck_assert_uint_eq(qvirtio_common_readw(vd, VIRTIO_PCI_COMMON_MSIX),
                      VIRTIO_MSI_NO_VECTOR);
    ck_assert_uint_eq(qvirtio_common_readl(vd, VIRTIO_PCI_COMMON_Q_DESCLO),
                      0);
}
END_TEST

START_TEST(test_packed_queue_size)
{
    QVirtioDevice *vd = vd0();

    qvirtio_reset(vd);
    qvirtio_add_status(vd, VIRTIO_CONFIG_S_ACKNOWLEDGE |
                       VIRTIO_CONFIG_S_DRIVER);
    ck_assert(qvirtio_negotiate(vd, VIRTIO_BIT(VIRTIO_F_VERSION_1) |
                                VIRTIO_BIT(VIRTIO_F_RING_PACKED)));
    /* Packed rings need no power of two. */
    qvirtio_common_writew(vd, VIRTIO_PCI_COMMON_Q_SELECT, 0);
    qvirtio_common_writew(vd, VIRTIO_PCI_COMMON_Q_SIZE, 100);
    ck_assert_uint_eq(qvirtio_common_readw(vd, VIRTIO_PCI_COMMON_Q_SIZE),
                      100);
    ck_assert(!(qvirtio_get_status(vd) & VIRTIO_CONFIG_S_NEEDS_RESET));
    /* And then a queue of 100 works (and wraps). */
    qvirtio_reset(vd);
    qvirtio_init(vd, &(QVirtioInit) {
        .features = blk_features | ring_features |
                    VIRTIO_BIT(VIRTIO_F_RING_PACKED),
        .nqueues = 1, .queue_size = 100, .irq = QVIRTIO_IRQ_MSIX,
    });
    ck_assert_uint_eq(vd->vqs[0]->num, 100);
    for (unsigned i = 0; i < 40; i++) {
        smoke_io(0, vd->vqs[0], 8 * i);
    }
    assert_file_matches(0);
}
END_TEST

/* ---- configuration space ---- */

START_TEST(test_config)
{
    QVirtioDevice *vd = vd0();

    init_dev(vd, blk_features | ring_features, 0, QVIRTIO_IRQ_MSIX);
    ck_assert_uint_eq(qvirtio_config_readq(vd, VIRTIO_BLK_CFG_CAPACITY),
                      DISK_SIZE / SECTOR);
    ck_assert_uint_eq(qvirtio_config_readl(vd, VIRTIO_BLK_CFG_BLK_SIZE), 512);
    ck_assert_uint_eq(qvirtio_config_readl(vd, VIRTIO_BLK_CFG_SEG_MAX), 254);
    ck_assert_uint_ne(qvirtio_config_readl(vd, VIRTIO_BLK_CFG_SIZE_MAX), 0);
    ck_assert_uint_eq(qvirtio_config_readb(vd, VIRTIO_BLK_CFG_PHYS_BLOCK_EXP),
                      0);
    ck_assert_uint_eq(qvirtio_config_readw(vd, VIRTIO_BLK_CFG_NUM_QUEUES), 1);
    ck_assert_uint_ne(qvirtio_config_readl(vd,
                                           VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS),
                      0);
    ck_assert_uint_ge(qvirtio_config_readl(vd, VIRTIO_BLK_CFG_MAX_DISCARD_SEG),
                      1);
    ck_assert_uint_eq(qvirtio_config_readl(vd, VIRTIO_BLK_CFG_DISCARD_ALIGN),
                      1);
    ck_assert_uint_ge(qvirtio_config_readl(vd, VIRTIO_BLK_CFG_MAX_WZ_SEG), 1);
    ck_assert_uint_eq(qvirtio_config_readb(vd, VIRTIO_BLK_CFG_WZ_MAY_UNMAP),
                      1);
    /* Writeback cache, switchable with CONFIG_WCE. */
    ck_assert_uint_eq(qvirtio_config_readb(vd, VIRTIO_BLK_CFG_WRITEBACK), 1);
    qvirtio_config_writeb(vd, VIRTIO_BLK_CFG_WRITEBACK, 0);
    ck_assert_uint_eq(qvirtio_config_readb(vd, VIRTIO_BLK_CFG_WRITEBACK), 0);
    smoke_io(0, vd->vqs[0], 100);
    qvirtio_config_writeb(vd, VIRTIO_BLK_CFG_WRITEBACK, 1);
    ck_assert_uint_eq(qvirtio_config_readb(vd, VIRTIO_BLK_CFG_WRITEBACK), 1);
    /* Read-only fields stay. */
    qvirtio_config_writeb(vd, VIRTIO_BLK_CFG_BLK_SIZE, 0);
    ck_assert_uint_eq(qvirtio_config_readl(vd, VIRTIO_BLK_CFG_BLK_SIZE), 512);
    /* Without FLUSH the cache is writethrough. */
    init_dev(vd, VIRTIO_BIT(VIRTIO_BLK_F_CONFIG_WCE), 1, QVIRTIO_IRQ_MSIX);
    ck_assert_uint_eq(qvirtio_config_readb(vd, VIRTIO_BLK_CFG_WRITEBACK), 0);
    smoke_io(0, vd->vqs[0], 200);
    assert_file_matches(0);
}
END_TEST

START_TEST(test_config_4k)
{
    QVirtioDevice *vd = vd0();
    uint8_t buf[4096];

    init_dev(vd, blk_features, 1, QVIRTIO_IRQ_MSIX);
    ck_assert_uint_eq(qvirtio_config_readl(vd, VIRTIO_BLK_CFG_BLK_SIZE),
                      4096);
    ck_assert_uint_eq(qvirtio_config_readb(vd, VIRTIO_BLK_CFG_PHYS_BLOCK_EXP),
                      0);
    ck_assert_uint_eq(qvirtio_config_readl(vd, VIRTIO_BLK_CFG_SEG_MAX), 62);
    ck_assert_uint_eq(qvirtio_config_readl(vd, VIRTIO_BLK_CFG_DISCARD_ALIGN),
                      8);
    smoke_io(0, vd->vqs[0], 64);
    /* Misaligned to the logical block size: IOERR. */
    ck_assert_uint_eq(blk_io(vd->vqs[0], VIRTIO_BLK_T_IN, 1, buf, 4096, 1,
                             false), VIRTIO_BLK_S_IOERR);
    ck_assert_uint_eq(blk_io(vd->vqs[0], VIRTIO_BLK_T_OUT, 8, buf, 512, 1,
                             false), VIRTIO_BLK_S_IOERR);
    assert_file_matches(0);
}
END_TEST

/* ---- data integrity ---- */

/*
 * _i bit 0: packed ring, bit 1: indirect descriptors, bit 2: event index.
 * Four queues with a vector each; the backing file is checked at the end.
 */
START_TEST(test_integrity)
{
    QVirtioDevice *vd = vd0();
    uint64_t f = blk_features;

    if (_i & 1) {
        f |= VIRTIO_BIT(VIRTIO_F_RING_PACKED);
    }
    if (_i & 2) {
        f |= VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC);
    }
    if (_i & 4) {
        f |= VIRTIO_BIT(VIRTIO_F_EVENT_IDX);
    }
    init_dev(vd, f, 4, QVIRTIO_IRQ_MSIX);
    ck_assert_uint_eq(vd->features & ~blk_features,
                      f & ~blk_features & ~VIRTIO_BIT(VIRTIO_F_VERSION_1));
    ck_assert_uint_eq(vd->nvqs, 4);
    workload(0, 4);
    assert_file_matches(0);
}
END_TEST

/* Shared vector, INTx, and no interrupts at all (polling). */
START_TEST(test_irq_modes)
{
    static const QVirtioIrq modes[] = {
        QVIRTIO_IRQ_MSIX_SHARED, QVIRTIO_IRQ_INTX, QVIRTIO_IRQ_NONE,
    };
    QVirtioDevice *vd = vd0();

    init_dev(vd, blk_features | ring_features |
             (_i == 1 ? VIRTIO_BIT(VIRTIO_F_RING_PACKED) : 0), 4, modes[_i]);
    workload(0, 1);
    assert_file_matches(0);
}
END_TEST

START_TEST(test_intx_isr)
{
    QVirtioDevice *vd = vd0();
    QVirtQueue *vq;
    QVirtioBlkReq r = { .type = VIRTIO_BLK_T_FLUSH };
    uint32_t id, len;

    init_dev(vd, blk_features, 1, QVIRTIO_IRQ_INTX);
    vq = vd->vqs[0];
    ck_assert_uint_eq(qvirtio_read_isr(vd), 0);
    qvirtio_blk_submit(vq, &r);
    qpci_intx_wait(vd->pdev);
    /* ISR bit 0 says "queue"; reading it clears it (and deasserts). */
    ck_assert_uint_eq(qvirtio_read_isr(vd), VIRTIO_PCI_ISR_QUEUE);
    ck_assert_uint_eq(qvirtio_read_isr(vd), 0);
    ck_assert(qvirtqueue_get_used(vq, &id, &len));
    ck_assert_uint_eq(id, r.id);
    qpci_intx_unmask(vd->pdev);
    qpci_intx_assert_quiet(vd->pdev);
}
END_TEST

/* Guest RAM mapped without an fd: the device goes through messages. */
START_TEST(test_nofd)
{
    QVirtioDevice *vd = vd0();

    init_dev(vd, blk_features | ring_features |
             (_i ? VIRTIO_BIT(VIRTIO_F_RING_PACKED) : 0), 2,
             QVIRTIO_IRQ_MSIX);
    for (unsigned i = 0; i < 6; i++) {
        smoke_io(0, vd->vqs[i % 2], 16 * i);
    }
    /* A few in flight at once, with indirect tables. */
    for (unsigned i = 0; i < 2; i++) {
        uint8_t w[4][8192];
        QVirtioBlkReq r[4];

        for (unsigned k = 0; k < 4; k++) {
            fill_random(w[k], sizeof(w[k]));
            memcpy(shadow[0] + (1000 + 16 * k) * SECTOR, w[k],
                   sizeof(w[k]));
            r[k] = (QVirtioBlkReq) {
                .type = VIRTIO_BLK_T_OUT, .sector = 1000 + 16 * k,
                .data = w[k], .len = sizeof(w[k]), .data_segs = 3,
                .indirect = k & 1,
            };
            qvirtio_blk_submit(vd->vqs[i], &r[k]);
        }
        for (unsigned k = 0; k < 4; k++) {
            ck_assert_uint_eq(qvirtio_blk_finish(vd->vqs[i], &r[k]),
                              VIRTIO_BLK_S_OK);
        }
    }
    assert_file_matches(0);
    ck_assert_uint_gt(vfu_client_stats(devs[0].c)->dma_reads, 0);
}
END_TEST

/* ---- request types ---- */

START_TEST(test_request_types)
{
    QVirtioDevice *vd = vd0();
    QVirtQueue *vq;
    uint8_t buf[8192], seg[2 * VIRTIO_BLK_DWZ_SIZE], id[20];
    QVirtioBlkReq r;

    init_dev(vd, blk_features | ring_features, 1, QVIRTIO_IRQ_MSIX);
    vq = vd->vqs[0];

    smoke_io(0, vq, 0);
    ck_assert_uint_eq(blk_io(vq, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, 0, false),
                      VIRTIO_BLK_S_OK);

    /* GET_ID: the serial, NUL-padded to 20 bytes. */
    r = (QVirtioBlkReq) { .type = VIRTIO_BLK_T_GET_ID, .data = id,
                          .len = sizeof(id) };
    ck_assert_uint_eq(qvirtio_blk_request(vq, &r), VIRTIO_BLK_S_OK);
    ck_assert_uint_eq(r.used_len, 21);
    ck_assert_mem_eq(id, "SERIAL-42\0\0\0\0\0\0\0\0\0\0\0", 20);

    /* WRITE_ZEROES, with and without unmap: zeroes on disk. */
    fill_random(buf, sizeof(buf));
    ck_assert_uint_eq(blk_io(vq, VIRTIO_BLK_T_OUT, 64, buf, sizeof(buf), 1,
                             false), VIRTIO_BLK_S_OK);
    memcpy(shadow[0] + 64 * SECTOR, buf, sizeof(buf));
    qvirtio_blk_dwz_seg(seg, 64, 4, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
    qvirtio_blk_dwz_seg(seg + VIRTIO_BLK_DWZ_SIZE, 72, 4, 0);
    ck_assert_uint_eq(blk_io(vq, VIRTIO_BLK_T_WRITE_ZEROES, 0, seg,
                             sizeof(seg), 1, false), VIRTIO_BLK_S_OK);
    memset(shadow[0] + 64 * SECTOR, 0, 4 * SECTOR);
    memset(shadow[0] + 72 * SECTOR, 0, 4 * SECTOR);
    ck_assert_uint_eq(blk_io(vq, VIRTIO_BLK_T_IN, 64, buf, sizeof(buf), 2,
                             false), VIRTIO_BLK_S_OK);
    assert_bytes(buf, shadow[0] + 64 * SECTOR, sizeof(buf), "zeroed");
    assert_file_matches(0);

    /* DISCARD: fine; content afterwards is unspecified. */
    qvirtio_blk_dwz_seg(seg, 4096, 64, 0);
    ck_assert_uint_eq(blk_io(vq, VIRTIO_BLK_T_DISCARD, 0, seg,
                             VIRTIO_BLK_DWZ_SIZE, 1, false),
                      VIRTIO_BLK_S_OK);
    for (unsigned s = 4096; s < 4096 + 64; s += sizeof(buf) / SECTOR) {
        ck_assert_uint_eq(blk_io(vq, VIRTIO_BLK_T_IN, s, buf, sizeof(buf), 1,
                                 false), VIRTIO_BLK_S_OK);
        memcpy(shadow[0] + s * SECTOR, buf, sizeof(buf));
    }
    /* DISCARD with the unmap flag, or unknown flags: UNSUPP. */
    qvirtio_blk_dwz_seg(seg, 4096, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
    ck_assert_uint_eq(blk_io(vq, VIRTIO_BLK_T_DISCARD, 0, seg,
                             VIRTIO_BLK_DWZ_SIZE, 1, false),
                      VIRTIO_BLK_S_UNSUPP);
    qvirtio_blk_dwz_seg(seg, 4096, 8, 0x2);
    ck_assert_uint_eq(blk_io(vq, VIRTIO_BLK_T_WRITE_ZEROES, 0, seg,
                             VIRTIO_BLK_DWZ_SIZE, 1, false),
                      VIRTIO_BLK_S_UNSUPP);
    /* Beyond the end: IOERR. */
    qvirtio_blk_dwz_seg(seg, DISK_SIZE / SECTOR - 4, 8, 0);
    ck_assert_uint_eq(blk_io(vq, VIRTIO_BLK_T_WRITE_ZEROES, 0, seg,
                             VIRTIO_BLK_DWZ_SIZE, 1, false),
                      VIRTIO_BLK_S_IOERR);
    ck_assert_uint_eq(blk_io(vq, VIRTIO_BLK_T_IN, DISK_SIZE / SECTOR - 1,
                             buf, 1024, 1, false), VIRTIO_BLK_S_IOERR);
    ck_assert_uint_eq(blk_io(vq, VIRTIO_BLK_T_OUT, UINT64_MAX / 256, buf,
                             512, 1, false), VIRTIO_BLK_S_IOERR);
    /* Unknown request types: UNSUPP. */
    ck_assert_uint_eq(blk_io(vq, 99, 0, NULL, 0, 0, false),
                      VIRTIO_BLK_S_UNSUPP);
    ck_assert_uint_eq(blk_io(vq, VIRTIO_BLK_T_GET_LIFETIME, 0, buf, 8, 1,
                             false), VIRTIO_BLK_S_UNSUPP);
    ck_assert_uint_eq(blk_io(vq, VIRTIO_BLK_T_SECURE_ERASE, 0, seg,
                             VIRTIO_BLK_DWZ_SIZE, 1, false),
                      VIRTIO_BLK_S_UNSUPP);
    ck_assert(!(qvirtio_get_status(vd) & VIRTIO_CONFIG_S_NEEDS_RESET));
    assert_file_matches(0);
}
END_TEST

START_TEST(test_dwz_not_negotiated)
{
    QVirtioDevice *vd = vd0();
    uint8_t seg[VIRTIO_BLK_DWZ_SIZE];

    init_dev(vd, VIRTIO_BIT(VIRTIO_BLK_F_FLUSH), 1, QVIRTIO_IRQ_MSIX);
    qvirtio_blk_dwz_seg(seg, 0, 8, 0);
    ck_assert_uint_eq(blk_io(vd->vqs[0], VIRTIO_BLK_T_DISCARD, 0, seg,
                             sizeof(seg), 1, false), VIRTIO_BLK_S_UNSUPP);
    ck_assert_uint_eq(blk_io(vd->vqs[0], VIRTIO_BLK_T_WRITE_ZEROES, 0, seg,
                             sizeof(seg), 1, false), VIRTIO_BLK_S_UNSUPP);
    assert_file_matches(0);
}
END_TEST

START_TEST(test_read_only)
{
    QVirtioDevice *vd = vd0();
    uint8_t buf[4096], seg[VIRTIO_BLK_DWZ_SIZE];

    ck_assert(qvirtio_device_features(vd) & VIRTIO_BIT(VIRTIO_BLK_F_RO));
    init_dev(vd, blk_features, 1, QVIRTIO_IRQ_MSIX);
    ck_assert(vd->features & VIRTIO_BIT(VIRTIO_BLK_F_RO));
    ck_assert_uint_eq(blk_io(vd->vqs[0], VIRTIO_BLK_T_IN, 8, buf, 4096, 1,
                             false), VIRTIO_BLK_S_OK);
    assert_bytes(buf, shadow[0] + 8 * SECTOR, sizeof(buf), "read-only read");
    fill_random(buf, sizeof(buf));
    ck_assert_uint_eq(blk_io(vd->vqs[0], VIRTIO_BLK_T_OUT, 8, buf, 4096, 1,
                             false), VIRTIO_BLK_S_IOERR);
    qvirtio_blk_dwz_seg(seg, 0, 8, 0);
    ck_assert_uint_eq(blk_io(vd->vqs[0], VIRTIO_BLK_T_WRITE_ZEROES, 0, seg,
                             sizeof(seg), 1, false), VIRTIO_BLK_S_IOERR);
    assert_file_matches(0);
}
END_TEST

/* ---- notification suppression ---- */

static void submit_flush(QVirtQueue *vq, QVirtioBlkReq *r)
{
    *r = (QVirtioBlkReq) { .type = VIRTIO_BLK_T_FLUSH };
    qvirtio_blk_submit(vq, r);
}

/* Poll until the used ring shows @r, without waiting for interrupts. */
static void poll_used(QVirtQueue *vq, QVirtioBlkReq *r)
{
    int64_t deadline = qos_deadline(QOS_TIMEOUT_MS);
    uint32_t id, len;

    for (;;) {
        if (qvirtqueue_get_used(vq, &id, &len) && (int)id == r->id) {
            break;
        }
        ck_assert_msg(qos_remaining_ms(deadline), "request %d not used",
                      r->id);
        vfu_service(qpci_client(vq->vd->pdev), 1);
    }
    guest_free(vq->vd->gm, r->hdr_addr);
    guest_free(vq->vd->gm, r->status_addr);
}

/* _i: 0 split, 1 split + event index, 2 packed, 3 packed + event index. */
START_TEST(test_interrupt_suppression)
{
    QVirtioDevice *vd = vd0();
    bool packed = _i & 2, event_idx = _i & 1;
    QVirtQueue *vq;
    QVirtioBlkReq r;
    int fd;

    init_dev(vd, blk_features |
             (packed ? VIRTIO_BIT(VIRTIO_F_RING_PACKED) : 0) |
             (event_idx ? VIRTIO_BIT(VIRTIO_F_EVENT_IDX) : 0), 1,
             QVIRTIO_IRQ_MSIX);
    vq = vd->vqs[0];
    fd = qvirtqueue_irq_fd(vq);

    /* Interrupts wanted: one comes. */
    submit_flush(vq, &r);
    ck_assert_uint_eq(qvirtio_blk_finish(vq, &r), VIRTIO_BLK_S_OK);
    qpci_eventfd_clear(fd);

    /* Not wanted (NO_INTERRUPT / DISABLE): none comes. */
    qvirtqueue_set_interrupts(vq, false);
    submit_flush(vq, &r);
    poll_used(vq, &r);
    qpci_msix_assert_quiet(vd->pdev, vq->vector);

    if (event_idx) {
        uint16_t far;

        /* Wanted only far ahead: none for the next one... */
        qvirtqueue_set_interrupts(vq, true);
        if (packed) {
            far = ((vq->last_used + vq->num / 2) % vq->num) |
                  ((uint16_t)vq->used_wrap << VRING_PACKED_EVENT_WRAP_SHIFT);
        } else {
            far = vq->last_used_idx + 10;
        }
        qvirtqueue_set_used_event(vq, far);
        submit_flush(vq, &r);
        poll_used(vq, &r);
        qpci_msix_assert_quiet(vd->pdev, vq->vector);
        /* ...but at exactly the next one: an interrupt. */
        qvirtqueue_set_used_event(vq, packed
            ? (vq->last_used |
               ((uint16_t)vq->used_wrap << VRING_PACKED_EVENT_WRAP_SHIFT))
            : vq->last_used_idx);
        submit_flush(vq, &r);
        qpci_msix_wait(vd->pdev, vq->vector);
        poll_used(vq, &r);
    } else {
        qvirtqueue_set_interrupts(vq, true);
        submit_flush(vq, &r);
        qpci_msix_wait(vd->pdev, vq->vector);
        poll_used(vq, &r);
    }
}
END_TEST

/* The device's side: after a drain it asks for kicks again. */
/*
 * Does the used ring ask for a notification on the next buffer, as the
 * device publishes it when it waits for one (notifications enabled)?
 */
static bool kicks_wanted(QVirtQueue *vq, bool packed, bool event_idx)
{
    if (packed) {
        uint16_t flags = guest_readw(gm, vq->used + VRING_PACKED_EVENT_FLAGS);
        uint16_t ow;

        if (!event_idx) {
            return flags == VRING_PACKED_EVENT_FLAG_ENABLE;
        }
        ow = guest_readw(gm, vq->used + VRING_PACKED_EVENT_OFF_WRAP);
        return flags == VRING_PACKED_EVENT_FLAG_DESC &&
               (ow & 0x7fff) == vq->next_avail &&
               (ow >> 15) == vq->avail_wrap;
    }
    if (event_idx) {
        return guest_readw(gm, vq->used +
                           vring_used_avail_event_off(vq->num)) ==
               vq->avail_idx;
    }
    return guest_readw(gm, vq->used + VRING_USED_FLAGS) == 0;
}

/* Once the device is idle it wants notifications again (a polling loop
 * publishes that when it stops polling). */
static void wait_kicks_wanted(QVirtQueue *vq, bool packed, bool event_idx)
{
    int64_t deadline = qos_deadline(QOS_TIMEOUT_MS);

    while (!kicks_wanted(vq, packed, event_idx)) {
        ck_assert_msg(qos_remaining_ms(deadline), "the device does not ask "
                      "for notifications when idle");
        g_usleep(1000);
    }
}

START_TEST(test_kick_suppression)
{
    QVirtioDevice *vd = vd0();
    bool packed = _i & 2, event_idx = _i & 1;
    QVirtQueue *vq;

    init_dev(vd, blk_features |
             (packed ? VIRTIO_BIT(VIRTIO_F_RING_PACKED) : 0) |
             (event_idx ? VIRTIO_BIT(VIRTIO_F_EVENT_IDX) : 0), 1,
             QVIRTIO_IRQ_MSIX);
    vq = vd->vqs[0];
    for (unsigned i = 0; i < 3; i++) {
        smoke_io(0, vq, 8 * i);
    }
    wait_kicks_wanted(vq, packed, event_idx);
}
END_TEST

/*
 * A device on an iothread that busy-polls its rings: while requests keep
 * coming, the driver is asked not to notify (the kicks it skips would be
 * messages), and the device finds the requests itself; idle, it asks for
 * notifications again.  _i: bit 0 event index, bit 1 packed.
 */
START_TEST(test_poll_rings)
{
    QVirtioDevice *vd = vd0();
    bool packed = _i & 2, event_idx = _i & 1;
    QVirtQueue *vq;
    uint64_t before, kicks;

    init_dev(vd, blk_features |
             (packed ? VIRTIO_BIT(VIRTIO_F_RING_PACKED) : 0) |
             (event_idx ? VIRTIO_BIT(VIRTIO_F_EVENT_IDX) : 0), 1,
             QVIRTIO_IRQ_MSIX);
    vq = vd->vqs[0];
    before = vfu_client_stats(devs[0].c)->msgs_sent;
    for (unsigned i = 0; i < 200; i++) {
        smoke_io(0, vq, 8 * (i % 64));
    }
    kicks = vfu_client_stats(devs[0].c)->msgs_sent - before;
    ck_assert_msg(kicks < 100, "%" PRIu64 " notifications for 400 requests",
                  kicks);
    wait_kicks_wanted(vq, packed, event_idx);
    /* Idle and asking again: a request with its kick completes. */
    smoke_io(0, vq, 8);
    assert_file_matches(0);
}
END_TEST

/* ---- monitor: resize, stop / cont, statistics ---- */

/* _i: 0 MSI-X, 1 INTx. */
START_TEST(test_resize)
{
    QVirtioDevice *vd = vd0();
    g_autoptr(QmpClient) q = qmp_client_open(qmp_path);
    uint8_t buf[4096];
    uint8_t gen;

    init_dev(vd, blk_features | ring_features, 1,
             _i ? QVIRTIO_IRQ_INTX : QVIRTIO_IRQ_MSIX);
    gen = qvirtio_generation(vd);
    json_object_put(qmp_okf(q, "block_resize", "{'node-name': 'd0', "
                            "'size': %u}", 2 * DISK_SIZE));
    ck_assert(qvirtio_wait_config_irq(vd, QOS_TIMEOUT_MS));
    ck_assert_uint_ne(qvirtio_generation(vd), gen);
    if (!_i) {
        ck_assert(qvirtio_read_isr(vd) & VIRTIO_PCI_ISR_CONFIG);
    }
    ck_assert_uint_eq(qvirtio_config_readq(vd, VIRTIO_BLK_CFG_CAPACITY),
                      2 * DISK_SIZE / SECTOR);
    /* The new space works. */
    fill_random(buf, sizeof(buf));
    ck_assert_uint_eq(blk_io(vd->vqs[0], VIRTIO_BLK_T_OUT,
                             2 * DISK_SIZE / SECTOR - 8, buf, sizeof(buf), 1,
                             false), VIRTIO_BLK_S_OK);
    /* Shrink: beyond the end fails again. */
    gen = qvirtio_generation(vd);
    json_object_put(qmp_okf(q, "block_resize", "{'device': 'vb0', "
                            "'size': %u}", DISK_SIZE / 2));
    ck_assert(qvirtio_wait_config_irq(vd, QOS_TIMEOUT_MS));
    ck_assert_uint_ne(qvirtio_generation(vd), gen);
    ck_assert_uint_eq(qvirtio_config_readq(vd, VIRTIO_BLK_CFG_CAPACITY),
                      DISK_SIZE / 2 / SECTOR);
    ck_assert_uint_eq(blk_io(vd->vqs[0], VIRTIO_BLK_T_IN, DISK_SIZE / SECTOR
                             / 2, buf, sizeof(buf), 1, false),
                      VIRTIO_BLK_S_IOERR);
    smoke_io(0, vd->vqs[0], 0);
}
END_TEST

START_TEST(test_stop_cont)
{
    QVirtioDevice *vd = vd0();
    g_autoptr(QmpClient) q = qmp_client_open(qmp_path);
    QVirtioBlkReq r[4];
    uint8_t bufs[4][4096];

    init_dev(vd, blk_features | ring_features, 4, QVIRTIO_IRQ_MSIX);
    smoke_io(0, vd->vqs[0], 0);
    json_object_put(qmp_ok(q, "stop", NULL));
    for (unsigned k = 0; k < 4; k++) {
        fill_random(bufs[k], sizeof(bufs[k]));
        memcpy(shadow[0] + (64 + 8 * k) * SECTOR, bufs[k], sizeof(bufs[k]));
        r[k] = (QVirtioBlkReq) {
            .type = VIRTIO_BLK_T_OUT, .sector = 64 + 8 * k,
            .data = bufs[k], .len = sizeof(bufs[k]),
        };
        qvirtio_blk_submit(vd->vqs[k], &r[k]);
    }
    /* Paused: nothing is used. */
    ck_assert(!qvirtqueue_try_wait_used(vd->vqs[0], r[0].id, 300, NULL));
    json_object_put(qmp_ok(q, "cont", NULL));
    for (unsigned k = 0; k < 4; k++) {
        ck_assert_uint_eq(qvirtio_blk_finish(vd->vqs[k], &r[k]),
                          VIRTIO_BLK_S_OK);
    }
    assert_file_matches(0);
}
END_TEST

/* The block layer counts what the device does. */
START_TEST(test_blockstats)
{
    QVirtioDevice *vd = vd0();
    g_autoptr(QmpClient) q = qmp_client_open(qmp_path);
    json_object *ret, *st = NULL;

    init_dev(vd, blk_features | ring_features, 1, QVIRTIO_IRQ_MSIX);
    for (unsigned i = 0; i < 3; i++) {
        smoke_io(0, vd->vqs[0], 8 * i);
    }
    ret = qmp_ok(q, "query-blockstats", NULL);
    for (size_t i = 0; i < json_object_array_length(ret); i++) {
        json_object *e = json_object_array_get_idx(ret, i);

        if (strcmp(qmp_get_str(e, "device"), "vb0") == 0) {
            st = qmp_get(e, "stats");
        }
    }
    ck_assert_msg(st, "no stats for vb0 in %s", qmp_json(ret));
    ck_assert_int_eq(qmp_get_int(st, "wr_operations"), 3);
    ck_assert_int_eq(qmp_get_int(st, "rd_operations"), 3);
    ck_assert_int_eq(qmp_get_int(st, "wr_bytes"), 3 * 4096);
    json_object_put(ret);
}
END_TEST

/* ---- malformed input ---- */

typedef enum BadCase {
    BAD_LOOP,
    BAD_NEXT_OOB,
    BAD_HEAD_OOB,
    BAD_AVAIL_IDX,
    BAD_INDIRECT_LONG,
    BAD_INDIRECT_NESTED,
    BAD_INDIRECT_LEN,
    BAD_INDIRECT_NEXT,
    BAD_LEN_OVERFLOW,
    BAD_CHAIN_OVERFLOW,
    BAD_ADDR,
    BAD_STATUS_ADDR,
    BAD_ORDER,
    BAD_NO_HEADER,
    BAD_RING_ADDR,
    BAD_PACKED_LONG,
    BAD_PACKED_NESTED,
    BAD_PACKED_ADDR,
    BAD_PACKED_INDIRECT_NEXT,
    BAD__MAX
} BadCase;

static const char *const bad_names[] = {
    "descriptor loop", "next out of range", "head out of range",
    "avail index jump", "indirect table longer than the queue",
    "nested indirect", "indirect length", "indirect with next",
    "length overflow", "chain length overflow", "unmapped buffer",
    "unmapped status", "readable after writable", "missing header",
    "unmapped ring", "packed chain longer than the queue",
    "packed nested indirect", "packed unmapped buffer",
    "packed indirect with next",
};

/* Victim set-up by hand: the ring may sit outside guest memory. */
static void init_victim_bad_ring(QVirtioDevice *vd)
{
    QVirtQueue *vq;

    qvirtio_reset(vd);
    qvirtio_add_status(vd, VIRTIO_CONFIG_S_ACKNOWLEDGE |
                       VIRTIO_CONFIG_S_DRIVER);
    ck_assert(qvirtio_negotiate(vd, qvirtio_device_features(vd) &
                                (blk_features | ring_features)));
    qvirtio_setup_irqs(vd, QVIRTIO_IRQ_MSIX, 1);
    ck_assert_uint_eq(qvirtio_set_config_vector(vd, 0), 0);
    vq = qvirtqueue_setup(vd, 0, 0, 1);
    vd->vqs[0] = vq;
    vd->nvqs = 1;
    qvirtio_common_writel(vd, VIRTIO_PCI_COMMON_Q_DESCLO, UNMAPPED_ADDR);
    qvirtio_common_writel(vd, VIRTIO_PCI_COMMON_Q_DESCHI, 0);
    qvirtqueue_enable(vq);
    qvirtio_add_status(vd, VIRTIO_CONFIG_S_DRIVER_OK);
}

static void inject(QVirtQueue *vq, BadCase bc, uint64_t hdr, uint64_t data,
                   uint64_t status)
{
    uint64_t t, t2;
    unsigned n = vq->num;

    switch (bc) {
    case BAD_LOOP:
        qvring_write_desc(vq, vq->desc, 0, hdr, 16, VRING_DESC_F_NEXT, 1);
        qvring_write_desc(vq, vq->desc, 1, data, 512, VRING_DESC_F_NEXT, 0);
        qvring_publish_head(vq, 0);
        break;
    case BAD_NEXT_OOB:
        qvring_write_desc(vq, vq->desc, 0, hdr, 16, VRING_DESC_F_NEXT, n);
        qvring_publish_head(vq, 0);
        break;
    case BAD_HEAD_OOB:
        qvring_publish_head(vq, n + 5);
        break;
    case BAD_AVAIL_IDX:
        qvring_set_avail_idx(vq, n + 1);
        break;
    case BAD_INDIRECT_LONG:
        t = guest_alloc_aligned(gm, (n + 1) * 16, 16);
        qvring_write_desc(vq, t, 0, hdr, 16, VRING_DESC_F_NEXT, 1);
        for (unsigned i = 1; i < n; i++) {
            qvring_write_desc(vq, t, i, data, 512, VRING_DESC_F_NEXT, i + 1);
        }
        qvring_write_desc(vq, t, n, status, 1, VRING_DESC_F_WRITE, 0);
        qvring_write_desc(vq, vq->desc, 0, t, (n + 1) * 16,
                          VRING_DESC_F_INDIRECT, 0);
        qvring_publish_head(vq, 0);
        break;
    case BAD_INDIRECT_NESTED:
        t = guest_alloc_aligned(gm, 3 * 16, 16);
        t2 = guest_alloc_aligned(gm, 2 * 16, 16);
        qvring_write_desc(vq, t2, 0, data, 512, VRING_DESC_F_NEXT, 1);
        qvring_write_desc(vq, t2, 1, status, 1, VRING_DESC_F_WRITE, 0);
        qvring_write_desc(vq, t, 0, hdr, 16, VRING_DESC_F_NEXT, 1);
        qvring_write_desc(vq, t, 1, t2, 32, VRING_DESC_F_INDIRECT, 0);
        qvring_write_desc(vq, vq->desc, 0, t, 32, VRING_DESC_F_INDIRECT, 0);
        qvring_publish_head(vq, 0);
        break;
    case BAD_INDIRECT_LEN:
        t = guest_alloc_aligned(gm, 3 * 16, 16);
        qvring_write_desc(vq, t, 0, hdr, 16, VRING_DESC_F_NEXT, 1);
        qvring_write_desc(vq, t, 1, status, 1, VRING_DESC_F_WRITE, 0);
        qvring_write_desc(vq, vq->desc, 0, t, 24, VRING_DESC_F_INDIRECT, 0);
        qvring_publish_head(vq, 0);
        break;
    case BAD_INDIRECT_NEXT:
        t = guest_alloc_aligned(gm, 2 * 16, 16);
        qvring_write_desc(vq, t, 0, hdr, 16, VRING_DESC_F_NEXT, 1);
        qvring_write_desc(vq, t, 1, status, 1, VRING_DESC_F_WRITE, 0);
        qvring_write_desc(vq, vq->desc, 0, t, 32,
                          VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
        qvring_write_desc(vq, vq->desc, 1, status, 1, VRING_DESC_F_WRITE, 0);
        qvring_publish_head(vq, 0);
        break;
    case BAD_LEN_OVERFLOW:
        qvring_write_desc(vq, vq->desc, 0, 0xfffffffffffff000ULL, 0x2000,
                          VRING_DESC_F_NEXT, 1);
        qvring_write_desc(vq, vq->desc, 1, status, 1, VRING_DESC_F_WRITE, 0);
        qvring_publish_head(vq, 0);
        break;
    case BAD_CHAIN_OVERFLOW:
        /* Three buffers of 2 GiB: the total does not fit 32 bits. */
        qvring_write_desc(vq, vq->desc, 0, hdr, 16, VRING_DESC_F_NEXT, 1);
        for (unsigned i = 1; i < 4; i++) {
            qvring_write_desc(vq, vq->desc, i, data, 0x80000000u,
                              VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, i + 1);
        }
        qvring_write_desc(vq, vq->desc, 4, status, 1, VRING_DESC_F_WRITE, 0);
        qvring_publish_head(vq, 0);
        break;
    case BAD_ADDR:
        qvring_write_desc(vq, vq->desc, 0, UNMAPPED_ADDR, 16,
                          VRING_DESC_F_NEXT, 1);
        qvring_write_desc(vq, vq->desc, 1, status, 1, VRING_DESC_F_WRITE, 0);
        qvring_publish_head(vq, 0);
        break;
    case BAD_STATUS_ADDR:
        qvring_write_desc(vq, vq->desc, 0, hdr, 16, VRING_DESC_F_NEXT, 1);
        qvring_write_desc(vq, vq->desc, 1, UNMAPPED_ADDR, 1,
                          VRING_DESC_F_WRITE, 0);
        qvring_publish_head(vq, 0);
        break;
    case BAD_ORDER:
        qvring_write_desc(vq, vq->desc, 0, status, 1,
                          VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
        qvring_write_desc(vq, vq->desc, 1, hdr, 16, 0, 0);
        qvring_publish_head(vq, 0);
        break;
    case BAD_NO_HEADER:
        qvring_write_desc(vq, vq->desc, 0, hdr, 8, VRING_DESC_F_NEXT, 1);
        qvring_write_desc(vq, vq->desc, 1, status, 1, VRING_DESC_F_WRITE, 0);
        qvring_publish_head(vq, 0);
        break;
    case BAD_RING_ADDR:
        qvring_publish_head(vq, 0);
        break;
    case BAD_PACKED_LONG:
        /* Every slot chained to the next: longer than the ring. */
        for (unsigned i = n; i-- > 0;) {
            qvring_packed_write_desc(vq, i, data, 512, 0,
                                     VRING_DESC_F_NEXT, true);
        }
        break;
    case BAD_PACKED_NESTED:
        t = guest_alloc_aligned(gm, 2 * 16, 16);
        qvring_write_desc(vq, t, 0, hdr, 16, 0, 0);
        qvring_write_desc(vq, t, 1, t, 32, 0, VRING_DESC_F_INDIRECT);
        qvring_packed_write_desc(vq, 0, t, 32, 0, VRING_DESC_F_INDIRECT,
                                 true);
        break;
    case BAD_PACKED_ADDR:
        qvring_packed_write_desc(vq, 1, status, 1, 0, VRING_DESC_F_WRITE,
                                 true);
        qvring_packed_write_desc(vq, 0, UNMAPPED_ADDR, 16, 0,
                                 VRING_DESC_F_NEXT, true);
        break;
    case BAD_PACKED_INDIRECT_NEXT:
        t = guest_alloc_aligned(gm, 2 * 16, 16);
        qvring_write_desc(vq, t, 0, hdr, 16, 0, 0);
        qvring_write_desc(vq, t, 1, status, 1, 0, VRING_DESC_F_WRITE);
        qvring_packed_write_desc(vq, 1, status, 1, 0, VRING_DESC_F_WRITE,
                                 true);
        qvring_packed_write_desc(vq, 0, t, 32, 0,
                                 VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT,
                                 true);
        break;
    case BAD__MAX:
        g_assert_not_reached();
    }
}

/*
 * Device 0 (queue size 16) gets malformed input: it must go NEEDS_RESET
 * with a configuration interrupt, while device 1 in the same daemon keeps
 * working; after a reset device 0 works again.
 */
START_TEST(test_bad_input)
{
    BadCase bc = _i;
    QVirtioDevice *vd = vd0(), *other = devs[1].vd;
    bool packed = bc >= BAD_PACKED_LONG;
    uint8_t hdr[16] = { 0 };
    uint64_t ghdr, gdata, gstatus;

    init_dev(other, blk_features | ring_features, 2, QVIRTIO_IRQ_MSIX);
    if (bc == BAD_RING_ADDR) {
        init_victim_bad_ring(vd);
    } else {
        init_dev(vd, blk_features | ring_features |
                 (packed ? VIRTIO_BIT(VIRTIO_F_RING_PACKED) : 0), 1,
                 QVIRTIO_IRQ_MSIX);
    }
    smoke_io(1, other->vqs[0], 0);

    stl_le_p(hdr + VIRTIO_BLK_REQ_TYPE, VIRTIO_BLK_T_OUT);
    ghdr = guest_alloc(gm, sizeof(hdr));
    guest_memwrite(gm, ghdr, hdr, sizeof(hdr));
    gdata = guest_alloc(gm, 512);
    gstatus = guest_alloc(gm, 1);
    inject(vd->vqs[0], bc, ghdr, gdata, gstatus);
    qvirtqueue_notify(vd->vqs[0]);

    ck_assert_msg(qvirtio_wait_config_irq(vd, QOS_TIMEOUT_MS),
                  "%s: no configuration interrupt (status 0x%x)",
                  bad_names[bc], qvirtio_get_status(vd));
    ck_assert_msg(qvirtio_get_status(vd) & VIRTIO_CONFIG_S_NEEDS_RESET,
                  "%s: status 0x%x without NEEDS_RESET", bad_names[bc],
                  qvirtio_get_status(vd));
    ck_assert(qvirtio_read_isr(vd) & VIRTIO_PCI_ISR_CONFIG);
    iovd_proc_assert_alive(proc);

    /* The other device in the daemon is unaffected. */
    smoke_io(1, other->vqs[1], 64);
    ck_assert(!(qvirtio_get_status(other) & VIRTIO_CONFIG_S_NEEDS_RESET));

    /* A reset brings the victim back. */
    init_dev(vd, blk_features | ring_features |
             (packed ? VIRTIO_BIT(VIRTIO_F_RING_PACKED) : 0), 1,
             QVIRTIO_IRQ_MSIX);
    ck_assert(!(qvirtio_get_status(vd) & VIRTIO_CONFIG_S_NEEDS_RESET));
    smoke_io(0, vd->vqs[0], 128);
    assert_file_matches(0);
    assert_file_matches(1);
}
END_TEST

/* ---- reset ---- */

/* _i: 0 status 0, 1 DEVICE_RESET, 2 client disconnect. */
START_TEST(test_reset_inflight)
{
    QVirtioDevice *vd = vd0();
    static uint8_t bufs[32][16384];
    QVirtioBlkReq r[32];

    init_dev(vd, blk_features | ring_features, 4, QVIRTIO_IRQ_MSIX);
    for (unsigned k = 0; k < 32; k++) {
        fill_random(bufs[k], sizeof(bufs[k]));
        r[k] = (QVirtioBlkReq) {
            .type = VIRTIO_BLK_T_OUT, .sector = 32 * k, .data = bufs[k],
            .len = sizeof(bufs[k]), .data_segs = 4,
        };
        ck_assert_int_ge(qvirtio_blk_add(vd->vqs[k % 4], &r[k]), 0);
    }
    for (unsigned q = 0; q < 4; q++) {
        qvirtqueue_notify(vd->vqs[q]);
    }
    switch (_i) {
    case 0:
        qvirtio_reset(vd);
        break;
    case 1:
        qos_assert_errno(vfu_device_reset(devs[0].c), 0);
        /* A function reset also clears the command register. */
        qpci_device_enable(devs[0].pdev);
        ck_assert_uint_eq(qvirtio_get_status(vd), 0);
        break;
    case 2:
        qvirtio_free(vd);
        qpci_device_free(devs[0].pdev);
        vfu_client_free(devs[0].c);
        /*
         * Let the daemon finish with the old client first: it drains the
         * device, running the main loop, before it drops the old client's
         * mappings, and a client accepted meanwhile would lose its own
         * (hw/vfio-user vfu_client_detach / vfu_accept).
         */
        ck_assert_uint_le(iovd_proc_wait_fds_at_most(proc, idle_fds,
                                                     QOS_TIMEOUT_MS),
                          idle_fds);
        devs[0].c = vfu_client_open(devs[0].sock);
        guest_mem_map_checked(gm, devs[0].c, true);
        devs[0].pdev = qpci_device_new(devs[0].c);
        devs[0].vd = vd = qvirtio_pci_new(devs[0].pdev, gm);
        break;
    }
    /* Whatever was written, the device works again. */
    init_dev(vd, blk_features | ring_features, 4, QVIRTIO_IRQ_MSIX);
    for (unsigned k = 0; k < 32; k++) {
        uint8_t got[16384];

        ck_assert_uint_eq(blk_io(vd->vqs[k % 4], VIRTIO_BLK_T_IN, 32 * k,
                                 got, sizeof(got), 2, false),
                          VIRTIO_BLK_S_OK);
        memcpy(shadow[0] + 32 * k * SECTOR, got, sizeof(got));
    }
    assert_file_matches(0);
    smoke_io(0, vd->vqs[3], 2000);
}
END_TEST

/*
 * A reset while the queue's work waits for the VMM's answer to a DMA_READ
 * (guest RAM without fd): the work is cancelled before the reset applies,
 * so none of the requests it was reading reaches the disk, and the late
 * reply is dropped.  Rounds alternate device_status 0 and DEVICE_RESET.
 */
START_TEST(test_reset_nofd_busy)
{
    QVirtioDevice *vd = vd0();

    init_dev(vd, blk_features | ring_features, 2, QVIRTIO_IRQ_MSIX);
    for (unsigned round = 0; round < 4; round++) {
        static uint8_t bufs[8][4096];
        QVirtioBlkReq r[8];

        memset(bufs, 0xee, sizeof(bufs));
        vfu_client_hold_dma(devs[0].c, true);
        for (unsigned k = 0; k < 8; k++) {
            r[k] = (QVirtioBlkReq) {
                .type = VIRTIO_BLK_T_OUT, .sector = 8 * k,
                .data = bufs[k], .len = 4096, .data_segs = 2,
            };
            ck_assert_int_ge(qvirtio_blk_add(vd->vqs[k % 2], &r[k]), 0);
        }
        qvirtqueue_notify(vd->vqs[0]);
        qvirtqueue_notify(vd->vqs[1]);
        ck_assert(vfu_client_wait_held_dma(devs[0].c, 1, QOS_TIMEOUT_MS));
        /* Registers are served while the work waits. */
        ck_assert(qvirtio_get_status(vd) & VIRTIO_CONFIG_S_DRIVER_OK);
        if (round % 2 == 0) {
            qvirtio_reset(vd);
        } else {
            qos_assert_errno(vfu_device_reset(devs[0].c), 0);
            qpci_device_enable(devs[0].pdev);
            ck_assert_uint_eq(qvirtio_get_status(vd), 0);
        }
        vfu_client_hold_dma(devs[0].c, false);
        vfu_service(devs[0].c, 20);
        assert_file_matches(0);         /* nothing was written */
        init_dev(vd, blk_features | ring_features, 2, QVIRTIO_IRQ_MSIX);
        smoke_io(0, vd->vqs[1], 4000);
    }
}
END_TEST

/* ---- command line ---- */

/*
 * Run iovd with one 1 MiB node "d0" and @args ("@S" and "@T" stand for two
 * socket paths).  True when it became ready (it is then stopped again);
 * false when it exited first, with its stderr in *err.
 */
static bool try_start(const char *const *args, char **err)
{
    g_autofree char *dir = g_dir_make_tmp("vbtest-XXXXXX", NULL);
    g_autofree char *img = g_build_filename(dir, "d.img", NULL);
    g_autofree char *sock = g_build_filename(dir, "s.sock", NULL);
    g_autofree char *sock2 = g_build_filename(dir, "s2.sock", NULL);
    g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
    int ready[2], errp[2], status;
    char byte, buf[4096];
    GString *text = g_string_new(NULL);
    bool started;
    ssize_t n;
    pid_t pid;

    ck_assert(dir);
    ck_assert(g_file_set_contents(img, "", 0, NULL));
    ck_assert_int_eq(truncate(img, 1 << 20), 0);
    g_ptr_array_add(argv, g_strdup(iovd_binary()));
    g_ptr_array_add(argv, g_strdup("-blockdev"));
    g_ptr_array_add(argv, g_strdup_printf("driver=file,node-name=d0,"
                                          "filename=%s", img));
    for (const char *const *a = args; *a; a++) {
        char *x = g_strdup(*a), *at;

        while ((at = strstr(x, "@S")) || (at = strstr(x, "@T"))) {
            char *y;

            *at = 0;
            y = g_strdup_printf("%s%s%s", x, at[1] == 'S' ? sock : sock2,
                                at + 2);
            g_free(x);
            x = y;
        }
        g_ptr_array_add(argv, x);
    }
    ck_assert_int_eq(pipe(ready), 0);
    ck_assert_int_eq(pipe(errp), 0);
    g_ptr_array_add(argv, g_strdup("-ready-fd"));
    g_ptr_array_add(argv, g_strdup_printf("%d", ready[1]));
    g_ptr_array_add(argv, NULL);
    pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        dup2(errp[1], 2);
        close(ready[0]);
        close(errp[0]);
        execv(argv->pdata[0], (char **)argv->pdata);
        _exit(127);
    }
    close(ready[1]);
    close(errp[1]);
    started = read(ready[0], &byte, 1) == 1;
    close(ready[0]);
    if (started) {
        kill(pid, SIGTERM);
    }
    while ((n = read(errp[0], buf, sizeof(buf))) > 0) {
        g_string_append_len(text, buf, n);
    }
    close(errp[0]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    *err = g_string_free(text, false);
    unlink(img);
    unlink(sock);
    unlink(sock2);
    rmdir(dir);
    return started;
}

START_TEST(test_bad_properties)
{
    static const struct {
        const char *device;
        const char *expect;
    } cases[] = {
        { "virtio-blk-pci,id=v,socket=@S", "drive" },
        { "virtio-blk-pci,id=v,drive=nope,socket=@S", "nope" },
        { "virtio-blk-pci,id=v,drive=d0,num-queues=0,socket=@S",
          "num-queues" },
        { "virtio-blk-pci,id=v,drive=d0,num-queues=257,socket=@S",
          "num-queues" },
        { "virtio-blk-pci,id=v,drive=d0,queue-size=100,socket=@S",
          "queue-size" },
        { "virtio-blk-pci,id=v,drive=d0,queue-size=2048,socket=@S",
          "queue-size" },
        { "virtio-blk-pci,id=v,drive=d0,logical_block_size=1000,socket=@S",
          "logical_block_size" },
        { "virtio-blk-pci,id=v,drive=d0,serial=123456789012345678901,"
          "socket=@S", "serial" },
        { "virtio-blk-pci,id=v,drive=d0,werror=sometimes,socket=@S",
          "werror" },
    };

    qos_check_init();
    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        const char *args[] = { "-device", cases[i].device, NULL };
        g_autofree char *err = NULL;

        ck_assert_msg(!try_start(args, &err), "%s started",
                      cases[i].device);
        ck_assert_msg(err && strstr(err, cases[i].expect),
                      "%s: error does not name '%s': %s", cases[i].device,
                      cases[i].expect, err ? err : "(none)");
    }
}
END_TEST

/* Two devices on one node: only with share-rw=on on both. */
START_TEST(test_share_rw)
{
    g_autofree char *err = NULL;
    const char *twice[] = {
        "-device", "virtio-blk-pci,id=a,drive=d0,socket=@S",
        "-device", "virtio-blk-pci,id=b,drive=d0,socket=@T", NULL,
    };

    qos_check_init();
    ck_assert(!try_start(twice, &err));
    ck_assert_msg(err && strstr(err, "share-rw"), "%s", err ? err : "");
}
END_TEST

static void setup_shared(void)
{
    DevSpec s[2] = {
        { .device = ",share-rw=on" },
        { .device = ",share-rw=on", .node0 = true },
    };

    start(s, 2, true);
}

/* ... and with it, both serve the same disk. */
START_TEST(test_share_rw_io)
{
    uint8_t w[4096], r[4096];

    init_dev(devs[0].vd, blk_features, 1, QVIRTIO_IRQ_MSIX);
    init_dev(devs[1].vd, blk_features, 1, QVIRTIO_IRQ_MSIX);
    fill_random(w, sizeof(w));
    ck_assert_uint_eq(blk_io(devs[0].vd->vqs[0], VIRTIO_BLK_T_OUT, 80, w,
                             sizeof(w), 1, false), VIRTIO_BLK_S_OK);
    ck_assert_uint_eq(blk_io(devs[1].vd->vqs[0], VIRTIO_BLK_T_IN, 80, r,
                             sizeof(r), 1, false), VIRTIO_BLK_S_OK);
    assert_bytes(r, w, sizeof(r), "read through the other device");
}
END_TEST

/* ---- live migration ---- */

/*
 * A migration's destination: a second daemon serving vb0 on the same
 * image (devices run where the image is shared), realized with @opts.
 */
static IovdProc *dst_proc;
static char *dst_sock;
static unsigned dst_idle_fds;

static void start_dst(const char *opts)
{
    dst_proc = iovd_proc_new();
    dst_sock = iovd_proc_path(dst_proc, "vb0.sock");
    iovd_proc_add_args(dst_proc, "-blockdev", NULL);
    iovd_proc_add_argf(dst_proc, "driver=file,node-name=d0,filename=%s",
                       devs[0].img);
    iovd_proc_add_args(dst_proc, "-device", NULL);
    iovd_proc_add_argf(dst_proc, "virtio-blk-pci,id=vb0,drive=d0,socket=%s%s",
                       dst_sock, opts ? opts : "");
    iovd_proc_add_args(dst_proc, "-d", "guest_errors", NULL);
    if (getenv("VIRTIO_BLK_TEST_TRACE")) {
        iovd_proc_add_args(dst_proc, "-trace",
                           getenv("VIRTIO_BLK_TEST_TRACE"), NULL);
    }
    iovd_proc_start(dst_proc);
    dst_idle_fds = iovd_proc_count_fds(dst_proc);
}

static void stop_dst(void)
{
    if (dst_proc) {
        iovd_proc_stop(dst_proc);
        iovd_proc_free(dst_proc);
        dst_proc = NULL;
    }
    g_clear_pointer(&dst_sock, g_free);
}

/*
 * Requests a migration leaves in flight: writes of fresh data and reads
 * of what is on disk, each on its own 16 KiB chunk past MIG_BASE.
 */
#define MIG_CHUNK       (16u << 10)
#define MIG_BASE        (4u << 20)
#define MIG_REQS        64

typedef struct MigIo {
    QVirtioDevice *vd;
    QVirtioBlkReq reqs[MIG_REQS];
    uint8_t *bufs;
    unsigned n, done;
} MigIo;

/* Add @count requests over the queues; notify the device when @kick. */
static void mig_add(MigIo *io, unsigned count, bool kick)
{
    for (unsigned k = 0; k < count; k++) {
        unsigned c = io->n++;
        QVirtQueue *vq = io->vd->vqs[c % io->vd->nvqs];
        uint64_t off = MIG_BASE + (uint64_t)c * MIG_CHUNK;
        uint8_t *buf = io->bufs + (size_t)c * MIG_CHUNK;
        bool write = c % 3 != 2;

        ck_assert_uint_lt(c, MIG_REQS);
        if (write) {
            fill_random(buf, MIG_CHUNK);
            memcpy(shadow[0] + off, buf, MIG_CHUNK);
        }
        io->reqs[c] = (QVirtioBlkReq) {
            .type = write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN,
            .sector = off / SECTOR, .data = buf, .len = MIG_CHUNK,
            .data_segs = 1 + c % 4, .indirect = vq->indirect && c % 2,
        };
        ck_assert_int_ge(qvirtio_blk_add(vq, &io->reqs[c]), 0);
    }
    for (unsigned q = 0; kick && q < io->vd->nvqs; q++) {
        qvirtqueue_kick(io->vd->vqs[q]);
    }
}

/* In PRE_COPY: more I/O while the source still runs. */
static void mig_during(void *opaque)
{
    mig_add(opaque, 8, true);
}

/* Every request added completes, with its data. */
static void mig_finish(MigIo *io)
{
    for (; io->done < io->n; io->done++) {
        unsigned c = io->done;
        QVirtioBlkReq *r = &io->reqs[c];

        ck_assert_uint_eq(qvirtio_blk_finish(io->vd->vqs[c % io->vd->nvqs],
                                             r), VIRTIO_BLK_S_OK);
        if (r->type == VIRTIO_BLK_T_IN) {
            assert_bytes(r->data, shadow[0] + MIG_BASE +
                         (uint64_t)c * MIG_CHUNK, MIG_CHUNK,
                         "read in flight across the migration");
        }
    }
}

/*
 * Move devs[0] to the daemon at @path with requests in flight (@kicked
 * notified, @queued only made available) and more added in PRE_COPY; the
 * source's client goes (its VMM quits), and the source daemon lets it go.
 */
static void mig_move(MigIo *io, const char *path, IovdProc *from,
                     unsigned from_idle_fds, unsigned kicked, unsigned queued)
{
    QMigrateOpts o = { .during = mig_during, .opaque = io };
    QMigrateStats st;
    VfuClient *c;

    mig_add(io, kicked, true);
    mig_add(io, queued, false);
    c = qmig_migrate(devs[0].pdev, gm, path, &o, &st);
    ck_assert_uint_gt(st.state_bytes, 0);
    vfu_client_free(devs[0].c);
    devs[0].c = c;
    ck_assert_uint_le(iovd_proc_wait_fds_at_most(from, from_idle_fds,
                                                 QOS_TIMEOUT_MS),
                      from_idle_fds);
}

/* The whole migrated region and the image read back through the device. */
static void mig_check_disk(QVirtioDevice *vd)
{
    g_autofree uint8_t *buf = g_malloc(MIG_REQS * MIG_CHUNK);

    for (unsigned c = 0; c < MIG_REQS; c++) {
        ck_assert_uint_eq(blk_io(vd->vqs[c % vd->nvqs], VIRTIO_BLK_T_IN,
                                 (MIG_BASE + c * MIG_CHUNK) / SECTOR,
                                 buf + c * MIG_CHUNK, MIG_CHUNK, 3, false),
                          VIRTIO_BLK_S_OK);
    }
    assert_bytes(buf, shadow[0] + MIG_BASE, MIG_REQS * MIG_CHUNK,
                 "after the migration");
    assert_file_matches(0);
}

/*
 * Migrate with requests in flight to a second daemon on the same image,
 * and back: everything completes, data written before, during and after
 * reads back.  _i: 0 split rings, 1 packed rings.
 */
START_TEST(test_migrate)
{
    QVirtioDevice *vd = vd0();
    MigIo io = { .vd = vd, .bufs = g_malloc0(MIG_REQS * MIG_CHUNK) };
    uint64_t f = blk_features | ring_features;

    if (_i == 1) {
        f |= VIRTIO_BIT(VIRTIO_F_RING_PACKED);
    }
    start_dst(",num-queues=2,packed=on");
    init_dev(vd, f, 2, QVIRTIO_IRQ_MSIX);
    smoke_io(0, vd->vqs[1], 64);
    mig_move(&io, dst_sock, proc, idle_fds, 16, 4);
    mig_finish(&io);
    smoke_io(0, vd->vqs[0], 72);
    mig_check_disk(vd);

    /* Back to the first daemon, which the source VMM left. */
    mig_move(&io, devs[0].sock, dst_proc, dst_idle_fds, 12, 4);
    mig_finish(&io);
    smoke_io(0, vd->vqs[1], 80);
    mig_check_disk(vd);
    g_free(io.bufs);
}
END_TEST

/*
 * A destination configured differently refuses the state: the change
 * RESUMING -> STOP fails, the device is in ERROR until DEVICE_RESET, and
 * then works; the source, back to RUNNING, never noticed.  _i: 0 more
 * queues (the PCI function differs), 1 event_idx off (virtio features).
 */
START_TEST(test_migrate_refused)
{
    static const char *const opts[] = { ",num-queues=2", ",event_idx=off" };
    g_autoptr(GByteArray) state = g_byte_array_new();
    QVirtioDevice *vd = vd0(), *dvd;
    QPCIDevice *dpdev;
    VfuClient *dc;
    uint32_t st;

    start_dst(opts[_i]);
    init_dev(vd, blk_features | ring_features, 1, QVIRTIO_IRQ_MSIX);
    smoke_io(0, vd->vqs[0], 8);
    qos_assert_errno(qmig_set_state(devs[0].c, QMIG_STOP_COPY), 0);
    qos_assert_errno(qmig_read_state(devs[0].c, state), 0);
    ck_assert_uint_gt(state->len, 0);

    dc = vfu_client_open(dst_sock);
    guest_mem_map_checked(gm, dc, true);
    qos_assert_errno(qmig_set_state(dc, QMIG_RESUMING), 0);
    qos_assert_errno(qmig_write_state(dc, state->data, state->len, 0), 0);
    ck_assert_int_lt(qmig_set_state(dc, QMIG_STOP), 0);
    qos_assert_errno(qmig_get_state(dc, &st), 0);
    ck_assert_uint_eq(st, QMIG_ERROR);
    qos_assert_errno(vfu_device_reset(dc), 0);
    qos_assert_errno(qmig_get_state(dc, &st), 0);
    ck_assert_uint_eq(st, QMIG_RUNNING);

    /* The destination's device works as configured. */
    dpdev = qpci_device_new(dc);
    dvd = qvirtio_pci_new(dpdev, gm);
    init_dev(dvd, blk_features | ring_features, 1, QVIRTIO_IRQ_MSIX);
    smoke_io(0, dvd->vqs[0], 16);
    qvirtio_free(dvd);
    qpci_device_free(dpdev);
    vfu_client_free(dc);

    /* The source goes on where it stopped. */
    qos_assert_errno(qmig_set_state(devs[0].c, QMIG_RUNNING), 0);
    smoke_io(0, vd->vqs[0], 24);
    assert_file_matches(0);
}
END_TEST

/*
 * Set the first u16 field @name of a state stream to @v (the format of
 * util/savestate.h: u8 name length, u8 type 2, u16 0, u32 length 2, the
 * name, the value).
 */
static void state_patch_u16(GByteArray *st, const char *name, uint16_t v)
{
    size_t nlen = strlen(name);
    uint8_t hdr[8] = { nlen, 2, 0, 0, 2, 0, 0, 0 };

    for (size_t i = 0; i + 8 + nlen + 2 <= st->len; i++) {
        if (!memcmp(st->data + i, hdr, 8) &&
            !memcmp(st->data + i + 8, name, nlen)) {
            stw_le_p(st->data + i + 8 + nlen, v);
            return;
        }
    }
    ck_abort_msg("no u16 field '%s' in the state", name);
}

/* Load @st into the device behind @dc: refused, then reset. */
static void load_refused(VfuClient *dc, GByteArray *st)
{
    uint32_t mst;

    qos_assert_errno(qmig_set_state(dc, QMIG_RESUMING), 0);
    qos_assert_errno(qmig_write_state(dc, st->data, st->len, 0), 0);
    ck_assert_int_lt(qmig_set_state(dc, QMIG_STOP), 0);
    qos_assert_errno(qmig_get_state(dc, &mst), 0);
    ck_assert_uint_eq(mst, QMIG_ERROR);
    qos_assert_errno(vfu_device_reset(dc), 0);
}

/*
 * A stream with values no driver could have set is refused, whatever it
 * was: the destination's device is configured as the source's.
 */
START_TEST(test_migrate_bad_values)
{
    static const struct {
        const char *field;
        uint16_t value;
    } bad[] = {
        { "size", 1000 },               /* more than the queue's maximum */
        { "size", 100 },                /* split ring, not a power of 2 */
        { "last-avail-idx", 2000 },     /* far ahead of the used index */
        { "shadow-avail-idx", 999 },    /* as far from what was taken */
        { "config-vector", 9 },         /* the table has 2 vectors */
    };
    g_autoptr(GByteArray) state = g_byte_array_new();
    QVirtioDevice *vd = vd0(), *dvd;
    QPCIDevice *dpdev;
    VfuClient *dc;

    start_dst(NULL);
    init_dev(vd, blk_features | ring_features, 1, QVIRTIO_IRQ_MSIX);
    smoke_io(0, vd->vqs[0], 8);
    qos_assert_errno(qmig_set_state(devs[0].c, QMIG_STOP_COPY), 0);
    qos_assert_errno(qmig_read_state(devs[0].c, state), 0);
    dc = vfu_client_open(dst_sock);
    guest_mem_map_checked(gm, dc, true);
    for (unsigned i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GByteArray) st = g_byte_array_new();

        g_byte_array_append(st, state->data, state->len);
        state_patch_u16(st, bad[i].field, bad[i].value);
        load_refused(dc, st);
    }
    dpdev = qpci_device_new(dc);
    dvd = qvirtio_pci_new(dpdev, gm);
    init_dev(dvd, blk_features | ring_features, 1, QVIRTIO_IRQ_MSIX);
    smoke_io(0, dvd->vqs[0], 16);
    qvirtio_free(dvd);
    qpci_device_free(dpdev);
    vfu_client_free(dc);
    qos_assert_errno(qmig_set_state(devs[0].c, QMIG_RUNNING), 0);
    smoke_io(0, vd->vqs[0], 24);
}
END_TEST

/* ---- main ---- */

static void add_tcase(Suite *s, const char *name, void (*setup)(void),
                      TCase **tc)
{
    *tc = tcase_create(name);
    tcase_add_checked_fixture(*tc, setup, teardown);
    tcase_set_timeout(*tc, 30);
    suite_add_tcase(s, *tc);
}

static void setup_serial(void)
{
    start1(",serial=SERIAL-42");
}

static void setup_4k(void)
{
    start1(",logical_block_size=4096,queue-size=64");
}

static void setup_ro(void)
{
    DevSpec s = { .blockdev = ",read-only=on" };

    start(&s, 1, true);
}

static void setup_migrate(void)
{
    start1(",num-queues=2,packed=on");
}

/* A busy-polling iothread (20 ms: a slow machine keeps polling). */
static void setup_polling(void)
{
    start_object = "iothread,id=iop,poll-max-ns=20000000";
    start1(",iothread=iop,packed=on");
    start_object = NULL;
}

/* The same for a migration's source (its destination does not poll). */
static void setup_migrate_polling(void)
{
    start_object = "iothread,id=iop,poll-max-ns=20000000";
    start1(",iothread=iop,num-queues=2,packed=on");
    start_object = NULL;
}

static Suite *virtio_blk_suite(void)
{
    Suite *s = suite_create("virtio-blk");
    TCase *tc;

    add_tcase(s, "identity", setup_default, &tc);
    tcase_add_test(tc, test_pci_identity);
    tcase_add_test(tc, test_pci_cfg_cap);
    tcase_add_test(tc, test_features);
    tcase_add_test(tc, test_driver_ok_without_features_ok);
    tcase_add_test(tc, test_queue_registers);
    tcase_add_test(tc, test_config);
    tcase_add_test(tc, test_intx_isr);
    tcase_add_test(tc, test_dwz_not_negotiated);

    add_tcase(s, "mq-packed", setup_mq_packed, &tc);
    tcase_add_test(tc, test_pci_identity_mq);
    tcase_add_test(tc, test_packed_queue_size);
    tcase_add_loop_test(tc, test_integrity, 0, 8);
    tcase_add_loop_test(tc, test_irq_modes, 0, 3);
    tcase_add_loop_test(tc, test_interrupt_suppression, 0, 4);
    tcase_add_loop_test(tc, test_kick_suppression, 0, 4);
    tcase_add_loop_test(tc, test_reset_inflight, 0, 3);
    tcase_add_test(tc, test_stop_cont);

    add_tcase(s, "requests", setup_serial, &tc);
    tcase_add_test(tc, test_request_types);
    tcase_add_loop_test(tc, test_resize, 0, 2);
    tcase_add_test(tc, test_blockstats);

    add_tcase(s, "4k", setup_4k, &tc);
    tcase_add_test(tc, test_config_4k);

    add_tcase(s, "polling", setup_polling, &tc);
    tcase_add_loop_test(tc, test_poll_rings, 0, 4);

    add_tcase(s, "read-only", setup_ro, &tc);
    tcase_add_test(tc, test_read_only);

    add_tcase(s, "nofd", setup_nofd, &tc);
    tcase_add_loop_test(tc, test_nofd, 0, 2);
    tcase_add_test(tc, test_reset_nofd_busy);

    tc = tcase_create("command-line");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_bad_properties);
    tcase_add_test(tc, test_share_rw);
    suite_add_tcase(s, tc);

    add_tcase(s, "shared", setup_shared, &tc);
    tcase_add_test(tc, test_share_rw_io);

    add_tcase(s, "migration", setup_migrate, &tc);
    tcase_add_loop_test(tc, test_migrate, 0, 2);
    /* Notifications suppressed in the rings by polling come back. */
    add_tcase(s, "migration-polling", setup_migrate_polling, &tc);
    tcase_add_loop_test(tc, test_migrate, 0, 2);
    add_tcase(s, "migration-refused", setup_default, &tc);
    tcase_add_loop_test(tc, test_migrate_refused, 0, 2);
    tcase_add_test(tc, test_migrate_bad_values);

    add_tcase(s, "bad-input", setup_two, &tc);
    tcase_add_loop_test(tc, test_bad_input, 0, BAD__MAX);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(virtio_blk_suite());
    int failed;

    qos_check_init();
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
