/*
 * The block layer with its file and null drivers: every operation, each
 * AIO engine, O_DIRECT with misaligned buffers, batching, stats, the error
 * policies and throttling.
 */
#include "util/osdep.h"
#include "util/loop.h"
#include "block/block.h"

#include <check.h>
#include "unit-loop.h"
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>

typedef struct Done {
    int count;
    int ret;
} Done;

static void done_cb(void *opaque, int ret)
{
    Done *d = opaque;

    d->count++;
    d->ret = ret;
}

static BlockStats node_stat(BlockNode *bs)
{
    BlockStats st;

    blk_node_stats(bs, &st);
    return st;
}

static void wait_done(Done *d, int n)
{
    int64_t deadline = clock_ns() + 10 * 1000000000LL;

    while (d->count < n) {
        ck_assert_msg(clock_ns() < deadline, "requests did not complete");
        loop_iterate(loop_main(), true);
    }
}

static char *tmpdir;

static const char *image_dir;      /* tmpdir, or a tmpfs */

static char *make_image(const char *name, uint64_t size)
{
    char *path = g_build_filename(image_dir ? image_dir : tmpdir, name,
                                  NULL);
    int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0600);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, size), 0);
    close(fd);
    return path;
}

static BlockNode *node_new(const char *opts)
{
    g_autoptr(Keyval) kv = keyval_parse(opts, "driver", NULL);
    GError *err = NULL;
    BlockNode *bs;

    ck_assert_ptr_nonnull(kv);
    bs = blk_node_create(kv, &err);
    ck_assert_msg(bs, "%s: %s", opts, err ? err->message : "?");
    return bs;
}

static void fill(uint8_t *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++) {
        buf[i] = (uint8_t)(i * 31 + seed * 7 + (i >> 9));
    }
}

static void file_rw_roundtrip(const char *aio, bool direct)
{
    g_autofree char *img = make_image("rw.img", 1 << 20);
    g_autofree char *opts = g_strdup_printf(
        "file,node-name=n0,filename=%s,aio=%s,cache.direct=%s", img, aio,
        direct ? "on" : "off");
    BlockNode *bs = node_new(opts);
    BlockBackend *blk = blk_attach("n0", "dev0", false, loop_main(), NULL);
    uint8_t *wbuf, *rbuf, host[8192];
    BlockReq reqs[8];
    struct iovec wiov[8][2], riov[8];
    Done d = { 0 };
    int fd;

    ck_assert_ptr_nonnull(blk);
    ck_assert_int_eq(posix_memalign((void **)&wbuf, 4096, 8 * 8192), 0);
    ck_assert_int_eq(posix_memalign((void **)&rbuf, 4096, 8 * 8192 + 1), 0);
    /* Eight writes in one batch (one loop iteration), two iovecs each. */
    for (int i = 0; i < 8; i++) {
        fill(wbuf + i * 8192, 8192, i);
        wiov[i][0] = (struct iovec){ wbuf + i * 8192, 4096 };
        wiov[i][1] = (struct iovec){ wbuf + i * 8192 + 4096, 4096 };
        ck_assert_int_eq(blk_pwritev(blk, &reqs[i], i * 65536, wiov[i], 2,
                                     i == 7 ? BLK_REQ_FUA : 0, done_cb, &d),
                         0);
    }
    ck_assert_int_eq(d.count, 0);       /* never inside the submit call */
    wait_done(&d, 8);
    ck_assert_int_eq(d.ret, 0);
    /* The file has it, read directly. */
    fd = open(img, O_RDONLY);
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(pread(fd, host, 8192, i * 65536), 8192);
        ck_assert(memcmp(host, wbuf + i * 8192, 8192) == 0);
    }
    close(fd);
    /* Read back into a misaligned buffer (bounced with O_DIRECT). */
    d.count = 0;
    for (int i = 0; i < 8; i++) {
        riov[i] = (struct iovec){ rbuf + 1 + i * 8192, 8192 };
        ck_assert_int_eq(blk_preadv(blk, &reqs[i], i * 65536, &riov[i], 1,
                                    done_cb, &d), 0);
    }
    wait_done(&d, 8);
    ck_assert_int_eq(d.ret, 0);
    ck_assert(memcmp(rbuf + 1, wbuf, 8 * 8192) == 0);
    /* Flush. */
    d.count = 0;
    ck_assert_int_eq(blk_flush(blk, &reqs[0], done_cb, &d), 0);
    wait_done(&d, 1);
    ck_assert_int_eq(d.ret, 0);
    ck_assert_uint_eq(node_stat(bs).ops[BLK_OP_WRITE], 8);
    ck_assert_uint_eq(node_stat(bs).bytes[BLK_OP_READ], 8 * 8192);
    ck_assert_uint_eq(node_stat(bs).ops[BLK_OP_FLUSH], 1);
    ck_assert_uint_eq(blk_inflight(blk), 0);
    blk_detach(blk);
    ck_assert(blk_node_delete(bs, NULL));
    free(wbuf);
    free(rbuf);
    unlink(img);
}

