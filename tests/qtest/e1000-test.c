/*
 * e1000 (82540EM) tests: iovd runs the device(s); the test plays the VMM
 * and Linux's e1000 driver through libqos/e1000.h.
 *
 * Fixtures (a fresh daemon per test, stopped with SIGTERM, exit 0 required):
 * - one:  one e1000 without a backend (link up), a QMP monitor;
 * - pair: two e1000s joined by a -netdev stream pair, so what one sends the
 *   other receives; a QMP monitor for set_link;
 * - user: one e1000 on -netdev user (libslirp) with a hostfwd rule; the
 *   guest stack of libqos/netstack.h runs DHCP and TCP on it to move data
 *   to and from a host socket;
 * - mig: one e1000 on a -netdev stream whose other end is the test (the
 *   wire), so frames reach and leave the device on either side of a live
 *   migration; the tests start the destination daemons.
 */
#include "util/osdep.h"

#include <check.h>

#include "hw/net/e1000-regs.h"
#include "tests/qtest/libqos/netstack.h"
#include "tests/qtest/libqos/qos-check.h"
#include "tests/qtest/libqos/iovd-proc.h"
#include "tests/qtest/libqos/vfu-client.h"
#include "tests/qtest/libqos/guest-mem.h"
#include "tests/qtest/libqos/pci.h"
#include "tests/qtest/libqos/qmp-client.h"
#include "tests/qtest/libqos/e1000.h"
#include "tests/qtest/libqos/migration.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <poll.h>

#define MAC0_STR        "52:54:00:aa:bb:01"
#define MAC1_STR        "52:54:00:aa:bb:02"
#define QUIET_MS        150         /* "nothing more arrives" */
#define FRAME_MAX       (65536 + 256)

static const uint8_t mac0[6] = { 0x52, 0x54, 0x00, 0xaa, 0xbb, 0x01 };
static const uint8_t mac1[6] = { 0x52, 0x54, 0x00, 0xaa, 0xbb, 0x02 };
static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

typedef struct Nic {
    char *sock;
    VfuClient *c;
    QPCIDevice *pdev;
    GuestMem *gm;
    QE1000 *e;
} Nic;

static IovdProc *proc;
static QmpClient *qmp;
static Nic nics[3];
static int hostfwd_port;

/* Migration: the destination daemon, and the wire (see setup_mig). */
static IovdProc *dst_proc;
static char *wire_path;
static int wire_listen_fd = -1;
static int wire_fd[2] = { -1, -1 };     /* from the source, destination */

#define GUEST_TCP_PORT  7777

/* ---- fixtures ---- */

/*
 * Connect to device socket @name of daemon @p.  Without @share_fd guest
 * memory is not mapped by the daemon: every DMA is a DMA_READ/DMA_WRITE
 * message.
 */
static void nic_open_at(Nic *n, IovdProc *p, const char *name,
                        bool share_fd)
{
    n->sock = iovd_proc_path(p, name);
    n->c = vfu_client_open(n->sock);
    n->pdev = qpci_device_new(n->c);
    n->gm = guest_mem_new(GUEST_MEM_DEFAULT_BASE, GUEST_MEM_DEFAULT_SIZE);
    guest_mem_map_checked(n->gm, n->c, share_fd);
    n->e = qe1000_new(n->pdev, n->gm);
}

static void nic_open_mem(Nic *n, const char *name, bool share_fd)
{
    nic_open_at(n, proc, name, share_fd);
}

static void nic_open(Nic *n, const char *name)
{
    nic_open_mem(n, name, true);
}

static void nic_close(Nic *n)
{
    qe1000_free(n->e);
    qpci_device_free(n->pdev);
    guest_mem_free(n->gm);
    vfu_client_free(n->c);
    g_free(n->sock);
    memset(n, 0, sizeof(*n));
}

static void start_daemon(void)
{
    g_autofree char *qmp_path = iovd_proc_path(proc, "qmp.sock");

    iovd_proc_add_args(proc, "-qmp", NULL);
    iovd_proc_add_argf(proc, "unix:%s,server=on,wait=off", qmp_path);
    iovd_proc_start(proc);
    qmp = qmp_client_open(qmp_path);
}

static void add_e1000_to(IovdProc *p, const char *id, const char *mac,
                         const char *netdev)
{
    g_autofree char *sock = g_strdup_printf("%s.sock", id);
    g_autofree char *path = iovd_proc_path(p, sock);

    iovd_proc_add_args(p, "-device", NULL);
    iovd_proc_add_argf(p, "e1000,id=%s,mac=%s,socket=%s%s%s", id, mac,
                       path, netdev ? ",netdev=" : "",
                       netdev ? netdev : "");
}

static void add_e1000(const char *id, const char *mac, const char *netdev)
{
    add_e1000_to(proc, id, mac, netdev);
}

static void setup_one_raw(void)
{
    qos_check_init();
    proc = iovd_proc_new();
    add_e1000("e0", MAC0_STR, NULL);
    start_daemon();
    nic_open(&nics[0], "e0.sock");
}

/* One device whose DMA all goes through vfio-user messages. */
static void setup_one_nofd(void)
{
    qos_check_init();
    proc = iovd_proc_new();
    add_e1000("e0", MAC0_STR, NULL);
    start_daemon();
    nic_open_mem(&nics[0], "e0.sock", false);
    qe1000_init(nics[0].e, NULL);
}

static void setup_one(void)
{
    setup_one_raw();
    qe1000_init(nics[0].e, NULL);
}

static void setup_pair(void)
{
    g_autofree char *link = NULL;

    qos_check_init();
    proc = iovd_proc_new();
    link = iovd_proc_path(proc, "link.sock");
    iovd_proc_add_args(proc, "-netdev", NULL);
    iovd_proc_add_argf(proc, "stream,id=s0,server=on,addr.type=unix,"
                       "addr.path=%s", link);
    iovd_proc_add_args(proc, "-netdev", NULL);
    iovd_proc_add_argf(proc, "stream,id=s1,server=off,addr.type=unix,"
                       "addr.path=%s,reconnect-ms=20", link);
    add_e1000("e0", MAC0_STR, "s0");
    add_e1000("e1", MAC1_STR, "s1");
    start_daemon();
    nic_open(&nics[0], "e0.sock");
    nic_open(&nics[1], "e1.sock");
    qe1000_init(nics[0].e, NULL);
    qe1000_init(nics[1].e, NULL);
}

static void setup_user(void)
{
    qos_check_init();
    proc = iovd_proc_new();
    hostfwd_port = net_free_tcp_port();
    iovd_proc_add_args(proc, "-netdev", NULL);
    iovd_proc_add_argf(proc, "user,id=n0,hostfwd=tcp:127.0.0.1:%d-:%d",
                       hostfwd_port, GUEST_TCP_PORT);
    add_e1000("e0", MAC0_STR, "n0");
    start_daemon();
    nic_open(&nics[0], "e0.sock");
    qe1000_init(nics[0].e, NULL);
}

/*
 * The wire: the test is the server end of each daemon's -netdev stream
 * (QEMU's framing: a 4-byte big-endian length, then the frame), so it
 * sends frames to the device and takes what the device sends, on either
 * side of a migration.
 */
static int wire_listen(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    qos_assert(fd >= 0 && strlen(path) < sizeof(sa.sun_path),
               "wire socket %s", path);
    strcpy(sa.sun_path, path);
    qos_assert(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
               listen(fd, 4) == 0, "wire %s: %s", path, strerror(errno));
    return fd;
}

/* The next daemon's connection to the wire. */
static int wire_accept(void)
{
    int fd;

    qos_assert(qos_poll_fd(wire_listen_fd, POLLIN,
                           qos_deadline(QOS_TIMEOUT_MS)) & POLLIN,
               "no daemon connected to the wire within %d ms",
               QOS_TIMEOUT_MS);
    fd = accept4(wire_listen_fd, NULL, NULL, SOCK_CLOEXEC);
    qos_assert(fd >= 0, "wire accept: %s", strerror(errno));
    return fd;
}

/* A -netdev that connects to the wire. */
static void add_wire_netdev(IovdProc *p, const char *id)
{
    iovd_proc_add_args(p, "-netdev", NULL);
    iovd_proc_add_argf(p, "stream,id=%s,server=off,addr.type=unix,"
                       "addr.path=%s,reconnect-ms=20", id, wire_path);
}

static void wire_send(int fd, const uint8_t *f, size_t len)
{
    uint8_t hdr[4];
    struct iovec iov[2] = {
        { .iov_base = hdr, .iov_len = sizeof(hdr) },
        { .iov_base = (void *)f, .iov_len = len },
    };

    wr32(hdr, len);
    qos_assert(writev(fd, iov, 2) == (ssize_t)(sizeof(hdr) + len),
               "wire write: %s", strerror(errno));
}

/* @len bytes by @deadline; false when none came and @may_time_out. */
static bool wire_read(int fd, uint8_t *buf, size_t len, int64_t deadline,
                      bool may_time_out)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n;

        if (!(qos_poll_fd(fd, POLLIN, deadline) & (POLLIN | POLLHUP))) {
            qos_assert(may_time_out && !got, "wire: %zu of %zu bytes "
                       "within the time limit", got, len);
            return false;
        }
        n = read(fd, buf + got, len - got);
        qos_assert(n > 0, "wire read: %s", n ? strerror(errno) : "EOF");
        got += n;
    }
    return true;
}

/* The next frame the daemon behind @fd sent, or -1 after @timeout_ms. */
static ssize_t wire_recv(int fd, uint8_t *buf, size_t max, int timeout_ms)
{
    uint8_t hdr[4];
    uint32_t len;

    if (!wire_read(fd, hdr, sizeof(hdr), qos_deadline(timeout_ms), true)) {
        return -1;
    }
    len = rd32(hdr);
    qos_assert(len <= max, "wire: a frame of %u bytes", len);
    wire_read(fd, buf, len, qos_deadline(QOS_TIMEOUT_MS), false);
    return len;
}

/* One e1000 "e0" on the wire; the destination comes with each test. */
static void setup_mig(void)
{
    qos_check_init();
    proc = iovd_proc_new();
    wire_path = iovd_proc_path(proc, "wire.sock");
    wire_listen_fd = wire_listen(wire_path);
    add_wire_netdev(proc, "w0");
    add_e1000("e0", MAC0_STR, "w0");
    start_daemon();
    wire_fd[0] = wire_accept();
    nic_open(&nics[0], "e0.sock");
    qe1000_init(nics[0].e, NULL);
}

static void teardown(void)
{
    for (unsigned i = 0; i < ARRAY_SIZE(nics); i++) {
        if (nics[i].e) {
            nic_close(&nics[i]);
        }
    }
    g_clear_pointer(&qmp, qmp_client_free);
    for (unsigned i = 0; i < ARRAY_SIZE(wire_fd); i++) {
        if (wire_fd[i] >= 0) {
            close(wire_fd[i]);
            wire_fd[i] = -1;
        }
    }
    if (wire_listen_fd >= 0) {
        close(wire_listen_fd);
        wire_listen_fd = -1;
    }
    g_clear_pointer(&wire_path, g_free);
    if (dst_proc) {
        iovd_proc_stop(dst_proc);
        iovd_proc_free(dst_proc);
        dst_proc = NULL;
    }
    if (proc) {
        iovd_proc_stop(proc);
        iovd_proc_free(proc);
        proc = NULL;
    }
}

/* ---- frames ---- */

static void fill_pattern(uint8_t *p, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++) {
        p[i] = (uint8_t)(i * 7 + seed * 13 + (i >> 8) * 3);
    }
}

static void assert_bytes(const uint8_t *got, const uint8_t *want,
                         size_t len, const char *what)
{
    for (size_t i = 0; i < len; i++) {
        ck_assert_msg(got[i] == want[i], "%s: byte %zu of %zu is 0x%02x, "
                      "expected 0x%02x", what, i, len, got[i], want[i]);
    }
}

/* A raw frame: header and @len bytes in all, pattern payload. */
static size_t raw_frame(uint8_t *f, const uint8_t *dst, const uint8_t *src,
                        size_t len, unsigned seed)
{
    net_eth_hdr(f, dst, src, 0x88b5);   /* local experimental ethertype */
    fill_pattern(f + E1000_ETH_HLEN, len - E1000_ETH_HLEN, seed);
    return len;
}

/* TCP from 10.0.0.1:1234 to 10.0.0.2:80, checksums filled in. */
static size_t tcp4_frame(uint8_t *f, const uint8_t *dst, const uint8_t *src,
                         uint32_t seq, uint8_t flags, const uint8_t *payload,
                         size_t plen)
{
    uint8_t *t = f + NET_L4_OFF;
    size_t len;

    net_tcp_hdr(t, 1234, 80, seq, 1, flags, 8192);
    memcpy(t + 20, payload, plen);
    len = net_ip4_frame(f, dst, src, NET_PROTO_TCP, 0x0a000001, 0x0a000002,
                        t, 20 + plen);
    net_l4_csum_fill(f);
    return len;
}

/* UDP from 10.0.0.1:5000 to 10.0.0.2:6000, checksums filled in. */
static size_t udp4_frame(uint8_t *f, const uint8_t *dst, const uint8_t *src,
                         const uint8_t *payload, size_t plen)
{
    size_t len = net_udp4_frame(f, dst, src, 0x0a000001, 0x0a000002, 5000,
                                6000, payload, plen);

    net_l4_csum_fill(f);
    return len;
}

/* ---- send and receive ---- */

static ssize_t rx(Nic *n, uint8_t *buf, QE1000RxInfo *info, int timeout_ms)
{
    return qe1000_rx(n->e, buf, FRAME_MAX, info, timeout_ms);
}

/* The next frame, which must arrive, with a good CRC. */
static size_t rx_one(Nic *n, uint8_t *buf, QE1000RxInfo *info)
{
    QE1000RxInfo local;
    ssize_t len;

    if (!info) {
        info = &local;
    }
    len = rx(n, buf, info, QOS_TIMEOUT_MS);
    ck_assert_msg(len >= 0, "no frame arrived within %d ms", QOS_TIMEOUT_MS);
    ck_assert_msg(info->status & E1000_RXD_STAT_DD, "status 0x%x",
                  info->status);
    ck_assert_msg(info->status & E1000_RXD_STAT_EOP, "status 0x%x",
                  info->status);
    if (info->has_crc) {
        ck_assert_msg(info->crc_ok, "received frame's CRC is wrong");
    }
    return len;
}

static void rx_expect(Nic *n, const uint8_t *want, size_t len,
                      QE1000RxInfo *info)
{
    static uint8_t got[FRAME_MAX];
    size_t n_got = rx_one(n, got, info);

    ck_assert_msg(n_got == len, "received %zu bytes, expected %zu", n_got,
                  len);
    assert_bytes(got, want, len, "received frame");
}

static void rx_none(Nic *n)
{
    static uint8_t got[FRAME_MAX];
    ssize_t len = rx(n, got, NULL, QUIET_MS);

    ck_assert_msg(len < 0, "unexpected frame of %zd bytes (type 0x%04x)",
                  len, len >= 14 ? rd16(got + 12) : 0);
}

/*
 * Filtering tests send a frame that must be dropped, then a marker that
 * must arrive: the stream keeps order, so the marker arriving first proves
 * the drop without waiting for a timeout.
 */
static unsigned marker_seq;

static size_t marker_frame(uint8_t *f, const uint8_t *dst)
{
    uint8_t payload[32];

    snprintf((char *)payload, sizeof(payload), "marker %u", ++marker_seq);
    return udp4_frame(f, dst, mac0, payload, sizeof(payload));
}

static void send_marker_and_expect(Nic *from, Nic *to, const uint8_t *dst)
{
    uint8_t f[128];
    size_t len = marker_frame(f, dst);

    qe1000_tx(from->e, f, len, NULL);
    rx_expect(to, f, len, NULL);
}

