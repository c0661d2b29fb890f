/*
 * Spawn and stop an iovd daemon for one test.
 *
 *     IovdProc *p = iovd_proc_new();
 *     g_autofree char *sock = iovd_proc_path(p, "t0.sock");
 *     iovd_proc_add_argf(p, "-device");
 *     iovd_proc_add_argf(p, "pci-testdev,id=t0,socket=%s", sock);
 *     iovd_proc_start(p);           // returns once every socket listens
 *     ...
 *     iovd_proc_stop(p);            // SIGTERM; fails unless it exits 0
 *     iovd_proc_free(p);            // removes the temporary directory
 *
 * Each IovdProc owns a fresh temporary directory for its sockets.  The
 * daemon learns readiness through "-ready-fd N" (a pipe), so no polling is
 * needed.  The daemon gets SIGKILL when the test process dies (it is
 * started with PR_SET_PDEATHSIG), and any daemon still running when the
 * test process exits (a failed test) is killed and its directory removed.
 *
 * The binary is $IOVD_BIN, or build/iovd relative to the current directory.
 */
#ifndef LIBQOS_IOVD_PROC_H
#define LIBQOS_IOVD_PROC_H

#include "util/osdep.h"

typedef struct IovdProc IovdProc;

/* Time limits for start (until ready) and for exit after SIGTERM. */
#define IOVD_PROC_START_TIMEOUT_MS 10000
#define IOVD_PROC_STOP_TIMEOUT_MS  10000

/* Path of the daemon binary ($IOVD_BIN or build/iovd). */
const char *iovd_binary(void);
/*
 * Run the daemon with the arguments (NULL-terminated) to its end: its
 * exit status (-1 when a signal ended it), its stderr into *@err.
 */
int iovd_run(char **err, const char *first, ...);

/*
 * Optional, once in main() before the tests run: put every test's
 * temporary directory below one directory that is removed when this
 * process exits.  Check's forked test processes end with _exit() when a
 * test fails, so without this a failed test leaves its directory behind
 * (its daemon still dies: PR_SET_PDEATHSIG).
 */
void iovd_proc_init_tmpdir(void);

/* A daemon description with its own temporary directory; not started. */
IovdProc *iovd_proc_new(void);

/* The temporary directory, and a path inside it (g_free the latter). */
const char *iovd_proc_tmpdir(IovdProc *p);
char *iovd_proc_path(IovdProc *p, const char *name);
/* A sparse image file of @size bytes there (emptied if it existed). */
char *iovd_proc_image(IovdProc *p, const char *name, uint64_t size);

/* Append one argument (printf-style) to the daemon's command line. */
void iovd_proc_add_argf(IovdProc *p, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* Append several literal arguments, NULL-terminated. */
void iovd_proc_add_args(IovdProc *p, const char *first, ...)
    G_GNUC_NULL_TERMINATED;

/*
 * Start @p with exactly the arguments given: no iothreads or iothread=
 * added for IOVD_TEST_IOTHREAD (a live upgrade's new process, which
 * takes its whole configuration from the running one).
 */
void iovd_proc_set_plain(IovdProc *p);

/*
 * Start the daemon (with "-ready-fd N" appended) and wait until it reports
 * readiness.  Fails the test when it exits or does not become ready within
 * IOVD_PROC_START_TIMEOUT_MS.
 */
void iovd_proc_start(IovdProc *p);

/*
 * Convenience: a started daemon with one pci-testdev "t0" whose socket is
 * <tmpdir>/t0.sock; @extra is appended to the -device option (",x=y"), or
 * NULL.
 */
IovdProc *iovd_proc_start_testdev(const char *extra);

pid_t iovd_proc_pid(IovdProc *p);
bool iovd_proc_running(IovdProc *p);

/*
 * Send SIGTERM and wait for the exit; returns the wait status (as from
 * waitpid).  Fails the test when the daemon does not exit within
 * IOVD_PROC_STOP_TIMEOUT_MS (it is then killed).
 */
int iovd_proc_terminate(IovdProc *p);
/* iovd_proc_terminate() and fail unless the daemon exited with status 0. */
void iovd_proc_stop(IovdProc *p);
/*
 * Wait up to @timeout_ms for the daemon to exit by itself; returns the
 * wait status.  Fails the test (the daemon is killed) on timeout.
 */
int iovd_proc_wait_exit(IovdProc *p, int timeout_ms);
/* "exited with status 0", "was killed by signal 9 (Killed)" ... */
char *iovd_proc_describe_status(int status);
/* SIGKILL and reap (no checks). */
void iovd_proc_kill(IovdProc *p);

/*
 * Check the daemon is still alive; fails the test (with its exit status)
 * when it is not.
 */
void iovd_proc_assert_alive(IovdProc *p);

/* Number of open file descriptors of the daemon (/proc/PID/fd). */
unsigned iovd_proc_count_fds(IovdProc *p);
/*
 * Wait up to @timeout_ms until the daemon has at most @max open fds (the
 * daemon releases a disconnected client asynchronously); returns the last
 * count seen.
 */
unsigned iovd_proc_wait_fds_at_most(IovdProc *p, unsigned max,
                                    int timeout_ms);

/* Kill the daemon if it still runs and remove the temporary directory. */
void iovd_proc_free(IovdProc *p);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(IovdProc, iovd_proc_free)

#endif
