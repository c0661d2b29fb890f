/*
 * A PCI function's state stream: the device's identity, the PCI state
 * (configuration space, MSI-X table, pending interrupts), then the
 * device type's own sections (DeviceClass.save_state).
 */
#include "hw/pci/pci.h"
#include <inttypes.h>
#include "util/bitops.h"
#include "util/error.h"
#include "util/savestate.h"

/* Section versions this iovd writes, and the newest it loads. */
#define STATE_DEVICE_VERSION 1
#define STATE_PCI_VERSION 1

/* Registers that say which function this is: they must match. */
static const struct {
    uint32_t off;
    unsigned len;
    const char *name;
} identity[] = {
    { PCI_VENDOR_ID, 2, "vendor id" },
    { PCI_DEVICE_ID, 2, "device id" },
    { PCI_REVISION_ID, 1, "revision" },
    { PCI_CLASS_PROG, 3, "class code" },
    { PCI_SUBSYSTEM_VENDOR_ID, 2, "subsystem vendor id" },
    { PCI_SUBSYSTEM_ID, 2, "subsystem id" },
};

bool pci_state_supported(PCIDevice *pdev)
{
    return pdev->dev.cls->save_state && pdev->dev.cls->load_state;
}

static GBytes *save_state(PCIDevice *pdev, bool bar_mem);

GBytes *pci_save_state(PCIDevice *pdev)
{
    return save_state(pdev, true);
}

GBytes *pci_save_state_live(PCIDevice *pdev)
{
    return save_state(pdev, false);
}

static GBytes *save_state(PCIDevice *pdev, bool bar_mem)
{
    g_autoptr(StateWriter) w = state_writer_new();
    size_t pend = BITS_TO_LONGS(PCI_MSIX_MAX_VECTORS) * sizeof(long);

    g_assert(device_stopped(&pdev->dev) && pci_state_supported(pdev));
    state_begin(w, "device", STATE_DEVICE_VERSION);
    state_put_str(w, "driver", pdev->dev.cls->name);
    state_put_str(w, "id", pdev->dev.id);
    state_end(w);

    state_begin(w, "pci", STATE_PCI_VERSION);
    state_put_bytes(w, "config", pdev->config, pdev->config_size);
    state_put_u16(w, "msix-nvec", pdev->msix_nvec);
    state_put_bytes(w, "msix-table", pdev->msix_table,
                    pdev->msix_nvec * PCI_MSIX_ENTRY_SIZE);
    state_put_bytes(w, "irq-pending", pdev->irq_pending, pend);
    state_put_bool(w, "intx-level", pdev->intx_level);
    /* BAR memory the client maps (doorbells, buffers): its contents. */
    for (unsigned i = 0; i < PCI_NUM_BARS && bar_mem; i++) {
        if (pdev->bars[i].mem) {
            char name[16];

            snprintf(name, sizeof(name), "bar%u-mem", i);
            state_put_bytes(w, name, pdev->bars[i].mem, pdev->bars[i].size);
        }
    }
    state_end(w);

    pdev->dev.cls->save_state(&pdev->dev, w);
    return state_writer_finish(w);
}

static bool load_device(PCIDevice *pdev, StateReader *r, GError **errp)
{
    StateSection *s = state_section(r, "device", STATE_DEVICE_VERSION, NULL,
                                    errp);
    g_autofree char *driver = NULL, *id = NULL;

    if (!s) {
        return false;
    }
    driver = state_get_str(s, "driver");
    id = state_get_str(s, "id");
    if (!state_section_failed(s) &&
        g_strcmp0(driver, pdev->dev.cls->name)) {
        state_section_fail(s, "the state is of a '%s' device, this one is "
                           "'%s'", driver ? driver : "?", pdev->dev.cls->name);
    }
    /* The id may differ: the destination names its devices itself. */
    return state_section_end(s, errp);
}

static void load_identity(PCIDevice *pdev, StateSection *s,
                          const uint8_t *config)
{
    for (unsigned i = 0; i < G_N_ELEMENTS(identity); i++) {
        uint32_t off = identity[i].off;
        unsigned len = identity[i].len;

        if (memcmp(config + off, pdev->config + off, len)) {
            state_section_fail(s, "the %s differs (0x%" PRIx64 " in the "
                               "state, 0x%" PRIx64 " here): a device "
                               "configured differently", identity[i].name,
                               ldn_le_p(config + off, len),
                               ldn_le_p(pdev->config + off, len));
            return;
        }
    }
}

