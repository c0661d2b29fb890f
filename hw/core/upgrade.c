/*
 * Live upgrade (see upgrade.h).
 *
 * The handover, on the UNIX socket the new process listens on:
 *
 *   old -> new   "IOVDUPGR" u32 stream length, u32 number of fds; the
 *                fds in chunks (one byte each, SCM_RIGHTS); the stream
 *   new -> old   u32 status (0: every device runs here), u32 length,
 *                the reason when it failed
 *
 * The stream (util/savestate.h): section "upgrade" (the options that
 * made the configuration, the devices handed over), "listen" (every
 * listening UNIX socket and the index of its fd), then per device its
 * transport's sections (device state included: DeviceTransportHooks).
 */
#include "hw/core/upgrade.h"
#include "hw/core/device.h"
#include "hw/core/trace.h"
#include "util/cmdline.h"
#include "util/error.h"
#include "util/log.h"
#include "util/loop.h"
#include "util/savestate.h"
#include "util/sockets.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

#define UPGRADE_MAGIC "IOVDUPGR"
#define UPGRADE_ANSWER "IOVDDONE"
#define UPGRADE_VERSION 1
#define UPGRADE_FD_CHUNK 200
#define UPGRADE_IO_TIMEOUT_MS 30000

/* ---- what this process was made of ---- */

static GPtrArray *options;      /* "name\0arg" (g_bytes) */
static char *changed;           /* the first runtime change */

/* Options whose objects announce themselves (iovd_config_created). */
static bool makes_object(const char *name)
{
    static const char *const kinds[] = {
        "object", "blockdev", "netdev", "device",
    };

    for (unsigned i = 0; i < G_N_ELEMENTS(kinds); i++) {
        if (!strcmp(name, kinds[i])) {
            return true;
        }
    }
    return false;
}

void upgrade_record_option(const char *name, const char *arg)
{
    GByteArray *b;

    if (makes_object(name)) {
        return;
    }
    if (!options) {
        options = g_ptr_array_new_with_free_func(
            (GDestroyNotify)g_byte_array_unref);
    }
    b = g_byte_array_new();
    g_byte_array_append(b, (const uint8_t *)name, strlen(name) + 1);
    if (arg) {
        g_byte_array_append(b, (const uint8_t *)arg, strlen(arg) + 1);
    }
    g_ptr_array_add(options, b);
}

void upgrade_config_changed(const char *what)
{
    if (!changed) {
        changed = g_strdup(what);
    }
}

static void blob_add(const char *name, const char *arg, void *opaque)
{
    GByteArray *all = opaque;
    uint32_t len = strlen(name) + 1 + (arg ? strlen(arg) + 1 : 0);

    g_byte_array_append(all, (uint8_t *)&len, 4);
    g_byte_array_append(all, (const uint8_t *)name, strlen(name) + 1);
    if (arg) {
        g_byte_array_append(all, (const uint8_t *)arg, strlen(arg) + 1);
    }
}

/*
 * The configuration, each option a u32 length and "name\0[arg\0]": the
 * objects in the order they were made, then the other options.
 */
static GByteArray *options_blob(void)
{
    GByteArray *all = g_byte_array_new();

    iovd_config_foreach(blob_add, all);
    for (guint i = 0; options && i < options->len; i++) {
        GByteArray *b = g_ptr_array_index(options, i);
        uint32_t len = b->len;

        g_byte_array_append(all, (uint8_t *)&len, 4);
        g_byte_array_append(all, b->data, b->len);
    }
    return all;
}

/* ---- the wire ---- */

static bool wait_fd(int fd, short events, GError **errp)
{
    struct pollfd p = { .fd = fd, .events = events };
    int r;

    do {
        r = poll(&p, 1, UPGRADE_IO_TIMEOUT_MS);
    } while (r < 0 && errno == EINTR);
    if (r <= 0) {
        error_setg(errp, "upgrade: the other process did not answer "
                   "within %d s", UPGRADE_IO_TIMEOUT_MS / 1000);
        return false;
    }
    return true;
}

