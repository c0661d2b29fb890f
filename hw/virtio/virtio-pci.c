/*
 * Modern virtio-pci transport: capabilities, the common configuration,
 * ISR, device configuration and notification structures in one BAR, and
 * interrupt delivery (MSI-X vectors, or INTx with the ISR).
 */
#include "hw/virtio/virtio-pci.h"
#include "hw/virtio/trace.h"
#include "util/error.h"

static bool ranges_overlap(uint32_t a, unsigned alen, uint32_t b,
                           unsigned blen)
{
    return a < b + blen && b < a + alen;
}

/* ---- interrupts ---- */

void virtio_pci_raise_irq(VirtIODevice *vdev, uint16_t vector)
{
    PCIDevice *pdev = &vdev->pci;

    if (pci_msix_enabled(pdev)) {
        if (vector != VIRTIO_MSI_NO_VECTOR) {
            pci_irq_notify(pdev, vector);
        }
        return;
    }
    pci_set_irq(pdev, vdev->isr != 0);
}

void virtio_pci_lower_intx(VirtIODevice *vdev)
{
    if (vdev->pci.intx_level) {
        pci_set_irq(&vdev->pci, false);
    }
}

/* ---- common configuration ---- */

static VirtQueue *selected_queue(VirtIODevice *vdev)
{
    return virtio_get_queue(vdev, vdev->queue_select);
}

/* The structure as the driver would see it right now. */
static void common_image(VirtIODevice *vdev, uint8_t *b)
{
    VirtQueue *vq = selected_queue(vdev);
    uint32_t df = 0, gf = 0;

    if (vdev->dfselect < 2) {
        df = vdev->host_features >> (32 * vdev->dfselect);
    }
    if (vdev->gfselect < 2) {
        gf = vdev->guest_features >> (32 * vdev->gfselect);
    }
    memset(b, 0, VIRTIO_PCI_COMMON_CFG_SIZE);
    stl_le_p(b + VIRTIO_PCI_COMMON_DFSELECT, vdev->dfselect);
    stl_le_p(b + VIRTIO_PCI_COMMON_DF, df);
    stl_le_p(b + VIRTIO_PCI_COMMON_GFSELECT, vdev->gfselect);
    stl_le_p(b + VIRTIO_PCI_COMMON_GF, gf);
    stw_le_p(b + VIRTIO_PCI_COMMON_MSIX, vdev->config_vector);
    stw_le_p(b + VIRTIO_PCI_COMMON_NUMQ, vdev->nvqs);
    b[VIRTIO_PCI_COMMON_STATUS] = virtio_get_status(vdev);
    b[VIRTIO_PCI_COMMON_CFGGENERATION] = vdev->generation;
    stw_le_p(b + VIRTIO_PCI_COMMON_Q_SELECT, vdev->queue_select);
    if (!vq) {
        stw_le_p(b + VIRTIO_PCI_COMMON_Q_MSIX, VIRTIO_MSI_NO_VECTOR);
        return;
    }
    stw_le_p(b + VIRTIO_PCI_COMMON_Q_SIZE, virtio_queue_get_num(vq));
    stw_le_p(b + VIRTIO_PCI_COMMON_Q_MSIX, virtio_queue_get_vector(vq));
    stw_le_p(b + VIRTIO_PCI_COMMON_Q_ENABLE, virtio_queue_enabled(vq));
    stw_le_p(b + VIRTIO_PCI_COMMON_Q_NOFF, vdev->queue_select);
    stq_le_p(b + VIRTIO_PCI_COMMON_Q_DESCLO,
             virtio_queue_get_area(vq, VIRTQUEUE_AREA_DESC));
    stq_le_p(b + VIRTIO_PCI_COMMON_Q_AVAILLO,
             virtio_queue_get_area(vq, VIRTQUEUE_AREA_DRIVER));
    stq_le_p(b + VIRTIO_PCI_COMMON_Q_USEDLO,
             virtio_queue_get_area(vq, VIRTQUEUE_AREA_DEVICE));
    stw_le_p(b + VIRTIO_PCI_COMMON_Q_NDATA, vdev->queue_select);
}

