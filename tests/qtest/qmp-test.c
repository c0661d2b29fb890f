/*
 * QMP monitor tests: protocol conformance (greeting, negotiation, ids,
 * errors, events, CRLF, several clients and monitors), every command with
 * its success and error paths, malformed and hostile input, and the schema
 * itself (every command and event documented, examples that match).
 *
 * Every test gets a fresh daemon with a monitor and one pci-testdev "t0";
 * the daemon runs with IOVD_QMP_STRICT=1, so a handler or event that does
 * not match the schema aborts it and the test fails.
 */
#include "util/osdep.h"

#include <check.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>

#include "qapi/schema.h"
#include "hw/misc/pci-testdev-regs.h"
#include "hw/pci/pci-regs.h"
#include "tests/qtest/libqos/qos-check.h"
#include "tests/qtest/libqos/iovd-proc.h"
#include "tests/qtest/libqos/qmp-client.h"
#include "tests/qtest/libqos/vfu-client.h"

static IovdProc *proc;
static char *qmp_path;
static char *t0_path;
static QmpClient *qmp;

/* ---- fixtures ---- */

static void start_daemon_args(const char *first, ...)
{
    va_list ap;

    qos_check_init();
    proc = iovd_proc_new();
    qmp_path = iovd_proc_path(proc, "qmp.sock");
    t0_path = iovd_proc_path(proc, "t0.sock");
    iovd_proc_add_args(proc, "-qmp", NULL);
    iovd_proc_add_argf(proc, "unix:%s,server=on,wait=off", qmp_path);
    iovd_proc_add_args(proc, "-device", NULL);
    iovd_proc_add_argf(proc, "pci-testdev,id=t0,socket=%s", t0_path);
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *)) {
        iovd_proc_add_argf(proc, "%s", a);
    }
    va_end(ap);
    iovd_proc_start(proc);
}

static void setup(void)
{
    start_daemon_args(NULL);
    qmp = qmp_client_open(qmp_path);
}

static void teardown(void)
{
    g_clear_pointer(&qmp, qmp_client_free);
    if (proc) {
        iovd_proc_stop(proc);
        g_clear_pointer(&proc, iovd_proc_free);
    }
    g_clear_pointer(&qmp_path, g_free);
    g_clear_pointer(&t0_path, g_free);
}

/* The daemon answers a fresh client: it is alive and not wedged. */
static void assert_daemon_healthy(void)
{
    g_autoptr(QmpClient) q = qmp_client_open(qmp_path);
    json_object *ret = qmp_ok(q, "query-status", NULL);

    ck_assert(json_object_is_type(qmp_get(ret, "running"),
                                  json_type_boolean));
    json_object_put(ret);
    iovd_proc_assert_alive(proc);
}

static bool contains(const char *haystack, const char *needle)
{
    return strstr(haystack, needle) != NULL;
}

#define assert_contains(s, sub)                                         \
    ck_assert_msg(contains((s), (sub)), "'%s' does not contain '%s'",   \
                  (s), (sub))

/* ---- protocol conformance ---- */

START_TEST(test_greeting)
{
    g_autoptr(QmpClient) q = qmp_client_connect(qmp_path);
    json_object *g = qmp_get(qmp_client_greeting(q), "QMP");
    json_object *ver = qmp_get(g, "version");
    json_object *caps = qmp_get(g, "capabilities");
    json_object *qv = qmp_get(ver, "qemu");
    json_object *ret;

    ck_assert_int_eq(json_object_object_length(qmp_client_greeting(q)), 1);
    ck_assert(qmp_get_int(qv, "major") >= 0);
    ck_assert(qmp_get_int(qv, "minor") >= 0);
    ck_assert(qmp_get_int(qv, "micro") >= 0);
    ck_assert(g_str_has_prefix(qmp_get_str(ver, "package"), "iovd "));
    ck_assert(json_object_is_type(caps, json_type_array));
    ck_assert_int_eq(json_object_array_length(caps), 0);

    /* query-version answers the greeting's version object. */
    qmp_client_negotiate(q);
    ret = qmp_ok(q, "query-version", NULL);
    ck_assert_str_eq(qmp_json(ret), qmp_json(ver));
    json_object_put(ret);
}
END_TEST

START_TEST(test_negotiation)
{
    g_autoptr(QmpClient) q = qmp_client_connect(qmp_path);
    g_autofree char *e1 = NULL, *e2 = NULL, *e3 = NULL, *e4 = NULL;
    g_autofree char *e5 = NULL;

    /* Only qmp_capabilities before negotiation. */
    e1 = qmp_err(q, "CommandNotFound", "query-status", NULL);
    assert_contains(e1, "qmp_capabilities");
    e2 = qmp_err(q, "CommandNotFound", "no-such-command", NULL);
    /* Arguments are checked: the greeting offered no capability. */
    e3 = qmp_err(q, "GenericError", "qmp_capabilities", "{'enable': ['oob']}");
    assert_contains(e3, "oob");
    e4 = qmp_err(q, "GenericError", "qmp_capabilities",
                 "{'enable': ['bogus']}");
    assert_contains(e4, "enable[0]");
    qmp_client_negotiate(q);
    /* Once: afterwards it is no longer a command. */
    e5 = qmp_err(q, "CommandNotFound", "qmp_capabilities", NULL);
    json_object_put(qmp_ok(q, "query-status", NULL));
}
END_TEST

START_TEST(test_negotiation_empty_args)
{
    g_autoptr(QmpClient) q = qmp_client_connect(qmp_path);

    /* python's qemu.qmp sends "arguments": {} ; "enable": [] is fine. */
    json_object_put(qmp_ok(q, "qmp_capabilities", "{'enable': []}"));
    json_object_put(qmp_ok(q, "query-status", "{}"));
}
END_TEST

START_TEST(test_no_events_before_negotiation)
{
    g_autoptr(QmpClient) a = qmp_client_connect(qmp_path);
    json_object *ev, *resp;

    json_object_put(qmp_ok(qmp, "stop", NULL));
    ev = qmp_client_wait_event(qmp, "STOP", 0);
    json_object_put(ev);
    /* The client still negotiating saw nothing. */
    ck_assert_ptr_null(qmp_client_recv(a, 300));
    resp = qmp_client_execute(a, "qmp_capabilities", NULL);
    ck_assert(json_object_object_get_ex(resp, "return", NULL));
    json_object_put(resp);
    ck_assert_uint_eq(qmp_client_event_count(a), 0);
    /* Now it gets events. */
    json_object_put(qmp_ok(qmp, "cont", NULL));
    json_object_put(qmp_client_wait_event(a, "RESUME", 0));
    json_object_put(qmp_client_wait_event(qmp, "RESUME", 0));
}
END_TEST

/* Send @line raw and return the next message (a response). */
static json_object *raw_exchange(QmpClient *q, const char *line)
{
    qmp_client_send_str(q, line);
    return qmp_client_recv_wait(q);
}

START_TEST(test_id_echo)
{
    static const char *const ids[] = {
        "1", "-7", "\"abc\"", "{\"a\":[1,2,{\"b\":null}]}", "[1,\"x\"]",
        "null", "true", "1.5", "\"\\u00e9t\\u00e9\"", "18446744073709551615",
    };

    for (unsigned i = 0; i < ARRAY_SIZE(ids); i++) {
        g_autofree char *ok = g_strdup_printf(
            "{\"execute\":\"query-status\",\"id\":%s}\n", ids[i]);
        g_autofree char *bad = g_strdup_printf(
            "{\"id\":%s,\"execute\":\"nope\"}\n", ids[i]);
        json_object *want = json_tokener_parse(ids[i]);
        json_object *r1 = raw_exchange(qmp, ok);
        json_object *r2 = raw_exchange(qmp, bad);
        json_object *id;

        ck_assert_msg(json_object_object_get_ex(r1, "id", &id),
                      "no id in %s", qmp_json(r1));
        ck_assert_msg(json_object_equal(id, want), "id %s came back as %s",
                      ids[i], qmp_json(id));
        ck_assert(json_object_object_get_ex(r1, "return", NULL));
        ck_assert(json_object_object_get_ex(r2, "id", &id));
        ck_assert(json_object_equal(id, want));
        ck_assert_str_eq(qmp_get_str(qmp_get(r2, "error"), "class"),
                         "CommandNotFound");
        json_object_put(r1);
        json_object_put(r2);
        json_object_put(want);
    }
    /* Without an id, none comes back. */
    {
        json_object *r = raw_exchange(qmp, "{\"execute\":\"query-status\"}");

        ck_assert(!json_object_object_get_ex(r, "id", NULL));
        json_object_put(r);
    }
}
END_TEST

START_TEST(test_crlf_and_ascii)
{
    int fd = qmp_client_fd(qmp);
    char buf[4096];
    ssize_t n;
    size_t len = 0;

    /* The client library fails on any line not ending in CRLF; look at
     * the raw bytes once as well, with a non-ASCII string echoed back. */
    qmp_client_send_str(qmp, "{\"execute\":\"query-status\","
                        "\"id\":\"\xc3\xa9\xf0\x9f\x98\x80\"}\n");
    while (len < 4 || memcmp(buf + len - 2, "\r\n", 2) != 0) {
        qos_poll_fd(fd, POLLIN, qos_deadline(QOS_TIMEOUT_MS));
        n = read(fd, buf + len, sizeof(buf) - 1 - len);
        ck_assert_int_gt(n, 0);
        len += n;
    }
    buf[len] = '\0';
    for (size_t i = 0; i < len; i++) {
        ck_assert_msg((unsigned char)buf[i] < 0x80, "non-ASCII output: %s",
                      buf);
    }
    assert_contains(buf, "\"id\":\"\\u00e9\\ud83d\\ude00\"");
    ck_assert_msg(memchr(buf, '\n', len) == buf + len - 1,
                  "one message per line: %s", buf);
}
END_TEST

START_TEST(test_request_errors)
{
    static const struct {
        const char *req;
        const char *cls;
        const char *desc;
        bool has_id;
    } cases[] = {
        { "{\"id\":1}", "GenericError", "lacks member 'execute'", true },
        { "{\"execute\":42,\"id\":2}", "GenericError", "must be a string",
          true },
        { "{\"execute\":\"query-status\",\"arguments\":[],\"id\":3}",
          "GenericError", "'arguments' must be an object", true },
        { "{\"execute\":\"query-status\",\"bogus\":1,\"id\":4}",
          "GenericError", "'bogus' is unexpected", true },
        { "{\"exec-oob\":\"query-status\",\"id\":5}", "GenericError",
          "out-of-band", true },
        { "{\"execute\":\"query-status\",\"exec-oob\":\"x\",\"id\":6}",
          "GenericError", "both", true },
        { "{\"execute\":\"no-such-thing\",\"id\":7}", "CommandNotFound",
          "no-such-thing", true },
        { "[1,2]", "GenericError", "must be a JSON object", false },
        { "\"query-status\"", "GenericError", "must be a JSON object",
          false },
        { "42 ", "GenericError", "must be a JSON object", false },
        { "null ", "GenericError", "must be a JSON object", false },
    };

    for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
        g_autofree char *line = g_strdup_printf("%s\n", cases[i].req);
        json_object *r = raw_exchange(qmp, line);
        json_object *err = qmp_get(r, "error");

        ck_assert_msg(!json_object_object_get_ex(r, "return", NULL),
                      "%s succeeded", cases[i].req);
        ck_assert_str_eq(qmp_get_str(err, "class"), cases[i].cls);
        assert_contains(qmp_get_str(err, "desc"), cases[i].desc);
        ck_assert_int_eq(json_object_object_get_ex(r, "id", NULL),
                         cases[i].has_id);
        json_object_put(r);
    }
    json_object_put(qmp_ok(qmp, "query-status", NULL));
}
END_TEST

