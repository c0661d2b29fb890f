/*
 * NVMe controller tests: iovd with an nvme device on a raw image file,
 * driven by the libqos NVMe driver (tests/qtest/libqos/nvme.h) playing both
 * the VMM and the guest's nvme driver.
 *
 * Every test gets a fresh daemon and image; the teardown stops the daemon
 * with SIGTERM and requires exit status 0 (so no test may crash it).
 */
#include "util/osdep.h"

#include <check.h>
#include <sys/stat.h>

#include "hw/nvme/nvme-spec.h"
#include "hw/pci/pci-regs.h"
#include "tests/qtest/libqos/qos-check.h"
#include "tests/qtest/libqos/iovd-proc.h"
#include "tests/qtest/libqos/vfu-client.h"
#include "tests/qtest/libqos/guest-mem.h"
#include "tests/qtest/libqos/pci.h"
#include "tests/qtest/libqos/qmp-client.h"
#include "tests/qtest/libqos/nvme.h"

#define IMG_SIZE        (64ULL << 20)
#define GM_SIZE         (64ULL << 20)
#define CONFIG_REGION   VFIO_PCI_CONFIG_REGION_INDEX
#define DNR(st)         ((uint16_t)((st) | NVME_DNR))

typedef struct TestEnv {
    IovdProc *proc;
    char *img;                  /* backing file of namespace 1 */
    char *sock;
    char *qmp_path;
    GPtrArray *extra;           /* arguments after the controller */
    VfuClient *c;
    QPCIDevice *dev;
    GuestMem *gm;
    QNvme *q;
    QmpClient *qmp;
} TestEnv;

static TestEnv env;

/* ---- environment ---- */

static char *env_path(const char *name)
{
    return iovd_proc_path(env.proc, name);
}

static char *make_image(const char *name, uint64_t size)
{
    char *path = env_path(name);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

    ck_assert_msg(fd >= 0, "create %s: %s", path, g_strerror(errno));
    ck_assert_int_eq(ftruncate(fd, size), 0);
    close(fd);
    return path;
}

static void env_new(void)
{
    qos_check_init();
    memset(&env, 0, sizeof(env));
    env.proc = iovd_proc_new();
    env.img = make_image("d0.img", IMG_SIZE);
    env.sock = env_path("nvme0.sock");
    env.extra = g_ptr_array_new_with_free_func(g_free);
}

static void env_arg(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static void env_arg(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    g_ptr_array_add(env.extra, g_strdup_vprintf(fmt, ap));
    va_end(ap);
}

/* Start iovd with nvme0 on d0.img (@props appended) and connect. */
static void env_start(const char *props, bool share_fd)
{
    iovd_proc_add_argf(env.proc, "-blockdev");
    iovd_proc_add_argf(env.proc, "driver=file,node-name=d0,filename=%s",
                       env.img);
    iovd_proc_add_argf(env.proc, "-device");
    iovd_proc_add_argf(env.proc, "nvme,id=nvme0,drive=d0,serial=S1,"
                       "socket=%s%s", env.sock, props ? props : "");
    for (unsigned i = 0; i < env.extra->len; i++) {
        iovd_proc_add_argf(env.proc, "%s",
                           (char *)g_ptr_array_index(env.extra, i));
    }
    if (env.qmp_path) {
        iovd_proc_add_argf(env.proc, "-qmp");
        iovd_proc_add_argf(env.proc, "unix:%s,server=on,wait=off",
                           env.qmp_path);
    }
    iovd_proc_start(env.proc);
    env.c = vfu_client_open(env.sock);
    env.dev = qpci_device_new(env.c);
    env.gm = guest_mem_new(GUEST_MEM_DEFAULT_BASE, GM_SIZE);
    guest_mem_map_checked(env.gm, env.c, share_fd);
    env.q = qnvme_new(env.dev, env.gm);
    if (env.qmp_path) {
        env.qmp = qmp_client_open(env.qmp_path);
    }
}

/* The usual: default controller, 4 queue pairs of 64 entries. */
static QNvme *start_default(void)
{
    env_new();
    env_start(NULL, true);
    qnvme_init(env.q, 4, 64);
    return env.q;
}

static void teardown(void)
{
    if (env.qmp) {
        qmp_client_free(env.qmp);
    }
    qnvme_free(env.q);
    qpci_device_free(env.dev);
    guest_mem_free(env.gm);
    vfu_client_free(env.c);
    if (env.proc) {
        iovd_proc_stop(env.proc);
        iovd_proc_free(env.proc);
    }
    if (env.extra) {
        g_ptr_array_free(env.extra, true);
    }
    g_free(env.img);
    g_free(env.sock);
    g_free(env.qmp_path);
    memset(&env, 0, sizeof(env));
}

/* ---- helpers ---- */

static uint8_t pattern(unsigned seed, size_t i)
{
    return (uint8_t)(i * 131 + seed * 29 + (i >> 9) * 7 + (i >> 16) + 1);
}

static void fill_pattern(uint8_t *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++) {
        buf[i] = pattern(seed, i);
    }
}

static void assert_same(const uint8_t *got, const uint8_t *want, size_t len,
                        const char *what)
{
    for (size_t i = 0; i < len; i++) {
        if (got[i] != want[i]) {
            ck_abort_msg("%s: byte %zu is 0x%02x, expected 0x%02x", what, i,
                         got[i], want[i]);
        }
    }
}

static void assert_zero(const uint8_t *got, size_t len, const char *what)
{
    for (size_t i = 0; i < len; i++) {
        if (got[i]) {
            ck_abort_msg("%s: byte %zu is 0x%02x, expected 0", what, i,
                         got[i]);
        }
    }
}

/* Read the backing file directly, as a check of what reached it. */
static void file_read(const char *path, uint64_t off, void *buf, size_t len)
{
    int fd = open(path, O_RDONLY);
    ssize_t r;

    ck_assert_msg(fd >= 0, "open %s: %s", path, g_strerror(errno));
    r = pread(fd, buf, len, off);
    close(fd);
    ck_assert_msg(r == (ssize_t)len, "pread %s: %zd", path, r);
}

static void file_write(const char *path, uint64_t off, const void *buf,
                       size_t len)
{
    int fd = open(path, O_WRONLY);

    ck_assert(fd >= 0);
    ck_assert_int_eq(pwrite(fd, buf, len, off), (ssize_t)len);
    close(fd);
}

/* Guest buffer filled with @seed's pattern. */
static uint64_t guest_pattern(QNvme *q, size_t len, unsigned seed)
{
    uint64_t g = guest_alloc_aligned(q->gm, len, 4096);
    g_autofree uint8_t *b = g_malloc(len);

    fill_pattern(b, len, seed);
    guest_memwrite(q->gm, g, b, len);
    return g;
}

/* Write @nlb blocks of pattern @seed at @slba, then read them back. */
static void write_read_check(QNvme *q, QNvmeQueue *queue, uint32_t nsid,
                             uint64_t slba, uint32_t nlb, unsigned seed)
{
    const QNvmeNs *ns = qnvme_ns(q, nsid);
    size_t len = (size_t)nlb * ns->lbasz;
    uint64_t w = guest_pattern(q, len, seed);
    uint64_t r = guest_alloc_aligned(q->gm, len, 4096);
    g_autofree uint8_t *want = g_malloc(len);
    g_autofree uint8_t *got = g_malloc(len);

    ck_assert_int_eq(qnvme_rw(q, queue, NVME_CMD_WRITE, nsid, slba, nlb, w),
                     NVME_SUCCESS);
    guest_memset(q->gm, r, 0xee, len);
    ck_assert_int_eq(qnvme_rw(q, queue, NVME_CMD_READ, nsid, slba, nlb, r),
                     NVME_SUCCESS);
    fill_pattern(want, len, seed);
    guest_memread(q->gm, r, got, len);
    assert_same(got, want, len, "read back");
    guest_free(q->gm, w);
    guest_free(q->gm, r);
}

static uint16_t admin_simple(QNvme *q, uint8_t opcode, uint32_t nsid,
                             uint32_t cdw10, uint32_t cdw11, uint64_t prp1,
                             NvmeCqe *cqe)
{
    NvmeCmd cmd;

    memset(&cmd, 0, sizeof(cmd));
    cmd.opcode = opcode;
    cmd.nsid = nsid;
    cmd.cdw10 = cdw10;
    cmd.cdw11 = cdw11;
    cmd.dptr.prp1 = prp1;
    return qnvme_admin(q, &cmd, cqe);
}

static uint16_t io_cmd(QNvme *q, QNvmeQueue *queue, NvmeCmd *cmd)
{
    return qnvme_cmd(q, queue, cmd, NULL);
}

/* Low 64 bits of a 128-bit SMART counter (a packed struct member). */
#define smart_u64(field) ((field)[0])

/* ---- identity, registers, Identify ---- */

START_TEST(test_pci_identity)
{
    QNvme *q = start_default();
    QPCIDevice *d = env.dev;
    uint8_t msix;
    uint16_t flags;

    ck_assert_int_eq(qpci_config_readw(d, PCI_VENDOR_ID), 0x1b36);
    ck_assert_int_eq(qpci_config_readw(d, PCI_DEVICE_ID), 0x0010);
    ck_assert_int_eq(qpci_config_readb(d, PCI_CLASS_PROG), 0x02);
    ck_assert_int_eq(qpci_config_readw(d, PCI_CLASS_DEVICE), 0x0108);
    ck_assert_int_eq(qpci_config_readb(d, PCI_INTERRUPT_PIN), 1);
    ck_assert(qpci_find_capability(d, PCI_CAP_ID_PM, 0));
    ck_assert(qpci_find_capability(d, PCI_CAP_ID_EXP, 0));
    msix = qpci_find_capability(d, PCI_CAP_ID_MSIX, 0);
    ck_assert(msix);
    flags = qpci_config_readw(d, msix + PCI_MSIX_FLAGS);
    /* 8 I/O queue pairs + admin. */
    ck_assert_int_eq((flags & PCI_MSIX_FLAGS_QSIZE) + 1, 9);
    ck_assert_int_eq(qpci_config_readl(d, msix + PCI_MSIX_TABLE) &
                     PCI_MSIX_BIR_MASK, NVME_BAR_MSIX);
    ck_assert_int_eq(qpci_config_readl(d, msix + PCI_MSIX_PBA) &
                     PCI_MSIX_BIR_MASK, NVME_BAR_MSIX);
    /* BAR0: 64-bit memory, doorbells on their own page. */
    ck_assert_int_eq(qpci_config_readl(d, PCI_BASE_ADDRESS_0) & 0x7,
                     PCI_BASE_ADDRESS_MEM_TYPE_64);
    ck_assert_uint_ge(qpci_bar_size(d, NVME_BAR_REGS), 0x2000);
    ck_assert_uint_ge(qpci_bar_size(d, NVME_BAR_MSIX), 4096);
    (void)q;
}
END_TEST

START_TEST(test_registers)
{
    QNvme *q;
    uint64_t cap;
    uint32_t lo, hi;

    env_new();
    env_start(NULL, true);
    q = env.q;
    cap = qnvme_readq(q, NVME_REG_CAP);
    ck_assert_int_eq(NVME_CAP_MQES(cap), 1023);
    ck_assert(cap & NVME_CAP_CQR);
    ck_assert_int_eq(NVME_CAP_DSTRD(cap), 0);
    ck_assert(!(cap & NVME_CAP_NSSRS));
    ck_assert(cap & (NVME_CAP_CSS_NVM << NVME_CAP_CSS_SHIFT));
    ck_assert_int_eq(NVME_CAP_MPSMIN(cap), 0);
    ck_assert_int_eq(NVME_CAP_MPSMAX(cap), 4);
    ck_assert_int_gt(NVME_CAP_TO(cap), 0);
    lo = qnvme_readl(q, NVME_REG_CAP);
    hi = qnvme_readl(q, NVME_REG_CAP + 4);
    ck_assert_uint_eq(((uint64_t)hi << 32) | lo, cap);
    ck_assert_uint_eq(qnvme_readl(q, NVME_REG_VS), NVME_VS_1_4);
    ck_assert_uint_eq(qnvme_readl(q, NVME_REG_CSTS), 0);
    ck_assert_uint_eq(qnvme_readl(q, NVME_REG_CC), 0);

    /* Read-only registers ignore writes; NSSR is not supported. */
    qnvme_writel(q, NVME_REG_CAP, 0);
    qnvme_writel(q, NVME_REG_VS, 0);
    ck_assert_uint_eq(qnvme_readq(q, NVME_REG_CAP), cap);
    ck_assert_uint_eq(qnvme_readl(q, NVME_REG_VS), NVME_VS_1_4);
    qnvme_writel(q, NVME_REG_NSSR, NVME_NSSR_RESET);
    ck_assert_uint_eq(qnvme_readl(q, NVME_REG_NSSR), 0);
    ck_assert_uint_eq(qnvme_readl(q, NVME_REG_CSTS), 0);

    /* Admin queue registers, in halves and whole. */
    qnvme_writel(q, NVME_REG_AQA, NVME_AQA(31, 15));
    ck_assert_uint_eq(qnvme_readl(q, NVME_REG_AQA), NVME_AQA(31, 15));
    qnvme_writeq(q, NVME_REG_ASQ, 0x123456789000ULL);
    ck_assert_uint_eq(qnvme_readq(q, NVME_REG_ASQ), 0x123456789000ULL);
    qnvme_writel(q, NVME_REG_ACQ, 0xabcde000);
    qnvme_writel(q, NVME_REG_ACQ + 4, 0x12);
    ck_assert_uint_eq(qnvme_readq(q, NVME_REG_ACQ), 0x12abcde000ULL);

    /* INTMS / INTMC (no MSI-X wired): set and clear the mask. */
    qnvme_writel(q, NVME_REG_INTMS, 0x5);
    ck_assert_uint_eq(qnvme_readl(q, NVME_REG_INTMS), 0x5);
    ck_assert_uint_eq(qnvme_readl(q, NVME_REG_INTMC), 0x5);
    qnvme_writel(q, NVME_REG_INTMC, 0x1);
    ck_assert_uint_eq(qnvme_readl(q, NVME_REG_INTMS), 0x4);

    /*
     * Doorbells before enable are ignored.  Trapped ones read as zero; in
     * memory (polling iothread) the page holds what was written until
     * enable makes the admin queue (what a slot reads then is the
     * device's business: doorbells are write-only).
     */
    qpci_bar_writel(env.dev, NVME_BAR_REGS, NVME_DB_SQ_OFF(0, 0), 3);
    ck_assert_uint_eq(qpci_bar_readl(env.dev, NVME_BAR_REGS,
                                     NVME_DB_SQ_OFF(0, 0)),
                      q->db_mapped ? 3 : 0);
    qnvme_enable(q);
    ck_assert_uint_eq(qnvme_readl(q, NVME_REG_CSTS) &
                      (NVME_CSTS_RDY | NVME_CSTS_CFS), NVME_CSTS_RDY);
    if (q->db_mapped) {
        ck_assert_uint_ne(qpci_bar_readl(env.dev, NVME_BAR_REGS,
                                         NVME_DB_SQ_OFF(0, 0)), 3);
    }
}
END_TEST

START_TEST(test_enable_errors)
{
    QNvme *q;
    uint32_t cc = qnvme_default_cc();
    uint32_t csts;

    env_new();
    env_start(NULL, true);
    q = env.q;

    /* I/O SQ entry size other than 64 bytes: controller fatal status. */
    csts = qnvme_enable_cc(q, 16, (cc & ~(0xfu << NVME_CC_IOSQES_SHIFT)) |
                           (5u << NVME_CC_IOSQES_SHIFT));
    ck_assert_uint_eq(csts & (NVME_CSTS_RDY | NVME_CSTS_CFS), NVME_CSTS_CFS);
    qnvme_disable(q);
    ck_assert_uint_eq(qnvme_readl(q, NVME_REG_CSTS), 0);

    csts = qnvme_enable_cc(q, 16, (cc & ~(0xfu << NVME_CC_IOCQES_SHIFT)) |
                           (6u << NVME_CC_IOCQES_SHIFT));
    ck_assert_uint_eq(csts & NVME_CSTS_CFS, NVME_CSTS_CFS);
    qnvme_disable(q);

    /* Page size above CAP.MPSMAX. */
    csts = qnvme_enable_cc(q, 16, cc | (5u << NVME_CC_MPS_SHIFT));
    ck_assert_uint_eq(csts & NVME_CSTS_CFS, NVME_CSTS_CFS);
    qnvme_disable(q);

    /* Command set other than NVM. */
    csts = qnvme_enable_cc(q, 16, cc | (1u << NVME_CC_CSS_SHIFT));
    ck_assert_uint_eq(csts & NVME_CSTS_CFS, NVME_CSTS_CFS);
    qnvme_disable(q);

    /* An admin queue of one entry. */
    csts = qnvme_enable_cc(q, 1, cc);
    ck_assert_uint_eq(csts & NVME_CSTS_CFS, NVME_CSTS_CFS);
    qnvme_disable(q);

    /* The smallest admin queue, with every AER outstanding, still works. */
    csts = qnvme_enable_cc(q, 2, cc);
    ck_assert_uint_eq(csts & (NVME_CSTS_RDY | NVME_CSTS_CFS), NVME_CSTS_RDY);
    for (unsigned i = 0; i < 4; i++) {
        NvmeCmd aer;
        NvmeCqe cqe;

        memset(&aer, 0, sizeof(aer));
        aer.opcode = NVME_ADM_CMD_ASYNC_EV_REQ;
        qnvme_submit(q, &q->admin, &aer);
        ck_assert(!qnvme_try_wait(q, &q->admin, &cqe, 20));
    }
    qnvme_identify_all(q);
    ck_assert_int_eq(q->id.vid, 0x1b36);
    qnvme_disable(q);

    /* After all that, a normal bring-up works. */
    qnvme_init(q, 2, 16);
    write_read_check(q, qnvme_ioq(q, 1), 1, 0, 8, 1);
}
END_TEST

/* Identify Controller: what Linux and the spec's checks look at. */
static void check_id_ctrl(const NvmeIdCtrl *id)
{
    ck_assert_int_eq(id->vid, 0x1b36);
    ck_assert(memcmp(id->sn, "S1                  ", 20) == 0);
    ck_assert(id->mn[0] != ' ' && id->mn[0] != 0);
    ck_assert_int_eq(id->mdts, 7);
    ck_assert_uint_eq(id->ver, NVME_VS_1_4);
    ck_assert_int_eq(id->sqes, 0x66);
    ck_assert_int_eq(id->cqes, 0x44);
    ck_assert_uint_ge(id->nn, 1);
    ck_assert(id->oncs & NVME_ONCS_COMPARE);
    ck_assert(id->oncs & NVME_ONCS_DSM);
    ck_assert(id->oncs & NVME_ONCS_WRITE_ZEROES);
    ck_assert(id->oncs & NVME_ONCS_TIMESTAMP);
    ck_assert(id->vwc & NVME_VWC_PRESENT);
    ck_assert(id->sgls & NVME_SGLS_SUPPORTED);
    ck_assert(id->sgls & NVME_SGLS_BIT_BUCKET);
    ck_assert(id->oacs & NVME_OACS_DBBUF);
    ck_assert(id->oaes & NVME_OAES_NS_ATTR);
    ck_assert_int_eq(id->aerl, 3);
    ck_assert(id->lpa & NVME_LPA_CSE_LOG);
    ck_assert_int_eq(id->elpe, 15);
    ck_assert_int_eq(id->npss, 0);
    ck_assert_int_eq(id->cntrltype, NVME_CNTRLTYPE_IO);
    ck_assert(strncmp(id->subnqn, "nqn.", 4) == 0);
}