static uint32_t stat(Nic *n, uint32_t reg)
{
    return qe1000_readl(n->e, reg);
}

static void clear_stats(Nic *n)
{
    for (uint32_t r = E1000_STATS_FIRST; r <= E1000_STATS_LAST; r += 4) {
        qe1000_readl(n->e, r);
    }
}

/* ---- PCI identity ---- */

START_TEST(test_pci_identity)
{
    QPCIDevice *d = nics[0].pdev;
    uint32_t bar1;

    ck_assert_uint_eq(qpci_config_readw(d, PCI_VENDOR_ID), E1000_VENDOR_ID);
    ck_assert_uint_eq(qpci_config_readw(d, PCI_DEVICE_ID),
                      E1000_DEVICE_ID_82540EM);
    ck_assert_uint_eq(qpci_config_readl(d, PCI_REVISION_ID) >> 8,
                      E1000_CLASS_ETHERNET);
    ck_assert_uint_eq(qpci_config_readw(d, PCI_SUBSYSTEM_VENDOR_ID),
                      E1000_VENDOR_ID);
    ck_assert_uint_eq(qpci_config_readw(d, PCI_SUBSYSTEM_ID),
                      E1000_SUBSYS_ID);
    ck_assert_uint_eq(qpci_config_readb(d, PCI_INTERRUPT_PIN), 1);
    ck_assert_uint_ne(qpci_find_capability(d, PCI_CAP_ID_PM, 0), 0);
    ck_assert_uint_eq(qpci_find_capability(d, PCI_CAP_ID_MSI, 0), 0);
    ck_assert_uint_eq(qpci_find_capability(d, PCI_CAP_ID_MSIX, 0), 0);
    ck_assert_uint_eq(qpci_bar_size(d, E1000_BAR_MMIO), E1000_MMIO_SIZE);
    ck_assert_uint_eq(qpci_bar_size(d, E1000_BAR_IO), E1000_IO_SIZE);
    ck_assert_uint_eq(qpci_config_readl(d, PCI_BASE_ADDRESS_0) &
                      PCI_BASE_ADDRESS_SPACE_IO, 0);
    bar1 = qpci_config_readl(d, PCI_BASE_ADDRESS_0 + 4);
    ck_assert_uint_eq(bar1 & PCI_BASE_ADDRESS_SPACE_IO,
                      PCI_BASE_ADDRESS_SPACE_IO);
}
END_TEST

/* ---- EEPROM ---- */

START_TEST(test_eeprom)
{
    QE1000 *e = nics[0].e;
    uint16_t w[E1000_EEPROM_WORDS];
    uint16_t sum = 0;
    uint32_t eecd;

    eecd = qe1000_readl(e, E1000_EECD);
    ck_assert_msg(eecd & E1000_EECD_PRES, "EECD 0x%x: no EEPROM", eecd);
    ck_assert_msg(!(eecd & E1000_EECD_SIZE), "EECD 0x%x: not a 64-word "
                  "EEPROM", eecd);
    ck_assert_uint_eq(eecd & E1000_EECD_GNT, 0);
    qe1000_writel(e, E1000_EECD, E1000_EECD_REQ);
    ck_assert_uint_ne(qe1000_readl(e, E1000_EECD) & E1000_EECD_GNT, 0);
    qe1000_writel(e, E1000_EECD, 0);

    qe1000_eeprom_read(e, 0, E1000_EEPROM_WORDS, w);
    for (unsigned i = 0; i < E1000_EEPROM_WORDS; i++) {
        sum += w[i];
    }
    ck_assert_uint_eq(sum, E1000_EEPROM_SUM);
    for (unsigned i = 0; i < 3; i++) {
        ck_assert_uint_eq(w[i], mac0[2 * i] | (mac0[2 * i + 1] << 8));
    }
    ck_assert_uint_eq(w[E1000_EEPROM_DEV_ID], E1000_DEVICE_ID_82540EM);
    ck_assert_uint_eq(w[E1000_EEPROM_VENDOR_ID], E1000_VENDOR_ID);
    ck_assert_uint_eq(w[E1000_EEPROM_SUBSYS_VID], E1000_VENDOR_ID);

    /* A few words one at a time, from the middle. */
    for (unsigned i = 10; i < 16; i++) {
        uint16_t one;

        qe1000_eeprom_read(e, i, 1, &one);
        ck_assert_uint_eq(one, w[i]);
    }
    /* EERD gives the same words. */
    for (unsigned i = 0; i < E1000_EEPROM_WORDS; i++) {
        ck_assert_msg(qe1000_eerd_read(e, i) == w[i], "EERD word %u: "
                      "0x%04x, bit-bang 0x%04x", i, qe1000_eerd_read(e, i),
                      w[i]);
    }
    /* Writes (EWEN, WRITE, EWDS) stick; RA0 reloads from the EEPROM. */
    qe1000_eeprom_write(e, 0x30, 0x1234);
    qe1000_eeprom_read(e, 0x30, 1, &w[0x30]);
    ck_assert_uint_eq(w[0x30], 0x1234);
    ck_assert_uint_eq(qe1000_eerd_read(e, 0x30), 0x1234);
    qe1000_eeprom_write(e, 2, 0x7766);
    qe1000_writel(e, E1000_RAH(0), 0);
    qe1000_writel(e, E1000_CTRL_EXT, E1000_CTRL_EXT_EE_RST);
    ck_assert_uint_eq(qe1000_readl(e, E1000_RAH(0)),
                      E1000_RAH_AV | 0x7766);
}
END_TEST

/* ---- PHY ---- */

START_TEST(test_phy)
{
    QE1000 *e = nics[0].e;
    uint16_t st;
    uint32_t v;

    ck_assert_uint_eq(qe1000_phy_read(e, E1000_PHY_ID1), E1000_PHY_ID1_M88);
    ck_assert_uint_eq(qe1000_phy_read(e, E1000_PHY_ID2) &
                      ~E1000_PHY_ID_REV_MASK, E1000_PHY_ID2_82540);
    st = qe1000_phy_read(e, E1000_PHY_STATUS);
    ck_assert_msg((st & (E1000_PHY_STATUS_LINK | E1000_PHY_STATUS_AN_DONE))
                  == (E1000_PHY_STATUS_LINK | E1000_PHY_STATUS_AN_DONE),
                  "PHY status 0x%04x", st);
    ck_assert_uint_ne(qe1000_phy_read(e, E1000_PHY_LP_ABILITY) &
                      E1000_PHY_AN_100FD, 0);
    ck_assert_uint_eq(qe1000_phy_read(e, E1000_PHY_1000T_STATUS) &
                      (E1000_PHY_1000T_LP_FD | E1000_PHY_1000T_LOCAL_OK),
                      E1000_PHY_1000T_LP_FD | E1000_PHY_1000T_LOCAL_OK);
    ck_assert_uint_ne(qe1000_phy_read(e, E1000_PHY_EXT_STATUS) &
                      E1000_PHY_EXT_1000T_FD, 0);
    ck_assert_uint_ne(qe1000_phy_read(e, E1000_M88_SPEC_STATUS) &
                      E1000_M88_SS_LINK, 0);

    /* Advertisement and 1000BASE-T control are writable, IDs are not. */
    qe1000_phy_write(e, E1000_PHY_AN_ADV, 0x0061);
    ck_assert_uint_eq(qe1000_phy_read(e, E1000_PHY_AN_ADV), 0x0061);
    qe1000_phy_write(e, E1000_PHY_1000T_CTRL, E1000_PHY_1000T_HD);
    ck_assert_uint_eq(qe1000_phy_read(e, E1000_PHY_1000T_CTRL),
                      E1000_PHY_1000T_HD);
    qe1000_phy_write(e, E1000_PHY_ID1, 0xdead);
    ck_assert_uint_eq(qe1000_phy_read(e, E1000_PHY_ID1), E1000_PHY_ID1_M88);

    /* Only PHY address 1 answers. */
    v = qe1000_mdic(e, (E1000_PHY_ID1 << E1000_MDIC_REG_SHIFT) |
                    (2 << E1000_MDIC_PHY_SHIFT) | E1000_MDIC_OP_READ);
    ck_assert_msg(v & E1000_MDIC_ERROR, "MDIC 0x%08x for PHY 2", v);

    /* MDIC with INT_EN raises MDAC. */
    qe1000_readl(e, E1000_ICR);
    qe1000_mdic(e, (E1000_PHY_ID1 << E1000_MDIC_REG_SHIFT) |
                (E1000_PHY_ADDR << E1000_MDIC_PHY_SHIFT) |
                E1000_MDIC_OP_READ | E1000_MDIC_INT_EN);
    ck_assert_uint_ne(qe1000_readl(e, E1000_ICR) & E1000_ICR_MDAC, 0);

    /* Power down: link lost (LSC); power up: renegotiated, link back. */
    qe1000_readl(e, E1000_ICR);
    qe1000_phy_write(e, E1000_PHY_CTRL,
                     qe1000_phy_read(e, E1000_PHY_CTRL) |
                     E1000_PHY_CTRL_POWER_DOWN);
    ck_assert(qe1000_wait_link(e, false, QOS_TIMEOUT_MS));
    ck_assert_uint_eq(qe1000_phy_read(e, E1000_PHY_STATUS) &
                      E1000_PHY_STATUS_LINK, 0);
    ck_assert_uint_ne(qe1000_readl(e, E1000_ICR) & E1000_ICR_LSC, 0);
    qe1000_phy_write(e, E1000_PHY_CTRL,
                     qe1000_phy_read(e, E1000_PHY_CTRL) &
                     ~E1000_PHY_CTRL_POWER_DOWN);
    ck_assert(qe1000_wait_link(e, true, QOS_TIMEOUT_MS));
    st = qe1000_phy_read(e, E1000_PHY_STATUS);
    ck_assert_uint_ne(st & E1000_PHY_STATUS_AN_DONE, 0);
    ck_assert_uint_ne(qe1000_readl(e, E1000_ICR) & E1000_ICR_LSC, 0);
    ck_assert_uint_ne(qe1000_readl(e, E1000_STATUS) & E1000_STATUS_FD, 0);
}
END_TEST

/* ---- interrupts ---- */

static bool intx_line(Nic *n)
{
    return qpci_config_readw(n->pdev, PCI_STATUS) & PCI_STATUS_INTERRUPT;
}

START_TEST(test_icr_ics_ims)
{
    Nic *n = &nics[0];
    QE1000 *e = n->e;

    qe1000_writel(e, E1000_IMC, 0xffffffff);
    qe1000_readl(e, E1000_ICR);
    qpci_intx_enable(n->pdev);
    ck_assert_uint_eq(qe1000_readl(e, E1000_IMS), 0);

    /* A cause without its mask bit: recorded, no interrupt. */
    qe1000_writel(e, E1000_ICS, E1000_ICR_TXDW);
    ck_assert_uint_eq(qe1000_readl(e, E1000_ICS), E1000_ICR_TXDW);
    qpci_intx_assert_quiet(n->pdev);
    ck_assert(!intx_line(n));

    /* Unmasking it asserts INTx; reading ICR clears and deasserts. */
    qe1000_writel(e, E1000_IMS, E1000_ICR_TXDW);
    qpci_intx_wait(n->pdev);
    ck_assert(intx_line(n));
    ck_assert_uint_eq(qe1000_readl(e, E1000_IMS), E1000_ICR_TXDW);
    ck_assert_uint_eq(qe1000_readl(e, E1000_ICR), E1000_ICR_TXDW);
    ck_assert_uint_eq(qe1000_readl(e, E1000_ICR), 0);
    ck_assert(!intx_line(n));
    qpci_intx_unmask(n->pdev);
    qpci_intx_assert_quiet(n->pdev);

    /* Causes outside IMS stay quiet; IMC removes mask bits. */
    qe1000_writel(e, E1000_ICS, E1000_ICR_RXT0 | E1000_ICR_LSC);
    qpci_intx_assert_quiet(n->pdev);
    /* ICR bits are also cleared by writing 1. */
    qe1000_writel(e, E1000_ICR, E1000_ICR_RXT0);
    ck_assert_uint_eq(qe1000_readl(e, E1000_ICS), E1000_ICR_LSC);
    qe1000_writel(e, E1000_IMS, E1000_ICR_LSC);
    qpci_intx_wait(n->pdev);
    ck_assert(intx_line(n));
    /* Masking the pending cause deasserts the line. */
    qe1000_writel(e, E1000_IMC, E1000_ICR_LSC);
    ck_assert_uint_eq(qe1000_readl(e, E1000_IMS), E1000_ICR_TXDW);
    ck_assert(!intx_line(n));
    qpci_intx_unmask(n->pdev);
    qpci_intx_assert_quiet(n->pdev);
    ck_assert_uint_eq(qe1000_readl(e, E1000_ICR), E1000_ICR_LSC);
    ck_assert_uint_eq(qe1000_readl(e, E1000_IMC), 0);
}
END_TEST

/* ITR: a minimum interval between two assertions of the line. */
START_TEST(test_itr)
{
    Nic *n = &nics[0];
    QE1000 *e = n->e;
    const int64_t interval_ms = 0xffff * 256 / 1000000;    /* 16 ms */
    int64_t t1, t2;

    qe1000_writel(e, E1000_IMC, 0xffffffff);
    qe1000_readl(e, E1000_ICR);
    qpci_intx_enable(n->pdev);
    qe1000_writel(e, E1000_ITR, 0xffff);
    qe1000_writel(e, E1000_IMS, E1000_ICR_TXDW);

    qe1000_writel(e, E1000_ICS, E1000_ICR_TXDW);
    qpci_intx_wait(n->pdev);
    t1 = qos_now_ms();
    qe1000_readl(e, E1000_ICR);
    qpci_intx_unmask(n->pdev);

    qe1000_writel(e, E1000_ICS, E1000_ICR_TXDW);
    ck_assert(!intx_line(n));
    qpci_intx_wait(n->pdev);
    t2 = qos_now_ms();
    ck_assert_msg(t2 - t1 >= interval_ms - 2, "second interrupt after %"
                  PRId64 " ms, ITR asks for %" PRId64, t2 - t1,
                  interval_ms);
    qe1000_readl(e, E1000_ICR);
    qpci_intx_unmask(n->pdev);

    /* ITR 0: no throttling. */
    qe1000_writel(e, E1000_ITR, 0);
    qe1000_sleep(e, interval_ms + 5);
    for (int i = 0; i < 3; i++) {
        qe1000_writel(e, E1000_ICS, E1000_ICR_TXDW);
        ck_assert(intx_line(n));
        qpci_intx_wait(n->pdev);
        qe1000_readl(e, E1000_ICR);
        qpci_intx_unmask(n->pdev);
    }
}
END_TEST

/* ---- reset and the I/O window ---- */

