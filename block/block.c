/*
 * Block layer core: nodes, backends, request accounting, error policy,
 * batching and throttling.  Drivers live in file.c, null.c, nbd.c, rbd.c.
 */
#include "block/block-int.h"
#include "block/trace.h"
#include "util/cmdline.h"
#include "util/error.h"
#include "util/loop.h"
#include "util/iov.h"
#include "util/throttle.h"

const char *const blk_error_policy_names[] = {
    "report", "ignore", "stop", "enospc", NULL
};

/* The group's buckets (util/throttle.h), in BlockThrottle's order. */
enum { TB_BPS, TB_BPS_RD, TB_BPS_WR, TB_IOPS, TB_IOPS_RD, TB_IOPS_WR, TB_N };

struct BlockBackend {
    BlockNode *bs;
    EventLoop *loop;            /* the device's: everything runs here */
    void *drv_state;            /* the driver's, for this loop */
    char *dev_id;
    bool share_rw;
    const BlockDevOps *dev_ops;
    void *dev_opaque;
    BlockErrorPolicy rerror, werror;
    unsigned inflight;

    /* Requests held by the stop policy, retried on blk_resume_all(). */
    BlockReq *stopped_head, **stopped_tail;
    bool stopped;

    /*
     * Throttling: the backend is a member of one throttle group, a named
     * one (the node's throttle-group=) or its own (block_set_io_throttle),
     * and queues what the group holds back.
     */
    ThrottleMember *tm;
    ThrottleGroup *own_group;   /* NULL in a named group */
    BlockReq *throttled_head, **throttled_tail;
};

static GList *nodes;
static GList *backends;
static GHashTable *drivers;
static BlockErrorEventFunc *error_event_hook;
static BlockConnEventFunc *conn_event_hook;

/*
 * A node's statistics are updated by the loops of every device using it
 * and read by the monitor: relaxed atomics, no lock.
 */
static inline void stat_add(uint64_t *p, int64_t v)
{
    __atomic_fetch_add(p, (uint64_t)v, __ATOMIC_RELAXED);
}

void blk_driver_register(const BlockDriver *drv)
{
    if (!drivers) {
        drivers = g_hash_table_new(g_str_hash, g_str_equal);
    }
    g_hash_table_insert(drivers, (gpointer)drv->name, (gpointer)drv);
}

void blk_set_error_event_hook(BlockErrorEventFunc *fn)
{
    error_event_hook = fn;
}

void blk_set_conn_event_hook(BlockConnEventFunc *fn)
{
    conn_event_hook = fn;
}

void blk_conn_event(BlockBackend *blk, bool connected, const char *why)
{
    if (conn_event_hook) {
        conn_event_hook(blk, connected, why);
    }
}

/* "file, nbd, null": the registered drivers, sorted (error messages). */
static char *blk_driver_names(void)
{
    g_autoptr(GList) names = g_list_sort(g_hash_table_get_keys(drivers),
                                         (GCompareFunc)strcmp);
    GString *s = g_string_new(NULL);

    for (GList *l = names; l; l = l->next) {
        g_string_append_printf(s, "%s%s", s->len ? ", " : "",
                               (const char *)l->data);
    }
    return g_string_free(s, false);
}

/* ---- nodes ---- */

typedef struct NodeOpts {
    char *node_name;
    char *driver;
    bool read_only;
    bool direct;
    char *throttle_group;
} NodeOpts;

static const PropDef node_common_props[] = {
    PROP_DEF_STR("node-name", NodeOpts, node_name, "name of the node",
                 .mandatory = true),
    PROP_DEF_STR("driver", NodeOpts, driver, "file, null, nbd or rbd",
                 .mandatory = true),
    PROP_DEF_BOOL("read-only", NodeOpts, read_only, "refuse writes",
                  .defval = "off"),
    PROP_DEF_BOOL("cache.direct", NodeOpts, direct,
                  "bypass the host page cache (O_DIRECT)", .defval = "off"),
    PROP_DEF_STR("throttle-group", NodeOpts, throttle_group,
                 "the devices on this node share the limits of this "
                 "throttle-group object"),
    PROP_DEF_END
};

