/*
 * -netdev user: user-mode networking with libslirp (DHCP, DNS, NAT to the
 * host's sockets, host port forwarding), as QEMU's -netdev user.
 *
 * Driving slirp from the main loop: libslirp 4.7 asks for the fds to poll
 * through slirp_pollfds_fill() and takes the results through
 * slirp_pollfds_poll().  A before-poll hook of the main loop does both
 * when something happened since the last time (a watched fd fired, the
 * guest sent a frame, a timer expired, the NIC can take frames again) and
 * turns the fill into ordinary fd handlers, changed only when slirp's set
 * changes.  The hook reads the exact poll results with one poll() of
 * timeout 0 over slirp's fds.  While the NIC cannot take frames, slirp's
 * fds are not watched for input, so the host side is not read (TCP
 * windows do the rest); output to the host carries on.
 *
 * hostfwd: "hostfwd=RULE" for one rule, "hostfwd.N=RULE" (N = 0, 1, ...)
 * for more, applied in index order after the plain one; the keyval
 * parser refuses repeated keys.  RULE is QEMU's
 * [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT; an empty HOSTADDR
 * listens on every host address (as QEMU), an empty GUESTADDR means the
 * first DHCP address.
 *
 * Live upgrade: what moves is libslirp's own state (slirp_state_save:
 * the DHCP leases, the IP id; guestfwd sockets, which iovd does not
 * make) and the frames the net layer queued either way.  The old process
 * closes its hostfwd ports once it saved, the new one binds them again
 * (a connection attempt in between is refused).  What does not move:
 * connections through slirp, NAT'd ones of the guest and those accepted
 * on hostfwd ports.  libslirp 4.7 saves neither their host sockets nor
 * their TCP state, so the new stack resets them at their next segment,
 * as after a QEMU migration; the guest connects again.
 */
#include "net/net-int.h"
#include "net/trace.h"
#include "util/error.h"
#include "util/log.h"
#include "util/loop.h"

#include <arpa/inet.h>
#include <poll.h>
#include <libslirp.h>

typedef struct SlirpHostFwd {
    unsigned index;             /* order: "hostfwd" first, then by N */
    char *rule;
    bool udp;
    struct in_addr haddr, gaddr;
    int hport, gport;
} SlirpHostFwd;

typedef struct SlirpWatch {
    int events;                 /* POLLIN / POLLOUT registered */
    unsigned gen;               /* last fill that asked for it */
} SlirpWatch;

typedef struct SlirpState SlirpState;

typedef struct SlirpTimer {
    SlirpState *s;
    LoopTimer *timer;
    SlirpTimerCb cb;            /* timer_new (old API) */
    SlirpTimerId id;            /* timer_new_opaque */
    void *cb_opaque;
} SlirpTimer;

struct SlirpState {
    NetClient *nc;

    /* options */
    bool ipv4, ipv6, restricted;
    char *net, *host, *dhcpstart, *dns;
    char *ipv6_net, *ipv6_host, *ipv6_dns;
    char *hostname, *domainname, *tftp, *tftp_server_name, *bootfile;

    GArray *fwds;               /* of SlirpHostFwd */
    Slirp *slirp;
    GArray *pfds;               /* struct pollfd of the last fill */
    GHashTable *watches;        /* fd -> SlirpWatch */
    unsigned gen;
    GList *timers;              /* of SlirpTimer */
    LoopTimer *poll_timer;      /* slirp's TCP timers */
    bool dirty;                 /* run poll + fill before the next poll */
    bool fired;                 /* a watched fd was ready */
    bool hooked;
    uint8_t *buf;               /* a frame from the NIC, linearized */
    bool upgrade_paused;        /* live upgrade: slirp is not run */
    bool fwds_closed;           /* the old process closed its hostfwds */
};

/* ---- frames ---- */

static ssize_t net_slirp_send_packet(const void *buf, size_t len,
                                     void *opaque)
{
    SlirpState *s = opaque;

    /* Queued or dropped frames are the layer's business; never an error
     * for slirp, which would complain loudly. */
    net_send(s->nc, buf, len);
    return len;
}

