/*
 * Attaching a vfio-user server to every PCI device (hw/core's transport
 * hooks), the one teardown, and what the monitor asks of the servers
 * (query-vfio-user, query-stats).
 */
#include "hw/vfio-user/vfio-user-int.h"
#include "hw/core/stats.h"
#include "util/loop.h"

static GList *servers;

static void vfu_dma_idle(void *opaque)
{
    VfuServer *s = opaque;
    VfuMsg *m = s->pending_unmap;

    if (!m) {
        return;
    }
    s->pending_unmap = NULL;
    vfu_handle_msg(s, m);
    vfu_msg_free(m);
    vfu_resume_reading(s);
}


static const PCITransportOps vfu_pci_ops = {
    .dma_map = vfu_dma_translate,
    .dma_rw_start = vfu_dma_rw_start,
    .dma_rw_cancel = vfu_dma_rw_cancel,
    .dma_has_msg_regions = vfu_dma_has_msg_regions,
    .irq_signal = vfu_irq_signal,
    .dma_idle = vfu_dma_idle,
};

VfuServer *vfu_server_of(PCIDevice *pdev)
{
    return pdev->tops == &vfu_pci_ops ? pdev->transport : NULL;
}

/* The one teardown, for a failed attach and for the device's end. */
static void vfu_server_free(VfuServer *s)
{
    vfu_client_close(s);
    vfu_socket_close(s);
    pci_transport_detach(s->pdev);
    servers = g_list_remove(servers, s);
    vfu_deferred_cleanup(s);
    vfu_dma_cleanup(s);
    g_free(s);
}

static bool vfu_attach(Device *dev, GError **errp)
{
    VfuServer *s = g_new0(VfuServer, 1);

    s->pdev = PCI_DEVICE(dev);
    s->loop = dev->loop;
    s->listen_fd = -1;
    s->client_fd = -1;
    s->intx_unmask_fd = -1;
    s->client_max_fds = 1;
    s->client_max_xfer = VFU_SERVER_MAX_DATA_XFER;
    s->mig_state = VFU_MIG_RUNNING;
    vfu_dma_init(s);
    vfu_deferred_init(s);
    /* Installed for good: DMA and IRQs find no mapping/fd without a client. */
    pci_transport_attach(s->pdev, &vfu_pci_ops, s);
    servers = g_list_append(servers, s);
    if (!vfu_socket_listen(s, errp)) {
        vfu_server_free(s);
        return false;
    }
    return true;
}

/* The device is reset (and about to be freed): let everything go. */
static void vfu_detach(Device *dev)
{
    VfuServer *s = vfu_server_of(PCI_DEVICE(dev));

    if (s) {
        vfu_server_free(s);
    }
}

/* A reset finished: what the client sent meanwhile is handled now. */
static void vfu_reset_done(Device *dev)
{
    VfuServer *s = vfu_server_of(PCI_DEVICE(dev));

    if (s) {
        vfu_resume_reading(s);
    }
}

static const StatsSchema vfu_stats_device = {
    .provider = "vfio-user",
    .target = STATS_TARGET_DEVICE,
    .stats = (const StatsDesc[]) {
        { "messages", STATS_CUMULATIVE },       /* handled */
        { "errors", STATS_CUMULATIVE },         /* error replies */
        { "clients", STATS_CUMULATIVE },        /* accepted */
        { "interrupts", STATS_CUMULATIVE },     /* eventfd signals */
        { "dma-regions", STATS_INSTANT },
        { "dma-bytes", STATS_INSTANT, STATS_UNIT_BYTES },
        { NULL }
    },
};

static const StatsSchema *const vfu_stats[] = { &vfu_stats_device, NULL };

static void vfu_get_stats(Device *dev, StatsCollector *c)
{
    VfuServer *s = vfu_server_of(PCI_DEVICE(dev));

    if (!s || !stats_begin(c, &vfu_stats_device, -1)) {
        return;
    }
    stats_put(c, "messages", s->nr_msgs);
    stats_put(c, "errors", s->nr_errors);
    stats_put(c, "clients", s->nr_clients);
    stats_put(c, "interrupts", s->nr_irqs);
    stats_put(c, "dma-regions", s->dma ? s->dma->len : 0);
    stats_put(c, "dma-bytes", s->dma_mapped_bytes);
}

static const DeviceTransportHooks vfu_hooks = {
    .attach = vfu_attach,
    .reset_done = vfu_reset_done,
    .detach = vfu_detach,
    .stats = vfu_stats,
    .get_stats = vfu_get_stats,
    .upgrade_pause = vfu_upgrade_pause,
    .upgrade_save = vfu_upgrade_save,
    .upgrade_load = vfu_upgrade_load,
    .upgrade_prepare = vfu_upgrade_prepare,
};

void vfu_transport_init(void)
{
    device_set_transport_hooks(&vfu_hooks);
}

typedef struct VfuQuery {
    VfuServer *s;
    VfuServerInfo info;
} VfuQuery;

/* On the server's loop: a consistent snapshot. */
static void vfu_query_on_loop(void *opaque)
{
    VfuQuery *q = opaque;
    VfuServer *s = q->s;
    VfuServerInfo *i = &q->info;

    i->id = s->pdev->dev.id;
    i->driver = s->pdev->dev.cls->name;
    i->socket = g_strdup(s->path);
    i->listening = s->listen_fd >= 0;
    i->connected = s->client_fd >= 0;
    i->negotiated = i->connected && s->negotiated;
    i->minor = s->minor;
    i->caps_json = i->negotiated ? g_strdup(s->client_caps_json) : NULL;
    i->dma_regions = s->dma ? s->dma->len : 0;
    i->dma_bytes = s->dma_mapped_bytes;
    for (unsigned k = 0; k < VFU_NUM_IRQS; k++) {
        for (unsigned v = 0; s->irq_fds[k] && v < s->irq_nfds[k]; v++) {
            i->irqs[k] += s->irq_fds[k][v] >= 0;
        }
    }
    i->messages = s->nr_msgs;
    i->errors = s->nr_errors;
    i->clients = s->nr_clients;
}

void vfu_query_servers(void (*fn)(const VfuServerInfo *info, void *opaque),
                       void *opaque)
{
    g_autoptr(GList) copy = g_list_copy(servers);

    for (GList *l = copy; l; l = l->next) {
        VfuQuery q = { .s = l->data };

        loop_run_sync(q.s->loop, vfu_query_on_loop, &q);
        fn(&q.info, opaque);
        g_free(q.info.socket);
        g_free(q.info.caps_json);
    }
}
