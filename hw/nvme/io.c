/*
 * NVM command set: Read, Write, Compare, Write Zeroes, Dataset Management
 * and Flush, and the mapping of a command's data pointer (PRP entries and
 * lists, SGL segments) into guest segments and then iovecs.
 *
 * Data normally moves zero-copy: iovecs point straight into guest memory
 * (pci_dma_iov), held with pci_dma_hold() until the block layer is done.
 * When guest memory is not directly mapped (a client that gave no fd), the
 * SQ's bounce buffer is used with pci_dma_read/write instead.
 */
#include "hw/nvme/nvme.h"
#include "hw/nvme/trace.h"

#define NVME_ERR(status) ((uint16_t)((status) | NVME_DNR))
/* Most PRP entries one command can need: MDTS in the smallest pages. */
#define NVME_MAX_PRP_ENTRIES (NVME_MDTS_BYTES / 4096 + 1)

_Static_assert(NVME_MAX_IOV * sizeof(struct iovec) >=
               NVME_DSM_MAX_RANGES * sizeof(NvmeDsmRange),
               "DSM ranges live in the request's iovec array");

/* ---- guest segments ---- */

static bool nvme_sg_add(NvmeSQueue *sq, uint64_t addr, uint32_t len,
                        bool bit_bucket)
{
    NvmeSg *last = sq->nsg ? &sq->sg[sq->nsg - 1] : NULL;

    if (!len) {
        return true;
    }
    if (last && last->bit_bucket == bit_bucket &&
        (bit_bucket || last->addr + last->len == addr) &&
        last->len + (uint64_t)len <= UINT32_MAX) {
        last->len += len;
        return true;
    }
    if (sq->nsg == NVME_MAX_SG) {
        return false;
    }
    sq->sg[sq->nsg].addr = addr;
    sq->sg[sq->nsg].len = len;
    sq->sg[sq->nsg].bit_bucket = bit_bucket;
    sq->nsg++;
    return true;
}

/*
 * PRP1 and PRP2, PRP2 a list pointer when the data spans more than two
 * pages; list entries are page aligned and a list's last entry chains to
 * the next list (NVMe 1.4 4.3).
 */
static uint16_t nvme_map_prp(NvmeCtrl *n, NvmeSQueue *sq, uint64_t prp1,
                             uint64_t prp2, uint32_t len)
{
    uint64_t page = n->page_size;
    uint64_t mask = page - 1;
    uint32_t first = MIN((uint64_t)len, page - (prp1 & mask));
    uint64_t list;

    nvme_sg_add(sq, prp1, first, false);
    len -= first;
    if (!len) {
        return NVME_SUCCESS;
    }
    if (len <= page) {
        if (prp2 & mask) {
            trace_nvme_err_prp(nvme_id(n), "PRP2 offset", prp2);
            return NVME_ERR(NVME_INVALID_PRP_OFFSET);
        }
        nvme_sg_add(sq, prp2, len, false);
        return NVME_SUCCESS;
    }
    /* PRP2 points to a list; its last entry may chain to the next page. */
    list = prp2;
    if (list & 7) {
        trace_nvme_err_prp(nvme_id(n), "PRP list alignment", list);
        return NVME_ERR(NVME_INVALID_PRP_OFFSET);
    }
    while (len) {
        uint64_t ents[NVME_MAX_PRP_ENTRIES];
        uint32_t in_page = (page - (list & mask)) / 8;
        uint32_t needed = DIV_ROUND_UP(len, page);
        uint32_t nread = MIN(needed, in_page);
        bool chain = needed > in_page;

        g_assert(nread <= ARRAY_SIZE(ents));
        if (pci_dma_read(&n->pdev, list, ents, nread * 8ULL)) {
            trace_nvme_err_prp(nvme_id(n), "PRP list unreadable", list);
            return NVME_ERR(NVME_DATA_TRANSFER_ERROR);
        }
        for (uint32_t i = 0; i < (chain ? nread - 1 : nread); i++) {
            uint32_t chunk = MIN((uint64_t)len, page);

            if (ents[i] & mask) {
                trace_nvme_err_prp(nvme_id(n), "PRP entry offset", ents[i]);
                return NVME_ERR(NVME_INVALID_PRP_OFFSET);
            }
            if (!nvme_sg_add(sq, ents[i], chunk, false)) {
                return NVME_ERR(NVME_INTERNAL_DEV_ERROR);
            }
            len -= chunk;
        }
        if (chain) {
            list = ents[nread - 1];
            if (list & mask) {
                trace_nvme_err_prp(nvme_id(n), "PRP list pointer", list);
                return NVME_ERR(NVME_INVALID_PRP_OFFSET);
            }
        }
    }
    return NVME_SUCCESS;
}

