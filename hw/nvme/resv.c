/*
 * NVMe reservations (NVMe 2.0 Base, "Reservations"): Reservation
 * Register, Report, Acquire and Release; the Host Identifier,
 * Reservation Notification Mask and Reservation Persistence features;
 * the Reservation Notification log page and its event.
 *
 * A reservation belongs to a namespace, and a subsystem namespace's is
 * shared by every controller it is attached to (NvmeSubsysNs.resv): a
 * host (by its Host Identifier) registers a key through one controller
 * and is a registrant through all of them; a controller whose host is
 * another VM sees Reservation Conflict.
 *
 * Threads: the controllers of a subsystem may each run on an iothread.
 * Their shared reservation state is guarded by one mutex per subsystem,
 * the domain's: reservation commands are rare and short (no I/O, no DMA
 * under the lock), and one lock for every namespace of the subsystem
 * also covers what a command reads of the other controllers (their host
 * identifiers, notification masks and logs) without an order between
 * locks.  Running the state on one loop instead would make every
 * reservation command wait for another thread.  The I/O path takes the
 * lock only while a reservation is held (NvmeResv.rtype, atomic).
 * A notice for a controller on another loop is posted there; the post
 * names the controller by CNTLID and serial, so that one gone meanwhile
 * is skipped.
 *
 * Persist Through Power Loss is not supported (RESCAP.PTPL clear): the
 * state lives as long as the daemon, and moves with live migration and
 * upgrade (state.c).
 */
#include "hw/nvme/nvme.h"
#include "hw/nvme/trace.h"
#include "util/loop.h"
#include "util/savestate.h"

#define NVME_ERR(status) ((uint16_t)((status) | NVME_DNR))
#define NVME_CONFLICT NVME_ERR(NVME_RESERVATION_CONFLICT)

struct NvmeResvDomain {
    GMutex lock;
    NvmeCtrl *ctrls[NVME_SUBSYS_MAX_CTRLS];     /* by CNTLID */
    uint32_t serial[NVME_SUBSYS_MAX_CTRLS];     /* of each join */
    uint32_t next_serial;
};

/* ---- domains ---- */

NvmeResvDomain *nvme_resv_domain_new(void)
{
    NvmeResvDomain *d = g_atomic_rc_box_new0(NvmeResvDomain);

    g_mutex_init(&d->lock);
    return d;
}

static void nvme_resv_domain_clear(gpointer p)
{
    NvmeResvDomain *d = p;

    g_mutex_clear(&d->lock);
}

void nvme_resv_domain_unref(NvmeResvDomain *d)
{
    if (d) {
        g_atomic_rc_box_release_full(d, nvme_resv_domain_clear);
    }
}

static void nvme_resv_host_anon(NvmeCtrl *n)
{
    static const uint8_t zero[16];

    n->host.anon = memcmp(n->host.id, zero, 16) ? 0 : 1 + n->cntlid;
}

void nvme_resv_ctrl_join(NvmeCtrl *n, NvmeResvDomain *d)
{
    d = d ? g_atomic_rc_box_acquire(d) : nvme_resv_domain_new();
    g_mutex_lock(&d->lock);
    g_assert(!d->ctrls[n->cntlid]);
    d->ctrls[n->cntlid] = n;
    d->serial[n->cntlid] = ++d->next_serial;
    nvme_resv_host_anon(n);
    n->resv_dom = d;
    g_mutex_unlock(&d->lock);
}

void nvme_resv_ctrl_leave(NvmeCtrl *n)
{
    NvmeResvDomain *d = n->resv_dom;

    if (!d) {
        return;
    }
    g_mutex_lock(&d->lock);
    d->ctrls[n->cntlid] = NULL;
    g_mutex_unlock(&d->lock);
    n->resv_dom = NULL;
    nvme_resv_domain_unref(d);
}

/* A Controller Level Reset empties the log; its count starts again. */
void nvme_resv_ctrl_reset(NvmeCtrl *n)
{
    if (!n->resv_dom) {
        return;
    }
    g_mutex_lock(&n->resv_dom->lock);
    n->resv_log_len = 0;
    n->resv_log_count = 0;
    g_mutex_unlock(&n->resv_dom->lock);
}

/* ---- registrants ---- */

static bool host_eq(const NvmeResvHost *a, const NvmeResvHost *b)
{
    return a->anon == b->anon && a->ext == b->ext &&
           memcmp(a->id, b->id, sizeof(a->id)) == 0;
}

static NvmeResvReg *resv_find(NvmeResv *r, const NvmeResvHost *h)
{
    for (unsigned i = 0; i < r->nregs; i++) {
        if (host_eq(&r->regs[i].host, h)) {
            return &r->regs[i];
        }
    }
    return NULL;
}

static bool resv_all_regs(uint8_t rtype)
{
    return rtype == NVME_RESV_WE_ALL_REGS || rtype == NVME_RESV_EA_ALL_REGS;
}

/* Does host @h hold @r's reservation (with "all registrants", each does)? */
static bool resv_holds(NvmeResv *r, const NvmeResvHost *h)
{
    if (!r->rtype) {
        return false;
    }
    if (resv_all_regs(r->rtype)) {
        return resv_find(r, h) != NULL;
    }
    return host_eq(&r->holder, h);
}

/* Under the lock; readers without it look at rtype alone. */
static void resv_set_type(NvmeResv *r, uint8_t rtype)
{
    __atomic_store_n(&r->rtype, rtype, __ATOMIC_RELEASE);
}

/* ---- notices ---- */

/*
 * One reservation command: what it works on, and the controllers whose
 * log got a notice, told of it once the lock is dropped.
 */