/* Namespace identification descriptors match Identify Namespace @ns. */
static void check_id_ns_descrs(QNvme *q, const NvmeIdNs *ns, uint8_t *buf)
{
    NvmeIdNsDescr *d;
    uint8_t *p;
    bool eui = false, nguid = false, uuid = false;

    ck_assert_int_eq(qnvme_identify(q, NVME_ID_CNS_NS_DESCR_LIST, 1, buf),
                     NVME_SUCCESS);
    for (p = buf; p < buf + 4096; p += sizeof(*d) + d->nidl) {
        d = (NvmeIdNsDescr *)p;
        if (!d->nidt) {
            break;
        }
        if (d->nidt == NVME_NIDT_EUI64) {
            ck_assert_int_eq(d->nidl, 8);
            ck_assert(memcmp(p + sizeof(*d), ns->eui64, 8) == 0);
            eui = true;
        } else if (d->nidt == NVME_NIDT_NGUID) {
            ck_assert_int_eq(d->nidl, 16);
            ck_assert(memcmp(p + sizeof(*d), ns->nguid, 16) == 0);
            nguid = true;
        } else if (d->nidt == NVME_NIDT_UUID) {
            ck_assert_int_eq(d->nidl, 16);
            ck_assert_int_eq(p[sizeof(*d) + 6] >> 4, 4);
            uuid = true;
        }
    }
    ck_assert(eui && nguid && uuid);
}

/* An inactive namespace reads as zeroes; NSID 0 and unknown CNS fail. */
static void check_identify_invalid(QNvme *q, NvmeIdNs *ns, uint8_t *buf)
{
    ck_assert_int_eq(qnvme_identify(q, NVME_ID_CNS_NS, 7, ns), NVME_SUCCESS);
    ck_assert_uint_eq(ns->nsze, 0);
    ck_assert_int_eq(qnvme_identify(q, NVME_ID_CNS_NS, 0, ns),
                     DNR(NVME_INVALID_NSID));
    ck_assert_int_eq(qnvme_identify(q, NVME_ID_CNS_NS_DESCR_LIST, 7, buf),
                     DNR(NVME_INVALID_NSID));
    ck_assert_int_eq(qnvme_identify(q, NVME_ID_CNS_NS_ACTIVE_LIST,
                                    0xfffffffe, buf),
                     DNR(NVME_INVALID_NSID));
    ck_assert_int_eq(qnvme_identify(q, 0x55, 0, buf),
                     DNR(NVME_INVALID_FIELD));
}

/* Command-set specific structures (CSI 0, as Linux asks): zeroes. */
static void check_identify_cs(QNvme *q, uint8_t *buf)
{
    memset(buf, 0xff, 4096);
    ck_assert_int_eq(qnvme_identify(q, NVME_ID_CNS_CS_CTRL, 0, buf),
                     NVME_SUCCESS);
    for (int i = 0; i < 4096; i++) {
        ck_assert_uint_eq(buf[i], 0);
    }
    ck_assert_int_eq(qnvme_identify(q, NVME_ID_CNS_CS_NS, 1, buf),
                     NVME_SUCCESS);
    ck_assert_int_eq(qnvme_identify(q, NVME_ID_CNS_CS_NS, 9, buf),
                     DNR(NVME_INVALID_NSID));
}

START_TEST(test_identify)
{
    QNvme *q = start_default();
    g_autofree NvmeIdNs *ns = g_new0(NvmeIdNs, 1);
    g_autofree uint8_t *buf = g_malloc0(4096);
    uint32_t *list = (uint32_t *)buf;

    check_id_ctrl(&q->id);

    /* Namespace 1: the whole image in 512-byte blocks. */
    ck_assert_int_eq(q->nr_ns, 1);
    ck_assert_int_eq(qnvme_identify(q, NVME_ID_CNS_NS, 1, ns), NVME_SUCCESS);
    ck_assert_uint_eq(ns->nsze, IMG_SIZE / 512);
    ck_assert_uint_eq(ns->ncap, IMG_SIZE / 512);
    ck_assert_int_eq(ns->nlbaf, 1);
    ck_assert_int_eq(NVME_FLBAS_INDEX(ns->flbas), 0);
    ck_assert_int_eq(ns->lbaf[0].ds, 9);
    ck_assert_int_eq(ns->lbaf[1].ds, 12);
    ck_assert_int_eq(ns->nsattr, 0);

    /* Active namespace list, from NSID 0 and past the last. */
    ck_assert_int_eq(qnvme_identify(q, NVME_ID_CNS_NS_ACTIVE_LIST, 0, buf),
                     NVME_SUCCESS);
    ck_assert_uint_eq(list[0], 1);
    ck_assert_uint_eq(list[1], 0);
    ck_assert_int_eq(qnvme_identify(q, NVME_ID_CNS_NS_ACTIVE_LIST, 1, buf),
                     NVME_SUCCESS);
    ck_assert_uint_eq(list[0], 0);

    check_id_ns_descrs(q, ns, buf);
    check_identify_invalid(q, ns, buf);
    check_identify_cs(q, buf);
}
END_TEST

/* ---- data integrity ---- */

/*
 * Patterned writes on several queues at once, read back (also in flight
 * at once), compared in guest memory and against the backing file.
 */
static void integrity_run(QNvme *q, unsigned nq, unsigned per_q,
                          const char *img, uint32_t nsid)
{
    const QNvmeNs *ns = qnvme_ns(q, nsid);
    uint64_t wbuf[8][32], rbuf[8][32];
    uint32_t nlb[8][32];
    uint64_t slba[8][32];
    uint64_t next = 3;

    ck_assert(nq <= 8 && per_q <= 32 && ns);
    for (unsigned qi = 0; qi < nq; qi++) {
        QNvmeQueue *queue = qnvme_ioq(q, qi + 1);

        for (unsigned j = 0; j < per_q; j++) {
            NvmeCmd cmd;
            /* 4 KiB, 8 KiB (PRP2), 64 KiB (a PRP list), odd sizes. */
            static const uint32_t sizes[] = { 4096, 8192, 65536, 1536,
                                              24576 };
            uint32_t bytes = MAX(sizes[(qi + j) % ARRAY_SIZE(sizes)],
                                 ns->lbasz);

            bytes = QEMU_ALIGN_UP(bytes, ns->lbasz);
            nlb[qi][j] = bytes / ns->lbasz;
            slba[qi][j] = next;
            next += nlb[qi][j] + 1;
            wbuf[qi][j] = guest_pattern(q, bytes, qi * 64 + j);
            rbuf[qi][j] = guest_alloc_aligned(q->gm, bytes, 4096);
            qnvme_rw_cmd(q, &cmd, NVME_CMD_WRITE, nsid, slba[qi][j],
                         nlb[qi][j], wbuf[qi][j]);
            qnvme_queue_cmd(q, queue, &cmd);
        }
        qnvme_ring_sq(q, queue);
    }
    for (unsigned qi = 0; qi < nq; qi++) {
        for (unsigned j = 0; j < per_q; j++) {
            NvmeCqe cqe;

            qnvme_wait(q, qnvme_ioq(q, qi + 1), &cqe, 0);
            ck_assert_msg(qnvme_status(&cqe) == NVME_SUCCESS,
                          "write cid %u on queue %u: status 0x%x", cqe.cid,
                          qi + 1, qnvme_status(&cqe));
        }
    }
    for (unsigned qi = 0; qi < nq; qi++) {
        QNvmeQueue *queue = qnvme_ioq(q, qi + 1);

        for (unsigned j = 0; j < per_q; j++) {
            NvmeCmd cmd;

            guest_memset(q->gm, rbuf[qi][j], 0xee,
                         (uint64_t)nlb[qi][j] * ns->lbasz);
            qnvme_rw_cmd(q, &cmd, NVME_CMD_READ, nsid, slba[qi][j],
                         nlb[qi][j], rbuf[qi][j]);
            qnvme_queue_cmd(q, queue, &cmd);
        }
        qnvme_ring_sq(q, queue);
    }
    for (unsigned qi = 0; qi < nq; qi++) {
        for (unsigned j = 0; j < per_q; j++) {
            NvmeCqe cqe;

            qnvme_wait(q, qnvme_ioq(q, qi + 1), &cqe, 0);
            ck_assert_int_eq(qnvme_status(&cqe), NVME_SUCCESS);
        }
    }
    qnvme_free_prps(q);
    ck_assert_int_eq(qnvme_flush(q, qnvme_ioq(q, 1), nsid), NVME_SUCCESS);
    for (unsigned qi = 0; qi < nq; qi++) {
        for (unsigned j = 0; j < per_q; j++) {
            size_t len = (size_t)nlb[qi][j] * ns->lbasz;
            g_autofree uint8_t *want = g_malloc(len);
            g_autofree uint8_t *got = g_malloc(len);

            fill_pattern(want, len, qi * 64 + j);
            guest_memread(q->gm, rbuf[qi][j], got, len);
            assert_same(got, want, len, "read back");
            if (img) {
                file_read(img, slba[qi][j] * ns->lbasz, got, len);
                assert_same(got, want, len, "backing file");
            }
            guest_free(q->gm, wbuf[qi][j]);
            guest_free(q->gm, rbuf[qi][j]);
        }
    }
}

START_TEST(test_io_integrity)
{
    QNvme *q = start_default();
    g_autofree uint8_t *want = g_malloc(4096);
    g_autofree uint8_t *got = g_malloc(4096);
    uint64_t r = guest_alloc_aligned(q->gm, 4096, 4096);

    integrity_run(q, 4, 24, env.img, 1);

    /* What the file holds is what the guest reads. */
    fill_pattern(want, 4096, 999);
    file_write(env.img, 1000 * 512, want, 4096);
    ck_assert_int_eq(qnvme_rw(q, qnvme_ioq(q, 2), NVME_CMD_READ, 1, 1000, 8,
                              r), NVME_SUCCESS);
    guest_memread(q->gm, r, got, 4096);
    assert_same(got, want, 4096, "read of file data");

    /* The last block and FUA writes. */
    write_read_check(q, qnvme_ioq(q, 3), 1, IMG_SIZE / 512 - 1, 1, 5);
    {
        uint64_t w = guest_pattern(q, 4096, 6);
        NvmeCmd cmd;

        qnvme_rw_cmd(q, &cmd, NVME_CMD_WRITE, 1, 64, 8, w);
        cmd.cdw12 |= NVME_RW_FUA;
        ck_assert_int_eq(io_cmd(q, qnvme_ioq(q, 4), &cmd), NVME_SUCCESS);
        fill_pattern(want, 4096, 6);
        file_read(env.img, 64 * 512, got, 4096);
        assert_same(got, want, 4096, "FUA write in the file");
    }
}
END_TEST

START_TEST(test_lba_4096)
{
    QNvme *q;
    g_autofree NvmeIdNs *id = g_new0(NvmeIdNs, 1);

    env_new();
    env_start(",logical_block_size=4096", true);
    q = env.q;
    qnvme_init(q, 2, 32);
    ck_assert_int_eq(qnvme_identify(q, NVME_ID_CNS_NS, 1, id), NVME_SUCCESS);
    ck_assert_int_eq(NVME_FLBAS_INDEX(id->flbas), 1);
    ck_assert_uint_eq(id->nsze, IMG_SIZE / 4096);
    ck_assert_int_eq(qnvme_ns(q, 1)->lbasz, 4096);
    integrity_run(q, 2, 8, env.img, 1);
    write_read_check(q, qnvme_ioq(q, 1), 1, IMG_SIZE / 4096 - 2, 2, 3);
    /* MDTS in 4 KiB blocks: 128 is the limit. */
    {
        uint64_t b = guest_alloc_aligned(q->gm, 129 * 4096, 4096);

        ck_assert_int_eq(qnvme_rw(q, qnvme_ioq(q, 1), NVME_CMD_WRITE, 1, 0,
                                  128, b), NVME_SUCCESS);
        ck_assert_int_eq(qnvme_rw(q, qnvme_ioq(q, 1), NVME_CMD_WRITE, 1, 0,
                                  129, b), DNR(NVME_INVALID_FIELD));
        ck_assert_int_eq(qnvme_rw(q, qnvme_ioq(q, 1), NVME_CMD_READ, 1,
                                  IMG_SIZE / 4096, 1, b),
                         DNR(NVME_LBA_RANGE));
    }
}
END_TEST

static uint16_t write_zeroes(QNvme *q, QNvmeQueue *queue, uint32_t nsid,
                             uint64_t slba, uint32_t nlb, uint32_t flags)
{
    NvmeCmd cmd;

    qnvme_rw_cmd(q, &cmd, NVME_CMD_WRITE_ZEROES, nsid, slba, nlb, 0);
    cmd.cdw12 |= flags;
    return io_cmd(q, queue, &cmd);
}

static uint16_t dsm(QNvme *q, QNvmeQueue *queue, uint32_t nsid,
                    const NvmeDsmRange *ranges, unsigned nr, uint32_t attr)
{
    uint64_t g = guest_alloc_aligned(q->gm, 4096, 4096);
    NvmeCmd cmd;
    uint16_t st;

    guest_memwrite(q->gm, g, ranges, nr * sizeof(*ranges));
    memset(&cmd, 0, sizeof(cmd));
    cmd.opcode = NVME_CMD_DSM;
    cmd.nsid = nsid;
    cmd.cdw10 = nr - 1;
    cmd.cdw11 = attr;
    cmd.dptr.prp1 = g;
    st = io_cmd(q, queue, &cmd);
    guest_free(q->gm, g);
    return st;
}

START_TEST(test_zeroes_discard_flush)
{
    QNvme *q = start_default();
    QNvmeQueue *queue = qnvme_ioq(q, 1);
    size_t len = 64 * 512;
    uint64_t w = guest_pattern(q, len, 7);
    uint64_t r = guest_alloc_aligned(q->gm, len, 4096);
    g_autofree uint8_t *want = g_malloc(len);
    g_autofree uint8_t *got = g_malloc(len);
    NvmeDsmRange ranges[3] = {
        { .slba = 40, .nlb = 8 },
        { .slba = 0, .nlb = 0 },        /* empty: ignored */
        { .slba = 56, .nlb = 8 },
    };

    fill_pattern(want, len, 7);
    ck_assert_int_eq(qnvme_rw(q, queue, NVME_CMD_WRITE, 1, 0, 64, w),
                     NVME_SUCCESS);

    /* Write Zeroes, plain and with deallocation. */
    ck_assert_int_eq(write_zeroes(q, queue, 1, 8, 4, 0), NVME_SUCCESS);
    memset(want + 8 * 512, 0, 4 * 512);
    ck_assert_int_eq(write_zeroes(q, queue, 1, 16, 8,
                                  NVME_RW_DEAC | NVME_RW_FUA),
                     NVME_SUCCESS);
    memset(want + 16 * 512, 0, 8 * 512);

    /* DSM without AD is a hint only; with AD the ranges are discarded. */
    ck_assert_int_eq(dsm(q, queue, 1, ranges, 3, NVME_DSM_IDR),
                     NVME_SUCCESS);
    ck_assert_int_eq(qnvme_rw(q, queue, NVME_CMD_READ, 1, 0, 64, r),
                     NVME_SUCCESS);
    guest_memread(q->gm, r, got, len);
    assert_same(got, want, len, "after write zeroes");
    ck_assert_int_eq(dsm(q, queue, 1, ranges, 3, NVME_DSM_AD), NVME_SUCCESS);
    memset(want + 40 * 512, 0, 8 * 512);
    memset(want + 56 * 512, 0, 8 * 512);
    ck_assert_int_eq(qnvme_rw(q, queue, NVME_CMD_READ, 1, 0, 64, r),
                     NVME_SUCCESS);
    guest_memread(q->gm, r, got, len);
    assert_same(got, want, len, "after deallocate");

    /* Flush one namespace and all of them. */
    ck_assert_int_eq(qnvme_flush(q, queue, 1), NVME_SUCCESS);
    ck_assert_int_eq(qnvme_flush(q, queue, NVME_NSID_BROADCAST),
                     NVME_SUCCESS);
    file_read(env.img, 0, got, len);
    assert_same(got, want, len, "backing file");

    /* Out of range. */
    ranges[2].slba = IMG_SIZE / 512 - 4;
    ck_assert_int_eq(dsm(q, queue, 1, ranges, 3, NVME_DSM_AD),
                     DNR(NVME_LBA_RANGE));
    ck_assert_int_eq(write_zeroes(q, queue, 1, IMG_SIZE / 512 - 4, 8, 0),
                     DNR(NVME_LBA_RANGE));
    ck_assert_int_eq(qnvme_flush(q, queue, 0), DNR(NVME_INVALID_NSID));
}
END_TEST

START_TEST(test_multi_namespace)
{
    QNvme *q;
    g_autofree char *img2 = NULL;
    g_autofree uint8_t *got = g_malloc(8192);
    g_autofree uint8_t *want = g_malloc(8192);
    uint32_t list[1024];
    uint64_t r;

    env_new();
    img2 = make_image("d2.img", 16 << 20);
    env_arg("-blockdev");
    env_arg("driver=null,node-name=n1,size=1G");
    env_arg("-blockdev");
    env_arg("driver=file,node-name=d2,filename=%s", img2);
    env_arg("-device");
    env_arg("nvme-ns,id=ns2,bus=nvme0,drive=n1,nsid=2");
    env_arg("-device");
    env_arg("nvme-ns,id=ns3,bus=nvme0,drive=d2,logical_block_size=4096");
    env_start(NULL, true);
    q = env.q;
    qnvme_init(q, 2, 32);

    ck_assert_int_eq(qnvme_identify(q, NVME_ID_CNS_NS_ACTIVE_LIST, 0, list),
                     NVME_SUCCESS);
    ck_assert_uint_eq(list[0], 1);
    ck_assert_uint_eq(list[1], 2);
    ck_assert_uint_eq(list[2], 3);
    ck_assert_uint_eq(list[3], 0);
    ck_assert_int_eq(q->nr_ns, 3);
    ck_assert_uint_eq(qnvme_ns(q, 2)->nsze, (1ULL << 30) / 512);
    ck_assert_int_eq(qnvme_ns(q, 3)->lbasz, 4096);
    ck_assert_uint_eq(qnvme_ns(q, 3)->nsze, (16 << 20) / 4096);

    /* Each namespace has its own data. */
    integrity_run(q, 2, 6, img2, 3);
    write_read_check(q, qnvme_ioq(q, 1), 1, 10, 8, 11);
    ck_assert_int_eq(qnvme_rw(q, qnvme_ioq(q, 1), NVME_CMD_WRITE, 2, 10, 8,
                              guest_pattern(q, 4096, 12)), NVME_SUCCESS);
    r = guest_alloc_aligned(q->gm, 8192, 4096);
    ck_assert_int_eq(qnvme_rw(q, qnvme_ioq(q, 2), NVME_CMD_READ, 3, 1, 2, r),
                     NVME_SUCCESS);
    fill_pattern(want, 8192, 11);
    file_read(env.img, 10 * 512, got, 4096);
    assert_same(got, want, 4096, "namespace 1 file");
    ck_assert_int_eq(qnvme_flush(q, qnvme_ioq(q, 2), NVME_NSID_BROADCAST),
                     NVME_SUCCESS);
    ck_assert_int_eq(qnvme_rw(q, qnvme_ioq(q, 1), NVME_CMD_READ, 4, 0, 1, r),
                     DNR(NVME_INVALID_NSID));
    ck_assert_int_eq(qnvme_rw(q, qnvme_ioq(q, 1), NVME_CMD_READ, 2,
                              (1ULL << 30) / 512, 1, r),
                     DNR(NVME_LBA_RANGE));
}
END_TEST

/* ---- errors ---- */

