/*
 * -netdev stream: Ethernet frames over a byte stream, each preceded by its
 * length as a 4-byte big-endian number (the framing of QEMU's -netdev
 * stream, so either end may be QEMU or another iovd).
 *
 *   server=on   listen on addr (UNIX path or loopback TCP), serve one
 *               connection at a time; the next waits in the backlog
 *   server=off  connect to addr; when that fails or the connection goes,
 *               try again every reconnect-ms (0: never)
 *
 * The NIC's link follows the connection (carrier).  TCP addresses must be
 * loopback unless allow-remote=on: the frames are not authenticated.
 * Host names are not resolved (no blocking lookups): numeric addresses
 * and "localhost" only.
 */
#include "net/net-int.h"
#include "net/trace.h"
#include "util/error.h"
#include "util/log.h"
#include "util/loop.h"
#include "util/sockets.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

enum { STREAM_ADDR_UNIX, STREAM_ADDR_INET };

static const char *const stream_addr_names[] = { "unix", "inet", NULL };

#define STREAM_LEN_BYTES    4
#define STREAM_FRAME_MAX    (STREAM_LEN_BYTES + NET_MAX_FRAME)
/* Room for a full frame and a good part of the next: fewer reads. */
#define STREAM_RX_SIZE      (2 * STREAM_FRAME_MAX)
#define STREAM_TX_SIZE      (STREAM_FRAME_MAX + NET_VNET_HDR_LEN)

typedef struct StreamState {
    NetClient *nc;

    /* options */
    bool server;
    int addr_type;
    char *path;
    char *host;
    char *port;
    bool allow_remote;
    uint32_t reconnect_ms;

    struct sockaddr_storage sa;
    socklen_t salen;
    char *addr_str;             /* "unix:PATH" or "HOST:PORT" */

    int listen_fd;
    int fd;                     /* connected or connecting */
    bool connecting;
    bool connected;
    bool rx_paused;             /* the NIC cannot take frames */
    bool closing;               /* a write failed: disconnect soon */
    bool upgrade_paused;        /* live upgrade: no handler runs */
    bool retry;                 /* paused with a reconnect pending */
    char *peer;                 /* who is connected */

    uint8_t *rx_buf;
    size_t rx_len;
    uint8_t *tx_buf;            /* the unwritten rest of one frame */
    size_t tx_off, tx_len;

    LoopTimer *reconnect_timer;
    LoopBH *resume_bh;          /* deliver buffered frames */
    LoopBH *close_bh;
    bool warned;
} StreamState;

static void stream_read(void *opaque);
static void stream_write(void *opaque);
static void stream_connect(StreamState *s);

static void stream_update_handlers(StreamState *s)
{
    LoopFunc *rd, *wr;

    if (s->fd < 0) {
        return;
    }
    if (s->upgrade_paused) {
        loop_set_fd(s->nc->loop, s->fd, NULL, NULL, NULL);
        return;
    }
    rd = s->connected && !s->rx_paused && !s->closing ? stream_read : NULL;
    wr = s->connecting || (s->connected && s->tx_len) ? stream_write : NULL;
    loop_set_fd(s->nc->loop, s->fd, rd, wr, s);
}

static void stream_watch_listener(StreamState *s, bool on);

static void stream_disconnect(StreamState *s, const char *reason)
{
    NetClient *nc = s->nc;

    if (s->fd < 0) {
        return;
    }
    trace_net_stream_disconnected(nc->name, reason);
    loop_set_fd(s->nc->loop, s->fd, NULL, NULL, NULL);
    close(s->fd);
    s->fd = -1;
    s->connected = s->connecting = s->closing = false;
    s->rx_paused = false;
    s->rx_len = 0;
    if (s->tx_len) {
        nc->stats.tx_errors++;  /* a frame cut short */
    }
    s->tx_len = s->tx_off = 0;
    loop_bh_cancel(s->resume_bh);
    loop_bh_cancel(s->close_bh);
    net_client_set_info(nc, "stream: %s %s (not connected)",
                        s->server ? "listening on" : "connecting to",
                        s->addr_str);
    net_backend_set_carrier(nc, false);
    /* Frames the NIC queued for us go nowhere; the NIC may send again. */
    net_flush_queue(nc);
    if (s->server) {
        stream_watch_listener(s, true);
    } else if (s->reconnect_ms) {
        loop_timer_mod(s->reconnect_timer,
                       clock_ns() + (int64_t)s->reconnect_ms * 1000000);
    }
}

