/*
 * iovd: a user-space PCI device emulator daemon.  VMMs attach to each
 * device over its own vfio-user socket.
 *
 * main: options, start-up in dependency order, readiness, orderly
 * shutdown on SIGTERM / SIGINT.
 */
#include "util/osdep.h"
#include "util/error.h"
#include "util/keyval.h"
#include "util/log.h"
#include "util/iothread.h"
#include "util/loop.h"
#include "util/sandbox.h"
#include "util/savestate.h"
#include "util/trace.h"
#include "hw/core/device.h"
#include "hw/core/upgrade.h"
#include "hw/vfio-user/vfio-user.h"
#include "block/block.h"
#include "net/net.h"
#include "qapi/events.h"
#include "qapi/monitor.h"
#include "iovd.h"

#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>

typedef struct PendingOpt {
    const IovdOption *opt;
    const char *arg;
} PendingOpt;

static char *pidfile;
static int ready_fd = -1;
static char *incoming;          /* -incoming unix:PATH */

static bool opt_device(const char *arg, GError **errp)
{
    g_autoptr(Keyval) kv = keyval_parse(arg, "driver", errp);

    return kv && device_create(kv, errp) != NULL;
}

/* -device help, -device DRIVER,help (anywhere in the list). */
static bool help_device(const char *arg, FILE *out, GError **errp)
{
    g_autofree char *driver = keyval_help_subject(arg, "driver");

    if (!driver) {
        iovd_print_device_types(out);
        return true;
    }
    return iovd_print_device_help(driver, out, errp);
}

static void print_trace_event(TraceEvent *ev, void *opaque)
{
    fprintf(opaque, "%s\n", ev->name);
}

/* -trace help: every event (-trace takes globs of these names). */
static bool help_trace(const char *arg, FILE *out, GError **errp)
{
    trace_foreach(print_trace_event, out);
    return true;
}

static bool opt_trace(const char *arg, GError **errp)
{
    const char *pattern = arg;

    if (g_str_has_prefix(arg, "enable=")) {
        pattern = arg + strlen("enable=");
    }
    if (!*pattern) {
        error_setg(errp, "empty trace pattern");
        return false;
    }
    if (trace_enable_pattern(pattern, true) == 0) {
        iovd_warn("-trace %s: no trace event matches", pattern);
    }
    return true;
}

static bool opt_d(const char *arg, GError **errp)
{
    g_auto(GStrv) items = g_strsplit(arg, ",", -1);

    for (char **p = items; *p; p++) {
        if (strcmp(*p, "guest_errors") == 0) {
            trace_enable_guest_errors();
        } else {
            error_setg(errp, "unknown log item '%s' (known: guest_errors)",
                       *p);
            return false;
        }
    }
    return true;
}

static bool opt_pidfile(const char *arg, GError **errp)
{
    g_free(pidfile);
    pidfile = g_strdup(arg);
    return true;
}

static bool opt_ready_fd(const char *arg, GError **errp)
{
    uint64_t fd;

    if (!parse_uint(arg, &fd, errp)) {
        return false;
    }
    if (fd > INT32_MAX || fcntl(fd, F_GETFD) < 0) {
        error_setg(errp, "fd %s is not open", arg);
        return false;
    }
    ready_fd = fd;
    fcntl(ready_fd, F_SETFD, FD_CLOEXEC);
    return true;
}

/* The new process of a live upgrade runs every device. */
static void upgrade_completed_event(void)
{
    json_object *data = json_object_new_object();

    if (upgrade_from_pid() > 0) {
        json_object_object_add(data, "from-pid",
                               json_object_new_int64(upgrade_from_pid()));
    }
    qapi_event_send("UPGRADE_COMPLETED", data);
}

static bool opt_incoming(const char *arg, GError **errp)
{
    if (!g_str_has_prefix(arg, "unix:") || !arg[5]) {
        error_setg(errp, "expected unix:PATH");
        return false;
    }
    g_free(incoming);
    incoming = g_strdup(arg);
    return true;
}