START_TEST(test_reset)
{
    QE1000 *e = nics[0].e;

    ck_assert_uint_eq(qe1000_io_readl(e, E1000_STATUS),
                      qe1000_readl(e, E1000_STATUS));
    ck_assert_uint_eq(qpci_bar_readl(nics[0].pdev, E1000_BAR_IO,
                                     E1000_IOADDR), E1000_STATUS);
    qe1000_io_writel(e, E1000_FCTTV, 0x1234);
    ck_assert_uint_eq(qe1000_readl(e, E1000_FCTTV), 0x1234);

    ck_assert_uint_ne(qe1000_readl(e, E1000_RCTL), 0);
    ck_assert_uint_ne(qe1000_readl(e, E1000_IMS), 0);
    qe1000_writel(e, E1000_RAL(0), 0x11223344);
    qe1000_writel(e, E1000_RAL(5), 0x11223344);
    qe1000_io_writel(e, E1000_CTRL, qe1000_readl(e, E1000_CTRL) |
                     E1000_CTRL_RST);
    ck_assert_uint_eq(qe1000_readl(e, E1000_CTRL) & E1000_CTRL_RST, 0);
    ck_assert_uint_eq(qe1000_readl(e, E1000_RCTL), 0);
    ck_assert_uint_eq(qe1000_readl(e, E1000_TCTL), 0);
    ck_assert_uint_eq(qe1000_readl(e, E1000_IMS), 0);
    ck_assert_uint_eq(qe1000_readl(e, E1000_TDLEN), 0);
    ck_assert_uint_eq(qe1000_readl(e, E1000_RDLEN), 0);
    ck_assert_uint_eq(qe1000_readl(e, E1000_FCTTV), 0);
    ck_assert_uint_eq(qe1000_readl(e, E1000_RAL(5)), 0);
    ck_assert_uint_eq(qe1000_readl(e, E1000_VET), E1000_ETH_P_VLAN);
    ck_assert_uint_eq(qe1000_readl(e, E1000_RXCSUM),
                      E1000_RXCSUM_IPOFL | E1000_RXCSUM_TUOFL);
    /* RA0 reloaded from the EEPROM. */
    ck_assert_uint_eq(qe1000_readl(e, E1000_RAL(0)), ldl_le_p(mac0));
    ck_assert_uint_eq(qe1000_readl(e, E1000_RAH(0)),
                      lduw_le_p(mac0 + 4) | E1000_RAH_AV);
    ck_assert_uint_ne(qe1000_readl(e, E1000_STATUS) & E1000_STATUS_LU, 0);

    /* IODATA with IOADDR outside the registers: ignored, reads 0. */
    qpci_bar_writel(nics[0].pdev, E1000_BAR_IO, E1000_IOADDR, 0x7fffff00);
    ck_assert_uint_eq(qpci_bar_readl(nics[0].pdev, E1000_BAR_IO,
                                     E1000_IODATA), 0);
    qpci_bar_writel(nics[0].pdev, E1000_BAR_IO, E1000_IODATA, 1);
    /* Unknown registers read 0. */
    ck_assert_uint_eq(qe1000_readl(e, 0x1fffc), 0);
    qe1000_writel(e, 0x1fffc, 1);

    /* And the driver can bring it up again. */
    qe1000_init(e, NULL);
}
END_TEST

/* A device reset from the VMM (DEVICE_RESET) is a power-on reset. */
START_TEST(test_device_reset)
{
    QE1000 *e = nics[0].e;

    QPCIDevice *d = nics[0].pdev;
    uint16_t cmd;

    qe1000_writel(e, E1000_IMS, E1000_ICR_LSC);
    qos_assert_errno(vfu_device_reset(nics[0].c), 0);
    /* PCI state too: decoding is off until the driver enables it. */
    cmd = qpci_config_readw(d, PCI_COMMAND);
    ck_assert_uint_eq(cmd & (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER), 0);
    ck_assert_uint_eq(qe1000_readl(e, E1000_STATUS), 0xffffffff);
    qpci_config_writew(d, PCI_COMMAND, PCI_COMMAND_MEMORY |
                       PCI_COMMAND_MASTER | PCI_COMMAND_IO);
    ck_assert_uint_eq(qe1000_readl(e, E1000_IMS), 0);
    ck_assert_uint_eq(qe1000_readl(e, E1000_RCTL), 0);
    ck_assert_uint_ne(qe1000_readl(e, E1000_STATUS) & E1000_STATUS_LU, 0);
    qe1000_init(e, NULL);
}
END_TEST

/* ---- transmit and receive ---- */

START_TEST(test_tx_rx_bytes)
{
    static uint8_t f[FRAME_MAX], got[FRAME_MAX];
    static const size_t sizes[] = {
        60, 61, 63, 64, 100, 127, 128, 255, 1000, 1514, 1518
    };
    QE1000TxOpts split = { .split = 100 };
    QE1000RxInfo info;
    size_t len, n;

    for (unsigned dir = 0; dir < 2; dir++) {
        Nic *a = &nics[dir], *b = &nics[!dir];
        const uint8_t *src = dir ? mac1 : mac0, *dst = dir ? mac0 : mac1;

        for (unsigned i = 0; i < ARRAY_SIZE(sizes); i++) {
            len = raw_frame(f, dst, src, sizes[i], i + 10 * dir);
            qe1000_tx(a->e, f, len, NULL);
            rx_expect(b, f, len, &info);
            ck_assert_uint_eq(info.ndesc, 1);
            ck_assert_uint_eq(info.errors, 0);
            ck_assert_uint_eq(info.wire_len, len + E1000_CRC_LEN);
            ck_assert_uint_eq(info.status & E1000_RXD_STAT_VP, 0);
        }
    }

    /* Short frames are padded to 60 bytes (TCTL.PSP). */
    len = raw_frame(f, mac1, mac0, 42, 3);
    qe1000_tx(nics[0].e, f, len, NULL);
    n = rx_one(&nics[1], got, NULL);
    ck_assert_uint_eq(n, 60);
    assert_bytes(got, f, len, "short frame");
    for (size_t i = len; i < n; i++) {
        ck_assert_uint_eq(got[i], 0);
    }

    /* One frame from many descriptors. */
    len = raw_frame(f, mac1, mac0, 1514, 4);
    qe1000_tx(nics[0].e, f, len, &split);
    rx_expect(&nics[1], f, len, NULL);

    /*
     * More frames than the receive ring holds, all sent before any is
     * received: the rest wait in the net layer and come in order once
     * descriptors are given back.
     */
    for (unsigned i = 0; i < 150; i++) {
        len = raw_frame(f, mac1, mac0, 60 + i * 9, 100 + i);
        qe1000_tx(nics[0].e, f, len, NULL);
    }
    qe1000_tx_wait(nics[0].e);
    for (unsigned i = 0; i < 150; i++) {
        len = raw_frame(f, mac1, mac0, 60 + i * 9, 100 + i);
        rx_expect(&nics[1], f, len, NULL);
    }
    ck_assert_uint_ne(stat(&nics[1], E1000_RNBC), 0);
    ck_assert_uint_eq(stat(&nics[1], E1000_MPC), 0);
    rx_none(&nics[1]);
}
END_TEST

START_TEST(test_rx_filter_unicast)
{
    static uint8_t f[FRAME_MAX];
    static const uint8_t other[6] = { 0x52, 0x54, 0x00, 0xaa, 0xbb, 0x77 };
    Nic *a = &nics[0], *b = &nics[1];
    size_t len = raw_frame(f, other, mac0, 100, 1);
    QE1000RxInfo info;

    qe1000_tx(a->e, f, len, NULL);
    send_marker_and_expect(a, b, mac1);

    /* A second exact-match address (RAL/RAH 7). */
    qe1000_writel(b->e, E1000_RAL(7), ldl_le_p(other));
    qe1000_writel(b->e, E1000_RAH(7), lduw_le_p(other + 4) | E1000_RAH_AV);
    qe1000_tx(a->e, f, len, NULL);
    rx_expect(b, f, len, &info);
    ck_assert_uint_eq(info.status & E1000_RXD_STAT_PIF, 0);

    /* Not valid, or a source-address match: not ours. */
    qe1000_writel(b->e, E1000_RAH(7), lduw_le_p(other + 4));
    qe1000_tx(a->e, f, len, NULL);
    send_marker_and_expect(a, b, mac1);
    qe1000_writel(b->e, E1000_RAH(7), lduw_le_p(other + 4) | E1000_RAH_AV |
                  (1 << 16));
    qe1000_tx(a->e, f, len, NULL);
    send_marker_and_expect(a, b, mac1);

    /* The last of the 16 entries works too. */
    qe1000_writel(b->e, E1000_RAL(15), ldl_le_p(other));
    qe1000_writel(b->e, E1000_RAH(15), lduw_le_p(other + 4) | E1000_RAH_AV);
    qe1000_tx(a->e, f, len, NULL);
    rx_expect(b, f, len, NULL);
    qe1000_writel(b->e, E1000_RAH(15), 0);

    /* Unicast promiscuous. */
    qe1000_writel(b->e, E1000_RCTL, b->e->rctl | E1000_RCTL_UPE);
    qe1000_tx(a->e, f, len, NULL);
    rx_expect(b, f, len, NULL);
    qe1000_writel(b->e, E1000_RCTL, b->e->rctl & ~E1000_RCTL_UPE);
    qe1000_tx(a->e, f, len, NULL);
    send_marker_and_expect(a, b, mac1);
}
END_TEST

static unsigned mta_hash(const uint8_t *mac, unsigned mo)
{
    static const unsigned shift[4] = { 4, 3, 2, 0 };

    return ((mac[4] | (mac[5] << 8)) >> shift[mo]) & 0xfff;
}

static void mta_set(Nic *n, unsigned hash)
{
    uint32_t reg = E1000_MTA + 4 * (hash >> 5);

    qe1000_writel(n->e, reg, qe1000_readl(n->e, reg) | (1u << (hash & 31)));
}

static void mta_clear(Nic *n)
{
    for (unsigned i = 0; i < E1000_MTA_COUNT; i++) {
        qe1000_writel(n->e, E1000_MTA + 4 * i, 0);
    }
}

START_TEST(test_rx_filter_multicast)
{
    static uint8_t f[FRAME_MAX];
    static const uint8_t mc[6] = { 0x01, 0x00, 0x5e, 0x12, 0x34, 0x56 };
    Nic *a = &nics[0], *b = &nics[1];
    size_t len = raw_frame(f, mc, mac0, 200, 2);
    QE1000RxInfo info;

    ck_assert_uint_ne(mta_hash(mc, 0), mta_hash(mc, 1));
    qe1000_tx(a->e, f, len, NULL);
    send_marker_and_expect(a, b, mac1);

    /* The MTA bit for MO = 0 (bits 47:36). */
    mta_set(b, mta_hash(mc, 0));
    qe1000_tx(a->e, f, len, NULL);
    rx_expect(b, f, len, &info);
    ck_assert_uint_ne(info.status & E1000_RXD_STAT_PIF, 0);

    /* MO = 1 hashes other bits: dropped until its bit is set. */
    qe1000_writel(b->e, E1000_RCTL, b->e->rctl | (1 << E1000_RCTL_MO_SHIFT));
    qe1000_tx(a->e, f, len, NULL);
    send_marker_and_expect(a, b, mac1);
    mta_set(b, mta_hash(mc, 1));
    qe1000_tx(a->e, f, len, NULL);
    rx_expect(b, f, len, NULL);
    qe1000_writel(b->e, E1000_RCTL, b->e->rctl | (3 << E1000_RCTL_MO_SHIFT));
    mta_clear(b);
    mta_set(b, mta_hash(mc, 3));
    qe1000_tx(a->e, f, len, NULL);
    rx_expect(b, f, len, NULL);

    /* Groups in the exact filters, as Linux puts its first 14 there. */
    mta_clear(b);
    qe1000_tx(a->e, f, len, NULL);
    send_marker_and_expect(a, b, mac1);
    qe1000_writel(b->e, E1000_RAL(3), ldl_le_p(mc));
    qe1000_writel(b->e, E1000_RAH(3), lduw_le_p(mc + 4) | E1000_RAH_AV);
    qe1000_tx(a->e, f, len, NULL);
    rx_expect(b, f, len, &info);
    ck_assert_uint_eq(info.status & E1000_RXD_STAT_PIF, 0);
    qe1000_writel(b->e, E1000_RAH(3), 0);

    /* Multicast promiscuous takes any group. */
    qe1000_tx(a->e, f, len, NULL);
    send_marker_and_expect(a, b, mac1);
    qe1000_writel(b->e, E1000_RCTL, b->e->rctl | E1000_RCTL_MPE);
    qe1000_tx(a->e, f, len, &(QE1000TxOpts){ .split = 50 });
    rx_expect(b, f, len, &info);
    ck_assert_uint_eq(info.status & E1000_RXD_STAT_PIF, 0);
}
END_TEST

START_TEST(test_rx_filter_broadcast)
{
    static uint8_t f[FRAME_MAX];
    Nic *a = &nics[0], *b = &nics[1];
    size_t len = raw_frame(f, bcast, mac0, 300, 5);
    uint32_t rctl = b->e->rctl;

    qe1000_tx(a->e, f, len, NULL);
    rx_expect(b, f, len, NULL);
    qe1000_writel(b->e, E1000_RCTL, rctl & ~E1000_RCTL_BAM);
    qe1000_tx(a->e, f, len, NULL);
    send_marker_and_expect(a, b, mac1);
    /* Without BAM, broadcast is a multicast like any other. */
    mta_set(b, mta_hash(bcast, 0));
    qe1000_tx(a->e, f, len, NULL);
    rx_expect(b, f, len, NULL);
    mta_clear(b);
    qe1000_writel(b->e, E1000_RCTL, (rctl & ~E1000_RCTL_BAM) |
                  E1000_RCTL_MPE);
    qe1000_tx(a->e, f, len, NULL);
    rx_expect(b, f, len, NULL);
    /* The receiver off: nothing, not even counted as missed. */
    qe1000_writel(b->e, E1000_RCTL, rctl & ~E1000_RCTL_EN);
    clear_stats(b);
    qe1000_tx(a->e, f, len, NULL);
    qe1000_tx_wait(a->e);
    rx_none(b);
    ck_assert_uint_eq(stat(b, E1000_MPC), 0);
    qe1000_writel(b->e, E1000_RCTL, rctl);
    send_marker_and_expect(a, b, mac1);
}
END_TEST

/* A frame with an 802.1Q tag @tci in front of ethertype 0x88b5. */
static size_t tagged_frame(uint8_t *f, const uint8_t *dst, uint16_t tci,
                           size_t len, unsigned seed)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, mac0, 6);
    wr16(f + 12, E1000_ETH_P_VLAN);
    wr16(f + 14, tci);
    wr16(f + 16, 0x88b5);
    fill_pattern(f + 18, len - 18, seed);
    return len;
}

static size_t untag(uint8_t *out, const uint8_t *f, size_t len)
{
    memcpy(out, f, 12);
    memcpy(out + 12, f + 16, len - 16);
    return len - 4;
}

