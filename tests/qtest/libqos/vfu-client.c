/*
 * A vfio-user client that plays the VMM against iovd.
 */
#include "util/osdep.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <json-c/json.h>

#include "tests/qtest/libqos/vfu-client.h"

typedef struct VfuDmaEntry {
    uint64_t addr, size;
    uint32_t prot;
    uint8_t *host;              /* NULL: the client cannot serve it */
} VfuDmaEntry;

struct VfuClient {
    int fd;
    char *path;
    int timeout_ms;
    VfuDmaRwLayout layout;
    uint16_t next_id;
    bool closed;                /* the server closed the connection */
    bool send_broken;           /* EPIPE: the server no longer reads */

    GHashTable *awaited;        /* msg id -> command + 1 */
    GQueue replies;             /* of VfuRxMsg *, awaited, not yet taken */
    GArray *dma;                /* of VfuDmaEntry */
    bool hold_dma;              /* keep the server's DMA requests */
    bool hold_apply_writes;     /* ... but put DMA_WRITE data in memory */
    GQueue held;                /* of VfuRxMsg *, not answered yet */

    bool negotiated;
    VfuServerCaps caps;
    VfuClientStats stats;
};

static const char *const cmd_names[] = {
    [VFU_CMD_VERSION] = "VERSION",
    [VFU_CMD_DMA_MAP] = "DMA_MAP",
    [VFU_CMD_DMA_UNMAP] = "DMA_UNMAP",
    [VFU_CMD_DEVICE_GET_INFO] = "DEVICE_GET_INFO",
    [VFU_CMD_DEVICE_GET_REGION_INFO] = "DEVICE_GET_REGION_INFO",
    [VFU_CMD_DEVICE_GET_REGION_IO_FDS] = "DEVICE_GET_REGION_IO_FDS",
    [VFU_CMD_DEVICE_GET_IRQ_INFO] = "DEVICE_GET_IRQ_INFO",
    [VFU_CMD_DEVICE_SET_IRQS] = "DEVICE_SET_IRQS",
    [VFU_CMD_REGION_READ] = "REGION_READ",
    [VFU_CMD_REGION_WRITE] = "REGION_WRITE",
    [VFU_CMD_DMA_READ] = "DMA_READ",
    [VFU_CMD_DMA_WRITE] = "DMA_WRITE",
    [VFU_CMD_DEVICE_RESET] = "DEVICE_RESET",
    [VFU_CMD_DIRTY_PAGES] = "DIRTY_PAGES",
    [VFU_CMD_REGION_WRITE_MULTI] = "REGION_WRITE_MULTI",
};

static const char *cmd_name(unsigned cmd)
{
    if (cmd < ARRAY_SIZE(cmd_names) && cmd_names[cmd]) {
        return cmd_names[cmd];
    }
    return "unknown command";
}

/* ---- messages ---- */

void vfu_rx_msg_free(VfuRxMsg *m)
{
    if (!m) {
        return;
    }
    for (unsigned i = 0; i < m->nfds; i++) {
        if (m->fds[i] >= 0) {
            close(m->fds[i]);
        }
    }
    g_free(m->fds);
    g_free(m->payload);
    g_free(m);
}

int vfu_rx_msg_steal_fd(VfuRxMsg *m, unsigned i)
{
    int fd;

    if (i >= m->nfds) {
        return -1;
    }
    fd = m->fds[i];
    m->fds[i] = -1;
    return fd;
}

int vfu_rx_msg_error(const VfuRxMsg *m)
{
    if (!(m->hdr.flags & VFU_FLAG_ERROR)) {
        return 0;
    }
    return m->hdr.error_no ? -(int)m->hdr.error_no : -EIO;
}

/* ---- connection ---- */

VfuClient *vfu_client_connect(const char *path)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    VfuClient *c;
    int fd;

    if (strlen(path) >= sizeof(sun.sun_path)) {
        qos_fail("socket path too long: %s", path);
    }
    strcpy(sun.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        qos_fail("socket: %s", g_strerror(errno));
    }
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        int err = errno;

        close(fd);
        qos_fail("connect(%s): %s", path, g_strerror(err));
    }
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
        qos_fail("fcntl(O_NONBLOCK): %s", g_strerror(errno));
    }

    c = g_new0(VfuClient, 1);
    c->fd = fd;
    c->path = g_strdup(path);
    c->timeout_ms = QOS_TIMEOUT_MS;
    c->layout = VFU_DMA_RW_QEMU;
    c->next_id = 1;
    c->awaited = g_hash_table_new(g_direct_hash, g_direct_equal);
    g_queue_init(&c->replies);
    g_queue_init(&c->held);
    c->dma = g_array_new(false, true, sizeof(VfuDmaEntry));
    return c;
}

VfuClient *vfu_client_open(const char *path)
{
    VfuClient *c = vfu_client_connect(path);
    int ret = vfu_negotiate(c, VFU_VERSION_MAJOR, VFU_VERSION_MINOR, NULL);

    if (ret < 0) {
        qos_fail("VERSION negotiation on %s failed: %s (%d)", path,
                 qos_errno_name(ret), ret);
    }
    return c;
}

