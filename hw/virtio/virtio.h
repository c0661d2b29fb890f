/*
 * The virtio core: device status, feature negotiation, virtqueues (split
 * and packed rings, indirect descriptors, event index) and notifications.
 * Only this layer reads and writes rings; devices see requests as
 * VirtQueueElements whose iovecs point straight into guest memory.  The
 * transport is the modern virtio-pci one (virtio-pci.c): a VirtIODevice
 * is a PCIDevice.
 *
 * Writing a device (see virtio-blk.c):
 *
 *     typedef struct MyReq {
 *         VirtQueueElement elem;      // first: requests come from a pool
 *         ...                         // the device's per-request state
 *     } MyReq;
 *
 *     typedef struct MyDev {
 *         VirtIODevice vdev;          // first: it is a PCIDevice too
 *         ...
 *     } MyDev;
 *
 *     realize:
 *         virtio_init(&d->vdev, &my_ops, MY_FEATURES, MY_CONFIG_SIZE);
 *         for each queue:
 *             virtio_add_queue(&d->vdev, 256, sizeof(MyReq), my_handler);
 *         if (!virtio_pci_realize(&d->vdev, errp)) ...
 *     unrealize:
 *         virtio_pci_unrealize(&d->vdev); virtio_cleanup(&d->vdev);
 *     DeviceClass: .quiesce = virtio_device_quiesce,
 *                  .reset = virtio_device_reset,
 *                  .run_state_changed = virtio_device_run_state_changed,
 *                  .save_state = virtio_device_save_state,
 *                  .load_state = virtio_device_load_state,
 *                  props include VIRTIO_COMMON_PROPS(MyDev, vdev)
 *
 *     static void my_handler(VirtIODevice *vdev, VirtQueue *vq)
 *     {
 *         MyReq *req;
 *
 *         do {
 *             virtio_queue_set_notification(vq, false);
 *             while ((req = virtqueue_pop(vq))) {
 *                 ... req->elem.out_sg / in_sg ...
 *                 virtqueue_push(vq, &req->elem, bytes_written);
 *                 virtio_notify(vdev, vq);   // or virtio_notify_later()
 *             }
 *             virtio_queue_set_notification(vq, true);
 *         } while (!virtio_queue_empty(vq));
 *     }
 *
 * Handlers run in the device's worker (hw/core/device.h), scheduled by the
 * notify (doorbell) write, and only while the device is DRIVER_OK, not
 * paused, not broken (NEEDS_RESET) and the queue is enabled.  A request
 * may complete later, from a backend's callback, which is not work: it
 * hands the element over with virtqueue_complete().  virtqueue_push(),
 * virtqueue_fill() and virtqueue_complete() take the element back into
 * the pool: the device must not touch it afterwards.
 *
 * Guest errors in rings (descriptor loops, chains longer than the queue,
 * nested indirect tables, bad lengths or addresses, ...) emit a
 * virtio_err_* trace event and put the device into NEEDS_RESET with a
 * configuration interrupt; popping then returns NULL until the driver
 * resets the device.  A device reports its own protocol errors the same
 * way with virtio_error().
 *
 * Guest memory: elements are mapped zero copy (pci_dma_map).  When a
 * buffer is not directly mapped (the client gave no fd, so DMA goes
 * through messages), the element is bounced: its device-readable bytes are
 * copied into a buffer at pop time and the device-writable ones back to
 * the guest when it is pushed; devices do not notice.  Rings work either
 * way.  Every popped element holds a pci_dma_hold() until it is pushed or
 * detached, so a DMA_UNMAP waits for it.
 */
#ifndef HW_VIRTIO_VIRTIO_H
#define HW_VIRTIO_VIRTIO_H

#include "util/osdep.h"
#include "util/loop.h"
#include "util/iov.h"
#include "hw/pci/pci.h"
#include "hw/virtio/virtio-spec.h"
#include "hw/core/stats.h"
#include "util/savestate.h"

