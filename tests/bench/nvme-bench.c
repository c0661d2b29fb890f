/*
 * nvme-bench: a plain vfio-user NVMe driver that measures 4 KiB random I/O
 * against any vfio-user NVMe server (iovd, or another one side by side).
 *
 *   nvme-bench -s SOCKET [-p SERVER_PID] [-w randread|randwrite]
 *              [-q QUEUE_DEPTH] [-n QUEUES] [-t SECONDS] [-b BLOCK_SIZE]
 *              [--no-shared-mem] [--no-dbbuf] [--irq] [--idle]
 *
 * It maps guest RAM from a memfd (shared, so the server does zero copy),
 * brings the controller up as Linux does (shadow doorbells when the
 * controller offers them, unless --no-dbbuf; the doorbell page mapped when
 * the server offers it, as QEMU's client does), creates the I/O queues, keeps
 * QUEUE_DEPTH commands in flight per queue and busy-polls the completion
 * queues (no interrupt waits; with --irq it sleeps on the queue's MSI-X
 * eventfd instead, as an interrupt-driven guest driver), ringing each
 * doorbell once per batch.  One
 * result line:
 *
 * With --idle it moves no data: after bring-up it waits SECONDS and
 * reports the server's CPU meanwhile, then 20 times waits 50-150 ms and
 * times one 4 KiB read (how fast an idle device wakes):
 *
 *   nvme-bench: idle secs=... server_cpu_pct=... wake_us_p50=... max=...
 *
 * Otherwise:
 *
 *   nvme-bench: rw=randread bs=4096 qd=32 queues=1 iops=... mbps=...
 *     lat_us_p50=... p99=... p999=... server_cpu_us_per_io=...
 *     client_cpu_us_per_io=...
 */
#include "util/osdep.h"
#include "hw/nvme/nvme-spec.h"
#include "tests/qtest/libqos/guest-mem.h"
#include "tests/qtest/libqos/nvme.h"
#include "tests/qtest/libqos/pci.h"
#include "tests/qtest/libqos/vfu-client.h"

#include <getopt.h>
#include <sys/resource.h>

#define MAX_QD 1024

static double proc_cpu_secs(pid_t pid)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/stat", pid);
    g_autofree char *text = NULL;
    unsigned long ut = 0, st = 0;
    char *p;

    if (pid <= 0 || !g_file_get_contents(path, &text, NULL, NULL)) {
        return -1;
    }
    /* Fields after the command name (which may contain spaces). */
    p = strrchr(text, ')');
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                     "%lu %lu", &ut, &st) != 2) {
        return -1;
    }
    return (double)(ut + st) / sysconf(_SC_CLK_TCK);
}

