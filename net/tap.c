/*
 * -netdev tap: a Linux TAP interface, created by name (ifname=, needs
 * CAP_NET_ADMIN unless the tap is persistent and owned by this user) or
 * handed over as an open file descriptor (fd=).  No helper scripts: the
 * interface is configured by whoever owns the host network.
 *
 * vnet_hdr=on puts a struct virtio_net_hdr_v1 (12 bytes) in front of each
 * frame, so a virtio-net NIC can pass checksum and segmentation offloads
 * through (net_set_offloads() turns them on with TUNSETOFFLOAD).  Absent,
 * vnet_hdr is used when the kernel supports it; the layer strips or adds
 * the header for NICs that do not want it.
 */
#include "net/net-int.h"
#include "net/trace.h"
#include "util/error.h"
#include "util/log.h"
#include "util/loop.h"

#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>

/* Frames read per wakeup before giving other work a turn. */
#define TAP_READ_BATCH 64
#define TAP_BUF_SIZE (NET_MAX_FRAME + NET_VNET_HDR_LEN)

typedef struct TapState {
    NetClient *nc;

    /* options */
    char *ifname;
    char *fd_str;
    char *vnet_hdr_str;
    char *script;
    char *downscript;

    int fd;
    bool read_paused;           /* the NIC cannot take frames */
    bool write_blocked;         /* the tap returned EAGAIN */
    bool upgrade_paused;        /* live upgrade: no handler runs */
    uint8_t *buf;
} TapState;

static void tap_read(void *opaque);
static void tap_write_ready(void *opaque);

static void tap_update_handlers(TapState *s)
{
    bool on = !s->upgrade_paused;

    loop_set_fd(s->nc->loop, s->fd, on && !s->read_paused ? tap_read : NULL,
                on && s->write_blocked ? tap_write_ready : NULL, s);
}

static void tap_read(void *opaque)
{
    TapState *s = opaque;
    NetClient *nc = s->nc;
    size_t min = nc->has_vnet_hdr ? NET_VNET_HDR_LEN : 0;

    for (int i = 0; i < TAP_READ_BATCH; i++) {
        ssize_t n;

        if (!net_client_can_send(nc)) {
            s->read_paused = true;
            tap_update_handlers(s);
            return;
        }
        n = read(s->fd, s->buf, TAP_BUF_SIZE);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN) {
                /* The interface went away (EBADFD...): stop polling it. */
                iovd_warn("netdev %s: read from tap %s: %s", nc->name,
                          s->ifname ? s->ifname : "", g_strerror(errno));
                s->read_paused = true;
                tap_update_handlers(s);
            }
            return;
        }
        if ((size_t)n <= min) {
            continue;           /* a runt: nothing to deliver */
        }
        if (net_send(nc, s->buf, n) == 0) {
            s->read_paused = true;
            tap_update_handlers(s);
            return;
        }
    }
}

static void tap_writable(NetClient *nc)
{
    TapState *s = nc->opaque;

    if (s->read_paused && s->fd >= 0) {
        s->read_paused = false;
        tap_update_handlers(s);
    }
}

static void tap_write_ready(void *opaque)
{
    TapState *s = opaque;

    s->write_blocked = false;
    tap_update_handlers(s);
    net_flush_queue(s->nc);
}

static ssize_t tap_receive(NetClient *nc, const struct iovec *iov,
                           int iovcnt)
{
    TapState *s = nc->opaque;
    ssize_t n;

    if (s->write_blocked || s->upgrade_paused) {
        return -EAGAIN;
    }
    do {
        n = writev(s->fd, iov, iovcnt);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN) {
            s->write_blocked = true;
            tap_update_handlers(s);
            return -EAGAIN;
        }
        /* EIO: interface down; EINVAL: a bad vnet header.  Dropped. */
        trace_net_tap_write_error(nc->name, g_strerror(errno));
        return 0;
    }
    return iov_size(iov, iovcnt);
}

static bool tap_set_offloads(NetClient *nc, unsigned flags)
{
    TapState *s = nc->opaque;
    unsigned tun = 0;

    tun |= flags & NET_OFFLOAD_CSUM ? TUN_F_CSUM : 0;
    tun |= flags & NET_OFFLOAD_TSO4 ? TUN_F_TSO4 : 0;
    tun |= flags & NET_OFFLOAD_TSO6 ? TUN_F_TSO6 : 0;
    tun |= flags & NET_OFFLOAD_ECN ? TUN_F_TSO_ECN : 0;
    tun |= flags & NET_OFFLOAD_UFO ? TUN_F_UFO : 0;
    if (ioctl(s->fd, TUNSETOFFLOAD, (unsigned long)tun) < 0) {
        trace_net_tap_offloads(nc->name, tun, errno);
        return false;
    }
    trace_net_tap_offloads(nc->name, tun, 0);
    return true;
}

