/*
 * Unit tests for util/main-loop.c: bottom halves, timers, fd handlers,
 * before-poll hooks and the loop itself.  Every test runs in its own
 * process (Check's fork mode), so the loop starts empty each time.
 */
#include <check.h>

#include "util/main-loop.h"

#define WAIT_MS 2000

static void iterate_n(unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        main_loop_iterate(false);
    }
}

/* ---- bottom halves ------------------------------------------------------ */

typedef struct BHState {
    unsigned runs;
    IovdBH *bh;
    IovdBH *other;
    IovdBH *third;
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
    IovdBH *bh = iovd_bh_new(bh_count, &st);

    /* Nothing runs before it is scheduled. */
    iterate_n(3);
    ck_assert_uint_eq(st.runs, 0);

    iovd_bh_schedule(bh);
    ck_assert_uint_eq(st.runs, 0);      /* not synchronously */
    ck_assert(main_loop_iterate(false));
    ck_assert_uint_eq(st.runs, 1);
    iterate_n(5);
    ck_assert_uint_eq(st.runs, 1);

    /* Each schedule is one run. */
    iovd_bh_schedule(bh);
    iterate_n(3);
    ck_assert_uint_eq(st.runs, 2);
    iovd_bh_delete(bh);
}
END_TEST

START_TEST(test_bh_schedule_twice)
{
    BHState st = { 0 };
    IovdBH *bh = iovd_bh_new(bh_count, &st);

    iovd_bh_schedule(bh);
    iovd_bh_schedule(bh);
    iovd_bh_schedule(bh);
    main_loop_iterate(false);
    ck_assert_uint_eq(st.runs, 1);
    iterate_n(3);
    ck_assert_uint_eq(st.runs, 1);
    iovd_bh_delete(bh);
}
END_TEST

START_TEST(test_bh_cancel)
{
    BHState a = { 0 }, b = { 0 };
    IovdBH *bha = iovd_bh_new(bh_count, &a);
    IovdBH *bhb = iovd_bh_new(bh_count, &b);

    /* Cancelling what was never scheduled is harmless. */
    iovd_bh_cancel(bha);

    iovd_bh_schedule(bha);
    iovd_bh_schedule(bhb);
    iovd_bh_cancel(bha);
    iterate_n(3);
    ck_assert_uint_eq(a.runs, 0);
    ck_assert_uint_eq(b.runs, 1);

    /* Scheduling again after a cancel works. */
    iovd_bh_schedule(bha);
    iterate_n(1);
    ck_assert_uint_eq(a.runs, 1);

    /* Cancel twice, delete a scheduled one. */
    iovd_bh_schedule(bha);
    iovd_bh_cancel(bha);
    iovd_bh_cancel(bha);
    iovd_bh_schedule(bhb);
    iovd_bh_delete(bhb);
    iterate_n(3);
    ck_assert_uint_eq(a.runs, 1);
    ck_assert_uint_eq(b.runs, 1);
    iovd_bh_delete(bha);
    iovd_bh_delete(NULL);
}
END_TEST

static void bh_delete_self(void *opaque)
{
    BHState *st = opaque;

    st->runs++;
    iovd_bh_delete(st->bh);
    st->bh = NULL;
}

START_TEST(test_bh_delete_in_callback)
{
    BHState st = { 0 }, after = { 0 };
    IovdBH *bh_after = iovd_bh_new(bh_count, &after);

    st.bh = iovd_bh_new(bh_delete_self, &st);
    iovd_bh_schedule(st.bh);
    iovd_bh_schedule(bh_after);
    main_loop_iterate(false);
    ck_assert_uint_eq(st.runs, 1);
    ck_assert_ptr_null(st.bh);
    /* The rest of the batch still ran. */
    ck_assert_uint_eq(after.runs, 1);
    iterate_n(3);
    ck_assert_uint_eq(st.runs, 1);
    iovd_bh_delete(bh_after);
}
END_TEST

