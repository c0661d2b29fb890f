/*
 * libqos-style PCI helpers over a vfio-user connection.
 */
#include "util/osdep.h"

#include <sys/mman.h>

#include "tests/qtest/libqos/qos-util.h"
#include "tests/qtest/libqos/pci.h"

typedef struct QPCIMap {
    uint64_t off, size;         /* within the BAR */
    uint8_t *ptr;
} QPCIMap;

struct QPCIDevice {
    VfuClient *c;
    VfuDeviceInfo info;
    VfuRegion regions[QPCI_NUM_REGIONS];
    bool have_region[QPCI_NUM_REGIONS];
    GArray *maps[PCI_NUM_BARS];         /* of QPCIMap */

    int msix_fds[QPCI_MAX_VECTORS];
    unsigned msix_nvec;
    int intx_fd;
};

QPCIDevice *qpci_device_new(VfuClient *c)
{
    QPCIDevice *d = g_new0(QPCIDevice, 1);
    int ret;

    d->c = c;
    d->intx_fd = -1;
    for (unsigned i = 0; i < QPCI_MAX_VECTORS; i++) {
        d->msix_fds[i] = -1;
    }
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        d->maps[i] = g_array_new(false, false, sizeof(QPCIMap));
    }
    ret = vfu_get_device_info(c, &d->info);
    if (ret < 0) {
        qos_fail("DEVICE_GET_INFO failed: %s (%d)", qos_errno_name(ret),
                 ret);
    }
    if (!(d->info.flags & VFIO_DEVICE_FLAGS_PCI)) {
        qos_fail("device is not PCI: DEVICE_GET_INFO flags 0x%x",
                 d->info.flags);
    }
    if (d->info.num_regions <= VFIO_PCI_CONFIG_REGION_INDEX) {
        qos_fail("device has %u regions, no config space region",
                 d->info.num_regions);
    }
    return d;
}

void qpci_device_free(QPCIDevice *d)
{
    if (!d) {
        return;
    }
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        for (unsigned j = 0; j < d->maps[i]->len; j++) {
            QPCIMap *m = &g_array_index(d->maps[i], QPCIMap, j);

            munmap(m->ptr, m->size);
        }
        g_array_free(d->maps[i], true);
    }
    for (unsigned i = 0; i < QPCI_NUM_REGIONS; i++) {
        if (d->have_region[i]) {
            vfu_region_clear(&d->regions[i]);
        }
    }
    for (unsigned i = 0; i < QPCI_MAX_VECTORS; i++) {
        if (d->msix_fds[i] >= 0) {
            close(d->msix_fds[i]);
        }
    }
    if (d->intx_fd >= 0) {
        close(d->intx_fd);
    }
    g_free(d);
}

VfuClient *qpci_client(QPCIDevice *d)
{
    return d->c;
}

const VfuDeviceInfo *qpci_device_info(QPCIDevice *d)
{
    return &d->info;
}

const VfuRegion *qpci_region(QPCIDevice *d, unsigned index)
{
    int ret;

    qos_assert(index < QPCI_NUM_REGIONS, "region %u out of range", index);
    if (!d->have_region[index]) {
        ret = vfu_get_region_info(d->c, index, &d->regions[index]);
        if (ret < 0) {
            qos_fail("GET_REGION_INFO(%u) failed: %s (%d)", index,
                     qos_errno_name(ret), ret);
        }
        d->have_region[index] = true;
    }
    return &d->regions[index];
}

/* ---- configuration space ---- */

static void config_read(QPCIDevice *d, uint32_t off, void *buf, unsigned n)
{
    int ret = vfu_region_read(d->c, VFIO_PCI_CONFIG_REGION_INDEX, off, buf,
                              n);

    if (ret < 0) {
        qos_fail("config read of %u bytes at 0x%x failed: %s (%d)", n, off,
                 qos_errno_name(ret), ret);
    }
}

static void config_write(QPCIDevice *d, uint32_t off, const void *buf,
                         unsigned n)
{
    int ret = vfu_region_write(d->c, VFIO_PCI_CONFIG_REGION_INDEX, off, buf,
                               n);

    if (ret < 0) {
        qos_fail("config write of %u bytes at 0x%x failed: %s (%d)", n, off,
                 qos_errno_name(ret), ret);
    }
}