static bool send_all(int fd, const void *buf, size_t len, const int *fds,
                     unsigned nfds, GError **errp)
{
    size_t off = 0;

    while (off < len) {
        ssize_t n;

        if (!wait_fd(fd, POLLOUT, errp)) {
            return false;
        }
        n = unix_send_fds(fd, (const uint8_t *)buf + off, len - off, fds,
                          nfds, 0);
        if (n == -EPIPE || n == -ECONNRESET) {
            error_setg(errp, "upgrade: the other process closed the "
                       "connection");
            return false;
        }
        if (n < 0 && n != -EAGAIN) {
            error_setg_errno(errp, -n, "upgrade: send");
            return false;
        }
        if (n > 0) {
            off += n;
            nfds = 0;           /* they went with the first byte */
        }
    }
    return true;
}

/* Read @len bytes; fds that come with them are appended to @fds. */
static bool recv_all(int fd, void *buf, size_t len, GArray *fds,
                     GError **errp)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * UPGRADE_FD_CHUNK)];
        struct cmsghdr align;
    } u;
    size_t off = 0;

    while (off < len) {
        struct iovec iov = { (uint8_t *)buf + off, len - off };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                             .msg_control = u.buf,
                             .msg_controllen = sizeof(u.buf) };
        ssize_t n;

        if (!wait_fd(fd, POLLIN, errp)) {
            return false;
        }
        n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
            error_setg(errp, "upgrade: the other process went away");
            return false;
        }
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); n > 0 && c;
             c = CMSG_NXTHDR(&mh, c)) {
            unsigned cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
                continue;
            }
            if (fds) {
                g_array_append_vals(fds, CMSG_DATA(c), cnt);
                continue;
            }
            for (unsigned i = 0; i < cnt; i++) {
                int f;

                memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(f));
                close(f);       /* none expected */
            }
        }
        off += n > 0 ? n : 0;
    }
    return true;
}

/* The stream and its fds: header, fd chunks, stream. */
static bool send_stream(int sock, GBytes *stream, GArray *fds,
                        GError **errp)
{
    uint8_t hdr[16];
    const int *f = (const int *)fds->data;

    memcpy(hdr, UPGRADE_MAGIC, 8);
    stl_le_p(hdr + 8, g_bytes_get_size(stream));
    stl_le_p(hdr + 12, fds->len);
    if (!send_all(sock, hdr, sizeof(hdr), NULL, 0, errp)) {
        return false;
    }
    for (guint i = 0; i < fds->len; i += UPGRADE_FD_CHUNK) {
        if (!send_all(sock, "F", 1, f + i, MIN(UPGRADE_FD_CHUNK,
                                               fds->len - i), errp)) {
            return false;
        }
    }
    return send_all(sock, g_bytes_get_data(stream, NULL),
                    g_bytes_get_size(stream), NULL, 0, errp);
}

static GBytes *recv_stream(int sock, GArray *fds, GError **errp)
{
    uint8_t hdr[16];
    uint32_t len, nfds;
    g_autofree uint8_t *buf = NULL;
    char byte;

    if (!recv_all(sock, hdr, sizeof(hdr), fds, errp)) {
        return NULL;
    }
    len = ldl_le_p(hdr + 8);
    nfds = ldl_le_p(hdr + 12);
    if (memcmp(hdr, UPGRADE_MAGIC, 8) || len > (256u << 20) ||
        nfds > 65536) {
        error_setg(errp, "upgrade: not an iovd handover (or too large)");
        return NULL;
    }
    while (fds->len < nfds) {
        guint before = fds->len;

        if (!recv_all(sock, &byte, 1, fds, errp)) {
            return NULL;
        }
        if (fds->len == before) {
            error_setg(errp, "upgrade: %u file descriptors announced, %u "
                       "came", nfds, fds->len);
            return NULL;
        }
    }
    buf = g_malloc(len ? len : 1);
    if (!recv_all(sock, buf, len, fds, errp)) {
        return NULL;
    }
    return g_bytes_new_take(g_steal_pointer(&buf), len);
}

static void send_answer(int sock, const GError *err)
{
    const char *why = err ? err->message : "";
    uint8_t hdr[16];

    memcpy(hdr, UPGRADE_ANSWER, 8);
    stl_le_p(hdr + 8, err ? 1 : 0);
    stl_le_p(hdr + 12, strlen(why));
    if (!send_all(sock, hdr, sizeof(hdr), NULL, 0, NULL) ||
        !send_all(sock, why, strlen(why), NULL, 0, NULL)) {
        iovd_warn("upgrade: could not answer the old process");
    }
}

