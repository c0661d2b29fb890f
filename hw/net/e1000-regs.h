/*
 * Intel 82540EM (8254x family) facts: PCI identity, register offsets and
 * bits, descriptor layouts, EEPROM map and the PHY's MII registers.
 *
 * Source: the PCI/PCI-X Family of Gigabit Ethernet Controllers Software
 * Developer's Manual (8254x), chapters 3 (receive and transmit
 * descriptors), 5 (EEPROM), 8 (registers) and 13 (registers by name).
 * Shared by the device (hw/net/e1000.c) and its tests.
 */
#ifndef HW_NET_E1000_REGS_H
#define HW_NET_E1000_REGS_H

/* ---- PCI identity ---- */

#define E1000_VENDOR_ID         0x8086
#define E1000_DEVICE_ID_82540EM 0x100e
#define E1000_CLASS_ETHERNET    0x020000
#define E1000_REVISION          0x03
#define E1000_SUBSYS_ID         0x001e

#define E1000_BAR_MMIO          0
#define E1000_BAR_IO            1
#define E1000_MMIO_SIZE         0x20000     /* 128 KiB register space */
#define E1000_IO_SIZE           0x40

/* I/O BAR: indirect access to the memory-mapped registers. */
#define E1000_IOADDR            0x00
#define E1000_IODATA            0x04

/* ---- register offsets (BAR0) ---- */

#define E1000_CTRL      0x00000     /* device control */
#define E1000_STATUS    0x00008     /* device status (RO) */
#define E1000_EECD      0x00010     /* EEPROM/flash control */
#define E1000_EERD      0x00014     /* EEPROM read */
#define E1000_CTRL_EXT  0x00018     /* extended device control */
#define E1000_FLA       0x0001c     /* flash access */
#define E1000_MDIC      0x00020     /* MDI control */
#define E1000_FCAL      0x00028     /* flow control address low */
#define E1000_FCAH      0x0002c     /* flow control address high */
#define E1000_FCT       0x00030     /* flow control type */
#define E1000_VET       0x00038     /* VLAN ether type */
#define E1000_ICR       0x000c0     /* interrupt cause read */
#define E1000_ITR       0x000c4     /* interrupt throttling */
#define E1000_ICS       0x000c8     /* interrupt cause set */
#define E1000_IMS       0x000d0     /* interrupt mask set/read */
#define E1000_IMC       0x000d8     /* interrupt mask clear */
#define E1000_RCTL      0x00100     /* receive control */
#define E1000_FCTTV     0x00170     /* flow control transmit timer value */
#define E1000_TXCW      0x00178     /* transmit configuration word */
#define E1000_RXCW      0x00180     /* receive configuration word */
#define E1000_TCTL      0x00400     /* transmit control */
#define E1000_TIPG      0x00410     /* transmit inter-packet gap */
#define E1000_AIT       0x00458     /* adaptive IFS throttle */
#define E1000_LEDCTL    0x00e00     /* LED control */
#define E1000_PBA       0x01000     /* packet buffer allocation */
#define E1000_FCRTL     0x02160     /* flow control RX threshold low */
#define E1000_FCRTH     0x02168     /* flow control RX threshold high */
#define E1000_RDFH      0x02410     /* RX data FIFO head */
#define E1000_RDFT      0x02418     /* RX data FIFO tail */
#define E1000_RDFHS     0x02420     /* RX data FIFO head saved */
#define E1000_RDFTS     0x02428     /* RX data FIFO tail saved */
#define E1000_RDFPC     0x02430     /* RX data FIFO packet count */
#define E1000_RDBAL     0x02800     /* RX descriptor base low */
#define E1000_RDBAH     0x02804     /* RX descriptor base high */
#define E1000_RDLEN     0x02808     /* RX descriptor ring length */
#define E1000_RDH       0x02810     /* RX descriptor head */
#define E1000_RDT       0x02818     /* RX descriptor tail */
#define E1000_RDTR      0x02820     /* RX delay timer */
#define E1000_RXDCTL    0x02828     /* RX descriptor control */
#define E1000_RADV      0x0282c     /* RX absolute interrupt delay */
#define E1000_RSRPD     0x02c00     /* RX small packet detect */
#define E1000_TXDMAC    0x03000     /* TX DMA control */
#define E1000_TDFH      0x03410     /* TX data FIFO head */
#define E1000_TDFT      0x03418     /* TX data FIFO tail */
#define E1000_TDFHS     0x03420     /* TX data FIFO head saved */
#define E1000_TDFTS     0x03428     /* TX data FIFO tail saved */
#define E1000_TDFPC     0x03430     /* TX data FIFO packet count */
#define E1000_TDBAL     0x03800     /* TX descriptor base low */
#define E1000_TDBAH     0x03804     /* TX descriptor base high */
#define E1000_TDLEN     0x03808     /* TX descriptor ring length */
#define E1000_TDH       0x03810     /* TX descriptor head */
#define E1000_TDT       0x03818     /* TX descriptor tail */
#define E1000_TIDV      0x03820     /* TX interrupt delay value */
#define E1000_TXDCTL    0x03828     /* TX descriptor control */
#define E1000_TADV      0x0382c     /* TX absolute interrupt delay */
#define E1000_TSPMT     0x03830     /* TCP segmentation pad and min threshold */

