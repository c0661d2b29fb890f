/*
 * NVMe queues: creation and deletion, the per-SQ request pool, fetching
 * submission queue entries, posting completion queue entries (phase tag,
 * ordering, CQ full handling) and shadow doorbells.  Only this file reads
 * and writes the rings in guest memory.
 */
#include "hw/nvme/nvme.h"
#include "hw/nvme/trace.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "queue entries are copied as host structs: little-endian hosts only"
#endif

static inline uint32_t nvme_ring_next(uint32_t v, uint32_t size)
{
    return v + 1 == size ? 0 : v + 1;
}

uint32_t nvme_cq_used(NvmeCQueue *cq)
{
    return (cq->tail + cq->size - cq->head) % cq->size;
}

/* ---- shadow doorbells ---- */

static bool nvme_shadow_read(NvmeCtrl *n, uint64_t addr, uint32_t *val)
{
    uint32_t le;

    if (pci_dma_read(&n->pdev, addr, &le, 4) < 0) {
        return false;
    }
    *val = le;
    return true;
}

static void nvme_shadow_write(NvmeCtrl *n, uint64_t addr, uint32_t val)
{
    uint32_t le = val;

    if (pci_dma_write(&n->pdev, addr, &le, 4) < 0) {
        trace_nvme_err_shadow(nvme_id(n), addr);
    }
}

/*
 * The event index to publish for @sq: its tail (the host rings for the
 * next command), or while the loop polls the shadows one behind it, which
 * the host crosses only after a whole lap of the ring.
 */
static uint32_t nvme_sq_event_idx(NvmeCtrl *n, NvmeSQueue *sq)
{
    return n->shadow_polled ? (sq->tail + sq->size - 1) % sq->size
                            : sq->tail;
}

/*
 * The poller and its start/stop callback run outside the device's work:
 * they touch shadow doorbells only where guest memory is mapped (no DMA
 * message, nothing that could park); elsewhere the doorbells stay
 * trapped as before.
 */
bool nvme_shadow_poll(void *opaque)
{
    NvmeCtrl *n = opaque;
    bool found = false;

    if (!n->dbbuf_enabled || !nvme_ready(n) ||
        !device_fetch_allowed(&n->pdev.dev)) {
        return false;
    }
    /*
     * New commands (a valid tail we have not read), and for a full CQ
     * with completions waiting, a valid head we have not read: the
     * worker reads the same shadows, so what is reported here moves it.
     */
    for (unsigned i = 1; i <= n->max_ioqpairs; i++) {
        NvmeSQueue *sq = n->sq[i];
        NvmeCQueue *cq = n->cq[i];
        uint32_t *p, v;

        if (sq && sq->db_addr &&
            (p = pci_dma_map(&n->pdev, sq->db_addr, 4, false))) {
            /* Acquire: the entries the host wrote before the tail. */
            v = __atomic_load_n(p, __ATOMIC_ACQUIRE);
            found |= v != sq->tail && v < sq->size;
        }
        if (cq && cq->db_addr && !g_queue_is_empty(&cq->waitq) &&
            (p = pci_dma_map(&n->pdev, cq->db_addr, 4, false))) {
            v = __atomic_load_n(p, __ATOMIC_RELAXED);
            found |= v != cq->head && v < cq->size &&
                     (v + cq->size - cq->head) % cq->size <= nvme_cq_used(cq);
        }
    }
    if (found) {
        nvme_schedule(n);
    }
    return found;
}

void nvme_shadow_poll_started(void *opaque, bool on)
{
    NvmeCtrl *n = opaque;

    n->shadow_polled = on;
    if (!n->dbbuf_enabled || !nvme_queues_live(n)) {
        return;
    }
    for (unsigned i = 1; i <= n->max_ioqpairs; i++) {
        NvmeSQueue *sq = n->sq[i];
        uint32_t *p;

        if (sq && sq->ei_addr &&
            (p = pci_dma_map(&n->pdev, sq->ei_addr, 4, true))) {
            __atomic_store_n(p, nvme_sq_event_idx(n, sq), __ATOMIC_RELAXED);
        }
    }
    /* The loop's last look at the shadows comes after: see its writes. */
    smp_mb();
}