/* Create I/O CQ @qid of @qsize0 + 1 entries at @prp (@flags: CDW11). */
static uint16_t create_cq(QNvme *q, uint16_t qid, uint16_t qsize0,
                          uint32_t flags, uint64_t prp)
{
    return admin_simple(q, NVME_ADM_CMD_CREATE_CQ, 0,
                        qid | ((uint32_t)qsize0 << 16), flags, prp, NULL);
}

/* Create I/O SQ @qid of @qsize0 + 1 entries at @prp, completing to @cqid. */
static uint16_t create_sq(QNvme *q, uint16_t qid, uint16_t qsize0,
                          uint16_t cqid, uint32_t flags, uint64_t prp)
{
    return admin_simple(q, NVME_ADM_CMD_CREATE_SQ, 0,
                        qid | ((uint32_t)qsize0 << 16),
                        flags | ((uint32_t)cqid << 16), prp, NULL);
}

/* Unknown opcode, fused, SGL in an admin command. */
static void admin_errors_opcode(QNvme *q, uint64_t page)
{
    NvmeCmd cmd;

    ck_assert_int_eq(admin_simple(q, 0xc1, 0, 0, 0, 0, NULL),
                     DNR(NVME_INVALID_OPCODE));
    ck_assert_int_eq(admin_simple(q, NVME_ADM_CMD_FORMAT_NVM, 1, 0, 0, 0,
                                  NULL), DNR(NVME_INVALID_OPCODE));
    memset(&cmd, 0, sizeof(cmd));
    cmd.opcode = NVME_ADM_CMD_IDENTIFY;
    cmd.cdw10 = NVME_ID_CNS_CTRL;
    cmd.dptr.prp1 = page;
    cmd.flags = NVME_CMD_FLAGS_PSDT(NVME_PSDT_SGL_MPTR_CONTIG);
    ck_assert_int_eq(qnvme_admin(q, &cmd, NULL), DNR(NVME_INVALID_FIELD));
    cmd.flags = 1;  /* fused, first command */
    ck_assert_int_eq(qnvme_admin(q, &cmd, NULL), DNR(NVME_INVALID_FIELD));
}

/* Create I/O CQ: queue id, size, contiguity, vector, alignment. */
static void admin_errors_create_cq(QNvme *q, uint64_t page)
{
    ck_assert_int_eq(create_cq(q, 0, 15, NVME_CQ_FLAGS_PC, page),
                     DNR(NVME_INVALID_QID));
    ck_assert_int_eq(create_cq(q, 9, 15, NVME_CQ_FLAGS_PC, page),
                     DNR(NVME_INVALID_QID));
    ck_assert_int_eq(create_cq(q, 1, 15, NVME_CQ_FLAGS_PC, page),
                     DNR(NVME_INVALID_QID));
    ck_assert_int_eq(create_cq(q, 5, 0, NVME_CQ_FLAGS_PC, page),
                     DNR(NVME_MAX_QSIZE_EXCEEDED));
    ck_assert_int_eq(create_cq(q, 5, 1024, NVME_CQ_FLAGS_PC, page),
                     DNR(NVME_MAX_QSIZE_EXCEEDED));
    ck_assert_int_eq(create_cq(q, 5, 15, 0, page), DNR(NVME_INVALID_FIELD));
    ck_assert_int_eq(create_cq(q, 5, 15,
                               NVME_CQ_FLAGS_PC | NVME_CQ_FLAGS_IEN |
                               (9u << 16), page),
                     DNR(NVME_INVALID_IRQ_VECTOR));
    ck_assert_int_eq(create_cq(q, 5, 15, NVME_CQ_FLAGS_PC, page + 512),
                     DNR(NVME_INVALID_FIELD));
}

/*
 * Create I/O SQ: CQ missing, queue id, size, contiguity; in the end I/O
 * queue pair 5 exists (its CQ at @page, its SQ on the next page).
 */
static void admin_errors_create_sq(QNvme *q, uint64_t page)
{
    ck_assert_int_eq(create_sq(q, 5, 15, 5, NVME_SQ_FLAGS_PC, page),
                     DNR(NVME_INVALID_CQID));
    ck_assert_int_eq(create_sq(q, 5, 15, 0, NVME_SQ_FLAGS_PC, page),
                     DNR(NVME_INVALID_CQID));
    ck_assert_int_eq(create_sq(q, 2, 15, 1, NVME_SQ_FLAGS_PC, page),
                     DNR(NVME_INVALID_QID));
    ck_assert_int_eq(create_sq(q, 0, 15, 1, NVME_SQ_FLAGS_PC, page),
                     DNR(NVME_INVALID_QID));
    ck_assert_int_eq(create_cq(q, 5, 15, NVME_CQ_FLAGS_PC, page),
                     NVME_SUCCESS);
    ck_assert_int_eq(create_sq(q, 5, 0, 5, NVME_SQ_FLAGS_PC, page + 4096),
                     DNR(NVME_MAX_QSIZE_EXCEEDED));
    ck_assert_int_eq(create_sq(q, 5, 15, 5, 0, page + 4096),
                     DNR(NVME_INVALID_FIELD));
    ck_assert_int_eq(create_sq(q, 5, 15, 5, NVME_SQ_FLAGS_PC, page + 4096),
                     NVME_SUCCESS);
}

/* Delete: CQ in use, missing queues, the admin queue; then queue pair 5. */
static void admin_errors_delete(QNvme *q)
{
    ck_assert_int_eq(admin_simple(q, NVME_ADM_CMD_DELETE_CQ, 0, 5, 0, 0,
                                  NULL), DNR(NVME_INVALID_QUEUE_DEL));
    ck_assert_int_eq(admin_simple(q, NVME_ADM_CMD_DELETE_SQ, 0, 6, 0, 0,
                                  NULL), DNR(NVME_INVALID_QID));
    ck_assert_int_eq(admin_simple(q, NVME_ADM_CMD_DELETE_SQ, 0, 0, 0, 0,
                                  NULL), DNR(NVME_INVALID_QID));
    ck_assert_int_eq(admin_simple(q, NVME_ADM_CMD_DELETE_CQ, 0, 0, 0, 0,
                                  NULL), DNR(NVME_INVALID_QID));
    ck_assert_int_eq(admin_simple(q, NVME_ADM_CMD_DELETE_SQ, 0, 5, 0, 0,
                                  NULL), NVME_SUCCESS);
    ck_assert_int_eq(admin_simple(q, NVME_ADM_CMD_DELETE_CQ, 0, 5, 0, 0,
                                  NULL), NVME_SUCCESS);
    ck_assert_int_eq(admin_simple(q, NVME_ADM_CMD_DELETE_CQ, 0, 5, 0, 0,
                                  NULL), DNR(NVME_INVALID_QID));
}

START_TEST(test_admin_errors)
{
    QNvme *q = start_default();
    uint64_t page = guest_alloc_aligned(q->gm, 4 * 4096, 4096);
    NvmeCqe cqe;

    admin_errors_opcode(q, page);
    admin_errors_create_cq(q, page);
    admin_errors_create_sq(q, page);
    admin_errors_delete(q);

    /* Number of queues once I/O queues exist; 0xffff is invalid. */
    ck_assert_int_eq(qnvme_set_features(q, NVME_FEAT_NUM_QUEUES, 0, NULL),
                     DNR(NVME_CMD_SEQ_ERROR));
    ck_assert_int_eq(qnvme_set_features(q, NVME_FEAT_NUM_QUEUES, 0xffff,
                                        NULL), DNR(NVME_INVALID_FIELD));

    /* Abort: the command already ran, so "not aborted". */
    ck_assert_int_eq(admin_simple(q, NVME_ADM_CMD_ABORT, 0, 1 | (7 << 16), 0,
                                  0, &cqe), NVME_SUCCESS);
    ck_assert_uint_eq(cqe.result & NVME_ABORT_NOT_ABORTED, 1);
    ck_assert_int_eq(admin_simple(q, NVME_ADM_CMD_KEEP_ALIVE, 0, 0, 0, 0,
                                  NULL), NVME_SUCCESS);

    /* Identify into memory that is not there. */
    ck_assert_int_eq(admin_simple(q, NVME_ADM_CMD_IDENTIFY, 0,
                                  NVME_ID_CNS_CTRL, 0, 0x10000000ULL, NULL),
                     DNR(NVME_DATA_TRANSFER_ERROR));

    /* Everything still works. */
    write_read_check(q, qnvme_ioq(q, 1), 1, 0, 8, 3);
    ck_assert_uint_eq(qnvme_readl(q, NVME_REG_CSTS), NVME_CSTS_RDY);
}
END_TEST

START_TEST(test_io_errors)
{
    QNvme *q;
    QNvmeQueue *queue;
    uint64_t buf;
    NvmeCmd cmd;
    g_autofree char *img2 = NULL;

    env_new();
    img2 = make_image("ro.img", 1 << 20);
    env_arg("-blockdev");
    env_arg("driver=file,node-name=ro,filename=%s,read-only=on", img2);
    env_arg("-device");
    env_arg("nvme-ns,bus=nvme0,drive=ro,nsid=2");
    env_start(NULL, true);
    q = env.q;
    qnvme_init(q, 2, 32);
    queue = qnvme_ioq(q, 1);
    buf = guest_alloc_aligned(q->gm, 1 << 20, 4096);

    /* Namespace: 0, inactive, broadcast (not for reads). */
    ck_assert_int_eq(qnvme_rw(q, queue, NVME_CMD_READ, 0, 0, 1, buf),
                     DNR(NVME_INVALID_NSID));
    ck_assert_int_eq(qnvme_rw(q, queue, NVME_CMD_READ, 9, 0, 1, buf),
                     DNR(NVME_INVALID_NSID));
    ck_assert_int_eq(qnvme_rw(q, queue, NVME_CMD_READ, NVME_NSID_BROADCAST,
                              0, 1, buf), DNR(NVME_INVALID_NSID));
    /* Opcode: not implemented, vendor specific. */
    ck_assert_int_eq(qnvme_rw(q, queue, NVME_CMD_WRITE_UNCOR, 1, 0, 1, 0),
                     DNR(NVME_INVALID_OPCODE));
    ck_assert_int_eq(qnvme_rw(q, queue, 0x99, 1, 0, 1, 0),
                     DNR(NVME_INVALID_OPCODE));
    /* LBA range: past the end, straddling it, 64-bit wrap. */
    ck_assert_int_eq(qnvme_rw(q, queue, NVME_CMD_READ, 1, IMG_SIZE / 512, 1,
                              buf), DNR(NVME_LBA_RANGE));
    ck_assert_int_eq(qnvme_rw(q, queue, NVME_CMD_WRITE, 1,
                              IMG_SIZE / 512 - 1, 2, buf),
                     DNR(NVME_LBA_RANGE));
    ck_assert_int_eq(qnvme_rw(q, queue, NVME_CMD_READ, 1, UINT64_MAX, 2,
                              buf), DNR(NVME_LBA_RANGE));
    /* MDTS: 512 KiB. */
    ck_assert_int_eq(qnvme_rw(q, queue, NVME_CMD_READ, 1, 0, 1024, buf),
                     NVME_SUCCESS);
    ck_assert_int_eq(qnvme_rw(q, queue, NVME_CMD_READ, 1, 0, 1025, buf),
                     DNR(NVME_INVALID_FIELD));
    /* Read-only namespace. */
    ck_assert_int_eq(qnvme_rw(q, queue, NVME_CMD_READ, 2, 0, 8, buf),
                     NVME_SUCCESS);
    ck_assert_int_eq(qnvme_rw(q, queue, NVME_CMD_WRITE, 2, 0, 8, buf),
                     DNR(NVME_NS_WRITE_PROTECTED));
    ck_assert_int_eq(write_zeroes(q, queue, 2, 0, 8, 0),
                     DNR(NVME_NS_WRITE_PROTECTED));
    /* Fused and reserved PSDT. */
    qnvme_rw_cmd(q, &cmd, NVME_CMD_READ, 1, 0, 1, buf);
    cmd.flags = 2;
    ck_assert_int_eq(io_cmd(q, queue, &cmd), DNR(NVME_INVALID_FIELD));
    qnvme_rw_cmd(q, &cmd, NVME_CMD_READ, 1, 0, 1, buf);
    cmd.flags = NVME_CMD_FLAGS_PSDT(3);
    ck_assert_int_eq(io_cmd(q, queue, &cmd), DNR(NVME_INVALID_FIELD));
    cmd.flags = NVME_CMD_FLAGS_PSDT(NVME_PSDT_SGL_MPTR_SGL);
    ck_assert_int_eq(io_cmd(q, queue, &cmd), DNR(NVME_INVALID_FIELD));

    /* Data pointers outside guest memory: data transfer error. */
    qnvme_rw_cmd(q, &cmd, NVME_CMD_READ, 1, 0, 8, 0);
    cmd.dptr.prp1 = 0x20000;
    ck_assert_int_eq(io_cmd(q, queue, &cmd), DNR(NVME_DATA_TRANSFER_ERROR));
    qnvme_rw_cmd(q, &cmd, NVME_CMD_WRITE, 1, 0, 8, 0);
    cmd.dptr.prp1 = GUEST_MEM_DEFAULT_BASE + GM_SIZE;
    ck_assert_int_eq(io_cmd(q, queue, &cmd), DNR(NVME_DATA_TRANSFER_ERROR));
    /* ... half inside, half outside. */
    qnvme_rw_cmd(q, &cmd, NVME_CMD_WRITE, 1, 0, 16, 0);
    cmd.dptr.prp1 = GUEST_MEM_DEFAULT_BASE + GM_SIZE - 4096;
    cmd.dptr.prp2 = GUEST_MEM_DEFAULT_BASE + GM_SIZE;
    ck_assert_int_eq(io_cmd(q, queue, &cmd), DNR(NVME_DATA_TRANSFER_ERROR));
    /* ... a PRP list that is not there. */
    qnvme_rw_cmd(q, &cmd, NVME_CMD_READ, 1, 0, 32, 0);
    cmd.dptr.prp1 = buf;
    cmd.dptr.prp2 = 0xdead000;
    ck_assert_int_eq(io_cmd(q, queue, &cmd), DNR(NVME_DATA_TRANSFER_ERROR));
    /* PRP2 page with an offset; a PRP list entry with an offset. */
    qnvme_rw_cmd(q, &cmd, NVME_CMD_READ, 1, 0, 16, 0);
    cmd.dptr.prp1 = buf;
    cmd.dptr.prp2 = buf + 4096 + 512;
    ck_assert_int_eq(io_cmd(q, queue, &cmd), DNR(NVME_INVALID_PRP_OFFSET));
    qnvme_rw_cmd(q, &cmd, NVME_CMD_READ, 1, 0, 24, 0);
    cmd.dptr.prp1 = buf;
    cmd.dptr.prp2 = buf + 65536;
    guest_writeq(q->gm, buf + 65536, buf + 4096);
    guest_writeq(q->gm, buf + 65536 + 8, buf + 8192 + 8);
    ck_assert_int_eq(io_cmd(q, queue, &cmd), DNR(NVME_INVALID_PRP_OFFSET));

    /* The daemon took all that; I/O still works, nothing is fatal. */
    write_read_check(q, queue, 1, 100, 16, 21);
    ck_assert_uint_eq(qnvme_readl(q, NVME_REG_CSTS), NVME_CSTS_RDY);
}
END_TEST

/* ---- PRP lists, SGLs, MDTS, Compare ---- */

START_TEST(test_prp_lists)
{
    QNvme *q = start_default();
    QNvmeQueue *queue = qnvme_ioq(q, 1);
    size_t len = 512 * 1024;
    uint64_t w = guest_pattern(q, len, 31);
    uint64_t r = guest_alloc_aligned(q->gm, len + 4096, 4096);
    uint64_t list = guest_alloc_aligned(q->gm, 3 * 4096, 4096);
    g_autofree uint8_t *want = g_malloc(len);
    g_autofree uint8_t *got = g_malloc(len);
    NvmeCmd cmd;

    /* 512 KiB: PRP1 + a list of 127 entries. */
    fill_pattern(want, len, 31);
    ck_assert_int_eq(qnvme_rw(q, queue, NVME_CMD_WRITE, 1, 0, 1024, w),
                     NVME_SUCCESS);
    file_read(env.img, 0, got, len);
    assert_same(got, want, len, "512 KiB write");

    /* A buffer that starts mid-page: PRP1 offset, then a list. */
    ck_assert_int_eq(qnvme_rw(q, queue, NVME_CMD_READ, 1, 0, 64, r + 512),
                     NVME_SUCCESS);
    guest_memread(q->gm, r + 512, got, 64 * 512);
    assert_same(got, want, 64 * 512, "unaligned PRP1");

    /*
     * A hand-made chain: the list starts 16 bytes before the end of its
     * page (one data entry, then a pointer to the next list page).
     */
    qnvme_rw_cmd(q, &cmd, NVME_CMD_READ, 1, 0, 32, 0);
    cmd.dptr.prp1 = r;
    cmd.dptr.prp2 = list + 4096 - 16;
    guest_writeq(q->gm, list + 4096 - 16, r + 4096);
    guest_writeq(q->gm, list + 4096 - 8, list + 8192);
    guest_writeq(q->gm, list + 8192, r + 8192);
    guest_writeq(q->gm, list + 8192 + 8, r + 12288);
    guest_memset(q->gm, r, 0, 16384);
    ck_assert_int_eq(io_cmd(q, queue, &cmd), NVME_SUCCESS);
    guest_memread(q->gm, r, got, 16384);
    assert_same(got, want, 16384, "chained PRP list");

    /* Scattered pages: the list points at pages in reverse order. */
    qnvme_rw_cmd(q, &cmd, NVME_CMD_READ, 1, 0, 24, 0);
    cmd.dptr.prp1 = r + 5 * 4096;
    cmd.dptr.prp2 = list;
    guest_writeq(q->gm, list, r + 3 * 4096);
    guest_writeq(q->gm, list + 8, r + 1 * 4096);
    ck_assert_int_eq(io_cmd(q, queue, &cmd), NVME_SUCCESS);
    guest_memread(q->gm, r + 5 * 4096, got, 4096);
    assert_same(got, want, 4096, "scattered page 0");
    guest_memread(q->gm, r + 3 * 4096, got, 4096);
    assert_same(got, want + 4096, 4096, "scattered page 1");
    guest_memread(q->gm, r + 1 * 4096, got, 4096);
    assert_same(got, want + 8192, 4096, "scattered page 2");
}
END_TEST

static void sgl_desc(NvmeSglDesc *d, uint64_t addr, uint32_t len,
                     unsigned type)
{
    memset(d, 0, sizeof(*d));
    d->addr = addr;
    d->len = len;
    d->type = NVME_SGL_DESC_TYPE(type, NVME_SGL_SUBTYPE_ADDRESS);
}

static void sgl_cmd(NvmeCmd *cmd, uint8_t opcode, uint64_t slba,
                    uint32_t nlb, const NvmeSglDesc *d)
{
    memset(cmd, 0, sizeof(*cmd));
    cmd->opcode = opcode;
    cmd->nsid = 1;
    cmd->flags = NVME_CMD_FLAGS_PSDT(NVME_PSDT_SGL_MPTR_CONTIG);
    cmd->cdw10 = (uint32_t)slba;
    cmd->cdw11 = slba >> 32;
    cmd->cdw12 = nlb - 1;
    cmd->dptr.sgl = *d;
}

/* Run an SGL command on the 16 blocks at LBA 200; its status. */
static uint16_t sgl_io(QNvme *q, QNvmeQueue *queue, uint8_t opcode,
                       const NvmeSglDesc *d)
{
    NvmeCmd cmd;

    sgl_cmd(&cmd, opcode, 200, 16, d);
    return io_cmd(q, queue, &cmd);
}

