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
    VFU_CMD_DEVICE_FEATURE = 16,
    VFU_CMD_MIG_DATA_READ = 17,
    VFU_CMD_MIG_DATA_WRITE = 18,
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

/*
 * Live migration (the protocol's "migration v2", Linux's VFIO device
 * features): DEVICE_FEATURE carries struct vfio_device_feature's layout
 * with its data inline; the numbers are linux/vfio.h's.
 */
typedef struct VfuFeature {
    uint32_t argsz;
    uint32_t flags;             /* feature index | GET / SET / PROBE */
} __attribute__((packed)) VfuFeature;

#define VFU_FEATURE_MASK        0xffffu
#define VFU_FEATURE_GET         (1u << 16)
#define VFU_FEATURE_SET         (1u << 17)
#define VFU_FEATURE_PROBE       (1u << 18)

enum {
    VFU_FEATURE_MIGRATION = 1,
    VFU_FEATURE_MIG_DEVICE_STATE = 2,
    VFU_FEATURE_DMA_LOGGING_START = 6,
    VFU_FEATURE_DMA_LOGGING_STOP = 7,
    VFU_FEATURE_DMA_LOGGING_REPORT = 8,
};

/* VFU_FEATURE_MIGRATION's flags. */
#define VFU_MIGRATION_STOP_COPY (1ull << 0)
#define VFU_MIGRATION_P2P       (1ull << 1)
#define VFU_MIGRATION_PRE_COPY  (1ull << 2)

/* Device migration states (enum vfio_device_mig_state). */
enum {
    VFU_MIG_ERROR = 0,
    VFU_MIG_STOP = 1,
    VFU_MIG_RUNNING = 2,
    VFU_MIG_STOP_COPY = 3,
    VFU_MIG_RESUMING = 4,
    VFU_MIG_RUNNING_P2P = 5,
    VFU_MIG_PRE_COPY = 6,
    VFU_MIG_PRE_COPY_P2P = 7,
    VFU_MIG_NR_STATES
};

typedef struct VfuFeatureMigState {
    VfuFeature hdr;
    uint32_t device_state;
    int32_t data_fd;            /* unused: MIG_DATA_READ/WRITE carry it */
} __attribute__((packed)) VfuFeatureMigState;

typedef struct VfuFeatureMigration {
    VfuFeature hdr;
    uint64_t flags;             /* VFU_MIGRATION_* */
} __attribute__((packed)) VfuFeatureMigration;

typedef struct VfuDirtyRange {
    uint64_t iova, length;
} __attribute__((packed)) VfuDirtyRange;

typedef struct VfuFeatureLogStart {
    VfuFeature hdr;
    uint64_t page_size;
    uint32_t num_ranges;        /* 0: everything */
    uint32_t reserved;
    /* VfuDirtyRange ranges[num_ranges] */
} __attribute__((packed)) VfuFeatureLogStart;

/* The reply appends the bitmap: bit n (LSB first, u64 words) = page n. */
typedef struct VfuFeatureLogReport {
    VfuFeature hdr;
    uint64_t iova, length, page_size;
} __attribute__((packed)) VfuFeatureLogReport;

/* MIG_DATA_READ request {argsz, size}; its reply and MIG_DATA_WRITE add data. */
typedef struct VfuMigData {
    uint32_t argsz;
    uint32_t size;
} __attribute__((packed)) VfuMigData;

/* Server limits (advertised in the VERSION reply). */
#define VFU_SERVER_MAX_MSG_FDS      16
#define VFU_SERVER_MAX_DATA_XFER    (1u << 20)
#define VFU_SERVER_MAX_DMA_MAPS     1024
#define VFU_SERVER_PGSIZES          4096
/* Dirty logging: iovd's own granularity, the largest report bitmap. */
#define VFU_DIRTY_PAGE_SIZE         4096
#define VFU_SERVER_MAX_BITMAP       VFU_SERVER_MAX_DATA_XFER
/* The most state a destination takes (MIG_DATA_WRITE, all pieces). */
#define VFU_SERVER_MAX_STATE        (64u << 20)
/* The largest message iovd accepts: a region access of max_data_xfer_size. */
#define VFU_MAX_MSG_SIZE \
    (VFU_HDR_SIZE + sizeof(VfuRegionRW) + VFU_SERVER_MAX_DATA_XFER)

#endif