typedef struct NvmeResvCtx {
    NvmeCtrl *n;
    NvmeNamespace *ns;
    NvmeResv *r;
    NvmeResvDomain *d;
    uint32_t attached;          /* CNTLIDs @ns is attached to */
    uint32_t kick;              /* CNTLIDs to send the event to */
    NvmeCtrl *kick_ctrl[NVME_SUBSYS_MAX_CTRLS];
    uint32_t kick_serial[NVME_SUBSYS_MAX_CTRLS];
    EventLoop *kick_loop[NVME_SUBSYS_MAX_CTRLS];
    bool changed;
} NvmeResvCtx;

static uint32_t resv_attached(NvmeCtrl *n, NvmeNamespace *ns)
{
    if (ns->sns && ns->sns->subsys) {
        return __atomic_load_n(&ns->sns->subsys->ns_ctrls[ns->nsid],
                               __ATOMIC_ACQUIRE);
    }
    return 1u << n->cntlid;
}

/* Under the lock: queue a notice on @t's log (a full log drops it: the
 * count, which still moves, shows the host what it missed). */
static void resv_log_add(NvmeResvCtx *c, NvmeCtrl *t, uint8_t type)
{
    uint32_t nsid = c->ns->nsid;

    if (t->resv_mask[nsid] & (1u << type)) {
        return;
    }
    if (++t->resv_log_count == 0) {
        t->resv_log_count = 1;
    }
    trace_nvme_resv_notice(nvme_id(t), type, nsid, t->resv_log_count);
    if (t->resv_log_len < NVME_RESV_LOG_MAX) {
        NvmeResvLogEntry *e = &t->resv_log[t->resv_log_len++];

        e->count = t->resv_log_count;
        e->nsid = nsid;
        e->type = type;
    }
    c->kick |= 1u << t->cntlid;
    c->kick_ctrl[t->cntlid] = t;
    c->kick_serial[t->cntlid] = c->d->serial[t->cntlid];
    c->kick_loop[t->cntlid] = t->pdev.dev.loop;
}

/* Under the lock: a notice to each controller of host @h with the
 * namespace attached. */
static void resv_notify_host(NvmeResvCtx *c, const NvmeResvHost *h,
                             uint8_t type)
{
    for (unsigned id = 0; id < NVME_SUBSYS_MAX_CTRLS; id++) {
        NvmeCtrl *t = c->d->ctrls[id];

        if (t && (c->attached & (1u << id)) && host_eq(&t->host, h)) {
            resv_log_add(c, t, type);
        }
    }
}

/* Under the lock: a notice to every registrant but the command's host. */
static void resv_notify_others(NvmeResvCtx *c, uint8_t type)
{
    for (unsigned i = 0; i < c->r->nregs; i++) {
        if (!host_eq(&c->r->regs[i].host, &c->n->host)) {
            resv_notify_host(c, &c->r->regs[i].host, type);
        }
    }
}

static void resv_aen(NvmeCtrl *t)
{
    nvme_aer_enqueue(t, NVME_AER_TYPE_IO_SPECIFIC, NVME_AER_INFO_IO_RESV_LOG,
                     NVME_LOG_RESV_NOTIFY);
}

typedef struct NvmeResvKick {
    NvmeResvDomain *d;
    uint16_t cntlid;
    uint32_t serial;
} NvmeResvKick;

/* On the controller's loop: the event, if it is still the one told. */
static void resv_kick_cb(void *opaque)
{
    NvmeResvKick *k = opaque;
    NvmeResvDomain *d = k->d;
    NvmeCtrl *t;

    g_mutex_lock(&d->lock);
    t = d->ctrls[k->cntlid];
    if (t && (d->serial[k->cntlid] != k->serial ||
              !loop_in_thread(t->pdev.dev.loop))) {
        t = NULL;
    }
    g_mutex_unlock(&d->lock);
    /* It leaves on this thread only: it is here until we return. */
    if (t) {
        resv_aen(t);
    }
    nvme_resv_domain_unref(d);
    g_free(k);
}

/* The lock is dropped: send the events of the notices queued. */
static void resv_kick(NvmeResvCtx *c)
{
    for (unsigned id = 0; id < NVME_SUBSYS_MAX_CTRLS; id++) {
        NvmeResvKick *k;

        if (!(c->kick & (1u << id))) {
            continue;
        }
        if (loop_in_thread(c->kick_loop[id])) {
            /* Same thread: it cannot have left since the lock. */
            resv_aen(c->kick_ctrl[id]);
            continue;
        }
        k = g_new0(NvmeResvKick, 1);
        k->d = g_atomic_rc_box_acquire(c->d);
        k->cntlid = id;
        k->serial = c->kick_serial[id];
        loop_post(c->kick_loop[id], resv_kick_cb, k);
    }
}

/* ---- Reservation Register ---- */

/*
 * Remove registrant @reg.  The holder of a one-holder reservation going
 * releases it (registrants only: the others are told); with "all
 * registrants" the last one going does.
 */
static void resv_unregister(NvmeResvCtx *c, NvmeResvReg *reg)
{
    NvmeResv *r = c->r;
    bool holder = r->rtype && !resv_all_regs(r->rtype) &&
                  host_eq(&r->holder, &reg->host);
    unsigned i = reg - r->regs;

    memmove(&r->regs[i], &r->regs[i + 1],
            (r->nregs - i - 1) * sizeof(r->regs[0]));
    r->nregs--;
    c->changed = true;
    if (holder) {
        if (r->rtype == NVME_RESV_WE_REGS_ONLY ||
            r->rtype == NVME_RESV_EA_REGS_ONLY) {
            resv_notify_others(c, NVME_RESV_LOG_RELEASED);
        }
        resv_set_type(r, 0);
    } else if (resv_all_regs(r->rtype) && r->nregs == 0) {
        resv_set_type(r, 0);
    }
}

