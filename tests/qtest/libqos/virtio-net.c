/*
 * A guest-side virtio-net driver for tests (see virtio-net.h).
 */
#include "util/osdep.h"

#include "tests/qtest/libqos/virtio-net.h"

#define QVNET_RX_BUF_DEFAULT    2048

/* ---- headers ---- */

void qvnet_hdr_pack(uint8_t *raw, const QVirtioNetHdr *hdr)
{
    raw[VIRTIO_NET_HDR_FLAGS] = hdr->flags;
    raw[VIRTIO_NET_HDR_GSO_TYPE] = hdr->gso_type;
    stw_le_p(raw + VIRTIO_NET_HDR_HDR_LEN, hdr->hdr_len);
    stw_le_p(raw + VIRTIO_NET_HDR_GSO_SIZE, hdr->gso_size);
    stw_le_p(raw + VIRTIO_NET_HDR_CSUM_START, hdr->csum_start);
    stw_le_p(raw + VIRTIO_NET_HDR_CSUM_OFFSET, hdr->csum_offset);
    stw_le_p(raw + VIRTIO_NET_HDR_NUM_BUFFERS, hdr->num_buffers);
}

void qvnet_hdr_unpack(QVirtioNetHdr *hdr, const uint8_t *raw)
{
    hdr->flags = raw[VIRTIO_NET_HDR_FLAGS];
    hdr->gso_type = raw[VIRTIO_NET_HDR_GSO_TYPE];
    hdr->hdr_len = lduw_le_p(raw + VIRTIO_NET_HDR_HDR_LEN);
    hdr->gso_size = lduw_le_p(raw + VIRTIO_NET_HDR_GSO_SIZE);
    hdr->csum_start = lduw_le_p(raw + VIRTIO_NET_HDR_CSUM_START);
    hdr->csum_offset = lduw_le_p(raw + VIRTIO_NET_HDR_CSUM_OFFSET);
    hdr->num_buffers = lduw_le_p(raw + VIRTIO_NET_HDR_NUM_BUFFERS);
}

/* ---- pools ---- */

static void pool_init(QVirtioNetPool *p, GuestMem *gm, unsigned slot,
                      unsigned count)
{
    p->slot = slot;
    p->count = count;
    p->base = guest_alloc_aligned(gm, (uint64_t)slot * count, 64);
    p->free = g_new(unsigned, count);
    p->nfree = count;
    for (unsigned i = 0; i < count; i++) {
        p->free[i] = count - 1 - i;
    }
}

static void pool_fini(QVirtioNetPool *p, GuestMem *gm)
{
    if (p->base) {
        guest_free(gm, p->base);
    }
    g_free(p->free);
    memset(p, 0, sizeof(*p));
}

static uint64_t pool_addr(QVirtioNetPool *p, unsigned i)
{
    return p->base + (uint64_t)i * p->slot;
}

/* ---- set-up ---- */

QVirtioNet *qvnet_new(QPCIDevice *pdev, GuestMem *gm)
{
    QVirtioNet *n = g_new0(QVirtioNet, 1);

    n->vd = qvirtio_pci_new(pdev, gm);
    n->gm = gm;
    qos_assert(n->vd->device_type == VIRTIO_ID_NET,
               "not a virtio network device (type %u)", n->vd->device_type);
    return n;
}

static void qvnet_release(QVirtioNet *n)
{
    for (unsigned q = 0; q < QVNET_MAX_PAIRS; q++) {
        /* The queues may be gone already (qvirtio_reset). */
        if (n->tx_addr[q]) {
            for (unsigned i = 0; i < n->tx_pool[q].count; i++) {
                if (n->tx_addr[q][i] && n->tx_slot[q][i] < 0) {
                    guest_free(n->gm, n->tx_addr[q][i]);
                }
            }
        }
        pool_fini(&n->rx_pool[q], n->gm);
        pool_fini(&n->tx_pool[q], n->gm);
        g_clear_pointer(&n->rx_slot[q], g_free);
        g_clear_pointer(&n->tx_addr[q], g_free);
        g_clear_pointer(&n->tx_slot[q], g_free);
        n->tx_inflight[q] = 0;
        n->rx[q] = n->tx[q] = NULL;
    }
    n->ctrl = NULL;
}

