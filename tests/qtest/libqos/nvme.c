/*
 * libqos NVMe guest driver: registers, bring-up in Linux's order, queues,
 * command submission and completion, PRP lists, shadow doorbells.
 */
#include "util/osdep.h"

#include "tests/qtest/libqos/nvme.h"

#define QNVME_ADMIN_QSIZE   32

/* Guest pages holding PRP lists, freed with qnvme_free_prps(). */
static GArray *prp_pages_of(QNvme *q);

typedef struct QNvmePriv {
    QNvme pub;
    GArray *prp_pages;          /* of uint64_t guest addresses */
    uint32_t sq_db_last[QNVME_MAX_QUEUES];
    uint32_t cq_db_last[QNVME_MAX_QUEUES];
} QNvmePriv;

static GArray *prp_pages_of(QNvme *q)
{
    return ((QNvmePriv *)q)->prp_pages;
}

QNvme *qnvme_new(QPCIDevice *dev, GuestMem *gm)
{
    QNvmePriv *p = g_new0(QNvmePriv, 1);
    QNvme *q = &p->pub;

    p->prp_pages = g_array_new(false, false, sizeof(uint64_t));
    q->dev = dev;
    q->gm = gm;
    q->timeout_ms = QNVME_TIMEOUT_MS;
    q->page_size = 4096;
    qpci_device_enable(dev);
    /* As QEMU's client: map what the server offers (doorbells, maybe). */
    q->db_mapped = qpci_bar_map(dev, NVME_BAR_REGS) > 0;
    q->cap = qnvme_readq(q, NVME_REG_CAP);
    q->dstrd = NVME_CAP_DSTRD(q->cap);
    return q;
}

static void qnvme_queue_free(QNvme *q, QNvmeQueue *queue)
{
    if (queue->sq_addr) {
        guest_free(q->gm, queue->sq_addr);
    }
    if (queue->cq_addr) {
        guest_free(q->gm, queue->cq_addr);
    }
    queue->sq_addr = queue->cq_addr = 0;
}

void qnvme_free(QNvme *q)
{
    if (!q) {
        return;
    }
    for (unsigned i = 1; i < QNVME_MAX_QUEUES; i++) {
        if (q->ioq[i]) {
            qnvme_queue_free(q, q->ioq[i]);
            g_free(q->ioq[i]);
        }
    }
    qnvme_queue_free(q, &q->admin);
    qnvme_free_prps(q);
    if (q->dbbuf_dbs) {
        guest_free(q->gm, q->dbbuf_dbs);
        guest_free(q->gm, q->dbbuf_eis);
    }
    g_array_free(prp_pages_of(q), true);
    g_free(q);
}

/* ---- registers ---- */

uint32_t qnvme_readl(QNvme *q, uint32_t reg)
{
    return qpci_bar_readl(q->dev, NVME_BAR_REGS, reg);
}

uint64_t qnvme_readq(QNvme *q, uint32_t reg)
{
    return qpci_bar_readq(q->dev, NVME_BAR_REGS, reg);
}

void qnvme_writel(QNvme *q, uint32_t reg, uint32_t v)
{
    qpci_bar_writel(q->dev, NVME_BAR_REGS, reg, v);
}

void qnvme_writeq(QNvme *q, uint32_t reg, uint64_t v)
{
    qpci_bar_writeq(q->dev, NVME_BAR_REGS, reg, v);
}

uint32_t qnvme_wait_csts(QNvme *q, uint32_t mask, uint32_t val)
{
    int64_t deadline = qos_deadline(q->timeout_ms);
    uint32_t csts;

    for (;;) {
        csts = qnvme_readl(q, NVME_REG_CSTS);
        if ((csts & mask) == val) {
            return csts;
        }
        if (!qos_remaining_ms(deadline)) {
            qos_fail("CSTS 0x%x: (CSTS & 0x%x) != 0x%x after %d ms", csts,
                     mask, val, q->timeout_ms);
        }
        vfu_service(qpci_client(q->dev), 1);
    }
}

/* ---- bring-up ---- */

