/*
 * Guest RAM for a test: a memfd mapped into the test process (as the guest
 * CPU sees it) and into the device at a guest physical base through
 * DMA_MAP, plus a small allocator for guest addresses.
 *
 *     GuestMem *gm = guest_mem_new(GUEST_MEM_DEFAULT_BASE, 16 << 20);
 *     guest_mem_map(gm, client, true);      // DMA_MAP with the memfd
 *     uint64_t buf = guest_alloc(gm, 4096);
 *     guest_memwrite(gm, buf, data, len);   // the guest CPU writes
 *
 * With guest_mem_map(..., false) no fd is passed, so the server must reach
 * this memory through DMA_READ / DMA_WRITE, which the client answers from
 * the same mapping.
 */
#ifndef LIBQOS_GUEST_MEM_H
#define LIBQOS_GUEST_MEM_H

#include "util/osdep.h"
#include "tests/qtest/libqos/vfu-client.h"

/* Above 4 GiB, so DMA addresses use their high 32 bits. */
#define GUEST_MEM_DEFAULT_BASE  0x100000000ULL
#define GUEST_MEM_DEFAULT_SIZE  (16ULL << 20)
#define GUEST_PAGE_SIZE         4096ULL

typedef struct GuestMem GuestMem;

/* @size bytes (page multiple) of guest RAM at guest physical @base. */
GuestMem *guest_mem_new(uint64_t base, uint64_t size);
void guest_mem_free(GuestMem *gm);

uint64_t guest_mem_base(GuestMem *gm);
uint64_t guest_mem_size(GuestMem *gm);
int guest_mem_fd(GuestMem *gm);

/*
 * DMA_MAP the whole RAM (read/write) to @c, passing the memfd when
 * @share_fd.  Returns 0 or -errno.  guest_mem_map_checked() fails the test
 * on error.
 */
int guest_mem_map(GuestMem *gm, VfuClient *c, bool share_fd);
void guest_mem_map_checked(GuestMem *gm, VfuClient *c, bool share_fd);
/* DMA_UNMAP the whole RAM.  Returns 0 or -errno. */
int guest_mem_unmap(GuestMem *gm, VfuClient *c);

/*
 * For a migration (libqos/migration.h): log the pages this process (the
 * guest CPU) writes, by write-protecting guest RAM until
 * guest_mem_track_stop(), which returns the bitmap (bit n of 64-bit word
 * n / 64 is page n; g_free).
 * While tracking, hand guest RAM to no system call that writes it.
 */
void guest_mem_track_start(GuestMem *gm);
uint64_t *guest_mem_track_stop(GuestMem *gm);
/*
 * Guest RAM is now the memfd @fd (of the same size; @gm takes it): it is
 * mapped where the old one was, so pointers into guest RAM stay valid.
 */
void guest_mem_replace(GuestMem *gm, int fd);

/*
 * Allocate @size bytes of guest memory aligned to @align (a power of two;
 * 0 means 64).  Fails the test when the memory is exhausted.
 */
uint64_t guest_alloc_aligned(GuestMem *gm, uint64_t size, uint64_t align);
uint64_t guest_alloc(GuestMem *gm, uint64_t size);
/* Return an allocation (its exact start address). */
void guest_free(GuestMem *gm, uint64_t addr);

/* Host pointer for guest [addr, addr + len); fails when outside RAM. */
void *guest_ptr(GuestMem *gm, uint64_t addr, uint64_t len);

void guest_memread(GuestMem *gm, uint64_t addr, void *buf, uint64_t len);
void guest_memwrite(GuestMem *gm, uint64_t addr, const void *buf,
                    uint64_t len);
void guest_memset(GuestMem *gm, uint64_t addr, int c, uint64_t len);

uint8_t guest_readb(GuestMem *gm, uint64_t addr);
uint16_t guest_readw(GuestMem *gm, uint64_t addr);
uint32_t guest_readl(GuestMem *gm, uint64_t addr);
uint64_t guest_readq(GuestMem *gm, uint64_t addr);
void guest_writeb(GuestMem *gm, uint64_t addr, uint8_t v);
void guest_writew(GuestMem *gm, uint64_t addr, uint16_t v);
void guest_writel(GuestMem *gm, uint64_t addr, uint32_t v);
void guest_writeq(GuestMem *gm, uint64_t addr, uint64_t v);

#endif
