/*
 * virtio-blk-pci: a virtio block device on a block backend.
 *
 * Requests come from the virtio core as elements of a per-queue pool
 * (VirtIOBlockReq, element first) and go to block/ with the iovecs
 * pointing into guest memory.  Each queue drain is one plugged batch.
 * Stats, the werror/rerror policy and throttling are the block layer's.
 */
#include "hw/virtio/virtio.h"
#include "hw/virtio/virtio-pci.h"
#include "hw/virtio/trace.h"
#include "block/block.h"
#include "util/error.h"

#define VIRTIO_BLK_MAX_QUEUES           256
#define VIRTIO_BLK_DEFAULT_QUEUE_SIZE   256
#define VIRTIO_BLK_SIZE_MAX             (1u << 20)
#define VIRTIO_BLK_MAX_DWZ_SECTORS      ((1u << 22) - 1)
#define VIRTIO_BLK_MAX_DWZ_SEG          16
/* Requests started per queue drain before yielding to other work. */
#define VIRTIO_BLK_DRAIN_BUDGET         1024

typedef struct VirtIOBlock VirtIOBlock;

typedef struct VirtIOBlockReq {
    VirtQueueElement elem;      /* first: the core's pool element */
    VirtIOBlock *s;
    VirtQueue *vq;
    BlockReq breq;
    uint8_t *status;            /* last device-writable byte */
    uint32_t in_len;            /* used length reported to the driver */
    uint32_t type;
    /* DISCARD / WRITE_ZEROES: segments are run one after the other. */
    unsigned seg, nseg;
} VirtIOBlockReq;

struct VirtIOBlock {
    VirtIODevice vdev;          /* first */

    /* Properties. */
    char *drive;
    char *serial;
    uint16_t num_queues;
    uint16_t queue_size;
    uint32_t logical_block_size;
    uint32_t physical_block_size;
    bool share_rw;
    bool write_cache;
    bool discard;
    bool write_zeroes;
    int werror, rerror;

    BlockBackend *blk;
    bool wce;                   /* writeback (config writeback field) */
    BlockReq stop_flush_req;    /* the flush that ends a stop */
};

static const DeviceClass virtio_blk_class;
#define VIRTIO_BLK(dev) ((VirtIOBlock *)device_check((dev), &virtio_blk_class))

static inline const char *virtio_blk_id(VirtIOBlock *s)
{
    return virtio_id(&s->vdev);
}

static uint64_t virtio_blk_capacity(VirtIOBlock *s)
{
    return blk_getlength(s->blk) >> VIRTIO_BLK_SECTOR_BITS;
}

/* Writes must be stable on completion (see 5.2.6.2 of the spec). */
static bool virtio_blk_writethrough(VirtIOBlock *s)
{
    VirtIODevice *vdev = &s->vdev;

    if (!virtio_has_feature(vdev, VIRTIO_BLK_F_FLUSH)) {
        return true;
    }
    if (virtio_has_feature(vdev, VIRTIO_BLK_F_CONFIG_WCE)) {
        return !s->wce;
    }
    return false;
}

/* ---- completion ---- */

static void virtio_blk_req_complete(VirtIOBlockReq *req, uint8_t status)
{
    VirtIOBlock *s = req->s;
    VirtQueue *vq = req->vq;

    trace_virtio_blk_complete(virtio_blk_id(s), virtio_queue_index(vq),
                              req->elem.index, status);
    *req->status = status;
    virtqueue_complete(vq, &req->elem, req->in_len);
}

static void virtio_blk_rw_done(void *opaque, int ret)
{
    VirtIOBlockReq *req = opaque;

    virtio_blk_req_complete(req, ret == 0 ? VIRTIO_BLK_S_OK
                                          : VIRTIO_BLK_S_IOERR);
}

/* ---- DISCARD and WRITE_ZEROES ---- */

typedef struct DwzSeg {
    uint64_t sector;
    uint32_t num_sectors;
    uint32_t flags;
} DwzSeg;

