/*
 * Intel 82540EM gigabit Ethernet controller ("e1000").
 *
 * BAR0 holds the registers (128 KiB), BAR1 reaches them indirectly through
 * IOADDR/IODATA; one INTx line, level-triggered: asserted while
 * ICR & IMS != 0, held back by ITR.  Registers dispatch through a const
 * table of per-register handlers indexed by offset / 4.
 *
 * The EEPROM (Microwire bit-bang through EECD, or EERD) holds the MAC
 * address; the PHY (an M88E1011 as far as the driver can tell) sits behind
 * MDIC.  Link: the cable (the net layer's link state), PHY power and
 * autonegotiation make STATUS.LU; every change raises ICR.LSC.
 *
 * Transmit: a TDT write schedules a bottom half that walks the ring:
 * legacy descriptors, context descriptors and data descriptors with
 * checksum insertion, TCP segmentation and VLAN tag insertion, assembled in
 * one preallocated buffer.  Receive: the net layer hands frames to
 * e1000_receive(), which filters them (RAL/RAH, MTA, broadcast, VLAN),
 * verifies checksums and writes them to the guest's buffers; with no
 * descriptors it returns -EAGAIN and the frame waits in the net layer's
 * queue until an RDT write flushes it.
 *
 * Guest mistakes (rings or buffers outside guest memory, absurd lengths,
 * bad contexts) drop the packet, count it where the hardware has a counter
 * and fire an e1000_err_* trace event.
 */
#include "hw/net/e1000-int.h"
#include "hw/net/trace.h"
#include "util/error.h"
#include "util/savestate.h"

static unsigned e1000_instances;

static const DeviceClass e1000_class;
#define E1000(dev) ((E1000State *)device_check((dev), &e1000_class))

/* ---- interrupts ---- */

void e1000_update_irq(E1000State *s)
{
    uint32_t pending = REG(s, E1000_ICR) & REG(s, E1000_IMS);
    uint32_t itr = REG(s, E1000_ITR) & 0xffff;

    if (!pending) {
        if (s->irq_level) {
            s->irq_level = false;
            trace_e1000_irq(e1000_id(s), REG(s, E1000_ICR),
                            REG(s, E1000_IMS), 0);
            pci_set_irq(&s->pdev, false);
        }
        return;
    }
    if (s->irq_level) {
        return;
    }
    if (itr) {
        int64_t now = clock_ns();

        if (now < s->itr_next) {
            if (!loop_timer_pending(s->itr_timer)) {
                s->irqs_delayed++;
                trace_e1000_irq_throttled(e1000_id(s), s->itr_next - now);
                loop_timer_mod(s->itr_timer, s->itr_next);
            }
            return;
        }
        s->itr_next = now + (int64_t)itr * E1000_ITR_UNIT_NS;
    }
    s->irq_level = true;
    s->irqs++;
    trace_e1000_irq(e1000_id(s), REG(s, E1000_ICR), REG(s, E1000_IMS), 1);
    pci_set_irq(&s->pdev, true);
}

static void e1000_itr_expired(void *opaque)
{
    e1000_update_irq(opaque);
}

void e1000_set_cause(E1000State *s, uint32_t causes)
{
    REG(s, E1000_ICR) |= causes & E1000_ICR_VALID_MASK;
    e1000_update_irq(s);
}

static void e1000_rx_delay_expired(void *opaque)
{
    E1000State *s = opaque;

    loop_timer_del(s->rdtr_timer);
    loop_timer_del(s->radv_timer);
    e1000_set_cause(s, E1000_ICR_RXT0);
}

static void e1000_tx_delay_expired(void *opaque)
{
    E1000State *s = opaque;

    loop_timer_del(s->tidv_timer);
    loop_timer_del(s->tadv_timer);
    e1000_set_cause(s, E1000_ICR_TXDW);
}

/*
 * A frame reached host memory: RXT0 now, or after the packet timer (RDTR,
 * restarted by every frame) or the absolute timer (RADV, started by the
 * first frame), whichever expires first.
 */
void e1000_rx_irq(E1000State *s)
{
    uint32_t rdtr = REG(s, E1000_RDTR) & 0xffff;
    uint32_t radv = REG(s, E1000_RADV) & 0xffff;
    int64_t now;

    if (!rdtr) {
        e1000_rx_delay_expired(s);
        return;
    }
    now = clock_ns();
    loop_timer_mod(s->rdtr_timer, now + (int64_t)rdtr * E1000_DELAY_UNIT_NS);
    if (radv && !loop_timer_pending(s->radv_timer)) {
        loop_timer_mod(s->radv_timer,
                       now + (int64_t)radv * E1000_DELAY_UNIT_NS);
    }
}

/* Descriptors were written back: TXDW now, or delayed by TIDV/TADV. */
void e1000_tx_irq(E1000State *s, bool delayed)
{
    uint32_t tidv = REG(s, E1000_TIDV) & 0xffff;
    uint32_t tadv = REG(s, E1000_TADV) & 0xffff;
    int64_t now;

    if (!delayed || !tidv) {
        e1000_tx_delay_expired(s);
        return;
    }
    now = clock_ns();
    loop_timer_mod(s->tidv_timer, now + (int64_t)tidv * E1000_DELAY_UNIT_NS);
    if (tadv && !loop_timer_pending(s->tadv_timer)) {
        loop_timer_mod(s->tadv_timer,
                       now + (int64_t)tadv * E1000_DELAY_UNIT_NS);
    }
}

/* ---- link and PHY ---- */

static void e1000_phy_reset(E1000State *s)
{
    uint16_t *p = s->phy;

    memset(s->phy, 0, sizeof(s->phy));
    p[E1000_PHY_CTRL] = E1000_PHY_CTRL_AN_ENABLE | E1000_PHY_CTRL_FD |
                        E1000_PHY_CTRL_SPEED_MSB;
    p[E1000_PHY_ID1] = E1000_PHY_ID1_M88;
    p[E1000_PHY_ID2] = E1000_PHY_ID2_82540;
    p[E1000_PHY_AN_ADV] = E1000_PHY_AN_SELECTOR | E1000_PHY_AN_10HD |
                          E1000_PHY_AN_10FD | E1000_PHY_AN_100HD |
                          E1000_PHY_AN_100FD | E1000_PHY_AN_PAUSE |
                          E1000_PHY_AN_ASM_DIR;
    p[E1000_PHY_NEXT_PAGE] = 0x2001;
    p[E1000_PHY_1000T_CTRL] = E1000_PHY_1000T_FD | E1000_PHY_1000T_HD;
    p[E1000_PHY_EXT_STATUS] = E1000_PHY_EXT_1000T_FD |
                              E1000_PHY_EXT_1000T_HD;
    p[E1000_M88_SPEC_CTRL] = 0x0068;
    p[E1000_M88_EXT_SPEC_CTRL] = 0x0c60;
    p[E1000_M88_LED_CTRL] = 0x4100;
}

