/*
 * QMP events: the API the rest of the daemon calls.
 *
 *     json_object *data = json_object_new_object();
 *
 *     json_object_object_add(data, "device", json_object_new_string(id));
 *     qapi_event_send("VFU_CLIENT_CONNECTED", data);
 *
 * Every client of every monitor that completed negotiation receives
 * {"event": NAME, "data": DATA, "timestamp": {"seconds", "microseconds"}}.
 * NAME must be an event of the schema (qapi/schema/) and DATA must match
 * its description: a mismatch is logged and the event sent anyway (with
 * IOVD_QMP_STRICT=1 in the environment, as the tests run the daemon, it
 * aborts instead, so that the bug is noticed).
 *
 * Main loop only; never blocks: a client that does not read has the event
 * queued, and is dropped when its backlog grows past a limit.
 */
#ifndef QAPI_EVENTS_H
#define QAPI_EVENTS_H

#include "util/osdep.h"

#include <json-c/json.h>

/* Takes ownership of @data (NULL: the event has no data). */
void qapi_event_send(const char *name, json_object *data);

/* Shorthand for events whose data is {"device": @device_id}. */
void qapi_event_send_device(const char *name, const char *device_id);

#endif