static void dwz_get_seg(VirtIOBlockReq *req, unsigned i, DwzSeg *seg)
{
    uint8_t raw[VIRTIO_BLK_DWZ_SIZE] = { 0 };

    iov_to_buf(req->elem.out_sg, req->elem.out_num,
               VIRTIO_BLK_REQ_HDR_SIZE + i * VIRTIO_BLK_DWZ_SIZE, raw,
               sizeof(raw));
    seg->sector = ldq_le_p(raw + VIRTIO_BLK_DWZ_SECTOR);
    seg->num_sectors = ldl_le_p(raw + VIRTIO_BLK_DWZ_NUM_SECTORS);
    seg->flags = ldl_le_p(raw + VIRTIO_BLK_DWZ_FLAGS);
}

/* VIRTIO_BLK_S_* for one segment. */
static uint8_t dwz_check_seg(VirtIOBlock *s, uint32_t type,
                             const DwzSeg *seg)
{
    uint32_t max = VIRTIO_BLK_MAX_DWZ_SECTORS;
    uint64_t lbs_sectors = s->logical_block_size >> VIRTIO_BLK_SECTOR_BITS;

    if (seg->flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) {
        return VIRTIO_BLK_S_UNSUPP;
    }
    if (type == VIRTIO_BLK_T_DISCARD &&
        (seg->flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)) {
        return VIRTIO_BLK_S_UNSUPP;
    }
    if (seg->num_sectors > max || seg->sector % lbs_sectors ||
        seg->num_sectors % lbs_sectors ||
        seg->sector > virtio_blk_capacity(s) ||
        seg->num_sectors > virtio_blk_capacity(s) - seg->sector) {
        return VIRTIO_BLK_S_IOERR;
    }
    return VIRTIO_BLK_S_OK;
}

static void dwz_next(void *opaque, int ret);

/* Submit segment req->seg; complete the request when all are done. */
static void dwz_submit(VirtIOBlockReq *req)
{
    VirtIOBlock *s = req->s;
    DwzSeg seg;
    uint8_t st;
    int r;

    if (req->seg == req->nseg) {
        virtio_blk_req_complete(req, VIRTIO_BLK_S_OK);
        return;
    }
    /* Read again: the driver could have changed it since the check. */
    dwz_get_seg(req, req->seg, &seg);
    st = dwz_check_seg(s, req->type, &seg);
    if (st != VIRTIO_BLK_S_OK) {
        virtio_blk_req_complete(req, VIRTIO_BLK_S_IOERR);
        return;
    }
    req->seg++;
    if (req->type == VIRTIO_BLK_T_DISCARD) {
        r = blk_pdiscard(s->blk, &req->breq,
                         seg.sector << VIRTIO_BLK_SECTOR_BITS,
                         (uint64_t)seg.num_sectors << VIRTIO_BLK_SECTOR_BITS,
                         dwz_next, req);
    } else {
        uint32_t flags = 0;

        if (seg.flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) {
            flags |= BLK_REQ_MAY_UNMAP;
        }
        if (virtio_blk_writethrough(s)) {
            flags |= BLK_REQ_FUA;
        }
        r = blk_pwrite_zeroes(s->blk, &req->breq,
                              seg.sector << VIRTIO_BLK_SECTOR_BITS,
                              (uint64_t)seg.num_sectors <<
                              VIRTIO_BLK_SECTOR_BITS, flags, dwz_next, req);
    }
    if (r < 0) {
        virtio_blk_req_complete(req, VIRTIO_BLK_S_IOERR);
    }
}

static void dwz_next(void *opaque, int ret)
{
    VirtIOBlockReq *req = opaque;

    if (ret < 0) {
        virtio_blk_req_complete(req, VIRTIO_BLK_S_IOERR);
        return;
    }
    dwz_submit(req);
}

static void virtio_blk_handle_dwz(VirtIOBlockReq *req, uint64_t data_len)
{
    VirtIOBlock *s = req->s;
    uint32_t feature = req->type == VIRTIO_BLK_T_DISCARD
                       ? VIRTIO_BLK_F_DISCARD : VIRTIO_BLK_F_WRITE_ZEROES;

    if (!virtio_has_feature(&s->vdev, feature)) {
        virtio_blk_req_complete(req, VIRTIO_BLK_S_UNSUPP);
        return;
    }
    if (!data_len || data_len % VIRTIO_BLK_DWZ_SIZE) {
        virtio_blk_req_complete(req, VIRTIO_BLK_S_IOERR);
        return;
    }
    req->nseg = data_len / VIRTIO_BLK_DWZ_SIZE;
    req->seg = 0;
    if (req->nseg > VIRTIO_BLK_MAX_DWZ_SEG) {
        virtio_blk_req_complete(req, VIRTIO_BLK_S_UNSUPP);
        return;
    }
    if (blk_is_read_only(s->blk)) {
        virtio_blk_req_complete(req, VIRTIO_BLK_S_IOERR);
        return;
    }
    for (unsigned i = 0; i < req->nseg; i++) {
        DwzSeg seg;
        uint8_t st;

        dwz_get_seg(req, i, &seg);
        st = dwz_check_seg(s, req->type, &seg);
        if (st != VIRTIO_BLK_S_OK) {
            virtio_blk_req_complete(req, st);
            return;
        }
    }
    dwz_submit(req);
}