/* The running process's upgrade in progress. */
typedef struct UpgradeOut {
    int sock;
    int64_t stop_ns;            /* when the devices began to stop */
    bool paused;                /* the participants stopped reading */
    GArray *devs;               /* of UpgradeDev */
    gint pending;               /* devices not stopped yet */
    UpgradeDone *done;
    void *opaque;
    LoopTimer *timer;           /* the answer's deadline */
} UpgradeOut;

static UpgradeOut *out;
static bool handed_over;

/* ---- both sides: the devices ---- */

typedef struct UpgradeDev {
    Device *dev;
    gint done;                  /* stopped (set on its loop) */
    int ret;
} UpgradeDev;

static void collect_dev(Device *dev, void *opaque)
{
    if (dev->cls->is_pci && dev->state != DEVICE_DELETING) {
        UpgradeDev u = { .dev = dev };

        g_array_append_val(opaque, u);
    }
}

static GArray *upgrade_devices(void)
{
    GArray *a = g_array_new(false, true, sizeof(UpgradeDev));

    device_foreach(collect_dev, a);
    return a;
}

static void out_stopped(void *opaque);

/* On the device's loop, once it stopped (both processes). */
static void dev_stopped(Device *dev, int ret, void *opaque)
{
    UpgradeDev *u = opaque;

    u->ret = ret;
    if (ret >= 0) {
        device_transport_hooks()->upgrade_pause(dev, true);
    }
    g_atomic_int_set(&u->done, true);
    /* The old process goes on once the last one stopped. */
    if (out && g_atomic_int_dec_and_test(&out->pending)) {
        loop_post(loop_main(), out_stopped, NULL);
    }
}

static void dev_stop(void *opaque)
{
    UpgradeDev *u = opaque;

    device_stop(u->dev, DEVICE_STOP_UPGRADE, dev_stopped, u);
}

static void dev_start(void *opaque)
{
    UpgradeDev *u = opaque;

    device_start(u->dev);
    device_transport_hooks()->upgrade_pause(u->dev, false);
}

/*
 * Stop every device and wait (the main loop's devices need the main loop:
 * it is iterated here, from main() or a QMP command, never nested in a
 * device's callback).
 */
static int stop_all(GArray *devs)
{
    int ret = 0;

    for (guint i = 0; i < devs->len; i++) {
        UpgradeDev *u = &g_array_index(devs, UpgradeDev, i);

        loop_run_sync(u->dev->loop, dev_stop, u);
    }
    for (guint i = 0; i < devs->len; i++) {
        UpgradeDev *u = &g_array_index(devs, UpgradeDev, i);

        while (!g_atomic_int_get(&u->done)) {
            if (u->dev->loop == loop_main()) {
                loop_iterate(loop_main(), true);
            } else {
                g_usleep(100);
            }
        }
        ret = ret ? ret : u->ret;
    }
    return ret;
}

static void start_all(GArray *devs)
{
    for (guint i = 0; i < devs->len; i++) {
        UpgradeDev *u = &g_array_index(devs, UpgradeDev, i);

        loop_run_sync(u->dev->loop, dev_start, u);
    }
}

/* ---- participants (util/cmdline.h): what is not a device ---- */

static bool participant_pause(const UpgradeParticipant *p, void *opaque)
{
    if (p->pause) {
        p->pause(*(bool *)opaque);
    }
    return true;
}

static void participants_pause(bool pause)
{
    iovd_foreach_upgrade_participant(participant_pause, &pause);
}

typedef struct PartCtx {
    StateWriter *w;
    StateReader *r;
    GArray *fds;
    int *fdv;
    unsigned nfds;
    GError **errp;
} PartCtx;

static bool participant_check(const UpgradeParticipant *p, void *opaque)
{
    return !p->check || p->check(opaque);
}

static bool participant_save(const UpgradeParticipant *p, void *opaque)
{
    PartCtx *c = opaque;

    return !p->save || p->save(c->w, c->fds, c->errp);
}

static bool participant_prepare(const UpgradeParticipant *p, void *opaque)
{
    PartCtx *c = opaque;

    return !p->prepare || p->prepare(c->r, c->fdv, c->nfds, c->errp);
}

