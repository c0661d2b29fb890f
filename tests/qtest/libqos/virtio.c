/*
 * A guest-side virtio-pci driver for tests (see virtio.h).
 */
#include "util/osdep.h"

#include "tests/qtest/libqos/virtio.h"

/* ---- guest memory ---- */

static inline uint16_t gm_load16(GuestMem *gm, uint64_t addr)
{
    uint16_t *p = guest_ptr(gm, addr, 2);

    return GUINT16_FROM_LE(__atomic_load_n(p, __ATOMIC_RELAXED));
}

static inline void gm_store16(GuestMem *gm, uint64_t addr, uint16_t v)
{
    uint16_t *p = guest_ptr(gm, addr, 2);

    __atomic_store_n(p, GUINT16_TO_LE(v), __ATOMIC_RELAXED);
}

/* ---- capabilities and registers ---- */

static void read_cap(QVirtioDevice *vd, uint8_t cap, QVirtioStruct *s)
{
    QPCIDevice *pdev = vd->pdev;

    s->present = true;
    s->cap = cap;
    s->bar = qpci_config_readb(pdev, cap + VIRTIO_PCI_CAP_BAR);
    s->offset = qpci_config_readl(pdev, cap + VIRTIO_PCI_CAP_OFFSET);
    s->length = qpci_config_readl(pdev, cap + VIRTIO_PCI_CAP_LENGTH);
    qos_assert(s->bar < PCI_NUM_BARS, "virtio capability at 0x%x names "
               "BAR %u", cap, s->bar);
    qos_assert(s->offset + s->length <= qpci_bar_size(pdev, s->bar),
               "virtio capability at 0x%x: 0x%" PRIx64 "+0x%" PRIx64
               " outside BAR %u", cap, s->offset, s->length, s->bar);
}

QVirtioDevice *qvirtio_pci_new(QPCIDevice *pdev, GuestMem *gm)
{
    QVirtioDevice *vd = g_new0(QVirtioDevice, 1);
    uint16_t vendor = qpci_config_readw(pdev, PCI_VENDOR_ID);
    uint16_t device = qpci_config_readw(pdev, PCI_DEVICE_ID);
    uint8_t cap = 0;

    qos_assert(vendor == VIRTIO_PCI_VENDOR_ID &&
               device >= VIRTIO_PCI_DEVICE_ID_BASE &&
               device <= VIRTIO_PCI_DEVICE_ID_LAST,
               "not a modern virtio device: %04x:%04x", vendor, device);
    vd->pdev = pdev;
    vd->gm = gm;
    vd->device_type = device - VIRTIO_PCI_DEVICE_ID_BASE;
    vd->config_vector = VIRTIO_MSI_NO_VECTOR;
    qpci_device_enable(pdev);
    while ((cap = qpci_find_capability(pdev, PCI_CAP_ID_VNDR, cap))) {
        uint8_t type = qpci_config_readb(pdev, cap + VIRTIO_PCI_CAP_CFG_TYPE);
        QVirtioStruct *s = NULL;

        switch (type) {
        case VIRTIO_PCI_CAP_COMMON_CFG:
            s = &vd->common;
            break;
        case VIRTIO_PCI_CAP_NOTIFY_CFG:
            s = &vd->notify;
            break;
        case VIRTIO_PCI_CAP_ISR_CFG:
            s = &vd->isr;
            break;
        case VIRTIO_PCI_CAP_DEVICE_CFG:
            s = &vd->device;
            break;
        case VIRTIO_PCI_CAP_PCI_CFG:
            s = &vd->pci_cfg;
            break;
        }
        /* The first of each type is the preferred one. */
        if (!s || s->present) {
            continue;
        }
        if (type == VIRTIO_PCI_CAP_PCI_CFG) {
            s->present = true;
            s->cap = cap;
            continue;
        }
        read_cap(vd, cap, s);
        if (type == VIRTIO_PCI_CAP_NOTIFY_CFG) {
            vd->notify_mult = qpci_config_readl(pdev, cap +
                                                VIRTIO_PCI_NOTIFY_CAP_MULT);
        }
    }
    qos_assert(vd->common.present && vd->notify.present && vd->isr.present,
               "virtio capabilities missing (common %d notify %d isr %d)",
               vd->common.present, vd->notify.present, vd->isr.present);
    qos_assert(vd->common.length >= VIRTIO_PCI_COMMON_CFG_MIN_SIZE,
               "common config of %" PRIu64 " bytes", vd->common.length);
    return vd;
}

void qvirtio_free(QVirtioDevice *vd)
{
    if (!vd) {
        return;
    }
    for (unsigned i = 0; i < vd->nvqs; i++) {
        qvirtqueue_free(vd->vqs[i]);
    }
    g_free(vd);
}

