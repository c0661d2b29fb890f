/*
 * vfio-user protocol tests: iovd with one pci-testdev, driven by the libqos
 * client playing both the VMM and the guest driver.
 *
 * Every test gets a fresh daemon (checked fixtures run in the forked test
 * process); the teardown stops it with SIGTERM and requires exit status 0.
 */
#include "util/osdep.h"

#include <check.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "hw/vfio-user/vfio-user-proto.h"
#include "hw/pci/pci-regs.h"
#include "hw/misc/pci-testdev-regs.h"
#include "tests/qtest/libqos/qos-check.h"
#include "tests/qtest/libqos/iovd-proc.h"
#include "tests/qtest/libqos/vfu-client.h"
#include "tests/qtest/libqos/guest-mem.h"
#include "tests/qtest/libqos/pci.h"
#include "tests/qtest/libqos/pci-testdev.h"
#include "tests/qtest/libqos/qmp-client.h"

#define CONFIG_REGION   VFIO_PCI_CONFIG_REGION_INDEX

static IovdProc *proc;
static char *sock_path;
static VfuClient *client;
static QPCIDevice *dev;
static GuestMem *gm;
static unsigned idle_fds;       /* daemon's open fds with no client */

/* ---- fixtures ---- */

static void start_daemon(const char *extra)
{
    qos_check_init();
    proc = iovd_proc_start_testdev(extra);
    sock_path = iovd_proc_path(proc, "t0.sock");
    idle_fds = iovd_proc_count_fds(proc);
}

/* A connected, negotiated client and a PCI device with memory enabled. */
static void connect_device(void)
{
    client = vfu_client_open(sock_path);
    dev = qpci_device_new(client);
    qpci_device_enable(dev);
}

static void setup_daemon(void)
{
    start_daemon(NULL);
}

static void setup_device(void)
{
    start_daemon(NULL);
    connect_device();
}

static void setup_device_spec_layout(void)
{
    start_daemon(",dma-rw-layout=spec");
    connect_device();
    vfu_client_set_dma_layout(client, VFU_DMA_RW_SPEC);
}

static void teardown(void)
{
    qpci_device_free(dev);
    dev = NULL;
    guest_mem_free(gm);
    gm = NULL;
    vfu_client_free(client);
    client = NULL;
    if (proc) {
        iovd_proc_stop(proc);
        iovd_proc_free(proc);
        proc = NULL;
    }
    g_free(sock_path);
    sock_path = NULL;
}

/* ---- helpers ---- */

/*
 * Hang up and wait until the daemon has released the connection (its fd
 * count is back to idle), so the next connection is not a race with the
 * daemon noticing this one went away (test_reconnect_immediate is that).
 */
static void disconnect(void)
{
    unsigned n;

    qpci_device_free(dev);
    dev = NULL;
    vfu_client_free(client);
    client = NULL;
    n = iovd_proc_wait_fds_at_most(proc, idle_fds, QOS_TIMEOUT_MS);
    ck_assert_msg(n <= idle_fds, "iovd still has %u fds (%u without a "
                  "client) %d ms after the client hung up", n, idle_fds,
                  QOS_TIMEOUT_MS);
}

static uint8_t pattern(unsigned seed, size_t i)
{
    return (uint8_t)(i * 131 + seed * 29 + (i >> 8) * 7 + (i >> 16));
}

static void fill_pattern(uint8_t *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++) {
        buf[i] = pattern(seed, i);
    }
}

/* Compare every byte, reporting the first difference. */
static void assert_bytes(const uint8_t *got, const uint8_t *want, size_t len,
                         const char *what)
{
    for (size_t i = 0; i < len; i++) {
        ck_assert_msg(got[i] == want[i], "%s: byte %zu of %zu is 0x%02x, "
                      "expected 0x%02x", what, i, len, got[i], want[i]);
    }
}

static void assert_error_reply(VfuRxMsg *m, int err, const char *what)
{
    ck_assert_msg(m->hdr.flags & VFU_FLAG_ERROR, "%s: expected an error "
                  "reply (%s), got success (flags 0x%x)", what,
                  qos_errno_name(err), m->hdr.flags);
    ck_assert_msg((m->hdr.flags & VFU_FLAG_TYPE_MASK) == VFU_FLAG_REPLY,
                  "%s: reply type is 0x%x", what,
                  m->hdr.flags & VFU_FLAG_TYPE_MASK);
    ck_assert_msg((int)m->hdr.error_no == err, "%s: error_no %u (%s), "
                  "expected %d (%s)", what, m->hdr.error_no,
                  qos_errno_name(m->hdr.error_no), err, qos_errno_name(err));
    ck_assert_msg(m->hdr.size == VFU_HDR_SIZE, "%s: error reply is %u "
                  "bytes; it must be the header only", what, m->hdr.size);
}

/* errno-style result @r must be one of the (negative) values listed. */
static void assert_err_in(int r, const char *what, int e1, int e2, int e3)
{
    ck_assert_msg(r < 0 && (r == e1 || r == e2 || r == e3), "%s returned "
                  "%d (%s), expected %s%s%s%s%s", what, r, qos_errno_name(r),
                  qos_errno_name(e1), e2 ? " or " : "",
                  e2 ? qos_errno_name(e2) : "", e3 ? " or " : "",
                  e3 ? qos_errno_name(e3) : "");
}

/* The daemon is alive and the connection still answers requests. */
static void assert_still_serving(void)
{
    VfuDeviceInfo info;

    iovd_proc_assert_alive(proc);
    qos_assert_errno(vfu_get_device_info(client, &info), 0);
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_ID), TESTDEV_ID_VALUE);
}

/* Send one command with payload and return its reply. */
static VfuRxMsg *raw_request(uint16_t cmd, const void *payload, size_t len,
                             const int *fds, unsigned nfds)
{
    uint16_t id = vfu_send_msg(client, cmd, 0, payload, len, fds, nfds);

    return vfu_wait_reply(client, id);
}

static void map_guest_ram(bool share_fd)
{
    gm = guest_mem_new(GUEST_MEM_DEFAULT_BASE, GUEST_MEM_DEFAULT_SIZE);
    guest_mem_map_checked(gm, client, share_fd);
}

/* ---- negotiation ---- */

START_TEST(test_negotiate_good)
{
    const VfuServerCaps *caps;
    g_autofree char *why = NULL;
    VfuDeviceInfo info;

    client = vfu_client_connect(sock_path);
    qos_assert_errno(vfu_negotiate(client, 0, 0, NULL), 0);
    caps = vfu_server_caps(client);

    ck_assert_uint_eq(caps->major, 0);
    ck_assert_uint_eq(caps->minor, 0);
    ck_assert_msg(caps->json, "VERSION reply carries no JSON");
    ck_assert_msg(caps->json_nul_at_end, "VERSION reply JSON must end with "
                  "its NUL at the end of the payload: %s", caps->json);
    ck_assert_msg(strstr(caps->json, "\"capabilities\""), "no "
                  "\"capabilities\" object in %s", caps->json);
    ck_assert_msg(vfu_caps_is_subset(VFU_CLIENT_DEFAULT_CAPS, caps->json,
                                     &why),
                  "reply capabilities are not a subset of ours: %s (%s)",
                  why, caps->json);
    ck_assert_msg(caps->reply_size <= caps->request_size, "VERSION reply is "
                  "%u bytes, longer than the %u-byte request",
                  caps->reply_size, caps->request_size);
    ck_assert_msg(caps->max_msg_fds >= 1 && caps->max_msg_fds <= 1024,
                  "max_msg_fds %" PRIu64, caps->max_msg_fds);
    ck_assert_msg(caps->max_data_xfer_size >= 4096 &&
                  caps->max_data_xfer_size <= (1u << 30),
                  "max_data_xfer_size %" PRIu64, caps->max_data_xfer_size);
    ck_assert_msg(caps->pgsizes & 4096, "pgsizes 0x%" PRIx64 " lacks 4 KiB",
                  caps->pgsizes);

    qos_assert_errno(vfu_get_device_info(client, &info), 0);
    vfu_client_assert_clean(client);
}
END_TEST

START_TEST(test_negotiate_minor)
{
    const VfuServerCaps *caps;

    /* A newer minor is fine: the server answers with one it supports. */
    client = vfu_client_connect(sock_path);
    qos_assert_errno(vfu_negotiate(client, 0, 7, NULL), 0);
    caps = vfu_server_caps(client);
    ck_assert_uint_eq(caps->major, 0);
    ck_assert_uint_le(caps->minor, 7);
    disconnect();

    /* Version data is optional. */
    client = vfu_client_connect(sock_path);
    qos_assert_errno(vfu_negotiate(client, 0, 0, ""), 0);
    ck_assert_uint_eq(vfu_server_caps(client)->major, 0);
    vfu_client_assert_clean(client);
}
END_TEST

/* After a refused VERSION, a new connection negotiates normally. */
static void assert_negotiates_again(void)
{
    VfuDeviceInfo info;

    disconnect();
    iovd_proc_assert_alive(proc);
    client = vfu_client_open(sock_path);
    qos_assert_errno(vfu_get_device_info(client, &info), 0);
    vfu_client_assert_clean(client);
}

START_TEST(test_negotiate_wrong_major)
{
    int r;

    client = vfu_client_connect(sock_path);
    r = vfu_negotiate(client, 1, 0, NULL);
    assert_err_in(r, "VERSION 1.0", -EINVAL, -ENOTSUP, 0);
    assert_negotiates_again();
    disconnect();

    client = vfu_client_connect(sock_path);
    r = vfu_negotiate(client, 0xffff, 0, NULL);
    assert_err_in(r, "VERSION 65535.0", -EINVAL, -ENOTSUP, 0);
    assert_negotiates_again();
}
END_TEST

START_TEST(test_negotiate_bad_json)
{
    static const char *const bad[] = {
        "{capabilities",
        "{\"capabilities\":{\"max_msg_fds\":16}",
        "[1, 2, 3]",
        "{\"capabilities\":5}",
        "{\"capabilities\":{\"max_msg_fds\":\"many\"}}",
        "{\"capabilities\":{\"max_data_xfer_size\":-1}}",
    };

    for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
        g_autofree char *what = g_strdup_printf("VERSION with JSON %s",
                                                bad[i]);

        client = vfu_client_connect(sock_path);
        assert_err_in(vfu_negotiate(client, 0, 0, bad[i]), what, -EINVAL, 0,
                      0);
        assert_negotiates_again();
        disconnect();
    }
}
END_TEST

START_TEST(test_negotiate_bad_payload)
{
    static const char json[] = "{\"capabilities\":{}}";
    uint8_t buf[4 + sizeof(json)];
    g_autoptr(VfuRxMsg) m1 = NULL;
    g_autoptr(VfuRxMsg) m2 = NULL;

    /* JSON without its terminating NUL. */
    stw_le_p(buf, 0);
    stw_le_p(buf + 2, 0);
    memcpy(buf + 4, json, sizeof(json) - 1);
    client = vfu_client_connect(sock_path);
    m1 = vfu_negotiate_raw(client, buf, 4 + sizeof(json) - 1);
    assert_error_reply(m1, EINVAL, "VERSION JSON without NUL");
    assert_negotiates_again();
    disconnect();

    /* A payload shorter than major + minor. */
    client = vfu_client_connect(sock_path);
    m2 = vfu_negotiate_raw(client, buf, 2);
    assert_error_reply(m2, EINVAL, "VERSION with a 2-byte payload");
    assert_negotiates_again();
}
END_TEST

