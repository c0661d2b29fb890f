/*
 * The nbd driver: a node backed by an export of an NBD server, through
 * libnbd's asynchronous API driven by the event loop.  QEMU's options:
 *
 *   driver=nbd,node-name=N,server.type=unix,server.path=P[,export=E]
 *   driver=nbd,node-name=N,server.type=inet,server.host=H,server.port=PORT
 *   [,reconnect-delay=SECONDS]
 *
 * Connections.  Opening the node connects once, to learn the export's
 * size and what the server offers (flush, FUA, trim, write zeroes, the
 * largest request), then lets go.  Every device attached to the node gets
 * a connection of its own, owned by the device's loop: its requests, the
 * socket and the completions never leave that thread, and devices on
 * several iothreads do not share a lock.  (A server that limits clients,
 * like qemu-nbd's default of one, needs room for one per device.)
 *
 * Requests go out at once, several in flight; a request whose iovec has
 * several segments is one NBD command per segment (zero copy: the
 * commands read and write guest memory directly).  libnbd calls our
 * completion callbacks while it holds its lock, so they only note the
 * result; a bottom half completes the requests.
 *
 * A lost connection.  Requests in flight on it and those that come while
 * it is down wait up to reconnect-delay seconds (QEMU's meaning; 0: they
 * fail at once) and are sent again once a new connection is up; after the
 * delay they fail (-EIO) and the device's error policy applies.  The
 * driver keeps trying to connect, once a second, whatever the delay, so a
 * device recovers when the server comes back.  BLOCK_DISCONNECTED and
 * BLOCK_RECONNECTED tell the monitor.
 */
#include "block/block-int.h"

#ifdef CONFIG_LIBNBD
#include "block/trace.h"
#include "util/error.h"
#include "util/loop.h"

#include <libnbd.h>

#define NBD_OPEN_TIMEOUT_MS     5000    /* probing the export at open */
#define NBD_RETRY_NS            (1000 * 1000 * 1000LL)
#define NBD_CONNECT_NS          (5 * NBD_RETRY_NS)  /* one attempt */
#define NBD_CHUNK_MAX           (1u << 30)  /* trim / zero commands */
#define NBD_PAYLOAD_DEFAULT     (32u << 20) /* when the server says none */

typedef enum NbdServerType {
    NBD_SERVER_UNIX,
    NBD_SERVER_INET,
} NbdServerType;

static const char *const nbd_server_types[] = { "unix", "inet", NULL };

typedef struct NbdState {
    /* Options. */
    int server_type;
    char *path;
    char *host;
    char *port;
    char *export;
    uint32_t reconnect_delay;   /* seconds */
    /* What the export offers (probed at open). */
    bool can_flush, can_fua, can_trim, can_zero;
    uint32_t max_payload;       /* the largest read or write */
} NbdState;

typedef enum NbdConnState {
    NBD_CONN_CONNECTING,
    NBD_CONN_READY,
    NBD_CONN_DOWN,              /* no connection: the retry timer runs */
} NbdConnState;

/* A connection: one per attached backend, on the backend's loop. */
typedef struct NbdConn {
    BlockNode *bs;
    BlockBackend *blk;
    EventLoop *loop;
    struct nbd_handle *h;
    int fd;                     /* watched by the loop, -1: none */
    bool watch_write;
    NbdConnState state;
    bool was_ready;             /* a connection was up once (events) */
    unsigned gen;               /* handles dropped so far */
    int64_t hold_until;         /* requests wait for a connection till then */
    int64_t connect_deadline;   /* the attempt in progress gives up then */
    unsigned cmds;              /* commands at the server */
    bool refresh;               /* reconnect once idle (export resized) */
    BlockReq *wait_head, **wait_tail;   /* not sent yet */
    BlockReq *done_head, **done_tail;   /* finished, to complete */
    LoopBH *done_bh;
    LoopTimer *retry_timer;
} NbdConn;

/* Per request, in BlockReq.drv. */
typedef struct NbdReq {
    NbdConn *c;
    unsigned gen;               /* the handle its commands went to */
    uint32_t pending;           /* commands not yet answered */
    int err;                    /* first error (errno), 0: none */
    bool lost;                  /* failed with its connection: resend */
    bool flush_after;           /* FUA emulated by a flush */
} NbdReq;