/* Read back @want (8 KiB) through a last segment of three odd pieces. */
static void sgl_last_segment(QNvme *q, QNvmeQueue *queue, uint64_t r,
                             uint64_t seg, const uint8_t *want)
{
    g_autofree uint8_t *got = g_malloc(8192);
    NvmeSglDesc d, list[3];

    sgl_desc(&list[0], r + 100, 1000, NVME_SGL_TYPE_DATA_BLOCK);
    sgl_desc(&list[1], r + 5000, 24, NVME_SGL_TYPE_DATA_BLOCK);
    sgl_desc(&list[2], r + 9001, 8192 - 1024, NVME_SGL_TYPE_DATA_BLOCK);
    guest_memwrite(q->gm, seg, list, 3 * sizeof(NvmeSglDesc));
    sgl_desc(&d, seg, 3 * sizeof(NvmeSglDesc), NVME_SGL_TYPE_LAST_SEGMENT);
    guest_memset(q->gm, r, 0, 4 * 4096);
    ck_assert_int_eq(sgl_io(q, queue, NVME_CMD_READ, &d), NVME_SUCCESS);
    guest_memread(q->gm, r + 100, got, 1000);
    guest_memread(q->gm, r + 5000, got + 1000, 24);
    guest_memread(q->gm, r + 9001, got + 1024, 8192 - 1024);
    assert_same(got, want, 8192, "SGL last segment");
}

/*
 * Read back @want through a segment chaining to a last segment, with a bit
 * bucket skipping 3.5 KiB of it.
 */
static void sgl_chain_bit_bucket(QNvme *q, QNvmeQueue *queue, uint64_t r,
                                 uint64_t seg, const uint8_t *want)
{
    g_autofree uint8_t *got = g_malloc(2048);
    NvmeSglDesc d, list[3];

    sgl_desc(&list[0], r, 512, NVME_SGL_TYPE_DATA_BLOCK);
    sgl_desc(&list[1], 0, 3584, NVME_SGL_TYPE_BIT_BUCKET);
    sgl_desc(&list[2], seg + 512, 2 * sizeof(NvmeSglDesc),
             NVME_SGL_TYPE_LAST_SEGMENT);
    guest_memwrite(q->gm, seg, list, 3 * sizeof(NvmeSglDesc));
    sgl_desc(&list[0], r + 4096, 2048, NVME_SGL_TYPE_DATA_BLOCK);
    sgl_desc(&list[1], r + 8192, 2048, NVME_SGL_TYPE_DATA_BLOCK);
    guest_memwrite(q->gm, seg + 512, list, 2 * sizeof(NvmeSglDesc));
    sgl_desc(&d, seg, 3 * sizeof(NvmeSglDesc), NVME_SGL_TYPE_SEGMENT);
    guest_memset(q->gm, r, 0, 4 * 4096);
    ck_assert_int_eq(sgl_io(q, queue, NVME_CMD_READ, &d), NVME_SUCCESS);
    guest_memread(q->gm, r, got, 512);
    assert_same(got, want, 512, "SGL chain part 1");
    guest_memread(q->gm, r + 512, got, 512);
    assert_zero(got, 512, "after part 1");
    guest_memread(q->gm, r + 4096, got, 2048);
    assert_same(got, want + 4096, 2048, "SGL chain part 2");
    guest_memread(q->gm, r + 8192, got, 2048);
    assert_same(got, want + 6144, 2048, "SGL chain part 3");
}

/* Bad descriptors: type, subtype, lengths, bit bucket in a write. */
static void sgl_errors_desc(QNvme *q, QNvmeQueue *queue, uint64_t w,
                            uint32_t len)
{
    NvmeSglDesc d;

    sgl_desc(&d, w, len, NVME_SGL_TYPE_KEYED_DATA_BLOCK);
    ck_assert_int_eq(sgl_io(q, queue, NVME_CMD_READ, &d),
                     DNR(NVME_SGL_DESCR_TYPE_INVALID));
    sgl_desc(&d, w, len, NVME_SGL_TYPE_DATA_BLOCK);
    d.type = NVME_SGL_DESC_TYPE(NVME_SGL_TYPE_DATA_BLOCK,
                                NVME_SGL_SUBTYPE_OFFSET);
    ck_assert_int_eq(sgl_io(q, queue, NVME_CMD_READ, &d),
                     DNR(NVME_SGL_DESCR_TYPE_INVALID));
    sgl_desc(&d, w, len - 512, NVME_SGL_TYPE_DATA_BLOCK);
    ck_assert_int_eq(sgl_io(q, queue, NVME_CMD_READ, &d),
                     DNR(NVME_DATA_SGL_LEN_INVALID));
    sgl_desc(&d, w, len + 512, NVME_SGL_TYPE_DATA_BLOCK);
    ck_assert_int_eq(sgl_io(q, queue, NVME_CMD_READ, &d),
                     DNR(NVME_DATA_SGL_LEN_INVALID));
    sgl_desc(&d, 0, len, NVME_SGL_TYPE_BIT_BUCKET);
    ck_assert_int_eq(sgl_io(q, queue, NVME_CMD_WRITE, &d),
                     DNR(NVME_SGL_DESCR_TYPE_INVALID));
}

/*
 * Bad segments: a misplaced or short one, lists and data in memory that is
 * not there, a loop.
 */
static void sgl_errors_segment(QNvme *q, QNvmeQueue *queue, uint64_t r,
                               uint64_t seg, uint32_t len)
{
    NvmeSglDesc d, list[2];

    sgl_desc(&d, seg, 24, NVME_SGL_TYPE_LAST_SEGMENT);
    ck_assert_int_eq(sgl_io(q, queue, NVME_CMD_READ, &d),
                     DNR(NVME_INVALID_SGL_SEG_DESC));
    sgl_desc(&list[0], r, 4096, NVME_SGL_TYPE_DATA_BLOCK);
    sgl_desc(&list[1], seg + 512, 16, NVME_SGL_TYPE_LAST_SEGMENT);
    guest_memwrite(q->gm, seg, list, 2 * sizeof(NvmeSglDesc));
    sgl_desc(&d, seg, 2 * sizeof(NvmeSglDesc), NVME_SGL_TYPE_LAST_SEGMENT);
    ck_assert_int_eq(sgl_io(q, queue, NVME_CMD_READ, &d),
                     DNR(NVME_INVALID_SGL_SEG_DESC));
    sgl_desc(&d, 0xdead0000, 32, NVME_SGL_TYPE_LAST_SEGMENT);
    ck_assert_int_eq(sgl_io(q, queue, NVME_CMD_READ, &d),
                     DNR(NVME_DATA_TRANSFER_ERROR));
    sgl_desc(&d, 0xdead0000, len, NVME_SGL_TYPE_DATA_BLOCK);
    ck_assert_int_eq(sgl_io(q, queue, NVME_CMD_WRITE, &d),
                     DNR(NVME_DATA_TRANSFER_ERROR));
    /* A segment pointing to itself: the descriptor limit ends it. */
    sgl_desc(&list[0], seg, 16, NVME_SGL_TYPE_SEGMENT);
    guest_memwrite(q->gm, seg, list, sizeof(NvmeSglDesc));
    sgl_desc(&d, seg, 16, NVME_SGL_TYPE_SEGMENT);
    ck_assert_int_eq(sgl_io(q, queue, NVME_CMD_READ, &d),
                     DNR(NVME_INVALID_NUM_SGL_DESCS));
}

static void sgl_run(QNvme *q, QNvmeQueue *queue)
{
    size_t len = 8192;
    uint64_t w = guest_pattern(q, len, 41);
    uint64_t r = guest_alloc_aligned(q->gm, 4 * 4096, 4096);
    uint64_t seg = guest_alloc_aligned(q->gm, 4096, 4096);
    g_autofree uint8_t *want = g_malloc(len);
    NvmeSglDesc d;

    fill_pattern(want, len, 41);
    /* One data block descriptor in the command. */
    sgl_desc(&d, w, len, NVME_SGL_TYPE_DATA_BLOCK);
    ck_assert_int_eq(sgl_io(q, queue, NVME_CMD_WRITE, &d), NVME_SUCCESS);

    sgl_last_segment(q, queue, r, seg, want);
    sgl_chain_bit_bucket(q, queue, r, seg, want);
    sgl_errors_desc(q, queue, w, len);
    sgl_errors_segment(q, queue, r, seg, len);
    guest_free(q->gm, w);
    guest_free(q->gm, r);
    guest_free(q->gm, seg);
}

START_TEST(test_sgl)
{
    QNvme *q = start_default();

    sgl_run(q, qnvme_ioq(q, 2));
    write_read_check(q, qnvme_ioq(q, 2), 1, 0, 8, 3);
}
END_TEST

static void compare_run(QNvme *q, QNvmeQueue *queue)
{
    uint64_t w = guest_pattern(q, 65536, 51);
    NvmeCmd cmd;

    ck_assert_int_eq(qnvme_rw(q, queue, NVME_CMD_WRITE, 1, 300, 128, w),
                     NVME_SUCCESS);
    ck_assert_int_eq(qnvme_rw(q, queue, NVME_CMD_COMPARE, 1, 300, 128, w),
                     NVME_SUCCESS);
    guest_writeb(q->gm, w + 40000, guest_readb(q->gm, w + 40000) ^ 1);
    ck_assert_int_eq(qnvme_rw(q, queue, NVME_CMD_COMPARE, 1, 300, 128, w),
                     DNR(NVME_CMP_FAILURE));
    /* Several compares in flight share the bounce buffer. */
    guest_writeb(q->gm, w + 40000, guest_readb(q->gm, w + 40000) ^ 1);
    for (unsigned i = 0; i < 6; i++) {
        qnvme_rw_cmd(q, &cmd, NVME_CMD_COMPARE, 1, 300, 128, w);
        qnvme_queue_cmd(q, queue, &cmd);
    }
    qnvme_ring_sq(q, queue);
    for (unsigned i = 0; i < 6; i++) {
        NvmeCqe cqe;

        qnvme_wait(q, queue, &cqe, 0);
        ck_assert_int_eq(qnvme_status(&cqe), NVME_SUCCESS);
    }
    qnvme_free_prps(q);
    /* A compare with data in memory that is not there. */
    qnvme_rw_cmd(q, &cmd, NVME_CMD_COMPARE, 1, 300, 8, 0);
    cmd.dptr.prp1 = 0x30000;
    ck_assert_int_eq(io_cmd(q, queue, &cmd), DNR(NVME_DATA_TRANSFER_ERROR));
    guest_free(q->gm, w);
}

START_TEST(test_compare)
{
    QNvme *q = start_default();

    compare_run(q, qnvme_ioq(q, 1));
}
END_TEST

/* ---- features and log pages ---- */

/* Get Features @fid (select @sel), which must succeed: its value. */
static uint32_t feature_get(QNvme *q, uint8_t fid, uint32_t sel,
                            uint32_t cdw11)
{
    uint32_t v = 0;
    uint16_t st = qnvme_get_features(q, fid, sel, cdw11, &v);

    ck_assert_msg(st == NVME_SUCCESS, "Get Features 0x%x: status 0x%x", fid,
                  st);
    return v;
}

/* Set Features @fid, which must succeed. */
static void feature_set(QNvme *q, uint8_t fid, uint32_t cdw11)
{
    uint16_t st = qnvme_set_features(q, fid, cdw11, NULL);

    ck_assert_msg(st == NVME_SUCCESS, "Set Features 0x%x to 0x%x: status "
                  "0x%x", fid, cdw11, st);
}

/* Arbitration: changeable, not saveable, 0 by default. */
static void features_arbitration(QNvme *q)
{
    uint32_t v;

    feature_set(q, NVME_FEAT_ARBITRATION, 0x01020302);
    ck_assert_uint_eq(feature_get(q, NVME_FEAT_ARBITRATION, 0, 0),
                      0x01020302);
    ck_assert_uint_eq(feature_get(q, NVME_FEAT_ARBITRATION,
                                  NVME_GETFEAT_SEL_DEFAULT, 0), 0);
    v = feature_get(q, NVME_FEAT_ARBITRATION, NVME_GETFEAT_SEL_SUPPORTED, 0);
    ck_assert(v & NVME_FEAT_CAP_CHANGE);
    ck_assert(!(v & NVME_FEAT_CAP_SAVE));
}

/* Power management: there is power state 0 only. */
static void features_power_mgmt(QNvme *q)
{
    ck_assert_int_eq(qnvme_set_features(q, NVME_FEAT_POWER_MGMT, 1, NULL),
                     DNR(NVME_INVALID_FIELD));
    feature_set(q, NVME_FEAT_POWER_MGMT, 0);
}

/* Temperature thresholds: over and under, composite sensor only. */
static void features_temp_threshold(QNvme *q)
{
    ck_assert_uint_eq(feature_get(q, NVME_FEAT_TEMP_THRESHOLD, 0, 0),
                      NVME_TEMPERATURE_WARNING);
    feature_set(q, NVME_FEAT_TEMP_THRESHOLD, 0x160);
    ck_assert_uint_eq(feature_get(q, NVME_FEAT_TEMP_THRESHOLD, 0, 0), 0x160);
    feature_set(q, NVME_FEAT_TEMP_THRESHOLD, (1u << 20) | 0x100);
    ck_assert_uint_eq(feature_get(q, NVME_FEAT_TEMP_THRESHOLD, 0, 1u << 20),
                      0x100);
    ck_assert_int_eq(qnvme_set_features(q, NVME_FEAT_TEMP_THRESHOLD,
                                        (3u << 16) | 0x100, NULL),
                     DNR(NVME_INVALID_FIELD));
}

/* Error recovery: a time limit, but no DULBE. */
static void features_error_recovery(QNvme *q)
{
    feature_set(q, NVME_FEAT_ERROR_RECOVERY, 10);
    ck_assert_uint_eq(feature_get(q, NVME_FEAT_ERROR_RECOVERY, 0, 0), 10);
    ck_assert_int_eq(qnvme_set_features(q, NVME_FEAT_ERROR_RECOVERY,
                                        NVME_ERR_REC_DULBE, NULL),
                     DNR(NVME_INVALID_FIELD));
}

/* Volatile write cache: on at first; I/O still works with it off. */
static void features_write_cache(QNvme *q)
{
    ck_assert_uint_eq(feature_get(q, NVME_FEAT_VOLATILE_WC, 0, 0), 1);
    feature_set(q, NVME_FEAT_VOLATILE_WC, 0);
    ck_assert_uint_eq(feature_get(q, NVME_FEAT_VOLATILE_WC, 0, 0), 0);
    write_read_check(q, qnvme_ioq(q, 1), 1, 0, 8, 61);
}

/* Interrupt vector configuration: per vector, of the vectors there are. */
static void features_irq_vector_conf(QNvme *q)
{
    uint32_t v;

    feature_set(q, NVME_FEAT_IRQ_VECTOR_CONF, 2 | NVME_IVC_CD);
    ck_assert_uint_eq(feature_get(q, NVME_FEAT_IRQ_VECTOR_CONF, 0, 2),
                      2 | NVME_IVC_CD);
    ck_assert_uint_eq(feature_get(q, NVME_FEAT_IRQ_VECTOR_CONF, 0, 1), 1);
    ck_assert_int_eq(qnvme_get_features(q, NVME_FEAT_IRQ_VECTOR_CONF, 0, 9,
                                        &v), DNR(NVME_INVALID_FIELD));
}

/* Timestamp: set by the host, then it runs on. */
static void features_timestamp(QNvme *q, uint64_t g)
{
    NvmeCmd cmd;
    NvmeTimestamp ts;
    uint64_t ms1 = 0, ms2 = 0;

    memset(&ts, 0, sizeof(ts));
    ms1 = 1700000000000ULL;
    memcpy(ts.timestamp, &ms1, 6);
    guest_memwrite(q->gm, g, &ts, sizeof(ts));
    memset(&cmd, 0, sizeof(cmd));
    cmd.opcode = NVME_ADM_CMD_SET_FEATURES;
    cmd.cdw10 = NVME_FEAT_TIMESTAMP;
    cmd.dptr.prp1 = g;
    ck_assert_int_eq(qnvme_admin(q, &cmd, NULL), NVME_SUCCESS);
    g_usleep(20000);
    guest_memset(q->gm, g, 0, 8);
    cmd.opcode = NVME_ADM_CMD_GET_FEATURES;
    ck_assert_int_eq(qnvme_admin(q, &cmd, NULL), NVME_SUCCESS);
    guest_memread(q->gm, g, &ts, sizeof(ts));
    memcpy(&ms2, ts.timestamp, 6);
    ck_assert_uint_ge(ms2, ms1 + 20);
    ck_assert_uint_lt(ms2, ms1 + 10000);
    ck_assert_int_eq((ts.attr >> NVME_TS_ATTR_ORIGIN_SHIFT) & 7,
                     NVME_TS_ORIGIN_HOST);
}

/* Not saveable, not supported, no such select. */
static void features_unsupported(QNvme *q)
{
    NvmeCmd cmd;

    memset(&cmd, 0, sizeof(cmd));
    cmd.opcode = NVME_ADM_CMD_SET_FEATURES;
    cmd.cdw10 = NVME_FEAT_ARBITRATION | NVME_FEAT_SET_SV;
    ck_assert_int_eq(qnvme_admin(q, &cmd, NULL), DNR(NVME_FID_NOT_SAVEABLE));
    ck_assert_int_eq(qnvme_set_features(q, NVME_FEAT_LBA_RANGE_TYPE, 0,
                                        NULL), DNR(NVME_INVALID_FIELD));
    ck_assert_int_eq(qnvme_get_features(q, NVME_FEAT_HOST_MEM_BUF, 0, 0,
                                        NULL), DNR(NVME_INVALID_FIELD));
    ck_assert_int_eq(qnvme_get_features(q, 0x55, 0, 0, NULL),
                     DNR(NVME_INVALID_FIELD));
    ck_assert_int_eq(qnvme_get_features(q, NVME_FEAT_ARBITRATION, 4, 0,
                                        NULL), DNR(NVME_INVALID_FIELD));
}

START_TEST(test_features)
{
    QNvme *q = start_default();
    uint64_t g = guest_alloc_aligned(q->gm, 4096, 4096);

    features_arbitration(q);
    features_power_mgmt(q);
    features_temp_threshold(q);
    features_error_recovery(q);
    features_write_cache(q);

    /* Number of queues: 8 pairs, 0's based. */
    ck_assert_uint_eq(feature_get(q, NVME_FEAT_NUM_QUEUES, 0, 0),
                      (7u << 16) | 7);

    /* Interrupt coalescing and per-vector configuration. */
    feature_set(q, NVME_FEAT_IRQ_COALESCING, 0x0a03);
    ck_assert_uint_eq(feature_get(q, NVME_FEAT_IRQ_COALESCING, 0, 0),
                      0x0a03);
    features_irq_vector_conf(q);
    /* Completions still arrive with coalescing on. */
    write_read_check(q, qnvme_ioq(q, 1), 1, 0, 8, 62);
    write_read_check(q, qnvme_ioq(q, 2), 1, 0, 8, 63);

    /* Write atomicity, async event configuration, keep alive. */
    feature_set(q, NVME_FEAT_WRITE_ATOMICITY, 1);
    ck_assert_uint_eq(feature_get(q, NVME_FEAT_WRITE_ATOMICITY, 0, 0), 1);
    feature_set(q, NVME_FEAT_ASYNC_EVENT_CONF, NVME_AEC_NS_ATTR | 0x1f);
    ck_assert_uint_eq(feature_get(q, NVME_FEAT_ASYNC_EVENT_CONF, 0, 0),
                      NVME_AEC_NS_ATTR | 0x1f);
    ck_assert_uint_eq(feature_get(q, NVME_FEAT_KEEP_ALIVE, 0, 0), 0);

    features_timestamp(q, g);
    features_unsupported(q);
}
END_TEST

