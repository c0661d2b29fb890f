/*
 * A tiny guest network stack for NIC tests; see netstack.h.
 */
#include "util/osdep.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "tests/qtest/libqos/netstack.h"

#define NET_XFER_TIMEOUT_MS 20000
/* No acknowledgement for this long: send again from the oldest byte. */
#define NET_TCP_RTO_MS      300
/* RFC 1122 4.2.2.6: what a peer without an MSS option takes. */
#define NET_TCP_DEFAULT_MSS 536

#define DHCP_DISCOVER       1
#define DHCP_OFFER          2
#define DHCP_REQUEST        3
#define DHCP_ACK            5
#define DHCP_MAGIC          0x63825363
#define BOOTP_OPTS          240         /* options after the fixed part */

static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

/* ---- frames ---- */

size_t net_eth_hdr(uint8_t *f, const uint8_t *dst, const uint8_t *src,
                   uint16_t type)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    wr16(f + 12, type);
    return NET_ETH_HLEN;
}

size_t net_ip4_frame(uint8_t *f, const uint8_t *dst, const uint8_t *src,
                     uint8_t proto, uint32_t sip, uint32_t dip,
                     const uint8_t *l4, size_t l4len)
{
    uint8_t *ip = f + NET_IP_OFF;

    if (l4len && l4 != f + NET_L4_OFF) {
        memmove(f + NET_L4_OFF, l4, l4len);
    }
    net_eth_hdr(f, dst, src, NET_ETH_P_IP);
    memset(ip, 0, 20);
    ip[0] = 0x45;
    wr16(ip + 2, 20 + l4len);
    wr16(ip + 4, 0x1234);
    wr16(ip + 6, 0x4000);       /* DF, as Linux's TCP sends */
    ip[8] = 64;
    ip[9] = proto;
    wr32(ip + 12, sip);
    wr32(ip + 16, dip);
    wr16(ip + 10, ~csum_fold(csum_add(0, ip, 20)));
    return NET_L4_OFF + l4len;
}

void net_tcp_hdr(uint8_t *t, uint16_t sport, uint16_t dport, uint32_t seq,
                 uint32_t ack, uint8_t flags, uint16_t win)
{
    memset(t, 0, 20);
    wr16(t, sport);
    wr16(t + 2, dport);
    wr32(t + 4, seq);
    wr32(t + 8, ack);
    t[12] = 5 << 4;
    t[13] = flags;
    wr16(t + 14, win);
}

void net_udp_hdr(uint8_t *u, uint16_t sport, uint16_t dport, size_t plen)
{
    wr16(u, sport);
    wr16(u + 2, dport);
    wr16(u + 4, 8 + plen);
    wr16(u + 6, 0);
}

size_t net_udp4_frame(uint8_t *f, const uint8_t *dst, const uint8_t *src,
                      uint32_t sip, uint32_t dip, uint16_t sport,
                      uint16_t dport, const uint8_t *payload, size_t plen)
{
    uint8_t *u = f + NET_L4_OFF;

    if (plen) {
        memmove(u + 8, payload, plen);
    }
    net_udp_hdr(u, sport, dport, plen);
    return net_ip4_frame(f, dst, src, NET_PROTO_UDP, sip, dip, u, 8 + plen);
}

bool net_is_ip4_proto(const uint8_t *f, size_t len, uint8_t proto)
{
    return len >= NET_L4_OFF + 8 && rd16(f + 12) == NET_ETH_P_IP &&
           f[NET_IP_OFF] == 0x45 && f[NET_IP_OFF + 9] == proto;
}

/* ---- checksums ---- */

/* The L4 length the IP header gives (the frame may carry padding). */
static size_t ip4_l4_len(const uint8_t *f)
{
    return rd16(f + NET_IP_OFF + 2) - 20;
}

uint32_t net_ip4_pseudo(const uint8_t *f, bool with_len)
{
    const uint8_t *ip = f + NET_IP_OFF;
    uint32_t sum = csum_add(0, ip + 12, 8) + ip[9];

    return with_len ? sum + ip4_l4_len(f) : sum;
}

unsigned net_l4_csum_off(const uint8_t *f)
{
    return f[NET_IP_OFF + 9] == NET_PROTO_TCP ? 16 : 6;
}

void net_l4_csum_fill(uint8_t *f)
{
    uint8_t *c = f + NET_L4_OFF + net_l4_csum_off(f);

    wr16(c, 0);
    wr16(c, ~csum_fold(csum_add(net_ip4_pseudo(f, true), f + NET_L4_OFF,
                                ip4_l4_len(f))));
}

