/*
 * The network layer.  A NIC front end (virtio-net, e1000) and a backend
 * (user, tap, stream) are peers that exchange Ethernet frames.
 *
 * Backend → NIC: the backend calls net_send() with one frame.  The NIC's
 * receive() either takes it (returns its length), drops it (returns 0; the
 * NIC counts the drop as hardware would, e.g. filtered by MAC), or has no
 * buffer for it (returns -EAGAIN).  On -EAGAIN the frame is queued in the
 * peer's packet queue (bounded) and the backend stops reading from its
 * host side (net_can_receive() is false) until the NIC calls
 * net_flush_queue(), typically when the guest posts receive buffers; the
 * queue is then delivered in order.  Nothing is dropped silently: a frame
 * that does not fit in a full queue is counted in the stats.
 *
 * NIC → backend: net_send() / net_sendv() with one frame; the backend
 * writes it out or queues it.  With a virtio-net header (has_vnet_hdr on
 * both sides) frames carry struct virtio_net_hdr_v1 in front, so checksum
 * and segmentation offloads pass through (tap with vnet_hdr=on); otherwise
 * the NIC must hand over complete frames with checksums filled in.
 */
#ifndef NET_NET_H
#define NET_NET_H

#include "util/osdep.h"
#include "util/keyval.h"
#include "hw/core/props.h"

typedef struct NetClient NetClient;

#define NET_QUEUE_MAX_FRAMES 256
#define NET_MAX_FRAME (65536 + 32)  /* a TSO super-frame and a header */

/* What query-rx-filter reports for a NIC. */
typedef enum { NET_RX_NORMAL, NET_RX_NONE, NET_RX_ALL } NetRxMode;

typedef struct NetRxFilterInfo {
    bool promiscuous;
    NetRxMode unicast, multicast;
    bool broadcast_allowed;
    bool multicast_overflow, unicast_overflow;
    uint8_t main_mac[6];
    GArray *unicast_table;      /* of uint8_t[6], caller frees */
    GArray *multicast_table;    /* of uint8_t[6], caller frees */
    GArray *vlan_table;         /* of uint16_t, caller frees */
} NetRxFilterInfo;

typedef struct NetClientOps {
    /* Frame for this client: >0 taken, 0 dropped (counted by the NIC),
     * -EAGAIN no room now (queued, retried on net_flush_queue). */
    ssize_t (*receive)(NetClient *nc, const struct iovec *iov, int iovcnt);
    /* May the backend deliver now? (NIC: guest has buffers) */
    bool (*can_receive)(NetClient *nc);
    /* The peer's link or the user's set_link changed this client's link. */
    void (*link_status_changed)(NetClient *nc);
    /* The peer can take frames again after returning -EAGAIN to us
     * (or after net_can_receive(peer) said false). */
    void (*writable)(NetClient *nc);
    /* Backends only: called when the backend is deleted.  A NIC frees its
     * own state after net_nic_free(). */
    void (*cleanup)(NetClient *nc);
    /* NICs: fill @info (arrays allocated by the NIC). */
    void (*rx_filter_info)(NetClient *nc, NetRxFilterInfo *info);
} NetClientOps;

typedef struct NetStats {
    uint64_t rx_frames, rx_bytes, rx_dropped;     /* dropped: queue full */
    uint64_t tx_frames, tx_bytes, tx_errors;
    /* Added: frames this client sent while its link (or its peer's) was
     * down or it had no peer; rx_dropped also counts frames a backend
     * could not pass on (stream not connected) and frames purged. */
    uint64_t tx_dropped;
} NetStats;