static void bh_delete_other(void *opaque)
{
    BHState *st = opaque;

    st->runs++;
    iovd_bh_delete(st->other);
    st->other = NULL;
}

START_TEST(test_bh_delete_other_in_callback)
{
    BHState a = { 0 }, b = { 0 };
    IovdBH *bha = iovd_bh_new(bh_delete_other, &a);

    a.other = iovd_bh_new(bh_count, &b);
    iovd_bh_schedule(bha);
    iovd_bh_schedule(a.other);      /* scheduled, then deleted by bha */
    iterate_n(3);
    ck_assert_uint_eq(a.runs, 1);
    ck_assert_uint_eq(b.runs, 0);
    iovd_bh_delete(bha);
}
END_TEST

static void bh_schedule_other(void *opaque)
{
    BHState *st = opaque;

    st->runs++;
    iovd_bh_schedule(st->other);
}

START_TEST(test_bh_from_bh)
{
    BHState a = { 0 }, b = { 0 };
    IovdBH *bha = iovd_bh_new(bh_schedule_other, &a);

    a.other = iovd_bh_new(bh_count, &b);
    iovd_bh_schedule(bha);
    main_loop_iterate(false);
    ck_assert_uint_eq(a.runs, 1);
    ck_assert_uint_eq(b.runs, 0);       /* next iteration, not this one */
    main_loop_iterate(false);
    ck_assert_uint_eq(b.runs, 1);
    iterate_n(3);
    ck_assert_uint_eq(a.runs, 1);
    ck_assert_uint_eq(b.runs, 1);
    iovd_bh_delete(a.other);
    iovd_bh_delete(bha);
}
END_TEST

static void bh_reschedule_self(void *opaque)
{
    BHState *st = opaque;

    st->runs++;
    iovd_bh_schedule(st->bh);
}

START_TEST(test_bh_reschedule_self)
{
    BHState st = { 0 };

    /* A BH rescheduling itself runs once per iteration, never spins. */
    st.bh = iovd_bh_new(bh_reschedule_self, &st);
    iovd_bh_schedule(st.bh);
    for (unsigned i = 1; i <= 5; i++) {
        main_loop_iterate(false);
        ck_assert_uint_eq(st.runs, i);
    }
    iovd_bh_cancel(st.bh);
    iterate_n(3);
    ck_assert_uint_eq(st.runs, 5);
    iovd_bh_delete(st.bh);
}
END_TEST

static void bh_cancel_and_schedule(void *opaque)
{
    BHState *st = opaque;

    st->runs++;
    iovd_bh_cancel(st->other);      /* was scheduled in the same batch */
    iovd_bh_schedule(st->third);    /* must wait for the next iteration */
}

START_TEST(test_bh_cancel_in_batch_then_schedule)
{
    BHState a = { 0 }, b = { 0 }, c = { 0 };
    IovdBH *bha = iovd_bh_new(bh_cancel_and_schedule, &a);
    unsigned c_first;

    a.other = iovd_bh_new(bh_count, &b);
    a.third = iovd_bh_new(bh_count, &c);

    iovd_bh_schedule(bha);
    iovd_bh_schedule(a.other);
    main_loop_iterate(false);
    c_first = c.runs;
    main_loop_iterate(false);
    iovd_bh_delete(a.other);
    iovd_bh_delete(a.third);
    iovd_bh_delete(bha);

    ck_assert_uint_eq(a.runs, 1);
    ck_assert_uint_eq(b.runs, 0);
    /* Scheduled from a BH: runs on the next iteration, not this one. */
    ck_assert_uint_eq(c_first, 0);
    ck_assert_uint_eq(c.runs, 1);
}
END_TEST

static void bh_nested_iterate(void *opaque)
{
    BHState *st = opaque;

    st->runs++;
    iovd_bh_schedule(st->other);
    /* Waiting for something whose completion is a BH. */
    main_loop_iterate(false);
}

