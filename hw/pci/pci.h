/*
 * A PCI function: configuration space with write masks, capabilities, BARs
 * with ops tables, MSI-X, MSI and INTx, and the DMA/IRQ interface devices
 * use.  A transport (hw/vfio-user) installs a PCITransportOps table when a
 * client attaches; hw/pci never includes the transport.
 */
#ifndef HW_PCI_PCI_H
#define HW_PCI_PCI_H

#include "util/osdep.h"
#include "hw/core/device.h"
#include "hw/pci/pci-regs.h"

typedef struct PCIDevice PCIDevice;

/* MMIO / PIO handlers.  @size is 1, 2, 4 or 8; @addr is BAR-relative. */
typedef struct PCIBarOps {
    uint64_t (*read)(void *opaque, uint64_t addr, unsigned size);
    void (*write)(void *opaque, uint64_t addr, uint64_t val, unsigned size);
} PCIBarOps;

enum {
    PCI_BAR_MEM32 = 0,
    PCI_BAR_IO = PCI_BASE_ADDRESS_SPACE_IO,
    PCI_BAR_MEM64 = PCI_BASE_ADDRESS_MEM_TYPE_64,
    PCI_BAR_PREFETCH = PCI_BASE_ADDRESS_MEM_PREFETCH,
};

#define PCI_BAR_MAX_SPARSE 4

/* A range of a BAR backed by host memory the client may mmap. */
typedef struct PCIBarSparse {
    uint64_t offset, size;
} PCIBarSparse;

typedef struct PCIBar {
    uint64_t size;              /* 0 = not implemented; power of two */
    uint8_t type;               /* PCI_BAR_* bits */
    const PCIBarOps *ops;
    void *opaque;
    /* Optional: a memfd backing the whole BAR; sparse areas are mmap-able. */
    int mem_fd;
    uint8_t *mem;
    /*
     * Live upgrade: @mem came from the old process and the client maps
     * it: it is live, neither cleared at realize nor loaded from a state
     * stream, until pci_bar_mem_adopt_done().
     */
    bool adopted;
    unsigned nr_sparse;
    PCIBarSparse sparse[PCI_BAR_MAX_SPARSE];
} PCIBar;

typedef enum {
    PCI_IRQ_NONE = 0,
    PCI_IRQ_INTX,
    PCI_IRQ_MSI,
    PCI_IRQ_MSIX,
} PCIIrqMode;

/* Interrupt kinds, numbered as VFIO's irq indices. */
enum {
    PCI_IRQ_INDEX_INTX = 0,
    PCI_IRQ_INDEX_MSI = 1,
    PCI_IRQ_INDEX_MSIX = 2,
    PCI_IRQ_INDEX_ERR = 3,
    PCI_IRQ_INDEX_REQ = 4,
    PCI_IRQ_INDEX_COUNT
};

#define PCI_MSIX_MAX_VECTORS 2048
#define PCI_MSI_MAX_VECTORS 32

/* A copy through the transport finished: 0 or -errno. */
typedef void PCIDmaDone(void *opaque, int ret);

/* What the transport provides to the device. */
typedef struct PCITransportOps {
    /*
     * Host pointer for guest [addr, addr + len) when it lies in one directly
     * mapped region with the needed permission; *plen is how much of it is
     * contiguous there (<= len).  NULL when not mapped (or mapped without
     * an fd, in which case dma_rw must be used).
     */
    void *(*dma_map)(void *t, uint64_t addr, uint64_t len, bool is_write,
                     uint64_t *plen);
    /*
     * Start a copy through the transport (the slow path: memory the
     * client lends by messages only).  @done(@opaque, ret) runs later on
     * the device's loop, never inside this call, unless dma_rw_cancel()
     * forgot it first.  0 when started; -errno when it could not start
     * (then @done never runs).
     */
    int (*dma_rw_start)(void *t, uint64_t addr, void *buf, uint64_t len,
                        bool is_write, PCIDmaDone *done, void *opaque);
    void (*dma_rw_cancel)(void *t, void *opaque);
    /* True when some guest memory is reached by messages only. */
    bool (*dma_has_msg_regions)(void *t);
    /* Signal interrupt @index vector @vector (eventfd write). */
    void (*irq_signal)(void *t, unsigned index, unsigned vector);
    /* The device holds no more pointers into guest memory. */
    void (*dma_idle)(void *t);
} PCITransportOps;

