/*
 * Live upgrade from the harness (hw/core/upgrade.h): a new daemon
 * started with only -incoming, and the QMP "upgrade" that hands the
 * running one over to it, checked as an operator would.  Shared by
 * tests/qtest/upgrade-test.c and tests/bench/upgrade-bench.c.
 */
#ifndef TESTS_QTEST_LIBQOS_IOVD_UPGRADE_H
#define TESTS_QTEST_LIBQOS_IOVD_UPGRADE_H

#include "tests/qtest/libqos/iovd-proc.h"
#include "tests/qtest/libqos/qmp-client.h"

/*
 * A new daemon with only -incoming unix:<its directory>/upgrade.sock
 * (and -trace @trace, or $UPGRADE_TEST_TRACE, unless both are NULL),
 * listening; *@uri is the argument for "upgrade".
 */
IovdProc *iovd_upgrade_target(char **uri, const char *trace);

/*
 * Upgrade @old, whose monitor is *@qmp at @qmp_path, to @next listening
 * at @uri: the reply is {}, SHUTDOWN says "upgrade", @old exits 0 within
 * 15 s, the monitor at @qmp_path answers from @next (running), and its
 * query-status says the upgrade completed, from @old's pid.  *@qmp is
 * then a client of @next.  Returns the downtime @next measured, in us.
 * Fails the test (qos_assert) otherwise.
 */
int64_t iovd_upgrade(IovdProc *old, IovdProc *next, const char *uri,
                     QmpClient **qmp, const char *qmp_path);

/*
 * iovd_upgrade() from *@cur to a new target, which becomes *@cur: the
 * daemon the test started (@home), or one that took over since.  The
 * one before is freed unless it is @home, whose directory holds the
 * sockets the test connects to.  Returns the downtime.
 */
int64_t iovd_upgrade_step(IovdProc *home, IovdProc **cur, QmpClient **qmp,
                          const char *qmp_path);

#endif
