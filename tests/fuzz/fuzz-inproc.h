/*
 * For fuzz targets that drive devices in process, at full speed: no
 * socket, no thread.  Devices are realized on this thread's loop with a
 * PCI transport of this file's own (hw/pci's PCITransportOps): guest RAM
 * is FUZZ_RAM_SIZE bytes at guest address 0, interrupts are counted.
 * Register accesses call hw/pci directly; fuzz_bar_w() (what the targets'
 * inputs use) runs the loop until idle, so whatever a write makes the
 * device do (fetch a command, walk a ring, DMA) is done when it returns.
 *
 * fuzz_bring_up() brings a device up as its driver would, so that a target
 * reaches the command and descriptor parsers at once, with this layout:
 *
 *   NVMe      admin SQ at 0x1000 and CQ at 0x2000 (16 entries; slots 0-1
 *             used by the bring-up), I/O CQ 1 at 0x4000 and SQ 1 at 0x5000
 *             (16 entries, interrupts on vector 0)
 *   virtio    every offered feature but those asked off; queues 0-2 of 8
 *             entries, queue n's descriptors at 0x1000 * (n + 1), its
 *             driver area 0x100 and device area 0x200 further; DRIVER_OK
 *   e1000     TX ring of 16 descriptors at 0x1000, RX ring of 8 at 0x2000
 *             with 2 KiB buffers from FUZZ_E1000_RX_BUFS, RDT 7; both on
 *
 * and FUZZ_DATA .. + FUZZ_DATA_SIZE free for the target's own data.
 */
#ifndef TESTS_FUZZ_FUZZ_INPROC_H
#define TESTS_FUZZ_FUZZ_INPROC_H

#include "util/osdep.h"
#include "util/keyval.h"
#include "util/loop.h"
#include "util/trace.h"
#include "block/block.h"
#include "hw/core/device.h"
#include "hw/pci/pci.h"
#include "hw/virtio/virtio-spec.h"

#define FUZZ_RAM_SIZE           (64u << 10)
#define FUZZ_DATA               0x8000u
#define FUZZ_DATA_SIZE          0x4000u
#define FUZZ_E1000_RX_BUFS      0xc000u

#define FUZZ_NVME_ASQ           0x1000u
#define FUZZ_NVME_ACQ           0x2000u
#define FUZZ_NVME_IOCQ          0x4000u
#define FUZZ_NVME_IOSQ          0x5000u
#define FUZZ_NVME_QSIZE         16u
#define FUZZ_NVME_ADMIN_FREE    2u      /* first admin slot left free */

#define FUZZ_VQ_SIZE            8u
#define FUZZ_VQ_DESC(q)         (0x1000u * ((q) + 1))
#define FUZZ_VQ_AVAIL(q)        (FUZZ_VQ_DESC(q) + 0x100)
#define FUZZ_VQ_USED(q)         (FUZZ_VQ_DESC(q) + 0x200)

#define FUZZ_E1000_TX_RING      0x1000u
#define FUZZ_E1000_TX_DESCS     16u
#define FUZZ_E1000_RX_RING      0x2000u
#define FUZZ_E1000_RX_DESCS     8u

typedef enum FuzzKind {
    FUZZ_OTHER,
    FUZZ_NVME,
    FUZZ_VIRTIO,
    FUZZ_E1000,
} FuzzKind;

typedef struct FuzzDev {
    PCIDevice *pdev;
    FuzzKind kind;
    /* virtio: where the common config and the notifications are */
    unsigned common_bar, notify_bar;
    uint32_t common, notify, notify_mult;
} FuzzDev;

static uint8_t *fuzz_ram;
static uint64_t fuzz_irqs;

/* ---- the transport ---- */

static void *fuzz_dma_map(void *t, uint64_t addr, uint64_t len,
                          bool is_write, uint64_t *plen)
{
    if (addr >= FUZZ_RAM_SIZE) {
        return NULL;
    }
    *plen = MIN(len, FUZZ_RAM_SIZE - addr);
    return fuzz_ram + addr;
}