struct NetClient {
    const NetClientOps *ops;
    char *name;                 /* netdev id or NIC device id */
    const char *model;          /* "user", "tap", "stream", "virtio-net"... */
    bool is_nic;
    struct EventLoop *loop;     /* its handlers run here */
    NetClient *peer;
    bool link_down;             /* set_link off */
    bool has_vnet_hdr;          /* frames carry a virtio_net_hdr_v1 */
    bool receive_disabled;      /* last receive returned -EAGAIN */
    GQueue queue;               /* frames waiting for this client */
    NetStats stats;
    int pcap_fd;                /* capture file, -1 when none */
    bool rx_filter_event_pending;
    void *opaque;
    /* Added: */
    bool carrier_down;          /* backends: host side not connected */
    char *info_str;             /* one line for the monitor, may be NULL */
};

/* ---- backends (netdevs) ---- */

/* Create a backend from "user,id=n0,..." / "tap,id=n1,..." options. */
NetClient *net_backend_create(Keyval *kv, GError **errp);
/*
 * Delete a backend.  One in use is detached from its NIC, as QEMU's
 * netdev_del does: the NIC stays, with no peer and its link down (it gets
 * link_status_changed); frames waiting for it are dropped; what it sends
 * from then on is dropped (stats.tx_dropped).
 */
bool net_backend_delete(const char *id, GError **errp);
NetClient *net_backend_find(const char *id);
void net_backend_foreach(void (*fn)(NetClient *nc, void *opaque),
                         void *opaque);
void net_cleanup_all(void);

/* ---- NIC front ends ---- */

/*
 * Attach a NIC to backend @netdev (NULL: a NIC with no backend).  Fails
 * when @netdev does not exist or another NIC uses it.  @dev_id NULL: a
 * name "MODEL.N" is made up.  The NIC runs on @loop (its device's) and
 * the backend moves there while they are attached: call it on @loop's
 * thread, with the main thread waiting for it (device realize).
 */
NetClient *net_nic_new(const NetClientOps *ops, const char *dev_id,
                       const char *model, const char *netdev,
                       struct EventLoop *loop, void *opaque, GError **errp);
/* Detach and free (frames queued both ways are dropped); NULL is fine. */
void net_nic_free(NetClient *nc);

/* ---- frames ---- */

/*
 * Send one frame to @nc's peer.  Returns its length when the frame was
 * delivered or discarded for good (no peer, link down: counted in
 * stats.tx_dropped; the receiver dropped it).  Returns 0 when it was
 * queued because the peer has no room (or the full queue dropped it,
 * counted in the peer's stats.rx_dropped): the sender should stop sending
 * until its ops->writable() runs, which is guaranteed to happen.  A
 * malformed frame (empty, longer than NET_MAX_FRAME, a virtio-net header
 * that cannot be honoured) returns -EINVAL and counts in tx_errors.
 */
ssize_t net_send(NetClient *nc, const void *buf, size_t len);
ssize_t net_sendv(NetClient *nc, const struct iovec *iov, int iovcnt);
/*
 * Deliver frames queued for @nc, in order, until its receive() says
 * -EAGAIN again.  A NIC calls it whenever it can receive again (the guest
 * posted buffers), even when it returned no -EAGAIN: the backend may be
 * waiting because can_receive() was false.  When the queue empties, the
 * peer's writable() runs if it was waiting.
 */
void net_flush_queue(NetClient *nc);
/* True when @nc may be handed a frame now. */
bool net_can_receive(NetClient *nc);

/* ---- link ---- */

/*
 * set_link on a NIC or a backend (QEMU's rule: a backend's state is
 * copied to its NIC); both get link_status_changed.  An unknown name
 * fails with IOVD_ERROR_DEVICE_NOT_FOUND.  NICs read net_link_up().
 */
bool net_set_link(const char *name, bool up, GError **errp);

/* ---- RX filter events (QEMU's once-then-rearm rule) ---- */

/* A NIC's filter changed: emits NIC_RX_FILTER_CHANGED unless one is
 * already pending for it since the last query-rx-filter. */
void net_rx_filter_changed(NetClient *nc);
/* Fill @info for NIC @name and re-arm its event. */
bool net_query_rx_filter(const char *name, NetRxFilterInfo *info,
                         GError **errp);
