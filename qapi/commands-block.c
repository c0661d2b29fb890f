/*
 * Block commands: nodes (blockdev-add / -del, block_resize), backends
 * (query-block, block_set_io_throttle) and statistics.
 */
#include "qapi/qapi-commands.h"
#include "qapi/qmp.h"
#include "block/block.h"
#include "util/error.h"
#include "util/cmdline.h"
#include "util/keyval.h"
#include "util/throttle.h"

static const char *json_str_arg(json_object *args, const char *key)
{
    json_object *v;

    return json_object_object_get_ex(args, key, &v) ?
           json_object_get_string(v) : NULL;
}

static void add_int(json_object *o, const char *key, uint64_t v)
{
    json_object_object_add(o, key, json_object_new_uint64(v));
}

bool qmp_blockdev_add(json_object *args, json_object **ret, GError **errp)
{
    g_autoptr(Keyval) kv = keyval_new();
    const char *driver;

    if (!qmp_config_may_change("blockdev-add", errp) ||
        !qapi_json_to_keyval(args, kv, NULL, errp)) {
        return false;
    }
    /* QEMU's name for the null driver. */
    driver = keyval_get(kv, "driver");
    if (driver && strcmp(driver, "null-co") == 0) {
        keyval_set(kv, "driver", "null");
    }
    /* The node announces itself to a live upgrade (blk_node_create). */
    return blk_node_create(kv, errp) != NULL;
}

static BlockNode *find_node(const char *name, GError **errp)
{
    BlockNode *bs = blk_node_find(name);

    if (!bs) {
        error_setg(errp, "Cannot find node '%s'", name);
    }
    return bs;
}

bool qmp_blockdev_del(json_object *args, json_object **ret, GError **errp)
{
    const char *name = json_str_arg(args, "node-name");
    BlockNode *bs;

    if (!qmp_config_may_change("blockdev-del", errp)) {
        return false;
    }
    bs = find_node(name, errp);
    return bs && blk_node_delete(bs, errp);
}

/* ---- query-block ---- */

static json_object *block_device_info(BlockNode *bs, BlockBackend *blk)
{
    json_object *o = json_object_new_object();
    json_object *image = json_object_new_object();
    const char *file = blk_node_filename(bs);
    BlockThrottle t = { 0 };

    if (blk) {
        blk_get_throttle(blk, &t);
    }
    json_object_object_add(o, "file", json_object_new_string(file ? file
                                                                  : ""));
    json_object_object_add(o, "node-name",
                           json_object_new_string(blk_node_name(bs)));
    json_object_object_add(o, "ro",
                           json_object_new_boolean(blk_node_read_only(bs)));
    json_object_object_add(o, "drv",
                           json_object_new_string(blk_node_driver(bs)));
    json_object_object_add(o, "encrypted", json_object_new_boolean(false));
    json_object_object_add(o, "detect_zeroes",
                           json_object_new_string("off"));
    add_int(o, "bps", t.bps);
    add_int(o, "bps_rd", t.bps_rd);
    add_int(o, "bps_wr", t.bps_wr);
    add_int(o, "iops", t.iops);
    add_int(o, "iops_rd", t.iops_rd);
    add_int(o, "iops_wr", t.iops_wr);
    if (blk && blk_throttle_group_name(blk)) {
        json_object_object_add(o, "group", json_object_new_string(
                                   blk_throttle_group_name(blk)));
    }
    json_object_object_add(image, "filename",
                           json_object_new_string(file ? file : ""));
    json_object_object_add(image, "format",
                           json_object_new_string(blk_node_driver(bs)));
    add_int(image, "virtual-size", blk_node_size(bs));
    json_object_object_add(o, "image", image);
    return o;
}

static json_object *block_info(const char *dev_id, BlockNode *bs,
                               BlockBackend *blk)
{
    json_object *o = json_object_new_object();

    json_object_object_add(o, "device",
                           json_object_new_string(dev_id ? dev_id : ""));
    if (dev_id) {
        json_object_object_add(o, "qdev", json_object_new_string(dev_id));
    }
    json_object_object_add(o, "removable", json_object_new_boolean(false));
    json_object_object_add(o, "locked", json_object_new_boolean(false));
    json_object_object_add(o, "inserted", block_device_info(bs, blk));
    return o;
}

static void backend_info(BlockBackend *blk, void *opaque)
{
    json_object_array_add(opaque, block_info(blk_device_id(blk),
                                             blk_node(blk), blk));
}

static void unused_node_info(BlockNode *bs, void *opaque)
{
    if (blk_node_users(bs) == 0) {
        json_object_array_add(opaque, block_info(NULL, bs, NULL));
    }
}

