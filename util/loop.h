/*
 * Event loops for the data path (QEMU's AioContext is the model).
 *
 * A loop is an object: fd handlers on epoll, bottom halves, timers, poll
 * handlers with adaptive busy polling, and before-poll hooks.  Whoever
 * uses a loop is handed it; nothing here is process-wide except the
 * thread-local "loop of this thread".  The main thread runs one (the
 * control path: monitor, command line); every iothread runs one.
 *
 * Threads.  A loop belongs to the thread that runs it (its owner).  fd
 * handlers, bottom halves and timers of a loop are created, changed and
 * run on its owner thread only: that is what lets devices keep their
 * state without locks.  Another thread reaches a loop only through
 * loop_post() (fire and forget) and loop_run_sync() (wait for the
 * answer); those are the only functions here that may be called from any
 * thread.
 *
 * Wake-ups.  Scheduling a bottom half from the owner thread costs no
 * system call: the loop is running (it is the caller) and sees it before
 * it sleeps.  Only loop_post() from another thread writes the loop's
 * eventfd, and only when the loop sleeps or is about to (notify_me, as
 * QEMU's aio_notify).
 *
 * One iteration (loop_iterate): before-poll hooks, then, when the loop
 * may block and nothing is due, busy polling for up to poll_ns (see
 * loop_set_poll_params: pollers run, fds are looked at every 2 us), then
 * epoll_wait; then fd handlers, posted work, bottom halves and expired
 * timers run, in that order.  A bottom half scheduled while bottom halves
 * run waits for the next iteration, which then skips epoll_wait if fds
 * were looked at less than 2 us ago.
 */
#ifndef UTIL_LOOP_H
#define UTIL_LOOP_H

#include "util/osdep.h"

typedef struct EventLoop EventLoop;
typedef struct LoopBH LoopBH;
typedef struct LoopTimer LoopTimer;
typedef struct LoopPoller LoopPoller;

typedef void LoopFunc(void *opaque);

/* ---- loops ---- */

/* A new loop; its owner is the thread that calls loop_attach_thread(). */
EventLoop *loop_new(const char *name, GError **errp);
/* Free a loop that no thread runs any more (its handlers are gone). */
void loop_free(EventLoop *l);
const char *loop_name(EventLoop *l);
/* Make @l the loop of the calling thread (its owner from now on). */
void loop_attach_thread(EventLoop *l);
/* The loop of the calling thread, NULL when it has none. */
EventLoop *loop_current(void);
/* True when the calling thread owns @l. */
bool loop_in_thread(EventLoop *l);

/* Run one iteration; blocks when @blocking and nothing is due.  True
 * when any handler, bottom half or timer ran. */
bool loop_iterate(EventLoop *l, bool blocking);
/* Iterate until loop_quit() (any thread). */
void loop_run(EventLoop *l);
void loop_quit(EventLoop *l);

/* ---- fd handlers ---- */

/*
 * Watch @fd: @read runs when it is readable (or on error and hangup, so
 * that the reader sees EOF), @write when it is writable.  NULL for both
 * removes the handler; calling it again changes the callbacks (a system
 * call only when the set of events changes).  A handler may remove
 * itself or others from inside a callback.
 */
void loop_set_fd(EventLoop *l, int fd, LoopFunc *read, LoopFunc *write,
                 void *opaque);

/* ---- bottom halves ---- */

LoopBH *loop_bh_new(EventLoop *l, LoopFunc *cb, void *opaque);
/* Run @bh once on its loop's next pass; idempotent until it ran. */
void loop_bh_schedule(LoopBH *bh);
void loop_bh_cancel(LoopBH *bh);
bool loop_bh_scheduled(LoopBH *bh);
void loop_bh_delete(LoopBH *bh);            /* NULL is fine */
EventLoop *loop_bh_loop(LoopBH *bh);
/* Rebind to loop @to, still scheduled if it was (both loops owned or
 * borrowed by the caller). */
void loop_bh_move(LoopBH *bh, EventLoop *to);

/* ---- timers (monotonic clock, nanoseconds) ---- */

LoopTimer *loop_timer_new(EventLoop *l, LoopFunc *cb, void *opaque);
void loop_timer_mod(LoopTimer *t, int64_t expire_ns);  /* absolute */
void loop_timer_del(LoopTimer *t);
bool loop_timer_pending(LoopTimer *t);
int64_t loop_timer_expire(LoopTimer *t);     /* -1 when not pending */
/* Rebind to loop @to, still pending if it was (as loop_bh_move). */
void loop_timer_move(LoopTimer *t, EventLoop *to);
void loop_timer_free(LoopTimer *t);          /* NULL is fine */

