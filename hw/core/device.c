/*
 * Device registry, life cycle (reset, pause, delete) and the worker that
 * runs a device's work in a coroutine.  See device.h for the rules.
 */
#include "hw/core/device.h"
#include "hw/core/trace.h"
#include "util/cmdline.h"
#include "util/coroutine.h"
#include "util/error.h"
#include "util/iothread.h"
#include "util/loop.h"
#include "util/trace.h"

static GHashTable *device_classes;      /* name -> DeviceClass */
static GList *devices;                  /* of Device *, creation order */
static const DeviceTransportHooks *transport_hooks;
static bool all_paused;                 /* monitor 'stop' */

const PropDef device_common_props[] = {
    PROP_DEF_STR("id", Device, id, "device identifier"),
    PROP_DEF_STR("iothread", Device, iothread_id,
                 "the iothread whose loop runs the device (default: the "
                 "main loop)"),
    PROP_DEF_END
};

void device_class_register(const DeviceClass *cls)
{
    if (!device_classes) {
        device_classes = g_hash_table_new(g_str_hash, g_str_equal);
    }
    g_assert(!g_hash_table_contains(device_classes, cls->name));
    g_hash_table_insert(device_classes, (gpointer)cls->name, (gpointer)cls);
}

const DeviceClass *device_class_find(const char *name)
{
    return device_classes ? g_hash_table_lookup(device_classes, name) : NULL;
}

static gint class_cmp(gconstpointer a, gconstpointer b)
{
    const DeviceClass *ca = a, *cb = b;

    return strcmp(ca->name, cb->name);
}

void device_class_foreach(void (*fn)(const DeviceClass *cls, void *opaque),
                          void *opaque)
{
    GList *l, *sorted;

    if (!device_classes) {
        return;
    }
    sorted = g_list_sort(g_hash_table_get_values(device_classes), class_cmp);
    for (l = sorted; l; l = l->next) {
        fn(l->data, opaque);
    }
    g_list_free(sorted);
}

const DeviceTransportHooks *device_transport_hooks(void)
{
    return transport_hooks;
}

void device_set_transport_hooks(const DeviceTransportHooks *hooks)
{
    transport_hooks = hooks;
}

void device_report_stats(Device *dev, StatsCollector *c)
{
    if (dev->cls->is_pci && transport_hooks && transport_hooks->get_stats) {
        transport_hooks->get_stats(dev, c);
    }
    if (dev->cls->get_stats) {
        dev->cls->get_stats(dev, c);
    }
}

typedef struct SchemaVisit {
    void (*fn)(const StatsSchema *s, void *opaque);
    void *opaque;
} SchemaVisit;

static void visit_schemas(const StatsSchema *const *list, SchemaVisit *v)
{
    for (; list && *list; list++) {
        v->fn(*list, v->opaque);
    }
}

static void class_schemas(const DeviceClass *cls, void *opaque)
{
    visit_schemas(cls->stats, opaque);
}

void device_foreach_stats_schema(void (*fn)(const StatsSchema *s,
                                            void *opaque),
                                 void *opaque)
{
    SchemaVisit v = { fn, opaque };

    if (transport_hooks) {
        visit_schemas(transport_hooks->stats, &v);
    }
    device_class_foreach(class_schemas, &v);
}

unsigned device_class_props(const DeviceClass *cls, const PropDef *tabs[3])
{
    unsigned n = 0;

    tabs[n++] = device_common_props;
    if (cls->base_props) {
        tabs[n++] = cls->base_props;
    }
    if (cls->props) {
        tabs[n++] = cls->props;
    }
    return n;
}

const PropDef *device_find_prop(Device *dev, const char *name)
{
    const PropDef *tabs[3];
    unsigned n = device_class_props(dev->cls, tabs);

    for (unsigned i = 0; i < n; i++) {
        const PropDef *p = props_find(tabs[i], name);

        if (p) {
            return p;
        }
    }
    return NULL;
}

Device *device_find(const char *id)
{
    for (GList *l = devices; l; l = l->next) {
        Device *dev = l->data;

        if (dev->id && strcmp(dev->id, id) == 0) {
            return dev;
        }
    }
    return NULL;
}

typedef struct DeviceCall {
    Device *dev;
    void (*fn)(Device *dev, void *opaque);
    void *opaque;
} DeviceCall;

static void device_call(void *opaque)
{
    DeviceCall *c = opaque;

    c->fn(c->dev, c->opaque);
}