void vfu_client_free(VfuClient *c)
{
    VfuRxMsg *m;

    if (!c) {
        return;
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
    while ((m = g_queue_pop_head(&c->replies))) {
        vfu_rx_msg_free(m);
    }
    while ((m = g_queue_pop_head(&c->held))) {
        vfu_rx_msg_free(m);
    }
    g_hash_table_destroy(c->awaited);
    g_array_free(c->dma, true);
    g_free(c->caps.json);
    g_free(c->path);
    g_free(c);
}

int vfu_client_fd(VfuClient *c)
{
    return c->fd;
}

bool vfu_client_closed(VfuClient *c)
{
    return c->closed;
}

void vfu_client_set_timeout(VfuClient *c, int timeout_ms)
{
    c->timeout_ms = timeout_ms;
}

int vfu_client_timeout(VfuClient *c)
{
    return c->timeout_ms;
}

void vfu_client_set_dma_layout(VfuClient *c, VfuDmaRwLayout layout)
{
    c->layout = layout;
}

const VfuClientStats *vfu_client_stats(VfuClient *c)
{
    return &c->stats;
}

void vfu_client_assert_clean(VfuClient *c)
{
    const VfuHdr *h = &c->stats.last_unexpected;

    if (c->stats.unexpected_replies) {
        qos_fail("%" PRIu64 " unexpected repl%s from the server; last: "
                 "id %u cmd %u (%s) flags 0x%x size %u error %u",
                 c->stats.unexpected_replies,
                 c->stats.unexpected_replies == 1 ? "y" : "ies",
                 h->msg_id, h->cmd, cmd_name(h->cmd), h->flags, h->size,
                 h->error_no);
    }
    if (c->stats.protocol_errors) {
        qos_fail("%" PRIu64 " malformed message(s) from the server "
                 "(see stderr)", c->stats.protocol_errors);
    }
}

static void protocol_error(VfuClient *c, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);

static void protocol_error(VfuClient *c, const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    c->stats.protocol_errors++;
    fprintf(stderr, "vfu-client(%s): protocol error: %s\n", c->path, msg);
}

/* ---- sending ---- */

static void send_iov(VfuClient *c, struct iovec *iov, unsigned niov,
                     const int *fds, unsigned nfds)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * 253)];
    } cbuf;
    int64_t deadline = qos_deadline(c->timeout_ms);
    bool fds_sent = !nfds;

    qos_assert(nfds <= 253, "cannot pass %u fds in one message", nfds);
    if (c->send_broken) {
        return;     /* the wait for the reply reports the hang-up */
    }
    while (niov) {
        struct msghdr mh = { .msg_iov = iov, .msg_iovlen = niov };
        ssize_t n;

        if (!fds_sent) {
            struct cmsghdr *cm;

            memset(&cbuf, 0, sizeof(cbuf));
            mh.msg_control = cbuf.buf;
            mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
            cm = CMSG_FIRSTHDR(&mh);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
            memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
        }
        n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                if (!qos_poll_fd(c->fd, POLLOUT, deadline)) {
                    qos_fail("vfu-client(%s): the server did not take our "
                             "message within %d ms", c->path,
                             c->timeout_ms);
                }
                continue;
            }
            if (errno == EPIPE || errno == ECONNRESET) {
                c->send_broken = true;
                return;
            }
            qos_fail("vfu-client(%s): send: %s", c->path,
                     g_strerror(errno));
        }
        fds_sent = true;
        while (niov && (size_t)n >= iov->iov_len) {
            n -= iov->iov_len;
            iov++;
            niov--;
        }
        if (niov) {
            iov->iov_base = (uint8_t *)iov->iov_base + n;
            iov->iov_len -= n;
        }
    }
    c->stats.msgs_sent++;
}

void vfu_send_bytes(VfuClient *c, const void *buf, size_t len,
                    const int *fds, unsigned nfds)
{
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

    send_iov(c, &iov, 1, fds, nfds);
}

uint16_t vfu_next_msg_id(VfuClient *c)
{
    return c->next_id++;
}

static void await_id(VfuClient *c, uint16_t id, uint16_t cmd)
{
    g_hash_table_insert(c->awaited, GUINT_TO_POINTER(id),
                        GUINT_TO_POINTER((unsigned)cmd + 1));
}

void vfu_send_hdr(VfuClient *c, const VfuHdr *hdr, const void *payload,
                  size_t len, const int *fds, unsigned nfds)
{
    struct iovec iov[2] = {
        { .iov_base = (void *)hdr, .iov_len = VFU_HDR_SIZE },
        { .iov_base = (void *)payload, .iov_len = len },
    };

    if ((hdr->flags & VFU_FLAG_TYPE_MASK) == VFU_FLAG_REQUEST &&
        !(hdr->flags & VFU_FLAG_NO_REPLY)) {
        await_id(c, hdr->msg_id, hdr->cmd);
    }
    send_iov(c, iov, len ? 2 : 1, fds, nfds);
}

uint16_t vfu_send_msg(VfuClient *c, uint16_t cmd, uint32_t flags,
                      const void *payload, size_t len,
                      const int *fds, unsigned nfds)
{
    VfuHdr hdr = {
        .msg_id = vfu_next_msg_id(c),
        .cmd = cmd,
        .size = VFU_HDR_SIZE + len,
        .flags = flags,
    };

    qos_assert(len <= UINT32_MAX - VFU_HDR_SIZE, "message too large");
    vfu_send_hdr(c, &hdr, payload, len, fds, nfds);
    return hdr.msg_id;
}

static void send_reply(VfuClient *c, const VfuHdr *req, const void *payload,
                       size_t len)
{
    VfuHdr hdr = {
        .msg_id = req->msg_id,
        .cmd = req->cmd,
        .size = VFU_HDR_SIZE + len,
        .flags = VFU_FLAG_REPLY,
    };

    vfu_send_hdr(c, &hdr, payload, len, NULL, 0);
}

static void send_error(VfuClient *c, const VfuHdr *req, int err)
{
    VfuHdr hdr = {
        .msg_id = req->msg_id,
        .cmd = req->cmd,
        .size = VFU_HDR_SIZE,
        .flags = VFU_FLAG_REPLY | VFU_FLAG_ERROR,
        .error_no = err,
    };

    vfu_send_hdr(c, &hdr, NULL, 0, NULL, 0);
}

/* ---- receiving ---- */

typedef enum {
    RECV_OK,
    RECV_TIMEOUT,               /* nothing arrived in time */
    RECV_EOF,                   /* the server closed the connection */
} RecvResult;

/*
 * Read exactly @len bytes, collecting passed fds.  A timeout or EOF after
 * the first byte fails the test: the stream would be out of step.
 */
