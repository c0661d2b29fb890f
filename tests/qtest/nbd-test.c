/*
 * The nbd block driver against real NBD servers: nbdkit (memory and file
 * plugins) and qemu-nbd, each started by the test on a UNIX socket.  An
 * NVMe controller on the nbd node is driven by the libqos NVMe driver; the
 * test checks what the export holds with its own libnbd connection or by
 * reading the server's file.
 *
 * Servers are killed and restarted under the device to check reconnection:
 * with reconnect-delay the device sees no error; without it the error
 * policy applies and the device recovers once the server is back.
 */
#include "util/osdep.h"

#include <check.h>
#include <libnbd.h>
#include <signal.h>
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
#include "tests/qtest/libqos/netstack.h"

#define EXPORT_SIZE     (16ULL << 20)
#define BLK             512

typedef struct Server {
    pid_t pid;
    char *sock;
    char *port;                 /* TCP on 127.0.0.1 instead, when set */
    char *const *argv;          /* the command, to restart it */
} Server;

typedef struct Env {
    IovdProc *proc;
    Server srv;
    char *img;                  /* the file plugin's / qemu-nbd's image */
    QNvmeDisk *disk;
    /* Borrowed from disk (qmp: owned when there is no disk). */
    GuestMem *gm;
    QNvme *q;
    QmpClient *qmp;
    GPtrArray *argv;            /* the server's command line */
} Env;

static Env env;

/* ---- NBD servers ---- */

static bool have(const char *tool)
{
    g_autofree char *p = g_find_program_in_path(tool);

    return p != NULL;
}

static void server_start(Server *s)
{
    int64_t deadline = qos_deadline(QOS_TIMEOUT_MS);

    unlink(s->sock);
    s->pid = fork();
    ck_assert_int_ge(s->pid, 0);
    if (s->pid == 0) {
        int null = open("/dev/null", O_RDWR);

        dup2(null, STDOUT_FILENO);
        execvp(s->argv[0], s->argv);
        _exit(127);
    }
    /* Ready once its socket takes connections. */
    for (;;) {
        struct nbd_handle *h = nbd_create();
        bool up = h && (s->port ? nbd_connect_tcp(h, "127.0.0.1", s->port)
                                : nbd_connect_unix(h, s->sock)) == 0;

        nbd_close(h);
        if (up) {
            return;
        }
        ck_assert_msg(qos_remaining_ms(deadline) > 0, "%s did not start",
                      s->argv[0]);
        g_usleep(20 * 1000);
    }
}

static void server_kill(Server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
}

/* The server's command: @tool then NULL-terminated arguments. */
static void server_cmd(const char *tool, ...)
{
    va_list ap;

    env.argv = g_ptr_array_new_with_free_func(g_free);
    g_ptr_array_add(env.argv, g_strdup(tool));
    va_start(ap, tool);
    for (const char *a = va_arg(ap, const char *); a;
         a = va_arg(ap, const char *)) {
        g_ptr_array_add(env.argv, g_strdup(a));
    }
    va_end(ap);
    g_ptr_array_add(env.argv, NULL);
    env.srv.argv = (char *const *)env.argv->pdata;
}

/* nbdkit serving @plugin (and its argument) in the foreground. */
static void nbdkit(const char *plugin, const char *arg)
{
    server_cmd("nbdkit", "-f", "-U", env.srv.sock, plugin, arg, NULL);
    server_start(&env.srv);
}

static char *make_image(const char *name, uint64_t size)
{
    return iovd_proc_image(env.proc, name, size);
}

/* ---- the daemon and the device ---- */

static void setup(void)
{
    qos_check_init();
    memset(&env, 0, sizeof(env));
    if (!have("nbdkit") || !have("qemu-nbd")) {
        return;                 /* the tests say SKIP */
    }
    env.proc = iovd_proc_new();
    env.srv.sock = iovd_proc_path(env.proc, "nbd.sock");
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
    server_kill(&env.srv);
    if (env.argv) {
        g_ptr_array_free(env.argv, true);
    }
    g_free(env.srv.sock);
    g_free(env.srv.port);
    g_free(env.img);
    memset(&env, 0, sizeof(env));
}

