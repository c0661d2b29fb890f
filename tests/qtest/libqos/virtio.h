/*
 * A guest-side virtio-pci driver for tests, in the manner of Linux's
 * virtio_pci_modern: it finds the vendor capabilities, resets the device,
 * sets ACKNOWLEDGE and DRIVER, negotiates features (FEATURES_OK read
 * back), sets up queues with their MSI-X vectors, and sets DRIVER_OK.
 * Virtqueues may be split or packed, with or without indirect descriptors
 * and event index; the rings live in a GuestMem.
 *
 *     QVirtioDevice *vd = qvirtio_pci_new(pdev, gm);
 *     qvirtio_init(vd, &(QVirtioInit){ .features = wanted, .nqueues = 2,
 *                                       .irq = QVIRTIO_IRQ_MSIX });
 *     int id = qvirtqueue_add(vd->vqs[0], bufs, 3, false);
 *     qvirtqueue_kick(vd->vqs[0]);
 *     uint32_t len = qvirtqueue_wait_used(vd->vqs[0], id);
 *
 * Waiting uses the queue's MSI-X eventfd (or INTx and the ISR), and polls
 * the used ring in between, always answering the server's DMA requests
 * meanwhile, so devices without shared guest memory make progress.  Raw
 * helpers write descriptors and indexes as they are, for tests that feed
 * the device malformed rings.
 */
#ifndef LIBQOS_VIRTIO_H
#define LIBQOS_VIRTIO_H

#include "util/osdep.h"
#include "hw/virtio/virtio-spec.h"
#include "tests/qtest/libqos/pci.h"
#include "tests/qtest/libqos/guest-mem.h"

#define QVIRTIO_MAX_QUEUES      16
#define QVIRTIO_MAX_CHAIN       1024

typedef struct QVirtioDevice QVirtioDevice;
typedef struct QVirtQueue QVirtQueue;

/* Where a virtio structure lives (a BAR and a range in it). */
typedef struct QVirtioStruct {
    bool present;
    uint8_t cap;                /* config space offset of its capability */
    unsigned bar;
    uint64_t offset, length;
} QVirtioStruct;

typedef enum QVirtioIrq {
    QVIRTIO_IRQ_MSIX,           /* vector 0 config, vector i+1 queue i */
    QVIRTIO_IRQ_MSIX_SHARED,    /* vector 0 config, vector 1 all queues */
    QVIRTIO_IRQ_INTX,           /* no MSI-X: INTx and the ISR */
    QVIRTIO_IRQ_NONE,           /* nothing wired: poll */
} QVirtioIrq;

struct QVirtioDevice {
    QPCIDevice *pdev;
    GuestMem *gm;
    uint16_t device_type;       /* VIRTIO_ID_* from the PCI device ID */
    QVirtioStruct common, notify, isr, device, pci_cfg;
    uint32_t notify_mult;

    uint64_t features;          /* negotiated */
    QVirtioIrq irq;
    unsigned nvec;              /* MSI-X vectors wired */
    uint16_t config_vector;
    QVirtQueue *vqs[QVIRTIO_MAX_QUEUES];
    unsigned nvqs;
};

/* One buffer of a chain. */
typedef struct QVirtioBuf {
    uint64_t addr;
    uint32_t len;
    bool write;                 /* device-writable */
} QVirtioBuf;

struct QVirtQueue {
    QVirtioDevice *vd;
    unsigned index;
    unsigned num;
    bool packed, event_idx, indirect;
    uint64_t desc, avail, used; /* packed: ring, driver, device areas */
    uint16_t vector;
    uint64_t notify_addr;       /* offset in the notify BAR */
    bool interrupts;            /* driver asks for used notifications */

    /* split */
    uint16_t avail_idx, last_used_idx;
    uint16_t free_head;
    unsigned nfree;
    uint16_t *next;             /* driver's copy of the next fields */
    /* packed */
    uint16_t next_avail, last_used;
    bool avail_wrap, used_wrap;
    uint16_t *free_ids;
    unsigned nfree_ids;

    /* per head / buffer id */
    uint16_t *ndescs;
    uint64_t *table;            /* indirect table to free, or 0 */
    bool *done;
    uint32_t *done_len;
    unsigned inflight;
    uint16_t kick_old;          /* index at the last kick decision */
};

typedef struct QVirtioInit {
    uint64_t features;          /* wanted (ANDed with the offered ones) */
    unsigned nqueues;           /* 0: all the device has (at most 16) */
    unsigned queue_size;        /* 0: the device's maximum */
    QVirtioIrq irq;
} QVirtioInit;

/* Find the virtio capabilities of @pdev (memory and bus master on). */
QVirtioDevice *qvirtio_pci_new(QPCIDevice *pdev, GuestMem *gm);
/* Free the queues' guest memory and the driver state (not @pdev). */
void qvirtio_free(QVirtioDevice *vd);

/*
 * The whole initialisation, as Linux does it; fails the test when the
 * device refuses FEATURES_OK.
 */
void qvirtio_init(QVirtioDevice *vd, const QVirtioInit *init);

/* ---- registers ---- */