static void print_driver(gpointer key, gpointer value, gpointer out)
{
    const BlockDriver *drv = value;

    fprintf(out, "driver=%s:\n", drv->name);
    if (drv->props) {
        props_print_help(drv->props, out);
    }
}

bool blk_print_help(const char *driver, FILE *out, GError **errp)
{
    const BlockDriver *drv = NULL;

    if (driver) {
        drv = drivers ? g_hash_table_lookup(drivers, driver) : NULL;
        if (!drv) {
            error_setg(errp, "unknown block driver '%s' (-blockdev help "
                       "lists them)", driver);
            return false;
        }
        print_driver(NULL, (gpointer)drv, out);
    } else if (drivers) {
        GList *names = g_list_sort(g_hash_table_get_keys(drivers),
                                   (GCompareFunc)strcmp);

        fprintf(out, "Block drivers (-blockdev driver=NAME,node-name=N,"
                "...):\n");
        for (GList *l = names; l; l = l->next) {
            print_driver(NULL, g_hash_table_lookup(drivers, l->data), out);
        }
        g_list_free(names);
    }
    fprintf(out, "Every driver also takes:\n");
    props_print_help(node_common_props, out);
    return true;
}

BlockNode *blk_node_find(const char *name)
{
    for (GList *l = nodes; l; l = l->next) {
        BlockNode *bs = l->data;

        if (strcmp(bs->node_name, name) == 0) {
            return bs;
        }
    }
    return NULL;
}

BlockNode *blk_node_create(Keyval *kv, GError **errp)
{
    /* What makes it again (a live upgrade's), before the kv is used. */
    g_autofree char *arg = keyval_to_str(kv);
    NodeOpts o = { 0 };
    const BlockDriver *drv;
    BlockNode *bs = NULL;

    if (!props_apply(node_common_props, &o, kv, errp)) {
        goto out;
    }
    drv = drivers ? g_hash_table_lookup(drivers, o.driver) : NULL;
    if (!drv) {
        g_autofree char *known = blk_driver_names();

        error_setg(errp, "property 'driver': unknown block driver '%s' "
                   "(known: %s)", o.driver, known);
        goto out;
    }
    if (!check_id("node-name", o.node_name, 31, errp)) {
        goto out;
    }
    if (blk_node_find(o.node_name)) {
        error_setg(errp, "duplicate node name '%s'", o.node_name);
        goto out;
    }
    if (o.throttle_group && !blk_throttle_group_find(o.throttle_group)) {
        error_setg(errp, "property 'throttle-group': no throttle-group "
                   "object '%s' (-object throttle-group,id=%s,...)",
                   o.throttle_group, o.throttle_group);
        goto out;
    }
    bs = g_new0(BlockNode, 1);
    bs->drv = drv;
    bs->node_name = g_strdup(o.node_name);
    bs->read_only = o.read_only;
    bs->direct = o.direct;
    bs->throttle_group = g_strdup(o.throttle_group);
    bs->align = 1;
    bs->opaque = g_malloc0(drv->opaque_size);
    if (drv->props && !props_apply(drv->props, bs->opaque, kv, errp)) {
        goto fail;
    }
    if (!keyval_check_unused(kv, errp)) {
        goto fail;
    }
    if (!drv->open(bs, errp)) {
        goto fail;
    }
    nodes = g_list_append(nodes, bs);
    iovd_config_created(bs, "blockdev", g_steal_pointer(&arg));
    goto out;

fail:
    if (drv->props) {
        props_free(drv->props, bs->opaque);
    }
    g_free(bs->opaque);
    g_free(bs->node_name);
    g_free(bs->throttle_group);
    g_free(bs);
    bs = NULL;
out:
    props_free(node_common_props, &o);
    return bs;
}

static void node_free(BlockNode *bs)
{
    iovd_config_deleted(bs);
    bs->drv->close(bs);
    if (bs->drv->props) {
        props_free(bs->drv->props, bs->opaque);
    }
    g_free(bs->opaque);
    g_free(bs->node_name);
    g_free(bs->filename);
    g_free(bs->throttle_group);
    g_free(bs);
}

