/*
 * NVM subsystems: the nvme-subsys device, its controllers (nvme with
 * subsys=) and its namespaces (nvme-ns with subsys=), QEMU's model.
 *
 *   -device nvme-subsys,id=S[,nqn=NQN]
 *   -device nvme,id=C0,subsys=S,socket=...   (CNTLID 0)
 *   -device nvme,id=C1,subsys=S,socket=...   (CNTLID 1: another VM)
 *   -device nvme-ns,subsys=S,nsid=1,drive=D,shared=on
 *
 * Attachment at start, as QEMU's hw/nvme does: a shared namespace that
 * is not detached=on is attached to every controller of the subsystem,
 * those that join later too; a private one (shared=off) to one
 * controller at a time, at start the first (lowest CNTLID) there is or
 * the first to join.  detached=on: to none.  The monitor attaches and
 * detaches at runtime (nvme-ns-attach, nvme-ns-detach); the host is told
 * by a Namespace Attribute Changed event and the Changed Namespace List.
 *
 * Each controller reads a namespace through its own view (nvme.h), whose
 * block backend completes on that controller's loop: the controllers of
 * one subsystem may run on different iothreads.
 */
#include "hw/nvme/nvme.h"
#include "hw/nvme/nvme-subsys.h"
#include "hw/nvme/trace.h"
#include "util/cmdline.h"
#include "util/error.h"
#include "util/keyval.h"
#include "util/loop.h"

/* ---- views: a namespace as one controller sees it ---- */

/* On @n's loop: @sns's view from @n, made on first use. */
static NvmeNamespace *nvme_subsys_view(NvmeSubsysNs *sns, NvmeCtrl *n,
                                       GError **errp)
{
    NvmeNamespace *ns = sns->view[n->cntlid];
    g_autofree char *owner = NULL;
    g_autofree char *blk_id = NULL;

    if (ns) {
        return ns;
    }
    ns = g_new0(NvmeNamespace, 1);
    /* The node is opened once per controller: share-rw among them. */
    blk_id = g_strdup_printf("%s@%s", device_id(sns->dev), nvme_id(n));
    if (!nvme_ns_init(n, ns, sns->drive, sns->nsid, sns->lbasz, true,
                      blk_id, errp)) {
        g_free(ns);
        return NULL;
    }
    owner = g_strdup_printf("iovd-nvme-subsys:%s", sns->subsys->subnqn);
    nvme_ns_make_ids(ns, owner, sns->nsid);
    ns->shared = sns->shared;
    ns->sns = sns;
    ns->resv = &sns->resv;
    sns->view[n->cntlid] = ns;
    return ns;
}

/*
 * On @n's loop: free @ns now, or once no request names it (a work item
 * parked in a DMA may hold one not yet submitted).
 */
static void nvme_subsys_view_free(NvmeCtrl *n, NvmeNamespace *ns)
{
    ns->sns = NULL;
    ns->resv = NULL;
    if (nvme_ns_unused(n, ns) && device_worker_idle(&n->pdev.dev)) {
        nvme_ns_cleanup(ns);
        g_free(ns);
        return;
    }
    n->dead_views = g_slist_prepend(n->dead_views, ns);
}

/* On @n's loop. */
static bool nvme_subsys_attach_here(NvmeSubsysNs *sns, NvmeCtrl *n,
                                    GError **errp)
{
    NvmeSubsys *s = sns->subsys;
    NvmeNamespace *ns;

    if (n->ns[sns->nsid]) {
        error_setg(errp, "controller '%s' has a namespace %u already",
                   nvme_id(n), sns->nsid);
        return false;
    }
    ns = nvme_subsys_view(sns, n, errp);
    if (!ns) {
        return false;
    }
    nvme_ns_attach(n, ns);
    __atomic_or_fetch(&s->ns_ctrls[sns->nsid], 1u << n->cntlid,
                      __ATOMIC_RELEASE);
    trace_nvme_subsys_attach(device_id(&s->dev), sns->nsid, nvme_id(n),
                             n->cntlid);
    return true;
}