START_TEST(test_bh_nested_iteration)
{
    BHState a = { 0 }, b = { 0 };
    IovdBH *bha = iovd_bh_new(bh_nested_iterate, &a);

    a.other = iovd_bh_new(bh_count, &b);
    iovd_bh_schedule(bha);
    main_loop_iterate(false);
    ck_assert_uint_eq(a.runs, 1);
    /* The nested iteration ran the BH scheduled by the outer one. */
    ck_assert_uint_eq(b.runs, 1);
    iterate_n(2);
    ck_assert_uint_eq(a.runs, 1);
    ck_assert_uint_eq(b.runs, 1);
    iovd_bh_delete(a.other);
    iovd_bh_delete(bha);
}
END_TEST

START_TEST(test_bh_many)
{
    enum { N = 100 };
    BHState st[N] = { 0 };
    IovdBH *bh[N];

    for (unsigned i = 0; i < N; i++) {
        bh[i] = iovd_bh_new(bh_count, &st[i]);
        iovd_bh_schedule(bh[i]);
    }
    /* Cancel every third one. */
    for (unsigned i = 0; i < N; i += 3) {
        iovd_bh_cancel(bh[i]);
    }
    main_loop_iterate(false);
    for (unsigned i = 0; i < N; i++) {
        ck_assert_uint_eq(st[i].runs, i % 3 ? 1 : 0);
        iovd_bh_delete(bh[i]);
    }
}
END_TEST

/* ---- timers ------------------------------------------------------------- */

typedef struct TimerState {
    IovdTimer *timer;
    IovdTimer *other;
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
    st->pending_in_cb = iovd_timer_pending(st->timer);
    if (st->rearm) {
        st->rearm--;
        st->expire_ns = clock_ns() + 100000;
        iovd_timer_mod(st->timer, st->expire_ns);
    }
}

static void timer_del_other(void *opaque)
{
    TimerState *st = opaque;

    st->fired++;
    iovd_timer_del(st->other);
}

static void timer_init(TimerState *st)
{
    memset(st, 0, sizeof(*st));
    st->timer = iovd_timer_new(timer_cb, st);
}

static void timer_arm(TimerState *st, int64_t expire_ns)
{
    st->expire_ns = expire_ns;
    iovd_timer_mod(st->timer, expire_ns);
}

START_TEST(test_timer_fires)
{
    TimerState st;
    bool fired;

    timer_init(&st);
    ck_assert(!iovd_timer_pending(st.timer));
    timer_arm(&st, clock_ns() + 2 * 1000000);
    ck_assert(iovd_timer_pending(st.timer));
    /* Not synchronously, and not early. */
    main_loop_iterate(false);
    ck_assert_uint_eq(st.fired, 0);
    ck_assert(iovd_timer_pending(st.timer));
    do {
        main_loop_iterate(true);
        fired = st.fired > 0;
    } while (!fired && clock_ns() < st.expire_ns + WAIT_MS * 1000000LL);
    ck_assert_uint_eq(st.fired, 1);
    ck_assert_int_ge(st.fired_at, st.expire_ns);
    ck_assert(!st.pending_in_cb);
    ck_assert(!iovd_timer_pending(st.timer));
    /* One shot. */
    g_usleep(3000);
    iterate_n(3);
    ck_assert_uint_eq(st.fired, 1);
    iovd_timer_free(st.timer);
    iovd_timer_free(NULL);
}
END_TEST

START_TEST(test_timer_past_deadline)
{
    TimerState st;

    timer_init(&st);
    timer_arm(&st, clock_ns() - 1000000);
    ck_assert(iovd_timer_pending(st.timer));
    main_loop_iterate(false);
    ck_assert_uint_eq(st.fired, 1);
    timer_arm(&st, 0);
    main_loop_iterate(false);
    ck_assert_uint_eq(st.fired, 2);
    iovd_timer_free(st.timer);
}
END_TEST