static void stream_set_connected(StreamState *s, int fd, const char *peer)
{
    NetClient *nc = s->nc;

    s->fd = fd;
    s->connected = true;
    s->connecting = false;
    s->rx_len = 0;
    s->rx_paused = false;
    s->warned = false;
    g_free(s->peer);
    s->peer = g_strdup(peer);
    if (s->addr_type == STREAM_ADDR_INET) {
        int one = 1;

        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    trace_net_stream_connected(nc->name, peer);
    net_client_set_info(nc, "stream: %s %s", s->server ? "connection on"
                        : "connected to", peer);
    stream_update_handlers(s);
    net_backend_set_carrier(nc, true);
}

static void stream_close_bh(void *opaque)
{
    stream_disconnect(opaque, "write error");
}

/* Hand complete frames in rx_buf to the NIC while it takes them. */
static void stream_deliver(StreamState *s)
{
    NetClient *nc = s->nc;
    size_t off = 0;

    if (s->upgrade_paused) {
        return;
    }
    while (s->rx_len - off >= STREAM_LEN_BYTES) {
        const uint8_t *p = s->rx_buf + off;
        uint32_t len = ldl_be_p(p);

        if (len > NET_MAX_FRAME) {
            trace_net_stream_bad_frame(nc->name, len);
            stream_disconnect(s, "frame too long");
            return;
        }
        if (s->rx_len - off - STREAM_LEN_BYTES < len) {
            break;
        }
        if (!net_client_can_send(nc)) {
            s->rx_paused = true;
            break;
        }
        off += STREAM_LEN_BYTES + len;
        if (len && net_send(nc, p + STREAM_LEN_BYTES, len) == 0) {
            /* Queued by the NIC: wait for writable(). */
            s->rx_paused = true;
            break;
        }
        if (s->fd < 0) {
            return;             /* disconnected from inside net_send() */
        }
    }
    if (off) {
        memmove(s->rx_buf, s->rx_buf + off, s->rx_len - off);
        s->rx_len -= off;
    }
}

static void stream_read(void *opaque)
{
    StreamState *s = opaque;
    ssize_t n;

    n = read(s->fd, s->rx_buf + s->rx_len, STREAM_RX_SIZE - s->rx_len);
    if (n == 0) {
        stream_disconnect(s, "closed by the peer");
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR) {
            stream_disconnect(s, g_strerror(errno));
        }
        return;
    }
    s->rx_len += n;
    stream_deliver(s);
    stream_update_handlers(s);
}

static void stream_resume_bh(void *opaque)
{
    StreamState *s = opaque;

    if (!s->connected || s->upgrade_paused) {
        return;
    }
    s->rx_paused = false;
    stream_deliver(s);
    stream_update_handlers(s);
    if (s->connected && !s->tx_len && !g_queue_is_empty(&s->nc->queue)) {
        /* Frames the NIC queued for us before a live upgrade. */
        net_flush_queue(s->nc);
    }
}

static void stream_writable(NetClient *nc)
{
    StreamState *s = nc->opaque;

    if (s->connected && s->rx_paused) {
        /* Not from inside the NIC's flush: on the next iteration. */
        loop_bh_schedule(s->resume_bh);
    }
}

static void stream_connect_done(StreamState *s)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
        err = errno;
    }
    if (err) {
        trace_net_stream_connect_failed(s->nc->name, s->addr_str,
                                        g_strerror(err));
        s->connecting = false;
        loop_set_fd(s->nc->loop, s->fd, NULL, NULL, NULL);
        close(s->fd);
        s->fd = -1;
        if (s->reconnect_ms) {
            loop_timer_mod(s->reconnect_timer,
                           clock_ns() + (int64_t)s->reconnect_ms * 1000000);
        }
        return;
    }
    stream_set_connected(s, s->fd, s->addr_str);
}