void qvnet_free(QVirtioNet *n)
{
    if (!n) {
        return;
    }
    qvnet_release(n);
    qvirtio_free(n->vd);
    g_free(n);
}

bool qvnet_has(QVirtioNet *n, unsigned feature)
{
    return n->features & VIRTIO_BIT(feature);
}

void qvnet_init(QVirtioNet *n, const QVirtioNetInit *init)
{
    QVirtioDevice *vd = n->vd;
    uint64_t wanted = init->features ? init->features : QVNET_LINUX_FEATURES;
    uint64_t f;
    unsigned nq;

    qvnet_release(n);
    f = (wanted & qvirtio_device_features(vd)) |
        VIRTIO_BIT(VIRTIO_F_VERSION_1);
    n->max_pairs = 1;
    if (f & VIRTIO_BIT(VIRTIO_NET_F_MQ)) {
        n->max_pairs = qvnet_config_max_pairs(n);
        qos_assert(n->max_pairs >= 1 && n->max_pairs <= QVNET_MAX_PAIRS,
                   "max_virtqueue_pairs %u (this driver: 1 to %u)",
                   n->max_pairs, QVNET_MAX_PAIRS);
    }
    nq = 2 * n->max_pairs + ((f & VIRTIO_BIT(VIRTIO_NET_F_CTRL_VQ)) ? 1 : 0);
    qvirtio_init(vd, &(QVirtioInit) {
        .features = f, .nqueues = nq, .queue_size = init->queue_size,
        .irq = init->irq,
    });
    n->features = vd->features;
    n->pairs = 1;
    n->rx_buf_len = init->rx_buf_len ? init->rx_buf_len
                                     : QVNET_RX_BUF_DEFAULT;
    n->rx_segs = MAX(init->rx_segs, 1u);
    qos_assert(n->rx_buf_len >= n->rx_segs, "receive buffers of %u bytes "
               "in %u descriptors", n->rx_buf_len, n->rx_segs);
    n->rx_repost = true;
    n->indirect = init->indirect &&
                  (n->features & VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC));
    for (unsigned q = 0; q < n->max_pairs; q++) {
        n->rx[q] = vd->vqs[2 * q];
        n->tx[q] = vd->vqs[2 * q + 1];
        pool_init(&n->rx_pool[q], n->gm, n->rx_buf_len, n->rx[q]->num);
        pool_init(&n->tx_pool[q], n->gm, QVNET_TX_SLOT, n->tx[q]->num);
        n->rx_slot[q] = g_new(int, n->rx[q]->num);
        for (unsigned i = 0; i < n->rx[q]->num; i++) {
            n->rx_slot[q][i] = -1;
        }
        n->tx_addr[q] = g_new0(uint64_t, n->tx[q]->num);
        n->tx_slot[q] = g_new(int, n->tx[q]->num);
    }
    if (f & VIRTIO_BIT(VIRTIO_NET_F_CTRL_VQ)) {
        n->ctrl = vd->vqs[2 * n->max_pairs];
    }
    /* As Linux: receive buffers when the interface comes up. */
    if (init->rx_post != QVNET_RX_NONE) {
        for (unsigned q = 0; q < n->max_pairs; q++) {
            qvnet_rx_post(n, q, init->rx_post ? init->rx_post : UINT_MAX);
        }
    }
    if (qvnet_has(n, VIRTIO_NET_F_MQ)) {
        unsigned pairs = init->pairs ? init->pairs : n->max_pairs;

        qos_assert(qvnet_ctrl_pairs(n, pairs) == VIRTIO_NET_OK,
                   "VQ_PAIRS_SET %u refused", pairs);
    }
}

/* ---- configuration ---- */

void qvnet_config_mac(QVirtioNet *n, uint8_t *mac)
{
    uint8_t gen;

    do {
        gen = qvirtio_generation(n->vd);
        for (unsigned i = 0; i < VIRTIO_NET_ETH_ALEN; i++) {
            mac[i] = qvirtio_config_readb(n->vd, VIRTIO_NET_CFG_MAC + i);
        }
    } while (gen != qvirtio_generation(n->vd));
}

uint16_t qvnet_config_status(QVirtioNet *n)
{
    return qvirtio_config_readw(n->vd, VIRTIO_NET_CFG_STATUS);
}

