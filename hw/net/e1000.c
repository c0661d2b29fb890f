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
#include "hw/pci/pci.h"
#include "hw/net/e1000-regs.h"
#include "hw/net/nic.h"
#include "hw/net/trace.h"
#include "net/checksum.h"
#include "net/net.h"
#include "util/error.h"
#include "util/iov.h"
#include "util/loop.h"

#include <zlib.h>

/* Registers with handlers live below this offset (FFLT is the last). */
#define E1000_REG_END           0x6000
#define E1000_REG_COUNT         (E1000_REG_END >> 2)

#define E1000_TX_HDR_MAX        256
#define E1000_TX_BUF_SIZE       (65536 + E1000_TX_HDR_MAX)
#define E1000_RX_BOUNCE_SIZE    (E1000_MAX_FRAME_LPE + 64)
#define E1000_RX_MIN_BUF        256
/* Most descriptors one frame can take: the largest frame in 256-byte
 * buffers. */
#define E1000_RX_MAX_DESCS      (E1000_MAX_FRAME_LPE / E1000_RX_MIN_BUF + 1)
/* Descriptors handled per run of the TX bottom half. */
#define E1000_TX_BUDGET         256
/* Time the PHY takes to negotiate. */
#define E1000_AUTONEG_NS        (50 * 1000 * 1000LL)
#define E1000_MIN_FRAME_NO_CRC  (E1000_MIN_FRAME - E1000_CRC_LEN)

#define E1000_TCP_FLAG_FIN      0x01
#define E1000_TCP_FLAG_PSH      0x08

/* The parameters of a context descriptor. */
typedef struct E1000TxCtx {
    uint8_t ipcss, ipcso, tucss, tucso;
    uint16_t ipcse, tucse;
    uint8_t tucmd;
    uint8_t hdr_len;
    uint16_t mss;
    uint32_t paylen;
} E1000TxCtx;

/* The packet being assembled from TX descriptors. */
typedef struct E1000Tx {
    E1000TxCtx ctx;             /* last context descriptor */
    E1000TxCtx pctx;            /* the context of the current packet */
    uint8_t *buf;               /* E1000_TX_BUF_SIZE */
    uint32_t len;               /* bytes in buf */
    bool in_packet;             /* a data descriptor without EOP was seen */
    bool legacy;
    bool tse;
    uint8_t popts;
    bool ic;                    /* legacy checksum insertion */
    uint8_t css, cso;
    bool drop;                  /* error: discard until EOP */
    bool desc_err;              /* this descriptor's buffer was unreadable */
    bool hdr_saved;
    uint16_t segs;              /* TSO segments sent */
    uint32_t sent;              /* TSO payload bytes sent */
    uint8_t hdr[E1000_TX_HDR_MAX];  /* TSO header as the driver wrote it */
} E1000Tx;

/* Microwire EEPROM (93C46) and its bit-bang state. */
typedef struct E1000Eeprom {
    uint16_t data[E1000_EEPROM_WORDS];
    uint32_t eecd;              /* SK, CS, DI, FWE, REQ as last written */
    unsigned bits_in;           /* bits shifted in since CS rose */
    uint32_t shift_in;
    unsigned op, addr;
    bool reading;
    unsigned bit_out;           /* 0: the dummy bit, then D15 of word addr */
    bool out;                   /* the DO line */
    bool write_enabled;
} E1000Eeprom;

typedef struct E1000State {
    PCIDevice pdev;

    /* Properties. */
    char *mac_str;
    char *netdev;

    NetClient *nic;
    uint8_t mac[E1000_ETH_ALEN];
    uint32_t regs[E1000_REG_COUNT];
    uint16_t phy[E1000_PHY_REGS];
    E1000Eeprom eeprom;
    uint32_t ioaddr;

    bool cable_up;              /* the net layer's link */
    bool an_done;               /* autonegotiation complete */
    bool link_up;               /* STATUS.LU */
    bool irq_level;             /* INTx as driven */
    bool tx_blocked;            /* the backend is full: wait for writable */
    int64_t itr_next;           /* earliest next assertion (ITR) */

    E1000Tx tx;
    uint8_t *rx_bounce;
    NicRx rx;                   /* frames from the net layer, in the worker */

    DeviceBH *tx_bh;
    LoopTimer *itr_timer;
    LoopTimer *rdtr_timer, *radv_timer;
    LoopTimer *tidv_timer, *tadv_timer;
    LoopTimer *autoneg_timer;
} E1000State;

#define REG(s, off) ((s)->regs[(off) >> 2])

