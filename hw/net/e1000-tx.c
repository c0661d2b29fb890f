/*
 * e1000 transmit: the ring walked by a bottom half, legacy, context and
 * data descriptors, checksum insertion, TCP segmentation and VLAN tag
 * insertion, assembled in one preallocated buffer and handed to the net
 * layer.
 */
#include "hw/net/e1000-int.h"
#include "hw/net/trace.h"
#include "net/checksum.h"
#include "util/iov.h"

static void e1000_tx_count(E1000State *s, const uint8_t *f, uint32_t len)
{
    uint32_t wire = len + E1000_CRC_LEN;

    e1000_stat_inc(s, E1000_GPTC);
    e1000_stat_inc(s, E1000_TPT);
    e1000_stat_add64(s, E1000_GOTCL, wire);
    e1000_stat_add64(s, E1000_TOTL, wire);
    e1000_stat_inc(s, e1000_size_bucket(E1000_PTC64, wire));
    if (e1000_is_broadcast(f)) {
        e1000_stat_inc(s, E1000_BPTC);
    } else if (f[0] & 1) {
        e1000_stat_inc(s, E1000_MPTC);
    }
}

/* Put one finished frame on the wire, inserting a VLAN tag if asked. */
static void e1000_tx_send(E1000State *s, uint8_t *f, uint32_t len, bool vle,
                          uint16_t special)
{
    bool tag = vle && (REG(s, E1000_CTRL) & E1000_CTRL_VME) && len >= 12;
    uint8_t vlan[E1000_VLAN_HLEN];
    struct iovec iov[3] = { { .iov_base = f, .iov_len = len } };
    int iovcnt = 1;

    s->tx_frames_run++;
    if (len < E1000_MIN_FRAME_NO_CRC && (REG(s, E1000_TCTL) & E1000_TCTL_PSP)) {
        memset(f + len, 0, E1000_MIN_FRAME_NO_CRC - len);
        len = iov[0].iov_len = E1000_MIN_FRAME_NO_CRC;
    }
    if (len < E1000_ETH_ALEN) {
        return;
    }
    if (tag) {
        stw_be_p(vlan, e1000_vet(s));
        stw_be_p(vlan + 2, special);
        iov[0].iov_len = 12;
        iov[1].iov_base = vlan;
        iov[1].iov_len = sizeof(vlan);
        iov[2].iov_base = f + 12;
        iov[2].iov_len = len - 12;
        iovcnt = 3;
    }
    if (e1000_loopback(s)) {
        /* Back into our own receiver; no room there means it is lost. */
        if (e1000_rx_frame(s, iov, iovcnt) == -EAGAIN) {
            e1000_stat_inc(s, E1000_MPC);
        }
    } else if (!s->link_up) {
        return;                 /* no link: the frame is lost on the wire */
    } else if (net_sendv(s->nic, iov, iovcnt) == 0) {
        s->tx_blocked = true;   /* queued by the net layer: slow down */
    }
    trace_e1000_tx(e1000_id(s), len, tag);
    e1000_tx_count(s, f, len + (tag ? E1000_VLAN_HLEN : 0));
}

/*
 * Insert a checksum: the one's complement of the sum over [css, cse]
 * (cse 0: to the end), which includes the seed the driver left at cso,
 * plus @extra (TSO: the segment's TCP/UDP length).
 */
static void e1000_tx_csum(E1000State *s, uint8_t *f, uint32_t len,
                          unsigned css, unsigned cso, unsigned cse,
                          uint32_t extra, bool udp)
{
    uint32_t end = cse ? MIN(cse + 1u, len) : len;
    uint16_t v;

    if (css >= end || cso + 2u > len) {
        trace_e1000_err_tx_csum(e1000_id(s), css, cso, cse, len);
        return;
    }
    v = net_checksum_finish(net_checksum_add(extra, f + css, end - css));
    if (udp && v == 0) {
        v = 0xffff;
    }
    stw_be_p(f + cso, v);
}

bool e1000_tso_ctx_valid(const E1000TxCtx *c, uint8_t popts)
{
    unsigned l3 = (c->tucmd & E1000_TUCMD_IP) ? 6 : 40;
    unsigned l4 = (c->tucmd & E1000_TUCMD_TCP) ? 14 : 6;

    if (!c->hdr_len || !c->mss ||
        c->hdr_len + (uint32_t)c->mss > E1000_TX_BUF_SIZE) {
        return false;
    }
    if (c->ipcss + l3 > c->hdr_len || c->tucss + l4 > c->hdr_len) {
        return false;
    }
    if ((popts & E1000_TXD_POPTS_IXSM) && c->ipcso + 2u > c->hdr_len) {
        return false;
    }
    if ((popts & E1000_TXD_POPTS_TXSM) && c->tucso + 2u > c->hdr_len) {
        return false;
    }
    return true;
}

