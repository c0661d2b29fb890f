/*
 * Unit tests for the vfio-user server's message validation (hw/vfio-user),
 * without spawning the daemon: a pci-testdev is created in-process with
 * device_create(), the test connects to its socket as the client and
 * drives the server by iterating the main loop while it waits for replies.
 */
#include <check.h>
#include "unit-loop.h"
#include <dirent.h>
#include <json-c/json.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "hw/vfio-user/vfio-user-int.h"
#include "hw/misc/pci-testdev-regs.h"
#include "util/keyval.h"
#include "util/loop.h"

#define TIMEOUT_MS      5000
#define QUIET_MS        100         /* "no reply" means none within this */

#define REGION_CONFIG   VFIO_PCI_CONFIG_REGION_INDEX

static char *tmpdir;                /* made once, in the runner process */
static char *sock_path;

static Device *dev;
static VfuServer *srv;
static int cfd = -1;
static uint16_t next_id = 1;

typedef struct Reply {
    VfuHdr hdr;
    uint8_t *payload;
    uint32_t len;
    int fds[8];
    unsigned nfds;
} Reply;

/* ---- plumbing ----------------------------------------------------------- */

static bool pump(void)
{
    if (!loop_iterate(loop_main(), false)) {
        g_usleep(100);
        return false;
    }
    return true;
}

static unsigned count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    unsigned n = 0;

    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d))) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

static int client_connect(void)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    g_strlcpy(sa.sun_path, sock_path, sizeof(sa.sun_path));
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
    return fd;
}

/* Iterate until the server has (or has not) a client. */
static void wait_attached(bool attached)
{
    int64_t deadline = clock_ns() + TIMEOUT_MS * 1000000LL;

    while ((srv->client_fd >= 0) != attached && clock_ns() < deadline) {
        pump();
    }
    ck_assert_msg((srv->client_fd >= 0) == attached,
                  "server did not %s the client",
                  attached ? "accept" : "drop");
}

static void reconnect(void)
{
    close(cfd);
    wait_attached(false);
    cfd = client_connect();
    wait_attached(true);
}

/* Send all of @buf, the fds with the first byte; the loop runs meanwhile. */
static void send_raw(const void *buf, size_t len, const int *fds,
                     unsigned nfds)
{
    size_t off = 0;
    int64_t deadline = clock_ns() + TIMEOUT_MS * 1000000LL;
    char *ctrl = NULL;

    if (nfds) {
        ctrl = g_malloc0(CMSG_SPACE(sizeof(int) * nfds));
    }
    while (off < len) {
        struct iovec iov = {
            .iov_base = (uint8_t *)buf + off, .iov_len = len - off,
        };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        ssize_t n;

        if (off == 0 && nfds) {
            struct cmsghdr *c;

            mh.msg_control = ctrl;
            mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
            c = CMSG_FIRSTHDR(&mh);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
            memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
        }
        n = sendmsg(cfd, &mh, MSG_NOSIGNAL);
        if (n < 0) {
            ck_assert_msg(errno == EAGAIN || errno == EINTR,
                          "sendmsg: %s", g_strerror(errno));
            ck_assert_msg(clock_ns() < deadline, "send timed out");
            pump();
            continue;
        }
        off += n;
    }
    g_free(ctrl);
}

static uint16_t send_msg_fds(uint16_t cmd, uint32_t flags,
                             const void *payload, size_t len,
                             const int *fds, unsigned nfds)
{
    g_autofree uint8_t *buf = g_malloc0(VFU_HDR_SIZE + len);
    VfuHdr *h = (VfuHdr *)buf;
    uint16_t id = next_id++;

    h->msg_id = id;
    h->cmd = cmd;
    h->size = VFU_HDR_SIZE + len;
    h->flags = flags;
    if (len) {
        memcpy(buf + VFU_HDR_SIZE, payload, len);
    }
    send_raw(buf, VFU_HDR_SIZE + len, fds, nfds);
    return id;
}

static uint16_t send_msg(uint16_t cmd, const void *payload, size_t len)
{
    return send_msg_fds(cmd, VFU_FLAG_REQUEST, payload, len, NULL, 0);
}

static void reply_free(Reply *r)
{
    for (unsigned i = 0; i < r->nfds; i++) {
        if (r->fds[i] >= 0) {
            close(r->fds[i]);
        }
    }
    g_free(r->payload);
    memset(r, 0, sizeof(*r));
}

/*
 * Receive up to @len bytes into @buf, collecting fds.  Returns the count,
 * 0 on EOF, -1 when nothing is available.
 */
static ssize_t recv_some(Reply *r, void *buf, size_t len)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * 8)];
        struct cmsghdr align;
    } u;
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = u.buf, .msg_controllen = sizeof(u.buf),
    };
    ssize_t n = recvmsg(cfd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

    if (n < 0) {
        ck_assert_msg(errno == EAGAIN || errno == EINTR,
                      "recvmsg: %s", g_strerror(errno));
        return -1;
    }
    ck_assert(!(mh.msg_flags & MSG_CTRUNC));
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            unsigned cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

            for (unsigned i = 0; i < cnt; i++) {
                ck_assert_uint_lt(r->nfds, ARRAY_SIZE(r->fds));
                memcpy(&r->fds[r->nfds++], CMSG_DATA(c) + i * sizeof(int),
                       sizeof(int));
            }
        }
    }
    return n;
}

/*
 * Wait up to @timeout_ms for one whole message from the server.  Returns 1
 * with *r filled, 0 on timeout (nothing at all received), -1 on EOF.
 */
static int recv_reply(Reply *r, int timeout_ms)
{
    int64_t deadline = clock_ns() + timeout_ms * 1000000LL;
    size_t got = 0, need = VFU_HDR_SIZE;

    memset(r, 0, sizeof(*r));
    for (;;) {
        uint8_t *dst;
        ssize_t n;

        if (got < VFU_HDR_SIZE) {
            dst = (uint8_t *)&r->hdr + got;
        } else {
            dst = r->payload + (got - VFU_HDR_SIZE);
        }
        n = recv_some(r, dst, need - got);
        if (n == 0) {
            ck_assert_msg(got == 0, "EOF inside a message");
            return -1;
        }
        if (n < 0) {
            if (clock_ns() >= deadline) {
                ck_assert_msg(got == 0, "timeout inside a message");
                return 0;
            }
            pump();
            continue;
        }
        got += n;
        if (got == VFU_HDR_SIZE) {
            ck_assert_uint_ge(r->hdr.size, VFU_HDR_SIZE);
            ck_assert_uint_le(r->hdr.size, VFU_MAX_MSG_SIZE);
            need = r->hdr.size;
            r->len = need - VFU_HDR_SIZE;
            r->payload = g_malloc0(r->len + 1);
        }
        if (got == need) {
            return 1;
        }
    }
}

/* The reply to request @id must arrive next and succeed. */
static void expect_reply(Reply *r, uint16_t id, uint16_t cmd)
{
    ck_assert_msg(recv_reply(r, TIMEOUT_MS) == 1, "no reply to msg %u", id);
    ck_assert_uint_eq(r->hdr.msg_id, id);
    ck_assert_uint_eq(r->hdr.cmd, cmd);
    ck_assert_msg(!(r->hdr.flags & VFU_FLAG_ERROR),
                  "cmd %u failed: %s", cmd, g_strerror(r->hdr.error_no));
    ck_assert_uint_eq(r->hdr.flags & VFU_FLAG_TYPE_MASK, VFU_FLAG_REPLY);
    ck_assert_uint_eq(r->hdr.error_no, 0);
}

/* The reply to request @id must arrive next and be error @err. */
static void expect_error(uint16_t id, uint16_t cmd, int err)
{
    Reply r;

    ck_assert_msg(recv_reply(&r, TIMEOUT_MS) == 1, "no reply to msg %u", id);
    ck_assert_uint_eq(r.hdr.msg_id, id);
    ck_assert_uint_eq(r.hdr.cmd, cmd);
    ck_assert_msg(r.hdr.flags & VFU_FLAG_ERROR,
                  "cmd %u succeeded, expected %s", cmd, g_strerror(err));
    ck_assert_uint_eq(r.hdr.flags & VFU_FLAG_TYPE_MASK, VFU_FLAG_REPLY);
    ck_assert_msg(r.hdr.error_no == (uint32_t)err, "cmd %u: error %u (%s), "
                  "expected %d (%s)", cmd, r.hdr.error_no,
                  g_strerror(r.hdr.error_no), err, g_strerror(err));
    ck_assert_uint_eq(r.hdr.size, VFU_HDR_SIZE);
    ck_assert_uint_eq(r.nfds, 0);
    reply_free(&r);
}

/* Request that must fail with @err. */
static void transact_err(uint16_t cmd, const void *payload, size_t len,
                         int err)
{
    expect_error(send_msg(cmd, payload, len), cmd, err);
}

/* Request that must succeed; the reply is returned in @r. */
static void transact(uint16_t cmd, const void *payload, size_t len,
                     Reply *r)
{
    expect_reply(r, send_msg(cmd, payload, len), cmd);
}

static void expect_nothing(void)
{
    Reply r;

    ck_assert_int_eq(recv_reply(&r, QUIET_MS), 0);
}

/* ---- protocol helpers --------------------------------------------------- */

static uint16_t send_version(uint16_t major, uint16_t minor,
                             const char *json, size_t json_len)
{
    g_autofree uint8_t *p = g_malloc0(sizeof(VfuVersion) + json_len);
    VfuVersion *v = (VfuVersion *)p;

    v->major = major;
    v->minor = minor;
    if (json_len) {
        memcpy(p + sizeof(*v), json, json_len);
    }
    return send_msg(VFU_CMD_VERSION, p, sizeof(*v) + json_len);
}