static bool e1000_link_should_be_up(E1000State *s)
{
    uint16_t ctrl = s->phy[E1000_PHY_CTRL];

    return s->cable_up && !(ctrl & E1000_PHY_CTRL_POWER_DOWN) &&
           !(REG(s, E1000_CTRL) & E1000_CTRL_PHY_RST) &&
           (s->an_done || !(ctrl & E1000_PHY_CTRL_AN_ENABLE));
}

/*
 * Recompute the link from cable, PHY power and autonegotiation; reflect it
 * in the PHY's status registers and STATUS.LU; a change raises LSC when
 * @notify.
 */
static void e1000_link_update(E1000State *s, bool notify)
{
    bool up = e1000_link_should_be_up(s);
    bool an = s->phy[E1000_PHY_CTRL] & E1000_PHY_CTRL_AN_ENABLE;
    uint16_t *p = s->phy;

    p[E1000_PHY_STATUS] = E1000_PHY_STATUS_EXT_CAP | E1000_PHY_STATUS_AN_ABLE |
                          E1000_PHY_STATUS_MF_PRE | E1000_PHY_STATUS_EXT_STAT |
                          E1000_PHY_STATUS_10HD | E1000_PHY_STATUS_10FD |
                          E1000_PHY_STATUS_100HD | E1000_PHY_STATUS_100FD;
    if (up) {
        p[E1000_PHY_STATUS] |= E1000_PHY_STATUS_LINK;
    }
    if (up && an) {
        p[E1000_PHY_STATUS] |= E1000_PHY_STATUS_AN_DONE;
        p[E1000_PHY_LP_ABILITY] = E1000_PHY_AN_ACK | E1000_PHY_AN_PAUSE |
                                  E1000_PHY_AN_100FD | E1000_PHY_AN_100HD |
                                  E1000_PHY_AN_10FD | E1000_PHY_AN_10HD |
                                  E1000_PHY_AN_SELECTOR;
        p[E1000_PHY_AN_EXP] = E1000_PHY_AN_EXP_LP_AN_ABLE;
    } else {
        p[E1000_PHY_LP_ABILITY] = 0;
        p[E1000_PHY_AN_EXP] = 0;
    }
    p[E1000_PHY_1000T_STATUS] = up ? E1000_PHY_1000T_LOCAL_OK |
                                     E1000_PHY_1000T_REMOTE_OK |
                                     E1000_PHY_1000T_LP_FD |
                                     E1000_PHY_1000T_LP_HD : 0;
    p[E1000_M88_SPEC_STATUS] = up ? E1000_M88_SS_SPEED_1000 |
                                    E1000_M88_SS_FD | E1000_M88_SS_RESOLVED |
                                    E1000_M88_SS_LINK : 0;
    if (up) {
        REG(s, E1000_STATUS) |= E1000_STATUS_LU;
    } else {
        REG(s, E1000_STATUS) &= ~E1000_STATUS_LU;
    }
    if (up == s->link_up) {
        return;
    }
    s->link_up = up;
    trace_e1000_link(e1000_id(s), up);
    if (notify) {
        e1000_set_cause(s, E1000_ICR_LSC);
    }
    if (up) {
        /* Frames held back while the link was down may flow now. */
        nic_rx_flush(&s->rx);
    }
}

static void e1000_autoneg_restart(E1000State *s)
{
    s->an_done = false;
    e1000_link_update(s, true);
    if (s->cable_up &&
        !(s->phy[E1000_PHY_CTRL] & E1000_PHY_CTRL_POWER_DOWN) &&
        !(REG(s, E1000_CTRL) & E1000_CTRL_PHY_RST)) {
        loop_timer_mod(s->autoneg_timer, clock_ns() + E1000_AUTONEG_NS);
    } else {
        loop_timer_del(s->autoneg_timer);
    }
}

static void e1000_autoneg_expired(void *opaque)
{
    E1000State *s = opaque;

    s->an_done = true;
    e1000_link_update(s, true);
}

static void e1000_phy_set_ctrl(E1000State *s, uint16_t val)
{
    uint16_t old = s->phy[E1000_PHY_CTRL];
    uint16_t now = val & ~(E1000_PHY_CTRL_RESET | E1000_PHY_CTRL_RESTART_AN);

    /* A software reset keeps the configuration and renegotiates. */
    s->phy[E1000_PHY_CTRL] = now;
    if (now & E1000_PHY_CTRL_POWER_DOWN) {
        s->an_done = false;
        loop_timer_del(s->autoneg_timer);
        e1000_link_update(s, true);
        return;
    }
    if ((now & E1000_PHY_CTRL_AN_ENABLE) &&
        ((val & (E1000_PHY_CTRL_RESET | E1000_PHY_CTRL_RESTART_AN)) ||
         (old & E1000_PHY_CTRL_POWER_DOWN) ||
         !(old & E1000_PHY_CTRL_AN_ENABLE))) {
        e1000_autoneg_restart(s);
        return;
    }
    e1000_link_update(s, true);
}

static bool e1000_phy_writable(unsigned reg)
{
    switch (reg) {
    case E1000_PHY_STATUS:
    case E1000_PHY_ID1:
    case E1000_PHY_ID2:
    case E1000_PHY_LP_ABILITY:
    case E1000_PHY_AN_EXP:
    case E1000_PHY_LP_NEXT_PAGE:
    case E1000_PHY_1000T_STATUS:
    case E1000_PHY_EXT_STATUS:
    case E1000_M88_SPEC_STATUS:
    case E1000_M88_INT_STATUS:
    case E1000_M88_RX_ERR_CNT:
        return false;
    }
    return true;
}

