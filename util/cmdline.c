#include "util/cmdline.h"
#include "util/error.h"
#include "util/keyval.h"
#include "util/loop.h"

static GSList *option_tables;   /* of const IovdOption * arrays */
static GSList *shutdown_hooks;

void iovd_register_options(const IovdOption *table)
{
    option_tables = g_slist_append(option_tables, (gpointer)table);
}

const IovdOption *iovd_find_option(const char *name)
{
    for (GSList *l = option_tables; l; l = l->next) {
        for (const IovdOption *o = l->data; o->name; o++) {
            if (strcmp(o->name, name) == 0) {
                return o;
            }
        }
    }
    return NULL;
}

void iovd_print_options(FILE *out)
{
    for (GSList *l = option_tables; l; l = l->next) {
        for (const IovdOption *o = l->data; o->name; o++) {
            fprintf(out, "  %s\n", o->help);
        }
    }
}

int iovd_option_help(const IovdOption *o, const char *arg)
{
    GError *err = NULL;

    if (!arg || !keyval_wants_help(arg)) {
        return -1;
    }
    if (!o->show_help) {
        printf("  %s\n", o->help);
        return 0;
    }
    if (!o->show_help(arg, stdout, &err)) {
        error_report("-%s %s: %s", o->name, arg, err->message);
        g_error_free(err);
        return 1;
    }
    return 0;
}

void iovd_add_shutdown_hook(void (*fn)(const char *reason))
{
    shutdown_hooks = g_slist_append(shutdown_hooks, fn);
}

void iovd_request_shutdown(const char *reason)
{
    for (GSList *l = shutdown_hooks; l; l = l->next) {
        ((void (*)(const char *))l->data)(reason);
    }
    loop_quit(loop_main());
}

static GSList *upgrade_participants;

void iovd_register_upgrade_participant(const UpgradeParticipant *p)
{
    upgrade_participants = g_slist_append(upgrade_participants, (void *)p);
}

void iovd_foreach_upgrade_participant(
    bool (*fn)(const UpgradeParticipant *p, void *opaque), void *opaque)
{
    for (GSList *l = upgrade_participants; l; l = l->next) {
        if (!fn(l->data, opaque)) {
            return;
        }
    }
}
