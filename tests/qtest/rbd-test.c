/*
 * The rbd block driver against a one-node Ceph cluster that the test
 * starts (tests/rbd/ceph-fixture.sh: a monitor and a memstore OSD on
 * 127.0.0.1, about two seconds) and tears down.  An NVMe controller on an
 * rbd node is driven by the libqos NVMe driver; what the image holds is
 * read back with `rbd export`.  Without Ceph's packages (or librbd in the
 * build) every test says SKIP and why.
 */
#include "util/osdep.h"

#include <check.h>
#include <sys/wait.h>

#include "hw/nvme/nvme-spec.h"
#include "tests/qtest/libqos/qos-check.h"
#include "tests/qtest/libqos/iovd-proc.h"
#include "tests/qtest/libqos/vfu-client.h"
#include "tests/qtest/libqos/guest-mem.h"
#include "tests/qtest/libqos/pci.h"
#include "tests/qtest/libqos/qmp-client.h"
#include "tests/qtest/libqos/nvme.h"
#include "tests/qtest/libqos/nvme-disk.h"
#include "tests/qtest/libqos/guest-mem.h"

#define IMAGE_MB        32
#define BLK             512
#define OBJ_LBAS        ((4u << 20) / BLK)   /* an RBD object: 4 MiB */

/* The cluster: one for the whole test case. */
static char *ceph_dir;
static char *ceph_conf;
static char *skip_why;

typedef struct Env {
    IovdProc *proc;
    char *image;                /* pool/image */
    QNvmeDisk *disk;
    /* Borrowed from disk (qmp: owned when there is no disk). */
    QNvme *q;
    QmpClient *qmp;
} Env;

static Env env;
static unsigned image_seq;

static char *fixture(void)
{
    return g_build_filename(g_getenv("IOVD_SRCDIR") ?
                            g_getenv("IOVD_SRCDIR") : ".",
                            "tests/rbd/ceph-fixture.sh", NULL);
}

/* Run @argv; its stdout (caller frees), NULL on failure (*err says). */
static char *run(char **argv, char **err)
{
    g_autoptr(GError) e = NULL;
    char *out = NULL, *errout = NULL;
    int status;

    if (!g_spawn_sync(NULL, argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
                      &out, &errout, &status, &e)) {
        *err = g_strdup(e->message);
        return NULL;
    }
    if (!g_spawn_check_wait_status(status, NULL)) {
        *err = g_strstrip(errout);
        g_free(out);
        return NULL;
    }
    g_free(errout);
    return out;
}

/* Once per test case: the cluster, or why there is none. */
static void cluster_start(void)
{
    g_autofree char *script = fixture();
    g_autofree char *out = NULL;
    g_autofree char *why = NULL;
    char *argv[] = { script, (char *)"start", NULL, NULL };

#ifndef CONFIG_LIBRBD
    skip_why = g_strdup("iovd is built without librbd (Debian package "
                        "librbd-dev)");
    return;
#endif
    ceph_dir = g_dir_make_tmp("iovd-ceph-XXXXXX", NULL);
    rmdir(ceph_dir);            /* the fixture wants to create it */
    argv[2] = ceph_dir;
    out = run(argv, &why);
    if (!out) {
        skip_why = g_strdup_printf("no Ceph cluster: %s", why);
        return;
    }
    for (char **l = g_strsplit(out, "\n", -1), **p = l; *p; p++) {
        if (g_str_has_prefix(*p, "CEPH_CONF=")) {
            ceph_conf = g_strdup(*p + strlen("CEPH_CONF="));
        }
        if (!p[1]) {
            g_strfreev(l);
            break;
        }
    }
    if (!ceph_conf) {
        skip_why = g_strdup("the fixture printed no CEPH_CONF");
    }
}

static void cluster_stop(void)
{
    g_autofree char *script = fixture();
    g_autofree char *out = NULL, *why = NULL;
    char *argv[] = { script, (char *)"stop", ceph_dir, NULL };

    if (ceph_dir) {
        out = run(argv, &why);
    }
    g_clear_pointer(&ceph_dir, g_free);
    g_clear_pointer(&ceph_conf, g_free);
    g_clear_pointer(&skip_why, g_free);
}

#define NEED_CLUSTER()                                                  \
    do {                                                                \
        if (skip_why) {                                                 \
            printf("SKIP: %s: %s\n", __func__, skip_why);               \
            return;                                                     \
        }                                                               \
    } while (0)

/* `rbd -c CONF ARGS...`; fails the test when it fails. */
static char *rbd(const char *first, ...)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_autofree char *why = NULL;
    va_list ap;
    char *out;

    g_ptr_array_add(argv, (char *)"rbd");
    g_ptr_array_add(argv, (char *)"-c");
    g_ptr_array_add(argv, ceph_conf);
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *)) {
        g_ptr_array_add(argv, (char *)a);
    }
    va_end(ap);
    g_ptr_array_add(argv, NULL);
    out = run((char **)argv->pdata, &why);
    ck_assert_msg(out, "rbd %s failed: %s", first, why);
    return out;
}

