/*
 * NVMe controller: properties, PCI identity, controller registers,
 * doorbells, the one reset function, interrupts and the bottom half that
 * drains submission queues.
 *
 * MMIO handlers only record state: a doorbell write validates and stores
 * the new tail (or head) and schedules the bottom half, which fetches
 * commands, maps their data and submits block requests in one batch.
 */
#include "hw/nvme/nvme.h"
#include "hw/nvme/trace.h"
#include "hw/core/stats.h"
#include "util/error.h"
#include "util/log.h"

static void nvme_write_cc(NvmeCtrl *n, uint32_t val);
static void nvme_shutdown_flush(NvmeCtrl *n);
static void nvme_enable(NvmeCtrl *n);
static void nvme_db_reset_all(NvmeCtrl *n);

void nvme_schedule(NvmeCtrl *n)
{
    device_bh_schedule(n->bh);
}

void nvme_irq_schedule(NvmeCtrl *n)
{
    device_bh_schedule(n->irq_bh);
}

static void nvme_set_state(NvmeCtrl *n, NvmeCtrlState st)
{
    static const char *const names[] = {
        [NVME_CTRL_DISABLED] = "disabled",
        [NVME_CTRL_READY] = "ready",
        [NVME_CTRL_SHUTDOWN_DRAIN] = "shutdown-drain",
        [NVME_CTRL_SHUTDOWN_FLUSH] = "shutdown-flush",
        [NVME_CTRL_FAILED] = "failed",
    };

    if (n->state != st) {
        trace_nvme_ctrl_state(nvme_id(n), names[n->state], names[st]);
        n->state = st;
    }
}

void nvme_set_fatal(NvmeCtrl *n, const char *why)
{
    if (device_work_cancelled(&n->pdev.dev)) {
        return;                 /* a reset unwinds this work: no error */
    }
    if (!(n->csts & NVME_CSTS_CFS)) {
        trace_nvme_err_fatal(nvme_id(n), why);
        n->csts |= NVME_CSTS_CFS;
        nvme_set_state(n, NVME_CTRL_FAILED);
    }
}

/* ---- error log ---- */

void nvme_error_log_add(NvmeCtrl *n, uint16_t sqid, uint16_t cid,
                        uint16_t status, uint32_t nsid, uint64_t lba)
{
    NvmeErrorLogEntry *e = &n->elog[n->elog_next];

    memset(e, 0, sizeof(*e));
    e->error_count = ++n->error_count;
    e->sqid = sqid;
    e->cid = cid;
    e->status_field = status << 1;
    e->param_error_location = NVME_ERR_LOC_NONE;
    e->lba = lba;
    e->nsid = nsid;
    n->elog_next = (n->elog_next + 1) % ARRAY_SIZE(n->elog);
}

/* ---- interrupts ---- */

static bool nvme_coalescing(NvmeCtrl *n, NvmeCQueue *cq)
{
    uint32_t v = n->features.irq_coalescing;

    /* The admin queue's vector is never coalesced. */
    return cq->cqid != 0 && NVME_IRQC_TIME(v) && NVME_IRQC_THR(v) &&
           !n->features.ivc_cd[cq->vector % NVME_MAX_QUEUES];
}

void nvme_update_intx(NvmeCtrl *n)
{
    bool level = false;

    if (pci_msix_enabled(&n->pdev) || pci_msi_enabled(&n->pdev)) {
        return;
    }
    if (!(n->intms & 1)) {
        for (unsigned i = 0; i < NVME_MAX_QUEUES; i++) {
            NvmeCQueue *cq = n->cq[i];

            if (cq && cq->irq_enabled && cq->head != cq->tail) {
                level = true;
                break;
            }
        }
    }
    if (level != n->pdev.intx_level) {
        trace_nvme_irq_pin(nvme_id(n), level);
    }
    pci_set_irq(&n->pdev, level);
}

static void nvme_irq_vector(NvmeCtrl *n, unsigned vector)
{
    if (pci_msi_enabled(&n->pdev) && vector < 32 &&
        (n->intms & (1u << vector))) {
        n->msi_pending |= 1u << vector;
        return;
    }
    trace_nvme_irq_msix(nvme_id(n), vector);
    pci_irq_notify(&n->pdev, vector);
}

/* Raise what posted CQEs are due; @force ignores coalescing thresholds. */
static void nvme_irq_flush(NvmeCtrl *n, bool force)
{
    bool msg = pci_msix_enabled(&n->pdev) || pci_msi_enabled(&n->pdev);
    uint64_t fired = 0;     /* vectors raised in this pass */
    bool arm = false;

    for (unsigned i = 0; i < NVME_MAX_QUEUES; i++) {
        NvmeCQueue *cq = n->cq[i];

        if (!cq || !cq->irq_due) {
            continue;
        }
        if (!cq->irq_enabled || !msg) {
            /* Pin-based: the level is computed below. */
            cq->irq_due = false;
            cq->coalesced = 0;
            continue;
        }
        if (!force && nvme_coalescing(n, cq) &&
            cq->coalesced <= NVME_IRQC_THR(n->features.irq_coalescing)) {
            arm = true;
            continue;
        }
        cq->irq_due = false;
        cq->coalesced = 0;
        if (cq->vector < 64) {
            if (fired & (1ULL << cq->vector)) {
                continue;
            }
            fired |= 1ULL << cq->vector;
        }
        n->qstats[cq->cqid].interrupts++;
        nvme_irq_vector(n, cq->vector);
    }
    if (!msg) {
        nvme_update_intx(n);
    }
    if (arm && !device_timer_pending(n->coalesce_timer)) {
        int64_t us = NVME_IRQC_TIME(n->features.irq_coalescing) * 100;

        device_timer_mod(n->coalesce_timer, clock_ns() + us * 1000);
    }
}