/* ---- requests ---- */

/* True when [sector, +bytes) is aligned and inside the disk. */
static bool virtio_blk_range_ok(VirtIOBlock *s, uint64_t sector,
                                uint64_t bytes)
{
    uint64_t lbs = s->logical_block_size;
    uint64_t size = blk_getlength(s->blk);

    if (sector > (UINT64_MAX >> VIRTIO_BLK_SECTOR_BITS)) {
        return false;
    }
    sector <<= VIRTIO_BLK_SECTOR_BITS;
    return !(sector % lbs) && !(bytes % lbs) &&
           range_within(sector, bytes, size);
}

static void virtio_blk_handle_request(VirtIOBlock *s, VirtQueue *vq,
                                      VirtIOBlockReq *req)
{
    VirtQueueElement *elem = &req->elem;
    uint8_t hdr[VIRTIO_BLK_REQ_HDR_SIZE];
    struct iovec *out = elem->out_sg, *in = elem->in_sg;
    unsigned out_num = elem->out_num, in_num = elem->in_num;
    uint64_t sector, data_len;
    int r;

    req->s = s;
    req->vq = vq;
    if (elem->out_len < VIRTIO_BLK_REQ_HDR_SIZE || elem->in_len < 1) {
        virtio_error(&s->vdev, "virtio-blk request without header or "
                     "status (out %" PRIu64 ", in %" PRIu64 " bytes)",
                     elem->out_len, elem->in_len);
        virtqueue_detach_element(vq, elem);
        return;
    }
    iov_to_buf(out, out_num, 0, hdr, sizeof(hdr));
    req->type = ldl_le_p(hdr + VIRTIO_BLK_REQ_TYPE);
    sector = ldq_le_p(hdr + VIRTIO_BLK_REQ_SECTOR);

    /* The status byte is the last writable one; data sits before it. */
    req->in_len = elem->in_len;
    req->status = (uint8_t *)in[in_num - 1].iov_base +
                  in[in_num - 1].iov_len - 1;
    virtio_iov_discard_back(in, &in_num, 1);
    trace_virtio_blk_req(virtio_blk_id(s), virtio_queue_index(vq), elem->index,
                         req->type, sector, elem->out_len, elem->in_len);

    switch (req->type) {
    case VIRTIO_BLK_T_IN:
        data_len = elem->in_len - 1;
        if (!virtio_blk_range_ok(s, sector, data_len)) {
            virtio_blk_req_complete(req, VIRTIO_BLK_S_IOERR);
            return;
        }
        if (!data_len) {
            virtio_blk_req_complete(req, VIRTIO_BLK_S_OK);
            return;
        }
        r = blk_preadv(s->blk, &req->breq, sector << VIRTIO_BLK_SECTOR_BITS,
                       in, in_num, virtio_blk_rw_done, req);
        break;
    case VIRTIO_BLK_T_OUT:
        data_len = elem->out_len - VIRTIO_BLK_REQ_HDR_SIZE;
        if (blk_is_read_only(s->blk) ||
            !virtio_blk_range_ok(s, sector, data_len)) {
            virtio_blk_req_complete(req, VIRTIO_BLK_S_IOERR);
            return;
        }
        if (!data_len) {
            virtio_blk_req_complete(req, VIRTIO_BLK_S_OK);
            return;
        }
        virtio_iov_discard_front(&out, &out_num, VIRTIO_BLK_REQ_HDR_SIZE);
        r = blk_pwritev(s->blk, &req->breq, sector << VIRTIO_BLK_SECTOR_BITS,
                        out, out_num,
                        virtio_blk_writethrough(s) ? BLK_REQ_FUA : 0,
                        virtio_blk_rw_done, req);
        break;
    case VIRTIO_BLK_T_FLUSH:
        r = blk_flush(s->blk, &req->breq, virtio_blk_rw_done, req);
        break;
    case VIRTIO_BLK_T_GET_ID: {
        char id[VIRTIO_BLK_ID_BYTES] = { 0 };

        if (s->serial) {
            /* NUL-padded, no terminator at 20 characters. */
            memcpy(id, s->serial, MIN(strlen(s->serial), sizeof(id)));
        }
        iov_from_buf(in, in_num, 0, id, sizeof(id));
        virtio_blk_req_complete(req, VIRTIO_BLK_S_OK);
        return;
    }
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
        virtio_blk_handle_dwz(req, elem->out_len - VIRTIO_BLK_REQ_HDR_SIZE);
        return;
    default:
        virtio_blk_req_complete(req, VIRTIO_BLK_S_UNSUPP);
        return;
    }
    if (r < 0) {
        virtio_blk_req_complete(req, VIRTIO_BLK_S_IOERR);
    }
}

