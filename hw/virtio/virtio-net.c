/*
 * virtio-net-pci: a virtio network device on a net/ backend.
 *
 * Queues: receiveq/transmitq pairs, then the control queue.  Which index
 * plays which role depends on the features the driver accepted (without
 * MQ the control queue is index 2 even when more pairs exist), so one
 * handler serves every queue and asks virtio_net_vq_role().
 *
 * Receive: the backend hands a frame to virtio_net_receive(); the device
 * filters it (MAC, multicast list, VLAN, RX modes), picks a receive queue
 * by flow hash, pops one buffer (or, with MRG_RXBUF, as many as the frame
 * needs), writes the virtio-net header and the frame straight into guest
 * memory, and completes the buffers as one batch.  No buffer: -EAGAIN, the
 * net layer queues the frame and stops the backend; a guest kick on a
 * receive queue (buffers added) calls net_flush_queue().
 *
 * Transmit: each element's iovecs go to net_sendv() as they are (zero
 * copy), with the header when the backend takes virtio-net headers and
 * without it otherwise; a partial checksum the backend cannot take is
 * computed here and spliced in as a 2-byte iovec, so the frame still is
 * not copied.  Segmentation offloads are offered only with a header-
 * carrying backend (tap vnet_hdr).  net_sendv() returning 0 means "queued,
 * stop": transmission waits for writable().
 *
 * Nothing is allocated per packet: element pools belong to the core, the
 * scratch arrays here are sized at realize.
 */
#include "hw/virtio/virtio.h"
#include "hw/virtio/virtio-pci.h"
#include "hw/virtio/virtio-net-spec.h"
#include "hw/virtio/trace.h"
#include "hw/net/nic.h"
#include "net/checksum.h"
#include "net/net.h"
#include "util/error.h"
#include "util/iov.h"

#define VIRTIO_NET_MAX_PAIRS            64
#define VIRTIO_NET_DEFAULT_QUEUE_SIZE   256
#define VIRTIO_NET_CTRL_QUEUE_SIZE      64
/* MAC filter entries per class; more set the class's overflow flag. */
#define VIRTIO_NET_MAC_TABLE_ENTRIES    64
/* Frames sent per transmit queue run before yielding to other work. */
#define VIRTIO_NET_TX_BUDGET            256
/* Frame bytes looked at for filtering and flow hashing. */
#define VIRTIO_NET_PEEK                 128

/* The receive offloads a driver can turn on and off (GUEST_OFFLOADS). */
#define VIRTIO_NET_GUEST_OFFLOADS                                          \
    (VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM) |                                  \
     VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4) |                                  \
     VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO6) |                                  \
     VIRTIO_BIT(VIRTIO_NET_F_GUEST_ECN) |                                   \
     VIRTIO_BIT(VIRTIO_NET_F_GUEST_UFO))

typedef enum VirtIONetRole {
    VIRTIO_NET_VQ_NONE,         /* not part of the negotiated layout */
    VIRTIO_NET_VQ_RX,
    VIRTIO_NET_VQ_TX,
    VIRTIO_NET_VQ_CTRL,
} VirtIONetRole;

typedef struct VirtIONet {
    VirtIODevice vdev;          /* first */

    /* Properties. */
    char *mac_str;
    char *netdev;
    uint16_t max_pairs;         /* "queues" */
    uint16_t host_mtu;          /* 0: VIRTIO_NET_F_MTU not offered */
    uint16_t rx_queue_size;
    uint16_t tx_queue_size;
    bool f_csum, f_guest_csum;
    bool f_host_tso4, f_host_tso6, f_host_ecn;
    bool f_guest_tso4, f_guest_tso6, f_guest_ecn;
    bool f_mrg_rxbuf, f_status, f_ctrl_vq, f_ctrl_rx, f_ctrl_rx_extra;
    bool f_ctrl_vlan, f_ctrl_mac_addr, f_ctrl_guest_offloads;

    NetClient *nic;
    NicRx rx;                   /* frames from the net layer, in the worker */
    uint8_t perm_mac[VIRTIO_NET_ETH_ALEN];     /* the property's */
    bool vnet_hdr;              /* the backend exchanges virtio-net headers */
    bool link_up;               /* as last reported in the status field */

    /* Driver-visible state; virtio_net_reset() restores it. */
    uint8_t mac[VIRTIO_NET_ETH_ALEN];
    uint16_t curr_pairs;
    bool mergeable;
    uint64_t guest_offloads;    /* GUEST_* offloads in effect */
    bool promisc, allmulti, alluni, nomulti, nouni, nobcast;
    bool uni_overflow, multi_overflow;
    unsigned uni_count, multi_count;
    uint8_t uni[VIRTIO_NET_MAC_TABLE_ENTRIES][VIRTIO_NET_ETH_ALEN];
    uint8_t multi[VIRTIO_NET_MAC_TABLE_ENTRIES][VIRTIO_NET_ETH_ALEN];
    uint32_t vlans[VIRTIO_NET_VLAN_MAX / 32];

    /* Transmission waits for the backend's writable(). */
    bool tx_blocked;

    /* Scratch, sized at realize (nothing is allocated per packet). */
    VirtQueueElement **rx_elems;    /* rx_queue_size */
    uint32_t *rx_lens;
    struct iovec *tx_iov;           /* tx_queue_size + 3 */
    uint8_t tx_csum[2];

    /* What the device dropped (the net layer counts the rest). */
    uint64_t rx_filtered, rx_dropped, rx_errors, tx_errors;
} VirtIONet;

static const DeviceClass virtio_net_class;
#define VIRTIO_NET(dev) ((VirtIONet *)device_check((dev), &virtio_net_class))

static unsigned virtio_net_instances;

static inline const char *virtio_net_id(VirtIONet *s)
{
    return virtio_id(&s->vdev);
}

/* ---- queue layout ---- */

/* Queue pairs in the layout the driver negotiated. */
static unsigned virtio_net_layout_pairs(VirtIONet *s)
{
    return virtio_has_feature(&s->vdev, VIRTIO_NET_F_MQ) ? s->max_pairs : 1;
}

static VirtIONetRole virtio_net_vq_role(VirtIONet *s, unsigned index)
{
    unsigned pairs = virtio_net_layout_pairs(s);

    if (index < 2 * pairs) {
        return index & 1 ? VIRTIO_NET_VQ_TX : VIRTIO_NET_VQ_RX;
    }
    if (index == 2 * pairs &&
        virtio_has_feature(&s->vdev, VIRTIO_NET_F_CTRL_VQ)) {
        return VIRTIO_NET_VQ_CTRL;
    }
    return VIRTIO_NET_VQ_NONE;
}

static void virtio_net_set_info(VirtIONet *s)
{
    const uint8_t *m = s->mac;

    g_free(s->nic->info_str);
    s->nic->info_str = g_strdup_printf("model=virtio-net-pci,macaddr=%02x:"
                                       "%02x:%02x:%02x:%02x:%02x", m[0],
                                       m[1], m[2], m[3], m[4], m[5]);
}

/* ---- receive filter ---- */

static bool virtio_net_vlan_allowed(VirtIONet *s, uint16_t vid)
{
    return s->vlans[vid >> 5] & (1u << (vid & 31));
}

static bool mac_in(const uint8_t (*table)[VIRTIO_NET_ETH_ALEN], unsigned n,
                   const uint8_t *mac)
{
    for (unsigned i = 0; i < n; i++) {
        if (memcmp(table[i], mac, VIRTIO_NET_ETH_ALEN) == 0) {
            return true;
        }
    }
    return false;
}

/*
 * True when the frame's first @len bytes (@p) pass the filter.  Spec:
 * virtio 1.2 5.1.6.5.1, 5.1.6.5.5, 5.1.6.5.7.
 */
static bool virtio_net_rx_accept(VirtIONet *s, const uint8_t *p, size_t len,
                                 const char **why)
{
    static const uint8_t bcast[VIRTIO_NET_ETH_ALEN] = {
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff
    };

    if (s->promisc) {
        return true;
    }
    if (len < VIRTIO_NET_ETH_HLEN) {
        *why = "runt";
        return false;
    }
    if (virtio_has_feature(&s->vdev, VIRTIO_NET_F_CTRL_VLAN) &&
        lduw_be_p(p + 12) == VIRTIO_NET_ETH_P_VLAN && len >= 16 &&
        !virtio_net_vlan_allowed(s, lduw_be_p(p + 14) & 0xfff)) {
        *why = "vlan";
        return false;
    }
    if (p[0] & 1) {
        if (memcmp(p, bcast, sizeof(bcast)) == 0) {
            *why = "broadcast";
            return !s->nobcast;
        }
        *why = "multicast";
        if (s->nomulti) {
            return false;
        }
        return s->allmulti || s->multi_overflow ||
               mac_in(s->multi, s->multi_count, p);
    }
    *why = "unicast";
    if (s->nouni) {
        return false;
    }
    return s->alluni || s->uni_overflow ||
           memcmp(p, s->mac, VIRTIO_NET_ETH_ALEN) == 0 ||
           mac_in(s->uni, s->uni_count, p);
}

/* ---- receive queue selection ---- */

