/*
 * Device registry and life cycle.  A device type is a const DeviceClass
 * (name, state size, property table, realize/unrealize/reset); an instance
 * is a state struct whose first member is a Device (PCI devices embed a
 * PCIDevice, which starts with a Device).  No object system beyond that.
 *
 * Loops and work.  A device is owned by one event loop (dev->loop: the
 * main loop or an iothread's) and everything it does runs there.  Its
 * work (bottom halves and timers made with device_bh_new() and
 * device_timer_new()) runs in the device's worker: a coroutine, so that a
 * DMA that waits for the VMM's reply (guest memory not shared) parks the
 * work while the loop goes on serving everything else, register accesses
 * of this very device included.  Work items run one at a time, in order;
 * while one is parked the others wait.  So:
 *
 *   - register (MMIO, config) handlers and backend callbacks (block
 *     completions, net writable, ...) only record and schedule work; they
 *     never touch guest memory with pci_dma_read/write;
 *   - work items may: pci_dma_read/write can park them;
 *   - a frame from the net layer is delivered inside the worker with
 *     device_run_now().
 *
 * Life cycle (DeviceRunState).  The one reset function of a device
 * (DeviceClass.reset) serves the device's own resets (NVMe CC.EN 1 -> 0,
 * virtio status 0, e1000 CTRL.RST) and function resets (FLR, the VMM's
 * DEVICE_RESET, client loss, teardown), and device_reset() runs it the
 * same way for all devices and all callers:
 *
 *   1. the state becomes RESETTING: no work item starts; during a function
 *      reset the transport holds the client's messages, during the
 *      device's own reset its registers keep being served (they tell the
 *      driver when the reset is done: CSTS.RDY, device_status);
 *   2. a work item parked in a DMA is cancelled: its DMA fails with
 *      -ECANCELED (and so does every further one until the item returns),
 *      so it unwinds before the reset touches the device's state;
 *   3. DeviceClass.quiesce fails what waits without holding the backend
 *      (throttled or held block requests, completions not yet posted);
 *   4. once no request holds guest memory (device_hold/device_release),
 *      DeviceClass.reset runs, the device returns to RUNNING (or PAUSED)
 *      and whoever asked is told.
 *
 * Steps 2-4 run at once when they can; only waiting for requests in
 * flight makes a reset asynchronous.
 */
#ifndef HW_CORE_DEVICE_H
#define HW_CORE_DEVICE_H

#include "util/osdep.h"
#include "hw/core/props.h"

typedef struct Device Device;
typedef struct DeviceClass DeviceClass;
typedef struct DeviceBH DeviceBH;
typedef struct DeviceTimer DeviceTimer;
typedef struct StatsCollector StatsCollector;
typedef struct StatsSchema StatsSchema;
struct EventLoop;
struct StateWriter;
struct StateReader;
struct Coroutine;
struct IOThread;

typedef enum DeviceResetKind {
    /* The device's own reset: PCI configuration stays as it is. */
    DEVICE_RESET_DEVICE,
    /* The whole function: FLR, DEVICE_RESET, client loss, teardown. */
    DEVICE_RESET_FUNCTION,
} DeviceResetKind;

typedef enum DeviceRunState {
    /* Realized: registers are served and work runs. */
    DEVICE_RUNNING,
    /*
     * Monitor 'stop' or a backend's stop policy: registers are served and
     * work runs, but the device fetches no new request
     * (device_fetch_allowed()); requests in flight complete.
     */
    DEVICE_PAUSED,
    /*
     * A reset waits for requests in flight: no work item runs,
     * completions only release their requests; a function reset also
     * holds the client's messages.
     */
    DEVICE_RESETTING,
    /* device_destroy(): as RESETTING, then unrealized and freed. */
    DEVICE_DELETING,
    /*
     * device_stop() (live migration, upgrade): as PAUSED, until nothing
     * is in flight and no work item runs; then STOPPED.
     */
    DEVICE_STOPPING,
    /*
     * Nothing in flight and no work runs: the device's state holds still
     * and can be saved or loaded.  Registers are still served; the work
     * they schedule waits for device_start().  A function reset ends it.
     */
    DEVICE_STOPPED,
} DeviceRunState;

/* Who goes on from a stopped device's state: what its stop flushes. */
typedef enum DeviceStopFor {
    DEVICE_STOP_MIGRATE,        /* maybe another host: every backend */
    DEVICE_STOP_UPGRADE,        /* a process of this host: what it would
                                 * not see otherwise */
} DeviceStopFor;

