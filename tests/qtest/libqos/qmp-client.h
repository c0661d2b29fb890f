/*
 * A QMP client for tests: connect to a monitor socket, read the greeting,
 * negotiate, execute commands with a timeout, collect events.
 *
 *     QmpClient *q = qmp_client_open(path);     // greeting + negotiation
 *     json_object *ret = qmp_ok(q, "query-status", NULL);
 *     g_autofree char *desc = qmp_err(q, "GenericError", "device_del",
 *                                     "{'id': 'nope'}");
 *     json_object *ev = qmp_client_wait_event(q, "DEVICE_DELETED", 0);
 *     qmp_client_free(q);
 *
 * Argument strings are JSON text; single quotes are accepted (json-c reads
 * them), which keeps C string literals readable.
 *
 * The client is strict about the wire: every message must be one JSON
 * object on a line ending in CRLF, or the test fails.  Replies are matched
 * by id (an increasing number per command); events that arrive meanwhile
 * are queued for qmp_client_wait_event().  Every wait is bounded
 * (QOS_TIMEOUT_MS unless set otherwise): a missing reply, a closed
 * connection or a malformed message fails the test through qos_fail().
 */
#ifndef LIBQOS_QMP_CLIENT_H
#define LIBQOS_QMP_CLIENT_H

#include "util/osdep.h"

#include <json-c/json.h>

#include "tests/qtest/libqos/qos-util.h"

typedef struct QmpClient QmpClient;

/* Connect to a UNIX socket and read the greeting (no negotiation). */
QmpClient *qmp_client_connect(const char *path);
/* The same over TCP. */
QmpClient *qmp_client_connect_tcp(const char *host, int port);
/* Adopt a connected fd (a socketpair, a pipe pair: @in_fd, @out_fd). */
QmpClient *qmp_client_new_fds(int in_fd, int out_fd, bool read_greeting);
/* Connect, read the greeting and negotiate. */
QmpClient *qmp_client_open(const char *path);
void qmp_client_free(QmpClient *c);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(QmpClient, qmp_client_free)

void qmp_client_set_timeout(QmpClient *c, int timeout_ms);
int qmp_client_fd(QmpClient *c);
/* The greeting (borrowed). */
json_object *qmp_client_greeting(QmpClient *c);
/* Send qmp_capabilities and expect {"return": {}}. */
void qmp_client_negotiate(QmpClient *c);

/* ---- raw wire access (for conformance and abuse tests) ---- */

/* Send bytes as they are (fails the test unless all were written). */
void qmp_client_send_raw(QmpClient *c, const void *buf, size_t len);
void qmp_client_send_str(QmpClient *c, const char *s);
/*
 * Try to send; returns false when the daemon closed the connection
 * (EPIPE / ECONNRESET) before everything went out.
 */
bool qmp_client_try_send_raw(QmpClient *c, const void *buf, size_t len);
/*
 * The next message (reply or event), not looking at the event queue.
 * NULL when nothing arrived within @timeout_ms; fails on EOF or a
 * malformed line.  Caller puts it.
 */
json_object *qmp_client_recv(QmpClient *c, int timeout_ms);
/* Like qmp_client_recv, but fails the test on timeout. */
json_object *qmp_client_recv_wait(QmpClient *c);
/* True when the daemon closed the connection within @timeout_ms (data
 * still arriving before EOF is discarded). */
bool qmp_client_wait_eof(QmpClient *c, int timeout_ms);

/* ---- commands ---- */

/*
 * Send {"execute": @cmd, "arguments": @args (JSON text or NULL), "id": N}
 * and return the response with that id (caller puts), queueing events.
 */
json_object *qmp_client_execute(QmpClient *c, const char *cmd,
                                const char *args);
json_object *qmp_client_executef(QmpClient *c, const char *cmd,
                                 const char *args_fmt, ...)
    G_GNUC_PRINTF(3, 4);
/*
 * The same in two steps, for a command whose reply comes later: send it
 * and return its id; then its response (caller puts), which must be the
 * next one (QMP answers in order), events queued meanwhile; fails after
 * @timeout_ms (0: the client's timeout).
 */
int64_t qmp_client_send_cmd(QmpClient *c, const char *cmd, const char *args);
json_object *qmp_client_wait_response(QmpClient *c, int64_t id,
                                      int timeout_ms);
/* Send a whole request object (JSON text) with "id" added; its response. */
json_object *qmp_client_request(QmpClient *c, const char *request);

/* Execute and expect success: the "return" value (caller puts). */
json_object *qmp_ok(QmpClient *c, const char *cmd, const char *args);
json_object *qmp_okf(QmpClient *c, const char *cmd, const char *args_fmt,
                     ...) G_GNUC_PRINTF(3, 4);
/*
 * Execute and expect an error of class @cls (NULL: any): its "desc"
 * (caller frees).
 */
char *qmp_err(QmpClient *c, const char *cls, const char *cmd,
              const char *args);
char *qmp_errf(QmpClient *c, const char *cls, const char *cmd,
               const char *args_fmt, ...) G_GNUC_PRINTF(4, 5);

/* ---- events ---- */

/*
 * The first queued or arriving event named @name (NULL: any), removed
 * from the queue (caller puts).  Fails after @timeout_ms (0: the client's
 * timeout).
 */
json_object *qmp_client_wait_event(QmpClient *c, const char *name,
                                   int timeout_ms);
/* Read what arrives within @timeout_ms, then return the queued event named
 * @name (NULL: any) or NULL. */
json_object *qmp_client_poll_event(QmpClient *c, const char *name,
                                   int timeout_ms);
unsigned qmp_client_event_count(QmpClient *c);
void qmp_client_clear_events(QmpClient *c);

/* ---- helpers ---- */

/* Member @key of @obj (borrowed), failing the test when absent. */
json_object *qmp_get(json_object *obj, const char *key);
const char *qmp_get_str(json_object *obj, const char *key);
int64_t qmp_get_int(json_object *obj, const char *key);
bool qmp_get_bool(json_object *obj, const char *key);
/*
 * One value of query-stats: @provider's @name of device @dev (@queue < 0)
 * or of its queue @queue; -1 when query-stats does not report it.
 */
int64_t qmp_stat(QmpClient *c, const char *dev, int queue,
                 const char *provider, const char *name);
/* Compact JSON text of @obj, for messages (static buffer of json-c). */
const char *qmp_json(json_object *obj);

#endif
