/*
 * NVMe admin commands: Identify, Get Log Page, Get/Set Features, queue
 * creation and deletion, Abort, Asynchronous Event Request, Keep Alive and
 * Doorbell Buffer Config.  Each handler returns an NVMe status (with DNR
 * where retrying cannot help) or NVME_NO_COMPLETE.
 */
#include "hw/nvme/nvme.h"
#include "hw/nvme/trace.h"

#define NVME_ERR(status) ((uint16_t)((status) | NVME_DNR))

static void nvme_strpad(char *dst, const char *src, size_t len)
{
    memset(dst, ' ', len);
    memcpy(dst, src, MIN(strlen(src), len));
}

static bool nvme_io_queues_exist(NvmeCtrl *n)
{
    for (unsigned i = 1; i < NVME_MAX_QUEUES; i++) {
        if (n->sq[i] || n->cq[i]) {
            return true;
        }
    }
    return false;
}

/* ---- asynchronous events ---- */

void nvme_aer_enqueue(NvmeCtrl *n, uint8_t type, uint8_t info, uint8_t log)
{
    uint32_t result = NVME_AER_RESULT(type, info, log);

    for (unsigned i = 0; i < n->aer_queued; i++) {
        if (n->aer_queue[i] == result) {
            return;
        }
    }
    if (n->aer_queued == NVME_AER_QUEUE_MAX) {
        trace_nvme_aer_dropped(nvme_id(n), result);
        return;
    }
    trace_nvme_aer_enqueue(nvme_id(n), type, info, log);
    n->aer_queue[n->aer_queued++] = result;
    /* Completed from the bottom half, never from an MMIO handler. */
    nvme_schedule(n);
}

void nvme_aer_process(NvmeCtrl *n)
{
    unsigned i = 0;

    while (n->aer_outstanding && i < n->aer_queued && nvme_queues_live(n)) {
        uint32_t result = n->aer_queue[i];
        unsigned type = NVME_AER_RESULT_TYPE(result);
        NvmeRequest *req;

        if (n->aer_masked & (1u << type)) {
            i++;
            continue;
        }
        memmove(&n->aer_queue[i], &n->aer_queue[i + 1],
                (n->aer_queued - i - 1) * sizeof(n->aer_queue[0]));
        n->aer_queued--;
        /* No more events of this type until the host reads its log. */
        n->aer_masked |= 1u << type;
        req = n->aer_reqs[0];
        memmove(&n->aer_reqs[0], &n->aer_reqs[1],
                (n->aer_outstanding - 1) * sizeof(n->aer_reqs[0]));
        n->aer_reqs[--n->aer_outstanding] = NULL;
        trace_nvme_aer_complete(nvme_id(n), result);
        req->result = result;
        req->status = NVME_SUCCESS;
        nvme_req_complete(req);
    }
}

static void nvme_aer_unmask(NvmeCtrl *n, unsigned type)
{
    n->aer_masked &= ~(1u << type);
    if (n->aer_queued) {
        nvme_aer_process(n);
    }
}

void nvme_ns_changed(NvmeCtrl *n, uint32_t nsid)
{
    bool found = false;

    for (unsigned i = 0; i < n->nr_changed_ns; i++) {
        if (n->changed_ns[i] == nsid) {
            found = true;
            break;
        }
    }
    if (!found) {
        if (n->nr_changed_ns < NVME_CHANGED_NSLIST_MAX) {
            n->changed_ns[n->nr_changed_ns++] = nsid;
        } else {
            n->changed_ns_overflow = true;
        }
    }
    if (n->features.aec & NVME_AEC_NS_ATTR) {
        nvme_aer_enqueue(n, NVME_AER_TYPE_NOTICE,
                         NVME_AER_INFO_NOTICE_NS_ATTR_CHANGED,
                         NVME_LOG_CHANGED_NSLIST);
    }
}

static uint8_t nvme_critical_warning(NvmeCtrl *n)
{
    uint8_t w = 0;

    if (NVME_TEMPERATURE > n->features.temp_over ||
        NVME_TEMPERATURE < n->features.temp_under) {
        w |= NVME_SMART_WARN_TEMPERATURE;
    }
    return w;
}

void nvme_check_temperature(NvmeCtrl *n)
{
    if ((nvme_critical_warning(n) & NVME_SMART_WARN_TEMPERATURE) &&
        (n->features.aec & NVME_SMART_WARN_TEMPERATURE)) {
        nvme_aer_enqueue(n, NVME_AER_TYPE_SMART,
                         NVME_AER_INFO_SMART_TEMP_THRESH,
                         NVME_LOG_SMART_INFO);
    }
}

/* At most AERL + 1 outstanding (NVMe 1.4 5.2, Asynchronous Event Request). */
static uint16_t nvme_aer(NvmeCtrl *n, NvmeRequest *req)
{
    if (n->aer_outstanding > NVME_AERL) {
        trace_nvme_err_aer_limit(nvme_id(n), req->cmd.cid);
        return NVME_ERR(NVME_AER_LIMIT_EXCEEDED);
    }
    n->aer_reqs[n->aer_outstanding++] = req;
    nvme_aer_process(n);
    return NVME_NO_COMPLETE;
}

/* ---- Identify (NVMe 1.4 5.15) ---- */

