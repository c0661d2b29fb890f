/*
 * Core commands: negotiation, version, introspection, run state, quit.
 */
#include "qapi/qapi-commands.h"
#include "qapi/events.h"
#include "qapi/qmp.h"
#include "hw/core/device.h"
#include "hw/core/upgrade.h"
#include "block/block.h"
#include "util/error.h"
#include "iovd.h"

bool qmp_qmp_capabilities(json_object *args, json_object **ret,
                          GError **errp)
{
    json_object *enable;

    /* The greeting offers no capability: enabling any is an error. */
    if (json_object_object_get_ex(args, "enable", &enable) &&
        json_object_array_length(enable) > 0) {
        error_setg(errp, "Capability '%s' not available",
                   json_object_get_string(
                       json_object_array_get_idx(enable, 0)));
        return false;
    }
    return true;
}

bool qmp_query_version(json_object *args, json_object **ret, GError **errp)
{
    *ret = qmp_version_info();
    return true;
}

bool qmp_query_commands(json_object *args, json_object **ret, GError **errp)
{
    json_object *list = json_object_new_array_ext(qapi_n_commands);

    for (unsigned i = 0; i < qapi_n_commands; i++) {
        json_object *c = json_object_new_object();

        json_object_object_add(c, "name",
                               json_object_new_string(qapi_commands[i].name));
        json_object_array_add(list, c);
    }
    *ret = list;
    return true;
}

bool qmp_query_qmp_schema(json_object *args, json_object **ret,
                          GError **errp)
{
    static json_object *schema;

    if (!schema) {
        schema = json_tokener_parse(qapi_introspection_json);
        g_assert(schema);
    }
    *ret = json_object_get(schema);
    return true;
}

bool qmp_query_status(json_object *args, json_object **ret, GError **errp)
{
    json_object *s = json_object_new_object();

    bool paused = device_all_paused();

    json_object_object_add(s, "running", json_object_new_boolean(!paused));
    json_object_object_add(s, "status", json_object_new_string(
                               paused ? "paused" : "running"));
    if (upgrade_in_progress() || upgrade_from_pid()) {
        json_object *u = json_object_new_object();

        json_object_object_add(u, "state", json_object_new_string(
                                   upgrade_in_progress() ? "handing-over"
                                                         : "completed"));
        if (!upgrade_in_progress()) {
            json_object_object_add(u, "from-pid",
                                   json_object_new_int64(upgrade_from_pid()));
            json_object_object_add(u, "downtime-us", json_object_new_int64(
                                       upgrade_downtime_ns() / 1000));
        }
        json_object_object_add(s, "upgrade", u);
    }
    *ret = s;
    return true;
}

bool qmp_stop(json_object *args, json_object **ret, GError **errp)
{
    if (!qmp_config_may_change("stop", errp)) {
        return false;
    }
    if (device_all_paused()) {
        return true;
    }
    device_pause_all();
    qapi_event_send("STOP", NULL);
    return true;
}

bool qmp_cont(json_object *args, json_object **ret, GError **errp)
{
    bool was_paused = device_all_paused();

    if (!qmp_config_may_change("cont", errp)) {
        return false;
    }
    /*
     * Devices a stop error policy paused resume too, and the requests it
     * held are retried.
     */
    device_resume_all();
    blk_resume_all();
    if (was_paused) {
        qapi_event_send("RESUME", NULL);
    }
    return true;
}

bool qmp_quit(json_object *args, json_object **ret, GError **errp)
{
    /* Not in the middle of handing the devices over. */
    if (!qmp_config_may_change("quit", errp)) {
        return false;
    }
    /* The monitor's shutdown hook emits SHUTDOWN; the reply follows. */
    iovd_request_shutdown("host-qmp-quit");
    return true;
}