typedef void NetRxFilterEventFunc(NetClient *nic);
void net_set_rx_filter_event_hook(NetRxFilterEventFunc *fn);

/* -netdev option table for iovd.c. */
void net_init(void);

/*
 * Rate limits of a netdev, per direction as the guest sees it: rx are
 * the frames its NIC receives, tx those the NIC sends (bytes and frames
 * per second, 0: unlimited; bytes without a virtio-net header).  Set by
 * -netdev ...,rx-bps=,rx-pps=,tx-bps=,tx-pps= or net_set_throttle().
 *
 * TX: a frame over the limit is queued (one) and the NIC is told "not
 * now", so it stops taking frames from its TX ring until the limit lets
 * them go (writable()): back-pressure, nothing lost.  RX: over the limit
 * the backend is told it cannot send (net_client_can_send), so tap,
 * stream and user networking leave the host side unread, as with a full
 * RX ring; frames a backend hands over anyway wait in the NIC's queue
 * and only what overflows it is dropped (counted in "dropped").
 */
typedef struct NetThrottle {
    uint64_t rx_bps, rx_pps, tx_bps, tx_pps;
} NetThrottle;

typedef struct NetThrottleStats {
    uint64_t frames, bytes;     /* that passed the limit */
    uint64_t delayed_frames, delayed_bytes, delay_ns;  /* waited in iovd */
    uint64_t holds, held_ns;    /* times and time the limit held it */
    uint64_t dropped;           /* overflowed the queue while held */
    bool holding;               /* held right now */
} NetThrottleStats;

/* @name: a netdev, or the NIC attached to one. */
bool net_set_throttle(const char *name, const NetThrottle *t, GError **errp);
/*
 * The netdev's limits and the statistics of each direction (NET_RX = 0,
 * NET_TX = 1); false when @nc is a NIC or no limit was ever set.
 */
bool net_get_throttle(NetClient *nc, NetThrottle *t, NetThrottleStats *st);

/* ---- additions to the first version of this contract ---- */

/* Bytes of struct virtio_net_hdr_v1 in front of a frame (has_vnet_hdr). */
#define NET_VNET_HDR_LEN 12

/*
 * The link as the guest should see it: @nc's own set_link state and its
 * peer's (set_link on the backend, or a stream backend not connected).
 * NICs call this from link_status_changed and at realize.
 */
bool net_link_up(NetClient *nc);

/*
 * Virtio-net header.  A NIC that can handle struct virtio_net_hdr_v1 asks
 * net_has_vnet_hdr(nc->peer) and, when true, sets nc->has_vnet_hdr before
 * exchanging frames; both directions then carry the 12-byte header.  When
 * only one side has a header the layer adds a zeroed one or strips it
 * (completing a partial checksum in software; GSO frames are dropped).
 * @nc may be the backend or the NIC attached to it.
 */
bool net_has_vnet_hdr(NetClient *nc);
/*
 * Offloads the guest negotiated (virtio-net: CSUM, HOST_TSO4/6, ECN,
 * UFO): the backend may then hand over frames with NEEDS_CSUM / GSO
 * headers.  False when the backend cannot (no vnet header, not tap).
 */
bool net_set_offloads(NetClient *nc, bool csum, bool tso4, bool tso6,
                      bool ecn, bool ufo);

/* Drop the frames queued for @nc (NIC reset); counted in rx_dropped. */
void net_purge_queue(NetClient *nc);

/* Any client (NIC device id or netdev id) by name; NICs first. */
NetClient *net_client_find(const char *name);
/* Every client, NICs and backends, in creation order. */
void net_client_foreach(void (*fn)(NetClient *nc, void *opaque),
                        void *opaque);

/* -netdev help: the backend types and their options (@type: that one). */
bool net_print_backend_help(const char *type, FILE *out, GError **errp);

#endif
