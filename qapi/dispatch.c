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

/* The request whose handler runs: what qmp_defer() takes. */
typedef struct QmpRequest {
    QmpSession *sess;
    const QapiCommandDef *def;
    json_object *id;            /* borrowed; NULL without one */
    bool has_id;
    QmpDeferred *deferred;      /* set by qmp_defer() */
} QmpRequest;

struct QmpDeferred {
    QmpSession *sess;           /* NULL once its client went away */
    const QapiCommandDef *def;
    json_object *id;            /* a reference, or NULL */
    bool has_id;
    bool in_handler;            /* the handler has not returned yet */
    json_object *resp;          /* the reply, when given in the handler */
};

static QmpRequest *running;

/* {"return": @ret (owned; NULL: {})} after the schema check. */
static json_object *return_response(const QapiCommandDef *def,
                                    json_object *ret, json_object *id,
                                    bool has_id)
{
    g_autoptr(GError) bad = NULL;
    json_object *resp = json_object_new_object();

    if (!def->ret && !ret) {
        ret = json_object_new_object();
    } else if (def->ret &&
               !qapi_check(def->ret, ret, "Return member", &bad)) {
        /* Handlers must answer what the schema promises. */
        iovd_warn("qmp: %s returned a value that does not match the "
                  "schema: %s", def->name, bad->message);
        if (qmp_strict()) {
            abort();
        }
    }
    json_object_object_add(resp, "return", ret);
    if (has_id) {
        json_object_object_add(resp, "id", json_object_get(id));
    }
    return resp;
}

/* Run the handler: true with *ret, or false with @errp. */
static bool call_handler(QmpRequest *req, json_object *args,
                         json_object **ret, GError **errp)
{
    const QapiCommandDef *def = req->def;
    const QmpCommand *cmd = &qmp_command_table[def - qapi_commands];
    QmpRequest *outer = running;
    bool ok;

    g_assert(strcmp(cmd->name, def->name) == 0);
    *ret = NULL;
    running = req;
    ok = cmd->fn(args, ret, errp);
    running = outer;
    if (!ok || req->deferred) {
        g_assert(ok || !errp || *errp);
        g_clear_pointer(ret, json_object_put);
    }
    return ok;
}

QmpDeferred *qmp_defer(void)
{
    QmpDeferred *d;

    g_assert(running && !running->deferred);
    d = g_new0(QmpDeferred, 1);
    d->sess = running->sess;
    d->def = running->def;
    d->id = running->id ? json_object_get(running->id) : NULL;
    d->has_id = running->has_id;
    d->in_handler = true;
    running->deferred = d;
    return d;
}

static void deferred_free(QmpDeferred *d)
{
    json_object_put(d->id);
    json_object_put(d->resp);
    g_free(d);
}

static void deferred_reply(QmpDeferred *d, json_object *resp)
{
    QmpSession *s = d->sess;

    if (d->in_handler) {
        d->resp = resp;         /* qmp_dispatch returns it */
        return;
    }
    if (s) {
        g_assert(s->pending == d);
        s->pending = NULL;
        s->send_reply(s, resp);
    } else {
        trace_qmp_deferred_dropped(d->def->name);
    }
    json_object_put(resp);
    deferred_free(d);
}

void qmp_deferred_return(QmpDeferred *d, json_object *ret)
{
    deferred_reply(d, return_response(d->def, ret, d->id, d->has_id));
}

void qmp_deferred_error(QmpDeferred *d, GError *err)
{
    trace_qmp_command_error(d->def->name, err->message);
    deferred_reply(d, qmp_error_response(qmp_error_class(err),
                                         err->message, d->id, d->has_id));
    g_error_free(err);
}

void qmp_session_detach(QmpSession *s)
{
    if (s->pending) {
        s->pending->sess = NULL;
        s->pending = NULL;
    }
}

/*
 * The handler of @req took a handle and returned (@ok).  Returns the
 * response when there is one now (the handler failed, or answered at
 * once), else NULL: the reply is pending on @req's session.
 */
static json_object *deferred_started(QmpRequest *req, bool ok,
                                     GError *err)
{
    QmpDeferred *d = req->deferred;
    json_object *resp = g_steal_pointer(&d->resp);

    d->in_handler = false;
    if (!ok) {
        json_object_put(resp);
        resp = qmp_error_response(qmp_error_class(err), err->message,
                                  req->id, req->has_id);
    }
    if (resp) {
        deferred_free(d);
        return resp;
    }
    trace_qmp_command_deferred(req->def->name);
    if (!req->sess->send_reply) {
        d->sess = NULL;         /* its reply will be dropped */
        return qmp_error_response("GenericError", "this command replies "
                                  "later, and this session cannot receive "
                                  "a later reply", req->id, req->has_id);
    }
    req->sess->pending = d;
    return NULL;
}

json_object *qmp_dispatch(QmpSession *s, json_object *req)
{
    g_autoptr(GError) err = NULL;
    QmpRequest run = { .sess = s };
    const char *name = NULL;
    json_object *args = NULL, *ret;
    g_autoptr(json_object) empty = NULL;
    bool ok;

    g_assert(!s->pending);
    if (!json_object_is_type(req, json_type_object)) {
        return qmp_error_response("GenericError",
                                  "QMP input must be a JSON object", NULL,
                                  false);
    }
    run.has_id = json_object_object_get_ex(req, "id", &run.id);
    if (!check_request(req, &name, &args, &err)) {
        return qmp_error_response("GenericError", err->message, run.id,
                                  run.has_id);
    }
    trace_qmp_command(name);
    if (!s->negotiated && strcmp(name, "qmp_capabilities") != 0) {
        return qmp_error_response("CommandNotFound",
                                  "Expecting capabilities negotiation with "
                                  "'qmp_capabilities'", run.id, run.has_id);
    }
    if (s->negotiated && strcmp(name, "qmp_capabilities") == 0) {
        return qmp_error_response("CommandNotFound",
                                  "Capabilities negotiation is already "
                                  "complete, command ignored", run.id,
                                  run.has_id);
    }
    run.def = qapi_command_find(name);
    if (!run.def) {
        g_autofree char *msg = g_strdup_printf("The command %s has not been "
                                               "found", name);

        return qmp_error_response("CommandNotFound", msg, run.id,
                                  run.has_id);
    }
    if (!args) {
        args = empty = json_object_new_object();
    }
    ok = qapi_check(run.def->args, args, "Parameter", &err) &&
         call_handler(&run, args, &ret, &err);
    if (!ok) {
        trace_qmp_command_error(name, err->message);
    }
    if (run.deferred) {
        return deferred_started(&run, ok, err);
    }
    if (!ok) {
        return qmp_error_response(qmp_error_class(err), err->message, run.id,
                                  run.has_id);
    }
    if (strcmp(name, "qmp_capabilities") == 0) {
        s->negotiated = true;
    }
    return return_response(run.def, ret, run.id, run.has_id);
}
