/*
 * A fresh main loop for each unit test (Check runs every test in its own
 * process): add unit_loop_setup/unit_loop_teardown as a checked fixture.
 */
#ifndef TESTS_UNIT_UNIT_LOOP_H
#define TESTS_UNIT_UNIT_LOOP_H

#include "util/loop.h"

static inline void unit_loop_setup(void)
{
    EventLoop *l = loop_new("test", NULL);

    g_assert(l);
    loop_attach_thread(l);
    loop_set_main(l);
}

static inline void unit_loop_teardown(void)
{
    /* The process ends with the test: nothing to free. */
}

#endif
