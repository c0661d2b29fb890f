/*
 * The file driver: raw images and block devices.
 *
 * A node is an open file.  Its I/O goes through the engine of the loop
 * that the device using it runs on (one engine per event loop, shared by
 * every file node used there): io_uring where the kernel has it, Linux AIO
 * (aio=native) otherwise, and a small worker pool for what neither takes
 * (misaligned O_DIRECT requests, short transfers, the slow write-zeroes,
 * aio=threads).  Requests are only queued while the loop runs its
 * callbacks; the engine submits them all at once from a before-poll hook,
 * one system call per loop iteration, and reaps completions that came
 * inline right then.  In a polling iothread a poller reaps the rest
 * without system calls.  Files are registered with the ring.
 *
 * A live upgrade hands the open files over (section "block-files": each
 * node's fd by node name): the new process uses the very file the old
 * one had, even one renamed, replaced or no longer reachable at its path.
 *
 * Files in memory (tmpfs, ramfs, hugetlbfs) are read and written right
 * in the loop: such a read or write is a copy that never waits for a
 * device, but the kernel cannot do it "without waiting" (no RWF_NOWAIT),
 * so io_uring would hand each one to a kernel worker thread and Linux AIO
 * would run it inside io_submit anyway.
 */
#include "block/block-int.h"
#include "block/trace.h"
#include "util/bitops.h"
#include "util/cmdline.h"
#include "util/error.h"
#include "util/log.h"
#include "util/loop.h"
#include "util/savestate.h"

#include <libaio.h>
#ifdef CONFIG_LIBURING
#include <liburing.h>
#endif
#include <linux/fs.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#define FILE_AIO_DEPTH 1024
#define FILE_URING_DEPTH 1024
#define FILE_URING_FILES 256    /* registered file slots per engine */

#ifndef RAMFS_MAGIC
#define RAMFS_MAGIC 0x858458f6
#endif
#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif
#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6
#endif

enum { FILE_AIO_NATIVE, FILE_AIO_THREADS, FILE_AIO_IO_URING };
static const char *const aio_names[] = {
    "native", "threads", "io_uring", NULL
};

typedef struct FileState {
    /* options */
    char *filename;
    int aio;                    /* FILE_AIO_* */

    int fd;
    bool in_memory;             /* tmpfs and the like: I/O in the loop */
} FileState;

/* The I/O engine of one event loop. */
typedef struct FileEngine {
    EventLoop *loop;
    unsigned refs;              /* backends using it */
    unsigned inflight;          /* submitted, not completed */

    GThreadPool *pool;          /* flush fallbacks, bounced and short I/O */
    GAsyncQueue *done;          /* BlockReq * finished by the pool */
    int pool_efd;

    io_context_t ctx;           /* Linux AIO, made on first use */
    int aio_efd;
    struct iocb *batch[FILE_AIO_DEPTH];
    unsigned nbatch;
    unsigned aio_inflight;

    BlockReq *inline_done;      /* done in the loop, to complete */
    LoopBH *done_bh;            /* ... here, and io_uring's inline ones */

#ifdef CONFIG_LIBURING
    struct io_uring ring;
    bool ring_ready;
    unsigned ring_queued;       /* prepared, not yet submitted */
    LoopPoller *poller;
    bool files_registered;
    unsigned long files_used[BITS_TO_LONGS(FILE_URING_FILES)];
#endif
} FileEngine;

/* What a backend keeps: its loop's engine, its file's slot there. */
typedef struct FileBackend {
    FileEngine *e;
    int slot;                   /* registered file index, or -1 */
} FileBackend;

/* Engines are made and dropped by the control path only. */
static GList *engines;

static const PropDef file_props[] = {
    PROP_DEF_STR("filename", FileState, filename, "image file or device",
                 .mandatory = true),
    PROP_DEF_ENUM("aio", FileState, aio, aio_names,
                  "io_uring (the default where the kernel has it), native "
                  "(Linux AIO) or threads",
#ifdef CONFIG_LIBURING
                  .defval = "io_uring"
#else
                  .defval = "native"
#endif
                  ),
    PROP_DEF_END
};

