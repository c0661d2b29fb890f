/*
 * NVMe reservations across the controllers of one subsystem: two
 * controllers, each on its own socket with a client of its own (two
 * "VMs", each its own guest RAM and Host Identifier), sharing
 *
 *   nsid 1  d0  shared=on
 *   nsid 2  d1  shared=on
 *
 * Host 0 is 0x1111 (64-bit), host 1 is 0x2222 unless a test says
 * otherwise.  With IOVD_TEST_IOTHREAD=2, or in the iothreads_ cases,
 * the two controllers run on different iothreads: a notice for the other
 * controller then crosses threads.  Every test gets a fresh daemon.
 */
#include "util/osdep.h"

#include <check.h>

#include "hw/nvme/nvme-spec.h"
#include "tests/qtest/libqos/qos-check.h"
#include "tests/qtest/libqos/iovd-proc.h"
#include "tests/qtest/libqos/vfu-client.h"
#include "tests/qtest/libqos/guest-mem.h"
#include "tests/qtest/libqos/pci.h"
#include "tests/qtest/libqos/qmp-client.h"
#include "tests/qtest/libqos/nvme.h"
#include "tests/qtest/libqos/nvme-host.h"

#define IMG_SIZE        (16ULL << 20)
#define DNR(st)         ((uint16_t)((st) | NVME_DNR))
#define CONFLICT        DNR(NVME_RESERVATION_CONFLICT)
#define INVALID         DNR(NVME_INVALID_FIELD)
#define HOST0           0x1111ULL
#define HOST1           0x2222ULL
#define KEY0            0xa0a0a0a0a0a0a0a0ULL
#define KEY1            0xb1b1b1b1b1b1b1b1ULL

typedef struct TestEnv {
    IovdProc *proc;
    QNvmeHost h[2];
    bool iothreads;
    IovdProc *dst;
} TestEnv;

static TestEnv env;

/* ---- environment ---- */

/* The subsystem, two controllers, two shared namespaces on @p. */
static void configure(IovdProc *p)
{
    qnvme_subsys_configure(p, env.proc, 2, env.iothreads);
    iovd_proc_add_args(p,
        "-device", "nvme-ns,id=ns1,subsys=subsys0,nsid=1,drive=d0,shared=on",
        "-device", "nvme-ns,id=ns2,subsys=subsys0,nsid=2,drive=d1,shared=on",
        NULL);
}

static uint16_t set_host_id(QNvmeHost *h, uint64_t lo, uint64_t hi, bool ext);

static void setup_env(bool iothreads)
{
    memset(&env, 0, sizeof(env));
    env.iothreads = iothreads;
    env.proc = iovd_proc_new();
    qnvme_subsys_images(env.proc, 2, IMG_SIZE);
    configure(env.proc);
    iovd_proc_start(env.proc);
    qnvme_host_open(&env.h[0], env.proc, 0, 1);
    qnvme_host_open(&env.h[1], env.proc, 1, 1);
    ck_assert_int_eq(set_host_id(&env.h[0], HOST0, 0, false), NVME_SUCCESS);
    ck_assert_int_eq(set_host_id(&env.h[1], HOST1, 0, false), NVME_SUCCESS);
}

static void setup(void)
{
    setup_env(false);
}

static void setup_iothreads(void)
{
    setup_env(true);
}

static void teardown(void)
{
    qnvme_host_close(&env.h[0]);
    qnvme_host_close(&env.h[1]);
    iovd_proc_stop(env.proc);
    iovd_proc_free(env.proc);
    if (env.dst) {
        iovd_proc_stop(env.dst);
        iovd_proc_free(env.dst);
    }
    memset(&env, 0, sizeof(env));
}

/* ---- commands ---- */

/*
 * @cmd on @h's admin queue (@io false) or I/O queue 1, with @len bytes of
 * data: @out to the device, then into @in from it (either may be NULL).
 */
static uint16_t host_cmd(QNvmeHost *h, bool io, NvmeCmd *cmd, const void *out,
                         void *in, uint32_t len, uint32_t *result)
{
    uint64_t g = len ? guest_alloc_aligned(h->gm, 4096, 4096) : 0;
    NvmeCqe cqe;
    uint16_t st;

    g_assert(len <= 4096);
    if (len) {
        guest_memset(h->gm, g, 0xee, 4096);
        if (out) {
            guest_memwrite(h->gm, g, out, len);
        }
        qnvme_set_prp(h->q, cmd, g, len);
    }
    st = io ? qnvme_cmd(h->q, qnvme_ioq(h->q, 1), cmd, &cqe)
            : qnvme_admin(h->q, cmd, &cqe);
    if (in && st == NVME_SUCCESS) {
        guest_memread(h->gm, g, in, len);
    }
    if (result) {
        *result = cqe.result;
    }
    if (len) {
        guest_free(h->gm, g);
    }
    return st;
}

static uint16_t set_host_id(QNvmeHost *h, uint64_t lo, uint64_t hi, bool ext)
{
    uint64_t id[2] = { lo, hi };
    NvmeCmd cmd = {
        .opcode = NVME_ADM_CMD_SET_FEATURES,
        .cdw10 = NVME_FEAT_HOST_ID,
        .cdw11 = ext ? NVME_FEAT_HOSTID_EXHID : 0,
    };

    return host_cmd(h, false, &cmd, id, NULL, ext ? 16 : 8, NULL);
}

static uint16_t get_host_id(QNvmeHost *h, bool ext, uint64_t *id)
{
    NvmeCmd cmd = {
        .opcode = NVME_ADM_CMD_GET_FEATURES,
        .cdw10 = NVME_FEAT_HOST_ID,
        .cdw11 = ext ? NVME_FEAT_HOSTID_EXHID : 0,
    };

    id[0] = id[1] = 0;
    return host_cmd(h, false, &cmd, NULL, id, ext ? 16 : 8, NULL);
}

/* A feature of namespace @nsid: Get (@set false) or Set with @cdw11. */
static uint16_t ns_feature(QNvmeHost *h, bool set, uint8_t fid, uint32_t nsid,
                           uint32_t cdw11, uint32_t *result)
{
    NvmeCmd cmd = {
        .opcode = set ? NVME_ADM_CMD_SET_FEATURES : NVME_ADM_CMD_GET_FEATURES,
        .nsid = nsid,
        .cdw10 = fid,
        .cdw11 = cdw11,
    };

    return host_cmd(h, false, &cmd, NULL, NULL, 0, result);
}

