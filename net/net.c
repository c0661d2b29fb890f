/*
 * The network layer core: clients and peers, the per-client packet queue
 * with back-pressure, link state, receive-filter events, the backend
 * registry and -netdev.  Backends live in slirp.c, tap.c and stream.c.
 *
 * All of it runs on the main loop's thread.
 */
#include "net/checksum.h"
#include "net/net-int.h"
#include "net/trace.h"
#include "util/error.h"
#include "util/log.h"
#include "util/cmdline.h"
#include "util/loop.h"
#include "util/throttle.h"

#include <endian.h>

/* A frame waiting in a client's queue (the slow path: one allocation). */
typedef struct NetPacket {
    GList link;                 /* in NetClient.queue */
    size_t len;
    int64_t queued_ns;
    bool held;                  /* queued because a rate limit held it */
    uint8_t data[];
} NetPacket;

/*
 * A netdev's rate limit of one direction (rx: frames to its NIC; tx:
 * frames from its NIC).  It runs on the backend's loop, which is its
 * NIC's: no lock.
 */
enum { NET_DIR_RX, NET_DIR_TX, NET_DIR_N };
enum { NET_TB_BYTES, NET_TB_FRAMES, NET_TB_N };
#define NET_TB_MASK ((1u << NET_TB_BYTES) | (1u << NET_TB_FRAMES))

typedef struct NetThrottleDir {
    Throttle t;
    NetClient *backend;
    bool rx;
    LoopTimer *timer;           /* the limit lets frames go again */
    bool holding;               /* the limit holds the direction now */
    int64_t hold_start;
    NetThrottleStats st;
} NetThrottleDir;

/* What the layer keeps per client beyond the public NetClient. */
typedef struct NetClientPriv {
    NetClient nc;
    const NetBackendDriver *drv;    /* NULL for NICs */
    bool flushing;
    bool peer_waits;            /* the peer was told "not now" */
    uint8_t *scratch;           /* linearized frame, allocated when needed */
    NetAdopt *adopt;            /* live upgrade: queues for the NIC */
    NetThrottleDir *thr[NET_DIR_N];     /* backends: rate limits */
    NetThrottle limits;
} NetClientPriv;

#define NET_SCRATCH_SIZE (NET_MAX_FRAME + NET_VNET_HDR_LEN)

static GList *clients;          /* of NetClient *, creation order */
static GSList *drivers;         /* of const NetBackendDriver *, by type */
static NetRxFilterEventFunc *rx_filter_event_hook;
static unsigned nic_counter;

static inline NetClientPriv *net_priv(NetClient *nc)
{
    return container_of(nc, NetClientPriv, nc);
}

static uint8_t *net_scratch(NetClient *nc)
{
    NetClientPriv *p = net_priv(nc);

    if (!p->scratch) {
        p->scratch = g_malloc(NET_SCRATCH_SIZE);
    }
    return p->scratch;
}

/* ---- clients ---- */

static NetClient *net_client_new(const NetClientOps *ops, const char *name,
                                 const char *model, bool is_nic,
                                 void *opaque)
{
    NetClientPriv *p = g_new0(NetClientPriv, 1);
    NetClient *nc = &p->nc;

    nc->ops = ops;
    nc->name = g_strdup(name);
    nc->model = model;
    nc->is_nic = is_nic;
    nc->loop = loop_main();
    nc->pcap_fd = -1;
    nc->opaque = opaque;
    g_queue_init(&nc->queue);
    clients = g_list_append(clients, nc);
    return nc;
}

static void net_client_free(NetClient *nc)
{
    NetClientPriv *p = net_priv(nc);

    net_purge_queue(nc);
    net_pcap_close(nc);
    clients = g_list_remove(clients, nc);
    g_free(nc->name);
    g_free(nc->info_str);
    g_free(p->scratch);
    g_free(p);
}

NetClient *net_client_find(const char *name)
{
    NetClient *backend = NULL;

    for (GList *l = clients; l; l = l->next) {
        NetClient *nc = l->data;

        if (strcmp(nc->name, name) == 0) {
            if (nc->is_nic) {
                return nc;
            }
            backend = backend ? backend : nc;
        }
    }
    return backend;
}

void net_client_foreach(void (*fn)(NetClient *nc, void *opaque),
                        void *opaque)
{
    GList *copy = g_list_copy(clients);

    for (GList *l = copy; l; l = l->next) {
        fn(l->data, opaque);
    }
    g_list_free(copy);
}

void net_client_set_info(NetClient *nc, const char *fmt, ...)
{
    va_list ap;

    g_free(nc->info_str);
    va_start(ap, fmt);
    nc->info_str = g_strdup_vprintf(fmt, ap);
    va_end(ap);
}

/* ---- the packet queue ---- */

static NetThrottleDir *net_throttle_dir(NetClient *receiver);

static void net_queue_append(NetClient *nc, const struct iovec *iov,
                             int iovcnt, size_t len)
{
    NetThrottleDir *d = net_throttle_dir(nc);
    NetPacket *pkt;

    if (g_queue_get_length(&nc->queue) >= NET_QUEUE_MAX_FRAMES) {
        if (d && d->holding) {
            d->st.dropped++;
        }
        nc->stats.rx_dropped++;
        trace_net_queue_drop(nc->name, len, nc->stats.rx_dropped);
        return;
    }
    pkt = g_malloc(sizeof(*pkt) + len);
    pkt->len = len;
    pkt->queued_ns = clock_ns();
    pkt->held = d && d->holding;
    pkt->link = (GList) { .data = pkt };
    iov_to_buf(iov, iovcnt, 0, pkt->data, len);
    g_queue_push_tail_link(&nc->queue, &pkt->link);
    trace_net_queue_append(nc->name, len, g_queue_get_length(&nc->queue));
}

void net_purge_queue(NetClient *nc)
{
    GList *link;
    unsigned n = 0;

    while ((link = g_queue_pop_head_link(&nc->queue))) {
        g_free(link->data);
        n++;
    }
    nc->stats.rx_dropped += n;
    nc->receive_disabled = false;
    if (n) {
        trace_net_queue_purge(nc->name, n);
    }
}

/* ---- rate limits ---- */

