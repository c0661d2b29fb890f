/*
 * libqos common helpers: failure reporting, deadlines and eventfds.
 */
#include "util/osdep.h"

#include <limits.h>
#include <sched.h>
#include <poll.h>
#include <stdarg.h>
#include <sys/eventfd.h>
#include <time.h>

#include "tests/qtest/libqos/qos-util.h"

static QosFailHandler fail_handler;

void qos_set_fail_handler(QosFailHandler fn)
{
    fail_handler = fn;
}

void qos_fail_at(const char *file, int line, const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);

    if (fail_handler) {
        fail_handler(file, line, msg);
    }
    /* No handler, or one that returned: end the process. */
    fprintf(stderr, "%s:%d: libqos failure: %s\n", file, line, msg);
    fflush(stderr);
    exit(1);
}

int64_t qos_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t qos_deadline(int timeout_ms)
{
    return qos_now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
}

int qos_remaining_ms(int64_t deadline)
{
    int64_t left = deadline - qos_now_ms();

    if (left < 0) {
        return 0;
    }
    return left > INT_MAX ? INT_MAX : (int)left;
}

short qos_poll_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        struct pollfd pfd = { .fd = fd, .events = events };
        int ret = poll(&pfd, 1, qos_remaining_ms(deadline));

        if (ret > 0) {
            return pfd.revents;
        }
        if (ret == 0) {
            return 0;
        }
        if (errno != EINTR) {
            qos_fail("poll(fd %d): %s", fd, g_strerror(errno));
        }
    }
}

int qos_eventfd_new(void)
{
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

    if (fd < 0) {
        qos_fail("eventfd: %s", g_strerror(errno));
    }
    return fd;
}

uint64_t qos_eventfd_consume(int fd)
{
    uint64_t v = 0;
    ssize_t n;

    do {
        n = read(fd, &v, sizeof(v));
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN) {
            return 0;
        }
        qos_fail("read(eventfd %d): %s", fd, g_strerror(errno));
    }
    if (n != sizeof(v)) {
        qos_fail("read(eventfd %d): short read of %zd bytes", fd, n);
    }
    return v;
}

const char *qos_errno_name(int err)
{
    static const struct {
        int err;
        const char *name;
    } names[] = {
        { 0, "0" }, { EPERM, "EPERM" }, { ENOENT, "ENOENT" },
        { EIO, "EIO" }, { E2BIG, "E2BIG" }, { EBADF, "EBADF" },
        { EAGAIN, "EAGAIN" }, { ENOMEM, "ENOMEM" }, { EACCES, "EACCES" },
        { EFAULT, "EFAULT" }, { EBUSY, "EBUSY" }, { EEXIST, "EEXIST" },
        { ENODEV, "ENODEV" }, { EINVAL, "EINVAL" }, { ENOSPC, "ENOSPC" },
        { ERANGE, "ERANGE" }, { ENOSYS, "ENOSYS" }, { ENOTSUP, "ENOTSUP" },
        { EMSGSIZE, "EMSGSIZE" }, { EPROTO, "EPROTO" },
        { ETIMEDOUT, "ETIMEDOUT" }, { ECONNRESET, "ECONNRESET" },
        { EOVERFLOW, "EOVERFLOW" }, { EBADMSG, "EBADMSG" },
    };

    static char other[4][24];
    static unsigned next;
    char *buf;

    if (err < 0) {
        err = -err;
    }
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        if (names[i].err == err) {
            return names[i].name;
        }
    }
    /* A few rotating buffers, so one message may name several. */
    buf = other[next++ % ARRAY_SIZE(other)];
    snprintf(buf, sizeof(other[0]), "errno %d", err);
    return buf;
}

bool qos_private_netns(const char *setup, const char **why)
{
    g_autofree char *cmd = NULL;

    if (geteuid() != 0) {
        *why = "needs root (CAP_NET_ADMIN)";
        return false;
    }
    if (getenv("CK_FORK") && strcmp(getenv("CK_FORK"), "no") == 0) {
        *why = "needs Check's forked test processes (CK_FORK=no)";
        return false;
    }
    if (unshare(CLONE_NEWNET) < 0) {
        *why = "unshare(CLONE_NEWNET) failed";
        return false;
    }
    cmd = g_strdup_printf("(echo 1 >/proc/sys/net/ipv6/conf/default/"
                          "disable_ipv6 || true) && ip link set lo up && %s",
                          setup);
    if (system(cmd) != 0) {
        *why = "cannot set up a tap interface with ip(8)";
        return false;
    }
    return true;
}