static void stream_write(void *opaque)
{
    StreamState *s = opaque;

    if (s->connecting) {
        stream_connect_done(s);
        return;
    }
    while (s->tx_off < s->tx_len) {
        ssize_t n = write(s->fd, s->tx_buf + s->tx_off,
                          s->tx_len - s->tx_off);

        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                return;
            }
            stream_disconnect(s, g_strerror(errno));
            return;
        }
        s->tx_off += n;
    }
    s->tx_off = s->tx_len = 0;
    stream_update_handlers(s);
    /* Frames the NIC queued while the socket was full. */
    net_flush_queue(s->nc);
}

static ssize_t stream_receive(NetClient *nc, const struct iovec *iov,
                              int iovcnt)
{
    StreamState *s = nc->opaque;
    struct iovec local[NET_IOV_INLINE + 1];
    size_t len = iov_size(iov, iovcnt);
    size_t total = STREAM_LEN_BYTES + len;
    uint8_t hdr[STREAM_LEN_BYTES];
    bool flat = false;
    ssize_t n;
    int cnt;

    if (!s->connected || s->closing) {
        return 0;               /* no carrier: dropped, counted */
    }
    if (s->tx_len || s->upgrade_paused) {
        return -EAGAIN;
    }
    stl_be_p(hdr, len);
    local[0].iov_base = hdr;
    local[0].iov_len = sizeof(hdr);
    cnt = iov_slice(&local[1], NET_IOV_INLINE, iov, iovcnt, 0, SIZE_MAX);
    if (cnt < 0) {
        memcpy(s->tx_buf, hdr, sizeof(hdr));
        iov_to_buf(iov, iovcnt, 0, s->tx_buf + sizeof(hdr), len);
        local[0].iov_base = s->tx_buf;
        local[0].iov_len = total;
        cnt = 0;
        flat = true;
    }
    n = writev(s->fd, local, cnt + 1);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR) {
            trace_net_stream_write_error(nc->name, g_strerror(errno));
            s->closing = true;
            stream_update_handlers(s);
            loop_bh_schedule(s->close_bh);
            return 0;
        }
        n = 0;
    }
    if ((size_t)n == total) {
        return len;
    }
    /* Keep the rest of this frame; later ones wait in our queue. */
    if (flat) {
        s->tx_off = n;
        s->tx_len = total;
    } else {
        size_t done = n;

        if (done < sizeof(hdr)) {
            memcpy(s->tx_buf, hdr + done, sizeof(hdr) - done);
            s->tx_len = sizeof(hdr) - done;
            done = 0;
        } else {
            s->tx_len = 0;
            done -= sizeof(hdr);
        }
        s->tx_len += iov_to_buf(iov, iovcnt, done,
                                    s->tx_buf + s->tx_len, len - done);
        s->tx_off = 0;
    }
    stream_update_handlers(s);
    return len;
}

/* ---- server ---- */

static void stream_accept(void *opaque)
{
    StreamState *s = opaque;
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);
    g_autofree char *peer = NULL;
    int fd;

    fd = accept4(s->listen_fd, (struct sockaddr *)&sa, &len,
                 SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
            iovd_warn("netdev %s: accept: %s", s->nc->name,
                      g_strerror(errno));
        }
        return;
    }
    if (s->fd >= 0) {
        close(fd);              /* not reached: we stop listening */
        return;
    }
    stream_watch_listener(s, false);
    if (sa.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&sa;
        char buf[INET_ADDRSTRLEN];

        inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf));
        peer = g_strdup_printf("%s:%u", buf, ntohs(in->sin_port));
    } else if (sa.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa;
        char buf[INET6_ADDRSTRLEN];

        inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof(buf));
        peer = g_strdup_printf("[%s]:%u", buf, ntohs(in6->sin6_port));
    } else {
        peer = g_strdup(s->addr_str);
    }
    stream_set_connected(s, fd, peer);
}

static void stream_watch_listener(StreamState *s, bool on)
{
    if (s->listen_fd >= 0) {
        on = on && !s->upgrade_paused;
        loop_set_fd(s->nc->loop, s->listen_fd, on ? stream_accept : NULL,
                    NULL, s);
    }
}

