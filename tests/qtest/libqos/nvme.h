/*
 * A libqos guest driver for the NVMe controller (hw/nvme/nvme-spec.h),
 * carried over a VfuClient.
 *
 *     QNvme *q = qnvme_new(dev, gm);        // PCI device + guest RAM
 *     qnvme_init(q, 4, 64);                 // as Linux: 4 I/O queue pairs
 *     uint64_t buf = guest_alloc(gm, 4096);
 *     st = qnvme_rw(q, qnvme_ioq(q, 1), NVME_CMD_WRITE, 1, lba, 8, buf);
 *     qnvme_free(q);
 *
 * qnvme_init() brings the controller up in the order Linux's nvme driver
 * does: disable, wait for CSTS.RDY=0, admin queue registers, enable, wait
 * for RDY=1, Identify Controller and the active namespaces, Set Features
 * Number of Queues, MSI-X, then per I/O queue pair Create I/O CQ and
 * Create I/O SQ.
 *
 * Commands go in with qnvme_submit() (the SQ tail doorbell is a posted
 * write, as a VMM sends it) and come back with qnvme_wait(), which polls
 * the CQ phase tag in guest memory and, with MSI-X, waits on the queue's
 * vector; every wait is bounded and fails the test on timeout.  Helpers
 * return the 15-bit status (nvme-spec.h's NVME_* codes, DNR included).
 */
#ifndef LIBQOS_NVME_H
#define LIBQOS_NVME_H

#include "util/osdep.h"
#include "hw/nvme/nvme-spec.h"
#include "tests/qtest/libqos/pci.h"
#include "tests/qtest/libqos/guest-mem.h"

#define QNVME_MAX_QUEUES    65
#define QNVME_TIMEOUT_MS    QOS_TIMEOUT_MS

typedef struct QNvme QNvme;

typedef struct QNvmeQueue {
    uint16_t qid;
    uint32_t size;              /* entries in both SQ and CQ */
    uint32_t cq_size;
    uint64_t sq_addr;           /* guest addresses */
    uint64_t cq_addr;
    uint32_t sq_tail;
    uint32_t cq_head;
    bool phase;
    uint16_t vector;
    bool irq_enabled;
    uint16_t next_cid;
    unsigned outstanding;
    bool created;
} QNvmeQueue;

typedef struct QNvmeNs {
    uint32_t nsid;
    uint64_t nsze;
    uint32_t lbasz;
} QNvmeNs;

struct QNvme {
    QPCIDevice *dev;
    GuestMem *gm;
    uint64_t cap;
    unsigned dstrd;
    uint32_t page_size;
    bool use_msix;              /* wait on vectors (else poll) */
    bool intx;                  /* INTx wired instead of MSI-X */
    bool sq_doorbell_direct;    /* non-posted doorbell writes */
    bool db_mapped;             /* the server offered its doorbell page */
    int timeout_ms;

    QNvmeQueue admin;
    QNvmeQueue *ioq[QNVME_MAX_QUEUES];

    NvmeIdCtrl id;
    unsigned nr_ns;
    QNvmeNs ns[16];

    /* Shadow doorbells (Doorbell Buffer Config), 0 when off. */
    uint64_t dbbuf_dbs;
    uint64_t dbbuf_eis;
};

/* Wrap a negotiated device (memory and bus mastering get enabled). */
QNvme *qnvme_new(QPCIDevice *dev, GuestMem *gm);
void qnvme_free(QNvme *q);

/* ---- registers ---- */

uint32_t qnvme_readl(QNvme *q, uint32_t reg);
uint64_t qnvme_readq(QNvme *q, uint32_t reg);
void qnvme_writel(QNvme *q, uint32_t reg, uint32_t v);
void qnvme_writeq(QNvme *q, uint32_t reg, uint64_t v);
/* Wait until (CSTS & mask) == val; returns the last CSTS. Fails on time. */
uint32_t qnvme_wait_csts(QNvme *q, uint32_t mask, uint32_t val);

/* ---- bring-up ---- */

/* CC.EN=0 and wait for RDY=0. */
void qnvme_disable(QNvme *q);
/*
 * Allocate the admin queues (@aq_size entries), program AQA/ASQ/ACQ and
 * write @cc (EN set by the caller); returns CSTS once RDY or CFS is set.
 */
uint32_t qnvme_enable_cc(QNvme *q, uint32_t aq_size, uint32_t cc);
/* The default CC: NVM, 4 KiB pages, round robin, 64/16-byte entries. */
uint32_t qnvme_default_cc(void);
/* Disable, admin queues of 32 entries, enable; fails unless RDY. */
void qnvme_enable(QNvme *q);
/* Whole Linux-order initialisation with @nr_ioq queue pairs. */
void qnvme_init(QNvme *q, unsigned nr_ioq, uint32_t qsize);
/* Identify Controller into q->id and the active namespaces into q->ns. */
void qnvme_identify_all(QNvme *q);
const QNvmeNs *qnvme_ns(QNvme *q, uint32_t nsid);

