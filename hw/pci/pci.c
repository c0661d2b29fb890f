/*
 * PCI function core: config space, capabilities, BARs, MSI-X, MSI, INTx,
 * and DMA through whichever transport is attached.
 */
#include "hw/pci/pci.h"
#include "hw/pci/trace.h"
#include "util/error.h"
#include "util/bitops.h"
#include "util/memguard.h"

#include <sys/mman.h>
#include <sys/stat.h>

static const char *const dma_rw_layouts[] = { "qemu", "spec", NULL };

const PropDef pci_common_props[] = {
    PROP_DEF_STR("socket", PCIDevice, socket,
                 "path of the vfio-user socket to listen on"),
    PROP_DEF_STR("fd", PCIDevice, fd,
                 "inherited socket fd number (listening, or one connected "
                 "client)"),
    PROP_DEF_ENUM("dma-rw-layout", PCIDevice, dma_rw_layout, dma_rw_layouts,
                  "DMA_READ/WRITE layout for clients without shared memory "
                  "(qemu: QEMU 10.x client; spec: the protocol text)",
                  .defval = "qemu"),
    PROP_DEF_END
};

static inline const char *pci_id(PCIDevice *pdev)
{
    return device_id(&pdev->dev);
}

void pci_set_wmask(PCIDevice *pdev, uint32_t off, unsigned len, uint64_t m)
{
    g_assert(off + len <= pdev->config_size);
    stn_le_p(pdev->wmask + off, len, m);
}

void pci_set_w1cmask(PCIDevice *pdev, uint32_t off, unsigned len,
                     uint64_t m)
{
    g_assert(off + len <= pdev->config_size);
    stn_le_p(pdev->w1cmask + off, len, m);
}

void pci_device_init(PCIDevice *pdev, const PCIDeviceInfo *info)
{
    uint8_t *c;

    pdev->config_size = info->express ? PCIE_CFG_SPACE_SIZE
                                      : PCI_CFG_SPACE_SIZE;
    pdev->config = g_malloc0(pdev->config_size);
    pdev->wmask = g_malloc0(pdev->config_size);
    pdev->w1cmask = g_malloc0(pdev->config_size);
    pdev->irq_masked = g_new0(unsigned long,
                              BITS_TO_LONGS(PCI_MSIX_MAX_VECTORS));
    pdev->irq_pending = g_new0(unsigned long,
                               BITS_TO_LONGS(PCI_MSIX_MAX_VECTORS));
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        pdev->bars[i].mem_fd = -1;
    }
    c = pdev->config;
    pci_set_word(c + PCI_VENDOR_ID, info->vendor_id);
    pci_set_word(c + PCI_DEVICE_ID, info->device_id);
    c[PCI_REVISION_ID] = info->revision;
    c[PCI_CLASS_PROG] = info->class_code & 0xff;
    pci_set_word(c + PCI_CLASS_DEVICE, info->class_code >> 8);
    c[PCI_HEADER_TYPE] = 0;
    pci_set_word(c + PCI_SUBSYSTEM_VENDOR_ID,
                 info->subsystem_vendor_id ? info->subsystem_vendor_id
                                           : info->vendor_id);
    pci_set_word(c + PCI_SUBSYSTEM_ID, info->subsystem_id);
    c[PCI_INTERRUPT_PIN] = info->interrupt_pin;

    pci_set_wmask(pdev, PCI_COMMAND, 2,
                  PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
                  PCI_COMMAND_PARITY | PCI_COMMAND_SERR |
                  PCI_COMMAND_INTX_DISABLE);
    pci_set_w1cmask(pdev, PCI_STATUS, 2, PCI_STATUS_W1C_MASK);
    pci_set_wmask(pdev, PCI_CACHE_LINE_SIZE, 1, 0xff);
    pci_set_wmask(pdev, PCI_LATENCY_TIMER, 1, 0xff);
    pci_set_wmask(pdev, PCI_INTERRUPT_LINE, 1, 0xff);
    pdev->cap_next = 0x40;
    if (info->express) {
        pdev->ext_cap_next = PCI_EXT_CAP_START;
        pci_add_express_cap(pdev);
    }
}

void pci_device_cleanup(PCIDevice *pdev)
{
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        PCIBar *bar = &pdev->bars[i];

        if (bar->mem) {
            munmap(bar->mem, bar->size);
            bar->mem = NULL;
        }
        if (bar->mem_fd >= 0) {
            close(bar->mem_fd);
            bar->mem_fd = -1;
        }
    }
    g_clear_pointer(&pdev->config, g_free);
    g_clear_pointer(&pdev->wmask, g_free);
    g_clear_pointer(&pdev->w1cmask, g_free);
    g_clear_pointer(&pdev->msix_table, g_free);
    g_clear_pointer(&pdev->irq_masked, g_free);
    g_clear_pointer(&pdev->irq_pending, g_free);
}

