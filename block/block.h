/*
 * The block layer.  A node (-blockdev / blockdev-add) is a driver instance
 * (file, null) with a name, a size and statistics.  A device attaches to a
 * node through a BlockBackend, which carries the device's error policy and
 * I/O throttling and delivers completions as callbacks on the device's
 * loop (the backend's loop); a node may serve devices on several loops.
 * The backend's functions run on that loop; the control functions below
 * (resize, throttle, resume) may be called from the main thread: they run
 * their part on each backend's loop.
 *
 * Requests are asynchronous and allocation-free: the caller owns the
 * BlockReq (one per device request, from a per-queue pool) and its iovec
 * array, which points straight into guest memory.  Drivers batch what is
 * submitted during one loop iteration and send it at the start of the
 * next (one system call per iteration).
 *
 * A write completes (its callback runs with 0) only once the backend has
 * completed it; with BLK_REQ_FUA, or after a completed flush, it is on
 * stable storage.
 */
#ifndef BLOCK_BLOCK_H
#define BLOCK_BLOCK_H

#include "util/osdep.h"
#include "util/keyval.h"
#include "hw/core/props.h"

typedef struct BlockNode BlockNode;
typedef struct BlockBackend BlockBackend;
typedef struct BlockReq BlockReq;

typedef enum {
    BLK_OP_READ,
    BLK_OP_WRITE,
    BLK_OP_FLUSH,
    BLK_OP_DISCARD,
    BLK_OP_WRITE_ZEROES,
    BLK_OP__MAX
} BlockOp;

#define BLK_REQ_FUA         (1u << 0)   /* write through to stable storage */
#define BLK_REQ_MAY_UNMAP   (1u << 1)   /* write zeroes may deallocate */

/*
 * ret: 0 or -errno.  Runs on the backend's loop (the device's), never
 * inside the submit call.
 */
typedef void BlockCompletionFunc(void *opaque, int ret);

struct BlockReq {
    /* Set by the blk_* submit functions. */
    BlockBackend *blk;
    BlockOp op;
    uint32_t flags;
    uint64_t offset, bytes;
    struct iovec *iov;
    unsigned niov;
    BlockCompletionFunc *cb;
    void *opaque;

    /* Private to the block layer. */
    int64_t start_ns;
    int ret;
    void *bounce;               /* O_DIRECT with misaligned buffers */
    BlockReq *next;             /* plug / throttle / stopped queues */
    uint64_t drv[12];           /* driver state (e.g. a struct iocb) */
};

/* ---- nodes ---- */

typedef struct BlockStats {
    uint64_t ops[BLK_OP__MAX];
    uint64_t bytes[BLK_OP__MAX];
    uint64_t failed[BLK_OP__MAX];
    uint64_t total_ns[BLK_OP__MAX];
    uint64_t inflight;
    int64_t last_ns;            /* monotonic time of the last completion */
} BlockStats;

/*
 * A latency histogram (QEMU's block-latency-histogram-set): bin i counts
 * requests whose latency in ns lies in [boundaries[i-1], boundaries[i]),
 * the first from 0, the last to infinity.  n = 0: none kept.
 */
#define BLK_HIST_MAX_BOUNDARIES 64

typedef enum BlockHistKind {
    BLK_HIST_READ,
    BLK_HIST_WRITE,             /* writes and write-zeroes */
    BLK_HIST_FLUSH,
    BLK_HIST__MAX
} BlockHistKind;

typedef struct BlockHistogram {
    uint32_t n;
    uint64_t boundaries[BLK_HIST_MAX_BOUNDARIES];
    uint64_t bins[BLK_HIST_MAX_BOUNDARIES + 1];
} BlockHistogram;

/* Create a node from "driver=file,node-name=d0,filename=..." options. */
BlockNode *blk_node_create(Keyval *kv, GError **errp);
/* Fails when a device uses the node. */
bool blk_node_delete(BlockNode *bs, GError **errp);
BlockNode *blk_node_find(const char *name);
void blk_node_foreach(void (*fn)(BlockNode *bs, void *opaque), void *opaque);
const char *blk_node_name(BlockNode *bs);
const char *blk_node_driver(BlockNode *bs);
const char *blk_node_filename(BlockNode *bs);   /* may be NULL */
uint64_t blk_node_size(BlockNode *bs);
bool blk_node_read_only(BlockNode *bs);
bool blk_node_direct(BlockNode *bs);        /* cache.direct=on */
/* A snapshot of the node's statistics (devices on any loop update them). */
void blk_node_stats(BlockNode *bs, BlockStats *st);
/* Are @n histogram @boundaries usable (at most 64, strictly increasing)? */
bool blk_histogram_check(const uint64_t *boundaries, unsigned n,
                         GError **errp);
