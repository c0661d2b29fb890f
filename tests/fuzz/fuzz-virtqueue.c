/*
 * Fuzz target: virtqueue pop, split and packed, and virtio-blk's request
 * parsing behind it.  A virtio-blk device (null backend, 1 MiB, packed
 * rings offered) runs in process (tests/fuzz/fuzz-device.h); each input
 * is a fresh connection and bring-up as Linux does it, then raw
 * descriptors:
 *
 *   byte 0        features: bit 0 packed ring, bit 1 event index,
 *                 bit 2 indirect descriptors
 *   byte 1        split: the head published; how many descriptors
 *                 (1 + n % 8)
 *   n x 16 bytes  addr (8; based in the data area modulo its size unless
 *                 its top bit is set), len (4), flags (2), next or id (2)
 *   the rest      written into the data area: request headers, indirect
 *                 tables, data
 *
 * One notification, up to 5 ms for the queue's interrupt, then the
 * hang-up resets the device.
 */
#include "tests/fuzz/fuzz-device.h"
#include "hw/virtio/virtio-spec.h"
#include "tests/qtest/libqos/guest-mem.h"
#include "tests/qtest/libqos/pci.h"
#include "tests/qtest/libqos/vfu-client.h"
#include "tests/qtest/libqos/virtio.h"

#define DATA_SIZE   (64u << 10)
#define QUEUE_SIZE  8

static FuzzDevice blk = {
    .node = "driver=null,node-name=d0,size=1M,read-zeroes=on",
    .device = "driver=virtio-blk-pci,id=vb0,drive=d0,packed=on",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t features = 0, area;
    VfuClient *c;
    QPCIDevice *dev;
    GuestMem *gm;
    QVirtioDevice *vd;
    QVirtQueue *vq;
    unsigned n;

    fuzz_device_start(&blk);
    if (size < 2 + 16) {
        return 0;
    }
    n = MIN(1 + data[1] % QUEUE_SIZE, (size - 2) / 16);
    features |= (data[0] & 1) ? VIRTIO_BIT(VIRTIO_F_RING_PACKED) : 0;
    features |= (data[0] & 2) ? VIRTIO_BIT(VIRTIO_F_EVENT_IDX) : 0;
    features |= (data[0] & 4) ? VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) : 0;

    c = vfu_client_open(blk.sock_path);
    dev = qpci_device_new(c);
    gm = guest_mem_new(GUEST_MEM_DEFAULT_BASE, GUEST_MEM_DEFAULT_SIZE);
    guest_mem_map_checked(gm, c, true);
    vd = qvirtio_pci_new(dev, gm);
    qvirtio_init(vd, &(QVirtioInit) {
        .features = features, .nqueues = 1, .queue_size = QUEUE_SIZE,
        .irq = QVIRTIO_IRQ_MSIX,
    });
    vq = vd->vqs[0];
    area = guest_alloc_aligned(gm, DATA_SIZE, 4096);
    guest_memwrite(gm, area, data + 2 + 16 * n,
                   MIN(size - 2 - 16 * n, DATA_SIZE));

    for (unsigned i = 0; i < n; i++) {
        const uint8_t *p = data + 2 + 16 * i;
        uint64_t addr = ldq_le_p(p);
        uint32_t dlen = ldl_le_p(p + 8);
        uint16_t flags = lduw_le_p(p + 12), next = lduw_le_p(p + 14);

        if (!(addr >> 63)) {
            addr = area + addr % DATA_SIZE;
        }
        if (vq->packed) {
            qvring_packed_write_desc(vq, i, addr, dlen, next, flags, true);
        } else {
            qvring_write_desc(vq, vq->desc, i, addr, dlen, flags, next);
        }
    }
    if (!vq->packed) {
        qvring_publish_head(vq, data[1] >> 3);
    }
    qvirtqueue_notify(vq);
    /* Whatever the device makes of it: its interrupt, or 5 ms. */
    qpci_eventfd_wait(dev, qvirtqueue_irq_fd(vq), 5);

    qvirtio_free(vd);
    qpci_device_free(dev);
    vfu_client_free(c);
    guest_mem_free(gm);
    return 0;
}
