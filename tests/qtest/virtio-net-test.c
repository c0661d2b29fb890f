/*
 * virtio-net-pci tests: iovd runs the device(s); the test plays the VMM
 * (vfio-user) and a Linux-style virtio_net driver (libqos/virtio-net.h).
 *
 * Set-ups (a fresh daemon per test, stopped with SIGTERM, exit 0 required):
 * - pair: vn0 and vn1 joined by a -netdev stream pair, so what one sends
 *   the other receives, byte for byte; a QMP monitor;
 * - user: vn0 on -netdev user (libslirp) with a hostfwd rule: DHCP, then
 *   TCP (libqos/netstack.h) moves data to and from a socket of the test;
 * - tap: vn0 on a vnet_hdr tap inside a private network namespace (root
 *   only; otherwise skipped, saying so): offloads end to end with the
 *   host kernel;
 * - migration: vn0 in two daemons, both on a stream whose other end is
 *   the test (the wire), moved from the first to the second
 *   (libqos/migration.h).
 */
#include "util/osdep.h"

#include <check.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>

#include "hw/virtio/virtio-net-spec.h"
#include "tests/qtest/libqos/netstack.h"
#include "tests/qtest/libqos/qos-check.h"
#include "tests/qtest/libqos/iovd-proc.h"
#include "tests/qtest/libqos/vfu-client.h"
#include "tests/qtest/libqos/guest-mem.h"
#include "tests/qtest/libqos/migration.h"
#include "tests/qtest/libqos/pci.h"
#include "tests/qtest/libqos/qmp-client.h"
#include "tests/qtest/libqos/virtio.h"
#include "tests/qtest/libqos/virtio-net.h"

#define MAC0_STR        "52:54:00:aa:bb:01"
#define MAC1_STR        "52:54:00:aa:bb:02"
#define GM_SIZE         (32ULL << 20)
#define FRAME_MAX       (65536 + 256)
#define QUIET_MS        200         /* "nothing more arrives" */
#define ETH_TYPE_TEST   0x88b5      /* IEEE local experimental */
#define MTU_FRAME       1514        /* 1500 + the Ethernet header */

static const uint8_t mac0[6] = { 0x52, 0x54, 0x00, 0xaa, 0xbb, 0x01 };
static const uint8_t mac1[6] = { 0x52, 0x54, 0x00, 0xaa, 0xbb, 0x02 };
static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

typedef struct Nic {
    char *sock;
    VfuClient *c;
    QPCIDevice *pdev;
    GuestMem *gm;
    QVirtioNet *n;
} Nic;

static IovdProc *proc;
static QmpClient *qmp;
static Nic nics[2];

/* Features a Linux guest asks for. */
#define LINUX_FEATURES  QVNET_LINUX_FEATURES
#define NO_MRG          (LINUX_FEATURES & \
                         ~VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF))

/* ---- daemon and devices ---- */

static void daemon_new(void)
{
    qos_check_init();
    proc = iovd_proc_new();
}

static void add_nic(const char *id, const char *mac, const char *netdev,
                    const char *extra)
{
    g_autofree char *sock = g_strdup_printf("%s.sock", id);
    g_autofree char *path = iovd_proc_path(proc, sock);

    iovd_proc_add_args(proc, "-device", NULL);
    iovd_proc_add_argf(proc, "virtio-net-pci,id=%s,mac=%s,socket=%s%s%s%s",
                       id, mac, path, netdev ? ",netdev=" : "",
                       netdev ? netdev : "", extra ? extra : "");
}

static void add_stream_pair(void)
{
    g_autofree char *link = iovd_proc_path(proc, "link.sock");

    iovd_proc_add_args(proc, "-netdev", NULL);
    iovd_proc_add_argf(proc, "stream,id=s0,server=on,addr.type=unix,"
                       "addr.path=%s", link);
    iovd_proc_add_args(proc, "-netdev", NULL);
    iovd_proc_add_argf(proc, "stream,id=s1,server=off,addr.type=unix,"
                       "addr.path=%s,reconnect-ms=20", link);
}

static void daemon_start(void)
{
    g_autofree char *qmp_path = iovd_proc_path(proc, "qmp.sock");

    iovd_proc_add_args(proc, "-qmp", NULL);
    iovd_proc_add_argf(proc, "unix:%s,server=on,wait=off", qmp_path);
    iovd_proc_add_args(proc, "-d", "guest_errors", NULL);
    if (getenv("VIRTIO_NET_TEST_TRACE")) {
        iovd_proc_add_args(proc, "-trace", getenv("VIRTIO_NET_TEST_TRACE"),
                           NULL);
    }
    iovd_proc_start(proc);
    qmp = qmp_client_open(qmp_path);
}

static void nic_open(Nic *n, const char *id, bool share_fd)
{
    g_autofree char *sock = g_strdup_printf("%s.sock", id);

    n->sock = iovd_proc_path(proc, sock);
    n->c = vfu_client_open(n->sock);
    n->pdev = qpci_device_new(n->c);
    n->gm = guest_mem_new(GUEST_MEM_DEFAULT_BASE, GM_SIZE);
    guest_mem_map_checked(n->gm, n->c, share_fd);
    n->n = qvnet_new(n->pdev, n->gm);
}

static void nic_close(Nic *n)
{
    qvnet_free(n->n);
    qpci_device_free(n->pdev);
    vfu_client_free(n->c);
    guest_mem_free(n->gm);
    g_free(n->sock);
    memset(n, 0, sizeof(*n));
}

static bool wait_link(Nic *n, bool up, int timeout_ms)
{
    int64_t deadline = qos_deadline(timeout_ms);

    do {
        bool now = qvnet_config_status(n->n) & VIRTIO_NET_S_LINK_UP;

        if (now == up) {
            return true;
        }
        vfu_service(n->c, 5);
    } while (qos_remaining_ms(deadline));
    return false;
}

/*
 * Two NICs on a stream pair; @extra0 / @extra1 are appended to their
 * -device options.  @share1: vn1's guest RAM goes with its fd (else DMA
 * through messages).
 */
static void start_pair_ex(const char *extra0, const char *extra1,
                          bool share1)
{
    daemon_new();
    add_stream_pair();
    add_nic("vn0", MAC0_STR, "s0", extra0);
    add_nic("vn1", MAC1_STR, "s1", extra1);
    daemon_start();
    nic_open(&nics[0], "vn0", true);
    nic_open(&nics[1], "vn1", share1);
}

static void init_nic(Nic *n, const QVirtioNetInit *init)
{
    qvnet_init(n->n, init);
    ck_assert_msg(wait_link(n, true, QOS_TIMEOUT_MS), "link stays down");
}

/* Both NICs as Linux brings them up, links up. */
static void start_pair(const char *extra0, const char *extra1)
{
    start_pair_ex(extra0, extra1, true);
    init_nic(&nics[0], &(QVirtioNetInit){ .features = LINUX_FEATURES });
    init_nic(&nics[1], &(QVirtioNetInit){ .features = LINUX_FEATURES });
}

static void setup(void)
{
    qos_check_init();
}

static void mig_stop(void);

static void teardown(void)
{
    for (unsigned i = 0; i < ARRAY_SIZE(nics); i++) {
        if (nics[i].n) {
            nic_close(&nics[i]);
        }
    }
    g_clear_pointer(&qmp, qmp_client_free);
    if (proc) {
        iovd_proc_stop(proc);
        iovd_proc_free(proc);
        proc = NULL;
    }
    mig_stop();
}

/* ---- frames ---- */

/* A test frame of @len bytes whose payload depends on @seed. */
static size_t test_frame(uint8_t *f, const uint8_t *dst, const uint8_t *src,
                         size_t len, uint32_t seed)
{
    net_eth_hdr(f, dst, src, ETH_TYPE_TEST);
    wr32(f + 14, seed);
    for (size_t i = 18; i < len; i++) {
        f[i] = (uint8_t)(seed * 13 + i * 7 + (i >> 8));
    }
    return len;
}

static void assert_frame(const uint8_t *got, size_t got_len,
                         const uint8_t *want, size_t len)
{
    ck_assert_msg(got_len == len, "received %zu bytes, sent %zu", got_len,
                  len);
    /* One assertion per frame: Check reports each one to its parent. */
    for (size_t i = 0; i < len; i++) {
        if (got[i] != want[i]) {
            ck_abort_msg("frame of %zu bytes differs at byte %zu: 0x%02x, "
                         "sent 0x%02x", len, i, got[i], want[i]);
        }
    }
}

/* ---- receiving ---- */

static size_t rx_frame(Nic *n, uint8_t *buf, QVirtioNetHdr *h)
{
    ssize_t got = qvnet_rx(n->n, 0, buf, FRAME_MAX, h, QOS_TIMEOUT_MS);

    ck_assert_msg(got >= 0, "no frame within %d ms (device status 0x%x)",
                  QOS_TIMEOUT_MS, qvirtio_get_status(n->n->vd));
    return got;
}

static void rx_expect(Nic *n, const uint8_t *want, size_t len)
{
    static uint8_t got[FRAME_MAX];
    size_t l = rx_frame(n, got, NULL);

    assert_frame(got, l, want, len);
}

/*
 * rx_expect() while answering @other's DMA requests too: when a NIC's
 * memory is reached through messages, the daemon may wait for that
 * client (a notification check, say) while we wait for the other NIC.
 */
static void rx_expect_serving(Nic *n, Nic *other, const uint8_t *want,
                              size_t len)
{
    static uint8_t got[FRAME_MAX];
    int64_t deadline = qos_deadline(QOS_TIMEOUT_MS);

    for (;;) {
        ssize_t l = qvnet_rx(n->n, 0, got, FRAME_MAX, NULL, 0);

        if (l >= 0) {
            assert_frame(got, l, want, len);
            return;
        }
        ck_assert_msg(qos_remaining_ms(deadline), "no frame within %d ms",
                      QOS_TIMEOUT_MS);
        vfu_service(other->c, 0);
        vfu_service(n->c, 1);
    }
}

static void rx_none(Nic *n)
{
    static uint8_t got[FRAME_MAX];
    ssize_t l = qvnet_rx_any(n->n, NULL, got, FRAME_MAX, NULL, QUIET_MS);

    ck_assert_msg(l < 0, "a frame of %zd bytes arrived", l);
}

/* ---- identity and features ---- */