static void msix_reset(PCIDevice *pdev)
{
    if (!pdev->msix_cap) {
        return;
    }
    memset(pdev->msix_table, 0, pdev->msix_nvec * PCI_MSIX_ENTRY_SIZE);
    for (unsigned v = 0; v < pdev->msix_nvec; v++) {
        pdev->msix_table[v * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_CTRL] =
            PCI_MSIX_ENTRY_CTRL_MASKBIT;
    }
    pci_set_word(pdev->config + pdev->msix_cap + PCI_MSIX_FLAGS,
                 pci_get_word(pdev->config + pdev->msix_cap +
                              PCI_MSIX_FLAGS) &
                 ~(PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL));
}

void pci_device_reset(PCIDevice *pdev)
{
    uint8_t *c = pdev->config;

    pci_set_word(c + PCI_COMMAND, 0);
    pci_set_word(c + PCI_STATUS,
                 pci_get_word(c + PCI_STATUS) & PCI_STATUS_CAP_LIST);
    c[PCI_CACHE_LINE_SIZE] = 0;
    c[PCI_LATENCY_TIMER] = 0;
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        PCIBar *bar = &pdev->bars[i];
        uint32_t off = PCI_BASE_ADDRESS_0 + 4 * i;

        if (bar->size) {
            pci_set_long(c + off, bar->type);
            if (bar->type & PCI_BAR_MEM64) {
                pci_set_long(c + off + 4, 0);
            }
        }
    }
    if (pdev->msi_cap) {
        pci_set_word(c + pdev->msi_cap + PCI_MSI_FLAGS,
                     pci_get_word(c + pdev->msi_cap + PCI_MSI_FLAGS) &
                     ~(PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE));
    }
    if (pdev->pm_cap) {
        /* Back to D0; the read-only No_Soft_Reset bit stays. */
        pci_set_word(c + pdev->pm_cap + PCI_PM_CTRL,
                     pci_get_word(c + pdev->pm_cap + PCI_PM_CTRL) &
                     PCI_PM_CTRL_NO_SOFT_RESET);
    }
    if (pdev->exp_cap) {
        pci_set_word(c + pdev->exp_cap + PCI_EXP_DEVCTL, 0x2810);
    }
    msix_reset(pdev);
    /* Interrupt wiring belongs to the client; pending state does not. */
    bitmap_zero(pdev->irq_pending, PCI_MSIX_MAX_VECTORS);
    pdev->intx_level = false;
}

void pci_register_bar(PCIDevice *pdev, unsigned idx, uint8_t type,
                      uint64_t size, const PCIBarOps *ops, void *opaque)
{
    PCIBar *bar = &pdev->bars[idx];
    uint32_t off = PCI_BASE_ADDRESS_0 + 4 * idx;
    uint64_t mask;

    g_assert(idx < PCI_NUM_BARS);
    g_assert(!(type & PCI_BAR_MEM64) || idx + 1 < PCI_NUM_BARS);
    size = MAX(size, (type & PCI_BAR_IO) ? 4 : 16);
    size = 1ULL << g_bit_storage(size - 1);
    bar->size = size;
    bar->type = type;
    bar->ops = ops;
    bar->opaque = opaque;
    pci_set_long(pdev->config + off, type);
    mask = ~(size - 1);
    if (type & PCI_BAR_IO) {
        pci_set_wmask(pdev, off, 4, (uint32_t)mask & ~3u);
    } else {
        pci_set_wmask(pdev, off, 4, (uint32_t)mask & ~15u);
        if (type & PCI_BAR_MEM64) {
            pci_set_wmask(pdev, off + 4, 4, mask >> 32);
        }
    }
}

/* Live upgrade: BAR memory fds the old process handed over, by "id/bar". */
static GHashTable *adopted_bar_mem;     /* -> fd + 1 */

void pci_bar_mem_adopt(const char *dev_id, unsigned bar, int fd)
{
    if (!adopted_bar_mem) {
        adopted_bar_mem = g_hash_table_new_full(g_str_hash, g_str_equal,
                                                g_free, NULL);
    }
    g_hash_table_insert(adopted_bar_mem,
                        g_strdup_printf("%s/%u", dev_id, bar),
                        GINT_TO_POINTER(fd + 1));
}

