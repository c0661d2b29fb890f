/*
 * Spawn and stop an iovd daemon for one test.
 */
#include "util/osdep.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "tests/qtest/libqos/qos-util.h"
#include "tests/qtest/libqos/iovd-proc.h"

struct IovdProc {
    char *tmpdir;
    GPtrArray *args;            /* of char *, without binary and ready-fd */
    pid_t pid;                  /* 0 when not running */
    bool plain;                 /* no IOVD_TEST_IOTHREAD additions */
};

/* Daemons still running, killed at exit (a test that failed midway). */
static GSList *live_procs;
static bool exit_hook_installed;

/* Parent of the per-test directories, and the process that owns it. */
static char *base_dir;
static pid_t base_dir_owner;

const char *iovd_binary(void)
{
    const char *bin = g_getenv("IOVD_BIN");

    return bin && *bin ? bin : "build/iovd";
}

int iovd_run(char **err, const char *first, ...)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_autofree char *out = NULL;
    GError *gerr = NULL;
    va_list ap;
    int status;

    g_ptr_array_add(argv, (gpointer)iovd_binary());
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *)) {
        g_ptr_array_add(argv, (gpointer)a);
    }
    va_end(ap);
    g_ptr_array_add(argv, NULL);
    qos_assert(g_spawn_sync(NULL, (char **)argv->pdata, NULL, 0, NULL, NULL,
                            &out, err, &status, &gerr),
               "spawn: %s", gerr ? gerr->message : "?");
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);

    if (d) {
        struct dirent *de;

        while ((de = readdir(d))) {
            g_autofree char *sub = NULL;

            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) {
                continue;
            }
            sub = g_build_filename(path, de->d_name, NULL);
            if (de->d_type == DT_DIR) {
                remove_tree(sub);
            } else {
                unlink(sub);
            }
        }
        closedir(d);
    }
    rmdir(path);
}

static void kill_and_reap(IovdProc *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR) {
            /* retry */
        }
        p->pid = 0;
    }
    live_procs = g_slist_remove(live_procs, p);
}

static void iovd_proc_exit_hook(void)
{
    while (live_procs) {
        IovdProc *p = live_procs->data;

        kill_and_reap(p);
        if (p->tmpdir) {
            remove_tree(p->tmpdir);
        }
    }
}

static void base_dir_exit_hook(void)
{
    if (base_dir && getpid() == base_dir_owner) {
        remove_tree(base_dir);
    }
}

void iovd_proc_init_tmpdir(void)
{
    g_autoptr(GError) err = NULL;

    if (base_dir) {
        return;
    }
    base_dir = g_dir_make_tmp("iovd-qtest-XXXXXX", &err);
    if (!base_dir) {
        qos_fail("cannot create a temporary directory: %s", err->message);
    }
    base_dir_owner = getpid();
    atexit(base_dir_exit_hook);
}

IovdProc *iovd_proc_new(void)
{
    IovdProc *p = g_new0(IovdProc, 1);
    g_autoptr(GError) err = NULL;

    if (base_dir) {
        p->tmpdir = g_build_filename(base_dir, "t-XXXXXX", NULL);
        if (!g_mkdtemp(p->tmpdir)) {
            qos_fail("mkdtemp(%s): %s", p->tmpdir, g_strerror(errno));
        }
    } else {
        p->tmpdir = g_dir_make_tmp("iovd-qtest-XXXXXX", &err);
        if (!p->tmpdir) {
            qos_fail("cannot create a temporary directory: %s",
                     err->message);
        }
    }
    p->args = g_ptr_array_new_with_free_func(g_free);
    return p;
}

const char *iovd_proc_tmpdir(IovdProc *p)
{
    return p->tmpdir;
}

char *iovd_proc_path(IovdProc *p, const char *name)
{
    return g_build_filename(p->tmpdir, name, NULL);
}

char *iovd_proc_image(IovdProc *p, const char *name, uint64_t size)
{
    char *path = iovd_proc_path(p, name);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    qos_assert(fd >= 0 && ftruncate(fd, size) == 0, "image '%s': %s", path,
               g_strerror(errno));
    close(fd);
    return path;
}

void iovd_proc_add_argf(IovdProc *p, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    g_ptr_array_add(p->args, g_strdup_vprintf(fmt, ap));
    va_end(ap);
}

void iovd_proc_add_args(IovdProc *p, const char *first, ...)
{
    va_list ap;

    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *)) {
        g_ptr_array_add(p->args, g_strdup(a));
    }
    va_end(ap);
}

char *iovd_proc_describe_status(int status)
{
    if (WIFEXITED(status)) {
        return g_strdup_printf("exited with status %d",
                               WEXITSTATUS(status));
    }
    if (WIFSIGNALED(status)) {
        return g_strdup_printf("was killed by signal %d (%s)%s",
                               WTERMSIG(status),
                               g_strsignal(WTERMSIG(status)),
                               WCOREDUMP(status) ? ", core dumped" : "");
    }
    return g_strdup_printf("ended with wait status 0x%x", status);
}