/* ---- device, region and irq info ---- */

START_TEST(test_device_info)
{
    g_autoptr(VfuRxMsg) m = NULL;
    VfuDeviceInfo req = { .argsz = sizeof(req) }, info;

    m = raw_request(VFU_CMD_DEVICE_GET_INFO, &req, sizeof(req), NULL, 0);
    ck_assert_int_eq(vfu_rx_msg_error(m), 0);
    ck_assert_uint_ge(m->len, sizeof(info));
    memcpy(&info, m->payload, sizeof(info));
    ck_assert_uint_eq(info.argsz, sizeof(info));
    ck_assert_uint_eq(info.flags & (VFIO_DEVICE_FLAGS_RESET |
                                    VFIO_DEVICE_FLAGS_PCI),
                      VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_PCI);
    ck_assert_uint_eq(info.num_regions, VFIO_PCI_NUM_REGIONS);
    ck_assert_uint_eq(info.num_irqs, VFIO_PCI_NUM_IRQS);
    ck_assert_uint_eq(m->nfds, 0);
}
END_TEST

START_TEST(test_region_info)
{
    static const uint64_t bar_size[PCI_NUM_BARS] = {
        [TESTDEV_BAR_REGS] = TESTDEV_REGS_SIZE,
        [TESTDEV_BAR_MSIX] = TESTDEV_MSIX_SIZE,
        [TESTDEV_BAR_MEM] = TESTDEV_MEM_SIZE,
    };
    const uint32_t rw = VFIO_REGION_INFO_FLAG_READ |
                        VFIO_REGION_INFO_FLAG_WRITE;
    VfuRegion r;
    struct stat st;
    void *p;

    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        qos_assert_errno(vfu_get_region_info(client, i, &r), 0);
        ck_assert_uint_eq(r.index, i);
        if (i == TESTDEV_BAR_MEM) {
            vfu_region_clear(&r);
            continue;       /* below */
        }
        ck_assert_msg(r.size == bar_size[i], "BAR%u size 0x%" PRIx64
                      ", expected 0x%" PRIx64, i, r.size, bar_size[i]);
        if (bar_size[i]) {
            ck_assert_uint_eq(r.flags & rw, rw);
        }
        ck_assert_msg(!(r.flags & VFIO_REGION_INFO_FLAG_MMAP),
                      "BAR%u claims MMAP", i);
        ck_assert_msg(r.fd < 0, "BAR%u passed an fd without MMAP", i);
        ck_assert_uint_eq(r.tries, 1);
        vfu_region_clear(&r);
    }

    /* BAR2: 64 KiB, its first 32 KiB mmap-able through a sparse cap. */
    qos_assert_errno(vfu_get_region_info(client, TESTDEV_BAR_MEM, &r), 0);
    ck_assert_uint_eq(r.size, TESTDEV_MEM_SIZE);
    ck_assert_uint_eq(r.flags & rw, rw);
    ck_assert_msg(r.flags & VFIO_REGION_INFO_FLAG_MMAP, "BAR2 flags 0x%x "
                  "lack MMAP", r.flags);
    ck_assert_msg(r.flags & VFIO_REGION_INFO_FLAG_CAPS, "BAR2 flags 0x%x "
                  "lack CAPS", r.flags);
    ck_assert_msg(r.first_argsz > sizeof(VfuRegionInfo), "BAR2: first "
                  "reply argsz %u does not ask for room for the capability",
                  r.first_argsz);
    ck_assert_msg(r.tries == 2, "BAR2 region info took %u requests, "
                  "expected 2 (argsz retry)", r.tries);
    ck_assert_uint_ge(r.argsz, sizeof(VfuRegionInfo) +
                      sizeof(struct vfio_region_info_cap_sparse_mmap) +
                      sizeof(struct vfio_region_sparse_mmap_area));
    ck_assert_msg(r.has_sparse_cap, "BAR2 has no sparse mmap capability");
    ck_assert_uint_eq(r.nr_areas, 1);
    ck_assert_uint_eq(r.areas[0].offset, 0);
    ck_assert_uint_eq(r.areas[0].size, TESTDEV_MEM_MMAP_SIZE);
    ck_assert_msg(r.fd >= 0, "BAR2 region info passed no fd");
    ck_assert_int_eq(fstat(r.fd, &st), 0);
    p = mmap(NULL, TESTDEV_MEM_MMAP_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
             r.fd, r.offset);
    ck_assert_msg(p != MAP_FAILED, "mmap of BAR2's sparse area: %s",
                  g_strerror(errno));
    munmap(p, TESTDEV_MEM_MMAP_SIZE);
    vfu_region_clear(&r);

    /* Config space. */
    qos_assert_errno(vfu_get_region_info(client, CONFIG_REGION, &r), 0);
    ck_assert_msg(r.size == PCI_CFG_SPACE_SIZE ||
                  r.size == PCIE_CFG_SPACE_SIZE, "config size 0x%" PRIx64,
                  r.size);
    ck_assert_uint_eq(r.flags & rw, rw);
    ck_assert_msg(!(r.flags & VFIO_REGION_INFO_FLAG_MMAP), "config MMAP");
    ck_assert_int_lt(r.fd, 0);
    vfu_region_clear(&r);

    /* No VGA. */
    qos_assert_errno(vfu_get_region_info(client, VFIO_PCI_VGA_REGION_INDEX,
                                         &r), 0);
    ck_assert_uint_eq(r.size, 0);
    vfu_region_clear(&r);

    /* ROM: whatever it is, it is not mmap-able without an fd. */
    qos_assert_errno(vfu_get_region_info(client, VFIO_PCI_ROM_REGION_INDEX,
                                         &r), 0);
    ck_assert(!(r.flags & VFIO_REGION_INFO_FLAG_MMAP) || r.fd >= 0);
    vfu_region_clear(&r);

    /* Out of range. */
    qos_assert_errno(vfu_get_region_info(client, VFIO_PCI_NUM_REGIONS, &r),
                     -EINVAL);
    qos_assert_errno(vfu_get_region_info(client, 0xffffffff, &r), -EINVAL);
    assert_still_serving();
    vfu_client_assert_clean(client);
}
END_TEST

START_TEST(test_irq_info)
{
    VfuIrqInfo info;

    qos_assert_errno(vfu_get_irq_info(client, VFIO_PCI_INTX_IRQ_INDEX,
                                      &info), 0);
    ck_assert_uint_eq(info.index, VFIO_PCI_INTX_IRQ_INDEX);
    ck_assert_uint_eq(info.count, 1);
    ck_assert_msg((info.flags & (VFIO_IRQ_INFO_EVENTFD |
                                 VFIO_IRQ_INFO_MASKABLE)) ==
                  (VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE),
                  "INTx flags 0x%x lack EVENTFD|MASKABLE", info.flags);

    qos_assert_errno(vfu_get_irq_info(client, VFIO_PCI_MSIX_IRQ_INDEX,
                                      &info), 0);
    ck_assert_uint_eq(info.index, VFIO_PCI_MSIX_IRQ_INDEX);
    ck_assert_uint_eq(info.count, TESTDEV_MSIX_VECTORS);
    ck_assert_msg(info.flags & VFIO_IRQ_INFO_EVENTFD, "MSI-X flags 0x%x",
                  info.flags);

    for (unsigned i = 0; i < VFIO_PCI_NUM_IRQS; i++) {
        qos_assert_errno(vfu_get_irq_info(client, i, &info), 0);
        ck_assert_uint_eq(info.index, i);
        ck_assert_uint_eq(info.argsz, sizeof(info));
    }
    qos_assert_errno(vfu_get_irq_info(client, VFIO_PCI_NUM_IRQS, &info),
                     -EINVAL);
    qos_assert_errno(vfu_get_irq_info(client, 0x80000000, &info), -EINVAL);
    assert_still_serving();
    vfu_client_assert_clean(client);
}
END_TEST

/* ---- configuration space ---- */

START_TEST(test_config_space)
{
    const VfuRegion *cfg = qpci_region(dev, CONFIG_REGION);
    g_autofree uint8_t *all = g_malloc(cfg->size);
    uint16_t status, cmd;
    uint8_t cap, b;
    uint32_t v;

    ck_assert_uint_eq(qpci_config_readw(dev, PCI_VENDOR_ID),
                      TESTDEV_VENDOR_ID);
    ck_assert_uint_eq(qpci_config_readw(dev, PCI_DEVICE_ID),
                      TESTDEV_DEVICE_ID);
    ck_assert_uint_eq(qpci_config_readl(dev, PCI_REVISION_ID) >> 8,
                      TESTDEV_CLASS);
    ck_assert_uint_eq(qpci_config_readb(dev, PCI_HEADER_TYPE) & 0x7f, 0);

    /* One read of the whole space agrees with small reads. */
    qos_assert_errno(vfu_region_read(client, CONFIG_REGION, 0, all,
                                     cfg->size), 0);
    ck_assert_uint_eq(lduw_le_p(all + PCI_VENDOR_ID), TESTDEV_VENDOR_ID);
    ck_assert_uint_eq(lduw_le_p(all + PCI_DEVICE_ID), TESTDEV_DEVICE_ID);

    /* Read-only registers keep their value. */
    qpci_config_writel(dev, PCI_VENDOR_ID, 0xffffffff);
    ck_assert_uint_eq(qpci_config_readw(dev, PCI_VENDOR_ID),
                      TESTDEV_VENDOR_ID);
    ck_assert_uint_eq(qpci_config_readw(dev, PCI_DEVICE_ID),
                      TESTDEV_DEVICE_ID);
    qpci_config_writel(dev, PCI_REVISION_ID, 0);
    ck_assert_uint_eq(qpci_config_readl(dev, PCI_REVISION_ID) >> 8,
                      TESTDEV_CLASS);
    b = qpci_config_readb(dev, PCI_CAPABILITY_LIST);
    qpci_config_writeb(dev, PCI_CAPABILITY_LIST, ~b);
    ck_assert_uint_eq(qpci_config_readb(dev, PCI_CAPABILITY_LIST), b);
    b = qpci_config_readb(dev, PCI_INTERRUPT_PIN);
    qpci_config_writeb(dev, PCI_INTERRUPT_PIN, ~b);
    ck_assert_uint_eq(qpci_config_readb(dev, PCI_INTERRUPT_PIN), b);

    /* The command register is writable. */
    qpci_config_writew(dev, PCI_COMMAND, 0);
    cmd = qpci_config_readw(dev, PCI_COMMAND);
    ck_assert_msg(!(cmd & (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
                           PCI_COMMAND_INTX_DISABLE)), "COMMAND 0x%x", cmd);
    qpci_config_writew(dev, PCI_COMMAND, PCI_COMMAND_MEMORY |
                       PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE);
    cmd = qpci_config_readw(dev, PCI_COMMAND);
    ck_assert_uint_eq(cmd & (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
                             PCI_COMMAND_INTX_DISABLE),
                      PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
                      PCI_COMMAND_INTX_DISABLE);
    qpci_config_writew(dev, PCI_COMMAND, PCI_COMMAND_MEMORY |
                       PCI_COMMAND_MASTER);

    /* Status: read-only bits stay, W1C error bits clear on write of 1s. */
    status = qpci_config_readw(dev, PCI_STATUS);
    ck_assert_msg(status & PCI_STATUS_CAP_LIST, "STATUS 0x%x lacks "
                  "CAP_LIST", status);
    qpci_config_writew(dev, PCI_STATUS, 0xffff);
    ck_assert_uint_eq(qpci_config_readw(dev, PCI_STATUS),
                      status & ~PCI_STATUS_W1C_MASK);
    qpci_config_writew(dev, PCI_STATUS, 0);
    ck_assert_uint_eq(qpci_config_readw(dev, PCI_STATUS),
                      status & ~PCI_STATUS_W1C_MASK);

    /* The MSI-X capability describes BAR1's table and PBA. */
    cap = qpci_find_capability(dev, PCI_CAP_ID_MSIX, 0);
    ck_assert_msg(cap, "no MSI-X capability");
    v = qpci_config_readw(dev, cap + PCI_MSIX_FLAGS);
    ck_assert_uint_eq((v & PCI_MSIX_FLAGS_QSIZE) + 1, TESTDEV_MSIX_VECTORS);
    v = qpci_config_readl(dev, cap + PCI_MSIX_TABLE);
    ck_assert_uint_eq(v & PCI_MSIX_BIR_MASK, TESTDEV_BAR_MSIX);
    ck_assert_uint_eq(v & ~PCI_MSIX_BIR_MASK, 0);
    v = qpci_config_readl(dev, cap + PCI_MSIX_PBA);
    ck_assert_uint_eq(v & PCI_MSIX_BIR_MASK, TESTDEV_BAR_MSIX);
    ck_assert_uint_eq(v & ~PCI_MSIX_BIR_MASK, TESTDEV_MSIX_PBA_OFF);

    /* Past the end of config space. */
    qos_assert_errno(vfu_region_read(client, CONFIG_REGION, cfg->size,
                                     &v, 1), -EINVAL);
    qos_assert_errno(vfu_region_read(client, CONFIG_REGION, cfg->size - 2,
                                     &v, 4), -EINVAL);
    assert_still_serving();
    vfu_client_assert_clean(client);
}
END_TEST