/* The limit on frames to @receiver (a NIC or a backend), if any. */
static NetThrottleDir *net_throttle_dir(NetClient *receiver)
{
    NetClient *b = receiver->is_nic ? receiver->peer : receiver;
    NetThrottleDir *d;

    if (!b) {
        return NULL;
    }
    d = net_priv(b)->thr[receiver->is_nic ? NET_DIR_RX : NET_DIR_TX];
    return d && throttle_enabled(&d->t) ? d : NULL;
}

/*
 * May @receiver take a frame now, as far as its limit goes?  When not,
 * the limit holds the direction: the timer lets it go again (flushing
 * what waits, then telling the sender it may send: writable()).
 */
static bool net_throttle_open(NetClient *receiver)
{
    NetThrottleDir *d = net_throttle_dir(receiver);
    int64_t now, wait;

    if (!d) {
        return true;
    }
    now = clock_ns();
    throttle_leak(&d->t, now);
    wait = throttle_wait_ns(&d->t, NET_TB_MASK);
    if (!wait) {
        if (d->holding) {
            d->holding = false;
            d->st.held_ns += now - d->hold_start;
        }
        return true;
    }
    if (!d->holding) {
        d->holding = true;
        d->hold_start = now;
        d->st.holds++;
        trace_net_throttle_hold(d->backend->name, d->rx ? "rx" : "tx",
                                wait);
    }
    if (!loop_timer_pending(d->timer)) {
        loop_timer_mod(d->timer, now + wait);
    }
    return false;
}

/* @receiver took a frame of @len bytes (with its vnet header, if any). */
static void net_throttle_account(NetClient *receiver, size_t len)
{
    NetThrottleDir *d = net_throttle_dir(receiver);
    uint64_t cost[NET_TB_N];

    if (!d) {
        return;
    }
    len -= receiver->has_vnet_hdr ? MIN(len, NET_VNET_HDR_LEN) : 0;
    cost[NET_TB_BYTES] = len;
    cost[NET_TB_FRAMES] = 1;
    throttle_account(&d->t, NET_TB_MASK, cost);
    d->st.frames++;
    d->st.bytes += len;
}

/* A frame the limit held in the queue was delivered. */
static void net_throttle_delayed(NetClient *receiver, NetPacket *pkt)
{
    NetThrottleDir *d = net_throttle_dir(receiver);

    if (d && pkt->held) {
        d->st.delayed_frames++;
        d->st.delayed_bytes += pkt->len;
        d->st.delay_ns += clock_ns() - pkt->queued_ns;
    }
}

static void net_throttle_timer_cb(void *opaque)
{
    NetThrottleDir *d = opaque;
    NetClient *r = d->rx ? d->backend->peer : d->backend;

    if (!r) {
        /* The NIC went away: nothing waits for this limit any more. */
        if (d->holding) {
            d->holding = false;
            d->st.held_ns += clock_ns() - d->hold_start;
        }
        return;
    }
    /*
     * Open again (or armed anew) even when nothing is queued and no
     * sender waits: the hold ends now, not at the next frame.
     */
    if (net_throttle_open(r)) {
        net_flush_queue(r);
    }
}

/* Count one frame @sender handed to @receiver, which returned @ret. */
static void net_account(NetClient *sender, NetClient *receiver, size_t len,
                        ssize_t ret)
{
    if (ret < 0) {
        if (sender) {
            sender->stats.tx_errors++;
        }
        return;
    }
    if (sender) {
        sender->stats.tx_frames++;
        sender->stats.tx_bytes += len;
    }
    net_throttle_account(receiver, len);
    if (ret > 0) {
        receiver->stats.rx_frames++;
        receiver->stats.rx_bytes += len;
    } else if (!receiver->is_nic) {
        /* A NIC counts its own drops (MAC filter) as hardware does. */
        receiver->stats.rx_dropped++;
    }
}

bool net_can_receive(NetClient *nc)
{
    if (!nc) {
        return false;
    }
    if (nc->receive_disabled || !g_queue_is_empty(&nc->queue) ||
        (nc->ops->can_receive && !nc->ops->can_receive(nc)) ||
        !net_throttle_open(nc)) {
        /* Whoever asked waits: wake the peer on the next flush. */
        net_priv(nc)->peer_waits = true;
        return false;
    }
    return true;
}

bool net_client_can_send(NetClient *nc)
{
    return !nc->peer || net_can_receive(nc->peer);
}

/*
 * Hand a frame (already in @peer's header format) to @peer, or queue it.
 * Returns true when it was delivered (or dropped by the receiver).
 */
static bool net_deliver(NetClient *sender, NetClient *peer,
                        const struct iovec *iov, int iovcnt, size_t len)
{
    ssize_t ret;

    if (!net_can_receive(peer)) {
        net_queue_append(peer, iov, iovcnt, len);
        return false;
    }
    ret = peer->ops->receive(peer, iov, iovcnt);
    if (ret == -EAGAIN) {
        peer->receive_disabled = true;
        net_priv(peer)->peer_waits = true;
        net_queue_append(peer, iov, iovcnt, len);
        return false;
    }
    net_account(sender, peer, len, ret);
    return true;
}

void net_flush_queue(NetClient *nc)
{
    NetClientPriv *p = net_priv(nc);
    unsigned n = 0;

    if (p->flushing) {
        /* Called from our own receive(): the outer loop carries on. */
        nc->receive_disabled = false;
        return;
    }
    p->flushing = true;
    nc->receive_disabled = false;
    while (!g_queue_is_empty(&nc->queue)) {
        NetPacket *pkt = g_queue_peek_head(&nc->queue);
        struct iovec iov = { pkt->data, pkt->len };
        ssize_t ret;

        if ((nc->ops->can_receive && !nc->ops->can_receive(nc)) ||
            !net_throttle_open(nc)) {
            break;
        }
        ret = nc->ops->receive(nc, &iov, 1);
        if (ret == -EAGAIN) {
            nc->receive_disabled = true;
            break;
        }
        g_queue_pop_head_link(&nc->queue);
        net_account(nc->peer, nc, pkt->len, ret);
        net_throttle_delayed(nc, pkt);
        g_free(pkt);
        n++;
    }
    p->flushing = false;
    trace_net_queue_flush(nc->name, n, g_queue_get_length(&nc->queue));
    if (g_queue_is_empty(&nc->queue) && !nc->receive_disabled &&
        p->peer_waits &&
        (!nc->ops->can_receive || nc->ops->can_receive(nc)) &&
        net_throttle_open(nc)) {
        p->peer_waits = false;
        if (nc->peer && nc->peer->ops->writable) {
            nc->peer->ops->writable(nc->peer);
        }
    }
}