/* Queues per device (the notify area holds 4 bytes per queue). */
#define VIRTIO_QUEUE_MAX        1024
/* Largest queue size a device may offer. */
#define VIRTQUEUE_MAX_SIZE      1024
/* Largest element bounced when its memory is not directly mapped. */
#define VIRTIO_BOUNCE_MAX       (16u << 20)
/* iovecs kept inside each element before it needs a heap array. */
#define VIRTQUEUE_INLINE_SG     4

typedef struct VirtIODevice VirtIODevice;
typedef struct VirtQueue VirtQueue;

/*
 * One buffer (descriptor chain) popped from a virtqueue.  out_sg holds the
 * device-readable part, in_sg the device-writable part, in the driver's
 * order.  A device may adjust the iovec entries (trim a header, say); the
 * core does not look at them again.
 */
typedef struct VirtQueueElement {
    unsigned index;             /* split: head descriptor; packed: buffer id */
    unsigned ndescs;            /* ring slots used (packed) */
    unsigned out_num, in_num;
    struct iovec *out_sg, *in_sg;
    uint64_t out_len, in_len;   /* byte totals the driver offered */

    /* Private to virtio.c. */
    struct iovec *sg;           /* out entries then in entries */
    unsigned sg_cap;
    struct iovec sg_inline[VIRTQUEUE_INLINE_SG];
    uint8_t *bounce;            /* non-NULL: bounced (see above) */
    struct VirtQueueSeg *bounce_in;     /* guest ranges to copy back */
    unsigned bounce_in_num, bounce_in_cap;
    bool in_use;
} VirtQueueElement;

/* Processes a queue after the driver notified it. */
typedef void VirtIOHandleOutput(VirtIODevice *vdev, VirtQueue *vq);

/* What a device type provides to the core. */
typedef struct VirtioDeviceOps {
    uint16_t device_id;         /* VIRTIO_ID_* */
    uint32_t pci_class;         /* PCI class code (base, sub, prog-if) */
    /*
     * Optional: refuse a feature set the driver accepted (a subset of the
     * offered ones, with VERSION_1); FEATURES_OK then does not stick.
     */
    bool (*validate_features)(VirtIODevice *vdev, uint64_t features);
    /* Optional: FEATURES_OK was accepted with @features. */
    void (*set_features)(VirtIODevice *vdev, uint64_t features);
    /* Optional: refresh vdev->config before the driver reads it. */
    void (*get_config)(VirtIODevice *vdev, uint8_t *config);
    /* Optional: the driver wrote vdev->config (take the writable fields). */
    void (*set_config)(VirtIODevice *vdev, const uint8_t *config);
    /* Optional: the status changed (DRIVER_OK set, say). */
    void (*set_status)(VirtIODevice *vdev, uint8_t status);
    /*
     * Optional, reset step 3 (hw/core/device.h): fail what waits without
     * the backend holding it (throttled or held block requests).
     */
    void (*quiesce)(VirtIODevice *vdev, DeviceResetKind kind);
    /*
     * Reset the device's own state: nothing is in flight any more and
     * every element was pushed or detached.
     */
    void (*reset)(VirtIODevice *vdev);
    /*
     * Optional, live migration and upgrade (see "Device state" below):
     * write the device type's own section; read it back, checked against
     * this device's properties and @features (the driver's, from the
     * stream: vdev->guest_features is not loaded yet), and change nothing
     * unless all of it is valid.
     */
    void (*save_state)(VirtIODevice *vdev, StateWriter *w);
    bool (*load_state)(VirtIODevice *vdev, StateReader *r, uint64_t features,
                       GError **errp);
} VirtioDeviceOps;

/* Properties every virtio device has (QEMU's names and defaults). */
typedef struct VirtioDeviceConf {
    bool indirect_desc;         /* offer VIRTIO_F_INDIRECT_DESC */
    bool event_idx;             /* offer VIRTIO_F_EVENT_IDX */
    bool packed;                /* offer VIRTIO_F_RING_PACKED */
    bool iommu_platform;        /* offer VIRTIO_F_ACCESS_PLATFORM */
} VirtioDeviceConf;

