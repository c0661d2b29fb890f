/*
 * Fuzz target: every device's PCI face (config space writes: command
 * register, BARs, MSI/MSI-X, PM, PCIe device control with FLR, virtio's
 * PCI configuration access capability; and its BARs: registers, doorbells,
 * the MSI-X table) with the DMA that follows, at full speed: no socket and
 * no thread.  The devices are realized in process with a transport of the
 * target's own (hw/pci's PCITransportOps): guest RAM is 64 KiB at guest
 * address 0, interrupts are counted.  Each input:
 *
 *   byte 0           bits 0-2: which device: NVMe, virtio-blk, virtio-net,
 *                    e1000, pci-testdev (mod 5); bit 3: bring it up first
 *                    as a driver would (below); bit 4: virtio: accept
 *                    packed rings; e1000: MAC loopback
 *   14-byte records  op, size, address (4), value (8):
 *                    op % 7: 0-1 config write, 2 config read, 3 BAR
 *                    write, 4 BAR read, 5 RAM write (8 bytes), 6 ring
 *                    doorbell (address % 4) with the value;
 *                    size: bits 0-1 the width (1, 2, 4, 8: config
 *                    accesses take at most 4), bits 4-6 the BAR
 *
 * The bring-up, so that the records reach the command and descriptor
 * parsers at once: memory, bus mastering and MSI-X on; NVMe: admin
 * queues at 0x1000 (SQ) and 0x2000 (CQ), enabled, an I/O CQ at 0x4000
 * and SQ at 0x5000 (16 entries, qid 1) created; virtio: features the
 * device offers accepted, queues 0-2 of 8 entries with their rings in
 * page 1 + n (descriptors, driver area at +0x100, device area at
 * +0x200), DRIVER_OK; e1000: TX ring at 0x1000, RX ring at 0x2000
 * (8 descriptors each), both enabled.  Doorbell q: NVMe's q-th doorbell
 * (SQ 0 tail, CQ 0 head, SQ 1 tail, CQ 1 head), virtio queue q's
 * notification, e1000 TDT (even q) or RDT (odd q).
 *
 * The loop runs until idle after every record (what the device does with
 * it, and with what it then finds in RAM); after the input the device
 * gets the reset a client's hang-up gives it.
 */
#include "util/osdep.h"
#include "util/keyval.h"
#include "util/loop.h"
#include "block/block.h"
#include "hw/core/device.h"
#include "hw/pci/pci.h"
#include "hw/virtio/virtio-spec.h"

#include <inttypes.h>

#define RAM_SIZE    (64u << 10)

static const char *const device_opts[] = {
    "driver=nvme,id=nvme0,drive=d0,serial=FUZZ",
    "driver=virtio-blk-pci,id=vb0,drive=d1,packed=on",
    "driver=virtio-net-pci,id=vn0",
    "driver=e1000,id=e0",
    "driver=pci-testdev,id=t0",
};

enum { DEV_NVME, DEV_VIRTIO_BLK, DEV_VIRTIO_NET, DEV_E1000, DEV_TESTDEV };

static PCIDevice *devs[G_N_ELEMENTS(device_opts)];
static uint8_t *ram;
static uint64_t irqs;

/* Where a virtio device's common config and notifications are. */
typedef struct VirtioLayout {
    unsigned common_bar, notify_bar;
    uint32_t common, notify, notify_mult;
} VirtioLayout;

static VirtioLayout vlayout[G_N_ELEMENTS(device_opts)];

/* ---- the in-process transport ---- */