static void nvme_fill_id_ctrl(NvmeCtrl *n, NvmeIdCtrl *id)
{
    memset(id, 0, sizeof(*id));
    id->vid = NVME_PCI_VENDOR_ID;
    id->ssvid = 0x1af4;
    nvme_strpad(id->sn, n->sn, sizeof(id->sn));
    nvme_strpad(id->mn, n->model ? n->model : "iovd NVMe Ctrl",
                sizeof(id->mn));
    nvme_strpad(id->fr, IOVD_VERSION, sizeof(id->fr));
    id->rab = 6;
    id->ieee[0] = 0x00;
    id->ieee[1] = 0x54;
    id->ieee[2] = 0x52;
    id->cmic = n->subsys ? NVME_CMIC_MULTI_CTRL : 0;
    id->mdts = NVME_MDTS;
    id->cntlid = n->cntlid;
    id->ver = NVME_VS_1_4;
    id->oaes = NVME_OAES_NS_ATTR;
    id->ctratt = NVME_CTRATT_HOSTID_128;
    id->cntrltype = NVME_CNTRLTYPE_IO;
    id->oacs = NVME_OACS_DBBUF;
    id->acl = NVME_ACL;
    id->aerl = NVME_AERL;
    id->frmw = NVME_FRMW_SLOT1_RO | NVME_FRMW_NUM_SLOTS(1);
    id->lpa = NVME_LPA_CSE_LOG | NVME_LPA_EXTENDED;
    id->elpe = NVME_ELPE;
    id->npss = 0;
    id->wctemp = NVME_TEMPERATURE_WARNING;
    id->cctemp = NVME_TEMPERATURE_CRITICAL;
    id->kas = 1;                /* 100 ms granularity */
    id->sqes = (NVME_SQES << 4) | NVME_SQES;
    id->cqes = (NVME_CQES << 4) | NVME_CQES;
    id->nn = NVME_MAX_NAMESPACES;
    id->oncs = NVME_ONCS_COMPARE | NVME_ONCS_DSM | NVME_ONCS_WRITE_ZEROES |
               NVME_ONCS_TIMESTAMP | NVME_ONCS_RESERVATIONS;
    id->vwc = NVME_VWC_PRESENT | NVME_VWC_NSID_BROADCAST;
    id->sgls = NVME_SGLS_SUPPORTED | NVME_SGLS_BIT_BUCKET;
    /* A NUL-terminated string, not space padded. */
    g_strlcpy(id->subnqn, n->subnqn, sizeof(id->subnqn));
    id->psd[0].mp = 2500;       /* 25 W */
    id->psd[0].enlat = 16;
    id->psd[0].exlat = 4;
}

static void nvme_fill_id_ns(NvmeNamespace *ns, NvmeIdNs *id)
{
    uint64_t bytes = ns->nsze << ns->lba_shift;

    memset(id, 0, sizeof(*id));
    id->nsze = ns->nsze;
    id->ncap = ns->nsze;
    id->nuse = ns->nsze;
    id->nlbaf = 1;              /* two formats: 512 and 4096 */
    id->flbas = ns->lbasz == 4096 ? 1 : 0;
    id->lbaf[0].ds = 9;
    id->lbaf[0].rp = 2;
    id->lbaf[1].ds = 12;
    id->lbaf[1].rp = 0;
    id->dlfeat = NVME_DLFEAT_WZ_DEAC;
    memcpy(id->nvmcap, &bytes, sizeof(bytes));
    id->nmic = ns->shared ? NVME_NMIC_SHARED : 0;
    id->rescap = NVME_RESCAP_TYPES | NVME_RESCAP_IEK_13;
    id->nsattr = ns->read_only ? NVME_NSATTR_WRITE_PROTECTED : 0;
    memcpy(id->nguid, ns->nguid, sizeof(id->nguid));
    memcpy(id->eui64, ns->eui64, sizeof(id->eui64));
}

/* CNS 00h: an inactive namespace reads as zeroes. */
static uint16_t nvme_identify_ns(NvmeCtrl *n, uint32_t nsid, uint8_t *buf)
{
    NvmeNamespace *ns;

    /*
     * The broadcast NSID asks for the capabilities common to all
     * namespaces: without namespace management, invalid too.
     */
    if (nsid == 0 || nsid > NVME_MAX_NAMESPACES) {
        trace_nvme_err_invalid_ns(nvme_id(n), nsid);
        return NVME_ERR(NVME_INVALID_NSID);
    }
    ns = nvme_ns(n, nsid);
    if (ns) {
        nvme_fill_id_ns(ns, (NvmeIdNs *)buf);
    }
    return NVME_SUCCESS;
}

/* CNS 02h: the active NSIDs above @nsid. */
static uint16_t nvme_identify_active(NvmeCtrl *n, uint32_t nsid,
                                     uint8_t *buf)
{
    uint32_t *list = (uint32_t *)buf;
    unsigned cnt = 0;

    if (nsid >= 0xfffffffe) {
        trace_nvme_err_invalid_ns(nvme_id(n), nsid);
        return NVME_ERR(NVME_INVALID_NSID);
    }
    for (uint32_t i = nsid + 1; i <= NVME_MAX_NAMESPACES &&
         cnt < NVME_ID_NS_LIST_MAX; i++) {
        if (n->ns[i]) {
            list[cnt++] = i;
        }
    }
    return NVME_SUCCESS;
}

static uint8_t *nvme_put_descr(uint8_t *p, uint8_t type, uint8_t len,
                               const void *id)
{
    NvmeIdNsDescr d = { .nidt = type, .nidl = len };

    memcpy(p, &d, sizeof(d));
    memcpy(p + sizeof(d), id, len);
    return p + sizeof(d) + len;
}

