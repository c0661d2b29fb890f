/*
 * vfio-user protocol: version negotiation, dispatch, region access, IRQs,
 * and the transport hooks that attach a server to every PCI device.
 *
 * Every handler validates its message before use and returns 0 or a
 * positive errno; the dispatcher turns that into the reply, except for
 * posted (No_reply) messages, which are never answered.
 */
#include "hw/vfio-user/vfio-user-int.h"
#include "hw/core/stats.h"
#include "util/bitops.h"
#include "hw/vfio-user/trace.h"
#include "util/error.h"
#include "util/log.h"
#include "util/loop.h"

#include <json-c/json.h>
#include <sys/eventfd.h>

/* Handler result meaning "the reply was sent already" (or comes later). */
#define VFU_REPLIED (-1)

static GList *servers;

static const char *sid(VfuServer *s)
{
    return s->pdev->dev.id;
}

static int msg_fail(VfuServer *s, VfuMsg *m, int err, const char *why)
{
    trace_vfu_err_msg(sid(s), m->hdr.cmd, err, why);
    return err;
}

/* ---- VERSION ---- */

static bool json_get_u64(json_object *caps, const char *key, uint64_t *out,
                         bool *bad)
{
    json_object *v;

    if (!json_object_object_get_ex(caps, key, &v)) {
        return false;
    }
    if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0) {
        *bad = true;
        return false;
    }
    *out = json_object_get_uint64(v);
    return true;
}

/* What a client's VERSION says it can take. */
typedef struct VfuClientCaps {
    uint64_t max_fds, max_xfer, pgsizes, max_maps;
    bool write_multiple;
} VfuClientCaps;

/*
 * Parse the capabilities JSON of a VERSION (@len bytes with its NUL) into
 * @c (defaults where absent).  False with *why when it is malformed or
 * unusable.
 */
static bool vfu_parse_caps(const char *json, uint32_t len, VfuClientCaps *c,
                           const char **why)
{
    json_object *root, *caps, *o;
    enum json_tokener_error jerr;
    bool bad = false;

    if (json[len - 1] != '\0' || strlen(json) + 1 != len) {
        *why = "capabilities not NUL-terminated";
        return false;
    }
    root = json_tokener_parse_verbose(json, &jerr);
    if (!root || !json_object_is_type(root, json_type_object)) {
        json_object_put(root);
        *why = "capabilities are not JSON object";
        return false;
    }
    if (json_object_object_get_ex(root, "capabilities", &caps)) {
        if (!json_object_is_type(caps, json_type_object)) {
            json_object_put(root);
            *why = "'capabilities' not an object";
            return false;
        }
        json_get_u64(caps, "max_msg_fds", &c->max_fds, &bad);
        json_get_u64(caps, "max_data_xfer_size", &c->max_xfer, &bad);
        json_get_u64(caps, "pgsizes", &c->pgsizes, &bad);
        json_get_u64(caps, "max_dma_maps", &c->max_maps, &bad);
        if (json_object_object_get_ex(caps, "write_multiple", &o)) {
            if (!json_object_is_type(o, json_type_boolean)) {
                bad = true;
            }
            c->write_multiple = json_object_get_boolean(o);
        }
    }
    json_object_put(root);
    if (bad) {
        *why = "capability of the wrong type";
        return false;
    }
    if (!(c->pgsizes & VFU_SERVER_PGSIZES) || c->max_xfer < 4096) {
        *why = "unusable page sizes or transfer size";
        return false;
    }
    return true;
}

/*
 * The capabilities we reply: a subset of what we support.  QEMU's client
 * reads the reply into a buffer the size of its request: never answer
 * longer than @room bytes with the NUL (0: no limit), dropping the least
 * important capabilities to fit; *multi says whether write_multiple
 * (offered when @multi) survived.  NULL when even "{}" does not fit.
 */
