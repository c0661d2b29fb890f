/*
 * Unit tests for util/loop.c: bottom halves, timers, fd handlers,
 * before-poll hooks, pollers with adaptive polling, posting from other
 * threads, and the loop itself.  Every test runs in its own process
 * (Check's fork mode) with a new loop.
 */
#include <check.h>

#include "util/osdep.h"
#include "util/loop.h"

#include <inttypes.h>
#include <signal.h>
#include <sys/eventfd.h>

static EventLoop *L;

#define WAIT_MS 2000

static void iterate_n(unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        loop_iterate(L, false);
    }
}

/* ---- bottom halves ------------------------------------------------------ */

typedef struct BHState {
    unsigned runs;
    LoopBH *bh;
    LoopBH *other;
    LoopBH *third;
    unsigned seq;               /* global order stamp of the last run */
} BHState;

static unsigned seq_counter;

static void bh_count(void *opaque)
{
    BHState *st = opaque;

    st->runs++;
    st->seq = ++seq_counter;
}

START_TEST(test_bh_runs_once)
{
    BHState st = { 0 };
    LoopBH *bh = loop_bh_new(L, bh_count, &st);

    /* Nothing runs before it is scheduled. */
    iterate_n(3);
    ck_assert_uint_eq(st.runs, 0);

    loop_bh_schedule(bh);
    ck_assert_uint_eq(st.runs, 0);      /* not synchronously */
    ck_assert(loop_iterate(L, false));
    ck_assert_uint_eq(st.runs, 1);
    iterate_n(5);
    ck_assert_uint_eq(st.runs, 1);

    /* Each schedule is one run. */
    loop_bh_schedule(bh);
    iterate_n(3);
    ck_assert_uint_eq(st.runs, 2);
    loop_bh_delete(bh);
}
END_TEST

START_TEST(test_bh_schedule_twice)
{
    BHState st = { 0 };
    LoopBH *bh = loop_bh_new(L, bh_count, &st);

    loop_bh_schedule(bh);
    loop_bh_schedule(bh);
    loop_bh_schedule(bh);
    loop_iterate(L, false);
    ck_assert_uint_eq(st.runs, 1);
    iterate_n(3);
    ck_assert_uint_eq(st.runs, 1);
    loop_bh_delete(bh);
}
END_TEST

START_TEST(test_bh_cancel)
{
    BHState a = { 0 }, b = { 0 };
    LoopBH *bha = loop_bh_new(L, bh_count, &a);
    LoopBH *bhb = loop_bh_new(L, bh_count, &b);

    /* Cancelling what was never scheduled is harmless. */
    loop_bh_cancel(bha);

    loop_bh_schedule(bha);
    loop_bh_schedule(bhb);
    loop_bh_cancel(bha);
    iterate_n(3);
    ck_assert_uint_eq(a.runs, 0);
    ck_assert_uint_eq(b.runs, 1);

    /* Scheduling again after a cancel works. */
    loop_bh_schedule(bha);
    iterate_n(1);
    ck_assert_uint_eq(a.runs, 1);

    /* Cancel twice, delete a scheduled one. */
    loop_bh_schedule(bha);
    loop_bh_cancel(bha);
    loop_bh_cancel(bha);
    loop_bh_schedule(bhb);
    loop_bh_delete(bhb);
    iterate_n(3);
    ck_assert_uint_eq(a.runs, 1);
    ck_assert_uint_eq(b.runs, 1);
    loop_bh_delete(bha);
    loop_bh_delete(NULL);
}
END_TEST

static void bh_delete_self(void *opaque)
{
    BHState *st = opaque;

    st->runs++;
    loop_bh_delete(st->bh);
    st->bh = NULL;
}

START_TEST(test_bh_delete_in_callback)
{
    BHState st = { 0 }, after = { 0 };
    LoopBH *bh_after = loop_bh_new(L, bh_count, &after);

    st.bh = loop_bh_new(L, bh_delete_self, &st);
    loop_bh_schedule(st.bh);
    loop_bh_schedule(bh_after);
    loop_iterate(L, false);
    ck_assert_uint_eq(st.runs, 1);
    ck_assert_ptr_null(st.bh);
    /* The rest of the batch still ran. */
    ck_assert_uint_eq(after.runs, 1);
    iterate_n(3);
    ck_assert_uint_eq(st.runs, 1);
    loop_bh_delete(bh_after);
}
END_TEST

static void bh_delete_other(void *opaque)
{
    BHState *st = opaque;

    st->runs++;
    loop_bh_delete(st->other);
    st->other = NULL;
}

START_TEST(test_bh_delete_other_in_callback)
{
    BHState a = { 0 }, b = { 0 };
    LoopBH *bha = loop_bh_new(L, bh_delete_other, &a);

    a.other = loop_bh_new(L, bh_count, &b);
    loop_bh_schedule(bha);
    loop_bh_schedule(a.other);      /* scheduled, then deleted by bha */
    iterate_n(3);
    ck_assert_uint_eq(a.runs, 1);
    ck_assert_uint_eq(b.runs, 0);
    loop_bh_delete(bha);
}
END_TEST

static void bh_schedule_other(void *opaque)
{
    BHState *st = opaque;

    st->runs++;
    loop_bh_schedule(st->other);
}

START_TEST(test_bh_from_bh)
{
    BHState a = { 0 }, b = { 0 };
    LoopBH *bha = loop_bh_new(L, bh_schedule_other, &a);

    a.other = loop_bh_new(L, bh_count, &b);
    loop_bh_schedule(bha);
    loop_iterate(L, false);
    ck_assert_uint_eq(a.runs, 1);
    ck_assert_uint_eq(b.runs, 0);       /* next iteration, not this one */
    loop_iterate(L, false);
    ck_assert_uint_eq(b.runs, 1);
    iterate_n(3);
    ck_assert_uint_eq(a.runs, 1);
    ck_assert_uint_eq(b.runs, 1);
    loop_bh_delete(a.other);
    loop_bh_delete(bha);
}
END_TEST

static void bh_reschedule_self(void *opaque)
{
    BHState *st = opaque;

    st->runs++;
    loop_bh_schedule(st->bh);
}

START_TEST(test_bh_reschedule_self)
{
    BHState st = { 0 };

    /* A BH rescheduling itself runs once per iteration, never spins. */
    st.bh = loop_bh_new(L, bh_reschedule_self, &st);
    loop_bh_schedule(st.bh);
    for (unsigned i = 1; i <= 5; i++) {
        loop_iterate(L, false);
        ck_assert_uint_eq(st.runs, i);
    }
    loop_bh_cancel(st.bh);
    iterate_n(3);
    ck_assert_uint_eq(st.runs, 5);
    loop_bh_delete(st.bh);
}
END_TEST