bool qmp_query_block(json_object *args, json_object **ret, GError **errp)
{
    json_object *list = json_object_new_array();

    blk_backend_foreach(backend_info, list);
    blk_node_foreach(unused_node_info, list);
    *ret = list;
    return true;
}

/* ---- query-named-block-nodes ---- */

typedef struct NodeUser {
    BlockNode *bs;
    BlockBackend *blk;
} NodeUser;

static void first_backend_of(BlockBackend *blk, void *opaque)
{
    NodeUser *u = opaque;

    if (!u->blk && blk_node(blk) == u->bs) {
        u->blk = blk;
    }
}

static void named_node_info(BlockNode *bs, void *opaque)
{
    NodeUser u = { .bs = bs };

    /* a node's throttling lives in its backend: the first one's */
    blk_backend_foreach(first_backend_of, &u);
    json_object_array_add(opaque, block_device_info(bs, u.blk));
}

bool qmp_query_named_block_nodes(json_object *args, json_object **ret,
                                 GError **errp)
{
    json_object *list = json_object_new_array();

    blk_node_foreach(named_node_info, list);
    *ret = list;
    return true;
}

/* ---- query-blockstats ---- */

typedef struct FirstUser {
    BlockNode *bs;
    const char *dev_id;
} FirstUser;

static void find_first_user(BlockBackend *blk, void *opaque)
{
    FirstUser *fu = opaque;

    if (!fu->dev_id && blk_node(blk) == fu->bs) {
        fu->dev_id = blk_device_id(blk);
    }
}

static void add_histograms(json_object *s, BlockNode *bs)
{
    static const char *const names[BLK_HIST__MAX] = {
        [BLK_HIST_READ] = "rd_latency_histogram",
        [BLK_HIST_WRITE] = "wr_latency_histogram",
        [BLK_HIST_FLUSH] = "flush_latency_histogram",
    };

    for (unsigned k = 0; k < BLK_HIST__MAX; k++) {
        BlockHistogram h;
        json_object *o, *b, *bins;

        blk_node_histogram(bs, k, &h);
        if (!h.n) {
            continue;
        }
        o = json_object_new_object();
        b = json_object_new_array();
        bins = json_object_new_array();
        for (unsigned i = 0; i <= h.n; i++) {
            if (i < h.n) {
                json_object_array_add(b, json_object_new_int64(
                                          h.boundaries[i]));
            }
            json_object_array_add(bins, json_object_new_int64(h.bins[i]));
        }
        json_object_object_add(o, "boundaries", b);
        json_object_object_add(o, "bins", bins);
        json_object_object_add(s, names[k], o);
    }
}

static void node_stats(BlockNode *bs, void *opaque)
{
    BlockStats stats, *st = (blk_node_stats(bs, &stats), &stats);
    json_object *o = json_object_new_object();
    json_object *s = json_object_new_object();
    FirstUser fu = { .bs = bs };
    /* Write-zeroes counts as a write, discard as an unmap. */
    uint64_t wr_ops = st->ops[BLK_OP_WRITE] + st->ops[BLK_OP_WRITE_ZEROES];
    uint64_t wr_bytes = st->bytes[BLK_OP_WRITE] +
                        st->bytes[BLK_OP_WRITE_ZEROES];
    uint64_t wr_ns = st->total_ns[BLK_OP_WRITE] +
                     st->total_ns[BLK_OP_WRITE_ZEROES];
    uint64_t wr_failed = st->failed[BLK_OP_WRITE] +
                         st->failed[BLK_OP_WRITE_ZEROES];

    blk_backend_foreach(find_first_user, &fu);
    if (fu.dev_id) {
        json_object_object_add(o, "device",
                               json_object_new_string(fu.dev_id));
        json_object_object_add(o, "qdev", json_object_new_string(fu.dev_id));
    }
    json_object_object_add(o, "node-name",
                           json_object_new_string(blk_node_name(bs)));
    add_int(s, "rd_bytes", st->bytes[BLK_OP_READ]);
    add_int(s, "wr_bytes", wr_bytes);
    add_int(s, "unmap_bytes", st->bytes[BLK_OP_DISCARD]);
    add_int(s, "rd_operations", st->ops[BLK_OP_READ]);
    add_int(s, "wr_operations", wr_ops);
    add_int(s, "flush_operations", st->ops[BLK_OP_FLUSH]);
    add_int(s, "unmap_operations", st->ops[BLK_OP_DISCARD]);
    add_int(s, "rd_total_time_ns", st->total_ns[BLK_OP_READ]);
    add_int(s, "wr_total_time_ns", wr_ns);
    add_int(s, "flush_total_time_ns", st->total_ns[BLK_OP_FLUSH]);
    add_int(s, "unmap_total_time_ns", st->total_ns[BLK_OP_DISCARD]);
    add_int(s, "failed_rd_operations", st->failed[BLK_OP_READ]);
    add_int(s, "failed_wr_operations", wr_failed);
    add_int(s, "failed_flush_operations", st->failed[BLK_OP_FLUSH]);
    add_int(s, "failed_unmap_operations", st->failed[BLK_OP_DISCARD]);
    if (st->last_ns) {
        int64_t idle = clock_ns() - st->last_ns;

        add_int(s, "idle_time_ns", idle > 0 ? idle : 0);
    }
    add_int(s, "inflight", st->inflight);
    add_histograms(s, bs);
    json_object_object_add(o, "stats", s);
    json_object_array_add(opaque, o);
}