/* Write all-ones to a BAR register; return what reads back. */
static uint32_t size_bar(unsigned bar)
{
    uint32_t off = PCI_BASE_ADDRESS_0 + 4 * bar;
    uint32_t orig = qpci_config_readl(dev, off);
    uint32_t mask;

    qpci_config_writel(dev, off, 0xffffffff);
    mask = qpci_config_readl(dev, off);
    qpci_config_writel(dev, off, orig);
    ck_assert_uint_eq(qpci_config_readl(dev, off), orig);
    return mask;
}

START_TEST(test_bar_sizing)
{
    uint32_t mask, addr;
    bool bar2_64;

    mask = size_bar(TESTDEV_BAR_REGS);
    ck_assert_msg((mask & ~0xfu) == (uint32_t)~(TESTDEV_REGS_SIZE - 1),
                  "BAR0 sizing reads 0x%08x", mask);
    ck_assert_msg(!(mask & PCI_BASE_ADDRESS_SPACE_IO), "BAR0 is I/O");

    mask = size_bar(TESTDEV_BAR_MSIX);
    ck_assert_msg((mask & ~0xfu) == (uint32_t)~(TESTDEV_MSIX_SIZE - 1),
                  "BAR1 sizing reads 0x%08x", mask);

    mask = size_bar(TESTDEV_BAR_MEM);
    ck_assert_msg((mask & ~0xfu) == (uint32_t)~(TESTDEV_MEM_SIZE - 1),
                  "BAR2 sizing reads 0x%08x", mask);
    bar2_64 = (mask & 0x6) == PCI_BASE_ADDRESS_MEM_TYPE_64;
    if (bar2_64) {
        ck_assert_uint_eq(size_bar(TESTDEV_BAR_MEM + 1), 0xffffffff);
    }

    /* Unimplemented BARs read as zero whatever is written. */
    for (unsigned i = TESTDEV_BAR_MEM + (bar2_64 ? 2 : 1); i < PCI_NUM_BARS;
         i++) {
        ck_assert_msg(size_bar(i) == 0, "unimplemented BAR%u is writable",
                      i);
    }

    /* A programmed address sticks (low bits keep the type). */
    qpci_config_writel(dev, PCI_BASE_ADDRESS_0, 0xfebf1000);
    addr = qpci_config_readl(dev, PCI_BASE_ADDRESS_0);
    ck_assert_uint_eq(addr & ~0xfu, 0xfebf1000);
    vfu_client_assert_clean(client);
}
END_TEST

/* ---- testdev registers ---- */

START_TEST(test_testdev_regs)
{
    uint64_t v64;
    uint16_t cmd;

    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_ID), TESTDEV_ID_VALUE);
    testdev_writel(dev, TESTDEV_REG_ID, 0);
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_ID), TESTDEV_ID_VALUE);

    /* Reset values. */
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_SCRATCH), 0);
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_INT_STATUS), 0);
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_INT_MASK), 0x7);
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_DMA_STATUS), 0);
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_DMA_COUNT), 0);
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_DMA_START), 0);

    testdev_writel(dev, TESTDEV_REG_SCRATCH, 0xdeadbeef);
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_SCRATCH), 0xdeadbeef);

    /* A posted write is applied before a later read is answered. */
    qpci_bar_writel_posted(dev, TESTDEV_BAR_REGS, TESTDEV_REG_SCRATCH,
                           0x12345678);
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_SCRATCH), 0x12345678);

    /* 64-bit register: whole and in halves. */
    qpci_bar_writeq(dev, TESTDEV_BAR_REGS, TESTDEV_REG_REG64,
                    0x0123456789abcdefULL);
    v64 = qpci_bar_readq(dev, TESTDEV_BAR_REGS, TESTDEV_REG_REG64);
    ck_assert_msg(v64 == 0x0123456789abcdefULL, "REG64 0x%016" PRIx64, v64);
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_REG64), 0x89abcdef);
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_REG64 + 4), 0x01234567);
    testdev_writel(dev, TESTDEV_REG_REG64 + 4, 0xfeedface);
    v64 = qpci_bar_readq(dev, TESTDEV_BAR_REGS, TESTDEV_REG_REG64);
    ck_assert_msg(v64 == 0xfeedface89abcdefULL, "REG64 0x%016" PRIx64, v64);

    /* With memory decoding off, BAR reads return all-ones. */
    cmd = qpci_config_readw(dev, PCI_COMMAND);
    qpci_config_writew(dev, PCI_COMMAND, cmd & ~PCI_COMMAND_MEMORY);
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_ID), 0xffffffff);
    qpci_config_writew(dev, PCI_COMMAND, cmd);
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_ID), TESTDEV_ID_VALUE);
    vfu_client_assert_clean(client);
}
END_TEST

/* REGION_WRITE_MULTI, which the server offers as write_multiple. */
START_TEST(test_write_multi)
{
    VfuWriteOne wr[3] = {
        { .offset = TESTDEV_REG_SCRATCH, .region = TESTDEV_BAR_REGS,
          .count = 4 },
        { .offset = TESTDEV_REG_REG64, .region = TESTDEV_BAR_REGS,
          .count = 8 },
        { .offset = TESTDEV_REG_SCRATCH, .region = TESTDEV_BAR_REGS,
          .count = 4 },
    };

    ck_assert_msg(vfu_server_caps(client)->write_multiple, "the server "
                  "does not offer write_multiple: %s",
                  vfu_server_caps(client)->json);

    /* Posted, as QEMU sends them; applied in order. */
    stl_le_p(wr[0].data, 0xa5a5a5a5);
    stq_le_p(wr[1].data, 0x1111222233334444ULL);
    stl_le_p(wr[2].data, 0x5a5a5a5a);
    vfu_write_multi(client, wr, 3, true);
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_SCRATCH), 0x5a5a5a5a);
    ck_assert(qpci_bar_readq(dev, TESTDEV_BAR_REGS, TESTDEV_REG_REG64) ==
              0x1111222233334444ULL);

    /* With a reply: wr_cnt. */
    stl_le_p(wr[0].data, 0x77777777);
    qos_assert_errno(vfu_write_multi(client, wr, 1, false), 0);
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_SCRATCH), 0x77777777);
    vfu_client_assert_clean(client);
}
END_TEST

START_TEST(test_bar2_mmap)
{
    g_autofree uint8_t *want = g_malloc(TESTDEV_MEM_SIZE);
    g_autofree uint8_t *got = g_malloc(TESTDEV_MEM_SIZE);
    uint8_t *p;

    ck_assert_uint_eq(qpci_bar_map(dev, TESTDEV_BAR_MEM), 1);
    p = qpci_bar_ptr(dev, TESTDEV_BAR_MEM, 0, TESTDEV_MEM_MMAP_SIZE);
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_null(qpci_bar_ptr(dev, TESTDEV_BAR_MEM,
                                    TESTDEV_MEM_MMAP_SIZE, 1));

    /* Write through the mapping, read by message. */
    fill_pattern(want, TESTDEV_MEM_SIZE, 1);
    memcpy(p, want, TESTDEV_MEM_MMAP_SIZE);
    smp_mb();
    qos_assert_errno(vfu_region_read(client, TESTDEV_BAR_MEM, 0, got,
                                     TESTDEV_MEM_MMAP_SIZE), 0);
    assert_bytes(got, want, TESTDEV_MEM_MMAP_SIZE, "BAR2 mmap -> message");

    /* The part past the sparse area, by message both ways. */
    qos_assert_errno(vfu_region_write(client, TESTDEV_BAR_MEM,
                                      TESTDEV_MEM_MMAP_SIZE,
                                      want + TESTDEV_MEM_MMAP_SIZE,
                                      TESTDEV_MEM_SIZE -
                                      TESTDEV_MEM_MMAP_SIZE), 0);
    qos_assert_errno(vfu_region_read(client, TESTDEV_BAR_MEM, 0, got,
                                     TESTDEV_MEM_SIZE), 0);
    assert_bytes(got, want, TESTDEV_MEM_SIZE, "BAR2 by message");

    /* Written by message, seen through the mapping. */
    fill_pattern(want, TESTDEV_MEM_MMAP_SIZE, 2);
    qos_assert_errno(vfu_region_write(client, TESTDEV_BAR_MEM, 0, want,
                                      TESTDEV_MEM_MMAP_SIZE), 0);
    smp_mb();
    assert_bytes(p, want, TESTDEV_MEM_MMAP_SIZE, "BAR2 message -> mmap");

    /* An access straddling the end of the sparse area. */
    qos_assert_errno(vfu_region_read(client, TESTDEV_BAR_MEM,
                                     TESTDEV_MEM_MMAP_SIZE - 16, got, 32),
                     0);
    ck_assert_int_eq(memcmp(got, p + TESTDEV_MEM_MMAP_SIZE - 16, 16), 0);

    /* Past the end of BAR2. */
    qos_assert_errno(vfu_region_read(client, TESTDEV_BAR_MEM,
                                     TESTDEV_MEM_SIZE - 4, got, 8), -EINVAL);
    vfu_client_assert_clean(client);
}
END_TEST

/* ---- DMA ---- */

