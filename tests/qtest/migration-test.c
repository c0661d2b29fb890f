/*
 * Live migration over vfio-user (the server side of the protocol's
 * migration v2): pci-testdev moved between two daemons by the migrating
 * VMM of libqos/migration.h, guest RAM carried by the dirty logs; the
 * protocol's refusals; and a device that stops means nothing runs.
 *
 * NVMe, virtio and e1000 moves are in their own suites.
 */
#include "util/osdep.h"

#include <check.h>

#include "hw/vfio-user/vfio-user-proto.h"
#include "tests/qtest/libqos/qos-check.h"
#include "tests/qtest/libqos/iovd-proc.h"
#include "tests/qtest/libqos/guest-mem.h"
#include "tests/qtest/libqos/pci.h"
#include "tests/qtest/libqos/pci-testdev.h"
#include "tests/qtest/libqos/migration.h"
#include "tests/qtest/libqos/nvme-disk.h"

static IovdProc *src_proc, *dst_proc;
static VfuClient *client;
static QPCIDevice *dev;
static GuestMem *gm;

static void setup(void)
{
    g_autofree char *sock = NULL;

    qos_check_init();
    src_proc = iovd_proc_start_testdev(NULL);
    dst_proc = iovd_proc_start_testdev(NULL);
    sock = iovd_proc_path(src_proc, "t0.sock");
    client = vfu_client_open(sock);
    dev = qpci_device_new(client);
    qpci_device_enable(dev);
    gm = guest_mem_new(GUEST_MEM_DEFAULT_BASE, GUEST_MEM_DEFAULT_SIZE);
    guest_mem_map_checked(gm, client, true);
}

static void teardown(void)
{
    qpci_device_free(dev);
    guest_mem_free(gm);
    vfu_client_free(client);
    iovd_proc_stop(src_proc);
    iovd_proc_free(src_proc);
    iovd_proc_stop(dst_proc);
    iovd_proc_free(dst_proc);
}

static char *dst_sock(void)
{
    return iovd_proc_path(dst_proc, "t0.sock");
}

/* Fill guest [addr, addr + len) with a pattern of @seed. */
static void fill(uint64_t addr, uint32_t len, uint8_t seed)
{
    uint8_t *p = guest_ptr(gm, addr, len);

    for (uint32_t i = 0; i < len; i++) {
        p[i] = seed + i * 7;
    }
}

static bool check(uint64_t addr, uint32_t len, uint8_t seed)
{
    const uint8_t *p = guest_ptr(gm, addr, len);

    for (uint32_t i = 0; i < len; i++) {
        if (p[i] != (uint8_t)(seed + i * 7)) {
            return false;
        }
    }
    return true;
}

/* What runs in PRE_COPY: a DMA into guest RAM that nobody waits for. */
typedef struct During {
    uint64_t addr;
    uint32_t len;
} During;

static void start_dma_out(void *opaque)
{
    During *d = opaque;

    /* BAR2 [0x1000, +len) already holds the pattern (see below). */
    testdev_dma_start(dev, d->addr, d->len, 0x1000, TESTDEV_DMA_FROM_DEVICE,
                      true);
}

/*
 * Registers, BAR memory, MSI-X wiring and guest RAM written by the device
 * while it was being migrated all arrive; the device works there.
 */
static void migrate_testdev(bool skip_device_log, QMigrateStats *st)
{
    uint64_t in = guest_alloc(gm, 8192), out = guest_alloc(gm, 8192);
    During during = { .addr = out, .len = 8192 };
    QMigrateOpts opts = { start_dma_out, &during, skip_device_log };
    g_autofree char *path = dst_sock();
    VfuClient *dst;

    qpci_msix_enable(dev, 2);
    testdev_writel(dev, TESTDEV_REG_SCRATCH, 0x5eed1234);
    /* The pattern into BAR2 by DMA, then back out later. */
    fill(in, 8192, 3);
    ck_assert_uint_eq(testdev_dma(dev, in, 8192, 0x1000,
                                  TESTDEV_DMA_TO_DEVICE),
                      TESTDEV_INT_DMA_DONE);
    qpci_msix_wait(dev, 0);
    guest_memset(gm, out, 0, 8192);

    dst = qmig_migrate(dev, gm, path, &opts, st);
    vfu_client_free(client);
    client = dst;

    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_SCRATCH), 0x5eed1234);
    /* The DMA started in PRE_COPY completed before the source stopped. */
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_DMA_COUNT), 2);
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_DMA_START), 0);
    ck_assert(testdev_readl(dev, TESTDEV_REG_INT_STATUS) &
              TESTDEV_INT_DMA_DONE);
    ck_assert(check(out, 8192, 3) == !skip_device_log);
}

