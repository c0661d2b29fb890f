/*
 * Unit tests for net/: the client/peer model and its packet queue, link
 * and receive-filter events, and the stream, user (slirp) and tap
 * backends, driven in-process through the main loop.  A fake NIC stands
 * in for virtio-net / e1000; a test backend type makes the queue tests
 * deterministic.
 */
#include <check.h>
#include "unit-loop.h"

#include "net/checksum.h"
#include "net/net-int.h"
#include "util/error.h"
#include "util/loop.h"
#include "util/cmdline.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <linux/if_packet.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#define ETH_TYPE_TEST   0x88b5  /* IEEE local experimental */
#define WAIT_NS         (5 * 1000000000LL)

static char *tmpdir;
static LoopTimer *wake_timer;

/* ---- main loop ---- */

static void wake_noop(void *opaque)
{
}

/* One loop iteration, blocking at most 10 ms. */
static void pump(void)
{
    loop_timer_mod(wake_timer, clock_ns() + 10 * 1000000);
    loop_iterate(loop_main(), true);
}

#define WAIT_FOR(cond) \
    do { \
        int64_t dl_ = clock_ns() + WAIT_NS; \
        while (!(cond) && clock_ns() < dl_) { \
            pump(); \
        } \
    } while (0)

static void pump_ms(int ms)
{
    int64_t dl = clock_ns() + (int64_t)ms * 1000000;

    while (clock_ns() < dl) {
        pump();
    }
}

/* ---- a fake NIC ---- */

typedef struct FakeNic {
    NetClient *nc;
    bool eagain;                /* receive() says no buffers */
    bool no_buffers;            /* can_receive() false */
    GPtrArray *frames;          /* of GBytes, as received */
    unsigned receive_calls;
    unsigned link_events;
    unsigned writable_calls;
    unsigned filter_queries;
} FakeNic;

static ssize_t fake_receive(NetClient *nc, const struct iovec *iov,
                            int iovcnt)
{
    FakeNic *f = nc->opaque;
    size_t len = iov_size(iov, iovcnt);
    uint8_t *buf;

    f->receive_calls++;
    if (f->eagain) {
        return -EAGAIN;
    }
    buf = g_malloc(len);
    iov_to_buf(iov, iovcnt, 0, buf, len);
    g_ptr_array_add(f->frames, g_bytes_new_take(buf, len));
    return len;
}

static bool fake_can_receive(NetClient *nc)
{
    FakeNic *f = nc->opaque;

    return !f->no_buffers;
}

static void fake_link_status_changed(NetClient *nc)
{
    FakeNic *f = nc->opaque;

    f->link_events++;
}

static void fake_writable(NetClient *nc)
{
    FakeNic *f = nc->opaque;

    f->writable_calls++;
}

static void fake_rx_filter_info(NetClient *nc, NetRxFilterInfo *info)
{
    FakeNic *f = nc->opaque;
    static const uint8_t mac[6] = { 0x52, 0x54, 0, 0x12, 0x34, 0x56 };

    f->filter_queries++;
    info->broadcast_allowed = true;
    info->multicast = NET_RX_NORMAL;
    memcpy(info->main_mac, mac, 6);
    info->unicast_table = g_array_new(false, false, 6);
    info->multicast_table = g_array_new(false, false, 6);
    info->vlan_table = g_array_new(false, false, sizeof(uint16_t));
}

static const NetClientOps fake_ops = {
    .receive = fake_receive,
    .can_receive = fake_can_receive,
    .link_status_changed = fake_link_status_changed,
    .writable = fake_writable,
    .rx_filter_info = fake_rx_filter_info,
};

static GPtrArray *fake_nics;

static FakeNic *fake_nic_new(const char *id, const char *netdev)
{
    FakeNic *f = g_new0(FakeNic, 1);
    GError *err = NULL;

    f->frames = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
    f->nc = net_nic_new(&fake_ops, id, "fake-nic", netdev, loop_main(), f, &err);
    ck_assert_msg(f->nc, "NIC %s on %s: %s", id, netdev,
                  err ? err->message : "");
    g_ptr_array_add(fake_nics, f);
    return f;
}

static void fake_nic_free(FakeNic *f)
{
    net_nic_free(f->nc);
    g_ptr_array_unref(f->frames);
    g_free(f);
}

static GBytes *fake_frame(FakeNic *f, guint i)
{
    ck_assert_uint_lt(i, f->frames->len);
    return g_ptr_array_index(f->frames, i);
}

/* ---- a test backend: frames in and out under the test's control ---- */

typedef struct TestBe {
    NetClient *nc;
    bool vnet;
    bool eagain;
    GPtrArray *frames;
    unsigned writable_calls;
} TestBe;

static ssize_t testbe_receive(NetClient *nc, const struct iovec *iov,
                              int iovcnt)
{
    TestBe *t = nc->opaque;
    size_t len = iov_size(iov, iovcnt);
    uint8_t *buf;

    if (t->eagain) {
        return -EAGAIN;
    }
    buf = g_malloc(len);
    iov_to_buf(iov, iovcnt, 0, buf, len);
    g_ptr_array_add(t->frames, g_bytes_new_take(buf, len));
    return len;
}

static void testbe_writable(NetClient *nc)
{
    TestBe *t = nc->opaque;

    t->writable_calls++;
}

static void testbe_cleanup(NetClient *nc)
{
    TestBe *t = nc->opaque;

    if (t->frames) {
        g_ptr_array_unref(t->frames);
    }
}

static bool testbe_open(NetClient *nc, GError **errp)
{
    TestBe *t = nc->opaque;

    t->nc = nc;
    t->frames = g_ptr_array_new_with_free_func(
        (GDestroyNotify)g_bytes_unref);
    nc->has_vnet_hdr = t->vnet;
    return true;
}

static const PropDef testbe_props[] = {
    PROP_DEF_BOOL("vnet", TestBe, vnet, "frames carry a vnet header",
                  .defval = "off"),
    PROP_DEF_END
};

static const NetClientOps testbe_ops = {
    .receive = testbe_receive,
    .writable = testbe_writable,
    .cleanup = testbe_cleanup,
};

static const NetBackendDriver testbe_driver = {
    .type = "testbe",
    .help = "a backend for tests",
    .state_size = sizeof(TestBe),
    .props = testbe_props,
    .ops = &testbe_ops,
    .open = testbe_open,
};

/* ---- helpers ---- */

static NetClient *netdev_add(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static NetClient *netdev_add(const char *fmt, ...)
{
    va_list ap;
    g_autofree char *str = NULL;
    g_autoptr(Keyval) kv = NULL;
    GError *err = NULL;
    NetClient *nc;

    va_start(ap, fmt);
    str = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    kv = keyval_parse(str, "type", &err);
    ck_assert_msg(kv, "'%s': %s", str, err ? err->message : "");
    nc = net_backend_create(kv, &err);
    ck_assert_msg(nc, "'%s': %s", str, err ? err->message : "");
    return nc;
}

/* Expect failure; returns the message (caller frees). */
static char *netdev_add_err(const char *str)
{
    g_autoptr(Keyval) kv = NULL;
    GError *err = NULL;
    char *msg;

    kv = keyval_parse(str, "type", &err);
    ck_assert_msg(kv, "'%s': %s", str, err ? err->message : "");
    ck_assert_msg(!net_backend_create(kv, &err), "'%s' succeeded", str);
    ck_assert_ptr_nonnull(err);
    msg = g_strdup(err->message);
    g_error_free(err);
    return msg;
}

static void netdev_del(const char *id)
{
    GError *err = NULL;

    ck_assert_msg(net_backend_delete(id, &err), "%s: %s", id,
                  err ? err->message : "");
}

static TestBe *testbe(NetClient *nc)
{
    return nc->opaque;
}

/* A test frame: ethertype ETH_TYPE_TEST, a sequence number, a pattern. */
static void make_frame(uint8_t *buf, size_t len, uint32_t seq)
{
    static const uint8_t dst[6] = { 0x02, 0, 0, 0, 0, 0x02 };
    static const uint8_t src[6] = { 0x02, 0, 0, 0, 0, 0x01 };

    memcpy(buf, dst, 6);
    memcpy(buf + 6, src, 6);
    buf[12] = ETH_TYPE_TEST >> 8;
    buf[13] = ETH_TYPE_TEST & 0xff;
    buf[14] = seq >> 24;
    buf[15] = seq >> 16;
    buf[16] = seq >> 8;
    buf[17] = seq;
    for (size_t i = 18; i < len; i++) {
        buf[i] = (uint8_t)(i * 7 + seq * 13);
    }
}

static uint32_t frame_seq(GBytes *b)
{
    const uint8_t *p = g_bytes_get_data(b, NULL);

    return (uint32_t)p[14] << 24 | p[15] << 16 | p[16] << 8 | p[17];
}

static void check_frame(GBytes *b, size_t len, uint32_t seq)
{
    uint8_t want[1600];
    size_t got_len;
    const uint8_t *got = g_bytes_get_data(b, &got_len);

    ck_assert_uint_le(len, sizeof(want));
    make_frame(want, len, seq);
    ck_assert_uint_eq(got_len, len);
    ck_assert_msg(memcmp(got, want, len) == 0,
                  "frame %u of %zu bytes differs", seq, len);
}

static void setup(void)
{
    GError *err = NULL;

    tmpdir = g_dir_make_tmp("iovd-net-XXXXXX", &err);
    ck_assert_msg(tmpdir, "%s", err ? err->message : "");
    wake_timer = loop_timer_new(loop_main(), wake_noop, NULL);
    fake_nics = g_ptr_array_new();
}

static void teardown(void)
{
    GDir *d;
    const char *name;

    for (guint i = 0; i < fake_nics->len; i++) {
        fake_nic_free(g_ptr_array_index(fake_nics, i));
    }
    g_ptr_array_unref(fake_nics);
    net_cleanup_all();
    loop_timer_free(wake_timer);
    d = g_dir_open(tmpdir, 0, NULL);
    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(tmpdir, name, NULL);

        unlink(p);
    }
    if (d) {
        g_dir_close(d);
    }
    rmdir(tmpdir);
    g_free(tmpdir);
}