static void e1000_phy_write(E1000State *s, unsigned reg, uint16_t val)
{
    trace_e1000_phy_write(e1000_id(s), reg, val);
    if (reg == E1000_PHY_CTRL) {
        e1000_phy_set_ctrl(s, val);
    } else if (e1000_phy_writable(reg)) {
        s->phy[reg] = val;
    }
}

/* The cable as the net layer sees it (set_link, backend carrier). */
static bool e1000_cable(E1000State *s)
{
    return s->nic && net_link_up(s->nic);
}

void e1000_cable_check(E1000State *s)
{
    bool cable = e1000_cable(s);

    if (cable == s->cable_up) {
        return;
    }
    s->cable_up = cable;
    if (!cable) {
        s->an_done = false;
        loop_timer_del(s->autoneg_timer);
        e1000_link_update(s, true);
    } else if (s->phy[E1000_PHY_CTRL] & E1000_PHY_CTRL_AN_ENABLE) {
        /* A cable plugged in: the PHYs negotiate, then the link is up. */
        e1000_autoneg_restart(s);
    } else {
        e1000_link_update(s, true);
    }
}

static void e1000_link_status_changed(NetClient *nc)
{
    e1000_cable_check(nc->opaque);
}

/* ---- EEPROM ---- */

static void e1000_eeprom_init(E1000State *s)
{
    uint16_t *w = s->eeprom.data;
    uint16_t sum = 0;

    memset(w, 0, sizeof(s->eeprom.data));
    for (unsigned i = 0; i < 3; i++) {
        w[E1000_EEPROM_MAC0 + i] = s->mac[2 * i] | (s->mac[2 * i + 1] << 8);
    }
    w[E1000_EEPROM_ID_LED] = 0xffff;
    w[E1000_EEPROM_PBA0] = 0x0000;
    w[E1000_EEPROM_PBA1] = 0x0001;
    w[E1000_EEPROM_INIT1] = 0x4000;     /* signature 01b */
    w[E1000_EEPROM_SUBSYS_ID] = E1000_SUBSYS_ID;
    w[E1000_EEPROM_SUBSYS_VID] = E1000_VENDOR_ID;
    w[E1000_EEPROM_DEV_ID] = E1000_DEVICE_ID_82540EM;
    w[E1000_EEPROM_VENDOR_ID] = E1000_VENDOR_ID;
    w[E1000_EEPROM_INIT2] = 0x3000;     /* symmetric + asymmetric pause */
    for (unsigned i = 0; i < E1000_EEPROM_CHECKSUM; i++) {
        sum += w[i];
    }
    w[E1000_EEPROM_CHECKSUM] = E1000_EEPROM_SUM - sum;
}

/* RAL0/RAH0 from EEPROM words 0-2 (reset and CTRL_EXT.EE_RST). */
static void e1000_eeprom_load(E1000State *s)
{
    const uint16_t *w = s->eeprom.data;

    REG(s, E1000_RAL(0)) = w[0] | ((uint32_t)w[1] << 16);
    REG(s, E1000_RAH(0)) = w[2] | E1000_RAH_AV;
}

static void e1000_eeprom_idle(E1000Eeprom *e)
{
    e->bits_in = 0;
    e->shift_in = 0;
    e->reading = false;
    e->bit_out = 0;
    e->out = true;              /* ready */
}

static bool e1000_eeprom_out_bit(E1000Eeprom *e)
{
    unsigned k, word;

    if (e->bit_out == 0) {
        return false;           /* the dummy bit after the address */
    }
    k = e->bit_out - 1;
    word = (e->addr + k / 16) % E1000_EEPROM_WORDS;
    return (e->data[word] >> (15 - k % 16)) & 1;
}

/* One bit clocked in on a rising edge of SK. */
static void e1000_eeprom_clock_in(E1000State *s, bool di)
{
    E1000Eeprom *e = &s->eeprom;
    unsigned cmd_bits = 3 + E1000_EEPROM_ADDR_BITS;

    if (e->reading) {
        e->bit_out++;
        e->out = e1000_eeprom_out_bit(e);
        return;
    }
    if (e->bits_in == 0 && !di) {
        return;                 /* waiting for the start bit */
    }
    e->shift_in = (e->shift_in << 1) | di;
    e->bits_in++;
    if (e->bits_in == cmd_bits) {
        e->op = e->shift_in >> E1000_EEPROM_ADDR_BITS;
        e->addr = e->shift_in & (E1000_EEPROM_WORDS - 1);
        trace_e1000_eeprom_cmd(e1000_id(s), e->op, e->addr);
        switch (e->op) {
        case E1000_EEPROM_OP_READ:
            e->reading = true;
            e->bit_out = 0;
            e->out = false;
            break;
        case E1000_EEPROM_OP_ERASE:
            if (e->write_enabled) {
                e->data[e->addr] = 0xffff;
            }
            break;
        case E1000_EEPROM_OP_EXT:
            if ((e->addr >> 4) == E1000_EEPROM_EXT_EWEN) {
                e->write_enabled = true;
            } else if ((e->addr >> 4) == E1000_EEPROM_EXT_EWDS) {
                e->write_enabled = false;
            }
            break;
        }
    } else if (e->bits_in == cmd_bits + 16 &&
               e->op == E1000_EEPROM_OP_WRITE && e->write_enabled) {
        e->data[e->addr] = e->shift_in & 0xffff;
    }
}

static uint32_t e1000_get_eecd(E1000State *s, unsigned idx)
{
    E1000Eeprom *e = &s->eeprom;
    uint32_t v = e->eecd | E1000_EECD_PRES;

    if (e->eecd & E1000_EECD_REQ) {
        v |= E1000_EECD_GNT;
    }
    if (e->out) {
        v |= E1000_EECD_DO;
    }
    return v;
}

static void e1000_set_eecd(E1000State *s, unsigned idx, uint32_t val)
{
    E1000Eeprom *e = &s->eeprom;
    uint32_t old = e->eecd;

    e->eecd = val & (E1000_EECD_SK | E1000_EECD_CS | E1000_EECD_DI |
                     E1000_EECD_FWE_MASK | E1000_EECD_REQ);
    if (!(val & E1000_EECD_CS)) {
        e1000_eeprom_idle(e);
        return;
    }
    if (!(old & E1000_EECD_CS)) {
        e1000_eeprom_idle(e);   /* chip selected: a new command */
    }
    if ((val & E1000_EECD_SK) && !(old & E1000_EECD_SK)) {
        e1000_eeprom_clock_in(s, val & E1000_EECD_DI);
    }
}

