/*
 * Typed property tables: parse, range-check, store, print.
 */
#include "hw/core/props.h"
#include "util/error.h"

static void *prop_field(const PropDef *def, void *state)
{
    return (char *)state + def->offset;
}

/* Largest value a PROP_UINT field of @size bytes holds; 0 if @size is bad. */
static uint64_t prop_uint_type_max(size_t size)
{
    switch (size) {
    case 1:
        return UINT8_MAX;
    case 2:
        return UINT16_MAX;
    case 4:
        return UINT32_MAX;
    case 8:
        return UINT64_MAX;
    default:
        return 0;
    }
}

static uint64_t prop_max(const PropDef *def)
{
    uint64_t type_max = def->type == PROP_UINT ?
        prop_uint_type_max(def->size) : UINT64_MAX;

    if (def->max == 0 || def->max > type_max) {
        return type_max;
    }
    return def->max;
}

static void prop_store_uint(const PropDef *def, void *state, uint64_t val)
{
    void *field = prop_field(def, state);

    switch (def->size) {
    case 1: {
        uint8_t v = val;
        memcpy(field, &v, sizeof(v));
        break;
    }
    case 2: {
        uint16_t v = val;
        memcpy(field, &v, sizeof(v));
        break;
    }
    case 4: {
        uint32_t v = val;
        memcpy(field, &v, sizeof(v));
        break;
    }
    default:
        memcpy(field, &val, sizeof(val));
        break;
    }
}

static uint64_t prop_load_uint(const PropDef *def, void *state)
{
    const void *field = prop_field(def, state);

    switch (def->size) {
    case 1: {
        uint8_t v;
        memcpy(&v, field, sizeof(v));
        return v;
    }
    case 2: {
        uint16_t v;
        memcpy(&v, field, sizeof(v));
        return v;
    }
    case 4: {
        uint32_t v;
        memcpy(&v, field, sizeof(v));
        return v;
    }
    default: {
        uint64_t v;
        memcpy(&v, field, sizeof(v));
        return v;
    }
    }
}

static int prop_enum_lookup(const PropDef *def, const char *value)
{
    for (int i = 0; def->enum_names && def->enum_names[i]; i++) {
        if (strcmp(def->enum_names[i], value) == 0) {
            return i;
        }
    }
    return -1;
}

static int prop_enum_count(const PropDef *def)
{
    int n = 0;

    while (def->enum_names && def->enum_names[n]) {
        n++;
    }
    return n;
}

/* The enum's names joined by @sep: "native, io_uring". */
static char *prop_enum_list(const PropDef *def, const char *sep)
{
    GString *list = g_string_new(NULL);

    for (int i = 0; i < prop_enum_count(def); i++) {
        if (i) {
            g_string_append(list, sep);
        }
        g_string_append(list, def->enum_names[i]);
    }
    return g_string_free(list, FALSE);
}

const PropDef *props_find(const PropDef *defs, const char *name)
{
    for (const PropDef *def = defs; def->name; def++) {
        if (strcmp(def->name, name) == 0) {
            return def;
        }
    }
    return NULL;
}

/* Set @def to its zero value: NULL, false, 0 or the first enum value. */
static void prop_set_zero(const PropDef *def, void *state)
{
    void *field = prop_field(def, state);

    switch (def->type) {
    case PROP_STR:
        g_clear_pointer((char **)field, g_free);
        break;
    case PROP_BOOL:
        *(bool *)field = false;
        break;
    case PROP_UINT:
    case PROP_SIZE:
        prop_store_uint(def, state, 0);
        break;
    case PROP_ENUM:
        *(int *)field = 0;
        break;
    }
}

bool props_apply(const PropDef *defs, void *state, Keyval *kv, GError **errp)
{
    for (const PropDef *def = defs; def->name; def++) {
        const char *value = kv ? keyval_get(kv, def->name) : NULL;

        if (value) {
            if (!prop_set_str(def, state, value, errp)) {
                return false;
            }
        } else if (def->mandatory) {
            error_setg(errp, "property '%s': a value is required",
                       def->name);
            return false;
        } else if (def->defval) {
            if (!prop_set_str(def, state, def->defval, errp)) {
                error_prepend(errp, "default value: ");
                return false;
            }
        } else {
            prop_set_zero(def, state);
        }
    }
    return true;
}

static bool prop_check_range(const PropDef *def, uint64_t val, GError **errp)
{
    uint64_t max = prop_max(def);

    if (val < def->min || val > max) {
        error_setg(errp, "property '%s': value %" G_GUINT64_FORMAT
                   " out of range [%" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT
                   "]", def->name, (guint64)val, (guint64)def->min,
                   (guint64)max);
        return false;
    }
    return true;
}