static uint32_t flow_mix(uint32_t h, uint32_t v)
{
    h ^= v;
    h *= 0x9e3779b1u;           /* 2^32 / golden ratio */
    return h ^ (h >> 16);
}

/*
 * A hash of the frame's flow: addresses and, for TCP and UDP, ports
 * (IPv4 and IPv6, one VLAN tag).  Other frames hash to 0.
 */
static uint32_t virtio_net_flow_hash(const uint8_t *p, size_t len)
{
    size_t off = VIRTIO_NET_ETH_HLEN;
    uint16_t type;
    uint32_t h = 0;
    uint8_t proto;
    bool ports;

    if (len < VIRTIO_NET_ETH_HLEN) {
        return 0;
    }
    type = lduw_be_p(p + 12);
    if (type == VIRTIO_NET_ETH_P_VLAN && len >= off + 4) {
        type = lduw_be_p(p + 16);
        off += VIRTIO_NET_VLAN_HLEN;
    }
    if (type == VIRTIO_NET_ETH_P_IP) {
        unsigned ihl;

        if (len < off + 20 || (p[off] >> 4) != 4) {
            return 0;
        }
        ihl = (p[off] & 0xf) * 4;
        proto = p[off + 9];
        h = flow_mix(h, ldl_be_p(p + off + 12));
        h = flow_mix(h, ldl_be_p(p + off + 16));
        /* Only the first fragment has the ports: leave them out. */
        ports = !(lduw_be_p(p + off + 6) & 0x3fff);
        off += ihl;
    } else if (type == VIRTIO_NET_ETH_P_IPV6) {
        if (len < off + 40) {
            return 0;
        }
        proto = p[off + 6];
        for (unsigned i = 8; i < 40; i += 4) {
            h = flow_mix(h, ldl_be_p(p + off + i));
        }
        ports = true;
        off += 40;
    } else {
        return 0;
    }
    h = flow_mix(h, proto);
    if (ports && (proto == 6 || proto == 17) && len >= off + 4) {
        h = flow_mix(h, ldl_be_p(p + off));
    }
    return h;
}

/* ---- receive ---- */

static bool virtio_net_can_receive(NetClient *nc)
{
    VirtIONet *s = nc->opaque;

    return device_fetch_allowed(&s->vdev.pci.dev);
}

typedef struct IovCursor {
    const struct iovec *iov;
    unsigned n, i;
    size_t off;
} IovCursor;

static void cursor_init(IovCursor *c, const struct iovec *iov, unsigned n,
                        size_t off)
{
    c->iov = iov;
    c->n = n;
    c->i = 0;
    c->off = off;
    while (c->i < c->n && c->off >= c->iov[c->i].iov_len) {
        c->off -= c->iov[c->i].iov_len;
        c->i++;
    }
}

/* Contiguous bytes at the cursor (0 at the end). */
static size_t cursor_span(IovCursor *c, uint8_t **p)
{
    if (c->i >= c->n) {
        return 0;
    }
    *p = (uint8_t *)c->iov[c->i].iov_base + c->off;
    return c->iov[c->i].iov_len - c->off;
}

static void cursor_advance(IovCursor *c, size_t len)
{
    c->off += len;
    while (c->i < c->n && c->off >= c->iov[c->i].iov_len) {
        c->off -= c->iov[c->i].iov_len;
        c->i++;
    }
}

/*
 * Copy @len frame bytes (from @src at @skip) into elements 0..n-1 after
 * the header already in element 0, filling each element before the next.
 * Sets rx_lens[].
 */
static void virtio_net_rx_copy(VirtIONet *s, unsigned n,
                               const struct iovec *src, int srccnt,
                               size_t skip, size_t len)
{
    IovCursor sc, dc;
    unsigned e = 0;
    uint32_t done = VIRTIO_NET_HDR_SIZE;

    cursor_init(&sc, src, srccnt, skip);
    cursor_init(&dc, s->rx_elems[0]->in_sg, s->rx_elems[0]->in_num,
                VIRTIO_NET_HDR_SIZE);
    while (len) {
        uint8_t *sp, *dp;
        size_t sl = cursor_span(&sc, &sp);
        size_t dl = cursor_span(&dc, &dp);
        size_t l;

        if (!dl) {
            s->rx_lens[e] = done;
            if (++e == n) {
                break;          /* cannot happen: sizes were checked */
            }
            cursor_init(&dc, s->rx_elems[e]->in_sg, s->rx_elems[e]->in_num,
                        0);
            done = 0;
            continue;
        }
        if (!sl) {
            break;
        }
        l = MIN(MIN(sl, dl), len);
        memcpy(dp, sp, l);
        cursor_advance(&sc, l);
        cursor_advance(&dc, l);
        done += l;
        len -= l;
    }
    if (e < n) {
        s->rx_lens[e] = done;
    }
}

/* Write @len bytes at byte @off of the received data (elements 0..n-1). */
static void virtio_net_rx_patch(VirtIONet *s, unsigned n, size_t off,
                                const uint8_t *buf, size_t len)
{
    for (unsigned e = 0; e < n && len; e++) {
        VirtQueueElement *elem = s->rx_elems[e];
        size_t w;

        if (off >= s->rx_lens[e]) {
            off -= s->rx_lens[e];
            continue;
        }
        w = iov_from_buf(elem->in_sg, elem->in_num, off, buf,
                                MIN(len, s->rx_lens[e] - off));
        buf += w;
        len -= w;
        off = 0;
    }
}

static void virtio_net_rx_giveback(VirtQueue *vq, VirtQueueElement **elems,
                                   unsigned n)
{
    while (n) {
        virtqueue_unpop(vq, elems[--n]);
    }
}

/*
 * Prepare the header the driver gets from the backend's (@hdr, or zeros
 * without one) and what the driver accepted.  Returns false when the
 * frame cannot be given to this driver (segmented, not negotiated);
 * *csum_off >= 0 asks for a checksum to be completed here at that frame
 * offset (the frame's bytes from *csum_start).
 * Spec: virtio 1.2 5.1.6.4.1.
 */
static bool virtio_net_rx_hdr(VirtIONet *s, uint8_t *hdr, size_t len,
                              long *csum_start, long *csum_off)
{
    uint8_t gso = hdr[VIRTIO_NET_HDR_GSO_TYPE];
    unsigned feature;

    *csum_off = -1;
    switch (gso & ~VIRTIO_NET_HDR_GSO_ECN) {
    case VIRTIO_NET_HDR_GSO_NONE:
        feature = 0;
        break;
    case VIRTIO_NET_HDR_GSO_TCPV4:
        feature = VIRTIO_NET_F_GUEST_TSO4;
        break;
    case VIRTIO_NET_HDR_GSO_TCPV6:
        feature = VIRTIO_NET_F_GUEST_TSO6;
        break;
    case VIRTIO_NET_HDR_GSO_UDP:
        feature = VIRTIO_NET_F_GUEST_UFO;
        break;
    default:
        return false;
    }
    if (feature && !(s->guest_offloads & VIRTIO_BIT(feature))) {
        return false;
    }
    if ((gso & VIRTIO_NET_HDR_GSO_ECN) &&
        !(s->guest_offloads & VIRTIO_BIT(VIRTIO_NET_F_GUEST_ECN))) {
        return false;
    }
    if ((hdr[VIRTIO_NET_HDR_FLAGS] & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
        !(s->guest_offloads & VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM))) {
        size_t start = lduw_le_p(hdr + VIRTIO_NET_HDR_CSUM_START);
        size_t off = lduw_le_p(hdr + VIRTIO_NET_HDR_CSUM_OFFSET);

        if (feature || start >= len || off + 2 > len - start) {
            return false;
        }
        *csum_start = start;
        *csum_off = start + off;
        hdr[VIRTIO_NET_HDR_FLAGS] &= ~VIRTIO_NET_HDR_F_NEEDS_CSUM;
        stw_le_p(hdr + VIRTIO_NET_HDR_CSUM_START, 0);
        stw_le_p(hdr + VIRTIO_NET_HDR_CSUM_OFFSET, 0);
    }
    if (!(s->guest_offloads & VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM))) {
        hdr[VIRTIO_NET_HDR_FLAGS] &= ~VIRTIO_NET_HDR_F_DATA_VALID;
    }
    hdr[VIRTIO_NET_HDR_FLAGS] &= VIRTIO_NET_HDR_F_NEEDS_CSUM |
                                 VIRTIO_NET_HDR_F_DATA_VALID;
    return true;
}

/*
 * A frame from the backend: its size when the driver got it, 0 when the
 * device dropped it (counted here), -EAGAIN when there is no room yet.
 */
/*
 * Take buffers from receive queue @q for a frame of @len bytes (with
 * mergeable buffers as many as it needs, else one) into s->rx_elems.
 * Returns how many (> 0); 0 when the frame is dropped (the driver's
 * buffers cannot hold it, or the ring is broken); -EAGAIN when the driver
 * must give more first.
 * Spec: virtio 1.2 5.1.6.3.2, 5.1.6.4.
 */