START_TEST(test_file_native) { file_rw_roundtrip("native", false); }
END_TEST
START_TEST(test_file_native_direct) { file_rw_roundtrip("native", true); }
END_TEST
START_TEST(test_file_threads) { file_rw_roundtrip("threads", false); }
END_TEST
START_TEST(test_file_io_uring)
{
#ifdef CONFIG_LIBURING
    file_rw_roundtrip("io_uring", false);
    file_rw_roundtrip("io_uring", true);
#else
    printf("SKIP: test_file_io_uring: built without liburing\n");
#endif
}
END_TEST

/*
 * A file in memory (tmpfs) is read and written in the loop rather than by
 * the engine: the same guarantees (completion never inside the submit
 * call, FUA, the bounce path for misaligned buffers).
 */
START_TEST(test_file_in_memory)
{
    g_autofree char *dir = g_strdup("/dev/shm/iovd-test-XXXXXX");
    struct statfs sf;

    if (statfs("/dev/shm", &sf) < 0 || sf.f_type != 0x01021994 ||
        !g_mkdtemp(dir)) {
        printf("SKIP: test_file_in_memory: no tmpfs at /dev/shm\n");
        return;
    }
    image_dir = dir;
    file_rw_roundtrip("native", false);
#ifdef CONFIG_LIBURING
    file_rw_roundtrip("io_uring", false);
#endif
    image_dir = NULL;
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

static void discard_zeroes(const char *aio)
{
    g_autofree char *img = make_image("dz.img", 1 << 20);
    g_autofree char *opts = g_strdup_printf(
        "file,node-name=n1,filename=%s,aio=%s", img, aio);
    BlockNode *bs = node_new(opts);
    BlockBackend *blk = blk_attach("n1", "dev1", false, loop_main(), NULL);
    uint8_t buf[65536], back[65536];
    struct iovec iov = { buf, sizeof(buf) };
    BlockReq req;
    Done d = { 0 };
    int fd = open(img, O_RDONLY);

    memset(buf, 0xa5, sizeof(buf));
    ck_assert_int_eq(blk_pwritev(blk, &req, 0, &iov, 1, 0, done_cb, &d), 0);
    wait_done(&d, 1);
    ck_assert_int_eq(blk_pwritev(blk, &req, 65536, &iov, 1, 0, done_cb, &d),
                     0);
    wait_done(&d, 2);
    /* Write zeroes over the first 64K, discard the second. */
    ck_assert_int_eq(blk_pwrite_zeroes(blk, &req, 4096, 8192, BLK_REQ_FUA,
                                       done_cb, &d), 0);
    wait_done(&d, 3);
    ck_assert_int_eq(d.ret, 0);
    ck_assert_int_eq(pread(fd, back, sizeof(back), 0), sizeof(back));
    for (int i = 0; i < 65536; i++) {
        uint8_t want = (i >= 4096 && i < 4096 + 8192) ? 0 : 0xa5;

        ck_assert_msg(back[i] == want, "byte %d is %x", i, back[i]);
    }
    ck_assert_int_eq(blk_pdiscard(blk, &req, 65536, 65536, done_cb, &d), 0);
    wait_done(&d, 4);
    ck_assert_int_eq(d.ret, 0);
    /* A punched hole reads as zeros. */
    ck_assert_int_eq(pread(fd, back, sizeof(back), 65536), sizeof(back));
    for (int i = 0; i < 65536; i++) {
        ck_assert_msg(back[i] == 0, "discarded byte %d is %x", i, back[i]);
    }
    close(fd);
    blk_detach(blk);
    blk_node_delete(bs, NULL);
    unlink(img);
}

START_TEST(test_discard_zeroes)
{
    discard_zeroes("native");
#ifdef CONFIG_LIBURING
    discard_zeroes("io_uring");
#endif
}
END_TEST

START_TEST(test_limits_and_errors)
{
    g_autofree char *img = make_image("ro.img", 65536);
    g_autofree char *opts = g_strdup_printf(
        "file,node-name=ro,filename=%s,read-only=on", img);
    BlockNode *bs = node_new(opts);
    BlockBackend *blk = blk_attach("ro", "d", false, loop_main(), NULL);
    GError *err = NULL;
    uint8_t buf[512];
    struct iovec iov = { buf, sizeof(buf) };
    BlockReq req;
    Done d = { 0 };

    ck_assert(blk_is_read_only(blk));
    ck_assert_int_eq(blk_pwritev(blk, &req, 0, &iov, 1, 0, done_cb, &d),
                     -EROFS);
    ck_assert_int_eq(blk_preadv(blk, &req, 65536 - 256, &iov, 1, done_cb,
                                &d), -ERANGE);
    ck_assert_int_eq(blk_preadv(blk, &req, UINT64_MAX - 100, &iov, 1,
                                done_cb, &d), -ERANGE);
    ck_assert_int_eq(d.count, 0);
    ck_assert_uint_eq(blk_inflight(blk), 0);
    /* Only one user unless both share. */
    ck_assert_ptr_null(blk_attach("ro", "other", true, loop_main(), &err));
    ck_assert(strstr(err->message, "already used"));
    g_clear_error(&err);
    ck_assert(!blk_node_delete(bs, &err));
    ck_assert(strstr(err->message, "in use"));
    g_clear_error(&err);
    ck_assert(!blk_node_resize(bs, 131072, &err));
    g_clear_error(&err);
    blk_detach(blk);
    ck_assert(blk_node_delete(bs, NULL));
    /* Option errors. */
    {
        g_autoptr(Keyval) kv = keyval_parse("file,node-name=x,filename="
                                            "/nonexistent/x", "driver", NULL);

        ck_assert_ptr_null(blk_node_create(kv, &err));
        ck_assert(strstr(err->message, "/nonexistent/x"));
        g_clear_error(&err);
    }
    {
        g_autoptr(Keyval) kv = keyval_parse("qcow9,node-name=x", "driver",
                                            NULL);

        ck_assert_ptr_null(blk_node_create(kv, &err));
        ck_assert(strstr(err->message, "unknown block driver 'qcow9'"));
        g_clear_error(&err);
    }
    unlink(img);
}
END_TEST

START_TEST(test_resize_and_share)
{
    g_autofree char *img = make_image("rs.img", 65536);
    g_autofree char *opts = g_strdup_printf("file,node-name=rs,filename=%s",
                                            img);
    BlockNode *bs = node_new(opts);
    BlockBackend *a = blk_attach("rs", "a", true, loop_main(), NULL);
    BlockBackend *b = blk_attach("rs", "b", true, loop_main(), NULL);
    struct stat st;

    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(blk_node_users(bs), 2);
    ck_assert(blk_node_resize(bs, 1 << 20, NULL));
    ck_assert_uint_eq(blk_getlength(a), 1 << 20);
    ck_assert_int_eq(stat(img, &st), 0);
    ck_assert_int_eq(st.st_size, 1 << 20);
    blk_detach(a);
    blk_detach(b);
    blk_node_delete(bs, NULL);
    unlink(img);
}
END_TEST

static int stops;

static void dev_stop(void *opaque)
{
    stops++;
}

static const BlockDevOps test_dev_ops = { .stop = dev_stop };

START_TEST(test_error_policy)
{
    g_autofree char *img = make_image("ep.img", 1 << 20);
    g_autofree char *opts = g_strdup_printf(
        "file,node-name=ep,filename=%s,aio=threads", img);
    BlockNode *bs = node_new(opts);
    BlockBackend *blk = blk_attach("ep", "d", false, loop_main(), NULL);
    struct rlimit rl = { 65536, RLIM_INFINITY };
    uint8_t buf[4096] = { 1 };
    struct iovec iov = { buf, sizeof(buf) };
    BlockReq req;
    Done d = { 0 };

    /* Writes past 64K fail with EFBIG in this process. */
    signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    blk_set_dev_ops(blk, &test_dev_ops, NULL);

    blk_set_error_policy(blk, BLK_ERR_REPORT, BLK_ERR_REPORT);
    ck_assert_int_eq(blk_pwritev(blk, &req, 131072, &iov, 1, 0, done_cb, &d),
                     0);
    wait_done(&d, 1);
    ck_assert_int_eq(d.ret, -EFBIG);
    ck_assert_uint_eq(node_stat(bs).failed[BLK_OP_WRITE], 1);

    blk_set_error_policy(blk, BLK_ERR_REPORT, BLK_ERR_IGNORE);
    ck_assert_int_eq(blk_pwritev(blk, &req, 131072, &iov, 1, 0, done_cb, &d),
                     0);
    wait_done(&d, 2);
    ck_assert_int_eq(d.ret, 0);

    /* enospc: stop only on ENOSPC; EFBIG is reported. */
    blk_set_error_policy(blk, BLK_ERR_REPORT, BLK_ERR_ENOSPC);
    ck_assert_int_eq(blk_pwritev(blk, &req, 131072, &iov, 1, 0, done_cb, &d),
                     0);
    wait_done(&d, 3);
    ck_assert_int_eq(d.ret, -EFBIG);
    ck_assert_int_eq(stops, 0);

    /* stop: held, device told; resumed once the cause is gone. */
    blk_set_error_policy(blk, BLK_ERR_REPORT, BLK_ERR_STOP);
    ck_assert_int_eq(blk_pwritev(blk, &req, 131072, &iov, 1, 0, done_cb, &d),
                     0);
    for (int i = 0; i < 50 && !stops; i++) {
        loop_iterate(loop_main(), true);
    }
    ck_assert_int_eq(stops, 1);
    ck_assert_int_eq(d.count, 3);       /* not completed */
    ck_assert_uint_eq(blk_inflight(blk), 1);
    rl.rlim_cur = RLIM_INFINITY;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    blk_resume_all();
    wait_done(&d, 4);
    ck_assert_int_eq(d.ret, 0);
    blk_detach(blk);
    blk_node_delete(bs, NULL);
    unlink(img);
}
END_TEST

START_TEST(test_null_and_throttle)
{
    BlockNode *bs = node_new("null,node-name=nl,size=64M");
    BlockBackend *blk = blk_attach("nl", "d", false, loop_main(), NULL);
    BlockThrottle t = { .iops = 200 };
    uint8_t buf[4096];
    struct iovec iov = { buf, sizeof(buf) };
    BlockReq reqs[100];
    Done d = { 0 };
    int64_t start;
    double secs;

    ck_assert_uint_eq(blk_getlength(blk), 64 << 20);
    memset(buf, 0xff, sizeof(buf));
    ck_assert_int_eq(blk_preadv(blk, &reqs[0], 0, &iov, 1, done_cb, &d), 0);
    wait_done(&d, 1);
    ck_assert_uint_eq(buf[100], 0);     /* reads return zeros */
    /* 100 requests at 200 IOPS (burst of 20): about 0.4 s. */
    ck_assert(blk_set_throttle(blk, &t, NULL));
    d.count = 0;
    start = clock_ns();
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(blk_preadv(blk, &reqs[i], i * 4096, &iov, 1,
                                    done_cb, &d), 0);
    }
    wait_done(&d, 100);
    secs = (clock_ns() - start) / 1e9;
    ck_assert_msg(secs > 0.3 && secs < 2.0, "100 ops took %.3f s", secs);
    /* Lifting the limit lets everything through at once. */
    t.iops = 0;
    ck_assert(blk_set_throttle(blk, &t, NULL));
    t.iops = 10;
    t.iops_rd = 5;
    ck_assert(!blk_set_throttle(blk, &t, NULL));    /* both kinds: refused */
    blk_detach(blk);
    blk_node_delete(bs, NULL);
}
END_TEST