static void negotiate_json(const char *json)
{
    Reply r;
    uint16_t id = send_version(VFU_VERSION_MAJOR, VFU_VERSION_MINOR, json,
                               json ? strlen(json) + 1 : 0);

    expect_reply(&r, id, VFU_CMD_VERSION);
    reply_free(&r);
    ck_assert(srv->negotiated);
}

static void negotiate(void)
{
    negotiate_json("{\"capabilities\":{\"max_msg_fds\":16,"
                   "\"max_data_xfer_size\":1048576,\"pgsizes\":4096}}");
}

static void region_write(uint32_t region, uint64_t off, const void *data,
                         uint32_t count)
{
    g_autofree uint8_t *p = g_malloc0(sizeof(VfuRegionRW) + count);
    VfuRegionRW *rw = (VfuRegionRW *)p;
    Reply r;

    rw->offset = off;
    rw->region = region;
    rw->count = count;
    memcpy(p + sizeof(*rw), data, count);
    transact(VFU_CMD_REGION_WRITE, p, sizeof(*rw) + count, &r);
    ck_assert_uint_eq(r.len, sizeof(*rw));
    ck_assert_mem_eq(r.payload, rw, sizeof(*rw));
    reply_free(&r);
}

static void region_read(uint32_t region, uint64_t off, void *data,
                        uint32_t count)
{
    VfuRegionRW rw = { .offset = off, .region = region, .count = count };
    Reply r;

    transact(VFU_CMD_REGION_READ, &rw, sizeof(rw), &r);
    ck_assert_uint_eq(r.len, sizeof(rw) + count);
    ck_assert_mem_eq(r.payload, &rw, sizeof(rw));
    memcpy(data, r.payload + sizeof(rw), count);
    reply_free(&r);
}

static void reg_write(uint32_t reg, uint32_t val)
{
    region_write(TESTDEV_BAR_REGS, reg, &val, 4);
}

static uint32_t reg_read(uint32_t reg)
{
    uint32_t v = 0;

    region_read(TESTDEV_BAR_REGS, reg, &v, 4);
    return v;
}

static void enable_command(uint16_t bits)
{
    uint16_t cmd = 0;

    region_read(REGION_CONFIG, PCI_COMMAND, &cmd, 2);
    cmd |= bits;
    region_write(REGION_CONFIG, PCI_COMMAND, &cmd, 2);
}

static void dma_map(uint64_t addr, uint64_t size, uint32_t flags, int fd,
                    uint64_t fd_off, int err)
{
    VfuDmaMap m = {
        .argsz = sizeof(m), .flags = flags, .offset = fd_off,
        .addr = addr, .size = size,
    };
    uint16_t id = send_msg_fds(VFU_CMD_DMA_MAP, VFU_FLAG_REQUEST, &m,
                               sizeof(m), &fd, fd >= 0 ? 1 : 0);

    if (err) {
        expect_error(id, VFU_CMD_DMA_MAP, err);
    } else {
        Reply r;

        expect_reply(&r, id, VFU_CMD_DMA_MAP);
        reply_free(&r);
    }
}

static void dma_unmap(uint64_t addr, uint64_t size, uint32_t flags, int err)
{
    VfuDmaUnmap u = {
        .argsz = sizeof(u), .flags = flags, .addr = addr, .size = size,
    };

    if (err) {
        transact_err(VFU_CMD_DMA_UNMAP, &u, sizeof(u), err);
    } else {
        Reply r;

        transact(VFU_CMD_DMA_UNMAP, &u, sizeof(u), &r);
        ck_assert_uint_eq(r.len, sizeof(u));
        ck_assert_mem_eq(r.payload, &u, sizeof(u));
        reply_free(&r);
    }
}

static uint16_t send_set_irqs(uint32_t flags, uint32_t index, uint32_t start,
                              uint32_t count, const void *data,
                              size_t data_len, const int *fds, unsigned nfds)
{
    g_autofree uint8_t *p = g_malloc0(sizeof(VfuIrqSet) + data_len);
    VfuIrqSet *is = (VfuIrqSet *)p;

    is->argsz = sizeof(*is) + data_len;
    is->flags = flags;
    is->index = index;
    is->start = start;
    is->count = count;
    if (data_len) {
        memcpy(p + sizeof(*is), data, data_len);
    }
    return send_msg_fds(VFU_CMD_DEVICE_SET_IRQS, VFU_FLAG_REQUEST, p,
                        sizeof(*is) + data_len, fds, nfds);
}

static void set_irqs_err(uint32_t flags, uint32_t index, uint32_t start,
                         uint32_t count, const void *data, size_t data_len,
                         const int *fds, unsigned nfds, int err)
{
    expect_error(send_set_irqs(flags, index, start, count, data, data_len,
                               fds, nfds), VFU_CMD_DEVICE_SET_IRQS, err);
}

static void set_irqs_ok(uint32_t flags, uint32_t index, uint32_t start,
                        uint32_t count, const void *data, size_t data_len,
                        const int *fds, unsigned nfds)
{
    Reply r;

    expect_reply(&r, send_set_irqs(flags, index, start, count, data,
                                   data_len, fds, nfds),
                 VFU_CMD_DEVICE_SET_IRQS);
    ck_assert_uint_eq(r.len, 0);
    reply_free(&r);
}

/* Value of eventfd @fd, 0 if not signalled. */
static uint64_t efd_take(int fd)
{
    eventfd_t v = 0;

    if (eventfd_read(fd, &v) < 0) {
        ck_assert_int_eq(errno, EAGAIN);
        return 0;
    }
    return v;
}

/* ---- fixtures ----------------------------------------------------------- */

static void suite_setup(void)
{
    tmpdir = g_dir_make_tmp("iovd-vfu-msg-XXXXXX", NULL);
    ck_assert_ptr_nonnull(tmpdir);
    sock_path = g_build_filename(tmpdir, "t0.sock", NULL);
}

static void suite_teardown(void)
{
    unlink(sock_path);
    rmdir(tmpdir);
    g_clear_pointer(&sock_path, g_free);
    g_clear_pointer(&tmpdir, g_free);
}

