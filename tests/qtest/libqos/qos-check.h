/*
 * Glue between libqos and Check, for test programs only (libqos itself
 * does not link against Check).  qos_check_init() makes a harness failure
 * a Check failure at the harness's file and line; forked test processes
 * inherit it.  qos_check_run() is a whole main(): init, a shared temporary
 * directory, run the suite, exit status.
 */
#ifndef LIBQOS_QOS_CHECK_H
#define LIBQOS_QOS_CHECK_H

#include <check.h>

#include "tests/qtest/libqos/qos-util.h"
#include "tests/qtest/libqos/iovd-proc.h"

static inline void qos_check_fail_handler(const char *file, int line,
                                          const char *msg)
{
    _ck_assert_failed(file, line, "libqos", "%s", msg);
}

static inline void qos_check_init(void)
{
    qos_set_fail_handler(qos_check_fail_handler);
}

/*
 * The whole main() of a test program: run @s in CK_NORMAL mode and return
 * the exit status (non-zero when a test failed).
 */
static inline int qos_check_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int failed;

    qos_check_init();
    iovd_proc_init_tmpdir();
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * A test case @name of @s whose every test runs between @setup and
 * @teardown (a checked fixture: in the test's own process) and is killed
 * after @timeout seconds.
 */
static inline TCase *qos_check_tcase(Suite *s, const char *name,
                                     void (*setup)(void),
                                     void (*teardown)(void), double timeout)
{
    TCase *tc = tcase_create(name);

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, timeout);
    suite_add_tcase(s, tc);
    return tc;
}

/* ck_assert_int_eq() on errno-style results, naming the errnos. */
#define qos_assert_errno(expr, expected)                                \
    do {                                                                \
        int _qos_r = (expr);                                            \
        int _qos_e = (expected);                                        \
        ck_assert_msg(_qos_r == _qos_e, "%s returned %d (%s), "         \
                      "expected %d (%s)", #expr, _qos_r,                \
                      qos_errno_name(_qos_r), _qos_e,                   \
                      qos_errno_name(_qos_e));                          \
    } while (0)

#endif
