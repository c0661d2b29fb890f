/*
 * Live upgrade blackout under load.  One iovd serves all five devices:
 * nvme0 and vb0 (virtio-blk) on an image file each, vn0 (virtio-net) and
 * e0 (e1000) wired back to back by a -netdev stream pair, and t0
 * (pci-testdev).  While it is upgraded again and again:
 *
 *   - nvme-bench and virtio-blk-bench (processes of their own, beside
 *     this program) keep 32 random 4 KiB writes in flight each;
 *   - a thread of this program sends frames vn0 -> e0 and e0 -> vn0 one
 *     after the other, each checked on arrival, and every 16 frames has
 *     t0 copy 4 KiB by DMA.
 *
 * The blackout of an upgrade is the new daemon's downtime (query-status
 * upgrade.downtime-us): from the moment the old process began to stop its
 * devices until the new one started them.  What the "guest" saw: the
 * longest pause between two frames of the net thread, and the block
 * loads' slowest requests (p999, max is in their own lines).
 *
 *     upgrade-bench [--iovd PATH] [--upgrades N] [--iothreads]
 *
 * One result line:
 *     upgrade-bench: devices=5 loop=main|iothreads upgrades=N
 *       downtime_ms_p50=... max=... net_gap_ms_max=... frames=...
 *       nvme_iops=... nvme_p999_us=... vblk_iops=... vblk_p999_us=...
 *       errors=0 target_ms=50: ok|ABOVE TARGET
 */
#include "util/osdep.h"

#include <getopt.h>

#include "tests/qtest/libqos/e1000.h"
#include "tests/qtest/libqos/guest-mem.h"
#include "tests/qtest/libqos/iovd-upgrade.h"
#include "tests/qtest/libqos/pci-testdev.h"
#include "tests/qtest/libqos/pci.h"
#include "tests/qtest/libqos/vfu-client.h"
#include "tests/qtest/libqos/virtio-net.h"

#define TARGET_MS       50
#define IMG_SIZE        (128u << 20)
#define GM_SIZE         (32ull << 20)
#define SPACING_MS      500         /* between upgrades */
#define WARMUP_MS       1000
#define FRAME_LEN       256
#define ETH_TYPE_BENCH  0x88b5

static const uint8_t vn_mac[6] = { 0x52, 0x54, 0x00, 0xbe, 0x00, 0x01 };
static const uint8_t e0_mac[6] = { 0x52, 0x54, 0x00, 0xbe, 0x00, 0x02 };

typedef struct Opts {
    const char *iovd;
    unsigned upgrades;
    bool iothreads;
} Opts;

/* The net and testdev side, on a thread of its own. */
typedef struct NetLoad {
    GuestMem *gm[3];
    VfuClient *c[3];
    QPCIDevice *pdev[3];
    QVirtioNet *vn;
    QE1000 *e1k;
    GThread *thread;
    gint stop;
    uint64_t frames, dmas, errors;
    int64_t max_gap_ns;
} NetLoad;

/* A block load: a bench program of its own, its output line. */
typedef struct BlkLoad {
    GPid pid;
    int out_fd;
    char line[1024];
} BlkLoad;

static int parse_args(int argc, char **argv, Opts *o)
{
    static const struct option longopts[] = {
        { "iovd", required_argument, NULL, 'i' },
        { "upgrades", required_argument, NULL, 'n' },
        { "iothreads", no_argument, NULL, 'T' },
        { NULL, 0, NULL, 0 },
    };
    int opt;

    *o = (Opts) { .upgrades = 10 };
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 'i': o->iovd = optarg; break;
        case 'n': o->upgrades = atoi(optarg); break;
        case 'T': o->iothreads = true; break;
        default:
            fprintf(stderr, "usage: upgrade-bench [--iovd PATH] "
                    "[--upgrades N] [--iothreads]\n");
            return 2;
        }
    }
    if (o->iovd) {
        g_setenv("IOVD_BIN", o->iovd, true);
    }
    return o->upgrades ? 0 : 2;
}