static RecvResult recv_exact(VfuClient *c, void *buf, size_t len,
                             int64_t deadline, GArray *fds, bool *trunc,
                             bool msg_start)
{
    size_t got = 0;

    while (got < len) {
        union {
            struct cmsghdr align;
            char buf[CMSG_SPACE(sizeof(int) * VFU_CLIENT_MAX_RX_FDS)];
        } cbuf;
        struct iovec iov = {
            .iov_base = (uint8_t *)buf + got,
            .iov_len = len - got,
        };
        struct msghdr mh = {
            .msg_iov = &iov,
            .msg_iovlen = 1,
            .msg_control = cbuf.buf,
            .msg_controllen = sizeof(cbuf.buf),
        };
        ssize_t n;

        n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                if (!qos_poll_fd(c->fd, POLLIN, deadline)) {
                    if (msg_start && !got) {
                        return RECV_TIMEOUT;
                    }
                    qos_fail("vfu-client(%s): the server sent %zu of %zu "
                             "bytes and then nothing for %d ms", c->path,
                             got, len, c->timeout_ms);
                }
                continue;
            }
            if (errno == ECONNRESET && msg_start && !got) {
                return RECV_EOF;
            }
            qos_fail("vfu-client(%s): recvmsg: %s", c->path,
                     g_strerror(errno));
        }
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm;
             cm = CMSG_NXTHDR(&mh, cm)) {
            if (cm->cmsg_level == SOL_SOCKET &&
                cm->cmsg_type == SCM_RIGHTS) {
                unsigned nfds = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

                g_array_append_vals(fds, CMSG_DATA(cm), nfds);
            }
        }
        if (mh.msg_flags & MSG_CTRUNC) {
            *trunc = true;
        }
        if (n == 0) {
            if (msg_start && !got) {
                return RECV_EOF;
            }
            qos_fail("vfu-client(%s): the server closed the connection "
                     "in the middle of a message (%zu of %zu bytes)",
                     c->path, got, len);
        }
        got += n;
    }
    return RECV_OK;
}

/* Receive one message; NULL on timeout or EOF (then c->closed is set). */
static VfuRxMsg *recv_msg(VfuClient *c, int64_t deadline)
{
    g_autoptr(GArray) fds = g_array_new(false, false, sizeof(int));
    VfuRxMsg *m;
    RecvResult r;
    VfuHdr hdr;
    bool trunc = false;

    if (c->closed) {
        return NULL;
    }
    r = recv_exact(c, &hdr, sizeof(hdr), deadline, fds, &trunc, true);
    if (r == RECV_EOF) {
        c->closed = true;
        return NULL;
    }
    if (r == RECV_TIMEOUT) {
        return NULL;
    }
    if (hdr.size < VFU_HDR_SIZE || hdr.size > VFU_CLIENT_MAX_RX_SIZE) {
        qos_fail("vfu-client(%s): the server sent a message with size %u "
                 "(id %u cmd %u flags 0x%x); the stream is lost", c->path,
                 hdr.size, hdr.msg_id, hdr.cmd, hdr.flags);
    }

    m = g_new0(VfuRxMsg, 1);
    m->hdr = hdr;
    m->len = hdr.size - VFU_HDR_SIZE;
    m->payload = g_malloc0(m->len + 1);     /* + 1: room for a NUL */
    if (m->len) {
        recv_exact(c, m->payload, m->len, qos_deadline(c->timeout_ms), fds,
                   &trunc, false);
    }
    m->nfds = fds->len;
    m->fds = (int *)g_array_free(g_steal_pointer(&fds), false);
    m->fds_truncated = trunc;
    c->stats.msgs_received++;
    return m;
}

/* ---- serving the server's DMA requests ---- */

static VfuDmaEntry *dma_lookup(VfuClient *c, uint64_t addr, uint64_t len)
{
    for (unsigned i = 0; i < c->dma->len; i++) {
        VfuDmaEntry *e = &g_array_index(c->dma, VfuDmaEntry, i);

        if (addr >= e->addr && range_within(addr - e->addr, len, e->size)) {
            return e;
        }
    }
    return NULL;
}

/* Translate for the server; NULL and *err when it may not access it. */
static uint8_t *dma_host(VfuClient *c, uint64_t addr, uint64_t len,
                         bool server_reads, int *err)
{
    VfuDmaEntry *e = dma_lookup(c, addr, len);
    uint32_t need = server_reads ? VFU_DMA_FLAG_READ : VFU_DMA_FLAG_WRITE;

    if (!e || !e->host) {
        *err = EFAULT;
        return NULL;
    }
    if (!(e->prot & need)) {
        *err = EPERM;
        return NULL;
    }
    return e->host + (addr - e->addr);
}

/* Where a DMA message's data starts, in the layout the server uses. */
static uint32_t dma_data_off(VfuClient *c)
{
    return c->layout == VFU_DMA_RW_QEMU ? VFU_DMA_RW_QEMU_DATA_OFF
                                        : VFU_DMA_RW_SPEC_DATA_OFF;
}

/*
 * Check a DMA request's form and get its address and count: 0, or the
 * errno to answer it with.
 */
static int dma_request_parse(VfuClient *c, VfuRxMsg *m, uint64_t *addr,
                             uint64_t *count)
{
    bool is_read = m->hdr.cmd == VFU_CMD_DMA_READ;
    bool qemu = c->layout == VFU_DMA_RW_QEMU;
    const char *what = is_read ? "DMA_READ" : "DMA_WRITE";

    if (m->nfds) {
        protocol_error(c, "%s id %u carries %u fds", what, m->hdr.msg_id,
                       m->nfds);
        return EINVAL;
    }
    /* Both layouts need 16 bytes of payload (QEMU's struct is padded). */
    if (m->len < 16) {
        protocol_error(c, "%s id %u: payload %u bytes < 16", what,
                       m->hdr.msg_id, m->len);
        return EINVAL;
    }
    *addr = ldq_le_p(m->payload);
    *count = qemu ? ldl_le_p(m->payload + 8) : ldq_le_p(m->payload + 8);

    if (*count > VFU_CLIENT_MAX_XFER) {
        protocol_error(c, "%s id %u: count %" PRIu64 " > our "
                       "max_data_xfer_size %u", what, m->hdr.msg_id, *count,
                       VFU_CLIENT_MAX_XFER);
        return E2BIG;
    }
    /*
     * DMA_WRITE data must be in the message.  QEMU's client checks count
     * against the payload minus its padded 16-byte struct, so do the same.
     */
    if (!is_read && *count > m->len - 16) {
        protocol_error(c, "%s id %u: count %" PRIu64 " but only %u payload "
                       "bytes (data at %u; %s layout needs payload >= 16 + "
                       "count)", what, m->hdr.msg_id, *count, m->len,
                       dma_data_off(c), qemu ? "QEMU" : "spec");
        return E2BIG;
    }
    if (!is_read && m->len != 16 + *count) {
        /* Tolerated by QEMU; still worth a note. */
        fprintf(stderr, "vfu-client(%s): note: %s id %u has %u payload "
                "bytes for count %" PRIu64 "\n", c->path, what,
                m->hdr.msg_id, m->len, *count);
    }
    return 0;
}