static char *vfu_caps_reply(uint32_t room, bool *multi)
{
    for (int drop = 0; drop <= 5; drop++) {
        GString *js = g_string_new("{\"capabilities\":{");
        const char *sep = "";

        if (drop < 5) {
            g_string_append_printf(js, "\"max_msg_fds\":%u",
                                   VFU_SERVER_MAX_MSG_FDS);
            sep = ",";
        }
        if (drop < 4) {
            g_string_append_printf(js, "%s\"max_data_xfer_size\":%u", sep,
                                   VFU_SERVER_MAX_DATA_XFER);
        }
        if (drop < 3) {
            g_string_append_printf(js, ",\"pgsizes\":%u", VFU_SERVER_PGSIZES);
        }
        if (drop < 2) {
            g_string_append_printf(js, ",\"max_dma_maps\":%u",
                                   VFU_SERVER_MAX_DMA_MAPS);
        }
        if (drop < 1 && *multi) {
            g_string_append(js, ",\"write_multiple\":true");
        }
        g_string_append(js, "}}");
        if (!room || js->len + 1 <= room) {
            *multi = *multi && drop < 1;
            return g_string_free(js, false);
        }
        g_string_free(js, true);
    }
    *multi = false;
    return NULL;
}

static int handle_version(VfuServer *s, VfuMsg *m)
{
    const VfuVersion *v = (const VfuVersion *)m->payload;
    const char *json = (const char *)m->payload + sizeof(*v);
    VfuClientCaps caps = {
        .max_fds = 1, .max_xfer = VFU_SERVER_MAX_DATA_XFER,
        .pgsizes = VFU_SERVER_PGSIZES,
    };
    const char *why;
    uint32_t json_len;
    g_autofree char *reply_json = NULL;
    g_autofree uint8_t *reply = NULL;
    size_t reply_len = sizeof(*v);

    if (s->negotiated) {
        return msg_fail(s, m, EINVAL, "VERSION sent twice");
    }
    if (m->len < sizeof(*v)) {
        return msg_fail(s, m, EINVAL, "VERSION too short");
    }
    if (v->major != VFU_VERSION_MAJOR) {
        return msg_fail(s, m, ENOTSUP, "unsupported major version");
    }
    json_len = m->len - sizeof(*v);
    if (json_len) {
        if (!vfu_parse_caps(json, json_len, &caps, &why)) {
            return msg_fail(s, m, EINVAL, why);
        }
        s->client_caps_json = g_strdup(json);
    }
    s->minor = MIN(v->minor, VFU_VERSION_MINOR);
    s->client_max_fds = MIN(caps.max_fds, VFU_SERVER_MAX_MSG_FDS);
    s->client_max_xfer = MIN(caps.max_xfer, VFU_SERVER_MAX_DATA_XFER * 64ULL);
    s->write_multiple = caps.write_multiple;
    trace_vfu_version(sid(s), v->major, v->minor, json_len ? json : "");

    /* A client that sent no JSON gets none back. */
    if (json_len) {
        reply_json = vfu_caps_reply(json_len, &s->write_multiple);
        if (reply_json) {
            reply_len += strlen(reply_json) + 1;
        }
    }
    reply = g_malloc0(reply_len);
    ((VfuVersion *)reply)->major = VFU_VERSION_MAJOR;
    ((VfuVersion *)reply)->minor = s->minor;
    if (reply_json) {
        memcpy(reply + sizeof(*v), reply_json, reply_len - sizeof(*v));
    }
    s->negotiated = true;
    vfu_send_reply(s, &m->hdr, reply, reply_len, -1);
    return VFU_REPLIED;
}

/* ---- DMA_MAP / DMA_UNMAP ---- */

static int handle_dma_map(VfuServer *s, VfuMsg *m)
{
    const VfuDmaMap *dm = (const VfuDmaMap *)m->payload;
    int fd = -1, r;

    if (m->len != sizeof(*dm) || dm->argsz != sizeof(*dm)) {
        return msg_fail(s, m, EINVAL, "DMA_MAP size");
    }
    if (m->nfds > 1) {
        return msg_fail(s, m, EINVAL, "DMA_MAP with more than one fd");
    }
    if (m->nfds == 1) {
        fd = m->fds[0];
    }
    r = vfu_dma_region_map(s, dm, fd);
    if (r) {
        return msg_fail(s, m, r, "DMA_MAP refused");
    }
    return 0;
}

static int handle_dma_unmap(VfuServer *s, VfuMsg *m)
{
    const VfuDmaUnmap *du = (const VfuDmaUnmap *)m->payload;
    int r;

    if (m->len != sizeof(*du) || du->argsz < sizeof(*du)) {
        return msg_fail(s, m, EINVAL, "DMA_UNMAP size");
    }
    if (du->flags & ~VFU_DMA_UNMAP_FLAG_ALL) {
        return msg_fail(s, m, ENOTSUP, "DMA_UNMAP flags");
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
        return msg_fail(s, m, r, "DMA_UNMAP of an unknown range");
    }
    vfu_send_reply(s, &m->hdr, du, sizeof(*du), -1);
    return VFU_REPLIED;
}

