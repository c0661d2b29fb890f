#include "util/trace.h"

#include <fnmatch.h>
#include <sys/time.h>

static GPtrArray *trace_events;
static uint64_t guest_errors;
static GPtrArray *trace_patterns;   /* enable patterns seen before register */

static bool trace_apply_patterns(TraceEvent *ev)
{
    bool on = false;

    for (guint i = 0; trace_patterns && i < trace_patterns->len; i++) {
        const char *p = g_ptr_array_index(trace_patterns, i);
        bool neg = p[0] == '-';

        if (fnmatch(neg ? p + 1 : p, ev->name, 0) == 0) {
            on = !neg;
        }
    }
    return on;
}

void trace_event_register(TraceEvent *ev)
{
    if (!trace_events) {
        trace_events = g_ptr_array_new();
    }
    /* A header included by several files registers one event per file. */
    g_ptr_array_add(trace_events, ev);
    ev->enabled = trace_apply_patterns(ev);
}

int trace_enable_pattern(const char *pattern, bool enable)
{
    int n = 0;

    if (!trace_patterns) {
        trace_patterns = g_ptr_array_new_with_free_func(g_free);
    }
    g_ptr_array_add(trace_patterns,
                    enable ? g_strdup(pattern) : g_strdup_printf("-%s",
                                                                 pattern));
    for (guint i = 0; trace_events && i < trace_events->len; i++) {
        TraceEvent *ev = g_ptr_array_index(trace_events, i);

        if (fnmatch(pattern, ev->name, 0) == 0) {
            ev->enabled = enable;
            n++;
        }
    }
    return n;
}

void trace_enable_guest_errors(void)
{
    trace_enable_pattern("*_err_*", true);
}

static __thread unsigned guest_errors_muted;

bool trace_note_guest_error(void)
{
    if (guest_errors_muted) {
        return false;
    }
    __atomic_fetch_add(&guest_errors, 1, __ATOMIC_RELAXED);
    return true;
}

void trace_mute_guest_errors(bool mute)
{
    if (mute) {
        guest_errors_muted++;
    } else {
        g_assert(guest_errors_muted > 0);
        guest_errors_muted--;
    }
}

uint64_t trace_guest_error_count(void)
{
    return __atomic_load_n(&guest_errors, __ATOMIC_RELAXED);
}

void trace_emit(const TraceEvent *ev, const char *fmt, ...)
{
    va_list ap;
    struct timeval tv;

    gettimeofday(&tv, NULL);
    fprintf(stderr, "%ld.%06ld:%s ", (long)tv.tv_sec, (long)tv.tv_usec,
            ev->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void trace_foreach(void (*fn)(TraceEvent *ev, void *opaque), void *opaque)
{
    for (guint i = 0; trace_events && i < trace_events->len; i++) {
        fn(g_ptr_array_index(trace_events, i), opaque);
    }
}