START_TEST(test_throttle_group)
{
    g_autoptr(Keyval) kv = keyval_parse("throttle-group,id=tg,"
                                        "x-iops-total=100", "qom-type",
                                        NULL);
    g_autoptr(Keyval) bad = keyval_parse("null,node-name=gx,size=1M,"
                                         "throttle-group=nope", "driver",
                                         NULL);
    BlockThrottle t = { .iops = 10 };
    BlockNode *a, *b;
    BlockBackend *ba, *bb;
    uint8_t buf[512];
    struct iovec iov = { buf, sizeof(buf) };
    BlockReq reqs[60];
    Done d = { 0 };
    GError *err = NULL;
    int64_t start;
    double secs;

    ck_assert(blk_throttle_group_add(kv, NULL));
    ck_assert_ptr_null(blk_node_create(bad, NULL));   /* no such group */
    a = node_new("null,node-name=ga,size=1M,throttle-group=tg");
    b = node_new("null,node-name=gb,size=1M,throttle-group=tg");
    ba = blk_attach("ga", "da", false, loop_main(), NULL);
    bb = blk_attach("gb", "db", false, loop_main(), NULL);
    /* Each has the group's limits, and no limits of its own. */
    ck_assert_str_eq(blk_throttle_group_name(ba), "tg");
    ck_assert(!blk_set_throttle(ba, &t, &err));
    g_clear_error(&err);
    blk_get_throttle(bb, &t);
    ck_assert_uint_eq(t.iops, 100);
    /* 30 reads each, 100 per second together (a burst of 10): 0.5 s. */
    start = clock_ns();
    for (int i = 0; i < 60; i++) {
        ck_assert_int_eq(blk_preadv(i & 1 ? bb : ba, &reqs[i], 0, &iov, 1,
                                    done_cb, &d), 0);
    }
    wait_done(&d, 60);
    secs = (clock_ns() - start) / 1e9;
    ck_assert_msg(secs > 0.4 && secs < 2.0, "60 ops took %.3f s", secs);
    /* A group named by a node stays. */
    ck_assert(!blk_throttle_group_del("tg", &err));
    g_clear_error(&err);
    blk_detach(ba);
    blk_detach(bb);
    blk_node_delete(a, NULL);
    blk_node_delete(b, NULL);
    ck_assert(blk_throttle_group_del("tg", NULL));
}
END_TEST