START_TEST(test_pci_identity)
{
    Nic *a = &nics[0];
    QVirtioDevice *vd;
    uint64_t f;
    uint8_t mac[6];

    start_pair_ex(NULL, NULL, true);
    vd = a->n->vd;
    ck_assert_uint_eq(qpci_config_readw(a->pdev, PCI_VENDOR_ID),
                      VIRTIO_PCI_VENDOR_ID);
    ck_assert_uint_eq(qpci_config_readw(a->pdev, PCI_DEVICE_ID),
                      VIRTIO_PCI_DEVICE_ID_BASE + VIRTIO_ID_NET);
    ck_assert_uint_ge(qpci_config_readb(a->pdev, PCI_REVISION_ID),
                      VIRTIO_PCI_MODERN_REVISION);
    ck_assert_uint_eq(qpci_config_readw(a->pdev, PCI_CLASS_DEVICE), 0x0200);
    ck_assert_uint_ge(qpci_config_readw(a->pdev, PCI_SUBSYSTEM_ID),
                      VIRTIO_PCI_SUBSYS_MIN);

    f = qvirtio_device_features(vd);
    ck_assert(f & VIRTIO_BIT(VIRTIO_F_VERSION_1));
    for (unsigned b = 0; b < 64; b++) {
        static const unsigned offered[] = {
            VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_MAC,
            VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_F_STATUS,
            VIRTIO_NET_F_CTRL_VQ, VIRTIO_NET_F_CTRL_RX,
            VIRTIO_NET_F_CTRL_VLAN, VIRTIO_NET_F_CTRL_RX_EXTRA,
            VIRTIO_NET_F_CTRL_MAC_ADDR,
        };
        static const unsigned not_offered[] = {
            /* A stream backend carries no virtio-net header. */
            VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6,
            VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6,
            VIRTIO_NET_F_HOST_UFO, VIRTIO_NET_F_GUEST_UFO,
            VIRTIO_NET_F_CTRL_GUEST_OFFLOADS, VIRTIO_NET_F_MQ,
            VIRTIO_NET_F_MTU, VIRTIO_NET_F_GUEST_ANNOUNCE,
            VIRTIO_NET_F_RSS, VIRTIO_NET_F_HASH_REPORT,
        };

        for (unsigned i = 0; i < ARRAY_SIZE(offered); i++) {
            if (b == offered[i]) {
                ck_assert_msg(f & VIRTIO_BIT(b), "feature %u not offered",
                              b);
            }
        }
        for (unsigned i = 0; i < ARRAY_SIZE(not_offered); i++) {
            if (b == not_offered[i]) {
                ck_assert_msg(!(f & VIRTIO_BIT(b)), "feature %u offered",
                              b);
            }
        }
    }
    /* Two queues and the control queue. */
    ck_assert_uint_eq(qvirtio_common_readw(vd, VIRTIO_PCI_COMMON_NUMQ), 3);
    qvnet_config_mac(a->n, mac);
    ck_assert_mem_eq(mac, mac0, 6);
    ck_assert_uint_eq(qvnet_config_max_pairs(a->n), 1);
    ck_assert(wait_link(a, true, QOS_TIMEOUT_MS));
}
END_TEST

/* A NIC without a backend: link up, what it sends goes nowhere. */
START_TEST(test_no_netdev)
{
    static uint8_t f[FRAME_MAX];
    Nic *a = &nics[0];

    daemon_new();
    add_nic("vn0", MAC0_STR, NULL, ",queues=2");
    daemon_start();
    nic_open(a, "vn0", true);
    init_nic(a, &(QVirtioNetInit){ .features = LINUX_FEATURES });
    for (unsigned i = 0; i < 300; i++) {
        test_frame(f, mac1, mac0, 60 + i, i);
        qvnet_tx(a->n, i & 1, f, 60 + i, NULL);
    }
    qvnet_tx_wait(a->n, 0);
    qvnet_tx_wait(a->n, 1);
    rx_none(a);
    ck_assert_uint_eq(qvnet_ctrl_rx(a->n, VIRTIO_NET_CTRL_RX_PROMISC, false),
                      VIRTIO_NET_OK);
    json_object_put(qmp_ok(qmp, "query-rx-filter", "{'name': 'vn0'}"));
}
END_TEST

START_TEST(test_feature_dependencies)
{
    QVirtioDevice *vd;
    const uint64_t v1 = VIRTIO_BIT(VIRTIO_F_VERSION_1);
    static const struct {
        uint64_t features;
        bool ok;
    } cases[] = {
        { VIRTIO_BIT(VIRTIO_NET_F_CTRL_RX), false },
        { VIRTIO_BIT(VIRTIO_NET_F_CTRL_MAC_ADDR), false },
        { VIRTIO_BIT(VIRTIO_NET_F_CTRL_VQ) |
          VIRTIO_BIT(VIRTIO_NET_F_CTRL_RX_EXTRA), false },
        { VIRTIO_BIT(VIRTIO_NET_F_CTRL_VQ) | VIRTIO_BIT(VIRTIO_NET_F_MQ) |
          VIRTIO_BIT(VIRTIO_NET_F_CTRL_RX) |
          VIRTIO_BIT(VIRTIO_NET_F_CTRL_RX_EXTRA), true },
        { VIRTIO_BIT(VIRTIO_NET_F_MQ), false },
        { VIRTIO_BIT(VIRTIO_NET_F_CSUM) |
          VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM), true },
        { 0, true },
    };

    start_pair_ex(",queues=2", NULL, true);
    vd = nics[0].n->vd;
    for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
        qvirtio_reset(vd);
        qvirtio_add_status(vd, VIRTIO_CONFIG_S_ACKNOWLEDGE);
        qvirtio_add_status(vd, VIRTIO_CONFIG_S_DRIVER);
        ck_assert_msg(qvirtio_negotiate(vd, cases[i].features | v1) ==
                      cases[i].ok, "case %u: features 0x%" PRIx64, i,
                      cases[i].features);
    }
    qvirtio_reset(vd);
    iovd_proc_assert_alive(proc);
}
END_TEST

/* ---- frames of every size, both ways ---- */

typedef struct SizesCase {
    const char *name;
    uint64_t features;
    unsigned rx_buf_len, rx_segs;
    bool indirect;
    const char *device;         /* extra -device options (both NICs) */
    bool nofd;                  /* vn1's DMA through messages */
    unsigned step;              /* sizes 60, 60 + step, ... */
} SizesCase;

static const SizesCase sizes_cases[] = {
    { "mergeable", LINUX_FEATURES, 0, 0, false, NULL, false, 1 },
    /* Exactly room for a header and a full frame. */
    { "not mergeable", NO_MRG, VIRTIO_NET_HDR_SIZE + MTU_FRAME, 0, false,
      NULL, false, 1 },
    { "mergeable, small buffers", LINUX_FEATURES, 256, 2, false, NULL,
      false, 1 },
    { "mergeable, indirect", LINUX_FEATURES, 600, 3, true, NULL, false, 1 },
    { "packed, mergeable", LINUX_FEATURES, 1024, 1, false, ",packed=on",
      false, 1 },
    { "packed, not mergeable, indirect", NO_MRG, 1600, 3, true,
      ",packed=on", false, 1 },
    { "not mergeable, no indirect, no event index",
      NO_MRG & ~VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) &
      ~VIRTIO_BIT(VIRTIO_F_EVENT_IDX), 1600, 4, false, NULL, false, 1 },
    { "mergeable, guest RAM without fd", LINUX_FEATURES, 700, 1, false,
      NULL, true, 1 },
};

static void sizes_one_way(Nic *from, Nic *to, const SizesCase *c,
                          unsigned dir)
{
    static uint8_t f[FRAME_MAX];
    const unsigned batch = 16;
    size_t len = 60;

    while (len <= MTU_FRAME) {
        size_t lens[16];
        unsigned k = 0;

        for (; k < batch && len <= MTU_FRAME; k++, len += c->step) {
            test_frame(f, to == &nics[0] ? mac0 : mac1,
                       from == &nics[0] ? mac0 : mac1, len,
                       (uint32_t)(len * 2 + dir));
            while (qvnet_tx_add(from->n, 0, f, len, NULL,
                                1 + (len % 3)) < 0) {
                qvnet_tx_kick(from->n, 0);
                qvnet_tx_wait(from->n, 0);
            }
            lens[k] = len;
        }
        qvnet_tx_kick(from->n, 0);
        if (c->nofd && from == &nics[1]) {
            /* Its DMA goes through our socket: serve it first. */
            qvnet_tx_wait(from->n, 0);
        }
        for (unsigned i = 0; i < k; i++) {
            static uint8_t want[FRAME_MAX];

            test_frame(want, to == &nics[0] ? mac0 : mac1,
                       from == &nics[0] ? mac0 : mac1, lens[i],
                       (uint32_t)(lens[i] * 2 + dir));
            if (c->nofd) {
                rx_expect_serving(to, from, want, lens[i]);
            } else {
                rx_expect(to, want, lens[i]);
            }
        }
    }
    qvnet_tx_wait(from->n, 0);
}

START_TEST(test_sizes)
{
    const SizesCase *c = &sizes_cases[_i];
    QVirtioNetInit init = {
        .features = c->features, .rx_buf_len = c->rx_buf_len,
        .rx_segs = c->rx_segs, .indirect = c->indirect,
    };

    start_pair_ex(c->device, c->device, !c->nofd);
    init_nic(&nics[0], &init);
    init_nic(&nics[1], &init);
    ck_assert_uint_eq(qvnet_has(nics[0].n, VIRTIO_NET_F_MRG_RXBUF),
                      !!(c->features & VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF)));
    sizes_one_way(&nics[0], &nics[1], c, 0);
    sizes_one_way(&nics[1], &nics[0], c, 1);
    iovd_proc_assert_alive(proc);
}
END_TEST

/*
 * A reset while vn1's work waits for its VMM's answer to a DMA_READ
 * (guest RAM without fd): once while receiving a frame from vn0, once
 * while transmitting.  The work is cancelled before the reset applies,
 * the late reply is dropped, and after the driver's re-initialisation
 * frames flow both ways again.
 */
START_TEST(test_reset_during_dma)
{
    static uint8_t f[FRAME_MAX];
    Nic *a = &nics[0], *b = &nics[1];
    size_t len;

    start_pair_ex(NULL, NULL, false);
    init_nic(a, &(QVirtioNetInit){ .features = LINUX_FEATURES });
    init_nic(b, &(QVirtioNetInit){ .features = LINUX_FEATURES });
    for (unsigned how = 0; how < 2; how++) {
        vfu_client_hold_dma(b->c, true);
        len = test_frame(f, how ? mac0 : mac1, how ? mac1 : mac0, 300,
                         100 + how);
        if (how == 0) {
            qvnet_tx(a->n, 0, f, len, NULL);
        } else {
            ck_assert_int_ge(qvnet_tx_add(b->n, 0, f, len, NULL, 1), 0);
            qvnet_tx_kick(b->n, 0);
        }
        ck_assert(vfu_client_wait_held_dma(b->c, 1, QOS_TIMEOUT_MS));
        /* Registers are served while the work waits. */
        ck_assert(qvirtio_get_status(b->n->vd) & VIRTIO_CONFIG_S_DRIVER_OK);
        qvirtio_reset(b->n->vd);
        vfu_client_hold_dma(b->c, false);
        vfu_service(b->c, 20);
        if (how == 1) {
            rx_none(a);         /* the cancelled transmit never left */
        }
        init_nic(b, &(QVirtioNetInit){ .features = LINUX_FEATURES });
        len = test_frame(f, mac1, mac0, 700, 200 + how);
        qvnet_tx(a->n, 0, f, len, NULL);
        rx_expect_serving(b, a, f, len);
        len = test_frame(f, mac0, mac1, 900, 300 + how);
        qvnet_tx(b->n, 0, f, len, NULL);
        rx_expect_serving(a, b, f, len);
    }
    vfu_client_assert_clean(b->c);
}
END_TEST

