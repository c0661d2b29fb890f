/*
 * pcap=FILE: a capture of a backend's frames in the classic libpcap
 * format (link type Ethernet, microsecond time stamps, host byte order,
 * which readers detect from the magic number).  Virtio-net headers are
 * left out.  A write error stops the capture with a warning; it never
 * disturbs the frames themselves.
 */
#include "net/net-int.h"
#include "net/trace.h"
#include "util/error.h"
#include "util/log.h"

#define PCAP_MAGIC          0xa1b2c3d4u
#define PCAP_VERSION_MAJOR  2
#define PCAP_VERSION_MINOR  4
#define PCAP_LINKTYPE_ETHERNET 1
#define PCAP_SNAPLEN        NET_MAX_FRAME

typedef struct PcapFileHeader {
    uint32_t magic;
    uint16_t version_major;
    uint16_t version_minor;
    int32_t thiszone;
    uint32_t sigfigs;
    uint32_t snaplen;
    uint32_t linktype;
} PcapFileHeader;

typedef struct PcapRecordHeader {
    uint32_t ts_sec;
    uint32_t ts_usec;
    uint32_t incl_len;
    uint32_t orig_len;
} PcapRecordHeader;

G_STATIC_ASSERT(sizeof(PcapFileHeader) == 24);
G_STATIC_ASSERT(sizeof(PcapRecordHeader) == 16);

static bool pcap_write_all(int fd, struct iovec *iov, int iovcnt)
{
    while (iovcnt > 0) {
        ssize_t n = writev(fd, iov, MIN(iovcnt, IOV_MAX));

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
            n -= iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + n;
            iov->iov_len -= n;
        }
    }
    return true;
}

bool net_pcap_open(NetClient *nc, const char *path, GError **errp)
{
    PcapFileHeader h = {
        .magic = PCAP_MAGIC,
        .version_major = PCAP_VERSION_MAJOR,
        .version_minor = PCAP_VERSION_MINOR,
        .snaplen = PCAP_SNAPLEN,
        .linktype = PCAP_LINKTYPE_ETHERNET,
    };
    struct iovec iov = { &h, sizeof(h) };
    int fd;

    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        error_setg_errno(errp, errno, "pcap: cannot create '%s'", path);
        return false;
    }
    if (!pcap_write_all(fd, &iov, 1)) {
        error_setg_errno(errp, errno, "pcap: cannot write '%s'", path);
        close(fd);
        return false;
    }
    nc->pcap_fd = fd;
    trace_net_pcap_open(nc->name, path);
    return true;
}

void net_pcap_write(NetClient *nc, const struct iovec *iov, int iovcnt,
                    size_t skip)
{
    struct iovec local[NET_IOV_INLINE + 1];
    size_t len = iov_size(iov, iovcnt);
    size_t incl;
    int64_t now = g_get_real_time();
    PcapRecordHeader r;
    g_autofree uint8_t *flat = NULL;
    int n;

    if (nc->pcap_fd < 0 || len < skip) {
        return;
    }
    len -= skip;
    incl = MIN(len, PCAP_SNAPLEN);
    r.ts_sec = now / G_USEC_PER_SEC;
    r.ts_usec = now % G_USEC_PER_SEC;
    r.incl_len = incl;
    r.orig_len = len;
    local[0].iov_base = &r;
    local[0].iov_len = sizeof(r);
    n = iov_slice(&local[1], NET_IOV_INLINE, iov, iovcnt, skip, SIZE_MAX);
    if (n < 0) {
        /* Many small segments: the slow path. */
        flat = g_malloc(len);
        iov_to_buf(iov, iovcnt, skip, flat, len);
        local[1].iov_base = flat;
        local[1].iov_len = len;
        n = 1;
    }
    /* Clip to the snap length (frames never exceed it in practice). */
    for (int i = 1, left = incl; i <= n; i++) {
        local[i].iov_len = MIN(local[i].iov_len, (size_t)left);
        left -= local[i].iov_len;
    }
    if (!pcap_write_all(nc->pcap_fd, local, n + 1)) {
        iovd_warn("netdev %s: pcap write failed (%s); capture stopped",
                  nc->name, g_strerror(errno ? errno : ENOSPC));
        net_pcap_close(nc);
    }
}

void net_pcap_close(NetClient *nc)
{
    if (nc->pcap_fd >= 0) {
        close(nc->pcap_fd);
        nc->pcap_fd = -1;
    }
}