static uint64_t common_read(VirtIODevice *vdev, uint32_t addr, unsigned size)
{
    uint8_t b[VIRTIO_PCI_COMMON_CFG_SIZE];

    if (!range_within(addr, size, sizeof(b))) {
        return 0;
    }
    common_image(vdev, b);
    return ldn_le_p(b + addr, size);
}

static uint16_t checked_vector(VirtIODevice *vdev, uint16_t v)
{
    return v < vdev->nvectors ? v : VIRTIO_MSI_NO_VECTOR;
}

/* Write half (@hi) or all (size 8) of a queue area address. */
static void set_area(VirtQueue *vq, VirtQueueArea area, bool hi,
                     uint64_t val, unsigned size)
{
    uint64_t a = virtio_queue_get_area(vq, area);

    if (size == 8) {
        a = val;
    } else if (hi) {
        a = (a & 0xffffffffULL) | (val << 32);
    } else {
        a = (a & ~0xffffffffULL) | (uint32_t)val;
    }
    virtio_queue_set_area(vq, area, a);
}

/* Width each register is written with (64-bit ones as two halves). */
static unsigned common_reg_size(uint32_t addr)
{
    switch (addr) {
    case VIRTIO_PCI_COMMON_DFSELECT:
    case VIRTIO_PCI_COMMON_GFSELECT:
    case VIRTIO_PCI_COMMON_GF:
    case VIRTIO_PCI_COMMON_Q_DESCLO:
    case VIRTIO_PCI_COMMON_Q_DESCHI:
    case VIRTIO_PCI_COMMON_Q_AVAILLO:
    case VIRTIO_PCI_COMMON_Q_AVAILHI:
    case VIRTIO_PCI_COMMON_Q_USEDLO:
    case VIRTIO_PCI_COMMON_Q_USEDHI:
        return 4;
    case VIRTIO_PCI_COMMON_STATUS:
        return 1;
    case VIRTIO_PCI_COMMON_MSIX:
    case VIRTIO_PCI_COMMON_Q_SELECT:
    case VIRTIO_PCI_COMMON_Q_SIZE:
    case VIRTIO_PCI_COMMON_Q_MSIX:
    case VIRTIO_PCI_COMMON_Q_ENABLE:
    case VIRTIO_PCI_COMMON_Q_RESET:
        return 2;
    }
    return 0;
}