static void setup(void)
{
    g_autofree char *opts = g_strdup_printf("driver=pci-testdev,id=t0,"
                                            "socket=%s", sock_path);
    GError *err = NULL;
    g_autoptr(Keyval) kv = NULL;
    struct stat st;

    vfu_transport_init();
    kv = keyval_parse(opts, "driver", &err);
    ck_assert_msg(kv != NULL, "%s", err ? err->message : "?");
    dev = device_create(kv, &err);
    ck_assert_msg(dev != NULL, "device_create: %s",
                  err ? err->message : "?");
    srv = vfu_server_of(PCI_DEVICE(dev));
    ck_assert_ptr_nonnull(srv);
    ck_assert_int_eq(lstat(sock_path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    next_id = 1;
    cfd = client_connect();
    wait_attached(true);
}

static void teardown(void)
{
    struct stat st;

    if (cfd >= 0) {
        close(cfd);
        cfd = -1;
    }
    device_destroy_all();
    dev = NULL;
    srv = NULL;
    ck_assert_msg(lstat(sock_path, &st) < 0 && errno == ENOENT,
                  "socket file left behind");
}

/* ---- VERSION ------------------------------------------------------------ */

START_TEST(test_version_required_first)
{
    VfuDeviceInfo di = { .argsz = sizeof(di) };
    Reply r;

    transact_err(VFU_CMD_DEVICE_GET_INFO, &di, sizeof(di), EINVAL);
    transact_err(VFU_CMD_DEVICE_RESET, NULL, 0, EINVAL);
    ck_assert(!srv->negotiated);
    /* The connection survives; after VERSION the same request works. */
    negotiate();
    transact(VFU_CMD_DEVICE_GET_INFO, &di, sizeof(di), &r);
    reply_free(&r);
}
END_TEST

START_TEST(test_version_good)
{
    static const char json[] =
        "{\"capabilities\":{\"max_msg_fds\":8,\"max_data_xfer_size\":65536,"
        "\"pgsizes\":4096,\"max_dma_maps\":128}}";
    json_object *root, *caps, *o;
    const VfuVersion *v;
    const char *rjson;
    Reply r;

    expect_reply(&r, send_version(VFU_VERSION_MAJOR, VFU_VERSION_MINOR, json,
                                  sizeof(json)), VFU_CMD_VERSION);
    ck_assert(srv->negotiated);
    ck_assert_uint_eq(srv->client_max_fds, 8);
    ck_assert_uint_eq(srv->client_max_xfer, 65536);
    ck_assert_uint_ge(r.len, sizeof(VfuVersion) + 2);
    v = (const VfuVersion *)r.payload;
    ck_assert_uint_eq(v->major, VFU_VERSION_MAJOR);
    ck_assert_uint_eq(v->minor, VFU_VERSION_MINOR);
    /* NUL-terminated JSON object with the server's limits. */
    rjson = (const char *)r.payload + sizeof(*v);
    ck_assert_uint_eq(strlen(rjson) + 1, r.len - sizeof(*v));
    root = json_tokener_parse(rjson);
    ck_assert_ptr_nonnull(root);
    ck_assert(json_object_object_get_ex(root, "capabilities", &caps));
    ck_assert(json_object_object_get_ex(caps, "max_msg_fds", &o));
    ck_assert_int_eq(json_object_get_int64(o), VFU_SERVER_MAX_MSG_FDS);
    ck_assert(json_object_object_get_ex(caps, "pgsizes", &o));
    ck_assert_int_eq(json_object_get_int64(o), VFU_SERVER_PGSIZES);
    ck_assert(json_object_object_get_ex(caps, "max_data_xfer_size", &o));
    ck_assert_int_eq(json_object_get_int64(o), VFU_SERVER_MAX_DATA_XFER);
    json_object_put(root);
    ck_assert_uint_le(r.hdr.size, VFU_HDR_SIZE + sizeof(*v) + sizeof(json));
    reply_free(&r);
}
END_TEST

START_TEST(test_version_no_json)
{
    Reply r;

    /* Capabilities are optional; the reply then carries none either. */
    expect_reply(&r, send_version(VFU_VERSION_MAJOR, VFU_VERSION_MINOR,
                                  NULL, 0), VFU_CMD_VERSION);
    ck_assert_uint_eq(r.len, sizeof(VfuVersion));
    ck_assert(srv->negotiated);
    ck_assert_uint_eq(srv->client_max_fds, 1);
    reply_free(&r);
}
END_TEST

START_TEST(test_version_twice)
{
    negotiate();
    expect_error(send_version(VFU_VERSION_MAJOR, VFU_VERSION_MINOR, NULL, 0),
                 VFU_CMD_VERSION, EINVAL);
    ck_assert(srv->negotiated);
}
END_TEST

START_TEST(test_version_wrong_major)
{
    uint16_t id = send_version(VFU_VERSION_MAJOR + 1, 0, "{}", 3);
    Reply r;

    ck_assert_msg(recv_reply(&r, TIMEOUT_MS) == 1, "no reply");
    ck_assert_uint_eq(r.hdr.msg_id, id);
    ck_assert(r.hdr.flags & VFU_FLAG_ERROR);
    ck_assert_uint_ne(r.hdr.error_no, 0);
    reply_free(&r);
    ck_assert(!srv->negotiated);
    /* A good one afterwards still works. */
    negotiate();
}
END_TEST

START_TEST(test_version_short)
{
    uint16_t major = VFU_VERSION_MAJOR;

    transact_err(VFU_CMD_VERSION, &major, sizeof(major), EINVAL);
    transact_err(VFU_CMD_VERSION, NULL, 0, EINVAL);
    ck_assert(!srv->negotiated);
}
END_TEST

START_TEST(test_version_json_not_terminated)
{
    static const char json[] = "{\"capabilities\":{}}";

    /* No NUL at the end. */
    expect_error(send_version(VFU_VERSION_MAJOR, VFU_VERSION_MINOR, json,
                              strlen(json)), VFU_CMD_VERSION, EINVAL);
    /* A NUL inside. */
    expect_error(send_version(VFU_VERSION_MAJOR, VFU_VERSION_MINOR,
                              "{}\0{}", 6), VFU_CMD_VERSION, EINVAL);
    /* Only a NUL: empty string, not an object. */
    expect_error(send_version(VFU_VERSION_MAJOR, VFU_VERSION_MINOR, "", 1),
                 VFU_CMD_VERSION, EINVAL);
    ck_assert(!srv->negotiated);
    negotiate();
}
END_TEST

START_TEST(test_version_json_not_object)
{
    static const char *const bad[] = {
        "[1,2,3]", "42", "\"capabilities\"", "null", "{\"capabilities\":",
        "not json at all",
    };

    for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
        expect_error(send_version(VFU_VERSION_MAJOR, VFU_VERSION_MINOR,
                                  bad[i], strlen(bad[i]) + 1),
                     VFU_CMD_VERSION, EINVAL);
        ck_assert_msg(!srv->negotiated, "'%s' accepted", bad[i]);
    }
    negotiate();
}
END_TEST

START_TEST(test_version_json_wrong_types)
{
    static const char *const bad[] = {
        "{\"capabilities\":[]}",
        "{\"capabilities\":1}",
        "{\"capabilities\":{\"max_msg_fds\":\"8\"}}",
        "{\"capabilities\":{\"max_msg_fds\":-1}}",
        "{\"capabilities\":{\"max_msg_fds\":1.5}}",
        "{\"capabilities\":{\"max_data_xfer_size\":true}}",
        "{\"capabilities\":{\"pgsizes\":{}}}",
        "{\"capabilities\":{\"max_dma_maps\":[1]}}",
        "{\"capabilities\":{\"write_multiple\":1}}",
        "{\"capabilities\":{\"write_multiple\":\"true\"}}",
        /* Right types, unusable values. */
        "{\"capabilities\":{\"pgsizes\":8192}}",
        "{\"capabilities\":{\"max_data_xfer_size\":512}}",
    };

    for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
        expect_error(send_version(VFU_VERSION_MAJOR, VFU_VERSION_MINOR,
                                  bad[i], strlen(bad[i]) + 1),
                     VFU_CMD_VERSION, EINVAL);
        ck_assert_msg(!srv->negotiated, "'%s' accepted", bad[i]);
    }
    /* Unknown keys are fine. */
    negotiate_json("{\"capabilities\":{\"migration\":{\"pgsize\":4096}},"
                   "\"vendor\":\"x\"}");
}
END_TEST

START_TEST(test_version_reply_not_longer)
{
    static const char *const reqs[] = {
        "{}",
        "{\"capabilities\":{}}",
        "{\"capabilities\":{\"max_msg_fds\":1}}",
        "{\"capabilities\":{\"write_multiple\":true}}",
        "{\"capabilities\":{\"max_msg_fds\":8,\"write_multiple\":true}}",
        "{\"capabilities\":{\"max_msg_fds\":8,\"pgsizes\":4096,"
        "\"write_multiple\":true}}",
        "{\"capabilities\":{\"max_msg_fds\":8,\"max_data_xfer_size\":1048576,"
        "\"pgsizes\":4096,\"max_dma_maps\":65535,\"write_multiple\":true}}",
    };

    for (unsigned i = 0; i < ARRAY_SIZE(reqs); i++) {
        size_t req_len = sizeof(VfuVersion) + strlen(reqs[i]) + 1;
        uint16_t id;
        Reply r;

        if (i) {
            reconnect();
        }
        id = send_version(VFU_VERSION_MAJOR, VFU_VERSION_MINOR, reqs[i],
                          strlen(reqs[i]) + 1);
        expect_reply(&r, id, VFU_CMD_VERSION);
        ck_assert_msg(r.len <= req_len, "request '%s' (%zu bytes) got a "
                      "%u-byte reply", reqs[i], req_len, r.len);
        ck_assert_uint_ge(r.len, sizeof(VfuVersion));
        if (r.len > sizeof(VfuVersion)) {
            const char *rj = (const char *)r.payload + sizeof(VfuVersion);
            json_object *root;

            ck_assert_uint_eq(r.payload[r.len - 1], '\0');
            ck_assert_uint_eq(strlen(rj) + 1, r.len - sizeof(VfuVersion));
            root = json_tokener_parse(rj);
            ck_assert_msg(root && json_object_is_type(root,
                                                      json_type_object),
                          "reply JSON '%s' is not an object", rj);
            json_object_put(root);
        }
        /* Multiple writes only when the reply says so. */
        if (srv->write_multiple) {
            ck_assert_ptr_nonnull(strstr((const char *)r.payload +
                                         sizeof(VfuVersion),
                                         "write_multiple"));
        }
        reply_free(&r);
        ck_assert(srv->negotiated);
    }
}
END_TEST

/* ---- device and region info --------------------------------------------- */

START_TEST(test_device_get_info)
{
    VfuDeviceInfo di = { .argsz = sizeof(di) };
    const VfuDeviceInfo *out;
    Reply r;

    negotiate();
    transact(VFU_CMD_DEVICE_GET_INFO, &di, sizeof(di), &r);
    ck_assert_uint_eq(r.len, sizeof(VfuDeviceInfo));
    out = (const VfuDeviceInfo *)r.payload;
    ck_assert_uint_eq(out->argsz, sizeof(VfuDeviceInfo));
    ck_assert_uint_eq(out->flags,
                      VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_PCI);
    ck_assert_uint_eq(out->num_regions, VFIO_PCI_NUM_REGIONS);
    ck_assert_uint_eq(out->num_irqs, 5);
    reply_free(&r);

    /* argsz too small, payload of the wrong size. */
    di.argsz = sizeof(di) - 1;
    transact_err(VFU_CMD_DEVICE_GET_INFO, &di, sizeof(di), EINVAL);
    di.argsz = 0;
    transact_err(VFU_CMD_DEVICE_GET_INFO, &di, sizeof(di), EINVAL);
    di.argsz = sizeof(di);
    transact_err(VFU_CMD_DEVICE_GET_INFO, &di, 8, EINVAL);
    transact_err(VFU_CMD_DEVICE_GET_INFO, NULL, 0, EINVAL);
}
END_TEST

static void region_info(uint32_t index, uint32_t argsz, Reply *r)
{
    VfuRegionInfo ri = { .argsz = argsz, .index = index };

    transact(VFU_CMD_DEVICE_GET_REGION_INFO, &ri, sizeof(ri), r);
}

START_TEST(test_region_info_bad)
{
    VfuRegionInfo ri = { .argsz = sizeof(ri), .index = VFIO_PCI_NUM_REGIONS };

    negotiate();
    transact_err(VFU_CMD_DEVICE_GET_REGION_INFO, &ri, sizeof(ri), EINVAL);
    ri.index = 0xffffffff;
    transact_err(VFU_CMD_DEVICE_GET_REGION_INFO, &ri, sizeof(ri), EINVAL);
    ri.index = 0;
    ri.argsz = sizeof(ri) - 1;
    transact_err(VFU_CMD_DEVICE_GET_REGION_INFO, &ri, sizeof(ri), EINVAL);
    ri.argsz = sizeof(ri);
    transact_err(VFU_CMD_DEVICE_GET_REGION_INFO, &ri, 16, EINVAL);
}
END_TEST

