/*
 * Fuzz target: the untrusted text the control path parses before any
 * handler runs.  The input is split at its first NUL:
 *
 *   before   key=value text, as on the command line (-device, -blockdev)
 *            and in iovd-ctl: keyval_parse, then converted to the argument
 *            object of the command its first byte picks (as iovd-ctl
 *            does), and back to key=value (as device_add does)
 *   after    a QMP request as the monitor reads it (json-c with the
 *            monitor's depth limit and UTF-8 check): its command looked
 *            up and its arguments checked against the schema
 */
#include "util/osdep.h"
#include "util/keyval.h"
#include "qapi/schema.h"

#include <json-c/json.h>

static void fuzz_keyval(const char *s, uint8_t pick)
{
    const QapiCommandDef *cmd = &qapi_commands[pick % qapi_n_commands];
    g_autoptr(Keyval) kv = NULL;
    g_autoptr(Keyval) back = keyval_new();
    json_object *args;
    GError *err = NULL;

    kv = keyval_parse(s, "driver", &err);
    if (!kv) {
        g_clear_error(&err);
        return;
    }
    args = qapi_keyval_to_json(cmd->args, kv, &err);
    g_clear_error(&err);
    if (args) {
        if (qapi_check(cmd->args, args, "Parameter", &err)) {
            qapi_json_to_keyval(args, back, NULL, &err);
        }
        g_clear_error(&err);
        json_object_put(args);
    }
    keyval_check_unused(kv, &err);
    g_clear_error(&err);
}

static void fuzz_request(const char *s, size_t len)
{
    json_tokener *tok = json_tokener_new_ex(64);
    json_object *req, *exec, *args;
    const QapiCommandDef *cmd;
    GError *err = NULL;

    json_tokener_set_flags(tok, JSON_TOKENER_VALIDATE_UTF8);
    req = json_tokener_parse_ex(tok, s, len);
    json_tokener_free(tok);
    if (!req) {
        return;
    }
    if (json_object_is_type(req, json_type_object) &&
        json_object_object_get_ex(req, "execute", &exec) &&
        json_object_is_type(exec, json_type_string) &&
        (cmd = qapi_command_find(json_object_get_string(exec)))) {
        if (!json_object_object_get_ex(req, "arguments", &args)) {
            args = NULL;
        }
        if (args && qapi_check(cmd->args, args, "Parameter", &err)) {
            g_autoptr(Keyval) kv = keyval_new();

            qapi_json_to_keyval(args, kv, NULL, &err);
        }
        g_clear_error(&err);
    }
    json_object_put(req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autofree char *s = g_strndup((const char *)data, size);
    size_t klen = strlen(s);

    if (!size) {
        return 0;
    }
    fuzz_keyval(s, data[0]);
    if (klen + 1 < size) {
        fuzz_request((const char *)data + klen + 1, size - klen - 1);
    }
    return 0;
}