void net_l4_csum_seed(uint8_t *f, bool with_len)
{
    wr16(f + NET_L4_OFF + net_l4_csum_off(f),
         csum_fold(net_ip4_pseudo(f, with_len)));
}

bool net_ip4_csum_ok(const uint8_t *f)
{
    return csum_fold(csum_add(0, f + NET_IP_OFF, 20)) == 0xffff;
}

bool net_l4_csum_ok(const uint8_t *f, size_t len)
{
    uint16_t ip_len;

    if (len < NET_L4_OFF) {
        return false;
    }
    ip_len = rd16(f + NET_IP_OFF + 2);
    if (ip_len < 20 || (size_t)NET_IP_OFF + ip_len > len) {
        return false;
    }
    return csum_fold(csum_add(net_ip4_pseudo(f, true), f + NET_L4_OFF,
                              ip_len - 20)) == 0xffff;
}

/* ---- ARP ---- */

bool net_arp_answer(NetIf *nif, const uint8_t *f, size_t len)
{
    uint8_t r[60] = { 0 };

    if (len < 42 || rd16(f + 12) != NET_ETH_P_ARP || rd16(f + 20) != 1) {
        return false;
    }
    /* Without an address (no lease yet) we claim none. */
    if (nif->ip && rd32(f + 38) == nif->ip) {
        net_eth_hdr(r, f + 6, nif->mac, NET_ETH_P_ARP);
        wr16(r + 14, 1);                /* Ethernet */
        wr16(r + 16, NET_ETH_P_IP);
        r[18] = 6;
        r[19] = 4;
        wr16(r + 20, 2);                /* reply */
        memcpy(r + 22, nif->mac, 6);
        wr32(r + 28, nif->ip);
        memcpy(r + 32, f + 22, 10);     /* the asker's MAC and IP */
        nif->tx(nif->opaque, r, sizeof(r), NULL);
    }
    return true;
}

/* ---- DHCP ---- */

typedef struct DhcpReply {
    uint8_t type;
    uint32_t yiaddr, server, router;
} DhcpReply;

static size_t dhcp_frame(NetIf *nif, uint8_t *f, uint8_t type,
                         uint32_t xid, uint32_t req_ip, uint32_t server)
{
    uint8_t bootp[300] = { 0 };
    uint8_t *o = bootp + BOOTP_OPTS;
    size_t len;

    bootp[0] = 1;               /* BOOTREQUEST */
    bootp[1] = 1;               /* Ethernet */
    bootp[2] = 6;
    wr32(bootp + 4, xid);
    wr16(bootp + 10, 0x8000);   /* broadcast replies: we have no address */
    memcpy(bootp + 28, nif->mac, 6);
    wr32(bootp + 236, DHCP_MAGIC);
    *o++ = 53;                  /* message type */
    *o++ = 1;
    *o++ = type;
    if (req_ip) {
        *o++ = 50;              /* requested address */
        *o++ = 4;
        wr32(o, req_ip);
        o += 4;
    }
    if (server) {
        *o++ = 54;              /* server identifier */
        *o++ = 4;
        wr32(o, server);
        o += 4;
    }
    *o++ = 55;                  /* we want: mask, router, DNS */
    *o++ = 3;
    *o++ = 1;
    *o++ = 3;
    *o++ = 6;
    *o = 255;
    len = net_udp4_frame(f, bcast, nif->mac, 0, 0xffffffff, 68, 67, bootp,
                         sizeof(bootp));
    net_l4_csum_fill(f);
    return len;
}

/*
 * A BOOTREPLY for @xid with a message type: true and *@r.  Options are
 * as RFC 2132 sizes them; a malformed reply is none of ours.
 */
static bool dhcp_parse(const uint8_t *f, size_t len, uint32_t xid,
                       DhcpReply *r)
{
    const uint8_t *b = f + NET_L4_OFF + 8;
    size_t blen;

    if (!net_is_ip4_proto(f, len, NET_PROTO_UDP) ||
        rd16(f + NET_L4_OFF + 2) != 68 ||
        len < NET_L4_OFF + 8 + BOOTP_OPTS) {
        return false;
    }
    blen = len - (NET_L4_OFF + 8);
    if (b[0] != 2 || rd32(b + 4) != xid || rd32(b + 236) != DHCP_MAGIC) {
        return false;
    }
    memset(r, 0, sizeof(*r));
    r->yiaddr = rd32(b + 16);
    for (size_t i = BOOTP_OPTS; i < blen && b[i] != 255;) {
        uint8_t code = b[i], olen;

        if (code == 0) {        /* pad */
            i++;
            continue;
        }
        if (i + 2 > blen || i + 2 + b[i + 1] > blen) {
            return false;
        }
        olen = b[i + 1];
        if (code == 53 && olen == 1) {
            r->type = b[i + 2];
        } else if (code == 54 && olen == 4) {
            r->server = rd32(b + i + 2);
        } else if (code == 3 && olen >= 4) {
            r->router = rd32(b + i + 2);        /* the first router */
        }
        i += 2 + olen;
    }
    return r->type != 0;
}

