/*
 * Network commands: backends (netdev_add / netdev_del), link state and the
 * receive filters of NICs, through net/net.h.
 */
#include "qapi/qapi-commands.h"
#include "qapi/qmp.h"
#include "net/net.h"
#include "util/error.h"
#include "util/cmdline.h"
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

    if (!qmp_config_may_change("netdev_add", errp) ||
        !qapi_json_to_keyval(args, kv, NULL, errp)) {
        return false;
    }
    /* It announces itself to a live upgrade (net_backend_create). */
    return net_backend_create(kv, errp) != NULL;
}

bool qmp_netdev_del(json_object *args, json_object **ret, GError **errp)
{
    const char *id = json_str_arg(args, "id");

    return qmp_config_may_change("netdev_del", errp) &&
           net_backend_delete(id, errp);
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

/* ---- rate limits ---- */

/* A netdev's options get its limits as they are now. */
static void set_limit_keys(Keyval *kv, void *opaque)
{
    const NetThrottle *t = opaque;
    const struct { const char *key; uint64_t v; } lim[] = {
        { "rx-bps", t->rx_bps }, { "rx-pps", t->rx_pps },
        { "tx-bps", t->tx_bps }, { "tx-pps", t->tx_pps },
    };

    for (unsigned i = 0; i < G_N_ELEMENTS(lim); i++) {
        g_autofree char *v = g_strdup_printf("%" PRIu64, lim[i].v);

        keyval_set(kv, lim[i].key, v);
    }
}

bool qmp_netdev_set_throttle(json_object *args, json_object **ret,
                             GError **errp)
{
    const char *id = json_str_arg(args, "id");
    static const char *const keys[] = {
        "rx-bps", "rx-pps", "tx-bps", "tx-pps",
    };
    NetClient *nc = net_client_find(id);
    NetClient *b = nc && nc->is_nic ? nc->peer : nc;
    NetThrottleStats st[2];
    NetThrottle t = { 0 };
    uint64_t *fields[] = { &t.rx_bps, &t.rx_pps, &t.tx_bps, &t.tx_pps };

    /* Limits not given keep their value. */
    if (b) {
        net_get_throttle(b, &t, st);
    }
    for (unsigned i = 0; i < G_N_ELEMENTS(keys); i++) {
        json_object *v;

        if (!json_object_object_get_ex(args, keys[i], &v)) {
            continue;
        }
        if (json_object_get_int64(v) < 0) {
            error_setg(errp, "Parameter '%s' expects a non-negative value",
                       keys[i]);
            return false;
        }
        *fields[i] = json_object_get_int64(v);
    }
    if (!qmp_config_may_change("netdev-set-throttle", errp) ||
        !net_set_throttle(id, &t, errp)) {
        return false;
    }
    /* A live upgrade's new process makes the netdev with these limits. */
    iovd_config_update(b, set_limit_keys, &t);
    return true;
}

static json_object *throttle_dir_info(uint64_t bps, uint64_t pps,
                                      const NetThrottleStats *st)
{
    json_object *o = json_object_new_object();

    json_object_object_add(o, "bps", json_object_new_uint64(bps));
    json_object_object_add(o, "pps", json_object_new_uint64(pps));
    json_object_object_add(o, "limited",
                           json_object_new_boolean(st->holding));
    json_object_object_add(o, "frames", json_object_new_uint64(st->frames));
    json_object_object_add(o, "bytes", json_object_new_uint64(st->bytes));
    json_object_object_add(o, "holds", json_object_new_uint64(st->holds));
    json_object_object_add(o, "held-ns", json_object_new_uint64(st->held_ns));
    json_object_object_add(o, "delayed-frames",
                           json_object_new_uint64(st->delayed_frames));
    json_object_object_add(o, "delayed-bytes",
                           json_object_new_uint64(st->delayed_bytes));
    json_object_object_add(o, "delay-ns",
                           json_object_new_uint64(st->delay_ns));
    json_object_object_add(o, "dropped-frames",
                           json_object_new_uint64(st->dropped));
    return o;
}

static void throttle_info(NetClient *nc, void *opaque)
{
    NetThrottleStats st[2];
    NetThrottle t;
    json_object *o;

    if (!net_get_throttle(nc, &t, st)) {
        return;
    }
    o = json_object_new_object();
    json_object_object_add(o, "netdev", json_object_new_string(nc->name));
    if (nc->peer) {
        json_object_object_add(o, "nic",
                               json_object_new_string(nc->peer->name));
    }
    json_object_object_add(o, "rx", throttle_dir_info(t.rx_bps, t.rx_pps,
                                                      &st[0]));
    json_object_object_add(o, "tx", throttle_dir_info(t.tx_bps, t.tx_pps,
                                                      &st[1]));
    json_object_array_add(opaque, o);
}

bool qmp_query_net_throttle(json_object *args, json_object **ret,
                            GError **errp)
{
    json_object *list = json_object_new_array();

    net_backend_foreach(throttle_info, list);
    *ret = list;
    return true;
}
