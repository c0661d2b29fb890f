/*
 * The QMP monitor: listeners (-qmp unix:PATH / tcp:HOST:PORT / stdio),
 * clients with their own negotiation, an incremental JSON parser per
 * client that recovers after malformed input, and a non-blocking output
 * queue per client.  Nothing here blocks the main loop: a client that does
 * not read its replies stops being read (its commands wait), and one whose
 * backlog grows past MON_OUT_MAX is dropped.
 *
 * A command may defer its reply (qmp_defer, qapi/qmp.h): its client's
 * next commands wait (replies stay in order) while the other clients are
 * served; a client that sent EOF meanwhile still gets the reply before it
 * is closed, and one closed meanwhile (an error, the daemon exiting) has
 * its session detached, so that the reply is dropped.
 */
#include "qapi/monitor.h"
#include "qapi/events.h"
#include "qapi/qmp.h"
#include "qapi/trace.h"
#include "util/error.h"
#include "util/keyval.h"
#include "util/log.h"
#include "util/loop.h"
#include "util/sockets.h"
#include "iovd.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#define MON_READ_CHUNK          (64u << 10)
#define MON_OUT_PAUSE           (1u << 20)  /* stop reading commands */
#define MON_OUT_MAX             (16u << 20) /* drop the client */
#define MON_MAX_CLIENTS         64          /* per listener */
#define MON_TOKENER_DEPTH       64
#define MON_FLUSH_TIMEOUT_MS    1000        /* at exit */
/*
 * Objects (commands or errors) one client gets handled per turn; then the
 * others get theirs: a client flooding the monitor delays nobody else.
 */
#define MON_OBJECTS_PER_TURN    16

typedef enum MonitorKind {
    MON_UNIX,
    MON_TCP,
    MON_STDIO,
} MonitorKind;

typedef struct Monitor {
    MonitorKind kind;
    char *desc;                 /* "unix:/path", "tcp:127.0.0.1:4444" */
    char *path;                 /* UNIX socket to remove at exit */
    int listen_fd;
    GList *clients;             /* of MonClient * */
} Monitor;

typedef struct MonClient {
    Monitor *mon;
    int in_fd, out_fd;          /* the same socket, or stdin / stdout */
    QmpSession sess;

    json_tokener *tok;
    GByteArray *in;             /* received, parsed up to in_off */
    size_t in_off;
    size_t obj_bytes;           /* of the object being parsed */
    bool obj_started;
    bool skipping;              /* after a parse error: up to the next '{' */
    unsigned objects;           /* commands and errors handled, ever */

    GString *out;               /* queued output, sent from out_off */
    size_t out_off;

    bool eof;                   /* the peer stopped sending */
    bool close_pending;         /* close once the output is out */
    bool deferred;              /* waits for the dispatch in progress */
    bool dead;                  /* closed; freed by reap_bh */
} MonClient;

static GList *monitors;
static GList *zombies;          /* closed clients, freed outside dispatch */
static GList *deferred_clients;
static LoopBH *reap_bh, *resume_bh;
static unsigned dispatch_depth;
static bool shutting_down;
static bool accept_paused;
static bool cleaned_up;
static bool have_stdio;

static void client_readable(void *opaque);
static void client_writable(void *opaque);
static void client_process(MonClient *c);

/* ---- output ---- */

static size_t client_backlog(MonClient *c)
{
    return c->out->len - c->out_off;
}

static void client_update_handlers(MonClient *c)
{
    bool want_read, want_write;

    if (c->dead) {
        return;
    }
    want_read = !c->eof && !c->close_pending && !c->deferred &&
                !c->sess.pending && !shutting_down &&
                c->in_off == c->in->len &&
                client_backlog(c) < MON_OUT_PAUSE;
    want_write = client_backlog(c) > 0;
    if (c->in_fd == c->out_fd) {
        loop_set_fd(loop_main(), c->in_fd, want_read ? client_readable : NULL,
                            want_write ? client_writable : NULL, c);
    } else {
        loop_set_fd(loop_main(), c->in_fd, want_read ? client_readable : NULL,
                            NULL, c);
        loop_set_fd(loop_main(), c->out_fd, NULL,
                            want_write ? client_writable : NULL, c);
    }
}

