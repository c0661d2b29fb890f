/*
 * A vfio-user client that plays the VMM against iovd.
 *
 * One VfuClient is one connection to one device socket.  It speaks the
 * wire format of hw/vfio-user/vfio-user-proto.h:
 *
 * - typed helpers (vfu_get_device_info(), vfu_region_read(), ...) return 0
 *   or the negative errno of the server's error reply, so tests can check
 *   both success and the exact error;
 * - raw helpers (vfu_send_msg(), vfu_send_hdr(), vfu_send_bytes()) send
 *   anything at all, with any file descriptors, for protocol abuse tests;
 * - while waiting for a reply, the client answers the server's DMA_READ and
 *   DMA_WRITE requests from the memory registered with vfu_dma_map() (the
 *   path a client without shared memory relies on);
 * - every wait is bounded (QOS_TIMEOUT_MS by default): a missing reply, a
 *   closed connection or a malformed reply fails the test with a message
 *   naming the command and message id, it never hangs.
 *
 * Message ids increase per message; replies are matched by id, so requests
 * may be pipelined (vfu_send_msg() then vfu_wait_reply()).  A reply to an
 * id that is not awaited (for example a reply to a No_reply message) is
 * counted in VfuClientStats.unexpected_replies.
 */
#ifndef LIBQOS_VFU_CLIENT_H
#define LIBQOS_VFU_CLIENT_H

#include "util/osdep.h"
#include "hw/vfio-user/vfio-user-proto.h"
#include "tests/qtest/libqos/qos-util.h"

typedef struct VfuClient VfuClient;

/* The capabilities a QEMU 10.x client proposes (NUL added on the wire). */
#define VFU_CLIENT_MAX_MSG_FDS   16
#define VFU_CLIENT_MAX_XFER      (1u << 20)
#define VFU_CLIENT_DEFAULT_CAPS                                         \
    "{\"capabilities\":{\"max_msg_fds\":16,"                            \
    "\"max_data_xfer_size\":1048576,\"pgsizes\":4096,"                  \
    "\"max_dma_maps\":65535,\"migration\":{\"pgsize\":4096,"            \
    "\"max_bitmap_size\":1048576},\"write_multiple\":true}}"

/* Most file descriptors accepted in one received message. */
#define VFU_CLIENT_MAX_RX_FDS    64
/* Largest message accepted from the server. */
#define VFU_CLIENT_MAX_RX_SIZE   (VFU_HDR_SIZE + 64 + 2 * VFU_CLIENT_MAX_XFER)

/* Layout of server-initiated DMA_READ / DMA_WRITE (see the proto header). */
typedef enum VfuDmaRwLayout {
    VFU_DMA_RW_QEMU,            /* {u64 addr, u32 count}, data at 12 */
    VFU_DMA_RW_SPEC,            /* {u64 addr, u64 count}, data at 16 */
} VfuDmaRwLayout;

/* A received message: header, payload and passed file descriptors. */
typedef struct VfuRxMsg {
    VfuHdr hdr;
    uint8_t *payload;           /* hdr.size - 16 bytes */
    uint32_t len;
    int *fds;                   /* owned: closed by vfu_rx_msg_free() */
    unsigned nfds;
    bool fds_truncated;         /* MSG_CTRUNC: the server sent too many */
    bool applied;               /* a held DMA_WRITE already in memory */
} VfuRxMsg;

void vfu_rx_msg_free(VfuRxMsg *m);
/* Take fd @i out of @m (the caller closes it); -1 when absent. */
int vfu_rx_msg_steal_fd(VfuRxMsg *m, unsigned i);
/* The error reply's errno as a negative number, or 0 for a normal reply. */
int vfu_rx_msg_error(const VfuRxMsg *m);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(VfuRxMsg, vfu_rx_msg_free)

/* What the server answered to VERSION. */
typedef struct VfuServerCaps {
    uint16_t major, minor;
    char *json;                 /* the reply's JSON text */
    bool json_nul_at_end;       /* NUL is the payload's last byte */
    uint32_t reply_size;        /* whole reply message */
    uint32_t request_size;      /* whole VERSION request message */
    /* Parsed capabilities, spec defaults where absent. */
    uint64_t max_msg_fds;       /* default 1 */
    uint64_t max_data_xfer_size;    /* default 1 MiB */
    uint64_t max_dma_maps;      /* default 65535 */
    uint64_t pgsizes;           /* default 4096 */
    bool write_multiple;
} VfuServerCaps;

