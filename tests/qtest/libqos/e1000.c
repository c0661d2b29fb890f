/*
 * libqos driver for the e1000 (82540EM): what Linux's e1000 driver does,
 * reduced to what the tests need.
 */
#include "util/osdep.h"

#include "tests/qtest/libqos/qos-util.h"
#include "tests/qtest/libqos/e1000.h"

#define QE1000_POLL_LIMIT       1000

QE1000 *qe1000_new(QPCIDevice *pdev, GuestMem *gm)
{
    QE1000 *e = g_new0(QE1000, 1);
    uint16_t cmd;

    e->pdev = pdev;
    e->gm = gm;
    qpci_device_enable(pdev);
    cmd = qpci_config_readw(pdev, PCI_COMMAND);
    qpci_config_writew(pdev, PCI_COMMAND, cmd | PCI_COMMAND_IO);
    return e;
}

void qe1000_free(QE1000 *e)
{
    g_free(e);
}

/* ---- registers ---- */

uint32_t qe1000_readl(QE1000 *e, uint32_t reg)
{
    return qpci_bar_readl(e->pdev, E1000_BAR_MMIO, reg);
}

static void qe1000_note_write(QE1000 *e, uint32_t reg, uint32_t val)
{
    if (reg == E1000_RCTL) {
        e->rctl = val;
    }
}

void qe1000_writel(QE1000 *e, uint32_t reg, uint32_t val)
{
    qe1000_note_write(e, reg, val);
    qpci_bar_writel(e->pdev, E1000_BAR_MMIO, reg, val);
}

void qe1000_writel_posted(QE1000 *e, uint32_t reg, uint32_t val)
{
    qe1000_note_write(e, reg, val);
    qpci_bar_writel_posted(e->pdev, E1000_BAR_MMIO, reg, val);
}

uint32_t qe1000_io_readl(QE1000 *e, uint32_t reg)
{
    qpci_bar_writel(e->pdev, E1000_BAR_IO, E1000_IOADDR, reg);
    return qpci_bar_readl(e->pdev, E1000_BAR_IO, E1000_IODATA);
}

void qe1000_io_writel(QE1000 *e, uint32_t reg, uint32_t val)
{
    qe1000_note_write(e, reg, val);
    qpci_bar_writel(e->pdev, E1000_BAR_IO, E1000_IOADDR, reg);
    qpci_bar_writel(e->pdev, E1000_BAR_IO, E1000_IODATA, val);
}

void qe1000_sleep(QE1000 *e, int ms)
{
    int64_t deadline = qos_deadline(ms);

    while (qos_remaining_ms(deadline) > 0) {
        if (!vfu_service(qpci_client(e->pdev), qos_remaining_ms(deadline))) {
            qos_fail("the daemon closed the e1000's connection");
        }
    }
}

/* ---- EEPROM: Microwire bit-banging, in the order Linux uses ---- */

static void ee_write(QE1000 *e, uint32_t eecd)
{
    qe1000_writel(e, E1000_EECD, eecd);
}

static void ee_clock(QE1000 *e, uint32_t *eecd)
{
    *eecd |= E1000_EECD_SK;
    ee_write(e, *eecd);
    *eecd &= ~E1000_EECD_SK;
    ee_write(e, *eecd);
}

static uint32_t ee_acquire(QE1000 *e)
{
    uint32_t eecd = qe1000_readl(e, E1000_EECD);
    unsigned i;

    eecd |= E1000_EECD_REQ;
    ee_write(e, eecd);
    for (i = 0; i < QE1000_POLL_LIMIT; i++) {
        if (qe1000_readl(e, E1000_EECD) & E1000_EECD_GNT) {
            break;
        }
    }
    qos_assert(i < QE1000_POLL_LIMIT, "EECD.GNT never followed EECD.REQ");
    eecd &= ~(E1000_EECD_DI | E1000_EECD_SK);
    ee_write(e, eecd);
    eecd |= E1000_EECD_CS;
    ee_write(e, eecd);
    return eecd;
}

static void ee_release(QE1000 *e, uint32_t eecd)
{
    eecd &= ~(E1000_EECD_CS | E1000_EECD_DI);
    ee_write(e, eecd);
    ee_clock(e, &eecd);
    eecd &= ~E1000_EECD_REQ;
    ee_write(e, eecd);
}

