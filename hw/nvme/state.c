/*
 * NVMe controller state for live migration and upgrade
 * (DeviceClass.save_state / load_state; util/savestate.h).
 *
 * The controller is STOPPED: nothing is in the block layer.  What is
 * still held is saved as what the host will see: completions waiting
 * for room in their CQ (cid, status, result) and the outstanding
 * Asynchronous Event Requests (cid).  Sections:
 *
 *   nvme            registers, features, events, logs, counters
 *   nvme/cq/N       a completion queue and its waiting completions
 *   nvme/sq/N       a submission queue
 *
 * The destination has the same namespaces (same nsid, block size and
 * size); its own block backends carry the data.
 */
#include "hw/nvme/nvme.h"
#include "hw/nvme/trace.h"
#include "util/error.h"
#include "util/savestate.h"

#define NVME_STATE_VERSION 1

/* A completion waiting for its CQ, as saved. */
typedef struct NvmeSavedCqe {
    uint16_t sqid, cid, status, pad;
    uint32_t result;
} __attribute__((packed)) NvmeSavedCqe;

static void save_regs(NvmeCtrl *n, StateWriter *w)
{
    NvmeFeatures *f = &n->features;
    uint64_t ts = f->ts_base_ms + (clock_ns() - f->ts_set_ns) / 1000000;

    state_put_u32(w, "ctrl-state", n->state);
    state_put_u32(w, "cc", n->cc);
    state_put_u32(w, "csts", n->csts);
    state_put_u32(w, "aqa", n->aqa);
    state_put_u64(w, "asq", n->asq);
    state_put_u64(w, "acq", n->acq);
    state_put_u32(w, "intms", n->intms);
    state_put_u32(w, "msi-pending", n->msi_pending);
    state_put_u32(w, "page-bits", n->page_bits);
    state_put_u64(w, "dbbuf-dbs", n->dbbuf_dbs);
    state_put_u64(w, "dbbuf-eis", n->dbbuf_eis);
    state_put_bool(w, "dbbuf-enabled", n->dbbuf_enabled);
    state_put_u32(w, "arbitration", f->arbitration);
    state_put_u32(w, "power-mgmt", f->power_mgmt);
    state_put_u16(w, "temp-over", f->temp_over);
    state_put_u16(w, "temp-under", f->temp_under);
    state_put_u32(w, "err-rec", f->err_rec);
    state_put_bool(w, "vwc", f->vwc);
    state_put_u32(w, "irq-coalescing", f->irq_coalescing);
    state_put_bytes(w, "ivc-cd", f->ivc_cd, sizeof(f->ivc_cd));
    state_put_u32(w, "write-atomicity", f->write_atomicity);
    state_put_u32(w, "aec", f->aec);
    state_put_u32(w, "kato", f->kato);
    state_put_u64(w, "timestamp-ms", ts);
    state_put_bool(w, "ts-from-host", f->ts_from_host);
    state_put_bool(w, "nr-queues-set", f->nr_queues_set);
}

static void save_events(NvmeCtrl *n, StateWriter *w)
{
    uint16_t cids[NVME_AERL + 1];

    for (unsigned i = 0; i < n->aer_outstanding; i++) {
        cids[i] = n->aer_reqs[i]->cmd.cid;
    }
    state_put_bytes(w, "aer-cids", cids, n->aer_outstanding * 2);
    state_put_bytes(w, "aer-queue", n->aer_queue, n->aer_queued * 4);
    state_put_u8(w, "aer-masked", n->aer_masked);
    state_put_bytes(w, "changed-ns", n->changed_ns, n->nr_changed_ns * 4);
    state_put_bool(w, "changed-ns-overflow", n->changed_ns_overflow);
    state_put_bytes(w, "error-log", n->elog, sizeof(n->elog));
    state_put_u32(w, "error-log-next", n->elog_next);
    state_put_u64(w, "error-count", n->error_count);
    state_put_u64(w, "bytes-read", n->bytes_read);
    state_put_u64(w, "bytes-written", n->bytes_written);
    state_put_u64(w, "read-cmds", n->read_cmds);
    state_put_u64(w, "write-cmds", n->write_cmds);
    state_put_u64(w, "media-errors", n->media_errors);
    state_put_u64(w, "power-on-ns", clock_ns() - n->power_on_ns);
}