#define NEED_SERVERS()                                                  \
    do {                                                                \
        if (!env.proc) {                                                \
            printf("SKIP: %s: needs nbdkit and qemu-nbd (Debian "       \
                   "packages nbdkit, qemu-utils)\n", __func__);        \
            return;                                                     \
        }                                                               \
    } while (0)

/* iovd with an NVMe controller on an nbd node (@opts appended). */
static void start_iovd(const char *opts)
{
    g_autofree char *node = env.srv.port ?
        g_strdup_printf("driver=nbd,node-name=d0,server.type=inet,"
                        "server.host=127.0.0.1,server.port=%s%s",
                        env.srv.port, opts ? opts : "") :
        g_strdup_printf("driver=nbd,node-name=d0,server.type=unix,"
                        "server.path=%s%s", env.srv.sock, opts ? opts : "");

    env.disk = qnvme_disk_start(env.proc, node);
    env.qmp = env.disk->qmp;
    env.gm = env.disk->gm;
    env.q = env.disk->q;
}

static void fill(uint8_t *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++) {
        buf[i] = (uint8_t)(i * 7 + seed * 13 + (i >> 9));
    }
}

/* Write @nlb blocks of pattern @seed at @slba through the device. */
static uint16_t dev_write(uint64_t slba, uint32_t nlb, unsigned seed)
{
    size_t len = (size_t)nlb * BLK;
    g_autofree uint8_t *b = g_malloc(len);

    fill(b, len, seed);
    return qnvme_disk_write(env.disk, slba, nlb, b);
}

/* Read through the device and compare with pattern @seed. */
static uint16_t dev_check(uint64_t slba, uint32_t nlb, unsigned seed)
{
    size_t len = (size_t)nlb * BLK;
    g_autofree uint8_t *want = g_malloc(len);
    g_autofree uint8_t *got = g_malloc(len);
    uint16_t st = qnvme_disk_read(env.disk, slba, nlb, got);

    if (st == NVME_SUCCESS) {
        fill(want, len, seed);
        ck_assert_msg(memcmp(got, want, len) == 0,
                      "LBA %" PRIu64 ": not the data written", slba);
    }
    return st;
}

/* What the export holds at @off, read with a connection of our own. */
static void export_check(uint64_t off, size_t len, unsigned seed)
{
    struct nbd_handle *h = nbd_create();
    g_autofree uint8_t *want = g_malloc(len);
    g_autofree uint8_t *got = g_malloc(len);

    ck_assert_int_eq(nbd_connect_unix(h, env.srv.sock), 0);
    ck_assert_int_eq(nbd_pread(h, got, len, off, 0), 0);
    nbd_close(h);
    fill(want, len, seed);
    ck_assert_msg(memcmp(got, want, len) == 0,
                  "the export does not hold what was written at %" PRIu64,
                  off);
}

static void file_check(const char *path, uint64_t off, size_t len,
                       unsigned seed)
{
    g_autofree uint8_t *want = g_malloc(len);
    g_autofree uint8_t *got = g_malloc(len);
    int fd = open(path, O_RDONLY);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pread(fd, got, len, off), (ssize_t)len);
    close(fd);
    fill(want, len, seed);
    ck_assert_msg(memcmp(got, want, len) == 0,
                  "%s does not hold what was written at %" PRIu64, path, off);
}

/* ---- data through the device ---- */

