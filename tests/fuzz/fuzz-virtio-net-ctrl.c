/*
 * Fuzz target: virtio-net's control queue (RX modes, MAC filter tables,
 * the MAC address, VLAN filters, queue pairs, guest offloads).  A
 * virtio-net without a backend runs in process
 * (tests/fuzz/fuzz-inproc.h), brought up afresh for each input with every
 * feature it offers (the control queue is queue 2), then:
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
 * The commands go one at a time, each in descriptors 0.., and are done
 * when the notification returns; the input ends early when the device
 * gives up on the queue (DEVICE_NEEDS_RESET).  Then the reset of a
 * client's hang-up.
 */
#include "tests/fuzz/fuzz-inproc.h"
#include "hw/virtio/virtio-net-spec.h"

#define CTRL_Q      2
#define CMD_BUF     FUZZ_DATA                   /* header and data */
#define STATUS_BUF  (FUZZ_DATA + 0x1000)
#define INDIRECT    (FUZZ_DATA + 0x2000)        /* indirect table */

static FuzzDev net;

static void put_desc(uint8_t *desc, uint64_t addr, uint32_t len,
                     uint16_t flags, uint16_t next)
{
    stq_le_p(desc, addr);
    stl_le_p(desc + 8, len);
    stw_le_p(desc + 12, flags);
    stw_le_p(desc + 14, next);
}

/* One command as the input lays it out; false once the device gave up. */
static bool ctrl_cmd(const uint8_t *p, size_t len, uint16_t avail_idx)
{
    uint8_t layout = p[2];
    unsigned pieces = 1 + (layout & 3), nb = 0;
    size_t out_len = VIRTIO_NET_CTRL_HDR_SIZE + len, off = 0;
    bool indirect = layout & 16;
    uint8_t *table = fuzz_ram + (indirect ? INDIRECT : FUZZ_VQ_DESC(CTRL_Q));
    uint8_t *avail = fuzz_ram + FUZZ_VQ_AVAIL(CTRL_Q);

    memcpy(fuzz_ram + CMD_BUF, p, VIRTIO_NET_CTRL_HDR_SIZE);
    memcpy(fuzz_ram + CMD_BUF + VIRTIO_NET_CTRL_HDR_SIZE, p + 4, len);
    fuzz_ram[STATUS_BUF] = 0xee;
    for (unsigned i = 0; i < pieces && off < out_len; i++) {
        size_t piece = (pieces == 4 && i < 3) ? 1
                       : i + 1 == pieces ? out_len - off
                       : (out_len - off) / (pieces - i);

        put_desc(table + 16 * nb, CMD_BUF + off, piece, VRING_DESC_F_NEXT,
                 nb + 1);
        nb++;
        off += piece;
    }
    put_desc(table + 16 * nb, STATUS_BUF, (layout & 8) ? 0 : 1,
             (layout & 4) ? 0 : VRING_DESC_F_WRITE, 0);
    nb++;
    if (indirect) {
        put_desc(fuzz_ram + FUZZ_VQ_DESC(CTRL_Q), INDIRECT, 16 * nb,
                 VRING_DESC_F_INDIRECT, 0);
    }
    stw_le_p(avail + 4 + 2 * (avail_idx % FUZZ_VQ_SIZE), 0);
    stw_le_p(avail + 2, avail_idx + 1);
    fuzz_doorbell(&net, CTRL_Q, 0);
    return !(fuzz_common_r(&net, VIRTIO_PCI_COMMON_STATUS, 1) &
             VIRTIO_CONFIG_S_NEEDS_RESET);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned cmds;

    if (!fuzz_ram) {
        fuzz_setup();
        fuzz_dev_init(&net, "driver=virtio-net-pci,id=vn0");
    }
    if (size < 1 + 4) {
        return 0;
    }
    fuzz_bring_up(&net, 1ull << VIRTIO_F_RING_PACKED, false);
    cmds = 1 + data[0] % 4;
    data++;
    size--;
    for (unsigned i = 0; i < cmds && size >= 4; i++) {
        size_t len = MIN(data[3], size - 4);

        if (!ctrl_cmd(data, len, i)) {
            break;
        }
        data += 4 + len;
        size -= 4 + len;
    }
    fuzz_reset(&net);
    return 0;
}
