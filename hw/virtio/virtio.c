/*
 * The virtio core: status and features, split and packed virtqueues,
 * notifications.  See virtio.h for the API and the rules devices follow.
 *
 * Every index, length and address a ring holds is read once into a local
 * copy and bounded before use; a bad one is a guest error (virtio_err_*
 * trace, NEEDS_RESET), never a crash.
 */
#include "hw/virtio/virtio.h"
#include "hw/virtio/virtio-pci.h"
#include "hw/virtio/trace.h"
#include "util/error.h"
#include "util/loop.h"

/* A guest buffer of a descriptor chain, collected before mapping. */
typedef struct VirtQueueSeg {
    uint64_t addr;
    uint32_t len;
    bool write;
} VirtQueueSeg;

/* Packed ring: an element filled but not yet flushed. */
typedef struct VirtQueueUsed {
    uint16_t id;
    uint16_t ndescs;
    uint32_t len;
    bool write;
} VirtQueueUsed;

/* Most iovecs an element grows to: one per descriptor at worst. */
#define VIRTQUEUE_MAX_SG    VIRTQUEUE_MAX_SIZE

struct VirtQueue {
    VirtIODevice *vdev;
    unsigned index;
    unsigned max_num;
    VirtIOHandleOutput *handle_output;
    DeviceBH *bh;

    /* Driver configuration (common config registers). */
    unsigned num;
    uint16_t vector;
    bool enabled;
    uint64_t area[VIRTQUEUE_AREA__MAX];

    /* Ring state, set when the queue is enabled. */
    bool packed;
    uint16_t last_avail_idx;    /* split: free running; packed: slot */
    uint16_t shadow_avail_idx;  /* split: last avail->idx read */
    bool last_avail_wrap;       /* packed */
    uint16_t used_idx;          /* split: free running; packed: slot */
    bool used_wrap;             /* packed */
    uint16_t signalled_used;
    bool signalled_used_wrap;
    bool signalled_used_valid;
    bool notification;          /* driver notifications wanted */
    bool polled;                /* ... but the loop busy-polls the ring */
    uint16_t poll_seen;         /* avail idx (split) or slot (packed) the
                                 * poller last reported */
    bool poll_found;            /* ... once since enabled (traced) */
    bool irq_pending;           /* virtio_notify_later() */
    unsigned inuse;             /* popped, not yet filled or detached */
    unsigned filled;            /* filled, not yet flushed */
    unsigned holds;             /* pci_dma_hold()s taken for elements */
    /* For query-stats, since realize. */
    uint64_t nr_requests;       /* elements popped */
    uint64_t nr_kicks;          /* driver notifications trapped */
    uint64_t nr_notifications;  /* interrupts asked for */
    uint64_t nr_suppressed;     /* ... not needed (event index, flags) */
    /* Completed by a backend, to be written to the used ring. */
    VirtQueueElement **done;    /* max_num entries */
    uint32_t *done_len;
    unsigned ndone;

    VirtQueueSeg *segs;         /* chain walk scratch, max_num entries */
    VirtQueueUsed *used_batch;  /* packed fill batch, max_num entries */

    /* Element pool: max_num objects of elem_size bytes. */
    size_t elem_size;
    uint8_t *pool;
    VirtQueueElement **free_elems;
    unsigned nfree;
};

static void virtio_queue_bh(void *opaque);

static inline VirtQueueElement *pool_elem(VirtQueue *vq, unsigned i)
{
    return (VirtQueueElement *)(vq->pool + (size_t)i * vq->elem_size);
}

/* ---- errors ---- */

/* Spec: virtio 1.2 2.1.2 (DEVICE_NEEDS_RESET), 4.1.5.4.1. */
static void virtio_set_needs_reset(VirtIODevice *vdev)
{
    if (vdev->broken || device_work_cancelled(&vdev->pci.dev)) {
        return;                 /* a reset is on its way anyway */
    }
    vdev->broken = true;
    vdev->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
    if (vdev->status & VIRTIO_CONFIG_S_DRIVER_OK) {
        virtio_notify_config(vdev);
    }
}

void virtio_error(VirtIODevice *vdev, const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    trace_virtio_err_device(virtio_id(vdev), msg);
    virtio_set_needs_reset(vdev);
}

/* ---- guest memory for rings ---- */

/*
 * Rings are read and written through a fresh translation each time (the
 * client may unmap memory between two loop iterations), zero copy when
 * directly mapped, else through messages, which parks the work item while
 * the client's other messages (register accesses too) are served.
 * Failures break the device.
 */
static inline bool vring_access(VirtQueue *vq, uint64_t addr, void *buf,
                                unsigned len, bool is_write)
{
    VirtIODevice *vdev = vq->vdev;
    void *p = pci_dma_map(&vdev->pci, addr, len, is_write);
    int r;

    if (likely(p)) {
        memcpy(is_write ? p : buf, is_write ? buf : p, len);
        return true;
    }
    r = is_write ? pci_dma_write(&vdev->pci, addr, buf, len)
                 : pci_dma_read(&vdev->pci, addr, buf, len);
    if (r < 0) {
        trace_virtio_err_ring_access(virtio_id(vdev), vq->index, addr, len,
                                     is_write);
        virtio_set_needs_reset(vdev);
        return false;
    }
    return true;
}

static bool vring_read(VirtQueue *vq, uint64_t addr, void *buf, unsigned len)
{
    return vring_access(vq, addr, buf, len, false);
}

static bool vring_write(VirtQueue *vq, uint64_t addr, const void *buf,
                        unsigned len)
{
    return vring_access(vq, addr, (void *)buf, len, true);
}

/* 16-bit ring fields are read and written in one access. */
static bool vring_get16(VirtQueue *vq, uint64_t addr, uint16_t *val)
{
    uint16_t *p = pci_dma_map(&vq->vdev->pci, addr, 2, false);
    uint16_t v;

    if (likely(p && QEMU_IS_ALIGNED((uintptr_t)p, 2))) {
        *val = GUINT16_FROM_LE(__atomic_load_n(p, __ATOMIC_RELAXED));
        return true;
    }
    if (!vring_read(vq, addr, &v, 2)) {
        return false;
    }
    *val = GUINT16_FROM_LE(v);
    return true;
}

static bool vring_set16(VirtQueue *vq, uint64_t addr, uint16_t val)
{
    uint16_t *p = pci_dma_map(&vq->vdev->pci, addr, 2, true);
    uint16_t v = GUINT16_TO_LE(val);

    if (likely(p && QEMU_IS_ALIGNED((uintptr_t)p, 2))) {
        __atomic_store_n(p, v, __ATOMIC_RELAXED);
        return true;
    }
    return vring_write(vq, addr, &v, 2);
}

/* One descriptor (split or packed: same 16 bytes, different fields). */
typedef struct VRingDesc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;              /* split: next; packed: buffer id */
} VRingDesc;

/*
 * Read entry @i of the table at @table (@host: its mapping, or NULL), in
 * the queue's layout (packed rings and their indirect tables swap the
 * last two fields).
 */
static bool vring_read_desc(VirtQueue *vq, const uint8_t *host,
                            uint64_t table, unsigned i, VRingDesc *d)
{
    uint8_t raw[VRING_DESC_SIZE];

    if (host) {
        memcpy(raw, host + (size_t)i * VRING_DESC_SIZE, VRING_DESC_SIZE);
    } else if (!vring_read(vq, table + (uint64_t)i * VRING_DESC_SIZE, raw,
                           VRING_DESC_SIZE)) {
        return false;
    }
    d->addr = ldq_le_p(raw + VRING_DESC_ADDR);
    d->len = ldl_le_p(raw + VRING_DESC_LEN);
    if (vq->packed) {
        d->flags = lduw_le_p(raw + VRING_PACKED_DESC_FLAGS);
        d->next = lduw_le_p(raw + VRING_PACKED_DESC_ID);
    } else {
        d->flags = lduw_le_p(raw + VRING_DESC_FLAGS);
        d->next = lduw_le_p(raw + VRING_DESC_NEXT);
    }
    return true;
}

/* ---- element pool ---- */

static VirtQueueElement *vq_elem_get(VirtQueue *vq)
{
    VirtQueueElement *elem;

    g_assert(vq->nfree > 0);
    elem = vq->free_elems[--vq->nfree];
    elem->in_use = true;
    elem->out_num = elem->in_num = 0;
    elem->out_len = elem->in_len = 0;
    elem->bounce_in_num = 0;
    vq->inuse++;
    return elem;
}

static void vq_elem_put(VirtQueue *vq, VirtQueueElement *elem)
{
    g_assert(elem->in_use);
    g_clear_pointer(&elem->bounce, g_free);
    elem->bounce_in_num = 0;
    elem->in_use = false;
    vq->free_elems[vq->nfree++] = elem;
    vq->inuse--;
}

static void vq_release_holds(VirtQueue *vq, unsigned n)
{
    g_assert(n <= vq->holds);
    vq->holds -= n;
    while (n--) {
        pci_dma_release(&vq->vdev->pci);
    }
}

static bool vq_elem_grow(VirtQueueElement *elem)
{
    unsigned cap = elem->sg_cap * 2;

    if (elem->sg_cap >= VIRTQUEUE_MAX_SG) {
        return false;
    }
    cap = MIN(MAX(cap, 16u), (unsigned)VIRTQUEUE_MAX_SG);
    if (elem->sg == elem->sg_inline) {
        elem->sg = g_new(struct iovec, cap);
        memcpy(elem->sg, elem->sg_inline, sizeof(elem->sg_inline));
    } else {
        elem->sg = g_renew(struct iovec, elem->sg, cap);
    }
    elem->sg_cap = cap;
    return true;
}