/* The five devices; with @iothreads the block ones on io0, the rest io1. */
static void configure(IovdProc *p, bool iothreads)
{
    const char *dir = iovd_proc_tmpdir(p);
    g_autofree char *nimg = iovd_proc_image(p, "nvme.img", IMG_SIZE);
    g_autofree char *vimg = iovd_proc_image(p, "vblk.img", IMG_SIZE);
    const char *io0 = iothreads ? ",iothread=io0" : "";
    const char *io1 = iothreads ? ",iothread=io1" : "";

    if (iothreads) {
        iovd_proc_add_args(p, "-object", "iothread,id=io0",
                           "-object", "iothread,id=io1", NULL);
    }
    iovd_proc_add_args(p, "-qmp", NULL);
    iovd_proc_add_argf(p, "unix:%s/qmp.sock,server=on,wait=off", dir);
    iovd_proc_add_args(p, "-blockdev", NULL);
    iovd_proc_add_argf(p, "driver=file,node-name=d0,filename=%s", nimg);
    iovd_proc_add_args(p, "-blockdev", NULL);
    iovd_proc_add_argf(p, "driver=file,node-name=d1,filename=%s", vimg);
    iovd_proc_add_args(p, "-device", NULL);
    iovd_proc_add_argf(p, "nvme,id=nvme0,drive=d0,serial=UPB,"
                       "socket=%s/nvme0.sock%s", dir, io0);
    iovd_proc_add_args(p, "-device", NULL);
    iovd_proc_add_argf(p, "virtio-blk-pci,id=vb0,drive=d1,"
                       "socket=%s/vb0.sock%s", dir, io0);
    /* vn0's netdev listens, e0's connects to it: a wire in the daemon. */
    iovd_proc_add_args(p, "-netdev", NULL);
    iovd_proc_add_argf(p, "stream,id=w0,server=on,addr.type=unix,"
                       "addr.path=%s/wire", dir);
    iovd_proc_add_args(p, "-netdev", NULL);
    iovd_proc_add_argf(p, "stream,id=w1,server=off,addr.type=unix,"
                       "addr.path=%s/wire,reconnect-ms=20", dir);
    iovd_proc_add_args(p, "-device", NULL);
    iovd_proc_add_argf(p, "virtio-net-pci,id=vn0,netdev=w0,"
                       "mac=52:54:00:be:00:01,socket=%s/vn0.sock%s", dir,
                       io1);
    iovd_proc_add_args(p, "-device", NULL);
    iovd_proc_add_argf(p, "e1000,id=e0,netdev=w1,mac=52:54:00:be:00:02,"
                       "socket=%s/e0.sock%s", dir, io1);
    iovd_proc_add_args(p, "-device", NULL);
    iovd_proc_add_argf(p, "pci-testdev,id=t0,socket=%s/t0.sock%s", dir,
                       io1);
}

/* Connect device @i (vn0, e0, t0) of @p with guest RAM of its own. */
static void net_open(NetLoad *n, IovdProc *p, unsigned i, const char *id)
{
    g_autofree char *name = g_strdup_printf("%s.sock", id);
    g_autofree char *sock = iovd_proc_path(p, name);

    n->gm[i] = guest_mem_new(GUEST_MEM_DEFAULT_BASE, GM_SIZE);
    n->c[i] = vfu_client_open(sock);
    n->pdev[i] = qpci_device_new(n->c[i]);
    guest_mem_map_checked(n->gm[i], n->c[i], true);
}

static size_t frame(uint8_t *f, const uint8_t *dst, const uint8_t *src,
                    uint32_t seq)
{
    memset(f, 0, FRAME_LEN);
    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    stw_be_p(f + 12, ETH_TYPE_BENCH);
    stl_be_p(f + 14, seq);
    return FRAME_LEN;
}

/* The next bench frame on vn0 (@to_vn) or e0: its sequence number, or -1. */
static int64_t net_recv(NetLoad *n, bool to_vn)
{
    uint8_t buf[2048];

    for (;;) {
        ssize_t len = to_vn ? qvnet_rx(n->vn, 0, buf, sizeof(buf), NULL,
                                       10000)
                            : qe1000_rx(n->e1k, buf, sizeof(buf), NULL,
                                        10000);

        if (len < 0) {
            return -1;
        }
        if (len >= 18 && lduw_be_p(buf + 12) == ETH_TYPE_BENCH) {
            return ldl_be_p(buf + 14);
        }
    }
}