static inline FileState *fs_of(BlockNode *bs)
{
    return bs->opaque;
}

static inline FileBackend *fb_of(BlockReq *req)
{
    return blk_drv_state(req->blk);
}

static inline FileEngine *engine_of(BlockReq *req)
{
    return fb_of(req)->e;
}

/* The intrusive list of inline_done uses the request's driver area. */
static inline BlockReq **req_next(BlockReq *req)
{
    G_STATIC_ASSERT(sizeof(BlockReq *) <= sizeof(req->drv));
    return (BlockReq **)req->drv;
}

/* ---- the worker pool ---- */

static bool iov_aligned(BlockReq *req, uint32_t align)
{
    if (req->offset % align || req->bytes % align) {
        return false;
    }
    for (unsigned i = 0; i < req->niov; i++) {
        if ((uintptr_t)req->iov[i].iov_base % align ||
            req->iov[i].iov_len % align) {
            return false;
        }
    }
    return true;
}

static ssize_t full_pread(int fd, void *buf, size_t len, off_t off)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, off + done);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -errno;
        }
        if (n == 0) {
            memset((char *)buf + done, 0, len - done);  /* past EOF */
            break;
        }
        done += n;
    }
    return len;
}

static ssize_t full_pwrite(int fd, const void *buf, size_t len, off_t off)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = pwrite(fd, (const char *)buf + done, len - done,
                           off + done);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -errno;
        }
        done += n;
    }
    return len;
}

/* Misaligned I/O on an O_DIRECT fd: through an aligned bounce buffer. */
static int file_bounced_rw(BlockNode *bs, BlockReq *req)
{
    FileState *s = fs_of(bs);
    uint32_t al = bs->align;
    uint64_t start = QEMU_ALIGN_DOWN(req->offset, al);
    uint64_t end = QEMU_ALIGN_UP(req->offset + req->bytes, al);
    uint64_t len = end - start;
    uint8_t *buf;
    ssize_t r;
    size_t pos;

    if (posix_memalign((void **)&buf, MAX(al, 4096), len)) {
        return -ENOMEM;
    }
    if (req->op == BLK_OP_READ || start != req->offset ||
        end != req->offset + req->bytes) {
        r = full_pread(s->fd, buf, len, start);
        if (r < 0) {
            free(buf);
            return r;
        }
    }
    pos = req->offset - start;
    for (unsigned i = 0; i < req->niov; i++) {
        if (req->op == BLK_OP_READ) {
            memcpy(req->iov[i].iov_base, buf + pos, req->iov[i].iov_len);
        } else {
            memcpy(buf + pos, req->iov[i].iov_base, req->iov[i].iov_len);
        }
        pos += req->iov[i].iov_len;
    }
    r = 0;
    if (req->op == BLK_OP_WRITE) {
        r = full_pwrite(s->fd, buf, len, start);
        if (r >= 0 && (req->flags & BLK_REQ_FUA)) {
            r = fdatasync(s->fd) < 0 ? -errno : 0;
        }
    }
    free(buf);
    return r < 0 ? r : 0;
}

static int file_write_zeroes_slow(int fd, uint64_t off, uint64_t len)
{
    static const uint8_t zeros[65536];

    while (len) {
        size_t n = MIN(len, sizeof(zeros));
        ssize_t r = full_pwrite(fd, zeros, n, off);

        if (r < 0) {
            return r;
        }
        off += n;
        len -= n;
    }
    return 0;
}

static int file_rw_sync(BlockNode *bs, BlockReq *req)
{
    FileState *s = fs_of(bs);
    ssize_t n;

    if (bs->direct && !iov_aligned(req, bs->align)) {
        return file_bounced_rw(bs, req);
    }
    if (req->op == BLK_OP_READ) {
        n = preadv2(s->fd, req->iov, req->niov, req->offset, 0);
    } else {
        n = pwritev2(s->fd, req->iov, req->niov, req->offset,
                     (req->flags & BLK_REQ_FUA) ? RWF_DSYNC : 0);
    }
    if (n < 0) {
        return -errno;
    }
    if ((uint64_t)n != req->bytes) {
        /* Short: finish the rest the slow way. */
        return file_bounced_rw(bs, req);
    }
    return 0;
}

