/*
 * virtio-blk requests for tests, on top of libqos/virtio.h.
 *
 *     QVirtioBlkReq r = { .type = VIRTIO_BLK_T_OUT, .sector = 8,
 *                         .data = buf, .len = 4096 };
 *     uint8_t status = qvirtio_blk_request(vq, &r);
 *
 * A request is a header (device-readable), the data split into
 * @data_segs buffers (device-readable for OUT, DISCARD and WRITE_ZEROES,
 * device-writable for IN and GET_ID) and the status byte, in guest memory
 * allocated per request and freed when it completes.
 */
#ifndef LIBQOS_VIRTIO_BLK_H
#define LIBQOS_VIRTIO_BLK_H

#include "tests/qtest/libqos/virtio.h"

typedef struct QVirtioBlkReq {
    uint32_t type;
    uint64_t sector;
    void *data;                 /* OUT: source; IN / GET_ID: destination */
    uint32_t len;
    unsigned data_segs;         /* 0 or 1: one buffer */
    bool indirect;

    /* Filled by qvirtio_blk_submit() / _finish(). */
    int id;
    uint64_t hdr_addr, data_addr, status_addr;
    uint32_t used_len;
    uint8_t status;
} QVirtioBlkReq;

/* True for request types whose data the device writes. */
bool qvirtio_blk_type_reads(uint32_t type);

/* Build, add and kick; returns the id (fails when the ring is full). */
int qvirtio_blk_submit(QVirtQueue *vq, QVirtioBlkReq *req);
/* Same without kicking; -ENOSPC when the ring is full. */
int qvirtio_blk_add(QVirtQueue *vq, QVirtioBlkReq *req);
/* Wait for it; copy data back; free guest memory; returns the status. */
uint8_t qvirtio_blk_finish(QVirtQueue *vq, QVirtioBlkReq *req);
/* Submit and finish. */
uint8_t qvirtio_blk_request(QVirtQueue *vq, QVirtioBlkReq *req);
/* A discard / write zeroes payload of one segment. */
void qvirtio_blk_dwz_seg(uint8_t *seg, uint64_t sector, uint32_t nsectors,
                         uint32_t flags);

#endif