START_TEST(test_nbdkit_memory)
{
    g_autofree char *size = g_strdup_printf("%llu", EXPORT_SIZE);
    json_object *ret;

    NEED_SERVERS();
    nbdkit("memory", size);
    start_iovd(NULL);
    ck_assert_uint_eq(qnvme_ns(env.q, 1)->nsze, EXPORT_SIZE / BLK);
    ck_assert_int_eq(dev_write(0, 8, 1), NVME_SUCCESS);
    ck_assert_int_eq(dev_write(EXPORT_SIZE / BLK - 64, 64, 2), NVME_SUCCESS);
    /* 256 KiB: several commands in flight for one request. */
    ck_assert_int_eq(dev_write(1024, 512, 3), NVME_SUCCESS);
    /* FUA: the server offers it; the write is acknowledged after it. */
    {
        uint8_t b[8 * BLK];
        uint64_t g = guest_alloc_aligned(env.gm, sizeof(b), 4096);
        NvmeCmd cmd;

        fill(b, sizeof(b), 6);
        guest_memwrite(env.gm, g, b, sizeof(b));
        qnvme_rw_cmd(env.q, &cmd, NVME_CMD_WRITE, 1, 4096, 8, g);
        cmd.cdw12 |= NVME_RW_FUA;
        ck_assert_int_eq(qnvme_cmd(env.q, qnvme_ioq(env.q, 1), &cmd, NULL),
                         NVME_SUCCESS);
        guest_free(env.gm, g);
        export_check(4096 * BLK, sizeof(b), 6);
    }
    ck_assert_int_eq(qnvme_flush(env.q, qnvme_ioq(env.q, 1), 1),
                     NVME_SUCCESS);
    ck_assert_int_eq(dev_check(0, 8, 1), NVME_SUCCESS);
    ck_assert_int_eq(dev_check(1024, 512, 3), NVME_SUCCESS);
    export_check(0, 8 * BLK, 1);
    export_check((EXPORT_SIZE / BLK - 64) * BLK, 64 * BLK, 2);
    export_check(1024 * BLK, 512 * BLK, 3);
    /* The monitor sees an nbd node. */
    ret = qmp_ok(env.qmp, "query-block", NULL);
    ck_assert_str_eq(qmp_get_str(qmp_get(json_object_array_get_idx(ret, 0),
                                         "inserted"), "drv"), "nbd");
    json_object_put(ret);
}
END_TEST

START_TEST(test_qemu_nbd)
{
    NEED_SERVERS();
    env.img = make_image("disk.img", EXPORT_SIZE);
    server_cmd("qemu-nbd", "-f", "raw", "-k", env.srv.sock, "--shared=4",
               "--persistent", env.img, NULL);
    server_start(&env.srv);
    start_iovd(NULL);
    ck_assert_int_eq(dev_write(16, 32, 4), NVME_SUCCESS);
    ck_assert_int_eq(qnvme_flush(env.q, qnvme_ioq(env.q, 1), 1),
                     NVME_SUCCESS);
    ck_assert_int_eq(dev_check(16, 32, 4), NVME_SUCCESS);
    file_check(env.img, 16 * BLK, 32 * BLK, 4);
}
END_TEST

