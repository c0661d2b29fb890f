/*
 * e1000 device state for live migration and live upgrade, as sections of
 * a state stream (util/savestate.h); hw/pci adds the PCI function's own
 * (configuration space) around them.  All sections are version 1:
 *
 *   e1000         the MAC address the device was configured with (the
 *                 destination's must be the same), the register file by
 *                 offset (CTRL, ICR/IMS, RCTL/TCTL, the rings' base, length,
 *                 head and tail, RAL/RAH, MTA, VFTA, the statistics, ...),
 *                 IOADDR, the link (cable, autonegotiation, STATUS.LU) and
 *                 the query-stats counters
 *   e1000/irq     the INTx line and the time left on ITR and on the delay
 *                 timers (RDTR, RADV, TIDV, TADV, autonegotiation)
 *   e1000/phy     the PHY's registers
 *   e1000/eeprom  the EEPROM's words and its Microwire interface
 *   e1000/tx      the last context descriptor and the packet being
 *                 assembled
 *
 * Transmit stops between descriptors, not between packets: a packet
 * whose first descriptors were taken when the device stopped (its EOP not
 * written yet, or the run ended on its budget) is saved half assembled,
 * with its bytes, and continues on the other side.  Receive has nothing
 * in flight: a frame is written into the ring inside one work item, and
 * hw/net/nic.c never stashes a frame for the e1000 (e1000_rx_frame()
 * refuses a frame with -EAGAIN only before its first DMA).  Frames the
 * net layer queued for the device belong to the backend, not to the
 * device: they stay with the source.
 *
 * Timers keep their remaining time: loading arms nothing, the device's
 * start does (e1000_state_resume()), so the time the device was stopped
 * does not count, as for a stopped VM's clock.
 *
 * Loading checks everything first (values a register could not hold,
 * ring heads and tails outside their rings, an EEPROM address or a
 * half-assembled packet the device could not have made) and only then
 * changes the device: a stream that does not fit leaves it as it was.
 */
#include "hw/net/e1000-int.h"
#include "util/savestate.h"

#define E1000_STATE_VERSION     1

#define E1000_ITR_MAX_NS        (0xffffLL * E1000_ITR_UNIT_NS)
#define E1000_DELAY_MAX_NS      (0xffffLL * E1000_DELAY_UNIT_NS)

/* A state read from a stream, checked before it replaces the device's. */
typedef struct E1000Loaded {
    uint32_t regs[E1000_REG_COUNT];
    uint32_t ioaddr;
    bool cable_up, an_done, link_up;
    uint64_t rx_descs, tx_descs, irqs, irqs_delayed;
    E1000Resume resume;
    uint16_t phy[E1000_PHY_REGS];
    E1000Eeprom eeprom;
    E1000Tx tx;                 /* .buf unused: the bytes are tx_data */
    const uint8_t *tx_data;     /* into the stream */
} E1000Loaded;

/* ---- saving ---- */

static void e1000_save_main(E1000State *s, StateWriter *w)
{
    g_autofree uint8_t *regs = g_malloc(sizeof(s->regs));

    for (unsigned i = 0; i < E1000_REG_COUNT; i++) {
        stl_le_p(regs + 4 * i, s->regs[i]);
    }
    state_begin(w, "e1000", E1000_STATE_VERSION);
    state_put_bytes(w, "mac", s->mac, sizeof(s->mac));
    state_put_bytes(w, "regs", regs, sizeof(s->regs));
    state_put_u32(w, "ioaddr", s->ioaddr);
    state_put_bool(w, "cable-up", s->cable_up);
    state_put_bool(w, "an-done", s->an_done);
    state_put_bool(w, "link-up", s->link_up);
    state_put_u64(w, "rx-descs", s->rx_descs);
    state_put_u64(w, "tx-descs", s->tx_descs);
    state_put_u64(w, "irqs", s->irqs);
    state_put_u64(w, "irqs-delayed", s->irqs_delayed);
    state_end(w);
}

/* Time left on @t, at least 1 ns when it is armed; 0 when it is not. */
static int64_t e1000_timer_left(LoopTimer *t, int64_t now)
{
    int64_t expire = loop_timer_expire(t);

    return expire < 0 ? 0 : MAX(expire - now, 1);
}