uint8_t qpci_config_readb(QPCIDevice *d, uint32_t off)
{
    uint8_t v;

    config_read(d, off, &v, 1);
    return v;
}

uint16_t qpci_config_readw(QPCIDevice *d, uint32_t off)
{
    uint8_t b[2];

    config_read(d, off, b, 2);
    return lduw_le_p(b);
}

uint32_t qpci_config_readl(QPCIDevice *d, uint32_t off)
{
    uint8_t b[4];

    config_read(d, off, b, 4);
    return ldl_le_p(b);
}

void qpci_config_writeb(QPCIDevice *d, uint32_t off, uint8_t v)
{
    config_write(d, off, &v, 1);
}

void qpci_config_writew(QPCIDevice *d, uint32_t off, uint16_t v)
{
    uint8_t b[2];

    stw_le_p(b, v);
    config_write(d, off, b, 2);
}

void qpci_config_writel(QPCIDevice *d, uint32_t off, uint32_t v)
{
    uint8_t b[4];

    stl_le_p(b, v);
    config_write(d, off, b, 4);
}

uint8_t qpci_find_capability(QPCIDevice *d, uint8_t id, uint8_t start)
{
    uint8_t off;

    if (!(qpci_config_readw(d, PCI_STATUS) & PCI_STATUS_CAP_LIST)) {
        return 0;
    }
    off = start ? qpci_config_readb(d, start + 1)
                : qpci_config_readb(d, PCI_CAPABILITY_LIST);
    for (unsigned n = 0; off; n++) {
        if (n >= 48 || off < 0x40 || (off & 3)) {
            qos_fail("broken capability list: entry %u at 0x%x", n, off);
        }
        if (qpci_config_readb(d, off) == id) {
            return off;
        }
        off = qpci_config_readb(d, off + 1);
    }
    return 0;
}

void qpci_device_enable(QPCIDevice *d)
{
    uint16_t cmd = qpci_config_readw(d, PCI_COMMAND);

    cmd |= PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
    qpci_config_writew(d, PCI_COMMAND, cmd);
    cmd = qpci_config_readw(d, PCI_COMMAND);
    if ((cmd & (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER)) !=
        (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER)) {
        qos_fail("PCI_COMMAND reads 0x%x after enabling memory and bus "
                 "master", cmd);
    }
}

/* ---- BARs ---- */

uint64_t qpci_bar_size(QPCIDevice *d, unsigned bar)
{
    qos_assert(bar < PCI_NUM_BARS, "BAR %u out of range", bar);
    return qpci_region(d, bar)->size;
}

static void map_area(QPCIDevice *d, unsigned bar, const VfuRegion *r,
                     uint64_t off, uint64_t size)
{
    QPCIMap m = { .off = off, .size = size };

    if (!size) {
        return;
    }
    if (!range_within(off, size, r->size)) {
        qos_fail("BAR %u: mmap area 0x%" PRIx64 "+0x%" PRIx64 " outside the "
                 "0x%" PRIx64 "-byte region", bar, off, size, r->size);
    }
    m.ptr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd,
                 r->offset + off);
    if (m.ptr == MAP_FAILED) {
        qos_fail("BAR %u: mmap(fd %d, offset 0x%" PRIx64 ", size 0x%" PRIx64
                 "): %s", bar, r->fd, r->offset + off, size,
                 g_strerror(errno));
    }
    g_array_append_val(d->maps[bar], m);
}

unsigned qpci_bar_map(QPCIDevice *d, unsigned bar)
{
    const VfuRegion *r;

    qos_assert(bar < PCI_NUM_BARS, "BAR %u out of range", bar);
    r = qpci_region(d, bar);
    if (d->maps[bar]->len) {
        return d->maps[bar]->len;
    }
    if (!(r->flags & VFIO_REGION_INFO_FLAG_MMAP)) {
        return 0;
    }
    if (r->fd < 0) {
        qos_fail("BAR %u reports MMAP but its region info passed no fd",
                 bar);
    }
    if (r->has_sparse_cap) {
        for (unsigned i = 0; i < r->nr_areas; i++) {
            map_area(d, bar, r, r->areas[i].offset, r->areas[i].size);
        }
    } else {
        map_area(d, bar, r, 0, r->size);
    }
    return d->maps[bar]->len;
}