/* A receive buffer too small for a frame without MRG_RXBUF: dropped. */
START_TEST(test_rx_buffer_too_small)
{
    static uint8_t f[FRAME_MAX];
    Nic *a = &nics[0], *b = &nics[1];

    start_pair_ex(NULL, NULL, true);
    init_nic(a, &(QVirtioNetInit){ .features = LINUX_FEATURES });
    init_nic(b, &(QVirtioNetInit){ .features = NO_MRG, .rx_buf_len = 512 });
    test_frame(f, mac1, mac0, 600, 1);
    qvnet_tx(a->n, 0, f, 600, NULL);
    test_frame(f, mac1, mac0, 500, 2);
    qvnet_tx(a->n, 0, f, 500, NULL);
    /* The first is dropped, its buffer kept for the second. */
    rx_expect(b, f, 500);
    ck_assert_uint_eq(qvnet_rx_posted(b->n, 0), b->n->rx[0]->num);
    ck_assert_int_eq(qvirtio_get_status(b->n->vd) &
                     VIRTIO_CONFIG_S_NEEDS_RESET, 0);
}
END_TEST

/* ---- back-pressure ---- */

START_TEST(test_backpressure)
{
    static uint8_t f[FRAME_MAX];
    Nic *a = &nics[0], *b = &nics[1];
    const unsigned burst = 250;
    unsigned got = 0;

    start_pair_ex(NULL, NULL, true);
    init_nic(a, &(QVirtioNetInit){ .features = LINUX_FEATURES });
    init_nic(b, &(QVirtioNetInit){ .features = LINUX_FEATURES,
                                   .rx_post = QVNET_RX_NONE });
    for (unsigned i = 0; i < burst; i++) {
        size_t len = i % 5 ? MTU_FRAME : 60 + i;

        test_frame(f, mac1, mac0, len, i);
        qvnet_tx(a->n, 0, f, len, NULL);
    }
    /* Nothing can arrive without buffers. */
    rx_none(b);
    iovd_proc_assert_alive(proc);
    /* A few buffers at a time: everything arrives, in order. */
    while (got < burst) {
        static uint8_t r[FRAME_MAX];
        size_t len = got % 5 ? MTU_FRAME : 60 + got;
        ssize_t l;

        if (!qvnet_rx_posted(b->n, 0)) {
            b->n->rx_repost = false;
            qvnet_rx_post(b->n, 0, 7);
        }
        l = qvnet_rx(b->n, 0, r, sizeof(r), NULL, QOS_TIMEOUT_MS);
        ck_assert_msg(l >= 0, "frame %u of %u did not arrive", got, burst);
        test_frame(f, mac1, mac0, len, got);
        assert_frame(r, l, f, len);
        got++;
    }
    rx_none(b);
    qvnet_tx_wait(a->n, 0);
    /* And traffic goes on normally. */
    b->n->rx_repost = true;
    qvnet_rx_post(b->n, 0, UINT_MAX);
    test_frame(f, mac1, mac0, 100, 9999);
    qvnet_tx(a->n, 0, f, 100, NULL);
    rx_expect(b, f, 100);
}
END_TEST

/* ---- query-stats ---- */

START_TEST(test_query_stats)
{
    static uint8_t f[FRAME_MAX];
    Nic *a = &nics[0], *b = &nics[1];
    int64_t notes;

    start_pair(NULL, NULL);
    for (unsigned i = 0; i < 5; i++) {
        test_frame(f, mac1, mac0, 100, i);
        qvnet_tx(a->n, 0, f, 100, NULL);
        rx_expect(b, f, 100);
    }
    qvnet_tx_wait(a->n, 0);
    /* The frames, as each guest sees them. */
    ck_assert_int_eq(qmp_stat(qmp, "vn0", -1, "net", "tx-frames"), 5);
    ck_assert_int_ge(qmp_stat(qmp, "vn0", -1, "net", "tx-bytes"), 500);
    ck_assert_int_eq(qmp_stat(qmp, "vn1", -1, "net", "rx-frames"), 5);
    ck_assert_int_eq(qmp_stat(qmp, "vn1", -1, "net", "tx-frames"), 0);
    /* vn0's transmit queue (1) took five chains, all used. */
    ck_assert_int_eq(qmp_stat(qmp, "vn0", 1, "virtio", "requests"), 5);
    ck_assert_int_eq(qmp_stat(qmp, "vn0", 1, "virtio", "inflight"), 0);
    ck_assert_int_ge(qmp_stat(qmp, "vn0", 1, "virtio", "kicks"), 1);
    /*
     * One notification decision per used-ring flush, not per chain: a
     * frame reaches vn1 before vn0 flushes its used ring (at the end of
     * its loop's iteration), so the next chain may share that flush (a
     * slow, sanitized run showed 4 decisions for 5 chains).
     */
    notes = qmp_stat(qmp, "vn0", 1, "virtio", "notifications") +
            qmp_stat(qmp, "vn0", 1, "virtio", "notifications-suppressed");
    ck_assert_int_ge(notes, 1);
    ck_assert_int_le(notes, 5);
    /* vn1's receive queue (0) used a buffer per frame. */
    ck_assert_int_ge(qmp_stat(qmp, "vn1", 0, "virtio", "requests"), 5);
    ck_assert_int_ge(qmp_stat(qmp, "vn1", 0, "virtio", "notifications"), 1);
    ck_assert_int_eq(qmp_stat(qmp, "vn1", 1, "virtio", "requests"), 0);
}
END_TEST

/* ---- link ---- */

START_TEST(test_link)
{
    static uint8_t f[FRAME_MAX];
    Nic *a = &nics[0], *b = &nics[1];

    start_pair(NULL, NULL);
    ck_assert(qvnet_has(a->n, VIRTIO_NET_F_STATUS));
    qpci_eventfd_clear(qpci_msix_fd(a->pdev, 0));

    json_object_put(qmp_ok(qmp, "set_link", "{'name': 'vn0', 'up': false}"));
    ck_assert_msg(qvirtio_wait_config_irq(a->n->vd, QOS_TIMEOUT_MS),
                  "no configuration interrupt at link down");
    ck_assert_uint_eq(qvnet_config_status(a->n) & VIRTIO_NET_S_LINK_UP, 0);
    /* Nothing gets through a pulled cable, either way. */
    test_frame(f, mac0, mac1, 100, 1);
    qvnet_tx(b->n, 0, f, 100, NULL);
    rx_none(a);
    test_frame(f, mac1, mac0, 100, 2);
    qvnet_tx(a->n, 0, f, 100, NULL);
    qvnet_tx_wait(a->n, 0);
    rx_none(b);

    json_object_put(qmp_ok(qmp, "set_link", "{'name': 'vn0', 'up': true}"));
    ck_assert_msg(qvirtio_wait_config_irq(a->n->vd, QOS_TIMEOUT_MS),
                  "no configuration interrupt at link up");
    ck_assert_uint_ne(qvnet_config_status(a->n) & VIRTIO_NET_S_LINK_UP, 0);
    test_frame(f, mac0, mac1, 100, 3);
    qvnet_tx(b->n, 0, f, 100, NULL);
    rx_expect(a, f, 100);

    /* The backend's link is the NIC's too. */
    qpci_eventfd_clear(qpci_msix_fd(b->pdev, 0));
    json_object_put(qmp_ok(qmp, "set_link", "{'name': 's1', 'up': false}"));
    ck_assert(qvirtio_wait_config_irq(b->n->vd, QOS_TIMEOUT_MS));
    ck_assert(wait_link(b, false, 0));
    json_object_put(qmp_ok(qmp, "set_link", "{'name': 's1', 'up': true}"));
    ck_assert(qvirtio_wait_config_irq(b->n->vd, QOS_TIMEOUT_MS));
    ck_assert(wait_link(b, true, 0));
    test_frame(f, mac1, mac0, 200, 4);
    qvnet_tx(a->n, 0, f, 200, NULL);
    rx_expect(b, f, 200);

    /* The stream peer goes away: carrier lost, link down. */
    qpci_eventfd_clear(qpci_msix_fd(a->pdev, 0));
    json_object_put(qmp_ok(qmp, "netdev_del", "{'id': 's1'}"));
    ck_assert(qvirtio_wait_config_irq(a->n->vd, QOS_TIMEOUT_MS));
    ck_assert(wait_link(a, false, QOS_TIMEOUT_MS));
    ck_assert(wait_link(b, false, QOS_TIMEOUT_MS));
    /* Sending into the void is harmless. */
    qvnet_tx(b->n, 0, f, 200, NULL);
    qvnet_tx_wait(b->n, 0);
    iovd_proc_assert_alive(proc);
}
END_TEST

/* ---- receive filter ---- */

static unsigned filter_seq;

/*
 * Send a frame to @dst from vn1 and a marker to @marker; vn0 must get the
 * marker, and the frame before it exactly when @accepted.
 */
static void check_filter(const uint8_t *dst, bool accepted,
                         const uint8_t *marker, const char *what)
{
    static uint8_t f[FRAME_MAX], m[FRAME_MAX], r[FRAME_MAX];
    Nic *a = &nics[0], *b = &nics[1];
    size_t l;

    filter_seq++;
    test_frame(f, dst, mac1, 80, filter_seq * 2);
    test_frame(m, marker, mac1, 90, filter_seq * 2 + 1);
    qvnet_tx(b->n, 0, f, 80, NULL);
    qvnet_tx(b->n, 0, m, 90, NULL);
    l = rx_frame(a, r, NULL);
    if (accepted) {
        ck_assert_msg(l == 80 && memcmp(r, f, 80) == 0,
                      "%s: frame to %02x:..:%02x not received", what, dst[0],
                      dst[5]);
        l = rx_frame(a, r, NULL);
    }
    ck_assert_msg(l == 90 && memcmp(r, m, 90) == 0,
                  "%s: frame to %02x:..:%02x received", what, dst[0],
                  dst[5]);
}

static json_object *rx_filter(void)
{
    json_object *r = qmp_ok(qmp, "query-rx-filter", "{'name': 'vn0'}");
    json_object *info;

    ck_assert_int_eq(json_object_array_length(r), 1);
    info = json_object_get(json_object_array_get_idx(r, 0));
    json_object_put(r);
    return info;
}

/* Addresses for the filter: two unicast, two multicast (IPv4, IPv6). */
static const uint8_t uni1[6] = { 0x52, 0x54, 0x00, 0x11, 0x22, 0x33 };
static const uint8_t uni2[6] = { 0x52, 0x54, 0x00, 0x11, 0x22, 0x34 };
static const uint8_t multi1[6] = { 0x01, 0x00, 0x5e, 0x00, 0x00, 0x01 };
static const uint8_t multi2[6] = { 0x33, 0x33, 0x00, 0x00, 0x00, 0x02 };

/* Reset state: promiscuous (until the driver says otherwise). */
static void filter_default_promiscuous(void)
{
    json_object *info = rx_filter();

    ck_assert(qmp_get_bool(info, "promiscuous"));
    ck_assert_str_eq(qmp_get_str(info, "main-mac"), MAC0_STR);
    json_object_put(info);
    check_filter(uni1, true, mac0, "promiscuous");
    check_filter(multi1, true, mac0, "promiscuous");
}

/* Promiscuous off, with an event: our address and broadcast only. */
static void filter_normal(Nic *a)
{
    qmp_client_clear_events(qmp);
    ck_assert_uint_eq(qvnet_ctrl_rx(a->n, VIRTIO_NET_CTRL_RX_PROMISC, false),
                      VIRTIO_NET_OK);
    json_object_put(qmp_client_wait_event(qmp, "NIC_RX_FILTER_CHANGED", 0));
    check_filter(mac0, true, mac0, "normal");
    check_filter(uni1, false, mac0, "normal");
    check_filter(bcast, true, mac0, "normal");
    check_filter(multi1, false, mac0, "normal");
}

