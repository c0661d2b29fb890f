/*
 * Virtio facts from the specification (Virtio 1.2, OASIS): feature bits,
 * device status, the modern PCI transport's capabilities and registers,
 * split and packed virtqueue layouts, and the block device's config space
 * and requests.  Written from the specification text; the device models
 * and the tests both include this header.
 *
 * Wire formats are little-endian.  Layouts are given as byte offsets (and
 * sizes) so that code reads and writes them with the *_le_p helpers.
 */
#ifndef HW_VIRTIO_VIRTIO_SPEC_H
#define HW_VIRTIO_VIRTIO_SPEC_H

#include <stdint.h>
#include <stdbool.h>

/* ---- device status (2.1) ---- */

#define VIRTIO_CONFIG_S_ACKNOWLEDGE     0x01
#define VIRTIO_CONFIG_S_DRIVER          0x02
#define VIRTIO_CONFIG_S_DRIVER_OK       0x04
#define VIRTIO_CONFIG_S_FEATURES_OK     0x08
#define VIRTIO_CONFIG_S_NEEDS_RESET     0x40
#define VIRTIO_CONFIG_S_FAILED          0x80

/* ---- reserved (transport and ring) feature bits (6) ---- */

#define VIRTIO_F_NOTIFY_ON_EMPTY        24  /* legacy only */
#define VIRTIO_F_ANY_LAYOUT             27  /* legacy only */
#define VIRTIO_F_INDIRECT_DESC          28
#define VIRTIO_F_EVENT_IDX              29
#define VIRTIO_F_VERSION_1              32
#define VIRTIO_F_ACCESS_PLATFORM        33
#define VIRTIO_F_RING_PACKED            34
#define VIRTIO_F_IN_ORDER               35
#define VIRTIO_F_ORDER_PLATFORM         36
#define VIRTIO_F_SR_IOV                 37
#define VIRTIO_F_NOTIFICATION_DATA      38
#define VIRTIO_F_NOTIF_CONFIG_DATA      39
#define VIRTIO_F_RING_RESET             40

#define VIRTIO_BIT(n)                   (1ULL << (n))

/* ---- device IDs (5) ---- */

#define VIRTIO_ID_NET                   1
#define VIRTIO_ID_BLOCK                 2

/* ---- PCI transport (4.1) ---- */

#define VIRTIO_PCI_VENDOR_ID            0x1af4
/* Modern (non-transitional) device ID = base + virtio device ID. */
#define VIRTIO_PCI_DEVICE_ID_BASE       0x1040
#define VIRTIO_PCI_DEVICE_ID_LAST       0x107f
/* Non-transitional devices: revision >= 1, subsystem device ID >= 0x40. */
#define VIRTIO_PCI_MODERN_REVISION      1
#define VIRTIO_PCI_SUBSYS_MIN           0x40

/* struct virtio_pci_cap: a vendor-specific capability (cap id 0x09). */
#define VIRTIO_PCI_CAP_VNDR             0   /* u8 cap_vndr = 0x09 */
#define VIRTIO_PCI_CAP_NEXT             1   /* u8 cap_next */
#define VIRTIO_PCI_CAP_LEN              2   /* u8 cap_len */
#define VIRTIO_PCI_CAP_CFG_TYPE         3   /* u8 cfg_type */
#define VIRTIO_PCI_CAP_BAR              4   /* u8 bar (0-5) */
#define VIRTIO_PCI_CAP_ID               5   /* u8 id */
#define VIRTIO_PCI_CAP_OFFSET           8   /* le32 offset within the BAR */
#define VIRTIO_PCI_CAP_LENGTH           12  /* le32 length */
#define VIRTIO_PCI_CAP_SIZEOF           16
/* struct virtio_pci_notify_cap: cap + le32 notify_off_multiplier. */
#define VIRTIO_PCI_NOTIFY_CAP_MULT      16
#define VIRTIO_PCI_NOTIFY_CAP_SIZEOF    20
/* struct virtio_pci_cfg_cap: cap + u8 pci_cfg_data[4]. */
#define VIRTIO_PCI_CFG_CAP_DATA         16
#define VIRTIO_PCI_CFG_CAP_SIZEOF       20

