/*
 * QMP dispatch: request validation, negotiation mode, argument checks
 * against the schema, the handler call and the response.
 */
#include "qapi/qmp.h"
#include "qapi/trace.h"
#include "util/error.h"
#include "util/log.h"

bool qmp_strict(void)
{
    static int strict = -1;

    if (strict < 0) {
        const char *s = g_getenv("IOVD_QMP_STRICT");

        strict = s && *s && strcmp(s, "0") != 0;
    }
    return strict;
}

const char *qmp_error_class(const GError *err)
{
    if (err->domain == IOVD_ERROR) {
        switch (err->code) {
        case IOVD_ERROR_COMMAND_NOT_FOUND:
            return "CommandNotFound";
        case IOVD_ERROR_DEVICE_NOT_FOUND:
            return "DeviceNotFound";
        default:
            break;
        }
    }
    return "GenericError";
}

json_object *qmp_error_response(const char *cls, const char *desc,
                                json_object *id, bool has_id)
{
    json_object *resp = json_object_new_object();
    json_object *e = json_object_new_object();

    json_object_object_add(e, "class", json_object_new_string(cls));
    json_object_object_add(e, "desc", json_object_new_string(desc));
    json_object_object_add(resp, "error", e);
    if (has_id) {
        json_object_object_add(resp, "id", json_object_get(id));
    }
    return resp;
}

json_object *qmp_version_info(void)
{
    json_object *v = json_object_new_object();
    json_object *q = json_object_new_object();
    unsigned major = 0, minor = 0, micro = 0;
    g_autofree char *pkg = g_strdup_printf("iovd %s", IOVD_VERSION);

    sscanf(IOVD_VERSION, "%u.%u.%u", &major, &minor, &micro);
    json_object_object_add(q, "major", json_object_new_int(major));
    json_object_object_add(q, "minor", json_object_new_int(minor));
    json_object_object_add(q, "micro", json_object_new_int(micro));
    json_object_object_add(v, "qemu", q);
    json_object_object_add(v, "package", json_object_new_string(pkg));
    return v;
}

json_object *qmp_greeting(void)
{
    json_object *g = json_object_new_object();
    json_object *qmp = json_object_new_object();

    json_object_object_add(qmp, "version", qmp_version_info());
    json_object_object_add(qmp, "capabilities", json_object_new_array());
    json_object_object_add(g, "QMP", qmp);
    return g;
}

/* ---- serialization ---- */

/* Append the UTF-8 sequence at @p (at most @n bytes) as \u escapes. */
static size_t escape_utf8(const unsigned char *p, size_t n, GString *out)
{
    gunichar c;
    const char *end;

    /* g_utf8_get_char_validated wants a bounded, complete sequence. */
    c = g_utf8_get_char_validated((const char *)p, n);
    if (c == (gunichar)-1 || c == (gunichar)-2) {
        g_string_append(out, "\\ufffd");
        return 1;
    }
    end = g_utf8_next_char((const char *)p);
    if (c >= 0x10000) {
        c -= 0x10000;
        g_string_append_printf(out, "\\u%04x\\u%04x", 0xd800 + (c >> 10),
                               0xdc00 + (c & 0x3ff));
    } else {
        g_string_append_printf(out, "\\u%04x", c);
    }
    return end - (const char *)p;
}