void nvme_queue_set_shadow(NvmeCtrl *n, uint16_t qid)
{
    NvmeSQueue *sq = n->sq[qid];
    NvmeCQueue *cq = n->cq[qid];

    /* The admin queue keeps using its MMIO doorbells. */
    if (!n->dbbuf_enabled || qid == 0) {
        return;
    }
    if (sq && !sq->db_addr) {
        sq->db_addr = n->dbbuf_dbs + 8ULL * qid;
        sq->ei_addr = n->dbbuf_eis + 8ULL * qid;
        nvme_shadow_write(n, sq->db_addr, sq->tail);
        nvme_shadow_write(n, sq->ei_addr, sq->tail);
    }
    if (cq && !cq->db_addr) {
        cq->db_addr = n->dbbuf_dbs + 8ULL * qid + 4;
        cq->ei_addr = n->dbbuf_eis + 8ULL * qid + 4;
        nvme_shadow_write(n, cq->db_addr, cq->head);
        nvme_shadow_write(n, cq->ei_addr, cq->head);
    }
}

static void nvme_shadow_error(NvmeCtrl *n)
{
    nvme_error_log_add(n, 0xffff, 0xffff, NVME_INVALID_FIELD, 0, 0);
    nvme_aer_enqueue(n, NVME_AER_TYPE_ERROR,
                     NVME_AER_INFO_ERR_INVALID_DB_VALUE,
                     NVME_LOG_ERROR_INFO);
}

static void nvme_sq_update_shadow_tail(NvmeCtrl *n, NvmeSQueue *sq)
{
    uint32_t v;

    if (!nvme_shadow_read(n, sq->db_addr, &v) || v == sq->tail) {
        return;
    }
    if (v >= sq->size) {
        trace_nvme_err_db_sq_value(nvme_id(n), sq->sqid, v, sq->size);
        nvme_shadow_error(n);
        return;
    }
    sq->tail = v;
}

static void nvme_cq_update_shadow_head(NvmeCtrl *n, NvmeCQueue *cq)
{
    uint32_t v;

    if (!nvme_shadow_read(n, cq->db_addr, &v) || v == cq->head) {
        return;
    }
    if (v >= cq->size ||
        (v + cq->size - cq->head) % cq->size > nvme_cq_used(cq)) {
        trace_nvme_err_db_cq_value(nvme_id(n), cq->cqid, v, cq->head,
                                   cq->tail, cq->size);
        nvme_shadow_error(n);
        return;
    }
    cq->head = v;
}

/* ---- completion queues ---- */

NvmeCQueue *nvme_cq_new(NvmeCtrl *n, uint16_t cqid, uint64_t dma_addr,
                        uint32_t size, uint16_t vector, bool irq_enabled)
{
    NvmeCQueue *cq = g_new0(NvmeCQueue, 1);

    cq->ctrl = n;
    cq->cqid = cqid;
    cq->dma_addr = dma_addr;
    cq->size = size;
    cq->vector = vector;
    cq->irq_enabled = irq_enabled;
    cq->phase = true;
    g_queue_init(&cq->waitq);
    g_assert(!n->cq[cqid]);
    n->cq[cqid] = cq;
    nvme_db_reset(n, cqid, true);
    nvme_queue_set_shadow(n, cqid);
    trace_nvme_cq_create(nvme_id(n), cqid, dma_addr, size, vector,
                         irq_enabled);
    return cq;
}

void nvme_cq_free(NvmeCtrl *n, NvmeCQueue *cq)
{
    g_assert(cq->nr_sqs == 0 && g_queue_is_empty(&cq->waitq));
    trace_nvme_cq_delete(nvme_id(n), cq->cqid);
    n->cq[cq->cqid] = NULL;
    g_free(cq);
    if (!pci_msix_enabled(&n->pdev) && !pci_msi_enabled(&n->pdev)) {
        nvme_update_intx(n);
    }
}

bool nvme_cq_full(NvmeCtrl *n, NvmeCQueue *cq)
{
    if (nvme_ring_next(cq->tail, cq->size) != cq->head) {
        return false;
    }
    if (!cq->db_addr) {
        return true;
    }
    nvme_cq_update_shadow_head(n, cq);
    if (nvme_ring_next(cq->tail, cq->size) != cq->head) {
        return false;
    }
    /*
     * Full: ask for the host's next head write (event index = the head
     * we know), then look once more, so that one of us sees the other's
     * write.
     */
    nvme_shadow_write(n, cq->ei_addr, cq->head);
    smp_mb();
    nvme_cq_update_shadow_head(n, cq);
    return nvme_ring_next(cq->tail, cq->size) == cq->head;
}