/* Send the TSO segment in the buffer: header fixed up for this segment. */
static void e1000_tso_emit(E1000State *s, bool last, bool vle,
                           uint16_t special)
{
    E1000Tx *tx = &s->tx;
    const E1000TxCtx *c = &tx->pctx;
    uint8_t *f = tx->buf;
    uint32_t len = tx->len;
    uint32_t payload = len - c->hdr_len;

    if (c->tucmd & E1000_TUCMD_IP) {
        stw_be_p(f + c->ipcss + 2, len - c->ipcss);
        stw_be_p(f + c->ipcss + 4,
                 lduw_be_p(tx->hdr + c->ipcss + 4) + tx->segs);
    } else {
        stw_be_p(f + c->ipcss + 4, len - c->ipcss - 40);
    }
    if (c->tucmd & E1000_TUCMD_TCP) {
        stl_be_p(f + c->tucss + 4, ldl_be_p(tx->hdr + c->tucss + 4) + tx->sent);
        if (!last) {
            f[c->tucss + 13] &= ~(E1000_TCP_FLAG_FIN | E1000_TCP_FLAG_PSH);
        }
    } else {
        stw_be_p(f + c->tucss + 4, len - c->tucss);
    }
    if (tx->popts & E1000_TXD_POPTS_IXSM) {
        e1000_tx_csum(s, f, len, c->ipcss, c->ipcso, c->ipcse, 0, false);
    }
    if (tx->popts & E1000_TXD_POPTS_TXSM) {
        e1000_tx_csum(s, f, len, c->tucss, c->tucso, c->tucse,
                      len - c->tucss, !(c->tucmd & E1000_TUCMD_TCP));
    }
    e1000_tx_send(s, f, len, vle, special);
    tx->sent += payload;
    tx->segs++;
    memcpy(f, tx->hdr, c->hdr_len);
    tx->len = c->hdr_len;
}

static void e1000_tx_start(E1000State *s, bool legacy, bool tse,
                           uint8_t popts)
{
    E1000Tx *tx = &s->tx;

    tx->in_packet = true;
    tx->legacy = legacy;
    tx->tse = tse;
    tx->popts = popts;
    tx->ic = false;
    tx->drop = false;
    tx->hdr_saved = false;
    tx->len = 0;
    tx->segs = 0;
    tx->sent = 0;
    tx->pctx = tx->ctx;
    if (tse && !e1000_tso_ctx_valid(&tx->pctx, popts)) {
        trace_e1000_err_tx_tso_ctx(e1000_id(s), tx->pctx.hdr_len,
                                   tx->pctx.mss, tx->pctx.paylen);
        e1000_stat_inc(s, E1000_TSCTFC);
        tx->drop = true;
    }
}

static bool e1000_tx_read(E1000State *s, uint64_t addr, uint32_t len)
{
    E1000Tx *tx = &s->tx;

    if (pci_dma_read(&s->pdev, addr, tx->buf + tx->len, len) < 0) {
        trace_e1000_err_tx_buf_dma(e1000_id(s), addr, len);
        tx->drop = true;
        tx->desc_err = true;
        return false;
    }
    tx->len += len;
    return true;
}

/* Append a data buffer; with TSO, send each segment once it is full. */
static void e1000_tx_gather(E1000State *s, uint64_t addr, uint32_t len,
                            bool vle, uint16_t special)
{
    E1000Tx *tx = &s->tx;
    const E1000TxCtx *c = &tx->pctx;

    if (tx->drop || !len) {
        return;
    }
    if (!tx->tse) {
        if (len > E1000_TX_BUF_SIZE - tx->len) {
            trace_e1000_err_tx_too_long(e1000_id(s), E1000_TX_BUF_SIZE);
            tx->drop = true;
            return;
        }
        e1000_tx_read(s, addr, len);
        return;
    }
    while (len) {
        uint32_t chunk;

        if (!tx->hdr_saved) {
            chunk = MIN(len, c->hdr_len - tx->len);
        } else {
            if (tx->len - c->hdr_len == c->mss) {
                e1000_tso_emit(s, false, vle, special);
            }
            chunk = MIN(len, c->hdr_len + c->mss - tx->len);
        }
        if (!e1000_tx_read(s, addr, chunk)) {
            return;
        }
        addr += chunk;
        len -= chunk;
        if (!tx->hdr_saved && tx->len == c->hdr_len) {
            memcpy(tx->hdr, tx->buf, c->hdr_len);
            tx->hdr_saved = true;
        }
    }
}