/* ---- sending ---- */

/* Complete a NEEDS_CSUM frame (no header) in place, as a device would. */
static bool net_complete_csum(uint8_t *frame, size_t len,
                              const NetVnetHdr *h)
{
    size_t start = le16toh(h->csum_start);
    size_t off = le16toh(h->csum_offset);

    if (start >= len || off + 2 > len - start) {
        return false;
    }
    stw_be_p(frame + start + off,
             net_checksum_finish(net_checksum_add(0, frame + start,
                                                  len - start)));
    return true;
}

ssize_t net_sendv(NetClient *nc, const struct iovec *iov, int iovcnt)
{
    uint8_t zero_hdr[NET_VNET_HDR_LEN] = { 0 };
    NetClient *peer = nc->peer;
    size_t len = iov_size(iov, iovcnt);
    size_t hdr = nc->has_vnet_hdr ? NET_VNET_HDR_LEN : 0;
    struct iovec local[NET_IOV_INLINE + 1];
    const struct iovec *out = iov;
    int outcnt = iovcnt;
    size_t outlen = len;

    if (len <= hdr || len > NET_MAX_FRAME + hdr || iovcnt > IOV_MAX) {
        nc->stats.tx_errors++;
        trace_net_err_bad_frame(nc->name, len);
        return -EINVAL;
    }
    if (!peer || nc->link_down || peer->link_down) {
        nc->stats.tx_dropped++;
        return len;
    }
    if (nc->pcap_fd >= 0) {
        net_pcap_write(nc, iov, iovcnt, hdr);
    } else if (peer->pcap_fd >= 0) {
        net_pcap_write(peer, iov, iovcnt, hdr);
    }

    if (nc->has_vnet_hdr && !peer->has_vnet_hdr) {
        NetVnetHdr h;

        iov_to_buf(iov, iovcnt, 0, &h, sizeof(h));
        outlen = len - NET_VNET_HDR_LEN;
        if ((h.gso_type & ~NET_VNET_GSO_ECN) != NET_VNET_GSO_NONE) {
            nc->stats.tx_errors++;
            trace_net_err_gso_dropped(nc->name, peer->name, h.gso_type);
            return -EINVAL;
        }
        if (h.flags & NET_VNET_F_NEEDS_CSUM) {
            uint8_t *buf = net_scratch(nc);

            iov_to_buf(iov, iovcnt, NET_VNET_HDR_LEN, buf, outlen);
            if (!net_complete_csum(buf, outlen, &h)) {
                nc->stats.tx_errors++;
                trace_net_err_bad_csum_offset(nc->name,
                                              le16toh(h.csum_start),
                                              le16toh(h.csum_offset));
                return -EINVAL;
            }
            local[0].iov_base = buf;
            local[0].iov_len = outlen;
            outcnt = 1;
        } else {
            outcnt = iov_slice(local, ARRAY_SIZE(local), iov, iovcnt,
                               NET_VNET_HDR_LEN, SIZE_MAX);
            if (outcnt < 0) {
                local[0].iov_base = net_scratch(nc);
                local[0].iov_len = iov_to_buf(iov, iovcnt,
                                                  NET_VNET_HDR_LEN,
                                                  local[0].iov_base,
                                                  outlen);
                outcnt = 1;
            }
        }
        out = local;
    } else if (!nc->has_vnet_hdr && peer->has_vnet_hdr) {
        local[0].iov_base = zero_hdr;
        local[0].iov_len = NET_VNET_HDR_LEN;
        outlen = len + NET_VNET_HDR_LEN;
        if (iovcnt < (int)ARRAY_SIZE(local)) {
            memcpy(&local[1], iov, iovcnt * sizeof(*iov));
            outcnt = iovcnt + 1;
        } else {
            local[1].iov_base = net_scratch(nc);
            local[1].iov_len = iov_to_buf(iov, iovcnt, 0,
                                              local[1].iov_base, len);
            outcnt = 2;
        }
        out = local;
    }

    return net_deliver(nc, peer, out, outcnt, outlen) ? (ssize_t)len : 0;
}

ssize_t net_send(NetClient *nc, const void *buf, size_t len)
{
    struct iovec iov = { (void *)buf, len };

    return net_sendv(nc, &iov, 1);
}

/* ---- link ---- */

static void net_notify_link(NetClient *nc)
{
    if (nc->ops->link_status_changed) {
        nc->ops->link_status_changed(nc);
    }
}

bool net_link_up(NetClient *nc)
{
    if (nc->link_down) {
        return false;
    }
    return !nc->peer || (!nc->peer->link_down && !nc->peer->carrier_down);
}

typedef struct SetLink {
    NetClient *nc;
    bool up;
} SetLink;

/* On the client's loop: the NIC reacts there. */
static void net_set_link_on_loop(void *opaque)
{
    SetLink *sl = opaque;
    NetClient *nc = sl->nc;

    trace_net_set_link(nc->name, sl->up);
    nc->link_down = !sl->up;
    /* As QEMU: a backend's link also sets the NIC's. */
    if (nc->peer && nc->peer->is_nic) {
        nc->peer->link_down = !sl->up;
    }
    net_notify_link(nc);
    if (nc->peer) {
        net_notify_link(nc->peer);
    }
}

bool net_set_link(const char *name, bool up, GError **errp)
{
    GList *matches = NULL;

    for (GList *l = clients; l; l = l->next) {
        NetClient *nc = l->data;

        if (strcmp(nc->name, name) == 0) {
            matches = g_list_append(matches, nc);
        }
    }
    if (!matches) {
        error_setg_class(errp, IOVD_ERROR_DEVICE_NOT_FOUND,
                         "Device '%s' not found", name);
        return false;
    }
    for (GList *l = matches; l; l = l->next) {
        SetLink sl = { l->data, up };

        loop_run_sync(sl.nc->loop, net_set_link_on_loop, &sl);
    }
    g_list_free(matches);
    return true;
}