static void vfu_dma_idle(void *opaque)
{
    VfuServer *s = opaque;
    VfuMsg *m = s->pending_unmap;

    if (!m) {
        return;
    }
    s->pending_unmap = NULL;
    vfu_handle_msg(s, m);
    vfu_msg_free(m);
    vfu_resume_reading(s);
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
        return msg_fail(s, m, EINVAL, "DEVICE_GET_INFO size");
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
        return msg_fail(s, m, EINVAL, "GET_REGION_INFO size");
    }
    if (in->index >= VFU_NUM_REGIONS) {
        return msg_fail(s, m, EINVAL, "region index out of range");
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

/* ---- interrupts ---- */

static unsigned irq_count(VfuServer *s, unsigned index)
{
    PCIDevice *pdev = s->pdev;

    switch (index) {
    case VFIO_PCI_INTX_IRQ_INDEX:
        return pdev->config[PCI_INTERRUPT_PIN] ? 1 : 0;
    case VFIO_PCI_MSI_IRQ_INDEX:
        if (!pdev->msi_cap) {
            return 0;
        }
        return 1u << ((pci_get_word(pdev->config + pdev->msi_cap +
                                    PCI_MSI_FLAGS) & PCI_MSI_FLAGS_QMASK) >> 1);
    case VFIO_PCI_MSIX_IRQ_INDEX:
        return pdev->msix_nvec;
    case VFIO_PCI_ERR_IRQ_INDEX:
    case VFIO_PCI_REQ_IRQ_INDEX:
        return 1;
    }
    return 0;
}

static int handle_irq_info(VfuServer *s, VfuMsg *m)
{
    const VfuIrqInfo *in = (const VfuIrqInfo *)m->payload;
    VfuIrqInfo out = { .argsz = sizeof(out) };

    if (m->len != sizeof(*in) || in->argsz < sizeof(*in)) {
        return msg_fail(s, m, EINVAL, "GET_IRQ_INFO size");
    }
    if (in->index >= VFU_NUM_IRQS) {
        return msg_fail(s, m, EINVAL, "irq index out of range");
    }
    out.index = in->index;
    out.count = irq_count(s, in->index);
    out.flags = VFIO_IRQ_INFO_EVENTFD;
    switch (in->index) {
    case VFIO_PCI_INTX_IRQ_INDEX:
        out.flags |= VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED;
        break;
    case VFIO_PCI_MSI_IRQ_INDEX:
    case VFIO_PCI_MSIX_IRQ_INDEX:
        out.flags |= VFIO_IRQ_INFO_MASKABLE;
        break;
    }
    vfu_send_reply(s, &m->hdr, &out, sizeof(out), -1);
    return VFU_REPLIED;
}

static void irq_fds_ensure(VfuServer *s, unsigned index)
{
    unsigned n = irq_count(s, index);

    if (!s->irq_fds[index] && n) {
        s->irq_fds[index] = g_new(int, n);
        for (unsigned i = 0; i < n; i++) {
            s->irq_fds[index][i] = -1;
        }
        s->irq_raised[index] = bitmap_new(n);
        s->irq_nfds[index] = n;
    }
}

static void irq_set_fd(VfuServer *s, unsigned index, unsigned v, int fd)
{
    int *slot = &s->irq_fds[index][v];

    if (*slot >= 0) {
        close(*slot);
    }
    *slot = fd;
}

static unsigned irq_wired(VfuServer *s, unsigned index)
{
    unsigned last = 0;

    for (unsigned v = 0; v < s->irq_nfds[index]; v++) {
        if (s->irq_fds[index][v] >= 0) {
            last = v + 1;
        }
    }
    return last;
}

/* The mode follows what the client wired, as with a VFIO device. */
static void irq_update_mode(VfuServer *s)
{
    PCIIrqMode mode = PCI_IRQ_NONE;
    unsigned count = 0;

    if ((count = irq_wired(s, VFIO_PCI_MSIX_IRQ_INDEX))) {
        mode = PCI_IRQ_MSIX;
    } else if ((count = irq_wired(s, VFIO_PCI_MSI_IRQ_INDEX))) {
        mode = PCI_IRQ_MSI;
    } else if ((count = irq_wired(s, VFIO_PCI_INTX_IRQ_INDEX))) {
        mode = PCI_IRQ_INTX;
    }
    if (mode != s->pdev->irq_mode ||
        (mode != PCI_IRQ_NONE && mode != PCI_IRQ_INTX &&
         count != s->pdev->irq_count[mode == PCI_IRQ_MSIX ? 2 : 1])) {
        trace_vfu_irq_mode(sid(s), mode, count);
    }
    pci_irq_set_mode(s->pdev, mode, count);
}

static void intx_unmask_fd_read(void *opaque)
{
    VfuServer *s = opaque;
    eventfd_t v;

    if (eventfd_read(s->intx_unmask_fd, &v) == 0) {
        pci_irq_mask(s->pdev, PCI_IRQ_INDEX_INTX, 0, false);
    }
}

static void intx_unmask_fd_set(VfuServer *s, int fd)
{
    if (s->intx_unmask_fd >= 0) {
        loop_set_fd(s->loop, s->intx_unmask_fd, NULL, NULL, NULL);
        close(s->intx_unmask_fd);
    }
    s->intx_unmask_fd = fd;
    if (fd >= 0) {
        loop_set_fd(s->loop, fd, intx_unmask_fd_read, NULL, s);
    }
}

void vfu_irq_release(VfuServer *s)
{
    for (unsigned i = 0; i < VFU_NUM_IRQS; i++) {
        for (unsigned v = 0; v < s->irq_nfds[i]; v++) {
            if (s->irq_fds[i][v] >= 0) {
                close(s->irq_fds[i][v]);
            }
        }
        g_clear_pointer(&s->irq_fds[i], g_free);
        g_clear_pointer(&s->irq_raised[i], g_free);
        s->irq_nfds[i] = 0;
    }
    s->irq_any_raised = false;
    intx_unmask_fd_set(s, -1);
    pci_irq_reset(s->pdev);
}

/* Raised now, signalled when the loop iteration ends (vfu_irq_flush). */
void vfu_irq_signal(void *opaque, unsigned index, unsigned vector)
{
    VfuServer *s = opaque;

    if (index < VFU_NUM_IRQS && vector < s->irq_nfds[index]) {
        set_bit(vector, s->irq_raised[index]);
        s->irq_any_raised = true;
    }
}

/* One eventfd write per raised vector: its fd may have changed since. */
void vfu_irq_flush(VfuServer *s)
{
    if (!s->irq_any_raised) {
        return;
    }
    s->irq_any_raised = false;
    for (unsigned i = 0; i < VFU_NUM_IRQS; i++) {
        unsigned n = s->irq_nfds[i];

        for (unsigned v = find_first_bit(s->irq_raised[i], n); v < n;
             v = find_next_bit(s->irq_raised[i], n, v + 1)) {
            clear_bit(v, s->irq_raised[i]);
            if (s->irq_fds[i][v] >= 0) {
                eventfd_write(s->irq_fds[i][v], 1);
                s->nr_irqs++;
            }
        }
    }
}

/*
 * Check a SET_IRQS completely before anything is done: NULL when it can be
 * applied, else why not with *err the errno to reply.  Nothing of the body
 * is read before its size is known.
 */
static const char *set_irqs_validate(VfuServer *s, VfuMsg *m, int *err)
{
    const VfuIrqSet *is = (const VfuIrqSet *)m->payload;
    uint32_t data, action;

    *err = EINVAL;
    if (m->len < sizeof(*is) || is->argsz < sizeof(*is)) {
        return "SET_IRQS size";
    }
    data = is->flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
    action = is->flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
    trace_vfu_set_irqs(sid(s), is->flags, is->index, is->start, is->count,
                       m->nfds);
    if (is->index >= VFU_NUM_IRQS) {
        return "irq index out of range";
    }
    if (is->flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK |
                      VFIO_IRQ_SET_ACTION_TYPE_MASK) ||
        __builtin_popcount(data) != 1 || __builtin_popcount(action) != 1) {
        return "SET_IRQS flags";
    }
    if (!range_within(is->start, is->count, irq_count(s, is->index)) ||
        (is->count == 0 && !(data == VFIO_IRQ_SET_DATA_NONE &&
                             action == VFIO_IRQ_SET_ACTION_TRIGGER))) {
        return "SET_IRQS vector range";
    }
    if (data == VFIO_IRQ_SET_DATA_BOOL ? m->len != sizeof(*is) + is->count
                                       : m->len != sizeof(*is)) {
        return data == VFIO_IRQ_SET_DATA_BOOL ? "SET_IRQS bool array size"
                                              : "SET_IRQS payload size";
    }
    if (data == VFIO_IRQ_SET_DATA_EVENTFD) {
        if (m->nfds != 0 && m->nfds != is->count) {
            return "SET_IRQS fd count";
        }
    } else if (m->nfds) {
        return "SET_IRQS fds without EVENTFD data";
    }
    if (action != VFIO_IRQ_SET_ACTION_TRIGGER) {
        *err = ENOTSUP;
        if (data == VFIO_IRQ_SET_DATA_EVENTFD &&
            (is->index != VFIO_PCI_INTX_IRQ_INDEX ||
             action != VFIO_IRQ_SET_ACTION_UNMASK)) {
            return "SET_IRQS mask eventfd";
        }
        if (data != VFIO_IRQ_SET_DATA_EVENTFD &&
            is->index > VFIO_PCI_MSIX_IRQ_INDEX) {
            return "SET_IRQS mask of ERR/REQ";
        }
    }
    return NULL;
}