static bool opt_sandbox(const char *arg, GError **errp)
{
    bool on;

    if (!strcmp(arg, "log")) {
        sandbox_set_mode(SANDBOX_LOG);
        return true;
    }
    if (!parse_bool(arg, &on, errp)) {
        error_prepend(errp, "expected on, off or log: ");
        return false;
    }
    sandbox_set_mode(on ? SANDBOX_ON : SANDBOX_OFF);
    return true;
}

static bool opt_run_with(const char *arg, GError **errp)
{
    g_autoptr(Keyval) kv = keyval_parse(arg, NULL, errp);
    const char *user;

    if (!kv) {
        return false;
    }
    user = keyval_get(kv, "user");
    if (!user) {
        error_setg(errp, "expected user=NAME or user=UID:GID");
        return false;
    }
    return sandbox_set_run_as(user, errp) && keyval_check_unused(kv, errp);
}

static const IovdOption core_options[] = {
    { "device", true, PHASE_DEVICE, opt_device,
      "-device DRIVER,id=ID,socket=PATH[,prop=value...]  add a device "
      "(-device help lists drivers, -device DRIVER,help their properties)",
      help_device },
    { "trace", true, -1, opt_trace,
      "-trace [enable=]PATTERN  enable trace events matching a glob "
      "(-trace help lists them)", help_trace },
    { "d", true, -1, opt_d,
      "-d guest_errors        log guest errors (the *_err_* trace events)" },
    { "pidfile", true, -1, opt_pidfile,
      "-pidfile FILE          write the daemon's pid to FILE (locked while "
      "iovd runs)" },
    { "ready-fd", true, -1, opt_ready_fd,
      "-ready-fd N            write one byte to fd N and close it once "
      "every socket listens" },
    { "sandbox", true, -1, opt_sandbox,
      "-sandbox on|off|log    seccomp allow-list once started (default on; "
      "log: only\n                         log what it would forbid, to "
      "the kernel's audit log)" },
    { "incoming", true, -1, opt_incoming,
      "-incoming unix:PATH    take over a running iovd (live upgrade): "
      "listen at PATH\n                         for its state; the running "
      "one is told by QMP 'upgrade'" },
    { "run-with", true, -1, opt_run_with,
      "-run-with user=U       drop root (U: NAME or UID:GID) once the "
      "command line's\n                         sockets are bound" },
    { NULL }
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: iovd [options]\n"
            "A user-space PCI device emulator: each -device is served to a "
            "VMM over its own\nvfio-user socket.\n\nOptions:\n");
    iovd_print_options(out);
    fprintf(out,
            "  -h, --help             this text\n"
            "  -V, --version          print the version\n\n"
            "Socket activation (LISTEN_FDS / LISTEN_FDNAMES) gives sockets to "
            "devices\nwithout socket= or fd=; NOTIFY_SOCKET gets READY=1 once "
            "every socket listens.\n");
}

static void print_class(const DeviceClass *cls, void *opaque)
{
    fprintf(opaque, "  %-16s %s\n", cls->name, cls->desc);
}

void iovd_print_device_types(FILE *out)
{
    fprintf(out, "Device types:\n");
    device_class_foreach(print_class, out);
}

bool iovd_print_device_help(const char *driver, FILE *out, GError **errp)
{
    const DeviceClass *cls = device_class_find(driver);
    const PropDef *tabs[3];
    unsigned n;

    if (!cls) {
        error_setg(errp, "unknown device type '%s' (try -device help)",
                   driver);
        return false;
    }
    fprintf(out, "%s: %s\nProperties:\n", cls->name, cls->desc);
    n = device_class_props(cls, tabs);
    for (unsigned i = 0; i < n; i++) {
        props_print_help(tabs[i], out);
    }
    return true;
}

/* ---- readiness ---- */

/* NOTIFY_SOCKET as systemd gave it (sd_notify(3)'s protocol), or empty. */
static struct sockaddr_un notify_addr;
static socklen_t notify_len;

