/*
 * The rbd driver: a node backed by a Ceph RBD image, through librbd.
 * QEMU's options:
 *
 *   driver=rbd,node-name=N,pool=P,image=I[,conf=/etc/ceph/ceph.conf]
 *   [,user=admin]
 *
 * Opening the node connects to the cluster (the monitors in the conf
 * file, the user's keyring found the way the conf file says), opens the
 * pool and the image and reads its size.  Every device attached to the
 * node opens the image once more for itself: librbd reports that image's
 * completions through an eventfd (rbd_set_image_notification), which the
 * device's loop watches and drains with rbd_poll_io_events, so requests
 * complete on the device's loop, never on librbd's threads.
 *
 * librbd has no FUA: a FUA write is followed by a flush, and completes
 * when the flush does.  Resizing goes through librbd (rbd_resize); the
 * devices' handles learn the size from the cluster.
 */
#include "block/block-int.h"

#ifdef CONFIG_LIBRBD
#include "block/trace.h"
#include "util/error.h"
#include "util/loop.h"

#include <rados/librados.h>
#include <rbd/librbd.h>
#include <sys/eventfd.h>

#define RBD_RESIZE_WAIT_NS      (5 * 1000 * 1000 * 1000LL)

typedef struct RbdState {
    /* Options. */
    char *pool;
    char *image;
    char *conf;
    char *user;
    /* The node's handles (thread-safe in librados / librbd). */
    rados_t cluster;
    rados_ioctx_t io;
    rbd_image_t img;
} RbdState;

/* Per attached backend, on its loop. */
typedef struct RbdConn {
    BlockNode *bs;
    BlockBackend *blk;
    EventLoop *loop;
    rbd_image_t img;
    int efd;
} RbdConn;

/* Per request, in BlockReq.drv. */
typedef struct RbdReq {
    RbdConn *c;
    bool flush_after;           /* FUA: a flush once the write is done */
} RbdReq;

G_STATIC_ASSERT(sizeof(RbdReq) <= sizeof(((BlockReq *)0)->drv));

static const PropDef rbd_props[] = {
    PROP_DEF_STR("pool", RbdState, pool, "the pool", .mandatory = true),
    PROP_DEF_STR("image", RbdState, image, "the image", .mandatory = true),
    PROP_DEF_STR("conf", RbdState, conf, "Ceph configuration file",
                 .defval = "/etc/ceph/ceph.conf"),
    PROP_DEF_STR("user", RbdState, user, "the Ceph user (client.USER)",
                 .defval = "admin"),
    PROP_DEF_END
};

static inline RbdState *rbd_state(BlockNode *bs)
{
    return bs->opaque;
}

static inline RbdReq *rbd_req(BlockReq *req)
{
    return (RbdReq *)req->drv;
}

/* ---- requests ---- */

static int rbd_issue(RbdConn *c, BlockReq *req, bool flush)
{
    rbd_completion_t comp;
    int r;

    r = rbd_aio_create_completion(req, NULL, &comp);
    if (r < 0) {
        return r;
    }
    if (flush) {
        r = rbd_aio_flush(c->img, comp);
    } else {
        switch (req->op) {
        case BLK_OP_READ:
            r = rbd_aio_readv(c->img, req->iov, req->niov, req->offset, comp);
            break;
        case BLK_OP_WRITE:
            r = rbd_aio_writev(c->img, req->iov, req->niov, req->offset,
                               comp);
            break;
        case BLK_OP_FLUSH:
            r = rbd_aio_flush(c->img, comp);
            break;
        case BLK_OP_DISCARD:
            r = rbd_aio_discard(c->img, req->offset, req->bytes, comp);
            break;
        case BLK_OP_WRITE_ZEROES:
            r = rbd_aio_write_zeroes(c->img, req->offset, req->bytes, comp,
                                     0, 0);
            break;
        default:
            r = -EINVAL;
            break;
        }
    }
    if (r < 0) {
        rbd_aio_release(comp);
    }
    return r;
}

/* The eventfd: completions are waiting in librbd's queue. */
static void rbd_events(void *opaque)
{
    RbdConn *c = opaque;
    rbd_completion_t comps[64];
    eventfd_t v;
    int n;

    eventfd_read(c->efd, &v);
    while ((n = rbd_poll_io_events(c->img, comps, G_N_ELEMENTS(comps))) > 0) {
        for (int i = 0; i < n; i++) {
            BlockReq *req = rbd_aio_get_arg(comps[i]);
            ssize_t ret = rbd_aio_get_return_value(comps[i]);
            RbdReq *r = rbd_req(req);

            rbd_aio_release(comps[i]);
            if (ret >= 0 && r->flush_after) {
                r->flush_after = false;
                ret = rbd_issue(c, req, true);
                if (ret >= 0) {
                    continue;               /* completes with the flush */
                }
            }
            blk_req_complete(req, ret < 0 ? (int)ret : 0);
        }
    }
}

