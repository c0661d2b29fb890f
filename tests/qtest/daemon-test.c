/*
 * The daemon as a launcher sees it: command-line errors, --help and
 * --version, orderly shutdown, socket files (mode, stale, in use), and the
 * ways a VMM hands iovd its sockets: fd=N (listening or connected),
 * systemd socket activation, NOTIFY_SOCKET and -ready-fd.
 */
#include "util/osdep.h"
#include "hw/misc/pci-testdev-regs.h"
#include "tests/qtest/libqos/qos-check.h"
#include "tests/qtest/libqos/vfu-client.h"
#include "tests/qtest/libqos/iovd-upgrade.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

/* Run iovd to completion; returns its exit status, stderr in *err. */
static int unix_listen(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(fd, 1), 0);
    return fd;
}

/* Negotiate and read the device id from config space. */
static void assert_testdev_serves(const char *path)
{
    VfuClient *c = vfu_client_open(path);
    uint8_t id[4];

    ck_assert_int_eq(vfu_region_read(c, VFIO_PCI_CONFIG_REGION_INDEX, 0,
                                     id, 4), 0);
    ck_assert_uint_eq(lduw_le_p(id), TESTDEV_VENDOR_ID);
    ck_assert_uint_eq(lduw_le_p(id + 2), TESTDEV_DEVICE_ID);
    vfu_client_free(c);
}

START_TEST(test_unknown_property)
{
    g_autofree char *err = NULL;
    int rc = iovd_run(&err, "-device",
                      "pci-testdev,id=t0,foo=1,socket=/tmp/never.sock", NULL);

    ck_assert_int_ne(rc, 0);
    ck_assert_msg(strstr(err, "iovd: -device pci-testdev,id=t0,foo=1,"
                              "socket=/tmp/never.sock: unknown property "
                              "'foo'"), "stderr: %s", err);
}
END_TEST

START_TEST(test_bad_options)
{
    g_autofree char *e1 = NULL, *e2 = NULL, *e3 = NULL, *e4 = NULL;

    ck_assert_int_ne(iovd_run(&e1, "-nosuchoption", NULL), 0);
    ck_assert_msg(strstr(e1, "unknown option '-nosuchoption'"), "%s", e1);
    ck_assert_int_ne(iovd_run(&e2, "-device", "nosuchdev,id=x", NULL), 0);
    ck_assert_msg(strstr(e2, "unknown device type 'nosuchdev'"), "%s", e2);
    ck_assert_int_ne(iovd_run(&e3, "-device", NULL), 0);
    ck_assert_msg(strstr(e3, "requires an argument"), "%s", e3);
    /* No socket at all: a clear error naming the property. */
    ck_assert_int_ne(iovd_run(&e4, "-device", "pci-testdev,id=t0", NULL), 0);
    ck_assert_msg(strstr(e4, "socket"), "%s", e4);
}
END_TEST

START_TEST(test_help_version)
{
    g_autofree char *out = NULL, *err = NULL;
    const char *argv[] = { iovd_binary(), "--version", NULL };
    const char *argv2[] = { iovd_binary(), "-device", "help", NULL };
    int status;

    ck_assert(g_spawn_sync(NULL, (char **)argv, NULL, 0, NULL, NULL, &out,
                           &err, &status, NULL));
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_msg(g_str_has_prefix(out, "iovd "), "%s", out);
    g_free(out);
    g_free(err);
    ck_assert(g_spawn_sync(NULL, (char **)argv2, NULL, 0, NULL, NULL, &out,
                           &err, &status, NULL));
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_msg(strstr(out, "pci-testdev"), "%s", out);
}
END_TEST