static uint16_t resv_register(QNvmeHost *h, uint32_t nsid, uint32_t cdw10,
                              uint64_t crkey, uint64_t nrkey)
{
    uint64_t keys[2] = { crkey, nrkey };
    NvmeCmd cmd = {
        .opcode = NVME_CMD_RESV_REGISTER,
        .nsid = nsid,
        .cdw10 = cdw10,
    };

    return host_cmd(h, true, &cmd, keys, NULL, sizeof(keys), NULL);
}

static uint16_t reg(QNvmeHost *h, uint32_t nsid, uint64_t key)
{
    return resv_register(h, nsid, NVME_RESV_REGISTER, 0, key);
}

static uint16_t acquire(QNvmeHost *h, uint32_t nsid, unsigned act,
                        uint8_t rtype, uint64_t crkey, uint64_t prkey)
{
    uint64_t keys[2] = { crkey, prkey };
    NvmeCmd cmd = {
        .opcode = NVME_CMD_RESV_ACQUIRE,
        .nsid = nsid,
        .cdw10 = act | (uint32_t)rtype << 8,
    };

    return host_cmd(h, true, &cmd, keys, NULL, sizeof(keys), NULL);
}

/* Acquire, not preempt: a reservation of type @rtype, with key @key. */
static uint16_t take(QNvmeHost *h, uint32_t nsid, uint8_t rtype,
                     uint64_t key)
{
    return acquire(h, nsid, NVME_RESV_ACQUIRE, rtype, key, 0);
}

static uint16_t release(QNvmeHost *h, uint32_t nsid, unsigned act,
                        uint8_t rtype, uint64_t crkey)
{
    NvmeCmd cmd = {
        .opcode = NVME_CMD_RESV_RELEASE,
        .nsid = nsid,
        .cdw10 = act | (uint32_t)rtype << 8,
    };

    return host_cmd(h, true, &cmd, &crkey, NULL, sizeof(crkey), NULL);
}

/* Reservation Report of @len bytes into @buf. */
static uint16_t report(QNvmeHost *h, uint32_t nsid, bool eds, void *buf,
                       uint32_t len)
{
    NvmeCmd cmd = {
        .opcode = NVME_CMD_RESV_REPORT,
        .nsid = nsid,
        .cdw10 = len / 4 - 1,
        .cdw11 = eds ? NVME_RESV_REPORT_EDS : 0,
    };

    memset(buf, 0, len);
    return host_cmd(h, true, &cmd, NULL, buf, len, NULL);
}

/* The status of @nsid as the extended report says: type, registrants. */
static void assert_status(QNvmeHost *h, uint32_t nsid, uint8_t rtype,
                          uint16_t regctl)
{
    uint8_t buf[1024];
    NvmeResvStatus *st = (NvmeResvStatus *)buf;

    ck_assert_int_eq(report(h, nsid, true, buf, sizeof(buf)), NVME_SUCCESS);
    ck_assert_int_eq(st->rtype, rtype);
    ck_assert_int_eq(st->regctl, regctl);
}

/* An LBA command of one block at LBA 8 (data from scratch memory). */
static uint16_t io(QNvmeHost *h, uint8_t opcode, uint32_t nsid)
{
    uint64_t g = guest_alloc_aligned(h->gm, 4096, 4096);
    NvmeDsmRange range = { .nlb = 1, .slba = 8 };
    NvmeCmd cmd;
    uint16_t st;

    qnvme_rw_cmd(h->q, &cmd, opcode, nsid, 8, 1, g);
    if (opcode == NVME_CMD_DSM) {
        guest_memwrite(h->gm, g, &range, sizeof(range));
        cmd.cdw10 = 0;
        cmd.cdw11 = NVME_DSM_AD;
        cmd.cdw12 = 0;
    } else if (opcode == NVME_CMD_FLUSH) {
        memset(&cmd.cdw10, 0, 6 * 4);
    }
    st = qnvme_cmd(h->q, qnvme_ioq(h->q, 1), &cmd, NULL);
    guest_free(h->gm, g);
    return st;
}

static uint16_t rd(QNvmeHost *h, uint32_t nsid)
{
    return io(h, NVME_CMD_READ, nsid);
}

static uint16_t wr(QNvmeHost *h, uint32_t nsid)
{
    return io(h, NVME_CMD_WRITE, nsid);
}

/* The write group all conflict, or all succeed. */
static void assert_writes(QNvmeHost *h, uint32_t nsid, uint16_t want)
{
    static const uint8_t ops[] = {
        NVME_CMD_WRITE, NVME_CMD_WRITE_ZEROES, NVME_CMD_DSM, NVME_CMD_FLUSH,
    };

    for (unsigned i = 0; i < ARRAY_SIZE(ops); i++) {
        uint16_t st = io(h, ops[i], nsid);

        ck_assert_msg(st == want, "opcode 0x%x: status 0x%x, not 0x%x",
                      ops[i], st, want);
    }
}

static void assert_reads(QNvmeHost *h, uint32_t nsid, uint16_t want)
{
    ck_assert_int_eq(io(h, NVME_CMD_READ, nsid), want);
    ck_assert_int_eq(io(h, NVME_CMD_COMPARE, nsid) == CONFLICT,
                     want == CONFLICT);
}

/* What @h may do on @nsid: read (@rd), and write (@wr). */
static void assert_access(QNvmeHost *h, uint32_t nsid, uint16_t rd,
                          uint16_t wr)
{
    assert_reads(h, nsid, rd);
    assert_writes(h, nsid, wr);
}

/* @h registers with @key and takes a reservation of type @rtype. */
static void hold(QNvmeHost *h, uint32_t nsid, uint8_t rtype, uint64_t key)
{
    ck_assert_int_eq(reg(h, nsid, key), NVME_SUCCESS);
    ck_assert_int_eq(take(h, nsid, rtype, key), NVME_SUCCESS);
}

/* Both hosts registrants of @nsid: host 0 with KEY0, host 1 with KEY1. */
static void reg_both(uint32_t nsid)
{
    ck_assert_int_eq(reg(&env.h[0], nsid, KEY0), NVME_SUCCESS);
    ck_assert_int_eq(reg(&env.h[1], nsid, KEY1), NVME_SUCCESS);
}