uint8_t qvirtio_common_readb(QVirtioDevice *vd, uint32_t off);
uint16_t qvirtio_common_readw(QVirtioDevice *vd, uint32_t off);
uint32_t qvirtio_common_readl(QVirtioDevice *vd, uint32_t off);
void qvirtio_common_writeb(QVirtioDevice *vd, uint32_t off, uint8_t v);
void qvirtio_common_writew(QVirtioDevice *vd, uint32_t off, uint16_t v);
void qvirtio_common_writel(QVirtioDevice *vd, uint32_t off, uint32_t v);

uint8_t qvirtio_get_status(QVirtioDevice *vd);
void qvirtio_set_status(QVirtioDevice *vd, uint8_t status);
void qvirtio_add_status(QVirtioDevice *vd, uint8_t bits);
/* Write 0, then wait until device_status reads 0. */
void qvirtio_reset(QVirtioDevice *vd);

uint64_t qvirtio_device_features(QVirtioDevice *vd);
void qvirtio_set_driver_features(QVirtioDevice *vd, uint64_t features);
uint64_t qvirtio_driver_features(QVirtioDevice *vd);
/* Write @features, set FEATURES_OK; true when the bit stuck. */
bool qvirtio_negotiate(QVirtioDevice *vd, uint64_t features);

uint8_t qvirtio_config_readb(QVirtioDevice *vd, uint32_t off);
uint16_t qvirtio_config_readw(QVirtioDevice *vd, uint32_t off);
uint32_t qvirtio_config_readl(QVirtioDevice *vd, uint32_t off);
/* Two 32-bit reads inside a stable config_generation. */
uint64_t qvirtio_config_readq(QVirtioDevice *vd, uint32_t off);
void qvirtio_config_writeb(QVirtioDevice *vd, uint32_t off, uint8_t v);
uint8_t qvirtio_generation(QVirtioDevice *vd);
/* Read (and so clear) the ISR. */
uint8_t qvirtio_read_isr(QVirtioDevice *vd);

/* Wire the interrupts of @irq (MSI-X vectors, INTx, or none). */
void qvirtio_setup_irqs(QVirtioDevice *vd, QVirtioIrq irq,
                        unsigned nqueues);
/* Write config_msix_vector; returns what reads back. */
uint16_t qvirtio_set_config_vector(QVirtioDevice *vd, uint16_t vector);
/* Wait for a configuration interrupt; false on timeout. */
bool qvirtio_wait_config_irq(QVirtioDevice *vd, int timeout_ms);

/* ---- queues ---- */

/*
 * Select queue @index, size it (@size 0: the maximum), allocate and zero
 * its rings, program the areas and @vector (fails unless it reads back).
 * Not enabled yet.
 */
QVirtQueue *qvirtqueue_setup(QVirtioDevice *vd, unsigned index,
                             unsigned size, uint16_t vector);
void qvirtqueue_enable(QVirtQueue *vq);
void qvirtqueue_free(QVirtQueue *vq);

/*
 * Make a chain of @n buffers available (one indirect table when
 * @indirect).  Returns its id (split: head index; packed: buffer id), or
 * -ENOSPC when the ring is full.  Does not notify the device.
 */
int qvirtqueue_add(QVirtQueue *vq, const QVirtioBuf *bufs, unsigned n,
                   bool indirect);
/* Notify the device if it asks for it (event index / NO_NOTIFY). */
void qvirtqueue_kick(QVirtQueue *vq);
/* Notify unconditionally (a posted 16-bit write, as Linux does). */
void qvirtqueue_notify(QVirtQueue *vq);
/* Take the next used element, if any: true with its id and length. */
bool qvirtqueue_get_used(QVirtQueue *vq, uint32_t *id, uint32_t *len);
/* Wait until @id is used (QOS_TIMEOUT_MS); returns the used length. */
uint32_t qvirtqueue_wait_used(QVirtQueue *vq, int id);
/* True when @id was used within @timeout_ms. */
bool qvirtqueue_try_wait_used(QVirtQueue *vq, int id, int timeout_ms,
                              uint32_t *len);
/*
 * Ask for used buffer notifications or not (NO_INTERRUPT / used_event /
 * driver event suppression).
 */
void qvirtqueue_set_interrupts(QVirtQueue *vq, bool enable);
/* Event index: ask to be interrupted only when used index passes @idx. */
void qvirtqueue_set_used_event(QVirtQueue *vq, uint16_t idx);
/* The queue's MSI-X eventfd (-1 without MSI-X). */
int qvirtqueue_irq_fd(QVirtQueue *vq);

/* ---- raw ring access, for malformed input ---- */

/* Split: write descriptor @i of the table exactly as given. */
void qvring_write_desc(QVirtQueue *vq, uint64_t table, unsigned i,
                       uint64_t addr, uint32_t len, uint16_t flags,
                       uint16_t next);
/* Split: put @head in the avail ring and publish it (avail->idx + 1). */
void qvring_publish_head(QVirtQueue *vq, uint16_t head);
/* Split: write avail->idx as given. */
void qvring_set_avail_idx(QVirtQueue *vq, uint16_t idx);
/*
 * Packed: write the descriptor at ring slot @slot; with @avail, its
 * AVAIL/USED bits mark it available in the driver's current lap.
 */
void qvring_packed_write_desc(QVirtQueue *vq, unsigned slot, uint64_t addr,
                              uint32_t len, uint16_t id, uint16_t flags,
                              bool avail);

#endif
