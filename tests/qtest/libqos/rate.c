/*
 * Measuring a rate limit (see rate.h).
 */
#include "tests/qtest/libqos/rate.h"

double qos_rate_measure(const QosRateLoad *l, uint64_t *delta)
{
    g_autofree uint64_t *before = g_new(uint64_t, l->n);
    int64_t t0, t1;

    l->run(l->opaque, QOS_RATE_WARMUP_MS);
    l->read(l->opaque, before);
    t0 = g_get_monotonic_time();
    l->run(l->opaque, QOS_RATE_WINDOW_MS);
    l->read(l->opaque, delta);
    t1 = g_get_monotonic_time();
    for (unsigned i = 0; i < l->n; i++) {
        delta[i] -= before[i];
    }
    return (t1 - t0) / 1e6;
}

void qos_assert_rate_at(const char *file, int line, const char *what,
                        double got, double want)
{
    printf("%s: %.1f per second, configured %.0f\n", what, got, want);
    if (!(got > want * 0.9 && got < want * 1.1)) {
        qos_fail_at(file, line, "%s: %.1f per second, configured %.0f "
                    "(10%%)", what, got, want);
    }
}