/* -1: not given (use it when the kernel can), 0 off, 1 on. */
static bool tap_want_vnet_hdr(TapState *s, int *want, GError **errp)
{
    bool on;

    *want = -1;
    if (!s->vnet_hdr_str) {
        return true;
    }
    if (!parse_bool(s->vnet_hdr_str, &on, errp)) {
        error_prepend(errp, "property 'vnet_hdr': ");
        return false;
    }
    *want = on;
    return true;
}

static bool tap_open_fd(TapState *s, int want, GError **errp)
{
    struct ifreq ifr = { 0 };
    uint64_t fd;
    bool has;

    if (s->ifname) {
        error_setg(errp, "ifname= and fd= are exclusive");
        return false;
    }
    if (!parse_uint(s->fd_str, &fd, errp) || fd > INT32_MAX ||
        fcntl(fd, F_GETFD) < 0) {
        g_clear_error(errp);
        error_setg(errp, "property 'fd': '%s' is not an open file "
                   "descriptor", s->fd_str);
        return false;
    }
    if (ioctl(fd, TUNGETIFF, &ifr) < 0 || !(ifr.ifr_flags & IFF_TAP)) {
        error_setg(errp, "property 'fd': %s is not a tap device", s->fd_str);
        return false;
    }
    has = ifr.ifr_flags & IFF_VNET_HDR;
    if (want >= 0 && want != has) {
        error_setg(errp, "property 'vnet_hdr': the tap of fd %s was opened "
                   "%s IFF_VNET_HDR", s->fd_str, has ? "with" : "without");
        return false;
    }
    s->fd = fd;
    s->ifname = g_strndup(ifr.ifr_name, IFNAMSIZ);
    s->nc->has_vnet_hdr = has;
    return true;
}

static bool tap_open_dev(TapState *s, int want, GError **errp)
{
    struct ifreq ifr = { 0 };
    unsigned int features = 0;
    bool vnet;

    if (s->ifname && strlen(s->ifname) >= IFNAMSIZ) {
        error_setg(errp, "property 'ifname': longer than %d characters",
                   IFNAMSIZ - 1);
        return false;
    }
    s->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (s->fd < 0) {
        error_setg_errno(errp, errno, "cannot open /dev/net/tun");
        return false;
    }
    if (ioctl(s->fd, TUNGETFEATURES, &features) < 0) {
        features = 0;
    }
    vnet = want != 0 && (features & IFF_VNET_HDR);
    if (want == 1 && !vnet) {
        error_setg(errp, "property 'vnet_hdr': the kernel has no "
                   "IFF_VNET_HDR");
        return false;
    }
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0);
    if (s->ifname) {
        g_strlcpy(ifr.ifr_name, s->ifname, IFNAMSIZ);
    }
    if (ioctl(s->fd, TUNSETIFF, &ifr) < 0) {
        error_setg_errno(errp, errno, "cannot create tap '%s'%s",
                         s->ifname ? s->ifname : "tap%d",
                         errno == EPERM ? " (needs CAP_NET_ADMIN, or a "
                         "persistent tap owned by this user)" : "");
        return false;
    }
    g_free(s->ifname);
    s->ifname = g_strndup(ifr.ifr_name, IFNAMSIZ);
    s->nc->has_vnet_hdr = vnet;
    return true;
}

static void tap_init(NetClient *nc)
{
    TapState *s = nc->opaque;

    s->nc = nc;
    s->fd = -1;
}

static bool tap_script_no(const char *name, const char *value,
                          GError **errp)
{
    if (value && *value && strcmp(value, "no") != 0) {
        error_setg(errp, "property '%s': only %s=no is supported (set the "
                   "interface up beforehand)", name, name);
        return false;
    }
    return true;
}

/* ---- live upgrade ---- */

static void tap_upgrade_pause(NetClient *nc, bool pause)
{
    TapState *s = nc->opaque;

    if (s->upgrade_paused == pause || s->fd < 0) {
        return;
    }
    s->upgrade_paused = pause;
    if (!pause) {
        s->read_paused = false;     /* tap_read asks the NIC first */
    }
    tap_update_handlers(s);
    if (!pause && !s->write_blocked) {
        /* Frames the NIC queued for us before a live upgrade. */
        net_flush_queue(nc);
    }
}

static void tap_upgrade_save(NetClient *nc, StateWriter *w, GArray *fds)
{
    TapState *s = nc->opaque;

    g_array_append_val(fds, s->fd);
    state_put_bool(w, "vnet-hdr", nc->has_vnet_hdr);
}

static void tap_upgrade_load(NetAdopt *a, StateSection *st)
{
    a->priv = g_new0(bool, 1);
    a->priv_free = g_free;
    *(bool *)a->priv = state_get_bool(st, "vnet-hdr");
    if (a->nfds != 1) {
        state_section_fail(st, "a tap hands over one fd, not %u", a->nfds);
    }
}

