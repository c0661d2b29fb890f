/*
 * The QMP monitor: -qmp unix:PATH / tcp:HOST:PORT / stdio.
 */
#ifndef QAPI_MONITOR_H
#define QAPI_MONITOR_H

#include "util/osdep.h"

/*
 * Register the -qmp option (applied in PHASE_MONITOR, after devices) and a
 * shutdown hook that emits SHUTDOWN.  Call once from iovd_modules_init().
 */
void monitor_init(void);

/*
 * Flush what clients have not read yet (for a bounded time), close every
 * client and listener and remove UNIX socket paths.  Idempotent; it also
 * runs at exit.
 */
void monitor_cleanup(void);

#endif
