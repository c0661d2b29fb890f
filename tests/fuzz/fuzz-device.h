/*
 * For fuzz targets that drive a device as its vfio-user client through
 * tests/qtest/libqos (which waits for replies): the device side runs in
 * process on the main loop, on a thread of its own.
 */
#ifndef TESTS_FUZZ_FUZZ_DEVICE_H
#define TESTS_FUZZ_FUZZ_DEVICE_H

#include "util/osdep.h"
#include "util/keyval.h"
#include "util/loop.h"
#include "block/block.h"
#include "hw/core/device.h"
#include "hw/vfio-user/vfio-user.h"

typedef struct FuzzDevice {
    const char *node;           /* -blockdev options, or NULL */
    const char *device;         /* -device options without socket= */
    char *sock_path;
    int ready;
} FuzzDevice;

static void fuzz_create(bool node, const char *opts)
{
    g_autoptr(Keyval) kv = NULL;
    GError *err = NULL;

    kv = keyval_parse(opts, "driver", &err);
    if (!kv || !(node ? (void *)blk_node_create(kv, &err)
                      : (void *)device_create(kv, &err))) {
        fprintf(stderr, "fuzz: '%s': %s\n", opts, err->message);
        abort();
    }
}

static gpointer fuzz_device_thread(gpointer opaque)
{
    FuzzDevice *f = opaque;
    EventLoop *l = loop_new("fuzz", NULL);
    char *opts = g_strdup_printf("%s,socket=%s", f->device, f->sock_path);

    loop_attach_thread(l);
    loop_set_main(l);
    vfu_transport_init();
    if (f->node) {
        fuzz_create(true, f->node);
    }
    fuzz_create(false, opts);
    g_free(opts);               /* this thread never returns */
    g_atomic_int_set(&f->ready, 1);
    for (;;) {
        loop_iterate(l, true);
    }
    return NULL;
}

/* Start @f's device (once); its socket path is f->sock_path. */
static void fuzz_device_start(FuzzDevice *f)
{
    g_autofree char *dir = NULL;

    if (f->sock_path) {
        return;
    }
    dir = g_dir_make_tmp("iovd-fuzz-XXXXXX", NULL);
    f->sock_path = g_build_filename(dir, "dev.sock", NULL);
    g_thread_new("device", fuzz_device_thread, f);
    while (!g_atomic_int_get(&f->ready)) {
        g_usleep(1000);
    }
}

#endif