/* Send a DHCP message and wait for the reply of type @want. */
static void dhcp_exchange(NetIf *nif, uint8_t type, uint32_t xid,
                          uint32_t req_ip, uint32_t server, uint8_t want,
                          DhcpReply *r)
{
    static uint8_t f[NET_FRAME_MAX];
    int64_t deadline = qos_deadline(QOS_TIMEOUT_MS);
    size_t len = dhcp_frame(nif, f, type, xid, req_ip, server);

    nif->tx(nif->opaque, f, len, NULL);
    for (;;) {
        NetRxInfo info = { 0 };
        ssize_t got = nif->rx(nif->opaque, f, sizeof(f), &info,
                              qos_remaining_ms(deadline));

        qos_assert(got >= 0, "no DHCP reply of type %u", want);
        if (net_arp_answer(nif, f, got)) {
            continue;
        }
        qos_assert(info.csum_partial ||
                   !net_is_ip4_proto(f, got, NET_PROTO_UDP) ||
                   net_l4_csum_ok(f, got),
                   "UDP frame of %zd bytes with a bad checksum", got);
        if (dhcp_parse(f, got, xid, r) && r->type == want) {
            return;
        }
    }
}

void net_dhcp_lease(NetIf *nif, NetDhcpLease *lease)
{
    /* Unique per NIC, as a client's own random choice would be. */
    uint32_t xid = rd32(nif->mac + 2);
    DhcpReply offer, ack;

    dhcp_exchange(nif, DHCP_DISCOVER, xid, 0, 0, DHCP_OFFER, &offer);
    qos_assert(offer.server, "DHCP offer without a server identifier");
    dhcp_exchange(nif, DHCP_REQUEST, xid, offer.yiaddr, offer.server,
                  DHCP_ACK, &ack);
    qos_assert(ack.yiaddr == offer.yiaddr, "DHCP offered 0x%08x, acked "
               "0x%08x", offer.yiaddr, ack.yiaddr);
    lease->ip = ack.yiaddr;
    lease->server = offer.server;
    lease->router = ack.router;
    nif->ip = ack.yiaddr;
}

/* ---- TCP ---- */

/* The byte at offset @i of each direction's stream. */
static uint8_t guest_to_host(size_t i)
{
    return (uint8_t)(i * 31 + (i >> 9));
}

static uint8_t host_to_guest(size_t i)
{
    return (uint8_t)(i * 17 + 5 + (i >> 11));
}

static int32_t seq_diff(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b);
}

static const char *tcp_state_name(NetTcpState s)
{
    static const char *const names[] = {
        [NET_TCP_CLOSED] = "no SYN",
        [NET_TCP_SYN_SENT] = "no SYN-ACK for our SYN",
        [NET_TCP_SYN_RCVD] = "no ACK for our SYN-ACK",
        [NET_TCP_ESTABLISHED] = "established",
    };

    return names[s];
}

/* One segment from the guest; data goes with the NIC's offloads. */
static void tcp_output(NetTcp *t, uint8_t flags, uint32_t seq,
                       const uint8_t *data, size_t plen)
{
    static uint8_t f[NET_FRAME_MAX];
    NetIf *nif = t->nif;
    uint8_t *th = f + NET_L4_OFF;
    size_t hl = flags & NET_TCP_SYN ? 24 : 20, len;
    NetTxOffload off = { .csum = true };

    net_tcp_hdr(th, t->lport, t->pport, seq,
                flags & NET_TCP_ACK ? t->rcv_nxt : 0, flags,
                t->win ? t->win : 65535);
    if (flags & NET_TCP_SYN) {
        th[12] = (hl / 4) << 4;
        th[20] = 2;             /* MSS, our only option */
        th[21] = 4;
        wr16(th + 22, NET_TCP_MSS);
    }
    if (plen) {
        memcpy(th + hl, data, plen);
    }
    len = net_ip4_frame(f, t->pmac, nif->mac, NET_PROTO_TCP, nif->ip,
                        t->pip, th, hl + plen);
    if (!plen || !nif->tx_csum) {
        net_l4_csum_fill(f);
        nif->tx(nif->opaque, f, len, NULL);
        return;
    }
    net_l4_csum_seed(f, true);
    if (nif->tso_max && plen > t->peer_mss) {
        off.gso_mss = t->peer_mss;
        t->tso_sends++;
    }
    nif->tx(nif->opaque, f, len, &off);
}