uint8_t qvirtio_common_readb(QVirtioDevice *vd, uint32_t off)
{
    return qpci_bar_readb(vd->pdev, vd->common.bar, vd->common.offset + off);
}

uint16_t qvirtio_common_readw(QVirtioDevice *vd, uint32_t off)
{
    return qpci_bar_readw(vd->pdev, vd->common.bar, vd->common.offset + off);
}

uint32_t qvirtio_common_readl(QVirtioDevice *vd, uint32_t off)
{
    return qpci_bar_readl(vd->pdev, vd->common.bar, vd->common.offset + off);
}

void qvirtio_common_writeb(QVirtioDevice *vd, uint32_t off, uint8_t v)
{
    qpci_bar_writeb(vd->pdev, vd->common.bar, vd->common.offset + off, v);
}

void qvirtio_common_writew(QVirtioDevice *vd, uint32_t off, uint16_t v)
{
    qpci_bar_writew(vd->pdev, vd->common.bar, vd->common.offset + off, v);
}

void qvirtio_common_writel(QVirtioDevice *vd, uint32_t off, uint32_t v)
{
    qpci_bar_writel(vd->pdev, vd->common.bar, vd->common.offset + off, v);
}

uint8_t qvirtio_get_status(QVirtioDevice *vd)
{
    return qvirtio_common_readb(vd, VIRTIO_PCI_COMMON_STATUS);
}

void qvirtio_set_status(QVirtioDevice *vd, uint8_t status)
{
    qvirtio_common_writeb(vd, VIRTIO_PCI_COMMON_STATUS, status);
}

void qvirtio_add_status(QVirtioDevice *vd, uint8_t bits)
{
    qvirtio_set_status(vd, qvirtio_get_status(vd) | bits);
}

void qvirtio_reset(QVirtioDevice *vd)
{
    int64_t deadline = qos_deadline(QOS_TIMEOUT_MS);
    uint8_t st;

    qvirtio_set_status(vd, 0);
    while ((st = qvirtio_get_status(vd)) != 0) {
        if (!qos_remaining_ms(deadline)) {
            qos_fail("device_status still 0x%x %d ms after a reset", st,
                     QOS_TIMEOUT_MS);
        }
        vfu_service(qpci_client(vd->pdev), 1);
    }
    for (unsigned i = 0; i < vd->nvqs; i++) {
        qvirtqueue_free(vd->vqs[i]);
        vd->vqs[i] = NULL;
    }
    vd->nvqs = 0;
    vd->features = 0;
}

uint64_t qvirtio_device_features(QVirtioDevice *vd)
{
    uint64_t f;

    qvirtio_common_writel(vd, VIRTIO_PCI_COMMON_DFSELECT, 0);
    f = qvirtio_common_readl(vd, VIRTIO_PCI_COMMON_DF);
    qvirtio_common_writel(vd, VIRTIO_PCI_COMMON_DFSELECT, 1);
    f |= (uint64_t)qvirtio_common_readl(vd, VIRTIO_PCI_COMMON_DF) << 32;
    return f;
}

void qvirtio_set_driver_features(QVirtioDevice *vd, uint64_t features)
{
    qvirtio_common_writel(vd, VIRTIO_PCI_COMMON_GFSELECT, 0);
    qvirtio_common_writel(vd, VIRTIO_PCI_COMMON_GF, (uint32_t)features);
    qvirtio_common_writel(vd, VIRTIO_PCI_COMMON_GFSELECT, 1);
    qvirtio_common_writel(vd, VIRTIO_PCI_COMMON_GF, features >> 32);
}

uint64_t qvirtio_driver_features(QVirtioDevice *vd)
{
    uint64_t f;

    qvirtio_common_writel(vd, VIRTIO_PCI_COMMON_GFSELECT, 0);
    f = qvirtio_common_readl(vd, VIRTIO_PCI_COMMON_GF);
    qvirtio_common_writel(vd, VIRTIO_PCI_COMMON_GFSELECT, 1);
    f |= (uint64_t)qvirtio_common_readl(vd, VIRTIO_PCI_COMMON_GF) << 32;
    return f;
}

bool qvirtio_negotiate(QVirtioDevice *vd, uint64_t features)
{
    qvirtio_set_driver_features(vd, features);
    qvirtio_add_status(vd, VIRTIO_CONFIG_S_FEATURES_OK);
    if (!(qvirtio_get_status(vd) & VIRTIO_CONFIG_S_FEATURES_OK)) {
        return false;
    }
    vd->features = features;
    return true;
}

static uint64_t config_off(QVirtioDevice *vd, uint32_t off, unsigned size)
{
    qos_assert(vd->device.present && off + size <= vd->device.length,
               "device config access at 0x%x outside the structure", off);
    return vd->device.offset + off;
}