/* Answer a DMA_READ with @count bytes from @host. */
static void dma_read_reply(VfuClient *c, VfuRxMsg *m, uint64_t addr,
                           uint64_t count, const uint8_t *host)
{
    uint32_t len = 16 + count;
    g_autofree uint8_t *reply = g_malloc0(len);

    stq_le_p(reply, addr);
    if (c->layout == VFU_DMA_RW_QEMU) {
        /* QEMU echoes its 16-byte struct, then data at 12. */
        memcpy(reply + 8, m->payload + 8, 8);
        memset(reply + 12, 0, 4);
    } else {
        stq_le_p(reply + 8, count);
    }
    memcpy(reply + dma_data_off(c), host, count);
    c->stats.dma_reads++;
    c->stats.dma_read_bytes += count;
    if (!(m->hdr.flags & VFU_FLAG_NO_REPLY)) {
        send_reply(c, &m->hdr, reply, len);
    }
}

/* Land a DMA_WRITE's data at @host, once; acknowledge it if @reply_now. */
static void dma_write_apply(VfuClient *c, VfuRxMsg *m, uint64_t addr,
                            uint64_t count, uint8_t *host, bool reply_now)
{
    uint8_t reply[16];

    if (!m->applied) {
        memcpy(host, m->payload + dma_data_off(c), count);
        m->applied = true;
        c->stats.dma_writes++;
        c->stats.dma_write_bytes += count;
    }
    if (reply_now && !(m->hdr.flags & VFU_FLAG_NO_REPLY)) {
        if (c->layout == VFU_DMA_RW_QEMU) {
            send_reply(c, &m->hdr, NULL, 0);
        } else {
            stq_le_p(reply, addr);
            stq_le_p(reply + 8, count);
            send_reply(c, &m->hdr, reply, sizeof(reply));
        }
    }
}

/* Serve a DMA request: a DMA_WRITE's data lands unless m->applied. */
static void serve_dma(VfuClient *c, VfuRxMsg *m, bool reply_now)
{
    bool is_read = m->hdr.cmd == VFU_CMD_DMA_READ;
    uint64_t addr = 0, count = 0;
    uint8_t *host = NULL;
    int err = dma_request_parse(c, m, &addr, &count);

    if (!err) {
        host = dma_host(c, addr, count, is_read, &err);
    }
    if (!host) {
        if (!reply_now) {
            return;             /* it fails again when answered */
        }
        c->stats.dma_errors++;
        if (!(m->hdr.flags & VFU_FLAG_NO_REPLY)) {
            send_error(c, &m->hdr, err);
        }
        return;
    }
    if (is_read) {
        dma_read_reply(c, m, addr, count, host);
    } else {
        dma_write_apply(c, m, addr, count, host, reply_now);
    }
}

/* Handle one received message; replies are queued for their waiter. */
static void dispatch(VfuClient *c, VfuRxMsg *m)
{
    unsigned type = m->hdr.flags & VFU_FLAG_TYPE_MASK;

    if (type == VFU_FLAG_REQUEST) {
        if (c->hold_dma && m->hdr.cmd == VFU_CMD_DMA_WRITE) {
            if (c->hold_apply_writes) {
                serve_dma(c, m, false);
            }
            g_queue_push_tail(&c->held, m);
            return;
        }
        if (c->hold_dma && m->hdr.cmd == VFU_CMD_DMA_READ &&
            !c->hold_apply_writes) {
            g_queue_push_tail(&c->held, m);
            return;
        }
        if (m->hdr.cmd == VFU_CMD_DMA_READ ||
            m->hdr.cmd == VFU_CMD_DMA_WRITE) {
            serve_dma(c, m, true);
        } else {
            protocol_error(c, "server sent command %u (%s), id %u",
                           m->hdr.cmd, cmd_name(m->hdr.cmd), m->hdr.msg_id);
            if (!(m->hdr.flags & VFU_FLAG_NO_REPLY)) {
                send_error(c, &m->hdr, ENOSYS);
            }
        }
        vfu_rx_msg_free(m);
        return;
    }
    if (type != VFU_FLAG_REPLY) {
        protocol_error(c, "message type %u (flags 0x%x), id %u", type,
                       m->hdr.flags, m->hdr.msg_id);
        vfu_rx_msg_free(m);
        return;
    }
    if (!g_hash_table_contains(c->awaited,
                               GUINT_TO_POINTER(m->hdr.msg_id))) {
        fprintf(stderr, "vfu-client(%s): unexpected reply id %u cmd %u "
                "(%s) flags 0x%x error %u\n", c->path, m->hdr.msg_id,
                m->hdr.cmd, cmd_name(m->hdr.cmd), m->hdr.flags,
                m->hdr.error_no);
        c->stats.unexpected_replies++;
        c->stats.last_unexpected = m->hdr;
        vfu_rx_msg_free(m);
        return;
    }
    g_queue_push_tail(&c->replies, m);
}

static VfuRxMsg *take_reply(VfuClient *c, uint16_t id)
{
    for (GList *l = c->replies.head; l; l = l->next) {
        VfuRxMsg *m = l->data;

        if (m->hdr.msg_id == id) {
            g_queue_delete_link(&c->replies, l);
            return m;
        }
    }
    return NULL;
}