bool blk_node_delete(BlockNode *bs, GError **errp)
{
    if (bs->backends) {
        BlockBackend *blk = bs->backends->data;

        error_setg(errp, "node '%s' is in use by device '%s'", bs->node_name,
                   blk->dev_id);
        return false;
    }
    nodes = g_list_remove(nodes, bs);
    node_free(bs);
    return true;
}

void blk_node_delete_all(void)
{
    while (nodes) {
        BlockNode *bs = nodes->data;

        nodes = g_list_remove(nodes, bs);
        node_free(bs);
    }
}

void blk_node_foreach(void (*fn)(BlockNode *bs, void *opaque), void *opaque)
{
    g_autoptr(GList) copy = g_list_copy(nodes);

    for (GList *l = copy; l; l = l->next) {
        fn(l->data, opaque);
    }
}

const char *blk_node_name(BlockNode *bs) { return bs->node_name; }
const char *blk_node_driver(BlockNode *bs) { return bs->drv->name; }
const char *blk_node_filename(BlockNode *bs) { return bs->filename; }
uint64_t blk_node_size(BlockNode *bs) { return bs->size; }
bool blk_node_read_only(BlockNode *bs) { return bs->read_only; }
bool blk_node_direct(BlockNode *bs) { return bs->direct; }

bool blk_host_coherent(BlockBackend *blk)
{
    return blk->bs->host_coherent;
}
void blk_node_stats(BlockNode *bs, BlockStats *st)
{
    const uint64_t *src = (const uint64_t *)&bs->stats;
    uint64_t *dst = (uint64_t *)st;

    G_STATIC_ASSERT(sizeof(BlockStats) % sizeof(uint64_t) == 0);
    for (size_t i = 0; i < sizeof(BlockStats) / sizeof(uint64_t); i++) {
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
    }
}
unsigned blk_node_users(BlockNode *bs) { return g_list_length(bs->backends); }

bool blk_histogram_check(const uint64_t *boundaries, unsigned n,
                         GError **errp)
{
    if (n > BLK_HIST_MAX_BOUNDARIES) {
        error_setg(errp, "at most %d boundaries", BLK_HIST_MAX_BOUNDARIES);
        return false;
    }
    for (unsigned i = 1; i < n; i++) {
        if (boundaries[i] <= boundaries[i - 1]) {
            error_setg(errp, "boundaries must increase strictly");
            return false;
        }
    }
    return true;
}

bool blk_node_set_histogram(BlockNode *bs, BlockHistKind kind,
                            const uint64_t *boundaries, unsigned n,
                            GError **errp)
{
    BlockHistogram *h = &bs->hist[kind];

    if (!blk_histogram_check(boundaries, n, errp)) {
        return false;
    }
    /* Off while it changes: completions then skip it. */
    __atomic_store_n(&h->n, 0, __ATOMIC_RELEASE);
    for (unsigned i = 0; i <= BLK_HIST_MAX_BOUNDARIES; i++) {
        __atomic_store_n(&h->bins[i], 0, __ATOMIC_RELAXED);
    }
    if (n) {
        memcpy(h->boundaries, boundaries, n * sizeof(*boundaries));
    }
    __atomic_store_n(&h->n, n, __ATOMIC_RELEASE);
    return true;
}

void blk_node_histogram(BlockNode *bs, BlockHistKind kind,
                        BlockHistogram *out)
{
    const BlockHistogram *h = &bs->hist[kind];

    out->n = __atomic_load_n(&h->n, __ATOMIC_ACQUIRE);
    memcpy(out->boundaries, h->boundaries, out->n * sizeof(uint64_t));
    for (unsigned i = 0; i <= out->n; i++) {
        out->bins[i] = __atomic_load_n(&h->bins[i], __ATOMIC_RELAXED);
    }
}