START_TEST(test_vlan)
{
    static uint8_t f[FRAME_MAX], plain[FRAME_MAX], got[FRAME_MAX];
    Nic *a = &nics[0], *b = &nics[1];
    size_t len = tagged_frame(f, mac1, 0x2005, 200, 7);
    size_t plen = untag(plain, f, len);
    QE1000RxInfo info;
    QE1000TxOpts vle = { .vle = true, .vlan = 0x3007 };
    uint32_t ctrl;

    /* VLAN mode off: the tag is just data. */
    qe1000_tx(a->e, f, len, NULL);
    rx_expect(b, f, len, &info);
    ck_assert_uint_eq(info.status & E1000_RXD_STAT_VP, 0);

    /* The VLAN filter drops tagged frames whose VID is not in VFTA. */
    qe1000_writel(b->e, E1000_RCTL, b->e->rctl | E1000_RCTL_VFE);
    qe1000_tx(a->e, f, len, NULL);
    send_marker_and_expect(a, b, mac1);
    qe1000_writel(b->e, E1000_VFTA + 4 * (5 >> 5), 1u << 5);
    qe1000_tx(a->e, f, len, NULL);
    rx_expect(b, f, len, NULL);

    /* CTRL.VME strips the tag into the descriptor (VET is 0 as Linux
     * leaves it on the 82540: 0x8100 applies). */
    ctrl = qe1000_readl(b->e, E1000_CTRL);
    qe1000_writel(b->e, E1000_CTRL, ctrl | E1000_CTRL_VME);
    qe1000_tx(a->e, f, len, NULL);
    rx_expect(b, plain, plen, &info);
    ck_assert_uint_ne(info.status & E1000_RXD_STAT_VP, 0);
    ck_assert_uint_eq(info.special, 0x2005);

    /* Insertion on transmit (VLE with CTRL.VME). */
    ctrl = qe1000_readl(a->e, E1000_CTRL);
    qe1000_writel(a->e, E1000_CTRL, ctrl | E1000_CTRL_VME);
    qe1000_writel(b->e, E1000_VFTA, (1u << 5) | (1u << 7));
    qe1000_tx(a->e, plain, plen, &vle);
    rx_expect(b, plain, plen, &info);
    ck_assert_uint_ne(info.status & E1000_RXD_STAT_VP, 0);
    ck_assert_uint_eq(info.special, 0x3007);
    ck_assert_uint_eq(stat(a, E1000_GOTCL) >= plen + 8, 1);

    /* Without stripping the receiver sees the inserted tag. */
    qe1000_writel(b->e, E1000_CTRL, qe1000_readl(b->e, E1000_CTRL) &
                  ~E1000_CTRL_VME);
    qe1000_tx(a->e, plain, plen, &vle);
    ck_assert_uint_eq(rx_one(b, got, NULL), plen + 4);
    ck_assert_uint_eq(rd16(got + 12), E1000_ETH_P_VLAN);
    ck_assert_uint_eq(rd16(got + 14), 0x3007);
    assert_bytes(got + 16, plain + 12, plen - 12, "tagged payload");
    /* VID 9 is not in the table. */
    vle.vlan = 9;
    qe1000_tx(a->e, plain, plen, &vle);
    send_marker_and_expect(a, b, mac1);
    /* VLE without CTRL.VME inserts nothing. */
    qe1000_writel(a->e, E1000_CTRL, ctrl & ~E1000_CTRL_VME);
    qe1000_tx(a->e, plain, plen, &vle);
    rx_expect(b, plain, plen, NULL);
}
END_TEST

/* ---- checksum offloads ---- */

/* IP and TCP checksums inserted by the device (context descriptor). */
static const QE1000TxOpts csum4_opts = {
    .ctx = true, .ipcss = NET_IP_OFF, .ipcso = NET_IP_OFF + 10,
    .ipcse = NET_L4_OFF - 1, .tucss = NET_L4_OFF, .tucso = NET_L4_OFF + 16,
    .tucmd = E1000_TUCMD_TCP | E1000_TUCMD_IP,
    .popts = E1000_TXD_POPTS_IXSM | E1000_TXD_POPTS_TXSM,
};

START_TEST(test_tx_csum_offload)
{
    static uint8_t f[FRAME_MAX], want[FRAME_MAX], payload[1400];
    Nic *a = &nics[0], *b = &nics[1];
    QE1000TxOpts o;
    QE1000RxInfo info;
    size_t len;

    fill_pattern(payload, sizeof(payload), 11);

    /* TCP: IP header and TCP checksums inserted (context descriptor). */
    len = tcp4_frame(want, mac1, mac0, 77, NET_TCP_ACK, payload, 999);
    memcpy(f, want, len);
    wr16(f + NET_IP_OFF + 10, 0);
    net_l4_csum_seed(f, true);
    o = csum4_opts;
    o.split = 300;
    qe1000_tx(a->e, f, len, &o);
    rx_expect(b, want, len, &info);
    ck_assert_uint_eq(info.status & (E1000_RXD_STAT_IPCS |
                                     E1000_RXD_STAT_TCPCS),
                      E1000_RXD_STAT_IPCS | E1000_RXD_STAT_TCPCS);
    ck_assert_uint_eq(info.errors, 0);

    /* UDP. */
    len = udp4_frame(want, mac1, mac0, payload, 1001);
    memcpy(f, want, len);
    net_l4_csum_seed(f, true);
    qe1000_tx(a->e, f, len, &(QE1000TxOpts){
        .ctx = true, .tucss = NET_L4_OFF, .tucso = NET_L4_OFF + 6,
        .tucmd = E1000_TUCMD_IP, .popts = E1000_TXD_POPTS_TXSM });
    rx_expect(b, want, len, &info);
    ck_assert_uint_ne(info.status & E1000_RXD_STAT_TCPCS, 0);
    ck_assert_uint_eq(info.errors, 0);

    /* Legacy descriptors: CSS/CSO with CMD.IC. */
    len = tcp4_frame(want, mac1, mac0, 78, NET_TCP_ACK | NET_TCP_PSH,
                     payload, 61);
    memcpy(f, want, len);
    net_l4_csum_seed(f, true);
    qe1000_tx(a->e, f, len, &(QE1000TxOpts){
        .legacy = true, .ic = true, .css = NET_L4_OFF, .cso = NET_L4_OFF + 16,
        .split = 40 });
    rx_expect(b, want, len, &info);
    ck_assert_uint_eq(info.errors, 0);

    /* Offsets outside the frame: nothing inserted, the frame still goes. */
    memcpy(f, want, len);
    qe1000_tx(a->e, f, len, &(QE1000TxOpts){
        .legacy = true, .ic = true, .css = 200, .cso = 250 });
    rx_expect(b, f, len, NULL);
}
END_TEST

/* IPv6 + UDP with a correct checksum. */
static size_t udp6_frame(uint8_t *f, const uint8_t *payload, size_t plen)
{
    uint8_t *ip = f + 14, *u = f + 54;
    uint32_t sum;

    net_eth_hdr(f, mac1, mac0, E1000_ETH_P_IPV6);
    memset(ip, 0, 40);
    ip[0] = 0x60;
    wr16(ip + 4, 8 + plen);
    ip[6] = E1000_IP_PROTO_UDP;
    ip[7] = 64;
    ip[8] = 0xfe;
    ip[9] = 0x80;
    ip[23] = 1;
    ip[24] = 0xfe;
    ip[25] = 0x80;
    ip[39] = 2;
    net_udp_hdr(u, 5000, 6000, plen);
    memcpy(u + 8, payload, plen);
    sum = csum_add(0, ip + 8, 32) + E1000_IP_PROTO_UDP + 8 + plen;
    wr16(u + 6, ~csum_fold(csum_add(sum, u, 8 + plen)));
    return 54 + 8 + plen;
}

static void rx_csum_case(const uint8_t *f, size_t len, uint8_t status_mask,
                         uint8_t status, uint8_t errors, const char *what)
{
    QE1000RxInfo info;

    qe1000_tx(nics[0].e, f, len, NULL);
    rx_expect(&nics[1], f, len, &info);
    ck_assert_msg((info.status & status_mask) == status &&
                  info.errors == errors, "%s: status 0x%02x errors 0x%02x, "
                  "expected status 0x%02x (of 0x%02x) errors 0x%02x", what,
                  info.status, info.errors, status, status_mask, errors);
}

START_TEST(test_rx_csum)
{
    static uint8_t f[FRAME_MAX], payload[600];
    const uint8_t m = E1000_RXD_STAT_IPCS | E1000_RXD_STAT_TCPCS |
                      E1000_RXD_STAT_IXSM;
    const uint8_t both = E1000_RXD_STAT_IPCS | E1000_RXD_STAT_TCPCS;
    size_t len;

    fill_pattern(payload, sizeof(payload), 21);
    len = tcp4_frame(f, mac1, mac0, 1, NET_TCP_ACK, payload, 333);
    rx_csum_case(f, len, m, both, 0, "good TCP");
    f[NET_L4_OFF + 17] ^= 0x40;
    rx_csum_case(f, len, m, both, E1000_RXD_ERR_TCPE, "bad TCP checksum");
    f[NET_L4_OFF + 17] ^= 0x40;
    f[NET_IP_OFF + 11] ^= 0x01;
    rx_csum_case(f, len, m, both, E1000_RXD_ERR_IPE, "bad IP checksum");

    len = udp4_frame(f, mac1, mac0, payload, 100);
    rx_csum_case(f, len, m, both, 0, "good UDP");
    wr16(f + NET_L4_OFF + 6, 0);
    rx_csum_case(f, len, m, E1000_RXD_STAT_IPCS, 0, "UDP without checksum");

    len = udp4_frame(f, mac1, mac0, payload, 100);
    wr16(f + NET_IP_OFF + 6, 0x2000);       /* more fragments */
    wr16(f + NET_IP_OFF + 10, 0);
    wr16(f + NET_IP_OFF + 10, ~csum_fold(csum_add(0, f + NET_IP_OFF, 20)));
    rx_csum_case(f, len, m, E1000_RXD_STAT_IPCS, 0, "IPv4 fragment");

    len = udp6_frame(f, payload, 200);
    rx_csum_case(f, len, m, E1000_RXD_STAT_TCPCS, 0, "good UDP/IPv6");
    f[60] ^= 0xff;
    rx_csum_case(f, len, m, E1000_RXD_STAT_TCPCS, E1000_RXD_ERR_TCPE,
                 "bad UDP/IPv6");

    len = raw_frame(f, mac1, mac0, 100, 1);
    rx_csum_case(f, len, m, 0, 0, "not IP");

    /* Offloads off: IXSM says "ignore the checksum bits". */
    qe1000_writel(nics[1].e, E1000_RXCSUM, 0);
    len = tcp4_frame(f, mac1, mac0, 1, NET_TCP_ACK, payload, 10);
    rx_csum_case(f, len, m, E1000_RXD_STAT_IXSM, 0, "offload off");
    /* IP only. */
    qe1000_writel(nics[1].e, E1000_RXCSUM, E1000_RXCSUM_IPOFL);
    rx_csum_case(f, len, m, E1000_RXD_STAT_IPCS, 0, "IP offload only");
}
END_TEST

/* ---- TCP segmentation ---- */

/* A TSO super-frame as Linux's e1000_tso() hands it over (IPv4). */
static size_t tso4_frame(uint8_t *f, const uint8_t *payload, size_t plen,
                         uint8_t flags)
{
    size_t len = tcp4_frame(f, mac1, mac0, 5000, flags, payload, plen);

    wr16(f + NET_IP_OFF + 2, 0);
    wr16(f + NET_IP_OFF + 4, 0x1000);
    wr16(f + NET_IP_OFF + 10, 0);
    net_l4_csum_seed(f, false);
    return len;
}

static void check_tso4_segments(const uint8_t *tmpl, const uint8_t *payload,
                                size_t plen, unsigned mss, uint8_t flags)
{
    static uint8_t got[FRAME_MAX];
    unsigned nseg = DIV_ROUND_UP(plen, mss);

    for (unsigned i = 0; i < nseg; i++) {
        size_t seg = MIN(mss, plen - i * mss);
        bool last = i == nseg - 1;
        uint8_t want_flags = last ? flags
                                  : flags & ~(NET_TCP_FIN | NET_TCP_PSH);
        QE1000RxInfo info;
        size_t len = rx_one(&nics[1], got, &info);

        ck_assert_msg(len == 54 + seg, "segment %u: %zu bytes, expected %zu",
                      i, len, 54 + seg);
        assert_bytes(got, tmpl, 12, "MAC addresses");
        ck_assert_uint_eq(rd16(got + NET_IP_OFF + 2), 40 + seg);
        ck_assert_uint_eq(rd16(got + NET_IP_OFF + 4), 0x1000 + i);
        ck_assert_msg(net_ip4_csum_ok(got), "segment %u: IP checksum", i);
        ck_assert_uint_eq(rd32(got + NET_L4_OFF + 4), 5000 + i * mss);
        ck_assert_msg(got[NET_L4_OFF + 13] == want_flags, "segment %u: TCP "
                      "flags 0x%02x, expected 0x%02x", i, got[NET_L4_OFF + 13],
                      want_flags);
        ck_assert_msg(net_l4_csum_ok(got, len), "segment %u: TCP checksum", i);
        ck_assert_uint_eq(info.errors, 0);
        ck_assert_uint_ne(info.status & E1000_RXD_STAT_TCPCS, 0);
        assert_bytes(got + 54, payload + i * mss, seg, "segment payload");
    }
}

static const QE1000TxOpts tso4_opts = {
    .ctx = true, .tso = true, .ipcss = NET_IP_OFF, .ipcso = NET_IP_OFF + 10,
    .ipcse = NET_L4_OFF - 1, .tucss = NET_L4_OFF, .tucso = NET_L4_OFF + 16,
    .tucmd = E1000_TUCMD_TCP | E1000_TUCMD_IP, .hdr_len = 54,
    .popts = E1000_TXD_POPTS_IXSM | E1000_TXD_POPTS_TXSM,
};

START_TEST(test_tso)
{
    static uint8_t f[FRAME_MAX], payload[65536], got[FRAME_MAX];
    Nic *a = &nics[0], *b = &nics[1];
    QE1000TxOpts o = tso4_opts;
    uint8_t flags = NET_TCP_ACK | NET_TCP_PSH | NET_TCP_FIN;
    size_t len;

    fill_pattern(payload, sizeof(payload), 33);
    clear_stats(a);

    /* 10000 bytes in MSS 1448: six full segments and a short one. */
    o.mss = 1448;
    len = tso4_frame(f, payload, 10000, flags);
    qe1000_tx(a->e, f, len, &o);
    check_tso4_segments(f, payload, 10000, 1448, flags);
    ck_assert_uint_eq(stat(a, E1000_TSCTC), 1);
    ck_assert_uint_eq(stat(a, E1000_GPTC), 7);

    /* A multiple of the MSS, data split at odd places; the header split
     * across descriptors. */
    o.mss = 1000;
    o.split = 97;
    len = tso4_frame(f, payload, 3000, flags);
    qe1000_tx(a->e, f, len, &o);
    check_tso4_segments(f, payload, 3000, 1000, flags);

    /* The largest: 64 KiB less the header, MSS 8000. */
    o.mss = 8000;
    o.split = 0;
    len = tso4_frame(f, payload, 65535 - 54, NET_TCP_ACK);
    b->e->rctl |= E1000_RCTL_LPE;
    qe1000_writel(b->e, E1000_RCTL, b->e->rctl);
    qe1000_tx(a->e, f, len, &o);
    check_tso4_segments(f, payload, 65535 - 54, 8000, NET_TCP_ACK);

    /* IPv6: payload length per segment, TCP checksum with the length. */
    {
        uint8_t *ip = f + 14, *t = f + 54;
        size_t plen = 5000, mss = 1200;
        unsigned nseg = DIV_ROUND_UP(plen, mss);
        uint32_t pseudo;

        net_eth_hdr(f, mac1, mac0, E1000_ETH_P_IPV6);
        memset(ip, 0, 40);
        ip[0] = 0x60;
        ip[6] = E1000_IP_PROTO_TCP;
        ip[7] = 64;
        ip[8] = 0xfe;
        ip[23] = 1;
        ip[24] = 0xfe;
        ip[39] = 2;
        net_tcp_hdr(t, 1, 2, 9000, 1, NET_TCP_ACK, 100);
        memcpy(f + 74, payload, plen);
        pseudo = csum_add(0, ip + 8, 32) + E1000_IP_PROTO_TCP;
        wr16(t + 16, csum_fold(pseudo));
        qe1000_tx(a->e, f, 74 + plen, &(QE1000TxOpts){
            .ctx = true, .tso = true, .ipcss = 14, .tucss = 54,
            .tucso = 70, .tucmd = E1000_TUCMD_TCP, .hdr_len = 74,
            .mss = mss, .popts = E1000_TXD_POPTS_TXSM });
        for (unsigned i = 0; i < nseg; i++) {
            size_t seg = MIN(mss, plen - i * mss);
            QE1000RxInfo info;

            ck_assert_uint_eq(rx_one(b, got, &info), 74 + seg);
            ck_assert_uint_eq(rd16(got + 18), 20 + seg);
            ck_assert_uint_eq(rd32(got + 58), 9000 + i * mss);
            ck_assert_uint_ne(info.status & E1000_RXD_STAT_TCPCS, 0);
            ck_assert_uint_eq(info.errors, 0);
            ck_assert_uint_eq(csum_fold(csum_add(pseudo + 20 + seg,
                                                 got + 54, 20 + seg)),
                              0xffff);
            assert_bytes(got + 74, payload + i * mss, seg, "v6 payload");
        }
    }
    rx_none(b);
}
END_TEST

