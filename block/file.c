/*
 * The file driver: raw images and block devices.  Reads and writes go
 * through Linux AIO (one io_submit per batch, completions on an eventfd in
 * the main loop); flush, discard and write-zeroes run on a small worker
 * pool so the loop never blocks.  cache.direct=on opens with O_DIRECT and
 * bounces only requests whose buffers or offsets are misaligned.
 */
#include "block/block-int.h"
#include "block/trace.h"
#include "util/error.h"
#include "util/loop.h"

#include <libaio.h>
#ifdef CONFIG_LIBURING
#include <liburing.h>
#endif
#include <linux/fs.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#define FILE_AIO_DEPTH 1024
#define FILE_BATCH_MAX 256

enum { FILE_AIO_NATIVE, FILE_AIO_THREADS, FILE_AIO_IO_URING };
static const char *const aio_names[] = {
    "native", "threads", "io_uring", NULL
};

typedef struct FileState {
    /* options */
    char *filename;
    int aio;                    /* FILE_AIO_* */

    int fd;
    io_context_t ctx;
    int aio_efd;                /* libaio completions */
    unsigned aio_inflight;
    struct iocb *batch[FILE_BATCH_MAX];
    BlockReq *batch_req[FILE_BATCH_MAX];
    unsigned nbatch;

    GThreadPool *pool;          /* flush, discard, zeroes, bounced I/O */
    GAsyncQueue *done;          /* BlockReq * finished by the pool */
    int pool_efd;

#ifdef CONFIG_LIBURING
    struct io_uring ring;
    bool ring_ready;
    int ring_efd;
    unsigned ring_queued;       /* prepared, not yet submitted */
#endif
} FileState;

static const PropDef file_props[] = {
    PROP_DEF_STR("filename", FileState, filename, "image file or device",
                 .mandatory = true),
    PROP_DEF_ENUM("aio", FileState, aio, aio_names,
                  "native (Linux AIO), io_uring, or threads",
                  .defval = "native"),
    PROP_DEF_END
};

static inline FileState *fs_of(BlockNode *bs)
{
    return bs->opaque;
}

/* ---- worker pool ---- */

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

static void file_worker(gpointer data, gpointer user_data)
{
    BlockReq *req = data;
    BlockNode *bs = user_data;
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
        if (bs->direct && !iov_aligned(req, bs->align)) {
            r = file_bounced_rw(bs, req);
        } else {
            ssize_t n;

            if (req->op == BLK_OP_READ) {
                n = preadv2(s->fd, req->iov, req->niov, req->offset, 0);
            } else {
                n = pwritev2(s->fd, req->iov, req->niov, req->offset,
                             (req->flags & BLK_REQ_FUA) ? RWF_DSYNC : 0);
            }
            if (n < 0) {
                r = -errno;
            } else if ((uint64_t)n != req->bytes) {
                /* Short: finish the rest the slow way. */
                r = file_bounced_rw(bs, req);
            }
        }
        break;
    default:
        r = -EINVAL;
    }
    req->ret = r;
    g_async_queue_push(s->done, req);
    eventfd_write(s->pool_efd, 1);
}

static void file_pool_done(void *opaque)
{
    BlockNode *bs = opaque;
    FileState *s = fs_of(bs);
    eventfd_t v;
    BlockReq *req;

    eventfd_read(s->pool_efd, &v);
    while ((req = g_async_queue_try_pop(s->done))) {
        blk_req_complete(req, req->ret);
    }
}

/* ---- Linux AIO ---- */

static void file_aio_flush_batch(BlockNode *bs)
{
    FileState *s = fs_of(bs);
    unsigned done = 0;

    if (!s->nbatch) {
        return;
    }
    trace_file_submit(bs->node_name, s->nbatch);
    while (done < s->nbatch) {
        int r = io_submit(s->ctx, s->nbatch - done, s->batch + done);

        if (r == -EAGAIN || r == 0) {
            /* Ring full: the rest goes to the pool rather than waiting. */
            for (unsigned i = done; i < s->nbatch; i++) {
                s->aio_inflight--;
                g_thread_pool_push(s->pool, s->batch_req[i], NULL);
            }
            break;
        }
        if (r < 0) {
            /* The first iocb is bad: fail it, continue with the rest. */
            BlockReq *req = s->batch_req[done];

            s->aio_inflight--;
            req->ret = r;
            g_async_queue_push(s->done, req);
            eventfd_write(s->pool_efd, 1);
            done++;
            continue;
        }
        done += r;
    }
    s->nbatch = 0;
}