struct DeviceClass {
    const char *name;           /* "nvme", "virtio-blk-pci", ... */
    const char *desc;
    size_t instance_size;
    bool is_pci;                /* a PCI function served over a socket */
    const PropDef *base_props;  /* e.g. pci_common_props (may be NULL) */
    const PropDef *props;       /* driver properties, PROP_DEF_END-terminated */
    /* Make the device ready; properties are already set. */
    bool (*realize)(Device *dev, GError **errp);
    /* Undo realize (after the last reset and the transport's detach). */
    void (*unrealize)(Device *dev);
    /*
     * Optional, step 3 of a reset: fail or drop what waits without the
     * backend holding it (held by a stop policy, completed but not yet
     * posted; waiting for a throttle too when the function resets), so
     * that what is in flight drains.
     */
    void (*quiesce)(Device *dev, DeviceResetKind kind);
    /*
     * The one reset (step 4): nothing is in flight and no work runs;
     * bring the device to its state after @kind.
     */
    void (*reset)(Device *dev, DeviceResetKind kind);
    /* Optional: the device entered (false) or left (true) PAUSED. */
    void (*run_state_changed)(Device *dev, bool running);
    /*
     * Optional: the id of the device this one belongs to (an NVMe
     * namespace's controller), read from its properties before realize;
     * it then runs on its parent's loop.
     */
    const char *(*parent_id)(Device *dev);
    /*
     * Optional: once the command line's devices all exist, warn about a
     * configuration that is legal but rarely meant (an NVMe controller
     * without a namespace).
     */
    void (*startup_check)(Device *dev);
    /*
     * Optional: the statistics this type reports (hw/core/stats.h), a
     * NULL-terminated list of schemas, and the function that reports them
     * (on the device's loop).
     */
    const StatsSchema *const *stats;
    void (*get_stats)(Device *dev, StatsCollector *c);
    /*
     * Optional (live migration and upgrade; a PCI device's through
     * pci_device_save_state()): write the device's own state as sections
     * of @w, and read it back into a device realized with the same
     * properties.  The device is STOPPED for both.  load_state re-arms
     * what the state implies; work resumes with device_start().
     */
    void (*save_state)(Device *dev, struct StateWriter *w);
    bool (*load_state)(Device *dev, struct StateReader *r, GError **errp);
    /*
     * Optional, the last step of device_stop(): nothing is in flight;
     * flush the device's writable backends (a write the guest saw
     * acknowledged may sit in a cache that the state's next owner, on
     * another host or in another process, does not share) -- for
     * DEVICE_STOP_UPGRADE only those that are not blk_host_coherent().
     * Each flush holds the device (pci_dma_hold) while it runs and
     * reports its result with device_stop_flush_done() before the
     * release.
     */
    void (*stop_flush)(Device *dev);
};

typedef void DeviceResetDone(Device *dev, void *opaque);

typedef struct DeviceResetWaiter DeviceResetWaiter;

struct Device {
    const DeviceClass *cls;
    char *id;
    Device *parent;             /* e.g. the NVMe controller of an nvme-ns */
    struct EventLoop *loop;     /* the loop that owns it (main or iothread) */
    char *iothread_id;          /* property iothread= */
    struct IOThread *iothread;  /* NULL: the main loop */
    DeviceRunState state;

    /* Private to hw/core/device.c. */
    bool realized;
    bool paused;                /* state to return to after a reset */
    unsigned inflight;          /* requests holding guest memory */
    /* The worker. */
    struct Coroutine *worker;
    GQueue work;                /* of DeviceWork, due to run */
    bool worker_busy;           /* inside an item (running or parked) */
    bool parked;                /* stopped in device_park() */
    bool work_cancelled;        /* the current item was cancelled */
    int park_result;
    void (*park_cancel)(void *opaque);
    void *park_opaque;
    struct LoopBH *reset_bh;    /* a reset asked from inside the worker */
    /* The reset in progress. */
    DeviceResetKind reset_kind;
    bool quiesced;
    GSList *reset_waiters;      /* of DeviceResetWaiter */
    /* Stopped by device_stop() until device_start() or a function reset. */
    bool stop_held;
    bool stop_flushing;         /* stop_flush() ran for this stop */
    DeviceStopFor stop_for;     /* this stop's */
    int stop_error;             /* its first failure, -errno */
    /* Who is told once STOPPED. */
    void (*stop_done)(Device *dev, int ret, void *opaque);
    void *stop_opaque;
    struct LoopBH *stop_bh;
};

/* ---- classes and the registry ---- */

void device_class_register(const DeviceClass *cls);

/* The name traces and errors give @dev: its id, else its class's name. */
static inline const char *device_id(Device *dev)
{
    return dev->id ? dev->id : dev->cls->name;
}

