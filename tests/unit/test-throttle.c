/*
 * Unit tests for util/throttle.c: the bucket arithmetic with made-up
 * clocks, and a group's turns between members on one loop.
 */
#include <check.h>

#include "util/osdep.h"
#include "util/loop.h"
#include "util/throttle.h"
#include "tests/unit/unit-loop.h"

#define SEC 1000000000LL

START_TEST(test_bucket_math)
{
    uint64_t rates[2] = { 1000, 0 };    /* 1000 units/s, unlimited */
    uint64_t cost[2] = { 0, 0 };
    Throttle t;

    throttle_config(&t, rates, 2, 0);
    ck_assert(throttle_enabled(&t));
    ck_assert_int_eq(throttle_wait_ns(&t, 1), 0);
    /* The burst is a tenth of a second: 100 units go at once. */
    cost[0] = 100;
    throttle_account(&t, 1, cost);
    ck_assert_int_eq(throttle_wait_ns(&t, 1), 0);
    cost[0] = 50;
    throttle_account(&t, 1, cost);
    /* 50 over the burst at 1000/s: 50 ms. */
    ck_assert_int_ge(throttle_wait_ns(&t, 1), 50 * 1000000LL);
    ck_assert_int_le(throttle_wait_ns(&t, 1), 50 * 1000000LL + 1);
    /* An unlimited bucket never waits, whatever it holds. */
    cost[1] = 1000000;
    throttle_account(&t, 2, cost);
    ck_assert_int_eq(throttle_wait_ns(&t, 2), 0);
    /* Leaking 30 ms takes 30 units; 20 ms left. */
    throttle_leak(&t, 30 * 1000000LL);
    ck_assert_int_ge(throttle_wait_ns(&t, 1), 20 * 1000000LL);
    ck_assert_int_le(throttle_wait_ns(&t, 1), 20 * 1000000LL + 1);
    /* A clock that goes back changes nothing. */
    throttle_leak(&t, 0);
    ck_assert_int_ge(throttle_wait_ns(&t, 1), 20 * 1000000LL);
    /* Levels never go below zero: a long idle time gives one burst. */
    throttle_leak(&t, 100 * SEC);
    ck_assert(t.b[0].level == 0);
    /* Off: nothing limited. */
    throttle_config(&t, NULL, 0, 0);
    ck_assert(!throttle_enabled(&t));
}
END_TEST

START_TEST(test_bucket_long_run_rate)
{
    uint64_t rates[1] = { 500 };
    uint64_t cost[1] = { 7 };
    int64_t now = 0;
    uint64_t units = 0;
    Throttle t;

    /* Simulate a sender that goes as soon as it may, for 10 s. */
    throttle_config(&t, rates, 1, 0);
    while (now < 10 * SEC) {
        int64_t w;

        throttle_leak(&t, now);
        w = throttle_wait_ns(&t, 1);
        if (w) {
            now += w;
            continue;
        }
        throttle_account(&t, 1, cost);
        units += cost[0];
    }
    /* 5000 units, plus at most one burst (50) and one operation. */
    ck_assert_uint_ge(units, 5000);
    ck_assert_uint_le(units, 5000 + 50 + 7);
}
END_TEST

/* ---- a group on one loop ---- */

typedef struct Mem {
    ThrottleMember *m;
    unsigned queued, sent;
    unsigned *order;            /* shared log of who sent */
    unsigned *nlog;
    unsigned id;
} Mem;

static void mem_restart(void *opaque)
{
    Mem *x = opaque;
    uint64_t cost[1] = { 1 };

    while (x->queued) {
        if (!throttle_member_turn(x->m, 1, cost)) {
            return;
        }
        x->queued--;
        x->sent++;
        x->order[(*x->nlog)++] = x->id;
        if (!throttle_member_passed(x->m, 1000, x->queued > 0)) {
            return;
        }
    }
}

static void mem_submit(Mem *x)
{
    uint64_t cost[1] = { 1 };

    if (!x->queued && throttle_member_may_go(x->m, 1, cost)) {
        x->sent++;
        x->order[(*x->nlog)++] = x->id;
        return;
    }
    x->queued++;
}

START_TEST(test_group_round_robin)
{
    ThrottleGroup *g = throttle_group_new("g");
    uint64_t rates[1] = { 200 };        /* burst 20 */
    unsigned order[200], n = 0;
    Mem a = { .order = order, .nlog = &n, .id = 0 };
    Mem b = { .order = order, .nlog = &n, .id = 1 };
    ThrottleMemberStats st;
    unsigned first, bs = 0;
    int64_t end;

    throttle_group_config(g, rates, 1);
    a.m = throttle_member_new(g, loop_main(), "a", mem_restart, &a);
    b.m = throttle_member_new(g, loop_main(), "b", mem_restart, &b);
    ck_assert_uint_eq(throttle_group_members(g), 2);
    /* a asks for 60 at once, b for 20: the burst goes to a alone... */
    for (int i = 0; i < 60; i++) {
        mem_submit(&a);
    }
    for (int i = 0; i < 20; i++) {
        mem_submit(&b);
    }
    ck_assert_uint_ge(a.sent, 20);
    ck_assert_uint_eq(b.sent, 0);
    first = n;
    /* ...then they take turns: b is done long before a. */
    end = clock_ns() + 2 * SEC;
    while ((a.queued || b.queued) && clock_ns() < end) {
        loop_iterate(loop_main(), true);
    }
    ck_assert_uint_eq(a.sent, 60);
    ck_assert_uint_eq(b.sent, 20);
    /* After the burst a and b alternate while both wait. */
    for (unsigned i = first; i < first + 40; i++) {
        bs += order[i];
    }
    ck_assert_uint_eq(bs, 20);
    throttle_member_stats(b.m, &st);
    ck_assert_uint_eq(st.delayed, 20);
    ck_assert_uint_eq(st.delay_ns, 20 * 1000);
    throttle_member_free(a.m);
    throttle_member_free(b.m);
    throttle_group_free(g);
}
END_TEST

START_TEST(test_group_reconfig_wakes)
{
    ThrottleGroup *g = throttle_group_new("g");
    uint64_t rates[1] = { 1 };          /* one per second */
    unsigned order[8], n = 0;
    Mem a = { .order = order, .nlog = &n };
    int64_t end;

    throttle_group_config(g, rates, 1);
    a.m = throttle_member_new(g, loop_main(), "a", mem_restart, &a);
    for (int i = 0; i < 4; i++) {
        mem_submit(&a);
    }
    ck_assert_uint_eq(a.sent, 2);       /* a burst of one, then waits */
    /* Lifting the limit lets the waiting ones go now, not in seconds. */
    rates[0] = 0;
    throttle_group_config(g, rates, 1);
    end = clock_ns() + SEC / 2;
    while (a.queued && clock_ns() < end) {
        loop_iterate(loop_main(), true);
    }
    ck_assert_uint_eq(a.sent, 4);
    throttle_member_free(a.m);
    throttle_group_free(g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("throttle");
    TCase *tc = tcase_create("throttle");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, unit_loop_setup, unit_loop_teardown);
    tcase_add_test(tc, test_bucket_math);
    tcase_add_test(tc, test_bucket_long_run_rate);
    tcase_add_test(tc, test_group_round_robin);
    tcase_add_test(tc, test_group_reconfig_wakes);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