/* CNS 03h: the namespace identification descriptors. */
static uint16_t nvme_identify_descrs(NvmeCtrl *n, uint32_t nsid,
                                     uint8_t *buf)
{
    NvmeNamespace *ns = nvme_ns(n, nsid);

    if (!ns) {
        trace_nvme_err_invalid_ns(nvme_id(n), nsid);
        return NVME_ERR(NVME_INVALID_NSID);
    }
    buf = nvme_put_descr(buf, NVME_NIDT_EUI64, NVME_NIDL_EUI64, ns->eui64);
    buf = nvme_put_descr(buf, NVME_NIDT_NGUID, NVME_NIDL_NGUID, ns->nguid);
    nvme_put_descr(buf, NVME_NIDT_UUID, NVME_NIDL_UUID, ns->uuid);
    return NVME_SUCCESS;
}

/*
 * CNS 05h, 06h: NVMe 2.0's command-set specific structures, which Linux
 * asks for whatever the version: for the NVM command set (CSI 0) all-zero
 * data means "no extra limits", which is what we have.
 */
static uint16_t nvme_identify_cs(NvmeCtrl *n, NvmeRequest *req, uint8_t cns)
{
    uint8_t csi = req->cmd.cdw11 >> 24;

    if (csi != 0) {
        trace_nvme_err_invalid_field(nvme_id(n), req->cmd.opcode,
                                     "identify CSI", csi);
        return NVME_ERR(NVME_INVALID_FIELD);
    }
    if (cns == NVME_ID_CNS_CS_NS && !nvme_ns(n, req->cmd.nsid)) {
        trace_nvme_err_invalid_ns(nvme_id(n), req->cmd.nsid);
        return NVME_ERR(NVME_INVALID_NSID);
    }
    return NVME_SUCCESS;
}

/*
 * CNS 12h (controllers attached to NSID) and 13h (controllers of the
 * subsystem), from CDW10.CNTID up: what Linux multipath reads.
 */
static uint16_t nvme_identify_ctrls(NvmeCtrl *n, NvmeRequest *req,
                                    uint8_t cns, uint8_t *buf)
{
    uint32_t nsid = req->cmd.nsid;

    if (cns == NVME_ID_CNS_CTRL_LIST) {
        nsid = 0;
    } else if (nsid == 0 || nsid > NVME_MAX_NAMESPACES) {
        trace_nvme_err_invalid_ns(nvme_id(n), nsid);
        return NVME_ERR(NVME_INVALID_NSID);
    }
    nvme_subsys_ctrl_list(n, nsid, req->cmd.cdw10 >> 16, (uint16_t *)buf);
    return NVME_SUCCESS;
}

static uint16_t nvme_identify(NvmeCtrl *n, NvmeRequest *req)
{
    uint8_t cns = req->cmd.cdw10 & 0xff;
    uint32_t nsid = req->cmd.nsid;
    g_autofree uint8_t *buf = g_malloc0(NVME_IDENTIFY_DATA_SIZE);
    uint16_t status;

    trace_nvme_identify(nvme_id(n), cns, nsid);
    switch (cns) {
    case NVME_ID_CNS_CTRL:
        nvme_fill_id_ctrl(n, (NvmeIdCtrl *)buf);
        status = NVME_SUCCESS;
        break;
    case NVME_ID_CNS_NS:
        status = nvme_identify_ns(n, nsid, buf);
        break;
    case NVME_ID_CNS_NS_ACTIVE_LIST:
        status = nvme_identify_active(n, nsid, buf);
        break;
    case NVME_ID_CNS_NS_DESCR_LIST:
        status = nvme_identify_descrs(n, nsid, buf);
        break;
    case NVME_ID_CNS_CTRL_LIST_NS:
    case NVME_ID_CNS_CTRL_LIST:
        status = nvme_identify_ctrls(n, req, cns, buf);
        break;
    case NVME_ID_CNS_CS_NS:
    case NVME_ID_CNS_CS_CTRL:
        status = nvme_identify_cs(n, req, cns);
        break;
    default:
        trace_nvme_err_invalid_field(nvme_id(n), req->cmd.opcode,
                                     "identify CNS", cns);
        return NVME_ERR(NVME_INVALID_FIELD);
    }
    if (status != NVME_SUCCESS) {
        return status;
    }
    return nvme_dma_to_guest(n, req, buf, NVME_IDENTIFY_DATA_SIZE);
}

/* ---- Get Log Page (NVMe 1.4 5.14; the log pages in 5.14.1) ---- */

/* A 128-bit little-endian counter of the SMART log (packed struct). */
#define nvme_u128(field, v)     \
    do {                        \
        (field)[0] = (v);       \
        (field)[1] = 0;         \
    } while (0)

static void nvme_fill_smart(NvmeCtrl *n, NvmeSmartLog *s)
{
    uint64_t hours = (clock_ns() - n->power_on_ns) / 3600000000000ULL;

    memset(s, 0, sizeof(*s));
    s->critical_warning = nvme_critical_warning(n);
    s->temperature = NVME_TEMPERATURE;
    s->available_spare = 100;
    s->available_spare_threshold = 10;
    s->percentage_used = 0;
    /* Units of 1000 512-byte blocks, rounded up. */
    nvme_u128(s->data_units_read, DIV_ROUND_UP(n->bytes_read, 512000));
    nvme_u128(s->data_units_written,
              DIV_ROUND_UP(n->bytes_written, 512000));
    nvme_u128(s->host_read_commands, n->read_cmds);
    nvme_u128(s->host_write_commands, n->write_cmds);
    nvme_u128(s->power_cycles, 1);
    nvme_u128(s->power_on_hours, hours);
    nvme_u128(s->media_errors, n->media_errors);
    nvme_u128(s->num_err_log_entries, n->error_count);
}