void device_run_sync(Device *dev, void (*fn)(Device *dev, void *opaque),
                     void *opaque)
{
    DeviceCall c = { dev, fn, opaque };

    loop_run_sync(dev->loop, device_call, &c);
}

static void device_free(Device *dev)
{
    const PropDef *tabs[3];
    unsigned n = device_class_props(dev->cls, tabs);

    for (unsigned i = 0; i < n; i++) {
        props_free(tabs[i], dev);
    }
    g_free(dev);
}

static void device_worker_init(Device *dev);

/* A device runs where iothread= says, a child where its parent runs. */
static bool device_choose_loop(Device *dev, GError **errp)
{
    const char *parent_id = dev->cls->parent_id ? dev->cls->parent_id(dev)
                                                : NULL;

    dev->loop = loop_main();
    if (parent_id) {
        Device *parent = device_find(parent_id);

        if (dev->iothread_id) {
            error_setg(errp, "property 'iothread': a %s runs where its "
                       "controller runs", dev->cls->name);
            return false;
        }
        if (parent) {
            dev->loop = parent->loop;   /* realize checks the parent */
        }
        return true;
    }
    if (dev->iothread_id) {
        dev->iothread = iothread_find(dev->iothread_id);
        if (!dev->iothread) {
            error_setg(errp, "property 'iothread': no iothread '%s' (add "
                       "one with -object iothread,id=%s)", dev->iothread_id,
                       dev->iothread_id);
            return false;
        }
        dev->loop = iothread_loop(dev->iothread);
    }
    return true;
}

typedef struct DeviceRealize {
    Device *dev;
    GError **errp;
    bool ok;
} DeviceRealize;

/* On the device's loop (the main thread waits meanwhile). */
static void device_realize_on_loop(void *opaque)
{
    DeviceRealize *ctx = opaque;
    Device *dev = ctx->dev;
    const DeviceClass *cls = dev->cls;

    if (cls->realize && !cls->realize(dev, ctx->errp)) {
        return;
    }
    dev->realized = true;
    if (cls->is_pci && transport_hooks &&
        !transport_hooks->attach(dev, ctx->errp)) {
        if (cls->unrealize) {
            cls->unrealize(dev);
        }
        return;
    }
    if (all_paused) {
        device_pause(dev);      /* join the others: they are stopped */
    }
    ctx->ok = true;
}

Device *device_create(Keyval *kv, GError **errp)
{
    const char *driver = keyval_get(kv, "driver");
    /* What makes it again (a live upgrade's), before the kv is used. */
    g_autofree char *arg = keyval_to_str(kv);
    bool named = keyval_get(kv, "id");
    const DeviceClass *cls;
    const PropDef *tabs[3];
    DeviceRealize ctx = { 0 };
    unsigned n;
    Device *dev;

    if (!driver) {
        error_setg(errp, "missing property 'driver'");
        return NULL;
    }
    cls = device_class_find(driver);
    if (!cls) {
        error_setg(errp, "unknown device type '%s' (try -device help)",
                   driver);
        return NULL;
    }
    dev = g_malloc0(cls->instance_size);
    dev->cls = cls;
    n = device_class_props(cls, tabs);
    for (unsigned i = 0; i < n; i++) {
        if (!props_apply(tabs[i], dev, kv, errp)) {
            goto fail;
        }
    }
    if (!keyval_check_unused(kv, errp)) {
        goto fail;
    }
    if (dev->id) {
        if (!check_id("id", dev->id, SIZE_MAX, errp)) {
            goto fail;
        }
        if (device_find(dev->id)) {
            error_setg(errp, "duplicate device id '%s'", dev->id);
            goto fail;
        }
    } else {
        for (unsigned i = 0;; i++) {
            g_autofree char *id = g_strdup_printf("%s%u", cls->name, i);

            if (!device_find(id)) {
                dev->id = g_steal_pointer(&id);
                break;
            }
        }
    }
    device_worker_init(dev);
    if (!device_choose_loop(dev, errp)) {
        goto fail;
    }
    ctx.dev = dev;
    ctx.errp = errp;
    /* Everything of the device is made on the thread that will run it. */
    loop_run_sync(dev->loop, device_realize_on_loop, &ctx);
    if (!ctx.ok) {
        goto fail;
    }
    devices = g_list_append(devices, dev);
    if (dev->iothread) {
        iothread_ref(dev->iothread);
    }
    trace_device_create(dev->id, cls->name);
    /* With the id it was given: the same one in a new process. */
    iovd_config_created(dev, "device",
                        named ? g_steal_pointer(&arg)
                              : g_strdup_printf("%s,id=%s", arg, dev->id));
    return dev;

fail:
    device_free(dev);
    return NULL;
}