static void virtio_blk_handle_output(VirtIODevice *vdev, VirtQueue *vq)
{
    VirtIOBlock *s = VIRTIO_BLK(&vdev->pci.dev);
    unsigned budget = VIRTIO_BLK_DRAIN_BUDGET;
    VirtIOBlockReq *req;

    do {
        virtio_queue_set_notification(vq, false);
        while (budget && (req = virtqueue_pop(vq))) {
            virtio_blk_handle_request(s, vq, req);
            budget--;
        }
        virtio_queue_set_notification(vq, true);
    } while (budget && !virtio_queue_empty(vq));
    if (!budget) {
        /* Let the other queues and devices in; come back next turn. */
        virtio_queue_notify(vdev, virtio_queue_index(vq));
    }
}

/* ---- configuration and features ---- */

static void virtio_blk_get_config(VirtIODevice *vdev, uint8_t *c)
{
    VirtIOBlock *s = VIRTIO_BLK(&vdev->pci.dev);
    uint32_t lbs = s->logical_block_size;

    memset(c, 0, VIRTIO_BLK_CFG_SIZE);
    stq_le_p(c + VIRTIO_BLK_CFG_CAPACITY, virtio_blk_capacity(s));
    stl_le_p(c + VIRTIO_BLK_CFG_SIZE_MAX, VIRTIO_BLK_SIZE_MAX);
    stl_le_p(c + VIRTIO_BLK_CFG_SEG_MAX, s->queue_size - 2);
    stl_le_p(c + VIRTIO_BLK_CFG_BLK_SIZE, lbs);
    c[VIRTIO_BLK_CFG_PHYS_BLOCK_EXP] =
        g_bit_storage(s->physical_block_size / lbs) - 1;
    c[VIRTIO_BLK_CFG_ALIGN_OFFSET] = 0;
    stw_le_p(c + VIRTIO_BLK_CFG_MIN_IO_SIZE, s->physical_block_size / lbs);
    stl_le_p(c + VIRTIO_BLK_CFG_OPT_IO_SIZE, 0);
    c[VIRTIO_BLK_CFG_WRITEBACK] = s->wce;
    stw_le_p(c + VIRTIO_BLK_CFG_NUM_QUEUES, s->num_queues);
    stl_le_p(c + VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS,
             VIRTIO_BLK_MAX_DWZ_SECTORS);
    stl_le_p(c + VIRTIO_BLK_CFG_MAX_DISCARD_SEG, VIRTIO_BLK_MAX_DWZ_SEG);
    stl_le_p(c + VIRTIO_BLK_CFG_DISCARD_ALIGN, lbs >> VIRTIO_BLK_SECTOR_BITS);
    stl_le_p(c + VIRTIO_BLK_CFG_MAX_WZ_SECTORS, VIRTIO_BLK_MAX_DWZ_SECTORS);
    stl_le_p(c + VIRTIO_BLK_CFG_MAX_WZ_SEG, VIRTIO_BLK_MAX_DWZ_SEG);
    c[VIRTIO_BLK_CFG_WZ_MAY_UNMAP] = 1;
}