/* On @n's loop: the host is told when the controller is enabled. */
static void nvme_subsys_detach_here(NvmeSubsysNs *sns, NvmeCtrl *n)
{
    NvmeSubsys *s = sns->subsys;
    NvmeNamespace *ns = sns->view[n->cntlid];

    if (ns && ns->attached) {
        nvme_ns_detach(n, ns);
        trace_nvme_subsys_detach(device_id(&s->dev), sns->nsid, nvme_id(n),
                                 n->cntlid);
    }
    __atomic_and_fetch(&s->ns_ctrls[sns->nsid], ~(1u << n->cntlid),
                       __ATOMIC_RELEASE);
}

/* ---- running on a controller's loop ---- */

typedef enum {
    NVME_SUBSYS_ATTACH,
    NVME_SUBSYS_DETACH,
    NVME_SUBSYS_QUIESCE,
    NVME_SUBSYS_REMOVE,
} NvmeSubsysOp;

typedef struct NvmeSubsysCall {
    NvmeSubsysOp op;
    NvmeSubsysNs *sns;
    GError *err;
    bool ok;
} NvmeSubsysCall;

/* Stop @sns's requests on @n: the nvme-ns device waits for the rest. */
static void nvme_subsys_quiesce_here(NvmeSubsysNs *sns, NvmeCtrl *n)
{
    NvmeNamespace *ns = sns->view[n->cntlid];

    nvme_subsys_detach_here(sns, n);
    blk_cancel_queued(ns->blk, true);
    if (blk_inflight(ns->blk) && !ns->holder) {
        /* Released on the device's loop (nvme_ns_drained_cb). */
        ns->holder = sns->dev;
        device_hold(sns->dev);
    }
}

/* A stopped controller's state (being saved, or loaded) holds still. */
static bool nvme_subsys_may_change(NvmeCtrl *n, GError **errp)
{
    DeviceRunState st = n->pdev.dev.state;

    if (st == DEVICE_STOPPING || st == DEVICE_STOPPED) {
        error_setg(errp, "Controller '%s' is stopped (a migration or an "
                   "upgrade): its namespaces cannot change now", nvme_id(n));
        return false;
    }
    return true;
}

static void nvme_subsys_call_fn(Device *dev, void *opaque)
{
    NvmeSubsysCall *c = opaque;
    NvmeCtrl *n = NVME(dev);

    switch (c->op) {
    case NVME_SUBSYS_ATTACH:
        c->ok = nvme_subsys_may_change(n, &c->err) &&
                nvme_subsys_attach_here(c->sns, n, &c->err);
        break;
    case NVME_SUBSYS_DETACH:
        c->ok = nvme_subsys_may_change(n, &c->err);
        if (c->ok) {
            nvme_subsys_detach_here(c->sns, n);
        }
        break;
    case NVME_SUBSYS_QUIESCE:
        nvme_subsys_quiesce_here(c->sns, n);
        c->ok = true;
        break;
    case NVME_SUBSYS_REMOVE:
        nvme_subsys_detach_here(c->sns, n);
        nvme_subsys_view_free(n, c->sns->view[n->cntlid]);
        c->sns->view[n->cntlid] = NULL;
        c->ok = true;
        break;
    }
}

static bool nvme_subsys_call(NvmeSubsysOp op, NvmeSubsysNs *sns,
                             NvmeCtrl *n, GError **errp)
{
    NvmeSubsysCall c = { .op = op, .sns = sns };

    device_run_sync(&n->pdev.dev, nvme_subsys_call_fn, &c);
    if (c.err) {
        g_propagate_error(errp, c.err);
    }
    return c.ok;
}

/* ---- controllers ---- */

/* An attached= namespace: whether it goes to @n. */
static bool nvme_subsys_listed(NvmeSubsysNs *sns, NvmeCtrl *n)
{
    return g_strv_contains((const char *const *)sns->attached, nvme_id(n));
}