static void client_close(MonClient *c, const char *why)
{
    Monitor *mon = c->mon;

    if (c->dead) {
        return;
    }
    trace_monitor_client_close(c->in_fd, why);
    c->dead = true;
    loop_set_fd(loop_main(), c->in_fd, NULL, NULL, NULL);
    if (c->out_fd != c->in_fd) {
        loop_set_fd(loop_main(), c->out_fd, NULL, NULL, NULL);
    }
    if (mon->kind != MON_STDIO) {
        close(c->in_fd);
    }
    mon->clients = g_list_remove(mon->clients, c);
    qmp_session_detach(&c->sess);
    if (c->deferred) {
        deferred_clients = g_list_remove(deferred_clients, c);
        c->deferred = false;
    }
    zombies = g_list_prepend(zombies, c);
    if (reap_bh) {
        loop_bh_schedule(reap_bh);
    }
}

static void client_free(MonClient *c)
{
    json_tokener_free(c->tok);
    g_byte_array_unref(c->in);
    g_string_free(c->out, true);
    g_free(c);
}

static void reap_zombies(void *opaque)
{
    if (dispatch_depth) {
        /* A handler up the stack may hold a client: client_dispatch
         * schedules us again when it returns. */
        return;
    }
    g_list_free_full(g_steal_pointer(&zombies), (GDestroyNotify)client_free);
}