/* Write Zeroes and Deallocate reach the export; the rest stays. */
START_TEST(test_write_zeroes)
{
    g_autofree uint8_t *want = g_malloc(128 * BLK);
    g_autofree uint8_t *got = g_malloc(128 * BLK);
    NvmeCmd cmd;
    int fd;

    NEED_SERVERS();
    env.img = make_image("disk.img", EXPORT_SIZE);
    nbdkit("file", env.img);
    start_iovd(NULL);
    ck_assert_int_eq(dev_write(0, 128, 5), NVME_SUCCESS);
    memset(&cmd, 0, sizeof(cmd));
    cmd.opcode = NVME_CMD_WRITE_ZEROES;
    cmd.nsid = 1;
    cmd.cdw12 = 64 - 1;                     /* LBAs 0-63 */
    ck_assert_int_eq(qnvme_cmd(env.q, qnvme_ioq(env.q, 1), &cmd, NULL),
                     NVME_SUCCESS);
    ck_assert_int_eq(qnvme_flush(env.q, qnvme_ioq(env.q, 1), 1),
                     NVME_SUCCESS);
    /* Deallocate LBAs 96-127: an NBD trim (the file plugin punches a
     * hole, which reads as zeros). */
    {
        NvmeDsmRange range = { .nlb = 32, .slba = 96 };
        uint64_t g = guest_alloc_aligned(env.gm, 4096, 4096);

        guest_memwrite(env.gm, g, &range, sizeof(range));
        memset(&cmd, 0, sizeof(cmd));
        cmd.opcode = NVME_CMD_DSM;
        cmd.nsid = 1;
        cmd.cdw11 = NVME_DSM_AD;
        cmd.dptr.prp1 = g;
        ck_assert_int_eq(qnvme_cmd(env.q, qnvme_ioq(env.q, 1), &cmd, NULL),
                         NVME_SUCCESS);
        guest_free(env.gm, g);
    }
    ck_assert_int_eq(qnvme_flush(env.q, qnvme_ioq(env.q, 1), 1),
                     NVME_SUCCESS);
    fill(want, 128 * BLK, 5);
    memset(want, 0, 64 * BLK);
    memset(want + 96 * BLK, 0, 32 * BLK);
    fd = open(env.img, O_RDONLY);
    ck_assert_int_eq(pread(fd, got, 128 * BLK, 0), 128 * BLK);
    close(fd);
    ck_assert_msg(memcmp(got, want, 128 * BLK) == 0,
                  "the file is not zeroed where asked, and only there");
}
END_TEST

/* ---- a server that goes away ---- */

/* Submit @n writes of 8 blocks at LBA 8*i without waiting. */
static void submit_writes(unsigned n, unsigned seed, uint64_t *bufs)
{
    QNvmeQueue *queue = qnvme_ioq(env.q, 1);

    for (unsigned i = 0; i < n; i++) {
        uint8_t b[8 * BLK];
        NvmeCmd cmd;

        fill(b, sizeof(b), seed + i);
        bufs[i] = guest_alloc_aligned(env.gm, sizeof(b), 4096);
        guest_memwrite(env.gm, bufs[i], b, sizeof(b));
        qnvme_rw_cmd(env.q, &cmd, NVME_CMD_WRITE, 1, 8 * i, 8, bufs[i]);
        qnvme_submit(env.q, queue, &cmd);
    }
}

START_TEST(test_reconnect_delay)
{
    uint64_t bufs[16];
    json_object *ev;

    NEED_SERVERS();
    env.img = make_image("disk.img", EXPORT_SIZE);
    nbdkit("file", env.img);
    start_iovd(",reconnect-delay=20");
    ck_assert_int_eq(dev_write(0, 8, 9), NVME_SUCCESS);
    /* Writes go out, the server dies under them, comes back later. */
    submit_writes(16, 100, bufs);
    server_kill(&env.srv);
    ev = qmp_client_wait_event(env.qmp, "BLOCK_DISCONNECTED", 0);
    ck_assert_str_eq(qmp_get_str(qmp_get(ev, "data"), "device"), "nvme0");
    ck_assert_str_eq(qmp_get_str(qmp_get(ev, "data"), "driver"), "nbd");
    json_object_put(ev);
    g_usleep(500 * 1000);
    server_start(&env.srv);
    json_object_put(qmp_client_wait_event(env.qmp, "BLOCK_RECONNECTED", 0));
    /* Every write completed, successfully, and landed. */
    for (unsigned i = 0; i < 16; i++) {
        NvmeCqe cqe;

        qnvme_wait(env.q, qnvme_ioq(env.q, 1), &cqe, 0);
        ck_assert_int_eq(qnvme_status(&cqe), NVME_SUCCESS);
    }
    ev = qmp_client_poll_event(env.qmp, "BLOCK_IO_ERROR", 0);
    ck_assert_msg(!ev, "the device saw an error: %s", ev ? qmp_json(ev) : "");
    ck_assert_int_eq(qnvme_flush(env.q, qnvme_ioq(env.q, 1), 1),
                     NVME_SUCCESS);
    for (unsigned i = 0; i < 16; i++) {
        file_check(env.img, 8 * i * BLK, 8 * BLK, 100 + i);
    }
    /* And I/O goes on. */
    ck_assert_int_eq(dev_write(512, 8, 7), NVME_SUCCESS);
    ck_assert_int_eq(dev_check(512, 8, 7), NVME_SUCCESS);
}
END_TEST