/* Take NOTIFY_SOCKET out of the environment (children must not see it). */
static void notify_init(void)
{
    const char *ns = getenv("NOTIFY_SOCKET");

    if (ns && (ns[0] == '/' || ns[0] == '@') &&
        strlen(ns) < sizeof(notify_addr.sun_path)) {
        notify_addr.sun_family = AF_UNIX;
        memcpy(notify_addr.sun_path, ns, strlen(ns));
        if (ns[0] == '@') {
            notify_addr.sun_path[0] = '\0';     /* abstract namespace */
        }
        notify_len = offsetof(struct sockaddr_un, sun_path) + strlen(ns);
    }
    unsetenv("NOTIFY_SOCKET");
}

static void notify_send(const char *msg)
{
    int fd;

    if (!notify_len) {
        return;
    }
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        if (sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&notify_addr,
                   notify_len) < 0) {
            iovd_warn("NOTIFY_SOCKET: %s", g_strerror(errno));
        }
        close(fd);
    }
}

static void notify_ready(void)
{
    if (ready_fd >= 0) {
        char c = 'R';

        if (write(ready_fd, &c, 1) != 1) {
            iovd_warn("-ready-fd: write failed: %s", g_strerror(errno));
        }
        close(ready_fd);
        ready_fd = -1;
    }
    notify_send("READY=1");
}

/* ---- signals ---- */

/*
 * SIGTERM, SIGINT and SIGHUP (a closed terminal) all mean an orderly
 * shutdown.  They arrive on a signalfd in the main loop.
 */
static int signal_fd = -1;
static sigset_t signal_set;

/* First thing in main: every thread created later inherits the mask. */
static void signals_block(void)
{
    sigemptyset(&signal_set);
    sigaddset(&signal_set, SIGTERM);
    sigaddset(&signal_set, SIGINT);
    sigaddset(&signal_set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signal_set, NULL);
}

static void on_signal(void *opaque)
{
    struct signalfd_siginfo si;

    while (read(signal_fd, &si, sizeof(si)) == sizeof(si)) {
        iovd_request_shutdown(si.ssi_signo == SIGINT ? "SIGINT" :
                              si.ssi_signo == SIGHUP ? "SIGHUP" : "SIGTERM");
    }
}

static void signals_init(EventLoop *loop)
{
    signal_fd = signalfd(-1, &signal_set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (signal_fd >= 0) {
        loop_set_fd(loop, signal_fd, on_signal, NULL, NULL);
    }
}

/*
 * Write our pid to -pidfile, holding a write lock on it for as long as we
 * run (as QEMU does): a second daemon on the same file is refused instead
 * of overwriting it.  An open file description lock, so that it moves
 * with the fd in a live upgrade (a process's fcntl lock would not).
 */
static int pidfile_fd = -1;
static bool pidfile_adopted;    /* from the iovd this one took over */

/* Our pid into the locked -pidfile @fd. */
static bool put_pid(int fd, GError **errp)
{
    g_autofree char *s = g_strdup_printf("%d\n", getpid());

    if (ftruncate(fd, 0) < 0 || pwrite(fd, s, strlen(s), 0) !=
        (ssize_t)strlen(s)) {
        error_setg_errno(errp, errno, "cannot write");
        return false;
    }
    return true;
}

static bool write_pidfile(GError **errp)
{
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
    int fd = open(pidfile, O_RDWR | O_CREAT | O_CLOEXEC, 0644);

    if (fd < 0) {
        error_setg_errno(errp, errno, "cannot open");
        return false;
    }
    if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
        char other[32] = "";
        ssize_t n = pread(fd, other, sizeof(other) - 1, 0);

        other[MAX(n, 0)] = '\0';
        g_strstrip(other);
        error_setg(errp, "in use by another running iovd%s%s%s",
                   *other ? " (pid " : "", other, *other ? ")" : "");
        close(fd);
        return false;
    }
    if (!put_pid(fd, errp)) {
        close(fd);
        return false;
    }
    pidfile_fd = fd;
    return true;
}