START_TEST(test_region_info_plain)
{
    const VfuRegionInfo *out;
    Reply r;

    negotiate();
    region_info(TESTDEV_BAR_REGS, sizeof(VfuRegionInfo), &r);
    ck_assert_uint_eq(r.len, sizeof(VfuRegionInfo));
    out = (const VfuRegionInfo *)r.payload;
    ck_assert_uint_eq(out->index, TESTDEV_BAR_REGS);
    ck_assert_uint_eq(out->size, TESTDEV_REGS_SIZE);
    ck_assert_uint_eq(out->argsz, sizeof(VfuRegionInfo));
    ck_assert_uint_eq(out->flags, VFIO_REGION_INFO_FLAG_READ |
                                  VFIO_REGION_INFO_FLAG_WRITE);
    ck_assert_uint_eq(out->cap_offset, 0);
    ck_assert_uint_eq(r.nfds, 0);
    reply_free(&r);

    region_info(REGION_CONFIG, sizeof(VfuRegionInfo), &r);
    out = (const VfuRegionInfo *)r.payload;
    ck_assert_uint_eq(out->size, PCIE_CFG_SPACE_SIZE);
    reply_free(&r);

    /* ROM and VGA: not implemented, size 0, no access flags. */
    region_info(VFIO_PCI_ROM_REGION_INDEX, sizeof(VfuRegionInfo), &r);
    out = (const VfuRegionInfo *)r.payload;
    ck_assert_uint_eq(out->size, 0);
    ck_assert_uint_eq(out->flags, 0);
    reply_free(&r);
}
END_TEST

START_TEST(test_region_info_sparse)
{
    const VfuRegionInfo *out;
    const struct vfio_region_info_cap_sparse_mmap *cap;
    uint32_t need;
    uint8_t *map;
    uint32_t v;
    Reply r;

    negotiate();
    /* Too small for the capability: argsz says how much, no caps, no fd. */
    region_info(TESTDEV_BAR_MEM, sizeof(VfuRegionInfo), &r);
    ck_assert_uint_eq(r.len, sizeof(VfuRegionInfo));
    out = (const VfuRegionInfo *)r.payload;
    need = out->argsz;
    ck_assert_uint_gt(need, sizeof(VfuRegionInfo));
    ck_assert_uint_eq(out->cap_offset, 0);
    ck_assert(!(out->flags & VFIO_REGION_INFO_FLAG_CAPS));
    ck_assert_uint_eq(out->size, TESTDEV_MEM_SIZE);
    ck_assert_uint_eq(r.nfds, 0);
    reply_free(&r);

    /* Big enough: the sparse mmap capability and the BAR's fd. */
    region_info(TESTDEV_BAR_MEM, need, &r);
    ck_assert_uint_eq(r.len, need);
    out = (const VfuRegionInfo *)r.payload;
    ck_assert_uint_eq(out->argsz, need);
    ck_assert(out->flags & VFIO_REGION_INFO_FLAG_CAPS);
    ck_assert(out->flags & VFIO_REGION_INFO_FLAG_MMAP);
    ck_assert(out->flags & VFIO_REGION_INFO_FLAG_READ);
    ck_assert_uint_ge(out->cap_offset, sizeof(VfuRegionInfo));
    ck_assert_uint_le(out->cap_offset + sizeof(*cap) +
                      sizeof(cap->areas[0]), need);
    cap = (const void *)(r.payload + out->cap_offset);
    ck_assert_uint_eq(cap->header.id, VFIO_REGION_INFO_CAP_SPARSE_MMAP);
    ck_assert_uint_eq(cap->header.next, 0);
    ck_assert_uint_eq(cap->nr_areas, 1);
    ck_assert_uint_eq(cap->areas[0].offset, 0);
    ck_assert_uint_eq(cap->areas[0].size, TESTDEV_MEM_MMAP_SIZE);
    ck_assert_uint_eq(r.nfds, 1);

    /* The fd is the BAR's memory. */
    map = mmap(NULL, TESTDEV_MEM_MMAP_SIZE, PROT_READ | PROT_WRITE,
               MAP_SHARED, r.fds[0], out->offset);
    ck_assert(map != MAP_FAILED);
    reply_free(&r);
    enable_command(PCI_COMMAND_MEMORY);
    v = 0x600dc0de;
    region_write(TESTDEV_BAR_MEM, 0x100, &v, 4);
    ck_assert_uint_eq(ldl_le_p(map + 0x100), 0x600dc0de);
    stl_le_p(map + 0x200, 0xfeedface);
    v = 0;
    region_read(TESTDEV_BAR_MEM, 0x200, &v, 4);
    ck_assert_uint_eq(v, 0xfeedface);
    munmap(map, TESTDEV_MEM_MMAP_SIZE);

    /* A BAR without sparse areas never sends an fd. */
    region_info(TESTDEV_BAR_REGS, 4096, &r);
    ck_assert_uint_eq(r.nfds, 0);
    ck_assert_uint_eq(((const VfuRegionInfo *)r.payload)->cap_offset, 0);
    reply_free(&r);
}
END_TEST

START_TEST(test_irq_info)
{
    VfuIrqInfo in = { .argsz = sizeof(in), .index = VFIO_PCI_MSIX_IRQ_INDEX };
    const VfuIrqInfo *out;
    Reply r;

    negotiate();
    transact(VFU_CMD_DEVICE_GET_IRQ_INFO, &in, sizeof(in), &r);
    out = (const VfuIrqInfo *)r.payload;
    ck_assert_uint_eq(out->count, TESTDEV_MSIX_VECTORS);
    ck_assert(out->flags & VFIO_IRQ_INFO_EVENTFD);
    reply_free(&r);
    in.index = VFIO_PCI_INTX_IRQ_INDEX;
    transact(VFU_CMD_DEVICE_GET_IRQ_INFO, &in, sizeof(in), &r);
    out = (const VfuIrqInfo *)r.payload;
    ck_assert_uint_eq(out->count, 1);
    ck_assert(out->flags & VFIO_IRQ_INFO_AUTOMASKED);
    reply_free(&r);
    in.index = VFIO_PCI_MSI_IRQ_INDEX;      /* no MSI capability */
    transact(VFU_CMD_DEVICE_GET_IRQ_INFO, &in, sizeof(in), &r);
    ck_assert_uint_eq(((const VfuIrqInfo *)r.payload)->count, 0);
    reply_free(&r);

    in.index = 5;
    transact_err(VFU_CMD_DEVICE_GET_IRQ_INFO, &in, sizeof(in), EINVAL);
    in.index = 0;
    in.argsz = 4;
    transact_err(VFU_CMD_DEVICE_GET_IRQ_INFO, &in, sizeof(in), EINVAL);
}
END_TEST

/* ---- region access ------------------------------------------------------ */

START_TEST(test_region_read_ok)
{
    uint16_t ids[2];

    negotiate();
    region_read(REGION_CONFIG, PCI_VENDOR_ID, ids, 4);
    ck_assert_uint_eq(ids[0], TESTDEV_VENDOR_ID);
    ck_assert_uint_eq(ids[1], TESTDEV_DEVICE_ID);
    /* BAR reads need memory decoding. */
    ck_assert_uint_eq(reg_read(TESTDEV_REG_ID), 0xffffffff);
    enable_command(PCI_COMMAND_MEMORY);
    ck_assert_uint_eq(reg_read(TESTDEV_REG_ID), TESTDEV_ID_VALUE);
    reg_write(TESTDEV_REG_SCRATCH, 0x5a5a1234);
    ck_assert_uint_eq(reg_read(TESTDEV_REG_SCRATCH), 0x5a5a1234);
}
END_TEST

START_TEST(test_region_read_too_big)
{
    VfuRegionRW rw = {
        .region = TESTDEV_BAR_MEM, .count = VFU_SERVER_MAX_DATA_XFER + 1,
    };

    negotiate();
    transact_err(VFU_CMD_REGION_READ, &rw, sizeof(rw), E2BIG);
    rw.count = UINT32_MAX;
    transact_err(VFU_CMD_REGION_READ, &rw, sizeof(rw), E2BIG);
}
END_TEST

START_TEST(test_region_read_bad_range)
{
    VfuRegionRW rw = {
        .offset = UINT64_MAX - 1, .region = TESTDEV_BAR_REGS, .count = 4,
    };

    negotiate();
    enable_command(PCI_COMMAND_MEMORY);
    /* offset + count wraps around. */
    transact_err(VFU_CMD_REGION_READ, &rw, sizeof(rw), EINVAL);
    rw.region = REGION_CONFIG;
    transact_err(VFU_CMD_REGION_READ, &rw, sizeof(rw), EINVAL);
    /* Just past the end. */
    rw.offset = TESTDEV_REGS_SIZE - 2;
    rw.region = TESTDEV_BAR_REGS;
    transact_err(VFU_CMD_REGION_READ, &rw, sizeof(rw), EINVAL);
    rw.offset = PCIE_CFG_SPACE_SIZE;
    rw.region = REGION_CONFIG;
    rw.count = 1;
    transact_err(VFU_CMD_REGION_READ, &rw, sizeof(rw), EINVAL);
    /* Regions that do not exist. */
    rw.offset = 0;
    rw.region = VFIO_PCI_ROM_REGION_INDEX;
    transact_err(VFU_CMD_REGION_READ, &rw, sizeof(rw), EINVAL);
    rw.region = 5;
    transact_err(VFU_CMD_REGION_READ, &rw, sizeof(rw), EINVAL);
    rw.region = VFIO_PCI_NUM_REGIONS;
    transact_err(VFU_CMD_REGION_READ, &rw, sizeof(rw), EINVAL);
    /* A READ carries no data. */
    {
        uint8_t p[sizeof(rw) + 4] = { 0 };

        rw.region = REGION_CONFIG;
        memcpy(p, &rw, sizeof(rw));
        transact_err(VFU_CMD_REGION_READ, p, sizeof(p), EINVAL);
    }
    transact_err(VFU_CMD_REGION_READ, &rw, 8, EINVAL);
}
END_TEST