/* The peer's MSS option, else RFC 1122's default. */
static uint16_t tcp_peer_mss(const uint8_t *th, size_t hlen)
{
    for (size_t o = 20; o < hlen;) {
        uint8_t kind = th[o], olen;

        if (kind == 0) {                /* end of options */
            break;
        }
        if (kind == 1) {                /* no-op */
            o++;
            continue;
        }
        if (o + 2 > hlen || th[o + 1] < 2 || o + th[o + 1] > hlen) {
            break;                      /* malformed: ignore the rest */
        }
        olen = th[o + 1];
        if (kind == 2 && olen == 4) {
            return rd16(th + o + 2);
        }
        o += olen;
    }
    return NET_TCP_DEFAULT_MSS;
}

/* A SYN or SYN-ACK: the peer's side of the connection. */
static void tcp_learn_peer(NetTcp *t, const uint8_t *f, size_t hlen)
{
    const uint8_t *th = f + NET_L4_OFF;

    memcpy(t->pmac, f + 6, 6);
    t->pip = rd32(f + NET_IP_OFF + 12);
    t->pport = rd16(th);
    t->irs = rd32(th + 4);
    t->rcv_nxt = t->irs + 1;
    t->snd_wnd = rd16(th + 14);
    t->peer_mss = MIN(tcp_peer_mss(th, hlen), NET_TCP_MSS);
}

static void tcp_input(NetTcp *t, const uint8_t *f, size_t len,
                      const NetRxInfo *info)
{
    NetIf *nif = t->nif;
    const uint8_t *th = f + NET_L4_OFF;
    size_t ip_len, hlen, plen;
    uint32_t seq, ack;
    uint8_t flags;

    if (net_arp_answer(nif, f, len) ||
        !net_is_ip4_proto(f, len, NET_PROTO_TCP) ||
        rd32(f + NET_IP_OFF + 16) != nif->ip || rd16(th + 2) != t->lport) {
        return;
    }
    if (nif->rx_csum) {
        qos_assert(info->csum_ok, "TCP frame: the device did not find "
                   "both checksums good (status 0x%x)", info->hw_status);
    }
    if (!info->csum_partial) {
        qos_assert(net_l4_csum_ok(f, len), "TCP segment of %zu bytes with "
                   "a bad checksum", len);
    }
    ip_len = rd16(f + NET_IP_OFF + 2);
    hlen = (th[12] >> 4) * 4;
    qos_assert(ip_len <= len - NET_IP_OFF && hlen >= 20 &&
               20 + hlen <= ip_len, "malformed TCP segment: IP length %zu, "
               "TCP header %zu, frame %zu", ip_len, hlen, len);
    plen = ip_len - 20 - hlen;
    seq = rd32(th + 4);
    ack = rd32(th + 8);
    flags = th[13];
    qos_assert(!(flags & NET_TCP_RST), "connection reset by the peer");
    t->max_frame_rx = MAX(t->max_frame_rx, len);
    if (info->gso) {
        t->gso_rx++;
    }

    if (flags & NET_TCP_SYN) {
        if (!(flags & NET_TCP_ACK) && (t->state == NET_TCP_CLOSED ||
                                       t->state == NET_TCP_SYN_RCVD)) {
            /* The peer connects (again, if our SYN-ACK got lost). */
            tcp_learn_peer(t, f, hlen);
            t->snd_una = NET_TCP_ISS;
            t->snd_nxt = t->snd_max = NET_TCP_ISS + 1;
            t->state = NET_TCP_SYN_RCVD;
            tcp_output(t, NET_TCP_SYN | NET_TCP_ACK, NET_TCP_ISS, NULL, 0);
        } else if ((flags & NET_TCP_ACK) && t->state == NET_TCP_SYN_SENT &&
                   rd32(f + NET_IP_OFF + 12) == t->pip &&
                   rd16(th) == t->pport) {
            qos_assert(ack == NET_TCP_ISS + 1, "SYN-ACK acknowledges %u, "
                       "expected %u", ack, NET_TCP_ISS + 1);
            tcp_learn_peer(t, f, hlen);
            t->snd_una = ack;
            t->last_ack_ms = qos_now_ms();
            t->state = NET_TCP_ESTABLISHED;
            tcp_output(t, NET_TCP_ACK, t->snd_nxt, NULL, 0);
        }
        return;                 /* any other SYN is stale */
    }
    if (t->state < NET_TCP_SYN_RCVD ||
        rd32(f + NET_IP_OFF + 12) != t->pip || rd16(th) != t->pport) {
        return;
    }
    if (flags & NET_TCP_ACK) {
        /* Anything sent may be acknowledged, also after a go-back. */
        if (seq_diff(ack, t->snd_una) > 0 &&
            seq_diff(ack, t->snd_max) <= 0) {
            t->snd_una = ack;
            t->last_ack_ms = qos_now_ms();
            if (seq_diff(ack, t->snd_nxt) > 0) {
                t->snd_nxt = ack;
            }
        }
        if (t->state == NET_TCP_SYN_RCVD &&
            seq_diff(t->snd_una, NET_TCP_ISS) > 0) {
            t->state = NET_TCP_ESTABLISHED;
        }
        t->snd_wnd = rd16(th + 14);
    }
    if (plen && seq == t->rcv_nxt) {
        const uint8_t *p = th + hlen;
        size_t off = seq - (t->irs + 1);

        for (size_t i = 0; i < plen; i++) {
            qos_assert(p[i] == host_to_guest(off + i), "guest received "
                       "byte %zu as 0x%02x, expected 0x%02x", off + i, p[i],
                       host_to_guest(off + i));
        }
        t->rcv_nxt += plen;
        t->guest_rx += plen;
        t->segs_rx++;
    }
    /* Out-of-order data is dropped; every data segment or FIN is acked. */
    if (plen || (flags & NET_TCP_FIN)) {
        if ((flags & NET_TCP_FIN) && seq + plen == t->rcv_nxt) {
            t->rcv_nxt++;
        }
        tcp_output(t, NET_TCP_ACK, t->snd_nxt, NULL, 0);
    }
}