/* AER @cid completes: a reservation log page is available. */
static void wait_resv_aen(QNvmeHost *h, uint16_t cid)
{
    NvmeCqe cqe;

    qnvme_wait(h->q, &h->q->admin, &cqe, 0);
    ck_assert_int_eq(cqe.cid, cid);
    ck_assert_int_eq(qnvme_status(&cqe), NVME_SUCCESS);
    ck_assert_int_eq(NVME_AER_RESULT_TYPE(cqe.result),
                     NVME_AER_TYPE_IO_SPECIFIC);
    ck_assert_int_eq(NVME_AER_RESULT_INFO(cqe.result),
                     NVME_AER_INFO_IO_RESV_LOG);
    ck_assert_int_eq(NVME_AER_RESULT_LOG(cqe.result), NVME_LOG_RESV_NOTIFY);
}

static void read_log(QNvmeHost *h, NvmeResvNotifyLog *log)
{
    ck_assert_int_eq(qnvme_get_log(h->q, NVME_LOG_RESV_NOTIFY, 0, false, 0,
                                   log, sizeof(*log)), NVME_SUCCESS);
}

/* The next notice of @h is @type for @nsid with count @count. */
static void assert_notice(QNvmeHost *h, uint8_t type, uint32_t nsid,
                          uint64_t count, uint8_t nalp)
{
    NvmeResvNotifyLog log;

    read_log(h, &log);
    ck_assert_int_eq(log.type, type);
    ck_assert_int_eq(log.nsid, nsid);
    ck_assert_uint_eq(log.count, count);
    ck_assert_int_eq(log.nalp, nalp);
}

static void assert_no_notice(QNvmeHost *h)
{
    NvmeResvNotifyLog log;

    read_log(h, &log);
    ck_assert_uint_eq(log.count, 0);
    ck_assert_int_eq(log.type, NVME_RESV_LOG_EMPTY);
}

/* ---- tests ---- */

START_TEST(test_identify)
{
    QNvmeHost *h = &env.h[0];
    g_autofree NvmeIdNs *ns = g_new0(NvmeIdNs, 1);
    g_autofree NvmeEffectsLog *e = g_new0(NvmeEffectsLog, 1);

    qnvme_identify_all(h->q);
    ck_assert(h->q->id.oncs & NVME_ONCS_RESERVATIONS);
    ck_assert(h->q->id.ctratt & NVME_CTRATT_HOSTID_128);
    ck_assert_int_eq(qnvme_identify(h->q, NVME_ID_CNS_NS, 1, ns),
                     NVME_SUCCESS);
    ck_assert_int_eq(ns->nmic, NVME_NMIC_SHARED);
    /* Every type, IEKEY as of 1.3; no persistence through power loss. */
    ck_assert_int_eq(ns->rescap, NVME_RESCAP_TYPES | NVME_RESCAP_IEK_13);
    ck_assert_int_eq(qnvme_get_log(h->q, NVME_LOG_CMD_EFFECTS, 0, false, 0,
                                   e, sizeof(*e)), NVME_SUCCESS);
    ck_assert(e->iocs[NVME_CMD_RESV_ACQUIRE] & NVME_CSE_CSUPP);
    ck_assert(e->iocs[NVME_CMD_RESV_REPORT] & NVME_CSE_CSUPP);
}
END_TEST

START_TEST(test_host_id)
{
    QNvmeHost *h = &env.h[0];
    uint8_t buf[256];
    uint64_t id[2];
    uint32_t res;

    ck_assert_int_eq(get_host_id(h, false, id), NVME_SUCCESS);
    ck_assert_uint_eq(id[0], HOST0);
    /* Asked as 128-bit, set as 64-bit. */
    ck_assert_int_eq(get_host_id(h, true, id),
                     DNR(NVME_HOST_ID_INCONSISTENT));
    ck_assert_int_eq(set_host_id(h, 0x1234, 0x5678, true), NVME_SUCCESS);
    ck_assert_int_eq(get_host_id(h, true, id), NVME_SUCCESS);
    ck_assert_uint_eq(id[0], 0x1234);
    ck_assert_uint_eq(id[1], 0x5678);
    ck_assert_int_eq(get_host_id(h, false, id),
                     DNR(NVME_HOST_ID_INCONSISTENT));
    /* A registrant keeps its identifier. */
    ck_assert_int_eq(reg(h, 1, KEY0), NVME_SUCCESS);
    ck_assert_int_eq(set_host_id(h, HOST0, 0, false),
                     DNR(NVME_CMD_SEQ_ERROR));
    /* A 128-bit identifier needs the extended report. */
    ck_assert_int_eq(report(h, 1, false, buf, sizeof(buf)),
                     DNR(NVME_HOST_ID_INCONSISTENT));
    ck_assert_int_eq(report(h, 1, true, buf, sizeof(buf)), NVME_SUCCESS);
    ck_assert_int_eq(((NvmeRegCtrlExt *)(buf + 64))->hostid[8], 0x78);
    ck_assert_int_eq(resv_register(h, 1, NVME_RESV_UNREGISTER, KEY0, 0),
                     NVME_SUCCESS);
    ck_assert_int_eq(set_host_id(h, HOST0, 0, false), NVME_SUCCESS);
    /* Changeable, not per namespace, not saveable. */
    ck_assert_int_eq(qnvme_get_features(h->q, NVME_FEAT_HOST_ID,
                                        NVME_GETFEAT_SEL_SUPPORTED, 0,
                                        &res), NVME_SUCCESS);
    ck_assert_uint_eq(res, NVME_FEAT_CAP_CHANGE);
}
END_TEST