/* port=0 picked a free port: report the real one. */
static void stream_set_listen_addr(StreamState *s, int fd)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);
    unsigned port = 0;

    if (getsockname(fd, (struct sockaddr *)&sa, &len) == 0) {
        port = sa.ss_family == AF_INET
            ? ntohs(((struct sockaddr_in *)&sa)->sin_port)
            : ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
    }
    g_free(s->addr_str);
    s->addr_str = g_strdup_printf(strchr(s->host, ':') ? "[%s]:%u"
                                  : "%s:%u", s->host, port);
}

/* Listen on the configured TCP address; the fd or -1. */
static int stream_listen_inet(StreamState *s, GError **errp)
{
    int fd, one = 1;

    fd = socket(s->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "socket");
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&s->sa, s->salen) < 0 ||
        listen(fd, 1) < 0) {
        error_setg_errno(errp, errno, "cannot listen on %s", s->addr_str);
        close(fd);
        return -1;
    }
    stream_set_listen_addr(s, fd);
    return fd;
}

/* @fd: a TCP listening socket taken over in a live upgrade, or -1. */
static bool stream_listen(StreamState *s, int fd, GError **errp)
{
    NetClient *nc = s->nc;

    if (fd >= 0) {
        stream_set_listen_addr(s, fd);
    } else if (s->addr_type == STREAM_ADDR_UNIX) {
        /* In a live upgrade this is the old process's socket. */
        g_autofree char *owner = g_strdup_printf("netdev '%s'", nc->name);

        fd = unix_listen(s->path, 1, owner, errp);
        if (fd < 0) {
            error_prepend(errp, "property 'addr.path': ");
        }
    } else {
        fd = stream_listen_inet(s, errp);
    }
    if (fd < 0) {
        return false;
    }
    s->listen_fd = fd;
    stream_watch_listener(s, true);
    net_client_set_info(nc, "stream: listening on %s", s->addr_str);
    trace_net_stream_listen(nc->name, s->addr_str);
    return true;
}

/* ---- client ---- */

static void stream_reconnect_timer(void *opaque)
{
    StreamState *s = opaque;

    if (s->upgrade_paused) {
        s->retry = true;
        return;
    }
    stream_connect(s);
}

static void stream_connect(StreamState *s)
{
    int fd;

    if (s->fd >= 0) {
        return;
    }
    fd = socket(s->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                0);
    if (fd < 0) {
        iovd_warn("netdev %s: socket: %s", s->nc->name, g_strerror(errno));
        goto retry;
    }
    if (connect(fd, (struct sockaddr *)&s->sa, s->salen) == 0) {
        stream_set_connected(s, fd, s->addr_str);
        return;
    }
    if (errno == EINPROGRESS) {
        s->fd = fd;
        s->connecting = true;
        stream_update_handlers(s);
        return;
    }
    trace_net_stream_connect_failed(s->nc->name, s->addr_str,
                                    g_strerror(errno));
    if (!s->reconnect_ms && !s->warned) {
        iovd_warn("netdev %s: cannot connect to %s: %s (reconnect-ms=0: "
                  "giving up)", s->nc->name, s->addr_str, g_strerror(errno));
        s->warned = true;
    }
    close(fd);
retry:
    if (s->reconnect_ms) {
        loop_timer_mod(s->reconnect_timer,
                       clock_ns() + (int64_t)s->reconnect_ms * 1000000);
    }
}

/* ---- options ---- */

static bool stream_parse_inet(StreamState *s, GError **errp)
{
    const char *host = s->host;
    uint64_t port;

    if (!host || !s->port) {
        error_setg(errp, "addr.type=inet needs addr.host and addr.port");
        return false;
    }
    if (s->path) {
        error_setg(errp, "property 'addr.path': not with addr.type=inet");
        return false;
    }
    if (!parse_uint(s->port, &port, errp) || port > 65535 ||
        (port == 0 && !s->server)) {
        g_clear_error(errp);
        error_setg(errp, "property 'addr.port': '%s' is not a port number%s",
                   s->port, s->server ? "" : " (1-65535)");
        return false;
    }
    if (strcmp(host, "localhost") == 0) {
        host = "127.0.0.1";
    }
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        g_autofree char *h = g_strndup(host + 1, strlen(host) - 2);

        g_free(s->host);
        s->host = g_steal_pointer(&h);
        host = s->host;
    }
    memset(&s->sa, 0, sizeof(s->sa));
    if (strchr(host, ':')) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&s->sa;

        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1) {
            goto bad_host;
        }
        s->salen = sizeof(*in6);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&s->sa;

        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        if (inet_pton(AF_INET, host, &in->sin_addr) != 1) {
            goto bad_host;
        }
        s->salen = sizeof(*in);
    }
    if (!s->allow_remote && !inet_is_loopback((struct sockaddr *)&s->sa)) {
        error_setg(errp, "property 'addr.host': '%s' is not a loopback "
                   "address; frames are unauthenticated (allow-remote=on "
                   "to use it anyway)", s->host);
        return false;
    }
    s->addr_str = g_strdup_printf(strchr(host, ':') ? "[%s]:%u" : "%s:%u",
                                  host, (unsigned)port);
    return true;