void net_backend_set_carrier(NetClient *nc, bool up)
{
    if (nc->carrier_down == !up) {
        return;
    }
    nc->carrier_down = !up;
    trace_net_carrier(nc->name, up);
    if (nc->peer) {
        net_notify_link(nc->peer);
    }
}

/* ---- rate limits: configuration ---- */

typedef struct SetThrottle {
    NetClient *nc;
    const NetThrottle *t;
} SetThrottle;

/* On the backend's loop, where its limits are used. */
static void net_set_throttle_on_loop(void *opaque)
{
    SetThrottle *st = opaque;
    NetClientPriv *p = net_priv(st->nc);
    int64_t now = clock_ns();

    p->limits = *st->t;
    for (int i = 0; i < NET_DIR_N; i++) {
        uint64_t rates[NET_TB_N] = {
            i == NET_DIR_RX ? st->t->rx_bps : st->t->tx_bps,
            i == NET_DIR_RX ? st->t->rx_pps : st->t->tx_pps,
        };
        NetThrottleDir *d = p->thr[i];

        if (!d) {
            if (!rates[0] && !rates[1]) {
                continue;
            }
            d = p->thr[i] = g_new0(NetThrottleDir, 1);
            d->backend = st->nc;
            d->rx = i == NET_DIR_RX;
            d->timer = loop_timer_new(st->nc->loop, net_throttle_timer_cb,
                                      d);
        }
        throttle_config(&d->t, rates, NET_TB_N, now);
        if (d->holding) {
            d->holding = false;
            d->st.held_ns += now - d->hold_start;
        }
        /* What waits for the old limit goes now, or waits anew. */
        loop_timer_mod(d->timer, now);
    }
}

bool net_set_throttle(const char *name, const NetThrottle *t, GError **errp)
{
    NetClient *nc = net_client_find(name);
    SetThrottle st = { nc && nc->is_nic ? nc->peer : nc, t };

    if (!nc) {
        error_setg_class(errp, IOVD_ERROR_DEVICE_NOT_FOUND,
                         "Device '%s' not found", name);
        return false;
    }
    if (!st.nc) {
        error_setg(errp, "NIC '%s' has no netdev to limit", name);
        return false;
    }
    trace_net_throttle_set(st.nc->name, t->rx_bps, t->rx_pps, t->tx_bps,
                           t->tx_pps);
    loop_run_sync(st.nc->loop, net_set_throttle_on_loop, &st);
    return true;
}

typedef struct GetThrottle {
    NetClient *nc;
    NetThrottleStats *st;
} GetThrottle;

static void net_get_throttle_on_loop(void *opaque)
{
    GetThrottle *g = opaque;
    int64_t now = clock_ns();

    for (int i = 0; i < NET_DIR_N; i++) {
        NetThrottleDir *d = net_priv(g->nc)->thr[i];

        memset(&g->st[i], 0, sizeof(g->st[i]));
        if (d) {
            g->st[i] = d->st;
            g->st[i].holding = d->holding;
            if (d->holding) {
                g->st[i].held_ns += now - d->hold_start;
            }
        }
    }
}

bool net_get_throttle(NetClient *nc, NetThrottle *t, NetThrottleStats *st)
{
    GetThrottle g = { nc, st };
    NetClientPriv *p;

    if (nc->is_nic) {
        return false;
    }
    p = net_priv(nc);
    if (!p->thr[NET_DIR_RX] && !p->thr[NET_DIR_TX]) {
        return false;
    }
    *t = p->limits;
    loop_run_sync(nc->loop, net_get_throttle_on_loop, &g);
    return true;
}

/* ---- receive filter events ---- */

void net_set_rx_filter_event_hook(NetRxFilterEventFunc *fn)
{
    rx_filter_event_hook = fn;
}

void net_rx_filter_changed(NetClient *nc)
{
    if (!nc->is_nic || nc->rx_filter_event_pending) {
        return;
    }
    nc->rx_filter_event_pending = true;
    trace_net_rx_filter_event(nc->name);
    if (rx_filter_event_hook) {
        rx_filter_event_hook(nc);
    }
}

typedef struct QueryRxFilter {
    NetClient *nc;
    NetRxFilterInfo *info;
} QueryRxFilter;

static void net_query_rx_filter_on_loop(void *opaque)
{
    QueryRxFilter *q = opaque;

    q->nc->ops->rx_filter_info(q->nc, q->info);
    q->nc->rx_filter_event_pending = false;
}

bool net_query_rx_filter(const char *name, NetRxFilterInfo *info,
                         GError **errp)
{
    NetClient *nc = net_client_find(name);
    QueryRxFilter ctx;

    if (!nc) {
        error_setg_class(errp, IOVD_ERROR_DEVICE_NOT_FOUND,
                         "Device '%s' not found", name);
        return false;
    }
    if (!nc->is_nic) {
        error_setg(errp, "'%s' is a network backend, not a NIC", name);
        return false;
    }
    if (!nc->ops->rx_filter_info) {
        error_setg(errp, "NIC '%s' (%s) cannot report its receive filter",
                   name, nc->model);
        return false;
    }
    memset(info, 0, sizeof(*info));
    ctx.nc = nc;
    ctx.info = info;
    loop_run_sync(nc->loop, net_query_rx_filter_on_loop, &ctx);
    return true;
}

/* ---- vnet header and offloads ---- */

static NetClient *net_backend_of(NetClient *nc)
{
    return nc && nc->is_nic ? nc->peer : nc;
}

bool net_has_vnet_hdr(NetClient *nc)
{
    NetClient *b = net_backend_of(nc);

    return b && b->has_vnet_hdr;
}