static ssize_t net_slirp_receive(NetClient *nc, const struct iovec *iov,
                                 int iovcnt)
{
    SlirpState *s = nc->opaque;
    size_t len = iov_size(iov, iovcnt);

    if (s->upgrade_paused) {
        return -EAGAIN;         /* queued: handed over, or resumed */
    }
    if (iovcnt == 1) {
        slirp_input(s->slirp, iov[0].iov_base, len);
    } else {
        iov_to_buf(iov, iovcnt, 0, s->buf, len);
        slirp_input(s->slirp, s->buf, len);
    }
    s->dirty = true;
    return len;
}

static void net_slirp_writable(NetClient *nc)
{
    SlirpState *s = nc->opaque;

    s->dirty = true;            /* watch the host side for input again */
}

/* ---- callbacks from slirp ---- */

static void net_slirp_guest_error(const char *msg, void *opaque)
{
    SlirpState *s = opaque;

    trace_net_err_slirp(s->nc->name, msg);
}

static int64_t net_slirp_clock_get_ns(void *opaque)
{
    return clock_ns();
}

static void net_slirp_timer_cb(void *opaque)
{
    SlirpTimer *t = opaque;

    if (t->s->upgrade_paused) {
        /* slirp does not run now: soon (a failed upgrade resumes). */
        loop_timer_mod(t->timer, clock_ns() + 1000000);
        return;
    }
    t->s->dirty = true;
    if (t->cb) {
        t->cb(t->cb_opaque);
    } else {
        slirp_handle_timer(t->s->slirp, t->id, t->cb_opaque);
    }
}

static SlirpTimer *net_slirp_timer_alloc(SlirpState *s)
{
    SlirpTimer *t = g_new0(SlirpTimer, 1);

    t->s = s;
    t->timer = loop_timer_new(s->nc->loop, net_slirp_timer_cb, t);
    s->timers = g_list_prepend(s->timers, t);
    return t;
}

static void *net_slirp_timer_new(SlirpTimerCb cb, void *cb_opaque,
                                 void *opaque)
{
    SlirpTimer *t = net_slirp_timer_alloc(opaque);

    t->cb = cb;
    t->cb_opaque = cb_opaque;
    return t;
}

static void *net_slirp_timer_new_opaque(SlirpTimerId id, void *cb_opaque,
                                        void *opaque)
{
    SlirpTimer *t = net_slirp_timer_alloc(opaque);

    t->id = id;
    t->cb_opaque = cb_opaque;
    return t;
}

static void net_slirp_timer_free(void *timer, void *opaque)
{
    SlirpState *s = opaque;
    SlirpTimer *t = timer;

    if (!t) {
        return;
    }
    s->timers = g_list_remove(s->timers, t);
    loop_timer_free(t->timer);
    g_free(t);
}

static void net_slirp_timer_mod(void *timer, int64_t expire_ms,
                                void *opaque)
{
    SlirpTimer *t = timer;

    loop_timer_mod(t->timer, expire_ms * 1000000);
}

static void net_slirp_register_poll_fd(int fd, void *opaque)
{
    /* Watched from the next fill on. */
}

static void net_slirp_unwatch(SlirpState *s, int fd)
{
    if (g_hash_table_remove(s->watches, GINT_TO_POINTER(fd))) {
        loop_set_fd(s->nc->loop, fd, NULL, NULL, NULL);
    }
}

/* No handler of ours on any of slirp's fds (the next fill adds them). */
static void net_slirp_unwatch_all(SlirpState *s)
{
    GHashTableIter it;
    gpointer key;

    g_hash_table_iter_init(&it, s->watches);
    while (g_hash_table_iter_next(&it, &key, NULL)) {
        loop_set_fd(s->nc->loop, GPOINTER_TO_INT(key), NULL, NULL, NULL);
        g_hash_table_iter_remove(&it);
    }
}

/* Slirp closes @fd right after this: forget it before the number is
 * reused by anyone else. */
static void net_slirp_unregister_poll_fd(int fd, void *opaque)
{
    SlirpState *s = opaque;

    net_slirp_unwatch(s, fd);
    for (guint i = 0; i < s->pfds->len; i++) {
        struct pollfd *p = &g_array_index(s->pfds, struct pollfd, i);

        if (p->fd == fd) {
            p->fd = -1;
        }
    }
    s->dirty = true;
}

static void net_slirp_notify(void *opaque)
{
    SlirpState *s = opaque;

    s->dirty = true;
}