/* The BAR memory fields: checked into @mem / @mem_len, not applied. */
static void load_bar_mem(PCIDevice *pdev, StateSection *s,
                         const void **mem, size_t *mem_len)
{
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        char name[16];

        snprintf(name, sizeof(name), "bar%u-mem", i);
        if (pdev->bars[i].adopted && !state_has_field(s, name)) {
            continue;           /* live memory from the old process */
        }
        if (state_has_field(s, name) != (pdev->bars[i].mem != NULL)) {
            state_section_fail(s, "BAR%u is memory the client maps %s: "
                               "a device configured differently (NVMe "
                               "doorbells=, iothread=)", i,
                               pdev->bars[i].mem ? "here, not in the state"
                                                 : "in the state, not here");
        } else if (pdev->bars[i].mem) {
            mem[i] = state_get_blob(s, name, &mem_len[i]);
            if (mem[i] && mem_len[i] != pdev->bars[i].size) {
                state_section_fail(s, "%s has %zu bytes, here %" PRIu64,
                                   name, mem_len[i], pdev->bars[i].size);
            }
        }
    }
}

static bool load_pci(PCIDevice *pdev, StateReader *r, GError **errp)
{
    StateSection *s = state_section(r, "pci", STATE_PCI_VERSION, NULL, errp);
    size_t pend = BITS_TO_LONGS(PCI_MSIX_MAX_VECTORS) * sizeof(long);
    g_autofree uint8_t *config = NULL;
    g_autofree uint8_t *table = NULL;
    g_autofree unsigned long *pending = g_malloc0(pend);
    const void *mem[PCI_NUM_BARS] = { NULL };
    size_t mem_len[PCI_NUM_BARS] = { 0 };
    size_t len;
    const void *p;
    uint16_t nvec;
    bool intx;

    if (!s) {
        return false;
    }
    p = state_get_blob(s, "config", &len);
    nvec = state_get_u16(s, "msix-nvec");
    if (!state_section_failed(s) &&
        (len != pdev->config_size || nvec != pdev->msix_nvec)) {
        state_section_fail(s, "config space of %zu bytes with %u MSI-X "
                           "vectors, here %u bytes and %u vectors: a device "
                           "configured differently", len, nvec,
                           pdev->config_size, pdev->msix_nvec);
    }
    if (!state_section_failed(s)) {
        config = g_memdup2(p, len);
        load_identity(pdev, s, config);
    }
    table = g_malloc0(pdev->msix_nvec * PCI_MSIX_ENTRY_SIZE);
    state_get_bytes(s, "msix-table", table,
                    pdev->msix_nvec * PCI_MSIX_ENTRY_SIZE);
    state_get_bytes(s, "irq-pending", pending, pend);
    intx = state_get_bool(s, "intx-level");
    load_bar_mem(pdev, s, mem, mem_len);
    if (!state_section_end(s, errp)) {
        return false;
    }
    /* Checked: now apply. */
    memcpy(pdev->config, config, pdev->config_size);
    if (pdev->msix_nvec) {
        memcpy(pdev->msix_table, table, pdev->msix_nvec * PCI_MSIX_ENTRY_SIZE);
    }
    for (size_t i = 0; i < BITS_TO_LONGS(PCI_MSIX_MAX_VECTORS); i++) {
        pdev->irq_pending[i] |= pending[i];
    }
    pdev->intx_level = intx;
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        if (mem[i]) {
            memcpy(pdev->bars[i].mem, mem[i], mem_len[i]);
        }
    }
    return true;
}

bool pci_load_state(PCIDevice *pdev, GBytes *data, GError **errp)
{
    g_autoptr(StateReader) r = NULL;

    g_assert(device_stopped(&pdev->dev) && pci_state_supported(pdev));
    r = state_reader_new(data, errp);
    if (!r || !load_device(pdev, r, errp) || !load_pci(pdev, r, errp) ||
        !pdev->dev.cls->load_state(&pdev->dev, r, errp)) {
        return false;
    }
    return state_reader_end(r, errp);
}
