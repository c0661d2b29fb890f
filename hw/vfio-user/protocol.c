/*
 * vfio-user protocol: dispatch, DMA_MAP/UNMAP, device and region info,
 * region access and DEVICE_RESET.  VERSION is negotiate.c's, interrupts
 * irq.c's, live migration migration.c's, attaching servers to devices
 * server.c's.
 *
 * Every handler validates its message before use and returns 0 or a
 * positive errno; the dispatcher turns that into the reply, except for
 * posted (No_reply) messages, which are never answered.
 */
#include "hw/vfio-user/vfio-user-int.h"
#include "hw/vfio-user/trace.h"
#include "util/error.h"
#include "util/log.h"
#include "util/loop.h"

int vfu_msg_fail(VfuServer *s, VfuMsg *m, int err, const char *why)
{
    trace_vfu_err_msg(vfu_id(s), m->hdr.cmd, err, why);
    return err;
}

/* ---- DMA_MAP / DMA_UNMAP ---- */

static int handle_dma_map(VfuServer *s, VfuMsg *m)
{
    const VfuDmaMap *dm = (const VfuDmaMap *)m->payload;
    int fd = -1, r;

    if (m->len != sizeof(*dm) || dm->argsz != sizeof(*dm)) {
        return vfu_msg_fail(s, m, EINVAL, "DMA_MAP size");
    }
    if (m->nfds > 1) {
        return vfu_msg_fail(s, m, EINVAL, "DMA_MAP with more than one fd");
    }
    if (m->nfds == 1) {
        fd = m->fds[0];
    }
    r = vfu_dma_region_map(s, dm, fd);
    if (r) {
        return vfu_msg_fail(s, m, r, "DMA_MAP refused");
    }
    return 0;
}

static int handle_dma_unmap(VfuServer *s, VfuMsg *m)
{
    const VfuDmaUnmap *du = (const VfuDmaUnmap *)m->payload;
    int r;

    if (m->len != sizeof(*du) || du->argsz < sizeof(*du)) {
        return vfu_msg_fail(s, m, EINVAL, "DMA_UNMAP size");
    }
    if (du->flags & ~VFU_DMA_UNMAP_FLAG_ALL) {
        return vfu_msg_fail(s, m, ENOTSUP, "DMA_UNMAP flags");
    }
    if (pci_dma_inflight(s->pdev) && vfu_dma_unmap_needs_drain(s, du)) {
        /*
         * In-flight requests hold pointers into guest memory: reply once
         * they have drained (vfu_dma_idle); read nothing else meanwhile.
         */
        s->pending_unmap = vfu_msg_copy(m);
        return VFU_REPLIED;
    }
    r = vfu_dma_region_unmap(s, du);
    if (r) {
        return vfu_msg_fail(s, m, r, "DMA_UNMAP of an unknown range");
    }
    vfu_send_reply(s, &m->hdr, du, sizeof(*du), -1);
    return VFU_REPLIED;
}

/* ---- device and region info ---- */

static int handle_device_get_info(VfuServer *s, VfuMsg *m)
{
    const VfuDeviceInfo *in = (const VfuDeviceInfo *)m->payload;
    VfuDeviceInfo out = {
        .argsz = sizeof(out),
        .flags = VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_PCI,
        .num_regions = VFU_NUM_REGIONS,
        .num_irqs = VFU_NUM_IRQS,
    };

    if (m->len != sizeof(*in) || in->argsz < sizeof(out)) {
        return vfu_msg_fail(s, m, EINVAL, "DEVICE_GET_INFO size");
    }
    vfu_send_reply(s, &m->hdr, &out, sizeof(out), -1);
    return VFU_REPLIED;
}

static uint64_t region_size(VfuServer *s, unsigned index)
{
    if (index < PCI_NUM_BARS) {
        return s->pdev->bars[index].size;
    }
    if (index == VFIO_PCI_CONFIG_REGION_INDEX) {
        return s->pdev->config_size;
    }
    return 0;       /* ROM, VGA: not implemented */
}