static int fuzz_dma_rw_start(void *t, uint64_t addr, void *buf,
                             uint64_t len, bool is_write, PCIDmaDone *done,
                             void *opaque)
{
    return -EFAULT;             /* no memory lent by messages */
}

static void fuzz_dma_rw_cancel(void *t, void *opaque)
{
}

static bool fuzz_dma_has_msg_regions(void *t)
{
    return false;
}

static void fuzz_irq_signal(void *t, unsigned index, unsigned vector)
{
    fuzz_irqs++;
}

static void fuzz_dma_idle(void *t)
{
}

static const PCITransportOps fuzz_pci_ops = {
    .dma_map = fuzz_dma_map,
    .dma_rw_start = fuzz_dma_rw_start,
    .dma_rw_cancel = fuzz_dma_rw_cancel,
    .dma_has_msg_regions = fuzz_dma_has_msg_regions,
    .irq_signal = fuzz_irq_signal,
    .dma_idle = fuzz_dma_idle,
};

static bool fuzz_attach(Device *dev, GError **errp)
{
    pci_transport_attach(PCI_DEVICE(dev), &fuzz_pci_ops, NULL);
    return true;
}

static void fuzz_reset_done(Device *dev)
{
}

static void fuzz_detach(Device *dev)
{
    pci_transport_detach(PCI_DEVICE(dev));
}

static const DeviceTransportHooks fuzz_hooks = {
    .attach = fuzz_attach,
    .reset_done = fuzz_reset_done,
    .detach = fuzz_detach,
};

/* ---- set-up ---- */

/* Run the loop until it has nothing left to do (bounded). */
static void fuzz_pump(void)
{
    for (unsigned i = 0; i < 64 && loop_iterate(loop_main(), false); i++) {
    }
}

/* A -blockdev (@node) or -device from key=value @opts; aborts on error. */
static void *fuzz_create(bool node, const char *opts)
{
    g_autoptr(Keyval) kv = NULL;
    GError *err = NULL;
    void *obj;

    kv = keyval_parse(opts, "driver", &err);
    obj = !kv ? NULL : node ? (void *)blk_node_create(kv, &err)
                            : (void *)device_create(kv, &err);
    if (!obj) {
        fprintf(stderr, "fuzz: '%s': %s\n", opts, err->message);
        abort();
    }
    return obj;
}

/*
 * Once: this thread's loop, the transport, RAM.  FUZZ_TRACE=PATTERN
 * enables trace events (to see what a seed makes the device do).
 */
static void fuzz_setup(void)
{
    EventLoop *l = loop_new("fuzz", NULL);

    if (getenv("FUZZ_TRACE")) {
        trace_enable_pattern(getenv("FUZZ_TRACE"), true);
    }
    loop_attach_thread(l);
    loop_set_main(l);
    device_set_transport_hooks(&fuzz_hooks);
    fuzz_ram = g_malloc0(FUZZ_RAM_SIZE);
}

static void fuzz_find_virtio(FuzzDev *d)
{
    PCIDevice *pdev = d->pdev;

    for (uint8_t cap = pci_config_read(pdev, PCI_CAPABILITY_LIST, 1);
         cap >= 0x40; cap = pci_config_read(pdev, cap + 1, 1)) {
        unsigned type = pci_config_read(pdev, cap + VIRTIO_PCI_CAP_CFG_TYPE,
                                        1);
        unsigned bar = pci_config_read(pdev, cap + VIRTIO_PCI_CAP_BAR, 1);
        uint32_t off = pci_config_read(pdev, cap + VIRTIO_PCI_CAP_OFFSET, 4);

        if (pci_config_read(pdev, cap, 1) != PCI_CAP_ID_VNDR) {
            continue;
        }
        if (type == VIRTIO_PCI_CAP_COMMON_CFG) {
            d->common_bar = bar;
            d->common = off;
        } else if (type == VIRTIO_PCI_CAP_NOTIFY_CFG) {
            d->notify_bar = bar;
            d->notify = off;
            d->notify_mult = pci_config_read(pdev, cap +
                                             VIRTIO_PCI_NOTIFY_CAP_MULT, 4);
        }
    }
}

