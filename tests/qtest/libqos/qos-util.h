/*
 * libqos common helpers: failure reporting, deadlines and eventfds.
 *
 * The harness never hangs and never returns garbage to a test: anything
 * that goes wrong outside the test's own assertions (a timeout, a dead
 * daemon, a malformed reply) ends the test through qos_fail() with a
 * message saying what was expected and what happened.
 *
 * libqos does not link against Check (benchmarks use it too).  A test
 * program installs a handler that turns failures into Check failures; see
 * libqos/qos-check.h.  Without one, the message goes to stderr and the
 * process exits with status 1.
 */
#ifndef LIBQOS_QOS_UTIL_H
#define LIBQOS_QOS_UTIL_H

#include "util/osdep.h"

#include <inttypes.h>

/* Default time limit for anything the harness waits for. */
#define QOS_TIMEOUT_MS 5000

/* A failure handler must not return (Check's handlers do not). */
typedef void (*QosFailHandler)(const char *file, int line, const char *msg);

void qos_set_fail_handler(QosFailHandler fn);

/* Report a harness failure at @file:@line and end the test. */
void qos_fail_at(const char *file, int line, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4) G_GNUC_NORETURN;

#define qos_fail(...) qos_fail_at(__FILE__, __LINE__, __VA_ARGS__)

#define qos_assert(cond, ...)                       \
    do {                                            \
        if (!(cond)) {                              \
            qos_fail(__VA_ARGS__);                  \
        }                                           \
    } while (0)

/* Monotonic milliseconds. */
int64_t qos_now_ms(void);
/* Absolute deadline @timeout_ms from now. */
int64_t qos_deadline(int timeout_ms);
/* Milliseconds left until @deadline, clamped to [0, INT_MAX]. */
int qos_remaining_ms(int64_t deadline);

/*
 * Wait until @fd has one of @events (POLLIN ...) or @deadline passes.
 * Returns the revents, 0 on timeout.  Retries on EINTR.
 */
short qos_poll_fd(int fd, short events, int64_t deadline);

/* A non-blocking, close-on-exec eventfd (fails the test on error). */
int qos_eventfd_new(void);

/*
 * A private network namespace for this (forked) test process, with
 * loopback up and IPv6 off (the kernel then sends nothing by itself on
 * new interfaces), then the shell commands @setup (ip(8): a tap...).
 * False with *@why when that cannot be done here (not root, CK_FORK=no).
 */
bool qos_private_netns(const char *setup, const char **why);
/* Read and clear an eventfd's counter; 0 when it was not signalled. */
uint64_t qos_eventfd_consume(int fd);

/* A human-readable errno name ("EINVAL"), for messages. */
const char *qos_errno_name(int err);

#endif