uint32_t qnvme_default_cc(void)
{
    return NVME_CC_EN | (0 << NVME_CC_CSS_SHIFT) | (0 << NVME_CC_MPS_SHIFT) |
           (0 << NVME_CC_AMS_SHIFT) | (NVME_SQES << NVME_CC_IOSQES_SHIFT) |
           (NVME_CQES << NVME_CC_IOCQES_SHIFT);
}

void qnvme_disable(QNvme *q)
{
    uint32_t cc = qnvme_readl(q, NVME_REG_CC);

    if (cc & NVME_CC_EN) {
        qnvme_writel(q, NVME_REG_CC, cc & ~NVME_CC_EN);
    }
    qnvme_wait_csts(q, NVME_CSTS_RDY, 0);
    /* Every queue is gone with the reset. */
    for (unsigned i = 1; i < QNVME_MAX_QUEUES; i++) {
        if (q->ioq[i]) {
            qnvme_queue_free(q, q->ioq[i]);
            g_free(q->ioq[i]);
            q->ioq[i] = NULL;
        }
    }
    q->admin.created = false;
    if (q->dbbuf_dbs) {
        guest_free(q->gm, q->dbbuf_dbs);
        guest_free(q->gm, q->dbbuf_eis);
        q->dbbuf_dbs = q->dbbuf_eis = 0;
    }
}

static void qnvme_queue_init(QNvme *q, QNvmeQueue *queue, uint16_t qid,
                             uint32_t sq_size, uint32_t cq_size)
{
    QNvmePriv *p = (QNvmePriv *)q;

    qnvme_queue_free(q, queue);
    memset(queue, 0, sizeof(*queue));
    queue->qid = qid;
    queue->size = sq_size;
    queue->cq_size = cq_size;
    queue->phase = true;
    queue->sq_addr = guest_alloc_aligned(q->gm, (uint64_t)sq_size * 64,
                                         q->page_size);
    queue->cq_addr = guest_alloc_aligned(q->gm, (uint64_t)cq_size * 16,
                                         q->page_size);
    guest_memset(q->gm, queue->sq_addr, 0, (uint64_t)sq_size * 64);
    guest_memset(q->gm, queue->cq_addr, 0, (uint64_t)cq_size * 16);
    p->sq_db_last[qid] = 0;
    p->cq_db_last[qid] = 0;
}

uint32_t qnvme_enable_cc(QNvme *q, uint32_t aq_size, uint32_t cc)
{
    int64_t deadline = qos_deadline(q->timeout_ms);
    uint32_t csts;

    qnvme_queue_init(q, &q->admin, 0, aq_size, aq_size);
    q->admin.irq_enabled = true;
    qnvme_writel(q, NVME_REG_AQA, NVME_AQA(aq_size - 1, aq_size - 1));
    qnvme_writeq(q, NVME_REG_ASQ, q->admin.sq_addr);
    qnvme_writeq(q, NVME_REG_ACQ, q->admin.cq_addr);
    qnvme_writel(q, NVME_REG_CC, cc);
    for (;;) {
        csts = qnvme_readl(q, NVME_REG_CSTS);
        if (csts & (NVME_CSTS_RDY | NVME_CSTS_CFS)) {
            break;
        }
        if (!qos_remaining_ms(deadline)) {
            qos_fail("controller not ready %d ms after CC=0x%x (CSTS 0x%x)",
                     q->timeout_ms, cc, csts);
        }
        vfu_service(qpci_client(q->dev), 1);
    }
    q->admin.created = csts & NVME_CSTS_RDY;
    return csts;
}

void qnvme_enable(QNvme *q)
{
    uint32_t csts;

    qnvme_disable(q);
    csts = qnvme_enable_cc(q, QNVME_ADMIN_QSIZE, qnvme_default_cc());
    qos_assert((csts & (NVME_CSTS_RDY | NVME_CSTS_CFS)) == NVME_CSTS_RDY,
               "enable failed: CSTS 0x%x", csts);
}

const QNvmeNs *qnvme_ns(QNvme *q, uint32_t nsid)
{
    for (unsigned i = 0; i < q->nr_ns; i++) {
        if (q->ns[i].nsid == nsid) {
            return &q->ns[i];
        }
    }
    return NULL;
}