/* The subsystem's namespaces a controller joining gets at once. */
static bool nvme_subsys_attach_new_ctrl(NvmeSubsys *s, NvmeCtrl *n,
                                        GError **errp)
{
    for (uint32_t nsid = 1; nsid <= NVME_MAX_NAMESPACES; nsid++) {
        NvmeSubsysNs *sns = s->ns[nsid];

        if (!sns || (sns->attached ? !nvme_subsys_listed(sns, n)
                     : sns->detached || (!sns->shared && !sns->pending))) {
            continue;
        }
        if (!nvme_subsys_attach_here(sns, n, errp)) {
            return false;
        }
        sns->pending = false;
    }
    return true;
}

static NvmeSubsys *nvme_subsys_find(const char *id)
{
    Device *dev = id ? device_find(id) : NULL;

    if (!dev || dev->cls != &nvme_subsys_class ||
        dev->state == DEVICE_DELETING) {
        return NULL;
    }
    return NVME_SUBSYS(dev);
}

/* Realize of a controller with subsys= (on its loop). */
bool nvme_subsys_register_ctrl(NvmeCtrl *n, GError **errp)
{
    NvmeSubsys *s = nvme_subsys_find(n->subsys_id);
    unsigned id;

    if (!s) {
        error_setg(errp, "property 'subsys': '%s' is not an nvme-subsys",
                   n->subsys_id);
        return false;
    }
    for (id = 0; id < NVME_SUBSYS_MAX_CTRLS && s->ctrls[id]; id++) {
        /* the lowest free CNTLID, as QEMU */
    }
    if (id == NVME_SUBSYS_MAX_CTRLS) {
        error_setg(errp, "subsystem '%s' has %u controllers already",
                   device_id(&s->dev), NVME_SUBSYS_MAX_CTRLS);
        return false;
    }
    for (uint32_t nsid = 1; nsid <= NVME_MAX_NAMESPACES; nsid++) {
        if (n->ns[nsid] && s->ns[nsid]) {
            error_setg(errp, "namespace %u of '%s' is also a namespace of "
                       "subsystem '%s'", nsid, nvme_id(n),
                       device_id(&s->dev));
            return false;
        }
    }
    s->ctrls[id] = n;
    __atomic_or_fetch(&s->ctrl_mask, 1u << id, __ATOMIC_RELEASE);
    n->subsys = s;
    n->cntlid = id;
    /* As QEMU: the subsystem's serial number is its first controller's. */
    if (!s->serial) {
        s->serial = g_strdup(n->serial);
    }
    g_free(n->sn);
    n->sn = g_strdup(s->serial);
    g_free(n->subnqn);
    n->subnqn = g_strdup(s->subnqn);
    if (!nvme_subsys_attach_new_ctrl(s, n, errp)) {
        nvme_subsys_unregister_ctrl(n);
        return false;
    }
    return true;
}

/* Unrealize (on its loop, nothing in flight); failed realize too. */
void nvme_subsys_unregister_ctrl(NvmeCtrl *n)
{
    NvmeSubsys *s = n->subsys;

    if (!s) {
        return;
    }
    for (uint32_t nsid = 1; nsid <= NVME_MAX_NAMESPACES; nsid++) {
        NvmeSubsysNs *sns = s->ns[nsid];

        if (sns && sns->view[n->cntlid]) {
            nvme_subsys_detach_here(sns, n);
            nvme_ns_cleanup(sns->view[n->cntlid]);
            g_free(sns->view[n->cntlid]);
            sns->view[n->cntlid] = NULL;
        }
    }
    __atomic_and_fetch(&s->ctrl_mask, ~(1u << n->cntlid), __ATOMIC_RELEASE);
    s->ctrls[n->cntlid] = NULL;
    n->subsys = NULL;
}

bool nvme_subsys_nsid_free(NvmeCtrl *n, uint32_t nsid, GError **errp)
{
    if (n->subsys && n->subsys->ns[nsid]) {
        error_setg(errp, "property 'nsid': namespace %u of subsystem '%s' "
                   "exists", nsid, device_id(&n->subsys->dev));
        return false;
    }
    return true;
}