bool prop_set_str(const PropDef *def, void *state, const char *value,
                  GError **errp)
{
    void *field = prop_field(def, state);
    GError *local_err = NULL;

    g_return_val_if_fail(value != NULL, false);

    switch (def->type) {
    case PROP_STR:
        g_free(*(char **)field);
        *(char **)field = g_strdup(value);
        return true;

    case PROP_BOOL: {
        bool b;

        if (!parse_bool(value, &b, &local_err)) {
            break;
        }
        *(bool *)field = b;
        return true;
    }

    case PROP_UINT:
    case PROP_SIZE: {
        uint64_t v;
        bool ok;

        if (def->type == PROP_UINT && !prop_uint_type_max(def->size)) {
            error_setg(errp, "property '%s': unsupported field size %zu",
                       def->name, def->size);
            return false;
        }
        if (def->type == PROP_UINT) {
            ok = parse_uint(value, &v, &local_err);
        } else {
            ok = parse_size(value, &v, &local_err);
        }
        if (!ok) {
            break;
        }
        if (!prop_check_range(def, v, errp)) {
            return false;
        }
        prop_store_uint(def, state, v);
        return true;
    }

    case PROP_ENUM: {
        int i = prop_enum_lookup(def, value);

        if (i < 0) {
            g_autofree char *list = prop_enum_list(def, ", ");

            error_setg(errp, "property '%s': '%s' is not one of %s",
                       def->name, value, list);
            return false;
        }
        *(int *)field = i;
        return true;
    }

    default:
        error_setg(errp, "property '%s': unknown property type %d",
                   def->name, (int)def->type);
        return false;
    }

    error_prepend(&local_err, "property '%s': ", def->name);
    g_propagate_error(errp, local_err);
    return false;
}

char *prop_get_str(const PropDef *def, void *state)
{
    void *field = prop_field(def, state);

    switch (def->type) {
    case PROP_STR: {
        const char *s = *(char **)field;

        return g_strdup(s ? s : "");
    }
    case PROP_BOOL:
        return g_strdup(*(bool *)field ? "on" : "off");
    case PROP_UINT:
    case PROP_SIZE:
        return g_strdup_printf("%" G_GUINT64_FORMAT,
                               (guint64)prop_load_uint(def, state));
    case PROP_ENUM: {
        int i = *(int *)field;

        if (i >= 0 && i < prop_enum_count(def)) {
            return g_strdup(def->enum_names[i]);
        }
        return g_strdup_printf("%d", i);
    }
    }
    return g_strdup("");
}

const char *prop_type_name(const PropDef *def)
{
    switch (def->type) {
    case PROP_STR:
        return "str";
    case PROP_BOOL:
        return "bool";
    case PROP_UINT:
        switch (def->size) {
        case 1:
            return "uint8";
        case 2:
            return "uint16";
        case 4:
            return "uint32";
        default:
            return "uint64";
        }
    case PROP_SIZE:
        return "size";
    case PROP_ENUM:
        return "enum";
    }
    return "unknown";
}

void props_free(const PropDef *defs, void *state)
{
    for (const PropDef *def = defs; def->name; def++) {
        if (def->type == PROP_STR) {
            g_clear_pointer((char **)prop_field(def, state), g_free);
        }
    }
}

void props_print_help(const PropDef *defs, FILE *out)
{
    int width = 0;

    for (const PropDef *def = defs; def->name; def++) {
        int w = strlen(def->name) + strlen(prop_type_name(def)) + 3;

        width = MAX(width, w);
    }

    for (const PropDef *def = defs; def->name; def++) {
        g_autofree char *head = g_strdup_printf("%s=<%s>", def->name,
                                                prop_type_name(def));
        GString *line = g_string_new(NULL);

        g_string_append_printf(line, "  %-*s", width, head);
        if (def->desc) {
            g_string_append_printf(line, "  %s", def->desc);
        }
        if (def->type == PROP_ENUM) {
            g_autofree char *list = prop_enum_list(def, ", ");

            g_string_append_printf(line, " (one of: %s)", list);
        }
        if (def->mandatory) {
            g_string_append(line, " (mandatory)");
        } else if (def->defval) {
            g_string_append_printf(line, " (default: %s)", def->defval);
        }
        /* Drop the padding when there is nothing after the name. */
        while (line->len && line->str[line->len - 1] == ' ') {
            g_string_truncate(line, line->len - 1);
        }
        fprintf(out, "%s\n", line->str);
        g_string_free(line, TRUE);
    }
}