static void nvme_fill_effects(NvmeEffectsLog *e)
{
    static const uint8_t admin[] = {
        NVME_ADM_CMD_DELETE_SQ, NVME_ADM_CMD_CREATE_SQ,
        NVME_ADM_CMD_GET_LOG_PAGE, NVME_ADM_CMD_DELETE_CQ,
        NVME_ADM_CMD_CREATE_CQ, NVME_ADM_CMD_IDENTIFY, NVME_ADM_CMD_ABORT,
        NVME_ADM_CMD_SET_FEATURES, NVME_ADM_CMD_GET_FEATURES,
        NVME_ADM_CMD_ASYNC_EV_REQ, NVME_ADM_CMD_KEEP_ALIVE,
        NVME_ADM_CMD_DBBUF_CONFIG,
    };

    memset(e, 0, sizeof(*e));
    for (unsigned i = 0; i < ARRAY_SIZE(admin); i++) {
        e->acs[admin[i]] = NVME_CSE_CSUPP;
    }
    e->iocs[NVME_CMD_FLUSH] = NVME_CSE_CSUPP;
    e->iocs[NVME_CMD_READ] = NVME_CSE_CSUPP;
    e->iocs[NVME_CMD_COMPARE] = NVME_CSE_CSUPP;
    e->iocs[NVME_CMD_WRITE] = NVME_CSE_CSUPP | NVME_CSE_LBCC;
    e->iocs[NVME_CMD_WRITE_ZEROES] = NVME_CSE_CSUPP | NVME_CSE_LBCC;
    e->iocs[NVME_CMD_DSM] = NVME_CSE_CSUPP | NVME_CSE_LBCC;
    e->iocs[NVME_CMD_RESV_REGISTER] = NVME_CSE_CSUPP;
    e->iocs[NVME_CMD_RESV_REPORT] = NVME_CSE_CSUPP;
    e->iocs[NVME_CMD_RESV_ACQUIRE] = NVME_CSE_CSUPP;
    e->iocs[NVME_CMD_RESV_RELEASE] = NVME_CSE_CSUPP;
}

static uint16_t nvme_get_log(NvmeCtrl *n, NvmeRequest *req)
{
    NvmeCmd *cmd = &req->cmd;
    uint8_t lid = cmd->cdw10 & 0xff;
    bool rae = cmd->cdw10 & NVME_LOG_RAE;
    uint64_t numd = (((uint64_t)(cmd->cdw11 & 0xffff) << 16) |
                     (cmd->cdw10 >> 16)) + 1;
    uint64_t len = numd * 4;
    uint64_t off = cmd->cdw12 | ((uint64_t)cmd->cdw13 << 32);
    g_autofree uint8_t *buf = g_malloc0(4096);
    size_t size;
    int unmask = -1;
    uint16_t status;

    trace_nvme_get_log(nvme_id(n), lid, len, off, rae);
    if (off & 3) {
        trace_nvme_err_invalid_field(nvme_id(n), cmd->opcode,
                                     "log page offset", off);
        return NVME_ERR(NVME_INVALID_FIELD);
    }
    switch (lid) {
    case NVME_LOG_ERROR_INFO: {
        NvmeErrorLogEntry *e = (NvmeErrorLogEntry *)buf;
        unsigned cnt = MIN(n->error_count, (uint64_t)ARRAY_SIZE(n->elog));

        /* Newest first. */
        for (unsigned i = 0; i < cnt; i++) {
            unsigned idx = (n->elog_next + ARRAY_SIZE(n->elog) - 1 - i) %
                           ARRAY_SIZE(n->elog);

            e[i] = n->elog[idx];
        }
        size = sizeof(NvmeErrorLogEntry) * ARRAY_SIZE(n->elog);
        unmask = NVME_AER_TYPE_ERROR;
        break;
    }
    case NVME_LOG_SMART_INFO:
        if (cmd->nsid != 0 && cmd->nsid != NVME_NSID_BROADCAST) {
            /* LPA bit 0 is clear: no per-namespace SMART data. */
            trace_nvme_err_invalid_field(nvme_id(n), cmd->opcode,
                                         "SMART log nsid", cmd->nsid);
            return NVME_ERR(NVME_INVALID_FIELD);
        }
        nvme_fill_smart(n, (NvmeSmartLog *)buf);
        size = sizeof(NvmeSmartLog);
        unmask = NVME_AER_TYPE_SMART;
        break;
    case NVME_LOG_FW_SLOT_INFO: {
        NvmeFwSlotLog *fw = (NvmeFwSlotLog *)buf;

        fw->afi = 1;
        nvme_strpad(fw->frs[0], IOVD_VERSION, sizeof(fw->frs[0]));
        size = sizeof(NvmeFwSlotLog);
        break;
    }
    case NVME_LOG_CHANGED_NSLIST: {
        uint32_t *list = (uint32_t *)buf;

        if (n->changed_ns_overflow) {
            list[0] = NVME_CHANGED_NSLIST_OVERFLOW;
        } else {
            memcpy(list, n->changed_ns, n->nr_changed_ns * sizeof(*list));
        }
        size = NVME_CHANGED_NSLIST_MAX * sizeof(uint32_t);
        unmask = NVME_AER_TYPE_NOTICE;
        break;
    }
    case NVME_LOG_CMD_EFFECTS:
        nvme_fill_effects((NvmeEffectsLog *)buf);
        size = sizeof(NvmeEffectsLog);
        break;
    case NVME_LOG_RESV_NOTIFY:
        nvme_resv_log_pop(n, (NvmeResvNotifyLog *)buf);
        size = sizeof(NvmeResvNotifyLog);
        unmask = NVME_AER_TYPE_IO_SPECIFIC;
        break;
    default:
        trace_nvme_err_invalid_log(nvme_id(n), lid);
        return NVME_ERR(NVME_INVALID_LOG_ID);
    }
    if (off > size) {
        trace_nvme_err_invalid_field(nvme_id(n), cmd->opcode,
                                     "log page offset", off);
        return NVME_ERR(NVME_INVALID_FIELD);
    }
    status = nvme_dma_to_guest(n, req, buf + off, MIN(len, size - off));
    if (status == NVME_SUCCESS && !rae) {
        if (lid == NVME_LOG_CHANGED_NSLIST) {
            n->nr_changed_ns = 0;
            n->changed_ns_overflow = false;
        }
        if (unmask >= 0) {
            nvme_aer_unmask(n, unmask);
        }
    }
    return status;
}