/* Two controllers with the same Host Identifier are one host. */
START_TEST(test_same_host)
{
    uint8_t buf[256];
    NvmeRegCtrl *r = (NvmeRegCtrl *)(buf + 24);

    ck_assert_int_eq(set_host_id(&env.h[1], HOST0, 0, false), NVME_SUCCESS);
    ck_assert_int_eq(reg(&env.h[0], 1, KEY0), NVME_SUCCESS);
    ck_assert_int_eq(take(&env.h[1], 1, NVME_RESV_EXCLUSIVE_ACCESS, KEY0),
                     NVME_SUCCESS);
    ck_assert_int_eq(wr(&env.h[0], 1), NVME_SUCCESS);
    ck_assert_int_eq(rd(&env.h[1], 1), NVME_SUCCESS);
    /* One registrant, a registered controller entry for each path. */
    assert_status(&env.h[0], 1, NVME_RESV_EXCLUSIVE_ACCESS, 2);
    ck_assert_int_eq(report(&env.h[0], 1, false, buf, sizeof(buf)),
                     NVME_SUCCESS);
    for (unsigned i = 0; i < 2; i++) {
        ck_assert_int_eq(r[i].cntlid, i);
        ck_assert_int_eq(r[i].rcsts, NVME_RCSTS_HOLDS);
        ck_assert_uint_eq(r[i].hostid, HOST0);
        ck_assert_uint_eq(r[i].rkey, KEY0);
    }
}
END_TEST

START_TEST(test_register_keys)
{
    QNvmeHost *h = &env.h[0];
    uint8_t buf[256];
    NvmeResvStatus *st = (NvmeResvStatus *)buf;
    uint32_t gen;

    ck_assert_int_eq(report(h, 1, true, buf, sizeof(buf)), NVME_SUCCESS);
    gen = st->gen;
    ck_assert_int_eq(reg(h, 1, KEY0), NVME_SUCCESS);
    ck_assert_int_eq(reg(h, 1, KEY0), NVME_SUCCESS);
    ck_assert_int_eq(reg(h, 1, KEY1), CONFLICT);
    /* Replace: the current key, unless IEKEY. */
    ck_assert_int_eq(resv_register(h, 1, NVME_RESV_REPLACE, KEY1, 7),
                     CONFLICT);
    ck_assert_int_eq(resv_register(h, 1, NVME_RESV_REPLACE, KEY0, 7),
                     NVME_SUCCESS);
    ck_assert_int_eq(resv_register(h, 1, NVME_RESV_REPLACE |
                                   NVME_RESV_IEKEY, 99, KEY1),
                     NVME_SUCCESS);
    ck_assert_int_eq(take(h, 1, NVME_RESV_WRITE_EXCLUSIVE, KEY0), CONFLICT);
    /* Unregister: the current key, unless IEKEY. */
    ck_assert_int_eq(resv_register(h, 1, NVME_RESV_UNREGISTER, KEY0, 0),
                     CONFLICT);
    ck_assert_int_eq(report(h, 1, true, buf, sizeof(buf)), NVME_SUCCESS);
    ck_assert_uint_eq(st->gen, gen + 4);
    ck_assert_int_eq(((NvmeRegCtrlExt *)(buf + 64))->rkey, KEY1);
    ck_assert_int_eq(resv_register(h, 1, NVME_RESV_UNREGISTER |
                                   NVME_RESV_IEKEY, 0, 0), NVME_SUCCESS);
    ck_assert_int_eq(resv_register(h, 1, NVME_RESV_UNREGISTER |
                                   NVME_RESV_IEKEY, 0, 0), CONFLICT);
    ck_assert_int_eq(resv_register(h, 1, NVME_RESV_REPLACE |
                                   NVME_RESV_IEKEY, 0, 1), CONFLICT);
    /* The other namespace knows nothing of it. */
    assert_status(h, 1, 0, 0);
    assert_status(h, 2, 0, 0);
    /* Reserved actions; persistence through power loss. */
    ck_assert_int_eq(resv_register(h, 1, 3, 0, 1), INVALID);
    ck_assert_int_eq(resv_register(h, 1, 3u << 30, 0, 1), INVALID);
    ck_assert_int_eq(resv_register(h, 1, 1u << 30, 0, 1), INVALID);
    ck_assert_int_eq(resv_register(h, 1, 2u << 30, 0, 1), NVME_SUCCESS);
    ck_assert_int_eq(acquire(h, 1, 3, NVME_RESV_WRITE_EXCLUSIVE, 1, 0),
                     INVALID);
    ck_assert_int_eq(take(h, 1, 7, 1), INVALID);
    ck_assert_int_eq(acquire(h, 1, NVME_RESV_ACQUIRE | NVME_RESV_IEKEY,
                             NVME_RESV_WRITE_EXCLUSIVE, 1, 0), INVALID);
    ck_assert_int_eq(release(h, 1, 2, 0, 1), INVALID);
    /* A wrong key for Acquire and Release. */
    ck_assert_int_eq(take(h, 1, NVME_RESV_WRITE_EXCLUSIVE, 2), CONFLICT);
    ck_assert_int_eq(release(h, 1, NVME_RESV_CLEAR, 0, 2), CONFLICT);
    assert_status(h, 1, 0, 1);
}
END_TEST

/* Write Exclusive: only the holder writes; everyone reads. */
START_TEST(test_write_exclusive)
{
    QNvmeHost *a = &env.h[0], *b = &env.h[1];

    hold(a, 1, NVME_RESV_WRITE_EXCLUSIVE, KEY0);
    assert_access(b, 1, NVME_SUCCESS, CONFLICT);
    assert_writes(b, 2, NVME_SUCCESS);
    /* A registrant is not the holder. */
    ck_assert_int_eq(reg(b, 1, KEY1), NVME_SUCCESS);
    assert_writes(b, 1, CONFLICT);
    assert_writes(a, 1, NVME_SUCCESS);
    /* Acquiring it again: the same type is fine, another one, or another
     * host, conflicts. */
    ck_assert_int_eq(take(a, 1, NVME_RESV_WRITE_EXCLUSIVE, KEY0), NVME_SUCCESS);
    ck_assert_int_eq(take(a, 1, NVME_RESV_EXCLUSIVE_ACCESS, KEY0), CONFLICT);
    ck_assert_int_eq(take(b, 1, NVME_RESV_WRITE_EXCLUSIVE, KEY1), CONFLICT);
    /* Release: not ours is no effect; the wrong type is invalid. */
    ck_assert_int_eq(release(b, 1, NVME_RESV_RELEASE,
                             NVME_RESV_WRITE_EXCLUSIVE, KEY1), NVME_SUCCESS);
    assert_status(a, 1, NVME_RESV_WRITE_EXCLUSIVE, 2);
    ck_assert_int_eq(release(a, 1, NVME_RESV_RELEASE,
                             NVME_RESV_EXCLUSIVE_ACCESS, KEY0), INVALID);
    ck_assert_int_eq(release(a, 1, NVME_RESV_RELEASE,
                             NVME_RESV_WRITE_EXCLUSIVE, KEY0), NVME_SUCCESS);
    assert_writes(b, 1, NVME_SUCCESS);
    assert_status(a, 1, 0, 2);
    /* Write Exclusive releases tell nobody. */
    assert_no_notice(b);
}
END_TEST

