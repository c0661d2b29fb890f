/*
 * Trace events.  Each directory has a trace-events file; scripts/tracetool.py
 * turns it into build/<dir>/trace.h with one inline trace_<name>() per line.
 * Events are off until enabled by -trace PATTERN (glob, may repeat) or the
 * monitor; events whose name contains "_err_" are guest errors and are also
 * enabled by -d guest_errors.
 */
#ifndef UTIL_TRACE_H
#define UTIL_TRACE_H

#include "util/osdep.h"

typedef struct TraceEvent {
    const char *name;
    bool enabled;
} TraceEvent;

/* Every generated event registers itself here at startup. */
void trace_event_register(TraceEvent *ev);
/* Enable (or disable, with a leading '-') events matching a glob. */
int trace_enable_pattern(const char *pattern, bool enable);
/* Enable every guest error event ("*_err_*"). */
void trace_enable_guest_errors(void);
/* Count of guest error events emitted since start (tests read it). */
uint64_t trace_guest_error_count(void);
void trace_emit(const TraceEvent *ev, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);
/*
 * Called by every guest error event, enabled or not: it is counted.
 * False (not counted, not printed) while muted on this thread.
 */
bool trace_note_guest_error(void);
/*
 * Mute (nestable) the guest errors of this thread: a device's work that a
 * reset cancelled sees its DMA fail while it unwinds, which is not the
 * guest's doing (hw/core/device.c).
 */
void trace_mute_guest_errors(bool mute);
/* Iterate events: for the monitor. */
void trace_foreach(void (*fn)(TraceEvent *ev, void *opaque), void *opaque);

#endif