/*
 * @dev as an instance of @cls: the checked downcast behind each device's
 * cast macro (E1000(dev), NVME(dev), ...).  A mismatch is a bug: abort.
 */
static inline void *device_check(Device *dev, const DeviceClass *cls)
{
    g_assert(dev->cls == cls);
    return dev;
}
const DeviceClass *device_class_find(const char *name);
void device_class_foreach(void (*fn)(const DeviceClass *cls, void *opaque),
                          void *opaque);

/*
 * Create, configure and realize a device from keyval options
 * ("driver=nvme,id=n0,..."), as -device and device_add do.  Errors name the
 * driver and the offending key.  A device created while devices are
 * paused starts PAUSED.
 */
Device *device_create(Keyval *kv, GError **errp);
/* The property tables of @cls in lookup order (common, base, driver). */
unsigned device_class_props(const DeviceClass *cls, const PropDef *tabs[3]);
/* Find a property of @dev by name, and the table it lives in. */
const PropDef *device_find_prop(Device *dev, const char *name);
/* Call @fn for each device whose parent is @parent. */
void device_foreach_child(Device *parent,
                          void (*fn)(Device *dev, void *opaque),
                          void *opaque);
/*
 * Start deleting @dev (and its children): a function reset, then the
 * transport lets go, then unrealize and free.  @done (may be NULL) runs
 * when it is gone.  Asynchronous when requests are in flight.
 */
void device_destroy(Device *dev, void (*done)(const char *id, void *opaque),
                    void *opaque);
Device *device_find(const char *id);
/*
 * Run @fn(@dev, @opaque) on @dev's loop and wait for it: how the monitor
 * (main thread) reads or changes a device that runs on an iothread.
 */
void device_run_sync(Device *dev, void (*fn)(Device *dev, void *opaque),
                     void *opaque);
void device_foreach(void (*fn)(Device *dev, void *opaque), void *opaque);
/* Destroy every device, children first, and wait until all are gone
 * (shutdown: the main loop keeps running meanwhile). */
void device_destroy_all(void);
/* Run every device's startup_check (after the command line's devices). */
void device_startup_checks(void);
/*
 * Report @dev's statistics into @c: its transport's, then its type's.
 * On @dev's loop (hw/core/stats.c calls it through device_run_sync).
 */
void device_report_stats(Device *dev, StatsCollector *c);
/* Call @fn for every schema of every type and of the transport
 * (duplicates included). */
void device_foreach_stats_schema(void (*fn)(const StatsSchema *s,
                                            void *opaque),
                                 void *opaque);
/* Number of devices (DELETING ones included). */
unsigned device_count(void);

/* Common properties of every device: id. */
extern const PropDef device_common_props[];

/* ---- reset and run state ---- */

/*
 * Reset @dev (see the top of this file).  @done (may be NULL) runs once
 * the device is reset; a reset asked while one is in progress joins it
 * (the stronger kind wins).  Callable from anywhere on the device's loop,
 * from its own work items too (then it starts once the item returns).
 */
void device_reset(Device *dev, DeviceResetKind kind, DeviceResetDone *done,
                  void *opaque);
static inline bool device_resetting(Device *dev)
{
    return dev->state == DEVICE_RESETTING || dev->state == DEVICE_DELETING;
}
/* A function reset is under way: the client's messages wait. */
static inline bool device_function_resetting(Device *dev)
{
    return device_resetting(dev) && dev->reset_kind == DEVICE_RESET_FUNCTION;
}
/* May the device take new requests from the guest? (RUNNING only) */
static inline bool device_fetch_allowed(Device *dev)
{
    return dev->state == DEVICE_RUNNING;
}

/* Requests that hold guest memory: a reset waits for the last release. */
static inline void device_hold(Device *dev)
{
    dev->inflight++;
}
void device_release(Device *dev);

/*
 * Pause / resume one device (RUNNING <-> PAUSED); a device that is
 * resetting returns to the new state afterwards.
 */
void device_pause(Device *dev);
void device_resume(Device *dev);
/* Monitor 'stop' / 'cont': every device, and new ones follow. */
void device_pause_all(void);
void device_resume_all(void);
bool device_all_paused(void);
const char *device_run_state_name(DeviceRunState st);

/*
 * Stop @dev for its state to be saved or loaded, for @what: it fetches no
 * new request, what is in flight completes (a reset in progress
 * finishes), its backends are flushed (DeviceClass.stop_flush), then it
 * is STOPPED
 * and @done(@dev, @ret, @opaque) runs, never inside this call; @ret is
 * 0, or the flush's -errno (the device is STOPPED either way).  The
 * device's own resets keep it stopped; a function reset ends the stop
 * (and @done is forgotten).  One stop at a time; on @dev's loop.
 */
