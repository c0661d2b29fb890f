/*
 * vfio-user wire format, from the protocol specification (QEMU's
 * docs/interop/vfio-user.rst) and the behaviour of QEMU 10.x's client.
 * Shared by the server and the test harness.  All fields little-endian.
 */
#ifndef VFIO_USER_PROTO_H
#define VFIO_USER_PROTO_H

#include <stdint.h>
#include <linux/vfio.h>

enum {
    VFU_CMD_VERSION = 1,
    VFU_CMD_DMA_MAP = 2,
    VFU_CMD_DMA_UNMAP = 3,
    VFU_CMD_DEVICE_GET_INFO = 4,
    VFU_CMD_DEVICE_GET_REGION_INFO = 5,
    VFU_CMD_DEVICE_GET_REGION_IO_FDS = 6,
    VFU_CMD_DEVICE_GET_IRQ_INFO = 7,
    VFU_CMD_DEVICE_SET_IRQS = 8,
    VFU_CMD_REGION_READ = 9,
    VFU_CMD_REGION_WRITE = 10,
    VFU_CMD_DMA_READ = 11,
    VFU_CMD_DMA_WRITE = 12,
    VFU_CMD_DEVICE_RESET = 13,
    VFU_CMD_DIRTY_PAGES = 14,
    VFU_CMD_REGION_WRITE_MULTI = 15,
    VFU_CMD_MAX,
};

/* Header flags. */
#define VFU_FLAG_TYPE_MASK   0xf
#define VFU_FLAG_REQUEST     0x0
#define VFU_FLAG_REPLY       0x1
#define VFU_FLAG_NO_REPLY    0x10
#define VFU_FLAG_ERROR       0x20

typedef struct VfuHdr {
    uint16_t msg_id;
    uint16_t cmd;
    uint32_t size;          /* whole message, header included */
    uint32_t flags;
    uint32_t error_no;      /* errno in an error reply */
} __attribute__((packed)) VfuHdr;

#define VFU_HDR_SIZE 16u

typedef struct VfuVersion {
    uint16_t major;
    uint16_t minor;
    /* NUL-terminated JSON follows */
} __attribute__((packed)) VfuVersion;

#define VFU_VERSION_MAJOR 0
#define VFU_VERSION_MINOR 0

typedef struct VfuDmaMap {
    uint32_t argsz;
    uint32_t flags;         /* VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE */
    uint64_t offset;        /* into the passed fd */
    uint64_t addr;
    uint64_t size;
} __attribute__((packed)) VfuDmaMap;

#define VFU_DMA_FLAG_READ   (1u << 0)
#define VFU_DMA_FLAG_WRITE  (1u << 1)

typedef struct VfuDmaUnmap {
    uint32_t argsz;
    uint32_t flags;         /* VFU_DMA_UNMAP_FLAG_ALL */
    uint64_t addr;
    uint64_t size;
} __attribute__((packed)) VfuDmaUnmap;

#define VFU_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP (1u << 0)
#define VFU_DMA_UNMAP_FLAG_ALL              (1u << 1)

typedef struct VfuDeviceInfo {
    uint32_t argsz;
    uint32_t flags;         /* VFIO_DEVICE_FLAGS_RESET | _PCI */
    uint32_t num_regions;
    uint32_t num_irqs;
} __attribute__((packed)) VfuDeviceInfo;

typedef struct VfuRegionInfo {
    uint32_t argsz;
    uint32_t flags;         /* VFIO_REGION_INFO_FLAG_* */
    uint32_t index;
    uint32_t cap_offset;    /* from the start of this struct */
    uint64_t size;
    uint64_t offset;        /* mmap offset into the fd sent with the reply */
} __attribute__((packed)) VfuRegionInfo;

typedef struct VfuIrqInfo {
    uint32_t argsz;
    uint32_t flags;         /* VFIO_IRQ_INFO_* */
    uint32_t index;
    uint32_t count;
} __attribute__((packed)) VfuIrqInfo;

typedef struct VfuIrqSet {
    uint32_t argsz;
    uint32_t flags;         /* VFIO_IRQ_SET_DATA_* | VFIO_IRQ_SET_ACTION_* */
    uint32_t index;
    uint32_t start;
    uint32_t count;
    /* bool[count] for DATA_BOOL; fds travel as SCM_RIGHTS for DATA_EVENTFD */
} __attribute__((packed)) VfuIrqSet;

typedef struct VfuRegionRW {
    uint64_t offset;
    uint32_t region;
    uint32_t count;
    /* data follows */
} __attribute__((packed)) VfuRegionRW;

/*
 * Server-initiated DMA_READ / DMA_WRITE.  The spec text lays out
 * {u64 addr, u64 count, data}; QEMU 10.x's client reads and writes
 * {u64 addr, u32 count, data at byte 12} and requires the payload to be at
 * least 16 bytes.  iovd speaks the client's layout by default
 * (dma-rw-layout=qemu) and the spec's with dma-rw-layout=spec.
 */
typedef struct VfuDmaRWSpec {
    uint64_t addr;
    uint64_t count;
} __attribute__((packed)) VfuDmaRWSpec;

typedef struct VfuDmaRWQemu {
    uint64_t addr;
    uint32_t count;
} __attribute__((packed)) VfuDmaRWQemu;

#define VFU_DMA_RW_SPEC_DATA_OFF 16u
#define VFU_DMA_RW_QEMU_DATA_OFF 12u
/* QEMU's client pads its DMA_RW struct to 16 bytes before the data. */
#define VFU_DMA_RW_QEMU_MIN_PAYLOAD 16u

typedef struct VfuWriteOne {
    uint64_t offset;
    uint32_t region;
    uint32_t count;         /* <= 8 */
    uint8_t data[8];
} __attribute__((packed)) VfuWriteOne;

#define VFU_WRITE_MULTI_MAX 200

/* Server limits (advertised in the VERSION reply). */
#define VFU_SERVER_MAX_MSG_FDS      16
#define VFU_SERVER_MAX_DATA_XFER    (1u << 20)
#define VFU_SERVER_MAX_DMA_MAPS     1024
#define VFU_SERVER_PGSIZES          4096
/* The largest message iovd accepts: a region access of max_data_xfer_size. */
#define VFU_MAX_MSG_SIZE \
    (VFU_HDR_SIZE + sizeof(VfuRegionRW) + VFU_SERVER_MAX_DATA_XFER)

#endif