bool net_set_offloads(NetClient *nc, bool csum, bool tso4, bool tso6,
                      bool ecn, bool ufo)
{
    NetClient *b = net_backend_of(nc);
    const NetBackendDriver *drv = b ? net_priv(b)->drv : NULL;
    unsigned flags = (csum ? NET_OFFLOAD_CSUM : 0) |
                     (tso4 ? NET_OFFLOAD_TSO4 : 0) |
                     (tso6 ? NET_OFFLOAD_TSO6 : 0) |
                     (ecn ? NET_OFFLOAD_ECN : 0) |
                     (ufo ? NET_OFFLOAD_UFO : 0);

    if (!drv || !b->has_vnet_hdr || !drv->set_offloads) {
        return flags == 0;
    }
    return drv->set_offloads(b, flags);
}

/* ---- backends ---- */

static gint net_driver_cmp(gconstpointer a, gconstpointer b)
{
    return strcmp(((const NetBackendDriver *)a)->type,
                  ((const NetBackendDriver *)b)->type);
}

void net_backend_driver_register(const NetBackendDriver *drv)
{
    drivers = g_slist_insert_sorted(drivers, (gpointer)drv, net_driver_cmp);
}

static const NetBackendDriver *net_driver_find(const char *type)
{
    for (GSList *l = drivers; l; l = l->next) {
        const NetBackendDriver *drv = l->data;

        if (strcmp(drv->type, type) == 0) {
            return drv;
        }
    }
    return NULL;
}

static char *net_driver_names(void)
{
    GString *s = g_string_new(NULL);

    for (GSList *l = drivers; l; l = l->next) {
        g_string_append_printf(s, "%s%s", s->len ? ", " : "",
                               ((const NetBackendDriver *)l->data)->type);
    }
    return g_string_free(s, false);
}

/* Every netdev's rate limits (net.h: NetThrottle). */
static const PropDef netdev_limit_props[] = {
    PROP_DEF_UINT("rx-bps", NetThrottle, rx_bps,
                  "bytes per second the NIC receives (0: no limit)"),
    PROP_DEF_UINT("rx-pps", NetThrottle, rx_pps,
                  "frames per second the NIC receives"),
    PROP_DEF_UINT("tx-bps", NetThrottle, tx_bps,
                  "bytes per second the NIC sends"),
    PROP_DEF_UINT("tx-pps", NetThrottle, tx_pps,
                  "frames per second the NIC sends"),
    PROP_DEF_END
};

bool net_print_backend_help(const char *type, FILE *out, GError **errp)
{
    const NetBackendDriver *one = type ? net_driver_find(type) : NULL;

    if (type && !one) {
        error_setg(errp, "unknown netdev type '%s' (-netdev help lists "
                   "them)", type);
        return false;
    }
    if (!one) {
        fprintf(out, "Network backend types (-netdev TYPE,id=ID,...):\n");
    }
    for (GSList *l = drivers; l; l = l->next) {
        const NetBackendDriver *drv = l->data;

        if (one && drv != one) {
            continue;
        }
        fprintf(out, "%s:\n  %s\n", drv->type, drv->help);
        if (drv->props) {
            props_print_help(drv->props, out);
        }
    }
    fprintf(out, "Every type also takes pcap=FILE (capture its frames) and "
            "rate limits\n(bytes and frames per second; rx: what the NIC "
            "receives, tx: what it sends):\n");
    props_print_help(netdev_limit_props, out);
    return true;
}

/* -netdev help, -netdev TYPE,help */
static bool help_netdev(const char *arg, FILE *out, GError **errp)
{
    g_autofree char *type = keyval_help_subject(arg, "type");

    return net_print_backend_help(type, out, errp);
}

NetClient *net_backend_find(const char *id)
{
    for (GList *l = clients; l; l = l->next) {
        NetClient *nc = l->data;

        if (!nc->is_nic && strcmp(nc->name, id) == 0) {
            return nc;
        }
    }
    return NULL;
}

void net_backend_foreach(void (*fn)(NetClient *nc, void *opaque),
                         void *opaque)
{
    GList *copy = g_list_copy(clients);

    for (GList *l = copy; l; l = l->next) {
        NetClient *nc = l->data;

        if (!nc->is_nic) {
            fn(nc, opaque);
        }
    }
    g_list_free(copy);
}

typedef struct NetdevOpts {
    char *type;
    char *id;
    char *pcap;
    NetThrottle limits;
} NetdevOpts;

static const PropDef netdev_common_props[] = {
    PROP_DEF_STR("type", NetdevOpts, type, "backend type: stream, tap, user",
                 .mandatory = true),
    PROP_DEF_STR("id", NetdevOpts, id, "backend id (NICs' netdev=)",
                 .mandatory = true),
    PROP_DEF_STR("pcap", NetdevOpts, pcap,
                 "write the backend's frames to this pcap file"),
    PROP_DEF_END
};

static void net_adopt_queues(NetClient *b, NetClient *nic);

static void net_throttle_free(NetClient *nc)
{
    for (int i = 0; i < NET_DIR_N; i++) {
        NetThrottleDir *d = net_priv(nc)->thr[i];

        if (d) {
            loop_timer_free(d->timer);
            g_free(d);
        }
        net_priv(nc)->thr[i] = NULL;
    }
}

static void net_backend_free(NetClient *nc)
{
    const NetBackendDriver *drv = net_priv(nc)->drv;

    iovd_config_deleted(nc);
    net_throttle_free(nc);
    nc->ops->cleanup(nc);
    if (drv->props) {
        props_free(drv->props, nc->opaque);
    }
    g_free(nc->opaque);
    net_client_free(nc);
}