START_TEST(test_log_pages)
{
    QNvme *q = start_default();
    g_autofree NvmeSmartLog *s1 = g_new0(NvmeSmartLog, 1);
    g_autofree NvmeSmartLog *s2 = g_new0(NvmeSmartLog, 1);
    g_autofree NvmeErrorLogEntry *el = g_new0(NvmeErrorLogEntry, 16);
    g_autofree NvmeEffectsLog *fx = g_new0(NvmeEffectsLog, 1);
    g_autofree uint32_t *nslist = g_new0(uint32_t, 1024);
    NvmeFwSlotLog fw;
    uint64_t b = guest_pattern(q, 8192, 71), part[2];
    uint64_t errors;

    ck_assert_int_eq(qnvme_get_log(q, NVME_LOG_SMART_INFO,
                                   NVME_NSID_BROADCAST, false, 0, s1,
                                   sizeof(*s1)), NVME_SUCCESS);
    ck_assert_int_eq(s1->temperature, NVME_TEMPERATURE);
    ck_assert_int_eq(s1->available_spare, 100);
    ck_assert_int_eq(s1->critical_warning, 0);
    /* 3 writes and 2 reads of 16 blocks (8 KiB). */
    for (unsigned i = 0; i < 3; i++) {
        ck_assert_int_eq(qnvme_rw(q, qnvme_ioq(q, 1), NVME_CMD_WRITE, 1,
                                  i * 16, 16, b), NVME_SUCCESS);
    }
    for (unsigned i = 0; i < 2; i++) {
        ck_assert_int_eq(qnvme_rw(q, qnvme_ioq(q, 2), NVME_CMD_READ, 1,
                                  i * 16, 16, b), NVME_SUCCESS);
    }
    ck_assert_int_eq(qnvme_get_log(q, NVME_LOG_SMART_INFO, 0, false, 0, s2,
                                   sizeof(*s2)), NVME_SUCCESS);
    ck_assert_uint_eq(smart_u64(s2->host_write_commands),
                      smart_u64(s1->host_write_commands) + 3);
    ck_assert_uint_eq(smart_u64(s2->host_read_commands),
                      smart_u64(s1->host_read_commands) + 2);
    /* Units of 1000 512-byte blocks, rounded up: 48 blocks make one. */
    ck_assert_uint_eq(smart_u64(s2->data_units_written), 1);
    ck_assert_uint_ge(smart_u64(s2->data_units_read),
                      smart_u64(s1->data_units_read));
    ck_assert_uint_ge(smart_u64(s2->data_units_read), 1);
    /* A partial read at an offset (extended data, LPA bit 2). */
    ck_assert_int_eq(qnvme_get_log(q, NVME_LOG_SMART_INFO, 0, true, 80,
                                   part, 16), NVME_SUCCESS);
    ck_assert_uint_eq(part[0], smart_u64(s2->host_write_commands));
    ck_assert_int_eq(qnvme_get_log(q, NVME_LOG_SMART_INFO, 1, false, 0, s2,
                                   sizeof(*s2)), DNR(NVME_INVALID_FIELD));
    ck_assert_int_eq(qnvme_get_log(q, NVME_LOG_SMART_INFO, 0, false, 516,
                                   s2, 4), DNR(NVME_INVALID_FIELD));
    ck_assert_int_eq(qnvme_get_log(q, NVME_LOG_SMART_INFO, 0, false, 2,
                                   s2, 4), DNR(NVME_INVALID_FIELD));

    /* A failed command lands in the error log, newest first. */
    ck_assert_int_eq(qnvme_get_log(q, NVME_LOG_SMART_INFO, 0, false, 0, s2,
                                   sizeof(*s2)), NVME_SUCCESS);
    errors = smart_u64(s2->num_err_log_entries);
    ck_assert_uint_ge(errors, 3);
    ck_assert_int_eq(qnvme_rw(q, qnvme_ioq(q, 3), NVME_CMD_READ, 1,
                              IMG_SIZE / 512, 1, b), DNR(NVME_LBA_RANGE));
    ck_assert_int_eq(qnvme_get_log(q, NVME_LOG_ERROR_INFO, 0, false, 0, el,
                                   16 * sizeof(*el)), NVME_SUCCESS);
    ck_assert_uint_eq(el[0].error_count, errors + 1);
    ck_assert_int_eq(el[0].sqid, 3);
    ck_assert_int_eq(el[0].status_field >> 1, DNR(NVME_LBA_RANGE));
    ck_assert_uint_eq(el[0].lba, IMG_SIZE / 512);
    ck_assert_uint_eq(el[0].nsid, 1);
    ck_assert_int_eq(qnvme_get_log(q, NVME_LOG_SMART_INFO, 0, false, 0, s2,
                                   sizeof(*s2)), NVME_SUCCESS);
    ck_assert_uint_eq(smart_u64(s2->num_err_log_entries), errors + 1);

    /* Firmware slots, changed namespaces, command effects. */
    ck_assert_int_eq(qnvme_get_log(q, NVME_LOG_FW_SLOT_INFO, 0, false, 0,
                                   &fw, sizeof(fw)), NVME_SUCCESS);
    ck_assert_int_eq(fw.afi & 7, 1);
    ck_assert(memcmp(fw.frs[0], IOVD_VERSION, strlen(IOVD_VERSION)) == 0);
    ck_assert_int_eq(qnvme_get_log(q, NVME_LOG_CHANGED_NSLIST, 0, false, 0,
                                   nslist, 4096), NVME_SUCCESS);
    ck_assert_uint_eq(nslist[0], 0);
    ck_assert_int_eq(qnvme_get_log(q, NVME_LOG_CMD_EFFECTS, 0, false, 0, fx,
                                   sizeof(*fx)), NVME_SUCCESS);
    ck_assert(fx->acs[NVME_ADM_CMD_IDENTIFY] & NVME_CSE_CSUPP);
    ck_assert(fx->acs[NVME_ADM_CMD_DBBUF_CONFIG] & NVME_CSE_CSUPP);
    ck_assert(!(fx->acs[NVME_ADM_CMD_FORMAT_NVM] & NVME_CSE_CSUPP));
    ck_assert(fx->iocs[NVME_CMD_READ] & NVME_CSE_CSUPP);
    ck_assert(fx->iocs[NVME_CMD_WRITE] & NVME_CSE_LBCC);
    ck_assert(!(fx->iocs[NVME_CMD_WRITE_UNCOR] & NVME_CSE_CSUPP));
    ck_assert_int_eq(qnvme_get_log(q, 0x70, 0, false, 0, nslist, 512),
                     DNR(NVME_INVALID_LOG_ID));
}
END_TEST

/* ---- asynchronous events ---- */

static uint16_t submit_aer(QNvme *q)
{
    NvmeCmd cmd;

    memset(&cmd, 0, sizeof(cmd));
    cmd.opcode = NVME_ADM_CMD_ASYNC_EV_REQ;
    return qnvme_submit(q, &q->admin, &cmd);
}

/* Wait for the completion of AER @cid; the event is its result. */
static uint32_t wait_aer(QNvme *q, uint16_t cid)
{
    NvmeCqe cqe;

    qnvme_wait(q, &q->admin, &cqe, 0);
    ck_assert_int_eq(cqe.cid, cid);
    ck_assert_int_eq(qnvme_status(&cqe), NVME_SUCCESS);
    return cqe.result;
}

START_TEST(test_aer_doorbell)
{
    QNvme *q = start_default();
    g_autofree NvmeErrorLogEntry *el = g_new0(NvmeErrorLogEntry, 16);
    NvmeCqe cqe;
    uint32_t ev;
    uint16_t cid, cids[4];

    /* A doorbell of a queue that does not exist. */
    cid = submit_aer(q);
    ck_assert(!qnvme_try_wait(q, &q->admin, &cqe, 100));
    qpci_bar_writel_posted(env.dev, NVME_BAR_REGS, NVME_DB_SQ_OFF(7, 0), 1);
    ev = wait_aer(q, cid);
    ck_assert_int_eq(NVME_AER_RESULT_TYPE(ev), NVME_AER_TYPE_ERROR);
    ck_assert_int_eq(NVME_AER_RESULT_INFO(ev),
                     NVME_AER_INFO_ERR_INVALID_DB_REGISTER);
    ck_assert_int_eq(NVME_AER_RESULT_LOG(ev), NVME_LOG_ERROR_INFO);

    /* Masked until the error log is read: this one waits. */
    cid = submit_aer(q);
    qpci_bar_writel_posted(env.dev, NVME_BAR_REGS, NVME_DB_SQ_OFF(1, 0),
                           1000);
    ck_assert(!qnvme_try_wait(q, &q->admin, &cqe, 100));
    ck_assert_int_eq(qnvme_get_log(q, NVME_LOG_ERROR_INFO, 0, true, 0, el,
                                   1024), NVME_SUCCESS);
    ck_assert(!qnvme_try_wait(q, &q->admin, &cqe, 100));
    /* Reading with RAE clear unmasks: the pending event completes. */
    {
        NvmeCmd cmd;
        uint64_t g = guest_alloc_aligned(q->gm, 4096, 4096);
        NvmeCqe c;
        bool got_log = false, got_aer = false;
        uint16_t lcid;

        memset(&cmd, 0, sizeof(cmd));
        cmd.opcode = NVME_ADM_CMD_GET_LOG_PAGE;
        cmd.cdw10 = NVME_LOG_ERROR_INFO | (1023u << 16);
        cmd.dptr.prp1 = g;
        lcid = qnvme_submit(q, &q->admin, &cmd);
        for (unsigned i = 0; i < 2; i++) {
            qnvme_wait(q, &q->admin, &c, 0);
            ck_assert_int_eq(qnvme_status(&c), NVME_SUCCESS);
            if (c.cid == lcid) {
                got_log = true;
            } else {
                ck_assert_int_eq(c.cid, cid);
                ck_assert_int_eq(NVME_AER_RESULT_INFO(c.result),
                                 NVME_AER_INFO_ERR_INVALID_DB_VALUE);
                got_aer = true;
            }
        }
        ck_assert(got_log && got_aer);
    }

    /* A CQ head doorbell that consumes entries never posted. */
    ck_assert_int_eq(qnvme_get_log(q, NVME_LOG_ERROR_INFO, 0, false, 0, el,
                                   1024), NVME_SUCCESS);
    cid = submit_aer(q);
    qpci_bar_writel_posted(env.dev, NVME_BAR_REGS, NVME_DB_CQ_OFF(2, 0), 5);
    ev = wait_aer(q, cid);
    ck_assert_int_eq(NVME_AER_RESULT_INFO(ev),
                     NVME_AER_INFO_ERR_INVALID_DB_VALUE);
    ck_assert_int_eq(qnvme_get_log(q, NVME_LOG_ERROR_INFO, 0, false, 0, el,
                                   1024), NVME_SUCCESS);

    /* AERL is 3: four may wait, the fifth is refused. */
    for (unsigned i = 0; i < 4; i++) {
        cids[i] = submit_aer(q);
    }
    ck_assert(!qnvme_try_wait(q, &q->admin, &cqe, 100));
    cid = submit_aer(q);
    qnvme_wait(q, &q->admin, &cqe, 0);
    ck_assert_int_eq(cqe.cid, cid);
    ck_assert_int_eq(qnvme_status(&cqe), DNR(NVME_AER_LIMIT_EXCEEDED));
    (void)cids;

    /* The queues are fine. */
    write_read_check(q, qnvme_ioq(q, 1), 1, 0, 8, 81);
    write_read_check(q, qnvme_ioq(q, 2), 1, 0, 8, 82);
}
END_TEST

START_TEST(test_aer_resize)
{
    QNvme *q;
    g_autofree uint32_t *nslist = g_new0(uint32_t, 1024);
    g_autofree char *img2 = NULL;
    json_object *ret;
    uint32_t ev;
    uint16_t cid;

    env_new();
    env.qmp_path = env_path("qmp.sock");
    img2 = make_image("d2.img", 1 << 20);
    env_start(NULL, true);
    q = env.q;
    qnvme_init(q, 1, 16);
    ck_assert_int_eq(qnvme_set_features(q, NVME_FEAT_ASYNC_EVENT_CONF,
                                        NVME_AEC_NS_ATTR, NULL),
                     NVME_SUCCESS);
    cid = submit_aer(q);

    /* block_resize of namespace 1's node. */
    ret = qmp_ok(env.qmp, "block_resize",
                 "{'node-name': 'd0', 'size': 134217728}");
    json_object_put(ret);
    ev = wait_aer(q, cid);
    ck_assert_int_eq(NVME_AER_RESULT_TYPE(ev), NVME_AER_TYPE_NOTICE);
    ck_assert_int_eq(NVME_AER_RESULT_INFO(ev),
                     NVME_AER_INFO_NOTICE_NS_ATTR_CHANGED);
    ck_assert_int_eq(NVME_AER_RESULT_LOG(ev), NVME_LOG_CHANGED_NSLIST);
    qnvme_identify_all(q);
    ck_assert_uint_eq(qnvme_ns(q, 1)->nsze, (128ULL << 20) / 512);
    write_read_check(q, qnvme_ioq(q, 1), 1, (128ULL << 20) / 512 - 8, 8, 91);
    ck_assert_int_eq(qnvme_get_log(q, NVME_LOG_CHANGED_NSLIST, 0, false, 0,
                                   nslist, 4096), NVME_SUCCESS);
    ck_assert_uint_eq(nslist[0], 1);
    ck_assert_uint_eq(nslist[1], 0);
    ck_assert_int_eq(qnvme_get_log(q, NVME_LOG_CHANGED_NSLIST, 0, false, 0,
                                   nslist, 4096), NVME_SUCCESS);
    ck_assert_uint_eq(nslist[0], 0);

    /* A namespace added at run time. */
    cid = submit_aer(q);
    ret = qmp_okf(env.qmp, "blockdev-add",
                  "{'driver': 'file', 'node-name': 'd2', 'filename': '%s'}",
                  img2);
    json_object_put(ret);
    ret = qmp_ok(env.qmp, "device_add",
                 "{'driver': 'nvme-ns', 'id': 'ns5', 'bus': 'nvme0', "
                 "'drive': 'd2', 'nsid': 5}");
    json_object_put(ret);
    ev = wait_aer(q, cid);
    ck_assert_int_eq(NVME_AER_RESULT_INFO(ev),
                     NVME_AER_INFO_NOTICE_NS_ATTR_CHANGED);
    ck_assert_int_eq(qnvme_get_log(q, NVME_LOG_CHANGED_NSLIST, 0, false, 0,
                                   nslist, 4096), NVME_SUCCESS);
    ck_assert_uint_eq(nslist[0], 5);
    qnvme_identify_all(q);
    ck_assert_int_eq(q->nr_ns, 2);
    write_read_check(q, qnvme_ioq(q, 1), 5, 0, 8, 92);

    /* And removed at run time, with I/O in flight. */
    cid = submit_aer(q);
    {
        uint64_t buf = guest_pattern(q, 65536, 93);
        QNvmeQueue *queue = qnvme_ioq(q, 1);
        NvmeCmd cmd;
        NvmeCqe cqe;
        bool got_aer = false;
        unsigned done = 0;

        for (unsigned j = 0; j < 8; j++) {
            qnvme_rw_cmd(q, &cmd, NVME_CMD_WRITE, 5, j * 128, 128, buf);
            qnvme_queue_cmd(q, queue, &cmd);
        }
        qnvme_ring_sq(q, queue);
        ret = qmp_ok(env.qmp, "device_del", "{'id': 'ns5'}");
        json_object_put(ret);
        for (unsigned j = 0; j < 8; j++) {
            qnvme_wait(q, queue, &cqe, 0);
            done++;
        }
        ck_assert_uint_eq(done, 8);
        qnvme_wait(q, &q->admin, &cqe, 0);
        ck_assert_int_eq(cqe.cid, cid);
        got_aer = NVME_AER_RESULT_INFO(cqe.result) ==
                  NVME_AER_INFO_NOTICE_NS_ATTR_CHANGED;
        ck_assert(got_aer);
        qnvme_free_prps(q);
    }
    ck_assert_int_eq(qnvme_get_log(q, NVME_LOG_CHANGED_NSLIST, 0, false, 0,
                                   nslist, 4096), NVME_SUCCESS);
    ck_assert_uint_eq(nslist[0], 5);
    qnvme_identify_all(q);
    ck_assert_int_eq(q->nr_ns, 1);
    ck_assert_int_eq(qnvme_rw(q, qnvme_ioq(q, 1), NVME_CMD_READ, 5, 0, 1,
                              guest_alloc_aligned(q->gm, 4096, 4096)),
                     DNR(NVME_INVALID_NSID));
}
END_TEST

/* ---- resets and shutdown ---- */

/* Queue @per_q 64 KiB writes on each of @nq queues and ring (no wait). */
static void flood(QNvme *q, unsigned nq, unsigned per_q, uint64_t buf)
{
    for (unsigned qi = 1; qi <= nq; qi++) {
        QNvmeQueue *queue = qnvme_ioq(q, qi);

        for (unsigned j = 0; j < per_q; j++) {
            NvmeCmd cmd;

            qnvme_rw_cmd(q, &cmd, NVME_CMD_WRITE, 1,
                         (qi * per_q + j) * 128, 128, buf);
            qnvme_queue_cmd(q, queue, &cmd);
        }
        qnvme_ring_sq(q, queue);
    }
}

START_TEST(test_reset_inflight)
{
    QNvme *q = start_default();
    uint64_t buf = guest_pattern(q, 65536, 101);

    /* CC.EN 1 -> 0 with I/O in flight: RDY drops, re-init works. */
    flood(q, 4, 32, buf);
    qnvme_writel(q, NVME_REG_CC, qnvme_readl(q, NVME_REG_CC) & ~NVME_CC_EN);
    qnvme_wait_csts(q, NVME_CSTS_RDY, 0);
    ck_assert_uint_eq(qnvme_readl(q, NVME_REG_CSTS), 0);
    /* The admin queue registers survive a controller reset. */
    ck_assert_uint_eq(qnvme_readq(q, NVME_REG_ASQ), q->admin.sq_addr);
    qnvme_free_prps(q);
    qnvme_init(q, 4, 64);
    integrity_run(q, 2, 8, env.img, 1);

    /* DEVICE_RESET (what a VMM sends at VM reset) with I/O in flight. */
    flood(q, 4, 32, buf);
    ck_assert_int_eq(vfu_device_reset(env.c), 0);
    /* The function reset cleared the command register too. */
    ck_assert_uint_eq(qpci_config_readw(env.dev, PCI_COMMAND) &
                      PCI_COMMAND_MEMORY, 0);
    qpci_device_enable(env.dev);
    ck_assert_uint_eq(qnvme_readl(q, NVME_REG_CSTS), 0);
    ck_assert_uint_eq(qnvme_readl(q, NVME_REG_CC), 0);
    ck_assert_uint_eq(qnvme_readq(q, NVME_REG_ASQ), 0);
    qnvme_free_prps(q);
    qnvme_init(q, 4, 64);
    write_read_check(q, qnvme_ioq(q, 1), 1, 0, 128, 102);

    /* Function level reset through the PCIe capability. */
    flood(q, 2, 16, buf);
    {
        uint8_t exp = qpci_find_capability(env.dev, PCI_CAP_ID_EXP, 0);

        qpci_config_writew(env.dev, exp + PCI_EXP_DEVCTL,
                           qpci_config_readw(env.dev,
                                             exp + PCI_EXP_DEVCTL) |
                           PCI_EXP_DEVCTL_BCR_FLR);
    }
    qpci_device_enable(env.dev);
    ck_assert_uint_eq(qnvme_readl(q, NVME_REG_CC), 0);
    qnvme_free_prps(q);
    qnvme_init(q, 2, 64);
    write_read_check(q, qnvme_ioq(q, 2), 1, 0, 8, 103);

}
END_TEST

