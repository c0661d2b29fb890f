/*
 * Logging for the daemon (not for guest errors: those are trace events).
 */
#ifndef UTIL_LOG_H
#define UTIL_LOG_H

#include "util/osdep.h"

void iovd_log(const char *fmt, ...) G_GNUC_PRINTF(1, 2);   /* info */
void iovd_warn(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

#endif