static uint16_t resv_register_locked(NvmeResvCtx *c, unsigned act,
                                     bool iekey, const NvmeResvKeys *k)
{
    NvmeResv *r = c->r;
    NvmeResvReg *reg = resv_find(r, &c->n->host);

    switch (act) {
    case NVME_RESV_REGISTER:
        if (reg) {
            /* Registering again with the same key changes nothing. */
            return reg->key == k->key2 ? NVME_SUCCESS : NVME_CONFLICT;
        }
        if (r->nregs == NVME_RESV_MAX_REGS) {
            return NVME_ERR(NVME_INTERNAL_DEV_ERROR);
        }
        reg = &r->regs[r->nregs++];
        reg->host = c->n->host;
        reg->key = k->key2;
        reg->cntlid = c->n->cntlid;
        c->changed = true;
        return NVME_SUCCESS;
    case NVME_RESV_UNREGISTER:
        if (!reg || (!iekey && reg->key != k->crkey)) {
            return NVME_CONFLICT;
        }
        resv_unregister(c, reg);
        return NVME_SUCCESS;
    default:
        if (!reg || (!iekey && reg->key != k->crkey)) {
            return NVME_CONFLICT;
        }
        reg->key = k->key2;
        reg->cntlid = c->n->cntlid;
        c->changed = true;
        return NVME_SUCCESS;
    }
}

/* A command's context, with the domain's lock taken. */
static void resv_ctx_init(NvmeResvCtx *c, NvmeCtrl *n, NvmeNamespace *ns)
{
    memset(c, 0, sizeof(*c));
    c->n = n;
    c->ns = ns;
    c->r = ns->resv;
    c->d = n->resv_dom;
    c->attached = resv_attached(n, ns);
    g_mutex_lock(&c->d->lock);
}

/*
 * Register, Acquire and Release: their @len bytes of data (the keys)
 * from the guest into @keys, outside the lock, then the context.
 */
static uint16_t resv_ctx_begin(NvmeResvCtx *c, NvmeCtrl *n,
                               NvmeRequest *req, void *keys, size_t len)
{
    uint16_t st = nvme_dma_from_guest(n, req, keys, len);

    if (st) {
        return st;
    }
    resv_ctx_init(c, n, req->ns);
    return NVME_SUCCESS;
}

/* Count the change (@gen: in PRGEN too), unlock, send the events. */
static void resv_ctx_done(NvmeResvCtx *c, uint16_t st, bool gen)
{
    if (st == NVME_SUCCESS && gen) {
        c->r->gen++;
    }
    if (c->changed || (st == NVME_SUCCESS && gen)) {
        c->r->seq++;
    }
    g_mutex_unlock(&c->d->lock);
    resv_kick(c);
}

static uint16_t nvme_resv_register(NvmeCtrl *n, NvmeRequest *req)
{
    uint32_t cdw10 = req->cmd.cdw10;
    unsigned act = NVME_RESV_ACTION(cdw10);
    unsigned cptpl = NVME_RESV_CPTPL(cdw10);
    NvmeResvKeys k;
    NvmeResvCtx c;
    uint16_t st;

    if (act > NVME_RESV_REPLACE) {
        trace_nvme_err_invalid_field(nvme_id(n), req->cmd.opcode, "RREGA",
                                     cdw10);
        return NVME_ERR(NVME_INVALID_FIELD);
    }
    /* 01b is reserved; 11b asks for PTPL, which RESCAP says we lack. */
    if (cptpl == 1 || cptpl == NVME_CPTPL_SET) {
        trace_nvme_err_invalid_field(nvme_id(n), req->cmd.opcode, "CPTPL",
                                     cdw10);
        return NVME_ERR(NVME_INVALID_FIELD);
    }
    st = resv_ctx_begin(&c, n, req, &k, sizeof(k));
    if (st) {
        return st;
    }
    st = resv_register_locked(&c, act, cdw10 & NVME_RESV_IEKEY, &k);
    resv_ctx_done(&c, st, true);
    return st;
}

/* ---- Reservation Acquire ---- */

/* Unregister every registrant but the command's host with key @key. */
static bool resv_preempt_key(NvmeResvCtx *c, uint64_t key)
{
    NvmeResv *r = c->r;
    bool any = false;

    for (unsigned i = 0; i < r->nregs;) {
        NvmeResvReg *reg = &r->regs[i];
        NvmeResvHost h = reg->host;

        if (reg->key != key || host_eq(&h, &c->n->host)) {
            i++;
            continue;
        }
        resv_unregister(c, reg);
        resv_notify_host(c, &h, NVME_RESV_LOG_REG_PREEMPTED);
        any = true;
    }
    return any;
}

/* The command's host holds a reservation of @rtype now. */
static void resv_take(NvmeResvCtx *c, uint8_t rtype)
{
    uint8_t old = c->r->rtype;

    c->r->holder = c->n->host;
    resv_set_type(c->r, rtype);
    c->changed = true;
    if (old && old != rtype) {
        /* Its type changed: the registrants lost what they had. */
        resv_notify_others(c, NVME_RESV_LOG_RELEASED);
    }
}

/*
 * Preempt (and Preempt and Abort, which here aborts nothing: commands
 * already fetched complete, which the specification allows; new ones
 * from the preempted hosts meet the new reservation).
 */
