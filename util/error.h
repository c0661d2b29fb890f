/*
 * Control-path errors: functions return bool and fill a GError ** that is
 * always the last argument (QEMU's rule, with GLib's GError).
 */
#ifndef UTIL_ERROR_H
#define UTIL_ERROR_H

#include "util/osdep.h"

#define IOVD_ERROR iovd_error_quark()
GQuark iovd_error_quark(void);

/* Error classes, named as QMP reports them. */
typedef enum {
    IOVD_ERROR_GENERIC = 0,
    IOVD_ERROR_COMMAND_NOT_FOUND,
    IOVD_ERROR_DEVICE_NOT_FOUND,
} IovdErrorClass;

#define error_setg(errp, ...) \
    g_set_error((errp), IOVD_ERROR, IOVD_ERROR_GENERIC, __VA_ARGS__)
#define error_setg_class(errp, cls, ...) \
    g_set_error((errp), IOVD_ERROR, (cls), __VA_ARGS__)

/* Like error_setg, appending ": strerror(errnum)". */
void error_setg_errno(GError **errp, int errnum, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

/* Prefix an existing error's message: "prefix: old message". */
void error_prepend(GError **errp, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* Print "iovd: message" on stderr. */
void error_report(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void error_report_err(GError *err);

#endif