/* A thread of the pool: the request, synchronously. */
static void file_worker(gpointer data, gpointer user_data)
{
    BlockReq *req = data;
    FileEngine *e = user_data;
    BlockNode *bs = blk_node(req->blk);
    FileState *s = fs_of(bs);
    int r = 0;

    switch (req->op) {
    case BLK_OP_FLUSH:
        r = fdatasync(s->fd) < 0 ? -errno : 0;
        break;
    case BLK_OP_DISCARD:
        if (fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      req->offset, req->bytes) < 0) {
            /* Discard is a hint: unsupported is not an error. */
            r = (errno == EOPNOTSUPP || errno == ENOSYS) ? 0 : -errno;
        }
        break;
    case BLK_OP_WRITE_ZEROES:
        if ((req->flags & BLK_REQ_MAY_UNMAP) &&
            fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      req->offset, req->bytes) == 0) {
            r = 0;
        } else if (fallocate(s->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                             req->offset, req->bytes) == 0) {
            r = 0;
        } else {
            r = file_write_zeroes_slow(s->fd, req->offset, req->bytes);
        }
        if (r == 0 && (req->flags & BLK_REQ_FUA)) {
            r = fdatasync(s->fd) < 0 ? -errno : 0;
        }
        break;
    case BLK_OP_READ:
    case BLK_OP_WRITE:
        r = file_rw_sync(bs, req);
        break;
    default:
        r = -EINVAL;
    }
    req->ret = r;
    g_async_queue_push(e->done, req);
    eventfd_write(e->pool_efd, 1);
}

static void engine_complete(FileEngine *e, BlockReq *req, int ret)
{
    e->inflight--;
    blk_req_complete(req, ret);
}

static void engine_to_pool(FileEngine *e, BlockReq *req)
{
    g_thread_pool_push(e->pool, req, NULL);
}

#ifdef CONFIG_LIBURING
static bool file_uring_reap(FileEngine *e);
#endif

/*
 * A file in memory: the read or write is done here; it completes from a
 * bottom half in this iteration (never inside the caller's submit).
 */
static void file_inline_rw(FileEngine *e, BlockNode *bs, BlockReq *req)
{
    BlockReq **tail = &e->inline_done;

    req->ret = file_rw_sync(bs, req);
    *req_next(req) = NULL;
    while (*tail) {
        tail = req_next(*tail);
    }
    *tail = req;
    loop_bh_schedule(e->done_bh);
}

static void file_done_bh(void *opaque)
{
    FileEngine *e = opaque;
    BlockReq *req;

    while ((req = e->inline_done)) {
        e->inline_done = *req_next(req);
        engine_complete(e, req, req->ret);
    }
#ifdef CONFIG_LIBURING
    if (e->ring_ready) {
        file_uring_reap(e);
    }
#endif
}

static void file_pool_done(void *opaque)
{
    FileEngine *e = opaque;
    eventfd_t v;
    BlockReq *req;

    eventfd_read(e->pool_efd, &v);
    while ((req = g_async_queue_try_pop(e->done))) {
        engine_complete(e, req, req->ret);
    }
}

/* ---- Linux AIO ---- */

static bool engine_aio_ready(FileEngine *e)
{
    int r;

    if (e->ctx) {
        return true;
    }
    r = io_setup(FILE_AIO_DEPTH, &e->ctx);
    if (r < 0) {
        iovd_warn("loop %s: io_setup: %s; file I/O goes to threads",
                  loop_name(e->loop), g_strerror(-r));
        e->ctx = 0;
        return false;
    }
    return true;
}