/* Exclusive Access: the others neither read nor write, registered or not. */
START_TEST(test_exclusive_access)
{
    QNvmeHost *a = &env.h[0], *b = &env.h[1];

    hold(a, 1, NVME_RESV_EXCLUSIVE_ACCESS, KEY0);
    assert_access(b, 1, CONFLICT, CONFLICT);
    ck_assert_int_eq(reg(b, 1, KEY1), NVME_SUCCESS);
    assert_access(b, 1, CONFLICT, CONFLICT);
    assert_access(a, 1, NVME_SUCCESS, NVME_SUCCESS);
    /* The reservation commands themselves are not blocked. */
    assert_status(b, 1, NVME_RESV_EXCLUSIVE_ACCESS, 2);
    /* The holder unregistering releases it. */
    ck_assert_int_eq(resv_register(a, 1, NVME_RESV_UNREGISTER, KEY0, 0),
                     NVME_SUCCESS);
    assert_status(b, 1, 0, 1);
    assert_reads(b, 1, NVME_SUCCESS);
}
END_TEST

/* Registrants Only: registrants may, others may not; the holder leaving
 * tells the registrants. */
START_TEST(test_registrants_only)
{
    QNvmeHost *a = &env.h[0], *b = &env.h[1];
    uint16_t cid;

    hold(a, 1, NVME_RESV_WE_REGS_ONLY, KEY0);
    assert_access(b, 1, NVME_SUCCESS, CONFLICT);
    ck_assert_int_eq(reg(b, 1, KEY1), NVME_SUCCESS);
    assert_writes(b, 1, NVME_SUCCESS);
    /* Still one holder. */
    ck_assert_int_eq(take(b, 1, NVME_RESV_WE_REGS_ONLY, KEY1), CONFLICT);
    cid = qnvme_submit_aer(b->q);
    ck_assert_int_eq(resv_register(a, 1, NVME_RESV_UNREGISTER, KEY0, 0),
                     NVME_SUCCESS);
    wait_resv_aen(b, cid);
    assert_notice(b, NVME_RESV_LOG_RELEASED, 1, 1, 0);
    assert_no_notice(b);
    assert_no_notice(a);
    assert_status(a, 1, 0, 1);

    /* Exclusive Access - Registrants Only: reads too. */
    ck_assert_int_eq(take(b, 1, NVME_RESV_EA_REGS_ONLY, KEY1), NVME_SUCCESS);
    assert_access(a, 1, CONFLICT, CONFLICT);
    ck_assert_int_eq(reg(a, 1, KEY0), NVME_SUCCESS);
    assert_access(a, 1, NVME_SUCCESS, NVME_SUCCESS);
    /* Released by its holder: the other registrant is told. */
    cid = qnvme_submit_aer(a->q);
    ck_assert_int_eq(release(b, 1, NVME_RESV_RELEASE,
                             NVME_RESV_EA_REGS_ONLY, KEY1), NVME_SUCCESS);
    wait_resv_aen(a, cid);
    assert_notice(a, NVME_RESV_LOG_RELEASED, 1, 1, 0);
}
END_TEST

/* All Registrants: every registrant holds it; it goes with the last. */
START_TEST(test_all_registrants)
{
    QNvmeHost *a = &env.h[0], *b = &env.h[1];
    uint8_t buf[512];
    NvmeRegCtrlExt *e = (NvmeRegCtrlExt *)(buf + 64);

    hold(a, 1, NVME_RESV_WE_ALL_REGS, KEY0);
    assert_access(b, 1, NVME_SUCCESS, CONFLICT);
    ck_assert_int_eq(reg(b, 1, KEY1), NVME_SUCCESS);
    assert_writes(b, 1, NVME_SUCCESS);
    ck_assert_int_eq(report(b, 1, true, buf, sizeof(buf)), NVME_SUCCESS);
    ck_assert_int_eq(e[0].rcsts, NVME_RCSTS_HOLDS);
    ck_assert_int_eq(e[1].rcsts, NVME_RCSTS_HOLDS);
    /* A holder already: acquiring the same type is fine. */
    ck_assert_int_eq(take(b, 1, NVME_RESV_WE_ALL_REGS, KEY1), NVME_SUCCESS);
    /* The first holder goes: the reservation stays with the other. */
    ck_assert_int_eq(resv_register(a, 1, NVME_RESV_UNREGISTER, KEY0, 0),
                     NVME_SUCCESS);
    assert_status(a, 1, NVME_RESV_WE_ALL_REGS, 1);
    assert_writes(a, 1, CONFLICT);
    /* The last goes: no reservation. */
    ck_assert_int_eq(resv_register(b, 1, NVME_RESV_UNREGISTER, KEY1, 0),
                     NVME_SUCCESS);
    assert_status(a, 1, 0, 0);
    assert_writes(a, 1, NVME_SUCCESS);

    /* Exclusive Access - All Registrants; released by any registrant,
     * the others told. */
    reg_both(1);
    ck_assert_int_eq(take(a, 1, NVME_RESV_EA_ALL_REGS, KEY0), NVME_SUCCESS);
    assert_reads(b, 1, NVME_SUCCESS);
    ck_assert_int_eq(resv_register(b, 1, NVME_RESV_UNREGISTER, KEY1, 0),
                     NVME_SUCCESS);
    assert_reads(b, 1, CONFLICT);
    ck_assert_int_eq(reg(b, 1, KEY1), NVME_SUCCESS);
    ck_assert_int_eq(release(b, 1, NVME_RESV_RELEASE,
                             NVME_RESV_EA_ALL_REGS, KEY1), NVME_SUCCESS);
    assert_status(a, 1, 0, 2);
    assert_notice(a, NVME_RESV_LOG_RELEASED, 1, 1, 0);
}
END_TEST