uint16_t qvnet_config_max_pairs(QVirtioNet *n)
{
    return qvirtio_config_readw(n->vd, VIRTIO_NET_CFG_MAX_VQ_PAIRS);
}

uint16_t qvnet_config_mtu(QVirtioNet *n)
{
    return qvirtio_config_readw(n->vd, VIRTIO_NET_CFG_MTU);
}

/* ---- waiting ---- */

/*
 * Ask for an interrupt at the next used buffer, then wait a little for
 * it (or just serve the client when there is no vector).
 */
static void qvnet_wait(QVirtQueue *vq, int64_t deadline)
{
    QVirtioDevice *vd = vq->vd;
    int fd = qvirtqueue_irq_fd(vq);
    int ms = MIN(qos_remaining_ms(deadline), 20);

    if (fd >= 0 && vq->interrupts) {
        if (vq->event_idx) {
            qvirtqueue_set_used_event(vq, vq->packed
                ? (uint16_t)(vq->last_used |
                             ((uint16_t)vq->used_wrap <<
                              VRING_PACKED_EVENT_WRAP_SHIFT))
                : vq->last_used_idx);
        }
        qpci_eventfd_wait(vd->pdev, fd, ms);
    } else {
        vfu_service(qpci_client(vd->pdev), ms ? 1 : 0);
    }
}

/* ---- receive ---- */

static int qvnet_rx_add(QVirtioNet *n, unsigned q)
{
    QVirtioNetPool *p = &n->rx_pool[q];
    QVirtioBuf bufs[QVIRTIO_MAX_CHAIN];
    unsigned segs = n->rx_segs, slot;
    uint64_t addr;
    uint32_t off = 0;
    int id;

    if (!p->nfree) {
        return -ENOSPC;
    }
    slot = p->free[p->nfree - 1];
    addr = pool_addr(p, slot);
    for (unsigned i = 0; i < segs; i++) {
        uint32_t l = n->rx_buf_len / segs +
                     (i < n->rx_buf_len % segs ? 1 : 0);

        bufs[i] = (QVirtioBuf) { addr + off, l, true };
        off += l;
    }
    id = qvirtqueue_add(n->rx[q], bufs, segs, n->indirect && segs > 1);
    if (id < 0) {
        return id;
    }
    p->nfree--;
    n->rx_slot[q][id] = slot;
    return id;
}

unsigned qvnet_rx_post(QVirtioNet *n, unsigned q, unsigned count)
{
    unsigned done = 0;

    qos_assert(q < n->max_pairs, "receive queue %u does not exist", q);
    while (done < count && qvnet_rx_add(n, q) >= 0) {
        done++;
    }
    if (done) {
        qvirtqueue_kick(n->rx[q]);
    }
    return done;
}

unsigned qvnet_rx_posted(QVirtioNet *n, unsigned q)
{
    return n->rx[q]->inflight;
}

/* Take the next used receive buffer: its slot address and length. */
static bool qvnet_rx_take(QVirtioNet *n, unsigned q, uint64_t *addr,
                          uint32_t *len)
{
    uint32_t id;
    int slot;

    if (!qvirtqueue_get_used(n->rx[q], &id, len)) {
        return false;
    }
    slot = n->rx_slot[q][id];
    qos_assert(slot >= 0, "receive queue %u: used id %u has no buffer", q,
               id);
    n->rx_slot[q][id] = -1;
    qos_assert(*len <= n->rx_buf_len, "receive queue %u: used length %u "
               "of a %u-byte buffer", q, *len, n->rx_buf_len);
    *addr = pool_addr(&n->rx_pool[q], slot);
    /* The slot is free again (we copy out before posting anything). */
    n->rx_pool[q].free[n->rx_pool[q].nfree++] = slot;
    return true;
}