/*
 * Create I/O CQ @qid then I/O SQ @qid (@size entries each, CQ @cq_size
 * when not 0) with interrupt vector @vector; fails the test unless both
 * succeed.
 */
QNvmeQueue *qnvme_create_ioq(QNvme *q, uint16_t qid, uint32_t size,
                             uint16_t vector);
QNvmeQueue *qnvme_create_ioq_full(QNvme *q, uint16_t qid, uint32_t sq_size,
                                  uint32_t cq_size, uint16_t vector,
                                  bool ien);
/* Delete SQ then CQ; returns the first non-success status. */
uint16_t qnvme_delete_ioq(QNvme *q, uint16_t qid);
QNvmeQueue *qnvme_ioq(QNvme *q, uint16_t qid);

/* ---- commands ---- */

/*
 * Put @cmd (its cid is assigned) into @queue's SQ and ring the doorbell.
 * Returns the cid.
 */
uint16_t qnvme_submit(QNvme *q, QNvmeQueue *queue, NvmeCmd *cmd);
/* Put @cmd into the SQ without ringing the doorbell. */
uint16_t qnvme_queue_cmd(QNvme *q, QNvmeQueue *queue, NvmeCmd *cmd);
/* Ring @queue's SQ tail doorbell (or its shadow doorbell). */
void qnvme_ring_sq(QNvme *q, QNvmeQueue *queue);
/*
 * Wait for the next CQE of @queue, consume it (CQ head doorbell) and copy
 * it to @cqe.  Fails the test after @timeout_ms (0: the default).
 */
void qnvme_wait(QNvme *q, QNvmeQueue *queue, NvmeCqe *cqe, int timeout_ms);
/* Like qnvme_wait, but false on timeout. */
bool qnvme_try_wait(QNvme *q, QNvmeQueue *queue, NvmeCqe *cqe,
                    int timeout_ms);
/* True when a new CQE is visible (nothing consumed). */
bool qnvme_cqe_ready(QNvme *q, QNvmeQueue *queue);
/* Consume nothing; write the CQ head doorbell with the current head. */
void qnvme_ring_cq(QNvme *q, QNvmeQueue *queue);
/* Submit and wait; returns the status, CQE in @cqe when not NULL. */
uint16_t qnvme_cmd(QNvme *q, QNvmeQueue *queue, NvmeCmd *cmd,
                   NvmeCqe *cqe);
uint16_t qnvme_admin(QNvme *q, NvmeCmd *cmd, NvmeCqe *cqe);

/* CQE status without the phase bit. */
static inline uint16_t qnvme_status(const NvmeCqe *cqe)
{
    return cqe->status >> 1;
}

/*
 * Fill @cmd's PRP1/PRP2 for @len bytes at guest @addr, building PRP lists
 * in freshly allocated guest pages when needed.  The lists are freed with
 * qnvme_free_prp().
 */
void qnvme_set_prp(QNvme *q, NvmeCmd *cmd, uint64_t addr, uint64_t len);
void qnvme_free_prps(QNvme *q);

/* Admin helpers: return the status. */
uint16_t qnvme_identify(QNvme *q, uint8_t cns, uint32_t nsid, void *buf);
/* Identify with CDW10.CNTID (controller lists, CNS 12h and 13h). */
uint16_t qnvme_identify_cntid(QNvme *q, uint8_t cns, uint32_t nsid,
                              uint16_t cntid, void *buf);
uint16_t qnvme_get_log(QNvme *q, uint8_t lid, uint32_t nsid, bool rae,
                       uint64_t offset, void *buf, uint32_t len);
uint16_t qnvme_get_features(QNvme *q, uint8_t fid, uint32_t sel,
                            uint32_t cdw11, uint32_t *result);
uint16_t qnvme_set_features(QNvme *q, uint8_t fid, uint32_t cdw11,
                            uint32_t *result);
/*
 * An Asynchronous Event Request on the admin queue, left outstanding:
 * its cid, for the qnvme_wait() that gets the event.
 */
uint16_t qnvme_submit_aer(QNvme *q);

/*
 * Read / Write / Compare @nlb blocks at @slba of @nsid to or from guest
 * @buf with PRPs; @flags goes into CDW12 bits 31:16 (FUA, ...).
 */
uint16_t qnvme_rw(QNvme *q, QNvmeQueue *queue, uint8_t opcode,
                  uint32_t nsid, uint64_t slba, uint32_t nlb, uint64_t buf);
void qnvme_rw_cmd(QNvme *q, NvmeCmd *cmd, uint8_t opcode, uint32_t nsid,
                  uint64_t slba, uint32_t nlb, uint64_t buf);
uint16_t qnvme_flush(QNvme *q, QNvmeQueue *queue, uint32_t nsid);

/* Doorbell Buffer Config: allocate both pages and send the command. */
uint16_t qnvme_dbbuf_config(QNvme *q);

#endif
