/*
 * Unit tests for hw/pci/pci.c: configuration space write masks, BAR
 * sizing and access, the capability list, MSI-X / MSI / INTx delivery
 * through a fake transport, reset, and DMA through a fake transport.
 */
#include <check.h>
#include "unit-loop.h"
#include "util/coroutine.h"

#include "hw/pci/pci.h"

/* ---- a device of our own ------------------------------------------------ */

#define T_VENDOR        0x1234
#define T_DEVICE        0x5678
#define T_SUBVENDOR     0xabcd
#define T_SUBSYS        0x0042
#define T_REVISION      0x07
#define T_CLASS         0x020000        /* ethernet controller */

#define T_BAR_REGS      0               /* mem32, 4 KiB, ops */
#define T_BAR_MSIX      1               /* mem32, 4 KiB: table 0, PBA 0x800 */
#define T_BAR_MEM       2               /* mem64 + prefetch, 1 MiB (2+3) */
#define T_BAR_IO        4               /* io, 32 bytes, ops */
#define T_REGS_SIZE     0x1000
#define T_MSIX_SIZE     0x1000
#define T_PBA_OFF       0x800
#define T_MEM_SIZE      0x100000
#define T_IO_SIZE       0x20
#define T_MSIX_NVEC     4
#define T_MSI_NVEC      4

#define MAX_LOG 32

typedef struct BarAccess {
    bool is_write;
    uint64_t addr;
    unsigned size;
    uint64_t val;
} BarAccess;

typedef struct TestPCI {
    PCIDevice pdev;
    unsigned nr_access;
    BarAccess log[MAX_LOG];
    uint64_t read_val;          /* what the ops read returns */
} TestPCI;

/* ---- the fake transport ---- */

typedef struct FakeRegion {
    uint64_t gpa, len;
    uint8_t *host;
    bool read_only;
} FakeRegion;

typedef struct FakeSignal {
    unsigned index, vector;
} FakeSignal;

typedef struct FakeTransport {
    unsigned nr_signals;
    FakeSignal sig[MAX_LOG];

    FakeRegion region[4];
    unsigned nr_regions;
    unsigned nr_map_calls;

    unsigned nr_rw_calls;
    uint64_t rw_addr, rw_len;
    bool rw_is_write;
    int rw_ret;                 /* what the copy completes with */
    uint8_t rw_fill;            /* on success, reads are filled with this */
    void *rw_buf;
    PCIDmaDone *rw_done;        /* the copy in flight */
    void *rw_opaque;
    bool rw_hold;               /* do not answer (the client withholds) */
    unsigned nr_cancels;

    unsigned nr_idle;
} FakeTransport;

static TestPCI *t;
static FakeTransport ft;
static uint8_t guest_buf[0x2000];  /* guest 0x1000..0x3000 */

static uint64_t t_read(void *opaque, uint64_t addr, unsigned size)
{
    TestPCI *d = opaque;

    ck_assert_uint_lt(d->nr_access, MAX_LOG);
    d->log[d->nr_access++] = (BarAccess) { false, addr, size, 0 };
    return d->read_val;
}

static void t_write(void *opaque, uint64_t addr, uint64_t val, unsigned size)
{
    TestPCI *d = opaque;

    ck_assert_uint_lt(d->nr_access, MAX_LOG);
    d->log[d->nr_access++] = (BarAccess) { true, addr, size, val };
}

static const PCIBarOps t_ops = {
    .read = t_read,
    .write = t_write,
};

static void *fake_dma_map(void *opaque, uint64_t addr, uint64_t len,
                          bool is_write, uint64_t *plen)
{
    FakeTransport *f = opaque;

    f->nr_map_calls++;
    for (unsigned i = 0; i < f->nr_regions; i++) {
        FakeRegion *r = &f->region[i];

        if (addr >= r->gpa && addr - r->gpa < r->len) {
            if (is_write && r->read_only) {
                return NULL;
            }
            *plen = MIN(len, r->len - (addr - r->gpa));
            return r->host + (addr - r->gpa);
        }
    }
    return NULL;
}

/* The slow path answers on the next loop iteration, as a client would. */
static void fake_dma_rw_reply(void *opaque)
{
    FakeTransport *f = opaque;
    PCIDmaDone *done = f->rw_done;

    if (!done) {
        return;                 /* cancelled meanwhile */
    }
    f->rw_done = NULL;
    if (f->rw_ret == 0 && !f->rw_is_write) {
        memset(f->rw_buf, f->rw_fill, f->rw_len);
    }
    done(f->rw_opaque, f->rw_ret);
}

static int fake_dma_rw_start(void *opaque, uint64_t addr, void *buf,
                             uint64_t len, bool is_write, PCIDmaDone *done,
                             void *cb_opaque)
{
    FakeTransport *f = opaque;

    f->nr_rw_calls++;
    f->rw_addr = addr;
    f->rw_len = len;
    f->rw_is_write = is_write;
    f->rw_buf = buf;
    f->rw_done = done;
    f->rw_opaque = cb_opaque;
    if (!f->rw_hold) {
        loop_post(loop_main(), fake_dma_rw_reply, f);
    }
    return 0;
}

static void fake_dma_rw_cancel(void *opaque, void *cb_opaque)
{
    FakeTransport *f = opaque;

    f->nr_cancels++;
    f->rw_done = NULL;
}

static void fake_irq_signal(void *opaque, unsigned index, unsigned vector)
{
    FakeTransport *f = opaque;

    ck_assert_uint_lt(f->nr_signals, MAX_LOG);
    f->sig[f->nr_signals++] = (FakeSignal) { index, vector };
}

static void fake_dma_idle(void *opaque)
{
    FakeTransport *f = opaque;

    f->nr_idle++;
}

static const PCITransportOps fake_ops = {
    .dma_map = fake_dma_map,
    .dma_rw_start = fake_dma_rw_start,
    .dma_rw_cancel = fake_dma_rw_cancel,
    .irq_signal = fake_irq_signal,
    .dma_idle = fake_dma_idle,
};

static void fake_add_region(uint64_t gpa, uint64_t len, uint8_t *host,
                            bool read_only)
{
    ck_assert_uint_lt(ft.nr_regions, ARRAY_SIZE(ft.region));
    ft.region[ft.nr_regions++] = (FakeRegion) { gpa, len, host, read_only };
}

static unsigned t_resets;

static void t_reset(Device *dev, DeviceResetKind kind)
{
    t_resets++;
}

static const DeviceClass t_class = {
    .name = "test-pci",
    .instance_size = sizeof(TestPCI),
    .reset = t_reset,
};

/* ---- fixture ---- */

static void t_build(TestPCI *d)
{
    static const PCIDeviceInfo info = {
        .vendor_id = T_VENDOR,
        .device_id = T_DEVICE,
        .subsystem_vendor_id = T_SUBVENDOR,
        .subsystem_id = T_SUBSYS,
        .revision = T_REVISION,
        .class_code = T_CLASS,
        .interrupt_pin = 1,
    };
    PCIDevice *pdev = &d->pdev;

    pci_device_init(pdev, &info);
    pci_register_bar(pdev, T_BAR_REGS, PCI_BAR_MEM32, T_REGS_SIZE, &t_ops, d);
    pci_register_bar(pdev, T_BAR_MSIX, PCI_BAR_MEM32, T_MSIX_SIZE, NULL,
                     NULL);
    pci_register_bar(pdev, T_BAR_MEM, PCI_BAR_MEM64 | PCI_BAR_PREFETCH,
                     T_MEM_SIZE, NULL, NULL);
    pci_register_bar(pdev, T_BAR_IO, PCI_BAR_IO, T_IO_SIZE, &t_ops, d);
    pci_add_pm_cap(pdev);
    pci_add_msi_cap(pdev, T_MSI_NVEC, true, true);
    pci_add_msix_cap(pdev, T_MSIX_NVEC, T_BAR_MSIX, 0, T_BAR_MSIX,
                     T_PBA_OFF);
    pci_device_reset(pdev);
}

static void setup(void)
{
    memset(&ft, 0, sizeof(ft));
    ft.rw_ret = -EFAULT;
    memset(guest_buf, 0, sizeof(guest_buf));
    t = g_new0(TestPCI, 1);
    t->pdev.dev.id = (char *)"t0";
    t->pdev.dev.cls = &t_class;
    t->pdev.dev.loop = loop_main();
    t_resets = 0;
    t_build(t);
    pci_transport_attach(&t->pdev, &fake_ops, &ft);
}

static void teardown(void)
{
    /* What hw/core made for it (device_destroy frees them likewise). */
    loop_bh_delete(t->pdev.dev.reset_bh);
    coroutine_free(t->pdev.dev.worker);
    pci_device_cleanup(&t->pdev);
    g_clear_pointer(&t, g_free);
}

/* ---- DMA from device work ---- */

typedef struct DmaCall {
    bool write;
    uint64_t addr;
    void *buf;
    uint64_t len;
    int ret, ret2;
    bool done;
} DmaCall;

static void dma_call_work(void *opaque)
{
    DmaCall *c = opaque;

    c->ret = c->write ? pci_dma_write(&t->pdev, c->addr, c->buf, c->len)
                      : pci_dma_read(&t->pdev, c->addr, c->buf, c->len);
    /* A second DMA in the same item, to directly mapped memory. */
    c->ret2 = pci_dma_read(&t->pdev, 0x1000, guest_buf + 0x100, 1);
    c->done = true;
}

/*
 * pci_dma_read/write as device work does them: in the worker, with the
 * loop running (the slow path's replies come from it) until it is done.
 */
static int work_dma(bool write, uint64_t addr, void *buf, uint64_t len)
{
    DmaCall c = { write, addr, buf, len };

    ck_assert(device_run_now(&t->pdev.dev, dma_call_work, &c) !=
              DEVICE_RUN_BUSY);
    while (!c.done) {
        loop_iterate(loop_main(), true);
    }
    return c.ret;
}

static int work_read(uint64_t addr, void *buf, uint64_t len)
{
    return work_dma(false, addr, buf, len);
}

static int work_write(uint64_t addr, const void *buf, uint64_t len)
{
    return work_dma(true, addr, (void *)buf, len);
}

/* ---- helpers ---- */

static uint32_t cfg_rd(uint32_t addr, unsigned len)
{
    return pci_config_read(&t->pdev, addr, len);
}

static void cfg_wr(uint32_t addr, uint32_t val, unsigned len)
{
    pci_config_write(&t->pdev, addr, val, len);
}

static uint16_t cmd_rd(void)
{
    return cfg_rd(PCI_COMMAND, 2);
}

static uint16_t status_rd(void)
{
    return cfg_rd(PCI_STATUS, 2);
}

static void cmd_set(uint16_t bits)
{
    cfg_wr(PCI_COMMAND, cmd_rd() | bits, 2);
}

static void cmd_clear(uint16_t bits)
{
    cfg_wr(PCI_COMMAND, cmd_rd() & ~bits, 2);
}