static const SlirpCb net_slirp_cb = {
    .send_packet = net_slirp_send_packet,
    .guest_error = net_slirp_guest_error,
    .clock_get_ns = net_slirp_clock_get_ns,
    .timer_new = net_slirp_timer_new,
    .timer_free = net_slirp_timer_free,
    .timer_mod = net_slirp_timer_mod,
    .register_poll_fd = net_slirp_register_poll_fd,
    .unregister_poll_fd = net_slirp_unregister_poll_fd,
    .notify = net_slirp_notify,
    .timer_new_opaque = net_slirp_timer_new_opaque,
};

/* ---- polling ---- */

static int net_slirp_to_poll(int ev)
{
    return (ev & SLIRP_POLL_IN ? POLLIN : 0) |
           (ev & SLIRP_POLL_OUT ? POLLOUT : 0) |
           (ev & SLIRP_POLL_PRI ? POLLPRI : 0) |
           (ev & SLIRP_POLL_ERR ? POLLERR : 0) |
           (ev & SLIRP_POLL_HUP ? POLLHUP : 0);
}

static int net_slirp_from_poll(int ev)
{
    return (ev & POLLIN ? SLIRP_POLL_IN : 0) |
           (ev & POLLOUT ? SLIRP_POLL_OUT : 0) |
           (ev & POLLPRI ? SLIRP_POLL_PRI : 0) |
           (ev & POLLERR ? SLIRP_POLL_ERR : 0) |
           (ev & POLLHUP ? SLIRP_POLL_HUP : 0);
}

static int net_slirp_add_poll(int fd, int events, void *opaque)
{
    SlirpState *s = opaque;
    struct pollfd p = { .fd = fd, .events = net_slirp_to_poll(events) };

    if (!net_client_can_send(s->nc)) {
        /* Back-pressure: leave the host side unread. */
        p.events &= ~(POLLIN | POLLPRI);
    }
    g_array_append_val(s->pfds, p);
    return s->pfds->len - 1;
}

static int net_slirp_get_revents(int idx, void *opaque)
{
    SlirpState *s = opaque;

    if (idx < 0 || (guint)idx >= s->pfds->len) {
        return 0;
    }
    return net_slirp_from_poll(g_array_index(s->pfds, struct pollfd,
                                             idx).revents);
}

static void net_slirp_fd_ready(void *opaque)
{
    SlirpState *s = opaque;

    s->fired = true;
    s->dirty = true;
}

/* Make the fd handlers match the fill that just ran. */
static void net_slirp_update_watches(SlirpState *s)
{
    GHashTableIter it;
    gpointer key, value;

    s->gen++;
    for (guint i = 0; i < s->pfds->len; i++) {
        struct pollfd *p = &g_array_index(s->pfds, struct pollfd, i);
        int want = p->events & (POLLIN | POLLPRI | POLLOUT);
        SlirpWatch *w;

        if (p->fd < 0 || !want) {
            continue;
        }
        w = g_hash_table_lookup(s->watches, GINT_TO_POINTER(p->fd));
        if (!w) {
            w = g_new0(SlirpWatch, 1);
            g_hash_table_insert(s->watches, GINT_TO_POINTER(p->fd), w);
        } else if (w->gen == s->gen) {
            want |= w->events;  /* the same fd twice in one fill */
        }
        w->gen = s->gen;
        if (w->events != want) {
            w->events = want;
            loop_set_fd(s->nc->loop, p->fd,
                                want & (POLLIN | POLLPRI) ?
                                net_slirp_fd_ready : NULL,
                                want & POLLOUT ? net_slirp_fd_ready : NULL,
                                s);
        }
    }
    g_hash_table_iter_init(&it, s->watches);
    while (g_hash_table_iter_next(&it, &key, &value)) {
        SlirpWatch *w = value;

        if (w->gen != s->gen) {
            loop_set_fd(s->nc->loop, GPOINTER_TO_INT(key), NULL, NULL, NULL);
            g_hash_table_iter_remove(&it);
        }
    }
}

static void net_slirp_poll_timer(void *opaque)
{
    SlirpState *s = opaque;

    s->dirty = true;
}