/* ---- popping: chain walk, then mapping ---- */

typedef struct ChainWalk {
    unsigned nsegs;
    uint64_t out_len, in_len;
    bool seen_in;
} ChainWalk;

/*
 * Spec: virtio 1.2 2.7.4.2 (device-writable after device-readable), 2.7.5.2
 * (at most 2^32 bytes).
 */
static bool vq_add_seg(VirtQueue *vq, ChainWalk *w, const VRingDesc *d)
{
    VirtIODevice *vdev = vq->vdev;
    bool write = d->flags & VRING_DESC_F_WRITE;

    if (d->addr + d->len < d->addr) {
        trace_virtio_err_len_overflow(virtio_id(vdev), vq->index, d->addr,
                                      d->len);
        virtio_set_needs_reset(vdev);
        return false;
    }
    if (write) {
        w->in_len += d->len;
        w->seen_in = true;
    } else if (w->seen_in) {
        trace_virtio_err_desc_order(virtio_id(vdev), vq->index);
        virtio_set_needs_reset(vdev);
        return false;
    } else {
        w->out_len += d->len;
    }
    if (w->in_len > UINT32_MAX || w->out_len > UINT32_MAX) {
        trace_virtio_err_len_overflow(virtio_id(vdev), vq->index, d->addr,
                                      d->len);
        virtio_set_needs_reset(vdev);
        return false;
    }
    if (w->nsegs >= vq->num) {
        trace_virtio_err_chain_too_long(virtio_id(vdev), vq->index,
                                        w->nsegs + 1, vq->num);
        virtio_set_needs_reset(vdev);
        return false;
    }
    vq->segs[w->nsegs++] = (VirtQueueSeg) {
        .addr = d->addr, .len = d->len, .write = write,
    };
    return true;
}

/*
 * Checks an indirect descriptor met at chain position @count.  Spec: virtio
 * 1.2 2.7.5.3.1 (not nested, not with NEXT, only if negotiated).
 */
static bool vq_indirect_ok(VirtQueue *vq, const VRingDesc *d, unsigned count,
                           bool nested)
{
    VirtIODevice *vdev = vq->vdev;

    if (nested) {
        trace_virtio_err_nested_indirect(virtio_id(vdev), vq->index);
        virtio_set_needs_reset(vdev);
        return false;
    }
    if (!virtio_has_feature(vdev, VIRTIO_F_INDIRECT_DESC) || count ||
        (d->flags & VRING_DESC_F_NEXT) || !d->len ||
        d->len % VRING_DESC_SIZE) {
        trace_virtio_err_indirect(virtio_id(vdev), vq->index, d->len,
                                  d->flags, count);
        virtio_set_needs_reset(vdev);
        return false;
    }
    if (d->len / VRING_DESC_SIZE > vq->num) {
        trace_virtio_err_chain_too_long(virtio_id(vdev), vq->index,
                                        d->len / VRING_DESC_SIZE, vq->num);
        virtio_set_needs_reset(vdev);
        return false;
    }
    if (d->addr + d->len < d->addr) {
        trace_virtio_err_len_overflow(virtio_id(vdev), vq->index, d->addr,
                                      d->len);
        virtio_set_needs_reset(vdev);
        return false;
    }
    return true;
}

/*
 * Append @s to sg[base + *n ...] zero copy, merging with the previous
 * entry when contiguous on the host.  -EFAULT when it is not directly
 * mapped in one piece (no fd, unmapped, or across two mappings): the
 * caller bounces the element then, which also tells the unmapped apart.
 */
static int vq_map_seg(VirtQueue *vq, VirtQueueElement *elem, unsigned base,
                      unsigned *n, const VirtQueueSeg *s)
{
    struct iovec *prev;
    uint8_t *p;

    if (!s->len) {
        return 0;
    }
    p = pci_dma_map(&vq->vdev->pci, s->addr, s->len, s->write);
    if (!p) {
        return -EFAULT;
    }
    prev = *n ? &elem->sg[base + *n - 1] : NULL;
    if (prev && (uint8_t *)prev->iov_base + prev->iov_len == p) {
        prev->iov_len += s->len;
        return 0;
    }
    if (base + *n == elem->sg_cap && !vq_elem_grow(elem)) {
        return -ENOSPC;
    }
    elem->sg[base + *n].iov_base = p;
    elem->sg[base + *n].iov_len = s->len;
    (*n)++;
    return 0;
}

/*
 * Copy the device-readable bytes into a bounce buffer; the writable ones
 * go back to the guest when the element is filled.
 */
static bool vq_bounce(VirtQueue *vq, VirtQueueElement *elem,
                      const ChainWalk *w)
{
    VirtIODevice *vdev = vq->vdev;
    uint64_t total = w->out_len + w->in_len;
    uint64_t off = 0;

    if (total > VIRTIO_BOUNCE_MAX) {
        trace_virtio_err_bounce_too_big(virtio_id(vdev), vq->index, total);
        virtio_set_needs_reset(vdev);
        return false;
    }
    elem->bounce = g_malloc0(total ? total : 1);
    elem->bounce_in_num = 0;
    for (unsigned i = 0; i < w->nsegs; i++) {
        const VirtQueueSeg *s = &vq->segs[i];
        int r;

        if (s->write) {
            if (elem->bounce_in_num == elem->bounce_in_cap) {
                elem->bounce_in_cap = MAX(4u, elem->bounce_in_cap * 2);
                elem->bounce_in = g_renew(VirtQueueSeg, elem->bounce_in,
                                          elem->bounce_in_cap);
            }
            elem->bounce_in[elem->bounce_in_num++] = *s;
            continue;
        }
        r = pci_dma_read(&vdev->pci, s->addr, elem->bounce + off, s->len);
        if (r < 0) {
            trace_virtio_err_bad_addr(virtio_id(vdev), vq->index, s->addr,
                                      s->len);
            virtio_set_needs_reset(vdev);
            return false;
        }
        off += s->len;
    }
    elem->out_num = elem->in_num = 0;
    if (w->out_len) {
        elem->sg[0].iov_base = elem->bounce;
        elem->sg[0].iov_len = w->out_len;
        elem->out_num = 1;
    }
    if (w->in_len) {
        elem->sg[elem->out_num].iov_base = elem->bounce + w->out_len;
        elem->sg[elem->out_num].iov_len = w->in_len;
        elem->in_num = 1;
    }
    return true;
}

/* Turn the collected chain into an element (zero copy, else bounced). */
static VirtQueueElement *vq_make_elem(VirtQueue *vq, const ChainWalk *w,
                                      unsigned index, unsigned ndescs)
{
    VirtIODevice *vdev = vq->vdev;
    VirtQueueElement *elem = vq_elem_get(vq);
    unsigned nout = 0, nin = 0;
    int r = 0;

    elem->index = index;
    elem->ndescs = ndescs;
    elem->out_len = w->out_len;
    elem->in_len = w->in_len;
    for (unsigned i = 0; i < w->nsegs && r == 0; i++) {
        const VirtQueueSeg *s = &vq->segs[i];

        if (s->write) {
            r = vq_map_seg(vq, elem, nout, &nin, s);
        } else {
            r = vq_map_seg(vq, elem, 0, &nout, s);
        }
    }
    if (r == 0) {
        elem->out_num = nout;
        elem->in_num = nin;
    } else if (!vq_bounce(vq, elem, w)) {
        vq_elem_put(vq, elem);
        return NULL;
    }
    elem->out_sg = elem->sg;
    elem->in_sg = elem->sg + elem->out_num;
    pci_dma_hold(&vdev->pci);
    vq->holds++;
    trace_virtio_pop(virtio_id(vdev), vq->index, index, elem->out_num,
                     elem->in_num, elem->bounce != NULL);
    return elem;
}

/* Split ring: is an entry available?  Reads avail->idx when needed. */
static bool vq_split_avail(VirtQueue *vq)
{
    uint16_t idx;

    if (vq->shadow_avail_idx != vq->last_avail_idx) {
        return true;
    }
    if (!vring_get16(vq, vq->area[VIRTQUEUE_AREA_DRIVER] + VRING_AVAIL_IDX,
                     &idx)) {
        return false;
    }
    if ((uint16_t)(idx - vq->last_avail_idx) > vq->num) {
        trace_virtio_err_avail_idx(virtio_id(vq->vdev), vq->index, idx,
                                   vq->last_avail_idx, vq->num);
        virtio_set_needs_reset(vq->vdev);
        return false;
    }
    vq->shadow_avail_idx = idx;
    if (idx == vq->last_avail_idx) {
        return false;
    }
    /* Read the ring entries after the index that published them. */
    smp_rmb();
    return true;
}