void qnvme_identify_all(QNvme *q)
{
    uint32_t list[1024];
    uint16_t st;

    st = qnvme_identify(q, NVME_ID_CNS_CTRL, 0, &q->id);
    qos_assert(st == NVME_SUCCESS, "Identify Controller: status 0x%x", st);
    st = qnvme_identify(q, NVME_ID_CNS_NS_ACTIVE_LIST, 0, list);
    qos_assert(st == NVME_SUCCESS, "Identify active NS list: status 0x%x",
               st);
    q->nr_ns = 0;
    for (unsigned i = 0; i < 1024 && list[i] &&
         q->nr_ns < ARRAY_SIZE(q->ns); i++) {
        NvmeIdNs id;
        QNvmeNs *ns = &q->ns[q->nr_ns++];

        st = qnvme_identify(q, NVME_ID_CNS_NS, list[i], &id);
        qos_assert(st == NVME_SUCCESS, "Identify NS %u: status 0x%x",
                   list[i], st);
        ns->nsid = list[i];
        ns->nsze = id.nsze;
        ns->lbasz = 1u << id.lbaf[NVME_FLBAS_INDEX(id.flbas)].ds;
    }
}

void qnvme_init(QNvme *q, unsigned nr_ioq, uint32_t qsize)
{
    uint32_t result = 0;
    uint16_t st;

    qnvme_enable(q);
    if (!q->intx) {
        /* Every vector the table has (admin + one per queue pair). */
        uint8_t cap = qpci_find_capability(q->dev, PCI_CAP_ID_MSIX, 0);
        unsigned nvec;

        qos_assert(cap, "no MSI-X capability");
        nvec = (qpci_config_readw(q->dev, cap + PCI_MSIX_FLAGS) &
                PCI_MSIX_FLAGS_QSIZE) + 1;
        qpci_msix_enable(q->dev, MIN(nvec, QPCI_MAX_VECTORS));
        q->use_msix = true;
    } else {
        qpci_intx_enable(q->dev);
    }
    qnvme_identify_all(q);
    st = qnvme_set_features(q, NVME_FEAT_NUM_QUEUES,
                            ((nr_ioq - 1) << 16) | (nr_ioq - 1), &result);
    qos_assert(st == NVME_SUCCESS, "Set Features Number of Queues: 0x%x",
               st);
    qos_assert((result & 0xffff) + 1 >= nr_ioq &&
               (result >> 16) + 1 >= nr_ioq,
               "only 0x%x queues allocated, %u wanted", result, nr_ioq);
    for (unsigned i = 1; i <= nr_ioq; i++) {
        qnvme_create_ioq(q, i, qsize, q->intx ? 0 : i);
    }
}

QNvmeQueue *qnvme_ioq(QNvme *q, uint16_t qid)
{
    QNvmeQueue *queue = qid < QNVME_MAX_QUEUES ? q->ioq[qid] : NULL;

    qos_assert(queue, "I/O queue %u does not exist", qid);
    return queue;
}

QNvmeQueue *qnvme_create_ioq_full(QNvme *q, uint16_t qid, uint32_t sq_size,
                                  uint32_t cq_size, uint16_t vector,
                                  bool ien)
{
    QNvmeQueue *queue = g_new0(QNvmeQueue, 1);
    NvmeCmd cmd;
    uint16_t st;

    qos_assert(qid && qid < QNVME_MAX_QUEUES && !q->ioq[qid],
               "bad I/O queue id %u", qid);
    qnvme_queue_init(q, queue, qid, sq_size, cq_size);
    queue->vector = vector;
    queue->irq_enabled = ien;

    memset(&cmd, 0, sizeof(cmd));
    cmd.opcode = NVME_ADM_CMD_CREATE_CQ;
    cmd.dptr.prp1 = queue->cq_addr;
    cmd.cdw10 = qid | ((cq_size - 1) << 16);
    cmd.cdw11 = NVME_CQ_FLAGS_PC | (ien ? NVME_CQ_FLAGS_IEN : 0) |
                ((uint32_t)vector << 16);
    st = qnvme_admin(q, &cmd, NULL);
    qos_assert(st == NVME_SUCCESS, "Create I/O CQ %u: status 0x%x", qid, st);

    memset(&cmd, 0, sizeof(cmd));
    cmd.opcode = NVME_ADM_CMD_CREATE_SQ;
    cmd.dptr.prp1 = queue->sq_addr;
    cmd.cdw10 = qid | ((sq_size - 1) << 16);
    cmd.cdw11 = NVME_SQ_FLAGS_PC | ((uint32_t)qid << 16);
    st = qnvme_admin(q, &cmd, NULL);
    qos_assert(st == NVME_SUCCESS, "Create I/O SQ %u: status 0x%x", qid, st);
    queue->created = true;
    q->ioq[qid] = queue;
    return queue;
}

