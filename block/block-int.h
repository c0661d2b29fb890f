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
    /* Queue @req (its fields are set); submit now unless plugged. 0/-errno. */
    int (*submit)(BlockNode *bs, BlockReq *req);
    /* Submit what is queued (end of a plug). */
    void (*unplug)(BlockNode *bs);
    bool (*truncate)(BlockNode *bs, uint64_t size, GError **errp);
    int (*flush_sync)(BlockNode *bs);
} BlockDriver;

struct BlockNode {
    const BlockDriver *drv;
    char *node_name;
    char *filename;             /* for query-block, may be NULL */
    uint64_t size;
    bool read_only;
    bool direct;
    struct EventLoop *loop;     /* where the driver's completions run */
    uint32_t align;             /* direct I/O alignment */
    BlockStats stats;
    GList *backends;            /* attached BlockBackends */
    unsigned plugged;
    void *opaque;
};

/* Drivers call this on the main loop when a request is done. */
void blk_req_complete(BlockReq *req, int ret);
void blk_driver_register(const BlockDriver *drv);

#endif