/* Realize the device of @opts and learn how to drive it. */
static void fuzz_dev_init(FuzzDev *d, const char *opts)
{
    const char *name;

    d->pdev = PCI_DEVICE((Device *)fuzz_create(false, opts));
    name = d->pdev->dev.cls->name;
    d->kind = !strcmp(name, "nvme") ? FUZZ_NVME
              : g_str_has_prefix(name, "virtio-") ? FUZZ_VIRTIO
              : !strcmp(name, "e1000") ? FUZZ_E1000 : FUZZ_OTHER;
    if (d->kind == FUZZ_VIRTIO) {
        fuzz_find_virtio(d);
    }
}

/* ---- register access ---- */

/* A register write, the loop not run (bring-up steps that need none). */
static void fuzz_bar_set(FuzzDev *d, unsigned bar, uint64_t addr,
                         uint64_t val, unsigned width)
{
    uint8_t buf[8];

    stq_le_p(buf, val);
    pci_bar_write(d->pdev, bar, addr, buf, width);
}

static void fuzz_bar_w(FuzzDev *d, unsigned bar, uint64_t addr,
                       uint64_t val, unsigned width)
{
    fuzz_bar_set(d, bar, addr, val, width);
    fuzz_pump();
}

static uint64_t fuzz_bar_r(FuzzDev *d, unsigned bar, uint64_t addr,
                           unsigned width)
{
    uint8_t buf[8] = { 0 };

    pci_bar_read(d->pdev, bar, addr, buf, width);
    return ldq_le_p(buf);
}

/*
 * A common-config write; the loop runs after a status write only (what
 * the device does about the others is done in the write itself).
 */
static void fuzz_common_w(FuzzDev *d, uint32_t off, uint64_t val,
                          unsigned width)
{
    fuzz_bar_set(d, d->common_bar, d->common + off, val, width);
    if (off == VIRTIO_PCI_COMMON_STATUS) {
        fuzz_pump();
    }
}

static uint64_t fuzz_common_r(FuzzDev *d, uint32_t off, unsigned width)
{
    return fuzz_bar_r(d, d->common_bar, d->common + off, width);
}

/*
 * Ring doorbell @q: NVMe's q-th (SQ 0 tail, CQ 0 head, SQ 1 tail, CQ 1
 * head) with @val, virtio queue q's notification, e1000 TDT (even q) or
 * RDT (odd q) with @val.
 */
static void fuzz_doorbell(FuzzDev *d, unsigned q, uint32_t val)
{
    switch (d->kind) {
    case FUZZ_NVME:
        fuzz_bar_w(d, 0, 0x1000 + 4 * q, val, 4);
        break;
    case FUZZ_VIRTIO:
        fuzz_bar_w(d, d->notify_bar, d->notify + q * d->notify_mult, q, 2);
        break;
    case FUZZ_E1000:
        fuzz_bar_w(d, 0, q & 1 ? 0x2818 : 0x3818, val, 4);
        break;
    case FUZZ_OTHER:
        break;
    }
}

/* ---- bring-up ---- */