static void net_slirp_before_poll(void *opaque)
{
    SlirpState *s = opaque;
    uint32_t timeout = UINT32_MAX;

    if (!s->dirty || s->upgrade_paused) {
        return;
    }
    s->dirty = false;
    if (s->fired && s->pfds->len) {
        int n;

        do {
            n = poll((struct pollfd *)s->pfds->data, s->pfds->len, 0);
        } while (n < 0 && errno == EINTR);
    } else {
        for (guint i = 0; i < s->pfds->len; i++) {
            g_array_index(s->pfds, struct pollfd, i).revents = 0;
        }
    }
    s->fired = false;
    slirp_pollfds_poll(s->slirp, 0, net_slirp_get_revents, s);

    g_array_set_size(s->pfds, 0);
    slirp_pollfds_fill(s->slirp, &timeout, net_slirp_add_poll, s);
    net_slirp_update_watches(s);
    /*
     * libslirp caps the timeout at 1000 ms even with nothing to time (its
     * TCP timers ask for 2 or 499 ms): waking up only for that would make
     * an idle daemon tick forever.
     */
    if (timeout < 1000) {
        loop_timer_mod(s->poll_timer,
                       clock_ns() + (int64_t)timeout * 1000000);
    } else {
        loop_timer_del(s->poll_timer);
    }
}

/* ---- options ---- */

static bool net_slirp_parse_addr(const char *name, const char *str,
                                 struct in_addr *out, GError **errp)
{
    if (inet_pton(AF_INET, str, out) != 1) {
        error_setg(errp, "property '%s': '%s' is not an IPv4 address", name,
                   str);
        return false;
    }
    return true;
}

static bool net_slirp_parse_port(const char *str, int *port, bool zero_ok)
{
    uint64_t v;

    if (!*str || !parse_uint(str, &v, NULL) || v > 65535 ||
        (v == 0 && !zero_ok)) {
        return false;
    }
    *port = v;
    return true;
}

/* [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT */
static bool net_slirp_parse_hostfwd(SlirpHostFwd *f, GError **errp)
{
    g_autofree char *copy = g_strdup(f->rule);
    char *proto = copy, *host, *guest, *port;

    host = strchr(proto, ':');
    if (!host) {
        goto bad;
    }
    *host++ = '\0';
    if (!*proto || strcmp(proto, "tcp") == 0) {
        f->udp = false;
    } else if (strcmp(proto, "udp") == 0) {
        f->udp = true;
    } else {
        goto bad;
    }
    guest = strchr(host, '-');
    if (!guest) {
        goto bad;
    }
    *guest++ = '\0';

    port = strrchr(host, ':');
    if (!port) {
        goto bad;
    }
    *port++ = '\0';
    f->haddr.s_addr = INADDR_ANY;
    if ((*host && inet_pton(AF_INET, host, &f->haddr) != 1) ||
        !net_slirp_parse_port(port, &f->hport, false)) {
        goto bad;
    }

    port = strrchr(guest, ':');
    if (!port) {
        goto bad;
    }
    *port++ = '\0';
    f->gaddr.s_addr = 0;
    if ((*guest && inet_pton(AF_INET, guest, &f->gaddr) != 1) ||
        !net_slirp_parse_port(port, &f->gport, false)) {
        goto bad;
    }
    return true;

bad:
    error_setg(errp, "property 'hostfwd': '%s' is not "
               "[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT "
               "(numeric IPv4 addresses, ports 1-65535)", f->rule);
    return false;
}

static gint net_slirp_fwd_cmp(gconstpointer a, gconstpointer b)
{
    const SlirpHostFwd *x = a, *y = b;

    return x->index < y->index ? -1 : x->index > y->index;
}

/* hostfwd=RULE and hostfwd.N=RULE (also hostfwd.N.str=, a QAPI list). */
static bool net_slirp_parse(NetClient *nc, Keyval *kv, GError **errp)
{
    SlirpState *s = nc->opaque;

    for (guint i = 0; i < kv->pairs->len; i++) {
        KeyvalPair *pair = g_ptr_array_index(kv->pairs, i);
        SlirpHostFwd f = { 0 };
        const char *idx;
        g_autofree char *num = NULL;
        uint64_t n;

        if (strcmp(pair->key, "hostfwd") == 0) {
            f.index = 0;
        } else if (g_str_has_prefix(pair->key, "hostfwd.")) {
            idx = pair->key + strlen("hostfwd.");
            num = g_str_has_suffix(idx, ".str")
                  ? g_strndup(idx, strlen(idx) - strlen(".str"))
                  : g_strdup(idx);
            if (!*num || !g_ascii_isdigit(num[0]) ||
                !parse_uint(num, &n, NULL) || n > 65535) {
                error_setg(errp, "property '%s': expected hostfwd.N with "
                           "N a number", pair->key);
                return false;
            }
            f.index = n + 1;
        } else {
            continue;
        }
        pair->used = true;
        f.rule = g_strdup(pair->value);
        g_array_append_val(s->fwds, f);
        if (!net_slirp_parse_hostfwd(
                &g_array_index(s->fwds, SlirpHostFwd, s->fwds->len - 1),
                errp)) {
            return false;
        }
    }
    g_array_sort(s->fwds, net_slirp_fwd_cmp);
    for (guint i = 1; i < s->fwds->len; i++) {
        if (g_array_index(s->fwds, SlirpHostFwd, i).index ==
            g_array_index(s->fwds, SlirpHostFwd, i - 1).index) {
            error_setg(errp, "property 'hostfwd': two rules with the same "
                       "index");
            return false;
        }
    }
    return true;
}