static void e1000_set_eerd(E1000State *s, unsigned idx, uint32_t val)
{
    unsigned addr = (val & E1000_EERD_ADDR_MASK) >> E1000_EERD_ADDR_SHIFT;
    uint16_t data;

    if (!(val & E1000_EERD_START)) {
        s->regs[idx] = val & E1000_EERD_ADDR_MASK;
        return;
    }
    data = addr < E1000_EEPROM_WORDS ? s->eeprom.data[addr] : 0xffff;
    s->regs[idx] = (val & E1000_EERD_ADDR_MASK) | E1000_EERD_DONE |
                   ((uint32_t)data << E1000_EERD_DATA_SHIFT);
}

/* ---- register handlers ---- */

typedef uint32_t E1000RegRead(E1000State *s, unsigned idx);
typedef void E1000RegWrite(E1000State *s, unsigned idx, uint32_t val);

typedef struct E1000RegOps {
    E1000RegRead *read;
    E1000RegWrite *write;       /* NULL: read-only */
    bool trigger;               /* writes act on 1 bits (no merging) */
} E1000RegOps;

static void e1000_mac_reset(E1000State *s);

static uint32_t e1000_get_reg(E1000State *s, unsigned idx)
{
    return s->regs[idx];
}

static uint32_t e1000_get_zero(E1000State *s, unsigned idx)
{
    return 0;
}

static void e1000_set_reg(E1000State *s, unsigned idx, uint32_t val)
{
    s->regs[idx] = val;
}

static void e1000_set_16bit(E1000State *s, unsigned idx, uint32_t val)
{
    s->regs[idx] = val & 0xffff;
}

/* Ring base addresses are 16-byte aligned. */
static void e1000_set_dbal(E1000State *s, unsigned idx, uint32_t val)
{
    s->regs[idx] = val & ~0xfu;
}

/* Ring lengths are multiples of 128 bytes. */
static void e1000_set_dlen(E1000State *s, unsigned idx, uint32_t val)
{
    s->regs[idx] = val & 0x000fff80;
}

static void e1000_set_ctrl(E1000State *s, unsigned idx, uint32_t val)
{
    uint32_t old = s->regs[idx];

    if (val & E1000_CTRL_RST) {
        trace_e1000_reset(e1000_id(s), "CTRL.RST");
        device_reset(&s->pdev.dev, DEVICE_RESET_DEVICE, NULL, NULL);
        return;
    }
    s->regs[idx] = val;
    if (!((val ^ old) & E1000_CTRL_PHY_RST)) {
        return;
    }
    if (val & E1000_CTRL_PHY_RST) {
        /* PHY held in reset: defaults, no link until released. */
        e1000_phy_reset(s);
        s->an_done = false;
        loop_timer_del(s->autoneg_timer);
        e1000_link_update(s, true);
    } else {
        e1000_autoneg_restart(s);
    }
}

static void e1000_set_ctrl_ext(E1000State *s, unsigned idx, uint32_t val)
{
    if (val & E1000_CTRL_EXT_EE_RST) {
        e1000_eeprom_load(s);
        net_rx_filter_changed(s->nic);
    }
    s->regs[idx] = val & ~E1000_CTRL_EXT_EE_RST;
}

static void e1000_set_mdic(E1000State *s, unsigned idx, uint32_t val)
{
    unsigned phy = (val & E1000_MDIC_PHY_MASK) >> E1000_MDIC_PHY_SHIFT;
    unsigned reg = (val & E1000_MDIC_REG_MASK) >> E1000_MDIC_REG_SHIFT;

    val &= ~(E1000_MDIC_READY | E1000_MDIC_ERROR);
    if (phy != E1000_PHY_ADDR) {
        trace_e1000_err_mdic_phy(e1000_id(s), phy);
        val |= E1000_MDIC_ERROR;
    } else if (val & E1000_MDIC_OP_READ) {
        val = (val & ~E1000_MDIC_DATA_MASK) | s->phy[reg];
        trace_e1000_phy_read(e1000_id(s), reg, s->phy[reg]);
    } else if (val & E1000_MDIC_OP_WRITE) {
        e1000_phy_write(s, reg, val & E1000_MDIC_DATA_MASK);
    }
    s->regs[idx] = val | E1000_MDIC_READY;
    if (val & E1000_MDIC_INT_EN) {
        e1000_set_cause(s, E1000_ICR_MDAC);
    }
}

/* ICR: reading clears every cause; writing 1 clears that cause. */
static uint32_t e1000_get_icr(E1000State *s, unsigned idx)
{
    uint32_t v = s->regs[idx];

    s->regs[idx] = 0;
    e1000_update_irq(s);
    return v;
}

static void e1000_set_icr(E1000State *s, unsigned idx, uint32_t val)
{
    s->regs[idx] &= ~val;
    e1000_update_irq(s);
}

/* ICS reads as ICR without clearing it; writing sets causes. */
static uint32_t e1000_get_ics(E1000State *s, unsigned idx)
{
    return REG(s, E1000_ICR);
}

static void e1000_set_ics(E1000State *s, unsigned idx, uint32_t val)
{
    e1000_set_cause(s, val);
}

static void e1000_set_ims(E1000State *s, unsigned idx, uint32_t val)
{
    REG(s, E1000_IMS) |= val & E1000_ICR_VALID_MASK;
    e1000_update_irq(s);
}

static void e1000_set_imc(E1000State *s, unsigned idx, uint32_t val)
{
    REG(s, E1000_IMS) &= ~val;
    e1000_update_irq(s);
}

static void e1000_set_rctl(E1000State *s, unsigned idx, uint32_t val)
{
    uint32_t old = s->regs[idx];
    uint32_t filter = E1000_RCTL_UPE | E1000_RCTL_MPE | E1000_RCTL_BAM |
                      E1000_RCTL_VFE | E1000_RCTL_MO_MASK;

    s->regs[idx] = val;
    if ((old ^ val) & filter) {
        net_rx_filter_changed(s->nic);
    }
    if (val & E1000_RCTL_EN) {
        nic_rx_flush(&s->rx);
    }
}

static void e1000_set_filter_reg(E1000State *s, unsigned idx, uint32_t val)
{
    if (s->regs[idx] != val) {
        s->regs[idx] = val;
        net_rx_filter_changed(s->nic);
    }
}