static VfuRxMsg *wait_reply(VfuClient *c, uint16_t id, int timeout_ms,
                            bool fail)
{
    gpointer val = NULL;
    unsigned cmd;
    int64_t deadline = qos_deadline(timeout_ms);

    if (!g_hash_table_lookup_extended(c->awaited, GUINT_TO_POINTER(id),
                                      NULL, &val)) {
        qos_fail("vfu-client: waiting for id %u, which no request awaits",
                 id);
    }
    cmd = GPOINTER_TO_UINT(val) - 1;

    for (;;) {
        VfuRxMsg *m = take_reply(c, id);

        if (m) {
            g_hash_table_remove(c->awaited, GUINT_TO_POINTER(id));
            if (m->hdr.cmd != cmd) {
                qos_fail("vfu-client(%s): the reply to %s (id %u) names "
                         "command %u (%s)", c->path, cmd_name(cmd), id,
                         m->hdr.cmd, cmd_name(m->hdr.cmd));
            }
            if ((m->hdr.flags & VFU_FLAG_ERROR) && m->len) {
                protocol_error(c, "error reply to %s (id %u) has %u "
                               "payload bytes (must be header only)",
                               cmd_name(cmd), id, m->len);
            }
            return m;
        }
        m = recv_msg(c, deadline);
        if (!m) {
            if (!fail) {
                return NULL;
            }
            if (c->closed) {
                qos_fail("vfu-client(%s): the server closed the connection "
                         "while we waited for the reply to %s (id %u)",
                         c->path, cmd_name(cmd), id);
            }
            qos_fail("vfu-client(%s): no reply to %s (id %u) within %d ms",
                     c->path, cmd_name(cmd), id, timeout_ms);
        }
        dispatch(c, m);
    }
}

VfuRxMsg *vfu_wait_reply(VfuClient *c, uint16_t id)
{
    return wait_reply(c, id, c->timeout_ms, true);
}

VfuRxMsg *vfu_try_wait_reply(VfuClient *c, uint16_t id, int timeout_ms)
{
    return wait_reply(c, id, timeout_ms, false);
}

int vfu_request(VfuClient *c, uint16_t cmd, const void *payload, size_t len,
                const int *fds, unsigned nfds, VfuRxMsg **reply)
{
    uint16_t id = vfu_send_msg(c, cmd, 0, payload, len, fds, nfds);
    VfuRxMsg *m = vfu_wait_reply(c, id);
    int ret = vfu_rx_msg_error(m);

    if (reply) {
        *reply = m;
    } else {
        vfu_rx_msg_free(m);
    }
    return ret;
}

bool vfu_service(VfuClient *c, int timeout_ms)
{
    int64_t deadline = qos_deadline(timeout_ms);

    for (;;) {
        VfuRxMsg *m = recv_msg(c, deadline);

        if (!m) {
            return !c->closed;
        }
        dispatch(c, m);
    }
}

bool vfu_wait_fd(VfuClient *c, int fd, int timeout_ms)
{
    int64_t deadline = qos_deadline(timeout_ms);

    for (;;) {
        struct pollfd pfd[2] = {
            { .fd = fd, .events = POLLIN },
            { .fd = c->closed ? -1 : c->fd, .events = POLLIN },
        };
        int ret = poll(pfd, 2, qos_remaining_ms(deadline));

        if (ret < 0) {
            if (errno == EINTR) {
                continue;
            }
            qos_fail("poll: %s", g_strerror(errno));
        }
        if (pfd[0].revents) {
            return true;
        }
        if (pfd[1].revents) {
            VfuRxMsg *m = recv_msg(c, qos_deadline(c->timeout_ms));

            if (m) {
                dispatch(c, m);
            }
            continue;
        }
        if (!ret) {
            return false;
        }
    }
}

bool vfu_wait_closed(VfuClient *c, int timeout_ms)
{
    int64_t deadline = qos_deadline(timeout_ms);

    while (!c->closed) {
        VfuRxMsg *m = recv_msg(c, deadline);

        if (!m) {
            return c->closed;
        }
        dispatch(c, m);
    }
    return true;
}

/* ---- negotiation ---- */

static bool json_get_uint(json_object *caps, const char *key, uint64_t *v,
                          char **why)
{
    json_object *o;
    int64_t n;

    if (!json_object_object_get_ex(caps, key, &o)) {
        return true;
    }
    if (!json_object_is_type(o, json_type_int)) {
        *why = g_strdup_printf("\"%s\" is not an integer", key);
        return false;
    }
    n = json_object_get_int64(o);
    if (n < 0) {
        *why = g_strdup_printf("\"%s\" is negative", key);
        return false;
    }
    *v = n;
    return true;
}

/* Parse the reply's JSON into c->caps; false with *why on error. */
static bool parse_caps(VfuClient *c, const char *text, char **why)
{
    json_object *root = json_tokener_parse(text);
    json_object *caps, *o;
    bool ok = false;

    if (!root) {
        *why = g_strdup("not valid JSON");
        return false;
    }
    if (!json_object_is_type(root, json_type_object)) {
        *why = g_strdup("not a JSON object");
        goto out;
    }
    if (!json_object_object_get_ex(root, "capabilities", &caps)) {
        ok = true;
        goto out;
    }
    if (!json_object_is_type(caps, json_type_object)) {
        *why = g_strdup("\"capabilities\" is not an object");
        goto out;
    }
    if (!json_get_uint(caps, "max_msg_fds", &c->caps.max_msg_fds, why) ||
        !json_get_uint(caps, "max_data_xfer_size",
                       &c->caps.max_data_xfer_size, why) ||
        !json_get_uint(caps, "max_dma_maps", &c->caps.max_dma_maps, why) ||
        !json_get_uint(caps, "pgsizes", &c->caps.pgsizes, why)) {
        goto out;
    }
    if (json_object_object_get_ex(caps, "write_multiple", &o)) {
        if (!json_object_is_type(o, json_type_boolean)) {
            *why = g_strdup("\"write_multiple\" is not a boolean");
            goto out;
        }
        c->caps.write_multiple = json_object_get_boolean(o);
    }
    ok = true;
out:
    json_object_put(root);
    return ok;
}

VfuRxMsg *vfu_negotiate_raw(VfuClient *c, const void *payload, size_t len)
{
    uint16_t id = vfu_send_msg(c, VFU_CMD_VERSION, 0, payload, len, NULL, 0);

    return vfu_wait_reply(c, id);
}