static void file_aio_submit(FileEngine *e)
{
    unsigned done = 0;

    if (!e->nbatch) {
        return;
    }
    trace_file_submit(loop_name(e->loop), e->nbatch);
    while (done < e->nbatch) {
        int r = io_submit(e->ctx, e->nbatch - done, e->batch + done);

        if (r == -EAGAIN || r == 0) {
            /* Ring full: the rest goes to the pool rather than waiting. */
            for (unsigned i = done; i < e->nbatch; i++) {
                e->aio_inflight--;
                engine_to_pool(e, e->batch[i]->data);
            }
            break;
        }
        if (r < 0) {
            /* The first iocb is bad: fail it, continue with the rest. */
            BlockReq *req = e->batch[done]->data;

            e->aio_inflight--;
            req->ret = r;
            g_async_queue_push(e->done, req);
            eventfd_write(e->pool_efd, 1);
            done++;
            continue;
        }
        done += r;
    }
    e->nbatch = 0;
}

static void file_aio_complete(void *opaque)
{
    FileEngine *e = opaque;
    struct io_event ev[64];
    eventfd_t v;
    int n;

    eventfd_read(e->aio_efd, &v);
    do {
        struct timespec ts = { 0, 0 };

        n = io_getevents(e->ctx, 0, ARRAY_SIZE(ev), ev, &ts);
        for (int i = 0; i < n; i++) {
            BlockReq *req = ev[i].data;
            long res = (long)ev[i].res;

            e->aio_inflight--;
            if (res >= 0 && (uint64_t)res != req->bytes) {
                /* Short transfer (EOF on reads, rare on writes): redo. */
                engine_to_pool(e, req);
                continue;
            }
            engine_complete(e, req, res < 0 ? res : 0);
        }
    } while (n == ARRAY_SIZE(ev));
}

/* Queue a read or write for io_submit; false when it must go elsewhere. */
static bool file_aio_queue(FileEngine *e, FileState *s, BlockReq *req)
{
    struct iocb *cb = (struct iocb *)req->drv;

    G_STATIC_ASSERT(sizeof(struct iocb) <= sizeof(req->drv));
    if ((req->op != BLK_OP_READ && req->op != BLK_OP_WRITE) ||
        e->aio_inflight >= FILE_AIO_DEPTH || !engine_aio_ready(e)) {
        return false;
    }
    if (req->op == BLK_OP_READ) {
        io_prep_preadv(cb, s->fd, req->iov, req->niov, req->offset);
    } else {
        io_prep_pwritev(cb, s->fd, req->iov, req->niov, req->offset);
        if (req->flags & BLK_REQ_FUA) {
            cb->aio_rw_flags = RWF_DSYNC;
        }
    }
    cb->data = req;
    io_set_eventfd(cb, e->aio_efd);
    e->batch[e->nbatch++] = cb;
    e->aio_inflight++;
    if (e->nbatch == FILE_AIO_DEPTH) {
        file_aio_submit(e);
    }
    return true;
}

/* ---- io_uring ---- */

#ifdef CONFIG_LIBURING
static bool file_uring_reap(FileEngine *e)
{
    struct io_uring_cqe *cqe;
    bool any = false;

    while (io_uring_peek_cqe(&e->ring, &cqe) == 0) {
        BlockReq *req = io_uring_cqe_get_data(cqe);
        int res = cqe->res;

        io_uring_cqe_seen(&e->ring, cqe);
        any = true;
        if (!req) {
            continue;       /* the first half of a linked pair */
        }
        if (res >= 0 && (req->op == BLK_OP_READ || req->op == BLK_OP_WRITE) &&
            (uint64_t)res != req->bytes) {
            engine_to_pool(e, req);                     /* short: redo */
            continue;
        }
        if (res < 0 && req->op == BLK_OP_DISCARD &&
            (res == -EOPNOTSUPP || res == -ENOSYS)) {
            res = 0;                                    /* only a hint */
        }
        if (res < 0 && req->op == BLK_OP_WRITE_ZEROES) {
            engine_to_pool(e, req);                     /* slow path */
            continue;
        }
        engine_complete(e, req, res < 0 ? res : 0);
    }
    return any;
}