static void bh_cancel_and_schedule(void *opaque)
{
    BHState *st = opaque;

    st->runs++;
    loop_bh_cancel(st->other);      /* was scheduled in the same batch */
    loop_bh_schedule(st->third);    /* must wait for the next iteration */
}

START_TEST(test_bh_cancel_in_batch_then_schedule)
{
    BHState a = { 0 }, b = { 0 }, c = { 0 };
    LoopBH *bha = loop_bh_new(L, bh_cancel_and_schedule, &a);
    unsigned c_first;

    a.other = loop_bh_new(L, bh_count, &b);
    a.third = loop_bh_new(L, bh_count, &c);

    loop_bh_schedule(bha);
    loop_bh_schedule(a.other);
    loop_iterate(L, false);
    c_first = c.runs;
    loop_iterate(L, false);
    loop_bh_delete(a.other);
    loop_bh_delete(a.third);
    loop_bh_delete(bha);

    ck_assert_uint_eq(a.runs, 1);
    ck_assert_uint_eq(b.runs, 0);
    /* Scheduled from a BH: runs on the next iteration, not this one. */
    ck_assert_uint_eq(c_first, 0);
    ck_assert_uint_eq(c.runs, 1);
}
END_TEST

static void bh_nested_iterate(void *opaque)
{
    /* Waiting for something by running the loop: refused. */
    loop_iterate(L, false);
}

/* No nested event loops: the loop aborts rather than run one. */
START_TEST(test_bh_nested_iteration)
{
    LoopBH *bh = loop_bh_new(L, bh_nested_iterate, NULL);

    loop_bh_schedule(bh);
    loop_iterate(L, false);
    ck_abort_msg("a nested loop_iterate() ran");
}
END_TEST

START_TEST(test_bh_many)
{
    enum { N = 100 };
    BHState st[N] = { 0 };
    LoopBH *bh[N];

    for (unsigned i = 0; i < N; i++) {
        bh[i] = loop_bh_new(L, bh_count, &st[i]);
        loop_bh_schedule(bh[i]);
    }
    /* Cancel every third one. */
    for (unsigned i = 0; i < N; i += 3) {
        loop_bh_cancel(bh[i]);
    }
    loop_iterate(L, false);
    for (unsigned i = 0; i < N; i++) {
        ck_assert_uint_eq(st[i].runs, i % 3 ? 1 : 0);
        loop_bh_delete(bh[i]);
    }
}
END_TEST

/* ---- timers ------------------------------------------------------------- */

typedef struct TimerState {
    LoopTimer *timer;
    LoopTimer *other;
    unsigned fired;
    int64_t expire_ns;
    int64_t fired_at;
    unsigned order;
    bool pending_in_cb;
    unsigned rearm;             /* re-arm this many times */
} TimerState;

static unsigned fire_counter;

static void timer_cb(void *opaque)
{
    TimerState *st = opaque;

    st->fired++;
    st->fired_at = clock_ns();
    st->order = ++fire_counter;
    st->pending_in_cb = loop_timer_pending(st->timer);
    if (st->rearm) {
        st->rearm--;
        st->expire_ns = clock_ns() + 100000;
        loop_timer_mod(st->timer, st->expire_ns);
    }
}

static void timer_del_other(void *opaque)
{
    TimerState *st = opaque;

    st->fired++;
    loop_timer_del(st->other);
}

static void timer_init(TimerState *st)
{
    memset(st, 0, sizeof(*st));
    st->timer = loop_timer_new(L, timer_cb, st);
}

static void timer_arm(TimerState *st, int64_t expire_ns)
{
    st->expire_ns = expire_ns;
    loop_timer_mod(st->timer, expire_ns);
}

START_TEST(test_timer_fires)
{
    TimerState st;
    bool fired;

    timer_init(&st);
    ck_assert(!loop_timer_pending(st.timer));
    timer_arm(&st, clock_ns() + 2 * 1000000);
    ck_assert(loop_timer_pending(st.timer));
    /* Not synchronously, and not early. */
    loop_iterate(L, false);
    ck_assert_uint_eq(st.fired, 0);
    ck_assert(loop_timer_pending(st.timer));
    do {
        loop_iterate(L, true);
        fired = st.fired > 0;
    } while (!fired && clock_ns() < st.expire_ns + WAIT_MS * 1000000LL);
    ck_assert_uint_eq(st.fired, 1);
    ck_assert_int_ge(st.fired_at, st.expire_ns);
    ck_assert(!st.pending_in_cb);
    ck_assert(!loop_timer_pending(st.timer));
    /* One shot. */
    g_usleep(3000);
    iterate_n(3);
    ck_assert_uint_eq(st.fired, 1);
    loop_timer_free(st.timer);
    loop_timer_free(NULL);
}
END_TEST

START_TEST(test_timer_past_deadline)
{
    TimerState st;

    timer_init(&st);
    timer_arm(&st, clock_ns() - 1000000);
    ck_assert(loop_timer_pending(st.timer));
    loop_iterate(L, false);
    ck_assert_uint_eq(st.fired, 1);
    timer_arm(&st, 0);
    loop_iterate(L, false);
    ck_assert_uint_eq(st.fired, 2);
    loop_timer_free(st.timer);
}
END_TEST

START_TEST(test_timer_blocking_iteration)
{
    TimerState st;

    /* A blocking iteration sleeps until the timer is due, then runs it. */
    timer_init(&st);
    timer_arm(&st, clock_ns() + 5 * 1000000);
    for (unsigned i = 0; i < 10 && !st.fired; i++) {
        loop_iterate(L, true);
    }
    ck_assert_uint_eq(st.fired, 1);
    ck_assert_int_ge(st.fired_at, st.expire_ns);
    loop_timer_free(st.timer);
}
END_TEST

START_TEST(test_timer_order)
{
    TimerState st[3];
    int64_t now = clock_ns();
    bool all = false;

    for (unsigned i = 0; i < 3; i++) {
        timer_init(&st[i]);
    }
    fire_counter = 0;
    /* Created in one order, due in another. */
    timer_arm(&st[0], now + 75 * 1000000);
    timer_arm(&st[1], now + 25 * 1000000);
    timer_arm(&st[2], now + 50 * 1000000);
    while (!all && clock_ns() < now + WAIT_MS * 1000000LL) {
        loop_iterate(L, true);
        all = st[0].fired && st[1].fired && st[2].fired;
    }
    ck_assert(all);
    ck_assert_uint_eq(st[1].order, 1);
    ck_assert_uint_eq(st[2].order, 2);
    ck_assert_uint_eq(st[0].order, 3);
    for (unsigned i = 0; i < 3; i++) {
        ck_assert_uint_eq(st[i].fired, 1);
        ck_assert_int_ge(st[i].fired_at, st[i].expire_ns);
        loop_timer_free(st[i].timer);
    }
}
END_TEST