bad_host:
    error_setg(errp, "property 'addr.host': '%s' is not a numeric IPv4 or "
               "IPv6 address (nor localhost)", s->host);
    return false;
}

static bool stream_parse_unix(StreamState *s, GError **errp)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)&s->sa;

    if (!s->path || !*s->path) {
        error_setg(errp, "addr.type=unix needs addr.path");
        return false;
    }
    if (s->host || s->port) {
        error_setg(errp, "addr.host and addr.port are not for "
                   "addr.type=unix");
        return false;
    }
    if (strlen(s->path) >= sizeof(sun->sun_path)) {
        error_setg(errp, "property 'addr.path': longer than %zu bytes",
                   sizeof(sun->sun_path) - 1);
        return false;
    }
    memset(&s->sa, 0, sizeof(s->sa));
    sun->sun_family = AF_UNIX;
    strcpy(sun->sun_path, s->path);
    s->salen = sizeof(*sun);
    s->addr_str = g_strdup_printf("unix:%s", s->path);
    return true;
}

static void stream_init(NetClient *nc)
{
    StreamState *s = nc->opaque;

    s->nc = nc;
    s->fd = -1;
    s->listen_fd = -1;
    nc->carrier_down = true;
}

/* ---- live upgrade ---- */

enum { STREAM_UP_NONE, STREAM_UP_CONNECTING, STREAM_UP_CONNECTED };

/* What the new process takes over (upgrade_load). */
typedef struct StreamAdopt {
    uint8_t state;              /* STREAM_UP_* */
    uint32_t conn_fd, listen_fd;    /* the backend's fds, or UINT32_MAX */
    char *peer;
    GByteArray *rx, *tx;
    bool retry;
} StreamAdopt;

static void stream_upgrade_pause(NetClient *nc, bool pause)
{
    StreamState *s = nc->opaque;

    if (s->upgrade_paused == pause) {
        return;
    }
    s->upgrade_paused = pause;
    if (pause) {
        s->retry = loop_timer_pending(s->reconnect_timer);
        loop_timer_del(s->reconnect_timer);
        loop_bh_cancel(s->resume_bh);
        loop_bh_cancel(s->close_bh);
    } else if (s->closing) {
        loop_bh_schedule(s->close_bh);
    } else if (s->connected) {
        /* Deliver what was read, write what the NIC queued. */
        loop_bh_schedule(s->resume_bh);
    } else if (s->fd < 0 && !s->server && s->retry) {
        stream_connect(s);
    }
    stream_update_handlers(s);
    stream_watch_listener(s, s->fd < 0);
}

static uint32_t stream_save_fd(GArray *fds, int fd)
{
    g_array_append_val(fds, fd);
    return fds->len - 1;
}

static void stream_upgrade_save(NetClient *nc, StateWriter *w, GArray *fds)
{
    StreamState *s = nc->opaque;
    bool conn = s->fd >= 0 && !s->closing;
    uint8_t state = !conn ? STREAM_UP_NONE : s->connected
                    ? STREAM_UP_CONNECTED : STREAM_UP_CONNECTING;
    bool tcp_listen = s->listen_fd >= 0 && s->addr_type == STREAM_ADDR_INET;

    state_put_u8(w, "state", state);
    state_put_u32(w, "conn-fd", conn ? stream_save_fd(fds, s->fd)
                                     : UINT32_MAX);
    /* A UNIX listening socket moves with every other (util/sockets.h). */
    state_put_u32(w, "listen-fd", tcp_listen
                  ? stream_save_fd(fds, s->listen_fd) : UINT32_MAX);
    state_put_str(w, "peer", state == STREAM_UP_CONNECTED ? s->peer : NULL);
    /* Read and not delivered; a frame's unwritten rest. */
    state_put_bytes(w, "rx", s->rx_buf, conn ? s->rx_len : 0);
    state_put_bytes(w, "tx", s->tx_buf + s->tx_off,
                    conn ? s->tx_len - s->tx_off : 0);
    /* Not connected: connect as soon as it runs, unless it gave up. */
    state_put_bool(w, "retry", !conn && !s->server &&
                   (s->retry || s->reconnect_ms));
    trace_net_stream_upgrade_save(nc->name, state, conn ? s->rx_len : 0,
                                  conn ? s->tx_len - s->tx_off : 0);
}

