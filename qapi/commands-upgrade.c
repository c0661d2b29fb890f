/*
 * Live upgrade from the monitor: the upgrade command (its reply deferred
 * until the hand-over ended, hw/core/upgrade.h), UPGRADE_FAILED, and the
 * rule that a configuration changed at run time blocks an upgrade.
 * (UPGRADE_COMPLETED comes from the new process's main().)
 */
#include "qapi/qapi-commands.h"
#include "qapi/events.h"
#include "qapi/monitor.h"
#include "qapi/qmp.h"
#include "hw/core/upgrade.h"
#include "util/error.h"

static void upgrade_done(GError *err, void *opaque)
{
    QmpDeferred *d = opaque;
    json_object *data;

    if (!err) {
        qmp_deferred_return(d, NULL);   /* this process exits next */
        return;
    }
    monitor_pause_accept(false);
    data = json_object_new_object();
    json_object_object_add(data, "reason",
                           json_object_new_string(err->message));
    qapi_event_send("UPGRADE_FAILED", data);
    qmp_deferred_error(d, g_error_copy(err));
}

bool qmp_upgrade(json_object *args, json_object **ret, GError **errp)
{
    json_object *uri;

    json_object_object_get_ex(args, "uri", &uri);
    /* Failing at once cancels the deferral. */
    if (!upgrade_start(json_object_get_string(uri), upgrade_done,
                       qmp_defer(), errp)) {
        return false;
    }
    /* New clients wait for the process that runs once it is over. */
    monitor_pause_accept(true);
    return true;
}

bool qmp_config_may_change(const char *cmd, GError **errp)
{
    if (upgrade_in_progress()) {
        error_setg(errp, "%s: an upgrade is in progress, try again once it "
                   "ended", cmd);
        return false;
    }
    return true;
}

void qmp_config_changed(const char *cmd, const char *id)
{
    g_autofree char *what = g_strdup_printf("%s '%s'", cmd, id ? id : "");

    upgrade_config_changed(what);
}