uint8_t qvirtio_config_readb(QVirtioDevice *vd, uint32_t off)
{
    return qpci_bar_readb(vd->pdev, vd->device.bar, config_off(vd, off, 1));
}

uint16_t qvirtio_config_readw(QVirtioDevice *vd, uint32_t off)
{
    return qpci_bar_readw(vd->pdev, vd->device.bar, config_off(vd, off, 2));
}

uint32_t qvirtio_config_readl(QVirtioDevice *vd, uint32_t off)
{
    return qpci_bar_readl(vd->pdev, vd->device.bar, config_off(vd, off, 4));
}

uint64_t qvirtio_config_readq(QVirtioDevice *vd, uint32_t off)
{
    uint8_t gen;
    uint64_t v;

    do {
        gen = qvirtio_generation(vd);
        v = qvirtio_config_readl(vd, off);
        v |= (uint64_t)qvirtio_config_readl(vd, off + 4) << 32;
    } while (gen != qvirtio_generation(vd));
    return v;
}

void qvirtio_config_writeb(QVirtioDevice *vd, uint32_t off, uint8_t v)
{
    qpci_bar_writeb(vd->pdev, vd->device.bar, config_off(vd, off, 1), v);
}

uint8_t qvirtio_generation(QVirtioDevice *vd)
{
    return qvirtio_common_readb(vd, VIRTIO_PCI_COMMON_CFGGENERATION);
}

uint8_t qvirtio_read_isr(QVirtioDevice *vd)
{
    return qpci_bar_readb(vd->pdev, vd->isr.bar, vd->isr.offset);
}

/* ---- interrupts ---- */

void qvirtio_setup_irqs(QVirtioDevice *vd, QVirtioIrq irq, unsigned nqueues)
{
    vd->irq = irq;
    switch (irq) {
    case QVIRTIO_IRQ_MSIX:
        vd->nvec = nqueues + 1;
        qpci_msix_enable(vd->pdev, vd->nvec);
        break;
    case QVIRTIO_IRQ_MSIX_SHARED:
        vd->nvec = 2;
        qpci_msix_enable(vd->pdev, vd->nvec);
        break;
    case QVIRTIO_IRQ_INTX:
        vd->nvec = 0;
        qpci_intx_enable(vd->pdev);
        break;
    case QVIRTIO_IRQ_NONE:
        vd->nvec = 0;
        break;
    }
}

uint16_t qvirtio_set_config_vector(QVirtioDevice *vd, uint16_t vector)
{
    qvirtio_common_writew(vd, VIRTIO_PCI_COMMON_MSIX, vector);
    vd->config_vector = qvirtio_common_readw(vd, VIRTIO_PCI_COMMON_MSIX);
    return vd->config_vector;
}

bool qvirtio_wait_config_irq(QVirtioDevice *vd, int timeout_ms)
{
    int64_t deadline = qos_deadline(timeout_ms);

    if (vd->nvec) {
        qos_assert(vd->config_vector < vd->nvec, "no config vector");
        return qpci_eventfd_wait(vd->pdev,
                                 qpci_msix_fd(vd->pdev, vd->config_vector),
                                 timeout_ms);
    }
    /* INTx or nothing: watch the ISR's config bit. */
    do {
        if (vd->irq == QVIRTIO_IRQ_INTX) {
            qpci_eventfd_wait(vd->pdev, qpci_intx_fd(vd->pdev), 10);
        } else {
            vfu_service(qpci_client(vd->pdev), 1);
        }
        if (qvirtio_read_isr(vd) & VIRTIO_PCI_ISR_CONFIG) {
            if (vd->irq == QVIRTIO_IRQ_INTX) {
                qpci_intx_unmask(vd->pdev);
            }
            return true;
        }
    } while (qos_remaining_ms(deadline));
    return false;
}

/* ---- initialisation ---- */