/* Deselect and reselect: the end of one command. */
static void ee_standby(QE1000 *e, uint32_t *eecd)
{
    *eecd &= ~(E1000_EECD_CS | E1000_EECD_SK);
    ee_write(e, *eecd);
    *eecd |= E1000_EECD_SK;
    ee_write(e, *eecd);
    *eecd |= E1000_EECD_CS;
    ee_write(e, *eecd);
    *eecd &= ~E1000_EECD_SK;
    ee_write(e, *eecd);
}

static void ee_shift_out(QE1000 *e, uint32_t *eecd, uint32_t data,
                         unsigned count)
{
    for (uint32_t mask = 1u << (count - 1); mask; mask >>= 1) {
        *eecd &= ~E1000_EECD_DI;
        if (data & mask) {
            *eecd |= E1000_EECD_DI;
        }
        ee_write(e, *eecd);
        ee_clock(e, eecd);
    }
    *eecd &= ~E1000_EECD_DI;
    ee_write(e, *eecd);
}

static uint16_t ee_shift_in(QE1000 *e, uint32_t *eecd)
{
    uint16_t data = 0;

    for (unsigned i = 0; i < 16; i++) {
        uint32_t v;

        data <<= 1;
        *eecd |= E1000_EECD_SK;
        ee_write(e, *eecd);
        v = qe1000_readl(e, E1000_EECD);
        if (v & E1000_EECD_DO) {
            data |= 1;
        }
        *eecd &= ~E1000_EECD_SK;
        ee_write(e, *eecd);
    }
    return data;
}

void qe1000_eeprom_read(QE1000 *e, unsigned word, unsigned n,
                        uint16_t *data)
{
    uint32_t eecd = ee_acquire(e);

    for (unsigned i = 0; i < n; i++) {
        ee_shift_out(e, &eecd, E1000_EEPROM_OP_READ, 3);
        ee_shift_out(e, &eecd, word + i, E1000_EEPROM_ADDR_BITS);
        data[i] = ee_shift_in(e, &eecd);
        ee_standby(e, &eecd);
    }
    ee_release(e, eecd);
}

void qe1000_eeprom_write(QE1000 *e, unsigned word, uint16_t data)
{
    uint32_t eecd = ee_acquire(e);
    unsigned i;

    /* EWEN: start, 00, 11 then don't-care address bits. */
    ee_shift_out(e, &eecd, (E1000_EEPROM_OP_EXT << 2) |
                 E1000_EEPROM_EXT_EWEN, 5);
    ee_shift_out(e, &eecd, 0, E1000_EEPROM_ADDR_BITS - 2);
    ee_standby(e, &eecd);
    ee_shift_out(e, &eecd, E1000_EEPROM_OP_WRITE, 3);
    ee_shift_out(e, &eecd, word, E1000_EEPROM_ADDR_BITS);
    ee_shift_out(e, &eecd, data, 16);
    /* Toggle CS: the EEPROM programs the word and raises DO when done. */
    eecd &= ~E1000_EECD_CS;
    ee_write(e, eecd);
    eecd |= E1000_EECD_CS;
    ee_write(e, eecd);
    for (i = 0; i < QE1000_POLL_LIMIT; i++) {
        if (qe1000_readl(e, E1000_EECD) & E1000_EECD_DO) {
            break;
        }
    }
    qos_assert(i < QE1000_POLL_LIMIT, "EEPROM never signalled ready");
    ee_standby(e, &eecd);
    ee_shift_out(e, &eecd, (E1000_EEPROM_OP_EXT << 2) |
                 E1000_EEPROM_EXT_EWDS, 5);
    ee_shift_out(e, &eecd, 0, E1000_EEPROM_ADDR_BITS - 2);
    ee_release(e, eecd);
}

uint16_t qe1000_eerd_read(QE1000 *e, unsigned word)
{
    qe1000_writel(e, E1000_EERD, (word << E1000_EERD_ADDR_SHIFT) |
                  E1000_EERD_START);
    for (unsigned i = 0; i < QE1000_POLL_LIMIT; i++) {
        uint32_t v = qe1000_readl(e, E1000_EERD);

        if (v & E1000_EERD_DONE) {
            return v >> E1000_EERD_DATA_SHIFT;
        }
    }
    qos_fail("EERD read of word %u never completed", word);
}

/* ---- PHY ---- */

