/*
 * pci-testdev: registers, a DMA engine copying between guest memory and a
 * BAR2 buffer, MSI-X with two vectors and INTx.  It exercises the PCI core
 * and the transport end to end; the register map is pci-testdev-regs.h.
 */
#include "hw/pci/pci.h"
#include "hw/misc/pci-testdev-regs.h"
#include "hw/misc/trace.h"
#include "util/savestate.h"

typedef struct TestDev {
    PCIDevice pdev;

    uint32_t scratch;
    uint64_t reg64;
    uint64_t dma_addr;
    uint32_t dma_len, dma_dir, dma_buf_off, dma_status, dma_count;
    bool dma_busy;
    uint32_t int_status, int_mask;
    uint8_t *mem;               /* BAR2, host memory shared via mmap */
    DeviceBH *dma_bh;
} TestDev;

static const DeviceClass testdev_class;
#define TESTDEV(dev) ((TestDev *)device_check((dev), &testdev_class))

static void testdev_update_irq(TestDev *t)
{
    pci_set_irq(&t->pdev, (t->int_status & t->int_mask) != 0);
}

static void testdev_raise(TestDev *t, uint32_t bits, unsigned vector)
{
    t->int_status |= bits;
    if (pci_msix_enabled(&t->pdev) || pci_msi_enabled(&t->pdev)) {
        if (bits & t->int_mask) {
            pci_irq_notify(&t->pdev, vector);
        }
    } else {
        testdev_update_irq(t);
    }
}

/*
 * Work: runs after the MMIO write that started it, never inside it.  With
 * guest memory reached by messages it parks until the client answers.
 */
static void testdev_dma_run(void *opaque)
{
    TestDev *t = opaque;
    int r;

    trace_testdev_dma(t->pdev.dev.id, t->dma_addr, t->dma_len, t->dma_dir,
                      t->dma_buf_off);
    if (!range_within(t->dma_buf_off, t->dma_len, TESTDEV_MEM_SIZE) ||
        t->dma_dir > TESTDEV_DMA_FROM_DEVICE) {
        r = -EINVAL;
    } else if (t->dma_dir == TESTDEV_DMA_TO_DEVICE) {
        r = pci_dma_read(&t->pdev, t->dma_addr, t->mem + t->dma_buf_off,
                         t->dma_len);
    } else {
        r = pci_dma_write(&t->pdev, t->dma_addr, t->mem + t->dma_buf_off,
                          t->dma_len);
    }
    if (r == -ECANCELED) {
        return;                 /* a reset: it sets everything below */
    }
    t->dma_busy = false;
    t->dma_status = -r;
    t->dma_count++;
    if (r < 0) {
        trace_testdev_err_dma(t->pdev.dev.id, t->dma_addr, t->dma_len, r);
        testdev_raise(t, TESTDEV_INT_DMA_ERROR, 0);
    } else {
        testdev_raise(t, TESTDEV_INT_DMA_DONE, 0);
    }
}

static uint64_t testdev_read(void *opaque, uint64_t addr, unsigned size)
{
    TestDev *t = opaque;

    if (addr == TESTDEV_REG_REG64 && size == 8) {
        return t->reg64;
    }
    if (size != 4) {
        trace_testdev_err_bad_reg(t->pdev.dev.id, addr, size);
        return 0;
    }
    switch (addr) {
    case TESTDEV_REG_ID:
        return TESTDEV_ID_VALUE;
    case TESTDEV_REG_SCRATCH:
        return t->scratch;
    case TESTDEV_REG_DMA_ADDR_LO:
        return (uint32_t)t->dma_addr;
    case TESTDEV_REG_DMA_ADDR_HI:
        return t->dma_addr >> 32;
    case TESTDEV_REG_DMA_LEN:
        return t->dma_len;
    case TESTDEV_REG_DMA_DIR:
        return t->dma_dir;
    case TESTDEV_REG_DMA_BUF_OFF:
        return t->dma_buf_off;
    case TESTDEV_REG_DMA_START:
        return t->dma_busy;
    case TESTDEV_REG_INT_STATUS:
        return t->int_status;
    case TESTDEV_REG_DMA_STATUS:
        return t->dma_status;
    case TESTDEV_REG_DMA_COUNT:
        return t->dma_count;
    case TESTDEV_REG_INT_MASK:
        return t->int_mask;
    case TESTDEV_REG_REG64:
        return (uint32_t)t->reg64;
    case TESTDEV_REG_REG64 + 4:
        return t->reg64 >> 32;
    }
    return 0;
}

