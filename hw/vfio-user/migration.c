/*
 * vfio-user live migration, server side (the protocol's "migration v2",
 * Linux's VFIO device migration uAPI over messages):
 *
 *   DEVICE_FEATURE  MIGRATION (what we support: STOP_COPY, PRE_COPY),
 *                   MIG_DEVICE_STATE (get / set the state below),
 *                   DMA_LOGGING_START / STOP / REPORT (dma.c's dirty log)
 *   MIG_DATA_READ   the device's state stream, in PRE_COPY and STOP_COPY
 *   MIG_DATA_WRITE  a state stream to load, in RESUMING
 *
 * States and what the device does in each:
 *
 *   RUNNING    normal operation (the device may be PAUSED by 'stop')
 *   PRE_COPY   running; a save session is open (iovd has no pre-copy
 *              data: reads return 0 bytes until STOP_COPY)
 *   STOP       the device is STOPPED (hw/core): nothing in flight, no
 *              work, no DMA, no interrupts; registers still answer
 *   STOP_COPY  stopped; its state stream (hw/pci/state.c) is readable
 *   RESUMING   stopped; a stream is being written; leaving to STOP loads
 *              it, and a stream that does not load fails the change and
 *              leaves ERROR, from which only DEVICE_RESET leads out
 *
 * A change to a state that is not one arc away goes by the shortest path
 * of arcs (Linux's rule), never through a saving state; an arc that stops
 * the device waits for what is in flight and for its backends' flush,
 * and the reply waits with it (a flush that fails fails the change: the
 * device goes on running).
 * A function reset (DEVICE_RESET, the client leaving) returns to RUNNING.
 */
#include "hw/vfio-user/vfio-user-int.h"
#include "hw/vfio-user/trace.h"
#include "util/error.h"
#include "util/log.h"

/* The arcs (from -> to) a state change may take, and the next hop. */
static uint32_t mig_next_hop(uint32_t from, uint32_t to)
{
    static const uint8_t hop[VFU_MIG_NR_STATES][VFU_MIG_NR_STATES] = {
        [VFU_MIG_RUNNING] = {
            [VFU_MIG_STOP] = VFU_MIG_STOP,
            [VFU_MIG_STOP_COPY] = VFU_MIG_STOP,
            [VFU_MIG_RESUMING] = VFU_MIG_STOP,
            [VFU_MIG_PRE_COPY] = VFU_MIG_PRE_COPY,
        },
        [VFU_MIG_STOP] = {
            [VFU_MIG_RUNNING] = VFU_MIG_RUNNING,
            [VFU_MIG_STOP_COPY] = VFU_MIG_STOP_COPY,
            [VFU_MIG_RESUMING] = VFU_MIG_RESUMING,
            [VFU_MIG_PRE_COPY] = VFU_MIG_RUNNING,
        },
        [VFU_MIG_STOP_COPY] = {
            [VFU_MIG_STOP] = VFU_MIG_STOP,
            [VFU_MIG_RUNNING] = VFU_MIG_STOP,
            [VFU_MIG_RESUMING] = VFU_MIG_STOP,
        },
        [VFU_MIG_RESUMING] = {
            [VFU_MIG_STOP] = VFU_MIG_STOP,
            [VFU_MIG_RUNNING] = VFU_MIG_STOP,
            [VFU_MIG_STOP_COPY] = VFU_MIG_STOP,
            [VFU_MIG_PRE_COPY] = VFU_MIG_STOP,
        },
        [VFU_MIG_PRE_COPY] = {
            [VFU_MIG_RUNNING] = VFU_MIG_RUNNING,
            [VFU_MIG_STOP_COPY] = VFU_MIG_STOP_COPY,
            [VFU_MIG_STOP] = VFU_MIG_RUNNING,
            [VFU_MIG_RESUMING] = VFU_MIG_RUNNING,
        },
    };

    return hop[from][to];       /* 0 (ERROR): no way */
}