#define VIRTIO_COMMON_PROPS(st, vdev_field)                                 \
    PROP_DEF_BOOL("indirect_desc", st, vdev_field.conf.indirect_desc,       \
                  "offer indirect descriptors", .defval = "on"),            \
    PROP_DEF_BOOL("event_idx", st, vdev_field.conf.event_idx,               \
                  "offer event index notification suppression",            \
                  .defval = "on"),                                          \
    PROP_DEF_BOOL("packed", st, vdev_field.conf.packed,                     \
                  "offer packed virtqueues", .defval = "off"),              \
    PROP_DEF_BOOL("iommu_platform", st, vdev_field.conf.iommu_platform,     \
                  "offer VIRTIO_F_ACCESS_PLATFORM", .defval = "off")

struct VirtIODevice {
    PCIDevice pci;              /* first: a virtio device is a PCI function */
    VirtioDeviceConf conf;      /* properties */

    /* Set up by virtio_init() / virtio_add_queue(). */
    const VirtioDeviceOps *ops;
    uint64_t host_features;     /* offered */
    uint8_t *config;            /* device-specific configuration */
    uint32_t config_len;
    VirtQueue **vq;
    unsigned nvqs;
    uint16_t nvectors;          /* MSI-X table size */

    /* Driver-visible state; virtio_reset() clears it. */
    uint8_t status;
    uint8_t isr;
    uint8_t generation;         /* config_generation */
    uint16_t config_vector;
    uint64_t guest_features;    /* as written by the driver */
    uint32_t dfselect, gfselect;
    uint16_t queue_select;

    /* Internal state. */
    bool broken;                /* NEEDS_RESET: rings are left alone */
    DeviceBH *complete_bh;      /* completions and batched notifications */
    struct LoopPoller *poller;  /* on an iothread that busy-polls */
    bool poll_started;          /* the loop busy-polls right now */
    uint8_t cfg_cap;            /* PCI config access capability offset */
    /*
     * Once running, publish each queue's notification suppression again
     * (a state was loaded, or polling changed while STOPPED, when no DMA
     * may happen), and send the configuration interrupt owed.
     */
    bool resync;
    bool config_irq_pending;    /* a configuration interrupt is owed */
};

static inline VirtIODevice *VIRTIO_DEVICE(Device *dev)
{
    return (VirtIODevice *)dev;
}

static inline const char *virtio_id(VirtIODevice *vdev)
{
    return device_id(&vdev->pci.dev);
}

static inline bool virtio_has_feature(VirtIODevice *vdev, unsigned bit)
{
    return vdev->guest_features & VIRTIO_BIT(bit);
}

/* Offered (whether or not the driver took it). */
static inline bool virtio_host_has_feature(VirtIODevice *vdev, unsigned bit)
{
    return vdev->host_features & VIRTIO_BIT(bit);
}

/* ---- set-up ---- */

/*
 * Start a device: @device_features are the device-type feature bits to
 * offer (the ring features come from vdev->conf, VERSION_1 always).
 */
void virtio_init(VirtIODevice *vdev, const VirtioDeviceOps *ops,
                 uint64_t device_features, uint32_t config_len);
/*
 * Add the next queue, offering @max_size entries (a power of two up to
 * VIRTQUEUE_MAX_SIZE).  Elements come from a pool of @max_size objects of
 * @elem_size bytes (>= sizeof(VirtQueueElement)), allocated here.
 */
VirtQueue *virtio_add_queue(VirtIODevice *vdev, unsigned max_size,
                            size_t elem_size, VirtIOHandleOutput *handle);
/* Free the queues and config (after virtio_pci_unrealize). */
void virtio_cleanup(VirtIODevice *vdev);

/* ---- lifecycle (DeviceClass hooks) ---- */

/*
 * DeviceClass.quiesce / .reset / .run_state_changed.  The driver writing 0
 * to device_status is a DEVICE_RESET_DEVICE reset (hw/core runs it once
 * nothing is in flight; the client's messages wait until then).
 */
void virtio_device_quiesce(Device *dev, DeviceResetKind kind);
void virtio_device_reset(Device *dev, DeviceResetKind kind);
void virtio_device_run_state_changed(Device *dev, bool running);

