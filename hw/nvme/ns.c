/*
 * NVMe namespaces: a block backend seen through an LBA format.  Namespace
 * 1 comes from the controller's drive= property; more come from nvme-ns
 * devices: bus=CONTROLLER_ID,drive=NODE[,nsid=N] makes a namespace of
 * that controller, which may be added before a client attaches or while
 * the controller runs (the host then gets a Namespace Attribute Changed
 * event); subsys=SUBSYS_ID,drive=NODE[,nsid=N][,shared=on][,detached=on]
 * makes a namespace of an NVM subsystem (subsys.c), attached to its
 * controllers as QEMU does.
 */
#include "hw/nvme/nvme.h"
#include "hw/nvme/trace.h"
#include "util/error.h"
#include "util/loop.h"

/*
 * Stable identifiers from @owner and the NSID: "iovd-nvme:SERIAL" for a
 * controller's own namespace, "iovd-nvme-subsys:NQN" for a subsystem's
 * (the same through every controller: Linux groups the paths by them).
 */
void nvme_ns_make_ids(NvmeNamespace *ns, const char *owner, uint32_t nsid)
{
    g_autofree char *seed = g_strdup_printf("%s:%u", owner, nsid);
    GChecksum *ck = g_checksum_new(G_CHECKSUM_SHA256);
    uint8_t digest[32];
    gsize len = sizeof(digest);

    g_checksum_update(ck, (const guchar *)seed, strlen(seed));
    g_checksum_get_digest(ck, digest, &len);
    g_checksum_free(ck);
    memcpy(ns->nguid, digest, 16);
    memcpy(ns->eui64, digest + 16, 8);
    memcpy(ns->uuid, digest + 8, 16);
    /* An RFC 4122 version 4 (random) UUID. */
    ns->uuid[6] = (ns->uuid[6] & 0x0f) | 0x40;
    ns->uuid[8] = (ns->uuid[8] & 0x3f) | 0x80;
}

static void nvme_ns_resize_cb(void *opaque)
{
    NvmeNamespace *ns = opaque;
    NvmeCtrl *n = ns->ctrl;

    ns->nsze = blk_getlength(ns->blk) >> ns->lba_shift;
    trace_nvme_ns_resize(nvme_id(n), ns->nsid, ns->nsze);
    if (ns->attached) {
        nvme_ns_changed(n, ns->nsid);
    }
}

static void nvme_ns_stop_cb(void *opaque)
{
    NvmeNamespace *ns = opaque;

    /*
     * The error policy holds a failed request until the monitor's cont:
     * stop fetching commands until a request completes again.
     */
    trace_nvme_blk_stopped(nvme_id(ns->ctrl), ns->nsid);
    device_pause(&ns->ctrl->pdev.dev);
}

static void nvme_ns_release_holder(void *opaque)
{
    device_release(opaque);
}

/*
 * The last request of a namespace being removed is done: it may go.  A
 * subsystem namespace's holder may run on another loop than this view's
 * controller: it is told there.
 */
static void nvme_ns_drained_cb(void *opaque)
{
    NvmeNamespace *ns = opaque;
    Device *holder = ns->holder;

    if (!holder) {
        return;
    }
    ns->holder = NULL;
    if (loop_in_thread(holder->loop)) {
        device_release(holder);
    } else {
        loop_post(holder->loop, nvme_ns_release_holder, holder);
    }
}

static const BlockDevOps nvme_ns_blk_ops = {
    .resize = nvme_ns_resize_cb,
    .stop = nvme_ns_stop_cb,
    .drained = nvme_ns_drained_cb,
};