static ssize_t qvnet_rx_try(QVirtioNet *n, unsigned q, void *buf,
                            size_t max, QVirtioNetHdr *hdr, int64_t deadline)
{
    uint8_t raw[VIRTIO_NET_HDR_SIZE];
    QVirtioNetHdr h;
    uint64_t addr;
    uint32_t len;
    size_t total;
    unsigned nbufs;

    if (!qvnet_rx_take(n, q, &addr, &len)) {
        return -1;
    }
    qos_assert(len >= VIRTIO_NET_HDR_SIZE, "receive queue %u: used length "
               "%u, shorter than the header", q, len);
    guest_memread(n->gm, addr, raw, sizeof(raw));
    qvnet_hdr_unpack(&h, raw);
    nbufs = h.num_buffers;
    if (!qvnet_has(n, VIRTIO_NET_F_MRG_RXBUF)) {
        qos_assert(nbufs == 1, "num_buffers %u without MRG_RXBUF", nbufs);
    }
    qos_assert(nbufs >= 1, "num_buffers 0");
    total = len - VIRTIO_NET_HDR_SIZE;
    qos_assert(total <= max, "frame of %zu+ bytes, room for %zu", total,
               max);
    guest_memread(n->gm, addr + VIRTIO_NET_HDR_SIZE, buf, total);
    for (unsigned i = 1; i < nbufs; i++) {
        while (!qvnet_rx_take(n, q, &addr, &len)) {
            qos_assert(qos_remaining_ms(deadline), "receive queue %u: "
                       "buffer %u of %u never came", q, i + 1, nbufs);
            qvnet_wait(n->rx[q], deadline);
        }
        /* Every buffer but the last is filled completely. */
        qos_assert(i + 1 == nbufs || len == n->rx_buf_len,
                   "merged buffer %u of %u holds %u of %u bytes", i + 1,
                   nbufs, len, n->rx_buf_len);
        qos_assert(total + len <= max, "frame of %zu+ bytes, room for %zu",
                   total + len, max);
        guest_memread(n->gm, addr, (uint8_t *)buf + total, len);
        total += len;
    }
    if (hdr) {
        *hdr = h;
    }
    if (n->rx_repost) {
        qvnet_rx_post(n, q, nbufs);
    }
    return total;
}

ssize_t qvnet_rx(QVirtioNet *n, unsigned q, void *buf, size_t max,
                 QVirtioNetHdr *hdr, int timeout_ms)
{
    int64_t deadline = qos_deadline(timeout_ms);
    ssize_t r;

    qos_assert(q < n->max_pairs, "receive queue %u does not exist", q);
    for (;;) {
        r = qvnet_rx_try(n, q, buf, max, hdr, qos_deadline(QOS_TIMEOUT_MS));
        if (r >= 0 || !qos_remaining_ms(deadline)) {
            return r;
        }
        qvnet_wait(n->rx[q], deadline);
    }
}

unsigned qvnet_rx_discard(QVirtioNet *n, unsigned q, unsigned max,
                          uint64_t *bytes)
{
    unsigned frames = 0, bufs = 0;
    uint64_t addr;
    uint32_t len;

    while (frames < max && qvnet_rx_take(n, q, &addr, &len)) {
        unsigned nbufs = guest_readw(n->gm, addr +
                                     VIRTIO_NET_HDR_NUM_BUFFERS);
        int64_t deadline = qos_deadline(QOS_TIMEOUT_MS);

        qos_assert(nbufs >= 1 && len >= VIRTIO_NET_HDR_SIZE,
                   "receive queue %u: num_buffers %u, length %u", q, nbufs,
                   len);
        *bytes += len - VIRTIO_NET_HDR_SIZE;
        bufs++;
        for (unsigned i = 1; i < nbufs; i++) {
            while (!qvnet_rx_take(n, q, &addr, &len)) {
                qos_assert(qos_remaining_ms(deadline), "receive queue %u: "
                           "merged buffer %u of %u never came", q, i + 1,
                           nbufs);
            }
            *bytes += len;
            bufs++;
        }
        frames++;
    }
    if (bufs && n->rx_repost) {
        qvnet_rx_post(n, q, bufs);
    }
    return frames;
}

ssize_t qvnet_rx_any(QVirtioNet *n, unsigned *q, void *buf, size_t max,
                     QVirtioNetHdr *hdr, int timeout_ms)
{
    int64_t deadline = qos_deadline(timeout_ms);

    for (;;) {
        for (unsigned i = 0; i < n->max_pairs; i++) {
            ssize_t r = qvnet_rx_try(n, i, buf, max, hdr,
                                     qos_deadline(QOS_TIMEOUT_MS));

            if (r >= 0) {
                if (q) {
                    *q = i;
                }
                return r;
            }
        }
        if (!qos_remaining_ms(deadline)) {
            return -1;
        }
        vfu_service(qpci_client(n->vd->pdev), 1);
    }
}

