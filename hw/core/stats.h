/*
 * Runtime statistics, as QEMU's query-stats shapes them: a provider
 * (the subsystem that counts: "vfio-user", "nvme", "virtio", "net",
 * "e1000") reports named values about a target (a device, or one queue
 * of a device).  What a provider can report is declared once, in a
 * StatsSchema (query-stats-schemas lists them); a device reports values
 * of its schemas into a StatsCollector (query-stats).
 *
 * Counters belong to the loop that owns the device: they are plain
 * integers, and the collector runs on that loop (device_run_sync), so a
 * report is a consistent snapshot of one device.
 */
#ifndef HW_CORE_STATS_H
#define HW_CORE_STATS_H

#include "util/osdep.h"

typedef struct Device Device;

typedef enum StatsTarget {
    STATS_TARGET_DEVICE,        /* a device as a whole */
    STATS_TARGET_QUEUE,         /* one queue of a device, by index */
    STATS_TARGET__MAX
} StatsTarget;

typedef enum StatsType {
    STATS_CUMULATIVE,           /* only increases (since realize) */
    STATS_INSTANT,              /* the value now */
    STATS_PEAK,                 /* the largest value seen */
} StatsType;

typedef enum StatsUnit {
    STATS_UNIT_NONE,            /* a count */
    STATS_UNIT_BYTES,
} StatsUnit;

typedef struct StatsDesc {
    const char *name;
    StatsType type;
    StatsUnit unit;
} StatsDesc;

typedef struct StatsSchema {
    const char *provider;
    StatsTarget target;
    const StatsDesc *stats;     /* terminated by a NULL name */
} StatsSchema;

const char *stats_target_name(StatsTarget t);
const char *stats_type_name(StatsType t);
const char *stats_unit_name(StatsUnit u);   /* NULL for STATS_UNIT_NONE */

/* ---- reporting (devices) ---- */

typedef struct StatsCollector StatsCollector;

/*
 * Start a record of @schema's values for the device (@queue < 0) or its
 * queue @queue.  False when the caller wants nothing of it (another
 * target or provider): then report nothing for it.
 */
bool stats_begin(StatsCollector *c, const StatsSchema *schema, int queue);
/*
 * One value of the record begun last; @name must be in its schema (a
 * mismatch is a bug).  Values the caller did not ask for are dropped.
 */
void stats_put(StatsCollector *c, const char *name, uint64_t value);

/* ---- querying (the monitor) ---- */

/* What the caller asked of one provider: all its values, or @names. */
typedef struct StatsRequest {
    const char *provider;
    char **names;               /* NULL: all */
} StatsRequest;

typedef struct StatsEntry {
    const StatsDesc *desc;
    uint64_t value;
} StatsEntry;

typedef struct StatsRecord {
    const StatsSchema *schema;
    int queue;                  /* -1: the device itself */
    GArray *values;             /* of StatsEntry */
} StatsRecord;

/*
 * Collect @dev's values for @target (with its transport's), limited to
 * @reqs when @nreqs > 0: a GPtrArray of StatsRecord (free with
 * g_ptr_array_unref).  Runs the reporting on @dev's loop.  Main thread.
 */
GPtrArray *stats_collect(Device *dev, StatsTarget target,
                         const StatsRequest *reqs, unsigned nreqs);

/*
 * Every schema some device type or the transport declares, each once,
 * in a stable order.
 */
void stats_foreach_schema(void (*fn)(const StatsSchema *s, void *opaque),
                          void *opaque);

#endif
