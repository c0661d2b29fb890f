/*
 * Fuzz target: NVMe command parsing and the PRP/SGL walk over guest RAM.
 * An NVMe controller (null backend, 1 MiB) runs in process
 * (tests/fuzz/fuzz-inproc.h), brought up afresh for each input with its
 * admin queue and I/O queue pair 1, then:
 *
 *   byte 0         how many commands (1 + n % 8)
 *   n x 65 bytes   a queue selector (bit 0: admin, else I/O queue 1;
 *                  bit 1: PRP1/PRP2 (or the SGL descriptor's address)
 *                  taken modulo the data area and based in it) and a
 *                  64-byte SQE
 *   the rest       written into guest RAM at the data area, where those
 *                  pointers usually land (PRP lists, SGL segments, data)
 *
 * Each command is placed in its queue and the doorbell rung; the device
 * has done with it (or parked it, as Asynchronous Event Requests) when the
 * write returns.  Then the controller gets the reset of a client's hang-up.
 */
#include "tests/fuzz/fuzz-inproc.h"

static FuzzDev nvme;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned n, tail[2] = { FUZZ_NVME_ADMIN_FREE, 0 };

    if (!fuzz_ram) {
        fuzz_setup();
        fuzz_create(true, "driver=null,node-name=d0,size=1M,read-zeroes=on");
        fuzz_dev_init(&nvme, "driver=nvme,id=n0,drive=d0,serial=FUZZ");
    }
    if (size < 1 + 65) {
        return 0;
    }
    n = MIN(1 + data[0] % 8, (size - 1) / 65);
    fuzz_bring_up(&nvme, 0, false);
    memcpy(fuzz_ram + FUZZ_DATA, data + 1 + 65 * n,
           MIN(size - 1 - 65 * n, FUZZ_DATA_SIZE));

    for (unsigned i = 0; i < n; i++) {
        const uint8_t *p = data + 1 + 65 * i;
        bool admin = p[0] & 1;
        uint8_t *sqe = fuzz_ram + (admin ? FUZZ_NVME_ASQ : FUZZ_NVME_IOSQ) +
                       64 * tail[!admin];

        memcpy(sqe, p + 1, 64);
        if (p[0] & 2) {
            stq_le_p(sqe + 24, FUZZ_DATA + ldq_le_p(sqe + 24) % FUZZ_DATA_SIZE);
            stq_le_p(sqe + 32, FUZZ_DATA + ldq_le_p(sqe + 32) % FUZZ_DATA_SIZE);
        }
        tail[!admin]++;
        fuzz_doorbell(&nvme, admin ? 0 : 2, tail[!admin]);
    }
    fuzz_reset(&nvme);
    return 0;
}