static VirtQueueElement *vq_split_pop(VirtQueue *vq)
{
    VirtIODevice *vdev = vq->vdev;
    unsigned num = vq->num, max = num, count = 0, head, i;
    uint64_t table = vq->area[VIRTQUEUE_AREA_DESC];
    const uint8_t *host;
    bool indirect = false;
    ChainWalk w = { 0 };
    uint16_t head16;

    if (!vq_split_avail(vq)) {
        return NULL;
    }
    if (!vring_get16(vq, vq->area[VIRTQUEUE_AREA_DRIVER] + VRING_AVAIL_RING +
                     2ULL * (vq->last_avail_idx % num), &head16)) {
        return NULL;
    }
    head = head16;
    if (head >= num) {
        trace_virtio_err_head(virtio_id(vdev), vq->index, head, num);
        virtio_set_needs_reset(vdev);
        return NULL;
    }
    host = pci_dma_map(&vdev->pci, table, (uint64_t)num * VRING_DESC_SIZE,
                       false);
    i = head;
    for (;;) {
        VRingDesc d;

        if (!vring_read_desc(vq, host, table, i, &d)) {
            return NULL;
        }
        if (d.flags & VRING_DESC_F_INDIRECT) {
            if (!vq_indirect_ok(vq, &d, count, indirect)) {
                return NULL;
            }
            indirect = true;
            table = d.addr;
            max = d.len / VRING_DESC_SIZE;
            host = pci_dma_map(&vdev->pci, table, d.len, false);
            i = 0;
            continue;
        }
        if (++count > max) {
            trace_virtio_err_desc_loop(virtio_id(vdev), vq->index, head,
                                       max);
            virtio_set_needs_reset(vdev);
            return NULL;
        }
        if (!vq_add_seg(vq, &w, &d)) {
            return NULL;
        }
        if (!(d.flags & VRING_DESC_F_NEXT)) {
            break;
        }
        if (d.next >= max) {
            trace_virtio_err_desc_next(virtio_id(vdev), vq->index, d.next,
                                       max);
            virtio_set_needs_reset(vdev);
            return NULL;
        }
        i = d.next;
    }
    vq->last_avail_idx++;
    if (vq->notification && !vq->polled &&
        virtio_has_feature(vdev, VIRTIO_F_EVENT_IDX)) {
        vring_set16(vq, vq->area[VIRTQUEUE_AREA_DEVICE] +
                    vring_used_avail_event_off(num), vq->last_avail_idx);
    }
    return vq_make_elem(vq, &w, head, 1);
}

/* Packed ring: is the descriptor at @slot available in lap @wrap? */
static bool vq_packed_avail(VirtQueue *vq, unsigned slot, bool wrap)
{
    uint16_t flags;
    bool avail, used;

    if (!vring_get16(vq, vq->area[VIRTQUEUE_AREA_DESC] +
                     (uint64_t)slot * VRING_PACKED_DESC_SIZE +
                     VRING_PACKED_DESC_FLAGS, &flags)) {
        return false;
    }
    avail = flags & VRING_PACKED_DESC_F_AVAIL;
    used = flags & VRING_PACKED_DESC_F_USED;
    return avail == wrap && used != wrap;
}

static void vq_packed_advance(VirtQueue *vq, uint16_t *idx, bool *wrap,
                              unsigned n)
{
    unsigned v = *idx + n;

    if (v >= vq->num) {
        v -= vq->num;
        *wrap = !*wrap;
    }
    *idx = v;
}

static void vq_packed_publish_avail(VirtQueue *vq)
{
    uint16_t off_wrap = vq->last_avail_idx |
        ((uint16_t)vq->last_avail_wrap << VRING_PACKED_EVENT_WRAP_SHIFT);

    vring_set16(vq, vq->area[VIRTQUEUE_AREA_DEVICE] +
                VRING_PACKED_EVENT_OFF_WRAP, off_wrap);
}

static VirtQueueElement *vq_packed_pop(VirtQueue *vq)
{
    VirtIODevice *vdev = vq->vdev;
    unsigned num = vq->num, slot = vq->last_avail_idx, count = 0;
    unsigned ndescs = 0;
    uint64_t ring = vq->area[VIRTQUEUE_AREA_DESC];
    const uint8_t *host;
    ChainWalk w = { 0 };
    uint16_t id = 0;

    if (!vq_packed_avail(vq, slot, vq->last_avail_wrap)) {
        return NULL;
    }
    /* Read the descriptors after the flags that made them available. */
    smp_rmb();
    host = pci_dma_map(&vdev->pci, ring, (uint64_t)num * VRING_DESC_SIZE,
                       false);
    for (;;) {
        VRingDesc d;

        if (!vring_read_desc(vq, host, ring, slot, &d)) {
            return NULL;
        }
        ndescs++;
        id = d.next;            /* the buffer id of the last descriptor */
        if (d.flags & VRING_DESC_F_INDIRECT) {
            const uint8_t *thost;
            unsigned n;

            if (!vq_indirect_ok(vq, &d, count, false)) {
                return NULL;
            }
            n = d.len / VRING_DESC_SIZE;
            thost = pci_dma_map(&vdev->pci, d.addr, d.len, false);
            for (unsigned k = 0; k < n; k++) {
                VRingDesc e;

                if (!vring_read_desc(vq, thost, d.addr, k, &e)) {
                    return NULL;
                }
                if (e.flags & VRING_DESC_F_INDIRECT) {
                    vq_indirect_ok(vq, &e, count, true);
                    return NULL;
                }
                if (!vq_add_seg(vq, &w, &e)) {
                    return NULL;
                }
            }
            break;
        }
        if (++count > num) {
            trace_virtio_err_chain_too_long(virtio_id(vdev), vq->index,
                                            count, num);
            virtio_set_needs_reset(vdev);
            return NULL;
        }
        if (!vq_add_seg(vq, &w, &d)) {
            return NULL;
        }
        if (!(d.flags & VRING_DESC_F_NEXT)) {
            break;
        }
        if (++slot == num) {
            slot = 0;
        }
    }
    vq_packed_advance(vq, &vq->last_avail_idx, &vq->last_avail_wrap,
                      ndescs);
    if (vq->notification && !vq->polled &&
        virtio_has_feature(vdev, VIRTIO_F_EVENT_IDX)) {
        vq_packed_publish_avail(vq);
    }
    return vq_make_elem(vq, &w, id, ndescs);
}

bool virtio_queue_ready(VirtQueue *vq)
{
    VirtIODevice *vdev = vq->vdev;

    return vq->enabled && (vdev->status & VIRTIO_CONFIG_S_DRIVER_OK) &&
           !vdev->broken && device_fetch_allowed(&vdev->pci.dev);
}

void *virtqueue_pop(VirtQueue *vq)
{
    VirtQueueElement *elem;

    if (!virtio_queue_ready(vq)) {
        return NULL;
    }
    if (vq->inuse >= vq->num) {
        /* A driver cannot have more buffers out than the queue holds. */
        if (!virtio_queue_empty(vq)) {
            trace_virtio_err_queue_full(virtio_id(vq->vdev), vq->index,
                                        vq->inuse);
            virtio_set_needs_reset(vq->vdev);
        }
        return NULL;
    }
    elem = vq->packed ? vq_packed_pop(vq) : vq_split_pop(vq);
    vq->nr_requests += elem != NULL;
    return elem;
}

unsigned virtqueue_pop_bytes(VirtQueue *vq, uint64_t size,
                             VirtQueueElement **elems, unsigned max)
{
    uint64_t got = 0;
    unsigned n = 0;

    while (n < max) {
        VirtQueueElement *elem = virtqueue_pop(vq);

        if (!elem) {
            break;
        }
        elems[n++] = elem;
        got += elem->in_len;
        if (got >= size) {
            return n;
        }
    }
    while (n) {
        virtqueue_unpop(vq, elems[--n]);
    }
    return 0;
}

void virtqueue_unpop(VirtQueue *vq, VirtQueueElement *elem)
{
    if (vq->packed) {
        if (vq->last_avail_idx < elem->ndescs) {
            vq->last_avail_idx += vq->num;
            vq->last_avail_wrap = !vq->last_avail_wrap;
        }
        vq->last_avail_idx -= elem->ndescs;
    } else {
        vq->last_avail_idx--;
    }
    vq_elem_put(vq, elem);
    vq_release_holds(vq, 1);
}

void virtqueue_detach_element(VirtQueue *vq, VirtQueueElement *elem)
{
    vq_elem_put(vq, elem);
    vq_release_holds(vq, 1);
}

/* ---- used ring ---- */

/* Copy what the device wrote into a bounced element back to the guest. */
static void vq_unbounce(VirtQueue *vq, VirtQueueElement *elem, uint32_t len)
{
    VirtIODevice *vdev = vq->vdev;
    const uint8_t *src = elem->bounce + elem->out_len;

    for (unsigned i = 0; i < elem->bounce_in_num && len; i++) {
        const VirtQueueSeg *s = &elem->bounce_in[i];
        uint32_t n = MIN(len, s->len);
        int r;

        r = pci_dma_write(&vdev->pci, s->addr, src, n);
        if (r < 0) {
            trace_virtio_err_bad_addr(virtio_id(vdev), vq->index, s->addr,
                                      n);
            virtio_set_needs_reset(vdev);
            return;
        }
        src += n;
        len -= n;
    }
}

void virtqueue_fill(VirtQueue *vq, VirtQueueElement *elem, uint32_t len,
                    unsigned idx)
{
    VirtIODevice *vdev = vq->vdev;

    g_assert(idx < vq->max_num);
    len = MIN((uint64_t)len, elem->in_len);
    trace_virtio_fill(virtio_id(vdev), vq->index, elem->index, len, idx);
    if (elem->bounce && !vdev->broken) {
        vq_unbounce(vq, elem, len);
    }
    if (vq->enabled && !vdev->broken && idx < vq->num) {
        if (vq->packed) {
            vq->used_batch[idx] = (VirtQueueUsed) {
                .id = elem->index, .ndescs = elem->ndescs, .len = len,
                .write = elem->in_len != 0,
            };
        } else {
            uint8_t ue[VRING_USED_ELEM_SIZE];
            uint64_t pos = (uint16_t)(vq->used_idx + idx) % vq->num;

            stl_le_p(ue + VRING_USED_ELEM_ID, elem->index);
            stl_le_p(ue + VRING_USED_ELEM_LEN, len);
            vring_write(vq, vq->area[VIRTQUEUE_AREA_DEVICE] +
                        VRING_USED_RING + pos * VRING_USED_ELEM_SIZE, ue,
                        sizeof(ue));
        }
    }
    vq_elem_put(vq, elem);
    vq->filled++;
}