uint32_t qe1000_mdic(QE1000 *e, uint32_t cmd)
{
    qe1000_writel(e, E1000_MDIC, cmd);
    for (unsigned i = 0; i < QE1000_POLL_LIMIT; i++) {
        uint32_t v = qe1000_readl(e, E1000_MDIC);

        if (v & E1000_MDIC_READY) {
            return v;
        }
    }
    qos_fail("MDIC 0x%08x never became ready", cmd);
}

uint16_t qe1000_phy_read(QE1000 *e, unsigned reg)
{
    uint32_t v = qe1000_mdic(e, (reg << E1000_MDIC_REG_SHIFT) |
                             (E1000_PHY_ADDR << E1000_MDIC_PHY_SHIFT) |
                             E1000_MDIC_OP_READ);

    qos_assert(!(v & E1000_MDIC_ERROR), "MDIC read of PHY register %u: "
               "error (MDIC 0x%08x)", reg, v);
    return v & E1000_MDIC_DATA_MASK;
}

void qe1000_phy_write(QE1000 *e, unsigned reg, uint16_t val)
{
    uint32_t v = qe1000_mdic(e, (reg << E1000_MDIC_REG_SHIFT) |
                             (E1000_PHY_ADDR << E1000_MDIC_PHY_SHIFT) |
                             E1000_MDIC_OP_WRITE | val);

    qos_assert(!(v & E1000_MDIC_ERROR), "MDIC write of PHY register %u: "
               "error (MDIC 0x%08x)", reg, v);
}

/* ---- bring-up ---- */

void qe1000_reset(QE1000 *e)
{
    uint32_t ctrl, ctrl_ext;

    qe1000_writel(e, E1000_IMC, 0xffffffff);
    qe1000_writel(e, E1000_RCTL, 0);
    qe1000_writel(e, E1000_TCTL, E1000_TCTL_PSP);
    qe1000_readl(e, E1000_STATUS);
    qe1000_sleep(e, 10);
    /* The 82540 cannot acknowledge the reset write: Linux uses I/O. */
    ctrl = qe1000_readl(e, E1000_CTRL);
    qe1000_io_writel(e, E1000_CTRL, ctrl | E1000_CTRL_RST);
    qe1000_sleep(e, 5);
    ctrl_ext = qe1000_readl(e, E1000_CTRL_EXT);
    qe1000_writel(e, E1000_CTRL_EXT, ctrl_ext | E1000_CTRL_EXT_EE_RST);
    qe1000_sleep(e, 2);
    qe1000_writel(e, E1000_IMC, 0xffffffff);
    qe1000_readl(e, E1000_ICR);
    e->rctl = 0;
    e->initialized = false;
}

static void qe1000_setup_phy(QE1000 *e)
{
    uint32_t ctrl = qe1000_readl(e, E1000_CTRL);
    uint16_t id1, id2, v;

    ctrl |= E1000_CTRL_SLU;
    ctrl &= ~(E1000_CTRL_FRCSPD | E1000_CTRL_FRCDPX);
    qe1000_writel(e, E1000_CTRL, ctrl);

    id1 = qe1000_phy_read(e, E1000_PHY_ID1);
    id2 = qe1000_phy_read(e, E1000_PHY_ID2);
    qos_assert(id1 == E1000_PHY_ID1_M88 &&
               (id2 & ~E1000_PHY_ID_REV_MASK) == E1000_PHY_ID2_82540,
               "PHY id %04x:%04x is not an M88E1011", id1, id2);

    /* Automatic MDI/MDI-X, then a software reset to apply it. */
    v = qe1000_phy_read(e, E1000_M88_SPEC_CTRL);
    qe1000_phy_write(e, E1000_M88_SPEC_CTRL, v | 0x0060);
    v = qe1000_phy_read(e, E1000_M88_EXT_SPEC_CTRL);
    qe1000_phy_write(e, E1000_M88_EXT_SPEC_CTRL, v | 0x0070);
    v = qe1000_phy_read(e, E1000_PHY_CTRL);
    qe1000_phy_write(e, E1000_PHY_CTRL, v | E1000_PHY_CTRL_RESET);

    /* Advertise everything and restart autonegotiation. */
    qe1000_phy_write(e, E1000_PHY_AN_ADV,
                     E1000_PHY_AN_SELECTOR | E1000_PHY_AN_10HD |
                     E1000_PHY_AN_10FD | E1000_PHY_AN_100HD |
                     E1000_PHY_AN_100FD | E1000_PHY_AN_PAUSE |
                     E1000_PHY_AN_ASM_DIR);
    qe1000_phy_write(e, E1000_PHY_1000T_CTRL, E1000_PHY_1000T_FD);
    v = qe1000_phy_read(e, E1000_PHY_CTRL);
    qe1000_phy_write(e, E1000_PHY_CTRL, v | E1000_PHY_CTRL_AN_ENABLE |
                     E1000_PHY_CTRL_RESTART_AN);

    /* Flow control: the 802.3x pause address and type. */
    qe1000_writel(e, E1000_FCAL, 0x00c28001);
    qe1000_writel(e, E1000_FCAH, 0x0100);
    qe1000_writel(e, E1000_FCT, 0x8808);
    qe1000_writel(e, E1000_FCTTV, 0xffff);
}