/* The MAC table: one unicast and one multicast address more. */
static void filter_mac_table(Nic *a)
{
    json_object *info;

    ck_assert_uint_eq(qvnet_ctrl_mac_table(a->n, &uni1, 1, &multi1, 1),
                      VIRTIO_NET_OK);
    check_filter(uni1, true, mac0, "table");
    check_filter(uni2, false, mac0, "table");
    check_filter(multi1, true, mac0, "table");
    check_filter(multi2, false, mac0, "table");
    info = rx_filter();
    ck_assert(!qmp_get_bool(info, "promiscuous"));
    ck_assert_int_eq(json_object_array_length(qmp_get(info,
                                                      "unicast-table")), 1);
    ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(
                         qmp_get(info, "unicast-table"), 0)),
                     "52:54:00:11:22:33");
    ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(
                         qmp_get(info, "multicast-table"), 0)),
                     "01:00:5e:00:00:01");
    json_object_put(info);
}

/* All multicast, then all unicast. */
static void filter_all_multi_all_uni(Nic *a)
{
    json_object *info;

    ck_assert_uint_eq(qvnet_ctrl_rx(a->n, VIRTIO_NET_CTRL_RX_ALLMULTI, true),
                      VIRTIO_NET_OK);
    check_filter(multi2, true, mac0, "allmulti");
    check_filter(uni2, false, mac0, "allmulti");
    ck_assert_uint_eq(qvnet_ctrl_rx(a->n, VIRTIO_NET_CTRL_RX_ALLMULTI, false),
                      VIRTIO_NET_OK);
    ck_assert_uint_eq(qvnet_ctrl_rx(a->n, VIRTIO_NET_CTRL_RX_ALLUNI, true),
                      VIRTIO_NET_OK);
    check_filter(uni2, true, mac0, "alluni");
    check_filter(multi2, false, mac0, "alluni");
    info = rx_filter();
    ck_assert_str_eq(qmp_get_str(info, "unicast"), "all");
    ck_assert_str_eq(qmp_get_str(info, "multicast"), "normal");
    json_object_put(info);
    ck_assert_uint_eq(qvnet_ctrl_rx(a->n, VIRTIO_NET_CTRL_RX_ALLUNI, false),
                      VIRTIO_NET_OK);
}

/* No broadcast, no multicast, no unicast; promiscuous wins over them. */
static void filter_no_bcast_multi_uni(Nic *a)
{
    json_object *info;

    ck_assert_uint_eq(qvnet_ctrl_rx(a->n, VIRTIO_NET_CTRL_RX_NOBCAST, true),
                      VIRTIO_NET_OK);
    check_filter(bcast, false, mac0, "nobcast");
    ck_assert_uint_eq(qvnet_ctrl_rx(a->n, VIRTIO_NET_CTRL_RX_NOMULTI, true),
                      VIRTIO_NET_OK);
    check_filter(multi1, false, mac0, "nomulti");
    ck_assert_uint_eq(qvnet_ctrl_rx(a->n, VIRTIO_NET_CTRL_RX_NOBCAST, false),
                      VIRTIO_NET_OK);
    ck_assert_uint_eq(qvnet_ctrl_rx(a->n, VIRTIO_NET_CTRL_RX_NOUNI, true),
                      VIRTIO_NET_OK);
    check_filter(mac0, false, bcast, "nouni");
    check_filter(uni1, false, bcast, "nouni");
    info = rx_filter();
    ck_assert_str_eq(qmp_get_str(info, "unicast"), "none");
    ck_assert_str_eq(qmp_get_str(info, "multicast"), "none");
    ck_assert(qmp_get_bool(info, "broadcast-allowed"));
    json_object_put(info);
    ck_assert_uint_eq(qvnet_ctrl_rx(a->n, VIRTIO_NET_CTRL_RX_PROMISC, true),
                      VIRTIO_NET_OK);
    check_filter(uni2, true, bcast, "promiscuous over nouni");
    ck_assert_uint_eq(qvnet_ctrl_rx(a->n, VIRTIO_NET_CTRL_RX_PROMISC, false),
                      VIRTIO_NET_OK);
    ck_assert_uint_eq(qvnet_ctrl_rx(a->n, VIRTIO_NET_CTRL_RX_NOUNI, false),
                      VIRTIO_NET_OK);
    ck_assert_uint_eq(qvnet_ctrl_rx(a->n, VIRTIO_NET_CTRL_RX_NOMULTI, false),
                      VIRTIO_NET_OK);
}

/*
 * More multicast addresses than the table holds (65, in @many): all
 * multicast.
 */
static void filter_multicast_overflow(Nic *a, uint8_t *many)
{
    json_object *info;

    for (unsigned i = 0; i < 65; i++) {
        memcpy(many + 6 * i, multi1, 6);
        many[6 * i + 5] = 0x10 + i;
    }
    ck_assert_uint_eq(qvnet_ctrl_mac_table(a->n, NULL, 0,
                                           (const uint8_t (*)[6])many, 65),
                      VIRTIO_NET_OK);
    check_filter(multi2, true, mac0, "multicast overflow");
    check_filter(uni1, false, mac0, "multicast overflow");
    info = rx_filter();
    ck_assert(qmp_get_bool(info, "multicast-overflow"));
    ck_assert(!qmp_get_bool(info, "unicast-overflow"));
    ck_assert_int_eq(json_object_array_length(qmp_get(info,
                                                      "unicast-table")), 0);
    json_object_put(info);
}

/* Malformed commands (with @many's bytes) are refused, the filter stays. */
static void filter_bad_commands(Nic *a, const uint8_t *many)
{
    ck_assert_uint_eq(qvnet_ctrl(a->n, VIRTIO_NET_CTRL_MAC,
                                 VIRTIO_NET_CTRL_MAC_TABLE_SET, many, 10),
                      VIRTIO_NET_ERR);
    ck_assert_uint_eq(qvnet_ctrl(a->n, VIRTIO_NET_CTRL_RX,
                                 VIRTIO_NET_CTRL_RX_PROMISC, many, 2),
                      VIRTIO_NET_ERR);
    ck_assert_uint_eq(qvnet_ctrl(a->n, VIRTIO_NET_CTRL_RX, 9, many, 1),
                      VIRTIO_NET_ERR);
    ck_assert_uint_eq(qvnet_ctrl(a->n, 42, 0, NULL, 0), VIRTIO_NET_ERR);
    check_filter(multi2, true, mac0, "after bad commands");
    ck_assert_int_eq(qvirtio_get_status(a->n->vd) &
                     VIRTIO_CONFIG_S_NEEDS_RESET, 0);
}

/* Each step starts from the filter the one before left. */
START_TEST(test_rx_filter)
{
    uint8_t many[VIRTIO_NET_ETH_ALEN * 65];
    Nic *a = &nics[0];
    json_object *info;

    start_pair(NULL, NULL);
    filter_default_promiscuous();
    filter_normal(a);
    filter_mac_table(a);
    filter_all_multi_all_uni(a);
    filter_no_bcast_multi_uni(a);
    filter_multicast_overflow(a, many);
    filter_bad_commands(a, many);

    /* A reset restores the defaults. */
    init_nic(a, &(QVirtioNetInit){ .features = LINUX_FEATURES });
    info = rx_filter();
    ck_assert(qmp_get_bool(info, "promiscuous"));
    ck_assert(!qmp_get_bool(info, "multicast-overflow"));
    json_object_put(info);
}
END_TEST

START_TEST(test_rx_extra_not_negotiated)
{
    Nic *a = &nics[0];

    start_pair_ex(NULL, NULL, true);
    init_nic(a, &(QVirtioNetInit){
        .features = LINUX_FEATURES &
                    ~VIRTIO_BIT(VIRTIO_NET_F_CTRL_RX_EXTRA) &
                    ~VIRTIO_BIT(VIRTIO_NET_F_CTRL_VLAN) &
                    ~VIRTIO_BIT(VIRTIO_NET_F_CTRL_MAC_ADDR) });
    ck_assert_uint_eq(qvnet_ctrl_rx(a->n, VIRTIO_NET_CTRL_RX_PROMISC, false),
                      VIRTIO_NET_OK);
    ck_assert_uint_eq(qvnet_ctrl_rx(a->n, VIRTIO_NET_CTRL_RX_NOUNI, true),
                      VIRTIO_NET_ERR);
    ck_assert_uint_eq(qvnet_ctrl_vlan(a->n, true, 5), VIRTIO_NET_ERR);
    ck_assert_uint_eq(qvnet_ctrl_mac_addr(a->n, mac1), VIRTIO_NET_ERR);
    ck_assert_uint_eq(qvnet_ctrl_pairs(a->n, 1), VIRTIO_NET_ERR);
}
END_TEST

/* ---- VLAN filter ---- */

static size_t vlan_frame(uint8_t *f, const uint8_t *dst, uint16_t vid,
                         uint32_t seed)
{
    test_frame(f, dst, mac1, 100, seed);
    memmove(f + 16, f + 12, 100 - 12);
    wr16(f + 12, VIRTIO_NET_ETH_P_VLAN);
    wr16(f + 14, vid);
    return 104;
}

static bool vlan_gets_through(uint16_t vid)
{
    static uint8_t f[FRAME_MAX], m[FRAME_MAX], r[FRAME_MAX];
    size_t len = vlan_frame(f, mac0, vid, vid);
    size_t l;

    test_frame(m, mac0, mac1, 70, 77);
    qvnet_tx(nics[1].n, 0, f, len, NULL);
    qvnet_tx(nics[1].n, 0, m, 70, NULL);
    l = rx_frame(&nics[0], r, NULL);
    if (l == len) {
        assert_frame(r, l, f, len);
        rx_expect(&nics[0], m, 70);
        return true;
    }
    assert_frame(r, l, m, 70);
    return false;
}

START_TEST(test_vlan)
{
    Nic *a = &nics[0];
    json_object *info, *vt;

    start_pair(NULL, NULL);
    ck_assert(qvnet_has(a->n, VIRTIO_NET_F_CTRL_VLAN));
    ck_assert_uint_eq(qvnet_ctrl_rx(a->n, VIRTIO_NET_CTRL_RX_PROMISC, false),
                      VIRTIO_NET_OK);
    /* Tagged frames pass only for VLANs in the table. */
    ck_assert(!vlan_gets_through(5));
    ck_assert_uint_eq(qvnet_ctrl_vlan(a->n, true, 5), VIRTIO_NET_OK);
    ck_assert_uint_eq(qvnet_ctrl_vlan(a->n, true, 4095), VIRTIO_NET_OK);
    ck_assert(vlan_gets_through(5));
    ck_assert(vlan_gets_through(4095));
    ck_assert(!vlan_gets_through(6));
    info = rx_filter();
    vt = qmp_get(info, "vlan-table");
    ck_assert_int_eq(json_object_array_length(vt), 2);
    ck_assert_int_eq(json_object_get_int(json_object_array_get_idx(vt, 0)),
                     5);
    ck_assert_int_eq(json_object_get_int(json_object_array_get_idx(vt, 1)),
                     4095);
    json_object_put(info);
    ck_assert_uint_eq(qvnet_ctrl_vlan(a->n, false, 5), VIRTIO_NET_OK);
    ck_assert(!vlan_gets_through(5));
    /* VLAN IDs have 12 bits. */
    ck_assert_uint_eq(qvnet_ctrl_vlan(a->n, true, 4096), VIRTIO_NET_ERR);
    /* Promiscuous takes everything. */
    ck_assert_uint_eq(qvnet_ctrl_rx(a->n, VIRTIO_NET_CTRL_RX_PROMISC, true),
                      VIRTIO_NET_OK);
    ck_assert(vlan_gets_through(6));
    /* Without CTRL_VLAN nothing is filtered by VLAN. */
    init_nic(a, &(QVirtioNetInit){
        .features = LINUX_FEATURES & ~VIRTIO_BIT(VIRTIO_NET_F_CTRL_VLAN) });
    ck_assert_uint_eq(qvnet_ctrl_rx(a->n, VIRTIO_NET_CTRL_RX_PROMISC, false),
                      VIRTIO_NET_OK);
    ck_assert(vlan_gets_through(7));
}
END_TEST

