/*
 * PCI / PCI Express configuration space facts (PCI Local Bus 3.0, PCIe Base
 * 4.0, PCI PM 1.2).  Only what iovd uses.
 */
#ifndef HW_PCI_PCI_REGS_H
#define HW_PCI_PCI_REGS_H

#define PCI_CFG_SPACE_SIZE      256
#define PCIE_CFG_SPACE_SIZE     4096

#define PCI_VENDOR_ID           0x00
#define PCI_DEVICE_ID           0x02
#define PCI_COMMAND             0x04
#define  PCI_COMMAND_IO         0x0001
#define  PCI_COMMAND_MEMORY     0x0002
#define  PCI_COMMAND_MASTER     0x0004
#define  PCI_COMMAND_SERR       0x0100
#define  PCI_COMMAND_PARITY     0x0040
#define  PCI_COMMAND_INTX_DISABLE 0x0400
#define PCI_STATUS              0x06
#define  PCI_STATUS_INTERRUPT   0x0008
#define  PCI_STATUS_CAP_LIST    0x0010
#define  PCI_STATUS_W1C_MASK    0xf900  /* error bits, write 1 to clear */
#define PCI_REVISION_ID         0x08
#define PCI_CLASS_PROG          0x09
#define PCI_CLASS_DEVICE        0x0a
#define PCI_CACHE_LINE_SIZE     0x0c
#define PCI_LATENCY_TIMER       0x0d
#define PCI_HEADER_TYPE         0x0e
#define PCI_BASE_ADDRESS_0      0x10
#define  PCI_BASE_ADDRESS_SPACE_IO   0x01
#define  PCI_BASE_ADDRESS_MEM_TYPE_64 0x04
#define  PCI_BASE_ADDRESS_MEM_PREFETCH 0x08
#define PCI_SUBSYSTEM_VENDOR_ID 0x2c
#define PCI_SUBSYSTEM_ID        0x2e
#define PCI_ROM_ADDRESS         0x30
#define PCI_CAPABILITY_LIST     0x34
#define PCI_INTERRUPT_LINE      0x3c
#define PCI_INTERRUPT_PIN       0x3d

#define PCI_NUM_BARS            6
#define PCI_ROM_SLOT            6

/* Capability IDs. */
#define PCI_CAP_ID_PM           0x01
#define PCI_CAP_ID_MSI          0x05
#define PCI_CAP_ID_VNDR         0x09
#define PCI_CAP_ID_EXP          0x10
#define PCI_CAP_ID_MSIX         0x11

/* Power management capability. */
#define PCI_PM_PMC              2
#define PCI_PM_CTRL             4
#define  PCI_PM_CTRL_STATE_MASK 0x0003
#define  PCI_PM_CTRL_NO_SOFT_RESET 0x0008
#define  PCI_PM_CTRL_PME_STATUS 0x8000
#define PCI_PM_SIZEOF           8

/* MSI capability. */
#define PCI_MSI_FLAGS           2
#define  PCI_MSI_FLAGS_ENABLE   0x0001
#define  PCI_MSI_FLAGS_QMASK    0x000e
#define  PCI_MSI_FLAGS_QSIZE    0x0070
#define  PCI_MSI_FLAGS_64BIT    0x0080
#define  PCI_MSI_FLAGS_MASKBIT  0x0100

/* MSI-X capability. */
#define PCI_MSIX_FLAGS          2
#define  PCI_MSIX_FLAGS_QSIZE   0x07ff
#define  PCI_MSIX_FLAGS_MASKALL 0x4000
#define  PCI_MSIX_FLAGS_ENABLE  0x8000
#define PCI_MSIX_TABLE          4
#define PCI_MSIX_PBA            8
#define  PCI_MSIX_BIR_MASK      0x7
#define PCI_MSIX_SIZEOF         12
#define PCI_MSIX_ENTRY_SIZE     16
#define  PCI_MSIX_ENTRY_ADDR_LO 0
#define  PCI_MSIX_ENTRY_ADDR_HI 4
#define  PCI_MSIX_ENTRY_DATA    8
#define  PCI_MSIX_ENTRY_CTRL    12
#define   PCI_MSIX_ENTRY_CTRL_MASKBIT 0x1

/* PCI Express capability (endpoint, version 2). */
#define PCI_EXP_FLAGS           2
#define  PCI_EXP_FLAGS_VER2     0x0002
#define  PCI_EXP_TYPE_ENDPOINT  0x0
#define PCI_EXP_DEVCAP          4
#define  PCI_EXP_DEVCAP_FLR     0x10000000
#define PCI_EXP_DEVCTL          8
#define  PCI_EXP_DEVCTL_BCR_FLR 0x8000
#define PCI_EXP_DEVSTA          10
#define PCI_EXP_LNKCAP          12
#define PCI_EXP_LNKCTL          16
#define PCI_EXP_LNKSTA          18
#define PCI_EXP_DEVCAP2         36
#define PCI_EXP_DEVCTL2         40
#define PCI_EXP_LNKCAP2         44
#define PCI_EXP_LNKCTL2         48
#define PCI_EXP_SIZEOF          60
#define PCI_EXT_CAP_START       0x100

#endif