static void vq_packed_write_used(VirtQueue *vq, unsigned slot, bool wrap,
                                 const VirtQueueUsed *u)
{
    uint64_t addr = vq->area[VIRTQUEUE_AREA_DESC] +
                    (uint64_t)slot * VRING_PACKED_DESC_SIZE;
    uint8_t idlen[6];
    uint16_t flags = 0;

    stl_le_p(idlen, u->len);
    stw_le_p(idlen + 4, u->id);
    if (!vring_write(vq, addr + VRING_PACKED_DESC_LEN, idlen,
                     sizeof(idlen))) {
        return;
    }
    if (wrap) {
        flags = VRING_PACKED_DESC_F_AVAIL | VRING_PACKED_DESC_F_USED;
    }
    if (u->write) {
        flags |= VRING_DESC_F_WRITE;
    }
    /* The id and length are visible before the flags that publish them. */
    smp_wmb();
    vring_set16(vq, addr + VRING_PACKED_DESC_FLAGS, flags);
}

static void vq_packed_flush(VirtQueue *vq, unsigned count)
{
    uint16_t first = vq->used_idx, pos = vq->used_idx;
    bool first_wrap = vq->used_wrap, wrap = vq->used_wrap;

    /*
     * Write the batch's first descriptor last: the driver sees all of it
     * or none.
     */
    vq_packed_advance(vq, &pos, &wrap, vq->used_batch[0].ndescs);
    for (unsigned i = 1; i < count && !vq->vdev->broken; i++) {
        vq_packed_write_used(vq, pos, wrap, &vq->used_batch[i]);
        vq_packed_advance(vq, &pos, &wrap, vq->used_batch[i].ndescs);
    }
    if (!vq->vdev->broken) {
        vq_packed_write_used(vq, first, first_wrap, &vq->used_batch[0]);
    }
    vq->used_idx = pos;
    vq->used_wrap = wrap;
}

void virtqueue_flush(VirtQueue *vq, unsigned count)
{
    VirtIODevice *vdev = vq->vdev;
    unsigned n = MIN(count, vq->filled);

    if (count && vq->enabled && !vdev->broken && count <= vq->num) {
        if (vq->packed) {
            vq_packed_flush(vq, count);
        } else {
            uint16_t old = vq->used_idx;
            uint16_t new = old + count;
            int16_t since_signal = new - vq->signalled_used;

            /* Used elements are visible before the index. */
            smp_wmb();
            vring_set16(vq, vq->area[VIRTQUEUE_AREA_DEVICE] + VRING_USED_IDX,
                        new);
            vq->used_idx = new;
            /* The last signalled index fell out of the 16-bit window. */
            if (since_signal < (uint16_t)(new - old)) {
                vq->signalled_used_valid = false;
            }
        }
    }
    vq->filled -= n;
    vq_release_holds(vq, n);
}

void virtqueue_push(VirtQueue *vq, VirtQueueElement *elem, uint32_t len)
{
    virtqueue_fill(vq, elem, len, 0);
    virtqueue_flush(vq, 1);
}

void virtqueue_push_batch(VirtQueue *vq, VirtQueueElement **elems,
                          const uint32_t *lens, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        virtqueue_fill(vq, elems[i], lens[i], i);
    }
    virtqueue_flush(vq, n);
}

/* ---- notification suppression ---- */

bool virtio_queue_empty(VirtQueue *vq)
{
    if (!virtio_queue_ready(vq)) {
        return true;
    }
    if (vq->packed) {
        return !vq_packed_avail(vq, vq->last_avail_idx, vq->last_avail_wrap);
    }
    return !vq_split_avail(vq);
}

/* Publish what the device wants, unless the loop polls the ring. */
static void vq_apply_notification(VirtQueue *vq)
{
    VirtIODevice *vdev = vq->vdev;
    bool event_idx = virtio_has_feature(vdev, VIRTIO_F_EVENT_IDX);
    bool enable = vq->notification && !vq->polled;

    if (!vq->enabled || vdev->broken) {
        return;
    }
    if (vq->packed) {
        uint16_t flags = VRING_PACKED_EVENT_FLAG_DISABLE;

        if (enable && event_idx) {
            vq_packed_publish_avail(vq);
            smp_wmb();
            flags = VRING_PACKED_EVENT_FLAG_DESC;
        } else if (enable) {
            flags = VRING_PACKED_EVENT_FLAG_ENABLE;
        }
        vring_set16(vq, vq->area[VIRTQUEUE_AREA_DEVICE] +
                    VRING_PACKED_EVENT_FLAGS, flags);
    } else if (event_idx) {
        if (enable) {
            /* Ask for a notification once the driver goes past here. */
            uint16_t idx;

            if (vring_get16(vq, vq->area[VIRTQUEUE_AREA_DRIVER] +
                            VRING_AVAIL_IDX, &idx)) {
                vring_set16(vq, vq->area[VIRTQUEUE_AREA_DEVICE] +
                            vring_used_avail_event_off(vq->num), idx);
            }
        }
    } else {
        vring_set16(vq, vq->area[VIRTQUEUE_AREA_DEVICE] + VRING_USED_FLAGS,
                    enable ? 0 : VRING_USED_F_NO_NOTIFY);
    }
    if (enable) {
        /* Publish before the caller looks at the ring again. */
        smp_mb();
    }
}

void virtio_queue_set_notification(VirtQueue *vq, bool enable)
{
    vq->notification = enable;
    vq_apply_notification(vq);
}

/* Spec: virtio 1.2 2.7.7.2. */
static bool vq_split_should_notify(VirtQueue *vq)
{
    uint16_t old, new, v;
    bool valid;

    if (!virtio_has_feature(vq->vdev, VIRTIO_F_EVENT_IDX)) {
        if (!vring_get16(vq, vq->area[VIRTQUEUE_AREA_DRIVER] +
                         VRING_AVAIL_FLAGS, &v)) {
            return false;
        }
        return !(v & VRING_AVAIL_F_NO_INTERRUPT);
    }
    valid = vq->signalled_used_valid;
    old = vq->signalled_used;
    new = vq->signalled_used = vq->used_idx;
    vq->signalled_used_valid = true;
    if (!vring_get16(vq, vq->area[VIRTQUEUE_AREA_DRIVER] +
                     vring_avail_used_event_off(vq->num), &v)) {
        return false;
    }
    return !valid || vring_need_event(v, new, old);
}

/* Spec: virtio 1.2 2.8.10, 2.8.14. */
static bool vq_packed_should_notify(VirtQueue *vq)
{
    uint64_t ev = vq->area[VIRTQUEUE_AREA_DRIVER];
    uint16_t flags, off_wrap, old = vq->signalled_used, e;
    bool old_wrap = vq->signalled_used_wrap;
    bool valid = vq->signalled_used_valid;
    uint16_t new = vq->used_idx;

    vq->signalled_used = new;
    vq->signalled_used_wrap = vq->used_wrap;
    vq->signalled_used_valid = true;
    if (!vring_get16(vq, ev + VRING_PACKED_EVENT_FLAGS, &flags)) {
        return false;
    }
    flags &= VRING_PACKED_EVENT_FLAGS_MASK;
    if (flags == VRING_PACKED_EVENT_FLAG_DISABLE) {
        return false;
    }
    if (flags != VRING_PACKED_EVENT_FLAG_DESC ||
        !virtio_has_feature(vq->vdev, VIRTIO_F_EVENT_IDX) || !valid) {
        return true;
    }
    smp_rmb();
    if (!vring_get16(vq, ev + VRING_PACKED_EVENT_OFF_WRAP, &off_wrap)) {
        return false;
    }
    /* Express the event and the old position relative to this lap. */
    e = off_wrap & ~(1u << VRING_PACKED_EVENT_WRAP_SHIFT);
    if ((bool)(off_wrap >> VRING_PACKED_EVENT_WRAP_SHIFT) != vq->used_wrap) {
        e -= vq->num;
    }
    if (old_wrap != vq->used_wrap) {
        old -= vq->num;
    } else if (old > new) {
        return true;            /* more than a lap since: just notify */
    }
    return vring_need_event(e, new, old);
}

void virtio_notify(VirtIODevice *vdev, VirtQueue *vq)
{
    bool need;

    if (!vq->enabled || vdev->broken) {
        return;
    }
    /* The used index is visible before we read what the driver wants. */
    smp_mb();
    need = vq->packed ? vq_packed_should_notify(vq)
                      : vq_split_should_notify(vq);
    if (!need) {
        vq->nr_suppressed++;
        return;
    }
    vq->nr_notifications++;
    trace_virtio_notify(virtio_id(vdev), vq->index, vq->vector);
    if (!pci_msix_enabled(&vdev->pci)) {
        vdev->isr |= VIRTIO_PCI_ISR_QUEUE;
    }
    virtio_pci_raise_irq(vdev, vq->vector);
}

void virtio_notify_later(VirtIODevice *vdev, VirtQueue *vq)
{
    vq->irq_pending = true;
    device_bh_schedule(vdev->complete_bh);
}

static void vq_apply_notification(VirtQueue *vq);

/*
 * A loaded device runs: publish each queue's notification suppression
 * as this device wants it (the source may have been busy-polling, with
 * notifications suppressed in the rings).
 */
static void virtio_resync(VirtIODevice *vdev)
{
    vdev->resync = false;
    for (unsigned i = 0; i < vdev->nvqs; i++) {
        vq_apply_notification(vdev->vq[i]);
    }
}

/*
 * Work: publish what backends completed, then notify, per queue; and
 * what a loaded state owes the driver.
 */