void *qpci_bar_ptr(QPCIDevice *d, unsigned bar, uint64_t off, uint64_t len)
{
    qos_assert(bar < PCI_NUM_BARS, "BAR %u out of range", bar);
    for (unsigned i = 0; i < d->maps[bar]->len; i++) {
        QPCIMap *m = &g_array_index(d->maps[bar], QPCIMap, i);

        if (off >= m->off && range_within(off - m->off, len, m->size)) {
            return m->ptr + (off - m->off);
        }
    }
    return NULL;
}

void qpci_bar_read(QPCIDevice *d, unsigned bar, uint64_t off, void *buf,
                   uint32_t len)
{
    uint8_t *p = qpci_bar_ptr(d, bar, off, len);
    int ret;

    if (p) {
        smp_mb();
        memcpy(buf, p, len);
        return;
    }
    ret = vfu_region_read(d->c, bar, off, buf, len);
    if (ret < 0) {
        qos_fail("BAR %u read of %u bytes at 0x%" PRIx64 " failed: %s (%d)",
                 bar, len, off, qos_errno_name(ret), ret);
    }
}

void qpci_bar_write(QPCIDevice *d, unsigned bar, uint64_t off,
                    const void *buf, uint32_t len)
{
    uint8_t *p = qpci_bar_ptr(d, bar, off, len);
    int ret;

    if (p) {
        memcpy(p, buf, len);
        smp_mb();
        return;
    }
    ret = vfu_region_write(d->c, bar, off, buf, len);
    if (ret < 0) {
        qos_fail("BAR %u write of %u bytes at 0x%" PRIx64 " failed: %s (%d)",
                 bar, len, off, qos_errno_name(ret), ret);
    }
}

uint8_t qpci_bar_readb(QPCIDevice *d, unsigned bar, uint64_t off)
{
    uint8_t v;

    qpci_bar_read(d, bar, off, &v, 1);
    return v;
}

uint16_t qpci_bar_readw(QPCIDevice *d, unsigned bar, uint64_t off)
{
    uint8_t b[2];

    qpci_bar_read(d, bar, off, b, 2);
    return lduw_le_p(b);
}

uint32_t qpci_bar_readl(QPCIDevice *d, unsigned bar, uint64_t off)
{
    uint8_t b[4];

    qpci_bar_read(d, bar, off, b, 4);
    return ldl_le_p(b);
}

uint64_t qpci_bar_readq(QPCIDevice *d, unsigned bar, uint64_t off)
{
    uint8_t b[8];

    qpci_bar_read(d, bar, off, b, 8);
    return ldq_le_p(b);
}

void qpci_bar_writeb(QPCIDevice *d, unsigned bar, uint64_t off, uint8_t v)
{
    qpci_bar_write(d, bar, off, &v, 1);
}

void qpci_bar_writew(QPCIDevice *d, unsigned bar, uint64_t off, uint16_t v)
{
    uint8_t b[2];

    stw_le_p(b, v);
    qpci_bar_write(d, bar, off, b, 2);
}

void qpci_bar_writel(QPCIDevice *d, unsigned bar, uint64_t off, uint32_t v)
{
    uint8_t b[4];

    stl_le_p(b, v);
    qpci_bar_write(d, bar, off, b, 4);
}

void qpci_bar_writeq(QPCIDevice *d, unsigned bar, uint64_t off, uint64_t v)
{
    uint8_t b[8];

    stq_le_p(b, v);
    qpci_bar_write(d, bar, off, b, 8);
}