static int virtio_net_rx_take(VirtIONet *s, VirtQueue *vq, unsigned q,
                              size_t len)
{
    VirtIODevice *vdev = &s->vdev;
    uint64_t need = VIRTIO_NET_HDR_SIZE + len, got = 0;
    unsigned n = 0, num = virtio_queue_get_num(vq);

    while (got < need && n < num) {
        VirtQueueElement *elem = virtqueue_pop(vq);

        if (!elem) {
            break;
        }
        s->rx_elems[n++] = elem;
        if (!elem->in_len || (n == 1 && s->mergeable &&
                              elem->in_len < VIRTIO_NET_HDR_SIZE)) {
            virtio_error(vdev, "virtio-net receive buffer of %" PRIu64
                         " writable bytes (%s)", elem->in_len,
                         s->mergeable ? "mergeable" : "not mergeable");
            while (n) {
                virtqueue_detach_element(vq, s->rx_elems[--n]);
            }
            return 0;
        }
        got += elem->in_len;
        if (!s->mergeable) {
            break;
        }
    }
    if (got >= need) {
        return n;
    }
    virtio_net_rx_giveback(vq, s->rx_elems, n);
    if (vdev->broken) {
        /* The ring was malformed: nothing more until a reset. */
        s->rx_dropped++;
        return 0;
    }
    if (!s->mergeable ? n == 1 : n == num) {
        /* Every buffer the driver can give is too small: drop. */
        s->rx_errors++;
        trace_virtio_net_err_rx_too_big(virtio_net_id(s), q, len, got);
        return 0;
    }
    trace_virtio_net_rx_no_buffers(virtio_net_id(s), q, len);
    return -EAGAIN;
}

static ssize_t virtio_net_rx_frame(void *opaque, const struct iovec *iov,
                                   int iovcnt)
{
    VirtIONet *s = opaque;
    VirtIODevice *vdev = &s->vdev;
    size_t size = iov_size(iov, iovcnt);
    size_t skip = s->vnet_hdr ? NET_VNET_HDR_LEN : 0;
    uint8_t peek[VIRTIO_NET_PEEK];
    uint8_t hdr[VIRTIO_NET_HDR_SIZE] = { 0 };
    const char *why = "";
    long csum_start = 0, csum_off;
    size_t len, plen;
    unsigned q = 0, n;
    VirtQueue *vq;
    int r;

    if (!device_fetch_allowed(&vdev->pci.dev)) {
        return -EAGAIN;
    }
    if (size <= skip) {
        s->rx_errors++;
        return 0;
    }
    len = size - skip;
    if (!(vdev->status & VIRTIO_CONFIG_S_DRIVER_OK) || vdev->broken) {
        s->rx_dropped++;
        trace_virtio_net_rx_drop(virtio_net_id(s), len, "driver not ready");
        return 0;
    }
    plen = iov_to_buf(iov, iovcnt, skip, peek, MIN(len, sizeof(peek)));
    if (!virtio_net_rx_accept(s, peek, plen, &why)) {
        s->rx_filtered++;
        trace_virtio_net_rx_filtered(virtio_net_id(s), len, why);
        return 0;
    }
    if (skip) {
        iov_to_buf(iov, iovcnt, 0, hdr, sizeof(hdr));
    }
    if (!virtio_net_rx_hdr(s, hdr, len, &csum_start, &csum_off)) {
        s->rx_errors++;
        trace_virtio_net_rx_drop(virtio_net_id(s), len,
                                 "offload not negotiated");
        return 0;
    }
    if (virtio_has_feature(vdev, VIRTIO_NET_F_MTU) &&
        hdr[VIRTIO_NET_HDR_GSO_TYPE] == VIRTIO_NET_HDR_GSO_NONE &&
        len > (size_t)s->host_mtu + VIRTIO_NET_ETH_HLEN +
              (plen >= 14 && lduw_be_p(peek + 12) == VIRTIO_NET_ETH_P_VLAN ?
               VIRTIO_NET_VLAN_HLEN : 0)) {
        s->rx_errors++;
        trace_virtio_net_rx_drop(virtio_net_id(s), len, "longer than the MTU");
        return 0;
    }
    if (s->curr_pairs > 1) {
        q = virtio_net_flow_hash(peek, plen) % s->curr_pairs;
    }
    vq = virtio_get_queue(vdev, 2 * q);
    if (!virtio_queue_ready(vq)) {
        s->rx_dropped++;
        trace_virtio_net_rx_drop(virtio_net_id(s), len, "queue not enabled");
        return 0;
    }

    r = virtio_net_rx_take(s, vq, q, len);
    if (r <= 0) {
        return r;
    }
    n = r;
    stw_le_p(hdr + VIRTIO_NET_HDR_NUM_BUFFERS, n);
    iov_from_buf(s->rx_elems[0]->in_sg, s->rx_elems[0]->in_num, 0, hdr,
                 sizeof(hdr));
    virtio_net_rx_copy(s, n, iov, iovcnt, skip, len);
    if (csum_off >= 0) {
        /* The sum over the frame, with the field as it came. */
        uint8_t c[2];

        stw_be_p(c, net_checksum_iov(iov, iovcnt, skip + csum_start));
        virtio_net_rx_patch(s, n, VIRTIO_NET_HDR_SIZE + csum_off, c, 2);
    }
    for (unsigned i = 0; i < n; i++) {
        virtqueue_fill(vq, s->rx_elems[i], s->rx_lens[i], i);
    }
    virtqueue_flush(vq, n);
    virtio_notify_later(vdev, vq);
    trace_virtio_net_rx(virtio_net_id(s), q, len, n);
    return size;
}

/* The net layer's receive(): the frame goes in the worker. */
static ssize_t virtio_net_receive(NetClient *nc, const struct iovec *iov,
                                  int iovcnt)
{
    VirtIONet *s = nc->opaque;

    return nic_rx_deliver(&s->rx, iov, iovcnt);
}

/* The driver added receive buffers (or wants them looked at). */
static void virtio_net_handle_rx(VirtIONet *s, VirtQueue *vq)
{
    trace_virtio_net_rx_kick(virtio_net_id(s), virtio_queue_index(vq));
    nic_rx_flush(&s->rx);
}

/* ---- transmit ---- */

/*
 * Send one element.  Returns false when the driver broke the protocol
 * (the device is now broken).
 * Spec: virtio 1.2 5.1.6.2.2.
 */
static bool virtio_net_tx_one(VirtIONet *s, VirtQueue *vq,
                              VirtQueueElement *elem)
{
    VirtIODevice *vdev = &s->vdev;
    unsigned q = virtio_queue_index(vq) / 2;
    uint8_t hdr[VIRTIO_NET_HDR_SIZE];
    struct iovec *out = elem->out_sg;
    unsigned out_num = elem->out_num;
    uint8_t gso;
    size_t len;
    ssize_t r;

    if (elem->out_len < VIRTIO_NET_HDR_SIZE) {
        virtio_error(vdev, "virtio-net transmit buffer of %" PRIu64
                     " bytes: shorter than the header", elem->out_len);
        virtqueue_detach_element(vq, elem);
        return false;
    }
    iov_to_buf(out, out_num, 0, hdr, sizeof(hdr));
    len = elem->out_len - VIRTIO_NET_HDR_SIZE;
    gso = hdr[VIRTIO_NET_HDR_GSO_TYPE];
    if (gso != VIRTIO_NET_HDR_GSO_NONE) {
        unsigned f = 0;

        switch (gso & ~VIRTIO_NET_HDR_GSO_ECN) {
        case VIRTIO_NET_HDR_GSO_TCPV4:
            f = VIRTIO_NET_F_HOST_TSO4;
            break;
        case VIRTIO_NET_HDR_GSO_TCPV6:
            f = VIRTIO_NET_F_HOST_TSO6;
            break;
        case VIRTIO_NET_HDR_GSO_UDP:
            f = VIRTIO_NET_F_HOST_UFO;
            break;
        }
        if (!f || !virtio_has_feature(vdev, f) ||
            ((gso & VIRTIO_NET_HDR_GSO_ECN) &&
             !virtio_has_feature(vdev, VIRTIO_NET_F_HOST_ECN))) {
            trace_virtio_net_err_tx_gso(virtio_net_id(s), q, gso);
            s->tx_errors++;
            goto done;
        }
    }

    if (s->vnet_hdr) {
        /* The backend takes the header as it is. */
        r = net_sendv(s->nic, out, out_num);
    } else if (hdr[VIRTIO_NET_HDR_FLAGS] & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
        size_t start = lduw_le_p(hdr + VIRTIO_NET_HDR_CSUM_START);
        size_t pos = start + lduw_le_p(hdr + VIRTIO_NET_HDR_CSUM_OFFSET);
        unsigned room = s->tx_queue_size + 3;
        int a, b;

        if (start >= len || pos + 2 > len) {
            trace_virtio_net_err_tx_csum(virtio_net_id(s), q, start,
                                         pos - start, len);
            s->tx_errors++;
            goto done;
        }
        virtio_iov_discard_front(&out, &out_num, VIRTIO_NET_HDR_SIZE);
        /* Complete it here; the 2 bytes come from us, the rest stays. */
        stw_be_p(s->tx_csum, net_checksum_iov(out, out_num, start));
        /* the frame around the 2 bytes (tx_iov has room for a chain + 3) */
        a = iov_slice(s->tx_iov, room - 1, out, out_num, 0, pos);
        b = a < 0 ? -1 : iov_slice(s->tx_iov + a + 1, room - a - 1, out,
                                   out_num, pos + 2, len - pos - 2);
        if (b < 0) {
            s->tx_errors++;
            goto done;
        }
        s->tx_iov[a].iov_base = s->tx_csum;
        s->tx_iov[a].iov_len = 2;
        r = net_sendv(s->nic, s->tx_iov, a + 1 + b);
    } else {
        virtio_iov_discard_front(&out, &out_num, VIRTIO_NET_HDR_SIZE);
        r = net_sendv(s->nic, out, out_num);
    }
    trace_virtio_net_tx(virtio_net_id(s), q, len, r);
    if (r == 0) {
        /* Queued by the net layer (copied): stop until writable(). */
        s->tx_blocked = true;
        trace_virtio_net_tx_blocked(virtio_net_id(s), q);
    } else if (r < 0) {
        s->tx_errors++;
    }
done:
    virtqueue_push(vq, elem, 0);
    return true;
}