/* DMA a pattern into BAR2 and back out, checking every byte. */
static void dma_round_trip(bool share_fd)
{
    const uint32_t len = TESTDEV_MEM_SIZE;
    const uint32_t ulen = 0x1235, uoff = TESTDEV_MEM_MMAP_SIZE - 0x11;
    g_autofree uint8_t *want = g_malloc(len);
    g_autofree uint8_t *got = g_malloc(len);
    const VfuClientStats *stats = vfu_client_stats(client);
    uint64_t src, dst;
    uint32_t st;

    map_guest_ram(share_fd);
    src = guest_alloc_aligned(gm, len, GUEST_PAGE_SIZE);
    dst = guest_alloc_aligned(gm, len + 64, GUEST_PAGE_SIZE);

    /* Guest memory -> device. */
    fill_pattern(want, len, 3);
    guest_memwrite(gm, src, want, len);
    st = testdev_dma(dev, src, len, 0, TESTDEV_DMA_TO_DEVICE);
    ck_assert_msg(st & TESTDEV_INT_DMA_DONE, "INT_STATUS 0x%x", st);
    ck_assert_msg(!(st & TESTDEV_INT_DMA_ERROR), "INT_STATUS 0x%x, "
                  "DMA_STATUS %u", st,
                  testdev_readl(dev, TESTDEV_REG_DMA_STATUS));
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_DMA_STATUS), 0);
    qos_assert_errno(vfu_region_read(client, TESTDEV_BAR_MEM, 0, got, len),
                     0);
    assert_bytes(got, want, len, "BAR2 after DMA to device");

    /* Device -> guest memory. */
    guest_memset(gm, dst, 0, len);
    st = testdev_dma(dev, dst, len, 0, TESTDEV_DMA_FROM_DEVICE);
    ck_assert_msg(st == TESTDEV_INT_DMA_DONE, "INT_STATUS 0x%x", st);
    guest_memread(gm, dst, got, len);
    assert_bytes(got, want, len, "guest memory after DMA from device");

    /* Odd addresses and length, across the sparse area's end. */
    fill_pattern(want, ulen, 4);
    guest_memwrite(gm, src + 3, want, ulen);
    st = testdev_dma(dev, src + 3, ulen, uoff, TESTDEV_DMA_TO_DEVICE);
    ck_assert_msg(st == TESTDEV_INT_DMA_DONE, "INT_STATUS 0x%x", st);
    qos_assert_errno(vfu_region_read(client, TESTDEV_BAR_MEM, uoff, got,
                                     ulen), 0);
    assert_bytes(got, want, ulen, "BAR2 after unaligned DMA");

    guest_memset(gm, dst, 0xa5, ulen + 64);
    st = testdev_dma(dev, dst + 5, ulen, uoff, TESTDEV_DMA_FROM_DEVICE);
    ck_assert_msg(st == TESTDEV_INT_DMA_DONE, "INT_STATUS 0x%x", st);
    guest_memread(gm, dst + 5, got, ulen);
    assert_bytes(got, want, ulen, "guest memory after unaligned DMA");
    for (unsigned i = 0; i < 5; i++) {
        ck_assert_uint_eq(guest_readb(gm, dst + i), 0xa5);
    }
    for (unsigned i = 0; i < 64 - 5; i++) {
        ck_assert_msg(guest_readb(gm, dst + 5 + ulen + i) == 0xa5,
                      "DMA wrote past its end (byte +%u)", i);
    }

    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_DMA_COUNT), 4);
    ck_assert_uint_eq(stats->dma_errors, 0);
    if (share_fd) {
        ck_assert_msg(stats->dma_reads == 0 && stats->dma_writes == 0,
                      "the server used DMA_READ/WRITE (%" PRIu64 "/%" PRIu64
                      ") on fd-mapped memory", stats->dma_reads,
                      stats->dma_writes);
    } else {
        ck_assert_msg(stats->dma_reads > 0 && stats->dma_writes > 0,
                      "no DMA_READ/DMA_WRITE seen (%" PRIu64 "/%" PRIu64 ")",
                      stats->dma_reads, stats->dma_writes);
        ck_assert_uint_ge(stats->dma_read_bytes, len + ulen);
        ck_assert_uint_ge(stats->dma_write_bytes, len + ulen);
    }
    vfu_client_assert_clean(client);
}

START_TEST(test_dma_fd)
{
    dma_round_trip(true);
}
END_TEST

START_TEST(test_dma_nofd)
{
    dma_round_trip(false);
}
END_TEST

START_TEST(test_dma_nofd_spec_layout)
{
    dma_round_trip(false);
}
END_TEST

/*
 * The client truncates guest RAM after mapping it: a device DMA there
 * fails with an error status, and the daemon lives (a CPU access to a
 * page past the end of a file raises SIGBUS).
 */
START_TEST(test_dma_memory_truncated)
{
    uint8_t want[4096];
    uint64_t src;
    uint32_t st;

    map_guest_ram(true);
    src = guest_alloc_aligned(gm, sizeof(want), GUEST_PAGE_SIZE);
    fill_pattern(want, sizeof(want), 7);
    guest_memwrite(gm, src, want, sizeof(want));
    st = testdev_dma(dev, src, sizeof(want), 0, TESTDEV_DMA_TO_DEVICE);
    ck_assert_msg(st == TESTDEV_INT_DMA_DONE, "INT_STATUS 0x%x", st);

    /* Gone: from here on the test touches that memory no more. */
    ck_assert_int_eq(ftruncate(guest_mem_fd(gm), 0), 0);
    for (unsigned dir = 0; dir < 2; dir++) {
        st = testdev_dma(dev, src, sizeof(want), 0,
                         dir ? TESTDEV_DMA_FROM_DEVICE
                             : TESTDEV_DMA_TO_DEVICE);
        ck_assert_msg(st & TESTDEV_INT_DMA_ERROR, "INT_STATUS 0x%x", st);
        ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_DMA_STATUS),
                          EFAULT);
    }
    assert_still_serving();
}
END_TEST

START_TEST(test_dma_unmapped)
{
    uint64_t buf;
    uint32_t st;

    map_guest_ram(true);
    buf = guest_alloc(gm, 4096);

    /* Below guest RAM: nothing is mapped there. */
    st = testdev_dma(dev, 0x1000, 256, 0, TESTDEV_DMA_TO_DEVICE);
    ck_assert_msg(st & TESTDEV_INT_DMA_ERROR, "INT_STATUS 0x%x", st);
    ck_assert_msg(!(st & TESTDEV_INT_DMA_DONE), "INT_STATUS 0x%x", st);
    ck_assert_uint_ne(testdev_readl(dev, TESTDEV_REG_DMA_STATUS), 0);
    assert_still_serving();

    /* Straddling the end of guest RAM, both directions. */
    st = testdev_dma(dev, guest_mem_base(gm) + guest_mem_size(gm) - 128,
                     256, 0, TESTDEV_DMA_FROM_DEVICE);
    ck_assert_msg(st & TESTDEV_INT_DMA_ERROR, "INT_STATUS 0x%x", st);
    ck_assert_uint_ne(testdev_readl(dev, TESTDEV_REG_DMA_STATUS), 0);
    st = testdev_dma(dev, guest_mem_base(gm) + guest_mem_size(gm) - 128,
                     256, 0, TESTDEV_DMA_TO_DEVICE);
    ck_assert_msg(st & TESTDEV_INT_DMA_ERROR, "INT_STATUS 0x%x", st);
    assert_still_serving();

    /* A good DMA still works and clears DMA_STATUS. */
    guest_memset(gm, buf, 0x3c, 4096);
    st = testdev_dma(dev, buf, 4096, 0, TESTDEV_DMA_TO_DEVICE);
    ck_assert_msg(st == TESTDEV_INT_DMA_DONE, "INT_STATUS 0x%x", st);
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_DMA_STATUS), 0);
    ck_assert_uint_eq(qpci_bar_readb(dev, TESTDEV_BAR_MEM, 4095), 0x3c);

    /* After DMA_UNMAP the same address fails. */
    qos_assert_errno(guest_mem_unmap(gm, client), 0);
    st = testdev_dma(dev, buf, 4096, 0, TESTDEV_DMA_TO_DEVICE);
    ck_assert_msg(st & TESTDEV_INT_DMA_ERROR, "DMA after DMA_UNMAP: "
                  "INT_STATUS 0x%x", st);
    assert_still_serving();
    vfu_client_assert_clean(client);
}
END_TEST

/* Without bus mastering the device must not reach guest memory. */
START_TEST(test_dma_no_bus_master)
{
    uint64_t buf;
    uint32_t st;

    map_guest_ram(true);
    buf = guest_alloc(gm, 4096);
    guest_memset(gm, buf, 0, 4096);
    qos_assert_errno(vfu_region_write(client, TESTDEV_BAR_MEM, 0,
                                      "\x11\x22\x33\x44", 4), 0);
    qpci_config_writew(dev, PCI_COMMAND, PCI_COMMAND_MEMORY);
    st = testdev_dma(dev, buf, 4, 0, TESTDEV_DMA_FROM_DEVICE);
    ck_assert_msg(st & TESTDEV_INT_DMA_ERROR, "INT_STATUS 0x%x", st);
    ck_assert_uint_eq(guest_readl(gm, buf), 0);
    assert_still_serving();
}
END_TEST

/*
 * A reset while the DMA engine waits for the VMM's answer to its
 * DMA_READ: the engine's work is cancelled before the reset applies,
 * nothing of it shows afterwards (DMA_COUNT, DMA_STATUS, INT_STATUS), the
 * late reply is dropped, and the device works again.  By FLR (a config
 * write, answered while the work waits) and by DEVICE_RESET.
 */
START_TEST(test_reset_during_dma)
{
    uint8_t exp;
    uint64_t src;
    uint32_t st;

    map_guest_ram(false);
    src = guest_alloc_aligned(gm, TESTDEV_MEM_SIZE, GUEST_PAGE_SIZE);
    guest_memset(gm, src, 0x5a, TESTDEV_MEM_SIZE);
    exp = qpci_find_capability(dev, PCI_CAP_ID_EXP, 0);
    for (unsigned how = 0; how < 2; how++) {
        vfu_client_hold_dma(client, true);
        testdev_dma_start(dev, src, TESTDEV_MEM_SIZE, 0,
                          TESTDEV_DMA_TO_DEVICE, true);
        ck_assert(vfu_client_wait_held_dma(client, 1, QOS_TIMEOUT_MS));
        /* Served while the engine waits. */
        ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_DMA_START), 1);
        testdev_writel(dev, TESTDEV_REG_SCRATCH, 0x1234);
        ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_SCRATCH), 0x1234);
        if (how == 0) {
            qpci_config_writew(dev, exp + PCI_EXP_DEVCTL,
                               PCI_EXP_DEVCTL_BCR_FLR);
        } else {
            qos_assert_errno(vfu_device_reset(client), 0);
        }
        qpci_device_enable(dev);
        ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_DMA_START), 0);
        ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_DMA_COUNT), 0);
        ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_DMA_STATUS), 0);
        ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_INT_STATUS), 0);
        ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_SCRATCH), 0);
        /* The answer comes too late: nothing changes. */
        vfu_client_hold_dma(client, false);
        vfu_service(client, 50);
        ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_DMA_COUNT), 0);
        ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_INT_STATUS), 0);
        /* And it works again. */
        st = testdev_dma(dev, src, 4096, 0, TESTDEV_DMA_TO_DEVICE);
        ck_assert_msg(st == TESTDEV_INT_DMA_DONE, "INT_STATUS 0x%x", st);
        ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_DMA_COUNT), 1);
    }
    vfu_client_assert_clean(client);
}
END_TEST