static void virtio_complete_bh(void *opaque)
{
    VirtIODevice *vdev = opaque;

    if (vdev->resync) {
        virtio_resync(vdev);
    }
    if (vdev->config_irq_pending) {
        vdev->config_irq_pending = false;
        virtio_notify_config(vdev);
    }
    for (unsigned i = 0; i < vdev->nvqs; i++) {
        VirtQueue *vq = vdev->vq[i];
        unsigned n = vq->ndone;

        if (n) {
            for (unsigned j = 0; j < n; j++) {
                virtqueue_fill(vq, vq->done[j], vq->done_len[j], j);
            }
            virtqueue_flush(vq, n);
            /* More may have completed while a bounce copy parked. */
            vq->ndone -= n;
            memmove(vq->done, vq->done + n, vq->ndone * sizeof(vq->done[0]));
            memmove(vq->done_len, vq->done_len + n,
                    vq->ndone * sizeof(vq->done_len[0]));
            vq->irq_pending = true;
        }
        if (vq->irq_pending) {
            vq->irq_pending = false;
            virtio_notify(vdev, vq);
        }
    }
}

void virtqueue_complete(VirtQueue *vq, VirtQueueElement *elem, uint32_t len)
{
    VirtIODevice *vdev = vq->vdev;

    if (device_resetting(&vdev->pci.dev)) {
        virtqueue_detach_element(vq, elem);     /* the driver is gone */
        return;
    }
    g_assert(vq->ndone < vq->max_num);
    vq->done[vq->ndone] = elem;
    vq->done_len[vq->ndone++] = len;
    device_bh_schedule(vdev->complete_bh);
}

void virtio_notify_config(VirtIODevice *vdev)
{
    vdev->generation++;
    if (!(vdev->status & VIRTIO_CONFIG_S_DRIVER_OK)) {
        return;
    }
    trace_virtio_notify_config(virtio_id(vdev), vdev->generation,
                               vdev->config_vector);
    vdev->isr |= VIRTIO_PCI_ISR_CONFIG;
    virtio_pci_raise_irq(vdev, vdev->config_vector);
}

/* ---- driver notifications and processing ---- */

static void virtio_queue_bh(void *opaque)
{
    VirtQueue *vq = opaque;

    /* Not ready: the kick is replayed on DRIVER_OK, resume or enable. */
    if (virtio_queue_ready(vq)) {
        vq->handle_output(vq->vdev, vq);
    }
}

static void virtio_kick_all(VirtIODevice *vdev)
{
    for (unsigned i = 0; i < vdev->nvqs; i++) {
        if (vdev->vq[i]->enabled) {
            device_bh_schedule(vdev->vq[i]->bh);
        }
    }
}

void virtio_queue_notify(VirtIODevice *vdev, unsigned n)
{
    if (n >= vdev->nvqs) {
        trace_virtio_err_notify(virtio_id(vdev), n);
        return;
    }
    trace_virtio_queue_notify(virtio_id(vdev), n);
    vdev->vq[n]->nr_kicks++;
    device_bh_schedule(vdev->vq[n]->bh);
}

/* ---- queue registers ---- */

VirtQueue *virtio_get_queue(VirtIODevice *vdev, unsigned n)
{
    return n < vdev->nvqs ? vdev->vq[n] : NULL;
}

unsigned virtio_queue_index(VirtQueue *vq)
{
    return vq->index;
}

VirtIODevice *virtio_queue_device(VirtQueue *vq)
{
    return vq->vdev;
}

unsigned virtio_queue_get_num(VirtQueue *vq)
{
    return vq->num;
}

unsigned virtio_queue_get_max_num(VirtQueue *vq)
{
    return vq->max_num;
}

void virtio_queue_set_num(VirtQueue *vq, unsigned num)
{
    VirtIODevice *vdev = vq->vdev;
    bool packed = virtio_has_feature(vdev, VIRTIO_F_RING_PACKED);

    if (vq->enabled) {
        trace_virtio_err_queue_enabled(virtio_id(vdev), vq->index);
        return;
    }
    if (!num || num > vq->max_num || (!packed && (num & (num - 1)))) {
        trace_virtio_err_queue_size(virtio_id(vdev), vq->index, num,
                                    vq->max_num);
        virtio_set_needs_reset(vdev);
        return;
    }
    vq->num = num;
}

uint16_t virtio_queue_get_vector(VirtQueue *vq)
{
    return vq->vector;
}

void virtio_queue_set_vector(VirtQueue *vq, uint16_t vector)
{
    vq->vector = vector;
}

uint64_t virtio_queue_get_area(VirtQueue *vq, VirtQueueArea area)
{
    return vq->area[area];
}

void virtio_queue_set_area(VirtQueue *vq, VirtQueueArea area, uint64_t addr)
{
    if (vq->enabled) {
        trace_virtio_err_queue_enabled(virtio_id(vq->vdev), vq->index);
        return;
    }
    vq->area[area] = addr;
}

bool virtio_queue_enabled(VirtQueue *vq)
{
    return vq->enabled;
}

/* Spec: virtio 1.2 2.7.1 (split ring alignment), 2.8.10.1 (packed). */
static bool vq_areas_aligned(const uint64_t *a, bool packed)
{
    if (!QEMU_IS_ALIGNED(a[VIRTQUEUE_AREA_DESC], VRING_DESC_ALIGN)) {
        return false;
    }
    if (packed) {
        return QEMU_IS_ALIGNED(a[VIRTQUEUE_AREA_DRIVER],
                               VRING_PACKED_EVENT_ALIGN) &&
               QEMU_IS_ALIGNED(a[VIRTQUEUE_AREA_DEVICE],
                               VRING_PACKED_EVENT_ALIGN);
    }
    return QEMU_IS_ALIGNED(a[VIRTQUEUE_AREA_DRIVER], VRING_AVAIL_ALIGN) &&
           QEMU_IS_ALIGNED(a[VIRTQUEUE_AREA_DEVICE], VRING_USED_ALIGN);
}

void virtio_queue_enable(VirtQueue *vq)
{
    VirtIODevice *vdev = vq->vdev;
    bool packed = virtio_has_feature(vdev, VIRTIO_F_RING_PACKED);
    uint64_t *a = vq->area;

    if (vq->enabled) {
        return;
    }
    if (!vq_areas_aligned(a, packed)) {
        trace_virtio_err_queue_align(virtio_id(vdev), vq->index,
                                     a[VIRTQUEUE_AREA_DESC],
                                     a[VIRTQUEUE_AREA_DRIVER],
                                     a[VIRTQUEUE_AREA_DEVICE]);
        virtio_set_needs_reset(vdev);
        return;
    }
    vq->packed = packed;
    vq->last_avail_idx = vq->shadow_avail_idx = 0;
    vq->used_idx = 0;
    vq->last_avail_wrap = vq->used_wrap = true;
    vq->signalled_used = 0;
    vq->signalled_used_wrap = true;
    vq->signalled_used_valid = false;
    vq->notification = true;
    vq->poll_seen = 0;
    vq->poll_found = false;
    vq->enabled = true;
    trace_virtio_queue_enable(virtio_id(vdev), vq->index, vq->num, packed,
                              a[VIRTQUEUE_AREA_DESC],
                              a[VIRTQUEUE_AREA_DRIVER],
                              a[VIRTQUEUE_AREA_DEVICE]);
    device_bh_schedule(vq->bh);
}

/* ---- status, features, config ---- */

uint8_t virtio_get_status(VirtIODevice *vdev)
{
    return vdev->status;
}

void virtio_set_driver_features(VirtIODevice *vdev, unsigned sel,
                                uint32_t val)
{
    if (vdev->status & VIRTIO_CONFIG_S_FEATURES_OK) {
        trace_virtio_err_features_locked(virtio_id(vdev));
        return;
    }
    if (sel == 0) {
        vdev->guest_features = (vdev->guest_features & ~0xffffffffULL) | val;
    } else if (sel == 1) {
        vdev->guest_features = (vdev->guest_features & 0xffffffffULL) |
                               ((uint64_t)val << 32);
    }
}

/* Spec: virtio 1.2 2.2.2, 3.1.1 (FEATURES_OK). */
static bool virtio_features_ok(VirtIODevice *vdev)
{
    uint64_t f = vdev->guest_features;

    if ((f & ~vdev->host_features) || !(f & VIRTIO_BIT(VIRTIO_F_VERSION_1))) {
        trace_virtio_err_features(virtio_id(vdev), f, vdev->host_features);
        return false;
    }
    if (vdev->ops->validate_features &&
        !vdev->ops->validate_features(vdev, f)) {
        trace_virtio_err_features(virtio_id(vdev), f, vdev->host_features);
        return false;
    }
    trace_virtio_features_ok(virtio_id(vdev), f);
    if (vdev->ops->set_features) {
        vdev->ops->set_features(vdev, f);
    }
    return true;
}

/* Spec: virtio 1.2 2.1.2, 2.4.1 (0 resets the device). */
void virtio_set_status(VirtIODevice *vdev, uint8_t val)
{
    uint8_t old = vdev->status & ~VIRTIO_CONFIG_S_NEEDS_RESET;
    uint8_t added;

    trace_virtio_set_status(virtio_id(vdev), vdev->status, val);
    if (val == 0) {
        /* Done when device_status reads 0 (the client waits till then). */
        device_reset(&vdev->pci.dev, DEVICE_RESET_DEVICE, NULL, NULL);
        return;
    }
    val &= ~VIRTIO_CONFIG_S_NEEDS_RESET;
    if (old & ~val) {
        /* Only a reset clears status bits. */
        trace_virtio_err_status(virtio_id(vdev), vdev->status, val);
        return;
    }
    added = val & ~old;
    if ((added & VIRTIO_CONFIG_S_FEATURES_OK) && !virtio_features_ok(vdev)) {
        val &= ~VIRTIO_CONFIG_S_FEATURES_OK;
        added &= ~VIRTIO_CONFIG_S_FEATURES_OK;
    }
    if ((added & VIRTIO_CONFIG_S_DRIVER_OK) &&
        !(val & VIRTIO_CONFIG_S_FEATURES_OK)) {
        trace_virtio_err_driver_ok(virtio_id(vdev), val);
        vdev->status = (val & ~VIRTIO_CONFIG_S_DRIVER_OK) |
                       (vdev->status & VIRTIO_CONFIG_S_NEEDS_RESET);
        virtio_set_needs_reset(vdev);
        return;
    }
    vdev->status = val | (vdev->status & VIRTIO_CONFIG_S_NEEDS_RESET);
    if (vdev->ops->set_status) {
        vdev->ops->set_status(vdev, vdev->status);
    }
    if (added & VIRTIO_CONFIG_S_DRIVER_OK) {
        virtio_kick_all(vdev);
    }
}