/* net=ADDR[/PREFIX|/MASK]: a network without host bits. */
static bool net_slirp_parse_net(const char *str, struct in_addr *net,
                                struct in_addr *mask, GError **errp)
{
    g_autofree char *addr = g_strdup(str);
    char *slash = strchr(addr, '/');
    uint32_t m = 0xffffff00;

    if (slash) {
        uint64_t prefix;

        *slash++ = '\0';
        if (strchr(slash, '.')) {
            struct in_addr a;

            if (inet_pton(AF_INET, slash, &a) != 1) {
                goto bad;
            }
            m = ntohl(a.s_addr);
            if (m & (~m >> 1)) {
                goto bad;       /* not contiguous */
            }
        } else {
            if (!parse_uint(slash, &prefix, NULL) || prefix < 1 ||
                prefix > 30) {
                goto bad;
            }
            m = ~0u << (32 - prefix);
        }
    }
    if (inet_pton(AF_INET, addr, net) != 1) {
        goto bad;
    }
    if (ntohl(net->s_addr) & ~m) {
        error_setg(errp, "property 'net': '%s' has host bits set", str);
        return false;
    }
    mask->s_addr = htonl(m);
    return true;

bad:
    error_setg(errp, "property 'net': '%s' is not ADDR/PREFIX or "
               "ADDR/MASK (IPv4, prefix 1-30)", str);
    return false;
}

/* @name=@str, or the default net + @host_part; must be inside the net. */
static bool net_slirp_addr_in_net(const char *name, const char *str,
                                  struct in_addr net, struct in_addr mask,
                                  uint32_t host_part, struct in_addr *out,
                                  GError **errp)
{
    if (!str) {
        out->s_addr = htonl(ntohl(net.s_addr) | host_part);
        return true;
    }
    if (!net_slirp_parse_addr(name, str, out, errp)) {
        return false;
    }
    if ((out->s_addr & mask.s_addr) != net.s_addr) {
        error_setg(errp, "property '%s': %s is not in the guest network",
                   name, str);
        return false;
    }
    return true;
}

static bool net_slirp_parse_v6(SlirpState *s, SlirpConfig *cfg,
                               GError **errp)
{
    g_autofree char *prefix = g_strdup(s->ipv6_net);
    char *slash = strchr(prefix, '/');
    uint64_t len = 64;
    struct in6_addr dflt;

    if (slash) {
        *slash++ = '\0';
        if (!parse_uint(slash, &len, NULL) || len < 8 || len > 126) {
            error_setg(errp, "property 'ipv6-net': bad prefix length '%s'",
                       slash);
            return false;
        }
    }
    if (inet_pton(AF_INET6, prefix, &cfg->vprefix_addr6) != 1) {
        error_setg(errp, "property 'ipv6-net': '%s' is not an IPv6 prefix",
                   s->ipv6_net);
        return false;
    }
    cfg->vprefix_len = len;
    dflt = cfg->vprefix_addr6;
    dflt.s6_addr[15] |= 2;
    cfg->vhost6 = dflt;
    if (s->ipv6_host &&
        inet_pton(AF_INET6, s->ipv6_host, &cfg->vhost6) != 1) {
        error_setg(errp, "property 'ipv6-host': '%s' is not an IPv6 address",
                   s->ipv6_host);
        return false;
    }
    dflt.s6_addr[15] = (dflt.s6_addr[15] & ~3) | 3;
    cfg->vnameserver6 = dflt;
    if (s->ipv6_dns &&
        inet_pton(AF_INET6, s->ipv6_dns, &cfg->vnameserver6) != 1) {
        error_setg(errp, "property 'ipv6-dns': '%s' is not an IPv6 address",
                   s->ipv6_dns);
        return false;
    }
    return true;
}