START_TEST(test_region_write_size_mismatch)
{
    uint8_t p[sizeof(VfuRegionRW) + 8] = { 0 };
    VfuRegionRW *rw = (VfuRegionRW *)p;

    negotiate();
    enable_command(PCI_COMMAND_MEMORY);
    rw->region = TESTDEV_BAR_REGS;
    rw->offset = TESTDEV_REG_SCRATCH;
    rw->count = 8;
    transact_err(VFU_CMD_REGION_WRITE, p, sizeof(*rw) + 4, EINVAL);
    rw->count = 2;
    transact_err(VFU_CMD_REGION_WRITE, p, sizeof(*rw) + 4, EINVAL);
    rw->count = 0;
    transact_err(VFU_CMD_REGION_WRITE, p, sizeof(*rw) + 4, EINVAL);
    transact_err(VFU_CMD_REGION_WRITE, p, sizeof(*rw) - 1, EINVAL);
    /* Nothing was written. */
    ck_assert_uint_eq(reg_read(TESTDEV_REG_SCRATCH), 0);
    /* Out of range writes. */
    rw->count = 4;
    rw->offset = UINT64_MAX - 1;
    transact_err(VFU_CMD_REGION_WRITE, p, sizeof(*rw) + 4, EINVAL);
    rw->offset = 0;
    rw->region = VFIO_PCI_VGA_REGION_INDEX;
    transact_err(VFU_CMD_REGION_WRITE, p, sizeof(*rw) + 4, EINVAL);
}
END_TEST

START_TEST(test_region_write_no_reply)
{
    uint8_t p[sizeof(VfuRegionRW) + 4] = { 0 };
    VfuRegionRW *rw = (VfuRegionRW *)p;
    uint32_t val = 0xabcdef01;
    VfuRegionRW rd = {
        .offset = TESTDEV_REG_SCRATCH, .region = TESTDEV_BAR_REGS, .count = 4,
    };
    uint16_t id;
    Reply r;

    negotiate();
    enable_command(PCI_COMMAND_MEMORY);

    /* Posted write to a region that does not exist: no reply at all. */
    rw->region = 42;
    rw->count = 4;
    send_msg_fds(VFU_CMD_REGION_WRITE, VFU_FLAG_NO_REPLY, p, sizeof(p),
                 NULL, 0);
    expect_nothing();
    /* Posted write with a size mismatch: no reply either. */
    rw->region = TESTDEV_BAR_REGS;
    rw->count = 8;
    send_msg_fds(VFU_CMD_REGION_WRITE, VFU_FLAG_NO_REPLY, p, sizeof(p),
                 NULL, 0);
    expect_nothing();
    /* A good posted write: applied, not answered. */
    rw->offset = TESTDEV_REG_SCRATCH;
    rw->count = 4;
    memcpy(p + sizeof(*rw), &val, 4);
    send_msg_fds(VFU_CMD_REGION_WRITE, VFU_FLAG_NO_REPLY, p, sizeof(p),
                 NULL, 0);
    expect_nothing();

    /* The next reply is the one to this request: nothing stray came. */
    id = send_msg(VFU_CMD_REGION_READ, &rd, sizeof(rd));
    expect_reply(&r, id, VFU_CMD_REGION_READ);
    ck_assert_uint_eq(ldl_le_p(r.payload + sizeof(rd)), val);
    reply_free(&r);
    expect_nothing();
}
END_TEST

START_TEST(test_region_config_write)
{
    uint32_t v = 0xffffffff;
    uint16_t vendor = 0;

    negotiate();
    /* Read-only config fields stay; BAR sizing works over the wire. */
    region_write(REGION_CONFIG, PCI_VENDOR_ID, &v, 4);
    region_read(REGION_CONFIG, PCI_VENDOR_ID, &vendor, 2);
    ck_assert_uint_eq(vendor, TESTDEV_VENDOR_ID);
    region_write(REGION_CONFIG, PCI_BASE_ADDRESS_0, &v, 4);
    region_read(REGION_CONFIG, PCI_BASE_ADDRESS_0, &v, 4);
    ck_assert_uint_eq(v, (uint32_t)~(TESTDEV_REGS_SIZE - 1));
}
END_TEST

START_TEST(test_write_multi_not_negotiated)
{
    uint8_t p[8 + sizeof(VfuWriteOne)] = { 1 };

    negotiate();
    ck_assert(!srv->write_multiple);
    transact_err(VFU_CMD_REGION_WRITE_MULTI, p, sizeof(p), ENOTSUP);
}
END_TEST

START_TEST(test_device_reset)
{
    Reply r;

    negotiate();
    enable_command(PCI_COMMAND_MEMORY);
    reg_write(TESTDEV_REG_SCRATCH, 0x1234);
    transact_err(VFU_CMD_DEVICE_RESET, "x", 1, EINVAL);
    transact(VFU_CMD_DEVICE_RESET, NULL, 0, &r);
    ck_assert_uint_eq(r.len, 0);
    reply_free(&r);
    /* Command register cleared by the reset: enable again to look. */
    ck_assert_uint_eq(reg_read(TESTDEV_REG_SCRATCH), 0xffffffff);
    enable_command(PCI_COMMAND_MEMORY);
    ck_assert_uint_eq(reg_read(TESTDEV_REG_SCRATCH), 0);
}
END_TEST

/* ---- DMA map / unmap ---------------------------------------------------- */

#define RW (VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE)

START_TEST(test_dma_map_overlap)
{
    negotiate();
    dma_map(0x100000, 0x10000, RW, -1, 0, 0);
    ck_assert_uint_eq(srv->dma->len, 1);
    dma_map(0x100000, 0x10000, RW, -1, 0, EEXIST);      /* same */
    dma_map(0x108000, 0x10000, RW, -1, 0, EEXIST);      /* tail */
    dma_map(0x0f8000, 0x10000, RW, -1, 0, EEXIST);      /* head */
    dma_map(0x104000, 0x1000, RW, -1, 0, EEXIST);       /* inside */
    dma_map(0x0f0000, 0x30000, RW, -1, 0, EEXIST);      /* around */
    dma_map(0x10f000, 0x1000, VFU_DMA_FLAG_READ, -1, 0, EEXIST);
    ck_assert_uint_eq(srv->dma->len, 1);
    /* Adjacent on both sides is fine. */
    dma_map(0x110000, 0x1000, RW, -1, 0, 0);
    dma_map(0x0ff000, 0x1000, VFU_DMA_FLAG_READ, -1, 0, 0);
    ck_assert_uint_eq(srv->dma->len, 3);
    /* Between two regions, overlapping the second. */
    dma_map(0x200000, 0x1000, RW, -1, 0, 0);
    dma_map(0x1ff000, 0x2000, RW, -1, 0, EEXIST);
    ck_assert_uint_eq(srv->dma->len, 4);
}
END_TEST

START_TEST(test_dma_map_invalid)
{
    int fd = memfd_create("guest", MFD_CLOEXEC);
    unsigned fds_before;
    VfuDmaMap m = {
        .argsz = sizeof(m), .flags = RW, .addr = 0x100000, .size = 0x1000,
    };
    int two[2];

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, 0x10000), 0);
    negotiate();
    fds_before = count_open_fds();

    dma_map(0x100800, 0x1000, RW, -1, 0, EINVAL);       /* addr */
    dma_map(0x100000, 0x800, RW, -1, 0, EINVAL);        /* size */
    dma_map(0x100000, 0, RW, -1, 0, EINVAL);            /* empty */
    dma_map(0xfffffffffffff000ULL, 0x2000, RW, -1, 0, EINVAL); /* wraps */
    dma_map(0x100000, 0x1000, 0, -1, 0, EINVAL);        /* no access */
    dma_map(0x100000, 0x1000, VFU_DMA_FLAG_WRITE | 0x4, -1, 0, EINVAL);
    dma_map(0x100000, 0x1000, RW | 0x100, -1, 0, EINVAL);
    dma_map(0x100000, 0x1000, RW, fd, 0x800, EINVAL);   /* fd offset */

    /* Wrong argsz / payload size. */
    m.argsz = sizeof(m) + 8;
    transact_err(VFU_CMD_DMA_MAP, &m, sizeof(m), EINVAL);
    m.argsz = sizeof(m);
    transact_err(VFU_CMD_DMA_MAP, &m, sizeof(m) - 8, EINVAL);
    /* Two fds. */
    two[0] = fd;
    two[1] = fd;
    expect_error(send_msg_fds(VFU_CMD_DMA_MAP, VFU_FLAG_REQUEST, &m,
                              sizeof(m), two, 2), VFU_CMD_DMA_MAP, EINVAL);
    ck_assert_uint_eq(srv->dma->len, 0);
    /* Every fd the server received was closed again. */
    ck_assert_uint_eq(count_open_fds(), fds_before);
    close(fd);
}
END_TEST