/* Counters a test can assert on. */
typedef struct VfuClientStats {
    uint64_t msgs_sent, msgs_received;
    uint64_t dma_reads, dma_writes;         /* server requests served */
    uint64_t dma_read_bytes, dma_write_bytes;
    uint64_t dma_errors;                    /* answered with an error */
    uint64_t unexpected_replies;            /* reply to no awaited id */
    uint64_t protocol_errors;               /* malformed server messages */
    VfuHdr last_unexpected;                 /* header of the last one */
} VfuClientStats;

/* ---- connection ---- */

/* Connect to @path (no negotiation yet); fails the test on error. */
VfuClient *vfu_client_connect(const char *path);
/* Connect and negotiate with the default capabilities; fails on error. */
VfuClient *vfu_client_open(const char *path);
/* Close the socket; mappings registered with vfu_dma_map() are dropped. */
void vfu_client_free(VfuClient *c);

int vfu_client_fd(VfuClient *c);
/* True once the server has closed the connection (EOF seen). */
bool vfu_client_closed(VfuClient *c);
/* Per-reply time limit (default QOS_TIMEOUT_MS). */
void vfu_client_set_timeout(VfuClient *c, int timeout_ms);
int vfu_client_timeout(VfuClient *c);
/* How to read the server's DMA_READ/DMA_WRITE (default QEMU's layout). */
void vfu_client_set_dma_layout(VfuClient *c, VfuDmaRwLayout layout);
const VfuClientStats *vfu_client_stats(VfuClient *c);
/* Fail unless no unexpected reply and no malformed message was seen. */
void vfu_client_assert_clean(VfuClient *c);

/* ---- negotiation ---- */

/*
 * Send VERSION @major.@minor with @json (NULL: VFU_CLIENT_DEFAULT_CAPS;
 * "": no version data at all) plus its terminating NUL.  Returns 0 when the
 * server accepted (vfu_server_caps() then describes the reply) or the
 * negative errno of its error reply.  A malformed success reply fails the
 * test.
 */
int vfu_negotiate(VfuClient *c, uint16_t major, uint16_t minor,
                  const char *json);
/* VERSION with an arbitrary payload; returns the reply (caller frees). */
VfuRxMsg *vfu_negotiate_raw(VfuClient *c, const void *payload, size_t len);
const VfuServerCaps *vfu_server_caps(VfuClient *c);

/*
 * True when every member of @reply's "capabilities" object also appears in
 * @request's (recursively for objects).  Otherwise false, with *why set
 * (g_free) when @why is not NULL.
 */
bool vfu_caps_is_subset(const char *request, const char *reply, char **why);

/* ---- raw messages ---- */

/* Allocate the next message id. */
uint16_t vfu_next_msg_id(VfuClient *c);
/*
 * Send a command with a correct header; returns its message id.  A reply is
 * awaited (vfu_wait_reply()) unless @flags has VFU_FLAG_NO_REPLY.
 */
uint16_t vfu_send_msg(VfuClient *c, uint16_t cmd, uint32_t flags,
                      const void *payload, size_t len,
                      const int *fds, unsigned nfds);
/*
 * Send @hdr exactly as given (its size is not checked) followed by
 * @payload.  The id counts as awaited when @hdr is a command without
 * No_reply.
 */
void vfu_send_hdr(VfuClient *c, const VfuHdr *hdr, const void *payload,
                  size_t len, const int *fds, unsigned nfds);
/* Send arbitrary bytes (fds travel with the first byte). */
void vfu_send_bytes(VfuClient *c, const void *buf, size_t len,
                    const int *fds, unsigned nfds);

/*
 * Wait for the reply to @id, answering server requests meanwhile.  Fails
 * the test on timeout or disconnection, or when the reply's command is not
 * the request's.
 */
VfuRxMsg *vfu_wait_reply(VfuClient *c, uint16_t id);
/* Same, but NULL on timeout or disconnection (no failure). */
VfuRxMsg *vfu_try_wait_reply(VfuClient *c, uint16_t id, int timeout_ms);
/*
 * Send a command and wait for its reply.  Returns 0 or the negative errno of
 * an error reply (-EIO if the error reply carries error 0).  *reply (when
 * @reply is not NULL) receives the reply message either way.
 */
int vfu_request(VfuClient *c, uint16_t cmd, const void *payload, size_t len,
                const int *fds, unsigned nfds, VfuRxMsg **reply);

/*
 * Answer server requests for @timeout_ms.  Returns false when the server
 * closed the connection.
 */
bool vfu_service(VfuClient *c, int timeout_ms);
/*
 * Wait until @fd is readable, answering server requests meanwhile.  True
 * when @fd became readable, false on timeout.
 */
bool vfu_wait_fd(VfuClient *c, int fd, int timeout_ms);
/* True when the server closes the connection within @timeout_ms. */
bool vfu_wait_closed(VfuClient *c, int timeout_ms);

