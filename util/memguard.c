/*
 * Guarded mappings: see util/memguard.h.
 *
 * The slots are a fixed array so that the signal handler can read them
 * without a lock: a slot is published (its range, then `used`, with
 * release) and retired (`used` cleared first) by memguard_add/del under
 * a mutex; the handler only reads them and sets the dead flag.
 */
#include "util/memguard.h"

#include <signal.h>
#include <sys/mman.h>

#define MEMGUARD_SLOTS 4096

typedef struct MemguardSlot {
    uintptr_t start;
    size_t len;
    int used;
} MemguardSlot;

static MemguardSlot slots[MEMGUARD_SLOTS];
int memguard_dead_flags[MEMGUARD_SLOTS];
unsigned memguard_fault_count;
static GMutex slots_lock;
static long page_size;

static void memguard_sigbus(int sig, siginfo_t *si, void *uc)
{
    uintptr_t a = (uintptr_t)si->si_addr;

    (void)uc;
    for (unsigned i = 0; i < MEMGUARD_SLOTS; i++) {
        MemguardSlot *s = &slots[i];

        if (__atomic_load_n(&s->used, __ATOMIC_ACQUIRE) &&
            a - s->start < s->len) {
            void *p = (void *)(a & ~(uintptr_t)(page_size - 1));

            if (mmap(p, page_size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) ==
                MAP_FAILED) {
                break;
            }
            __atomic_store_n(&memguard_dead_flags[i], 1, __ATOMIC_RELAXED);
            __atomic_add_fetch(&memguard_fault_count, 1, __ATOMIC_RELEASE);
            return;
        }
    }
    /* Not guest memory: a bug of ours, die as without the handler. */
    signal(sig, SIG_DFL);
}

static gpointer memguard_install(gpointer unused)
{
    struct sigaction sa = {
        .sa_sigaction = memguard_sigbus,
        .sa_flags = SA_SIGINFO | SA_RESTART,
    };

    (void)unused;
    page_size = sysconf(_SC_PAGESIZE);
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
    return NULL;
}

int memguard_add(void *host, size_t len)
{
    static GOnce once = G_ONCE_INIT;
    int slot = -1;

    g_once(&once, memguard_install, NULL);
    g_mutex_lock(&slots_lock);
    for (unsigned i = 0; i < MEMGUARD_SLOTS; i++) {
        if (!slots[i].used) {
            slots[i].start = (uintptr_t)host;
            slots[i].len = len;
            __atomic_store_n(&memguard_dead_flags[i], 0, __ATOMIC_RELAXED);
            __atomic_store_n(&slots[i].used, 1, __ATOMIC_RELEASE);
            slot = i;
            break;
        }
    }
    g_mutex_unlock(&slots_lock);
    return slot;
}

void memguard_del(int slot)
{
    if (slot < 0) {
        return;
    }
    g_mutex_lock(&slots_lock);
    __atomic_store_n(&slots[slot].used, 0, __ATOMIC_RELEASE);
    g_mutex_unlock(&slots_lock);
}
