/*
 * The e1000's state and what its parts share: e1000.c (registers,
 * interrupts, link and PHY, EEPROM, statistics, life cycle), e1000-rx.c
 * (filters, checksums, the receive ring) and e1000-tx.c (the transmit
 * ring, offloads, segmentation).
 */
#ifndef HW_NET_E1000_INT_H
#define HW_NET_E1000_INT_H

#include "hw/pci/pci.h"
#include "hw/net/e1000-regs.h"
#include "hw/net/nic.h"
#include "net/net.h"
#include "util/loop.h"

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
/*
 * Per run of the TX bottom half: at most this many descriptors, and no
 * new descriptor once this many frames went out (one TSO descriptor can
 * make tens of thousands of segments: other devices on the loop wait).
 */
#define E1000_TX_BUDGET         256
#define E1000_TX_FRAME_BUDGET   1024
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

/*
 * What a loaded state (e1000-state.c) leaves for the start: the delay
 * timers' remaining times and the interrupt line, armed and driven once
 * the device runs again.  Times in ns; 0: the timer was not armed.
 */
typedef struct E1000Resume {
    bool pending;               /* loaded, not started yet */
    bool irq_level;
    int64_t itr_ns;             /* until ITR lets the line rise again */
    int64_t rdtr_ns, radv_ns;
    int64_t tidv_ns, tadv_ns;
    int64_t autoneg_ns;
} E1000Resume;

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
    uint32_t tx_frames_run;     /* frames sent in this run of the TX BH */
    int64_t itr_next;           /* earliest next assertion (ITR) */
    /* For query-stats, since realize. */
    uint64_t rx_descs, tx_descs;    /* descriptors used */
    uint64_t irqs, irqs_delayed;    /* assertions; held back by ITR */

    E1000Tx tx;
    uint8_t *rx_bounce;
    NicRx rx;                   /* frames from the net layer, in the worker */

    DeviceBH *tx_bh;
    LoopTimer *itr_timer;
    LoopTimer *rdtr_timer, *radv_timer;
    LoopTimer *tidv_timer, *tadv_timer;
    LoopTimer *autoneg_timer;
    E1000Resume resume;
} E1000State;

#define REG(s, off) ((s)->regs[(off) >> 2])

static inline const char *e1000_id(E1000State *s)
{
    return device_id(&s->pdev.dev);
}

/* ---- statistics ---- */

/* 32-bit counters stick at their maximum, as the hardware's do. */
static inline void e1000_stat_add(E1000State *s, uint32_t reg, uint32_t n)
{
    uint32_t *c = &REG(s, reg);

    *c = *c > UINT32_MAX - n ? UINT32_MAX : *c + n;
}

static inline void e1000_stat_inc(E1000State *s, uint32_t reg)
{
    e1000_stat_add(s, reg, 1);
}

/* A low/high register pair making up one 64-bit octet counter. */
static inline void e1000_stat_add64(E1000State *s, uint32_t lo, uint64_t n)
{
    uint64_t v = ((uint64_t)REG(s, lo + 4) << 32 | REG(s, lo)) + n;

    REG(s, lo) = v;
    REG(s, lo + 4) = v >> 32;
}

/* The size bucket of a frame (with CRC): PRC64 .. PRC1522 / PTC... */
static inline uint32_t e1000_size_bucket(uint32_t first, uint32_t len)
{
    static const uint32_t limits[] = { 64, 127, 255, 511, 1023 };

    for (unsigned i = 0; i < ARRAY_SIZE(limits); i++) {
        if (len <= limits[i]) {
            return first + 4 * i;
        }
    }
    return first + 4 * ARRAY_SIZE(limits);
}

static inline bool e1000_is_broadcast(const uint8_t *mac)
{
    static const uint8_t bcast[E1000_ETH_ALEN] = {
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff
    };

    return memcmp(mac, bcast, E1000_ETH_ALEN) == 0;
}

/* ---- e1000.c: interrupts ---- */

/* INTx from ICR & IMS, held back by ITR. */
void e1000_update_irq(E1000State *s);
/* Raise ICR causes; INTx follows (ICR & IMS, ITR). */
void e1000_set_cause(E1000State *s, uint32_t causes);
/* A frame was stored: RXT0 now or after the RDTR/RADV delays. */
void e1000_rx_irq(E1000State *s);
/* Descriptors were written back: TXDW now, or @delayed (TIDV/TADV). */
void e1000_tx_irq(E1000State *s, bool delayed);

/* ---- e1000.c: link and registers ---- */

/* The net layer's link may have changed: follow it (LSC on a change). */
void e1000_cable_check(E1000State *s);
/* Does register index @idx (offset / 4) exist on this device? */
bool e1000_reg_implemented(unsigned idx);

/* ---- e1000-rx.c ---- */

/* The VLAN Ether type (VET). */
uint16_t e1000_vet(E1000State *s);
/* RCTL.LBM: MAC loopback, transmitted frames come back to the receiver. */
bool e1000_loopback(E1000State *s);
/* NetClientOps of the receive side, and a frame from the worker's queue. */
bool e1000_can_receive(NetClient *nc);
ssize_t e1000_receive(NetClient *nc, const struct iovec *iov, int iovcnt);
ssize_t e1000_rx_frame(void *opaque, const struct iovec *iov, int iovcnt);

/* ---- e1000-tx.c ---- */

/* The TX bottom half: walk the ring from TDH to TDT. */
void e1000_tx_run(void *opaque);
/* A context descriptor to its parameters and back (the saved form). */
void e1000_tx_ctx_decode(E1000TxCtx *c, const uint8_t *d);
void e1000_tx_ctx_encode(const E1000TxCtx *c, uint8_t *d);
/* May a TSO packet with context @c and options @popts be assembled? */
bool e1000_tso_ctx_valid(const E1000TxCtx *c, uint8_t popts);

/* ---- e1000-state.c: live migration and upgrade ---- */

struct StateWriter;
struct StateReader;

/* The device is STOPPED: its state as sections "e1000", "e1000/...". */
void e1000_state_save(E1000State *s, struct StateWriter *w);
/* All of it checked first: on failure the device is left as it was. */
bool e1000_state_load(E1000State *s, struct StateReader *r, GError **errp);
/* Running again: re-arm what a loaded state left pending. */
void e1000_state_resume(E1000State *s);


#endif