/* One Data Block or Bit Bucket descriptor (NVMe 1.4 4.4, SGL types). */
static uint16_t nvme_sgl_data(NvmeCtrl *n, NvmeSQueue *sq,
                              const NvmeSglDesc *d, uint32_t *remaining,
                              bool to_guest)
{
    unsigned type = NVME_SGL_TYPE(d->type);
    bool bucket = type == NVME_SGL_TYPE_BIT_BUCKET;

    if ((type != NVME_SGL_TYPE_DATA_BLOCK && !bucket) ||
        NVME_SGL_SUBTYPE(d->type) != NVME_SGL_SUBTYPE_ADDRESS) {
        trace_nvme_err_sgl(nvme_id(n), "descriptor type", d->type);
        return NVME_ERR(NVME_SGL_DESCR_TYPE_INVALID);
    }
    if (bucket && !to_guest) {
        /* A bit bucket only makes sense for data read from the device. */
        trace_nvme_err_sgl(nvme_id(n), "bit bucket in a write", d->type);
        return NVME_ERR(NVME_SGL_DESCR_TYPE_INVALID);
    }
    if (d->len > *remaining) {
        trace_nvme_err_sgl(nvme_id(n), "data longer than the command",
                           d->len);
        return NVME_ERR(NVME_DATA_SGL_LEN_INVALID);
    }
    if (!nvme_sg_add(sq, d->addr, d->len, bucket)) {
        trace_nvme_err_sgl(nvme_id(n), "too many descriptors", sq->nsg);
        return NVME_ERR(NVME_INVALID_NUM_SGL_DESCS);
    }
    *remaining -= d->len;
    return NVME_SUCCESS;
}

static uint16_t nvme_map_sgl(NvmeCtrl *n, NvmeSQueue *sq,
                             const NvmeSglDesc *first, uint32_t len,
                             bool to_guest)
{
    NvmeSglDesc cur = *first;
    uint32_t remaining = len;
    unsigned ndesc = 1;
    uint16_t st;

    for (;;) {
        unsigned type = NVME_SGL_TYPE(cur.type);
        bool last = type == NVME_SGL_TYPE_LAST_SEGMENT;
        NvmeSglDesc next;
        bool have_next = false;
        uint32_t count;

        if (type != NVME_SGL_TYPE_SEGMENT && !last) {
            st = nvme_sgl_data(n, sq, &cur, &remaining, to_guest);
            break;
        }
        if (NVME_SGL_SUBTYPE(cur.type) != NVME_SGL_SUBTYPE_ADDRESS) {
            trace_nvme_err_sgl(nvme_id(n), "segment subtype", cur.type);
            return NVME_ERR(NVME_SGL_DESCR_TYPE_INVALID);
        }
        if (cur.len == 0 || cur.len % sizeof(NvmeSglDesc)) {
            trace_nvme_err_sgl(nvme_id(n), "segment length", cur.len);
            return NVME_ERR(NVME_INVALID_SGL_SEG_DESC);
        }
        count = cur.len / sizeof(NvmeSglDesc);
        if (ndesc + count > NVME_MAX_SGL_DESCS) {
            trace_nvme_err_sgl(nvme_id(n), "too many descriptors", count);
            return NVME_ERR(NVME_INVALID_NUM_SGL_DESCS);
        }
        ndesc += count;
        for (uint32_t i = 0; i < count;) {
            NvmeSglDesc descs[32];
            uint32_t chunk = MIN(count - i, (uint32_t)ARRAY_SIZE(descs));

            if (pci_dma_read(&n->pdev, cur.addr + i * sizeof(NvmeSglDesc),
                             descs, chunk * sizeof(NvmeSglDesc))) {
                trace_nvme_err_sgl(nvme_id(n), "segment unreadable",
                                   cur.addr);
                return NVME_ERR(NVME_DATA_TRANSFER_ERROR);
            }
            for (uint32_t j = 0; j < chunk; j++, i++) {
                unsigned t = NVME_SGL_TYPE(descs[j].type);

                if (t == NVME_SGL_TYPE_SEGMENT ||
                    t == NVME_SGL_TYPE_LAST_SEGMENT) {
                    /* Only as the last entry of a non-last segment. */
                    if (last || i != count - 1) {
                        trace_nvme_err_sgl(nvme_id(n), "misplaced segment",
                                           i);
                        return NVME_ERR(NVME_INVALID_SGL_SEG_DESC);
                    }
                    next = descs[j];
                    have_next = true;
                    continue;
                }
                st = nvme_sgl_data(n, sq, &descs[j], &remaining, to_guest);
                if (st) {
                    return st;
                }
            }
        }
        if (!have_next) {
            st = NVME_SUCCESS;
            break;
        }
        cur = next;
    }
    if (st == NVME_SUCCESS && remaining) {
        trace_nvme_err_sgl(nvme_id(n), "data shorter than the command",
                           remaining);
        return NVME_ERR(NVME_DATA_SGL_LEN_INVALID);
    }
    return st;
}