/* How a device describes itself to pci_device_init(). */
typedef struct PCIDeviceInfo {
    uint16_t vendor_id, device_id;
    uint16_t subsystem_vendor_id, subsystem_id;
    uint8_t revision;
    uint32_t class_code;        /* 24 bits: base, sub, prog-if */
    bool express;               /* 4 KiB config space + PCIe capability */
    uint8_t interrupt_pin;      /* 1 = INTA, 0 = none */
} PCIDeviceInfo;

struct PCIDevice {
    Device dev;

    /* Transport configuration (properties common to PCI devices). */
    char *socket;               /* listening socket path */
    char *fd;                   /* inherited socket fd number, or NULL */
    int dma_rw_layout;          /* 0 = qemu, 1 = spec */

    uint8_t *config;            /* current values */
    uint8_t *wmask;             /* bits the guest may write */
    uint8_t *w1cmask;           /* bits the guest clears by writing 1 */
    uint32_t config_size;
    uint8_t cap_next;           /* where the next capability goes */
    uint16_t ext_cap_next;
    uint16_t ext_cap_last;

    PCIBar bars[PCI_NUM_BARS];

    /* Device hook: runs after a config write was applied. */
    void (*config_write)(PCIDevice *pdev, uint32_t addr, uint32_t val,
                         unsigned len);

    /* MSI-X: table and PBA live in a BAR. */
    uint8_t msix_cap;           /* config offset, 0 = none */
    uint16_t msix_nvec;
    uint8_t msix_table_bar, msix_pba_bar;
    uint32_t msix_table_off, msix_pba_off;
    uint8_t *msix_table;        /* nvec * 16 bytes */
    unsigned long *msix_pending;    /* PBA bits */

    uint8_t msi_cap;            /* config offset, 0 = none */
    uint8_t pm_cap, exp_cap;

    /* Interrupt state, VFIO model: the mode follows SET_IRQS. */
    PCIIrqMode irq_mode;
    unsigned irq_count[PCI_IRQ_INDEX_COUNT];    /* vectors wired */
    unsigned long *irq_masked;  /* per vector of the current mode */
    unsigned long *irq_pending; /* raised while masked */
    bool intx_level;            /* device asserts INTx */
    bool intx_masked;           /* masked by the client (SET_IRQS) */

    /* Transport, when a client is attached. */
    const PCITransportOps *tops;
    void *transport;
};

/* Properties every PCI device has: socket=, fd=, dma-rw-layout=. */
extern const PropDef pci_common_props[];

/* Set up config space and identity; call first in realize. */
void pci_device_init(PCIDevice *pdev, const PCIDeviceInfo *info);
/* Free what pci_device_init and the helpers below allocated. */
void pci_device_cleanup(PCIDevice *pdev);
/* Reset PCI state: command, status, BAR addresses, MSI/MSI-X, pending. */
void pci_device_reset(PCIDevice *pdev);

/* Declare BAR @idx (size is rounded up to a power of two, >= 16). */
void pci_register_bar(PCIDevice *pdev, unsigned idx, uint8_t type,
                      uint64_t size, const PCIBarOps *ops, void *opaque);
/*
 * Back BAR @idx with host memory (a memfd) and offer [off, off+size) to the
 * client as an mmap-able sparse area.  Returns the host pointer.
 */
uint8_t *pci_bar_add_sparse_mmap(PCIDevice *pdev, unsigned idx,
                                 uint64_t off, uint64_t size, GError **errp);

