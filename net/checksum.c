/*
 * The Internet checksum (RFC 1071).
 */
#include "net/checksum.h"

uint16_t net_checksum_fold(uint64_t sum)
{
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return sum;
}

uint32_t net_checksum_add(uint32_t sum, const void *p, size_t len)
{
    const uint8_t *b = p;
    uint64_t acc = sum;
    size_t i;

    for (i = 0; i + 1 < len; i += 2) {
        acc += (uint32_t)b[i] << 8 | b[i + 1];
    }
    if (len & 1) {
        acc += (uint32_t)b[len - 1] << 8;
    }
    return net_checksum_fold(acc);
}

/*
 * A segment that starts at an odd position of the whole contributes its
 * sum byte-swapped (RFC 1071's byte order independence).
 */
uint16_t net_checksum_iov(const struct iovec *iov, unsigned n, size_t off)
{
    uint64_t sum = 0;
    size_t pos = 0;

    for (unsigned i = 0; i < n; i++) {
        size_t len = iov[i].iov_len;
        uint32_t s;

        if (off >= len) {
            off -= len;
            continue;
        }
        len -= off;
        s = net_checksum_add(0, (const uint8_t *)iov[i].iov_base + off, len);
        off = 0;
        if (pos & 1) {
            s = ((s & 0xff) << 8) | (s >> 8);
        }
        sum += s;
        pos += len;
    }
    return ~net_checksum_fold(sum);
}