QNvmeQueue *qnvme_create_ioq(QNvme *q, uint16_t qid, uint32_t size,
                             uint16_t vector)
{
    return qnvme_create_ioq_full(q, qid, size, size, vector, true);
}

uint16_t qnvme_delete_ioq(QNvme *q, uint16_t qid)
{
    QNvmeQueue *queue = qnvme_ioq(q, qid);
    NvmeCmd cmd;
    uint16_t st, st2;

    memset(&cmd, 0, sizeof(cmd));
    cmd.opcode = NVME_ADM_CMD_DELETE_SQ;
    cmd.cdw10 = qid;
    st = qnvme_admin(q, &cmd, NULL);
    memset(&cmd, 0, sizeof(cmd));
    cmd.opcode = NVME_ADM_CMD_DELETE_CQ;
    cmd.cdw10 = qid;
    st2 = qnvme_admin(q, &cmd, NULL);
    qnvme_queue_free(q, queue);
    g_free(queue);
    q->ioq[qid] = NULL;
    return st ? st : st2;
}

/* ---- doorbells ---- */

/* Shadow doorbell protocol: does the device want an MMIO write? */
static bool qnvme_need_event(uint16_t event_idx, uint16_t new_idx,
                             uint16_t old)
{
    return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old);
}

static void qnvme_doorbell(QNvme *q, uint16_t qid, bool cq, uint32_t val)
{
    QNvmePriv *p = (QNvmePriv *)q;
    uint32_t *last = cq ? &p->cq_db_last[qid] : &p->sq_db_last[qid];
    uint32_t old = *last;
    uint32_t off = cq ? NVME_DB_CQ_OFF(qid, q->dstrd)
                      : NVME_DB_SQ_OFF(qid, q->dstrd);

    *last = val;
    if (q->dbbuf_dbs && qid) {
        uint64_t s = 8ULL * qid + (cq ? 4 : 0);
        uint32_t ei;

        guest_writel(q->gm, q->dbbuf_dbs + s, val);
        smp_mb();
        ei = guest_readl(q->gm, q->dbbuf_eis + s);
        if (!qnvme_need_event(ei, val, old)) {
            return;
        }
    }
    if (q->sq_doorbell_direct) {
        qpci_bar_writel(q->dev, NVME_BAR_REGS, off, val);
    } else {
        qpci_bar_writel_posted(q->dev, NVME_BAR_REGS, off, val);
    }
}

void qnvme_ring_sq(QNvme *q, QNvmeQueue *queue)
{
    qnvme_doorbell(q, queue->qid, false, queue->sq_tail);
}

void qnvme_ring_cq(QNvme *q, QNvmeQueue *queue)
{
    qnvme_doorbell(q, queue->qid, true, queue->cq_head);
}

/* ---- commands ---- */

uint16_t qnvme_queue_cmd(QNvme *q, QNvmeQueue *queue, NvmeCmd *cmd)
{
    uint64_t addr = queue->sq_addr + (uint64_t)queue->sq_tail * 64;

    cmd->cid = queue->next_cid++;
    guest_memwrite(q->gm, addr, cmd, sizeof(*cmd));
    smp_wmb();
    queue->sq_tail = (queue->sq_tail + 1) % queue->size;
    queue->outstanding++;
    return cmd->cid;
}