static bool participants_check(GError **errp)
{
    GError *err = NULL;

    iovd_foreach_upgrade_participant(participant_check, &err);
    if (err) {
        g_propagate_error(errp, err);
        return false;
    }
    return true;
}

/* ---- the running process ---- */


bool upgrade_in_progress(void)
{
    return out != NULL;
}

bool upgrade_handed_over(void)
{
    return handed_over;
}

/* Give up: everything runs again here; @err says why. */
static void out_fail(GError *err)
{
    UpgradeOut *o = g_steal_pointer(&out);

    iovd_warn("upgrade failed, running on: %s", err->message);
    loop_set_fd(loop_main(), o->sock, NULL, NULL, NULL);
    close(o->sock);
    loop_timer_free(o->timer);
    if (o->paused) {
        participants_pause(false);
    }
    start_all(o->devs);
    g_array_unref(o->devs);
    o->done(err, o->opaque);
    g_error_free(err);
    g_free(o);
}

static void out_answered(void *opaque)
{
    UpgradeOut *o = out;
    uint8_t hdr[16];
    g_autofree char *why = NULL;
    GError *err = NULL;
    uint32_t len;

    loop_set_fd(loop_main(), o->sock, NULL, NULL, NULL);
    if (!recv_all(o->sock, hdr, sizeof(hdr), NULL, &err)) {
        out_fail(err);
        return;
    }
    if (memcmp(hdr, UPGRADE_ANSWER, 8)) {
        error_setg(&err, "the process at the upgrade socket is not an iovd "
                   "taking over (its answer is not one)");
        out_fail(err);
        return;
    }
    len = MIN(ldl_le_p(hdr + 12), 4096u);
    why = g_malloc0(len + 1);
    if (ldl_le_p(hdr + 8) != 0) {
        recv_all(o->sock, why, len, NULL, NULL);
        g_strcanon(why, G_CSET_a_2_z G_CSET_A_2_Z G_CSET_DIGITS
                   " .,:;'\"()[]{}/-_=+*%#@!?<>|~^$&", '?');
        error_setg(&err, "the new process refused: %s", why);
        out_fail(err);
        return;
    }
    /* Everything is the new process's: touch nothing on the way out. */
    handed_over = true;
    unix_listen_handed_over();
    if (!send_all(o->sock, "C", 1, NULL, 0, &err)) {
        /* It cannot run them without our commit: nobody does now. */
        iovd_warn("upgrade: the commit did not reach the new process: %s",
                  err->message);
        g_clear_error(&err);
    }
    close(o->sock);
    trace_upgrade_handed_over(o->devs->len);
    o->done(NULL, o->opaque);
    iovd_request_shutdown("upgrade");
}

static void out_timeout(void *opaque)
{
    GError *err = NULL;

    error_setg(&err, "the new process did not answer within %d s",
               UPGRADE_IO_TIMEOUT_MS / 1000);
    out_fail(err);
}

typedef struct SaveCtx {
    StateWriter *w;
    GArray *fds;
    Device *dev;
    GError *err;
} SaveCtx;

static void dev_save(void *opaque)
{
    SaveCtx *c = opaque;

    device_transport_hooks()->upgrade_save(c->dev, c->w, c->fds, &c->err);
}

static void add_listener(const char *path, int fd, void *opaque)
{
    SaveCtx *c = opaque;
    uint32_t idx = c->fds->len;

    g_array_append_val(c->fds, fd);
    state_put_u32(c->w, path, idx);
}