/* The adopted fd of @pdev's BAR @idx (taken), or -1. */
static int bar_mem_take_adopted(PCIDevice *pdev, unsigned idx)
{
    g_autofree char *key = g_strdup_printf("%s/%u", pdev->dev.id ?
                                           pdev->dev.id : "", idx);
    int fd = adopted_bar_mem ?
             GPOINTER_TO_INT(g_hash_table_lookup(adopted_bar_mem, key)) - 1 :
             -1;
    struct stat st;

    if (fd >= 0) {
        g_hash_table_remove(adopted_bar_mem, key);
        if (fstat(fd, &st) < 0 ||
            (uint64_t)st.st_size < pdev->bars[idx].size) {
            close(fd);
            return -1;
        }
    }
    return fd;
}

uint8_t *pci_bar_add_sparse_mmap(PCIDevice *pdev, unsigned idx,
                                 uint64_t off, uint64_t size, GError **errp)
{
    PCIBar *bar = &pdev->bars[idx];

    g_assert(bar->size && bar->nr_sparse < PCI_BAR_MAX_SPARSE);
    g_assert(range_within(off, size, bar->size));
    g_assert(QEMU_IS_ALIGNED(off, 4096) && QEMU_IS_ALIGNED(size, 4096));
    if (!bar->mem) {
        g_autofree char *name = g_strdup_printf("iovd-%s-bar%u",
                                                pci_id(pdev), idx);
        int fd = bar_mem_take_adopted(pdev, idx);

        /* Adopted memory is live (the client maps it): left as it is. */
        bar->adopted = fd >= 0;
        if (fd < 0) {
            fd = memfd_create(name, MFD_CLOEXEC);
        }
        if (fd < 0) {
            error_setg_errno(errp, errno, "memfd_create");
            return NULL;
        }
        if (!bar->adopted && ftruncate(fd, bar->size) < 0) {
            error_setg_errno(errp, errno, "ftruncate BAR%u memory", idx);
            close(fd);
            return NULL;
        }
        bar->mem = mmap(NULL, bar->size, PROT_READ | PROT_WRITE, MAP_SHARED,
                        fd, 0);
        if (bar->mem == MAP_FAILED) {
            bar->mem = NULL;
            error_setg_errno(errp, errno, "mmap BAR%u memory", idx);
            close(fd);
            return NULL;
        }
        bar->mem_fd = fd;
    }
    bar->sparse[bar->nr_sparse].offset = off;
    bar->sparse[bar->nr_sparse].size = size;
    bar->nr_sparse++;
    return bar->mem;
}

/* ---- capabilities ---- */

/* Spec: the capabilities list: PCI Local Bus 3.0 6.7. */
uint8_t pci_add_capability(PCIDevice *pdev, uint8_t id, uint8_t size)
{
    uint8_t *c = pdev->config;
    uint8_t off = pdev->cap_next;
    unsigned next;
    uint8_t *prev;

    g_assert(off && off + size <= PCI_CFG_SPACE_SIZE);
    /* Append to the end of the chain. */
    prev = &c[PCI_CAPABILITY_LIST];
    while (*prev) {
        prev = &c[*prev + 1];
    }
    *prev = off;
    c[off] = id;
    c[off + 1] = 0;
    pci_set_word(c + PCI_STATUS,
                 pci_get_word(c + PCI_STATUS) | PCI_STATUS_CAP_LIST);
    next = QEMU_ALIGN_UP(off + size, 4);
    pdev->cap_next = next < PCI_CFG_SPACE_SIZE ? next : 0;
    return off;
}

uint8_t pci_add_pm_cap(PCIDevice *pdev)
{
    uint8_t off = pci_add_capability(pdev, PCI_CAP_ID_PM, PCI_PM_SIZEOF);

    /* Version 3, D0 and D3hot, no PME; no soft reset from D3hot. */
    pci_set_word(pdev->config + off + PCI_PM_PMC, 0x0003);
    pci_set_word(pdev->config + off + PCI_PM_CTRL, PCI_PM_CTRL_NO_SOFT_RESET);
    pci_set_wmask(pdev, off + PCI_PM_CTRL, 2, PCI_PM_CTRL_STATE_MASK);
    pci_set_w1cmask(pdev, off + PCI_PM_CTRL, 2, PCI_PM_CTRL_PME_STATUS);
    pdev->pm_cap = off;
    return off;
}