bool nvme_ns_init(NvmeCtrl *n, NvmeNamespace *ns, const char *drive,
                  uint32_t nsid, uint32_t lbasz, bool share_rw,
                  const char *dev_id, GError **errp)
{
    g_autofree char *owner = NULL;
    uint64_t size;

    if (lbasz != 512 && lbasz != 4096) {
        error_setg(errp, "property 'logical_block_size': must be 512 or "
                   "4096, not %u", lbasz);
        return false;
    }
    ns->blk = blk_attach(drive, dev_id, share_rw, n->pdev.dev.loop, errp);
    if (!ns->blk) {
        return false;
    }
    size = blk_getlength(ns->blk);
    if (size < lbasz) {
        error_setg(errp, "drive '%s' is smaller than one %u-byte block",
                   drive, lbasz);
        blk_detach(ns->blk);
        ns->blk = NULL;
        return false;
    }
    ns->ctrl = n;
    ns->nsid = nsid;
    ns->lbasz = lbasz;
    ns->lba_shift = lbasz == 4096 ? 12 : 9;
    ns->nsze = size >> ns->lba_shift;
    ns->read_only = blk_is_read_only(ns->blk);
    ns->resv = &ns->own_resv;
    owner = g_strdup_printf("iovd-nvme:%s", n->serial);
    nvme_ns_make_ids(ns, owner, nsid);
    blk_set_dev_ops(ns->blk, &nvme_ns_blk_ops, ns);
    blk_set_error_policy(ns->blk, n->rerror, n->werror);
    return true;
}

void nvme_ns_cleanup(NvmeNamespace *ns)
{
    if (ns->blk) {
        blk_detach(ns->blk);
        ns->blk = NULL;
    }
}

void nvme_ns_attach(NvmeCtrl *n, NvmeNamespace *ns)
{
    g_assert(!n->ns[ns->nsid]);
    n->ns[ns->nsid] = ns;
    ns->attached = true;
    trace_nvme_ns_attach(nvme_id(n), ns->nsid, ns->nsze, ns->lbasz);
    if (n->csts & NVME_CSTS_RDY) {
        nvme_ns_changed(n, ns->nsid);
    }
}

void nvme_ns_detach(NvmeCtrl *n, NvmeNamespace *ns)
{
    if (!ns->attached) {
        return;
    }
    /* No new command reaches it; then what is in flight finishes. */
    n->ns[ns->nsid] = NULL;
    ns->attached = false;
    trace_nvme_ns_detach(nvme_id(n), ns->nsid);
    if (n->csts & NVME_CSTS_RDY) {
        nvme_ns_changed(n, ns->nsid);
    }
}

/*
 * A view whose subsystem namespace went may still be named by requests
 * in the block layer, or completed there and waiting for the worker.
 */
bool nvme_ns_unused(NvmeCtrl *n, NvmeNamespace *ns)
{
    if (blk_inflight(ns->blk)) {
        return false;
    }
    for (GList *l = n->completed.head; l; l = l->next) {
        if (((NvmeRequest *)l->data)->ns == ns) {
            return false;
        }
    }
    return true;
}

/* Free the dead views that are unused now (nvme_complete_bh, unrealize). */
void nvme_ns_reap(NvmeCtrl *n)
{
    GSList *keep = NULL;

    while (n->dead_views) {
        NvmeNamespace *ns = n->dead_views->data;

        n->dead_views = g_slist_delete_link(n->dead_views, n->dead_views);
        if (nvme_ns_unused(n, ns)) {
            nvme_ns_cleanup(ns);
            g_free(ns);
        } else {
            keep = g_slist_prepend(keep, ns);
        }
    }
    n->dead_views = keep;
}

void nvme_ns_cancel_queued(NvmeCtrl *n, bool throttled)
{
    for (unsigned i = 1; i <= NVME_MAX_NAMESPACES; i++) {
        if (n->ns[i]) {
            blk_cancel_queued(n->ns[i]->blk, throttled);
        }
    }
}

/* ---- the nvme-ns device ---- */

typedef struct NvmeNsDevice {
    Device dev;
    char *bus;
    char *subsys;
    char *drive;
    uint32_t nsid;
    uint32_t logical_block_size;
    bool share_rw;
    bool shared;
    bool detached;
    char *attached;             /* ID:ID... of its controllers, or NULL */
    NvmeNamespace ns;           /* bus=: the controller's namespace */
    NvmeSubsysNs sns;           /* subsys=: the subsystem's */
} NvmeNsDevice;