START_TEST(test_single_quotes)
{
    /* qmp-spec: 'single-quoted' strings are accepted as an extension. */
    json_object *r = raw_exchange(qmp, "{'execute': 'query-status', "
                                  "'id': 'sq'}\n");

    ck_assert_str_eq(qmp_get_str(r, "id"), "sq");
    ck_assert(json_object_object_get_ex(r, "return", NULL));
    json_object_put(r);
}
END_TEST

START_TEST(test_several_clients)
{
    enum { N = 12 };
    QmpClient *c[N];

    for (int i = 0; i < N; i++) {
        c[i] = qmp_client_open(qmp_path);
    }
    /* Interleaved: each gets its own replies. */
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            json_object_put(qmp_ok(c[i], "query-status", NULL));
        }
    }
    json_object_put(qmp_ok(c[3], "stop", NULL));
    for (int i = 0; i < N; i++) {
        json_object_put(qmp_client_wait_event(c[i], "STOP", 0));
    }
    json_object_put(qmp_client_wait_event(qmp, "STOP", 0));
    /* One leaving does not disturb the others. */
    qmp_client_free(c[5]);
    c[5] = NULL;
    json_object_put(qmp_ok(c[6], "cont", NULL));
    for (int i = 0; i < N; i++) {
        if (c[i]) {
            json_object_put(qmp_client_wait_event(c[i], "RESUME", 0));
            qmp_client_free(c[i]);
        }
    }
}
END_TEST

START_TEST(test_pipelined)
{
    enum { N = 2000 };
    g_autoptr(GString) burst = g_string_new(NULL);

    for (int i = 0; i < N; i++) {
        g_string_append_printf(burst, "{\"execute\":\"query-status\","
                               "\"id\":%d}\r\n", i);
    }
    qmp_client_send_raw(qmp, burst->str, burst->len);
    for (int i = 0; i < N; i++) {
        json_object *r = qmp_client_recv_wait(qmp);

        ck_assert_int_eq(qmp_get_int(r, "id"), i);
        json_object_put(r);
    }
}
END_TEST

START_TEST(test_byte_at_a_time)
{
    const char *req = "{\"execute\": \"query-status\", \"id\": \"slow\"}";
    json_object *r;

    for (const char *p = req; *p; p++) {
        qmp_client_send_raw(qmp, p, 1);
        if ((p - req) % 8 == 0) {
            g_usleep(1000);
        }
    }
    r = qmp_client_recv_wait(qmp);
    ck_assert_str_eq(qmp_get_str(r, "id"), "slow");
    json_object_put(r);
}
END_TEST

/* ---- core commands ---- */

START_TEST(test_query_commands)
{
    json_object *ret = qmp_ok(qmp, "query-commands", NULL);
    g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);

    ck_assert_int_eq(json_object_array_length(ret), qapi_n_commands);
    for (size_t i = 0; i < json_object_array_length(ret); i++) {
        g_hash_table_add(seen, (gpointer)qmp_get_str(
                             json_object_array_get_idx(ret, i), "name"));
    }
    for (unsigned i = 0; i < qapi_n_commands; i++) {
        ck_assert_msg(g_hash_table_contains(seen, qapi_commands[i].name),
                      "query-commands lacks %s", qapi_commands[i].name);
    }
    ck_assert(g_hash_table_contains(seen, "device_add"));
    ck_assert(g_hash_table_contains(seen, "query-pci"));
    json_object_put(ret);
}
END_TEST

START_TEST(test_query_qmp_schema)
{
    json_object *ret = qmp_ok(qmp, "query-qmp-schema", NULL);
    g_autoptr(GHashTable) by_name = g_hash_table_new(g_str_hash,
                                                     g_str_equal);
    unsigned commands = 0, events = 0;

    for (size_t i = 0; i < json_object_array_length(ret); i++) {
        json_object *e = json_object_array_get_idx(ret, i);

        g_hash_table_insert(by_name, (gpointer)qmp_get_str(e, "name"), e);
    }
    for (size_t i = 0; i < json_object_array_length(ret); i++) {
        json_object *e = json_object_array_get_idx(ret, i);
        const char *meta = qmp_get_str(e, "meta-type");
        json_object *v;

        if (!strcmp(meta, "command")) {
            commands++;
            ck_assert(g_hash_table_contains(by_name,
                                            qmp_get_str(e, "arg-type")));
            ck_assert(g_hash_table_contains(by_name,
                                            qmp_get_str(e, "ret-type")));
            ck_assert(!qmp_get_bool(e, "allow-oob"));
        } else if (!strcmp(meta, "event")) {
            events++;
            ck_assert(g_hash_table_contains(by_name,
                                            qmp_get_str(e, "arg-type")));
        } else if (!strcmp(meta, "object")) {
            v = qmp_get(e, "members");
            for (size_t j = 0; j < json_object_array_length(v); j++) {
                ck_assert(g_hash_table_contains(by_name, qmp_get_str(
                    json_object_array_get_idx(v, j), "type")));
            }
        } else if (!strcmp(meta, "array")) {
            ck_assert(g_hash_table_contains(by_name,
                                            qmp_get_str(e, "element-type")));
        } else if (!strcmp(meta, "enum")) {
            json_object *values = qmp_get(e, "values");

            /* members (QEMU's) and values (older clients) say the same */
            v = qmp_get(e, "members");
            ck_assert_int_gt(json_object_array_length(values), 0);
            ck_assert_int_eq(json_object_array_length(v),
                             json_object_array_length(values));
            for (size_t j = 0; j < json_object_array_length(v); j++) {
                ck_assert_str_eq(qmp_get_str(json_object_array_get_idx(v, j),
                                             "name"),
                                 json_object_get_string(
                                     json_object_array_get_idx(values, j)));
            }
        } else {
            ck_assert_str_eq(meta, "builtin");
            qmp_get_str(e, "json-type");
        }
    }
    ck_assert_uint_eq(commands, qapi_n_commands);
    ck_assert_uint_eq(events, qapi_n_events);
    ck_assert(g_hash_table_contains(by_name, "SHUTDOWN"));
    json_object_put(ret);
}
END_TEST

/* Every command and event has its doc and an example that matches. */
static void check_example(const char *name, const char *example,
                          const QapiType *args, const QapiType *ret)
{
    json_object *ex = json_tokener_parse(example);

    ck_assert_msg(ex && json_object_array_length(ex) > 0,
                  "%s: example is not a non-empty array", name);
    for (size_t i = 0; i < json_object_array_length(ex); i++) {
        json_object *step = json_object_array_get_idx(ex, i);
        json_object *msg, *v;
        GError *err = NULL;

        if (json_object_object_get_ex(step, "->", &msg)) {
            ck_assert_str_eq(qmp_get_str(msg, "execute"), name);
            if (json_object_object_get_ex(msg, "arguments", &v)) {
                ck_assert_msg(qapi_check(args, v, "Parameter", &err),
                              "%s example: %s", name, err->message);
            }
        } else {
            msg = qmp_get(step, "<-");
            if (json_object_object_get_ex(msg, "return", &v) && ret) {
                ck_assert_msg(qapi_check(ret, v, "Member", &err),
                              "%s example return: %s", name, err->message);
            }
            if (json_object_object_get_ex(msg, "event", &v)) {
                const QapiEventDef *ev =
                    qapi_event_find(json_object_get_string(v));
                json_object *data;

                ck_assert_msg(ev != NULL, "%s example: unknown event", name);
                if (ev->data && json_object_object_get_ex(msg, "data",
                                                          &data)) {
                    ck_assert_msg(qapi_check(ev->data, data, "Member", &err),
                                  "%s example event: %s", name,
                                  err->message);
                }
            }
        }
    }
    json_object_put(ex);
}

START_TEST(test_schema_docs)
{
    for (unsigned i = 0; i < qapi_n_commands; i++) {
        const QapiCommandDef *c = &qapi_commands[i];

        ck_assert_msg(c->doc && *c->doc, "command %s has no doc in the "
                      "schema", c->name);
        ck_assert_msg(c->example && *c->example, "command %s has no example "
                      "in the schema", c->name);
        check_example(c->name, c->example, c->args, c->ret);
        ck_assert_ptr_eq(qapi_command_find(c->name), c);
    }
    for (unsigned i = 0; i < qapi_n_events; i++) {
        const QapiEventDef *e = &qapi_events[i];

        ck_assert_msg(e->doc && *e->doc, "event %s has no doc", e->name);
        ck_assert_msg(e->example && *e->example, "event %s has no example",
                      e->name);
        check_example(e->name, e->example, NULL, NULL);
    }
    /* The events the other modules emit are described. */
    ck_assert_ptr_nonnull(qapi_event_find("VFU_CLIENT_CONNECTED"));
    ck_assert_ptr_nonnull(qapi_event_find("VFU_CLIENT_HANGUP"));
    ck_assert_ptr_nonnull(qapi_event_find("BLOCK_IO_ERROR"));
    ck_assert_ptr_nonnull(qapi_event_find("NIC_RX_FILTER_CHANGED"));
    ck_assert_ptr_nonnull(qapi_event_find("DEVICE_DELETED"));
}
END_TEST

START_TEST(test_keyval_to_json)
{
    const QapiCommandDef *def = qapi_command_find("blockdev-add");
    g_autoptr(Keyval) kv = keyval_parse("driver=file,node-name=d0,"
                                        "read-only=on,cache.direct=off,"
                                        "size=1M,server.path=/x", NULL, NULL);
    g_autoptr(GError) err = NULL;
    json_object *o = qapi_keyval_to_json(def->args, kv, &err);

    ck_assert_msg(o, "%s", err ? err->message : "");
    ck_assert(qmp_get_bool(o, "read-only"));
    ck_assert(!qmp_get_bool(qmp_get(o, "cache"), "direct"));
    ck_assert_int_eq(qmp_get_int(o, "size"), 1 << 20);
    /* A member the schema declares as an object nests, as QEMU's does. */
    ck_assert_str_eq(qmp_get_str(qmp_get(o, "server"), "path"), "/x");
    ck_assert(qapi_check(def->args, o, "Parameter", &err));
    json_object_put(o);
}
END_TEST