/*
 * Device state (DeviceClass.save_state / .load_state), for a STOPPED
 * device: nothing is in flight, so every element popped was pushed.
 * Sections:
 *
 *   "virtio"        status, features offered and accepted, generation,
 *                   queue count, a configuration interrupt owed
 *   "virtio-pci"    the transport's registers (virtio-pci.c)
 *   "virtio/vq/N"   queue N: size, areas, enabled, ring indexes and wrap
 *                   counters, event index and notification state
 *   the device's    VirtioDeviceOps.load_state / save_state
 *
 * Loading checks everything first (a stream of a device configured
 * differently, or values out of range, are refused with the reason) and
 * changes nothing unless all sections are valid.  Once the device runs
 * again, the queues' notification suppression is published again (the
 * source may have been busy-polling) and owed interrupts are sent.
 */
void virtio_device_save_state(Device *dev, StateWriter *w);
bool virtio_device_load_state(Device *dev, StateReader *r, GError **errp);
/*
 * For devices' load_state: read u32 @name, which must equal @here, the
 * value of this device's property @what; otherwise the section fails
 * naming both values (a device configured differently).
 */
void virtio_state_expect(StateSection *s, const char *name, const char *what,
                         uint32_t here);
/* The device configuration changed while STOPPED: notify once running. */
void virtio_notify_config_on_start(VirtIODevice *vdev);

/*
 * Statistics: provider "virtio", target "queue" (each virtqueue by
 * index).  virtio_device_get_stats is a DeviceClass.get_stats.
 */
extern const StatsSchema virtio_stats_queue;
void virtio_report_stats(VirtIODevice *vdev, StatsCollector *c);
void virtio_device_get_stats(Device *dev, StatsCollector *c);

/* ---- errors ---- */

/*
 * The driver broke the protocol: set NEEDS_RESET, send a configuration
 * interrupt, stop touching the rings until reset.  Emits
 * virtio_err_device with the message.
 */
void virtio_error(VirtIODevice *vdev, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);

/* ---- queues ---- */

VirtQueue *virtio_get_queue(VirtIODevice *vdev, unsigned n);
unsigned virtio_queue_index(VirtQueue *vq);
VirtIODevice *virtio_queue_device(VirtQueue *vq);
/* The size the driver configured (0 when the queue does not exist). */
unsigned virtio_queue_get_num(VirtQueue *vq);
/* Enabled, DRIVER_OK, not broken, not paused, not resetting. */
bool virtio_queue_ready(VirtQueue *vq);
/* True when no buffer is available (or the queue is not ready). */
bool virtio_queue_empty(VirtQueue *vq);

/*
 * Ask the driver for (@enable) or spare us (!@enable) available buffer
 * notifications.  With event index, enabling publishes how far we got;
 * re-check virtio_queue_empty() afterwards (see the handler above).
 */
void virtio_queue_set_notification(VirtQueue *vq, bool enable);

/*
 * Take the next available buffer: an element of the pool (the device's
 * request struct, element first; its fields after the element keep what
 * the last user left), or NULL when there is none, the queue is not
 * ready, or the ring was malformed (then the device is broken).
 */
void *virtqueue_pop(VirtQueue *vq);
/*
 * Pop elements until their device-writable bytes add up to @size (at most
 * @max elements, into @elems).  Returns how many were popped, or 0 when
 * the queue ran dry first (whatever was popped is given back).  For
 * merging receive buffers (virtio-net's num_buffers).
 */
unsigned virtqueue_pop_bytes(VirtQueue *vq, uint64_t size,
                             VirtQueueElement **elems, unsigned max);
/* Give back the most recently popped element (last in, first out). */
void virtqueue_unpop(VirtQueue *vq, VirtQueueElement *elem);
/* Drop an element without using it (the driver never sees it again). */
void virtqueue_detach_element(VirtQueue *vq, VirtQueueElement *elem);

/*
 * Used ring.  virtqueue_fill() records @elem as used with @len bytes
 * written, at position @idx of a batch (0, 1, ...); virtqueue_flush()
 * publishes the first @count filled ones at once.  virtqueue_push() is
 * fill(0) + flush(1).  Lengths beyond what the element offered are
 * clamped.  These do not interrupt the driver: call virtio_notify().
 */