bool qmp_query_blockstats(json_object *args, json_object **ret,
                          GError **errp)
{
    json_object *list = json_object_new_array();

    blk_node_foreach(node_stats, list);
    *ret = list;
    return true;
}

/* ---- block_resize, block_set_io_throttle ---- */

static BlockBackend *find_backend(const char *dev_id, GError **errp)
{
    BlockBackend *blk = blk_find_by_device(dev_id);

    if (!blk) {
        error_setg_class(errp, IOVD_ERROR_DEVICE_NOT_FOUND,
                         "Device '%s' has no block backend (or does not "
                         "exist)", dev_id);
    }
    return blk;
}

/* A node's options with size=, as it is now. */
static void set_size_key(Keyval *kv, void *opaque)
{
    g_autofree char *v = g_strdup_printf("%" PRId64, *(int64_t *)opaque);

    if (keyval_get(kv, "size")) {
        keyval_set(kv, "size", v);
    }
}

bool qmp_block_resize(json_object *args, json_object **ret, GError **errp)
{
    const char *dev_id = json_str_arg(args, "device");
    const char *node = json_str_arg(args, "node-name");
    json_object *size;
    BlockNode *bs;
    int64_t sz;

    if (!!dev_id == !!node) {
        error_setg(errp, "Need exactly one of 'device' and 'node-name'");
        return false;
    }
    json_object_object_get_ex(args, "size", &size);
    sz = json_object_get_int64(size);
    if (sz < 0) {
        error_setg(errp, "Parameter 'size' expects a non-negative value");
        return false;
    }
    if (!qmp_config_may_change("block_resize", errp)) {
        return false;
    }
    if (dev_id) {
        BlockBackend *blk = find_backend(dev_id, errp);

        if (!blk) {
            return false;
        }
        bs = blk_node(blk);
    } else {
        bs = find_node(node, errp);
        if (!bs) {
            return false;
        }
    }
    if (!blk_node_resize(bs, sz, errp)) {
        return false;
    }
    /*
     * A live upgrade's new process finds the file, export or image at its
     * new size; a node whose options give its size (null) gets it there.
     */
    iovd_config_update(bs, set_size_key, &sz);
    return true;
}

bool qmp_block_set_io_throttle(json_object *args, json_object **ret,
                               GError **errp)
{
    const char *dev_id = json_str_arg(args, "id");
    const char *device = json_str_arg(args, "device");
    static const char *const keys[] = {
        "bps", "bps_rd", "bps_wr", "iops", "iops_rd", "iops_wr",
    };
    uint64_t *fields[6];
    BlockThrottle t = { 0 };
    BlockBackend *blk;

    fields[0] = &t.bps;
    fields[1] = &t.bps_rd;
    fields[2] = &t.bps_wr;
    fields[3] = &t.iops;
    fields[4] = &t.iops_rd;
    fields[5] = &t.iops_wr;
    if (!dev_id && !device) {
        error_setg(errp, "Need 'id' (the device) or 'device'");
        return false;
    }
    if (dev_id && device && strcmp(dev_id, device) != 0) {
        error_setg(errp, "'id' and 'device' name different devices");
        return false;
    }
    for (unsigned i = 0; i < ARRAY_SIZE(keys); i++) {
        json_object *v;
        int64_t n;

        json_object_object_get_ex(args, keys[i], &v);
        n = json_object_get_int64(v);
        if (n < 0) {
            error_setg(errp, "Parameter '%s' expects a non-negative value",
                       keys[i]);
            return false;
        }
        *fields[i] = n;
    }
    if (!qmp_config_may_change("block_set_io_throttle", errp)) {
        return false;
    }
    blk = find_backend(dev_id ? dev_id : device, errp);
    if (!blk || !blk_set_throttle(blk, &t, errp)) {
        return false;
    }
    qmp_config_changed("block_set_io_throttle", dev_id ? dev_id : device);
    return true;
}