START_TEST(test_reconnect)
{
    QNvme *q = start_default();
    uint64_t buf = guest_pattern(q, 65536, 101);

    /* A client that hangs up with I/O in flight; the next one works. */
    flood(q, 2, 32, buf);
    qnvme_free(env.q);
    env.q = NULL;
    qpci_device_free(env.dev);
    env.dev = NULL;
    vfu_client_free(env.c);
    guest_mem_free(env.gm);
    env.c = vfu_client_open(env.sock);
    env.dev = qpci_device_new(env.c);
    env.gm = guest_mem_new(GUEST_MEM_DEFAULT_BASE, GM_SIZE);
    guest_mem_map_checked(env.gm, env.c, true);
    env.q = q = qnvme_new(env.dev, env.gm);
    ck_assert_uint_eq(qnvme_readl(q, NVME_REG_CC), 0);
    ck_assert_uint_eq(qnvme_readl(q, NVME_REG_CSTS), 0);
    qnvme_enable(q);
    {
        NvmeCmd cmd;
        NvmeCqe cqe;

        memset(&cmd, 0, sizeof(cmd));
        cmd.opcode = NVME_ADM_CMD_KEEP_ALIVE;
        qnvme_submit(q, &q->admin, &cmd);
        /* The device reads its admin queue: DMA works after reconnect. */
        ck_assert_msg(qnvme_try_wait(q, &q->admin, &cqe, QOS_TIMEOUT_MS),
                      "no DMA after the client reconnected (CSTS 0x%x)",
                      qnvme_readl(q, NVME_REG_CSTS));
        ck_assert_int_eq(qnvme_status(&cqe), NVME_SUCCESS);
    }
    qnvme_init(q, 2, 32);
    write_read_check(q, qnvme_ioq(q, 1), 1, 0, 8, 104);
}
END_TEST

START_TEST(test_shutdown)
{
    QNvme *q = start_default();
    uint64_t w = guest_pattern(q, 65536, 111);
    g_autofree uint8_t *want = g_malloc(65536);
    g_autofree uint8_t *got = g_malloc(65536);
    uint32_t csts;

    fill_pattern(want, 65536, 111);
    flood(q, 2, 8, w);
    /* Normal shutdown: in-flight writes finish, the backend is flushed. */
    qnvme_writel(q, NVME_REG_CC, qnvme_readl(q, NVME_REG_CC) |
                 (NVME_CC_SHN_NORMAL << NVME_CC_SHN_SHIFT));
    csts = qnvme_wait_csts(q, NVME_CSTS_SHST_MASK,
                           NVME_CSTS_SHST_COMPLETE << NVME_CSTS_SHST_SHIFT);
    ck_assert(csts & NVME_CSTS_RDY);
    for (unsigned qi = 1; qi <= 2; qi++) {
        for (unsigned j = 0; j < 8; j++) {
            NvmeCqe cqe;

            qnvme_wait(q, qnvme_ioq(q, qi), &cqe, 0);
            ck_assert_int_eq(qnvme_status(&cqe), NVME_SUCCESS);
            file_read(env.img, (qi * 8 + j) * 128 * 512ULL, got, 65536);
            assert_same(got, want, 65536, "after shutdown");
        }
    }
    /* A reset clears SHST; the controller comes back. */
    qnvme_free_prps(q);
    qnvme_disable(q);
    ck_assert_uint_eq(qnvme_readl(q, NVME_REG_CSTS), 0);
    qnvme_writel(q, NVME_REG_CC, 0);
    qnvme_init(q, 1, 16);
    write_read_check(q, qnvme_ioq(q, 1), 1, 0, 8, 112);
    /* Abrupt shutdown of a disabled controller completes at once. */
    qnvme_disable(q);
    qnvme_writel(q, NVME_REG_CC, NVME_CC_SHN_ABRUPT << NVME_CC_SHN_SHIFT);
    qnvme_wait_csts(q, NVME_CSTS_SHST_MASK,
                    NVME_CSTS_SHST_COMPLETE << NVME_CSTS_SHST_SHIFT);
}
END_TEST

/* ---- doorbells in memory (sparse mmap), polled by the device ---- */

static int64_t vfu_messages(void)
{
    json_object *ret = qmp_ok(env.qmp, "query-vfio-user", NULL);
    int64_t n = -1;

    for (size_t i = 0; i < json_object_array_length(ret); i++) {
        json_object *e = json_object_array_get_idx(ret, i);

        if (!strcmp(qmp_get_str(e, "id"), "nvme0")) {
            n = qmp_get_int(e, "messages");
        }
    }
    json_object_put(ret);
    ck_assert_int_ge(n, 0);
    return n;
}

/*
 * Start nvme0 with @props and @iothread (NULL: main loop); 2 queue
 * pairs.  Checks whether BAR0 offers its doorbell page as @want_mmap
 * says, then moves 200 I/Os and returns how many vfio-user messages
 * they took.
 */
static int64_t doorbell_run(const char *iothread, const char *props,
                            bool want_mmap)
{
    g_autofree char *dev_props = NULL;
    const VfuRegion *bar0;
    int64_t before;

    env_new();
    env.qmp_path = env_path("qmp.sock");
    if (iothread) {
        env_arg("-object");
        env_arg("iothread,id=io0,%s", iothread);
    }
    dev_props = g_strdup_printf("%s%s", iothread ? ",iothread=io0" : "",
                                props);
    env_start(dev_props, true);
    bar0 = qpci_region(env.dev, NVME_BAR_REGS);
    ck_assert_int_eq(env.q->db_mapped, want_mmap);
    ck_assert_int_eq(!!(bar0->flags & VFIO_REGION_INFO_FLAG_MMAP), want_mmap);
    if (want_mmap) {
        /* Registers stay trapped; the doorbells are the page after. */
        ck_assert_uint_eq(bar0->nr_areas, 1);
        ck_assert_uint_eq(bar0->areas[0].offset, NVME_REG_DBS);
        ck_assert_uint_ge(bar0->areas[0].size, 4096);
    }
    qnvme_init(env.q, 2, 64);
    before = vfu_messages();
    for (unsigned i = 0; i < 100; i++) {
        write_read_check(env.q, qnvme_ioq(env.q, 1 + i % 2), 1, i * 8, 8,
                         300 + i);
    }
    return vfu_messages() - before;
}

START_TEST(test_doorbells_mmap_polling)
{
    /* On a polling iothread the guest rings doorbells without messages. */
    int64_t msgs = doorbell_run("poll-max-ns=50000", "", true);

    ck_assert_int_lt(msgs, 10);
}
END_TEST

START_TEST(test_doorbells_mmap_sleeping)
{
    /* Without busy polling the device still sees them (its watch). */
    int64_t msgs = doorbell_run(NULL, ",doorbells=mmap", true);

    ck_assert_int_lt(msgs, 10);
}
END_TEST

START_TEST(test_doorbells_trap)
{
    /* Trapped: every doorbell is a message (SQ tail and CQ head). */
    int64_t msgs = doorbell_run("poll-max-ns=50000", ",doorbells=trap",
                                false);

    ck_assert_int_ge(msgs, 400);
}
END_TEST

static void dbbuf_batch(QNvme *q, QNvmeQueue *queue, uint64_t buf,
                        unsigned n, bool ring_each)
{
    for (unsigned i = 0; i < n; i++) {
        NvmeCmd cmd;

        qnvme_rw_cmd(q, &cmd, NVME_CMD_READ, 1, i * 8, 8, buf);
        qnvme_queue_cmd(q, queue, &cmd);
        if (ring_each || i == n - 1) {
            qnvme_ring_sq(q, queue);
        }
    }
    for (unsigned i = 0; i < n; i++) {
        NvmeCqe cqe;

        qnvme_wait(q, queue, &cqe, 5000);
        ck_assert_int_eq(qnvme_status(&cqe), NVME_SUCCESS);
    }
}

START_TEST(test_doorbells_mmap_dbbuf)
{
    QNvme *q;
    QNvmeQueue *queue;
    uint64_t buf;

    /*
     * Shadow doorbells with the page in memory, on an 8-entry queue.  Two
     * commands back to back: the first rings, the second (the device has
     * not caught up) does not, but the device reads it from the shadow.
     * Then 7 at once: that ring repeats the value of the first.  Each
     * ring must be seen, equal to the last one or not.
     */
    doorbell_run("poll-max-ns=50000", "", true);
    q = env.q;
    ck_assert_int_eq(qnvme_dbbuf_config(q), NVME_SUCCESS);
    queue = qnvme_create_ioq(q, 3, 8, 3);
    buf = guest_alloc_aligned(q->gm, 4096, 4096);
    q->use_msix = false;
    for (unsigned i = 0; i < 50; i++) {
        dbbuf_batch(q, queue, buf, 2, true);
        dbbuf_batch(q, queue, buf, 7, false);
    }
    ck_assert_uint_eq(qnvme_readl(q, NVME_REG_CSTS), NVME_CSTS_RDY);
}
END_TEST

START_TEST(test_doorbells_trap_shadow_polled)
{
    QNvme *q;
    QNvmeQueue *small, *big;
    uint64_t buf;
    int64_t before, msgs;

    /*
     * Trapped doorbells with shadow doorbells on a polling iothread:
     * while the loop polls, the device reads the shadow tails and its
     * event indexes ask for no doorbell write; before it sleeps it asks
     * again.
     */
    doorbell_run("poll-max-ns=1000000", ",doorbells=trap", false);
    q = env.q;
    ck_assert_int_eq(qnvme_dbbuf_config(q), NVME_SUCCESS);
    small = qnvme_create_ioq(q, 3, 8, 3);
    big = qnvme_create_ioq(q, 4, 64, 4);
    buf = guest_alloc_aligned(q->gm, 4096, 4096);
    q->use_msix = false;
    /* On an 8-entry queue the tails repeat every lap: each is seen. */
    for (unsigned i = 0; i < 50; i++) {
        dbbuf_batch(q, small, buf, 2, true);
        dbbuf_batch(q, small, buf, 7, false);
    }
    /*
     * 100 batches on a 64-entry queue: a message only where a lap
     * crosses an event index, or where the loop had stopped polling
     * (each batch, without shadow polling).  The driver waits on its
     * MSI-X eventfd: batches come closer together than poll-max-ns.
     */
    q->use_msix = true;
    before = vfu_messages();
    for (unsigned i = 0; i < 100; i++) {
        dbbuf_batch(q, big, buf, 2, false);
    }
    msgs = vfu_messages() - before;
    ck_assert_msg(msgs < 50, "%" PRId64 " messages for 100 batches", msgs);
    /* Idle, the loop sleeps; the next batch rings it awake. */
    for (unsigned i = 0; i < 3; i++) {
        g_usleep(20000);
        dbbuf_batch(q, big, buf, 3, false);
    }
    ck_assert_uint_eq(qnvme_readl(q, NVME_REG_CSTS), NVME_CSTS_RDY);
}
END_TEST

START_TEST(test_doorbells_mmap_reset)
{
    QNvme *q;

    /* Values left in the page do not ring the queues made after a reset. */
    doorbell_run("poll-max-ns=50000", "", true);
    q = env.q;
    qnvme_free_prps(q);
    qnvme_disable(q);
    qnvme_writel(q, NVME_REG_CC, 0);
    /* A tail written while disabled is dropped, not taken by a new SQ 1. */
    qpci_bar_writel(env.dev, NVME_BAR_REGS, NVME_DB_SQ_OFF(1, 0), 5);
    qnvme_init(q, 2, 64);
    write_read_check(q, qnvme_ioq(q, 2), 1, 0, 8, 401);
    write_read_check(q, qnvme_ioq(q, 1), 1, 64, 8, 402);
    ck_assert_uint_eq(qnvme_readl(q, NVME_REG_CSTS), NVME_CSTS_RDY);
}
END_TEST

START_TEST(test_delete_sq_inflight)
{
    QNvme *q = start_default();
    uint64_t buf = guest_pattern(q, 65536, 121);
    QNvmeQueue *queue = qnvme_ioq(q, 1);
    NvmeCqe cqe;
    unsigned done = 0;

    flood(q, 1, 32, buf);
    /* The SQ's commands complete before the Delete I/O SQ does. */
    ck_assert_int_eq(admin_simple(q, NVME_ADM_CMD_DELETE_SQ, 0, 1, 0, 0,
                                  NULL), NVME_SUCCESS);
    while (qnvme_cqe_ready(q, queue)) {
        qnvme_wait(q, queue, &cqe, 0);
        ck_assert_int_eq(qnvme_status(&cqe), NVME_SUCCESS);
        done++;
    }
    ck_assert_uint_eq(done, 32);
    ck_assert_int_eq(admin_simple(q, NVME_ADM_CMD_DELETE_CQ, 0, 1, 0, 0,
                                  NULL), NVME_SUCCESS);
    /* Gone: its doorbell raises nothing fatal, the other queues work. */
    qpci_bar_writel_posted(env.dev, NVME_BAR_REGS, NVME_DB_SQ_OFF(1, 0), 1);
    write_read_check(q, qnvme_ioq(q, 2), 1, 0, 8, 122);
    ck_assert_uint_eq(qnvme_readl(q, NVME_REG_CSTS), NVME_CSTS_RDY);
    g_free(q->ioq[1]);
    q->ioq[1] = NULL;
}
END_TEST

START_TEST(test_cq_full)
{
    QNvme *q;
    QNvmeQueue *queue;
    uint64_t r;

    env_new();
    env_start(NULL, true);
    q = env.q;
    qnvme_init(q, 1, 16);
    /* A CQ of 2 entries (one usable) behind an SQ of 16. */
    queue = qnvme_create_ioq_full(q, 2, 16, 2, 2, true);
    r = guest_alloc_aligned(q->gm, 4096, 4096);
    for (unsigned i = 0; i < 10; i++) {
        NvmeCmd cmd;

        qnvme_rw_cmd(q, &cmd, NVME_CMD_READ, 1, i, 1, r);
        qnvme_queue_cmd(q, queue, &cmd);
    }
    qnvme_ring_sq(q, queue);
    for (unsigned i = 0; i < 10; i++) {
        NvmeCqe cqe;

        qnvme_wait(q, queue, &cqe, 0);
        ck_assert_int_eq(qnvme_status(&cqe), NVME_SUCCESS);
        ck_assert_int_eq(cqe.sq_id, 2);
    }
    ck_assert(!qnvme_cqe_ready(q, queue));
    write_read_check(q, queue, 1, 0, 8, 131);
}
END_TEST

START_TEST(test_keep_alive)
{
    QNvme *q = start_default();
    uint32_t v;

    ck_assert_int_eq(qnvme_set_features(q, NVME_FEAT_KEEP_ALIVE, 1000,
                                        NULL), NVME_SUCCESS);
    ck_assert_int_eq(qnvme_get_features(q, NVME_FEAT_KEEP_ALIVE, 0, 0, &v),
                     NVME_SUCCESS);
    ck_assert_uint_eq(v, 1000);
    /* Keep alives in time keep it going. */
    for (unsigned i = 0; i < 6; i++) {
        g_usleep(200000);
        ck_assert_int_eq(admin_simple(q, NVME_ADM_CMD_KEEP_ALIVE, 0, 0, 0, 0,
                                      NULL), NVME_SUCCESS);
    }
    ck_assert_uint_eq(qnvme_readl(q, NVME_REG_CSTS), NVME_CSTS_RDY);
    /* Silence: the controller gives up (fatal status); a reset heals. */
    qnvme_wait_csts(q, NVME_CSTS_CFS, NVME_CSTS_CFS);
    qnvme_init(q, 1, 16);
    write_read_check(q, qnvme_ioq(q, 1), 1, 0, 8, 141);
}
END_TEST

/* ---- transports and interrupt modes ---- */

START_TEST(test_dma_fallback)
{
    QNvme *q;
    uint64_t b;

    /* Guest memory mapped without an fd: everything goes through
     * DMA_READ / DMA_WRITE messages and the bounce buffer. */
    env_new();
    env_start(NULL, false);
    q = env.q;
    qnvme_init(q, 2, 32);
    ck_assert_int_eq(q->id.vid, 0x1b36);
    integrity_run(q, 2, 6, env.img, 1);
    write_read_check(q, qnvme_ioq(q, 1), 1, 0, 1024, 151);
    sgl_run(q, qnvme_ioq(q, 2));
    compare_run(q, qnvme_ioq(q, 1));
    ck_assert_int_eq(write_zeroes(q, qnvme_ioq(q, 1), 1, 0, 8, 0),
                     NVME_SUCCESS);
    b = guest_alloc_aligned(q->gm, 4096, 4096);
    ck_assert_int_eq(qnvme_rw(q, qnvme_ioq(q, 2), NVME_CMD_READ, 1, 0, 8, b),
                     NVME_SUCCESS);
    ck_assert_uint_eq(guest_readq(q->gm, b), 0);
    ck_assert_uint_ge(vfu_client_stats(env.c)->dma_writes, 1);
    ck_assert_uint_ge(vfu_client_stats(env.c)->dma_reads, 1);
    vfu_client_assert_clean(env.c);
}
END_TEST

/*
 * Without shared memory the device copies through DMA_READ messages; a
 * function level reset (a config write, which the server serves while its
 * work waits for the DMA) arrives in the middle of that.  Round 0 holds
 * the first DMA_READ until the reset is done: the work is cancelled
 * before it submitted anything, so the file is unchanged; later rounds
 * let some of it through first.
 */
/*
 * Guest RAM reached by messages: the host sees a completion as soon as
 * the VMM has written it, before the device has the reply to that
 * DMA_WRITE, and may ring the CQ head past it meanwhile.  That head is
 * valid.  (check-guest found it on a polling iothread: the device moved
 * its tail only on the reply and refused the head as past it; on a
 * 2-entry CQ the queue then looks full and the next completion never
 * comes.)
 */
START_TEST(test_cq_head_before_dma_reply)
{
    QNvmeQueue *queue;
    QNvme *q;

    env_new();
    env_start(NULL, false);
    q = env.q;
    qnvme_init(q, 1, 32);
    queue = qnvme_create_ioq(q, 2, 2, 2);
    q->use_msix = false;        /* the interrupt comes after the replies */
    vfu_client_hold_dma_apply_writes(env.c, true);
    for (unsigned i = 0; i < 4; i++) {
        NvmeCmd cmd = { .opcode = NVME_CMD_FLUSH, .nsid = 1 };
        NvmeCqe cqe;

        vfu_client_hold_dma(env.c, true);
        qnvme_submit(q, queue, &cmd);
        /* The entry, then its phase dword: both written, answers held. */
        ck_assert(vfu_client_wait_held_dma(env.c, 1, QOS_TIMEOUT_MS));
        vfu_client_hold_dma(env.c, false);
        vfu_client_hold_dma(env.c, true);
        ck_assert(vfu_client_wait_held_dma(env.c, 1, QOS_TIMEOUT_MS));
        /* Visible now: taken, and the head rung past it. */
        ck_assert(qnvme_cqe_ready(q, queue));
        ck_assert(qnvme_try_wait(q, queue, &cqe, QOS_TIMEOUT_MS));
        ck_assert_int_eq(qnvme_status(&cqe), NVME_SUCCESS);
        vfu_client_hold_dma(env.c, false);
    }
    ck_assert_uint_eq(qnvme_readl(q, NVME_REG_CSTS), NVME_CSTS_RDY);
}
END_TEST

