/*
 * vfio-user transport: the listening socket, one client at a time,
 * message framing with SCM_RIGHTS, and a transmit queue.
 */
#include "hw/vfio-user/vfio-user-int.h"
#include "hw/vfio-user/trace.h"
#include "util/error.h"
#include "util/keyval.h"
#include "util/log.h"
#include "util/loop.h"
#include "qapi/events.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

static const char *sid(VfuServer *s)
{
    return s->pdev->dev.id;
}

/* VFU_CLIENT_CONNECTED / VFU_CLIENT_HANGUP for the monitor. */
static void vfu_client_event(VfuServer *s, const char *name,
                             const char *reason)
{
    json_object *data = json_object_new_object();

    json_object_object_add(data, "device", json_object_new_string(sid(s)));
    if (s->path) {
        json_object_object_add(data, "socket",
                               json_object_new_string(s->path));
    }
    if (reason) {
        json_object_object_add(data, "reason",
                               json_object_new_string(reason));
    }
    qapi_event_send(name, data);
}

static void vfu_accept(void *opaque);
static void vfu_client_gone(VfuServer *s, const char *why);
static void vfu_client_readable(void *opaque);
static void vfu_client_writable(void *opaque);

/* ---- listening ---- */

static bool socket_path_in_use(const char *path, GError **errp)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct stat st;
    int fd, r;

    if (lstat(path, &st) < 0) {
        return false;
    }
    if (!S_ISSOCK(st.st_mode)) {
        error_setg(errp, "socket path '%s' exists and is not a socket",
                   path);
        return true;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "socket");
        return true;
    }
    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    close(fd);
    if (r == 0) {
        error_setg(errp, "socket path '%s' is in use by a running server",
                   path);
        return true;
    }
    /* Stale: nobody listens.  Replace it. */
    unlink(path);
    return false;
}

static int sock_is_listening(int fd)
{
    int v = 0;
    socklen_t len = sizeof(v);

    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) < 0) {
        return -errno;
    }
    return v;
}

static bool vfu_adopt_fd(VfuServer *s, int fd, GError **errp)
{
    int domain = 0;
    socklen_t len = sizeof(domain);
    int listening;

    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 ||
        domain != AF_UNIX) {
        error_setg(errp, "fd %d is not a UNIX socket", fd);
        return false;
    }
    listening = sock_is_listening(fd);
    if (listening < 0) {
        error_setg_errno(errp, -listening, "fd %d", fd);
        return false;
    }
    g_unix_set_fd_nonblocking(fd, true, NULL);
    if (listening) {
        s->listen_fd = fd;
        loop_set_fd(s->loop, fd, vfu_accept, NULL, s);
    } else {
        s->single_client = true;
        vfu_client_attach(s, fd);
    }
    return true;
}

bool vfu_socket_listen(VfuServer *s, GError **errp)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    PCIDevice *pdev = s->pdev;
    mode_t old_umask;
    int fd;

    if (pdev->fd) {
        uint64_t n;

        if (!parse_uint(pdev->fd, &n, errp) || n > INT32_MAX ||
            fcntl(n, F_GETFD) < 0) {
            g_clear_error(errp);
            error_setg(errp, "property 'fd': '%s' is not an open fd",
                       pdev->fd);
            return false;
        }
        fcntl(n, F_SETFD, FD_CLOEXEC);
        return vfu_adopt_fd(s, n, errp);
    }
    if (!pdev->socket) {
        fd = vfu_activation_take(sid(s));
        if (fd >= 0) {
            return vfu_adopt_fd(s, fd, errp);
        }
        error_setg(errp, "property 'socket' is required (or 'fd', or socket "
                   "activation)");
        return false;
    }
    if (strlen(pdev->socket) >= sizeof(sa.sun_path)) {
        error_setg(errp, "property 'socket': path longer than %zu bytes",
                   sizeof(sa.sun_path) - 1);
        return false;
    }
    if (socket_path_in_use(pdev->socket, errp)) {
        return false;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "socket");
        return false;
    }
    g_strlcpy(sa.sun_path, pdev->socket, sizeof(sa.sun_path));
    old_umask = umask(0177);                    /* socket mode 0600 */
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        umask(old_umask);
        error_setg_errno(errp, errno, "bind '%s'", pdev->socket);
        close(fd);
        return false;
    }
    umask(old_umask);
    if (listen(fd, 4) < 0) {
        error_setg_errno(errp, errno, "listen '%s'", pdev->socket);
        unlink(pdev->socket);
        close(fd);
        return false;
    }
    s->path = g_strdup(pdev->socket);
    s->listen_fd = fd;
    loop_set_fd(s->loop, fd, vfu_accept, NULL, s);
    trace_vfu_listen(sid(s), s->path);
    return true;
}