/* Identify CNS 12h / 13h (NVMe 1.4 5.15.2.1): CNTLIDs from @min up. */
void nvme_subsys_ctrl_list(NvmeCtrl *n, uint32_t nsid, uint16_t min,
                           uint16_t *list)
{
    uint32_t mask;
    unsigned cnt = 0;

    if (!n->subsys) {
        mask = nsid && !n->ns[nsid] ? 0 : 1u << n->cntlid;
    } else if (nsid) {
        mask = __atomic_load_n(&n->subsys->ns_ctrls[nsid], __ATOMIC_ACQUIRE);
    } else {
        mask = __atomic_load_n(&n->subsys->ctrl_mask, __ATOMIC_ACQUIRE);
    }
    for (unsigned id = min; id < NVME_SUBSYS_MAX_CTRLS; id++) {
        if (mask & (1u << id)) {
            list[1 + cnt++] = id;
        }
    }
    list[0] = cnt;
}

/* ---- namespaces ---- */

static bool nvme_subsys_ns_check(NvmeSubsys *s, NvmeSubsysNs *sns,
                                 GError **errp)
{
    BlockNode *bs = blk_node_find(sns->drive);

    if (sns->lbasz != 512 && sns->lbasz != 4096) {
        error_setg(errp, "property 'logical_block_size': must be 512 or "
                   "4096, not %u", sns->lbasz);
        return false;
    }
    if (!bs) {
        error_setg(errp, "no block node named '%s'", sns->drive);
        return false;
    }
    if (blk_node_size(bs) < sns->lbasz) {
        error_setg(errp, "drive '%s' is smaller than one %u-byte block",
                   sns->drive, sns->lbasz);
        return false;
    }
    for (unsigned id = 0; id < NVME_SUBSYS_MAX_CTRLS; id++) {
        if (s->ctrls[id] && s->ctrls[id]->ns[sns->nsid]) {
            error_setg(errp, "property 'nsid': controller '%s' has a "
                       "namespace %u of its own", nvme_id(s->ctrls[id]),
                       sns->nsid);
            return false;
        }
    }
    return true;
}

/* The lowest NSID free in @s and on each of its controllers, else 0. */
static uint32_t nvme_subsys_free_nsid(NvmeSubsys *s)
{
    for (uint32_t nsid = 1; nsid <= NVME_MAX_NAMESPACES; nsid++) {
        bool used = s->ns[nsid] != NULL;

        for (unsigned id = 0; id < NVME_SUBSYS_MAX_CTRLS && !used; id++) {
            used = s->ctrls[id] && s->ctrls[id]->ns[nsid];
        }
        if (!used) {
            return nsid;
        }
    }
    return 0;
}

/* Attach a namespace that comes to the controllers QEMU would. */
static bool nvme_subsys_ns_attach_start(NvmeSubsys *s, NvmeSubsysNs *sns,
                                        GError **errp)
{
    if (sns->detached && !sns->attached) {
        return true;
    }
    sns->pending = !sns->shared && !sns->attached;
    for (unsigned id = 0; id < NVME_SUBSYS_MAX_CTRLS; id++) {
        if (!s->ctrls[id] ||
            (sns->attached && !nvme_subsys_listed(sns, s->ctrls[id]))) {
            continue;
        }
        if (!nvme_subsys_call(NVME_SUBSYS_ATTACH, sns, s->ctrls[id], errp)) {
            return false;
        }
        if (!sns->shared && !sns->attached) {
            sns->pending = false;
            break;
        }
    }
    return true;
}

/* Realize of nvme-ns,subsys= (on its loop, the main thread waits). */
bool nvme_subsys_ns_add(NvmeSubsys *s, NvmeSubsysNs *sns, GError **errp)
{
    if (!sns->nsid) {
        sns->nsid = nvme_subsys_free_nsid(s);
        if (!sns->nsid) {
            error_setg(errp, "subsystem '%s' has no free namespace id",
                       device_id(&s->dev));
            return false;
        }
    } else if (s->ns[sns->nsid]) {
        error_setg(errp, "property 'nsid': namespace %u of subsystem '%s' "
                   "exists", sns->nsid, device_id(&s->dev));
        return false;
    }
    if (!nvme_subsys_ns_check(s, sns, errp)) {
        return false;
    }
    sns->subsys = s;
    s->ns[sns->nsid] = sns;
    if (!nvme_subsys_ns_attach_start(s, sns, errp)) {
        nvme_subsys_ns_remove(sns);
        return false;
    }
    return true;
}

