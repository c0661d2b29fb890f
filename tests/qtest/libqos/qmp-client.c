/*
 * A QMP client for tests.
 */
#include "util/osdep.h"

#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "tests/qtest/libqos/qmp-client.h"

#define QMP_CLIENT_MAX_LINE (32u << 20)

struct QmpClient {
    int in_fd, out_fd;
    int timeout_ms;
    GString *buf;               /* received bytes not yet split */
    json_object *greeting;
    GQueue events;              /* of json_object * */
    int64_t next_id;
};

static QmpClient *client_alloc(int in_fd, int out_fd)
{
    QmpClient *c = g_new0(QmpClient, 1);

    c->in_fd = in_fd;
    c->out_fd = out_fd;
    c->timeout_ms = QOS_TIMEOUT_MS;
    c->buf = g_string_new(NULL);
    c->next_id = 1;
    g_queue_init(&c->events);
    return c;
}

static void read_greeting(QmpClient *c)
{
    json_object *g = qmp_client_recv_wait(c);
    json_object *qmp;

    if (!json_object_object_get_ex(g, "QMP", &qmp) ||
        !json_object_is_type(qmp, json_type_object)) {
        qos_fail("expected the QMP greeting, got %s", qmp_json(g));
    }
    c->greeting = g;
}

QmpClient *qmp_client_new_fds(int in_fd, int out_fd, bool greeting)
{
    QmpClient *c = client_alloc(in_fd, out_fd);

    if (greeting) {
        read_greeting(c);
    }
    return c;
}

QmpClient *qmp_client_connect(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd;

    qos_assert(strlen(path) < sizeof(sa.sun_path), "path too long: %s",
               path);
    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        qos_fail("cannot connect to the monitor %s: %s", path,
                 g_strerror(errno));
    }
    return qmp_client_new_fds(fd, fd, true);
}

QmpClient *qmp_client_connect_tcp(const char *host, int port)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
    g_autofree char *ports = g_strdup_printf("%d", port);
    struct addrinfo *res, *ai;
    int fd = -1, r;

    r = getaddrinfo(host, ports, &hints, &res);
    if (r) {
        qos_fail("getaddrinfo(%s): %s", host, gai_strerror(r));
    }
    for (ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        qos_fail("cannot connect to the monitor %s:%d: %s", host, port,
                 g_strerror(errno));
    }
    return qmp_client_new_fds(fd, fd, true);
}

QmpClient *qmp_client_open(const char *path)
{
    QmpClient *c = qmp_client_connect(path);

    qmp_client_negotiate(c);
    return c;
}

void qmp_client_free(QmpClient *c)
{
    if (!c) {
        return;
    }
    if (c->in_fd >= 0) {
        close(c->in_fd);
    }
    if (c->out_fd >= 0 && c->out_fd != c->in_fd) {
        close(c->out_fd);
    }
    qmp_client_clear_events(c);
    json_object_put(c->greeting);
    g_string_free(c->buf, true);
    g_free(c);
}

void qmp_client_set_timeout(QmpClient *c, int timeout_ms)
{
    c->timeout_ms = timeout_ms;
}

int qmp_client_fd(QmpClient *c)
{
    return c->in_fd;
}

json_object *qmp_client_greeting(QmpClient *c)
{
    return c->greeting;
}

const char *qmp_json(json_object *obj)
{
    return json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
                                          JSON_C_TO_STRING_NOSLASHESCAPE);
}

void qmp_client_negotiate(QmpClient *c)
{
    json_object *ret = qmp_ok(c, "qmp_capabilities", NULL);

    qos_assert(json_object_is_type(ret, json_type_object) &&
               json_object_object_length(ret) == 0,
               "qmp_capabilities returned %s, expected {}", qmp_json(ret));
    json_object_put(ret);
}

/* ---- wire ---- */

bool qmp_client_try_send_raw(QmpClient *c, const void *buf, size_t len)
{
    const char *p = buf;
    int64_t deadline = qos_deadline(c->timeout_ms);

    while (len) {
        ssize_t n = send(c->out_fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n < 0 && errno == ENOTSOCK) {
            n = write(c->out_fd, p, len);
        }
        if (n > 0) {
            p += n;
            len -= n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* The daemon is slow to read: wait, but not forever. */
            if (!qos_poll_fd(c->out_fd, POLLOUT, deadline)) {
                qos_fail("the monitor did not accept %zu more bytes within "
                         "%d ms", len, c->timeout_ms);
            }
            continue;
        }
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
            return false;
        }
        qos_fail("send to the monitor: %s", g_strerror(errno));
    }
    return true;
}