static int handle_region_info(VfuServer *s, VfuMsg *m)
{
    const VfuRegionInfo *in = (const VfuRegionInfo *)m->payload;
    g_autofree uint8_t *buf = NULL;
    VfuRegionInfo *out;
    PCIBar *bar = NULL;
    uint32_t need = sizeof(VfuRegionInfo);
    int fd = -1;

    if (m->len < sizeof(*in) || in->argsz < sizeof(*in)) {
        return vfu_msg_fail(s, m, EINVAL, "GET_REGION_INFO size");
    }
    if (in->index >= VFU_NUM_REGIONS) {
        return vfu_msg_fail(s, m, EINVAL, "region index out of range");
    }
    if (in->index < PCI_NUM_BARS) {
        bar = &s->pdev->bars[in->index];
    }
    if (bar && bar->nr_sparse) {
        need += sizeof(struct vfio_region_info_cap_sparse_mmap) +
                bar->nr_sparse * sizeof(struct vfio_region_sparse_mmap_area);
    }
    buf = g_malloc0(need);
    out = (VfuRegionInfo *)buf;
    out->index = in->index;
    out->size = region_size(s, in->index);
    if (out->size) {
        out->flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
    }
    out->argsz = need;
    if (need > sizeof(*out) && in->argsz >= need) {
        struct vfio_region_info_cap_sparse_mmap *cap =
            (void *)(buf + sizeof(*out));

        out->flags |= VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS;
        out->cap_offset = sizeof(*out);
        out->offset = 0;
        cap->header.id = VFIO_REGION_INFO_CAP_SPARSE_MMAP;
        cap->header.version = 1;
        cap->header.next = 0;
        cap->nr_areas = bar->nr_sparse;
        for (unsigned i = 0; i < bar->nr_sparse; i++) {
            cap->areas[i].offset = bar->sparse[i].offset;
            cap->areas[i].size = bar->sparse[i].size;
        }
        fd = bar->mem_fd;
        vfu_send_reply(s, &m->hdr, buf, need, fd);
    } else {
        /*
         * Too small for the capability chain: argsz tells what it needs.
         * No CAPS flag here: QEMU's client rejects CAPS with cap_offset 0.
         */
        vfu_send_reply(s, &m->hdr, buf, sizeof(*out), -1);
    }
    return VFU_REPLIED;
}

/* ---- region access ---- */

static int region_access(VfuServer *s, uint32_t region, uint64_t off,
                         uint8_t *data, uint32_t count, bool is_write)
{
    PCIDevice *pdev = s->pdev;
    uint64_t size = region_size(s, region);

    if (region >= VFU_NUM_REGIONS || !size) {
        return EINVAL;
    }
    if (!range_within(off, count, size)) {
        return EINVAL;
    }
    if (region == VFIO_PCI_CONFIG_REGION_INDEX) {
        if (!is_write) {
            memcpy(data, pdev->config + off, count);
            return 0;
        }
        /* Naturally aligned pieces of at most 4 bytes. */
        while (count) {
            unsigned n = 4;

            while (n > count || (off & (n - 1))) {
                n >>= 1;
            }
            pci_config_write(pdev, off, ldn_le_p(data, n), n);
            off += n;
            data += n;
            count -= n;
        }
        return 0;
    }
    if (is_write) {
        return pci_bar_write(pdev, region, off, data, count) ? 0 : EINVAL;
    }
    return pci_bar_read(pdev, region, off, data, count) ? 0 : EINVAL;
}

