/*
 * Object commands: iothreads and the types other subsystems register
 * (throttle-group): object-add, object-del, query-iothreads.
 */
#include "qapi/qapi-commands.h"
#include "qapi/qmp.h"
#include "qapi/schema.h"
#include "util/cmdline.h"
#include "util/error.h"
#include "util/iothread.h"
#include "util/keyval.h"

bool qmp_object_add(json_object *args, json_object **ret, GError **errp)
{
    g_autoptr(Keyval) kv = keyval_new();

    /* It announces itself to a live upgrade (iothread_object_add). */
    return qmp_config_may_change("object-add", errp) &&
           qapi_json_to_keyval(args, kv, NULL, errp) &&
           iothread_object_add(kv, errp);
}

bool qmp_object_del(json_object *args, json_object **ret, GError **errp)
{
    json_object *id;
    const IovdObjectType *t;

    json_object_object_get_ex(args, "id", &id);
    if (!qmp_config_may_change("object-del", errp)) {
        return false;
    }
    t = iovd_object_type_of(json_object_get_string(id));
    if (t ? !t->del(json_object_get_string(id), errp)
          : !iothread_delete(json_object_get_string(id), errp)) {
        return false;
    }
    iovd_config_deleted(iovd_config_key("object",
                                        json_object_get_string(id)));
    return true;
}

static void iothread_info(IOThread *t, void *opaque)
{
    json_object *o = json_object_new_object();
    IOThreadInfo info;

    iothread_get_info(t, &info);
    json_object_object_add(o, "id", json_object_new_string(info.id));
    json_object_object_add(o, "thread-id",
                           json_object_new_int(info.thread_id));
    json_object_object_add(o, "poll-max-ns",
                           json_object_new_int64(info.poll.max_ns));
    json_object_object_add(o, "poll-grow",
                           json_object_new_int64(info.poll.grow));
    json_object_object_add(o, "poll-shrink",
                           json_object_new_int64(info.poll.shrink));
    json_object_object_add(o, "poll-idle-ns",
                           json_object_new_int64(info.poll.idle_ns));
    json_object_object_add(o, "aio-max-batch", json_object_new_int(0));
    json_object_object_add(o, "devices", json_object_new_int(info.users));
    json_object_array_add(opaque, o);
}

bool qmp_query_iothreads(json_object *args, json_object **ret,
                         GError **errp)
{
    json_object *list = json_object_new_array();

    iothread_foreach(iothread_info, list);
    *ret = list;
    return true;
}
