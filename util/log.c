#include "util/log.h"

static void log_v(const char *level, const char *fmt, va_list ap)
{
    fprintf(stderr, "iovd: %s", level);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void iovd_log(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_v("", fmt, ap);
    va_end(ap);
}

void iovd_warn(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_v("warning: ", fmt, ap);
    va_end(ap);
}