/* The stream: configuration, listening sockets, devices. */
static GBytes *out_stream(UpgradeOut *o, GArray *fds, GError **errp)
{
    g_autoptr(StateWriter) w = state_writer_new();
    g_autoptr(GByteArray) opts = options_blob();
    g_autoptr(GString) ids = g_string_new(NULL);
    g_autofree char *cwd = g_get_current_dir();
    SaveCtx c = { .w = w, .fds = fds };

    for (guint i = 0; i < o->devs->len; i++) {
        g_string_append_printf(ids, "%s%c",
                               g_array_index(o->devs, UpgradeDev, i).dev->id,
                               '\0');
    }
    state_begin(w, "upgrade", UPGRADE_VERSION);
    state_put_str(w, "iovd", IOVD_VERSION);
    /* Relative paths in the options are relative to it. */
    state_put_str(w, "cwd", cwd);
    state_put_bytes(w, "options", opts->data, opts->len);
    state_put_bytes(w, "devices", ids->str, ids->len);
    /* CLOCK_MONOTONIC is the host's: the new process measures downtime. */
    state_put_u64(w, "stopped-at-ns", o->stop_ns);
    state_end(w);
    state_begin(w, "listen", UPGRADE_VERSION);
    unix_listen_foreach(add_listener, &c);
    state_end(w);
    for (guint i = 0; i < o->devs->len && !c.err; i++) {
        c.dev = g_array_index(o->devs, UpgradeDev, i).dev;
        loop_run_sync(c.dev->loop, dev_save, &c);
    }
    if (!c.err) {
        PartCtx p = { .w = w, .fds = fds, .errp = &c.err };

        iovd_foreach_upgrade_participant(participant_save, &p);
    }
    if (c.err) {
        g_propagate_error(errp, c.err);
        return NULL;
    }
    return state_writer_finish(w);
}

/* Every device stopped: send it all, then wait for the answer. */
static void out_stopped(void *opaque)
{
    UpgradeOut *o = out;
    g_autoptr(GArray) fds = g_array_new(false, false, sizeof(int));
    g_autoptr(GBytes) stream = NULL;
    GError *err = NULL;

    for (guint i = 0; i < o->devs->len; i++) {
        UpgradeDev *u = &g_array_index(o->devs, UpgradeDev, i);

        if (u->ret < 0) {
            error_setg(&err, "device '%s' did not flush its backend: %s",
                       u->dev->id, g_strerror(-u->ret));
            out_fail(err);
            return;
        }
    }
    participants_pause(true);
    o->paused = true;
    stream = out_stream(o, fds, &err);
    if (!stream || !send_stream(o->sock, stream, fds, &err)) {
        out_fail(err);
        return;
    }
    trace_upgrade_sent(o->devs->len, g_bytes_get_size(stream), fds->len);
    loop_set_fd(loop_main(), o->sock, out_answered, NULL, NULL);
    o->timer = loop_timer_new(loop_main(), out_timeout, NULL);
    loop_timer_mod(o->timer, clock_ns() +
                   UPGRADE_IO_TIMEOUT_MS * (int64_t)1000000);
}

static int connect_unix(const char *path, GError **errp)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        error_setg(errp, "socket path '%s' too long", path);
        return -1;
    }
    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        error_setg_errno(errp, errno, "cannot reach the new process at '%s'",
                         path);
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd;
}

static const char *uri_path(const char *uri, GError **errp)
{
    if (!g_str_has_prefix(uri, "unix:") || !uri[5]) {
        error_setg(errp, "'%s': the new process is reached as unix:PATH",
                   uri);
        return NULL;
    }
    return uri + 5;
}

/* Why the configuration cannot be handed over (NULL: it can). */
static void find_deleting(Device *dev, void *opaque)
{
    Device **found = opaque;

    if (!*found && dev->state == DEVICE_DELETING) {
        *found = dev;
    }
}

static char *upgrade_blocker(void)
{
    Device *deleting = NULL;

    if (changed) {
        return g_strdup_printf("the configuration changed at runtime (%s): "
                               "a new process would not rebuild it", changed);
    }
    device_foreach(find_deleting, &deleting);
    if (deleting) {
        return g_strdup_printf("device '%s' is being deleted: try again "
                               "once DEVICE_DELETED came", deleting->id);
    }
    return NULL;
}

bool upgrade_start(const char *uri, UpgradeDone *done, void *opaque,
                   GError **errp)
{
    const char *path = uri_path(uri, errp);
    g_autofree char *why = upgrade_blocker();
    int sock;

    if (!path) {
        return false;
    }
    if (out || handed_over) {
        error_setg(errp, "an upgrade is in progress");
        return false;
    }
    if (why) {
        error_setg(errp, "%s", why);
        return false;
    }
    if (!participants_check(errp)) {
        return false;
    }
    sock = connect_unix(path, errp);
    if (sock < 0) {
        return false;
    }
    out = g_new0(UpgradeOut, 1);
    out->sock = sock;
    out->done = done;
    out->opaque = opaque;
    out->devs = upgrade_devices();
    out->pending = out->devs->len + 1;
    out->stop_ns = clock_ns();
    trace_upgrade_start(path, out->devs->len);
    for (guint i = 0; i < out->devs->len; i++) {
        UpgradeDev *u = &g_array_index(out->devs, UpgradeDev, i);

        loop_run_sync(u->dev->loop, dev_stop, u);
    }
    if (g_atomic_int_dec_and_test(&out->pending)) {
        loop_post(loop_main(), out_stopped, NULL);
    }
    return true;
}

