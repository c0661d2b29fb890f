/*
 * Lookups in the generated schema tables, checking JSON values against
 * them, and conversions between JSON arguments and key=value text.
 */
#include "qapi/schema.h"
#include "util/error.h"
#include "util/keyval.h"

#include <inttypes.h>

static int cmd_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const QapiCommandDef *)elem)->name);
}

static int event_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const QapiEventDef *)elem)->name);
}

const QapiCommandDef *qapi_command_find(const char *name)
{
    return bsearch(name, qapi_commands, qapi_n_commands,
                   sizeof(qapi_commands[0]), cmd_cmp);
}

const QapiEventDef *qapi_event_find(const char *name)
{
    return bsearch(name, qapi_events, qapi_n_events, sizeof(qapi_events[0]),
                   event_cmp);
}

const QapiType *qapi_type_find(const char *name)
{
    for (unsigned i = 0; i < qapi_n_types; i++) {
        if (strcmp(qapi_types[i].name, name) == 0) {
            return &qapi_types[i];
        }
    }
    return NULL;
}

const QapiMember *qapi_struct_member(const QapiType *t, const char *name)
{
    for (unsigned i = 0; i < t->n_members; i++) {
        if (strcmp(t->members[i].name, name) == 0) {
            return &t->members[i];
        }
    }
    return NULL;
}

const char *qapi_kind_desc(QapiKind kind)
{
    switch (kind) {
    case QAPI_KIND_STR:
        return "a string";
    case QAPI_KIND_INT:
        return "an integer";
    case QAPI_KIND_UINT64:
    case QAPI_KIND_SIZE:
        return "a non-negative integer";
    case QAPI_KIND_NUMBER:
        return "a number";
    case QAPI_KIND_BOOL:
        return "a boolean";
    case QAPI_KIND_NULL:
        return "null";
    case QAPI_KIND_ANY:
        return "a value";
    case QAPI_KIND_ENUM:
        return "an enumeration value";
    case QAPI_KIND_STRUCT:
        return "an object";
    case QAPI_KIND_ARRAY:
        return "an array";
    }
    return "?";
}

/* json-c keeps integers above INT64_MAX as uint64. */
static bool json_is_int64(json_object *v)
{
    return json_object_is_type(v, json_type_int) &&
           json_object_get_uint64(v) <= (uint64_t)INT64_MAX;
}

static bool json_is_uint64(json_object *v)
{
    return json_object_is_type(v, json_type_int) &&
           json_object_get_int64(v) >= 0;
}

/* The path of a member below @path, for messages. */
static char *sub_path(const char *path, const char *key)
{
    return *path ? g_strdup_printf("%s.%s", path, key) : g_strdup(key);
}

static void set_type_error(const QapiType *t, const char *what,
                           const char *path, GError **errp)
{
    g_autofree char *expect = NULL;

    if (t->kind == QAPI_KIND_ENUM) {
        g_autoptr(GString) s = g_string_new("one of: ");

        for (unsigned i = 0; i < t->n_values; i++) {
            g_string_append_printf(s, "%s'%s'", i ? ", " : "",
                                   t->values[i]);
        }
        expect = g_string_free(g_steal_pointer(&s), false);
    } else {
        expect = g_strdup(qapi_kind_desc(t->kind));
    }
    if (*path) {
        error_setg(errp, "%s '%s' expects %s", what, path, expect);
    } else {
        error_setg(errp, "%s expects %s", what, expect);
    }
}

static bool check_value(const QapiType *t, json_object *v, const char *what,
                        const char *path, GError **errp)
{
    bool ok = true;

    switch (t->kind) {
    case QAPI_KIND_STR:
        ok = json_object_is_type(v, json_type_string);
        break;
    case QAPI_KIND_INT:
        ok = json_is_int64(v);
        break;
    case QAPI_KIND_UINT64:
    case QAPI_KIND_SIZE:
        ok = json_is_uint64(v);
        break;
    case QAPI_KIND_NUMBER:
        ok = json_object_is_type(v, json_type_int) ||
             json_object_is_type(v, json_type_double);
        break;
    case QAPI_KIND_BOOL:
        ok = json_object_is_type(v, json_type_boolean);
        break;
    case QAPI_KIND_NULL:
        ok = v == NULL;
        break;
    case QAPI_KIND_ANY:
        break;
    case QAPI_KIND_ENUM:
        ok = false;
        if (json_object_is_type(v, json_type_string)) {
            const char *s = json_object_get_string(v);

            for (unsigned i = 0; i < t->n_values && !ok; i++) {
                ok = strcmp(s, t->values[i]) == 0;
            }
        }
        break;
    case QAPI_KIND_ARRAY:
        if (!json_object_is_type(v, json_type_array)) {
            ok = false;
            break;
        }
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            g_autofree char *sub = g_strdup_printf("%s[%zu]", path, i);

            if (!check_value(t->element, json_object_array_get_idx(v, i),
                             what, sub, errp)) {
                return false;
            }
        }
        break;
    case QAPI_KIND_STRUCT:
        if (!json_object_is_type(v, json_type_object)) {
            ok = false;
            break;
        }
        json_object_object_foreach(v, key, val) {
            const QapiMember *m = qapi_struct_member(t, key);
            g_autofree char *sub = sub_path(path, key);

            if (m) {
                if (!check_value(m->type, val, what, sub, errp)) {
                    return false;
                }
            } else if (!t->allow_extra) {
                error_setg(errp, "%s '%s' is unexpected", what, sub);
                return false;
            } else if (val == NULL) {
                error_setg(errp, "%s '%s' expects a string, number, "
                           "boolean or object, not null", what, sub);
                return false;
            }
        }
        for (unsigned i = 0; i < t->n_members; i++) {
            const QapiMember *m = &t->members[i];

            if (!m->optional && !json_object_object_get_ex(v, m->name,
                                                           NULL)) {
                g_autofree char *sub = sub_path(path, m->name);

                error_setg(errp, "%s '%s' is missing", what, sub);
                return false;
            }
        }
        break;
    }
    if (!ok) {
        set_type_error(t, what, path, errp);
    }
    return ok;
}