uint16_t qnvme_submit(QNvme *q, QNvmeQueue *queue, NvmeCmd *cmd)
{
    uint16_t cid = qnvme_queue_cmd(q, queue, cmd);

    qnvme_ring_sq(q, queue);
    return cid;
}

bool qnvme_cqe_ready(QNvme *q, QNvmeQueue *queue)
{
    uint64_t addr = queue->cq_addr + (uint64_t)queue->cq_head * 16;
    uint16_t status = guest_readw(q->gm, addr + 14);

    return (status & NVME_CQE_PHASE) == (queue->phase ? 1 : 0);
}

bool qnvme_try_wait(QNvme *q, QNvmeQueue *queue, NvmeCqe *cqe,
                    int timeout_ms)
{
    int64_t deadline = qos_deadline(timeout_ms ? timeout_ms
                                               : q->timeout_ms);

    while (!qnvme_cqe_ready(q, queue)) {
        int left = qos_remaining_ms(deadline);

        if (!left) {
            return false;
        }
        if (q->use_msix && queue->irq_enabled) {
            /* A bounded wait: a signal may have gone to an earlier CQE. */
            qpci_eventfd_wait(q->dev, qpci_msix_fd(q->dev, queue->vector),
                              MIN(left, 100));
        } else if (q->intx && queue->irq_enabled) {
            qpci_eventfd_wait(q->dev, qpci_intx_fd(q->dev), MIN(left, 100));
        } else {
            vfu_service(qpci_client(q->dev), 1);
        }
    }
    smp_rmb();
    guest_memread(q->gm, queue->cq_addr + (uint64_t)queue->cq_head * 16,
                  cqe, sizeof(*cqe));
    queue->cq_head++;
    if (queue->cq_head == queue->cq_size) {
        queue->cq_head = 0;
        queue->phase = !queue->phase;
    }
    if (queue->outstanding) {
        queue->outstanding--;
    }
    qnvme_ring_cq(q, queue);
    if (q->intx) {
        /* VFIO INTx is automasked until the driver's EOI. */
        qpci_intx_unmask(q->dev);
    }
    return true;
}

void qnvme_wait(QNvme *q, QNvmeQueue *queue, NvmeCqe *cqe, int timeout_ms)
{
    int t = timeout_ms ? timeout_ms : q->timeout_ms;

    if (!qnvme_try_wait(q, queue, cqe, t)) {
        qos_fail("no completion on queue %u within %d ms (CSTS 0x%x, "
                 "%u outstanding)", queue->qid, t,
                 qnvme_readl(q, NVME_REG_CSTS), queue->outstanding);
    }
}

uint16_t qnvme_cmd(QNvme *q, QNvmeQueue *queue, NvmeCmd *cmd, NvmeCqe *cqe)
{
    NvmeCqe c;
    uint16_t cid = qnvme_submit(q, queue, cmd);

    qnvme_wait(q, queue, &c, 0);
    qos_assert(c.cid == cid, "queue %u: CQE for cid %u, expected %u",
               queue->qid, c.cid, cid);
    qos_assert(c.sq_id == queue->qid, "queue %u: CQE names SQ %u",
               queue->qid, c.sq_id);
    if (cqe) {
        *cqe = c;
    }
    return qnvme_status(&c);
}

uint16_t qnvme_admin(QNvme *q, NvmeCmd *cmd, NvmeCqe *cqe)
{
    return qnvme_cmd(q, &q->admin, cmd, cqe);
}

/* ---- PRPs ---- */