/* ---- the new process ---- */

/* Apply the old process's options, as its command line was applied. */
static bool in_apply_options(StateSection *s, GError **errp)
{
    size_t len, off = 0;
    const uint8_t *p = state_get_blob(s, "options", &len);

    while (p && off + 4 <= len) {
        uint32_t n = ldl_le_p(p + off);
        const char *name = (const char *)p + off + 4;
        const char *arg;
        const IovdOption *o;

        if (n > len - off - 4 || n == 0 || p[off + 4 + n - 1] != '\0') {
            error_setg(errp, "upgrade: a malformed option");
            return false;
        }
        arg = strlen(name) + 1 < n ? name + strlen(name) + 1 : NULL;
        off += 4 + n;
        o = iovd_find_option(name);
        if (!o || o->phase < 0) {
            error_setg(errp, "upgrade: option -%s is not known here", name);
            return false;
        }
        if (!o->apply(arg, errp)) {
            error_prepend(errp, "upgrade: -%s %s: ", name, arg ? arg : "");
            return false;
        }
        upgrade_record_option(name, arg);
    }
    return true;
}

typedef struct LoadCtx {
    StateReader *r;
    int *fds;
    unsigned nfds;
    Device *dev;
    GError *err;
} LoadCtx;

static void dev_load(void *opaque)
{
    LoadCtx *c = opaque;

    device_transport_hooks()->upgrade_load(c->dev, c->r, c->fds, c->nfds,
                                           &c->err);
}

static void adopt_listener(StateSection *s, const char *path, void *opaque)
{
    LoadCtx *c = opaque;
    uint32_t idx = state_get_u32(s, path);

    if (idx >= c->nfds || c->fds[idx] < 0) {
        state_section_fail(s, "no file descriptor for '%s'", path);
        return;
    }
    unix_listen_adopt(path, c->fds[idx]);
    c->fds[idx] = -1;
}

/* The listening sockets, and what each device's realize must reuse. */
static bool in_adopt(StateReader *r, const char *ids, size_t ids_len,
                     int *fds, unsigned nfds, GError **errp)
{
    StateSection *s = state_section(r, "listen", UPGRADE_VERSION, NULL,
                                    errp);
    LoadCtx c = { .fds = fds, .nfds = nfds };

    if (!s) {
        return false;
    }
    state_foreach_field(s, adopt_listener, &c);
    for (size_t off = 0; off < ids_len; off += strlen(ids + off) + 1) {
        if (!device_transport_hooks()->upgrade_prepare(ids + off, r, fds,
                                                       nfds, errp)) {
            return false;
        }
    }
    return state_section_end(s, errp);
}

static bool in_prepare_participants(StateReader *r, int *fds,
                                    unsigned nfds, GError **errp)
{
    GError *err = NULL;
    PartCtx p = { .r = r, .fdv = fds, .nfds = nfds, .errp = &err };

    iovd_foreach_upgrade_participant(participant_prepare, &p);
    if (err) {
        g_propagate_error(errp, err);
        return false;
    }
    return true;
}

static int64_t stopped_at;      /* the old process began to stop */
static int64_t downtime;        /* from then until every device runs here */

int64_t upgrade_downtime_ns(void)
{
    return downtime;
}

/*
 * Build everything from @stream and @fds and load the devices into @devs
 * (stopped: they start once the old process committed).
 */
