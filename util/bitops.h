/*
 * Bitmaps of unsigned longs: bit n of a map lives in word n / BITS_PER_LONG.
 */
#ifndef UTIL_BITOPS_H
#define UTIL_BITOPS_H

#include "util/osdep.h"

#define BITS_PER_LONG (8 * sizeof(unsigned long))
#define BITS_TO_LONGS(n) DIV_ROUND_UP((n), BITS_PER_LONG)
#define BIT_WORD(n) ((n) / BITS_PER_LONG)
#define BIT_MASK(n) (1UL << ((n) % BITS_PER_LONG))

static inline unsigned long *bitmap_new(unsigned nbits)
{
    return g_new0(unsigned long, BITS_TO_LONGS(nbits));
}

static inline void bitmap_zero(unsigned long *map, unsigned nbits)
{
    memset(map, 0, BITS_TO_LONGS(nbits) * sizeof(unsigned long));
}

static inline bool test_bit(unsigned n, const unsigned long *map)
{
    return map[BIT_WORD(n)] & BIT_MASK(n);
}

static inline void set_bit(unsigned n, unsigned long *map)
{
    map[BIT_WORD(n)] |= BIT_MASK(n);
}

static inline void clear_bit(unsigned n, unsigned long *map)
{
    map[BIT_WORD(n)] &= ~BIT_MASK(n);
}

/* The first bit at or after @start that differs from @skip (0 or ~0UL). */
static inline unsigned bitmap_find_next(const unsigned long *map,
                                        unsigned nbits, unsigned start,
                                        unsigned long skip)
{
    while (start < nbits) {
        unsigned long w = (map[BIT_WORD(start)] ^ skip) >>
                          (start % BITS_PER_LONG);

        if (w) {
            start += __builtin_ctzl(w);
            return MIN(start, nbits);
        }
        start = (BIT_WORD(start) + 1) * BITS_PER_LONG;
    }
    return nbits;
}

/* The first set bit at or after @start, or @nbits when there is none. */
static inline unsigned find_next_bit(const unsigned long *map, unsigned nbits,
                                     unsigned start)
{
    return bitmap_find_next(map, nbits, start, 0);
}

/* The first clear bit at or after @start, or @nbits when there is none. */
static inline unsigned find_next_zero_bit(const unsigned long *map,
                                          unsigned nbits, unsigned start)
{
    return bitmap_find_next(map, nbits, start, ~0UL);
}

static inline unsigned find_first_bit(const unsigned long *map,
                                      unsigned nbits)
{
    return find_next_bit(map, nbits, 0);
}

#endif
