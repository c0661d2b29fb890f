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

static GSList *object_types;    /* of const IovdObjectType * */

void iovd_print_object_types(FILE *out)
{
    for (GSList *l = object_types; l; l = l->next) {
        fprintf(out, "  %s\n", ((const IovdObjectType *)l->data)->help);
    }
}

void iovd_print_options(FILE *out)
{
    for (GSList *l = option_tables; l; l = l->next) {
        for (const IovdOption *o = l->data; o->name; o++) {
            fprintf(out, "  %s\n", o->help);
        }
    }
    iovd_print_object_types(out);
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

void iovd_register_object_type(const IovdObjectType *t)
{
    object_types = g_slist_append(object_types, (gpointer)t);
}

const IovdObjectType *iovd_find_object_type(const char *name)
{
    for (GSList *l = object_types; l; l = l->next) {
        const IovdObjectType *t = l->data;

        if (strcmp(t->name, name) == 0) {
            return t;
        }
    }
    return NULL;
}

const IovdObjectType *iovd_object_type_of(const char *id)
{
    for (GSList *l = object_types; l; l = l->next) {
        const IovdObjectType *t = l->data;

        if (t->exists(id)) {
            return t;
        }
    }
    return NULL;
}

char *iovd_object_type_names(void)
{
    GString *s = g_string_new(NULL);

    for (GSList *l = object_types; l; l = l->next) {
        g_string_append_printf(s, ", %s",
                               ((const IovdObjectType *)l->data)->name);
    }
    return g_string_free(s, false);
}

/* ---- the configuration as it is now ---- */

typedef struct ConfigObj {
    const void *key;
    char *option, *arg;
} ConfigObj;

static GMutex config_lock;
static GArray *config_objs;     /* of ConfigObj, in the order made */

void iovd_config_created(const void *key, const char *option, char *arg)
{
    ConfigObj c = { key, g_strdup(option), arg };

    g_mutex_lock(&config_lock);
    if (!config_objs) {
        config_objs = g_array_new(false, false, sizeof(ConfigObj));
    }
    g_array_append_val(config_objs, c);
    g_mutex_unlock(&config_lock);
}

void iovd_config_deleted(const void *key)
{
    g_mutex_lock(&config_lock);
    for (guint i = 0; config_objs && i < config_objs->len; i++) {
        ConfigObj *c = &g_array_index(config_objs, ConfigObj, i);

        if (c->key == key) {
            g_free(c->option);
            g_free(c->arg);
            g_array_remove_index(config_objs, i);
            break;
        }
    }
    g_mutex_unlock(&config_lock);
}

void iovd_config_update(const void *key,
                        void (*edit)(Keyval *kv, void *opaque),
                        void *opaque)
{
    g_mutex_lock(&config_lock);
    for (guint i = 0; config_objs && i < config_objs->len; i++) {
        ConfigObj *c = &g_array_index(config_objs, ConfigObj, i);
        g_autoptr(Keyval) kv = NULL;

        if (c->key != key) {
            continue;
        }
        /* keyval_to_str wrote it: every pair has its key. */
        kv = keyval_parse(c->arg, NULL, NULL);
        if (kv) {
            edit(kv, opaque);
            g_free(c->arg);
            c->arg = keyval_to_str(kv);
        }
        break;
    }
    g_mutex_unlock(&config_lock);
}

const void *iovd_config_key(const char *option, const char *id)
{
    g_autofree char *s = g_strdup_printf("%s/%s", option, id ? id : "");

    return g_intern_string(s);
}

void iovd_config_foreach(void (*fn)(const char *option, const char *arg,
                                    void *opaque), void *opaque)
{
    g_mutex_lock(&config_lock);
    for (guint i = 0; config_objs && i < config_objs->len; i++) {
        ConfigObj *c = &g_array_index(config_objs, ConfigObj, i);

        fn(c->option, c->arg, opaque);
    }
    g_mutex_unlock(&config_lock);
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