START_TEST(test_timer_blocking_iteration)
{
    TimerState st;

    /* A blocking iteration sleeps until the timer is due, then runs it. */
    timer_init(&st);
    timer_arm(&st, clock_ns() + 5 * 1000000);
    for (unsigned i = 0; i < 10 && !st.fired; i++) {
        main_loop_iterate(true);
    }
    ck_assert_uint_eq(st.fired, 1);
    ck_assert_int_ge(st.fired_at, st.expire_ns);
    iovd_timer_free(st.timer);
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
        main_loop_iterate(true);
        all = st[0].fired && st[1].fired && st[2].fired;
    }
    ck_assert(all);
    ck_assert_uint_eq(st[1].order, 1);
    ck_assert_uint_eq(st[2].order, 2);
    ck_assert_uint_eq(st[0].order, 3);
    for (unsigned i = 0; i < 3; i++) {
        ck_assert_uint_eq(st[i].fired, 1);
        ck_assert_int_ge(st[i].fired_at, st[i].expire_ns);
        iovd_timer_free(st[i].timer);
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
    main_loop_iterate(false);
    for (unsigned i = 0; i < 3; i++) {
        iovd_timer_free(st[i].timer);
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
    iovd_timer_del(st.timer);
    ck_assert(!iovd_timer_pending(st.timer));
    g_usleep(5000);
    iterate_n(5);
    ck_assert_uint_eq(st.fired, 0);
    /* Deleting an idle timer is fine; re-arming after a delete works. */
    iovd_timer_del(st.timer);
    timer_arm(&st, clock_ns());
    main_loop_iterate(false);
    ck_assert_uint_eq(st.fired, 1);
    /* Deleting an overdue timer before the loop runs also stops it. */
    timer_arm(&st, clock_ns() - 1000);
    iovd_timer_del(st.timer);
    iterate_n(3);
    ck_assert_uint_eq(st.fired, 1);
    iovd_timer_free(st.timer);
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
        main_loop_iterate(true);
    }
    ck_assert_uint_eq(st.fired, 1);
    /* Soon, then far away: it does not fire soon. */
    timer_arm(&st, clock_ns() + 1000000);
    timer_arm(&st, clock_ns() + 3600 * 1000000000LL);
    g_usleep(5000);
    iterate_n(3);
    ck_assert_uint_eq(st.fired, 1);
    ck_assert(iovd_timer_pending(st.timer));
    iovd_timer_free(st.timer);
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
        main_loop_iterate(true);
    }
    ck_assert_uint_eq(st.fired, 4);
    /* A timer is no longer pending when its callback runs. */
    ck_assert(!st.pending_in_cb);
    ck_assert(!iovd_timer_pending(st.timer));
    g_usleep(2000);
    iterate_n(3);
    ck_assert_uint_eq(st.fired, 4);
    iovd_timer_free(st.timer);
}
END_TEST

START_TEST(test_timer_free_pending)
{
    TimerState st;

    timer_init(&st);
    timer_arm(&st, clock_ns() - 1000);
    iovd_timer_free(st.timer);
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
    a.timer = iovd_timer_new(timer_del_other, &a);
    b.timer = iovd_timer_new(timer_del_other, &b);
    a.other = b.timer;
    b.other = a.timer;
    iovd_timer_mod(a.timer, clock_ns() - 2000);
    iovd_timer_mod(b.timer, clock_ns() - 1000);
    main_loop_iterate(false);
    first = a.fired + b.fired;
    iterate_n(3);
    iovd_timer_free(a.timer);
    iovd_timer_free(b.timer);
    ck_assert_uint_eq(first, 1);
    ck_assert_uint_eq(a.fired + b.fired, 1);
}
END_TEST

