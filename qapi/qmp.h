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

typedef struct QmpSession QmpSession;
typedef struct QmpDeferred QmpDeferred;

/* Sends the response of a deferred command (@resp borrowed). */
typedef void QmpSendReply(QmpSession *s, json_object *resp);

/* One client's protocol state. */
struct QmpSession {
    bool negotiated;            /* qmp_capabilities succeeded */
    QmpSendReply *send_reply;   /* NULL: this session cannot defer */
    QmpDeferred *pending;       /* a deferred reply is awaited */
};

/*
 * Execute one request and return the response (the caller puts it):
 * {"return": ..., "id": ...} or {"error": {...}, "id": ...}.  NULL when
 * the handler deferred its reply: it goes through @s->send_reply later,
 * and until then @s->pending is set and the session's client must send
 * no further command to qmp_dispatch (QMP answers in order).  A session
 * without send_reply gets an error response instead (the command runs,
 * its later reply is dropped).
 */
json_object *qmp_dispatch(QmpSession *s, json_object *req);

/*
 * Asynchronous commands.  A handler whose result comes later (from a
 * callback on the main loop) takes a handle and returns true:
 *
 *     bool qmp_foo(json_object *args, json_object **ret, GError **errp)
 *     {
 *         QmpDeferred *d = qmp_defer();
 *
 *         return foo_start(foo_done, d, errp);
 *     }
 *     static void foo_done(GError *err, void *opaque)
 *     {
 *         if (err) {
 *             qmp_deferred_error(opaque, g_error_copy(err));
 *         } else {
 *             qmp_deferred_return(opaque, NULL);
 *         }
 *     }
 *
 * The reply, with the request's "id", is sent by exactly one call of
 * qmp_deferred_return() or qmp_deferred_error(), which frees the handle;
 * either may come at once, inside the handler.  A handler that returns
 * false after qmp_defer() answers with its error and the handle is freed
 * (so it must not have given it away).  The handle outlives its client:
 * when the client goes first, the reply is dropped.  Main loop only.
 */
QmpDeferred *qmp_defer(void);
/* Reply {"return": @ret} (owned; NULL: {}), checked against the schema. */
void qmp_deferred_return(QmpDeferred *d, json_object *ret);
/* Reply with @err (owned) as the error. */
void qmp_deferred_error(QmpDeferred *d, GError *err);
/* The client of @s goes away: a reply still awaited will be dropped. */
void qmp_session_detach(QmpSession *s);

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

/*
 * Commands that change the configuration at run time (device_add,
 * blockdev-del, ...) ask first (false, naming @cmd, while an upgrade
 * runs) and tell after they succeeded: "@cmd '@id'" is recorded, and
 * blocks later upgrades (hw/core/upgrade.h).
 */
bool qmp_config_may_change(const char *cmd, GError **errp);
void qmp_config_changed(const char *cmd, const char *id);

/*
 * qom-get / qom-set on a throttle group (@path: "ID" or "/objects/ID"):
 * false when @path names none (then it is a device's).
 */
bool qmp_throttle_group_qom(json_object *args, bool set, json_object **ret,
                            bool *ok, GError **errp);

/* Hooks of the block and net layers (BLOCK_IO_ERROR,
 * NIC_RX_FILTER_CHANGED): installed by monitor_init(). */
void qmp_events_init(void);

#endif