/* ---- the queue ---- */

START_TEST(test_queue_eagain_flush)
{
    NetClient *be = netdev_add("testbe,id=t0");
    FakeNic *nic = fake_nic_new("nic0", "t0");
    uint8_t buf[100];
    const unsigned total = NET_QUEUE_MAX_FRAMES + 44;

    ck_assert_ptr_eq(be->peer, nic->nc);
    ck_assert_ptr_eq(nic->nc->peer, be);
    ck_assert(net_client_can_send(be));

    /* Delivered directly while the NIC has buffers. */
    make_frame(buf, 60, 7);
    ck_assert_int_eq(net_send(be, buf, 60), 60);
    ck_assert_uint_eq(nic->frames->len, 1);
    check_frame(fake_frame(nic, 0), 60, 7);
    g_ptr_array_set_size(nic->frames, 0);

    /* No buffers: the first frame is offered once, the rest queue. */
    nic->eagain = true;
    nic->receive_calls = 0;
    for (unsigned i = 0; i < total; i++) {
        make_frame(buf, sizeof(buf), i);
        ck_assert_int_eq(net_send(be, buf, sizeof(buf)), 0);
    }
    ck_assert_uint_eq(nic->receive_calls, 1);
    ck_assert(nic->nc->receive_disabled);
    ck_assert_uint_eq(g_queue_get_length(&nic->nc->queue),
                      NET_QUEUE_MAX_FRAMES);
    ck_assert_uint_eq(nic->nc->stats.rx_dropped, total -
                      NET_QUEUE_MAX_FRAMES);
    ck_assert(!net_can_receive(nic->nc));
    ck_assert(!net_client_can_send(be));

    /* Still no buffers: flushing stops at the first frame. */
    net_flush_queue(nic->nc);
    ck_assert_uint_eq(g_queue_get_length(&nic->nc->queue),
                      NET_QUEUE_MAX_FRAMES);
    ck_assert_uint_eq(testbe(be)->writable_calls, 0);

    /* Buffers: everything queued arrives, in order; the backend resumes. */
    nic->eagain = false;
    net_flush_queue(nic->nc);
    ck_assert_uint_eq(nic->frames->len, NET_QUEUE_MAX_FRAMES);
    for (unsigned i = 0; i < NET_QUEUE_MAX_FRAMES; i++) {
        check_frame(fake_frame(nic, i), sizeof(buf), i);
    }
    ck_assert(g_queue_is_empty(&nic->nc->queue));
    ck_assert(!nic->nc->receive_disabled);
    ck_assert_uint_eq(testbe(be)->writable_calls, 1);
    ck_assert(net_client_can_send(be));
    ck_assert_uint_eq(nic->nc->stats.rx_frames, NET_QUEUE_MAX_FRAMES + 1);
    ck_assert_uint_eq(be->stats.tx_frames, NET_QUEUE_MAX_FRAMES + 1);
    ck_assert_uint_eq(nic->nc->stats.rx_bytes,
                      60 + NET_QUEUE_MAX_FRAMES * sizeof(buf));
}
END_TEST

START_TEST(test_queue_can_receive)
{
    NetClient *be = netdev_add("testbe,id=t0");
    FakeNic *nic = fake_nic_new("nic0", "t0");
    uint8_t buf[64];

    nic->no_buffers = true;
    ck_assert(!net_client_can_send(be));
    for (unsigned i = 0; i < 5; i++) {
        make_frame(buf, sizeof(buf), i);
        ck_assert_int_eq(net_send(be, buf, sizeof(buf)), 0);
    }
    ck_assert_uint_eq(nic->receive_calls, 0);
    ck_assert_uint_eq(g_queue_get_length(&nic->nc->queue), 5);
    net_flush_queue(nic->nc);
    ck_assert_uint_eq(nic->frames->len, 0);
    nic->no_buffers = false;
    net_flush_queue(nic->nc);
    ck_assert_uint_eq(nic->frames->len, 5);
    for (unsigned i = 0; i < 5; i++) {
        ck_assert_uint_eq(frame_seq(fake_frame(nic, i)), i);
    }
    ck_assert_uint_eq(testbe(be)->writable_calls, 1);

    /* A NIC reset drops what waits for it; counted. */
    nic->eagain = true;
    net_send(be, buf, sizeof(buf));
    net_send(be, buf, sizeof(buf));
    net_purge_queue(nic->nc);
    ck_assert(g_queue_is_empty(&nic->nc->queue));
    ck_assert_uint_eq(nic->nc->stats.rx_dropped, 2);
}
END_TEST

START_TEST(test_queue_nic_to_backend)
{
    NetClient *be = netdev_add("testbe,id=t0");
    FakeNic *nic = fake_nic_new("nic0", "t0");
    uint8_t buf[80];

    make_frame(buf, sizeof(buf), 1);
    ck_assert_int_eq(net_send(nic->nc, buf, sizeof(buf)), sizeof(buf));
    ck_assert_uint_eq(testbe(be)->frames->len, 1);

    testbe(be)->eagain = true;
    for (unsigned i = 2; i < 12; i++) {
        make_frame(buf, sizeof(buf), i);
        ck_assert_int_eq(net_send(nic->nc, buf, sizeof(buf)), 0);
    }
    ck_assert_uint_eq(g_queue_get_length(&be->queue), 10);
    ck_assert_uint_eq(nic->writable_calls, 0);
    testbe(be)->eagain = false;
    net_flush_queue(be);
    ck_assert_uint_eq(testbe(be)->frames->len, 11);
    for (unsigned i = 0; i < 11; i++) {
        ck_assert_uint_eq(frame_seq(g_ptr_array_index(testbe(be)->frames,
                                                      i)), i + 1);
    }
    ck_assert_uint_eq(nic->writable_calls, 1);
    ck_assert_uint_eq(nic->nc->stats.tx_frames, 11);

    /* Malformed frames are refused and counted. */
    ck_assert_int_eq(net_send(nic->nc, buf, 0), -EINVAL);
    ck_assert_int_eq(net_send(nic->nc, buf, NET_MAX_FRAME + 1), -EINVAL);
    ck_assert_uint_eq(nic->nc->stats.tx_errors, 2);
}
END_TEST