G_STATIC_ASSERT(sizeof(NbdReq) <= sizeof(((BlockReq *)0)->drv));

static const PropDef nbd_props[] = {
    PROP_DEF_ENUM("server.type", NbdState, server_type, nbd_server_types,
                  "unix or inet", .mandatory = true),
    PROP_DEF_STR("server.path", NbdState, path,
                 "unix: the server's socket"),
    PROP_DEF_STR("server.host", NbdState, host, "inet: the server's host"),
    PROP_DEF_STR("server.port", NbdState, port,
                 "inet: the server's port", .defval = "10809"),
    PROP_DEF_STR("export", NbdState, export,
                 "the export's name (default: the server's default)"),
    PROP_DEF_UINT("reconnect-delay", NbdState, reconnect_delay,
                  "seconds requests wait for a lost connection to come "
                  "back before they fail (0: fail at once)", .max = 3600),
    PROP_DEF_END
};

static inline NbdState *nbd_state(BlockNode *bs)
{
    return bs->opaque;
}

static inline NbdReq *nbd_req(BlockReq *req)
{
    return (NbdReq *)req->drv;
}

static const char *nbd_conn_id(NbdConn *c)
{
    const char *dev = blk_device_id(c->blk);

    return dev ? dev : c->bs->node_name;
}

/* ---- connecting ---- */

/* A handle connecting to the server (not yet ready), or NULL. */
static struct nbd_handle *nbd_start(NbdState *s, GError **errp)
{
    struct nbd_handle *h = nbd_create();
    int r;

    if (!h) {
        error_setg(errp, "nbd: %s", nbd_get_error());
        return NULL;
    }
    if (nbd_set_export_name(h, s->export ? s->export : "") < 0) {
        goto fail;
    }
    if (s->server_type == NBD_SERVER_UNIX) {
        r = nbd_aio_connect_unix(h, s->path);
    } else {
        r = nbd_aio_connect_tcp(h, s->host, s->port);
    }
    if (r < 0) {
        goto fail;
    }
    return h;

fail:
    error_setg(errp, "nbd: %s", nbd_get_error());
    nbd_close(h);
    return NULL;
}

/*
 * Drive @h's state machine once, waiting for its socket no later than
 * @deadline: false when the time is up or the handle failed.  The blocking
 * waits of this driver (open, resize, the flush at detach) go through it,
 * so a server that stops answering never holds a thread for long.
 */
static bool nbd_poll_until(struct nbd_handle *h, int64_t deadline)
{
    int64_t left = (deadline - clock_ns()) / 1000000;

    return left > 0 && nbd_poll(h, (int)left) >= 0;
}

/* Connect and handshake, waiting at most @timeout_ms (open, resize). */
static struct nbd_handle *nbd_connect_wait(NbdState *s, int timeout_ms,
                                           GError **errp)
{
    struct nbd_handle *h = nbd_start(s, errp);
    int64_t deadline = clock_ns() + (int64_t)timeout_ms * 1000000;

    if (!h) {
        return NULL;
    }
    while (nbd_aio_is_connecting(h)) {
        if (!nbd_poll_until(h, deadline)) {
            break;
        }
    }
    if (nbd_aio_is_connecting(h)) {
        error_setg(errp, "nbd: no answer from the server within %d ms",
                   timeout_ms);
        nbd_close(h);
        return NULL;
    }
    if (!nbd_aio_is_ready(h)) {
        error_setg(errp, "nbd: %s", nbd_get_error() ? nbd_get_error()
                                                    : "connection failed");
        nbd_close(h);
        return NULL;
    }
    return h;
}

/* ---- the loop's side of a connection ---- */

static void nbd_fd_read(void *opaque);
static void nbd_fd_write(void *opaque);
static void nbd_send(NbdConn *c, BlockReq *req);

static void nbd_unwatch(NbdConn *c)
{
    if (c->fd >= 0) {
        loop_set_fd(c->loop, c->fd, NULL, NULL, NULL);
        c->fd = -1;
    }
}