/* Spec: virtio 1.2 4.1.4.3.1 (common configuration). */
static void common_write(VirtIODevice *vdev, uint32_t addr, uint64_t val,
                         unsigned size)
{
    VirtQueue *vq = selected_queue(vdev);
    unsigned want = common_reg_size(addr);

    trace_virtio_pci_common_write(virtio_id(vdev), addr, size, val);
    if (size == 8 && (addr == VIRTIO_PCI_COMMON_Q_DESCLO ||
                      addr == VIRTIO_PCI_COMMON_Q_AVAILLO ||
                      addr == VIRTIO_PCI_COMMON_Q_USEDLO)) {
        want = 8;
    }
    if (!want || size != want) {
        trace_virtio_err_bad_access(virtio_id(vdev), addr, size);
        return;
    }
    switch (addr) {
    case VIRTIO_PCI_COMMON_DFSELECT:
        vdev->dfselect = val;
        break;
    case VIRTIO_PCI_COMMON_GFSELECT:
        vdev->gfselect = val;
        break;
    case VIRTIO_PCI_COMMON_GF:
        virtio_set_driver_features(vdev, vdev->gfselect, val);
        break;
    case VIRTIO_PCI_COMMON_MSIX:
        vdev->config_vector = checked_vector(vdev, val);
        break;
    case VIRTIO_PCI_COMMON_STATUS:
        virtio_set_status(vdev, val);
        break;
    case VIRTIO_PCI_COMMON_Q_SELECT:
        vdev->queue_select = val;
        break;
    case VIRTIO_PCI_COMMON_Q_SIZE:
        if (vq) {
            virtio_queue_set_num(vq, val);
        }
        break;
    case VIRTIO_PCI_COMMON_Q_MSIX:
        if (vq) {
            virtio_queue_set_vector(vq, checked_vector(vdev, val));
        }
        break;
    case VIRTIO_PCI_COMMON_Q_ENABLE:
        if (vq && val == 1) {
            virtio_queue_enable(vq);
        } else {
            /* 0 is not a valid write; queue reset is not offered. */
            trace_virtio_err_bad_access(virtio_id(vdev), addr, size);
        }
        break;
    case VIRTIO_PCI_COMMON_Q_DESCLO:
    case VIRTIO_PCI_COMMON_Q_DESCHI:
        if (vq) {
            set_area(vq, VIRTQUEUE_AREA_DESC,
                     addr == VIRTIO_PCI_COMMON_Q_DESCHI, val, size);
        }
        break;
    case VIRTIO_PCI_COMMON_Q_AVAILLO:
    case VIRTIO_PCI_COMMON_Q_AVAILHI:
        if (vq) {
            set_area(vq, VIRTQUEUE_AREA_DRIVER,
                     addr == VIRTIO_PCI_COMMON_Q_AVAILHI, val, size);
        }
        break;
    case VIRTIO_PCI_COMMON_Q_USEDLO:
    case VIRTIO_PCI_COMMON_Q_USEDHI:
        if (vq) {
            set_area(vq, VIRTQUEUE_AREA_DEVICE,
                     addr == VIRTIO_PCI_COMMON_Q_USEDHI, val, size);
        }
        break;
    default:
        /* queue_reset (VIRTIO_F_RING_RESET is not offered). */
        trace_virtio_err_bad_access(virtio_id(vdev), addr, size);
        break;
    }
}

/* ---- the modern BAR ---- */

/* Spec: virtio 1.2 4.1.4.5.1 (ISR status, cleared on read). */
static uint8_t isr_read(VirtIODevice *vdev, bool peek)
{
    uint8_t v = vdev->isr;

    if (!peek) {
        vdev->isr = 0;
        virtio_pci_lower_intx(vdev);
    }
    return v;
}

static uint64_t modern_read(VirtIODevice *vdev, uint64_t addr, unsigned size,
                            bool peek)
{
    uint32_t off = addr & (VIRTIO_PCI_REGION_SIZE - 1);

    switch (addr & ~(uint64_t)(VIRTIO_PCI_REGION_SIZE - 1)) {
    case VIRTIO_PCI_COMMON_OFFSET:
        return common_read(vdev, off, size);
    case VIRTIO_PCI_ISR_OFFSET:
        return off == 0 ? isr_read(vdev, peek) : 0;
    case VIRTIO_PCI_DEVICE_OFFSET:
        return virtio_config_read(vdev, off, size);
    }
    return 0;
}

/* Spec: virtio 1.2 4.1.4.4, 4.1.5.2. */
static void notify_write(VirtIODevice *vdev, uint32_t off, uint64_t val,
                         unsigned size)
{
    if (off % VIRTIO_PCI_NOTIFY_MULTIPLIER || size < 2) {
        trace_virtio_err_bad_access(virtio_id(vdev),
                                    VIRTIO_PCI_NOTIFY_OFFSET + off, size);
        return;
    }
    /* Only record it: the queue is processed from a bottom half. */
    virtio_queue_notify(vdev, off / VIRTIO_PCI_NOTIFY_MULTIPLIER);
}

