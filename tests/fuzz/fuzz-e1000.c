/*
 * Fuzz target: e1000 transmit: the TX descriptor walk (legacy, context
 * and data descriptors: checksum offload, TSO, VLAN insertion) and, in
 * MAC loopback, the receive path the frames then take.  An e1000 without
 * a backend runs in process (tests/fuzz/fuzz-inproc.h), brought up
 * afresh for each input, then:
 *
 *   byte 0        how many descriptors (1 + n % 8)
 *   byte 1        bit 0: MAC loopback (frames come back to the receiver)
 *   n x 16 bytes  descriptors; the first 8 bytes (buffer address) based
 *                 in the data area modulo its size unless the top bit is
 *                 set; context descriptors have no address and are
 *                 mangled the same way, which the fuzzer learns to use
 *   the rest      written into the data area: frame bytes
 *
 * TDT is rung once; the device has walked the ring when that returns.
 */
#include "tests/fuzz/fuzz-inproc.h"

#define TXD_SIZE    16

static FuzzDev nic;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned n;

    if (!fuzz_ram) {
        fuzz_setup();
        fuzz_dev_init(&nic, "driver=e1000,id=nic0");
    }
    if (size < 2 + TXD_SIZE) {
        return 0;
    }
    n = MIN(1 + data[0] % 8, (size - 2) / TXD_SIZE);
    fuzz_bring_up(&nic, 0, data[1] & 1);
    memcpy(fuzz_ram + FUZZ_DATA, data + 2 + TXD_SIZE * n,
           MIN(size - 2 - TXD_SIZE * n, FUZZ_DATA_SIZE));
    memcpy(fuzz_ram + FUZZ_E1000_TX_RING, data + 2, TXD_SIZE * n);
    for (unsigned i = 0; i < n; i++) {
        uint8_t *desc = fuzz_ram + FUZZ_E1000_TX_RING + TXD_SIZE * i;
        uint64_t addr = ldq_le_p(desc);

        if (!(addr >> 63)) {
            stq_le_p(desc, FUZZ_DATA + addr % FUZZ_DATA_SIZE);
        }
    }
    fuzz_doorbell(&nic, 0, n);
    fuzz_reset(&nic);
    return 0;
}
