/*
 * Command-line option registry and daemon-wide shutdown.  Subsystems
 * (block, net, monitor) register their options here, so the library never
 * depends on iovd.c.
 */
#ifndef UTIL_CMDLINE_H
#define UTIL_CMDLINE_H

#include "util/osdep.h"

/* Start-up phases: each option is applied in its phase, in order given. */
enum { PHASE_OBJECT, PHASE_BACKEND, PHASE_DEVICE, PHASE_MONITOR,
       PHASE_COUNT };

typedef struct IovdOption {
    const char *name;           /* without the leading '-' */
    bool has_arg;
    int phase;                  /* -1: applied while parsing */
    bool (*apply)(const char *arg, GError **errp);
    const char *help;
    /*
     * Optional: print what "-NAME help" / "-NAME X,help" asks (@arg as
     * given) to @out.  Without it, help prints the line above.
     */
    bool (*show_help)(const char *arg, FILE *out, GError **errp);
} IovdOption;

/* Add a NULL-terminated table. */
void iovd_register_options(const IovdOption *table);
const IovdOption *iovd_find_option(const char *name);
void iovd_print_options(FILE *out);
/*
 * When @arg asks for help (keyval_wants_help), print it for @o and return
 * the exit status (0, or 1 after an error); else -1.
 */
int iovd_option_help(const IovdOption *o, const char *arg);

/* Ask the main loop to stop; hooks run first (the monitor's SHUTDOWN). */
void iovd_request_shutdown(const char *reason);
void iovd_add_shutdown_hook(void (*fn)(const char *reason));

#endif
