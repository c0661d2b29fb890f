/*
 * pci-testdev register map: a small device that exercises the PCI core and
 * the transport end to end.  Shared by the device and the tests.
 *
 * BAR0: 4 KiB of 32-bit registers below.
 * BAR1: 4 KiB, MSI-X table at 0, PBA at 0x800 (2 vectors).
 * BAR2: 64 KiB buffer memory; the first 32 KiB is an mmap-able sparse area,
 *       the rest is reached through region messages only.
 *
 * DMA: write DMA_ADDR_LO/HI (guest address), DMA_LEN, DMA_BUF_OFF (offset in
 * BAR2) and DMA_DIR, then DMA_START = 1.  The copy runs after the MMIO write
 * returns; on completion INT_STATUS.DMA_DONE (or DMA_ERROR, with DMA_STATUS
 * holding a positive errno) is set and vector 0 (or INTx) is raised.
 * INT_RAISE sets INT_STATUS.SOFT and raises vector (value & 1).  INT_ACK
 * clears the INT_STATUS bits written as 1; INTx is asserted while
 * INT_STATUS & INT_MASK is non-zero.
 */
#ifndef HW_MISC_PCI_TESTDEV_REGS_H
#define HW_MISC_PCI_TESTDEV_REGS_H

#define TESTDEV_VENDOR_ID       0x1b36      /* Red Hat's virtual device ids */
#define TESTDEV_DEVICE_ID       0x0005      /* "pci-testdev" */
#define TESTDEV_CLASS           0x00ff00    /* unclassified device */

#define TESTDEV_BAR_REGS        0
#define TESTDEV_BAR_MSIX        1
#define TESTDEV_BAR_MEM         2
#define TESTDEV_REGS_SIZE       0x1000
#define TESTDEV_MSIX_SIZE       0x1000
#define TESTDEV_MSIX_PBA_OFF    0x800
#define TESTDEV_MSIX_VECTORS    2
#define TESTDEV_MEM_SIZE        0x10000
#define TESTDEV_MEM_MMAP_SIZE   0x8000

#define TESTDEV_REG_ID          0x00        /* RO: TESTDEV_ID_VALUE */
#define TESTDEV_REG_SCRATCH     0x04        /* RW */
#define TESTDEV_REG_DMA_ADDR_LO 0x08
#define TESTDEV_REG_DMA_ADDR_HI 0x0c
#define TESTDEV_REG_DMA_LEN     0x10        /* <= TESTDEV_MEM_SIZE */
#define TESTDEV_REG_DMA_DIR     0x14
#define  TESTDEV_DMA_TO_DEVICE  0           /* guest memory -> BAR2 */
#define  TESTDEV_DMA_FROM_DEVICE 1          /* BAR2 -> guest memory */
#define TESTDEV_REG_DMA_BUF_OFF 0x18
#define TESTDEV_REG_DMA_START   0x1c        /* W: 1 starts; R: 1 while busy */
#define TESTDEV_REG_INT_STATUS  0x20        /* RO */
#define  TESTDEV_INT_DMA_DONE   (1u << 0)
#define  TESTDEV_INT_DMA_ERROR  (1u << 1)
#define  TESTDEV_INT_SOFT       (1u << 2)
#define TESTDEV_REG_INT_ACK     0x24        /* W1C of INT_STATUS */
#define TESTDEV_REG_INT_RAISE   0x28        /* W: vector number */
#define TESTDEV_REG_DMA_STATUS  0x2c        /* RO: 0 or errno of last DMA */
#define TESTDEV_REG_DMA_COUNT   0x30        /* RO: DMAs completed */
#define TESTDEV_REG_INT_MASK    0x34        /* RW, reset 0x7 */
#define TESTDEV_REG_REG64       0x38        /* RW 64-bit scratch */

#define TESTDEV_ID_VALUE        0x10ed7e57

#endif