/* ---- sizes, buffers, missed frames ---- */

START_TEST(test_long_frames)
{
    static uint8_t f[FRAME_MAX];
    Nic *a = &nics[0], *b = &nics[1];
    uint32_t rctl = b->e->rctl;
    QE1000RxInfo info;
    size_t len;

    clear_stats(b);
    /* Without LPE: 1518 bytes (1522 with CRC) at most. */
    len = raw_frame(f, mac1, mac0, 1519, 1);
    qe1000_tx(a->e, f, len, NULL);
    send_marker_and_expect(a, b, mac1);
    ck_assert_uint_eq(stat(b, E1000_ROC), 1);

    /* LPE with 1024-byte buffers: two descriptors. */
    qe1000_writel(b->e, E1000_RCTL, rctl | E1000_RCTL_LPE |
                  (1 << E1000_RCTL_BSIZE_SHIFT));
    len = raw_frame(f, mac1, mac0, 2000, 2);
    qe1000_tx(a->e, f, len, NULL);
    rx_expect(b, f, len, &info);
    ck_assert_uint_eq(info.ndesc, 2);

    /* BSEX: 4096-byte buffers; a 9000-byte jumbo frame. */
    qe1000_writel(b->e, E1000_RCTL, rctl | E1000_RCTL_LPE |
                  E1000_RCTL_BSEX | (3 << E1000_RCTL_BSIZE_SHIFT));
    len = raw_frame(f, mac1, mac0, 9000, 3);
    qe1000_tx(a->e, f, len, NULL);
    rx_expect(b, f, len, &info);
    ck_assert_uint_eq(info.ndesc, 3);

    /* 256-byte buffers, CRC split over two descriptors (1022 + 4). */
    qe1000_writel(b->e, E1000_RCTL, rctl | E1000_RCTL_LPE |
                  (3 << E1000_RCTL_BSIZE_SHIFT));
    len = raw_frame(f, mac1, mac0, 1022, 4);
    qe1000_tx(a->e, f, len, NULL);
    rx_expect(b, f, len, &info);
    ck_assert_uint_eq(info.ndesc, 5);

    /* SECRC: no CRC in host memory. */
    qe1000_writel(b->e, E1000_RCTL, rctl | E1000_RCTL_SECRC);
    len = raw_frame(f, mac1, mac0, 1514, 5);
    qe1000_tx(a->e, f, len, NULL);
    rx_expect(b, f, len, &info);
    ck_assert(!info.has_crc);
    ck_assert_uint_eq(info.wire_len, len);

    /* The largest frame LPE allows, and one byte more. */
    qe1000_writel(b->e, E1000_RCTL, rctl | E1000_RCTL_LPE |
                  E1000_RCTL_BSEX | (1 << E1000_RCTL_BSIZE_SHIFT));
    len = raw_frame(f, mac1, mac0, E1000_MAX_FRAME_LPE - 4, 6);
    qe1000_tx(a->e, f, len, NULL);
    rx_expect(b, f, len, &info);
    ck_assert_uint_eq(info.ndesc, 1);
    len = raw_frame(f, mac1, mac0, E1000_MAX_FRAME_LPE - 3, 7);
    qe1000_tx(a->e, f, len, NULL);
    send_marker_and_expect(a, b, mac1);
    ck_assert_uint_eq(stat(b, E1000_ROC), 1);
    ck_assert_uint_eq(stat(b, E1000_MPC), 0);
}
END_TEST

START_TEST(test_rx_missed)
{
    static uint8_t f[FRAME_MAX];
    Nic *a = &nics[0], *b = &nics[1];
    QE1000 *eb = b->e;
    size_t len;

    /* No descriptors: frames wait (RNBC counts), nothing is missed. */
    clear_stats(b);
    qe1000_writel(eb, E1000_RDT, qe1000_readl(eb, E1000_RDH));
    for (unsigned i = 0; i < 5; i++) {
        len = raw_frame(f, mac1, mac0, 100 + i, 40 + i);
        qe1000_tx(a->e, f, len, NULL);
    }
    qe1000_tx_wait(a->e);
    rx_none(b);
    ck_assert_uint_ne(stat(b, E1000_RNBC), 0);
    qe1000_writel(eb, E1000_RDT, (eb->rx_next + eb->rx_n - 1) % eb->rx_n);
    for (unsigned i = 0; i < 5; i++) {
        len = raw_frame(f, mac1, mac0, 100 + i, 40 + i);
        rx_expect(b, f, len, NULL);
    }
    ck_assert_uint_eq(stat(b, E1000_MPC), 0);
    ck_assert_uint_eq(stat(b, E1000_GPRC), 5);

    /* A frame larger than the whole ring can hold: missed (MPC, RXO). */
    qe1000_readl(eb, E1000_ICR);
    qe1000_writel(eb, E1000_RCTL, eb->rctl | E1000_RCTL_LPE |
                  (3 << E1000_RCTL_BSIZE_SHIFT));
    len = raw_frame(f, mac1, mac0, (eb->rx_n - 1) * 256, 9);
    qe1000_tx(a->e, f, len, NULL);
    send_marker_and_expect(a, b, mac1);
    ck_assert_uint_eq(stat(b, E1000_MPC), 1);
    ck_assert_uint_ne(qe1000_readl(eb, E1000_ICR) & E1000_ICR_RXO, 0);
}
END_TEST

/* ---- statistics ---- */

START_TEST(test_stats)
{
    static uint8_t f[FRAME_MAX];
    static const uint8_t mc[6] = { 0x01, 0x00, 0x5e, 0x00, 0x00, 0x01 };
    Nic *a = &nics[0], *b = &nics[1];
    static const struct {
        const uint8_t *dst;
        size_t len;
    } frames[] = {
        { mac1, 60 }, { mac1, 100 }, { mac1, 1514 }, { bcast, 70 },
        { mc, 200 }, { mac1, 600 }, { mac1, 1100 },
    };
    uint64_t octets = 0;

    qe1000_writel(b->e, E1000_RCTL, b->e->rctl | E1000_RCTL_MPE);
    clear_stats(a);
    clear_stats(b);
    for (unsigned i = 0; i < ARRAY_SIZE(frames); i++) {
        size_t len = raw_frame(f, frames[i].dst, mac0, frames[i].len, i);

        qe1000_tx(a->e, f, len, NULL);
        rx_expect(b, f, len, NULL);
        octets += len + 4;
    }
    /* Transmit side. */
    ck_assert_uint_eq(stat(a, E1000_GPTC), ARRAY_SIZE(frames));
    ck_assert_uint_eq(stat(a, E1000_TPT), ARRAY_SIZE(frames));
    ck_assert_uint_eq(stat(a, E1000_GOTCL), octets);
    ck_assert_uint_eq(stat(a, E1000_GOTCH), 0);
    ck_assert_uint_eq(stat(a, E1000_TOTL), octets);
    ck_assert_uint_eq(stat(a, E1000_BPTC), 1);
    ck_assert_uint_eq(stat(a, E1000_MPTC), 1);
    ck_assert_uint_eq(stat(a, E1000_PTC64), 1);
    ck_assert_uint_eq(stat(a, E1000_PTC127), 2);
    ck_assert_uint_eq(stat(a, E1000_PTC255), 1);
    ck_assert_uint_eq(stat(a, E1000_PTC511), 0);
    ck_assert_uint_eq(stat(a, E1000_PTC1023), 1);
    ck_assert_uint_eq(stat(a, E1000_PTC1522), 2);
    /* Receive side. */
    ck_assert_uint_eq(stat(b, E1000_GPRC), ARRAY_SIZE(frames));
    ck_assert_uint_eq(stat(b, E1000_TPR), ARRAY_SIZE(frames));
    ck_assert_uint_eq(stat(b, E1000_GORCL), octets);
    ck_assert_uint_eq(stat(b, E1000_GORCH), 0);
    ck_assert_uint_eq(stat(b, E1000_TORL), octets);
    ck_assert_uint_eq(stat(b, E1000_BPRC), 1);
    ck_assert_uint_eq(stat(b, E1000_MPRC), 1);
    ck_assert_uint_eq(stat(b, E1000_PRC64), 1);
    ck_assert_uint_eq(stat(b, E1000_PRC127), 2);
    ck_assert_uint_eq(stat(b, E1000_PRC255), 1);
    ck_assert_uint_eq(stat(b, E1000_PRC1023), 1);
    ck_assert_uint_eq(stat(b, E1000_PRC1522), 2);
    /*
     * What query-stats says of the same traffic: a descriptor per frame
     * on e0's transmit ring (queue 1) and e1's receive ring (queue 0).
     */
    ck_assert_int_eq(qmp_stat(qmp, "e0", -1, "net", "tx-frames"),
                     ARRAY_SIZE(frames));
    ck_assert_int_eq(qmp_stat(qmp, "e0", -1, "net", "tx-bytes"),
                     octets - 4 * ARRAY_SIZE(frames));
    ck_assert_int_eq(qmp_stat(qmp, "e1", -1, "net", "rx-frames"),
                     ARRAY_SIZE(frames));
    ck_assert_int_eq(qmp_stat(qmp, "e0", 1, "e1000", "requests"),
                     ARRAY_SIZE(frames));
    ck_assert_int_eq(qmp_stat(qmp, "e1", 0, "e1000", "requests"),
                     ARRAY_SIZE(frames));
    ck_assert_int_eq(qmp_stat(qmp, "e1", 1, "e1000", "requests"), 0);
    ck_assert_int_ge(qmp_stat(qmp, "e1", -1, "e1000", "interrupts"), 1);
    /* Every statistics register clears when read. */
    for (uint32_t r = E1000_STATS_FIRST; r <= E1000_STATS_LAST; r += 4) {
        ck_assert_msg(stat(a, r) == 0 && stat(b, r) == 0,
                      "statistics register 0x%x did not clear", r);
    }
    /* A filtered frame counts in TPR only. */
    raw_frame(f, mc, mac0, 100, 1);
    qe1000_writel(b->e, E1000_RCTL, b->e->rctl & ~E1000_RCTL_MPE);
    qe1000_tx(a->e, f, 100, NULL);
    send_marker_and_expect(a, b, mac1);
    ck_assert_uint_eq(stat(b, E1000_TPR), 2);
    ck_assert_uint_eq(stat(b, E1000_GPRC), 1);
}
END_TEST

/* ---- interrupt delays ---- */

static uint32_t ics(Nic *n)
{
    return qe1000_readl(n->e, E1000_ICS);   /* ICR without clearing it */
}

/* Wait until a cause shows in ICR; returns the milliseconds it took. */
static int64_t wait_cause(Nic *n, uint32_t cause, int timeout_ms)
{
    int64_t start = qos_now_ms(), deadline = qos_deadline(timeout_ms);

    while (!(ics(n) & cause)) {
        ck_assert_msg(qos_remaining_ms(deadline) > 0, "cause 0x%x not set "
                      "within %d ms (ICR 0x%x)", cause, timeout_ms, ics(n));
        qe1000_sleep(n->e, 1);
    }
    return qos_now_ms() - start;
}

START_TEST(test_irq_delays)
{
    static uint8_t f[FRAME_MAX], got[FRAME_MAX];
    Nic *a = &nics[0], *b = &nics[1];
    size_t len = raw_frame(f, mac1, mac0, 100, 1);
    int64_t t0, took;

    /* RDTR (67 ms) holds RXT0 back; writing FPD fires it at once. */
    qe1000_writel(b->e, E1000_RDTR, 0xffff);
    qe1000_readl(b->e, E1000_ICR);
    qe1000_tx(a->e, f, len, NULL);
    rx_one(b, got, NULL);
    ck_assert_uint_eq(ics(b) & E1000_ICR_RXT0, 0);
    qe1000_writel(b->e, E1000_RDTR, 0xffff | E1000_RDTR_FPD);
    ck_assert_uint_ne(ics(b) & E1000_ICR_RXT0, 0);
    ck_assert_uint_eq(qe1000_readl(b->e, E1000_RDTR), 0xffff);

    /* RADV (10 ms) caps the delay. */
    qe1000_writel(b->e, E1000_RADV, 10000);
    qe1000_readl(b->e, E1000_ICR);
    t0 = qos_now_ms();
    qe1000_tx(a->e, f, len, NULL);
    rx_one(b, got, NULL);
    wait_cause(b, E1000_ICR_RXT0, 1000);
    took = qos_now_ms() - t0;
    ck_assert_msg(took < 60, "RXT0 after %" PRId64 " ms, RADV is 10 ms",
                  took);

    /* Transmit: IDE descriptors wait for TIDV (67 ms) ... */
    qe1000_writel(a->e, E1000_TIDV, 0xffff);
    qe1000_readl(a->e, E1000_ICR);
    qe1000_tx(a->e, f, len, &(QE1000TxOpts){ .ide = true });
    qe1000_tx_wait(a->e);
    ck_assert_uint_eq(ics(a) & E1000_ICR_TXDW, 0);
    wait_cause(a, E1000_ICR_TXDW, 1000);
    rx_one(b, got, NULL);
    /* ... or TADV (5 ms) ... */
    qe1000_writel(a->e, E1000_TADV, 5000);
    qe1000_readl(a->e, E1000_ICR);
    t0 = qos_now_ms();
    qe1000_tx(a->e, f, len, &(QE1000TxOpts){ .ide = true });
    wait_cause(a, E1000_ICR_TXDW, 1000);
    took = qos_now_ms() - t0;
    ck_assert_msg(took < 60, "TXDW after %" PRId64 " ms, TADV is 5 ms",
                  took);
    rx_one(b, got, NULL);
    /* ... descriptors without IDE report at once; TXQE too. */
    qe1000_readl(a->e, E1000_ICR);
    qe1000_tx(a->e, f, len, NULL);
    qe1000_tx_wait(a->e);
    ck_assert_uint_eq(ics(a) & (E1000_ICR_TXDW | E1000_ICR_TXQE),
                      E1000_ICR_TXDW | E1000_ICR_TXQE);
    rx_one(b, got, NULL);
}
END_TEST

/* ---- link ---- */

START_TEST(test_set_link)
{
    Nic *a = &nics[0], *b = &nics[1];
    static uint8_t f[FRAME_MAX];
    size_t len = raw_frame(f, mac1, mac0, 100, 1);

    qe1000_readl(a->e, E1000_ICR);
    qpci_intx_enable(a->pdev);

    json_object_put(qmp_ok(qmp, "set_link", "{'name': 'e0', 'up': false}"));
    ck_assert(qe1000_wait_link(a->e, false, QOS_TIMEOUT_MS));
    qpci_intx_wait(a->pdev);
    ck_assert_uint_ne(qe1000_readl(a->e, E1000_ICR) & E1000_ICR_LSC, 0);
    qpci_intx_unmask(a->pdev);
    ck_assert_uint_eq(qe1000_phy_read(a->e, E1000_PHY_STATUS) &
                      E1000_PHY_STATUS_LINK, 0);
    /* Nothing gets through a pulled cable. */
    qe1000_tx(a->e, f, len, NULL);
    qe1000_tx_wait(a->e);
    rx_none(b);

    json_object_put(qmp_ok(qmp, "set_link", "{'name': 'e0', 'up': true}"));
    ck_assert(qe1000_wait_link(a->e, true, QOS_TIMEOUT_MS));
    qpci_intx_wait(a->pdev);
    ck_assert_uint_ne(qe1000_readl(a->e, E1000_ICR) & E1000_ICR_LSC, 0);
    qpci_intx_unmask(a->pdev);
    ck_assert_uint_ne(qe1000_phy_read(a->e, E1000_PHY_STATUS) &
                      E1000_PHY_STATUS_AN_DONE, 0);
    send_marker_and_expect(a, b, mac1);

    /* The backend's link is the NIC's too. */
    json_object_put(qmp_ok(qmp, "set_link", "{'name': 's1', 'up': false}"));
    ck_assert(qe1000_wait_link(b->e, false, QOS_TIMEOUT_MS));
    json_object_put(qmp_ok(qmp, "set_link", "{'name': 's1', 'up': true}"));
    ck_assert(qe1000_wait_link(b->e, true, QOS_TIMEOUT_MS));
    send_marker_and_expect(a, b, mac1);
    send_marker_and_expect(b, a, mac0);
}
END_TEST

