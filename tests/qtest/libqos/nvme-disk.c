/*
 * An NVMe disk for backend tests (see nvme-disk.h).
 */
#include "tests/qtest/libqos/nvme-disk.h"
#include "tests/qtest/libqos/guest-mem.h"
#include "tests/qtest/libqos/pci.h"
#include "tests/qtest/libqos/vfu-client.h"

#define DISK_GM_SIZE    (16ULL << 20)
#define DISK_BLK        512

void qnvme_disk_configure(IovdProc *proc, const char *blockdev)
{
    g_autofree char *sock = iovd_proc_path(proc, "nvme0.sock");
    g_autofree char *qmp = iovd_proc_path(proc, "qmp.sock");

    iovd_proc_add_args(proc, "-blockdev", blockdev, NULL);
    iovd_proc_add_args(proc, "-device", NULL);
    iovd_proc_add_argf(proc, "nvme,id=nvme0,drive=d0,socket=%s", sock);
    iovd_proc_add_args(proc, "-qmp", NULL);
    iovd_proc_add_argf(proc, "unix:%s,server=on,wait=off", qmp);
}

QNvmeDisk *qnvme_disk_start(IovdProc *proc, const char *blockdev)
{
    g_autofree char *sock = iovd_proc_path(proc, "nvme0.sock");
    g_autofree char *qmp = iovd_proc_path(proc, "qmp.sock");
    QNvmeDisk *d = g_new0(QNvmeDisk, 1);

    qnvme_disk_configure(proc, blockdev);
    iovd_proc_start(proc);
    d->qmp = qmp_client_open(qmp);
    d->c = vfu_client_open(sock);
    d->dev = qpci_device_new(d->c);
    d->gm = guest_mem_new(GUEST_MEM_DEFAULT_BASE, DISK_GM_SIZE);
    guest_mem_map_checked(d->gm, d->c, true);
    d->q = qnvme_new(d->dev, d->gm);
    qnvme_init(d->q, 1, 64);
    return d;
}

void qnvme_disk_free(QNvmeDisk *d)
{
    if (!d) {
        return;
    }
    qmp_client_free(d->qmp);
    qnvme_free(d->q);
    qpci_device_free(d->dev);
    vfu_client_free(d->c);
    guest_mem_free(d->gm);
    g_free(d);
}

static uint16_t disk_rw(QNvmeDisk *d, uint8_t opcode, uint64_t slba,
                        uint32_t nlb, void *buf)
{
    size_t len = (size_t)nlb * DISK_BLK;
    uint64_t g = guest_alloc_aligned(d->gm, len, 4096);
    uint16_t st;

    if (opcode == NVME_CMD_WRITE) {
        guest_memwrite(d->gm, g, buf, len);
    } else {
        guest_memset(d->gm, g, 0xee, len);
    }
    st = qnvme_rw(d->q, qnvme_ioq(d->q, 1), opcode, 1, slba, nlb, g);
    if (opcode == NVME_CMD_READ) {
        guest_memread(d->gm, g, buf, len);
    }
    guest_free(d->gm, g);
    return st;
}

uint16_t qnvme_disk_write(QNvmeDisk *d, uint64_t slba, uint32_t nlb,
                          const void *buf)
{
    return disk_rw(d, NVME_CMD_WRITE, slba, nlb, (void *)buf);
}

uint16_t qnvme_disk_read(QNvmeDisk *d, uint64_t slba, uint32_t nlb,
                         void *buf)
{
    return disk_rw(d, NVME_CMD_READ, slba, nlb, buf);
}
