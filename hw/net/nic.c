/*
 * NIC front ends: frames from the net layer delivered in the worker.
 */
#include "hw/net/nic.h"
#include "util/iov.h"

static void nic_rx_work(void *opaque)
{
    NicRx *rx = opaque;

    rx->ret = rx->frame(rx->opaque, rx->iov, rx->iovcnt);
    if (!rx->caller_waits && rx->ret == -EAGAIN) {
        /* It parked and the caller counted it as taken: keep it. */
        rx->stash_pending = true;
    }
}

static void nic_rx_flush_work(void *opaque)
{
    NicRx *rx = opaque;

    if (!device_fetch_allowed(&rx->pdev->dev)) {
        return;                 /* resumed by the device's run state hook */
    }
    if (rx->stash_pending) {
        if (rx->frame(rx->opaque, &rx->stash_iov, 1) == -EAGAIN) {
            return;
        }
        rx->stash_pending = false;
    }
    if (rx->nc) {
        net_flush_queue(rx->nc);
    }
}

void nic_rx_init(NicRx *rx, PCIDevice *pdev, NicRxFrameFunc *frame,
                 void *opaque)
{
    rx->pdev = pdev;
    rx->frame = frame;
    rx->opaque = opaque;
    rx->stash = g_malloc(NET_MAX_FRAME + NET_VNET_HDR_LEN);
    rx->flush_bh = device_bh_new(&pdev->dev, nic_rx_flush_work, rx);
}

void nic_rx_cleanup(NicRx *rx)
{
    device_bh_delete(g_steal_pointer(&rx->flush_bh));
    g_clear_pointer(&rx->stash, g_free);
}

void nic_rx_reset(NicRx *rx)
{
    rx->stash_pending = false;
    device_bh_cancel(rx->flush_bh);
}

ssize_t nic_rx_deliver(NicRx *rx, const struct iovec *iov, int iovcnt)
{
    Device *dev = &rx->pdev->dev;
    size_t size;

    if (device_in_worker(dev)) {
        /* Loopback, or a backend answering a frame we sent. */
        return rx->stash_pending ? -EAGAIN : rx->frame(rx->opaque, iov,
                                                       iovcnt);
    }
    if (rx->stash_pending || !device_fetch_allowed(dev)) {
        return -EAGAIN;
    }
    if (!device_worker_idle(dev)) {
        /* After the item that is parked (it may use the stash). */
        device_bh_schedule(rx->flush_bh);
        return -EAGAIN;
    }
    size = iov_size(iov, iovcnt);
    rx->iov = iov;
    rx->iovcnt = iovcnt;
    if (pci_dma_may_park(rx->pdev)) {
        if (size > NET_MAX_FRAME + NET_VNET_HDR_LEN) {
            return 0;           /* the net layer never sends one */
        }
        iov_to_buf(iov, iovcnt, 0, rx->stash, size);
        rx->stash_iov.iov_base = rx->stash;
        rx->stash_iov.iov_len = size;
        rx->iov = &rx->stash_iov;
        rx->iovcnt = 1;
    }
    rx->caller_waits = true;
    switch (device_run_now(dev, nic_rx_work, rx)) {
    case DEVICE_RUN_DONE:
        rx->caller_waits = false;
        return rx->ret;
    case DEVICE_RUN_PARKED:
        rx->caller_waits = false;
        return size;
    case DEVICE_RUN_BUSY:
    default:
        rx->caller_waits = false;
        /* After the item that is parked: the net layer queued it. */
        device_bh_schedule(rx->flush_bh);
        return -EAGAIN;
    }
}

void nic_rx_flush(NicRx *rx)
{
    if (device_in_worker(&rx->pdev->dev)) {
        nic_rx_flush_work(rx);
    } else {
        device_bh_schedule(rx->flush_bh);
    }
}

const StatsSchema nic_stats_device = {
    .provider = "net",
    .target = STATS_TARGET_DEVICE,
    .stats = (const StatsDesc[]) {
        /* As the guest sees them: rx toward the guest, tx from it. */
        { "rx-frames", STATS_CUMULATIVE },
        { "rx-bytes", STATS_CUMULATIVE, STATS_UNIT_BYTES },
        { "rx-dropped", STATS_CUMULATIVE },
        { "tx-frames", STATS_CUMULATIVE },
        { "tx-bytes", STATS_CUMULATIVE, STATS_UNIT_BYTES },
        { "tx-dropped", STATS_CUMULATIVE },
        { "tx-errors", STATS_CUMULATIVE },
        { NULL }
    },
};

void nic_report_stats(NetClient *nc, StatsCollector *c)
{
    if (!nc || !stats_begin(c, &nic_stats_device, -1)) {
        return;
    }
    stats_put(c, "rx-frames", nc->stats.rx_frames);
    stats_put(c, "rx-bytes", nc->stats.rx_bytes);
    stats_put(c, "rx-dropped", nc->stats.rx_dropped);
    stats_put(c, "tx-frames", nc->stats.tx_frames);
    stats_put(c, "tx-bytes", nc->stats.tx_bytes);
    stats_put(c, "tx-dropped", nc->stats.tx_dropped);
    stats_put(c, "tx-errors", nc->stats.tx_errors);
}