void device_foreach(void (*fn)(Device *dev, void *opaque), void *opaque)
{
    GList *copy = g_list_copy(devices);

    for (GList *l = copy; l; l = l->next) {
        fn(l->data, opaque);
    }
    g_list_free(copy);
}

void device_foreach_child(Device *parent,
                          void (*fn)(Device *dev, void *opaque),
                          void *opaque)
{
    GList *copy = g_list_copy(devices);

    for (GList *l = copy; l; l = l->next) {
        Device *dev = l->data;

        if (dev->parent == parent) {
            fn(dev, opaque);
        }
    }
    g_list_free(copy);
}

/* ---- the worker ---- */

/*
 * What runs in the worker: a bottom half's or a timer's callback.  The
 * item is queued in dev->work (by its link) while due.
 */
typedef struct DeviceWork {
    Device *dev;
    void (*cb)(void *opaque);
    void *opaque;
    bool queued;
    GList link;
} DeviceWork;

struct DeviceBH {
    DeviceWork work;
    LoopBH *bh;
};

struct DeviceTimer {
    DeviceWork work;
    LoopTimer *timer;
};

/* The one-off item of device_run_now(), ahead of the queue. */
typedef struct DeviceRunNow {
    void (*fn)(void *opaque);
    void *opaque;
} DeviceRunNow;

static __thread DeviceRunNow *run_now;

static bool device_work_may_run(Device *dev)
{
    return dev->state == DEVICE_RUNNING || dev->state == DEVICE_PAUSED ||
           dev->state == DEVICE_STOPPING;
}

static void device_stop_check(Device *dev);

static void device_worker_main(void *opaque)
{
    Device *dev = opaque;

    for (;;) {
        DeviceRunNow *now = run_now;

        run_now = NULL;
        if (now) {
            now->fn(now->opaque);
            dev->work_cancelled = false;
        }
        while (device_work_may_run(dev) && !g_queue_is_empty(&dev->work)) {
            DeviceWork *w = g_queue_pop_head_link(&dev->work)->data;

            w->queued = false;
            w->cb(w->opaque);
            /* A cancelled item has unwound: the next one starts clean. */
            dev->work_cancelled = false;
        }
        dev->worker_busy = false;
        coroutine_yield();
    }
}

static void device_worker_init(Device *dev)
{
    g_queue_init(&dev->work);
}

/* Lazily: most devices never need a stack of their own until they run. */
static void device_worker_enter(Device *dev)
{
    if (!dev->worker) {
        dev->worker = coroutine_new(device_worker_main, dev);
    }
    dev->worker_busy = true;
    coroutine_enter(dev->worker);
    device_stop_check(dev);
}

static void device_work_dispatch(DeviceWork *w)
{
    Device *dev = w->dev;

    if (!device_work_may_run(dev) && dev->state != DEVICE_STOPPED) {
        return;                 /* a reset drops it; the device re-arms */
    }
    if (!w->queued) {
        w->queued = true;
        g_queue_push_tail_link(&dev->work, &w->link);
    }
    if (!dev->worker_busy && dev->state != DEVICE_STOPPED) {
        device_worker_enter(dev);   /* STOPPED: it waits for the start */
    }
}

static void device_work_init(DeviceWork *w, Device *dev,
                             void (*cb)(void *opaque), void *opaque)
{
    w->dev = dev;
    w->cb = cb;
    w->opaque = opaque;
    w->link.data = w;
}

static void device_work_unqueue(DeviceWork *w)
{
    if (w->queued) {
        g_queue_unlink(&w->dev->work, &w->link);
        w->queued = false;
    }
}

static void device_bh_run(void *opaque)
{
    device_work_dispatch(opaque);
}

DeviceBH *device_bh_new(Device *dev, void (*cb)(void *opaque), void *opaque)
{
    DeviceBH *bh = g_new0(DeviceBH, 1);

    device_work_init(&bh->work, dev, cb, opaque);
    bh->bh = loop_bh_new(dev->loop, device_bh_run, &bh->work);
    return bh;
}

