#include "util/cmdline.h"
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
