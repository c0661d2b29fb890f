/*
 * Coroutines on sigsetjmp/siglongjmp.  A new coroutine is started on its
 * stack once (a few instructions of assembly on x86-64 and AArch64,
 * makecontext elsewhere); from then on switches are a setjmp into the
 * current context's buffer and a longjmp into the target's, with the
 * signal mask left alone (no system call).
 */
/* Fortified longjmp refuses to jump to another stack: that is the point. */
#undef _FORTIFY_SOURCE
#include "util/coroutine.h"

#include <setjmp.h>
#include <sys/mman.h>
#include <ucontext.h>

#ifdef CONFIG_SANITIZERS
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#define COROUTINE_STACK_SIZE (1u << 20)

struct Coroutine {
    CoroutineEntry *entry;
    void *opaque;
    sigjmp_buf env;
    Coroutine *caller;          /* who entered us, while running */
    void *stack;                /* NULL for a thread's own context */
    size_t stack_size;
    bool finished;
    void *fake_stack;           /* AddressSanitizer's, across switches */
};

/* The thread's own stack, as a context to switch back to. */
static __thread Coroutine thread_ctx;
static __thread Coroutine *current;
static __thread Coroutine *switched_from;

/* ---- AddressSanitizer: say which stack we are on ---- */

static inline void switch_begin(Coroutine *from, const void *stack,
                                size_t size)
{
#ifdef CONFIG_SANITIZERS
    __sanitizer_start_switch_fiber(from->finished ? NULL : &from->fake_stack,
                                   stack, size);
#endif
}

/* Arrived on @self's stack (@fake_stack: what self saved when it left). */
static inline void switch_end(void *fake_stack, const void **bottom,
                              size_t *size)
{
#ifdef CONFIG_SANITIZERS
    __sanitizer_finish_switch_fiber(fake_stack, bottom, size);
#else
    *bottom = NULL;
    *size = 0;
#endif
}

static void switch_arrived(Coroutine *self)
{
    const void *bottom;
    size_t size;

    switch_end(self->fake_stack, &bottom, &size);
    /* The first switch away from a thread's stack tells us its bounds. */
    if (switched_from == &thread_ctx && !thread_ctx.stack) {
        thread_ctx.stack = (void *)bottom;
        thread_ctx.stack_size = size;
    }
}

/* Save where @from is and continue in @to. */
static void co_switch(Coroutine *from, Coroutine *to)
{
    if (!sigsetjmp(from->env, 0)) {
        switch_begin(from, to->stack, to->stack_size);
        switched_from = from;
        current = to;
        siglongjmp(to->env, 1);
    }
    switch_arrived(from);
}

static void __attribute__((noreturn, used)) co_start(Coroutine *co)
{
    sigjmp_buf *back = co->opaque;
    const void *creator_stack;
    size_t creator_size;

    /* First time here (from coroutine_new): note the context, go back. */
    switch_end(NULL, &creator_stack, &creator_size);
    if (!sigsetjmp(co->env, 0)) {
        switch_begin(co, creator_stack, creator_size);
        switched_from = co;
        siglongjmp(*back, 1);
    }
    switch_arrived(co);
    for (;;) {
        Coroutine *to;

        co->entry(co->opaque);
        co->finished = true;
        to = co->caller;
        co->caller = NULL;
        co_switch(co, to);
    }
}

#if !defined(__x86_64__) && !defined(__aarch64__)
static void co_trampoline(int lo, int hi)
{
    co_start((Coroutine *)(((uintptr_t)(uint32_t)hi << 32) |
                           (uintptr_t)(uint32_t)lo));
}
#endif

/* Call co_start(@co) on the stack that ends at @top; it never returns. */
static void co_boot(Coroutine *co, void *top)
{
#if defined(__x86_64__)
    __asm__ volatile("mov %0, %%rsp\n\t"
                     "mov %1, %%rdi\n\t"
                     "call co_start\n\t"
                     "ud2"
                     : : "r"(top), "r"(co) : "memory");
#elif defined(__aarch64__)
    __asm__ volatile("mov sp, %0\n\t"
                     "mov x0, %1\n\t"
                     "bl co_start\n\t"
                     "brk #0"
                     : : "r"(top), "r"(co) : "memory", "x0", "x30");
#else
    ucontext_t uc, old;
    uintptr_t p = (uintptr_t)co;

    getcontext(&uc);
    uc.uc_link = NULL;
    uc.uc_stack.ss_sp = co->stack;
    uc.uc_stack.ss_size = co->stack_size;
    uc.uc_stack.ss_flags = 0;
    makecontext(&uc, (void (*)(void))co_trampoline, 2, (int)(uint32_t)p,
                (int)(uint32_t)(p >> 32));
    swapcontext(&old, &uc);
#endif
}

Coroutine *coroutine_new(CoroutineEntry *entry, void *opaque)
{
    Coroutine *co = g_new0(Coroutine, 1);
    Coroutine *self = current ? current : &thread_ctx;
    sigjmp_buf back;

    co->stack_size = COROUTINE_STACK_SIZE;
    co->stack = mmap(NULL, co->stack_size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    g_assert(co->stack != MAP_FAILED);
    /* A guard page at the bottom: an overflow faults, it does not
     * corrupt the neighbour. */
    mprotect(co->stack, 4096, PROT_NONE);

    co->opaque = &back;
    if (!sigsetjmp(back, 0)) {
        switch_begin(self, co->stack, co->stack_size);
        /* 16-byte aligned top, as the ABI wants at a call. */
        co_boot(co, (uint8_t *)co->stack + co->stack_size - 64);
    }
    switch_arrived(self);
    co->entry = entry;
    co->opaque = opaque;
    return co;
}

void coroutine_free(Coroutine *co)
{
    if (!co) {
        return;
    }
    g_assert(co != current && !co->caller);
    munmap(co->stack, co->stack_size);
    g_free(co);
}

void coroutine_enter(Coroutine *co)
{
    Coroutine *self = current ? current : &thread_ctx;

    g_assert(co != self && !co->caller && !co->finished);
    co->caller = self;
    co_switch(self, co);
}

void coroutine_yield(void)
{
    Coroutine *self = current;
    Coroutine *to;

    g_assert(self && self != &thread_ctx && self->caller);
    to = self->caller;
    self->caller = NULL;
    co_switch(self, to);
}

Coroutine *coroutine_self(void)
{
    return current == &thread_ctx ? NULL : current;
}

bool coroutine_finished(Coroutine *co)
{
    return co->finished;
}

bool coroutine_running(Coroutine *co)
{
    return co->caller != NULL;
}