START_TEST(test_query_rx_filter)
{
    QE1000 *e = nics[1].e;
    json_object *r, *info;

    r = qmp_ok(qmp, "query-rx-filter", "{'name': 'e1'}");
    ck_assert_int_eq(json_object_array_length(r), 1);
    info = json_object_array_get_idx(r, 0);
    ck_assert_str_eq(qmp_get_str(info, "name"), "e1");
    ck_assert_str_eq(qmp_get_str(info, "main-mac"), MAC1_STR);
    ck_assert(!qmp_get_bool(info, "promiscuous"));
    ck_assert(qmp_get_bool(info, "broadcast-allowed"));
    ck_assert_str_eq(qmp_get_str(info, "unicast"), "normal");
    ck_assert_str_eq(qmp_get_str(info, "multicast"), "none");
    json_object_put(r);

    qe1000_writel(e, E1000_RCTL, e->rctl | E1000_RCTL_UPE |
                  E1000_RCTL_MPE | E1000_RCTL_VFE);
    qe1000_writel(e, E1000_VFTA, 1u << 3);
    qe1000_writel(e, E1000_RAL(1), 0x44332211);
    qe1000_writel(e, E1000_RAH(1), 0x6655 | E1000_RAH_AV);
    json_object_put(qmp_client_wait_event(qmp, "NIC_RX_FILTER_CHANGED", 0));
    r = qmp_ok(qmp, "query-rx-filter", "{'name': 'e1'}");
    info = json_object_array_get_idx(r, 0);
    ck_assert(qmp_get_bool(info, "promiscuous"));
    ck_assert_str_eq(qmp_get_str(info, "unicast"), "all");
    ck_assert_str_eq(qmp_get_str(info, "multicast"), "all");
    ck_assert_str_eq(qmp_get_str(info, "vlan"), "normal");
    ck_assert_int_eq(json_object_get_int(json_object_array_get_idx(
                         qmp_get(info, "vlan-table"), 0)), 3);
    ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(
                         qmp_get(info, "unicast-table"), 0)),
                     "11:22:33:44:55:66");
    json_object_put(r);
}
END_TEST

/* MAC loopback (RCTL.LBM) and PHY loopback: what is sent comes back. */
START_TEST(test_loopback)
{
    static uint8_t f[FRAME_MAX];
    Nic *n = &nics[0];
    QE1000 *e = n->e;
    uint32_t rctl = e->rctl;
    uint16_t phy_ctrl = qe1000_phy_read(e, E1000_PHY_CTRL);
    size_t len = raw_frame(f, mac0, mac0, 700, 8);

    qe1000_writel(e, E1000_RCTL, rctl | E1000_RCTL_LBM_MAC);
    qe1000_tx(e, f, len, NULL);
    rx_expect(n, f, len, NULL);
    qe1000_writel(e, E1000_RCTL, rctl);
    qe1000_phy_write(e, E1000_PHY_CTRL, phy_ctrl | E1000_PHY_CTRL_LOOPBACK);
    qe1000_tx(e, f, len, &(QE1000TxOpts){ .split = 128 });
    rx_expect(n, f, len, NULL);
    /* Off again: the frame leaves (there is no backend), nothing returns. */
    qe1000_phy_write(e, E1000_PHY_CTRL, phy_ctrl);
    qe1000_tx(e, f, len, NULL);
    qe1000_tx_wait(e);
    rx_none(n);
}
END_TEST

/*
 * Guest memory without a shared fd (the DMA_READ/DMA_WRITE path): frames
 * looped back through the MAC, plain, offloaded and segmented.
 */
START_TEST(test_dma_messages)
{
    static uint8_t f[FRAME_MAX], payload[8000];
    Nic *n = &nics[0];
    QE1000 *e = n->e;
    QE1000TxOpts o = tso4_opts;
    size_t len;

    qe1000_writel(e, E1000_RCTL, e->rctl | E1000_RCTL_LBM_MAC);
    for (size_t size = 60; size <= 1514; size += 363) {
        len = raw_frame(f, mac0, mac0, size, size);
        qe1000_tx(e, f, len, NULL);
        rx_expect(n, f, len, NULL);
    }
    fill_pattern(payload, sizeof(payload), 4);
    o.mss = 1448;
    len = tcp4_frame(f, mac0, mac0, 5000, NET_TCP_ACK, payload, 5000);
    wr16(f + NET_IP_OFF + 2, 0);
    wr16(f + NET_IP_OFF + 4, 0x1000);
    wr16(f + NET_IP_OFF + 10, 0);
    net_l4_csum_seed(f, false);
    qe1000_tx(e, f, len, &o);
    for (unsigned i = 0; i < 4; i++) {
        static uint8_t got[FRAME_MAX];
        size_t seg = MIN(1448, 5000 - i * 1448);
        QE1000RxInfo info;

        ck_assert_uint_eq(rx_one(n, got, &info), 54 + seg);
        ck_assert(net_ip4_csum_ok(got));
        ck_assert(net_l4_csum_ok(got, 54 + seg));
        ck_assert_uint_eq(info.errors, 0);
        assert_bytes(got + 54, payload + i * 1448, seg, "segment");
    }
    ck_assert_uint_ne(vfu_client_stats(n->c)->dma_reads, 0);
    ck_assert_uint_ne(vfu_client_stats(n->c)->dma_writes, 0);
    vfu_client_assert_clean(n->c);
}
END_TEST

/* ---- guest mistakes: dropped, counted, the daemon keeps serving ---- */

#define BAD_ADDR    0xdead0000000ULL     /* far outside guest memory */

static void legacy_desc(uint8_t *d, uint64_t addr, uint16_t len,
                        uint8_t cmd)
{
    memset(d, 0, E1000_TXD_SIZE);
    stq_le_p(d + E1000_TXD_ADDR, addr);
    stw_le_p(d + E1000_TXD_LENGTH, len);
    d[E1000_TXD_CMD] = cmd;
}

static void data_desc(uint8_t *d, uint64_t addr, uint32_t len, uint8_t cmd,
                      uint8_t popts)
{
    memset(d, 0, E1000_TXD_SIZE);
    stq_le_p(d + E1000_TXD_ADDR, addr);
    stl_le_p(d + E1000_TXD_LENGTH, (len & E1000_TXD_LEN_MASK) |
             (E1000_TXD_DTYP_DATA << E1000_TXD_DTYP_SHIFT) |
             ((uint32_t)(cmd | E1000_TXD_CMD_DEXT) << 24));
    d[E1000_DATD_POPTS] = popts;
}

static void tso_ctx_desc(uint8_t *d, uint8_t hdr_len, uint16_t mss,
                         uint32_t paylen)
{
    memset(d, 0, E1000_TXD_SIZE);
    d[E1000_CTXD_IPCSS] = NET_IP_OFF;
    d[E1000_CTXD_IPCSO] = NET_IP_OFF + 10;
    stw_le_p(d + E1000_CTXD_IPCSE, NET_L4_OFF - 1);
    d[E1000_CTXD_TUCSS] = NET_L4_OFF;
    d[E1000_CTXD_TUCSO] = NET_L4_OFF + 16;
    stl_le_p(d + E1000_CTXD_CMDLEN, paylen |
             ((uint32_t)(E1000_TUCMD_TCP | E1000_TUCMD_IP | E1000_TUCMD_TSE |
                         E1000_TXD_CMD_DEXT) << 24));
    d[E1000_CTXD_HDRLEN] = hdr_len;
    stw_le_p(d + E1000_CTXD_MSS, mss);
}

START_TEST(test_bad_tx)
{
    static uint8_t f[FRAME_MAX], payload[500];
    Nic *a = &nics[0], *b = &nics[1];
    QE1000 *e = a->e;
    uint8_t d[2][E1000_TXD_SIZE];
    unsigned slot;
    uint64_t buf;
    size_t len;

    clear_stats(a);
    /* A buffer outside guest memory: dropped, TU reported. */
    slot = e->tx_tail;
    legacy_desc(d[0], BAD_ADDR, 100, E1000_TXD_CMD_EOP | E1000_TXD_CMD_RS);
    qe1000_tx_raw(e, d, 1);
    qe1000_tx_wait(e);
    ck_assert_uint_eq(qe1000_tx_status(e, slot),
                      E1000_TXD_STAT_DD | E1000_TXD_STAT_TU);
    send_marker_and_expect(a, b, mac1);
    ck_assert_uint_eq(stat(a, E1000_GPTC), 1);

    /* A buffer that starts inside guest memory and runs off its end. */
    legacy_desc(d[0], GUEST_MEM_DEFAULT_BASE + GUEST_MEM_DEFAULT_SIZE - 50,
                100, E1000_TXD_CMD_EOP | E1000_TXD_CMD_RS);
    qe1000_tx_raw(e, d, 1);
    send_marker_and_expect(a, b, mac1);

    /* An absurd length (1 MiB in one data descriptor). */
    data_desc(d[0], guest_mem_base(a->gm), E1000_TXD_LEN_MASK,
              E1000_TXD_CMD_EOP | E1000_TXD_CMD_RS, 0);
    qe1000_tx_raw(e, d, 1);
    send_marker_and_expect(a, b, mac1);

    /* A packet that never ends: more than 64 KiB without EOP. */
    for (unsigned i = 0; i < 20; i++) {
        data_desc(d[0], guest_mem_base(a->gm), 4096, 0, 0);
        qe1000_tx_raw(e, d, 1);
    }
    data_desc(d[0], guest_mem_base(a->gm), 4096, E1000_TXD_CMD_EOP, 0);
    qe1000_tx_raw(e, d, 1);
    send_marker_and_expect(a, b, mac1);

    /* TSO contexts: MSS 0, a header longer than the packet. */
    fill_pattern(payload, sizeof(payload), 3);
    len = tcp4_frame(f, mac1, mac0, 1, NET_TCP_ACK, payload, sizeof(payload));
    buf = qe1000_tx_slot_buf(e, e->tx_tail + 1);
    guest_memwrite(a->gm, buf, f, len);
    tso_ctx_desc(d[0], 54, 0, len - 54);
    data_desc(d[1], buf, len, E1000_TXD_CMD_EOP | E1000_TXD_CMD_TSE |
              E1000_TXD_CMD_RS, E1000_TXD_POPTS_TXSM);
    qe1000_tx_raw(e, d, 2);
    send_marker_and_expect(a, b, mac1);
    buf = qe1000_tx_slot_buf(e, e->tx_tail + 1);
    guest_memwrite(a->gm, buf, f, 30);
    tso_ctx_desc(d[0], 54, 100, 100);
    data_desc(d[1], buf, 30, E1000_TXD_CMD_EOP | E1000_TXD_CMD_TSE, 0);
    qe1000_tx_raw(e, d, 2);
    /* Offsets beyond the header (tucss past hdr_len). */
    buf = qe1000_tx_slot_buf(e, e->tx_tail + 1);
    guest_memwrite(a->gm, buf, f, len);
    tso_ctx_desc(d[0], 40, 100, len - 40);
    data_desc(d[1], buf, len, E1000_TXD_CMD_EOP | E1000_TXD_CMD_TSE, 0);
    qe1000_tx_raw(e, d, 2);
    send_marker_and_expect(a, b, mac1);
    ck_assert_uint_eq(stat(a, E1000_TSCTFC), 3);

    /* A descriptor of an unknown type is skipped. */
    data_desc(d[0], buf, 100, E1000_TXD_CMD_EOP, 0);
    d[0][E1000_TXD_LENGTH + 2] |= 0xf0;
    qe1000_tx_raw(e, d, 1);
    send_marker_and_expect(a, b, mac1);

    /* TDT beyond the ring: ignored until it makes sense again. */
    qe1000_writel(e, E1000_TDT, 5000);
    qe1000_sleep(e, 10);
    ck_assert_uint_eq(qe1000_readl(e, E1000_TDH), e->tx_tail);
    qe1000_writel(e, E1000_TDT, e->tx_tail);
    send_marker_and_expect(a, b, mac1);

    /* A ring outside guest memory: nothing sent, TDH stays. */
    qe1000_writel(e, E1000_TDBAH, 0x77);
    qe1000_writel(e, E1000_TDT, (e->tx_tail + 1) % e->tx_n);
    qe1000_sleep(e, 10);
    ck_assert_uint_eq(qe1000_readl(e, E1000_TDH), e->tx_tail);
    rx_none(b);
    qe1000_writel(e, E1000_TDT, e->tx_tail);
    qe1000_writel(e, E1000_TDBAH, e->tx_ring >> 32);
    send_marker_and_expect(a, b, mac1);
    ck_assert_uint_eq(stat(a, E1000_GPTC), 8);

    iovd_proc_assert_alive(proc);
}
END_TEST

START_TEST(test_bad_rx)
{
    static uint8_t f[FRAME_MAX], got[FRAME_MAX];
    Nic *a = &nics[0], *b = &nics[1];
    QE1000 *e = b->e;
    uint64_t desc = qe1000_rx_desc(e, e->rx_next);
    uint64_t good = guest_readq(b->gm, desc);
    size_t len = raw_frame(f, mac1, mac0, 500, 1);
    QE1000RxInfo info;

    clear_stats(b);
    /* A receive buffer outside guest memory: RXE, RXERRC. */
    guest_writeq(b->gm, desc, BAD_ADDR);
    qe1000_tx(a->e, f, len, NULL);
    ck_assert_int_ge(rx(b, got, &info, QOS_TIMEOUT_MS), 0);
    ck_assert_uint_ne(info.errors & E1000_RXD_ERR_RXE, 0);
    guest_writeq(b->gm, desc, good);
    send_marker_and_expect(a, b, mac1);
    ck_assert_uint_eq(stat(b, E1000_RXERRC), 1);
    ck_assert_uint_eq(stat(b, E1000_GPRC), 1);

    /* RDT beyond the ring: frames are missed, not queued forever. */
    qe1000_writel(e, E1000_RDT, 5000);
    qe1000_tx(a->e, f, len, NULL);
    qe1000_tx_wait(a->e);
    rx_none(b);
    qe1000_writel(e, E1000_RDT, (e->rx_next + e->rx_n - 1) % e->rx_n);
    send_marker_and_expect(a, b, mac1);
    ck_assert_uint_eq(stat(b, E1000_MPC), 1);

    /* The ring itself outside guest memory. */
    qe1000_writel(e, E1000_RDBAH, 0x77);
    qe1000_tx(a->e, f, len, NULL);
    qe1000_tx_wait(a->e);
    qe1000_sleep(e, 20);
    qe1000_writel(e, E1000_RDBAH, e->rx_ring >> 32);
    send_marker_and_expect(a, b, mac1);
    ck_assert_uint_eq(stat(b, E1000_MPC), 1);

    /* Bus mastering off: the frame cannot be stored. */
    qpci_config_writew(b->pdev, PCI_COMMAND, PCI_COMMAND_MEMORY |
                       PCI_COMMAND_IO);
    qe1000_tx(a->e, f, len, NULL);
    qe1000_tx_wait(a->e);
    qe1000_sleep(e, 20);
    qpci_config_writew(b->pdev, PCI_COMMAND, PCI_COMMAND_MEMORY |
                       PCI_COMMAND_IO | PCI_COMMAND_MASTER);
    send_marker_and_expect(a, b, mac1);
    ck_assert_uint_eq(stat(b, E1000_MPC), 1);

    iovd_proc_assert_alive(proc);
}
END_TEST