/* Write what the fd takes now; false when the client was closed. */
static bool client_flush(MonClient *c)
{
    while (client_backlog(c)) {
        ssize_t n = write(c->out_fd, c->out->str + c->out_off,
                          client_backlog(c));

        if (n > 0) {
            c->out_off += n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        client_close(c, n < 0 ? g_strerror(errno) : "write returned 0");
        return false;
    }
    if (c->out_off == c->out->len) {
        g_string_truncate(c->out, 0);
        c->out_off = 0;
    } else if (c->out_off >= MON_READ_CHUNK && c->out_off * 2 >= c->out->len) {
        g_string_erase(c->out, 0, c->out_off);
        c->out_off = 0;
    }
    return true;
}

static void client_send(MonClient *c, const char *data, size_t len)
{
    bool was_idle;

    if (c->dead) {
        return;
    }
    if (client_backlog(c) + len > MON_OUT_MAX) {
        iovd_warn("QMP %s: dropping a client that does not read its "
                  "replies and events (%zu bytes queued)", c->mon->desc,
                  client_backlog(c));
        client_close(c, "output backlog over the limit");
        return;
    }
    was_idle = client_backlog(c) == 0;
    g_string_append_len(c->out, data, len);
    if (!client_flush(c)) {
        return;
    }
    if (was_idle != (client_backlog(c) == 0) ||
        client_backlog(c) >= MON_OUT_PAUSE) {
        client_update_handlers(c);
    }
}

static void client_send_msg(MonClient *c, json_object *msg)
{
    g_autoptr(GString) line = g_string_sized_new(256);

    qmp_serialize(msg, line);
    client_send(c, line->str, line->len);
}

static void client_send_error(MonClient *c, const char *desc)
{
    g_autoptr(json_object) resp = qmp_error_response("GenericError", desc,
                                                     NULL, false);

    trace_monitor_parse_error(c->in_fd, desc);
    c->objects++;
    client_send_msg(c, resp);
}

void monitor_broadcast(const char *line, size_t len)
{
    for (GList *m = monitors; m; m = m->next) {
        Monitor *mon = m->data;
        GList *l = mon->clients;

        while (l) {
            MonClient *c = l->data;

            l = l->next;        /* client_send may close (unlink) c */
            if (c->sess.negotiated) {
                client_send(c, line, len);
            }
        }
    }
}

static void client_writable(void *opaque)
{
    MonClient *c = opaque;

    if (!client_flush(c)) {
        return;
    }
    if (client_backlog(c) == 0 && c->close_pending && !c->sess.pending) {
        client_close(c, "closed after the last reply");
        return;
    }
    if (c->in_off < c->in->len && client_backlog(c) < MON_OUT_PAUSE) {
        client_process(c);      /* commands that waited for the backlog */
        return;
    }
    client_update_handlers(c);
}

/* ---- input ---- */

/*
 * Bytes that force the parser back to a known-good state (qmp-spec:
 * "Forcing the JSON parser into known-good state"): ASCII control
 * characters other than tab, CR and LF, and 0xFF.
 */
static inline bool is_reset_byte(uint8_t b)
{
    return (b < 0x20 && b != '\t' && b != '\n' && b != '\r') || b == 0xff;
}

static inline bool is_space(uint8_t b)
{
    return b == ' ' || b == '\t' || b == '\n' || b == '\r';
}

static void parser_reset(MonClient *c)
{
    json_tokener_reset(c->tok);
    c->obj_started = false;
    c->obj_bytes = 0;
}

static void resume_deferred(void *opaque)
{
    GList *list;

    if (dispatch_depth) {
        return;                 /* rescheduled when the dispatch ends */
    }
    list = g_steal_pointer(&deferred_clients);
    for (GList *l = list; l; l = l->next) {
        MonClient *c = l->data;

        c->deferred = false;
    }
    for (GList *l = list; l; l = l->next) {
        MonClient *c = l->data;

        /* An earlier one's command may have closed it (it is freed
         * only by reap_bh, later). */
        if (!c->dead) {
            client_process(c);
        }
    }
    g_list_free(list);
}

static void client_defer(MonClient *c)
{
    if (!c->deferred) {
        c->deferred = true;
        deferred_clients = g_list_append(deferred_clients, c);
    }
    client_update_handlers(c);
}

static void client_dispatch(MonClient *c, json_object *req)
{
    json_object *resp;

    c->objects++;
    dispatch_depth++;
    resp = qmp_dispatch(&c->sess, req);
    dispatch_depth--;
    if (resp) {
        client_send_msg(c, resp);
        json_object_put(resp);
    }
    if (dispatch_depth == 0) {
        if (deferred_clients) {
            loop_bh_schedule(resume_bh);
        }
        if (zombies) {
            loop_bh_schedule(reap_bh);
        }
    }
}

static void client_too_big(MonClient *c)
{
    g_autofree char *msg = g_strdup_printf(
        "JSON object larger than %u bytes: closing the connection",
        QMP_MAX_OBJECT_SIZE);

    client_send_error(c, msg);
    parser_reset(c);
    c->in_off = c->in->len;
    c->eof = true;
    c->close_pending = true;
}

/* Parse (and execute) what the input holds at in_off, one step. */
static void client_parse_step(MonClient *c)
{
    const char *buf = (const char *)c->in->data;
    size_t len = c->in->len;
    size_t off = c->in_off;
    size_t end = off, used;
    enum json_tokener_error jerr;
    json_object *obj;

    if (c->skipping) {
        const char *p = memchr(buf + off, '{', len - off);

        c->in_off = p ? (size_t)(p - buf) : len;
        c->skipping = !p;
        return;
    }
    while (end < len && !is_reset_byte(buf[end])) {
        end++;
    }
    if (end == off) {
        /* A control character: the object in progress is abandoned. */
        if (c->obj_started) {
            client_send_error(c, "JSON parse error, invalid control "
                              "character in the input");
        }
        parser_reset(c);
        c->in_off = off + 1;
        return;
    }
    if (!c->obj_started) {
        while (off < end && is_space(buf[off])) {
            off++;
        }
        c->in_off = off;
        if (off == end) {
            return;
        }
    }
    obj = json_tokener_parse_ex(c->tok, buf + off, end - off);
    jerr = json_tokener_get_error(c->tok);
    used = jerr == json_tokener_continue ? end - off
                                         : json_tokener_get_parse_end(c->tok);
    c->obj_bytes += used;
    if (c->obj_bytes > QMP_MAX_OBJECT_SIZE) {
        json_object_put(obj);
        client_too_big(c);
        return;
    }
    if (jerr == json_tokener_continue) {
        c->obj_started = true;
        c->in_off = end;
        return;
    }
    if (jerr != json_tokener_success) {
        g_autofree char *msg = g_strdup_printf(
            "JSON parse error, %s", json_tokener_error_desc(jerr));

        client_send_error(c, msg);
        parser_reset(c);
        /* Resume at the next object: skip past the offending byte. */
        c->in_off = off + MIN(used + 1, end - off);
        c->skipping = true;
        return;
    }
    c->in_off = off + used;
    parser_reset(c);
    client_dispatch(c, obj);
    json_object_put(obj);
}

static void client_process(MonClient *c)
{
    unsigned turn_end = c->objects + MON_OBJECTS_PER_TURN;

    if (dispatch_depth) {
        client_defer(c);
        return;
    }
    while (!c->dead && c->in_off < c->in->len && !c->sess.pending) {
        if (shutting_down) {
            c->in_off = c->in->len;     /* commands after quit: ignored */
            break;
        }
        if (client_backlog(c) >= MON_OUT_PAUSE) {
            break;      /* client_writable resumes once it reads */
        }
        if (c->objects == turn_end) {
            /* The others' turn: resume_deferred continues this one. */
            client_defer(c);
            loop_bh_schedule(resume_bh);
            return;
        }
        client_parse_step(c);
    }
    if (c->dead) {
        return;
    }
    if (c->in_off == c->in->len) {
        g_byte_array_set_size(c->in, 0);
        c->in_off = 0;
        if (c->eof) {
            c->close_pending = true;
        }
    }
    if (c->close_pending && client_backlog(c) == 0 && !c->sess.pending) {
        client_close(c, c->eof ? "end of input" : "closed");
        return;
    }
    client_update_handlers(c);
}

static void client_readable(void *opaque)
{
    MonClient *c = opaque;
    size_t have = c->in->len;
    ssize_t n;

    if (dispatch_depth) {
        client_defer(c);        /* a command is running up the stack */
        return;
    }
    g_byte_array_set_size(c->in, have + MON_READ_CHUNK);
    do {
        n = read(c->in_fd, c->in->data + have, MON_READ_CHUNK);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        g_byte_array_set_size(c->in, have);
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        }
        client_close(c, g_strerror(errno));
        return;
    }
    g_byte_array_set_size(c->in, have + n);
    if (n == 0) {
        c->eof = true;
        if (c->obj_started) {
            trace_monitor_parse_error(c->in_fd, "truncated object at EOF");
        }
    }
    client_process(c);
}