static void qe1000_setup_rings(QE1000 *e)
{
    if (!e->tx_ring) {
        e->tx_ring = guest_alloc_aligned(e->gm, e->tx_n * E1000_TXD_SIZE,
                                         128);
        e->tx_bufs = guest_alloc_aligned(e->gm,
                                         (uint64_t)e->tx_n *
                                         QE1000_TX_SLOT_SIZE, 4096);
        e->rx_ring = guest_alloc_aligned(e->gm, e->rx_n * E1000_RXD_SIZE,
                                         128);
        e->rx_bufs = guest_alloc_aligned(e->gm,
                                         (uint64_t)e->rx_n *
                                         QE1000_RX_SLOT_SIZE, 4096);
    }
    guest_memset(e->gm, e->tx_ring, 0, e->tx_n * E1000_TXD_SIZE);
    guest_memset(e->gm, e->rx_ring, 0, e->rx_n * E1000_RXD_SIZE);
    for (unsigned i = 0; i < e->rx_n; i++) {
        guest_writeq(e->gm, qe1000_rx_desc(e, i),
                     e->rx_bufs + (uint64_t)i * QE1000_RX_SLOT_SIZE);
    }
    e->tx_tail = e->tx_clean = 0;
    e->rx_next = 0;

    qe1000_writel(e, E1000_TDBAL, (uint32_t)e->tx_ring);
    qe1000_writel(e, E1000_TDBAH, e->tx_ring >> 32);
    qe1000_writel(e, E1000_TDLEN, e->tx_n * E1000_TXD_SIZE);
    qe1000_writel(e, E1000_TDH, 0);
    qe1000_writel(e, E1000_TDT, 0);
    qe1000_writel(e, E1000_TIPG, 0x00602008);
    qe1000_writel(e, E1000_TIDV, 0);
    qe1000_writel(e, E1000_TADV, 0);
    qe1000_writel(e, E1000_TCTL, E1000_TCTL_EN | E1000_TCTL_PSP |
                  (0x0f << 4) | (0x40 << 12));

    qe1000_writel(e, E1000_RDTR, 0);
    qe1000_writel(e, E1000_RADV, 0);
    qe1000_writel(e, E1000_ITR, 0);
    qe1000_writel(e, E1000_RDLEN, e->rx_n * E1000_RXD_SIZE);
    qe1000_writel(e, E1000_RDBAL, (uint32_t)e->rx_ring);
    qe1000_writel(e, E1000_RDBAH, e->rx_ring >> 32);
    qe1000_writel(e, E1000_RDH, 0);
    qe1000_writel(e, E1000_RDT, 0);
    qe1000_writel(e, E1000_RXCSUM, qe1000_readl(e, E1000_RXCSUM) |
                  E1000_RXCSUM_TUOFL);
}