/* Count one completion of @lat_ns in the histogram of @op, if kept. */
static void blk_hist_account(BlockNode *bs, BlockOp op, uint64_t lat_ns)
{
    static const int8_t kind_of[BLK_OP__MAX] = {
        [BLK_OP_READ] = BLK_HIST_READ, [BLK_OP_WRITE] = BLK_HIST_WRITE,
        [BLK_OP_WRITE_ZEROES] = BLK_HIST_WRITE,
        [BLK_OP_FLUSH] = BLK_HIST_FLUSH, [BLK_OP_DISCARD] = -1,
    };
    BlockHistogram *h;
    unsigned lo = 0, hi;

    if (kind_of[op] < 0) {
        return;
    }
    h = &bs->hist[kind_of[op]];
    hi = __atomic_load_n(&h->n, __ATOMIC_ACQUIRE);
    if (likely(hi == 0)) {
        return;
    }
    /* the number of boundaries <= lat_ns is the bin */
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;

        if (h->boundaries[mid] <= lat_ns) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    stat_add(&h->bins[lo], 1);
}

typedef struct ResizeCall {
    BlockNode *bs;
    BlockBackend *blk;
} ResizeCall;

/* On the backend's loop: the driver's part, then the device's. */
static void blk_resized_on_loop(void *opaque)
{
    ResizeCall *rc = opaque;
    BlockBackend *blk = rc->blk;

    if (rc->bs->drv->resized) {
        rc->bs->drv->resized(rc->bs, blk);
    }
    if (blk->dev_ops && blk->dev_ops->resize) {
        blk->dev_ops->resize(blk->dev_opaque);
    }
}

bool blk_node_resize(BlockNode *bs, uint64_t size, GError **errp)
{
    if (bs->read_only) {
        error_setg(errp, "node '%s' is read-only", bs->node_name);
        return false;
    }
    if (size % 512) {
        error_setg(errp, "size %" PRIu64 " is not a multiple of 512", size);
        return false;
    }
    if (!bs->drv->truncate) {
        error_setg(errp, "driver '%s' cannot resize", bs->drv->name);
        return false;
    }
    if (!bs->drv->truncate(bs, size, errp)) {
        return false;
    }
    bs->size = size;
    trace_blk_resize(bs->node_name, size);
    for (GList *l = bs->backends; l; l = l->next) {
        ResizeCall rc = { bs, l->data };

        loop_run_sync(rc.blk->loop, blk_resized_on_loop, &rc);
    }
    return true;
}

int blk_node_flush_sync(BlockNode *bs)
{
    return bs->drv->flush_sync ? bs->drv->flush_sync(bs) : 0;
}

void blk_flush_all_sync(void)
{
    for (GList *l = nodes; l; l = l->next) {
        blk_node_flush_sync(l->data);
    }
}

/* ---- backends ---- */

static void throttle_restart(void *opaque);

BlockBackend *blk_attach(const char *name, const char *dev_id,
                         bool share_rw, EventLoop *loop, GError **errp)
{
    BlockNode *bs = blk_node_find(name);
    BlockBackend *blk;

    if (!bs) {
        error_setg(errp, "no block node named '%s'", name);
        return NULL;
    }
    if (bs->backends) {
        BlockBackend *other = bs->backends->data;

        if (!share_rw || !other->share_rw) {
            error_setg(errp, "node '%s' is already used by device '%s' "
                       "(share-rw=on on both to share it)", name,
                       other->dev_id);
            return NULL;
        }
    }
    blk = g_new0(BlockBackend, 1);
    blk->loop = loop;
    blk->bs = bs;
    blk->dev_id = g_strdup(dev_id);
    blk->share_rw = share_rw;
    blk->stopped_tail = &blk->stopped_head;
    blk->throttled_tail = &blk->throttled_head;
    if (bs->drv->attach && !bs->drv->attach(bs, blk, errp)) {
        g_free(blk->dev_id);
        g_free(blk);
        return NULL;
    }
    if (bs->throttle_group) {
        /* Checked when the node was made; a group in use is not deleted. */
        ThrottleGroup *g = blk_throttle_group_find(bs->throttle_group);

        blk->tm = throttle_member_new(g, loop, dev_id, throttle_restart,
                                      blk);
    }
    bs->backends = g_list_append(bs->backends, blk);
    backends = g_list_append(backends, blk);
    return blk;
}