void qmp_client_send_raw(QmpClient *c, const void *buf, size_t len)
{
    if (!qmp_client_try_send_raw(c, buf, len)) {
        qos_fail("the monitor closed the connection while we sent");
    }
}

void qmp_client_send_str(QmpClient *c, const char *s)
{
    qmp_client_send_raw(c, s, strlen(s));
}

/* Split one line off the buffer: true and *msg when there is one. */
static bool take_line(QmpClient *c, json_object **msg)
{
    char *nl = memchr(c->buf->str, '\n', c->buf->len);
    g_autofree char *line = NULL;
    size_t len;
    enum json_tokener_error jerr;
    json_tokener *tok;

    if (!nl) {
        if (c->buf->len > QMP_CLIENT_MAX_LINE) {
            qos_fail("monitor line longer than %u bytes",
                     QMP_CLIENT_MAX_LINE);
        }
        return false;
    }
    len = nl - c->buf->str;
    line = g_strndup(c->buf->str, len);
    g_string_erase(c->buf, 0, len + 1);
    if (len == 0 || line[len - 1] != '\r') {
        qos_fail("monitor line does not end in CRLF: %s", line);
    }
    line[len - 1] = '\0';
    for (size_t i = 0; i + 1 < len; i++) {
        if ((unsigned char)line[i] >= 0x80) {
            qos_fail("monitor output is not ASCII: %s", line);
        }
    }
    tok = json_tokener_new();
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    *msg = json_tokener_parse_ex(tok, line, len - 1);
    jerr = json_tokener_get_error(tok);
    if (jerr == json_tokener_success &&
        json_tokener_get_parse_end(tok) != len - 1) {
        jerr = json_tokener_error_parse_unexpected;
    }
    json_tokener_free(tok);
    if (jerr != json_tokener_success ||
        !json_object_is_type(*msg, json_type_object)) {
        qos_fail("monitor sent a line that is not one JSON object (%s): %s",
                 json_tokener_error_desc(jerr), line);
    }
    return true;
}

/* Read more; false on timeout.  @eof_ok: return true at EOF with *eof. */
static bool fill(QmpClient *c, int64_t deadline, bool *eof)
{
    char chunk[65536];
    ssize_t n;

    *eof = false;
    if (!qos_poll_fd(c->in_fd, POLLIN, deadline)) {
        return false;
    }
    do {
        n = read(c->in_fd, chunk, sizeof(chunk));
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno == ECONNRESET) {
        n = 0;
    }
    if (n < 0) {
        qos_fail("read from the monitor: %s", g_strerror(errno));
    }
    if (n == 0) {
        *eof = true;
        return true;
    }
    g_string_append_len(c->buf, chunk, n);
    return true;
}

json_object *qmp_client_recv(QmpClient *c, int timeout_ms)
{
    int64_t deadline = qos_deadline(timeout_ms);
    json_object *msg;
    bool eof;

    for (;;) {
        if (take_line(c, &msg)) {
            return msg;
        }
        if (!fill(c, deadline, &eof)) {
            return NULL;
        }
        if (eof) {
            qos_fail("the monitor closed the connection (pending: %.200s)",
                     c->buf->str);
        }
    }
}

json_object *qmp_client_recv_wait(QmpClient *c)
{
    json_object *msg = qmp_client_recv(c, c->timeout_ms);

    if (!msg) {
        qos_fail("nothing from the monitor within %d ms", c->timeout_ms);
    }
    return msg;
}

bool qmp_client_wait_eof(QmpClient *c, int timeout_ms)
{
    int64_t deadline = qos_deadline(timeout_ms);
    bool eof;

    for (;;) {
        if (!fill(c, deadline, &eof)) {
            return false;
        }
        if (eof) {
            return true;
        }
        g_string_truncate(c->buf, 0);
    }
}

/* ---- commands ---- */

static json_object *parse_args(const char *args)
{
    json_object *o;
    enum json_tokener_error jerr;

    o = json_tokener_parse_verbose(args, &jerr);
    if (!o) {
        qos_fail("test bug: bad JSON (%s): %s", json_tokener_error_desc(jerr),
                 args);
    }
    return o;
}

static json_object *wait_response_ms(QmpClient *c, int64_t id,
                                     const char *what, int timeout_ms)
{
    int64_t deadline = qos_deadline(timeout_ms);

    for (;;) {
        json_object *msg = qmp_client_recv(c, qos_remaining_ms(deadline));
        json_object *rid;

        if (!msg) {
            qos_fail("no response to %s (id %" PRId64 ") within %d ms", what,
                     id, timeout_ms);
        }
        if (json_object_object_get_ex(msg, "event", NULL)) {
            g_queue_push_tail(&c->events, msg);
            continue;
        }
        if (!json_object_object_get_ex(msg, "id", &rid) ||
            !json_object_is_type(rid, json_type_int) ||
            json_object_get_int64(rid) != id) {
            qos_fail("response to %s: expected id %" PRId64 ", got %s", what,
                     id, qmp_json(msg));
        }
        if (!json_object_object_get_ex(msg, "return", NULL) &&
            !json_object_object_get_ex(msg, "error", NULL)) {
            qos_fail("response to %s has neither return nor error: %s",
                     what, qmp_json(msg));
        }
        return msg;
    }
}

