/*
 * Block layer internals: the driver interface.
 */
#ifndef BLOCK_BLOCK_INT_H
#define BLOCK_BLOCK_INT_H

#include "block/block.h"

typedef struct BlockDriver {
    const char *name;
    size_t opaque_size;         /* driver state, at BlockNode.opaque */
    const PropDef *props;       /* driver options, fields in the state */
    bool (*open)(BlockNode *bs, GError **errp);
    void (*close)(BlockNode *bs);
    /*
     * Optional: a device attaches @blk (on blk_loop(blk)'s thread): set up
     * what completes its requests there (blk_set_drv_state).  detach runs
     * there too, with nothing in flight.
     */
    bool (*attach)(BlockNode *bs, BlockBackend *blk, GError **errp);
    void (*detach)(BlockNode *bs, BlockBackend *blk);
    /*
     * Take @req (its fields are set; req->blk says whose loop completes
     * it).  It may go out at once or at the end of the loop iteration.
     * 0/-errno.
     */
    int (*submit)(BlockNode *bs, BlockReq *req);
    bool (*truncate)(BlockNode *bs, uint64_t size, GError **errp);
    /*
     * Optional: the node's size changed (truncate succeeded); on @blk's
     * loop, for each attached backend, before its device is told.
     */
    void (*resized)(BlockNode *bs, BlockBackend *blk);
    int (*flush_sync)(BlockNode *bs);
} BlockDriver;

struct BlockNode {
    const BlockDriver *drv;
    char *node_name;
    char *filename;             /* for query-block, may be NULL */
    uint64_t size;
    bool read_only;
    bool direct;
    uint32_t align;             /* direct I/O alignment */
    /*
     * Set by the driver's open: a write completed here is seen, without a
     * flush, by another process of this host that opens the node afresh
     * (the host's page cache or the device holds it).  Not NBD (another
     * connection is promised a write only after a flush) nor librbd (its
     * cache is this process's).
     */
    bool host_coherent;
    char *throttle_group;       /* its backends join this group */
    BlockStats stats;           /* updated with atomics: several loops */
    BlockHistogram hist[BLK_HIST__MAX];     /* the same */
    GList *backends;            /* attached BlockBackends */
    void *opaque;
};

/* Register the throttle-group object type (blk_init). */
void blk_throttle_group_init(void);

/* Drivers call this on the backend's loop when a request is done. */
void blk_req_complete(BlockReq *req, int ret);
struct EventLoop *blk_loop(BlockBackend *blk);
void *blk_drv_state(BlockBackend *blk);
void blk_set_drv_state(BlockBackend *blk, void *state);
void blk_driver_register(const BlockDriver *drv);
/* A driver's connection for @blk went down (@why) or came back. */
void blk_conn_event(BlockBackend *blk, bool connected, const char *why);

#endif