static void virtio_net_handle_tx(VirtIONet *s, VirtQueue *vq)
{
    VirtIODevice *vdev = &s->vdev;
    unsigned budget = VIRTIO_NET_TX_BUDGET, sent = 0;
    VirtQueueElement *elem;

    if (s->tx_blocked || !s->nic) {
        return;
    }
    do {
        virtio_queue_set_notification(vq, false);
        while (budget && !s->tx_blocked && (elem = virtqueue_pop(vq))) {
            if (!virtio_net_tx_one(s, vq, elem)) {
                return;
            }
            budget--;
            sent++;
        }
        virtio_queue_set_notification(vq, true);
    } while (budget && !s->tx_blocked && !virtio_queue_empty(vq));
    if (sent) {
        virtio_notify_later(vdev, vq);
    }
    if (!budget) {
        /* Let receive and the other queues in; come back next turn. */
        virtio_queue_notify(vdev, virtio_queue_index(vq));
    }
}

/* The backend drained what we queued: transmit again. */
static void virtio_net_writable(NetClient *nc)
{
    VirtIONet *s = nc->opaque;

    if (!s->tx_blocked) {
        return;
    }
    s->tx_blocked = false;
    trace_virtio_net_writable(virtio_net_id(s));
    for (unsigned i = 1; i < 2 * virtio_net_layout_pairs(s); i += 2) {
        virtio_queue_notify(&s->vdev, i);
    }
}

/* ---- control queue ---- */

static uint8_t virtio_net_ctrl_rx(VirtIONet *s, uint8_t cmd,
                                  VirtQueueElement *elem, size_t len)
{
    VirtIODevice *vdev = &s->vdev;
    unsigned feature = cmd <= VIRTIO_NET_CTRL_RX_ALLMULTI
                       ? VIRTIO_NET_F_CTRL_RX : VIRTIO_NET_F_CTRL_RX_EXTRA;
    uint8_t on;
    bool *mode;

    if (!virtio_has_feature(vdev, feature) || len != 1) {
        return VIRTIO_NET_ERR;
    }
    iov_to_buf(elem->out_sg, elem->out_num, VIRTIO_NET_CTRL_HDR_SIZE,
                      &on, 1);
    switch (cmd) {
    case VIRTIO_NET_CTRL_RX_PROMISC:
        mode = &s->promisc;
        break;
    case VIRTIO_NET_CTRL_RX_ALLMULTI:
        mode = &s->allmulti;
        break;
    case VIRTIO_NET_CTRL_RX_ALLUNI:
        mode = &s->alluni;
        break;
    case VIRTIO_NET_CTRL_RX_NOMULTI:
        mode = &s->nomulti;
        break;
    case VIRTIO_NET_CTRL_RX_NOUNI:
        mode = &s->nouni;
        break;
    case VIRTIO_NET_CTRL_RX_NOBCAST:
        mode = &s->nobcast;
        break;
    default:
        return VIRTIO_NET_ERR;
    }
    *mode = on != 0;
    trace_virtio_net_rx_mode(virtio_net_id(s), cmd, *mode);
    net_rx_filter_changed(s->nic);
    return VIRTIO_NET_OK;
}

/*
 * Read one struct virtio_net_ctrl_mac at *off (of @end): up to
 * VIRTIO_NET_MAC_TABLE_ENTRIES into @table, *count set, or *overflow.
 */
static bool virtio_net_read_mac_list(VirtQueueElement *elem, size_t *off,
                                     size_t end,
                                     uint8_t (*table)[VIRTIO_NET_ETH_ALEN],
                                     unsigned *count, bool *overflow)
{
    uint8_t raw[4];
    uint64_t entries, bytes;

    if (end - *off < sizeof(raw)) {
        return false;
    }
    iov_to_buf(elem->out_sg, elem->out_num, *off, raw, sizeof(raw));
    *off += sizeof(raw);
    entries = ldl_le_p(raw);
    bytes = entries * VIRTIO_NET_ETH_ALEN;
    if (bytes > end - *off) {
        return false;
    }
    *count = 0;
    *overflow = entries > VIRTIO_NET_MAC_TABLE_ENTRIES;
    if (!*overflow) {
        iov_to_buf(elem->out_sg, elem->out_num, *off, table, bytes);
        *count = entries;
    }
    *off += bytes;
    return true;
}

/* Spec: virtio 1.2 5.1.6.5.4, 5.1.6.5.5. */
static uint8_t virtio_net_ctrl_mac(VirtIONet *s, uint8_t cmd,
                                   VirtQueueElement *elem, size_t len)
{
    VirtIODevice *vdev = &s->vdev;
    size_t off = VIRTIO_NET_CTRL_HDR_SIZE, end = off + len;

    if (cmd == VIRTIO_NET_CTRL_MAC_ADDR_SET) {
        uint8_t mac[VIRTIO_NET_ETH_ALEN];

        if (!virtio_has_feature(vdev, VIRTIO_NET_F_CTRL_MAC_ADDR) ||
            len != sizeof(mac)) {
            return VIRTIO_NET_ERR;
        }
        iov_to_buf(elem->out_sg, elem->out_num, off, mac,
                          sizeof(mac));
        if (mac[0] & 1) {
            return VIRTIO_NET_ERR;
        }
        memcpy(s->mac, mac, sizeof(mac));
        virtio_net_set_info(s);
        trace_virtio_net_mac(virtio_net_id(s), mac[0], mac[1], mac[2], mac[3],
                             mac[4], mac[5]);
        net_rx_filter_changed(s->nic);
        return VIRTIO_NET_OK;
    }
    if (cmd == VIRTIO_NET_CTRL_MAC_TABLE_SET) {
        uint8_t uni[VIRTIO_NET_MAC_TABLE_ENTRIES][VIRTIO_NET_ETH_ALEN];
        uint8_t multi[VIRTIO_NET_MAC_TABLE_ENTRIES][VIRTIO_NET_ETH_ALEN];
        unsigned nu, nm;
        bool uo, mo;

        if (!virtio_has_feature(vdev, VIRTIO_NET_F_CTRL_RX) ||
            !virtio_net_read_mac_list(elem, &off, end, uni, &nu, &uo) ||
            !virtio_net_read_mac_list(elem, &off, end, multi, &nm, &mo) ||
            off != end) {
            return VIRTIO_NET_ERR;
        }
        memcpy(s->uni, uni, nu * VIRTIO_NET_ETH_ALEN);
        memcpy(s->multi, multi, nm * VIRTIO_NET_ETH_ALEN);
        s->uni_count = nu;
        s->multi_count = nm;
        s->uni_overflow = uo;
        s->multi_overflow = mo;
        trace_virtio_net_mac_table(virtio_net_id(s), nu, uo, nm, mo);
        net_rx_filter_changed(s->nic);
        return VIRTIO_NET_OK;
    }
    return VIRTIO_NET_ERR;
}

static uint8_t virtio_net_ctrl_vlan(VirtIONet *s, uint8_t cmd,
                                    VirtQueueElement *elem, size_t len)
{
    uint8_t raw[2];
    uint16_t vid;

    if (!virtio_has_feature(&s->vdev, VIRTIO_NET_F_CTRL_VLAN) ||
        len != sizeof(raw)) {
        return VIRTIO_NET_ERR;
    }
    iov_to_buf(elem->out_sg, elem->out_num, VIRTIO_NET_CTRL_HDR_SIZE,
                      raw, sizeof(raw));
    vid = lduw_le_p(raw);
    if (vid >= VIRTIO_NET_VLAN_MAX) {
        return VIRTIO_NET_ERR;
    }
    if (cmd == VIRTIO_NET_CTRL_VLAN_ADD) {
        s->vlans[vid >> 5] |= 1u << (vid & 31);
    } else if (cmd == VIRTIO_NET_CTRL_VLAN_DEL) {
        s->vlans[vid >> 5] &= ~(1u << (vid & 31));
    } else {
        return VIRTIO_NET_ERR;
    }
    trace_virtio_net_vlan(virtio_net_id(s), vid,
                          cmd == VIRTIO_NET_CTRL_VLAN_ADD);
    net_rx_filter_changed(s->nic);
    return VIRTIO_NET_OK;
}