/* The old process's tap: the same interface, its offloads as they are. */
static bool tap_adopt(TapState *s, NetAdopt *a, GError **errp)
{
    struct ifreq ifr = { 0 };

    s->fd = net_adopt_take_fd(a, 0);
    s->upgrade_paused = true;
    if (ioctl(s->fd, TUNGETIFF, &ifr) < 0 ||
        !(ifr.ifr_flags & IFF_VNET_HDR) != !*(bool *)a->priv) {
        error_setg(errp, "the tap handed over is not the one described");
        return false;
    }
    g_free(s->ifname);
    s->ifname = g_strndup(ifr.ifr_name, IFNAMSIZ);
    s->nc->has_vnet_hdr = *(bool *)a->priv;
    return true;
}

static bool tap_open(NetClient *nc, GError **errp)
{
    TapState *s = nc->opaque;
    int want, hdr_len = NET_VNET_HDR_LEN;
    NetAdopt *a = NULL;

    if (!tap_script_no("script", s->script, errp) ||
        !tap_script_no("downscript", s->downscript, errp) ||
        !tap_want_vnet_hdr(s, &want, errp)) {
        return false;
    }
    a = net_upgrade_adopt(nc);
    if (a ? !tap_adopt(s, a, errp)
          : s->fd_str ? !tap_open_fd(s, want, errp)
                      : !tap_open_dev(s, want, errp)) {
        return false;
    }
    if (nc->has_vnet_hdr) {
        if (ioctl(s->fd, TUNSETVNETHDRSZ, &hdr_len) < 0) {
            error_setg_errno(errp, errno, "tap %s: TUNSETVNETHDRSZ",
                             s->ifname);
            return false;
        }
        /* Complete frames until a NIC asks for offloads (adopted: the
         * offloads its NIC asked for stay). */
        if (!a) {
            ioctl(s->fd, TUNSETOFFLOAD, 0UL);
        }
    }
    if (fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) | O_NONBLOCK) < 0 ||
        fcntl(s->fd, F_SETFD, FD_CLOEXEC) < 0) {
        error_setg_errno(errp, errno, "tap %s: fcntl", s->ifname);
        return false;
    }
    s->buf = g_malloc(TAP_BUF_SIZE);
    tap_update_handlers(s);
    net_client_set_info(nc, "tap: ifname=%s vnet_hdr=%s", s->ifname,
                        nc->has_vnet_hdr ? "on" : "off");
    trace_net_tap_open(nc->name, s->ifname, nc->has_vnet_hdr);
    return true;
}

static void tap_cleanup(NetClient *nc)
{
    TapState *s = nc->opaque;

    if (s->fd >= 0) {
        loop_set_fd(s->nc->loop, s->fd, NULL, NULL, NULL);
        close(s->fd);
        s->fd = -1;
    }
    g_free(s->buf);
}

static const PropDef tap_props[] = {
    PROP_DEF_STR("ifname", TapState, ifname,
                 "interface name (created when missing; default tapN)"),
    PROP_DEF_STR("fd", TapState, fd_str,
                 "an open tap file descriptor to use instead"),
    PROP_DEF_STR("vnet_hdr", TapState, vnet_hdr_str,
                 "on|off: virtio-net header (default: when available)"),
    PROP_DEF_STR("script", TapState, script, "only 'no'"),
    PROP_DEF_STR("downscript", TapState, downscript, "only 'no'"),
    PROP_DEF_END
};

static const NetClientOps tap_ops = {
    .receive = tap_receive,
    .writable = tap_writable,
    .cleanup = tap_cleanup,
};

static void tap_set_loop(NetClient *nc, EventLoop *to)
{
    TapState *s = nc->opaque;

    if (s->fd >= 0) {
        loop_set_fd(nc->loop, s->fd, NULL, NULL, NULL);
    }
    nc->loop = to;
    if (s->fd >= 0) {
        tap_update_handlers(s);
    }
}

static const NetBackendDriver tap_driver = {
    .type = "tap",
    .help = "-netdev tap,id=ID[,ifname=NAME|fd=N][,vnet_hdr=on|off]"
            "[,script=no][,downscript=no]",
    .state_size = sizeof(TapState),
    .props = tap_props,
    .ops = &tap_ops,
    .init = tap_init,
    .open = tap_open,
    .set_offloads = tap_set_offloads,
    .set_loop = tap_set_loop,
    .upgrade_pause = tap_upgrade_pause,
    .upgrade_save = tap_upgrade_save,
    .upgrade_load = tap_upgrade_load,
};

static void __attribute__((constructor)) tap_register(void)
{
    net_backend_driver_register(&tap_driver);
}
