/*
 * -run-with user=U and the seccomp allow-list (-sandbox on|off).
 *
 * The allow-list covers what iovd does after start-up: serving vfio-user
 * clients (sockets, fd passing, mmap of guest memory, eventfds), the
 * backends (files through io_uring or libaio, tap, libslirp's sockets),
 * the monitor with device_add / blockdev-add / object-add (new sockets,
 * files, threads) and GLib's and glibc's own needs.  It leaves out what
 * a daemon that only emulates devices never does: exec, fork (clone
 * without CLONE_THREAD), ptrace, mount and namespaces, module loading,
 * bpf, keyrings, changing credentials, reading other processes' memory,
 * setting the clock.  Sockets are limited to the UNIX, IPv4, IPv6 and
 * netlink families (glibc's resolver asks netlink for addresses), and
 * ioctl to the requests the backends and the C library use.
 *
 * A forbidden system call raises SIGSYS: the process says which call and
 * dies (a confined daemon that tried one is compromised or has a bug:
 * either way it must not go on); so does an ioctl request or a socket
 * family outside those lists.  clone3 fails with ENOSYS, so that glibc
 * creates threads with clone, whose flags the filter can check.
 */
#include "util/osdep.h"
#include "util/error.h"
#include "util/sandbox.h"

#include <grp.h>
#include <linux/if_tun.h>
#include <linux/fs.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <termios.h>

static SandboxMode sandbox_mode = SANDBOX_ON;
static bool run_as_set;
static uid_t run_as_uid;
static gid_t run_as_gid;
static char *run_as_name;       /* for initgroups; NULL for UID:GID */

void sandbox_set_mode(SandboxMode mode)
{
    sandbox_mode = mode;
}

bool sandbox_set_run_as(const char *user, GError **errp)
{
    unsigned long uid, gid;
    char *end;
    struct passwd *pw;

    g_clear_pointer(&run_as_name, g_free);
    uid = strtoul(user, &end, 10);
    if (end != user && *end == ':' && g_ascii_isdigit(end[1])) {
        const char *g = end + 1;

        gid = strtoul(g, &end, 10);
        if (*end || uid > UINT32_MAX - 1 || gid > UINT32_MAX - 1) {
            error_setg(errp, "user '%s': expected NAME or UID:GID", user);
            return false;
        }
        run_as_uid = uid;
        run_as_gid = gid;
    } else {
        errno = 0;
        pw = getpwnam(user);
        if (!pw) {
            error_setg(errp, "user '%s' not found%s%s", user,
                       errno ? ": " : "", errno ? g_strerror(errno) : "");
            return false;
        }
        run_as_uid = pw->pw_uid;
        run_as_gid = pw->pw_gid;
        run_as_name = g_strdup(user);
    }
    if (run_as_uid == 0) {
        error_setg(errp, "user '%s' is root: nothing to drop", user);
        return false;
    }
    run_as_set = true;
    return true;
}

static bool drop_privileges(GError **errp)
{
    if (run_as_name ? initgroups(run_as_name, run_as_gid) < 0
                    : setgroups(1, &run_as_gid) < 0) {
        error_setg_errno(errp, errno, "-run-with: cannot set groups");
        return false;
    }
    /* glibc applies set*id to every thread of the process. */
    if (setresgid(run_as_gid, run_as_gid, run_as_gid) < 0 ||
        setresuid(run_as_uid, run_as_uid, run_as_uid) < 0) {
        error_setg_errno(errp, errno, "-run-with: cannot switch to uid %u",
                         (unsigned)run_as_uid);
        return false;
    }
    if (setuid(0) == 0) {
        error_setg(errp, "-run-with: root could be regained after the drop");
        return false;
    }
    return true;
}

/* ---- the filter ---- */