/* Spec: virtio 1.2 5.1.6.5.11 to 5.1.6.5.14. */
static uint8_t virtio_net_ctrl_mq(VirtIONet *s, uint8_t cmd,
                                  VirtQueueElement *elem, size_t len)
{
    uint8_t raw[2];
    uint16_t pairs;

    if (!virtio_has_feature(&s->vdev, VIRTIO_NET_F_MQ) ||
        cmd != VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET || len != sizeof(raw)) {
        return VIRTIO_NET_ERR;
    }
    iov_to_buf(elem->out_sg, elem->out_num, VIRTIO_NET_CTRL_HDR_SIZE,
                      raw, sizeof(raw));
    pairs = lduw_le_p(raw);
    if (pairs < VIRTIO_NET_VQ_PAIRS_MIN || pairs > s->max_pairs) {
        return VIRTIO_NET_ERR;
    }
    s->curr_pairs = pairs;
    trace_virtio_net_mq(virtio_net_id(s), pairs);
    return VIRTIO_NET_OK;
}

static void virtio_net_apply_offloads(VirtIONet *s)
{
    uint64_t o = s->guest_offloads;
    bool ok;

    if (!s->vnet_hdr || !s->nic) {
        return;
    }
    ok = net_set_offloads(s->nic, o & VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM),
                          o & VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4),
                          o & VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO6),
                          o & VIRTIO_BIT(VIRTIO_NET_F_GUEST_ECN),
                          o & VIRTIO_BIT(VIRTIO_NET_F_GUEST_UFO));
    trace_virtio_net_offloads(virtio_net_id(s), o, ok);
}

/* Spec: virtio 1.2 5.1.6.5.18. */
static uint8_t virtio_net_ctrl_offloads(VirtIONet *s, uint8_t cmd,
                                        VirtQueueElement *elem, size_t len)
{
    VirtIODevice *vdev = &s->vdev;
    uint8_t raw[8];
    uint64_t o;

    if (!virtio_has_feature(vdev, VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) ||
        cmd != VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET || len != sizeof(raw)) {
        return VIRTIO_NET_ERR;
    }
    iov_to_buf(elem->out_sg, elem->out_num, VIRTIO_NET_CTRL_HDR_SIZE,
                      raw, sizeof(raw));
    o = ldq_le_p(raw);
    if (o & ~(vdev->guest_features & VIRTIO_NET_GUEST_OFFLOADS)) {
        return VIRTIO_NET_ERR;
    }
    s->guest_offloads = o;
    virtio_net_apply_offloads(s);
    return VIRTIO_NET_OK;
}

static uint8_t virtio_net_ctrl_cmd(VirtIONet *s, VirtQueueElement *elem,
                                   uint8_t cls, uint8_t cmd, size_t len)
{
    switch (cls) {
    case VIRTIO_NET_CTRL_RX:
        return virtio_net_ctrl_rx(s, cmd, elem, len);
    case VIRTIO_NET_CTRL_MAC:
        return virtio_net_ctrl_mac(s, cmd, elem, len);
    case VIRTIO_NET_CTRL_VLAN:
        return virtio_net_ctrl_vlan(s, cmd, elem, len);
    case VIRTIO_NET_CTRL_MQ:
        return virtio_net_ctrl_mq(s, cmd, elem, len);
    case VIRTIO_NET_CTRL_GUEST_OFFLOADS:
        return virtio_net_ctrl_offloads(s, cmd, elem, len);
    default:
        /* ANNOUNCE needs GUEST_ANNOUNCE, which is not offered. */
        return VIRTIO_NET_ERR;
    }
}

/* Spec: virtio 1.2 5.1.6.5 (the control virtqueue). */
static void virtio_net_handle_ctrl(VirtIONet *s, VirtQueue *vq)
{
    VirtIODevice *vdev = &s->vdev;
    VirtQueueElement *elem;

    while ((elem = virtqueue_pop(vq))) {
        uint8_t ctl[VIRTIO_NET_CTRL_HDR_SIZE];
        uint8_t ack;

        if (elem->out_len < VIRTIO_NET_CTRL_HDR_SIZE || elem->in_len < 1) {
            virtio_error(vdev, "virtio-net control command without header "
                         "or ack (%" PRIu64 " out, %" PRIu64 " in bytes)",
                         elem->out_len, elem->in_len);
            virtqueue_detach_element(vq, elem);
            return;
        }
        iov_to_buf(elem->out_sg, elem->out_num, 0, ctl, sizeof(ctl));
        ack = virtio_net_ctrl_cmd(s, elem, ctl[VIRTIO_NET_CTRL_CLASS],
                                  ctl[VIRTIO_NET_CTRL_CMD],
                                  elem->out_len - VIRTIO_NET_CTRL_HDR_SIZE);
        trace_virtio_net_ctrl(virtio_net_id(s), ctl[VIRTIO_NET_CTRL_CLASS],
                              ctl[VIRTIO_NET_CTRL_CMD], ack);
        iov_from_buf(elem->in_sg, elem->in_num, 0, &ack, 1);
        virtqueue_push(vq, elem, 1);
        virtio_notify(vdev, vq);
    }
}

static void virtio_net_handle_queue(VirtIODevice *vdev, VirtQueue *vq)
{
    VirtIONet *s = VIRTIO_NET(&vdev->pci.dev);

    switch (virtio_net_vq_role(s, virtio_queue_index(vq))) {
    case VIRTIO_NET_VQ_RX:
        virtio_net_handle_rx(s, vq);
        break;
    case VIRTIO_NET_VQ_TX:
        virtio_net_handle_tx(s, vq);
        break;
    case VIRTIO_NET_VQ_CTRL:
        virtio_net_handle_ctrl(s, vq);
        break;
    case VIRTIO_NET_VQ_NONE:
        trace_virtio_net_err_queue_unused(virtio_net_id(s),
                                          virtio_queue_index(vq));
        break;
    }
}

/* ---- configuration and features ---- */

static void virtio_net_get_config(VirtIODevice *vdev, uint8_t *c)
{
    VirtIONet *s = VIRTIO_NET(&vdev->pci.dev);

    memset(c, 0, VIRTIO_NET_CFG_SIZE);
    memcpy(c + VIRTIO_NET_CFG_MAC, s->mac, VIRTIO_NET_ETH_ALEN);
    stw_le_p(c + VIRTIO_NET_CFG_STATUS,
             s->link_up ? VIRTIO_NET_S_LINK_UP : 0);
    stw_le_p(c + VIRTIO_NET_CFG_MAX_VQ_PAIRS, s->max_pairs);
    stw_le_p(c + VIRTIO_NET_CFG_MTU, s->host_mtu);
    stl_le_p(c + VIRTIO_NET_CFG_SPEED, VIRTIO_NET_SPEED_UNKNOWN);
    c[VIRTIO_NET_CFG_DUPLEX] = VIRTIO_NET_DUPLEX_UNKNOWN;
}

/* The dependencies of 5.1.3.1 among the features a driver accepted. */
static bool virtio_net_validate_features(VirtIODevice *vdev, uint64_t f)
{
    static const struct {
        uint8_t feature;
        uint8_t needs, or_needs;
    } deps[] = {
        { VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_CSUM, 0xff },
        { VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_GUEST_CSUM, 0xff },
        { VIRTIO_NET_F_GUEST_ECN, VIRTIO_NET_F_GUEST_TSO4,
          VIRTIO_NET_F_GUEST_TSO6 },
        { VIRTIO_NET_F_GUEST_UFO, VIRTIO_NET_F_GUEST_CSUM, 0xff },
        { VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_CSUM, 0xff },
        { VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_CSUM, 0xff },
        { VIRTIO_NET_F_HOST_ECN, VIRTIO_NET_F_HOST_TSO4,
          VIRTIO_NET_F_HOST_TSO6 },
        { VIRTIO_NET_F_HOST_UFO, VIRTIO_NET_F_CSUM, 0xff },
        { VIRTIO_NET_F_CTRL_RX, VIRTIO_NET_F_CTRL_VQ, 0xff },
        { VIRTIO_NET_F_CTRL_VLAN, VIRTIO_NET_F_CTRL_VQ, 0xff },
        { VIRTIO_NET_F_GUEST_ANNOUNCE, VIRTIO_NET_F_CTRL_VQ, 0xff },
        { VIRTIO_NET_F_MQ, VIRTIO_NET_F_CTRL_VQ, 0xff },
        { VIRTIO_NET_F_CTRL_MAC_ADDR, VIRTIO_NET_F_CTRL_VQ, 0xff },
        { VIRTIO_NET_F_CTRL_GUEST_OFFLOADS, VIRTIO_NET_F_CTRL_VQ, 0xff },
        { VIRTIO_NET_F_CTRL_RX_EXTRA, VIRTIO_NET_F_CTRL_RX, 0xff },
    };
    VirtIONet *s = VIRTIO_NET(&vdev->pci.dev);

    for (unsigned i = 0; i < ARRAY_SIZE(deps); i++) {
        if (!(f & VIRTIO_BIT(deps[i].feature))) {
            continue;
        }
        if (!(f & VIRTIO_BIT(deps[i].needs)) &&
            (deps[i].or_needs == 0xff ||
             !(f & VIRTIO_BIT(deps[i].or_needs)))) {
            trace_virtio_net_err_features(virtio_net_id(s), deps[i].feature,
                                          deps[i].needs);
            return false;
        }
    }
    return true;
}

