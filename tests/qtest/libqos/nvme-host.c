/*
 * Hosts of an NVM subsystem (see nvme-host.h).
 */
#include "tests/qtest/libqos/nvme-host.h"
#include "tests/qtest/libqos/guest-mem.h"
#include "tests/qtest/libqos/migration.h"
#include "tests/qtest/libqos/pci.h"
#include "tests/qtest/libqos/vfu-client.h"

static char *ctrl_sock(IovdProc *p, unsigned i)
{
    g_autofree char *name = g_strdup_printf("nvme%u.sock", i);

    return iovd_proc_path(p, name);
}

void qnvme_host_open(QNvmeHost *h, IovdProc *p, unsigned i,
                     unsigned nr_ioqs)
{
    g_autofree char *sock = ctrl_sock(p, i);

    memset(h, 0, sizeof(*h));
    h->c = vfu_client_open(sock);
    h->dev = qpci_device_new(h->c);
    h->gm = guest_mem_new(GUEST_MEM_DEFAULT_BASE, QNVME_HOST_GM_SIZE);
    guest_mem_map_checked(h->gm, h->c, true);
    h->q = qnvme_new(h->dev, h->gm);
    qnvme_init(h->q, nr_ioqs, 32);
}

void qnvme_host_close(QNvmeHost *h)
{
    qnvme_free(h->q);
    qpci_device_free(h->dev);
    guest_mem_free(h->gm);
    vfu_client_free(h->c);
    vfu_client_free(h->old_c);
    memset(h, 0, sizeof(*h));
}

void qnvme_host_migrate(QNvmeHost *h, IovdProc *dst, unsigned i)
{
    g_autofree char *sock = ctrl_sock(dst, i);

    /* Closing the source's client is the source VMM going: at the end. */
    h->old_c = h->c;
    h->c = qmig_migrate(h->dev, h->gm, sock, NULL, NULL);
}

void qnvme_subsys_images(IovdProc *p, unsigned n, uint64_t size)
{
    for (unsigned i = 0; i < n; i++) {
        g_autofree char *name = g_strdup_printf("d%u.img", i);

        g_free(iovd_proc_image(p, name, size));
    }
}

void qnvme_subsys_configure(IovdProc *p, IovdProc *images, unsigned ndrives,
                            bool iothreads)
{
    for (unsigned i = 0; i < ndrives; i++) {
        g_autofree char *name = g_strdup_printf("d%u.img", i);
        g_autofree char *img = iovd_proc_path(images, name);

        iovd_proc_add_args(p, "-blockdev", NULL);
        iovd_proc_add_argf(p, "driver=file,node-name=d%u,filename=%s", i,
                           img);
    }
    iovd_proc_add_args(p, "-device", "nvme-subsys,id=subsys0", NULL);
    for (unsigned i = 0; i < 2; i++) {
        g_autofree char *sock = ctrl_sock(p, i);
        g_autofree char *iot = iothreads ?
            g_strdup_printf(",iothread=vm%u", i) : g_strdup("");

        if (iothreads) {
            iovd_proc_add_args(p, "-object", NULL);
            iovd_proc_add_argf(p, "iothread,id=vm%u", i);
        }
        iovd_proc_add_args(p, "-device", NULL);
        iovd_proc_add_argf(p, "nvme,id=nvme%u,subsys=subsys0,serial=SER%u,"
                           "socket=%s%s", i, i, sock, iot);
    }
}