START_TEST(test_vnet_hdr_conversion)
{
    NetClient *be = netdev_add("testbe,id=t0,vnet=on");
    FakeNic *nic = fake_nic_new("nic0", "t0");
    uint8_t buf[200], hdr_frame[NET_VNET_HDR_LEN + 200];
    NetVnetHdr h = { 0 };
    size_t len;
    const uint8_t *p;

    ck_assert(net_has_vnet_hdr(be));
    ck_assert(net_has_vnet_hdr(nic->nc));
    ck_assert(!net_set_offloads(nic->nc, true, false, false, false, false));
    ck_assert(net_set_offloads(nic->nc, false, false, false, false, false));

    /* NIC without a header → backend with one: a zeroed header added. */
    make_frame(buf, 100, 3);
    ck_assert_int_eq(net_send(nic->nc, buf, 100), 100);
    p = g_bytes_get_data(g_ptr_array_index(testbe(be)->frames, 0), &len);
    ck_assert_uint_eq(len, NET_VNET_HDR_LEN + 100);
    for (int i = 0; i < NET_VNET_HDR_LEN; i++) {
        ck_assert_uint_eq(p[i], 0);
    }
    ck_assert(memcmp(p + NET_VNET_HDR_LEN, buf, 100) == 0);

    /* Backend with a header → NIC without: stripped. */
    memset(hdr_frame, 0, NET_VNET_HDR_LEN);
    make_frame(hdr_frame + NET_VNET_HDR_LEN, 100, 4);
    ck_assert_int_eq(net_send(be, hdr_frame, NET_VNET_HDR_LEN + 100),
                     NET_VNET_HDR_LEN + 100);
    check_frame(fake_frame(nic, 0), 100, 4);

    /* A partial checksum is completed on the way. */
    make_frame(buf, 100, 5);
    buf[40] = buf[41] = 0;  /* checksum field: csum_start 30, offset 10 */
    h.flags = NET_VNET_F_NEEDS_CSUM;
    h.csum_start = htole16(30);
    h.csum_offset = htole16(10);
    memcpy(hdr_frame, &h, sizeof(h));
    memcpy(hdr_frame + NET_VNET_HDR_LEN, buf, 100);
    ck_assert_int_eq(net_send(be, hdr_frame, NET_VNET_HDR_LEN + 100),
                     NET_VNET_HDR_LEN + 100);
    p = g_bytes_get_data(fake_frame(nic, 1), &len);
    ck_assert_uint_eq(len, 100);
    {
        uint32_t sum = 0;

        for (size_t i = 30; i < 100; i += 2) {
            sum += (p[i] << 8) | p[i + 1];
        }
        while (sum >> 16) {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        ck_assert_uint_eq(sum, 0xffff);     /* verifies */
    }

    /* A GSO frame cannot be given to a NIC that has no header. */
    h.flags = 0;
    h.gso_type = NET_VNET_GSO_TCPV4;
    memcpy(hdr_frame, &h, sizeof(h));
    ck_assert_int_eq(net_send(be, hdr_frame, NET_VNET_HDR_LEN + 100),
                     -EINVAL);
    ck_assert_uint_eq(nic->frames->len, 2);
    ck_assert_uint_eq(be->stats.tx_errors, 1);

    /* Both with a header: passed as is. */
    nic->nc->has_vnet_hdr = true;
    h.gso_type = NET_VNET_GSO_TCPV4;
    memcpy(hdr_frame, &h, sizeof(h));
    ck_assert_int_eq(net_send(be, hdr_frame, NET_VNET_HDR_LEN + 100),
                     NET_VNET_HDR_LEN + 100);
    p = g_bytes_get_data(fake_frame(nic, 2), &len);
    ck_assert_uint_eq(len, NET_VNET_HDR_LEN + 100);
    ck_assert(memcmp(p, hdr_frame, len) == 0);
}
END_TEST

/* ---- link, filter events, lifecycle ---- */

START_TEST(test_link)
{
    NetClient *be = netdev_add("testbe,id=t0");
    FakeNic *nic = fake_nic_new("nic0", "t0");
    GError *err = NULL;
    uint8_t buf[60];

    make_frame(buf, sizeof(buf), 0);
    ck_assert(net_link_up(nic->nc));

    ck_assert(net_set_link("nic0", false, &err));
    ck_assert_uint_eq(nic->link_events, 1);
    ck_assert(!net_link_up(nic->nc));
    /* Frames are consumed and counted, never delivered. */
    ck_assert_int_eq(net_send(nic->nc, buf, sizeof(buf)), sizeof(buf));
    ck_assert_int_eq(net_send(be, buf, sizeof(buf)), sizeof(buf));
    ck_assert_uint_eq(testbe(be)->frames->len, 0);
    ck_assert_uint_eq(nic->frames->len, 0);
    ck_assert_uint_eq(nic->nc->stats.tx_dropped, 1);
    ck_assert_uint_eq(be->stats.tx_dropped, 1);

    ck_assert(net_set_link("nic0", true, &err));
    ck_assert_uint_eq(nic->link_events, 2);
    ck_assert(net_link_up(nic->nc));

    /* The backend's link: the NIC follows (and is told). */
    ck_assert(net_set_link("t0", false, &err));
    ck_assert_uint_eq(nic->link_events, 3);
    ck_assert(!net_link_up(nic->nc));
    ck_assert(nic->nc->link_down);
    ck_assert(net_set_link("t0", true, &err));
    ck_assert_uint_eq(nic->link_events, 4);
    ck_assert(net_link_up(nic->nc));
    ck_assert_int_eq(net_send(nic->nc, buf, sizeof(buf)), sizeof(buf));
    ck_assert_uint_eq(testbe(be)->frames->len, 1);

    /* The carrier of the backend (a stream not connected). */
    net_backend_set_carrier(be, false);
    ck_assert_uint_eq(nic->link_events, 5);
    ck_assert(!net_link_up(nic->nc));
    net_backend_set_carrier(be, false);
    ck_assert_uint_eq(nic->link_events, 5);
    net_backend_set_carrier(be, true);
    ck_assert(net_link_up(nic->nc));

    ck_assert(!net_set_link("nope", false, &err));
    ck_assert_int_eq(err->code, IOVD_ERROR_DEVICE_NOT_FOUND);
    g_clear_error(&err);
}
END_TEST

static unsigned filter_events;
static NetClient *filter_event_nc;

static void filter_event(NetClient *nc)
{
    filter_events++;
    filter_event_nc = nc;
}

START_TEST(test_rx_filter_event)
{
    FakeNic *nic;
    NetRxFilterInfo info;
    GError *err = NULL;

    netdev_add("testbe,id=t0");
    nic = fake_nic_new("nic0", "t0");
    net_set_rx_filter_event_hook(filter_event);

    net_rx_filter_changed(nic->nc);
    ck_assert_uint_eq(filter_events, 1);
    ck_assert_ptr_eq(filter_event_nc, nic->nc);
    /* Once until queried. */
    net_rx_filter_changed(nic->nc);
    net_rx_filter_changed(nic->nc);
    ck_assert_uint_eq(filter_events, 1);

    ck_assert(net_query_rx_filter("nic0", &info, &err));
    ck_assert_uint_eq(nic->filter_queries, 1);
    ck_assert(info.broadcast_allowed);
    ck_assert_uint_eq(info.main_mac[5], 0x56);
    g_array_unref(info.unicast_table);
    g_array_unref(info.multicast_table);
    g_array_unref(info.vlan_table);

    net_rx_filter_changed(nic->nc);
    ck_assert_uint_eq(filter_events, 2);

    ck_assert(!net_query_rx_filter("t0", &info, &err));
    ck_assert_ptr_nonnull(strstr(err->message, "not a NIC"));
    g_clear_error(&err);
    ck_assert(!net_query_rx_filter("nope", &info, &err));
    ck_assert_int_eq(err->code, IOVD_ERROR_DEVICE_NOT_FOUND);
    g_clear_error(&err);
    net_set_rx_filter_event_hook(NULL);
}
END_TEST

static void count_client(NetClient *nc, void *opaque)
{
    (*(unsigned *)opaque)++;
}

START_TEST(test_backend_lifecycle)
{
    GError *err = NULL;
    NetClient *be = netdev_add("testbe,id=t0");
    FakeNic *nic, *other;
    unsigned n = 0;
    char *msg;
    uint8_t buf[60];

    msg = netdev_add_err("bogus,id=x");
    ck_assert_ptr_nonnull(strstr(msg, "unknown network backend type"));
    ck_assert_ptr_nonnull(strstr(msg, "stream, tap, testbe, user"));
    g_free(msg);
    msg = netdev_add_err("testbe");
    ck_assert_ptr_nonnull(strstr(msg, "'id'"));
    g_free(msg);
    msg = netdev_add_err("testbe,id=9x");
    ck_assert_ptr_nonnull(strstr(msg, "not a valid identifier"));
    g_free(msg);
    msg = netdev_add_err("testbe,id=t0");
    ck_assert_ptr_nonnull(strstr(msg, "duplicate"));
    g_free(msg);
    msg = netdev_add_err("testbe,id=t1,frobnicate=on");
    ck_assert_ptr_nonnull(strstr(msg, "frobnicate"));
    g_free(msg);
    ck_assert_ptr_null(net_backend_find("t1"));

    nic = fake_nic_new("nic0", "t0");
    ck_assert_ptr_null(net_nic_new(&fake_ops, "nic1", "fake-nic", "t0", loop_main(),
                                   NULL, &err));
    ck_assert_ptr_nonnull(strstr(err->message, "already in use by 'nic0'"));
    g_clear_error(&err);
    ck_assert_ptr_null(net_nic_new(&fake_ops, "nic1", "fake-nic", "nope", loop_main(),
                                   NULL, &err));
    ck_assert_ptr_nonnull(strstr(err->message, "not found"));
    g_clear_error(&err);
    other = fake_nic_new(NULL, NULL);   /* no backend, generated name */
    ck_assert_str_eq(other->nc->name, "fake-nic.0");
    ck_assert(net_link_up(other->nc));
    ck_assert_int_eq(net_send(other->nc, buf, sizeof(buf)), sizeof(buf));
    ck_assert_uint_eq(other->nc->stats.tx_dropped, 1);

    ck_assert_ptr_eq(net_client_find("nic0"), nic->nc);
    ck_assert_ptr_eq(net_client_find("t0"), be);
    net_client_foreach(count_client, &n);
    ck_assert_uint_eq(n, 3);

    /* Deleting a backend in use detaches the NIC: link down, no peer. */
    ck_assert(net_backend_delete("t0", &err));
    ck_assert_ptr_null(nic->nc->peer);
    ck_assert_uint_eq(nic->link_events, 1);
    ck_assert(!net_link_up(nic->nc));
    make_frame(buf, sizeof(buf), 0);
    ck_assert_int_eq(net_send(nic->nc, buf, sizeof(buf)), sizeof(buf));
    ck_assert(!net_backend_delete("t0", &err));
    ck_assert_int_eq(err->code, IOVD_ERROR_DEVICE_NOT_FOUND);
    g_clear_error(&err);

    /* The id is free again; a NIC freed releases its backend. */
    be = netdev_add("testbe,id=t0");
    g_ptr_array_remove(fake_nics, nic);
    fake_nic_free(nic);
    nic = fake_nic_new("nic2", "t0");
    ck_assert_ptr_eq(be->peer, nic->nc);
    g_ptr_array_remove(fake_nics, nic);
    fake_nic_free(nic);
    ck_assert_ptr_null(be->peer);
    ck_assert_uint_eq(testbe(be)->writable_calls, 1);
}
END_TEST

START_TEST(test_backend_help)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);

    ck_assert(net_print_backend_help(NULL, f, NULL));
    fclose(f);
    ck_assert_ptr_nonnull(strstr(text, "user:"));
    ck_assert_ptr_nonnull(strstr(text, "tap:"));
    ck_assert_ptr_nonnull(strstr(text, "stream:"));
    ck_assert_ptr_nonnull(strstr(text, "hostfwd"));
    ck_assert_ptr_nonnull(strstr(text, "pcap=FILE"));
    free(text);

    /* -netdev is registered once, however often net_init() runs. */
    net_init();
    net_init();
    ck_assert_ptr_nonnull(iovd_find_option("netdev"));
    text = NULL;
    f = open_memstream(&text, &size);
    iovd_print_options(f);
    fclose(f);
    ck_assert_ptr_eq(strstr(text, "-netdev user"),
                     g_strrstr(text, "-netdev user"));
    free(text);
}
END_TEST

/* ---- stream ---- */

/* Two NICs wired back to back through a stream server and client. */
typedef struct StreamPair {
    NetClient *srv, *cli;
    FakeNic *a, *b;             /* a on the server, b on the client */
} StreamPair;