/*
 * Live upgrade: the pidfile moves, its path and locked fd; the new
 * process writes its pid there once it runs the devices (an upgrade that
 * fails before leaves the old pid).
 */
#define PIDFILE_UPGRADE_VERSION 1

static bool pidfile_save(StateWriter *w, GArray *fds, GError **errp)
{
    if (pidfile_fd >= 0) {
        state_begin(w, "pidfile", PIDFILE_UPGRADE_VERSION);
        state_put_str(w, "path", pidfile);
        state_put_u32(w, "fd", fds->len);
        g_array_append_val(fds, pidfile_fd);
        state_end(w);
    }
    return true;
}

static bool pidfile_prepare(StateReader *r, int *fds, unsigned nfds,
                            GError **errp)
{
    StateSection *s;
    uint32_t i;

    if (!state_has_section(r, "pidfile")) {
        return true;
    }
    s = state_section(r, "pidfile", PIDFILE_UPGRADE_VERSION, NULL, errp);
    if (!s) {
        return false;
    }
    g_free(pidfile);
    pidfile = state_get_str(s, "path");
    i = state_get_u32(s, "fd");
    if (!pidfile || i >= nfds || fds[i] < 0) {
        state_section_fail(s, "no pidfile or no fd for it");
    } else {
        pidfile_fd = fds[i];
        fds[i] = -1;
        pidfile_adopted = true;
    }
    return state_section_end(s, errp);
}

static void pidfile_pause(bool pause)
{
    g_autoptr(GError) err = NULL;

    /* The new process runs: the file says so (the old one never goes on). */
    if (!pause && pidfile_adopted && !put_pid(pidfile_fd, &err)) {
        iovd_warn("-pidfile %s: %s", pidfile, err->message);
    }
}

static const UpgradeParticipant pidfile_upgrade = {
    .name = "pidfile",
    .pause = pidfile_pause,
    .save = pidfile_save,
    .prepare = pidfile_prepare,
};

/* Subsystems come up before options are applied, and go after devices. */
void iovd_modules_init(void)
{
    iothread_init();
    blk_init();
    net_init();
    monitor_init();
}

void iovd_modules_cleanup(void)
{
    monitor_cleanup();
    net_cleanup_all();
    blk_flush_all_sync();
    blk_node_delete_all();
    iothread_delete_all();
}

/*
 * Read the command line: options without a phase apply now, the others are
 * appended to @pending.  Returns -1 to go on, else the exit status (after
 * --help, --version or an error).
 */
static int parse_args(int argc, char **argv, GArray *pending)
{
    GError *err = NULL;
    int status;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const IovdOption *o;
        PendingOpt p;

        if (!strcmp(a, "-h") || !strcmp(a, "--help") || !strcmp(a, "-help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "-V") || !strcmp(a, "--version") ||
            !strcmp(a, "-version")) {
            printf("iovd %s\n", IOVD_VERSION);
            return 0;
        }
        if (a[0] != '-' || !(o = iovd_find_option(a + 1 + (a[1] == '-')))) {
            error_report("unknown option '%s' (see --help)", a);
            return 1;
        }
        if (o->has_arg && i + 1 >= argc) {
            error_report("%s: requires an argument", a);
            return 1;
        }
        p.opt = o;
        p.arg = o->has_arg ? argv[++i] : NULL;
        status = iovd_option_help(o, p.arg);
        if (status >= 0) {
            return status;
        }
        if (o->phase < 0) {
            if (!o->apply(p.arg, &err)) {
                error_report("-%s %s: %s", o->name, p.arg ? p.arg : "",
                             err->message);
                g_error_free(err);
                return 1;
            }
            continue;
        }
        g_array_append_val(pending, p);
    }
    return -1;
}

/* Does the command line create a device or a monitor? */
static bool serves_anything(GArray *pending)
{
    for (guint i = 0; i < pending->len; i++) {
        int phase = g_array_index(pending, PendingOpt, i).opt->phase;

        if (phase == PHASE_DEVICE || phase == PHASE_MONITOR) {
            return true;
        }
    }
    return false;
}