/* Register abuse: every offset of both BARs, any size. */
START_TEST(test_bad_registers)
{
    Nic *n = &nics[0];
    uint8_t buf[8];

    for (uint32_t off = 0; off < E1000_MMIO_SIZE; off += 0x44) {
        qpci_bar_read(n->pdev, E1000_BAR_MMIO, off & ~7u, buf, 8);
        qpci_bar_read(n->pdev, E1000_BAR_MMIO, off, buf, 1);
        qpci_bar_read(n->pdev, E1000_BAR_MMIO, off & ~1u, buf, 2);
    }
    for (uint32_t off = 0; off < E1000_IO_SIZE; off++) {
        qpci_bar_read(n->pdev, E1000_BAR_IO, off, buf, 1);
    }
    /* Byte writes merge into the register. */
    qe1000_writel(n->e, E1000_FCTTV, 0x1234);
    qpci_bar_writeb(n->pdev, E1000_BAR_MMIO, E1000_FCTTV + 1, 0x56);
    ck_assert_uint_eq(qe1000_readl(n->e, E1000_FCTTV), 0x5634);
    qpci_bar_writeq(n->pdev, E1000_BAR_MMIO, E1000_RDBAL,
                    0x0000000100002000ULL);
    ck_assert_uint_eq(qe1000_readl(n->e, E1000_RDBAH), 1);
    ck_assert_uint_eq(qe1000_readl(n->e, E1000_RDBAL), 0x2000);
    iovd_proc_assert_alive(proc);
    qe1000_init(n->e, NULL);
}
END_TEST

/* ---- user networking: DHCP, then TCP through hostfwd ---- */

#define XFER_BYTES      (512 * 1024)
#define TSO_MAX         32768       /* payload of a TSO super-frame */

/* The guest stack's frames, with the offloads as Linux's e1000 uses them. */
static void user_tx(void *opaque, uint8_t *f, size_t len,
                    const NetTxOffload *off)
{
    Nic *n = opaque;
    QE1000TxOpts o;

    if (!off) {
        qe1000_tx(n->e, f, len, NULL);
        return;
    }
    if (off->gso_mss) {
        /* e1000_tso(): no IP length, the pseudo sum without it. */
        o = tso4_opts;
        o.mss = off->gso_mss;
        wr16(f + NET_IP_OFF + 2, 0);
        wr16(f + NET_IP_OFF + 10, 0);
        net_l4_csum_seed(f, false);
    } else {
        /* Both checksums by the device. */
        o = csum4_opts;
        wr16(f + NET_IP_OFF + 10, 0);
    }
    qe1000_tx(n->e, f, len, &o);
}

static ssize_t user_rx(void *opaque, uint8_t *buf, size_t max,
                       NetRxInfo *ni, int timeout_ms)
{
    const uint8_t both = E1000_RXD_STAT_IPCS | E1000_RXD_STAT_TCPCS;
    Nic *n = opaque;
    QE1000RxInfo info;
    ssize_t len = qe1000_rx(n->e, buf, max, &info, timeout_ms);

    ni->csum_ok = (info.status & both) == both && !info.errors;
    ni->hw_status = info.status | info.errors << 8;
    return len;
}

/* The user fixture's NIC under the guest stack; TSO on request. */
static NetIf user_netif(bool tso)
{
    return (NetIf){
        .mac = mac0, .tx = user_tx, .rx = user_rx, .opaque = &nics[0],
        .tx_csum = true, .tso_max = tso ? TSO_MAX : 0, .rx_csum = true,
    };
}

/* A lease from libslirp: its default guest address and gateway. */
static void user_lease(NetIf *nif)
{
    NetDhcpLease lease;

    net_dhcp_lease(nif, &lease);
    ck_assert_uint_eq(lease.ip, NET_SLIRP_GUEST_IP);
    ck_assert_uint_eq(lease.router, NET_SLIRP_HOST_IP);
}

START_TEST(test_user_dhcp)
{
    NetIf nif = user_netif(false);

    user_lease(&nif);
    ck_assert_uint_eq(nif.ip, NET_SLIRP_GUEST_IP);
    ck_assert_uint_ne(stat(&nics[0], E1000_GPRC), 0);
    ck_assert_uint_ne(stat(&nics[0], E1000_BPTC), 0);
}
END_TEST

static void tcp_transfer(bool tso)
{
    Nic *n = &nics[0];
    NetIf nif = user_netif(tso);
    NetTcp t = { .nif = &nif, .lport = GUEST_TCP_PORT, .win = 65535 };

    user_lease(&nif);
    clear_stats(n);
    t.host_fd = net_host_connect(hostfwd_port);
    net_tcp_accept(&t);
    net_tcp_send_all(&t, XFER_BYTES);
    net_tcp_recv_all(&t, XFER_BYTES);
    if (tso) {
        ck_assert_uint_ne(t.tso_sends, 0);
        ck_assert_uint_ne(stat(n, E1000_TSCTC), 0);
    } else {
        ck_assert_uint_eq(stat(n, E1000_TSCTC), 0);
    }
    ck_assert_uint_ne(t.segs_rx, 0);
    ck_assert_uint_eq(stat(n, E1000_TSCTFC), 0);
    close(t.host_fd);
    net_tcp_poll(&t, 0);
}

START_TEST(test_user_tcp_tso)
{
    tcp_transfer(true);
}
END_TEST

START_TEST(test_user_tcp_no_tso)
{
    tcp_transfer(false);
}
END_TEST

/*
 * A reset while the TX walk waits for its descriptor: a DMA_READ the VMM
 * has not answered yet.  The reset cancels the walk before it applies,
 * so nothing of the walk (TDH) survives it, and the late reply is
 * dropped.  Once by CTRL.RST (posted, as QEMU sends MMIO writes), once
 * by the VMM's DEVICE_RESET.
 */
START_TEST(test_reset_during_dma)
{
    static uint8_t f[FRAME_MAX];
    Nic *n = &nics[0];
    QE1000 *e = n->e;
    size_t len = raw_frame(f, mac0, mac0, 200, 7);

    for (unsigned how = 0; how < 2; how++) {
        uint32_t tdh;

        qe1000_writel(e, E1000_RCTL, e->rctl | E1000_RCTL_LBM_MAC);
        tdh = qe1000_readl(e, E1000_TDH);
        vfu_client_hold_dma(n->c, true);
        qe1000_tx(e, f, len, NULL);
        ck_assert(vfu_client_wait_held_dma(n->c, 1, QOS_TIMEOUT_MS));
        /* Registers are served while the walk is parked. */
        ck_assert_uint_eq(qe1000_readl(e, E1000_TDH), tdh);
        ck_assert_uint_eq(qe1000_readl(e, E1000_TDT), tdh + 1);
        if (how == 0) {
            qe1000_writel_posted(e, E1000_CTRL, qe1000_readl(e, E1000_CTRL) |
                                 E1000_CTRL_RST);
        } else {
            qos_assert_errno(vfu_device_reset(n->c), 0);
            qpci_device_enable(n->pdev);
        }
        ck_assert_uint_eq(qe1000_readl(e, E1000_TDH), 0);
        ck_assert_uint_eq(qe1000_readl(e, E1000_TDT), 0);
        ck_assert_uint_eq(qe1000_readl(e, E1000_TCTL), 0);
        /* The answer comes too late: it changes nothing. */
        vfu_client_hold_dma(n->c, false);
        qe1000_sleep(e, 50);
        ck_assert_uint_eq(qe1000_readl(e, E1000_TDH), 0);
        ck_assert_uint_eq(qe1000_readl(e, E1000_TDT), 0);
        /* The driver brings it up again, and it works. */
        qe1000_init(e, NULL);
        qe1000_writel(e, E1000_RCTL, e->rctl | E1000_RCTL_LBM_MAC);
        qe1000_tx(e, f, len, NULL);
        rx_expect(n, f, len, NULL);
    }
    vfu_client_assert_clean(n->c);
}
END_TEST

/* ---- live migration ---- */

static const uint8_t peer_mac[6] = { 0x52, 0x54, 0x00, 0xaa, 0xbb, 0x99 };
/* A second unicast address (RAL1/RAH1) the destination must still take. */
static const uint8_t alt_mac[6] = { 0x52, 0x54, 0x00, 0xaa, 0xbb, 0x42 };

/* Frame @seq to the guest from the wire, or from the guest to the wire. */
static size_t mig_frame(uint8_t *f, bool to_guest, unsigned seq)
{
    return raw_frame(f, to_guest ? mac0 : peer_mac,
                     to_guest ? peer_mac : mac0, 60 + (seq * 37) % 1400,
                     seq);
}

static void wire_expect(int fd, const uint8_t *want, size_t len)
{
    static uint8_t got[FRAME_MAX];
    ssize_t n = wire_recv(fd, got, sizeof(got), QOS_TIMEOUT_MS);

    ck_assert_msg(n >= 0, "no frame on the wire within %d ms",
                  QOS_TIMEOUT_MS);
    ck_assert_msg(n == (ssize_t)len, "a frame of %zd bytes on the wire, "
                  "expected %zu", n, len);
    assert_bytes(got, want, len, "frame on the wire");
}

/* The guest sends frames [first, first + n); each comes out of @fd. */
static void mig_tx(Nic *nic, int fd, unsigned first, unsigned n)
{
    static uint8_t f[FRAME_MAX];

    for (unsigned seq = first; seq < first + n; seq++) {
        size_t len = mig_frame(f, false, seq);

        qe1000_tx(nic->e, f, len, NULL);
        wire_expect(fd, f, len);
    }
}

/* Frames [first, first + n) go into @fd; the guest receives each. */
static void mig_rx(Nic *nic, int fd, unsigned first, unsigned n)
{
    static uint8_t f[FRAME_MAX];

    for (unsigned seq = first; seq < first + n; seq++) {
        size_t len = mig_frame(f, true, seq);

        wire_send(fd, f, len);
        rx_expect(nic, f, len, NULL);
    }
}

/* Wait until the device stored @k frames the guest has not taken. */
static void rx_wait_stored(Nic *nic, unsigned k)
{
    QE1000 *e = nic->e;
    uint64_t d = qe1000_rx_desc(e, (e->rx_next + k - 1) % e->rx_n);
    int64_t deadline = qos_deadline(QOS_TIMEOUT_MS);

    while (!(guest_readb(e->gm, d + E1000_RXD_STATUS) & E1000_RXD_STAT_DD)) {
        ck_assert_msg(qos_remaining_ms(deadline), "%u frames not stored "
                      "within %d ms", k, QOS_TIMEOUT_MS);
        qe1000_sleep(e, 1);
    }
}

/* Frames [first, first + n) go into @fd and wait in the ring. */
static void mig_rx_leave(Nic *nic, int fd, unsigned first, unsigned n,
                         unsigned stored)
{
    static uint8_t f[FRAME_MAX];

    for (unsigned seq = first; seq < first + n; seq++) {
        wire_send(fd, f, mig_frame(f, true, seq));
    }
    rx_wait_stored(nic, stored + n);
}

/* The destination: the source's configuration, its own sockets. */
static void start_dst(const char *mac, const char *netdev)
{
    dst_proc = iovd_proc_new();
    if (netdev) {
        add_wire_netdev(dst_proc, netdev);
    }
    add_e1000_to(dst_proc, "e0", mac, netdev);
}

/* ... on the wire too, the source's e0 still connected. */
static void start_dst_wire(void)
{
    start_dst(MAC0_STR, "w0");
    iovd_proc_start(dst_proc);
    wire_fd[1] = wire_accept();
}

/* Registers that traffic does not change: equal after the move. */
static const uint32_t mig_regs[] = {
    E1000_CTRL, E1000_STATUS, E1000_CTRL_EXT, E1000_RCTL, E1000_TCTL,
    E1000_TIPG, E1000_IMS, E1000_ITR, E1000_RDTR, E1000_RADV, E1000_TIDV,
    E1000_TADV, E1000_RXCSUM, E1000_VET, E1000_RDBAL, E1000_RDBAH,
    E1000_RDLEN, E1000_RDT, E1000_TDBAL, E1000_TDBAH, E1000_TDLEN,
    E1000_TDH, E1000_TDT, E1000_RAL(0), E1000_RAH(0), E1000_RAL(1),
    E1000_RAH(1), E1000_MTA + 4 * 5, E1000_VFTA + 4 * 3,
};

/* State besides the ring: filters, delays, PHY, EEPROM. */
static void mig_prepare(QE1000 *e)
{
    uint16_t sum;

    qe1000_writel(e, E1000_RAL(1), ldl_le_p(alt_mac));
    qe1000_writel(e, E1000_RAH(1), lduw_le_p(alt_mac + 4) | E1000_RAH_AV);
    qe1000_writel(e, E1000_MTA + 4 * 5, 0x00100001);
    qe1000_writel(e, E1000_VFTA + 4 * 3, 0x80000008);
    qe1000_writel(e, E1000_ITR, 200);
    qe1000_writel(e, E1000_RADV, 64);
    qe1000_writel(e, E1000_TIDV, 32);
    qe1000_writel(e, E1000_TADV, 16);
    qe1000_phy_write(e, E1000_M88_SPEC_CTRL, 0x0078);
    /* A word of the EEPROM, its checksum kept right for the next driver. */
    sum = qe1000_eerd_read(e, E1000_EEPROM_CHECKSUM) +
          qe1000_eerd_read(e, 0x30) - 0xbeef;
    qe1000_eeprom_write(e, 0x30, 0xbeef);
    qe1000_eeprom_write(e, E1000_EEPROM_CHECKSUM, sum);
}

static void mig_check_state(QE1000 *e, const uint32_t *before)
{
    for (unsigned i = 0; i < ARRAY_SIZE(mig_regs); i++) {
        uint32_t v = qe1000_readl(e, mig_regs[i]);

        ck_assert_msg(v == before[i], "register 0x%05x is 0x%08x after "
                      "the migration, 0x%08x before", mig_regs[i], v,
                      before[i]);
    }
    ck_assert_uint_eq(qe1000_phy_read(e, E1000_M88_SPEC_CTRL), 0x0078);
    ck_assert_uint_ne(qe1000_phy_read(e, E1000_PHY_STATUS) &
                      E1000_PHY_STATUS_LINK, 0);
    ck_assert_uint_eq(qe1000_eerd_read(e, 0x30), 0xbeef);
    for (unsigned i = 0; i < 3; i++) {
        ck_assert_uint_eq(qe1000_eerd_read(e, i), e->eeprom[i]);
    }
}

/*
 * Half a packet: two descriptors without EOP, taken by the device; the
 * third (EOP) comes after the migration, on the destination.
 */
static size_t mig_tx_half(QE1000 *e, uint8_t *f, unsigned *slot)
{
    size_t len = raw_frame(f, peer_mac, mac0, 1000, 77);
    uint8_t d[2][E1000_TXD_SIZE];

    *slot = e->tx_tail;
    for (unsigned i = 0; i < 2; i++) {
        uint64_t buf = qe1000_tx_slot_buf(e, (*slot + i) % e->tx_n);

        guest_memwrite(e->gm, buf, f + 400 * i, 400);
        legacy_desc(d[i], buf, 400, E1000_TXD_CMD_IFCS);
    }
    qe1000_tx_raw(e, d, 2);
    qe1000_tx_wait(e);
    return len;
}