/* Its device is being removed: detach it everywhere, stop its requests. */
void nvme_subsys_ns_quiesce(NvmeSubsysNs *sns)
{
    NvmeSubsys *s = sns->subsys;

    for (unsigned id = 0; s && id < NVME_SUBSYS_MAX_CTRLS; id++) {
        if (s->ctrls[id] && sns->view[id]) {
            nvme_subsys_call(NVME_SUBSYS_QUIESCE, sns, s->ctrls[id], NULL);
        }
    }
}

void nvme_subsys_ns_remove(NvmeSubsysNs *sns)
{
    NvmeSubsys *s = sns->subsys;

    if (!s) {
        return;
    }
    for (unsigned id = 0; id < NVME_SUBSYS_MAX_CTRLS; id++) {
        if (s->ctrls[id] && sns->view[id]) {
            nvme_subsys_call(NVME_SUBSYS_REMOVE, sns, s->ctrls[id], NULL);
        }
    }
    s->ns[sns->nsid] = NULL;
    sns->subsys = NULL;
}

/* ---- the monitor (nvme-subsys.h) ---- */

static bool nvme_subsys_lookup(const char *subsys, uint32_t nsid,
                               const char *ctrl, NvmeSubsysNs **sns,
                               NvmeCtrl **n, GError **errp)
{
    NvmeSubsys *s = nvme_subsys_find(subsys);
    Device *dev = device_find(ctrl);

    if (!s) {
        error_setg_class(errp, IOVD_ERROR_DEVICE_NOT_FOUND,
                         "No NVMe subsystem '%s'", subsys);
        return false;
    }
    if (nsid == 0 || nsid > NVME_MAX_NAMESPACES || !s->ns[nsid]) {
        error_setg(errp, "Subsystem '%s' has no namespace %u", subsys,
                   nsid);
        return false;
    }
    if (!dev) {
        error_setg_class(errp, IOVD_ERROR_DEVICE_NOT_FOUND,
                         "Device '%s' not found", ctrl);
        return false;
    }
    if (dev->cls != &nvme_class || NVME(dev)->subsys != s) {
        error_setg(errp, "'%s' is not a controller of subsystem '%s'",
                   ctrl, subsys);
        return false;
    }
    *sns = s->ns[nsid];
    *n = NVME(dev);
    return true;
}

/* The first controller @sns is attached to, or NULL. */
static NvmeCtrl *nvme_subsys_ns_owner(NvmeSubsysNs *sns)
{
    NvmeSubsys *s = sns->subsys;
    uint32_t mask = __atomic_load_n(&s->ns_ctrls[sns->nsid],
                                    __ATOMIC_ACQUIRE);

    return mask ? s->ctrls[__builtin_ctz(mask)] : NULL;
}

static void nvme_subsys_set_attached(Keyval *kv, void *opaque)
{
    keyval_set(kv, "attached", opaque);
    g_free(keyval_take(kv, "detached"));
}

/*
 * The operator chose @sns's controllers: it is attached to those only
 * (a controller that joins later is not given it), here and in a live
 * upgrade's new process (its nvme-ns option gets attached=).
 */
static void nvme_subsys_ns_chosen(NvmeSubsysNs *sns)
{
    uint32_t mask = __atomic_load_n(&sns->subsys->ns_ctrls[sns->nsid],
                                    __ATOMIC_ACQUIRE);
    g_autoptr(GPtrArray) ids = g_ptr_array_new();
    g_autofree char *list = NULL;

    for (unsigned id = 0; id < NVME_SUBSYS_MAX_CTRLS; id++) {
        if ((mask & (1u << id)) && sns->subsys->ctrls[id]) {
            g_ptr_array_add(ids, (gpointer)nvme_id(sns->subsys->ctrls[id]));
        }
    }
    g_ptr_array_add(ids, NULL);
    g_strfreev(sns->attached);
    sns->attached = g_strdupv((char **)ids->pdata);
    list = g_strjoinv(":", sns->attached);
    iovd_config_update(sns->dev, nvme_subsys_set_attached, list);
}