/*
 * Keep a histogram of @kind with @n strictly increasing @boundaries (ns;
 * n <= BLK_HIST_MAX_BOUNDARIES), its bins zeroed; n = 0 drops it.  From
 * the main loop, while requests complete on any loop: a sample that
 * completes during the change may land in a bin of either set.
 */
bool blk_node_set_histogram(BlockNode *bs, BlockHistKind kind,
                            const uint64_t *boundaries, unsigned n,
                            GError **errp);
/* A snapshot of the histogram of @kind (n = 0: none kept). */
void blk_node_histogram(BlockNode *bs, BlockHistKind kind,
                        BlockHistogram *out);
/* Change the size (file: ftruncate); attached devices are told. */
bool blk_node_resize(BlockNode *bs, uint64_t size, GError **errp);
/* Number of devices attached. */
unsigned blk_node_users(BlockNode *bs);
void blk_node_delete_all(void);
/* -blockdev help: the drivers and their options (@driver: that one). */
bool blk_print_help(const char *driver, FILE *out, GError **errp);

/* ---- backends (device side) ---- */

typedef enum {
    BLK_ERR_REPORT,             /* complete the request with the error */
    BLK_ERR_IGNORE,             /* complete it as a success */
    BLK_ERR_STOP,               /* hold it, pause the device, retry on cont */
    BLK_ERR_ENOSPC,             /* stop on ENOSPC, report otherwise */
} BlockErrorPolicy;

extern const char *const blk_error_policy_names[];

struct EventLoop;

typedef struct BlockDevOps {
    /* The node's size changed (block_resize). */
    void (*resize)(void *opaque);
    /* Error policy said stop: the device should stop fetching requests. */
    void (*stop)(void *opaque);
    /* Held requests were resubmitted (monitor 'cont'): fetch again. */
    void (*resume)(void *opaque);
    /* Optional: the last request in flight completed. */
    void (*drained)(void *opaque);
} BlockDevOps;

/*
 * Attach device @dev_id to node @name.  Fails when the node is in use and
 * either side did not ask for sharing.  A read-only node attaches too: the
 * device reports read-only to the guest and writes fail with -EROFS.
 */
BlockBackend *blk_attach(const char *name, const char *dev_id,
                         bool share_rw, struct EventLoop *loop,
                         GError **errp);
void blk_detach(BlockBackend *blk);
void blk_set_dev_ops(BlockBackend *blk, const BlockDevOps *ops, void *opaque);
void blk_set_error_policy(BlockBackend *blk, BlockErrorPolicy rerror,
                          BlockErrorPolicy werror);
BlockNode *blk_node(BlockBackend *blk);
uint64_t blk_getlength(BlockBackend *blk);
bool blk_is_read_only(BlockBackend *blk);
/*
 * What it wrote is seen by a new process of this host that opens the same
 * node, with no flush first (live upgrade hands over without one).
 */
bool blk_host_coherent(BlockBackend *blk);
/* Alignment the backend needs for direct I/O (1 when none). */
uint32_t blk_request_alignment(BlockBackend *blk);

/* Submission. 0 when queued; -errno (request not queued) otherwise. */
int blk_preadv(BlockBackend *blk, BlockReq *req, uint64_t offset,
               struct iovec *iov, unsigned niov, BlockCompletionFunc *cb,
               void *opaque);
int blk_pwritev(BlockBackend *blk, BlockReq *req, uint64_t offset,
                struct iovec *iov, unsigned niov, uint32_t flags,
                BlockCompletionFunc *cb, void *opaque);
int blk_flush(BlockBackend *blk, BlockReq *req, BlockCompletionFunc *cb,
              void *opaque);
int blk_pdiscard(BlockBackend *blk, BlockReq *req, uint64_t offset,
                 uint64_t bytes, BlockCompletionFunc *cb, void *opaque);