/* Write all-ones to every byte of [addr, addr+len) and check nothing moved. */
static void assert_config_ro(uint32_t addr, unsigned len)
{
    uint8_t before[16];

    ck_assert_uint_le(len, sizeof(before));
    memcpy(before, t->pdev.config + addr, len);
    for (unsigned i = 0; i < len; i++) {
        cfg_wr(addr + i, 0xff, 1);
        cfg_wr(addr + i, 0x00, 1);
    }
    for (unsigned i = 0; i + 4 <= len; i += 4) {
        cfg_wr(addr + i, 0xffffffff, 4);
    }
    ck_assert_msg(memcmp(before, t->pdev.config + addr, len) == 0,
                  "config 0x%x+%u changed by a write", addr, len);
}

static void assert_signal(unsigned i, unsigned index, unsigned vector)
{
    ck_assert_uint_gt(ft.nr_signals, i);
    ck_assert_uint_eq(ft.sig[i].index, index);
    ck_assert_uint_eq(ft.sig[i].vector, vector);
}

static uint64_t pba_read(unsigned size, uint32_t off)
{
    uint64_t v = 0;

    ck_assert(pci_bar_read(&t->pdev, T_BAR_MSIX, T_PBA_OFF + off, &v, size));
    return v;
}

/* Walk the capability list; returns the count, fills ids/offsets. */
static unsigned cap_walk(uint8_t *ids, uint8_t *offs, unsigned max)
{
    unsigned n = 0;
    uint8_t off = cfg_rd(PCI_CAPABILITY_LIST, 1);

    while (off) {
        ck_assert_msg(n < max, "capability list does not terminate");
        ck_assert_uint_ge(off, 0x40);
        ck_assert_uint_eq(off & 3, 0);
        ids[n] = cfg_rd(off, 1);
        offs[n] = off;
        n++;
        off = cfg_rd(off + 1, 1);
    }
    return n;
}

/* ---- identity and read-only fields -------------------------------------- */

START_TEST(test_identity)
{
    ck_assert_uint_eq(cfg_rd(PCI_VENDOR_ID, 2), T_VENDOR);
    ck_assert_uint_eq(cfg_rd(PCI_DEVICE_ID, 2), T_DEVICE);
    ck_assert_uint_eq(cfg_rd(PCI_REVISION_ID, 1), T_REVISION);
    ck_assert_uint_eq(cfg_rd(PCI_CLASS_PROG, 1), T_CLASS & 0xff);
    ck_assert_uint_eq(cfg_rd(PCI_CLASS_DEVICE, 2), T_CLASS >> 8);
    ck_assert_uint_eq(cfg_rd(PCI_HEADER_TYPE, 1), 0);
    ck_assert_uint_eq(cfg_rd(PCI_SUBSYSTEM_VENDOR_ID, 2), T_SUBVENDOR);
    ck_assert_uint_eq(cfg_rd(PCI_SUBSYSTEM_ID, 2), T_SUBSYS);
    ck_assert_uint_eq(cfg_rd(PCI_INTERRUPT_PIN, 1), 1);
    ck_assert_uint_eq(t->pdev.config_size, PCI_CFG_SPACE_SIZE);
    ck_assert_uint_eq(cmd_rd(), 0);
    ck_assert_uint_eq(status_rd(), PCI_STATUS_CAP_LIST);
}
END_TEST

START_TEST(test_subsystem_vendor_default)
{
    /* Without a subsystem vendor id the vendor id is used. */
    static const PCIDeviceInfo info = {
        .vendor_id = 0x1af4, .device_id = 0x1000,
    };
    g_autofree TestPCI *d = g_new0(TestPCI, 1);

    pci_device_init(&d->pdev, &info);
    ck_assert_uint_eq(pci_get_word(d->pdev.config + PCI_SUBSYSTEM_VENDOR_ID),
                      0x1af4);
    ck_assert_uint_eq(d->pdev.config[PCI_INTERRUPT_PIN], 0);
    ck_assert_uint_eq(d->pdev.config[PCI_CAPABILITY_LIST], 0);
    ck_assert_uint_eq(pci_get_word(d->pdev.config + PCI_STATUS) &
                      PCI_STATUS_CAP_LIST, 0);
    pci_device_cleanup(&d->pdev);
    ck_assert_ptr_null(d->pdev.config);
}
END_TEST

START_TEST(test_config_read_only)
{
    uint8_t ids[16], offs[16];
    unsigned n;

    assert_config_ro(PCI_VENDOR_ID, 4);         /* vendor, device */
    assert_config_ro(PCI_REVISION_ID, 4);       /* revision, class */
    assert_config_ro(PCI_HEADER_TYPE, 1);
    assert_config_ro(PCI_SUBSYSTEM_VENDOR_ID, 4);
    assert_config_ro(PCI_ROM_ADDRESS, 4);       /* no ROM */
    assert_config_ro(PCI_CAPABILITY_LIST, 1);
    assert_config_ro(PCI_INTERRUPT_PIN, 1);
    /* Unused BAR 5 stays zero. */
    assert_config_ro(PCI_BASE_ADDRESS_0 + 4 * 5, 4);
    ck_assert_uint_eq(cfg_rd(PCI_BASE_ADDRESS_0 + 4 * 5, 4), 0);

    /* Capability ids and next pointers. */
    n = cap_walk(ids, offs, ARRAY_SIZE(ids));
    ck_assert_uint_eq(n, 3);
    for (unsigned i = 0; i < n; i++) {
        assert_config_ro(offs[i], 2);
    }
    ck_assert_uint_eq(cap_walk(ids, offs, ARRAY_SIZE(ids)), 3);

    /* And the identity survived all of it. */
    ck_assert_uint_eq(cfg_rd(PCI_VENDOR_ID, 2), T_VENDOR);
    ck_assert_uint_eq(cfg_rd(PCI_CLASS_DEVICE, 2), T_CLASS >> 8);
}
END_TEST

START_TEST(test_config_writable)
{
    cfg_wr(PCI_CACHE_LINE_SIZE, 0x10, 1);
    cfg_wr(PCI_LATENCY_TIMER, 0x40, 1);
    cfg_wr(PCI_INTERRUPT_LINE, 0x0b, 1);
    ck_assert_uint_eq(cfg_rd(PCI_CACHE_LINE_SIZE, 1), 0x10);
    ck_assert_uint_eq(cfg_rd(PCI_LATENCY_TIMER, 1), 0x40);
    ck_assert_uint_eq(cfg_rd(PCI_INTERRUPT_LINE, 1), 0x0b);
    /* A dword write over line + pin changes the line only. */
    cfg_wr(PCI_INTERRUPT_LINE, 0xffffffff, 4);
    ck_assert_uint_eq(cfg_rd(PCI_INTERRUPT_LINE, 1), 0xff);
    ck_assert_uint_eq(cfg_rd(PCI_INTERRUPT_PIN, 1), 1);
}
END_TEST

/* ---- command and status ------------------------------------------------- */

START_TEST(test_command_mask)
{
    const uint16_t writable = PCI_COMMAND_IO | PCI_COMMAND_MEMORY |
                              PCI_COMMAND_MASTER | PCI_COMMAND_PARITY |
                              PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE;

    cfg_wr(PCI_COMMAND, 0xffff, 2);
    ck_assert_uint_eq(cmd_rd(), writable);
    cfg_wr(PCI_COMMAND, 0, 2);
    ck_assert_uint_eq(cmd_rd(), 0);
    /* Byte writes: the high byte holds SERR and INTX_DISABLE only. */
    cfg_wr(PCI_COMMAND + 1, 0xff, 1);
    ck_assert_uint_eq(cmd_rd(), (PCI_COMMAND_SERR |
                                 PCI_COMMAND_INTX_DISABLE));
    cfg_wr(PCI_COMMAND, PCI_COMMAND_MASTER | 0x0008 /* special cycles */,
           1);
    ck_assert_uint_eq(cmd_rd(), (PCI_COMMAND_SERR |
                                 PCI_COMMAND_INTX_DISABLE |
                                 PCI_COMMAND_MASTER));
    ck_assert(pci_bus_master_enabled(&t->pdev));
}
END_TEST

START_TEST(test_status_w1c)
{
    const uint16_t w1c = PCI_STATUS_W1C_MASK;
    uint16_t ro = PCI_STATUS_CAP_LIST | PCI_STATUS_INTERRUPT;

    pci_set_word(t->pdev.config + PCI_STATUS, w1c | ro);

    /* Writing 0 keeps every bit. */
    cfg_wr(PCI_STATUS, 0, 2);
    ck_assert_uint_eq(status_rd(), w1c | ro);

    /* Writing 1 clears that bit only. */
    cfg_wr(PCI_STATUS, 0x0100, 2);
    ck_assert_uint_eq(status_rd(), (w1c & ~0x0100) | ro);
    cfg_wr(PCI_STATUS + 1, 0x80, 1);
    ck_assert_uint_eq(status_rd(), (w1c & ~0x8100) | ro);

    /* A dword write at COMMAND sets command and clears status bits. */
    cfg_wr(PCI_COMMAND, (0x4000u << 16) | PCI_COMMAND_MEMORY, 4);
    ck_assert_uint_eq(cmd_rd(), PCI_COMMAND_MEMORY);
    ck_assert_uint_eq(status_rd(), (w1c & ~0xc100) | ro);

    /* All ones clears all W1C bits; read-only ones stay. */
    cfg_wr(PCI_STATUS, 0xffff, 2);
    ck_assert_uint_eq(status_rd(), ro);

    /* Writing 1 to a clear W1C bit does not set it. */
    cfg_wr(PCI_STATUS, 0xffff, 2);
    ck_assert_uint_eq(status_rd(), ro);

    /* Read-only status bits cannot be cleared. */
    pci_set_word(t->pdev.config + PCI_STATUS, PCI_STATUS_CAP_LIST);
    cfg_wr(PCI_STATUS, PCI_STATUS_CAP_LIST | PCI_STATUS_INTERRUPT, 2);
    ck_assert_uint_eq(status_rd(), PCI_STATUS_CAP_LIST);
}
END_TEST

/* ---- BARs --------------------------------------------------------------- */

static uint32_t bar_off(unsigned i)
{
    return PCI_BASE_ADDRESS_0 + 4 * i;
}

START_TEST(test_bar_initial)
{
    ck_assert_uint_eq(cfg_rd(bar_off(T_BAR_REGS), 4), 0);
    ck_assert_uint_eq(cfg_rd(bar_off(T_BAR_MSIX), 4), 0);
    ck_assert_uint_eq(cfg_rd(bar_off(T_BAR_MEM), 4),
                      PCI_BASE_ADDRESS_MEM_TYPE_64 |
                      PCI_BASE_ADDRESS_MEM_PREFETCH);
    ck_assert_uint_eq(cfg_rd(bar_off(T_BAR_MEM + 1), 4), 0);
    ck_assert_uint_eq(cfg_rd(bar_off(T_BAR_IO), 4),
                      PCI_BASE_ADDRESS_SPACE_IO);
    ck_assert_uint_eq(t->pdev.bars[T_BAR_REGS].size, T_REGS_SIZE);
    ck_assert_uint_eq(t->pdev.bars[T_BAR_MEM].size, T_MEM_SIZE);
    ck_assert_uint_eq(t->pdev.bars[T_BAR_IO].size, T_IO_SIZE);
    ck_assert_uint_eq(t->pdev.bars[5].size, 0);
}
END_TEST

