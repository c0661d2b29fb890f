/*
 * The vfio-user transport, as the rest of iovd sees it: it attaches a
 * server to every PCI device (through hw/core's transport hooks) and
 * answers the monitor's questions.  Only hw/vfio-user/ speaks the
 * protocol; devices reach it through hw/pci's PCITransportOps.
 */
#ifndef HW_VFIO_USER_VFIO_USER_H
#define HW_VFIO_USER_VFIO_USER_H

#include "util/osdep.h"

#define VFU_NUM_IRQS    5                       /* INTX MSI MSIX ERR REQ */

/* Register the transport with hw/core (call once at startup). */
void vfu_transport_init(void);

/* Activation fds (LISTEN_FDS): read at startup; how many no device took. */
void vfu_activation_init(void);
unsigned vfu_activation_unused(void);

/* What query-vfio-user reports of one server (a snapshot). */
typedef struct VfuServerInfo {
    const char *id;             /* the device's */
    const char *driver;
    char *socket;               /* NULL for an inherited fd */
    bool listening, connected, negotiated;
    unsigned minor;
    char *caps_json;            /* the client's VERSION data, or NULL */
    unsigned dma_regions;
    uint64_t dma_bytes;
    unsigned irqs[VFU_NUM_IRQS];    /* eventfds wired per index */
    uint64_t messages, errors, clients;
} VfuServerInfo;

/*
 * Call @fn with a snapshot of every server, each taken on its device's
 * loop.  Main thread only.
 */
void vfu_query_servers(void (*fn)(const VfuServerInfo *info, void *opaque),
                       void *opaque);

#endif
