/*
 * QMP round-trip benchmark: one negotiated client executes query-status
 * back to back for about two seconds (each request waits for its reply)
 * and prints one result line.  Target: at least 20,000 round trips/s.
 *
 *     qmp-bench [SECONDS]
 *
 * The daemon is $IOVD_BIN (or build/iovd) with one pci-testdev.
 */
#include "util/osdep.h"

#include "tests/qtest/libqos/iovd-proc.h"
#include "tests/qtest/libqos/qmp-client.h"

#define QMP_BENCH_TARGET 20000

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? g_ascii_strtod(argv[1], NULL) : 2.0;
    g_autoptr(IovdProc) proc = iovd_proc_new();
    g_autofree char *path = iovd_proc_path(proc, "qmp.sock");
    g_autoptr(GArray) lat = g_array_new(false, false, sizeof(uint64_t));
    QmpClient *q;
    int64_t start, end, t0;
    uint64_t n = 0;
    double rate;

    if (seconds <= 0) {
        seconds = 2.0;
    }
    iovd_proc_add_args(proc, "-qmp", NULL);
    iovd_proc_add_argf(proc, "unix:%s,server=on,wait=off", path);
    iovd_proc_add_args(proc, "-device", NULL);
    iovd_proc_add_argf(proc, "pci-testdev,id=t0,socket=%s/t0.sock",
                       iovd_proc_tmpdir(proc));
    iovd_proc_start(proc);
    q = qmp_client_open(path);

    /* Warm up, then measure. */
    for (int i = 0; i < 1000; i++) {
        json_object_put(qmp_ok(q, "query-status", NULL));
    }
    start = g_get_monotonic_time();
    end = start + (int64_t)(seconds * G_USEC_PER_SEC);
    do {
        uint64_t us;

        t0 = g_get_monotonic_time();
        json_object_put(qmp_ok(q, "query-status", NULL));
        us = g_get_monotonic_time() - t0;
        g_array_append_val(lat, us);
        n++;
    } while (t0 < end);
    rate = n / ((g_get_monotonic_time() - start) / (double)G_USEC_PER_SEC);
    g_array_sort(lat, cmp_u64);

    printf("qmp-bench: query-status round trips: %.0f/s over %.1f s "
           "(p50 %" PRIu64 " us, p99 %" PRIu64 " us; target >= %d/s): %s\n",
           rate, seconds, g_array_index(lat, uint64_t, lat->len / 2),
           g_array_index(lat, uint64_t, lat->len * 99 / 100),
           QMP_BENCH_TARGET, rate >= QMP_BENCH_TARGET ? "ok" : "BELOW TARGET");
    qmp_client_free(q);
    iovd_proc_stop(proc);
    return 0;
}
