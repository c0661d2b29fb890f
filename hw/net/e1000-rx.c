/*
 * e1000 receive: the address, multicast and VLAN filters, checksum
 * verification (RXCSUM), and frames written into the guest's buffers
 * through the receive ring, with the descriptor write-back, counters and
 * interrupts the driver expects.
 */
#include "hw/net/e1000-int.h"
#include "hw/net/trace.h"
#include "net/checksum.h"
#include "util/iov.h"

#include <zlib.h>

uint16_t e1000_vet(E1000State *s)
{
    uint16_t vet = REG(s, E1000_VET) & 0xffff;

    /*
     * Linux writes 0 to VET on the 82540 and still expects 802.1Q tags to
     * be stripped and inserted: 0 stands for 0x8100.
     */
    return vet ? vet : E1000_ETH_P_VLAN;
}

static uint32_t e1000_rx_buf_size(uint32_t rctl)
{
    unsigned bsize = (rctl & E1000_RCTL_BSIZE_MASK) >> E1000_RCTL_BSIZE_SHIFT;

    if (rctl & E1000_RCTL_BSEX) {
        /* 01: 16384, 10: 8192, 11: 4096; 00 is reserved. */
        return bsize ? 32768 >> bsize : 2048;
    }
    return 2048 >> bsize;       /* 2048, 1024, 512, 256 */
}

/* The MTA bit a multicast address hashes to, per RCTL.MO. */
static unsigned e1000_mta_hash(E1000State *s, const uint8_t *mac)
{
    unsigned mo = (REG(s, E1000_RCTL) & E1000_RCTL_MO_MASK) >>
                  E1000_RCTL_MO_SHIFT;
    uint16_t v = mac[4] | (mac[5] << 8);

    /* MO 0..3 take address bits 47:36, 46:35, 45:34, 43:32. */
    static const unsigned shift[4] = { 4, 3, 2, 0 };

    return (v >> shift[mo]) & 0xfff;
}

static bool e1000_mta_match(E1000State *s, const uint8_t *mac)
{
    unsigned h = e1000_mta_hash(s, mac);

    return REG(s, E1000_MTA + 4 * (h >> 5)) & (1u << (h & 31));
}

static bool e1000_ra_match(E1000State *s, const uint8_t *mac)
{
    uint32_t lo = ldl_le_p(mac);
    uint32_t hi = lduw_le_p(mac + 4);

    for (unsigned i = 0; i < E1000_RA_COUNT; i++) {
        uint32_t rah = REG(s, E1000_RAH(i));

        if ((rah & E1000_RAH_AV) && !(rah & E1000_RAH_AS_MASK) &&
            REG(s, E1000_RAL(i)) == lo && (rah & 0xffff) == hi) {
            return true;
        }
    }
    return false;
}

/*
 * Address and VLAN filtering on the first 18 bytes of a frame.  Sets *pif
 * when only the inexact (hash) filter let it through.
 */
static bool e1000_rx_filter(E1000State *s, const uint8_t *h, size_t len,
                            bool *pif)
{
    uint32_t rctl = REG(s, E1000_RCTL);

    *pif = false;
    if ((rctl & E1000_RCTL_VFE) && len >= 18 &&
        lduw_be_p(h + 12) == e1000_vet(s)) {
        unsigned vid = lduw_be_p(h + 14) & 0xfff;

        if (!(REG(s, E1000_VFTA + 4 * (vid >> 5)) & (1u << (vid & 31)))) {
            trace_e1000_rx_filtered(e1000_id(s), "VLAN not in VFTA");
            return false;
        }
    }
    if (e1000_is_broadcast(h) && (rctl & E1000_RCTL_BAM)) {
        return true;
    }
    /* The exact filters take any address: drivers put groups there too. */
    if (e1000_ra_match(s, h)) {
        return true;
    }
    if (h[0] & 1) {
        if (rctl & E1000_RCTL_MPE) {
            return true;
        }
        if (e1000_mta_match(s, h)) {
            *pif = true;
            return true;
        }
        trace_e1000_rx_filtered(e1000_id(s), "multicast not in MTA");
        return false;
    }
    if (rctl & E1000_RCTL_UPE) {
        return true;
    }
    trace_e1000_rx_filtered(e1000_id(s), "unicast address not ours");
    return false;
}