NetClient *net_backend_create(Keyval *kv, GError **errp)
{
    /* What makes it again (a live upgrade's), before the kv is used. */
    g_autofree char *arg = keyval_to_str(kv);
    NetdevOpts o = { 0 };
    const NetBackendDriver *drv;
    NetClient *nc = NULL;

    if (!props_apply(netdev_common_props, &o, kv, errp) ||
        !props_apply(netdev_limit_props, &o.limits, kv, errp)) {
        goto out;
    }
    drv = net_driver_find(o.type);
    if (!drv) {
        g_autofree char *known = net_driver_names();

        error_setg(errp, "property 'type': unknown network backend type "
                   "'%s' (known: %s)", o.type, known);
        goto out;
    }
    if (!check_id("id", o.id, 63, errp)) {
        goto out;
    }
    if (net_backend_find(o.id)) {
        error_setg(errp, "duplicate netdev id '%s'", o.id);
        goto out;
    }
    nc = net_client_new(drv->ops, o.id, drv->type, false,
                        g_malloc0(drv->state_size));
    net_priv(nc)->drv = drv;
    if (drv->init) {
        drv->init(nc);
    }
    if ((drv->props && !props_apply(drv->props, nc->opaque, kv, errp)) ||
        (drv->parse && !drv->parse(nc, kv, errp)) ||
        !keyval_check_unused(kv, errp) ||
        (o.pcap && !net_pcap_open(nc, o.pcap, errp)) ||
        !drv->open(nc, errp)) {
        net_backend_free(nc);
        nc = NULL;
        goto out;
    }
    if (o.limits.rx_bps || o.limits.rx_pps || o.limits.tx_bps ||
        o.limits.tx_pps) {
        SetThrottle st = { nc, &o.limits };

        net_set_throttle_on_loop(&st);
    }
    trace_net_backend_create(nc->name, drv->type);
    iovd_config_created(nc, "netdev", g_steal_pointer(&arg));
out:
    props_free(netdev_common_props, &o);
    return nc;
}

/* On the backend's loop (its NIC's, when attached). */
static void net_backend_destroy_on_loop(void *opaque)
{
    NetClient *nc = opaque;
    NetClient *nic = nc->peer;

    trace_net_backend_delete(nc->name, nic ? nic->name : "");
    if (nic) {
        /* Detach: the NIC keeps running without a backend, link down. */
        net_purge_queue(nic);
        nic->peer = NULL;
        nc->peer = NULL;
        nic->link_down = true;
        net_notify_link(nic);
    }
    net_backend_free(nc);
}

static void net_backend_destroy(NetClient *nc)
{
    loop_run_sync(nc->loop, net_backend_destroy_on_loop, nc);
}

bool net_backend_delete(const char *id, GError **errp)
{
    NetClient *nc = net_backend_find(id);

    if (!nc) {
        error_setg_class(errp, IOVD_ERROR_DEVICE_NOT_FOUND,
                         "Device '%s' not found", id);
        return false;
    }
    net_backend_destroy(nc);
    return true;
}

void net_cleanup_all(void)
{
    GList *copy = g_list_copy(clients);

    for (GList *l = copy; l; l = l->next) {
        NetClient *nc = l->data;

        if (!nc->is_nic) {
            net_backend_destroy(nc);
        }
    }
    g_list_free(copy);
}

/* ---- NICs ---- */

/* Move backend @b (and its handlers) to loop @to. */
static void net_backend_set_loop(NetClient *b, EventLoop *to)
{
    const NetBackendDriver *drv = net_priv(b)->drv;

    if (b->loop == to) {
        return;
    }
    if (drv->set_loop) {
        drv->set_loop(b, to);
    } else {
        b->loop = to;
    }
    for (int i = 0; i < NET_DIR_N; i++) {
        if (net_priv(b)->thr[i]) {
            loop_timer_move(net_priv(b)->thr[i]->timer, to);
        }
    }
}

NetClient *net_nic_new(const NetClientOps *ops, const char *dev_id,
                       const char *model, const char *netdev,
                       EventLoop *loop, void *opaque, GError **errp)
{
    NetClient *peer = NULL;
    g_autofree char *name = NULL;
    NetClient *nc;

    if (netdev) {
        peer = net_backend_find(netdev);
        if (!peer) {
            error_setg(errp, "netdev '%s' not found", netdev);
            return NULL;
        }
        if (peer->peer) {
            error_setg(errp, "netdev '%s' is already in use by '%s'",
                       netdev, peer->peer->name);
            return NULL;
        }
    }
    name = dev_id ? g_strdup(dev_id)
                  : g_strdup_printf("%s.%u", model, nic_counter++);
    if (!peer) {
        /* as QEMU says it: legal, but rarely what was meant */
        iovd_warn("%s: nic has no peer (no netdev=): its link is down and "
                  "its frames go nowhere", name);
    }
    nc = net_client_new(ops, name, model, true, opaque);
    nc->loop = loop;
    if (peer) {
        /* Frames go between the two on one loop: the NIC's. */
        net_backend_set_loop(peer, loop);
        nc->peer = peer;
        peer->peer = nc;
        /* Frames the backend could not hand to the previous NIC. */
        net_purge_queue(peer);
        if (net_priv(peer)->adopt) {
            net_adopt_queues(peer, nc);
        }
    }
    trace_net_nic_new(nc->name, model, peer ? peer->name : "");
    return nc;
}

void net_nic_free(NetClient *nc)
{
    NetClient *peer;

    if (!nc) {
        return;
    }
    peer = nc->peer;
    trace_net_nic_free(nc->name);
    if (peer) {
        /* Frames of this NIC waiting for the backend die with it. */
        net_purge_queue(peer);
        peer->peer = NULL;
        nc->peer = NULL;
        /* A backend paused for us reads again (and drops). */
        if (peer->ops->writable) {
            peer->ops->writable(peer);
        }
        net_backend_set_loop(peer, loop_main());
    }
    net_client_free(nc);
}

/* ---- -netdev ---- */

static bool opt_netdev(const char *arg, GError **errp)
{
    g_autoptr(Keyval) kv = keyval_parse(arg, "type", errp);

    return kv && net_backend_create(kv, errp) != NULL;
}

static const IovdOption netdev_options[] = {
    { "netdev", true, PHASE_BACKEND, opt_netdev,
      "-netdev user,id=ID[,net=ADDR/PREFIX][,hostfwd=tcp:[HADDR]:HPORT-"
      "[GADDR]:GPORT][,hostfwd.N=...]\n"
      "  -netdev tap,id=ID,ifname=NAME|fd=N[,vnet_hdr=on|off]\n"
      "  -netdev stream,id=ID[,server=on],addr.type=unix,addr.path=PATH\n"
      "  -netdev stream,id=ID[,server=on],addr.type=inet,addr.host=127.0.0.1,"
      "addr.port=N\n"
      "                         add a network backend (pcap=FILE on any; "
      "-netdev help)", help_netdev },
    { NULL }
};

/* ---- live upgrade ---- */