/*
 * A key that is both a value and a parent ("server.a=1,server.a.b=2", in
 * either order) under a member of type any is an error, not an assertion
 * failure in json-c (found by fuzz-qmp-args).
 */
START_TEST(test_keyval_to_json_conflict)
{
    static const char *const texts[] = {
        "driver=nbd,server.a=1,server.a.b=2",
        "driver=nbd,server.a.b=2,server.a=1",
    };
    const QapiCommandDef *def = qapi_command_find("blockdev-add");

    for (size_t i = 0; i < G_N_ELEMENTS(texts); i++) {
        g_autoptr(Keyval) kv = keyval_parse(texts[i], NULL, NULL);
        g_autoptr(GError) err = NULL;

        ck_assert_ptr_nonnull(kv);
        ck_assert_ptr_null(qapi_keyval_to_json(def->args, kv, &err));
        ck_assert_msg(err && strstr(err->message, "conflicts with an earlier "
                                    "key"), "%s", texts[i]);
    }
}
END_TEST

START_TEST(test_status_stop_cont)
{
    json_object *st = qmp_ok(qmp, "query-status", NULL);
    json_object *ev;

    ck_assert(qmp_get_bool(st, "running"));
    ck_assert_str_eq(qmp_get_str(st, "status"), "running");
    json_object_put(st);

    json_object_put(qmp_ok(qmp, "stop", NULL));
    ev = qmp_client_wait_event(qmp, "STOP", 0);
    ck_assert(!json_object_object_get_ex(ev, "data", NULL));
    json_object_put(ev);
    st = qmp_ok(qmp, "query-status", NULL);
    ck_assert(!qmp_get_bool(st, "running"));
    ck_assert_str_eq(qmp_get_str(st, "status"), "paused");
    json_object_put(st);
    /* Stopping again changes nothing and says nothing. */
    json_object_put(qmp_ok(qmp, "stop", NULL));
    ck_assert_ptr_null(qmp_client_poll_event(qmp, "STOP", 200));

    /* A device added while paused works once resumed. */
    json_object_put(qmp_okf(qmp, "device_add", "{'driver': 'pci-testdev', "
                            "'id': 't1', 'socket': '%s/t1.sock'}",
                            iovd_proc_tmpdir(proc)));
    json_object_put(qmp_ok(qmp, "cont", NULL));
    json_object_put(qmp_client_wait_event(qmp, "RESUME", 0));
    st = qmp_ok(qmp, "query-status", NULL);
    ck_assert(qmp_get_bool(st, "running"));
    json_object_put(st);
    json_object_put(qmp_ok(qmp, "cont", NULL));
    ck_assert_ptr_null(qmp_client_poll_event(qmp, "RESUME", 200));
}
END_TEST

/* A node nobody uses shows in query-named-block-nodes (and query-block). */
START_TEST(test_named_block_nodes)
{
    json_object *ret, *found = NULL;

    json_object_put(qmp_ok(qmp, "blockdev-add", "{'driver': 'null', "
                           "'node-name': 'spare', 'size': 4096}"));
    ret = qmp_ok(qmp, "query-named-block-nodes", "{'flat': true}");
    for (size_t i = 0; i < json_object_array_length(ret); i++) {
        json_object *n = json_object_array_get_idx(ret, i);

        if (!strcmp(qmp_get_str(n, "node-name"), "spare")) {
            found = n;
        }
    }
    ck_assert_ptr_nonnull(found);
    ck_assert_str_eq(qmp_get_str(found, "drv"), "null");
    ck_assert_int_eq(qmp_get_int(qmp_get(found, "image"), "virtual-size"),
                     4096);
    json_object_put(ret);
    json_object_put(qmp_ok(qmp, "blockdev-del", "{'node-name': 'spare'}"));
}
END_TEST

/* ---- query-stats ---- */

/* The schema of @provider for @target in query-stats-schemas' @schemas. */
static json_object *stats_schema_of(json_object *schemas,
                                    const char *provider, const char *target)
{
    json_object *found = NULL;

    for (size_t i = 0; i < json_object_array_length(schemas); i++) {
        json_object *s = json_object_array_get_idx(schemas, i);

        if (!strcmp(qmp_get_str(s, "provider"), provider) &&
            !strcmp(qmp_get_str(s, "target"), target)) {
            ck_assert_msg(!found, "two schemas for %s/%s", provider, target);
            found = s;
        }
    }
    return found;
}

static bool schema_has(json_object *schema, const char *name)
{
    json_object *stats = qmp_get(schema, "stats");

    for (size_t i = 0; i < json_object_array_length(stats); i++) {
        if (!strcmp(qmp_get_str(json_object_array_get_idx(stats, i),
                                "name"), name)) {
            return true;
        }
    }
    return false;
}

/* Every value query-stats gives for @target is declared in @schemas. */
static unsigned check_stats_declared(json_object *schemas, const char *target)
{
    json_object *ret = qmp_okf(qmp, "query-stats", "{'target': '%s'}",
                               target);
    unsigned n = json_object_array_length(ret);

    for (unsigned i = 0; i < n; i++) {
        json_object *r = json_object_array_get_idx(ret, i);
        json_object *schema = stats_schema_of(schemas,
                                              qmp_get_str(r, "provider"),
                                              target);
        json_object *stats = qmp_get(r, "stats");

        ck_assert_msg(schema, "no schema for %s", qmp_json(r));
        ck_assert(g_str_has_prefix(qmp_get_str(r, "qom-path"),
                                   "/machine/peripheral/"));
        ck_assert_uint_gt(json_object_array_length(stats), 0);
        for (size_t k = 0; k < json_object_array_length(stats); k++) {
            const char *name = qmp_get_str(json_object_array_get_idx(stats,
                                                                     k),
                                           "name");

            ck_assert_msg(schema_has(schema, name), "%s not declared in %s",
                          name, qmp_json(schema));
        }
    }
    json_object_put(ret);
    return n;
}

START_TEST(test_query_stats)
{
    g_autofree char *nvme_sock = iovd_proc_path(proc, "n0.sock");
    g_autofree char *vblk_sock = iovd_proc_path(proc, "vb0.sock");
    g_autofree char *e1000_sock = iovd_proc_path(proc, "e0.sock");
    g_autofree char *vnet_sock = iovd_proc_path(proc, "vn0.sock");
    static const char *const declared[][2] = {
        { "vfio-user", "device" }, { "nvme", "device" }, { "nvme", "queue" },
        { "virtio", "queue" }, { "net", "device" }, { "e1000", "device" },
        { "e1000", "queue" },
    };
    json_object *schemas, *ret;
    g_autofree char *err = NULL;

    json_object_put(qmp_ok(qmp, "blockdev-add", "{'driver': 'null', "
                           "'node-name': 'd0', 'size': 1048576}"));
    json_object_put(qmp_ok(qmp, "blockdev-add", "{'driver': 'null', "
                           "'node-name': 'd1', 'size': 1048576}"));
    json_object_put(qmp_ok(qmp, "netdev_add", "{'type': 'user', 'id': 'u0'}"));
    json_object_put(qmp_ok(qmp, "netdev_add", "{'type': 'user', 'id': 'u1'}"));
    json_object_put(qmp_okf(qmp, "device_add", "{'driver': 'nvme', 'id': "
                            "'n0', 'drive': 'd0', 'socket': '%s'}",
                            nvme_sock));
    json_object_put(qmp_okf(qmp, "device_add", "{'driver': 'virtio-blk-pci',"
                            " 'id': 'vb0', 'drive': 'd1', 'socket': '%s'}",
                            vblk_sock));
    json_object_put(qmp_okf(qmp, "device_add", "{'driver': 'e1000', 'id': "
                            "'e0', 'netdev': 'u0', 'socket': '%s'}",
                            e1000_sock));
    json_object_put(qmp_okf(qmp, "device_add", "{'driver': "
                            "'virtio-net-pci', 'id': 'vn0', 'netdev': 'u1', "
                            "'socket': '%s'}", vnet_sock));

    /* Each provider and target declared once (strict mode checks the
     * shape against the QMP schema). */
    schemas = qmp_ok(qmp, "query-stats-schemas", NULL);
    ck_assert_uint_eq(json_object_array_length(schemas),
                      ARRAY_SIZE(declared));
    for (unsigned i = 0; i < ARRAY_SIZE(declared); i++) {
        ck_assert_msg(stats_schema_of(schemas, declared[i][0],
                                      declared[i][1]),
                      "no schema for %s/%s", declared[i][0], declared[i][1]);
    }
    /* Every reported value is declared; every device reports something. */
    ck_assert_uint_eq(check_stats_declared(schemas, "device"),
                      5 /* vfio-user */ + 1 /* nvme */ + 2 /* net */ +
                      1 /* e1000 */);
    /* Queues: virtio-blk 1, virtio-net 3 (rx, tx, ctrl), e1000 2; the
     * NVMe controller is not enabled, so it has none. */
    ck_assert_uint_eq(check_stats_declared(schemas, "queue"), 6);
    json_object_put(schemas);

    /* A provider filter, and names within it. */
    ret = qmp_ok(qmp, "query-stats-schemas", "{'provider': 'virtio'}");
    ck_assert_uint_eq(json_object_array_length(ret), 1);
    json_object_put(ret);
    ret = qmp_ok(qmp, "query-stats", "{'target': 'device', 'providers': "
                 "[{'provider': 'vfio-user', 'names': ['clients']}]}");
    ck_assert_uint_eq(json_object_array_length(ret), 5);
    for (unsigned i = 0; i < 5; i++) {
        json_object *stats = qmp_get(json_object_array_get_idx(ret, i),
                                     "stats");

        ck_assert_uint_eq(json_object_array_length(stats), 1);
        ck_assert_str_eq(qmp_get_str(json_object_array_get_idx(stats, 0),
                                     "name"), "clients");
    }
    json_object_put(ret);
    /* A name nobody reports: no result at all. */
    ret = qmp_ok(qmp, "query-stats", "{'target': 'device', 'providers': "
                 "[{'provider': 'nvme', 'names': ['nope']}]}");
    ck_assert_uint_eq(json_object_array_length(ret), 0);
    json_object_put(ret);
    /* Devices by id or path; each once. */
    ret = qmp_ok(qmp, "query-stats", "{'target': 'queue', 'devices': "
                 "['e0', '/machine/peripheral/e0']}");
    ck_assert_uint_eq(json_object_array_length(ret), 2);
    json_object_put(ret);
    err = qmp_err(qmp, "GenericError", "query-stats", "{'target': 'vm'}");
    g_free(err);
    err = qmp_err(qmp, "GenericError", "query-stats",
                  "{'target': 'device', 'providers': [{'provider': 'kvm'}]}");
    g_free(err);
    err = qmp_err(qmp, "DeviceNotFound", "query-stats",
                  "{'target': 'device', 'devices': ['t0', 'nope']}");
}
END_TEST