/* Watch the socket for what libnbd waits for. */
static void nbd_watch(NbdConn *c)
{
    int fd = nbd_aio_get_fd(c->h);
    bool write = nbd_aio_get_direction(c->h) & LIBNBD_AIO_DIRECTION_WRITE;

    if (fd != c->fd) {
        nbd_unwatch(c);
    }
    if (fd < 0 || (fd == c->fd && write == c->watch_write)) {
        return;
    }
    c->fd = fd;
    c->watch_write = write;
    loop_set_fd(c->loop, fd, nbd_fd_read, write ? nbd_fd_write : NULL, c);
}

static void nbd_done_push(NbdConn *c, BlockReq *req)
{
    req->next = NULL;
    *c->done_tail = req;
    c->done_tail = &req->next;
    loop_bh_schedule(c->done_bh);
}

static void nbd_wait_push(NbdConn *c, BlockReq *req)
{
    req->next = NULL;
    *c->wait_tail = req;
    c->wait_tail = &req->next;
}

static BlockReq *nbd_take(BlockReq **head, BlockReq ***tail)
{
    BlockReq *list = *head;

    *head = NULL;
    *tail = head;
    return list;
}

/* Fail what waits for a connection once the delay is over. */
static void nbd_expire_waiting(NbdConn *c)
{
    BlockReq *req;

    if (c->state == NBD_CONN_READY || clock_ns() < c->hold_until) {
        return;
    }
    for (req = nbd_take(&c->wait_head, &c->wait_tail); req;) {
        BlockReq *next = req->next;

        nbd_req(req)->err = EIO;
        nbd_done_push(c, req);
        req = next;
    }
}

static void nbd_schedule_retry(NbdConn *c)
{
    int64_t when = clock_ns() + NBD_RETRY_NS;

    if (c->wait_head && c->hold_until > clock_ns() && c->hold_until < when) {
        when = c->hold_until;   /* fail the waiting ones on time */
    }
    loop_timer_mod(c->retry_timer, when);
}

static void nbd_conn_start(NbdConn *c)
{
    g_autoptr(GError) err = NULL;

    c->h = nbd_start(nbd_state(c->bs), &err);
    if (!c->h) {
        trace_nbd_connect_failed(nbd_conn_id(c), err->message);
        c->state = NBD_CONN_DOWN;
        nbd_schedule_retry(c);
        return;
    }
    c->state = NBD_CONN_CONNECTING;
    c->connect_deadline = clock_ns() + NBD_CONNECT_NS;
    loop_timer_mod(c->retry_timer, c->connect_deadline);
    nbd_watch(c);
}

/*
 * Let go of the handle: its commands in flight come back failed, and
 * being of an older generation they are sent again (nbd_lost_req).
 */
static void nbd_conn_drop(NbdConn *c)
{
    nbd_unwatch(c);
    c->gen++;
    if (c->h) {
        nbd_close(c->h);
        c->h = NULL;
    }
}

static void nbd_connected(NbdConn *c)
{
    NbdState *s = nbd_state(c->bs);
    BlockReq *req;
    int64_t size = nbd_get_size(c->h);

    if (size >= 0 && (uint64_t)size < c->bs->size) {
        /* Not the export we opened: never write past its end. */
        trace_nbd_connect_failed(nbd_conn_id(c), "the export shrank");
        nbd_conn_drop(c);
        c->state = NBD_CONN_DOWN;
        nbd_schedule_retry(c);
        return;
    }
    c->state = NBD_CONN_READY;
    loop_timer_del(c->retry_timer);
    trace_nbd_connected(nbd_conn_id(c), s->server_type == NBD_SERVER_UNIX
                        ? s->path : s->host);
    if (c->was_ready) {
        blk_conn_event(c->blk, true, NULL);
    }
    c->was_ready = true;
    for (req = nbd_take(&c->wait_head, &c->wait_tail); req;) {
        BlockReq *next = req->next;

        if (c->state == NBD_CONN_READY) {
            nbd_send(c, req);
        } else {
            nbd_wait_push(c, req);          /* lost again meanwhile */
        }
        req = next;
    }
}

static void nbd_lost(NbdConn *c, const char *why)
{
    NbdState *s = nbd_state(c->bs);
    bool was_up = c->state == NBD_CONN_READY;

    trace_nbd_lost(nbd_conn_id(c), why);
    nbd_conn_drop(c);
    c->state = NBD_CONN_DOWN;
    if (was_up) {
        c->hold_until = clock_ns() +
                        (int64_t)s->reconnect_delay * 1000000000LL;
        blk_conn_event(c->blk, false, why);
        /* Try again at once: a restarted server is back quickly. */
        loop_timer_mod(c->retry_timer, clock_ns());
    } else {
        nbd_schedule_retry(c);
    }
}

