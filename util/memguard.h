/*
 * Guard for memory that another process lends us and may take back: a
 * client's guest RAM is a file (a memfd, a file on tmpfs or hugetlbfs)
 * that it can truncate after the fact, and a CPU access to a page past
 * the new end raises SIGBUS, which would kill the daemon and every
 * device it serves.
 *
 * In a guarded mapping such a fault does not kill: the handler puts a
 * private zero page at the faulting address (the access completes,
 * reading zeros or writing into nothing) and marks the mapping dead.  Its
 * owner then treats it as unmapped (memguard_dead()), and a copy that was
 * under way when it died reports failure (memguard_faults() changed).
 * I/O the kernel does into such memory fails with EFAULT by itself.
 */
#ifndef UTIL_MEMGUARD_H
#define UTIL_MEMGUARD_H

#include "util/osdep.h"

/*
 * Guard [@host, @host + @len): a slot for memguard_dead/memguard_del, or
 * -1 when every slot is taken (the caller refuses the mapping).
 */
int memguard_add(void *host, size_t len);

/* Stop guarding (before the mapping is unmapped). */
void memguard_del(int slot);

/* Has a page of the mapping in @slot vanished? */
static inline bool memguard_dead(int slot)
{
    extern int memguard_dead_flags[];

    return slot >= 0 &&
           unlikely(__atomic_load_n(&memguard_dead_flags[slot],
                                    __ATOMIC_RELAXED));
}

/* How many faults were caught so far: compare around a copy. */
static inline unsigned memguard_faults(void)
{
    extern unsigned memguard_fault_count;

    return __atomic_load_n(&memguard_fault_count, __ATOMIC_RELAXED);
}

#endif