/* Statistics: 0x04000 - 0x040ff, all read-to-clear. */
#define E1000_CRCERRS   0x04000     /* CRC errors */
#define E1000_ALGNERRC  0x04004     /* alignment errors */
#define E1000_SYMERRS   0x04008     /* symbol errors */
#define E1000_RXERRC    0x0400c     /* receive errors */
#define E1000_MPC       0x04010     /* missed packets */
#define E1000_SCC       0x04014     /* single collisions */
#define E1000_ECOL      0x04018     /* excessive collisions */
#define E1000_MCC       0x0401c     /* multiple collisions */
#define E1000_LATECOL   0x04020     /* late collisions */
#define E1000_COLC      0x04028     /* collisions */
#define E1000_DC        0x04030     /* defers */
#define E1000_TNCRS     0x04034     /* transmit with no CRS */
#define E1000_SEC       0x04038     /* sequence errors */
#define E1000_CEXTERR   0x0403c     /* carrier extension errors */
#define E1000_RLEC      0x04040     /* receive length errors */
#define E1000_XONRXC    0x04048     /* XON received */
#define E1000_XONTXC    0x0404c     /* XON transmitted */
#define E1000_XOFFRXC   0x04050     /* XOFF received */
#define E1000_XOFFTXC   0x04054     /* XOFF transmitted */
#define E1000_FCRUC     0x04058     /* flow control receive unsupported */
#define E1000_PRC64     0x0405c     /* packets received, 64 bytes */
#define E1000_PRC127    0x04060     /* 65-127 */
#define E1000_PRC255    0x04064     /* 128-255 */
#define E1000_PRC511    0x04068     /* 256-511 */
#define E1000_PRC1023   0x0406c     /* 512-1023 */
#define E1000_PRC1522   0x04070     /* 1024-max */
#define E1000_GPRC      0x04074     /* good packets received */
#define E1000_BPRC      0x04078     /* broadcast packets received */
#define E1000_MPRC      0x0407c     /* multicast packets received */
#define E1000_GPTC      0x04080     /* good packets transmitted */
#define E1000_GORCL     0x04088     /* good octets received, low */
#define E1000_GORCH     0x0408c     /* good octets received, high */
#define E1000_GOTCL     0x04090     /* good octets transmitted, low */
#define E1000_GOTCH     0x04094     /* good octets transmitted, high */
#define E1000_RNBC      0x040a0     /* receive no buffers */
#define E1000_RUC       0x040a4     /* receive undersize */
#define E1000_RFC       0x040a8     /* receive fragments */
#define E1000_ROC       0x040ac     /* receive oversize */
#define E1000_RJC       0x040b0     /* receive jabber */
#define E1000_MGTPRC    0x040b4     /* management packets received */
#define E1000_MGTPDC    0x040b8     /* management packets dropped */
#define E1000_MGTPTC    0x040bc     /* management packets transmitted */
#define E1000_TORL      0x040c0     /* total octets received, low */
#define E1000_TORH      0x040c4     /* total octets received, high */
#define E1000_TOTL      0x040c8     /* total octets transmitted, low */
#define E1000_TOTH      0x040cc     /* total octets transmitted, high */
#define E1000_TPR       0x040d0     /* total packets received */
#define E1000_TPT       0x040d4     /* total packets transmitted */
#define E1000_PTC64     0x040d8     /* packets transmitted, 64 bytes */
#define E1000_PTC127    0x040dc     /* 65-127 */
#define E1000_PTC255    0x040e0     /* 128-255 */
#define E1000_PTC511    0x040e4     /* 256-511 */
#define E1000_PTC1023   0x040e8     /* 512-1023 */
#define E1000_PTC1522   0x040ec     /* 1024-max */
#define E1000_MPTC      0x040f0     /* multicast packets transmitted */
#define E1000_BPTC      0x040f4     /* broadcast packets transmitted */
#define E1000_TSCTC     0x040f8     /* TCP segmentation contexts sent */
#define E1000_TSCTFC    0x040fc     /* TCP segmentation context failures */
#define E1000_STATS_FIRST E1000_CRCERRS
#define E1000_STATS_LAST  E1000_TSCTFC

