/*
 * A guest-side virtio-net driver for tests, on top of libqos/virtio.h, in
 * the manner of Linux's virtio_net: features negotiated as Linux asks for
 * them, receive/transmit queue pairs and the control queue set up (the
 * control queue's index follows from MQ), receive buffers posted after
 * DRIVER_OK, VQ_PAIRS_SET sent when MQ was negotiated.
 *
 *     QVirtioNet *n = qvnet_new(pdev, gm);
 *     qvnet_init(n, &(QVirtioNetInit){ .features = QVNET_LINUX_FEATURES });
 *     qvnet_tx(n, 0, frame, len, NULL);
 *     ssize_t got = qvnet_rx(n, 0, buf, sizeof(buf), &hdr, QOS_TIMEOUT_MS);
 *
 * Receive buffers come from a per-queue pool of rx_buf_len-byte slots
 * (rx_segs descriptors each); with MRG_RXBUF a frame may span several,
 * and qvnet_rx() gathers num_buffers of them and posts them again.
 * Transmit buffers are slots of a per-queue pool (bigger frames get their
 * own allocation), reclaimed when the device has used them.
 */
#ifndef LIBQOS_VIRTIO_NET_H
#define LIBQOS_VIRTIO_NET_H

#include "hw/virtio/virtio-net-spec.h"
#include "tests/qtest/libqos/virtio.h"

/* Queue pairs this driver handles (QVIRTIO_MAX_QUEUES allows 7 + ctrl). */
#define QVNET_MAX_PAIRS         7
/* Transmit pool slot: a header and a full-size Ethernet frame. */
#define QVNET_TX_SLOT           2048
/* qvnet_init(.rx_post): post no receive buffers. */
#define QVNET_RX_NONE           (~0u)

/* What Linux's virtio_net driver accepts (plus the ring features). */
#define QVNET_LINUX_FEATURES                                            \
    (VIRTIO_BIT(VIRTIO_NET_F_CSUM) | VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM) | \
     VIRTIO_BIT(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) |                     \
     VIRTIO_BIT(VIRTIO_NET_F_MTU) | VIRTIO_BIT(VIRTIO_NET_F_MAC) |      \
     VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4) |                              \
     VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO6) |                              \
     VIRTIO_BIT(VIRTIO_NET_F_GUEST_ECN) |                               \
     VIRTIO_BIT(VIRTIO_NET_F_GUEST_UFO) |                               \
     VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO4) |                               \
     VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO6) |                               \
     VIRTIO_BIT(VIRTIO_NET_F_HOST_ECN) |                                \
     VIRTIO_BIT(VIRTIO_NET_F_HOST_UFO) |                                \
     VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF) |                               \
     VIRTIO_BIT(VIRTIO_NET_F_STATUS) | VIRTIO_BIT(VIRTIO_NET_F_CTRL_VQ) | \
     VIRTIO_BIT(VIRTIO_NET_F_CTRL_RX) | VIRTIO_BIT(VIRTIO_NET_F_CTRL_VLAN) | \
     VIRTIO_BIT(VIRTIO_NET_F_CTRL_RX_EXTRA) |                           \
     VIRTIO_BIT(VIRTIO_NET_F_GUEST_ANNOUNCE) |                          \
     VIRTIO_BIT(VIRTIO_NET_F_MQ) |                                      \
     VIRTIO_BIT(VIRTIO_NET_F_CTRL_MAC_ADDR) |                           \
     VIRTIO_BIT(VIRTIO_F_VERSION_1) |                                   \
     VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) | VIRTIO_BIT(VIRTIO_F_EVENT_IDX))

/* struct virtio_net_hdr, host order. */
typedef struct QVirtioNetHdr {
    uint8_t flags;
    uint8_t gso_type;
    uint16_t hdr_len;
    uint16_t gso_size;
    uint16_t csum_start;
    uint16_t csum_offset;
    uint16_t num_buffers;
} QVirtioNetHdr;

typedef struct QVirtioNetInit {
    uint64_t features;          /* wanted (0: QVNET_LINUX_FEATURES) */
    unsigned pairs;             /* with MQ: VQ_PAIRS_SET (0: all) */
    unsigned queue_size;        /* 0: the device's maximum */
    unsigned rx_buf_len;        /* per buffer (0: 2048, or 1526 + slack) */
    unsigned rx_segs;           /* descriptors per buffer (0: 1) */
    unsigned rx_post;           /* per queue (0: fill; QVNET_RX_NONE) */
    bool indirect;              /* chains of several buffers: indirect */
    QVirtioIrq irq;
} QVirtioNetInit;

typedef struct QVirtioNetPool {
    uint64_t base;              /* one guest allocation */
    unsigned slot, count;       /* slot size, slots */
    unsigned *free;             /* stack of free slot numbers */
    unsigned nfree;
} QVirtioNetPool;