/*
 * While one device's work waits for its VMM (a DMA reply withheld), the
 * daemon goes on: the monitor answers at once and another device serves
 * its own client, DMA through messages included.  (The wait is a parked
 * work item, not a loop nested inside the first device.)
 */
START_TEST(test_dma_wait_stalls_nothing)
{
    g_autofree char *qmp_path = NULL, *sock1 = NULL;
    VfuClient *c1;
    QPCIDevice *d1;
    GuestMem *gm1;
    QmpClient *qmp;
    json_object *ret;
    uint64_t src, buf1;
    int64_t t0;
    uint32_t st;

    qos_check_init();
    proc = iovd_proc_new();
    sock_path = iovd_proc_path(proc, "t0.sock");
    sock1 = iovd_proc_path(proc, "t1.sock");
    qmp_path = iovd_proc_path(proc, "qmp.sock");
    iovd_proc_add_args(proc, "-device", NULL);
    iovd_proc_add_argf(proc, "pci-testdev,id=t0,socket=%s", sock_path);
    iovd_proc_add_args(proc, "-device", NULL);
    iovd_proc_add_argf(proc, "pci-testdev,id=t1,socket=%s", sock1);
    iovd_proc_add_args(proc, "-qmp", NULL);
    iovd_proc_add_argf(proc, "unix:%s,server=on,wait=off", qmp_path);
    iovd_proc_start(proc);
    connect_device();
    map_guest_ram(false);
    c1 = vfu_client_open(sock1);
    d1 = qpci_device_new(c1);
    qpci_device_enable(d1);
    gm1 = guest_mem_new(GUEST_MEM_DEFAULT_BASE, GUEST_MEM_DEFAULT_SIZE);
    guest_mem_map_checked(gm1, c1, false);
    qmp = qmp_client_open(qmp_path);

    src = guest_alloc_aligned(gm, 65536, GUEST_PAGE_SIZE);
    vfu_client_hold_dma(client, true);
    testdev_dma_start(dev, src, 65536, 0, TESTDEV_DMA_TO_DEVICE, true);
    ck_assert(vfu_client_wait_held_dma(client, 1, QOS_TIMEOUT_MS));

    t0 = qos_now_ms();
    ret = qmp_ok(qmp, "query-status", NULL);
    json_object_put(ret);
    ck_assert_msg(qos_now_ms() - t0 < 500, "query-status took %" PRId64
                  " ms while a device waited for its VMM",
                  qos_now_ms() - t0);
    buf1 = guest_alloc_aligned(gm1, 8192, GUEST_PAGE_SIZE);
    guest_memset(gm1, buf1, 0x77, 8192);
    st = testdev_dma(d1, buf1, 8192, 0, TESTDEV_DMA_TO_DEVICE);
    ck_assert_msg(st == TESTDEV_INT_DMA_DONE, "t1 INT_STATUS 0x%x", st);
    ck_assert_uint_gt(vfu_client_stats(c1)->dma_reads, 0);
    /* t0 still waits; once answered it completes normally. */
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_DMA_START), 1);
    vfu_client_hold_dma(client, false);
    st = testdev_dma_wait(dev);
    ck_assert_msg(st & TESTDEV_INT_DMA_DONE, "t0 INT_STATUS 0x%x", st);

    qmp_client_free(qmp);
    qpci_device_free(d1);
    guest_mem_free(gm1);
    vfu_client_free(c1);
}
END_TEST

/* ---- interrupts ---- */

START_TEST(test_msix)
{
    uint64_t buf;
    uint32_t st;

    map_guest_ram(true);
    buf = guest_alloc(gm, 512);
    qpci_msix_enable(dev, TESTDEV_MSIX_VECTORS);

    /* DMA completion raises vector 0. */
    testdev_dma_start(dev, buf, 512, 0, TESTDEV_DMA_TO_DEVICE, true);
    qpci_msix_wait(dev, 0);
    qpci_msix_assert_quiet(dev, 1);
    st = testdev_readl(dev, TESTDEV_REG_INT_STATUS);
    ck_assert_msg(st & TESTDEV_INT_DMA_DONE, "INT_STATUS 0x%x", st);
    testdev_writel(dev, TESTDEV_REG_INT_ACK, st);
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_INT_STATUS), 0);

    /* INT_RAISE picks the vector. */
    testdev_writel(dev, TESTDEV_REG_INT_RAISE, 1);
    qpci_msix_wait(dev, 1);
    qpci_msix_assert_quiet(dev, 0);
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_INT_STATUS),
                      TESTDEV_INT_SOFT);

    qpci_bar_writel_posted(dev, TESTDEV_BAR_REGS, TESTDEV_REG_INT_RAISE, 0);
    qpci_msix_wait(dev, 0);
    qpci_msix_assert_quiet(dev, 1);

    /* Every raise is an edge, even while INT_STATUS stays set. */
    testdev_writel(dev, TESTDEV_REG_INT_RAISE, 1);
    qpci_msix_wait(dev, 1);

    vfu_client_assert_clean(client);
}
END_TEST

/*
 * MSI-X after a DMA through DMA_READ messages: the harness must answer them
 * while it waits for the interrupt.
 */
START_TEST(test_msix_dma_nofd)
{
    uint64_t buf;

    map_guest_ram(false);
    buf = guest_alloc(gm, 8192);
    guest_memset(gm, buf, 0x5e, 8192);
    qpci_msix_enable(dev, TESTDEV_MSIX_VECTORS);
    testdev_dma_start(dev, buf, 8192, 0, TESTDEV_DMA_TO_DEVICE, true);
    qpci_msix_wait(dev, 0);
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_INT_STATUS),
                      TESTDEV_INT_DMA_DONE);
    ck_assert_uint_eq(qpci_bar_readb(dev, TESTDEV_BAR_MEM, 8191), 0x5e);
    ck_assert_uint_ge(vfu_client_stats(client)->dma_reads, 1);
    vfu_client_assert_clean(client);
}
END_TEST

START_TEST(test_msix_mask)
{
    qpci_msix_enable(dev, TESTDEV_MSIX_VECTORS);

    qpci_msix_mask(dev, 1);
    testdev_writel(dev, TESTDEV_REG_INT_RAISE, 1);
    qpci_msix_assert_quiet(dev, 1);
    ck_assert_msg(qpci_bar_readl(dev, TESTDEV_BAR_MSIX,
                                 TESTDEV_MSIX_PBA_OFF) & 2,
                  "PBA bit 1 not set while vector 1 is masked and raised");
    ck_assert(qpci_msix_pending(dev, 1));
    ck_assert(!qpci_msix_pending(dev, 0));

    /* Vector 0 is not affected by vector 1's mask. */
    testdev_writel(dev, TESTDEV_REG_INT_RAISE, 0);
    qpci_msix_wait(dev, 0);

    qpci_msix_unmask(dev, 1);
    qpci_msix_wait(dev, 1);
    ck_assert_msg(!(qpci_bar_readl(dev, TESTDEV_BAR_MSIX,
                                   TESTDEV_MSIX_PBA_OFF) & 2),
                  "PBA bit 1 still set after the pending vector was "
                  "delivered");
    qpci_msix_assert_quiet(dev, 1);

    /* Unmasked again: delivered at once. */
    testdev_writel(dev, TESTDEV_REG_INT_RAISE, 1);
    qpci_msix_wait(dev, 1);

    /* Masked without a raise: unmask delivers nothing. */
    qpci_msix_mask(dev, 0);
    qpci_msix_unmask(dev, 0);
    qpci_msix_assert_quiet(dev, 0);
    vfu_client_assert_clean(client);
}
END_TEST

START_TEST(test_intx)
{
    qpci_intx_enable(dev);

    testdev_writel(dev, TESTDEV_REG_INT_RAISE, 0);
    qpci_intx_wait(dev);
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_INT_STATUS),
                      TESTDEV_INT_SOFT);
    ck_assert(qpci_config_readw(dev, PCI_STATUS) & PCI_STATUS_INTERRUPT);

    /* Level-triggered: still asserted at UNMASK, so it fires again. */
    qpci_intx_mask(dev);
    qpci_intx_unmask(dev);
    qpci_intx_wait(dev);

    /* Acknowledged: the line drops, UNMASK brings nothing. */
    testdev_writel(dev, TESTDEV_REG_INT_ACK, TESTDEV_INT_SOFT);
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_INT_STATUS), 0);
    ck_assert(!(qpci_config_readw(dev, PCI_STATUS) & PCI_STATUS_INTERRUPT));
    qpci_intx_mask(dev);
    qpci_intx_unmask(dev);
    qpci_intx_assert_quiet(dev);

    /* INT_MASK gates the line; unmasking the source asserts it. */
    testdev_writel(dev, TESTDEV_REG_INT_MASK, 0);
    testdev_writel(dev, TESTDEV_REG_INT_RAISE, 0);
    qpci_intx_assert_quiet(dev);
    testdev_writel(dev, TESTDEV_REG_INT_MASK, 0x7);
    qpci_intx_wait(dev);

    /* While masked by the client nothing fires; UNMASK delivers. */
    testdev_writel(dev, TESTDEV_REG_INT_ACK, TESTDEV_INT_SOFT);
    qpci_intx_mask(dev);
    qpci_intx_unmask(dev);
    qpci_intx_assert_quiet(dev);
    qpci_intx_mask(dev);
    testdev_writel(dev, TESTDEV_REG_INT_RAISE, 0);
    qpci_intx_assert_quiet(dev);
    qpci_intx_unmask(dev);
    qpci_intx_wait(dev);
    vfu_client_assert_clean(client);
}
END_TEST

/*
 * The interrupt mode follows SET_IRQS, as for a VFIO device: the client
 * emulates the MSI-X capability, so the server never sees it enabled.
 */