/*
 * Receive checksum offload (RXCSUM): verify the IPv4 header checksum and
 * the TCP/UDP checksum of unfragmented IPv4 and plain IPv6 packets.
 */
static void e1000_rx_checksum(E1000State *s, const uint8_t *f, size_t len,
                              uint8_t *status, uint8_t *errors)
{
    uint32_t rxcsum = REG(s, E1000_RXCSUM);
    size_t off = 12, l4, l4len;
    uint16_t type;
    uint8_t proto;
    uint32_t sum;

    if (!(rxcsum & (E1000_RXCSUM_IPOFL | E1000_RXCSUM_TUOFL))) {
        *status |= E1000_RXD_STAT_IXSM;
        return;
    }
    type = lduw_be_p(f + off);
    if (type == e1000_vet(s) && len >= 18) {
        off += E1000_VLAN_HLEN;             /* a tag that was not stripped */
        type = lduw_be_p(f + off);
    }
    off += 2;
    if (type == E1000_ETH_P_IP) {
        size_t ihl, totlen;

        if (len < off + 20 || (f[off] >> 4) != 4) {
            return;
        }
        ihl = (f[off] & 0xf) * 4;
        if (ihl < 20 || off + ihl > len) {
            return;
        }
        if (rxcsum & E1000_RXCSUM_IPOFL) {
            *status |= E1000_RXD_STAT_IPCS;
            if (net_checksum_fold(net_checksum_add(0, f + off, ihl)) !=
                0xffff) {
                *errors |= E1000_RXD_ERR_IPE;
            }
        }
        totlen = lduw_be_p(f + off + 2);
        if (totlen < ihl || off + totlen > len ||
            (lduw_be_p(f + off + 6) & 0x3fff)) {
            return;                         /* truncated or a fragment */
        }
        proto = f[off + 9];
        l4 = off + ihl;
        l4len = totlen - ihl;
        sum = net_checksum_add(0, f + off + 12, 8);
    } else if (type == E1000_ETH_P_IPV6) {
        if (len < off + 40 || (f[off] >> 4) != 6) {
            return;
        }
        l4len = lduw_be_p(f + off + 4);
        proto = f[off + 6];
        l4 = off + 40;
        if (l4 + l4len > len) {
            return;
        }
        sum = net_checksum_add(0, f + off + 8, 32);
    } else {
        return;
    }
    if (!(rxcsum & E1000_RXCSUM_TUOFL)) {
        return;
    }
    if (proto == E1000_IP_PROTO_TCP) {
        if (l4len < 20) {
            return;
        }
    } else if (proto == E1000_IP_PROTO_UDP) {
        if (l4len < 8 || lduw_be_p(f + l4 + 6) == 0) {
            return;                         /* no UDP checksum */
        }
    } else {
        return;
    }
    sum += proto + l4len;
    *status |= E1000_RXD_STAT_TCPCS;
    if (net_checksum_fold(net_checksum_add(sum, f + l4, l4len)) != 0xffff) {
        *errors |= E1000_RXD_ERR_TCPE;
    }
}

/* Descriptors the guest has given the device: RDH up to RDT. */
static bool e1000_rx_ring(E1000State *s, uint32_t *n, uint32_t *avail)
{
    uint32_t rdh = REG(s, E1000_RDH), rdt = REG(s, E1000_RDT);

    *n = REG(s, E1000_RDLEN) / E1000_RXD_SIZE;
    if (!*n || rdh >= *n || rdt >= *n) {
        return false;
    }
    *avail = (rdt + *n - rdh) % *n;
    return true;
}

/* MAC loopback (RCTL.LBM) or PHY loopback: frames sent come back. */
bool e1000_loopback(E1000State *s)
{
    return (REG(s, E1000_RCTL) & E1000_RCTL_LBM_MASK) == E1000_RCTL_LBM_MAC ||
           (s->phy[E1000_PHY_CTRL] & E1000_PHY_CTRL_LOOPBACK);
}