/* The EOP descriptor: finish the packet. */
static void e1000_tx_finish(E1000State *s, bool vle, uint16_t special)
{
    E1000Tx *tx = &s->tx;
    const E1000TxCtx *c = &tx->pctx;

    tx->in_packet = false;
    if (tx->drop) {
        s->nic->stats.tx_errors++;
        return;
    }
    if (tx->tse) {
        if (!tx->hdr_saved) {
            trace_e1000_err_tx_tso_short(e1000_id(s), tx->len, c->hdr_len);
            e1000_stat_inc(s, E1000_TSCTFC);
            s->nic->stats.tx_errors++;
            return;
        }
        if (tx->len > c->hdr_len || !tx->segs) {
            e1000_tso_emit(s, true, vle, special);
        }
        trace_e1000_tx_tso(e1000_id(s), tx->segs, tx->sent);
        e1000_stat_inc(s, E1000_TSCTC);
        return;
    }
    if (tx->legacy) {
        if (tx->ic) {
            e1000_tx_csum(s, tx->buf, tx->len, tx->css, tx->cso, 0, 0, false);
        }
    } else {
        if (tx->popts & E1000_TXD_POPTS_IXSM) {
            e1000_tx_csum(s, tx->buf, tx->len, c->ipcss, c->ipcso, c->ipcse,
                          0, false);
        }
        if (tx->popts & E1000_TXD_POPTS_TXSM) {
            e1000_tx_csum(s, tx->buf, tx->len, c->tucss, c->tucso, c->tucse,
                          0, !(c->tucmd & E1000_TUCMD_TCP));
        }
    }
    e1000_tx_send(s, tx->buf, tx->len, vle, special);
}

void e1000_tx_ctx_decode(E1000TxCtx *c, const uint8_t *d)
{
    uint32_t cmdlen = ldl_le_p(d + E1000_CTXD_CMDLEN);

    c->ipcss = d[E1000_CTXD_IPCSS];
    c->ipcso = d[E1000_CTXD_IPCSO];
    c->ipcse = lduw_le_p(d + E1000_CTXD_IPCSE);
    c->tucss = d[E1000_CTXD_TUCSS];
    c->tucso = d[E1000_CTXD_TUCSO];
    c->tucse = lduw_le_p(d + E1000_CTXD_TUCSE);
    c->tucmd = cmdlen >> 24;
    c->paylen = cmdlen & E1000_TXD_LEN_MASK;
    c->hdr_len = d[E1000_CTXD_HDRLEN];
    c->mss = lduw_le_p(d + E1000_CTXD_MSS);
}

/* The context descriptor that decodes to @c (DTYP context, status 0). */
void e1000_tx_ctx_encode(const E1000TxCtx *c, uint8_t *d)
{
    memset(d, 0, E1000_TXD_SIZE);
    d[E1000_CTXD_IPCSS] = c->ipcss;
    d[E1000_CTXD_IPCSO] = c->ipcso;
    stw_le_p(d + E1000_CTXD_IPCSE, c->ipcse);
    d[E1000_CTXD_TUCSS] = c->tucss;
    d[E1000_CTXD_TUCSO] = c->tucso;
    stw_le_p(d + E1000_CTXD_TUCSE, c->tucse);
    stl_le_p(d + E1000_CTXD_CMDLEN, (c->paylen & E1000_TXD_LEN_MASK) |
             (E1000_TXD_DTYP_CONTEXT << E1000_TXD_DTYP_SHIFT) |
             ((uint32_t)c->tucmd << 24));
    d[E1000_CTXD_HDRLEN] = c->hdr_len;
    stw_le_p(d + E1000_CTXD_MSS, c->mss);
}

typedef struct E1000TxIrq {
    bool done;                  /* a descriptor was written back */
    bool now;                   /* ... without IDE */
} E1000TxIrq;