void qvirtio_init(QVirtioDevice *vd, const QVirtioInit *init)
{
    uint64_t offered, features;
    unsigned nq = init->nqueues;

    qvirtio_reset(vd);
    qvirtio_add_status(vd, VIRTIO_CONFIG_S_ACKNOWLEDGE);
    qvirtio_add_status(vd, VIRTIO_CONFIG_S_DRIVER);
    offered = qvirtio_device_features(vd);
    qos_assert(offered & VIRTIO_BIT(VIRTIO_F_VERSION_1),
               "device does not offer VERSION_1 (0x%" PRIx64 ")", offered);
    features = (init->features & offered) | VIRTIO_BIT(VIRTIO_F_VERSION_1);
    if (!qvirtio_negotiate(vd, features)) {
        qos_fail("device refused FEATURES_OK with 0x%" PRIx64 " (offered "
                 "0x%" PRIx64 ")", features, offered);
    }
    if (!nq) {
        nq = MIN(qvirtio_common_readw(vd, VIRTIO_PCI_COMMON_NUMQ),
                 QVIRTIO_MAX_QUEUES);
    }
    qvirtio_setup_irqs(vd, init->irq, nq);
    if (vd->nvec) {
        qos_assert(qvirtio_set_config_vector(vd, 0) == 0,
                   "config vector 0 refused");
    }
    for (unsigned i = 0; i < nq; i++) {
        uint16_t vector = VIRTIO_MSI_NO_VECTOR;

        if (init->irq == QVIRTIO_IRQ_MSIX) {
            vector = i + 1;
        } else if (init->irq == QVIRTIO_IRQ_MSIX_SHARED) {
            vector = 1;
        }
        vd->vqs[i] = qvirtqueue_setup(vd, i, init->queue_size, vector);
        vd->nvqs = i + 1;
    }
    for (unsigned i = 0; i < nq; i++) {
        qvirtqueue_enable(vd->vqs[i]);
    }
    qvirtio_add_status(vd, VIRTIO_CONFIG_S_DRIVER_OK);
}

/* ---- queues ---- */

QVirtQueue *qvirtqueue_setup(QVirtioDevice *vd, unsigned index,
                             unsigned size, uint16_t vector)
{
    QVirtQueue *vq = g_new0(QVirtQueue, 1);
    unsigned max, num;
    uint64_t dsize, asize, usize;

    qvirtio_common_writew(vd, VIRTIO_PCI_COMMON_Q_SELECT, index);
    max = qvirtio_common_readw(vd, VIRTIO_PCI_COMMON_Q_SIZE);
    qos_assert(max, "queue %u does not exist", index);
    qos_assert(!qvirtio_common_readw(vd, VIRTIO_PCI_COMMON_Q_ENABLE),
               "queue %u already enabled", index);
    num = size ? size : max;
    qos_assert(num <= max && num <= QVIRTIO_MAX_CHAIN, "queue %u: size %u "
               "(max %u)", index, num, max);
    vq->vd = vd;
    vq->index = index;
    vq->num = num;
    vq->packed = vd->features & VIRTIO_BIT(VIRTIO_F_RING_PACKED);
    vq->event_idx = vd->features & VIRTIO_BIT(VIRTIO_F_EVENT_IDX);
    vq->indirect = vd->features & VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC);
    vq->interrupts = true;
    dsize = (uint64_t)num * VRING_DESC_SIZE;
    if (vq->packed) {
        asize = usize = VRING_PACKED_EVENT_SIZE;
    } else {
        asize = vring_avail_size(num);
        usize = vring_used_size(num);
    }
    vq->desc = guest_alloc_aligned(vd->gm, dsize, 4096);
    vq->avail = guest_alloc_aligned(vd->gm, asize, 64);
    vq->used = guest_alloc_aligned(vd->gm, usize, 4096);
    guest_memset(vd->gm, vq->desc, 0, dsize);
    guest_memset(vd->gm, vq->avail, 0, asize);
    guest_memset(vd->gm, vq->used, 0, usize);

    vq->next = g_new0(uint16_t, num);
    vq->ndescs = g_new0(uint16_t, num);
    vq->table = g_new0(uint64_t, num);
    vq->done = g_new0(bool, num);
    vq->done_len = g_new0(uint32_t, num);
    vq->free_ids = g_new0(uint16_t, num);
    for (unsigned i = 0; i < num; i++) {
        vq->next[i] = i + 1;
        vq->free_ids[i] = num - 1 - i;
    }
    vq->nfree = num;
    vq->nfree_ids = num;
    vq->avail_wrap = vq->used_wrap = true;

    if (num != max) {
        qvirtio_common_writew(vd, VIRTIO_PCI_COMMON_Q_SIZE, num);
    }
    qvirtio_common_writel(vd, VIRTIO_PCI_COMMON_Q_DESCLO, (uint32_t)vq->desc);
    qvirtio_common_writel(vd, VIRTIO_PCI_COMMON_Q_DESCHI, vq->desc >> 32);
    qvirtio_common_writel(vd, VIRTIO_PCI_COMMON_Q_AVAILLO,
                          (uint32_t)vq->avail);
    qvirtio_common_writel(vd, VIRTIO_PCI_COMMON_Q_AVAILHI, vq->avail >> 32);
    qvirtio_common_writel(vd, VIRTIO_PCI_COMMON_Q_USEDLO, (uint32_t)vq->used);
    qvirtio_common_writel(vd, VIRTIO_PCI_COMMON_Q_USEDHI, vq->used >> 32);
    vq->notify_addr = vd->notify.offset + (uint64_t)vd->notify_mult *
        qvirtio_common_readw(vd, VIRTIO_PCI_COMMON_Q_NOFF);
    qos_assert(vq->notify_addr + 2 <= vd->notify.offset + vd->notify.length,
               "queue %u notify address outside the notify structure",
               index);
    if (vector != VIRTIO_MSI_NO_VECTOR) {
        uint16_t got;

        qvirtio_common_writew(vd, VIRTIO_PCI_COMMON_Q_MSIX, vector);
        got = qvirtio_common_readw(vd, VIRTIO_PCI_COMMON_Q_MSIX);
        qos_assert(got == vector, "queue %u vector %u refused (reads %u)",
                   index, vector, got);
    }
    vq->vector = vector;
    return vq;
}