static int rbd_submit(BlockNode *bs, BlockReq *req)
{
    RbdConn *c = blk_drv_state(req->blk);
    RbdReq *r = rbd_req(req);

    r->c = c;
    r->flush_after = req->op == BLK_OP_WRITE && (req->flags & BLK_REQ_FUA);
    return rbd_issue(c, req, false);
}

/* ---- backends ---- */

static bool rbd_attach(BlockNode *bs, BlockBackend *blk, GError **errp)
{
    RbdState *s = rbd_state(bs);
    RbdConn *c = g_new0(RbdConn, 1);
    int r;

    c->bs = bs;
    c->blk = blk;
    c->loop = blk_loop(blk);
    c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->efd < 0) {
        error_setg_errno(errp, errno, "rbd: eventfd");
        g_free(c);
        return false;
    }
    r = rbd_open(s->io, s->image, &c->img, NULL);
    if (r >= 0) {
        r = rbd_set_image_notification(c->img, c->efd, EVENT_TYPE_EVENTFD);
    }
    if (r < 0) {
        error_setg(errp, "rbd: image '%s/%s': %s", s->pool, s->image,
                   g_strerror(-r));
        if (c->img) {
            rbd_close(c->img);
        }
        close(c->efd);
        g_free(c);
        return false;
    }
    loop_set_fd(c->loop, c->efd, rbd_events, NULL, c);
    blk_set_drv_state(blk, c);
    return true;
}

/* Nothing is in flight: flush librbd's cache, close the handle. */
static void rbd_detach(BlockNode *bs, BlockBackend *blk)
{
    RbdConn *c = blk_drv_state(blk);

    loop_set_fd(c->loop, c->efd, NULL, NULL, NULL);
    rbd_flush(c->img);
    rbd_close(c->img);
    close(c->efd);
    blk_set_drv_state(blk, NULL);
    g_free(c);
}

/* The image was resized through the node: wait until this handle knows. */
static void rbd_resized(BlockNode *bs, BlockBackend *blk)
{
    RbdConn *c = blk_drv_state(blk);
    int64_t deadline = clock_ns() + RBD_RESIZE_WAIT_NS;
    uint64_t size = 0;

    while (rbd_get_size(c->img, &size) == 0 && size != bs->size &&
           clock_ns() < deadline) {
        g_usleep(10 * 1000);
    }
}

/* ---- nodes ---- */

static void rbd_disconnect(RbdState *s)
{
    if (s->img) {
        rbd_close(s->img);
        s->img = NULL;
    }
    if (s->io) {
        rados_ioctx_destroy(s->io);
        s->io = NULL;
    }
    if (s->cluster) {
        rados_shutdown(s->cluster);
        s->cluster = NULL;
    }
}

static bool rbd_open_node(BlockNode *bs, GError **errp)
{
    RbdState *s = rbd_state(bs);
    const char *step;
    int r;

    step = "rados_create";
    r = rados_create(&s->cluster, s->user);
    if (r < 0) {
        s->cluster = NULL;
        goto fail;
    }
    step = s->conf;
    r = rados_conf_read_file(s->cluster, s->conf);
    if (r < 0) {
        goto fail;
    }
    step = "connecting to the cluster";
    r = rados_connect(s->cluster);
    if (r < 0) {
        goto fail;
    }
    step = "pool";
    r = rados_ioctx_create(s->cluster, s->pool, &s->io);
    if (r < 0) {
        s->io = NULL;
        goto fail;
    }
    step = "image";
    r = rbd_open(s->io, s->image, &s->img, NULL);
    if (r < 0) {
        s->img = NULL;
        goto fail;
    }
    r = rbd_get_size(s->img, &bs->size);
    if (r < 0) {
        goto fail;
    }
    bs->filename = g_strdup_printf("rbd:%s/%s", s->pool, s->image);
    trace_rbd_open(bs->node_name, bs->filename, bs->size);
    return true;

fail:
    error_setg(errp, "rbd: %s/%s: %s: %s", s->pool, s->image, step,
               g_strerror(-r));
    rbd_disconnect(s);
    return false;
}

static void rbd_close_node(BlockNode *bs)
{
    rbd_disconnect(rbd_state(bs));
}

static bool rbd_truncate(BlockNode *bs, uint64_t size, GError **errp)
{
    int r = rbd_resize(rbd_state(bs)->img, size);

    if (r < 0) {
        error_setg(errp, "rbd: resize: %s", g_strerror(-r));
        return false;
    }
    return true;
}

static int rbd_flush_sync(BlockNode *bs)
{
    return rbd_flush(rbd_state(bs)->img);
}

static const BlockDriver rbd_driver = {
    .name = "rbd",
    .opaque_size = sizeof(RbdState),
    .props = rbd_props,
    .open = rbd_open_node,
    .close = rbd_close_node,
    .attach = rbd_attach,
    .detach = rbd_detach,
    .submit = rbd_submit,
    .truncate = rbd_truncate,
    .resized = rbd_resized,
    .flush_sync = rbd_flush_sync,
};

static void __attribute__((constructor)) rbd_register(void)
{
    blk_driver_register(&rbd_driver);
}
#endif
