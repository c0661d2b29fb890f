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
 * Stop (true) or resume (false) accepting clients; the connected ones are
 * still served.  A live upgrade pauses: a client connecting meanwhile
 * waits in the listening socket's backlog for whichever process runs once
 * it ended (the socket moves to the new process).
 */
void monitor_pause_accept(bool pause);

/*
 * Flush what clients have not read yet (for a bounded time), close every
 * client and listener and remove UNIX socket paths.  Idempotent; it also
 * runs at exit.
 */
void monitor_cleanup(void);

#endif