START_TEST(test_timer_order_same_iteration)
{
    TimerState st[3];
    int64_t now = clock_ns();

    for (unsigned i = 0; i < 3; i++) {
        timer_init(&st[i]);
    }
    fire_counter = 0;
    /*
     * All three are overdue by the time the loop runs (it was busy):
     * they still fire in deadline order, not in creation order.
     */
    timer_arm(&st[0], now + 3 * 1000000);
    timer_arm(&st[1], now + 1 * 1000000);
    timer_arm(&st[2], now + 2 * 1000000);
    g_usleep(10 * 1000);
    loop_iterate(L, false);
    for (unsigned i = 0; i < 3; i++) {
        loop_timer_free(st[i].timer);
    }
    for (unsigned i = 0; i < 3; i++) {
        ck_assert_uint_eq(st[i].fired, 1);
    }
    ck_assert_uint_eq(st[1].order, 1);
    ck_assert_uint_eq(st[2].order, 2);
    ck_assert_uint_eq(st[0].order, 3);
}
END_TEST

START_TEST(test_timer_del)
{
    TimerState st;

    timer_init(&st);
    timer_arm(&st, clock_ns() + 1000000);
    loop_timer_del(st.timer);
    ck_assert(!loop_timer_pending(st.timer));
    g_usleep(5000);
    iterate_n(5);
    ck_assert_uint_eq(st.fired, 0);
    /* Deleting an idle timer is fine; re-arming after a delete works. */
    loop_timer_del(st.timer);
    timer_arm(&st, clock_ns());
    loop_iterate(L, false);
    ck_assert_uint_eq(st.fired, 1);
    /* Deleting an overdue timer before the loop runs also stops it. */
    timer_arm(&st, clock_ns() - 1000);
    loop_timer_del(st.timer);
    iterate_n(3);
    ck_assert_uint_eq(st.fired, 1);
    loop_timer_free(st.timer);
}
END_TEST

START_TEST(test_timer_mod_replaces)
{
    TimerState st;
    int64_t t0 = clock_ns();

    timer_init(&st);
    /* Far away, then soon: the second deadline counts. */
    timer_arm(&st, t0 + 3600 * 1000000000LL);
    timer_arm(&st, t0 + 1000000);
    for (int64_t end = t0 + WAIT_MS * 1000000LL;
         !st.fired && clock_ns() < end;) {
        loop_iterate(L, true);
    }
    ck_assert_uint_eq(st.fired, 1);
    /* Soon, then far away: it does not fire soon. */
    timer_arm(&st, clock_ns() + 1000000);
    timer_arm(&st, clock_ns() + 3600 * 1000000000LL);
    g_usleep(5000);
    iterate_n(3);
    ck_assert_uint_eq(st.fired, 1);
    ck_assert(loop_timer_pending(st.timer));
    loop_timer_free(st.timer);
}
END_TEST

START_TEST(test_timer_rearm_in_callback)
{
    TimerState st;
    int64_t end = clock_ns() + WAIT_MS * 1000000LL;

    timer_init(&st);
    st.rearm = 3;
    timer_arm(&st, clock_ns());
    while (st.fired < 4 && clock_ns() < end) {
        loop_iterate(L, true);
    }
    ck_assert_uint_eq(st.fired, 4);
    /* A timer is no longer pending when its callback runs. */
    ck_assert(!st.pending_in_cb);
    ck_assert(!loop_timer_pending(st.timer));
    g_usleep(2000);
    iterate_n(3);
    ck_assert_uint_eq(st.fired, 4);
    loop_timer_free(st.timer);
}
END_TEST

START_TEST(test_timer_free_pending)
{
    TimerState st;

    timer_init(&st);
    timer_arm(&st, clock_ns() - 1000);
    loop_timer_free(st.timer);
    iterate_n(3);
    ck_assert_uint_eq(st.fired, 0);
}
END_TEST

START_TEST(test_timer_del_by_other_same_iteration)
{
    TimerState a = { 0 }, b = { 0 };
    unsigned first;

    /*
     * Both are due in the same iteration; whichever runs first deletes the
     * other, which must then not fire (a completion cancelling its own
     * timeout).
     */
    a.timer = loop_timer_new(L, timer_del_other, &a);
    b.timer = loop_timer_new(L, timer_del_other, &b);
    a.other = b.timer;
    b.other = a.timer;
    loop_timer_mod(a.timer, clock_ns() - 2000);
    loop_timer_mod(b.timer, clock_ns() - 1000);
    loop_iterate(L, false);
    first = a.fired + b.fired;
    iterate_n(3);
    loop_timer_free(a.timer);
    loop_timer_free(b.timer);
    ck_assert_uint_eq(first, 1);
    ck_assert_uint_eq(a.fired + b.fired, 1);
}
END_TEST

static void timer_postpone_other(void *opaque)
{
    TimerState *st = opaque;

    st->fired++;
    loop_timer_mod(st->other, clock_ns() + 3600 * 1000000000LL);
}

START_TEST(test_timer_postponed_by_other_same_iteration)
{
    TimerState a = { 0 }, b = { 0 };
    unsigned first;
    bool a_pending, b_pending;

    /* As above, but the other one is moved an hour ahead, not deleted. */
    a.timer = loop_timer_new(L, timer_postpone_other, &a);
    b.timer = loop_timer_new(L, timer_postpone_other, &b);
    a.other = b.timer;
    b.other = a.timer;
    loop_timer_mod(a.timer, clock_ns() - 2000);
    loop_timer_mod(b.timer, clock_ns() - 1000);
    loop_iterate(L, false);
    first = a.fired + b.fired;
    a_pending = loop_timer_pending(a.timer);
    b_pending = loop_timer_pending(b.timer);
    loop_timer_free(a.timer);
    loop_timer_free(b.timer);
    ck_assert_uint_eq(first, 1);
    /* The postponed one is still pending. */
    ck_assert(a_pending != b_pending);
}
END_TEST

/* ---- fd handlers -------------------------------------------------------- */

typedef struct FdState {
    int rfd, wfd;
    unsigned reads, writes;
    bool drain;
    bool remove_self;
    bool close_on_remove;
    bool saw_eof;
    int other_fd;               /* remove this fd's handler, if >= 0 */
} FdState;

static void pipe_open(FdState *st)
{
    int p[2];

    memset(st, 0, sizeof(*st));
    ck_assert_int_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    st->rfd = p[0];
    st->wfd = p[1];
    st->other_fd = -1;
}