static void timer_postpone_other(void *opaque)
{
    TimerState *st = opaque;

    st->fired++;
    iovd_timer_mod(st->other, clock_ns() + 3600 * 1000000000LL);
}

START_TEST(test_timer_postponed_by_other_same_iteration)
{
    TimerState a = { 0 }, b = { 0 };
    unsigned first;
    bool a_pending, b_pending;

    /* As above, but the other one is moved an hour ahead, not deleted. */
    a.timer = iovd_timer_new(timer_postpone_other, &a);
    b.timer = iovd_timer_new(timer_postpone_other, &b);
    a.other = b.timer;
    b.other = a.timer;
    iovd_timer_mod(a.timer, clock_ns() - 2000);
    iovd_timer_mod(b.timer, clock_ns() - 1000);
    main_loop_iterate(false);
    first = a.fired + b.fired;
    a_pending = iovd_timer_pending(a.timer);
    b_pending = iovd_timer_pending(b.timer);
    iovd_timer_free(a.timer);
    iovd_timer_free(b.timer);
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
        iovd_set_fd_handler(st->rfd, NULL, NULL, NULL);
        close(st->rfd);
    }
    if (st->wfd >= 0) {
        iovd_set_fd_handler(st->wfd, NULL, NULL, NULL);
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
        iovd_set_fd_handler(st->other_fd, NULL, NULL, NULL);
    }
    if (st->remove_self) {
        iovd_set_fd_handler(st->rfd, NULL, NULL, NULL);
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
    iovd_set_fd_handler(st.rfd, fd_read_cb, NULL, &st);
    iterate_n(3);
    ck_assert_uint_eq(st.reads, 0);

    pipe_put(&st, "x");
    main_loop_iterate(false);
    ck_assert_uint_eq(st.reads, 1);
    /* Drained: no more calls. */
    iterate_n(3);
    ck_assert_uint_eq(st.reads, 1);

    pipe_put(&st, "yz");
    main_loop_iterate(false);
    ck_assert_uint_eq(st.reads, 2);
    pipe_close(&st);
}
END_TEST

START_TEST(test_fd_level_triggered)
{
    FdState st;

    /* Data left unread keeps the handler firing. */
    pipe_open(&st);
    iovd_set_fd_handler(st.rfd, fd_read_cb, NULL, &st);
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
    iovd_set_fd_handler(st.rfd, fd_read_cb, NULL, &st);
    pipe_put(&st, "x");
    /* A blocking iteration returns for a readable fd. */
    ck_assert(main_loop_iterate(true));
    ck_assert_uint_eq(st.reads, 1);
    pipe_close(&st);
}
END_TEST

START_TEST(test_fd_hangup)
{
    FdState st;

    pipe_open(&st);
    st.drain = true;
    iovd_set_fd_handler(st.rfd, fd_read_cb, NULL, &st);
    close(st.wfd);
    st.wfd = -1;
    main_loop_iterate(false);
    ck_assert_uint_eq(st.reads, 1);
    ck_assert(st.saw_eof);
    pipe_close(&st);
}
END_TEST

START_TEST(test_fd_remove)
{
    FdState st;

    pipe_open(&st);
    iovd_set_fd_handler(st.rfd, fd_read_cb, NULL, &st);
    iovd_set_fd_handler(st.rfd, NULL, NULL, NULL);
    pipe_put(&st, "x");
    iterate_n(3);
    ck_assert_uint_eq(st.reads, 0);
    /* Removing twice, or what was never added, is harmless. */
    iovd_set_fd_handler(st.rfd, NULL, NULL, NULL);
    iovd_set_fd_handler(st.wfd, NULL, NULL, NULL);
    /* Re-adding works. */
    iovd_set_fd_handler(st.rfd, fd_read_cb, NULL, &st);
    main_loop_iterate(false);
    ck_assert_uint_eq(st.reads, 1);
    pipe_close(&st);
}
END_TEST

