/*
 * The DMA table: guest address ranges the client mapped, each either
 * mmap'd from the fd it sent (zero copy) or reached through server-initiated
 * DMA_READ / DMA_WRITE messages.
 */
#include "hw/vfio-user/vfio-user-int.h"
#include "hw/vfio-user/trace.h"
#include "util/loop.h"
#include "util/bitops.h"
#include "util/memguard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

static inline VfuDmaRegion *dma_at(VfuServer *s, unsigned i)
{
    return &g_array_index(s->dma, VfuDmaRegion, i);
}

/* Index of the first region whose end is above @addr. */
static unsigned dma_lower_bound(VfuServer *s, uint64_t addr)
{
    unsigned lo = 0, hi = s->dma->len;

    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        VfuDmaRegion *r = dma_at(s, mid);

        if (r->addr + r->size <= addr) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static VfuDmaRegion *dma_find(VfuServer *s, uint64_t addr)
{
    VfuDmaRegion *r;
    unsigned i;

    if (s->dma_last < s->dma->len) {
        r = dma_at(s, s->dma_last);
        if (addr - r->addr < r->size) {
            return r;
        }
    }
    i = dma_lower_bound(s, addr);
    if (i < s->dma->len) {
        r = dma_at(s, i);
        if (addr - r->addr < r->size) {
            s->dma_last = i;
            return r;
        }
    }
    return NULL;
}

/* Refuse a DMA_MAP, saying why: 0 or an errno. */
static int dma_map_refuse(VfuServer *s, const VfuDmaMap *m, int err,
                          const char *why)
{
    trace_vfu_err_dma_map(vfu_id(s), m->addr, m->size, why);
    return err;
}

/* May [offset, offset + size) of @fd be mapped?  0 or an errno. */
static int dma_map_check_fd(VfuServer *s, const VfuDmaMap *m, int fd)
{
    struct stat st;

    if (!QEMU_IS_ALIGNED(m->offset, VFU_SERVER_PGSIZES)) {
        return dma_map_refuse(s, m, EINVAL, "fd offset not page-aligned");
    }
    if (m->offset + m->size < m->offset) {
        return dma_map_refuse(s, m, EINVAL, "fd offset + size wraps");
    }
    if (fstat(fd, &st) < 0) {
        return dma_map_refuse(s, m, errno, "fd not usable");
    }
    /*
     * A file (a memfd, a file on tmpfs or hugetlbfs) must hold the whole
     * range: a page past its end is no memory, and touching it would
     * kill the daemon (SIGBUS).
     */
    if (S_ISREG(st.st_mode) && m->offset + m->size > (uint64_t)st.st_size) {
        return dma_map_refuse(s, m, EINVAL, "range past the end of the fd");
    }
    return 0;
}

int vfu_dma_region_map(VfuServer *s, const VfuDmaMap *m, int fd)
{
    VfuDmaRegion r = {
        .addr = m->addr, .size = m->size, .prot = m->flags,
        .fd_offset = m->offset, .guard = -1, .fd = -1,
    };
    unsigned i;
    int err;

    trace_vfu_dma_map(vfu_id(s), m->addr, m->size, m->flags, fd);
    if (m->flags & ~(VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE) ||
        !(m->flags & VFU_DMA_FLAG_READ)) {
        return dma_map_refuse(s, m, EINVAL, "flags");
    }
    if (!m->size || m->addr + m->size < m->addr) {
        return dma_map_refuse(s, m, EINVAL, "empty or wrapping range");
    }
    if (!QEMU_IS_ALIGNED(m->addr | m->size, VFU_SERVER_PGSIZES)) {
        return dma_map_refuse(s, m, EINVAL, "range not page-aligned");
    }
    if (fd >= 0 && (err = dma_map_check_fd(s, m, fd))) {
        return err;
    }
    if (s->dma->len >= VFU_SERVER_MAX_DMA_MAPS) {
        return dma_map_refuse(s, m, ENOSPC, "too many regions");
    }
    i = dma_lower_bound(s, m->addr);
    if (i < s->dma->len && dma_at(s, i)->addr < m->addr + m->size) {
        return dma_map_refuse(s, m, EEXIST, "overlaps a mapped region");
    }
    if (fd >= 0) {
        int prot = PROT_READ |
                   ((m->flags & VFU_DMA_FLAG_WRITE) ? PROT_WRITE : 0);
        void *p = mmap(NULL, m->size, prot, MAP_SHARED, fd, m->offset);

        if (p == MAP_FAILED) {
            return dma_map_refuse(s, m, errno, "mmap failed");
        }
        /* The client may still truncate it: survive that (SIGBUS). */
        r.guard = memguard_add(p, m->size);
        if (r.guard < 0) {
            munmap(p, m->size);
            return dma_map_refuse(s, m, ENOSPC,
                                  "too many mappings in this daemon");
        }
        r.host = p;
        /* Kept for a live upgrade, which hands the mapping over. */
        r.fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (s->dirty_logging) {
            r.dirty = bitmap_new(r.size / VFU_DIRTY_PAGE_SIZE);
        }
    } else {
        s->dma_msg_regions++;
    }
    g_array_insert_val(s->dma, i, r);
    s->dma_last = i;
    s->dma_mapped_bytes += m->size;
    return 0;
}

static void dma_remove(VfuServer *s, unsigned i)
{
    VfuDmaRegion *r = dma_at(s, i);

    trace_vfu_dma_unmap(vfu_id(s), r->addr, r->size);
    if (r->host) {
        memguard_del(r->guard);
        munmap(r->host, r->size);
        g_free(r->dirty);
        if (r->fd >= 0) {
            close(r->fd);
        }
    } else {
        s->dma_msg_regions--;
    }
    s->dma_mapped_bytes -= r->size;
    g_array_remove_index(s->dma, i);
    s->dma_last = 0;
}

int vfu_dma_region_unmap(VfuServer *s, const VfuDmaUnmap *u)
{
    unsigned i;

    if (u->flags & VFU_DMA_UNMAP_FLAG_ALL) {
        if (u->addr || u->size) {
            return EINVAL;
        }
        vfu_dma_unmap_all(s);
        return 0;
    }
    i = dma_lower_bound(s, u->addr);
    if (i >= s->dma->len || dma_at(s, i)->addr != u->addr ||
        dma_at(s, i)->size != u->size) {
        return ENOENT;
    }
    dma_remove(s, i);
    return 0;
}

bool vfu_dma_unmap_needs_drain(VfuServer *s, const VfuDmaUnmap *u)
{
    /*
     * Only a region mmap'd into iovd can have device pointers into it; a
     * region reached by messages holds none (and waiting there could
     * deadlock: the client answers our DMA only once we answer it).
     */
    for (unsigned i = 0; i < s->dma->len; i++) {
        VfuDmaRegion *r = dma_at(s, i);

        if (r->host && ((u->flags & VFU_DMA_UNMAP_FLAG_ALL) ||
                        (r->addr == u->addr && r->size == u->size))) {
            return true;
        }
    }
    return false;
}

void vfu_dma_unmap_all(VfuServer *s)
{
    while (s->dma->len) {
        dma_remove(s, s->dma->len - 1);
    }
}

static void dirty_mark(VfuDmaRegion *r, uint64_t off, uint64_t len);

void *vfu_dma_translate(void *opaque, uint64_t addr, uint64_t len,
                        bool is_write, uint64_t *plen)
{
    VfuServer *s = opaque;
    VfuDmaRegion *r = dma_find(s, addr);
    uint64_t off;

    if (!r || !r->host ||
        (is_write && !(r->prot & VFU_DMA_FLAG_WRITE))) {
        return NULL;
    }
    if (memguard_dead(r->guard)) {
        /* The client truncated the memory: gone for the device too. */
        trace_vfu_err_dma_vanished(vfu_id(s), r->addr, r->size);
        return NULL;
    }
    off = addr - r->addr;
    *plen = MIN(len, r->size - off);
    if (is_write && r->dirty && *plen) {
        dirty_mark(r, off, *plen);
    }
    return r->host + off;
}

/* ---- dirty logging (live migration) ---- */

/*
 * Pages are marked when the device takes a pointer to write through
 * (vfu_dma_translate): every write of a device to guest memory starts
 * there, and a request holds its pointers only while it is in flight.
 */
static void dirty_mark(VfuDmaRegion *r, uint64_t off, uint64_t len)
{
    uint64_t last = (off + len - 1) / VFU_DIRTY_PAGE_SIZE;

    for (uint64_t pg = off / VFU_DIRTY_PAGE_SIZE; pg <= last; pg++) {
        set_bit(pg, r->dirty);
    }
}

void vfu_dirty_start(VfuServer *s)
{
    s->dirty_logging = true;
    for (unsigned i = 0; i < s->dma->len; i++) {
        VfuDmaRegion *r = dma_at(s, i);

        if (r->host && !r->dirty) {
            r->dirty = bitmap_new(r->size / VFU_DIRTY_PAGE_SIZE);
        }
    }
}

void vfu_dirty_stop(VfuServer *s)
{
    s->dirty_logging = false;
    for (unsigned i = 0; i < s->dma->len; i++) {
        g_clear_pointer(&dma_at(s, i)->dirty, g_free);
    }
}

int vfu_dirty_report(VfuServer *s, uint64_t iova, uint64_t len,
                     uint64_t page_size, uint64_t *bitmap)
{
    VfuDmaRegion *r = dma_find(s, iova);
    uint64_t first, last, per;
    /*
     * A request in flight may still write through a pointer it took
     * before this report: its pages stay dirty for the next one.
     */
    bool keep = pci_dma_inflight(s->pdev) > 0;

    if (!r || !r->dirty || !len || iova + len < iova ||
        iova + len > r->addr + r->size) {
        return r && r->dirty ? EINVAL : ENOENT;
    }
    first = (iova - r->addr) / VFU_DIRTY_PAGE_SIZE;
    last = (iova - r->addr + len - 1) / VFU_DIRTY_PAGE_SIZE;
    per = page_size / VFU_DIRTY_PAGE_SIZE;
    /* Only iovd's pages in the range: the client's page size bounds none. */
    for (uint64_t pg = first; pg <= last; pg++) {
        uint64_t n = (pg - first) / per;

        if (!test_bit(pg, r->dirty)) {
            continue;
        }
        bitmap[n / 64] |= 1ull << (n % 64);
        if (!keep) {
            clear_bit(pg, r->dirty);
        }
    }
    return 0;
}

/* ---- the slow path: DMA_READ / DMA_WRITE messages ---- */

bool vfu_dma_has_msg_regions(void *opaque)
{
    VfuServer *s = opaque;

    return s->dma_msg_regions > 0;
}

static void xfer_timer_rearm(VfuServer *s)
{
    int64_t first = -1;

    for (unsigned i = 0; i < VFU_DMA_XFERS; i++) {
        VfuDmaXfer *x = &s->xfers[i];

        if (x->busy && (first < 0 || x->deadline_ns < first)) {
            first = x->deadline_ns;
        }
    }
    if (first < 0) {
        loop_timer_del(s->xfer_timer);
    } else {
        loop_timer_mod(s->xfer_timer, first);
    }
}

/* Send the next piece of @x: 0 or -errno. */
static int xfer_send_piece(VfuServer *s, VfuDmaXfer *x)
{
    bool spec = s->pdev->dma_rw_layout == 1;
    uint32_t data_off = spec ? VFU_DMA_RW_SPEC_DATA_OFF
                             : VFU_DMA_RW_QEMU_DATA_OFF;
    /*
     * QEMU 10.x's client writes each reply with one non-blocking write and
     * drops whatever the socket did not take: keep DMA_READ replies well
     * inside a socket buffer.
     */
    uint64_t chunk_max = MIN(s->client_max_xfer,
                             x->is_write ? VFU_SERVER_MAX_DATA_XFER
                                         : VFU_DMA_READ_CHUNK);
    uint32_t n = MIN(x->left, chunk_max);
    uint32_t payload = MAX(data_off + (x->is_write ? n : 0),
                           VFU_DMA_RW_QEMU_MIN_PAYLOAD);
    uint8_t head[VFU_HDR_SIZE + VFU_DMA_RW_QEMU_MIN_PAYLOAD + 16] = { 0 };
    VfuHdr *h = (VfuHdr *)head;
    struct iovec iov[3];
    unsigned niov = 0;

    if (!spec && x->is_write) {
        /* QEMU's client wants size >= 32 + count. */
        payload = VFU_DMA_RW_QEMU_MIN_PAYLOAD + n;
    }
    x->msg_id = vfu_server_msg_id(s);
    x->piece = n;
    x->left -= n;
    h->msg_id = x->msg_id;
    h->cmd = x->is_write ? VFU_CMD_DMA_WRITE : VFU_CMD_DMA_READ;
    h->size = VFU_HDR_SIZE + payload;
    h->flags = VFU_FLAG_REQUEST;
    stq_le_p(head + VFU_HDR_SIZE, x->addr);
    if (spec) {
        stq_le_p(head + VFU_HDR_SIZE + 8, n);
    } else {
        stl_le_p(head + VFU_HDR_SIZE + 8, n);
    }
    /* Header, address and count (zero padding up to the data), data. */
    iov[niov++] = (struct iovec){ head, VFU_HDR_SIZE + data_off };
    if (x->is_write) {
        iov[niov++] = (struct iovec){ x->buf, n };
    }
    if (payload > data_off + (x->is_write ? n : 0)) {
        iov[niov++] = (struct iovec){
            head + VFU_HDR_SIZE + data_off,
            payload - data_off - (x->is_write ? n : 0) };
    }
    x->deadline_ns = clock_ns() + VFU_REPLY_TIMEOUT_MS * 1000000LL;
    xfer_timer_rearm(s);
    return vfu_sendv(s, iov, niov, -1) < 0 ? -EIO : 0;
}

/* Remember @x's piece: its reply may still come, and is then dropped. */
static void xfer_forget(VfuServer *s, VfuDmaXfer *x)
{
    s->forgotten[s->forgotten_next++ % ARRAY_SIZE(s->forgotten)] =
        x->msg_id;
    memset(x, 0, sizeof(*x));
}

static void xfer_finish(VfuServer *s, VfuDmaXfer *x, int err)
{
    PCIDmaDone *done = x->done;
    void *opaque = x->opaque;

    if (err) {
        trace_vfu_err_dma_rw(vfu_id(s), x->addr, x->piece, err);
    }
    if (err == ETIMEDOUT) {
        xfer_forget(s, x);
    }
    memset(x, 0, sizeof(*x));
    xfer_timer_rearm(s);
    done(opaque, -err);
}

/* A late reply finds nothing: the piece is over. */
static void xfer_timeout(void *opaque)
{
    VfuServer *s = opaque;
    int64_t now = clock_ns();

    for (unsigned i = 0; i < VFU_DMA_XFERS; i++) {
        VfuDmaXfer *x = &s->xfers[i];

        if (x->busy && x->deadline_ns <= now) {
            xfer_finish(s, x, ETIMEDOUT);
        }
    }
}

/*
 * Copy through DMA_READ / DMA_WRITE messages, piece after piece; @done
 * runs when the last reply came (or the first error).  Every byte must lie
 * in a region the client mapped with the needed permission: nothing is
 * sent for a bad address.
 */
int vfu_dma_rw_start(void *opaque, uint64_t addr, void *buf, uint64_t len,
                     bool is_write, PCIDmaDone *done, void *cb_opaque)
{
    VfuServer *s = opaque;
    VfuDmaXfer *x = NULL;
    int r;

    for (uint64_t a = addr, left = len; left;) {
        VfuDmaRegion *rg = dma_find(s, a);
        uint64_t n;

        /* A mapped region comes here only once it vanished. */
        if (!rg || rg->host ||
            (is_write && !(rg->prot & VFU_DMA_FLAG_WRITE))) {
            trace_vfu_err_dma_rw(vfu_id(s), addr, len, EFAULT);
            return -EFAULT;
        }
        n = MIN(left, rg->size - (a - rg->addr));
        a += n;
        left -= n;
    }
    if (s->client_fd < 0 || !s->negotiated) {
        return -ENOTCONN;
    }
    for (unsigned i = 0; i < VFU_DMA_XFERS && !x; i++) {
        if (!s->xfers[i].busy) {
            x = &s->xfers[i];
        }
    }
    if (!x || !len) {
        return x ? -EINVAL : -EBUSY;
    }
    x->busy = true;
    x->is_write = is_write;
    x->addr = addr;
    x->buf = buf;
    x->left = len;
    x->done = done;
    x->opaque = cb_opaque;
    r = xfer_send_piece(s, x);
    if (r < 0) {
        memset(x, 0, sizeof(*x));
        xfer_timer_rearm(s);
    }
    return r;
}

void vfu_dma_rw_cancel(void *opaque, void *cb_opaque)
{
    VfuServer *s = opaque;

    for (unsigned i = 0; i < VFU_DMA_XFERS; i++) {
        if (s->xfers[i].busy && s->xfers[i].opaque == cb_opaque) {
            xfer_forget(s, &s->xfers[i]);
        }
    }
    xfer_timer_rearm(s);
}

bool vfu_dma_reply(VfuServer *s, VfuMsg *m)
{
    bool spec = s->pdev->dma_rw_layout == 1;
    uint32_t data_off = spec ? VFU_DMA_RW_SPEC_DATA_OFF
                             : VFU_DMA_RW_QEMU_DATA_OFF;
    VfuDmaXfer *x = NULL;
    int err = 0;

    for (unsigned i = 0; i < VFU_DMA_XFERS && !x; i++) {
        if (s->xfers[i].busy && s->xfers[i].msg_id == m->hdr.msg_id) {
            x = &s->xfers[i];
        }
    }
    if (!x) {
        for (unsigned i = 0; i < ARRAY_SIZE(s->forgotten); i++) {
            if (s->forgotten[i] == m->hdr.msg_id &&
                (m->hdr.cmd == VFU_CMD_DMA_READ ||
                 m->hdr.cmd == VFU_CMD_DMA_WRITE)) {
                trace_vfu_dma_late_reply(vfu_id(s), m->hdr.msg_id);
                return true;
            }
        }
        return false;
    }
    if (m->hdr.cmd != (x->is_write ? VFU_CMD_DMA_WRITE : VFU_CMD_DMA_READ)) {
        return false;
    }
    if (m->hdr.flags & VFU_FLAG_ERROR) {
        err = m->hdr.error_no ? m->hdr.error_no : EIO;
    } else if (!x->is_write && m->len < data_off + x->piece) {
        err = EPROTO;
    } else if (!x->is_write) {
        memcpy(x->buf, m->payload + data_off, x->piece);
    }
    if (!err && x->left) {
        x->addr += x->piece;
        x->buf += x->piece;
        err = -xfer_send_piece(s, x);
        if (!err) {
            return true;
        }
    }
    xfer_finish(s, x, err);
    return true;
}

void vfu_dma_xfers_fail(VfuServer *s, int err)
{
    for (unsigned i = 0; i < VFU_DMA_XFERS; i++) {
        if (s->xfers[i].busy) {
            xfer_finish(s, &s->xfers[i], err);
        }
    }
}

void vfu_dma_init(VfuServer *s)
{
    s->dma = g_array_new(false, true, sizeof(VfuDmaRegion));
    s->xfer_timer = loop_timer_new(s->loop, xfer_timeout, s);
}

void vfu_dma_cleanup(VfuServer *s)
{
    vfu_dma_unmap_all(s);
    loop_timer_free(g_steal_pointer(&s->xfer_timer));
    g_array_free(g_steal_pointer(&s->dma), true);
}