/* The node of @name in query-blockstats' answer @ret. */
static json_object *stats_of(json_object *ret, const char *name)
{
    for (size_t i = 0; i < json_object_array_length(ret); i++) {
        json_object *n = json_object_array_get_idx(ret, i);

        if (!strcmp(qmp_get_str(n, "node-name"), name)) {
            return qmp_get(n, "stats");
        }
    }
    ck_abort_msg("node %s not in query-blockstats", name);
    return NULL;
}

START_TEST(test_latency_histograms)
{
    json_object *ret, *st, *h;
    g_autofree char *e1 = NULL, *e2 = NULL, *e3 = NULL;

    json_object_put(qmp_ok(qmp, "blockdev-add", "{'driver': 'null', "
                           "'node-name': 'hn'}"));
    json_object_put(qmp_ok(qmp, "block-latency-histogram-set",
                           "{'id': 'hn', 'boundaries': [1000, 1000000], "
                           "'boundaries-flush': [5]}"));
    ret = qmp_ok(qmp, "query-blockstats", NULL);
    st = stats_of(ret, "hn");
    h = qmp_get(st, "rd_latency_histogram");
    ck_assert_int_eq(json_object_array_length(qmp_get(h, "boundaries")), 2);
    ck_assert_int_eq(json_object_array_length(qmp_get(h, "bins")), 3);
    ck_assert_int_eq(json_object_get_int64(json_object_array_get_idx(
        qmp_get(h, "boundaries"), 1)), 1000000);
    ck_assert(json_object_object_get_ex(st, "wr_latency_histogram", NULL));
    h = qmp_get(st, "flush_latency_histogram");
    ck_assert_int_eq(json_object_array_length(qmp_get(h, "bins")), 2);
    json_object_put(ret);

    e1 = qmp_err(qmp, "GenericError", "block-latency-histogram-set",
                 "{'id': 'hn', 'boundaries-read': [10, 10]}");
    ck_assert_msg(strstr(e1, "increase strictly"), "%s", e1);
    e2 = qmp_err(qmp, "DeviceNotFound", "block-latency-histogram-set",
                 "{'id': 'nope', 'boundaries': [1]}");
    ck_assert_msg(strstr(e2, "'nope'"), "%s", e2);
    e3 = qmp_err(qmp, "GenericError", "block-latency-histogram-set",
                 "{'id': 'hn', 'boundaries': [-1]}");
    ck_assert_msg(strstr(e3, ">= 0"), "%s", e3);
    /* the refused calls changed nothing; no boundaries drops them all */
    ret = qmp_ok(qmp, "query-blockstats", NULL);
    ck_assert(json_object_object_get_ex(stats_of(ret, "hn"),
                                        "rd_latency_histogram", NULL));
    json_object_put(ret);
    json_object_put(qmp_ok(qmp, "block-latency-histogram-set",
                           "{'id': 'hn'}"));
    ret = qmp_ok(qmp, "query-blockstats", NULL);
    ck_assert(!json_object_object_get_ex(stats_of(ret, "hn"),
                                         "rd_latency_histogram", NULL));
    json_object_put(ret);
    json_object_put(qmp_ok(qmp, "blockdev-del", "{'node-name': 'hn'}"));
}
END_TEST

/* human-monitor-command: the queries as text, for qmp-shell -H. */
START_TEST(test_human_monitor_command)
{
    static const struct {
        const char *line, *want;
    } cmds[] = {
        { "info status", "VM status: running\r\n" },
        { "  info   pci ", "id \"t0\"" },
        { "info pci", "PCI device 1b36:0005" },
        { "info iothreads", "" },
        { "info vfio-user", "t0 (pci-testdev): " },
        { "info blockstats", "" },
        { "help", "info block -- " },
        { "info stats", "/machine/peripheral/t0 (vfio-user):\r\n" },
        { "info stats device vfio-user", "    clients: " },
        { "info stats queue", "" },
    };
    g_autofree char *e1 = NULL, *e2 = NULL, *e3 = NULL;

    for (size_t i = 0; i < G_N_ELEMENTS(cmds); i++) {
        json_object *r = qmp_okf(qmp, "human-monitor-command",
                                 "{'command-line': '%s'}", cmds[i].line);

        ck_assert(json_object_is_type(r, json_type_string));
        ck_assert_msg(strstr(json_object_get_string(r), cmds[i].want),
                      "%s: %s", cmds[i].line, json_object_get_string(r));
        json_object_put(r);
    }
    e1 = qmp_err(qmp, "GenericError", "human-monitor-command",
                 "{'command-line': 'savevm x'}");
    ck_assert_msg(strstr(e1, "unknown command 'savevm'"), "%s", e1);
    e2 = qmp_err(qmp, "GenericError", "human-monitor-command",
                 "{'command-line': 'info mtree'}");
    ck_assert_msg(strstr(e2, "info mtree: unknown"), "%s", e2);
    e3 = qmp_err(qmp, "GenericError", "human-monitor-command",
                 "{'command-line': 'info stats vm'}");
    ck_assert_msg(strstr(e3, "device or queue"), "%s", e3);
}
END_TEST

START_TEST(test_quit)
{
    g_autoptr(QmpClient) other = qmp_client_open(qmp_path);
    json_object *ev, *ret;
    struct stat st;

    ret = qmp_ok(qmp, "quit", NULL);
    json_object_put(ret);
    ev = qmp_client_wait_event(qmp, "SHUTDOWN", 0);
    ck_assert(!qmp_get_bool(qmp_get(ev, "data"), "guest"));
    ck_assert_str_eq(qmp_get_str(qmp_get(ev, "data"), "reason"),
                     "host-qmp-quit");
    json_object_put(ev);
    json_object_put(qmp_client_wait_event(other, "SHUTDOWN", 0));
    ck_assert(qmp_client_wait_eof(qmp, QOS_TIMEOUT_MS));
    ck_assert(qmp_client_wait_eof(other, QOS_TIMEOUT_MS));
    /* Exit status 0, sockets removed. */
    iovd_proc_stop(proc);
    g_clear_pointer(&proc, iovd_proc_free);
    ck_assert_int_ne(stat(qmp_path, &st), 0);
    ck_assert_int_ne(stat(t0_path, &st), 0);
}
END_TEST

START_TEST(test_sigterm_shutdown_event)
{
    json_object *ev;

    kill(iovd_proc_pid(proc), SIGTERM);
    ev = qmp_client_wait_event(qmp, "SHUTDOWN", 0);
    ck_assert_str_eq(qmp_get_str(qmp_get(ev, "data"), "reason"),
                     "host-signal");
    json_object_put(ev);
    ck_assert(qmp_client_wait_eof(qmp, QOS_TIMEOUT_MS));
}
END_TEST

/* ---- argument checks ---- */

START_TEST(test_argument_checks)
{
    static const struct {
        const char *cmd, *args, *desc;
    } cases[] = {
        { "query-status", "{'x': 1}", "'x' is unexpected" },
        { "device_del", "{}", "'id' is missing" },
        { "device_del", "{'id': 5}", "'id' expects a string" },
        { "block_resize", "{'node-name': 'd0', 'size': 'big'}",
          "'size' expects an integer" },
        { "block_resize", "{'node-name': 'd0', 'size': 1.5}",
          "'size' expects an integer" },
        { "blockdev-add", "{'driver': 'null', 'node-name': 'n', "
          "'cache': {'direct': 'yes'}}", "'cache.direct' expects a boolean" },
        { "blockdev-add", "{'driver': 'null', 'node-name': 'n', "
          "'cache': {'nope': true}}", "'cache.nope' is unexpected" },
        { "blockdev-add", "{'driver': 'file', 'node-name': 'n', "
          "'aio': 'fast'}", "'aio' expects one of" },
        { "blockdev-add", "{'driver': 'null', 'node-name': 'n', "
          "'size': -1}", "'size' expects a non-negative integer" },
        { "blockdev-add", "{'node-name': 'n'}", "'driver' is missing" },
        { "set_link", "{'name': 'n0', 'up': 'yes'}",
          "'up' expects a boolean" },
        { "qom-list", "{'path': null}", "'path' expects a string" },
        { "device_add", "{'driver': 'pci-testdev', 'x': null}", "'x'" },
        { "block_set_io_throttle", "{'id': 'x', 'bps': 0}",
          "is missing" },
    };

    for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
        g_autofree char *desc = qmp_err(qmp, "GenericError", cases[i].cmd,
                                        cases[i].args);

        assert_contains(desc, cases[i].desc);
    }
    /* Checks run before the handler: nothing was created. */
    {
        json_object *ret = qmp_ok(qmp, "query-block", NULL);

        ck_assert_int_eq(json_object_array_length(ret), 0);
        json_object_put(ret);
    }
}
END_TEST

/* ---- devices ---- */

START_TEST(test_query_pci)
{
    json_object *ret = qmp_ok(qmp, "query-pci", NULL);
    json_object *bus, *devs, *d, *regions;
    bool saw_bar0 = false, saw_bar2 = false;

    ck_assert_int_eq(json_object_array_length(ret), 1);
    bus = json_object_array_get_idx(ret, 0);
    ck_assert_int_eq(qmp_get_int(bus, "bus"), 0);
    devs = qmp_get(bus, "devices");
    ck_assert_int_eq(json_object_array_length(devs), 1);
    d = json_object_array_get_idx(devs, 0);
    ck_assert_str_eq(qmp_get_str(d, "qdev_id"), "t0");
    ck_assert_int_eq(qmp_get_int(d, "bus"), 0);
    ck_assert_int_eq(qmp_get_int(d, "function"), 0);
    ck_assert_int_eq(qmp_get_int(qmp_get(d, "id"), "vendor"),
                     TESTDEV_VENDOR_ID);
    ck_assert_int_eq(qmp_get_int(qmp_get(d, "id"), "device"),
                     TESTDEV_DEVICE_ID);
    ck_assert_int_eq(qmp_get_int(qmp_get(d, "class_info"), "class"),
                     TESTDEV_CLASS >> 8);
    ck_assert_int_eq(qmp_get_int(d, "irq_pin"), 1);
    regions = qmp_get(d, "regions");
    for (size_t i = 0; i < json_object_array_length(regions); i++) {
        json_object *r = json_object_array_get_idx(regions, i);

        ck_assert_str_eq(qmp_get_str(r, "type"), "memory");
        if (qmp_get_int(r, "bar") == TESTDEV_BAR_REGS) {
            saw_bar0 = true;
            ck_assert_int_eq(qmp_get_int(r, "size"), TESTDEV_REGS_SIZE);
            ck_assert(!qmp_get_bool(r, "mem_type_64"));
        }
        if (qmp_get_int(r, "bar") == TESTDEV_BAR_MEM) {
            saw_bar2 = true;
            ck_assert_int_eq(qmp_get_int(r, "size"), TESTDEV_MEM_SIZE);
            ck_assert(qmp_get_bool(r, "mem_type_64"));
            ck_assert(qmp_get_bool(r, "prefetch"));
        }
        ck_assert_int_ne(qmp_get_int(r, "bar"), TESTDEV_BAR_MEM + 1);
    }
    ck_assert(saw_bar0 && saw_bar2);
    json_object_put(ret);
}
END_TEST

