/*
 * Daemon-wide hooks: option tables of the subsystems, shutdown.
 */
#ifndef IOVD_H
#define IOVD_H

#include "util/osdep.h"

/* Start-up phases: each option is applied in its phase, in order given. */
enum { PHASE_OBJECT, PHASE_BACKEND, PHASE_DEVICE, PHASE_MONITOR,
       PHASE_COUNT };

typedef struct IovdOption {
    const char *name;           /* without the leading '-' */
    bool has_arg;
    int phase;                  /* -1: handled while parsing */
    bool (*apply)(const char *arg, GError **errp);
    const char *help;
} IovdOption;


/* Subsystems (block, net, monitor) add their command-line options here. */
void iovd_register_options(const IovdOption *table);
void iovd_modules_init(void);
void iovd_modules_cleanup(void);

/* Ask the main loop to stop; hooks run first (the monitor's SHUTDOWN). */
void iovd_request_shutdown(const char *reason);
void iovd_add_shutdown_hook(void (*fn)(const char *reason));

void iovd_print_device_types(FILE *out);
bool iovd_print_device_help(const char *driver, FILE *out, GError **errp);

#endif
