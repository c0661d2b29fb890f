/*
 * The event loop: fd handlers, bottom halves and timers on a GMainContext.
 * One loop per thread (the main thread's by default); everything a device
 * or backend schedules runs on the loop that owns it.
 */
#ifndef UTIL_MAIN_LOOP_H
#define UTIL_MAIN_LOOP_H

#include "util/osdep.h"

typedef void IOHandler(void *opaque);

/*
 * Watch @fd: @read runs when it is readable, @write when writable.  NULL
 * for both removes the handler.  Calling it again changes the callbacks.
 */
void iovd_set_fd_handler(int fd, IOHandler *read, IOHandler *write,
                         void *opaque);

/* Bottom halves: run once on the next loop iteration after scheduling. */
typedef struct IovdBH IovdBH;
IovdBH *iovd_bh_new(IOHandler *cb, void *opaque);
void iovd_bh_schedule(IovdBH *bh);   /* idempotent until it runs */
void iovd_bh_cancel(IovdBH *bh);
void iovd_bh_delete(IovdBH *bh);     /* NULL is fine */

/* Timers on the monotonic clock, nanosecond deadlines. */
typedef struct IovdTimer IovdTimer;
IovdTimer *iovd_timer_new(IOHandler *cb, void *opaque);
void iovd_timer_mod(IovdTimer *t, int64_t expire_ns);  /* absolute */
void iovd_timer_del(IovdTimer *t);
bool iovd_timer_pending(IovdTimer *t);
void iovd_timer_free(IovdTimer *t);  /* NULL is fine */

/*
 * Hooks run after each loop iteration's dispatch, before it polls again:
 * the place to flush batched work (Redis ae's beforesleep).
 */
void iovd_add_before_poll(IOHandler *cb, void *opaque);
void iovd_remove_before_poll(IOHandler *cb, void *opaque);

/* Run one iteration (blocking when @blocking). Returns true if work ran. */
bool main_loop_iterate(bool blocking);
/* Run until main_loop_quit(). */
void main_loop_run(void);
void main_loop_quit(void);
bool main_loop_should_quit(void);

#endif