/* Reap without blocking; true (and *status) when it has exited. */
static bool try_reap(IovdProc *p, int *status)
{
    pid_t r;

    if (p->pid <= 0) {
        return false;
    }
    do {
        r = waitpid(p->pid, status, WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == p->pid) {
        p->pid = 0;
        live_procs = g_slist_remove(live_procs, p);
        return true;
    }
    if (r < 0) {
        qos_fail("waitpid(%d): %s", p->pid, g_strerror(errno));
    }
    return false;
}

/* Wait for the exit until @deadline; true (and *status) when it exited. */
static bool reap_until(IovdProc *p, int64_t deadline, int *status)
{
    for (;;) {
        if (try_reap(p, status)) {
            return true;
        }
        if (!qos_remaining_ms(deadline)) {
            return false;
        }
        g_usleep(2000);
    }
}

/*
 * IOVD_TEST_IOTHREAD=N runs every device on an iothread (N of them, the
 * devices spread over them in turn; IOVD_TEST_POLL_MAX_NS sets their
 * busy polling): the same tests then check the iothread data path.
 */
static unsigned test_iothreads(void)
{
    const char *v = g_getenv("IOVD_TEST_IOTHREAD");

    return v && *v ? MAX(1, atoi(v)) : 0;
}

void iovd_proc_set_plain(IovdProc *p)
{
    p->plain = true;
}

static void iovd_proc_add_iothread(IovdProc *p, GPtrArray *argv)
{
    const char *poll = g_getenv("IOVD_TEST_POLL_MAX_NS");

    for (unsigned i = 0; i < test_iothreads(); i++) {
        g_ptr_array_add(argv, g_strdup("-object"));
        g_ptr_array_add(argv, g_strdup_printf("iothread,id=iot%u%s%s", i,
                                              poll ? ",poll-max-ns=" : "",
                                              poll ? poll : ""));
    }
}

/* Argument @i, with iothread= added when it is a -device's options. */
static char *iovd_proc_device_arg(IovdProc *p, unsigned i, const char *a)
{
    static unsigned next;
    const char *prev = i ? g_ptr_array_index(p->args, i - 1) : NULL;

    if (!test_iothreads() || !prev || strcmp(prev, "-device") != 0 ||
        strstr(a, "iothread=") || g_str_has_prefix(a, "nvme-ns") ||
        strstr(a, "help")) {
        return g_strdup(a);
    }
    return g_strdup_printf("%s,iothread=iot%u", a, next++ % test_iothreads());
}

/* The daemon's command line, -ready-fd @ready_fd last (NULL-ended). */
static GPtrArray *start_argv(IovdProc *p, int ready_fd)
{
    GPtrArray *argv = g_ptr_array_new_with_free_func(g_free);

    g_ptr_array_add(argv, g_strdup(iovd_binary()));
    if (!p->plain) {
        iovd_proc_add_iothread(p, argv);
    }
    for (unsigned i = 0; i < p->args->len; i++) {
        const char *a = g_ptr_array_index(p->args, i);

        g_ptr_array_add(argv, p->plain ? g_strdup(a)
                                       : iovd_proc_device_arg(p, i, a));
    }
    g_ptr_array_add(argv, g_strdup("-ready-fd"));
    g_ptr_array_add(argv, g_strdup_printf("%d", ready_fd));
    g_ptr_array_add(argv, NULL);
    return argv;
}

/* Wait for the ready byte on @fd (closed here); fail with why not. */
static void wait_ready(IovdProc *p, int fd, const char *cmdline)
{
    int64_t deadline = qos_deadline(IOVD_PROC_START_TIMEOUT_MS);
    char byte;
    ssize_t n;
    int status;

    if (!qos_poll_fd(fd, POLLIN, deadline)) {
        close(fd);
        kill_and_reap(p);
        qos_fail("iovd did not report readiness within %d ms: %s",
                 IOVD_PROC_START_TIMEOUT_MS, cmdline);
    }
    do {
        n = read(fd, &byte, 1);
    } while (n < 0 && errno == EINTR);
    if (n == 1) {
        /*
         * It also closes the pipe: wait for that, so that the daemon's fd
         * count seen from now on is its steady state.
         */
        do {
            if (!qos_poll_fd(fd, POLLIN, deadline)) {
                close(fd);
                kill_and_reap(p);
                qos_fail("iovd wrote its ready byte but did not close "
                         "-ready-fd within %d ms: %s",
                         IOVD_PROC_START_TIMEOUT_MS, cmdline);
            }
            n = read(fd, &byte, 1);
        } while (n > 0 || (n < 0 && errno == EINTR));
        close(fd);
        return;
    }
    close(fd);

    /* EOF: it exited (or closed the pipe without writing). */
    if (reap_until(p, qos_deadline(2000), &status)) {
        g_autofree char *why = iovd_proc_describe_status(status);

        if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
            qos_fail("cannot execute %s (set IOVD_BIN?): %s",
                     iovd_binary(), cmdline);
        }
        qos_fail("iovd %s before it was ready: %s", why, cmdline);
    }
    kill_and_reap(p);
    qos_fail("iovd closed its -ready-fd without writing a byte: %s",
             cmdline);
}

