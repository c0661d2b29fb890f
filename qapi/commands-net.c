/*
 * Network commands: backends (netdev_add / netdev_del), link state and the
 * receive filters of NICs, through net/net.h.
 */
#include "qapi/qapi-commands.h"
#include "qapi/qmp.h"
#include "net/net.h"
#include "util/error.h"
#include "util/keyval.h"

static const char *json_str_arg(json_object *args, const char *key)
{
    json_object *v;

    return json_object_object_get_ex(args, key, &v) ?
           json_object_get_string(v) : NULL;
}

bool qmp_netdev_add(json_object *args, json_object **ret, GError **errp)
{
    g_autoptr(Keyval) kv = keyval_new();
    NetClient *nc;

    if (!qmp_config_may_change("netdev_add", errp) ||
        !qapi_json_to_keyval(args, kv, NULL, errp)) {
        return false;
    }
    nc = net_backend_create(kv, errp);
    if (!nc) {
        return false;
    }
    qmp_config_changed("netdev_add", nc->name);
    return true;
}

bool qmp_netdev_del(json_object *args, json_object **ret, GError **errp)
{
    const char *id = json_str_arg(args, "id");

    if (!qmp_config_may_change("netdev_del", errp) ||
        !net_backend_delete(id, errp)) {
        return false;
    }
    qmp_config_changed("netdev_del", id);
    return true;
}

bool qmp_set_link(json_object *args, json_object **ret, GError **errp)
{
    const char *name = json_str_arg(args, "name");
    json_object *up;

    json_object_object_get_ex(args, "up", &up);
    if (!qmp_config_may_change("set_link", errp) ||
        !net_set_link(name, json_object_get_boolean(up), errp)) {
        return false;
    }
    qmp_config_changed("set_link", name);
    return true;
}

static const char *rx_mode_name(NetRxMode m)
{
    switch (m) {
    case NET_RX_NONE:
        return "none";
    case NET_RX_ALL:
        return "all";
    default:
        return "normal";
    }
}

static json_object *mac_str(const uint8_t *mac)
{
    g_autofree char *s = g_strdup_printf("%02x:%02x:%02x:%02x:%02x:%02x",
                                         mac[0], mac[1], mac[2], mac[3],
                                         mac[4], mac[5]);

    return json_object_new_string(s);
}

static json_object *mac_table(GArray *macs)
{
    json_object *list = json_object_new_array();

    for (guint i = 0; macs && i < macs->len; i++) {
        json_object_array_add(list, mac_str((uint8_t *)macs->data + 6 * i));
    }
    return list;
}

static json_object *rx_filter_json(const char *name, NetRxFilterInfo *info)
{
    json_object *o = json_object_new_object();
    json_object *vlans = json_object_new_array();

    for (guint i = 0; info->vlan_table && i < info->vlan_table->len; i++) {
        json_object_array_add(vlans, json_object_new_int(
                                  g_array_index(info->vlan_table, uint16_t,
                                                i)));
    }
    json_object_object_add(o, "name", json_object_new_string(name));
    json_object_object_add(o, "promiscuous",
                           json_object_new_boolean(info->promiscuous));
    json_object_object_add(o, "multicast", json_object_new_string(
                               rx_mode_name(info->multicast)));
    json_object_object_add(o, "unicast", json_object_new_string(
                               rx_mode_name(info->unicast)));
    /* An empty VLAN table: the NIC does not filter VLANs. */
    json_object_object_add(o, "vlan", json_object_new_string(
                               info->vlan_table && info->vlan_table->len ?
                               "normal" : "all"));
    json_object_object_add(o, "broadcast-allowed",
                           json_object_new_boolean(info->broadcast_allowed));
    json_object_object_add(o, "multicast-overflow",
                           json_object_new_boolean(info->multicast_overflow));
    json_object_object_add(o, "unicast-overflow",
                           json_object_new_boolean(info->unicast_overflow));
    json_object_object_add(o, "main-mac", mac_str(info->main_mac));
    json_object_object_add(o, "vlan-table", vlans);
    json_object_object_add(o, "unicast-table",
                           mac_table(info->unicast_table));
    json_object_object_add(o, "multicast-table",
                           mac_table(info->multicast_table));
    if (info->vlan_table) {
        g_array_unref(info->vlan_table);
    }
    if (info->unicast_table) {
        g_array_unref(info->unicast_table);
    }
    if (info->multicast_table) {
        g_array_unref(info->multicast_table);
    }
    return o;
}

static void rx_filter_one(NetClient *nc, void *opaque)
{
    NetRxFilterInfo info;

    if (!nc->is_nic || !nc->ops->rx_filter_info ||
        !net_query_rx_filter(nc->name, &info, NULL)) {
        return;
    }
    json_object_array_add(opaque, rx_filter_json(nc->name, &info));
}

bool qmp_query_rx_filter(json_object *args, json_object **ret,
                         GError **errp)
{
    const char *name = json_str_arg(args, "name");
    json_object *list = json_object_new_array();
    NetRxFilterInfo info;

    if (!name) {
        net_client_foreach(rx_filter_one, list);
    } else if (net_query_rx_filter(name, &info, errp)) {
        json_object_array_add(list, rx_filter_json(name, &info));
    } else {
        json_object_put(list);
        return false;
    }
    *ret = list;
    return true;
}