/* ACTION_TRIGGER: (un)assign eventfds, or fire vectors (loopback). */
static void set_irqs_trigger(VfuServer *s, VfuMsg *m, uint32_t data)
{
    const VfuIrqSet *is = (const VfuIrqSet *)m->payload;
    const uint8_t *bools = m->payload + sizeof(*is);

    if (data == VFIO_IRQ_SET_DATA_EVENTFD) {
        /* Assign, or with no fds unassign, the eventfds of the range. */
        for (unsigned i = 0; i < is->count; i++) {
            irq_set_fd(s, is->index, is->start + i,
                       m->nfds ? m->fds[i] : -1);
            if (m->nfds) {
                m->fds[i] = -1;     /* consumed */
            }
        }
        irq_update_mode(s);
    } else if (data == VFIO_IRQ_SET_DATA_NONE && is->count == 0) {
        for (unsigned v = 0; v < s->irq_nfds[is->index]; v++) {
            irq_set_fd(s, is->index, v, -1);
        }
        irq_update_mode(s);
    } else {
        for (unsigned i = 0; i < is->count; i++) {
            if (data == VFIO_IRQ_SET_DATA_NONE || bools[i]) {
                vfu_irq_signal(s, is->index, is->start + i);
            }
        }
    }
}

/* ACTION_MASK / UNMASK of vectors, or INTx's resample (unmask) eventfd. */
static void set_irqs_mask(VfuServer *s, VfuMsg *m, uint32_t data, bool mask)
{
    const VfuIrqSet *is = (const VfuIrqSet *)m->payload;
    const uint8_t *bools = m->payload + sizeof(*is);

    if (data == VFIO_IRQ_SET_DATA_EVENTFD) {
        /* INTx resample fd: unmask whenever it is signalled. */
        intx_unmask_fd_set(s, m->nfds ? m->fds[0] : -1);
        if (m->nfds) {
            m->fds[0] = -1;
        }
        return;
    }
    for (unsigned i = 0; i < is->count; i++) {
        if (data == VFIO_IRQ_SET_DATA_NONE || bools[i]) {
            pci_irq_mask(s->pdev, is->index, is->start + i, mask);
        }
    }
}

