/*
 * iovd-ctl: run one QMP command against an iovd monitor and print the
 * reply, or follow its events.
 *
 *     iovd-ctl -s /run/iovd/qmp.sock query-pci
 *     iovd-ctl -s /run/iovd/qmp.sock device_add nvme,id=n1,drive=d1,socket=S
 *     iovd-ctl -s /run/iovd/qmp.sock blockdev-add '{"driver": "null", ...}'
 *     iovd-ctl -s /run/iovd/qmp.sock --events
 *
 * Arguments are key=value pairs typed by the schema compiled into the
 * daemon (the same tables: booleans on/off, sizes with k/M/G suffixes,
 * dotted keys for nested members), or one JSON object.  Exit status: 0 on
 * success, 1 on an error reply, 2 on a usage or connection problem.
 */
#include "util/osdep.h"
#include "util/error.h"
#include "util/keyval.h"
#include "qapi/schema.h"

#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

enum { EXIT_ERROR_REPLY = 1, EXIT_USAGE = 2 };

#define CTL_LINE_MAX (64u << 20)

typedef struct Ctl {
    int fd;
    GString *buf;               /* received, not yet split into lines */
    int timeout_ms;             /* -1: none */
    bool pretty, raw, quiet;
} Ctl;

static G_GNUC_NORETURN G_GNUC_PRINTF(2, 3)
void die(int status, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "iovd-ctl: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(status);
}

/* ---- connection ---- */

static int connect_unix(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        die(EXIT_USAGE, "socket path too long: %s", path);
    }
    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        die(EXIT_USAGE, "cannot connect to %s: %s", path, g_strerror(errno));
    }
    return fd;
}

static int connect_tcp(const char *hostport)
{
    g_autofree char *host = NULL;
    const char *colon = strrchr(hostport, ':');
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
    struct addrinfo *res, *ai;
    int fd = -1, r, err = ECONNREFUSED;

    if (!colon) {
        die(EXIT_USAGE, "expected tcp:HOST:PORT, got tcp:%s", hostport);
    }
    host = g_strndup(hostport, colon - hostport);
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host) - 2);
        host[strlen(host) - 2] = '\0';
    }
    r = getaddrinfo(*host ? host : "localhost", colon + 1, &hints, &res);
    if (r) {
        die(EXIT_USAGE, "tcp:%s: %s", hostport, gai_strerror(r));
    }
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            break;
        }
        err = errno;
        if (fd >= 0) {
            close(fd);
        }
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        die(EXIT_USAGE, "cannot connect to tcp:%s: %s", hostport,
            g_strerror(err));
    }
    return fd;
}

/* The next line from the daemon, parsed; NULL at EOF. */
static json_object *ctl_recv(Ctl *c)
{
    int64_t deadline = c->timeout_ms < 0 ? -1 :
                       g_get_monotonic_time() / 1000 + c->timeout_ms;

    for (;;) {
        char *nl = memchr(c->buf->str, '\n', c->buf->len);
        struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
        char chunk[65536];
        ssize_t n;
        int wait_ms = -1;

        if (nl) {
            g_autofree char *line = g_strndup(c->buf->str,
                                              nl - c->buf->str);
            json_object *msg;
            enum json_tokener_error jerr;

            g_string_erase(c->buf, 0, nl - c->buf->str + 1);
            g_strchomp(line);
            if (!*line) {
                continue;
            }
            msg = json_tokener_parse_verbose(line, &jerr);
            if (!msg) {
                die(EXIT_USAGE, "malformed reply from the daemon (%s): %s",
                    json_tokener_error_desc(jerr), line);
            }
            return msg;
        }
        if (c->buf->len > CTL_LINE_MAX) {
            die(EXIT_USAGE, "reply line longer than %u bytes", CTL_LINE_MAX);
        }
        if (deadline >= 0) {
            wait_ms = deadline - g_get_monotonic_time() / 1000;
            if (wait_ms <= 0) {
                die(EXIT_USAGE, "nothing received within %d ms",
                    c->timeout_ms);
            }
        }
        if (poll(&pfd, 1, wait_ms) < 0) {
            if (errno == EINTR) {
                continue;
            }
            die(EXIT_USAGE, "poll: %s", g_strerror(errno));
        }
        if (!pfd.revents) {
            continue;   /* the deadline check above ends it */
        }
        n = read(c->fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            die(EXIT_USAGE, "read: %s", g_strerror(errno));
        }
        if (n == 0) {
            return NULL;
        }
        g_string_append_len(c->buf, chunk, n);
    }
}