static bool e1000_rx_active(E1000State *s)
{
    return (REG(s, E1000_RCTL) & E1000_RCTL_EN) &&
           (s->link_up || e1000_loopback(s));
}

/*
 * Frames are always offered to e1000_receive(): it drops what the hardware
 * would drop and, with no descriptor free, counts RNBC and returns -EAGAIN
 * so that the net layer holds the frame until RDT moves.
 */
bool e1000_can_receive(NetClient *nc)
{
    E1000State *s = nc->opaque;

    return device_fetch_allowed(&s->pdev.dev);
}

/* A frame that got no further than the MAC: TPR/TOR count it. */
static void e1000_rx_count_seen(E1000State *s, uint32_t wire_len)
{
    e1000_stat_inc(s, E1000_TPR);
    e1000_stat_add64(s, E1000_TORL, wire_len);
}

static void e1000_rx_missed(E1000State *s, uint32_t wire_len)
{
    e1000_rx_count_seen(s, wire_len);
    e1000_stat_inc(s, E1000_MPC);
    e1000_set_cause(s, E1000_ICR_RXO);
}

/* One frame, in the worker (see hw/net/nic.h). */
/* One received frame on its way into the ring. */
typedef struct E1000RxFrame {
    size_t size;                /* as it came, without CRC */
    uint32_t wire_len;          /* padded, with CRC: what the counters see */
    uint8_t hdr[E1000_ETH_HLEN + E1000_VLAN_HLEN];
    size_t hlen;
    bool pif;                   /* passed an inexact filter */
    bool strip;                 /* 802.1Q tag goes into the descriptor */
    size_t len;                 /* padded, tag stripped, without CRC */
    uint32_t total;             /* len + the CRC bytes stored */
    uint32_t bufsize, need;     /* buffer size, descriptors it takes */
    uint32_t n, avail, rdh;     /* ring size, descriptors given, head */
    uint64_t base;
    uint8_t descs[E1000_RX_MAX_DESCS][E1000_RXD_SIZE];
    const uint8_t *frame;       /* linear */
    uint8_t crc[E1000_CRC_LEN];
    uint8_t status, errors;
    uint16_t special, csum;
} E1000RxFrame;

/*
 * Whether the frame goes into the ring: 1 yes (f filled up to the ring
 * state), 0 dropped (counted), -EAGAIN when the ring lacks buffers.
 */
static int e1000_rx_admit(E1000State *s, const struct iovec *iov,
                          int iovcnt, E1000RxFrame *f)
{
    uint32_t rctl = REG(s, E1000_RCTL), limit, crc_len;

    f->status = f->errors = 0;
    f->special = 0;
    f->pif = false;
    f->size = iov_size(iov, iovcnt);
    f->wire_len = MAX(f->size, E1000_MIN_FRAME_NO_CRC) + E1000_CRC_LEN;
    if (f->size < E1000_ETH_HLEN) {
        e1000_rx_count_seen(s, f->wire_len);
        e1000_stat_inc(s, E1000_RUC);
        return 0;
    }
    f->hlen = iov_to_buf(iov, iovcnt, 0, f->hdr, sizeof(f->hdr));
    if (!e1000_rx_filter(s, f->hdr, f->hlen, &f->pif)) {
        e1000_rx_count_seen(s, f->wire_len);
        return 0;
    }
    limit = (rctl & E1000_RCTL_LPE) ? E1000_MAX_FRAME_LPE
                                    : E1000_MAX_FRAME_STD;
    if (f->wire_len > limit) {
        e1000_rx_count_seen(s, f->wire_len);
        e1000_stat_inc(s, E1000_ROC);
        return 0;
    }
    if (!pci_bus_master_enabled(&s->pdev)) {
        trace_e1000_err_rx_no_master(e1000_id(s));
        e1000_rx_missed(s, f->wire_len);
        return 0;
    }
    /* Strip the 802.1Q tag into the descriptor (CTRL.VME). */
    f->strip = (REG(s, E1000_CTRL) & E1000_CTRL_VME) && f->hlen >= 18 &&
               lduw_be_p(f->hdr + 12) == e1000_vet(s);
    crc_len = (rctl & E1000_RCTL_SECRC) ? 0 : E1000_CRC_LEN;
    f->len = MAX(f->size, E1000_MIN_FRAME_NO_CRC) -
             (f->strip ? E1000_VLAN_HLEN : 0);
    f->total = f->len + crc_len;
    f->bufsize = e1000_rx_buf_size(rctl);
    f->need = DIV_ROUND_UP(f->total, f->bufsize);
    if (!e1000_rx_ring(s, &f->n, &f->avail)) {
        trace_e1000_err_rx_ring(e1000_id(s), REG(s, E1000_RDH),
                                REG(s, E1000_RDT), f->n);
        e1000_rx_missed(s, f->wire_len);
        return 0;
    }
    if (f->need > f->n - 1 || f->need > E1000_RX_MAX_DESCS) {
        trace_e1000_err_rx_too_big(e1000_id(s), f->total, f->need, f->n);
        e1000_rx_missed(s, f->wire_len);
        return 0;
    }
    if (f->avail < f->need) {
        trace_e1000_rx_no_buffers(e1000_id(s), f->need, f->avail);
        e1000_stat_inc(s, E1000_RNBC);
        return -EAGAIN;
    }
    return 1;
}