static void modern_write(VirtIODevice *vdev, uint64_t addr, uint64_t val,
                         unsigned size)
{
    uint32_t off = addr & (VIRTIO_PCI_REGION_SIZE - 1);

    switch (addr & ~(uint64_t)(VIRTIO_PCI_REGION_SIZE - 1)) {
    case VIRTIO_PCI_COMMON_OFFSET:
        common_write(vdev, off, val, size);
        break;
    case VIRTIO_PCI_DEVICE_OFFSET:
        virtio_config_write(vdev, off, val, size);
        break;
    case VIRTIO_PCI_NOTIFY_OFFSET:
        notify_write(vdev, off, val, size);
        break;
    default:
        trace_virtio_err_bad_access(virtio_id(vdev), addr, size);
        break;
    }
}

static uint64_t virtio_pci_bar_read(void *opaque, uint64_t addr,
                                    unsigned size)
{
    return modern_read(opaque, addr, size, false);
}

static void virtio_pci_bar_write(void *opaque, uint64_t addr, uint64_t val,
                                 unsigned size)
{
    modern_write(opaque, addr, val, size);
}

static const PCIBarOps virtio_pci_bar_ops = {
    .read = virtio_pci_bar_read,
    .write = virtio_pci_bar_write,
};

/* ---- the PCI configuration access capability ---- */

/* The window the capability describes, if it is a valid one. */
static bool cfg_cap_window(VirtIODevice *vdev, uint32_t *off, unsigned *len)
{
    uint8_t *c = vdev->pci.config + vdev->cfg_cap;

    *off = pci_get_long(c + VIRTIO_PCI_CAP_OFFSET);
    *len = pci_get_long(c + VIRTIO_PCI_CAP_LENGTH);
    return c[VIRTIO_PCI_CAP_BAR] == VIRTIO_PCI_MODERN_BAR &&
           (*len == 1 || *len == 2 || *len == 4) && !(*off % *len) &&
           range_within(*off, *len, VIRTIO_PCI_MODERN_BAR_SIZE);
}

/*
 * Config space reads are served from pdev->config without a device hook,
 * so the data window is refreshed after every write to the capability: a
 * driver sets bar, length and offset, then reads pci_cfg_data.  The
 * refresh does not clear the ISR (that read has no side effect here).
 * Spec: virtio 1.2 4.1.4.9.1.
 */
static void virtio_pci_config_write(PCIDevice *pdev, uint32_t addr,
                                    uint32_t val, unsigned len)
{
    VirtIODevice *vdev = (VirtIODevice *)pdev;
    uint8_t *data = pdev->config + vdev->cfg_cap + VIRTIO_PCI_CFG_CAP_DATA;
    uint32_t off;
    unsigned n;

    if (!vdev->cfg_cap ||
        !ranges_overlap(addr, len, vdev->cfg_cap, VIRTIO_PCI_CFG_CAP_SIZEOF)) {
        return;
    }
    if (!cfg_cap_window(vdev, &off, &n)) {
        return;
    }
    if (ranges_overlap(addr, len, vdev->cfg_cap + VIRTIO_PCI_CFG_CAP_DATA,
                       4)) {
        trace_virtio_pci_cfg_cap(virtio_id(vdev), off, n, 1);
        modern_write(vdev, off, ldn_le_p(data, n), n);
    }
    stn_le_p(data, n, modern_read(vdev, off, n, true));
}

/* ---- device state ---- */

#define VIRTIO_PCI_STATE_VERSION        1

void virtio_pci_save_state(VirtIODevice *vdev, StateWriter *w)
{
    g_autofree uint8_t *qv = g_malloc0(2 * vdev->nvqs + 2);

    for (unsigned i = 0; i < vdev->nvqs; i++) {
        stw_le_p(qv + 2 * i, virtio_queue_get_vector(vdev->vq[i]));
    }
    state_begin(w, "virtio-pci", VIRTIO_PCI_STATE_VERSION);
    state_put_u32(w, "dfselect", vdev->dfselect);
    state_put_u32(w, "gfselect", vdev->gfselect);
    state_put_u16(w, "queue-select", vdev->queue_select);
    state_put_u16(w, "config-vector", vdev->config_vector);
    state_put_bytes(w, "queue-vectors", qv, 2 * vdev->nvqs);
    state_put_u8(w, "isr", vdev->isr);
    state_end(w);
}