static void virtio_blk_set_config(VirtIODevice *vdev, const uint8_t *c)
{
    VirtIOBlock *s = VIRTIO_BLK(&vdev->pci.dev);

    /* Only writeback is writable, and only with CONFIG_WCE. */
    if (virtio_has_feature(vdev, VIRTIO_BLK_F_CONFIG_WCE)) {
        s->wce = c[VIRTIO_BLK_CFG_WRITEBACK] != 0;
        trace_virtio_blk_wce(virtio_blk_id(s), s->wce);
    }
}

static void virtio_blk_set_features(VirtIODevice *vdev, uint64_t features)
{
    VirtIOBlock *s = VIRTIO_BLK(&vdev->pci.dev);

    /* CONFIG_WCE without FLUSH: writethrough (writeback reads 0). */
    if (!(features & VIRTIO_BIT(VIRTIO_BLK_F_FLUSH))) {
        s->wce = false;
    }
}

/*
 * Requests held by the stop policy fail now, and those a throttle holds
 * when the function resets (status 0 lets them through).
 */
static void virtio_blk_quiesce(VirtIODevice *vdev, DeviceResetKind kind)
{
    VirtIOBlock *s = VIRTIO_BLK(&vdev->pci.dev);

    blk_cancel_queued(s->blk, kind == DEVICE_RESET_FUNCTION);
}

static void virtio_blk_reset(VirtIODevice *vdev)
{
    VirtIOBlock *s = VIRTIO_BLK(&vdev->pci.dev);

    s->wce = s->write_cache;
}

/* ---- device state ---- */

#define VIRTIO_BLK_STATE_VERSION        1

static void virtio_blk_save_state(VirtIODevice *vdev, StateWriter *w)
{
    VirtIOBlock *s = VIRTIO_BLK(&vdev->pci.dev);

    state_begin(w, "virtio-blk", VIRTIO_BLK_STATE_VERSION);
    state_put_u32(w, "logical-block-size", s->logical_block_size);
    state_put_u32(w, "physical-block-size", s->physical_block_size);
    state_put_str(w, "serial", s->serial);
    /* What the driver last read: another size is a resize to announce. */
    state_put_u64(w, "capacity", virtio_blk_capacity(s));
    state_put_bool(w, "writeback", s->wce);
    state_end(w);
}

/*
 * The driver caches the block sizes and the serial: those must match.
 * The writeback setting is the driver's to change (any value is safe:
 * without FLUSH negotiated writes are written through regardless).
 */
static bool virtio_blk_load_state(VirtIODevice *vdev, StateReader *r,
                                  uint64_t features, GError **errp)
{
    VirtIOBlock *s = VIRTIO_BLK(&vdev->pci.dev);
    StateSection *sec = state_section(r, "virtio-blk",
                                      VIRTIO_BLK_STATE_VERSION, NULL, errp);
    g_autofree char *serial = NULL;
    uint64_t capacity;
    bool wce;

    if (!sec) {
        return false;
    }
    virtio_state_expect(sec, "logical-block-size", "logical_block_size",
                        s->logical_block_size);
    virtio_state_expect(sec, "physical-block-size", "physical_block_size",
                        s->physical_block_size);
    serial = state_get_str(sec, "serial");
    capacity = state_get_u64(sec, "capacity");
    wce = state_get_bool(sec, "writeback");
    if (!state_section_failed(sec) && g_strcmp0(serial, s->serial)) {
        state_section_fail(sec, "serial is '%s' in the state, '%s' here: a "
                           "device configured differently",
                           serial ? serial : "", s->serial ? s->serial : "");
    }
    if (!state_section_end(sec, errp)) {
        return false;
    }
    s->wce = wce;
    if (capacity != virtio_blk_capacity(s)) {
        trace_virtio_blk_resize(virtio_blk_id(s), virtio_blk_capacity(s));
        virtio_notify_config_on_start(vdev);
    }
    return true;
}

static const VirtioDeviceOps virtio_blk_ops = {
    .device_id = VIRTIO_ID_BLOCK,
    .pci_class = 0x010000,      /* mass storage, SCSI: as QEMU */
    .set_features = virtio_blk_set_features,
    .get_config = virtio_blk_get_config,
    .set_config = virtio_blk_set_config,
    .quiesce = virtio_blk_quiesce,
    .reset = virtio_blk_reset,
    .save_state = virtio_blk_save_state,
    .load_state = virtio_blk_load_state,
};