void qe1000_init(QE1000 *e, const QE1000Config *cfg)
{
    static const QE1000Config defaults;
    uint16_t sum = 0;

    if (!cfg) {
        cfg = &defaults;
    }
    qos_assert(!(cfg->rx_ring % 8) && !(cfg->tx_ring % 8),
               "ring sizes must be multiples of 8");
    if (e->tx_ring) {
        qos_assert((!cfg->tx_ring || cfg->tx_ring == e->tx_n) &&
                   (!cfg->rx_ring || cfg->rx_ring == e->rx_n),
                   "ring sizes cannot change after the first init");
    } else {
        e->tx_n = cfg->tx_ring ? cfg->tx_ring : QE1000_RING_DEFAULT;
        e->rx_n = cfg->rx_ring ? cfg->rx_ring : QE1000_RING_DEFAULT;
    }

    qe1000_reset(e);

    /* e1000_validate_eeprom_checksum, e1000_read_mac_addr */
    qe1000_eeprom_read(e, 0, E1000_EEPROM_WORDS, e->eeprom);
    for (unsigned i = 0; i < E1000_EEPROM_WORDS; i++) {
        sum += e->eeprom[i];
    }
    qos_assert(sum == E1000_EEPROM_SUM, "EEPROM checksum 0x%04x, expected "
               "0x%04x", sum, E1000_EEPROM_SUM);
    for (unsigned i = 0; i < 3; i++) {
        e->mac[2 * i] = e->eeprom[i] & 0xff;
        e->mac[2 * i + 1] = e->eeprom[i] >> 8;
    }

    /* e1000_init_hw: VLAN off (VET 0 on the 82540), addresses, hashes. */
    qe1000_writel(e, E1000_VET, 0);
    for (unsigned i = 0; i < E1000_VFTA_COUNT; i++) {
        qe1000_writel(e, E1000_VFTA + 4 * i, 0);
    }
    qe1000_writel(e, E1000_RAL(0), ldl_le_p(e->mac));
    qe1000_writel(e, E1000_RAH(0), lduw_le_p(e->mac + 4) | E1000_RAH_AV);
    for (unsigned i = 1; i < E1000_RA_COUNT; i++) {
        qe1000_writel(e, E1000_RAL(i), 0);
        qe1000_writel(e, E1000_RAH(i), 0);
    }
    for (unsigned i = 0; i < E1000_MTA_COUNT; i++) {
        qe1000_writel(e, E1000_MTA + 4 * i, 0);
    }
    qe1000_setup_phy(e);

    /* e1000_configure: rings, then the receiver; interrupts last. */
    qe1000_setup_rings(e);
    qe1000_writel(e, E1000_RCTL, E1000_RCTL_EN | E1000_RCTL_BAM | cfg->rctl);
    qe1000_writel(e, E1000_RDT, e->rx_n - 1);
    qe1000_readl(e, E1000_ICR);
    qe1000_writel(e, E1000_IMS, cfg->ims ? cfg->ims : QE1000_IMS_DEFAULT);
    e->initialized = true;

    if (!cfg->no_link_wait && !qe1000_wait_link(e, true, QOS_TIMEOUT_MS)) {
        qos_fail("e1000 link did not come up (STATUS 0x%08x, PHY status "
                 "0x%04x)", qe1000_readl(e, E1000_STATUS),
                 qe1000_phy_read(e, E1000_PHY_STATUS));
    }
}

bool qe1000_wait_link(QE1000 *e, bool up, int timeout_ms)
{
    int64_t deadline = qos_deadline(timeout_ms);

    for (;;) {
        bool lu = qe1000_readl(e, E1000_STATUS) & E1000_STATUS_LU;

        if (lu == up) {
            return true;
        }
        if (!qos_remaining_ms(deadline)) {
            return false;
        }
        qe1000_sleep(e, 2);
    }
}

/* ---- transmit ---- */

uint64_t qe1000_tx_slot_buf(QE1000 *e, unsigned i)
{
    return e->tx_bufs + (uint64_t)i * QE1000_TX_SLOT_SIZE;
}

static uint64_t qe1000_tx_desc(QE1000 *e, unsigned i)
{
    return e->tx_ring + (uint64_t)i * E1000_TXD_SIZE;
}

uint8_t qe1000_tx_status(QE1000 *e, unsigned i)
{
    return guest_readb(e->gm, qe1000_tx_desc(e, i) + E1000_TXD_STATUS);
}

static unsigned qe1000_tx_free(QE1000 *e)
{
    return e->tx_n - 1 - (e->tx_tail + e->tx_n - e->tx_clean) % e->tx_n;
}

/* Wait until @need descriptors are free, reclaiming through TDH. */
static void qe1000_tx_reserve(QE1000 *e, unsigned need)
{
    int64_t deadline = qos_deadline(QOS_TIMEOUT_MS);

    qos_assert(need < e->tx_n, "%u descriptors do not fit a ring of %u",
               need, e->tx_n);
    while (qe1000_tx_free(e) < need) {
        e->tx_clean = qe1000_readl(e, E1000_TDH) % e->tx_n;
        if (qe1000_tx_free(e) >= need) {
            break;
        }
        if (!qos_remaining_ms(deadline)) {
            qos_fail("TX ring stuck: TDH %u, TDT %u",
                     qe1000_readl(e, E1000_TDH), e->tx_tail);
        }
        qe1000_sleep(e, 1);
    }
}