static void nvme_irq_bh(void *opaque)
{
    nvme_irq_flush(opaque, false);
}

static void nvme_coalesce_timer_cb(void *opaque)
{
    nvme_irq_flush(opaque, true);
}

/* ---- keep alive ---- */

static void nvme_kato_cb(void *opaque)
{
    NvmeCtrl *n = opaque;

    if (!n->features.kato || n->state != NVME_CTRL_READY) {
        return;
    }
    trace_nvme_err_kato_expired(nvme_id(n), n->features.kato);
    nvme_error_log_add(n, 0xffff, 0xffff, NVME_KATO_EXPIRED, 0, 0);
    nvme_set_fatal(n, "keep alive timeout expired");
}

void nvme_kato_restart(NvmeCtrl *n)
{
    if (n->features.kato && n->state == NVME_CTRL_READY) {
        /* Round up to the 100 ms granularity of KAS. */
        uint64_t ms = QEMU_ALIGN_UP((uint64_t)n->features.kato, 100);

        device_timer_mod(n->kato_timer, clock_ns() + ms * 1000000);
    } else {
        device_timer_del(n->kato_timer);
    }
}

/* ---- work ---- */

/* Fetch and start commands; flush CQ wait lists; complete AERs. */
static void nvme_process_bh(void *opaque)
{
    NvmeCtrl *n = opaque;

    if (n->state == NVME_CTRL_DISABLED) {
        return;
    }
    for (unsigned i = 0; i < NVME_MAX_QUEUES; i++) {
        if (n->cq[i] && !g_queue_is_empty(&n->cq[i]->waitq)) {
            nvme_cq_flush_waitq(n, n->cq[i]);
        }
    }
    for (unsigned i = 1; i < NVME_MAX_QUEUES; i++) {
        NvmeSQueue *sq = n->sq[i];

        if (sq && sq->delete_req && sq->inflight == 0) {
            nvme_sq_delete_finish(n, sq);
        }
    }
    if (n->aer_outstanding && n->aer_queued) {
        nvme_aer_process(n);
    }
    if (!nvme_ready(n)) {
        return;
    }
    /*
     * I/O queues first, the admin queue last: a Delete I/O SQ that came
     * with its queue's last doorbell (one message batch, or one pass over
     * doorbells in memory) finds those commands fetched and waits for them.
     */
    for (unsigned k = 1; k <= NVME_MAX_QUEUES && nvme_ready(n); k++) {
        NvmeSQueue *sq = n->sq[k % NVME_MAX_QUEUES];

        if (sq && !sq->deleting) {
            nvme_process_sq(n, sq);
        }
    }
}

void nvme_req_complete_later(NvmeRequest *req)
{
    NvmeCtrl *n = req->sq->ctrl;

    if (nvme_resetting(n)) {
        nvme_req_drop(req);         /* the host is not told any more */
        return;
    }
    g_queue_push_tail_link(&n->completed, &req->link);
    device_bh_schedule(n->complete_bh);
}

/* Finish what the block layer completed: data out, CQEs, interrupts. */
static void nvme_complete_bh(void *opaque)
{
    NvmeCtrl *n = opaque;
    GList *l;

    while ((l = g_queue_pop_head_link(&n->completed))) {
        NvmeRequest *req = l->data;

        nvme_req_finish(n, req);
        nvme_req_complete(req);
    }
    if (n->state == NVME_CTRL_SHUTDOWN_DRAIN && !n->blk_inflight) {
        nvme_shutdown_flush(n);
    }
    if (n->dead_views) {
        nvme_ns_reap(n);
    }
}

/* The last request left the block layer. */
void nvme_blk_idle(NvmeCtrl *n)
{
    if (n->state == NVME_CTRL_SHUTDOWN_DRAIN) {
        device_bh_schedule(n->complete_bh);
    }
}

/* ---- controller enable, reset, shutdown ---- */

static bool nvme_start_ctrl(NvmeCtrl *n)
{
    uint32_t cc = n->cc;
    unsigned mps = NVME_CC_MPS(cc);
    uint32_t page = 1u << (12 + mps);
    uint32_t asqs = NVME_AQA_ASQS(n->aqa) + 1;
    uint32_t acqs = NVME_AQA_ACQS(n->aqa) + 1;
    const char *why = NULL;

    if (n->sq[0] || n->cq[0]) {
        why = "admin queues exist";
    } else if (mps < NVME_CAP_MPSMIN(n->cap) ||
               mps > NVME_CAP_MPSMAX(n->cap)) {
        why = "CC.MPS out of range";
    } else if (NVME_CC_CSS(cc) != 0) {
        why = "CC.CSS is not the NVM command set";
    } else if (NVME_CC_AMS(cc) != 0) {
        why = "CC.AMS is not round robin";
    } else if (NVME_CC_IOSQES(cc) != NVME_SQES) {
        why = "CC.IOSQES is not 6";
    } else if (NVME_CC_IOCQES(cc) != NVME_CQES) {
        why = "CC.IOCQES is not 4";
    } else if (asqs < 2 || acqs < 2) {
        why = "admin queue size below 2";
    } else if (!n->asq || !n->acq || (n->asq & (page - 1)) ||
               (n->acq & (page - 1))) {
        why = "admin queue base not page aligned";
    }
    if (why) {
        trace_nvme_err_startfail(nvme_id(n), why, cc, n->aqa, n->asq,
                                 n->acq);
        return false;
    }
    n->page_size = page;
    n->page_bits = 12 + mps;
    nvme_cq_new(n, 0, n->acq, acqs, 0, true);
    nvme_sq_new(n, 0, 0, n->asq, asqs);
    n->features.ts_set_ns = clock_ns();
    trace_nvme_ctrl_enable(nvme_id(n), page, asqs, acqs);
    return true;
}