void blk_detach(BlockBackend *blk)
{
    if (!blk) {
        return;
    }
    /* The device waited for what was in flight (its reset). */
    blk_cancel_queued(blk, true);
    g_assert(blk->inflight == 0);
    if (blk->bs->drv->detach) {
        blk->bs->drv->detach(blk->bs, blk);
    }
    blk->bs->backends = g_list_remove(blk->bs->backends, blk);
    backends = g_list_remove(backends, blk);
    throttle_member_free(blk->tm);
    throttle_group_free(blk->own_group);
    g_free(blk->dev_id);
    g_free(blk);
}

void blk_set_dev_ops(BlockBackend *blk, const BlockDevOps *ops, void *opaque)
{
    blk->dev_ops = ops;
    blk->dev_opaque = opaque;
}

void blk_set_error_policy(BlockBackend *blk, BlockErrorPolicy rerror,
                          BlockErrorPolicy werror)
{
    blk->rerror = rerror;
    blk->werror = werror;
}

BlockNode *blk_node(BlockBackend *blk) { return blk->bs; }
uint64_t blk_getlength(BlockBackend *blk) { return blk->bs->size; }
bool blk_is_read_only(BlockBackend *blk) { return blk->bs->read_only; }
uint32_t blk_request_alignment(BlockBackend *blk) { return blk->bs->align; }
unsigned blk_inflight(BlockBackend *blk) { return blk->inflight; }
EventLoop *blk_loop(BlockBackend *blk) { return blk->loop; }
void *blk_drv_state(BlockBackend *blk) { return blk->drv_state; }
void blk_set_drv_state(BlockBackend *blk, void *state)
{
    blk->drv_state = state;
}
const char *blk_device_id(BlockBackend *blk) { return blk->dev_id; }

BlockBackend *blk_find_by_device(const char *dev_id)
{
    for (GList *l = backends; l; l = l->next) {
        BlockBackend *blk = l->data;

        if (strcmp(blk->dev_id, dev_id) == 0) {
            return blk;
        }
    }
    return NULL;
}

void blk_backend_foreach(void (*fn)(BlockBackend *blk, void *opaque),
                         void *opaque)
{
    g_autoptr(GList) copy = g_list_copy(backends);

    for (GList *l = copy; l; l = l->next) {
        fn(l->data, opaque);
    }
}

/* ---- throttling: the backend's throttle group ---- */

/* The buckets @req is charged to (@mask) and what it costs each. */
static unsigned throttle_cost(BlockReq *req, uint64_t *cost)
{
    bool rd = req->op == BLK_OP_READ;
    uint64_t bytes = req->op == BLK_OP_WRITE_ZEROES ? 0 : req->bytes;

    if (!rd && req->op != BLK_OP_WRITE && req->op != BLK_OP_WRITE_ZEROES) {
        return 0;               /* flush, discard: not limited */
    }
    cost[TB_BPS] = cost[TB_BPS_RD] = cost[TB_BPS_WR] = bytes;
    cost[TB_IOPS] = cost[TB_IOPS_RD] = cost[TB_IOPS_WR] = 1;
    return (1u << TB_BPS) | (1u << TB_IOPS) |
           (rd ? (1u << TB_BPS_RD) | (1u << TB_IOPS_RD)
               : (1u << TB_BPS_WR) | (1u << TB_IOPS_WR));
}

static void throttle_to_rates(const BlockThrottle *t, uint64_t *rates)
{
    rates[TB_BPS] = t->bps;
    rates[TB_BPS_RD] = t->bps_rd;
    rates[TB_BPS_WR] = t->bps_wr;
    rates[TB_IOPS] = t->iops;
    rates[TB_IOPS_RD] = t->iops_rd;
    rates[TB_IOPS_WR] = t->iops_wr;
}

static void throttle_from_rates(const uint64_t *rates, BlockThrottle *t)
{
    t->bps = rates[TB_BPS];
    t->bps_rd = rates[TB_BPS_RD];
    t->bps_wr = rates[TB_BPS_WR];
    t->iops = rates[TB_IOPS];
    t->iops_rd = rates[TB_IOPS_RD];
    t->iops_wr = rates[TB_IOPS_WR];
}