START_TEST(test_no_reconnect_delay)
{
    json_object *ev;

    NEED_SERVERS();
    env.img = make_image("disk.img", EXPORT_SIZE);
    nbdkit("file", env.img);
    start_iovd(NULL);
    ck_assert_int_eq(dev_write(0, 8, 1), NVME_SUCCESS);
    server_kill(&env.srv);
    json_object_put(qmp_client_wait_event(env.qmp, "BLOCK_DISCONNECTED", 0));
    /* No delay: the error policy (report) applies at once. */
    ck_assert_int_eq(dev_check(0, 8, 1) & 0x7ff, NVME_UNRECOVERED_READ);
    ev = qmp_client_wait_event(env.qmp, "BLOCK_IO_ERROR", 0);
    ck_assert_str_eq(qmp_get_str(qmp_get(ev, "data"), "action"), "report");
    json_object_put(ev);
    /* The driver keeps trying: the device recovers with the server. */
    server_start(&env.srv);
    json_object_put(qmp_client_wait_event(env.qmp, "BLOCK_RECONNECTED", 0));
    ck_assert_int_eq(dev_check(0, 8, 1), NVME_SUCCESS);
}
END_TEST

/* The export grows on the server; block_resize; I/O past the old end. */
START_TEST(test_resize)
{
    uint64_t grown = EXPORT_SIZE + (4 << 20);
    json_object *ev;

    NEED_SERVERS();
    env.img = make_image("disk.img", EXPORT_SIZE);
    nbdkit("file", env.img);
    start_iovd(NULL);
    ck_assert_int_eq(dev_write(0, 8, 1), NVME_SUCCESS);
    ck_assert_int_eq(truncate(env.img, grown), 0);
    json_object_put(qmp_okf(env.qmp, "block_resize", "{'node-name': 'd0', "
                            "'size': %" PRIu64 "}", grown));
    qnvme_identify_all(env.q);
    ck_assert_uint_eq(qnvme_ns(env.q, 1)->nsze, grown / BLK);
    /* The connection was made again for the new size: no event. */
    ck_assert_int_eq(dev_write(EXPORT_SIZE / BLK + 8, 8, 2), NVME_SUCCESS);
    ck_assert_int_eq(qnvme_flush(env.q, qnvme_ioq(env.q, 1), 1),
                     NVME_SUCCESS);
    file_check(env.img, EXPORT_SIZE + 8 * BLK, 8 * BLK, 2);
    ck_assert_int_eq(dev_check(0, 8, 1), NVME_SUCCESS);
    ev = qmp_client_poll_event(env.qmp, "BLOCK_DISCONNECTED", 0);
    ck_assert_msg(!ev, "resizing is not a disconnection");
}
END_TEST

/* server.type=inet, as QEMU spells it. */
START_TEST(test_inet)
{
    g_autofree char *size = g_strdup_printf("%llu", EXPORT_SIZE);

    NEED_SERVERS();
    env.srv.port = g_strdup_printf("%d", net_free_tcp_port());
    server_cmd("nbdkit", "-f", "-i", "127.0.0.1", "-p", env.srv.port,
               "memory", size, NULL);
    server_start(&env.srv);
    start_iovd(NULL);
    ck_assert_int_eq(dev_write(100, 16, 8), NVME_SUCCESS);
    ck_assert_int_eq(dev_check(100, 16, 8), NVME_SUCCESS);
}
END_TEST