/*
 * Write the entry, then (after a write barrier) the dword holding the
 * phase tag, so the host never sees a new phase with stale contents (the
 * Phase Tag marks a new entry: NVMe 1.4 4.6).
 *
 * The slot is taken (tail and phase advanced) before the writes: through
 * messages (guest RAM not shared) the work parks in them, and the host
 * may see the entry and ring the CQ head past it before the replies come
 * back; that head must already be valid.  An entry not yet written still
 * carries the old phase tag, so the host does not take it early.
 */
static void nvme_post_cqe(NvmeCtrl *n, NvmeCQueue *cq, NvmeRequest *req)
{
    NvmeSQueue *sq = req->sq;
    NvmeCqe cqe = {
        .result = req->result,
        .sq_head = sq->head,
        .sq_id = sq->sqid,
        .cid = req->cmd.cid,
        .status = (uint16_t)(req->status << 1) | (cq->phase ? 1 : 0),
    };
    uint64_t addr = cq->dma_addr + ((uint64_t)cq->tail << NVME_CQES);

    trace_nvme_cqe(nvme_id(n), cq->cqid, cq->tail, sq->sqid, req->cmd.cid,
                   req->status, req->result);
    cq->tail = nvme_ring_next(cq->tail, cq->size);
    if (cq->tail == 0) {
        cq->phase = !cq->phase;
    }
    if (pci_dma_write(&n->pdev, addr, &cqe, 12) < 0) {
        nvme_set_fatal(n, "completion queue not writable");
        return;
    }
    smp_wmb();
    if (pci_dma_write(&n->pdev, addr + 12, (uint8_t *)&cqe + 12, 4) < 0) {
        nvme_set_fatal(n, "completion queue not writable");
        return;
    }
    cq->irq_due = true;
    cq->coalesced++;
    n->qstats[cq->cqid].completions++;
    nvme_irq_schedule(n);
}

void nvme_cq_flush_waitq(NvmeCtrl *n, NvmeCQueue *cq)
{
    while (!g_queue_is_empty(&cq->waitq) && !nvme_cq_full(n, cq) &&
           !(n->csts & NVME_CSTS_CFS)) {
        NvmeRequest *req = g_queue_pop_head_link(&cq->waitq)->data;

        nvme_post_cqe(n, cq, req);
        nvme_req_release(req);
    }
}

/* ---- requests ---- */

NvmeRequest *nvme_req_alloc(NvmeSQueue *sq)
{
    GList *l = g_queue_pop_head_link(&sq->free);
    NvmeRequest *req;

    if (!l) {
        return NULL;
    }
    req = l->data;
    sq->inflight++;
    req->ns = NULL;
    req->result = 0;
    req->status = NVME_SUCCESS;
    req->data = NVME_DATA_NONE;
    req->dma_held = false;
    req->in_block = false;
    req->slba = 0;
    req->nlb = 0;
    req->bytes = 0;
    req->step = 0;
    req->nsteps = 0;
    req->niov = 0;
    return req;
}

void nvme_req_release(NvmeRequest *req)
{
    NvmeSQueue *sq = req->sq;

    g_assert(!req->dma_held && !req->in_block);
    g_assert(sq->inflight > 0);
    sq->inflight--;
    g_queue_push_head_link(&sq->free, &req->link);
    if (sq->starved || (sq->deleting && sq->inflight == 0)) {
        sq->starved = false;
        nvme_schedule(sq->ctrl);
    }
}

void nvme_req_unmap(NvmeRequest *req)
{
    if (req->dma_held) {
        req->dma_held = false;
        pci_dma_release(&req->sq->ctrl->pdev);
    }
    if (req->data == NVME_DATA_BOUNCE) {
        nvme_bounce_put(req);
    }
    req->data = NVME_DATA_NONE;
}

void nvme_req_drop(NvmeRequest *req)
{
    nvme_req_unmap(req);
    nvme_req_release(req);
}

