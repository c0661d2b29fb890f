#include "util/iov.h"

size_t iov_size(const struct iovec *iov, unsigned n)
{
    size_t len = 0;

    for (unsigned i = 0; i < n; i++) {
        len += iov[i].iov_len;
    }
    return len;
}

static size_t iov_copy(const struct iovec *iov, unsigned n, size_t off,
                       void *buf, size_t len, bool to_iov)
{
    size_t done = 0;

    for (unsigned i = 0; i < n && done < len; i++) {
        size_t l;

        if (off >= iov[i].iov_len) {
            off -= iov[i].iov_len;
            continue;
        }
        l = MIN(iov[i].iov_len - off, len - done);
        if (to_iov) {
            memcpy((uint8_t *)iov[i].iov_base + off, (uint8_t *)buf + done, l);
        } else {
            memcpy((uint8_t *)buf + done, (uint8_t *)iov[i].iov_base + off, l);
        }
        done += l;
        off = 0;
    }
    return done;
}

size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t off,
                  void *buf, size_t len)
{
    return iov_copy(iov, n, off, buf, len, false);
}

size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t off,
                    const void *buf, size_t len)
{
    return iov_copy(iov, n, off, (void *)buf, len, true);
}

int iov_slice(struct iovec *dst, unsigned max, const struct iovec *src,
              unsigned sn, size_t off, size_t len)
{
    unsigned n = 0;

    for (unsigned i = 0; i < sn && len; i++) {
        size_t l = src[i].iov_len;

        if (off >= l) {
            off -= l;
            continue;
        }
        if (n == max) {
            return -1;
        }
        l = MIN(l - off, len);
        dst[n].iov_base = (uint8_t *)src[i].iov_base + off;
        dst[n].iov_len = l;
        n++;
        len -= l;
        off = 0;
    }
    return n;
}