static json_object *wait_response(QmpClient *c, int64_t id, const char *what)
{
    return wait_response_ms(c, id, what, c->timeout_ms);
}

json_object *qmp_client_request(QmpClient *c, const char *request)
{
    json_object *req = parse_args(request);
    int64_t id = c->next_id++;
    g_autofree char *text = NULL;

    json_object_object_add(req, "id", json_object_new_int64(id));
    text = g_strdup_printf("%s\r\n", qmp_json(req));
    json_object_put(req);
    qmp_client_send_str(c, text);
    return wait_response(c, id, request);
}

int64_t qmp_client_send_cmd(QmpClient *c, const char *cmd, const char *args)
{
    json_object *req = json_object_new_object();
    int64_t id = c->next_id++;
    g_autofree char *text = NULL;

    json_object_object_add(req, "execute", json_object_new_string(cmd));
    if (args) {
        json_object_object_add(req, "arguments", parse_args(args));
    }
    json_object_object_add(req, "id", json_object_new_int64(id));
    text = g_strdup_printf("%s\n", qmp_json(req));
    json_object_put(req);
    qmp_client_send_str(c, text);
    return id;
}

json_object *qmp_client_wait_response(QmpClient *c, int64_t id,
                                      int timeout_ms)
{
    g_autofree char *what = g_strdup_printf("command %" PRId64, id);

    return wait_response_ms(c, id, what,
                            timeout_ms ? timeout_ms : c->timeout_ms);
}

json_object *qmp_client_execute(QmpClient *c, const char *cmd,
                                const char *args)
{
    return wait_response(c, qmp_client_send_cmd(c, cmd, args), cmd);
}

json_object *qmp_client_executef(QmpClient *c, const char *cmd,
                                 const char *args_fmt, ...)
{
    g_autofree char *args = NULL;
    va_list ap;

    va_start(ap, args_fmt);
    args = g_strdup_vprintf(args_fmt, ap);
    va_end(ap);
    return qmp_client_execute(c, cmd, args);
}

json_object *qmp_ok(QmpClient *c, const char *cmd, const char *args)
{
    json_object *resp = qmp_client_execute(c, cmd, args);
    json_object *ret;

    if (!json_object_object_get_ex(resp, "return", &ret)) {
        qos_fail("%s %s failed: %s", cmd, args ? args : "", qmp_json(resp));
    }
    ret = json_object_get(ret);
    json_object_put(resp);
    return ret;
}

json_object *qmp_okf(QmpClient *c, const char *cmd, const char *args_fmt,
                     ...)
{
    g_autofree char *args = NULL;
    va_list ap;

    va_start(ap, args_fmt);
    args = g_strdup_vprintf(args_fmt, ap);
    va_end(ap);
    return qmp_ok(c, cmd, args);
}

char *qmp_err(QmpClient *c, const char *cls, const char *cmd,
              const char *args)
{
    json_object *resp = qmp_client_execute(c, cmd, args);
    json_object *err;
    const char *got_cls, *desc;
    char *ret;

    if (!json_object_object_get_ex(resp, "error", &err)) {
        qos_fail("%s %s should have failed (%s), but: %s", cmd,
                 args ? args : "", cls ? cls : "any class", qmp_json(resp));
    }
    got_cls = qmp_get_str(err, "class");
    desc = qmp_get_str(err, "desc");
    if (cls && strcmp(cls, got_cls) != 0) {
        qos_fail("%s %s: expected error class %s, got %s (%s)", cmd,
                 args ? args : "", cls, got_cls, desc);
    }
    qos_assert(*desc, "%s: empty error description", cmd);
    ret = g_strdup(desc);
    json_object_put(resp);
    return ret;
}

char *qmp_errf(QmpClient *c, const char *cls, const char *cmd,
               const char *args_fmt, ...)
{
    g_autofree char *args = NULL;
    va_list ap;

    va_start(ap, args_fmt);
    args = g_strdup_vprintf(args_fmt, ap);
    va_end(ap);
    return qmp_err(c, cls, cmd, args);
}

/* ---- events ---- */

