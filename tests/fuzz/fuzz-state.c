/*
 * Fuzz target: loading device state streams (live migration's
 * destination, live upgrade's new process).  The stream comes from the
 * source VMM or daemon: a destination must refuse a bad one with an error,
 * never crash, and a stream that loads must leave a device that runs
 * within guest RAM.
 *
 * Each device type (NVMe, virtio-blk, virtio-net, e1000, pci-testdev) runs
 * in process (tests/fuzz/fuzz-inproc.h).  Once, each is brought up, given
 * work, stopped and saved: that stream is the base the inputs edit, so
 * that mutations land inside well-formed sections and reach every loader.
 *
 *   byte 0     the device (n % 5)
 *   byte 1     bit 0: cut the stream at the last edit's offset
 *   then       edits of 4 bytes: a 24-bit offset (modulo the stream's
 *              length) and the byte written there
 *
 * The edited stream is loaded into the stopped, freshly reset device;
 * when it loads, the device is started and its queues are rung; either
 * way it is then reset (a refused stream leaves it stopped until then).
 */
#include "tests/fuzz/fuzz-inproc.h"
#include "util/savestate.h"

enum { NDEV = 5 };

static FuzzDev devs[NDEV];
static GBytes *base[NDEV];

static void stopped_cb(Device *dev, int ret, void *opaque)
{
    *(bool *)opaque = true;
}

static void fuzz_stop(FuzzDev *d)
{
    bool done = false;

    device_stop(&d->pdev->dev, DEVICE_STOP_MIGRATE, stopped_cb, &done);
    for (unsigned i = 0; i < 1000000 && !done; i++) {
        loop_iterate(loop_main(), false);
    }
    if (!done) {
        fprintf(stderr, "fuzz: %s did not stop\n", d->pdev->dev.id);
        abort();
    }
}

/* Bring @d up, ring its queues, stop it and keep its stream. */
static void make_base(unsigned i)
{
    FuzzDev *d = &devs[i];

    fuzz_bring_up(d, 0, false);
    if (d->kind == FUZZ_NVME) {
        fuzz_doorbell(d, 2, 1);     /* an (all-zero) I/O command */
    } else if (d->kind == FUZZ_VIRTIO) {
        fuzz_doorbell(d, 0, 0);
    }
    fuzz_pump();
    fuzz_stop(d);
    base[i] = pci_save_state(d->pdev);
    device_start(&d->pdev->dev);
    fuzz_reset(d);
}

static void setup(void)
{
    static const char *const opts[NDEV] = {
        "driver=nvme,id=n0,drive=d0,serial=FUZZ",
        "driver=virtio-blk-pci,id=vb0,drive=d1",
        "driver=virtio-net-pci,id=vn0",
        "driver=e1000,id=e0",
        "driver=pci-testdev,id=t0",
    };

    fuzz_setup();
    fuzz_create(true, "driver=null,node-name=d0,size=1M,read-zeroes=on");
    fuzz_create(true, "driver=null,node-name=d1,size=1M,read-zeroes=on");
    for (unsigned i = 0; i < NDEV; i++) {
        fuzz_dev_init(&devs[i], opts[i]);
        make_base(i);
    }
}

/* Ring what the device has: a loaded state points anywhere. */
static void kick(FuzzDev *d)
{
    if (d->kind == FUZZ_NVME) {
        fuzz_doorbell(d, 0, 1);
        fuzz_doorbell(d, 2, 1);
    } else if (d->kind == FUZZ_VIRTIO) {
        for (unsigned q = 0; q < 3; q++) {
            fuzz_doorbell(d, q, q);
        }
    }
    fuzz_pump();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FuzzDev *d;
    g_autoptr(GBytes) stream = NULL;
    g_autoptr(GError) err = NULL;
    uint8_t *buf;
    size_t len, cut;

    if (!fuzz_ram) {
        setup();
    }
    if (size < 2) {
        return 0;
    }
    d = &devs[data[0] % NDEV];
    buf = g_bytes_unref_to_data(g_bytes_ref(base[data[0] % NDEV]), &len);
    cut = len;
    for (size_t i = 2; i + 4 <= size; i += 4) {
        cut = (data[i] | data[i + 1] << 8 | data[i + 2] << 16) % len;
        buf[cut] = data[i + 3];
    }
    stream = g_bytes_new_take(buf, (data[1] & 1) ? cut : len);
    fuzz_stop(d);
    /* Refused: the device stays stopped until the reset (as vfio-user's
     * ERROR state until DEVICE_RESET). */
    if (pci_load_state(d->pdev, stream, &err)) {
        device_start(&d->pdev->dev);
        kick(d);
    }
    fuzz_reset(d);
    return 0;
}