static void save_namespaces(NvmeCtrl *n, StateWriter *w)
{
    g_autoptr(GByteArray) ns = g_byte_array_new();

    /* {nsid, lba size, blocks} of each attached namespace, to check. */
    for (uint32_t i = 1; i <= NVME_MAX_NAMESPACES; i++) {
        if (n->ns[i]) {
            uint64_t rec[3] = { i, n->ns[i]->lbasz, n->ns[i]->nsze };

            g_byte_array_append(ns, (uint8_t *)rec, sizeof(rec));
        }
    }
    state_put_bytes(w, "namespaces", ns->data, ns->len);
}

static void save_cq(NvmeCQueue *cq, StateWriter *w)
{
    g_autoptr(GByteArray) wait = g_byte_array_new();
    char name[24];

    for (GList *l = cq->waitq.head; l; l = l->next) {
        NvmeRequest *req = l->data;
        NvmeSavedCqe e = { req->sq->sqid, req->cmd.cid, req->status, 0,
                           req->result };

        g_byte_array_append(wait, (uint8_t *)&e, sizeof(e));
    }
    snprintf(name, sizeof(name), "nvme/cq/%u", cq->cqid);
    state_begin(w, name, NVME_STATE_VERSION);
    state_put_u64(w, "addr", cq->dma_addr);
    state_put_u32(w, "size", cq->size);
    state_put_u32(w, "head", cq->head);
    state_put_u32(w, "tail", cq->tail);
    state_put_bool(w, "phase", cq->phase);
    state_put_u16(w, "vector", cq->vector);
    state_put_bool(w, "irq-enabled", cq->irq_enabled);
    state_put_u64(w, "db-addr", cq->db_addr);
    state_put_u64(w, "ei-addr", cq->ei_addr);
    state_put_u32(w, "coalesced", cq->coalesced);
    state_put_bool(w, "irq-due", cq->irq_due);
    state_put_bytes(w, "waiting", wait->data, wait->len);
    state_end(w);
}

static void save_sq(NvmeSQueue *sq, StateWriter *w)
{
    char name[24];

    snprintf(name, sizeof(name), "nvme/sq/%u", sq->sqid);
    state_begin(w, name, NVME_STATE_VERSION);
    state_put_u16(w, "cqid", sq->cqid);
    state_put_u64(w, "addr", sq->dma_addr);
    state_put_u32(w, "size", sq->size);
    state_put_u32(w, "head", sq->head);
    state_put_u32(w, "tail", sq->tail);
    state_put_u64(w, "db-addr", sq->db_addr);
    state_put_u64(w, "ei-addr", sq->ei_addr);
    state_end(w);
}

void nvme_save_state(Device *dev, StateWriter *w)
{
    NvmeCtrl *n = NVME(dev);
    unsigned nq = 0;

    g_assert(n->blk_inflight == 0);
    state_begin(w, "nvme", NVME_STATE_VERSION);
    save_regs(n, w);
    save_events(n, w);
    save_namespaces(n, w);
    nvme_resv_save_ctrl(n, w);
    state_end(w);
    /* The queues that exist: a section each (CQs first: SQs name them). */
    for (unsigned q = 0; q < NVME_MAX_QUEUES; q++) {
        if (n->cq[q]) {
            save_cq(n->cq[q], w);
            nq++;
        }
    }
    for (unsigned q = 0; q < NVME_MAX_QUEUES; q++) {
        if (n->sq[q]) {
            save_sq(n->sq[q], w);
            nq++;
        }
    }
    nvme_resv_save_ns(n, w);
    trace_nvme_state_saved(nvme_id(n), nq);
}

/* ---- load ---- */

