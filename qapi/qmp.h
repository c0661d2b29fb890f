/*
 * Internals of the monitor shared by the files of qapi/: the dispatcher,
 * the wire format and the run state.
 */
#ifndef QAPI_QMP_H
#define QAPI_QMP_H

#include "qapi/schema.h"

G_DEFINE_AUTOPTR_CLEANUP_FUNC(json_object, json_object_put)

/* Largest JSON object a client may send; a bigger one closes the client. */
#define QMP_MAX_OBJECT_SIZE (1u << 20)

/* One client's protocol state. */
typedef struct QmpSession {
    bool negotiated;            /* qmp_capabilities succeeded */
} QmpSession;

/*
 * Execute one request and return the response (never NULL; the caller
 * puts it): {"return": ..., "id": ...} or {"error": {...}, "id": ...}.
 */
json_object *qmp_dispatch(QmpSession *s, json_object *req);

/* {"error": {"class": @cls, "desc": @desc}} with @id (borrowed) if any. */
json_object *qmp_error_response(const char *cls, const char *desc,
                                json_object *id, bool has_id);

/* The QMP class name of an error: GenericError, CommandNotFound, ... */
const char *qmp_error_class(const GError *err);

/*
 * Append @msg to @out as one line of ASCII JSON ending in CRLF (non-ASCII
 * characters become \uXXXX escapes).
 */
void qmp_serialize(json_object *msg, GString *out);

/* The greeting and query-version's value. */
json_object *qmp_greeting(void);
json_object *qmp_version_info(void);

/* IOVD_QMP_STRICT=1: schema violations by handlers and events abort. */
bool qmp_strict(void);

/* Send an event line (already serialized) to every negotiated client. */
void monitor_broadcast(const char *line, size_t len);

/* Device paths: "/machine/peripheral/" ID. */
#define PERIPHERAL_PREFIX "/machine/peripheral/"

struct Device;
/* The device @path names (an id or a peripheral path), else an error. */
struct Device *qmp_find_device(const char *path, GError **errp);

/* Hooks of the block and net layers (BLOCK_IO_ERROR,
 * NIC_RX_FILTER_CHANGED): installed by monitor_init(). */
void qmp_events_init(void);

#endif