static void pipe_close(FdState *st)
{
    if (st->rfd >= 0) {
        loop_set_fd(L, st->rfd, NULL, NULL, NULL);
        close(st->rfd);
    }
    if (st->wfd >= 0) {
        loop_set_fd(L, st->wfd, NULL, NULL, NULL);
        close(st->wfd);
    }
}

static void pipe_put(FdState *st, const char *s)
{
    ck_assert_int_eq(write(st->wfd, s, strlen(s)), (ssize_t)strlen(s));
}

static void fd_read_cb(void *opaque)
{
    FdState *st = opaque;
    char buf[64];

    st->reads++;
    if (st->drain) {
        ssize_t n = read(st->rfd, buf, sizeof(buf));

        if (n == 0) {
            st->saw_eof = true;
        }
    }
    if (st->other_fd >= 0) {
        loop_set_fd(L, st->other_fd, NULL, NULL, NULL);
    }
    if (st->remove_self) {
        loop_set_fd(L, st->rfd, NULL, NULL, NULL);
        if (st->close_on_remove) {
            close(st->rfd);
            st->rfd = -1;
        }
    }
}

static void fd_read_cb2(void *opaque)
{
    FdState *st = opaque;

    st->reads += 100;
}

static void fd_write_cb(void *opaque)
{
    FdState *st = opaque;

    st->writes++;
}

START_TEST(test_fd_readable)
{
    FdState st;

    pipe_open(&st);
    st.drain = true;
    loop_set_fd(L, st.rfd, fd_read_cb, NULL, &st);
    iterate_n(3);
    ck_assert_uint_eq(st.reads, 0);

    pipe_put(&st, "x");
    loop_iterate(L, false);
    ck_assert_uint_eq(st.reads, 1);
    /* Drained: no more calls. */
    iterate_n(3);
    ck_assert_uint_eq(st.reads, 1);

    pipe_put(&st, "yz");
    loop_iterate(L, false);
    ck_assert_uint_eq(st.reads, 2);
    pipe_close(&st);
}
END_TEST

START_TEST(test_fd_level_triggered)
{
    FdState st;

    /* Data left unread keeps the handler firing. */
    pipe_open(&st);
    loop_set_fd(L, st.rfd, fd_read_cb, NULL, &st);
    pipe_put(&st, "x");
    iterate_n(3);
    ck_assert_uint_eq(st.reads, 3);
    pipe_close(&st);
}
END_TEST

START_TEST(test_fd_blocking_wakeup)
{
    FdState st;

    pipe_open(&st);
    st.drain = true;
    loop_set_fd(L, st.rfd, fd_read_cb, NULL, &st);
    pipe_put(&st, "x");
    /* A blocking iteration returns for a readable fd. */
    ck_assert(loop_iterate(L, true));
    ck_assert_uint_eq(st.reads, 1);
    pipe_close(&st);
}
END_TEST

START_TEST(test_fd_hangup)
{
    FdState st;

    pipe_open(&st);
    st.drain = true;
    loop_set_fd(L, st.rfd, fd_read_cb, NULL, &st);
    close(st.wfd);
    st.wfd = -1;
    loop_iterate(L, false);
    ck_assert_uint_eq(st.reads, 1);
    ck_assert(st.saw_eof);
    pipe_close(&st);
}
END_TEST

START_TEST(test_fd_remove)
{
    FdState st;

    pipe_open(&st);
    loop_set_fd(L, st.rfd, fd_read_cb, NULL, &st);
    loop_set_fd(L, st.rfd, NULL, NULL, NULL);
    pipe_put(&st, "x");
    iterate_n(3);
    ck_assert_uint_eq(st.reads, 0);
    /* Removing twice, or what was never added, is harmless. */
    loop_set_fd(L, st.rfd, NULL, NULL, NULL);
    loop_set_fd(L, st.wfd, NULL, NULL, NULL);
    /* Re-adding works. */
    loop_set_fd(L, st.rfd, fd_read_cb, NULL, &st);
    loop_iterate(L, false);
    ck_assert_uint_eq(st.reads, 1);
    pipe_close(&st);
}
END_TEST

START_TEST(test_fd_remove_in_callback)
{
    FdState st;

    pipe_open(&st);
    st.remove_self = true;
    loop_set_fd(L, st.rfd, fd_read_cb, NULL, &st);
    pipe_put(&st, "x");                 /* never drained */
    loop_iterate(L, false);
    ck_assert_uint_eq(st.reads, 1);
    iterate_n(3);
    ck_assert_uint_eq(st.reads, 1);
    pipe_close(&st);
}
END_TEST

START_TEST(test_fd_remove_and_close_in_callback)
{
    FdState st, st2;

    pipe_open(&st);
    st.remove_self = true;
    st.close_on_remove = true;
    loop_set_fd(L, st.rfd, fd_read_cb, NULL, &st);
    pipe_put(&st, "x");
    loop_iterate(L, false);
    ck_assert_uint_eq(st.reads, 1);
    ck_assert_int_eq(st.rfd, -1);
    /* The fd number is reused by a new pipe: its handler is its own. */
    pipe_open(&st2);
    st2.drain = true;
    loop_set_fd(L, st2.rfd, fd_read_cb, NULL, &st2);
    pipe_put(&st2, "y");
    loop_iterate(L, false);
    ck_assert_uint_eq(st2.reads, 1);
    ck_assert_uint_eq(st.reads, 1);
    pipe_close(&st2);
    pipe_close(&st);
}
END_TEST

START_TEST(test_fd_remove_other_in_callback)
{
    FdState a, b;

    pipe_open(&a);
    pipe_open(&b);
    a.other_fd = b.rfd;
    b.other_fd = a.rfd;
    loop_set_fd(L, a.rfd, fd_read_cb, NULL, &a);
    loop_set_fd(L, b.rfd, fd_read_cb, NULL, &b);
    pipe_put(&a, "x");
    pipe_put(&b, "x");
    /* Both readable; whichever runs first removes the other. */
    loop_iterate(L, false);
    ck_assert_uint_eq(a.reads + b.reads, 1);
    iterate_n(3);
    ck_assert_uint_eq(a.reads + b.reads, 1 + 3);
    pipe_close(&a);
    pipe_close(&b);
}
END_TEST

START_TEST(test_fd_change_callbacks)
{
    FdState st;

    pipe_open(&st);
    loop_set_fd(L, st.rfd, fd_read_cb, NULL, &st);
    loop_set_fd(L, st.rfd, fd_read_cb2, NULL, &st);
    pipe_put(&st, "x");
    loop_iterate(L, false);
    ck_assert_uint_eq(st.reads, 100);
    pipe_close(&st);
}
END_TEST