START_TEST(test_bar_sizing_mem32)
{
    cfg_wr(bar_off(T_BAR_REGS), 0xffffffff, 4);
    ck_assert_uint_eq(cfg_rd(bar_off(T_BAR_REGS), 4),
                      (uint32_t)~(T_REGS_SIZE - 1));
    cfg_wr(bar_off(T_BAR_MSIX), 0xffffffff, 4);
    ck_assert_uint_eq(cfg_rd(bar_off(T_BAR_MSIX), 4),
                      (uint32_t)~(T_MSIX_SIZE - 1));

    /* Programming an address keeps only the size-aligned bits. */
    cfg_wr(bar_off(T_BAR_REGS), 0xfebc1234, 4);
    ck_assert_uint_eq(cfg_rd(bar_off(T_BAR_REGS), 4), 0xfebc1000);
    /* Byte writes to the type bits do nothing. */
    cfg_wr(bar_off(T_BAR_REGS), 0xff, 1);
    ck_assert_uint_eq(cfg_rd(bar_off(T_BAR_REGS), 4), 0xfebc1000);
}
END_TEST

START_TEST(test_bar_sizing_mem64)
{
    uint32_t type = PCI_BASE_ADDRESS_MEM_TYPE_64 |
                    PCI_BASE_ADDRESS_MEM_PREFETCH;
    uint64_t size;

    cfg_wr(bar_off(T_BAR_MEM), 0xffffffff, 4);
    cfg_wr(bar_off(T_BAR_MEM + 1), 0xffffffff, 4);
    ck_assert_uint_eq(cfg_rd(bar_off(T_BAR_MEM), 4),
                      (uint32_t)~(T_MEM_SIZE - 1) | type);
    ck_assert_uint_eq(cfg_rd(bar_off(T_BAR_MEM + 1), 4), 0xffffffff);

    /* What a guest computes from the two halves. */
    size = ((uint64_t)cfg_rd(bar_off(T_BAR_MEM + 1), 4) << 32) |
           (cfg_rd(bar_off(T_BAR_MEM), 4) & ~0xfu);
    size = ~size + 1;
    ck_assert_uint_eq(size, T_MEM_SIZE);

    /* A 64-bit address. */
    cfg_wr(bar_off(T_BAR_MEM), 0x80000000, 4);
    cfg_wr(bar_off(T_BAR_MEM + 1), 0x00000012, 4);
    ck_assert_uint_eq(cfg_rd(bar_off(T_BAR_MEM), 4), 0x80000000 | type);
    ck_assert_uint_eq(cfg_rd(bar_off(T_BAR_MEM + 1), 4), 0x12);
}
END_TEST

START_TEST(test_bar_sizing_mem64_large)
{
    /* An 8 GiB BAR: the low half has no writable address bits. */
    static const PCIDeviceInfo info = { .vendor_id = 1, .device_id = 2 };
    g_autofree TestPCI *d = g_new0(TestPCI, 1);
    PCIDevice *pdev = &d->pdev;

    pci_device_init(pdev, &info);
    pci_register_bar(pdev, 0, PCI_BAR_MEM64, 8ULL << 30, NULL, NULL);
    pci_config_write(pdev, bar_off(0), 0xffffffff, 4);
    pci_config_write(pdev, bar_off(1), 0xffffffff, 4);
    ck_assert_uint_eq(pci_config_read(pdev, bar_off(0), 4),
                      PCI_BASE_ADDRESS_MEM_TYPE_64);
    ck_assert_uint_eq(pci_config_read(pdev, bar_off(1), 4), 0xfffffffe);
    pci_device_cleanup(pdev);
}
END_TEST

START_TEST(test_bar_sizing_io)
{
    cfg_wr(bar_off(T_BAR_IO), 0xffffffff, 4);
    ck_assert_uint_eq(cfg_rd(bar_off(T_BAR_IO), 4),
                      ((uint32_t)~(T_IO_SIZE - 1)) | PCI_BASE_ADDRESS_SPACE_IO);
    cfg_wr(bar_off(T_BAR_IO), 0xc047, 4);
    ck_assert_uint_eq(cfg_rd(bar_off(T_BAR_IO), 4),
                      0xc040 | PCI_BASE_ADDRESS_SPACE_IO);
}
END_TEST

START_TEST(test_bar_size_rounding)
{
    static const PCIDeviceInfo info = { .vendor_id = 1, .device_id = 2 };
    g_autofree TestPCI *d = g_new0(TestPCI, 1);
    PCIDevice *pdev = &d->pdev;

    pci_device_init(pdev, &info);
    pci_register_bar(pdev, 0, PCI_BAR_MEM32, 0x1800, NULL, NULL);
    pci_register_bar(pdev, 1, PCI_BAR_MEM32, 1, NULL, NULL);
    pci_register_bar(pdev, 2, PCI_BAR_IO, 1, NULL, NULL);
    pci_register_bar(pdev, 3, PCI_BAR_IO, 5, NULL, NULL);
    ck_assert_uint_eq(pdev->bars[0].size, 0x2000);
    ck_assert_uint_eq(pdev->bars[1].size, 16);
    ck_assert_uint_eq(pdev->bars[2].size, 4);
    ck_assert_uint_eq(pdev->bars[3].size, 8);
    for (unsigned i = 0; i < 4; i++) {
        pci_config_write(pdev, bar_off(i), 0xffffffff, 4);
    }
    ck_assert_uint_eq(pci_config_read(pdev, bar_off(0), 4), 0xffffe000);
    ck_assert_uint_eq(pci_config_read(pdev, bar_off(1), 4), 0xfffffff0);
    ck_assert_uint_eq(pci_config_read(pdev, bar_off(2), 4), 0xfffffffd);
    ck_assert_uint_eq(pci_config_read(pdev, bar_off(3), 4), 0xfffffff9);
    pci_device_cleanup(pdev);
}
END_TEST

START_TEST(test_bar_access_decode)
{
    uint32_t v = 0;

    t->read_val = 0x11223344;
    /* Memory decoding off: reads all-ones, writes dropped, ops untouched. */
    ck_assert(pci_bar_read(&t->pdev, T_BAR_REGS, 0x10, &v, 4));
    ck_assert_uint_eq(v, 0xffffffff);
    v = 0x55;
    ck_assert(pci_bar_write(&t->pdev, T_BAR_REGS, 0x10, &v, 4));
    ck_assert_uint_eq(t->nr_access, 0);

    cmd_set(PCI_COMMAND_MEMORY);
    ck_assert(pci_bar_read(&t->pdev, T_BAR_REGS, 0x10, &v, 4));
    ck_assert_uint_eq(v, 0x11223344);
    ck_assert_uint_eq(t->nr_access, 1);
    ck_assert(!t->log[0].is_write);
    ck_assert_uint_eq(t->log[0].addr, 0x10);
    ck_assert_uint_eq(t->log[0].size, 4);

    v = 0xcafe;
    ck_assert(pci_bar_write(&t->pdev, T_BAR_REGS, 0x20, &v, 2));
    ck_assert_uint_eq(t->nr_access, 2);
    ck_assert(t->log[1].is_write);
    ck_assert_uint_eq(t->log[1].addr, 0x20);
    ck_assert_uint_eq(t->log[1].size, 2);
    ck_assert_uint_eq(t->log[1].val, 0xcafe);

    /* The IO BAR follows the IO enable, not the memory one. */
    v = 0;
    ck_assert(pci_bar_read(&t->pdev, T_BAR_IO, 0, &v, 4));
    ck_assert_uint_eq(v, 0xffffffff);
    ck_assert_uint_eq(t->nr_access, 2);
    cmd_set(PCI_COMMAND_IO);
    cmd_clear(PCI_COMMAND_MEMORY);
    ck_assert(pci_bar_read(&t->pdev, T_BAR_IO, 4, &v, 4));
    ck_assert_uint_eq(v, 0x11223344);
    ck_assert_uint_eq(t->nr_access, 3);
    ck_assert_uint_eq(t->log[2].addr, 4);
    ck_assert(pci_bar_read(&t->pdev, T_BAR_REGS, 0, &v, 4));
    ck_assert_uint_eq(v, 0xffffffff);
    ck_assert_uint_eq(t->nr_access, 3);
}
END_TEST

START_TEST(test_bar_access_split)
{
    uint8_t buf[8];
    uint64_t v = 0x8877665544332211ULL;

    cmd_set(PCI_COMMAND_MEMORY);
    /* 8 bytes at offset 4: two naturally aligned dwords. */
    ck_assert(pci_bar_write(&t->pdev, T_BAR_REGS, 4, &v, 8));
    ck_assert_uint_eq(t->nr_access, 2);
    ck_assert_uint_eq(t->log[0].addr, 4);
    ck_assert_uint_eq(t->log[0].size, 4);
    ck_assert_uint_eq(t->log[0].val, 0x44332211);
    ck_assert_uint_eq(t->log[1].addr, 8);
    ck_assert_uint_eq(t->log[1].size, 4);
    ck_assert_uint_eq(t->log[1].val, 0x88776655);

    /* 3 bytes at offset 1: a byte then a word. */
    t->nr_access = 0;
    t->read_val = 0xaabb;
    ck_assert(pci_bar_read(&t->pdev, T_BAR_REGS, 1, buf, 3));
    ck_assert_uint_eq(t->nr_access, 2);
    ck_assert_uint_eq(t->log[0].addr, 1);
    ck_assert_uint_eq(t->log[0].size, 1);
    ck_assert_uint_eq(t->log[1].addr, 2);
    ck_assert_uint_eq(t->log[1].size, 2);
    ck_assert_uint_eq(buf[0], 0xbb);
    ck_assert_uint_eq(buf[1], 0xbb);
    ck_assert_uint_eq(buf[2], 0xaa);

    /* An aligned 8-byte access is one. */
    t->nr_access = 0;
    ck_assert(pci_bar_read(&t->pdev, T_BAR_REGS, 8, &v, 8));
    ck_assert_uint_eq(t->nr_access, 1);
    ck_assert_uint_eq(t->log[0].size, 8);
}
END_TEST