bool nvme_subsys_attach_ns(const char *subsys, uint32_t nsid,
                           const char *ctrl, GError **errp)
{
    NvmeSubsysNs *sns;
    NvmeCtrl *n, *owner;

    if (!nvme_subsys_lookup(subsys, nsid, ctrl, &sns, &n, errp)) {
        return false;
    }
    owner = nvme_subsys_ns_owner(sns);
    if (owner && (__atomic_load_n(&sns->subsys->ns_ctrls[nsid],
                                  __ATOMIC_ACQUIRE) & (1u << n->cntlid))) {
        error_setg(errp, "Namespace %u of subsystem '%s' is already "
                   "attached to '%s'", nsid, subsys, ctrl);
        return false;
    }
    if (owner && !sns->shared) {
        error_setg(errp, "Namespace %u of subsystem '%s' is private "
                   "(shared=off) and attached to '%s'", nsid, subsys,
                   nvme_id(owner));
        return false;
    }
    sns->pending = false;
    if (!nvme_subsys_call(NVME_SUBSYS_ATTACH, sns, n, errp)) {
        return false;
    }
    nvme_subsys_ns_chosen(sns);
    return true;
}

bool nvme_subsys_detach_ns(const char *subsys, uint32_t nsid,
                           const char *ctrl, GError **errp)
{
    NvmeSubsysNs *sns;
    NvmeCtrl *n;

    if (!nvme_subsys_lookup(subsys, nsid, ctrl, &sns, &n, errp)) {
        return false;
    }
    if (!(__atomic_load_n(&sns->subsys->ns_ctrls[nsid], __ATOMIC_ACQUIRE) &
          (1u << n->cntlid))) {
        error_setg(errp, "Namespace %u of subsystem '%s' is not attached "
                   "to '%s'", nsid, subsys, ctrl);
        return false;
    }
    if (!nvme_subsys_call(NVME_SUBSYS_DETACH, sns, n, errp)) {
        return false;
    }
    nvme_subsys_ns_chosen(sns);
    return true;
}

static void nvme_subsys_info_free(gpointer p)
{
    NvmeSubsysInfo *info = p;

    g_free(info->id);
    g_free(info->nqn);
    g_ptr_array_unref(info->ctrls);
    g_ptr_array_unref(info->ns);
    g_free(info);
}

static void nvme_subsys_ns_info_free(gpointer p)
{
    NvmeSubsysNsInfo *ni = p;

    g_free(ni->drive);
    g_ptr_array_unref(ni->ctrls);
    g_free(ni);
}

static void nvme_subsys_ctrl_info_free(gpointer p)
{
    NvmeSubsysCtrlInfo *ci = p;

    g_free(ci->id);
    g_free(ci);
}

static NvmeSubsysNsInfo *nvme_subsys_ns_info(NvmeSubsysNs *sns)
{
    NvmeSubsys *s = sns->subsys;
    NvmeSubsysNsInfo *ni = g_new0(NvmeSubsysNsInfo, 1);
    uint32_t mask = __atomic_load_n(&s->ns_ctrls[sns->nsid],
                                    __ATOMIC_ACQUIRE);

    ni->nsid = sns->nsid;
    ni->shared = sns->shared;
    ni->drive = g_strdup(sns->drive);
    ni->ctrls = g_ptr_array_new_with_free_func(g_free);
    for (unsigned id = 0; id < NVME_SUBSYS_MAX_CTRLS; id++) {
        if ((mask & (1u << id)) && s->ctrls[id]) {
            g_ptr_array_add(ni->ctrls, g_strdup(nvme_id(s->ctrls[id])));
        }
    }
    return ni;
}

