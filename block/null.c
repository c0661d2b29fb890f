/*
 * The null driver: a device of size= bytes; reads return zeros, writes are
 * dropped.  For benchmarks: it measures everything but the storage.
 */
#include "block/block-int.h"
#include "util/loop.h"

typedef struct NullState {
    uint64_t size;
    bool read_zeroes;
    BlockReq *head, **tail;     /* completed on the next loop iteration */
    LoopBH *bh;
} NullState;

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
    NullState *s = opaque;
    BlockReq *req = s->head;

    s->head = NULL;
    s->tail = &s->head;
    while (req) {
        BlockReq *next = req->next;

        blk_req_complete(req, 0);
        req = next;
    }
}

static int null_submit(BlockNode *bs, BlockReq *req)
{
    NullState *s = bs->opaque;

    if (req->op == BLK_OP_READ && s->read_zeroes) {
        for (unsigned i = 0; i < req->niov; i++) {
            memset(req->iov[i].iov_base, 0, req->iov[i].iov_len);
        }
    }
    req->next = NULL;
    *s->tail = req;
    s->tail = &req->next;
    loop_bh_schedule(s->bh);
    return 0;
}

static bool null_open(BlockNode *bs, GError **errp)
{
    NullState *s = bs->opaque;

    s->size = QEMU_ALIGN_DOWN(s->size, 512);
    bs->size = s->size;
    s->tail = &s->head;
    s->bh = loop_bh_new(bs->loop, null_complete, s);
    return true;
}

static void null_close(BlockNode *bs)
{
    NullState *s = bs->opaque;

    null_complete(s);
    loop_bh_delete(s->bh);
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
    .submit = null_submit,
    .truncate = null_truncate,
};

static void __attribute__((constructor)) null_register(void)
{
    blk_driver_register(&null_driver);
}