static const int allowed_syscalls[] = {
    /* files and fds */
    SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
    SCMP_SYS(pread64), SCMP_SYS(pwrite64), SCMP_SYS(preadv),
    SCMP_SYS(pwritev), SCMP_SYS(preadv2), SCMP_SYS(pwritev2),
    SCMP_SYS(open), SCMP_SYS(openat), SCMP_SYS(close), SCMP_SYS(close_range),
    SCMP_SYS(lseek), SCMP_SYS(fstat), SCMP_SYS(stat), SCMP_SYS(lstat),
    SCMP_SYS(newfstatat), SCMP_SYS(statx), SCMP_SYS(fstatfs),
    SCMP_SYS(statfs), SCMP_SYS(access), SCMP_SYS(faccessat),
    SCMP_SYS(faccessat2), SCMP_SYS(readlink), SCMP_SYS(readlinkat),
    SCMP_SYS(getcwd), SCMP_SYS(getdents), SCMP_SYS(getdents64),
    SCMP_SYS(unlink), SCMP_SYS(unlinkat), SCMP_SYS(rename), SCMP_SYS(renameat),
    SCMP_SYS(renameat2), SCMP_SYS(fchmod), SCMP_SYS(chmod),
    SCMP_SYS(fchmodat), SCMP_SYS(umask), SCMP_SYS(fcntl), SCMP_SYS(dup),
    SCMP_SYS(dup2), SCMP_SYS(dup3), SCMP_SYS(pipe), SCMP_SYS(pipe2),
    SCMP_SYS(ftruncate), SCMP_SYS(fallocate), SCMP_SYS(fsync),
    SCMP_SYS(fdatasync), SCMP_SYS(sync_file_range), SCMP_SYS(fadvise64),
    SCMP_SYS(flock), SCMP_SYS(memfd_create), SCMP_SYS(copy_file_range),
    /* memory */
    SCMP_SYS(brk), SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mremap),
    SCMP_SYS(mprotect), SCMP_SYS(madvise), SCMP_SYS(mincore),
    SCMP_SYS(mlock), SCMP_SYS(munlock), SCMP_SYS(membarrier),
    /* threads, time, signals */
    SCMP_SYS(futex), SCMP_SYS(set_robust_list), SCMP_SYS(get_robust_list),
    SCMP_SYS(rseq), SCMP_SYS(set_tid_address), SCMP_SYS(sched_yield),
    SCMP_SYS(sched_getaffinity), SCMP_SYS(sched_setaffinity),
    SCMP_SYS(sched_getparam), SCMP_SYS(sched_getscheduler),
    SCMP_SYS(getpriority), SCMP_SYS(setpriority), SCMP_SYS(nanosleep),
    SCMP_SYS(clock_nanosleep), SCMP_SYS(clock_gettime),
    SCMP_SYS(clock_getres), SCMP_SYS(gettimeofday), SCMP_SYS(time),
    SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(getpid),
    SCMP_SYS(getppid), SCMP_SYS(gettid), SCMP_SYS(tgkill),
    SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigtimedwait),
    SCMP_SYS(sigaltstack), SCMP_SYS(getrandom), SCMP_SYS(getuid),
    SCMP_SYS(geteuid), SCMP_SYS(getgid), SCMP_SYS(getegid),
    SCMP_SYS(getresuid), SCMP_SYS(getresgid), SCMP_SYS(getgroups),
    SCMP_SYS(getrlimit), SCMP_SYS(prlimit64), SCMP_SYS(getrusage),
    SCMP_SYS(uname), SCMP_SYS(sysinfo),
    /* event loops */
    SCMP_SYS(epoll_create), SCMP_SYS(epoll_create1), SCMP_SYS(epoll_ctl),
    SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_pwait2),
    SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(select), SCMP_SYS(pselect6),
    /*
     * How the kernel resumes a timed wait (poll, nanosleep, futex) that
     * a stop signal or a debugger interrupted: SIGSTOP/SIGCONT while
     * libnbd waited in poll() killed the daemon with SIGSYS.
     */
    SCMP_SYS(restart_syscall),
    SCMP_SYS(eventfd), SCMP_SYS(eventfd2), SCMP_SYS(timerfd_create),
    SCMP_SYS(timerfd_settime), SCMP_SYS(timerfd_gettime),
    SCMP_SYS(signalfd), SCMP_SYS(signalfd4),
    /* sockets (socket() itself is checked below) */
    SCMP_SYS(socketpair), SCMP_SYS(bind), SCMP_SYS(listen),
    SCMP_SYS(accept), SCMP_SYS(accept4), SCMP_SYS(connect),
    SCMP_SYS(getsockname), SCMP_SYS(getpeername), SCMP_SYS(setsockopt),
    SCMP_SYS(getsockopt), SCMP_SYS(sendmsg), SCMP_SYS(recvmsg),
    SCMP_SYS(sendmmsg), SCMP_SYS(recvmmsg), SCMP_SYS(sendto),
    SCMP_SYS(recvfrom), SCMP_SYS(shutdown),
    /* asynchronous I/O */
    SCMP_SYS(io_uring_setup), SCMP_SYS(io_uring_enter),
    SCMP_SYS(io_uring_register), SCMP_SYS(io_setup), SCMP_SYS(io_destroy),
    SCMP_SYS(io_submit), SCMP_SYS(io_getevents), SCMP_SYS(io_pgetevents),
    SCMP_SYS(io_cancel),
#ifdef CONFIG_SANITIZERS
    /*
     * LeakSanitizer stops the world at exit with a tracer task (clone
     * without CLONE_THREAD, below) that ptraces every thread.
     */
    SCMP_SYS(ptrace), SCMP_SYS(wait4), SCMP_SYS(prctl), SCMP_SYS(kill),
#endif
};