/*
 * Turn the command's data pointer into guest segments (sq->sg) for @len
 * bytes.  @to_guest: the device writes guest memory (a read).
 */
uint16_t nvme_map_dptr(NvmeCtrl *n, NvmeRequest *req, uint64_t len,
                       bool to_guest)
{
    NvmeSQueue *sq = req->sq;
    NvmeCmd *cmd = &req->cmd;

    sq->nsg = 0;
    if (len > NVME_MDTS_BYTES) {
        trace_nvme_err_mdts(nvme_id(n), cmd->cid, len);
        return NVME_ERR(NVME_INVALID_FIELD);
    }
    if (!len) {
        return NVME_SUCCESS;
    }
    switch (NVME_CMD_PSDT(cmd->flags)) {
    case NVME_PSDT_PRP:
        return nvme_map_prp(n, sq, cmd->dptr.prp1, cmd->dptr.prp2, len);
    case NVME_PSDT_SGL_MPTR_CONTIG:
        return nvme_map_sgl(n, sq, &cmd->dptr.sgl, len, to_guest);
    default:
        trace_nvme_err_invalid_field(nvme_id(n), cmd->opcode, "PSDT",
                                     cmd->flags);
        return NVME_ERR(NVME_INVALID_FIELD);
    }
}

/* Copy between a host buffer and the command's data (admin commands). */
static uint16_t nvme_dma_copy(NvmeCtrl *n, NvmeRequest *req, uint8_t *buf,
                              uint64_t len, bool to_guest)
{
    NvmeSQueue *sq = req->sq;
    uint64_t off = 0;
    uint16_t st = nvme_map_dptr(n, req, len, to_guest);

    if (st) {
        return st;
    }
    for (unsigned i = 0; i < sq->nsg; i++) {
        NvmeSg *sg = &sq->sg[i];
        int r = 0;

        if (!sg->bit_bucket) {
            r = to_guest ? pci_dma_write(&n->pdev, sg->addr, buf + off,
                                         sg->len)
                         : pci_dma_read(&n->pdev, sg->addr, buf + off,
                                        sg->len);
        }
        if (r < 0) {
            trace_nvme_err_dma(nvme_id(n), req->cmd.cid, sg->addr, sg->len);
            return NVME_ERR(NVME_DATA_TRANSFER_ERROR);
        }
        off += sg->len;
    }
    return NVME_SUCCESS;
}

uint16_t nvme_dma_to_guest(NvmeCtrl *n, NvmeRequest *req, const void *buf,
                           uint64_t len)
{
    return nvme_dma_copy(n, req, (uint8_t *)buf, len, true);
}

uint16_t nvme_dma_from_guest(NvmeCtrl *n, NvmeRequest *req, void *buf,
                             uint64_t len)
{
    return nvme_dma_copy(n, req, buf, len, false);
}

/*
 * Map req->bytes of data for the block layer: iovecs into guest memory,
 * or the bounce buffer when that memory is not directly mapped.  Returns
 * NVME_NO_COMPLETE when the request now waits for the bounce buffer.
 */