/* One frame each way, then (every 16th) a testdev DMA; false: lost. */
static bool net_step(NetLoad *n, uint32_t seq, uint64_t dma_buf)
{
    uint8_t f[FRAME_LEN];

    qvnet_tx(n->vn, 0, f, frame(f, e0_mac, vn_mac, seq), NULL);
    qvnet_tx_reclaim(n->vn, 0);
    if (net_recv(n, false) != seq) {
        return false;
    }
    qe1000_tx(n->e1k, f, frame(f, vn_mac, e0_mac, seq), NULL);
    if (net_recv(n, true) != seq) {
        return false;
    }
    n->frames += 2;
    if (seq % 16 == 0) {
        testdev_writel(n->pdev[2], TESTDEV_REG_INT_ACK, ~0u);
        if (!(testdev_dma(n->pdev[2], dma_buf, 4096, 0x1000,
                          TESTDEV_DMA_FROM_DEVICE) & TESTDEV_INT_DMA_DONE)) {
            return false;
        }
        n->dmas++;
    }
    return true;
}

static gpointer net_run(gpointer opaque)
{
    NetLoad *n = opaque;
    uint64_t dma_buf = guest_alloc(n->gm[2], 4096);
    int64_t last = clock_ns();

    for (uint32_t seq = 0; !g_atomic_int_get(&n->stop); seq++) {
        int64_t now;

        if (!net_step(n, seq, dma_buf)) {
            n->errors++;
            fprintf(stderr, "upgrade-bench: frame %u lost\n", seq);
            break;
        }
        now = clock_ns();
        n->max_gap_ns = MAX(n->max_gap_ns, now - last);
        last = now;
    }
    return NULL;
}

static void net_start(NetLoad *n, IovdProc *p)
{
    memset(n, 0, sizeof(*n));
    net_open(n, p, 0, "vn0");
    n->vn = qvnet_new(n->pdev[0], n->gm[0]);
    qvnet_init(n->vn, &(QVirtioNetInit){ .features = QVNET_LINUX_FEATURES,
                                         .rx_post = 64 });
    net_open(n, p, 1, "e0");
    n->e1k = qe1000_new(n->pdev[1], n->gm[1]);
    qe1000_init(n->e1k, &(QE1000Config){ .rx_ring = 64, .tx_ring = 64 });
    net_open(n, p, 2, "t0");
    qpci_device_enable(n->pdev[2]);
    qpci_msix_enable(n->pdev[2], 2);
    n->thread = g_thread_new("net-load", net_run, n);
}

/* @prog (beside this program) against @sock for @secs; its stdout kept. */
static void blk_start(BlkLoad *b, const char *prog, const char *sock,
                      unsigned secs)
{
    g_autofree char *self = g_file_read_link("/proc/self/exe", NULL);
    g_autofree char *dir = g_path_get_dirname(self);
    g_autofree char *path = g_build_filename(dir, prog, NULL);
    g_autofree char *t = g_strdup_printf("%u", secs);
    char *argv[] = { path, (char *)"-s", (char *)sock, (char *)"-w",
                     (char *)"randwrite", (char *)"-q", (char *)"32",
                     (char *)"-t", t, NULL };
    GError *err = NULL;

    memset(b, 0, sizeof(*b));
    if (!g_spawn_async_with_pipes(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD,
                                  NULL, NULL, &b->pid, NULL, &b->out_fd,
                                  NULL, &err)) {
        fprintf(stderr, "upgrade-bench: %s: %s\n", prog, err->message);
        exit(1);
    }
}

