/*
 * Fuzz target: the vfio-user server's message handling, in process.  A
 * pci-testdev listens on a socket in a temporary directory; each input is
 * one client connection:
 *
 *   byte 0    fds sent with the first chunk: bits 0-1 how many (0-3),
 *             bit 2 memfds (64 KiB, mappable) instead of eventfds
 *   byte 1    where the stream is cut in two writes (framing across reads)
 *   the rest  the byte stream the client sends (messages, or not)
 *
 * The server's replies and requests are read and dropped; then the client
 * hangs up, which detaches it and resets the device for the next input.
 */
#include "util/osdep.h"
#include "util/keyval.h"
#include "util/loop.h"
#include "hw/core/device.h"
#include "hw/vfio-user/vfio-user.h"
#include "hw/vfio-user/vfio-user-int.h"

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

static char *sock_path;
static VfuServer *srv;

static void setup(void)
{
    g_autofree char *dir = g_dir_make_tmp("iovd-fuzz-XXXXXX", NULL);
    g_autofree char *opts = NULL;
    g_autoptr(Keyval) kv = NULL;
    GError *err = NULL;
    EventLoop *l = loop_new("fuzz", NULL);
    Device *dev;

    loop_attach_thread(l);
    loop_set_main(l);
    vfu_transport_init();
    sock_path = g_build_filename(dir, "t0.sock", NULL);
    opts = g_strdup_printf("driver=pci-testdev,id=t0,socket=%s", sock_path);
    kv = keyval_parse(opts, "driver", &err);
    dev = kv ? device_create(kv, &err) : NULL;
    if (!dev) {
        fprintf(stderr, "fuzz-vfio-user: %s\n", err->message);
        abort();
    }
    srv = vfu_server_of(PCI_DEVICE(dev));
}

/* Run the loop until it has nothing to do; drop what the server sent. */
static void pump(int cfd)
{
    char buf[65536];

    for (unsigned i = 0; i < 256; i++) {
        bool progress = loop_iterate(loop_main(), false);

        while (cfd >= 0 && recv(cfd, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
            progress = true;
        }
        if (!progress) {
            break;
        }
    }
}

static void wait_attached(bool attached, int cfd)
{
    for (unsigned i = 0; i < 10000 && (srv->client_fd >= 0) != attached;
         i++) {
        pump(cfd);
    }
    if ((srv->client_fd >= 0) != attached) {
        fprintf(stderr, "fuzz-vfio-user: the server did not %s the "
                "client\n", attached ? "accept" : "drop");
        abort();
    }
}

static void send_chunk(int cfd, const uint8_t *p, size_t len,
                       const int *fds, unsigned nfds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * 3)];
        struct cmsghdr align;
    } u;
    struct iovec iov = { .iov_base = (void *)p, .iov_len = len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

    if (!len) {
        return;
    }
    if (nfds) {
        struct cmsghdr *c;

        mh.msg_control = u.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    /* What the socket does not take now is dropped: a slow server. */
    sendmsg(cfd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fds[3], cfd;
    unsigned nfds;
    size_t cut;

    if (!srv) {
        setup();
    }
    if (size < 2) {
        return 0;
    }
    nfds = data[0] & 3;
    for (unsigned i = 0; i < nfds; i++) {
        if (data[0] & 4) {
            fds[i] = memfd_create("fuzz", MFD_CLOEXEC);
            if (ftruncate(fds[i], 65536) < 0) {
                abort();
            }
        } else {
            fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        }
    }
    cut = size > 2 ? data[1] % (size - 2 + 1) : 0;
    data += 2;
    size -= 2;

    cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_strlcpy(sa.sun_path, sock_path, sizeof(sa.sun_path));
    if (cfd < 0 || connect(cfd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        abort();
    }
    wait_attached(true, cfd);
    send_chunk(cfd, data, cut, fds, nfds);
    pump(cfd);
    send_chunk(cfd, data + cut, size - cut, cut ? NULL : fds,
               cut ? 0 : nfds);
    pump(cfd);
    for (unsigned i = 0; i < nfds; i++) {
        close(fds[i]);
    }
    close(cfd);
    wait_attached(false, -1);
    pump(-1);
    return 0;
}