/* Report, both formats, and a report shorter than the data. */
START_TEST(test_report)
{
    QNvmeHost *a = &env.h[0], *b = &env.h[1];
    uint8_t buf[512];
    NvmeResvStatus *st = (NvmeResvStatus *)buf;
    NvmeRegCtrl *r = (NvmeRegCtrl *)(buf + 24);
    NvmeRegCtrlExt *e = (NvmeRegCtrlExt *)(buf + 64);

    reg_both(1);
    ck_assert_int_eq(take(b, 1, NVME_RESV_WE_REGS_ONLY, KEY1), NVME_SUCCESS);
    ck_assert_int_eq(report(a, 1, false, buf, sizeof(buf)), NVME_SUCCESS);
    ck_assert_uint_eq(st->gen, 2);
    ck_assert_int_eq(st->rtype, NVME_RESV_WE_REGS_ONLY);
    ck_assert_int_eq(st->regctl, 2);
    ck_assert_int_eq(st->ptpls, 0);
    ck_assert_int_eq(r[0].cntlid, 0);
    ck_assert_int_eq(r[0].rcsts, 0);
    ck_assert_uint_eq(r[0].hostid, HOST0);
    ck_assert_uint_eq(r[0].rkey, KEY0);
    ck_assert_int_eq(r[1].cntlid, 1);
    ck_assert_int_eq(r[1].rcsts, NVME_RCSTS_HOLDS);
    ck_assert_uint_eq(r[1].hostid, HOST1);
    ck_assert_uint_eq(r[1].rkey, KEY1);
    ck_assert_int_eq(buf[24 + 2 * 24], 0);
    ck_assert_int_eq(report(b, 1, true, buf, sizeof(buf)), NVME_SUCCESS);
    ck_assert_int_eq(st->regctl, 2);
    ck_assert_int_eq(e[0].cntlid, 0);
    ck_assert_uint_eq(e[0].rkey, KEY0);
    ck_assert_uint_eq(ldq_le_p(e[0].hostid), HOST0);
    ck_assert_uint_eq(ldq_le_p(e[0].hostid + 8), 0);
    ck_assert_int_eq(e[1].cntlid, 1);
    ck_assert_int_eq(e[1].rcsts, NVME_RCSTS_HOLDS);
    ck_assert_uint_eq(e[1].rkey, KEY1);
    ck_assert_uint_eq(ldq_le_p(e[1].hostid), HOST1);
    /* The header alone, as a host asking for the size first. */
    ck_assert_int_eq(report(a, 1, false, buf, 24), NVME_SUCCESS);
    ck_assert_int_eq(st->regctl, 2);
    /* Not a namespace of ours. */
    ck_assert_int_eq(report(a, 9, false, buf, 24),
                     DNR(NVME_INVALID_NSID));
}
END_TEST

/* Preempt: the holder's key moves the reservation and unregisters it. */
START_TEST(test_preempt)
{
    QNvmeHost *a = &env.h[0], *b = &env.h[1];
    uint16_t cid;

    reg_both(1);
    ck_assert_int_eq(take(a, 1, NVME_RESV_WE_REGS_ONLY, KEY0), NVME_SUCCESS);
    /* Nobody has that key; key 0 is not a holder's key. */
    ck_assert_int_eq(acquire(b, 1, NVME_RESV_PREEMPT,
                             NVME_RESV_EXCLUSIVE_ACCESS, KEY1, 42), CONFLICT);
    ck_assert_int_eq(acquire(b, 1, NVME_RESV_PREEMPT,
                             NVME_RESV_EXCLUSIVE_ACCESS, KEY1, 0), INVALID);
    cid = qnvme_submit_aer(a->q);
    ck_assert_int_eq(acquire(b, 1, NVME_RESV_PREEMPT,
                             NVME_RESV_EXCLUSIVE_ACCESS, KEY1, KEY0),
                     NVME_SUCCESS);
    wait_resv_aen(a, cid);
    assert_notice(a, NVME_RESV_LOG_REG_PREEMPTED, 1, 1, 0);
    assert_status(a, 1, NVME_RESV_EXCLUSIVE_ACCESS, 1);
    assert_access(a, 1, CONFLICT, CONFLICT);
    ck_assert_int_eq(take(a, 1, NVME_RESV_EXCLUSIVE_ACCESS, KEY0), CONFLICT);
    /* Preempt and Abort acts as Preempt: back to A. */
    ck_assert_int_eq(reg(a, 1, KEY0), NVME_SUCCESS);
    ck_assert_int_eq(acquire(a, 1, NVME_RESV_PREEMPT_ABORT,
                             NVME_RESV_WRITE_EXCLUSIVE, KEY0, KEY1),
                     NVME_SUCCESS);
    assert_status(b, 1, NVME_RESV_WRITE_EXCLUSIVE, 1);
    assert_access(b, 1, NVME_SUCCESS, CONFLICT);
    /* B lost its registration and nothing else; told once. */
    assert_notice(b, NVME_RESV_LOG_REG_PREEMPTED, 1, 1, 0);
    assert_no_notice(b);
}
END_TEST

/* All Registrants preempted with key 0: the others go. */
START_TEST(test_preempt_all_registrants)
{
    QNvmeHost *a = &env.h[0], *b = &env.h[1];

    reg_both(1);
    ck_assert_int_eq(take(a, 1, NVME_RESV_EA_ALL_REGS, KEY0), NVME_SUCCESS);
    ck_assert_int_eq(acquire(b, 1, NVME_RESV_PREEMPT,
                             NVME_RESV_EXCLUSIVE_ACCESS, KEY1, 0),
                     NVME_SUCCESS);
    assert_status(a, 1, NVME_RESV_EXCLUSIVE_ACCESS, 1);
    assert_reads(a, 1, CONFLICT);
    assert_reads(b, 1, NVME_SUCCESS);
    assert_notice(a, NVME_RESV_LOG_REG_PREEMPTED, 1, 1, 0);
}
END_TEST