static json_object *vfu_info_of(const char *id)
{
    json_object *ret = qmp_ok(qmp, "query-vfio-user", NULL);

    for (size_t i = 0; i < json_object_array_length(ret); i++) {
        json_object *e = json_object_array_get_idx(ret, i);

        if (!strcmp(qmp_get_str(e, "id"), id)) {
            e = json_object_get(e);
            json_object_put(ret);
            return e;
        }
    }
    qos_fail("query-vfio-user has no entry for %s", id);
}

START_TEST(test_query_vfio_user)
{
    json_object *info = vfu_info_of("t0");
    VfuClient *vc;
    int64_t deadline;

    ck_assert_str_eq(qmp_get_str(info, "socket"), t0_path);
    ck_assert_str_eq(qmp_get_str(info, "driver"), "pci-testdev");
    ck_assert(qmp_get_bool(info, "listening"));
    ck_assert(!qmp_get_bool(info, "connected"));
    ck_assert(!json_object_object_get_ex(info, "version", NULL));
    ck_assert_int_eq(qmp_get_int(info, "dma-regions"), 0);
    json_object_put(info);

    vc = vfu_client_open(t0_path);
    info = vfu_info_of("t0");
    ck_assert(qmp_get_bool(info, "connected"));
    ck_assert(qmp_get_bool(info, "negotiated"));
    ck_assert_int_eq(qmp_get_int(qmp_get(info, "version"), "major"), 0);
    ck_assert_int_eq(qmp_get_int(qmp_get(info, "capabilities"),
                                 "max_msg_fds"), VFU_CLIENT_MAX_MSG_FDS);
    ck_assert_int_ge(qmp_get_int(info, "clients"), 1);
    json_object_put(info);

    vfu_client_free(vc);
    deadline = qos_deadline(QOS_TIMEOUT_MS);
    for (;;) {
        bool connected;

        info = vfu_info_of("t0");
        connected = qmp_get_bool(info, "connected");
        json_object_put(info);
        if (!connected) {
            break;
        }
        ck_assert_msg(qos_remaining_ms(deadline), "client never detached");
        g_usleep(10000);
    }
}
END_TEST

/* VFU_CLIENT_CONNECTED / _HANGUP. */
START_TEST(test_vfu_events)
{
    VfuClient *vc = vfu_client_open(t0_path);
    json_object *ev = qmp_client_wait_event(qmp, "VFU_CLIENT_CONNECTED", 0);

    ck_assert_str_eq(qmp_get_str(qmp_get(ev, "data"), "device"), "t0");
    json_object_put(ev);
    vfu_client_free(vc);
    ev = qmp_client_wait_event(qmp, "VFU_CLIENT_HANGUP", 0);
    ck_assert_str_eq(qmp_get_str(qmp_get(ev, "data"), "device"), "t0");
    json_object_put(ev);
}
END_TEST

START_TEST(test_device_add_del)
{
    g_autofree char *t1 = iovd_proc_path(proc, "t1.sock");
    g_autofree char *e1 = NULL, *e2 = NULL, *e3 = NULL, *e4 = NULL;
    g_autofree char *e5 = NULL;
    json_object *ret, *ev, *devs;
    VfuDeviceInfo dinfo;
    VfuClient *vc;
    uint32_t id = 0;
    struct stat st;

    json_object_put(qmp_okf(qmp, "device_add", "{'driver': 'pci-testdev', "
                            "'id': 't1', 'socket': '%s'}", t1));
    /* The new device serves its socket right away. */
    vc = vfu_client_open(t1);
    ck_assert_int_eq(vfu_get_device_info(vc, &dinfo), 0);
    ck_assert_int_eq(vfu_region_read(vc, VFIO_PCI_BAR0_REGION_INDEX,
                                     TESTDEV_REG_ID, &id, 4), 0);
    ret = qmp_ok(qmp, "query-pci", NULL);
    devs = qmp_get(json_object_array_get_idx(ret, 0), "devices");
    ck_assert_int_eq(json_object_array_length(devs), 2);
    json_object_put(ret);

    /* Errors: duplicate id, unknown type, bad property, bad value. */
    e1 = qmp_errf(qmp, "GenericError", "device_add", "{'driver': "
                  "'pci-testdev', 'id': 't1', 'socket': '%s/x.sock'}",
                  iovd_proc_tmpdir(proc));
    assert_contains(e1, "t1");
    e2 = qmp_err(qmp, "GenericError", "device_add",
                 "{'driver': 'no-such-device'}");
    assert_contains(e2, "no-such-device");
    e3 = qmp_errf(qmp, "GenericError", "device_add", "{'driver': "
                  "'pci-testdev', 'id': 't2', 'socket': '%s/t2.sock', "
                  "'bogus-prop': 1}", iovd_proc_tmpdir(proc));
    assert_contains(e3, "bogus-prop");
    e4 = qmp_errf(qmp, "GenericError", "device_add", "{'driver': "
                  "'pci-testdev', 'id': 't2', 'socket': '%s/t2.sock', "
                  "'dma-rw-layout': 'sideways'}", iovd_proc_tmpdir(proc));
    assert_contains(e4, "dma-rw-layout");

    /* device_del: the client is dropped, the socket goes, an event. */
    json_object_put(qmp_ok(qmp, "device_del", "{'id': 't1'}"));
    ev = qmp_client_wait_event(qmp, "DEVICE_DELETED", 0);
    ck_assert_str_eq(qmp_get_str(qmp_get(ev, "data"), "device"), "t1");
    ck_assert_str_eq(qmp_get_str(qmp_get(ev, "data"), "path"),
                     "/machine/peripheral/t1");
    json_object_put(ev);
    ck_assert(vfu_wait_closed(vc, QOS_TIMEOUT_MS));
    vfu_client_free(vc);
    ck_assert_int_ne(stat(t1, &st), 0);
    e5 = qmp_err(qmp, "DeviceNotFound", "device_del", "{'id': 't1'}");

    /* The id is free again. */
    json_object_put(qmp_okf(qmp, "device_add", "{'driver': 'pci-testdev', "
                            "'id': 't1', 'socket': '%s', "
                            "'dma-rw-layout': 'spec'}", t1));
    ck_assert_int_eq(stat(t1, &st), 0);
}
END_TEST

START_TEST(test_device_add_own_socket)
{
    g_autoptr(GString) burst = g_string_new(NULL);
    g_autofree char *e = NULL;
    json_object *ev;

    /*
     * device_add naming the socket t0 listens on: refused naming t0,
     * found without connecting to it (t0 sees no client).  Six in one
     * write (more than its listen backlog, which a connect to ourselves
     * would wait on for good): each refused, the monitor still answers.
     */
    e = qmp_errf(qmp, "GenericError", "device_add", "{'driver': "
                 "'pci-testdev', 'id': 't9', 'socket': '%s'}", t0_path);
    assert_contains(e, "device 't0'");
    for (unsigned i = 0; i < 6; i++) {
        g_string_append_printf(burst, "{\"execute\": \"device_add\", "
                               "\"arguments\": {\"driver\": \"pci-testdev\", "
                               "\"id\": \"x%u\", \"socket\": \"%s\"}}\n", i,
                               t0_path);
    }
    qmp_client_send_raw(qmp, burst->str, burst->len);
    for (unsigned i = 0; i < 6; i++) {
        json_object *r = qmp_client_recv_wait(qmp);

        while (json_object_object_get_ex(r, "event", NULL)) {
            json_object_put(r);
            r = qmp_client_recv_wait(qmp);
        }
        ck_assert_msg(json_object_object_get_ex(r, "error", NULL), "%s",
                      qmp_json(r));
        json_object_put(r);
    }
    json_object_put(qmp_ok(qmp, "query-status", NULL));
    ev = qmp_client_poll_event(qmp, "VFU_CLIENT_CONNECTED", 200);
    ck_assert_msg(!ev, "t0 saw a client: %s", ev ? qmp_json(ev) : "");
}
END_TEST

START_TEST(test_qom)
{
    json_object *ret;
    bool saw_socket = false;
    g_autofree char *e1 = NULL, *e2 = NULL, *e3 = NULL, *e4 = NULL;

    ret = qmp_ok(qmp, "qom-list", "{'path': 't0'}");
    for (size_t i = 0; i < json_object_array_length(ret); i++) {
        json_object *p = json_object_array_get_idx(ret, i);

        qmp_get_str(p, "type");
        if (!strcmp(qmp_get_str(p, "name"), "socket")) {
            saw_socket = true;
            ck_assert_str_eq(qmp_get_str(p, "type"), "str");
            ck_assert(!qmp_get_bool(p, "runtime"));
        }
    }
    ck_assert(saw_socket);
    json_object_put(ret);

    ret = qmp_ok(qmp, "qom-list", "{'path': '/machine/peripheral'}");
    ck_assert_int_eq(json_object_array_length(ret), 1);
    ck_assert_str_eq(qmp_get_str(json_object_array_get_idx(ret, 0), "type"),
                     "child<pci-testdev>");
    json_object_put(ret);

    ret = qmp_ok(qmp, "qom-get", "{'path': 't0', 'property': 'socket'}");
    ck_assert_str_eq(json_object_get_string(ret), t0_path);
    json_object_put(ret);
    ret = qmp_ok(qmp, "qom-get", "{'path': '/machine/peripheral/t0', "
                 "'property': 'id'}");
    ck_assert_str_eq(json_object_get_string(ret), "t0");
    json_object_put(ret);
    ret = qmp_ok(qmp, "qom-get", "{'path': 't0', "
                 "'property': 'dma-rw-layout'}");
    ck_assert_str_eq(json_object_get_string(ret), "qemu");
    json_object_put(ret);

    e1 = qmp_err(qmp, "DeviceNotFound", "qom-get",
                 "{'path': 'nope', 'property': 'id'}");
    e2 = qmp_err(qmp, "GenericError", "qom-get",
                 "{'path': 't0', 'property': 'nope'}");
    assert_contains(e2, "nope");
    e3 = qmp_err(qmp, "GenericError", "qom-set",
                 "{'path': 't0', 'property': 'socket', 'value': '/x'}");
    assert_contains(e3, "run time");
    e4 = qmp_err(qmp, "DeviceNotFound", "qom-list", "{'path': 'nope'}");
}
END_TEST

/* ---- block ---- */

