/*
 * Socket helpers with one rule each: UNIX listening sockets (a socket path
 * that exists already, a register of the paths this process listens on)
 * and what counts as a loopback address.
 */
#ifndef UTIL_SOCKETS_H
#define UTIL_SOCKETS_H

#include "util/osdep.h"

#include <sys/socket.h>

/*
 * Bind and listen on @path (mode 0600, non-blocking, close-on-exec) and
 * register it under @owner, the name errors give its user ("device
 * 'nvme0'", "the monitor").  A path that exists already is
 * - refused naming its owner when this process listens on it: found in
 *   the register, never by connecting (a connect to our own listener
 *   would wait on ourselves once its backlog is full);
 * - refused when another process listens on it (a non-blocking connect
 *   is accepted or finds the backlog full);
 * - replaced when it is a socket nobody listens on (left by a crash);
 * - refused when it is not a socket.
 * Returns the listening fd, or -1 with @errp set.
 */
int unix_listen(const char *path, int backlog, const char *owner,
                GError **errp);

/*
 * Close @fd; when it came from unix_listen(), also remove its path unless
 * the path is no longer our socket (removed or replaced meanwhile).
 */
void unix_listen_close(int fd);

/*
 * sendmsg() of @len bytes with @nfds file descriptors (SCM_RIGHTS, at
 * most UNIX_MAX_SEND_FDS) going with the first byte; @flags as sendmsg's
 * (MSG_NOSIGNAL is added).  Retries EINTR; bytes sent, or -errno.
 */
#define UNIX_MAX_SEND_FDS 253
ssize_t unix_send_fds(int sock, const void *buf, size_t len, const int *fds,
                      unsigned nfds, int flags);

/*
 * Live upgrade.  The new process adopts the old one's listening fds:
 * unix_listen() on an adopted path returns its fd instead of binding.
 * The old process, once it handed them over, removes no path on close.
 */
void unix_listen_adopt(const char *path, int fd);
unsigned unix_listen_adopted_unused(void);
void unix_listen_foreach(void (*fn)(const char *path, int fd, void *opaque),
                         void *opaque);
void unix_listen_handed_over(void);

/*
 * True for an IPv4 address in 127.0.0.0/8, ::1, or an IPv4-mapped IPv6
 * address in 127.0.0.0/8: what listens only for this host.
 */
bool inet_is_loopback(const struct sockaddr *sa);

#endif