START_TEST(test_irq_mode_switch)
{
    int efd[2] = { qos_eventfd_new(), qos_eventfd_new() };
    const uint32_t trig = VFIO_IRQ_SET_DATA_EVENTFD |
                          VFIO_IRQ_SET_ACTION_TRIGGER;

    /* QEMU's sequence: one fd-less vector first, then the real set. */
    qos_assert_errno(vfu_set_irqs(client, VFIO_PCI_MSIX_IRQ_INDEX, trig, 0,
                                  1, NULL, 0, NULL), 0);
    qos_assert_errno(vfu_set_irqs(client, VFIO_PCI_MSIX_IRQ_INDEX, trig, 0,
                                  2, efd, 2, NULL), 0);
    testdev_writel(dev, TESTDEV_REG_INT_RAISE, 1);
    ck_assert_msg(qpci_eventfd_wait(dev, efd[1], QOS_TIMEOUT_MS),
                  "MSI-X vector 1 did not fire");
    testdev_writel(dev, TESTDEV_REG_INT_ACK, TESTDEV_INT_SOFT);

    /* Unassign vector 1 only (no fds): raising it signals nothing. */
    qos_assert_errno(vfu_set_irqs(client, VFIO_PCI_MSIX_IRQ_INDEX, trig, 1,
                                  1, NULL, 0, NULL), 0);
    testdev_writel(dev, TESTDEV_REG_INT_RAISE, 1);
    ck_assert_msg(!qpci_eventfd_wait(dev, efd[1], QPCI_IRQ_QUIET_MS),
                  "unassigned MSI-X vector 1 still fired");
    testdev_writel(dev, TESTDEV_REG_INT_RAISE, 0);
    ck_assert_msg(qpci_eventfd_wait(dev, efd[0], QOS_TIMEOUT_MS),
                  "MSI-X vector 0 did not fire");
    testdev_writel(dev, TESTDEV_REG_INT_ACK, TESTDEV_INT_SOFT);

    /* MSI-X off (DATA_NONE, count 0), INTx on. */
    qos_assert_errno(vfu_set_irqs(client, VFIO_PCI_MSIX_IRQ_INDEX,
                                  VFIO_IRQ_SET_DATA_NONE |
                                  VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, NULL, 0,
                                  NULL), 0);
    qpci_intx_enable(dev);
    testdev_writel(dev, TESTDEV_REG_INT_RAISE, 0);
    qpci_intx_wait(dev);
    ck_assert(!qpci_eventfd_wait(dev, efd[0], 0));
    testdev_writel(dev, TESTDEV_REG_INT_ACK, TESTDEV_INT_SOFT);

    /* INTx off, MSI-X back on: INTx stays quiet. */
    qos_assert_errno(vfu_set_irqs(client, VFIO_PCI_INTX_IRQ_INDEX,
                                  VFIO_IRQ_SET_DATA_NONE |
                                  VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, NULL, 0,
                                  NULL), 0);
    qpci_msix_enable(dev, TESTDEV_MSIX_VECTORS);
    testdev_writel(dev, TESTDEV_REG_INT_RAISE, 1);
    qpci_msix_wait(dev, 1);
    qpci_intx_unmask(dev);
    qpci_intx_assert_quiet(dev);
    close(efd[0]);
    close(efd[1]);
    vfu_client_assert_clean(client);
}
END_TEST

/* ---- reset ---- */

START_TEST(test_device_reset)
{
    uint16_t cmd;

    testdev_writel(dev, TESTDEV_REG_SCRATCH, 0xcafef00d);
    qpci_bar_writeq(dev, TESTDEV_BAR_REGS, TESTDEV_REG_REG64, ~0ULL);
    testdev_writel(dev, TESTDEV_REG_INT_MASK, 0x1);
    testdev_writel(dev, TESTDEV_REG_DMA_ADDR_LO, 0x1000);
    testdev_writel(dev, TESTDEV_REG_DMA_LEN, 0x100);
    testdev_writel(dev, TESTDEV_REG_INT_RAISE, 0);
    ck_assert_uint_ne(testdev_readl(dev, TESTDEV_REG_INT_STATUS), 0);

    qos_assert_errno(vfu_device_reset(client), 0);

    /* A function reset clears the command register. */
    cmd = qpci_config_readw(dev, PCI_COMMAND);
    ck_assert_msg(!(cmd & (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER)),
                  "COMMAND 0x%x after DEVICE_RESET", cmd);
    ck_assert_uint_eq(qpci_config_readw(dev, PCI_VENDOR_ID),
                      TESTDEV_VENDOR_ID);
    qpci_device_enable(dev);

    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_ID), TESTDEV_ID_VALUE);
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_SCRATCH), 0);
    ck_assert(qpci_bar_readq(dev, TESTDEV_BAR_REGS, TESTDEV_REG_REG64) == 0);
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_INT_MASK), 0x7);
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_INT_STATUS), 0);
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_DMA_ADDR_LO), 0);
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_DMA_LEN), 0);
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_DMA_STATUS), 0);
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_DMA_COUNT), 0);

    /* Reset twice in a row is fine, and the device still works. */
    qos_assert_errno(vfu_device_reset(client), 0);
    qos_assert_errno(vfu_device_reset(client), 0);
    qpci_device_enable(dev);
    testdev_writel(dev, TESTDEV_REG_SCRATCH, 42);
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_SCRATCH), 42);
    vfu_client_assert_clean(client);
}
END_TEST

/* ---- disconnect / reconnect ---- */

/* A full client session that hands the daemon fds of every kind. */
static void one_session(GuestMem *ram)
{
    VfuClient *c = vfu_client_open(sock_path);
    int efd[2] = { qos_eventfd_new(), qos_eventfd_new() };
    int intx = qos_eventfd_new();
    VfuRegion r;
    uint8_t b[4];

    qos_assert_errno(guest_mem_map(ram, c, true), 0);
    qos_assert_errno(vfu_set_irqs(c, VFIO_PCI_INTX_IRQ_INDEX,
                                  VFIO_IRQ_SET_DATA_EVENTFD |
                                  VFIO_IRQ_SET_ACTION_TRIGGER, 0, 1, &intx, 1,
                                  NULL), 0);
    qos_assert_errno(vfu_set_irqs(c, VFIO_PCI_MSIX_IRQ_INDEX,
                                  VFIO_IRQ_SET_DATA_EVENTFD |
                                  VFIO_IRQ_SET_ACTION_TRIGGER, 0, 2, efd, 2,
                                  NULL), 0);
    qos_assert_errno(vfu_get_region_info(c, TESTDEV_BAR_MEM, &r), 0);
    vfu_region_clear(&r);
    qos_assert_errno(vfu_region_read(c, CONFIG_REGION, PCI_VENDOR_ID, b, 2),
                     0);
    ck_assert_uint_eq(lduw_le_p(b), TESTDEV_VENDOR_ID);
    vfu_client_assert_clean(c);
    vfu_client_free(c);
    close(efd[0]);
    close(efd[1]);
    close(intx);
}

START_TEST(test_reconnect_no_fd_leak)
{
    GuestMem *ram = guest_mem_new(GUEST_MEM_DEFAULT_BASE, 1 << 20);
    unsigned base, n;

    /*
     * Warm up once, then measure with no client attached (give the daemon
     * a moment to notice the hang-up).
     */
    one_session(ram);
    g_usleep(300 * 1000);
    base = iovd_proc_count_fds(proc);
    for (unsigned i = 0; i < 200; i++) {
        one_session(ram);
        /* Released before the next client comes. */
        n = iovd_proc_wait_fds_at_most(proc, base, 5000);
        ck_assert_msg(n <= base, "after session %u iovd has %u fds, %u "
                      "before", i + 1, n, base);
    }

    /* Still serving. */
    connect_device();
    assert_still_serving();
    guest_mem_free(ram);
}
END_TEST

/* VERSION with the default capabilities; -ECONNRESET if iovd hangs up. */
static int vfu_negotiate_or_closed(VfuClient *c)
{
    static const char json[] = VFU_CLIENT_DEFAULT_CAPS;
    uint8_t req[sizeof(VfuVersion) + sizeof(json)] = { 0 };
    g_autoptr(VfuRxMsg) m = NULL;
    uint16_t id;

    memcpy(req + sizeof(VfuVersion), json, sizeof(json));
    id = vfu_send_msg(c, VFU_CMD_VERSION, 0, req, sizeof(req), NULL, 0);
    m = vfu_try_wait_reply(c, id, vfu_client_timeout(c));
    if (!m) {
        return vfu_client_closed(c) ? -ECONNRESET : -ETIMEDOUT;
    }
    return vfu_rx_msg_error(m);
}

/*
 * A VMM that restarts connects again right after its old connection
 * closed; the daemon must not refuse it because it has not yet noticed
 * the hang-up.
 */
START_TEST(test_reconnect_immediate)
{
    for (unsigned i = 0; i < 50; i++) {
        VfuClient *c = vfu_client_connect(sock_path);
        int r = vfu_negotiate_or_closed(c);

        ck_assert_msg(r == 0, "session %u: iovd closed a client that "
                      "connected right after the previous one hung up", i);
        vfu_client_assert_clean(c);
        vfu_client_free(c);
    }
    iovd_proc_assert_alive(proc);
}
END_TEST

/* ---- protocol abuse ---- */

START_TEST(test_abuse_short_header)
{
    VfuHdr hdr = {
        .msg_id = vfu_next_msg_id(client),
        .cmd = VFU_CMD_DEVICE_GET_INFO,
        .size = 8,
    };
    g_autoptr(VfuRxMsg) m = NULL;

    vfu_send_hdr(client, &hdr, NULL, 0, NULL, 0);
    m = vfu_wait_reply(client, hdr.msg_id);
    assert_error_reply(m, EINVAL, "message size 8 < header");
    assert_still_serving();
    vfu_client_assert_clean(client);
}
END_TEST

START_TEST(test_abuse_short_payload)
{
    static const struct {
        uint16_t cmd;
        uint32_t len;
    } cases[] = {
        { VFU_CMD_DEVICE_GET_INFO, 4 },
        { VFU_CMD_DEVICE_GET_REGION_INFO, 8 },
        { VFU_CMD_DEVICE_GET_IRQ_INFO, 12 },
        { VFU_CMD_DEVICE_SET_IRQS, 8 },
        { VFU_CMD_DEVICE_SET_IRQS, 2 },
        { VFU_CMD_DEVICE_SET_IRQS, 0 },         /* header only */
        { VFU_CMD_DEVICE_GET_INFO, 0 },
        { VFU_CMD_DEVICE_GET_REGION_INFO, 0 },
        { VFU_CMD_DEVICE_GET_IRQ_INFO, 0 },
        { VFU_CMD_REGION_READ, 0 },
        { VFU_CMD_REGION_WRITE, 0 },
        { VFU_CMD_DMA_MAP, 0 },
        { VFU_CMD_DMA_UNMAP, 0 },
        { VFU_CMD_REGION_WRITE_MULTI, 0 },
        { VFU_CMD_REGION_READ, 8 },
        { VFU_CMD_REGION_WRITE, 12 },
        { VFU_CMD_DMA_MAP, 16 },
        { VFU_CMD_DMA_UNMAP, 8 },
        { VFU_CMD_REGION_WRITE_MULTI, 4 },
    };
    uint8_t zero[32] = { 0 };

    /* Make the fields that are there plausible (argsz). */
    stl_le_p(zero, 16);
    for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
        g_autoptr(VfuRxMsg) m = raw_request(cases[i].cmd, zero, cases[i].len,
                                            NULL, 0);
        g_autofree char *what = g_strdup_printf("command %u with a %u-byte "
                                                "payload", cases[i].cmd,
                                                cases[i].len);

        assert_error_reply(m, EINVAL, what);
    }

    /* REGION_WRITE whose count exceeds the data sent. */
    {
        uint8_t p[sizeof(VfuRegionRW) + 4] = { 0 };
        VfuRegionRW rw = { .offset = TESTDEV_REG_SCRATCH,
                           .region = TESTDEV_BAR_REGS, .count = 8 };
        g_autoptr(VfuRxMsg) m = NULL;

        memcpy(p, &rw, sizeof(rw));
        m = raw_request(VFU_CMD_REGION_WRITE, p, sizeof(p), NULL, 0);
        assert_error_reply(m, EINVAL, "REGION_WRITE count 8 with 4 bytes");
    }
    assert_still_serving();
    vfu_client_assert_clean(client);
}
END_TEST

/*
 * An empty body right after a message of odd length (found by
 * fuzz-vfio-user): its payload is not 8-byte aligned, and the server
 * must not "align" zero bytes from a NULL buffer.
 */