typedef struct QVirtioNet {
    QVirtioDevice *vd;
    GuestMem *gm;
    uint64_t features;          /* negotiated */
    unsigned max_pairs;         /* queue pairs in the layout */
    unsigned pairs;             /* in use (VQ_PAIRS_SET) */
    unsigned rx_buf_len, rx_segs;
    bool indirect;              /* multi-buffer chains as indirect tables */
    bool rx_repost;             /* qvnet_rx() posts consumed buffers again */
    QVirtQueue *rx[QVNET_MAX_PAIRS], *tx[QVNET_MAX_PAIRS], *ctrl;
    QVirtioNetPool rx_pool[QVNET_MAX_PAIRS], tx_pool[QVNET_MAX_PAIRS];
    int *rx_slot[QVNET_MAX_PAIRS];      /* by id: pool slot, -1 */
    uint64_t *tx_addr[QVNET_MAX_PAIRS]; /* by id: guest buffer */
    int *tx_slot[QVNET_MAX_PAIRS];      /* by id: pool slot, -1 own */
    unsigned tx_inflight[QVNET_MAX_PAIRS];
} QVirtioNet;

QVirtioNet *qvnet_new(QPCIDevice *pdev, GuestMem *gm);
/* Free the driver (and its guest memory), not @pdev or @gm. */
void qvnet_free(QVirtioNet *n);

/* Reset and initialise as Linux does (again, if called again). */
void qvnet_init(QVirtioNet *n, const QVirtioNetInit *init);
bool qvnet_has(QVirtioNet *n, unsigned feature);

/* ---- configuration ---- */

void qvnet_config_mac(QVirtioNet *n, uint8_t *mac);
uint16_t qvnet_config_status(QVirtioNet *n);
uint16_t qvnet_config_max_pairs(QVirtioNet *n);
uint16_t qvnet_config_mtu(QVirtioNet *n);

/* ---- receive ---- */

/* Post up to @count buffers on receive queue @q and kick; how many. */
unsigned qvnet_rx_post(QVirtioNet *n, unsigned q, unsigned count);
/* Buffers posted on @q that the device has not used. */
unsigned qvnet_rx_posted(QVirtioNet *n, unsigned q);
/*
 * Wait up to @timeout_ms for a frame on receive queue @q: its length
 * (without the virtio-net header), copied into @buf (at most @max bytes;
 * fails the test when longer), the header into *@hdr (may be NULL).
 * -1 when nothing came.  The buffers go back to the queue (rx_repost).
 */
ssize_t qvnet_rx(QVirtioNet *n, unsigned q, void *buf, size_t max,
                 QVirtioNetHdr *hdr, int timeout_ms);
/*
 * Take up to @max frames from receive queue @q without copying them (a
 * benchmark's sink); adds their bytes (without headers) to *@bytes and
 * posts the buffers again at once.  Returns the frames taken.
 */
unsigned qvnet_rx_discard(QVirtioNet *n, unsigned q, unsigned max,
                          uint64_t *bytes);
/* The same on any queue in use; *@q says which (may be NULL). */
ssize_t qvnet_rx_any(QVirtioNet *n, unsigned *q, void *buf, size_t max,
                     QVirtioNetHdr *hdr, int timeout_ms);

/* ---- transmit ---- */

/*
 * Queue one frame on transmit queue @q, preceded by @hdr (NULL: zeros),
 * in @segs descriptors (0 or 1: header and frame in one; 2 or more: the
 * header alone, then the frame in segs - 1 pieces).  -ENOSPC when the
 * ring is full (after reclaiming).  Does not kick.
 */
int qvnet_tx_add(QVirtioNet *n, unsigned q, const void *frame, size_t len,
                 const QVirtioNetHdr *hdr, unsigned segs);
void qvnet_tx_kick(QVirtioNet *n, unsigned q);
/* Add (waiting for room when the ring is full) and kick. */
void qvnet_tx(QVirtioNet *n, unsigned q, const void *frame, size_t len,
              const QVirtioNetHdr *hdr);
/* Take back the buffers the device used; how many. */
unsigned qvnet_tx_reclaim(QVirtioNet *n, unsigned q);
/* Wait until the device used every transmit buffer of @q. */
void qvnet_tx_wait(QVirtioNet *n, unsigned q);

/* ---- control queue ---- */

/* One command; returns the ack (VIRTIO_NET_OK / _ERR). */
uint8_t qvnet_ctrl(QVirtioNet *n, uint8_t cls, uint8_t cmd,
                   const void *data, size_t len);
uint8_t qvnet_ctrl_rx(QVirtioNet *n, uint8_t cmd, bool on);
uint8_t qvnet_ctrl_mac_table(QVirtioNet *n, const uint8_t (*uni)[6],
                             unsigned nuni, const uint8_t (*multi)[6],
                             unsigned nmulti);
uint8_t qvnet_ctrl_mac_addr(QVirtioNet *n, const uint8_t *mac);
uint8_t qvnet_ctrl_vlan(QVirtioNet *n, bool add, uint16_t vid);
uint8_t qvnet_ctrl_pairs(QVirtioNet *n, uint16_t pairs);

/* ---- headers ---- */

void qvnet_hdr_pack(uint8_t *raw, const QVirtioNetHdr *hdr);
void qvnet_hdr_unpack(QVirtioNetHdr *hdr, const uint8_t *raw);

#endif