START_TEST(test_reset_during_dma)
{
    QNvme *q;
    uint64_t buf;
    uint8_t exp;
    g_autofree uint8_t *before = g_malloc(8 * 1024 * 512);
    g_autofree uint8_t *after = g_malloc(8 * 1024 * 512);

    env_new();
    env_start(NULL, false);
    q = env.q;
    qnvme_init(q, 2, 32);
    buf = guest_pattern(q, 512 * 1024, 201);
    for (unsigned round = 0; round < 3; round++) {
        if (round == 0) {
            file_read(env.img, 0, before, 8 * 1024 * 512);
            vfu_client_hold_dma(env.c, true);
        }
        for (unsigned qi = 1; qi <= 2; qi++) {
            QNvmeQueue *queue = qnvme_ioq(q, qi);

            for (unsigned j = 0; j < 8; j++) {
                NvmeCmd cmd;

                qnvme_rw_cmd(q, &cmd, NVME_CMD_WRITE, 1, j * 1024, 1024,
                             buf);
                qnvme_queue_cmd(q, queue, &cmd);
            }
            qnvme_ring_sq(q, queue);
        }
        if (round == 0) {
            ck_assert(vfu_client_wait_held_dma(env.c, 1, QOS_TIMEOUT_MS));
        } else {
            vfu_service(env.c, round);
        }
        exp = qpci_find_capability(env.dev, PCI_CAP_ID_EXP, 0);
        qpci_config_writew(env.dev, exp + PCI_EXP_DEVCTL,
                           qpci_config_readw(env.dev, exp + PCI_EXP_DEVCTL) |
                           PCI_EXP_DEVCTL_BCR_FLR);
        if (round == 0) {
            /* The answer comes after the reset: it changes nothing. */
            vfu_client_hold_dma(env.c, false);
        }
        /* PCIe: software waits 100 ms after an FLR. */
        vfu_service(env.c, 100);
        if (round == 0) {
            file_read(env.img, 0, after, 8 * 1024 * 512);
            ck_assert(memcmp(before, after, 8 * 1024 * 512) == 0);
        }
        qpci_device_enable(env.dev);
        qnvme_wait_csts(q, NVME_CSTS_RDY, 0);
        ck_assert_uint_eq(qnvme_readl(q, NVME_REG_CC), 0);
        qnvme_free_prps(q);
        qnvme_init(q, 2, 32);
        write_read_check(q, qnvme_ioq(q, 1), 1, 0, 16, 202 + round);
    }
    /* The same with CC.EN = 0. */
    for (unsigned qi = 1; qi <= 2; qi++) {
        QNvmeQueue *queue = qnvme_ioq(q, qi);

        for (unsigned j = 0; j < 8; j++) {
            NvmeCmd cmd;

            qnvme_rw_cmd(q, &cmd, NVME_CMD_WRITE, 1, j * 1024, 1024, buf);
            qnvme_queue_cmd(q, queue, &cmd);
        }
        qnvme_ring_sq(q, queue);
    }
    qnvme_writel(q, NVME_REG_CC, 0);
    qnvme_wait_csts(q, NVME_CSTS_RDY, 0);
    qnvme_free_prps(q);
    qnvme_init(q, 1, 16);
    write_read_check(q, qnvme_ioq(q, 1), 1, 0, 16, 210);
}
END_TEST

/* A client that hangs up in the middle: the daemon carries on. */
START_TEST(test_hangup_inflight)
{
    QNvme *q;
    uint64_t buf;

    for (unsigned mode = 0; mode < 2; mode++) {
        env_new();
        env_start(NULL, mode == 0);
        q = env.q;
        qnvme_init(q, 4, 64);
        buf = guest_pattern(q, 65536, 211);
        flood(q, 4, 48, buf);
        qnvme_free(env.q);
        env.q = NULL;
        qpci_device_free(env.dev);
        env.dev = NULL;
        vfu_client_free(env.c);
        env.c = NULL;
        guest_mem_free(env.gm);
        env.gm = NULL;
        g_usleep(100000);
        iovd_proc_assert_alive(env.proc);
        teardown();
    }
}
END_TEST

START_TEST(test_intx)
{
    QNvme *q;
    QNvmeQueue *queue;
    uint64_t r;
    NvmeCmd cmd;
    NvmeCqe cqe;
    int64_t deadline;

    env_new();
    env_start(NULL, true);
    q = env.q;
    q->intx = true;
    qnvme_init(q, 2, 16);
    queue = qnvme_ioq(q, 1);
    /* Pin-based: vector 0 only. */
    ck_assert_int_eq(admin_simple(q, NVME_ADM_CMD_CREATE_CQ, 0,
                                  5 | (15 << 16),
                                  NVME_CQ_FLAGS_PC | NVME_CQ_FLAGS_IEN |
                                  (1u << 16),
                                  guest_alloc_aligned(q->gm, 4096, 4096),
                                  NULL), DNR(NVME_INVALID_IRQ_VECTOR));
    write_read_check(q, queue, 1, 0, 8, 161);
    write_read_check(q, qnvme_ioq(q, 2), 1, 8, 8, 162);

    /* INTMS masks the line; INTMC lets it through. */
    qpci_eventfd_clear(qpci_intx_fd(env.dev));
    qnvme_writel(q, NVME_REG_INTMS, 1);
    r = guest_alloc_aligned(q->gm, 4096, 4096);
    qnvme_rw_cmd(q, &cmd, NVME_CMD_READ, 1, 0, 8, r);
    qnvme_submit(q, queue, &cmd);
    deadline = qos_deadline(QOS_TIMEOUT_MS);
    while (!qnvme_cqe_ready(q, queue)) {
        ck_assert(qos_remaining_ms(deadline));
        vfu_service(env.c, 1);
    }
    qpci_intx_assert_quiet(env.dev);
    qnvme_writel(q, NVME_REG_INTMC, 1);
    qpci_intx_wait(env.dev);
    qnvme_wait(q, queue, &cqe, 0);
    ck_assert_int_eq(qnvme_status(&cqe), NVME_SUCCESS);
    /* Consumed: the line is low, nothing fires at the next unmask. */
    qpci_eventfd_clear(qpci_intx_fd(env.dev));
    qpci_intx_unmask(env.dev);
    qpci_intx_assert_quiet(env.dev);
}
END_TEST

START_TEST(test_msix_vectors)
{
    QNvme *q = start_default();
    QNvmeQueue *queue = qnvme_ioq(q, 3);
    uint64_t r = guest_alloc_aligned(q->gm, 4096, 4096);
    NvmeCmd cmd;
    NvmeCqe cqe;

    /* Each queue's completion raises its own vector, not another's. */
    for (unsigned v = 0; v <= 4; v++) {
        qpci_eventfd_clear(qpci_msix_fd(env.dev, v));
    }
    qnvme_rw_cmd(q, &cmd, NVME_CMD_READ, 1, 0, 8, r);
    qnvme_submit(q, queue, &cmd);
    qpci_msix_wait(env.dev, 3);
    qnvme_wait(q, queue, &cqe, 0);
    ck_assert_int_eq(qnvme_status(&cqe), NVME_SUCCESS);
    ck_assert(!qpci_eventfd_clear(qpci_msix_fd(env.dev, 1)));
    ck_assert(!qpci_eventfd_clear(qpci_msix_fd(env.dev, 2)));
    ck_assert(!qpci_eventfd_clear(qpci_msix_fd(env.dev, 4)));

    /* A CQ without interrupts: polled only (its vector is not used). */
    queue = qnvme_create_ioq_full(q, 5, 16, 16, 40, false);
    qpci_eventfd_clear(qpci_msix_fd(env.dev, 0));
    qnvme_rw_cmd(q, &cmd, NVME_CMD_READ, 1, 0, 8, r);
    qnvme_submit(q, queue, &cmd);
    qnvme_wait(q, queue, &cqe, 0);
    ck_assert_int_eq(qnvme_status(&cqe), NVME_SUCCESS);
    qpci_msix_assert_quiet(env.dev, 0);

    /* Coalescing: a lone completion is still delivered (by the timer). */
    ck_assert_int_eq(qnvme_set_features(q, NVME_FEAT_IRQ_COALESCING,
                                        (20 << 8) | 7, NULL), NVME_SUCCESS);
    queue = qnvme_ioq(q, 1);
    qpci_eventfd_clear(qpci_msix_fd(env.dev, 1));
    qnvme_rw_cmd(q, &cmd, NVME_CMD_READ, 1, 0, 8, r);
    qnvme_submit(q, queue, &cmd);
    qpci_msix_wait(env.dev, 1);
    qnvme_wait(q, queue, &cqe, 0);
    ck_assert_int_eq(qnvme_status(&cqe), NVME_SUCCESS);
    integrity_run(q, 4, 16, NULL, 1);
}
END_TEST

START_TEST(test_shadow_doorbells)
{
    QNvme *q = start_default();
    QNvmeQueue *queue = qnvme_ioq(q, 1);
    NvmeCmd cmd;

    /* Buffers must be page aligned. */
    memset(&cmd, 0, sizeof(cmd));
    cmd.opcode = NVME_ADM_CMD_DBBUF_CONFIG;
    cmd.dptr.prp1 = guest_alloc_aligned(q->gm, 8192, 4096) + 64;
    cmd.dptr.prp2 = cmd.dptr.prp1 + 4096;
    ck_assert_int_eq(qnvme_admin(q, &cmd, NULL), DNR(NVME_INVALID_FIELD));

    write_read_check(q, queue, 1, 0, 8, 170);
    ck_assert_int_eq(qnvme_dbbuf_config(q), NVME_SUCCESS);
    /* The device seeded the shadow doorbells with what it knows. */
    ck_assert_uint_eq(guest_readl(q->gm, q->dbbuf_dbs + 8),
                      queue->sq_tail);
    for (unsigned i = 0; i < 40; i++) {
        write_read_check(q, qnvme_ioq(q, 1 + i % 4), 1, i * 8, 8, 171 + i);
    }
    integrity_run(q, 4, 24, env.img, 1);
    /* The event index follows the tail the device has seen. */
    for (unsigned qi = 1; qi <= 4; qi++) {
        ck_assert_uint_eq(guest_readl(q->gm, q->dbbuf_eis + 8 * qi),
                          qnvme_ioq(q, qi)->sq_tail);
    }
    /* New queues get shadow doorbells too. */
    queue = qnvme_create_ioq(q, 6, 16, 5);
    write_read_check(q, queue, 1, 0, 8, 180);
    ck_assert_uint_eq(guest_readl(q->gm, q->dbbuf_dbs + 8 * 6),
                      queue->sq_tail);
}
END_TEST

START_TEST(test_page_size_8k)
{
    QNvme *q;
    uint32_t csts;
    uint64_t w, r;
    g_autofree uint8_t *want = g_malloc(65536);
    g_autofree uint8_t *got = g_malloc(65536);

    env_new();
    env_start(NULL, true);
    q = env.q;
    q->page_size = 8192;
    qnvme_disable(q);
    csts = qnvme_enable_cc(q, 16, qnvme_default_cc() |
                           (1u << NVME_CC_MPS_SHIFT));
    ck_assert_uint_eq(csts & (NVME_CSTS_RDY | NVME_CSTS_CFS), NVME_CSTS_RDY);
    qpci_msix_enable(env.dev, 2);
    q->use_msix = true;
    qnvme_identify_all(q);
    qnvme_create_ioq(q, 1, 32, 1);
    /* 64 KiB with 8 KiB pages: PRP1 at an offset plus a list. */
    w = guest_pattern(q, 65536 + 8192, 191);
    r = guest_alloc_aligned(q->gm, 65536 + 8192, 8192);
    ck_assert_int_eq(qnvme_rw(q, qnvme_ioq(q, 1), NVME_CMD_WRITE, 1, 0, 128,
                              w + 1024), NVME_SUCCESS);
    ck_assert_int_eq(qnvme_rw(q, qnvme_ioq(q, 1), NVME_CMD_READ, 1, 0, 128,
                              r + 512), NVME_SUCCESS);
    guest_memread(q->gm, w + 1024, want, 65536);
    guest_memread(q->gm, r + 512, got, 65536);
    assert_same(got, want, 65536, "8 KiB pages");
    /* A queue base that is 4 KiB but not 8 KiB aligned is refused. */
    ck_assert_int_eq(admin_simple(q, NVME_ADM_CMD_CREATE_CQ, 0,
                                  2 | (15 << 16), NVME_CQ_FLAGS_PC,
                                  guest_alloc_aligned(q->gm, 16384, 8192) +
                                  4096, NULL), DNR(NVME_INVALID_FIELD));
}
END_TEST

START_TEST(test_pause_resume)
{
    QNvme *q;
    QNvmeQueue *queue;
    json_object *ret;
    uint64_t r;
    NvmeCmd cmd;
    NvmeCqe cqe;

    env_new();
    env.qmp_path = env_path("qmp.sock");
    env_start(NULL, true);
    q = env.q;
    qnvme_init(q, 1, 16);
    queue = qnvme_ioq(q, 1);
    r = guest_alloc_aligned(q->gm, 4096, 4096);
    /* Stopped: commands wait in the SQ; cont lets them through. */
    ret = qmp_ok(env.qmp, "stop", NULL);
    json_object_put(ret);
    qnvme_rw_cmd(q, &cmd, NVME_CMD_READ, 1, 0, 8, r);
    qnvme_submit(q, queue, &cmd);
    ck_assert(!qnvme_try_wait(q, queue, &cqe, 200));
    ret = qmp_ok(env.qmp, "cont", NULL);
    json_object_put(ret);
    qnvme_wait(q, queue, &cqe, 0);
    ck_assert_int_eq(qnvme_status(&cqe), NVME_SUCCESS);
}
END_TEST

/* ---- query-stats ---- */

#define NVME_STAT(queue, name) qmp_stat(env.qmp, "nvme0", queue, "nvme", name)

START_TEST(test_query_stats)
{
    QNvme *q;
    QNvmeQueue *io2;
    uint64_t r;
    g_autofree char *err = NULL;
    json_object *ret;

    env_new();
    env.qmp_path = env_path("qmp.sock");
    env_start(NULL, true);
    q = env.q;
    qnvme_init(q, 4, 64);
    io2 = qnvme_ioq(q, 2);
    for (unsigned i = 0; i < 10; i++) {
        write_read_check(q, io2, 1, i * 8, 8, 40 + i);
    }
    /* Queue 2 took 20 commands; each completed, each was signalled. */
    ck_assert_int_eq(NVME_STAT(2, "requests"), 20);
    ck_assert_int_eq(NVME_STAT(2, "completions"), 20);
    ck_assert_int_eq(NVME_STAT(2, "errors"), 0);
    ck_assert_int_eq(NVME_STAT(2, "inflight"), 0);
    ck_assert_int_ge(NVME_STAT(2, "interrupts"), 1);
    ck_assert_int_le(NVME_STAT(2, "interrupts"), 20);
    ck_assert_int_eq(NVME_STAT(3, "requests"), 0);
    ck_assert_int_ge(NVME_STAT(0, "requests"), 9);      /* admin: set-up */
    ck_assert_int_eq(NVME_STAT(5, "requests"), -1);     /* no queue 5 */
    /* A failing command counts as an error of its queue. */
    r = guest_alloc_aligned(q->gm, 4096, 4096);
    ck_assert_int_eq(qnvme_rw(q, io2, NVME_CMD_READ, 1, IMG_SIZE / 512, 8,
                              r), DNR(NVME_LBA_RANGE));
    ck_assert_int_eq(NVME_STAT(2, "requests"), 21);
    ck_assert_int_eq(NVME_STAT(2, "errors"), 1);
    /* The device: what SMART counts; the transport: messages, memory. */
    ck_assert_int_eq(NVME_STAT(-1, "read-commands"), 10);
    ck_assert_int_eq(NVME_STAT(-1, "write-commands"), 10);
    ck_assert_int_eq(NVME_STAT(-1, "read-bytes"), 10 * 4096);
    ck_assert_int_eq(NVME_STAT(-1, "error-log-entries"), 1);
    ck_assert_int_gt(qmp_stat(env.qmp, "nvme0", -1, "vfio-user",
                              "messages"), 0);
    ck_assert_int_eq(qmp_stat(env.qmp, "nvme0", -1, "vfio-user",
                              "dma-bytes"), (int64_t)GM_SIZE);
    /* A controller reset re-creates the queues; the counts go on. */
    qnvme_init(q, 4, 64);              /* disables first */
    ck_assert_int_eq(NVME_STAT(2, "requests"), 21);
    /* Filters: one provider only; an unknown device is an error. */
    ret = qmp_ok(env.qmp, "query-stats",
                 "{'target': 'device', 'providers': [{'provider': 'nvme'}]}");
    ck_assert_uint_eq(json_object_array_length(ret), 1);
    ck_assert_str_eq(qmp_get_str(json_object_array_get_idx(ret, 0),
                                 "provider"), "nvme");
    json_object_put(ret);
    err = qmp_err(env.qmp, "DeviceNotFound", "query-stats",
                  "{'target': 'queue', 'devices': ['nope']}");
}
END_TEST

/* ---- a slow backend (I/O throttling) keeps requests in flight ---- */

static QNvme *start_throttled(void)
{
    json_object *ret;

    env_new();
    env.qmp_path = env_path("qmp.sock");
    env_start(NULL, true);
    qnvme_init(env.q, 2, 64);
    /* 2 MiB/s: 1 MiB of writes takes half a second. */
    ret = qmp_ok(env.qmp, "block_set_io_throttle",
                 "{'id': 'nvme0', 'bps': 2097152, 'bps_rd': 0, "
                 "'bps_wr': 0, 'iops': 0, 'iops_rd': 0, 'iops_wr': 0}");
    json_object_put(ret);
    return env.q;
}

START_TEST(test_slow_reset)
{
    QNvme *q = start_throttled();
    uint64_t buf = guest_pattern(q, 65536, 241);
    uint32_t csts;
    int64_t t0;

    /* CC.EN = 0: RDY stays until the writes in flight are done. */
    flood(q, 2, 8, buf);
    vfu_service(env.c, 20);
    t0 = qos_now_ms();
    qnvme_writel(q, NVME_REG_CC, qnvme_readl(q, NVME_REG_CC) & ~NVME_CC_EN);
    csts = qnvme_readl(q, NVME_REG_CSTS);
    ck_assert_msg(csts & NVME_CSTS_RDY, "RDY dropped with I/O in flight");
    /* A host that does not wait: EN=1 again is applied after the reset. */
    qnvme_wait_csts(q, NVME_CSTS_RDY, 0);
    ck_assert_int_ge(qos_now_ms() - t0, 50);
    qnvme_free_prps(q);
    qnvme_init(q, 2, 64);
    write_read_check(q, qnvme_ioq(q, 1), 1, 0, 8, 242);

    /* DEVICE_RESET does not wait for the throttle: it cancels. */
    flood(q, 2, 8, buf);
    vfu_service(env.c, 20);
    ck_assert_int_eq(vfu_device_reset(env.c), 0);
    qpci_device_enable(env.dev);
    ck_assert_uint_eq(qnvme_readl(q, NVME_REG_CSTS), 0);
    qnvme_free_prps(q);
    qnvme_init(q, 1, 16);
    write_read_check(q, qnvme_ioq(q, 1), 1, 0, 8, 243);
}
END_TEST

