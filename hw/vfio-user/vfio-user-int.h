/*
 * vfio-user server internals: one server per PCI device, on the device's
 * loop.  Only this directory (and its unit test) includes this; the rest
 * of iovd sees vfio-user.h.
 */
#ifndef HW_VFIO_USER_VFIO_USER_INT_H
#define HW_VFIO_USER_VFIO_USER_INT_H

#include "util/osdep.h"
#include "hw/pci/pci.h"
#include "hw/vfio-user/vfio-user.h"
#include "hw/vfio-user/vfio-user-proto.h"

#include <sys/uio.h>

#define VFU_NUM_REGIONS VFIO_PCI_NUM_REGIONS    /* BAR0-5, ROM, CONFIG, VGA */
#define VFU_RX_MAX_FDS  64                      /* receive up to, reject > max */
#define VFU_REPLY_TIMEOUT_MS 5000
#define VFU_TX_BACKLOG_MAX (8u << 20)
#define VFU_RX_BUF_SIZE (VFU_MAX_MSG_SIZE + (64u << 10))
#define VFU_RX_FDQ 4                    /* reads with fds not yet framed */
#define VFU_DMA_READ_CHUNK (32u << 10)   /* see vfu_dma_rw_start() */
#define VFU_DMA_XFERS 4                 /* DMA_READ/WRITE at a time */
#define VFU_DEFERRED_MAX 256            /* held requests before we stop reading */
#define VFU_DEFERRED_MAX_BYTES (4u << 20)  /* ... or held payload bytes */

typedef struct VfuDmaRegion {
    uint64_t addr, size;
    uint32_t prot;              /* VFU_DMA_FLAG_READ | _WRITE */
    uint8_t *host;              /* NULL: reach it by DMA_READ/WRITE */
    int fd;                     /* a dup of the client's fd, or -1 */
    uint64_t fd_offset;
    int guard;                  /* util/memguard slot of host, or -1 */
    /* While dirty logging: a bit per VFU_DIRTY_PAGE_SIZE the device wrote. */
    unsigned long *dirty;
} VfuDmaRegion;

/*
 * A request being handled: usually a view into rx_buf, valid until its
 * handler returns; one that must wait is copied (vfu_msg_copy).
 */
typedef struct VfuMsg {
    VfuHdr hdr;
    uint8_t *payload;           /* hdr.size - 16 bytes, 8-byte aligned */
    uint32_t len;
    int fds[VFU_RX_MAX_FDS];
    unsigned nfds;
} VfuMsg;

/*
 * A server-initiated copy through DMA_READ / DMA_WRITE messages, one piece
 * (at most the client's max_data_xfer_size) in flight at a time.
 */
typedef struct VfuDmaXfer {
    bool busy;
    uint16_t msg_id;            /* of the piece in flight */
    bool is_write;
    uint64_t addr;              /* of the piece in flight */
    uint8_t *buf;               /* its data */
    uint32_t piece;             /* its length */
    uint64_t left;              /* bytes after this piece */
    int64_t deadline_ns;
    PCIDmaDone *done;
    void *opaque;
} VfuDmaXfer;

typedef struct VfuTxFd {
    size_t pos;                 /* index in tx_buf of its message's start */
    int fd;
} VfuTxFd;

typedef struct VfuRxFds {
    uint64_t pos;               /* stream offset of the read's last byte */
    int fds[VFU_RX_MAX_FDS];
    unsigned n;
    bool truncated;             /* more came than we take */
} VfuRxFds;