static const DeviceClass nvme_ns_class;
#define NVME_NS(dev) ((NvmeNsDevice *)device_check((dev), &nvme_ns_class))

/* The lowest NSID free on @n (and in its subsystem), else 0. */
static uint32_t nvme_nsdev_free_nsid(NvmeCtrl *n)
{
    for (uint32_t nsid = 1; nsid <= NVME_MAX_NAMESPACES; nsid++) {
        if (!n->ns[nsid] && (!n->subsys || !n->subsys->ns[nsid])) {
            return nsid;
        }
    }
    return 0;
}

/* bus=: a namespace of that controller only. */
static bool nvme_nsdev_realize_bus(NvmeNsDevice *d, Device *parent,
                                   GError **errp)
{
    NvmeCtrl *n;
    uint32_t nsid = d->nsid;

    if (!parent || parent->cls != &nvme_class) {
        error_setg(errp, "property 'bus': '%s' is not an nvme controller",
                   d->bus);
        return false;
    }
    n = NVME(parent);
    if (nsid == 0) {
        nsid = nvme_nsdev_free_nsid(n);
        if (!nsid) {
            error_setg(errp, "controller '%s' has no free namespace id",
                       d->bus);
            return false;
        }
    } else if (n->ns[nsid]) {
        error_setg(errp, "property 'nsid': namespace %u of '%s' exists",
                   nsid, d->bus);
        return false;
    } else if (!nvme_subsys_nsid_free(n, nsid, errp)) {
        return false;
    }
    if (!nvme_ns_init(n, &d->ns, d->drive, nsid,
                      d->logical_block_size ? d->logical_block_size
                                            : n->logical_block_size,
                      d->share_rw, d->dev.id, errp)) {
        return false;
    }
    d->nsid = nsid;
    d->dev.parent = parent;
    nvme_ns_attach(n, &d->ns);
    return true;
}

/* subsys=: a namespace of an NVM subsystem (subsys.c). */
static bool nvme_nsdev_realize_subsys(NvmeNsDevice *d, Device *parent,
                                      GError **errp)
{
    NvmeSubsysNs *sns = &d->sns;

    if (!parent || parent->cls != &nvme_subsys_class) {
        error_setg(errp, "property 'subsys': '%s' is not an nvme-subsys",
                   d->subsys);
        return false;
    }
    if (d->dev.iothread_id) {
        error_setg(errp, "property 'iothread': a namespace of a subsystem "
                   "runs on the main loop (its I/O on its controllers')");
        return false;
    }
    sns->dev = &d->dev;
    sns->drive = d->drive;
    sns->nsid = d->nsid;
    sns->lbasz = d->logical_block_size ? d->logical_block_size : 512;
    sns->shared = d->shared;
    sns->detached = d->detached;
    sns->attached = d->attached ? g_strsplit(d->attached, ":", -1) : NULL;
    if (sns->attached && !sns->shared && g_strv_length(sns->attached) > 1) {
        error_setg(errp, "property 'attached': a private namespace "
                   "(shared=off) is attached to one controller at most");
        g_clear_pointer(&sns->attached, g_strfreev);
        return false;
    }
    if (!nvme_subsys_ns_add(NVME_SUBSYS(parent), sns, errp)) {
        return false;
    }
    d->nsid = sns->nsid;
    d->dev.parent = parent;
    return true;
}

static bool nvme_nsdev_realize(Device *dev, GError **errp)
{
    NvmeNsDevice *d = NVME_NS(dev);

    if (!!d->bus == !!d->subsys) {
        error_setg(errp, "nvme-ns needs exactly one of 'bus' (a "
                   "controller) and 'subsys' (an nvme-subsys)");
        return false;
    }
    if (d->bus) {
        if (d->shared || d->detached || d->attached) {
            error_setg(errp, "properties 'shared', 'detached' and "
                       "'attached' are for a namespace of a subsystem "
                       "(subsys=)");
            return false;
        }
        return nvme_nsdev_realize_bus(d, device_find(d->bus), errp);
    }
    return nvme_nsdev_realize_subsys(d, device_find(d->subsys), errp);
}