/* Memory decoding, bus mastering, MSI-X (or INTx) as a client wires it. */
static void fuzz_pci_bring_up(FuzzDev *d)
{
    PCIDevice *pdev = d->pdev;

    pci_irq_set_mode(pdev, PCI_IRQ_INTX, 1);
    pci_config_write(pdev, PCI_COMMAND, PCI_COMMAND_MEMORY |
                     PCI_COMMAND_MASTER, 2);
    for (uint8_t cap = pci_config_read(pdev, PCI_CAPABILITY_LIST, 1);
         cap >= 0x40; cap = pci_config_read(pdev, cap + 1, 1)) {
        if (pci_config_read(pdev, cap, 1) == PCI_CAP_ID_MSIX) {
            uint32_t table = pci_config_read(pdev, cap + 4, 4);

            pci_config_write(pdev, cap + PCI_MSIX_FLAGS,
                             PCI_MSIX_FLAGS_ENABLE, 2);
            /* unmask the first vectors (vector control of each entry) */
            for (unsigned vec = 0; vec < 4; vec++) {
                fuzz_bar_set(d, table & 7, (table & ~7u) + 16 * vec + 12,
                             0, 4);
            }
            /* as a client's SET_IRQS with an eventfd per vector */
            pci_irq_set_mode(pdev, PCI_IRQ_MSIX,
                             (pci_config_read(pdev, cap + PCI_MSIX_FLAGS, 2) &
                              0x7ff) + 1);
        }
    }
    fuzz_pump();
}

static void fuzz_nvme_bring_up(FuzzDev *d)
{
    uint8_t sqe[64] = { 0 };

    fuzz_bar_set(d, 0, 0x24, ((FUZZ_NVME_QSIZE - 1) << 16) |
                 (FUZZ_NVME_QSIZE - 1), 4);             /* AQA */
    fuzz_bar_set(d, 0, 0x28, FUZZ_NVME_ASQ, 8);
    fuzz_bar_set(d, 0, 0x30, FUZZ_NVME_ACQ, 8);
    fuzz_bar_w(d, 0, 0x14, 0x00460001, 4);      /* CC: EN, 64/16-byte */
    sqe[0] = 0x05;                              /* create I/O CQ 1 */
    stq_le_p(sqe + 24, FUZZ_NVME_IOCQ);
    stl_le_p(sqe + 40, ((FUZZ_NVME_QSIZE - 1) << 16) | 1);
    stl_le_p(sqe + 44, 3);                      /* contiguous, vector 0 */
    memcpy(fuzz_ram + FUZZ_NVME_ASQ, sqe, sizeof(sqe));
    sqe[0] = 0x01;                              /* create I/O SQ 1 */
    stq_le_p(sqe + 24, FUZZ_NVME_IOSQ);
    stl_le_p(sqe + 44, (1u << 16) | 1);         /* CQ 1, contiguous */
    memcpy(fuzz_ram + FUZZ_NVME_ASQ + 64, sqe, sizeof(sqe));
    fuzz_doorbell(d, 0, FUZZ_NVME_ADMIN_FREE);
    fuzz_doorbell(d, 1, FUZZ_NVME_ADMIN_FREE);
}

