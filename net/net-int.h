/*
 * Network layer internals: the backend driver interface and helpers
 * shared by net.c, pcap.c and the backends (slirp.c, tap.c, stream.c).
 */
#ifndef NET_NET_INT_H
#define NET_NET_INT_H

#include "net/net.h"
#include "util/iov.h"
#include "util/savestate.h"

typedef struct NetAdopt NetAdopt;

/*
 * A backend type.  net_backend_create() allocates @state_size bytes at
 * nc->opaque, calls init (defaults that a property table cannot give,
 * e.g. fd = -1), applies @props, then parse (options a table cannot
 * express), checks that no option is left over, opens the capture file
 * and calls open.  ops->cleanup runs on any failure after init and when
 * the backend is deleted: it must cope with a half-opened state.
 */
typedef struct NetBackendDriver {
    const char *type;
    const char *help;           /* "-netdev TYPE,id=ID,..." lines */
    size_t state_size;
    const PropDef *props;
    const NetClientOps *ops;    /* receive: a frame from the NIC */
    void (*init)(NetClient *nc);
    bool (*parse)(NetClient *nc, Keyval *kv, GError **errp);
    bool (*open)(NetClient *nc, GError **errp);
    /* TUN_F_* style flags (NET_OFFLOAD_*); false when not possible. */
    bool (*set_offloads)(NetClient *nc, unsigned flags);
    /*
     * Move every handler, bottom half and timer from nc->loop to @to and
     * set nc->loop (the backend follows its NIC to the NIC's loop).
     * Called with both loops owned or borrowed by the caller.
     */
    void (*set_loop)(NetClient *nc, struct EventLoop *to);
    /*
     * Live upgrade (a backend type without these is refused).  On
     * nc->loop: upgrade_pause stops (true) or resumes (false) every
     * handler that reads, writes or delivers; upgrade_save writes the
     * backend's fields, its fds appended to @fds (indexes into @fds, in
     * the order the new process's NetAdopt holds them).  In the new
     * process, before the options are applied: upgrade_load reads them
     * into a->priv (errors with state_section_fail).
     */
    void (*upgrade_pause)(NetClient *nc, bool pause);
    void (*upgrade_save)(NetClient *nc, StateWriter *w, GArray *fds);
    void (*upgrade_load)(NetAdopt *a, StateSection *s);
} NetBackendDriver;

enum {
    NET_OFFLOAD_CSUM = 1 << 0,
    NET_OFFLOAD_TSO4 = 1 << 1,
    NET_OFFLOAD_TSO6 = 1 << 2,
    NET_OFFLOAD_ECN = 1 << 3,
    NET_OFFLOAD_UFO = 1 << 4,
};

void net_backend_driver_register(const NetBackendDriver *drv);

/*
 * Backends: may @nc hand its peer a frame now?  True without a peer (the
 * frame is then dropped and counted), so the host side keeps draining.
 * When false, stop reading the host side until ops->writable() runs.
 */
bool net_client_can_send(NetClient *nc);

/* Backends: the host side (re)connected or went away; the NIC is told. */
void net_backend_set_carrier(NetClient *nc, bool up);

/* Replace nc->info_str. */
void net_client_set_info(NetClient *nc, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);

/* ---- struct virtio_net_hdr_v1 (little endian) ---- */

#define NET_VNET_F_NEEDS_CSUM   1
#define NET_VNET_F_DATA_VALID   2
#define NET_VNET_GSO_NONE       0
#define NET_VNET_GSO_TCPV4      1
#define NET_VNET_GSO_UDP        3
#define NET_VNET_GSO_TCPV6      4
#define NET_VNET_GSO_ECN        0x80

typedef struct NetVnetHdr {
    uint8_t flags;
    uint8_t gso_type;
    uint16_t hdr_len;
    uint16_t gso_size;
    uint16_t csum_start;
    uint16_t csum_offset;
    uint16_t num_buffers;
} __attribute__((packed)) NetVnetHdr;

G_STATIC_ASSERT(sizeof(NetVnetHdr) == NET_VNET_HDR_LEN);

/* ---- iovec helpers ---- */

/* iovecs kept on the stack for one frame; more are linearized. */
#define NET_IOV_INLINE 64


/* ---- live upgrade: what a backend of the new process takes over ---- */

struct NetAdopt {
    char *id;
    const NetBackendDriver *drv;
    int *fds;                   /* the backend's, in its save order */
    unsigned nfds;
    GByteArray *to_nic;         /* frames queued for the NIC */
    GByteArray *to_backend;     /* frames queued for the backend */
    void *priv;                 /* the driver's (upgrade_load) */
    GDestroyNotify priv_free;
    bool taken;
};

/*
 * In a backend's open: what it takes over from the old process (NULL:
 * nothing, open as usual).  An adopted backend starts paused; it runs
 * once the new process runs its devices (upgrade_pause(nc, false)).
 */
NetAdopt *net_upgrade_adopt(NetClient *nc);
/* The adopted fd @i (then the backend's), or -1. */
int net_adopt_take_fd(NetAdopt *a, unsigned i);

/* ---- capture (pcap.c) ---- */

bool net_pcap_open(NetClient *nc, const char *path, GError **errp);
/* Record one frame, without its first @skip bytes (a vnet header). */
void net_pcap_write(NetClient *nc, const struct iovec *iov, int iovcnt,
                    size_t skip);
void net_pcap_close(NetClient *nc);

#endif