/*
 * Live upgrade: BAR @bar of device @dev_id, once realized, uses the memfd
 * @fd (taken) instead of a new one.  pci_bar_mem_adopted() tells a device
 * not to clear that memory (its realize resets); the transport calls
 * pci_bar_mem_adopt_done() once the state is loaded.
 */
void pci_bar_mem_adopt(const char *dev_id, unsigned bar, int fd);
static inline bool pci_bar_mem_adopted(PCIDevice *pdev, unsigned bar)
{
    return pdev->bars[bar].adopted;
}
void pci_bar_mem_adopt_done(PCIDevice *pdev);

/* Capabilities; each returns its config offset. */
uint8_t pci_add_capability(PCIDevice *pdev, uint8_t id, uint8_t size);
uint8_t pci_add_pm_cap(PCIDevice *pdev);
uint8_t pci_add_express_cap(PCIDevice *pdev);
uint8_t pci_add_msi_cap(PCIDevice *pdev, unsigned nvec, bool is64,
                        bool maskable);
/* MSI-X with @nvec vectors; table and PBA at the given BAR offsets. */
uint8_t pci_add_msix_cap(PCIDevice *pdev, unsigned nvec,
                         unsigned table_bar, uint32_t table_off,
                         unsigned pba_bar, uint32_t pba_off);
/* Add an extended capability (PCIe config space only). */
uint16_t pci_add_ext_capability(PCIDevice *pdev, uint16_t id, uint8_t ver,
                                uint16_t size);
/* Mark a config range writable / write-1-to-clear. */
void pci_set_wmask(PCIDevice *pdev, uint32_t off, unsigned len, uint64_t m);
void pci_set_w1cmask(PCIDevice *pdev, uint32_t off, unsigned len,
                     uint64_t m);

/* Config accessors for the transport (bounds are the caller's). */
uint32_t pci_config_read(PCIDevice *pdev, uint32_t addr, unsigned len);
void pci_config_write(PCIDevice *pdev, uint32_t addr, uint32_t val,
                      unsigned len);
/*
 * BAR access from the transport: routes MSI-X table/PBA, sparse memory and
 * the device's ops.  Honours the command register's memory/IO enables
 * (reads return all-ones when disabled).  Returns false when @addr+@size is
 * outside the BAR.
 */
bool pci_bar_read(PCIDevice *pdev, unsigned bar, uint64_t addr, void *buf,
                  unsigned size);
bool pci_bar_write(PCIDevice *pdev, unsigned bar, uint64_t addr,
                   const void *buf, unsigned size);

/* Raw config helpers for devices. */
static inline uint16_t pci_get_word(const uint8_t *p) { return lduw_le_p(p); }
static inline uint32_t pci_get_long(const uint8_t *p) { return ldl_le_p(p); }
static inline void pci_set_word(uint8_t *p, uint16_t v) { stw_le_p(p, v); }
static inline void pci_set_long(uint8_t *p, uint32_t v) { stl_le_p(p, v); }

static inline bool pci_bus_master_enabled(PCIDevice *pdev)
{
    return pci_get_word(pdev->config + PCI_COMMAND) & PCI_COMMAND_MASTER;
}

/* ---- DMA: guest memory, through the transport ---- */

/*
 * pci_dma_read/write copy to and from guest memory: directly where the
 * client shared it, else by messages, which parks the calling work item
 * until the reply (see hw/core/device.h): call them from work items only.
 * In a work item that a reset cancelled, every DMA fails (-ECANCELED).
 *
 * Host pointer to guest [addr, addr+len) if it is directly mapped in one
 * piece with the needed permission and bus mastering is on; else NULL.
 */
void *pci_dma_map(PCIDevice *pdev, uint64_t addr, uint64_t len,
                  bool is_write);
/*
 * Copy to/from guest memory; 0, -EFAULT (unmapped, no bus master),
 * -ECANCELED (a reset), or the transport's error.
 */
int pci_dma_read(PCIDevice *pdev, uint64_t addr, void *buf, uint64_t len);
int pci_dma_write(PCIDevice *pdev, uint64_t addr, const void *buf,
                  uint64_t len);