void qnvme_set_prp(QNvme *q, NvmeCmd *cmd, uint64_t addr, uint64_t len)
{
    uint64_t page = q->page_size;
    uint64_t first = page - (addr & (page - 1));
    uint64_t entries, next;
    uint64_t list = 0, slot = 0;

    cmd->dptr.prp1 = addr;
    cmd->dptr.prp2 = 0;
    if (len <= first) {
        return;
    }
    if (len - first <= page) {
        cmd->dptr.prp2 = addr + first;
        return;
    }
    entries = DIV_ROUND_UP(len - first, page);
    next = addr + first;
    while (entries) {
        uint64_t per_page = page / 8;

        if (!list) {
            list = guest_alloc_aligned(q->gm, page, page);
            g_array_append_val(prp_pages_of(q), list);
            cmd->dptr.prp2 = list;
            slot = 0;
        } else if (slot == per_page - 1 && entries > 1) {
            /* Chain: the last entry points to the next list page. */
            uint64_t nl = guest_alloc_aligned(q->gm, page, page);

            g_array_append_val(prp_pages_of(q), nl);
            guest_writeq(q->gm, list + slot * 8, nl);
            list = nl;
            slot = 0;
        }
        guest_writeq(q->gm, list + slot * 8, next);
        slot++;
        next += page;
        entries--;
    }
}

static void qnvme_free_prps_from(QNvme *q, unsigned from)
{
    GArray *a = prp_pages_of(q);

    for (unsigned i = from; i < a->len; i++) {
        guest_free(q->gm, g_array_index(a, uint64_t, i));
    }
    g_array_set_size(a, from);
}

void qnvme_free_prps(QNvme *q)
{
    qnvme_free_prps_from(q, 0);
}

/* ---- admin helpers ---- */

uint16_t qnvme_identify(QNvme *q, uint8_t cns, uint32_t nsid, void *buf)
{
    return qnvme_identify_cntid(q, cns, nsid, 0, buf);
}

uint16_t qnvme_identify_cntid(QNvme *q, uint8_t cns, uint32_t nsid,
                              uint16_t cntid, void *buf)
{
    uint64_t g = guest_alloc_aligned(q->gm, 4096, 4096);
    NvmeCmd cmd;
    uint16_t st;

    memset(&cmd, 0, sizeof(cmd));
    cmd.opcode = NVME_ADM_CMD_IDENTIFY;
    cmd.nsid = nsid;
    cmd.cdw10 = cns | (uint32_t)cntid << 16;
    cmd.dptr.prp1 = g;
    guest_memset(q->gm, g, 0xa5, 4096);
    st = qnvme_admin(q, &cmd, NULL);
    if (st == NVME_SUCCESS) {
        guest_memread(q->gm, g, buf, 4096);
    }
    guest_free(q->gm, g);
    return st;
}

uint16_t qnvme_get_log(QNvme *q, uint8_t lid, uint32_t nsid, bool rae,
                       uint64_t offset, void *buf, uint32_t len)
{
    uint64_t g = guest_alloc_aligned(q->gm, QEMU_ALIGN_UP(len, 4096), 4096);
    uint32_t numd = len / 4 - 1;
    unsigned from = prp_pages_of(q)->len;
    NvmeCmd cmd;
    uint16_t st;

    memset(&cmd, 0, sizeof(cmd));
    cmd.opcode = NVME_ADM_CMD_GET_LOG_PAGE;
    cmd.nsid = nsid;
    cmd.cdw10 = lid | (rae ? NVME_LOG_RAE : 0) | ((numd & 0xffff) << 16);
    cmd.cdw11 = numd >> 16;
    cmd.cdw12 = (uint32_t)offset;
    cmd.cdw13 = offset >> 32;
    qnvme_set_prp(q, &cmd, g, len);
    guest_memset(q->gm, g, 0, len);
    st = qnvme_admin(q, &cmd, NULL);
    if (st == NVME_SUCCESS) {
        guest_memread(q->gm, g, buf, len);
    }
    qnvme_free_prps_from(q, from);
    guest_free(q->gm, g);
    return st;
}

uint16_t qnvme_get_features(QNvme *q, uint8_t fid, uint32_t sel,
                            uint32_t cdw11, uint32_t *result)
{
    NvmeCmd cmd;
    NvmeCqe cqe;
    uint16_t st;

    memset(&cmd, 0, sizeof(cmd));
    cmd.opcode = NVME_ADM_CMD_GET_FEATURES;
    cmd.cdw10 = fid | (sel << 8);
    cmd.cdw11 = cdw11;
    st = qnvme_admin(q, &cmd, &cqe);
    if (result) {
        *result = cqe.result;
    }
    return st;
}

