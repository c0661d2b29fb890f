/*
 * Fuzz target: virtqueue pop, split and packed, and virtio-blk's request
 * parsing behind it.  A virtio-blk device (null backend, 1 MiB, packed
 * rings offered) runs in process (tests/fuzz/fuzz-inproc.h), brought up
 * afresh for each input with the features it picks, then raw descriptors
 * in queue 0:
 *
 *   byte 0        features: bit 0 packed ring, bit 1 event index,
 *                 bit 2 indirect descriptors
 *   byte 1        split: the head published (n >> 3); how many
 *                 descriptors (1 + n % 8)
 *   n x 16 bytes  addr (8; based in the data area modulo its size unless
 *                 its top bit is set), len (4), flags (2), next or id (2)
 *   the rest      written into the data area: request headers, indirect
 *                 tables, data
 *
 * Packed descriptors are made available (AVAIL set, USED clear, first
 * wrap) whatever flags they carry.  One notification; the device has
 * done what it will when it returns; then the reset of a client's
 * hang-up.
 */
#include "tests/fuzz/fuzz-inproc.h"

static FuzzDev blk;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t off = 0;
    bool packed;
    unsigned n;

    if (!fuzz_ram) {
        fuzz_setup();
        fuzz_create(true, "driver=null,node-name=d0,size=1M,read-zeroes=on");
        fuzz_dev_init(&blk, "driver=virtio-blk-pci,id=vb0,drive=d0,"
                      "packed=on");
    }
    if (size < 2 + 16) {
        return 0;
    }
    n = MIN(1 + data[1] % FUZZ_VQ_SIZE, (size - 2) / 16);
    packed = data[0] & 1;
    off |= packed ? 0 : 1ull << VIRTIO_F_RING_PACKED;
    off |= (data[0] & 2) ? 0 : 1ull << VIRTIO_F_EVENT_IDX;
    off |= (data[0] & 4) ? 0 : 1ull << VIRTIO_F_INDIRECT_DESC;
    fuzz_bring_up(&blk, off, false);
    memcpy(fuzz_ram + FUZZ_DATA, data + 2 + 16 * n,
           MIN(size - 2 - 16 * n, FUZZ_DATA_SIZE));

    for (unsigned i = 0; i < n; i++) {
        const uint8_t *p = data + 2 + 16 * i;
        uint8_t *desc = fuzz_ram + FUZZ_VQ_DESC(0) + 16 * i;
        uint64_t addr = ldq_le_p(p);
        uint16_t flags = lduw_le_p(p + 12);

        if (!(addr >> 63)) {
            addr = FUZZ_DATA + addr % FUZZ_DATA_SIZE;
        }
        stq_le_p(desc, addr);
        stl_le_p(desc + 8, ldl_le_p(p + 8));
        if (packed) {
            /* id, then flags */
            stw_le_p(desc + 12, lduw_le_p(p + 14));
            stw_le_p(desc + 14, (flags | VRING_PACKED_DESC_F_AVAIL) &
                     ~VRING_PACKED_DESC_F_USED);
        } else {
            /* flags, then next */
            stw_le_p(desc + 12, flags);
            stw_le_p(desc + 14, lduw_le_p(p + 14));
        }
    }
    if (!packed) {
        uint8_t *avail = fuzz_ram + FUZZ_VQ_AVAIL(0);

        stw_le_p(avail + 4, (data[1] >> 3) % FUZZ_VQ_SIZE);    /* ring[0] */
        stw_le_p(avail + 2, 1);                                 /* idx */
    }
    fuzz_doorbell(&blk, 0, 0);
    fuzz_reset(&blk);
    return 0;
}
