/*
 * Live upgrade, the vfio-user part (hw/core/upgrade.h): a server's
 * connected client moves to a new process with everything the client set
 * up (negotiated capabilities, DMA maps, interrupt eventfds and wiring) and
 * what it sent that was not handled yet, so that it notices nothing.
 *
 * One section "vfio-user/ID" per device; file descriptors travel beside
 * the stream and fields hold their index (VFU_UPGRADE_NO_FD: none).
 */
#include "hw/vfio-user/vfio-user-int.h"
#include "hw/vfio-user/trace.h"
#include "util/bitops.h"
#include "util/error.h"
#include "util/savestate.h"

#define VFU_UPGRADE_VERSION 1
#define VFU_UPGRADE_NO_FD 0xffffffffu

/* A DMA map as handed over. */
typedef struct VfuUpgradeDma {
    uint64_t addr, size, fd_offset;
    uint32_t prot, fd;
} __attribute__((packed)) VfuUpgradeDma;

static uint32_t add_fd(GArray *fds, int fd)
{
    if (fd < 0) {
        return VFU_UPGRADE_NO_FD;
    }
    g_array_append_val(fds, fd);
    return fds->len - 1;
}

/* Why @s cannot be handed over now (NULL: it can). */
static const char *vfu_upgrade_blocker(VfuServer *s)
{
    if (s->mig_state != VFU_MIG_RUNNING || s->mig_set_due) {
        return "a live migration is in progress";
    }
    if (s->client_resetting || s->reset_reply_due || s->next_client_fd >= 0) {
        return "its client is being reset";
    }
    if (!g_queue_is_empty(&s->deferred) || s->pending_unmap) {
        return "requests of its client wait";
    }
    if (s->rx_nfdq || s->rx_discard || s->tx_fds->len) {
        return "file descriptors of its client are in transit";
    }
    for (unsigned i = 0; i < VFU_DMA_XFERS; i++) {
        if (s->xfers[i].busy) {
            return "a DMA through messages is in flight";
        }
    }
    return NULL;
}

void vfu_upgrade_pause(Device *dev, bool pause)
{
    VfuServer *s = vfu_server_of(PCI_DEVICE(dev));

    if (s) {
        vfu_client_pause(s, pause);
    }
}

static void save_dma(VfuServer *s, StateWriter *w, GArray *fds)
{
    g_autoptr(GByteArray) a = g_byte_array_new();

    for (unsigned i = 0; i < s->dma->len; i++) {
        VfuDmaRegion *r = &g_array_index(s->dma, VfuDmaRegion, i);
        VfuUpgradeDma d = {
            r->addr, r->size, r->fd_offset, r->prot, add_fd(fds, r->fd),
        };

        g_byte_array_append(a, (uint8_t *)&d, sizeof(d));
    }
    state_put_bytes(w, "dma", a->data, a->len);
}

static void save_irqs(VfuServer *s, StateWriter *w, GArray *fds)
{
    PCIDevice *pdev = s->pdev;

    for (unsigned i = 0; i < VFU_NUM_IRQS; i++) {
        g_autofree uint32_t *idx = g_new0(uint32_t, s->irq_nfds[i] + 1);
        char name[16];

        for (unsigned v = 0; v < s->irq_nfds[i]; v++) {
            idx[v] = add_fd(fds, s->irq_fds[i][v]);
        }
        snprintf(name, sizeof(name), "irq-fds-%u", i);
        state_put_bytes(w, name, idx, 4 * s->irq_nfds[i]);
    }
    state_put_u32(w, "intx-unmask-fd", add_fd(fds, s->intx_unmask_fd));
    state_put_bytes(w, "irq-masked", pdev->irq_masked,
                    BITS_TO_LONGS(PCI_MSIX_MAX_VECTORS) * sizeof(long));
    state_put_bool(w, "intx-masked", pdev->intx_masked);
}

/*
 * What the new process's realize must reuse: the memfds of the BAR
 * memory the client maps, and a listening socket without a path (fd=,
 * socket activation; a path's moves with every other, util/sockets.h).
 */
static void save_prepare(PCIDevice *pdev, VfuServer *s, StateWriter *w,
                         GArray *fds)
{
    g_autofree char *name = g_strdup_printf("vfio-user-bars/%s",
                                            pdev->dev.id);
    uint32_t idx[PCI_NUM_BARS];

    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        idx[i] = add_fd(fds, pdev->bars[i].mem ? pdev->bars[i].mem_fd : -1);
    }
    state_begin(w, name, VFU_UPGRADE_VERSION);
    state_put_bytes(w, "mem-fds", idx, sizeof(idx));
    state_put_u32(w, "listen-fd", add_fd(fds, s && !s->path ? s->listen_fd
                                                            : -1));
    state_put_bool(w, "single-client", s && s->single_client);
    state_end(w);
}