uint16_t qnvme_set_features(QNvme *q, uint8_t fid, uint32_t cdw11,
                            uint32_t *result)
{
    NvmeCmd cmd;
    NvmeCqe cqe;
    uint16_t st;

    memset(&cmd, 0, sizeof(cmd));
    cmd.opcode = NVME_ADM_CMD_SET_FEATURES;
    cmd.cdw10 = fid;
    cmd.cdw11 = cdw11;
    st = qnvme_admin(q, &cmd, &cqe);
    if (result) {
        *result = cqe.result;
    }
    return st;
}

uint16_t qnvme_submit_aer(QNvme *q)
{
    NvmeCmd cmd;

    memset(&cmd, 0, sizeof(cmd));
    cmd.opcode = NVME_ADM_CMD_ASYNC_EV_REQ;
    return qnvme_submit(q, &q->admin, &cmd);
}

/* ---- I/O helpers ---- */

void qnvme_rw_cmd(QNvme *q, NvmeCmd *cmd, uint8_t opcode, uint32_t nsid,
                  uint64_t slba, uint32_t nlb, uint64_t buf)
{
    const QNvmeNs *ns = qnvme_ns(q, nsid);
    uint32_t lbasz = ns ? ns->lbasz : 512;

    memset(cmd, 0, sizeof(*cmd));
    cmd->opcode = opcode;
    cmd->nsid = nsid;
    cmd->cdw10 = (uint32_t)slba;
    cmd->cdw11 = slba >> 32;
    cmd->cdw12 = (nlb - 1) & 0xffff;
    if (buf) {
        qnvme_set_prp(q, cmd, buf, (uint64_t)nlb * lbasz);
    }
}

uint16_t qnvme_rw(QNvme *q, QNvmeQueue *queue, uint8_t opcode,
                  uint32_t nsid, uint64_t slba, uint32_t nlb, uint64_t buf)
{
    unsigned from = prp_pages_of(q)->len;
    NvmeCmd cmd;
    uint16_t st;

    qnvme_rw_cmd(q, &cmd, opcode, nsid, slba, nlb, buf);
    st = qnvme_cmd(q, queue, &cmd, NULL);
    qnvme_free_prps_from(q, from);
    return st;
}

uint16_t qnvme_flush(QNvme *q, QNvmeQueue *queue, uint32_t nsid)
{
    NvmeCmd cmd;

    memset(&cmd, 0, sizeof(cmd));
    cmd.opcode = NVME_CMD_FLUSH;
    cmd.nsid = nsid;
    return qnvme_cmd(q, queue, &cmd, NULL);
}

uint16_t qnvme_dbbuf_config(QNvme *q)
{
    uint64_t dbs = guest_alloc_aligned(q->gm, 4096, 4096);
    uint64_t eis = guest_alloc_aligned(q->gm, 4096, 4096);
    NvmeCmd cmd;
    uint16_t st;

    guest_memset(q->gm, dbs, 0, 4096);
    guest_memset(q->gm, eis, 0, 4096);
    memset(&cmd, 0, sizeof(cmd));
    cmd.opcode = NVME_ADM_CMD_DBBUF_CONFIG;
    cmd.dptr.prp1 = dbs;
    cmd.dptr.prp2 = eis;
    st = qnvme_admin(q, &cmd, NULL);
    if (st == NVME_SUCCESS) {
        QNvmePriv *p = (QNvmePriv *)q;

        /* The device seeded the shadows with the current values. */
        for (unsigned i = 1; i < QNVME_MAX_QUEUES; i++) {
            if (q->ioq[i]) {
                p->sq_db_last[i] = q->ioq[i]->sq_tail;
                p->cq_db_last[i] = q->ioq[i]->cq_head;
            }
        }
        q->dbbuf_dbs = dbs;
        q->dbbuf_eis = eis;
    } else {
        guest_free(q->gm, dbs);
        guest_free(q->gm, eis);
    }
    return st;
}
