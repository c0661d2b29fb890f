/*
 * The null driver: a device of size= bytes; reads return zeros, writes are
 * dropped.  For benchmarks: it measures everything but the storage.
 * Requests complete on the next iteration of the backend's loop.
 */
#include "block/block-int.h"
#include "util/loop.h"

typedef struct NullState {
    uint64_t size;
    bool read_zeroes;
} NullState;

/* Per backend: its loop completes its requests. */
typedef struct NullQueue {
    BlockReq *head, **tail;
    LoopBH *bh;
} NullQueue;

static const PropDef null_props[] = {
    PROP_DEF_SIZE("size", NullState, size, "device size", .defval = "1G",
                  .min = 512),
    PROP_DEF_BOOL("read-zeroes", NullState, read_zeroes,
                  "fill read buffers with zeros (off: leave them as they "
                  "are, faster)", .defval = "on"),
    PROP_DEF_END
};

static void null_complete(void *opaque)
{
    NullQueue *q = opaque;
    BlockReq *req = q->head;

    q->head = NULL;
    q->tail = &q->head;
    while (req) {
        BlockReq *next = req->next;

        blk_req_complete(req, 0);
        req = next;
    }
}

static int null_submit(BlockNode *bs, BlockReq *req)
{
    NullState *s = bs->opaque;
    NullQueue *q = blk_drv_state(req->blk);

    if (req->op == BLK_OP_READ && s->read_zeroes) {
        for (unsigned i = 0; i < req->niov; i++) {
            memset(req->iov[i].iov_base, 0, req->iov[i].iov_len);
        }
    }
    req->next = NULL;
    *q->tail = req;
    q->tail = &req->next;
    loop_bh_schedule(q->bh);
    return 0;
}

static bool null_attach(BlockNode *bs, BlockBackend *blk, GError **errp)
{
    NullQueue *q = g_new0(NullQueue, 1);

    q->tail = &q->head;
    q->bh = loop_bh_new(blk_loop(blk), null_complete, q);
    blk_set_drv_state(blk, q);
    return true;
}

static void null_detach(BlockNode *bs, BlockBackend *blk)
{
    NullQueue *q = blk_drv_state(blk);

    g_assert(!q->head);
    loop_bh_delete(q->bh);
    g_free(q);
    blk_set_drv_state(blk, NULL);
}

static bool null_open(BlockNode *bs, GError **errp)
{
    NullState *s = bs->opaque;

    s->size = QEMU_ALIGN_DOWN(s->size, 512);
    bs->size = s->size;
    bs->host_coherent = true;           /* nothing is kept */
    return true;
}

static void null_close(BlockNode *bs)
{
}

static bool null_truncate(BlockNode *bs, uint64_t size, GError **errp)
{
    return true;
}

static const BlockDriver null_driver = {
    .name = "null",
    .opaque_size = sizeof(NullState),
    .props = null_props,
    .open = null_open,
    .close = null_close,
    .attach = null_attach,
    .detach = null_detach,
    .submit = null_submit,
    .truncate = null_truncate,
};

static void __attribute__((constructor)) null_register(void)
{
    blk_driver_register(&null_driver);
}