START_TEST(test_bar_access_bounds)
{
    uint64_t v = 0;

    cmd_set(PCI_COMMAND_MEMORY | PCI_COMMAND_IO);
    ck_assert(pci_bar_read(&t->pdev, T_BAR_REGS, T_REGS_SIZE - 4, &v, 4));
    ck_assert(!pci_bar_read(&t->pdev, T_BAR_REGS, T_REGS_SIZE - 4, &v, 8));
    ck_assert(!pci_bar_read(&t->pdev, T_BAR_REGS, T_REGS_SIZE, &v, 1));
    ck_assert(!pci_bar_write(&t->pdev, T_BAR_REGS, UINT64_MAX - 1, &v, 4));
    ck_assert(!pci_bar_read(&t->pdev, T_BAR_IO, T_IO_SIZE - 2, &v, 4));
    ck_assert(!pci_bar_read(&t->pdev, 5, 0, &v, 4));       /* unused */
    ck_assert(!pci_bar_read(&t->pdev, 3, 0, &v, 4));       /* upper half */
    ck_assert(!pci_bar_read(&t->pdev, PCI_NUM_BARS, 0, &v, 4));
    ck_assert(!pci_bar_read(&t->pdev, 100, 0, &v, 4));
    ck_assert_uint_eq(t->nr_access, 1);

    /* A BAR with neither ops nor memory reads zero. */
    v = ~0ULL;
    ck_assert(pci_bar_read(&t->pdev, T_BAR_MEM, 0x100, &v, 8));
    ck_assert_uint_eq(v, 0);
}
END_TEST

START_TEST(test_bar_sparse_mmap)
{
    GError *err = NULL;
    uint8_t *mem;
    uint32_t v = 0;

    mem = pci_bar_add_sparse_mmap(&t->pdev, T_BAR_MEM, 0, 0x8000, &err);
    ck_assert_ptr_nonnull(mem);
    ck_assert_ptr_null(err);
    ck_assert_int_ge(t->pdev.bars[T_BAR_MEM].mem_fd, 0);
    ck_assert_uint_eq(t->pdev.bars[T_BAR_MEM].nr_sparse, 1);
    ck_assert_uint_eq(t->pdev.bars[T_BAR_MEM].sparse[0].size, 0x8000);
    /* The whole BAR is backed, also beyond the sparse area. */
    cmd_set(PCI_COMMAND_MEMORY);
    v = 0xdeadbeef;
    ck_assert(pci_bar_write(&t->pdev, T_BAR_MEM, 0x10, &v, 4));
    ck_assert(pci_bar_write(&t->pdev, T_BAR_MEM, 0x9000, &v, 4));
    ck_assert_uint_eq(ldl_le_p(mem + 0x10), 0xdeadbeef);
    ck_assert_uint_eq(ldl_le_p(mem + 0x9000), 0xdeadbeef);
    stl_le_p(mem + 0x20, 0x12345678);
    ck_assert(pci_bar_read(&t->pdev, T_BAR_MEM, 0x20, &v, 4));
    ck_assert_uint_eq(v, 0x12345678);
    /* A second area shares the memory. */
    ck_assert_ptr_eq(pci_bar_add_sparse_mmap(&t->pdev, T_BAR_MEM, 0x10000,
                                             0x1000, &err), mem);
    ck_assert_uint_eq(t->pdev.bars[T_BAR_MEM].nr_sparse, 2);
}
END_TEST

/* ---- capabilities ------------------------------------------------------- */

START_TEST(test_cap_list)
{
    uint8_t ids[16], offs[16];
    unsigned n = cap_walk(ids, offs, ARRAY_SIZE(ids));

    ck_assert(status_rd() & PCI_STATUS_CAP_LIST);
    ck_assert_uint_eq(n, 3);
    ck_assert_uint_eq(ids[0], PCI_CAP_ID_PM);
    ck_assert_uint_eq(offs[0], t->pdev.pm_cap);
    ck_assert_uint_eq(ids[1], PCI_CAP_ID_MSI);
    ck_assert_uint_eq(offs[1], t->pdev.msi_cap);
    ck_assert_uint_eq(ids[2], PCI_CAP_ID_MSIX);
    ck_assert_uint_eq(offs[2], t->pdev.msix_cap);
    /* They do not overlap. */
    ck_assert_uint_ge(offs[1], offs[0] + PCI_PM_SIZEOF);
    ck_assert_uint_ge(offs[2], offs[1] + 24);       /* 64-bit, maskable */
    ck_assert_uint_le(offs[2] + PCI_MSIX_SIZEOF, PCI_CFG_SPACE_SIZE);
}
END_TEST

START_TEST(test_cap_pm)
{
    uint8_t pm = t->pdev.pm_cap;

    ck_assert_uint_eq(cfg_rd(pm + PCI_PM_CTRL, 2) & PCI_PM_CTRL_STATE_MASK, 0);
    assert_config_ro(pm + PCI_PM_PMC, 2);
    /*
     * No_Soft_Reset is a read-only capability bit: neither a write nor a
     * reset (the fixture already did one) may clear it.
     */
    ck_assert(cfg_rd(pm + PCI_PM_CTRL, 2) & PCI_PM_CTRL_NO_SOFT_RESET);
    cfg_wr(pm + PCI_PM_CTRL, 0, 2);
    ck_assert(cfg_rd(pm + PCI_PM_CTRL, 2) & PCI_PM_CTRL_NO_SOFT_RESET);
    /* D3hot and back. */
    cfg_wr(pm + PCI_PM_CTRL, 3, 2);
    ck_assert_uint_eq(cfg_rd(pm + PCI_PM_CTRL, 2) & PCI_PM_CTRL_STATE_MASK, 3);
    /* PME status is write-1-to-clear. */
    t->pdev.config[pm + PCI_PM_CTRL + 1] |= PCI_PM_CTRL_PME_STATUS >> 8;
    cfg_wr(pm + PCI_PM_CTRL, 3, 2);
    ck_assert(cfg_rd(pm + PCI_PM_CTRL, 2) & PCI_PM_CTRL_PME_STATUS);
    cfg_wr(pm + PCI_PM_CTRL, PCI_PM_CTRL_PME_STATUS, 2);
    ck_assert_uint_eq(cfg_rd(pm + PCI_PM_CTRL, 2) &
                      (PCI_PM_CTRL_PME_STATUS | PCI_PM_CTRL_STATE_MASK), 0);
    /* Reset returns to D0. */
    cfg_wr(pm + PCI_PM_CTRL, 3, 2);
    pci_device_reset(&t->pdev);
    ck_assert_uint_eq(cfg_rd(pm + PCI_PM_CTRL, 2) & PCI_PM_CTRL_STATE_MASK, 0);
    ck_assert(cfg_rd(pm + PCI_PM_CTRL, 2) & PCI_PM_CTRL_NO_SOFT_RESET);
}
END_TEST

START_TEST(test_cap_msi)
{
    uint8_t msi = t->pdev.msi_cap;
    uint16_t flags = cfg_rd(msi + PCI_MSI_FLAGS, 2);

    ck_assert(flags & PCI_MSI_FLAGS_64BIT);
    ck_assert(flags & PCI_MSI_FLAGS_MASKBIT);
    ck_assert_uint_eq((flags & PCI_MSI_FLAGS_QMASK) >> 1, 2);   /* 4 */
    ck_assert_uint_eq(flags & (PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE),
                      0);
    /* Enable and multiple message enable are writable, capable is not. */
    cfg_wr(msi + PCI_MSI_FLAGS, 0xffff, 2);
    ck_assert_uint_eq(cfg_rd(msi + PCI_MSI_FLAGS, 2),
                      flags | PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE);
    /* Address (dword aligned), upper address, data, mask bits. */
    cfg_wr(msi + 4, 0xfee00003, 4);
    ck_assert_uint_eq(cfg_rd(msi + 4, 4), 0xfee00000);
    cfg_wr(msi + 8, 0x12345678, 4);
    ck_assert_uint_eq(cfg_rd(msi + 8, 4), 0x12345678);
    cfg_wr(msi + 12, 0xffffffff, 4);
    ck_assert_uint_eq(cfg_rd(msi + 12, 4), 0xffff);
    cfg_wr(msi + 16, 0xffffffff, 4);
    ck_assert_uint_eq(cfg_rd(msi + 16, 4), (1u << T_MSI_NVEC) - 1);
    /* Pending bits are read-only. */
    assert_config_ro(msi + 20, 4);
    /* Reset disables it. */
    pci_device_reset(&t->pdev);
    ck_assert_uint_eq(cfg_rd(msi + PCI_MSI_FLAGS, 2), flags);
}
END_TEST

static uint16_t msi_mmc(unsigned nvec, bool is64, bool maskable)
{
    static const PCIDeviceInfo info = { .vendor_id = 1, .device_id = 2 };
    g_autofree TestPCI *d = g_new0(TestPCI, 1);
    uint8_t off;
    uint16_t flags;

    pci_device_init(&d->pdev, &info);
    off = pci_add_msi_cap(&d->pdev, nvec, is64, maskable);
    ck_assert_uint_eq(d->pdev.config[off], PCI_CAP_ID_MSI);
    flags = pci_get_word(d->pdev.config + off + PCI_MSI_FLAGS);
    ck_assert_uint_eq(!!(flags & PCI_MSI_FLAGS_64BIT), is64);
    ck_assert_uint_eq(!!(flags & PCI_MSI_FLAGS_MASKBIT), maskable);
    pci_device_cleanup(&d->pdev);
    return (flags & PCI_MSI_FLAGS_QMASK) >> 1;
}

START_TEST(test_cap_msi_vectors)
{
    /* Multiple Message Capable is log2 of the vector count, rounded up. */
    ck_assert_uint_eq(msi_mmc(2, false, false), 1);
    ck_assert_uint_eq(msi_mmc(3, true, false), 2);
    ck_assert_uint_eq(msi_mmc(4, false, true), 2);
    ck_assert_uint_eq(msi_mmc(8, true, true), 3);
    ck_assert_uint_eq(msi_mmc(32, true, true), 5);
    /* One vector: MMC = 0 (advertising 2 would be wrong). */
    ck_assert_uint_eq(msi_mmc(1, false, false), 0);
}
END_TEST

START_TEST(test_cap_msi_32bit_maskable)
{
    static const PCIDeviceInfo info = { .vendor_id = 1, .device_id = 2 };
    g_autofree TestPCI *d = g_new0(TestPCI, 1);
    PCIDevice *pdev = &d->pdev;
    uint8_t off, next;

    pci_device_init(pdev, &info);
    off = pci_add_msi_cap(pdev, 2, false, true);
    next = pci_add_capability(pdev, PCI_CAP_ID_VNDR, 4);
    /* 32-bit maskable MSI is 20 bytes: mask at 0x0c, pending at 0x10. */
    ck_assert_uint_ge(next, off + 20);
    pci_config_write(pdev, off + 8, 0xffffffff, 4);
    ck_assert_uint_eq(pci_config_read(pdev, off + 8, 4), 0xffff);
    pci_config_write(pdev, off + 12, 0xffffffff, 4);
    ck_assert_uint_eq(pci_config_read(pdev, off + 12, 4), 0x3);
    pci_config_write(pdev, off + 16, 0xffffffff, 4);
    ck_assert_uint_eq(pci_config_read(pdev, off + 16, 4), 0);
    ck_assert_uint_eq(pdev->config[off + 1], next);
    pci_device_cleanup(pdev);
}
END_TEST

