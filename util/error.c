#include "util/error.h"

G_DEFINE_QUARK(iovd-error-quark, iovd_error)

void error_setg_errno(GError **errp, int errnum, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    if (!errp) {
        return;
    }
    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(errp, IOVD_ERROR, IOVD_ERROR_GENERIC, "%s: %s", msg,
                g_strerror(errnum));
}

void error_prepend(GError **errp, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *prefix = NULL;
    char *msg;

    if (!errp || !*errp) {
        return;
    }
    va_start(ap, fmt);
    prefix = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    msg = g_strdup_printf("%s%s", prefix, (*errp)->message);
    g_free((*errp)->message);
    (*errp)->message = msg;
}

void error_report(const char *fmt, ...)
{
    va_list ap;

    fputs("iovd: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void error_report_err(GError *err)
{
    error_report("%s", err->message);
    g_error_free(err);
}