static void e1000_set_ra(E1000State *s, unsigned idx, uint32_t val)
{
    if ((idx << 2) & 4) {
        val &= E1000_RAH_AV | E1000_RAH_AS_MASK | 0xffff;
    }
    e1000_set_filter_reg(s, idx, val);
}

static void e1000_set_rdt(E1000State *s, unsigned idx, uint32_t val)
{
    s->regs[idx] = val & 0xffff;
    nic_rx_flush(&s->rx);     /* deliver frames that waited */
}

static void e1000_set_rdtr(E1000State *s, unsigned idx, uint32_t val)
{
    s->regs[idx] = val & 0xffff;
    if ((val & E1000_RDTR_FPD) && (loop_timer_pending(s->rdtr_timer) ||
                                   loop_timer_pending(s->radv_timer))) {
        e1000_rx_delay_expired(s);
    }
}

static void e1000_set_tctl(E1000State *s, unsigned idx, uint32_t val)
{
    s->regs[idx] = val;
    if (val & E1000_TCTL_EN) {
        device_bh_schedule(s->tx_bh);
    }
}

static void e1000_set_tdt(E1000State *s, unsigned idx, uint32_t val)
{
    s->regs[idx] = val & 0xffff;
    device_bh_schedule(s->tx_bh);
}

static void e1000_set_rxcsum(E1000State *s, unsigned idx, uint32_t val)
{
    s->regs[idx] = val & (E1000_RXCSUM_PCSS_MASK | E1000_RXCSUM_IPOFL |
                          E1000_RXCSUM_TUOFL);
}

/* Statistics: each register clears when read. */
static uint32_t e1000_get_stat(E1000State *s, unsigned idx)
{
    uint32_t v = s->regs[idx];

    s->regs[idx] = 0;
    return v;
}

#define R(off)              ((off) >> 2)
#define RANGE(off, n)       R(off) ... R(off) + (n) - 1
#define RW(wr)              { .read = e1000_get_reg, .write = (wr) }
#define RO(rd)              { .read = (rd) }
#define TRIGGER(rd, wr)     { .read = (rd), .write = (wr), .trigger = true }

static const E1000RegOps e1000_reg_ops[E1000_REG_COUNT] = {
    [R(E1000_CTRL)]     = RW(e1000_set_ctrl),
    [R(E1000_STATUS)]   = RO(e1000_get_reg),
    [R(E1000_EECD)]     = { e1000_get_eecd, e1000_set_eecd },
    [R(E1000_EERD)]     = RW(e1000_set_eerd),
    [R(E1000_CTRL_EXT)] = RW(e1000_set_ctrl_ext),
    [R(E1000_FLA)]      = RW(e1000_set_reg),
    [R(E1000_MDIC)]     = RW(e1000_set_mdic),
    [R(E1000_FCAL)]     = RW(e1000_set_reg),
    [R(E1000_FCAH)]     = RW(e1000_set_16bit),
    [R(E1000_FCT)]      = RW(e1000_set_16bit),
    [R(E1000_VET)]      = RW(e1000_set_16bit),
    [R(E1000_ICR)]      = TRIGGER(e1000_get_icr, e1000_set_icr),
    [R(E1000_ITR)]      = RW(e1000_set_16bit),
    [R(E1000_ICS)]      = TRIGGER(e1000_get_ics, e1000_set_ics),
    [R(E1000_IMS)]      = TRIGGER(e1000_get_reg, e1000_set_ims),
    [R(E1000_IMC)]      = TRIGGER(e1000_get_zero, e1000_set_imc),
    [R(E1000_RCTL)]     = RW(e1000_set_rctl),
    [R(E1000_FCTTV)]    = RW(e1000_set_16bit),
    [R(E1000_TXCW)]     = RW(e1000_set_reg),
    [R(E1000_RXCW)]     = RO(e1000_get_reg),
    [R(E1000_TCTL)]     = RW(e1000_set_tctl),
    [R(E1000_TIPG)]     = RW(e1000_set_reg),
    [R(E1000_AIT)]      = RW(e1000_set_16bit),
    [R(E1000_LEDCTL)]   = RW(e1000_set_reg),
    [R(E1000_PBA)]      = RW(e1000_set_reg),
    [R(E1000_FCRTL)]    = RW(e1000_set_reg),
    [R(E1000_FCRTH)]    = RW(e1000_set_reg),
    [R(E1000_RDFH)]     = RW(e1000_set_reg),
    [R(E1000_RDFT)]     = RW(e1000_set_reg),
    [R(E1000_RDFHS)]    = RW(e1000_set_reg),
    [R(E1000_RDFTS)]    = RW(e1000_set_reg),
    [R(E1000_RDFPC)]    = RW(e1000_set_reg),
    [R(E1000_RDBAL)]    = RW(e1000_set_dbal),
    [R(E1000_RDBAH)]    = RW(e1000_set_reg),
    [R(E1000_RDLEN)]    = RW(e1000_set_dlen),
    [R(E1000_RDH)]      = RW(e1000_set_16bit),
    [R(E1000_RDT)]      = RW(e1000_set_rdt),
    [R(E1000_RDTR)]     = RW(e1000_set_rdtr),
    [R(E1000_RXDCTL)]   = RW(e1000_set_reg),
    [R(E1000_RADV)]     = RW(e1000_set_16bit),
    [R(E1000_RSRPD)]    = RW(e1000_set_16bit),
    [R(E1000_TXDMAC)]   = RW(e1000_set_reg),
    [R(E1000_TDFH)]     = RW(e1000_set_reg),
    [R(E1000_TDFT)]     = RW(e1000_set_reg),
    [R(E1000_TDFHS)]    = RW(e1000_set_reg),
    [R(E1000_TDFTS)]    = RW(e1000_set_reg),
    [R(E1000_TDFPC)]    = RW(e1000_set_reg),
    [R(E1000_TDBAL)]    = RW(e1000_set_dbal),
    [R(E1000_TDBAH)]    = RW(e1000_set_reg),
    [R(E1000_TDLEN)]    = RW(e1000_set_dlen),
    [R(E1000_TDH)]      = RW(e1000_set_16bit),
    [R(E1000_TDT)]      = RW(e1000_set_tdt),
    [R(E1000_TIDV)]     = RW(e1000_set_16bit),
    [R(E1000_TXDCTL)]   = RW(e1000_set_reg),
    [R(E1000_TADV)]     = RW(e1000_set_16bit),
    [R(E1000_TSPMT)]    = RW(e1000_set_reg),
    [RANGE(E1000_STATS_FIRST,
           R(E1000_STATS_LAST) - R(E1000_STATS_FIRST) + 1)] =
                          RO(e1000_get_stat),
    [R(E1000_RXCSUM)]   = RW(e1000_set_rxcsum),
    [RANGE(E1000_MTA, E1000_MTA_COUNT)] = RW(e1000_set_filter_reg),
    [RANGE(E1000_RA, 2 * E1000_RA_COUNT)] = RW(e1000_set_ra),
    [RANGE(E1000_VFTA, E1000_VFTA_COUNT)] = RW(e1000_set_filter_reg),
    [R(E1000_WUC)]      = RW(e1000_set_reg),
    [R(E1000_WUFC)]     = RW(e1000_set_reg),
    [R(E1000_WUS)]      = RW(e1000_set_reg),
    [R(E1000_MANC)]     = RW(e1000_set_reg),
    [R(E1000_IPAV)]     = RW(e1000_set_reg),
    [RANGE(E1000_IP4AT, 8)] = RW(e1000_set_reg),
    [RANGE(E1000_IP6AT, 4)] = RW(e1000_set_reg),
    [R(E1000_WUPL)]     = RW(e1000_set_reg),
    [RANGE(E1000_WUPM, 32)] = RW(e1000_set_reg),
    [RANGE(E1000_FFLT, 8)] = RW(e1000_set_reg),
};