/* ---- block backend events ---- */

static void virtio_blk_resize_cb(void *opaque)
{
    VirtIOBlock *s = opaque;

    trace_virtio_blk_resize(virtio_blk_id(s), virtio_blk_capacity(s));
    virtio_notify_config(&s->vdev);
}

static void virtio_blk_stop_cb(void *opaque)
{
    VirtIOBlock *s = opaque;

    /* The error policy said stop: fetch nothing until 'cont'. */
    trace_virtio_blk_stopped(virtio_blk_id(s), 1);
    device_pause(&s->vdev.pci.dev);
}

static const BlockDevOps virtio_blk_dev_ops = {
    .resize = virtio_blk_resize_cb,
    .stop = virtio_blk_stop_cb,
};

/* ---- lifecycle ---- */

static bool virtio_blk_realize(Device *dev, GError **errp)
{
    VirtIOBlock *s = VIRTIO_BLK(dev);
    VirtIODevice *vdev = &s->vdev;
    uint64_t features;

    if (s->queue_size < 4 || s->queue_size & (s->queue_size - 1)) {
        error_setg(errp, "property 'queue-size': %u is not a power of two "
                   "between 4 and %u", s->queue_size, VIRTQUEUE_MAX_SIZE);
        return false;
    }
    if (s->logical_block_size & (s->logical_block_size - 1)) {
        error_setg(errp, "property 'logical_block_size': %u is not a power "
                   "of two", s->logical_block_size);
        return false;
    }
    if (!s->physical_block_size) {
        s->physical_block_size = s->logical_block_size;
    }
    if (s->physical_block_size & (s->physical_block_size - 1) ||
        s->physical_block_size < s->logical_block_size) {
        error_setg(errp, "property 'physical_block_size': %u is not a power "
                   "of two of at least logical_block_size",
                   s->physical_block_size);
        return false;
    }
    if (s->serial && strlen(s->serial) > VIRTIO_BLK_ID_BYTES) {
        error_setg(errp, "property 'serial': longer than %u characters",
                   VIRTIO_BLK_ID_BYTES);
        return false;
    }
    s->blk = blk_attach(s->drive, dev->id, s->share_rw, dev->loop, errp);
    if (!s->blk) {
        error_prepend(errp, "property 'drive': ");
        return false;
    }
    if (blk_getlength(s->blk) % s->logical_block_size) {
        error_setg(errp, "property 'drive': size of '%s' is not a multiple "
                   "of the logical block size %u", s->drive,
                   s->logical_block_size);
        blk_detach(s->blk);
        s->blk = NULL;
        return false;
    }
    blk_set_dev_ops(s->blk, &virtio_blk_dev_ops, s);
    blk_set_error_policy(s->blk, s->rerror, s->werror);

    features = VIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX) |
               VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) |
               VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) |
               VIRTIO_BIT(VIRTIO_BLK_F_TOPOLOGY) |
               VIRTIO_BIT(VIRTIO_BLK_F_FLUSH) |
               VIRTIO_BIT(VIRTIO_BLK_F_CONFIG_WCE);
    if (s->num_queues > 1) {
        features |= VIRTIO_BIT(VIRTIO_BLK_F_MQ);
    }
    if (s->discard) {
        features |= VIRTIO_BIT(VIRTIO_BLK_F_DISCARD);
    }
    if (s->write_zeroes) {
        features |= VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES);
    }
    if (blk_is_read_only(s->blk)) {
        features |= VIRTIO_BIT(VIRTIO_BLK_F_RO);
    }
    s->wce = s->write_cache;
    virtio_init(vdev, &virtio_blk_ops, features, VIRTIO_BLK_CFG_SIZE);
    for (unsigned i = 0; i < s->num_queues; i++) {
        virtio_add_queue(vdev, s->queue_size, sizeof(VirtIOBlockReq),
                         virtio_blk_handle_output);
    }
    if (!virtio_pci_realize(vdev, errp)) {
        virtio_cleanup(vdev);
        blk_detach(s->blk);
        s->blk = NULL;
        return false;
    }
    virtio_device_reset(dev, DEVICE_RESET_FUNCTION);
    return true;
}