static void virtio_net_set_features(VirtIODevice *vdev, uint64_t features)
{
    VirtIONet *s = VIRTIO_NET(&vdev->pci.dev);

    s->mergeable = features & VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF);
    s->curr_pairs = 1;
    s->guest_offloads = s->vnet_hdr ? features & VIRTIO_NET_GUEST_OFFLOADS
                                    : 0;
    virtio_net_apply_offloads(s);
}

/* The receive filter and the rest of the driver-visible state. */
static void virtio_net_reset_state(VirtIONet *s)
{
    /* Promiscuous until a driver with CTRL_RX says otherwise. */
    s->promisc = true;
    s->allmulti = s->alluni = s->nomulti = s->nouni = s->nobcast = false;
    s->uni_overflow = s->multi_overflow = false;
    s->uni_count = s->multi_count = 0;
    memset(s->vlans, 0, sizeof(s->vlans));
    memcpy(s->mac, s->perm_mac, sizeof(s->mac));
    s->curr_pairs = 1;
    s->mergeable = false;
    s->guest_offloads = 0;
    s->tx_blocked = false;
}

static void virtio_net_reset(VirtIODevice *vdev)
{
    VirtIONet *s = VIRTIO_NET(&vdev->pci.dev);

    /* Nothing is in flight: every element is pushed where it was used. */
    virtio_net_reset_state(s);
    if (s->nic) {
        virtio_net_set_info(s);
        virtio_net_apply_offloads(s);
        /* Frames held for the old driver go; the backend reads again. */
        nic_rx_reset(&s->rx);
        net_purge_queue(s->nic);
        nic_rx_flush(&s->rx);
        net_rx_filter_changed(s->nic);
    }
}

/* ---- device state ---- */

#define VIRTIO_NET_STATE_VERSION        1

/* The driver-visible state, as saved or as loaded before it is applied. */
typedef struct VirtIONetState {
    uint8_t mac[VIRTIO_NET_ETH_ALEN];
    uint16_t curr_pairs;
    uint64_t guest_offloads;
    bool promisc, allmulti, alluni, nomulti, nouni, nobcast;
    bool uni_overflow, multi_overflow;
    unsigned uni_count, multi_count;
    uint8_t uni[VIRTIO_NET_MAC_TABLE_ENTRIES][VIRTIO_NET_ETH_ALEN];
    uint8_t multi[VIRTIO_NET_MAC_TABLE_ENTRIES][VIRTIO_NET_ETH_ALEN];
    uint32_t vlans[VIRTIO_NET_VLAN_MAX / 32];
    bool link_up;               /* as the status field last said */
} VirtIONetState;

/* The receive modes, the MAC table overflows, the link status. */
static const struct {
    const char *name;
    size_t off;
} virtio_net_state_flags[] = {
    { "promisc", offsetof(VirtIONetState, promisc) },
    { "allmulti", offsetof(VirtIONetState, allmulti) },
    { "alluni", offsetof(VirtIONetState, alluni) },
    { "nomulti", offsetof(VirtIONetState, nomulti) },
    { "nouni", offsetof(VirtIONetState, nouni) },
    { "nobcast", offsetof(VirtIONetState, nobcast) },
    { "uni-overflow", offsetof(VirtIONetState, uni_overflow) },
    { "multi-overflow", offsetof(VirtIONetState, multi_overflow) },
    { "link-up", offsetof(VirtIONetState, link_up) },
};

static bool *virtio_net_state_flag(VirtIONetState *st, unsigned i)
{
    return (bool *)((uint8_t *)st + virtio_net_state_flags[i].off);
}

static void virtio_net_state_get(VirtIONet *s, VirtIONetState *st)
{
    memcpy(st->mac, s->mac, sizeof(st->mac));
    st->curr_pairs = s->curr_pairs;
    st->guest_offloads = s->guest_offloads;
    st->promisc = s->promisc;
    st->allmulti = s->allmulti;
    st->alluni = s->alluni;
    st->nomulti = s->nomulti;
    st->nouni = s->nouni;
    st->nobcast = s->nobcast;
    st->uni_overflow = s->uni_overflow;
    st->multi_overflow = s->multi_overflow;
    st->uni_count = s->uni_count;
    st->multi_count = s->multi_count;
    memcpy(st->uni, s->uni, sizeof(st->uni));
    memcpy(st->multi, s->multi, sizeof(st->multi));
    memcpy(st->vlans, s->vlans, sizeof(st->vlans));
    st->link_up = s->link_up;
}

static void virtio_net_state_set(VirtIONet *s, const VirtIONetState *st)
{
    memcpy(s->mac, st->mac, sizeof(s->mac));
    s->curr_pairs = st->curr_pairs;
    s->guest_offloads = st->guest_offloads;
    s->promisc = st->promisc;
    s->allmulti = st->allmulti;
    s->alluni = st->alluni;
    s->nomulti = st->nomulti;
    s->nouni = st->nouni;
    s->nobcast = st->nobcast;
    s->uni_overflow = st->uni_overflow;
    s->multi_overflow = st->multi_overflow;
    s->uni_count = st->uni_count;
    s->multi_count = st->multi_count;
    memcpy(s->uni, st->uni, sizeof(s->uni));
    memcpy(s->multi, st->multi, sizeof(s->multi));
    memcpy(s->vlans, st->vlans, sizeof(s->vlans));
    s->link_up = st->link_up;
}

static void virtio_net_save_state(VirtIODevice *vdev, StateWriter *w)
{
    VirtIONet *s = VIRTIO_NET(&vdev->pci.dev);
    uint8_t vlans[sizeof(s->vlans)];
    VirtIONetState st;

    virtio_net_state_get(s, &st);
    for (unsigned i = 0; i < G_N_ELEMENTS(st.vlans); i++) {
        stl_le_p(vlans + 4 * i, st.vlans[i]);
    }
    state_begin(w, "virtio-net", VIRTIO_NET_STATE_VERSION);
    state_put_u32(w, "max-pairs", s->max_pairs);
    state_put_u32(w, "mtu", s->host_mtu);
    state_put_bytes(w, "mac", st.mac, sizeof(st.mac));
    state_put_u16(w, "curr-pairs", st.curr_pairs);
    state_put_u64(w, "guest-offloads", st.guest_offloads);
    for (unsigned i = 0; i < G_N_ELEMENTS(virtio_net_state_flags); i++) {
        state_put_bool(w, virtio_net_state_flags[i].name,
                       *virtio_net_state_flag(&st, i));
    }
    state_put_bytes(w, "uni-macs", st.uni,
                    st.uni_count * VIRTIO_NET_ETH_ALEN);
    state_put_bytes(w, "multi-macs", st.multi,
                    st.multi_count * VIRTIO_NET_ETH_ALEN);
    state_put_bytes(w, "vlans", vlans, sizeof(vlans));
    state_end(w);
}

/* A MAC filter table: whole addresses, at most the table's entries. */
static void virtio_net_read_macs(StateSection *sec, const char *name,
                                 uint8_t (*table)[VIRTIO_NET_ETH_ALEN],
                                 unsigned *count)
{
    size_t len;
    const void *p = state_get_blob(sec, name, &len);

    *count = 0;
    if (len % VIRTIO_NET_ETH_ALEN ||
        len / VIRTIO_NET_ETH_ALEN > VIRTIO_NET_MAC_TABLE_ENTRIES) {
        state_section_fail(sec, "%s: %zu bytes, not up to %u addresses",
                           name, len, VIRTIO_NET_MAC_TABLE_ENTRIES);
    } else if (p) {
        memcpy(table, p, len);
        *count = len / VIRTIO_NET_ETH_ALEN;
    }
}

static void virtio_net_state_read(StateSection *sec, VirtIONetState *st)
{
    uint8_t vlans[sizeof(st->vlans)];

    state_get_bytes(sec, "mac", st->mac, sizeof(st->mac));
    st->curr_pairs = state_get_u16(sec, "curr-pairs");
    st->guest_offloads = state_get_u64(sec, "guest-offloads");
    for (unsigned i = 0; i < G_N_ELEMENTS(virtio_net_state_flags); i++) {
        const char *name = virtio_net_state_flags[i].name;

        *virtio_net_state_flag(st, i) = state_get_bool(sec, name);
    }
    virtio_net_read_macs(sec, "uni-macs", st->uni, &st->uni_count);
    virtio_net_read_macs(sec, "multi-macs", st->multi, &st->multi_count);
    state_get_bytes(sec, "vlans", vlans, sizeof(vlans));
    for (unsigned i = 0; i < G_N_ELEMENTS(st->vlans); i++) {
        st->vlans[i] = ldl_le_p(vlans + 4 * i);
    }
}