/* Its result line; false when it failed. */
static bool blk_finish(BlkLoad *b)
{
    size_t len = 0;
    ssize_t r;
    int status;

    while (len < sizeof(b->line) - 1 &&
           (r = read(b->out_fd, b->line + len,
                     sizeof(b->line) - 1 - len)) > 0) {
        len += r;
    }
    b->line[len] = '\0';
    g_strchomp(b->line);
    close(b->out_fd);
    waitpid(b->pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* The value of "@key=" in @line, or -1. */
static double field(const char *line, const char *key)
{
    g_autofree char *k = g_strdup_printf(" %s=", key);
    const char *p = strstr(line, k);

    return p ? g_ascii_strtod(p + strlen(k), NULL) : -1;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return x < y ? -1 : x > y;
}

/*
 * Upgrade @o->upgrades times, @SPACING_MS apart: the downtimes in us into
 * @downtime; returns the daemon that runs in the end.
 */
static IovdProc *upgrade_loop(const Opts *o, IovdProc *home,
                              QmpClient **qmp, GArray *downtime)
{
    g_autofree char *qmp_path = iovd_proc_path(home, "qmp.sock");
    IovdProc *cur = home;

    for (unsigned i = 0; i < o->upgrades; i++) {
        int64_t us = iovd_upgrade_step(home, &cur, qmp, qmp_path);

        g_array_append_val(downtime, us);
        g_usleep(SPACING_MS * 1000);
    }
    return cur;
}

int main(int argc, char **argv)
{
    Opts o;
    NetLoad net;
    BlkLoad nvme, vblk;
    g_autoptr(IovdProc) home = NULL;
    g_autofree char *nsock = NULL, *vsock = NULL;
    g_autoptr(GArray) downtime = g_array_new(false, false, sizeof(int64_t));
    IovdProc *cur;
    QmpClient *qmp;
    int64_t *d;
    bool ok;
    int rc = parse_args(argc, argv, &o);

    if (rc) {
        return rc;
    }
    home = iovd_proc_new();
    configure(home, o.iothreads);
    iovd_proc_start(home);
    qmp = qmp_client_open(iovd_proc_path(home, "qmp.sock"));
    net_start(&net, home);
    nsock = iovd_proc_path(home, "nvme0.sock");
    vsock = iovd_proc_path(home, "vb0.sock");
    rc = (WARMUP_MS + o.upgrades * SPACING_MS) / 1000 + 2;
    blk_start(&nvme, "nvme-bench", nsock, rc);
    blk_start(&vblk, "virtio-blk-bench", vsock, rc);
    g_usleep(WARMUP_MS * 1000);

    cur = upgrade_loop(&o, home, &qmp, downtime);
    ok = blk_finish(&nvme) & blk_finish(&vblk);
    g_atomic_int_set(&net.stop, true);
    g_thread_join(net.thread);
    qmp_client_free(qmp);
    iovd_proc_stop(cur);
    if (cur != home) {
        iovd_proc_free(cur);
    }
    ok = ok && !net.errors && field(nvme.line, "errors") == 0 &&
         field(vblk.line, "errors") == 0;

    g_array_sort(downtime, cmp_i64);
    d = (int64_t *)downtime->data;
    printf("upgrade-bench: devices=5 loop=%s upgrades=%u "
           "downtime_ms_p50=%.1f max=%.1f net_gap_ms_max=%.1f frames=%"
           PRIu64 " dmas=%" PRIu64 " nvme_iops=%.0f nvme_p999_us=%.0f "
           "vblk_iops=%.0f vblk_p999_us=%.0f errors=%s target_ms=%d: %s\n",
           o.iothreads ? "iothreads" : "main", downtime->len,
           d[downtime->len / 2] / 1e3, d[downtime->len - 1] / 1e3,
           net.max_gap_ns / 1e6, net.frames, net.dmas,
           field(nvme.line, "iops"), field(nvme.line, "p999"),
           field(vblk.line, "iops"), field(vblk.line, "p999"),
           ok ? "0" : "SOME", TARGET_MS,
           d[downtime->len - 1] <= TARGET_MS * 1000 ? "ok" : "ABOVE TARGET");
    if (!ok) {
        fprintf(stderr, "upgrade-bench: nvme: %s\nupgrade-bench: vblk: %s\n",
                nvme.line, vblk.line);
    }
    return ok ? 0 : 1;
}