static uint16_t nvme_map_data(NvmeCtrl *n, NvmeRequest *req, bool to_guest)
{
    NvmeSQueue *sq = req->sq;
    uint16_t st = nvme_map_dptr(n, req, req->bytes, to_guest);

    if (st) {
        return st;
    }
    req->niov = 0;
    for (unsigned i = 0; i < sq->nsg; i++) {
        NvmeSg *sg = &sq->sg[i];
        int r;

        if (sg->bit_bucket) {
            if (!n->bit_bucket) {
                n->bit_bucket = g_malloc(NVME_MDTS_BYTES);
            }
            if (req->niov == NVME_MAX_IOV) {
                return NVME_ERR(NVME_INVALID_NUM_SGL_DESCS);
            }
            req->iov[req->niov].iov_base = n->bit_bucket;
            req->iov[req->niov].iov_len = sg->len;
            req->niov++;
            continue;
        }
        r = pci_dma_iov(&n->pdev, sg->addr, sg->len, to_guest, req->iov,
                        NVME_MAX_IOV, &req->niov);
        if (r == -ENOSPC) {
            trace_nvme_err_sgl(nvme_id(n), "too many iovecs", sq->nsg);
            return NVME_ERR(NVME_INVALID_NUM_SGL_DESCS);
        }
        if (r < 0) {
            goto bounce;
        }
    }
    pci_dma_hold(&n->pdev);
    req->dma_held = true;
    req->data = NVME_DATA_IOV;
    return NVME_SUCCESS;

bounce:
    /* Not directly mapped: copy through the transport. */
    req->niov = 0;
    if (!nvme_bounce_get(req)) {
        return NVME_NO_COMPLETE;
    }
    req->data = NVME_DATA_BOUNCE;
    memcpy(sq->bounce_sg, sq->sg, sq->nsg * sizeof(NvmeSg));
    sq->bounce_nsg = sq->nsg;
    if (!to_guest) {
        uint64_t off = 0;

        for (unsigned i = 0; i < sq->nsg; i++) {
            if (pci_dma_read(&n->pdev, sq->sg[i].addr, sq->bounce + off,
                             sq->sg[i].len)) {
                trace_nvme_err_dma(nvme_id(n), req->cmd.cid, sq->sg[i].addr,
                                   sq->sg[i].len);
                nvme_bounce_put(req);
                req->data = NVME_DATA_NONE;
                return NVME_ERR(NVME_DATA_TRANSFER_ERROR);
            }
            off += sq->sg[i].len;
        }
    }
    req->iov[0].iov_base = sq->bounce;
    req->iov[0].iov_len = req->bytes;
    req->niov = 1;
    return NVME_SUCCESS;
}

/* Bounce path of a read: copy the data out to the guest's segments. */
static uint16_t nvme_bounce_to_guest(NvmeCtrl *n, NvmeRequest *req)
{
    NvmeSQueue *sq = req->sq;
    uint64_t off = 0;

    for (unsigned i = 0; i < sq->bounce_nsg; i++) {
        NvmeSg *sg = &sq->bounce_sg[i];

        if (!sg->bit_bucket &&
            pci_dma_write(&n->pdev, sg->addr, sq->bounce + off, sg->len)) {
            trace_nvme_err_dma(nvme_id(n), req->cmd.cid, sg->addr, sg->len);
            return NVME_ERR(NVME_DATA_TRANSFER_ERROR);
        }
        off += sg->len;
    }
    return NVME_SUCCESS;
}

/* Compare: the media data is in the bounce buffer; the guest's is read. */
static uint16_t nvme_compare_data(NvmeCtrl *n, NvmeRequest *req)
{
    NvmeSQueue *sq = req->sq;
    uint64_t off = 0;
    uint8_t chunk[4096];

    for (unsigned i = 0; i < sq->bounce_nsg; i++) {
        NvmeSg *sg = &sq->bounce_sg[i];

        for (uint32_t done = 0; done < sg->len;) {
            uint32_t len = MIN(sg->len - done, (uint32_t)sizeof(chunk));

            if (pci_dma_read(&n->pdev, sg->addr + done, chunk, len)) {
                trace_nvme_err_dma(nvme_id(n), req->cmd.cid, sg->addr,
                                   sg->len);
                return NVME_ERR(NVME_DATA_TRANSFER_ERROR);
            }
            if (memcmp(chunk, sq->bounce + off, len) != 0) {
                trace_nvme_compare_mismatch(nvme_id(n), req->cmd.cid,
                                            req->slba);
                return NVME_ERR(NVME_CMP_FAILURE);
            }
            done += len;
            off += len;
        }
    }
    return NVME_SUCCESS;
}

/* ---- completion ---- */