START_TEST(test_abuse_unaligned_empty)
{
    uint8_t odd[3] = { 0 };
    g_autoptr(VfuRxMsg) m1 = NULL;
    g_autoptr(VfuRxMsg) m2 = NULL;
    VfuHdr hdr = {
        .cmd = VFU_CMD_DEVICE_SET_IRQS,
        .size = VFU_HDR_SIZE,
    };
    uint16_t id;

    id = vfu_send_msg(client, VFU_CMD_DEVICE_GET_INFO, 0, odd, sizeof(odd),
                      NULL, 0);
    hdr.msg_id = vfu_next_msg_id(client);
    vfu_send_hdr(client, &hdr, NULL, 0, NULL, 0);
    m1 = vfu_wait_reply(client, id);
    m2 = vfu_wait_reply(client, hdr.msg_id);
    assert_error_reply(m1, EINVAL, "DEVICE_GET_INFO with 3 bytes");
    assert_error_reply(m2, EINVAL, "SET_IRQS with no body, unaligned");
    assert_still_serving();
    vfu_client_assert_clean(client);
}
END_TEST

START_TEST(test_abuse_oversized)
{
    size_t len = VFU_MAX_MSG_SIZE + 4096 - VFU_HDR_SIZE;
    g_autofree uint8_t *p = g_malloc0(len);
    VfuRegionRW rw = { .offset = 0, .region = TESTDEV_BAR_MEM,
                       .count = len - sizeof(rw) };
    g_autoptr(VfuRxMsg) m = NULL;
    uint16_t id;

    memcpy(p, &rw, sizeof(rw));
    id = vfu_send_msg(client, VFU_CMD_REGION_WRITE, 0, p, len, NULL, 0);
    m = vfu_wait_reply(client, id);
    ck_assert_msg(m->hdr.flags & VFU_FLAG_ERROR, "a %zu-byte message was "
                  "accepted", len + VFU_HDR_SIZE);
    assert_err_in(vfu_rx_msg_error(m), "oversized message", -EINVAL,
                  -E2BIG, -EMSGSIZE);
    ck_assert_uint_eq(m->hdr.size, VFU_HDR_SIZE);
    assert_still_serving();
    vfu_client_assert_clean(client);
}
END_TEST

/* What iovd's fd @n is (the target of /proc/PID/fd/N), or NULL. */
static char *proc_fd_target(unsigned n)
{
    g_autofree char *link = g_strdup_printf("/proc/%d/fd/%u",
                                            (int)iovd_proc_pid(proc), n);

    return g_file_read_link(link, NULL);
}

START_TEST(test_abuse_oversized_with_fds)
{
    uint32_t size = VFU_MAX_MSG_SIZE + 0x40;
    VfuHdr hdr = {
        .msg_id = vfu_next_msg_id(client),
        .cmd = VFU_CMD_REGION_WRITE,
        .size = size,
    };
    g_autofree uint8_t *body = g_malloc0(size - VFU_HDR_SIZE);
    g_autofree char *fd0 = proc_fd_target(0);
    g_autofree char *fd0_after = NULL;
    g_autoptr(VfuRxMsg) m = NULL;
    unsigned base = iovd_proc_count_fds(proc), n;
    int fds[70];

    /*
     * A header claiming more than the limit, sent with 70 fds (more than
     * a message may carry) and its body: the message is refused, the fds
     * closed, none of iovd's own (fd 0 stays what it was), and the next
     * message and the next client are served.
     */
    ck_assert_ptr_nonnull(fd0);
    for (unsigned i = 0; i < ARRAY_SIZE(fds); i++) {
        fds[i] = qos_eventfd_new();
    }
    vfu_send_hdr(client, &hdr, body, size - VFU_HDR_SIZE, fds,
                 ARRAY_SIZE(fds));
    for (unsigned i = 0; i < ARRAY_SIZE(fds); i++) {
        close(fds[i]);
    }
    m = vfu_wait_reply(client, hdr.msg_id);
    ck_assert_msg(m->hdr.flags & VFU_FLAG_ERROR, "oversized message taken");
    assert_still_serving();
    n = iovd_proc_wait_fds_at_most(proc, base, QOS_TIMEOUT_MS);
    ck_assert_msg(n == base, "iovd has %u fds, %u before", n, base);
    fd0_after = proc_fd_target(0);
    ck_assert_str_eq(fd0_after, fd0);
    disconnect();
    connect_device();
    assert_still_serving();
}
END_TEST

START_TEST(test_abuse_unknown_command)
{
    static const uint16_t cmds[] = {
        0, VFU_CMD_MAX + 10, 0x7fff, 0xffff, VFU_CMD_DMA_READ,
        VFU_CMD_DMA_WRITE,
    };
    uint8_t payload[16] = { 0 };
    g_autoptr(GString) bad = g_string_new(NULL);

    for (unsigned i = 0; i < ARRAY_SIZE(cmds); i++) {
        g_autoptr(VfuRxMsg) m = raw_request(cmds[i], payload,
                                            sizeof(payload), NULL, 0);

        ck_assert_msg(m->hdr.flags & VFU_FLAG_ERROR, "command %u "
                      "succeeded", cmds[i]);
        ck_assert_uint_eq(m->hdr.size, VFU_HDR_SIZE);
        if (m->hdr.error_no != EINVAL) {
            g_string_append_printf(bad, " %u->%s", cmds[i],
                                   qos_errno_name(m->hdr.error_no));
        }
    }
    ck_assert_msg(!bad->len, "unknown commands must fail with EINVAL; "
                  "got:%s", bad->str);
    assert_still_serving();
    vfu_client_assert_clean(client);
}
END_TEST

START_TEST(test_abuse_region_index)
{
    uint32_t v = 0;

    qos_assert_errno(vfu_region_read(client, VFIO_PCI_NUM_REGIONS, 0, &v, 4),
                     -EINVAL);
    qos_assert_errno(vfu_region_read(client, 0xffffffff, 0, &v, 4), -EINVAL);
    qos_assert_errno(vfu_region_write(client, VFIO_PCI_NUM_REGIONS, 0, &v,
                                      4), -EINVAL);
    /* BAR3 and VGA exist as indices but have no size. */
    qos_assert_errno(vfu_region_read(client, 3, 0, &v, 4), -EINVAL);
    qos_assert_errno(vfu_region_read(client, VFIO_PCI_VGA_REGION_INDEX, 0,
                                     &v, 4), -EINVAL);
    assert_still_serving();
    vfu_client_assert_clean(client);
}
END_TEST

START_TEST(test_abuse_offset_overflow)
{
    uint8_t buf[16] = { 0 };
    uint64_t cfg_size = qpci_region(dev, CONFIG_REGION)->size;

    qos_assert_errno(vfu_region_read(client, TESTDEV_BAR_REGS,
                                     UINT64_MAX - 3, buf, 8), -EINVAL);
    qos_assert_errno(vfu_region_write(client, TESTDEV_BAR_REGS,
                                      UINT64_MAX - 3, buf, 8), -EINVAL);
    qos_assert_errno(vfu_region_read(client, TESTDEV_BAR_REGS,
                                     TESTDEV_REGS_SIZE - 4, buf, 8),
                     -EINVAL);
    qos_assert_errno(vfu_region_read(client, TESTDEV_BAR_REGS,
                                     TESTDEV_REGS_SIZE, buf, 1), -EINVAL);
    qos_assert_errno(vfu_region_read(client, CONFIG_REGION, UINT64_MAX, buf,
                                     2), -EINVAL);
    qos_assert_errno(vfu_region_write(client, CONFIG_REGION, cfg_size - 1,
                                      buf, 2), -EINVAL);
    qos_assert_errno(vfu_region_read(client, TESTDEV_BAR_MEM,
                                     1ULL << 63, buf, 16), -EINVAL);
    assert_still_serving();
    vfu_client_assert_clean(client);
}
END_TEST

START_TEST(test_abuse_count_too_big)
{
    uint64_t max = vfu_server_caps(client)->max_data_xfer_size;
    VfuRegionRW rw = { .offset = 0, .region = TESTDEV_BAR_MEM,
                       .count = max + 1 };
    g_autoptr(VfuRxMsg) m = NULL;

    m = raw_request(VFU_CMD_REGION_READ, &rw, sizeof(rw), NULL, 0);
    assert_err_in(vfu_rx_msg_error(m), "REGION_READ past "
                  "max_data_xfer_size", -EINVAL, -E2BIG, 0);
    assert_still_serving();
    vfu_client_assert_clean(client);
}
END_TEST

START_TEST(test_abuse_too_many_fds)
{
    unsigned nfds = vfu_server_caps(client)->max_msg_fds + 4;
    g_autofree int *fds = g_new(int, nfds);
    VfuDeviceInfo req = { .argsz = sizeof(req) };
    VfuIrqSet set = {
        .argsz = sizeof(set),
        .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
        .index = VFIO_PCI_MSIX_IRQ_INDEX,
        .start = 0,
        .count = TESTDEV_MSIX_VECTORS,
    };
    g_autoptr(VfuRxMsg) m1 = NULL;
    g_autoptr(VfuRxMsg) m2 = NULL;
    g_autoptr(VfuRxMsg) m3 = NULL;
    unsigned base;

    base = iovd_proc_count_fds(proc);
    for (unsigned i = 0; i < nfds; i++) {
        fds[i] = qos_eventfd_new();
    }

    m1 = raw_request(VFU_CMD_DEVICE_GET_INFO, &req, sizeof(req), fds, nfds);
    assert_error_reply(m1, EINVAL, "DEVICE_GET_INFO with too many fds");

    /* More fds than vectors named. */
    m2 = raw_request(VFU_CMD_DEVICE_SET_IRQS, &set, sizeof(set), fds,
                     TESTDEV_MSIX_VECTORS + 1);
    assert_error_reply(m2, EINVAL, "SET_IRQS with count 2 and 3 fds");

    /* An fd on a command that takes none: error or not, no leak. */
    m3 = raw_request(VFU_CMD_DEVICE_GET_INFO, &req, sizeof(req), fds, 1);

    for (unsigned i = 0; i < nfds; i++) {
        close(fds[i]);
    }
    assert_still_serving();
    ck_assert_msg(iovd_proc_wait_fds_at_most(proc, base, 2000) <= base,
                  "iovd kept fds from rejected messages: %u before, %u "
                  "after", base, iovd_proc_count_fds(proc));
    vfu_client_assert_clean(client);
}
END_TEST