#define E1000_RXCSUM    0x05000     /* RX checksum control */
#define E1000_MTA       0x05200     /* multicast table array, 128 dwords */
#define E1000_MTA_COUNT 128
#define E1000_RA        0x05400     /* receive addresses: RAL/RAH pairs */
#define E1000_RA_COUNT  16
#define E1000_RAL(n)    (E1000_RA + 8 * (n))
#define E1000_RAH(n)    (E1000_RA + 8 * (n) + 4)
#define E1000_VFTA      0x05600     /* VLAN filter table array, 128 dwords */
#define E1000_VFTA_COUNT 128
#define E1000_WUC       0x05800     /* wake-up control */
#define E1000_WUFC      0x05808     /* wake-up filter control */
#define E1000_WUS       0x05810     /* wake-up status */
#define E1000_MANC      0x05820     /* management control */
#define E1000_IPAV      0x05838     /* IP address valid */
#define E1000_IP4AT     0x05840     /* IPv4 address table, 4 entries x 2 */
#define E1000_IP6AT     0x05880     /* IPv6 address table, 4 dwords */
#define E1000_WUPL      0x05900     /* wake-up packet length */
#define E1000_WUPM      0x05a00     /* wake-up packet memory, 32 dwords */
#define E1000_FFLT      0x05f00     /* flexible filter length table, 4 x 2 */

/* ---- CTRL ---- */

#define E1000_CTRL_FD           0x00000001  /* full duplex */
#define E1000_CTRL_LRST         0x00000008  /* link reset */
#define E1000_CTRL_ASDE         0x00000020  /* auto-speed detection */
#define E1000_CTRL_SLU          0x00000040  /* set link up */
#define E1000_CTRL_ILOS         0x00000080  /* invert loss of signal */
#define E1000_CTRL_SPD_1000     0x00000200  /* speed selection: 1000 */
#define E1000_CTRL_FRCSPD       0x00000800  /* force speed */
#define E1000_CTRL_FRCDPX       0x00001000  /* force duplex */
#define E1000_CTRL_SWDPIN0      0x00040000
#define E1000_CTRL_SWDPIN2      0x00100000
#define E1000_CTRL_RST          0x04000000  /* global reset, self-clearing */
#define E1000_CTRL_RFCE         0x08000000  /* receive flow control */
#define E1000_CTRL_TFCE         0x10000000  /* transmit flow control */
#define E1000_CTRL_VME          0x40000000  /* VLAN mode enable */
#define E1000_CTRL_PHY_RST      0x80000000  /* PHY reset */

