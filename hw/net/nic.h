/*
 * What the NIC front ends (e1000, virtio-net) share: delivering a frame
 * from the net layer inside the device's worker.
 *
 * The net layer calls a NIC's receive() from its own callbacks; receiving
 * reads descriptors and writes guest memory, which only work items may do
 * (hw/core/device.h).  nic_rx_deliver() runs the NIC's frame function in
 * the worker now.  When some guest memory is reached by messages the work
 * may park, outliving the caller's buffer, so the frame is copied into the
 * NIC's stash first; a frame that parked counts as taken, and if it then
 * finds no room it stays in the stash and nic_rx_flush() delivers it
 * first, ahead of the net layer's queue, so order is kept.
 */
#ifndef HW_NET_NIC_H
#define HW_NET_NIC_H

#include "hw/pci/pci.h"
#include "net/net.h"
#include "hw/core/stats.h"

/* The NIC's receive, run in its worker: as NetClientOps.receive. */
typedef ssize_t NicRxFrameFunc(void *opaque, const struct iovec *iov,
                               int iovcnt);

typedef struct NicRx {
    PCIDevice *pdev;
    NetClient *nc;
    NicRxFrameFunc *frame;
    void *opaque;
    DeviceBH *flush_bh;         /* nic_rx_flush() as work */

    /* The call in progress (the worker may park inside it). */
    const struct iovec *iov;
    int iovcnt;
    ssize_t ret;
    bool caller_waits;          /* nic_rx_deliver() has not returned */

    /* A frame that parked and then found no room. */
    uint8_t *stash;             /* NET_MAX_FRAME + header bytes */
    struct iovec stash_iov;
    bool stash_pending;
} NicRx;

void nic_rx_init(NicRx *rx, PCIDevice *pdev, NicRxFrameFunc *frame,
                 void *opaque);
void nic_rx_cleanup(NicRx *rx);
/* The NIC's NetClientOps.receive. */
ssize_t nic_rx_deliver(NicRx *rx, const struct iovec *iov, int iovcnt);
/*
 * The guest gave receive buffers (or the device may receive again): the
 * stashed frame, then the net layer's queue.  Work: schedules itself when
 * called from outside the worker.
 */
void nic_rx_flush(NicRx *rx);
/* A reset: the stashed frame is dropped. */
void nic_rx_reset(NicRx *rx);

/* Provider "net", target "device": the NIC's frames and bytes. */
extern const StatsSchema nic_stats_device;
void nic_report_stats(NetClient *nc, StatsCollector *c);

#endif