START_TEST(test_migrate_testdev)
{
    QMigrateStats st;
    uint64_t again = guest_alloc(gm, 4096);

    migrate_testdev(false, &st);
    ck_assert_uint_ge(st.device_dirty, 2);
    ck_assert_uint_gt(st.state_bytes, 0);
    /* The destination device goes on: DMA and its MSI-X vector. */
    qpci_eventfd_clear(qpci_msix_fd(dev, 0));
    testdev_writel(dev, TESTDEV_REG_INT_ACK, ~0u);
    ck_assert_uint_eq(testdev_dma(dev, again, 4096, 0x1000,
                                  TESTDEV_DMA_FROM_DEVICE),
                      TESTDEV_INT_DMA_DONE);
    qpci_msix_wait(dev, 0);
    ck_assert(check(again, 4096, 3));
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_DMA_COUNT), 3);
    vfu_client_assert_clean(client);
}
END_TEST

/* The same move, ignoring the device's log: its writes are lost. */
START_TEST(test_migrate_needs_device_log)
{
    migrate_testdev(true, NULL);
}
END_TEST

/* Back and forth: the stream of a moved device moves again. */
START_TEST(test_migrate_twice)
{
    g_autofree char *back = iovd_proc_path(src_proc, "t0.sock");
    g_autofree char *there = dst_sock();
    VfuClient *c;

    testdev_writel(dev, TESTDEV_REG_SCRATCH, 77);
    c = qmig_migrate(dev, gm, there, NULL, NULL);
    vfu_client_free(client);
    client = c;
    /* The source's device reset when its client left: it is free again. */
    c = qmig_migrate(dev, gm, back, NULL, NULL);
    vfu_client_free(client);
    client = c;
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_SCRATCH), 77);
}
END_TEST

/* STOP: a DMA the guest starts does not run until RUNNING. */
START_TEST(test_stop_holds_work)
{
    uint64_t buf = guest_alloc(gm, 4096);
    uint32_t st;

    guest_memset(gm, buf, 0xaa, 4096);
    ck_assert_int_eq(qmig_set_state(client, QMIG_STOP), 0);
    ck_assert_int_eq(qmig_get_state(client, &st), 0);
    ck_assert_uint_eq(st, QMIG_STOP);
    testdev_dma_start(dev, buf, 4096, 0, TESTDEV_DMA_FROM_DEVICE, false);
    vfu_service(client, 200);
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_DMA_COUNT), 0);
    ck_assert_uint_eq(guest_readb(gm, buf), 0xaa);
    ck_assert_int_eq(qmig_set_state(client, QMIG_RUNNING), 0);
    st = testdev_dma_wait(dev);
    ck_assert(st & TESTDEV_INT_DMA_DONE);
    ck_assert_uint_eq(guest_readb(gm, buf), 0);
}
END_TEST

/* ---- the protocol's refusals ---- */