typedef struct VfuServer {
    PCIDevice *pdev;
    struct EventLoop *loop;     /* the device's */
    char *path;                 /* socket path we created (unlinked at end) */
    int listen_fd;              /* -1 when serving an inherited client */
    int client_fd;
    bool negotiated;
    bool single_client;         /* inherited connected fd: no listen */

    /* Negotiated with the client. */
    uint16_t minor;
    uint32_t client_max_fds;
    uint32_t client_max_xfer;
    bool write_multiple;
    char *client_caps_json;

    /*
     * Receive: one buffer read in large chunks, messages framed in place
     * (rx_head..rx_tail is what is not handled yet).  fds arrive with the
     * read that took the first byte of their message's socket buffer, and
     * a read stops after such a buffer: so they belong to the message that
     * holds the last byte of that read (VfuRxFds.pos, a stream offset).
     */
    uint8_t *rx_buf;            /* VFU_RX_BUF_SIZE */
    uint32_t rx_head, rx_tail;
    uint64_t rx_base;           /* stream offset of rx_buf[0] */
    uint32_t rx_discard;        /* oversized message body still to skip */
    VfuHdr rx_discard_hdr;      /* ... answered E2BIG once skipped */
    VfuRxFds rx_fdq[VFU_RX_FDQ];
    unsigned rx_nfdq;
    uint8_t *rx_align;          /* unaligned payloads are copied here */
    uint32_t rx_align_size;
    /*
     * Requests that wait: behind a DMA_UNMAP that waits for in-flight DMA,
     * or while the device resets (replies are never held).
     */
    GQueue deferred;            /* of VfuMsg * */
    size_t deferred_bytes;      /* their payloads */
    struct LoopBH *deferred_bh;
    uint16_t next_msg_id;
    /* Our own requests (DMA_READ/WRITE) awaiting replies. */
    VfuDmaXfer xfers[VFU_DMA_XFERS];
    struct LoopTimer *xfer_timer;
    /* Pieces we stopped waiting for: their replies are not errors. */
    uint16_t forgotten[VFU_DMA_XFERS * 2];
    unsigned forgotten_next;
    /* A client accepted while the device resets after the last one left. */
    int next_client_fd;
    bool client_resetting;      /* the last client's reset is running */

    /*
     * Transmit: replies and requests are appended here and written out
     * once per loop iteration (vfu_flush_hook), or when the socket takes
     * more.  An fd goes with the first byte of its message.
     */
    uint8_t *tx_buf;
    size_t tx_cap, tx_head, tx_tail;
    GArray *tx_fds;             /* of VfuTxFd, by position */
    uint8_t *scratch;           /* REGION_READ data */
    uint32_t scratch_size;

    /* DMA table, sorted by address. */
    GArray *dma;                /* of VfuDmaRegion */
    unsigned dma_last;          /* last hit, for the common case */
    uint64_t dma_mapped_bytes;
    unsigned dma_msg_regions;   /* regions without an fd */
    VfuMsg *pending_unmap;      /* waiting for in-flight DMA to drain */

    /*
     * Interrupts: eventfds per index and vector (-1 = none).  A raised
     * vector is marked pending and its eventfd written once per loop
     * iteration, however often the device raised it meanwhile.
     */
    int *irq_fds[VFU_NUM_IRQS];
    unsigned irq_nfds[VFU_NUM_IRQS];
    unsigned long *irq_raised[VFU_NUM_IRQS];
    bool irq_any_raised;
    int intx_unmask_fd;

    /*
     * Live migration (migration.c): the protocol's device state, the
     * stream being read (STOP_COPY) or written (RESUMING), and a state
     * change that waits for the device to stop.
     */
    uint32_t mig_state;         /* VFU_MIG_* */
    GBytes *mig_out;
    size_t mig_out_pos;
    GByteArray *mig_in;
    bool mig_set_due;           /* a SET waits (mig_set_req) */
    VfuHdr mig_set_req;
    VfuFeatureMigState mig_set_echo;
    bool dirty_logging;         /* DMA writes are logged (VfuDmaRegion) */

    /* Live upgrade: the client is not read while its state moves. */
    bool upgrade_paused;

    /* DEVICE_RESET is answered when the reset is done. */
    VfuHdr reset_req;
    bool reset_reply_due;

    /* Counters for the monitor. */
    uint64_t nr_msgs, nr_errors, nr_clients;
    uint64_t nr_irqs;           /* eventfd signals */
} VfuServer;

VfuServer *vfu_server_of(PCIDevice *pdev);

/* The name traces give @s: its device's. */
static inline const char *vfu_id(VfuServer *s)
{
    return device_id(&s->pdev->dev);
}

/* socket.c */
bool vfu_socket_listen(VfuServer *s, GError **errp);
/*
 * Live upgrade, the new process: device @id's listening socket that had
 * no path (fd=, socket activation) is @fd; -1: it had none, its one
 * client came as a connected fd= (vfu_socket_listen takes this first).
 */
void vfu_listen_adopt(const char *id, int fd);
void vfu_socket_close(VfuServer *s);
void vfu_client_attach(VfuServer *s, int fd);
/* Drop the client at once (device teardown: the device is reset). */
void vfu_client_close(VfuServer *s);
/*
 * Queue a message (the pieces in @iov, one after the other) for the
 * client; @fd (or -1) goes with it.  Written out before the loop next
 * sleeps.  0, or -ENOTCONN without a client.
 */
int vfu_sendv(VfuServer *s, const struct iovec *iov, unsigned n, int fd);
int vfu_send(VfuServer *s, const void *data, size_t len, int fd);
int vfu_send_reply(VfuServer *s, const VfuHdr *req, const void *payload,
                   size_t len, int fd);
int vfu_send_error(VfuServer *s, const VfuHdr *req, int err);
/* Read and handle what is available; false when the client went away. */
bool vfu_client_read(VfuServer *s);
/* A heap copy of @m that owns its fds (m keeps none). */
VfuMsg *vfu_msg_copy(VfuMsg *m);
void vfu_msg_free(VfuMsg *m);
/* Write out what vfu_send queued and the interrupts raised (each loop
 * iteration does; so does the end of a read). */
void vfu_flush(VfuServer *s);
void vfu_deferred_init(VfuServer *s);
void vfu_deferred_cleanup(VfuServer *s);
uint16_t vfu_server_msg_id(VfuServer *s);
/*
 * Dispatch what waited and read again: after a DMA_UNMAP that waited for
 * in-flight DMA, and after a reset.
 */