static int handle_region_read(VfuServer *s, VfuMsg *m)
{
    const VfuRegionRW *rw = (const VfuRegionRW *)m->payload;
    VfuHdr h = m->hdr;
    struct iovec iov[3];
    int r;

    if (m->len != sizeof(*rw)) {
        return vfu_msg_fail(s, m, EINVAL, "REGION_READ size");
    }
    if (rw->count > VFU_SERVER_MAX_DATA_XFER) {
        return vfu_msg_fail(s, m, E2BIG, "REGION_READ count");
    }
    if (s->scratch_size < rw->count) {
        s->scratch_size = MAX(rw->count, 4096u);
        g_free(s->scratch);
        s->scratch = g_malloc(s->scratch_size);
    }
    r = region_access(s, rw->region, rw->offset, s->scratch, rw->count,
                      false);
    if (r) {
        return vfu_msg_fail(s, m, r, "REGION_READ out of range");
    }
    h.flags = VFU_FLAG_REPLY;
    h.error_no = 0;
    h.size = VFU_HDR_SIZE + sizeof(*rw) + rw->count;
    iov[0] = (struct iovec){ &h, VFU_HDR_SIZE };
    iov[1] = (struct iovec){ (void *)rw, sizeof(*rw) };
    iov[2] = (struct iovec){ s->scratch, rw->count };
    vfu_sendv(s, iov, 3, -1);
    return VFU_REPLIED;
}

static int handle_region_write(VfuServer *s, VfuMsg *m)
{
    const VfuRegionRW *rw = (const VfuRegionRW *)m->payload;
    int r;

    if (m->len < sizeof(*rw) || rw->count != m->len - sizeof(*rw)) {
        return vfu_msg_fail(s, m, EINVAL, "REGION_WRITE size");
    }
    r = region_access(s, rw->region, rw->offset, m->payload + sizeof(*rw),
                      rw->count, true);
    if (r) {
        return vfu_msg_fail(s, m, r, "REGION_WRITE out of range");
    }
    if (!(m->hdr.flags & VFU_FLAG_NO_REPLY)) {
        vfu_send_reply(s, &m->hdr, rw, sizeof(*rw), -1);
    }
    return VFU_REPLIED;
}

static int handle_write_multi(VfuServer *s, VfuMsg *m)
{
    uint64_t cnt;
    const VfuWriteOne *w;

    if (!s->write_multiple) {
        return vfu_msg_fail(s, m, ENOTSUP, "REGION_WRITE_MULTI not negotiated");
    }
    if (m->len < sizeof(uint64_t)) {
        return vfu_msg_fail(s, m, EINVAL, "REGION_WRITE_MULTI size");
    }
    cnt = ldq_le_p(m->payload);
    if (cnt == 0 || cnt > VFU_WRITE_MULTI_MAX ||
        m->len != sizeof(uint64_t) + cnt * sizeof(VfuWriteOne)) {
        return vfu_msg_fail(s, m, EINVAL, "REGION_WRITE_MULTI count");
    }
    w = (const VfuWriteOne *)(m->payload + sizeof(uint64_t));
    /* Validate all before applying any. */
    for (uint64_t i = 0; i < cnt; i++) {
        if (w[i].count == 0 || w[i].count > sizeof(w[i].data) ||
            w[i].region >= VFU_NUM_REGIONS ||
            !range_within(w[i].offset, w[i].count,
                          region_size(s, w[i].region))) {
            return vfu_msg_fail(s, m, EINVAL, "REGION_WRITE_MULTI entry");
        }
    }
    for (uint64_t i = 0; i < cnt; i++) {
        uint8_t data[8];

        memcpy(data, w[i].data, sizeof(data));
        region_access(s, w[i].region, w[i].offset, data, w[i].count, true);
    }
    if (!(m->hdr.flags & VFU_FLAG_NO_REPLY)) {
        vfu_send_reply(s, &m->hdr, &cnt, sizeof(cnt), -1);
    }
    return VFU_REPLIED;
}

static void vfu_device_reset_done(Device *dev, void *opaque)
{
    VfuServer *s = opaque;

    if (s->reset_reply_due) {
        s->reset_reply_due = false;
        vfu_send_reply(s, &s->reset_req, NULL, 0, -1);
    }
}