START_TEST(test_dma_map_fd_and_device_dma)
{
    int fd = memfd_create("guest", MFD_CLOEXEC);
    static const char pattern[] = "guest memory seen by pci-testdev";
    uint8_t *guest;
    char buf[sizeof(pattern)] = { 0 };
    int64_t deadline;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, 0x4000), 0);
    guest = mmap(NULL, 0x4000, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ck_assert(guest != MAP_FAILED);
    memcpy(guest + 0x1000 + 0x80, pattern, sizeof(pattern));

    negotiate();
    /* Guest 0x40000000.. is the memfd from offset 0x1000. */
    dma_map(0x40000000, 0x3000, RW, fd, 0x1000, 0);
    close(fd);
    ck_assert_uint_eq(srv->dma->len, 1);
    ck_assert_ptr_nonnull(g_array_index(srv->dma, VfuDmaRegion, 0).host);

    /* Device DMA to BAR2 from guest memory, through the mapping. */
    enable_command(PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    reg_write(TESTDEV_REG_DMA_ADDR_LO, 0x40000080);
    reg_write(TESTDEV_REG_DMA_ADDR_HI, 0);
    reg_write(TESTDEV_REG_DMA_LEN, sizeof(pattern));
    reg_write(TESTDEV_REG_DMA_DIR, TESTDEV_DMA_TO_DEVICE);
    reg_write(TESTDEV_REG_DMA_BUF_OFF, 0x9000);
    reg_write(TESTDEV_REG_DMA_START, 1);
    deadline = clock_ns() + TIMEOUT_MS * 1000000LL;
    while (reg_read(TESTDEV_REG_DMA_COUNT) == 0 && clock_ns() < deadline) {
        pump();
    }
    ck_assert_uint_eq(reg_read(TESTDEV_REG_DMA_COUNT), 1);
    ck_assert_uint_eq(reg_read(TESTDEV_REG_DMA_STATUS), 0);
    region_read(TESTDEV_BAR_MEM, 0x9000, buf, sizeof(buf));
    ck_assert_str_eq(buf, pattern);

    /* Unmapped: the device sees an error instead. */
    dma_unmap(0x40000000, 0x3000, 0, 0);
    reg_write(TESTDEV_REG_DMA_START, 1);
    deadline = clock_ns() + TIMEOUT_MS * 1000000LL;
    while (reg_read(TESTDEV_REG_DMA_COUNT) == 1 && clock_ns() < deadline) {
        pump();
    }
    ck_assert_uint_eq(reg_read(TESTDEV_REG_DMA_COUNT), 2);
    ck_assert_uint_eq(reg_read(TESTDEV_REG_DMA_STATUS), EFAULT);
    munmap(guest, 0x4000);
}
END_TEST

START_TEST(test_dma_unmap)
{
    negotiate();
    dma_unmap(0x300000, 0x1000, 0, ENOENT);
    dma_map(0x300000, 0x2000, RW, -1, 0, 0);
    /* Only the exact range unmaps. */
    dma_unmap(0x300000, 0x1000, 0, ENOENT);
    dma_unmap(0x301000, 0x1000, 0, ENOENT);
    dma_unmap(0x2ff000, 0x3000, 0, ENOENT);
    ck_assert_uint_eq(srv->dma->len, 1);
    dma_unmap(0x300000, 0x2000, 0, 0);
    ck_assert_uint_eq(srv->dma->len, 0);
    dma_unmap(0x300000, 0x2000, 0, ENOENT);
    /* Dirty bitmaps are not supported. */
    dma_map(0x300000, 0x2000, RW, -1, 0, 0);
    dma_unmap(0x300000, 0x2000, VFU_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
              ENOTSUP);
    ck_assert_uint_eq(srv->dma->len, 1);
    /* Wrong sizes. */
    {
        VfuDmaUnmap u = { .argsz = 8, .addr = 0x300000, .size = 0x2000 };

        transact_err(VFU_CMD_DMA_UNMAP, &u, sizeof(u), EINVAL);
        u.argsz = sizeof(u);
        transact_err(VFU_CMD_DMA_UNMAP, &u, sizeof(u) - 4, EINVAL);
    }
    ck_assert_uint_eq(srv->dma->len, 1);
}
END_TEST

START_TEST(test_dma_unmap_all)
{
    negotiate();
    dma_map(0x100000, 0x1000, RW, -1, 0, 0);
    dma_map(0x200000, 0x1000, RW, -1, 0, 0);
    dma_map(0x300000, 0x1000, VFU_DMA_FLAG_READ, -1, 0, 0);
    ck_assert_uint_eq(srv->dma->len, 3);
    /* ALL takes no range. */
    dma_unmap(0x100000, 0x1000, VFU_DMA_UNMAP_FLAG_ALL, EINVAL);
    dma_unmap(0, 0x1000, VFU_DMA_UNMAP_FLAG_ALL, EINVAL);
    ck_assert_uint_eq(srv->dma->len, 3);
    dma_unmap(0, 0, VFU_DMA_UNMAP_FLAG_ALL, 0);
    ck_assert_uint_eq(srv->dma->len, 0);
    ck_assert_uint_eq(srv->dma_mapped_bytes, 0);
    /* Again with nothing mapped: fine. */
    dma_unmap(0, 0, VFU_DMA_UNMAP_FLAG_ALL, 0);
    /* The old ranges can be mapped again. */
    dma_map(0x100000, 0x1000, RW, -1, 0, 0);
}
END_TEST

/* ---- SET_IRQS ----------------------------------------------------------- */

#define EFD_TRIGGER (VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER)

START_TEST(test_set_irqs_invalid)
{
    int efd[3];
    uint8_t bools[4] = { 1, 1, 1, 1 };
    unsigned fds_before;

    for (unsigned i = 0; i < 3; i++) {
        efd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        ck_assert_int_ge(efd[i], 0);
    }
    negotiate();
    fds_before = count_open_fds();

    /* Flags: two data types, no data type, no action, two, unknown bits. */
    set_irqs_err(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_DATA_BOOL |
                 VFIO_IRQ_SET_ACTION_TRIGGER, 2, 0, 1, NULL, 0, NULL, 0,
                 EINVAL);
    set_irqs_err(VFIO_IRQ_SET_ACTION_TRIGGER, 2, 0, 1, NULL, 0, NULL, 0,
                 EINVAL);
    set_irqs_err(VFIO_IRQ_SET_DATA_NONE, 2, 0, 1, NULL, 0, NULL, 0, EINVAL);
    set_irqs_err(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK |
                 VFIO_IRQ_SET_ACTION_UNMASK, 2, 0, 1, NULL, 0, NULL, 0,
                 EINVAL);
    set_irqs_err(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER |
                 (1u << 12), 2, 0, 1, NULL, 0, NULL, 0, EINVAL);

    /* Index and vector ranges. */
    set_irqs_err(EFD_TRIGGER, VFU_NUM_IRQS, 0, 1, NULL, 0, efd, 1, EINVAL);
    set_irqs_err(EFD_TRIGGER, 2, 0, TESTDEV_MSIX_VECTORS + 1, NULL, 0, efd,
                 3, EINVAL);
    set_irqs_err(EFD_TRIGGER, 2, 1, 2, NULL, 0, efd, 2, EINVAL);
    set_irqs_err(EFD_TRIGGER, 2, UINT32_MAX, 2, NULL, 0, efd, 2, EINVAL);
    set_irqs_err(EFD_TRIGGER, VFIO_PCI_MSI_IRQ_INDEX, 0, 1, NULL, 0, efd, 1,
                 EINVAL);                           /* no MSI: 0 vectors */
    set_irqs_err(EFD_TRIGGER, 2, 0, 0, NULL, 0, NULL, 0, EINVAL);

    /* fd count must match the vector count. */
    set_irqs_err(EFD_TRIGGER, 2, 0, 2, NULL, 0, efd, 1, EINVAL);
    set_irqs_err(EFD_TRIGGER, 2, 0, 1, NULL, 0, efd, 2, EINVAL);
    /* fds with something other than eventfd data. */
    set_irqs_err(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 2, 0,
                 1, NULL, 0, efd, 1, EINVAL);
    /* Bool array of the wrong size; data where none belongs. */
    set_irqs_err(VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER, 2, 0,
                 2, bools, 1, NULL, 0, EINVAL);
    set_irqs_err(VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER, 2, 0,
                 1, bools, 3, NULL, 0, EINVAL);
    set_irqs_err(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 2, 0,
                 1, bools, 4, NULL, 0, EINVAL);

    /* Short argsz and short payload. */
    {
        VfuIrqSet is = {
            .argsz = sizeof(is) - 1,
            .flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
            .index = 2, .count = 1,
        };

        transact_err(VFU_CMD_DEVICE_SET_IRQS, &is, sizeof(is), EINVAL);
        is.argsz = sizeof(is);
        transact_err(VFU_CMD_DEVICE_SET_IRQS, &is, sizeof(is) - 4, EINVAL);
    }

    /* Nothing was wired; no received fd was kept. */
    ck_assert_uint_eq(srv->pdev->irq_mode, PCI_IRQ_NONE);
    ck_assert_uint_eq(count_open_fds(), fds_before);
    for (unsigned i = 0; i < 3; i++) {
        close(efd[i]);
    }
}
END_TEST

static void msix_wire(int *efd)
{
    for (unsigned i = 0; i < 2; i++) {
        efd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        ck_assert_int_ge(efd[i], 0);
    }
    set_irqs_ok(EFD_TRIGGER, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, NULL, 0, efd, 2);
    ck_assert_uint_eq(srv->pdev->irq_mode, PCI_IRQ_MSIX);
    ck_assert_uint_eq(srv->pdev->irq_count[PCI_IRQ_INDEX_MSIX], 2);
}

START_TEST(test_set_irqs_msix)
{
    int efd[2];
    uint8_t pba = 0;

    negotiate();
    msix_wire(efd);
    enable_command(PCI_COMMAND_MEMORY);

    /* The device raises vector 1: its eventfd fires, vector 0's does not. */
    reg_write(TESTDEV_REG_INT_RAISE, 1);
    ck_assert_uint_eq(efd_take(efd[1]), 1);
    ck_assert_uint_eq(efd_take(efd[0]), 0);

    /* Mask vector 1: pending in the PBA, fires on unmask. */
    set_irqs_ok(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK,
                VFIO_PCI_MSIX_IRQ_INDEX, 1, 1, NULL, 0, NULL, 0);
    reg_write(TESTDEV_REG_INT_RAISE, 1);
    ck_assert_uint_eq(efd_take(efd[1]), 0);
    region_read(TESTDEV_BAR_MSIX, TESTDEV_MSIX_PBA_OFF, &pba, 1);
    ck_assert_uint_eq(pba, 1u << 1);
    set_irqs_ok(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK,
                VFIO_PCI_MSIX_IRQ_INDEX, 1, 1, NULL, 0, NULL, 0);
    ck_assert_uint_eq(efd_take(efd[1]), 1);
    region_read(TESTDEV_BAR_MSIX, TESTDEV_MSIX_PBA_OFF, &pba, 1);
    ck_assert_uint_eq(pba, 0);

    /* Loopback trigger with a bool array: only vector 0. */
    {
        uint8_t bools[2] = { 1, 0 };

        set_irqs_ok(VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER,
                    VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, bools, 2, NULL, 0);
        ck_assert_uint_eq(efd_take(efd[0]), 1);
        ck_assert_uint_eq(efd_take(efd[1]), 0);
    }

    /* Unwire all: back to no interrupts. */
    set_irqs_ok(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
                VFIO_PCI_MSIX_IRQ_INDEX, 0, 0, NULL, 0, NULL, 0);
    ck_assert_uint_eq(srv->pdev->irq_mode, PCI_IRQ_NONE);
    reg_write(TESTDEV_REG_INT_RAISE, 1);
    ck_assert_uint_eq(efd_take(efd[1]), 0);
    close(efd[0]);
    close(efd[1]);
}
END_TEST

START_TEST(test_set_irqs_fds_default_caps)
{
    int efd[2];

    /*
     * The client did not send max_msg_fds (it can receive 1), but the
     * server advertised that it receives up to 16: a SET_IRQS with two
     * eventfds is within the server's limit and must be accepted.
     */
    negotiate_json("{\"capabilities\":{\"pgsizes\":4096}}");
    msix_wire(efd);
    close(efd[0]);
    close(efd[1]);
}
END_TEST

/* ---- commands and framing ----------------------------------------------- */

START_TEST(test_unknown_command)
{
    negotiate();
    transact_err(99, NULL, 0, EINVAL);
    transact_err(0, NULL, 0, EINVAL);
    transact_err(0xffff, "abcd", 4, EINVAL);
    /* Server-to-client commands are not accepted from the client. */
    transact_err(VFU_CMD_DMA_READ, NULL, 0, EINVAL);
    /* Still alive. */
    transact_err(99, NULL, 0, EINVAL);
}
END_TEST

START_TEST(test_bad_header_flags)
{
    VfuDeviceInfo di = { .argsz = sizeof(di) };
    Reply r;
    uint16_t id;

    negotiate();
    expect_error(send_msg_fds(VFU_CMD_DEVICE_GET_INFO, VFU_FLAG_ERROR, &di,
                              sizeof(di), NULL, 0),
                 VFU_CMD_DEVICE_GET_INFO, EINVAL);
    expect_error(send_msg_fds(VFU_CMD_DEVICE_GET_INFO, 0x100, &di,
                              sizeof(di), NULL, 0),
                 VFU_CMD_DEVICE_GET_INFO, EINVAL);
    /* An unsolicited reply from the client is dropped, unanswered. */
    send_msg_fds(VFU_CMD_DEVICE_GET_INFO, VFU_FLAG_REPLY, &di, sizeof(di),
                 NULL, 0);
    expect_nothing();
    id = send_msg(VFU_CMD_DEVICE_GET_INFO, &di, sizeof(di));
    expect_reply(&r, id, VFU_CMD_DEVICE_GET_INFO);
    reply_free(&r);
}
END_TEST

START_TEST(test_size_too_small)
{
    /* A header claiming less than itself: answered EINVAL, framing kept. */
    VfuHdr h = {
        .msg_id = 7, .cmd = VFU_CMD_VERSION, .size = VFU_HDR_SIZE - 1,
    };
    VfuDeviceInfo di = { .argsz = sizeof(di) };
    Reply r;
    uint16_t id;

    send_raw(&h, sizeof(h), NULL, 0);
    expect_error(7, VFU_CMD_VERSION, EINVAL);
    negotiate();
    h.size = 0;
    h.msg_id = 8;
    h.cmd = VFU_CMD_DEVICE_GET_INFO;
    send_raw(&h, sizeof(h), NULL, 0);
    expect_error(8, VFU_CMD_DEVICE_GET_INFO, EINVAL);
    id = send_msg(VFU_CMD_DEVICE_GET_INFO, &di, sizeof(di));
    expect_reply(&r, id, VFU_CMD_DEVICE_GET_INFO);
    reply_free(&r);
}
END_TEST

START_TEST(test_size_too_big)
{
    size_t size = VFU_MAX_MSG_SIZE + 1;
    g_autofree uint8_t *buf = g_malloc0(size);
    VfuHdr *h = (VfuHdr *)buf;
    VfuDeviceInfo di = { .argsz = sizeof(di) };
    Reply r;
    uint16_t id;

    negotiate();
    h->msg_id = 0x4242;
    h->cmd = VFU_CMD_REGION_WRITE;
    h->size = size;
    /* The body looks like another message: it must not be parsed as one. */
    for (size_t off = VFU_HDR_SIZE; off + VFU_HDR_SIZE <= size; off += 4096) {
        VfuHdr fake = { .msg_id = 0x7777, .cmd = 99, .size = VFU_HDR_SIZE };

        memcpy(buf + off, &fake, sizeof(fake));
    }
    send_raw(buf, size, NULL, 0);
    expect_error(0x4242, VFU_CMD_REGION_WRITE, E2BIG);
    /* Framing is intact: the next message works. */
    id = send_msg(VFU_CMD_DEVICE_GET_INFO, &di, sizeof(di));
    expect_reply(&r, id, VFU_CMD_DEVICE_GET_INFO);
    reply_free(&r);
    expect_nothing();
    ck_assert_int_ge(srv->client_fd, 0);
}
END_TEST

START_TEST(test_largest_message)
{
    /* The largest accepted message: a 1 MiB region write. */
    g_autofree uint8_t *p = g_malloc0(sizeof(VfuRegionRW) +
                                      VFU_SERVER_MAX_DATA_XFER);
    VfuRegionRW *rw = (VfuRegionRW *)p;
    Reply r;

    negotiate();
    enable_command(PCI_COMMAND_MEMORY);
    rw->region = TESTDEV_BAR_MEM;
    rw->count = VFU_SERVER_MAX_DATA_XFER;
    /* Bigger than BAR2: a range error, but framing-wise accepted. */
    transact_err(VFU_CMD_REGION_WRITE, p,
                 sizeof(*rw) + VFU_SERVER_MAX_DATA_XFER, EINVAL);
    rw->count = TESTDEV_MEM_SIZE;
    memset(p + sizeof(*rw), 0x3c, TESTDEV_MEM_SIZE);
    transact(VFU_CMD_REGION_WRITE, p, sizeof(*rw) + TESTDEV_MEM_SIZE, &r);
    reply_free(&r);
    {
        uint8_t b[4];

        region_read(TESTDEV_BAR_MEM, TESTDEV_MEM_SIZE - 4, b, 4);
        ck_assert_uint_eq(b[3], 0x3c);
    }
}
END_TEST

START_TEST(test_too_many_fds)
{
    enum { N = VFU_SERVER_MAX_MSG_FDS + 1, MANY = VFU_RX_MAX_FDS + 8 };
    int fds[MANY];
    VfuDeviceInfo di = { .argsz = sizeof(di) };
    unsigned fds_before;
    Reply r;
    uint16_t id;

    negotiate();
    for (unsigned i = 0; i < MANY; i++) {
        fds[i] = eventfd(0, EFD_CLOEXEC);
        ck_assert_int_ge(fds[i], 0);
    }
    fds_before = count_open_fds();
    expect_error(send_msg_fds(VFU_CMD_DEVICE_GET_INFO, VFU_FLAG_REQUEST, &di,
                              sizeof(di), fds, N),
                 VFU_CMD_DEVICE_GET_INFO, EINVAL);
    ck_assert_uint_eq(count_open_fds(), fds_before);
    /* More than the server even receives. */
    expect_error(send_msg_fds(VFU_CMD_DEVICE_GET_INFO, VFU_FLAG_REQUEST, &di,
                              sizeof(di), fds, MANY),
                 VFU_CMD_DEVICE_GET_INFO, EINVAL);
    ck_assert_uint_eq(count_open_fds(), fds_before);
    /* The next message has no stale fds attached and works. */
    id = send_msg(VFU_CMD_DEVICE_GET_INFO, &di, sizeof(di));
    expect_reply(&r, id, VFU_CMD_DEVICE_GET_INFO);
    reply_free(&r);
    for (unsigned i = 0; i < MANY; i++) {
        close(fds[i]);
    }
}
END_TEST

START_TEST(test_split_and_pipelined)
{
    VfuDeviceInfo di = { .argsz = sizeof(di) };
    uint8_t buf[3 * (VFU_HDR_SIZE + sizeof(di))];
    Reply r;

    negotiate();
    /* One message in pieces, with loop iterations in between. */
    {
        VfuHdr h = {
            .msg_id = 500, .cmd = VFU_CMD_DEVICE_GET_INFO,
            .size = VFU_HDR_SIZE + sizeof(di),
        };

        memcpy(buf, &h, sizeof(h));
        memcpy(buf + sizeof(h), &di, sizeof(di));
        send_raw(buf, 5, NULL, 0);
        for (unsigned i = 0; i < 3; i++) {
            loop_iterate(loop_main(), false);
        }
        send_raw(buf + 5, 15, NULL, 0);
        for (unsigned i = 0; i < 3; i++) {
            loop_iterate(loop_main(), false);
        }
        expect_nothing();
        send_raw(buf + 20, sizeof(h) + sizeof(di) - 20, NULL, 0);
        expect_reply(&r, 500, VFU_CMD_DEVICE_GET_INFO);
        reply_free(&r);
    }
    /* Three messages in one write: three replies, in order. */
    for (unsigned i = 0; i < 3; i++) {
        VfuHdr h = {
            .msg_id = 600 + i, .cmd = VFU_CMD_DEVICE_GET_INFO,
            .size = VFU_HDR_SIZE + sizeof(di),
        };
        uint8_t *p = buf + i * (VFU_HDR_SIZE + sizeof(di));

        memcpy(p, &h, sizeof(h));
        memcpy(p + sizeof(h), &di, sizeof(di));
    }
    send_raw(buf, sizeof(buf), NULL, 0);
    for (unsigned i = 0; i < 3; i++) {
        expect_reply(&r, 600 + i, VFU_CMD_DEVICE_GET_INFO);
        reply_free(&r);
    }
}
END_TEST

/* A posted REGION_WRITE of 4 bytes: 36 bytes, so what follows is unaligned. */
static size_t posted_reg_write(uint8_t *buf, uint32_t reg, uint32_t val)
{
    VfuHdr h = {
        .msg_id = next_id++, .cmd = VFU_CMD_REGION_WRITE,
        .size = VFU_HDR_SIZE + sizeof(VfuRegionRW) + 4,
        .flags = VFU_FLAG_REQUEST | VFU_FLAG_NO_REPLY,
    };
    VfuRegionRW rw = { .offset = reg, .region = TESTDEV_BAR_REGS, .count = 4 };

    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), &rw, sizeof(rw));
    memcpy(buf + sizeof(h) + sizeof(rw), &val, 4);
    return h.size;
}

