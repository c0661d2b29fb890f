/*
 * QMP events: checked against the schema, stamped, sent to every
 * negotiated client.  BLOCK_IO_ERROR comes from the block layer's hook.
 */
#include "qapi/events.h"
#include "qapi/qmp.h"
#include "qapi/trace.h"
#include "block/block.h"
#include "net/net.h"
#include "util/log.h"
#include "util/loop.h"

static void event_check(const char *name, json_object *data)
{
    const QapiEventDef *def = qapi_event_find(name);
    g_autoptr(GError) err = NULL;

    if (!def) {
        iovd_warn("qmp: event '%s' is not in the schema", name);
    } else if (def->data) {
        if (qapi_check(def->data, data, "Event member", &err)) {
            return;
        }
        iovd_warn("qmp: event %s: data does not match the schema: %s", name,
                  err->message);
    } else if (data && json_object_object_length(data)) {
        iovd_warn("qmp: event %s carries no data, but data was given",
                  name);
    } else {
        return;
    }
    if (qmp_strict()) {
        abort();
    }
}

/* An event raised on an iothread, on its way to the main thread. */
typedef struct PostedEvent {
    char *name;
    json_object *data;
    int64_t when;
} PostedEvent;

static void event_send(const char *name, json_object *data, int64_t now);

static void event_posted(void *opaque)
{
    PostedEvent *e = opaque;

    event_send(e->name, e->data, e->when);
    g_free(e->name);
    g_free(e);
}

/*
 * The monitor lives on the main thread; an iothread hands its event over
 * (the data object goes along: nobody else holds it), stamped when it
 * happened.
 */
void qapi_event_send(const char *name, json_object *data)
{
    int64_t now = g_get_real_time();
    PostedEvent *e;

    if (loop_in_thread(loop_main()) || !loop_main()) {
        event_send(name, data, now);
        return;
    }
    e = g_new(PostedEvent, 1);
    e->name = g_strdup(name);
    e->data = data;
    e->when = now;
    loop_post(loop_main(), event_posted, e);
}

static void event_send(const char *name, json_object *data, int64_t now)
{
    const QapiEventDef *def = qapi_event_find(name);
    g_autoptr(json_object) msg = json_object_new_object();
    g_autoptr(GString) line = g_string_sized_new(256);
    json_object *ts = json_object_new_object();

    if (!data && def && def->data) {
        data = json_object_new_object();
    }
    if (data && !json_object_is_type(data, json_type_object)) {
        iovd_warn("qmp: event %s: data is not an object", name);
        json_object_put(data);
        data = NULL;
    }
    event_check(name, data);
    trace_qmp_event(name);
    json_object_object_add(msg, "event", json_object_new_string(name));
    if (data) {
        json_object_object_add(msg, "data", data);
    }
    json_object_object_add(ts, "seconds",
                           json_object_new_int64(now / G_USEC_PER_SEC));
    json_object_object_add(ts, "microseconds",
                           json_object_new_int64(now % G_USEC_PER_SEC));
    json_object_object_add(msg, "timestamp", ts);
    qmp_serialize(msg, line);
    monitor_broadcast(line->str, line->len);
}

void qapi_event_send_device(const char *name, const char *device_id)
{
    json_object *data = json_object_new_object();

    json_object_object_add(data, "device", json_object_new_string(device_id));
    qapi_event_send(name, data);
}

/* ---- BLOCK_IO_ERROR ---- */

static void block_error_event(BlockBackend *blk, BlockOp op, int err,
                              const char *action)
{
    json_object *data = json_object_new_object();
    const char *dev = blk_device_id(blk);

    json_object_object_add(data, "device",
                           json_object_new_string(dev ? dev : ""));
    json_object_object_add(data, "node-name",
                           json_object_new_string(blk_node_name(
                               blk_node(blk))));
    json_object_object_add(data, "operation", json_object_new_string(
                               op == BLK_OP_READ ? "read" : "write"));
    json_object_object_add(data, "action", json_object_new_string(action));
    json_object_object_add(data, "nospace",
                           json_object_new_boolean(err == ENOSPC));
    json_object_object_add(data, "reason",
                           json_object_new_string(g_strerror(err)));
    qapi_event_send("BLOCK_IO_ERROR", data);
}

/* ---- BLOCK_DISCONNECTED / BLOCK_RECONNECTED ---- */

static void block_conn_event(BlockBackend *blk, bool connected,
                             const char *why)
{
    json_object *data = json_object_new_object();
    BlockNode *bs = blk_node(blk);
    const char *dev = blk_device_id(blk);

    json_object_object_add(data, "device",
                           json_object_new_string(dev ? dev : ""));
    json_object_object_add(data, "node-name",
                           json_object_new_string(blk_node_name(bs)));
    json_object_object_add(data, "driver",
                           json_object_new_string(blk_node_driver(bs)));
    if (!connected) {
        json_object_object_add(data, "reason",
                               json_object_new_string(why ? why : ""));
    }
    qapi_event_send(connected ? "BLOCK_RECONNECTED" : "BLOCK_DISCONNECTED",
                    data);
}

/* ---- NIC_RX_FILTER_CHANGED ---- */

static void rx_filter_event(NetClient *nic)
{
    json_object *data = json_object_new_object();
    g_autofree char *path = g_strdup_printf("/machine/peripheral/%s",
                                            nic->name);

    json_object_object_add(data, "name", json_object_new_string(nic->name));
    json_object_object_add(data, "path", json_object_new_string(path));
    qapi_event_send("NIC_RX_FILTER_CHANGED", data);
}

void qmp_events_init(void)
{
    blk_set_error_event_hook(block_error_event);
    blk_set_conn_event_hook(block_conn_event);
    net_set_rx_filter_event_hook(rx_filter_event);
}