static bool in_build(GBytes *stream, GArray *fds, GArray **pdevs,
                     GError **errp)
{
    g_autoptr(StateReader) r = state_reader_new(stream, errp);
    GArray *devs;
    g_autofree char *cwd = NULL;
    StateSection *s;
    const char *ids;
    size_t ids_len;
    LoadCtx c = { .fds = (int *)fds->data, .nfds = fds->len };

    if (!r || !(s = state_section(r, "upgrade", UPGRADE_VERSION, NULL,
                                  errp))) {
        return false;
    }
    g_free(state_get_str(s, "iovd"));
    cwd = state_get_str(s, "cwd");
    stopped_at = state_get_u64(s, "stopped-at-ns");
    if (cwd && chdir(cwd) < 0) {
        state_section_fail(s, "cannot work in '%s' as the old process did: "
                           "%s", cwd, g_strerror(errno));
    }
    ids = state_get_blob(s, "devices", &ids_len);
    if (ids_len && ids[ids_len - 1] != '\0') {
        state_section_fail(s, "malformed device list");
    }
    if (state_section_failed(s) ||
        !in_adopt(r, ids, ids_len, c.fds, c.nfds, errp) ||
        !in_prepare_participants(r, c.fds, c.nfds, errp) ||
        !in_apply_options(s, errp) || !state_section_end(s, errp)) {
        return false;
    }
    devs = *pdevs = upgrade_devices();
    if (stop_all(devs) < 0) {
        error_setg(errp, "upgrade: a device here did not stop");
        return false;
    }
    c.r = r;
    for (guint i = 0; i < devs->len && !c.err; i++) {
        c.dev = g_array_index(devs, UpgradeDev, i).dev;
        loop_run_sync(c.dev->loop, dev_load, &c);
    }
    if (c.err) {
        g_propagate_error(errp, c.err);
        return false;
    }
    return state_reader_end(r, errp);
}

/*
 * "ok" to the old process, then its commit: one byte it sends once it
 * will touch nothing more.  Only then do the devices run here, so that
 * the two processes never both run them (an old process that gave up
 * waiting closes without committing).
 */
static bool in_commit(int sock, GError **errp)
{
    char c = 0;

    send_answer(sock, NULL);
    if (!recv_all(sock, &c, 1, NULL, errp) || c != 'C') {
        error_prepend(errp, "the old process did not commit: ");
        return false;
    }
    return true;
}

/* Listen at @path, and wait for the old process (SIGTERM still ends it). */
static int in_accept(const char *path, void (*ready)(void), GError **errp)
{
    sigset_t term, old;
    int lfd = unix_listen(path, 1, "the upgrade", errp);
    int fd;

    if (lfd < 0) {
        return -1;
    }
    ready();
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigaddset(&term, SIGINT);
    sigaddset(&term, SIGHUP);
    pthread_sigmask(SIG_UNBLOCK, &term, &old);
    g_unix_set_fd_nonblocking(lfd, false, NULL);
    do {
        fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (fd < 0) {
        error_setg_errno(errp, errno, "upgrade: accept");
    }
    unix_listen_close(lfd);
    return fd;
}

static pid_t from_pid;

pid_t upgrade_from_pid(void)
{
    return from_pid;
}

bool upgrade_incoming(const char *uri, void (*ready)(void), GError **errp)
{
    const char *path = uri_path(uri, errp);
    g_autoptr(GArray) fds = g_array_new(false, false, sizeof(int));
    g_autoptr(GBytes) stream = NULL;
    g_autoptr(GArray) devs = NULL;
    GError *err = NULL;
    int sock;
    bool ok;
    struct ucred cred;
    socklen_t cred_len = sizeof(cred);

    if (!path || (sock = in_accept(path, ready, errp)) < 0) {
        return false;
    }
    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) == 0) {
        from_pid = cred.pid;
    }
    stream = recv_stream(sock, fds, &err);
    ok = stream && in_build(stream, fds, &devs, &err);
    for (guint i = 0; i < fds->len; i++) {
        if (g_array_index(fds, int, i) >= 0) {
            close(g_array_index(fds, int, i));  /* not taken */
        }
    }
    if (!ok) {
        send_answer(sock, err);
    } else {
        ok = in_commit(sock, &err);
    }
    close(sock);
    if (!ok) {
        /* The old process runs on with all of it: take nothing away. */
        unix_listen_handed_over();
        g_propagate_error(errp, err);
        return false;
    }
    start_all(devs);
    /* What participants took over waited for the commit too: it runs. */
    participants_pause(false);
    downtime = clock_ns() - stopped_at;
    trace_upgrade_took_over(fds->len);
    return true;
}