START_TEST(test_cap_msix)
{
    uint8_t mx = t->pdev.msix_cap;
    uint16_t flags = cfg_rd(mx + PCI_MSIX_FLAGS, 2);
    uint8_t entry[PCI_MSIX_ENTRY_SIZE];

    ck_assert_uint_eq(flags, T_MSIX_NVEC - 1);
    ck_assert_uint_eq(cfg_rd(mx + PCI_MSIX_TABLE, 4), 0 | T_BAR_MSIX);
    ck_assert_uint_eq(cfg_rd(mx + PCI_MSIX_PBA, 4), T_PBA_OFF | T_BAR_MSIX);
    assert_config_ro(mx + PCI_MSIX_TABLE, 8);
    /* Only enable and function mask are writable. */
    cfg_wr(mx + PCI_MSIX_FLAGS, 0xffff, 2);
    ck_assert_uint_eq(cfg_rd(mx + PCI_MSIX_FLAGS, 2),
                      (T_MSIX_NVEC - 1) | PCI_MSIX_FLAGS_ENABLE |
                      PCI_MSIX_FLAGS_MASKALL);

    /* The table: every entry starts masked, and is read/write. */
    cmd_set(PCI_COMMAND_MEMORY);
    for (unsigned v = 0; v < T_MSIX_NVEC; v++) {
        uint32_t ctrl = 0;

        ck_assert(pci_bar_read(&t->pdev, T_BAR_MSIX,
                               v * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_CTRL,
                               &ctrl, 4));
        ck_assert_uint_eq(ctrl, PCI_MSIX_ENTRY_CTRL_MASKBIT);
    }
    stl_le_p(entry + PCI_MSIX_ENTRY_ADDR_LO, 0xfee01000);
    stl_le_p(entry + PCI_MSIX_ENTRY_ADDR_HI, 0);
    stl_le_p(entry + PCI_MSIX_ENTRY_DATA, 0x4041);
    stl_le_p(entry + PCI_MSIX_ENTRY_CTRL, 0);
    ck_assert(pci_bar_write(&t->pdev, T_BAR_MSIX, 3 * PCI_MSIX_ENTRY_SIZE,
                            entry, sizeof(entry)));
    ck_assert_mem_eq(t->pdev.msix_table + 3 * PCI_MSIX_ENTRY_SIZE, entry,
                     sizeof(entry));
    memset(entry, 0, sizeof(entry));
    ck_assert(pci_bar_read(&t->pdev, T_BAR_MSIX,
                           3 * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_DATA,
                           entry, 4));
    ck_assert_uint_eq(ldl_le_p(entry), 0x4041);

    /* Reset: disabled, entries masked again. */
    pci_device_reset(&t->pdev);
    ck_assert_uint_eq(cfg_rd(mx + PCI_MSIX_FLAGS, 2), T_MSIX_NVEC - 1);
    ck_assert_uint_eq(t->pdev.msix_table[3 * PCI_MSIX_ENTRY_SIZE +
                                         PCI_MSIX_ENTRY_CTRL],
                      PCI_MSIX_ENTRY_CTRL_MASKBIT);
    ck_assert_uint_eq(ldl_le_p(t->pdev.msix_table + 3 * PCI_MSIX_ENTRY_SIZE +
                               PCI_MSIX_ENTRY_DATA), 0);
}
END_TEST

/* ---- PCI Express -------------------------------------------------------- */

static unsigned flr_resets;

static void exp_reset(Device *dev, DeviceResetKind kind)
{
    flr_resets++;
    pci_device_reset(PCI_DEVICE(dev));
}

static const DeviceClass exp_class = {
    .name = "test-express",
    .instance_size = sizeof(TestPCI),
    .is_pci = true,
    .reset = exp_reset,
};

static PCIDevice *exp_new(void)
{
    static const PCIDeviceInfo info = {
        .vendor_id = 1, .device_id = 2, .express = true,
    };
    TestPCI *d = g_new0(TestPCI, 1);

    d->pdev.dev.cls = &exp_class;
    d->pdev.dev.id = (char *)"x0";
    d->pdev.dev.loop = loop_main();
    pci_device_init(&d->pdev, &info);
    return &d->pdev;
}

static void exp_free(PCIDevice *pdev)
{
    pci_device_cleanup(pdev);
    g_free(pdev);
}

START_TEST(test_express_caps)
{
    PCIDevice *pdev = exp_new();
    uint16_t e1, e2;
    uint32_t hdr;

    ck_assert_uint_eq(pdev->config_size, PCIE_CFG_SPACE_SIZE);
    ck_assert_uint_eq(pdev->config[PCI_CAPABILITY_LIST], pdev->exp_cap);
    ck_assert_uint_eq(pdev->config[pdev->exp_cap], PCI_CAP_ID_EXP);
    ck_assert(pci_get_long(pdev->config + pdev->exp_cap + PCI_EXP_DEVCAP) &
              PCI_EXP_DEVCAP_FLR);

    e1 = pci_add_ext_capability(pdev, 0x0001, 1, 0x48);
    e2 = pci_add_ext_capability(pdev, 0x000b, 2, 0x10);
    ck_assert_uint_eq(e1, PCI_EXT_CAP_START);
    ck_assert_uint_ge(e2, e1 + 0x48);
    ck_assert_uint_eq(e2 & 3, 0);
    hdr = pci_config_read(pdev, e1, 4);
    ck_assert_uint_eq(hdr & 0xffff, 0x0001);
    ck_assert_uint_eq((hdr >> 16) & 0xf, 1);
    ck_assert_uint_eq(hdr >> 20, e2);
    hdr = pci_config_read(pdev, e2, 4);
    ck_assert_uint_eq(hdr & 0xffff, 0x000b);
    ck_assert_uint_eq((hdr >> 16) & 0xf, 2);
    ck_assert_uint_eq(hdr >> 20, 0);
    /* Extended headers are read-only. */
    pci_config_write(pdev, e1, 0xffffffff, 4);
    ck_assert_uint_eq(pci_config_read(pdev, e1, 4) >> 20, e2);
    ck_assert_uint_eq(pci_config_read(pdev, PCIE_CFG_SPACE_SIZE - 4, 4), 0);
    exp_free(pdev);
}
END_TEST

START_TEST(test_express_flr)
{
    PCIDevice *pdev = exp_new();
    uint32_t devctl = pdev->exp_cap + PCI_EXP_DEVCTL;

    flr_resets = 0;
    pci_config_write(pdev, PCI_COMMAND, PCI_COMMAND_MASTER, 2);
    /* An ordinary DEVCTL write is no reset. */
    pci_config_write(pdev, devctl, 0x2010, 2);
    ck_assert_uint_eq(flr_resets, 0);
    ck_assert_uint_eq(pci_config_read(pdev, devctl, 2), 0x2010);
    /* Initiate Function Level Reset: the function resets, the bit reads 0. */
    pci_config_write(pdev, devctl, 0x2010 | PCI_EXP_DEVCTL_BCR_FLR, 2);
    ck_assert_uint_eq(flr_resets, 1);
    ck_assert_uint_eq(pci_config_read(pdev, devctl, 2) &
                      PCI_EXP_DEVCTL_BCR_FLR, 0);
    ck_assert_uint_eq(pci_config_read(pdev, PCI_COMMAND, 2), 0);
    exp_free(pdev);
}
END_TEST

/* ---- MSI-X / MSI delivery ----------------------------------------------- */

START_TEST(test_msix_notify)
{
    pci_irq_set_mode(&t->pdev, PCI_IRQ_MSIX, 2);
    ck_assert(pci_msix_enabled(&t->pdev));
    ck_assert(!pci_msi_enabled(&t->pdev));

    pci_irq_notify(&t->pdev, 0);
    ck_assert_uint_eq(ft.nr_signals, 1);
    assert_signal(0, PCI_IRQ_INDEX_MSIX, 0);
    pci_irq_notify(&t->pdev, 1);
    ck_assert_uint_eq(ft.nr_signals, 2);
    assert_signal(1, PCI_IRQ_INDEX_MSIX, 1);
    pci_irq_notify(&t->pdev, 1);
    ck_assert_uint_eq(ft.nr_signals, 3);
    assert_signal(2, PCI_IRQ_INDEX_MSIX, 1);

    /* Vectors the client did not wire (or the device lacks) do nothing. */
    pci_irq_notify(&t->pdev, 2);
    pci_irq_notify(&t->pdev, 3);
    pci_irq_notify(&t->pdev, 1000);
    pci_irq_notify(&t->pdev, PCI_MSIX_MAX_VECTORS + 5);
    ck_assert_uint_eq(ft.nr_signals, 3);
    ck_assert(!pci_msix_is_pending(&t->pdev, 2));

    /* Wiring more makes them live. */
    pci_irq_set_mode(&t->pdev, PCI_IRQ_MSIX, 4);
    pci_irq_notify(&t->pdev, 3);
    ck_assert_uint_eq(ft.nr_signals, 4);
    assert_signal(3, PCI_IRQ_INDEX_MSIX, 3);
}
END_TEST

START_TEST(test_msix_mask_pending)
{
    cmd_set(PCI_COMMAND_MEMORY);
    pci_irq_set_mode(&t->pdev, PCI_IRQ_MSIX, 4);
    ck_assert_uint_eq(pba_read(8, 0), 0);

    pci_irq_mask(&t->pdev, PCI_IRQ_INDEX_MSIX, 1, true);
    pci_irq_notify(&t->pdev, 1);
    pci_irq_notify(&t->pdev, 1);
    ck_assert_uint_eq(ft.nr_signals, 0);
    ck_assert(pci_msix_is_pending(&t->pdev, 1));
    ck_assert(!pci_msix_is_pending(&t->pdev, 0));
    ck_assert_uint_eq(pba_read(8, 0), 1u << 1);
    ck_assert_uint_eq(pba_read(4, 0), 1u << 1);
    ck_assert_uint_eq(pba_read(1, 0), 1u << 1);
    ck_assert_uint_eq(pba_read(4, 4), 0);

    /* Other vectors are unaffected. */
    pci_irq_notify(&t->pdev, 0);
    ck_assert_uint_eq(ft.nr_signals, 1);
    assert_signal(0, PCI_IRQ_INDEX_MSIX, 0);

    /* A second masked vector. */
    pci_irq_mask(&t->pdev, PCI_IRQ_INDEX_MSIX, 3, true);
    pci_irq_notify(&t->pdev, 3);
    ck_assert_uint_eq(pba_read(8, 0), (1u << 1) | (1u << 3));

    /* PBA writes are ignored. */
    {
        uint64_t zero = 0;

        ck_assert(pci_bar_write(&t->pdev, T_BAR_MSIX, T_PBA_OFF, &zero, 8));
        ck_assert_uint_eq(pba_read(8, 0), (1u << 1) | (1u << 3));
    }

    /* Unmask fires it once and clears pending. */
    pci_irq_mask(&t->pdev, PCI_IRQ_INDEX_MSIX, 1, false);
    ck_assert_uint_eq(ft.nr_signals, 2);
    assert_signal(1, PCI_IRQ_INDEX_MSIX, 1);
    ck_assert(!pci_msix_is_pending(&t->pdev, 1));
    ck_assert_uint_eq(pba_read(8, 0), 1u << 3);
    pci_irq_mask(&t->pdev, PCI_IRQ_INDEX_MSIX, 1, false);
    ck_assert_uint_eq(ft.nr_signals, 2);
    /* Unmasked now: delivered directly. */
    pci_irq_notify(&t->pdev, 1);
    ck_assert_uint_eq(ft.nr_signals, 3);

    /* Mask and unmask with nothing raised: no interrupt. */
    pci_irq_mask(&t->pdev, PCI_IRQ_INDEX_MSIX, 0, true);
    pci_irq_mask(&t->pdev, PCI_IRQ_INDEX_MSIX, 0, false);
    ck_assert_uint_eq(ft.nr_signals, 3);

    pci_irq_mask(&t->pdev, PCI_IRQ_INDEX_MSIX, 3, false);
    ck_assert_uint_eq(ft.nr_signals, 4);
    assert_signal(3, PCI_IRQ_INDEX_MSIX, 3);
    ck_assert_uint_eq(pba_read(8, 0), 0);

    /* PBA reads all-ones without memory decoding. */
    cmd_clear(PCI_COMMAND_MEMORY);
    ck_assert_uint_eq(pba_read(4, 0), 0xffffffff);
}
END_TEST