static void qe1000_tx_put(QE1000 *e, const uint8_t *d)
{
    guest_memwrite(e->gm, qe1000_tx_desc(e, e->tx_tail), d, E1000_TXD_SIZE);
    e->tx_tail = (e->tx_tail + 1) % e->tx_n;
}

void qe1000_tx(QE1000 *e, const void *frame, size_t len,
               const QE1000TxOpts *o)
{
    static const QE1000TxOpts plain;
    size_t split, off = 0;
    unsigned ndata;
    bool legacy;

    if (!o) {
        o = &plain;
    }
    qos_assert(e->initialized, "qe1000_tx before qe1000_init");
    split = o->split ? o->split : QE1000_TX_SLOT_SIZE;
    qos_assert(split <= QE1000_TX_SLOT_SIZE, "split %zu too large", split);
    legacy = o->legacy || (!o->ctx && !o->tso && !o->popts);
    ndata = len ? DIV_ROUND_UP(len, split) : 1;
    qe1000_tx_reserve(e, ndata + (o->ctx ? 1 : 0));

    if (o->ctx) {
        uint8_t d[E1000_TXD_SIZE] = { 0 };
        uint32_t paylen = o->paylen ? o->paylen : len - o->hdr_len;
        uint8_t tucmd = o->tucmd | E1000_TXD_CMD_DEXT |
                        (o->tso ? E1000_TUCMD_TSE : 0) |
                        (o->ide ? E1000_TXD_CMD_IDE : 0);

        d[E1000_CTXD_IPCSS] = o->ipcss;
        d[E1000_CTXD_IPCSO] = o->ipcso;
        stw_le_p(d + E1000_CTXD_IPCSE, o->ipcse);
        d[E1000_CTXD_TUCSS] = o->tucss;
        d[E1000_CTXD_TUCSO] = o->tucso;
        stw_le_p(d + E1000_CTXD_TUCSE, o->tucse);
        stl_le_p(d + E1000_CTXD_CMDLEN, (paylen & E1000_TXD_LEN_MASK) |
                 (E1000_TXD_DTYP_CONTEXT << E1000_TXD_DTYP_SHIFT) |
                 ((uint32_t)tucmd << 24));
        d[E1000_CTXD_HDRLEN] = o->hdr_len;
        stw_le_p(d + E1000_CTXD_MSS, o->mss);
        qe1000_tx_put(e, d);
    }
    for (unsigned i = 0; i < ndata; i++) {
        uint8_t d[E1000_TXD_SIZE] = { 0 };
        size_t chunk = MIN(split, len - off);
        uint64_t buf = qe1000_tx_slot_buf(e, e->tx_tail);
        bool last = i == ndata - 1;
        uint8_t cmd = E1000_TXD_CMD_IFCS;

        guest_memwrite(e->gm, buf, (const uint8_t *)frame + off, chunk);
        if (last) {
            cmd |= E1000_TXD_CMD_EOP | E1000_TXD_CMD_RS;
        }
        if (o->vle) {
            cmd |= E1000_TXD_CMD_VLE;
        }
        if (o->ide) {
            cmd |= E1000_TXD_CMD_IDE;
        }
        stq_le_p(d + E1000_TXD_ADDR, buf);
        stw_le_p(d + E1000_TXD_SPECIAL, o->vlan);
        if (legacy) {
            if (o->ic) {
                cmd |= E1000_TXD_CMD_IC;
                d[E1000_TXD_CSS] = o->css;
                d[E1000_TXD_CSO] = o->cso;
            }
            stw_le_p(d + E1000_TXD_LENGTH, chunk);
            d[E1000_TXD_CMD] = cmd;
        } else {
            cmd |= E1000_TXD_CMD_DEXT | (o->tso ? E1000_TXD_CMD_TSE : 0);
            stl_le_p(d + E1000_TXD_LENGTH, chunk |
                     (E1000_TXD_DTYP_DATA << E1000_TXD_DTYP_SHIFT) |
                     ((uint32_t)cmd << 24));
            d[E1000_DATD_POPTS] = i == 0 ? o->popts : 0;
        }
        qe1000_tx_put(e, d);
        off += chunk;
    }
    smp_wmb();
    qe1000_writel_posted(e, E1000_TDT, e->tx_tail);
}