/* What a driver could have written: a vector of the table, or none. */
static bool vector_ok(VirtIODevice *vdev, uint16_t v)
{
    return v == VIRTIO_MSI_NO_VECTOR || v < vdev->nvectors;
}

bool virtio_pci_load_state(VirtIODevice *vdev, StateReader *r,
                           VirtIOPCIState *st, GError **errp)
{
    StateSection *s = state_section(r, "virtio-pci",
                                    VIRTIO_PCI_STATE_VERSION, NULL, errp);
    g_autofree uint8_t *qv = g_malloc0(2 * vdev->nvqs + 2);

    if (!s) {
        return false;
    }
    st->dfselect = state_get_u32(s, "dfselect");
    st->gfselect = state_get_u32(s, "gfselect");
    st->queue_select = state_get_u16(s, "queue-select");
    st->config_vector = state_get_u16(s, "config-vector");
    state_get_bytes(s, "queue-vectors", qv, 2 * vdev->nvqs);
    st->isr = state_get_u8(s, "isr");
    if (!vector_ok(vdev, st->config_vector)) {
        state_section_fail(s, "configuration vector %u, the device has %u",
                           st->config_vector, vdev->nvectors);
    }
    for (unsigned i = 0; i < vdev->nvqs; i++) {
        st->queue_vectors[i] = lduw_le_p(qv + 2 * i);
        if (!vector_ok(vdev, st->queue_vectors[i])) {
            state_section_fail(s, "queue %u vector %u, the device has %u", i,
                               st->queue_vectors[i], vdev->nvectors);
        }
    }
    if (st->isr & ~(VIRTIO_PCI_ISR_QUEUE | VIRTIO_PCI_ISR_CONFIG)) {
        state_section_fail(s, "ISR 0x%x has unknown bits", st->isr);
    }
    return state_section_end(s, errp);
}

void virtio_pci_apply_state(VirtIODevice *vdev, const VirtIOPCIState *st)
{
    vdev->dfselect = st->dfselect;
    vdev->gfselect = st->gfselect;
    vdev->queue_select = st->queue_select;
    vdev->config_vector = st->config_vector;
    for (unsigned i = 0; i < vdev->nvqs; i++) {
        virtio_queue_set_vector(vdev->vq[i], st->queue_vectors[i]);
    }
    /* The INTx level it implies came with the PCI state. */
    vdev->isr = st->isr;
}

/* ---- realize ---- */

static uint8_t add_vendor_cap(PCIDevice *pdev, uint8_t type, uint8_t size,
                              uint32_t offset, uint32_t length)
{
    uint8_t cap = pci_add_capability(pdev, PCI_CAP_ID_VNDR, size);
    uint8_t *c = pdev->config + cap;

    c[VIRTIO_PCI_CAP_LEN] = size;
    c[VIRTIO_PCI_CAP_CFG_TYPE] = type;
    c[VIRTIO_PCI_CAP_BAR] = VIRTIO_PCI_MODERN_BAR;
    pci_set_long(c + VIRTIO_PCI_CAP_OFFSET, offset);
    pci_set_long(c + VIRTIO_PCI_CAP_LENGTH, length);
    return cap;
}