static void stream_adopt_free(void *opaque)
{
    StreamAdopt *sa = opaque;

    g_free(sa->peer);
    g_byte_array_unref(sa->rx);
    g_byte_array_unref(sa->tx);
    g_free(sa);
}

static GByteArray *stream_get_buf(StateSection *s, const char *name,
                                  size_t max)
{
    size_t len;
    const void *p = state_get_blob(s, name, &len);

    if (len > max) {
        state_section_fail(s, "'%s': %zu bytes, at most %zu here", name, len,
                           max);
        len = 0;
    }
    return g_byte_array_append(g_byte_array_new(), p ? p : "", p ? len : 0);
}

static void stream_upgrade_load(NetAdopt *a, StateSection *st)
{
    StreamAdopt *sa = g_new0(StreamAdopt, 1);

    a->priv = sa;
    a->priv_free = stream_adopt_free;
    sa->state = state_get_u8(st, "state");
    sa->conn_fd = state_get_u32(st, "conn-fd");
    sa->listen_fd = state_get_u32(st, "listen-fd");
    sa->peer = state_get_str(st, "peer");
    sa->rx = stream_get_buf(st, "rx", STREAM_RX_SIZE);
    sa->tx = stream_get_buf(st, "tx", STREAM_TX_SIZE);
    sa->retry = state_get_bool(st, "retry");
    if (sa->state > STREAM_UP_CONNECTED ||
        (sa->state != STREAM_UP_NONE) != (sa->conn_fd < a->nfds) ||
        (sa->state == STREAM_UP_CONNECTED && !sa->peer)) {
        state_section_fail(st, "a stream connection that does not add up");
    }
}

/* The connection the old process had (it runs at upgrade_pause false). */
static void stream_adopt_conn(StreamState *s, StreamAdopt *sa, int fd)
{
    if (sa->state == STREAM_UP_CONNECTING) {
        s->fd = fd;
        s->connecting = true;
        net_client_set_info(s->nc, "stream: connecting to %s", s->addr_str);
        return;
    }
    stream_set_connected(s, fd, sa->peer);
    /* An empty GByteArray may have no data at all. */
    if (sa->rx->len) {
        memcpy(s->rx_buf, sa->rx->data, sa->rx->len);
        s->rx_len = sa->rx->len;
    }
    if (sa->tx->len) {
        memcpy(s->tx_buf, sa->tx->data, sa->tx->len);
        s->tx_len = sa->tx->len;
    }
}

/* A live upgrade: take over the old process's sockets, start paused. */
static bool stream_adopt(StreamState *s, NetAdopt *a, GError **errp)
{
    StreamAdopt *sa = a->priv;
    int lfd = net_adopt_take_fd(a, sa->listen_fd);
    int fd = net_adopt_take_fd(a, sa->conn_fd);

    s->upgrade_paused = true;
    s->retry = sa->retry;
    if (!s->server && lfd >= 0) {
        close(lfd);
        lfd = -1;
    }
    if (s->server && !stream_listen(s, lfd, errp)) {
        if (fd >= 0) {
            close(fd);
        }
        return false;
    }
    if (!s->server) {
        net_client_set_info(s->nc, "stream: connecting to %s", s->addr_str);
    }
    if (fd >= 0) {
        stream_adopt_conn(s, sa, fd);
    }
    return true;
}