/* ---- MAC address ---- */

START_TEST(test_mac_addr)
{
    static const uint8_t newmac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x42 };
    static const uint8_t mcast[6] = { 0x03, 0x00, 0x00, 0x00, 0x00, 0x42 };
    Nic *a = &nics[0];
    json_object *info;
    uint8_t mac[6];

    start_pair(NULL, NULL);
    ck_assert_uint_eq(qvnet_ctrl_rx(a->n, VIRTIO_NET_CTRL_RX_PROMISC, false),
                      VIRTIO_NET_OK);
    check_filter(mac0, true, mac0, "before");
    json_object_put(qmp_ok(qmp, "query-rx-filter", NULL));
    qmp_client_clear_events(qmp);
    ck_assert_uint_eq(qvnet_ctrl_mac_addr(a->n, newmac), VIRTIO_NET_OK);
    json_object_put(qmp_client_wait_event(qmp, "NIC_RX_FILTER_CHANGED", 0));
    qvnet_config_mac(a->n, mac);
    ck_assert_mem_eq(mac, newmac, 6);
    check_filter(mac0, false, newmac, "new address");
    check_filter(newmac, true, newmac, "new address");
    info = rx_filter();
    ck_assert_str_eq(qmp_get_str(info, "main-mac"), "02:00:00:00:00:42");
    json_object_put(info);
    /* Not a multicast address, and 6 bytes exactly. */
    ck_assert_uint_eq(qvnet_ctrl_mac_addr(a->n, mcast), VIRTIO_NET_ERR);
    ck_assert_uint_eq(qvnet_ctrl(a->n, VIRTIO_NET_CTRL_MAC,
                                 VIRTIO_NET_CTRL_MAC_ADDR_SET, newmac, 5),
                      VIRTIO_NET_ERR);
    qvnet_config_mac(a->n, mac);
    ck_assert_mem_eq(mac, newmac, 6);
    /* A reset brings the device's own address back. */
    init_nic(a, &(QVirtioNetInit){ .features = LINUX_FEATURES });
    qvnet_config_mac(a->n, mac);
    ck_assert_mem_eq(mac, mac0, 6);
}
END_TEST

/* ---- MTU ---- */

START_TEST(test_mtu)
{
    static uint8_t f[FRAME_MAX];
    Nic *a = &nics[0], *b = &nics[1];

    start_pair(",host_mtu=1400", NULL);
    ck_assert(qvnet_has(a->n, VIRTIO_NET_F_MTU));
    ck_assert_uint_eq(qvnet_config_mtu(a->n), 1400);
    /* Longer frames than the MTU are not passed to the driver. */
    test_frame(f, mac0, mac1, 1415, 1);
    qvnet_tx(b->n, 0, f, 1415, NULL);
    test_frame(f, mac0, mac1, 1414, 2);
    qvnet_tx(b->n, 0, f, 1414, NULL);
    rx_expect(a, f, 1414);
    /* A driver that did not take the feature gets them. */
    init_nic(a, &(QVirtioNetInit){
        .features = LINUX_FEATURES & ~VIRTIO_BIT(VIRTIO_NET_F_MTU) });
    test_frame(f, mac0, mac1, MTU_FRAME, 3);
    qvnet_tx(b->n, 0, f, MTU_FRAME, NULL);
    rx_expect(a, f, MTU_FRAME);
}
END_TEST

/* ---- multiqueue ---- */

static size_t flow_frame(uint8_t *f, const uint8_t *dst, const uint8_t *src,
                         uint16_t sport, unsigned seq)
{
    uint8_t payload[64];
    size_t len;

    for (unsigned i = 0; i < sizeof(payload); i++) {
        payload[i] = (uint8_t)(seq + i);
    }
    len = net_udp4_frame(f, dst, src, 0x0a000002, 0x0a000001, sport, 9,
                         payload, sizeof(payload));
    net_l4_csum_fill(f);
    return len;
}

START_TEST(test_mq)
{
    static uint8_t f[FRAME_MAX], r[FRAME_MAX];
    Nic *a = &nics[0], *b = &nics[1];
    unsigned per_queue[2] = { 0, 0 };
    int flow_queue[32];

    start_pair_ex(",queues=2", ",queues=2", true);
    init_nic(a, &(QVirtioNetInit){ .features = LINUX_FEATURES });
    init_nic(b, &(QVirtioNetInit){ .features = LINUX_FEATURES });
    ck_assert(qvnet_has(a->n, VIRTIO_NET_F_MQ));
    ck_assert_uint_eq(qvnet_config_max_pairs(a->n), 2);
    ck_assert_uint_eq(a->n->pairs, 2);
    ck_assert_uint_eq(qvirtio_common_readw(a->n->vd,
                                           VIRTIO_PCI_COMMON_NUMQ), 5);

    /* Flows spread over both queues; a flow stays on its queue. */
    for (unsigned round = 0; round < 3; round++) {
        for (unsigned i = 0; i < 32; i++) {
            size_t len = flow_frame(f, mac0, mac1, 1000 + i, round * 32 + i);
            unsigned q;
            ssize_t l;

            /* Either transmit queue of the sender works. */
            qvnet_tx(b->n, i & 1, f, len, NULL);
            l = qvnet_rx_any(a->n, &q, r, sizeof(r), NULL, QOS_TIMEOUT_MS);
            ck_assert_msg(l >= 0, "flow %u: nothing received", i);
            assert_frame(r, l, f, len);
            if (round == 0) {
                flow_queue[i] = q;
                per_queue[q]++;
            } else {
                ck_assert_msg(flow_queue[i] == (int)q, "flow %u moved from "
                              "queue %d to %u", i, flow_queue[i], q);
            }
        }
    }
    ck_assert_msg(per_queue[0] && per_queue[1], "32 flows: %u on queue 0, "
                  "%u on queue 1", per_queue[0], per_queue[1]);
    /* Non-IP frames go to the first queue. */
    test_frame(f, mac0, mac1, 200, 5);
    qvnet_tx(b->n, 1, f, 200, NULL);
    rx_expect(a, f, 200);

    /* Bounds, then back to one pair: everything on queue 0. */
    ck_assert_uint_eq(qvnet_ctrl_pairs(a->n, 0), VIRTIO_NET_ERR);
    ck_assert_uint_eq(qvnet_ctrl_pairs(a->n, 3), VIRTIO_NET_ERR);
    ck_assert_uint_eq(qvnet_ctrl_pairs(a->n, 1), VIRTIO_NET_OK);
    for (unsigned i = 0; i < 32; i++) {
        size_t len = flow_frame(f, mac0, mac1, 1000 + i, i);
        unsigned q;
        ssize_t l;

        qvnet_tx(b->n, 0, f, len, NULL);
        l = qvnet_rx_any(a->n, &q, r, sizeof(r), NULL, QOS_TIMEOUT_MS);
        ck_assert(l >= 0);
        ck_assert_uint_eq(q, 0);
    }
    qvnet_tx_wait(b->n, 0);
    qvnet_tx_wait(b->n, 1);
}
END_TEST

/* Without MQ, the control queue is index 2 even with more pairs. */
START_TEST(test_mq_not_negotiated)
{
    static uint8_t f[FRAME_MAX];
    Nic *a = &nics[0], *b = &nics[1];

    start_pair_ex(",queues=2", NULL, true);
    init_nic(a, &(QVirtioNetInit){
        .features = LINUX_FEATURES & ~VIRTIO_BIT(VIRTIO_NET_F_MQ) });
    init_nic(b, &(QVirtioNetInit){ .features = LINUX_FEATURES });
    ck_assert_uint_eq(a->n->max_pairs, 1);
    ck_assert_ptr_eq(a->n->ctrl, a->n->vd->vqs[2]);
    ck_assert_uint_eq(qvnet_ctrl_rx(a->n, VIRTIO_NET_CTRL_RX_PROMISC, false),
                      VIRTIO_NET_OK);
    check_filter(mac0, true, mac0, "one pair");
    test_frame(f, mac1, mac0, 300, 1);
    qvnet_tx(a->n, 0, f, 300, NULL);
    rx_expect(b, f, 300);
}
END_TEST

/* ---- checksum offload without a vnet_hdr backend ---- */

START_TEST(test_tx_csum)
{
    static uint8_t f[FRAME_MAX], r[FRAME_MAX], m[FRAME_MAX];
    Nic *a = &nics[0], *b = &nics[1];
    uint8_t payload[1400];
    QVirtioNetHdr h = {
        .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .csum_start = NET_L4_OFF,
    };

    start_pair(NULL, NULL);
    ck_assert(qvnet_has(a->n, VIRTIO_NET_F_CSUM));
    for (unsigned i = 0; i < sizeof(payload); i++) {
        payload[i] = (uint8_t)(i * 3 + 1);
    }
    for (unsigned k = 0; k < 40; k++) {
        size_t plen = 1 + k * 35, len, got;
        bool tcp = k & 1;

        if (tcp) {
            uint8_t t[1500];

            net_tcp_hdr(t, 4000 + k, 80, 12345 + k, 0,
                        NET_TCP_PSH | NET_TCP_ACK, 8192);
            memcpy(t + 20, payload, plen);
            len = net_ip4_frame(f, mac1, mac0, NET_PROTO_TCP, 0x0a000001,
                                0x0a000002, t, 20 + plen);
            h.csum_offset = 16;
        } else {
            len = net_udp4_frame(f, mac1, mac0, 0x0a000001, 0x0a000002,
                                 3000 + k, 53, payload, plen);
            h.csum_offset = 6;
        }
        /* The driver leaves the pseudo-header sum; the device finishes. */
        net_l4_csum_seed(f, true);
        ck_assert(qvnet_tx_add(a->n, 0, f, len, &h, 1 + k % 4) >= 0);
        qvnet_tx_kick(a->n, 0);
        got = rx_frame(b, r, NULL);
        ck_assert_uint_eq(got, len);
        ck_assert_msg(net_l4_csum_ok(r, got), "case %u: bad checksum 0x%04x",
                      k, rd16(r + NET_L4_OFF + h.csum_offset));
        net_l4_csum_fill(f);
        assert_frame(r, got, f, len);
    }
    /* A checksum outside the frame: dropped, the device goes on. */
    {
        size_t len = net_udp4_frame(f, mac1, mac0, 1, 2, 3, 4, payload, 10);

        h.csum_start = len - 1;
        h.csum_offset = 6;
        qvnet_tx(a->n, 0, f, len, &h);
        test_frame(m, mac1, mac0, 60, 1);
        qvnet_tx(a->n, 0, m, 60, NULL);
        rx_expect(b, m, 60);
        /* Segmentation is not offered without a vnet_hdr backend. */
        h = (QVirtioNetHdr) { .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
                              .gso_size = 1000, .hdr_len = 54 };
        qvnet_tx(a->n, 0, f, len, &h);
        qvnet_tx(a->n, 0, m, 60, NULL);
        rx_expect(b, m, 60);
    }
    ck_assert_int_eq(qvirtio_get_status(a->n->vd) &
                     VIRTIO_CONFIG_S_NEEDS_RESET, 0);
}
END_TEST