START_TEST(test_msix_mode_change)
{
    pci_irq_set_mode(&t->pdev, PCI_IRQ_MSIX, 2);
    pci_irq_mask(&t->pdev, PCI_IRQ_INDEX_MSIX, 0, true);
    pci_irq_notify(&t->pdev, 0);
    ck_assert(pci_msix_is_pending(&t->pdev, 0));
    /* Re-wiring the same mode keeps state. */
    pci_irq_set_mode(&t->pdev, PCI_IRQ_MSIX, 2);
    ck_assert(pci_msix_is_pending(&t->pdev, 0));
    /* Switching modes drops masks and pending bits. */
    pci_irq_set_mode(&t->pdev, PCI_IRQ_NONE, 0);
    ck_assert(!pci_msix_is_pending(&t->pdev, 0));
    pci_irq_notify(&t->pdev, 0);
    ck_assert_uint_eq(ft.nr_signals, 0);
    pci_irq_set_mode(&t->pdev, PCI_IRQ_MSIX, 2);
    ck_assert(!pci_msix_is_pending(&t->pdev, 0));
    pci_irq_notify(&t->pdev, 0);
    ck_assert_uint_eq(ft.nr_signals, 1);
    /* Detaching the transport stops delivery. */
    pci_transport_detach(&t->pdev);
    ck_assert_uint_eq(t->pdev.irq_mode, PCI_IRQ_NONE);
    pci_irq_notify(&t->pdev, 0);
    ck_assert_uint_eq(ft.nr_signals, 1);
}
END_TEST

START_TEST(test_msi_notify)
{
    pci_irq_set_mode(&t->pdev, PCI_IRQ_MSI, 1);
    ck_assert(pci_msi_enabled(&t->pdev));
    pci_irq_notify(&t->pdev, 0);
    ck_assert_uint_eq(ft.nr_signals, 1);
    assert_signal(0, PCI_IRQ_INDEX_MSI, 0);
    pci_irq_notify(&t->pdev, 1);
    ck_assert_uint_eq(ft.nr_signals, 1);
    /* MSI masking goes through its own index; PBA is MSI-X only. */
    pci_irq_mask(&t->pdev, PCI_IRQ_INDEX_MSI, 0, true);
    pci_irq_notify(&t->pdev, 0);
    ck_assert_uint_eq(ft.nr_signals, 1);
    ck_assert(!pci_msix_is_pending(&t->pdev, 0));
    pci_irq_mask(&t->pdev, PCI_IRQ_INDEX_MSI, 0, false);
    ck_assert_uint_eq(ft.nr_signals, 2);
    assert_signal(1, PCI_IRQ_INDEX_MSI, 0);
}
END_TEST

START_TEST(test_notify_without_msi)
{
    /* Nothing wired, or INTx: pci_irq_notify is a no-op. */
    pci_irq_notify(&t->pdev, 0);
    pci_irq_set_mode(&t->pdev, PCI_IRQ_INTX, 1);
    pci_irq_notify(&t->pdev, 0);
    ck_assert_uint_eq(ft.nr_signals, 0);
}
END_TEST

/* ---- INTx --------------------------------------------------------------- */

START_TEST(test_intx_automask)
{
    pci_irq_set_mode(&t->pdev, PCI_IRQ_INTX, 1);
    ck_assert_uint_eq(ft.nr_signals, 0);

    pci_set_irq(&t->pdev, true);
    ck_assert_uint_eq(ft.nr_signals, 1);
    assert_signal(0, PCI_IRQ_INDEX_INTX, 0);
    ck_assert(status_rd() & PCI_STATUS_INTERRUPT);

    /* Automasked: asserting again does not signal. */
    pci_set_irq(&t->pdev, true);
    ck_assert_uint_eq(ft.nr_signals, 1);

    /* Unmask while still asserted: signals again (and masks again). */
    pci_irq_mask(&t->pdev, PCI_IRQ_INDEX_INTX, 0, false);
    ck_assert_uint_eq(ft.nr_signals, 2);
    assert_signal(1, PCI_IRQ_INDEX_INTX, 0);
    pci_set_irq(&t->pdev, true);
    ck_assert_uint_eq(ft.nr_signals, 2);

    /* Deassert, then unmask: nothing. */
    pci_set_irq(&t->pdev, false);
    ck_assert(!(status_rd() & PCI_STATUS_INTERRUPT));
    pci_irq_mask(&t->pdev, PCI_IRQ_INDEX_INTX, 0, false);
    ck_assert_uint_eq(ft.nr_signals, 2);

    /* A new assertion after the unmask signals. */
    pci_set_irq(&t->pdev, true);
    ck_assert_uint_eq(ft.nr_signals, 3);
    assert_signal(2, PCI_IRQ_INDEX_INTX, 0);
}
END_TEST

START_TEST(test_intx_client_mask)
{
    pci_irq_set_mode(&t->pdev, PCI_IRQ_INTX, 1);
    /* Masked by the client before anything happens. */
    pci_irq_mask(&t->pdev, PCI_IRQ_INDEX_INTX, 0, true);
    pci_set_irq(&t->pdev, true);
    ck_assert_uint_eq(ft.nr_signals, 0);
    ck_assert(status_rd() & PCI_STATUS_INTERRUPT);
    pci_irq_mask(&t->pdev, PCI_IRQ_INDEX_INTX, 0, false);
    ck_assert_uint_eq(ft.nr_signals, 1);
}
END_TEST

START_TEST(test_intx_set_mode_while_asserted)
{
    /* The line was up before the client wired INTx. */
    pci_set_irq(&t->pdev, true);
    ck_assert_uint_eq(ft.nr_signals, 0);
    ck_assert(status_rd() & PCI_STATUS_INTERRUPT);
    pci_irq_set_mode(&t->pdev, PCI_IRQ_INTX, 1);
    ck_assert_uint_eq(ft.nr_signals, 1);
    assert_signal(0, PCI_IRQ_INDEX_INTX, 0);
}
END_TEST

START_TEST(test_intx_disable)
{
    pci_irq_set_mode(&t->pdev, PCI_IRQ_INTX, 1);
    cmd_set(PCI_COMMAND_INTX_DISABLE);

    pci_set_irq(&t->pdev, true);
    ck_assert_uint_eq(ft.nr_signals, 0);
    /* Interrupt status shows the device's level regardless. */
    ck_assert(status_rd() & PCI_STATUS_INTERRUPT);

    /* Re-enabling while asserted delivers it. */
    cmd_clear(PCI_COMMAND_INTX_DISABLE);
    ck_assert_uint_eq(ft.nr_signals, 1);
    assert_signal(0, PCI_IRQ_INDEX_INTX, 0);

    /* Disable, deassert, enable: nothing. */
    pci_irq_mask(&t->pdev, PCI_IRQ_INDEX_INTX, 0, false);
    ck_assert_uint_eq(ft.nr_signals, 2);
    cmd_set(PCI_COMMAND_INTX_DISABLE);
    pci_irq_mask(&t->pdev, PCI_IRQ_INDEX_INTX, 0, false);
    ck_assert_uint_eq(ft.nr_signals, 2);
    pci_set_irq(&t->pdev, false);
    ck_assert(!(status_rd() & PCI_STATUS_INTERRUPT));
    cmd_clear(PCI_COMMAND_INTX_DISABLE);
    ck_assert_uint_eq(ft.nr_signals, 2);
}
END_TEST

START_TEST(test_intx_other_modes)
{
    /* In MSI-X mode the line still shows in status but is not signalled. */
    pci_irq_set_mode(&t->pdev, PCI_IRQ_MSIX, 2);
    pci_set_irq(&t->pdev, true);
    ck_assert_uint_eq(ft.nr_signals, 0);
    ck_assert(status_rd() & PCI_STATUS_INTERRUPT);
    pci_set_irq(&t->pdev, false);
    ck_assert(!(status_rd() & PCI_STATUS_INTERRUPT));
    /* No mode at all. */
    pci_irq_set_mode(&t->pdev, PCI_IRQ_NONE, 0);
    pci_set_irq(&t->pdev, true);
    ck_assert_uint_eq(ft.nr_signals, 0);
}
END_TEST

/* ---- reset -------------------------------------------------------------- */

START_TEST(test_reset)
{
    cfg_wr(PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
           PCI_COMMAND_INTX_DISABLE, 2);
    pci_set_word(t->pdev.config + PCI_STATUS,
                 status_rd() | PCI_STATUS_W1C_MASK);
    cfg_wr(bar_off(T_BAR_REGS), 0xfebc0000, 4);
    cfg_wr(bar_off(T_BAR_MEM + 1), 0x1, 4);
    cfg_wr(PCI_CACHE_LINE_SIZE, 0x10, 1);
    cfg_wr(t->pdev.msix_cap + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);

    pci_irq_set_mode(&t->pdev, PCI_IRQ_MSIX, 2);
    pci_irq_mask(&t->pdev, PCI_IRQ_INDEX_MSIX, 1, true);
    pci_irq_notify(&t->pdev, 1);
    ck_assert(pci_msix_is_pending(&t->pdev, 1));
    pci_set_irq(&t->pdev, true);

    pci_device_reset(&t->pdev);

    ck_assert_uint_eq(cmd_rd(), 0);
    ck_assert(!pci_bus_master_enabled(&t->pdev));
    ck_assert_uint_eq(status_rd(), PCI_STATUS_CAP_LIST);
    ck_assert_uint_eq(cfg_rd(bar_off(T_BAR_REGS), 4), 0);
    ck_assert_uint_eq(cfg_rd(bar_off(T_BAR_MEM), 4),
                      PCI_BASE_ADDRESS_MEM_TYPE_64 |
                      PCI_BASE_ADDRESS_MEM_PREFETCH);
    ck_assert_uint_eq(cfg_rd(bar_off(T_BAR_MEM + 1), 4), 0);
    ck_assert_uint_eq(cfg_rd(bar_off(T_BAR_IO), 4), PCI_BASE_ADDRESS_SPACE_IO);
    ck_assert_uint_eq(cfg_rd(PCI_CACHE_LINE_SIZE, 1), 0);
    ck_assert_uint_eq(cfg_rd(t->pdev.msix_cap + PCI_MSIX_FLAGS, 2) &
                      PCI_MSIX_FLAGS_ENABLE, 0);
    /* Identity survives. */
    ck_assert_uint_eq(cfg_rd(PCI_VENDOR_ID, 2), T_VENDOR);
    ck_assert_uint_eq(cfg_rd(PCI_CAPABILITY_LIST, 1), t->pdev.pm_cap);

    /* The pending vector was dropped: unmasking fires nothing. */
    ck_assert(!pci_msix_is_pending(&t->pdev, 1));
    pci_irq_mask(&t->pdev, PCI_IRQ_INDEX_MSIX, 1, false);
    ck_assert_uint_eq(ft.nr_signals, 0);
    /* The client's wiring stays. */
    pci_irq_notify(&t->pdev, 0);
    ck_assert_uint_eq(ft.nr_signals, 1);
}
END_TEST

