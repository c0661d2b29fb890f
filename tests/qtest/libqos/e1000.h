/*
 * A guest driver for the e1000 (Intel 82540EM) device: register access
 * through BAR0 and the BAR1 I/O window, the EEPROM and the PHY, and
 * descriptor rings for transmit and receive in guest memory.
 *
 *     QE1000 *e = qe1000_new(pdev, gm);   // enables I/O, memory, master
 *     qe1000_init(e, NULL);               // as Linux's e1000 brings it up
 *     qe1000_tx(e, frame, len, NULL);     // one legacy descriptor chain
 *     n = qe1000_rx(e, buf, sizeof(buf), &info, QOS_TIMEOUT_MS);
 *
 * qe1000_init() follows the order of Linux's e1000 driver: global reset
 * through CTRL.RST (written through the I/O window, as Linux does for the
 * 82540), the MAC address and checksum from the bit-banged EEPROM, PHY
 * setup through MDIC and autonegotiation, the transmit and receive rings,
 * then the interrupt mask.
 *
 * Every receive buffer is 16 KiB, so tests may change RCTL's buffer size
 * freely.  Waits are bounded; harness failures go through qos_fail().
 */
#ifndef LIBQOS_E1000_H
#define LIBQOS_E1000_H

#include "util/osdep.h"
#include "hw/net/e1000-regs.h"
#include "tests/qtest/libqos/guest-mem.h"
#include "tests/qtest/libqos/pci.h"

#define QE1000_RING_DEFAULT     64
#define QE1000_TX_SLOT_SIZE     4096        /* data per TX descriptor */
#define QE1000_RX_SLOT_SIZE     16384       /* buffer per RX descriptor */
#define QE1000_MAX_FRAME        (65536 + 256)

/* The interrupt causes Linux's e1000 enables. */
#define QE1000_IMS_DEFAULT      (E1000_ICR_RXT0 | E1000_ICR_TXDW | \
                                 E1000_ICR_RXDMT0 | E1000_ICR_RXSEQ | \
                                 E1000_ICR_LSC)

typedef struct QE1000Config {
    unsigned rx_ring, tx_ring;  /* descriptors, multiple of 8 (0: 64) */
    uint32_t rctl;              /* extra RCTL bits besides EN | BAM */
    uint32_t ims;               /* 0: QE1000_IMS_DEFAULT */
    bool no_link_wait;          /* return before STATUS.LU */
} QE1000Config;

typedef struct QE1000 {
    QPCIDevice *pdev;
    GuestMem *gm;
    uint8_t mac[E1000_ETH_ALEN];   /* from the EEPROM */
    uint16_t eeprom[E1000_EEPROM_WORDS];
    uint32_t rctl;              /* last written through qe1000_writel */
    unsigned rx_n, tx_n;
    uint64_t rx_ring, tx_ring;  /* guest addresses */
    uint64_t rx_bufs, tx_bufs;
    unsigned rx_next;           /* next RX descriptor to look at */
    unsigned tx_tail;           /* next TX descriptor to fill */
    unsigned tx_clean;          /* oldest TX descriptor not reclaimed */
    bool initialized;
} QE1000;

/* Options for one transmitted frame (NULL: legacy descriptors). */
typedef struct QE1000TxOpts {
    bool legacy;                /* legacy descriptors even with options */
    bool ic;                    /* legacy: insert checksum at cso */
    uint8_t css, cso;
    bool ctx;                   /* precede with a context descriptor */
    uint8_t ipcss, ipcso, tucss, tucso;
    uint16_t ipcse, tucse;
    uint8_t tucmd;              /* E1000_TUCMD_* */
    uint8_t hdr_len;
    uint16_t mss;
    uint32_t paylen;            /* 0: len - hdr_len */
    bool tso;                   /* data descriptors with TSE */
    uint8_t popts;              /* E1000_TXD_POPTS_* */
    bool vle;                   /* insert VLAN tag @vlan */
    uint16_t vlan;
    bool ide;                   /* interrupt delay enable */
    size_t split;               /* bytes per descriptor (0: slot size) */
} QE1000TxOpts;