static uint64_t e1000_rx_desc_addr(E1000RxFrame *f, uint32_t i)
{
    return f->base + (uint64_t)((f->rdh + i) % f->n) * E1000_RXD_SIZE;
}

/* Fetch the descriptors the frame takes, before touching anything. */
static bool e1000_rx_fetch(E1000State *s, E1000RxFrame *f)
{
    f->base = ((uint64_t)REG(s, E1000_RDBAH) << 32) | REG(s, E1000_RDBAL);
    f->rdh = REG(s, E1000_RDH);
    for (uint32_t i = 0; i < f->need; i++) {
        uint64_t da = e1000_rx_desc_addr(f, i);

        if (pci_dma_read(&s->pdev, da, f->descs[i], E1000_RXD_SIZE) < 0) {
            trace_e1000_err_rx_desc_dma(e1000_id(s), da);
            e1000_rx_missed(s, f->wire_len);
            return false;
        }
    }
    return true;
}

/*
 * One linear copy of the frame, padded, without its tag; its CRC, the
 * receive checksums (RXCSUM) and the status they give.
 */
static void e1000_rx_prepare(E1000State *s, const struct iovec *iov,
                             int iovcnt, E1000RxFrame *f)
{
    size_t off;

    if (iovcnt == 1 && !f->strip && f->size >= E1000_MIN_FRAME_NO_CRC) {
        f->frame = iov[0].iov_base;
    } else {
        uint8_t *b = s->rx_bounce;

        iov_to_buf(iov, iovcnt, 0, b, f->size);
        if (f->size < E1000_MIN_FRAME_NO_CRC) {
            memset(b + f->size, 0, E1000_MIN_FRAME_NO_CRC - f->size);
        }
        if (f->strip) {
            f->special = lduw_be_p(b + 14);
            f->status |= E1000_RXD_STAT_VP;
            memmove(b + 12, b + 16, f->len - 12);
        }
        f->frame = b;
    }
    stl_le_p(f->crc, crc32(0, f->frame, f->len));
    e1000_rx_checksum(s, f->frame, f->len, &f->status, &f->errors);
    off = REG(s, E1000_RXCSUM) & E1000_RXCSUM_PCSS_MASK;
    f->csum = off < f->len ? net_checksum_add(0, f->frame + off,
                                              f->len - off) : 0;
    if (f->pif) {
        f->status |= E1000_RXD_STAT_PIF;
    }
}

/*
 * Data first, then each descriptor's write-back; RDH moves past them.
 * False when a buffer could not be written (the descriptors say RXE).
 */