static void load_regs(NvmeCtrl *n, StateSection *s)
{
    NvmeFeatures *f = &n->features;

    n->state = state_get_u32(s, "ctrl-state");
    n->cc = state_get_u32(s, "cc");
    n->csts = state_get_u32(s, "csts");
    n->aqa = state_get_u32(s, "aqa");
    n->asq = state_get_u64(s, "asq");
    n->acq = state_get_u64(s, "acq");
    n->intms = state_get_u32(s, "intms");
    n->msi_pending = state_get_u32(s, "msi-pending");
    n->page_bits = state_get_u32(s, "page-bits");
    n->dbbuf_dbs = state_get_u64(s, "dbbuf-dbs");
    n->dbbuf_eis = state_get_u64(s, "dbbuf-eis");
    n->dbbuf_enabled = state_get_bool(s, "dbbuf-enabled");
    f->arbitration = state_get_u32(s, "arbitration");
    f->power_mgmt = state_get_u32(s, "power-mgmt");
    f->temp_over = state_get_u16(s, "temp-over");
    f->temp_under = state_get_u16(s, "temp-under");
    f->err_rec = state_get_u32(s, "err-rec");
    f->vwc = state_get_bool(s, "vwc");
    f->irq_coalescing = state_get_u32(s, "irq-coalescing");
    state_get_bytes(s, "ivc-cd", f->ivc_cd, sizeof(f->ivc_cd));
    f->write_atomicity = state_get_u32(s, "write-atomicity");
    f->aec = state_get_u32(s, "aec");
    f->kato = state_get_u32(s, "kato");
    f->ts_base_ms = state_get_u64(s, "timestamp-ms");
    f->ts_set_ns = clock_ns();
    f->ts_from_host = state_get_bool(s, "ts-from-host");
    f->nr_queues_set = state_get_bool(s, "nr-queues-set");
    if (n->state == NVME_CTRL_SHUTDOWN_DRAIN ||
        n->state == NVME_CTRL_SHUTDOWN_FLUSH) {
        state_section_fail(s, "the controller was stopped in the middle of "
                           "a shutdown");
    }
    if (n->state > NVME_CTRL_FAILED ||
        n->page_bits < 12 || n->page_bits > 12 + NVME_MPSMAX) {
        state_section_fail(s, "controller state %u, page bits %u",
                           n->state, n->page_bits);
        n->state = NVME_CTRL_FAILED;    /* until the reset */
        n->page_bits = 12;
    }
    n->page_size = 1u << n->page_bits;
}

/* A variable-length array field of @size-byte items, at most @max. */
static const void *get_array(StateSection *s, const char *name, size_t size,
                             size_t max, unsigned *count)
{
    size_t len;
    const void *p = state_get_blob(s, name, &len);

    *count = len / size;
    if (len % size || *count > max) {
        state_section_fail(s, "field '%s': %zu bytes", name, len);
        *count = 0;
        return NULL;
    }
    return p;
}

static void copy_array(void *dst, const void *src, size_t len)
{
    if (len) {
        memcpy(dst, src, len);
    }
}

static void load_events(NvmeCtrl *n, StateSection *s, uint16_t *aer_cids,
                        unsigned *naer)
{
    const void *p;
    unsigned cnt;

    p = get_array(s, "aer-cids", 2, NVME_AERL + 1, naer);
    copy_array(aer_cids, p, *naer * 2);
    p = get_array(s, "aer-queue", 4, NVME_AER_QUEUE_MAX, &cnt);
    copy_array(n->aer_queue, p, cnt * 4);
    n->aer_queued = cnt;
    n->aer_masked = state_get_u8(s, "aer-masked");
    p = get_array(s, "changed-ns", 4, NVME_CHANGED_NSLIST_MAX, &cnt);
    copy_array(n->changed_ns, p, cnt * 4);
    n->nr_changed_ns = cnt;
    n->changed_ns_overflow = state_get_bool(s, "changed-ns-overflow");
    state_get_bytes(s, "error-log", n->elog, sizeof(n->elog));
    n->elog_next = state_get_u32(s, "error-log-next") % (NVME_ELPE + 1);
    n->error_count = state_get_u64(s, "error-count");
    n->bytes_read = state_get_u64(s, "bytes-read");
    n->bytes_written = state_get_u64(s, "bytes-written");
    n->read_cmds = state_get_u64(s, "read-cmds");
    n->write_cmds = state_get_u64(s, "write-cmds");
    n->media_errors = state_get_u64(s, "media-errors");
    n->power_on_ns = clock_ns() - state_get_u64(s, "power-on-ns");
}

static void check_namespaces(NvmeCtrl *n, StateSection *s)
{
    unsigned cnt, here = 0;
    /* Fields are not aligned in the stream: load, never dereference. */
    const uint8_t *rec = get_array(s, "namespaces", 24, NVME_MAX_NAMESPACES,
                                   &cnt);

    for (uint32_t i = 1; i <= NVME_MAX_NAMESPACES; i++) {
        here += n->ns[i] != NULL;
    }
    for (unsigned i = 0; i < cnt && !state_section_failed(s); i++) {
        uint64_t nsid = ldq_le_p(rec + 24 * i);
        uint64_t lbasz = ldq_le_p(rec + 24 * i + 8);
        uint64_t nsze = ldq_le_p(rec + 24 * i + 16);
        NvmeNamespace *ns = nsid <= NVME_MAX_NAMESPACES ? nvme_ns(n, nsid)
                                                        : NULL;

        if (!ns || ns->lbasz != lbasz || ns->nsze != nsze) {
            state_section_fail(s, "namespace %" PRIu64 " (%" PRIu64 " blocks "
                               "of %" PRIu64 " bytes) differs here", nsid,
                               nsze, lbasz);
        }
    }
    if (!state_section_failed(s) && cnt != here) {
        state_section_fail(s, "%u namespaces in the state, %u here", cnt,
                           here);
    }
}