/* What the control queue would have taken (virtio_net_ctrl_*). */
static void virtio_net_state_check(VirtIONet *s, const VirtIONetState *st,
                                   uint64_t features, StateSection *sec)
{
    unsigned max = features & VIRTIO_BIT(VIRTIO_NET_F_MQ) ? s->max_pairs : 1;

    if (st->mac[0] & 1) {
        state_section_fail(sec, "MAC %02x:%02x:%02x:%02x:%02x:%02x is a "
                           "multicast address", st->mac[0], st->mac[1],
                           st->mac[2], st->mac[3], st->mac[4], st->mac[5]);
    } else if (st->curr_pairs < VIRTIO_NET_VQ_PAIRS_MIN ||
               st->curr_pairs > max) {
        state_section_fail(sec, "%u queue pairs in use, at most %u with "
                           "the features negotiated", st->curr_pairs, max);
    } else if (st->guest_offloads & ~(features & VIRTIO_NET_GUEST_OFFLOADS)) {
        state_section_fail(sec, "guest offloads 0x%" PRIx64 " were not "
                           "negotiated (features 0x%" PRIx64 ")",
                           st->guest_offloads, features);
    }
}

static bool virtio_net_load_state(VirtIODevice *vdev, StateReader *r,
                                  uint64_t features, GError **errp)
{
    VirtIONet *s = VIRTIO_NET(&vdev->pci.dev);
    StateSection *sec = state_section(r, "virtio-net",
                                      VIRTIO_NET_STATE_VERSION, NULL, errp);
    g_autofree VirtIONetState *st = g_new0(VirtIONetState, 1);

    if (!sec) {
        return false;
    }
    virtio_state_expect(sec, "max-pairs", "queues", s->max_pairs);
    virtio_state_expect(sec, "mtu", "host_mtu", s->host_mtu);
    virtio_net_state_read(sec, st);
    if (!state_section_failed(sec)) {
        virtio_net_state_check(s, st, features, sec);
    }
    if (!state_section_end(sec, errp)) {
        return false;
    }
    virtio_net_state_set(s, st);
    s->mergeable = features & VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF);
    if (!s->vnet_hdr) {
        s->guest_offloads = 0;      /* as virtio_net_set_features() */
    }
    s->tx_blocked = false;          /* a new backend */
    virtio_net_set_info(s);
    virtio_net_apply_offloads(s);
    net_rx_filter_changed(s->nic);
    /* This backend's link may not be what the driver was told. */
    if (net_link_up(s->nic) != s->link_up) {
        s->link_up = !s->link_up;
        trace_virtio_net_link(virtio_net_id(s), s->link_up);
        if (features & VIRTIO_BIT(VIRTIO_NET_F_STATUS)) {
            virtio_notify_config_on_start(vdev);
        }
    }
    return true;
}

static const VirtioDeviceOps virtio_net_ops = {
    .device_id = VIRTIO_ID_NET,
    .pci_class = 0x020000,      /* network, Ethernet */
    .validate_features = virtio_net_validate_features,
    .set_features = virtio_net_set_features,
    .get_config = virtio_net_get_config,
    .reset = virtio_net_reset,
    .save_state = virtio_net_save_state,
    .load_state = virtio_net_load_state,
};

/* ---- net layer glue ---- */

static void virtio_net_link_status_changed(NetClient *nc)
{
    VirtIONet *s = nc->opaque;
    bool up = net_link_up(nc);

    if (up == s->link_up) {
        return;
    }
    s->link_up = up;
    trace_virtio_net_link(virtio_net_id(s), up);
    if (virtio_has_feature(&s->vdev, VIRTIO_NET_F_STATUS)) {
        virtio_notify_config(&s->vdev);
    }
}

static void virtio_net_rx_filter_info(NetClient *nc, NetRxFilterInfo *info)
{
    VirtIONet *s = nc->opaque;

    info->promiscuous = s->promisc;
    info->unicast = s->nouni ? NET_RX_NONE
                    : s->alluni ? NET_RX_ALL : NET_RX_NORMAL;
    info->multicast = s->nomulti ? NET_RX_NONE
                      : s->allmulti ? NET_RX_ALL : NET_RX_NORMAL;
    info->broadcast_allowed = !s->nobcast;
    info->unicast_overflow = s->uni_overflow;
    info->multicast_overflow = s->multi_overflow;
    memcpy(info->main_mac, s->mac, sizeof(info->main_mac));
    info->unicast_table = g_array_new(false, false, VIRTIO_NET_ETH_ALEN);
    g_array_append_vals(info->unicast_table, s->uni, s->uni_count);
    info->multicast_table = g_array_new(false, false, VIRTIO_NET_ETH_ALEN);
    g_array_append_vals(info->multicast_table, s->multi, s->multi_count);
    info->vlan_table = g_array_new(false, false, sizeof(uint16_t));
    if (virtio_has_feature(&s->vdev, VIRTIO_NET_F_CTRL_VLAN)) {
        for (uint16_t vid = 0; vid < VIRTIO_NET_VLAN_MAX; vid++) {
            if (virtio_net_vlan_allowed(s, vid)) {
                g_array_append_val(info->vlan_table, vid);
            }
        }
    }
}

static const NetClientOps virtio_net_net_ops = {
    .receive = virtio_net_receive,
    .can_receive = virtio_net_can_receive,
    .link_status_changed = virtio_net_link_status_changed,
    .writable = virtio_net_writable,
    .rx_filter_info = virtio_net_rx_filter_info,
};

/* ---- lifecycle ---- */

static bool virtio_net_parse_mac(const char *str, uint8_t *mac,
                                 GError **errp)
{
    unsigned b[VIRTIO_NET_ETH_ALEN];
    char end;

    if (sscanf(str, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2],
               &b[3], &b[4], &b[5], &end) != VIRTIO_NET_ETH_ALEN) {
        error_setg(errp, "property 'mac': '%s' is not a MAC address "
                   "(xx:xx:xx:xx:xx:xx)", str);
        return false;
    }
    for (unsigned i = 0; i < VIRTIO_NET_ETH_ALEN; i++) {
        mac[i] = b[i];
    }
    if (mac[0] & 1) {
        error_setg(errp, "property 'mac': '%s' is a multicast address", str);
        return false;
    }
    if (!(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5])) {
        error_setg(errp, "property 'mac': the all-zero address is not "
                   "valid");
        return false;
    }
    return true;
}

static bool virtio_net_check_queue_size(const char *name, uint16_t size,
                                        GError **errp)
{
    if (size < 4 || size > VIRTQUEUE_MAX_SIZE || (size & (size - 1))) {
        error_setg(errp, "property '%s': %u is not a power of two between "
                   "4 and %u", name, size, VIRTQUEUE_MAX_SIZE);
        return false;
    }
    return true;
}

static uint64_t virtio_net_host_features(VirtIONet *s)
{
    uint64_t f = VIRTIO_BIT(VIRTIO_NET_F_MAC);

#define OFFER(cond, bit) do { if (cond) { f |= VIRTIO_BIT(bit); } } while (0)
    OFFER(s->f_csum, VIRTIO_NET_F_CSUM);
    OFFER(s->f_guest_csum, VIRTIO_NET_F_GUEST_CSUM);
    /* Segmentation needs a backend that carries the header. */
    if (s->vnet_hdr) {
        OFFER(s->f_csum && s->f_host_tso4, VIRTIO_NET_F_HOST_TSO4);
        OFFER(s->f_csum && s->f_host_tso6, VIRTIO_NET_F_HOST_TSO6);
        OFFER(s->f_csum && (s->f_host_tso4 || s->f_host_tso6) &&
              s->f_host_ecn, VIRTIO_NET_F_HOST_ECN);
        OFFER(s->f_guest_csum && s->f_guest_tso4, VIRTIO_NET_F_GUEST_TSO4);
        OFFER(s->f_guest_csum && s->f_guest_tso6, VIRTIO_NET_F_GUEST_TSO6);
        OFFER(s->f_guest_csum && (s->f_guest_tso4 || s->f_guest_tso6) &&
              s->f_guest_ecn, VIRTIO_NET_F_GUEST_ECN);
    }
    OFFER(s->host_mtu, VIRTIO_NET_F_MTU);
    OFFER(s->f_mrg_rxbuf, VIRTIO_NET_F_MRG_RXBUF);
    OFFER(s->f_status, VIRTIO_NET_F_STATUS);
    if (s->f_ctrl_vq) {
        f |= VIRTIO_BIT(VIRTIO_NET_F_CTRL_VQ);
        OFFER(s->f_ctrl_rx, VIRTIO_NET_F_CTRL_RX);
        OFFER(s->f_ctrl_rx && s->f_ctrl_rx_extra,
              VIRTIO_NET_F_CTRL_RX_EXTRA);
        OFFER(s->f_ctrl_vlan, VIRTIO_NET_F_CTRL_VLAN);
        OFFER(s->f_ctrl_mac_addr, VIRTIO_NET_F_CTRL_MAC_ADDR);
        OFFER(s->f_ctrl_guest_offloads && s->vnet_hdr,
              VIRTIO_NET_F_CTRL_GUEST_OFFLOADS);
        OFFER(s->max_pairs > 1, VIRTIO_NET_F_MQ);
    }
#undef OFFER
    return f;
}

static void virtio_net_free(VirtIONet *s)
{
    net_nic_free(s->nic);
    s->nic = NULL;
    nic_rx_cleanup(&s->rx);
    g_clear_pointer(&s->rx_elems, g_free);
    g_clear_pointer(&s->rx_lens, g_free);
    g_clear_pointer(&s->tx_iov, g_free);
}

