/*
 * virtio-blk-bench: 4 KiB random I/O through a virtio-blk device served by
 * any vfio-user server, with the libqos virtio driver (Linux's bring-up,
 * MSI-X, event index).  QUEUE_DEPTH requests are added and kicked at once,
 * then collected, then the next batch goes.
 *
 *   virtio-blk-bench -s SOCKET [-p SERVER_PID] [-w randread|randwrite]
 *                    [-q QUEUE_DEPTH] [-t SECONDS]
 *
 * One line: "virtio-blk-bench: rw=... bs=4096 qd=... iops=...
 * lat_us_p50=... p99=... server_cpu_us_per_io=..."
 */
#include "util/osdep.h"
#include "hw/virtio/virtio-spec.h"
#include "tests/qtest/libqos/guest-mem.h"
#include "tests/qtest/libqos/pci.h"
#include "tests/qtest/libqos/vfu-client.h"
#include "tests/qtest/libqos/virtio-blk.h"
#include "tests/qtest/libqos/virtio.h"

#include <getopt.h>

static double proc_cpu_secs(pid_t pid)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/stat", pid);
    g_autofree char *text = NULL;
    unsigned long ut = 0, st = 0;
    char *p;

    if (pid <= 0 || !g_file_get_contents(path, &text, NULL, NULL)) {
        return -1;
    }
    p = strrchr(text, ')');
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                     "%lu %lu", &ut, &st) != 2) {
        return -1;
    }
    return (double)(ut + st) / sysconf(_SC_CLK_TCK);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *sock = NULL, *rw = "randread";
    int qd = 32, secs = 5, opt;
    pid_t pid = 0;

    while ((opt = getopt(argc, argv, "s:p:w:q:t:")) != -1) {
        switch (opt) {
        case 's': sock = optarg; break;
        case 'p': pid = atoi(optarg); break;
        case 'w': rw = optarg; break;
        case 'q': qd = atoi(optarg); break;
        case 't': secs = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: virtio-blk-bench -s SOCKET [-p PID] "
                    "[-w randread|randwrite] [-q QD] [-t SECS]\n");
            return 2;
        }
    }
    if (!sock || qd < 1 || qd > 128 || secs < 1) {
        fprintf(stderr, "virtio-blk-bench: bad arguments\n");
        return 2;
    }
    bool is_write = strcmp(rw, "randwrite") == 0;
    VfuClient *c = vfu_client_open(sock);
    QPCIDevice *pdev = qpci_device_new(c);
    GuestMem *gm = guest_mem_new(GUEST_MEM_DEFAULT_BASE, 64ULL << 20);
    QVirtioDevice *vd;
    QVirtQueue *vq;

    guest_mem_map_checked(gm, c, true);
    vd = qvirtio_pci_new(pdev, gm);
    qvirtio_init(vd, &(QVirtioInit) {
        .features = ~0ULL & ~(1ULL << VIRTIO_F_RING_PACKED),
        .nqueues = 1, .queue_size = 256, .irq = QVIRTIO_IRQ_MSIX,
    });
    vq = vd->vqs[0];
    uint64_t sectors = qvirtio_config_readq(vd, 0);     /* capacity */
    uint64_t nblocks = sectors / 8;
    g_autofree uint8_t *bufs = g_malloc0((size_t)qd * 4096);
    QVirtioBlkReq *reqs = g_new0(QVirtioBlkReq, qd);
    GArray *lat = g_array_new(false, false, sizeof(uint32_t));
    uint64_t seed = 0x2545f4914f6cdd1dULL, done = 0, errors = 0;
    double cpu0 = proc_cpu_secs(pid);
    int64_t t0 = clock_ns(), end = t0 + (int64_t)secs * 1000000000LL;

    while (clock_ns() < end) {
        int64_t start = clock_ns();

        for (int i = 0; i < qd; i++) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            reqs[i] = (QVirtioBlkReq) {
                .type = is_write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN,
                .sector = seed % nblocks * 8,
                .data = bufs + (size_t)i * 4096, .len = 4096,
            };
            if (qvirtio_blk_add(vq, &reqs[i]) < 0) {
                fprintf(stderr, "virtio-blk-bench: ring full\n");
                return 1;
            }
        }
        qvirtqueue_kick(vq);
        for (int i = 0; i < qd; i++) {
            uint32_t us;

            if (qvirtio_blk_finish(vq, &reqs[i]) != VIRTIO_BLK_S_OK) {
                errors++;
            }
            us = (clock_ns() - start) / 1000;
            g_array_append_val(lat, us);
            done++;
        }
    }
    double elapsed = (clock_ns() - t0) / 1e9, cpu1 = proc_cpu_secs(pid);

    g_array_sort(lat, cmp_u32);
    uint32_t *l = (uint32_t *)lat->data, n = lat->len;
    printf("virtio-blk-bench: rw=%s bs=4096 qd=%d iops=%.0f lat_us_p50=%u "
           "p99=%u errors=%" PRIu64, rw, qd, done / elapsed,
           n ? l[n / 2] : 0, n ? l[(uint64_t)n * 99 / 100] : 0, errors);
    if (pid > 0 && cpu0 >= 0 && cpu1 >= 0 && done) {
        printf(" server_cpu_us_per_io=%.2f", (cpu1 - cpu0) * 1e6 / done);
    }
    printf("\n");
    return errors ? 1 : 0;
}