bool vfu_upgrade_save(Device *dev, StateWriter *w, GArray *fds,
                      GError **errp)
{
    PCIDevice *pdev = PCI_DEVICE(dev);
    VfuServer *s = vfu_server_of(pdev);
    g_autofree char *name = g_strdup_printf("vfio-user/%s", dev->id);
    const char *why = s ? vfu_upgrade_blocker(s) : NULL;
    g_autoptr(GBytes) st = NULL;

    if (why || !pci_state_supported(pdev)) {
        error_setg(errp, "device '%s' cannot be handed over now: %s",
                   dev->id, why ? why : "it does not save its state");
        return false;
    }
    save_prepare(pdev, s, w, fds);
    st = pci_save_state_live(pdev);
    state_begin(w, name, VFU_UPGRADE_VERSION);
    state_put_bytes(w, "device-state", g_bytes_get_data(st, NULL),
                    g_bytes_get_size(st));
    state_put_u32(w, "client", add_fd(fds, s ? s->client_fd : -1));
    if (s && s->client_fd >= 0) {
        state_put_bool(w, "negotiated", s->negotiated);
        state_put_u16(w, "minor", s->minor);
        state_put_u32(w, "client-max-fds", s->client_max_fds);
        state_put_u32(w, "client-max-xfer", s->client_max_xfer);
        state_put_bool(w, "write-multiple", s->write_multiple);
        state_put_str(w, "client-caps", s->client_caps_json);
        state_put_u16(w, "next-msg-id", s->next_msg_id);
        state_put_bytes(w, "rx", s->rx_buf + s->rx_head,
                        s->rx_tail - s->rx_head);
        state_put_bytes(w, "tx", s->tx_buf + s->tx_head,
                        s->tx_tail - s->tx_head);
        save_dma(s, w, fds);
        save_irqs(s, w, fds);
    }
    state_end(w);
    return true;
}

/* ---- the new process ---- */

/* Take fd @idx out of @fds (it is ours now), or -1. */
static int take_fd(StateSection *sec, int *fds, unsigned nfds, uint32_t idx)
{
    int fd;

    if (idx == VFU_UPGRADE_NO_FD) {
        return -1;
    }
    if (idx >= nfds || fds[idx] < 0) {
        state_section_fail(sec, "file descriptor %u missing", idx);
        return -1;
    }
    fd = fds[idx];
    fds[idx] = -1;
    return fd;
}

bool vfu_upgrade_prepare(const char *id, StateReader *r, int *fds,
                         unsigned nfds, GError **errp)
{
    g_autofree char *name = g_strdup_printf("vfio-user-bars/%s", id);
    StateSection *sec = state_section(r, name, VFU_UPGRADE_VERSION, NULL,
                                      errp);
    uint8_t idx[4 * PCI_NUM_BARS];

    if (!sec) {
        return false;
    }
    state_get_bytes(sec, "mem-fds", idx, sizeof(idx));
    for (unsigned i = 0; i < PCI_NUM_BARS && !state_section_failed(sec);
         i++) {
        uint32_t k = ldl_le_p(idx + 4 * i);

        if (k != VFU_UPGRADE_NO_FD) {
            if (k >= nfds || fds[k] < 0) {
                state_section_fail(sec, "file descriptor %u missing", k);
                break;
            }
            pci_bar_mem_adopt(id, i, fds[k]);
            fds[k] = -1;
        }
    }
    /* Absent from an older iovd's stream: it had only paths. */
    if (state_has_field(sec, "listen-fd")) {
        int lfd = take_fd(sec, fds, nfds, state_get_u32(sec, "listen-fd"));
        bool single = state_get_bool(sec, "single-client");

        if (lfd >= 0 || single) {
            vfu_listen_adopt(id, lfd);
        }
    }
    return state_section_end(sec, errp);
}