/*
 * The VMM's reset: answered once the device is reset (requests in flight
 * may make that take a while); what the client sends meanwhile waits.
 */
static int handle_device_reset(VfuServer *s, VfuMsg *m)
{
    if (m->len != 0) {
        return vfu_msg_fail(s, m, EINVAL, "DEVICE_RESET size");
    }
    trace_vfu_reset(vfu_id(s));
    vfu_mig_reset(s);           /* a function reset: back to RUNNING */
    if (!(m->hdr.flags & VFU_FLAG_NO_REPLY)) {
        s->reset_req = m->hdr;
        s->reset_reply_due = true;
    }
    device_reset(&s->pdev->dev, DEVICE_RESET_FUNCTION, vfu_device_reset_done,
                 s);
    return VFU_REPLIED;
}

/* ---- dispatch ---- */

void vfu_handle_msg(VfuServer *s, VfuMsg *m)
{
    int r;

    trace_vfu_msg(vfu_id(s), m->hdr.cmd, m->hdr.msg_id, m->hdr.size, m->nfds);
    if (m->hdr.flags & ~(VFU_FLAG_TYPE_MASK | VFU_FLAG_NO_REPLY |
                         VFU_FLAG_ERROR) ||
        (m->hdr.flags & VFU_FLAG_ERROR)) {
        r = vfu_msg_fail(s, m, EINVAL, "bad header flags");
    } else if (m->nfds > VFU_SERVER_MAX_MSG_FDS) {
        r = vfu_msg_fail(s, m, EINVAL, "too many fds");
    } else if (!s->negotiated && m->hdr.cmd != VFU_CMD_VERSION) {
        r = vfu_msg_fail(s, m, EINVAL, "VERSION must come first");
    } else {
        switch (m->hdr.cmd) {
        case VFU_CMD_VERSION:
            r = vfu_handle_version(s, m);
            break;
        case VFU_CMD_DMA_MAP:
            r = handle_dma_map(s, m);
            break;
        case VFU_CMD_DMA_UNMAP:
            r = handle_dma_unmap(s, m);
            break;
        case VFU_CMD_DEVICE_GET_INFO:
            r = handle_device_get_info(s, m);
            break;
        case VFU_CMD_DEVICE_GET_REGION_INFO:
            r = handle_region_info(s, m);
            break;
        case VFU_CMD_DEVICE_GET_IRQ_INFO:
            r = vfu_handle_irq_info(s, m);
            break;
        case VFU_CMD_DEVICE_SET_IRQS:
            r = vfu_handle_set_irqs(s, m);
            break;
        case VFU_CMD_REGION_READ:
            r = handle_region_read(s, m);
            break;
        case VFU_CMD_REGION_WRITE:
            r = handle_region_write(s, m);
            break;
        case VFU_CMD_REGION_WRITE_MULTI:
            r = handle_write_multi(s, m);
            break;
        case VFU_CMD_DEVICE_RESET:
            r = handle_device_reset(s, m);
            break;
        case VFU_CMD_DEVICE_FEATURE:
            r = vfu_handle_device_feature(s, m);
            break;
        case VFU_CMD_MIG_DATA_READ:
            r = vfu_handle_mig_data_read(s, m);
            break;
        case VFU_CMD_MIG_DATA_WRITE:
            r = vfu_handle_mig_data_write(s, m);
            break;
        default:
            r = vfu_msg_fail(s, m, EINVAL, "unknown command");
            break;
        }
    }
    if (r == VFU_REPLIED || (m->hdr.flags & VFU_FLAG_NO_REPLY)) {
        return;
    }
    if (r) {
        vfu_send_error(s, &m->hdr, r);
    } else {
        vfu_send_reply(s, &m->hdr, NULL, 0, -1);
    }
}