static void file_uring_submit(FileEngine *e)
{
    if (e->ring_queued) {
        trace_file_submit(loop_name(e->loop), e->ring_queued);
        io_uring_submit(&e->ring);
        e->ring_queued = 0;
        /*
         * Page-cache I/O completes inline: reap it in this iteration (a
         * bottom half, so the loop does not sleep first) rather than wait
         * for the ring's fd to wake us.
         */
        if (io_uring_cq_ready(&e->ring)) {
            loop_bh_schedule(e->done_bh);
        }
    }
}

/* The ring's fd polls readable while completions wait: no eventfd. */
static void file_uring_complete(void *opaque)
{
    file_uring_reap(opaque);
}

static bool file_uring_poll(void *opaque)
{
    FileEngine *e = opaque;

    return file_uring_reap(e);
}

static bool engine_uring_init(FileEngine *e)
{
    int r = io_uring_queue_init(FILE_URING_DEPTH, &e->ring, 0);

    if (r < 0) {
        iovd_warn("loop %s: io_uring: %s; file I/O uses Linux AIO",
                  loop_name(e->loop), g_strerror(-r));
        return false;
    }
    e->ring_ready = true;
    /* Registered files spare the kernel a file lookup per request. */
    e->files_registered =
        io_uring_register_files_sparse(&e->ring, FILE_URING_FILES) == 0;
    loop_set_fd(e->loop, e->ring.ring_fd, file_uring_complete, NULL, e);
    e->poller = loop_poller_new(e->loop, file_uring_poll, NULL, e);
    return true;
}

/* A slot for @fd in @e's registered files, or -1 (then plain fds). */
static int file_uring_register(FileEngine *e, int fd)
{
    unsigned slot;

    if (!e->ring_ready || !e->files_registered) {
        return -1;
    }
    slot = find_next_zero_bit(e->files_used, FILE_URING_FILES, 0);
    if (slot >= FILE_URING_FILES ||
        io_uring_register_files_update(&e->ring, slot, &fd, 1) != 1) {
        return -1;
    }
    set_bit(slot, e->files_used);
    return slot;
}

static void file_uring_unregister(FileEngine *e, int slot)
{
    int none = -1;

    if (slot >= 0) {
        io_uring_register_files_update(&e->ring, slot, &none, 1);
        clear_bit(slot, e->files_used);
    }
}

/* Queue @req on the ring; false when it must take another path. */
static bool file_uring_queue(FileEngine *e, FileState *s, BlockReq *req)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&e->ring);
    int slot = fb_of(req)->slot;

    if (!sqe) {
        file_uring_submit(e);
        sqe = io_uring_get_sqe(&e->ring);
        if (!sqe) {
            return false;
        }
    }
    switch (req->op) {
    case BLK_OP_READ:
        io_uring_prep_readv(sqe, s->fd, req->iov, req->niov, req->offset);
        break;
    case BLK_OP_WRITE:
        io_uring_prep_writev(sqe, s->fd, req->iov, req->niov, req->offset);
        if (req->flags & BLK_REQ_FUA) {
            sqe->rw_flags = RWF_DSYNC;
        }
        break;
    case BLK_OP_FLUSH:
        io_uring_prep_fsync(sqe, s->fd, IORING_FSYNC_DATASYNC);
        break;
    case BLK_OP_DISCARD:
        io_uring_prep_fallocate(sqe, s->fd,
                                FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                req->offset, req->bytes);
        break;
    case BLK_OP_WRITE_ZEROES:
        io_uring_prep_fallocate(sqe, s->fd,
                                (req->flags & BLK_REQ_MAY_UNMAP)
                                ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
                                : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                                req->offset, req->bytes);
        if (req->flags & BLK_REQ_FUA) {
            /* Zeroes then a data sync, in order. */
            sqe->flags |= IOSQE_IO_LINK;
            io_uring_sqe_set_data(sqe, NULL);
            e->ring_queued++;
            sqe = io_uring_get_sqe(&e->ring);
            if (!sqe) {
                /* Submit the zeroes alone; the pool finishes with a sync. */
                file_uring_submit(e);
                return false;
            }
            io_uring_prep_fsync(sqe, s->fd, IORING_FSYNC_DATASYNC);
            if (slot >= 0) {
                sqe->fd = slot;
                sqe->flags |= IOSQE_FIXED_FILE;
            }
        }
        break;
    default:
        return false;
    }
    if (slot >= 0) {
        sqe->fd = slot;
        sqe->flags |= IOSQE_FIXED_FILE;
    }
    io_uring_sqe_set_data(sqe, req);
    e->ring_queued++;
    if (e->ring_queued >= FILE_URING_DEPTH / 2) {
        file_uring_submit(e);
    }
    return true;
}
#endif