START_TEST(test_many_messages_one_read)
{
    enum { N = 300 };
    g_autofree uint8_t *buf = g_malloc(N * 40);
    uint64_t msgs;
    size_t len = 0;

    negotiate();
    enable_command(PCI_COMMAND_MEMORY);
    for (unsigned i = 0; i < N; i++) {
        len += posted_reg_write(buf + len, TESTDEV_REG_SCRATCH, 1000 + i);
    }
    /* All in the socket before the server looks: one read takes them. */
    send_raw(buf, len, NULL, 0);
    msgs = srv->nr_msgs;
    while (srv->nr_msgs == msgs) {
        pump();
    }
    ck_assert_uint_eq(srv->nr_msgs - msgs, N);
    ck_assert_uint_eq(reg_read(TESTDEV_REG_SCRATCH), 1000 + N - 1);
}
END_TEST

START_TEST(test_pipelined_fds)
{
    int fd = memfd_create("guest", MFD_CLOEXEC);
    VfuDeviceInfo di = { .argsz = sizeof(di) };
    VfuDmaMap m = {
        .argsz = sizeof(m), .flags = RW, .addr = 0x80000000, .size = 0x2000,
    };
    uint8_t buf[64];
    uint16_t map_id, info_id;
    Reply r;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, 0x2000), 0);
    negotiate();
    enable_command(PCI_COMMAND_MEMORY);
    /*
     * Unaligned posted write, then DMA_MAP with its fd, then a request,
     * all queued before the server reads: the fd belongs to the DMA_MAP.
     */
    send_raw(buf, posted_reg_write(buf, TESTDEV_REG_SCRATCH, 0xfeed), NULL,
             0);
    map_id = send_msg_fds(VFU_CMD_DMA_MAP, VFU_FLAG_REQUEST, &m, sizeof(m),
                          &fd, 1);
    info_id = send_msg(VFU_CMD_DEVICE_GET_INFO, &di, sizeof(di));
    close(fd);
    expect_reply(&r, map_id, VFU_CMD_DMA_MAP);
    reply_free(&r);
    expect_reply(&r, info_id, VFU_CMD_DEVICE_GET_INFO);
    reply_free(&r);
    ck_assert_uint_eq(srv->dma->len, 1);
    ck_assert_ptr_nonnull(g_array_index(srv->dma, VfuDmaRegion, 0).host);
    ck_assert_uint_eq(reg_read(TESTDEV_REG_SCRATCH), 0xfeed);
}
END_TEST