int vfu_negotiate(VfuClient *c, uint16_t major, uint16_t minor,
                  const char *json)
{
    g_autoptr(VfuRxMsg) m = NULL;
    g_autofree uint8_t *req = NULL;
    g_autofree char *why = NULL;
    size_t jlen, len;
    const uint8_t *nul;
    int ret;

    if (!json) {
        json = VFU_CLIENT_DEFAULT_CAPS;
    }
    jlen = *json ? strlen(json) + 1 : 0;
    len = sizeof(VfuVersion) + jlen;
    req = g_malloc0(len);
    stw_le_p(req, major);
    stw_le_p(req + 2, minor);
    memcpy(req + sizeof(VfuVersion), json, jlen);

    m = vfu_negotiate_raw(c, req, len);
    ret = vfu_rx_msg_error(m);
    if (ret < 0) {
        return ret;
    }

    g_free(c->caps.json);
    memset(&c->caps, 0, sizeof(c->caps));
    c->caps.max_msg_fds = 1;
    c->caps.max_data_xfer_size = 1u << 20;
    c->caps.max_dma_maps = 65535;
    c->caps.pgsizes = 4096;
    c->caps.request_size = VFU_HDR_SIZE + len;
    c->caps.reply_size = m->hdr.size;

    if (m->len < sizeof(VfuVersion)) {
        qos_fail("VERSION reply payload is %u bytes, less than 4", m->len);
    }
    c->caps.major = lduw_le_p(m->payload);
    c->caps.minor = lduw_le_p(m->payload + 2);
    if (m->len > sizeof(VfuVersion)) {
        const uint8_t *text = m->payload + sizeof(VfuVersion);
        size_t tlen = m->len - sizeof(VfuVersion);

        nul = memchr(text, 0, tlen);
        if (!nul) {
            qos_fail("VERSION reply JSON is not NUL-terminated: %.*s",
                     (int)tlen, (const char *)text);
        }
        c->caps.json_nul_at_end = nul == text + tlen - 1;
        c->caps.json = g_strdup((const char *)text);
        if (!parse_caps(c, c->caps.json, &why)) {
            qos_fail("VERSION reply JSON: %s: %s", why, c->caps.json);
        }
    }
    c->negotiated = true;
    return 0;
}

const VfuServerCaps *vfu_server_caps(VfuClient *c)
{
    qos_assert(c->negotiated, "vfu_server_caps: not negotiated");
    return &c->caps;
}

static bool json_subset(json_object *req, json_object *rep,
                        const char *path, char **why)
{
    json_object_object_foreach(rep, key, val) {
        g_autofree char *sub = g_strdup_printf("%s.%s", path, key);
        json_object *rv;

        if (!json_object_object_get_ex(req, key, &rv)) {
            *why = g_strdup_printf("%s is not in the request", sub);
            return false;
        }
        if (json_object_is_type(val, json_type_object) &&
            json_object_is_type(rv, json_type_object) &&
            !json_subset(rv, val, sub, why)) {
            return false;
        }
    }
    return true;
}

bool vfu_caps_is_subset(const char *request, const char *reply, char **why)
{
    json_object *req = json_tokener_parse(request);
    json_object *rep = json_tokener_parse(reply);
    json_object *req_caps = NULL, *rep_caps = NULL;
    g_autofree char *reason = NULL;
    bool ok = false;

    if (!req || !rep) {
        reason = g_strdup(req ? "reply is not JSON" : "request is not JSON");
        goto out;
    }
    if (!json_object_object_get_ex(rep, "capabilities", &rep_caps)) {
        ok = true;
        goto out;
    }
    if (!json_object_object_get_ex(req, "capabilities", &req_caps)) {
        req_caps = NULL;
    }
    if (!json_object_is_type(rep_caps, json_type_object) ||
        !json_object_is_type(req_caps, json_type_object)) {
        reason = g_strdup("\"capabilities\" is not an object in both");
        goto out;
    }
    ok = json_subset(req_caps, rep_caps, "capabilities", &reason);
out:
    json_object_put(req);
    json_object_put(rep);
    if (why) {
        *why = g_steal_pointer(&reason);
    }
    return ok;
}

/* ---- typed commands ---- */

int vfu_get_device_info(VfuClient *c, VfuDeviceInfo *info)
{
    VfuDeviceInfo req = { .argsz = sizeof(req) };
    g_autoptr(VfuRxMsg) m = NULL;
    int ret;

    ret = vfu_request(c, VFU_CMD_DEVICE_GET_INFO, &req, sizeof(req), NULL, 0,
                      &m);
    if (ret < 0) {
        return ret;
    }
    if (m->len < sizeof(*info)) {
        qos_fail("DEVICE_GET_INFO reply payload %u bytes < %zu", m->len,
                 sizeof(*info));
    }
    memcpy(info, m->payload, sizeof(*info));
    return 0;
}

static void parse_region_caps(VfuRegion *r, const uint8_t *p, uint32_t len,
                              uint32_t cap_offset)
{
    uint32_t off = cap_offset;

    for (unsigned n = 0; off; n++) {
        struct vfio_info_cap_header h;

        if (n >= 16) {
            qos_fail("region %u: capability chain does not end", r->index);
        }
        if (off < sizeof(VfuRegionInfo) || !range_within(off, sizeof(h),
                                                         len)) {
            qos_fail("region %u: capability at %u outside the %u-byte "
                     "reply", r->index, off, len);
        }
        memcpy(&h, p + off, sizeof(h));
        if (h.id == VFIO_REGION_INFO_CAP_SPARSE_MMAP) {
            uint32_t nr;

            if (!range_within(off, 16, len)) {
                qos_fail("region %u: truncated sparse mmap capability",
                         r->index);
            }
            nr = ldl_le_p(p + off + 8);
            if (nr > VFU_MAX_SPARSE_AREAS ||
                !range_within(off + 16, (uint64_t)nr * 16, len)) {
                qos_fail("region %u: sparse mmap capability with %u areas "
                         "does not fit the %u-byte reply", r->index, nr,
                         len);
            }
            r->has_sparse_cap = true;
            r->nr_areas = nr;
            for (uint32_t i = 0; i < nr; i++) {
                r->areas[i].offset = ldq_le_p(p + off + 16 + i * 16);
                r->areas[i].size = ldq_le_p(p + off + 24 + i * 16);
            }
        }
        off = h.next;
    }
}