static void fuzz_virtio_bring_up(FuzzDev *d, uint64_t features_off)
{
    uint8_t status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
    uint64_t features;
    unsigned nq;

    fuzz_common_w(d, VIRTIO_PCI_COMMON_STATUS, 0, 1);
    fuzz_common_w(d, VIRTIO_PCI_COMMON_STATUS, status, 1);
    fuzz_common_w(d, VIRTIO_PCI_COMMON_DFSELECT, 0, 4);
    features = fuzz_common_r(d, VIRTIO_PCI_COMMON_DF, 4);
    fuzz_common_w(d, VIRTIO_PCI_COMMON_DFSELECT, 1, 4);
    features |= fuzz_common_r(d, VIRTIO_PCI_COMMON_DF, 4) << 32;
    features &= ~features_off;
    for (unsigned i = 0; i < 2; i++) {
        fuzz_common_w(d, VIRTIO_PCI_COMMON_GFSELECT, i, 4);
        fuzz_common_w(d, VIRTIO_PCI_COMMON_GF, features >> (32 * i), 4);
    }
    status |= VIRTIO_CONFIG_S_FEATURES_OK;
    fuzz_common_w(d, VIRTIO_PCI_COMMON_STATUS, status, 1);
    nq = MIN(fuzz_common_r(d, VIRTIO_PCI_COMMON_NUMQ, 2), 3);
    for (unsigned q = 0; q < nq; q++) {
        fuzz_common_w(d, VIRTIO_PCI_COMMON_Q_SELECT, q, 2);
        fuzz_common_w(d, VIRTIO_PCI_COMMON_Q_SIZE, FUZZ_VQ_SIZE, 2);
        fuzz_common_w(d, VIRTIO_PCI_COMMON_Q_MSIX, q, 2);
        fuzz_common_w(d, VIRTIO_PCI_COMMON_Q_DESCLO, FUZZ_VQ_DESC(q), 8);
        fuzz_common_w(d, VIRTIO_PCI_COMMON_Q_DESCLO + 8, FUZZ_VQ_AVAIL(q), 8);
        fuzz_common_w(d, VIRTIO_PCI_COMMON_Q_DESCLO + 16, FUZZ_VQ_USED(q), 8);
        fuzz_common_w(d, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
    }
    fuzz_common_w(d, VIRTIO_PCI_COMMON_STATUS,
                  status | VIRTIO_CONFIG_S_DRIVER_OK, 1);
}

static void fuzz_e1000_bring_up(FuzzDev *d, bool loopback)
{
    for (unsigned i = 0; i < FUZZ_E1000_RX_DESCS; i++) {
        stq_le_p(fuzz_ram + FUZZ_E1000_RX_RING + 16 * i,
                 FUZZ_E1000_RX_BUFS + 2048 * i);
    }
    fuzz_bar_set(d, 0, 0x3800, FUZZ_E1000_TX_RING, 4);          /* TDBAL */
    fuzz_bar_set(d, 0, 0x3808, 16 * FUZZ_E1000_TX_DESCS, 4);    /* TDLEN */
    fuzz_bar_set(d, 0, 0x2800, FUZZ_E1000_RX_RING, 4);          /* RDBAL */
    fuzz_bar_set(d, 0, 0x2808, 16 * FUZZ_E1000_RX_DESCS, 4);    /* RDLEN */
    fuzz_bar_set(d, 0, 0x2818, FUZZ_E1000_RX_DESCS - 1, 4);     /* RDT */
    fuzz_bar_set(d, 0, 0x00d0, ~0u, 4);                         /* IMS */
    /* RCTL: EN, BAM, 2 KiB buffers, MAC loopback; TCTL: EN, PSP */
    fuzz_bar_w(d, 0, 0x0100, 0x8002 | (loopback ? 0x40 : 0), 4);
    fuzz_bar_w(d, 0, 0x0400, 0x0103f0fa, 4);
}

/*
 * Bring @d up as its driver would (see the top of this file); virtio
 * leaves the feature bits of @virtio_off unaccepted, e1000 loops frames
 * back to its receiver when @loopback.
 */
static void fuzz_bring_up(FuzzDev *d, uint64_t virtio_off, bool loopback)
{
    fuzz_pci_bring_up(d);
    switch (d->kind) {
    case FUZZ_NVME:
        fuzz_nvme_bring_up(d);
        break;
    case FUZZ_VIRTIO:
        fuzz_virtio_bring_up(d, virtio_off);
        break;
    case FUZZ_E1000:
        fuzz_e1000_bring_up(d, loopback);
        break;
    case FUZZ_OTHER:
        break;
    }
}

static void fuzz_reset_cb(Device *dev, void *opaque)
{
    *(bool *)opaque = true;
}

/* The reset a client's hang-up gives the device; RAM cleared. */
static void fuzz_reset(FuzzDev *d)
{
    bool done = false;

    device_reset(&d->pdev->dev, DEVICE_RESET_FUNCTION, fuzz_reset_cb, &done);
    for (unsigned i = 0; i < 1000000 && !done; i++) {
        loop_iterate(loop_main(), false);
    }
    if (!done) {
        fprintf(stderr, "fuzz: %s did not finish its reset\n",
                d->pdev->dev.id);
        abort();
    }
    memset(fuzz_ram, 0, FUZZ_RAM_SIZE);
}

#endif
