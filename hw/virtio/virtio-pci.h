/*
 * The modern virtio-pci transport: one 64-bit memory BAR holding the
 * common configuration, ISR, device configuration and notification
 * structures (one page each), the MSI-X table and PBA in BAR1, and the
 * vendor-specific capabilities that point at them.  Drivers find the
 * structures through the capabilities; these constants are iovd's choice
 * of layout, not facts of the specification.
 */
#ifndef HW_VIRTIO_VIRTIO_PCI_H
#define HW_VIRTIO_VIRTIO_PCI_H

#include "hw/virtio/virtio.h"

#define VIRTIO_PCI_MSIX_BAR             1
#define VIRTIO_PCI_MODERN_BAR           4       /* 64-bit, prefetchable */
#define VIRTIO_PCI_MODERN_BAR_SIZE      0x4000
#define VIRTIO_PCI_REGION_SIZE          0x1000
#define VIRTIO_PCI_COMMON_OFFSET        0x0000
#define VIRTIO_PCI_ISR_OFFSET           0x1000
#define VIRTIO_PCI_DEVICE_OFFSET        0x2000
#define VIRTIO_PCI_NOTIFY_OFFSET        0x3000
/* queue_notify_off is the queue index; its address is index * 4. */
#define VIRTIO_PCI_NOTIFY_MULTIPLIER    4
/* Subsystem: QEMU's (0x1af4:0x1100), >= 0x40 as non-transitional wants. */
#define VIRTIO_PCI_SUBSYSTEM_ID         0x1100

/*
 * Build the PCI function of @vdev (after virtio_init and the queues): IDs,
 * BARs, MSI-X with one vector per queue plus one for configuration
 * changes, PM and PCI Express capabilities, and the virtio capabilities.
 */
bool virtio_pci_realize(VirtIODevice *vdev, GError **errp);
void virtio_pci_unrealize(VirtIODevice *vdev);

/*
 * Send an interrupt: MSI-X @vector when the client wired MSI-X (nothing
 * for VIRTIO_MSI_NO_VECTOR), otherwise INTx at the level of the ISR.
 */
void virtio_pci_raise_irq(VirtIODevice *vdev, uint16_t vector);
/* Deassert INTx (after an ISR read or a reset). */
void virtio_pci_lower_intx(VirtIODevice *vdev);

/*
 * The transport's registers in a device state stream (section
 * "virtio-pci"): feature selects, queue_select, the MSI-X vectors of the
 * configuration and of each queue, and the ISR.  Loading reads and checks
 * them into @st (queue_vectors: vdev->nvqs entries, the caller's);
 * applying cannot fail.
 */
typedef struct VirtIOPCIState {
    uint32_t dfselect, gfselect;
    uint16_t queue_select;
    uint16_t config_vector;
    uint16_t *queue_vectors;
    uint8_t isr;
} VirtIOPCIState;

void virtio_pci_save_state(VirtIODevice *vdev, StateWriter *w);
bool virtio_pci_load_state(VirtIODevice *vdev, StateReader *r,
                           VirtIOPCIState *st, GError **errp);
void virtio_pci_apply_state(VirtIODevice *vdev, const VirtIOPCIState *st);

#endif