static void e1000_save_irq(E1000State *s, StateWriter *w)
{
    E1000Resume r = s->resume;
    int64_t now = clock_ns();

    if (!r.pending) {
        /* Running state (not a loaded one waiting for its start). */
        r.irq_level = s->irq_level;
        r.itr_ns = MAX(s->itr_next - now, 0);
        r.rdtr_ns = e1000_timer_left(s->rdtr_timer, now);
        r.radv_ns = e1000_timer_left(s->radv_timer, now);
        r.tidv_ns = e1000_timer_left(s->tidv_timer, now);
        r.tadv_ns = e1000_timer_left(s->tadv_timer, now);
        r.autoneg_ns = e1000_timer_left(s->autoneg_timer, now);
    }
    state_begin(w, "e1000/irq", E1000_STATE_VERSION);
    state_put_bool(w, "level", r.irq_level);
    state_put_u64(w, "itr-ns", r.itr_ns);
    state_put_u64(w, "rdtr-ns", r.rdtr_ns);
    state_put_u64(w, "radv-ns", r.radv_ns);
    state_put_u64(w, "tidv-ns", r.tidv_ns);
    state_put_u64(w, "tadv-ns", r.tadv_ns);
    state_put_u64(w, "autoneg-ns", r.autoneg_ns);
    state_end(w);
}

static void e1000_save_phy(E1000State *s, StateWriter *w)
{
    uint8_t phy[sizeof(s->phy)];

    for (unsigned i = 0; i < E1000_PHY_REGS; i++) {
        stw_le_p(phy + 2 * i, s->phy[i]);
    }
    state_begin(w, "e1000/phy", E1000_STATE_VERSION);
    state_put_bytes(w, "regs", phy, sizeof(phy));
    state_end(w);
}

static void e1000_save_eeprom(E1000State *s, StateWriter *w)
{
    const E1000Eeprom *e = &s->eeprom;
    uint8_t data[sizeof(e->data)];

    for (unsigned i = 0; i < E1000_EEPROM_WORDS; i++) {
        stw_le_p(data + 2 * i, e->data[i]);
    }
    state_begin(w, "e1000/eeprom", E1000_STATE_VERSION);
    state_put_bytes(w, "data", data, sizeof(data));
    state_put_u32(w, "eecd", e->eecd);
    state_put_u32(w, "bits-in", e->bits_in);
    state_put_u32(w, "shift-in", e->shift_in);
    state_put_u8(w, "op", e->op);
    state_put_u8(w, "addr", e->addr);
    state_put_bool(w, "reading", e->reading);
    state_put_u32(w, "bit-out", e->bit_out);
    state_put_bool(w, "out", e->out);
    state_put_bool(w, "write-enabled", e->write_enabled);
    state_end(w);
}

static void e1000_save_tx(E1000State *s, StateWriter *w)
{
    const E1000Tx *tx = &s->tx;
    uint8_t ctx[E1000_TXD_SIZE], pctx[E1000_TXD_SIZE];

    e1000_tx_ctx_encode(&tx->ctx, ctx);
    e1000_tx_ctx_encode(&tx->pctx, pctx);
    state_begin(w, "e1000/tx", E1000_STATE_VERSION);
    state_put_bytes(w, "ctx", ctx, sizeof(ctx));
    state_put_bool(w, "in-packet", tx->in_packet);
    state_put_bytes(w, "packet-ctx", pctx, sizeof(pctx));
    state_put_bool(w, "legacy", tx->legacy);
    state_put_bool(w, "tse", tx->tse);
    state_put_u8(w, "popts", tx->popts);
    state_put_bool(w, "ic", tx->ic);
    state_put_u8(w, "css", tx->css);
    state_put_u8(w, "cso", tx->cso);
    state_put_bool(w, "drop", tx->drop);
    state_put_bool(w, "hdr-saved", tx->hdr_saved);
    state_put_u16(w, "segs", tx->segs);
    state_put_u32(w, "sent", tx->sent);
    state_put_bytes(w, "hdr", tx->hdr, sizeof(tx->hdr));
    /* The bytes assembled so far (none between packets). */
    state_put_bytes(w, "data", tx->buf, tx->in_packet ? tx->len : 0);
    state_end(w);
}

void e1000_state_save(E1000State *s, StateWriter *w)
{
    e1000_save_main(s, w);
    e1000_save_irq(s, w);
    e1000_save_phy(s, w);
    e1000_save_eeprom(s, w);
    e1000_save_tx(s, w);
}

/* ---- checking a loaded register file ---- */