/* A deferred reply: send it, then the client's next commands. */
static void client_send_reply(QmpSession *s, json_object *resp)
{
    MonClient *c = container_of(s, MonClient, sess);

    client_send_msg(c, resp);
    if (!c->dead) {
        client_defer(c);
        loop_bh_schedule(resume_bh);
    }
}

static MonClient *client_new(Monitor *mon, int in_fd, int out_fd)
{
    MonClient *c = g_new0(MonClient, 1);
    g_autoptr(json_object) greeting = qmp_greeting();

    c->mon = mon;
    c->in_fd = in_fd;
    c->out_fd = out_fd;
    c->sess.send_reply = client_send_reply;
    c->tok = json_tokener_new_ex(MON_TOKENER_DEPTH);
    json_tokener_set_flags(c->tok, JSON_TOKENER_VALIDATE_UTF8);
    c->in = g_byte_array_new();
    c->out = g_string_sized_new(1024);
    mon->clients = g_list_append(mon->clients, c);
    trace_monitor_client_open(mon->desc, in_fd);
    client_send_msg(c, greeting);
    client_update_handlers(c);
    return c;
}

/* ---- listeners ---- */

static void monitor_accept(void *opaque)
{
    Monitor *mon = opaque;
    int fd = accept4(mon->listen_fd, NULL, NULL,
                     SOCK_CLOEXEC | SOCK_NONBLOCK);
    int one = 1;

    if (fd < 0) {
        return;
    }
    if (shutting_down) {
        close(fd);
        return;
    }
    if (g_list_length(mon->clients) >= MON_MAX_CLIENTS) {
        iovd_warn("QMP %s: refusing a client: %d are connected",
                  mon->desc, MON_MAX_CLIENTS);
        close(fd);
        return;
    }
    if (mon->kind == MON_TCP) {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    client_new(mon, fd, fd);
}

static Monitor *monitor_new(MonitorKind kind, const char *desc)
{
    Monitor *mon = g_new0(Monitor, 1);

    mon->kind = kind;
    mon->desc = g_strdup(desc);
    mon->listen_fd = -1;
    monitors = g_list_append(monitors, mon);
    return mon;
}

static void monitor_start_listening(Monitor *mon, int fd)
{
    mon->listen_fd = fd;
    loop_set_fd(loop_main(), fd, accept_paused ? NULL : monitor_accept,
                NULL, mon);
    trace_monitor_listen(mon->desc);
}

void monitor_pause_accept(bool pause)
{
    accept_paused = pause;
    for (GList *m = monitors; m; m = m->next) {
        Monitor *mon = m->data;

        if (mon->listen_fd >= 0) {
            loop_set_fd(loop_main(), mon->listen_fd,
                        pause ? NULL : monitor_accept, NULL, mon);
        }
    }
}

static bool listen_unix(const char *path, GError **errp)
{
    g_autofree char *desc = g_strdup_printf("unix:%s", path);
    Monitor *mon;
    int fd;

    fd = unix_listen(path, 16, "the monitor", errp);
    if (fd < 0) {
        return false;
    }
    mon = monitor_new(MON_UNIX, desc);
    mon->path = g_strdup(path);
    monitor_start_listening(mon, fd);
    return true;
}

/* Split "HOST:PORT", "[V6]:PORT" or ":PORT" (any address). */
static bool split_host_port(const char *s, char **host, char **port,
                            GError **errp)
{
    const char *colon;

    if (s[0] == '[') {
        const char *close_br = strchr(s, ']');

        if (!close_br || close_br[1] != ':') {
            error_setg(errp, "'%s': expected [ADDRESS]:PORT", s);
            return false;
        }
        *host = g_strndup(s + 1, close_br - s - 1);
        *port = g_strdup(close_br + 2);
    } else {
        colon = strrchr(s, ':');
        if (!colon) {
            error_setg(errp, "'%s': expected HOST:PORT", s);
            return false;
        }
        *host = g_strndup(s, colon - s);
        *port = g_strdup(colon + 1);
    }
    if (!**port) {
        error_setg(errp, "'%s': missing port", s);
        g_clear_pointer(host, g_free);
        g_clear_pointer(port, g_free);
        return false;
    }
    return true;
}

static bool listen_tcp(const char *hostport, bool allow_remote,
                       GError **errp)
{
    g_autofree char *host = NULL, *port = NULL;
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
        .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
    };
    struct addrinfo *res = NULL, *ai;
    int fd = -1, r, err = 0;
    char hbuf[NI_MAXHOST], pbuf[NI_MAXSERV];
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    g_autofree char *desc = NULL;
    Monitor *mon;

    if (!split_host_port(hostport, &host, &port, errp)) {
        return false;
    }
    r = getaddrinfo(*host ? host : NULL, port, &hints, &res);
    if (r != 0) {
        error_setg(errp, "'%s': %s", hostport, gai_strerror(r));
        return false;
    }
    if (!allow_remote) {
        for (ai = res; ai; ai = ai->ai_next) {
            if (!inet_is_loopback(ai->ai_addr)) {
                error_setg(errp, "'%s' is not a loopback address: a QMP "
                           "client there could control the daemon; add "
                           "allow-remote=on to listen on it anyway",
                           *host ? host : "(any address)");
                freeaddrinfo(res);
                return false;
            }
        }
    }
    for (ai = res; ai; ai = ai->ai_next) {
        int one = 1;

        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC |
                    SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            listen(fd, 16) == 0) {
            break;
        }
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        error_setg_errno(errp, err, "cannot listen on '%s'", hostport);
        return false;
    }
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
        getnameinfo((struct sockaddr *)&ss, sl, hbuf, sizeof(hbuf), pbuf,
                    sizeof(pbuf), NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
        desc = g_strdup_printf(ss.ss_family == AF_INET6 ? "tcp:[%s]:%s"
                                                        : "tcp:%s:%s",
                               hbuf, pbuf);
    } else {
        desc = g_strdup_printf("tcp:%s", hostport);
    }
    if (strcmp(port, "0") == 0) {
        iovd_log("QMP listening on %s", desc);
    }
    mon = monitor_new(MON_TCP, desc);
    monitor_start_listening(mon, fd);
    return true;
}

