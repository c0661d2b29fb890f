/*
 * Guest RAM for a test: memfd, DMA_MAP and a first-fit allocator.
 */
#include "util/osdep.h"

#include <signal.h>
#include <sys/mman.h>

#include "tests/qtest/libqos/guest-mem.h"

typedef struct GuestRange {
    uint64_t addr, size;
} GuestRange;

struct GuestMem {
    int fd;
    uint8_t *host;
    uint64_t base, size;
    GArray *free;               /* of GuestRange, sorted, coalesced */
    GHashTable *allocs;         /* guest addr -> GuestRange * (whole block) */
};

GuestMem *guest_mem_new(uint64_t base, uint64_t size)
{
    GuestMem *gm = g_new0(GuestMem, 1);
    GuestRange all = { .addr = base, .size = size };

    qos_assert(size && QEMU_IS_ALIGNED(size, GUEST_PAGE_SIZE) &&
               QEMU_IS_ALIGNED(base, GUEST_PAGE_SIZE) &&
               base + size > base,
               "guest RAM 0x%" PRIx64 "+0x%" PRIx64 " is not page aligned",
               base, size);
    gm->fd = memfd_create("iovd-qtest-guest-ram", MFD_CLOEXEC);
    if (gm->fd < 0) {
        qos_fail("memfd_create: %s", g_strerror(errno));
    }
    if (ftruncate(gm->fd, size) < 0) {
        qos_fail("ftruncate(guest RAM, %" PRIu64 "): %s", size,
                 g_strerror(errno));
    }
    gm->host = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, gm->fd,
                    0);
    if (gm->host == MAP_FAILED) {
        qos_fail("mmap(guest RAM): %s", g_strerror(errno));
    }
    gm->base = base;
    gm->size = size;
    gm->free = g_array_new(false, false, sizeof(GuestRange));
    g_array_append_val(gm->free, all);
    gm->allocs = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL,
                                       g_free);
    return gm;
}

/* ---- the guest CPU's dirty log (migration) ---- */

/*
 * As KVM's dirty log: guest RAM is write-protected in this process and
 * the first write to a page faults, marks it and opens it again.  One
 * GuestMem at a time.
 */
static GuestMem *tracked;
static uint64_t *tracked_dirty;
static struct sigaction old_segv;

static void track_fault(int sig, siginfo_t *si, void *uc)
{
    uint8_t *a = si->si_addr;
    uint64_t pg;

    (void)uc;
    if (!tracked || a < tracked->host || a >= tracked->host + tracked->size) {
        sigaction(sig, &old_segv, NULL);    /* not ours: fault again */
        return;
    }
    pg = (a - tracked->host) / GUEST_PAGE_SIZE;
    tracked_dirty[pg / 64] |= 1ull << (pg % 64);
    mprotect(tracked->host + pg * GUEST_PAGE_SIZE, GUEST_PAGE_SIZE,
             PROT_READ | PROT_WRITE);
}

void guest_mem_track_start(GuestMem *gm)
{
    struct sigaction sa = { .sa_sigaction = track_fault,
                            .sa_flags = SA_SIGINFO };
    uint64_t npages = gm->size / GUEST_PAGE_SIZE;

    qos_assert(!tracked, "guest RAM is tracked already");
    tracked_dirty = g_new0(uint64_t, DIV_ROUND_UP(npages, 64));
    tracked = gm;
    sigaction(SIGSEGV, &sa, &old_segv);
    qos_assert(mprotect(gm->host, gm->size, PROT_READ) == 0,
               "mprotect(guest RAM): %s", g_strerror(errno));
}

uint64_t *guest_mem_track_stop(GuestMem *gm)
{
    uint64_t *dirty = tracked_dirty;

    qos_assert(tracked == gm, "guest RAM is not tracked");
    qos_assert(mprotect(gm->host, gm->size, PROT_READ | PROT_WRITE) == 0,
               "mprotect(guest RAM): %s", g_strerror(errno));
    sigaction(SIGSEGV, &old_segv, NULL);
    tracked = NULL;
    tracked_dirty = NULL;
    return dirty;
}

void guest_mem_replace(GuestMem *gm, int fd)
{
    void *p = mmap(gm->host, gm->size, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_FIXED, fd, 0);

    qos_assert(p == gm->host, "mmap(new guest RAM) at %p: %s", gm->host,
               g_strerror(errno));
    close(gm->fd);
    gm->fd = fd;
}

void guest_mem_free(GuestMem *gm)
{
    if (!gm) {
        return;
    }
    munmap(gm->host, gm->size);
    close(gm->fd);
    g_array_free(gm->free, true);
    g_hash_table_destroy(gm->allocs);
    g_free(gm);
}

uint64_t guest_mem_base(GuestMem *gm)
{
    return gm->base;
}

uint64_t guest_mem_size(GuestMem *gm)
{
    return gm->size;
}

int guest_mem_fd(GuestMem *gm)
{
    return gm->fd;
}

int guest_mem_map(GuestMem *gm, VfuClient *c, bool share_fd)
{
    return vfu_dma_map(c, gm->base, gm->size,
                       VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE,
                       share_fd ? gm->fd : -1, 0, gm->host);
}

void guest_mem_map_checked(GuestMem *gm, VfuClient *c, bool share_fd)
{
    int ret = guest_mem_map(gm, c, share_fd);

    if (ret < 0) {
        qos_fail("DMA_MAP of guest RAM 0x%" PRIx64 "+0x%" PRIx64
                 " (%s fd) failed: %s (%d)", gm->base, gm->size,
                 share_fd ? "with" : "without", qos_errno_name(ret), ret);
    }
}