/* The bits a register can hold, where its write handler keeps fewer. */
typedef struct E1000RegBits {
    uint32_t reg;
    uint32_t bits;
} E1000RegBits;

static const E1000RegBits e1000_reg_bits[] = {
    { E1000_CTRL, ~E1000_CTRL_RST },     /* a reset, never kept */
    { E1000_EECD, 0 },                  /* kept in E1000Eeprom */
    { E1000_CTRL_EXT, ~E1000_CTRL_EXT_EE_RST },
    { E1000_FCAH, 0xffff },
    { E1000_FCT, 0xffff },
    { E1000_VET, 0xffff },
    { E1000_ICR, E1000_ICR_VALID_MASK },
    { E1000_ITR, 0xffff },
    { E1000_ICS, 0 },                   /* triggers: nothing stored */
    { E1000_IMS, E1000_ICR_VALID_MASK },
    { E1000_IMC, 0 },
    { E1000_FCTTV, 0xffff },
    { E1000_AIT, 0xffff },
    { E1000_RDBAL, ~0xfu },
    { E1000_RDLEN, 0x000fff80 },
    { E1000_RDH, 0xffff },
    { E1000_RDT, 0xffff },
    { E1000_RDTR, 0xffff },
    { E1000_RADV, 0xffff },
    { E1000_RSRPD, 0xffff },
    { E1000_TDBAL, ~0xfu },
    { E1000_TDLEN, 0x000fff80 },
    { E1000_TDH, 0xffff },
    { E1000_TDT, 0xffff },
    { E1000_TIDV, 0xffff },
    { E1000_TADV, 0xffff },
    { E1000_RXCSUM, E1000_RXCSUM_PCSS_MASK | E1000_RXCSUM_IPOFL |
                    E1000_RXCSUM_TUOFL },
};

static void e1000_check_bits(StateSection *sec, const uint32_t *regs,
                             uint32_t reg, uint32_t bits)
{
    uint32_t v = regs[reg >> 2];

    if (v & ~bits) {
        state_section_fail(sec, "register 0x%05x holds 0x%08x, which it "
                           "cannot (bits 0x%08x)", reg, v, bits);
    }
}

/* Head and tail inside a ring that has descriptors. */
static void e1000_check_ring(StateSection *sec, const uint32_t *regs,
                             const char *name, uint32_t len_reg,
                             uint32_t head_reg, uint32_t tail_reg,
                             uint32_t desc_size)
{
    uint32_t n = regs[len_reg >> 2] / desc_size;
    uint32_t head = regs[head_reg >> 2], tail = regs[tail_reg >> 2];

    if (n && (head >= n || tail >= n)) {
        state_section_fail(sec, "the %s ring's head %u or tail %u is "
                           "outside its %u descriptors", name, head, tail,
                           n);
    }
}

static void e1000_check_regs(StateSection *sec, const uint32_t *regs)
{
    for (unsigned i = 0; i < E1000_REG_COUNT; i++) {
        if (regs[i] && !e1000_reg_implemented(i)) {
            /* A newer iovd's register: this one would drop it. */
            state_section_fail(sec, "register 0x%05x (0x%08x) is not "
                               "known to this iovd", i << 2, regs[i]);
            return;
        }
    }
    for (unsigned i = 0; i < ARRAY_SIZE(e1000_reg_bits); i++) {
        e1000_check_bits(sec, regs, e1000_reg_bits[i].reg,
                         e1000_reg_bits[i].bits);
    }
    for (unsigned i = 0; i < E1000_RA_COUNT; i++) {
        e1000_check_bits(sec, regs, E1000_RAH(i),
                         E1000_RAH_AV | E1000_RAH_AS_MASK | 0xffff);
    }
    e1000_check_ring(sec, regs, "receive", E1000_RDLEN, E1000_RDH,
                     E1000_RDT, E1000_RXD_SIZE);
    e1000_check_ring(sec, regs, "transmit", E1000_TDLEN, E1000_TDH,
                     E1000_TDT, E1000_TXD_SIZE);
}

/* ---- loading ---- */

static void e1000_load_regs(StateSection *sec, E1000Loaded *l)
{
    size_t len;
    const uint8_t *p = state_get_blob(sec, "regs", &len);

    if (!p) {
        return;                 /* the section's error is set */
    }
    if (len != sizeof(l->regs)) {
        state_section_fail(sec, "'regs' has %zu bytes, expected %zu", len,
                           sizeof(l->regs));
        return;
    }
    for (unsigned i = 0; i < E1000_REG_COUNT; i++) {
        l->regs[i] = ldl_le_p(p + 4 * i);
    }
    e1000_check_regs(sec, l->regs);
}