static bool stream_open(NetClient *nc, GError **errp)
{
    StreamState *s = nc->opaque;
    NetAdopt *a;

    if (s->addr_type == STREAM_ADDR_UNIX ? !stream_parse_unix(s, errp)
                                         : !stream_parse_inet(s, errp)) {
        return false;
    }
    s->rx_buf = g_malloc(STREAM_RX_SIZE);
    s->tx_buf = g_malloc(STREAM_TX_SIZE);
    s->resume_bh = loop_bh_new(s->nc->loop, stream_resume_bh, s);
    s->close_bh = loop_bh_new(s->nc->loop, stream_close_bh, s);
    s->reconnect_timer = loop_timer_new(s->nc->loop, stream_reconnect_timer, s);
    a = net_upgrade_adopt(nc);
    if (a) {
        return stream_adopt(s, a, errp);
    }
    if (s->server) {
        return stream_listen(s, -1, errp);
    }
    net_client_set_info(nc, "stream: connecting to %s", s->addr_str);
    stream_connect(s);
    return true;
}

static void stream_cleanup(NetClient *nc)
{
    StreamState *s = nc->opaque;

    if (s->fd >= 0) {
        loop_set_fd(s->nc->loop, s->fd, NULL, NULL, NULL);
        close(s->fd);
    }
    if (s->listen_fd >= 0) {
        loop_set_fd(s->nc->loop, s->listen_fd, NULL, NULL, NULL);
        unix_listen_close(s->listen_fd);        /* removes s->path */
    }
    loop_timer_free(s->reconnect_timer);
    loop_bh_delete(s->resume_bh);
    loop_bh_delete(s->close_bh);
    g_free(s->rx_buf);
    g_free(s->tx_buf);
    g_free(s->addr_str);
    g_free(s->peer);
}

static const PropDef stream_props[] = {
    PROP_DEF_BOOL("server", StreamState, server,
                  "listen (on) or connect (off)", .defval = "off"),
    PROP_DEF_ENUM("addr.type", StreamState, addr_type, stream_addr_names,
                  "unix or inet", .mandatory = true),
    PROP_DEF_STR("addr.path", StreamState, path, "UNIX socket path"),
    PROP_DEF_STR("addr.host", StreamState, host,
                 "numeric address (loopback unless allow-remote=on)"),
    PROP_DEF_STR("addr.port", StreamState, port,
                 "TCP port (server: 0 picks a free one)"),
    PROP_DEF_BOOL("allow-remote", StreamState, allow_remote,
                  "allow a non-loopback addr.host", .defval = "off"),
    PROP_DEF_UINT("reconnect-ms", StreamState, reconnect_ms,
                  "client: retry a failed or lost connection after this "
                  "many ms (0: never)", .defval = "1000", .max = 3600000),
    PROP_DEF_END
};

static const NetClientOps stream_ops = {
    .receive = stream_receive,
    .writable = stream_writable,
    .cleanup = stream_cleanup,
};

static void stream_set_loop(NetClient *nc, EventLoop *to)
{
    StreamState *s = nc->opaque;

    if (s->fd >= 0) {
        loop_set_fd(nc->loop, s->fd, NULL, NULL, NULL);
    }
    if (s->listen_fd >= 0) {
        loop_set_fd(nc->loop, s->listen_fd, NULL, NULL, NULL);
    }
    loop_bh_move(s->resume_bh, to);
    loop_bh_move(s->close_bh, to);
    loop_timer_move(s->reconnect_timer, to);
    nc->loop = to;
    stream_update_handlers(s);
    /* Listening again only while nothing is connected. */
    stream_watch_listener(s, s->fd < 0);
}

static const NetBackendDriver stream_driver = {
    .type = "stream",
    .help = "-netdev stream,id=ID[,server=on|off],addr.type=unix,"
            "addr.path=PATH\n"
            "  -netdev stream,id=ID[,server=on|off],addr.type=inet,"
            "addr.host=ADDR,addr.port=PORT",
    .state_size = sizeof(StreamState),
    .props = stream_props,
    .ops = &stream_ops,
    .init = stream_init,
    .open = stream_open,
    .set_loop = stream_set_loop,
    .upgrade_pause = stream_upgrade_pause,
    .upgrade_save = stream_upgrade_save,
    .upgrade_load = stream_upgrade_load,
};

static void __attribute__((constructor)) stream_register(void)
{
    net_backend_driver_register(&stream_driver);
}