int guest_mem_unmap(GuestMem *gm, VfuClient *c)
{
    return vfu_dma_unmap(c, gm->base, gm->size, 0);
}

/* ---- allocator ---- */

uint64_t guest_alloc_aligned(GuestMem *gm, uint64_t size, uint64_t align)
{
    if (!align) {
        align = 64;
    }
    qos_assert(!(align & (align - 1)), "alignment %" PRIu64 " is not a "
               "power of two", align);
    qos_assert(size, "guest_alloc of 0 bytes");

    for (unsigned i = 0; i < gm->free->len; i++) {
        GuestRange *r = &g_array_index(gm->free, GuestRange, i);
        uint64_t start = QEMU_ALIGN_UP(r->addr, align);
        uint64_t end = r->addr + r->size;
        GuestRange *block;

        if (start < r->addr || start > end || end - start < size) {
            continue;
        }
        /* Carve [start, start + size) out of r. */
        block = g_new(GuestRange, 1);
        block->addr = start;
        block->size = size;
        if (start + size < end) {
            GuestRange tail = { start + size, end - (start + size) };

            if (start > r->addr) {
                r->size = start - r->addr;
                g_array_insert_val(gm->free, i + 1, tail);
            } else {
                *r = tail;
            }
        } else if (start > r->addr) {
            r->size = start - r->addr;
        } else {
            g_array_remove_index(gm->free, i);
        }
        g_hash_table_insert(gm->allocs, &block->addr, block);
        return start;
    }
    qos_fail("guest RAM exhausted: cannot allocate %" PRIu64 " bytes "
             "aligned to %" PRIu64, size, align);
}

uint64_t guest_alloc(GuestMem *gm, uint64_t size)
{
    return guest_alloc_aligned(gm, size, 0);
}

void guest_free(GuestMem *gm, uint64_t addr)
{
    GuestRange *block = g_hash_table_lookup(gm->allocs, &addr);
    GuestRange fr;
    unsigned i;

    qos_assert(block, "guest_free(0x%" PRIx64 "): not allocated", addr);
    fr = *block;
    g_hash_table_remove(gm->allocs, &addr);

    /* Insert sorted, then merge with the neighbours. */
    for (i = 0; i < gm->free->len; i++) {
        if (g_array_index(gm->free, GuestRange, i).addr > fr.addr) {
            break;
        }
    }
    g_array_insert_val(gm->free, i, fr);
    if (i + 1 < gm->free->len) {
        GuestRange *cur = &g_array_index(gm->free, GuestRange, i);
        GuestRange *next = &g_array_index(gm->free, GuestRange, i + 1);

        if (cur->addr + cur->size == next->addr) {
            cur->size += next->size;
            g_array_remove_index(gm->free, i + 1);
        }
    }
    if (i > 0) {
        GuestRange *prev = &g_array_index(gm->free, GuestRange, i - 1);
        GuestRange *cur = &g_array_index(gm->free, GuestRange, i);

        if (prev->addr + prev->size == cur->addr) {
            prev->size += cur->size;
            g_array_remove_index(gm->free, i);
        }
    }
}

/* ---- guest CPU access ---- */

void *guest_ptr(GuestMem *gm, uint64_t addr, uint64_t len)
{
    if (addr < gm->base || !range_within(addr - gm->base, len, gm->size)) {
        qos_fail("guest access 0x%" PRIx64 "+0x%" PRIx64 " outside guest "
                 "RAM 0x%" PRIx64 "+0x%" PRIx64, addr, len, gm->base,
                 gm->size);
    }
    return gm->host + (addr - gm->base);
}

void guest_memread(GuestMem *gm, uint64_t addr, void *buf, uint64_t len)
{
    memcpy(buf, guest_ptr(gm, addr, len), len);
}

void guest_memwrite(GuestMem *gm, uint64_t addr, const void *buf,
                    uint64_t len)
{
    memcpy(guest_ptr(gm, addr, len), buf, len);
}

void guest_memset(GuestMem *gm, uint64_t addr, int c, uint64_t len)
{
    memset(guest_ptr(gm, addr, len), c, len);
}

uint8_t guest_readb(GuestMem *gm, uint64_t addr)
{
    return *(uint8_t *)guest_ptr(gm, addr, 1);
}

uint16_t guest_readw(GuestMem *gm, uint64_t addr)
{
    return lduw_le_p(guest_ptr(gm, addr, 2));
}

uint32_t guest_readl(GuestMem *gm, uint64_t addr)
{
    return ldl_le_p(guest_ptr(gm, addr, 4));
}

uint64_t guest_readq(GuestMem *gm, uint64_t addr)
{
    return ldq_le_p(guest_ptr(gm, addr, 8));
}

void guest_writeb(GuestMem *gm, uint64_t addr, uint8_t v)
{
    *(uint8_t *)guest_ptr(gm, addr, 1) = v;
}

void guest_writew(GuestMem *gm, uint64_t addr, uint16_t v)
{
    stw_le_p(guest_ptr(gm, addr, 2), v);
}

void guest_writel(GuestMem *gm, uint64_t addr, uint32_t v)
{
    stl_le_p(guest_ptr(gm, addr, 4), v);
}

void guest_writeq(GuestMem *gm, uint64_t addr, uint64_t v)
{
    stq_le_p(guest_ptr(gm, addr, 8), v);
}