START_TEST(test_feature_errors)
{
    uint64_t flags, bitmap[4];
    uint32_t st;
    VfuFeature probe = { sizeof(probe), VFU_FEATURE_PROBE |
                         VFU_FEATURE_GET | VFU_FEATURE_MIGRATION };
    VfuFeature bogus = { sizeof(bogus), VFU_FEATURE_GET | 42 };
    VfuFeature setget = { sizeof(setget), VFU_FEATURE_SET |
                          VFU_FEATURE_MIGRATION };
    uint8_t tiny[4] = { 0 };
    VfuMigData rd = { sizeof(rd) + 16, 16 };

    /* VERSION offered it: the client proposed "migration". */
    ck_assert_ptr_nonnull(strstr(vfu_server_caps(client)->json,
                                 "\"migration\":{\"pgsize\":4096,"));
    ck_assert_int_eq(qmig_get_flags(client, &flags), 0);
    ck_assert(flags & VFU_MIGRATION_STOP_COPY);
    ck_assert(flags & VFU_MIGRATION_PRE_COPY);
    ck_assert_int_eq(vfu_request(client, VFU_CMD_DEVICE_FEATURE, &probe,
                                 sizeof(probe), NULL, 0, NULL), 0);
    ck_assert_int_eq(vfu_request(client, VFU_CMD_DEVICE_FEATURE, &bogus,
                                 sizeof(bogus), NULL, 0, NULL), -ENOTSUP);
    ck_assert_int_eq(vfu_request(client, VFU_CMD_DEVICE_FEATURE, &setget,
                                 sizeof(setget), NULL, 0, NULL), -EINVAL);
    ck_assert_int_eq(vfu_request(client, VFU_CMD_DEVICE_FEATURE, tiny,
                                 sizeof(tiny), NULL, 0, NULL), -EINVAL);
    /* States nobody may ask for, and arcs that do not exist. */
    ck_assert_int_eq(qmig_set_state(client, QMIG_ERROR), -EINVAL);
    ck_assert_int_eq(qmig_set_state(client, 5), -EINVAL);
    ck_assert_int_eq(qmig_set_state(client, 99), -EINVAL);
    ck_assert_int_eq(qmig_set_state(client, QMIG_STOP_COPY), 0);
    ck_assert_int_eq(qmig_set_state(client, QMIG_PRE_COPY), -EINVAL);
    ck_assert_int_eq(qmig_get_state(client, &st), 0);
    ck_assert_uint_eq(st, QMIG_STOP_COPY);
    /* Data in the wrong state. */
    ck_assert_int_eq(qmig_write_state(client, "x", 1, 0), -EINVAL);
    ck_assert_int_eq(qmig_set_state(client, QMIG_RUNNING), 0);
    ck_assert_int_eq(vfu_request(client, VFU_CMD_MIG_DATA_READ, &rd,
                                 sizeof(rd), NULL, 0, NULL), -EINVAL);
    /* A report without logging, then a range that is not mapped. */
    ck_assert_int_eq(qmig_logging_report(client, GUEST_MEM_DEFAULT_BASE,
                                         4096, 4096, bitmap), -EINVAL);
    ck_assert_int_eq(qmig_logging_start(client, 4096,
                                        GUEST_MEM_DEFAULT_BASE, 4096), 0);
    ck_assert_int_eq(qmig_logging_start(client, 4096,
                                        GUEST_MEM_DEFAULT_BASE, 4096),
                     -EBUSY);
    ck_assert_int_eq(qmig_logging_report(client, 0x1000, 4096, 4096, bitmap),
                     -ENOENT);
    ck_assert_int_eq(qmig_logging_report(client, GUEST_MEM_DEFAULT_BASE,
                                         4096, 1000, bitmap), -EINVAL);
    ck_assert_int_eq(qmig_logging_stop(client), 0);
    /* Still a working device. */
    testdev_writel(dev, TESTDEV_REG_SCRATCH, 9);
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_SCRATCH), 9);
    vfu_client_assert_clean(client);
}
END_TEST