/* ---- STATUS ---- */

#define E1000_STATUS_FD         0x00000001  /* full duplex */
#define E1000_STATUS_LU         0x00000002  /* link up */
#define E1000_STATUS_TXOFF      0x00000010
#define E1000_STATUS_SPEED_1000 0x00000080
#define E1000_STATUS_ASDV_1000  0x00000200  /* auto-speed detected 1000 */

/* ---- EECD: bit-banged Microwire EEPROM ---- */

#define E1000_EECD_SK           0x00000001  /* clock */
#define E1000_EECD_CS           0x00000002  /* chip select */
#define E1000_EECD_DI           0x00000004  /* data in (to the EEPROM) */
#define E1000_EECD_DO           0x00000008  /* data out (from it) */
#define E1000_EECD_FWE_MASK     0x00000030  /* flash write enable */
#define E1000_EECD_REQ          0x00000040  /* software requests access */
#define E1000_EECD_GNT          0x00000080  /* access granted */
#define E1000_EECD_PRES         0x00000100  /* EEPROM present */
#define E1000_EECD_SIZE         0x00000200  /* 0: 64 words (93C46) */

/*
 * Microwire (93C46, 64 x 16 bits): a start bit, a 2-bit opcode, 6 address
 * bits, then 16 data bits out (READ) or in (WRITE); MSB first, sampled on
 * the rising edge of SK.  READ answers a dummy 0 after the address.
 */
#define E1000_EEPROM_WORDS      64
#define E1000_EEPROM_ADDR_BITS  6
#define E1000_EEPROM_OP_READ    0x6         /* start bit + 10 */
#define E1000_EEPROM_OP_WRITE   0x5         /* start bit + 01 */
#define E1000_EEPROM_OP_ERASE   0x7         /* start bit + 11 */
#define E1000_EEPROM_OP_EXT     0x4         /* start bit + 00: EWEN/EWDS */
#define E1000_EEPROM_EXT_EWEN   0x3         /* top 2 address bits: 11 */
#define E1000_EEPROM_EXT_EWDS   0x0         /* top 2 address bits: 00 */

/* EERD: read a word without bit-banging. */
#define E1000_EERD_START        0x00000001
#define E1000_EERD_DONE         0x00000010
#define E1000_EERD_ADDR_SHIFT   8
#define E1000_EERD_ADDR_MASK    0x0000ff00
#define E1000_EERD_DATA_SHIFT   16

/* EEPROM word map (words 0x00 - 0x3f are checksummed). */
#define E1000_EEPROM_MAC0       0x00        /* Ethernet address, 3 words */
#define E1000_EEPROM_COMPAT     0x03
#define E1000_EEPROM_ID_LED     0x04        /* LED settings; 0xffff: default */
#define E1000_EEPROM_PBA0       0x08        /* printed board assembly number */
#define E1000_EEPROM_PBA1       0x09
#define E1000_EEPROM_INIT1      0x0a        /* initialization control 1 */
#define E1000_EEPROM_SUBSYS_ID  0x0b
#define E1000_EEPROM_SUBSYS_VID 0x0c
#define E1000_EEPROM_DEV_ID     0x0d
#define E1000_EEPROM_VENDOR_ID  0x0e
#define E1000_EEPROM_INIT2      0x0f        /* initialization control 2 */
#define E1000_EEPROM_CHECKSUM   0x3f
#define E1000_EEPROM_SUM        0xbaba      /* words 0..0x3f add up to this */

/* ---- CTRL_EXT ---- */