/* ---- block-latency-histogram-set ---- */

/* @args' list @key as boundaries in @b; false (*present) when absent. */
static bool hist_arg(json_object *args, const char *key, uint64_t *b,
                     unsigned *n, bool *present, GError **errp)
{
    json_object *list;

    *present = json_object_object_get_ex(args, key, &list);
    if (!*present) {
        return true;
    }
    *n = json_object_array_length(list);
    if (*n > BLK_HIST_MAX_BOUNDARIES) {
        /* before anything is copied into @b */
        error_setg(errp, "'%s': at most %d boundaries", key,
                   BLK_HIST_MAX_BOUNDARIES);
        return false;
    }
    for (unsigned i = 0; i < *n; i++) {
        int64_t v = json_object_get_int64(json_object_array_get_idx(list, i));

        if (v < 0) {
            error_setg(errp, "'%s': boundaries are latencies in ns (>= 0)",
                       key);
            return false;
        }
        b[i] = v;
    }
    return true;
}

bool qmp_block_latency_histogram_set(json_object *args, json_object **ret,
                                     GError **errp)
{
    static const char *const keys[BLK_HIST__MAX] = {
        [BLK_HIST_READ] = "boundaries-read",
        [BLK_HIST_WRITE] = "boundaries-write",
        [BLK_HIST_FLUSH] = "boundaries-flush",
    };
    const char *id = json_str_arg(args, "id");
    BlockBackend *blk = blk_find_by_device(id);
    BlockNode *bs = blk ? blk_node(blk) : blk_node_find(id);
    uint64_t all[BLK_HIST_MAX_BOUNDARIES], one[BLK_HIST__MAX]
        [BLK_HIST_MAX_BOUNDARIES];
    unsigned n_all = 0, n[BLK_HIST__MAX] = { 0 };
    bool has_all, has[BLK_HIST__MAX];

    if (!bs) {
        error_setg_class(errp, IOVD_ERROR_DEVICE_NOT_FOUND,
                         "'%s' is neither a device with a block backend nor "
                         "a node", id);
        return false;
    }
    /* Validate everything first: a refused request changes nothing. */
    if (!qmp_config_may_change("block-latency-histogram-set", errp) ||
        !hist_arg(args, "boundaries", all, &n_all, &has_all, errp)) {
        return false;
    }
    for (unsigned k = 0; k < BLK_HIST__MAX; k++) {
        if (!hist_arg(args, keys[k], one[k], &n[k], &has[k], errp)) {
            return false;
        }
        if (!has[k] && has_all) {
            memcpy(one[k], all, sizeof(all));
            n[k] = n_all;
        }
        if (!blk_histogram_check(one[k], n[k], errp)) {
            error_prepend(errp, "'%s': ", has[k] ? keys[k] : "boundaries");
            return false;
        }
    }
    for (unsigned k = 0; k < BLK_HIST__MAX; k++) {
        if (!blk_node_set_histogram(bs, k, one[k], n[k], errp)) {
            return false;
        }
    }
    qmp_config_changed("block-latency-histogram-set", id);
    return true;
}

/* ---- throttle groups: qom-get / qom-set, query-throttle-groups ---- */

/* qom-set's "limits": several at once, checked together. */
static bool tg_set_limits(const char *id, json_object *value, GError **errp)
{
    ThrottleGroup *g = blk_throttle_group_find(id);
    BlockThrottle t;

    if (!json_object_is_type(value, json_type_object)) {
        error_setg(errp, "'limits' expects an object (bps-total, ...)");
        return false;
    }
    /* Members not given keep their value, as QEMU's qom-set of limits. */
    blk_throttle_group_limits(g, &t);
    json_object_object_foreach(value, key, v) {
        g_autofree char *text = qapi_scalar_to_str(v, key, errp);

        if (!text || !blk_throttle_prop_set(&t, key, text, errp)) {
            return false;
        }
    }
    if (!blk_throttle_check(&t, errp)) {
        return false;
    }
    blk_throttle_group_config(g, &t);
    return true;
}

