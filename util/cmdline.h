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

/*
 * -object types beyond iothread and main-loop (util/iothread.c), which
 * subsystems above util/ register: -object and object-add with
 * qom-type=@name call @add; object-del calls @del for the type whose
 * @exists knows the id.
 */
struct Keyval;
typedef struct IovdObjectType {
    const char *name;
    bool (*add)(struct Keyval *kv, GError **errp);
    bool (*exists)(const char *id);
    bool (*del)(const char *id, GError **errp);
    const char *help;           /* -help lines */
} IovdObjectType;
void iovd_register_object_type(const IovdObjectType *t);
const IovdObjectType *iovd_find_object_type(const char *name);
/* The type that has an object named @id, or NULL. */
const IovdObjectType *iovd_object_type_of(const char *id);
/* ", a, b": the registered types' names (error messages; caller frees). */
char *iovd_object_type_names(void);
/* Their -help lines. */
void iovd_print_object_types(FILE *out);

/*
 * The objects of the configuration as it is now.  Each that an option or
 * a monitor command makes (-object / object-add, -blockdev / blockdev-add,
 * -netdev / netdev_add, -device / device_add) is announced with the
 * option that makes it again (@arg: its keyval text, then ours), and
 * forgotten when it goes; @key identifies it (the object's address, or
 * iovd_config_key() for one known by its id).  A live upgrade's new
 * process makes them again, in the order they were made.  Any thread.
 */
void iovd_config_created(const void *key, const char *option, char *arg);
void iovd_config_deleted(const void *key);
/*
 * A setting of @key's object changed at run time: @edit changes its
 * option's keyval to match, so that a new process makes it as it is.
 */
struct Keyval;
void iovd_config_update(const void *key,
                        void (*edit)(struct Keyval *kv, void *opaque),
                        void *opaque);
const void *iovd_config_key(const char *option, const char *id);
void iovd_config_foreach(void (*fn)(const char *option, const char *arg,
                                    void *opaque), void *opaque);

/* Ask the main loop to stop; hooks run first (the monitor's SHUTDOWN). */
void iovd_request_shutdown(const char *reason);
void iovd_add_shutdown_hook(void (*fn)(const char *reason));

/*
 * Live upgrade (hw/core/upgrade.h) of what is not a device: a subsystem
 * (net/: its backends' connections) registers how its part moves.
 */
struct StateWriter;
struct StateReader;
typedef struct UpgradeParticipant {
    const char *name;
    /* Before anything stops: false with why when it cannot move now. */
    bool (*check)(GError **errp);
    /*
     * The old process, devices stopped: stop (true) or go on (false,
     * after a failed upgrade) reading from outside, so that nothing read
     * is left behind.  The new process: go on (false) once its devices
     * run, after the old process committed.
     */
    void (*pause)(bool pause);
    /*
     * The old process: write its sections, the fds appended to @fds (an
     * array of int); false with why to refuse the upgrade.
     */
    bool (*save)(struct StateWriter *w, GArray *fds, GError **errp);
    /*
     * The new process, before the options are applied: take what the
     * objects the options make must reuse (@fds[i] = -1 for each taken).
     */
    bool (*prepare)(struct StateReader *r, int *fds, unsigned nfds,
                    GError **errp);
} UpgradeParticipant;
void iovd_register_upgrade_participant(const UpgradeParticipant *p);
/* Call @fn for each participant, in registration order. */
void iovd_foreach_upgrade_participant(
    bool (*fn)(const UpgradeParticipant *p, void *opaque), void *opaque);

#endif
