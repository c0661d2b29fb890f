/*
 * Coroutines: a function that can stop in the middle (coroutine_yield)
 * and be resumed later where it stopped (coroutine_enter), on a stack of
 * its own.  A device's work runs in one (hw/core/device.c), so that a DMA
 * that has to wait for the VMM's reply parks just that work while the
 * loop goes on serving everything else: no nested event loop.
 *
 * Switching costs no system call (sigsetjmp/siglongjmp without the signal
 * mask; the stack is set up once with makecontext).  Coroutines belong to
 * the thread that created them.  Under AddressSanitizer every switch is
 * announced to it (__sanitizer_start/finish_switch_fiber).
 */
#ifndef UTIL_COROUTINE_H
#define UTIL_COROUTINE_H

#include "util/osdep.h"

typedef struct Coroutine Coroutine;
typedef void CoroutineEntry(void *opaque);

/* A coroutine that will run @entry(@opaque) when first entered. */
Coroutine *coroutine_new(CoroutineEntry *entry, void *opaque);
/* Free a coroutine that is not running (finished, or never entered, or
 * stopped in coroutine_yield: then its stack is simply dropped). */
void coroutine_free(Coroutine *co);
/*
 * Run @co until it yields or its entry returns, then come back here.  A
 * coroutine may enter another; it must not enter itself or one that is
 * running further up (that one resumes when its callee yields).
 */
void coroutine_enter(Coroutine *co);
/* From inside a coroutine: go back to whoever entered it. */
void coroutine_yield(void);
/* The running coroutine, NULL on a thread's own stack. */
Coroutine *coroutine_self(void);
/* True once @co's entry function returned. */
bool coroutine_finished(Coroutine *co);
/* True while @co is between an enter and its yield (or return). */
bool coroutine_running(Coroutine *co);

#endif