/* Run iovd with @a1 @a2; its exit status, stdout in *out. */
static int run_iovd_out(char **out, const char *a1, const char *a2)
{
    const char *argv[] = { iovd_binary(), a1, a2, NULL };
    g_autofree char *err = NULL;
    int status;

    ck_assert(g_spawn_sync(NULL, (char **)argv, NULL, 0, NULL, NULL, out,
                           &err, &status, NULL));
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

START_TEST(test_help_forms)
{
    static const struct {
        const char *opt, *arg, *want;
    } forms[] = {
        { "-device", "help", "nvme" },
        { "-device", "nvme,help", "serial=" },
        { "-device", "nvme,help,id=x", "serial=" },
        { "-device", "driver=virtio-net-pci,?", "netdev=" },
        { "-blockdev", "help", "driver=file" },
        { "-blockdev", "driver=file,help", "filename=" },
        { "-blockdev", "driver=null,node-name=x,help", "read-zeroes" },
        { "-netdev", "help", "stream:" },
        { "-netdev", "user,help", "hostfwd" },
        { "-trace", "help", "nvme_mmio_write" },
        { "-object", "help", "iothread" },
        { "-d", "help", "guest_errors" },
        { "-qmp", "help", "unix:PATH" },
    };
    g_autofree char *err = NULL;

    for (size_t i = 0; i < G_N_ELEMENTS(forms); i++) {
        g_autofree char *out = NULL;
        int rc = run_iovd_out(&out, forms[i].opt, forms[i].arg);

        ck_assert_msg(rc == 0, "%s %s: exit %d", forms[i].opt, forms[i].arg,
                      rc);
        ck_assert_msg(strstr(out, forms[i].want), "%s %s: no '%s' in: %s",
                      forms[i].opt, forms[i].arg, forms[i].want, out);
    }
    /* help about something unknown is an error */
    ck_assert_int_eq(iovd_run(&err, "-blockdev", "driver=nope,help", NULL), 1);
    ck_assert_msg(strstr(err, "unknown block driver 'nope'"), "%s", err);
    g_free(err);
    ck_assert_int_eq(iovd_run(&err, "-netdev", "nope,help", NULL), 1);
    ck_assert_msg(strstr(err, "unknown netdev type 'nope'"), "%s", err);
    g_free(err);
    /* nothing to serve: usage, not a silent daemon */
    ck_assert_int_eq(iovd_run(&err, NULL), 1);
    ck_assert_msg(strstr(err, "nothing to serve") && strstr(err, "Usage:"),
                  "%s", err);
    g_free(err);
    ck_assert_int_eq(iovd_run(&err, "-blockdev",
                              "driver=null,node-name=d0", NULL), 1);
    ck_assert_msg(strstr(err, "nothing to serve"), "%s", err);
}
END_TEST

/* Run iovd with @args for 1 s, then SIGTERM; its stderr. */
static char *startup_warnings(const char *const *args)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    char *err = NULL;
    int status;

    g_ptr_array_add(argv, (gpointer)"timeout");
    g_ptr_array_add(argv, (gpointer)"1");
    g_ptr_array_add(argv, (gpointer)iovd_binary());
    for (; *args; args++) {
        g_ptr_array_add(argv, (gpointer)*args);
    }
    g_ptr_array_add(argv, NULL);
    ck_assert(g_spawn_sync(NULL, (char **)argv->pdata, NULL,
                           G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, &err,
                           &status, NULL));
    /* timeout's SIGTERM: an orderly exit 0, reported as 124 */
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 124,
                  "status 0x%x: %s", status, err);
    return err;
}