/* After libnbd ran: follow its state. */
static void nbd_after_io(NbdConn *c)
{
    if (!c->h) {
        return;
    }
    if (nbd_aio_is_dead(c->h) || nbd_aio_is_closed(c->h)) {
        nbd_lost(c, nbd_get_error() ? nbd_get_error() : "connection closed");
    } else if (c->state == NBD_CONN_CONNECTING && nbd_aio_is_ready(c->h)) {
        nbd_connected(c);
        if (c->h) {
            nbd_watch(c);
        }
    } else {
        nbd_watch(c);
    }
}

static void nbd_fd_read(void *opaque)
{
    NbdConn *c = opaque;

    nbd_aio_notify_read(c->h);
    nbd_after_io(c);
}

static void nbd_fd_write(void *opaque)
{
    NbdConn *c = opaque;

    nbd_aio_notify_write(c->h);
    nbd_after_io(c);
}

static void nbd_retry(void *opaque)
{
    NbdConn *c = opaque;

    nbd_expire_waiting(c);
    if (c->state == NBD_CONN_CONNECTING &&
        clock_ns() >= c->connect_deadline) {
        trace_nbd_connect_failed(nbd_conn_id(c), "no answer");
        nbd_conn_drop(c);
        c->state = NBD_CONN_DOWN;
    }
    if (c->state == NBD_CONN_DOWN) {
        nbd_conn_start(c);
    } else if (c->state == NBD_CONN_CONNECTING) {
        /* The attempt's deadline, or the waiting requests' if sooner. */
        int64_t when = c->connect_deadline;

        if (c->wait_head && c->hold_until > clock_ns()) {
            when = MIN(when, c->hold_until);
        }
        loop_timer_mod(c->retry_timer, when);
    }
}

/* ---- requests ---- */

/* libnbd's completion callback: note the result, nothing else. */
static int nbd_cmd_done(void *opaque, int *error)
{
    BlockReq *req = opaque;
    NbdReq *r = nbd_req(req);

    if (*error && !r->err) {
        r->err = *error;
    }
    r->c->cmds--;
    if (--r->pending == 0) {
        nbd_done_push(r->c, req);
    }
    return 1;
}

typedef int64_t NbdIssue(struct nbd_handle *h, BlockReq *req, uint64_t off,
                         uint64_t len, void *buf, uint32_t flags,
                         nbd_completion_callback cb);

static int64_t issue_read(struct nbd_handle *h, BlockReq *req, uint64_t off,
                          uint64_t len, void *buf, uint32_t flags,
                          nbd_completion_callback cb)
{
    return nbd_aio_pread(h, buf, len, off, cb, 0);
}

static int64_t issue_write(struct nbd_handle *h, BlockReq *req, uint64_t off,
                           uint64_t len, void *buf, uint32_t flags,
                           nbd_completion_callback cb)
{
    return nbd_aio_pwrite(h, buf, len, off, cb, flags);
}

/* One command; false (r->err set) when libnbd refused it. */
static bool nbd_issue(NbdConn *c, BlockReq *req, NbdIssue *fn, uint64_t off,
                      uint64_t len, void *buf, uint32_t flags)
{
    NbdReq *r = nbd_req(req);
    nbd_completion_callback cb = { .callback = nbd_cmd_done,
                                   .user_data = req };

    r->pending++;
    c->cmds++;
    if (fn(c->h, req, off, len, buf, flags, cb) < 0) {
        c->cmds--;
        r->pending--;
        r->err = nbd_get_errno() ? nbd_get_errno() : EIO;
        /* Refused because the connection just died: send it again. */
        r->lost = nbd_aio_is_dead(c->h) || nbd_aio_is_closed(c->h);
        return false;
    }
    return true;
}