void iovd_proc_start(IovdProc *p)
{
    g_autoptr(GPtrArray) argv = NULL;
    g_autofree char *cmdline = NULL;
    int pipefd[2];
    pid_t parent = getpid();

    qos_assert(p->pid == 0, "iovd_proc_start: daemon already running");
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        qos_fail("pipe2: %s", g_strerror(errno));
    }
    argv = start_argv(p, pipefd[1]);
    cmdline = g_strjoinv(" ", (char **)argv->pdata);

    fflush(stdout);
    fflush(stderr);
    p->pid = fork();
    if (p->pid < 0) {
        p->pid = 0;
        qos_fail("fork: %s", g_strerror(errno));
    }
    if (p->pid == 0) {
        /* Child: only async-signal-safe calls from here to exec. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(126);
        }
        signal(SIGTERM, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        fcntl(pipefd[1], F_SETFD, 0);
        execv(argv->pdata[0], (char **)argv->pdata);
        _exit(127);
    }

    if (!exit_hook_installed) {
        atexit(iovd_proc_exit_hook);
        exit_hook_installed = true;
    }
    live_procs = g_slist_prepend(live_procs, p);
    close(pipefd[1]);
    wait_ready(p, pipefd[0], cmdline);
}

IovdProc *iovd_proc_start_testdev(const char *extra)
{
    IovdProc *p = iovd_proc_new();
    g_autofree char *sock = iovd_proc_path(p, "t0.sock");

    iovd_proc_add_args(p, "-device", NULL);
    iovd_proc_add_argf(p, "pci-testdev,id=t0,socket=%s%s", sock,
                       extra ? extra : "");
    iovd_proc_start(p);
    return p;
}

pid_t iovd_proc_pid(IovdProc *p)
{
    return p->pid;
}

bool iovd_proc_running(IovdProc *p)
{
    int status;

    return p->pid > 0 && !try_reap(p, &status);
}

void iovd_proc_assert_alive(IovdProc *p)
{
    int status;

    qos_assert(p->pid > 0, "iovd is not running");
    if (try_reap(p, &status)) {
        g_autofree char *why = iovd_proc_describe_status(status);

        qos_fail("iovd died: it %s", why);
    }
}

int iovd_proc_terminate(IovdProc *p)
{
    pid_t pid = p->pid;
    int status = 0;

    qos_assert(pid > 0, "iovd_proc_terminate: daemon not running");
    if (try_reap(p, &status)) {
        return status;  /* it had already gone */
    }
    kill(pid, SIGTERM);
    if (!reap_until(p, qos_deadline(IOVD_PROC_STOP_TIMEOUT_MS), &status)) {
        kill_and_reap(p);
        qos_fail("iovd (pid %d) did not exit within %d ms of SIGTERM",
                 pid, IOVD_PROC_STOP_TIMEOUT_MS);
    }
    return status;
}

void iovd_proc_stop(IovdProc *p)
{
    int status = iovd_proc_terminate(p);

    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        g_autofree char *why = iovd_proc_describe_status(status);

        qos_fail("iovd should exit 0 on SIGTERM, but it %s", why);
    }
}

int iovd_proc_wait_exit(IovdProc *p, int timeout_ms)
{
    pid_t pid = p->pid;
    int status = 0;

    qos_assert(pid > 0, "iovd_proc_wait_exit: daemon not running");
    if (!reap_until(p, qos_deadline(timeout_ms), &status)) {
        kill_and_reap(p);
        qos_fail("iovd (pid %d) did not exit within %d ms", pid,
                 timeout_ms);
    }
    return status;
}

void iovd_proc_kill(IovdProc *p)
{
    kill_and_reap(p);
}

unsigned iovd_proc_count_fds(IovdProc *p)
{
    g_autofree char *path = NULL;
    struct dirent *de;
    unsigned count = 0;
    DIR *d;

    iovd_proc_assert_alive(p);
    path = g_strdup_printf("/proc/%d/fd", p->pid);
    d = opendir(path);
    if (!d) {
        qos_fail("opendir(%s): %s", path, g_strerror(errno));
    }
    while ((de = readdir(d))) {
        if (de->d_name[0] != '.') {
            count++;
        }
    }
    closedir(d);
    return count;
}

unsigned iovd_proc_wait_fds_at_most(IovdProc *p, unsigned max,
                                    int timeout_ms)
{
    int64_t deadline = qos_deadline(timeout_ms);
    unsigned n;

    for (;;) {
        n = iovd_proc_count_fds(p);
        if (n <= max || !qos_remaining_ms(deadline)) {
            return n;
        }
        g_usleep(5000);
    }
}

void iovd_proc_free(IovdProc *p)
{
    if (!p) {
        return;
    }
    kill_and_reap(p);
    if (p->tmpdir) {
        remove_tree(p->tmpdir);
        g_free(p->tmpdir);
    }
    g_ptr_array_unref(p->args);
    g_free(p);
}