typedef struct QE1000RxInfo {
    uint32_t len;               /* frame bytes returned (without CRC) */
    uint32_t wire_len;          /* bytes the device wrote (with CRC) */
    unsigned ndesc;
    uint8_t status, errors;     /* of the EOP descriptor */
    uint16_t csum, special;
    bool has_crc;               /* RCTL.SECRC was clear */
    bool crc_ok;                /* the trailing CRC matched */
} QE1000RxInfo;

/* Take over @pdev (enables I/O, memory and bus mastering). */
QE1000 *qe1000_new(QPCIDevice *pdev, GuestMem *gm);
void qe1000_free(QE1000 *e);

/* ---- registers ---- */

uint32_t qe1000_readl(QE1000 *e, uint32_t reg);
void qe1000_writel(QE1000 *e, uint32_t reg, uint32_t val);
/* A posted MMIO write, as a VMM sends them. */
void qe1000_writel_posted(QE1000 *e, uint32_t reg, uint32_t val);
/* Through the I/O BAR: IOADDR then IODATA. */
uint32_t qe1000_io_readl(QE1000 *e, uint32_t reg);
void qe1000_io_writel(QE1000 *e, uint32_t reg, uint32_t val);
/* Answer the daemon's requests for @ms (let time pass). */
void qe1000_sleep(QE1000 *e, int ms);

/* ---- EEPROM and PHY ---- */

/* Read @n words from @word on by bit-banging EECD (Microwire, as Linux). */
void qe1000_eeprom_read(QE1000 *e, unsigned word, unsigned n,
                        uint16_t *data);
/* Write one word (EWEN, WRITE, EWDS) by bit-banging. */
void qe1000_eeprom_write(QE1000 *e, unsigned word, uint16_t data);
/* Read one word through EERD. */
uint16_t qe1000_eerd_read(QE1000 *e, unsigned word);
/* Start an MDIC access and poll READY; returns the final MDIC value. */
uint32_t qe1000_mdic(QE1000 *e, uint32_t cmd);
/* PHY register access at PHY address 1; fails on MDIC errors. */
uint16_t qe1000_phy_read(QE1000 *e, unsigned reg);
void qe1000_phy_write(QE1000 *e, unsigned reg, uint16_t val);

/* ---- bring-up ---- */

/* Global reset (CTRL.RST through I/O), EEPROM reload, all masked. */
void qe1000_reset(QE1000 *e);
/* The whole bring-up, as Linux's e1000_probe + e1000_open. */
void qe1000_init(QE1000 *e, const QE1000Config *cfg);
/* Poll STATUS.LU until it equals @up; false on timeout. */
bool qe1000_wait_link(QE1000 *e, bool up, int timeout_ms);

/* ---- transmit ---- */

/* Queue one frame and ring TDT (does not wait). */
void qe1000_tx(QE1000 *e, const void *frame, size_t len,
               const QE1000TxOpts *opts);
/* Put raw descriptors at the tail and ring TDT. */
void qe1000_tx_raw(QE1000 *e, const uint8_t (*descs)[E1000_TXD_SIZE],
                   unsigned n);
/* Guest address of TX slot @i's buffer. */
uint64_t qe1000_tx_slot_buf(QE1000 *e, unsigned i);
/* Wait until the device has consumed every queued descriptor. */
void qe1000_tx_wait(QE1000 *e);
/* The status byte of TX descriptor @i. */
uint8_t qe1000_tx_status(QE1000 *e, unsigned i);

/* ---- receive ---- */

/*
 * Wait up to @timeout_ms for the next frame; copy it (without the CRC)
 * into @buf and give its descriptors back to the device.  Returns the
 * frame's length, or -1 when nothing arrived.
 */
ssize_t qe1000_rx(QE1000 *e, void *buf, size_t max, QE1000RxInfo *info,
                  int timeout_ms);
/* Guest address of RX descriptor @i. */
uint64_t qe1000_rx_desc(QE1000 *e, unsigned i);

/* Ethernet CRC-32 as the wire carries it. */
uint32_t qe1000_crc32(const void *buf, size_t len);

#endif
