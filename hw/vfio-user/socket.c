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
#include "util/sockets.h"
#include "qapi/events.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

/* VFU_CLIENT_CONNECTED / VFU_CLIENT_HANGUP for the monitor. */
static void vfu_client_event(VfuServer *s, const char *name,
                             const char *reason)
{
    json_object *data = json_object_new_object();

    json_object_object_add(data, "device", json_object_new_string(vfu_id(s)));
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

static GHashTable *listen_adopted;  /* id -> fd + 2 (1: no listener) */

void vfu_listen_adopt(const char *id, int fd)
{
    if (!listen_adopted) {
        listen_adopted = g_hash_table_new_full(g_str_hash, g_str_equal,
                                               g_free, NULL);
    }
    g_hash_table_insert(listen_adopted, g_strdup(id),
                        GINT_TO_POINTER(fd + 2));
}

/* What vfu_listen_adopt() left for @id: false when nothing. */
static bool vfu_listen_take_adopted(const char *id, int *fd)
{
    gpointer key = NULL, v = NULL;

    if (!listen_adopted ||
        !g_hash_table_steal_extended(listen_adopted, id, &key, &v)) {
        return false;
    }
    g_free(key);
    *fd = GPOINTER_TO_INT(v) - 2;
    return true;
}

bool vfu_socket_listen(VfuServer *s, GError **errp)
{
    PCIDevice *pdev = s->pdev;
    g_autofree char *owner = NULL;
    int fd;

    /* Live upgrade: the old process's, whatever fd= says here. */
    if (vfu_listen_take_adopted(vfu_id(s), &fd)) {
        if (fd < 0) {
            s->single_client = true;    /* the client comes with its state */
            return true;
        }
        return vfu_adopt_fd(s, fd, errp);
    }
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
        fd = vfu_activation_take(vfu_id(s));
        if (fd >= 0) {
            return vfu_adopt_fd(s, fd, errp);
        }
        error_setg(errp, "property 'socket' is required (or 'fd', or socket "
                   "activation)");
        return false;
    }
    owner = g_strdup_printf("device '%s'", vfu_id(s));
    fd = unix_listen(pdev->socket, 4, owner, errp);
    if (fd < 0) {
        error_prepend(errp, "property 'socket': ");
        return false;
    }
    s->path = g_strdup(pdev->socket);
    s->listen_fd = fd;
    loop_set_fd(s->loop, fd, vfu_accept, NULL, s);
    trace_vfu_listen(vfu_id(s), s->path);
    return true;
}

void vfu_socket_close(VfuServer *s)
{
    if (s->listen_fd >= 0) {
        loop_set_fd(s->loop, s->listen_fd, NULL, NULL, NULL);
        unix_listen_close(s->listen_fd);        /* removes s->path */
        s->listen_fd = -1;
    }
    g_clear_pointer(&s->path, g_free);
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
        trace_vfu_client_refused(vfu_id(s));
        iovd_warn("%s: refusing a second vfio-user client", vfu_id(s));
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
    s->next_msg_id = 0;
    s->nr_clients++;
    loop_set_fd(s->loop, fd, vfu_client_readable, NULL, s);
    trace_vfu_client_connected(vfu_id(s), fd);
    vfu_client_event(s, "VFU_CLIENT_CONNECTED", NULL);
}

static void vfu_msg_close_fds(VfuMsg *m)
{
    for (unsigned i = 0; i < m->nfds && i < VFU_RX_MAX_FDS; i++) {
        if (m->fds[i] >= 0) {
            close(m->fds[i]);
        }
    }
    m->nfds = 0;
}

VfuMsg *vfu_msg_copy(VfuMsg *m)
{
    VfuMsg *c = g_new(VfuMsg, 1);

    *c = *m;
    c->payload = g_memdup2(m->payload, m->len);
    m->nfds = 0;
    return c;
}

void vfu_msg_free(VfuMsg *m)
{
    if (!m) {
        return;
    }
    vfu_msg_close_fds(m);
    g_free(m->payload);
    g_free(m);
}

static void rx_fdq_clear(VfuServer *s)
{
    for (unsigned q = 0; q < s->rx_nfdq; q++) {
        for (unsigned i = 0; i < s->rx_fdq[q].n; i++) {
            close(s->rx_fdq[q].fds[i]);
        }
    }
    s->rx_nfdq = 0;
}