START_TEST(test_fd_writable)
{
    FdState st;

    pipe_open(&st);
    /* An empty pipe is writable. */
    loop_set_fd(L, st.wfd, NULL, fd_write_cb, &st);
    loop_iterate(L, false);
    ck_assert_uint_eq(st.writes, 1);
    ck_assert_uint_eq(st.reads, 0);
    /* Dropping the write callback stops it. */
    loop_set_fd(L, st.wfd, fd_read_cb, NULL, &st);
    iterate_n(3);
    ck_assert_uint_eq(st.writes, 1);
    ck_assert_uint_eq(st.reads, 0);     /* write end never readable */
    loop_set_fd(L, st.wfd, NULL, fd_write_cb, &st);
    loop_iterate(L, false);
    ck_assert_uint_eq(st.writes, 2);
    pipe_close(&st);
}
END_TEST

/* ---- before-poll hooks -------------------------------------------------- */

typedef struct HookState {
    unsigned calls;
    bool remove_self;
    LoopBH *bh;                 /* schedule this once */
} HookState;

static void hook_cb(void *opaque)
{
    HookState *st = opaque;

    st->calls++;
    if (st->bh) {
        loop_bh_schedule(st->bh);
        st->bh = NULL;
    }
    if (st->remove_self) {
        loop_remove_before_poll(L, hook_cb, st);
    }
}

START_TEST(test_before_poll_each_iteration)
{
    HookState a = { 0 }, b = { 0 };

    loop_add_before_poll(L, hook_cb, &a);
    iterate_n(5);
    ck_assert_uint_eq(a.calls, 5);
    loop_add_before_poll(L, hook_cb, &b);
    iterate_n(2);
    ck_assert_uint_eq(a.calls, 7);
    ck_assert_uint_eq(b.calls, 2);
    /* Removal matches callback and opaque. */
    loop_remove_before_poll(L, hook_cb, &a);
    iterate_n(3);
    ck_assert_uint_eq(a.calls, 7);
    ck_assert_uint_eq(b.calls, 5);
    loop_remove_before_poll(L, hook_cb, &a);      /* not there: harmless */
    loop_remove_before_poll(L, hook_cb, &b);
    iterate_n(2);
    ck_assert_uint_eq(b.calls, 5);
}
END_TEST

START_TEST(test_before_poll_then_dispatch)
{
    HookState h = { 0 };
    BHState st = { 0 };
    LoopBH *bh = loop_bh_new(L, bh_count, &st);

    /* Work the hook queues runs before the loop sleeps: same iteration. */
    h.bh = bh;
    loop_add_before_poll(L, hook_cb, &h);
    loop_iterate(L, false);
    ck_assert_uint_eq(h.calls, 1);
    ck_assert_uint_eq(st.runs, 1);
    loop_remove_before_poll(L, hook_cb, &h);
    loop_bh_delete(bh);
}
END_TEST

START_TEST(test_before_poll_remove_self)
{
    HookState a = { 0 }, b = { 0 };
    unsigned b_first;

    a.remove_self = true;
    loop_add_before_poll(L, hook_cb, &a);
    loop_add_before_poll(L, hook_cb, &b);
    loop_iterate(L, false);
    b_first = b.calls;
    iterate_n(2);
    loop_remove_before_poll(L, hook_cb, &b);
    loop_remove_before_poll(L, hook_cb, &a);

    ck_assert_uint_eq(a.calls, 1);
    /* The hook after the one that removed itself still ran. */
    ck_assert_uint_eq(b_first, 1);
    ck_assert_uint_eq(b.calls, 3);
}
END_TEST

/* ---- the loop ----------------------------------------------------------- */

static void bh_quit(void *opaque)
{
    BHState *st = opaque;

    st->runs++;
    loop_quit(L);
}

START_TEST(test_iterate_result)
{
    BHState st = { 0 };
    LoopBH *bh = loop_bh_new(L, bh_count, &st);

    ck_assert(!loop_iterate(L, false));       /* nothing to do */
    loop_bh_schedule(bh);
    ck_assert(loop_iterate(L, false));
    ck_assert(!loop_iterate(L, false));
    loop_bh_delete(bh);
}
END_TEST

START_TEST(test_run_quit)
{
    BHState st = { 0 };
    TimerState ts;
    LoopBH *bh = loop_bh_new(L, bh_quit, &st);

    /* A timer wakes the blocking loop; its BH asks it to quit. */
    timer_init(&ts);
    timer_arm(&ts, clock_ns() + 2 * 1000000);
    loop_bh_schedule(bh);
    loop_run(L);
    ck_assert_uint_eq(st.runs, 1);
    loop_bh_delete(bh);
    loop_timer_free(ts.timer);
}
END_TEST

static void timer_quit(void *opaque)
{
    unsigned *n = opaque;

    (*n)++;
    loop_quit(L);
}

START_TEST(test_run_quit_from_timer)
{
    unsigned n = 0;
    LoopTimer *t = loop_timer_new(L, timer_quit, &n);
    int64_t start = clock_ns();

    loop_timer_mod(t, start + 3 * 1000000);
    loop_run(L);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_ge(clock_ns(), start + 3 * 1000000);
    loop_timer_free(t);
}
END_TEST

/* ---- wake-ups and other threads ---------------------------------------- */

START_TEST(test_local_bh_writes_no_eventfd)
{
    BHState st = { 0 };
    LoopBH *bh = loop_bh_new(L, bh_count, &st);
    LoopStats before, after;

    loop_get_stats(L, &before);
    for (unsigned i = 0; i < 100; i++) {
        loop_bh_schedule(bh);
        loop_iterate(L, true);      /* must not sleep: the BH is due */
    }
    loop_get_stats(L, &after);
    ck_assert_uint_eq(st.runs, 100);
    /* Scheduling from the owner thread never notifies, never sleeps. */
    ck_assert_uint_eq(after.notifies, before.notifies);
    ck_assert_uint_eq(after.wakeups, before.wakeups);
    loop_bh_delete(bh);
}
END_TEST

typedef struct PostState {
    EventLoop *loop;
    unsigned runs;
    GThread *ran_on;
    int value;
} PostState;

static void post_cb(void *opaque)
{
    PostState *ps = opaque;

    ps->runs++;
    ps->ran_on = g_thread_self();
    ck_assert(loop_in_thread(ps->loop));
}

static gpointer poster_thread(gpointer opaque)
{
    PostState *ps = opaque;

    g_usleep(20000);            /* let the owner fall asleep first */
    loop_post(ps->loop, post_cb, ps);
    return NULL;
}