static uint16_t resv_preempt(NvmeResvCtx *c, uint8_t rtype, uint64_t prkey)
{
    NvmeResv *r = c->r;
    NvmeResvReg *holder;
    uint8_t old = r->rtype;

    if (!old) {
        return resv_preempt_key(c, prkey) ? NVME_SUCCESS : NVME_CONFLICT;
    }
    if (resv_all_regs(old)) {
        if (prkey) {
            return resv_preempt_key(c, prkey) ? NVME_SUCCESS
                                              : NVME_CONFLICT;
        }
        /* Key 0: every other registrant goes, the reservation is ours. */
        for (unsigned i = 0; i < r->nregs;) {
            NvmeResvHost h = r->regs[i].host;

            if (host_eq(&h, &c->n->host)) {
                i++;
                continue;
            }
            resv_unregister(c, &r->regs[i]);
            resv_notify_host(c, &h, NVME_RESV_LOG_REG_PREEMPTED);
        }
        resv_take(c, rtype);
        return NVME_SUCCESS;
    }
    holder = resv_find(r, &r->holder);
    if (holder && holder->key == prkey) {
        /*
         * The holder's key (ours too, maybe): we hold it from now on,
         * so that those with that key go as registrants only.
         */
        r->holder = c->n->host;
        resv_preempt_key(c, prkey);
        resv_take(c, rtype);
        return NVME_SUCCESS;
    }
    if (!prkey) {
        return NVME_ERR(NVME_INVALID_FIELD);
    }
    return resv_preempt_key(c, prkey) ? NVME_SUCCESS : NVME_CONFLICT;
}

static uint16_t resv_acquire_locked(NvmeResvCtx *c, unsigned act,
                                    uint8_t rtype, const NvmeResvKeys *k)
{
    NvmeResv *r = c->r;
    NvmeResvReg *me = resv_find(r, &c->n->host);

    if (!me || me->key != k->crkey) {
        return NVME_CONFLICT;
    }
    if (act != NVME_RESV_ACQUIRE) {
        return resv_preempt(c, rtype, k->key2);
    }
    if (!r->rtype) {
        resv_take(c, rtype);
        return NVME_SUCCESS;
    }
    /* Acquiring what we hold is fine; anything else conflicts. */
    return resv_holds(r, &c->n->host) && r->rtype == rtype ? NVME_SUCCESS
                                                           : NVME_CONFLICT;
}

static uint16_t nvme_resv_acquire(NvmeCtrl *n, NvmeRequest *req)
{
    uint32_t cdw10 = req->cmd.cdw10;
    unsigned act = NVME_RESV_ACTION(cdw10);
    uint8_t rtype = NVME_RESV_RTYPE(cdw10);
    NvmeResvKeys k;
    NvmeResvCtx c;
    uint16_t st;

    /*
     * IEKEY is for Register only since NVMe 1.3 (RESCAP.IEK_13): set
     * here, it is an invalid field.
     */
    if (act > NVME_RESV_PREEMPT_ABORT || (cdw10 & NVME_RESV_IEKEY) ||
        rtype < NVME_RESV_WRITE_EXCLUSIVE || rtype > NVME_RESV_EA_ALL_REGS) {
        trace_nvme_err_invalid_field(nvme_id(n), req->cmd.opcode,
                                     "RACQA/IEKEY/RTYPE", cdw10);
        return NVME_ERR(NVME_INVALID_FIELD);
    }
    st = resv_ctx_begin(&c, n, req, &k, sizeof(k));
    if (st) {
        return st;
    }
    st = resv_acquire_locked(&c, act, rtype, &k);
    resv_ctx_done(&c, st, act != NVME_RESV_ACQUIRE);
    return st;
}

/* ---- Reservation Release ---- */

static uint16_t resv_release_locked(NvmeResvCtx *c, unsigned act,
                                    uint8_t rtype, uint64_t crkey)
{
    NvmeResv *r = c->r;
    NvmeResvReg *me = resv_find(r, &c->n->host);
    uint8_t old = r->rtype;

    if (!me || me->key != crkey) {
        return NVME_CONFLICT;
    }
    if (act == NVME_RESV_CLEAR) {
        resv_notify_others(c, NVME_RESV_LOG_PREEMPTED);
        r->nregs = 0;
        resv_set_type(r, 0);
        c->changed = true;
        return NVME_SUCCESS;
    }
    /* Nothing held, or not by us: success, and no effect. */
    if (!resv_holds(r, &c->n->host)) {
        return NVME_SUCCESS;
    }
    if (rtype != old) {
        return NVME_ERR(NVME_INVALID_FIELD);
    }
    resv_set_type(r, 0);
    c->changed = true;
    if (old != NVME_RESV_WRITE_EXCLUSIVE &&
        old != NVME_RESV_EXCLUSIVE_ACCESS) {
        resv_notify_others(c, NVME_RESV_LOG_RELEASED);
    }
    return NVME_SUCCESS;
}

static uint16_t nvme_resv_release(NvmeCtrl *n, NvmeRequest *req)
{
    uint32_t cdw10 = req->cmd.cdw10;
    unsigned act = NVME_RESV_ACTION(cdw10);
    uint64_t crkey;
    NvmeResvCtx c;
    uint16_t st;

    if (act > NVME_RESV_CLEAR || (cdw10 & NVME_RESV_IEKEY)) {
        trace_nvme_err_invalid_field(nvme_id(n), req->cmd.opcode,
                                     "RRELA/IEKEY", cdw10);
        return NVME_ERR(NVME_INVALID_FIELD);
    }
    st = resv_ctx_begin(&c, n, req, &crkey, sizeof(crkey));
    if (st) {
        return st;
    }
    st = resv_release_locked(&c, act, NVME_RESV_RTYPE(cdw10), crkey);
    resv_ctx_done(&c, st, act == NVME_RESV_CLEAR);
    return st;
}

/* ---- Reservation Report ---- */

/* Entries at most: each controller has one host, so matches one
 * registrant; a registrant with no controller here has one entry. */