/* ---- driver errors ---- */

enum {
    BAD_TX_SHORT,               /* transmit buffer shorter than a header */
    BAD_RX_READONLY,            /* receive buffer with nothing writable */
    BAD_CTRL_NO_ACK,            /* control command without its ack byte */
    BAD__MAX
};

START_TEST(test_bad_input)
{
    static uint8_t f[FRAME_MAX];
    Nic *a = &nics[0], *b = &nics[1];
    QVirtioDevice *vd;
    uint64_t addr;

    start_pair(NULL, NULL);
    vd = a->n->vd;
    addr = guest_alloc(a->gm, 64);
    guest_memset(a->gm, addr, 0, 64);
    switch (_i) {
    case BAD_TX_SHORT:
        ck_assert_int_ge(qvirtqueue_add(a->n->tx[0],
                                        &(QVirtioBuf){ addr, 8, false }, 1,
                                        false), 0);
        qvirtqueue_kick(a->n->tx[0]);
        break;
    case BAD_RX_READONLY:
        /* Take the posted buffers back by a reset, then post a bad one. */
        init_nic(a, &(QVirtioNetInit){ .features = LINUX_FEATURES,
                                       .rx_post = QVNET_RX_NONE });
        ck_assert_int_ge(qvirtqueue_add(a->n->rx[0],
                                        &(QVirtioBuf){ addr, 64, false }, 1,
                                        false), 0);
        qvirtqueue_kick(a->n->rx[0]);
        test_frame(f, mac0, mac1, 60, 1);
        qvnet_tx(b->n, 0, f, 60, NULL);
        break;
    case BAD_CTRL_NO_ACK:
        ck_assert_int_ge(qvirtqueue_add(a->n->ctrl,
                                        &(QVirtioBuf){ addr, 3, false }, 1,
                                        false), 0);
        qvirtqueue_kick(a->n->ctrl);
        break;
    }
    ck_assert_msg(qvirtio_wait_config_irq(vd, QOS_TIMEOUT_MS),
                  "no configuration interrupt for NEEDS_RESET");
    ck_assert_uint_ne(qvirtio_get_status(vd) & VIRTIO_CONFIG_S_NEEDS_RESET,
                      0);
    iovd_proc_assert_alive(proc);
    /* A reset brings it back. */
    init_nic(a, &(QVirtioNetInit){ .features = LINUX_FEATURES });
    ck_assert_int_eq(qvirtio_get_status(vd) & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
    test_frame(f, mac0, mac1, 100, 3);
    qvnet_tx(b->n, 0, f, 100, NULL);
    rx_expect(a, f, 100);
    test_frame(f, mac1, mac0, 100, 4);
    qvnet_tx(a->n, 0, f, 100, NULL);
    rx_expect(b, f, 100);
}
END_TEST

/* ---- reset with traffic held, stop / cont ---- */

START_TEST(test_reset_and_stop)
{
    static uint8_t f[FRAME_MAX];
    Nic *a = &nics[0], *b = &nics[1];

    start_pair_ex(NULL, NULL, true);
    init_nic(a, &(QVirtioNetInit){ .features = LINUX_FEATURES,
                                   .rx_post = QVNET_RX_NONE });
    init_nic(b, &(QVirtioNetInit){ .features = LINUX_FEATURES });
    /* Frames held for want of buffers die with a reset. */
    for (unsigned i = 0; i < 20; i++) {
        test_frame(f, mac0, mac1, 100, i);
        qvnet_tx(b->n, 0, f, 100, NULL);
    }
    rx_none(a);
    /* Held frames go at the reset; later ones find no driver. */
    qvirtio_reset(a->n->vd);
    vfu_service(a->c, QUIET_MS);
    init_nic(a, &(QVirtioNetInit){ .features = LINUX_FEATURES });
    rx_none(a);
    test_frame(f, mac0, mac1, 100, 100);
    qvnet_tx(b->n, 0, f, 100, NULL);
    rx_expect(a, f, 100);

    /* Stopped: nothing is delivered or sent; cont delivers it all. */
    json_object_put(qmp_ok(qmp, "stop", NULL));
    test_frame(f, mac0, mac1, 120, 101);
    qvnet_tx(b->n, 0, f, 120, NULL);
    rx_none(a);
    json_object_put(qmp_ok(qmp, "cont", NULL));
    rx_expect(a, f, 120);
}
END_TEST

/* ---- the guest network stack (libqos/netstack.h) on vn0 ---- */

/* The stack's frames on queue 0, with offloads as Linux's virtio_net. */
static void stack_tx(void *opaque, uint8_t *f, size_t len,
                     const NetTxOffload *off)
{
    Nic *n = opaque;
    QVirtioNetHdr h = { 0 };

    if (off && off->csum) {
        h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
        h.csum_start = NET_L4_OFF;
        h.csum_offset = net_l4_csum_off(f);
    }
    if (off && off->gso_mss) {
        h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
        h.gso_size = off->gso_mss;
        h.hdr_len = NET_L4_OFF + (f[NET_L4_OFF + 12] >> 4) * 4;
    }
    qvnet_tx(n->n, 0, f, len, &h);
}

static ssize_t stack_rx(void *opaque, uint8_t *buf, size_t max,
                        NetRxInfo *ni, int timeout_ms)
{
    Nic *n = opaque;
    QVirtioNetHdr h;
    ssize_t len = qvnet_rx(n->n, 0, buf, max, &h, timeout_ms);

    if (len >= 0) {
        ni->csum_ok = h.flags & VIRTIO_NET_HDR_F_DATA_VALID;
        ni->csum_partial = h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM;
        ni->gso = h.gso_type != VIRTIO_NET_HDR_GSO_NONE;
        ni->hw_status = h.flags;
    }
    return len;
}

/* vn0 under the stack: data with NEEDS_CSUM, GSO up to @tso_max. */
static NetIf stack_netif(size_t tso_max)
{
    return (NetIf){
        .mac = mac0, .tx = stack_tx, .rx = stack_rx, .opaque = &nics[0],
        .tx_csum = true, .tso_max = tso_max,
    };
}

/* ---- user networking: DHCP, then TCP through hostfwd ---- */

#define GUEST_TCP_PORT  5000
#define TCP_WIN         16384
#define XFER_BYTES      (256 * 1024)

START_TEST(test_user_dhcp_tcp)
{
    Nic *n = &nics[0];
    int port = net_free_tcp_port();
    NetIf nif = stack_netif(0);
    NetTcp t = { .nif = &nif, .lport = GUEST_TCP_PORT, .win = TCP_WIN };
    NetDhcpLease lease;

    daemon_new();
    iovd_proc_add_args(proc, "-netdev", NULL);
    iovd_proc_add_argf(proc, "user,id=n0,hostfwd=tcp:127.0.0.1:%d-:%d",
                       port, GUEST_TCP_PORT);
    add_nic("vn0", MAC0_STR, "n0", NULL);
    daemon_start();
    nic_open(n, "vn0", true);
    init_nic(n, &(QVirtioNetInit){ .features = LINUX_FEATURES });
    ck_assert(!qvnet_has(n->n, VIRTIO_NET_F_HOST_TSO4));

    net_dhcp_lease(&nif, &lease);
    ck_assert_uint_eq(lease.ip, NET_SLIRP_GUEST_IP);
    ck_assert_uint_eq(lease.router, NET_SLIRP_HOST_IP);

    t.host_fd = net_host_connect(port);
    net_tcp_accept(&t);
    /* Host to guest, then guest to host (checksums completed by iovd). */
    net_tcp_recv_all(&t, XFER_BYTES);
    net_tcp_send_all(&t, XFER_BYTES);
    close(t.host_fd);
}
END_TEST

/* ---- tap with a virtio-net header, in a private network namespace ---- */

#define TAP_HOST_IP     0x0a090001      /* 10.9.0.1 */
#define TAP_GUEST_IP    0x0a090002      /* 10.9.0.2 */

static bool tap_prepare(const char **why)
{
    return qos_private_netns("ip tuntap add dev vntap0 mode tap vnet_hdr "
                             "&& ip addr add 10.9.0.1/24 dev vntap0 && "
                             "ip link set vntap0 up && "
                             "ip neigh add 10.9.0.2 lladdr " MAC0_STR
                             " dev vntap0 nud permanent", why);
}

static int udp_socket(uint32_t ip, uint16_t port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    sa.sin_addr.s_addr = htonl(ip);
    sa.sin_port = htons(port);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void tap_hwaddr(uint8_t *mac)
{
    struct ifreq ifr = { 0 };
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    g_strlcpy(ifr.ifr_name, "vntap0", IFNAMSIZ);
    ck_assert_int_eq(ioctl(fd, SIOCGIFHWADDR, &ifr), 0);
    memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
    close(fd);
}

/*
 * A datagram from @ufd to the guest's @port: its frame.  Sent again until
 * one arrives: the kernel drops what it sends before its link watch has
 * seen the tap's carrier come up.
 */
static size_t tap_udp_to_guest(Nic *n, int ufd, uint8_t *f, uint16_t port,
                               const uint8_t *payload, size_t plen,
                               QVirtioNetHdr *h)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    int64_t deadline = qos_deadline(QOS_TIMEOUT_MS);

    sa.sin_addr.s_addr = htonl(TAP_GUEST_IP);
    sa.sin_port = htons(port);
    for (;;) {
        int64_t retry = qos_deadline(100);

        ck_assert_int_eq(sendto(ufd, payload, plen, 0,
                                (struct sockaddr *)&sa, sizeof(sa)), plen);
        while (qos_remaining_ms(retry)) {
            ssize_t got = qvnet_rx(n->n, 0, f, FRAME_MAX, h,
                                   qos_remaining_ms(retry));

            if (got >= 0 && net_is_ip4_proto(f, got, NET_PROTO_UDP) &&
                rd16(f + NET_L4_OFF + 2) == port) {
                return got;
            }
        }
        ck_assert_msg(qos_remaining_ms(deadline), "no UDP datagram for "
                      "port %u", port);
    }
}

START_TEST(test_tap)
{
    static uint8_t f[FRAME_MAX];
    struct sockaddr_in sa = { .sin_family = AF_INET };
    Nic *n = &nics[0];
    const char *why = NULL;
    uint8_t payload[1200], buf[2048];
    QVirtioNetHdr h;
    uint8_t offl[8] = { 0 };
    int ufd, lfd, cfd;
    size_t len;
    /* Super-frames of eight segments. */
    NetIf nif = stack_netif(8 * NET_TCP_MSS);
    NetTcp t = {
        .nif = &nif, .lport = 40000, .pip = TAP_HOST_IP, .pport = 7003,
        .win = 30000, .host_fd = -1,
    };

    if (!tap_prepare(&why)) {
        printf("SKIP: test_tap: %s\n", why);
        fflush(stdout);
        return;
    }
    nif.ip = TAP_GUEST_IP;
    daemon_new();
    iovd_proc_add_args(proc, "-netdev",
                       "tap,id=t0,ifname=vntap0,vnet_hdr=on", NULL);
    add_nic("vn0", MAC0_STR, "t0", NULL);
    daemon_start();
    nic_open(n, "vn0", true);
    init_nic(n, &(QVirtioNetInit){ .features = LINUX_FEATURES });
    ck_assert(qvnet_has(n->n, VIRTIO_NET_F_HOST_TSO4));
    ck_assert(qvnet_has(n->n, VIRTIO_NET_F_HOST_TSO6));
    ck_assert(qvnet_has(n->n, VIRTIO_NET_F_GUEST_TSO4));
    ck_assert(qvnet_has(n->n, VIRTIO_NET_F_GUEST_TSO6));
    ck_assert(qvnet_has(n->n, VIRTIO_NET_F_CTRL_GUEST_OFFLOADS));
    for (unsigned i = 0; i < sizeof(payload); i++) {
        payload[i] = (uint8_t)(i * 5 + 3);
    }

    /* Host to guest: UDP; a partial checksum is fine with GUEST_CSUM. */
    ufd = udp_socket(TAP_HOST_IP, 7001);
    len = tap_udp_to_guest(n, ufd, f, 7000, payload, sizeof(payload), &h);
    ck_assert_uint_eq(len, NET_L4_OFF + 8 + sizeof(payload));
    ck_assert_mem_eq(f + NET_L4_OFF + 8, payload, sizeof(payload));
    if (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
        ck_assert_uint_eq(h.csum_start, NET_L4_OFF);
        ck_assert_uint_eq(h.csum_offset, 6);
        wr16(f + NET_L4_OFF + 6, ~csum_fold(csum_add(0, f + NET_L4_OFF,
                                                     len - NET_L4_OFF)));
    }
    ck_assert(net_l4_csum_ok(f, len));

    /* Guest to host: UDP with the checksum left to the host's stack. */
    len = net_udp4_frame(f, (uint8_t[6]){ 0 }, mac0, TAP_GUEST_IP,
                         TAP_HOST_IP, 7000, 7001, payload, sizeof(payload));
    tap_hwaddr(t.pmac);
    memcpy(f, t.pmac, 6);
    net_l4_csum_seed(f, true);
    qvnet_tx(n->n, 0, f, len, &(QVirtioNetHdr){
        .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .csum_start = NET_L4_OFF,
        .csum_offset = 6 });
    ck_assert_int_eq(recv(ufd, buf, sizeof(buf), 0), sizeof(payload));
    ck_assert_mem_eq(buf, payload, sizeof(payload));

    /* TCP: the guest connects, sends with TSO, receives GSO frames. */
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sa.sin_addr.s_addr = htonl(TAP_HOST_IP);
    sa.sin_port = htons(7003);
    ck_assert_int_eq(setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &(int){ 1 },
                                sizeof(int)), 0);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(lfd, 1), 0);
    net_tcp_connect(&t);
    cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    ck_assert_int_ge(cfd, 0);
    t.host_fd = cfd;
    net_tcp_send_all(&t, XFER_BYTES);
    net_tcp_recv_all(&t, XFER_BYTES);
    ck_assert_uint_ne(t.tso_sends, 0);
    ck_assert_msg(t.gso_rx && t.max_frame_rx > MTU_FRAME, "no GSO frame "
                  "received (longest %zu bytes)", t.max_frame_rx);

    /* Offloads off: complete checksums, no GSO. */
    ck_assert_uint_eq(qvnet_ctrl(n->n, VIRTIO_NET_CTRL_GUEST_OFFLOADS,
                                 VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET, offl, 8),
                      VIRTIO_NET_OK);
    len = tap_udp_to_guest(n, ufd, f, 7010, payload, sizeof(payload), &h);
    ck_assert_uint_eq(h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM, 0);
    ck_assert(net_l4_csum_ok(f, len));
    /* Offloads that were not negotiated cannot be turned on. */
    stq_le_p(offl, VIRTIO_BIT(VIRTIO_NET_F_GUEST_UFO));
    ck_assert_uint_eq(qvnet_ctrl(n->n, VIRTIO_NET_CTRL_GUEST_OFFLOADS,
                                 VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET, offl, 8),
                      VIRTIO_NET_ERR);
    close(cfd);
    close(lfd);
    close(ufd);
}
END_TEST