bool e1000_reg_implemented(unsigned idx)
{
    return idx < E1000_REG_COUNT &&
           (e1000_reg_ops[idx].read || e1000_reg_ops[idx].write);
}

static const E1000RegOps *e1000_reg_lookup(uint32_t addr)
{
    unsigned idx = addr >> 2;

    if (idx >= E1000_REG_COUNT) {
        return NULL;
    }
    return &e1000_reg_ops[idx];
}

static uint32_t e1000_reg_read(E1000State *s, uint32_t addr)
{
    const E1000RegOps *ops = e1000_reg_lookup(addr);

    if (!ops || !ops->read) {
        trace_e1000_reg_unimp(e1000_id(s), addr, 0, 0);
        return 0;
    }
    return ops->read(s, addr >> 2);
}

/* A write of @val to the bytes of the register at @addr in @mask. */
static void e1000_reg_write(E1000State *s, uint32_t addr, uint32_t val,
                            uint32_t mask)
{
    const E1000RegOps *ops = e1000_reg_lookup(addr);

    if (!ops || !ops->write) {
        if (!ops || !ops->read) {
            trace_e1000_reg_unimp(e1000_id(s), addr, 1, val);
        }
        return;
    }
    if (mask != UINT32_MAX && !ops->trigger) {
        val = (s->regs[addr >> 2] & ~mask) | (val & mask);
    }
    ops->write(s, addr >> 2, val & (ops->trigger ? mask : UINT32_MAX));
}

static uint64_t e1000_mmio_read(void *opaque, uint64_t addr, unsigned size)
{
    E1000State *s = opaque;
    unsigned shift;

    if (size == 8) {
        return e1000_reg_read(s, addr) |
               (uint64_t)e1000_reg_read(s, addr + 4) << 32;
    }
    if (size == 4) {
        return e1000_reg_read(s, addr);
    }
    trace_e1000_err_reg_size(e1000_id(s), addr, size);
    shift = (addr & 3) * 8;
    return (e1000_reg_read(s, addr & ~3u) >> shift) &
           ((1ull << (8 * size)) - 1);
}

static void e1000_mmio_write(void *opaque, uint64_t addr, uint64_t val,
                             unsigned size)
{
    E1000State *s = opaque;
    unsigned shift;

    if (size == 8) {
        e1000_reg_write(s, addr, val, UINT32_MAX);
        e1000_reg_write(s, addr + 4, val >> 32, UINT32_MAX);
        return;
    }
    if (size == 4) {
        e1000_reg_write(s, addr, val, UINT32_MAX);
        return;
    }
    trace_e1000_err_reg_size(e1000_id(s), addr, size);
    shift = (addr & 3) * 8;
    e1000_reg_write(s, addr & ~3u, (uint32_t)val << shift,
                    (uint32_t)(((1ull << (8 * size)) - 1) << shift));
}

static const PCIBarOps e1000_mmio_ops = {
    .read = e1000_mmio_read,
    .write = e1000_mmio_write,
};

/* BAR1: IOADDR selects a register, IODATA reads or writes it. */
static bool e1000_ioaddr_valid(E1000State *s)
{
    if (s->ioaddr >= E1000_MMIO_SIZE || (s->ioaddr & 3)) {
        trace_e1000_err_io_addr(e1000_id(s), s->ioaddr);
        return false;
    }
    return true;
}

static uint64_t e1000_io_read(void *opaque, uint64_t addr, unsigned size)
{
    E1000State *s = opaque;

    if (size != 4) {
        trace_e1000_err_reg_size(e1000_id(s), addr, size);
        return 0;
    }
    switch (addr) {
    case E1000_IOADDR:
        return s->ioaddr;
    case E1000_IODATA:
        return e1000_ioaddr_valid(s) ? e1000_reg_read(s, s->ioaddr) : 0;
    }
    return 0;
}

static void e1000_io_write(void *opaque, uint64_t addr, uint64_t val,
                           unsigned size)
{
    E1000State *s = opaque;

    if (size != 4) {
        trace_e1000_err_reg_size(e1000_id(s), addr, size);
        return;
    }
    switch (addr) {
    case E1000_IOADDR:
        s->ioaddr = val & 0x7fffffff;
        break;
    case E1000_IODATA:
        if (e1000_ioaddr_valid(s)) {
            e1000_reg_write(s, s->ioaddr, val, UINT32_MAX);
        }
        break;
    }
}

static const PCIBarOps e1000_io_ops = {
    .read = e1000_io_read,
    .write = e1000_io_write,
};

/* ---- net layer glue ---- */