static const char *mig_state_name(uint32_t st)
{
    static const char *const names[VFU_MIG_NR_STATES] = {
        "error", "stop", "running", "stop-copy", "resuming", "running-p2p",
        "pre-copy", "pre-copy-p2p",
    };

    return st < VFU_MIG_NR_STATES ? names[st] : "?";
}

bool vfu_mig_supported(VfuServer *s)
{
    return pci_state_supported(s->pdev);
}

static void mig_drop_streams(VfuServer *s)
{
    g_clear_pointer(&s->mig_out, g_bytes_unref);
    s->mig_out_pos = 0;
    if (s->mig_in) {
        g_byte_array_unref(s->mig_in);
        s->mig_in = NULL;
    }
}

static void mig_set_state(VfuServer *s, uint32_t st)
{
    trace_vfu_mig_state(vfu_id(s), mig_state_name(s->mig_state),
                        mig_state_name(st));
    s->mig_state = st;
}

/* RESUMING -> STOP: load what was written. */
static int mig_load(VfuServer *s)
{
    g_autoptr(GBytes) data = g_byte_array_free_to_bytes(s->mig_in);
    g_autoptr(GError) err = NULL;

    s->mig_in = NULL;
    if (!pci_load_state(s->pdev, data, &err)) {
        iovd_warn("%s: migration: the device state does not load: %s",
                  vfu_id(s), err->message);
        trace_vfu_mig_load_failed(vfu_id(s), err->message);
        mig_set_state(s, VFU_MIG_ERROR);
        return EINVAL;
    }
    return 0;
}

static void mig_stopped(Device *dev, int ret, void *opaque);

/*
 * Take the arc from the current state to @to: 0 when taken, an errno, or
 * EINPROGRESS when the device first has to stop (mig_stopped() goes on).
 */
static int mig_arc(VfuServer *s, uint32_t to)
{
    Device *dev = &s->pdev->dev;
    uint32_t from = s->mig_state;

    if ((to == VFU_MIG_STOP && from == VFU_MIG_RUNNING) ||
        (to == VFU_MIG_STOP_COPY && from == VFU_MIG_PRE_COPY)) {
        if (!device_stopped(dev)) {
            device_stop(dev, DEVICE_STOP_MIGRATE, mig_stopped, s);
            return EINPROGRESS;
        }
    }
    if (from == VFU_MIG_STOP_COPY || from == VFU_MIG_PRE_COPY) {
        mig_drop_streams(s);    /* the save session ends (or turns) */
    }
    if (to == VFU_MIG_STOP_COPY) {
        s->mig_out = pci_save_state(s->pdev);
        s->mig_out_pos = 0;
        trace_vfu_mig_saved(vfu_id(s), g_bytes_get_size(s->mig_out));
    } else if (to == VFU_MIG_RESUMING) {
        s->mig_in = g_byte_array_new();
    } else if (from == VFU_MIG_RESUMING) {
        int r = mig_load(s);

        if (r) {
            return r;
        }
    } else if (to == VFU_MIG_RUNNING && from == VFU_MIG_STOP) {
        device_start(dev);
    }
    mig_set_state(s, to);
    return 0;
}

static void mig_set_reply(VfuServer *s, int err)
{
    s->mig_set_due = false;
    if (err) {
        s->nr_errors++;
        vfu_send_error(s, &s->mig_set_req, err);
    } else {
        vfu_send_reply(s, &s->mig_set_req, &s->mig_set_echo,
                       sizeof(s->mig_set_echo), -1);
    }
}

/* Walk toward the state the pending SET asked for. */
static void mig_advance(VfuServer *s)
{
    uint32_t target = s->mig_set_echo.device_state;

    while (s->mig_state != target) {
        uint32_t next = mig_next_hop(s->mig_state, target);
        int r;

        if (next == VFU_MIG_ERROR) {
            mig_set_reply(s, EINVAL);
            return;
        }
        r = mig_arc(s, next);
        if (r == EINPROGRESS) {
            return;
        }
        if (r) {
            mig_set_reply(s, r);
            return;
        }
    }
    mig_set_reply(s, 0);
}