#define NVME_RESV_REPORT_MAX \
    (NVME_RESV_STATUS_EXT_SIZE + \
     (NVME_RESV_MAX_REGS + NVME_SUBSYS_MAX_CTRLS) * sizeof(NvmeRegCtrlExt))

static size_t resv_report_put(uint8_t *buf, size_t off, bool eds,
                              const NvmeResvReg *reg, uint16_t cntlid,
                              uint8_t rcsts)
{
    if (eds) {
        NvmeRegCtrlExt *e = (NvmeRegCtrlExt *)(buf + off);

        e->cntlid = cntlid;
        e->rcsts = rcsts;
        e->rkey = reg->key;
        memcpy(e->hostid, reg->host.id, 16);
        return off + sizeof(*e);
    } else {
        NvmeRegCtrl *e = (NvmeRegCtrl *)(buf + off);

        e->cntlid = cntlid;
        e->rcsts = rcsts;
        memcpy(&e->hostid, reg->host.id, 8);
        e->rkey = reg->key;
        return off + sizeof(*e);
    }
}

/*
 * Under the lock: the status, then a Registered Controller entry for
 * each controller of a registrant host that has the namespace attached
 * (CNTLID FFFFh for a registrant with none: its controller went).
 */
static void resv_report_fill(NvmeResvCtx *c, bool eds, uint8_t *buf)
{
    NvmeResv *r = c->r;
    NvmeResvStatus *st = (NvmeResvStatus *)buf;
    size_t off = eds ? NVME_RESV_STATUS_EXT_SIZE : sizeof(*st);
    unsigned cnt = 0;

    st->gen = r->gen;
    st->rtype = r->rtype;
    st->ptpls = 0;
    for (unsigned i = 0; i < r->nregs; i++) {
        NvmeResvReg *reg = &r->regs[i];
        uint8_t rcsts = resv_holds(r, &reg->host) ? NVME_RCSTS_HOLDS : 0;
        unsigned found = 0;

        for (unsigned id = 0; id < NVME_SUBSYS_MAX_CTRLS; id++) {
            NvmeCtrl *t = c->d->ctrls[id];

            if (t && (c->attached & (1u << id)) &&
                host_eq(&t->host, &reg->host)) {
                off = resv_report_put(buf, off, eds, reg, id, rcsts);
                found++;
            }
        }
        if (!found) {
            off = resv_report_put(buf, off, eds, reg, NVME_CNTLID_DYNAMIC,
                                  rcsts);
            found++;
        }
        cnt += found;
    }
    st->regctl = cnt;
}

static uint16_t nvme_resv_report(NvmeCtrl *n, NvmeRequest *req)
{
    bool eds = req->cmd.cdw11 & NVME_RESV_REPORT_EDS;
    uint64_t len = ((uint64_t)req->cmd.cdw10 + 1) * 4;
    g_autofree uint8_t *buf = NULL;
    NvmeResvCtx c;

    /* A 128-bit host identifier does not fit the 64-bit structure. */
    if (!eds && n->host.ext) {
        trace_nvme_err_invalid_field(nvme_id(n), req->cmd.opcode, "EDS",
                                     req->cmd.cdw11);
        return NVME_ERR(NVME_HOST_ID_INCONSISTENT);
    }
    if (len > NVME_MDTS_BYTES) {
        trace_nvme_err_mdts(nvme_id(n), req->cmd.cid, len);
        return NVME_ERR(NVME_INVALID_FIELD);
    }
    buf = g_malloc0(MAX(NVME_RESV_REPORT_MAX, len));
    resv_ctx_init(&c, n, req->ns);
    resv_report_fill(&c, eds, buf);
    /* Nothing changed: no resv_ctx_done(), no events to send. */
    g_mutex_unlock(&c.d->lock);
    return nvme_dma_to_guest(n, req, buf, len);
}

uint16_t nvme_resv_cmd(NvmeCtrl *n, NvmeRequest *req)
{
    uint32_t cdw10 = req->cmd.cdw10;

    trace_nvme_resv_cmd(nvme_id(n), req->cmd.cid, req->cmd.opcode,
                        req->ns->nsid, NVME_RESV_ACTION(cdw10),
                        NVME_RESV_RTYPE(cdw10));
    if (!req->ns->resv) {
        /* A view whose subsystem namespace is going. */
        return NVME_ERR(NVME_INVALID_NSID);
    }
    switch (req->cmd.opcode) {
    case NVME_CMD_RESV_REGISTER:
        return nvme_resv_register(n, req);
    case NVME_CMD_RESV_ACQUIRE:
        return nvme_resv_acquire(n, req);
    case NVME_CMD_RESV_RELEASE:
        return nvme_resv_release(n, req);
    default:
        return nvme_resv_report(n, req);
    }
}

/* ---- the I/O path ---- */

/*
 * The command behaviour table: Read and Compare are the read group;
 * Write, Write Zeroes, Dataset Management and Flush the write group.
 * The holder may do anything; "registrants only" and "all registrants"
 * let registrants do anything too; Write Exclusive lets everyone read.
 */
