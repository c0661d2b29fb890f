/*
 * iovec helpers shared by the block layer, the network layer and devices.
 */
#ifndef UTIL_IOV_H
#define UTIL_IOV_H

#include "util/osdep.h"

/* Total length of @n iovecs. */
size_t iov_size(const struct iovec *iov, unsigned n);
/* Copy up to @len bytes starting @off bytes into the iovecs to @buf. */
size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t off,
                  void *buf, size_t len);
/* Copy up to @len bytes of @buf into the iovecs from @off on. */
size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t off,
                    const void *buf, size_t len);

/*
 * Describe bytes [off, off + len) of @src (@sn entries; @len SIZE_MAX: to
 * the end) in @dst, which has room for @max entries: no copy.  Returns the
 * entries used, or -1 when more than @max would be needed.
 */
int iov_slice(struct iovec *dst, unsigned max, const struct iovec *src,
              unsigned sn, size_t off, size_t len);

#endif