#define E1000_CTRL_EXT_EE_RST   0x00002000  /* reload the EEPROM */

/* ---- MDIC: PHY access ---- */

#define E1000_MDIC_DATA_MASK    0x0000ffff
#define E1000_MDIC_REG_SHIFT    16
#define E1000_MDIC_REG_MASK     0x001f0000
#define E1000_MDIC_PHY_SHIFT    21
#define E1000_MDIC_PHY_MASK     0x03e00000
#define E1000_MDIC_OP_WRITE     0x04000000
#define E1000_MDIC_OP_READ      0x08000000
#define E1000_MDIC_READY        0x10000000
#define E1000_MDIC_INT_EN       0x20000000
#define E1000_MDIC_ERROR        0x40000000
#define E1000_PHY_ADDR          1           /* the internal PHY */

/* ---- interrupt causes: ICR, ICS, IMS, IMC ---- */

#define E1000_ICR_TXDW          0x00000001  /* TX descriptor written back */
#define E1000_ICR_TXQE          0x00000002  /* TX queue empty */
#define E1000_ICR_LSC           0x00000004  /* link status change */
#define E1000_ICR_RXSEQ         0x00000008  /* RX sequence error */
#define E1000_ICR_RXDMT0        0x00000010  /* RX descriptors below minimum */
#define E1000_ICR_RXO           0x00000040  /* RX overrun */
#define E1000_ICR_RXT0          0x00000080  /* RX timer */
#define E1000_ICR_MDAC          0x00000200  /* MDI access complete */
#define E1000_ICR_RXCFG         0x00000400
#define E1000_ICR_GPI_EN0       0x00000800
#define E1000_ICR_GPI_EN1       0x00001000
#define E1000_ICR_GPI_EN2       0x00002000
#define E1000_ICR_GPI_EN3       0x00004000
#define E1000_ICR_TXD_LOW       0x00008000
#define E1000_ICR_SRPD          0x00010000
#define E1000_ICR_VALID_MASK    0x0001fedf  /* causes the 82540EM has */

/* ITR interval unit, RDTR/RADV/TIDV/TADV unit (nanoseconds). */
#define E1000_ITR_UNIT_NS       256
#define E1000_DELAY_UNIT_NS     1024
#define E1000_RDTR_FPD          0x80000000  /* flush partial descriptor */

/* ---- RCTL ---- */

#define E1000_RCTL_EN           0x00000002  /* receiver enable */
#define E1000_RCTL_SBP          0x00000004  /* store bad packets */
#define E1000_RCTL_UPE          0x00000008  /* unicast promiscuous */
#define E1000_RCTL_MPE          0x00000010  /* multicast promiscuous */
#define E1000_RCTL_LPE          0x00000020  /* long packets */
#define E1000_RCTL_LBM_MASK     0x000000c0  /* loopback mode */
#define E1000_RCTL_LBM_MAC      0x00000040  /* MAC loopback */
#define E1000_RCTL_RDMTS_SHIFT  8           /* free descriptor threshold */
#define E1000_RCTL_RDMTS_MASK   0x00000300  /* 0: 1/2, 1: 1/4, 2: 1/8 */
#define E1000_RCTL_MO_SHIFT     12          /* multicast offset */
#define E1000_RCTL_MO_MASK      0x00003000
#define E1000_RCTL_BAM          0x00008000  /* accept broadcast */
#define E1000_RCTL_BSIZE_SHIFT  16
#define E1000_RCTL_BSIZE_MASK   0x00030000
#define E1000_RCTL_VFE          0x00040000  /* VLAN filter enable */
#define E1000_RCTL_CFIEN        0x00080000  /* canonical form enable */
#define E1000_RCTL_CFI          0x00100000
#define E1000_RCTL_DPF          0x00400000  /* discard pause frames */
#define E1000_RCTL_PMCF         0x00800000  /* pass MAC control frames */
#define E1000_RCTL_BSEX         0x02000000  /* buffer size x16 */
#define E1000_RCTL_SECRC        0x04000000  /* strip Ethernet CRC */