void nvme_req_complete(NvmeRequest *req)
{
    NvmeSQueue *sq = req->sq;
    NvmeCtrl *n = sq->ctrl;
    NvmeCQueue *cq;

    if (req->dma_held) {
        req->dma_held = false;
        pci_dma_release(&n->pdev);
    }
    if (nvme_resetting(n) || device_work_cancelled(&n->pdev.dev)) {
        nvme_req_drop(req);
        return;
    }
    if (req->status != NVME_SUCCESS) {
        n->qstats[sq->sqid].errors++;
        nvme_error_log_add(n, sq->sqid, req->cmd.cid, req->status,
                           req->cmd.nsid, req->slba);
    }
    cq = n->cq[sq->cqid];
    if (!g_queue_is_empty(&cq->waitq) || nvme_cq_full(n, cq)) {
        trace_nvme_cq_full(nvme_id(n), cq->cqid);
        g_queue_push_tail_link(&cq->waitq, &req->link);
        return;
    }
    nvme_post_cqe(n, cq, req);
    nvme_req_release(req);
}

/* ---- bounce buffer: one user per SQ ---- */

bool nvme_bounce_get(NvmeRequest *req)
{
    NvmeSQueue *sq = req->sq;

    if (sq->bounce_owner) {
        g_queue_push_tail_link(&sq->bounce_wait, &req->link);
        return false;
    }
    if (!sq->bounce) {
        sq->bounce = g_aligned_alloc(1, NVME_MDTS_BYTES, 4096);
        sq->bounce_sg = g_new(NvmeSg, NVME_MAX_SG);
    }
    sq->bounce_owner = req;
    return true;
}

void nvme_bounce_put(NvmeRequest *req)
{
    NvmeSQueue *sq = req->sq;

    g_assert(sq->bounce_owner == req);
    sq->bounce_owner = NULL;
    if (!g_queue_is_empty(&sq->bounce_wait)) {
        nvme_schedule(sq->ctrl);
    }
}

/* ---- submission queues ---- */

NvmeSQueue *nvme_sq_new(NvmeCtrl *n, uint16_t sqid, uint16_t cqid,
                        uint64_t dma_addr, uint32_t size)
{
    NvmeSQueue *sq = g_new0(NvmeSQueue, 1);
    /*
     * The pool: one request per entry.  When it runs dry the queue is not
     * fetched until a request completes, so more are never needed; the
     * admin queue also keeps its asynchronous event requests outstanding,
     * which must not starve it.
     */
    uint32_t pool = size + (sqid ? 0 : NVME_AERL + 1);

    sq->ctrl = n;
    sq->sqid = sqid;
    sq->cqid = cqid;
    sq->dma_addr = dma_addr;
    sq->size = size;
    g_queue_init(&sq->free);
    g_queue_init(&sq->bounce_wait);
    sq->reqs = g_new0(NvmeRequest, pool);
    if (sqid) {
        sq->iov_pool = g_new(struct iovec, (size_t)pool * NVME_MAX_IOV);
    }
    for (uint32_t i = 0; i < pool; i++) {
        NvmeRequest *req = &sq->reqs[i];

        req->sq = sq;
        req->link.data = req;
        if (sq->iov_pool) {
            req->iov = sq->iov_pool + (size_t)i * NVME_MAX_IOV;
        }
        g_queue_push_tail_link(&sq->free, &req->link);
    }
    g_assert(!n->sq[sqid] && n->cq[cqid]);
    n->sq[sqid] = sq;
    n->cq[cqid]->nr_sqs++;
    nvme_db_reset(n, sqid, false);
    nvme_queue_set_shadow(n, sqid);
    trace_nvme_sq_create(nvme_id(n), sqid, cqid, dma_addr, size);
    return sq;
}