START_TEST(test_latency_histogram)
{
    BlockNode *bs = node_new("null,node-name=nh,size=1M");
    BlockBackend *blk = blk_attach("nh", "d", false, loop_main(), NULL);
    static const uint64_t one_sec[] = { 1000000000 };
    static const uint64_t split[] = { 1, 1000000000 };
    static const uint64_t bad[] = { 5, 5 };
    uint8_t buf[512];
    struct iovec iov = { buf, sizeof(buf) };
    BlockReq reqs[13];
    BlockHistogram h;
    GError *err = NULL;
    Done d = { 0 };

    ck_assert(blk_node_set_histogram(bs, BLK_HIST_READ, one_sec, 1, NULL));
    ck_assert(blk_node_set_histogram(bs, BLK_HIST_WRITE, split, 2, NULL));
    ck_assert(!blk_node_set_histogram(bs, BLK_HIST_FLUSH, bad, 2, &err));
    ck_assert_msg(strstr(err->message, "increase strictly"), "%s",
                  err->message);
    g_clear_error(&err);
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(blk_preadv(blk, &reqs[i], 0, &iov, 1, done_cb, &d),
                         0);
    }
    for (int i = 10; i < 13; i++) {
        ck_assert_int_eq(blk_pwritev(blk, &reqs[i], 0, &iov, 1, 0, done_cb,
                                     &d), 0);
    }
    wait_done(&d, 13);
    /* every read under a second; every write in [1 ns, 1 s) */
    blk_node_histogram(bs, BLK_HIST_READ, &h);
    ck_assert_uint_eq(h.n, 1);
    ck_assert_uint_eq(h.bins[0], 10);
    ck_assert_uint_eq(h.bins[1], 0);
    blk_node_histogram(bs, BLK_HIST_WRITE, &h);
    ck_assert_uint_eq(h.n, 2);
    ck_assert_uint_eq(h.bins[0] + h.bins[1], 3);
    ck_assert_uint_eq(h.bins[2], 0);
    blk_node_histogram(bs, BLK_HIST_FLUSH, &h);
    ck_assert_uint_eq(h.n, 0);
    /* set again: bins start over; n = 0 drops it */
    ck_assert(blk_node_set_histogram(bs, BLK_HIST_READ, split, 2, NULL));
    blk_node_histogram(bs, BLK_HIST_READ, &h);
    ck_assert_uint_eq(h.bins[0] + h.bins[1] + h.bins[2], 0);
    ck_assert(blk_node_set_histogram(bs, BLK_HIST_READ, NULL, 0, NULL));
    blk_node_histogram(bs, BLK_HIST_READ, &h);
    ck_assert_uint_eq(h.n, 0);
    blk_detach(blk);
    blk_node_delete(bs, NULL);
}
END_TEST

static Suite *block_suite(void)
{
    Suite *s = suite_create("block");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, unit_loop_setup, unit_loop_teardown);

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_file_native);
    tcase_add_test(tc, test_latency_histogram);
    tcase_add_test(tc, test_file_native_direct);
    tcase_add_test(tc, test_file_threads);
    tcase_add_test(tc, test_file_io_uring);
    tcase_add_test(tc, test_file_in_memory);
    tcase_add_test(tc, test_discard_zeroes);
    tcase_add_test(tc, test_limits_and_errors);
    tcase_add_test(tc, test_resize_and_share);
    tcase_add_test(tc, test_error_policy);
    tcase_add_test(tc, test_null_and_throttle);
    tcase_add_test(tc, test_throttle_group);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(block_suite());
    int failed;

    tmpdir = g_dir_make_tmp("iovd-block-XXXXXX", NULL);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    g_autofree char *cmd = g_strdup_printf("rm -rf %s", tmpdir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    return failed ? 1 : 0;
}