/* Clear: every registration and the reservation go; the others told. */
START_TEST(test_clear)
{
    QNvmeHost *a = &env.h[0], *b = &env.h[1];
    uint8_t buf[256];
    NvmeResvStatus *st = (NvmeResvStatus *)buf;
    uint16_t cid;

    reg_both(1);
    ck_assert_int_eq(take(a, 1, NVME_RESV_EXCLUSIVE_ACCESS, KEY0),
                     NVME_SUCCESS);
    assert_reads(b, 1, CONFLICT);
    cid = qnvme_submit_aer(a->q);
    ck_assert_int_eq(release(b, 1, NVME_RESV_CLEAR, 0, KEY1), NVME_SUCCESS);
    wait_resv_aen(a, cid);
    assert_notice(a, NVME_RESV_LOG_PREEMPTED, 1, 1, 0);
    assert_no_notice(b);
    ck_assert_int_eq(report(b, 1, false, buf, sizeof(buf)), NVME_SUCCESS);
    ck_assert_int_eq(st->rtype, 0);
    ck_assert_int_eq(st->regctl, 0);
    ck_assert_uint_eq(st->gen, 3);
    assert_access(b, 1, NVME_SUCCESS, NVME_SUCCESS);
}
END_TEST

/* Log count and pages queued; the mask per namespace (82h). */
START_TEST(test_notice_log_and_mask)
{
    QNvmeHost *a = &env.h[0], *b = &env.h[1];
    uint32_t res;

    for (uint32_t nsid = 1; nsid <= 2; nsid++) {
        reg_both(nsid);
    }
    /* Two notices queued: counts 1 and 2, one more page after the first. */
    ck_assert_int_eq(release(b, 1, NVME_RESV_CLEAR, 0, KEY1), NVME_SUCCESS);
    ck_assert_int_eq(release(b, 2, NVME_RESV_CLEAR, 0, KEY1), NVME_SUCCESS);
    assert_notice(a, NVME_RESV_LOG_PREEMPTED, 1, 1, 1);
    assert_notice(a, NVME_RESV_LOG_PREEMPTED, 2, 2, 0);
    assert_no_notice(a);
    /* Masked on namespace 2: no notice there, still on 1. */
    ck_assert_int_eq(ns_feature(a, true, NVME_FEAT_RESV_MASK, 2,
                                1u << NVME_RESV_LOG_PREEMPTED, NULL),
                     NVME_SUCCESS);
    ck_assert_int_eq(ns_feature(a, false, NVME_FEAT_RESV_MASK, 2, 0, &res),
                     NVME_SUCCESS);
    ck_assert_uint_eq(res, 1u << NVME_RESV_LOG_PREEMPTED);
    ck_assert_int_eq(ns_feature(a, false, NVME_FEAT_RESV_MASK, 1, 0, &res),
                     NVME_SUCCESS);
    ck_assert_uint_eq(res, 0);
    for (uint32_t nsid = 1; nsid <= 2; nsid++) {
        reg_both(nsid);
        ck_assert_int_eq(release(b, nsid, NVME_RESV_CLEAR, 0, KEY1),
                         NVME_SUCCESS);
    }
    assert_notice(a, NVME_RESV_LOG_PREEMPTED, 1, 3, 0);
    assert_no_notice(a);
    /* Every namespace at once; invalid bits, namespaces. */
    ck_assert_int_eq(ns_feature(a, true, NVME_FEAT_RESV_MASK,
                                NVME_NSID_BROADCAST, NVME_RESV_MASK_ALL,
                                NULL), NVME_SUCCESS);
    ck_assert_int_eq(ns_feature(a, false, NVME_FEAT_RESV_MASK, 1, 0, &res),
                     NVME_SUCCESS);
    ck_assert_uint_eq(res, NVME_RESV_MASK_ALL);
    ck_assert_int_eq(ns_feature(a, true, NVME_FEAT_RESV_MASK, 1, 1, NULL),
                     INVALID);
    ck_assert_int_eq(ns_feature(a, true, NVME_FEAT_RESV_MASK, 7, 0, NULL),
                     DNR(NVME_INVALID_NSID));
    /* The reset empties the log and restarts its count. */
    ck_assert_int_eq(ns_feature(a, true, NVME_FEAT_RESV_MASK,
                                NVME_NSID_BROADCAST, 0, NULL), NVME_SUCCESS);
    reg_both(1);
    ck_assert_int_eq(release(b, 1, NVME_RESV_CLEAR, 0, KEY1), NVME_SUCCESS);
    qnvme_init(a->q, 1, 32);
    assert_no_notice(a);
    reg_both(1);
    ck_assert_int_eq(release(b, 1, NVME_RESV_CLEAR, 0, KEY1), NVME_SUCCESS);
    assert_notice(a, NVME_RESV_LOG_PREEMPTED, 1, 1, 0);
}
END_TEST

/* Reservation Persistence (83h): off, and it cannot be turned on. */
START_TEST(test_persistence)
{
    QNvmeHost *a = &env.h[0];
    uint32_t res = 1;

    ck_assert_int_eq(ns_feature(a, false, NVME_FEAT_RESV_PERSIST, 1, 0,
                                &res), NVME_SUCCESS);
    ck_assert_uint_eq(res, 0);
    ck_assert_int_eq(ns_feature(a, true, NVME_FEAT_RESV_PERSIST, 1,
                                NVME_RESV_PTPL, NULL), INVALID);
    ck_assert_int_eq(ns_feature(a, true, NVME_FEAT_RESV_PERSIST, 1, 0,
                                NULL), NVME_SUCCESS);
}
END_TEST

/* A host that never set its identifier is a host of its own. */
START_TEST(test_unset_host_id)
{
    QNvmeHost *a = &env.h[0], *b = &env.h[1];

    ck_assert_int_eq(set_host_id(a, 0, 0, false), NVME_SUCCESS);
    ck_assert_int_eq(set_host_id(b, 0, 0, false), NVME_SUCCESS);
    hold(a, 1, NVME_RESV_WRITE_EXCLUSIVE, KEY0);
    assert_writes(b, 1, CONFLICT);
    assert_writes(a, 1, NVME_SUCCESS);
    ck_assert_int_eq(reg(b, 1, KEY0), NVME_SUCCESS);
    assert_status(b, 1, NVME_RESV_WRITE_EXCLUSIVE, 2);
}
END_TEST

/*
 * Host 1's controller moves to another daemon: its Host Identifier, its
 * notices and the shared namespace's reservation go with it.
 */