static void tx_clear(VfuServer *s)
{
    for (guint i = 0; i < s->tx_fds->len; i++) {
        close(g_array_index(s->tx_fds, VfuTxFd, i).fd);
    }
    g_array_set_size(s->tx_fds, 0);
    s->tx_head = s->tx_tail = 0;
}

/* Forget the connection: fd, framing state, queues. */
static void vfu_client_drop_socket(VfuServer *s)
{
    loop_set_fd(s->loop, s->client_fd, NULL, NULL, NULL);
    close(s->client_fd);
    s->client_fd = -1;
    rx_fdq_clear(s);
    s->rx_head = s->rx_tail = 0;
    s->rx_base = 0;
    s->rx_discard = 0;
    tx_clear(s);
    g_queue_clear_full(&s->deferred, (GDestroyNotify)vfu_msg_free);
    s->deferred_bytes = 0;
    g_clear_pointer(&s->pending_unmap, vfu_msg_free);
    g_clear_pointer(&s->client_caps_json, g_free);
    s->negotiated = false;
    s->write_multiple = false;
}

/* What the client gave us goes: mappings, interrupt fds. */
static void vfu_client_forget(VfuServer *s)
{
    vfu_mig_reset(s);
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
    trace_vfu_client_gone(vfu_id(s), why);
    vfu_client_drop_socket(s);
    /* Copies in flight will get no reply: their work items go on. */
    vfu_dma_xfers_fail(s, ECONNRESET);
    vfu_client_event(s, "VFU_CLIENT_HANGUP", why);
    if (s->single_client) {
        iovd_log("%s: inherited client disconnected; device idle", vfu_id(s));
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
    return unix_send_fds(sock, data, len, &fd, fd >= 0, MSG_DONTWAIT);
}

/* Requests held (copied) while the device may not take them: bounded. */
static bool deferred_full(VfuServer *s)
{
    return g_queue_get_length(&s->deferred) >= VFU_DEFERRED_MAX ||
           s->deferred_bytes >= VFU_DEFERRED_MAX_BYTES;
}

static bool rx_may_read(VfuServer *s)
{
    return !s->upgrade_paused &&
           s->tx_tail - s->tx_head < VFU_TX_BACKLOG_MAX && !deferred_full(s);
}

static void tx_update_handlers(VfuServer *s)
{
    /* Paused with nothing to send: a hangup is noticed on resume. */
    loop_set_fd(s->loop, s->client_fd,
                rx_may_read(s) ? vfu_client_readable : NULL,
                s->tx_head < s->tx_tail ? vfu_client_writable : NULL, s);
}

/* Write out what the socket takes; -errno on a broken socket. */
static int tx_flush(VfuServer *s)
{
    while (s->tx_head < s->tx_tail) {
        VfuTxFd *f = s->tx_fds->len ? &g_array_index(s->tx_fds, VfuTxFd, 0)
                                    : NULL;
        size_t end = s->tx_tail;
        int fd = -1;
        ssize_t n;

        if (f && f->pos == s->tx_head) {
            fd = f->fd;                 /* goes with its message's start */
            if (s->tx_fds->len > 1) {
                end = g_array_index(s->tx_fds, VfuTxFd, 1).pos;
            }
        } else if (f) {
            end = f->pos;               /* up to the next fd's message */
        }
        n = send_with_fd(s->client_fd, s->tx_buf + s->tx_head,
                         end - s->tx_head, fd);
        if (n == -EAGAIN) {
            return 0;
        }
        if (n < 0) {
            return n;
        }
        if (fd >= 0) {
            close(fd);
            g_array_remove_index(s->tx_fds, 0);
        }
        s->tx_head += n;
    }
    s->tx_head = s->tx_tail = 0;
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

void vfu_flush(VfuServer *s)
{
    vfu_irq_flush(s);
    if (s->client_fd < 0 || s->tx_head == s->tx_tail) {
        return;
    }
    if (tx_flush(s) < 0) {
        vfu_client_gone(s, "send failed");
        return;
    }
    tx_update_handlers(s);      /* no syscall unless the interest changed */
}

/* Room for @len more bytes at tx_tail. */
static void tx_reserve(VfuServer *s, size_t len)
{
    if (s->tx_head && s->tx_tail + len > s->tx_cap) {
        /* Move what is left to the front (fd positions with it). */
        memmove(s->tx_buf, s->tx_buf + s->tx_head, s->tx_tail - s->tx_head);
        for (guint i = 0; i < s->tx_fds->len; i++) {
            g_array_index(s->tx_fds, VfuTxFd, i).pos -= s->tx_head;
        }
        s->tx_tail -= s->tx_head;
        s->tx_head = 0;
    }
    if (s->tx_tail + len > s->tx_cap) {
        s->tx_cap = MAX(MAX(s->tx_cap * 2, (size_t)64 << 10),
                        s->tx_tail + len);
        s->tx_buf = g_realloc(s->tx_buf, s->tx_cap);
    }
}

int vfu_sendv(VfuServer *s, const struct iovec *iov, unsigned n, int fd)
{
    size_t len = 0;

    if (s->client_fd < 0) {
        return -ENOTCONN;
    }
    for (unsigned i = 0; i < n; i++) {
        len += iov[i].iov_len;
    }
    tx_reserve(s, len);
    if (fd >= 0) {
        VfuTxFd f = { .pos = s->tx_tail, .fd = dup(fd) };

        if (f.fd < 0) {
            return -errno;
        }
        g_array_append_val(s->tx_fds, f);
    }
    for (unsigned i = 0; i < n; i++) {
        memcpy(s->tx_buf + s->tx_tail, iov[i].iov_base, iov[i].iov_len);
        s->tx_tail += iov[i].iov_len;
    }
    return 0;
}

int vfu_send(VfuServer *s, const void *data, size_t len, int fd)
{
    struct iovec iov = { .iov_base = (void *)data, .iov_len = len };

    return vfu_sendv(s, &iov, 1, fd);
}

int vfu_send_reply(VfuServer *s, const VfuHdr *req, const void *payload,
                   size_t len, int fd)
{
    VfuHdr h = {
        .msg_id = req->msg_id,
        .cmd = req->cmd,
        .size = VFU_HDR_SIZE + len,
        .flags = VFU_FLAG_REPLY,
    };
    struct iovec iov[2] = {
        { .iov_base = &h, .iov_len = sizeof(h) },
        { .iov_base = (void *)payload, .iov_len = len },
    };

    return vfu_sendv(s, iov, len ? 2 : 1, fd);
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

/* Each loop iteration, before the loop polls or sleeps. */
static void vfu_flush_hook(void *opaque)
{
    VfuServer *s = opaque;

    if (s->irq_any_raised || s->tx_head != s->tx_tail) {
        vfu_flush(s);
    }
}

/* ---- receive ---- */

/* One read into rx_buf: >0 bytes, 0 on EAGAIN, -1 on EOF or error. */
static ssize_t rx_read(VfuServer *s)
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
    VfuRxFds *q = NULL;
    ssize_t n;

    if (s->rx_head == s->rx_tail) {
        s->rx_base += s->rx_head;
        s->rx_head = s->rx_tail = 0;
    } else if (VFU_RX_BUF_SIZE - s->rx_tail < VFU_RX_BUF_SIZE / 4) {
        /* A partial message near the end: move it to the front. */
        memmove(s->rx_buf, s->rx_buf + s->rx_head, s->rx_tail - s->rx_head);
        s->rx_base += s->rx_head;
        s->rx_tail -= s->rx_head;
        s->rx_head = 0;
    }
    iov.iov_base = s->rx_buf + s->rx_tail;
    iov.iov_len = VFU_RX_BUF_SIZE - s->rx_tail;
    do {
        n = recvmsg(s->client_fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        return errno == EAGAIN ? 0 : -1;
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        unsigned cnt;
        uint8_t *fds;

        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        fds = CMSG_DATA(c);
        if (!q && s->rx_nfdq < VFU_RX_FDQ && n > 0) {
            q = &s->rx_fdq[s->rx_nfdq++];
            q->pos = s->rx_base + s->rx_tail + n - 1;
            q->n = 0;
            q->truncated = false;
        }
        for (unsigned i = 0; i < cnt; i++) {
            int fd;

            memcpy(&fd, fds + i * sizeof(int), sizeof(fd));
            if (q && q->n < VFU_RX_MAX_FDS) {
                q->fds[q->n++] = fd;
            } else {
                close(fd);
                if (q) {
                    q->truncated = true;
                }
            }
        }
    }
    if (q && (mh.msg_flags & MSG_CTRUNC)) {
        q->truncated = true;
    }
    if (n == 0) {
        return -1;
    }
    s->rx_tail += n;
    return n;
}

/* Give @m the fds that came with its bytes [start, end) of the stream. */
static void rx_take_fds(VfuServer *s, VfuMsg *m, uint64_t start,
                        uint64_t end)
{
    bool truncated = false;

    m->nfds = 0;
    while (s->rx_nfdq && s->rx_fdq[0].pos < end) {
        VfuRxFds *q = &s->rx_fdq[0];

        for (unsigned i = 0; i < q->n; i++) {
            if (q->pos >= start && m->nfds < VFU_RX_MAX_FDS) {
                m->fds[m->nfds++] = q->fds[i];
            } else {
                close(q->fds[i]);
                truncated = true;
            }
        }
        truncated |= q->truncated;
        memmove(&s->rx_fdq[0], &s->rx_fdq[1],
                (--s->rx_nfdq) * sizeof(VfuRxFds));
    }
    if (truncated) {
        /* More fds than we take: the handler sees too many and refuses. */
        vfu_msg_close_fds(m);
        m->nfds = VFU_RX_MAX_FDS;
        for (unsigned i = 0; i < VFU_RX_MAX_FDS; i++) {
            m->fds[i] = -1;
        }
    }
}

/*
 * Frame the next message in rx_buf into @m (a view, or a copy in
 * rx_align when its payload would be unaligned): 1 when there is one,
 * 0 when more bytes are needed.
 */
static int rx_next(VfuServer *s, VfuMsg *m)
{
    m->nfds = 0;
    for (;;) {
        uint32_t avail = s->rx_tail - s->rx_head;
        uint64_t start = s->rx_base + s->rx_head;
        uint8_t *p = s->rx_buf + s->rx_head;
        uint32_t size;

        if (s->rx_discard) {
            uint32_t n = MIN(s->rx_discard, avail);

            if (!n) {
                return 0;
            }
            s->rx_head += n;
            s->rx_discard -= n;
            rx_take_fds(s, m, 0, start + n);
            vfu_msg_close_fds(m);
            if (!s->rx_discard) {
                /* The oversized message is skipped: framing is intact. */
                vfu_send_error(s, &s->rx_discard_hdr, E2BIG);
            }
            continue;
        }
        if (avail < VFU_HDR_SIZE) {
            return 0;
        }
        memcpy(&m->hdr, p, VFU_HDR_SIZE);
        size = m->hdr.size;
        if (size < VFU_HDR_SIZE) {
            /* Too short to be a header: answer it as one, keep going. */
            trace_vfu_err_framing(vfu_id(s), size);
            size = m->hdr.size = VFU_HDR_SIZE;
            m->hdr.flags |= VFU_FLAG_ERROR;     /* dispatch refuses it */
        }
        if (size > VFU_MAX_MSG_SIZE) {
            trace_vfu_err_oversized(vfu_id(s), m->hdr.cmd, size);
            s->rx_discard_hdr = m->hdr;
            s->rx_discard = size;
            continue;
        }
        if (avail < size) {
            return 0;
        }
        m->len = size - VFU_HDR_SIZE;
        m->payload = p + VFU_HDR_SIZE;
        if (m->len && (uintptr_t)m->payload % 8) {
            if (s->rx_align_size < m->len) {
                s->rx_align_size = MAX(m->len, 4096u);
                g_free(s->rx_align);
                s->rx_align = g_malloc(s->rx_align_size);
            }
            memcpy(s->rx_align, m->payload, m->len);
            m->payload = s->rx_align;
        }
        s->rx_head += size;
        rx_take_fds(s, m, start, start + size);
        return 1;
    }
}

bool vfu_may_dispatch(VfuServer *s)
{
    return s->client_fd >= 0 && !s->pending_unmap &&
           !device_function_resetting(&s->pdev->dev);
}

/* Handle the messages framed in rx_buf; false when the client is gone. */
static bool vfu_dispatch_buffered(VfuServer *s)
{
    VfuMsg m;

    while (s->client_fd >= 0 &&
           !deferred_full(s) &&
           rx_next(s, &m)) {
        s->nr_msgs++;
        if ((m.hdr.flags & VFU_FLAG_TYPE_MASK) == VFU_FLAG_REPLY) {
            /* Replies are never held: a parked work item waits for it. */
            if (!vfu_dma_reply(s, &m)) {
                trace_vfu_err_unexpected_reply(vfu_id(s), m.hdr.msg_id);
            }
        } else if (!vfu_may_dispatch(s) || !g_queue_is_empty(&s->deferred)) {
            /*
             * Requests are handled in order; they wait behind a DMA_UNMAP
             * that waits for in-flight DMA and while the device resets.
             */
            g_queue_push_tail(&s->deferred, vfu_msg_copy(&m));
            s->deferred_bytes += m.len;
        } else {
            vfu_handle_msg(s, &m);
        }
        vfu_msg_close_fds(&m);
    }
    return s->client_fd >= 0;
}

static void vfu_run_deferred(void *opaque)
{
    VfuServer *s = opaque;
    bool was_full = !rx_may_read(s);

    while (vfu_may_dispatch(s) && !g_queue_is_empty(&s->deferred)) {
        VfuMsg *m = g_queue_pop_head(&s->deferred);

        s->deferred_bytes -= m->len;
        vfu_handle_msg(s, m);
        vfu_msg_free(m);
    }
    /* What stayed framed in rx_buf while the queue was full. */
    if (vfu_dispatch_buffered(s) && was_full && rx_may_read(s)) {
        tx_update_handlers(s);
    }
}

/*
 * One read (as much as the socket has and rx_buf takes), then every
 * message in it: the fd is level-triggered, so we come back for more.
 */
bool vfu_client_read(VfuServer *s)
{
    ssize_t n = rx_read(s);

    if (n < 0) {
        return false;
    }
    if (n && vfu_dispatch_buffered(s) && !rx_may_read(s)) {
        tx_update_handlers(s);          /* read no more for now */
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

uint16_t vfu_server_msg_id(VfuServer *s)
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
    s->deferred_bh = loop_bh_new(s->loop, vfu_run_deferred, s);
    s->next_client_fd = -1;
    s->rx_buf = g_malloc(VFU_RX_BUF_SIZE);
    s->tx_fds = g_array_new(false, false, sizeof(VfuTxFd));
    loop_add_before_poll(s->loop, vfu_flush_hook, s);
}

void vfu_deferred_cleanup(VfuServer *s)
{
    loop_remove_before_poll(s->loop, vfu_flush_hook, s);
    loop_bh_delete(g_steal_pointer(&s->deferred_bh));
    g_array_unref(s->tx_fds);
    g_free(s->tx_buf);
    g_free(s->rx_buf);
    g_free(s->rx_align);
    g_free(s->scratch);
}

/* ---- live upgrade (hw/vfio-user/upgrade.c) ---- */

void vfu_client_pause(VfuServer *s, bool pause)
{
    s->upgrade_paused = pause;
    if (s->listen_fd >= 0 && s->client_fd < 0) {
        loop_set_fd(s->loop, s->listen_fd, pause ? NULL : vfu_accept, NULL,
                    s);
    }
    if (s->client_fd >= 0) {
        if (!pause && s->rx_head != s->rx_tail) {
            vfu_dispatch_buffered(s);   /* what an adopted client sent */
        }
        tx_update_handlers(s);
    }
}

void vfu_client_adopt(VfuServer *s, int fd, const void *rx, size_t rx_len,
                      const void *tx, size_t tx_len)
{
    g_assert(s->client_fd < 0 && rx_len <= VFU_RX_BUF_SIZE);
    if (s->listen_fd >= 0) {
        loop_set_fd(s->loop, s->listen_fd, NULL, NULL, NULL);
    }
    s->client_fd = fd;
    s->nr_clients++;
    g_unix_set_fd_nonblocking(fd, true, NULL);
    trace_vfu_client_connected(vfu_id(s), fd);
    if (tx_len) {
        vfu_send(s, tx, tx_len, -1);
    }
    if (rx_len) {
        memcpy(s->rx_buf, rx, rx_len);
    }
    s->rx_tail = rx_len;
    tx_update_handlers(s);      /* handled once the pause ends */
}