static bool e1000_load_main(E1000State *s, StateReader *r, E1000Loaded *l,
                            GError **errp)
{
    StateSection *sec = state_section(r, "e1000", E1000_STATE_VERSION,
                                      NULL, errp);
    uint8_t mac[E1000_ETH_ALEN];

    if (!sec) {
        return false;
    }
    state_get_bytes(sec, "mac", mac, sizeof(mac));
    e1000_load_regs(sec, l);
    l->ioaddr = state_get_u32(sec, "ioaddr");
    l->cable_up = state_get_bool(sec, "cable-up");
    l->an_done = state_get_bool(sec, "an-done");
    l->link_up = state_get_bool(sec, "link-up");
    l->rx_descs = state_get_u64(sec, "rx-descs");
    l->tx_descs = state_get_u64(sec, "tx-descs");
    l->irqs = state_get_u64(sec, "irqs");
    l->irqs_delayed = state_get_u64(sec, "irqs-delayed");
    if (!state_section_failed(sec) && memcmp(mac, s->mac, sizeof(mac))) {
        state_section_fail(sec, "the source's MAC address is %02x:%02x:"
                           "%02x:%02x:%02x:%02x, this device's %02x:%02x:"
                           "%02x:%02x:%02x:%02x (property 'mac')", mac[0],
                           mac[1], mac[2], mac[3], mac[4], mac[5], s->mac[0],
                           s->mac[1], s->mac[2], s->mac[3], s->mac[4],
                           s->mac[5]);
    }
    if (l->ioaddr & 0x80000000u) {
        state_section_fail(sec, "IOADDR 0x%08x has bit 31 set", l->ioaddr);
    }
    if (l->link_up && !l->cable_up) {
        state_section_fail(sec, "the link is up without a cable");
    }
    return state_section_end(sec, errp);
}

/* A remaining time, at most @max ns. */
static int64_t e1000_get_ns(StateSection *sec, const char *name,
                            int64_t max)
{
    uint64_t v = state_get_u64(sec, name);

    if (v > (uint64_t)max) {
        state_section_fail(sec, "'%s' is %" G_GUINT64_FORMAT " ns, more "
                           "than the %" G_GINT64_FORMAT " ns it can be",
                           name, v, max);
        return 0;
    }
    return v;
}

static bool e1000_load_irq(StateReader *r, E1000Loaded *l, GError **errp)
{
    StateSection *sec = state_section(r, "e1000/irq", E1000_STATE_VERSION,
                                      NULL, errp);
    E1000Resume *res = &l->resume;

    if (!sec) {
        return false;
    }
    res->irq_level = state_get_bool(sec, "level");
    res->itr_ns = e1000_get_ns(sec, "itr-ns", E1000_ITR_MAX_NS);
    res->rdtr_ns = e1000_get_ns(sec, "rdtr-ns", E1000_DELAY_MAX_NS);
    res->radv_ns = e1000_get_ns(sec, "radv-ns", E1000_DELAY_MAX_NS);
    res->tidv_ns = e1000_get_ns(sec, "tidv-ns", E1000_DELAY_MAX_NS);
    res->tadv_ns = e1000_get_ns(sec, "tadv-ns", E1000_DELAY_MAX_NS);
    res->autoneg_ns = e1000_get_ns(sec, "autoneg-ns", E1000_AUTONEG_NS);
    if (res->irq_level &&
        !(l->regs[E1000_ICR >> 2] & l->regs[E1000_IMS >> 2])) {
        state_section_fail(sec, "the line is asserted with no cause "
                           "pending (ICR & IMS is 0)");
    }
    return state_section_end(sec, errp);
}

static bool e1000_load_phy(StateReader *r, E1000Loaded *l, GError **errp)
{
    StateSection *sec = state_section(r, "e1000/phy", E1000_STATE_VERSION,
                                      NULL, errp);
    uint8_t phy[sizeof(l->phy)];

    if (!sec) {
        return false;
    }
    state_get_bytes(sec, "regs", phy, sizeof(phy));
    for (unsigned i = 0; i < E1000_PHY_REGS; i++) {
        l->phy[i] = lduw_le_p(phy + 2 * i);
    }
    return state_section_end(sec, errp);
}

