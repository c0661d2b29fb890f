/*
 * Named throttle groups: -object throttle-group,id=G,x-bps-total=...
 * (QEMU's object and property names).  The devices on nodes made with
 * throttle-group=G share G's limits; the sharing itself is
 * util/throttle.c's, the backends' part in block.c.
 *
 * The registry lives on the main thread (command line, monitor); a
 * group's limits are under its own lock, so the monitor changes them
 * while members run on their iothreads.
 */
#include "block/block-int.h"
#include "util/cmdline.h"
#include "util/error.h"
#include "util/throttle.h"

static GList *groups;           /* of ThrottleGroup *, creation order */

/* QEMU's ThrottleLimits names, in BlockThrottle's order. */
static const PropDef tg_props[] = {
    PROP_DEF_UINT("x-bps-total", BlockThrottle, bps,
                  "bytes per second, reads and writes (0: no limit)"),
    PROP_DEF_UINT("x-bps-read", BlockThrottle, bps_rd,
                  "bytes per second read"),
    PROP_DEF_UINT("x-bps-write", BlockThrottle, bps_wr,
                  "bytes per second written"),
    PROP_DEF_UINT("x-iops-total", BlockThrottle, iops,
                  "requests per second, reads and writes"),
    PROP_DEF_UINT("x-iops-read", BlockThrottle, iops_rd,
                  "read requests per second"),
    PROP_DEF_UINT("x-iops-write", BlockThrottle, iops_wr,
                  "write requests per second"),
    PROP_DEF_END
};

ThrottleGroup *blk_throttle_group_find(const char *id)
{
    for (GList *l = groups; l; l = l->next) {
        if (strcmp(throttle_group_id(l->data), id) == 0) {
            return l->data;
        }
    }
    return NULL;
}

void blk_throttle_group_foreach(void (*fn)(ThrottleGroup *g, void *opaque),
                                void *opaque)
{
    for (GList *l = groups; l; l = l->next) {
        fn(l->data, opaque);
    }
}

/* "bps-total" (QMP's limits member) or "x-bps-total" (the property). */
static const PropDef *tg_prop(const char *name)
{
    g_autofree char *x = g_str_has_prefix(name, "x-") ? g_strdup(name)
                         : g_strdup_printf("x-%s", name);

    return props_find(tg_props, x);
}

bool blk_throttle_group_add(Keyval *kv, GError **errp)
{
    const char *id = keyval_get(kv, "id");
    BlockThrottle t = { 0 };

    if (!check_id("id", id, 63, errp)) {
        return false;
    }
    if (blk_throttle_group_find(id)) {
        error_setg(errp, "duplicate throttle-group id '%s'", id);
        return false;
    }
    /* limits.bps-total=N (QMP's nested "limits") is x-bps-total=N. */
    for (const PropDef *p = tg_props; p->name; p++) {
        g_autofree char *key = g_strdup_printf("limits.%s", p->name + 2);
        g_autofree char *v = keyval_take(kv, key);

        if (v) {
            keyval_set(kv, p->name, v);
        }
    }
    keyval_get(kv, "qom-type");
    if (!props_apply(tg_props, &t, kv, errp) ||
        !keyval_check_unused(kv, errp) || !blk_throttle_check(&t, errp)) {
        return false;
    }
    groups = g_list_append(groups, throttle_group_new(id));
    blk_throttle_group_config(g_list_last(groups)->data, &t);
    return true;
}

typedef struct NodeUse {
    const char *id;
    const char *node;
} NodeUse;

static void node_uses(BlockNode *bs, void *opaque)
{
    NodeUse *u = opaque;

    if (!u->node && bs->throttle_group &&
        strcmp(bs->throttle_group, u->id) == 0) {
        u->node = bs->node_name;
    }
}

bool blk_throttle_group_del(const char *id, GError **errp)
{
    ThrottleGroup *g = blk_throttle_group_find(id);
    NodeUse u = { id, NULL };

    if (!g) {
        error_setg(errp, "object '%s' not found", id);
        return false;
    }
    /* Its members come and go with the node's devices: the node decides. */
    blk_node_foreach(node_uses, &u);
    if (u.node) {
        error_setg(errp, "throttle group '%s' is in use by node '%s'", id,
                   u.node);
        return false;
    }
    groups = g_list_remove(groups, g);
    throttle_group_free(g);
    return true;
}

/*
 * @prop's definition, or an error listing the properties there are (on
 * group @id, or on any group when @id is NULL).
 */
static const PropDef *tg_prop_or_error(const char *prop, const char *id,
                                       GError **errp)
{
    const PropDef *def = tg_prop(prop);
    g_autofree char *where = NULL;

    if (def) {
        return def;
    }
    where = id ? g_strdup_printf("throttle group '%s'", id)
               : g_strdup("a throttle group");
    error_setg(errp, "Property '%s' not found on %s (x-bps-total, "
               "x-bps-read, x-bps-write, x-iops-total, x-iops-read, "
               "x-iops-write)", prop, where);
    return NULL;
}

/*
 * Group @id, its limits into @t and @prop's definition into @def: what
 * reading or changing one of its properties starts with.
 */
static ThrottleGroup *group_prop(const char *id, const char *prop,
                                 const PropDef **def, BlockThrottle *t,
                                 GError **errp)
{
    ThrottleGroup *g = blk_throttle_group_find(id);

    if (!g) {
        error_setg(errp, "no throttle group '%s'", id);
        return NULL;
    }
    *def = tg_prop_or_error(prop, id, errp);
    if (!*def) {
        return NULL;
    }
    blk_throttle_group_limits(g, t);
    return g;
}

bool blk_throttle_prop_set(BlockThrottle *t, const char *prop,
                           const char *value, GError **errp)
{
    const PropDef *def = tg_prop_or_error(prop, NULL, errp);

    return def && prop_set_str(def, t, value, errp);
}

bool blk_throttle_group_set_prop(const char *id, const char *prop,
                                 const char *value, GError **errp)
{
    const PropDef *def;
    BlockThrottle t;
    ThrottleGroup *g = group_prop(id, prop, &def, &t, errp);

    if (!g || !prop_set_str(def, &t, value, errp) ||
        !blk_throttle_check(&t, errp)) {
        return false;
    }
    blk_throttle_group_config(g, &t);
    return true;
}

bool blk_throttle_group_get_prop(const char *id, const char *prop,
                                 uint64_t *value, GError **errp)
{
    const PropDef *def;
    BlockThrottle t;

    if (!group_prop(id, prop, &def, &t, errp)) {
        return false;
    }
    *value = *(uint64_t *)((char *)&t + def->offset);
    return true;
}

static bool tg_exists(const char *id)
{
    return blk_throttle_group_find(id) != NULL;
}

static const IovdObjectType tg_type = {
    .name = "throttle-group",
    .add = blk_throttle_group_add,
    .exists = tg_exists,
    .del = blk_throttle_group_del,
    .help = "-object throttle-group,id=ID[,x-bps-total=N][,x-bps-read=N]"
            "[,x-bps-write=N][,x-iops-total=N][,x-iops-read=N]"
            "[,x-iops-write=N]\n"
            "                         limits shared by the devices on nodes "
            "with throttle-group=ID",
};

void blk_throttle_group_init(void)
{
    iovd_register_object_type(&tg_type);
}
