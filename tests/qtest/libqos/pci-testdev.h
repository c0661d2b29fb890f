/*
 * A guest driver for pci-testdev (hw/misc/pci-testdev-regs.h): register
 * access through BAR0 and its DMA engine.
 */
#ifndef LIBQOS_PCI_TESTDEV_H
#define LIBQOS_PCI_TESTDEV_H

#include "hw/misc/pci-testdev-regs.h"
#include "tests/qtest/libqos/pci.h"

uint32_t testdev_readl(QPCIDevice *d, uint32_t reg);
void testdev_writel(QPCIDevice *d, uint32_t reg, uint32_t v);

/*
 * Program a DMA of @len bytes between guest address @addr and BAR2 offset
 * @buf_off in direction @dir (TESTDEV_DMA_TO_DEVICE / _FROM_DEVICE) and
 * start it.  With @posted, the DMA_START write is posted (No_reply), as a
 * VMM sends MMIO writes.
 */
void testdev_dma_start(QPCIDevice *d, uint64_t addr, uint32_t len,
                       uint32_t buf_off, uint32_t dir, bool posted);
/*
 * Poll INT_STATUS (answering the server's DMA requests meanwhile) until
 * DMA_DONE or DMA_ERROR shows; returns INT_STATUS.  Fails after
 * QOS_TIMEOUT_MS.
 */
uint32_t testdev_dma_wait(QPCIDevice *d);
/* Start, wait, acknowledge; returns the INT_STATUS seen. */
uint32_t testdev_dma(QPCIDevice *d, uint64_t addr, uint32_t len,
                     uint32_t buf_off, uint32_t dir);

#endif