static void net_slirp_init(NetClient *nc)
{
    SlirpState *s = nc->opaque;

    s->nc = nc;
    s->fwds = g_array_new(false, true, sizeof(SlirpHostFwd));
    s->pfds = g_array_new(false, false, sizeof(struct pollfd));
    s->watches = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL,
                                       g_free);
}

/* Bind the hostfwd ports. */
static bool net_slirp_open_fwds(SlirpState *s, GError **errp)
{
    for (guint i = 0; i < s->fwds->len; i++) {
        SlirpHostFwd *f = &g_array_index(s->fwds, SlirpHostFwd, i);

        if (slirp_add_hostfwd(s->slirp, f->udp, f->haddr, f->hport, f->gaddr,
                              f->gport) < 0) {
            error_setg_errno(errp, errno, "property 'hostfwd': cannot "
                             "forward '%s'", f->rule);
            return false;
        }
    }
    return true;
}

/* ---- live upgrade (see the top of the file) ---- */

/* What the new process takes over (upgrade_load). */
typedef struct SlirpAdopt {
    uint32_t version;           /* slirp_state_version() of the old */
    GByteArray *state;
    size_t off;                 /* read so far */
} SlirpAdopt;

static ssize_t net_slirp_state_write(const void *buf, size_t len,
                                     void *opaque)
{
    g_byte_array_append(opaque, buf, len);
    return len;
}

static ssize_t net_slirp_state_read(void *buf, size_t len, void *opaque)
{
    SlirpAdopt *sa = opaque;

    len = MIN(len, sa->state->len - sa->off);
    memcpy(buf, sa->state->data + sa->off, len);
    sa->off += len;
    return len;
}

static void net_slirp_upgrade_pause(NetClient *nc, bool pause)
{
    SlirpState *s = nc->opaque;
    g_autoptr(GError) err = NULL;

    if (s->upgrade_paused == pause) {
        return;
    }
    s->upgrade_paused = pause;
    if (pause) {
        net_slirp_unwatch_all(s);
        loop_timer_del(s->poll_timer);
        return;
    }
    /* A failed upgrade: the ports the old process closed, back. */
    if (s->fwds_closed && !net_slirp_open_fwds(s, &err)) {
        iovd_warn("netdev '%s': %s", nc->name, err->message);
    }
    s->fwds_closed = false;
    s->dirty = true;            /* the next iteration polls and fills */
    net_flush_queue(nc);        /* frames the NIC queued meanwhile */
}

static void net_slirp_upgrade_save(NetClient *nc, StateWriter *w,
                                   GArray *fds)
{
    SlirpState *s = nc->opaque;
    g_autoptr(GByteArray) b = g_byte_array_new();

    slirp_state_save(s->slirp, net_slirp_state_write, b);
    state_put_u32(w, "version", slirp_state_version());
    state_put_bytes(w, "state", b->data, b->len);
    for (guint i = 0; i < s->fwds->len; i++) {
        SlirpHostFwd *f = &g_array_index(s->fwds, SlirpHostFwd, i);

        slirp_remove_hostfwd(s->slirp, f->udp, f->haddr, f->hport);
    }
    s->fwds_closed = true;
    trace_net_slirp_upgrade_save(nc->name, b->len);
}

static void net_slirp_adopt_free(void *opaque)
{
    SlirpAdopt *sa = opaque;

    g_byte_array_unref(sa->state);
    g_free(sa);
}

static void net_slirp_upgrade_load(NetAdopt *a, StateSection *st)
{
    SlirpAdopt *sa = g_new0(SlirpAdopt, 1);
    size_t len;
    const uint8_t *p;

    a->priv = sa;
    a->priv_free = net_slirp_adopt_free;
    sa->version = state_get_u32(st, "version");
    p = state_get_blob(st, "state", &len);
    sa->state = g_byte_array_new();
    g_byte_array_append(sa->state, p, len);
    if (a->nfds) {
        state_section_fail(st, "user networking hands over no fd, not %u",
                           a->nfds);
    }
}