/* Receive addresses: RAH. */
#define E1000_RAH_AV            0x80000000  /* address valid */
#define E1000_RAH_AS_MASK       0x00030000  /* address select */

/* RXCSUM */
#define E1000_RXCSUM_PCSS_MASK  0x000000ff  /* packet checksum start */
#define E1000_RXCSUM_IPOFL      0x00000100  /* IP checksum offload */
#define E1000_RXCSUM_TUOFL      0x00000200  /* TCP/UDP checksum offload */

/* ---- legacy receive descriptor (16 bytes) ---- */

#define E1000_RXD_SIZE          16
#define E1000_RXD_ADDR          0           /* u64 buffer address */
#define E1000_RXD_LENGTH        8           /* u16 bytes written */
#define E1000_RXD_CSUM          10          /* u16 packet checksum */
#define E1000_RXD_STATUS        12          /* u8 */
#define E1000_RXD_ERRORS        13          /* u8 */
#define E1000_RXD_SPECIAL       14          /* u16 VLAN tag */

#define E1000_RXD_STAT_DD       0x01        /* descriptor done */
#define E1000_RXD_STAT_EOP      0x02        /* end of packet */
#define E1000_RXD_STAT_IXSM     0x04        /* ignore checksum indications */
#define E1000_RXD_STAT_VP       0x08        /* 802.1Q tag stripped */
#define E1000_RXD_STAT_TCPCS    0x20        /* TCP/UDP checksum checked */
#define E1000_RXD_STAT_IPCS     0x40        /* IPv4 checksum checked */
#define E1000_RXD_STAT_PIF      0x80        /* passed in-exact filter */

#define E1000_RXD_ERR_CE        0x01        /* CRC or alignment error */
#define E1000_RXD_ERR_SE        0x02        /* symbol error */
#define E1000_RXD_ERR_SEQ       0x04        /* sequence error */
#define E1000_RXD_ERR_CXE       0x10        /* carrier extension error */
#define E1000_RXD_ERR_TCPE      0x20        /* TCP/UDP checksum error */
#define E1000_RXD_ERR_IPE       0x40        /* IPv4 checksum error */
#define E1000_RXD_ERR_RXE       0x80        /* RX data error */

/* ---- TCTL ---- */

#define E1000_TCTL_EN           0x00000002  /* transmitter enable */
#define E1000_TCTL_PSP          0x00000008  /* pad short packets */
#define E1000_TCTL_CT_MASK      0x00000ff0  /* collision threshold */
#define E1000_TCTL_COLD_MASK    0x003ff000  /* collision distance */

/* ---- transmit descriptors (16 bytes) ---- */

#define E1000_TXD_SIZE          16

/* Legacy: u64 addr; u16 length; u8 cso; u8 cmd; u8 status; u8 css;
 * u16 special. */
#define E1000_TXD_ADDR          0
#define E1000_TXD_LENGTH        8
#define E1000_TXD_CSO           10
#define E1000_TXD_CMD           11
#define E1000_TXD_STATUS        12
#define E1000_TXD_CSS           13
#define E1000_TXD_SPECIAL       14

/* Command byte (legacy and data descriptors). */
#define E1000_TXD_CMD_EOP       0x01        /* end of packet */
#define E1000_TXD_CMD_IFCS      0x02        /* insert FCS */
#define E1000_TXD_CMD_IC        0x04        /* legacy: insert checksum */
#define E1000_TXD_CMD_TSE       0x04        /* data: TCP segmentation */
#define E1000_TXD_CMD_RS        0x08        /* report status */
#define E1000_TXD_CMD_RPS       0x10        /* report packet sent */
#define E1000_TXD_CMD_DEXT      0x20        /* extended descriptor */
#define E1000_TXD_CMD_VLE       0x40        /* insert VLAN tag */
#define E1000_TXD_CMD_IDE       0x80        /* interrupt delay enable */