/*
 * Append iovecs for guest [addr, addr+len) to @iov (at *niov, at most
 * @max entries), splitting at mapping boundaries.  0, -EFAULT when any part
 * is not directly mapped (then bounce with pci_dma_read/write: the client
 * may lend that memory through messages only), -ENOSPC when @max is too
 * small.
 */
int pci_dma_iov(PCIDevice *pdev, uint64_t addr, uint64_t len, bool is_write,
                struct iovec *iov, unsigned max, unsigned *niov);

/*
 * Devices count requests that hold guest-memory pointers: a DMA_UNMAP and
 * a reset wait until the last one is released.
 */
static inline void pci_dma_hold(PCIDevice *pdev)
{
    device_hold(&pdev->dev);
}

static inline void pci_dma_release(PCIDevice *pdev)
{
    device_release(&pdev->dev);
    if (pdev->dev.inflight == 0 && pdev->tops && pdev->tops->dma_idle) {
        pdev->tops->dma_idle(pdev->transport);
    }
}

static inline unsigned pci_dma_inflight(PCIDevice *pdev)
{
    return pdev->dev.inflight;
}

/*
 * True when a DMA of this device may have to park (some guest memory is
 * reached by messages only): a caller outside the worker that hands it
 * borrowed buffers (a frame) copies them first.
 */
static inline bool pci_dma_may_park(PCIDevice *pdev)
{
    return pdev->tops && pdev->tops->dma_has_msg_regions &&
           pdev->tops->dma_has_msg_regions(pdev->transport);
}

/* ---- Interrupts ---- */

/*
 * Raise MSI-X or MSI vector @vector, whichever mode the client set up.
 * Masked (SET_IRQS MASK) vectors become pending and fire on unmask.  In
 * INTx mode (or with nothing wired) this is a no-op: use pci_set_irq.
 */
void pci_irq_notify(PCIDevice *pdev, unsigned vector);
/* Drive the INTx line: level semantics. */
void pci_set_irq(PCIDevice *pdev, bool level);
/* True when the client wired MSI-X (or MSI) vectors. */
static inline bool pci_msix_enabled(PCIDevice *pdev)
{
    return pdev->irq_mode == PCI_IRQ_MSIX;
}
static inline bool pci_msi_enabled(PCIDevice *pdev)
{
    return pdev->irq_mode == PCI_IRQ_MSI;
}

/* Called by the transport on SET_IRQS. */
void pci_irq_set_mode(PCIDevice *pdev, PCIIrqMode mode, unsigned count);
void pci_irq_mask(PCIDevice *pdev, unsigned index, unsigned vector,
                  bool mask);
bool pci_msix_is_pending(PCIDevice *pdev, unsigned vector);

/* Forget the client's interrupt wiring (mode, masks, pending). */
void pci_irq_reset(PCIDevice *pdev);

/* Transport attach / detach. */
void pci_transport_attach(PCIDevice *pdev, const PCITransportOps *ops,
                          void *t);
void pci_transport_detach(PCIDevice *pdev);

/* ---- State (hw/pci/state.c): live migration and upgrade ---- */

/* Does @pdev's type save and load its state? */
bool pci_state_supported(PCIDevice *pdev);
/*
 * The whole function's state stream (util/savestate.h): identity, PCI
 * state, then the type's sections.  @pdev is STOPPED.
 */
GBytes *pci_save_state(PCIDevice *pdev);
/* The same without the BAR memory the client maps (a live upgrade: that
 * memory itself goes to the new process). */
GBytes *pci_save_state_live(PCIDevice *pdev);
/*
 * Load a stream pci_save_state() wrote into @pdev (STOPPED, realized
 * with the same properties).  False, with why, when it does not fit;
 * then the device's state is undefined until it is reset.
 */
bool pci_load_state(PCIDevice *pdev, GBytes *data, GError **errp);

static inline PCIDevice *PCI_DEVICE(Device *dev)
{
    g_assert(dev->cls->is_pci);
    return (PCIDevice *)dev;
}

#endif
