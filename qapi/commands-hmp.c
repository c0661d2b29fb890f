/*
 * human-monitor-command: the few HMP commands people and `qmp-shell -H`
 * reach for, each the matching QMP query's result formatted as text (one
 * source of truth; lines end in CRLF as QEMU's do).
 */
#include "qapi/qapi-commands.h"
#include "qapi/qmp.h"
#include "util/error.h"

static const char *str_of(json_object *o, const char *key)
{
    json_object *v;

    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v)
                                                 : "";
}

static int64_t int_of(json_object *o, const char *key)
{
    json_object *v;

    return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v)
                                                 : 0;
}

static json_object *member(json_object *o, const char *key)
{
    json_object *v = NULL;

    json_object_object_get_ex(o, key, &v);
    return v;
}

static void info_status(json_object *r, GString *out)
{
    g_string_append_printf(out, "VM status: %s\r\n", str_of(r, "status"));
}

static void info_pci(json_object *r, GString *out)
{
    for (size_t i = 0; i < json_object_array_length(r); i++) {
        json_object *devs = member(json_object_array_get_idx(r, i),
                                   "devices");

        for (size_t j = 0; j < json_object_array_length(devs); j++) {
            json_object *d = json_object_array_get_idx(devs, j);
            json_object *cls = member(d, "class_info");
            json_object *id = member(d, "id");

            g_string_append_printf(out, "  Bus %3" PRId64 ", device %3"
                                   PRId64 ", function %" PRId64 ":\r\n",
                                   int_of(d, "bus"), int_of(d, "slot"),
                                   int_of(d, "function"));
            g_string_append_printf(out, "    %s: PCI device %04" PRIx64
                                   ":%04" PRIx64 "\r\n", str_of(cls, "desc"),
                                   int_of(id, "vendor"), int_of(id, "device"));
            g_string_append_printf(out, "      id \"%s\"\r\n",
                                   str_of(d, "qdev_id"));
        }
    }
}

static void info_block(json_object *r, GString *out)
{
    for (size_t i = 0; i < json_object_array_length(r); i++) {
        json_object *b = json_object_array_get_idx(r, i);
        json_object *in = member(b, "inserted");
        const char *file = str_of(in, "file");

        g_string_append_printf(out, "%s: %s (%s%s)\r\n",
                               str_of(in, "node-name"),
                               *file ? file : "[not a file]",
                               str_of(in, "drv"),
                               json_object_get_boolean(member(in, "ro"))
                               ? ", read-only" : "");
        g_string_append_printf(out, "    Attached to:      %s\r\n",
                               *str_of(b, "device") ? str_of(b, "device")
                                                    : "(no device)");
    }
}

static void info_iothreads(json_object *r, GString *out)
{
    for (size_t i = 0; i < json_object_array_length(r); i++) {
        json_object *t = json_object_array_get_idx(r, i);

        g_string_append_printf(out, "%s:\r\n  thread_id=%" PRId64 "\r\n"
                               "    poll-max-ns=%" PRId64 "\r\n"
                               "    poll-grow=%" PRId64 "\r\n"
                               "    poll-shrink=%" PRId64 "\r\n",
                               str_of(t, "id"), int_of(t, "thread-id"),
                               int_of(t, "poll-max-ns"),
                               int_of(t, "poll-grow"),
                               int_of(t, "poll-shrink"));
    }
}

static void info_blockstats(json_object *r, GString *out)
{
    static const char *const keys[] = {
        "rd_bytes", "wr_bytes", "rd_operations", "wr_operations",
        "flush_operations", "rd_total_time_ns", "wr_total_time_ns",
        "flush_total_time_ns", "failed_rd_operations",
        "failed_wr_operations", "inflight",
    };

    for (size_t i = 0; i < json_object_array_length(r); i++) {
        json_object *b = json_object_array_get_idx(r, i);
        json_object *st = member(b, "stats");

        g_string_append_printf(out, "%s:", str_of(b, "node-name"));
        for (size_t k = 0; k < G_N_ELEMENTS(keys); k++) {
            g_string_append_printf(out, " %s=%" PRId64, keys[k],
                                   int_of(st, keys[k]));
        }
        g_string_append(out, "\r\n");
    }
}

static void info_vfio_user(json_object *r, GString *out)
{
    for (size_t i = 0; i < json_object_array_length(r); i++) {
        json_object *v = json_object_array_get_idx(r, i);
        const char *sock = str_of(v, "socket");

        g_string_append_printf(out, "%s (%s): %s, %s\r\n", str_of(v, "id"),
                               str_of(v, "driver"),
                               *sock ? sock : "inherited fd",
                               !json_object_get_boolean(member(v,
                                                               "connected"))
                               ? "no client"
                               : json_object_get_boolean(member(v,
                                                                "negotiated"))
                               ? "client attached" : "client negotiating");
        g_string_append_printf(out, "    DMA: %" PRId64 " regions, %" PRId64
                               " bytes; messages %" PRId64 ", errors %"
                               PRId64 ", clients %" PRId64 "\r\n",
                               int_of(v, "dma-regions"),
                               int_of(v, "dma-bytes"), int_of(v, "messages"),
                               int_of(v, "errors"), int_of(v, "clients"));
    }
}

