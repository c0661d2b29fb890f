/*
 * virtio-blk requests for tests.
 */
#include "util/osdep.h"

#include "tests/qtest/libqos/virtio-blk.h"

bool qvirtio_blk_type_reads(uint32_t type)
{
    return type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
}

void qvirtio_blk_dwz_seg(uint8_t *seg, uint64_t sector, uint32_t nsectors,
                         uint32_t flags)
{
    stq_le_p(seg + VIRTIO_BLK_DWZ_SECTOR, sector);
    stl_le_p(seg + VIRTIO_BLK_DWZ_NUM_SECTORS, nsectors);
    stl_le_p(seg + VIRTIO_BLK_DWZ_FLAGS, flags);
}

int qvirtio_blk_add(QVirtQueue *vq, QVirtioBlkReq *req)
{
    GuestMem *gm = vq->vd->gm;
    bool dev_writes = qvirtio_blk_type_reads(req->type);
    unsigned segs = req->len ? MAX(req->data_segs, 1u) : 0;
    QVirtioBuf bufs[QVIRTIO_MAX_CHAIN];
    uint8_t hdr[VIRTIO_BLK_REQ_HDR_SIZE] = { 0 };
    unsigned n = 0;
    uint32_t off = 0;
    int id;

    qos_assert(segs + 2 <= QVIRTIO_MAX_CHAIN, "too many segments");
    stl_le_p(hdr + VIRTIO_BLK_REQ_TYPE, req->type);
    stq_le_p(hdr + VIRTIO_BLK_REQ_SECTOR, req->sector);
    req->hdr_addr = guest_alloc(gm, sizeof(hdr));
    guest_memwrite(gm, req->hdr_addr, hdr, sizeof(hdr));
    bufs[n++] = (QVirtioBuf) { req->hdr_addr, sizeof(hdr), false };
    req->data_addr = 0;
    if (req->len) {
        req->data_addr = guest_alloc(gm, req->len);
        if (dev_writes) {
            guest_memset(gm, req->data_addr, 0xa5, req->len);
        } else {
            guest_memwrite(gm, req->data_addr, req->data, req->len);
        }
        for (unsigned i = 0; i < segs; i++) {
            uint32_t l = req->len / segs + (i < req->len % segs ? 1 : 0);

            bufs[n++] = (QVirtioBuf) { req->data_addr + off, l, dev_writes };
            off += l;
        }
    }
    req->status_addr = guest_alloc(gm, 1);
    guest_writeb(gm, req->status_addr, 0xff);
    bufs[n++] = (QVirtioBuf) { req->status_addr, 1, true };
    id = qvirtqueue_add(vq, bufs, n, req->indirect);
    if (id < 0) {
        guest_free(gm, req->hdr_addr);
        if (req->data_addr) {
            guest_free(gm, req->data_addr);
        }
        guest_free(gm, req->status_addr);
    }
    req->id = id;
    return id;
}

int qvirtio_blk_submit(QVirtQueue *vq, QVirtioBlkReq *req)
{
    int id = qvirtio_blk_add(vq, req);

    qos_assert(id >= 0, "queue %u full", vq->index);
    qvirtqueue_kick(vq);
    return id;
}

uint8_t qvirtio_blk_finish(QVirtQueue *vq, QVirtioBlkReq *req)
{
    GuestMem *gm = vq->vd->gm;

    req->used_len = qvirtqueue_wait_used(vq, req->id);
    req->status = guest_readb(gm, req->status_addr);
    if (req->len && qvirtio_blk_type_reads(req->type)) {
        guest_memread(gm, req->data_addr, req->data, req->len);
    }
    guest_free(gm, req->hdr_addr);
    if (req->data_addr) {
        guest_free(gm, req->data_addr);
    }
    guest_free(gm, req->status_addr);
    return req->status;
}

uint8_t qvirtio_blk_request(QVirtQueue *vq, QVirtioBlkReq *req)
{
    qvirtio_blk_submit(vq, req);
    return qvirtio_blk_finish(vq, req);
}