/* ---- shutdown (CC.SHN) ---- */

static void nvme_shutdown_done(NvmeCtrl *n)
{
    n->csts = (n->csts & ~NVME_CSTS_SHST_MASK) |
              (NVME_CSTS_SHST_COMPLETE << NVME_CSTS_SHST_SHIFT);
    trace_nvme_ctrl_shutdown_done(nvme_id(n));
    nvme_set_state(n, NVME_CTRL_READY);
    /* Commands that came in meanwhile are fetched again. */
    nvme_schedule(n);
}

static void nvme_shutdown_flush_cb(void *opaque, int ret)
{
    NvmeNamespace *ns = opaque;
    NvmeCtrl *n = ns->ctrl;

    if (ret < 0) {
        trace_nvme_flush_failed(nvme_id(n), ns->nsid, ret);
    }
    pci_dma_release(&n->pdev);
    if (--n->shutdown_flushes == 0 && !nvme_resetting(n) &&
        n->state == NVME_CTRL_SHUTDOWN_FLUSH) {
        nvme_shutdown_done(n);
    }
}

/* Nothing is in flight any more: flush every writable namespace. */
static void nvme_shutdown_flush(NvmeCtrl *n)
{
    nvme_set_state(n, NVME_CTRL_SHUTDOWN_FLUSH);
    n->shutdown_flushes = 1;            /* until every flush started */
    for (unsigned i = 1; i <= NVME_MAX_NAMESPACES; i++) {
        NvmeNamespace *ns = n->ns[i];

        if (ns && !ns->read_only) {
            /* A reset waits for the flush like for any request. */
            pci_dma_hold(&n->pdev);
            if (blk_flush(ns->blk, &ns->flush_req, nvme_shutdown_flush_cb,
                          ns) == 0) {
                n->shutdown_flushes++;
            } else {
                pci_dma_release(&n->pdev);
            }
        }
    }
    if (--n->shutdown_flushes == 0) {
        nvme_shutdown_done(n);
    }
}

/* The last step of a stop (migration, upgrade): flush every namespace. */
static void nvme_stop_flush_cb(void *opaque, int ret)
{
    NvmeNamespace *ns = opaque;

    if (ret < 0) {
        trace_nvme_flush_failed(nvme_id(ns->ctrl), ns->nsid, ret);
    }
    device_stop_flush_done(&ns->ctrl->pdev.dev, ret);
    pci_dma_release(&ns->ctrl->pdev);
}

static void nvme_stop_flush(Device *dev)
{
    NvmeCtrl *n = NVME(dev);

    for (unsigned i = 1; i <= NVME_MAX_NAMESPACES; i++) {
        NvmeNamespace *ns = n->ns[i];

        if (ns && !ns->read_only &&
            !(dev->stop_for == DEVICE_STOP_UPGRADE &&
              blk_host_coherent(ns->blk))) {
            pci_dma_hold(&n->pdev);
            if (blk_flush(ns->blk, &ns->flush_req, nvme_stop_flush_cb,
                          ns) < 0) {
                device_stop_flush_done(dev, -EIO);
                pci_dma_release(&n->pdev);
            }
        }
    }
}

/*
 * CC.SHN: stop fetching, let what is in flight complete, flush, then
 * report SHST complete.  Nothing waits here: the last completion brings
 * the work back (nvme_complete_bh).
 */
static void nvme_shutdown(NvmeCtrl *n)
{
    trace_nvme_ctrl_shutdown(nvme_id(n), NVME_CC_SHN(n->cc));
    if (n->state == NVME_CTRL_DISABLED || n->state == NVME_CTRL_FAILED) {
        /* No queues, nothing in flight: complete at once. */
        n->csts = (n->csts & ~NVME_CSTS_SHST_MASK) |
                  (NVME_CSTS_SHST_COMPLETE << NVME_CSTS_SHST_SHIFT);
        return;
    }
    if (n->state != NVME_CTRL_READY) {
        return;                 /* one is under way */
    }
    n->csts = (n->csts & ~NVME_CSTS_SHST_MASK) |
              (NVME_CSTS_SHST_OCCURRING << NVME_CSTS_SHST_SHIFT);
    nvme_set_state(n, NVME_CTRL_SHUTDOWN_DRAIN);
    if (n->blk_inflight) {
        trace_nvme_ctrl_wait(nvme_id(n), "shutdown", n->blk_inflight);
    }
    /* Requests held by a stop policy would wait for a cont: fail them. */
    nvme_ns_cancel_queued(n, false);
    device_bh_schedule(n->complete_bh);
}

/* ---- enable and reset ---- */

/*
 * The one reset (DeviceClass.reset, run by hw/core once nothing is in the
 * block layer and no work runs).  CC.EN 1 -> 0 (DEVICE_RESET_DEVICE)
 * keeps the admin queue registers and the PCI function state; a function
 * reset clears those too.
 */