void virtqueue_fill(VirtQueue *vq, VirtQueueElement *elem, uint32_t len,
                    unsigned idx);
void virtqueue_flush(VirtQueue *vq, unsigned count);
void virtqueue_push(VirtQueue *vq, VirtQueueElement *elem, uint32_t len);
/* Fill and flush @n elements as one batch (all or nothing to the driver). */
void virtqueue_push_batch(VirtQueue *vq, VirtQueueElement **elems,
                          const uint32_t *lens, unsigned n);
/*
 * Push @elem with @len bytes written, from outside the worker (a
 * backend's completion): the device's work writes the used ring and
 * notifies, one batch per queue.  While the device resets the element is
 * dropped instead.
 */
void virtqueue_complete(VirtQueue *vq, VirtQueueElement *elem, uint32_t len);

/* ---- notifications ---- */

/*
 * Used buffer notification, when the driver wants one (used_event /
 * NO_INTERRUPT / packed driver event suppression): the queue's MSI-X
 * vector, or ISR bit 0 and INTx.
 */
void virtio_notify(VirtIODevice *vdev, VirtQueue *vq);
/* The same, batched: runs once from a bottom half for all such queues. */
void virtio_notify_later(VirtIODevice *vdev, VirtQueue *vq);
/*
 * The device configuration changed: bump config_generation, set ISR bit 1
 * and raise the config vector (or INTx).
 */
void virtio_notify_config(VirtIODevice *vdev);

/* ---- for the transport (virtio-pci.c) ---- */

/*
 * The driver wrote queue @n's notify address (or a device wants the queue
 * looked at again): schedule its handler.
 */
void virtio_queue_notify(VirtIODevice *vdev, unsigned n);
void virtio_set_status(VirtIODevice *vdev, uint8_t val);
uint8_t virtio_get_status(VirtIODevice *vdev);
void virtio_set_driver_features(VirtIODevice *vdev, unsigned sel,
                                uint32_t val);
uint32_t virtio_config_read(VirtIODevice *vdev, uint32_t addr,
                            unsigned size);
void virtio_config_write(VirtIODevice *vdev, uint32_t addr, uint32_t val,
                         unsigned size);
/* Per-queue registers of the common configuration. */
typedef enum VirtQueueArea {
    VIRTQUEUE_AREA_DESC,        /* descriptor table / ring */
    VIRTQUEUE_AREA_DRIVER,      /* split: avail ring; packed: driver event */
    VIRTQUEUE_AREA_DEVICE,      /* split: used ring; packed: device event */
    VIRTQUEUE_AREA__MAX
} VirtQueueArea;

unsigned virtio_queue_get_max_num(VirtQueue *vq);
/*
 * queue_size: a bad size (0, too big, not a power of two for split) is a
 * protocol error; writes to an enabled queue are ignored.
 */
void virtio_queue_set_num(VirtQueue *vq, unsigned num);
uint16_t virtio_queue_get_vector(VirtQueue *vq);
void virtio_queue_set_vector(VirtQueue *vq, uint16_t vector);
uint64_t virtio_queue_get_area(VirtQueue *vq, VirtQueueArea area);
void virtio_queue_set_area(VirtQueue *vq, VirtQueueArea area, uint64_t addr);
bool virtio_queue_enabled(VirtQueue *vq);
/* queue_enable = 1: checks the areas' alignment, then starts the queue. */
void virtio_queue_enable(VirtQueue *vq);

/* ---- iovec helpers ---- */

/* Copy out of / into an iovec from byte @off; return bytes copied. */
/*
 * Drop @bytes from the front (advancing *iov, *n) or the back of an iovec
 * array, in place.  Return the bytes dropped (less when it is shorter).
 */
size_t virtio_iov_discard_front(struct iovec **iov, unsigned *n,
                                size_t bytes);
size_t virtio_iov_discard_back(struct iovec *iov, unsigned *n,
                               size_t bytes);

#endif