void qvirtqueue_enable(QVirtQueue *vq)
{
    QVirtioDevice *vd = vq->vd;

    qvirtio_common_writew(vd, VIRTIO_PCI_COMMON_Q_SELECT, vq->index);
    qvirtio_common_writew(vd, VIRTIO_PCI_COMMON_Q_ENABLE, 1);
    qos_assert(qvirtio_common_readw(vd, VIRTIO_PCI_COMMON_Q_ENABLE) == 1,
               "queue %u did not enable", vq->index);
}

void qvirtqueue_free(QVirtQueue *vq)
{
    GuestMem *gm;

    if (!vq) {
        return;
    }
    gm = vq->vd->gm;
    for (unsigned i = 0; i < vq->num; i++) {
        if (vq->table[i]) {
            guest_free(gm, vq->table[i]);
        }
    }
    guest_free(gm, vq->desc);
    guest_free(gm, vq->avail);
    guest_free(gm, vq->used);
    g_free(vq->next);
    g_free(vq->ndescs);
    g_free(vq->table);
    g_free(vq->done);
    g_free(vq->done_len);
    g_free(vq->free_ids);
    g_free(vq);
}

int qvirtqueue_irq_fd(QVirtQueue *vq)
{
    if (vq->vector == VIRTIO_MSI_NO_VECTOR || !vq->vd->nvec) {
        return -1;
    }
    return qpci_msix_fd(vq->vd->pdev, vq->vector);
}

static void write_desc_raw(GuestMem *gm, uint64_t at, uint64_t addr,
                           uint32_t len, uint16_t w12, uint16_t w14)
{
    uint8_t raw[VRING_DESC_SIZE];

    stq_le_p(raw + VRING_DESC_ADDR, addr);
    stl_le_p(raw + VRING_DESC_LEN, len);
    stw_le_p(raw + 12, w12);
    stw_le_p(raw + 14, w14);
    guest_memwrite(gm, at, raw, sizeof(raw));
}

/* An indirect table for @bufs (split layout: chained by next). */
static uint64_t make_table(QVirtQueue *vq, const QVirtioBuf *bufs,
                           unsigned n)
{
    GuestMem *gm = vq->vd->gm;
    uint64_t t = guest_alloc_aligned(gm, (uint64_t)n * VRING_DESC_SIZE, 16);

    for (unsigned i = 0; i < n; i++) {
        uint16_t flags = bufs[i].write ? VRING_DESC_F_WRITE : 0;

        if (!vq->packed && i + 1 < n) {
            flags |= VRING_DESC_F_NEXT;
        }
        /* Split: flags then next; packed: id (ignored) then flags. */
        if (vq->packed) {
            write_desc_raw(gm, t + i * VRING_DESC_SIZE, bufs[i].addr,
                           bufs[i].len, 0, flags);
        } else {
            write_desc_raw(gm, t + i * VRING_DESC_SIZE, bufs[i].addr,
                           bufs[i].len, flags, i + 1 < n ? i + 1 : 0);
        }
    }
    return t;
}