/*
 * ---- queues ----
 *
 * Create I/O Completion / Submission Queue (NVMe 1.4 5.3, 5.4): queue
 * identifiers from 1 to the number allocated, sizes from 2 to CAP.MQES + 1
 * (4.1.3), physically contiguous queues only (CAP.CQR is set, so PC
 * must be), page-aligned bases.  Delete I/O SQ / CQ
 * (5.6, 5.5): a CQ with SQs still on it is Invalid Queue Deletion.
 */

static uint16_t nvme_create_cq(NvmeCtrl *n, NvmeRequest *req)
{
    NvmeCmd *cmd = &req->cmd;
    uint16_t qid = cmd->cdw10 & 0xffff;
    uint32_t qsize = (cmd->cdw10 >> 16) + 1;
    uint16_t flags = cmd->cdw11 & 0xffff;
    uint16_t iv = cmd->cdw11 >> 16;
    uint64_t prp1 = cmd->dptr.prp1;
    unsigned nvec;

    if (qid == 0 || qid > n->max_ioqpairs || n->cq[qid]) {
        trace_nvme_err_create_cq(nvme_id(n), qid, "invalid queue id");
        return NVME_ERR(NVME_INVALID_QID);
    }
    if (qsize < 2 || qsize > (uint32_t)n->mqes + 1) {
        trace_nvme_err_create_cq(nvme_id(n), qid, "invalid queue size");
        return NVME_ERR(NVME_MAX_QSIZE_EXCEEDED);
    }
    if (!(flags & NVME_CQ_FLAGS_PC)) {
        trace_nvme_err_create_cq(nvme_id(n), qid, "not contiguous");
        return NVME_ERR(NVME_INVALID_FIELD);
    }
    if (!prp1 || (prp1 & (n->page_size - 1))) {
        trace_nvme_err_create_cq(nvme_id(n), qid, "base not page aligned");
        return NVME_ERR(NVME_INVALID_FIELD);
    }
    /*
     * Pin-based interrupts have one vector; MSI-X has the table's.  A
     * queue without interrupts (a polled queue) may name any vector.
     */
    nvec = n->pdev.irq_mode == PCI_IRQ_INTX ? 1 : n->nr_vectors;
    if ((flags & NVME_CQ_FLAGS_IEN) && iv >= nvec) {
        trace_nvme_err_create_cq(nvme_id(n), qid, "invalid vector");
        return NVME_ERR(NVME_INVALID_IRQ_VECTOR);
    }
    nvme_cq_new(n, qid, prp1, qsize, iv, flags & NVME_CQ_FLAGS_IEN);
    return NVME_SUCCESS;
}

static uint16_t nvme_create_sq(NvmeCtrl *n, NvmeRequest *req)
{
    NvmeCmd *cmd = &req->cmd;
    uint16_t qid = cmd->cdw10 & 0xffff;
    uint32_t qsize = (cmd->cdw10 >> 16) + 1;
    uint16_t flags = cmd->cdw11 & 0xffff;
    uint16_t cqid = cmd->cdw11 >> 16;
    uint64_t prp1 = cmd->dptr.prp1;

    if (qid == 0 || qid > n->max_ioqpairs || n->sq[qid]) {
        trace_nvme_err_create_sq(nvme_id(n), qid, "invalid queue id");
        return NVME_ERR(NVME_INVALID_QID);
    }
    if (cqid == 0 || cqid > n->max_ioqpairs || !n->cq[cqid]) {
        trace_nvme_err_create_sq(nvme_id(n), qid, "no such CQ");
        return NVME_ERR(NVME_INVALID_CQID);
    }
    if (qsize < 2 || qsize > (uint32_t)n->mqes + 1) {
        trace_nvme_err_create_sq(nvme_id(n), qid, "invalid queue size");
        return NVME_ERR(NVME_MAX_QSIZE_EXCEEDED);
    }
    if (!(flags & NVME_SQ_FLAGS_PC)) {
        trace_nvme_err_create_sq(nvme_id(n), qid, "not contiguous");
        return NVME_ERR(NVME_INVALID_FIELD);
    }
    if (!prp1 || (prp1 & (n->page_size - 1))) {
        trace_nvme_err_create_sq(nvme_id(n), qid, "base not page aligned");
        return NVME_ERR(NVME_INVALID_FIELD);
    }
    nvme_sq_new(n, qid, cqid, prp1, qsize);
    return NVME_SUCCESS;
}