START_TEST(test_block)
{
    g_autofree char *img = iovd_proc_path(proc, "disk.img");
    char *e[10] = { NULL };
    json_object *ret, *e0, *ins;
    int fd;

    json_object_put(qmp_ok(qmp, "blockdev-add", "{'driver': 'null-co', "
                           "'node-name': 'd0', 'size': 1048576}"));
    ret = qmp_ok(qmp, "query-block", NULL);
    ck_assert_int_eq(json_object_array_length(ret), 1);
    e0 = json_object_array_get_idx(ret, 0);
    ck_assert_str_eq(qmp_get_str(e0, "device"), "");
    ins = qmp_get(e0, "inserted");
    ck_assert_str_eq(qmp_get_str(ins, "node-name"), "d0");
    ck_assert_str_eq(qmp_get_str(ins, "drv"), "null");
    ck_assert_int_eq(qmp_get_int(qmp_get(ins, "image"), "virtual-size"),
                     1048576);
    json_object_put(ret);

    json_object_put(qmp_ok(qmp, "block_resize",
                           "{'node-name': 'd0', 'size': 2097152}"));
    ret = qmp_ok(qmp, "query-block", NULL);
    ins = qmp_get(json_object_array_get_idx(ret, 0), "inserted");
    ck_assert_int_eq(qmp_get_int(qmp_get(ins, "image"), "virtual-size"),
                     2097152);
    json_object_put(ret);

    ret = qmp_ok(qmp, "query-blockstats", NULL);
    ck_assert_int_eq(json_object_array_length(ret), 1);
    e0 = json_object_array_get_idx(ret, 0);
    ck_assert_str_eq(qmp_get_str(e0, "node-name"), "d0");
    ck_assert_int_eq(qmp_get_int(qmp_get(e0, "stats"), "rd_operations"), 0);
    json_object_put(ret);

    /* A file node, read-only, with options in QEMU's nested form. */
    fd = open(img, O_CREAT | O_RDWR, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, 4 << 20), 0);
    close(fd);
    json_object_put(qmp_okf(qmp, "blockdev-add", "{'driver': 'file', "
                            "'node-name': 'f0', 'filename': '%s', "
                            "'read-only': true, 'aio': 'threads', "
                            "'cache': {'direct': false}}", img));
    ret = qmp_ok(qmp, "query-block", NULL);
    ck_assert_int_eq(json_object_array_length(ret), 2);
    json_object_put(ret);

    e[0] = qmp_err(qmp, "GenericError", "blockdev-add", "{'driver': "
                   "'null', 'node-name': 'd0'}");
    assert_contains(e[0], "d0");
    e[1] = qmp_err(qmp, "GenericError", "blockdev-add", "{'driver': "
                   "'warp', 'node-name': 'w0'}");
    assert_contains(e[1], "warp");
    e[2] = qmp_err(qmp, "GenericError", "blockdev-add", "{'driver': "
                   "'null', 'node-name': 'x0', 'frobnicate': 3}");
    assert_contains(e[2], "frobnicate");
    e[3] = qmp_errf(qmp, "GenericError", "blockdev-add", "{'driver': "
                    "'file', 'node-name': 'x1', 'filename': '%s/none'}",
                    iovd_proc_tmpdir(proc));
    e[4] = qmp_err(qmp, "GenericError", "block_resize",
                   "{'node-name': 'f0', 'size': 8388608}");
    assert_contains(e[4], "read-only");
    e[5] = qmp_err(qmp, "GenericError", "block_resize", "{'size': 512}");
    e[6] = qmp_err(qmp, "GenericError", "block_resize",
                   "{'node-name': 'zz', 'size': 512}");
    assert_contains(e[6], "zz");
    e[7] = qmp_err(qmp, "DeviceNotFound", "block_resize",
                   "{'device': 'zz', 'size': 512}");
    e[8] = qmp_err(qmp, "DeviceNotFound", "block_set_io_throttle",
                   "{'id': 't0', 'bps': 1000, 'bps_rd': 0, 'bps_wr': 0, "
                   "'iops': 0, 'iops_rd': 0, 'iops_wr': 0}");
    e[9] = qmp_err(qmp, "GenericError", "block_set_io_throttle",
                   "{'bps': 1000, 'bps_rd': 0, 'bps_wr': 0, "
                   "'iops': 0, 'iops_rd': 0, 'iops_wr': 0}");
    for (unsigned i = 0; i < ARRAY_SIZE(e); i++) {
        g_free(e[i]);
        e[i] = NULL;
    }

    json_object_put(qmp_ok(qmp, "blockdev-del", "{'node-name': 'd0'}"));
    json_object_put(qmp_ok(qmp, "blockdev-del", "{'node-name': 'f0'}"));
    e[0] = qmp_err(qmp, "GenericError", "blockdev-del",
                   "{'node-name': 'd0'}");
    g_free(e[0]);
    ret = qmp_ok(qmp, "query-block", NULL);
    ck_assert_int_eq(json_object_array_length(ret), 0);
    json_object_put(ret);
}
END_TEST

/* Each disk device: blockdev-del of a node in use, throttling by id. */
START_TEST(test_block_in_use)
{
    static const char *const drivers[] = { "nvme", "virtio-blk-pci" };
    g_autofree char *sock = iovd_proc_path(proc, "disk.sock");

    json_object_put(qmp_ok(qmp, "blockdev-add", "{'driver': 'null', "
                           "'node-name': 'd0', 'size': 1048576}"));
    for (unsigned i = 0; i < ARRAY_SIZE(drivers); i++) {
        g_autofree char *e1 = NULL;
        json_object *ret;

        json_object_put(qmp_okf(qmp, "device_add", "{'driver': '%s', "
                                "'id': 'disk0', 'drive': 'd0', "
                                "'socket': '%s'}", drivers[i], sock));
        e1 = qmp_err(qmp, "GenericError", "blockdev-del",
                     "{'node-name': 'd0'}");
        assert_contains(e1, "disk0");
        ret = qmp_ok(qmp, "query-block", NULL);
        ck_assert_str_eq(qmp_get_str(json_object_array_get_idx(ret, 0),
                                     "device"), "disk0");
        json_object_put(ret);
        json_object_put(qmp_ok(qmp, "block_set_io_throttle",
                               "{'id': 'disk0', 'bps': 1048576, "
                               "'bps_rd': 0, 'bps_wr': 0, 'iops': 0, "
                               "'iops_rd': 0, 'iops_wr': 0}"));
        ret = qmp_ok(qmp, "query-block", NULL);
        ck_assert_int_eq(qmp_get_int(qmp_get(json_object_array_get_idx(
                             ret, 0), "inserted"), "bps"), 1048576);
        json_object_put(ret);
        json_object_put(qmp_ok(qmp, "device_del", "{'id': 'disk0'}"));
        json_object_put(qmp_client_wait_event(qmp, "DEVICE_DELETED", 0));
    }
    json_object_put(qmp_ok(qmp, "blockdev-del", "{'node-name': 'd0'}"));
}
END_TEST

/* ---- net ---- */

START_TEST(test_net)
{
    char *e[8] = { NULL };
    json_object *ret;

    json_object_put(qmp_ok(qmp, "netdev_add",
                           "{'type': 'user', 'id': 'n0'}"));
    e[0] = qmp_err(qmp, "GenericError", "netdev_add",
                   "{'type': 'user', 'id': 'n0'}");
    assert_contains(e[0], "n0");
    e[1] = qmp_err(qmp, "GenericError", "netdev_add",
                   "{'type': 'warp', 'id': 'n1'}");
    assert_contains(e[1], "warp");
    e[2] = qmp_err(qmp, "GenericError", "netdev_add",
                   "{'type': 'user', 'id': 'n1', 'frobnicate': 1}");
    assert_contains(e[2], "frobnicate");
    /* The arguments are checked against the schema first. */
    e[3] = qmp_err(qmp, "GenericError", "netdev_add", "{'type': 'user'}");
    assert_contains(e[3], "'id' is missing");

    json_object_put(qmp_ok(qmp, "set_link", "{'name': 'n0', 'up': false}"));
    json_object_put(qmp_ok(qmp, "set_link", "{'name': 'n0', 'up': true}"));
    e[4] = qmp_err(qmp, "DeviceNotFound", "set_link",
                   "{'name': 'nope', 'up': true}");

    /* No NIC yet: an empty list; a backend is not a NIC. */
    ret = qmp_ok(qmp, "query-rx-filter", NULL);
    ck_assert_int_eq(json_object_array_length(ret), 0);
    json_object_put(ret);
    e[5] = qmp_err(qmp, "GenericError", "query-rx-filter",
                   "{'name': 'n0'}");
    e[6] = qmp_err(qmp, "DeviceNotFound", "query-rx-filter",
                   "{'name': 'nope'}");

    json_object_put(qmp_ok(qmp, "netdev_del", "{'id': 'n0'}"));
    e[7] = qmp_err(qmp, NULL, "netdev_del", "{'id': 'n0'}");
    for (unsigned i = 0; i < ARRAY_SIZE(e); i++) {
        g_clear_pointer(&e[i], g_free);
    }
}
END_TEST

/* A NIC's receive filter. */
START_TEST(test_net_nic)
{
    g_autofree char *sock = iovd_proc_path(proc, "nic.sock");
    json_object *ret, *f;

    json_object_put(qmp_ok(qmp, "netdev_add",
                           "{'type': 'user', 'id': 'n0'}"));
    json_object_put(qmp_okf(qmp, "device_add", "{'driver': 'e1000', "
                            "'id': 'e0', 'netdev': 'n0', "
                            "'mac': '52:54:00:12:34:56', 'socket': '%s'}",
                            sock));
    ret = qmp_ok(qmp, "query-rx-filter", NULL);
    ck_assert_int_eq(json_object_array_length(ret), 1);
    f = json_object_array_get_idx(ret, 0);
    ck_assert_str_eq(qmp_get_str(f, "name"), "e0");
    json_object_put(ret);
    ret = qmp_ok(qmp, "query-rx-filter", "{'name': 'e0'}");
    ck_assert_int_eq(json_object_array_length(ret), 1);
    json_object_put(ret);
    json_object_put(qmp_ok(qmp, "set_link", "{'name': 'e0', 'up': false}"));
    json_object_put(qmp_ok(qmp, "device_del", "{'id': 'e0'}"));
    json_object_put(qmp_client_wait_event(qmp, "DEVICE_DELETED", 0));
    json_object_put(qmp_ok(qmp, "netdev_del", "{'id': 'n0'}"));
}
END_TEST

/* ---- hostile input ---- */

/* Read until the response with id @id, skipping id-less error replies;
 * returns how many of those came first. */
static unsigned wait_id(QmpClient *q, const char *id)
{
    unsigned errors = 0;

    for (;;) {
        json_object *r = qmp_client_recv_wait(q);
        json_object *rid;

        if (json_object_object_get_ex(r, "id", &rid)) {
            ck_assert_str_eq(json_object_get_string(rid), id);
            ck_assert(json_object_object_get_ex(r, "return", NULL));
            json_object_put(r);
            return errors;
        }
        ck_assert_msg(json_object_object_get_ex(r, "error", NULL),
                      "unexpected %s", qmp_json(r));
        errors++;
        json_object_put(r);
    }
}

/*
 * One client floods the monitor with bad JSON and reads none of the
 * errors; another's commands are still answered promptly: the monitor
 * takes a bounded amount of work from one client per turn.
 */