/* The dirty log names exactly the pages the device wrote. */
START_TEST(test_dirty_log_exact)
{
    uint64_t base = GUEST_MEM_DEFAULT_BASE;
    uint64_t buf = guest_alloc_aligned(gm, 3 * 4096, 4096);
    uint64_t pg = (buf - base) / 4096;
    uint64_t bitmap[DIV_ROUND_UP(GUEST_MEM_DEFAULT_SIZE / 4096, 64)];

    ck_assert_int_eq(qmig_logging_start(client, 4096, base,
                                        GUEST_MEM_DEFAULT_SIZE), 0);
    /* Reading guest memory dirties nothing; writing two pages does. */
    ck_assert_uint_eq(testdev_dma(dev, buf, 8192, 0, TESTDEV_DMA_TO_DEVICE),
                      TESTDEV_INT_DMA_DONE);
    ck_assert_uint_eq(testdev_dma(dev, buf + 4096 + 100, 4096, 0,
                                  TESTDEV_DMA_FROM_DEVICE),
                      TESTDEV_INT_DMA_DONE);
    memset(bitmap, 0, sizeof(bitmap));
    ck_assert_int_eq(qmig_logging_report(client, base,
                                         GUEST_MEM_DEFAULT_SIZE, 4096,
                                         bitmap), 0);
    for (uint64_t i = 0; i < GUEST_MEM_DEFAULT_SIZE / 4096; i++) {
        bool dirty = bitmap[i / 64] >> (i % 64) & 1;

        ck_assert_msg(dirty == (i == pg + 1 || i == pg + 2),
                      "page %" PRIu64 " dirty %d", i, dirty);
    }
    /* Read and cleared; at 8 KiB pages the range folds. */
    memset(bitmap, 0, sizeof(bitmap));
    ck_assert_int_eq(qmig_logging_report(client, base,
                                         GUEST_MEM_DEFAULT_SIZE, 4096,
                                         bitmap), 0);
    for (unsigned i = 0; i < G_N_ELEMENTS(bitmap); i++) {
        ck_assert_uint_eq(bitmap[i], 0);
    }
    ck_assert_uint_eq(testdev_dma(dev, buf, 4096, 0, TESTDEV_DMA_FROM_DEVICE),
                      TESTDEV_INT_DMA_DONE);
    ck_assert_int_eq(qmig_logging_report(client, base,
                                         GUEST_MEM_DEFAULT_SIZE, 8192,
                                         bitmap), 0);
    ck_assert_uint_eq(bitmap[(pg / 2) / 64], 1ull << ((pg / 2) % 64));
    /* A page size far past the range: one bit, answered at once (the
     * server's work is bounded by the range, not by the client's size). */
    ck_assert_uint_eq(testdev_dma(dev, buf, 4096, 0, TESTDEV_DMA_FROM_DEVICE),
                      TESTDEV_INT_DMA_DONE);
    memset(bitmap, 0, sizeof(bitmap));
    ck_assert_int_eq(qmig_logging_report(client, base,
                                         GUEST_MEM_DEFAULT_SIZE, 1ull << 62,
                                         bitmap), 0);
    ck_assert_uint_eq(bitmap[0], 1);
}
END_TEST

/* A stream that does not load: the change fails, ERROR, reset recovers. */
START_TEST(test_bad_stream)
{
    g_autoptr(GByteArray) state = g_byte_array_new();
    g_autofree char *path = dst_sock();
    VfuClient *dst = vfu_client_open(path);
    uint32_t st;

    testdev_writel(dev, TESTDEV_REG_SCRATCH, 5);
    ck_assert_int_eq(qmig_set_state(client, QMIG_STOP_COPY), 0);
    ck_assert_int_eq(qmig_read_state(client, state), 0);
    ck_assert_uint_gt(state->len, 64);
    /* Cut: refused. */
    ck_assert_int_eq(qmig_set_state(dst, QMIG_RESUMING), 0);
    ck_assert_int_eq(qmig_write_state(dst, state->data, state->len - 9, 0),
                     0);
    ck_assert_int_eq(qmig_set_state(dst, QMIG_RUNNING), -EINVAL);
    ck_assert_int_eq(qmig_get_state(dst, &st), 0);
    ck_assert_uint_eq(st, QMIG_ERROR);
    ck_assert_int_eq(qmig_set_state(dst, QMIG_RUNNING), -EINVAL);
    ck_assert_int_eq(vfu_device_reset(dst), 0);
    ck_assert_int_eq(qmig_get_state(dst, &st), 0);
    ck_assert_uint_eq(st, QMIG_RUNNING);
    /* Whole, after the reset: loads, in small pieces. */
    ck_assert_int_eq(qmig_set_state(dst, QMIG_RESUMING), 0);
    ck_assert_int_eq(qmig_write_state(dst, state->data, state->len, 100), 0);
    ck_assert_int_eq(qmig_set_state(dst, QMIG_RUNNING), 0);
    vfu_client_free(dst);
}
END_TEST

