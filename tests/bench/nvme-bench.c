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

/* The command line. */
typedef struct BenchOpts {
    const char *sock;
    const char *rw;
    int qd, nq, secs, bs;
    pid_t server_pid;
    bool shared, dbbuf, idle, irq;
} BenchOpts;

/* The controller as brought up, and what one I/O covers. */
typedef struct Bench {
    VfuClient *c;
    QPCIDevice *dev;
    GuestMem *gm;
    QNvme *q;
    bool dbbuf;                 /* shadow doorbells in use */
    uint32_t nlb;               /* blocks per I/O */
    uint64_t nblocks;           /* in units of bs */
} Bench;

/* The I/O loop's state: one slot per command kept in flight. */
typedef struct BenchRun {
    bool is_write;
    uint64_t *bufs;             /* data buffer of each slot */
    int64_t *start;             /* submission time, by queue and cid */
    uint16_t *slot_of;          /* slot, by queue and cid */
    GArray *lat;                /* completion latencies in us */
    uint64_t seed, done, errors;
} BenchRun;

/* 0 when @o is usable, else the exit status. */
static int parse_args(int argc, char **argv, BenchOpts *o)
{
    static const struct option longopts[] = {
        { "no-shared-mem", no_argument, NULL, 'N' },
        { "no-dbbuf", no_argument, NULL, 'D' },
        { "idle", no_argument, NULL, 'I' },
        { "irq", no_argument, NULL, 'Q' },
        { NULL, 0, NULL, 0 },
    };
    int opt;

    *o = (BenchOpts) {
        .rw = "randread", .qd = 32, .nq = 1, .secs = 5, .bs = 4096,
        .shared = true, .dbbuf = true,
    };
    while ((opt = getopt_long(argc, argv, "s:p:w:q:n:t:b:", longopts,
                              NULL)) != -1) {
        switch (opt) {
        case 's': o->sock = optarg; break;
        case 'p': o->server_pid = atoi(optarg); break;
        case 'w': o->rw = optarg; break;
        case 'q': o->qd = atoi(optarg); break;
        case 'n': o->nq = atoi(optarg); break;
        case 't': o->secs = atoi(optarg); break;
        case 'b': o->bs = atoi(optarg); break;
        case 'N': o->shared = false; break;
        case 'D': o->dbbuf = false; break;
        case 'I': o->idle = true; break;
        case 'Q': o->irq = true; break;
        default:
            fprintf(stderr, "usage: nvme-bench -s SOCKET [-p PID] "
                    "[-w randread|randwrite] [-q QD] [-n QUEUES] [-t SECS] "
                    "[-b BS] [--no-shared-mem] [--no-dbbuf]\n");
            return 2;
        }
    }
    if (!o->sock || o->qd < 1 || o->qd >= MAX_QD || o->nq < 1 ||
        o->nq > 16 || o->bs < 512 || o->bs % 512 || o->secs < 1) {
        fprintf(stderr, "nvme-bench: bad arguments (see -h)\n");
        return 2;
    }
    return 0;
}

/*
 * Connect, map guest RAM and bring the controller up with its I/O queues
 * (and shadow doorbells when offered and wanted).  False when there is no
 * namespace 1.
 */
static bool bench_open(Bench *b, const BenchOpts *o)
{
    uint64_t mem_size = 64ULL << 20;
    const QNvmeNs *ns;

    b->c = vfu_client_open(o->sock);
    b->dev = qpci_device_new(b->c);
    b->gm = guest_mem_new(GUEST_MEM_DEFAULT_BASE, mem_size);
    guest_mem_map_checked(b->gm, b->c, o->shared);
    b->q = qnvme_new(b->dev, b->gm);
    b->q->use_msix = false;         /* vectors wired; we wait ourselves */
    qnvme_init(b->q, o->nq, o->qd + 1 > 64 ? o->qd + 1 : 64);
    b->dbbuf = o->dbbuf && (b->q->id.oacs & NVME_OACS_DBBUF) &&
               qnvme_dbbuf_config(b->q) == NVME_SUCCESS;
    ns = qnvme_ns(b->q, 1);
    if (!ns) {
        fprintf(stderr, "nvme-bench: no namespace 1\n");
        return false;
    }
    b->nlb = o->bs / ns->lbasz;
    b->nblocks = ns->nsze / b->nlb;
    return true;
}