static json_object *take_event(QmpClient *c, const char *name)
{
    for (GList *l = c->events.head; l; l = l->next) {
        json_object *ev = l->data;

        if (!name || strcmp(qmp_get_str(ev, "event"), name) == 0) {
            g_queue_delete_link(&c->events, l);
            return ev;
        }
    }
    return NULL;
}

static void check_event(json_object *ev)
{
    json_object *ts = qmp_get(ev, "timestamp");

    qmp_get_int(ts, "seconds");
    qmp_get_int(ts, "microseconds");
    qos_assert(json_object_is_type(qmp_get(ev, "event"), json_type_string),
               "event name is not a string: %s", qmp_json(ev));
}

json_object *qmp_client_poll_event(QmpClient *c, const char *name,
                                   int timeout_ms)
{
    int64_t deadline = qos_deadline(timeout_ms);
    json_object *ev = take_event(c, name);

    while (!ev) {
        json_object *msg = qmp_client_recv(c, qos_remaining_ms(deadline));

        if (!msg) {
            return NULL;
        }
        if (!json_object_object_get_ex(msg, "event", NULL)) {
            qos_fail("expected an event, got %s", qmp_json(msg));
        }
        check_event(msg);
        g_queue_push_tail(&c->events, msg);
        ev = take_event(c, name);
    }
    return ev;
}

json_object *qmp_client_wait_event(QmpClient *c, const char *name,
                                   int timeout_ms)
{
    int t = timeout_ms > 0 ? timeout_ms : c->timeout_ms;
    json_object *ev = qmp_client_poll_event(c, name, t);

    if (!ev) {
        qos_fail("no %s event within %d ms", name ? name : "", t);
    }
    return ev;
}

unsigned qmp_client_event_count(QmpClient *c)
{
    return g_queue_get_length(&c->events);
}

void qmp_client_clear_events(QmpClient *c)
{
    json_object *ev;

    while ((ev = g_queue_pop_head(&c->events))) {
        json_object_put(ev);
    }
}

/* ---- helpers ---- */

json_object *qmp_get(json_object *obj, const char *key)
{
    json_object *v;

    if (!json_object_is_type(obj, json_type_object) ||
        !json_object_object_get_ex(obj, key, &v)) {
        qos_fail("no member '%s' in %s", key, qmp_json(obj));
    }
    return v;
}

const char *qmp_get_str(json_object *obj, const char *key)
{
    json_object *v = qmp_get(obj, key);

    qos_assert(json_object_is_type(v, json_type_string),
               "member '%s' is not a string in %s", key, qmp_json(obj));
    return json_object_get_string(v);
}

int64_t qmp_get_int(json_object *obj, const char *key)
{
    json_object *v = qmp_get(obj, key);

    qos_assert(json_object_is_type(v, json_type_int),
               "member '%s' is not an integer in %s", key, qmp_json(obj));
    return json_object_get_int64(v);
}

bool qmp_get_bool(json_object *obj, const char *key)
{
    json_object *v = qmp_get(obj, key);

    qos_assert(json_object_is_type(v, json_type_boolean),
               "member '%s' is not a boolean in %s", key, qmp_json(obj));
    return json_object_get_boolean(v);
}

int64_t qmp_stat(QmpClient *c, const char *dev, int queue,
                 const char *provider, const char *name)
{
    g_autofree char *path = queue < 0 ?
        g_strdup_printf("/machine/peripheral/%s", dev) :
        g_strdup_printf("/machine/peripheral/%s/queue[%d]", dev, queue);
    json_object *ret = qmp_okf(c, "query-stats",
                               "{'target': '%s', 'devices': ['%s'], "
                               "'providers': [{'provider': '%s', "
                               "'names': ['%s']}]}",
                               queue < 0 ? "device" : "queue", dev,
                               provider, name);
    int64_t value = -1;

    for (size_t i = 0; i < json_object_array_length(ret); i++) {
        json_object *r = json_object_array_get_idx(ret, i);
        json_object *stats = qmp_get(r, "stats");

        qos_assert(!strcmp(qmp_get_str(r, "provider"), provider),
                   "query-stats answered for another provider: %s",
                   qmp_json(r));
        if (strcmp(qmp_get_str(r, "qom-path"), path) != 0) {
            continue;
        }
        qos_assert(json_object_array_length(stats) == 1,
                   "query-stats gave other values than '%s': %s", name,
                   qmp_json(r));
        qos_assert(!strcmp(qmp_get_str(json_object_array_get_idx(stats, 0),
                                       "name"), name),
                   "query-stats gave another value: %s", qmp_json(r));
        value = qmp_get_int(json_object_array_get_idx(stats, 0), "value");
    }
    json_object_put(ret);
    return value;
}