/* ---- transmit ---- */

unsigned qvnet_tx_reclaim(QVirtioNet *n, unsigned q)
{
    QVirtQueue *vq = n->tx[q];
    unsigned done = 0;
    uint32_t id, len;

    while (qvirtqueue_get_used(vq, &id, &len)) {
        qos_assert(n->tx_addr[q][id], "transmit queue %u: used id %u not "
                   "in flight", q, id);
        if (n->tx_slot[q][id] >= 0) {
            QVirtioNetPool *p = &n->tx_pool[q];

            p->free[p->nfree++] = n->tx_slot[q][id];
        } else {
            guest_free(n->gm, n->tx_addr[q][id]);
        }
        n->tx_addr[q][id] = 0;
        n->tx_inflight[q]--;
        done++;
    }
    return done;
}

int qvnet_tx_add(QVirtioNet *n, unsigned q, const void *frame, size_t len,
                 const QVirtioNetHdr *hdr, unsigned segs)
{
    static const QVirtioNetHdr zero;
    QVirtioNetPool *p = &n->tx_pool[q];
    QVirtioBuf bufs[QVIRTIO_MAX_CHAIN];
    uint8_t raw[VIRTIO_NET_HDR_SIZE];
    size_t total = VIRTIO_NET_HDR_SIZE + len;
    unsigned nb = 0;
    uint64_t addr;
    int slot = -1, id;

    qos_assert(q < n->max_pairs, "transmit queue %u does not exist", q);
    qos_assert(segs < QVIRTIO_MAX_CHAIN, "%u segments", segs);
    qvnet_tx_reclaim(n, q);
    if (n->tx[q]->nfree < MAX(segs, 1u)) {
        return -ENOSPC;
    }
    if (total <= p->slot && p->nfree) {
        slot = p->free[--p->nfree];
        addr = pool_addr(p, slot);
    } else {
        addr = guest_alloc(n->gm, total);
    }
    qvnet_hdr_pack(raw, hdr ? hdr : &zero);
    guest_memwrite(n->gm, addr, raw, sizeof(raw));
    if (len) {
        guest_memwrite(n->gm, addr + VIRTIO_NET_HDR_SIZE, frame, len);
    }
    if (segs <= 1) {
        bufs[nb++] = (QVirtioBuf) { addr, total, false };
    } else {
        uint64_t off = VIRTIO_NET_HDR_SIZE;

        bufs[nb++] = (QVirtioBuf) { addr, VIRTIO_NET_HDR_SIZE, false };
        for (unsigned i = 0; i < segs - 1; i++) {
            uint32_t l = len / (segs - 1) + (i < len % (segs - 1) ? 1 : 0);

            if (l) {
                bufs[nb++] = (QVirtioBuf) { addr + off, l, false };
            }
            off += l;
        }
    }
    id = qvirtqueue_add(n->tx[q], bufs, nb, n->indirect && nb > 1);
    if (id < 0) {
        if (slot >= 0) {
            p->free[p->nfree++] = slot;
        } else {
            guest_free(n->gm, addr);
        }
        return id;
    }
    n->tx_addr[q][id] = addr;
    n->tx_slot[q][id] = slot;
    n->tx_inflight[q]++;
    return id;
}

void qvnet_tx_kick(QVirtioNet *n, unsigned q)
{
    qvirtqueue_kick(n->tx[q]);
}

void qvnet_tx(QVirtioNet *n, unsigned q, const void *frame, size_t len,
              const QVirtioNetHdr *hdr)
{
    int64_t deadline = qos_deadline(QOS_TIMEOUT_MS);

    while (qvnet_tx_add(n, q, frame, len, hdr, 1) < 0) {
        qvnet_tx_kick(n, q);
        qos_assert(qos_remaining_ms(deadline), "transmit queue %u stayed "
                   "full for %d ms", q, QOS_TIMEOUT_MS);
        qvnet_wait(n->tx[q], deadline);
    }
    qvnet_tx_kick(n, q);
}