static void e1000_rx_filter_info(NetClient *nc, NetRxFilterInfo *info)
{
    E1000State *s = nc->opaque;
    uint32_t rctl = REG(s, E1000_RCTL);
    bool any_mta = false;

    info->promiscuous = rctl & E1000_RCTL_UPE;
    info->unicast = (rctl & E1000_RCTL_UPE) ? NET_RX_ALL : NET_RX_NORMAL;
    info->broadcast_allowed = rctl & E1000_RCTL_BAM;
    info->unicast_overflow = false;
    info->unicast_table = g_array_new(false, false, E1000_ETH_ALEN);
    info->multicast_table = g_array_new(false, false, E1000_ETH_ALEN);
    info->vlan_table = g_array_new(false, false, sizeof(uint16_t));
    for (unsigned i = 0; i < E1000_RA_COUNT; i++) {
        uint32_t ral = REG(s, E1000_RAL(i)), rah = REG(s, E1000_RAH(i));
        uint8_t mac[E1000_ETH_ALEN];

        if (!(rah & E1000_RAH_AV)) {
            continue;
        }
        stl_le_p(mac, ral);
        stw_le_p(mac + 4, rah);
        if (i == 0) {
            memcpy(info->main_mac, mac, sizeof(mac));
        } else {
            g_array_append_vals(info->unicast_table, mac, 1);
        }
    }
    for (unsigned i = 0; i < E1000_MTA_COUNT; i++) {
        any_mta |= REG(s, E1000_MTA + 4 * i) != 0;
    }
    /* The MTA is a hash: the addresses behind it cannot be listed. */
    info->multicast = (rctl & E1000_RCTL_MPE) ? NET_RX_ALL :
                      any_mta ? NET_RX_NORMAL : NET_RX_NONE;
    info->multicast_overflow = any_mta;
    if (rctl & E1000_RCTL_VFE) {
        for (uint16_t vid = 0; vid < 4096; vid++) {
            if (REG(s, E1000_VFTA + 4 * (vid >> 5)) & (1u << (vid & 31))) {
                g_array_append_val(info->vlan_table, vid);
            }
        }
    }
}

/* The backend drained what it queued for us: transmit again. */
static void e1000_writable(NetClient *nc)
{
    E1000State *s = nc->opaque;

    s->tx_blocked = false;
    device_bh_schedule(s->tx_bh);
}

static const NetClientOps e1000_net_ops = {
    .receive = e1000_receive,
    .can_receive = e1000_can_receive,
    .writable = e1000_writable,
    .link_status_changed = e1000_link_status_changed,
    .rx_filter_info = e1000_rx_filter_info,
};

/* ---- reset, lifecycle ---- */

/* Everything but PCI configuration: power-on and CTRL.RST. */
static void e1000_mac_reset(E1000State *s)
{
    device_bh_cancel(s->tx_bh);
    nic_rx_reset(&s->rx);
    loop_timer_del(s->itr_timer);
    loop_timer_del(s->rdtr_timer);
    loop_timer_del(s->radv_timer);
    loop_timer_del(s->tidv_timer);
    loop_timer_del(s->tadv_timer);
    loop_timer_del(s->autoneg_timer);

    memset(s->regs, 0, sizeof(s->regs));
    REG(s, E1000_CTRL) = E1000_CTRL_FD | E1000_CTRL_SLU | E1000_CTRL_SPD_1000;
    REG(s, E1000_STATUS) = E1000_STATUS_FD | E1000_STATUS_SPEED_1000 |
                           E1000_STATUS_ASDV_1000;
    REG(s, E1000_VET) = E1000_ETH_P_VLAN;
    REG(s, E1000_LEDCTL) = 0x07068302;
    REG(s, E1000_PBA) = 0x00000030;         /* 48 KB RX, 16 KB TX */
    REG(s, E1000_RXCSUM) = E1000_RXCSUM_IPOFL | E1000_RXCSUM_TUOFL;
    e1000_eeprom_load(s);

    s->eeprom.eecd = 0;
    s->eeprom.write_enabled = false;
    e1000_eeprom_idle(&s->eeprom);

    memset(&s->tx.ctx, 0, sizeof(s->tx.ctx));
    s->tx.in_packet = false;
    s->tx.len = 0;

    if (s->irq_level) {
        s->irq_level = false;
        pci_set_irq(&s->pdev, false);
    }
    s->itr_next = 0;
    s->tx_blocked = false;
    memset(&s->resume, 0, sizeof(s->resume));

    /* The link was negotiated at power-up if a cable is there. */
    e1000_phy_reset(s);
    s->cable_up = e1000_cable(s);
    s->an_done = s->cable_up;
    s->link_up = e1000_link_should_be_up(s);
    e1000_link_update(s, false);
    if (s->nic) {
        net_rx_filter_changed(s->nic);
    }
}

/* CTRL.RST resets the MAC; a function reset the PCI function too. */
static void e1000_reset(Device *dev, DeviceResetKind kind)
{
    E1000State *s = E1000(dev);

    if (kind == DEVICE_RESET_FUNCTION) {
        trace_e1000_reset(e1000_id(s), "device");
        pci_device_reset(&s->pdev);
        s->irq_level = false;
        s->ioaddr = 0;
    }
    e1000_mac_reset(s);
}

static void e1000_run_state_changed(Device *dev, bool running)
{
    E1000State *s = E1000(dev);

    if (running) {
        e1000_state_resume(s);
        device_bh_schedule(s->tx_bh);
        nic_rx_flush(&s->rx);
    }
}

static void e1000_save_state(Device *dev, StateWriter *w)
{
    e1000_state_save(E1000(dev), w);
}

static bool e1000_load_state(Device *dev, StateReader *r, GError **errp)
{
    return e1000_state_load(E1000(dev), r, errp);
}

static bool e1000_parse_mac(const char *str, uint8_t *mac, GError **errp)
{
    unsigned b[E1000_ETH_ALEN];
    char end;

    if (sscanf(str, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2],
               &b[3], &b[4], &b[5], &end) != E1000_ETH_ALEN) {
        error_setg(errp, "property 'mac': '%s' is not a MAC address "
                   "(xx:xx:xx:xx:xx:xx)", str);
        return false;
    }
    for (unsigned i = 0; i < E1000_ETH_ALEN; i++) {
        mac[i] = b[i];
    }
    if (mac[0] & 1) {
        error_setg(errp, "property 'mac': '%s' is a multicast address",
                   str);
        return false;
    }
    if (!(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5])) {
        error_setg(errp, "property 'mac': the all-zero address is not "
                   "valid");
        return false;
    }
    return true;
}