/*
 * The old process writes a section "net" (the netdev ids) and one section
 * "netdev/ID" per backend: its type, the backend's own fields and fds,
 * and the frames the net layer holds both ways, so that the new process
 * delivers them.  The new process takes them before the options are
 * applied (net_upgrade_prepare); each backend's open finds its NetAdopt
 * by id and starts paused.  The frames for the backend go back into its
 * queue when the NIC attaches (before the NIC sends anything here); the
 * frames for the NIC once the devices run (after the NIC's load and
 * reset), when upgrade_pause(false) starts the backend.
 */
#define NET_UPGRADE_VERSION 1

static GHashTable *adoptions;   /* id -> NetAdopt, the new process's */

static void net_upgrade_refuse(NetClient *nc, void *opaque)
{
    GError **errp = opaque;
    const NetBackendDriver *drv = net_priv(nc)->drv;

    if (!*errp && !drv->upgrade_save) {
        error_setg(errp, "netdev '%s' (%s) cannot be handed over to a new "
                   "process: its connections and state do not move (stream "
                   "and tap netdevs do)", nc->name, nc->model);
    }
}

/* Refuse up front what cannot move, rather than reopen it. */
static bool net_upgrade_check(GError **errp)
{
    GError *err = NULL;

    net_backend_foreach(net_upgrade_refuse, &err);
    if (err) {
        g_propagate_error(errp, err);
        return false;
    }
    return true;
}

typedef struct NetUpgradeCtx {
    NetClient *nc;
    bool pause;
    StateWriter *w;
    GArray *fds;
} NetUpgradeCtx;

static void net_adopt_nic_queue(NetClient *b);

static void net_upgrade_pause_on_loop(void *opaque)
{
    NetUpgradeCtx *c = opaque;
    NetClient *nic = c->nc->peer;

    trace_net_upgrade_pause(c->nc->name, c->pause);
    if (!c->pause && net_priv(c->nc)->adopt) {
        net_adopt_nic_queue(c->nc);
    }
    net_priv(c->nc)->drv->upgrade_pause(c->nc, c->pause);
    if (!c->pause && nic && !g_queue_is_empty(&nic->queue)) {
        net_flush_queue(nic);
    }
}

static void net_upgrade_pause_one(NetClient *nc, void *opaque)
{
    NetUpgradeCtx c = { .nc = nc, .pause = *(bool *)opaque };

    if (net_priv(nc)->drv->upgrade_pause) {
        loop_run_sync(nc->loop, net_upgrade_pause_on_loop, &c);
    }
}

/*
 * The old process (true: nothing more is read, written or delivered;
 * false: a failed upgrade goes on), and the new one once its devices run
 * (false: the adopted backends start).
 */
static void net_upgrade_pause(bool pause)
{
    net_backend_foreach(net_upgrade_pause_one, &pause);
}

/* The frames of @q: u32 length (LE) then the bytes, each. */
static void net_put_queue(StateWriter *w, const char *name, GQueue *q)
{
    g_autoptr(GByteArray) b = g_byte_array_new();

    for (GList *l = q->head; l; l = l->next) {
        NetPacket *pkt = l->data;
        uint8_t len[4];

        stl_le_p(len, pkt->len);
        g_byte_array_append(b, len, 4);
        g_byte_array_append(b, pkt->data, pkt->len);
    }
    state_put_bytes(w, name, b->data, b->len);
}

static void net_upgrade_save_on_loop(void *opaque)
{
    NetUpgradeCtx *c = opaque;
    NetClient *nc = c->nc;
    g_autoptr(GArray) own = g_array_new(false, false, sizeof(int));
    g_autoptr(GArray) idx = g_array_new(false, false, sizeof(uint32_t));
    g_autofree char *name = g_strdup_printf("netdev/%s", nc->name);

    state_begin(c->w, name, NET_UPGRADE_VERSION);
    state_put_str(c->w, "type", nc->model);
    net_priv(nc)->drv->upgrade_save(nc, c->w, own);
    for (guint i = 0; i < own->len; i++) {
        uint32_t at;

        stl_le_p(&at, c->fds->len);
        g_array_append_val(c->fds, g_array_index(own, int, i));
        g_array_append_val(idx, at);
    }
    state_put_bytes(c->w, "fds", idx->data, idx->len * sizeof(uint32_t));
    net_put_queue(c->w, "to-backend", &nc->queue);
    if (nc->peer) {
        net_put_queue(c->w, "to-nic", &nc->peer->queue);
    } else {
        state_put_bytes(c->w, "to-nic", NULL, 0);
    }
    state_end(c->w);
    trace_net_upgrade_save(nc->name, own->len, g_queue_get_length(&nc->queue),
                           nc->peer ? g_queue_get_length(&nc->peer->queue)
                                    : 0);
}

static void net_upgrade_list(NetClient *nc, void *opaque)
{
    g_string_append_len(opaque, nc->name, strlen(nc->name) + 1);
}

static void net_upgrade_save_one(NetClient *nc, void *opaque)
{
    NetUpgradeCtx c = *(NetUpgradeCtx *)opaque;

    c.nc = nc;
    loop_run_sync(nc->loop, net_upgrade_save_on_loop, &c);
}

static bool net_upgrade_save(StateWriter *w, GArray *fds, GError **errp)
{
    g_autoptr(GString) ids = g_string_new(NULL);
    NetUpgradeCtx c = { .w = w, .fds = fds };

    if (!net_upgrade_check(errp)) {
        return false;
    }
    net_backend_foreach(net_upgrade_list, ids);
    state_begin(w, "net", NET_UPGRADE_VERSION);
    state_put_bytes(w, "netdevs", ids->str, ids->len);
    state_end(w);
    net_backend_foreach(net_upgrade_save_one, &c);
    return true;
}

/* ---- the new process ---- */

static void net_adopt_free(NetAdopt *a)
{
    for (unsigned i = 0; i < a->nfds; i++) {
        if (a->fds[i] >= 0) {
            close(a->fds[i]);
        }
    }
    if (a->priv_free && a->priv) {
        a->priv_free(a->priv);
    }
    g_byte_array_unref(a->to_nic);
    g_byte_array_unref(a->to_backend);
    g_free(a->fds);
    g_free(a->id);
    g_free(a);
}