START_TEST(test_post_wakes_sleeping_loop)
{
    PostState ps = { .loop = L };
    GThread *t = g_thread_new("poster", poster_thread, &ps);
    int64_t start = clock_ns();
    LoopStats st;

    while (!ps.runs && clock_ns() - start < WAIT_MS * 1000000LL) {
        loop_iterate(L, true);      /* sleeps until the post wakes it */
    }
    g_thread_join(t);
    ck_assert_uint_eq(ps.runs, 1);
    ck_assert_ptr_eq(ps.ran_on, g_thread_self());
    loop_get_stats(L, &st);
    ck_assert_uint_ge(st.notifies, 1);
}
END_TEST

typedef struct IoThread {
    EventLoop *loop;
    GThread *thread;
    GMutex lock;
    GCond cond;
    bool started;
} IoThread;

static gpointer iothread_fn(gpointer opaque)
{
    IoThread *it = opaque;

    loop_attach_thread(it->loop);
    g_mutex_lock(&it->lock);
    it->started = true;
    g_cond_signal(&it->cond);
    g_mutex_unlock(&it->lock);
    loop_run(it->loop);
    return NULL;
}

static void iothread_start(IoThread *it)
{
    it->loop = loop_new("io", NULL);
    ck_assert_ptr_nonnull(it->loop);
    g_mutex_init(&it->lock);
    g_cond_init(&it->cond);
    it->thread = g_thread_new("io", iothread_fn, it);
    g_mutex_lock(&it->lock);
    while (!it->started) {
        g_cond_wait(&it->cond, &it->lock);
    }
    g_mutex_unlock(&it->lock);
}

static void iothread_stop(IoThread *it)
{
    loop_quit(it->loop);
    g_thread_join(it->thread);
    loop_free(it->loop);
}

static void sync_cb(void *opaque)
{
    PostState *ps = opaque;

    ck_assert(loop_in_thread(ps->loop));
    ps->ran_on = g_thread_self();
    g_usleep(5000);             /* the caller must wait for this */
    ps->value = 42;
    ps->runs++;
}

START_TEST(test_run_sync_other_thread)
{
    IoThread it = { 0 };
    PostState ps = { 0 };

    iothread_start(&it);
    ps.loop = it.loop;
    for (unsigned i = 0; i < 50; i++) {
        ps.value = 0;
        loop_run_sync(it.loop, sync_cb, &ps);
        ck_assert_int_eq(ps.value, 42);     /* done when it returns */
    }
    ck_assert_uint_eq(ps.runs, 50);
    ck_assert_ptr_ne(ps.ran_on, g_thread_self());
    /* On its own thread run_sync is a plain call. */
    ps.loop = L;
    loop_run_sync(L, sync_cb, &ps);
    ck_assert_ptr_eq(ps.ran_on, g_thread_self());
    iothread_stop(&it);
}
END_TEST

typedef struct Counter {
    unsigned n;
} Counter;

static void count_cb(void *opaque)
{
    ((Counter *)opaque)->n++;
}

typedef struct Flood {
    EventLoop *loop;
    Counter *c;
} Flood;

static gpointer flood_thread(gpointer opaque)
{
    Flood *f = opaque;

    for (unsigned i = 0; i < 10000; i++) {
        loop_post(f->loop, count_cb, f->c);
    }
    return NULL;
}

START_TEST(test_post_from_many_threads)
{
    Counter c = { 0 };
    Flood f = { L, &c };
    GThread *t[4];
    int64_t start = clock_ns();

    for (unsigned i = 0; i < 4; i++) {
        t[i] = g_thread_new("flood", flood_thread, &f);
    }
    while (c.n < 40000 && clock_ns() - start < 10 * 1000000000LL) {
        loop_iterate(L, true);
    }
    for (unsigned i = 0; i < 4; i++) {
        g_thread_join(t[i]);
    }
    loop_iterate(L, false);
    ck_assert_uint_eq(c.n, 40000);   /* every post ran exactly once */
}
END_TEST

/* ---- pollers and adaptive polling -------------------------------------- */

typedef struct PollState {
    unsigned polls;
    unsigned work;              /* pending work the poller will find */
    int64_t work_at;            /* ... once clock_ns() reaches this */
    unsigned done;
    int started;                /* +1 per begin, -1 per end */
    unsigned begins, ends;
} PollState;

static bool poll_cb(void *opaque)
{
    PollState *p = opaque;

    p->polls++;
    if (p->work && clock_ns() >= p->work_at) {
        p->work--;
        p->done++;
        return true;
    }
    return false;
}

static void poll_started(void *opaque, bool on)
{
    PollState *p = opaque;

    p->started += on ? 1 : -1;
    if (on) {
        p->begins++;
    } else {
        p->ends++;
    }
    ck_assert(p->started == 0 || p->started == 1);
}

START_TEST(test_poller_off_by_default)
{
    PollState p = { 0 };
    LoopPoller *lp = loop_poller_new(L, poll_cb, poll_started, &p);
    LoopTimer *t = loop_timer_new(L, count_cb, &(Counter){ 0 });

    loop_timer_mod(t, clock_ns() + 1000000);
    loop_iterate(L, true);
    /* poll-max-ns 0: the loop sleeps without polling. */
    ck_assert_uint_eq(p.polls, 0);
    ck_assert_int_eq(loop_poll_ns(L), 0);
    loop_poller_free(lp);
    loop_timer_free(t);
}
END_TEST

START_TEST(test_poll_grows_and_shrinks)
{
    PollState p = { 0 };
    LoopPoller *lp = loop_poller_new(L, poll_cb, poll_started, &p);
    Counter c = { 0 };
    LoopTimer *t = loop_timer_new(L, count_cb, &c);

    int64_t most = 0;

    loop_set_poll_params(L, 1000000, 2, 0);     /* 1 ms */
    /*
     * Short sleeps (50 us): polling grows towards poll-max-ns.  (A sleep
     * that overslept past 1 ms on a loaded machine resets it: look at
     * the largest value seen, not the last.)
     */
    for (unsigned i = 0; i < 20; i++) {
        loop_timer_mod(t, clock_ns() + 50000);
        loop_iterate(L, true);
        most = MAX(most, loop_poll_ns(L));
        ck_assert_int_le(loop_poll_ns(L), 1000000);
    }
    ck_assert_int_ge(most, 8000);       /* grew at least twice */
    ck_assert_uint_gt(p.polls, 0);
    /* A long sleep (5 ms, past poll-max-ns): shrink 0 resets to 0. */
    loop_timer_mod(t, clock_ns() + 5000000);
    while (c.n < 21) {
        loop_iterate(L, true);
    }
    ck_assert_int_eq(loop_poll_ns(L), 0);
    /* Notifications were switched back on before every sleep. */
    ck_assert_int_eq(p.started, 0);
    ck_assert_uint_eq(p.begins, p.ends);
    ck_assert_uint_ge(p.begins, 1);
    loop_poller_free(lp);
    loop_timer_free(t);
}
END_TEST