/* Legal but rarely meant: said once at start-up, as QEMU says it. */
START_TEST(test_config_warnings)
{
    g_autofree char *dir = g_dir_make_tmp("iovd-warn-XXXXXX", NULL);
    g_autofree char *qmp = g_strdup_printf("unix:%s/q.sock", dir);
    g_autofree char *n0 = g_strdup_printf("nvme,id=n0,socket=%s/n0.sock",
                                          dir);
    g_autofree char *n1 = g_strdup_printf("nvme,id=n1,drive=d0,serial=S,"
                                          "socket=%s/n1.sock", dir);
    g_autofree char *n2 = g_strdup_printf("nvme,id=n2,socket=%s/n2.sock",
                                          dir);
    g_autofree char *e0 = g_strdup_printf("e1000,id=e0,socket=%s/e0.sock",
                                          dir);
    const char *args[] = {
        "-qmp", qmp, "-blockdev", "driver=null,node-name=d0",
        "-blockdev", "driver=null,node-name=d1",
        "-device", n0, "-device", n1, "-device", n2,
        "-device", "nvme-ns,bus=n2,drive=d1", "-device", e0, NULL
    };
    g_autofree char *err = startup_warnings(args);

    ck_assert_msg(strstr(err, "n0: nvme has no namespace"), "%s", err);
    ck_assert_msg(!strstr(err, "n1: nvme has no namespace"), "%s", err);
    ck_assert_msg(!strstr(err, "n2: nvme has no namespace"), "%s", err);
    ck_assert_msg(strstr(err, "e0: nic has no peer"), "%s", err);
    ck_assert_msg(strstr(err, "no server=on: listening anyway"), "%s", err);
    rmdir(dir);
}
END_TEST

START_TEST(test_sigterm_cleanup)
{
    g_autoptr(IovdProc) p = iovd_proc_new();
    g_autofree char *sock = iovd_proc_path(p, "t0.sock");
    g_autofree char *pidf = iovd_proc_path(p, "iovd.pid");
    g_autofree char *pidtext = NULL;
    struct stat st;
    VfuClient *c;

    iovd_proc_add_argf(p, "-device");
    iovd_proc_add_argf(p, "pci-testdev,id=t0,socket=%s", sock);
    iovd_proc_add_args(p, "-pidfile", pidf, NULL);
    iovd_proc_start(p);
    ck_assert_int_eq(stat(sock, &st), 0);
    ck_assert_msg((st.st_mode & 0777) == 0600, "mode %o", st.st_mode & 0777);
    ck_assert(g_file_get_contents(pidf, &pidtext, NULL, NULL));
    ck_assert_int_eq(atoi(pidtext), iovd_proc_pid(p));
    /* A connected client does not hold up the shutdown. */
    c = vfu_client_open(sock);
    iovd_proc_stop(p);
    ck_assert(vfu_wait_closed(c, 5000));
    vfu_client_free(c);
    ck_assert_int_ne(stat(sock, &st), 0);
    ck_assert_int_ne(stat(pidf, &st), 0);
}
END_TEST

START_TEST(test_pidfile_locked)
{
    g_autoptr(IovdProc) a = iovd_proc_new();
    g_autofree char *pidf = iovd_proc_path(a, "iovd.pid");
    g_autofree char *dev_a = g_strdup_printf("pci-testdev,id=t8,socket=%s/"
                                             "t8.sock", iovd_proc_tmpdir(a));
    g_autofree char *dev_b = g_strdup_printf("pci-testdev,id=t9,socket=%s/"
                                             "t9.sock", iovd_proc_tmpdir(a));
    g_autofree char *err = NULL, *text = NULL, *want = NULL;

    /* a directory that does not exist: the path in the error, no temp name */
    ck_assert_int_eq(iovd_run(&err, "-pidfile", "/nonexistent/x.pid",
                              "-device", dev_b, NULL), 1);
    ck_assert_msg(strstr(err, "-pidfile /nonexistent/x.pid: cannot open"),
                  "%s", err);
    g_clear_pointer(&err, g_free);

    /* a second daemon on a running one's pidfile is refused */
    iovd_proc_add_args(a, "-pidfile", pidf, "-device", dev_a, NULL);
    iovd_proc_start(a);
    want = g_strdup_printf("%d\n", iovd_proc_pid(a));
    ck_assert_int_eq(iovd_run(&err, "-pidfile", pidf, "-device", dev_b,
                              NULL), 1);
    ck_assert_msg(strstr(err, "in use by another running iovd (pid"), "%s",
                  err);
    /* refused before it made anything */
    ck_assert(!g_file_test(strchr(dev_b, '/'), G_FILE_TEST_EXISTS));
    ck_assert(g_file_get_contents(pidf, &text, NULL, NULL));
    ck_assert_str_eq(text, want);
    ck_assert(iovd_proc_running(a));
    iovd_proc_stop(a);
    ck_assert(!g_file_test(pidf, G_FILE_TEST_EXISTS));
}
END_TEST