/* ---- per test ---- */

static void setup(void)
{
    qos_check_init();
    memset(&env, 0, sizeof(env));
    if (skip_why) {
        return;
    }
    env.proc = iovd_proc_new();
    env.image = g_strdup_printf("rbd/t%u-%d", image_seq++, (int)getpid());
    g_free(rbd("create", "--size", G_STRINGIFY(IMAGE_MB) "M", env.image,
               NULL));
}

static void teardown(void)
{
    if (env.disk) {
        qnvme_disk_free(env.disk);
    } else {
        g_clear_pointer(&env.qmp, qmp_client_free);
    }
    if (env.proc) {
        iovd_proc_stop(env.proc);
        iovd_proc_free(env.proc);
    }
    if (env.image) {
        g_free(rbd("rm", "--no-progress", env.image, NULL));
    }
    g_free(env.image);
    memset(&env, 0, sizeof(env));
}

static void start_iovd(void)
{
    g_autofree char *node = g_strdup_printf(
        "driver=rbd,node-name=d0,pool=rbd,image=%s,conf=%s",
        strchr(env.image, '/') + 1, ceph_conf);

    env.disk = qnvme_disk_start(env.proc, node);
    env.qmp = env.disk->qmp;
    env.q = env.disk->q;
}

static void fill(uint8_t *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++) {
        buf[i] = (uint8_t)(i * 11 + seed * 17 + (i >> 9));
    }
}

/* The image's bytes at @off, as `rbd export` gives them. */
static void image_read(uint64_t off, uint8_t *buf, size_t len)
{
    g_autofree char *file = iovd_proc_path(env.proc, "export.img");
    int fd;

    unlink(file);
    g_free(rbd("export", "--no-progress", env.image, file, NULL));
    fd = open(file, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pread(fd, buf, len, off), (ssize_t)len);
    close(fd);
}

/* ---- tests ---- */

START_TEST(test_io)
{
    g_autofree uint8_t *want = g_malloc(256 * BLK);
    g_autofree uint8_t *got = g_malloc(256 * BLK);
    json_object *ret;

    NEED_CLUSTER();
    start_iovd();
    ck_assert_uint_eq(qnvme_ns(env.q, 1)->nsze, (IMAGE_MB << 20) / BLK);
    fill(want, 256 * BLK, 1);
    ck_assert_int_eq(qnvme_disk_write(env.disk, 8, 256, want), NVME_SUCCESS);
    ck_assert_int_eq(qnvme_flush(env.q, qnvme_ioq(env.q, 1), 1),
                     NVME_SUCCESS);
    memset(got, 0, 256 * BLK);
    ck_assert_int_eq(qnvme_disk_read(env.disk, 8, 256, got), NVME_SUCCESS);
    ck_assert(memcmp(got, want, 256 * BLK) == 0);
    memset(got, 0, 256 * BLK);
    image_read(8 * BLK, got, 256 * BLK);
    ck_assert_msg(memcmp(got, want, 256 * BLK) == 0,
                  "the image does not hold what was written");
    ret = qmp_ok(env.qmp, "query-block", NULL);
    ck_assert_str_eq(qmp_get_str(qmp_get(json_object_array_get_idx(ret, 0),
                                         "inserted"), "drv"), "rbd");
    json_object_put(ret);
}
END_TEST

