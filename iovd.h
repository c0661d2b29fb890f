/*
 * Daemon-wide hooks: option tables of the subsystems, shutdown.
 */
#ifndef IOVD_H
#define IOVD_H

#include "util/osdep.h"
#include "util/cmdline.h"

void iovd_modules_init(void);
void iovd_modules_cleanup(void);


void iovd_print_device_types(FILE *out);
bool iovd_print_device_help(const char *driver, FILE *out, GError **errp);

#endif