static void ctl_send(Ctl *c, json_object *msg)
{
    g_autofree char *line = g_strdup_printf(
        "%s\n", json_object_to_json_string_ext(
            msg, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    size_t off = 0, len = strlen(line);

    while (off < len) {
        ssize_t n = write(c->fd, line + off, len - off);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            die(EXIT_USAGE, "write: %s", g_strerror(errno));
        }
        off += n;
    }
}

static void print_json(Ctl *c, json_object *v, FILE *out)
{
    int flags = JSON_C_TO_STRING_NOSLASHESCAPE |
                (c->pretty ? JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED
                           : JSON_C_TO_STRING_PLAIN);

    if (c->raw && json_object_is_type(v, json_type_string)) {
        fprintf(out, "%s\n", json_object_get_string(v));
        return;
    }
    /* json-c pretty-prints empty containers over two lines. */
    if (json_object_is_type(v, json_type_object) &&
        json_object_object_length(v) == 0) {
        fprintf(out, "{}\n");
        return;
    }
    if (json_object_is_type(v, json_type_array) &&
        json_object_array_length(v) == 0) {
        fprintf(out, "[]\n");
        return;
    }
    fprintf(out, "%s\n", json_object_to_json_string_ext(v, flags));
}

static void print_event(Ctl *c, json_object *ev)
{
    print_json(c, ev, stdout);
    fflush(stdout);
}

/*
 * Send @cmd with @args (owned) and wait for its reply; events that arrive
 * meanwhile are printed when @show_events.  Returns the reply.
 */
static json_object *ctl_execute(Ctl *c, const char *cmd, json_object *args,
                                const char *id, bool show_events)
{
    json_object *req = json_object_new_object();

    json_object_object_add(req, "execute", json_object_new_string(cmd));
    if (args) {
        json_object_object_add(req, "arguments", args);
    }
    json_object_object_add(req, "id", json_object_new_string(id));
    ctl_send(c, req);
    json_object_put(req);
    for (;;) {
        json_object *msg = ctl_recv(c), *rid;

        if (!msg) {
            die(EXIT_USAGE, "the daemon closed the connection before "
                "answering %s", cmd);
        }
        if (json_object_object_get_ex(msg, "event", NULL)) {
            if (show_events) {
                print_event(c, msg);
            }
            json_object_put(msg);
            continue;
        }
        if (json_object_object_get_ex(msg, "id", &rid) &&
            json_object_is_type(rid, json_type_string) &&
            strcmp(json_object_get_string(rid), id) == 0) {
            return msg;
        }
        json_object_put(msg);   /* not ours */
    }
}

static void ctl_connect(Ctl *c, const char *sock)
{
    json_object *greeting, *reply;

    c->fd = g_str_has_prefix(sock, "tcp:") ? connect_tcp(sock + 4)
          : connect_unix(g_str_has_prefix(sock, "unix:") ? sock + 5 : sock);
    c->buf = g_string_new(NULL);
    greeting = ctl_recv(c);
    if (!greeting || !json_object_object_get_ex(greeting, "QMP", NULL)) {
        die(EXIT_USAGE, "%s: no QMP greeting", sock);
    }
    json_object_put(greeting);
    reply = ctl_execute(c, "qmp_capabilities", NULL, "iovd-ctl-negotiate",
                        false);
    if (!json_object_object_get_ex(reply, "return", NULL)) {
        die(EXIT_USAGE, "capabilities negotiation failed: %s",
            json_object_to_json_string(reply));
    }
    json_object_put(reply);
}

/* ---- arguments ---- */

/* The member a bare first value stands for: the first mandatory one. */
static const char *implied_key(const QapiCommandDef *def)
{
    for (unsigned i = 0; def && i < def->args->n_members; i++) {
        if (!def->args->members[i].optional) {
            return def->args->members[i].name;
        }
    }
    return NULL;
}

static json_object *build_args(const char *cmd, char **words, int n)
{
    const QapiCommandDef *def = qapi_command_find(cmd);
    g_autofree char *joined = NULL;
    g_autoptr(Keyval) kv = NULL;
    g_autoptr(GError) err = NULL;
    json_object *args;

    if (n == 0) {
        return NULL;
    }
    joined = g_strjoinv(",", words);
    if (n == 1 && joined[0] == '{') {
        enum json_tokener_error jerr;

        args = json_tokener_parse_verbose(joined, &jerr);
        if (!args || !json_object_is_type(args, json_type_object)) {
            die(EXIT_USAGE, "arguments: not a JSON object (%s)",
                args ? "not an object" : json_tokener_error_desc(jerr));
        }
        return args;
    }
    kv = keyval_parse(joined, implied_key(def), &err);
    if (!kv) {
        die(EXIT_USAGE, "arguments: %s", err->message);
    }
    if (!def) {
        /* Unknown here (an older iovd-ctl?): send strings, let it judge. */
        args = json_object_new_object();
        for (guint i = 0; i < kv->pairs->len; i++) {
            KeyvalPair *p = g_ptr_array_index(kv->pairs, i);

            json_object_object_add(args, p->key,
                                   json_object_new_string(p->value));
        }
        return args;
    }
    args = qapi_keyval_to_json(def->args, kv, &err);
    if (!args) {
        die(EXIT_USAGE, "%s: %s", cmd, err->message);
    }
    return args;
}

/* ---- help ---- */

static void describe_type(const QapiType *t, GString *out)
{
    if (t->kind == QAPI_KIND_ARRAY) {
        g_string_append_c(out, '[');
        describe_type(t->element, out);
        g_string_append_c(out, ']');
    } else {
        g_string_append(out, t->name);
    }
}

static void print_wrapped(const char *indent, const char *text)
{
    g_auto(GStrv) words = g_strsplit(text, " ", -1);
    size_t col = 0;

    for (char **w = words; *w; w++) {
        if (col == 0) {
            col = printf("%s%s", indent, *w);
        } else if (col + 1 + strlen(*w) > 78) {
            col = printf("\n%s%s", indent, *w) - 1;
        } else {
            col += printf(" %s", *w);
        }
    }
    if (col) {
        printf("\n");
    }
}

static void help_command(const QapiCommandDef *def)
{
    g_autoptr(GString) ret = g_string_new(NULL);

    printf("%s\n", def->name);
    print_wrapped("    ", def->doc);
    for (unsigned i = 0; i < def->args->n_members; i++) {
        const QapiMember *m = &def->args->members[i];
        g_autoptr(GString) type = g_string_new(NULL);

        describe_type(m->type, type);
        printf("    %s=<%s>%s\n", m->name, type->str,
               m->optional ? " (optional)" : "");
        if (m->doc) {
            print_wrapped("        ", m->doc);
        }
    }
    if (def->args->allow_extra) {
        printf("    ...=<value>  further properties\n");
    }
    if (def->ret) {
        describe_type(def->ret, ret);
        printf("    returns %s\n", ret->str);
    }
}

static int help(const char *cmd)
{
    if (cmd) {
        const QapiCommandDef *def = qapi_command_find(cmd);

        if (!def) {
            die(EXIT_USAGE, "unknown command '%s' (iovd-ctl help lists "
                "them)", cmd);
        }
        help_command(def);
        return 0;
    }
    printf("Commands (iovd-ctl help COMMAND describes one):\n");
    for (unsigned i = 0; i < qapi_n_commands; i++) {
        printf("  %s\n", qapi_commands[i].name);
    }
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out,
        "Usage: iovd-ctl [-s SOCKET] [options] COMMAND [KEY=VALUE,...|JSON]\n"
        "       iovd-ctl [-s SOCKET] --events [--count N]\n"
        "       iovd-ctl help [COMMAND]\n"
        "\n"
        "Run one QMP command on an iovd monitor and print its reply.\n"
        "Arguments are key=value pairs (several words are joined with\n"
        "','; dotted keys for nested members; typed by the schema) or one\n"
        "JSON object.  The first value may omit its key when it is the\n"
        "command's first required argument: device_del n1,\n"
        "device_add nvme,id=n1,drive=d1,socket=/tmp/n1.sock\n"
        "\n"
        "Options:\n"
        "  -s, --socket PATH     the monitor: a UNIX socket path or\n"
        "                        tcp:HOST:PORT (default: $IOVD_QMP_SOCKET)\n"
        "  -e, --events          print events as they arrive (after the\n"
        "                        command, if one is given) until the daemon\n"
        "                        closes the connection\n"
        "  -n, --count N         with --events: stop after N events\n"
        "  -w, --timeout SECS    give up when a reply (or with --count, the\n"
        "                        events) take longer (default 60; 0: none)\n"
        "  -p, --pretty          pretty-print events too (replies are\n"
        "                        pretty-printed unless --compact)\n"
        "  -c, --compact         print replies on one line\n"
        "  -r, --raw             print a string result without quotes\n"
        "  -q, --quiet           print nothing on success\n"
        "  -H, --human           a query's result as text (query-pci,\n"
        "                        query-block, query-blockstats, query-status,\n"
        "                        query-iothreads, query-vfio-user,\n"
        "                        query-stats)\n"
        "  -h, --help            this text\n"
        "\n"
        "Exit status: 0 success, 1 error reply, 2 usage or connection "
        "error.\n");
}

