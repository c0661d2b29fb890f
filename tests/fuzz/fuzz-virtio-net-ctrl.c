/*
 * Fuzz target: virtio-net's control queue (RX modes, MAC filter tables,
 * the MAC address, VLAN filters, queue pairs, guest offloads).  A
 * virtio-net with four queue pairs and no backend runs in process
 * (tests/fuzz/fuzz-device.h), brought up once as Linux does it (every
 * control feature); the filters it builds up carry over between inputs,
 * as in a guest.  Each input is:
 *
 *   byte 0       how many commands (1 + n % 4)
 *   per command  class, command, a layout byte, a length byte (0-255:
 *                the command's data), then that many data bytes.  The
 *                layout: bits 0-1 how many pieces header and data come
 *                in (1-3, or 4: one per byte up to three, the rest in
 *                one); bit 2 the status byte device-readable (a broken
 *                driver); bit 3 a 0-length status buffer; bit 4 an
 *                indirect table
 *
 * Each command gets up to 5 ms to be used.  When the device flags
 * DEVICE_NEEDS_RESET or never answers, the driver resets it and brings
 * it up again.
 */
#include "tests/fuzz/fuzz-device.h"
#include "hw/virtio/virtio-spec.h"
#include "hw/virtio/virtio-net-spec.h"
#include "tests/qtest/libqos/guest-mem.h"
#include "tests/qtest/libqos/pci.h"
#include "tests/qtest/libqos/vfu-client.h"
#include "tests/qtest/libqos/virtio.h"
#include "tests/qtest/libqos/virtio-net.h"

static FuzzDevice net = {
    .device = "driver=virtio-net-pci,id=vn0,queues=4",
};

static QVirtioNet *n;

static void bring_up(void)
{
    if (!n) {
        VfuClient *c = vfu_client_open(net.sock_path);
        QPCIDevice *dev = qpci_device_new(c);
        GuestMem *gm = guest_mem_new(GUEST_MEM_DEFAULT_BASE,
                                     GUEST_MEM_DEFAULT_SIZE);

        guest_mem_map_checked(gm, c, true);
        n = qvnet_new(dev, gm);
    }
    qvnet_init(n, &(QVirtioNetInit) {
        .features = QVNET_LINUX_FEATURES, .queue_size = 16,
        .rx_post = QVNET_RX_NONE, .irq = QVIRTIO_IRQ_MSIX,
    });
}

/*
 * One command as the input lays it out; false when the device had to be
 * reset.
 */
static bool ctrl_cmd(const uint8_t *p, size_t len)
{
    GuestMem *gm = n->gm;
    uint8_t layout = p[2];
    unsigned pieces = 1 + (layout & 3);
    size_t out_len = VIRTIO_NET_CTRL_HDR_SIZE + len, off = 0;
    QVirtioBuf bufs[5];
    uint64_t addr = guest_alloc(gm, out_len + 1);
    unsigned nb = 0;
    uint32_t used;
    bool ok;
    int id;

    guest_memwrite(gm, addr, p, VIRTIO_NET_CTRL_HDR_SIZE);
    guest_memwrite(gm, addr + VIRTIO_NET_CTRL_HDR_SIZE, p + 4, len);
    guest_writeb(gm, addr + out_len, 0xee);
    for (unsigned i = 0; i < pieces && off < out_len; i++) {
        size_t piece = (pieces == 4 && i < 3) ? 1
                       : i + 1 == pieces ? out_len - off
                       : (out_len - off) / (pieces - i);

        bufs[nb++] = (QVirtioBuf) { addr + off, piece, false };
        off += piece;
    }
    bufs[nb++] = (QVirtioBuf) { addr + out_len, (layout & 8) ? 0 : 1,
                                !(layout & 4) };
    id = qvirtqueue_add(n->ctrl, bufs, nb, layout & 16);
    ok = id >= 0;
    if (ok) {
        qvirtqueue_notify(n->ctrl);
        ok = false;
        /* used, or the device gave up on the queue (a config interrupt) */
        for (unsigned ms = 0; ms < 5 && !ok; ms++) {
            ok = qvirtqueue_try_wait_used(n->ctrl, id, 1, &used);
            if (qvirtio_get_status(n->vd) & VIRTIO_CONFIG_S_NEEDS_RESET) {
                ok = false;
                break;
            }
        }
    }
    if (!ok) {
        bring_up();             /* the reset takes the device's hands off */
    }
    guest_free(gm, addr);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned cmds;

    fuzz_device_start(&net);
    if (!n) {
        bring_up();
    }
    if (size < 1 + 4) {
        return 0;
    }
    cmds = 1 + data[0] % 4;
    data++;
    size--;
    for (unsigned i = 0; i < cmds && size >= 4; i++) {
        size_t len = MIN(data[3], size - 4);

        if (!ctrl_cmd(data, len)) {
            break;
        }
        data += 4 + len;
        size -= 4 + len;
    }
    return 0;
}