/* ---- poll handlers and adaptive polling ---- */

/*
 * @poll looks for work and does it; it returns true when it found any.
 * While the loop busy-polls it calls every poller instead of sleeping;
 * @started (optional) is told when busy polling begins (true) and ends
 * (false) so that a device can switch off its notifications meanwhile
 * (virtio: VRING_USED_F_NO_NOTIFY) and back on before the loop sleeps.
 * After "ends", the loop polls once more before it sleeps: the device
 * re-enables notifications first, so no request slips between the two.
 */
LoopPoller *loop_poller_new(EventLoop *l, bool (*poll)(void *opaque),
                            void (*started)(void *opaque, bool on),
                            void *opaque);
void loop_poller_free(LoopPoller *p);        /* NULL is fine */
/*
 * A watch poller has no notification at all (NVMe doorbells in memory the
 * guest writes): the loop also runs it when it wakes from a sleep, and
 * sleeps at most 50 us after it last found work, backing off to the
 * loop's watch maximum (LOOP_WATCH_MAX_NS_DEFAULT unless set): the most a
 * request after idle waits, against a wakeup (CPU) that often when idle.
 */
void loop_poller_set_watch(LoopPoller *p, bool on);
#define LOOP_WATCH_MAX_NS_DEFAULT 500000
void loop_set_watch_max(EventLoop *l, int64_t ns);

/*
 * Busy polling: each time the loop would sleep it first polls (its
 * pollers, and its fds every 2 us) for up to poll_ns, which adapts: it
 * grows (times @grow, from 4 us) while the loop sleeps for less than
 * @max_ns, and shrinks (divided by @shrink, or to 0 when @shrink is 0)
 * when it sleeps longer.  @max_ns 0 turns polling off (the default of
 * loop_new(); iothreads and iovd's main loop take
 * LOOP_POLL_MAX_NS_DEFAULT).  @grow 0 means 2.
 */
#define LOOP_POLL_MAX_NS_DEFAULT 32768     /* QEMU's iothread default */
void loop_set_poll_params(EventLoop *l, int64_t max_ns, int64_t grow,
                          int64_t shrink);
/* A loop's polling, as -object iothread / main-loop set it. */
typedef struct LoopPollParams {
    int64_t max_ns, grow, shrink;   /* loop_set_poll_params() */
    int64_t idle_ns;                /* loop_set_watch_max() */
} LoopPollParams;
void loop_set_poll(EventLoop *l, const LoopPollParams *p);
/* The current poll_ns and how many pollers are registered (monitor). */
int64_t loop_poll_ns(EventLoop *l);
int64_t loop_poll_max_ns(EventLoop *l);

/* ---- before-poll hooks ---- */

/*
 * Run at the start of every iteration, before the loop looks for events:
 * the place to flush what was batched during the previous one (Redis
 * ae's beforesleep).  A hook that finds work done (completions that came
 * back inline) hands it to a bottom half: the loop decides whether to
 * sleep after the hooks ran, from what is due.
 */
void loop_add_before_poll(EventLoop *l, LoopFunc *cb, void *opaque);
void loop_remove_before_poll(EventLoop *l, LoopFunc *cb, void *opaque);

/* ---- from other threads ---- */

/* Run @cb(@opaque) once on @l's thread, soon.  Any thread. */
void loop_post(EventLoop *l, LoopFunc *cb, void *opaque);
/*
 * Run @cb(@opaque) on @l's thread and wait until it returned.  Called on
 * @l's own thread it just calls @cb.  The waiting thread does nothing
 * else meanwhile, so @l's thread must never wait for it in turn; and it
 * lends its own loop to @l's thread until then: @cb may add or remove
 * handlers there (a netdev moving to its NIC's loop).
 */
void loop_run_sync(EventLoop *l, LoopFunc *cb, void *opaque);

/* ---- statistics ---- */

typedef struct LoopStats {
    uint64_t iterations;
    uint64_t wakeups;           /* epoll_wait calls that slept */
    uint64_t notifies;          /* eventfd writes by other threads */
    uint64_t polls;             /* busy-poll passes */
    uint64_t poll_hits;         /* passes that found work */
} LoopStats;
void loop_get_stats(EventLoop *l, LoopStats *st);

/* ---- the main loop (control path) ---- */

/*
 * The main thread's loop: the monitor, the command line and every device
 * without iothread= run on it.  Only control-path code asks for it; the
 * data path uses the loop it was handed.
 */
EventLoop *loop_main(void);
void loop_set_main(EventLoop *l);

#endif