START_TEST(test_abuse_dma_map)
{
    uint64_t base, size;
    int fd;

    map_guest_ram(true);
    base = guest_mem_base(gm);
    size = guest_mem_size(gm);
    fd = guest_mem_fd(gm);

    qos_assert_errno(vfu_dma_map(client, base, size, VFU_DMA_FLAG_READ |
                                 VFU_DMA_FLAG_WRITE, fd, 0, NULL), -EEXIST);
    qos_assert_errno(vfu_dma_map(client, base + 0x1000, 0x1000,
                                 VFU_DMA_FLAG_READ, fd, 0x1000, NULL),
                     -EEXIST);
    qos_assert_errno(vfu_dma_map(client, base - 0x1000, 0x2000,
                                 VFU_DMA_FLAG_READ, -1, 0, NULL), -EEXIST);
    qos_assert_errno(vfu_dma_map(client, base + size - 0x1000, 0x2000,
                                 VFU_DMA_FLAG_READ, -1, 0, NULL), -EEXIST);
    /* Zero size and wrapping ranges are invalid. */
    qos_assert_errno(vfu_dma_map(client, 0x1000, 0, VFU_DMA_FLAG_READ, -1, 0,
                                 NULL), -EINVAL);
    qos_assert_errno(vfu_dma_map(client, UINT64_MAX - 0xfff, 0x2000,
                                 VFU_DMA_FLAG_READ, -1, 0, NULL), -EINVAL);

    /* Adjacent is fine. */
    qos_assert_errno(vfu_dma_map(client, base + size, 0x1000,
                                 VFU_DMA_FLAG_READ, -1, 0, NULL), 0);
    qos_assert_errno(vfu_dma_unmap(client, base + size, 0x1000, 0), 0);

    /*
     * Memory shorter than its mapping (a page past the end would kill
     * the daemon when touched): a 4 KiB memfd as 1 MiB, an offset past
     * its end, an offset whose end wraps.
     */
    {
        int small = memfd_create("small", MFD_CLOEXEC);

        ck_assert_int_eq(ftruncate(small, 0x1000), 0);
        qos_assert_errno(vfu_dma_map(client, base + size, 0x100000,
                                     VFU_DMA_FLAG_READ, small, 0, NULL),
                         -EINVAL);
        qos_assert_errno(vfu_dma_map(client, base + size, 0x1000,
                                     VFU_DMA_FLAG_READ, small, 0x1000, NULL),
                         -EINVAL);
        qos_assert_errno(vfu_dma_map(client, base + size, 0x2000,
                                     VFU_DMA_FLAG_READ, small,
                                     UINT64_MAX & ~0xfffULL, NULL), -EINVAL);
        /* The page it has maps. */
        qos_assert_errno(vfu_dma_map(client, base + size, 0x1000,
                                     VFU_DMA_FLAG_READ, small, 0, NULL), 0);
        qos_assert_errno(vfu_dma_unmap(client, base + size, 0x1000, 0), 0);
        close(small);
    }
    assert_still_serving();
    vfu_client_assert_clean(client);
}
END_TEST

START_TEST(test_abuse_dma_unmap)
{
    uint64_t buf;
    uint32_t st;

    map_guest_ram(true);
    assert_err_in(vfu_dma_unmap(client, 0x1000, 0x1000, 0),
                  "DMA_UNMAP of a range never mapped", -EINVAL, -ENOENT, 0);
    assert_err_in(vfu_dma_unmap(client, guest_mem_base(gm), 0x1000, 0),
                  "DMA_UNMAP of part of a mapping", -EINVAL, -ENOENT, 0);

    /* The mapping is intact. */
    buf = guest_alloc(gm, 64);
    guest_memset(gm, buf, 0x77, 64);
    st = testdev_dma(dev, buf, 64, 0, TESTDEV_DMA_TO_DEVICE);
    ck_assert_msg(st == TESTDEV_INT_DMA_DONE, "INT_STATUS 0x%x", st);

    qos_assert_errno(guest_mem_unmap(gm, client), 0);
    assert_err_in(guest_mem_unmap(gm, client), "second DMA_UNMAP",
                  -EINVAL, -ENOENT, 0);
    /* DMA_UNMAP with the ALL flag, with nothing mapped, is fine. */
    qos_assert_errno(vfu_dma_unmap(client, 0, 0, VFU_DMA_UNMAP_FLAG_ALL), 0);
    assert_still_serving();
    vfu_client_assert_clean(client);
}
END_TEST

START_TEST(test_abuse_posted_errors)
{
    uint32_t v = 0x5a5a5a5a;

    /* Posted writes that fail must still get no reply. */
    vfu_region_write_posted(client, 42, 0, &v, 4);
    vfu_region_write_posted(client, TESTDEV_BAR_REGS, TESTDEV_REGS_SIZE, &v,
                            4);
    vfu_region_write_posted(client, TESTDEV_BAR_REGS, UINT64_MAX - 1, &v, 4);
    vfu_region_write_posted(client, TESTDEV_BAR_REGS, TESTDEV_REG_SCRATCH,
                            &v, 4);
    ck_assert_uint_eq(testdev_readl(dev, TESTDEV_REG_SCRATCH), 0x5a5a5a5a);
    ck_assert(vfu_service(client, 200));
    assert_still_serving();
    vfu_client_assert_clean(client);
}
END_TEST

START_TEST(test_abuse_set_irqs)
{
    int efd[3] = { qos_eventfd_new(), qos_eventfd_new(), qos_eventfd_new() };
    const uint32_t trig = VFIO_IRQ_SET_DATA_EVENTFD |
                          VFIO_IRQ_SET_ACTION_TRIGGER;
    VfuIrqInfo msi;

    /* More vectors than the index has (MSI: none on this device). */
    qos_assert_errno(vfu_get_irq_info(client, VFIO_PCI_MSI_IRQ_INDEX, &msi),
                     0);
    qos_assert_errno(vfu_set_irqs(client, VFIO_PCI_MSI_IRQ_INDEX, trig, 0,
                                  msi.count + 1, efd, 1, NULL), -EINVAL);

    qos_assert_errno(vfu_set_irqs(client, VFIO_PCI_NUM_IRQS, trig, 0, 1, efd,
                                  1, NULL), -EINVAL);
    qos_assert_errno(vfu_set_irqs(client, VFIO_PCI_MSIX_IRQ_INDEX, trig, 1,
                                  2, efd, 2, NULL), -EINVAL);
    qos_assert_errno(vfu_set_irqs(client, VFIO_PCI_MSIX_IRQ_INDEX, trig,
                                  0xffffffff, 2, efd, 2, NULL), -EINVAL);
    qos_assert_errno(vfu_set_irqs(client, VFIO_PCI_INTX_IRQ_INDEX, trig, 0,
                                  2, efd, 2, NULL), -EINVAL);
    /* Two data types, two actions. */
    qos_assert_errno(vfu_set_irqs(client, VFIO_PCI_MSIX_IRQ_INDEX,
                                  VFIO_IRQ_SET_DATA_NONE |
                                  VFIO_IRQ_SET_DATA_BOOL |
                                  VFIO_IRQ_SET_ACTION_TRIGGER, 0, 1, NULL, 0,
                                  (const uint8_t *)"\1"), -EINVAL);
    qos_assert_errno(vfu_set_irqs(client, VFIO_PCI_MSIX_IRQ_INDEX,
                                  VFIO_IRQ_SET_DATA_NONE |
                                  VFIO_IRQ_SET_ACTION_MASK |
                                  VFIO_IRQ_SET_ACTION_UNMASK, 0, 1, NULL, 0,
                                  NULL), -EINVAL);

    /* A good one still works, and the vector fires. */
    qos_assert_errno(vfu_set_irqs(client, VFIO_PCI_MSIX_IRQ_INDEX, trig, 0,
                                  2, efd, 2, NULL), 0);
    testdev_writel(dev, TESTDEV_REG_INT_RAISE, 1);
    ck_assert(qpci_eventfd_wait(dev, efd[1], QOS_TIMEOUT_MS));
    for (unsigned i = 0; i < 3; i++) {
        close(efd[i]);
    }
    assert_still_serving();
    vfu_client_assert_clean(client);
}
END_TEST

/* A client that hangs up in the middle of a message. */
START_TEST(test_abuse_disconnect_midway)
{
    VfuHdr hdr = {
        .msg_id = 7,
        .cmd = VFU_CMD_REGION_WRITE,
        .size = VFU_HDR_SIZE + 64,
    };

    /* Half a message, then hang up; the daemon must carry on. */
    vfu_send_bytes(client, &hdr, sizeof(hdr), NULL, 0);
    vfu_send_bytes(client, "partial", 7, NULL, 0);
    disconnect();
    connect_device();
    assert_still_serving();
    vfu_client_assert_clean(client);
}
END_TEST

/* ---- suite ---- */

static Suite *vfio_user_suite(void)
{
    Suite *s = suite_create("vfio-user");
    TCase *tc;

    tc = qos_check_tcase(s, "negotiate", setup_daemon, teardown, 60);
    tcase_add_test(tc, test_negotiate_good);
    tcase_add_test(tc, test_negotiate_minor);
    tcase_add_test(tc, test_negotiate_wrong_major);
    tcase_add_test(tc, test_negotiate_bad_json);
    tcase_add_test(tc, test_negotiate_bad_payload);

    tc = qos_check_tcase(s, "info", setup_device, teardown, 60);
    tcase_add_test(tc, test_device_info);
    tcase_add_test(tc, test_region_info);
    tcase_add_test(tc, test_irq_info);

    tc = qos_check_tcase(s, "config", setup_device, teardown, 60);
    tcase_add_test(tc, test_config_space);
    tcase_add_test(tc, test_bar_sizing);

    tc = qos_check_tcase(s, "regs", setup_device, teardown, 60);
    tcase_add_test(tc, test_testdev_regs);
    tcase_add_test(tc, test_write_multi);
    tcase_add_test(tc, test_bar2_mmap);

    tc = qos_check_tcase(s, "dma", setup_device, teardown, 60);
    tcase_add_test(tc, test_dma_fd);
    tcase_add_test(tc, test_dma_nofd);
    tcase_add_test(tc, test_dma_unmapped);
    tcase_add_test(tc, test_dma_memory_truncated);
    tcase_add_test(tc, test_dma_no_bus_master);
    tcase_add_test(tc, test_reset_during_dma);

    tc = qos_check_tcase(s, "dma-wait", qos_check_init, teardown, 60);
    tcase_add_test(tc, test_dma_wait_stalls_nothing);

    tc = qos_check_tcase(s, "dma-spec-layout", setup_device_spec_layout,
                         teardown, 60);
    tcase_add_test(tc, test_dma_nofd_spec_layout);

    tc = qos_check_tcase(s, "irq", setup_device, teardown, 60);
    tcase_add_test(tc, test_msix);
    tcase_add_test(tc, test_msix_dma_nofd);
    tcase_add_test(tc, test_msix_mask);
    tcase_add_test(tc, test_intx);
    tcase_add_test(tc, test_irq_mode_switch);

    tc = qos_check_tcase(s, "reset", setup_device, teardown, 60);
    tcase_add_test(tc, test_device_reset);

    tc = qos_check_tcase(s, "reconnect", setup_daemon, teardown, 180);
    tcase_add_test(tc, test_reconnect_no_fd_leak);
    tcase_add_test(tc, test_reconnect_immediate);

    tc = qos_check_tcase(s, "abuse", setup_device, teardown, 60);
    tcase_add_test(tc, test_abuse_short_header);
    tcase_add_test(tc, test_abuse_short_payload);
    tcase_add_test(tc, test_abuse_unaligned_empty);
    tcase_add_test(tc, test_abuse_oversized);
    tcase_add_test(tc, test_abuse_oversized_with_fds);
    tcase_add_test(tc, test_abuse_unknown_command);
    tcase_add_test(tc, test_abuse_region_index);
    tcase_add_test(tc, test_abuse_offset_overflow);
    tcase_add_test(tc, test_abuse_count_too_big);
    tcase_add_test(tc, test_abuse_too_many_fds);
    tcase_add_test(tc, test_abuse_dma_map);
    tcase_add_test(tc, test_abuse_dma_unmap);
    tcase_add_test(tc, test_abuse_posted_errors);
    tcase_add_test(tc, test_abuse_set_irqs);
    tcase_add_test(tc, test_abuse_disconnect_midway);
    return s;
}

int main(void)
{
    return qos_check_run(vfio_user_suite());
}