/* A frame list as net_put_queue wrote it, checked. */
static GByteArray *net_get_queue(StateSection *s, const char *name)
{
    size_t len, off = 0;
    const uint8_t *p = state_get_blob(s, name, &len);

    while (p && off < len) {
        uint32_t n = len - off >= 4 ? ldl_le_p(p + off) : UINT32_MAX;

        if (n == 0 || n > NET_SCRATCH_SIZE || n > len - off - 4) {
            state_section_fail(s, "'%s': a malformed frame list", name);
            break;
        }
        off += 4 + n;
    }
    return g_byte_array_append(g_byte_array_new(), p ? p : (uint8_t *)"",
                               p ? len : 0);
}

/* Take the fds the section names from the handover's array. */
static void net_adopt_fds(NetAdopt *a, StateSection *s, int *fds,
                          unsigned nfds)
{
    size_t len;
    const uint8_t *p = state_get_blob(s, "fds", &len);

    if (len % 4) {
        state_section_fail(s, "'fds': %zu bytes", len);
        len = 0;
    }
    a->nfds = len / 4;
    a->fds = g_new(int, a->nfds + 1);
    for (unsigned i = 0; i < a->nfds; i++) {
        uint32_t at = ldl_le_p(p + 4 * i);

        a->fds[i] = -1;
        if (at >= nfds || fds[at] < 0) {
            state_section_fail(s, "no file descriptor %u", at);
            continue;
        }
        a->fds[i] = fds[at];
        fds[at] = -1;
    }
}

static NetAdopt *net_adopt_read(StateReader *r, const char *id, int *fds,
                                unsigned nfds, GError **errp)
{
    g_autofree char *name = g_strdup_printf("netdev/%s", id);
    g_autofree char *type = NULL;
    StateSection *s = state_section(r, name, NET_UPGRADE_VERSION, NULL,
                                    errp);
    NetAdopt *a;

    if (!s) {
        return NULL;
    }
    a = g_new0(NetAdopt, 1);
    a->id = g_strdup(id);
    type = state_get_str(s, "type");
    a->drv = type ? net_driver_find(type) : NULL;
    if (!a->drv || !a->drv->upgrade_load) {
        state_section_fail(s, "netdev type '%s' cannot be taken over here",
                           type ? type : "");
    }
    net_adopt_fds(a, s, fds, nfds);
    a->to_backend = net_get_queue(s, "to-backend");
    a->to_nic = net_get_queue(s, "to-nic");
    if (!state_section_failed(s)) {
        a->drv->upgrade_load(a, s);
    }
    if (!state_section_end(s, errp)) {
        net_adopt_free(a);
        return NULL;
    }
    return a;
}

static bool net_upgrade_prepare(StateReader *r, int *fds, unsigned nfds,
                                GError **errp)
{
    StateSection *s;
    const char *ids;
    size_t len;

    if (!state_has_section(r, "net")) {
        return true;            /* an iovd that had no netdev to hand */
    }
    s = state_section(r, "net", NET_UPGRADE_VERSION, NULL, errp);
    if (!s) {
        return false;
    }
    ids = state_get_blob(s, "netdevs", &len);
    if (len && ids[len - 1] != '\0') {
        state_section_fail(s, "malformed netdev list");
    }
    if (!state_section_end(s, errp)) {
        return false;
    }
    adoptions = g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
                                      (GDestroyNotify)net_adopt_free);
    for (size_t off = 0; off < len; off += strlen(ids + off) + 1) {
        NetAdopt *a = net_adopt_read(r, ids + off, fds, nfds, errp);

        if (!a) {
            return false;
        }
        g_hash_table_replace(adoptions, a->id, a);
    }
    return true;
}

NetAdopt *net_upgrade_adopt(NetClient *nc)
{
    NetAdopt *a = adoptions ? g_hash_table_lookup(adoptions, nc->name)
                            : NULL;

    if (!a || a->taken || a->drv != net_priv(nc)->drv) {
        return NULL;
    }
    a->taken = true;
    net_priv(nc)->adopt = a;
    return a;
}

int net_adopt_take_fd(NetAdopt *a, unsigned i)
{
    int fd = i < a->nfds ? a->fds[i] : -1;

    if (i < a->nfds) {
        a->fds[i] = -1;
    }
    return fd;
}

/* Frames of a list (net_put_queue) back into @nc's queue. */
static void net_restore_queue(NetClient *nc, GByteArray *b)
{
    for (size_t off = 0; off + 4 <= b->len;) {
        uint32_t n = ldl_le_p(b->data + off);
        struct iovec iov = { b->data + off + 4, n };

        net_queue_append(nc, &iov, 1, n);
        off += 4 + n;
    }
    /* Whoever sends to @nc waits for its queue to drain. */
    net_priv(nc)->peer_waits = !g_queue_is_empty(&nc->queue);
}

/*
 * The NIC attached to adopted backend @b: the frames it had sent that
 * wait for @b, before any it sends here.
 */
static void net_adopt_queues(NetClient *b, NetClient *nic)
{
    net_restore_queue(b, net_priv(b)->adopt->to_backend);
}

/*
 * The devices run: the frames @b had read for its NIC, before any it
 * reads here (after the NIC's load and reset, which purge its queue).
 */
static void net_adopt_nic_queue(NetClient *b)
{
    NetAdopt *a = g_steal_pointer(&net_priv(b)->adopt);

    if (b->peer) {
        net_restore_queue(b->peer, a->to_nic);
    }
    trace_net_upgrade_adopt(b->name, g_queue_get_length(&b->queue),
                            b->peer ? g_queue_get_length(&b->peer->queue)
                                    : 0);
    g_hash_table_remove(adoptions, a->id);
}

static const UpgradeParticipant net_upgrade = {
    .name = "net",
    .check = net_upgrade_check,
    .pause = net_upgrade_pause,
    .save = net_upgrade_save,
    .prepare = net_upgrade_prepare,
};

void net_init(void)
{
    static bool done;

    if (!done) {
        done = true;
        iovd_register_options(netdev_options);
        iovd_register_upgrade_participant(&net_upgrade);
    }
}
