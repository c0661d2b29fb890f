/*
 * Live upgrade: a new iovd process takes over a running one, the VMs
 * notice nothing.
 *
 * The new process is started as "iovd -incoming unix:PATH" and listens
 * there.  The running one is told (QMP "upgrade") and:
 *
 *   1. stops every device (hw/core device_stop: nothing in flight, the
 *      backends flushed) and stops reading its vfio-user clients;
 *   2. connects to PATH and sends one state stream (util/savestate.h):
 *      its configuration as it is now (the options that make its objects
 *      and devices, monitor commands' included, then -qmp ...), every
 *      listening socket, every
 *      device's transport state (the connected client, its DMA maps and
 *      interrupt eventfds, what it sent that is not handled yet) and
 *      device state; the file descriptors go with it (SCM_RIGHTS);
 *   3. waits for the new process's answer: "ok" once it runs every
 *      device, or why not.
 *
 * On "ok" the old process exits 0 without touching anything it handed
 * over (no reset, no socket path removed).  On any failure before that
 * it starts its devices again, reads its clients again, and reports why.
 */
#ifndef HW_CORE_UPGRADE_H
#define HW_CORE_UPGRADE_H

#include "util/osdep.h"

/* The running process: how the upgrade ended (NULL: the new one runs). */
typedef void UpgradeDone(GError *err, void *opaque);

/*
 * Start handing over to the process listening at @uri ("unix:PATH").
 * False with @errp when it cannot start (nothing changed); otherwise
 * @done runs later on the main loop: with NULL just before this process
 * exits 0, or with the reason after it resumed.
 */
bool upgrade_start(const char *uri, UpgradeDone *done, void *opaque,
                   GError **errp);
bool upgrade_in_progress(void);

/*
 * The new process ("-incoming unix:PATH"): listen at @uri (then call
 * @ready), take the state, build everything, start the devices and
 * answer "ok".  Called from main() before the main loop runs; blocks
 * until it is done or failed (then the running process resumes, and
 * this one must exit at once, touching nothing: false with @errp).
 */
bool upgrade_incoming(const char *uri, void (*ready)(void), GError **errp);
/* This process handed everything over: it leaves without touching it. */
bool upgrade_handed_over(void);
/* The new process: the pid of the one it took over from (0: unknown). */
pid_t upgrade_from_pid(void);
/*
 * The new process: how long the devices did not run, from the moment the
 * old process began to stop them until this one started them.
 */
int64_t upgrade_downtime_ns(void);

/*
 * The options that made this process's configuration, recorded as they
 * are applied (name without '-', argument), so that a new process can
 * apply the same ones.  Not those that make an object: the objects
 * announce themselves (iovd_config_created, util/cmdline.h), and a new
 * process makes them first, in the order they were made.
 */
void upgrade_record_option(const char *name, const char *arg);
/*
 * A configuration change at runtime that neither the recorded options nor
 * the objects (iovd_config_created, util/cmdline.h) hold.
 */
void upgrade_config_changed(const char *what);

#endif