void device_bh_schedule(DeviceBH *bh)
{
    if (!bh->work.queued) {
        loop_bh_schedule(bh->bh);
    }
}

void device_bh_cancel(DeviceBH *bh)
{
    loop_bh_cancel(bh->bh);
    device_work_unqueue(&bh->work);
}

void device_bh_delete(DeviceBH *bh)
{
    if (bh) {
        device_bh_cancel(bh);
        loop_bh_delete(bh->bh);
        g_free(bh);
    }
}

static void device_timer_run(void *opaque)
{
    device_work_dispatch(opaque);
}

DeviceTimer *device_timer_new(Device *dev, void (*cb)(void *opaque),
                              void *opaque)
{
    DeviceTimer *t = g_new0(DeviceTimer, 1);

    device_work_init(&t->work, dev, cb, opaque);
    t->timer = loop_timer_new(dev->loop, device_timer_run, &t->work);
    return t;
}

void device_timer_mod(DeviceTimer *t, int64_t expire_ns)
{
    device_work_unqueue(&t->work);
    loop_timer_mod(t->timer, expire_ns);
}

void device_timer_del(DeviceTimer *t)
{
    loop_timer_del(t->timer);
    device_work_unqueue(&t->work);
}

bool device_timer_pending(DeviceTimer *t)
{
    return loop_timer_pending(t->timer) || t->work.queued;
}

void device_timer_free(DeviceTimer *t)
{
    if (t) {
        device_timer_del(t);
        loop_timer_free(t->timer);
        g_free(t);
    }
}

bool device_in_worker(Device *dev)
{
    return dev->worker && coroutine_self() == dev->worker;
}

DeviceRunResult device_run_now(Device *dev, void (*fn)(void *opaque),
                               void *opaque)
{
    DeviceRunNow now = { fn, opaque };

    if (device_in_worker(dev)) {
        fn(opaque);
        return DEVICE_RUN_DONE;
    }
    if (dev->worker_busy || !device_work_may_run(dev)) {
        return DEVICE_RUN_BUSY;
    }
    run_now = &now;
    device_worker_enter(dev);
    return dev->worker_busy ? DEVICE_RUN_PARKED : DEVICE_RUN_DONE;
}

int device_park(Device *dev, void (*cancel)(void *opaque), void *opaque)
{
    if (dev->work_cancelled) {
        return -ECANCELED;
    }
    if (!device_in_worker(dev)) {
        return -EWOULDBLOCK;
    }
    dev->parked = true;
    dev->park_cancel = cancel;
    dev->park_opaque = opaque;
    trace_device_park(dev->id);
    coroutine_yield();
    return dev->park_result;
}

void device_unpark(Device *dev, int result)
{
    g_assert(dev->parked);
    dev->parked = false;
    dev->park_result = result;
    trace_device_unpark(dev->id, result);
    coroutine_enter(dev->worker);
    device_stop_check(dev);
}

/*
 * Step 2 of a reset: drop what is due, and unwind an item that is parked.
 * Every DMA it tries from here on fails, so it returns soon and touches
 * nothing the reset is about to set.
 */
static void device_worker_cancel(Device *dev)
{
    while (!g_queue_is_empty(&dev->work)) {
        DeviceWork *w = g_queue_pop_head_link(&dev->work)->data;

        w->queued = false;
    }
    if (dev->parked) {
        trace_device_cancel(dev->id);
        dev->work_cancelled = true;
        dev->park_cancel(dev->park_opaque);
        /* Its failing DMA is the reset's doing, not the guest's. */
        trace_mute_guest_errors(true);
        device_unpark(dev, -ECANCELED);
        trace_mute_guest_errors(false);
        g_assert(!dev->parked);
    }
}

/* ---- reset ---- */

struct DeviceResetWaiter {
    DeviceResetDone *done;
    void *opaque;
    bool frees;                 /* device_destroy's: runs last */
};

const char *device_run_state_name(DeviceRunState st)
{
    static const char *const names[] = {
        [DEVICE_RUNNING] = "running",
        [DEVICE_PAUSED] = "paused",
        [DEVICE_RESETTING] = "resetting",
        [DEVICE_DELETING] = "deleting",
        [DEVICE_STOPPING] = "stopping",
        [DEVICE_STOPPED] = "stopped",
    };

    return names[st];
}