static void file_aio_complete(void *opaque)
{
    BlockNode *bs = opaque;
    FileState *s = fs_of(bs);
    struct io_event ev[64];
    eventfd_t v;
    int n;

    eventfd_read(s->aio_efd, &v);
    do {
        struct timespec ts = { 0, 0 };

        n = io_getevents(s->ctx, 0, ARRAY_SIZE(ev), ev, &ts);
        for (int i = 0; i < n; i++) {
            BlockReq *req = ev[i].data;
            long res = (long)ev[i].res;
            int ret = 0;

            s->aio_inflight--;
            if (res < 0) {
                ret = res;
            } else if ((uint64_t)res != req->bytes) {
                /* Short transfer (EOF on reads, rare on writes): redo. */
                g_thread_pool_push(s->pool, req, NULL);
                continue;
            }
            blk_req_complete(req, ret);
        }
    } while (n == ARRAY_SIZE(ev));
}

/* ---- io_uring ---- */

#ifdef CONFIG_LIBURING
#define FILE_URING_DEPTH 256

static void file_uring_submit(BlockNode *bs)
{
    FileState *s = fs_of(bs);

    if (s->ring_queued) {
        trace_file_submit(bs->node_name, s->ring_queued);
        io_uring_submit(&s->ring);
        s->ring_queued = 0;
    }
}

static void file_uring_complete(void *opaque)
{
    BlockNode *bs = opaque;
    FileState *s = fs_of(bs);
    struct io_uring_cqe *cqe;
    eventfd_t v;

    eventfd_read(s->ring_efd, &v);
    while (io_uring_peek_cqe(&s->ring, &cqe) == 0) {
        BlockReq *req = io_uring_cqe_get_data(cqe);
        int res = cqe->res;

        io_uring_cqe_seen(&s->ring, cqe);
        if (!req) {
            continue;       /* the first half of a linked pair */
        }
        s->aio_inflight--;
        if (res >= 0 && (req->op == BLK_OP_READ || req->op == BLK_OP_WRITE) &&
            (uint64_t)res != req->bytes) {
            g_thread_pool_push(s->pool, req, NULL);    /* short: redo */
            continue;
        }
        if (res < 0 && req->op == BLK_OP_DISCARD &&
            (res == -EOPNOTSUPP || res == -ENOSYS)) {
            res = 0;                                    /* only a hint */
        }
        if (res < 0 && req->op == BLK_OP_WRITE_ZEROES) {
            g_thread_pool_push(s->pool, req, NULL);     /* slow path */
            continue;
        }
        blk_req_complete(req, res < 0 ? res : 0);
    }
}

/* Queue @req on the ring; false when it must take another path. */
static bool file_uring_queue(BlockNode *bs, BlockReq *req)
{
    FileState *s = fs_of(bs);
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);

    if (!sqe) {
        file_uring_submit(bs);
        sqe = io_uring_get_sqe(&s->ring);
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
            sqe = io_uring_get_sqe(&s->ring);
            if (!sqe) {
                return false;
            }
            io_uring_prep_fsync(sqe, s->fd, IORING_FSYNC_DATASYNC);
        }
        break;
    default:
        return false;
    }
    io_uring_sqe_set_data(sqe, req);
    s->aio_inflight++;
    s->ring_queued++;
    if (!bs->plugged) {
        file_uring_submit(bs);
    }
    return true;
}
#endif

