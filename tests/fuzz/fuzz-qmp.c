/*
 * Fuzz target: QMP dispatch, the handlers included.  Each input is a
 * session of requests, one JSON text per line, executed in process by
 * qmp_dispatch() on a negotiated session, as the monitor does for a
 * client, against a daemon holding a null block node, an NVMe controller
 * on it, an e1000 and a pci-testdev (realized on a socket-less transport
 * of the target's own: nothing listens).  After each request the loop
 * runs until idle (device_del, events); after a session that ran
 * anything but queries everything is torn down and made again, so
 * sessions do not leak into each other.
 *
 * The command set is sandboxed to what touches no host state: requests
 * that name a path (any string with '/'), blockdev-add of a driver other
 * than null, netdev_add of a type other than user, and the options that
 * reach host files or ports (pcap, hostfwd, guestfwd, smb, tftp, fd) are
 * skipped.  Everything else, quit, stop and cont included, runs.
 */
#include "util/osdep.h"
#include "util/iothread.h"
#include "util/keyval.h"
#include "util/loop.h"
#include "block/block.h"
#include "hw/core/device.h"
#include "hw/pci/pci.h"
#include "net/net.h"
#include "qapi/monitor.h"
#include "qapi/qmp.h"

#include <json-c/json.h>

static const char *const baseline[][2] = {
    { "node", "driver=null,node-name=d0,size=1M,read-zeroes=on" },
    { "device", "driver=nvme,id=n0,drive=d0,serial=FUZZ" },
    { "device", "driver=e1000,id=nic0" },
    { "device", "driver=pci-testdev,id=t0" },
};

static const char *const denied_keys[] = {
    "pcap", "hostfwd", "guestfwd", "smb", "tftp", "fd", NULL
};

static bool fuzz_attach(Device *dev, GError **errp)
{
    return true;                /* no transport: DMA and IRQs go nowhere */
}

static void fuzz_noop(Device *dev)
{
}

static const DeviceTransportHooks fuzz_hooks = {
    .attach = fuzz_attach,
    .reset_done = fuzz_noop,
    .detach = fuzz_noop,
};

static void create(bool node, const char *opts)
{
    g_autoptr(Keyval) kv = NULL;
    GError *err = NULL;

    kv = keyval_parse(opts, "driver", &err);
    if (!kv || !(node ? (void *)blk_node_create(kv, &err)
                      : (void *)device_create(kv, &err))) {
        fprintf(stderr, "fuzz-qmp: '%s': %s\n", opts, err->message);
        abort();
    }
}

static void pump(void)
{
    for (unsigned i = 0; i < 64 && loop_iterate(loop_main(), false); i++) {
    }
}

/* Does @v name a path or a host-reaching option anywhere inside? */
static bool touches_host(json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_string:
        return strchr(json_object_get_string(v), '/') != NULL;
    case json_type_array:
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            if (touches_host(json_object_array_get_idx(v, i))) {
                return true;
            }
        }
        return false;
    case json_type_object: {
        json_object_object_foreach(v, key, val) {
            if (g_strv_contains(denied_keys, key) || strchr(key, '/') ||
                touches_host(val)) {
                return true;
            }
        }
        return false;
    }
    default:
        return false;
    }
}

static bool arg_is(json_object *req, const char *key, const char *want)
{
    json_object *args, *v;

    return json_object_object_get_ex(req, "arguments", &args) &&
           json_object_is_type(args, json_type_object) &&
           json_object_object_get_ex(args, key, &v) &&
           json_object_is_type(v, json_type_string) &&
           !strcmp(json_object_get_string(v), want);
}

/* May @name change the daemon's state?  (queries cannot) */
static bool may_change(json_object *req)
{
    json_object *exec;
    const char *name;

    if (!json_object_is_type(req, json_type_object) ||
        !json_object_object_get_ex(req, "execute", &exec) ||
        !json_object_is_type(exec, json_type_string)) {
        return false;
    }
    name = json_object_get_string(exec);
    return strncmp(name, "query-", 6) && strcmp(name, "qom-get") &&
           strcmp(name, "qom-list");
}

static bool sandboxed(json_object *req)
{
    json_object *exec;
    const char *name;

    if (touches_host(req)) {
        return false;
    }
    if (!json_object_is_type(req, json_type_object) ||
        !json_object_object_get_ex(req, "execute", &exec) ||
        !json_object_is_type(exec, json_type_string)) {
        return true;            /* the dispatcher's own errors */
    }
    name = json_object_get_string(exec);
    if (!strcmp(name, "blockdev-add")) {
        return arg_is(req, "driver", "null");
    }
    if (!strcmp(name, "netdev_add")) {
        return arg_is(req, "type", "user");
    }
    return true;
}

static void setup(void)
{
    EventLoop *l = loop_new("fuzz", NULL);

    loop_attach_thread(l);
    loop_set_main(l);
    device_set_transport_hooks(&fuzz_hooks);
    iothread_init();
    blk_init();
    net_init();
    monitor_init();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready, dirty = true;
    static json_object *cont;
    static bool verbose;        /* FUZZ_QMP_VERBOSE=1: the exchange */
    g_autofree char *text = g_strndup((const char *)data, size);
    QmpSession sess = { .negotiated = true };
    char *line, *next;

    if (!ready) {
        setup();
        cont = json_tokener_parse("{\"execute\": \"cont\"}");
        verbose = getenv("FUZZ_QMP_VERBOSE") != NULL;
        ready = true;
    }
    if (dirty) {
        for (size_t i = 0; i < G_N_ELEMENTS(baseline); i++) {
            create(!strcmp(baseline[i][0], "node"), baseline[i][1]);
        }
        dirty = false;
    }
    for (line = text; line; line = next) {
        json_tokener *tok = json_tokener_new_ex(64);
        json_object *req, *resp;

        next = strchr(line, '\n');
        if (next) {
            *next++ = '\0';
        }
        json_tokener_set_flags(tok, JSON_TOKENER_VALIDATE_UTF8);
        req = json_tokener_parse_ex(tok, line, strlen(line));
        json_tokener_free(tok);
        if (req && sandboxed(req)) {
            GString *out = g_string_new(NULL);

            dirty |= may_change(req);
            resp = qmp_dispatch(&sess, req);
            qmp_serialize(resp, out);   /* the wire form, as sent */
            if (verbose) {
                fprintf(stderr, "-> %s\n<- %s", line, out->str);
            }
            g_string_free(out, true);
            json_object_put(resp);
            pump();
        }
        json_object_put(req);
    }
    /* A fresh daemon for the next session (running: cont after stop). */
    if (dirty) {
        json_object_put(qmp_dispatch(&sess, cont));
        device_destroy_all();
        net_cleanup_all();
        blk_node_delete_all();
        iothread_delete_all();
        pump();
    }
    return 0;
}