/* A server that stops answering holds the daemon's exit only briefly. */
START_TEST(test_hung_server_exit)
{
    int64_t start;
    int status;

    NEED_SERVERS();
    env.img = make_image("disk.img", EXPORT_SIZE);
    nbdkit("file", env.img);
    start_iovd(NULL);
    ck_assert_int_eq(dev_write(0, 8, 1), NVME_SUCCESS);
    kill(env.srv.pid, SIGSTOP);
    qnvme_disk_free(env.disk);
    env.disk = NULL;
    env.qmp = NULL;             /* the disk's */
    start = qos_now_ms();
    status = iovd_proc_terminate(env.proc);
    ck_assert_msg(qos_now_ms() - start < 15000, "exit took %" PRId64 " ms",
                  qos_now_ms() - start);
    ck_assert_int_eq(status, 0);
    iovd_proc_free(env.proc);
    env.proc = NULL;
    kill(env.srv.pid, SIGCONT);
}
END_TEST

/* ---- the monitor ---- */

START_TEST(test_blockdev_add)
{
    g_autofree char *size = g_strdup_printf("%llu", EXPORT_SIZE);
    g_autofree char *e1 = NULL, *e2 = NULL, *e3 = NULL;
    g_autofree char *qmp = NULL, *nowhere = NULL;
    json_object *ret;

    NEED_SERVERS();
    nbdkit("memory", size);
    qmp = iovd_proc_path(env.proc, "qmp.sock");
    nowhere = iovd_proc_path(env.proc, "nowhere.sock");
    iovd_proc_add_args(env.proc, "-qmp", NULL);
    iovd_proc_add_argf(env.proc, "unix:%s,server=on,wait=off", qmp);
    iovd_proc_start(env.proc);
    env.qmp = qmp_client_open(qmp);
    /* QEMU's nested form. */
    json_object_put(qmp_okf(env.qmp, "blockdev-add", "{'driver': 'nbd', "
                            "'node-name': 'n1', 'server': {'type': 'unix', "
                            "'path': '%s'}, 'reconnect-delay': 5}",
                            env.srv.sock));
    ret = qmp_ok(env.qmp, "query-named-block-nodes", NULL);
    ck_assert_int_eq(qmp_get_int(qmp_get(json_object_array_get_idx(ret, 0),
                                         "image"), "virtual-size"),
                     (int64_t)EXPORT_SIZE);
    json_object_put(ret);
    /* The export's size is the server's to change. */
    e1 = qmp_err(env.qmp, "GenericError", "block_resize",
                 "{'node-name': 'n1', 'size': 1048576}");
    ck_assert_ptr_nonnull(strstr(e1, "resize it on the server"));
    json_object_put(qmp_okf(env.qmp, "block_resize", "{'node-name': 'n1', "
                            "'size': %llu}", EXPORT_SIZE));
    /* Nobody there: a clear error, quickly. */
    e2 = qmp_errf(env.qmp, "GenericError", "blockdev-add", "{'driver': "
                  "'nbd', 'node-name': 'n2', 'server': {'type': 'unix', "
                  "'path': '%s'}}", nowhere);
    ck_assert_ptr_nonnull(strstr(e2, "nbd:"));
    e3 = qmp_err(env.qmp, "GenericError", "blockdev-add", "{'driver': "
                 "'nbd', 'node-name': 'n3', 'server': {'type': 'unix'}}");
    ck_assert_ptr_nonnull(strstr(e3, "server.path"));
    json_object_put(qmp_ok(env.qmp, "blockdev-del", "{'node-name': 'n1'}"));
}
END_TEST

static Suite *nbd_suite(void)
{
    Suite *s = suite_create("nbd");
    TCase *tc = qos_check_tcase(s, "nbd", setup, teardown, 60);

    tcase_add_test(tc, test_nbdkit_memory);
    tcase_add_test(tc, test_qemu_nbd);
    tcase_add_test(tc, test_write_zeroes);
    tcase_add_test(tc, test_reconnect_delay);
    tcase_add_test(tc, test_no_reconnect_delay);
    tcase_add_test(tc, test_resize);
    tcase_add_test(tc, test_inet);
    tcase_add_test(tc, test_hung_server_exit);
    tcase_add_test(tc, test_blockdev_add);
    return s;
}

int main(void)
{
    return qos_check_run(nbd_suite());
}