static void e1000_free_resources(E1000State *s)
{
    device_bh_delete(s->tx_bh);
    nic_rx_cleanup(&s->rx);
    loop_timer_free(s->itr_timer);
    loop_timer_free(s->rdtr_timer);
    loop_timer_free(s->radv_timer);
    loop_timer_free(s->tidv_timer);
    loop_timer_free(s->tadv_timer);
    loop_timer_free(s->autoneg_timer);
    s->tx_bh = NULL;
    s->itr_timer = s->autoneg_timer = NULL;
    s->rdtr_timer = s->radv_timer = s->tidv_timer = s->tadv_timer = NULL;
    g_clear_pointer(&s->tx.buf, g_free);
    g_clear_pointer(&s->rx_bounce, g_free);
    pci_device_cleanup(&s->pdev);
}

static bool e1000_realize(Device *dev, GError **errp)
{
    E1000State *s = E1000(dev);
    PCIDevice *pdev = &s->pdev;
    static const PCIDeviceInfo info = {
        .vendor_id = E1000_VENDOR_ID,
        .device_id = E1000_DEVICE_ID_82540EM,
        .subsystem_vendor_id = E1000_VENDOR_ID,
        .subsystem_id = E1000_SUBSYS_ID,
        .revision = E1000_REVISION,
        .class_code = E1000_CLASS_ETHERNET,
        .interrupt_pin = 1,
    };

    if (s->mac_str) {
        if (!e1000_parse_mac(s->mac_str, s->mac, errp)) {
            return false;
        }
    } else {
        static const uint8_t base[E1000_ETH_ALEN] = {
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56
        };

        memcpy(s->mac, base, sizeof(base));
        s->mac[5] += e1000_instances;
    }

    pci_device_init(pdev, &info);
    pci_register_bar(pdev, E1000_BAR_MMIO, PCI_BAR_MEM32, E1000_MMIO_SIZE,
                     &e1000_mmio_ops, s);
    pci_register_bar(pdev, E1000_BAR_IO, PCI_BAR_IO, E1000_IO_SIZE,
                     &e1000_io_ops, s);
    pci_add_pm_cap(pdev);

    s->tx.buf = g_malloc0(E1000_TX_BUF_SIZE);
    s->rx_bounce = g_malloc0(E1000_RX_BOUNCE_SIZE);
    s->tx_bh = device_bh_new(dev, e1000_tx_run, s);
    nic_rx_init(&s->rx, pdev, e1000_rx_frame, s);
    s->itr_timer = loop_timer_new(s->pdev.dev.loop, e1000_itr_expired, s);
    s->rdtr_timer = loop_timer_new(s->pdev.dev.loop, e1000_rx_delay_expired, s);
    s->radv_timer = loop_timer_new(s->pdev.dev.loop, e1000_rx_delay_expired, s);
    s->tidv_timer = loop_timer_new(s->pdev.dev.loop, e1000_tx_delay_expired, s);
    s->tadv_timer = loop_timer_new(s->pdev.dev.loop, e1000_tx_delay_expired, s);
    s->autoneg_timer = loop_timer_new(s->pdev.dev.loop, e1000_autoneg_expired,
                                      s);
    e1000_eeprom_init(s);

    s->nic = net_nic_new(&e1000_net_ops, dev->id, "e1000", s->netdev,
                         dev->loop, s, errp);
    if (!s->nic) {
        e1000_free_resources(s);
        return false;
    }
    s->rx.nc = s->nic;
    e1000_instances++;
    e1000_reset(dev, DEVICE_RESET_FUNCTION);
    return true;
}

static void e1000_unrealize(Device *dev)
{
    E1000State *s = E1000(dev);

    net_nic_free(s->nic);
    s->nic = NULL;
    e1000_free_resources(s);
}

static const PropDef e1000_props[] = {
    PROP_DEF_STR("mac", E1000State, mac_str,
                 "MAC address in the EEPROM (default 52:54:00:12:34:56, "
                 "the last byte counting up per device)"),
    PROP_DEF_STR("netdev", E1000State, netdev,
                 "id of the -netdev backend to connect to"),
    PROP_DEF_END
};

/* ---- statistics (query-stats) ---- */

static const StatsSchema e1000_stats_device = {
    .provider = "e1000",
    .target = STATS_TARGET_DEVICE,
    .stats = (const StatsDesc[]) {
        { "interrupts", STATS_CUMULATIVE },         /* assertions */
        { "interrupts-delayed", STATS_CUMULATIVE }, /* by ITR */
        { NULL }
    },
};

/* Queue 0 is the receive ring, 1 the transmit ring. */
static const StatsSchema e1000_stats_queue = {
    .provider = "e1000",
    .target = STATS_TARGET_QUEUE,
    .stats = (const StatsDesc[]) {
        { "requests", STATS_CUMULATIVE },           /* descriptors used */
        { NULL }
    },
};

static const StatsSchema *const e1000_stats[] = {
    &nic_stats_device, &e1000_stats_device, &e1000_stats_queue, NULL
};

static void e1000_get_stats(Device *dev, StatsCollector *c)
{
    E1000State *s = E1000(dev);

    nic_report_stats(s->nic, c);
    if (stats_begin(c, &e1000_stats_device, -1)) {
        stats_put(c, "interrupts", s->irqs);
        stats_put(c, "interrupts-delayed", s->irqs_delayed);
    }
    if (stats_begin(c, &e1000_stats_queue, 0)) {
        stats_put(c, "requests", s->rx_descs);
    }
    if (stats_begin(c, &e1000_stats_queue, 1)) {
        stats_put(c, "requests", s->tx_descs);
    }
}

static const DeviceClass e1000_class = {
    .name = "e1000",
    .desc = "Intel 82540EM gigabit Ethernet controller",
    .instance_size = sizeof(E1000State),
    .is_pci = true,
    .base_props = pci_common_props,
    .props = e1000_props,
    .realize = e1000_realize,
    .unrealize = e1000_unrealize,
    .reset = e1000_reset,
    .run_state_changed = e1000_run_state_changed,
    .save_state = e1000_save_state,
    .load_state = e1000_load_state,
    .stats = e1000_stats,
    .get_stats = e1000_get_stats,
};

static void __attribute__((constructor)) e1000_register(void)
{
    device_class_register(&e1000_class);
}