static uint16_t nvme_blk_status(NvmeRequest *req, int ret)
{
    uint8_t op = req->cmd.opcode;

    switch (ret) {
    case -EIO:
        req->sq->ctrl->media_errors++;
        if (op == NVME_CMD_READ || op == NVME_CMD_COMPARE) {
            return NVME_UNRECOVERED_READ;
        }
        if (op == NVME_CMD_WRITE || op == NVME_CMD_WRITE_ZEROES) {
            return NVME_WRITE_FAULT;
        }
        return NVME_INTERNAL_DEV_ERROR;
    case -ENOSPC:
        return NVME_ERR(NVME_CAP_EXCEEDED);
    case -EROFS:
        return NVME_ERR(NVME_NS_WRITE_PROTECTED);
    case -ERANGE:
        return NVME_ERR(NVME_LBA_RANGE);
    case -ECANCELED:
        return NVME_CMD_ABORT_REQ;
    default:
        return NVME_INTERNAL_DEV_ERROR;
    }
}

static void nvme_account(NvmeCtrl *n, NvmeRequest *req)
{
    switch (req->cmd.opcode) {
    case NVME_CMD_READ:
    case NVME_CMD_COMPARE:
        n->read_cmds++;
        n->bytes_read += req->bytes;
        break;
    case NVME_CMD_WRITE:
        n->write_cmds++;
        n->bytes_written += req->bytes;
        break;
    case NVME_CMD_WRITE_ZEROES:
        n->write_cmds++;
        break;
    }
}

/* @req left the block layer (completed, or its submission failed). */
static void nvme_blk_done(NvmeRequest *req)
{
    NvmeCtrl *n = req->sq->ctrl;

    g_assert(req->in_block && n->blk_inflight > 0);
    req->in_block = false;
    req->sq->blk_inflight--;
    pci_dma_release(&n->pdev);
    if (--n->blk_inflight == 0) {
        nvme_blk_idle(n);
    }
}

static void nvme_rw_cb(void *opaque, int ret)
{
    NvmeRequest *req = opaque;
    NvmeCtrl *n = req->sq->ctrl;

    nvme_blk_done(req);
    req->blk_ret = ret;
    if (ret < 0) {
        trace_nvme_blk_failed(nvme_id(n), req->cmd.cid, req->cmd.opcode, ret);
        req->status = nvme_blk_status(req, ret);
    }
    nvme_req_complete_later(req);
}

/* In the worker, after the block layer: finish a read, compare, account. */
void nvme_req_finish(NvmeCtrl *n, NvmeRequest *req)
{
    if (req->status == NVME_SUCCESS && req->blk_ret >= 0) {
        if (req->data == NVME_DATA_BOUNCE &&
            req->cmd.opcode == NVME_CMD_READ) {
            req->status = nvme_bounce_to_guest(n, req);
        } else if (req->cmd.opcode == NVME_CMD_COMPARE &&
                   req->data == NVME_DATA_BOUNCE) {
            req->status = nvme_compare_data(n, req);
        }
        if (req->status == NVME_SUCCESS) {
            nvme_account(n, req);
        }
    }
    if (req->data == NVME_DATA_BOUNCE) {
        nvme_bounce_put(req);
        req->data = NVME_DATA_NONE;
    }
}

/* About to hand @req to the block layer: a reset waits for it. */
static void nvme_blk_start(NvmeRequest *req)
{
    NvmeCtrl *n = req->sq->ctrl;

    req->in_block = true;
    req->blk_ret = 0;
    req->sq->blk_inflight++;
    n->blk_inflight++;
    pci_dma_hold(&n->pdev);
}

/*
 * A reset cancelled this work, or (from a completion of a multi-step
 * command) is under way: nothing new may go out.
 */
static bool nvme_submit_blocked(NvmeCtrl *n, NvmeRequest *req)
{
    if (!device_work_cancelled(&n->pdev.dev) && !nvme_resetting(n)) {
        return false;
    }
    nvme_req_unmap(req);
    return true;
}

static uint16_t nvme_blk_submit_failed(NvmeCtrl *n, NvmeRequest *req,
                                       int r)
{
    nvme_blk_done(req);
    nvme_req_unmap(req);
    trace_nvme_blk_failed(nvme_id(n), req->cmd.cid, req->cmd.opcode, r);
    return nvme_blk_status(req, r);
}

/* ---- commands ---- */

/* LBA Out of Range, a generic status of the NVM set (NVMe 1.4 4.6.1.2.1). */
static uint16_t nvme_check_range(NvmeCtrl *n, NvmeRequest *req,
                                 NvmeNamespace *ns, uint64_t slba,
                                 uint64_t nlb)
{
    if (!range_within(slba, nlb, ns->nsze)) {
        trace_nvme_err_lba_range(nvme_id(n), req->cmd.cid, slba, nlb,
                                 ns->nsze);
        return NVME_ERR(NVME_LBA_RANGE);
    }
    return NVME_SUCCESS;
}

