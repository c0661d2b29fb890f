/*
 * iovd - common includes and small helpers used everywhere.
 */
#ifndef UTIL_OSDEP_H
#define UTIL_OSDEP_H

#include "config-host.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <glib.h>
#include <glib-unix.h>

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#endif

#define container_of(ptr, type, member) \
    ((type *)((char *)(ptr) - offsetof(type, member)))

#define QEMU_ALIGN_DOWN(n, m) ((n) / (m) * (m))
#define QEMU_ALIGN_UP(n, m)   QEMU_ALIGN_DOWN((n) + (m) - 1, (m))
#define QEMU_IS_ALIGNED(n, m) (((n) % (m)) == 0)
#define DIV_ROUND_UP(n, d)    (((n) + (d) - 1) / (d))

/* Memory barriers for rings shared with the guest. */
#define smp_mb()  __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define smp_wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#define smp_rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)

/*
 * True when [off, off + len) lies within [0, size) without overflowing.
 * Every guest- or client-supplied range goes through this.
 */
static inline bool range_within(uint64_t off, uint64_t len, uint64_t size)
{
    return off <= size && len <= size - off;
}

/* Little-endian loads and stores into byte buffers. */
static inline uint64_t ldn_le_p(const void *p, unsigned size)
{
    uint64_t v = 0;
    memcpy(&v, p, size > 8 ? 8 : size);
    return v;
}

static inline void stn_le_p(void *p, unsigned size, uint64_t v)
{
    memcpy(p, &v, size > 8 ? 8 : size);
}

static inline uint16_t lduw_le_p(const void *p) { return ldn_le_p(p, 2); }
static inline uint32_t ldl_le_p(const void *p) { return ldn_le_p(p, 4); }
static inline uint64_t ldq_le_p(const void *p) { return ldn_le_p(p, 8); }
static inline void stw_le_p(void *p, uint16_t v) { stn_le_p(p, 2, v); }
static inline void stl_le_p(void *p, uint32_t v) { stn_le_p(p, 4, v); }
static inline void stq_le_p(void *p, uint64_t v) { stn_le_p(p, 8, v); }

/* Big-endian (network order) loads and stores into byte buffers. */
static inline uint16_t lduw_be_p(const void *p)
{
    const uint8_t *b = p;

    return (uint16_t)(b[0] << 8 | b[1]);
}

static inline uint32_t ldl_be_p(const void *p)
{
    const uint8_t *b = p;

    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | b[2] << 8 | b[3];
}

static inline void stw_be_p(void *p, uint16_t v)
{
    uint8_t *b = p;

    b[0] = v >> 8;
    b[1] = v;
}

static inline void stl_be_p(void *p, uint32_t v)
{
    uint8_t *b = p;

    b[0] = v >> 24;
    b[1] = v >> 16;
    b[2] = v >> 8;
    b[3] = v;
}

/* Monotonic clock in nanoseconds. */
int64_t clock_ns(void);

#endif