static void stream_pair_unix(StreamPair *p, const char *srv_extra,
                             const char *cli_extra)
{
    g_autofree char *path = g_build_filename(tmpdir, "s.sock", NULL);

    p->srv = netdev_add("stream,id=s0,server=on,addr.type=unix,"
                        "addr.path=%s%s", path, srv_extra);
    p->a = fake_nic_new("nica", "s0");
    ck_assert(!net_link_up(p->a->nc));
    p->cli = netdev_add("stream,id=c0,addr.type=unix,addr.path=%s%s", path,
                        cli_extra);
    p->b = fake_nic_new("nicb", "c0");
    WAIT_FOR(net_link_up(p->a->nc) && net_link_up(p->b->nc));
    ck_assert(net_link_up(p->a->nc));
    ck_assert(net_link_up(p->b->nc));
    ck_assert_ptr_nonnull(strstr(p->srv->info_str, "connection on"));
    ck_assert_ptr_nonnull(strstr(p->cli->info_str, "connected to unix:"));
}

/* Send while the layer takes frames; wait for writable() when it queues. */
static void send_paced(FakeNic *from, const uint8_t *buf, size_t len)
{
    unsigned w = from->writable_calls;
    ssize_t ret = net_send(from->nc, buf, len);

    if (ret == 0) {
        WAIT_FOR(from->writable_calls != w);
        ck_assert_uint_ne(from->writable_calls, w);
    } else {
        ck_assert_int_eq(ret, len);
    }
}

static void stream_all_sizes(FakeNic *from, FakeNic *to)
{
    uint8_t buf[1514];
    const unsigned n = 1514 - 60 + 1;

    g_ptr_array_set_size(to->frames, 0);
    for (size_t len = 60; len <= 1514; len++) {
        make_frame(buf, len, len);
        send_paced(from, buf, len);
    }
    WAIT_FOR(to->frames->len >= n);
    ck_assert_uint_eq(to->frames->len, n);
    for (unsigned i = 0; i < n; i++) {
        check_frame(fake_frame(to, i), 60 + i, 60 + i);
    }
}

START_TEST(test_stream_unix_sizes)
{
    StreamPair p;

    stream_pair_unix(&p, "", "");
    stream_all_sizes(p.a, p.b);
    stream_all_sizes(p.b, p.a);
    ck_assert_uint_eq(p.a->nc->stats.tx_frames, 1455);
    ck_assert_uint_eq(p.srv->stats.rx_frames, 1455);
    ck_assert_uint_eq(p.cli->stats.tx_frames, 1455);
    ck_assert_uint_eq(p.b->nc->stats.rx_frames, 1455);
    ck_assert_uint_eq(p.srv->stats.rx_dropped + p.cli->stats.rx_dropped, 0);
}
END_TEST

START_TEST(test_stream_backpressure)
{
    StreamPair p;
    uint8_t buf[1514];
    const unsigned burst = 300, flood = 3000;
    uint32_t last;

    stream_pair_unix(&p, "", "");

    /*
     * b has no buffers: a's burst backs up through the client (which
     * stops reading), the socket, and the server's queue; nothing is
     * lost as long as it fits.
     */
    p.b->eagain = true;
    for (unsigned i = 0; i < burst; i++) {
        ssize_t ret;

        make_frame(buf, sizeof(buf), i);
        ret = net_send(p.a->nc, buf, sizeof(buf));
        ck_assert(ret == 0 || ret == sizeof(buf));
        if (i % 16 == 0) {
            pump();
        }
    }
    pump_ms(100);
    ck_assert_uint_eq(p.b->frames->len, 0);
    /* The client stopped reading after the first refused frame. */
    ck_assert_uint_eq(g_queue_get_length(&p.b->nc->queue), 1);
    ck_assert(!net_client_can_send(p.cli));
    p.b->eagain = false;
    while (p.b->frames->len < burst) {
        unsigned before = p.b->frames->len;

        net_flush_queue(p.b->nc);
        WAIT_FOR(p.b->frames->len != before);
        ck_assert_uint_ne(p.b->frames->len, before);
    }
    ck_assert_uint_eq(p.b->frames->len, burst);
    for (unsigned i = 0; i < burst; i++) {
        check_frame(fake_frame(p.b, i), sizeof(buf), i);
    }
    WAIT_FOR(g_queue_is_empty(&p.srv->queue) && p.a->writable_calls > 0);
    ck_assert_uint_gt(p.a->writable_calls, 0);
    ck_assert_uint_eq(p.srv->stats.rx_dropped, 0);

    /* A sender that ignores back-pressure: the overflow is counted. */
    g_ptr_array_set_size(p.b->frames, 0);
    p.b->eagain = true;
    for (unsigned i = 0; i < flood; i++) {
        make_frame(buf, sizeof(buf), i);
        net_send(p.a->nc, buf, sizeof(buf));
        if (i % 64 == 0) {
            pump();
        }
    }
    pump_ms(100);
    ck_assert_uint_gt(p.srv->stats.rx_dropped, 0);
    ck_assert_uint_le(g_queue_get_length(&p.srv->queue),
                      NET_QUEUE_MAX_FRAMES);
    p.b->eagain = false;
    for (;;) {
        unsigned before = p.b->frames->len;

        net_flush_queue(p.b->nc);
        if (p.b->frames->len + p.srv->stats.rx_dropped >= flood) {
            break;
        }
        WAIT_FOR(p.b->frames->len != before);
        if (p.b->frames->len == before) {
            break;
        }
    }
    ck_assert_uint_eq(p.b->frames->len + p.srv->stats.rx_dropped, flood);
    last = 0;
    for (unsigned i = 0; i < p.b->frames->len; i++) {
        uint32_t seq = frame_seq(fake_frame(p.b, i));

        ck_assert_msg(i == 0 || seq > last, "out of order at %u", i);
        check_frame(fake_frame(p.b, i), sizeof(buf), seq);
        last = seq;
    }
}
END_TEST

START_TEST(test_stream_reconnect)
{
    StreamPair p;
    g_autofree char *path = g_build_filename(tmpdir, "s.sock", NULL);
    unsigned events;
    uint8_t buf[100];

    stream_pair_unix(&p, "", ",reconnect-ms=50");
    events = p.b->link_events;

    /* The server goes: a is detached, b loses its carrier. */
    netdev_del("s0");
    ck_assert_ptr_null(p.a->nc->peer);
    ck_assert(!net_link_up(p.a->nc));
    WAIT_FOR(!net_link_up(p.b->nc));
    ck_assert(!net_link_up(p.b->nc));
    ck_assert_uint_gt(p.b->link_events, events);
    ck_assert_ptr_nonnull(strstr(p.cli->info_str, "not connected"));
    /* Frames sent meanwhile are dropped by the backend, counted. */
    make_frame(buf, sizeof(buf), 1);
    ck_assert_int_eq(net_send(p.b->nc, buf, sizeof(buf)), sizeof(buf));
    ck_assert_uint_eq(p.cli->stats.rx_dropped, 1);
    pump_ms(120);               /* a few failed attempts */

    /* It comes back: the client reconnects by itself. */
    p.srv = netdev_add("stream,id=s1,server=on,addr.type=unix,addr.path=%s",
                       path);
    p.a = fake_nic_new("nicc", "s1");
    WAIT_FOR(net_link_up(p.a->nc) && net_link_up(p.b->nc));
    ck_assert(net_link_up(p.b->nc));
    make_frame(buf, sizeof(buf), 2);
    ck_assert_int_eq(net_send(p.b->nc, buf, sizeof(buf)), sizeof(buf));
    WAIT_FOR(p.a->frames->len == 1);
    check_frame(fake_frame(p.a, 0), sizeof(buf), 2);

    /* The client goes: the server listens again for the next one. */
    netdev_del("c0");
    WAIT_FOR(!net_link_up(p.a->nc));
    ck_assert(!net_link_up(p.a->nc));
    ck_assert_ptr_nonnull(strstr(p.srv->info_str, "listening on"));
    p.cli = netdev_add("stream,id=c1,addr.type=unix,addr.path=%s", path);
    p.b = fake_nic_new("nicd", "c1");
    WAIT_FOR(net_link_up(p.a->nc) && net_link_up(p.b->nc));
    ck_assert(net_link_up(p.a->nc));
}
END_TEST

START_TEST(test_stream_tcp)
{
    NetClient *srv, *cli;
    FakeNic *a, *b;
    const char *port;
    uint8_t buf[1000];
    char *msg;

    srv = netdev_add("stream,id=s0,server=on,addr.type=inet,"
                     "addr.host=127.0.0.1,addr.port=0");
    port = strrchr(srv->info_str, ':');
    ck_assert_ptr_nonnull(port);
    ck_assert_int_gt(atoi(port + 1), 0);
    a = fake_nic_new("nica", "s0");
    cli = netdev_add("stream,id=c0,addr.type=inet,addr.host=localhost,"
                     "addr.port=%s", port + 1);
    b = fake_nic_new("nicb", "c0");
    WAIT_FOR(net_link_up(a->nc) && net_link_up(b->nc));
    ck_assert(net_link_up(b->nc));
    ck_assert_ptr_nonnull(strstr(cli->info_str, "127.0.0.1"));
    for (unsigned i = 0; i < 50; i++) {
        make_frame(buf, 60 + i * 19, i);
        send_paced(a, buf, 60 + i * 19);
        send_paced(b, buf, 60 + i * 19);
    }
    WAIT_FOR(a->frames->len == 50 && b->frames->len == 50);
    for (unsigned i = 0; i < 50; i++) {
        check_frame(fake_frame(a, i), 60 + i * 19, i);
        check_frame(fake_frame(b, i), 60 + i * 19, i);
    }

    /* Not loopback: refused unless asked for. */
    msg = netdev_add_err("stream,id=x,addr.type=inet,addr.host=192.0.2.1,"
                         "addr.port=5000");
    ck_assert_ptr_nonnull(strstr(msg, "allow-remote"));
    g_free(msg);
    netdev_add("stream,id=x,addr.type=inet,addr.host=192.0.2.1,"
               "addr.port=5000,allow-remote=on,reconnect-ms=0");
    msg = netdev_add_err("stream,id=y,addr.type=inet,addr.host=example.com,"
                         "addr.port=5000");
    ck_assert_ptr_nonnull(strstr(msg, "numeric"));
    g_free(msg);
    msg = netdev_add_err("stream,id=y,addr.type=inet,addr.host=127.0.0.1");
    ck_assert_ptr_nonnull(strstr(msg, "addr.port"));
    g_free(msg);
    msg = netdev_add_err("stream,id=y,addr.type=unix");
    ck_assert_ptr_nonnull(strstr(msg, "addr.path"));
    g_free(msg);
    msg = netdev_add_err("stream,id=y,addr.type=vsock");
    ck_assert_ptr_nonnull(strstr(msg, "addr.type"));
    g_free(msg);
}
END_TEST

