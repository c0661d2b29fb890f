/*
 * Confinement once start-up is done: -run-with user=U gives up root after
 * the command line's sockets are bound and its files opened; -sandbox on
 * (the default) then installs a seccomp allow-list on every thread.
 */
#ifndef UTIL_SANDBOX_H
#define UTIL_SANDBOX_H

#include "util/osdep.h"

/* -run-with user=NAME|UID:GID: resolved now, applied by sandbox_confine. */
bool sandbox_set_run_as(const char *user, GError **errp);

typedef enum SandboxMode {
    SANDBOX_OFF,
    SANDBOX_ON,
    SANDBOX_LOG,        /* what the filter would forbid goes to the audit log */
} SandboxMode;

/* -sandbox on|off|log. */
void sandbox_set_mode(SandboxMode mode);

/*
 * Drop to the -run-with user (when given), then install the seccomp
 * filter (unless -sandbox off).  Call once, after start-up, before the
 * main loop runs; threads created later inherit the filter.
 */
bool sandbox_confine(GError **errp);

#endif