START_TEST(test_poll_finds_work_without_sleeping)
{
    PollState p = { 0 };
    LoopPoller *lp = loop_poller_new(L, poll_cb, poll_started, &p);
    Counter c = { 0 };
    LoopTimer *t = loop_timer_new(L, count_cb, &c);
    LoopStats before, after;

    loop_set_poll_params(L, 1000000, 2, 0);
    /* Warm up: grow poll_ns. */
    for (unsigned i = 0; i < 20; i++) {
        loop_timer_mod(t, clock_ns() + 20000);
        loop_iterate(L, true);
    }
    ck_assert_int_gt(loop_poll_ns(L), 0);
    loop_get_stats(L, &before);
    p.work = 5;
    /* With work found by polling, the loop does not sleep. */
    loop_timer_mod(t, clock_ns() + 100000000);
    for (unsigned i = 0; i < 5; i++) {
        ck_assert(loop_iterate(L, true));
    }
    loop_get_stats(L, &after);
    ck_assert_uint_eq(p.done, 5);
    ck_assert_uint_eq(after.wakeups, before.wakeups);
    ck_assert_uint_ge(after.poll_hits - before.poll_hits, 5);
    loop_poller_free(lp);
    loop_timer_free(t);
}
END_TEST

static bool poll_free_self(void *opaque)
{
    LoopPoller **lp = opaque;

    loop_poller_free(*lp);
    *lp = NULL;
    return true;
}

START_TEST(test_poller_free_while_polling)
{
    LoopPoller *lp = NULL;
    PollState p = { 0 };
    LoopPoller *other;
    Counter c = { 0 };
    LoopTimer *t = loop_timer_new(L, count_cb, &c);

    lp = loop_poller_new(L, poll_free_self, NULL, &lp);
    other = loop_poller_new(L, poll_cb, NULL, &p);
    loop_set_poll_params(L, 1000000, 2, 0);
    for (unsigned i = 0; i < 20; i++) {
        loop_timer_mod(t, clock_ns() + 20000);
        loop_iterate(L, true);
    }
    ck_assert_ptr_null(lp);             /* freed itself once */
    ck_assert_uint_gt(p.polls, 0);      /* the other one kept polling */
    loop_poller_free(other);
    loop_timer_free(t);
}
END_TEST

START_TEST(test_watch_poller)
{
    PollState p = { 0 };
    LoopPoller *lp = loop_poller_new(L, poll_cb, NULL, &p);
    Counter c = { 0 };
    LoopTimer *t = loop_timer_new(L, count_cb, &c);
    LoopStats before, after;
    int64_t start;

    /* No busy polling: only the watch runs it while the loop sleeps. */
    loop_poller_set_watch(lp, true);
    p.work = 1;
    loop_iterate(L, true);              /* sleeps at most ~50 us */
    ck_assert_uint_eq(p.done, 1);
    /* Idle: each sleep ends after a while (backing off), not never. */
    start = clock_ns();
    for (unsigned i = 0; i < 10; i++) {
        loop_iterate(L, true);
    }
    ck_assert_int_ge(clock_ns() - start, 10 * 50000);
    ck_assert_uint_ge(p.polls, 11);
    /* Work is found after idle too. */
    p.work = 1;
    loop_iterate(L, true);
    ck_assert_uint_eq(p.done, 2);
    /* Not watching any more: the loop sleeps until its timer. */
    loop_poller_set_watch(lp, false);
    loop_timer_mod(t, clock_ns() + 20000000);
    loop_get_stats(L, &before);
    while (!c.n) {
        loop_iterate(L, true);
    }
    loop_get_stats(L, &after);
    ck_assert_uint_eq(after.wakeups - before.wakeups, 1);
    loop_poller_free(lp);
    loop_timer_free(t);
}
END_TEST

START_TEST(test_watch_found_work_grows_polling)
{
    PollState p = { 0 };
    LoopPoller *lp = loop_poller_new(L, poll_cb, NULL, &p);
    int64_t most = 0;

    /*
     * Work that notifies no one (a doorbell in memory) comes 20 us after
     * the last: within poll-max-ns (32 us), beyond the first window
     * (4 us).  A window that misses it sleeps until the watch finds it,
     * ~50 us later: longer than poll-max-ns, and QEMU's rule would reset
     * the window every time, so that it never grows to catch work that
     * polling would catch.  Work found by the watch grows it instead.
     * (A preemption past 32 us may still reset it: look at the largest
     * value seen.)
     */
    loop_set_poll_params(L, 32000, 2, 0);
    loop_poller_set_watch(lp, true);
    for (unsigned i = 0; i < 10; i++) {
        unsigned done = p.done;

        p.work = 1;
        p.work_at = clock_ns() + 20000;
        while (p.done == done) {
            loop_iterate(L, true);
        }
        most = MAX(most, loop_poll_ns(L));
    }
    ck_assert_int_eq(most, 32000);
    loop_poller_free(lp);
}
END_TEST

static gpointer write_later(gpointer opaque)
{
    g_usleep(1000);
    eventfd_write(*(int *)opaque, 1);
    return NULL;
}

START_TEST(test_busy_poll_sees_fds)
{
    PollState p = { 0 };
    LoopPoller *lp = loop_poller_new(L, poll_cb, NULL, &p);
    Counter c = { 0 }, fired = { 0 };
    LoopTimer *t = loop_timer_new(L, count_cb, &c);
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int64_t start, took, poll_ns;
    GThread *th;

    loop_set_poll_params(L, 100000000, 2, 0);  /* up to 100 ms */
    /* Grow poll_ns with 10 ms sleeps. */
    for (unsigned i = 0; i < 14; i++) {
        loop_timer_mod(t, clock_ns() + 10000000);
        loop_iterate(L, true);
    }
    poll_ns = loop_poll_ns(L);
    ck_assert_int_ge(poll_ns, 8000000);
    /*
     * An fd becomes readable 1 ms into a poll window of several ms: it is
     * handled then, not when the window ends.
     */
    loop_set_fd(L, efd, count_cb, NULL, &fired);
    loop_timer_mod(t, clock_ns() + 1000000000);
    th = g_thread_new("writer", write_later, &efd);
    start = clock_ns();
    while (!fired.n) {
        loop_iterate(L, true);
    }
    took = clock_ns() - start;
    g_thread_join(th);
    ck_assert_msg(took < poll_ns / 2, "fd handled after %" PRId64 " us of a "
                  "%" PRId64 " us poll window", took / 1000, poll_ns / 1000);
    loop_set_fd(L, efd, NULL, NULL, NULL);
    close(efd);
    loop_poller_free(lp);
    loop_timer_free(t);
}
END_TEST

/* ---- timer heap -------------------------------------------------------- */