/* The old process's leases and the rest, into the new stack. */
static bool net_slirp_adopt(SlirpState *s, GError **errp)
{
    NetAdopt *a = net_upgrade_adopt(s->nc);
    SlirpAdopt *sa = a ? a->priv : NULL;

    if (!a) {
        return true;
    }
    sa->off = 0;
    if (sa->version > (uint32_t)slirp_state_version() ||
        slirp_state_load(s->slirp, sa->version, net_slirp_state_read,
                         sa) < 0) {
        error_setg(errp, "libslirp %s cannot load the old process's state "
                   "(version %u)", slirp_version_string(), sa->version);
        return false;
    }
    s->upgrade_paused = true;
    return true;
}

static bool net_slirp_open(NetClient *nc, GError **errp)
{
    SlirpState *s = nc->opaque;
    SlirpConfig cfg = { .version = 4 };
    char net[INET_ADDRSTRLEN], host[INET_ADDRSTRLEN];
    char dhcp[INET_ADDRSTRLEN], dns[INET_ADDRSTRLEN];
    GString *info;

    if (!s->ipv4 && !s->ipv6) {
        error_setg(errp, "ipv4=off and ipv6=off: nothing left to do");
        return false;
    }
    if (!net_slirp_parse_net(s->net, &cfg.vnetwork, &cfg.vnetmask, errp) ||
        !net_slirp_addr_in_net("host", s->host, cfg.vnetwork, cfg.vnetmask,
                               2, &cfg.vhost, errp) ||
        !net_slirp_addr_in_net("dhcpstart", s->dhcpstart, cfg.vnetwork,
                               cfg.vnetmask, 15, &cfg.vdhcp_start, errp) ||
        !net_slirp_addr_in_net("dns", s->dns, cfg.vnetwork, cfg.vnetmask,
                               3, &cfg.vnameserver, errp) ||
        !net_slirp_parse_v6(s, &cfg, errp)) {
        return false;
    }
    cfg.restricted = s->restricted;
    cfg.in_enabled = s->ipv4;
    cfg.in6_enabled = s->ipv6;
    cfg.vhostname = s->hostname;
    cfg.vdomainname = s->domainname;
    cfg.tftp_path = s->tftp;
    cfg.tftp_server_name = s->tftp_server_name;
    cfg.bootfile = s->bootfile;

    s->buf = g_malloc(NET_MAX_FRAME);
    s->poll_timer = loop_timer_new(s->nc->loop, net_slirp_poll_timer, s);
    s->slirp = slirp_new(&cfg, &net_slirp_cb, s);
    if (!s->slirp) {
        error_setg(errp, "libslirp refused this configuration");
        return false;
    }
    if (!net_slirp_open_fwds(s, errp) || !net_slirp_adopt(s, errp)) {
        return false;
    }
    s->dirty = true;
    loop_add_before_poll(s->nc->loop, net_slirp_before_poll, s);
    s->hooked = true;

    inet_ntop(AF_INET, &cfg.vnetwork, net, sizeof(net));
    inet_ntop(AF_INET, &cfg.vhost, host, sizeof(host));
    inet_ntop(AF_INET, &cfg.vdhcp_start, dhcp, sizeof(dhcp));
    inet_ntop(AF_INET, &cfg.vnameserver, dns, sizeof(dns));
    info = g_string_new(NULL);
    g_string_append_printf(info, "user: net=%s/%d host=%s dhcpstart=%s "
                           "dns=%s", net,
                           32 - __builtin_ctz(ntohl(cfg.vnetmask.s_addr)),
                           host, dhcp, dns);
    for (guint i = 0; i < s->fwds->len; i++) {
        g_string_append_printf(info, " hostfwd=%s",
                               g_array_index(s->fwds, SlirpHostFwd,
                                             i).rule);
    }
    net_client_set_info(nc, "%s", info->str);
    g_string_free(info, true);
    return true;
}

static void net_slirp_cleanup(NetClient *nc)
{
    SlirpState *s = nc->opaque;

    if (s->hooked) {
        loop_remove_before_poll(s->nc->loop, net_slirp_before_poll, s);
    }
    /* Our handlers go before slirp closes the fds under them. */
    if (s->watches) {
        net_slirp_unwatch_all(s);
    }
    if (s->slirp) {
        slirp_cleanup(s->slirp);
    }
    while (s->timers) {
        net_slirp_timer_free(s->timers->data, s);
    }
    loop_timer_free(s->poll_timer);
    for (guint i = 0; s->fwds && i < s->fwds->len; i++) {
        g_free(g_array_index(s->fwds, SlirpHostFwd, i).rule);
    }
    if (s->fwds) {
        g_array_free(s->fwds, true);
    }
    if (s->pfds) {
        g_array_free(s->pfds, true);
    }
    if (s->watches) {
        g_hash_table_destroy(s->watches);
    }
    g_free(s->buf);
}