/*
 * --idle: the server's CPU while nothing happens, then how long a read
 * takes to complete after a pause.
 */
static void run_idle(Bench *b, const BenchOpts *o)
{
    QNvme *q = b->q;
    uint64_t buf = guest_alloc_aligned(b->gm, o->bs, 4096);
    QNvmeQueue *queue = qnvme_ioq(q, 1);
    uint32_t wake[20];
    double c0 = proc_cpu_secs(o->server_pid), c1;
    int64_t w0 = clock_ns(), w1;

    g_usleep((gulong)o->secs * 1000000);
    c1 = proc_cpu_secs(o->server_pid);
    w1 = clock_ns();
    for (unsigned i = 0; i < G_N_ELEMENTS(wake); i++) {
        NvmeCmd cmd;
        NvmeCqe cqe;
        int64_t t;

        /* 50-150 ms: clients probing side by side rarely collide. */
        g_usleep(50000 + g_random_int_range(0, 100000));
        qnvme_rw_cmd(q, &cmd, NVME_CMD_READ, 1, (uint64_t)i * b->nlb,
                     b->nlb, buf);
        t = clock_ns();
        qnvme_queue_cmd(q, queue, &cmd);
        qnvme_ring_sq(q, queue);
        qnvme_wait(q, queue, &cqe, 0);
        wake[i] = (clock_ns() - t) / 1000;
    }
    qsort(wake, G_N_ELEMENTS(wake), sizeof(wake[0]), cmp_u32);
    printf("nvme-bench: idle secs=%d doorbells=%s server_cpu_pct=%.2f "
           "wake_us_p50=%u max=%u\n", o->secs,
           q->db_mapped ? "mmap" : "trap",
           o->server_pid > 0 ? (c1 - c0) * 100e9 / (w1 - w0) : -1,
           wake[G_N_ELEMENTS(wake) / 2], wake[G_N_ELEMENTS(wake) - 1]);
}

/* One data buffer per slot, and the per-command bookkeeping. */
static void run_init(BenchRun *r, const Bench *b, const BenchOpts *o)
{
    int slots = o->nq * o->qd;

    r->is_write = strcmp(o->rw, "randwrite") == 0;
    r->bufs = g_new(uint64_t, slots);
    for (int i = 0; i < slots; i++) {
        r->bufs[i] = guest_alloc_aligned(b->gm, o->bs, 4096);
        guest_memset(b->gm, r->bufs[i], 0x5a, o->bs);
    }
    r->start = g_new0(int64_t, o->nq * 65536);
    r->slot_of = g_new0(uint16_t, o->nq * 65536);
    r->lat = g_array_sized_new(false, false, sizeof(uint32_t), 1 << 20);
    r->seed = 0x9e3779b97f4a7c15ULL;
    r->done = 0;
    r->errors = 0;
}

/* Queue (without ringing) a command to a random block in slot @s. */
static void run_submit(BenchRun *r, const Bench *b, const BenchOpts *o,
                       int qi, QNvmeQueue *queue, uint16_t s)
{
    NvmeCmd cmd;
    uint64_t lba;
    uint16_t cid;

    r->seed = r->seed * 6364136223846793005ULL + 1442695040888963407ULL;
    lba = (r->seed >> 17) % b->nblocks * b->nlb;
    qnvme_rw_cmd(b->q, &cmd, r->is_write ? NVME_CMD_WRITE : NVME_CMD_READ,
                 1, lba, b->nlb, r->bufs[qi * o->qd + s]);
    cid = qnvme_queue_cmd(b->q, queue, &cmd);
    r->start[qi * 65536 + cid] = clock_ns();
    r->slot_of[qi * 65536 + cid] = s;
}

/*
 * Consume the completions ready on queue @qi, each one's slot getting a
 * new command; how many there were.
 */