int blk_pwrite_zeroes(BlockBackend *blk, BlockReq *req, uint64_t offset,
                      uint64_t bytes, uint32_t flags,
                      BlockCompletionFunc *cb, void *opaque);

/* Requests submitted and not yet completed on this backend. */
unsigned blk_inflight(BlockBackend *blk);
/*
 * Fail the requests held by the stop policy (-EIO: a 'cont' may never
 * come) and, with @throttled, those a throttle holds (-ECANCELED), and
 * submit what a plug batched: then only requests that complete on their
 * own remain (a device reset waits for them).
 */
void blk_cancel_queued(BlockBackend *blk, bool throttled);
/* Synchronous flush of a node (exit only: it blocks). 0 or -errno. */
int blk_node_flush_sync(BlockNode *bs);
void blk_flush_all_sync(void);

/* Resume requests held by the stop policy (monitor 'cont'). */
void blk_resume_all(void);

/* Throttling (bytes/s and ops/s; 0 = unlimited). */
typedef struct BlockThrottle {
    uint64_t bps, bps_rd, bps_wr;
    uint64_t iops, iops_rd, iops_wr;
} BlockThrottle;
/*
 * A backend's own limits (block_set_io_throttle).  Refused for a backend
 * in a named throttle group: the group's limits are what it has (and
 * what blk_get_throttle reports).
 */
bool blk_set_throttle(BlockBackend *blk, const BlockThrottle *t,
                      GError **errp);
void blk_get_throttle(BlockBackend *blk, BlockThrottle *t);
/* A total limit and a per-direction one of the same kind: refused. */
bool blk_throttle_check(const BlockThrottle *t, GError **errp);

/*
 * Throttle groups (-object throttle-group, QEMU's model): the devices on
 * nodes made with throttle-group=ID share one set of limits, the sum of
 * their I/O held to it, turns taken round robin (util/throttle.h).
 * The limits are QEMU's ThrottleLimits: x-bps-total, x-bps-read,
 * x-bps-write, x-iops-total, x-iops-read, x-iops-write (or limits.NAME
 * without the x-).  Changed at run time with qom-set.
 */
struct ThrottleGroup;
/* Named group @id, or NULL. */
struct ThrottleGroup *blk_throttle_group_find(const char *id);
/* -object / object-add with qom-type throttle-group. */
bool blk_throttle_group_add(Keyval *kv, GError **errp);
/* Refused while a node names the group. */
bool blk_throttle_group_del(const char *id, GError **errp);
void blk_throttle_group_foreach(void (*fn)(struct ThrottleGroup *g,
                                           void *opaque), void *opaque);
/* Limits of any group: its rates as a BlockThrottle. */
void blk_throttle_group_config(struct ThrottleGroup *g,
                               const BlockThrottle *t);
void blk_throttle_group_limits(struct ThrottleGroup *g, BlockThrottle *t);
/* One limit by its property name ("x-bps-total" or "bps-total"). */
bool blk_throttle_group_set_prop(const char *id, const char *prop,
                                 const char *value, GError **errp);
/* Set one limit of @t by its property name (no combination check). */
bool blk_throttle_prop_set(BlockThrottle *t, const char *prop,
                           const char *value, GError **errp);
bool blk_throttle_group_get_prop(const char *id, const char *prop,
                                 uint64_t *value, GError **errp);
/* The named group of @blk's node, or NULL (own limits or none). */
const char *blk_throttle_group_name(BlockBackend *blk);
BlockBackend *blk_find_by_device(const char *dev_id);
const char *blk_device_id(BlockBackend *blk);
void blk_backend_foreach(void (*fn)(BlockBackend *blk, void *opaque),
                         void *opaque);

/* BLOCK_IO_ERROR hook for the monitor. */
typedef void BlockErrorEventFunc(BlockBackend *blk, BlockOp op, int err,
                                 const char *action);
void blk_set_error_event_hook(BlockErrorEventFunc *fn);
/*
 * BLOCK_DISCONNECTED / BLOCK_RECONNECTED hook: a network driver's
 * connection for @blk went down (@why) or came back.  On @blk's loop.
 */
typedef void BlockConnEventFunc(BlockBackend *blk, bool connected,
                                const char *why);
void blk_set_conn_event_hook(BlockConnEventFunc *fn);

/* -blockdev option table for iovd.c. */
void blk_init(void);

#endif