/* Status byte. */
#define E1000_TXD_STAT_DD       0x01        /* descriptor done */
#define E1000_TXD_STAT_EC       0x02        /* excess collisions */
#define E1000_TXD_STAT_LC       0x04        /* late collision */
#define E1000_TXD_STAT_TU       0x08        /* transmit underrun */

/* Extended descriptors: the dword at offset 8 holds length (20 bits),
 * DTYP (4 bits) and the command byte. */
#define E1000_TXD_DTYP_SHIFT    20
#define E1000_TXD_DTYP_MASK     0x00f00000
#define E1000_TXD_DTYP_CONTEXT  0x0
#define E1000_TXD_DTYP_DATA     0x1
#define E1000_TXD_LEN_MASK      0x000fffff

/* Context descriptor: u8 ipcss, ipcso; u16 ipcse; u8 tucss, tucso;
 * u16 tucse; u32 paylen/dtyp/tucmd; u8 status, hdrlen; u16 mss. */
#define E1000_CTXD_IPCSS        0
#define E1000_CTXD_IPCSO        1
#define E1000_CTXD_IPCSE        2
#define E1000_CTXD_TUCSS        4
#define E1000_CTXD_TUCSO        5
#define E1000_CTXD_TUCSE        6
#define E1000_CTXD_CMDLEN       8
#define E1000_CTXD_STATUS       12
#define E1000_CTXD_HDRLEN       13
#define E1000_CTXD_MSS          14

/* TUCMD (command byte of a context descriptor). */
#define E1000_TUCMD_TCP         0x01        /* 1: TCP, 0: UDP */
#define E1000_TUCMD_IP          0x02        /* 1: IPv4, 0: IPv6 */
#define E1000_TUCMD_TSE         0x04        /* TCP segmentation */

/* Data descriptor: u64 addr; u32 len/dtyp/dcmd; u8 status; u8 popts;
 * u16 special. */
#define E1000_DATD_POPTS        13
#define E1000_TXD_POPTS_IXSM    0x01        /* insert IP checksum */
#define E1000_TXD_POPTS_TXSM    0x02        /* insert TCP/UDP checksum */

/* Largest frame the 82540EM receives with RCTL.LPE (with CRC). */
#define E1000_MAX_FRAME_LPE     16384
/* Without LPE: a tagged standard frame with CRC. */
#define E1000_MAX_FRAME_STD     1522
#define E1000_MIN_FRAME         64          /* with CRC */
#define E1000_CRC_LEN           4

/* ---- PHY (M88E1011-compatible, MII registers) ---- */