static void nvme_subsys_info_one(Device *dev, void *opaque)
{
    GPtrArray *list = opaque;
    NvmeSubsysInfo *info;
    NvmeSubsys *s;

    if (dev->cls != &nvme_subsys_class || dev->state == DEVICE_DELETING) {
        return;
    }
    s = NVME_SUBSYS(dev);
    info = g_new0(NvmeSubsysInfo, 1);
    info->id = g_strdup(device_id(dev));
    info->nqn = g_strdup(s->subnqn);
    info->ctrls = g_ptr_array_new_with_free_func(nvme_subsys_ctrl_info_free);
    info->ns = g_ptr_array_new_with_free_func(nvme_subsys_ns_info_free);
    for (unsigned id = 0; id < NVME_SUBSYS_MAX_CTRLS; id++) {
        NvmeSubsysCtrlInfo *ci;

        if (!s->ctrls[id]) {
            continue;
        }
        ci = g_new0(NvmeSubsysCtrlInfo, 1);
        ci->id = g_strdup(nvme_id(s->ctrls[id]));
        ci->cntlid = id;
        g_ptr_array_add(info->ctrls, ci);
    }
    for (uint32_t nsid = 1; nsid <= NVME_MAX_NAMESPACES; nsid++) {
        if (s->ns[nsid]) {
            g_ptr_array_add(info->ns, nvme_subsys_ns_info(s->ns[nsid]));
        }
    }
    g_ptr_array_add(list, info);
}

GPtrArray *nvme_subsys_query(void)
{
    GPtrArray *list = g_ptr_array_new_with_free_func(nvme_subsys_info_free);

    device_foreach(nvme_subsys_info_one, list);
    return list;
}

/* ---- the nvme-subsys device ---- */

/*
 * The default NQN is QEMU's (hw/nvme/subsys.c, nvme_subsys_setup():
 * "nqn.2019-08.org.qemu:" and the device id).  A given nqn= is used as it
 * is (QEMU puts the same prefix before it too).
 */
static bool nvme_subsys_realize(Device *dev, GError **errp)
{
    NvmeSubsys *s = NVME_SUBSYS(dev);

    if (s->nqn) {
        if (!*s->nqn || strlen(s->nqn) > NVME_NQN_MAX) {
            error_setg(errp, "property 'nqn': 1 to %u characters",
                       NVME_NQN_MAX);
            return false;
        }
        s->subnqn = g_strdup(s->nqn);
    } else {
        s->subnqn = g_strdup_printf("nqn.2019-08.org.qemu:%s",
                                    device_id(dev));
    }
    s->resv_dom = nvme_resv_domain_new();
    return true;
}

static void nvme_subsys_forget_fn(Device *dev, void *opaque)
{
    NvmeCtrl *n = NVME(dev);

    n->subsys = NULL;           /* it keeps its SN and SUBNQN */
}

/*
 * Its namespaces went first (children); its controllers stay alone.  The
 * device may run on an iothread (every device takes iothread=, though a
 * subsystem does no I/O): then the main thread waits for this and lends
 * us its loop (util/loop.h), so a controller there is told directly.
 */
static void nvme_subsys_unrealize(Device *dev)
{
    NvmeSubsys *s = NVME_SUBSYS(dev);

    for (unsigned id = 0; id < NVME_SUBSYS_MAX_CTRLS; id++) {
        Device *cdev = s->ctrls[id] ? &s->ctrls[id]->pdev.dev : NULL;

        if (cdev && cdev->loop == loop_main()) {
            nvme_subsys_forget_fn(cdev, NULL);
        } else if (cdev) {
            device_run_sync(cdev, nvme_subsys_forget_fn, NULL);
        }
        s->ctrls[id] = NULL;
    }
    g_free(s->subnqn);
    g_free(s->serial);
    nvme_resv_domain_unref(s->resv_dom);
}

static const PropDef nvme_subsys_props[] = {
    PROP_DEF_STR("nqn", NvmeSubsys, nqn,
                 "NVM subsystem NQN (default: nqn.2019-08.org.qemu:ID)"),
    PROP_DEF_END
};

const DeviceClass nvme_subsys_class = {
    .name = "nvme-subsys",
    .desc = "NVM subsystem: controllers (nvme,subsys=ID) sharing "
            "namespaces (nvme-ns,subsys=ID)",
    .instance_size = sizeof(NvmeSubsys),
    .is_pci = false,
    .props = nvme_subsys_props,
    .realize = nvme_subsys_realize,
    .unrealize = nvme_subsys_unrealize,
};

static void __attribute__((constructor)) nvme_subsys_register(void)
{
    device_class_register(&nvme_subsys_class);
}