typedef struct HeapTimer {
    LoopTimer *t;
    int64_t expire;
    int64_t fired_at;
    unsigned order;
} HeapTimer;

static unsigned heap_order;

static void heap_cb(void *opaque)
{
    HeapTimer *h = opaque;

    h->fired_at = clock_ns();
    h->order = ++heap_order;
}

START_TEST(test_timer_heap_random)
{
    enum { N = 300 };
    HeapTimer h[N];
    GRand *r = g_rand_new_with_seed(7);
    int64_t base = clock_ns() + 1000000;
    unsigned fired = 0;

    for (unsigned i = 0; i < N; i++) {
        h[i].t = loop_timer_new(L, heap_cb, &h[i]);
        h[i].expire = -1;
        h[i].order = 0;
    }
    /* Random mods, re-mods and deletes. */
    for (unsigned k = 0; k < 3000; k++) {
        unsigned i = g_rand_int_range(r, 0, N);

        if (g_rand_int_range(r, 0, 5) == 0) {
            loop_timer_del(h[i].t);
            h[i].expire = -1;
        } else {
            h[i].expire = base + g_rand_int_range(r, 0, 20000000);
            loop_timer_mod(h[i].t, h[i].expire);
        }
        ck_assert_int_eq(loop_timer_expire(h[i].t), h[i].expire);
    }
    Counter c = { 0 };
    LoopTimer *end = loop_timer_new(L, count_cb, &c);

    loop_timer_mod(end, base + 25000000);
    while (!c.n) {
        loop_iterate(L, true);
    }
    loop_timer_free(end);
    for (unsigned i = 0; i < N; i++) {
        if (h[i].expire < 0) {
            ck_assert_uint_eq(h[i].order, 0);
            continue;
        }
        fired++;
        ck_assert_uint_gt(h[i].order, 0);
        ck_assert_int_ge(h[i].fired_at, h[i].expire);
        /* Fired in deadline order. */
        for (unsigned j = 0; j < N; j++) {
            if (h[j].expire >= 0 && h[j].expire < h[i].expire) {
                ck_assert_uint_lt(h[j].order, h[i].order);
            }
        }
    }
    ck_assert_uint_gt(fired, N / 2);
    for (unsigned i = 0; i < N; i++) {
        loop_timer_free(h[i].t);
    }
    g_rand_free(r);
}
END_TEST

static void loop_setup(void)
{
    L = loop_new("test", NULL);
    ck_assert_ptr_nonnull(L);
    loop_attach_thread(L);
    loop_set_main(L);
}

static void loop_teardown(void)
{
    loop_free(L);
    L = NULL;
}

static Suite *main_loop_suite(void)
{
    Suite *s = suite_create("loop");
    TCase *tc;

    tc = tcase_create("bh");
    tcase_add_checked_fixture(tc, loop_setup, loop_teardown);
    tcase_add_test(tc, test_bh_runs_once);
    tcase_add_test(tc, test_bh_schedule_twice);
    tcase_add_test(tc, test_bh_cancel);
    tcase_add_test(tc, test_bh_delete_in_callback);
    tcase_add_test(tc, test_bh_delete_other_in_callback);
    tcase_add_test(tc, test_bh_from_bh);
    tcase_add_test(tc, test_bh_reschedule_self);
    tcase_add_test(tc, test_bh_cancel_in_batch_then_schedule);
    tcase_add_test_raise_signal(tc, test_bh_nested_iteration, SIGABRT);
    tcase_add_test(tc, test_bh_many);
    suite_add_tcase(s, tc);

    tc = tcase_create("timer");
    tcase_add_checked_fixture(tc, loop_setup, loop_teardown);
    tcase_add_test(tc, test_timer_fires);
    tcase_add_test(tc, test_timer_past_deadline);
    tcase_add_test(tc, test_timer_blocking_iteration);
    tcase_add_test(tc, test_timer_order);
    tcase_add_test(tc, test_timer_order_same_iteration);
    tcase_add_test(tc, test_timer_del);
    tcase_add_test(tc, test_timer_mod_replaces);
    tcase_add_test(tc, test_timer_rearm_in_callback);
    tcase_add_test(tc, test_timer_free_pending);
    tcase_add_test(tc, test_timer_del_by_other_same_iteration);
    tcase_add_test(tc, test_timer_postponed_by_other_same_iteration);
    suite_add_tcase(s, tc);

    tc = tcase_create("fd");
    tcase_add_checked_fixture(tc, loop_setup, loop_teardown);
    tcase_add_test(tc, test_fd_readable);
    tcase_add_test(tc, test_fd_level_triggered);
    tcase_add_test(tc, test_fd_blocking_wakeup);
    tcase_add_test(tc, test_fd_hangup);
    tcase_add_test(tc, test_fd_remove);
    tcase_add_test(tc, test_fd_remove_in_callback);
    tcase_add_test(tc, test_fd_remove_and_close_in_callback);
    tcase_add_test(tc, test_fd_remove_other_in_callback);
    tcase_add_test(tc, test_fd_change_callbacks);
    tcase_add_test(tc, test_fd_writable);
    suite_add_tcase(s, tc);

    tc = tcase_create("loop");
    tcase_add_checked_fixture(tc, loop_setup, loop_teardown);
    tcase_add_test(tc, test_before_poll_each_iteration);
    tcase_add_test(tc, test_before_poll_then_dispatch);
    tcase_add_test(tc, test_before_poll_remove_self);
    tcase_add_test(tc, test_iterate_result);
    tcase_add_test(tc, test_run_quit);
    tcase_add_test(tc, test_run_quit_from_timer);
    tcase_add_test(tc, test_timer_heap_random);
    suite_add_tcase(s, tc);

    tc = tcase_create("threads");
    tcase_add_checked_fixture(tc, loop_setup, loop_teardown);
    tcase_add_test(tc, test_local_bh_writes_no_eventfd);
    tcase_add_test(tc, test_post_wakes_sleeping_loop);
    tcase_add_test(tc, test_run_sync_other_thread);
    tcase_add_test(tc, test_post_from_many_threads);
    suite_add_tcase(s, tc);

    tc = tcase_create("poll");
    tcase_add_checked_fixture(tc, loop_setup, loop_teardown);
    tcase_add_test(tc, test_poller_off_by_default);
    tcase_add_test(tc, test_poll_grows_and_shrinks);
    tcase_add_test(tc, test_poll_finds_work_without_sleeping);
    tcase_add_test(tc, test_poller_free_while_polling);
    tcase_add_test(tc, test_watch_poller);
    tcase_add_test(tc, test_watch_found_work_grows_polling);
    tcase_add_test(tc, test_busy_poll_sees_fds);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(main_loop_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
