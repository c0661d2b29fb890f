/*
 * query-stats and query-stats-schemas: QEMU's shape over hw/core/stats.
 * The values come from the devices (each collected on its own loop); this
 * file only parses the filter and writes JSON.
 */
#include "qapi/qapi-commands.h"
#include "qapi/qmp.h"
#include "hw/core/device.h"
#include "hw/core/stats.h"
#include "util/error.h"

static bool stats_target_parse(const char *s, StatsTarget *t)
{
    for (unsigned i = 0; i < STATS_TARGET__MAX; i++) {
        if (strcmp(s, stats_target_name(i)) == 0) {
            *t = i;
            return true;
        }
    }
    return false;
}

/* The "providers" argument (already checked against the schema). */
typedef struct StatsFilter {
    StatsTarget target;
    StatsRequest *reqs;
    unsigned nreqs;
} StatsFilter;

static void stats_filter_clear(StatsFilter *f)
{
    for (unsigned i = 0; i < f->nreqs; i++) {
        g_strfreev(f->reqs[i].names);
    }
    g_free(f->reqs);
}

static void stats_filter_parse(StatsFilter *f, json_object *providers)
{
    size_t n = providers ? json_object_array_length(providers) : 0;

    f->reqs = g_new0(StatsRequest, n);
    for (size_t i = 0; i < n; i++) {
        json_object *r = json_object_array_get_idx(providers, i);
        json_object *v, *names;
        StatsRequest *req = &f->reqs[f->nreqs++];

        json_object_object_get_ex(r, "provider", &v);
        req->provider = json_object_get_string(v);
        if (json_object_object_get_ex(r, "names", &names)) {
            size_t k = json_object_array_length(names);

            req->names = g_new0(char *, k + 1);
            for (size_t j = 0; j < k; j++) {
                req->names[j] = g_strdup(json_object_get_string(
                    json_object_array_get_idx(names, j)));
            }
        }
    }
}

static json_object *stats_record_json(Device *dev, const StatsRecord *r)
{
    json_object *o = json_object_new_object();
    json_object *list = json_object_new_array();
    g_autofree char *path = r->queue < 0 ?
        g_strdup_printf(PERIPHERAL_PREFIX "%s", device_id(dev)) :
        g_strdup_printf(PERIPHERAL_PREFIX "%s/queue[%d]", device_id(dev),
                        r->queue);

    json_object_object_add(o, "provider",
                           json_object_new_string(r->schema->provider));
    json_object_object_add(o, "qom-path", json_object_new_string(path));
    for (unsigned i = 0; i < r->values->len; i++) {
        const StatsEntry *e = &g_array_index(r->values, StatsEntry, i);
        json_object *s = json_object_new_object();

        json_object_object_add(s, "name",
                               json_object_new_string(e->desc->name));
        json_object_object_add(s, "value", json_object_new_uint64(e->value));
        json_object_array_add(list, s);
    }
    json_object_object_add(o, "stats", list);
    return o;
}

static void stats_of_device(Device *dev, const StatsFilter *f,
                            json_object *out)
{
    g_autoptr(GPtrArray) recs = NULL;

    if (dev->state == DEVICE_DELETING) {
        return;
    }
    recs = stats_collect(dev, f->target, f->reqs, f->nreqs);
    for (unsigned i = 0; i < recs->len; i++) {
        json_object_array_add(out,
                              stats_record_json(dev,
                                                g_ptr_array_index(recs, i)));
    }
}


static void add_device(Device *dev, void *opaque)
{
    g_ptr_array_add(opaque, dev);
}

/* The devices named by @devices, or all; false (and @errp) on a bad name. */
static bool stats_devices(json_object *devices, GPtrArray *out, GError **errp)
{
    size_t n;

    if (!devices) {
        device_foreach(add_device, out);
        return true;
    }
    n = json_object_array_length(devices);
    for (size_t i = 0; i < n; i++) {
        Device *dev = qmp_find_device(
            json_object_get_string(json_object_array_get_idx(devices, i)),
            errp);

        if (!dev) {
            return false;
        }
        if (!g_ptr_array_find(out, dev, NULL)) {
            g_ptr_array_add(out, dev);
        }
    }
    return true;
}

bool qmp_query_stats(json_object *args, json_object **ret, GError **errp)
{
    g_autoptr(GPtrArray) devs = g_ptr_array_new();
    json_object *v, *providers = NULL, *devices = NULL, *list;
    StatsFilter f = { 0 };

    json_object_object_get_ex(args, "target", &v);
    if (!stats_target_parse(json_object_get_string(v), &f.target)) {
        error_setg(errp, "unknown stats target '%s'",
                   json_object_get_string(v));
        return false;
    }
    json_object_object_get_ex(args, "providers", &providers);
    json_object_object_get_ex(args, "devices", &devices);
    if (!stats_devices(devices, devs, errp)) {
        return false;
    }
    stats_filter_parse(&f, providers);
    list = json_object_new_array();
    for (unsigned i = 0; i < devs->len; i++) {
        stats_of_device(g_ptr_array_index(devs, i), &f, list);
    }
    stats_filter_clear(&f);
    *ret = list;
    return true;
}

typedef struct SchemaQuery {
    const char *provider;       /* NULL: all */
    json_object *list;
} SchemaQuery;

static void schema_json(const StatsSchema *s, void *opaque)
{
    SchemaQuery *q = opaque;
    json_object *o, *stats;

    if (q->provider && strcmp(q->provider, s->provider) != 0) {
        return;
    }
    o = json_object_new_object();
    stats = json_object_new_array();
    json_object_object_add(o, "provider", json_object_new_string(s->provider));
    json_object_object_add(o, "target",
                           json_object_new_string(stats_target_name(s->target)));
    for (const StatsDesc *d = s->stats; d->name; d++) {
        json_object *e = json_object_new_object();
        const char *unit = stats_unit_name(d->unit);

        json_object_object_add(e, "name", json_object_new_string(d->name));
        json_object_object_add(e, "type",
                               json_object_new_string(stats_type_name(d->type)));
        if (unit) {
            json_object_object_add(e, "unit", json_object_new_string(unit));
        }
        json_object_object_add(e, "exponent", json_object_new_int(0));
        json_object_array_add(stats, e);
    }
    json_object_object_add(o, "stats", stats);
    json_object_array_add(q->list, o);
}

bool qmp_query_stats_schemas(json_object *args, json_object **ret,
                             GError **errp)
{
    json_object *v;
    SchemaQuery q = { NULL, json_object_new_array() };

    if (json_object_object_get_ex(args, "provider", &v)) {
        q.provider = json_object_get_string(v);
    }
    stats_foreach_schema(schema_json, &q);
    *ret = q.list;
    return true;
}