/* Open queue @q's section @kind ("cq", "sq"), or NULL. */
static StateSection *queue_section(StateReader *r, const char *kind,
                                   unsigned q, GError **errp)
{
    char name[24];

    snprintf(name, sizeof(name), "nvme/%s/%u", kind, q);
    if (!state_has_section(r, name)) {
        return NULL;
    }
    return state_section(r, name, NVME_STATE_VERSION, NULL, errp);
}

/* The bounds a queue's indexes must keep (a stream is not trusted). */
static bool queue_ok(StateSection *s, unsigned q, uint32_t size,
                     uint32_t head, uint32_t tail, NvmeCtrl *n)
{
    uint32_t max = q ? (uint32_t)(n->cap & 0xffff) + 1 : 4096u;

    if (size < 2 || size > max || head >= size || tail >= size) {
        state_section_fail(s, "queue %u: size %u head %u tail %u", q, size,
                           head, tail);
        return false;
    }
    return true;
}


/* A completion that waited for room, queued again as it was. */
static bool restore_cqe(NvmeCtrl *n, NvmeCQueue *cq, const NvmeSavedCqe *e)
{
    NvmeSQueue *sq = e->sqid < NVME_MAX_QUEUES ? n->sq[e->sqid] : NULL;
    NvmeRequest *req = sq && sq->cqid == cq->cqid ? nvme_req_alloc(sq)
                                                  : NULL;

    if (!req) {
        return false;
    }
    req->cmd.cid = e->cid;
    req->status = e->status;
    req->result = e->result;
    g_queue_push_tail_link(&cq->waitq, &req->link);
    return true;
}

/* Completions waiting for room in their CQ (pointers into the stream). */
typedef struct NvmeWaiting {
    const NvmeSavedCqe *e;
    unsigned n;
} NvmeWaiting;

static bool load_cq(NvmeCtrl *n, StateReader *r, unsigned q,
                    NvmeWaiting *wait, GError **errp)
{
    StateSection *s = queue_section(r, "cq", q, errp);
    uint64_t addr;
    uint32_t size, head, tail;
    uint16_t vector;
    NvmeCQueue *cq;

    if (!s) {
        return !errp || !*errp;
    }
    addr = state_get_u64(s, "addr");
    size = state_get_u32(s, "size");
    head = state_get_u32(s, "head");
    tail = state_get_u32(s, "tail");
    vector = state_get_u16(s, "vector");
    if (!queue_ok(s, q, size, head, tail, n) || vector >= n->nr_vectors) {
        state_section_fail(s, "queue %u: vector %u of %u", q, vector,
                           n->nr_vectors);
        return state_section_end(s, errp);
    }
    cq = nvme_cq_new(n, q, addr, size, vector,
                     state_get_bool(s, "irq-enabled"));
    cq->head = head;
    cq->tail = tail;
    cq->phase = state_get_bool(s, "phase");
    cq->db_addr = state_get_u64(s, "db-addr");
    cq->ei_addr = state_get_u64(s, "ei-addr");
    cq->coalesced = state_get_u32(s, "coalesced");
    cq->irq_due = state_get_bool(s, "irq-due");
    wait->e = get_array(s, "waiting", sizeof(NvmeSavedCqe), size, &wait->n);
    return state_section_end(s, errp);
}

static bool load_sq(NvmeCtrl *n, StateReader *r, unsigned q,
                    GError **errp)
{
    StateSection *s = queue_section(r, "sq", q, errp);
    uint32_t size, head, tail;
    uint16_t cqid;
    NvmeSQueue *sq;

    if (!s) {
        return !errp || !*errp;
    }
    cqid = state_get_u16(s, "cqid");
    size = state_get_u32(s, "size");
    head = state_get_u32(s, "head");
    tail = state_get_u32(s, "tail");
    if (!queue_ok(s, q, size, head, tail, n) || cqid >= NVME_MAX_QUEUES ||
        !n->cq[cqid] || (q == 0) != (cqid == 0)) {
        state_section_fail(s, "queue %u: completion queue %u", q, cqid);
        return state_section_end(s, errp);
    }
    sq = nvme_sq_new(n, q, cqid, state_get_u64(s, "addr"), size);
    sq->head = head;
    sq->tail = tail;
    sq->db_addr = state_get_u64(s, "db-addr");
    sq->ei_addr = state_get_u64(s, "ei-addr");
    return state_section_end(s, errp);
}

