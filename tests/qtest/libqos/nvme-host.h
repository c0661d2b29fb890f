/*
 * Hosts of an NVM subsystem: the fixture nvme-subsys-test and
 * nvme-resv-test share.  One daemon has subsystem "subsys0" with
 * controllers nvme0 and nvme1, each on a socket of its own
 * (<tmpdir>/nvme<i>.sock), and file nodes d0, d1 ... on images of the
 * test's; each host (a VM) is a client of one controller with guest RAM
 * and a QNvme driver of its own.
 *
 *     qnvme_subsys_images(p, 1, size);            // d0.img
 *     qnvme_subsys_configure(p, p, 1, false);     // then the namespaces
 *     iovd_proc_start(p);
 *     qnvme_host_open(&h, p, 0, 1);               // on nvme0
 *     ...
 *     qnvme_host_close(&h);
 */
#ifndef LIBQOS_NVME_HOST_H
#define LIBQOS_NVME_HOST_H

#include "tests/qtest/libqos/iovd-proc.h"
#include "tests/qtest/libqos/nvme.h"

#define QNVME_HOST_GM_SIZE      (16ULL << 20)

/* One VM: its client, its guest RAM, its driver. */
typedef struct QNvmeHost {
    VfuClient *c;
    VfuClient *old_c;           /* the migration source's */
    QPCIDevice *dev;
    GuestMem *gm;
    QNvme *q;
} QNvmeHost;

/*
 * Connect @h to @p's controller on nvme<@i>.sock and bring it up with
 * @nr_ioqs I/O queue pairs of 32 entries.
 */
void qnvme_host_open(QNvmeHost *h, IovdProc *p, unsigned i,
                     unsigned nr_ioqs);
/* Free all of @h (the migration source's client too) and zero it. */
void qnvme_host_close(QNvmeHost *h);
/*
 * Move @h's controller to the one on nvme<@i>.sock of @dst: @h then
 * drives it there, the source's client kept in @h->old_c.
 */
void qnvme_host_migrate(QNvmeHost *h, IovdProc *dst, unsigned i);

/* The images of the nodes: d0.img .. d<@n - 1>.img of @size in @p's. */
void qnvme_subsys_images(IovdProc *p, unsigned n, uint64_t size);
/*
 * The subsystem on @p's command line: -blockdev file nodes d0 ..
 * d<@ndrives - 1> on the images d<n>.img in @images's directory (the
 * source's, for a migration destination on the same images),
 * nvme-subsys "subsys0", controllers nvme0 and nvme1 (serials SER0,
 * SER1), with @iothreads each on an iothread of its own (vm0, vm1).
 * The namespaces are the test's to add.
 */
void qnvme_subsys_configure(IovdProc *p, IovdProc *images, unsigned ndrives,
                            bool iothreads);

#endif
