/*
 * The DMA table: guest address ranges the client mapped, each either
 * mmap'd from the fd it sent (zero copy) or reached through server-initiated
 * DMA_READ / DMA_WRITE messages.
 */
#include "hw/vfio-user/vfio-user.h"
#include "hw/vfio-user/trace.h"

#include <sys/mman.h>

static const char *sid(VfuServer *s)
{
    return s->pdev->dev.id;
}

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

int vfu_dma_map(VfuServer *s, const VfuDmaMap *m, int fd)
{
    VfuDmaRegion r = {
        .addr = m->addr, .size = m->size, .prot = m->flags,
        .fd_offset = m->offset,
    };
    unsigned i;

    trace_vfu_dma_map(sid(s), m->addr, m->size, m->flags, fd);
    if (m->flags & ~(VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE) ||
        !(m->flags & VFU_DMA_FLAG_READ)) {
        return EINVAL;
    }
    if (!m->size || m->addr + m->size < m->addr ||
        !QEMU_IS_ALIGNED(m->addr | m->size, VFU_SERVER_PGSIZES) ||
        (fd >= 0 && !QEMU_IS_ALIGNED(m->offset, VFU_SERVER_PGSIZES))) {
        return EINVAL;
    }
    if (s->dma->len >= VFU_SERVER_MAX_DMA_MAPS) {
        return ENOSPC;
    }
    i = dma_lower_bound(s, m->addr);
    if (i < s->dma->len && dma_at(s, i)->addr < m->addr + m->size) {
        return EEXIST;
    }
    if (fd >= 0) {
        int prot = PROT_READ |
                   ((m->flags & VFU_DMA_FLAG_WRITE) ? PROT_WRITE : 0);
        void *p = mmap(NULL, m->size, prot, MAP_SHARED, fd, m->offset);

        if (p == MAP_FAILED) {
            return errno;
        }
        r.host = p;
    }
    g_array_insert_val(s->dma, i, r);
    s->dma_last = i;
    s->dma_mapped_bytes += m->size;
    return 0;
}

static void dma_remove(VfuServer *s, unsigned i)
{
    VfuDmaRegion *r = dma_at(s, i);

    trace_vfu_dma_unmap(sid(s), r->addr, r->size);
    if (r->host) {
        munmap(r->host, r->size);
    }
    s->dma_mapped_bytes -= r->size;
    g_array_remove_index(s->dma, i);
    s->dma_last = 0;
}

int vfu_dma_unmap(VfuServer *s, const VfuDmaUnmap *u)
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
    off = addr - r->addr;
    *plen = MIN(len, r->size - off);
    return r->host + off;
}

/*
 * The slow path: copy through DMA_READ / DMA_WRITE messages, in pieces of
 * at most the client's max_data_xfer_size.  Every byte must lie in a
 * region the client mapped with the needed permission.
 */
int vfu_dma_rw_msg(void *opaque, uint64_t addr, void *buf, uint64_t len,
                   bool is_write)
{
    VfuServer *s = opaque;
    bool spec = s->pdev->dma_rw_layout == 1;
    uint32_t data_off = spec ? VFU_DMA_RW_SPEC_DATA_OFF
                             : VFU_DMA_RW_QEMU_DATA_OFF;
    /*
     * QEMU 10.x's client writes each reply with one non-blocking write and
     * drops whatever the socket did not take: keep DMA_READ replies well
     * inside a socket buffer.
     */
    uint64_t chunk_max = MIN(s->client_max_xfer,
                             is_write ? VFU_SERVER_MAX_DATA_XFER
                                      : VFU_DMA_READ_CHUNK);
    uint8_t *p = buf;

    /* Check the whole range first: nothing is sent for a bad address. */
    for (uint64_t a = addr, left = len; left;) {
        VfuDmaRegion *r = dma_find(s, a);
        uint64_t n;

        if (!r || (is_write && !(r->prot & VFU_DMA_FLAG_WRITE))) {
            trace_vfu_err_dma_rw(sid(s), addr, len, EFAULT);
            return -EFAULT;
        }
        n = MIN(left, r->size - (a - r->addr));
        a += n;
        left -= n;
    }
    if (s->client_fd < 0 || !s->negotiated) {
        return -ENOTCONN;
    }
    while (len) {
        uint32_t n = MIN(len, chunk_max);
        uint32_t payload = MAX(data_off + (is_write ? n : 0),
                               VFU_DMA_RW_QEMU_MIN_PAYLOAD);
        g_autofree uint8_t *msg = NULL;
        VfuHdr *h;
        VfuMsg *reply;
        uint16_t id = vfu_next_msg_id(s);
        int err = 0;

        if (!spec && is_write) {
            /* QEMU's client wants size >= 32 + count. */
            payload = VFU_DMA_RW_QEMU_MIN_PAYLOAD + n;
        }
        msg = g_malloc0(VFU_HDR_SIZE + payload);
        h = (VfuHdr *)msg;
        h->msg_id = id;
        h->cmd = is_write ? VFU_CMD_DMA_WRITE : VFU_CMD_DMA_READ;
        h->size = VFU_HDR_SIZE + payload;
        h->flags = VFU_FLAG_REQUEST;
        stq_le_p(msg + VFU_HDR_SIZE, addr);
        if (spec) {
            stq_le_p(msg + VFU_HDR_SIZE + 8, n);
        } else {
            stl_le_p(msg + VFU_HDR_SIZE + 8, n);
        }
        if (is_write) {
            memcpy(msg + VFU_HDR_SIZE + data_off, p, n);
        }
        if (vfu_send(s, msg, h->size, -1) < 0) {
            return -EIO;
        }
        reply = vfu_wait_reply(s, id);
        if (!reply) {
            err = ETIMEDOUT;
        } else if (reply->hdr.flags & VFU_FLAG_ERROR) {
            err = reply->hdr.error_no ? reply->hdr.error_no : EIO;
        } else if (!is_write && reply->len < data_off + n) {
            err = EPROTO;
        } else if (!is_write) {
            memcpy(p, reply->payload + data_off, n);
        }
        vfu_msg_free(reply);
        if (err) {
            trace_vfu_err_dma_rw(sid(s), addr, n, err);
            return -err;
        }
        addr += n;
        p += n;
        len -= n;
    }
    return 0;
}