/* Each iovec segment (split at the server's limit) is a command. */
static void nbd_send_rw(NbdConn *c, BlockReq *req, uint32_t flags)
{
    NbdState *s = nbd_state(c->bs);
    NbdIssue *fn = req->op == BLK_OP_READ ? issue_read : issue_write;
    uint64_t off = req->offset;

    for (unsigned i = 0; i < req->niov; i++) {
        uint8_t *base = req->iov[i].iov_base;
        size_t left = req->iov[i].iov_len;

        while (left) {
            size_t n = MIN(left, s->max_payload);

            if (!nbd_issue(c, req, fn, off, n, base, flags)) {
                return;
            }
            base += n;
            off += n;
            left -= n;
        }
    }
}

static int64_t issue_trim(struct nbd_handle *h, BlockReq *req, uint64_t off,
                          uint64_t len, void *buf, uint32_t flags,
                          nbd_completion_callback cb)
{
    return nbd_aio_trim(h, len, off, cb, flags);
}

static int64_t issue_zero(struct nbd_handle *h, BlockReq *req, uint64_t off,
                          uint64_t len, void *buf, uint32_t flags,
                          nbd_completion_callback cb)
{
    return nbd_aio_zero(h, len, off, cb, flags);
}

/* A ranged command in chunks a 32-bit NBD length can carry. */
static void nbd_send_range(NbdConn *c, BlockReq *req, NbdIssue *fn,
                           uint32_t flags)
{
    for (uint64_t done = 0; done < req->bytes;) {
        uint64_t n = MIN(req->bytes - done, NBD_CHUNK_MAX);

        if (!nbd_issue(c, req, fn, req->offset + done, n, NULL, flags)) {
            return;
        }
        done += n;
    }
}

/* Write zeroes on a server without NBD_CMD_WRITE_ZEROES. */
static void nbd_send_zero_writes(NbdConn *c, BlockReq *req, uint32_t flags)
{
    static uint8_t zeroes[64 * 1024];

    for (uint64_t done = 0; done < req->bytes;) {
        uint64_t n = MIN(req->bytes - done, sizeof(zeroes));

        if (!nbd_issue(c, req, issue_write, req->offset + done, n, zeroes,
                       flags)) {
            return;
        }
        done += n;
    }
}

static int64_t issue_flush(struct nbd_handle *h, BlockReq *req,
                           uint64_t off, uint64_t len, void *buf,
                           uint32_t flags, nbd_completion_callback cb)
{
    return nbd_aio_flush(h, cb, 0);
}

/* Send @req on the ready connection; it completes in nbd_done_bh. */
static void nbd_send(NbdConn *c, BlockReq *req)
{
    NbdState *s = nbd_state(c->bs);
    NbdReq *r = nbd_req(req);
    bool fua = req->flags & BLK_REQ_FUA;
    uint32_t flags = fua && s->can_fua ? LIBNBD_CMD_FLAG_FUA : 0;

    r->gen = c->gen;
    r->err = 0;
    r->lost = false;
    r->pending = 1;             /* held while the commands go out */
    r->flush_after = fua && !s->can_fua && s->can_flush;
    switch (req->op) {
    case BLK_OP_READ:
    case BLK_OP_WRITE:
        nbd_send_rw(c, req, flags);
        break;
    case BLK_OP_FLUSH:
        if (s->can_flush) {
            nbd_issue(c, req, issue_flush, 0, 0, NULL, 0);
        }
        break;
    case BLK_OP_DISCARD:
        if (!s->can_trim) {
            r->err = ENOTSUP;
            break;
        }
        nbd_send_range(c, req, issue_trim, 0);
        break;
    case BLK_OP_WRITE_ZEROES:
        if (s->can_zero) {
            flags |= req->flags & BLK_REQ_MAY_UNMAP ? 0
                                                    : LIBNBD_CMD_FLAG_NO_HOLE;
            nbd_send_range(c, req, issue_zero, flags);
        } else {
            nbd_send_zero_writes(c, req, flags);
        }
        break;
    default:
        r->err = EINVAL;
        break;
    }
    if (--r->pending == 0) {
        nbd_done_push(c, req);
    }
    nbd_after_io(c);
}

/* A request whose commands went to a connection that is gone. */
static bool nbd_lost_req(NbdConn *c, NbdReq *r)
{
    return r->lost || (r->err && r->gen != c->gen);
}