void vfu_socket_close(VfuServer *s)
{
    if (s->listen_fd >= 0) {
        loop_set_fd(s->loop, s->listen_fd, NULL, NULL, NULL);
        close(s->listen_fd);
        s->listen_fd = -1;
    }
    if (s->path) {
        unlink(s->path);
        g_clear_pointer(&s->path, g_free);
    }
}

static void vfu_accept(void *opaque)
{
    VfuServer *s = opaque;
    int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

    if (fd < 0) {
        return;
    }
    if (s->client_fd >= 0) {
        /*
         * A restarting VMM reconnects at once: if the old client has hung
         * up and we have not read its EOF yet, finish it off first.
         */
        struct pollfd pfd = { .fd = s->client_fd, .events = POLLRDHUP };

        if (poll(&pfd, 1, 0) == 1 &&
            (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
            vfu_client_gone(s, "connection closed");
        }
    }
    if (s->client_fd >= 0 || s->next_client_fd >= 0) {
        /* One client at a time: the second one sees EOF at once. */
        trace_vfu_client_refused(sid(s));
        iovd_warn("%s: refusing a second vfio-user client", sid(s));
        close(fd);
        return;
    }
    if (s->client_resetting) {
        /* The device still resets for the last one: this one waits. */
        s->next_client_fd = fd;
        loop_set_fd(s->loop, s->listen_fd, NULL, NULL, NULL);
        return;
    }
    vfu_client_attach(s, fd);
}

/* ---- client lifecycle ---- */

void vfu_client_attach(VfuServer *s, int fd)
{
    s->client_fd = fd;
    s->negotiated = false;
    s->rx_len = 0;
    s->rx_discard = 0;
    s->rx_nfds = 0;
    s->next_msg_id = 0;
    s->nr_clients++;
    loop_set_fd(s->loop, fd, vfu_client_readable, NULL, s);
    trace_vfu_client_connected(sid(s), fd);
    vfu_client_event(s, "VFU_CLIENT_CONNECTED", NULL);
}

void vfu_msg_free(VfuMsg *m)
{
    if (!m) {
        return;
    }
    for (unsigned i = 0; i < m->nfds; i++) {
        if (m->fds[i] >= 0) {
            close(m->fds[i]);
        }
    }
    g_free(m->payload);
    g_free(m);
}

static void tx_buf_free(VfuTxBuf *b)
{
    if (b->fd >= 0) {
        close(b->fd);
    }
    g_free(b->data);
    g_free(b);
}

/* Forget the connection: fd, framing state, queues. */
static void vfu_client_drop_socket(VfuServer *s)
{
    loop_set_fd(s->loop, s->client_fd, NULL, NULL, NULL);
    close(s->client_fd);
    s->client_fd = -1;
    for (unsigned i = 0; i < s->rx_nfds; i++) {
        close(s->rx_fds[i]);
    }
    s->rx_nfds = 0;
    s->rx_len = 0;
    s->rx_discard = 0;
    s->rx_fds_truncated = false;
    g_queue_clear_full(&s->tx, (GDestroyNotify)tx_buf_free);
    s->tx_bytes = 0;
    g_queue_clear_full(&s->deferred, (GDestroyNotify)vfu_msg_free);
    g_clear_pointer(&s->pending_unmap, vfu_msg_free);
    g_clear_pointer(&s->client_caps_json, g_free);
    s->negotiated = false;
    s->write_multiple = false;
}

/* What the client gave us goes: mappings, interrupt fds. */
static void vfu_client_forget(VfuServer *s)
{
    vfu_dma_unmap_all(s);
    vfu_irq_release(s);
}

void vfu_client_close(VfuServer *s)
{
    if (s->client_fd >= 0) {
        vfu_client_drop_socket(s);
    }
    if (s->next_client_fd >= 0) {
        close(s->next_client_fd);
        s->next_client_fd = -1;
    }
    vfu_dma_xfers_fail(s, ECONNRESET);
    vfu_client_forget(s);
}

/*
 * The device reset after its client left: now nothing points into the
 * client's memory, so the mappings go; then the next client may come.
 */
static void vfu_client_reset_done(Device *dev, void *opaque)
{
    VfuServer *s = opaque;

    s->client_resetting = false;
    vfu_client_forget(s);
    if (s->next_client_fd >= 0) {
        int fd = s->next_client_fd;

        s->next_client_fd = -1;
        vfu_client_attach(s, fd);
    }
    if (s->listen_fd >= 0 && s->client_fd < 0) {
        loop_set_fd(s->loop, s->listen_fd, vfu_accept, NULL, s);
    }
}

static void vfu_client_gone(VfuServer *s, const char *why)
{
    trace_vfu_client_gone(sid(s), why);
    vfu_client_drop_socket(s);
    /* Copies in flight will get no reply: their work items go on. */
    vfu_dma_xfers_fail(s, ECONNRESET);
    vfu_client_event(s, "VFU_CLIENT_HANGUP", why);
    if (s->single_client) {
        iovd_log("%s: inherited client disconnected; device idle", sid(s));
    }
    /*
     * The device resets first: requests in flight still point into the
     * client's memory.  No client is accepted until that is done.
     */
    s->client_resetting = true;
    if (s->listen_fd >= 0) {
        loop_set_fd(s->loop, s->listen_fd, vfu_accept, NULL, s);
    }
    device_reset(&s->pdev->dev, DEVICE_RESET_FUNCTION,
                 vfu_client_reset_done, s);
}

/* ---- transmit ---- */

static ssize_t send_with_fd(int sock, const void *data, size_t len, int fd)
{
    struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    ssize_t n;

    if (fd >= 0) {
        struct cmsghdr *c;

        memset(&u, 0, sizeof(u));
        mh.msg_control = u.buf;
        mh.msg_controllen = sizeof(u.buf);
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    do {
        n = sendmsg(sock, &mh, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

static void tx_update_handlers(VfuServer *s)
{
    bool want_read = s->tx_bytes < VFU_TX_BACKLOG_MAX &&
                     g_queue_get_length(&s->deferred) < VFU_DEFERRED_MAX;

    /* Paused with nothing to send: a hangup is noticed on resume. */
    loop_set_fd(s->loop, s->client_fd, want_read ? vfu_client_readable : NULL,
                        g_queue_is_empty(&s->tx) ? NULL : vfu_client_writable,
                        s);
}

/* Write out queued data; -errno on a broken socket. */
static int tx_flush(VfuServer *s)
{
    while (!g_queue_is_empty(&s->tx)) {
        VfuTxBuf *b = g_queue_peek_head(&s->tx);
        ssize_t n = send_with_fd(s->client_fd, b->data + b->off,
                                 b->len - b->off, b->fd);

        if (n == -EAGAIN) {
            return 0;
        }
        if (n < 0) {
            return n;
        }
        if (b->fd >= 0) {
            close(b->fd);
            b->fd = -1;
        }
        b->off += n;
        s->tx_bytes -= n;
        if (b->off == b->len) {
            tx_buf_free(g_queue_pop_head(&s->tx));
        }
    }
    return 0;
}

static void vfu_client_writable(void *opaque)
{
    VfuServer *s = opaque;

    if (tx_flush(s) < 0) {
        vfu_client_gone(s, "send failed");
        return;
    }
    tx_update_handlers(s);
}

int vfu_send(VfuServer *s, const void *data, size_t len, int fd)
{
    ssize_t n = 0;
    VfuTxBuf *b;

    if (s->client_fd < 0) {
        return -ENOTCONN;
    }
    if (g_queue_is_empty(&s->tx)) {
        n = send_with_fd(s->client_fd, data, len, fd);
        if (n == (ssize_t)len) {
            return 0;
        }
        if (n < 0 && n != -EAGAIN) {
            return n;
        }
        if (n < 0) {
            n = 0;
        }
    }
    b = g_new0(VfuTxBuf, 1);
    b->data = g_memdup2((const uint8_t *)data + n, len - n);
    b->len = len - n;
    b->fd = (n == 0 && fd >= 0) ? dup(fd) : -1;
    g_queue_push_tail(&s->tx, b);
    s->tx_bytes += b->len;
    tx_update_handlers(s);
    return 0;
}

int vfu_send_reply(VfuServer *s, const VfuHdr *req, const void *payload,
                   size_t len, int fd)
{
    g_autofree uint8_t *buf = g_malloc(VFU_HDR_SIZE + len);
    VfuHdr *h = (VfuHdr *)buf;

    h->msg_id = req->msg_id;
    h->cmd = req->cmd;
    h->size = VFU_HDR_SIZE + len;
    h->flags = VFU_FLAG_REPLY;
    h->error_no = 0;
    if (len) {
        memcpy(buf + VFU_HDR_SIZE, payload, len);
    }
    return vfu_send(s, buf, VFU_HDR_SIZE + len, fd);
}

int vfu_send_error(VfuServer *s, const VfuHdr *req, int err)
{
    VfuHdr h = {
        .msg_id = req->msg_id,
        .cmd = req->cmd,
        .size = VFU_HDR_SIZE,
        .flags = VFU_FLAG_REPLY | VFU_FLAG_ERROR,
        .error_no = err,
    };

    s->nr_errors++;
    return vfu_send(s, &h, sizeof(h), -1);
}

/* ---- receive ---- */

/* Returns 1 when a whole message is in rx_buf, 0 on EAGAIN, -1 on EOF. */
static int rx_once(VfuServer *s)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * VFU_RX_MAX_FDS)];
        struct cmsghdr align;
    } u;
    struct iovec iov;
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = u.buf, .msg_controllen = sizeof(u.buf),
    };
    VfuHdr *h = (VfuHdr *)s->rx_buf;
    uint8_t scratch[4096];
    uint32_t need;
    ssize_t n;

    if (s->rx_discard) {
        iov.iov_base = scratch;
        iov.iov_len = MIN(s->rx_discard, sizeof(scratch));
    } else {
        need = s->rx_len < VFU_HDR_SIZE ? VFU_HDR_SIZE - s->rx_len
                                        : h->size - s->rx_len;
        iov.iov_base = s->rx_buf + s->rx_len;
        iov.iov_len = need;
    }
    do {
        n = recvmsg(s->client_fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        return errno == EAGAIN ? 0 : -1;
    }
    if (n == 0) {
        return -1;
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            unsigned cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            int *fds = (int *)CMSG_DATA(c);

            for (unsigned i = 0; i < cnt; i++) {
                if (s->rx_nfds < VFU_RX_MAX_FDS) {
                    s->rx_fds[s->rx_nfds++] = fds[i];
                } else {
                    close(fds[i]);
                    s->rx_fds_truncated = true;
                }
            }
        }
    }
    if (mh.msg_flags & MSG_CTRUNC) {
        s->rx_fds_truncated = true;
    }
    if (s->rx_discard) {
        s->rx_discard -= n;
        if (!s->rx_discard) {
            /* The oversized message is skipped: framing is intact. */
            vfu_send_error(s, h, E2BIG);
            s->rx_len = 0;
        }
        return 0;
    }
    s->rx_len += n;
    if (s->rx_len == VFU_HDR_SIZE) {
        if (h->size < VFU_HDR_SIZE) {
            /* Too short to be a header: answer it as one, keep going. */
            trace_vfu_err_framing(sid(s), h->size);
            h->size = VFU_HDR_SIZE;
            h->flags |= VFU_FLAG_ERROR;     /* dispatch refuses it */
        }
        if (h->size > VFU_MAX_MSG_SIZE) {
            trace_vfu_err_oversized(sid(s), h->cmd, h->size);
            s->rx_discard = h->size - VFU_HDR_SIZE;
            for (unsigned i = 0; i < s->rx_nfds; i++) {
                close(s->rx_fds[i]);
            }
            s->rx_nfds = 0;
            return 0;
        }
    }
    return s->rx_len >= VFU_HDR_SIZE && s->rx_len == h->size ? 1 : 0;
}

