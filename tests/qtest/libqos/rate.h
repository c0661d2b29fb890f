/*
 * Measuring a rate limit (throttle-group-test, net-throttle-test): a
 * load kept going through a warm-up, so that the limit's bursts are
 * spent, then over a window between two readings of the daemon's own
 * counters of what passed the limit; and the 10% a limit is held to.
 *
 * The counters are the daemon's, not the harness's: with the device's
 * queues kept full (most of a second's worth), a harness the machine
 * descheduled for a while does not change what the limit lets through
 * in the window.
 */
#ifndef LIBQOS_RATE_H
#define LIBQOS_RATE_H

#include "tests/qtest/libqos/qos-util.h"

#define QOS_RATE_WARMUP_MS      500
#define QOS_RATE_WINDOW_MS      2000

typedef struct QosRateLoad {
    /* Keep the load going for @ms. */
    void (*run)(void *opaque, int ms);
    /* Read the daemon's @n counters of what passed the limit. */
    void (*read)(void *opaque, uint64_t *counters);
    void *opaque;
    unsigned n;
} QosRateLoad;

/*
 * Warm up, then run over the window: how much each counter grew, in
 * @delta (@l->n of them); the window's length in seconds.
 */
double qos_rate_measure(const QosRateLoad *l, uint64_t *delta);

/*
 * @got per second is @want within 10% (printed either way, for the
 * log); fails the test at the caller's line otherwise.
 */
#define qos_assert_rate(what, got, want) \
    qos_assert_rate_at(__FILE__, __LINE__, what, got, want)
void qos_assert_rate_at(const char *file, int line, const char *what,
                        double got, double want);

#endif