static int split_add(QVirtQueue *vq, const QVirtioBuf *bufs, unsigned n,
                     bool indirect)
{
    GuestMem *gm = vq->vd->gm;
    unsigned need = indirect ? 1 : n;
    uint16_t head = vq->free_head, i = head, last = head;

    if (vq->nfree < need) {
        return -ENOSPC;
    }
    if (indirect) {
        uint64_t t = make_table(vq, bufs, n);

        write_desc_raw(gm, vq->desc + (uint64_t)i * VRING_DESC_SIZE, t,
                       n * VRING_DESC_SIZE, VRING_DESC_F_INDIRECT, 0);
        vq->table[head] = t;
        last = i;
        i = vq->next[i];
    } else {
        for (unsigned k = 0; k < n; k++) {
            uint16_t flags = bufs[k].write ? VRING_DESC_F_WRITE : 0;

            if (k + 1 < n) {
                flags |= VRING_DESC_F_NEXT;
            }
            write_desc_raw(gm, vq->desc + (uint64_t)i * VRING_DESC_SIZE,
                           bufs[k].addr, bufs[k].len, flags, vq->next[i]);
            last = i;
            i = vq->next[i];
        }
    }
    (void)last;
    vq->free_head = i;
    vq->nfree -= need;
    vq->ndescs[head] = need;
    vq->done[head] = false;
    guest_writew(gm, vq->avail + VRING_AVAIL_RING +
                 2ULL * (vq->avail_idx % vq->num), head);
    /* The entry is visible before the index that publishes it. */
    smp_wmb();
    vq->avail_idx++;
    gm_store16(gm, vq->avail + VRING_AVAIL_IDX, vq->avail_idx);
    vq->inflight++;
    return head;
}

static void packed_advance(QVirtQueue *vq, uint16_t *idx, bool *wrap,
                           unsigned n)
{
    unsigned v = *idx + n;

    if (v >= vq->num) {
        v -= vq->num;
        *wrap = !*wrap;
    }
    *idx = v;
}

static uint16_t packed_avail_bits(bool wrap)
{
    return wrap ? VRING_PACKED_DESC_F_AVAIL : VRING_PACKED_DESC_F_USED;
}

static int packed_add(QVirtQueue *vq, const QVirtioBuf *bufs, unsigned n,
                      bool indirect)
{
    GuestMem *gm = vq->vd->gm;
    unsigned need = indirect ? 1 : n;
    uint16_t id, slot = vq->next_avail, head_flags = 0;
    bool wrap = vq->avail_wrap;
    uint64_t head_at = vq->desc + (uint64_t)slot * VRING_DESC_SIZE;

    if (vq->nfree < need || !vq->nfree_ids) {
        return -ENOSPC;
    }
    id = vq->free_ids[--vq->nfree_ids];
    if (indirect) {
        uint64_t t = make_table(vq, bufs, n);

        vq->table[id] = t;
        head_flags = VRING_DESC_F_INDIRECT | packed_avail_bits(wrap);
        write_desc_raw(gm, head_at, t, n * VRING_DESC_SIZE, id, 0);
        packed_advance(vq, &slot, &wrap, 1);
    } else {
        for (unsigned k = 0; k < n; k++) {
            uint16_t flags = bufs[k].write ? VRING_DESC_F_WRITE : 0;

            if (k + 1 < n) {
                flags |= VRING_DESC_F_NEXT;
            }
            flags |= packed_avail_bits(wrap);
            if (k == 0) {
                head_flags = flags;
                flags = 0;      /* published last */
            }
            write_desc_raw(gm, vq->desc + (uint64_t)slot * VRING_DESC_SIZE,
                           bufs[k].addr, bufs[k].len, id, flags);
            packed_advance(vq, &slot, &wrap, 1);
        }
    }
    /* The chain is complete before its head becomes available. */
    smp_wmb();
    gm_store16(gm, head_at + VRING_PACKED_DESC_FLAGS, head_flags);
    vq->next_avail = slot;
    vq->avail_wrap = wrap;
    vq->nfree -= need;
    vq->ndescs[id] = need;
    vq->done[id] = false;
    vq->inflight++;
    return id;
}

int qvirtqueue_add(QVirtQueue *vq, const QVirtioBuf *bufs, unsigned n,
                   bool indirect)
{
    qos_assert(n && n <= QVIRTIO_MAX_CHAIN, "chain of %u buffers", n);
    return vq->packed ? packed_add(vq, bufs, n, indirect)
                      : split_add(vq, bufs, n, indirect);
}

void qvirtqueue_notify(QVirtQueue *vq)
{
    uint16_t v = vq->index;

    vfu_region_write_posted(qpci_client(vq->vd->pdev), vq->vd->notify.bar,
                            vq->notify_addr, &v, sizeof(v));
}