/* What the command line asks, besides the command itself. */
typedef struct CtlOpts {
    const char *sock;
    bool events, compact, pretty_events, human;
    long count, timeout_s;
} CtlOpts;

/* Options into @o and @c; -1 to go on, else the exit status. */
static int parse_opts(int argc, char **argv, CtlOpts *o, Ctl *c)
{
    static const struct option longopts[] = {
        { "socket", required_argument, NULL, 's' },
        { "events", no_argument, NULL, 'e' },
        { "count", required_argument, NULL, 'n' },
        { "timeout", required_argument, NULL, 'w' },
        { "pretty", no_argument, NULL, 'p' },
        { "compact", no_argument, NULL, 'c' },
        { "raw", no_argument, NULL, 'r' },
        { "quiet", no_argument, NULL, 'q' },
        { "human", no_argument, NULL, 'H' },
        { "help", no_argument, NULL, 'h' },
        { NULL }
    };
    char *end;
    int opt;

    while ((opt = getopt_long(argc, argv, "s:en:w:pcrqHh", longopts,
                              NULL)) != -1) {
        switch (opt) {
        case 's':
            o->sock = optarg;
            break;
        case 'e':
            o->events = true;
            break;
        case 'n':
            o->count = strtol(optarg, &end, 10);
            if (*end || o->count < 0) {
                die(EXIT_USAGE, "--count: '%s' is not a count", optarg);
            }
            break;
        case 'w':
            o->timeout_s = strtol(optarg, &end, 10);
            if (*end || o->timeout_s < 0 || o->timeout_s > INT_MAX / 1000) {
                die(EXIT_USAGE, "--timeout: '%s' is not a number of "
                    "seconds", optarg);
            }
            break;
        case 'p':
            o->pretty_events = true;
            break;
        case 'c':
            o->compact = true;
            break;
        case 'r':
            c->raw = true;
            break;
        case 'q':
            c->quiet = true;
            break;
        case 'H':
            o->human = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    return -1;
}

/*
 * Execute @cmd with @args (taken); print its return (a string as text with
 * @human) or its error.  The exit status.
 */
static int run_command(Ctl *c, const char *cmd, json_object *args,
                       bool events, bool human)
{
    json_object *reply, *ret, *err;
    int status = 0;

    reply = ctl_execute(c, cmd, args, "iovd-ctl", events);
    if (json_object_object_get_ex(reply, "error", &err)) {
        json_object *cls = NULL, *desc = NULL;

        json_object_object_get_ex(err, "class", &cls);
        json_object_object_get_ex(err, "desc", &desc);
        fprintf(stderr, "iovd-ctl: %s: %s\n",
                cls ? json_object_get_string(cls) : "Error",
                desc ? json_object_get_string(desc) : "(no description)");
        status = EXIT_ERROR_REPLY;
    } else if (json_object_object_get_ex(reply, "return", &ret) &&
               !c->quiet) {
        if (human) {
            /* the human monitor's CRLF lines, as lines */
            for (const char *p = json_object_get_string(ret); *p; p++) {
                if (*p != '\r') {
                    putchar(*p);
                }
            }
        } else {
            print_json(c, ret, stdout);
        }
    }
    json_object_put(reply);
    fflush(stdout);
    return status;
}

/*
 * -H query-X: the monitor's own text for it (human-monitor-command
 * "info X"), the same for every client.
 */
static int run_human(Ctl *c, const char *cmd, bool events)
{
    json_object *args = json_object_new_object();
    g_autofree char *line = NULL;

    if (!g_str_has_prefix(cmd, "query-")) {
        die(EXIT_USAGE, "-H: for query commands (query-status, query-pci, "
            "query-block, query-blockstats, query-iothreads, "
            "query-vfio-user, query-stats)");
    }
    line = g_strdup_printf("info %s", cmd + strlen("query-"));
    json_object_object_add(args, "command-line",
                           json_object_new_string(line));
    return run_command(c, "human-monitor-command", args, events, true);
}

/* Print events until @count of them (-1: until the daemon goes away). */
static void follow_events(Ctl *c, long count, bool pretty)
{
    c->pretty = pretty;
    c->raw = false;
    if (count < 0) {
        c->timeout_ms = -1;
    }
    while (count != 0) {
        json_object *msg = ctl_recv(c);

        if (!msg) {
            break;
        }
        if (json_object_object_get_ex(msg, "event", NULL)) {
            print_event(c, msg);
            if (count > 0) {
                count--;
            }
        }
        json_object_put(msg);
    }
}

int main(int argc, char **argv)
{
    CtlOpts o = {
        .sock = g_getenv("IOVD_QMP_SOCKET"), .count = -1, .timeout_s = 60,
    };
    Ctl c = { .fd = -1, .pretty = true };
    int status;

    signal(SIGPIPE, SIG_IGN);
    status = parse_opts(argc, argv, &o, &c);
    if (status >= 0) {
        return status;
    }
    if (optind < argc && strcmp(argv[optind], "help") == 0) {
        return help(optind + 1 < argc ? argv[optind + 1] : NULL);
    }
    if (optind >= argc && !o.events) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!o.sock || !*o.sock) {
        die(EXIT_USAGE, "no socket: use -s PATH or set IOVD_QMP_SOCKET");
    }
    c.timeout_ms = o.timeout_s ? o.timeout_s * 1000 : -1;
    c.pretty = !o.compact;
    ctl_connect(&c, o.sock);
    if (optind < argc) {
        status = o.human ? run_human(&c, argv[optind], o.events)
                 : run_command(&c, argv[optind],
                               build_args(argv[optind], argv + optind + 1,
                                          argc - optind - 1),
                               o.events, false);
        if (status || !o.events) {
            return status;
        }
    }
    follow_events(&c, o.count, o.pretty_events);
    return 0;
}