int vfu_get_region_info(VfuClient *c, uint32_t index, VfuRegion *r)
{
    uint32_t argsz = sizeof(VfuRegionInfo);

    memset(r, 0, sizeof(*r));
    r->fd = -1;
    r->index = index;
    for (unsigned tries = 1; tries <= 4; tries++) {
        VfuRegionInfo req = { .argsz = argsz, .index = index };
        g_autoptr(VfuRxMsg) m = NULL;
        VfuRegionInfo info;
        int ret;

        ret = vfu_request(c, VFU_CMD_DEVICE_GET_REGION_INFO, &req,
                          sizeof(req), NULL, 0, &m);
        if (ret < 0) {
            return ret;
        }
        if (m->len < sizeof(info)) {
            qos_fail("GET_REGION_INFO(%u) reply payload %u bytes < %zu",
                     index, m->len, sizeof(info));
        }
        memcpy(&info, m->payload, sizeof(info));
        if (tries == 1) {
            r->first_argsz = info.argsz;
        }
        r->tries = tries;
        if (info.index != index) {
            qos_fail("GET_REGION_INFO(%u) reply is for region %u", index,
                     info.index);
        }
        if (info.argsz < sizeof(info) || info.argsz > 65536) {
            qos_fail("GET_REGION_INFO(%u) reply argsz %u is absurd", index,
                     info.argsz);
        }
        if (info.argsz > argsz) {
            /* Too small: ask again with what the server needs. */
            argsz = info.argsz;
            continue;
        }
        if (m->len < info.argsz) {
            qos_fail("GET_REGION_INFO(%u) reply argsz %u but only %u "
                     "payload bytes", index, info.argsz, m->len);
        }
        if (m->nfds > 1) {
            qos_fail("GET_REGION_INFO(%u) reply passes %u fds (at most 1)",
                     index, m->nfds);
        }
        r->flags = info.flags;
        r->size = info.size;
        r->offset = info.offset;
        r->argsz = info.argsz;
        if ((info.flags & VFIO_REGION_INFO_FLAG_CAPS) && info.cap_offset) {
            parse_region_caps(r, m->payload, info.argsz, info.cap_offset);
        }
        r->fd = vfu_rx_msg_steal_fd(m, 0);
        return 0;
    }
    qos_fail("GET_REGION_INFO(%u): still too small after 4 tries (argsz "
             "%u)", index, argsz);
}

void vfu_region_clear(VfuRegion *r)
{
    if (r->fd >= 0) {
        close(r->fd);
    }
    r->fd = -1;
}

int vfu_get_irq_info(VfuClient *c, uint32_t index, VfuIrqInfo *info)
{
    VfuIrqInfo req = { .argsz = sizeof(req), .index = index };
    g_autoptr(VfuRxMsg) m = NULL;
    int ret;

    ret = vfu_request(c, VFU_CMD_DEVICE_GET_IRQ_INFO, &req, sizeof(req),
                      NULL, 0, &m);
    if (ret < 0) {
        return ret;
    }
    if (m->len < sizeof(*info)) {
        qos_fail("GET_IRQ_INFO(%u) reply payload %u bytes < %zu", index,
                 m->len, sizeof(*info));
    }
    memcpy(info, m->payload, sizeof(*info));
    return 0;
}

int vfu_set_irqs(VfuClient *c, uint32_t index, uint32_t flags,
                 uint32_t start, uint32_t count,
                 const int *fds, unsigned nfds, const uint8_t *bools)
{
    size_t extra = (flags & VFIO_IRQ_SET_DATA_BOOL) ? count : 0;
    size_t len = sizeof(VfuIrqSet) + extra;
    g_autofree uint8_t *buf = g_malloc0(len);
    VfuIrqSet set = {
        .argsz = len,
        .flags = flags,
        .index = index,
        .start = start,
        .count = count,
    };

    memcpy(buf, &set, sizeof(set));
    if (extra && bools) {
        memcpy(buf + sizeof(set), bools, extra);
    }
    return vfu_request(c, VFU_CMD_DEVICE_SET_IRQS, buf, len, fds, nfds,
                       NULL);
}

static uint32_t xfer_chunk(VfuClient *c)
{
    uint64_t max = c->negotiated ? c->caps.max_data_xfer_size
                                 : VFU_CLIENT_MAX_XFER;

    if (!max || max > VFU_CLIENT_MAX_XFER) {
        max = VFU_CLIENT_MAX_XFER;
    }
    return max;
}

int vfu_region_read(VfuClient *c, uint32_t region, uint64_t offset,
                    void *buf, uint32_t count)
{
    uint32_t chunk = xfer_chunk(c);
    uint8_t *out = buf;

    do {
        uint32_t n = MIN(count, chunk);
        VfuRegionRW req = { .offset = offset, .region = region, .count = n };
        g_autoptr(VfuRxMsg) m = NULL;
        VfuRegionRW rep;
        int ret;

        ret = vfu_request(c, VFU_CMD_REGION_READ, &req, sizeof(req), NULL, 0,
                          &m);
        if (ret < 0) {
            return ret;
        }
        if (m->len != sizeof(rep) + n) {
            qos_fail("REGION_READ(region %u offset 0x%" PRIx64 " count %u) "
                     "reply payload is %u bytes, expected %zu", region,
                     offset, n, m->len, sizeof(rep) + n);
        }
        memcpy(&rep, m->payload, sizeof(rep));
        if (rep.count != n || rep.region != region || rep.offset != offset) {
            qos_fail("REGION_READ(region %u offset 0x%" PRIx64 " count %u) "
                     "reply says region %u offset 0x%" PRIx64 " count %u",
                     region, offset, n, rep.region, rep.offset, rep.count);
        }
        memcpy(out, m->payload + sizeof(rep), n);
        out += n;
        offset += n;
        count -= n;
    } while (count);
    return 0;
}