static uint16_t nvme_rw(NvmeCtrl *n, NvmeRequest *req)
{
    NvmeCmd *cmd = &req->cmd;
    NvmeNamespace *ns = req->ns;
    uint8_t op = cmd->opcode;
    bool is_write = op == NVME_CMD_WRITE;
    uint64_t slba = cmd->cdw10 | ((uint64_t)cmd->cdw11 << 32);
    uint32_t nlb = NVME_RW_NLB(cmd->cdw12) + 1;
    uint64_t bytes = (uint64_t)nlb << ns->lba_shift;
    uint64_t offset;
    uint16_t st;
    int r;

    trace_nvme_rw(nvme_id(n), cmd->cid, op, ns->nsid, slba, nlb);
    req->slba = slba;           /* for the error log */
    req->nlb = nlb;
    if (bytes > NVME_MDTS_BYTES) {
        trace_nvme_err_mdts(nvme_id(n), cmd->cid, bytes);
        return NVME_ERR(NVME_INVALID_FIELD);
    }
    st = nvme_check_range(n, req, ns, slba, nlb);
    if (st) {
        return st;
    }
    if (is_write && ns->read_only) {
        trace_nvme_err_read_only(nvme_id(n), cmd->cid, ns->nsid);
        return NVME_ERR(NVME_NS_WRITE_PROTECTED);
    }
    req->bytes = bytes;
    offset = slba << ns->lba_shift;

    if (op == NVME_CMD_COMPARE) {
        /* Media data into the bounce buffer, compared on completion. */
        st = nvme_map_dptr(n, req, bytes, false);
        if (st) {
            return st;
        }
        if (!nvme_bounce_get(req)) {
            return NVME_NO_COMPLETE;
        }
        req->data = NVME_DATA_BOUNCE;
        memcpy(req->sq->bounce_sg, req->sq->sg,
               req->sq->nsg * sizeof(NvmeSg));
        req->sq->bounce_nsg = req->sq->nsg;
        req->iov[0].iov_base = req->sq->bounce;
        req->iov[0].iov_len = bytes;
        req->niov = 1;
    } else {
        st = nvme_map_data(n, req, !is_write);
        if (st) {
            return st;
        }
    }
    if (nvme_submit_blocked(n, req)) {
        return NVME_CMD_ABORT_REQ;
    }
    nvme_blk_start(req);
    if (is_write) {
        uint32_t flags = 0;

        if ((cmd->cdw12 & NVME_RW_FUA) || !n->features.vwc) {
            flags |= BLK_REQ_FUA;
        }
        r = blk_pwritev(ns->blk, &req->breq, offset, req->iov, req->niov,
                        flags, nvme_rw_cb, req);
    } else {
        r = blk_preadv(ns->blk, &req->breq, offset, req->iov, req->niov,
                       nvme_rw_cb, req);
    }
    if (r < 0) {
        return nvme_blk_submit_failed(n, req, r);
    }
    return NVME_NO_COMPLETE;
}

static uint16_t nvme_write_zeroes(NvmeCtrl *n, NvmeRequest *req)
{
    NvmeCmd *cmd = &req->cmd;
    NvmeNamespace *ns = req->ns;
    uint64_t slba = cmd->cdw10 | ((uint64_t)cmd->cdw11 << 32);
    uint32_t nlb = NVME_RW_NLB(cmd->cdw12) + 1;
    uint32_t flags = 0;
    uint16_t st;
    int r;

    trace_nvme_rw(nvme_id(n), cmd->cid, cmd->opcode, ns->nsid, slba, nlb);
    req->slba = slba;
    req->nlb = nlb;
    st = nvme_check_range(n, req, ns, slba, nlb);
    if (st) {
        return st;
    }
    if (ns->read_only) {
        trace_nvme_err_read_only(nvme_id(n), cmd->cid, ns->nsid);
        return NVME_ERR(NVME_NS_WRITE_PROTECTED);
    }
    if (cmd->cdw12 & NVME_RW_DEAC) {
        flags |= BLK_REQ_MAY_UNMAP;
    }
    if ((cmd->cdw12 & NVME_RW_FUA) || !n->features.vwc) {
        flags |= BLK_REQ_FUA;
    }
    if (nvme_submit_blocked(n, req)) {
        return NVME_CMD_ABORT_REQ;
    }
    nvme_blk_start(req);
    r = blk_pwrite_zeroes(ns->blk, &req->breq, slba << ns->lba_shift,
                          (uint64_t)nlb << ns->lba_shift, flags, nvme_rw_cb,
                          req);
    if (r < 0) {
        return nvme_blk_submit_failed(n, req, r);
    }
    return NVME_NO_COMPLETE;
}