/* ---- command line ---- */

START_TEST(test_bad_properties)
{
    static const char *const bad[] = {
        "mac=01:00:00:00:00:01",
        "mac=52:54:00:12:34",
        "queues=0",
        "queues=2,ctrl_vq=off",
        "host_mtu=50",
        "rx_queue_size=100",
        "tx_queue_size=2048",
        "netdev=nope",
    };

    for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
        g_autoptr(IovdProc) p = iovd_proc_new();
        g_autofree char *sock = iovd_proc_path(p, "x.sock");
        g_autofree char *dev = g_strdup_printf("virtio-net-pci,id=x,"
                                               "socket=%s,%s", sock, bad[i]);
        char *argv[] = { (char *)iovd_binary(), "-device", dev, NULL };
        g_autofree char *out = NULL, *err = NULL;
        int status;

        ck_assert(g_spawn_sync(NULL, argv, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                               &out, &err, &status, NULL));
        ck_assert_msg(status != 0, "'%s' accepted", bad[i]);
        ck_assert_msg(strstr(err, "property"), "'%s': %s", bad[i], err);
    }
}
END_TEST

/* ---- live migration ---- */

/*
 * The wire: the test is the stream peer (server) of vn0 in the source
 * daemon and of vn0 in the destination daemon, so it sees every frame
 * each one sends and chooses which one a frame goes to.
 */
static int wire_lfd = -1;
static int wire_fd[2] = { -1, -1 };     /* source, destination */
static IovdProc *dst_proc;

static void wire_listen(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };

    ck_assert_uint_lt(strlen(path), sizeof(sa.sun_path));
    strcpy(sa.sun_path, path);
    wire_lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(wire_lfd, 0);
    ck_assert_int_eq(bind(wire_lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(wire_lfd, 4), 0);
}

static int wire_accept(void)
{
    struct pollfd p = { .fd = wire_lfd, .events = POLLIN };
    int fd;

    ck_assert_msg(poll(&p, 1, QOS_TIMEOUT_MS) == 1,
                  "no NIC connected to the wire");
    fd = accept4(wire_lfd, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    return fd;
}

static void wire_close(void)
{
    for (unsigned i = 0; i < 2; i++) {
        if (wire_fd[i] >= 0) {
            close(wire_fd[i]);
            wire_fd[i] = -1;
        }
    }
    if (wire_lfd >= 0) {
        close(wire_lfd);
        wire_lfd = -1;
    }
}

/* One frame to the NIC behind @fd (the stream's 4-byte length first). */
static void wire_send(int fd, const uint8_t *f, size_t len)
{
    uint8_t hdr[4];
    struct iovec iov[2] = {
        { hdr, sizeof(hdr) }, { (void *)f, len },
    };

    wr32(hdr, len);
    ck_assert_int_eq(writev(fd, iov, 2), sizeof(hdr) + len);
}

static bool wire_read(int fd, uint8_t *buf, size_t len, int64_t deadline)
{
    while (len) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        ssize_t n;

        if (poll(&p, 1, qos_remaining_ms(deadline)) != 1) {
            return false;
        }
        n = read(fd, buf, len);
        ck_assert_msg(n > 0, "the wire closed (%s)",
                      n < 0 ? g_strerror(errno) : "EOF");
        buf += n;
        len -= n;
    }
    return true;
}

/* The next frame the NIC behind @fd sent: its length, -1 when none. */
static ssize_t wire_recv(int fd, uint8_t *buf, size_t max, int timeout_ms)
{
    uint8_t hdr[4];
    uint32_t len;

    if (!wire_read(fd, hdr, sizeof(hdr), qos_deadline(timeout_ms))) {
        return -1;
    }
    len = rd32(hdr);
    ck_assert_uint_le(len, max);
    ck_assert_msg(wire_read(fd, buf, len, qos_deadline(QOS_TIMEOUT_MS)),
                  "a frame of %u bytes cut short", len);
    return len;
}

/* Frames from the NIC behind @fd carry sequence numbers @first, ... */
static void wire_expect(int fd, uint32_t first, unsigned count)
{
    static uint8_t got[FRAME_MAX], want[FRAME_MAX];

    for (unsigned k = 0; k < count; k++) {
        size_t len = test_frame(want, bcast, mac0, 60 + first + k,
                                first + k);
        ssize_t l = wire_recv(fd, got, FRAME_MAX, QOS_TIMEOUT_MS);

        ck_assert_msg(l >= 0, "frame %u of %u not sent on the wire", k,
                      count);
        assert_frame(got, l, want, len);
    }
}

static void mig_add_nic(IovdProc *p, const char *extra)
{
    g_autofree char *wire = iovd_proc_path(proc, "wire.sock");
    g_autofree char *sock = iovd_proc_path(p, "vn0.sock");

    iovd_proc_add_args(p, "-netdev", NULL);
    iovd_proc_add_argf(p, "stream,id=w0,server=off,addr.type=unix,"
                       "addr.path=%s,reconnect-ms=20", wire);
    iovd_proc_add_args(p, "-device", NULL);
    iovd_proc_add_argf(p, "virtio-net-pci,id=vn0,mac=%s,netdev=w0,"
                       "socket=%s%s", MAC0_STR, sock, extra);
    iovd_proc_add_args(p, "-d", "guest_errors", NULL);
    if (getenv("VIRTIO_NET_TEST_TRACE")) {
        iovd_proc_add_args(p, "-trace", getenv("VIRTIO_NET_TEST_TRACE"),
                           NULL);
    }
}

/*
 * vn0 (with @src_extra) on the wire in the first daemon, driven as Linux
 * does; a second daemon with vn0 (@dst_extra) on the same wire, which is
 * where it goes.
 */
static void mig_start(const char *src_extra, const char *dst_extra)
{
    g_autofree char *wire = NULL;

    daemon_new();
    wire = iovd_proc_path(proc, "wire.sock");
    wire_listen(wire);
    mig_add_nic(proc, src_extra);
    daemon_start();
    wire_fd[0] = wire_accept();
    dst_proc = iovd_proc_new();
    mig_add_nic(dst_proc, dst_extra);
    iovd_proc_start(dst_proc);
    wire_fd[1] = wire_accept();
    nic_open(&nics[0], "vn0", true);
    init_nic(&nics[0], &(QVirtioNetInit){ .features = LINUX_FEATURES });
}

static void mig_stop(void)
{
    wire_close();
    if (dst_proc) {
        iovd_proc_stop(dst_proc);
        iovd_proc_free(dst_proc);
        dst_proc = NULL;
    }
}

/* Queue frames @first... on transmit queue 0; notify when @kick. */
static void mig_tx(uint32_t first, unsigned count, bool kick)
{
    static uint8_t f[FRAME_MAX];
    QVirtioNet *n = nics[0].n;

    for (unsigned k = 0; k < count; k++) {
        size_t len = test_frame(f, bcast, mac0, 60 + first + k, first + k);

        ck_assert_int_ge(qvnet_tx_add(n, 0, f, len, NULL, 1 + k % 3), 0);
    }
    if (kick) {
        qvnet_tx_kick(n, 0);
    }
}