void qpci_bar_writel_posted(QPCIDevice *d, unsigned bar, uint64_t off,
                            uint32_t v)
{
    uint8_t b[4];
    uint8_t *p = qpci_bar_ptr(d, bar, off, 4);

    stl_le_p(b, v);
    if (p) {
        /* Mapped (NVMe doorbells on a polling iothread): a plain store. */
        smp_wmb();
        __atomic_store_n((uint32_t *)p, ldl_le_p(b), __ATOMIC_RELEASE);
        return;
    }
    vfu_region_write_posted(d->c, bar, off, b, 4);
}

/* ---- moving to another server (migration) ---- */

static void set_irqs_checked(QPCIDevice *d, uint32_t index, uint32_t flags,
                             uint32_t start, uint32_t count, const int *fds,
                             unsigned nfds);

/* Map BAR @bar's areas of the new server where the old ones were. */
static void remap_bar(QPCIDevice *d, unsigned bar)
{
    const VfuRegion *r = qpci_region(d, bar);

    for (unsigned j = 0; j < d->maps[bar]->len; j++) {
        QPCIMap *m = &g_array_index(d->maps[bar], QPCIMap, j);
        void *p;

        qos_assert(r->fd >= 0 && range_within(m->off, m->size, r->size),
                   "BAR %u: the destination offers no mmap at 0x%" PRIx64,
                   bar, m->off);
        p = mmap(m->ptr, m->size, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_FIXED, r->fd, r->offset + m->off);
        qos_assert(p == m->ptr, "BAR %u: mmap at %p: %s", bar, m->ptr,
                   g_strerror(errno));
    }
}

void qpci_device_set_client(QPCIDevice *d, VfuClient *c)
{
    int ret;

    d->c = c;
    for (unsigned i = 0; i < QPCI_NUM_REGIONS; i++) {
        if (d->have_region[i]) {
            vfu_region_clear(&d->regions[i]);
            d->have_region[i] = false;
        }
    }
    ret = vfu_get_device_info(c, &d->info);
    qos_assert(ret == 0, "DEVICE_GET_INFO on the new server: %d", ret);
    for (unsigned bar = 0; bar < PCI_NUM_BARS; bar++) {
        remap_bar(d, bar);
    }
    if (d->msix_nvec) {
        set_irqs_checked(d, VFIO_PCI_MSIX_IRQ_INDEX,
                         VFIO_IRQ_SET_DATA_EVENTFD |
                         VFIO_IRQ_SET_ACTION_TRIGGER,
                         0, d->msix_nvec, d->msix_fds, d->msix_nvec);
    }
    if (d->intx_fd >= 0) {
        set_irqs_checked(d, VFIO_PCI_INTX_IRQ_INDEX,
                         VFIO_IRQ_SET_DATA_EVENTFD |
                         VFIO_IRQ_SET_ACTION_TRIGGER,
                         0, 1, &d->intx_fd, 1);
    }
}

/* ---- interrupts ---- */

static void set_irqs_checked(QPCIDevice *d, uint32_t index, uint32_t flags,
                             uint32_t start, uint32_t count, const int *fds,
                             unsigned nfds)
{
    int ret = vfu_set_irqs(d->c, index, flags, start, count, fds, nfds,
                           NULL);

    if (ret < 0) {
        qos_fail("SET_IRQS(index %u flags 0x%x start %u count %u, %u fds) "
                 "failed: %s (%d)", index, flags, start, count, nfds,
                 qos_errno_name(ret), ret);
    }
}

void qpci_msix_enable(QPCIDevice *d, unsigned nvec)
{
    qos_assert(nvec && nvec <= QPCI_MAX_VECTORS, "bad vector count %u",
               nvec);
    qpci_msix_disable(d);
    for (unsigned i = 0; i < nvec; i++) {
        d->msix_fds[i] = qos_eventfd_new();
    }
    d->msix_nvec = nvec;
    set_irqs_checked(d, VFIO_PCI_MSIX_IRQ_INDEX,
                     VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                     0, nvec, d->msix_fds, nvec);
}

void qpci_msix_disable(QPCIDevice *d)
{
    if (!d->msix_nvec) {
        return;
    }
    set_irqs_checked(d, VFIO_PCI_MSIX_IRQ_INDEX,
                     VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
                     0, 0, NULL, 0);
    for (unsigned i = 0; i < d->msix_nvec; i++) {
        close(d->msix_fds[i]);
        d->msix_fds[i] = -1;
    }
    d->msix_nvec = 0;
}