/* Dataset Management: the ranges are discarded one after the other. */
static void nvme_dsm_cb(void *opaque, int ret);

static uint16_t nvme_dsm_step(NvmeCtrl *n, NvmeRequest *req)
{
    NvmeDsmRange *ranges = (NvmeDsmRange *)req->iov;
    NvmeNamespace *ns = req->ns;

    while (req->step < req->nsteps) {
        NvmeDsmRange *rg = &ranges[req->step++];
        int r;

        if (!rg->nlb) {
            continue;
        }
        if (nvme_submit_blocked(n, req)) {
            return NVME_CMD_ABORT_REQ;
        }
        nvme_blk_start(req);
        r = blk_pdiscard(ns->blk, &req->breq, rg->slba << ns->lba_shift,
                         (uint64_t)rg->nlb << ns->lba_shift, nvme_dsm_cb,
                         req);
        if (r == 0) {
            return NVME_NO_COMPLETE;
        }
        nvme_blk_done(req);
        if (r != -ENOTSUP && r != -EOPNOTSUPP) {
            trace_nvme_blk_failed(nvme_id(n), req->cmd.cid, req->cmd.opcode, r);
            return nvme_blk_status(req, r);
        }
    }
    return NVME_SUCCESS;
}

static void nvme_dsm_cb(void *opaque, int ret)
{
    NvmeRequest *req = opaque;
    NvmeCtrl *n = req->sq->ctrl;
    uint16_t st;

    nvme_blk_done(req);
    if (ret < 0 && ret != -ENOTSUP && ret != -EOPNOTSUPP) {
        /* Deallocation is advisory, but a failing backend is reported. */
        trace_nvme_blk_failed(nvme_id(n), req->cmd.cid, req->cmd.opcode, ret);
        st = nvme_blk_status(req, ret);
    } else {
        st = nvme_dsm_step(n, req);     /* the next range, or done */
    }
    if (st != NVME_NO_COMPLETE) {
        req->status = st;
        nvme_req_complete_later(req);
    }
}

static uint16_t nvme_dsm(NvmeCtrl *n, NvmeRequest *req)
{
    NvmeCmd *cmd = &req->cmd;
    NvmeNamespace *ns = req->ns;
    uint32_t nr = NVME_DSM_NR(cmd->cdw10) + 1;
    NvmeDsmRange *ranges = (NvmeDsmRange *)req->iov;
    uint16_t st;

    trace_nvme_dsm(nvme_id(n), cmd->cid, ns->nsid, nr, cmd->cdw11);
    if (!(cmd->cdw11 & NVME_DSM_AD)) {
        /* Only access hints: nothing to do. */
        return NVME_SUCCESS;
    }
    if (ns->read_only) {
        trace_nvme_err_read_only(nvme_id(n), cmd->cid, ns->nsid);
        return NVME_ERR(NVME_NS_WRITE_PROTECTED);
    }
    st = nvme_dma_from_guest(n, req, ranges, nr * sizeof(NvmeDsmRange));
    if (st) {
        return st;
    }
    for (uint32_t i = 0; i < nr; i++) {
        if (ranges[i].nlb) {
            st = nvme_check_range(n, req, ns, ranges[i].slba, ranges[i].nlb);
            if (st) {
                return st;
            }
        }
    }
    req->step = 0;
    req->nsteps = nr;
    return nvme_dsm_step(n, req);
}

/* Flush one namespace, or each in turn for the broadcast NSID. */
static void nvme_flush_cb(void *opaque, int ret);