uint16_t nvme_resv_check(NvmeCtrl *n, NvmeNamespace *ns, uint8_t opcode)
{
    NvmeResv *r = ns->resv;
    bool write, ok;
    uint8_t rtype;

    if (!r || !__atomic_load_n(&r->rtype, __ATOMIC_ACQUIRE)) {
        return NVME_SUCCESS;
    }
    switch (opcode) {
    case NVME_CMD_READ:
    case NVME_CMD_COMPARE:
        write = false;
        break;
    case NVME_CMD_WRITE:
    case NVME_CMD_WRITE_ZEROES:
    case NVME_CMD_DSM:
    case NVME_CMD_FLUSH:
        write = true;
        break;
    default:
        return NVME_SUCCESS;
    }
    g_mutex_lock(&n->resv_dom->lock);
    rtype = r->rtype;
    switch (rtype) {
    case NVME_RESV_WRITE_EXCLUSIVE:
        ok = !write || resv_holds(r, &n->host);
        break;
    case NVME_RESV_EXCLUSIVE_ACCESS:
        ok = resv_holds(r, &n->host);
        break;
    case NVME_RESV_WE_REGS_ONLY:
    case NVME_RESV_WE_ALL_REGS:
        ok = !write || resv_find(r, &n->host);
        break;
    default:
        ok = !rtype || resv_find(r, &n->host);
        break;
    }
    g_mutex_unlock(&n->resv_dom->lock);
    if (!ok) {
        trace_nvme_err_resv_conflict(nvme_id(n), opcode, ns->nsid, rtype);
        return NVME_CONFLICT;
    }
    return NVME_SUCCESS;
}

/* ---- log page 80h ---- */

void nvme_resv_log_pop(NvmeCtrl *n, NvmeResvNotifyLog *log)
{
    memset(log, 0, sizeof(*log));
    g_mutex_lock(&n->resv_dom->lock);
    if (n->resv_log_len) {
        NvmeResvLogEntry *e = &n->resv_log[0];

        log->count = e->count;
        log->type = e->type;
        log->nsid = e->nsid;
        log->nalp = MIN(n->resv_log_len - 1, 255u);
        memmove(&n->resv_log[0], &n->resv_log[1],
                (n->resv_log_len - 1) * sizeof(n->resv_log[0]));
        n->resv_log_len--;
    }
    g_mutex_unlock(&n->resv_dom->lock);
}

/* ---- features ---- */

/* Namespace-specific features name an attached namespace. */
static NvmeNamespace *resv_feature_ns(NvmeCtrl *n, NvmeRequest *req)
{
    NvmeNamespace *ns = nvme_ns(n, req->cmd.nsid);

    if (!ns) {
        trace_nvme_err_invalid_ns(nvme_id(n), req->cmd.nsid);
    }
    return ns;
}

static uint16_t resv_get_host_id(NvmeCtrl *n, NvmeRequest *req, bool dflt)
{
    bool exhid = req->cmd.cdw11 & NVME_FEAT_HOSTID_EXHID;
    uint8_t id[16] = { 0 };

    if (!dflt) {
        /* Asked in the other size than it was set (not when unset). */
        if (!n->host.anon && n->host.ext != exhid) {
            trace_nvme_err_invalid_field(nvme_id(n), req->cmd.opcode,
                                         "EXHID", req->cmd.cdw11);
            return NVME_ERR(NVME_HOST_ID_INCONSISTENT);
        }
        memcpy(id, n->host.id, sizeof(id));
    }
    return nvme_dma_to_guest(n, req, id, exhid ? 16 : 8);
}

uint16_t nvme_resv_get_feature(NvmeCtrl *n, NvmeRequest *req, unsigned sel)
{
    uint8_t fid = req->cmd.cdw10 & 0xff;
    bool dflt = sel == NVME_GETFEAT_SEL_DEFAULT ||
                sel == NVME_GETFEAT_SEL_SAVED;
    NvmeNamespace *ns = NULL;

    if (fid == NVME_FEAT_HOST_ID) {
        if (sel == NVME_GETFEAT_SEL_SUPPORTED) {
            req->result = NVME_FEAT_CAP_CHANGE;
            return NVME_SUCCESS;
        }
        return resv_get_host_id(n, req, dflt);
    }
    if (sel == NVME_GETFEAT_SEL_SUPPORTED) {
        req->result = NVME_FEAT_CAP_NS |
                      (fid == NVME_FEAT_RESV_MASK ? NVME_FEAT_CAP_CHANGE : 0);
        return NVME_SUCCESS;
    }
    ns = resv_feature_ns(n, req);
    if (!ns) {
        return NVME_ERR(NVME_INVALID_NSID);
    }
    /* Persistence (83h) is always off: PTPL is not supported. */
    req->result = fid == NVME_FEAT_RESV_MASK && !dflt
                  ? n->resv_mask[ns->nsid] : 0;
    return NVME_SUCCESS;
}

/* Is @n's host a registrant of a namespace attached to @n? */
static bool resv_host_registered(NvmeCtrl *n)
{
    for (uint32_t nsid = 1; nsid <= NVME_MAX_NAMESPACES; nsid++) {
        NvmeNamespace *ns = n->ns[nsid];

        if (ns && ns->resv && resv_find(ns->resv, &n->host)) {
            return true;
        }
    }
    return false;
}

/*
 * Host Identifier: 8 bytes, or 16 with EXHID (CTRATT bit 0).  A host
 * that is a registrant keeps its identifier: Command Sequence Error.
 */
static uint16_t resv_set_host_id(NvmeCtrl *n, NvmeRequest *req)
{
    bool exhid = req->cmd.cdw11 & NVME_FEAT_HOSTID_EXHID;
    uint8_t id[16] = { 0 };
    uint16_t st = nvme_dma_from_guest(n, req, id, exhid ? 16 : 8);

    if (st) {
        return st;
    }
    g_mutex_lock(&n->resv_dom->lock);
    if (resv_host_registered(n)) {
        st = NVME_ERR(NVME_CMD_SEQ_ERROR);
    } else {
        memcpy(n->host.id, id, sizeof(id));
        n->host.ext = exhid;
        nvme_resv_host_anon(n);
    }
    g_mutex_unlock(&n->resv_dom->lock);
    if (st) {
        trace_nvme_err_invalid_field(nvme_id(n), req->cmd.opcode,
                                     "host identifier of a registrant", 0);
    }
    return st;
}