static void nbd_finish(NbdConn *c, BlockReq *req)
{
    NbdReq *r = nbd_req(req);

    if (nbd_lost_req(c, r) && c->state != NBD_CONN_READY &&
        clock_ns() < c->hold_until) {
        nbd_wait_push(c, req);              /* sent again on reconnect */
    } else if (nbd_lost_req(c, r) && c->state == NBD_CONN_READY) {
        if (c->refresh) {
            nbd_wait_push(c, req);
        } else {
            nbd_send(c, req);               /* already back */
        }
    } else if (r->err) {
        blk_req_complete(req, -(r->err == ENOTCONN ? EIO : r->err));
    } else if (r->flush_after) {
        r->flush_after = false;
        r->pending = 1;
        if (nbd_issue(c, req, issue_flush, 0, 0, NULL, 0)) {
            nbd_after_io(c);
        } else {
            r->pending = 0;
            nbd_done_push(c, req);
        }
    } else {
        blk_req_complete(req, 0);
    }
}

/*
 * The export was resized on the server: a connection knows the size it
 * was opened with (libnbd and the server check requests against it), so
 * connect again once the commands at the server are answered; new
 * requests wait meanwhile.
 */
static void nbd_refresh(NbdConn *c)
{
    if (!c->refresh || c->state != NBD_CONN_READY || c->cmds) {
        return;
    }
    c->refresh = false;
    c->hold_until = MAX(c->hold_until, clock_ns() + NBD_CONNECT_NS);
    nbd_conn_drop(c);
    nbd_conn_start(c);
}

static void nbd_resized(BlockNode *bs, BlockBackend *blk)
{
    NbdConn *c = blk_drv_state(blk);

    c->refresh = true;
    nbd_refresh(c);
}

static void nbd_done_bh(void *opaque)
{
    NbdConn *c = opaque;
    BlockReq *req = nbd_take(&c->done_head, &c->done_tail);

    while (req) {
        BlockReq *next = req->next;

        nbd_finish(c, req);
        req = next;
    }
    nbd_refresh(c);
    if (c->wait_head && c->state != NBD_CONN_READY &&
        !loop_timer_pending(c->retry_timer)) {
        nbd_schedule_retry(c);
    }
}

static int nbd_submit(BlockNode *bs, BlockReq *req)
{
    NbdConn *c = blk_drv_state(req->blk);
    NbdReq *r = nbd_req(req);

    memset(r, 0, sizeof(*r));
    r->c = c;
    if (c->state == NBD_CONN_READY && !c->refresh) {
        nbd_send(c, req);
    } else if (c->refresh || clock_ns() < c->hold_until) {
        nbd_wait_push(c, req);
        if (!loop_timer_pending(c->retry_timer)) {
            nbd_schedule_retry(c);
        }
    } else {
        r->err = EIO;                       /* no connection, no waiting */
        nbd_done_push(c, req);
    }
    return 0;
}

/* ---- backends ---- */

static bool nbd_attach(BlockNode *bs, BlockBackend *blk, GError **errp)
{
    NbdConn *c = g_new0(NbdConn, 1);

    c->bs = bs;
    c->blk = blk;
    c->loop = blk_loop(blk);
    c->fd = -1;
    c->wait_tail = &c->wait_head;
    c->done_tail = &c->done_head;
    c->done_bh = loop_bh_new(c->loop, nbd_done_bh, c);
    c->retry_timer = loop_timer_new(c->loop, nbd_retry, c);
    /* The first requests wait for the first connection like a reconnect. */
    c->hold_until = clock_ns() +
                    MAX((int64_t)nbd_state(bs)->reconnect_delay * 1000000000LL,
                        (int64_t)NBD_OPEN_TIMEOUT_MS * 1000000);
    blk_set_drv_state(blk, c);
    nbd_conn_start(c);
    return true;
}

/*
 * Nothing is in flight: flush what the server caches (waiting at most
 * NBD_CONNECT_NS: a server that stopped answering must not hold the
 * device's teardown, nor the daemon's exit), say goodbye.
 */