static uint16_t nvme_flush_step(NvmeCtrl *n, NvmeRequest *req)
{
    for (;;) {
        NvmeNamespace *ns = NULL;
        int r;

        if (req->cmd.nsid != NVME_NSID_BROADCAST) {
            if (req->step++ == 0) {
                ns = req->ns;
            }
        } else {
            while (req->step < NVME_MAX_NAMESPACES && !ns) {
                ns = n->ns[++req->step];
            }
        }
        if (!ns) {
            return NVME_SUCCESS;
        }
        /* The broadcast flush skips what a reservation keeps from us. */
        if (ns->read_only || nvme_resv_check(n, ns, NVME_CMD_FLUSH)) {
            continue;
        }
        if (nvme_submit_blocked(n, req)) {
            return NVME_CMD_ABORT_REQ;
        }
        nvme_blk_start(req);
        r = blk_flush(ns->blk, &req->breq, nvme_flush_cb, req);
        if (r == 0) {
            return NVME_NO_COMPLETE;
        }
        return nvme_blk_submit_failed(n, req, r);
    }
}

static void nvme_flush_cb(void *opaque, int ret)
{
    NvmeRequest *req = opaque;
    NvmeCtrl *n = req->sq->ctrl;
    uint16_t st;

    nvme_blk_done(req);
    if (ret < 0) {
        trace_nvme_blk_failed(nvme_id(n), req->cmd.cid, req->cmd.opcode, ret);
        st = nvme_blk_status(req, ret);
    } else {
        st = nvme_flush_step(n, req);   /* the next namespace, or done */
    }
    if (st != NVME_NO_COMPLETE) {
        req->status = st;
        nvme_req_complete_later(req);
    }
}

uint16_t nvme_io_cmd(NvmeCtrl *n, NvmeRequest *req)
{
    NvmeCmd *cmd = &req->cmd;
    uint16_t st;

    switch (cmd->opcode) {
    case NVME_CMD_FLUSH:
    case NVME_CMD_WRITE:
    case NVME_CMD_READ:
    case NVME_CMD_COMPARE:
    case NVME_CMD_WRITE_ZEROES:
    case NVME_CMD_DSM:
    case NVME_CMD_RESV_REGISTER:
    case NVME_CMD_RESV_REPORT:
    case NVME_CMD_RESV_ACQUIRE:
    case NVME_CMD_RESV_RELEASE:
        break;
    default:
        trace_nvme_err_invalid_opcode(nvme_id(n), req->sq->sqid,
                                      cmd->opcode);
        return NVME_ERR(NVME_INVALID_OPCODE);
    }
    if (NVME_CMD_FUSE(cmd->flags)) {
        trace_nvme_err_invalid_field(nvme_id(n), cmd->opcode, "fused",
                                     cmd->flags);
        return NVME_ERR(NVME_INVALID_FIELD);
    }
    if (NVME_CMD_PSDT(cmd->flags) > NVME_PSDT_SGL_MPTR_CONTIG) {
        /* No SGL in MPTR (SGLS bit 19 clear); 11b is reserved. */
        trace_nvme_err_invalid_field(nvme_id(n), cmd->opcode, "PSDT",
                                     cmd->flags);
        return NVME_ERR(NVME_INVALID_FIELD);
    }
    if (cmd->opcode == NVME_CMD_FLUSH && cmd->nsid == NVME_NSID_BROADCAST) {
        req->step = 0;
        return nvme_flush_step(n, req);
    }
    req->ns = nvme_ns(n, cmd->nsid);
    if (!req->ns) {
        trace_nvme_err_invalid_ns(nvme_id(n), cmd->nsid);
        return NVME_ERR(NVME_INVALID_NSID);
    }
    st = nvme_resv_check(n, req->ns, cmd->opcode);
    if (st) {
        return st;
    }
    switch (cmd->opcode) {
    case NVME_CMD_RESV_REGISTER:
    case NVME_CMD_RESV_REPORT:
    case NVME_CMD_RESV_ACQUIRE:
    case NVME_CMD_RESV_RELEASE:
        return nvme_resv_cmd(n, req);
    case NVME_CMD_FLUSH:
        req->step = 0;
        return nvme_flush_step(n, req);
    case NVME_CMD_WRITE_ZEROES:
        return nvme_write_zeroes(n, req);
    case NVME_CMD_DSM:
        return nvme_dsm(n, req);
    default:
        return nvme_rw(n, req);
    }
}

/* The bounce buffer is free again: restart the oldest waiting command. */
void nvme_bounce_retry(NvmeSQueue *sq)
{
    NvmeCtrl *n = sq->ctrl;
    NvmeRequest *req = g_queue_pop_head_link(&sq->bounce_wait)->data;
    uint16_t st = nvme_io_cmd(n, req);

    if (st != NVME_NO_COMPLETE) {
        req->status = st;
        nvme_req_complete(req);
    }
}