static bool open_stdio(GError **errp)
{
    Monitor *mon;

    if (have_stdio) {
        error_setg(errp, "only one monitor can use stdio");
        return false;
    }
    have_stdio = true;
    g_unix_set_fd_nonblocking(STDIN_FILENO, true, NULL);
    g_unix_set_fd_nonblocking(STDOUT_FILENO, true, NULL);
    mon = monitor_new(MON_STDIO, "stdio");
    client_new(mon, STDIN_FILENO, STDOUT_FILENO);
    return true;
}

/* ---- -qmp ---- */

/*
 * QEMU's older spelling "server,nowait" has flags without '=': rewrite
 * them as server=on, wait=off, wait=on for the keyval parser.
 */
static char *normalize_flags(const char *arg)
{
    g_autoptr(GString) out = g_string_new(NULL);
    const char *p = arg;

    while (*p) {
        g_autoptr(GString) elem = g_string_new(NULL);

        while (*p && !(p[0] == ',' && p[1] != ',')) {
            if (p[0] == ',' && p[1] == ',') {
                g_string_append(elem, ",,");
                p += 2;
                continue;
            }
            g_string_append_c(elem, *p++);
        }
        if (out->len) {
            g_string_append_c(out, ',');
        }
        if (strcmp(elem->str, "server") == 0) {
            g_string_append(out, "server=on");
        } else if (strcmp(elem->str, "nowait") == 0) {
            g_string_append(out, "wait=off");
        } else if (strcmp(elem->str, "wait") == 0) {
            g_string_append(out, "wait=on");
        } else {
            g_string_append(out, elem->str);
        }
        if (*p == ',') {
            p++;
        }
    }
    return g_string_free(g_steal_pointer(&out), false);
}

