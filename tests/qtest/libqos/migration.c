/*
 * The migrating VMM (see migration.h).
 */
#include "util/osdep.h"

#include <sys/mman.h>

#include "tests/qtest/libqos/migration.h"
#include "tests/qtest/libqos/qos-util.h"

#define QMIG_CHUNK (64u << 10)

/* ---- the protocol ---- */

/* DEVICE_FEATURE @flags with @data; the reply's data (after 8 bytes). */
static int feature(VfuClient *c, uint32_t flags, const void *data,
                   size_t len, uint32_t argsz, VfuRxMsg **reply)
{
    g_autofree uint8_t *buf = g_malloc0(sizeof(VfuFeature) + len);
    VfuFeature *f = (VfuFeature *)buf;

    f->argsz = MAX(argsz, sizeof(VfuFeature) + len);
    f->flags = flags;
    if (len) {
        memcpy(buf + sizeof(VfuFeature), data, len);
    }
    return vfu_request(c, VFU_CMD_DEVICE_FEATURE, buf,
                       sizeof(VfuFeature) + len, NULL, 0, reply);
}

int qmig_get_flags(VfuClient *c, uint64_t *flags)
{
    g_autoptr(VfuRxMsg) reply = NULL;
    int r = feature(c, VFU_FEATURE_GET | VFU_FEATURE_MIGRATION, NULL, 0,
                    sizeof(VfuFeatureMigration), &reply);

    if (!r) {
        qos_assert(reply->len == sizeof(VfuFeatureMigration),
                   "MIGRATION reply of %u bytes", reply->len);
        *flags = ((VfuFeatureMigration *)reply->payload)->flags;
    }
    return r;
}

int qmig_get_state(VfuClient *c, uint32_t *state)
{
    g_autoptr(VfuRxMsg) reply = NULL;
    int r = feature(c, VFU_FEATURE_GET | VFU_FEATURE_MIG_DEVICE_STATE, NULL,
                    0, sizeof(VfuFeatureMigState), &reply);

    if (!r) {
        qos_assert(reply->len == sizeof(VfuFeatureMigState),
                   "MIG_DEVICE_STATE reply of %u bytes", reply->len);
        *state = ((VfuFeatureMigState *)reply->payload)->device_state;
    }
    return r;
}

int qmig_set_state(VfuClient *c, uint32_t state)
{
    uint32_t data[2] = { state, (uint32_t)-1 };
    g_autoptr(VfuRxMsg) reply = NULL;
    int r = feature(c, VFU_FEATURE_SET | VFU_FEATURE_MIG_DEVICE_STATE, data,
                    sizeof(data), 0, &reply);

    if (!r) {
        qos_assert(reply->len == sizeof(VfuFeatureMigState) &&
                   ((VfuFeatureMigState *)reply->payload)->device_state ==
                   state, "MIG_DEVICE_STATE SET reply does not echo %u",
                   state);
    }
    return r;
}

int qmig_read_state(VfuClient *c, GByteArray *out)
{
    for (;;) {
        VfuMigData req = { sizeof(VfuMigData) + QMIG_CHUNK, QMIG_CHUNK };
        g_autoptr(VfuRxMsg) reply = NULL;
        const VfuMigData *rd;
        int r = vfu_request(c, VFU_CMD_MIG_DATA_READ, &req, sizeof(req),
                            NULL, 0, &reply);

        if (r) {
            return r;
        }
        rd = (const VfuMigData *)reply->payload;
        qos_assert(reply->len >= sizeof(*rd) &&
                   rd->size == reply->len - sizeof(*rd) &&
                   rd->size <= QMIG_CHUNK && rd->argsz == reply->len,
                   "malformed MIG_DATA_READ reply (%u bytes)", reply->len);
        if (!rd->size) {
            return 0;
        }
        g_byte_array_append(out, reply->payload + sizeof(*rd), rd->size);
    }
}

int qmig_write_state(VfuClient *c, const void *data, size_t len,
                     size_t chunk)
{
    chunk = chunk ? chunk : QMIG_CHUNK;
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = MIN(chunk, len - off);
        g_autofree uint8_t *buf = g_malloc(sizeof(VfuMigData) + n);
        VfuMigData *w = (VfuMigData *)buf;
        int r;

        w->argsz = sizeof(*w) + n;
        w->size = n;
        memcpy(buf + sizeof(*w), (const uint8_t *)data + off, n);
        r = vfu_request(c, VFU_CMD_MIG_DATA_WRITE, buf, sizeof(*w) + n,
                        NULL, 0, NULL);
        if (r) {
            return r;
        }
    }
    return 0;
}

int qmig_logging_start(VfuClient *c, uint64_t page_size, uint64_t iova,
                       uint64_t len)
{
    struct {
        uint64_t page_size;
        uint32_t num_ranges, reserved;
        VfuDirtyRange range;
    } __attribute__((packed)) data = { page_size, 1, 0, { iova, len } };

    return feature(c, VFU_FEATURE_SET | VFU_FEATURE_DMA_LOGGING_START,
                   &data, sizeof(data), 0, NULL);
}

int qmig_logging_stop(VfuClient *c)
{
    return feature(c, VFU_FEATURE_SET | VFU_FEATURE_DMA_LOGGING_STOP, NULL,
                   0, 0, NULL);
}