uint8_t pci_add_express_cap(PCIDevice *pdev)
{
    uint8_t off = pci_add_capability(pdev, PCI_CAP_ID_EXP, PCI_EXP_SIZEOF);
    uint8_t *c = pdev->config + off;

    pci_set_word(c + PCI_EXP_FLAGS,
                 PCI_EXP_FLAGS_VER2 | (PCI_EXP_TYPE_ENDPOINT << 4));
    /* Max payload 128, FLR capable. */
    pci_set_long(c + PCI_EXP_DEVCAP, PCI_EXP_DEVCAP_FLR);
    pci_set_word(c + PCI_EXP_DEVCTL, 0x2810);
    pci_set_wmask(pdev, off + PCI_EXP_DEVCTL, 2, 0x7fff);
    pci_set_w1cmask(pdev, off + PCI_EXP_DEVSTA, 2, 0x000f);
    /* x1 link at 8 GT/s, trained. */
    pci_set_long(c + PCI_EXP_LNKCAP, 0x00000013);
    pci_set_word(c + PCI_EXP_LNKSTA, 0x0013);
    pci_set_wmask(pdev, off + PCI_EXP_LNKCTL, 2, 0x01c3);
    pci_set_long(c + PCI_EXP_LNKCAP2, 0x0000000e);
    pci_set_wmask(pdev, off + PCI_EXP_DEVCTL2, 2, 0x041f);
    pdev->exp_cap = off;
    return off;
}

uint8_t pci_add_msi_cap(PCIDevice *pdev, unsigned nvec, bool is64,
                        bool maskable)
{
    unsigned size = 10 + (is64 ? 4 : 0) + (maskable ? 10 : 0);
    uint8_t off;
    uint16_t flags;
    unsigned mmc = nvec > 1 ? g_bit_storage(nvec - 1) : 0;

    g_assert(nvec >= 1 && nvec <= PCI_MSI_MAX_VECTORS);
    off = pci_add_capability(pdev, PCI_CAP_ID_MSI, size);
    flags = (mmc << 1) | (is64 ? PCI_MSI_FLAGS_64BIT : 0) |
            (maskable ? PCI_MSI_FLAGS_MASKBIT : 0);
    pci_set_word(pdev->config + off + PCI_MSI_FLAGS, flags);
    pci_set_wmask(pdev, off + PCI_MSI_FLAGS, 2,
                  PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE);
    pci_set_wmask(pdev, off + 4, 4, 0xfffffffc);        /* address */
    if (is64) {
        pci_set_wmask(pdev, off + 8, 4, 0xffffffff);
        pci_set_wmask(pdev, off + 12, 2, 0xffff);       /* data */
        if (maskable) {
            pci_set_wmask(pdev, off + 16, 4,
                          nvec == 32 ? 0xffffffff : (1u << nvec) - 1);
        }
    } else {
        pci_set_wmask(pdev, off + 8, 2, 0xffff);
        if (maskable) {
            pci_set_wmask(pdev, off + 12, 4,
                          nvec == 32 ? 0xffffffff : (1u << nvec) - 1);
        }
    }
    pdev->msi_cap = off;
    return off;
}