static uint8_t *build_write(uint32_t region, uint64_t offset,
                            const void *buf, uint32_t n, size_t *len)
{
    VfuRegionRW req = { .offset = offset, .region = region, .count = n };
    uint8_t *p = g_malloc(sizeof(req) + n);

    memcpy(p, &req, sizeof(req));
    memcpy(p + sizeof(req), buf, n);
    *len = sizeof(req) + n;
    return p;
}

int vfu_region_write(VfuClient *c, uint32_t region, uint64_t offset,
                     const void *buf, uint32_t count)
{
    uint32_t chunk = xfer_chunk(c);
    const uint8_t *in = buf;

    do {
        uint32_t n = MIN(count, chunk);
        g_autoptr(VfuRxMsg) m = NULL;
        g_autofree uint8_t *p = NULL;
        VfuRegionRW rep;
        size_t len;
        int ret;

        p = build_write(region, offset, in, n, &len);
        ret = vfu_request(c, VFU_CMD_REGION_WRITE, p, len, NULL, 0, &m);
        if (ret < 0) {
            return ret;
        }
        if (m->len < sizeof(rep)) {
            qos_fail("REGION_WRITE(region %u offset 0x%" PRIx64 " count %u) "
                     "reply payload is %u bytes, expected %zu", region,
                     offset, n, m->len, sizeof(rep));
        }
        memcpy(&rep, m->payload, sizeof(rep));
        if (rep.count != n) {
            qos_fail("REGION_WRITE(region %u offset 0x%" PRIx64 " count %u) "
                     "reply says count %u", region, offset, n, rep.count);
        }
        in += n;
        offset += n;
        count -= n;
    } while (count);
    return 0;
}

void vfu_region_write_posted(VfuClient *c, uint32_t region, uint64_t offset,
                             const void *buf, uint32_t count)
{
    uint32_t chunk = xfer_chunk(c);
    const uint8_t *in = buf;

    do {
        uint32_t n = MIN(count, chunk);
        g_autofree uint8_t *p = NULL;
        size_t len;

        p = build_write(region, offset, in, n, &len);
        vfu_send_msg(c, VFU_CMD_REGION_WRITE, VFU_FLAG_NO_REPLY, p, len,
                     NULL, 0);
        in += n;
        offset += n;
        count -= n;
    } while (count);
}

int vfu_write_multi(VfuClient *c, const VfuWriteOne *wrs, unsigned n,
                    bool posted)
{
    size_t len = 8 + (size_t)n * sizeof(VfuWriteOne);
    g_autofree uint8_t *p = g_malloc0(len);
    g_autoptr(VfuRxMsg) m = NULL;
    uint16_t id;
    int ret;

    stq_le_p(p, n);
    memcpy(p + 8, wrs, (size_t)n * sizeof(VfuWriteOne));
    if (posted) {
        vfu_send_msg(c, VFU_CMD_REGION_WRITE_MULTI, VFU_FLAG_NO_REPLY, p, len,
                     NULL, 0);
        return 0;
    }
    id = vfu_send_msg(c, VFU_CMD_REGION_WRITE_MULTI, 0, p, len, NULL, 0);
    m = vfu_wait_reply(c, id);
    ret = vfu_rx_msg_error(m);
    if (ret < 0) {
        return ret;
    }
    if (m->len < 8 || ldq_le_p(m->payload) != n) {
        qos_fail("REGION_WRITE_MULTI of %u writes: reply payload %u bytes, "
                 "wr_cnt %" PRIu64, n, m->len,
                 m->len >= 8 ? ldq_le_p(m->payload) : 0);
    }
    return 0;
}

int vfu_device_reset(VfuClient *c)
{
    return vfu_request(c, VFU_CMD_DEVICE_RESET, NULL, 0, NULL, 0, NULL);
}

int vfu_dma_map(VfuClient *c, uint64_t addr, uint64_t size, uint32_t prot,
                int fd, uint64_t fd_offset, void *host)
{
    VfuDmaMap req = {
        .argsz = sizeof(req),
        .flags = prot,
        .offset = fd >= 0 ? fd_offset : 0,
        .addr = addr,
        .size = size,
    };
    VfuDmaEntry e = {
        .addr = addr,
        .size = size,
        .prot = prot,
        .host = host,
    };
    int ret;

    ret = vfu_request(c, VFU_CMD_DMA_MAP, &req, sizeof(req),
                      fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0, NULL);
    if (ret == 0) {
        g_array_append_val(c->dma, e);
    }
    return ret;
}

int vfu_dma_unmap(VfuClient *c, uint64_t addr, uint64_t size,
                  uint32_t flags)
{
    VfuDmaUnmap req = {
        .argsz = sizeof(req),
        .flags = flags,
        .addr = addr,
        .size = size,
    };
    int ret;

    ret = vfu_request(c, VFU_CMD_DMA_UNMAP, &req, sizeof(req), NULL, 0,
                      NULL);
    if (ret < 0) {
        return ret;
    }
    if (flags & VFU_DMA_UNMAP_FLAG_ALL) {
        g_array_set_size(c->dma, 0);
        return 0;
    }
    for (unsigned i = 0; i < c->dma->len; i++) {
        VfuDmaEntry *e = &g_array_index(c->dma, VfuDmaEntry, i);

        if (e->addr == addr && e->size == size) {
            g_array_remove_index(c->dma, i);
            break;
        }
    }
    return 0;
}

void vfu_client_hold_dma(VfuClient *c, bool hold)
{
    c->hold_dma = hold;
    while (!hold && !g_queue_is_empty(&c->held)) {
        VfuRxMsg *m = g_queue_pop_head(&c->held);

        serve_dma(c, m, true);
        vfu_rx_msg_free(m);
    }
}

void vfu_client_hold_dma_apply_writes(VfuClient *c, bool apply)
{
    c->hold_apply_writes = apply;
}

unsigned vfu_client_held_dma(VfuClient *c)
{
    return g_queue_get_length(&c->held);
}

bool vfu_client_wait_held_dma(VfuClient *c, unsigned n, int timeout_ms)
{
    int64_t deadline = qos_deadline(timeout_ms);

    while (g_queue_get_length(&c->held) < n) {
        if (qos_now_ms() >= deadline || !vfu_service(c, 10)) {
            return false;
        }
    }
    return true;
}