/* info stats [device|queue] [PROVIDER]: one block per object and provider. */
static void info_stats(json_object *r, GString *out)
{
    for (size_t i = 0; i < json_object_array_length(r); i++) {
        json_object *res = json_object_array_get_idx(r, i);
        json_object *stats = member(res, "stats");

        g_string_append_printf(out, "%s (%s):\r\n", str_of(res, "qom-path"),
                               str_of(res, "provider"));
        for (size_t k = 0; k < json_object_array_length(stats); k++) {
            json_object *s = json_object_array_get_idx(stats, k);

            g_string_append_printf(out, "    %s: %" PRId64 "\r\n",
                                   str_of(s, "name"), int_of(s, "value"));
        }
    }
}

static bool hmp_stats(GStrv words, unsigned n, GString *out, GError **errp)
{
    g_autoptr(json_object) args = json_object_new_object();
    const char *target = n > 2 ? words[2] : "device";
    json_object *r = NULL;

    if (strcmp(target, "device") && strcmp(target, "queue")) {
        error_setg(errp, "info stats: target '%s': device or queue", target);
        return false;
    }
    json_object_object_add(args, "target", json_object_new_string(target));
    if (n > 3) {
        json_object *req = json_object_new_object();
        json_object *list = json_object_new_array();

        json_object_object_add(req, "provider",
                               json_object_new_string(words[3]));
        json_object_array_add(list, req);
        json_object_object_add(args, "providers", list);
    }
    if (!qmp_query_stats(args, &r, errp)) {
        return false;
    }
    info_stats(r, out);
    json_object_put(r);
    return true;
}

typedef struct HmpInfo {
    const char *name, *help;
    bool (*query)(json_object *args, json_object **ret, GError **errp);
    void (*format)(json_object *r, GString *out);
} HmpInfo;

static const HmpInfo hmp_infos[] = {
    { "status", "the run state", qmp_query_status, info_status },
    { "pci", "the PCI devices", qmp_query_pci, info_pci },
    { "block", "the block backends and nodes", qmp_query_block, info_block },
    { "iothreads", "the iothreads", qmp_query_iothreads, info_iothreads },
    { "blockstats", "the I/O statistics of every node",
      qmp_query_blockstats, info_blockstats },
    { "vfio-user", "every device's vfio-user server",
      qmp_query_vfio_user, info_vfio_user },
};

static void hmp_help(GString *out)
{
    g_string_append(out, "help|? -- this text\r\n");
    g_string_append(out, "info stats [device|queue] [PROVIDER] -- show the "
                    "counters of query-stats\r\n");
    for (size_t i = 0; i < G_N_ELEMENTS(hmp_infos); i++) {
        g_string_append_printf(out, "info %s -- show %s\r\n",
                               hmp_infos[i].name, hmp_infos[i].help);
    }
}

bool qmp_human_monitor_command(json_object *args, json_object **ret,
                               GError **errp)
{
    g_auto(GStrv) words = g_strsplit_set(str_of(args, "command-line"),
                                         " \t", -1);
    g_autoptr(GString) out = g_string_new(NULL);
    const char *what = NULL;
    unsigned n = 0;

    for (char **w = words; *w; w++) {
        if (**w) {
            words[n++] = *w;
        } else {
            g_free(*w);
        }
    }
    words[n] = NULL;
    if (n == 0) {
        *ret = json_object_new_string("");
        return true;
    }
    if (!strcmp(words[0], "help") || !strcmp(words[0], "?")) {
        hmp_help(out);
    } else if (!strcmp(words[0], "info") && n >= 2 && n <= 4 &&
               !strcmp(words[1], "stats")) {
        if (!hmp_stats(words, n, out, errp)) {
            return false;
        }
    } else if (!strcmp(words[0], "info") && n == 2) {
        what = words[1];
    } else {
        error_setg(errp, "unknown command '%s' (help lists the commands)",
                   words[0]);
        return false;
    }
    for (size_t i = 0; what && i < G_N_ELEMENTS(hmp_infos); i++) {
        g_autoptr(json_object) none = json_object_new_object();
        json_object *r = NULL;

        if (strcmp(what, hmp_infos[i].name) != 0) {
            continue;
        }
        if (!hmp_infos[i].query(none, &r, errp)) {
            return false;
        }
        hmp_infos[i].format(r, out);
        json_object_put(r);
        what = NULL;
    }
    if (what) {
        error_setg(errp, "info %s: unknown (help lists what there is)", what);
        return false;
    }
    *ret = json_object_new_string(out->str);
    return true;
}
