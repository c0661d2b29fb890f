/*
 * The migrating VMM: moves a device from one iovd to another over the
 * vfio-user protocol's live migration (DEVICE_FEATURE, MIG_DATA_READ /
 * MIG_DATA_WRITE, DMA dirty logging), the way a VMM moves a VFIO device.
 *
 * Guest RAM moves too, and only through the dirty logs, so a page the
 * device wrote and did not report is a page the destination never sees:
 *
 *   1. the source device logs its DMA writes (DMA_LOGGING_START) and the
 *      test process's own writes to guest RAM (the guest CPU's) are
 *      tracked by write-protecting its mapping, as KVM's dirty log does;
 *   2. PRE_COPY: the device keeps running while all of RAM is copied into
 *      a new memfd; @during (optional) runs then, to keep I/O going;
 *   3. STOP_COPY: the source device stops (requests in flight complete
 *      first) and its state is read; the pages dirtied since step 1 (the
 *      device's report and the CPU's) are copied again;
 *   4. the test process's guest RAM is replaced by the copy at the same
 *      address (pointers into it stay valid), the destination client maps
 *      it, gets the same MSI-X / INTx eventfds, RESUMING, the state is
 *      written, RUNNING;
 *   5. @d now talks to the destination: BAR mappings are made again there.
 *
 * The source client is left to the caller (closing it is the source VMM
 * going away); the returned client is the destination's.
 */
#ifndef LIBQOS_MIGRATION_H
#define LIBQOS_MIGRATION_H

#include "tests/qtest/libqos/pci.h"
#include "tests/qtest/libqos/guest-mem.h"

/* VFIO device migration states (linux/vfio.h's numbering). */
enum {
    QMIG_ERROR = 0,
    QMIG_STOP = 1,
    QMIG_RUNNING = 2,
    QMIG_STOP_COPY = 3,
    QMIG_RESUMING = 4,
    QMIG_PRE_COPY = 6,
};

typedef struct QMigrateStats {
    size_t state_bytes;         /* the device state stream */
    unsigned device_dirty;      /* pages the final device report named */
    unsigned cpu_dirty;         /* pages the guest CPU wrote meanwhile */
    int64_t stop_ns;            /* PRE_COPY -> STOP_COPY (the drain) */
    int64_t blackout_ns;        /* source stopped -> destination running */
} QMigrateStats;

typedef struct QMigrateOpts {
    /* Called in PRE_COPY, the source device still running. */
    void (*during)(void *opaque);
    void *opaque;
    /* Ignore the device's dirty log (a test that the log matters). */
    bool skip_device_log;
} QMigrateOpts;

/*
 * Move @d (driven through its client, on guest RAM @gm that was mapped with
 * its fd) to the iovd listening at @dst_path.  @opts and @st may be NULL.
 * Fails the test on any protocol error.  Returns the destination client.
 */
VfuClient *qmig_migrate(QPCIDevice *d, GuestMem *gm, const char *dst_path,
                        const QMigrateOpts *opts, QMigrateStats *st);

/* ---- the protocol, one message each: 0 or -errno ---- */

int qmig_get_flags(VfuClient *c, uint64_t *flags);     /* feature 1 */
int qmig_get_state(VfuClient *c, uint32_t *state);
int qmig_set_state(VfuClient *c, uint32_t state);
/* MIG_DATA_READ until the server returns 0 bytes; the bytes into @out. */
int qmig_read_state(VfuClient *c, GByteArray *out);
/* MIG_DATA_WRITE @len bytes in pieces of at most @chunk (0: 64 KiB). */
int qmig_write_state(VfuClient *c, const void *data, size_t len,
                     size_t chunk);
int qmig_logging_start(VfuClient *c, uint64_t page_size, uint64_t iova,
                       uint64_t len);
int qmig_logging_stop(VfuClient *c);
/*
 * The dirty bitmap of [iova, iova + len) at @page_size (read and cleared
 * by the server): bit n of @bitmap (LSB first in 64-bit words) is page n.
 */
int qmig_logging_report(VfuClient *c, uint64_t iova, uint64_t len,
                        uint64_t page_size, uint64_t *bitmap);

#endif