/* Received frames the driver has not taken yet (receive queue 0). */
static unsigned mig_rx_pending(void)
{
    QVirtQueue *vq = nics[0].n->rx[0];

    return (uint16_t)(guest_readw(nics[0].gm, vq->used + 2) -
                      vq->last_used_idx);
}

/* The receive frames of this test: to @dst, sequence @seq. */
static size_t mig_rx_frame(uint8_t *f, const uint8_t *dst, uint32_t seq)
{
    return test_frame(f, dst, mac1, 64 + seq % 50, 1000 + seq);
}

/*
 * In PRE_COPY, the source still running: frames it receives into guest
 * RAM (the driver takes them after the migration) and frames it sends.
 */
#define MIG_RX_DURING   6

static void mig_during(void *opaque)
{
    static uint8_t f[FRAME_MAX];
    int64_t deadline = qos_deadline(QOS_TIMEOUT_MS);
    const uint8_t *mac = opaque;

    for (unsigned k = 0; k < MIG_RX_DURING; k++) {
        wire_send(wire_fd[0], f, mig_rx_frame(f, mac, k));
    }
    while (mig_rx_pending() < MIG_RX_DURING) {
        ck_assert_msg(qos_remaining_ms(deadline), "the source received %u "
                      "of %u frames", mig_rx_pending(), MIG_RX_DURING);
        g_usleep(1000);
    }
    mig_tx(100, 5, true);
    qvnet_tx_wait(nics[0].n, 0);
}

/*
 * Frames @first... queued before the switch, not notified: each is sent
 * once, by the source (polling found them) or else by the destination.
 */
static void mig_expect_either(uint32_t first, unsigned count)
{
    static uint8_t got[FRAME_MAX], want[FRAME_MAX];
    unsigned k = 0;

    /* The source stopped before the switch: what it sent is here now. */
    while (k < count && wire_recv(wire_fd[0], got, FRAME_MAX, 0) >= 0) {
        size_t len = test_frame(want, bcast, mac0, 60 + first + k,
                                first + k);

        assert_frame(got, len, want, len);
        k++;
    }
    wire_expect(wire_fd[1], first + k, count - k);
}

static const uint8_t mig_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x42 };

/* What the driver sets through the control queue, to survive. */
static void mig_set_filter(QVirtioNet *n)
{
    ck_assert_uint_eq(qvnet_ctrl_mac_addr(n, mig_mac), VIRTIO_NET_OK);
    ck_assert_uint_eq(qvnet_ctrl_rx(n, VIRTIO_NET_CTRL_RX_PROMISC, false),
                      VIRTIO_NET_OK);
    ck_assert_uint_eq(qvnet_ctrl_rx(n, VIRTIO_NET_CTRL_RX_NOBCAST, true),
                      VIRTIO_NET_OK);
    ck_assert_uint_eq(qvnet_ctrl_mac_table(n, &uni1, 1, &multi1, 1),
                      VIRTIO_NET_OK);
    ck_assert_uint_eq(qvnet_ctrl_vlan(n, true, 5), VIRTIO_NET_OK);
}

/* The destination filters as the driver said: only the right frames. */
static void mig_check_filter(void)
{
    static const uint8_t *const dsts[] = {
        mig_mac, mac0, uni1, uni2, multi1, multi2, bcast,
    };
    static const bool pass[] = { true, false, true, false, true, false,
                                 false };
    static uint8_t f[ARRAY_SIZE(dsts) + 2][FRAME_MAX];
    size_t len[ARRAY_SIZE(dsts) + 2];
    unsigned n = ARRAY_SIZE(dsts);
    uint8_t mac[6];

    for (unsigned i = 0; i < n; i++) {
        len[i] = mig_rx_frame(f[i], dsts[i], 500 + i);
        wire_send(wire_fd[1], f[i], len[i]);
    }
    len[n] = vlan_frame(f[n], mig_mac, 6, 600);
    len[n + 1] = vlan_frame(f[n + 1], mig_mac, 5, 601);
    wire_send(wire_fd[1], f[n], len[n]);
    wire_send(wire_fd[1], f[n + 1], len[n + 1]);
    for (unsigned i = 0; i < n; i++) {
        if (pass[i]) {
            rx_expect(&nics[0], f[i], len[i]);
        }
    }
    rx_expect(&nics[0], f[n + 1], len[n + 1]);
    rx_none(&nics[0]);
    qvnet_config_mac(nics[0].n, mac);
    ck_assert_mem_eq(mac, mig_mac, 6);
    ck_assert(qvnet_config_status(nics[0].n) & VIRTIO_NET_S_LINK_UP);
}

/* End PRE_COPY with transmit buffers the driver did not notify. */
static void mig_during_then_queue(void *opaque)
{
    mig_during(opaque);
    mig_tx(200, 3, false);
}

/*
 * Migrate vn0 with traffic both ways before, during (PRE_COPY) and after:
 * frames the source received reach the driver from the migrated RAM,
 * frames it acknowledged as sent were on the wire, buffers queued without
 * a notification go out once, and the filter the control queue set (MAC,
 * RX modes, MAC table, VLAN) holds on the destination, with two queue
 * pairs in use.
 */
START_TEST(test_migrate)
{
    static uint8_t f[FRAME_MAX];
    QMigrateOpts o = {
        .during = mig_during_then_queue, .opaque = (void *)mig_mac,
    };
    g_autofree char *dst = NULL;
    Nic *a = &nics[0];
    QMigrateStats st;
    VfuClient *c;

    mig_start(",queues=2", ",queues=2");
    dst = iovd_proc_path(dst_proc, "vn0.sock");
    ck_assert_uint_eq(a->n->pairs, 2);
    mig_set_filter(a->n);
    mig_tx(0, 4, true);
    wire_expect(wire_fd[0], 0, 4);
    wire_send(wire_fd[0], f, mig_rx_frame(f, mig_mac, 50));
    rx_expect(a, f, mig_rx_frame(f, mig_mac, 50));

    c = qmig_migrate(a->pdev, a->gm, dst, &o, &st);
    vfu_client_free(a->c);
    a->c = c;
    for (unsigned k = 0; k < MIG_RX_DURING; k++) {
        rx_expect(a, f, mig_rx_frame(f, mig_mac, k));
    }
    wire_expect(wire_fd[0], 100, 5);
    mig_expect_either(200, 3);
    mig_tx(300, 4, true);
    wire_expect(wire_fd[1], 300, 4);
    mig_check_filter();
    ck_assert_uint_eq(qvirtio_get_status(a->n->vd) &
                      VIRTIO_CONFIG_S_NEEDS_RESET, 0);
}
END_TEST

/* The destination's vn0 on @c works as configured after its reset. */
static void mig_check_reset_dst(VfuClient *c, GuestMem *gm)
{
    static uint8_t f[FRAME_MAX];
    Nic d = { .c = c, .gm = gm };

    d.pdev = qpci_device_new(c);
    d.n = qvnet_new(d.pdev, gm);
    init_nic(&d, &(QVirtioNetInit){ .features = LINUX_FEATURES });
    qvnet_tx(d.n, 0, f, test_frame(f, bcast, mac0, 760, 700), NULL);
    wire_expect(wire_fd[1], 700, 1);
    wire_send(wire_fd[1], f, mig_rx_frame(f, mac0, 7));
    rx_expect(&d, f, mig_rx_frame(f, mac0, 7));
    qvnet_free(d.n);
    qpci_device_free(d.pdev);
}

/*
 * A destination configured differently refuses the state (RESUMING ->
 * STOP fails) and works after DEVICE_RESET; the source resumes.  _i: 0
 * fewer queue pairs (the PCI function differs), 1 another host_mtu (the
 * virtio-net section: the features are the same).
 */
START_TEST(test_migrate_refused)
{
    static const char *const dst_extra[] = {
        ",queues=1,host_mtu=1500", ",queues=2,host_mtu=9000",
    };
    g_autoptr(GByteArray) state = g_byte_array_new();
    g_autofree char *dst = NULL;
    Nic *a = &nics[0];
    VfuClient *dc;
    uint32_t mst;

    mig_start(",queues=2,host_mtu=1500", dst_extra[_i]);
    dst = iovd_proc_path(dst_proc, "vn0.sock");
    mig_set_filter(a->n);
    qos_assert_errno(qmig_set_state(a->c, QMIG_STOP_COPY), 0);
    qos_assert_errno(qmig_read_state(a->c, state), 0);

    dc = vfu_client_open(dst);
    guest_mem_map_checked(a->gm, dc, true);
    qos_assert_errno(qmig_set_state(dc, QMIG_RESUMING), 0);
    qos_assert_errno(qmig_write_state(dc, state->data, state->len, 0), 0);
    ck_assert_int_lt(qmig_set_state(dc, QMIG_STOP), 0);
    qos_assert_errno(qmig_get_state(dc, &mst), 0);
    ck_assert_uint_eq(mst, QMIG_ERROR);
    qos_assert_errno(vfu_device_reset(dc), 0);
    qos_assert_errno(qmig_get_state(dc, &mst), 0);
    ck_assert_uint_eq(mst, QMIG_RUNNING);
    mig_check_reset_dst(dc, a->gm);
    vfu_client_free(dc);

    qos_assert_errno(qmig_set_state(a->c, QMIG_RUNNING), 0);
    mig_tx(800, 2, true);
    wire_expect(wire_fd[0], 800, 2);
}
END_TEST

/* ---- main ---- */

static Suite *virtio_net_suite(void)
{
    Suite *s = suite_create("virtio-net");
    TCase *tc;

    tc = qos_check_tcase(s, "device", setup, teardown, 40);
    tcase_add_test(tc, test_pci_identity);
    tcase_add_test(tc, test_no_netdev);
    tcase_add_test(tc, test_feature_dependencies);
    tcase_add_test(tc, test_bad_properties);

    tc = qos_check_tcase(s, "data", setup, teardown, 40);
    tcase_add_loop_test(tc, test_sizes, 0, ARRAY_SIZE(sizes_cases));
    tcase_add_test(tc, test_rx_buffer_too_small);
    tcase_add_test(tc, test_reset_during_dma);
    tcase_add_test(tc, test_backpressure);
    tcase_add_test(tc, test_query_stats);
    tcase_add_test(tc, test_tx_csum);
    tcase_add_test(tc, test_mtu);
    tcase_add_test(tc, test_reset_and_stop);
    tcase_add_loop_test(tc, test_bad_input, 0, BAD__MAX);

    tc = qos_check_tcase(s, "control", setup, teardown, 40);
    tcase_add_test(tc, test_link);
    tcase_add_test(tc, test_rx_filter);
    tcase_add_test(tc, test_rx_extra_not_negotiated);
    tcase_add_test(tc, test_vlan);
    tcase_add_test(tc, test_mac_addr);
    tcase_add_test(tc, test_mq);
    tcase_add_test(tc, test_mq_not_negotiated);

    tc = qos_check_tcase(s, "migration", setup, teardown, 40);
    tcase_add_test(tc, test_migrate);
    tcase_add_loop_test(tc, test_migrate_refused, 0, 2);

    tc = qos_check_tcase(s, "backends", setup, teardown, 40);
    tcase_add_test(tc, test_user_dhcp_tcp);
    tcase_add_test(tc, test_tap);
    return s;
}

int main(void)
{
    return qos_check_run(virtio_net_suite());
}
