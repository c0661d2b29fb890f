/*
 * net-tap-bench: frames per second between a virtio-net device on a tap
 * backend and the host kernel, in a private network namespace: the device
 * transmits and an AF_PACKET socket on the tap counts what arrives, then
 * the socket transmits and the device receives.
 *
 *     net-tap-bench [--iovd PATH] [SECONDS]
 *
 * Needs CAP_NET_ADMIN (root) and /dev/net/tun; otherwise it prints
 * "net-tap-bench: skipped: <reason>" and exits 0.
 */
#include "util/osdep.h"
#include "hw/virtio/virtio-net-spec.h"
#include "tests/qtest/libqos/guest-mem.h"
#include "tests/qtest/libqos/iovd-proc.h"
#include "tests/qtest/libqos/pci.h"
#include "tests/qtest/libqos/vfu-client.h"
#include "tests/qtest/libqos/virtio-net.h"
#include "tests/qtest/libqos/virtio.h"

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/if_ether.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#define TAP_NAME "bntap0"

static const uint8_t dev_mac[6] = { 0x52, 0x54, 0x00, 0xbe, 0xec, 0x01 };
static const uint8_t host_mac[6] = { 0x52, 0x54, 0x00, 0xbe, 0xec, 0x02 };

static void make_frame(uint8_t *f, size_t len, const uint8_t *dst,
                       const uint8_t *src)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    f[12] = 0x88;                   /* local experimental ethertype */
    f[13] = 0xb5;
    for (size_t i = 14; i < len; i++) {
        f[i] = (uint8_t)i;
    }
}

/* Bring the tap up and open a packet socket on it; -1 on failure. */
static int host_socket(void)
{
    struct ifreq ifr = { 0 };
    struct sockaddr_ll sll = { .sll_family = AF_PACKET,
                               .sll_protocol = htons(0x88b5) };
    int ctl = socket(AF_INET, SOCK_DGRAM, 0);
    int fd;

    g_strlcpy(ifr.ifr_name, TAP_NAME, IFNAMSIZ);
    if (ctl < 0 || ioctl(ctl, SIOCGIFFLAGS, &ifr) < 0) {
        return -1;
    }
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(ctl, SIOCSIFFLAGS, &ifr) < 0) {
        return -1;
    }
    close(ctl);
    fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(0x88b5));
    sll.sll_ifindex = if_nametoindex(TAP_NAME);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
        return -1;
    }
    return fd;
}

int main(int argc, char **argv)
{
    double secs = 2;
    g_autoptr(IovdProc) p = NULL;
    g_autofree char *sock = NULL;
    uint8_t frame[1514], buf[2048];
    double res[2][2];
    VfuClient *c;
    QPCIDevice *pdev;
    GuestMem *gm;
    QVirtioNet *n;
    int hfd;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--iovd") && i + 1 < argc) {
            setenv("IOVD_BIN", argv[++i], 1);
        } else {
            secs = g_ascii_strtod(argv[i], NULL);
        }
    }
    if (access("/dev/net/tun", R_OK | W_OK) < 0 ||
        unshare(CLONE_NEWNET) < 0) {
        printf("net-tap-bench: skipped: no /dev/net/tun or no "
               "CAP_NET_ADMIN for a private network namespace\n");
        return 0;
    }
    p = iovd_proc_new();
    sock = iovd_proc_path(p, "vn0.sock");
    iovd_proc_add_args(p, "-netdev", "tap,id=t0,ifname=" TAP_NAME
                       ",vnet_hdr=on", "-device", NULL);
    iovd_proc_add_argf(p, "virtio-net-pci,id=vn0,netdev=t0,"
                       "mac=52:54:00:be:ec:01,socket=%s", sock);
    iovd_proc_start(p);
    hfd = host_socket();
    if (hfd < 0) {
        printf("net-tap-bench: skipped: cannot use the tap: %s\n",
               g_strerror(errno));
        return 0;
    }
    c = vfu_client_open(sock);
    pdev = qpci_device_new(c);
    gm = guest_mem_new(GUEST_MEM_DEFAULT_BASE, 64ULL << 20);
    guest_mem_map_checked(gm, c, true);
    n = qvnet_new(pdev, gm);
    qvnet_init(n, &(QVirtioNetInit){ .features = QVNET_LINUX_FEATURES });
    qvirtqueue_set_interrupts(n->rx[0], false);
    qvirtqueue_set_interrupts(n->tx[0], false);

    for (int size = 0; size < 2; size++) {
        size_t len = size ? 1514 : 60;
        int64_t t0, end;
        uint64_t got;

        /* device -> host */
        make_frame(frame, len, host_mac, dev_mac);
        got = 0;
        t0 = clock_ns();
        end = t0 + (int64_t)(secs * 1e9);
        while (clock_ns() < end) {
            unsigned added = 0;

            qvnet_tx_reclaim(n, 0);
            while (added < 64 &&
                   qvnet_tx_add(n, 0, frame, len, NULL, 1) >= 0) {
                added++;
            }
            if (added) {
                qvnet_tx_kick(n, 0);
            }
            while (recv(hfd, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
                got++;
            }
        }
        res[0][size] = got / ((clock_ns() - t0) / 1e9);

        /* host -> device */
        make_frame(frame, len, dev_mac, host_mac);
        got = 0;
        t0 = clock_ns();
        end = t0 + (int64_t)(secs * 1e9);
        while (clock_ns() < end) {
            uint64_t bytes = 0;

            for (int i = 0; i < 64; i++) {
                if (send(hfd, frame, len, MSG_DONTWAIT) < 0) {
                    break;
                }
            }
            got += qvnet_rx_discard(n, 0, 256, &bytes);
        }
        res[1][size] = got / ((clock_ns() - t0) / 1e9);
    }
    printf("net-tap-bench: virtio->tap pps64=%.0f gbps1514=%.3f "
           "tap->virtio pps64=%.0f gbps1514=%.3f\n", res[0][0],
           res[0][1] * 1514 * 8 / 1e9, res[1][0],
           res[1][1] * 1514 * 8 / 1e9);
    iovd_proc_stop(p);
    return 0;
}