START_TEST(test_stale_and_busy_socket)
{
    g_autoptr(IovdProc) p = iovd_proc_new();
    g_autofree char *sock = iovd_proc_path(p, "t0.sock");
    g_autofree char *dev = g_strdup_printf("pci-testdev,id=t0,socket=%s",
                                           sock);
    g_autofree char *err = NULL;
    int fd;

    /* A socket file nobody listens on is replaced. */
    fd = unix_listen(sock);
    close(fd);
    iovd_proc_add_args(p, "-device", dev, NULL);
    iovd_proc_start(p);
    assert_testdev_serves(sock);
    /* One that a running server listens on is not. */
    ck_assert_int_ne(iovd_run(&err, "-device", dev, NULL), 0);
    ck_assert_msg(strstr(err, "in use"), "%s", err);
    assert_testdev_serves(sock);
    iovd_proc_stop(p);
}
END_TEST

START_TEST(test_not_a_socket)
{
    g_autoptr(IovdProc) p = iovd_proc_new();
    g_autofree char *path = iovd_proc_path(p, "file");
    g_autofree char *dev = g_strdup_printf("pci-testdev,id=t0,socket=%s",
                                           path);
    g_autofree char *err = NULL;

    ck_assert(g_file_set_contents(path, "x", 1, NULL));
    ck_assert_int_ne(iovd_run(&err, "-device", dev, NULL), 0);
    ck_assert_msg(strstr(err, "not a socket"), "%s", err);
}
END_TEST

/* Spawn iovd with extra fds and environment; returns its pid. */
typedef struct Launch {
    int fds[4];         /* child fd i+3 = fds[i], or -1 */
    const char *listen_fdnames;
    const char *notify_socket;
    bool listen_fds;
} Launch;

static pid_t launch(const Launch *l, const char *const *args)
{
    pid_t pid = fork();

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        g_autoptr(GPtrArray) argv = g_ptr_array_new();
        int n = 0;

        /* Move the fds to 3.. without clobbering each other. */
        for (int i = 0; i < 4 && l->fds[i] >= 0; i++) {
            int tmp = fcntl(l->fds[i], F_DUPFD, 100);

            dup2(tmp, 3 + i);
            n++;
        }
        if (l->listen_fds) {
            char buf[32];

            snprintf(buf, sizeof(buf), "%d", getpid());
            setenv("LISTEN_PID", buf, 1);
            snprintf(buf, sizeof(buf), "%d", n);
            setenv("LISTEN_FDS", buf, 1);
            if (l->listen_fdnames) {
                setenv("LISTEN_FDNAMES", l->listen_fdnames, 1);
            }
        }
        if (l->notify_socket) {
            setenv("NOTIFY_SOCKET", l->notify_socket, 1);
        }
        g_ptr_array_add(argv, (gpointer)iovd_binary());
        for (const char *const *a = args; *a; a++) {
            g_ptr_array_add(argv, (gpointer)*a);
        }
        g_ptr_array_add(argv, NULL);
        execv(iovd_binary(), (char **)argv->pdata);
        _exit(127);
    }
    return pid;
}

static void stop_pid(pid_t pid)
{
    int status;

    kill(pid, SIGTERM);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "status 0x%x", status);
}