START_TEST(test_write_zeroes_discard)
{
    g_autofree uint8_t *want = g_malloc(64 * BLK);
    g_autofree uint8_t *got = g_malloc(64 * BLK);
    NvmeCmd cmd;

    NEED_CLUSTER();
    start_iovd();
    fill(want, 64 * BLK, 2);
    ck_assert_int_eq(qnvme_disk_write(env.disk, 0, 64, want), NVME_SUCCESS);
    memset(&cmd, 0, sizeof(cmd));
    cmd.opcode = NVME_CMD_WRITE_ZEROES;
    cmd.nsid = 1;
    cmd.cdw12 = 32 - 1;                     /* LBAs 0-31 */
    ck_assert_int_eq(qnvme_cmd(env.q, qnvme_ioq(env.q, 1), &cmd, NULL),
                     NVME_SUCCESS);
    ck_assert_int_eq(qnvme_flush(env.q, qnvme_ioq(env.q, 1), 1),
                     NVME_SUCCESS);
    memset(want, 0, 32 * BLK);
    image_read(0, got, 64 * BLK);
    ck_assert_msg(memcmp(got, want, 64 * BLK) == 0,
                  "zeroed where asked, and only there");

    /*
     * Deallocate a whole 4 MiB object (librbd skips partial ones by
     * default): it reads as zeros afterwards.
     */
    fill(want, 64 * BLK, 3);
    ck_assert_int_eq(qnvme_disk_write(env.disk, OBJ_LBAS, 64, want),
                     NVME_SUCCESS);
    {
        NvmeDsmRange range = { .nlb = OBJ_LBAS, .slba = OBJ_LBAS };
        uint64_t g = guest_alloc_aligned(env.disk->gm, 4096, 4096);

        guest_memwrite(env.disk->gm, g, &range, sizeof(range));
        memset(&cmd, 0, sizeof(cmd));
        cmd.opcode = NVME_CMD_DSM;
        cmd.nsid = 1;
        cmd.cdw11 = NVME_DSM_AD;
        cmd.dptr.prp1 = g;
        ck_assert_int_eq(qnvme_cmd(env.q, qnvme_ioq(env.q, 1), &cmd, NULL),
                         NVME_SUCCESS);
        guest_free(env.disk->gm, g);
    }
    memset(want, 0, 64 * BLK);
    image_read(OBJ_LBAS * BLK, got, 64 * BLK);
    ck_assert_msg(memcmp(got, want, 64 * BLK) == 0,
                  "not zero after Deallocate");
}
END_TEST

START_TEST(test_resize)
{
    uint64_t grown = (IMAGE_MB + 8) << 20;
    uint8_t buf[8 * BLK], got[8 * BLK];
    g_autofree char *info = NULL;
    json_object *j;

    NEED_CLUSTER();
    start_iovd();
    json_object_put(qmp_okf(env.qmp, "block_resize", "{'node-name': 'd0', "
                            "'size': %" PRIu64 "}", grown));
    /* The cluster has the new size. */
    info = rbd("info", "--format", "json", env.image, NULL);
    j = json_tokener_parse(info);
    ck_assert_msg(j, "rbd info: %s", info);
    ck_assert_int_eq(qmp_get_int(j, "size"), (int64_t)grown);
    json_object_put(j);
    qnvme_identify_all(env.q);
    ck_assert_uint_eq(qnvme_ns(env.q, 1)->nsze, grown / BLK);
    /* Past the old end. */
    fill(buf, sizeof(buf), 3);
    ck_assert_int_eq(qnvme_disk_write(env.disk, grown / BLK - 8, 8, buf),
                     NVME_SUCCESS);
    ck_assert_int_eq(qnvme_disk_read(env.disk, grown / BLK - 8, 8, got),
                     NVME_SUCCESS);
    ck_assert(memcmp(got, buf, sizeof(buf)) == 0);
}
END_TEST

START_TEST(test_blockdev_add)
{
    g_autofree char *qmp = NULL, *e1 = NULL;
    json_object *ret;

    NEED_CLUSTER();
    qmp = iovd_proc_path(env.proc, "qmp.sock");
    iovd_proc_add_args(env.proc, "-qmp", NULL);
    iovd_proc_add_argf(env.proc, "unix:%s,server=on,wait=off", qmp);
    iovd_proc_start(env.proc);
    env.qmp = qmp_client_open(qmp);
    json_object_put(qmp_okf(env.qmp, "blockdev-add", "{'driver': 'rbd', "
                            "'node-name': 'r1', 'pool': 'rbd', "
                            "'image': '%s', 'conf': '%s'}",
                            strchr(env.image, '/') + 1, ceph_conf));
    ret = qmp_ok(env.qmp, "query-named-block-nodes", NULL);
    ck_assert_int_eq(qmp_get_int(qmp_get(json_object_array_get_idx(ret, 0),
                                         "image"), "virtual-size"),
                     IMAGE_MB << 20);
    json_object_put(ret);
    e1 = qmp_errf(env.qmp, "GenericError", "blockdev-add", "{'driver': "
                  "'rbd', 'node-name': 'r2', 'pool': 'rbd', 'image': "
                  "'nope', 'conf': '%s'}", ceph_conf);
    ck_assert_ptr_nonnull(strstr(e1, "nope"));
    json_object_put(qmp_ok(env.qmp, "blockdev-del", "{'node-name': 'r1'}"));
}
END_TEST

static Suite *rbd_suite(void)
{
    Suite *s = suite_create("rbd");
    TCase *tc = qos_check_tcase(s, "rbd", setup, teardown, 90);

    tcase_add_unchecked_fixture(tc, cluster_start, cluster_stop);
    tcase_add_test(tc, test_io);
    tcase_add_test(tc, test_write_zeroes_discard);
    tcase_add_test(tc, test_resize);
    tcase_add_test(tc, test_blockdev_add);
    return s;
}

int main(void)
{
    return qos_check_run(rbd_suite());
}