static void *fuzz_dma_map(void *t, uint64_t addr, uint64_t len,
                          bool is_write, uint64_t *plen)
{
    if (addr >= RAM_SIZE) {
        return NULL;
    }
    *plen = MIN(len, RAM_SIZE - addr);
    return ram + addr;
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
    irqs++;
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

/* ---- set-up and input ---- */

static void *create(bool node, const char *opts)
{
    g_autoptr(Keyval) kv = NULL;
    GError *err = NULL;
    void *obj;

    kv = keyval_parse(opts, "driver", &err);
    obj = !kv ? NULL : node ? (void *)blk_node_create(kv, &err)
                            : (void *)device_create(kv, &err);
    if (!obj) {
        fprintf(stderr, "fuzz-pci: '%s': %s\n", opts, err->message);
        abort();
    }
    return obj;
}

static void pump(void)
{
    for (unsigned i = 0; i < 64 && loop_iterate(loop_main(), false); i++) {
    }
}

static void reset_done(Device *dev, void *opaque)
{
    *(bool *)opaque = true;
}

static void bar_w(PCIDevice *pdev, unsigned bar, uint64_t addr,
                  uint64_t val, unsigned width)
{
    uint8_t buf[8];

    stq_le_p(buf, val);
    pci_bar_write(pdev, bar, addr, buf, width);
    pump();
}

static uint64_t bar_r(PCIDevice *pdev, unsigned bar, uint64_t addr,
                      unsigned width)
{
    uint8_t buf[8] = { 0 };

    pci_bar_read(pdev, bar, addr, buf, width);
    pump();
    return ldq_le_p(buf);
}

static void ram_w(uint64_t addr, const void *p, size_t len)
{
    memcpy(ram + addr, p, len);
}

/* Memory decoding, bus mastering, MSI-X. */
static void pci_bring_up(PCIDevice *pdev)
{
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
                bar_w(pdev, table & 7, (table & ~7u) + 16 * vec + 12, 0, 4);
            }
            /* as a client's SET_IRQS with an eventfd per vector */
            pci_irq_set_mode(pdev, PCI_IRQ_MSIX,
                             (pci_config_read(pdev, cap + PCI_MSIX_FLAGS, 2) &
                              0x7ff) + 1);
        }
    }
    pump();
}

static void find_virtio_layout(PCIDevice *pdev, VirtioLayout *v)
{
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
            v->common_bar = bar;
            v->common = off;
        } else if (type == VIRTIO_PCI_CAP_NOTIFY_CFG) {
            v->notify_bar = bar;
            v->notify = off;
            v->notify_mult = pci_config_read(pdev, cap +
                                             VIRTIO_PCI_NOTIFY_CAP_MULT, 4);
        }
    }
}

static void nvme_bring_up(PCIDevice *pdev)
{
    uint8_t sqe[64] = { 0 };

    bar_w(pdev, 0, 0x24, 0x000f000f, 4);        /* AQA: 16 + 16 */
    bar_w(pdev, 0, 0x28, 0x1000, 8);            /* ASQ */
    bar_w(pdev, 0, 0x30, 0x2000, 8);            /* ACQ */
    bar_w(pdev, 0, 0x14, 0x00460001, 4);        /* CC: EN, 64/16-byte */
    /* Create I/O CQ 1 (0x4000) and SQ 1 (0x5000), 16 entries each. */
    sqe[0] = 0x05;
    stq_le_p(sqe + 24, 0x4000);
    stl_le_p(sqe + 40, (15u << 16) | 1);
    stl_le_p(sqe + 44, 3);                      /* contiguous, vector 0 */
    ram_w(0x1000, sqe, sizeof(sqe));
    sqe[0] = 0x01;
    stq_le_p(sqe + 24, 0x5000);
    stl_le_p(sqe + 44, (1u << 16) | 1);         /* CQ 1, contiguous */
    ram_w(0x1040, sqe, sizeof(sqe));
    bar_w(pdev, 0, 0x1000, 2, 4);               /* SQ 0 tail */
    bar_w(pdev, 0, 0x1004, 2, 4);               /* CQ 0 head */
}