static uint16_t resv_set_mask(NvmeCtrl *n, NvmeRequest *req)
{
    uint8_t mask = req->cmd.cdw11 & NVME_RESV_MASK_ALL;
    uint32_t nsid = req->cmd.nsid;

    if (req->cmd.cdw11 & ~NVME_RESV_MASK_ALL) {
        trace_nvme_err_invalid_field(nvme_id(n), req->cmd.opcode,
                                     "notification mask", req->cmd.cdw11);
        return NVME_ERR(NVME_INVALID_FIELD);
    }
    if (nsid != NVME_NSID_BROADCAST && !resv_feature_ns(n, req)) {
        return NVME_ERR(NVME_INVALID_NSID);
    }
    g_mutex_lock(&n->resv_dom->lock);
    if (nsid == NVME_NSID_BROADCAST) {
        memset(n->resv_mask, mask, sizeof(n->resv_mask));
    } else {
        n->resv_mask[nsid] = mask;
    }
    g_mutex_unlock(&n->resv_dom->lock);
    req->result = mask;
    return NVME_SUCCESS;
}

uint16_t nvme_resv_set_feature(NvmeCtrl *n, NvmeRequest *req)
{
    switch (req->cmd.cdw10 & 0xff) {
    case NVME_FEAT_HOST_ID:
        return resv_set_host_id(n, req);
    case NVME_FEAT_RESV_MASK:
        return resv_set_mask(n, req);
    default:
        if (req->cmd.nsid != NVME_NSID_BROADCAST &&
            !resv_feature_ns(n, req)) {
            return NVME_ERR(NVME_INVALID_NSID);
        }
        /* PTPL cannot be turned on (RESCAP.PTPL is clear). */
        if (req->cmd.cdw11 & NVME_RESV_PTPL) {
            trace_nvme_err_invalid_field(nvme_id(n), req->cmd.opcode,
                                         "PTPL", req->cmd.cdw11);
            return NVME_ERR(NVME_INVALID_FIELD);
        }
        return NVME_SUCCESS;
    }
}

/* ---- device state (state.c) ---- */

#define NVME_RESV_STATE_VERSION 1

/* A registrant (or the holder, key 0) as saved: little-endian. */
typedef struct NvmeSavedResvReg {
    uint8_t id[16];
    uint64_t key;
    uint16_t anon;
    uint16_t cntlid;
    uint8_t ext;
    uint8_t pad[3];
} __attribute__((packed)) NvmeSavedResvReg;

typedef struct NvmeSavedResvLog {
    uint64_t count;
    uint32_t nsid;
    uint8_t type;
    uint8_t pad[3];
} __attribute__((packed)) NvmeSavedResvLog;

/*
 * In section "nvme", each written only when it is not the default, so
 * that a stream of a controller that never used reservations still
 * loads into an iovd without them.
 */
void nvme_resv_save_ctrl(NvmeCtrl *n, StateWriter *w)
{
    static const uint8_t no_mask[NVME_MAX_NAMESPACES + 1];
    NvmeSavedResvLog log[NVME_RESV_LOG_MAX];

    g_mutex_lock(&n->resv_dom->lock);
    if (!n->host.anon) {
        state_put_bytes(w, "host-id", n->host.id, sizeof(n->host.id));
        state_put_bool(w, "host-id-ext", n->host.ext);
    }
    if (memcmp(n->resv_mask, no_mask, sizeof(no_mask))) {
        state_put_bytes(w, "resv-mask", n->resv_mask, sizeof(n->resv_mask));
    }
    if (n->resv_log_count) {
        memset(log, 0, sizeof(log));
        for (unsigned i = 0; i < n->resv_log_len; i++) {
            log[i].count = n->resv_log[i].count;
            log[i].nsid = n->resv_log[i].nsid;
            log[i].type = n->resv_log[i].type;
        }
        state_put_u64(w, "resv-log-count", n->resv_log_count);
        state_put_bytes(w, "resv-log", log, n->resv_log_len * sizeof(log[0]));
    }
    g_mutex_unlock(&n->resv_dom->lock);
}

static void load_log(NvmeCtrl *n, StateSection *s)
{
    size_t len = 0;
    const uint8_t *p = state_has_field(s, "resv-log")
                       ? state_get_blob(s, "resv-log", &len) : NULL;
    unsigned cnt = len / sizeof(NvmeSavedResvLog);

    n->resv_log_count = state_get_u64_or(s, "resv-log-count", 0);
    n->resv_log_len = 0;
    if (len % sizeof(NvmeSavedResvLog) || cnt > NVME_RESV_LOG_MAX) {
        state_section_fail(s, "field 'resv-log': %zu bytes", len);
        return;
    }
    for (unsigned i = 0; i < cnt; i++) {
        NvmeSavedResvLog e;

        memcpy(&e, p + i * sizeof(e), sizeof(e));
        if (e.type < NVME_RESV_LOG_REG_PREEMPTED ||
            e.type > NVME_RESV_LOG_PREEMPTED || !e.nsid ||
            e.nsid > NVME_MAX_NAMESPACES) {
            state_section_fail(s, "reservation notice %u: type %u nsid %u",
                               i, e.type, e.nsid);
            return;
        }
        n->resv_log[i].count = e.count;
        n->resv_log[i].nsid = e.nsid;
        n->resv_log[i].type = e.type;
        n->resv_log_len++;
    }
}