bool blk_throttle_check(const BlockThrottle *t, GError **errp)
{
    if ((t->bps && (t->bps_rd || t->bps_wr)) ||
        (t->iops && (t->iops_rd || t->iops_wr))) {
        error_setg(errp, "bps/iops cannot be combined with the per-direction "
                   "limits of the same kind");
        return false;
    }
    return true;
}

void blk_throttle_group_config(ThrottleGroup *g, const BlockThrottle *t)
{
    uint64_t rates[TB_N];

    throttle_to_rates(t, rates);
    throttle_group_config(g, rates, TB_N);
}

void blk_throttle_group_limits(ThrottleGroup *g, BlockThrottle *t)
{
    uint64_t rates[TB_N];

    throttle_group_rates(g, rates, TB_N);
    throttle_from_rates(rates, t);
}

static void throttle_restart(void *opaque);

/* On the backend's loop: the group's timer and queue live there. */
static void blk_set_throttle_on_loop(void *opaque)
{
    BlockBackend *blk = opaque;

    if (!blk->tm) {
        blk->own_group = throttle_group_new(blk->dev_id);
        blk->tm = throttle_member_new(blk->own_group, blk->loop, blk->dev_id,
                                      throttle_restart, blk);
    }
}

bool blk_set_throttle(BlockBackend *blk, const BlockThrottle *t,
                      GError **errp)
{
    if (!blk_throttle_check(t, errp)) {
        return false;
    }
    if (blk->tm && !blk->own_group) {
        error_setg(errp, "device '%s' is in throttle group '%s': set the "
                   "group's limits (qom-set)", blk->dev_id,
                   throttle_group_id(throttle_member_group(blk->tm)));
        return false;
    }
    loop_run_sync(blk->loop, blk_set_throttle_on_loop, blk);
    blk_throttle_group_config(blk->own_group, t);
    return true;
}

void blk_get_throttle(BlockBackend *blk, BlockThrottle *t)
{
    memset(t, 0, sizeof(*t));
    if (blk->tm) {
        blk_throttle_group_limits(throttle_member_group(blk->tm), t);
    }
}

const char *blk_throttle_group_name(BlockBackend *blk)
{
    return blk->tm && !blk->own_group ?
           throttle_group_id(throttle_member_group(blk->tm)) : NULL;
}

/* ---- submission and completion ---- */

/* Hand @req to the driver; on failure nothing is counted in flight. */
static int blk_dispatch(BlockBackend *blk, BlockReq *req)
{
    BlockNode *bs = blk->bs;
    int r;

    req->start_ns = clock_ns();
    stat_add(&bs->stats.inflight, 1);
    blk->inflight++;
    r = bs->drv->submit(bs, req);
    if (r < 0) {
        stat_add(&bs->stats.inflight, -1);
        blk->inflight--;
    }
    return r;
}

/* Fail a request that was accepted earlier (held or throttled). */
static void blk_req_fail(BlockReq *req, int ret)
{
    stat_add(&req->blk->bs->stats.failed[req->op], 1);
    req->cb(req->opaque, ret);
}

/*
 * The member's turn (its timer, or another member passed the token):
 * send what the group lets go, one request per turn.
 */
static void throttle_restart(void *opaque)
{
    BlockBackend *blk = opaque;

    while (blk->throttled_head) {
        BlockReq *req = blk->throttled_head;
        uint64_t cost[TB_N];
        unsigned mask = throttle_cost(req, cost);
        int64_t waited;
        int r;

        if (!throttle_member_turn(blk->tm, mask, cost)) {
            return;
        }
        blk->throttled_head = req->next;
        if (!blk->throttled_head) {
            blk->throttled_tail = &blk->throttled_head;
        }
        blk->inflight--;        /* counted while queued; dispatch recounts */
        waited = clock_ns() - req->start_ns;
        r = blk_dispatch(blk, req);
        if (r < 0) {
            blk_req_fail(req, r);
        }
        if (!throttle_member_passed(blk->tm, waited,
                                    blk->throttled_head != NULL)) {
            return;
        }
    }
}