START_TEST(test_slow_shutdown)
{
    QNvme *q = start_throttled();
    uint64_t buf = guest_pattern(q, 65536, 251);
    g_autofree uint8_t *want = g_malloc(65536);
    g_autofree uint8_t *got = g_malloc(65536);
    uint32_t csts;

    fill_pattern(want, 65536, 251);
    flood(q, 2, 8, buf);
    vfu_service(env.c, 20);
    qnvme_writel(q, NVME_REG_CC, qnvme_readl(q, NVME_REG_CC) |
                 (NVME_CC_SHN_NORMAL << NVME_CC_SHN_SHIFT));
    csts = qnvme_readl(q, NVME_REG_CSTS);
    ck_assert_uint_eq(NVME_CSTS_SHST(csts), NVME_CSTS_SHST_OCCURRING);
    qnvme_wait_csts(q, NVME_CSTS_SHST_MASK,
                    NVME_CSTS_SHST_COMPLETE << NVME_CSTS_SHST_SHIFT);
    /* Everything that was in flight completed and reached the file. */
    for (unsigned qi = 1; qi <= 2; qi++) {
        for (unsigned j = 0; j < 8; j++) {
            NvmeCqe cqe;

            qnvme_wait(q, qnvme_ioq(q, qi), &cqe, 0);
            ck_assert_int_eq(qnvme_status(&cqe), NVME_SUCCESS);
            file_read(env.img, (qi * 8 + j) * 128 * 512ULL, got, 65536);
            assert_same(got, want, 65536, "after shutdown");
        }
    }
}
END_TEST

START_TEST(test_slow_delete_sq)
{
    QNvme *q = start_throttled();
    uint64_t buf = guest_pattern(q, 65536, 261);
    QNvmeQueue *queue = qnvme_ioq(q, 1);
    NvmeCmd cmd;
    NvmeCqe cqe;
    unsigned done = 0;
    uint16_t cid;

    flood(q, 1, 12, buf);
    vfu_service(env.c, 20);
    memset(&cmd, 0, sizeof(cmd));
    cmd.opcode = NVME_ADM_CMD_DELETE_SQ;
    cmd.cdw10 = 1;
    cid = qnvme_submit(q, &q->admin, &cmd);
    /* Meanwhile the admin queue is not blocked. */
    ck_assert_int_eq(admin_simple(q, NVME_ADM_CMD_KEEP_ALIVE, 0, 0, 0, 0,
                                  NULL), NVME_SUCCESS);
    ck_assert(!qnvme_cqe_ready(q, &q->admin));
    /* A second delete of the same queue is refused. */
    ck_assert_int_eq(admin_simple(q, NVME_ADM_CMD_DELETE_SQ, 0, 1, 0, 0,
                                  NULL), DNR(NVME_INVALID_QID));
    qnvme_wait(q, &q->admin, &cqe, 0);
    ck_assert_int_eq(cqe.cid, cid);
    ck_assert_int_eq(qnvme_status(&cqe), NVME_SUCCESS);
    /* By then all of the queue's completions were posted. */
    while (qnvme_cqe_ready(q, queue)) {
        qnvme_wait(q, queue, &cqe, 0);
        ck_assert_int_eq(qnvme_status(&cqe), NVME_SUCCESS);
        done++;
    }
    ck_assert_uint_eq(done, 12);
    ck_assert_int_eq(admin_simple(q, NVME_ADM_CMD_DELETE_CQ, 0, 1, 0, 0,
                                  NULL), NVME_SUCCESS);
    g_free(q->ioq[1]);
    q->ioq[1] = NULL;
    write_read_check(q, qnvme_ioq(q, 2), 1, 0, 8, 262);

    /* A reset while a deletion waits drops the deletion too. */
    queue = qnvme_ioq(q, 2);
    for (unsigned j = 0; j < 12; j++) {
        qnvme_rw_cmd(q, &cmd, NVME_CMD_WRITE, 1, j * 128, 128, buf);
        qnvme_queue_cmd(q, queue, &cmd);
    }
    qnvme_ring_sq(q, queue);
    vfu_service(env.c, 20);
    memset(&cmd, 0, sizeof(cmd));
    cmd.opcode = NVME_ADM_CMD_DELETE_SQ;
    cmd.cdw10 = 2;
    qnvme_submit(q, &q->admin, &cmd);
    qnvme_disable(q);
    qnvme_free_prps(q);
    qnvme_init(q, 2, 16);
    write_read_check(q, qnvme_ioq(q, 2), 1, 0, 8, 263);
}
END_TEST

/* ---- garbage in ---- */

/* A random data pointer: mostly into @scratch, sometimes anywhere. */
static uint64_t random_addr(GRand *rnd, uint64_t scratch, uint64_t size)
{
    switch (g_rand_int_range(rnd, 0, 6)) {
    case 0:
        return ((uint64_t)g_rand_int(rnd) << 32) | g_rand_int(rnd);
    case 1:
        return g_rand_int(rnd);
    case 2:
        return scratch + (g_rand_int_range(rnd, 0, size / 4096) * 4096);
    default:
        return scratch + g_rand_int_range(rnd, 0, size);
    }
}

/* @size bytes of random guest memory, where random pointers mostly go. */
static uint64_t random_scratch(QNvme *q, GRand *rnd, uint64_t size)
{
    uint64_t scratch = guest_alloc_aligned(q->gm, size, 4096);
    g_autofree uint8_t *junk = g_malloc(size);

    for (size_t i = 0; i < size; i++) {
        junk[i] = g_rand_int(rnd);
    }
    guest_memwrite(q->gm, scratch, junk, size);
    return scratch;
}

static bool is_create_queue(uint8_t opcode)
{
    return opcode == NVME_ADM_CMD_CREATE_SQ ||
           opcode == NVME_ADM_CMD_CREATE_CQ;
}

/* An admin opcode, and what keeps it from breaking the test's own set-up. */
static void random_admin_op(GRand *rnd, NvmeCmd *cmd, uint64_t scratch,
                            uint64_t scratch_size)
{
    static const uint8_t admin_ops[] = {
        NVME_ADM_CMD_CREATE_SQ, NVME_ADM_CMD_GET_LOG_PAGE,
        NVME_ADM_CMD_CREATE_CQ, NVME_ADM_CMD_IDENTIFY, NVME_ADM_CMD_ABORT,
        NVME_ADM_CMD_SET_FEATURES, NVME_ADM_CMD_GET_FEATURES,
        NVME_ADM_CMD_KEEP_ALIVE, NVME_ADM_CMD_FORMAT_NVM, 0x7f, 0xff,
    };

    cmd->opcode = admin_ops[g_rand_int_range(rnd, 0, ARRAY_SIZE(admin_ops))];
    if (is_create_queue(cmd->opcode)) {
        /* Queues only in the scratch area, ids above ours. */
        cmd->cdw10 = (cmd->cdw10 & 0xffff0000) |
                     g_rand_int_range(rnd, 5, 12);
        cmd->dptr.prp1 = scratch + (g_rand_int_range(rnd, 0,
                         scratch_size / 4096 - 16) * 4096) +
                         (g_rand_int_range(rnd, 0, 4) == 0 ? 64 : 0);
    }
    if (cmd->opcode == NVME_ADM_CMD_SET_FEATURES &&
        (cmd->cdw10 & 0xff) == NVME_FEAT_KEEP_ALIVE) {
        /* A keep alive timeout that expires is fatal to the controller. */
        cmd->cdw10 = NVME_FEAT_ARBITRATION;
    }
}

/* Mostly plausible: few fields wrong at a time. */
static void random_plausible(GRand *rnd, NvmeCmd *cmd, bool admin)
{
    cmd->flags = NVME_CMD_FLAGS_PSDT(g_rand_int_range(rnd, 0, 2));
    cmd->nsid = g_rand_int_range(rnd, 0, 8) ? 1 : 2;
    cmd->cdw11 = g_rand_int_range(rnd, 0, 4) ? 0 : cmd->cdw11;
    if (!admin) {
        cmd->cdw10 %= IMG_SIZE / 512;
        cmd->cdw12 = (cmd->cdw12 & 0xffff0000) |
                     g_rand_int_range(rnd, 0, 300);
        if (g_rand_int_range(rnd, 0, 4)) {
            cmd->cdw12 &= ~NVME_RW_PRINFO_MASK;
        }
    }
}

/* An SGL descriptor of any type, with a length mostly in 16-byte units. */
static void random_sgl(GRand *rnd, NvmeCmd *cmd, uint64_t scratch,
                       uint64_t scratch_size)
{
    static const uint8_t types[] = {
        NVME_SGL_TYPE_DATA_BLOCK, NVME_SGL_TYPE_SEGMENT,
        NVME_SGL_TYPE_LAST_SEGMENT, NVME_SGL_TYPE_BIT_BUCKET,
    };

    cmd->dptr.sgl.addr = random_addr(rnd, scratch, scratch_size - 65536);
    cmd->dptr.sgl.len = g_rand_int_range(rnd, 0, 8) == 0 ?
                        g_rand_int(rnd) :
                        (uint32_t)g_rand_int_range(rnd, 1, 64) * 16;
    cmd->dptr.sgl.type = NVME_SGL_DESC_TYPE(
        types[g_rand_int_range(rnd, 0, ARRAY_SIZE(types))], 0);
}

/* A random command for the admin queue or an I/O queue. */
static void random_cmd(GRand *rnd, NvmeCmd *cmd, bool admin,
                       uint64_t scratch, uint64_t scratch_size)
{
    static const uint8_t io_ops[] = {
        NVME_CMD_FLUSH, NVME_CMD_WRITE, NVME_CMD_READ, NVME_CMD_COMPARE,
        NVME_CMD_WRITE_ZEROES, NVME_CMD_DSM, NVME_CMD_VERIFY, 0x80, 0xff,
    };
    uint32_t dw[16];

    for (unsigned k = 0; k < 16; k++) {
        dw[k] = g_rand_int(rnd);
    }
    memcpy(cmd, dw, sizeof(*cmd));
    if (admin) {
        random_admin_op(rnd, cmd, scratch, scratch_size);
    } else {
        cmd->opcode = io_ops[g_rand_int_range(rnd, 0, ARRAY_SIZE(io_ops))];
    }
    if (g_rand_int_range(rnd, 0, 4)) {
        random_plausible(rnd, cmd, admin);
    }
    cmd->dptr.prp1 = admin && is_create_queue(cmd->opcode)
                     ? cmd->dptr.prp1
                     : random_addr(rnd, scratch, scratch_size);
    cmd->dptr.prp2 = random_addr(rnd, scratch, scratch_size);
    if (NVME_CMD_PSDT(cmd->flags) == NVME_PSDT_SGL_MPTR_CONTIG &&
        g_rand_boolean(rnd)) {
        random_sgl(rnd, cmd, scratch, scratch_size);
    }
}

/* Many different outcomes (@min at least), not one failure mode. */
static void assert_status_variety(const unsigned *statuses, unsigned n,
                                  unsigned min)
{
    for (unsigned k = 0, seen = 0; k < n; k++) {
        if (statuses[k]) {
            seen++;
            if (g_getenv("NVME_TEST_VERBOSE")) {
                fprintf(stderr, "status 0x%03x: %u\n", k, statuses[k]);
            }
        }
        if (k == n - 1) {
            ck_assert_uint_ge(seen, min);
        }
    }
}

/*
 * Random commands on the admin and I/O queues: every one must complete
 * (with some status), and the daemon must survive.
 */
START_TEST(test_random_commands)
{
    const uint64_t scratch_size = 4 << 20;
    GRand *rnd = g_rand_new_with_seed(20240601);
    QNvme *q;
    uint64_t scratch;
    unsigned statuses[0x800] = { 0 };

    for (unsigned mode = 0; mode < 2; mode++) {
        env_new();
        env_start(NULL, mode == 0);
        q = env.q;
        qnvme_init(q, 4, 32);
        scratch = random_scratch(q, rnd, scratch_size);
        for (unsigned i = 0; i < (mode == 0 ? 3000 : 400); i++) {
            bool admin = g_rand_int_range(rnd, 0, 8) == 0;
            QNvmeQueue *queue = admin ? &q->admin
                                      : qnvme_ioq(q, g_rand_int_range(rnd, 1,
                                                                      5));
            NvmeCmd cmd;
            NvmeCqe cqe;

            random_cmd(rnd, &cmd, admin, scratch, scratch_size);
            qnvme_submit(q, queue, &cmd);
            qnvme_wait(q, queue, &cqe, 10000);
            statuses[qnvme_status(&cqe) & 0x7ff]++;
        }
        assert_status_variety(statuses, ARRAY_SIZE(statuses),
                              mode == 0 ? 12 : 8);
        memset(statuses, 0, sizeof(statuses));
        iovd_proc_assert_alive(env.proc);
        /* Whatever state it is in, a reset brings it back. */
        qnvme_init(q, 2, 32);
        write_read_check(q, qnvme_ioq(q, 1), 1, 0, 8, 220 + mode);
        teardown();
    }
    g_rand_free(rnd);
}
END_TEST

/* Random register and doorbell writes, then a normal bring-up. */
START_TEST(test_random_mmio)
{
    GRand *rnd = g_rand_new_with_seed(777);
    QNvme *q = start_default();
    uint64_t bar = qpci_bar_size(env.dev, NVME_BAR_REGS);

    for (unsigned i = 0; i < 3000; i++) {
        uint64_t off;
        uint32_t v = g_rand_int(rnd);

        switch (g_rand_int_range(rnd, 0, 4)) {
        case 0:
            off = g_rand_int_range(rnd, 0, 0x40);
            break;
        case 1:
            off = NVME_REG_DBS + g_rand_int_range(rnd, 0, 80) * 4;
            v %= 128;
            break;
        default:
            off = g_rand_int_range(rnd, 0, bar - 4);
            break;
        }
        if (off == NVME_REG_CC && g_rand_boolean(rnd)) {
            v = qnvme_default_cc();
        }
        if (g_rand_int_range(rnd, 0, 5) == 0) {
            uint8_t b[8];

            stq_le_p(b, ((uint64_t)g_rand_int(rnd) << 32) | v);
            vfu_region_write(env.c, NVME_BAR_REGS, off & ~7ULL, b,
                             g_rand_int_range(rnd, 1, 9));
        } else {
            qpci_bar_writel_posted(env.dev, NVME_BAR_REGS, off & ~3ULL, v);
        }
        if (i % 256 == 0) {
            qpci_bar_readl(env.dev, NVME_BAR_REGS, NVME_REG_CSTS);
        }
    }
    iovd_proc_assert_alive(env.proc);
    qnvme_writel(q, NVME_REG_CC, 0);
    qnvme_init(q, 2, 32);
    write_read_check(q, qnvme_ioq(q, 2), 1, 0, 8, 230);
    g_rand_free(rnd);
}
END_TEST

/* ---- configuration errors ---- */

/* Run iovd with @args; it must refuse to start, saying @expect. */
static void refuse(const char *img, const char *expect, const char *dev1,
                   const char *dev2)
{
    g_autofree char *blk = g_strdup_printf("driver=file,node-name=d0,"
                                           "filename=%s", img);
    const char *argv[12];
    unsigned n = 0;
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    g_autoptr(GError) gerr = NULL;
    int status = 0;

    argv[n++] = iovd_binary();
    argv[n++] = "-blockdev";
    argv[n++] = blk;
    argv[n++] = "-blockdev";
    argv[n++] = "driver=null,node-name=n1,size=1M";
    argv[n++] = "-device";
    argv[n++] = dev1;
    if (dev2) {
        argv[n++] = "-device";
        argv[n++] = dev2;
    }
    argv[n] = NULL;
    ck_assert(g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL,
                           NULL, &out, &err, &status, &gerr));
    ck_assert_msg(!g_spawn_check_wait_status(status, NULL),
                  "iovd started with %s %s", dev1, dev2 ? dev2 : "");
    ck_assert_msg(strstr(err, expect), "'%s' not in: %s", expect, err);
}

START_TEST(test_bad_config)
{
    g_autofree char *sock = NULL;
    g_autofree char *d = NULL;
    char dev[512];

    env_new();
    sock = env_path("x.sock");
#define DEV(props) \
    (snprintf(dev, sizeof(dev), "nvme,id=nvme0,socket=%s,%s", sock, props), \
     dev)
    refuse(env.img, "logical_block_size",
           DEV("drive=d0,logical_block_size=1000"), NULL);
    refuse(env.img, "max_ioqpairs", DEV("drive=d0,max_ioqpairs=65"), NULL);
    refuse(env.img, "max_ioqpairs", DEV("drive=d0,max_ioqpairs=0"), NULL);
    refuse(env.img, "serial", DEV("drive=d0,serial=ABCDEFGHIJKLMNOPQRSTU"),
           NULL);
    refuse(env.img, "nosuch", DEV("drive=nosuch"), NULL);
    d = g_strdup(DEV("drive=d0"));
    refuse(env.img, "namespace 1", d, "nvme-ns,bus=nvme0,drive=n1,nsid=1");
    refuse(env.img, "not an nvme controller", d,
           "nvme-ns,bus=nope,drive=n1");
    refuse(env.img, "bus", d, "nvme-ns,drive=n1");
    refuse(env.img, "d0", d, "nvme-ns,bus=nvme0,drive=d0");
    refuse(env.img, "nsid", d, "nvme-ns,bus=nvme0,drive=n1,nsid=257");
#undef DEV
    /* Never started: nothing for the teardown to stop. */
    iovd_proc_free(env.proc);
    env.proc = NULL;
}
END_TEST

/* ---- main ---- */

static void add(Suite *s, const char *name, const TTest *t)
{
    TCase *tc = tcase_create(name);

    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t);
    suite_add_tcase(s, tc);
}

static Suite *nvme_suite(void)
{
    Suite *s = suite_create("nvme");

    add(s, "bad_config", test_bad_config);
    add(s, "pci_identity", test_pci_identity);
    add(s, "registers", test_registers);
    add(s, "enable_errors", test_enable_errors);
    add(s, "identify", test_identify);
    add(s, "io_integrity", test_io_integrity);
    add(s, "lba_4096", test_lba_4096);
    add(s, "zeroes_discard_flush", test_zeroes_discard_flush);
    add(s, "multi_namespace", test_multi_namespace);
    add(s, "admin_errors", test_admin_errors);
    add(s, "io_errors", test_io_errors);
    add(s, "prp_lists", test_prp_lists);
    add(s, "sgl", test_sgl);
    add(s, "compare", test_compare);
    add(s, "features", test_features);
    add(s, "log_pages", test_log_pages);
    add(s, "aer_doorbell", test_aer_doorbell);
    add(s, "aer_resize", test_aer_resize);
    add(s, "reset_inflight", test_reset_inflight);
    add(s, "reconnect", test_reconnect);
    add(s, "shutdown", test_shutdown);
    add(s, "delete_sq_inflight", test_delete_sq_inflight);
    add(s, "doorbells_mmap_polling", test_doorbells_mmap_polling);
    add(s, "doorbells_mmap_sleeping", test_doorbells_mmap_sleeping);
    add(s, "doorbells_trap", test_doorbells_trap);
    add(s, "doorbells_mmap_reset", test_doorbells_mmap_reset);
    add(s, "doorbells_mmap_dbbuf", test_doorbells_mmap_dbbuf);
    add(s, "doorbells_trap_shadow_polled", test_doorbells_trap_shadow_polled);
    add(s, "cq_head_before_dma_reply", test_cq_head_before_dma_reply);
    add(s, "cq_full", test_cq_full);
    add(s, "keep_alive", test_keep_alive);
    add(s, "dma_fallback", test_dma_fallback);
    add(s, "reset_during_dma", test_reset_during_dma);
    add(s, "hangup_inflight", test_hangup_inflight);
    add(s, "intx", test_intx);
    add(s, "msix_vectors", test_msix_vectors);
    add(s, "shadow_doorbells", test_shadow_doorbells);
    add(s, "page_size_8k", test_page_size_8k);
    add(s, "pause_resume", test_pause_resume);
    add(s, "query_stats", test_query_stats);
    add(s, "slow_reset", test_slow_reset);
    add(s, "slow_shutdown", test_slow_shutdown);
    add(s, "slow_delete_sq", test_slow_delete_sq);
    add(s, "random_commands", test_random_commands);
    add(s, "random_mmio", test_random_mmio);
    return s;
}

int main(void)
{
    return qos_check_run(nvme_suite());
}