/*
 * Removing the namespace (device_del, or its controller or subsystem
 * going): no new command reaches it; the device is freed once its
 * requests in the block layer are done (nvme_ns_drained_cb).
 */
static void nvme_nsdev_quiesce(Device *dev, DeviceResetKind kind)
{
    NvmeNsDevice *d = NVME_NS(dev);

    if (d->subsys) {
        nvme_subsys_ns_quiesce(&d->sns);
        return;
    }
    if (d->ns.ctrl) {
        nvme_ns_detach(d->ns.ctrl, &d->ns);
    }
    blk_cancel_queued(d->ns.blk, true);
    if (blk_inflight(d->ns.blk) && !d->ns.holder) {
        d->ns.holder = dev;
        device_hold(dev);
    }
}

static void nvme_nsdev_unrealize(Device *dev)
{
    NvmeNsDevice *d = NVME_NS(dev);

    if (d->subsys) {
        nvme_subsys_ns_remove(&d->sns);
        g_clear_pointer(&d->sns.attached, g_strfreev);
        return;
    }
    if (d->ns.ctrl) {
        nvme_ns_detach(d->ns.ctrl, &d->ns);
    }
    nvme_ns_cleanup(&d->ns);
}

static const PropDef nvme_nsdev_props[] = {
    PROP_DEF_STR("bus", NvmeNsDevice, bus,
                 "id of the nvme controller (or subsys=)"),
    PROP_DEF_STR("subsys", NvmeNsDevice, subsys,
                 "id of the nvme-subsys (or bus=)"),
    PROP_DEF_STR("drive", NvmeNsDevice, drive, "block node",
                 .mandatory = true),
    PROP_DEF_UINT("nsid", NvmeNsDevice, nsid,
                  "namespace id (0: the lowest free one)",
                  .max = NVME_MAX_NAMESPACES, .defval = "0"),
    PROP_DEF_UINT("logical_block_size", NvmeNsDevice, logical_block_size,
                  "512 or 4096 (0: the controller's; 512 in a subsystem)",
                  .max = 4096, .defval = "0"),
    PROP_DEF_BOOL("share-rw", NvmeNsDevice, share_rw,
                  "allow other devices to use the drive too",
                  .defval = "off"),
    PROP_DEF_BOOL("shared", NvmeNsDevice, shared,
                  "subsys=: may be attached to several controllers at once "
                  "(NMIC); else to one at a time", .defval = "off"),
    PROP_DEF_BOOL("detached", NvmeNsDevice, detached,
                  "subsys=: attached to no controller at start (see "
                  "nvme-ns-attach)", .defval = "off"),
    PROP_DEF_STR("attached", NvmeNsDevice, attached,
                 "subsys=: attached to exactly these controllers "
                 "(ID:ID..., as they join), whatever shared= says; what "
                 "nvme-ns-attach/-detach leave for a live upgrade"),
    PROP_DEF_END
};

/*
 * A controller's namespace runs on its controller's loop.  A subsystem's
 * runs on the main loop (its parent is set at realize): from there it
 * waits for each controller's loop in turn, which an iothread could not
 * do for a controller on the main loop.
 */
static const char *nvme_nsdev_parent_id(Device *dev)
{
    return NVME_NS(dev)->bus;
}

static const DeviceClass nvme_ns_class = {
    .name = "nvme-ns",
    .desc = "NVMe namespace of an nvme controller (bus=ID,drive=NODE) or "
            "of an nvme-subsys (subsys=ID,drive=NODE)",
    .instance_size = sizeof(NvmeNsDevice),
    .is_pci = false,
    .props = nvme_nsdev_props,
    .parent_id = nvme_nsdev_parent_id,
    .realize = nvme_nsdev_realize,
    .quiesce = nvme_nsdev_quiesce,
    .unrealize = nvme_nsdev_unrealize,
};

static void __attribute__((constructor)) nvme_ns_register(void)
{
    device_class_register(&nvme_ns_class);
}
