/*
 * Fuzz target: every device's PCI face (config space writes: command
 * register, BARs, MSI/MSI-X, PM, PCIe device control with FLR, virtio's
 * PCI configuration access capability; and its BARs: registers, doorbells,
 * the MSI-X table) with the DMA that follows, at full speed: no socket and
 * no thread (tests/fuzz/fuzz-inproc.h: guest RAM is 64 KiB at guest
 * address 0, interrupts are counted).  Each input:
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
 * The bring-up is fuzz-inproc.h's: NVMe with admin and I/O queue pair 1,
 * virtio with queues 0-2 and DRIVER_OK, e1000 with both rings on.
 *
 * The loop runs until idle after every record (what the device does with
 * it, and with what it then finds in RAM); after the input the device
 * gets the reset a client's hang-up gives it.
 */
#include "tests/fuzz/fuzz-inproc.h"

#include <inttypes.h>

static const char *const device_opts[] = {
    "driver=nvme,id=nvme0,drive=d0,serial=FUZZ",
    "driver=virtio-blk-pci,id=vb0,drive=d1,packed=on",
    "driver=virtio-net-pci,id=vn0",
    "driver=e1000,id=e0",
    "driver=pci-testdev,id=t0",
};

static FuzzDev devs[G_N_ELEMENTS(device_opts)];
static bool verbose;            /* FUZZ_PCI_VERBOSE=1: what a bring-up did */

static void describe(FuzzDev *d)
{
    switch (d->kind) {
    case FUZZ_NVME:
        fprintf(stderr, "nvme: CSTS 0x%" PRIx64 ", admin CQ status 0x%x "
                "0x%x\n", fuzz_bar_r(d, 0, 0x1c, 4),
                lduw_le_p(fuzz_ram + FUZZ_NVME_ACQ + 14),
                lduw_le_p(fuzz_ram + FUZZ_NVME_ACQ + 16 + 14));
        break;
    case FUZZ_VIRTIO:
        fprintf(stderr, "virtio: status 0x%" PRIx64 "\n",
                fuzz_common_r(d, VIRTIO_PCI_COMMON_STATUS, 1));
        break;
    case FUZZ_E1000:
        fprintf(stderr, "e1000: STATUS 0x%" PRIx64 " TCTL 0x%" PRIx64 "\n",
                fuzz_bar_r(d, 0, 0x8, 4), fuzz_bar_r(d, 0, 0x400, 4));
        break;
    case FUZZ_OTHER:
        break;
    }
}

static void record(FuzzDev *d, const uint8_t *r)
{
    PCIDevice *pdev = d->pdev;
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
        fuzz_bar_w(d, bar, addr, val, width);
        break;
    case 4:
        pci_bar_read(pdev, bar, addr, buf, width);
        break;
    case 5:
        stq_le_p(fuzz_ram + addr % (FUZZ_RAM_SIZE - 8 + 1), val);
        break;
    case 6:
        fuzz_doorbell(d, addr % 4, val);
        break;
    }
    fuzz_pump();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FuzzDev *d;

    if (!fuzz_ram) {
        fuzz_setup();
        fuzz_create(true, "driver=null,node-name=d0,size=1M,read-zeroes=on");
        fuzz_create(true, "driver=null,node-name=d1,size=1M,read-zeroes=on");
        for (size_t i = 0; i < G_N_ELEMENTS(devs); i++) {
            fuzz_dev_init(&devs[i], device_opts[i]);
        }
        verbose = getenv("FUZZ_PCI_VERBOSE") != NULL;
    }
    if (size < 1) {
        return 0;
    }
    d = &devs[(data[0] & 7) % G_N_ELEMENTS(devs)];
    if (data[0] & 8) {
        fuzz_bring_up(d, (data[0] & 16) ? 0
                         : 1ull << VIRTIO_F_RING_PACKED, data[0] & 16);
        if (verbose) {
            describe(d);
        }
    }
    for (size_t off = 1; off + 14 <= size; off += 14) {
        record(d, data + off);
    }
    if (verbose) {
        fprintf(stderr, "%s: %" PRIu64 " interrupts so far\n",
                d->pdev->dev.id, fuzz_irqs);
    }
    fuzz_reset(d);              /* as when the client hangs up */
    return 0;
}
