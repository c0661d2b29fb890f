/*
 * An NVMe disk for backend tests: a daemon with controller "nvme0" on the
 * block node "d0" (any driver) and a monitor, brought up as Linux does
 * (one I/O queue pair of 64 entries), and whole-buffer reads and writes.
 *
 *     QNvmeDisk *d = qnvme_disk_start(proc, "driver=nbd,node-name=d0,...");
 *     ck_assert_int_eq(qnvme_disk_write(d, 0, 8, buf), NVME_SUCCESS);
 *     qnvme_disk_free(d);          // then stop the daemon
 */
#ifndef LIBQOS_NVME_DISK_H
#define LIBQOS_NVME_DISK_H

#include "tests/qtest/libqos/iovd-proc.h"
#include "tests/qtest/libqos/nvme.h"
#include "tests/qtest/libqos/qmp-client.h"

typedef struct QNvmeDisk {
    QmpClient *qmp;
    VfuClient *c;
    QPCIDevice *dev;
    GuestMem *gm;
    QNvme *q;
} QNvmeDisk;

/* Add -blockdev @blockdev, the controller and a monitor to @proc. */
void qnvme_disk_configure(IovdProc *proc, const char *blockdev);
/* That, then start @proc and bring the controller up. */
QNvmeDisk *qnvme_disk_start(IovdProc *proc, const char *blockdev);
void qnvme_disk_free(QNvmeDisk *d);         /* NULL is fine */
/* @nlb 512-byte blocks at @slba through I/O queue 1: the NVMe status. */
uint16_t qnvme_disk_write(QNvmeDisk *d, uint64_t slba, uint32_t nlb,
                          const void *buf);
uint16_t qnvme_disk_read(QNvmeDisk *d, uint64_t slba, uint32_t nlb,
                         void *buf);

#endif
