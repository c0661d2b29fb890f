/*
 * A tiny guest network stack for NIC tests: Ethernet/IPv4/UDP/TCP frame
 * builders and checksums, an ARP responder, a DHCP client and one TCP
 * endpoint that moves a patterned byte stream to and from a socket of the
 * test (through -netdev user's hostfwd, or a tap).
 *
 * The stack does not know which NIC it runs on.  A NetIf gives it the
 * guest's MAC and IPv4 address, a transmit and a receive function, and
 * what the NIC offloads; the test's glue turns a NetTxOffload into the
 * NIC's descriptors or header, as that NIC's Linux driver would, and
 * fills a NetRxInfo from what the device reported:
 *
 *     NetIf nif = { .mac = mac0, .tx = my_tx, .rx = my_rx, .opaque = n };
 *     NetDhcpLease lease;
 *     net_dhcp_lease(&nif, &lease);               // sets nif.ip
 *     NetTcp t = { .nif = &nif, .lport = 7777,
 *                  .host_fd = net_host_connect(hostfwd_port) };
 *     net_tcp_accept(&t);                         // hostfwd connects
 *     net_tcp_send_all(&t, 512 * 1024);           // checked by the host
 *     net_tcp_recv_all(&t, 512 * 1024);           // checked by the guest
 *
 * The TCP is what a test needs and no more: no window scaling or other
 * options but MSS, immediate ACKs, in-order data only, go-back-N after a
 * quiet RTO.  Every byte is checked against a fixed pattern on arrival.
 * Waits are bounded; failures go through qos_fail().
 *
 * libqos/netpkt.h is the byte layer underneath (rd16, wr16, csum_add...).
 */
#ifndef LIBQOS_NETSTACK_H
#define LIBQOS_NETSTACK_H

#include "tests/qtest/libqos/qos-util.h"
#include "tests/qtest/libqos/netpkt.h"

#define NET_FRAME_MAX       (65536 + 256)
#define NET_ETH_HLEN        14
#define NET_IP_OFF          NET_ETH_HLEN        /* the IPv4 header */
#define NET_L4_OFF          (NET_IP_OFF + 20)   /* TCP/UDP, no IP options */
#define NET_ETH_P_IP        0x0800
#define NET_ETH_P_ARP       0x0806
#define NET_PROTO_TCP       6
#define NET_PROTO_UDP       17

#define NET_TCP_FIN         0x01
#define NET_TCP_SYN         0x02
#define NET_TCP_RST         0x04
#define NET_TCP_PSH         0x08
#define NET_TCP_ACK         0x10

#define NET_TCP_ISS         1000u       /* our initial sequence number */
#define NET_TCP_MSS         1460        /* what we announce and send */

/* libslirp's default network (-netdev user). */
#define NET_SLIRP_GUEST_IP  0x0a00020f  /* 10.0.2.15 */
#define NET_SLIRP_HOST_IP   0x0a000202  /* 10.0.2.2 */

/* ---- frames ---- */

/* The Ethernet header; returns its length. */
size_t net_eth_hdr(uint8_t *f, const uint8_t *dst, const uint8_t *src,
                   uint16_t type);
/*
 * Ethernet and IPv4 headers (20 bytes, DF, header checksum filled in)
 * in front of the L4 part @l4 (@l4len bytes, copied to f + NET_L4_OFF
 * unless already there; its checksum as is).  Returns the frame length.
 */
size_t net_ip4_frame(uint8_t *f, const uint8_t *dst, const uint8_t *src,
                     uint8_t proto, uint32_t sip, uint32_t dip,
                     const uint8_t *l4, size_t l4len);
/* A 20-byte TCP header, checksum 0. */
void net_tcp_hdr(uint8_t *t, uint16_t sport, uint16_t dport, uint32_t seq,
                 uint32_t ack, uint8_t flags, uint16_t win);
/* An 8-byte UDP header for @plen payload bytes, checksum 0. */
void net_udp_hdr(uint8_t *u, uint16_t sport, uint16_t dport, size_t plen);
/* An IPv4 UDP frame around @payload; UDP checksum 0. */
size_t net_udp4_frame(uint8_t *f, const uint8_t *dst, const uint8_t *src,
                      uint32_t sip, uint32_t dip, uint16_t sport,
                      uint16_t dport, const uint8_t *payload, size_t plen);
/* Whether @f is an IPv4 frame (no options) of protocol @proto. */
bool net_is_ip4_proto(const uint8_t *f, size_t len, uint8_t proto);

/* ---- checksums of IPv4 frames (L4 length from the IP header) ---- */

/* The pseudo-header sum: addresses, protocol and, with @with_len, the L4
 * length. */
uint32_t net_ip4_pseudo(const uint8_t *f, bool with_len);
/* Offset of the L4 checksum field in the L4 header (TCP 16, UDP 6). */
unsigned net_l4_csum_off(const uint8_t *f);
/* Fill in the TCP/UDP checksum. */
void net_l4_csum_fill(uint8_t *f);
/*
 * Leave only the pseudo-header sum in the checksum field, as a driver
 * does for the device to finish (Linux's CHECKSUM_PARTIAL, with the
 * length; e1000's TSO wants it without).
 */