/* ---- NVMe: writes in flight, an AER outstanding ---- */

#define NVME_IMG_SIZE (8u << 20)
#define NVME_NIO 24                 /* writes in flight over the move */

static QNvmeDisk *disk;
static char *img;

static void nvme_setup(void)
{
    g_autofree char *bd = NULL;

    qos_check_init();
    src_proc = iovd_proc_new();
    dst_proc = iovd_proc_new();
    img = iovd_proc_image(src_proc, "disk.img", NVME_IMG_SIZE);
    bd = g_strdup_printf("driver=file,node-name=d0,filename=%s", img);
    /* The destination: the same configuration, its device left reset. */
    qnvme_disk_configure(dst_proc, bd);
    iovd_proc_start(dst_proc);
    disk = qnvme_disk_start(src_proc, bd);
}

static void nvme_teardown(void)
{
    qnvme_disk_free(disk);
    iovd_proc_stop(src_proc);
    iovd_proc_free(src_proc);
    iovd_proc_stop(dst_proc);
    iovd_proc_free(dst_proc);
    g_free(img);
}

/* The source's flush count for the disk (query-blockstats). */
static int64_t flushes(void)
{
    json_object *ret = qmp_ok(disk->qmp, "query-blockstats", NULL);
    json_object *st = qmp_get(json_object_array_get_idx(ret, 0), "stats");
    int64_t n = qmp_get_int(st, "flush_operations");

    json_object_put(ret);
    return n;
}

/* Queue @n 8-block writes of pattern @seed+i at LBA 64 * (@first + i). */
static void queue_writes(uint64_t *bufs, unsigned first, unsigned n,
                         uint8_t seed)
{
    QNvmeQueue *ioq = qnvme_ioq(disk->q, 1);

    for (unsigned i = first; i < first + n; i++) {
        NvmeCmd cmd;

        bufs[i] = guest_alloc_aligned(disk->gm, 4096, 4096);
        guest_memset(disk->gm, bufs[i], seed + i, 4096);
        qnvme_rw_cmd(disk->q, &cmd, NVME_CMD_WRITE, 1, 64 * i, 8, bufs[i]);
        qnvme_queue_cmd(disk->q, ioq, &cmd);
    }
    qnvme_ring_sq(disk->q, ioq);
}

/*
 * In PRE_COPY: 6 more writes, and every completion so far consumed (the
 * device writes its CQ after RAM was copied: only its log carries that);
 * then 6 more not waited for (still in the SQ when the source stops).
 */
static void queue_more(void *opaque)
{
    NvmeCqe cqe;

    queue_writes(opaque, NVME_NIO / 2, 6, 0x40);
    for (unsigned i = 0; i < NVME_NIO / 2 + 6; i++) {
        qnvme_wait(disk->q, qnvme_ioq(disk->q, 1), &cqe, 0);
        ck_assert_uint_eq(qnvme_status(&cqe), NVME_SUCCESS);
    }
    queue_writes(opaque, NVME_NIO / 2 + 6, 6, 0x40);
}