void vfu_resume_reading(VfuServer *s);
/* May requests be handled now (no unmap waits, the device is not
 * resetting)? */
bool vfu_may_dispatch(VfuServer *s);

/*
 * Message handlers validate before they act and return 0 or a positive
 * errno for the dispatcher to reply with, or VFU_REPLIED when the reply
 * was sent already (or comes later).
 */
#define VFU_REPLIED (-1)

/* protocol.c */
void vfu_handle_msg(VfuServer *s, VfuMsg *m);
/* Trace why @m is refused; returns @err (a handler's result). */
int vfu_msg_fail(VfuServer *s, VfuMsg *m, int err, const char *why);

/* negotiate.c */
int vfu_handle_version(VfuServer *s, VfuMsg *m);

/* irq.c */
int vfu_handle_irq_info(VfuServer *s, VfuMsg *m);
int vfu_handle_set_irqs(VfuServer *s, VfuMsg *m);
void vfu_irq_release(VfuServer *s);
/* Live upgrade: vectors 0..@n-1 of @index wired to @fds (taken), and the
 * INTx unmask eventfd. */
void vfu_irq_adopt(VfuServer *s, unsigned index, const int *fds,
                   unsigned n);
void vfu_irq_adopt_unmask(VfuServer *s, int fd);
void vfu_irq_signal(void *opaque, unsigned index, unsigned vector);
void vfu_irq_flush(VfuServer *s);

/* server.c: vfu_server_of above */

/* dma.c */
int vfu_dma_region_map(VfuServer *s, const VfuDmaMap *m, int fd);
int vfu_dma_region_unmap(VfuServer *s, const VfuDmaUnmap *u);
void vfu_dma_unmap_all(VfuServer *s);
bool vfu_dma_unmap_needs_drain(VfuServer *s, const VfuDmaUnmap *u);
void *vfu_dma_translate(void *opaque, uint64_t addr, uint64_t len,
                        bool is_write, uint64_t *plen);
int vfu_dma_rw_start(void *opaque, uint64_t addr, void *buf, uint64_t len,
                     bool is_write, PCIDmaDone *done, void *cb_opaque);
void vfu_dma_rw_cancel(void *opaque, void *cb_opaque);
bool vfu_dma_has_msg_regions(void *opaque);
/* A reply to one of our DMA_READ/WRITE; false when none awaits it. */
bool vfu_dma_reply(VfuServer *s, VfuMsg *m);
/* Fail every copy in flight with @err (client gone). */
void vfu_dma_xfers_fail(VfuServer *s, int err);
void vfu_dma_init(VfuServer *s);
void vfu_dma_cleanup(VfuServer *s);

/* Live upgrade (socket.c): stop / go on reading the client. */
void vfu_client_pause(VfuServer *s, bool pause);
/*
 * Take over a connected client from another process (paused): what it
 * sent that was not handled yet (@rx) is handled when the pause ends,
 * what was not sent (@tx) goes out first.
 */
void vfu_client_adopt(VfuServer *s, int fd, const void *rx, size_t rx_len,
                      const void *tx, size_t tx_len);

/* Dirty logging (dma.c). */
void vfu_dirty_start(VfuServer *s);
void vfu_dirty_stop(VfuServer *s);
/*
 * The pages of [iova, iova + len) written since the last report, at
 * @page_size, into @bitmap (zeroed by the caller); they are forgotten
 * unless requests in flight may still write them.  0, or EINVAL / ENOENT
 * when the range is not inside one region mapped with an fd.
 */
int vfu_dirty_report(VfuServer *s, uint64_t iova, uint64_t len,
                     uint64_t page_size, uint64_t *bitmap);

/* migration.c */
int vfu_handle_device_feature(VfuServer *s, VfuMsg *m);
int vfu_handle_mig_data_read(VfuServer *s, VfuMsg *m);
int vfu_handle_mig_data_write(VfuServer *s, VfuMsg *m);
/* The function was reset or the client left: back to RUNNING, no log. */
void vfu_mig_reset(VfuServer *s);
/* Does the device move (VERSION's "migration" capability)? */
bool vfu_mig_supported(VfuServer *s);

/* upgrade.c: the DeviceTransportHooks of a live upgrade */
void vfu_upgrade_pause(Device *dev, bool pause);
bool vfu_upgrade_save(Device *dev, struct StateWriter *w, GArray *fds,
                      GError **errp);
bool vfu_upgrade_load(Device *dev, struct StateReader *r, int *fds,
                      unsigned nfds, GError **errp);
bool vfu_upgrade_prepare(const char *id, struct StateReader *r, int *fds,
                         unsigned nfds, GError **errp);

/* Activation fds handed to devices without socket= / fd=. */
int vfu_activation_take(const char *id);

#endif