bool virtio_pci_realize(VirtIODevice *vdev, GError **errp)
{
    PCIDevice *pdev = &vdev->pci;
    PCIDeviceInfo info = {
        .vendor_id = VIRTIO_PCI_VENDOR_ID,
        .device_id = VIRTIO_PCI_DEVICE_ID_BASE + vdev->ops->device_id,
        .subsystem_vendor_id = VIRTIO_PCI_VENDOR_ID,
        .subsystem_id = VIRTIO_PCI_SUBSYSTEM_ID,
        .revision = VIRTIO_PCI_MODERN_REVISION,
        .class_code = vdev->ops->pci_class,
        .express = true,
        .interrupt_pin = 1,
    };
    unsigned nvec = MIN(vdev->nvqs + 1, VIRTIO_PCI_MSIX_MAX_VECTORS);
    uint32_t pba_off = QEMU_ALIGN_UP(nvec * PCI_MSIX_ENTRY_SIZE, 0x800);
    uint32_t msix_size = pba_off + DIV_ROUND_UP(nvec, 64) * 8;
    uint8_t cap;

    if (vdev->nvqs > VIRTIO_QUEUE_MAX) {
        error_setg(errp, "%u queues, at most %u", vdev->nvqs,
                   VIRTIO_QUEUE_MAX);
        return false;
    }
    if (vdev->config_len > VIRTIO_PCI_REGION_SIZE) {
        error_setg(errp, "device config of %u bytes", vdev->config_len);
        return false;
    }
    pci_device_init(pdev, &info);
    pci_register_bar(pdev, VIRTIO_PCI_MSIX_BAR, PCI_BAR_MEM32,
                     MAX(msix_size, 4096u), NULL, NULL);
    pci_register_bar(pdev, VIRTIO_PCI_MODERN_BAR,
                     PCI_BAR_MEM64 | PCI_BAR_PREFETCH,
                     VIRTIO_PCI_MODERN_BAR_SIZE, &virtio_pci_bar_ops, vdev);
    pci_add_pm_cap(pdev);
    pci_add_msix_cap(pdev, nvec, VIRTIO_PCI_MSIX_BAR, 0, VIRTIO_PCI_MSIX_BAR,
                     pba_off);
    vdev->nvectors = nvec;

    add_vendor_cap(pdev, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_CAP_SIZEOF,
                   VIRTIO_PCI_COMMON_OFFSET, VIRTIO_PCI_REGION_SIZE);
    add_vendor_cap(pdev, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_CAP_SIZEOF,
                   VIRTIO_PCI_ISR_OFFSET, VIRTIO_PCI_REGION_SIZE);
    if (vdev->config_len) {
        add_vendor_cap(pdev, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_CAP_SIZEOF,
                       VIRTIO_PCI_DEVICE_OFFSET, VIRTIO_PCI_REGION_SIZE);
    }
    cap = add_vendor_cap(pdev, VIRTIO_PCI_CAP_NOTIFY_CFG,
                         VIRTIO_PCI_NOTIFY_CAP_SIZEOF,
                         VIRTIO_PCI_NOTIFY_OFFSET, VIRTIO_PCI_REGION_SIZE);
    pci_set_long(pdev->config + cap + VIRTIO_PCI_NOTIFY_CAP_MULT,
                 VIRTIO_PCI_NOTIFY_MULTIPLIER);
    /* bar, offset, length and data are the driver's to write. */
    cap = add_vendor_cap(pdev, VIRTIO_PCI_CAP_PCI_CFG,
                         VIRTIO_PCI_CFG_CAP_SIZEOF, 0, 0);
    pdev->config[cap + VIRTIO_PCI_CAP_BAR] = 0;
    pci_set_wmask(pdev, cap + VIRTIO_PCI_CAP_BAR, 1, 0xff);
    pci_set_wmask(pdev, cap + VIRTIO_PCI_CAP_OFFSET, 4, 0xffffffff);
    pci_set_wmask(pdev, cap + VIRTIO_PCI_CAP_LENGTH, 4, 0xffffffff);
    pci_set_wmask(pdev, cap + VIRTIO_PCI_CFG_CAP_DATA, 4, 0xffffffff);
    vdev->cfg_cap = cap;
    pdev->config_write = virtio_pci_config_write;
    return true;
}

void virtio_pci_unrealize(VirtIODevice *vdev)
{
    pci_device_cleanup(&vdev->pci);
}