static bool e1000_load_eeprom(StateReader *r, E1000Loaded *l, GError **errp)
{
    StateSection *sec = state_section(r, "e1000/eeprom",
                                      E1000_STATE_VERSION, NULL, errp);
    E1000Eeprom *e = &l->eeprom;
    uint32_t eecd_bits = E1000_EECD_SK | E1000_EECD_CS | E1000_EECD_DI |
                         E1000_EECD_FWE_MASK | E1000_EECD_REQ;
    uint8_t data[sizeof(e->data)];

    if (!sec) {
        return false;
    }
    state_get_bytes(sec, "data", data, sizeof(data));
    for (unsigned i = 0; i < E1000_EEPROM_WORDS; i++) {
        e->data[i] = lduw_le_p(data + 2 * i);
    }
    e->eecd = state_get_u32(sec, "eecd");
    e->bits_in = state_get_u32(sec, "bits-in");
    e->shift_in = state_get_u32(sec, "shift-in");
    e->op = state_get_u8(sec, "op");
    e->addr = state_get_u8(sec, "addr");
    e->reading = state_get_bool(sec, "reading");
    e->bit_out = state_get_u32(sec, "bit-out");
    e->out = state_get_bool(sec, "out");
    e->write_enabled = state_get_bool(sec, "write-enabled");
    if (e->eecd & ~eecd_bits) {
        state_section_fail(sec, "EECD 0x%08x has bits the device does not "
                           "keep", e->eecd);
    }
    if (e->op > 7 || e->addr >= E1000_EEPROM_WORDS) {
        state_section_fail(sec, "opcode %u address %u is not a command of "
                           "a %u-word EEPROM", e->op, e->addr,
                           E1000_EEPROM_WORDS);
    }
    return state_section_end(sec, errp);
}

/* A half-assembled packet must be one the TX path could have made. */
static void e1000_check_tx(StateSection *sec, const E1000Tx *tx)
{
    const E1000TxCtx *c = &tx->pctx;

    if (!tx->in_packet) {
        if (tx->len) {
            state_section_fail(sec, "%u bytes of a packet, but no packet "
                               "is being assembled", tx->len);
        }
        return;
    }
    if (tx->legacy && tx->tse) {
        state_section_fail(sec, "a legacy packet with TCP segmentation");
        return;
    }
    if (!tx->tse || tx->drop) {
        return;                 /* the length was checked: any bytes do */
    }
    if (!e1000_tso_ctx_valid(c, tx->popts)) {
        state_section_fail(sec, "the packet's TSO context (header %u, MSS "
                           "%u) is one the device refuses", c->hdr_len,
                           c->mss);
    } else if (tx->hdr_saved ? tx->len < c->hdr_len ||
                               tx->len > c->hdr_len + (uint32_t)c->mss
                             : tx->len >= c->hdr_len) {
        state_section_fail(sec, "%u bytes assembled do not fit a %u-byte "
                           "header %s and MSS %u", tx->len, c->hdr_len,
                           tx->hdr_saved ? "taken" : "still coming",
                           c->mss);
    }
}

static void e1000_load_tx_data(StateSection *sec, E1000Loaded *l)
{
    size_t len;

    l->tx_data = state_get_blob(sec, "data", &len);
    if (len > E1000_TX_BUF_SIZE) {
        state_section_fail(sec, "a packet of %zu bytes is longer than the "
                           "%u-byte assembly buffer", len,
                           E1000_TX_BUF_SIZE);
        len = 0;
    }
    l->tx.len = len;
}

static bool e1000_load_tx(StateReader *r, E1000Loaded *l, GError **errp)
{
    StateSection *sec = state_section(r, "e1000/tx", E1000_STATE_VERSION,
                                      NULL, errp);
    E1000Tx *tx = &l->tx;
    uint8_t ctx[E1000_TXD_SIZE], pctx[E1000_TXD_SIZE];

    if (!sec) {
        return false;
    }
    state_get_bytes(sec, "ctx", ctx, sizeof(ctx));
    state_get_bytes(sec, "packet-ctx", pctx, sizeof(pctx));
    e1000_tx_ctx_decode(&tx->ctx, ctx);
    e1000_tx_ctx_decode(&tx->pctx, pctx);
    tx->in_packet = state_get_bool(sec, "in-packet");
    tx->legacy = state_get_bool(sec, "legacy");
    tx->tse = state_get_bool(sec, "tse");
    tx->popts = state_get_u8(sec, "popts");
    tx->ic = state_get_bool(sec, "ic");
    tx->css = state_get_u8(sec, "css");
    tx->cso = state_get_u8(sec, "cso");
    tx->drop = state_get_bool(sec, "drop");
    tx->hdr_saved = state_get_bool(sec, "hdr-saved");
    tx->segs = state_get_u16(sec, "segs");
    tx->sent = state_get_u32(sec, "sent");
    state_get_bytes(sec, "hdr", tx->hdr, sizeof(tx->hdr));
    e1000_load_tx_data(sec, l);
    if (!state_section_failed(sec)) {
        e1000_check_tx(sec, tx);
    }
    return state_section_end(sec, errp);
}