static void nbd_detach(BlockNode *bs, BlockBackend *blk)
{
    NbdConn *c = blk_drv_state(blk);

    g_assert(!c->wait_head && !c->done_head);
    if (c->h && c->state == NBD_CONN_READY) {
        int64_t deadline = clock_ns() + NBD_CONNECT_NS;
        int64_t cookie = nbd_state(bs)->can_flush ?
            nbd_aio_flush(c->h, NBD_NULL_COMPLETION, 0) : -1;

        bool answered = true;

        while (cookie > 0 && nbd_aio_command_completed(c->h, cookie) == 0) {
            if (!nbd_poll_until(c->h, deadline)) {
                trace_nbd_lost(nbd_conn_id(c), "no answer to the flush at "
                               "detach");
                answered = false;
                break;
            }
        }
        if (answered) {
            /* Queued, not waited for (nbd_shutdown() may block). */
            nbd_aio_disconnect(c->h, 0);
        }
    }
    nbd_conn_drop(c);
    loop_timer_free(c->retry_timer);
    loop_bh_delete(c->done_bh);
    blk_set_drv_state(blk, NULL);
    g_free(c);
}

/* ---- nodes ---- */

/* Connect, check the answers, read what the export offers. */
static bool nbd_probe(BlockNode *bs, uint64_t *size, GError **errp)
{
    NbdState *s = nbd_state(bs);
    struct nbd_handle *h = nbd_connect_wait(s, NBD_OPEN_TIMEOUT_MS, errp);
    int64_t sz, max;

    if (!h) {
        return false;
    }
    sz = nbd_get_size(h);
    if (sz < 0) {
        error_setg(errp, "nbd: %s", nbd_get_error());
        nbd_close(h);
        return false;
    }
    *size = sz;
    s->can_flush = nbd_can_flush(h) == 1;
    s->can_fua = nbd_can_fua(h) == 1;
    s->can_trim = nbd_can_trim(h) == 1;
    s->can_zero = nbd_can_zero(h) == 1;
    max = nbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM);
    s->max_payload = max > 0 ? MIN(max, (int64_t)NBD_PAYLOAD_DEFAULT)
                             : NBD_PAYLOAD_DEFAULT;
    if (nbd_is_read_only(h) == 1) {
        bs->read_only = true;
    }
    nbd_shutdown(h, 0);
    nbd_close(h);
    return true;
}

static bool nbd_open(BlockNode *bs, GError **errp)
{
    NbdState *s = nbd_state(bs);
    const char *ex = s->export ? s->export : "";

    if (s->server_type == NBD_SERVER_UNIX && !s->path) {
        error_setg(errp, "property 'server.path': required with "
                   "server.type=unix");
        return false;
    }
    if (s->server_type == NBD_SERVER_INET && !s->host) {
        error_setg(errp, "property 'server.host': required with "
                   "server.type=inet");
        return false;
    }
    if (!nbd_probe(bs, &bs->size, errp)) {
        return false;
    }
    /* QEMU's way of naming it (query-block's "file"). */
    bs->filename = s->server_type == NBD_SERVER_UNIX ?
        g_strdup_printf("nbd+unix:///%s?socket=%s", ex, s->path) :
        g_strdup_printf("nbd://%s:%s/%s", s->host, s->port, ex);
    trace_nbd_open(bs->node_name, bs->filename, bs->size, s->can_flush,
                   s->can_fua, s->can_trim, s->can_zero, s->max_payload);
    return true;
}

static void nbd_close_node(BlockNode *bs)
{
}

/*
 * NBD cannot resize an export: the server's side changes it.  block_resize
 * to the size the export has now (after growing it on the server) is
 * accepted, so devices see the new size.
 */
static bool nbd_truncate(BlockNode *bs, uint64_t size, GError **errp)
{
    uint64_t now;

    if (!nbd_probe(bs, &now, errp)) {
        return false;
    }
    if (now != size) {
        error_setg(errp, "the NBD export is %" PRIu64 " bytes and cannot be "
                   "resized from here: resize it on the server, then "
                   "block_resize to its new size", now);
        return false;
    }
    return true;
}

static const BlockDriver nbd_driver = {
    .name = "nbd",
    .opaque_size = sizeof(NbdState),
    .props = nbd_props,
    .open = nbd_open,
    .close = nbd_close_node,
    .attach = nbd_attach,
    .detach = nbd_detach,
    .submit = nbd_submit,
    .truncate = nbd_truncate,
    .resized = nbd_resized,
};

static void __attribute__((constructor)) nbd_register(void)
{
    blk_driver_register(&nbd_driver);
}
#endif