/* The group's options get its limits as they are now, as x-* keys. */
static void tg_set_limit_keys(Keyval *kv, void *opaque)
{
    BlockThrottle t;
    const struct { const char *key; uint64_t *v; } lim[] = {
        { "x-bps-total", &t.bps }, { "x-bps-read", &t.bps_rd },
        { "x-bps-write", &t.bps_wr }, { "x-iops-total", &t.iops },
        { "x-iops-read", &t.iops_rd }, { "x-iops-write", &t.iops_wr },
    };

    blk_throttle_group_limits(opaque, &t);
    /* object-add's nested form would say them twice. */
    for (guint i = kv->pairs->len; i-- > 0;) {
        KeyvalPair *p = g_ptr_array_index(kv->pairs, i);

        if (g_str_has_prefix(p->key, "limits.")) {
            g_ptr_array_remove_index(kv->pairs, i);
        }
    }
    for (unsigned i = 0; i < G_N_ELEMENTS(lim); i++) {
        g_autofree char *v = g_strdup_printf("%" PRIu64, *lim[i].v);

        keyval_set(kv, lim[i].key, v);
    }
}

static json_object *tg_limits_json(ThrottleGroup *g)
{
    json_object *o = json_object_new_object();
    BlockThrottle t;

    blk_throttle_group_limits(g, &t);
    add_int(o, "bps-total", t.bps);
    add_int(o, "bps-read", t.bps_rd);
    add_int(o, "bps-write", t.bps_wr);
    add_int(o, "iops-total", t.iops);
    add_int(o, "iops-read", t.iops_rd);
    add_int(o, "iops-write", t.iops_wr);
    return o;
}

static bool tg_qom_get(const char *id, const char *prop, json_object **ret,
                       GError **errp)
{
    uint64_t v;

    if (strcmp(prop, "limits") == 0) {
        *ret = tg_limits_json(blk_throttle_group_find(id));
        return true;
    }
    if (!blk_throttle_group_get_prop(id, prop, &v, errp)) {
        return false;
    }
    *ret = json_object_new_uint64(v);
    return true;
}

static bool tg_qom_set(const char *id, const char *prop, json_object *args,
                       GError **errp)
{
    g_autofree char *text = NULL;
    json_object *value;
    bool ok;

    if (!qmp_config_may_change("qom-set", errp)) {
        return false;
    }
    json_object_object_get_ex(args, "value", &value);
    if (strcmp(prop, "limits") == 0) {
        ok = tg_set_limits(id, value, errp);
    } else {
        text = qapi_scalar_to_str(value, "value", errp);
        ok = text && blk_throttle_group_set_prop(id, prop, text, errp);
    }
    if (!ok) {
        return false;
    }
    /* A live upgrade's new process makes the group with these limits. */
    iovd_config_update(iovd_config_key("object", id), tg_set_limit_keys,
                       blk_throttle_group_find(id));
    return true;
}

bool qmp_throttle_group_qom(json_object *args, bool set, json_object **ret,
                            bool *ok, GError **errp)
{
    const char *path = json_str_arg(args, "path");
    const char *prop = json_str_arg(args, "property");

    if (path && g_str_has_prefix(path, "/objects/")) {
        path += strlen("/objects/");
    }
    if (!path || !blk_throttle_group_find(path)) {
        return false;
    }
    *ok = set ? tg_qom_set(path, prop, args, errp)
              : tg_qom_get(path, prop, ret, errp);
    return true;
}

typedef struct TgQuery {
    json_object *members;
    uint64_t delayed, delay_ns;
} TgQuery;

/* With the group's lock held. */
static void tg_member_info(ThrottleMember *m, void *opaque)
{
    TgQuery *q = opaque;
    json_object *o = json_object_new_object();
    ThrottleMemberStats st;

    throttle_member_stats(m, &st);
    json_object_object_add(o, "device",
                           json_object_new_string(throttle_member_name(m)));
    add_int(o, "delayed-requests", st.delayed);
    add_int(o, "delay-ns", st.delay_ns);
    json_object_array_add(q->members, o);
    q->delayed += st.delayed;
    q->delay_ns += st.delay_ns;
}

static void tg_info(ThrottleGroup *g, void *opaque)
{
    json_object *o = json_object_new_object();
    TgQuery q = { json_object_new_array(), 0, 0 };

    throttle_group_foreach(g, tg_member_info, &q);
    json_object_object_add(o, "id",
                           json_object_new_string(throttle_group_id(g)));
    json_object_object_add(o, "limits", tg_limits_json(g));
    json_object_object_add(o, "members", q.members);
    add_int(o, "delayed-requests", q.delayed);
    add_int(o, "delay-ns", q.delay_ns);
    json_object_array_add(opaque, o);
}

bool qmp_query_throttle_groups(json_object *args, json_object **ret,
                               GError **errp)
{
    json_object *list = json_object_new_array();

    blk_throttle_group_foreach(tg_info, list);
    *ret = list;
    return true;
}