static void nvme_ctrl_reset(NvmeCtrl *n, DeviceResetKind kind)
{
    trace_nvme_ctrl_reset(nvme_id(n), kind);
    device_bh_cancel(n->bh);
    device_bh_cancel(n->complete_bh);
    device_bh_cancel(n->irq_bh);
    device_timer_del(n->coalesce_timer);
    device_timer_del(n->kato_timer);
    g_assert(n->blk_inflight == 0 && g_queue_is_empty(&n->completed));

    for (unsigned i = NVME_MAX_QUEUES; i-- > 0;) {
        if (n->sq[i]) {
            nvme_sq_free(n, n->sq[i]);
        }
    }
    for (unsigned i = NVME_MAX_QUEUES; i-- > 0;) {
        if (n->cq[i]) {
            nvme_cq_free(n, n->cq[i]);
        }
    }
    g_assert(n->aer_outstanding == 0);
    n->aer_queued = 0;
    n->aer_masked = 0;
    n->dbbuf_enabled = false;
    n->dbbuf_dbs = n->dbbuf_eis = 0;
    nvme_db_reset_all(n);
    nvme_features_reset(n);
    nvme_resv_ctrl_reset(n);
    n->intms = 0;
    n->msi_pending = 0;
    n->csts = 0;
    nvme_set_state(n, NVME_CTRL_DISABLED);
    n->page_size = 4096;
    n->page_bits = 12;
    if (kind == DEVICE_RESET_FUNCTION) {
        n->cc = 0;
        n->aqa = 0;
        n->asq = 0;
        n->acq = 0;
        pci_device_reset(&n->pdev);
    } else {
        pci_set_irq(&n->pdev, false);
    }
}

static void nvme_reset(Device *dev, DeviceResetKind kind)
{
    NvmeCtrl *n = NVME(dev);

    nvme_ctrl_reset(n, kind);
    /* What the host wrote meanwhile (it should have waited for RDY=0). */
    if (n->cc & NVME_CC_EN) {
        nvme_enable(n);
    }
}

/*
 * Reset step 3: completions not yet posted are dropped, requests held by
 * the stop policy fail, and those a throttle holds too when the function
 * resets (CC.EN 1 -> 0 lets them through: the host wrote them); what the
 * backend has completes.
 */
static void nvme_quiesce(Device *dev, DeviceResetKind kind)
{
    NvmeCtrl *n = NVME(dev);
    GList *l;

    while ((l = g_queue_pop_head_link(&n->completed))) {
        nvme_req_drop(l->data);
    }
    nvme_ns_cancel_queued(n, kind == DEVICE_RESET_FUNCTION);
    if (n->blk_inflight) {
        trace_nvme_ctrl_wait(nvme_id(n), "reset", n->blk_inflight);
    }
}

static void nvme_db_reset_all(NvmeCtrl *n)
{
    for (unsigned q = 0; q < NVME_MAX_QUEUES; q++) {
        nvme_db_reset(n, q, false);
        nvme_db_reset(n, q, true);
    }
}

static void nvme_enable(NvmeCtrl *n)
{
    /* Doorbells written while disabled are ignored (here: dropped). */
    nvme_db_reset_all(n);
    n->db_mem_used = false;
    n->csts &= ~NVME_CSTS_SHST_MASK;
    if (nvme_start_ctrl(n)) {
        n->csts |= NVME_CSTS_RDY;
        nvme_set_state(n, NVME_CTRL_READY);
    } else {
        n->csts |= NVME_CSTS_CFS;
        nvme_set_state(n, NVME_CTRL_FAILED);
    }
}

/* CC (NVMe 1.4 3.1.5): EN 1 -> 0 is a Controller Reset (7.3.2). */
static void nvme_write_cc(NvmeCtrl *n, uint32_t val)
{
    uint32_t old = n->cc;
    const uint32_t mask = NVME_CC_EN | (0x7u << NVME_CC_CSS_SHIFT) |
                          (0xfu << NVME_CC_MPS_SHIFT) |
                          (0x7u << NVME_CC_AMS_SHIFT) |
                          (0x3u << NVME_CC_SHN_SHIFT) |
                          (0xfu << NVME_CC_IOSQES_SHIFT) |
                          (0xfu << NVME_CC_IOCQES_SHIFT);

    trace_nvme_mmio_cc(nvme_id(n), old, val);
    val &= mask;
    n->cc = val;
    if (nvme_resetting(n)) {
        /* Applied once the reset is done (a host that did not wait). */
        return;
    }
    if ((old & NVME_CC_EN) && !(val & NVME_CC_EN)) {
        /*
         * Outstanding requests complete (their CQEs are dropped) before
         * CSTS.RDY drops; hw/core holds the host's next accesses until
         * then (section 3.7.2 of the NVMe 1.4 base specification).
         */
        device_reset(&n->pdev.dev, DEVICE_RESET_DEVICE, NULL, NULL);
        return;
    }
    if (!(old & NVME_CC_EN) && (val & NVME_CC_EN)) {
        nvme_enable(n);
    }
    if (NVME_CC_SHN(val) != NVME_CC_SHN_NONE &&
        NVME_CC_SHN(old) == NVME_CC_SHN_NONE) {
        nvme_shutdown(n);
    }
}

/* ---- doorbells ---- */

/*
 * A doorbell write to a queue that does not exist, or of a value past the
 * queue: an Error asynchronous event, Invalid Doorbell Register or Value
 * (NVMe 1.4 4.1, 5.2); the write itself is ignored.
 */
static void nvme_doorbell_error(NvmeCtrl *n, uint8_t info)
{
    nvme_error_log_add(n, 0xffff, 0xffff, NVME_INVALID_FIELD, 0, 0);
    nvme_aer_enqueue(n, NVME_AER_TYPE_ERROR, info, NVME_LOG_ERROR_INFO);
}