static void mig_stopped(Device *dev, int ret, void *opaque)
{
    VfuServer *s = opaque;

    if (ret < 0) {
        /*
         * A backend did not flush: what the guest saw written may not be
         * where the destination will read it.  The device runs on here.
         */
        iovd_warn("%s: migration: the device stopped but its backend did "
                  "not flush (%s): it keeps running here", vfu_id(s),
                  g_strerror(-ret));
        device_start(dev);
        if (s->mig_set_due) {
            mig_set_reply(s, EIO);
        }
        return;
    }
    if (s->mig_set_due) {
        mig_advance(s);
    }
}

void vfu_mig_reset(VfuServer *s)
{
    if (s->mig_set_due) {
        mig_set_reply(s, ECANCELED);
    }
    mig_drop_streams(s);
    vfu_dirty_stop(s);
    if (s->mig_state != VFU_MIG_RUNNING) {
        mig_set_state(s, VFU_MIG_RUNNING);
    }
}

/* ---- DEVICE_FEATURE ---- */

static int feature_set_state(VfuServer *s, VfuMsg *m)
{
    const VfuFeatureMigState *in = (const VfuFeatureMigState *)m->payload;
    uint32_t to;

    if (m->len < sizeof(*in)) {
        return vfu_msg_fail(s, m, EINVAL, "MIG_DEVICE_STATE size");
    }
    to = in->device_state;
    if (to >= VFU_MIG_NR_STATES || to == VFU_MIG_ERROR ||
        to == VFU_MIG_RUNNING_P2P || to == VFU_MIG_PRE_COPY_P2P) {
        return vfu_msg_fail(s, m, EINVAL, "no such migration state");
    }
    if (s->mig_set_due) {
        return vfu_msg_fail(s, m, EBUSY, "a state change is in progress");
    }
    trace_vfu_mig_set(vfu_id(s), mig_state_name(s->mig_state),
                      mig_state_name(to));
    s->mig_set_due = true;
    s->mig_set_req = m->hdr;
    s->mig_set_echo = *in;
    mig_advance(s);
    return VFU_REPLIED;
}

static int feature_get(VfuServer *s, VfuMsg *m, const void *out, size_t len)
{
    const VfuFeature *in = (const VfuFeature *)m->payload;
    g_autofree uint8_t *buf = g_memdup2(out, len);

    if (in->argsz < len) {
        return vfu_msg_fail(s, m, EINVAL, "DEVICE_FEATURE argsz too small");
    }
    ((VfuFeature *)buf)->argsz = len;
    ((VfuFeature *)buf)->flags = in->flags;
    vfu_send_reply(s, &m->hdr, buf, len, -1);
    return VFU_REPLIED;
}

static int feature_log_start(VfuServer *s, VfuMsg *m)
{
    const VfuFeatureLogStart *in = (const VfuFeatureLogStart *)m->payload;

    if (m->len < sizeof(*in) ||
        (m->len - sizeof(*in)) / sizeof(VfuDirtyRange) < in->num_ranges) {
        return vfu_msg_fail(s, m, EINVAL, "DMA_LOGGING_START size");
    }
    if (in->page_size < VFU_DIRTY_PAGE_SIZE ||
        (in->page_size & (in->page_size - 1))) {
        return vfu_msg_fail(s, m, EINVAL, "DMA_LOGGING_START page size");
    }
    if (s->dirty_logging) {
        return vfu_msg_fail(s, m, EBUSY, "DMA logging already started");
    }
    /* Every region is logged: the ranges only narrow what is reported. */
    vfu_dirty_start(s);
    vfu_send_reply(s, &m->hdr, m->payload, m->len, -1);
    return VFU_REPLIED;
}