int qmig_logging_report(VfuClient *c, uint64_t iova, uint64_t len,
                        uint64_t page_size, uint64_t *bitmap)
{
    uint64_t data[3] = { iova, len, page_size };
    size_t bytes = DIV_ROUND_UP(DIV_ROUND_UP(len, page_size), 64) * 8;
    g_autoptr(VfuRxMsg) reply = NULL;
    int r = feature(c, VFU_FEATURE_GET | VFU_FEATURE_DMA_LOGGING_REPORT,
                    data, sizeof(data),
                    sizeof(VfuFeatureLogReport) + bytes, &reply);

    if (!r) {
        qos_assert(reply->len == sizeof(VfuFeatureLogReport) + bytes,
                   "DMA_LOGGING_REPORT reply of %u bytes, expected %zu",
                   reply->len, sizeof(VfuFeatureLogReport) + bytes);
        memcpy(bitmap, reply->payload + sizeof(VfuFeatureLogReport), bytes);
    }
    return r;
}

/* ---- the whole migration ---- */

static void qmig_check(int r, const char *what)
{
    if (r) {
        qos_fail("migration: %s failed: %s (%d)", what, qos_errno_name(r),
                 r);
    }
}

/* Copy the pages set in @bits (bit per page) from @src to @dst. */
static unsigned copy_pages(uint8_t *dst, const uint8_t *src, uint64_t npages,
                           const uint64_t *bits)
{
    unsigned n = 0;

    for (uint64_t pg = 0; pg < npages; pg++) {
        if (bits[pg / 64] >> (pg % 64) & 1) {
            memcpy(dst + pg * GUEST_PAGE_SIZE, src + pg * GUEST_PAGE_SIZE,
                   GUEST_PAGE_SIZE);
            n++;
        }
    }
    return n;
}

/* A new memfd the size of @gm, mapped here at *map. */
static int ram_copy_new(GuestMem *gm, uint8_t **map)
{
    int fd = memfd_create("iovd-qtest-guest-ram-dst", MFD_CLOEXEC);

    qos_assert(fd >= 0 && ftruncate(fd, guest_mem_size(gm)) == 0,
               "guest RAM copy: %s", g_strerror(errno));
    *map = mmap(NULL, guest_mem_size(gm), PROT_READ | PROT_WRITE,
                MAP_SHARED, fd, 0);
    qos_assert(*map != MAP_FAILED, "mmap(guest RAM copy): %s",
               g_strerror(errno));
    return fd;
}

/*
 * Source side, steps 1-3: the state into @state, RAM into @dst.  Returns
 * when the source began to stop.
 */
static int64_t qmig_save(VfuClient *c, GuestMem *gm, uint8_t *dst,
                      GByteArray *state, const QMigrateOpts *o,
                      QMigrateStats *st)
{
    uint64_t base = guest_mem_base(gm), size = guest_mem_size(gm);
    uint64_t npages = size / GUEST_PAGE_SIZE;
    uint8_t *src = guest_ptr(gm, base, size);
    g_autofree uint64_t *dev = g_new0(uint64_t, DIV_ROUND_UP(npages, 64));
    g_autofree uint64_t *cpu = NULL;
    int64_t t0;

    qmig_check(qmig_logging_start(c, GUEST_PAGE_SIZE, base, size),
               "DMA_LOGGING_START");
    guest_mem_track_start(gm);
    qmig_check(qmig_set_state(c, QMIG_PRE_COPY), "PRE_COPY");
    memcpy(dst, src, size);
    if (o && o->during) {
        o->during(o->opaque);
    }
    t0 = g_get_monotonic_time();
    qmig_check(qmig_set_state(c, QMIG_STOP_COPY), "STOP_COPY");
    st->stop_ns = (g_get_monotonic_time() - t0) * 1000;
    qmig_check(qmig_read_state(c, state), "MIG_DATA_READ");
    qmig_check(qmig_logging_report(c, base, size, GUEST_PAGE_SIZE, dev),
               "DMA_LOGGING_REPORT");
    qmig_check(qmig_logging_stop(c), "DMA_LOGGING_STOP");
    cpu = guest_mem_track_stop(gm);
    st->cpu_dirty = copy_pages(dst, src, npages, cpu);
    if (!(o && o->skip_device_log)) {
        st->device_dirty = copy_pages(dst, src, npages, dev);
    }
    st->state_bytes = state->len;
    return t0;
}

/* Destination side, step 4. */
static void qmig_load(VfuClient *c, QPCIDevice *d, GuestMem *gm,
                      GByteArray *state)
{
    guest_mem_map_checked(gm, c, true);
    qpci_device_set_client(d, c);
    qmig_check(qmig_set_state(c, QMIG_RESUMING), "RESUMING");
    qmig_check(qmig_write_state(c, state->data, state->len, 0),
               "MIG_DATA_WRITE");
    qmig_check(qmig_set_state(c, QMIG_RUNNING), "RESUMING -> RUNNING");
}

VfuClient *qmig_migrate(QPCIDevice *d, GuestMem *gm, const char *dst_path,
                        const QMigrateOpts *opts, QMigrateStats *st)
{
    VfuClient *src = qpci_client(d);
    VfuClient *dst = vfu_client_open(dst_path);
    g_autoptr(GByteArray) state = g_byte_array_new();
    QMigrateStats local = { 0 };
    uint8_t *copy;
    int fd = ram_copy_new(gm, &copy);
    int64_t t0;

    st = st ? st : &local;
    t0 = qmig_save(src, gm, copy, state, opts, st);
    munmap(copy, guest_mem_size(gm));
    /* The source keeps its own mapping of the old RAM until it resets. */
    guest_mem_replace(gm, fd);
    qmig_load(dst, d, gm, state);
    st->blackout_ns = (g_get_monotonic_time() - t0) * 1000;
    return dst;
}