static const PropDef net_slirp_props[] = {
    PROP_DEF_BOOL("ipv4", SlirpState, ipv4, "IPv4", .defval = "on"),
    PROP_DEF_BOOL("ipv6", SlirpState, ipv6, "IPv6", .defval = "on"),
    PROP_DEF_BOOL("restrict", SlirpState, restricted,
                  "isolate the guest from the host and the outside",
                  .defval = "off"),
    PROP_DEF_STR("net", SlirpState, net, "guest network ADDR/PREFIX",
                 .defval = "10.0.2.0/24"),
    PROP_DEF_STR("host", SlirpState, host,
                 "the host's address in it (default: .2)"),
    PROP_DEF_STR("dhcpstart", SlirpState, dhcpstart,
                 "first DHCP address (default: .15)"),
    PROP_DEF_STR("dns", SlirpState, dns,
                 "the DNS server's address (default: .3)"),
    PROP_DEF_STR("ipv6-net", SlirpState, ipv6_net,
                 "IPv6 prefix PREFIX/LEN", .defval = "fec0::/64"),
    PROP_DEF_STR("ipv6-host", SlirpState, ipv6_host,
                 "the host's IPv6 address (default: prefix::2)"),
    PROP_DEF_STR("ipv6-dns", SlirpState, ipv6_dns,
                 "the IPv6 DNS server (default: prefix::3)"),
    PROP_DEF_STR("hostname", SlirpState, hostname,
                 "client hostname handed out by DHCP"),
    PROP_DEF_STR("domainname", SlirpState, domainname,
                 "DNS domain handed out by DHCP"),
    PROP_DEF_STR("tftp", SlirpState, tftp, "directory served by TFTP"),
    PROP_DEF_STR("tftp-server-name", SlirpState, tftp_server_name,
                 "DHCP option 66"),
    PROP_DEF_STR("bootfile", SlirpState, bootfile, "DHCP boot file name"),
    PROP_DEF_END
};

static const NetClientOps net_slirp_ops = {
    .receive = net_slirp_receive,
    .writable = net_slirp_writable,
    .cleanup = net_slirp_cleanup,
};

/*
 * Follow the NIC to its loop: the watches are dropped (the next fill
 * registers them on the new loop), timers move as they are.
 */
static void net_slirp_set_loop(NetClient *nc, EventLoop *to)
{
    SlirpState *s = nc->opaque;

    if (s->hooked) {
        loop_remove_before_poll(nc->loop, net_slirp_before_poll, s);
    }
    net_slirp_unwatch_all(s);
    for (GList *l = s->timers; l; l = l->next) {
        loop_timer_move(((SlirpTimer *)l->data)->timer, to);
    }
    loop_timer_move(s->poll_timer, to);
    nc->loop = to;
    if (s->hooked) {
        loop_add_before_poll(to, net_slirp_before_poll, s);
    }
    s->dirty = true;
}

static const NetBackendDriver net_slirp_driver = {
    .type = "user",
    .help = "-netdev user,id=ID[,net=ADDR/PREFIX][,host=A][,dhcpstart=A]"
            "[,dns=A][,ipv6=on|off][,restrict=on|off]\n"
            "  hostfwd=[tcp|udp]:[HADDR]:HPORT-[GADDR]:GPORT  one forwarded "
            "port;\n"
            "  hostfwd.0=RULE,hostfwd.1=RULE,...  more of them",
    .state_size = sizeof(SlirpState),
    .props = net_slirp_props,
    .ops = &net_slirp_ops,
    .init = net_slirp_init,
    .parse = net_slirp_parse,
    .open = net_slirp_open,
    .set_loop = net_slirp_set_loop,
    .upgrade_pause = net_slirp_upgrade_pause,
    .upgrade_save = net_slirp_upgrade_save,
    .upgrade_load = net_slirp_upgrade_load,
};

static void __attribute__((constructor)) net_slirp_register(void)
{
    net_backend_driver_register(&net_slirp_driver);
}