static bool get_bool_opt(Keyval *kv, const char *key, bool def, bool *out,
                         GError **errp)
{
    const char *v = keyval_get(kv, key);

    *out = def;
    if (v && !parse_bool(v, out, errp)) {
        error_prepend(errp, "%s: ", key);
        return false;
    }
    return true;
}

static bool opt_qmp(const char *arg, GError **errp)
{
    g_autofree char *norm = NULL;
    g_autoptr(Keyval) kv = NULL;
    const char *addr;
    bool server, wait, allow_remote;

    if (strcmp(arg, "stdio") == 0) {
        return open_stdio(errp);
    }
    norm = normalize_flags(arg);
    kv = keyval_parse(norm, "addr", errp);
    if (!kv) {
        return false;
    }
    addr = keyval_get(kv, "addr");
    if (!keyval_get(kv, "server")) {
        /* QEMU would connect to @addr as a client; iovd only listens */
        iovd_warn("-qmp %s: no server=on: listening anyway (iovd's monitor "
                  "is always a server)", arg);
    }
    if (!get_bool_opt(kv, "server", true, &server, errp) ||
        !get_bool_opt(kv, "wait", false, &wait, errp) ||
        !get_bool_opt(kv, "allow-remote", false, &allow_remote, errp)) {
        return false;
    }
    keyval_get(kv, "id");       /* accepted and ignored, as a label */
    if (!keyval_check_unused(kv, errp)) {
        return false;
    }
    if (!server) {
        error_setg(errp, "only server=on is supported: iovd listens, "
                   "clients connect");
        return false;
    }
    if (wait) {
        error_setg(errp, "wait=on is not supported: iovd never waits for a "
                   "monitor client (use wait=off)");
        return false;
    }
    if (!addr) {
        error_setg(errp, "expected unix:PATH, tcp:HOST:PORT or stdio");
        return false;
    }
    if (g_str_has_prefix(addr, "unix:")) {
        if (keyval_get(kv, "allow-remote") && allow_remote) {
            error_setg(errp, "allow-remote applies to tcp: only");
            return false;
        }
        return listen_unix(addr + strlen("unix:"), errp);
    }
    if (g_str_has_prefix(addr, "tcp:")) {
        return listen_tcp(addr + strlen("tcp:"), allow_remote, errp);
    }
    error_setg(errp, "'%s': expected unix:PATH, tcp:HOST:PORT or stdio",
               addr);
    return false;
}

