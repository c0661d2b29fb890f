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

/* The command line. */
typedef struct VbOpts {
    const char *sock;
    const char *rw;
    int qd, secs;
    pid_t pid;
} VbOpts;

/* The device, and each slot's request in guest memory and in flight. */
typedef struct VbBench {
    VfuClient *c;
    GuestMem *gm;
    QVirtQueue *vq;
    bool is_write;
    int qd;
    uint64_t nblocks;           /* 4 KiB blocks */
    uint64_t *hdr, *data, *status;  /* guest addresses, by slot */
    int *slot_of;               /* slot, by descriptor head */
    int64_t *start;             /* submission time, by slot */
    GArray *lat;                /* completion latencies in us */
    uint64_t seed, done, errors, kicks;
} VbBench;

/* 0 when @o is usable, else the exit status. */
static int parse_args(int argc, char **argv, VbOpts *o)
{
    int opt;

    *o = (VbOpts) { .rw = "randread", .qd = 32, .secs = 5 };
    while ((opt = getopt(argc, argv, "s:p:w:q:t:")) != -1) {
        switch (opt) {
        case 's': o->sock = optarg; break;
        case 'p': o->pid = atoi(optarg); break;
        case 'w': o->rw = optarg; break;
        case 'q': o->qd = atoi(optarg); break;
        case 't': o->secs = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: virtio-blk-bench -s SOCKET [-p PID] "
                    "[-w randread|randwrite] [-q QD] [-t SECS]\n");
            return 2;
        }
    }
    if (!o->sock || o->qd < 1 || o->qd > 128 || o->secs < 1) {
        fprintf(stderr, "virtio-blk-bench: bad arguments\n");
        return 2;
    }
    return 0;
}

/*
 * Connect, bring the device up with one queue of 256 whose interrupts are
 * suppressed (we poll), and size the per-slot bookkeeping.
 */
static void bench_open(VbBench *b, const VbOpts *o)
{
    QPCIDevice *pdev;
    QVirtioDevice *vd;

    b->is_write = strcmp(o->rw, "randwrite") == 0;
    b->qd = o->qd;
    b->c = vfu_client_open(o->sock);
    pdev = qpci_device_new(b->c);
    b->gm = guest_mem_new(GUEST_MEM_DEFAULT_BASE, 64ULL << 20);
    guest_mem_map_checked(b->gm, b->c, true);
    vd = qvirtio_pci_new(pdev, b->gm);
    qvirtio_init(vd, &(QVirtioInit) {
        .features = ~0ULL & ~(1ULL << VIRTIO_F_RING_PACKED),
        .nqueues = 1, .queue_size = 256, .irq = QVIRTIO_IRQ_MSIX,
    });
    b->vq = vd->vqs[0];
    qvirtqueue_set_interrupts(b->vq, false);
    b->nblocks = qvirtio_config_readq(vd, 0) / 8;   /* capacity */
    b->hdr = g_new(uint64_t, b->qd);
    b->data = g_new(uint64_t, b->qd);
    b->status = g_new(uint64_t, b->qd);
    b->slot_of = g_new(int, 256);
    b->start = g_new(int64_t, b->qd);
    b->lat = g_array_new(false, false, sizeof(uint32_t));
    b->seed = 0x2545f4914f6cdd1dULL;
    b->done = b->errors = b->kicks = 0;
}

/* Put a request to a random block in slot @i; false if the ring is full. */
static bool submit(VbBench *b, int i)
{
    uint8_t h[VIRTIO_BLK_REQ_HDR_SIZE] = { 0 };
    QVirtioBuf bufs[3] = {
        { b->hdr[i], sizeof(h), false },
        { b->data[i], 4096, !b->is_write },
        { b->status[i], 1, true },
    };
    int id;

    b->seed ^= b->seed << 13;
    b->seed ^= b->seed >> 7;
    b->seed ^= b->seed << 17;
    stl_le_p(h + VIRTIO_BLK_REQ_TYPE,
             b->is_write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN);
    stq_le_p(h + VIRTIO_BLK_REQ_SECTOR, b->seed % b->nblocks * 8);
    guest_memwrite(b->gm, b->hdr[i], h, sizeof(h));
    id = qvirtqueue_add(b->vq, bufs, 3, false);
    if (id < 0) {
        fprintf(stderr, "virtio-blk-bench: ring full\n");
        return false;
    }
    b->slot_of[id] = i;
    b->start[i] = clock_ns();
    return true;
}