/* cfg_type values. */
#define VIRTIO_PCI_CAP_COMMON_CFG       1
#define VIRTIO_PCI_CAP_NOTIFY_CFG       2
#define VIRTIO_PCI_CAP_ISR_CFG          3
#define VIRTIO_PCI_CAP_DEVICE_CFG       4
#define VIRTIO_PCI_CAP_PCI_CFG          5
#define VIRTIO_PCI_CAP_SHARED_MEMORY_CFG 8
#define VIRTIO_PCI_CAP_VENDOR_CFG       9

/* struct virtio_pci_common_cfg: register offsets and widths. */
#define VIRTIO_PCI_COMMON_DFSELECT      0x00    /* le32 rw */
#define VIRTIO_PCI_COMMON_DF            0x04    /* le32 ro */
#define VIRTIO_PCI_COMMON_GFSELECT      0x08    /* le32 rw */
#define VIRTIO_PCI_COMMON_GF            0x0c    /* le32 rw */
#define VIRTIO_PCI_COMMON_MSIX          0x10    /* le16 rw config vector */
#define VIRTIO_PCI_COMMON_NUMQ          0x12    /* le16 ro */
#define VIRTIO_PCI_COMMON_STATUS        0x14    /* u8 rw */
#define VIRTIO_PCI_COMMON_CFGGENERATION 0x15    /* u8 ro */
#define VIRTIO_PCI_COMMON_Q_SELECT      0x16    /* le16 rw */
#define VIRTIO_PCI_COMMON_Q_SIZE        0x18    /* le16 rw */
#define VIRTIO_PCI_COMMON_Q_MSIX        0x1a    /* le16 rw */
#define VIRTIO_PCI_COMMON_Q_ENABLE      0x1c    /* le16 rw */
#define VIRTIO_PCI_COMMON_Q_NOFF        0x1e    /* le16 ro */
#define VIRTIO_PCI_COMMON_Q_DESCLO      0x20    /* le64 rw, as 2 x le32 */
#define VIRTIO_PCI_COMMON_Q_DESCHI      0x24
#define VIRTIO_PCI_COMMON_Q_AVAILLO     0x28    /* driver area */
#define VIRTIO_PCI_COMMON_Q_AVAILHI     0x2c
#define VIRTIO_PCI_COMMON_Q_USEDLO      0x30    /* device area */
#define VIRTIO_PCI_COMMON_Q_USEDHI      0x34
#define VIRTIO_PCI_COMMON_Q_NDATA       0x38    /* le16 ro notif_config_data */
#define VIRTIO_PCI_COMMON_Q_RESET       0x3a    /* le16 rw (RING_RESET) */
#define VIRTIO_PCI_COMMON_ADM_Q_IDX     0x3c    /* le16 ro (ADMIN_VQ) */
#define VIRTIO_PCI_COMMON_ADM_Q_NUM     0x3e    /* le16 ro (ADMIN_VQ) */
/* The 1.0 structure a driver requires at minimum. */
#define VIRTIO_PCI_COMMON_CFG_MIN_SIZE  0x38
#define VIRTIO_PCI_COMMON_CFG_SIZE      0x40

/* MSI-X: the "no vector" value for config and queue vector registers. */
#define VIRTIO_MSI_NO_VECTOR            0xffff
#define VIRTIO_PCI_MSIX_MAX_VECTORS     0x800

/* ISR status bits (read clears, deasserts INTx). */
#define VIRTIO_PCI_ISR_QUEUE            0x1
#define VIRTIO_PCI_ISR_CONFIG           0x2

/* ---- split virtqueues (2.7) ---- */

/* struct virtq_desc (16 bytes, table aligned to 16). */
#define VRING_DESC_ADDR                 0   /* le64 */
#define VRING_DESC_LEN                  8   /* le32 */
#define VRING_DESC_FLAGS                12  /* le16 */
#define VRING_DESC_NEXT                 14  /* le16 */
#define VRING_DESC_SIZE                 16

#define VRING_DESC_F_NEXT               1
#define VRING_DESC_F_WRITE              2
#define VRING_DESC_F_INDIRECT           4

