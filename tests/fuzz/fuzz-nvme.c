/*
 * Fuzz target: NVMe command parsing and the PRP/SGL walk over guest RAM.
 * An NVMe controller (null backend, 1 MiB) runs in process on the main
 * loop, driven by a thread of its own; this thread is its vfio-user
 * client (tests/qtest/libqos), with 16 MiB of shared guest RAM.  Each
 * input is a fresh connection and controller bring-up, then:
 *
 *   byte 0         how many commands (1 + n % 8)
 *   n x 65 bytes   a queue selector (bit 0: admin, else I/O queue 1;
 *                  bit 1: PRP1/PRP2 (or the SGL descriptor's address)
 *                  taken modulo the data area and based in it) and a
 *                  64-byte SQE
 *   the rest       written into guest RAM at the data area, where those
 *                  pointers usually land (PRP lists, SGL segments, data)
 *
 * Each command waits up to 20 ms for its completion (some, like
 * Asynchronous Event Request, never complete); then the client hangs up,
 * which resets the controller.
 */
#include "tests/fuzz/fuzz-device.h"
#include "tests/qtest/libqos/guest-mem.h"
#include "tests/qtest/libqos/nvme.h"
#include "tests/qtest/libqos/pci.h"
#include "tests/qtest/libqos/vfu-client.h"

#define DATA_SIZE   (64u << 10)

static FuzzDevice nvme = {
    .node = "driver=null,node-name=d0,size=1M,read-zeroes=on",
    .device = "driver=nvme,id=n0,drive=d0,serial=FUZZ",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    VfuClient *c;
    QPCIDevice *dev;
    GuestMem *gm;
    QNvme *q;
    uint64_t area;
    unsigned n;

    fuzz_device_start(&nvme);
    if (size < 1 + 65) {
        return 0;
    }
    n = MIN(1 + data[0] % 8, (size - 1) / 65);
    c = vfu_client_open(nvme.sock_path);
    dev = qpci_device_new(c);
    gm = guest_mem_new(GUEST_MEM_DEFAULT_BASE, GUEST_MEM_DEFAULT_SIZE);
    guest_mem_map_checked(gm, c, true);
    q = qnvme_new(dev, gm);
    q->use_msix = false;
    qnvme_init(q, 1, 16);
    area = guest_alloc_aligned(gm, DATA_SIZE, 4096);
    guest_memwrite(gm, area, data + 1 + 65 * n,
                   MIN(size - 1 - 65 * n, DATA_SIZE));

    for (unsigned i = 0; i < n; i++) {
        const uint8_t *p = data + 1 + 65 * i;
        QNvmeQueue *queue = (p[0] & 1) ? &q->admin : qnvme_ioq(q, 1);
        NvmeCmd cmd;
        NvmeCqe cqe;

        memcpy(&cmd, p + 1, sizeof(cmd));
        if (p[0] & 2) {
            cmd.dptr.prp1 = area + cmd.dptr.prp1 % DATA_SIZE;
            cmd.dptr.prp2 = area + cmd.dptr.prp2 % DATA_SIZE;
        }
        qnvme_submit(q, queue, &cmd);
        qnvme_try_wait(q, queue, &cqe, 20);
    }
    qnvme_free(q);
    qpci_device_free(dev);
    vfu_client_free(c);
    guest_mem_free(gm);
    return 0;
}
