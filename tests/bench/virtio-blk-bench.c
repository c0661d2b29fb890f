/*
 * virtio-blk-bench: 4 KiB random I/O through a virtio-blk device served by
 * any vfio-user server, with the libqos virtio driver (Linux's bring-up,
 * MSI-X vectors wired, event index).  Like nvme-bench it keeps
 * QUEUE_DEPTH requests in flight: it busy-polls the used ring (interrupts
 * suppressed, as a polling guest driver would) and puts a new request in
 * each slot that completes, kicking once per batch when the device asks
 * for it (event index).
 *
 *   virtio-blk-bench -s SOCKET [-p SERVER_PID] [-w randread|randwrite]
 *                    [-q QUEUE_DEPTH] [-t SECONDS]
 *
 * One line: "virtio-blk-bench: rw=... bs=4096 qd=... iops=...
 * lat_us_p50=... p99=... kicks_per_io=... server_cpu_us_per_io=..."
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
    qvirtqueue_set_interrupts(vq, false);
    uint64_t sectors = qvirtio_config_readq(vd, 0);     /* capacity */
    uint64_t nblocks = sectors / 8;
    /* Per slot in guest memory: header, 4 KiB of data, status. */
    uint64_t *hdr = g_new(uint64_t, qd), *data = g_new(uint64_t, qd);
    uint64_t *status = g_new(uint64_t, qd);
    int *slot_of = g_new(int, 256);
    int64_t *start = g_new(int64_t, qd);
    GArray *lat = g_array_new(false, false, sizeof(uint32_t));
    uint64_t seed = 0x2545f4914f6cdd1dULL, done = 0, errors = 0;
    uint64_t kicks = 0;
    double cpu0 = proc_cpu_secs(pid);
    int64_t t0 = clock_ns(), end = t0 + (int64_t)secs * 1000000000LL;

    for (int i = 0; i < qd; i++) {
        hdr[i] = guest_alloc_aligned(gm, 16, 16);
        data[i] = guest_alloc_aligned(gm, 4096, 4096);
        status[i] = guest_alloc(gm, 1);
    }

#define SUBMIT(i) do {                                                      \
        uint8_t h[VIRTIO_BLK_REQ_HDR_SIZE] = { 0 };                         \
        QVirtioBuf b[3] = {                                                 \
            { hdr[i], sizeof(h), false },                                   \
            { data[i], 4096, !is_write },                                   \
            { status[i], 1, true },                                         \
        };                                                                  \
        int id_;                                                            \
                                                                            \
        seed ^= seed << 13;                                                 \
        seed ^= seed >> 7;                                                  \
        seed ^= seed << 17;                                                 \
        stl_le_p(h + VIRTIO_BLK_REQ_TYPE,                                   \
                 is_write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN);            \
        stq_le_p(h + VIRTIO_BLK_REQ_SECTOR, seed % nblocks * 8);            \
        guest_memwrite(gm, hdr[i], h, sizeof(h));                           \
        id_ = qvirtqueue_add(vq, b, 3, false);                              \
        if (id_ < 0) {                                                      \
            fprintf(stderr, "virtio-blk-bench: ring full\n");               \
            return 1;                                                       \
        }                                                                   \
        slot_of[id_] = (i);                                                 \
        start[i] = clock_ns();                                              \
    } while (0)

    for (int i = 0; i < qd; i++) {
        SUBMIT(i);
    }
    qvirtqueue_kick(vq);
    kicks++;
    while (clock_ns() < end) {
        uint32_t id, len;
        int reaped = 0;

        while (qvirtqueue_get_used(vq, &id, &len)) {
            int i = slot_of[id];
            uint32_t us = (clock_ns() - start[i]) / 1000;

            if (guest_readb(gm, status[i]) != VIRTIO_BLK_S_OK) {
                errors++;
            }
            g_array_append_val(lat, us);
            done++;
            reaped++;
            SUBMIT(i);
        }
        if (reaped) {
            uint64_t before = vfu_client_stats(c)->msgs_sent;

            qvirtqueue_kick(vq);
            kicks += vfu_client_stats(c)->msgs_sent != before;
        }
    }
    double elapsed = (clock_ns() - t0) / 1e9, cpu1 = proc_cpu_secs(pid);

    g_array_sort(lat, cmp_u32);
    uint32_t *l = (uint32_t *)lat->data, n = lat->len;
    printf("virtio-blk-bench: rw=%s bs=4096 qd=%d iops=%.0f lat_us_p50=%u "
           "p99=%u p999=%u errors=%" PRIu64 " kicks_per_io=%.3f", rw, qd,
           done / elapsed, n ? l[n / 2] : 0,
           n ? l[(uint64_t)n * 99 / 100] : 0,
           n ? l[(uint64_t)n * 999 / 1000] : 0, errors,
           done ? (double)kicks / done : 0);
    if (pid > 0 && cpu0 >= 0 && cpu1 >= 0 && done) {
        printf(" server_cpu_us_per_io=%.2f", (cpu1 - cpu0) * 1e6 / done);
    }
    printf("\n");
    return errors ? 1 : 0;
}
