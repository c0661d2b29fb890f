/*
 * NVMe subsystem commands: query-nvme-subsystems, nvme-ns-attach and
 * nvme-ns-detach (hw/nvme/nvme-subsys.h does the work).
 */
#include "qapi/qapi-commands.h"
#include "qapi/qmp.h"
#include "hw/nvme/nvme-subsys.h"
#include "util/error.h"

/* The checked arguments: subsys, nsid, controller. */
static bool nvme_ns_args(json_object *args, const char **subsys,
                         uint32_t *nsid, const char **ctrl, GError **errp)
{
    json_object *s, *n, *c;
    int64_t v;

    if (!json_object_object_get_ex(args, "subsys", &s) ||
        !json_object_object_get_ex(args, "nsid", &n) ||
        !json_object_object_get_ex(args, "controller", &c)) {
        error_setg(errp, "Need 'subsys', 'nsid' and 'controller'");
        return false;
    }
    v = json_object_get_int64(n);
    if (v < 1 || v > UINT32_MAX) {
        error_setg(errp, "Parameter 'nsid' must be a namespace id, not "
                   "%" PRId64, v);
        return false;
    }
    *subsys = json_object_get_string(s);
    *nsid = v;
    *ctrl = json_object_get_string(c);
    return true;
}

bool qmp_nvme_ns_attach(json_object *args, json_object **ret, GError **errp)
{
    const char *subsys, *ctrl;
    uint32_t nsid;

    /* The namespace's option follows, for a live upgrade (attached=). */
    return qmp_config_may_change("nvme-ns-attach", errp) &&
           nvme_ns_args(args, &subsys, &nsid, &ctrl, errp) &&
           nvme_subsys_attach_ns(subsys, nsid, ctrl, errp);
}

bool qmp_nvme_ns_detach(json_object *args, json_object **ret, GError **errp)
{
    const char *subsys, *ctrl;
    uint32_t nsid;

    return qmp_config_may_change("nvme-ns-detach", errp) &&
           nvme_ns_args(args, &subsys, &nsid, &ctrl, errp) &&
           nvme_subsys_detach_ns(subsys, nsid, ctrl, errp);
}

static json_object *nvme_ns_info_json(const NvmeSubsysNsInfo *ni)
{
    json_object *o = json_object_new_object();
    json_object *ctrls = json_object_new_array();

    for (guint i = 0; i < ni->ctrls->len; i++) {
        json_object_array_add(ctrls, json_object_new_string(
                                  g_ptr_array_index(ni->ctrls, i)));
    }
    json_object_object_add(o, "nsid", json_object_new_int64(ni->nsid));
    json_object_object_add(o, "shared", json_object_new_boolean(ni->shared));
    json_object_object_add(o, "drive", json_object_new_string(ni->drive));
    json_object_object_add(o, "controllers", ctrls);
    return o;
}

static json_object *nvme_subsys_info_json(const NvmeSubsysInfo *info)
{
    json_object *o = json_object_new_object();
    json_object *ctrls = json_object_new_array();
    json_object *ns = json_object_new_array();

    for (guint i = 0; i < info->ctrls->len; i++) {
        const NvmeSubsysCtrlInfo *ci = g_ptr_array_index(info->ctrls, i);
        json_object *c = json_object_new_object();

        json_object_object_add(c, "id", json_object_new_string(ci->id));
        json_object_object_add(c, "cntlid",
                               json_object_new_int64(ci->cntlid));
        json_object_array_add(ctrls, c);
    }
    for (guint i = 0; i < info->ns->len; i++) {
        json_object_array_add(ns, nvme_ns_info_json(
                                  g_ptr_array_index(info->ns, i)));
    }
    json_object_object_add(o, "id", json_object_new_string(info->id));
    json_object_object_add(o, "nqn", json_object_new_string(info->nqn));
    json_object_object_add(o, "controllers", ctrls);
    json_object_object_add(o, "namespaces", ns);
    return o;
}

bool qmp_query_nvme_subsystems(json_object *args, json_object **ret,
                               GError **errp)
{
    g_autoptr(GPtrArray) list = nvme_subsys_query();
    json_object *out = json_object_new_array();

    for (guint i = 0; i < list->len; i++) {
        json_object_array_add(out, nvme_subsys_info_json(
                                  g_ptr_array_index(list, i)));
    }
    *ret = out;
    return true;
}