static void nvme_doorbell(NvmeCtrl *n, uint64_t addr, uint32_t val)
{
    unsigned idx = (addr - NVME_REG_DBS) >> 2;
    unsigned qid = idx >> 1;
    bool is_cq = idx & 1;

    if (!nvme_queues_live(n)) {
        trace_nvme_err_db_not_ready(nvme_id(n), addr, val);
        return;
    }
    if (is_cq) {
        NvmeCQueue *cq = qid < NVME_MAX_QUEUES ? n->cq[qid] : NULL;

        if (!cq) {
            trace_nvme_err_db_no_cq(nvme_id(n), qid, val);
            nvme_doorbell_error(n, NVME_AER_INFO_ERR_INVALID_DB_REGISTER);
            return;
        }
        /* The new head may only consume posted entries. */
        if (val >= cq->size ||
            (val + cq->size - cq->head) % cq->size > nvme_cq_used(cq)) {
            trace_nvme_err_db_cq_value(nvme_id(n), qid, val, cq->head,
                                       cq->tail, cq->size);
            nvme_doorbell_error(n, NVME_AER_INFO_ERR_INVALID_DB_VALUE);
            return;
        }
        trace_nvme_db_cq(nvme_id(n), qid, val);
        if (cq->db_addr) {
            /*
             * Shadow doorbells: the shadow is the truth (this value may be
             * older than what we read there); it is read when it matters,
             * in the worker, for a full queue.
             */
            if (!g_queue_is_empty(&cq->waitq)) {
                nvme_schedule(n);
            }
            return;
        }
        cq->head = val;
        if (!pci_msix_enabled(&n->pdev) && !pci_msi_enabled(&n->pdev)) {
            nvme_update_intx(n);
        }
        if (!g_queue_is_empty(&cq->waitq)) {
            nvme_schedule(n);
        }
    } else {
        NvmeSQueue *sq = qid < NVME_MAX_QUEUES ? n->sq[qid] : NULL;

        if (!sq) {
            trace_nvme_err_db_no_sq(nvme_id(n), qid, val);
            nvme_doorbell_error(n, NVME_AER_INFO_ERR_INVALID_DB_REGISTER);
            return;
        }
        if (val >= sq->size) {
            trace_nvme_err_db_sq_value(nvme_id(n), qid, val, sq->size);
            nvme_doorbell_error(n, NVME_AER_INFO_ERR_INVALID_DB_VALUE);
            return;
        }
        trace_nvme_db_sq(nvme_id(n), qid, val);
        if (!sq->db_addr) {
            sq->tail = val;     /* else the worker reads the shadow */
        }
        nvme_schedule(n);
    }
}

/* ---- doorbells in memory ---- */

/*
 * A doorbell slot in memory holds NVME_DB_IDLE until the guest writes it;
 * the poller takes the value and puts NVME_DB_IDLE back (compare and
 * swap, so a write that lands meanwhile is not lost).  So every write is
 * seen, even one of the same value as the last: with shadow doorbells the
 * device reads tails it never saw here, and the next write may repeat one.
 */
#define NVME_DB_IDLE 0xffffffffu

void nvme_db_reset(NvmeCtrl *n, uint16_t qid, bool cq)
{
    /* Adopted from the old process (live upgrade): the guest's, live. */
    if (n->db_page && !pci_bar_mem_adopted(&n->pdev, NVME_BAR_REGS)) {
        __atomic_store_n(&n->db_page[2 * qid + cq], NVME_DB_IDLE,
                         __ATOMIC_RELAXED);
    }
}

/* The watch poller: a doorbell written in the page, as if trapped. */
static bool nvme_db_poll(void *opaque)
{
    NvmeCtrl *n = opaque;
    bool found = false;

    if (!nvme_queues_live(n)) {
        return false;
    }
    /* Every slot: a write to a queue that does not exist is an error. */
    for (unsigned i = 0; i < 2 * NVME_MAX_QUEUES; i++) {
        /* Acquire: the entries the guest wrote before the doorbell. */
        uint32_t v = __atomic_load_n(&n->db_page[i], __ATOMIC_ACQUIRE);

        if (v != NVME_DB_IDLE &&
            __atomic_compare_exchange_n(&n->db_page[i], &v, NVME_DB_IDLE,
                                        false, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED)) {
            if (!n->db_mem_used) {
                n->db_mem_used = true;
                trace_nvme_db_mem_first(nvme_id(n), i, v);
            }
            nvme_doorbell(n, NVME_REG_DBS + 4ULL * i, v);
            found = true;
        }
    }
    return found;
}

static bool nvme_db_mmap_init(NvmeCtrl *n, uint64_t bar0_size, GError **errp)
{
    Device *dev = &n->pdev.dev;
    uint8_t *mem;

    if (n->doorbells == NVME_DOORBELLS_TRAP ||
        (n->doorbells == NVME_DOORBELLS_AUTO &&
         (dev->loop == loop_main() || !loop_poll_max_ns(dev->loop)))) {
        return true;
    }
    mem = pci_bar_add_sparse_mmap(&n->pdev, NVME_BAR_REGS, NVME_REG_DBS,
                                  bar0_size - NVME_REG_DBS, errp);
    if (!mem) {
        return false;
    }
    n->db_page = (uint32_t *)(mem + NVME_REG_DBS);
    n->db_poller = loop_poller_new(dev->loop, nvme_db_poll, NULL, n);
    loop_poller_set_watch(n->db_poller, true);
    return true;
}

/* Trapped doorbells on an iothread that polls: poll the shadows too. */
static void nvme_shadow_poll_init(NvmeCtrl *n)
{
    Device *dev = &n->pdev.dev;

    if (!n->db_page && dev->loop != loop_main() &&
        loop_poll_max_ns(dev->loop)) {
        n->shadow_poller = loop_poller_new(dev->loop, nvme_shadow_poll,
                                           nvme_shadow_poll_started, n);
    }
}