START_TEST(test_stream_stale_socket)
{
    g_autofree char *path = g_build_filename(tmpdir, "stale.sock", NULL);
    g_autofree char *file = g_build_filename(tmpdir, "file", NULL);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    char *msg, *opts;
    struct stat st;

    /* A socket file left by a dead server is replaced. */
    g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    close(fd);
    netdev_add("stream,id=s0,server=on,addr.type=unix,addr.path=%s", path);
    /* A live one is not. */
    opts = g_strdup_printf("stream,id=s1,server=on,addr.type=unix,"
                           "addr.path=%s", path);
    msg = netdev_add_err(opts);
    ck_assert_ptr_nonnull(strstr(msg, "in use"));
    g_free(msg);
    g_free(opts);
    /* Nor is a regular file. */
    g_file_set_contents(file, "x", 1, NULL);
    opts = g_strdup_printf("stream,id=s1,server=on,addr.type=unix,"
                           "addr.path=%s", file);
    msg = netdev_add_err(opts);
    ck_assert_ptr_nonnull(strstr(msg, "not a socket"));
    g_free(msg);
    g_free(opts);
    /* The server removes its socket when deleted. */
    netdev_del("s0");
    ck_assert_int_ne(stat(path, &st), 0);
}
END_TEST

/* ---- pcap ---- */

typedef struct PcapRec {
    uint32_t ts_sec, ts_usec, incl_len, orig_len;
} PcapRec;

START_TEST(test_pcap)
{
    g_autofree char *path = g_build_filename(tmpdir, "s.sock", NULL);
    g_autofree char *cap = g_build_filename(tmpdir, "cap.pcap", NULL);
    g_autofree char *cap2 = g_build_filename(tmpdir, "cap2.pcap", NULL);
    g_autofree uint8_t *data = NULL;
    NetClient *be;
    FakeNic *a, *b, *c;
    uint8_t buf[1514], hdr_frame[NET_VNET_HDR_LEN + 300];
    gsize size, off;
    unsigned records = 0, seen[10] = { 0 };
    GError *err = NULL;
    char *msg;

    netdev_add("stream,id=s0,server=on,addr.type=unix,addr.path=%s,pcap=%s",
               path, cap);
    a = fake_nic_new("nica", "s0");
    netdev_add("stream,id=c0,addr.type=unix,addr.path=%s", path);
    b = fake_nic_new("nicb", "c0");
    WAIT_FOR(net_link_up(a->nc) && net_link_up(b->nc));
    for (unsigned i = 0; i < 10; i++) {
        make_frame(buf, 100 + i * 100, i);
        send_paced(a, buf, 100 + i * 100);
        send_paced(b, buf, 100 + i * 100);
    }
    WAIT_FOR(a->frames->len == 10 && b->frames->len == 10);
    netdev_del("s0");

    ck_assert(g_file_get_contents(cap, (char **)&data, &size, &err));
    ck_assert_uint_ge(size, 24);
    ck_assert_uint_eq(ldl_le_p(data), 0xa1b2c3d4);      /* host order */
    ck_assert_uint_eq(lduw_le_p(data + 4), 2);
    ck_assert_uint_eq(lduw_le_p(data + 6), 4);
    ck_assert_uint_ge(ldl_le_p(data + 16), 1514);       /* snaplen */
    ck_assert_uint_eq(ldl_le_p(data + 20), 1);          /* Ethernet */
    /* Each size twice (a's frame and b's), in no fixed order. */
    off = 24;
    while (off < size) {
        PcapRec r;
        unsigned i;

        ck_assert_uint_le(off + sizeof(r), size);
        memcpy(&r, data + off, sizeof(r));
        off += sizeof(r);
        ck_assert_uint_eq(r.incl_len, r.orig_len);
        ck_assert_uint_eq(r.incl_len % 100, 0);
        i = r.incl_len / 100 - 1;
        ck_assert_uint_lt(i, 10);
        ck_assert_uint_le(off + r.incl_len, size);
        make_frame(buf, r.incl_len, i);
        ck_assert(memcmp(data + off, buf, r.incl_len) == 0);
        ck_assert_uint_gt(r.ts_sec, 1600000000);
        off += r.incl_len;
        seen[i]++;
        records++;
    }
    for (unsigned i = 0; i < 10; i++) {
        ck_assert_uint_eq(seen[i], 2);
    }
    ck_assert_uint_eq(records, 20);

    /* A vnet header never reaches the capture. */
    be = netdev_add("testbe,id=t0,vnet=on,pcap=%s", cap2);
    c = fake_nic_new("nicc", "t0");
    memset(hdr_frame, 0, NET_VNET_HDR_LEN);
    make_frame(hdr_frame + NET_VNET_HDR_LEN, 300, 9);
    net_send(be, hdr_frame, sizeof(hdr_frame));
    ck_assert_uint_eq(c->frames->len, 1);
    netdev_del("t0");
    g_free(data);
    ck_assert(g_file_get_contents(cap2, (char **)&data, &size, &err));
    ck_assert_uint_eq(size, 24 + 16 + 300);
    ck_assert_uint_eq(ldl_le_p(data + 24 + 8), 300);
    ck_assert(memcmp(data + 40, hdr_frame + NET_VNET_HDR_LEN, 300) == 0);

    msg = netdev_add_err("testbe,id=t1,pcap=/nonexistent/dir/x.pcap");
    ck_assert_ptr_nonnull(strstr(msg, "pcap"));
    g_free(msg);
}
END_TEST

/* ---- user (slirp) ---- */

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

static uint16_t csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
    for (size_t i = 0; i + 1 < len; i += 2) {
        sum += (p[i] << 8) | p[i + 1];
    }
    if (len & 1) {
        sum += p[len - 1] << 8;
    }
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return sum;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = v >> 8;
    p[1] = v;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}

static uint16_t get16(const uint8_t *p)
{
    return p[0] << 8 | p[1];
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
}

/* Ethernet + IPv4 header (20 bytes) for a payload of @plen. */
static size_t build_ip(uint8_t *f, const uint8_t *dst_mac, uint8_t proto,
                       uint32_t src, uint32_t dst, size_t plen)
{
    uint8_t *ip = f + 14;

    memcpy(f, dst_mac, 6);
    memcpy(f + 6, guest_mac, 6);
    put16(f + 12, 0x0800);
    memset(ip, 0, 20);
    ip[0] = 0x45;
    put16(ip + 2, 20 + plen);
    ip[8] = 64;
    ip[9] = proto;
    put32(ip + 12, src);
    put32(ip + 16, dst);
    put16(ip + 10, ~csum_add(0, ip, 20));
    return 14 + 20;
}

static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

/* Find a frame matching @pred among those @f received since @from. */
static GBytes *find_frame(FakeNic *f, guint from,
                          bool (*pred)(const uint8_t *p, size_t len,
                                       void *opaque), void *opaque)
{
    for (guint i = from; i < f->frames->len; i++) {
        size_t len;
        const uint8_t *p = g_bytes_get_data(fake_frame(f, i), &len);

        if (pred(p, len, opaque)) {
            return fake_frame(f, i);
        }
    }
    return NULL;
}

static GBytes *wait_frame(FakeNic *f, guint from,
                          bool (*pred)(const uint8_t *p, size_t len,
                                       void *opaque), void *opaque)
{
    GBytes *b = NULL;

    WAIT_FOR((b = find_frame(f, from, pred, opaque)) != NULL);
    return b;
}

static bool is_dhcp_offer(const uint8_t *p, size_t len, void *opaque)
{
    const uint8_t *udp = p + 34, *bootp = p + 42;

    return len >= 42 + 240 && get16(p + 12) == 0x0800 && p[23] == 17 &&
           get16(udp) == 67 && get16(udp + 2) == 68 && bootp[0] == 2 &&
           get32(bootp + 4) == 0x12345678;
}

static void send_dhcp_discover(FakeNic *nic)
{
    /* Slirp reads a whole struct bootp_t: 236 bytes + 312 of options. */
    uint8_t f[14 + 20 + 8 + 548] = { 0 };
    uint8_t *udp = f + 34, *bootp = f + 42, *opt = bootp + 236;

    build_ip(f, bcast, 17, 0, 0xffffffff, 8 + 548);
    put16(udp, 68);
    put16(udp + 2, 67);
    put16(udp + 4, 8 + 548);
    bootp[0] = 1;               /* BOOTREQUEST */
    bootp[1] = 1;               /* Ethernet */
    bootp[2] = 6;
    put32(bootp + 4, 0x12345678);
    memcpy(bootp + 28, guest_mac, 6);
    put32(opt, 0x63825363);     /* magic cookie */
    opt[4] = 53;                /* DHCP message type */
    opt[5] = 1;
    opt[6] = 1;                 /* DISCOVER */
    opt[7] = 255;
    ck_assert_int_eq(net_send(nic->nc, f, sizeof(f)), sizeof(f));
}