uint32_t virtio_config_read(VirtIODevice *vdev, uint32_t addr,
                            unsigned size)
{
    if (!range_within(addr, size, vdev->config_len)) {
        return 0;
    }
    if (vdev->ops->get_config) {
        vdev->ops->get_config(vdev, vdev->config);
    }
    return ldn_le_p(vdev->config + addr, size);
}

void virtio_config_write(VirtIODevice *vdev, uint32_t addr, uint32_t val,
                         unsigned size)
{
    if (!range_within(addr, size, vdev->config_len)) {
        return;
    }
    if (vdev->ops->get_config) {
        vdev->ops->get_config(vdev, vdev->config);
    }
    stn_le_p(vdev->config + addr, size, val);
    if (vdev->ops->set_config) {
        vdev->ops->set_config(vdev, vdev->config);
    }
}

/* ---- reset, pause ---- */

static void vq_reset(VirtQueue *vq)
{
    device_bh_cancel(vq->bh);
    g_assert(vq->ndone == 0);
    for (unsigned i = 0; i < vq->max_num; i++) {
        VirtQueueElement *elem = pool_elem(vq, i);

        if (elem->in_use) {
            /* Nothing is in flight: an element the device lost. */
            trace_virtio_reset_leak(virtio_id(vq->vdev), vq->index,
                                    elem->index);
            vq_elem_put(vq, elem);
        }
    }
    vq_release_holds(vq, vq->holds);
    vq->filled = 0;
    vq->enabled = false;
    vq->num = vq->max_num;
    vq->vector = VIRTIO_MSI_NO_VECTOR;
    memset(vq->area, 0, sizeof(vq->area));
    vq->packed = false;
    vq->last_avail_idx = vq->shadow_avail_idx = vq->used_idx = 0;
    vq->last_avail_wrap = vq->used_wrap = true;
    vq->signalled_used = 0;
    vq->signalled_used_wrap = true;
    vq->signalled_used_valid = false;
    vq->notification = true;
    vq->irq_pending = false;
}

/* Reset step 3: completions that wait for the used ring are dropped. */
void virtio_device_quiesce(Device *dev, DeviceResetKind kind)
{
    VirtIODevice *vdev = VIRTIO_DEVICE(dev);

    device_bh_cancel(vdev->complete_bh);
    for (unsigned i = 0; i < vdev->nvqs; i++) {
        VirtQueue *vq = vdev->vq[i];

        while (vq->ndone) {
            virtqueue_detach_element(vq, vq->done[--vq->ndone]);
        }
    }
    if (vdev->ops->quiesce) {
        vdev->ops->quiesce(vdev, kind);
    }
}

/*
 * The one reset (step 4 of hw/core's): device_status 0 resets the virtio
 * state (DEVICE kind), a function reset the PCI function as well.
 */
void virtio_device_reset(Device *dev, DeviceResetKind kind)
{
    VirtIODevice *vdev = VIRTIO_DEVICE(dev);

    trace_virtio_reset(virtio_id(vdev), kind == DEVICE_RESET_FUNCTION);
    if (vdev->ops->reset) {
        vdev->ops->reset(vdev);
    }
    for (unsigned i = 0; i < vdev->nvqs; i++) {
        vq_reset(vdev->vq[i]);
    }
    device_bh_cancel(vdev->complete_bh);
    vdev->status = 0;
    vdev->isr = 0;
    vdev->guest_features = 0;
    vdev->dfselect = vdev->gfselect = 0;
    vdev->queue_select = 0;
    vdev->config_vector = VIRTIO_MSI_NO_VECTOR;
    vdev->broken = false;
    vdev->resync = vdev->config_irq_pending = false;
    if (kind == DEVICE_RESET_FUNCTION) {
        pci_device_reset(&vdev->pci);
    } else {
        virtio_pci_lower_intx(vdev);
    }
}

void virtio_device_run_state_changed(Device *dev, bool running)
{
    VirtIODevice *vdev = VIRTIO_DEVICE(dev);

    trace_virtio_pause(virtio_id(vdev), !running);
    if (running) {
        if (vdev->resync) {
            device_bh_schedule(vdev->complete_bh);
        }
        virtio_kick_all(vdev);
    }
}

/* ---- device state (live migration, upgrade) ---- */

#define VIRTIO_STATE_VERSION            1
#define VIRTQUEUE_STATE_VERSION         1

/* The core's state as saved, or as loaded before it is applied. */
typedef struct VirtioState {
    uint64_t host_features, guest_features;
    uint8_t status, generation;
    bool config_irq_pending;
} VirtioState;

/* One queue's, the same way. */
typedef struct VirtQueueState {
    uint32_t max_num;
    uint16_t num;
    bool enabled, packed;
    uint64_t area[VIRTQUEUE_AREA__MAX];
    uint16_t last_avail_idx, shadow_avail_idx, used_idx, signalled_used;
    bool last_avail_wrap, used_wrap, signalled_used_wrap;
    bool signalled_used_valid, notification, irq_pending;
} VirtQueueState;

static const char *const vq_area_names[VIRTQUEUE_AREA__MAX] = {
    [VIRTQUEUE_AREA_DESC] = "desc",
    [VIRTQUEUE_AREA_DRIVER] = "driver",
    [VIRTQUEUE_AREA_DEVICE] = "device",
};

void virtio_state_expect(StateSection *s, const char *name, const char *what,
                         uint32_t here)
{
    uint32_t v = state_get_u32(s, name);

    if (!state_section_failed(s) && v != here) {
        state_section_fail(s, "%s is %u in the state, %u here: a device "
                           "configured differently", what, v, here);
    }
}

void virtio_notify_config_on_start(VirtIODevice *vdev)
{
    vdev->config_irq_pending = true;
    device_bh_schedule(vdev->complete_bh);
}

static void vq_state_get(VirtQueue *vq, VirtQueueState *st)
{
    *st = (VirtQueueState) {
        .max_num = vq->max_num, .num = vq->num,
        .enabled = vq->enabled, .packed = vq->packed,
        .last_avail_idx = vq->last_avail_idx,
        .shadow_avail_idx = vq->shadow_avail_idx,
        .last_avail_wrap = vq->last_avail_wrap,
        .used_idx = vq->used_idx, .used_wrap = vq->used_wrap,
        .signalled_used = vq->signalled_used,
        .signalled_used_wrap = vq->signalled_used_wrap,
        .signalled_used_valid = vq->signalled_used_valid,
        .notification = vq->notification, .irq_pending = vq->irq_pending,
    };
    memcpy(st->area, vq->area, sizeof(st->area));
}

static void vq_state_set(VirtQueue *vq, const VirtQueueState *st)
{
    vq->num = st->num;
    vq->enabled = st->enabled;
    vq->packed = st->packed;
    memcpy(vq->area, st->area, sizeof(vq->area));
    vq->last_avail_idx = st->last_avail_idx;
    vq->shadow_avail_idx = st->shadow_avail_idx;
    vq->last_avail_wrap = st->last_avail_wrap;
    vq->used_idx = st->used_idx;
    vq->used_wrap = st->used_wrap;
    vq->signalled_used = st->signalled_used;
    vq->signalled_used_wrap = st->signalled_used_wrap;
    vq->signalled_used_valid = st->signalled_used_valid;
    vq->notification = st->notification;
    vq->irq_pending = st->irq_pending;
    /* The poller looks at the rings afresh. */
    vq->poll_seen = 0;
    vq->poll_found = false;
}

static void vq_save(VirtQueue *vq, StateWriter *w)
{
    g_autofree char *name = g_strdup_printf("virtio/vq/%u", vq->index);
    VirtQueueState st;

    /* Nothing in flight: every element popped was pushed or dropped. */
    g_assert(vq->inuse == 0 && vq->filled == 0 && vq->ndone == 0);
    vq_state_get(vq, &st);
    state_begin(w, name, VIRTQUEUE_STATE_VERSION);
    state_put_u32(w, "max-size", st.max_num);
    state_put_u16(w, "size", st.num);
    state_put_bool(w, "enabled", st.enabled);
    for (unsigned a = 0; a < VIRTQUEUE_AREA__MAX; a++) {
        state_put_u64(w, vq_area_names[a], st.area[a]);
    }
    state_put_bool(w, "packed", st.packed);
    state_put_u16(w, "last-avail-idx", st.last_avail_idx);
    state_put_u16(w, "shadow-avail-idx", st.shadow_avail_idx);
    state_put_bool(w, "last-avail-wrap", st.last_avail_wrap);
    state_put_u16(w, "used-idx", st.used_idx);
    state_put_bool(w, "used-wrap", st.used_wrap);
    state_put_u16(w, "signalled-used", st.signalled_used);
    state_put_bool(w, "signalled-used-wrap", st.signalled_used_wrap);
    state_put_bool(w, "signalled-used-valid", st.signalled_used_valid);
    state_put_bool(w, "notification", st.notification);
    state_put_bool(w, "irq-pending", st.irq_pending);
    state_end(w);
}