bool qapi_check(const QapiType *type, json_object *value, const char *what,
                GError **errp)
{
    return check_value(type, value, what, "", errp);
}

/* ---- JSON -> text ---- */

char *qapi_scalar_to_str(json_object *v, const char *key, GError **errp)
{
    switch (json_object_get_type(v)) {
    case json_type_string:
        return g_strdup(json_object_get_string(v));
    case json_type_boolean:
        return g_strdup(json_object_get_boolean(v) ? "on" : "off");
    case json_type_int:
        if (json_is_int64(v)) {
            return g_strdup_printf("%" PRId64, json_object_get_int64(v));
        }
        return g_strdup_printf("%" PRIu64, json_object_get_uint64(v));
    case json_type_double:
        return g_strdup_printf("%.17g", json_object_get_double(v));
    default:
        error_setg(errp, "Parameter '%s' expects a string, number or "
                   "boolean", key);
        return NULL;
    }
}

bool qapi_json_to_keyval(json_object *obj, Keyval *kv, const char *prefix,
                         GError **errp)
{
    json_object_object_foreach(obj, key, val) {
        g_autofree char *name = prefix ? g_strdup_printf("%s.%s", prefix, key)
                                       : g_strdup(key);

        if (json_object_is_type(val, json_type_object)) {
            if (!qapi_json_to_keyval(val, kv, name, errp)) {
                return false;
            }
        } else if (json_object_is_type(val, json_type_array)) {
            for (size_t i = 0; i < json_object_array_length(val); i++) {
                g_autofree char *el = g_strdup_printf("%s.%zu", name, i);
                json_object *item = json_object_array_get_idx(val, i);
                g_autofree char *text = NULL;

                if (json_object_is_type(item, json_type_object)) {
                    if (!qapi_json_to_keyval(item, kv, el, errp)) {
                        return false;
                    }
                    continue;
                }
                text = qapi_scalar_to_str(item, el, errp);
                if (!text) {
                    return false;
                }
                keyval_set(kv, el, text);
            }
        } else {
            g_autofree char *text = qapi_scalar_to_str(val, name, errp);

            if (!text) {
                return false;
            }
            keyval_set(kv, name, text);
        }
    }
    return true;
}

/* ---- text -> JSON ---- */

static json_object *text_to_scalar(const QapiType *t, const char *key,
                                   const char *text, GError **errp)
{
    switch (t->kind) {
    case QAPI_KIND_BOOL: {
        bool b;

        if (!parse_bool(text, &b, errp)) {
            error_prepend(errp, "'%s': ", key);
            return NULL;
        }
        return json_object_new_boolean(b);
    }
    case QAPI_KIND_INT: {
        char *end;
        int64_t v;

        if (text[0] != '-') {
            uint64_t u;

            if (!parse_size(text, &u, errp)) {
                error_prepend(errp, "'%s': ", key);
                return NULL;
            }
            if (u > INT64_MAX) {
                error_setg(errp, "'%s': %s is out of range", key, text);
                return NULL;
            }
            return json_object_new_int64(u);
        }
        errno = 0;
        v = g_ascii_strtoll(text, &end, 0);
        if (errno || end == text || *end) {
            error_setg(errp, "'%s': '%s' is not an integer", key, text);
            return NULL;
        }
        return json_object_new_int64(v);
    }
    case QAPI_KIND_UINT64:
    case QAPI_KIND_SIZE: {
        uint64_t u;

        if (!parse_size(text, &u, errp)) {
            error_prepend(errp, "'%s': ", key);
            return NULL;
        }
        return json_object_new_uint64(u);
    }
    case QAPI_KIND_NUMBER: {
        char *end;
        double d = g_ascii_strtod(text, &end);

        if (end == text || *end) {
            error_setg(errp, "'%s': '%s' is not a number", key, text);
            return NULL;
        }
        return json_object_new_double(d);
    }
    case QAPI_KIND_NULL:
        return NULL;
    default:
        return json_object_new_string(text);
    }
}