static int handle_set_irqs(VfuServer *s, VfuMsg *m)
{
    const VfuIrqSet *is = (const VfuIrqSet *)m->payload;
    const char *why;
    uint32_t action;
    int err;

    why = set_irqs_validate(s, m, &err);
    if (why) {
        return msg_fail(s, m, err, why);
    }
    action = is->flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
    irq_fds_ensure(s, is->index);
    if (action == VFIO_IRQ_SET_ACTION_TRIGGER) {
        set_irqs_trigger(s, m, is->flags & VFIO_IRQ_SET_DATA_TYPE_MASK);
    } else {
        set_irqs_mask(s, m, is->flags & VFIO_IRQ_SET_DATA_TYPE_MASK,
                      action == VFIO_IRQ_SET_ACTION_MASK);
    }
    return 0;
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
        return msg_fail(s, m, EINVAL, "REGION_READ size");
    }
    if (rw->count > VFU_SERVER_MAX_DATA_XFER) {
        return msg_fail(s, m, E2BIG, "REGION_READ count");
    }
    if (s->scratch_size < rw->count) {
        s->scratch_size = MAX(rw->count, 4096u);
        g_free(s->scratch);
        s->scratch = g_malloc(s->scratch_size);
    }
    r = region_access(s, rw->region, rw->offset, s->scratch, rw->count,
                      false);
    if (r) {
        return msg_fail(s, m, r, "REGION_READ out of range");
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
        return msg_fail(s, m, EINVAL, "REGION_WRITE size");
    }
    r = region_access(s, rw->region, rw->offset, m->payload + sizeof(*rw),
                      rw->count, true);
    if (r) {
        return msg_fail(s, m, r, "REGION_WRITE out of range");
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
        return msg_fail(s, m, ENOTSUP, "REGION_WRITE_MULTI not negotiated");
    }
    if (m->len < sizeof(uint64_t)) {
        return msg_fail(s, m, EINVAL, "REGION_WRITE_MULTI size");
    }
    cnt = ldq_le_p(m->payload);
    if (cnt == 0 || cnt > VFU_WRITE_MULTI_MAX ||
        m->len != sizeof(uint64_t) + cnt * sizeof(VfuWriteOne)) {
        return msg_fail(s, m, EINVAL, "REGION_WRITE_MULTI count");
    }
    w = (const VfuWriteOne *)(m->payload + sizeof(uint64_t));
    /* Validate all before applying any. */
    for (uint64_t i = 0; i < cnt; i++) {
        if (w[i].count == 0 || w[i].count > sizeof(w[i].data) ||
            w[i].region >= VFU_NUM_REGIONS ||
            !range_within(w[i].offset, w[i].count,
                          region_size(s, w[i].region))) {
            return msg_fail(s, m, EINVAL, "REGION_WRITE_MULTI entry");
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
        return msg_fail(s, m, EINVAL, "DEVICE_RESET size");
    }
    trace_vfu_reset(sid(s));
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

    trace_vfu_msg(sid(s), m->hdr.cmd, m->hdr.msg_id, m->hdr.size, m->nfds);
    if (m->hdr.flags & ~(VFU_FLAG_TYPE_MASK | VFU_FLAG_NO_REPLY |
                         VFU_FLAG_ERROR) ||
        (m->hdr.flags & VFU_FLAG_ERROR)) {
        r = msg_fail(s, m, EINVAL, "bad header flags");
    } else if (m->nfds > VFU_SERVER_MAX_MSG_FDS) {
        r = msg_fail(s, m, EINVAL, "too many fds");
    } else if (!s->negotiated && m->hdr.cmd != VFU_CMD_VERSION) {
        r = msg_fail(s, m, EINVAL, "VERSION must come first");
    } else {
        switch (m->hdr.cmd) {
        case VFU_CMD_VERSION:
            r = handle_version(s, m);
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
            r = handle_irq_info(s, m);
            break;
        case VFU_CMD_DEVICE_SET_IRQS:
            r = handle_set_irqs(s, m);
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
        default:
            r = msg_fail(s, m, EINVAL, "unknown command");
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

/* ---- attaching servers to PCI devices ---- */

static const PCITransportOps vfu_pci_ops = {
    .dma_map = vfu_dma_translate,
    .dma_rw_start = vfu_dma_rw_start,
    .dma_rw_cancel = vfu_dma_rw_cancel,
    .dma_has_msg_regions = vfu_dma_has_msg_regions,
    .irq_signal = vfu_irq_signal,
    .dma_idle = vfu_dma_idle,
};

VfuServer *vfu_server_of(PCIDevice *pdev)
{
    return pdev->tops == &vfu_pci_ops ? pdev->transport : NULL;
}

/* The one teardown, for a failed attach and for the device's end. */
static void vfu_server_free(VfuServer *s)
{
    vfu_client_close(s);
    vfu_socket_close(s);
    pci_transport_detach(s->pdev);
    servers = g_list_remove(servers, s);
    vfu_deferred_cleanup(s);
    vfu_dma_cleanup(s);
    g_free(s);
}

static bool vfu_attach(Device *dev, GError **errp)
{
    VfuServer *s = g_new0(VfuServer, 1);

    s->pdev = PCI_DEVICE(dev);
    s->loop = dev->loop;
    s->listen_fd = -1;
    s->client_fd = -1;
    s->intx_unmask_fd = -1;
    s->client_max_fds = 1;
    s->client_max_xfer = VFU_SERVER_MAX_DATA_XFER;
    vfu_dma_init(s);
    vfu_deferred_init(s);
    /* Installed for good: DMA and IRQs find no mapping/fd without a client. */
    pci_transport_attach(s->pdev, &vfu_pci_ops, s);
    servers = g_list_append(servers, s);
    if (!vfu_socket_listen(s, errp)) {
        vfu_server_free(s);
        return false;
    }
    return true;
}

/* The device is reset (and about to be freed): let everything go. */
static void vfu_detach(Device *dev)
{
    VfuServer *s = vfu_server_of(PCI_DEVICE(dev));

    if (s) {
        vfu_server_free(s);
    }
}

/* A reset finished: what the client sent meanwhile is handled now. */
static void vfu_reset_done(Device *dev)
{
    VfuServer *s = vfu_server_of(PCI_DEVICE(dev));

    if (s) {
        vfu_resume_reading(s);
    }
}

static const StatsSchema vfu_stats_device = {
    .provider = "vfio-user",
    .target = STATS_TARGET_DEVICE,
    .stats = (const StatsDesc[]) {
        { "messages", STATS_CUMULATIVE },       /* handled */
        { "errors", STATS_CUMULATIVE },         /* error replies */
        { "clients", STATS_CUMULATIVE },        /* accepted */
        { "interrupts", STATS_CUMULATIVE },     /* eventfd signals */
        { "dma-regions", STATS_INSTANT },
        { "dma-bytes", STATS_INSTANT, STATS_UNIT_BYTES },
        { NULL }
    },
};

static const StatsSchema *const vfu_stats[] = { &vfu_stats_device, NULL };

static void vfu_get_stats(Device *dev, StatsCollector *c)
{
    VfuServer *s = vfu_server_of(PCI_DEVICE(dev));

    if (!s || !stats_begin(c, &vfu_stats_device, -1)) {
        return;
    }
    stats_put(c, "messages", s->nr_msgs);
    stats_put(c, "errors", s->nr_errors);
    stats_put(c, "clients", s->nr_clients);
    stats_put(c, "interrupts", s->nr_irqs);
    stats_put(c, "dma-regions", s->dma ? s->dma->len : 0);
    stats_put(c, "dma-bytes", s->dma_mapped_bytes);
}

static const DeviceTransportHooks vfu_hooks = {
    .attach = vfu_attach,
    .reset_done = vfu_reset_done,
    .detach = vfu_detach,
    .stats = vfu_stats,
    .get_stats = vfu_get_stats,
};

void vfu_transport_init(void)
{
    device_set_transport_hooks(&vfu_hooks);
}

typedef struct VfuQuery {
    VfuServer *s;
    VfuServerInfo info;
} VfuQuery;

/* On the server's loop: a consistent snapshot. */
static void vfu_query_on_loop(void *opaque)
{
    VfuQuery *q = opaque;
    VfuServer *s = q->s;
    VfuServerInfo *i = &q->info;

    i->id = s->pdev->dev.id;
    i->driver = s->pdev->dev.cls->name;
    i->socket = g_strdup(s->path);
    i->listening = s->listen_fd >= 0;
    i->connected = s->client_fd >= 0;
    i->negotiated = i->connected && s->negotiated;
    i->minor = s->minor;
    i->caps_json = i->negotiated ? g_strdup(s->client_caps_json) : NULL;
    i->dma_regions = s->dma ? s->dma->len : 0;
    i->dma_bytes = s->dma_mapped_bytes;
    for (unsigned k = 0; k < VFU_NUM_IRQS; k++) {
        for (unsigned v = 0; s->irq_fds[k] && v < s->irq_nfds[k]; v++) {
            i->irqs[k] += s->irq_fds[k][v] >= 0;
        }
    }
    i->messages = s->nr_msgs;
    i->errors = s->nr_errors;
    i->clients = s->nr_clients;
}

void vfu_query_servers(void (*fn)(const VfuServerInfo *info, void *opaque),
                       void *opaque)
{
    g_autoptr(GList) copy = g_list_copy(servers);

    for (GList *l = copy; l; l = l->next) {
        VfuQuery q = { .s = l->data };

        loop_run_sync(q.s->loop, vfu_query_on_loop, &q);
        fn(&q.info, opaque);
        g_free(q.info.socket);
        g_free(q.info.caps_json);
    }
}