static const IovdOption monitor_options[] = {
    { "qmp", true, PHASE_MONITOR, opt_qmp,
      "-qmp unix:PATH[,server=on,wait=off]  QMP monitor on a UNIX socket\n"
      "  -qmp tcp:HOST:PORT[,allow-remote=on]  QMP over TCP (loopback only "
      "unless\n"
      "                         allow-remote=on)\n"
      "  -qmp stdio             QMP on stdin/stdout (-qmp may repeat)" },
    { NULL }
};

/* ---- shutdown ---- */

static void monitor_shutdown_hook(const char *reason)
{
    json_object *data = json_object_new_object();

    if (g_str_has_prefix(reason, "SIG")) {
        reason = "host-signal";
    }
    json_object_object_add(data, "guest", json_object_new_boolean(false));
    json_object_object_add(data, "reason", json_object_new_string(reason));
    qapi_event_send("SHUTDOWN", data);
    shutting_down = true;
}

static void client_final_flush(MonClient *c, int64_t deadline_ms)
{
    while (!c->dead && client_backlog(c)) {
        struct pollfd pfd = { .fd = c->out_fd, .events = POLLOUT };
        int64_t left = deadline_ms - g_get_monotonic_time() / 1000;

        if (left <= 0 || poll(&pfd, 1, left) <= 0) {
            break;
        }
        if (!client_flush(c)) {
            break;
        }
    }
}

void monitor_cleanup(void)
{
    int64_t deadline = g_get_monotonic_time() / 1000 + MON_FLUSH_TIMEOUT_MS;

    if (cleaned_up) {
        return;
    }
    cleaned_up = true;
    shutting_down = true;
    for (GList *m = monitors; m; m = m->next) {
        Monitor *mon = m->data;

        if (mon->listen_fd >= 0) {
            loop_set_fd(loop_main(), mon->listen_fd, NULL, NULL, NULL);
            unix_listen_close(mon->listen_fd);  /* removes mon->path */
            mon->listen_fd = -1;
        }
        for (GList *l = mon->clients; l; l = l->next) {
            client_final_flush(l->data, deadline);
        }
        while (mon->clients) {
            client_close(mon->clients->data, "daemon exits");
        }
    }
    g_list_free_full(g_steal_pointer(&zombies), (GDestroyNotify)client_free);
    g_list_free(g_steal_pointer(&deferred_clients));
    while (monitors) {
        Monitor *mon = monitors->data;

        monitors = g_list_remove(monitors, mon);
        g_free(mon->desc);
        g_free(mon->path);
        g_free(mon);
    }
    loop_bh_delete(g_steal_pointer(&reap_bh));
    loop_bh_delete(g_steal_pointer(&resume_bh));
}

static void monitor_atexit(void)
{
    monitor_cleanup();
}

void monitor_init(void)
{
    static bool done;

    if (done) {
        return;
    }
    done = true;
    reap_bh = loop_bh_new(loop_main(), reap_zombies, NULL);
    resume_bh = loop_bh_new(loop_main(), resume_deferred, NULL);
    iovd_register_options(monitor_options);
    iovd_add_shutdown_hook(monitor_shutdown_hook);
    qmp_events_init();
    atexit(monitor_atexit);
}
