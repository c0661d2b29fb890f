/*
 * libqos-style PCI helpers: what a guest driver does to a PCI function,
 * carried over a VfuClient the way a VMM would.
 *
 * - configuration space is region VFIO_PCI_CONFIG_REGION_INDEX (7);
 * - BARs are regions 0-5; their sizes come from GET_REGION_INFO (a VMM
 *   learns them there, not by sizing the BAR registers);
 * - qpci_bar_map() mmaps the sparse areas the server offers, and BAR
 *   accessors go through that mapping when the access lies inside one,
 *   through REGION_READ/REGION_WRITE otherwise;
 * - interrupts are eventfds wired with SET_IRQS; waiting for one keeps
 *   answering the server's DMA requests, so a device doing DMA through
 *   messages makes progress while the test waits.
 *
 * Accessors fail the test when the server returns an error; use the
 * VfuClient functions directly to check error replies.
 */
#ifndef LIBQOS_PCI_H
#define LIBQOS_PCI_H

#include "util/osdep.h"
#include "hw/pci/pci-regs.h"
#include "tests/qtest/libqos/vfu-client.h"

#define QPCI_NUM_REGIONS    VFIO_PCI_NUM_REGIONS
#define QPCI_MAX_VECTORS    64

/* How long qpci_*_wait() wait by default, and the "did not fire" window. */
#define QPCI_IRQ_TIMEOUT_MS     QOS_TIMEOUT_MS
#define QPCI_IRQ_QUIET_MS       200

typedef struct QPCIDevice QPCIDevice;

/*
 * Take over @c (already negotiated): reads DEVICE_GET_INFO and fails unless
 * the device is PCI.  @c stays owned by the caller.
 */
QPCIDevice *qpci_device_new(VfuClient *c);
/* Unmap BARs, close eventfds. */
void qpci_device_free(QPCIDevice *d);

VfuClient *qpci_client(QPCIDevice *d);
const VfuDeviceInfo *qpci_device_info(QPCIDevice *d);
/* Region info (fetched once; the fd stays owned by @d). */
const VfuRegion *qpci_region(QPCIDevice *d, unsigned index);

/* ---- configuration space ---- */

uint8_t qpci_config_readb(QPCIDevice *d, uint32_t off);
uint16_t qpci_config_readw(QPCIDevice *d, uint32_t off);
uint32_t qpci_config_readl(QPCIDevice *d, uint32_t off);
void qpci_config_writeb(QPCIDevice *d, uint32_t off, uint8_t v);
void qpci_config_writew(QPCIDevice *d, uint32_t off, uint16_t v);
void qpci_config_writel(QPCIDevice *d, uint32_t off, uint32_t v);

/*
 * Offset of the first capability @id after the one at @start (0: from the
 * beginning of the list), or 0.  Fails on a looping or out-of-range list.
 */
uint8_t qpci_find_capability(QPCIDevice *d, uint8_t id, uint8_t start);

/* Set PCI_COMMAND_MEMORY and PCI_COMMAND_MASTER (a driver's first step). */
void qpci_device_enable(QPCIDevice *d);

/* ---- BARs ---- */

uint64_t qpci_bar_size(QPCIDevice *d, unsigned bar);
/*
 * mmap every sparse area of @bar the server offers (or the whole BAR when
 * it reports MMAP without a sparse capability).  Returns the number of
 * areas mapped; 0 when it offers none.
 */
unsigned qpci_bar_map(QPCIDevice *d, unsigned bar);
/* Host pointer for [off, off + len) of a mapped area, or NULL. */
void *qpci_bar_ptr(QPCIDevice *d, unsigned bar, uint64_t off, uint64_t len);

void qpci_bar_read(QPCIDevice *d, unsigned bar, uint64_t off, void *buf,
                   uint32_t len);
void qpci_bar_write(QPCIDevice *d, unsigned bar, uint64_t off,
                    const void *buf, uint32_t len);
uint8_t qpci_bar_readb(QPCIDevice *d, unsigned bar, uint64_t off);
uint16_t qpci_bar_readw(QPCIDevice *d, unsigned bar, uint64_t off);
uint32_t qpci_bar_readl(QPCIDevice *d, unsigned bar, uint64_t off);
uint64_t qpci_bar_readq(QPCIDevice *d, unsigned bar, uint64_t off);
void qpci_bar_writeb(QPCIDevice *d, unsigned bar, uint64_t off, uint8_t v);
void qpci_bar_writew(QPCIDevice *d, unsigned bar, uint64_t off, uint16_t v);
void qpci_bar_writel(QPCIDevice *d, unsigned bar, uint64_t off, uint32_t v);
void qpci_bar_writeq(QPCIDevice *d, unsigned bar, uint64_t off, uint64_t v);
/* A posted (No_reply) 32-bit MMIO write, as QEMU sends them. */
void qpci_bar_writel_posted(QPCIDevice *d, unsigned bar, uint64_t off,
                            uint32_t v);

/*
 * Point @d at @c, another server of the same device (a migration's
 * destination): region info is asked again, mmap'd BAR areas are mapped
 * from @c at the same addresses, and the MSI-X / INTx eventfds are wired
 * there with SET_IRQS.  @c stays owned by the caller.
 */
void qpci_device_set_client(QPCIDevice *d, VfuClient *c);

/* ---- interrupts ---- */

/* Wire @nvec MSI-X vectors to fresh eventfds (SET_IRQS index 2). */
void qpci_msix_enable(QPCIDevice *d, unsigned nvec);
/* Unwire all MSI-X vectors (DATA_NONE, count 0). */
void qpci_msix_disable(QPCIDevice *d);
int qpci_msix_fd(QPCIDevice *d, unsigned vector);
/* SET_IRQS MASK / UNMASK for one MSI-X vector (DATA_NONE). */
void qpci_msix_mask(QPCIDevice *d, unsigned vector);
void qpci_msix_unmask(QPCIDevice *d, unsigned vector);
/* The vector's PBA bit, read from the BAR the MSI-X capability names. */
bool qpci_msix_pending(QPCIDevice *d, unsigned vector);

/* Wire INTx to a fresh eventfd (SET_IRQS index 0). */
void qpci_intx_enable(QPCIDevice *d);
int qpci_intx_fd(QPCIDevice *d);
void qpci_intx_mask(QPCIDevice *d);
void qpci_intx_unmask(QPCIDevice *d);

/*
 * Wait up to @timeout_ms for eventfd @fd, answering server requests
 * meanwhile; true (counter consumed) when it fired.
 */
bool qpci_eventfd_wait(QPCIDevice *d, int fd, int timeout_ms);
/* Consume any signal on @fd; true if there was one. */
bool qpci_eventfd_clear(int fd);

/* Fail unless the vector / INTx fires within QPCI_IRQ_TIMEOUT_MS. */
void qpci_msix_wait(QPCIDevice *d, unsigned vector);
void qpci_intx_wait(QPCIDevice *d);
/* Fail if the vector / INTx fires within QPCI_IRQ_QUIET_MS. */
void qpci_msix_assert_quiet(QPCIDevice *d, unsigned vector);
void qpci_intx_assert_quiet(QPCIDevice *d);

#endif