static bool e1000_rx_store(E1000State *s, E1000RxFrame *f)
{
    bool dma_failed = false;
    size_t off = 0;

    for (uint32_t i = 0; i < f->need; i++) {
        uint64_t da = e1000_rx_desc_addr(f, i);
        uint64_t ba = ldq_le_p(f->descs[i] + E1000_RXD_ADDR);
        uint32_t chunk = MIN(f->bufsize, f->total - off);
        uint32_t data = off < f->len ? MIN(chunk, f->len - off) : 0;
        uint8_t wb[8];
        bool last = i == f->need - 1;
        int r = 0;

        if (!dma_failed) {
            if (data) {
                r = pci_dma_write(&s->pdev, ba, f->frame + off, data);
            }
            if (r == 0 && chunk > data) {
                r = pci_dma_write(&s->pdev, ba + data,
                                  f->crc + (off + data - f->len),
                                  chunk - data);
            }
            if (r < 0) {
                trace_e1000_err_rx_buf_dma(e1000_id(s), ba, chunk);
                dma_failed = true;
            }
        }
        stw_le_p(wb, chunk);
        stw_le_p(wb + 2, last ? f->csum : 0);
        wb[4] = E1000_RXD_STAT_DD | (last ? E1000_RXD_STAT_EOP | f->status
                                          : 0);
        wb[5] = dma_failed ? E1000_RXD_ERR_RXE : (last ? f->errors : 0);
        stw_le_p(wb + 6, last ? f->special : 0);
        smp_wmb();
        if (pci_dma_write(&s->pdev, da + E1000_RXD_LENGTH, wb,
                          sizeof(wb)) < 0) {
            trace_e1000_err_rx_desc_dma(e1000_id(s), da);
        }
        off += chunk;
    }
    REG(s, E1000_RDH) = (f->rdh + f->need) % f->n;
    s->rx_descs += f->need;
    trace_e1000_rx(e1000_id(s), f->total, f->need, f->status, f->errors);
    return !dma_failed;
}

/* Counters, the descriptor-minimum threshold (RCTL.RDMTS), interrupts. */
static void e1000_rx_done(E1000State *s, E1000RxFrame *f, bool stored)
{
    uint32_t rctl = REG(s, E1000_RCTL);
    unsigned rdmts = (rctl & E1000_RCTL_RDMTS_MASK) >> E1000_RCTL_RDMTS_SHIFT;
    uint32_t thr = f->n >> (rdmts + 1);

    e1000_rx_count_seen(s, f->wire_len);
    if (!stored) {
        e1000_stat_inc(s, E1000_RXERRC);
    } else {
        e1000_stat_inc(s, E1000_GPRC);
        e1000_stat_add64(s, E1000_GORCL, f->wire_len);
        e1000_stat_inc(s, e1000_size_bucket(E1000_PRC64, f->wire_len));
        if (e1000_is_broadcast(f->hdr)) {
            e1000_stat_inc(s, E1000_BPRC);
        } else if (f->hdr[0] & 1) {
            e1000_stat_inc(s, E1000_MPRC);
        }
    }
    if (f->avail > thr && f->avail - f->need <= thr) {
        e1000_set_cause(s, E1000_ICR_RXDMT0);
    }
    e1000_rx_irq(s);
}

ssize_t e1000_rx_frame(void *opaque, const struct iovec *iov,
                              int iovcnt)
{
    E1000State *s = opaque;
    E1000RxFrame f;             /* filled as it goes (no 1 KiB memset) */
    int r;

    if (!device_fetch_allowed(&s->pdev.dev)) {
        return -EAGAIN;
    }
    if (!e1000_rx_active(s)) {
        return 0;                   /* receiver off or no link: not seen */
    }
    r = e1000_rx_admit(s, iov, iovcnt, &f);
    if (r <= 0) {
        return r;
    }
    if (!e1000_rx_fetch(s, &f)) {
        return 0;
    }
    e1000_rx_prepare(s, iov, iovcnt, &f);
    e1000_rx_done(s, &f, e1000_rx_store(s, &f));
    return f.size;
}

ssize_t e1000_receive(NetClient *nc, const struct iovec *iov,
                             int iovcnt)
{
    E1000State *s = nc->opaque;

    return nic_rx_deliver(&s->rx, iov, iovcnt);
}