static void e1000_timers_del(E1000State *s)
{
    loop_timer_del(s->itr_timer);
    loop_timer_del(s->rdtr_timer);
    loop_timer_del(s->radv_timer);
    loop_timer_del(s->tidv_timer);
    loop_timer_del(s->tadv_timer);
    loop_timer_del(s->autoneg_timer);
}

/* Everything checked: @l becomes the device's state. */
static void e1000_commit(E1000State *s, const E1000Loaded *l)
{
    uint8_t *buf = s->tx.buf;

    e1000_timers_del(s);        /* armed before the load: not ours */
    if (s->irq_level) {
        s->irq_level = false;   /* driven again by e1000_state_resume() */
        pci_set_irq(&s->pdev, false);
    }
    memcpy(s->regs, l->regs, sizeof(s->regs));
    memcpy(s->phy, l->phy, sizeof(s->phy));
    s->eeprom = l->eeprom;
    s->ioaddr = l->ioaddr;
    s->cable_up = l->cable_up;
    s->an_done = l->an_done;
    s->link_up = l->link_up;
    s->rx_descs = l->rx_descs;
    s->tx_descs = l->tx_descs;
    s->irqs = l->irqs;
    s->irqs_delayed = l->irqs_delayed;
    s->tx = l->tx;
    s->tx.buf = buf;
    s->tx.desc_err = false;
    if (l->tx.len) {
        memcpy(buf, l->tx_data, l->tx.len);
    }
    s->tx_blocked = false;      /* this side's backend has said nothing */
    s->itr_next = 0;
    s->resume = l->resume;
    s->resume.pending = true;
    if (s->nic) {
        net_rx_filter_changed(s->nic);
    }
}

bool e1000_state_load(E1000State *s, StateReader *r, GError **errp)
{
    g_autofree E1000Loaded *l = g_new0(E1000Loaded, 1);

    /* The register file first: the irq section is checked against it. */
    if (!e1000_load_main(s, r, l, errp) || !e1000_load_irq(r, l, errp) ||
        !e1000_load_phy(r, l, errp) || !e1000_load_eeprom(r, l, errp) ||
        !e1000_load_tx(r, l, errp)) {
        return false;
    }
    e1000_commit(s, l);
    return true;
}

/* ---- starting ---- */

static void e1000_timer_resume(LoopTimer *t, int64_t now, int64_t left)
{
    if (left) {
        loop_timer_mod(t, now + left);
    }
}

void e1000_state_resume(E1000State *s)
{
    E1000Resume *r = &s->resume;
    int64_t now = clock_ns();

    if (!r->pending) {
        return;                 /* not loaded: the timers never stopped */
    }
    r->pending = false;
    e1000_timer_resume(s->rdtr_timer, now, r->rdtr_ns);
    e1000_timer_resume(s->radv_timer, now, r->radv_ns);
    e1000_timer_resume(s->tidv_timer, now, r->tidv_ns);
    e1000_timer_resume(s->tadv_timer, now, r->tadv_ns);
    e1000_timer_resume(s->autoneg_timer, now, r->autoneg_ns);
    s->itr_next = now + r->itr_ns;
    if (r->irq_level) {
        s->irq_level = true;
        pci_set_irq(&s->pdev, true);
    } else if (r->itr_ns && (REG(s, E1000_ICR) & REG(s, E1000_IMS))) {
        /* Held back by ITR on the source: still, for the time left. */
        loop_timer_mod(s->itr_timer, s->itr_next);
    }
    e1000_update_irq(s);
    /* The cable here may not be the source's: a change is an LSC. */
    e1000_cable_check(s);
}