static uint16_t nvme_delete_sq(NvmeCtrl *n, NvmeRequest *req)
{
    uint16_t qid = req->cmd.cdw10 & 0xffff;
    NvmeSQueue *sq = qid && qid < NVME_MAX_QUEUES ? n->sq[qid] : NULL;

    if (!sq || sq->deleting) {
        trace_nvme_err_delete_sq(nvme_id(n), qid);
        return NVME_ERR(NVME_INVALID_QID);
    }
    return nvme_sq_delete(n, sq, req);
}

static uint16_t nvme_delete_cq(NvmeCtrl *n, NvmeRequest *req)
{
    uint16_t qid = req->cmd.cdw10 & 0xffff;
    NvmeCQueue *cq = qid && qid < NVME_MAX_QUEUES ? n->cq[qid] : NULL;

    if (!cq) {
        trace_nvme_err_delete_cq(nvme_id(n), qid, "no such queue");
        return NVME_ERR(NVME_INVALID_QID);
    }
    if (cq->nr_sqs) {
        trace_nvme_err_delete_cq(nvme_id(n), qid, "SQs still attached");
        return NVME_ERR(NVME_INVALID_QUEUE_DEL);
    }
    nvme_cq_free(n, cq);
    return NVME_SUCCESS;
}

/* ---- features: Get Features (NVMe 1.4 5.13), Set Features (5.21) ---- */

void nvme_features_reset(NvmeCtrl *n)
{
    NvmeFeatures *f = &n->features;

    memset(f, 0, sizeof(*f));
    f->temp_over = NVME_TEMPERATURE_WARNING;
    f->temp_under = 0;
    f->vwc = true;
    f->ts_set_ns = clock_ns();
}

static uint64_t nvme_timestamp_ms(NvmeCtrl *n)
{
    NvmeFeatures *f = &n->features;

    return (f->ts_base_ms + (clock_ns() - f->ts_set_ns) / 1000000) &
           0xffffffffffffULL;
}

static uint16_t nvme_get_features(NvmeCtrl *n, NvmeRequest *req)
{
    NvmeCmd *cmd = &req->cmd;
    NvmeFeatures *f = &n->features;
    uint8_t fid = cmd->cdw10 & 0xff;
    unsigned sel = NVME_FEAT_GET_SEL(cmd->cdw10);
    bool dflt = sel == NVME_GETFEAT_SEL_DEFAULT ||
                sel == NVME_GETFEAT_SEL_SAVED;
    NvmeFeatures def;

    trace_nvme_get_features(nvme_id(n), fid, sel, cmd->cdw11);
    if (sel > NVME_GETFEAT_SEL_SUPPORTED) {
        trace_nvme_err_invalid_field(nvme_id(n), cmd->opcode,
                                     "get features select", sel);
        return NVME_ERR(NVME_INVALID_FIELD);
    }
    if (dflt) {
        /* Nothing is saveable: saved values are the defaults. */
        memset(&def, 0, sizeof(def));
        def.temp_over = NVME_TEMPERATURE_WARNING;
        def.vwc = true;
        f = &def;
    }
    switch (fid) {
    case NVME_FEAT_ARBITRATION:
        req->result = f->arbitration;
        break;
    case NVME_FEAT_POWER_MGMT:
        req->result = f->power_mgmt;
        break;
    case NVME_FEAT_TEMP_THRESHOLD:
        if (NVME_TEMP_TMPSEL(cmd->cdw11) != 0 ||
            NVME_TEMP_THSEL(cmd->cdw11) > NVME_TEMP_THSEL_UNDER) {
            trace_nvme_err_invalid_field(nvme_id(n), cmd->opcode,
                                         "temperature sensor", cmd->cdw11);
            return NVME_ERR(NVME_INVALID_FIELD);
        }
        req->result = NVME_TEMP_THSEL(cmd->cdw11) == NVME_TEMP_THSEL_OVER
                      ? f->temp_over : f->temp_under;
        break;
    case NVME_FEAT_ERROR_RECOVERY:
        req->result = f->err_rec;
        break;
    case NVME_FEAT_VOLATILE_WC:
        req->result = f->vwc ? 1 : 0;
        break;
    case NVME_FEAT_NUM_QUEUES:
        req->result = ((n->max_ioqpairs - 1) << 16) | (n->max_ioqpairs - 1);
        break;
    case NVME_FEAT_IRQ_COALESCING:
        req->result = f->irq_coalescing;
        break;
    case NVME_FEAT_IRQ_VECTOR_CONF: {
        uint16_t iv = NVME_IVC_IV(cmd->cdw11);

        if (iv >= n->nr_vectors) {
            trace_nvme_err_invalid_field(nvme_id(n), cmd->opcode,
                                         "interrupt vector", iv);
            return NVME_ERR(NVME_INVALID_FIELD);
        }
        req->result = iv | (f->ivc_cd[iv] ? NVME_IVC_CD : 0);
        break;
    }
    case NVME_FEAT_WRITE_ATOMICITY:
        req->result = f->write_atomicity;
        break;
    case NVME_FEAT_ASYNC_EVENT_CONF:
        req->result = f->aec;
        break;
    case NVME_FEAT_KEEP_ALIVE:
        req->result = f->kato;
        break;
    case NVME_FEAT_TIMESTAMP: {
        NvmeTimestamp ts = { 0 };
        uint64_t ms = dflt ? 0 : nvme_timestamp_ms(n);

        if (sel == NVME_GETFEAT_SEL_SUPPORTED) {
            break;
        }
        memcpy(ts.timestamp, &ms, sizeof(ts.timestamp));
        ts.attr = (f->ts_from_host ? NVME_TS_ORIGIN_HOST
                                   : NVME_TS_ORIGIN_ZERO)
                  << NVME_TS_ATTR_ORIGIN_SHIFT;
        return nvme_dma_to_guest(n, req, &ts, sizeof(ts));
    }
    case NVME_FEAT_HOST_ID:
    case NVME_FEAT_RESV_MASK:
    case NVME_FEAT_RESV_PERSIST:
        return nvme_resv_get_feature(n, req, sel);
    default:
        trace_nvme_err_invalid_feature(nvme_id(n), fid);
        return NVME_ERR(NVME_INVALID_FIELD);
    }
    if (sel == NVME_GETFEAT_SEL_SUPPORTED) {
        req->result = NVME_FEAT_CAP_CHANGE;
    }
    return NVME_SUCCESS;
}