/* Once per loop iteration: everything queued goes out in one call. */
static void file_engine_flush(void *opaque)
{
    FileEngine *e = opaque;

    file_aio_submit(e);
#ifdef CONFIG_LIBURING
    if (e->ring_ready) {
        file_uring_submit(e);
    }
#endif
}

static int file_submit(BlockNode *bs, BlockReq *req)
{
    FileState *s = fs_of(bs);
    FileEngine *e = engine_of(req);
    bool misaligned = bs->direct && !iov_aligned(req, bs->align);

    e->inflight++;
    if (s->in_memory && !misaligned &&
        (req->op == BLK_OP_READ || req->op == BLK_OP_WRITE)) {
        file_inline_rw(e, bs, req);
        return 0;
    }
    if (!misaligned) {
#ifdef CONFIG_LIBURING
        if (s->aio == FILE_AIO_IO_URING && e->ring_ready &&
            file_uring_queue(e, s, req)) {
            return 0;
        }
#endif
        if (s->aio != FILE_AIO_THREADS && file_aio_queue(e, s, req)) {
            return 0;
        }
    }
    engine_to_pool(e, req);
    return 0;
}

/* ---- engines ---- */

static FileEngine *engine_new(EventLoop *loop, GError **errp)
{
    FileEngine *e = g_new0(FileEngine, 1);

    e->loop = loop;
    e->aio_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    e->pool_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (e->aio_efd < 0 || e->pool_efd < 0) {
        error_setg_errno(errp, errno, "eventfd");
        if (e->aio_efd >= 0) {
            close(e->aio_efd);
        }
        if (e->pool_efd >= 0) {
            close(e->pool_efd);
        }
        g_free(e);
        return NULL;
    }
    e->done_bh = loop_bh_new(loop, file_done_bh, e);
#ifdef CONFIG_LIBURING
    engine_uring_init(e);
#endif
    e->pool = g_thread_pool_new(file_worker, e, 4, false, NULL);
    e->done = g_async_queue_new();
    loop_set_fd(loop, e->aio_efd, file_aio_complete, NULL, e);
    loop_set_fd(loop, e->pool_efd, file_pool_done, NULL, e);
    loop_add_before_poll(loop, file_engine_flush, e);
    return e;
}

static void engine_free(FileEngine *e)
{
    g_assert(e->inflight == 0);
    loop_remove_before_poll(e->loop, file_engine_flush, e);
    g_thread_pool_free(e->pool, false, true);
    loop_set_fd(e->loop, e->aio_efd, NULL, NULL, NULL);
    loop_set_fd(e->loop, e->pool_efd, NULL, NULL, NULL);
    if (e->ctx) {
        io_destroy(e->ctx);
    }
    close(e->aio_efd);
    close(e->pool_efd);
    loop_bh_delete(e->done_bh);
#ifdef CONFIG_LIBURING
    if (e->ring_ready) {
        loop_poller_free(e->poller);
        loop_set_fd(e->loop, e->ring.ring_fd, NULL, NULL, NULL);
        io_uring_queue_exit(&e->ring);
    }
#endif
    g_async_queue_unref(e->done);
    g_free(e);
}