static unsigned e1000_instances;

static inline const char *e1000_id(E1000State *s)
{
    return s->pdev.dev.id;
}

/* ---- statistics ---- */

/* 32-bit counters stick at their maximum, as the hardware's do. */
static void e1000_stat_add(E1000State *s, uint32_t reg, uint32_t n)
{
    uint32_t *c = &REG(s, reg);

    *c = *c > UINT32_MAX - n ? UINT32_MAX : *c + n;
}

static void e1000_stat_inc(E1000State *s, uint32_t reg)
{
    e1000_stat_add(s, reg, 1);
}

/* A low/high register pair making up one 64-bit octet counter. */
static void e1000_stat_add64(E1000State *s, uint32_t lo, uint64_t n)
{
    uint64_t v = ((uint64_t)REG(s, lo + 4) << 32 | REG(s, lo)) + n;

    REG(s, lo) = v;
    REG(s, lo + 4) = v >> 32;
}

/* The size bucket of a frame (with CRC): PRC64 .. PRC1522 / PTC... */
static uint32_t e1000_size_bucket(uint32_t first, uint32_t len)
{
    static const uint32_t limits[] = { 64, 127, 255, 511, 1023 };

    for (unsigned i = 0; i < ARRAY_SIZE(limits); i++) {
        if (len <= limits[i]) {
            return first + 4 * i;
        }
    }
    return first + 4 * ARRAY_SIZE(limits);
}

static bool e1000_is_broadcast(const uint8_t *mac)
{
    static const uint8_t bcast[E1000_ETH_ALEN] = {
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff
    };

    return memcmp(mac, bcast, E1000_ETH_ALEN) == 0;
}

/* ---- interrupts ---- */

static void e1000_update_irq(E1000State *s)
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
                trace_e1000_irq_throttled(e1000_id(s), s->itr_next - now);
                loop_timer_mod(s->itr_timer, s->itr_next);
            }
            return;
        }
        s->itr_next = now + (int64_t)itr * E1000_ITR_UNIT_NS;
    }
    s->irq_level = true;
    trace_e1000_irq(e1000_id(s), REG(s, E1000_ICR), REG(s, E1000_IMS), 1);
    pci_set_irq(&s->pdev, true);
}

static void e1000_itr_expired(void *opaque)
{
    e1000_update_irq(opaque);
}

static void e1000_set_cause(E1000State *s, uint32_t causes)
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
static void e1000_rx_irq(E1000State *s)
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
static void e1000_tx_irq(E1000State *s, bool delayed)
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

static void e1000_link_status_changed(NetClient *nc)
{
    E1000State *s = nc->opaque;
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

/* ---- receive ---- */

static uint16_t e1000_vet(E1000State *s)
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
static bool e1000_loopback(E1000State *s)
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
static bool e1000_can_receive(NetClient *nc)
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

static ssize_t e1000_rx_frame(void *opaque, const struct iovec *iov,
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

static ssize_t e1000_receive(NetClient *nc, const struct iovec *iov,
                             int iovcnt)
{
    E1000State *s = nc->opaque;

    return nic_rx_deliver(&s->rx, iov, iovcnt);
}

/* ---- transmit ---- */

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

static bool e1000_tso_ctx_valid(const E1000TxCtx *c, uint8_t popts)
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

static void e1000_tx_load_ctx(E1000State *s, const uint8_t *d)
{
    E1000TxCtx *c = &s->tx.ctx;
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
            e1000_tx_load_ctx(s, d);
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
static void e1000_tx_run(void *opaque)
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
    while (tdh != tdt) {
        uint64_t da = base + (uint64_t)tdh * E1000_TXD_SIZE;
        uint8_t d[E1000_TXD_SIZE];

        if (s->tx_blocked) {
            break;                          /* until e1000_writable() */
        }
        if (!budget--) {
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
        progress = true;
    }
    if (irq.done) {
        e1000_tx_irq(s, !irq.now);
    }
    if (progress && tdh == tdt) {
        e1000_set_cause(s, E1000_ICR_TXQE);
    }
}

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
    E1000State *s = (E1000State *)dev;

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
    E1000State *s = (E1000State *)dev;

    if (running) {
        device_bh_schedule(s->tx_bh);
        nic_rx_flush(&s->rx);
    }
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
    E1000State *s = (E1000State *)dev;
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
    E1000State *s = (E1000State *)dev;

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
};

static void __attribute__((constructor)) e1000_register(void)
{
    device_class_register(&e1000_class);
}