static void testdev_write(void *opaque, uint64_t addr, uint64_t val,
                          unsigned size)
{
    TestDev *t = opaque;

    if (addr == TESTDEV_REG_REG64 && size == 8) {
        t->reg64 = val;
        return;
    }
    if (size != 4) {
        trace_testdev_err_bad_reg(t->pdev.dev.id, addr, size);
        return;
    }
    switch (addr) {
    case TESTDEV_REG_SCRATCH:
        t->scratch = val;
        break;
    case TESTDEV_REG_DMA_ADDR_LO:
        t->dma_addr = (t->dma_addr & ~0xffffffffULL) | (uint32_t)val;
        break;
    case TESTDEV_REG_DMA_ADDR_HI:
        t->dma_addr = (t->dma_addr & 0xffffffffULL) | (val << 32);
        break;
    case TESTDEV_REG_DMA_LEN:
        t->dma_len = val;
        break;
    case TESTDEV_REG_DMA_DIR:
        t->dma_dir = val;
        break;
    case TESTDEV_REG_DMA_BUF_OFF:
        t->dma_buf_off = val;
        break;
    case TESTDEV_REG_DMA_START:
        if ((val & 1) && !t->dma_busy) {
            t->dma_busy = true;
            device_bh_schedule(t->dma_bh);
        }
        break;
    case TESTDEV_REG_INT_ACK:
        t->int_status &= ~(uint32_t)val;
        testdev_update_irq(t);
        break;
    case TESTDEV_REG_INT_RAISE:
        testdev_raise(t, TESTDEV_INT_SOFT, val & 1);
        break;
    case TESTDEV_REG_INT_MASK:
        t->int_mask = val & 7;
        testdev_update_irq(t);
        break;
    case TESTDEV_REG_REG64:
        t->reg64 = (t->reg64 & ~0xffffffffULL) | (uint32_t)val;
        break;
    case TESTDEV_REG_REG64 + 4:
        t->reg64 = (t->reg64 & 0xffffffffULL) | (val << 32);
        break;
    default:
        trace_testdev_err_bad_reg(t->pdev.dev.id, addr, size);
        break;
    }
}

static const PCIBarOps testdev_ops = {
    .read = testdev_read,
    .write = testdev_write,
};

static void testdev_reset(Device *dev, DeviceResetKind kind)
{
    TestDev *t = TESTDEV(dev);

    device_bh_cancel(t->dma_bh);
    t->scratch = 0;
    t->reg64 = 0;
    t->dma_addr = 0;
    t->dma_len = t->dma_dir = t->dma_buf_off = 0;
    t->dma_status = t->dma_count = 0;
    t->dma_busy = false;
    t->int_status = 0;
    t->int_mask = TESTDEV_INT_DMA_DONE | TESTDEV_INT_DMA_ERROR |
                  TESTDEV_INT_SOFT;
    if (!pci_bar_mem_adopted(&t->pdev, TESTDEV_BAR_MEM)) {
        memset(t->mem, 0, TESTDEV_MEM_SIZE);    /* live if adopted */
    }
    pci_device_reset(&t->pdev);
}

static void testdev_save_state(Device *dev, StateWriter *w)
{
    TestDev *t = TESTDEV(dev);

    state_begin(w, "pci-testdev", 1);
    state_put_u32(w, "scratch", t->scratch);
    state_put_u64(w, "reg64", t->reg64);
    state_put_u64(w, "dma-addr", t->dma_addr);
    state_put_u32(w, "dma-len", t->dma_len);
    state_put_u32(w, "dma-dir", t->dma_dir);
    state_put_u32(w, "dma-buf-off", t->dma_buf_off);
    state_put_u32(w, "dma-status", t->dma_status);
    state_put_u32(w, "dma-count", t->dma_count);
    state_put_bool(w, "dma-busy", t->dma_busy);
    state_put_u32(w, "int-status", t->int_status);
    state_put_u32(w, "int-mask", t->int_mask);
    state_end(w);
}

