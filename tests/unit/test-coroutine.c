/*
 * Unit tests for util/coroutine.c: enter, yield, return, nesting, many
 * coroutines alive at once, deep stacks, and a coroutine parked in one
 * callback and resumed from another (how a device's DMA waits).
 */
#include <check.h>

#include "util/coroutine.h"
#include "util/loop.h"

typedef struct Trace {
    char log[64];
    unsigned n;
} Trace;

static void note(Trace *t, char c)
{
    ck_assert_uint_lt(t->n, sizeof(t->log) - 1);
    t->log[t->n++] = c;
    t->log[t->n] = '\0';
}

static void co_yield_twice(void *opaque)
{
    Trace *t = opaque;

    note(t, 'a');
    coroutine_yield();
    note(t, 'b');
    coroutine_yield();
    note(t, 'c');
}

START_TEST(test_enter_yield_return)
{
    Trace t = { 0 };
    Coroutine *co = coroutine_new(co_yield_twice, &t);

    ck_assert_ptr_null(coroutine_self());
    ck_assert(!coroutine_running(co));
    coroutine_enter(co);
    note(&t, '1');
    ck_assert(!coroutine_finished(co));
    coroutine_enter(co);
    note(&t, '2');
    coroutine_enter(co);
    note(&t, '3');
    ck_assert(coroutine_finished(co));
    ck_assert_str_eq(t.log, "a1b2c3");
    coroutine_free(co);
}
END_TEST

static void co_self(void *opaque)
{
    Coroutine **seen = opaque;

    *seen = coroutine_self();
}

START_TEST(test_self)
{
    Coroutine *seen = NULL;
    Coroutine *co = coroutine_new(co_self, &seen);

    coroutine_enter(co);
    ck_assert_ptr_eq(seen, co);
    ck_assert_ptr_null(coroutine_self());
    coroutine_free(co);
}
END_TEST

typedef struct Nest {
    Trace *t;
    Coroutine *inner;
} Nest;

static void co_inner(void *opaque)
{
    Trace *t = opaque;

    note(t, 'i');
    coroutine_yield();          /* back to the outer coroutine */
    note(t, 'j');
}

static void co_outer(void *opaque)
{
    Nest *n = opaque;

    note(n->t, 'o');
    coroutine_enter(n->inner);
    note(n->t, 'p');
    coroutine_yield();          /* back to the thread */
    coroutine_enter(n->inner);
    note(n->t, 'q');
}

START_TEST(test_nested)
{
    Trace t = { 0 };
    Nest n = { &t, coroutine_new(co_inner, &t) };
    Coroutine *outer = coroutine_new(co_outer, &n);

    coroutine_enter(outer);
    note(&t, '1');
    coroutine_enter(outer);
    note(&t, '2');
    ck_assert_str_eq(t.log, "oip1jq2");
    ck_assert(coroutine_finished(outer));
    ck_assert(coroutine_finished(n.inner));
    coroutine_free(n.inner);
    coroutine_free(outer);
}
END_TEST

static void co_count(void *opaque)
{
    unsigned *v = opaque;

    for (;;) {
        (*v)++;
        coroutine_yield();
    }
}

START_TEST(test_many_alive)
{
    enum { N = 200 };
    Coroutine *co[N];
    unsigned v[N] = { 0 };

    for (unsigned i = 0; i < N; i++) {
        co[i] = coroutine_new(co_count, &v[i]);
    }
    for (unsigned round = 0; round < 50; round++) {
        for (unsigned i = 0; i < N; i++) {
            coroutine_enter(co[(i * 7 + round) % N]);
        }
    }
    for (unsigned i = 0; i < N; i++) {
        ck_assert_uint_eq(v[i], 50);
        coroutine_free(co[i]);      /* parked in yield: dropped */
    }
}
END_TEST

static unsigned recurse(unsigned depth)
{
    volatile char pad[512];

    pad[0] = (char)depth;
    if (depth == 0) {
        return pad[0];
    }
    return recurse(depth - 1) + 1 + pad[0] * 0;
}

static void co_deep(void *opaque)
{
    unsigned *out = opaque;

    *out = recurse(1000);       /* ~ 600 KiB of stack */
}

START_TEST(test_deep_stack)
{
    unsigned out = 0;
    Coroutine *co = coroutine_new(co_deep, &out);

    coroutine_enter(co);
    ck_assert_uint_eq(out, 1000);
    coroutine_free(co);
}
END_TEST

/* Parked in one loop callback, resumed by another: a DMA reply. */
typedef struct Park {
    Coroutine *co;
    int result;
    bool done;
    EventLoop *loop;
} Park;

static void co_waits(void *opaque)
{
    Park *p = opaque;

    p->result = -1;
    coroutine_yield();          /* "waiting for the reply" */
    p->result = 42;
    p->done = true;
}

static void reply_bh(void *opaque)
{
    Park *p = opaque;

    coroutine_enter(p->co);
}

START_TEST(test_resume_from_bh)
{
    Park p = { 0 };
    LoopBH *bh;

    p.loop = loop_new("t", NULL);
    loop_attach_thread(p.loop);
    p.co = coroutine_new(co_waits, &p);
    bh = loop_bh_new(p.loop, reply_bh, &p);
    coroutine_enter(p.co);
    ck_assert_int_eq(p.result, -1);
    ck_assert(!p.done);
    loop_bh_schedule(bh);
    loop_iterate(p.loop, false);
    ck_assert(p.done);
    ck_assert_int_eq(p.result, 42);
    loop_bh_delete(bh);
    coroutine_free(p.co);
    loop_free(p.loop);
}
END_TEST

static gpointer thread_fn(gpointer opaque)
{
    Trace *t = opaque;
    Coroutine *co = coroutine_new(co_yield_twice, t);

    coroutine_enter(co);
    coroutine_enter(co);
    coroutine_enter(co);
    coroutine_free(co);
    return NULL;
}

START_TEST(test_threads)
{
    Trace t1 = { 0 }, t2 = { 0 };
    GThread *a = g_thread_new("a", thread_fn, &t1);
    GThread *b = g_thread_new("b", thread_fn, &t2);

    g_thread_join(a);
    g_thread_join(b);
    ck_assert_str_eq(t1.log, "abc");
    ck_assert_str_eq(t2.log, "abc");
}
END_TEST

static Suite *coroutine_suite(void)
{
    Suite *s = suite_create("coroutine");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_enter_yield_return);
    tcase_add_test(tc, test_self);
    tcase_add_test(tc, test_nested);
    tcase_add_test(tc, test_many_alive);
    tcase_add_test(tc, test_deep_stack);
    tcase_add_test(tc, test_resume_from_bh);
    tcase_add_test(tc, test_threads);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(coroutine_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
