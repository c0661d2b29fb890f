/*
 * Fuzz target: every device's PCI face (config space writes: command
 * register, BARs, MSI/MSI-X, PM, PCIe device control with FLR, virtio's
 * PCI configuration access capability; and its BARs: registers, doorbells,
 * the MSI-X table) with the DMA that follows, at full speed: no socket and
 * no thread.  The devices are realized in process with a transport of the
 * target's own (hw/pci's PCITransportOps): guest RAM is 64 KiB at guest
 * address 0, interrupts are counted.  Each input:
 *
 *   byte 0           which device: NVMe, virtio-blk, virtio-net, e1000,
 *                    pci-testdev (mod 5)
 *   14-byte records  op, size, address (4), value (8):
 *                    op % 6: 0-1 config write, 2 config read, 3 BAR
 *                    write, 4 BAR read, 5 RAM write (8 bytes);
 *                    size: bits 0-1 the width (1, 2, 4, 8: config
 *                    accesses take at most 4), bits 4-6 the BAR
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

#define RAM_SIZE    (64u << 10)

static const char *const device_opts[] = {
    "driver=nvme,id=nvme0,drive=d0,serial=FUZZ",
    "driver=virtio-blk-pci,id=vb0,drive=d1,packed=on",
    "driver=virtio-net-pci,id=vn0,queues=2",
    "driver=e1000,id=e0",
    "driver=pci-testdev,id=t0",
};

static PCIDevice *devs[G_N_ELEMENTS(device_opts)];
static uint8_t *ram;
static uint64_t irqs;

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
    }
    ram = g_malloc0(RAM_SIZE);
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

static void record(PCIDevice *pdev, const uint8_t *r)
{
    unsigned width = 1u << (r[1] & 3), bar = (r[1] >> 4) % PCI_NUM_BARS;
    uint32_t addr = ldl_le_p(r + 2);
    uint64_t val = ldq_le_p(r + 6);
    uint8_t buf[8];

    switch (r[0] % 6) {
    case 0:
    case 1:
    case 2:
        width = MIN(width, 4);
        addr %= pdev->config_size - width + 1;
        if (r[0] % 6 == 2) {
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
    }
    pump();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    PCIDevice *pdev;
    bool done = false;

    if (!ram) {
        setup();
    }
    if (size < 1) {
        return 0;
    }
    pdev = devs[data[0] % G_N_ELEMENTS(devs)];
    memset(ram, 0, RAM_SIZE);
    for (size_t off = 1; off + 14 <= size; off += 14) {
        record(pdev, data + off);
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