void net_l4_csum_seed(uint8_t *f, bool with_len);
bool net_ip4_csum_ok(const uint8_t *f);
/* The TCP/UDP checksum verifies (false if the frame is too short). */
bool net_l4_csum_ok(const uint8_t *f, size_t len);

/* ---- the NIC under the stack ---- */

/* How the NIC is to finish a frame from the stack. */
typedef struct NetTxOffload {
    /*
     * The device computes the L4 checksum: its field holds the
     * pseudo-header sum with the L4 length (net_l4_csum_seed()).
     */
    bool csum;
    /* Non-zero: a TCP super-frame to cut into segments of this payload. */
    uint16_t gso_mss;
} NetTxOffload;

/* What the device said about a received frame. */
typedef struct NetRxInfo {
    bool csum_ok;               /* it checked IP and L4 checksums: good */
    bool csum_partial;          /* the L4 checksum is not filled in */
    bool gso;                   /* several segments coalesced into one */
    uint32_t hw_status;         /* its own status bits, for messages */
} NetRxInfo;

typedef struct NetIf {
    const uint8_t *mac;
    uint32_t ip;                /* 0 until a lease (or the test) sets it */
    /*
     * Send @f; @off NULL: it is complete.  The glue may rewrite the
     * headers as its driver does (e1000 TSO: IP length and checksum).
     */
    void (*tx)(void *opaque, uint8_t *f, size_t len,
               const NetTxOffload *off);
    /* Wait up to @timeout_ms for a frame: its length, or -1. */
    ssize_t (*rx)(void *opaque, uint8_t *buf, size_t max, NetRxInfo *info,
                  int timeout_ms);
    void *opaque;
    bool tx_csum;               /* TCP data with checksum offload */
    size_t tso_max;             /* TCP super-frame payload (0: no TSO) */
    bool rx_csum;               /* TCP frames must have csum_ok */
} NetIf;

/* ---- ARP and DHCP ---- */

/* Whether @f is an ARP request; answered when it asks for nif->ip. */
bool net_arp_answer(NetIf *nif, const uint8_t *f, size_t len);

typedef struct NetDhcpLease {
    uint32_t ip, server, router;
} NetDhcpLease;

/*
 * DISCOVER, OFFER, REQUEST, ACK (replies broadcast): the lease into
 * @lease and nif->ip.  Every UDP frame received meanwhile must have a
 * good checksum (unless partial).
 */
void net_dhcp_lease(NetIf *nif, NetDhcpLease *lease);

/* ---- TCP ---- */

typedef enum NetTcpState {
    NET_TCP_CLOSED,             /* listening, for net_tcp_accept() */
    NET_TCP_SYN_SENT,
    NET_TCP_SYN_RCVD,
    NET_TCP_ESTABLISHED,
} NetTcpState;

/* One connection from nif->ip:lport; set the fields up to host_fd. */
typedef struct NetTcp {
    NetIf *nif;
    uint16_t lport;
    uint16_t win;               /* what we advertise (0: 65535) */
    /* The peer: set for net_tcp_connect(), learnt by net_tcp_accept(). */
    uint32_t pip;
    uint16_t pport;
    uint8_t pmac[6];
    /* The test's end of the connection (non-blocking reads are used). */
    int host_fd;

    NetTcpState state;
    uint32_t irs, rcv_nxt;
    uint32_t snd_una, snd_nxt, snd_max, snd_wnd;
    uint16_t peer_mss;
    int64_t last_ack_ms;

    /* What happened, for the tests' assertions. */
    size_t host_rx, host_tx;    /* bytes the host socket read / wrote */
    size_t guest_rx;            /* in-order bytes the guest received */
    unsigned segs_rx;           /* in-order data segments received */
    unsigned tso_sends;         /* super-frames sent with gso_mss */
    unsigned gso_rx;            /* frames received with NetRxInfo.gso */
    size_t max_frame_rx;        /* longest TCP frame received */
} NetTcp;

/* Passive open: wait for the peer's SYN to lport, SYN-ACK, its ACK. */
void net_tcp_accept(NetTcp *t);
/* Active open to pip:pport (through pmac): SYN, SYN-ACK, ACK. */
void net_tcp_connect(NetTcp *t);
/*
 * Handle what arrives within @timeout_ms (then what is queued, without
 * waiting); whether anything came.
 */
bool net_tcp_poll(NetTcp *t, int timeout_ms);
/* Guest to host: @total bytes, all acknowledged and read by the host. */
void net_tcp_send_all(NetTcp *t, size_t total);
/* Host to guest: @total bytes written to host_fd, all received. */
void net_tcp_recv_all(NetTcp *t, size_t total);

/* ---- the host side ---- */

/* A TCP port on 127.0.0.1 that was free a moment ago. */
int net_free_tcp_port(void);
/* A non-blocking socket connecting to 127.0.0.1:@port. */
int net_host_connect(int port);

#endif