START_TEST(test_user_dhcp)
{
    FakeNic *nic;
    GBytes *b;
    const uint8_t *p, *opt;
    size_t len;
    bool type_offer = false, server_id = false;

    netdev_add("user,id=u0");
    nic = fake_nic_new("nic0", "u0");
    send_dhcp_discover(nic);
    b = wait_frame(nic, 0, is_dhcp_offer, NULL);
    ck_assert_msg(b, "no DHCPOFFER");
    p = g_bytes_get_data(b, &len);
    ck_assert_uint_eq(get32(p + 42 + 16), 0x0a00020f);  /* yiaddr */
    ck_assert_uint_eq(get32(p + 26), 0x0a000202);       /* from host */
    ck_assert(memcmp(p + 42 + 28, guest_mac, 6) == 0);
    ck_assert_uint_eq(get32(p + 42 + 236), 0x63825363);
    for (opt = p + 42 + 240; opt < p + len && *opt != 255;
         opt += opt[0] ? 2 + opt[1] : 1) {
        if (opt[0] == 53 && opt[2] == 2) {
            type_offer = true;
        }
        if (opt[0] == 54 && get32(opt + 2) == 0x0a000202) {
            server_id = true;
        }
    }
    ck_assert(type_offer);
    ck_assert(server_id);
}
END_TEST

START_TEST(test_user_dhcp_custom_net)
{
    FakeNic *nic;
    GBytes *b;
    const uint8_t *p;
    char *msg;

    netdev_add("user,id=u0,net=192.168.76.0/24,dhcpstart=192.168.76.50,"
               "ipv6=off,restrict=on,hostname=guest");
    nic = fake_nic_new("nic0", "u0");
    send_dhcp_discover(nic);
    b = wait_frame(nic, 0, is_dhcp_offer, NULL);
    ck_assert_msg(b, "no DHCPOFFER");
    p = g_bytes_get_data(b, NULL);
    ck_assert_uint_eq(get32(p + 42 + 16), 0xc0a84c32);
    ck_assert_uint_eq(get32(p + 26), 0xc0a84c02);

    msg = netdev_add_err("user,id=x,net=10.0.2.1/24");
    ck_assert_ptr_nonnull(strstr(msg, "host bits"));
    g_free(msg);
    msg = netdev_add_err("user,id=x,net=10.0.2.0/24,dhcpstart=10.0.3.15");
    ck_assert_ptr_nonnull(strstr(msg, "not in the guest network"));
    g_free(msg);
    msg = netdev_add_err("user,id=x,net=banana");
    ck_assert_ptr_nonnull(strstr(msg, "'net'"));
    g_free(msg);
    msg = netdev_add_err("user,id=x,ipv4=off,ipv6=off");
    ck_assert_ptr_nonnull(strstr(msg, "nothing"));
    g_free(msg);
    netdev_add("user,id=x,net=10.9.0.0/255.255.0.0");
    ck_assert_ptr_nonnull(strstr(net_backend_find("x")->info_str,
                                 "net=10.9.0.0/16 host=10.9.0.2"));
}
END_TEST

static bool is_arp_reply(const uint8_t *p, size_t len, void *opaque)
{
    return len >= 42 && get16(p + 12) == 0x0806 && get16(p + 20) == 2 &&
           get32(p + 28) == *(uint32_t *)opaque;
}

static void send_arp(FakeNic *nic, uint16_t op, const uint8_t *dst_mac,
                     uint32_t sip, const uint8_t *tha, uint32_t tip)
{
    uint8_t f[60] = { 0 };

    memcpy(f, dst_mac, 6);
    memcpy(f + 6, guest_mac, 6);
    put16(f + 12, 0x0806);
    put16(f + 14, 1);
    put16(f + 16, 0x0800);
    f[18] = 6;
    f[19] = 4;
    put16(f + 20, op);
    memcpy(f + 22, guest_mac, 6);
    put32(f + 28, sip);
    if (tha) {
        memcpy(f + 32, tha, 6);
    }
    put32(f + 38, tip);
    ck_assert_int_eq(net_send(nic->nc, f, sizeof(f)), sizeof(f));
}

START_TEST(test_user_arp)
{
    FakeNic *nic;
    GBytes *b;
    const uint8_t *p;
    uint32_t gw = 0x0a000202;

    netdev_add("user,id=u0");
    nic = fake_nic_new("nic0", "u0");
    send_arp(nic, 1, bcast, 0x0a00020f, NULL, gw);
    b = wait_frame(nic, 0, is_arp_reply, &gw);
    ck_assert_msg(b, "no ARP reply");
    p = g_bytes_get_data(b, NULL);
    ck_assert(memcmp(p, guest_mac, 6) == 0);            /* to us */
    ck_assert(memcmp(p + 32, guest_mac, 6) == 0);       /* tha */
    ck_assert_uint_eq(get32(p + 38), 0x0a00020f);       /* tpa */
    ck_assert(memcmp(p + 22, p + 6, 6) == 0);           /* sha = src */
}
END_TEST

static bool is_arp_request_for_guest(const uint8_t *p, size_t len,
                                     void *opaque)
{
    return len >= 42 && get16(p + 12) == 0x0806 && get16(p + 20) == 1 &&
           get32(p + 38) == 0x0a00020f;
}

typedef struct TcpMatch {
    uint8_t flags;              /* all of these set */
    uint16_t dport;
    size_t payload;             /* at least */
} TcpMatch;

static bool is_tcp(const uint8_t *p, size_t len, void *opaque)
{
    TcpMatch *m = opaque;
    size_t ihl, doff, total;

    if (len < 54 || get16(p + 12) != 0x0800 || p[23] != 6) {
        return false;
    }
    ihl = (p[14] & 15) * 4;
    doff = (p[14 + ihl + 12] >> 4) * 4;
    total = get16(p + 16);
    return get16(p + 14 + ihl + 2) == m->dport &&
           (p[14 + ihl + 13] & m->flags) == m->flags &&
           total - ihl - doff >= m->payload;
}

/* A TCP segment from the guest (10.0.2.15:22) to @dst:@dport. */
static void send_tcp(FakeNic *nic, const uint8_t *dst_mac, uint32_t dst,
                     uint16_t dport, uint32_t seq, uint32_t ack,
                     uint8_t flags, const char *data)
{
    size_t dlen = data ? strlen(data) : 0;
    uint8_t f[14 + 20 + 20 + 64] = { 0 };
    uint8_t *tcp = f + 34, pseudo[12];
    uint32_t sum;

    build_ip(f, dst_mac, 6, 0x0a00020f, dst, 20 + dlen);
    put16(tcp, 22);
    put16(tcp + 2, dport);
    put32(tcp + 4, seq);
    put32(tcp + 8, ack);
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    put16(tcp + 14, 65535);
    if (dlen) {
        memcpy(tcp + 20, data, dlen);
    }
    put32(pseudo, 0x0a00020f);
    put32(pseudo + 4, dst);
    pseudo[8] = 0;
    pseudo[9] = 6;
    put16(pseudo + 10, 20 + dlen);
    sum = csum_add(0, pseudo, sizeof(pseudo));
    put16(tcp + 16, ~csum_add(sum, tcp, 20 + dlen));
    ck_assert_int_eq(net_send(nic->nc, f, 34 + 20 + dlen),
                     34 + 20 + dlen);
}

static int free_tcp_port(void)
{
    struct sockaddr_in sin = { .sin_family = AF_INET };
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    close(fd);
    return ntohs(sin.sin_port);
}