/* Free @sq; nothing of it may be in the block layer any more. */
void nvme_sq_free(NvmeCtrl *n, NvmeSQueue *sq)
{
    NvmeCQueue *cq = n->cq[sq->cqid];
    GList *l, *next;

    g_assert(sq->blk_inflight == 0 && !sq->bounce_owner);
    trace_nvme_sq_delete(nvme_id(n), sq->sqid, sq->inflight);
    /* Completions that never found room in the CQ are dropped. */
    for (l = cq->waitq.head; l; l = next) {
        NvmeRequest *req = l->data;

        next = l->next;
        if (req->sq == sq) {
            g_queue_unlink(&cq->waitq, l);
            nvme_req_release(req);
        }
    }
    while (!g_queue_is_empty(&sq->bounce_wait)) {
        nvme_req_release(g_queue_pop_head_link(&sq->bounce_wait)->data);
    }
    if (sq->delete_req) {
        /* A reset overtook the deletion: its command is dropped too. */
        nvme_req_release(sq->delete_req);
        sq->delete_req = NULL;
    }
    if (sq->sqid == 0) {
        /* Outstanding asynchronous event requests. */
        for (unsigned i = 0; i < n->aer_outstanding; i++) {
            nvme_req_release(n->aer_reqs[i]);
            n->aer_reqs[i] = NULL;
        }
        n->aer_outstanding = 0;
    }
    g_assert(sq->inflight == 0);
    n->sq[sq->sqid] = NULL;
    cq->nr_sqs--;
    g_aligned_free(sq->bounce);
    g_free(sq->bounce_sg);
    g_free(sq->iov_pool);
    g_free(sq->reqs);
    g_free(sq);
}

/*
 * Delete I/O SQ: commands waiting for the bounce buffer are aborted, those
 * in the block layer complete and their CQEs are posted, then the queue
 * goes and @req completes (NVME_NO_COMPLETE until then).  Nothing waits
 * here: the bottom half finishes the deletion once the queue is idle.
 */
uint16_t nvme_sq_delete(NvmeCtrl *n, NvmeSQueue *sq, NvmeRequest *req)
{
    sq->deleting = true;
    while (!g_queue_is_empty(&sq->bounce_wait)) {
        NvmeRequest *r = g_queue_pop_head_link(&sq->bounce_wait)->data;

        r->status = NVME_CMD_ABORT_SQ_DEL;
        nvme_req_complete(r);
    }
    if (sq->inflight == 0) {
        nvme_sq_free(n, sq);
        return NVME_SUCCESS;
    }
    trace_nvme_sq_delete_wait(nvme_id(n), sq->sqid, sq->inflight);
    sq->delete_req = req;
    return NVME_NO_COMPLETE;
}

void nvme_sq_delete_finish(NvmeCtrl *n, NvmeSQueue *sq)
{
    NvmeRequest *req = sq->delete_req;

    g_assert(sq->deleting && sq->inflight == 0 && req);
    sq->delete_req = NULL;
    nvme_sq_free(n, sq);
    req->status = NVME_SUCCESS;
    nvme_req_complete(req);
}

/* ---- fetching ---- */

void nvme_process_sq(NvmeCtrl *n, NvmeSQueue *sq)
{
    unsigned passes = 0;

    /* Commands that waited for the bounce buffer go first. */
    while (!g_queue_is_empty(&sq->bounce_wait) && !sq->bounce_owner) {
        nvme_bounce_retry(sq);
    }
    for (;;) {
        if (sq->db_addr) {
            nvme_sq_update_shadow_tail(n, sq);
        }
        while (sq->head != sq->tail) {
            uint64_t addr = sq->dma_addr + ((uint64_t)sq->head << NVME_SQES);
            NvmeRequest *req;
            uint16_t status;

            if (!nvme_ready(n) || sq->deleting) {
                return;
            }
            req = nvme_req_alloc(sq);
            if (!req) {
                sq->starved = true;
                return;
            }
            if (pci_dma_read(&n->pdev, addr, &req->cmd, sizeof(NvmeCmd))) {
                trace_nvme_err_sqe_read(nvme_id(n), sq->sqid, addr);
                nvme_req_release(req);
                nvme_set_fatal(n, "submission queue not readable");
                return;
            }
            sq->head = nvme_ring_next(sq->head, sq->size);
            n->qstats[sq->sqid].requests++;
            status = sq->sqid ? nvme_io_cmd(n, req) : nvme_admin_cmd(n, req);
            if (status != NVME_NO_COMPLETE) {
                req->status = status;
                nvme_req_complete(req);
            }
        }
        if (!sq->ei_addr) {
            break;
        }
        /*
         * Tell the host which tail we saw (it rings again only for
         * commands past it), then look once more: one of us sees the
         * other's write.
         */
        nvme_shadow_write(n, sq->ei_addr, nvme_sq_event_idx(n, sq));
        smp_mb();
        nvme_sq_update_shadow_tail(n, sq);
        if (sq->head == sq->tail) {
            break;
        }
        if (++passes == 4) {
            /* The host keeps adding: the other queues get a turn first. */
            nvme_schedule(n);
            break;
        }
    }
}