bool net_tcp_poll(NetTcp *t, int timeout_ms)
{
    static uint8_t f[NET_FRAME_MAX];
    NetIf *nif = t->nif;
    bool any = false;
    NetRxInfo info;
    ssize_t len;

    for (;;) {
        memset(&info, 0, sizeof(info));
        len = nif->rx(nif->opaque, f, sizeof(f), &info,
                      any ? 0 : timeout_ms);
        if (len < 0) {
            return any;
        }
        tcp_input(t, f, len, &info);
        any = true;
    }
}

static void tcp_wait_established(NetTcp *t)
{
    int64_t deadline = qos_deadline(QOS_TIMEOUT_MS);

    while (t->state != NET_TCP_ESTABLISHED) {
        qos_assert(qos_remaining_ms(deadline) > 0, "TCP handshake to port "
                   "%u: %s", t->lport, tcp_state_name(t->state));
        net_tcp_poll(t, 20);
    }
}

void net_tcp_accept(NetTcp *t)
{
    qos_assert(t->nif->ip, "TCP without an IP address");
    t->state = NET_TCP_CLOSED;
    tcp_wait_established(t);
}

void net_tcp_connect(NetTcp *t)
{
    qos_assert(t->nif->ip, "TCP without an IP address");
    t->snd_una = NET_TCP_ISS;
    t->snd_nxt = t->snd_max = NET_TCP_ISS + 1;
    t->state = NET_TCP_SYN_SENT;
    tcp_output(t, NET_TCP_SYN, NET_TCP_ISS, NULL, 0);
    tcp_wait_established(t);
}