/* ---- registers ---- */

static uint64_t nvme_mmio_read(void *opaque, uint64_t addr, unsigned size)
{
    NvmeCtrl *n = opaque;
    uint8_t regs[0x40] = { 0 };
    uint64_t val;

    if (addr >= NVME_REG_DBS) {
        /* Doorbells are write-only. */
        return 0;
    }
    if (addr + size > sizeof(regs)) {
        /* Optional registers iovd does not implement (PMRCAP...). */
        trace_nvme_mmio_read(nvme_id(n), addr, size, 0);
        return 0;
    }
    stq_le_p(regs + NVME_REG_CAP, n->cap);
    stl_le_p(regs + NVME_REG_VS, n->vs);
    stl_le_p(regs + NVME_REG_INTMS, n->intms);
    stl_le_p(regs + NVME_REG_INTMC, n->intms);
    stl_le_p(regs + NVME_REG_CC, n->cc);
    stl_le_p(regs + NVME_REG_CSTS, n->csts);
    stl_le_p(regs + NVME_REG_AQA, n->aqa);
    stq_le_p(regs + NVME_REG_ASQ, n->asq);
    stq_le_p(regs + NVME_REG_ACQ, n->acq);
    val = ldn_le_p(regs + addr, size);
    trace_nvme_mmio_read(nvme_id(n), addr, size, val);
    return val;
}

static void nvme_write_intm(NvmeCtrl *n, uint32_t val, bool set)
{
    if (pci_msix_enabled(&n->pdev)) {
        /* Undefined with MSI-X: the MSI-X table masks. */
        trace_nvme_err_intm_msix(nvme_id(n), val);
        return;
    }
    if (set) {
        n->intms |= val;
    } else {
        uint32_t fire = n->msi_pending & val;

        n->intms &= ~val;
        n->msi_pending &= ~val;
        for (unsigned v = 0; fire; v++, fire >>= 1) {
            if (fire & 1) {
                pci_irq_notify(&n->pdev, v);
            }
        }
    }
    nvme_update_intx(n);
}

static void nvme_mmio_write(void *opaque, uint64_t addr, uint64_t val,
                            unsigned size)
{
    NvmeCtrl *n = opaque;

    trace_nvme_mmio_write(nvme_id(n), addr, size, val);
    if (size == 8 && addr != NVME_REG_ASQ && addr != NVME_REG_ACQ &&
        addr != NVME_REG_CAP) {
        nvme_mmio_write(opaque, addr, (uint32_t)val, 4);
        nvme_mmio_write(opaque, addr + 4, val >> 32, 4);
        return;
    }
    if (size < 4 || (addr & 3)) {
        trace_nvme_err_mmio_write(nvme_id(n), addr, size, val);
        return;
    }
    if (addr >= NVME_REG_DBS) {
        nvme_doorbell(n, addr, val);
        return;
    }
    switch (addr) {
    case NVME_REG_INTMS:
        nvme_write_intm(n, val, true);
        break;
    case NVME_REG_INTMC:
        nvme_write_intm(n, val, false);
        break;
    case NVME_REG_CC:
        nvme_write_cc(n, val);
        break;
    case NVME_REG_NSSR:
        /* CAP.NSSRS is 0: NVM subsystem reset is not supported. */
        trace_nvme_err_nssr(nvme_id(n), val);
        break;
    case NVME_REG_AQA:
        n->aqa = val & 0x0fff0fff;
        break;
    case NVME_REG_ASQ:
        if (size == 8) {
            n->asq = val & ~0xfffULL;
        } else {
            n->asq = (n->asq & ~0xffffffffULL) | (val & 0xfffff000);
        }
        break;
    case NVME_REG_ASQ + 4:
        n->asq = (n->asq & 0xffffffffULL) | (val << 32);
        break;
    case NVME_REG_ACQ:
        if (size == 8) {
            n->acq = val & ~0xfffULL;
        } else {
            n->acq = (n->acq & ~0xffffffffULL) | (val & 0xfffff000);
        }
        break;
    case NVME_REG_ACQ + 4:
        n->acq = (n->acq & 0xffffffffULL) | (val << 32);
        break;
    default:
        trace_nvme_err_mmio_write(nvme_id(n), addr, size, val);
        break;
    }
}

static const PCIBarOps nvme_mmio_ops = {
    .read = nvme_mmio_read,
    .write = nvme_mmio_write,
};

/* ---- device class ---- */

static void nvme_run_state_changed(Device *dev, bool running)
{
    NvmeCtrl *n = NVME(dev);

    trace_nvme_pause(nvme_id(n), !running);
    if (running) {
        nvme_schedule(n);
    }
}

static bool nvme_check_props(NvmeCtrl *n, GError **errp)
{
    if (n->logical_block_size != 512 && n->logical_block_size != 4096) {
        error_setg(errp, "property 'logical_block_size': must be 512 or "
                   "4096, not %u", n->logical_block_size);
        return false;
    }
    if (!n->serial) {
        n->serial = g_strdup(nvme_id(n));
    }
    if (strlen(n->serial) > 20) {
        error_setg(errp, "property 'serial': '%s' is longer than 20 "
                   "characters", n->serial);
        return false;
    }
    if (n->model && strlen(n->model) > 40) {
        error_setg(errp, "property 'model': longer than 40 characters");
        return false;
    }
    if (n->rerror == BLK_ERR_ENOSPC) {
        error_setg(errp, "property 'rerror': 'enospc' is for writes only");
        return false;
    }
    return true;
}