static void load_dma(VfuServer *s, StateSection *sec, int *fds,
                     unsigned nfds)
{
    size_t len;
    const uint8_t *p = state_get_blob(sec, "dma", &len);

    for (size_t off = 0; p && off + sizeof(VfuUpgradeDma) <= len;
         off += sizeof(VfuUpgradeDma)) {
        VfuUpgradeDma d;
        VfuDmaMap m;
        int fd;

        memcpy(&d, p + off, sizeof(d));
        fd = take_fd(sec, fds, nfds, d.fd);
        m = (VfuDmaMap) { .argsz = sizeof(m), .flags = d.prot,
                          .offset = d.fd_offset, .addr = d.addr,
                          .size = d.size };
        if (vfu_dma_region_map(s, &m, fd)) {
            state_section_fail(sec, "DMA map 0x%" PRIx64 "+0x%" PRIx64
                               " refused", d.addr, d.size);
        }
        if (fd >= 0) {
            close(fd);          /* the region keeps its own */
        }
    }
}

static void load_irqs(VfuServer *s, StateSection *sec, int *fds,
                      unsigned nfds)
{
    PCIDevice *pdev = s->pdev;
    size_t bits = BITS_TO_LONGS(PCI_MSIX_MAX_VECTORS) * sizeof(long);

    for (unsigned i = 0; i < VFU_NUM_IRQS; i++) {
        char name[16];
        size_t len;
        const uint8_t *p;
        g_autofree int *v = NULL;

        snprintf(name, sizeof(name), "irq-fds-%u", i);
        p = state_get_blob(sec, name, &len);
        v = g_new(int, len / 4 + 1);
        for (size_t k = 0; p && k < len / 4; k++) {
            v[k] = take_fd(sec, fds, nfds, ldl_le_p(p + 4 * k));
        }
        if (len) {
            vfu_irq_adopt(s, i, v, len / 4);
        }
    }
    vfu_irq_adopt_unmask(s, take_fd(sec, fds, nfds,
                                    state_get_u32(sec, "intx-unmask-fd")));
    state_get_bytes(sec, "irq-masked", pdev->irq_masked, bits);
    pdev->intx_masked = state_get_bool(sec, "intx-masked");
}

/* The client's connection, as the old process had it (paused). */
static int load_client(VfuServer *s, StateSection *sec, int *fds,
                       unsigned nfds)
{
    int fd = take_fd(sec, fds, nfds, state_get_u32(sec, "client"));

    if (fd < 0) {
        return -1;
    }
    s->negotiated = state_get_bool(sec, "negotiated");
    s->minor = state_get_u16(sec, "minor");
    s->client_max_fds = state_get_u32(sec, "client-max-fds");
    s->client_max_xfer = state_get_u32(sec, "client-max-xfer");
    s->write_multiple = state_get_bool(sec, "write-multiple");
    s->client_caps_json = state_get_str(sec, "client-caps");
    s->next_msg_id = state_get_u16(sec, "next-msg-id");
    load_dma(s, sec, fds, nfds);
    load_irqs(s, sec, fds, nfds);       /* before the device's pending bits */
    return fd;
}

bool vfu_upgrade_load(Device *dev, StateReader *r, int *fds, unsigned nfds,
                      GError **errp)
{
    PCIDevice *pdev = PCI_DEVICE(dev);
    VfuServer *s = vfu_server_of(pdev);
    g_autofree char *name = g_strdup_printf("vfio-user/%s", dev->id);
    StateSection *sec = state_section(r, name, VFU_UPGRADE_VERSION, NULL,
                                      errp);
    g_autoptr(GBytes) state = NULL;
    size_t rx_len = 0, tx_len = 0, st_len;
    const void *rx = NULL, *tx = NULL, *st;
    int fd;

    if (!sec || !s) {
        return false;
    }
    st = state_get_blob(sec, "device-state", &st_len);
    fd = load_client(s, sec, fds, nfds);
    if (fd >= 0) {
        rx = state_get_blob(sec, "rx", &rx_len);
        tx = state_get_blob(sec, "tx", &tx_len);
        if (rx_len > VFU_RX_BUF_SIZE) {
            state_section_fail(sec, "%zu bytes received", rx_len);
        }
    }
    state = g_bytes_new(st, st_len);
    if (!state_section_end(sec, errp) || !pci_load_state(pdev, state, errp)) {
        if (fd >= 0) {
            close(fd);
        }
        return false;
    }
    pci_bar_mem_adopt_done(pdev);
    if (fd >= 0) {
        /* Reading starts once the device runs (vfu_upgrade_pause false). */
        s->upgrade_paused = true;
        vfu_client_adopt(s, fd, rx, rx_len, tx, tx_len);
    }
    return true;
}