static uint16_t nvme_set_temp_threshold(NvmeCtrl *n, NvmeRequest *req)
{
    uint32_t v = req->cmd.cdw11;

    if (NVME_TEMP_TMPSEL(v) != 0 ||
        NVME_TEMP_THSEL(v) > NVME_TEMP_THSEL_UNDER) {
        trace_nvme_err_invalid_field(nvme_id(n), req->cmd.opcode,
                                     "temperature sensor", v);
        return NVME_ERR(NVME_INVALID_FIELD);
    }
    if (NVME_TEMP_THSEL(v) == NVME_TEMP_THSEL_OVER) {
        n->features.temp_over = NVME_TEMP_TMPTH(v);
    } else {
        n->features.temp_under = NVME_TEMP_TMPTH(v);
    }
    nvme_check_temperature(n);
    return NVME_SUCCESS;
}

/*
 * Number of Queues (NVMe 1.4 5.21.1.7): 0xffff is not a valid count, and
 * only before any I/O queue exists; the answer is what we allocate.
 */
static uint16_t nvme_set_num_queues(NvmeCtrl *n, NvmeRequest *req)
{
    uint32_t v = req->cmd.cdw11;

    if ((v & 0xffff) == 0xffff || (v >> 16) == 0xffff) {
        trace_nvme_err_invalid_field(nvme_id(n), req->cmd.opcode,
                                     "number of queues", v);
        return NVME_ERR(NVME_INVALID_FIELD);
    }
    if (nvme_io_queues_exist(n)) {
        trace_nvme_err_invalid_field(nvme_id(n), req->cmd.opcode,
                                     "number of queues after creation", v);
        return NVME_ERR(NVME_CMD_SEQ_ERROR);
    }
    n->features.nr_queues_set = true;
    req->result = ((n->max_ioqpairs - 1) << 16) | (n->max_ioqpairs - 1);
    return NVME_SUCCESS;
}

/* The host's clock, in ms, from the data buffer. */
static uint16_t nvme_set_timestamp(NvmeCtrl *n, NvmeRequest *req)
{
    NvmeFeatures *f = &n->features;
    NvmeTimestamp ts;
    uint64_t ms = 0;
    uint16_t status = nvme_dma_from_guest(n, req, &ts, sizeof(ts));

    if (status != NVME_SUCCESS) {
        return status;
    }
    memcpy(&ms, ts.timestamp, sizeof(ts.timestamp));
    f->ts_base_ms = ms;
    f->ts_set_ns = clock_ns();
    f->ts_from_host = true;
    return NVME_SUCCESS;
}

static uint16_t nvme_set_features(NvmeCtrl *n, NvmeRequest *req)
{
    NvmeCmd *cmd = &req->cmd;
    NvmeFeatures *f = &n->features;
    uint8_t fid = cmd->cdw10 & 0xff;
    uint32_t v = cmd->cdw11;

    trace_nvme_set_features(nvme_id(n), fid, v);
    if (cmd->cdw10 & NVME_FEAT_SET_SV) {
        trace_nvme_err_invalid_field(nvme_id(n), cmd->opcode,
                                     "save", cmd->cdw10);
        return NVME_ERR(NVME_FID_NOT_SAVEABLE);
    }
    switch (fid) {
    case NVME_FEAT_ARBITRATION:
        f->arbitration = v & 0xffffff07;
        break;
    case NVME_FEAT_POWER_MGMT:
        if ((v & 0x1f) > 0) {
            /* NPSS is 0: power state 0 only. */
            trace_nvme_err_invalid_field(nvme_id(n), cmd->opcode,
                                         "power state", v & 0x1f);
            return NVME_ERR(NVME_INVALID_FIELD);
        }
        f->power_mgmt = v & 0xff;
        break;
    case NVME_FEAT_TEMP_THRESHOLD:
        return nvme_set_temp_threshold(n, req);
    case NVME_FEAT_ERROR_RECOVERY:
        if (v & NVME_ERR_REC_DULBE) {
            /* NSFEAT.DAE is clear: no deallocated block errors. */
            trace_nvme_err_invalid_field(nvme_id(n), cmd->opcode,
                                         "DULBE", v);
            return NVME_ERR(NVME_INVALID_FIELD);
        }
        f->err_rec = v & 0xffff;
        break;
    case NVME_FEAT_VOLATILE_WC:
        f->vwc = v & 1;
        break;
    case NVME_FEAT_NUM_QUEUES:
        return nvme_set_num_queues(n, req);
    case NVME_FEAT_IRQ_COALESCING:
        f->irq_coalescing = v & 0xffff;
        break;
    case NVME_FEAT_IRQ_VECTOR_CONF: {
        uint16_t iv = NVME_IVC_IV(v);

        if (iv >= n->nr_vectors) {
            trace_nvme_err_invalid_field(nvme_id(n), cmd->opcode,
                                         "interrupt vector", iv);
            return NVME_ERR(NVME_INVALID_FIELD);
        }
        f->ivc_cd[iv] = v & NVME_IVC_CD;
        break;
    }
    case NVME_FEAT_WRITE_ATOMICITY:
        f->write_atomicity = v & 1;
        break;
    case NVME_FEAT_ASYNC_EVENT_CONF:
        f->aec = v & (NVME_AEC_SMART_MASK | NVME_AEC_NS_ATTR);
        nvme_check_temperature(n);
        break;
    case NVME_FEAT_KEEP_ALIVE:
        f->kato = v;
        nvme_kato_restart(n);
        break;
    case NVME_FEAT_TIMESTAMP:
        return nvme_set_timestamp(n, req);
    case NVME_FEAT_HOST_ID:
    case NVME_FEAT_RESV_MASK:
    case NVME_FEAT_RESV_PERSIST:
        return nvme_resv_set_feature(n, req);
    default:
        trace_nvme_err_invalid_feature(nvme_id(n), fid);
        return NVME_ERR(NVME_INVALID_FIELD);
    }
    return NVME_SUCCESS;
}

