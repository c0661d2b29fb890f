/*
 * vfio-user version negotiation: the client's VERSION and its JSON
 * capabilities are parsed and checked first, then the reply is built
 * (our version and the capabilities we grant).
 */
#include "hw/vfio-user/vfio-user-int.h"
#include "hw/vfio-user/trace.h"

#include <json-c/json.h>


static bool json_get_u64(json_object *caps, const char *key, uint64_t *out,
                         bool *bad)
{
    json_object *v;

    if (!json_object_object_get_ex(caps, key, &v)) {
        return false;
    }
    if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0) {
        *bad = true;
        return false;
    }
    *out = json_object_get_uint64(v);
    return true;
}

/* What a client's VERSION says it can take. */
typedef struct VfuClientCaps {
    uint64_t max_fds, max_xfer, pgsizes, max_maps;
    bool write_multiple;
    bool migration;             /* proposes it with our page size */
} VfuClientCaps;

/*
 * Parse the capabilities JSON of a VERSION (@len bytes with its NUL) into
 * @c (defaults where absent).  False with *why when it is malformed or
 * unusable.
 */
static bool vfu_parse_caps(const char *json, uint32_t len, VfuClientCaps *c,
                           const char **why)
{
    json_object *root, *caps, *o;
    enum json_tokener_error jerr;
    bool bad = false;

    if (json[len - 1] != '\0' || strlen(json) + 1 != len) {
        *why = "capabilities not NUL-terminated";
        return false;
    }
    root = json_tokener_parse_verbose(json, &jerr);
    if (!root || !json_object_is_type(root, json_type_object)) {
        json_object_put(root);
        *why = "capabilities are not JSON object";
        return false;
    }
    if (json_object_object_get_ex(root, "capabilities", &caps)) {
        if (!json_object_is_type(caps, json_type_object)) {
            json_object_put(root);
            *why = "'capabilities' not an object";
            return false;
        }
        json_get_u64(caps, "max_msg_fds", &c->max_fds, &bad);
        json_get_u64(caps, "max_data_xfer_size", &c->max_xfer, &bad);
        json_get_u64(caps, "pgsizes", &c->pgsizes, &bad);
        json_get_u64(caps, "max_dma_maps", &c->max_maps, &bad);
        if (json_object_object_get_ex(caps, "write_multiple", &o)) {
            if (!json_object_is_type(o, json_type_boolean)) {
                bad = true;
            }
            c->write_multiple = json_object_get_boolean(o);
        }
        if (json_object_object_get_ex(caps, "migration", &o) &&
            json_object_object_get_ex(o, "pgsize", &o)) {
            c->migration = json_object_is_type(o, json_type_int) &&
                           json_object_get_int64(o) == VFU_DIRTY_PAGE_SIZE;
        }
    }
    json_object_put(root);
    if (bad) {
        *why = "capability of the wrong type";
        return false;
    }
    if (!(c->pgsizes & VFU_SERVER_PGSIZES) || c->max_xfer < 4096) {
        *why = "unusable page sizes or transfer size";
        return false;
    }
    return true;
}

/*
 * The capabilities we reply: a subset of what we support.  QEMU's client
 * reads the reply into a buffer the size of its request: never answer
 * longer than @room bytes with the NUL (0: no limit), dropping the least
 * important capabilities to fit; *multi says whether write_multiple
 * (offered when @multi) survived.  "migration" (when @mig) goes first.
 * NULL when even "{}" does not fit.
 */
static char *vfu_caps_reply(uint32_t room, bool *multi, bool mig)
{
    for (int drop = 0; drop <= 6; drop++) {
        GString *js = g_string_new("{\"capabilities\":{");
        const char *sep = "";

        if (drop < 6) {
            g_string_append_printf(js, "\"max_msg_fds\":%u",
                                   VFU_SERVER_MAX_MSG_FDS);
            sep = ",";
        }
        if (drop < 5) {
            g_string_append_printf(js, "%s\"max_data_xfer_size\":%u", sep,
                                   VFU_SERVER_MAX_DATA_XFER);
        }
        if (drop < 4) {
            g_string_append_printf(js, ",\"pgsizes\":%u", VFU_SERVER_PGSIZES);
        }
        if (drop < 3) {
            g_string_append_printf(js, ",\"max_dma_maps\":%u",
                                   VFU_SERVER_MAX_DMA_MAPS);
        }
        if (drop < 2 && *multi) {
            g_string_append(js, ",\"write_multiple\":true");
        }
        if (drop < 1 && mig) {
            g_string_append_printf(js, ",\"migration\":{\"pgsize\":%u,"
                                   "\"max_bitmap_size\":%u}",
                                   VFU_DIRTY_PAGE_SIZE, VFU_SERVER_MAX_BITMAP);
        }
        g_string_append(js, "}}");
        if (!room || js->len + 1 <= room) {
            *multi = *multi && drop < 2;
            return g_string_free(js, false);
        }
        g_string_free(js, true);
    }
    *multi = false;
    return NULL;
}

int vfu_handle_version(VfuServer *s, VfuMsg *m)
{
    const VfuVersion *v = (const VfuVersion *)m->payload;
    const char *json = (const char *)m->payload + sizeof(*v);
    VfuClientCaps caps = {
        .max_fds = 1, .max_xfer = VFU_SERVER_MAX_DATA_XFER,
        .pgsizes = VFU_SERVER_PGSIZES,
    };
    const char *why;
    uint32_t json_len;
    g_autofree char *reply_json = NULL;
    g_autofree uint8_t *reply = NULL;
    size_t reply_len = sizeof(*v);

    if (s->negotiated) {
        return vfu_msg_fail(s, m, EINVAL, "VERSION sent twice");
    }
    if (m->len < sizeof(*v)) {
        return vfu_msg_fail(s, m, EINVAL, "VERSION too short");
    }
    if (v->major != VFU_VERSION_MAJOR) {
        return vfu_msg_fail(s, m, ENOTSUP, "unsupported major version");
    }
    json_len = m->len - sizeof(*v);
    if (json_len) {
        if (!vfu_parse_caps(json, json_len, &caps, &why)) {
            return vfu_msg_fail(s, m, EINVAL, why);
        }
        s->client_caps_json = g_strdup(json);
    }
    s->minor = MIN(v->minor, VFU_VERSION_MINOR);
    s->client_max_fds = MIN(caps.max_fds, VFU_SERVER_MAX_MSG_FDS);
    s->client_max_xfer = MIN(caps.max_xfer, VFU_SERVER_MAX_DATA_XFER * 64ULL);
    s->write_multiple = caps.write_multiple;
    trace_vfu_version(vfu_id(s), v->major, v->minor, json_len ? json : "");

    /* A client that sent no JSON gets none back. */
    if (json_len) {
        reply_json = vfu_caps_reply(json_len, &s->write_multiple,
                                    caps.migration && vfu_mig_supported(s));
        if (reply_json) {
            reply_len += strlen(reply_json) + 1;
        }
    }
    reply = g_malloc0(reply_len);
    ((VfuVersion *)reply)->major = VFU_VERSION_MAJOR;
    ((VfuVersion *)reply)->minor = s->minor;
    if (reply_json) {
        memcpy(reply + sizeof(*v), reply_json, reply_len - sizeof(*v));
    }
    s->negotiated = true;
    vfu_send_reply(s, &m->hdr, reply, reply_len, -1);
    return VFU_REPLIED;
}