static int feature_log_report(VfuServer *s, VfuMsg *m)
{
    const VfuFeatureLogReport *in = (const VfuFeatureLogReport *)m->payload;
    g_autofree uint8_t *buf = NULL;
    uint64_t npages, bytes;
    int r;

    if (m->len < sizeof(*in)) {
        return vfu_msg_fail(s, m, EINVAL, "DMA_LOGGING_REPORT size");
    }
    if (!s->dirty_logging) {
        return vfu_msg_fail(s, m, EINVAL, "DMA logging not started");
    }
    if (in->page_size < VFU_DIRTY_PAGE_SIZE ||
        (in->page_size & (in->page_size - 1)) || !in->length) {
        return vfu_msg_fail(s, m, EINVAL, "DMA_LOGGING_REPORT page size");
    }
    npages = DIV_ROUND_UP(in->length, in->page_size);
    bytes = DIV_ROUND_UP(npages, 64) * 8;
    if (bytes > VFU_SERVER_MAX_BITMAP || in->hdr.argsz < sizeof(*in) + bytes) {
        return vfu_msg_fail(s, m, bytes > VFU_SERVER_MAX_BITMAP ? E2BIG
                                                                : EINVAL,
                            "DMA_LOGGING_REPORT bitmap does not fit");
    }
    buf = g_malloc0(sizeof(*in) + bytes);
    memcpy(buf, in, sizeof(*in));
    ((VfuFeature *)buf)->argsz = sizeof(*in) + bytes;
    r = vfu_dirty_report(s, in->iova, in->length, in->page_size,
                         (uint64_t *)(buf + sizeof(*in)));
    if (r) {
        return vfu_msg_fail(s, m, r, "DMA_LOGGING_REPORT range not mapped");
    }
    vfu_send_reply(s, &m->hdr, buf, sizeof(*in) + bytes, -1);
    return VFU_REPLIED;
}

/* Which operations each feature has; 0: not a feature we know. */
static uint32_t feature_ops(uint32_t feature)
{
    switch (feature) {
    case VFU_FEATURE_MIGRATION:
    case VFU_FEATURE_DMA_LOGGING_REPORT:
        return VFU_FEATURE_GET;
    case VFU_FEATURE_MIG_DEVICE_STATE:
        return VFU_FEATURE_GET | VFU_FEATURE_SET;
    case VFU_FEATURE_DMA_LOGGING_START:
    case VFU_FEATURE_DMA_LOGGING_STOP:
        return VFU_FEATURE_SET;
    }
    return 0;
}

static int feature_do(VfuServer *s, VfuMsg *m, uint32_t feature)
{
    const VfuFeature *in = (const VfuFeature *)m->payload;
    bool set = in->flags & VFU_FEATURE_SET;

    switch (feature) {
    case VFU_FEATURE_MIGRATION: {
        VfuFeatureMigration out = {
            .flags = VFU_MIGRATION_STOP_COPY | VFU_MIGRATION_PRE_COPY,
        };

        return feature_get(s, m, &out, sizeof(out));
    }
    case VFU_FEATURE_MIG_DEVICE_STATE: {
        VfuFeatureMigState out = {
            .device_state = s->mig_state, .data_fd = -1,
        };

        return set ? feature_set_state(s, m)
                   : feature_get(s, m, &out, sizeof(out));
    }
    case VFU_FEATURE_DMA_LOGGING_START:
        return feature_log_start(s, m);
    case VFU_FEATURE_DMA_LOGGING_STOP:
        vfu_dirty_stop(s);
        vfu_send_reply(s, &m->hdr, m->payload, m->len, -1);
        return VFU_REPLIED;
    default:
        return feature_log_report(s, m);
    }
}