/* Does the group hold @req back?  Then it waits in the backend's queue. */
static bool throttle_hold(BlockBackend *blk, BlockReq *req)
{
    uint64_t cost[TB_N];
    unsigned mask;

    if (!blk->throttled_head) {
        mask = throttle_cost(req, cost);
        if (throttle_member_may_go(blk->tm, mask, cost)) {
            return false;
        }
    }
    /* Queued behind the group (or earlier requests); counts in flight. */
    req->start_ns = clock_ns();
    *blk->throttled_tail = req;
    blk->throttled_tail = &req->next;
    blk->inflight++;
    return true;
}

static int blk_submit(BlockBackend *blk, BlockReq *req)
{
    req->blk = blk;
    req->ret = 0;
    req->next = NULL;
    req->bounce = NULL;
    if (req->op == BLK_OP_WRITE || req->op == BLK_OP_DISCARD ||
        req->op == BLK_OP_WRITE_ZEROES) {
        if (blk->bs->read_only) {
            return -EROFS;
        }
    }
    if (req->op != BLK_OP_FLUSH &&
        (req->offset > blk->bs->size ||
         req->bytes > blk->bs->size - req->offset)) {
        return -ERANGE;
    }
    if (blk->tm && throttle_hold(blk, req)) {
        return 0;
    }
    return blk_dispatch(blk, req);
}

int blk_preadv(BlockBackend *blk, BlockReq *req, uint64_t offset,
               struct iovec *iov, unsigned niov, BlockCompletionFunc *cb,
               void *opaque)
{
    req->op = BLK_OP_READ;
    req->flags = 0;
    req->offset = offset;
    req->iov = iov;
    req->niov = niov;
    req->bytes = iov_size(iov, niov);
    req->cb = cb;
    req->opaque = opaque;
    return blk_submit(blk, req);
}

int blk_pwritev(BlockBackend *blk, BlockReq *req, uint64_t offset,
                struct iovec *iov, unsigned niov, uint32_t flags,
                BlockCompletionFunc *cb, void *opaque)
{
    req->op = BLK_OP_WRITE;
    req->flags = flags & BLK_REQ_FUA;
    req->offset = offset;
    req->iov = iov;
    req->niov = niov;
    req->bytes = iov_size(iov, niov);
    req->cb = cb;
    req->opaque = opaque;
    return blk_submit(blk, req);
}

int blk_flush(BlockBackend *blk, BlockReq *req, BlockCompletionFunc *cb,
              void *opaque)
{
    req->op = BLK_OP_FLUSH;
    req->flags = 0;
    req->offset = 0;
    req->bytes = 0;
    req->iov = NULL;
    req->niov = 0;
    req->cb = cb;
    req->opaque = opaque;
    return blk_submit(blk, req);
}

int blk_pdiscard(BlockBackend *blk, BlockReq *req, uint64_t offset,
                 uint64_t bytes, BlockCompletionFunc *cb, void *opaque)
{
    req->op = BLK_OP_DISCARD;
    req->flags = 0;
    req->offset = offset;
    req->bytes = bytes;
    req->iov = NULL;
    req->niov = 0;
    req->cb = cb;
    req->opaque = opaque;
    return blk_submit(blk, req);
}

int blk_pwrite_zeroes(BlockBackend *blk, BlockReq *req, uint64_t offset,
                      uint64_t bytes, uint32_t flags,
                      BlockCompletionFunc *cb, void *opaque)
{
    req->op = BLK_OP_WRITE_ZEROES;
    req->flags = flags & (BLK_REQ_MAY_UNMAP | BLK_REQ_FUA);
    req->offset = offset;
    req->bytes = bytes;
    req->iov = NULL;
    req->niov = 0;
    req->cb = cb;
    req->opaque = opaque;
    return blk_submit(blk, req);
}


/* Tell the device when the last request it had in flight is done. */
static void blk_check_drained(BlockBackend *blk)
{
    if (blk->inflight == 0 && blk->dev_ops && blk->dev_ops->drained) {
        blk->dev_ops->drained(blk->dev_opaque);
    }
}