static double self_cpu_secs(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *sock = NULL, *rw = "randread";
    int qd = 32, nq = 1, secs = 5, bs = 4096;
    pid_t server_pid = 0;
    bool shared = true, dbbuf = true, idle = false, irq = false;
    static const struct option longopts[] = {
        { "no-shared-mem", no_argument, NULL, 'N' },
        { "no-dbbuf", no_argument, NULL, 'D' },
        { "idle", no_argument, NULL, 'I' },
        { "irq", no_argument, NULL, 'Q' },
        { NULL, 0, NULL, 0 },
    };
    int opt;

    while ((opt = getopt_long(argc, argv, "s:p:w:q:n:t:b:", longopts,
                              NULL)) != -1) {
        switch (opt) {
        case 's': sock = optarg; break;
        case 'p': server_pid = atoi(optarg); break;
        case 'w': rw = optarg; break;
        case 'q': qd = atoi(optarg); break;
        case 'n': nq = atoi(optarg); break;
        case 't': secs = atoi(optarg); break;
        case 'b': bs = atoi(optarg); break;
        case 'N': shared = false; break;
        case 'D': dbbuf = false; break;
        case 'I': idle = true; break;
        case 'Q': irq = true; break;
        default:
            fprintf(stderr, "usage: nvme-bench -s SOCKET [-p PID] "
                    "[-w randread|randwrite] [-q QD] [-n QUEUES] [-t SECS] "
                    "[-b BS] [--no-shared-mem] [--no-dbbuf]\n");
            return 2;
        }
    }
    if (!sock || qd < 1 || qd >= MAX_QD || nq < 1 || nq > 16 ||
        bs < 512 || bs % 512 || secs < 1) {
        fprintf(stderr, "nvme-bench: bad arguments (see -h)\n");
        return 2;
    }
    bool is_write = strcmp(rw, "randwrite") == 0;
    VfuClient *c = vfu_client_open(sock);
    QPCIDevice *dev = qpci_device_new(c);
    uint64_t mem_size = 64ULL << 20;
    GuestMem *gm = guest_mem_new(GUEST_MEM_DEFAULT_BASE, mem_size);
    QNvme *q;

    guest_mem_map_checked(gm, c, shared);
    q = qnvme_new(dev, gm);
    q->use_msix = false;            /* vectors wired; we wait ourselves */
    qnvme_init(q, nq, qd + 1 > 64 ? qd + 1 : 64);
    dbbuf = dbbuf && (q->id.oacs & NVME_OACS_DBBUF) &&
            qnvme_dbbuf_config(q) == NVME_SUCCESS;
    const QNvmeNs *ns = qnvme_ns(q, 1);
    if (!ns) {
        fprintf(stderr, "nvme-bench: no namespace 1\n");
        return 1;
    }
    uint32_t nlb = bs / ns->lbasz;
    uint64_t nblocks = ns->nsze / nlb;      /* in units of bs */

    if (idle) {
        uint64_t buf = guest_alloc_aligned(gm, bs, 4096);
        QNvmeQueue *queue = qnvme_ioq(q, 1);
        uint32_t wake[20];
        double c0 = proc_cpu_secs(server_pid), c1;
        int64_t w0 = clock_ns(), w1;

        g_usleep((gulong)secs * 1000000);
        c1 = proc_cpu_secs(server_pid);
        w1 = clock_ns();
        for (unsigned i = 0; i < G_N_ELEMENTS(wake); i++) {
            NvmeCmd cmd;
            NvmeCqe cqe;
            int64_t t;

            /* 50-150 ms: clients probing side by side rarely collide. */
            g_usleep(50000 + g_random_int_range(0, 100000));
            qnvme_rw_cmd(q, &cmd, NVME_CMD_READ, 1, (uint64_t)i * nlb, nlb,
                         buf);
            t = clock_ns();
            qnvme_queue_cmd(q, queue, &cmd);
            qnvme_ring_sq(q, queue);
            qnvme_wait(q, queue, &cqe, 0);
            wake[i] = (clock_ns() - t) / 1000;
        }
        qsort(wake, G_N_ELEMENTS(wake), sizeof(wake[0]), cmp_u32);
        printf("nvme-bench: idle secs=%d doorbells=%s server_cpu_pct=%.2f "
               "wake_us_p50=%u max=%u\n", secs,
               q->db_mapped ? "mmap" : "trap",
               server_pid > 0 ? (c1 - c0) * 100e9 / (w1 - w0) : -1,
               wake[G_N_ELEMENTS(wake) / 2], wake[G_N_ELEMENTS(wake) - 1]);
        return 0;
    }
    /* One data buffer per slot. */
    uint64_t *bufs = g_new(uint64_t, nq * qd);
    for (int i = 0; i < nq * qd; i++) {
        bufs[i] = guest_alloc_aligned(gm, bs, 4096);
        guest_memset(gm, bufs[i], 0x5a, bs);
    }
    int64_t *start = g_new0(int64_t, nq * 65536);
    uint16_t *slot_of = g_new0(uint16_t, nq * 65536);
    GArray *lat = g_array_sized_new(false, false, sizeof(uint32_t), 1 << 20);
    uint64_t seed = 0x9e3779b97f4a7c15ULL, done = 0, errors = 0;
    double cpu0 = proc_cpu_secs(server_pid), self0 = self_cpu_secs();
    int64_t t0 = clock_ns(), end = t0 + (int64_t)secs * 1000000000LL;

    for (int qi = 0; qi < nq; qi++) {
        QNvmeQueue *queue = qnvme_ioq(q, qi + 1);

        for (int s = 0; s < qd; s++) {
            NvmeCmd cmd;
            uint64_t lba;
            uint16_t cid;

            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            lba = (seed >> 17) % nblocks * nlb;
            qnvme_rw_cmd(q, &cmd, is_write ? NVME_CMD_WRITE : NVME_CMD_READ,
                         1, lba, nlb, bufs[qi * qd + s]);
            cid = qnvme_queue_cmd(q, queue, &cmd);
            start[qi * 65536 + cid] = clock_ns();
            slot_of[qi * 65536 + cid] = s;
        }
        qnvme_ring_sq(q, queue);
    }
    while (clock_ns() < end) {
        if (!shared) {
            /* Guest RAM is ours alone: answer the server's DMA requests. */
            vfu_service(c, 0);
        }
        for (int qi = 0; qi < nq; qi++) {
            QNvmeQueue *queue = qnvme_ioq(q, qi + 1);
            int reaped = 0;

            while (qnvme_cqe_ready(q, queue)) {
                NvmeCqe cqe;
                int64_t now = clock_ns();
                uint32_t us;
                NvmeCmd cmd;
                uint64_t lba;
                uint16_t cid, s;

                guest_memread(gm, queue->cq_addr + queue->cq_head * 16,
                              &cqe, sizeof(cqe));
                if (++queue->cq_head == queue->cq_size) {
                    queue->cq_head = 0;
                    queue->phase = !queue->phase;
                }
                queue->outstanding--;
                if (NVME_CQE_STATUS(cqe.status)) {
                    errors++;
                }
                us = (now - start[qi * 65536 + cqe.cid]) / 1000;
                g_array_append_val(lat, us);
                done++;
                reaped++;
                /* Resubmit in the same slot. */
                s = slot_of[qi * 65536 + cqe.cid];
                seed = seed * 6364136223846793005ULL +
                       1442695040888963407ULL;
                lba = (seed >> 17) % nblocks * nlb;
                qnvme_rw_cmd(q, &cmd,
                             is_write ? NVME_CMD_WRITE : NVME_CMD_READ, 1,
                             lba, nlb, bufs[qi * qd + s]);
                cid = qnvme_queue_cmd(q, queue, &cmd);
                start[qi * 65536 + cid] = clock_ns();
                slot_of[qi * 65536 + cid] = s;
            }
            if (reaped) {
                qnvme_ring_cq(q, queue);
                qnvme_ring_sq(q, queue);
            } else if (irq && nq == 1) {
                qpci_eventfd_wait(dev, qpci_msix_fd(dev, queue->vector), 10);
            }
        }
    }
    double elapsed = (clock_ns() - t0) / 1e9;
    double cpu1 = proc_cpu_secs(server_pid), self1 = self_cpu_secs();

    g_array_sort(lat, cmp_u32);
    uint32_t *l = (uint32_t *)lat->data;
    uint32_t n = lat->len;
    printf("nvme-bench: rw=%s bs=%d qd=%d queues=%d shared=%s wait=%s "
           "doorbells=%s dbbuf=%s iops=%.0f "
           "mbps=%.1f lat_us_p50=%u p99=%u p999=%u errors=%" PRIu64,
           rw, bs, qd, nq, shared ? "yes" : "no", irq ? "irq" : "poll",
           q->db_mapped ? "mmap" : "trap", dbbuf ? "yes" : "no",
           done / elapsed,
           done * (double)bs / elapsed / 1e6, n ? l[n / 2] : 0,
           n ? l[(uint64_t)n * 99 / 100] : 0,
           n ? l[(uint64_t)n * 999 / 1000] : 0, errors);
    if (server_pid > 0 && cpu0 >= 0 && cpu1 >= 0 && done) {
        printf(" server_cpu_us_per_io=%.2f", (cpu1 - cpu0) * 1e6 / done);
    }
    printf(" client_cpu_us_per_io=%.2f\n",
           done ? (self1 - self0) * 1e6 / done : 0);
    return errors ? 1 : 0;
}