uint8_t pci_add_msix_cap(PCIDevice *pdev, unsigned nvec,
                         unsigned table_bar, uint32_t table_off,
                         unsigned pba_bar, uint32_t pba_off)
{
    uint8_t off = pci_add_capability(pdev, PCI_CAP_ID_MSIX, PCI_MSIX_SIZEOF);
    uint8_t *c = pdev->config + off;

    g_assert(nvec >= 1 && nvec <= PCI_MSIX_MAX_VECTORS);
    g_assert(pdev->bars[table_bar].size && pdev->bars[pba_bar].size);
    g_assert(range_within(table_off, nvec * PCI_MSIX_ENTRY_SIZE,
                          pdev->bars[table_bar].size));
    g_assert(range_within(pba_off, DIV_ROUND_UP(nvec, 64) * 8,
                          pdev->bars[pba_bar].size));
    pci_set_word(c + PCI_MSIX_FLAGS, nvec - 1);
    pci_set_long(c + PCI_MSIX_TABLE, table_off | table_bar);
    pci_set_long(c + PCI_MSIX_PBA, pba_off | pba_bar);
    pci_set_wmask(pdev, off + PCI_MSIX_FLAGS, 2,
                  PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    pdev->msix_cap = off;
    pdev->msix_nvec = nvec;
    pdev->msix_table_bar = table_bar;
    pdev->msix_table_off = table_off;
    pdev->msix_pba_bar = pba_bar;
    pdev->msix_pba_off = pba_off;
    pdev->msix_table = g_malloc0(nvec * PCI_MSIX_ENTRY_SIZE);
    msix_reset(pdev);
    return off;
}

uint16_t pci_add_ext_capability(PCIDevice *pdev, uint16_t id, uint8_t ver,
                                uint16_t size)
{
    uint16_t off = pdev->ext_cap_next;
    uint32_t hdr = id | ((uint32_t)ver << 16);

    g_assert(pdev->config_size == PCIE_CFG_SPACE_SIZE);
    g_assert(off + size <= PCIE_CFG_SPACE_SIZE);
    if (pdev->ext_cap_last) {
        uint32_t prev = pci_get_long(pdev->config + pdev->ext_cap_last);

        pci_set_long(pdev->config + pdev->ext_cap_last,
                     (prev & 0xfffff) | ((uint32_t)off << 20));
    }
    pci_set_long(pdev->config + off, hdr);
    pdev->ext_cap_last = off;
    pdev->ext_cap_next = QEMU_ALIGN_UP(off + size, 4);
    return off;
}

/* ---- config space ---- */

uint32_t pci_config_read(PCIDevice *pdev, uint32_t addr, unsigned len)
{
    g_assert(len <= 4 && addr + len <= pdev->config_size);
    return ldn_le_p(pdev->config + addr, len);
}

static bool ranges_overlap(uint32_t a, unsigned alen, uint32_t b,
                           unsigned blen)
{
    return a < b + blen && b < a + alen;
}

void pci_config_write(PCIDevice *pdev, uint32_t addr, uint32_t val,
                      unsigned len)
{
    uint16_t old_cmd = pci_get_word(pdev->config + PCI_COMMAND);

    g_assert(len <= 4 && addr + len <= pdev->config_size);
    for (unsigned i = 0; i < len; i++) {
        uint8_t b = val >> (8 * i);
        uint32_t a = addr + i;
        uint8_t wm = pdev->wmask[a], w1c = pdev->w1cmask[a];

        pdev->config[a] = (pdev->config[a] & ~wm & ~(b & w1c)) | (b & wm);
    }
    /* INTx disable toggled: the line follows. */
    if (ranges_overlap(addr, len, PCI_COMMAND, 2) &&
        ((old_cmd ^ pci_get_word(pdev->config + PCI_COMMAND)) &
         PCI_COMMAND_INTX_DISABLE)) {
        pci_set_irq(pdev, pdev->intx_level);
    }
    /* FLR: the bit is not stored (it always reads 0): look at the write. */
    if (pdev->exp_cap &&
        ranges_overlap(addr, len, pdev->exp_cap + PCI_EXP_DEVCTL + 1, 1) &&
        ((val >> (8 * (pdev->exp_cap + PCI_EXP_DEVCTL + 1 - addr))) &
         (PCI_EXP_DEVCTL_BCR_FLR >> 8))) {
        /* Function level reset: the bit itself always reads 0. */
        trace_pci_flr(pci_id(pdev));
        device_reset(&pdev->dev, DEVICE_RESET_FUNCTION, NULL, NULL);
        return;
    }
    if (pdev->config_write) {
        pdev->config_write(pdev, addr, val, len);
    }
}

/* ---- BAR access ---- */

/* Spec: Memory and I/O Space enables: PCI Local Bus 3.0 6.2.2. */
static bool bar_decodes(PCIDevice *pdev, PCIBar *bar)
{
    uint16_t cmd = pci_get_word(pdev->config + PCI_COMMAND);

    return (bar->type & PCI_BAR_IO) ? (cmd & PCI_COMMAND_IO)
                                    : (cmd & PCI_COMMAND_MEMORY);
}

static void msix_pba_read(PCIDevice *pdev, uint64_t off, uint8_t *buf,
                          unsigned size)
{
    for (unsigned i = 0; i < size; i++) {
        uint8_t b = 0;

        for (unsigned bit = 0; bit < 8; bit++) {
            unsigned v = (off + i) * 8 + bit;

            if (v < pdev->msix_nvec && pci_msix_is_pending(pdev, v)) {
                b |= 1u << bit;
            }
        }
        buf[i] = b;
    }
}

/* Dispatch to the device's ops in naturally aligned pieces of <= 8. */
static void bar_ops_access(PCIBar *bar, uint64_t addr, uint8_t *buf,
                           unsigned size, bool is_write)
{
    while (size) {
        unsigned n = 8;

        while (n > size || (addr & (n - 1))) {
            n >>= 1;
        }
        if (is_write) {
            if (bar->ops && bar->ops->write) {
                bar->ops->write(bar->opaque, addr, ldn_le_p(buf, n), n);
            }
        } else {
            uint64_t v = bar->ops && bar->ops->read
                         ? bar->ops->read(bar->opaque, addr, n) : 0;

            stn_le_p(buf, n, v);
        }
        addr += n;
        buf += n;
        size -= n;
    }
}

static bool pci_bar_access(PCIDevice *pdev, unsigned idx, uint64_t addr,
                           uint8_t *buf, unsigned size, bool is_write)
{
    PCIBar *bar;

    if (idx >= PCI_NUM_BARS) {
        return false;
    }
    bar = &pdev->bars[idx];
    if (!bar->size || !range_within(addr, size, bar->size)) {
        return false;
    }
    if (!bar_decodes(pdev, bar)) {
        if (!is_write) {
            memset(buf, 0xff, size);
        }
        return true;
    }
    if (pdev->msix_cap && idx == pdev->msix_table_bar &&
        range_within(addr - pdev->msix_table_off, size,
                     pdev->msix_nvec * PCI_MSIX_ENTRY_SIZE) &&
        addr >= pdev->msix_table_off) {
        uint8_t *p = pdev->msix_table + (addr - pdev->msix_table_off);

        if (is_write) {
            memcpy(p, buf, size);
        } else {
            memcpy(buf, p, size);
        }
        return true;
    }
    if (pdev->msix_cap && idx == pdev->msix_pba_bar &&
        addr >= pdev->msix_pba_off &&
        range_within(addr - pdev->msix_pba_off, size,
                     DIV_ROUND_UP(pdev->msix_nvec, 64) * 8)) {
        if (!is_write) {
            msix_pba_read(pdev, addr - pdev->msix_pba_off, buf, size);
        }
        return true;
    }
    if (bar->mem && !bar->ops) {
        if (is_write) {
            memcpy(bar->mem + addr, buf, size);
        } else {
            memcpy(buf, bar->mem + addr, size);
        }
        return true;
    }
    bar_ops_access(bar, addr, buf, size, is_write);
    return true;
}

bool pci_bar_read(PCIDevice *pdev, unsigned bar, uint64_t addr, void *buf,
                  unsigned size)
{
    return pci_bar_access(pdev, bar, addr, buf, size, false);
}

bool pci_bar_write(PCIDevice *pdev, unsigned bar, uint64_t addr,
                   const void *buf, unsigned size)
{
    return pci_bar_access(pdev, bar, addr, (uint8_t *)buf, size, true);
}

/* ---- DMA ---- */

static bool pci_dma_allowed(PCIDevice *pdev, uint64_t addr, uint64_t len)
{
    if (unlikely(device_work_cancelled(&pdev->dev))) {
        return false;           /* a reset unwinds this work item */
    }
    if (!pdev->tops) {
        trace_pci_dma_no_transport(pci_id(pdev), addr, len);
        return false;
    }
    if (!pci_bus_master_enabled(pdev)) {
        trace_pci_err_dma_no_master(pci_id(pdev), addr, len);
        return false;
    }
    return true;
}

void *pci_dma_map(PCIDevice *pdev, uint64_t addr, uint64_t len,
                  bool is_write)
{
    uint64_t plen = 0;
    void *p;

    if (unlikely(!pci_dma_allowed(pdev, addr, len))) {
        return NULL;
    }
    p = pdev->tops->dma_map(pdev->transport, addr, len, is_write, &plen);
    return p && plen == len ? p : NULL;
}

/* A copy through messages, waited for by parking the work item. */
typedef struct PCIDmaWait {
    PCIDevice *pdev;
    int ret;
    bool done;
    bool parked;
} PCIDmaWait;

static void pci_dma_wait_done(void *opaque, int ret)
{
    PCIDmaWait *w = opaque;

    w->ret = ret;
    w->done = true;
    if (w->parked) {
        w->parked = false;
        device_unpark(&w->pdev->dev, 0);
    }
}

static void pci_dma_wait_cancel(void *opaque)
{
    PCIDmaWait *w = opaque;

    w->parked = false;
    w->pdev->tops->dma_rw_cancel(w->pdev->transport, w);
}

static int pci_dma_rw_msg(PCIDevice *pdev, uint64_t addr, uint8_t *buf,
                          uint64_t len, bool is_write)
{
    PCIDmaWait w = { .pdev = pdev };
    int r;

    if (!device_in_worker(&pdev->dev)) {
        /* Register handlers and callbacks record and schedule instead. */
        trace_pci_err_dma_outside_work(pci_id(pdev), addr, len);
        return -EFAULT;
    }
    r = pdev->tops->dma_rw_start(pdev->transport, addr, buf, len, is_write,
                                 pci_dma_wait_done, &w);
    if (r < 0) {
        return r;
    }
    if (!w.done) {
        w.parked = true;
        r = device_park(&pdev->dev, pci_dma_wait_cancel, &w);
        if (r < 0) {
            if (w.parked) {
                pci_dma_wait_cancel(&w);
            }
            return r;
        }
    }
    return w.ret;
}

static int pci_dma_rw(PCIDevice *pdev, uint64_t addr, uint8_t *buf,
                      uint64_t len, bool is_write)
{
    if (unlikely(device_work_cancelled(&pdev->dev))) {
        return -ECANCELED;
    }
    if (unlikely(!pci_dma_allowed(pdev, addr, len))) {
        return -EFAULT;
    }
    while (len) {
        uint64_t plen = 0;
        uint8_t *p = pdev->tops->dma_map(pdev->transport, addr, len,
                                         is_write, &plen);

        if (p) {
            unsigned faults = memguard_faults();
            uint64_t again;

            if (is_write) {
                memcpy(p, buf, plen);
            } else {
                memcpy(buf, p, plen);
            }
            /* Memory that vanished under the copy: it did not happen. */
            if (unlikely(memguard_faults() != faults) &&
                !pdev->tops->dma_map(pdev->transport, addr, plen, is_write,
                                     &again)) {
                trace_pci_err_dma_unmapped(pci_id(pdev), addr, len);
                return -EFAULT;
            }
        } else {
            int ret;

            /* Not directly mapped: through the transport, up to the end. */
            plen = len;
            ret = pci_dma_rw_msg(pdev, addr, buf, plen, is_write);
            if (ret < 0) {
                if (ret != -ECANCELED) {
                    trace_pci_err_dma_unmapped(pci_id(pdev), addr, len);
                }
                return ret;
            }
        }
        addr += plen;
        buf += plen;
        len -= plen;
    }
    return 0;
}

int pci_dma_read(PCIDevice *pdev, uint64_t addr, void *buf, uint64_t len)
{
    return pci_dma_rw(pdev, addr, buf, len, false);
}

int pci_dma_write(PCIDevice *pdev, uint64_t addr, const void *buf,
                  uint64_t len)
{
    return pci_dma_rw(pdev, addr, (uint8_t *)buf, len, true);
}

int pci_dma_iov(PCIDevice *pdev, uint64_t addr, uint64_t len, bool is_write,
                struct iovec *iov, unsigned max, unsigned *niov)
{
    if (unlikely(!pci_dma_allowed(pdev, addr, len))) {
        return -EFAULT;
    }
    while (len) {
        uint64_t plen = 0;
        void *p = pdev->tops->dma_map(pdev->transport, addr, len, is_write,
                                      &plen);

        if (!p || !plen) {
            /*
             * Not directly mapped: maybe not guest memory at all, maybe
             * memory the client lends only through messages.  Callers
             * bounce through pci_dma_read/write, which tells the two apart.
             */
            trace_pci_dma_iov_not_direct(pci_id(pdev), addr, len);
            return -EFAULT;
        }
        /* Merge with the previous entry when contiguous on the host. */
        if (*niov && (uint8_t *)iov[*niov - 1].iov_base +
                     iov[*niov - 1].iov_len == (uint8_t *)p) {
            iov[*niov - 1].iov_len += plen;
        } else {
            if (*niov >= max) {
                return -ENOSPC;
            }
            iov[*niov].iov_base = p;
            iov[*niov].iov_len = plen;
            (*niov)++;
        }
        addr += plen;
        len -= plen;
    }
    return 0;
}

/* ---- interrupts ---- */

static unsigned irq_mode_index(PCIIrqMode mode)
{
    return mode == PCI_IRQ_MSIX ? PCI_IRQ_INDEX_MSIX : PCI_IRQ_INDEX_MSI;
}

static void pci_irq_signal(PCIDevice *pdev, unsigned index, unsigned vector)
{
    trace_pci_irq_signal(pci_id(pdev), index, vector);
    if (pdev->tops) {
        pdev->tops->irq_signal(pdev->transport, index, vector);
    }
}

/*
 * Spec: a masked MSI-X vector sets its pending bit and fires when unmasked:
 * PCI Local Bus 3.0 6.8.3 (per-vector masking).
 */
void pci_irq_notify(PCIDevice *pdev, unsigned vector)
{
    unsigned index;

    if (pdev->irq_mode != PCI_IRQ_MSIX && pdev->irq_mode != PCI_IRQ_MSI) {
        return;
    }
    index = irq_mode_index(pdev->irq_mode);
    if (vector >= pdev->irq_count[index]) {
        return;     /* the client wired fewer vectors */
    }
    if (test_bit(vector, pdev->irq_masked)) {
        trace_pci_irq_pending(pci_id(pdev), index, vector);
        set_bit(vector, pdev->irq_pending);
        return;
    }
    pci_irq_signal(pdev, index, vector);
}

/* Spec: Interrupt Disable in the Command register: PCI Local Bus 3.0 6.2.2. */
static bool intx_can_signal(PCIDevice *pdev)
{
    return pdev->irq_mode == PCI_IRQ_INTX && !pdev->intx_masked &&
           !(pci_get_word(pdev->config + PCI_COMMAND) &
             PCI_COMMAND_INTX_DISABLE);
}

static void intx_update(PCIDevice *pdev)
{
    if (pdev->intx_level && intx_can_signal(pdev)) {
        /* VFIO INTx is automasked: the client unmasks after the EOI. */
        pdev->intx_masked = true;
        pci_irq_signal(pdev, PCI_IRQ_INDEX_INTX, 0);
    }
}

/*
 * Spec: Interrupt Status follows the level whatever Interrupt Disable says:
 * PCI Local Bus 3.0 6.2.3.
 */
void pci_set_irq(PCIDevice *pdev, bool level)
{
    uint16_t status = pci_get_word(pdev->config + PCI_STATUS);

    pdev->intx_level = level;
    pci_set_word(pdev->config + PCI_STATUS,
                 level ? status | PCI_STATUS_INTERRUPT
                       : status & ~PCI_STATUS_INTERRUPT);
    if (level) {
        intx_update(pdev);
    }
}

void pci_irq_set_mode(PCIDevice *pdev, PCIIrqMode mode, unsigned count)
{
    if (mode != pdev->irq_mode) {
        bitmap_zero(pdev->irq_masked, PCI_MSIX_MAX_VECTORS);
        bitmap_zero(pdev->irq_pending, PCI_MSIX_MAX_VECTORS);
        pdev->intx_masked = false;
    }
    pdev->irq_mode = mode;
    if (mode == PCI_IRQ_MSIX || mode == PCI_IRQ_MSI) {
        pdev->irq_count[irq_mode_index(mode)] = count;
    } else if (mode == PCI_IRQ_INTX) {
        pdev->irq_count[PCI_IRQ_INDEX_INTX] = 1;
        intx_update(pdev);
    }
}

void pci_irq_mask(PCIDevice *pdev, unsigned index, unsigned vector,
                  bool mask)
{
    if (index == PCI_IRQ_INDEX_INTX) {
        pdev->intx_masked = mask;
        if (!mask) {
            intx_update(pdev);
        }
        return;
    }
    if (vector >= PCI_MSIX_MAX_VECTORS) {
        return;
    }
    if (mask) {
        set_bit(vector, pdev->irq_masked);
        return;
    }
    clear_bit(vector, pdev->irq_masked);
    if (test_bit(vector, pdev->irq_pending)) {
        clear_bit(vector, pdev->irq_pending);
        if (pdev->irq_mode != PCI_IRQ_NONE &&
            irq_mode_index(pdev->irq_mode) == index) {
            pci_irq_signal(pdev, index, vector);
        }
    }
}

bool pci_msix_is_pending(PCIDevice *pdev, unsigned vector)
{
    return pdev->irq_mode == PCI_IRQ_MSIX && vector < PCI_MSIX_MAX_VECTORS &&
           test_bit(vector, pdev->irq_pending);
}

/* ---- transport ---- */

void pci_transport_attach(PCIDevice *pdev, const PCITransportOps *ops,
                          void *t)
{
    pdev->tops = ops;
    pdev->transport = t;
}

void pci_transport_detach(PCIDevice *pdev)
{
    pdev->tops = NULL;
    pdev->transport = NULL;
    pci_irq_reset(pdev);
}

void pci_irq_reset(PCIDevice *pdev)
{
    pdev->irq_mode = PCI_IRQ_NONE;
    memset(pdev->irq_count, 0, sizeof(pdev->irq_count));
    bitmap_zero(pdev->irq_masked, PCI_MSIX_MAX_VECTORS);
    bitmap_zero(pdev->irq_pending, PCI_MSIX_MAX_VECTORS);
    pdev->intx_masked = false;
}

void pci_bar_mem_adopt_done(PCIDevice *pdev)
{
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        pdev->bars[i].adopted = false;
    }
}