/* An array index of key=value syntax (KEY.0, KEY.1 ...), bounded. */
static bool is_index(const char *s)
{
    if (!*s || strlen(s) > 4) {
        return false;
    }
    for (; *s; s++) {
        if (!g_ascii_isdigit(*s)) {
            return false;
        }
    }
    return true;
}

static char *member_list(const QapiType *t)
{
    g_autoptr(GString) s = g_string_new(NULL);

    for (unsigned i = 0; i < t->n_members; i++) {
        g_string_append_printf(s, "%s%s", i ? ", " : "",
                               t->members[i].name);
    }
    return g_string_free(g_steal_pointer(&s), false);
}

/* "a=1,a.b=2": a key is both a value and the parent of another. */
static bool path_conflict(const char *key, GError **errp)
{
    error_setg(errp, "'%s' conflicts with an earlier key: one key cannot "
               "be both a value and the parent of other keys", key);
    return false;
}

/* Store @text at the dotted @key below struct @obj of type @t. */
static bool set_path(const QapiType *t, json_object *obj, const char *key,
                     const char *text, GError **errp)
{
    g_auto(GStrv) parts = g_strsplit(key, ".", -1);
    json_object *cur = obj;
    const QapiType *ct = t;
    json_object *val;

    for (unsigned i = 0; parts[i]; i++) {
        const char *part = parts[i];
        bool last = parts[i + 1] == NULL;
        const QapiType *mt = NULL;
        json_object *next;

        if (ct && ct->kind == QAPI_KIND_STRUCT) {
            const QapiMember *m = qapi_struct_member(ct, part);

            if (!m && !ct->allow_extra) {
                g_autofree char *names = member_list(ct);

                error_setg(errp, "unknown key '%s' (known: %s)", key,
                           *names ? names : "none");
                return false;
            }
            if (!m) {
                /* Extra keys stay flat strings: the handler reads them. */
                g_autofree char *rest = g_strjoinv(".", parts + i);

                json_object_object_add(cur, rest,
                                       json_object_new_string(text));
                return true;
            }
            mt = m->type;
        } else if (ct && ct->kind == QAPI_KIND_ARRAY) {
            if (!is_index(part)) {
                error_setg(errp, "'%s': '%s' is not an array index", key,
                           part);
                return false;
            }
            mt = ct->element;
        }
        if (!last && mt && mt->kind != QAPI_KIND_STRUCT &&
            mt->kind != QAPI_KIND_ARRAY && mt->kind != QAPI_KIND_ANY) {
            error_setg(errp, "'%s': '%s' takes no sub-keys", key, part);
            return false;
        }
        if (last) {
            if (mt && (mt->kind == QAPI_KIND_STRUCT ||
                       mt->kind == QAPI_KIND_ARRAY)) {
                error_setg(errp, "'%s' needs sub-keys (%s.KEY=VALUE)", key,
                           key);
                return false;
            }
            val = mt ? text_to_scalar(mt, key, text, errp)
                     : json_object_new_string(text);
            if (mt && !val && mt->kind != QAPI_KIND_NULL) {
                return false;
            }
            if (json_object_is_type(cur, json_type_array)) {
                next = json_object_array_get_idx(cur, atoi(part));
            } else if (!json_object_object_get_ex(cur, part, &next)) {
                next = NULL;
            }
            if (next) {
                json_object_put(val);
                return path_conflict(key, errp);
            }
            if (json_object_is_type(cur, json_type_array)) {
                json_object_array_put_idx(cur, atoi(part), val);
            } else {
                json_object_object_add(cur, part, val);
            }
            return true;
        }
        if (json_object_is_type(cur, json_type_array)) {
            next = json_object_array_get_idx(cur, atoi(part));
        } else if (!json_object_object_get_ex(cur, part, &next)) {
            next = NULL;
        }
        if (next && !json_object_is_type(next, json_type_object) &&
            !json_object_is_type(next, json_type_array)) {
            return path_conflict(key, errp);
        }
        if (!next) {
            next = mt && mt->kind == QAPI_KIND_ARRAY ? json_object_new_array()
                                                    : json_object_new_object();
            if (json_object_is_type(cur, json_type_array)) {
                json_object_array_put_idx(cur, atoi(part), next);
            } else {
                json_object_object_add(cur, part, next);
            }
        }
        cur = next;
        ct = mt;
    }
    return true;
}

json_object *qapi_keyval_to_json(const QapiType *type, Keyval *kv,
                                 GError **errp)
{
    json_object *obj = json_object_new_object();

    for (guint i = 0; i < kv->pairs->len; i++) {
        KeyvalPair *p = g_ptr_array_index(kv->pairs, i);

        if (!set_path(type, obj, p->key, p->value, errp)) {
            json_object_put(obj);
            return NULL;
        }
    }
    return obj;
}