static bool virtio_net_realize(Device *dev, GError **errp)
{
    VirtIONet *s = VIRTIO_NET(dev);
    VirtIODevice *vdev = &s->vdev;

    if (s->mac_str) {
        if (!virtio_net_parse_mac(s->mac_str, s->perm_mac, errp)) {
            return false;
        }
    } else {
        static const uint8_t base[VIRTIO_NET_ETH_ALEN] = {
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56
        };

        memcpy(s->perm_mac, base, sizeof(base));
        s->perm_mac[5] += virtio_net_instances;
    }
    if (!virtio_net_check_queue_size("rx_queue_size", s->rx_queue_size,
                                     errp) ||
        !virtio_net_check_queue_size("tx_queue_size", s->tx_queue_size,
                                     errp)) {
        return false;
    }
    if (s->host_mtu && s->host_mtu < VIRTIO_NET_MTU_MIN) {
        error_setg(errp, "property 'host_mtu': %u is less than %u",
                   s->host_mtu, VIRTIO_NET_MTU_MIN);
        return false;
    }
    if (s->max_pairs > 1 && !s->f_ctrl_vq) {
        error_setg(errp, "property 'queues': %u queue pairs need "
                   "ctrl_vq=on", s->max_pairs);
        return false;
    }
    if (2u * s->max_pairs + 1 > VIRTIO_QUEUE_MAX) {
        error_setg(errp, "property 'queues': too many queues");
        return false;
    }

    s->nic = net_nic_new(&virtio_net_net_ops, dev->id, "virtio-net-pci",
                         s->netdev, dev->loop, s, errp);
    if (!s->nic) {
        error_prepend(errp, "property 'netdev': ");
        return false;
    }
    nic_rx_init(&s->rx, &vdev->pci, virtio_net_rx_frame, s);
    s->rx.nc = s->nic;
    s->vnet_hdr = net_has_vnet_hdr(s->nic);
    s->nic->has_vnet_hdr = s->vnet_hdr;
    memcpy(s->mac, s->perm_mac, sizeof(s->mac));
    virtio_net_set_info(s);

    virtio_init(vdev, &virtio_net_ops, virtio_net_host_features(s),
                VIRTIO_NET_CFG_SIZE);
    for (unsigned i = 0; i < s->max_pairs; i++) {
        virtio_add_queue(vdev, s->rx_queue_size, sizeof(VirtQueueElement),
                         virtio_net_handle_queue);
        virtio_add_queue(vdev, s->tx_queue_size, sizeof(VirtQueueElement),
                         virtio_net_handle_queue);
    }
    if (s->f_ctrl_vq) {
        /* Index 2 when MQ is not negotiated: it may be a control queue. */
        virtio_add_queue(vdev, VIRTIO_NET_CTRL_QUEUE_SIZE,
                         sizeof(VirtQueueElement), virtio_net_handle_queue);
    }
    s->rx_elems = g_new0(VirtQueueElement *, s->rx_queue_size);
    s->rx_lens = g_new0(uint32_t, s->rx_queue_size);
    s->tx_iov = g_new0(struct iovec, s->tx_queue_size + 3);

    if (!virtio_pci_realize(vdev, errp)) {
        virtio_cleanup(vdev);
        virtio_net_free(s);
        return false;
    }
    s->link_up = net_link_up(s->nic);
    virtio_net_instances++;
    virtio_device_reset(dev, DEVICE_RESET_FUNCTION);
    return true;
}

static void virtio_net_unrealize(Device *dev)
{
    VirtIONet *s = VIRTIO_NET(dev);

    virtio_net_free(s);
    virtio_pci_unrealize(&s->vdev);
    virtio_cleanup(&s->vdev);
}

static const PropDef virtio_net_props[] = {
    PROP_DEF_STR("mac", VirtIONet, mac_str,
                 "MAC address (default 52:54:00:12:34:56, the last byte "
                 "counting up per device)"),
    PROP_DEF_STR("netdev", VirtIONet, netdev,
                 "id of the -netdev backend to connect to"),
    PROP_DEF_UINT("queues", VirtIONet, max_pairs,
                  "receive/transmit queue pairs (more than 1: MQ)",
                  .min = 1, .max = VIRTIO_NET_MAX_PAIRS, .defval = "1"),
    PROP_DEF_UINT("host_mtu", VirtIONet, host_mtu,
                  "MTU to advise (VIRTIO_NET_F_MTU; 0: not offered)",
                  .max = 65535),
    PROP_DEF_UINT("rx_queue_size", VirtIONet, rx_queue_size,
                  "receive queue entries (a power of two)", .min = 4,
                  .max = VIRTQUEUE_MAX_SIZE, .defval = "256"),
    PROP_DEF_UINT("tx_queue_size", VirtIONet, tx_queue_size,
                  "transmit queue entries (a power of two)", .min = 4,
                  .max = VIRTQUEUE_MAX_SIZE, .defval = "256"),
    PROP_DEF_BOOL("csum", VirtIONet, f_csum,
                  "offer VIRTIO_NET_F_CSUM (checksums completed here "
                  "without a vnet_hdr backend)", .defval = "on"),
    PROP_DEF_BOOL("guest_csum", VirtIONet, f_guest_csum,
                  "offer VIRTIO_NET_F_GUEST_CSUM", .defval = "on"),
    PROP_DEF_BOOL("host_tso4", VirtIONet, f_host_tso4,
                  "offer VIRTIO_NET_F_HOST_TSO4 (vnet_hdr backends)",
                  .defval = "on"),
    PROP_DEF_BOOL("host_tso6", VirtIONet, f_host_tso6,
                  "offer VIRTIO_NET_F_HOST_TSO6 (vnet_hdr backends)",
                  .defval = "on"),
    PROP_DEF_BOOL("host_ecn", VirtIONet, f_host_ecn,
                  "offer VIRTIO_NET_F_HOST_ECN (vnet_hdr backends)",
                  .defval = "on"),
    PROP_DEF_BOOL("guest_tso4", VirtIONet, f_guest_tso4,
                  "offer VIRTIO_NET_F_GUEST_TSO4 (vnet_hdr backends)",
                  .defval = "on"),
    PROP_DEF_BOOL("guest_tso6", VirtIONet, f_guest_tso6,
                  "offer VIRTIO_NET_F_GUEST_TSO6 (vnet_hdr backends)",
                  .defval = "on"),
    PROP_DEF_BOOL("guest_ecn", VirtIONet, f_guest_ecn,
                  "offer VIRTIO_NET_F_GUEST_ECN (vnet_hdr backends)",
                  .defval = "on"),
    PROP_DEF_BOOL("mrg_rxbuf", VirtIONet, f_mrg_rxbuf,
                  "offer VIRTIO_NET_F_MRG_RXBUF", .defval = "on"),
    PROP_DEF_BOOL("status", VirtIONet, f_status,
                  "offer VIRTIO_NET_F_STATUS (link state)", .defval = "on"),
    PROP_DEF_BOOL("ctrl_vq", VirtIONet, f_ctrl_vq,
                  "offer the control queue", .defval = "on"),
    PROP_DEF_BOOL("ctrl_rx", VirtIONet, f_ctrl_rx,
                  "offer VIRTIO_NET_F_CTRL_RX", .defval = "on"),
    PROP_DEF_BOOL("ctrl_rx_extra", VirtIONet, f_ctrl_rx_extra,
                  "offer VIRTIO_NET_F_CTRL_RX_EXTRA", .defval = "on"),
    PROP_DEF_BOOL("ctrl_vlan", VirtIONet, f_ctrl_vlan,
                  "offer VIRTIO_NET_F_CTRL_VLAN", .defval = "on"),
    PROP_DEF_BOOL("ctrl_mac_addr", VirtIONet, f_ctrl_mac_addr,
                  "offer VIRTIO_NET_F_CTRL_MAC_ADDR", .defval = "on"),
    PROP_DEF_BOOL("ctrl_guest_offloads", VirtIONet, f_ctrl_guest_offloads,
                  "offer VIRTIO_NET_F_CTRL_GUEST_OFFLOADS (vnet_hdr "
                  "backends)", .defval = "on"),
    VIRTIO_COMMON_PROPS(VirtIONet, vdev),
    PROP_DEF_END
};

static const StatsSchema *const virtio_net_stats[] = {
    &nic_stats_device, &virtio_stats_queue, NULL
};

static void virtio_net_get_stats(Device *dev, StatsCollector *c)
{
    VirtIONet *n = VIRTIO_NET(dev);

    nic_report_stats(n->nic, c);
    virtio_report_stats(&n->vdev, c);
}

static const DeviceClass virtio_net_class = {
    .name = "virtio-net-pci",
    .desc = "virtio network device (modern virtio-pci)",
    .instance_size = sizeof(VirtIONet),
    .is_pci = true,
    .base_props = pci_common_props,
    .props = virtio_net_props,
    .realize = virtio_net_realize,
    .unrealize = virtio_net_unrealize,
    .reset = virtio_device_reset,
    .quiesce = virtio_device_quiesce,
    .run_state_changed = virtio_device_run_state_changed,
    .save_state = virtio_device_save_state,
    .load_state = virtio_device_load_state,
    .stats = virtio_net_stats,
    .get_stats = virtio_net_get_stats,
};

static void __attribute__((constructor)) virtio_net_register(void)
{
    device_class_register(&virtio_net_class);
}