void qe1000_tx_raw(QE1000 *e, const uint8_t (*descs)[E1000_TXD_SIZE],
                   unsigned n)
{
    qe1000_tx_reserve(e, n);
    for (unsigned i = 0; i < n; i++) {
        qe1000_tx_put(e, descs[i]);
    }
    smp_wmb();
    qe1000_writel_posted(e, E1000_TDT, e->tx_tail);
}

void qe1000_tx_wait(QE1000 *e)
{
    int64_t deadline = qos_deadline(QOS_TIMEOUT_MS);

    for (;;) {
        uint32_t tdh = qe1000_readl(e, E1000_TDH);

        if (tdh == e->tx_tail) {
            e->tx_clean = e->tx_tail;
            return;
        }
        if (!qos_remaining_ms(deadline)) {
            qos_fail("TX not done: TDH %u, TDT %u", tdh, e->tx_tail);
        }
        qe1000_sleep(e, 1);
    }
}

/* ---- receive ---- */

uint64_t qe1000_rx_desc(QE1000 *e, unsigned i)
{
    return e->rx_ring + (uint64_t)i * E1000_RXD_SIZE;
}

ssize_t qe1000_rx(QE1000 *e, void *buf, size_t max, QE1000RxInfo *info,
                  int timeout_ms)
{
    static uint8_t frame[QE1000_MAX_FRAME + 64];
    int64_t deadline = qos_deadline(timeout_ms);
    QE1000RxInfo local;
    size_t total = 0;
    unsigned last = 0;

    if (!info) {
        info = &local;
    }
    memset(info, 0, sizeof(*info));
    qos_assert(e->initialized, "qe1000_rx before qe1000_init");
    for (;;) {
        uint64_t d = qe1000_rx_desc(e, e->rx_next);
        uint8_t status = guest_readb(e->gm, d + E1000_RXD_STATUS);
        uint16_t len;

        if (!(status & E1000_RXD_STAT_DD)) {
            if (!qos_remaining_ms(deadline)) {
                if (info->ndesc) {
                    qos_fail("RX frame without EOP after %u descriptors",
                             info->ndesc);
                }
                return -1;
            }
            qe1000_sleep(e, 1);
            continue;
        }
        smp_rmb();
        len = guest_readw(e->gm, d + E1000_RXD_LENGTH);
        qos_assert(len <= QE1000_RX_SLOT_SIZE && total + len <= sizeof(frame),
                   "RX descriptor %u: length %u", e->rx_next, len);
        guest_memread(e->gm, e->rx_bufs +
                      (uint64_t)e->rx_next * QE1000_RX_SLOT_SIZE,
                      frame + total, len);
        total += len;
        info->ndesc++;
        info->status = status;
        info->errors = guest_readb(e->gm, d + E1000_RXD_ERRORS);
        info->csum = guest_readw(e->gm, d + E1000_RXD_CSUM);
        info->special = guest_readw(e->gm, d + E1000_RXD_SPECIAL);
        guest_writeb(e->gm, d + E1000_RXD_STATUS, 0);
        last = e->rx_next;
        e->rx_next = (e->rx_next + 1) % e->rx_n;
        if (status & E1000_RXD_STAT_EOP) {
            break;
        }
    }
    /* The cleaned descriptors go back: the last one is the new spare. */
    smp_wmb();
    qe1000_writel_posted(e, E1000_RDT, last);

    info->wire_len = total;
    info->has_crc = !(e->rctl & E1000_RCTL_SECRC);
    if (info->has_crc) {
        qos_assert(total >= E1000_CRC_LEN, "RX frame of %zu bytes has no "
                   "room for its CRC", total);
        total -= E1000_CRC_LEN;
        info->crc_ok = ldl_le_p(frame + total) ==
                       qe1000_crc32(frame, total);
    }
    qos_assert(total <= max, "RX frame of %zu bytes, buffer of %zu", total,
               max);
    memcpy(buf, frame, total);
    info->len = total;
    return total;
}

uint32_t qe1000_crc32(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    uint32_t c = 0xffffffffu;

    while (len--) {
        c ^= *p++;
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        }
    }
    return c ^ 0xffffffffu;
}