/* Send what the socket takes now of @len bytes of @buf; how much. */
static size_t send_some(QmpClient *c, const void *buf, size_t len)
{
    ssize_t n = send(qmp_client_fd(c), buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);

    return n > 0 ? n : 0;
}

/*
 * One client floods the monitor with bad JSON and reads none of the
 * errors; another's commands are still answered promptly: the monitor
 * takes a bounded amount of work from one client per turn.
 */
START_TEST(test_flood_does_not_starve)
{
    QmpClient *flood = qmp_client_open(qmp_path);
    g_autofree char *junk = g_malloc(64 << 10);
    int64_t worst = 0;
    size_t sent = 0;

    /* Each "{]" is an object that fails: one error reply each. */
    for (unsigned i = 0; i < (64 << 10); i += 2) {
        junk[i] = '{';
        junk[i + 1] = ']';
    }
    for (unsigned i = 0; i < 64; i++) {
        sent += send_some(flood, junk, 64 << 10);
    }
    ck_assert_uint_gt(sent, 0);
    for (unsigned i = 0; i < 20; i++) {
        int64_t t0 = qos_now_ms();

        json_object_put(qmp_ok(qmp, "query-status", NULL));
        worst = MAX(worst, qos_now_ms() - t0);
        sent += send_some(flood, junk, 64 << 10);   /* keep it coming */
    }
    ck_assert_msg(worst < 250, "query-status took %" PRId64 " ms beside "
                  "a flooding client", worst);
    qmp_client_free(flood);
}
END_TEST

START_TEST(test_malformed_recovers)
{
    json_object *r;

    /* An error, then the next object in the same write is executed. */
    qmp_client_send_str(qmp, "{\"execute\": }\r\n"
                        "{\"execute\":\"query-status\",\"id\":\"a\"}\n");
    ck_assert_uint_eq(wait_id(qmp, "a"), 1);

    /* Stray closers and junk between objects. */
    qmp_client_send_str(qmp, "}}]] nonsense \n"
                        "{\"execute\":\"query-status\",\"id\":\"b\"}\n");
    ck_assert_uint_ge(wait_id(qmp, "b"), 1);

    /* A truncated object is abandoned at a control character (qmp-spec's
     * way to force the parser into a known-good state). */
    qmp_client_send_str(qmp, "{\"execute\": \"query-status\", \"argu");
    g_usleep(50000);
    qmp_client_send_str(qmp, "\x01{\"execute\":\"query-status\","
                        "\"id\":\"c\"}\n");
    ck_assert_uint_eq(wait_id(qmp, "c"), 1);

    /* 0xFF does the same. */
    qmp_client_send_str(qmp, "{\"execute\": [1, 2, \xff"
                        "{\"execute\":\"query-status\",\"id\":\"d\"}\n");
    ck_assert_uint_ge(wait_id(qmp, "d"), 1);

    /* Invalid UTF-8 inside a string. */
    qmp_client_send_str(qmp, "{\"execute\":\"query-\xc3\x28status\"}\n"
                        "{\"execute\":\"query-status\",\"id\":\"e\"}\n");
    ck_assert_uint_ge(wait_id(qmp, "e"), 1);

    /* Nesting deeper than the parser allows. */
    {
        g_autoptr(GString) deep = g_string_new("{\"execute\":");

        for (int i = 0; i < 200; i++) {
            g_string_append_c(deep, '[');
        }
        g_string_append(deep, "\n\x01{\"execute\":\"query-status\","
                        "\"id\":\"f\"}\n");
        qmp_client_send_str(qmp, deep->str);
        ck_assert_uint_ge(wait_id(qmp, "f"), 1);
    }

    /* Whitespace and empty lines alone are not errors. */
    qmp_client_send_str(qmp, "\r\n\n   \t\n{\"execute\":\"query-status\","
                        "\"id\":\"g\"}\n");
    ck_assert_uint_eq(wait_id(qmp, "g"), 0);

    /* The negotiated state survived all that. */
    r = qmp_ok(qmp, "query-status", NULL);
    json_object_put(r);
}
END_TEST

START_TEST(test_binary_garbage)
{
    g_autoptr(QmpClient) bystander = qmp_client_open(qmp_path);
    g_autoptr(GRand) rnd = g_rand_new_with_seed(4242);
    guint8 buf[65536];

    for (int round = 0; round < 8; round++) {
        for (size_t i = 0; i < sizeof(buf); i++) {
            buf[i] = g_rand_int(rnd);
        }
        if (!qmp_client_try_send_raw(qmp, buf, sizeof(buf))) {
            break;      /* closed on an oversized "object": also fine */
        }
        /* Others are served meanwhile. */
        json_object_put(qmp_ok(bystander, "query-status", NULL));
    }
    assert_daemon_healthy();
    json_object_put(qmp_ok(bystander, "query-version", NULL));
}
END_TEST

START_TEST(test_binary_garbage_then_resync)
{
    g_autoptr(GRand) rnd = g_rand_new_with_seed(7);
    guint8 buf[4096];

    /* Garbage without braces cannot start an object: then one resync
     * byte and a command. */
    for (size_t i = 0; i < sizeof(buf); i++) {
        do {
            buf[i] = g_rand_int(rnd);
        } while (buf[i] == '{' || buf[i] == '[' || buf[i] == '"');
    }
    qmp_client_send_raw(qmp, buf, sizeof(buf));
    qmp_client_send_str(qmp, "\xff\x01{\"execute\":\"query-status\","
                        "\"id\":\"z\"}\n");
    wait_id(qmp, "z");
}
END_TEST

START_TEST(test_huge_object)
{
    g_autoptr(QmpClient) bystander = qmp_client_open(qmp_path);
    g_autoptr(GString) big = g_string_new("{\"execute\":\"query-status\","
                                          "\"arguments\":{\"x\":\"");
    g_autoptr(GString) fits = NULL;
    json_object *r;

    /* Just under the limit: an ordinary error reply (unexpected key). */
    fits = g_string_new("{\"execute\":\"query-status\",\"id\":1,"
                        "\"arguments\":{\"x\":\"");
    for (int i = 0; i < 1000 * 1000; i++) {
        g_string_append_c(fits, 'a');
    }
    g_string_append(fits, "\"}}\n");
    r = raw_exchange(qmp, fits->str);
    assert_contains(qmp_get_str(qmp_get(r, "error"), "desc"),
                    "'x' is unexpected");
    json_object_put(r);

    /* Over it: an error, then the connection closes. */
    for (int i = 0; i < 1100 * 1024; i++) {
        g_string_append_c(big, 'a');
    }
    g_string_append(big, "\"}}\n");
    qmp_client_try_send_raw(qmp, big->str, big->len);
    r = qmp_client_recv_wait(qmp);
    assert_contains(qmp_get_str(qmp_get(r, "error"), "desc"), "larger than");
    json_object_put(r);
    ck_assert(qmp_client_wait_eof(qmp, QOS_TIMEOUT_MS));

    /* Nobody else noticed. */
    json_object_put(qmp_ok(bystander, "query-status", NULL));
    assert_daemon_healthy();
}
END_TEST

START_TEST(test_slow_reader)
{
    enum { N = 400 };
    g_autoptr(QmpClient) slow = qmp_client_open(qmp_path);
    g_autoptr(GString) burst = g_string_new(NULL);
    int64_t t0, worst = 0;

    /* Many large replies that the slow client does not read yet. */
    for (int i = 0; i < N; i++) {
        g_string_append_printf(burst, "{\"execute\":\"query-qmp-schema\","
                               "\"id\":%d}\n", i);
    }
    qmp_client_send_raw(slow, burst->str, burst->len);
    /* Meanwhile another client gets quick answers. */
    for (int i = 0; i < 50; i++) {
        t0 = qos_now_ms();
        json_object_put(qmp_ok(qmp, "query-status", NULL));
        worst = MAX(worst, qos_now_ms() - t0);
    }
    ck_assert_msg(worst < 1000, "a slow client delayed another by %" PRId64
                  " ms", worst);
    /* The slow one gets everything, in order, once it reads. */
    qmp_client_set_timeout(slow, 20000);
    for (int i = 0; i < N; i++) {
        json_object *r = qmp_client_recv_wait(slow);

        ck_assert_int_eq(qmp_get_int(r, "id"), i);
        json_object_put(r);
    }
}
END_TEST

START_TEST(test_client_vanishes)
{
    /* Clients that disconnect mid-object, mid-reply or right away. */
    for (int i = 0; i < 20; i++) {
        QmpClient *q = qmp_client_connect(qmp_path);

        if (i % 3 == 1) {
            qmp_client_send_str(q, "{\"execute\":\"qmp_capab");
        } else if (i % 3 == 2) {
            qmp_client_send_str(q, "{\"execute\":\"qmp_capabilities\"}\n"
                                "{\"execute\":\"query-qmp-schema\"}\n");
        }
        qmp_client_free(q);
    }
    assert_daemon_healthy();
    /* No fd leak: back to a handful once they are reaped. */
    {
        unsigned base = iovd_proc_count_fds(proc);
        unsigned now;

        for (int i = 0; i < 30; i++) {
            qmp_client_free(qmp_client_open(qmp_path));
        }
        now = iovd_proc_wait_fds_at_most(proc, base, QOS_TIMEOUT_MS);
        ck_assert_uint_le(now, base);
    }
}
END_TEST

/* ---- transports and options ---- */