void qvnet_tx_wait(QVirtioNet *n, unsigned q)
{
    int64_t deadline = qos_deadline(QOS_TIMEOUT_MS);

    qvnet_tx_reclaim(n, q);
    while (n->tx_inflight[q]) {
        qos_assert(qos_remaining_ms(deadline), "transmit queue %u: %u "
                   "buffers not used within %d ms", q, n->tx_inflight[q],
                   QOS_TIMEOUT_MS);
        qvnet_wait(n->tx[q], deadline);
        qvnet_tx_reclaim(n, q);
    }
}

/* ---- control queue ---- */

uint8_t qvnet_ctrl(QVirtioNet *n, uint8_t cls, uint8_t cmd,
                   const void *data, size_t len)
{
    GuestMem *gm = n->gm;
    QVirtioBuf bufs[3];
    uint64_t addr;
    uint8_t hdr[VIRTIO_NET_CTRL_HDR_SIZE] = { cls, cmd };
    uint8_t ack;
    unsigned nb = 0;
    uint32_t used;
    int id;

    qos_assert(n->ctrl, "no control queue negotiated");
    addr = guest_alloc(gm, VIRTIO_NET_CTRL_HDR_SIZE + len + 1);
    guest_memwrite(gm, addr, hdr, sizeof(hdr));
    if (len) {
        guest_memwrite(gm, addr + sizeof(hdr), data, len);
    }
    guest_writeb(gm, addr + sizeof(hdr) + len, 0xee);
    /* Linux's layout: header, data, ack in three descriptors. */
    bufs[nb++] = (QVirtioBuf) { addr, sizeof(hdr), false };
    if (len) {
        bufs[nb++] = (QVirtioBuf) { addr + sizeof(hdr), len, false };
    }
    bufs[nb++] = (QVirtioBuf) { addr + sizeof(hdr) + len, 1, true };
    id = qvirtqueue_add(n->ctrl, bufs, nb, false);
    qos_assert(id >= 0, "control queue full");
    qvirtqueue_kick(n->ctrl);
    used = qvirtqueue_wait_used(n->ctrl, id);
    ack = guest_readb(gm, addr + sizeof(hdr) + len);
    guest_free(gm, addr);
    qos_assert(used == 1, "control command %u/%u: used length %u", cls, cmd,
               used);
    return ack;
}

uint8_t qvnet_ctrl_rx(QVirtioNet *n, uint8_t cmd, bool on)
{
    uint8_t v = on;

    return qvnet_ctrl(n, VIRTIO_NET_CTRL_RX, cmd, &v, 1);
}

uint8_t qvnet_ctrl_mac_table(QVirtioNet *n, const uint8_t (*uni)[6],
                             unsigned nuni, const uint8_t (*multi)[6],
                             unsigned nmulti)
{
    size_t len = 8 + 6 * (nuni + nmulti);
    g_autofree uint8_t *d = g_malloc(len);
    uint8_t *p = d;

    stl_le_p(p, nuni);
    p += 4;
    if (nuni) {
        memcpy(p, uni, 6 * nuni);
    }
    p += 6 * nuni;
    stl_le_p(p, nmulti);
    p += 4;
    if (nmulti) {
        memcpy(p, multi, 6 * nmulti);
    }
    return qvnet_ctrl(n, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET,
                      d, len);
}

uint8_t qvnet_ctrl_mac_addr(QVirtioNet *n, const uint8_t *mac)
{
    return qvnet_ctrl(n, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET,
                      mac, VIRTIO_NET_ETH_ALEN);
}

uint8_t qvnet_ctrl_vlan(QVirtioNet *n, bool add, uint16_t vid)
{
    uint8_t v[2];

    stw_le_p(v, vid);
    return qvnet_ctrl(n, VIRTIO_NET_CTRL_VLAN,
                      add ? VIRTIO_NET_CTRL_VLAN_ADD : VIRTIO_NET_CTRL_VLAN_DEL,
                      v, sizeof(v));
}

uint8_t qvnet_ctrl_pairs(QVirtioNet *n, uint16_t pairs)
{
    uint8_t v[2];
    uint8_t ack;

    stw_le_p(v, pairs);
    ack = qvnet_ctrl(n, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET,
                     v, sizeof(v));
    if (ack == VIRTIO_NET_OK) {
        n->pairs = pairs;
    }
    return ack;
}