/* ---- typed commands ---- */

int vfu_get_device_info(VfuClient *c, VfuDeviceInfo *info);

#define VFU_MAX_SPARSE_AREAS 16

typedef struct VfuSparseArea {
    uint64_t offset, size;
} VfuSparseArea;

/* A region as described by DEVICE_GET_REGION_INFO. */
typedef struct VfuRegion {
    uint32_t index;
    uint32_t flags;             /* VFIO_REGION_INFO_FLAG_* */
    uint64_t size;
    uint64_t offset;            /* mmap offset into fd */
    uint32_t argsz;             /* full reply payload size */
    uint32_t first_argsz;       /* argsz in the reply to the first try */
    unsigned tries;             /* requests needed (2 after an argsz retry) */
    bool has_sparse_cap;
    unsigned nr_areas;
    VfuSparseArea areas[VFU_MAX_SPARSE_AREAS];
    int fd;                     /* -1 when none was passed; owned */
} VfuRegion;

/*
 * GET_REGION_INFO for @index, first with argsz 32 then, when the server
 * says it needs more, with the argsz it asked for.  Parses the capability
 * chain (sparse mmap areas).  Returns 0 or -errno.  Release with
 * vfu_region_clear() (closes the fd).
 */
int vfu_get_region_info(VfuClient *c, uint32_t index, VfuRegion *r);
void vfu_region_clear(VfuRegion *r);

int vfu_get_irq_info(VfuClient *c, uint32_t index, VfuIrqInfo *info);

/*
 * SET_IRQS.  @flags is VFIO_IRQ_SET_DATA_* | VFIO_IRQ_SET_ACTION_*.  With
 * DATA_EVENTFD, @fds (@nfds of them, may be 0) travel as SCM_RIGHTS; with
 * DATA_BOOL, @bools holds @count bytes.  Returns 0 or -errno.
 */
int vfu_set_irqs(VfuClient *c, uint32_t index, uint32_t flags,
                 uint32_t start, uint32_t count,
                 const int *fds, unsigned nfds, const uint8_t *bools);

/*
 * REGION_READ / REGION_WRITE of any length (split at the server's
 * max_data_xfer_size).  Return 0 or -errno.
 */
int vfu_region_read(VfuClient *c, uint32_t region, uint64_t offset,
                    void *buf, uint32_t count);
int vfu_region_write(VfuClient *c, uint32_t region, uint64_t offset,
                     const void *buf, uint32_t count);
/* REGION_WRITE with No_reply (posted, like QEMU's MMIO writes). */
void vfu_region_write_posted(VfuClient *c, uint32_t region, uint64_t offset,
                             const void *buf, uint32_t count);
/*
 * REGION_WRITE_MULTI of @n writes (each count <= 8).  With @posted, no
 * reply is asked for and 0 is returned.
 */
int vfu_write_multi(VfuClient *c, const VfuWriteOne *wrs, unsigned n,
                    bool posted);

int vfu_device_reset(VfuClient *c);

/*
 * Withhold the server's DMA_READ / DMA_WRITE requests (a VMM whose main
 * loop is busy): they are kept, unanswered, until vfu_client_hold_dma(c,
 * false) answers them in order.  For tests of what the device does while
 * its work waits for a reply.
 */
void vfu_client_hold_dma(VfuClient *c, bool hold);
/*
 * Holding writes only: DMA_READs are answered, DMA_WRITE data lands in
 * guest memory at once and only the reply is withheld (the VMM wrote,
 * its answer is late: QEMU's client writes guest RAM before it replies).
 */
void vfu_client_hold_dma_apply_writes(VfuClient *c, bool apply);
unsigned vfu_client_held_dma(VfuClient *c);
/* Serve the connection until @n requests are held; false on timeout. */
bool vfu_client_wait_held_dma(VfuClient *c, unsigned n, int timeout_ms);

/*
 * DMA_MAP [addr, addr + size) with @prot (VFU_DMA_FLAG_READ/WRITE).  With
 * @fd >= 0 it is passed (at @fd_offset) for the server to mmap; with
 * @fd < 0 none is, and the server must use DMA_READ/DMA_WRITE.  @host, when
 * not NULL, is where the client finds that memory to answer those
 * requests.  Returns 0 or -errno; on success the range is remembered.
 */
int vfu_dma_map(VfuClient *c, uint64_t addr, uint64_t size, uint32_t prot,
                int fd, uint64_t fd_offset, void *host);
/* DMA_UNMAP; on success the range is forgotten.  0 or -errno. */
int vfu_dma_unmap(VfuClient *c, uint64_t addr, uint64_t size,
                  uint32_t flags);

#endif