static void device_set_state(Device *dev, DeviceRunState st)
{
    if (dev->state != st) {
        trace_device_state(dev->id, device_run_state_name(dev->state),
                           device_run_state_name(st));
        dev->state = st;
    }
}

static void device_reset_finish(Device *dev)
{
    GSList *waiters = g_slist_reverse(dev->reset_waiters);

    dev->reset_waiters = NULL;
    dev->quiesced = false;
    trace_device_reset_done(dev->id, dev->reset_kind);
    if (dev->cls->reset) {
        dev->cls->reset(dev, dev->reset_kind);
    }
    if (dev->reset_kind == DEVICE_RESET_FUNCTION) {
        /* A function reset ends a stop (the migration is over). */
        dev->stop_held = false;
        dev->stop_done = NULL;
    }
    if (dev->state == DEVICE_RESETTING && dev->stop_held) {
        device_set_state(dev, DEVICE_STOPPING);
        loop_bh_schedule(dev->stop_bh);
    } else if (dev->state == DEVICE_RESETTING) {
        device_set_state(dev, dev->paused ? DEVICE_PAUSED : DEVICE_RUNNING);
    }
    for (GSList *l = waiters; l; l = l->next) {
        DeviceResetWaiter *w = l->data;

        if (w->done && !w->frees) {
            w->done(dev, w->opaque);
        }
    }
    if (dev->cls->is_pci && transport_hooks && dev->state != DEVICE_DELETING) {
        transport_hooks->reset_done(dev);      /* the client may talk again */
    }
    /* device_destroy's waiter frees @dev: it goes last. */
    for (GSList *l = waiters; l; l = l->next) {
        DeviceResetWaiter *w = l->data;

        if (w->frees) {
            w->done(dev, w->opaque);
        }
        g_free(w);
    }
    g_slist_free(waiters);
}

/* Steps 2-4, from the loop (never from inside the worker). */
static void device_reset_continue(Device *dev)
{
    if (!dev->reset_waiters) {
        return;
    }
    device_worker_cancel(dev);
    if (!dev->quiesced) {
        dev->quiesced = true;
        if (dev->cls->quiesce) {
            dev->cls->quiesce(dev, dev->reset_kind);
        }
    }
    if (dev->inflight) {
        trace_device_reset_wait(dev->id, dev->inflight);
        return;                 /* device_release() comes back */
    }
    device_reset_finish(dev);
}

static void device_reset_bh(void *opaque)
{
    device_reset_continue(opaque);
}

static void device_reset_start(Device *dev, DeviceResetKind kind,
                               DeviceResetDone *done, void *opaque,
                               bool frees)
{
    DeviceResetWaiter *w = g_new0(DeviceResetWaiter, 1);
    bool started = dev->reset_waiters != NULL;

    trace_device_reset(dev->id, kind, device_run_state_name(dev->state));
    w->done = done;
    w->opaque = opaque;
    w->frees = frees;
    dev->reset_waiters = g_slist_prepend(dev->reset_waiters, w);
    if (!started) {
        dev->reset_kind = kind;
    } else if (kind == DEVICE_RESET_FUNCTION) {
        dev->reset_kind = kind;
    }
    if (dev->state != DEVICE_DELETING) {
        device_set_state(dev, DEVICE_RESETTING);
    }
    if (started) {
        return;                 /* joins the reset in progress */
    }
    if (device_in_worker(dev)) {
        /* The item that asked must return first. */
        if (!dev->reset_bh) {
            dev->reset_bh = loop_bh_new(dev->loop, device_reset_bh, dev);
        }
        loop_bh_schedule(dev->reset_bh);
        return;
    }
    device_reset_continue(dev);
}

void device_reset(Device *dev, DeviceResetKind kind, DeviceResetDone *done,
                  void *opaque)
{
    device_reset_start(dev, kind, done, opaque, false);
}

void device_release(Device *dev)
{
    g_assert(dev->inflight > 0);
    if (--dev->inflight == 0 && dev->reset_waiters && dev->quiesced) {
        /* Not from here: the caller (a completion) still runs. */
        if (!dev->reset_bh) {
            dev->reset_bh = loop_bh_new(dev->loop, device_reset_bh, dev);
        }
        loop_bh_schedule(dev->reset_bh);
    }
    if (dev->inflight == 0 && dev->state == DEVICE_STOPPING) {
        loop_bh_schedule(dev->stop_bh);     /* the same: not from here */
    }
}