START_TEST(test_notify_socket)
{
    g_autofree char *dir = g_dir_make_tmp("iovd-notify-XXXXXX", NULL);
    g_autofree char *ns = g_build_filename(dir, "notify", NULL);
    g_autofree char *sock = g_build_filename(dir, "t0.sock", NULL);
    g_autofree char *dev = g_strdup_printf("pci-testdev,id=t0,socket=%s",
                                           sock);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    const char *args[] = { "-device", dev, NULL };
    Launch l = { .fds = { -1, -1, -1, -1 }, .notify_socket = ns };
    char buf[64] = "";
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    pid_t pid;
    ssize_t n;

    g_strlcpy(sa.sun_path, ns, sizeof(sa.sun_path));
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    pid = launch(&l, args);
    ck_assert(qos_poll_fd(fd, POLLIN, qos_deadline(10000)) & POLLIN);
    n = recv(fd, buf, sizeof(buf) - 1, 0);
    ck_assert_int_gt(n, 0);
    ck_assert_str_eq(buf, "READY=1");
    /* Ready means listening: no sleep, no retry. */
    assert_testdev_serves(sock);
    /* and a shutdown begins with STOPPING=1 */
    stop_pid(pid);
    memset(buf, 0, sizeof(buf));
    ck_assert(qos_poll_fd(fd, POLLIN, qos_deadline(1000)) & POLLIN);
    ck_assert_int_gt(recv(fd, buf, sizeof(buf) - 1, 0), 0);
    ck_assert_str_eq(buf, "STOPPING=1");
    close(fd);
    unlink(ns);
    rmdir(dir);
}
END_TEST

/* A closed terminal (SIGHUP) is an orderly shutdown too. */
START_TEST(test_sighup_cleanup)
{
    g_autofree char *dir = g_dir_make_tmp("iovd-hup-XXXXXX", NULL);
    g_autofree char *sock = g_build_filename(dir, "t0.sock", NULL);
    g_autofree char *dev = g_strdup_printf("pci-testdev,id=t0,socket=%s",
                                           sock);
    const char *args[] = { "-device", dev, NULL };
    Launch l = { .fds = { -1, -1, -1, -1 } };
    pid_t pid = launch(&l, args);
    int status;

    /* listening: a connect succeeds (bind comes before listen) */
    for (int i = 0; i < 1000; i++) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        bool up;

        g_strlcpy(sa.sun_path, sock, sizeof(sa.sun_path));
        up = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        close(fd);
        if (up) {
            break;
        }
        g_usleep(10000);
    }
    assert_testdev_serves(sock);
    kill(pid, SIGHUP);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "status 0x%x", status);
    ck_assert(!g_file_test(sock, G_FILE_TEST_EXISTS));
    rmdir(dir);
}
END_TEST

START_TEST(test_inherited_listening_fd)
{
    g_autofree char *dir = g_dir_make_tmp("iovd-fd-XXXXXX", NULL);
    g_autofree char *sock = g_build_filename(dir, "t0.sock", NULL);
    int lfd = unix_listen(sock);
    const char *args[] = { "-device", "pci-testdev,id=t0,fd=3", NULL };
    Launch l = { .fds = { lfd, -1, -1, -1 } };
    pid_t pid = launch(&l, args);

    close(lfd);
    /* The socket listened before iovd started: connect may come early. */
    assert_testdev_serves(sock);
    assert_testdev_serves(sock);        /* and again: it keeps listening */
    stop_pid(pid);
    unlink(sock);
    rmdir(dir);
}
END_TEST