/* What realize made before the PCI function: namespace 1, identity. */
static void nvme_realize_undo(NvmeCtrl *n)
{
    if (n->ns1.blk) {
        nvme_ns_detach(n, &n->ns1);
        nvme_ns_cleanup(&n->ns1);
    }
    nvme_resv_ctrl_leave(n);
    g_free(n->sn);
    g_free(n->subnqn);
    n->sn = n->subnqn = NULL;
}

/* Identity and namespaces: namespace 1, then the subsystem's. */
static bool nvme_realize_identity(NvmeCtrl *n, GError **errp)
{
    /* Without a subsystem, a subsystem of its own. */
    n->sn = g_strdup(n->serial);
    n->subnqn = g_strdup_printf("nqn.2024-01.io.iovd:nvme:%s", n->serial);
    if (n->drive) {
        if (!nvme_ns_init(n, &n->ns1, n->drive, 1, n->logical_block_size,
                          n->share_rw, nvme_id(n), errp)) {
            nvme_realize_undo(n);
            return false;
        }
        nvme_ns_attach(n, &n->ns1);
    }
    if (n->subsys_id && !nvme_subsys_register_ctrl(n, errp)) {
        nvme_realize_undo(n);
        return false;
    }
    /* With its CNTLID: reservations shared with its subsystem's. */
    nvme_resv_ctrl_join(n, n->subsys ? n->subsys->resv_dom : NULL);
    return true;
}

static bool nvme_realize(Device *dev, GError **errp)
{
    NvmeCtrl *n = NVME(dev);
    PCIDevice *pdev = &n->pdev;
    static const PCIDeviceInfo info = {
        .vendor_id = NVME_PCI_VENDOR_ID,
        .device_id = NVME_PCI_DEVICE_ID,
        .subsystem_vendor_id = 0x1af4,
        .subsystem_id = 0x1100,
        .revision = 2,
        .class_code = NVME_PCI_CLASS,
        .express = true,
        .interrupt_pin = 1,
    };
    uint64_t bar0_size;

    if (!nvme_check_props(n, errp)) {
        return false;
    }
    n->nr_vectors = n->max_ioqpairs + 1;
    n->cap = (uint64_t)n->mqes << NVME_CAP_MQES_SHIFT |
             NVME_CAP_CQR |
             (uint64_t)NVME_CAP_TO_VALUE << NVME_CAP_TO_SHIFT |
             NVME_CAP_CSS_NVM << NVME_CAP_CSS_SHIFT |
             0ULL << NVME_CAP_MPSMIN_SHIFT |
             (uint64_t)NVME_MPSMAX << NVME_CAP_MPSMAX_SHIFT;
    n->vs = NVME_VS_1_4;
    n->page_size = 4096;
    n->page_bits = 12;
    n->power_on_ns = clock_ns();
    if (!nvme_realize_identity(n, errp)) {
        return false;
    }

    pci_device_init(pdev, &info);
    /* Registers, then the doorbells on a page of their own. */
    bar0_size = NVME_REG_DBS + MAX(4096u, 8u * NVME_MAX_QUEUES);
    pci_register_bar(pdev, NVME_BAR_REGS, PCI_BAR_MEM64, bar0_size,
                     &nvme_mmio_ops, n);
    if (!nvme_db_mmap_init(n, bar0_size, errp)) {
        pci_device_cleanup(pdev);
        nvme_subsys_unregister_ctrl(n);
        nvme_realize_undo(n);
        return false;
    }
    nvme_shadow_poll_init(n);
    pci_register_bar(pdev, NVME_BAR_MSIX, PCI_BAR_MEM32, 4096, NULL, NULL);
    pci_add_pm_cap(pdev);
    pci_add_msix_cap(pdev, n->nr_vectors, NVME_BAR_MSIX, 0, NVME_BAR_MSIX,
                     2048);

    g_queue_init(&n->completed);
    n->bh = device_bh_new(dev, nvme_process_bh, n);
    n->complete_bh = device_bh_new(dev, nvme_complete_bh, n);
    n->irq_bh = device_bh_new(dev, nvme_irq_bh, n);
    n->coalesce_timer = device_timer_new(dev, nvme_coalesce_timer_cb, n);
    n->kato_timer = device_timer_new(dev, nvme_kato_cb, n);
    nvme_ctrl_reset(n, DEVICE_RESET_FUNCTION);
    trace_nvme_realize(nvme_id(n), n->max_ioqpairs, n->mqes,
                       n->drive ? n->drive : "");
    return true;
}

static void nvme_unrealize(Device *dev)
{
    NvmeCtrl *n = NVME(dev);

    nvme_subsys_unregister_ctrl(n);
    nvme_ns_reap(n);
    g_assert(!n->dead_views);
    nvme_realize_undo(n);
    device_bh_delete(n->bh);
    device_bh_delete(n->complete_bh);
    device_bh_delete(n->irq_bh);
    device_timer_free(n->coalesce_timer);
    device_timer_free(n->kato_timer);
    loop_poller_free(n->db_poller);
    loop_poller_free(n->shadow_poller);
    g_free(n->bit_bucket);
    pci_device_cleanup(&n->pdev);
}

static const char *const nvme_doorbells_names[] = {
    "auto", "trap", "mmap", NULL
};