static void vq_state_read(StateSection *s, VirtQueueState *st)
{
    st->num = state_get_u16(s, "size");
    st->enabled = state_get_bool(s, "enabled");
    for (unsigned a = 0; a < VIRTQUEUE_AREA__MAX; a++) {
        st->area[a] = state_get_u64(s, vq_area_names[a]);
    }
    st->packed = state_get_bool(s, "packed");
    st->last_avail_idx = state_get_u16(s, "last-avail-idx");
    st->shadow_avail_idx = state_get_u16(s, "shadow-avail-idx");
    st->last_avail_wrap = state_get_bool(s, "last-avail-wrap");
    st->used_idx = state_get_u16(s, "used-idx");
    st->used_wrap = state_get_bool(s, "used-wrap");
    st->signalled_used = state_get_u16(s, "signalled-used");
    st->signalled_used_wrap = state_get_bool(s, "signalled-used-wrap");
    st->signalled_used_valid = state_get_bool(s, "signalled-used-valid");
    st->notification = state_get_bool(s, "notification");
    st->irq_pending = state_get_bool(s, "irq-pending");
}

/*
 * What the rings' code relies on: a size that virtio_queue_set_num()
 * would take, aligned areas (virtio_queue_enable()), and indexes no
 * further apart than a ring holds (vq_split_avail(), the packed slots).
 * Spec: virtio 1.2 2.6 (split sizes are powers of two), 2.7.1, 2.8.10.1.
 */
static void vq_state_check(VirtQueue *vq, const VirtQueueState *st,
                           StateSection *s)
{
    bool packed_offered = virtio_host_has_feature(vq->vdev,
                                                  VIRTIO_F_RING_PACKED);
    bool split = st->enabled ? !st->packed : !packed_offered;
    unsigned num = st->num;

    if (!num || num > vq->max_num || (split && (num & (num - 1)))) {
        state_section_fail(s, "size %u is not valid (at most %u, a power "
                           "of two for a split ring)", num, vq->max_num);
    } else if (!st->enabled) {
        return;                 /* the ring state is set when enabled */
    } else if (st->packed && !packed_offered) {
        state_section_fail(s, "a packed ring, which this device does not "
                           "offer");
    } else if (!vq_areas_aligned(st->area, st->packed)) {
        state_section_fail(s, "misaligned areas desc 0x%" PRIx64 " driver "
                           "0x%" PRIx64 " device 0x%" PRIx64,
                           st->area[0], st->area[1], st->area[2]);
    } else if (st->packed ? st->last_avail_idx >= num ||
                            st->used_idx >= num || st->signalled_used >= num
                          : (uint16_t)(st->shadow_avail_idx -
                                       st->last_avail_idx) > num ||
                            (uint16_t)(st->last_avail_idx -
                                       st->used_idx) > num) {
        state_section_fail(s, "ring indexes (avail %u, seen %u, used %u, "
                           "signalled %u) do not fit a %s ring of %u",
                           st->last_avail_idx, st->shadow_avail_idx,
                           st->used_idx, st->signalled_used,
                           st->packed ? "packed" : "split", num);
    }
}

static bool vq_load(VirtQueue *vq, StateReader *r, VirtQueueState *st,
                    GError **errp)
{
    g_autofree char *name = g_strdup_printf("virtio/vq/%u", vq->index);
    StateSection *s = state_section(r, name, VIRTQUEUE_STATE_VERSION, NULL,
                                    errp);

    if (!s) {
        return false;
    }
    virtio_state_expect(s, "max-size", "the queue's maximum size",
                        vq->max_num);
    vq_state_read(s, st);
    if (!state_section_failed(s)) {
        vq_state_check(vq, st, s);
    }
    return state_section_end(s, errp);
}

static void virtio_save_core(VirtIODevice *vdev, StateWriter *w)
{
    state_begin(w, "virtio", VIRTIO_STATE_VERSION);
    state_put_u32(w, "device-id", vdev->ops->device_id);
    state_put_u32(w, "num-queues", vdev->nvqs);
    state_put_u64(w, "features-offered", vdev->host_features);
    state_put_u64(w, "features", vdev->guest_features);
    /* NEEDS_RESET in it says the device is broken (the two go together). */
    state_put_u8(w, "status", vdev->status);
    state_put_u8(w, "generation", vdev->generation);
    state_put_bool(w, "config-irq-pending", vdev->config_irq_pending);
    state_end(w);
}

/* Spec: virtio 1.2 2.1 (status), 3.1.1 (FEATURES_OK before DRIVER_OK). */
static void virtio_state_check(VirtIODevice *vdev, const VirtioState *vs,
                               StateSection *s)
{
    const uint8_t known = VIRTIO_CONFIG_S_ACKNOWLEDGE |
        VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_DRIVER_OK |
        VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_NEEDS_RESET |
        VIRTIO_CONFIG_S_FAILED;
    uint64_t f = vs->guest_features, offered = vdev->host_features;

    if (vs->host_features != offered) {
        state_section_fail(s, "the features offered are 0x%" PRIx64 " in "
                           "the state, 0x%" PRIx64 " here (0x%" PRIx64
                           " differ): a device configured differently",
                           vs->host_features, offered,
                           vs->host_features ^ offered);
    } else if (vs->status & ~known) {
        state_section_fail(s, "status 0x%x has unknown bits", vs->status);
    } else if ((vs->status & VIRTIO_CONFIG_S_DRIVER_OK) &&
               !(vs->status & VIRTIO_CONFIG_S_FEATURES_OK)) {
        state_section_fail(s, "status 0x%x: DRIVER_OK without FEATURES_OK",
                           vs->status);
    } else if ((vs->status & VIRTIO_CONFIG_S_FEATURES_OK) &&
               ((f & ~offered) || !(f & VIRTIO_BIT(VIRTIO_F_VERSION_1)) ||
                (vdev->ops->validate_features &&
                 !vdev->ops->validate_features(vdev, f)))) {
        state_section_fail(s, "the driver's features 0x%" PRIx64 " are not "
                           "a set this device accepts (it offers 0x%" PRIx64
                           ")", f, offered);
    }
}

static bool virtio_load_core(VirtIODevice *vdev, StateReader *r,
                             VirtioState *vs, GError **errp)
{
    StateSection *s = state_section(r, "virtio", VIRTIO_STATE_VERSION, NULL,
                                    errp);

    if (!s) {
        return false;
    }
    virtio_state_expect(s, "device-id", "the virtio device type",
                        vdev->ops->device_id);
    virtio_state_expect(s, "num-queues", "the number of queues", vdev->nvqs);
    vs->host_features = state_get_u64(s, "features-offered");
    vs->guest_features = state_get_u64(s, "features");
    vs->status = state_get_u8(s, "status");
    vs->generation = state_get_u8(s, "generation");
    vs->config_irq_pending = state_get_bool(s, "config-irq-pending");
    if (!state_section_failed(s)) {
        virtio_state_check(vdev, vs, s);
    }
    return state_section_end(s, errp);
}

/* Everything was checked: take it. */
static void virtio_apply_state(VirtIODevice *vdev, const VirtioState *vs,
                               const VirtQueueState *vqs)
{
    vdev->guest_features = vs->guest_features;
    vdev->status = vs->status;
    vdev->broken = vs->status & VIRTIO_CONFIG_S_NEEDS_RESET;
    vdev->generation = vs->generation;
    vdev->config_irq_pending |= vs->config_irq_pending;
    for (unsigned i = 0; i < vdev->nvqs; i++) {
        vq_state_set(vdev->vq[i], &vqs[i]);
    }
    /* Runs once the device is started (work waits while STOPPED). */
    vdev->resync = true;
    device_bh_schedule(vdev->complete_bh);
}

void virtio_device_save_state(Device *dev, StateWriter *w)
{
    VirtIODevice *vdev = VIRTIO_DEVICE(dev);

    g_assert(device_stopped(dev));
    trace_virtio_save_state(virtio_id(vdev), vdev->status,
                            vdev->guest_features);
    virtio_save_core(vdev, w);
    virtio_pci_save_state(vdev, w);
    for (unsigned i = 0; i < vdev->nvqs; i++) {
        vq_save(vdev->vq[i], w);
    }
    if (vdev->ops->save_state) {
        vdev->ops->save_state(vdev, w);
    }
}

bool virtio_device_load_state(Device *dev, StateReader *r, GError **errp)
{
    VirtIODevice *vdev = VIRTIO_DEVICE(dev);
    g_autofree VirtQueueState *vqs = g_new0(VirtQueueState, vdev->nvqs);
    g_autofree uint16_t *vectors = g_new0(uint16_t, vdev->nvqs);
    VirtIOPCIState ps = { .queue_vectors = vectors };
    VirtioState vs = { 0 };

    g_assert(device_stopped(dev));
    if (!virtio_load_core(vdev, r, &vs, errp) ||
        !virtio_pci_load_state(vdev, r, &ps, errp)) {
        return false;
    }
    for (unsigned i = 0; i < vdev->nvqs; i++) {
        if (!vq_load(vdev->vq[i], r, &vqs[i], errp)) {
            return false;
        }
    }
    if (vdev->ops->load_state &&
        !vdev->ops->load_state(vdev, r, vs.guest_features, errp)) {
        return false;
    }
    virtio_apply_state(vdev, &vs, vqs);
    virtio_pci_apply_state(vdev, &ps);
    trace_virtio_load_state(virtio_id(vdev), vs.status, vs.guest_features);
    return true;
}

/* ---- polling (a device on an iothread that busy-polls) ---- */