/* Read what the host has; every byte must be the next guest_to_host(). */
static bool host_drain(NetTcp *t)
{
    static uint8_t buf[65536];
    bool any = false;
    ssize_t n;

    while ((n = recv(t->host_fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            qos_assert(buf[i] == guest_to_host(t->host_rx + i), "host "
                       "received byte %zu as 0x%02x, expected 0x%02x",
                       t->host_rx + i, buf[i],
                       guest_to_host(t->host_rx + i));
        }
        t->host_rx += n;
        any = true;
    }
    qos_assert(n < 0 && errno == EAGAIN, "host recv: %s",
               n < 0 ? g_strerror(errno) : "EOF");
    return any;
}

void net_tcp_send_all(NetTcp *t, size_t total)
{
    static uint8_t buf[65536];
    int64_t deadline = qos_deadline(NET_XFER_TIMEOUT_MS);
    uint32_t end = t->snd_nxt + total;
    size_t host_end = t->host_rx + total;
    size_t seg_max = t->nif->tso_max ? t->nif->tso_max : t->peer_mss;

    qos_assert(t->state == NET_TCP_ESTABLISHED, "TCP send: not connected");
    qos_assert(seg_max && seg_max <= sizeof(buf), "TCP segments of %zu "
               "bytes", seg_max);
    t->last_ack_ms = qos_now_ms();
    while (t->host_rx < host_end || t->snd_una != end) {
        bool busy = false;

        qos_assert(qos_remaining_ms(deadline) > 0, "guest->host stalled: "
                   "host has %zu of %zu bytes, %u unacknowledged",
                   t->host_rx, host_end, end - t->snd_una);
        /* As much as the peer's window takes. */
        while (seq_diff(end, t->snd_nxt) > 0 &&
               t->snd_nxt - t->snd_una < t->snd_wnd) {
            size_t seg = MIN(end - t->snd_nxt,
                             t->snd_wnd - (t->snd_nxt - t->snd_una));
            size_t off = t->snd_nxt - (NET_TCP_ISS + 1);

            seg = MIN(seg, seg_max);
            for (size_t i = 0; i < seg; i++) {
                buf[i] = guest_to_host(off + i);
            }
            tcp_output(t, NET_TCP_ACK | NET_TCP_PSH, t->snd_nxt, buf, seg);
            t->snd_nxt += seg;
            if (seq_diff(t->snd_nxt, t->snd_max) > 0) {
                t->snd_max = t->snd_nxt;
            }
            busy = true;
        }
        busy |= host_drain(t);
        busy |= net_tcp_poll(t, 0);
        if (t->snd_una != t->snd_max &&
            qos_now_ms() - t->last_ack_ms > NET_TCP_RTO_MS) {
            t->snd_nxt = t->snd_una;
            t->last_ack_ms = qos_now_ms();
        }
        if (!busy) {
            net_tcp_poll(t, 1);
        }
    }
    qos_assert(t->host_rx == host_end, "host received %zu bytes, sent %zu",
               t->host_rx, host_end);
}

void net_tcp_recv_all(NetTcp *t, size_t total)
{
    static uint8_t buf[65536];
    int64_t deadline = qos_deadline(NET_XFER_TIMEOUT_MS);
    size_t guest_end = t->guest_rx + total;
    size_t host_end = t->host_tx + total;

    qos_assert(t->state == NET_TCP_ESTABLISHED, "TCP receive: not "
               "connected");
    while (t->guest_rx < guest_end) {
        bool busy = net_tcp_poll(t, 0);

        qos_assert(qos_remaining_ms(deadline) > 0, "host->guest stalled "
                   "at %zu of %zu bytes", t->guest_rx, guest_end);
        if (t->host_tx < host_end) {
            size_t chunk = MIN(sizeof(buf), host_end - t->host_tx);
            ssize_t n;

            for (size_t i = 0; i < chunk; i++) {
                buf[i] = host_to_guest(t->host_tx + i);
            }
            n = send(t->host_fd, buf, chunk, MSG_DONTWAIT | MSG_NOSIGNAL);
            qos_assert(n > 0 || (n < 0 && errno == EAGAIN), "host send: %s",
                       n < 0 ? g_strerror(errno) : "nothing sent");
            if (n > 0) {
                t->host_tx += n;
                busy = true;
            }
        }
        if (!busy) {
            net_tcp_poll(t, 1);
        }
    }
    qos_assert(t->guest_rx == guest_end, "guest received %zu bytes, sent "
               "%zu", t->guest_rx, guest_end);
}

/* ---- the host side ---- */

int net_free_tcp_port(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int port;

    qos_assert(fd >= 0, "socket: %s", g_strerror(errno));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    qos_assert(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0,
               "bind: %s", g_strerror(errno));
    qos_assert(getsockname(fd, (struct sockaddr *)&sa, &len) == 0,
               "getsockname: %s", g_strerror(errno));
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

int net_host_connect(int port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    qos_assert(fd >= 0, "socket: %s", g_strerror(errno));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(port);
    qos_assert(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ||
               errno == EINPROGRESS, "connect to port %d: %s", port,
               g_strerror(errno));
    return fd;
}