/*
 * Move the message in rx_buf into a heap VfuMsg.  A copy, not a view: a
 * handler may run the loop (a reset draining I/O, a DMA wait) and read the
 * next message into rx_buf while this one is still in use.  It costs an
 * allocation per message; a per-server free list would remove it.
 */
static VfuMsg *rx_take(VfuServer *s)
{
    VfuMsg *m = g_new0(VfuMsg, 1);

    memcpy(&m->hdr, s->rx_buf, VFU_HDR_SIZE);
    m->len = m->hdr.size - VFU_HDR_SIZE;
    m->payload = g_memdup2(s->rx_buf + VFU_HDR_SIZE, m->len);
    memcpy(m->fds, s->rx_fds, sizeof(int) * s->rx_nfds);
    m->nfds = s->rx_nfds;
    if (s->rx_fds_truncated) {
        /* More fds than we take: the handler sees too many and refuses. */
        m->nfds = VFU_RX_MAX_FDS;
    }
    s->rx_nfds = 0;
    s->rx_fds_truncated = false;
    s->rx_len = 0;
    return m;
}

bool vfu_may_dispatch(VfuServer *s)
{
    return s->client_fd >= 0 && !s->pending_unmap &&
           !device_function_resetting(&s->pdev->dev);
}

static void vfu_run_deferred(void *opaque)
{
    VfuServer *s = opaque;
    bool was_full = g_queue_get_length(&s->deferred) >= VFU_DEFERRED_MAX;

    while (vfu_may_dispatch(s) && !g_queue_is_empty(&s->deferred)) {
        VfuMsg *m = g_queue_pop_head(&s->deferred);

        vfu_handle_msg(s, m);
        vfu_msg_free(m);
    }
    if (was_full && s->client_fd >= 0) {
        tx_update_handlers(s);
    }
}