START_TEST(test_inherited_connected_fd)
{
    g_autofree char *dir = g_dir_make_tmp("iovd-cfd-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "pair.sock", NULL);
    const char *args[] = { "-device", "pci-testdev,id=t0,fd=3", NULL };
    Launch l = { .fds = { -1, -1, -1, -1 } };
    int lfd = unix_listen(path);
    VfuClient *c = vfu_client_connect(path);
    uint8_t id[2];
    pid_t pid;

    /* iovd gets the server end of an established connection. */
    l.fds[0] = accept(lfd, NULL, NULL);
    ck_assert_int_ge(l.fds[0], 0);
    close(lfd);
    unlink(path);
    pid = launch(&l, args);
    close(l.fds[0]);
    ck_assert_int_eq(vfu_negotiate(c, 0, 0, NULL), 0);
    ck_assert_int_eq(vfu_region_read(c, VFIO_PCI_CONFIG_REGION_INDEX, 0,
                                     id, 2), 0);
    ck_assert_uint_eq(lduw_le_p(id), TESTDEV_VENDOR_ID);
    vfu_client_free(c);
    stop_pid(pid);
    rmdir(dir);
}
END_TEST

/* ---- live upgrade of sockets that came as fds ---- */

/* Wait until a UNIX socket at @path accepts connections. */
static void wait_listening(const char *path)
{
    int64_t deadline = qos_deadline(10000);

    for (;;) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool up;

        g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
        up = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        close(fd);
        if (up) {
            return;
        }
        ck_assert_msg(qos_remaining_ms(deadline), "%s never listened", path);
        g_usleep(10000);
    }
}

/* Upgrade the iovd @pid (monitor at @qmp_path): the one that took over. */
static IovdProc *upgrade_pid(pid_t pid, const char *qmp_path)
{
    g_autofree char *uri = NULL;
    IovdProc *next = iovd_upgrade_target(&uri, NULL);
    QmpClient *q;
    int status;

    wait_listening(qmp_path);
    q = qmp_client_open(qmp_path);
    json_object_put(qmp_okf(q, "upgrade", "{'uri': '%s'}", uri));
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "status 0x%x", status);
    qmp_client_free(q);
    return next;
}

/*
 * fd= sockets move: a listening one (t0) keeps taking new clients in
 * the new process; a connected one (t1) keeps its client.
 */
START_TEST(test_upgrade_inherited_fds)
{
    g_autofree char *dir = g_dir_make_tmp("iovd-upfd-XXXXXX", NULL);
    g_autofree char *s0 = g_build_filename(dir, "a.sock", NULL);
    g_autofree char *pair = g_build_filename(dir, "pair.sock", NULL);
    g_autofree char *qmp = g_build_filename(dir, "qmp.sock", NULL);
    g_autofree char *qarg = g_strdup_printf("unix:%s,server=on,wait=off",
                                            qmp);
    const char *args[] = { "-device", "pci-testdev,id=t0,fd=3",
                           "-device", "pci-testdev,id=t1,fd=4",
                           "-qmp", qarg, NULL };
    int lfd = unix_listen(pair);
    VfuClient *c = vfu_client_connect(pair);
    Launch l = { .fds = { unix_listen(s0), accept(lfd, NULL, NULL), -1,
                          -1 } };
    g_autoptr(IovdProc) next = NULL;
    uint8_t id[2];
    pid_t pid;

    close(lfd);
    unlink(pair);
    pid = launch(&l, args);
    close(l.fds[0]);
    close(l.fds[1]);
    ck_assert_int_eq(vfu_negotiate(c, 0, 0, NULL), 0);
    assert_testdev_serves(s0);

    next = upgrade_pid(pid, qmp);
    assert_testdev_serves(s0);
    assert_testdev_serves(s0);
    ck_assert_int_eq(vfu_region_read(c, VFIO_PCI_CONFIG_REGION_INDEX, 0,
                                     id, 2), 0);
    ck_assert_uint_eq(lduw_le_p(id), TESTDEV_VENDOR_ID);
    vfu_client_free(c);
    iovd_proc_stop(next);
    unlink(s0);
    rmdir(dir);
}
END_TEST