/* On @blk's loop (a device being realized there). */
static bool file_attach(BlockNode *bs, BlockBackend *blk, GError **errp)
{
    EventLoop *loop = blk_loop(blk);
    FileEngine *e = NULL;
    FileBackend *fb;

    for (GList *l = engines; l; l = l->next) {
        if (((FileEngine *)l->data)->loop == loop) {
            e = l->data;
        }
    }
    if (!e) {
        e = engine_new(loop, errp);
        if (!e) {
            return false;
        }
        engines = g_list_prepend(engines, e);
    }
    e->refs++;
    fb = g_new(FileBackend, 1);
    fb->e = e;
    fb->slot = -1;
#ifdef CONFIG_LIBURING
    if (fs_of(bs)->aio == FILE_AIO_IO_URING) {
        fb->slot = file_uring_register(e, fs_of(bs)->fd);
    }
#endif
    blk_set_drv_state(blk, fb);
    return true;
}

static void file_detach(BlockNode *bs, BlockBackend *blk)
{
    FileBackend *fb = blk_drv_state(blk);
    FileEngine *e = fb->e;

#ifdef CONFIG_LIBURING
    file_uring_unregister(e, fb->slot);
#endif
    g_free(fb);
    blk_set_drv_state(blk, NULL);
    if (--e->refs == 0) {
        engines = g_list_remove(engines, e);
        engine_free(e);
    }
}

/* ---- open / close ---- */

static uint32_t probe_direct_align(int fd)
{
    void *buf;
    uint32_t align = 4096;

    if (posix_memalign(&buf, 4096, 4096)) {
        return 4096;
    }
    /* The smallest size and alignment a read accepts. */
    for (uint32_t a = 512; a <= 4096; a *= 2) {
        if (pread(fd, (char *)buf, a, 0) >= 0 || errno != EINVAL) {
            align = a;
            break;
        }
    }
    free(buf);
    return align;
}

/* ---- live upgrade ---- */

#define FILE_UPGRADE_VERSION 1

static GList *file_nodes;       /* open file nodes (main thread) */
static GHashTable *file_adopted;    /* node name -> fd + 1 (new process) */

static bool file_upgrade_save(StateWriter *w, GArray *fds, GError **errp)
{
    state_begin(w, "block-files", FILE_UPGRADE_VERSION);
    for (GList *l = file_nodes; l; l = l->next) {
        BlockNode *bs = l->data;

        state_put_u32(w, bs->node_name, fds->len);
        g_array_append_val(fds, fs_of(bs)->fd);
    }
    state_end(w);
    return true;
}

typedef struct FileAdoptCtx {
    int *fds;
    unsigned nfds;
} FileAdoptCtx;

static void file_adopt_one(StateSection *s, const char *node, void *opaque)
{
    FileAdoptCtx *c = opaque;
    uint32_t i = state_get_u32(s, node);

    if (i >= c->nfds || c->fds[i] < 0) {
        state_section_fail(s, "no file descriptor for node '%s'", node);
        return;
    }
    g_hash_table_insert(file_adopted, g_strdup(node),
                        GINT_TO_POINTER(c->fds[i] + 1));
    c->fds[i] = -1;
}

static bool file_upgrade_prepare(StateReader *r, int *fds, unsigned nfds,
                                 GError **errp)
{
    FileAdoptCtx c = { fds, nfds };
    StateSection *s;

    if (!state_has_section(r, "block-files")) {
        return true;            /* an older iovd's: reopened by path */
    }
    s = state_section(r, "block-files", FILE_UPGRADE_VERSION, NULL, errp);
    if (!s) {
        return false;
    }
    if (!file_adopted) {
        file_adopted = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                             NULL);
    }
    state_foreach_field(s, file_adopt_one, &c);
    return state_section_end(s, errp);
}

static const UpgradeParticipant file_upgrade = {
    .name = "block-files",
    .save = file_upgrade_save,
    .prepare = file_upgrade_prepare,
};

/*
 * The old process's fd for @bs, or -1: opened as this node wants it
 * (read-only or not; O_DIRECT as its cache.direct says).
 */