static int file_submit(BlockNode *bs, BlockReq *req)
{
    FileState *s = fs_of(bs);
    struct iocb *cb = (struct iocb *)req->drv;

    G_STATIC_ASSERT(sizeof(struct iocb) <= sizeof(req->drv));
#ifdef CONFIG_LIBURING
    if (s->aio == FILE_AIO_IO_URING &&
        !(bs->direct && !iov_aligned(req, bs->align)) &&
        file_uring_queue(bs, req)) {
        return 0;
    }
#endif
    if ((req->op != BLK_OP_READ && req->op != BLK_OP_WRITE) ||
        s->aio != FILE_AIO_NATIVE || s->aio_inflight >= FILE_AIO_DEPTH ||
        (bs->direct && !iov_aligned(req, bs->align))) {
        g_thread_pool_push(s->pool, req, NULL);
        return 0;
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
    io_set_eventfd(cb, s->aio_efd);
    s->batch[s->nbatch] = cb;
    s->batch_req[s->nbatch] = req;
    s->nbatch++;
    s->aio_inflight++;
    if (!bs->plugged || s->nbatch == FILE_BATCH_MAX) {
        file_aio_flush_batch(bs);
    }
    return 0;
}

static void file_unplug(BlockNode *bs)
{
    file_aio_flush_batch(bs);
#ifdef CONFIG_LIBURING
    if (fs_of(bs)->ring_ready) {
        file_uring_submit(bs);
    }
#endif
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

static bool file_open(BlockNode *bs, GError **errp)
{
    FileState *s = fs_of(bs);
    int flags = (bs->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
    struct stat st;
    int r;

    s->fd = s->aio_efd = s->pool_efd = -1;
#ifdef CONFIG_LIBURING
    s->ring_efd = -1;
#endif
    if (bs->direct) {
        flags |= O_DIRECT;
    }
    s->fd = open(s->filename, flags);
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
    r = io_setup(FILE_AIO_DEPTH, &s->ctx);
    if (r < 0) {
        error_setg_errno(errp, -r, "io_setup");
        goto fail;
    }
    s->aio_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    s->pool_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->aio_efd < 0 || s->pool_efd < 0) {
        error_setg_errno(errp, errno, "eventfd");
        goto fail;
    }
    if (s->aio == FILE_AIO_IO_URING) {
#ifdef CONFIG_LIBURING
        r = io_uring_queue_init(FILE_URING_DEPTH, &s->ring, 0);
        if (r < 0) {
            error_setg_errno(errp, -r, "io_uring_queue_init");
            goto fail;
        }
        s->ring_ready = true;
        s->ring_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (s->ring_efd < 0 ||
            io_uring_register_eventfd(&s->ring, s->ring_efd) < 0) {
            error_setg_errno(errp, errno, "io_uring eventfd");
            goto fail;
        }
        loop_set_fd(bs->loop, s->ring_efd, file_uring_complete, NULL, bs);
#else
        error_setg(errp, "property 'aio': io_uring is not available in "
                   "this build (install liburing-dev and reconfigure)");
        goto fail;
#endif
    }
    s->pool = g_thread_pool_new(file_worker, bs, 4, false, NULL);
    s->done = g_async_queue_new();
    loop_set_fd(bs->loop, s->aio_efd, file_aio_complete, NULL, bs);
    loop_set_fd(bs->loop, s->pool_efd, file_pool_done, NULL, bs);
    bs->filename = g_strdup(s->filename);
    trace_file_open(bs->node_name, s->filename, bs->direct, bs->read_only,
                    aio_names[s->aio]);
    return true;

fail:
#ifdef CONFIG_LIBURING
    if (s->ring_efd >= 0) {
        loop_set_fd(bs->loop, s->ring_efd, NULL, NULL, NULL);
        close(s->ring_efd);
    }
    if (s->ring_ready) {
        io_uring_queue_exit(&s->ring);
        s->ring_ready = false;
    }
#endif
    if (s->ctx) {
        io_destroy(s->ctx);
        s->ctx = 0;
    }
    if (s->aio_efd >= 0) {
        close(s->aio_efd);
    }
    if (s->pool_efd >= 0) {
        close(s->pool_efd);
    }
    close(s->fd);
    return false;
}

static void file_close(BlockNode *bs)
{
    FileState *s = fs_of(bs);

    /* Callers drained every backend; the pool finishes what it has. */
    g_thread_pool_free(s->pool, false, true);
    file_pool_done(bs);
    loop_set_fd(bs->loop, s->aio_efd, NULL, NULL, NULL);
    loop_set_fd(bs->loop, s->pool_efd, NULL, NULL, NULL);
    io_destroy(s->ctx);
    close(s->aio_efd);
    close(s->pool_efd);
#ifdef CONFIG_LIBURING
    if (s->ring_ready) {
        loop_set_fd(bs->loop, s->ring_efd, NULL, NULL, NULL);
        io_uring_queue_exit(&s->ring);
        close(s->ring_efd);
    }
#endif
    g_async_queue_unref(s->done);
    close(s->fd);
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
    .submit = file_submit,
    .unplug = file_unplug,
    .truncate = file_truncate,
    .flush_sync = file_flush_sync,
};

static void __attribute__((constructor)) file_register(void)
{
    blk_driver_register(&file_driver);
}