START_TEST(test_reset_intx)
{
    pci_irq_set_mode(&t->pdev, PCI_IRQ_INTX, 1);
    pci_set_irq(&t->pdev, true);
    ck_assert_uint_eq(ft.nr_signals, 1);
    pci_device_reset(&t->pdev);
    /* The line is down after reset. */
    ck_assert(!(status_rd() & PCI_STATUS_INTERRUPT));
    ck_assert(!t->pdev.intx_level);
    pci_irq_mask(&t->pdev, PCI_IRQ_INDEX_INTX, 0, false);
    ck_assert_uint_eq(ft.nr_signals, 1);
}
END_TEST

/* ---- DMA ---------------------------------------------------------------- */

static void dma_setup_one(void)
{
    fake_add_region(0x1000, 0x2000, guest_buf, false);
}

START_TEST(test_dma_no_master)
{
    uint8_t buf[16] = { 0 };
    struct iovec iov[4];
    unsigned niov = 0;

    dma_setup_one();
    ck_assert(!pci_bus_master_enabled(&t->pdev));
    ck_assert_int_eq(work_read(0x1000, buf, sizeof(buf)),
                     -EFAULT);
    ck_assert_int_eq(work_write(0x1000, buf, sizeof(buf)),
                     -EFAULT);
    ck_assert_ptr_null(pci_dma_map(&t->pdev, 0x1000, 16, false));
    ck_assert_int_eq(pci_dma_iov(&t->pdev, 0x1000, 16, false, iov, 4, &niov),
                     -EFAULT);
    ck_assert_uint_eq(niov, 0);
    /* The transport was never asked. */
    ck_assert_uint_eq(ft.nr_map_calls, 0);
    ck_assert_uint_eq(ft.nr_rw_calls, 0);

    /* Memory enable alone is not bus mastering. */
    cmd_set(PCI_COMMAND_MEMORY | PCI_COMMAND_IO);
    ck_assert_int_eq(work_read(0x1000, buf, sizeof(buf)),
                     -EFAULT);
    ck_assert_uint_eq(ft.nr_map_calls, 0);
}
END_TEST

START_TEST(test_dma_rw)
{
    static const char msg[] = "hello, guest";
    char out[sizeof(msg)] = { 0 };
    uint8_t *p;

    dma_setup_one();
    cmd_set(PCI_COMMAND_MASTER);

    ck_assert_int_eq(work_write(0x1800, msg, sizeof(msg)), 0);
    ck_assert_mem_eq(guest_buf + 0x800, msg, sizeof(msg));
    ck_assert_int_eq(work_read(0x1800, out, sizeof(out)), 0);
    ck_assert_str_eq(out, msg);
    ck_assert_uint_eq(ft.nr_rw_calls, 0);

    /* The first and last bytes of the region. */
    ck_assert_int_eq(work_write(0x1000, "A", 1), 0);
    ck_assert_int_eq(work_write(0x2fff, "Z", 1), 0);
    ck_assert_uint_eq(guest_buf[0], 'A');
    ck_assert_uint_eq(guest_buf[0x1fff], 'Z');
    /* The whole region in one go. */
    p = g_malloc(0x2000);
    ck_assert_int_eq(work_read(0x1000, p, 0x2000), 0);
    ck_assert_mem_eq(p, guest_buf, 0x2000);
    g_free(p);
    /* Zero length is a no-op. */
    ck_assert_int_eq(work_read(0x9000, out, 0), 0);
    ck_assert_uint_eq(ft.nr_rw_calls, 0);

    /* Direct mapping: only whole, in one piece. */
    ck_assert_ptr_eq(pci_dma_map(&t->pdev, 0x1000, 0x2000, true), guest_buf);
    ck_assert_ptr_eq(pci_dma_map(&t->pdev, 0x2000, 0x10, false),
                     guest_buf + 0x1000);
    ck_assert_ptr_null(pci_dma_map(&t->pdev, 0x2f00, 0x200, false));
    ck_assert_ptr_null(pci_dma_map(&t->pdev, 0x800, 0x10, false));
}
END_TEST

START_TEST(test_dma_slow_path)
{
    uint8_t buf[0x200];

    dma_setup_one();
    cmd_set(PCI_COMMAND_MASTER);
    memset(guest_buf + 0x1f00, 0x5a, 0x100);

    /* Crossing the end: the tail goes through dma_rw, which fails. */
    ck_assert_int_eq(work_read(0x2f00, buf, sizeof(buf)),
                     -EFAULT);
    ck_assert_uint_eq(ft.nr_rw_calls, 1);
    ck_assert_uint_eq(ft.rw_addr, 0x3000);
    ck_assert_uint_eq(ft.rw_len, 0x100);
    ck_assert(!ft.rw_is_write);
    ck_assert_int_eq(work_write(0x2f00, buf, sizeof(buf)),
                     -EFAULT);
    ck_assert_uint_eq(ft.nr_rw_calls, 2);
    ck_assert(ft.rw_is_write);

    /* Entirely outside: straight to dma_rw. */
    ck_assert_int_eq(work_read(0x100000, buf, 8), -EFAULT);
    ck_assert_uint_eq(ft.nr_rw_calls, 3);
    ck_assert_uint_eq(ft.rw_addr, 0x100000);
    ck_assert_uint_eq(ft.rw_len, 8);

    /* When the slow path succeeds the data is stitched together. */
    ft.rw_ret = 0;
    ft.rw_fill = 0xa5;
    memset(buf, 0, sizeof(buf));
    ck_assert_int_eq(work_read(0x2f00, buf, sizeof(buf)), 0);
    ck_assert_uint_eq(ft.nr_rw_calls, 4);
    for (unsigned i = 0; i < sizeof(buf); i++) {
        ck_assert_uint_eq(buf[i], i < 0x100 ? 0x5a : 0xa5);
    }
}
END_TEST

START_TEST(test_dma_read_only_region)
{
    uint8_t buf[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };

    fake_add_region(0x1000, 0x1000, guest_buf, true);
    cmd_set(PCI_COMMAND_MASTER);
    ck_assert_int_eq(work_read(0x1000, buf, sizeof(buf)), 0);
    ck_assert_ptr_null(pci_dma_map(&t->pdev, 0x1000, 8, true));
    ck_assert_ptr_eq(pci_dma_map(&t->pdev, 0x1000, 8, false), guest_buf);
    ck_assert_int_eq(work_write(0x1000, buf, sizeof(buf)),
                     -EFAULT);
    ck_assert_uint_eq(ft.nr_rw_calls, 1);
}
END_TEST

START_TEST(test_dma_no_transport)
{
    uint8_t buf[8];

    dma_setup_one();
    cmd_set(PCI_COMMAND_MASTER);
    pci_transport_detach(&t->pdev);
    ck_assert_int_eq(work_read(0x1000, buf, sizeof(buf)),
                     -EFAULT);
    ck_assert_ptr_null(pci_dma_map(&t->pdev, 0x1000, 8, false));
    ck_assert_uint_eq(ft.nr_map_calls, 0);
}
END_TEST

START_TEST(test_dma_split_regions)
{
    static uint8_t other[0x1000];
    uint8_t buf[0x200];

    /* Two guest regions contiguous in guest and host, then a third. */
    fake_add_region(0x1000, 0x1000, guest_buf, false);
    fake_add_region(0x2000, 0x1000, guest_buf + 0x1000, false);
    fake_add_region(0x3000, 0x1000, other, false);
    cmd_set(PCI_COMMAND_MASTER);
    memset(guest_buf + 0xf00, 0x11, 0x100);     /* guest 0x1f00 */
    memset(guest_buf + 0x1000, 0x22, 0x100);    /* guest 0x2000 */
    memset(other, 0x33, 0x100);

    ck_assert_int_eq(work_read(0x1f00, buf, sizeof(buf)), 0);
    ck_assert_uint_eq(buf[0], 0x11);
    ck_assert_uint_eq(buf[0xff], 0x11);
    ck_assert_uint_eq(buf[0x100], 0x22);
    ck_assert_uint_eq(buf[0x1ff], 0x22);
    ck_assert_int_eq(work_read(0x2f00, buf, sizeof(buf)), 0);
    ck_assert_uint_eq(buf[0x100], 0x33);
    ck_assert_uint_eq(ft.nr_rw_calls, 0);
    /* Not one mapping, so no direct pointer. */
    ck_assert_ptr_null(pci_dma_map(&t->pdev, 0x1f00, 0x200, false));
}
END_TEST