void device_stop(Device *dev, DeviceStopFor what,
                 void (*done)(Device *dev, int ret, void *opaque),
                 void *opaque);
/* A stop_flush() flush finished with @ret (the device releases its hold). */
void device_stop_flush_done(Device *dev, int ret);
/* Leave STOPPING / STOPPED: back to RUNNING (or PAUSED); work resumes. */
void device_start(Device *dev);
static inline bool device_stopped(Device *dev)
{
    return dev->state == DEVICE_STOPPED;
}

/* ---- work ---- */

/* A bottom half that runs in @dev's worker. */
DeviceBH *device_bh_new(Device *dev, void (*cb)(void *opaque), void *opaque);
void device_bh_schedule(DeviceBH *bh);
void device_bh_cancel(DeviceBH *bh);
void device_bh_delete(DeviceBH *bh);        /* NULL is fine */

/* A timer whose callback runs in @dev's worker. */
DeviceTimer *device_timer_new(Device *dev, void (*cb)(void *opaque),
                              void *opaque);
void device_timer_mod(DeviceTimer *t, int64_t expire_ns);
void device_timer_del(DeviceTimer *t);
bool device_timer_pending(DeviceTimer *t);
void device_timer_free(DeviceTimer *t);     /* NULL is fine */

typedef enum DeviceRunResult {
    DEVICE_RUN_DONE,            /* @fn ran and returned */
    DEVICE_RUN_PARKED,          /* @fn started and parked; it ends later */
    DEVICE_RUN_BUSY,            /* nothing ran: another item is parked, or
                                 * the device is resetting */
} DeviceRunResult;
/*
 * Run @fn(@opaque) in @dev's worker now (a frame from the net layer).
 * From inside the worker it is a plain call.  When it parks, @opaque must
 * stay valid until it ends: point it at the device's own state.
 */
DeviceRunResult device_run_now(Device *dev, void (*fn)(void *opaque),
                               void *opaque);
/* True inside @dev's worker. */
bool device_in_worker(Device *dev);
/* Would device_run_now() run now (not BUSY)? */
static inline bool device_worker_idle(Device *dev)
{
    return !dev->worker_busy && (dev->state == DEVICE_RUNNING ||
                                 dev->state == DEVICE_PAUSED);
}

/*
 * For hw/pci: park the current work item until device_unpark().  Returns
 * what device_unpark() was given, or -ECANCELED when a reset cancelled
 * the wait (then @cancel(@opaque) was called first, to forget it).
 * Fails at once with -ECANCELED in an item that was cancelled, and with
 * -EWOULDBLOCK outside the worker.
 */
int device_park(Device *dev, void (*cancel)(void *opaque), void *opaque);
void device_unpark(Device *dev, int result);
/* True when the current work item was cancelled (it should unwind). */
static inline bool device_work_cancelled(Device *dev)
{
    return dev->work_cancelled;
}

/*
 * Hooks for the PCI transport: the core calls them when a PCI device is
 * realized, when its reset finished (the transport resumes the client's
 * messages), and when it is about to be freed, so hw/core never includes
 * the transport.  Set once at startup by hw/vfio-user.
 */
typedef struct DeviceTransportHooks {
    bool (*attach)(Device *dev, GError **errp);
    void (*reset_done)(Device *dev);
    void (*detach)(Device *dev);
    /* Optional: the transport's statistics of a PCI device (as above). */
    const StatsSchema *const *stats;
    void (*get_stats)(Device *dev, StatsCollector *c);
    /*
     * Live upgrade (hw/core/upgrade.c), on the device's loop, the device
     * STOPPED: stop / go on reading the client; write the device's state
     * and its connection's (the fds appended to @fds, an array of int);
     * load them in the new process (@fds[i] set to -1 for each taken).
     */
    void (*upgrade_pause)(Device *dev, bool pause);
    bool (*upgrade_save)(Device *dev, struct StateWriter *w, GArray *fds,
                         GError **errp);
    bool (*upgrade_load)(Device *dev, struct StateReader *r, int *fds,
                         unsigned nfds, GError **errp);
    /* Before device @id exists: take what its realize must reuse. */
    bool (*upgrade_prepare)(const char *id, struct StateReader *r, int *fds,
                            unsigned nfds, GError **errp);
} DeviceTransportHooks;
void device_set_transport_hooks(const DeviceTransportHooks *hooks);
const DeviceTransportHooks *device_transport_hooks(void);

#endif
