/*
 * The Internet checksum (RFC 1071): ones' complement sums of big-endian
 * 16-bit words, for checksum offload in the NICs and the net layer.
 */
#ifndef NET_CHECKSUM_H
#define NET_CHECKSUM_H

#include "util/osdep.h"

/*
 * Add the bytes [p, p + len) to the partial sum @sum (start with 0, or a
 * pseudo-header's sum) as big-endian 16-bit words, an odd last byte
 * padded with zero.  Returns the partial sum, folded to 16 bits.
 */
uint32_t net_checksum_add(uint32_t sum, const void *p, size_t len);

/* Fold a partial sum to 16 bits: 0xffff when a received checksum checks. */
uint16_t net_checksum_fold(uint64_t sum);

/* The value of a checksum field covering what @sum summed. */
static inline uint16_t net_checksum_finish(uint32_t sum)
{
    return ~net_checksum_fold(sum);
}

/* The checksum field value over an iovec's bytes from @off to the end. */
uint16_t net_checksum_iov(const struct iovec *iov, unsigned n, size_t off);

#endif