/* struct virtq_avail (driver area, aligned to 2). */
#define VRING_AVAIL_FLAGS               0   /* le16 */
#define VRING_AVAIL_IDX                 2   /* le16 */
#define VRING_AVAIL_RING                4   /* le16 ring[num] */
#define VRING_AVAIL_F_NO_INTERRUPT      1
/* le16 used_event follows ring[num] (VIRTIO_F_EVENT_IDX). */
static inline uint64_t vring_avail_used_event_off(unsigned num)
{
    return VRING_AVAIL_RING + 2ULL * num;
}
static inline uint64_t vring_avail_size(unsigned num)
{
    return VRING_AVAIL_RING + 2ULL * num + 2;
}

/* struct virtq_used (device area, aligned to 4). */
#define VRING_USED_FLAGS                0   /* le16 */
#define VRING_USED_IDX                  2   /* le16 */
#define VRING_USED_RING                 4   /* virtq_used_elem ring[num] */
#define VRING_USED_ELEM_ID              0   /* le32 head of the chain */
#define VRING_USED_ELEM_LEN             4   /* le32 bytes written */
#define VRING_USED_ELEM_SIZE            8
#define VRING_USED_F_NO_NOTIFY          1
/* le16 avail_event follows ring[num] (VIRTIO_F_EVENT_IDX). */
static inline uint64_t vring_used_avail_event_off(unsigned num)
{
    return VRING_USED_RING + (uint64_t)VRING_USED_ELEM_SIZE * num;
}
static inline uint64_t vring_used_size(unsigned num)
{
    return VRING_USED_RING + (uint64_t)VRING_USED_ELEM_SIZE * num + 2;
}

#define VRING_DESC_ALIGN                16
#define VRING_AVAIL_ALIGN               2
#define VRING_USED_ALIGN                4

/* Largest split ring; packed rings may have up to 2^15 entries. */
#define VIRTQUEUE_SPLIT_MAX_SIZE        32768
#define VIRTQUEUE_PACKED_MAX_SIZE       32768

/*
 * Event index rule (2.7.7.2 / 2.7.10): the other side wants a notification
 * when the index moved from @old to @new past @event_idx (all mod 2^16).
 */
static inline bool vring_need_event(uint16_t event_idx, uint16_t new_idx,
                                    uint16_t old_idx)
{
    return (uint16_t)(new_idx - event_idx - 1) <
           (uint16_t)(new_idx - old_idx);
}

/* ---- packed virtqueues (2.8) ---- */

/* struct pvirtq_desc (16 bytes, ring aligned to 16). */
#define VRING_PACKED_DESC_ADDR          0   /* le64 */
#define VRING_PACKED_DESC_LEN           8   /* le32 */
#define VRING_PACKED_DESC_ID            12  /* le16 buffer id */
#define VRING_PACKED_DESC_FLAGS         14  /* le16 */
#define VRING_PACKED_DESC_SIZE          16

#define VRING_PACKED_DESC_F_AVAIL       (1u << 7)
#define VRING_PACKED_DESC_F_USED        (1u << 15)

/* struct pvirtq_event_suppress (driver and device areas, 4 bytes). */
#define VRING_PACKED_EVENT_OFF_WRAP     0   /* le16: offset 15 bits, wrap */
#define VRING_PACKED_EVENT_FLAGS        2   /* le16 */
#define VRING_PACKED_EVENT_SIZE         4
#define VRING_PACKED_EVENT_WRAP_SHIFT   15
#define VRING_PACKED_EVENT_FLAG_ENABLE  0x0
#define VRING_PACKED_EVENT_FLAG_DISABLE 0x1
#define VRING_PACKED_EVENT_FLAG_DESC    0x2 /* needs VIRTIO_F_EVENT_IDX */
#define VRING_PACKED_EVENT_FLAGS_MASK   0x3

#define VRING_PACKED_EVENT_ALIGN        4

/* ---- block device (5.2) ---- */

#define VIRTIO_BLK_F_SIZE_MAX           1
#define VIRTIO_BLK_F_SEG_MAX            2
#define VIRTIO_BLK_F_GEOMETRY           4
#define VIRTIO_BLK_F_RO                 5
#define VIRTIO_BLK_F_BLK_SIZE           6
#define VIRTIO_BLK_F_FLUSH              9
#define VIRTIO_BLK_F_TOPOLOGY           10
#define VIRTIO_BLK_F_CONFIG_WCE         11
#define VIRTIO_BLK_F_MQ                 12
#define VIRTIO_BLK_F_DISCARD            13
#define VIRTIO_BLK_F_WRITE_ZEROES       14
#define VIRTIO_BLK_F_LIFETIME           15
#define VIRTIO_BLK_F_SECURE_ERASE       16
#define VIRTIO_BLK_F_ZONED              17