void qvirtqueue_kick(QVirtQueue *vq)
{
    GuestMem *gm = vq->vd->gm;
    bool kick;

    /* Our index is visible before we read what the device wants. */
    smp_mb();
    if (vq->packed) {
        uint16_t flags = gm_load16(gm, vq->used + VRING_PACKED_EVENT_FLAGS) &
                         VRING_PACKED_EVENT_FLAGS_MASK;
        uint16_t new = vq->next_avail, old = vq->kick_old;

        if (flags == VRING_PACKED_EVENT_FLAG_DESC && vq->event_idx) {
            uint16_t ow = gm_load16(gm, vq->used +
                                    VRING_PACKED_EVENT_OFF_WRAP);
            uint16_t e = ow & 0x7fff;

            if ((bool)(ow >> VRING_PACKED_EVENT_WRAP_SHIFT) !=
                vq->avail_wrap) {
                e -= vq->num;
            }
            if (old > new) {
                old -= vq->num;
            }
            kick = vring_need_event(e, new, old);
        } else {
            kick = flags != VRING_PACKED_EVENT_FLAG_DISABLE;
        }
        vq->kick_old = new;
    } else if (vq->event_idx) {
        uint16_t e = gm_load16(gm, vq->used +
                               vring_used_avail_event_off(vq->num));

        kick = vring_need_event(e, vq->avail_idx, vq->kick_old);
        vq->kick_old = vq->avail_idx;
    } else {
        kick = !(gm_load16(gm, vq->used + VRING_USED_FLAGS) &
                 VRING_USED_F_NO_NOTIFY);
        vq->kick_old = vq->avail_idx;
    }
    if (kick) {
        qvirtqueue_notify(vq);
    }
}

static void release_id(QVirtQueue *vq, uint16_t id, uint32_t len)
{
    GuestMem *gm = vq->vd->gm;

    if (vq->table[id]) {
        guest_free(gm, vq->table[id]);
        vq->table[id] = 0;
    }
    if (vq->packed) {
        vq->free_ids[vq->nfree_ids++] = id;
        vq->nfree += vq->ndescs[id];
    } else {
        /* Return the chain to the free list (our next copy). */
        uint16_t i = id;

        for (unsigned k = 1; k < vq->ndescs[id]; k++) {
            i = vq->next[i];
        }
        vq->next[i] = vq->free_head;
        vq->free_head = id;
        vq->nfree += vq->ndescs[id];
    }
    vq->done[id] = true;
    vq->done_len[id] = len;
    vq->inflight--;
}

bool qvirtqueue_get_used(QVirtQueue *vq, uint32_t *id, uint32_t *len)
{
    GuestMem *gm = vq->vd->gm;

    if (vq->packed) {
        uint64_t at = vq->desc + (uint64_t)vq->last_used * VRING_DESC_SIZE;
        uint16_t flags = gm_load16(gm, at + VRING_PACKED_DESC_FLAGS);
        bool avail = flags & VRING_PACKED_DESC_F_AVAIL;
        bool used = flags & VRING_PACKED_DESC_F_USED;

        if (avail != used || used != vq->used_wrap) {
            return false;
        }
        smp_rmb();
        *id = guest_readw(gm, at + VRING_PACKED_DESC_ID);
        *len = guest_readl(gm, at + VRING_PACKED_DESC_LEN);
        qos_assert(*id < vq->num && !vq->done[*id] && vq->ndescs[*id],
                   "queue %u: device used buffer id %u, not in flight",
                   vq->index, *id);
        packed_advance(vq, &vq->last_used, &vq->used_wrap,
                       vq->ndescs[*id]);
    } else {
        uint16_t idx = gm_load16(gm, vq->used + VRING_USED_IDX);
        uint64_t at;

        if (idx == vq->last_used_idx) {
            return false;
        }
        smp_rmb();
        at = vq->used + VRING_USED_RING +
             (uint64_t)(vq->last_used_idx % vq->num) * VRING_USED_ELEM_SIZE;
        *id = guest_readl(gm, at + VRING_USED_ELEM_ID);
        *len = guest_readl(gm, at + VRING_USED_ELEM_LEN);
        qos_assert(*id < vq->num && !vq->done[*id] && vq->ndescs[*id],
                   "queue %u: device used head %u, not in flight",
                   vq->index, *id);
        vq->last_used_idx++;
    }
    release_id(vq, *id, *len);
    vq->ndescs[*id] = 0;
    return true;
}

void qvirtqueue_set_used_event(QVirtQueue *vq, uint16_t idx)
{
    GuestMem *gm = vq->vd->gm;

    if (vq->packed) {
        gm_store16(gm, vq->avail + VRING_PACKED_EVENT_OFF_WRAP, idx);
        smp_wmb();
        gm_store16(gm, vq->avail + VRING_PACKED_EVENT_FLAGS,
                   VRING_PACKED_EVENT_FLAG_DESC);
    } else {
        gm_store16(gm, vq->avail + vring_avail_used_event_off(vq->num), idx);
    }
    smp_mb();
}

/* Ask for an interrupt at the next used buffer (after we drained). */
static void rearm(QVirtQueue *vq)
{
    if (!vq->interrupts || !vq->event_idx) {
        return;
    }
    if (vq->packed) {
        qvirtqueue_set_used_event(vq, vq->last_used |
                                  ((uint16_t)vq->used_wrap <<
                                   VRING_PACKED_EVENT_WRAP_SHIFT));
    } else {
        qvirtqueue_set_used_event(vq, vq->last_used_idx);
    }
}