START_TEST(test_user_hostfwd)
{
    int port = free_tcp_port(), port2 = free_tcp_port();
    struct sockaddr_in sin = { .sin_family = AF_INET };
    FakeNic *nic;
    GBytes *b;
    const uint8_t *p, *tcp;
    uint8_t slirp_mac[6];
    uint32_t slirp_ip, their_seq, my_seq = 1000;
    uint16_t their_port;
    TcpMatch syn = { .flags = 0x02, .dport = 22 };
    TcpMatch data = { .flags = 0x10, .dport = 22, .payload = 4 };
    char rx[16];
    int fd, n = -1;
    char *msg;

    netdev_add("user,id=u0,hostfwd=tcp:127.0.0.1:%d-:22,"
               "hostfwd.0=udp:127.0.0.1:%d-10.0.2.15:53", port, port2);
    ck_assert_ptr_nonnull(strstr(net_backend_find("u0")->info_str,
                                 "hostfwd=udp:"));
    nic = fake_nic_new("nic0", "u0");

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons(port);
    ck_assert(connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 ||
              errno == EINPROGRESS);

    /* Slirp asks who 10.0.2.15 is before it can send the SYN. */
    b = wait_frame(nic, 0, is_arp_request_for_guest, NULL);
    ck_assert_msg(b, "no ARP request for the guest");
    p = g_bytes_get_data(b, NULL);
    memcpy(slirp_mac, p + 22, 6);
    send_arp(nic, 2, slirp_mac, 0x0a00020f, slirp_mac, get32(p + 28));

    b = wait_frame(nic, 0, is_tcp, &syn);
    ck_assert_msg(b, "no SYN to the guest");
    p = g_bytes_get_data(b, NULL);
    tcp = p + 34;
    ck_assert_uint_eq(get32(p + 30), 0x0a00020f);
    ck_assert_uint_eq(p[34 + 13] & 0x12, 0x02);         /* SYN, no ACK */
    slirp_ip = get32(p + 26);
    their_port = get16(tcp);
    their_seq = get32(tcp + 4);

    /* The guest accepts, and says "ping". */
    send_tcp(nic, slirp_mac, slirp_ip, their_port, my_seq, their_seq + 1,
             0x12, NULL);
    my_seq++;
    send_tcp(nic, slirp_mac, slirp_ip, their_port, my_seq, their_seq + 1,
             0x18, "ping");
    my_seq += 4;
    WAIT_FOR((n = read(fd, rx, sizeof(rx))) > 0);
    ck_assert_int_eq(n, 4);
    ck_assert(memcmp(rx, "ping", 4) == 0);

    /* The host answers "pong": a data segment reaches the guest. */
    ck_assert_int_eq(write(fd, "pong", 4), 4);
    b = wait_frame(nic, 0, is_tcp, &data);
    ck_assert_msg(b, "no data segment to the guest");
    p = g_bytes_get_data(b, NULL);
    ck_assert(memcmp(p + 34 + (p[34 + 12] >> 4) * 4, "pong", 4) == 0);
    ck_assert_uint_eq(get32(p + 34 + 8), my_seq);       /* acks our data */
    close(fd);

    /* QMP's list of String flattens to hostfwd.N.str. */
    netdev_add("user,id=u1,hostfwd.0.str=tcp:127.0.0.1:%d-:23,"
               "hostfwd.1=tcp:127.0.0.1:%d-:24", free_tcp_port(),
               free_tcp_port());
    ck_assert_ptr_nonnull(strstr(net_backend_find("u1")->info_str,
                                 "-:23 hostfwd=tcp:127.0.0.1:"));
    msg = netdev_add_err("user,id=x,hostfwd.0=tcp::22-:22,"
                         "hostfwd.0.str=tcp::23-:23");
    ck_assert_ptr_nonnull(strstr(msg, "same index"));
    g_free(msg);
    msg = netdev_add_err("user,id=x,hostfwd=tcp:127.0.0.1:99999-:22");
    ck_assert_ptr_nonnull(strstr(msg, "hostfwd"));
    g_free(msg);
    msg = netdev_add_err("user,id=x,hostfwd=sctp::22-:22");
    ck_assert_ptr_nonnull(strstr(msg, "hostfwd"));
    g_free(msg);
    msg = netdev_add_err("user,id=x,hostfwd.a=tcp::22-:22");
    ck_assert_ptr_nonnull(strstr(msg, "hostfwd.N"));
    g_free(msg);
    {
        g_autofree char *busy = g_strdup_printf(
            "user,id=x,hostfwd=tcp:127.0.0.1:%d-:22", port);

        msg = netdev_add_err(busy);
        ck_assert_ptr_nonnull(strstr(msg, "cannot forward"));
        g_free(msg);
    }
}
END_TEST

static bool is_udp_to_guest(const uint8_t *p, size_t len, void *opaque)
{
    return len >= 42 + 4 && get16(p + 12) == 0x0800 && p[23] == 17 &&
           get32(p + 30) == 0x0a00020f && get16(p + 36) == 53;
}

/*
 * The NIC's back-pressure holds slirp's host side: datagrams wait in the
 * host socket instead of overflowing the NIC's queue.
 */