/*
 * Consume the used ring, each slot getting a new request; how many there
 * were, or -1 if the ring was full.
 */
static int reap(VbBench *b)
{
    uint32_t id, len;
    int reaped = 0;

    while (qvirtqueue_get_used(b->vq, &id, &len)) {
        int i = b->slot_of[id];
        uint32_t us = (clock_ns() - b->start[i]) / 1000;

        if (guest_readb(b->gm, b->status[i]) != VIRTIO_BLK_S_OK) {
            b->errors++;
        }
        g_array_append_val(b->lat, us);
        b->done++;
        reaped++;
        if (!submit(b, i)) {
            return -1;
        }
    }
    return reaped;
}

/*
 * Give each slot its header, 4 KiB of data and status in guest memory and
 * a request, then keep them all busy until @end; false if the ring was
 * full.
 */
static bool run_io(VbBench *b, int64_t end)
{
    for (int i = 0; i < b->qd; i++) {
        b->hdr[i] = guest_alloc_aligned(b->gm, 16, 16);
        b->data[i] = guest_alloc_aligned(b->gm, 4096, 4096);
        b->status[i] = guest_alloc(b->gm, 1);
    }
    for (int i = 0; i < b->qd; i++) {
        if (!submit(b, i)) {
            return false;
        }
    }
    qvirtqueue_kick(b->vq);
    b->kicks++;
    while (clock_ns() < end) {
        int reaped = reap(b);

        if (reaped < 0) {
            return false;
        }
        if (reaped) {
            /* The device may not want the kick (event index). */
            uint64_t before = vfu_client_stats(b->c)->msgs_sent;

            qvirtqueue_kick(b->vq);
            b->kicks += vfu_client_stats(b->c)->msgs_sent != before;
        }
    }
    return true;
}

/* The result line (see the top of the file). */
static void report(VbBench *b, const VbOpts *o, double elapsed,
                   double cpu0, double cpu1)
{
    uint32_t *l = (uint32_t *)b->lat->data, n = b->lat->len;
    uint64_t done = b->done;

    g_array_sort(b->lat, cmp_u32);
    printf("virtio-blk-bench: rw=%s bs=4096 qd=%d iops=%.0f lat_us_p50=%u "
           "p99=%u p999=%u errors=%" PRIu64 " kicks_per_io=%.3f", o->rw,
           o->qd, done / elapsed, n ? l[n / 2] : 0,
           n ? l[(uint64_t)n * 99 / 100] : 0,
           n ? l[(uint64_t)n * 999 / 1000] : 0, b->errors,
           done ? (double)b->kicks / done : 0);
    if (o->pid > 0 && cpu0 >= 0 && cpu1 >= 0 && done) {
        printf(" server_cpu_us_per_io=%.2f", (cpu1 - cpu0) * 1e6 / done);
    }
    printf("\n");
}

int main(int argc, char **argv)
{
    VbOpts o;
    VbBench b;
    double cpu0, cpu1, elapsed;
    int64_t t0;
    int rc = parse_args(argc, argv, &o);

    if (rc) {
        return rc;
    }
    bench_open(&b, &o);
    cpu0 = proc_cpu_secs(o.pid);
    t0 = clock_ns();
    if (!run_io(&b, t0 + (int64_t)o.secs * 1000000000LL)) {
        return 1;
    }
    elapsed = (clock_ns() - t0) / 1e9;
    cpu1 = proc_cpu_secs(o.pid);
    report(&b, &o, elapsed, cpu0, cpu1);
    return b.errors ? 1 : 0;
}