void nvme_resv_load_ctrl(NvmeCtrl *n, StateSection *s)
{
    g_mutex_lock(&n->resv_dom->lock);
    memset(n->host.id, 0, sizeof(n->host.id));
    n->host.ext = false;
    if (state_has_field(s, "host-id")) {
        state_get_bytes(s, "host-id", n->host.id, sizeof(n->host.id));
        n->host.ext = state_get_bool(s, "host-id-ext");
    }
    nvme_resv_host_anon(n);
    memset(n->resv_mask, 0, sizeof(n->resv_mask));
    if (state_has_field(s, "resv-mask")) {
        state_get_bytes(s, "resv-mask", n->resv_mask, sizeof(n->resv_mask));
    }
    load_log(n, s);
    g_mutex_unlock(&n->resv_dom->lock);
}

static void saved_reg(NvmeSavedResvReg *o, const NvmeResvHost *h,
                      uint64_t key, uint16_t cntlid)
{
    memset(o, 0, sizeof(*o));
    memcpy(o->id, h->id, sizeof(o->id));
    o->key = key;
    o->anon = h->anon;
    o->cntlid = cntlid;
    o->ext = h->ext;
}

static void loaded_reg(const NvmeSavedResvReg *o, NvmeResvHost *h,
                       uint64_t *key, uint16_t *cntlid)
{
    memset(h, 0, sizeof(*h));
    memcpy(h->id, o->id, sizeof(h->id));
    h->anon = o->anon;
    h->ext = o->ext != 0;
    *key = o->key;
    *cntlid = o->cntlid;
}

/*
 * Sections "nvme/resv/NSID": the reservation of each attached namespace
 * that ever had one.  Each controller of a subsystem carries its shared
 * namespaces' (it may move alone); a loader keeps the newest (seq).
 */
void nvme_resv_save_ns(NvmeCtrl *n, StateWriter *w)
{
    g_autofree NvmeSavedResvReg *regs =
        g_new0(NvmeSavedResvReg, NVME_RESV_MAX_REGS);

    g_mutex_lock(&n->resv_dom->lock);
    for (uint32_t nsid = 1; nsid <= NVME_MAX_NAMESPACES; nsid++) {
        NvmeResv *r = n->ns[nsid] ? n->ns[nsid]->resv : NULL;
        NvmeSavedResvReg holder;
        char name[32];

        if (!r || !r->seq) {
            continue;
        }
        for (unsigned i = 0; i < r->nregs; i++) {
            saved_reg(&regs[i], &r->regs[i].host, r->regs[i].key,
                      r->regs[i].cntlid);
        }
        saved_reg(&holder, &r->holder, 0, 0);
        snprintf(name, sizeof(name), "nvme/resv/%u", nsid);
        state_begin(w, name, NVME_RESV_STATE_VERSION);
        state_put_u64(w, "seq", r->seq);
        state_put_u32(w, "generation", r->gen);
        state_put_u8(w, "type", r->rtype);
        state_put_bytes(w, "holder", &holder, sizeof(holder));
        state_put_bytes(w, "registrants", regs, r->nregs * sizeof(regs[0]));
        state_end(w);
    }
    g_mutex_unlock(&n->resv_dom->lock);
}

/* A section into @r (not shared yet), checked. */
static void load_resv(StateSection *s, NvmeResv *r)
{
    NvmeSavedResvReg o;
    uint16_t unused;
    uint64_t key;
    size_t len;
    const uint8_t *p;

    r->seq = state_get_u64(s, "seq");
    r->gen = state_get_u32(s, "generation");
    r->rtype = state_get_u8(s, "type");
    state_get_bytes(s, "holder", &o, sizeof(o));
    loaded_reg(&o, &r->holder, &key, &unused);
    p = state_get_blob(s, "registrants", &len);
    if (state_section_failed(s)) {
        return;
    }
    if (len % sizeof(o) || len / sizeof(o) > NVME_RESV_MAX_REGS ||
        r->rtype > NVME_RESV_EA_ALL_REGS) {
        state_section_fail(s, "%zu bytes of registrants, type %u", len,
                           r->rtype);
        return;
    }
    r->nregs = len / sizeof(o);
    for (unsigned i = 0; i < r->nregs; i++) {
        memcpy(&o, p + i * sizeof(o), sizeof(o));
        loaded_reg(&o, &r->regs[i].host, &r->regs[i].key,
                   &r->regs[i].cntlid);
    }
    if (r->rtype && (resv_all_regs(r->rtype) ? !r->nregs
                                             : !resv_find(r, &r->holder))) {
        state_section_fail(s, "a reservation of type %u without its holder",
                           r->rtype);
    }
}

bool nvme_resv_load_ns(NvmeCtrl *n, StateReader *r, GError **errp)
{
    g_autofree NvmeResv *tmp = g_new0(NvmeResv, 1);

    for (uint32_t nsid = 1; nsid <= NVME_MAX_NAMESPACES; nsid++) {
        NvmeResv *res = n->ns[nsid] ? n->ns[nsid]->resv : NULL;
        StateSection *s;
        char name[32];

        snprintf(name, sizeof(name), "nvme/resv/%u", nsid);
        if (!res || !state_has_section(r, name)) {
            continue;
        }
        s = state_section(r, name, NVME_RESV_STATE_VERSION, NULL, errp);
        if (!s) {
            return false;
        }
        memset(tmp, 0, sizeof(*tmp));
        load_resv(s, tmp);
        if (!state_section_end(s, errp)) {
            return false;
        }
        g_mutex_lock(&n->resv_dom->lock);
        if (tmp->seq > res->seq) {
            /* rtype is read without the lock: not in a struct copy. */
            res->holder = tmp->holder;
            res->gen = tmp->gen;
            res->seq = tmp->seq;
            res->nregs = tmp->nregs;
            memcpy(res->regs, tmp->regs, sizeof(res->regs));
            resv_set_type(res, tmp->rtype);
        }
        g_mutex_unlock(&n->resv_dom->lock);
    }
    return true;
}