START_TEST(test_migrate_nvme)
{
    QNvme *q = disk->q;
    g_autofree char *path = iovd_proc_path(dst_proc, "nvme0.sock");
    uint64_t bufs[NVME_NIO];
    QMigrateOpts opts = { queue_more, bufs, false };
    QMigrateStats st;
    uint8_t data[4096];
    NvmeCmd aer = { .opcode = NVME_ADM_CMD_ASYNC_EV_REQ };
    NvmeCqe cqe;
    uint16_t aer_cid = qnvme_submit(q, &q->admin, &aer);
    VfuClient *dst;
    int64_t flushed = flushes();

    memset(data, 0x11, sizeof(data));
    ck_assert_uint_eq(qnvme_disk_write(disk, 8000, 8, data), NVME_SUCCESS);
    /* Half before PRE_COPY, half during it (see queue_more). */
    queue_writes(bufs, 0, NVME_NIO / 2, 0x40);
    dst = qmig_migrate(disk->dev, disk->gm, path, &opts, &st);
    /* The source flushed its backend before it gave its state away. */
    ck_assert_int_eq(flushes(), flushed + 1);
    vfu_client_free(disk->c);
    disk->c = dst;

    /* Every write completes once, successfully, on the destination. */
    for (unsigned i = 0; i < 6; i++) {
        qnvme_wait(q, qnvme_ioq(q, 1), &cqe, 0);
        ck_assert_uint_eq(qnvme_status(&cqe), NVME_SUCCESS);
    }
    ck_assert(!qnvme_try_wait(q, qnvme_ioq(q, 1), &cqe, 100));
    for (unsigned i = 0; i < NVME_NIO; i++) {
        ck_assert_uint_eq(qnvme_disk_read(disk, 64 * i, 8, data),
                          NVME_SUCCESS);
        ck_assert_msg(data[0] == (uint8_t)(0x40 + i) &&
                      data[4095] == (uint8_t)(0x40 + i),
                      "write %u: 0x%02x", i, data[0]);
    }
    ck_assert_uint_eq(qnvme_disk_read(disk, 8000, 8, data), NVME_SUCCESS);
    ck_assert_uint_eq(data[100], 0x11);
    /* The AER sent before the move answers an event after it. */
    qpci_bar_writel_posted(disk->dev, NVME_BAR_REGS, NVME_DB_SQ_OFF(7, 0),
                           1);
    qnvme_wait(q, &q->admin, &cqe, 0);
    ck_assert_uint_eq(cqe.cid, aer_cid);
    ck_assert_uint_eq(NVME_AER_RESULT_TYPE(cqe.result), NVME_AER_TYPE_ERROR);
    ck_assert_uint_gt(st.device_dirty, 0);
    ck_assert_uint_gt(st.cpu_dirty, 0);
    vfu_client_assert_clean(disk->c);
}
END_TEST

/* A destination configured with another image size refuses the state. */
START_TEST(test_nvme_other_size)
{
    g_autoptr(GByteArray) state = g_byte_array_new();
    IovdProc *other = iovd_proc_new();
    g_autofree char *img2 = iovd_proc_image(other, "small.img",
                                            NVME_IMG_SIZE / 2);
    g_autofree char *bd = g_strdup_printf("driver=file,node-name=d0,"
                                          "filename=%s", img2);
    g_autofree char *path = iovd_proc_path(other, "nvme0.sock");
    VfuClient *c;
    qnvme_disk_configure(other, bd);
    iovd_proc_start(other);
    ck_assert_int_eq(qmig_set_state(disk->c, QMIG_STOP_COPY), 0);
    ck_assert_int_eq(qmig_read_state(disk->c, state), 0);
    c = vfu_client_open(path);
    ck_assert_int_eq(qmig_set_state(c, QMIG_RESUMING), 0);
    ck_assert_int_eq(qmig_write_state(c, state->data, state->len, 0), 0);
    ck_assert_int_eq(qmig_set_state(c, QMIG_STOP), -EINVAL);
    ck_assert_int_eq(vfu_device_reset(c), 0);
    vfu_client_free(c);
    iovd_proc_stop(other);
    iovd_proc_free(other);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("migration");
    TCase *tc = qos_check_tcase(s, "nvme", nvme_setup, nvme_teardown, 60);

    tcase_add_test(tc, test_migrate_nvme);
    tcase_add_test(tc, test_nvme_other_size);
    tc = qos_check_tcase(s, "pci-testdev", setup, teardown, 60);

    tcase_add_test(tc, test_migrate_testdev);
    tcase_add_test(tc, test_migrate_needs_device_log);
    tcase_add_test(tc, test_migrate_twice);
    tcase_add_test(tc, test_stop_holds_work);
    tcase_add_test(tc, test_feature_errors);
    tcase_add_test(tc, test_dirty_log_exact);
    tcase_add_test(tc, test_bad_stream);
    return qos_check_run(s);
}