START_TEST(test_migrate)
{
    QNvmeHost *a = &env.h[0], *b = &env.h[1];
    uint64_t id[2];
    uint32_t mask = 0;
    uint8_t buf[256];
    NvmeRegCtrl *r = (NvmeRegCtrl *)(buf + 24);

    reg_both(1);
    ck_assert_int_eq(ns_feature(b, true, NVME_FEAT_RESV_MASK, 2,
                                NVME_RESV_MASK_ALL, NULL), NVME_SUCCESS);
    ck_assert_int_eq(take(a, 1, NVME_RESV_WE_REGS_ONLY, KEY0), NVME_SUCCESS);
    ck_assert_int_eq(release(a, 1, NVME_RESV_RELEASE,
                             NVME_RESV_WE_REGS_ONLY, KEY0), NVME_SUCCESS);
    ck_assert_int_eq(take(a, 1, NVME_RESV_EXCLUSIVE_ACCESS, KEY0),
                     NVME_SUCCESS);
    env.dst = iovd_proc_new();
    configure(env.dst);
    iovd_proc_start(env.dst);
    qnvme_host_migrate(b, env.dst, 1);
    ck_assert_int_eq(get_host_id(b, false, id), NVME_SUCCESS);
    ck_assert_uint_eq(id[0], HOST1);
    assert_status(b, 1, NVME_RESV_EXCLUSIVE_ACCESS, 2);
    /* Host 0's controller there is nobody's yet: its entry has none. */
    ck_assert_int_eq(report(b, 1, false, buf, sizeof(buf)), NVME_SUCCESS);
    ck_assert_int_eq(r[0].cntlid, NVME_CNTLID_DYNAMIC);
    ck_assert_uint_eq(r[0].hostid, HOST0);
    ck_assert_int_eq(r[0].rcsts, NVME_RCSTS_HOLDS);
    ck_assert_int_eq(r[1].cntlid, 1);
    ck_assert_uint_eq(r[1].hostid, HOST1);
    assert_reads(b, 1, CONFLICT);
    ck_assert_int_eq(ns_feature(b, false, NVME_FEAT_RESV_MASK, 2, 0, &mask),
                     NVME_SUCCESS);
    ck_assert_uint_eq(mask, NVME_RESV_MASK_ALL);
    assert_notice(b, NVME_RESV_LOG_RELEASED, 1, 1, 0);
    /* It is still a registrant there, with its key. */
    ck_assert_int_eq(reg(b, 1, KEY0), CONFLICT);
    ck_assert_int_eq(resv_register(b, 1, NVME_RESV_UNREGISTER, KEY1, 0),
                     NVME_SUCCESS);
}
END_TEST

/*
 * Writes of one VM in flight while the other takes and gives back the
 * reservation (each controller on its own thread in the iothreads_
 * case): each write either conflicts or is done, and once the
 * reservation is gone they all go through again.
 */
START_TEST(test_concurrent)
{
    QNvmeHost *a = &env.h[0], *b = &env.h[1];
    QNvmeQueue *q = qnvme_ioq(b->q, 1);
    uint64_t g = guest_alloc_aligned(b->gm, 4096, 4096);
    unsigned done = 0;

    ck_assert_int_eq(reg(a, 1, KEY0), NVME_SUCCESS);
    for (unsigned round = 0; round < 20; round++) {
        for (unsigned i = 0; i < 8; i++) {
            NvmeCmd cmd;

            qnvme_rw_cmd(b->q, &cmd, NVME_CMD_WRITE, 1, i, 1, g);
            qnvme_submit(b->q, q, &cmd);
        }
        ck_assert_int_eq(take(a, 1, NVME_RESV_WRITE_EXCLUSIVE, KEY0),
                         NVME_SUCCESS);
        ck_assert_int_eq(release(a, 1, NVME_RESV_RELEASE,
                                 NVME_RESV_WRITE_EXCLUSIVE, KEY0),
                         NVME_SUCCESS);
        for (unsigned i = 0; i < 8; i++) {
            NvmeCqe cqe;
            uint16_t st;

            qnvme_wait(b->q, q, &cqe, 0);
            st = qnvme_status(&cqe);
            ck_assert_msg(st == NVME_SUCCESS || st == CONFLICT,
                          "status 0x%x", st);
            done++;
        }
    }
    ck_assert_uint_eq(done, 160);
    assert_writes(b, 1, NVME_SUCCESS);
    assert_status(b, 1, 0, 1);
    guest_free(b->gm, g);
}
END_TEST

static void add(Suite *s, const char *name, const TTest *t)
{
    TCase *tc = qos_check_tcase(s, name, setup, teardown, 60);

    tcase_add_test(tc, t);
}

static void add_iothreads(Suite *s, const char *name, const TTest *t)
{
    TCase *tc = qos_check_tcase(s, name, setup_iothreads, teardown, 60);

    tcase_add_test(tc, t);
}

static Suite *nvme_resv_suite(void)
{
    Suite *s = suite_create("nvme-resv");

    add(s, "identify", test_identify);
    add(s, "host_id", test_host_id);
    add(s, "same_host", test_same_host);
    add(s, "register_keys", test_register_keys);
    add(s, "write_exclusive", test_write_exclusive);
    add(s, "exclusive_access", test_exclusive_access);
    add(s, "registrants_only", test_registrants_only);
    add(s, "all_registrants", test_all_registrants);
    add(s, "report", test_report);
    add(s, "preempt", test_preempt);
    add(s, "preempt_all_registrants", test_preempt_all_registrants);
    add(s, "clear", test_clear);
    add(s, "notice_log_and_mask", test_notice_log_and_mask);
    add(s, "persistence", test_persistence);
    add(s, "unset_host_id", test_unset_host_id);
    add(s, "migrate", test_migrate);
    add_iothreads(s, "iothreads_registrants_only", test_registrants_only);
    add_iothreads(s, "iothreads_preempt", test_preempt);
    add_iothreads(s, "iothreads_clear", test_clear);
    add_iothreads(s, "iothreads_migrate", test_migrate);
    add(s, "concurrent", test_concurrent);
    add_iothreads(s, "iothreads_concurrent", test_concurrent);
    return s;
}

int main(void)
{
    return qos_check_run(nvme_resv_suite());
}