static void virtio_bring_up(PCIDevice *pdev, const VirtioLayout *v,
                            bool packed)
{
    unsigned b = v->common_bar;
    uint64_t c = v->common, features;
    unsigned nq;

    bar_w(pdev, b, c + VIRTIO_PCI_COMMON_STATUS, 0, 1);
    bar_w(pdev, b, c + VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE |
          VIRTIO_CONFIG_S_DRIVER, 1);
    bar_w(pdev, b, c + VIRTIO_PCI_COMMON_DFSELECT, 0, 4);
    features = bar_r(pdev, b, c + VIRTIO_PCI_COMMON_DF, 4);
    bar_w(pdev, b, c + VIRTIO_PCI_COMMON_DFSELECT, 1, 4);
    features |= bar_r(pdev, b, c + VIRTIO_PCI_COMMON_DF, 4) << 32;
    if (!packed) {
        features &= ~(1ull << VIRTIO_F_RING_PACKED);
    }
    for (unsigned i = 0; i < 2; i++) {
        bar_w(pdev, b, c + VIRTIO_PCI_COMMON_GFSELECT, i, 4);
        bar_w(pdev, b, c + VIRTIO_PCI_COMMON_GF, features >> (32 * i), 4);
    }
    bar_w(pdev, b, c + VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE |
          VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK, 1);
    nq = MIN(bar_r(pdev, b, c + VIRTIO_PCI_COMMON_NUMQ, 2), 3);
    for (unsigned q = 0; q < nq; q++) {
        uint64_t page = 0x1000 * (1 + q);

        bar_w(pdev, b, c + VIRTIO_PCI_COMMON_Q_SELECT, q, 2);
        bar_w(pdev, b, c + VIRTIO_PCI_COMMON_Q_SIZE, 8, 2);
        bar_w(pdev, b, c + VIRTIO_PCI_COMMON_Q_MSIX, q, 2);
        bar_w(pdev, b, c + VIRTIO_PCI_COMMON_Q_DESCLO, page, 8);
        bar_w(pdev, b, c + VIRTIO_PCI_COMMON_Q_DESCLO + 8, page + 0x100, 8);
        bar_w(pdev, b, c + VIRTIO_PCI_COMMON_Q_DESCLO + 16, page + 0x200, 8);
        bar_w(pdev, b, c + VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
    }
    bar_w(pdev, b, c + VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE |
          VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
          VIRTIO_CONFIG_S_DRIVER_OK, 1);
}

static void e1000_bring_up(PCIDevice *pdev, bool loopback)
{
    bar_w(pdev, 0, 0x3800, 0x1000, 4);          /* TDBAL */
    bar_w(pdev, 0, 0x3808, 128, 4);             /* TDLEN: 8 descriptors */
    bar_w(pdev, 0, 0x2800, 0x2000, 4);          /* RDBAL */
    bar_w(pdev, 0, 0x2808, 128, 4);             /* RDLEN */
    bar_w(pdev, 0, 0x00d0, ~0u, 4);             /* IMS: everything */
    bar_w(pdev, 0, 0x0100, 0x8002 | (loopback ? 0x40 : 0), 4); /* RCTL */
    bar_w(pdev, 0, 0x0400, 0x0103f0fa, 4);      /* TCTL: EN, PSP */
}

static void bring_up(unsigned which, bool flag)
{
    PCIDevice *pdev = devs[which];

    pci_bring_up(pdev);
    switch (which) {
    case DEV_NVME:
        nvme_bring_up(pdev);
        break;
    case DEV_VIRTIO_BLK:
    case DEV_VIRTIO_NET:
        virtio_bring_up(pdev, &vlayout[which], flag);
        break;
    case DEV_E1000:
        e1000_bring_up(pdev, flag);
        break;
    }
}

/* FUZZ_PCI_VERBOSE=1: what the bring-up achieved. */
static bool verbose;

static void describe(unsigned which)
{
    PCIDevice *pdev = devs[which];
    const VirtioLayout *v = &vlayout[which];

    switch (which) {
    case DEV_NVME:
        fprintf(stderr, "nvme: CSTS 0x%" PRIx64 ", admin CQ status 0x%x "
                "0x%x, irqs %" PRIu64 "\n", bar_r(pdev, 0, 0x1c, 4),
                lduw_le_p(ram + 0x2000 + 14), lduw_le_p(ram + 0x2010 + 14),
                irqs);
        break;
    case DEV_VIRTIO_BLK:
    case DEV_VIRTIO_NET:
        fprintf(stderr, "virtio: status 0x%" PRIx64 "\n",
                bar_r(pdev, v->common_bar,
                      v->common + VIRTIO_PCI_COMMON_STATUS, 1));
        break;
    case DEV_E1000:
        fprintf(stderr, "e1000: STATUS 0x%" PRIx64 " TCTL 0x%" PRIx64 "\n",
                bar_r(pdev, 0, 0x8, 4), bar_r(pdev, 0, 0x400, 4));
        break;
    }
}

static void doorbell(unsigned which, unsigned q, uint32_t val)
{
    PCIDevice *pdev = devs[which];
    const VirtioLayout *v = &vlayout[which];

    switch (which) {
    case DEV_NVME:
        bar_w(pdev, 0, 0x1000 + 4 * q, val, 4);
        break;
    case DEV_VIRTIO_BLK:
    case DEV_VIRTIO_NET:
        bar_w(pdev, v->notify_bar, v->notify + q * v->notify_mult, q, 2);
        break;
    case DEV_E1000:
        bar_w(pdev, 0, q & 1 ? 0x2818 : 0x3818, val, 4);
        break;
    }
}

static void record(unsigned which, const uint8_t *r)
{
    PCIDevice *pdev = devs[which];
    unsigned width = 1u << (r[1] & 3), bar = (r[1] >> 4) % PCI_NUM_BARS;
    uint32_t addr = ldl_le_p(r + 2);
    uint64_t val = ldq_le_p(r + 6);
    uint8_t buf[8];

    switch (r[0] % 7) {
    case 0:
    case 1:
    case 2:
        width = MIN(width, 4);
        addr %= pdev->config_size - width + 1;
        if (r[0] % 7 == 2) {
            pci_config_read(pdev, addr, width);
        } else {
            pci_config_write(pdev, addr, val, width);
        }
        break;
    case 3:
        stq_le_p(buf, val);
        pci_bar_write(pdev, bar, addr, buf, width);
        break;
    case 4:
        pci_bar_read(pdev, bar, addr, buf, width);
        break;
    case 5:
        addr %= RAM_SIZE - 8 + 1;
        stq_le_p(ram + addr, val);
        break;
    case 6:
        doorbell(which, addr % 4, val);
        break;
    }
    pump();
}

static void setup(void)
{
    EventLoop *l = loop_new("fuzz", NULL);

    loop_attach_thread(l);
    loop_set_main(l);
    device_set_transport_hooks(&fuzz_hooks);
    create(true, "driver=null,node-name=d0,size=1M,read-zeroes=on");
    create(true, "driver=null,node-name=d1,size=1M,read-zeroes=on");
    for (size_t i = 0; i < G_N_ELEMENTS(device_opts); i++) {
        devs[i] = PCI_DEVICE(create(false, device_opts[i]));
        find_virtio_layout(devs[i], &vlayout[i]);
    }
    ram = g_malloc0(RAM_SIZE);
    verbose = getenv("FUZZ_PCI_VERBOSE") != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned which;
    PCIDevice *pdev;
    bool done = false;

    if (!ram) {
        setup();
    }
    if (size < 1) {
        return 0;
    }
    which = (data[0] & 7) % G_N_ELEMENTS(devs);
    pdev = devs[which];
    memset(ram, 0, RAM_SIZE);
    if (data[0] & 8) {
        bring_up(which, data[0] & 16);
        if (verbose) {
            describe(which);
        }
    }
    for (size_t off = 1; off + 14 <= size; off += 14) {
        record(which, data + off);
    }
    if (verbose) {
        fprintf(stderr, "%s: %" PRIu64 " interrupts so far\n", pdev->dev.id,
                irqs);
    }
    /* As when the client hangs up. */
    device_reset(&pdev->dev, DEVICE_RESET_FUNCTION, reset_done, &done);
    for (unsigned i = 0; i < 1000000 && !done; i++) {
        loop_iterate(loop_main(), false);
    }
    if (!done) {
        fprintf(stderr, "fuzz-pci: %s did not finish its reset\n",
                pdev->dev.id);
        abort();
    }
    return 0;
}
