/*
 * Live upgrade from the harness: see iovd-upgrade.h.
 */
#include "util/osdep.h"

#include <sys/wait.h>

#include "tests/qtest/libqos/iovd-upgrade.h"
#include "tests/qtest/libqos/qos-util.h"

#define UPGRADE_EXIT_TIMEOUT_MS 15000

IovdProc *iovd_upgrade_target(char **uri, const char *trace)
{
    IovdProc *p = iovd_proc_new();
    g_autofree char *path = iovd_proc_path(p, "upgrade.sock");

    iovd_proc_set_plain(p);
    trace = trace ? trace : g_getenv("UPGRADE_TEST_TRACE");
    if (trace) {
        iovd_proc_add_args(p, "-trace", trace, NULL);
    }
    iovd_proc_add_args(p, "-incoming", NULL);
    iovd_proc_add_argf(p, "unix:%s", path);
    iovd_proc_start(p);
    *uri = g_strdup_printf("unix:%s", path);
    return p;
}

int64_t iovd_upgrade(IovdProc *old, IovdProc *next, const char *uri,
                     QmpClient **qmp, const char *qmp_path)
{
    pid_t old_pid = iovd_proc_pid(old);
    json_object *ret, *ev, *up;
    g_autofree char *how = NULL;
    int64_t downtime;
    int status;

    ret = qmp_okf(*qmp, "upgrade", "{'uri': '%s'}", uri);
    qos_assert(json_object_object_length(ret) == 0, "upgrade returned %s",
               qmp_json(ret));
    json_object_put(ret);
    ev = qmp_client_wait_event(*qmp, "SHUTDOWN", 0);
    qos_assert(g_str_equal(qmp_get_str(qmp_get(ev, "data"), "reason"),
                           "upgrade"), "SHUTDOWN: %s", qmp_json(ev));
    json_object_put(ev);
    status = iovd_proc_wait_exit(old, UPGRADE_EXIT_TIMEOUT_MS);
    how = iovd_proc_describe_status(status);
    qos_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
               "the old daemon %s", how);
    iovd_proc_assert_alive(next);
    /* The old monitor connection ended; the same path reaches the new. */
    qmp_client_free(*qmp);
    *qmp = qmp_client_open(qmp_path);
    ret = qmp_ok(*qmp, "query-status", NULL);
    qos_assert(qmp_get_bool(ret, "running") &&
               g_str_equal(qmp_get_str(ret, "status"), "running"),
               "the new daemon: %s", qmp_json(ret));
    up = qmp_get(ret, "upgrade");
    qos_assert(g_str_equal(qmp_get_str(up, "state"), "completed") &&
               qmp_get_int(up, "from-pid") == old_pid,
               "query-status after the upgrade: %s", qmp_json(ret));
    downtime = qmp_get_int(up, "downtime-us");
    qos_assert(downtime > 0 && downtime < 30 * G_USEC_PER_SEC,
               "downtime %" PRId64 " us", downtime);
    json_object_put(ret);
    return downtime;
}

int64_t iovd_upgrade_step(IovdProc *home, IovdProc **cur, QmpClient **qmp,
                          const char *qmp_path)
{
    g_autofree char *uri = NULL;
    IovdProc *next = iovd_upgrade_target(&uri, NULL);
    int64_t downtime = iovd_upgrade(*cur, next, uri, qmp, qmp_path);

    if (*cur != home) {
        iovd_proc_free(*cur);
    }
    *cur = next;
    return downtime;
}