/* The waiting completions, once every SQ exists. */
static bool load_waiting(NvmeCtrl *n, const NvmeWaiting *wait, GError **errp)
{
    for (unsigned q = 0; q < NVME_MAX_QUEUES; q++) {
        for (unsigned i = 0; i < wait[q].n; i++) {
            const NvmeSavedCqe *e = &wait[q].e[i];

            if (!restore_cqe(n, n->cq[q], e)) {
                error_setg(errp, "device state: a completion waiting in "
                           "CQ %u for SQ %u (cid %u) does not fit", q,
                           e->sqid, e->cid);
                return false;
            }
        }
    }
    return true;
}

/* Outstanding Asynchronous Event Requests, taken from the admin pool. */
static bool load_aers(NvmeCtrl *n, const uint16_t *cids, unsigned naer,
                      GError **errp)
{
    for (unsigned i = 0; i < naer; i++) {
        NvmeRequest *req = n->sq[0] ? nvme_req_alloc(n->sq[0]) : NULL;

        if (!req) {
            error_setg(errp, "device state: %u asynchronous event requests "
                       "without an admin queue to hold them", naer);
            return false;
        }
        req->cmd.opcode = NVME_ADM_CMD_ASYNC_EV_REQ;
        req->cmd.cid = cids[i];
        n->aer_reqs[n->aer_outstanding++] = req;
    }
    return true;
}

static bool load_queues(NvmeCtrl *n, StateReader *r, GError **errp)
{
    g_autofree NvmeWaiting *wait = g_new0(NvmeWaiting, NVME_MAX_QUEUES);
    /* What the guest wrote to in-memory doorbells: making queues clears. */
    g_autofree uint32_t *db = n->db_page ?
        g_memdup2(n->db_page, 8 * NVME_MAX_QUEUES) : NULL;
    bool dbbuf = n->dbbuf_enabled;
    bool ok = false;

    /* The saved shadow addresses stand: nothing is written to the guest. */
    n->dbbuf_enabled = false;
    for (unsigned q = 0; q < NVME_MAX_QUEUES; q++) {
        if (!load_cq(n, r, q, &wait[q], errp)) {
            goto out;
        }
    }
    for (unsigned q = 0; q < NVME_MAX_QUEUES; q++) {
        if (!load_sq(n, r, q, errp)) {
            goto out;
        }
    }
    if (nvme_queues_live(n) && (!n->sq[0] || !n->cq[0])) {
        error_setg(errp, "device state: an enabled controller without its "
                   "admin queues");
        goto out;
    }
    ok = load_waiting(n, wait, errp);
out:
    n->dbbuf_enabled = dbbuf;
    if (db) {
        memcpy(n->db_page, db, 8 * NVME_MAX_QUEUES);
    }
    return ok;
}

bool nvme_load_state(Device *dev, StateReader *r, GError **errp)
{
    NvmeCtrl *n = NVME(dev);
    StateSection *s = state_section(r, "nvme", NVME_STATE_VERSION, NULL,
                                    errp);
    uint16_t aer_cids[NVME_AERL + 1];
    unsigned naer = 0;

    if (!s) {
        return false;
    }
    if (n->state != NVME_CTRL_DISABLED) {
        error_setg(errp, "device state: the controller was enabled here "
                   "before the state came (a destination starts reset)");
        return false;
    }
    load_regs(n, s);
    load_events(n, s, aer_cids, &naer);
    check_namespaces(n, s);
    nvme_resv_load_ctrl(n, s);
    if (!state_section_end(s, errp) || !load_queues(n, r, errp) ||
        !load_aers(n, aer_cids, naer, errp) ||
        !nvme_resv_load_ns(n, r, errp)) {
        return false;
    }
    nvme_kato_restart(n);
    nvme_irq_schedule(n);       /* interrupts that were due */
    /* Work resumes at device_start(): run_state_changed schedules it. */
    trace_nvme_state_loaded(nvme_id(n), naer);
    return true;
}