/* ---- stop (migration, upgrade) ---- */

/* STOPPING becomes STOPPED once nothing is in flight and no item runs. */
static void device_stop_check(Device *dev)
{
    void (*done)(Device *dev, int ret, void *opaque) = dev->stop_done;

    if (dev->state != DEVICE_STOPPING || dev->inflight || dev->worker_busy) {
        /* not yet */
    } else if (!dev->stop_flushing && dev->cls->stop_flush) {
        dev->stop_flushing = true;
        dev->stop_error = 0;
        dev->cls->stop_flush(dev);      /* holds the device while it runs */
        if (!dev->inflight) {
            loop_bh_schedule(dev->stop_bh);
        }
        return;
    } else {
        device_set_state(dev, DEVICE_STOPPED);
    }
    if (dev->state == DEVICE_STOPPED && done) {
        dev->stop_done = NULL;
        done(dev, dev->stop_error, dev->stop_opaque);
    }
}

void device_stop_flush_done(Device *dev, int ret)
{
    if (ret < 0 && !dev->stop_error) {
        dev->stop_error = ret;
    }
}

static void device_stop_bh(void *opaque)
{
    device_stop_check(opaque);
}

void device_stop(Device *dev, DeviceStopFor what,
                 void (*done)(Device *dev, int ret, void *opaque),
                 void *opaque)
{
    bool was_running = dev->state == DEVICE_RUNNING;

    g_assert(!dev->stop_done && dev->state != DEVICE_DELETING);
    if (!dev->stop_bh) {
        dev->stop_bh = loop_bh_new(dev->loop, device_stop_bh, dev);
    }
    if (dev->state != DEVICE_STOPPED) {
        dev->stop_flushing = false;     /* a new stop flushes again */
    }
    dev->stop_held = true;
    dev->stop_for = what;
    dev->stop_done = done;
    dev->stop_opaque = opaque;
    if (dev->state == DEVICE_RESETTING) {
        return;         /* the reset's end goes on to STOPPING */
    }
    if (dev->state != DEVICE_STOPPED) {
        device_set_state(dev, DEVICE_STOPPING);
    }
    if (was_running && dev->cls->run_state_changed) {
        dev->cls->run_state_changed(dev, false);
    }
    /* Not from here even when idle: the caller finishes first. */
    loop_bh_schedule(dev->stop_bh);
}

void device_start(Device *dev)
{
    dev->stop_held = false;
    dev->stop_done = NULL;
    if (dev->state != DEVICE_STOPPING && dev->state != DEVICE_STOPPED) {
        return;
    }
    device_set_state(dev, dev->paused ? DEVICE_PAUSED : DEVICE_RUNNING);
    if (!dev->paused && dev->cls->run_state_changed) {
        dev->cls->run_state_changed(dev, true);
    }
    if (!dev->worker_busy && !g_queue_is_empty(&dev->work)) {
        device_worker_enter(dev);   /* what was scheduled while STOPPED */
    }
}

/* ---- pause ---- */

void device_pause(Device *dev)
{
    dev->paused = true;
    if (dev->state == DEVICE_RUNNING) {
        device_set_state(dev, DEVICE_PAUSED);
        if (dev->cls->run_state_changed) {
            dev->cls->run_state_changed(dev, false);
        }
    }
}

void device_resume(Device *dev)
{
    dev->paused = false;
    if (dev->state == DEVICE_PAUSED) {
        device_set_state(dev, DEVICE_RUNNING);
        if (dev->cls->run_state_changed) {
            dev->cls->run_state_changed(dev, true);
        }
    }
}

static void device_pause_on_loop(void *opaque)
{
    device_pause(opaque);
}

static void device_resume_on_loop(void *opaque)
{
    device_resume(opaque);
}

static void pause_one(Device *dev, void *opaque)
{
    loop_run_sync(dev->loop, *(bool *)opaque ? device_pause_on_loop
                                             : device_resume_on_loop, dev);
}

void device_pause_all(void)
{
    bool pause = true;

    all_paused = true;
    device_foreach(pause_one, &pause);
}

void device_resume_all(void)
{
    bool pause = false;

    all_paused = false;
    device_foreach(pause_one, &pause);
}

bool device_all_paused(void)
{
    return all_paused;
}

/* ---- delete ---- */