int qpci_msix_fd(QPCIDevice *d, unsigned vector)
{
    qos_assert(vector < d->msix_nvec, "MSI-X vector %u not enabled (%u "
               "vectors)", vector, d->msix_nvec);
    return d->msix_fds[vector];
}

void qpci_msix_mask(QPCIDevice *d, unsigned vector)
{
    set_irqs_checked(d, VFIO_PCI_MSIX_IRQ_INDEX,
                     VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK,
                     vector, 1, NULL, 0);
}

void qpci_msix_unmask(QPCIDevice *d, unsigned vector)
{
    set_irqs_checked(d, VFIO_PCI_MSIX_IRQ_INDEX,
                     VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK,
                     vector, 1, NULL, 0);
}

bool qpci_msix_pending(QPCIDevice *d, unsigned vector)
{
    uint8_t cap = qpci_find_capability(d, PCI_CAP_ID_MSIX, 0);
    uint32_t pba;
    uint8_t byte;

    qos_assert(cap, "device has no MSI-X capability");
    pba = qpci_config_readl(d, cap + PCI_MSIX_PBA);
    byte = qpci_bar_readb(d, pba & PCI_MSIX_BIR_MASK,
                          (pba & ~PCI_MSIX_BIR_MASK) + vector / 8);
    return byte & (1u << (vector % 8));
}

void qpci_intx_enable(QPCIDevice *d)
{
    if (d->intx_fd < 0) {
        d->intx_fd = qos_eventfd_new();
    }
    set_irqs_checked(d, VFIO_PCI_INTX_IRQ_INDEX,
                     VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                     0, 1, &d->intx_fd, 1);
}

int qpci_intx_fd(QPCIDevice *d)
{
    qos_assert(d->intx_fd >= 0, "INTx not enabled");
    return d->intx_fd;
}

void qpci_intx_mask(QPCIDevice *d)
{
    set_irqs_checked(d, VFIO_PCI_INTX_IRQ_INDEX,
                     VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK,
                     0, 1, NULL, 0);
}

void qpci_intx_unmask(QPCIDevice *d)
{
    set_irqs_checked(d, VFIO_PCI_INTX_IRQ_INDEX,
                     VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK,
                     0, 1, NULL, 0);
}

bool qpci_eventfd_clear(int fd)
{
    return qos_eventfd_consume(fd) != 0;
}

bool qpci_eventfd_wait(QPCIDevice *d, int fd, int timeout_ms)
{
    if (qos_eventfd_consume(fd)) {
        return true;
    }
    if (!vfu_wait_fd(d->c, fd, timeout_ms)) {
        return false;
    }
    return qos_eventfd_consume(fd) != 0;
}

void qpci_msix_wait(QPCIDevice *d, unsigned vector)
{
    if (!qpci_eventfd_wait(d, qpci_msix_fd(d, vector), QPCI_IRQ_TIMEOUT_MS)) {
        qos_fail("MSI-X vector %u did not fire within %d ms", vector,
                 QPCI_IRQ_TIMEOUT_MS);
    }
}

void qpci_intx_wait(QPCIDevice *d)
{
    if (!qpci_eventfd_wait(d, qpci_intx_fd(d), QPCI_IRQ_TIMEOUT_MS)) {
        qos_fail("INTx did not fire within %d ms", QPCI_IRQ_TIMEOUT_MS);
    }
}

void qpci_msix_assert_quiet(QPCIDevice *d, unsigned vector)
{
    if (qpci_eventfd_wait(d, qpci_msix_fd(d, vector), QPCI_IRQ_QUIET_MS)) {
        qos_fail("MSI-X vector %u fired, but it should not have", vector);
    }
}

void qpci_intx_assert_quiet(QPCIDevice *d)
{
    if (qpci_eventfd_wait(d, qpci_intx_fd(d), QPCI_IRQ_QUIET_MS)) {
        qos_fail("INTx fired, but it should not have");
    }
}