/* Socket activation's listening sockets move too. */
START_TEST(test_upgrade_activation)
{
    g_autofree char *dir = g_dir_make_tmp("iovd-upact-XXXXXX", NULL);
    g_autofree char *s0 = g_build_filename(dir, "a.sock", NULL);
    g_autofree char *qmp = g_build_filename(dir, "qmp.sock", NULL);
    g_autofree char *qarg = g_strdup_printf("unix:%s,server=on,wait=off",
                                            qmp);
    const char *args[] = { "-device", "pci-testdev,id=t0", "-qmp", qarg,
                           NULL };
    Launch l = { .fds = { unix_listen(s0), -1, -1, -1 }, .listen_fds = true,
                 .listen_fdnames = "t0" };
    g_autoptr(IovdProc) next = NULL;
    pid_t pid = launch(&l, args);

    close(l.fds[0]);
    assert_testdev_serves(s0);
    next = upgrade_pid(pid, qmp);
    assert_testdev_serves(s0);
    iovd_proc_stop(next);
    unlink(s0);
    rmdir(dir);
}
END_TEST

START_TEST(test_socket_activation)
{
    g_autofree char *dir = g_dir_make_tmp("iovd-act-XXXXXX", NULL);
    g_autofree char *s0 = g_build_filename(dir, "a.sock", NULL);
    g_autofree char *s1 = g_build_filename(dir, "b.sock", NULL);
    int f0 = unix_listen(s0), f1 = unix_listen(s1);
    /* Names pick the device: fd 3 ("t1") goes to t1, fd 4 to t0. */
    const char *args[] = { "-device", "pci-testdev,id=t0",
                           "-device", "pci-testdev,id=t1", NULL };
    Launch l = { .fds = { f0, f1, -1, -1 }, .listen_fds = true,
                 .listen_fdnames = "t1:unknown" };
    pid_t pid = launch(&l, args);

    close(f0);
    close(f1);
    assert_testdev_serves(s0);
    assert_testdev_serves(s1);
    stop_pid(pid);
    unlink(s0);
    unlink(s1);
    rmdir(dir);
}
END_TEST

START_TEST(test_ready_fd_means_listening)
{
    /* iovd_proc_start waits on -ready-fd; then every socket must answer. */
    g_autoptr(IovdProc) p = iovd_proc_new();
    g_autofree char *s[4];

    for (int i = 0; i < 4; i++) {
        s[i] = g_strdup_printf("%s/t%d.sock", iovd_proc_tmpdir(p), i);
        iovd_proc_add_argf(p, "-device");
        iovd_proc_add_argf(p, "pci-testdev,id=t%d,socket=%s", i, s[i]);
    }
    iovd_proc_start(p);
    for (int i = 0; i < 4; i++) {
        assert_testdev_serves(s[i]);
        g_free(s[i]);
        s[i] = NULL;
    }
    iovd_proc_stop(p);
}
END_TEST

/* A field of /proc/PID/status, as text (g_free it). */
static char *proc_status(pid_t pid, const char *field)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/status", pid);
    g_autofree char *text = NULL;
    g_autofree char *key = g_strdup_printf("\n%s:", field);
    const char *p;

    ck_assert(g_file_get_contents(path, &text, NULL, NULL));
    p = strstr(text, key);
    ck_assert_msg(p, "no %s in %s", field, path);
    p += strlen(key);
    return g_strstrip(g_strndup(p, strcspn(p, "\n")));
}