int vfu_handle_device_feature(VfuServer *s, VfuMsg *m)
{
    const VfuFeature *in = (const VfuFeature *)m->payload;
    uint32_t feature, ops, want;

    if (m->len < sizeof(*in)) {
        return vfu_msg_fail(s, m, EINVAL, "DEVICE_FEATURE size");
    }
    feature = in->flags & VFU_FEATURE_MASK;
    want = in->flags & (VFU_FEATURE_GET | VFU_FEATURE_SET);
    ops = feature_ops(feature);
    if (in->flags & ~(VFU_FEATURE_MASK | VFU_FEATURE_GET | VFU_FEATURE_SET |
                      VFU_FEATURE_PROBE)) {
        return vfu_msg_fail(s, m, EINVAL, "DEVICE_FEATURE flags");
    }
    if (!ops || !vfu_mig_supported(s)) {
        return vfu_msg_fail(s, m, ENOTSUP, "no such device feature");
    }
    if ((want & ops) != want) {
        return vfu_msg_fail(s, m, EINVAL, "feature operation not supported");
    }
    if (in->flags & VFU_FEATURE_PROBE) {
        vfu_send_reply(s, &m->hdr, m->payload, m->len, -1);
        return VFU_REPLIED;
    }
    if (want != VFU_FEATURE_GET && want != VFU_FEATURE_SET) {
        return vfu_msg_fail(s, m, EINVAL, "DEVICE_FEATURE: GET or SET");
    }
    return feature_do(s, m, feature);
}

/* ---- MIG_DATA_READ / MIG_DATA_WRITE ---- */

int vfu_handle_mig_data_read(VfuServer *s, VfuMsg *m)
{
    const VfuMigData *in = (const VfuMigData *)m->payload;
    VfuMigData out;
    VfuHdr h = m->hdr;
    struct iovec iov[3];
    const uint8_t *data = NULL;
    size_t avail = 0;

    if (m->len != sizeof(*in) || in->argsz < sizeof(*in) + (uint64_t)in->size) {
        return vfu_msg_fail(s, m, EINVAL, "MIG_DATA_READ size");
    }
    if (in->size > MIN(s->client_max_xfer, VFU_SERVER_MAX_DATA_XFER)) {
        return vfu_msg_fail(s, m, E2BIG, "MIG_DATA_READ over the transfer "
                            "size");
    }
    if (s->mig_state != VFU_MIG_STOP_COPY && s->mig_state != VFU_MIG_PRE_COPY) {
        return vfu_msg_fail(s, m, EINVAL, "MIG_DATA_READ outside a save "
                            "session");
    }
    if (s->mig_out) {
        data = g_bytes_get_data(s->mig_out, &avail);
        data += s->mig_out_pos;
        avail -= s->mig_out_pos;
    }
    out.size = MIN(avail, in->size);
    out.argsz = sizeof(out) + out.size;
    s->mig_out_pos += out.size;
    h.flags = VFU_FLAG_REPLY;
    h.error_no = 0;
    h.size = VFU_HDR_SIZE + sizeof(out) + out.size;
    iov[0] = (struct iovec){ &h, VFU_HDR_SIZE };
    iov[1] = (struct iovec){ &out, sizeof(out) };
    iov[2] = (struct iovec){ (void *)data, out.size };
    vfu_sendv(s, iov, out.size ? 3 : 2, -1);
    return VFU_REPLIED;
}

int vfu_handle_mig_data_write(VfuServer *s, VfuMsg *m)
{
    const VfuMigData *in = (const VfuMigData *)m->payload;

    if (m->len < sizeof(*in) || in->size != m->len - sizeof(*in) ||
        in->argsz < m->len) {
        return vfu_msg_fail(s, m, EINVAL, "MIG_DATA_WRITE size");
    }
    if (s->mig_state != VFU_MIG_RESUMING) {
        return vfu_msg_fail(s, m, EINVAL, "MIG_DATA_WRITE outside RESUMING");
    }
    if (s->mig_in->len + (uint64_t)in->size > VFU_SERVER_MAX_STATE) {
        return vfu_msg_fail(s, m, EFBIG, "device state over the limit");
    }
    g_byte_array_append(s->mig_in, m->payload + sizeof(*in), in->size);
    return 0;
}