#define E1000_PHY_CTRL          0x00
#define  E1000_PHY_CTRL_SPEED_MSB   0x0040  /* with LSB: 10 = 1000 Mb/s */
#define  E1000_PHY_CTRL_FD          0x0100
#define  E1000_PHY_CTRL_RESTART_AN  0x0200  /* self-clearing */
#define  E1000_PHY_CTRL_ISOLATE     0x0400
#define  E1000_PHY_CTRL_POWER_DOWN  0x0800
#define  E1000_PHY_CTRL_AN_ENABLE   0x1000
#define  E1000_PHY_CTRL_SPEED_LSB   0x2000
#define  E1000_PHY_CTRL_LOOPBACK    0x4000
#define  E1000_PHY_CTRL_RESET       0x8000  /* self-clearing */
#define E1000_PHY_STATUS        0x01
#define  E1000_PHY_STATUS_EXT_CAP   0x0001
#define  E1000_PHY_STATUS_LINK      0x0004
#define  E1000_PHY_STATUS_AN_ABLE   0x0008
#define  E1000_PHY_STATUS_AN_DONE   0x0020
#define  E1000_PHY_STATUS_MF_PRE    0x0040  /* preamble suppression */
#define  E1000_PHY_STATUS_EXT_STAT  0x0100
#define  E1000_PHY_STATUS_10HD      0x0800
#define  E1000_PHY_STATUS_10FD      0x1000
#define  E1000_PHY_STATUS_100HD     0x2000
#define  E1000_PHY_STATUS_100FD     0x4000
#define E1000_PHY_ID1           0x02
#define E1000_PHY_ID2           0x03
#define E1000_PHY_AN_ADV        0x04
#define  E1000_PHY_AN_SELECTOR      0x0001  /* IEEE 802.3 */
#define  E1000_PHY_AN_10HD          0x0020
#define  E1000_PHY_AN_10FD          0x0040
#define  E1000_PHY_AN_100HD         0x0080
#define  E1000_PHY_AN_100FD         0x0100
#define  E1000_PHY_AN_PAUSE         0x0400
#define  E1000_PHY_AN_ASM_DIR       0x0800
#define  E1000_PHY_AN_ACK           0x4000  /* link partner register */
#define E1000_PHY_LP_ABILITY    0x05
#define E1000_PHY_AN_EXP        0x06
#define  E1000_PHY_AN_EXP_LP_AN_ABLE 0x0001
#define E1000_PHY_NEXT_PAGE     0x07
#define E1000_PHY_LP_NEXT_PAGE  0x08
#define E1000_PHY_1000T_CTRL    0x09
#define  E1000_PHY_1000T_HD         0x0100  /* advertise 1000BASE-T half */
#define  E1000_PHY_1000T_FD         0x0200  /* advertise 1000BASE-T full */
#define  E1000_PHY_1000T_PORT       0x0400  /* multi-port device */
#define E1000_PHY_1000T_STATUS  0x0a
#define  E1000_PHY_1000T_LP_HD      0x0400  /* partner 1000BASE-T half */
#define  E1000_PHY_1000T_LP_FD      0x0800  /* partner 1000BASE-T full */
#define  E1000_PHY_1000T_REMOTE_OK  0x1000
#define  E1000_PHY_1000T_LOCAL_OK   0x2000
#define E1000_PHY_EXT_STATUS    0x0f
#define  E1000_PHY_EXT_1000T_HD     0x1000
#define  E1000_PHY_EXT_1000T_FD     0x2000
/* Marvell-specific. */
#define E1000_M88_SPEC_CTRL     0x10
#define E1000_M88_SPEC_STATUS   0x11
#define  E1000_M88_SS_LINK          0x0400  /* real-time link up */
#define  E1000_M88_SS_RESOLVED      0x0800  /* speed and duplex resolved */
#define  E1000_M88_SS_FD            0x2000
#define  E1000_M88_SS_SPEED_1000    0x8000
#define E1000_M88_INT_ENABLE    0x12
#define E1000_M88_INT_STATUS    0x13
#define E1000_M88_EXT_SPEC_CTRL 0x14
#define E1000_M88_RX_ERR_CNT    0x15
#define E1000_M88_LED_CTRL      0x18
#define E1000_PHY_REGS          0x20

/* PHY identifiers: Marvell OUI; the 82540EM's M88E1011 core, rev 0. */
#define E1000_PHY_ID1_M88       0x0141
#define E1000_PHY_ID2_82540     0x0c20
#define E1000_PHY_ID_REV_MASK   0x000f

/* ---- Ethernet / IP facts used for offloads ---- */

#define E1000_ETH_HLEN          14
#define E1000_ETH_ALEN          6
#define E1000_ETH_P_IP          0x0800
#define E1000_ETH_P_IPV6        0x86dd
#define E1000_ETH_P_VLAN        0x8100
#define E1000_VLAN_HLEN         4
#define E1000_IP_PROTO_TCP      6
#define E1000_IP_PROTO_UDP      17

#endif