void qvirtqueue_set_interrupts(QVirtQueue *vq, bool enable)
{
    GuestMem *gm = vq->vd->gm;

    vq->interrupts = enable;
    if (vq->packed) {
        gm_store16(gm, vq->avail + VRING_PACKED_EVENT_FLAGS,
                   enable ? VRING_PACKED_EVENT_FLAG_ENABLE
                          : VRING_PACKED_EVENT_FLAG_DISABLE);
    } else {
        gm_store16(gm, vq->avail + VRING_AVAIL_FLAGS,
                   enable ? 0 : VRING_AVAIL_F_NO_INTERRUPT);
        if (!enable && vq->event_idx) {
            /* With event index the flag is ignored: point behind us. */
            qvirtqueue_set_used_event(vq, vq->last_used_idx - 1);
        }
    }
    rearm(vq);
    smp_mb();
}

/* Wait a little for an interrupt (or just serve the client). */
static void wait_irq(QVirtQueue *vq, int timeout_ms)
{
    QVirtioDevice *vd = vq->vd;
    int fd = qvirtqueue_irq_fd(vq);

    if (fd >= 0 && vq->interrupts) {
        qpci_eventfd_wait(vd->pdev, fd, timeout_ms);
    } else if (vd->irq == QVIRTIO_IRQ_INTX && vq->interrupts) {
        if (qpci_eventfd_wait(vd->pdev, qpci_intx_fd(vd->pdev),
                              timeout_ms)) {
            qvirtio_read_isr(vd);
            qpci_intx_unmask(vd->pdev);
        }
    } else {
        vfu_service(qpci_client(vd->pdev), 1);
    }
}

bool qvirtqueue_try_wait_used(QVirtQueue *vq, int id, int timeout_ms,
                              uint32_t *len)
{
    int64_t deadline = qos_deadline(timeout_ms);
    uint32_t uid, ulen;

    qos_assert(id >= 0 && (unsigned)id < vq->num, "bad id %d", id);
    for (;;) {
        while (!vq->done[id] && qvirtqueue_get_used(vq, &uid, &ulen)) {
            continue;
        }
        if (vq->done[id]) {
            if (len) {
                *len = vq->done_len[id];
            }
            return true;
        }
        rearm(vq);
        if (qvirtqueue_get_used(vq, &uid, &ulen)) {
            continue;
        }
        if (!qos_remaining_ms(deadline)) {
            return false;
        }
        wait_irq(vq, MIN(qos_remaining_ms(deadline), 100));
    }
}

uint32_t qvirtqueue_wait_used(QVirtQueue *vq, int id)
{
    uint32_t len = 0;

    if (!qvirtqueue_try_wait_used(vq, id, QOS_TIMEOUT_MS, &len)) {
        qos_fail("queue %u: buffer %d not used within %d ms (device status "
                 "0x%x)", vq->index, id, QOS_TIMEOUT_MS,
                 qvirtio_get_status(vq->vd));
    }
    return len;
}

/* ---- raw access ---- */

void qvring_write_desc(QVirtQueue *vq, uint64_t table, unsigned i,
                       uint64_t addr, uint32_t len, uint16_t flags,
                       uint16_t next)
{
    write_desc_raw(vq->vd->gm, table + (uint64_t)i * VRING_DESC_SIZE, addr,
                   len, flags, next);
}

void qvring_publish_head(QVirtQueue *vq, uint16_t head)
{
    GuestMem *gm = vq->vd->gm;

    guest_writew(gm, vq->avail + VRING_AVAIL_RING +
                 2ULL * (vq->avail_idx % vq->num), head);
    smp_wmb();
    vq->avail_idx++;
    gm_store16(gm, vq->avail + VRING_AVAIL_IDX, vq->avail_idx);
}

void qvring_set_avail_idx(QVirtQueue *vq, uint16_t idx)
{
    vq->avail_idx = idx;
    gm_store16(vq->vd->gm, vq->avail + VRING_AVAIL_IDX, idx);
}

void qvring_packed_write_desc(QVirtQueue *vq, unsigned slot, uint64_t addr,
                              uint32_t len, uint16_t id, uint16_t flags,
                              bool avail)
{
    GuestMem *gm = vq->vd->gm;
    uint64_t at = vq->desc + (uint64_t)slot * VRING_DESC_SIZE;

    write_desc_raw(gm, at, addr, len, id, 0);
    if (avail) {
        flags |= packed_avail_bits(vq->avail_wrap);
    }
    smp_wmb();
    gm_store16(gm, at + VRING_PACKED_DESC_FLAGS, flags);
}