/* ---- the rest ---- */

/* Doorbell Buffer Config (NVMe 1.4 5.10; how the host uses it: 7.13). */
static uint16_t nvme_dbbuf_config(NvmeCtrl *n, NvmeRequest *req)
{
    uint64_t dbs = req->cmd.dptr.prp1;
    uint64_t eis = req->cmd.dptr.prp2;

    if (!dbs || !eis || (dbs & (n->page_size - 1)) ||
        (eis & (n->page_size - 1))) {
        trace_nvme_err_invalid_field(nvme_id(n), req->cmd.opcode,
                                     "shadow doorbell buffers", dbs);
        return NVME_ERR(NVME_INVALID_FIELD);
    }
    trace_nvme_dbbuf_config(nvme_id(n), dbs, eis);
    n->dbbuf_dbs = dbs;
    n->dbbuf_eis = eis;
    n->dbbuf_enabled = true;
    for (unsigned i = 1; i < NVME_MAX_QUEUES; i++) {
        if (n->sq[i]) {
            n->sq[i]->db_addr = n->sq[i]->ei_addr = 0;
        }
        if (n->cq[i]) {
            n->cq[i]->db_addr = n->cq[i]->ei_addr = 0;
        }
        nvme_queue_set_shadow(n, i);
    }
    return NVME_SUCCESS;
}

uint16_t nvme_admin_cmd(NvmeCtrl *n, NvmeRequest *req)
{
    NvmeCmd *cmd = &req->cmd;

    trace_nvme_admin_cmd(nvme_id(n), cmd->cid, cmd->opcode, cmd->nsid,
                         cmd->cdw10);
    if (NVME_CMD_FUSE(cmd->flags)) {
        trace_nvme_err_invalid_field(nvme_id(n), cmd->opcode, "fused",
                                     cmd->flags);
        return NVME_ERR(NVME_INVALID_FIELD);
    }
    if (NVME_CMD_PSDT(cmd->flags) != NVME_PSDT_PRP) {
        /* SGLs are for NVM commands only on PCIe. */
        trace_nvme_err_invalid_field(nvme_id(n), cmd->opcode, "PSDT",
                                     cmd->flags);
        return NVME_ERR(NVME_INVALID_FIELD);
    }
    switch (cmd->opcode) {
    case NVME_ADM_CMD_DELETE_SQ:
        return nvme_delete_sq(n, req);
    case NVME_ADM_CMD_CREATE_SQ:
        return nvme_create_sq(n, req);
    case NVME_ADM_CMD_GET_LOG_PAGE:
        return nvme_get_log(n, req);
    case NVME_ADM_CMD_DELETE_CQ:
        return nvme_delete_cq(n, req);
    case NVME_ADM_CMD_CREATE_CQ:
        return nvme_create_cq(n, req);
    case NVME_ADM_CMD_IDENTIFY:
        return nvme_identify(n, req);
    case NVME_ADM_CMD_ABORT:
        /* Commands run to completion: report "not aborted". */
        req->result = NVME_ABORT_NOT_ABORTED;
        return NVME_SUCCESS;
    case NVME_ADM_CMD_SET_FEATURES:
        return nvme_set_features(n, req);
    case NVME_ADM_CMD_GET_FEATURES:
        return nvme_get_features(n, req);
    case NVME_ADM_CMD_ASYNC_EV_REQ:
        return nvme_aer(n, req);
    case NVME_ADM_CMD_KEEP_ALIVE:
        nvme_kato_restart(n);
        return NVME_SUCCESS;
    case NVME_ADM_CMD_DBBUF_CONFIG:
        return nvme_dbbuf_config(n, req);
    default:
        trace_nvme_err_invalid_opcode(nvme_id(n), 0, cmd->opcode);
        return NVME_ERR(NVME_INVALID_OPCODE);
    }
}