START_TEST(test_dma_iov)
{
    static uint8_t other[0x1000];
    struct iovec iov[4];
    unsigned niov = 0;

    fake_add_region(0x1000, 0x1000, guest_buf, false);
    fake_add_region(0x2000, 0x1000, guest_buf + 0x1000, false);
    fake_add_region(0x3000, 0x1000, other, false);
    cmd_set(PCI_COMMAND_MASTER);

    /* Host-contiguous pieces merge; a different buffer splits. */
    ck_assert_int_eq(pci_dma_iov(&t->pdev, 0x1800, 0x2000, true, iov, 4,
                                 &niov), 0);
    ck_assert_uint_eq(niov, 2);
    ck_assert_ptr_eq(iov[0].iov_base, guest_buf + 0x800);
    ck_assert_uint_eq(iov[0].iov_len, 0x1800);
    ck_assert_ptr_eq(iov[1].iov_base, other);
    ck_assert_uint_eq(iov[1].iov_len, 0x800);

    /* Appending continues after the existing entries. */
    ck_assert_int_eq(pci_dma_iov(&t->pdev, 0x1000, 0x10, false, iov, 4,
                                 &niov), 0);
    ck_assert_uint_eq(niov, 3);
    ck_assert_ptr_eq(iov[2].iov_base, guest_buf);
    ck_assert_uint_eq(iov[2].iov_len, 0x10);
    /* ... and merges with the last one when contiguous. */
    ck_assert_int_eq(pci_dma_iov(&t->pdev, 0x1010, 0x20, false, iov, 4,
                                 &niov), 0);
    ck_assert_uint_eq(niov, 3);
    ck_assert_uint_eq(iov[2].iov_len, 0x30);

    /* Too few entries. */
    niov = 0;
    ck_assert_int_eq(pci_dma_iov(&t->pdev, 0x1800, 0x2000, true, iov, 1,
                                 &niov), -ENOSPC);
    ck_assert_uint_le(niov, 1);
    niov = 0;
    ck_assert_int_eq(pci_dma_iov(&t->pdev, 0x1000, 0x10, true, iov, 0,
                                 &niov), -ENOSPC);
    ck_assert_uint_eq(niov, 0);
    /* Exactly enough. */
    niov = 0;
    ck_assert_int_eq(pci_dma_iov(&t->pdev, 0x1800, 0x2000, true, iov, 2,
                                 &niov), 0);
    ck_assert_uint_eq(niov, 2);

    /* Any part unmapped: -EFAULT, never the slow path. */
    niov = 0;
    ck_assert_int_eq(pci_dma_iov(&t->pdev, 0x3800, 0x1000, false, iov, 4,
                                 &niov), -EFAULT);
    niov = 0;
    ck_assert_int_eq(pci_dma_iov(&t->pdev, 0x10000, 0x10, false, iov, 4,
                                 &niov), -EFAULT);
    ck_assert_uint_eq(ft.nr_rw_calls, 0);

    /* Zero length adds nothing. */
    niov = 0;
    ck_assert_int_eq(pci_dma_iov(&t->pdev, 0x1000, 0, false, iov, 4, &niov),
                     0);
    ck_assert_uint_eq(niov, 0);
}
END_TEST

START_TEST(test_dma_iov_read_only)
{
    struct iovec iov[2];
    unsigned niov = 0;

    fake_add_region(0x1000, 0x1000, guest_buf, true);
    cmd_set(PCI_COMMAND_MASTER);
    ck_assert_int_eq(pci_dma_iov(&t->pdev, 0x1000, 0x100, true, iov, 2,
                                 &niov), -EFAULT);
    ck_assert_uint_eq(niov, 0);
    ck_assert_int_eq(pci_dma_iov(&t->pdev, 0x1000, 0x100, false, iov, 2,
                                 &niov), 0);
    ck_assert_uint_eq(niov, 1);
}
END_TEST

START_TEST(test_dma_outside_work)
{
    uint8_t buf[16];

    dma_setup_one();
    cmd_set(PCI_COMMAND_MASTER);
    /* Mapped memory: a plain copy, anywhere. */
    ck_assert_int_eq(pci_dma_read(&t->pdev, 0x1000, buf, sizeof(buf)), 0);
    /* Through messages only from work: a register handler may not. */
    ck_assert_int_eq(pci_dma_read(&t->pdev, 0x100000, buf, sizeof(buf)),
                     -EFAULT);
    ck_assert_uint_eq(ft.nr_rw_calls, 0);
}
END_TEST

/* A reset while the copy waits for the client: the work unwinds first. */
START_TEST(test_dma_cancel_by_reset)
{
    DmaCall c = { false, 0x100000, NULL, 64 };
    uint8_t buf[64];

    dma_setup_one();
    cmd_set(PCI_COMMAND_MASTER);
    c.buf = buf;
    ft.rw_hold = true;
    ck_assert_int_eq(device_run_now(&t->pdev.dev, dma_call_work, &c),
                     DEVICE_RUN_PARKED);
    ck_assert(!c.done);
    ck_assert_uint_eq(ft.nr_rw_calls, 1);
    /* Other work waits behind the parked item. */
    ck_assert_int_eq(device_run_now(&t->pdev.dev, dma_call_work, &c),
                     DEVICE_RUN_BUSY);
    device_reset(&t->pdev.dev, DEVICE_RESET_FUNCTION, NULL, NULL);
    ck_assert(c.done);
    ck_assert_int_eq(c.ret, -ECANCELED);
    /* Every further DMA of the cancelled item failed, mapped or not. */
    ck_assert_int_eq(c.ret2, -ECANCELED);
    ck_assert_uint_eq(ft.nr_cancels, 1);
    ck_assert_uint_eq(t_resets, 1);
    ck_assert_int_eq(t->pdev.dev.state, DEVICE_RUNNING);
    /* The next item starts clean. */
    ft.rw_hold = false;
    ft.rw_ret = 0;
    ck_assert_int_eq(work_read(0x100000, buf, 8), 0);
}
END_TEST

/* A reset waits for requests in flight; the late reply is dropped. */
START_TEST(test_reset_waits_for_holds)
{
    dma_setup_one();
    pci_dma_hold(&t->pdev);
    device_reset(&t->pdev.dev, DEVICE_RESET_DEVICE, NULL, NULL);
    ck_assert_int_eq(t->pdev.dev.state, DEVICE_RESETTING);
    ck_assert_uint_eq(t_resets, 0);
    pci_dma_release(&t->pdev);
    ck_assert_uint_eq(t_resets, 0);         /* not from inside release */
    loop_iterate(loop_main(), false);
    ck_assert_uint_eq(t_resets, 1);
    ck_assert_int_eq(t->pdev.dev.state, DEVICE_RUNNING);
}
END_TEST

START_TEST(test_dma_hold_release)
{
    pci_dma_hold(&t->pdev);
    pci_dma_hold(&t->pdev);
    ck_assert_uint_eq(pci_dma_inflight(&t->pdev), 2);
    pci_dma_release(&t->pdev);
    ck_assert_uint_eq(ft.nr_idle, 0);
    pci_dma_release(&t->pdev);
    ck_assert_uint_eq(ft.nr_idle, 1);
    ck_assert_uint_eq(pci_dma_inflight(&t->pdev), 0);
    /* Without a transport it just counts. */
    pci_transport_detach(&t->pdev);
    pci_dma_hold(&t->pdev);
    pci_dma_release(&t->pdev);
    ck_assert_uint_eq(ft.nr_idle, 1);
}
END_TEST

/* ---- config_write hook -------------------------------------------------- */

static unsigned hook_calls;
static uint32_t hook_addr, hook_val;
static unsigned hook_len;

static void t_config_write(PCIDevice *pdev, uint32_t addr, uint32_t val,
                           unsigned len)
{
    hook_calls++;
    hook_addr = addr;
    hook_val = val;
    hook_len = len;
}

START_TEST(test_config_write_hook)
{
    hook_calls = 0;
    t->pdev.config_write = t_config_write;
    cfg_wr(PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    ck_assert_uint_eq(hook_calls, 1);
    ck_assert_uint_eq(hook_addr, PCI_COMMAND);
    ck_assert_uint_eq(hook_len, 2);
    ck_assert_uint_eq(hook_val, PCI_COMMAND_MEMORY);
    /* The hook sees the write after it was applied. */
    ck_assert_uint_eq(cmd_rd(), PCI_COMMAND_MEMORY);
    /* Also for read-only targets (the device may look at the value). */
    cfg_wr(PCI_VENDOR_ID, 0, 2);
    ck_assert_uint_eq(hook_calls, 2);
}
END_TEST

static Suite *pci_suite(void)
{
    Suite *s = suite_create("pci");
    TCase *tc;

    tc = tcase_create("config");
    tcase_add_checked_fixture(tc, unit_loop_setup, unit_loop_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_identity);
    tcase_add_test(tc, test_subsystem_vendor_default);
    tcase_add_test(tc, test_config_read_only);
    tcase_add_test(tc, test_config_writable);
    tcase_add_test(tc, test_command_mask);
    tcase_add_test(tc, test_status_w1c);
    tcase_add_test(tc, test_config_write_hook);
    suite_add_tcase(s, tc);

    tc = tcase_create("bars");
    tcase_add_checked_fixture(tc, unit_loop_setup, unit_loop_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_bar_initial);
    tcase_add_test(tc, test_bar_sizing_mem32);
    tcase_add_test(tc, test_bar_sizing_mem64);
    tcase_add_test(tc, test_bar_sizing_mem64_large);
    tcase_add_test(tc, test_bar_sizing_io);
    tcase_add_test(tc, test_bar_size_rounding);
    tcase_add_test(tc, test_bar_access_decode);
    tcase_add_test(tc, test_bar_access_split);
    tcase_add_test(tc, test_bar_access_bounds);
    tcase_add_test(tc, test_bar_sparse_mmap);
    suite_add_tcase(s, tc);

    tc = tcase_create("capabilities");
    tcase_add_checked_fixture(tc, unit_loop_setup, unit_loop_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_cap_list);
    tcase_add_test(tc, test_cap_pm);
    tcase_add_test(tc, test_cap_msi);
    tcase_add_test(tc, test_cap_msi_vectors);
    tcase_add_test(tc, test_cap_msi_32bit_maskable);
    tcase_add_test(tc, test_cap_msix);
    tcase_add_test(tc, test_express_caps);
    tcase_add_test(tc, test_express_flr);
    suite_add_tcase(s, tc);

    tc = tcase_create("msi");
    tcase_add_checked_fixture(tc, unit_loop_setup, unit_loop_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_msix_notify);
    tcase_add_test(tc, test_msix_mask_pending);
    tcase_add_test(tc, test_msix_mode_change);
    tcase_add_test(tc, test_msi_notify);
    tcase_add_test(tc, test_notify_without_msi);
    suite_add_tcase(s, tc);

    tc = tcase_create("intx");
    tcase_add_checked_fixture(tc, unit_loop_setup, unit_loop_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_intx_automask);
    tcase_add_test(tc, test_intx_client_mask);
    tcase_add_test(tc, test_intx_set_mode_while_asserted);
    tcase_add_test(tc, test_intx_disable);
    tcase_add_test(tc, test_intx_other_modes);
    suite_add_tcase(s, tc);

    tc = tcase_create("reset");
    tcase_add_checked_fixture(tc, unit_loop_setup, unit_loop_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_reset);
    tcase_add_test(tc, test_reset_intx);
    suite_add_tcase(s, tc);

    tc = tcase_create("dma");
    tcase_add_checked_fixture(tc, unit_loop_setup, unit_loop_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_dma_no_master);
    tcase_add_test(tc, test_dma_rw);
    tcase_add_test(tc, test_dma_slow_path);
    tcase_add_test(tc, test_dma_read_only_region);
    tcase_add_test(tc, test_dma_no_transport);
    tcase_add_test(tc, test_dma_split_regions);
    tcase_add_test(tc, test_dma_iov);
    tcase_add_test(tc, test_dma_iov_read_only);
    tcase_add_test(tc, test_dma_hold_release);
    tcase_add_test(tc, test_dma_outside_work);
    tcase_add_test(tc, test_dma_cancel_by_reset);
    tcase_add_test(tc, test_reset_waits_for_holds);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(pci_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