/* Both ring areas reached without messages: the poller may touch them. */
static bool vq_rings_mapped(VirtQueue *vq)
{
    PCIDevice *pdev = &vq->vdev->pci;

    uint64_t drv = vq->packed ? 4 : 6 + 2ULL * vq->num;
    uint64_t dev = vq->packed ? 4 : 6 + 8ULL * vq->num;

    return vq->enabled && !vq->vdev->broken &&
           pci_dma_map(pdev, vq->area[VIRTQUEUE_AREA_DRIVER], drv, false) &&
           pci_dma_map(pdev, vq->area[VIRTQUEUE_AREA_DEVICE], dev, true) &&
           (!vq->packed ||
            pci_dma_map(pdev, vq->area[VIRTQUEUE_AREA_DESC],
                        (uint64_t)vq->num * VRING_PACKED_DESC_SIZE, false));
}

/*
 * Has the driver made buffers available since the poller last said so?
 * Split: avail->idx moved.  Packed: the descriptor at the device's cursor
 * became available (reported once per cursor position).
 */
static bool vq_poll_new_avail(VirtQueue *vq)
{
    uint16_t v;

    if (!vq->packed) {
        if (!vring_get16(vq, vq->area[VIRTQUEUE_AREA_DRIVER] +
                         VRING_AVAIL_IDX, &v) || v == vq->poll_seen) {
            return false;
        }
        vq->poll_seen = v;
        return true;
    }
    v = vq->last_avail_idx | (vq->last_avail_wrap ? 0x8000 : 0);
    if (v == vq->poll_seen ||
        !vq_packed_avail(vq, vq->last_avail_idx, vq->last_avail_wrap)) {
        return false;
    }
    vq->poll_seen = v;
    return true;
}

static bool virtio_poll(void *opaque)
{
    VirtIODevice *vdev = opaque;
    bool found = false;

    if (!(vdev->status & VIRTIO_CONFIG_S_DRIVER_OK) || vdev->broken ||
        !device_fetch_allowed(&vdev->pci.dev)) {
        return false;
    }
    for (unsigned i = 0; i < vdev->nvqs; i++) {
        VirtQueue *vq = vdev->vq[i];

        if (!vq_rings_mapped(vq)) {
            continue;
        }
        if (vdev->poll_started && !vq->polled) {
            /* Enabled since polling began: suppress its notifications. */
            vq->polled = true;
            vq_apply_notification(vq);
        }
        if (vq_poll_new_avail(vq)) {
            if (!vq->poll_found) {
                vq->poll_found = true;
                trace_virtio_poll_first(virtio_id(vdev), i);
            }
            device_bh_schedule(vq->bh);
            found = true;
        }
    }
    return found;
}

/*
 * While the loop busy-polls, the driver need not notify: suppressed on
 * every ring the poller reaches, and published again before it sleeps.
 */
static void virtio_poll_started(void *opaque, bool on)
{
    VirtIODevice *vdev = opaque;

    vdev->poll_started = on;
    for (unsigned i = 0; i < vdev->nvqs; i++) {
        VirtQueue *vq = vdev->vq[i];

        if (vq->polled != on && (!on || vq_rings_mapped(vq))) {
            vq->polled = on;
            if (device_stopped(&vdev->pci.dev)) {
                /* Its state is saved: no DMA until it starts again. */
                vdev->resync = true;
            } else if (vq_rings_mapped(vq)) {
                vq_apply_notification(vq);
            }
        }
    }
}

/* ---- set-up ---- */

void virtio_init(VirtIODevice *vdev, const VirtioDeviceOps *ops,
                 uint64_t device_features, uint32_t config_len)
{
    vdev->ops = ops;
    vdev->host_features = device_features | VIRTIO_BIT(VIRTIO_F_VERSION_1);
    if (vdev->conf.indirect_desc) {
        vdev->host_features |= VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC);
    }
    if (vdev->conf.event_idx) {
        vdev->host_features |= VIRTIO_BIT(VIRTIO_F_EVENT_IDX);
    }
    if (vdev->conf.packed) {
        vdev->host_features |= VIRTIO_BIT(VIRTIO_F_RING_PACKED);
    }
    if (vdev->conf.iommu_platform) {
        vdev->host_features |= VIRTIO_BIT(VIRTIO_F_ACCESS_PLATFORM);
    }
    vdev->config_len = config_len;
    vdev->config = g_malloc0(MAX(config_len, 1u));
    vdev->config_vector = VIRTIO_MSI_NO_VECTOR;
    vdev->complete_bh = device_bh_new(&vdev->pci.dev, virtio_complete_bh,
                                      vdev);
    if (vdev->pci.dev.loop != loop_main() &&
        loop_poll_max_ns(vdev->pci.dev.loop)) {
        vdev->poller = loop_poller_new(vdev->pci.dev.loop, virtio_poll,
                                       virtio_poll_started, vdev);
    }
}

VirtQueue *virtio_add_queue(VirtIODevice *vdev, unsigned max_size,
                            size_t elem_size, VirtIOHandleOutput *handle)
{
    VirtQueue *vq = g_new0(VirtQueue, 1);

    g_assert(vdev->nvqs < VIRTIO_QUEUE_MAX);
    g_assert(max_size && max_size <= VIRTQUEUE_MAX_SIZE &&
             !(max_size & (max_size - 1)));
    g_assert(elem_size >= sizeof(VirtQueueElement));
    vq->vdev = vdev;
    vq->index = vdev->nvqs;
    vq->max_num = max_size;
    vq->handle_output = handle;
    vq->bh = device_bh_new(&vdev->pci.dev, virtio_queue_bh, vq);
    vq->segs = g_new(VirtQueueSeg, max_size);
    vq->done = g_new(VirtQueueElement *, max_size);
    vq->done_len = g_new(uint32_t, max_size);
    vq->used_batch = g_new(VirtQueueUsed, max_size);
    vq->elem_size = QEMU_ALIGN_UP(elem_size, 16);
    vq->pool = g_malloc0(vq->elem_size * max_size);
    vq->free_elems = g_new(VirtQueueElement *, max_size);
    for (unsigned i = 0; i < max_size; i++) {
        VirtQueueElement *elem = pool_elem(vq, max_size - 1 - i);

        elem->sg = elem->sg_inline;
        elem->sg_cap = VIRTQUEUE_INLINE_SG;
        vq->free_elems[vq->nfree++] = elem;
    }
    vq_reset(vq);
    vdev->vq = g_renew(VirtQueue *, vdev->vq, vdev->nvqs + 1);
    vdev->vq[vdev->nvqs++] = vq;
    return vq;
}

void virtio_cleanup(VirtIODevice *vdev)
{
    loop_poller_free(g_steal_pointer(&vdev->poller));
    for (unsigned i = 0; i < vdev->nvqs; i++) {
        VirtQueue *vq = vdev->vq[i];

        for (unsigned j = 0; j < vq->max_num; j++) {
            VirtQueueElement *elem = pool_elem(vq, j);

            if (elem->sg != elem->sg_inline) {
                g_free(elem->sg);
            }
            g_free(elem->bounce);
            g_free(elem->bounce_in);
        }
        device_bh_delete(vq->bh);
        g_free(vq->done);
        g_free(vq->done_len);
        g_free(vq->segs);
        g_free(vq->used_batch);
        g_free(vq->pool);
        g_free(vq->free_elems);
        g_free(vq);
    }
    g_clear_pointer(&vdev->vq, g_free);
    vdev->nvqs = 0;
    g_clear_pointer(&vdev->config, g_free);
    g_clear_pointer(&vdev->complete_bh, device_bh_delete);
}

/* ---- iovec helpers ---- */

size_t virtio_iov_discard_front(struct iovec **iov, unsigned *n,
                                size_t bytes)
{
    size_t done = 0;

    while (*n && done < bytes) {
        struct iovec *v = *iov;
        size_t l = MIN(v->iov_len, bytes - done);

        v->iov_base = (uint8_t *)v->iov_base + l;
        v->iov_len -= l;
        done += l;
        if (!v->iov_len) {
            (*iov)++;
            (*n)--;
        }
    }
    return done;
}

size_t virtio_iov_discard_back(struct iovec *iov, unsigned *n, size_t bytes)
{
    size_t done = 0;

    while (*n && done < bytes) {
        struct iovec *v = &iov[*n - 1];
        size_t l = MIN(v->iov_len, bytes - done);

        v->iov_len -= l;
        done += l;
        if (!v->iov_len) {
            (*n)--;
        }
    }
    return done;
}

/* ---- statistics (query-stats) ---- */

const StatsSchema virtio_stats_queue = {
    .provider = "virtio",
    .target = STATS_TARGET_QUEUE,
    .stats = (const StatsDesc[]) {
        { "requests", STATS_CUMULATIVE },
        { "inflight", STATS_INSTANT },
        { "kicks", STATS_CUMULATIVE },
        { "notifications", STATS_CUMULATIVE },
        { "notifications-suppressed", STATS_CUMULATIVE },
        { NULL }
    },
};

void virtio_device_get_stats(Device *dev, StatsCollector *c)
{
    virtio_report_stats(VIRTIO_DEVICE(dev), c);
}

void virtio_report_stats(VirtIODevice *vdev, StatsCollector *c)
{
    for (unsigned i = 0; i < vdev->nvqs; i++) {
        VirtQueue *vq = vdev->vq[i];

        if (!stats_begin(c, &virtio_stats_queue, i)) {
            continue;
        }
        stats_put(c, "requests", vq->nr_requests);
        stats_put(c, "inflight", vq->inuse);
        stats_put(c, "kicks", vq->nr_kicks);
        stats_put(c, "notifications", vq->nr_notifications);
        stats_put(c, "notifications-suppressed", vq->nr_suppressed);
    }
}