static const PropDef nvme_props[] = {
    PROP_DEF_STR("drive", NvmeCtrl, drive,
                 "block node of namespace 1 (more with -device nvme-ns)"),
    PROP_DEF_STR("serial", NvmeCtrl, serial,
                 "serial number, up to 20 characters (default: the id; in "
                 "a subsystem its first controller's)"),
    PROP_DEF_STR("subsys", NvmeCtrl, subsys_id,
                 "id of the nvme-subsys this controller belongs to"),
    PROP_DEF_STR("model", NvmeCtrl, model,
                 "model number, up to 40 characters"),
    PROP_DEF_UINT("max_ioqpairs", NvmeCtrl, max_ioqpairs,
                  "I/O queue pairs (MSI-X vectors = this + 1)",
                  .min = 1, .max = NVME_MAX_IOQPAIRS, .defval = "8"),
    PROP_DEF_UINT("mqes", NvmeCtrl, mqes,
                  "maximum queue entries supported, 0's based (CAP.MQES)",
                  .min = 1, .max = 0xffff, .defval = "1023"),
    PROP_DEF_UINT("logical_block_size", NvmeCtrl, logical_block_size,
                  "LBA size of the namespaces: 512 or 4096",
                  .min = 512, .max = 4096, .defval = "512"),
    PROP_DEF_BOOL("share-rw", NvmeCtrl, share_rw,
                  "allow other devices to use the drive too",
                  .defval = "off"),
    PROP_DEF_ENUM("rerror", NvmeCtrl, rerror, blk_error_policy_names,
                  "action on read errors", .defval = "report"),
    PROP_DEF_ENUM("werror", NvmeCtrl, werror, blk_error_policy_names,
                  "action on write errors", .defval = "report"),
    PROP_DEF_ENUM("doorbells", NvmeCtrl, doorbells, nvme_doorbells_names,
                  "trap: doorbell writes are messages (rare with shadow "
                  "doorbells on an iothread that polls); mmap: the "
                  "doorbell page is guest-mappable memory that the device "
                  "polls; auto: mmap on an iothread that polls",
                  .defval = "auto"),
    PROP_DEF_END
};

/* A controller without a namespace is legal (nvme-ns may come) but odd. */
static void nvme_startup_check(Device *dev)
{
    NvmeCtrl *n = NVME(dev);

    for (unsigned i = 1; i <= NVME_MAX_NAMESPACES; i++) {
        if (n->ns[i]) {
            return;
        }
    }
    iovd_warn("%s: nvme has no namespace (drive=, or -device "
              "nvme-ns,bus=%s,drive=...): the guest sees no disk",
              nvme_id(n), nvme_id(n));
}

/* ---- statistics (query-stats) ---- */

static const StatsSchema nvme_stats_device = {
    .provider = "nvme",
    .target = STATS_TARGET_DEVICE,
    .stats = (const StatsDesc[]) {
        /* As the SMART / Health log counts them. */
        { "read-commands", STATS_CUMULATIVE },
        { "write-commands", STATS_CUMULATIVE },
        { "read-bytes", STATS_CUMULATIVE, STATS_UNIT_BYTES },
        { "write-bytes", STATS_CUMULATIVE, STATS_UNIT_BYTES },
        { "media-errors", STATS_CUMULATIVE },
        { "error-log-entries", STATS_CUMULATIVE },
        { NULL }
    },
};

/* Queue N: submission queue N and completion queue N. */
static const StatsSchema nvme_stats_queue = {
    .provider = "nvme",
    .target = STATS_TARGET_QUEUE,
    .stats = (const StatsDesc[]) {
        { "requests", STATS_CUMULATIVE },
        { "errors", STATS_CUMULATIVE },
        { "inflight", STATS_INSTANT },
        { "completions", STATS_CUMULATIVE },
        { "interrupts", STATS_CUMULATIVE },
        { NULL }
    },
};

static const StatsSchema *const nvme_stats[] = {
    &nvme_stats_device, &nvme_stats_queue, NULL
};

static void nvme_get_stats(Device *dev, StatsCollector *c)
{
    NvmeCtrl *n = NVME(dev);

    if (stats_begin(c, &nvme_stats_device, -1)) {
        stats_put(c, "read-commands", n->read_cmds);
        stats_put(c, "write-commands", n->write_cmds);
        stats_put(c, "read-bytes", n->bytes_read);
        stats_put(c, "write-bytes", n->bytes_written);
        stats_put(c, "media-errors", n->media_errors);
        stats_put(c, "error-log-entries", n->error_count);
    }
    /* The queues that exist now; their counters last from realize. */
    for (unsigned i = 0; i < NVME_MAX_QUEUES; i++) {
        const NvmeQueueStats *q = &n->qstats[i];

        if ((!n->sq[i] && !n->cq[i]) ||
            !stats_begin(c, &nvme_stats_queue, i)) {
            continue;
        }
        stats_put(c, "requests", q->requests);
        stats_put(c, "errors", q->errors);
        stats_put(c, "inflight", n->sq[i] ? n->sq[i]->inflight : 0);
        stats_put(c, "completions", q->completions);
        stats_put(c, "interrupts", q->interrupts);
    }
}

const DeviceClass nvme_class = {
    .name = "nvme",
    .desc = "NVM Express controller (NVMe 1.4, PCIe)",
    .instance_size = sizeof(NvmeCtrl),
    .is_pci = true,
    .base_props = pci_common_props,
    .props = nvme_props,
    .realize = nvme_realize,
    .unrealize = nvme_unrealize,
    .quiesce = nvme_quiesce,
    .reset = nvme_reset,
    .run_state_changed = nvme_run_state_changed,
    .save_state = nvme_save_state,
    .load_state = nvme_load_state,
    .stop_flush = nvme_stop_flush,
    .startup_check = nvme_startup_check,
    .stats = nvme_stats,
    .get_stats = nvme_get_stats,
};

static void __attribute__((constructor)) nvme_register(void)
{
    device_class_register(&nvme_class);
}
