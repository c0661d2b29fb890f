/*
 * Runtime statistics: the collector devices report into, and the list of
 * schemas (see stats.h).
 */
#include "hw/core/stats.h"
#include "hw/core/device.h"

struct StatsCollector {
    StatsTarget target;
    const StatsRequest *reqs;
    unsigned nreqs;
    GPtrArray *records;         /* of StatsRecord */
    StatsRecord *cur;           /* NULL: the current schema is not wanted */
};

static const char *const target_names[STATS_TARGET__MAX] = {
    [STATS_TARGET_DEVICE] = "device",
    [STATS_TARGET_QUEUE] = "queue",
};

const char *stats_target_name(StatsTarget t)
{
    return target_names[t];
}

const char *stats_type_name(StatsType t)
{
    switch (t) {
    case STATS_CUMULATIVE:
        return "cumulative";
    case STATS_INSTANT:
        return "instant";
    case STATS_PEAK:
        return "peak";
    }
    g_assert_not_reached();
}

const char *stats_unit_name(StatsUnit u)
{
    return u == STATS_UNIT_BYTES ? "bytes" : NULL;
}

/* Does some request of @c name @provider (and @name, when given)? */
static bool stats_wanted(StatsCollector *c, const char *provider,
                         const char *name)
{
    if (c->nreqs == 0) {
        return true;
    }
    for (unsigned i = 0; i < c->nreqs; i++) {
        const StatsRequest *r = &c->reqs[i];

        if (strcmp(r->provider, provider) != 0) {
            continue;
        }
        if (!name || !r->names || g_strv_contains((const char *const *)
                                                  r->names, name)) {
            return true;
        }
    }
    return false;
}

static void stats_record_free(gpointer p)
{
    StatsRecord *r = p;

    g_array_unref(r->values);
    g_free(r);
}

bool stats_begin(StatsCollector *c, const StatsSchema *schema, int queue)
{
    StatsRecord *r;

    c->cur = NULL;
    if (schema->target != c->target ||
        !stats_wanted(c, schema->provider, NULL)) {
        return false;
    }
    r = g_new0(StatsRecord, 1);
    r->schema = schema;
    r->queue = queue < 0 ? -1 : queue;
    r->values = g_array_new(false, false, sizeof(StatsEntry));
    g_ptr_array_add(c->records, r);
    c->cur = r;
    return true;
}

void stats_put(StatsCollector *c, const char *name, uint64_t value)
{
    const StatsDesc *d;

    if (!c->cur) {
        return;
    }
    for (d = c->cur->schema->stats; d->name; d++) {
        if (strcmp(d->name, name) == 0) {
            break;
        }
    }
    g_assert(d->name);          /* not in the schema: a bug */
    if (stats_wanted(c, c->cur->schema->provider, name)) {
        StatsEntry e = { d, value };

        g_array_append_val(c->cur->values, e);
    }
}

static void stats_collect_on_loop(Device *dev, void *opaque)
{
    device_report_stats(dev, opaque);
}

GPtrArray *stats_collect(Device *dev, StatsTarget target,
                         const StatsRequest *reqs, unsigned nreqs)
{
    StatsCollector c = {
        .target = target,
        .reqs = reqs,
        .nreqs = nreqs,
        .records = g_ptr_array_new_with_free_func(stats_record_free),
    };

    device_run_sync(dev, stats_collect_on_loop, &c);
    /* A record whose values were all filtered out is no answer. */
    for (unsigned i = c.records->len; i-- > 0;) {
        StatsRecord *r = g_ptr_array_index(c.records, i);

        if (r->values->len == 0) {
            g_ptr_array_remove_index(c.records, i);
        }
    }
    return c.records;
}

typedef struct SchemaWalk {
    GHashTable *seen;
    void (*fn)(const StatsSchema *s, void *opaque);
    void *opaque;
} SchemaWalk;

static void schema_once(const StatsSchema *s, void *opaque)
{
    SchemaWalk *w = opaque;

    if (g_hash_table_add(w->seen, (gpointer)s)) {
        w->fn(s, w->opaque);
    }
}

void stats_foreach_schema(void (*fn)(const StatsSchema *s, void *opaque),
                          void *opaque)
{
    SchemaWalk w = { g_hash_table_new(NULL, NULL), fn, opaque };

    device_foreach_stats_schema(schema_once, &w);
    g_hash_table_destroy(w.seen);
}