static void mig_tx_rest(QE1000 *e, const uint8_t *f, unsigned slot)
{
    unsigned last = (slot + 2) % e->tx_n;
    uint64_t buf = qe1000_tx_slot_buf(e, last);
    uint8_t d[1][E1000_TXD_SIZE];

    guest_memwrite(e->gm, buf, f + 800, 200);
    legacy_desc(d[0], buf, 200, E1000_TXD_CMD_IFCS | E1000_TXD_CMD_EOP |
                E1000_TXD_CMD_RS);
    qe1000_tx_raw(e, d, 1);
    qe1000_tx_wait(e);
    ck_assert_uint_ne(qe1000_tx_status(e, last) & E1000_TXD_STAT_DD, 0);
}

/*
 * Every frame the source stored and the guest had not taken, in order:
 * 100-104 before the migration, 200-204 during it (mig_during).
 */
static void mig_check_rx_left(Nic *nic)
{
    static uint8_t f[FRAME_MAX];

    for (unsigned seq = 100; seq < 105; seq++) {
        rx_expect(nic, f, mig_frame(f, true, seq), NULL);
    }
    for (unsigned seq = 200; seq < 205; seq++) {
        rx_expect(nic, f, mig_frame(f, true, seq), NULL);
    }
    qe1000_readl(nic->e, E1000_ICR);
    ck_assert(!intx_line(nic));
}

/* In PRE_COPY, the source still running: frames land in the ring. */
static void mig_during(void *opaque)
{
    mig_rx_leave(opaque, wire_fd[0], 200, 5, 5);
}

/* Move nics[0] to the destination daemon's e0; the source goes away. */
static void mig_move(QMigrateStats *st, bool during)
{
    Nic *n = &nics[0];
    g_autofree char *dst = iovd_proc_path(dst_proc, "e0.sock");
    QMigrateOpts opts = { .during = during ? mig_during : NULL,
                          .opaque = n };
    VfuClient *src = n->c;

    n->c = qmig_migrate(n->pdev, n->gm, dst, &opts, st);
    vfu_client_free(src);
}

START_TEST(test_migrate)
{
    static uint8_t half[FRAME_MAX], f[FRAME_MAX];
    Nic *n = &nics[0];
    QE1000 *e = n->e;
    uint32_t before[ARRAY_SIZE(mig_regs)];
    QMigrateStats st;
    unsigned slot, rdh;
    size_t len;

    start_dst_wire();
    mig_prepare(e);
    clear_stats(n);

    /* Traffic both ways on the source. */
    mig_tx(n, wire_fd[0], 0, 20);
    mig_rx(n, wire_fd[0], 1000, 10);
    qe1000_readl(e, E1000_ICR);
    /* Frames the device stored and the guest has not taken yet ... */
    mig_rx_leave(n, wire_fd[0], 100, 5, 0);
    /* ... and a packet half taken from the TX ring. */
    len = mig_tx_half(e, half, &slot);
    for (unsigned i = 0; i < ARRAY_SIZE(mig_regs); i++) {
        before[i] = qe1000_readl(e, mig_regs[i]);
    }
    rdh = (e->rx_next + 10) % e->rx_n;

    mig_move(&st, true);
    ck_assert_uint_ne(st.state_bytes, 0);
    ck_assert_uint_ne(st.device_dirty, 0);

    mig_check_state(e, before);
    ck_assert_uint_eq(qe1000_readl(e, E1000_RDH), rdh);
    /* The causes and the raised line came along; so did the counters. */
    ck_assert_uint_ne(ics(n) & E1000_ICR_RXT0, 0);
    ck_assert(intx_line(n));
    ck_assert_uint_eq(stat(n, E1000_GPTC), 20);
    ck_assert_uint_eq(stat(n, E1000_GPRC), 20);
    mig_check_rx_left(n);

    /* The half packet ends here, whole, out of the destination only. */
    mig_tx_rest(e, half, slot);
    wire_expect(wire_fd[1], half, len);
    ck_assert_int_lt(wire_recv(wire_fd[0], f, sizeof(f), QUIET_MS), 0);

    /* Traffic goes on, through the filters the source had. */
    mig_tx(n, wire_fd[1], 20, 20);
    mig_rx(n, wire_fd[1], 2000, 20);
    len = raw_frame(f, alt_mac, peer_mac, 300, 5);
    wire_send(wire_fd[1], f, len);
    rx_expect(n, f, len, NULL);
    ck_assert_uint_eq(stat(n, E1000_GPTC), 21);
    ck_assert_uint_eq(stat(n, E1000_GPRC), 21);
    iovd_proc_assert_alive(proc);
}
END_TEST

/*
 * Send 1514-byte frames from @seq on until one stays in the ring: the
 * wire is not read, so the source's backend fills up and the device
 * waits for it to drain.  Returns the next sequence number.
 */
static unsigned mig_tx_until_blocked(Nic *nic, unsigned seq)
{
    static uint8_t f[FRAME_MAX];
    QE1000 *e = nic->e;

    for (;; seq++) {
        int64_t deadline = qos_deadline(100);

        ck_assert_msg(seq < 10000, "the wire never filled up");
        qe1000_tx(e, f, raw_frame(f, peer_mac, mac0, 1514, seq), NULL);
        while (qe1000_readl(e, E1000_TDH) != e->tx_tail) {
            if (!qos_remaining_ms(deadline)) {
                return seq + 1;
            }
            qe1000_sleep(e, 1);
        }
    }
}

/*
 * Descriptors queued when the device stopped go out from the destination;
 * the frames the source marked done come out of the source: each frame
 * once, none lost.
 */
START_TEST(test_migrate_tx_queued)
{
    static uint8_t f[FRAME_MAX];
    Nic *n = &nics[0];
    QE1000 *e = n->e;
    unsigned next, seq = 0;
    uint32_t tdh;
    size_t len;

    start_dst_wire();
    next = mig_tx_until_blocked(n, 0);
    for (unsigned i = 0; i < 3; i++, next++) {
        qe1000_tx(e, f, raw_frame(f, peer_mac, mac0, 1514, next), NULL);
    }
    tdh = qe1000_readl(e, E1000_TDH);
    ck_assert_uint_ne(tdh, e->tx_tail);

    mig_move(NULL, false);
    qe1000_tx_wait(e);
    /* What the source took, then what the destination took, in order. */
    for (unsigned w = 0; w < 2; w++) {
        ssize_t got;

        while ((got = wire_recv(wire_fd[w], f, sizeof(f), QUIET_MS)) >= 0) {
            static uint8_t want[FRAME_MAX];

            ck_assert_msg(seq < next, "frame %u came out twice", seq);
            len = raw_frame(want, peer_mac, mac0, 1514, seq++);
            ck_assert_uint_eq(got, len);
            assert_bytes(f, want, len, w ? "destination" : "source");
        }
        ck_assert_msg(!w || seq == next, "%u of %u frames came out", seq,
                      next);
    }
    mig_tx(n, wire_fd[1], 20000, 5);
}
END_TEST

/*
 * The data of field @field of section @sect in a state stream (the
 * layout util/savestate.h describes), to corrupt it.
 */
static uint8_t *state_field(GByteArray *st, const char *sect,
                            const char *field, size_t *len)
{
    uint8_t *p = st->data;
    size_t off = 16;

    while (off + 8 <= st->len && p[off] == 1) {
        unsigned nlen = p[off + 1];
        size_t fo = off + 8 + nlen, end = fo + ldl_le_p(p + off + 4);
        bool match = nlen == strlen(sect) && !memcmp(p + off + 8, sect, nlen);

        while (match && fo + 8 <= end) {
            unsigned fnlen = p[fo];
            uint32_t flen = ldl_le_p(p + fo + 4);

            if (fnlen == strlen(field) &&
                !memcmp(p + fo + 8, field, fnlen)) {
                *len = flen;
                return p + fo + 8 + fnlen;
            }
            fo += 8 + fnlen + flen;
        }
        off = end;
    }
    qos_fail("no field '%s' in section '%s' of the state", field, sect);
    return NULL;
}

/* Load @state into the device behind @c: 0 or the -errno of STOP. */
static int mig_load(VfuClient *c, GByteArray *state)
{
    qos_assert_errno(qmig_set_state(c, QMIG_RESUMING), 0);
    qos_assert_errno(qmig_write_state(c, state->data, state->len, 0), 0);
    return qmig_set_state(c, QMIG_STOP);
}

/* Refused: the device goes to ERROR, and DEVICE_RESET brings it back. */
static void mig_load_refused(Nic *d, GByteArray *state, const char *what)
{
    uint32_t mst;
    int r = mig_load(d->c, state);

    ck_assert_msg(r == -EINVAL, "%s: loading gave %s, expected EINVAL",
                  what, r ? qos_errno_name(-r) : "success");
    qos_assert_errno(qmig_get_state(d->c, &mst), 0);
    ck_assert_uint_eq(mst, QMIG_ERROR);
    qos_assert_errno(vfu_device_reset(d->c), 0);
    qos_assert_errno(qmig_get_state(d->c, &mst), 0);
    ck_assert_uint_eq(mst, QMIG_RUNNING);
}

/* A device fresh from DEVICE_RESET: the driver brings it up, it works. */
static void mig_check_works(Nic *d, unsigned seed)
{
    static uint8_t f[FRAME_MAX];
    size_t len;

    qpci_device_enable(d->pdev);
    qe1000_init(d->e, NULL);
    len = raw_frame(f, d->e->mac, d->e->mac, 500, seed);
    qe1000_writel(d->e, E1000_RCTL, d->e->rctl | E1000_RCTL_LBM_MAC);
    qe1000_tx(d->e, f, len, NULL);
    rx_expect(d, f, len, NULL);
}

/* A copy of @state with @n bytes at @field's offset @off replaced. */
static GByteArray *state_corrupt(GByteArray *state, const char *sect,
                                 const char *field, size_t off,
                                 const void *v, size_t n)
{
    GByteArray *c = g_byte_array_new();
    size_t len;
    uint8_t *p;

    g_byte_array_append(c, state->data, state->len);
    p = state_field(c, sect, field, &len);
    qos_assert(off + n <= len, "field '%s' has %zu bytes", field, len);
    memcpy(p + off, v, n);
    return c;
}

/* Corrupt streams, each refused by the same-configured destination. */
static void mig_refuse_corrupt(Nic *d, GByteArray *state)
{
    static const uint8_t one = 1, bad_addr = E1000_EEPROM_WORDS;
    uint32_t tdh = QE1000_RING_DEFAULT, reg = 0x12345678;
    uint64_t long_ns = 1000ull * 1000 * 1000;
    struct {
        const char *sect, *field;
        size_t off;
        const void *v;
        size_t n;
    } bad[] = {
        { "e1000", "regs", E1000_TDH, &tdh, 4 },
        { "e1000", "regs", 0x1800, &reg, 4 },   /* no such register */
        { "e1000/irq", "rdtr-ns", 0, &long_ns, 8 },
        { "e1000/eeprom", "addr", 0, &bad_addr, 1 },
        { "e1000/tx", "in-packet", 0, &one, 1 },   /* + legacy, tse */
    };

    for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
        g_autoptr(GByteArray) c = state_corrupt(state, bad[i].sect,
                                                bad[i].field, bad[i].off,
                                                bad[i].v, bad[i].n);
        g_autofree char *what = g_strdup_printf("%s '%s'", bad[i].sect,
                                                bad[i].field);

        if (!strcmp(bad[i].sect, "e1000/tx")) {
            /* A legacy packet with TCP segmentation. */
            size_t len;

            *state_field(c, "e1000/tx", "legacy", &len) = 1;
            *state_field(c, "e1000/tx", "tse", &len) = 1;
        }
        mig_load_refused(d, c, what);
    }
}

START_TEST(test_migrate_refused)
{
    g_autoptr(GByteArray) state = g_byte_array_new();
    Nic *n = &nics[0], *d = &nics[1], *other = &nics[2];

    /* The destinations: e0 as the source, e1 with another MAC address. */
    start_dst(MAC0_STR, NULL);
    add_e1000_to(dst_proc, "e1", MAC1_STR, NULL);
    iovd_proc_start(dst_proc);
    nic_open_at(d, dst_proc, "e0.sock", true);
    nic_open_at(other, dst_proc, "e1.sock", true);

    mig_prepare(n->e);
    mig_tx(n, wire_fd[0], 0, 3);
    /* The source's state, as a migration reads it; then it goes on. */
    qos_assert_errno(qmig_set_state(n->c, QMIG_STOP_COPY), 0);
    qos_assert_errno(qmig_read_state(n->c, state), 0);
    qos_assert_errno(qmig_set_state(n->c, QMIG_RUNNING), 0);
    mig_tx(n, wire_fd[0], 3, 3);
    mig_rx(n, wire_fd[0], 10, 3);

    mig_load_refused(other, state, "another MAC address");
    mig_refuse_corrupt(d, state);
    /* The stream itself loads (what failed was the corruption). */
    qos_assert_errno(mig_load(d->c, state), 0);
    qos_assert_errno(vfu_device_reset(d->c), 0);

    mig_check_works(d, 1);
    mig_check_works(other, 2);
    vfu_client_assert_clean(d->c);
    vfu_client_assert_clean(other->c);
}
END_TEST

/* ---- suite ---- */

static Suite *e1000_suite(void)
{
    Suite *s = suite_create("e1000");
    TCase *tc;

    tc = qos_check_tcase(s, "identity", setup_one_raw, teardown, 30);
    tcase_add_test(tc, test_pci_identity);
    tcase_add_test(tc, test_eeprom);

    tc = qos_check_tcase(s, "registers", setup_one, teardown, 30);
    tcase_add_test(tc, test_phy);
    tcase_add_test(tc, test_icr_ics_ims);
    tcase_add_test(tc, test_itr);
    tcase_add_test(tc, test_reset);
    tcase_add_test(tc, test_device_reset);
    tcase_add_test(tc, test_bad_registers);
    tcase_add_test(tc, test_loopback);

    tc = qos_check_tcase(s, "dma-messages", setup_one_nofd, teardown, 30);
    tcase_add_test(tc, test_dma_messages);
    tcase_add_test(tc, test_reset_during_dma);

    tc = qos_check_tcase(s, "traffic", setup_pair, teardown, 60);
    tcase_add_test(tc, test_tx_rx_bytes);
    tcase_add_test(tc, test_rx_filter_unicast);
    tcase_add_test(tc, test_rx_filter_multicast);
    tcase_add_test(tc, test_rx_filter_broadcast);
    tcase_add_test(tc, test_vlan);
    tcase_add_test(tc, test_tx_csum_offload);
    tcase_add_test(tc, test_rx_csum);
    tcase_add_test(tc, test_tso);
    tcase_add_test(tc, test_long_frames);
    tcase_add_test(tc, test_rx_missed);
    tcase_add_test(tc, test_stats);
    tcase_add_test(tc, test_irq_delays);
    tcase_add_test(tc, test_set_link);
    tcase_add_test(tc, test_query_rx_filter);

    tc = qos_check_tcase(s, "abuse", setup_pair, teardown, 60);
    tcase_add_test(tc, test_bad_tx);
    tcase_add_test(tc, test_bad_rx);

    tc = qos_check_tcase(s, "user", setup_user, teardown, 60);
    tcase_add_test(tc, test_user_dhcp);
    tcase_add_test(tc, test_user_tcp_tso);
    tcase_add_test(tc, test_user_tcp_no_tso);

    tc = qos_check_tcase(s, "migration", setup_mig, teardown, 60);
    tcase_add_test(tc, test_migrate);
    tcase_add_test(tc, test_migrate_tx_queued);
    tcase_add_test(tc, test_migrate_refused);
    return s;
}

int main(void)
{
    return qos_check_run(e1000_suite());
}