START_TEST(test_sandbox)
{
    static const char *const modes[][2] = {
        { "off", "0" }, { "log", "2" }, { "on", "2" },
    };
    g_autoptr(IovdProc) p = iovd_proc_start_testdev(NULL);
    g_autofree char *sock = iovd_proc_path(p, "t0.sock");
    g_autofree char *mode = proc_status(iovd_proc_pid(p), "Seccomp");
    g_autofree char *nnp = proc_status(iovd_proc_pid(p), "NoNewPrivs");
    g_autofree char *err = NULL;

    /* on by default, and the device still serves */
    ck_assert_str_eq(mode, "2");
    ck_assert_str_eq(nnp, "1");
    assert_testdev_serves(sock);
    iovd_proc_stop(p);

    for (size_t i = 0; i < G_N_ELEMENTS(modes); i++) {
        g_autoptr(IovdProc) q = iovd_proc_new();
        g_autofree char *got = NULL;

        iovd_proc_add_args(q, "-sandbox", modes[i][0], "-device", NULL);
        iovd_proc_add_argf(q, "pci-testdev,id=t0,socket=%s/t0.sock",
                           iovd_proc_tmpdir(q));
        iovd_proc_start(q);
        got = proc_status(iovd_proc_pid(q), "Seccomp");
        ck_assert_msg(!strcmp(got, modes[i][1]), "-sandbox %s: Seccomp %s",
                      modes[i][0], got);
        iovd_proc_stop(q);
    }

    ck_assert_int_eq(iovd_run(&err, "-sandbox", "maybe", NULL), 1);
    ck_assert_msg(strstr(err, "-sandbox maybe"), "%s", err);
}
END_TEST

START_TEST(test_run_with_user)
{
    g_autoptr(IovdProc) p = NULL;
    g_autofree char *sock = NULL;
    g_autofree char *uids = NULL;
    g_autofree char *gids = NULL;
    g_autofree char *groups = NULL;
    g_autofree char *err = NULL;

    ck_assert_int_eq(iovd_run(&err, "-run-with", "user=no-such-user-iovd",
                              NULL), 1);
    ck_assert_msg(strstr(err, "not found"), "%s", err);
    if (geteuid() != 0) {
        printf("SKIP: test_run_with_user: not root, nothing to drop\n");
        return;
    }
    p = iovd_proc_new();
    sock = iovd_proc_path(p, "t0.sock");
    iovd_proc_add_args(p, "-run-with", "user=65534:65534", "-device", NULL);
    iovd_proc_add_argf(p, "pci-testdev,id=t0,socket=%s", sock);
    iovd_proc_start(p);
    uids = proc_status(iovd_proc_pid(p), "Uid");
    gids = proc_status(iovd_proc_pid(p), "Gid");
    groups = proc_status(iovd_proc_pid(p), "Groups");
    ck_assert_str_eq(uids, "65534\t65534\t65534\t65534");
    ck_assert_str_eq(gids, "65534\t65534\t65534\t65534");
    ck_assert_str_eq(groups, "65534");
    /* the socket bound as root still serves, and clients come and go */
    assert_testdev_serves(sock);
    assert_testdev_serves(sock);
    iovd_proc_stop(p);
}
END_TEST

static Suite *daemon_suite(void)
{
    Suite *s = suite_create("daemon");
    TCase *tc = tcase_create("cli");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_unknown_property);
    tcase_add_test(tc, test_bad_options);
    tcase_add_test(tc, test_help_version);
    tcase_add_test(tc, test_help_forms);
    tcase_add_test(tc, test_config_warnings);
    tcase_add_test(tc, test_sigterm_cleanup);
    tcase_add_test(tc, test_pidfile_locked);
    tcase_add_test(tc, test_stale_and_busy_socket);
    tcase_add_test(tc, test_not_a_socket);
    tcase_add_test(tc, test_notify_socket);
    tcase_add_test(tc, test_sighup_cleanup);
    tcase_add_test(tc, test_inherited_listening_fd);
    tcase_add_test(tc, test_inherited_connected_fd);
    tcase_add_test(tc, test_socket_activation);
    tcase_add_test(tc, test_upgrade_inherited_fds);
    tcase_add_test(tc, test_upgrade_activation);
    tcase_add_test(tc, test_ready_fd_means_listening);
    tcase_add_test(tc, test_sandbox);
    tcase_add_test(tc, test_run_with_user);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return qos_check_run(daemon_suite());
}