static int file_take_adopted(BlockNode *bs, int flags, GError **errp)
{
    gpointer key = NULL, v = NULL;
    int fd, fl;

    if (!file_adopted ||
        !g_hash_table_steal_extended(file_adopted, bs->node_name, &key,
                                     &v)) {
        return -1;
    }
    g_free(key);
    fd = GPOINTER_TO_INT(v) - 1;
    fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (fl & O_ACCMODE) != (flags & O_ACCMODE) ||
        fcntl(fd, F_SETFL, (fl & ~O_DIRECT) | (flags & O_DIRECT)) < 0) {
        error_setg(errp, "the file handed over for node '%s' is not open "
                   "as it wants", bs->node_name);
        close(fd);
        return -2;
    }
    return fd;
}

static bool file_open(BlockNode *bs, GError **errp)
{
    FileState *s = fs_of(bs);
    int flags = (bs->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
    struct stat st;

#ifndef CONFIG_LIBURING
    if (s->aio == FILE_AIO_IO_URING) {
        error_setg(errp, "property 'aio': io_uring is not available in "
                   "this build (install liburing-dev and reconfigure)");
        return false;
    }
#endif
    if (bs->direct) {
        flags |= O_DIRECT;
    }
    s->fd = file_take_adopted(bs, flags, errp);
    if (s->fd == -2) {
        return false;
    }
    if (s->fd < 0) {
        s->fd = open(s->filename, flags);
    }
    if (s->fd < 0) {
        error_setg_errno(errp, errno, "could not open '%s'", s->filename);
        return false;
    }
    if (fstat(s->fd, &st) < 0) {
        error_setg_errno(errp, errno, "stat '%s'", s->filename);
        goto fail;
    }
    if (S_ISBLK(st.st_mode)) {
        uint64_t size;

        if (ioctl(s->fd, BLKGETSIZE64, &size) < 0) {
            error_setg_errno(errp, errno, "size of '%s'", s->filename);
            goto fail;
        }
        bs->size = size;
    } else if (S_ISREG(st.st_mode)) {
        bs->size = st.st_size;
    } else {
        error_setg(errp, "'%s' is not a regular file or block device",
                   s->filename);
        goto fail;
    }
    if (bs->direct) {
        bs->align = probe_direct_align(s->fd);
    }
    {
        struct statfs sf;

        s->in_memory = S_ISREG(st.st_mode) && !bs->direct &&
                       s->aio != FILE_AIO_THREADS &&
                       fstatfs(s->fd, &sf) == 0 &&
                       (sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC ||
                        sf.f_type == HUGETLBFS_MAGIC);
    }
    bs->filename = g_strdup(s->filename);
    /* The page cache is the host's; O_DIRECT writes invalidate it. */
    bs->host_coherent = true;
    trace_file_open(bs->node_name, s->filename, bs->direct, bs->read_only,
                    aio_names[s->aio], s->in_memory);
    file_nodes = g_list_append(file_nodes, bs);
    return true;

fail:
    close(s->fd);
    return false;
}

static void file_close(BlockNode *bs)
{
    file_nodes = g_list_remove(file_nodes, bs);
    close(fs_of(bs)->fd);
}

static bool file_truncate(BlockNode *bs, uint64_t size, GError **errp)
{
    FileState *s = fs_of(bs);

    if (ftruncate(s->fd, size) < 0) {
        error_setg_errno(errp, errno, "resize '%s'", s->filename);
        return false;
    }
    return true;
}

static int file_flush_sync(BlockNode *bs)
{
    return fdatasync(fs_of(bs)->fd) < 0 ? -errno : 0;
}

static const BlockDriver file_driver = {
    .name = "file",
    .opaque_size = sizeof(FileState),
    .props = file_props,
    .open = file_open,
    .close = file_close,
    .attach = file_attach,
    .detach = file_detach,
    .submit = file_submit,
    .truncate = file_truncate,
    .flush_sync = file_flush_sync,
};

static void __attribute__((constructor)) file_register(void)
{
    blk_driver_register(&file_driver);
    iovd_register_upgrade_participant(&file_upgrade);
}