START_TEST(test_fd_remove_in_callback)
{
    FdState st;

    pipe_open(&st);
    st.remove_self = true;
    iovd_set_fd_handler(st.rfd, fd_read_cb, NULL, &st);
    pipe_put(&st, "x");                 /* never drained */
    main_loop_iterate(false);
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
    iovd_set_fd_handler(st.rfd, fd_read_cb, NULL, &st);
    pipe_put(&st, "x");
    main_loop_iterate(false);
    ck_assert_uint_eq(st.reads, 1);
    ck_assert_int_eq(st.rfd, -1);
    /* The fd number is reused by a new pipe: its handler is its own. */
    pipe_open(&st2);
    st2.drain = true;
    iovd_set_fd_handler(st2.rfd, fd_read_cb, NULL, &st2);
    pipe_put(&st2, "y");
    main_loop_iterate(false);
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
    iovd_set_fd_handler(a.rfd, fd_read_cb, NULL, &a);
    iovd_set_fd_handler(b.rfd, fd_read_cb, NULL, &b);
    pipe_put(&a, "x");
    pipe_put(&b, "x");
    /* Both readable; whichever runs first removes the other. */
    main_loop_iterate(false);
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
    iovd_set_fd_handler(st.rfd, fd_read_cb, NULL, &st);
    iovd_set_fd_handler(st.rfd, fd_read_cb2, NULL, &st);
    pipe_put(&st, "x");
    main_loop_iterate(false);
    ck_assert_uint_eq(st.reads, 100);
    pipe_close(&st);
}
END_TEST

START_TEST(test_fd_writable)
{
    FdState st;

    pipe_open(&st);
    /* An empty pipe is writable. */
    iovd_set_fd_handler(st.wfd, NULL, fd_write_cb, &st);
    main_loop_iterate(false);
    ck_assert_uint_eq(st.writes, 1);
    ck_assert_uint_eq(st.reads, 0);
    /* Dropping the write callback stops it. */
    iovd_set_fd_handler(st.wfd, fd_read_cb, NULL, &st);
    iterate_n(3);
    ck_assert_uint_eq(st.writes, 1);
    ck_assert_uint_eq(st.reads, 0);     /* write end never readable */
    iovd_set_fd_handler(st.wfd, NULL, fd_write_cb, &st);
    main_loop_iterate(false);
    ck_assert_uint_eq(st.writes, 2);
    pipe_close(&st);
}
END_TEST

/* ---- before-poll hooks -------------------------------------------------- */

typedef struct HookState {
    unsigned calls;
    bool remove_self;
    IovdBH *bh;                 /* schedule this once */
} HookState;

static void hook_cb(void *opaque)
{
    HookState *st = opaque;

    st->calls++;
    if (st->bh) {
        iovd_bh_schedule(st->bh);
        st->bh = NULL;
    }
    if (st->remove_self) {
        iovd_remove_before_poll(hook_cb, st);
    }
}

START_TEST(test_before_poll_each_iteration)
{
    HookState a = { 0 }, b = { 0 };

    iovd_add_before_poll(hook_cb, &a);
    iterate_n(5);
    ck_assert_uint_eq(a.calls, 5);
    iovd_add_before_poll(hook_cb, &b);
    iterate_n(2);
    ck_assert_uint_eq(a.calls, 7);
    ck_assert_uint_eq(b.calls, 2);
    /* Removal matches callback and opaque. */
    iovd_remove_before_poll(hook_cb, &a);
    iterate_n(3);
    ck_assert_uint_eq(a.calls, 7);
    ck_assert_uint_eq(b.calls, 5);
    iovd_remove_before_poll(hook_cb, &a);      /* not there: harmless */
    iovd_remove_before_poll(hook_cb, &b);
    iterate_n(2);
    ck_assert_uint_eq(b.calls, 5);
}
END_TEST