/* struct virtio_blk_config: offsets. */
#define VIRTIO_BLK_CFG_CAPACITY         0   /* le64, 512-byte sectors */
#define VIRTIO_BLK_CFG_SIZE_MAX         8   /* le32 */
#define VIRTIO_BLK_CFG_SEG_MAX          12  /* le32 */
#define VIRTIO_BLK_CFG_GEO_CYLINDERS    16  /* le16 */
#define VIRTIO_BLK_CFG_GEO_HEADS        18  /* u8 */
#define VIRTIO_BLK_CFG_GEO_SECTORS      19  /* u8 */
#define VIRTIO_BLK_CFG_BLK_SIZE         20  /* le32 */
#define VIRTIO_BLK_CFG_PHYS_BLOCK_EXP   24  /* u8 */
#define VIRTIO_BLK_CFG_ALIGN_OFFSET     25  /* u8 */
#define VIRTIO_BLK_CFG_MIN_IO_SIZE      26  /* le16, in blocks */
#define VIRTIO_BLK_CFG_OPT_IO_SIZE      28  /* le32, in blocks */
#define VIRTIO_BLK_CFG_WRITEBACK        32  /* u8 */
#define VIRTIO_BLK_CFG_NUM_QUEUES       34  /* le16 */
#define VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS 36   /* le32 */
#define VIRTIO_BLK_CFG_MAX_DISCARD_SEG  40  /* le32 */
#define VIRTIO_BLK_CFG_DISCARD_ALIGN    44  /* le32, sectors */
#define VIRTIO_BLK_CFG_MAX_WZ_SECTORS   48  /* le32 */
#define VIRTIO_BLK_CFG_MAX_WZ_SEG       52  /* le32 */
#define VIRTIO_BLK_CFG_WZ_MAY_UNMAP     56  /* u8 */
#define VIRTIO_BLK_CFG_MAX_SE_SECTORS   60  /* le32 (SECURE_ERASE) */
#define VIRTIO_BLK_CFG_MAX_SE_SEG       64  /* le32 */
#define VIRTIO_BLK_CFG_SE_ALIGN         68  /* le32 */
#define VIRTIO_BLK_CFG_ZONED            72  /* zoned characteristics */
/* Through write_zeroes_may_unmap and its padding (no secure erase). */
#define VIRTIO_BLK_CFG_SIZE             60

/* struct virtio_blk_req: header (device-readable) ... status (writable). */
#define VIRTIO_BLK_REQ_TYPE             0   /* le32 */
#define VIRTIO_BLK_REQ_IOPRIO           4   /* le32 reserved */
#define VIRTIO_BLK_REQ_SECTOR           8   /* le64 */
#define VIRTIO_BLK_REQ_HDR_SIZE         16

#define VIRTIO_BLK_T_IN                 0
#define VIRTIO_BLK_T_OUT                1
#define VIRTIO_BLK_T_FLUSH              4
#define VIRTIO_BLK_T_GET_ID             8
#define VIRTIO_BLK_T_GET_LIFETIME       10
#define VIRTIO_BLK_T_DISCARD            11
#define VIRTIO_BLK_T_WRITE_ZEROES       13
#define VIRTIO_BLK_T_SECURE_ERASE       14

#define VIRTIO_BLK_S_OK                 0
#define VIRTIO_BLK_S_IOERR              1
#define VIRTIO_BLK_S_UNSUPP             2

/* struct virtio_blk_discard_write_zeroes: one segment (16 bytes). */
#define VIRTIO_BLK_DWZ_SECTOR           0   /* le64 */
#define VIRTIO_BLK_DWZ_NUM_SECTORS      8   /* le32 */
#define VIRTIO_BLK_DWZ_FLAGS            12  /* le32 */
#define VIRTIO_BLK_DWZ_SIZE             16
#define VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP 0x1

/* GET_ID: a NUL-padded ASCII string of up to 20 bytes. */
#define VIRTIO_BLK_ID_BYTES             20

/* Units of capacity and request sectors. */
#define VIRTIO_BLK_SECTOR_BITS          9
#define VIRTIO_BLK_SECTOR_SIZE          512

#endif