START_TEST(test_user_backpressure)
{
    int port = free_tcp_port();
    struct sockaddr_in sin = { .sin_family = AF_INET };
    const unsigned n = 200;
    FakeNic *nic;
    int fd;

    netdev_add("user,id=u0,hostfwd=udp:127.0.0.1:%d-:53", port);
    nic = fake_nic_new("nic0", "u0");
    /* Teach slirp the guest's MAC first (gratuitous ARP). */
    send_arp(nic, 1, bcast, 0x0a00020f, NULL, 0x0a00020f);
    pump_ms(20);

    nic->eagain = true;
    fd = socket(AF_INET, SOCK_DGRAM, 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons(port);
    for (unsigned i = 0; i < n; i++) {
        uint8_t d[64] = { 0 };

        put32(d, i);
        ck_assert_int_eq(sendto(fd, d, sizeof(d), 0,
                                (struct sockaddr *)&sin, sizeof(sin)),
                         sizeof(d));
    }
    pump_ms(200);
    ck_assert_uint_eq(nic->frames->len, 0);
    ck_assert_uint_le(g_queue_get_length(&nic->nc->queue), 2);
    ck_assert_uint_eq(nic->nc->stats.rx_dropped, 0);

    nic->eagain = false;
    net_flush_queue(nic->nc);
    WAIT_FOR(nic->frames->len >= n);
    ck_assert_uint_eq(nic->frames->len, n);
    for (unsigned i = 0; i < n; i++) {
        size_t len;
        const uint8_t *p = g_bytes_get_data(fake_frame(nic, i), &len);

        ck_assert(is_udp_to_guest(p, len, NULL));
        ck_assert_uint_eq(get32(p + 42), i);
    }
    ck_assert_uint_eq(nic->nc->stats.rx_dropped, 0);
    close(fd);
}
END_TEST

/* Idle backends leave the loop asleep: no busy loop, no ticking. */
START_TEST(test_idle)
{
    g_autofree char *path = g_build_filename(tmpdir, "s.sock", NULL);
    FakeNic *nic;
    StreamPair p;
    unsigned iterations = 0;
    int64_t deadline;

    netdev_add("user,id=u0,hostfwd=tcp:127.0.0.1:%d-:22", free_tcp_port());
    nic = fake_nic_new("nic0", "u0");
    send_dhcp_discover(nic);
    WAIT_FOR(find_frame(nic, 0, is_dhcp_offer, NULL));
    stream_pair_unix(&p, "", "");
    pump_ms(50);

    loop_timer_del(wake_timer);
    deadline = clock_ns() + 1000000000LL;
    loop_timer_mod(wake_timer, deadline);
    while (clock_ns() < deadline) {
        loop_iterate(loop_main(), true);
        iterations++;
    }
    ck_assert_msg(iterations < 10, "%u loop iterations in 1 s idle",
                  iterations);
}
END_TEST

/* ---- tap, inside a network namespace ---- */

#define SKIP_EXIT 77

static void tap_report(int fd, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void tap_report(int fd, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *s = NULL;

    va_start(ap, fmt);
    s = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (write(fd, s, strlen(s)) < 0) {
        /* the parent will see a bare exit status */
    }
}

#define TAP_CHECK(cond, ...) \
    do { \
        if (!(cond)) { \
            tap_report(rep, __VA_ARGS__); \
            _exit(1); \
        } \
    } while (0)

static bool tap_pkt_wait(int pfd, uint8_t *buf, size_t size, ssize_t *len)
{
    int64_t dl = clock_ns() + WAIT_NS;

    while (clock_ns() < dl) {
        struct pollfd p = { .fd = pfd, .events = POLLIN };

        pump();
        if (poll(&p, 1, 0) == 1) {
            *len = recv(pfd, buf, size, 0);
            if (*len > 14 && get16(buf + 12) == ETH_TYPE_TEST) {
                return true;
            }
        }
    }
    return false;
}

static GBytes *tap_nic_wait(FakeNic *nic, size_t hdr)
{
    int64_t dl = clock_ns() + WAIT_NS;

    while (clock_ns() < dl) {
        for (guint i = 0; i < nic->frames->len; i++) {
            size_t len;
            const uint8_t *p = g_bytes_get_data(fake_frame(nic, i), &len);

            if (len > hdr + 14 && get16(p + hdr + 12) == ETH_TYPE_TEST) {
                return fake_frame(nic, i);
            }
        }
        pump();
    }
    return NULL;
}

/* Enter a network namespace of our own; exit SKIP_EXIT where we cannot. */
static void tap_enter_netns(int rep)
{
    if (access("/dev/net/tun", R_OK | W_OK) < 0) {
        tap_report(rep, "/dev/net/tun: %s", g_strerror(errno));
        _exit(SKIP_EXIT);
    }
    if (unshare(CLONE_NEWNET) < 0) {
        tap_report(rep, "unshare(CLONE_NEWNET): %s", g_strerror(errno));
        _exit(SKIP_EXIT);
    }
}

/*
 * Bring interface @ifname up; a packet socket on it, playing the rest of
 * the network.
 */
static int tap_host_socket(int rep, const char *ifname)
{
    struct ifreq ifr = { 0 };
    struct sockaddr_ll sll = { .sll_family = AF_PACKET };
    int sock = socket(AF_INET, SOCK_DGRAM, 0);
    int pfd;

    g_strlcpy(ifr.ifr_name, ifname, IFNAMSIZ);
    TAP_CHECK(ioctl(sock, SIOCGIFFLAGS, &ifr) == 0, "%s: SIOCGIFFLAGS: %s",
              ifname, g_strerror(errno));
    ifr.ifr_flags |= IFF_UP;
    TAP_CHECK(ioctl(sock, SIOCSIFFLAGS, &ifr) == 0, "%s: SIOCSIFFLAGS: %s",
              ifname, g_strerror(errno));
    close(sock);
    pfd = socket(AF_PACKET, SOCK_RAW, htons(ETH_TYPE_TEST));
    TAP_CHECK(pfd >= 0, "AF_PACKET: %s", g_strerror(errno));
    sll.sll_protocol = htons(ETH_TYPE_TEST);
    sll.sll_ifindex = if_nametoindex(ifname);
    TAP_CHECK(bind(pfd, (struct sockaddr *)&sll, sizeof(sll)) == 0,
              "%s: bind: %s", ifname, g_strerror(errno));
    return pfd;
}

/*
 * A 300-byte frame each way between @nic and the host's packet socket
 * @pfd, numbered @seq and @seq + 1.  The NIC's frames start with a vnet
 * header of @hdr bytes (0: none); @what names the case in failures.
 */
static void tap_exchange(int rep, FakeNic *nic, int pfd, size_t hdr,
                         uint32_t seq, const char *what)
{
    uint8_t buf[2048], frame[300], out[NET_VNET_HDR_LEN + 300];
    ssize_t len;
    GBytes *b;
    const uint8_t *p;
    size_t plen;

    /* NIC → tap → host */
    memset(out, 0, hdr);
    make_frame(out + hdr, sizeof(frame), seq);
    TAP_CHECK(net_send(nic->nc, out, hdr + sizeof(frame)) ==
              (ssize_t)(hdr + sizeof(frame)), "%s: net_send to the tap",
              what);
    TAP_CHECK(tap_pkt_wait(pfd, buf, sizeof(buf), &len),
              "%s: the host saw no frame from the NIC", what);
    TAP_CHECK(len == sizeof(frame) && !memcmp(buf, out + hdr, len),
              "%s: the host got %zd bytes, not the frame", what, len);
    /* host → tap → NIC */
    make_frame(frame, sizeof(frame), seq + 1);
    TAP_CHECK(send(pfd, frame, sizeof(frame), 0) == sizeof(frame),
              "%s: send: %s", what, g_strerror(errno));
    b = tap_nic_wait(nic, hdr);
    TAP_CHECK(b, "%s: the NIC saw no frame from the host", what);
    p = g_bytes_get_data(b, &plen);
    TAP_CHECK(plen == hdr + sizeof(frame) &&
              !memcmp(p + hdr, frame, sizeof(frame)),
              "%s: the NIC got %zu bytes, not the frame", what, plen);
}

/* The tap has a vnet header; the NIC uses it and sets offloads. */
static void tap_check_vnet_hdr(int rep, FakeNic *nic)
{
    TAP_CHECK(net_has_vnet_hdr(nic->nc), "no vnet header");
    nic->nc->has_vnet_hdr = true;
    TAP_CHECK(net_set_offloads(nic->nc, true, true, true, false, false),
              "TUNSETOFFLOAD");
    TAP_CHECK(net_set_offloads(nic->nc, false, false, false, false, false),
              "TUNSETOFFLOAD 0");
}

/* Runs in a child inside its own network namespace. */
static void tap_child(int rep)
{
    g_autoptr(Keyval) kv = NULL;
    GError *err = NULL;
    NetClient *be;
    FakeNic *nic;
    int pfd;

    tap_enter_netns(rep);
    kv = keyval_parse("tap,id=t0,ifname=iovdtap0,vnet_hdr=off,script=no",
                      "type", &err);
    be = net_backend_create(kv, &err);
    if (!be) {
        tap_report(rep, "cannot create a tap: %s", err->message);
        _exit(strstr(err->message, "Operation not permitted") ? SKIP_EXIT
              : 1);
    }
    TAP_CHECK(strstr(be->info_str, "ifname=iovdtap0 vnet_hdr=off"),
              "info: %s", be->info_str);
    nic = fake_nic_new("nic0", "t0");
    pfd = tap_host_socket(rep, "iovdtap0");
    tap_exchange(rep, nic, pfd, 0, 1, "vnet_hdr=off");

    /* vnet_hdr=on with a NIC that uses the header; offloads. */
    g_ptr_array_remove(fake_nics, nic);
    fake_nic_free(nic);
    net_backend_delete("t0", NULL);
    close(pfd);
    g_clear_pointer(&kv, keyval_free);
    kv = keyval_parse("tap,id=t1,ifname=iovdtap1,vnet_hdr=on", "type", &err);
    be = net_backend_create(kv, &err);
    TAP_CHECK(be, "vnet_hdr=on: %s", err ? err->message : "");
    nic = fake_nic_new("nic1", "t1");
    tap_check_vnet_hdr(rep, nic);
    pfd = tap_host_socket(rep, "iovdtap1");
    tap_exchange(rep, nic, pfd, NET_VNET_HDR_LEN, 3, "vnet_hdr=on");

    g_clear_pointer(&kv, keyval_free);
    kv = keyval_parse("tap,id=t2,script=/etc/qemu-ifup", "type", &err);
    TAP_CHECK(!net_backend_create(kv, &err) &&
              strstr(err->message, "script=no"), "script= accepted");
    _exit(0);
}

START_TEST(test_tap)
{
    int pipefd[2];
    pid_t pid;
    int status;
    char msg[512] = "";
    ssize_t n;

    ck_assert_int_eq(pipe(pipefd), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(pipefd[0]);
        tap_child(pipefd[1]);
        _exit(1);
    }
    close(pipefd[1]);
    n = read(pipefd[0], msg, sizeof(msg) - 1);
    msg[n > 0 ? n : 0] = '\0';
    close(pipefd[0]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    if (WEXITSTATUS(status) == SKIP_EXIT) {
        printf("SKIP: test_tap: %s\n", msg);
        fflush(stdout);
        return;
    }
    ck_assert_msg(WEXITSTATUS(status) == 0, "tap: %s", msg);
}
END_TEST

/* ---- checksums and iovec slices ---- */

START_TEST(test_checksum)
{
    /* RFC 1071's example, and an IPv4 header with its checksum zeroed */
    static const uint8_t rfc[] = { 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5,
                                   0xf6, 0xf7 };
    static const uint8_t ip[] = {
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
        0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
    };
    uint8_t frame[41];
    struct iovec iov[4];

    ck_assert_uint_eq(net_checksum_add(0, rfc, sizeof(rfc)), 0xddf2);
    ck_assert_uint_eq(net_checksum_finish(net_checksum_add(0, ip,
                                                           sizeof(ip))),
                      0xb861);
    /* the sum of a header with its checksum in place folds to 0xffff */
    memcpy(frame, ip, sizeof(ip));
    stw_be_p(frame + 10, 0xb861);
    ck_assert_uint_eq(net_checksum_fold(net_checksum_add(0, frame, 20)),
                      0xffff);
    /* an odd length pads with zero; partial sums continue */
    ck_assert_uint_eq(net_checksum_add(0, rfc, 3),
                      net_checksum_add(net_checksum_add(0, rfc, 2), "\xf2",
                                       1));
    /* iovecs split at odd places sum as one buffer, from any offset */
    for (size_t i = 0; i < sizeof(frame); i++) {
        frame[i] = i * 37 + 11;
    }
    iov[0] = (struct iovec) { frame, 3 };
    iov[1] = (struct iovec) { frame + 3, 0 };
    iov[2] = (struct iovec) { frame + 3, 17 };
    iov[3] = (struct iovec) { frame + 20, sizeof(frame) - 20 };
    for (size_t off = 0; off < sizeof(frame); off++) {
        ck_assert_uint_eq(net_checksum_iov(iov, 4, off),
                          net_checksum_finish(net_checksum_add(
                              0, frame + off, sizeof(frame) - off)));
    }
}
END_TEST

START_TEST(test_iov_slice)
{
    uint8_t buf[10];
    struct iovec src[3] = {
        { buf, 2 }, { buf + 2, 5 }, { buf + 7, 3 },
    };
    struct iovec dst[3];

    /* bytes 1..7: the end of the first, all of the second, one more */
    ck_assert_int_eq(iov_slice(dst, 3, src, 3, 1, 7), 3);
    ck_assert_ptr_eq(dst[0].iov_base, buf + 1);
    ck_assert_uint_eq(dst[0].iov_len, 1);
    ck_assert_uint_eq(dst[1].iov_len, 5);
    ck_assert_ptr_eq(dst[2].iov_base, buf + 7);
    ck_assert_uint_eq(dst[2].iov_len, 1);
    /* to the end, and not enough room */
    ck_assert_int_eq(iov_slice(dst, 3, src, 3, 2, SIZE_MAX), 2);
    ck_assert_ptr_eq(dst[0].iov_base, buf + 2);
    ck_assert_int_eq(iov_slice(dst, 2, src, 3, 0, SIZE_MAX), -1);
    /* past the end: nothing */
    ck_assert_int_eq(iov_slice(dst, 3, src, 3, 10, SIZE_MAX), 0);
}
END_TEST

static Suite *net_suite(void)
{
    Suite *s = suite_create("net");
    TCase *tc;

    net_backend_driver_register(&testbe_driver);

    tc = tcase_create("helpers");
    tcase_add_test(tc, test_checksum);
    tcase_add_test(tc, test_iov_slice);
    suite_add_tcase(s, tc);

    tc = tcase_create("core");
    tcase_add_checked_fixture(tc, unit_loop_setup, unit_loop_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_queue_eagain_flush);
    tcase_add_test(tc, test_queue_can_receive);
    tcase_add_test(tc, test_queue_nic_to_backend);
    tcase_add_test(tc, test_vnet_hdr_conversion);
    tcase_add_test(tc, test_link);
    tcase_add_test(tc, test_rx_filter_event);
    tcase_add_test(tc, test_backend_lifecycle);
    tcase_add_test(tc, test_backend_help);
    suite_add_tcase(s, tc);

    tc = tcase_create("stream");
    tcase_add_checked_fixture(tc, unit_loop_setup, unit_loop_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_stream_unix_sizes);
    tcase_add_test(tc, test_stream_backpressure);
    tcase_add_test(tc, test_stream_reconnect);
    tcase_add_test(tc, test_stream_tcp);
    tcase_add_test(tc, test_stream_stale_socket);
    tcase_add_test(tc, test_pcap);
    suite_add_tcase(s, tc);

    tc = tcase_create("user");
    tcase_add_checked_fixture(tc, unit_loop_setup, unit_loop_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_user_dhcp);
    tcase_add_test(tc, test_user_dhcp_custom_net);
    tcase_add_test(tc, test_user_arp);
    tcase_add_test(tc, test_user_hostfwd);
    tcase_add_test(tc, test_user_backpressure);
    tcase_add_test(tc, test_idle);
    suite_add_tcase(s, tc);

    tc = tcase_create("tap");
    tcase_add_checked_fixture(tc, unit_loop_setup, unit_loop_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_tap);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(net_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