bool vfu_client_read(VfuServer *s)
{
    /* Bounded batch, so one busy client does not starve the others. */
    for (unsigned budget = 64; budget; budget--) {
        VfuMsg *m;
        int r = rx_once(s);

        if (r < 0) {
            return false;
        }
        if (r == 0) {
            return true;
        }
        s->nr_msgs++;
        m = rx_take(s);
        if ((m->hdr.flags & VFU_FLAG_TYPE_MASK) == VFU_FLAG_REPLY) {
            /* Replies are never held: a parked work item waits for it. */
            if (!vfu_dma_reply(s, m)) {
                trace_vfu_err_unexpected_reply(sid(s), m->hdr.msg_id);
            }
            vfu_msg_free(m);
            if (s->client_fd < 0) {
                return true;
            }
            continue;
        }
        /*
         * Requests are handled in order; they wait behind a DMA_UNMAP
         * that waits for in-flight DMA and while the device resets.
         */
        if (!vfu_may_dispatch(s) || !g_queue_is_empty(&s->deferred)) {
            g_queue_push_tail(&s->deferred, m);
            if (g_queue_get_length(&s->deferred) >= VFU_DEFERRED_MAX) {
                tx_update_handlers(s);      /* read no more for now */
                return true;
            }
            continue;
        }
        vfu_handle_msg(s, m);
        vfu_msg_free(m);
        if (s->client_fd < 0) {
            return true;
        }
    }
    return true;
}

static void vfu_client_readable(void *opaque)
{
    VfuServer *s = opaque;

    if (!vfu_client_read(s)) {
        vfu_client_gone(s, "connection closed");
    }
}

uint16_t vfu_next_msg_id(VfuServer *s)
{
    return s->next_msg_id++;
}

void vfu_resume_reading(VfuServer *s)
{
    if (s->client_fd >= 0) {
        tx_update_handlers(s);
        if (!g_queue_is_empty(&s->deferred)) {
            loop_bh_schedule(s->deferred_bh);
        }
    }
}

void vfu_deferred_init(VfuServer *s)
{
    g_queue_init(&s->deferred);
    g_queue_init(&s->tx);
    s->deferred_bh = loop_bh_new(s->loop, vfu_run_deferred, s);
    s->next_client_fd = -1;
}

void vfu_deferred_cleanup(VfuServer *s)
{
    loop_bh_delete(g_steal_pointer(&s->deferred_bh));
}