/*
 * Deleting runs in steps on two threads: children go first (each its own
 * delete), then the device resets on its loop, then on the main thread it
 * leaves the registry, with a last call on its loop to unrealize.
 */
typedef struct DeviceDestroy {
    Device *dev;
    void (*done)(const char *id, void *opaque);
    void *opaque;
    unsigned children;          /* still being deleted */
} DeviceDestroy;

static void device_unrealize_on_loop(void *opaque)
{
    Device *dev = opaque;

    if (dev->cls->is_pci && transport_hooks) {
        transport_hooks->detach(dev);
    }
    if (dev->realized && dev->cls->unrealize) {
        dev->cls->unrealize(dev);
    }
    loop_bh_delete(dev->reset_bh);
    loop_bh_delete(dev->stop_bh);
    coroutine_free(dev->worker);
    dev->reset_bh = NULL;
    dev->worker = NULL;
}

/* Main thread: the device is reset; it goes. */
static void device_destroy_complete(void *opaque)
{
    DeviceDestroy *d = opaque;
    Device *dev = d->dev;
    g_autofree char *id = g_strdup(dev->id);

    loop_run_sync(dev->loop, device_unrealize_on_loop, dev);
    devices = g_list_remove(devices, dev);
    iovd_config_deleted(dev);
    if (dev->iothread) {
        iothread_unref(dev->iothread);
    }
    trace_device_destroyed(id);
    device_free(dev);
    if (d->done) {
        d->done(id, d->opaque);
    }
    g_free(d);
}

/* The device's loop: its last reset is done. */
static void device_destroy_finish(Device *dev, void *opaque)
{
    if (loop_in_thread(loop_main())) {
        device_destroy_complete(opaque);
    } else {
        loop_post(loop_main(), device_destroy_complete, opaque);
    }
}

static void device_destroy_reset(void *opaque)
{
    DeviceDestroy *d = opaque;

    device_reset_start(d->dev, DEVICE_RESET_FUNCTION, device_destroy_finish,
                       d, true);
}

static void device_mark_deleting(void *opaque)
{
    device_set_state(opaque, DEVICE_DELETING);
}

static void device_child_gone(const char *id, void *opaque)
{
    DeviceDestroy *d = opaque;

    if (--d->children == 0) {
        loop_run_sync(d->dev->loop, device_destroy_reset, d);
    }
}

void device_destroy(Device *dev, void (*done)(const char *id, void *opaque),
                    void *opaque)
{
    DeviceDestroy *d = g_new0(DeviceDestroy, 1);
    g_autoptr(GPtrArray) children = g_ptr_array_new();

    d->dev = dev;
    d->done = done;
    d->opaque = opaque;
    loop_run_sync(dev->loop, device_mark_deleting, dev);
    for (GList *l = devices; l; l = l->next) {
        Device *child = l->data;

        if (child->parent == dev && child->state != DEVICE_DELETING) {
            g_ptr_array_add(children, child);
        }
    }
    if (!children->len) {
        loop_run_sync(dev->loop, device_destroy_reset, d);
        return;
    }
    /*
     * Children first (a namespace before its controller).  The last one
     * gone may free @dev and @d before this returns: touch neither.
     */
    d->children = children->len;
    for (guint i = 0; i < children->len; i++) {
        device_destroy(g_ptr_array_index(children, i), device_child_gone, d);
    }
}

static void count_deleting(Device *dev, void *opaque)
{
    (*(unsigned *)opaque)++;
}

unsigned device_count(void)
{
    unsigned n = 0;

    device_foreach(count_deleting, &n);
    return n;
}

static Device *device_next_root(void)
{
    for (GList *l = devices; l; l = l->next) {
        Device *dev = l->data;

        if (!dev->parent && dev->state != DEVICE_DELETING) {
            return dev;
        }
    }
    return NULL;
}

void device_destroy_all(void)
{
    Device *dev;

    /* Parents take their children along; any may be freed at once. */
    while ((dev = device_next_root())) {
        device_destroy(dev, NULL, NULL);
    }
    /*
     * The loops keep running (requests in flight complete) until every
     * device is gone.  Not nested: shutdown calls this from the top.
     */
    while (devices) {
        loop_iterate(loop_main(), true);
    }
}

static void startup_check_one(Device *dev, void *opaque)
{
    if (dev->cls->startup_check) {
        dev->cls->startup_check(dev);
    }
}

void device_startup_checks(void)
{
    device_foreach(startup_check_one, NULL);
}