START_TEST(test_irq_once_per_iteration)
{
    enum { N = 10 };
    uint8_t buf[N * 40];
    size_t len = 0;
    uint64_t msgs;
    int efd[2];

    negotiate();
    msix_wire(efd);
    enable_command(PCI_COMMAND_MEMORY);
    /* Ten raises of vector 1 handled in one read: one eventfd write. */
    for (unsigned i = 0; i < N; i++) {
        len += posted_reg_write(buf + len, TESTDEV_REG_INT_RAISE, 1);
    }
    send_raw(buf, len, NULL, 0);
    msgs = srv->nr_msgs;
    while (srv->nr_msgs - msgs < N) {
        pump();
    }
    ck_assert_uint_eq(srv->nr_msgs - msgs, N);
    pump();
    ck_assert_uint_eq(efd_take(efd[1]), 1);
    ck_assert_uint_eq(efd_take(efd[0]), 0);
    /* And the next raise is signalled again. */
    reg_write(TESTDEV_REG_INT_RAISE, 1);
    ck_assert_uint_eq(efd_take(efd[1]), 1);
    close(efd[0]);
    close(efd[1]);
}
END_TEST

START_TEST(test_second_client_refused)
{
    int c2 = client_connect();
    char b;
    int64_t deadline = clock_ns() + TIMEOUT_MS * 1000000LL;
    ssize_t n;

    /* The second client sees EOF; the first keeps working. */
    do {
        pump();
        n = recv(c2, &b, 1, MSG_DONTWAIT);
    } while (n < 0 && errno == EAGAIN && clock_ns() < deadline);
    ck_assert_int_eq(n, 0);
    close(c2);
    negotiate();
}
END_TEST

START_TEST(test_destroy)
{
    struct stat st;

    negotiate();
    device_destroy_all();
    dev = NULL;
    srv = NULL;
    ck_assert_int_lt(lstat(sock_path, &st), 0);
    ck_assert_int_eq(errno, ENOENT);
    /* The client sees the connection closed. */
    {
        char b;

        ck_assert_int_eq(recv(cfd, &b, 1, MSG_DONTWAIT), 0);
    }
}
END_TEST

static Suite *vfu_msg_suite(void)
{
    Suite *s = suite_create("vfu-msg");
    TCase *tc;

    tc = tcase_create("version");
    tcase_add_checked_fixture(tc, unit_loop_setup, unit_loop_teardown);
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_version_required_first);
    tcase_add_test(tc, test_version_good);
    tcase_add_test(tc, test_version_no_json);
    tcase_add_test(tc, test_version_twice);
    tcase_add_test(tc, test_version_wrong_major);
    tcase_add_test(tc, test_version_short);
    tcase_add_test(tc, test_version_json_not_terminated);
    tcase_add_test(tc, test_version_json_not_object);
    tcase_add_test(tc, test_version_json_wrong_types);
    tcase_add_test(tc, test_version_reply_not_longer);
    suite_add_tcase(s, tc);

    tc = tcase_create("info");
    tcase_add_checked_fixture(tc, unit_loop_setup, unit_loop_teardown);
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_device_get_info);
    tcase_add_test(tc, test_region_info_bad);
    tcase_add_test(tc, test_region_info_plain);
    tcase_add_test(tc, test_region_info_sparse);
    tcase_add_test(tc, test_irq_info);
    suite_add_tcase(s, tc);

    tc = tcase_create("region");
    tcase_add_checked_fixture(tc, unit_loop_setup, unit_loop_teardown);
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_region_read_ok);
    tcase_add_test(tc, test_region_read_too_big);
    tcase_add_test(tc, test_region_read_bad_range);
    tcase_add_test(tc, test_region_write_size_mismatch);
    tcase_add_test(tc, test_region_write_no_reply);
    tcase_add_test(tc, test_region_config_write);
    tcase_add_test(tc, test_write_multi_not_negotiated);
    tcase_add_test(tc, test_device_reset);
    suite_add_tcase(s, tc);

    tc = tcase_create("dma");
    tcase_add_checked_fixture(tc, unit_loop_setup, unit_loop_teardown);
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_dma_map_overlap);
    tcase_add_test(tc, test_dma_map_invalid);
    tcase_add_test(tc, test_dma_map_fd_and_device_dma);
    tcase_add_test(tc, test_dma_unmap);
    tcase_add_test(tc, test_dma_unmap_all);
    suite_add_tcase(s, tc);

    tc = tcase_create("irqs");
    tcase_add_checked_fixture(tc, unit_loop_setup, unit_loop_teardown);
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_set_irqs_invalid);
    tcase_add_test(tc, test_set_irqs_msix);
    tcase_add_test(tc, test_set_irqs_fds_default_caps);
    suite_add_tcase(s, tc);

    tc = tcase_create("framing");
    tcase_add_checked_fixture(tc, unit_loop_setup, unit_loop_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_unknown_command);
    tcase_add_test(tc, test_bad_header_flags);
    tcase_add_test(tc, test_size_too_small);
    tcase_add_test(tc, test_size_too_big);
    tcase_add_test(tc, test_largest_message);
    tcase_add_test(tc, test_too_many_fds);
    tcase_add_test(tc, test_split_and_pipelined);
    tcase_add_test(tc, test_many_messages_one_read);
    tcase_add_test(tc, test_pipelined_fds);
    tcase_add_test(tc, test_irq_once_per_iteration);
    tcase_add_test(tc, test_second_client_refused);
    tcase_add_test(tc, test_destroy);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(vfu_msg_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