static BlockErrorPolicy error_action(BlockBackend *blk, BlockReq *req,
                                     int ret)
{
    BlockErrorPolicy p = req->op == BLK_OP_READ ? blk->rerror : blk->werror;

    if (p == BLK_ERR_ENOSPC) {
        p = ret == -ENOSPC ? BLK_ERR_STOP : BLK_ERR_REPORT;
    }
    return p;
}

void blk_req_complete(BlockReq *req, int ret)
{
    BlockBackend *blk = req->blk;
    BlockNode *bs = blk->bs;
    int64_t now = clock_ns();

    stat_add(&bs->stats.inflight, -1);
    blk->inflight--;
    __atomic_store_n(&bs->stats.last_ns, now, __ATOMIC_RELAXED);
    if (ret < 0) {
        BlockErrorPolicy act = error_action(blk, req, ret);
        static const char *const act_names[] = {
            [BLK_ERR_REPORT] = "report", [BLK_ERR_IGNORE] = "ignore",
            [BLK_ERR_STOP] = "stop",
        };

        stat_add(&bs->stats.failed[req->op], 1);
        trace_blk_err_io(bs->node_name, blk->dev_id, req->op, req->offset,
                         req->bytes, ret);
        if (error_event_hook) {
            error_event_hook(blk, req->op, -ret, act_names[act]);
        }
        if (act == BLK_ERR_STOP) {
            /* Hold it; the device stops until the monitor's cont. */
            req->next = NULL;
            *blk->stopped_tail = req;
            blk->stopped_tail = &req->next;
            blk->inflight++;
            if (!blk->stopped) {
                blk->stopped = true;
                trace_blk_stop(blk->dev_id, -ret);
                if (blk->dev_ops && blk->dev_ops->stop) {
                    blk->dev_ops->stop(blk->dev_opaque);
                }
            }
            return;
        }
        if (act == BLK_ERR_IGNORE) {
            ret = 0;
        }
    } else {
        stat_add(&bs->stats.ops[req->op], 1);
        stat_add(&bs->stats.bytes[req->op], req->bytes);
        stat_add(&bs->stats.total_ns[req->op], now - req->start_ns);
        blk_hist_account(bs, req->op, now - req->start_ns);
    }
    req->cb(req->opaque, ret);
    blk_check_drained(blk);
}

/* On the backend's loop: retry what the stop policy held. */
static void blk_resume_on_loop(void *opaque)
{
    BlockBackend *blk = opaque;
    BlockReq *req = blk->stopped_head;
    bool was_stopped = blk->stopped;

    blk->stopped_head = NULL;
    blk->stopped_tail = &blk->stopped_head;
    blk->stopped = false;
    if (was_stopped && blk->dev_ops && blk->dev_ops->resume) {
        blk->dev_ops->resume(blk->dev_opaque);
    }
    while (req) {
        BlockReq *next = req->next;
        int r;

        blk->inflight--;
        r = blk_submit(blk, req);
        if (r < 0) {
            blk_req_fail(req, r);
        }
        req = next;
    }
}

void blk_resume_all(void)
{
    for (GList *l = backends; l; l = l->next) {
        BlockBackend *blk = l->data;

        loop_run_sync(blk->loop, blk_resume_on_loop, blk);
    }
}

void blk_cancel_queued(BlockBackend *blk, bool throttled)
{
    /* Held requests fail now: nothing may wait for a cont that never comes. */
    while (blk->stopped_head) {
        BlockReq *req = blk->stopped_head;

        blk->stopped_head = req->next;
        blk->inflight--;
        blk_req_fail(req, -EIO);
    }
    blk->stopped_tail = &blk->stopped_head;
    blk->stopped = false;
    while (throttled && blk->throttled_head) {
        BlockReq *req = blk->throttled_head;

        blk->throttled_head = req->next;
        blk->inflight--;
        blk_req_fail(req, -ECANCELED);
    }
    if (!blk->throttled_head) {
        blk->throttled_tail = &blk->throttled_head;
        if (blk->tm) {
            throttle_member_cancelled(blk->tm);
        }
    }
    blk_check_drained(blk);
}