static int run_reap(BenchRun *r, const Bench *b, const BenchOpts *o, int qi)
{
    QNvmeQueue *queue = qnvme_ioq(b->q, qi + 1);
    int reaped = 0;

    while (qnvme_cqe_ready(b->q, queue)) {
        NvmeCqe cqe;
        int64_t now = clock_ns();
        uint32_t us;

        guest_memread(b->gm, queue->cq_addr + queue->cq_head * 16,
                      &cqe, sizeof(cqe));
        if (++queue->cq_head == queue->cq_size) {
            queue->cq_head = 0;
            queue->phase = !queue->phase;
        }
        queue->outstanding--;
        if (NVME_CQE_STATUS(cqe.status)) {
            r->errors++;
        }
        us = (now - r->start[qi * 65536 + cqe.cid]) / 1000;
        g_array_append_val(r->lat, us);
        r->done++;
        reaped++;
        /* Resubmit in the same slot. */
        run_submit(r, b, o, qi, queue, r->slot_of[qi * 65536 + cqe.cid]);
    }
    return reaped;
}

/* Fill every slot, then keep them full until @end. */
static void run_io(BenchRun *r, const Bench *b, const BenchOpts *o,
                   int64_t end)
{
    for (int qi = 0; qi < o->nq; qi++) {
        QNvmeQueue *queue = qnvme_ioq(b->q, qi + 1);

        for (int s = 0; s < o->qd; s++) {
            run_submit(r, b, o, qi, queue, s);
        }
        qnvme_ring_sq(b->q, queue);
    }
    while (clock_ns() < end) {
        if (!o->shared) {
            /* Guest RAM is ours alone: answer the server's DMA requests. */
            vfu_service(b->c, 0);
        }
        for (int qi = 0; qi < o->nq; qi++) {
            QNvmeQueue *queue = qnvme_ioq(b->q, qi + 1);

            if (run_reap(r, b, o, qi)) {
                qnvme_ring_cq(b->q, queue);
                qnvme_ring_sq(b->q, queue);
            } else if (o->irq && o->nq == 1) {
                qpci_eventfd_wait(b->dev, qpci_msix_fd(b->dev, queue->vector),
                                  10);
            }
        }
    }
}

/* The result line (see the top of the file). */
static void run_report(BenchRun *r, const Bench *b, const BenchOpts *o,
                       double elapsed, double cpu0, double cpu1,
                       double self0, double self1)
{
    uint32_t *l = (uint32_t *)r->lat->data;
    uint32_t n = r->lat->len;
    uint64_t done = r->done;

    g_array_sort(r->lat, cmp_u32);
    printf("nvme-bench: rw=%s bs=%d qd=%d queues=%d shared=%s wait=%s "
           "doorbells=%s dbbuf=%s iops=%.0f "
           "mbps=%.1f lat_us_p50=%u p99=%u p999=%u errors=%" PRIu64,
           o->rw, o->bs, o->qd, o->nq, o->shared ? "yes" : "no",
           o->irq ? "irq" : "poll", b->q->db_mapped ? "mmap" : "trap",
           b->dbbuf ? "yes" : "no", done / elapsed,
           done * (double)o->bs / elapsed / 1e6, n ? l[n / 2] : 0,
           n ? l[(uint64_t)n * 99 / 100] : 0,
           n ? l[(uint64_t)n * 999 / 1000] : 0, r->errors);
    if (o->server_pid > 0 && cpu0 >= 0 && cpu1 >= 0 && done) {
        printf(" server_cpu_us_per_io=%.2f", (cpu1 - cpu0) * 1e6 / done);
    }
    printf(" client_cpu_us_per_io=%.2f\n",
           done ? (self1 - self0) * 1e6 / done : 0);
}

int main(int argc, char **argv)
{
    BenchOpts o;
    Bench b;
    BenchRun r;
    double cpu0, cpu1, self0, self1, elapsed;
    int64_t t0;
    int rc = parse_args(argc, argv, &o);

    if (rc) {
        return rc;
    }
    if (!bench_open(&b, &o)) {
        return 1;
    }
    if (o.idle) {
        run_idle(&b, &o);
        return 0;
    }
    run_init(&r, &b, &o);
    cpu0 = proc_cpu_secs(o.server_pid);
    self0 = self_cpu_secs();
    t0 = clock_ns();
    run_io(&r, &b, &o, t0 + (int64_t)o.secs * 1000000000LL);
    elapsed = (clock_ns() - t0) / 1e9;
    cpu1 = proc_cpu_secs(o.server_pid);
    self1 = self_cpu_secs();
    run_report(&r, &b, &o, elapsed, cpu0, cpu1, self0, self1);
    return r.errors ? 1 : 0;
}