void qmp_serialize(json_object *msg, GString *out)
{
    size_t len;
    const char *s = json_object_to_json_string_length(
        msg, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    /* Output is ASCII (qmp-spec): escape the rare non-ASCII character. */
    while (i < len) {
        size_t run = i;

        while (run < len && p[run] < 0x80) {
            run++;
        }
        g_string_append_len(out, s + i, run - i);
        i = run;
        if (i < len) {
            i += escape_utf8(p + i, len - i, out);
        }
    }
    g_string_append(out, "\r\n");
}

/* ---- dispatch ---- */

static const char *const request_members[] = {
    "execute", "exec-oob", "arguments", "id", NULL
};

static bool check_request(json_object *req, const char **name,
                          json_object **args, GError **errp)
{
    json_object *exec = NULL, *oob = NULL;

    json_object_object_foreach(req, key, val) {
        if (!g_strv_contains(request_members, key)) {
            error_setg(errp, "QMP input member '%s' is unexpected", key);
            return false;
        }
        (void)val;
    }
    json_object_object_get_ex(req, "execute", &exec);
    json_object_object_get_ex(req, "exec-oob", &oob);
    if (exec && oob) {
        error_setg(errp, "QMP input must not contain both 'execute' and "
                   "'exec-oob'");
        return false;
    }
    if (oob) {
        error_setg(errp, "out-of-band execution ('exec-oob') is not "
                   "supported: the greeting offers no 'oob' capability; "
                   "use 'execute'");
        return false;
    }
    if (!json_object_object_get_ex(req, "execute", NULL)) {
        error_setg(errp, "QMP input lacks member 'execute'");
        return false;
    }
    if (!json_object_is_type(exec, json_type_string)) {
        error_setg(errp, "QMP input member 'execute' must be a string");
        return false;
    }
    *name = json_object_get_string(exec);
    if (json_object_object_get_ex(req, "arguments", args) &&
        !json_object_is_type(*args, json_type_object)) {
        error_setg(errp, "QMP input member 'arguments' must be an object");
        return false;
    }
    return true;
}

static bool call_handler(const QapiCommandDef *def, json_object *args,
                         json_object **ret, GError **errp)
{
    const QmpCommand *cmd = &qmp_command_table[def - qapi_commands];
    g_autoptr(GError) bad = NULL;

    g_assert(strcmp(cmd->name, def->name) == 0);
    *ret = NULL;
    if (!cmd->fn(args, ret, errp)) {
        g_assert(!errp || *errp);
        if (*ret) {
            json_object_put(*ret);
            *ret = NULL;
        }
        return false;
    }
    if (!def->ret) {
        if (!*ret) {
            *ret = json_object_new_object();
        }
        return true;
    }
    /* Handlers must answer what the schema promises. */
    if (!qapi_check(def->ret, *ret, "Return member", &bad)) {
        iovd_warn("qmp: %s returned a value that does not match the "
                  "schema: %s", def->name, bad->message);
        if (qmp_strict()) {
            abort();
        }
    }
    return true;
}

json_object *qmp_dispatch(QmpSession *s, json_object *req)
{
    g_autoptr(GError) err = NULL;
    const QapiCommandDef *def;
    const char *name = NULL;
    json_object *args = NULL, *id = NULL, *ret, *resp;
    g_autoptr(json_object) empty = NULL;
    bool has_id;

    if (!json_object_is_type(req, json_type_object)) {
        return qmp_error_response("GenericError",
                                  "QMP input must be a JSON object", NULL,
                                  false);
    }
    has_id = json_object_object_get_ex(req, "id", &id);
    if (!check_request(req, &name, &args, &err)) {
        return qmp_error_response("GenericError", err->message, id, has_id);
    }
    trace_qmp_command(name);
    if (!s->negotiated && strcmp(name, "qmp_capabilities") != 0) {
        return qmp_error_response("CommandNotFound",
                                  "Expecting capabilities negotiation with "
                                  "'qmp_capabilities'", id, has_id);
    }
    if (s->negotiated && strcmp(name, "qmp_capabilities") == 0) {
        return qmp_error_response("CommandNotFound",
                                  "Capabilities negotiation is already "
                                  "complete, command ignored", id, has_id);
    }
    def = qapi_command_find(name);
    if (!def) {
        g_autofree char *msg = g_strdup_printf("The command %s has not been "
                                               "found", name);

        return qmp_error_response("CommandNotFound", msg, id, has_id);
    }
    if (!args) {
        args = empty = json_object_new_object();
    }
    if (!qapi_check(def->args, args, "Parameter", &err) ||
        !call_handler(def, args, &ret, &err)) {
        trace_qmp_command_error(name, err->message);
        return qmp_error_response(qmp_error_class(err), err->message, id,
                                  has_id);
    }
    if (strcmp(name, "qmp_capabilities") == 0) {
        s->negotiated = true;
    }
    resp = json_object_new_object();
    json_object_object_add(resp, "return", ret);
    if (has_id) {
        json_object_object_add(resp, "id", json_object_get(id));
    }
    return resp;
}