START_TEST(test_before_poll_then_dispatch)
{
    HookState h = { 0 };
    BHState st = { 0 };
    IovdBH *bh = iovd_bh_new(bh_count, &st);

    /* Work the hook queues runs before the loop sleeps: same iteration. */
    h.bh = bh;
    iovd_add_before_poll(hook_cb, &h);
    main_loop_iterate(false);
    ck_assert_uint_eq(h.calls, 1);
    ck_assert_uint_eq(st.runs, 1);
    iovd_remove_before_poll(hook_cb, &h);
    iovd_bh_delete(bh);
}
END_TEST

START_TEST(test_before_poll_remove_self)
{
    HookState a = { 0 }, b = { 0 };
    unsigned b_first;

    a.remove_self = true;
    iovd_add_before_poll(hook_cb, &a);
    iovd_add_before_poll(hook_cb, &b);
    main_loop_iterate(false);
    b_first = b.calls;
    iterate_n(2);
    iovd_remove_before_poll(hook_cb, &b);
    iovd_remove_before_poll(hook_cb, &a);

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
    main_loop_quit();
}

START_TEST(test_iterate_result)
{
    BHState st = { 0 };
    IovdBH *bh = iovd_bh_new(bh_count, &st);

    ck_assert(!main_loop_iterate(false));       /* nothing to do */
    iovd_bh_schedule(bh);
    ck_assert(main_loop_iterate(false));
    ck_assert(!main_loop_iterate(false));
    iovd_bh_delete(bh);
}
END_TEST

START_TEST(test_run_quit)
{
    BHState st = { 0 };
    TimerState ts;
    IovdBH *bh = iovd_bh_new(bh_quit, &st);

    ck_assert(!main_loop_should_quit());
    /* A timer wakes the blocking loop; its BH asks it to quit. */
    timer_init(&ts);
    timer_arm(&ts, clock_ns() + 2 * 1000000);
    iovd_bh_schedule(bh);
    main_loop_run();
    ck_assert_uint_eq(st.runs, 1);
    ck_assert(main_loop_should_quit());
    iovd_bh_delete(bh);
    iovd_timer_free(ts.timer);
}
END_TEST

static void timer_quit(void *opaque)
{
    unsigned *n = opaque;

    (*n)++;
    main_loop_quit();
}

START_TEST(test_run_quit_from_timer)
{
    unsigned n = 0;
    IovdTimer *t = iovd_timer_new(timer_quit, &n);
    int64_t start = clock_ns();

    iovd_timer_mod(t, start + 3 * 1000000);
    main_loop_run();
    ck_assert_uint_eq(n, 1);
    ck_assert_int_ge(clock_ns(), start + 3 * 1000000);
    iovd_timer_free(t);
}
END_TEST

static Suite *main_loop_suite(void)
{
    Suite *s = suite_create("main-loop");
    TCase *tc;

    tc = tcase_create("bh");
    tcase_add_test(tc, test_bh_runs_once);
    tcase_add_test(tc, test_bh_schedule_twice);
    tcase_add_test(tc, test_bh_cancel);
    tcase_add_test(tc, test_bh_delete_in_callback);
    tcase_add_test(tc, test_bh_delete_other_in_callback);
    tcase_add_test(tc, test_bh_from_bh);
    tcase_add_test(tc, test_bh_reschedule_self);
    tcase_add_test(tc, test_bh_cancel_in_batch_then_schedule);
    tcase_add_test(tc, test_bh_nested_iteration);
    tcase_add_test(tc, test_bh_many);
    suite_add_tcase(s, tc);

    tc = tcase_create("timer");
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
    tcase_add_test(tc, test_before_poll_each_iteration);
    tcase_add_test(tc, test_before_poll_then_dispatch);
    tcase_add_test(tc, test_before_poll_remove_self);
    tcase_add_test(tc, test_iterate_result);
    tcase_add_test(tc, test_run_quit);
    tcase_add_test(tc, test_run_quit_from_timer);
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