/* Apply @pending in dependency order (objects, nodes, netdevs, ...). */
static bool apply_phases(GArray *pending)
{
    GError *err = NULL;

    for (int phase = 0; phase < PHASE_COUNT; phase++) {
        for (guint i = 0; i < pending->len; i++) {
            PendingOpt *p = &g_array_index(pending, PendingOpt, i);

            if (p->opt->phase != phase) {
                continue;
            }
            if (!p->opt->apply(p->arg, &err)) {
                error_report("-%s %s: %s", p->opt->name, p->arg ? p->arg : "",
                             err->message);
                g_error_free(err);
                return false;
            }
            upgrade_record_option(p->opt->name, p->arg);
        }
    }
    return true;
}

static void remove_pidfile(void)
{
    if (pidfile_fd >= 0) {
        unlink(pidfile);        /* while we still hold the lock */
        close(pidfile_fd);
        pidfile_fd = -1;
    }
}

/* Undo a start-up that failed midway; the exit status. */
static int startup_failed(void)
{
    device_destroy_all();
    iovd_modules_cleanup();
    remove_pidfile();
    return 1;
}

int main(int argc, char **argv)
{
    g_autoptr(GArray) pending = g_array_new(false, false, sizeof(PendingOpt));
    GError *err = NULL;
    EventLoop *main_loop;
    int status;

    signals_block();
    main_loop = loop_new("main", &err);
    if (!main_loop) {
        error_report("%s", err->message);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    loop_attach_thread(main_loop);
    loop_set_main(main_loop);
    /* Adaptive: polls only while events come faster than 32 us apart. */
    loop_set_poll_params(main_loop, LOOP_POLL_MAX_NS_DEFAULT, 0, 0);
    iovd_register_options(core_options);
    iovd_register_upgrade_participant(&pidfile_upgrade);
    iovd_modules_init();
    notify_init();
    vfu_activation_init();
    vfu_transport_init();

    status = parse_args(argc, argv, pending);
    if (status >= 0) {
        return status;
    }
    if (incoming && pidfile) {
        error_report("-incoming: the pidfile is the running iovd's, and "
                     "moves here; give no -pidfile");
        return 1;
    }
    if (incoming && pending->len) {
        error_report("-incoming: the configuration comes from the running "
                     "iovd; give no -%s here",
                     g_array_index(pending, PendingOpt, 0).opt->name);
        return 1;
    }
    if (!incoming && !serves_anything(pending)) {
        error_report("nothing to serve: give at least one -device or -qmp");
        usage(stderr);
        return 1;
    }
    /* First: a second daemon on this pidfile must not touch anything. */
    if (pidfile && !write_pidfile(&err)) {
        error_report("-pidfile %s: %s", pidfile, err->message);
        return 1;
    }
    if (incoming) {
        if (!upgrade_incoming(incoming, notify_ready, &err)) {
            /* The running iovd goes on with everything: touch nothing. */
            error_report("%s", err->message);
            _exit(1);
        }
        upgrade_completed_event();
    } else if (!apply_phases(pending)) {
        return startup_failed();
    }
    device_startup_checks();
    if (vfu_activation_unused()) {
        iovd_warn("%u socket-activation fd(s) not used by any device",
                  vfu_activation_unused());
    }
    if (!sandbox_confine(&err)) {
        error_report("%s", err->message);
        return startup_failed();
    }

    signals_init(main_loop);
    notify_ready();

    loop_run(main_loop);
    notify_send("STOPPING=1");
    if (upgrade_handed_over()) {
        /* The new process has it all: answer, then leave it untouched. */
        monitor_cleanup();
        _exit(0);
    }

    /* Orderly: devices reset (draining I/O), clients closed, sockets gone. */
    device_destroy_all();
    iovd_modules_cleanup();
    remove_pidfile();
    return 0;
}