static int free_tcp_port(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET,
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static void setup_none(void)
{
    qos_check_init();
}

START_TEST(test_several_monitors)
{
    int port = free_tcp_port();
    g_autofree char *tcp = g_strdup_printf("tcp:127.0.0.1:%d,server=on,"
                                           "wait=off", port);
    g_autofree char *second = NULL, *legacy = NULL;
    g_autoptr(QmpClient) a = NULL, b = NULL, c = NULL;
    char dir[] = "/tmp/iovd-qmp-XXXXXX";

    ck_assert_ptr_nonnull(g_mkdtemp(dir));
    second = g_strdup_printf("unix:%s/second.sock,server=on,wait=off", dir);
    legacy = g_strdup_printf("unix:%s/legacy.sock,server,nowait", dir);
    start_daemon_args("-qmp", second, "-qmp", tcp, "-qmp", legacy, NULL);
    a = qmp_client_open(qmp_path);
    b = qmp_client_connect_tcp("127.0.0.1", port);
    qmp_client_negotiate(b);
    {
        g_autofree char *p = g_strdup_printf("%s/second.sock", dir);
        g_autofree char *l = g_strdup_printf("%s/legacy.sock", dir);
        g_autoptr(QmpClient) d = qmp_client_open(l);

        c = qmp_client_open(p);
        json_object_put(qmp_ok(d, "query-status", NULL));
    }
    json_object_put(qmp_ok(b, "stop", NULL));
    json_object_put(qmp_client_wait_event(a, "STOP", 0));
    json_object_put(qmp_client_wait_event(b, "STOP", 0));
    json_object_put(qmp_client_wait_event(c, "STOP", 0));
    json_object_put(qmp_ok(c, "cont", NULL));
    json_object_put(qmp_client_wait_event(b, "RESUME", 0));
    g_clear_pointer(&a, qmp_client_free);
    g_clear_pointer(&b, qmp_client_free);
    g_clear_pointer(&c, qmp_client_free);
    iovd_proc_stop(proc);
    g_clear_pointer(&proc, iovd_proc_free);
    rmdir(dir);
}
END_TEST

START_TEST(test_bad_qmp_options)
{
    static const struct {
        const char *arg, *msg;
    } cases[] = {
        { "tcp:0.0.0.0:0", "allow-remote" },
        { "tcp::0", "allow-remote" },
        { "unix:/tmp/x.sock,server=off", "server" },
        { "unix:/tmp/x.sock,wait=on", "wait" },
        { "unix:/tmp/x.sock,frob=1", "frob" },
        { "serial:/dev/ttyS0", "unix:PATH" },
        { "tcp:127.0.0.1", "PORT" },
        { "unix:/proc/version", "not a socket" },
    };

    for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
        g_autofree char *err = NULL;
        int status = iovd_run(&err, "-qmp", cases[i].arg, NULL);

        ck_assert_msg(status > 0,
                      "-qmp %s was accepted", cases[i].arg);
        ck_assert_msg(contains(err, cases[i].msg), "-qmp %s: '%s' does not "
                      "mention '%s'", cases[i].arg, err, cases[i].msg);
    }
}
END_TEST

START_TEST(test_stdio_monitor)
{
    const char *argv[] = { iovd_binary(), "-qmp", "stdio", NULL };
    g_autoptr(GError) err = NULL;
    int in_fd, out_fd, status;
    json_object *ev;
    GPid pid;
    QmpClient *q;

    ck_assert_msg(g_spawn_async_with_pipes(
                      NULL, (char **)argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD,
                      NULL, NULL, &pid, &in_fd, &out_fd, NULL, &err),
                  "spawn: %s", err ? err->message : "");
    q = qmp_client_new_fds(out_fd, in_fd, true);
    qmp_client_negotiate(q);
    json_object_put(qmp_ok(q, "query-status", NULL));
    json_object_put(qmp_ok(q, "quit", NULL));
    ev = qmp_client_wait_event(q, "SHUTDOWN", 0);
    json_object_put(ev);
    qmp_client_free(q);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
END_TEST

/*
 * IOThreads over the monitor: added, listed with their thread, used by a
 * device added at run time (which then serves its client from there),
 * refused while in use, deleted once the device is gone.
 */
START_TEST(test_iothreads)
{
    g_autofree char *t1 = iovd_proc_path(proc, "t1.sock");
    g_autofree char *e1 = NULL, *e2 = NULL, *e3 = NULL, *e4 = NULL;
    json_object *ret, *io, *ev;
    VfuDeviceInfo dinfo;
    VfuClient *vc;
    uint32_t id = 0;
    uint16_t cmd = PCI_COMMAND_MEMORY;

    json_object_put(qmp_ok(qmp, "object-add", "{'qom-type': 'iothread', "
                           "'id': 'io0', 'poll-max-ns': 1000, "
                           "'poll-idle-ns': 200000}"));
    e1 = qmp_err(qmp, "GenericError", "object-add",
                 "{'qom-type': 'iothread', 'id': 'io0'}");
    assert_contains(e1, "io0");
    e2 = qmp_err(qmp, "GenericError", "object-add",
                 "{'qom-type': 'memory-backend-ram', 'id': 'm0'}");
    assert_contains(e2, "memory-backend-ram");
    ret = qmp_ok(qmp, "query-iothreads", NULL);
    ck_assert_int_eq(json_object_array_length(ret), 1);
    io = json_object_array_get_idx(ret, 0);
    ck_assert_str_eq(qmp_get_str(io, "id"), "io0");
    ck_assert_int_eq(qmp_get_int(io, "poll-max-ns"), 1000);
    ck_assert_int_eq(qmp_get_int(io, "poll-idle-ns"), 200000);
    /* A thread of the daemon, not the daemon's main thread. */
    ck_assert_int_gt(qmp_get_int(io, "thread-id"), 0);
    ck_assert_int_ne(qmp_get_int(io, "thread-id"), iovd_proc_pid(proc));
    ck_assert_int_eq(qmp_get_int(io, "devices"), 0);
    json_object_put(ret);

    e3 = qmp_errf(qmp, "GenericError", "device_add", "{'driver': "
                  "'pci-testdev', 'id': 't1', 'socket': '%s', "
                  "'iothread': 'nope'}", t1);
    assert_contains(e3, "nope");
    json_object_put(qmp_okf(qmp, "device_add", "{'driver': 'pci-testdev', "
                            "'id': 't1', 'socket': '%s', 'iothread': 'io0'}",
                            t1));
    vc = vfu_client_open(t1);
    ck_assert_int_eq(vfu_get_device_info(vc, &dinfo), 0);
    ck_assert_int_eq(vfu_region_write(vc, VFIO_PCI_CONFIG_REGION_INDEX,
                                      PCI_COMMAND, &cmd, 2), 0);
    ck_assert_int_eq(vfu_region_read(vc, VFIO_PCI_BAR0_REGION_INDEX,
                                     TESTDEV_REG_ID, &id, 4), 0);
    ck_assert_uint_eq(id, TESTDEV_ID_VALUE);
    ret = qmp_ok(qmp, "query-iothreads", NULL);
    ck_assert_int_eq(qmp_get_int(json_object_array_get_idx(ret, 0),
                                 "devices"), 1);
    json_object_put(ret);
    /* The monitor reaches the device on its thread. */
    ret = qmp_ok(qmp, "query-vfio-user", NULL);
    ck_assert_int_eq(json_object_array_length(ret), 2);
    json_object_put(ret);
    e4 = qmp_err(qmp, "GenericError", "object-del", "{'id': 'io0'}");
    assert_contains(e4, "in use");

    json_object_put(qmp_ok(qmp, "device_del", "{'id': 't1'}"));
    ev = qmp_client_wait_event(qmp, "DEVICE_DELETED", 0);
    json_object_put(ev);
    ck_assert(vfu_wait_closed(vc, QOS_TIMEOUT_MS));
    vfu_client_free(vc);
    json_object_put(qmp_ok(qmp, "object-del", "{'id': 'io0'}"));
    ret = qmp_ok(qmp, "query-iothreads", NULL);
    ck_assert_int_eq(json_object_array_length(ret), 0);
    json_object_put(ret);

    /* The main loop's polling: one object, not an iothread, not deleted. */
    json_object_put(qmp_ok(qmp, "object-add", "{'qom-type': 'main-loop', "
                           "'id': 'main', 'poll-max-ns': 0}"));
    g_free(e1);
    e1 = qmp_err(qmp, "GenericError", "object-add",
                 "{'qom-type': 'main-loop', 'id': 'main2'}");
    assert_contains(e1, "only one main-loop");
    g_free(e2);
    e2 = qmp_err(qmp, "GenericError", "object-add",
                 "{'qom-type': 'iothread', 'id': 'main'}");
    assert_contains(e2, "main");
    g_free(e3);
    e3 = qmp_err(qmp, "GenericError", "object-del", "{'id': 'main'}");
    assert_contains(e3, "cannot be deleted");
    ret = qmp_ok(qmp, "query-iothreads", NULL);
    ck_assert_int_eq(json_object_array_length(ret), 0);
    json_object_put(ret);
    assert_daemon_healthy();
}
END_TEST

/* ---- suite ---- */

static Suite *qmp_suite(void)
{
    Suite *s = suite_create("qmp");
    TCase *tc;

    tc = qos_check_tcase(s, "protocol", setup, teardown, 60);
    tcase_add_test(tc, test_greeting);
    tcase_add_test(tc, test_negotiation);
    tcase_add_test(tc, test_negotiation_empty_args);
    tcase_add_test(tc, test_no_events_before_negotiation);
    tcase_add_test(tc, test_id_echo);
    tcase_add_test(tc, test_crlf_and_ascii);
    tcase_add_test(tc, test_request_errors);
    tcase_add_test(tc, test_single_quotes);
    tcase_add_test(tc, test_several_clients);
    tcase_add_test(tc, test_pipelined);
    tcase_add_test(tc, test_byte_at_a_time);

    tc = qos_check_tcase(s, "schema", setup_none, teardown, 30);
    tcase_add_test(tc, test_schema_docs);
    tcase_add_test(tc, test_keyval_to_json);
    tcase_add_test(tc, test_keyval_to_json_conflict);

    tc = qos_check_tcase(s, "core", setup, teardown, 60);
    tcase_add_test(tc, test_query_commands);
    tcase_add_test(tc, test_query_qmp_schema);
    tcase_add_test(tc, test_named_block_nodes);
    tcase_add_test(tc, test_latency_histograms);
    tcase_add_test(tc, test_query_stats);
    tcase_add_test(tc, test_human_monitor_command);
    tcase_add_test(tc, test_status_stop_cont);
    tcase_add_test(tc, test_quit);
    tcase_add_test(tc, test_sigterm_shutdown_event);
    tcase_add_test(tc, test_argument_checks);

    tc = qos_check_tcase(s, "devices", setup, teardown, 60);
    tcase_add_test(tc, test_query_pci);
    tcase_add_test(tc, test_query_vfio_user);
    tcase_add_test(tc, test_vfu_events);
    tcase_add_test(tc, test_device_add_del);
    tcase_add_test(tc, test_device_add_own_socket);
    tcase_add_test(tc, test_qom);
    tcase_add_test(tc, test_iothreads);

    tc = qos_check_tcase(s, "block", setup, teardown, 60);
    tcase_add_test(tc, test_block);
    tcase_add_test(tc, test_block_in_use);

    tc = qos_check_tcase(s, "net", setup, teardown, 30);
    tcase_add_test(tc, test_net);
    tcase_add_test(tc, test_net_nic);

    tc = qos_check_tcase(s, "hostile", setup, teardown, 120);
    tcase_add_test(tc, test_malformed_recovers);
    tcase_add_test(tc, test_flood_does_not_starve);
    tcase_add_test(tc, test_binary_garbage);
    tcase_add_test(tc, test_binary_garbage_then_resync);
    tcase_add_test(tc, test_huge_object);
    tcase_add_test(tc, test_slow_reader);
    tcase_add_test(tc, test_client_vanishes);

    tc = qos_check_tcase(s, "transports", setup_none, teardown, 60);
    tcase_add_test(tc, test_several_monitors);
    tcase_add_test(tc, test_bad_qmp_options);
    tcase_add_test(tc, test_stdio_monitor);
    return s;
}

int main(void)
{
    /* The daemons we start abort on a reply or event off the schema. */
    g_setenv("IOVD_QMP_STRICT", "1", true);
    return qos_check_run(qmp_suite());
}