/* Allowed when argument @arg compares to @a (MASKED_EQ: & @a == @b). */
typedef struct ArgRule {
    int nr;
    unsigned arg;
    enum scmp_compare op;
    scmp_datum_t a, b;
} ArgRule;

static const ArgRule arg_rules[] = {
    /* sockets of these families only */
    { SCMP_SYS(socket), 0, SCMP_CMP_EQ, AF_UNIX },
    { SCMP_SYS(socket), 0, SCMP_CMP_EQ, AF_INET },
    { SCMP_SYS(socket), 0, SCMP_CMP_EQ, AF_INET6 },
    { SCMP_SYS(socket), 0, SCMP_CMP_EQ, AF_NETLINK },
    /* threads only: clone must share the address space as a thread */
    { SCMP_SYS(clone), 0, SCMP_CMP_MASKED_EQ, CLONE_THREAD | CLONE_VM,
      CLONE_THREAD | CLONE_VM },
#ifdef CONFIG_SANITIZERS
    { SCMP_SYS(clone), 0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0 },
#else
    /* thread names (GLib, glibc) */
    { SCMP_SYS(prctl), 0, SCMP_CMP_EQ, PR_SET_NAME },
    { SCMP_SYS(prctl), 0, SCMP_CMP_EQ, PR_GET_NAME },
#endif
};

static const unsigned long allowed_ioctls[] = {
    TCGETS, TIOCGWINSZ, FIONREAD, FIONBIO, FIOCLEX, FIONCLEX,
    BLKGETSIZE64, BLKSSZGET, BLKPBSZGET, BLKIOMIN, BLKIOOPT, BLKROGET,
    BLKDISCARD, BLKZEROOUT,
    TUNSETIFF, TUNGETIFF, TUNGETFEATURES, TUNSETOFFLOAD, TUNSETVNETHDRSZ,
    TUNGETVNETHDRSZ, TUNSETSNDBUF,
};

/* Async-signal-safe: says which call and dies of SIGSYS. */
static void sigsys_handler(int sig, siginfo_t *si, void *uc)
{
    char msg[128] = "iovd: sandbox: forbidden system call ";
    char num[16];
    int n = si->si_syscall, len = 0, pos = strlen(msg);
    static const char tail[] = " (see scmp_sys_resolver; -sandbox off "
                               "disables the sandbox)\n";

    do {
        num[len++] = '0' + n % 10;
        n /= 10;
    } while (n && len < (int)sizeof(num));
    while (len) {
        msg[pos++] = num[--len];
    }
    if (write(STDERR_FILENO, msg, pos) < 0 ||
        write(STDERR_FILENO, tail, sizeof(tail) - 1) < 0) {
        /* nothing more to say */
    }
    raise(SIGSYS);      /* SA_RESETHAND: the default action, a core dump */
}

static int add_rules(scmp_filter_ctx ctx)
{
    int r = 0;

    for (size_t i = 0; i < ARRAY_SIZE(allowed_syscalls) && r >= 0; i++) {
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed_syscalls[i], 0);
    }
    for (size_t i = 0; i < ARRAY_SIZE(arg_rules) && r >= 0; i++) {
        const ArgRule *a = &arg_rules[i];
        struct scmp_arg_cmp cmp = {
            .arg = a->arg, .op = a->op, .datum_a = a->a, .datum_b = a->b,
        };

        r = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, a->nr, 1, &cmp);
    }
    for (size_t i = 0; i < ARRAY_SIZE(allowed_ioctls) && r >= 0; i++) {
        /* the kernel reads the request as 32 bits */
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                             SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu,
                                     allowed_ioctls[i] & 0xffffffffu));
    }
    if (r >= 0) {
        /* glibc falls back to clone, whose flags the rules above check */
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    }
    return r;
}

static bool install_filter(GError **errp)
{
    struct sigaction sa = {
        .sa_sigaction = sigsys_handler,
        .sa_flags = SA_SIGINFO | SA_RESETHAND | SA_NODEFER,
    };
    scmp_filter_ctx ctx;
    int r;

    ctx = seccomp_init(sandbox_mode == SANDBOX_LOG ? SCMP_ACT_LOG
                                                   : SCMP_ACT_TRAP);
    if (!ctx) {
        error_setg(errp, "-sandbox: seccomp_init failed");
        return false;
    }
    r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    if (r >= 0) {
        r = add_rules(ctx);
    }
    if (r >= 0) {
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSYS, &sa, NULL);
        r = seccomp_load(ctx);
    }
    seccomp_release(ctx);
    if (r < 0) {
        error_setg_errno(errp, -r, "-sandbox: cannot install the seccomp "
                         "filter (-sandbox off runs without it)");
        return false;
    }
    return true;
}

bool sandbox_confine(GError **errp)
{
    if (run_as_set && !drop_privileges(errp)) {
        return false;
    }
    return sandbox_mode == SANDBOX_OFF || install_filter(errp);
}