static void e1000_tx_desc(E1000State *s, uint64_t da, const uint8_t *d,
                          E1000TxIrq *irq)
{
    E1000Tx *tx = &s->tx;
    uint32_t cmdlen = ldl_le_p(d + E1000_TXD_LENGTH);
    uint8_t cmd = cmdlen >> 24;
    uint16_t special = lduw_le_p(d + E1000_TXD_SPECIAL);
    bool vle = cmd & E1000_TXD_CMD_VLE;
    uint32_t len;

    tx->desc_err = false;
    if (cmd & E1000_TXD_CMD_DEXT) {
        unsigned dtyp = (cmdlen & E1000_TXD_DTYP_MASK) >>
                        E1000_TXD_DTYP_SHIFT;

        if (dtyp == E1000_TXD_DTYP_CONTEXT) {
            e1000_tx_ctx_decode(&tx->ctx, d);
            goto done;
        }
        if (dtyp != E1000_TXD_DTYP_DATA) {
            trace_e1000_err_tx_desc_type(e1000_id(s), dtyp);
            goto done;
        }
        len = cmdlen & E1000_TXD_LEN_MASK;
        if (!tx->in_packet) {
            e1000_tx_start(s, false, cmd & E1000_TXD_CMD_TSE,
                           d[E1000_DATD_POPTS]);
        }
    } else {
        len = cmdlen & 0xffff;
        if (!tx->in_packet) {
            e1000_tx_start(s, true, false, 0);
        }
        if (cmd & E1000_TXD_CMD_IC) {
            tx->ic = true;
            tx->css = d[E1000_TXD_CSS];
            tx->cso = d[E1000_TXD_CSO];
        }
    }
    e1000_tx_gather(s, ldq_le_p(d + E1000_TXD_ADDR), len, vle, special);
    if (cmd & E1000_TXD_CMD_EOP) {
        e1000_tx_finish(s, vle, special);
    }

done:
    if (cmd & (E1000_TXD_CMD_RS | E1000_TXD_CMD_RPS)) {
        uint8_t st = E1000_TXD_STAT_DD |
                     (tx->desc_err ? E1000_TXD_STAT_TU : 0);

        if (pci_dma_write(&s->pdev, da + E1000_TXD_STATUS, &st, 1) < 0) {
            trace_e1000_err_tx_desc_dma(e1000_id(s), da);
        }
        irq->done = true;
        if (!(cmd & E1000_TXD_CMD_IDE)) {
            irq->now = true;
        }
    }
}

/* Bottom half: walk the TX ring from TDH to TDT. */
void e1000_tx_run(void *opaque)
{
    E1000State *s = opaque;
    uint32_t n = REG(s, E1000_TDLEN) / E1000_TXD_SIZE;
    uint32_t tdh = REG(s, E1000_TDH), tdt = REG(s, E1000_TDT);
    uint64_t base;
    E1000TxIrq irq = { false, false };
    unsigned budget = E1000_TX_BUDGET;
    bool progress = false;

    if (!device_fetch_allowed(&s->pdev.dev) ||
        !(REG(s, E1000_TCTL) & E1000_TCTL_EN) || tdh == tdt) {
        return;
    }
    if (!n || tdh >= n || tdt >= n) {
        trace_e1000_err_tx_ring(e1000_id(s), tdh, tdt, n);
        return;
    }
    base = ((uint64_t)REG(s, E1000_TDBAH) << 32) | REG(s, E1000_TDBAL);
    s->tx_frames_run = 0;
    while (tdh != tdt) {
        uint64_t da = base + (uint64_t)tdh * E1000_TXD_SIZE;
        uint8_t d[E1000_TXD_SIZE];

        if (s->tx_blocked) {
            break;                          /* until e1000_writable() */
        }
        if (!device_fetch_allowed(&s->pdev.dev)) {
            break;      /* paused or stopping while a DMA waited: resumed
                         * by e1000_run_state_changed() */
        }
        if (!budget-- || s->tx_frames_run >= E1000_TX_FRAME_BUDGET) {
            device_bh_schedule(s->tx_bh);     /* let the loop breathe */
            break;
        }
        if (pci_dma_read(&s->pdev, da, d, sizeof(d)) < 0) {
            trace_e1000_err_tx_desc_dma(e1000_id(s), da);
            break;
        }
        e1000_tx_desc(s, da, d, &irq);
        tdh = (tdh + 1) % n;
        REG(s, E1000_TDH) = tdh;
        s->tx_descs++;
        progress = true;
    }
    if (irq.done) {
        e1000_tx_irq(s, !irq.now);
    }
    if (progress && tdh == tdt) {
        e1000_set_cause(s, E1000_ICR_TXQE);
    }
}