static void virtio_blk_unrealize(Device *dev)
{
    VirtIOBlock *s = VIRTIO_BLK(dev);

    blk_detach(s->blk);
    s->blk = NULL;
    virtio_pci_unrealize(&s->vdev);
    virtio_cleanup(&s->vdev);
}

static const PropDef virtio_blk_props[] = {
    PROP_DEF_STR("drive", VirtIOBlock, drive, "block node to serve",
                 .mandatory = true),
    PROP_DEF_STR("serial", VirtIOBlock, serial,
                 "device ID string (GET_ID), up to 20 characters"),
    PROP_DEF_UINT("num-queues", VirtIOBlock, num_queues,
                  "number of request queues", .min = 1,
                  .max = VIRTIO_BLK_MAX_QUEUES, .defval = "1"),
    PROP_DEF_UINT("queue-size", VirtIOBlock, queue_size,
                  "entries per queue (a power of two)", .min = 4,
                  .max = VIRTQUEUE_MAX_SIZE, .defval = "256"),
    PROP_DEF_UINT("logical_block_size", VirtIOBlock, logical_block_size,
                  "logical block size in bytes", .min = 512, .max = 32768,
                  .defval = "512"),
    PROP_DEF_UINT("physical_block_size", VirtIOBlock, physical_block_size,
                  "physical block size in bytes (default: logical)",
                  .max = 32768),
    PROP_DEF_BOOL("share-rw", VirtIOBlock, share_rw,
                  "allow other devices to use the node", .defval = "off"),
    PROP_DEF_BOOL("write-cache", VirtIOBlock, write_cache,
                  "writeback cache at reset (else writethrough)",
                  .defval = "on"),
    PROP_DEF_BOOL("discard", VirtIOBlock, discard,
                  "offer VIRTIO_BLK_F_DISCARD", .defval = "on"),
    PROP_DEF_BOOL("write-zeroes", VirtIOBlock, write_zeroes,
                  "offer VIRTIO_BLK_F_WRITE_ZEROES", .defval = "on"),
    PROP_DEF_ENUM("werror", VirtIOBlock, werror, blk_error_policy_names,
                  "on write errors: report, ignore, stop or enospc",
                  .defval = "enospc"),
    PROP_DEF_ENUM("rerror", VirtIOBlock, rerror, blk_error_policy_names,
                  "on read errors: report, ignore, stop or enospc",
                  .defval = "report"),
    VIRTIO_COMMON_PROPS(VirtIOBlock, vdev),
    PROP_DEF_END
};

static const StatsSchema *const virtio_blk_stats[] = {
    &virtio_stats_queue, NULL
};

/* The last step of a stop (migration, upgrade): flush the backend. */
static void virtio_blk_stop_flush_cb(void *opaque, int ret)
{
    VirtIOBlock *s = opaque;

    device_stop_flush_done(&s->vdev.pci.dev, ret);
    pci_dma_release(&s->vdev.pci);
}

static void virtio_blk_stop_flush(Device *dev)
{
    VirtIOBlock *s = VIRTIO_BLK(dev);

    if (blk_is_read_only(s->blk) ||
        (dev->stop_for == DEVICE_STOP_UPGRADE && blk_host_coherent(s->blk))) {
        return;
    }
    pci_dma_hold(&s->vdev.pci);
    if (blk_flush(s->blk, &s->stop_flush_req, virtio_blk_stop_flush_cb,
                  s) < 0) {
        device_stop_flush_done(dev, -EIO);
        pci_dma_release(&s->vdev.pci);
    }
}

static const DeviceClass virtio_blk_class = {
    .name = "virtio-blk-pci",
    .desc = "virtio block device (modern virtio-pci)",
    .instance_size = sizeof(VirtIOBlock),
    .is_pci = true,
    .base_props = pci_common_props,
    .props = virtio_blk_props,
    .realize = virtio_blk_realize,
    .unrealize = virtio_blk_unrealize,
    .reset = virtio_device_reset,
    .quiesce = virtio_device_quiesce,
    .run_state_changed = virtio_device_run_state_changed,
    .save_state = virtio_device_save_state,
    .load_state = virtio_device_load_state,
    .stop_flush = virtio_blk_stop_flush,
    .stats = virtio_blk_stats,
    .get_stats = virtio_device_get_stats,
};

static void __attribute__((constructor)) virtio_blk_register(void)
{
    device_class_register(&virtio_blk_class);
}