static bool testdev_load_state(Device *dev, StateReader *r, GError **errp)
{
    TestDev *t = TESTDEV(dev);
    StateSection *s = state_section(r, "pci-testdev", 1, NULL, errp);

    if (!s) {
        return false;
    }
    t->scratch = state_get_u32(s, "scratch");
    t->reg64 = state_get_u64(s, "reg64");
    t->dma_addr = state_get_u64(s, "dma-addr");
    t->dma_len = state_get_u32(s, "dma-len");
    t->dma_dir = state_get_u32(s, "dma-dir");
    t->dma_buf_off = state_get_u32(s, "dma-buf-off");
    t->dma_status = state_get_u32(s, "dma-status");
    t->dma_count = state_get_u32(s, "dma-count");
    t->dma_busy = state_get_bool(s, "dma-busy");
    t->int_status = state_get_u32(s, "int-status");
    t->int_mask = state_get_u32(s, "int-mask") & 7;
    if (!state_section_end(s, errp)) {
        return false;
    }
    if (t->dma_busy) {
        device_bh_schedule(t->dma_bh);      /* runs once started */
    }
    return true;
}

static bool testdev_realize(Device *dev, GError **errp)
{
    TestDev *t = TESTDEV(dev);
    PCIDevice *pdev = &t->pdev;
    static const PCIDeviceInfo info = {
        .vendor_id = TESTDEV_VENDOR_ID,
        .device_id = TESTDEV_DEVICE_ID,
        .class_code = TESTDEV_CLASS,
        .express = true,
        .interrupt_pin = 1,
    };

    pci_device_init(pdev, &info);
    pci_register_bar(pdev, TESTDEV_BAR_REGS, PCI_BAR_MEM32,
                     TESTDEV_REGS_SIZE, &testdev_ops, t);
    pci_register_bar(pdev, TESTDEV_BAR_MSIX, PCI_BAR_MEM32,
                     TESTDEV_MSIX_SIZE, NULL, NULL);
    pci_register_bar(pdev, TESTDEV_BAR_MEM, PCI_BAR_MEM64 | PCI_BAR_PREFETCH,
                     TESTDEV_MEM_SIZE, NULL, NULL);
    t->mem = pci_bar_add_sparse_mmap(pdev, TESTDEV_BAR_MEM, 0,
                                     TESTDEV_MEM_MMAP_SIZE, errp);
    if (!t->mem) {
        pci_device_cleanup(pdev);
        return false;
    }
    pci_add_pm_cap(pdev);
    pci_add_msix_cap(pdev, TESTDEV_MSIX_VECTORS, TESTDEV_BAR_MSIX, 0,
                     TESTDEV_BAR_MSIX, TESTDEV_MSIX_PBA_OFF);
    t->dma_bh = device_bh_new(dev, testdev_dma_run, t);
    testdev_reset(dev, DEVICE_RESET_FUNCTION);
    return true;
}

static void testdev_unrealize(Device *dev)
{
    TestDev *t = TESTDEV(dev);

    device_bh_delete(t->dma_bh);
    pci_device_cleanup(&t->pdev);
}

static const DeviceClass testdev_class = {
    .name = "pci-testdev",
    .desc = "PCI test device: registers, DMA engine, MSI-X and INTx",
    .instance_size = sizeof(TestDev),
    .is_pci = true,
    .base_props = pci_common_props,
    .realize = testdev_realize,
    .unrealize = testdev_unrealize,
    .reset = testdev_reset,
    .save_state = testdev_save_state,
    .load_state = testdev_load_state,
};

static void __attribute__((constructor)) testdev_register(void)
{
    device_class_register(&testdev_class);
}
