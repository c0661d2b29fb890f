/*
 * The QMP schema as C tables.  scripts/qapi-gen.py turns the JSON files of
 * qapi/schema/ into build/qapi/qapi-gen-schema.c (types, commands, events, the
 * query-qmp-schema text) and build/qapi/qapi-gen-commands.c (the handler
 * table).  The monitor checks arguments against these tables before a
 * handler runs; iovd-ctl uses them to type its key=value arguments.
 */
#ifndef QAPI_SCHEMA_H
#define QAPI_SCHEMA_H

#include "util/osdep.h"
#include "util/keyval.h"

#include <json-c/json.h>

typedef enum QapiKind {
    QAPI_KIND_STR,
    QAPI_KIND_INT,          /* int64 */
    QAPI_KIND_UINT64,       /* 0 .. 2^64-1 */
    QAPI_KIND_SIZE,         /* like uint64: bytes */
    QAPI_KIND_NUMBER,       /* int or double */
    QAPI_KIND_BOOL,
    QAPI_KIND_NULL,
    QAPI_KIND_ANY,
    QAPI_KIND_ENUM,
    QAPI_KIND_STRUCT,
    QAPI_KIND_ARRAY,
} QapiKind;

typedef struct QapiType QapiType;

typedef struct QapiMember {
    const char *name;
    const QapiType *type;
    bool optional;
    const char *doc;                /* may be NULL */
} QapiMember;

struct QapiType {
    const char *name;               /* "str", "PciInfo", "[PciInfo]" */
    QapiKind kind;
    /* QAPI_KIND_STRUCT */
    const QapiMember *members;
    unsigned n_members;
    bool allow_extra;               /* keys beyond the members pass through */
    /* QAPI_KIND_ENUM */
    const char *const *values;
    unsigned n_values;
    /* QAPI_KIND_ARRAY */
    const QapiType *element;
};

typedef struct QapiCommandDef {
    const char *name;
    const QapiType *args;           /* a struct type, never NULL */
    const QapiType *ret;            /* NULL: returns {} */
    const char *doc;                /* "" when the schema lacks one */
    const char *example;            /* JSON array of {"->"|"<-": msg}, or "" */
} QapiCommandDef;

typedef struct QapiEventDef {
    const char *name;
    const QapiType *data;           /* NULL: the event carries no data */
    const char *doc;
    const char *example;
} QapiEventDef;

/* Generated: sorted by name (strcmp). */
extern const QapiCommandDef qapi_commands[];
extern const unsigned qapi_n_commands;
extern const QapiEventDef qapi_events[];
extern const unsigned qapi_n_events;
extern const QapiType qapi_types[];
extern const unsigned qapi_n_types;
/* The query-qmp-schema return value as JSON text. */
extern const char qapi_introspection_json[];

/* A command handler: @args is the checked argument object (borrowed). */
typedef bool QmpHandler(json_object *args, json_object **ret, GError **errp);

typedef struct QmpCommand {
    const char *name;
    QmpHandler *fn;
} QmpCommand;

/* Generated: the handler of qapi_commands[i] is qmp_command_table[i]. */
extern const QmpCommand qmp_command_table[];

const QapiCommandDef *qapi_command_find(const char *name);
const QapiEventDef *qapi_event_find(const char *name);
const QapiType *qapi_type_find(const char *name);
const QapiMember *qapi_struct_member(const QapiType *t, const char *name);

/*
 * Check @value against @type.  @what names the value in errors
 * ("Parameter" for arguments, "Member" elsewhere); errors name the
 * offending key by its dotted path: "Parameter 'cache.direct' expects a
 * boolean".  A struct with allow_extra accepts other keys with scalar
 * values.
 */
bool qapi_check(const QapiType *type, json_object *value, const char *what,
                GError **errp);

/* "a string", "an integer", "one of: a, b" ... for messages (static). */
const char *qapi_kind_desc(QapiKind kind);

/*
 * Turn key=value text (as iovd-ctl and the command line write it) into
 * an argument object of @type: dotted keys become nested objects, values
 * are converted to the member's type (bool: on/off/yes/no/true/false; int
 * and size: numbers with optional k/M/G suffixes).  Keys the type does not
 * name are kept as strings when it allows extra keys.
 */
json_object *qapi_keyval_to_json(const QapiType *type, Keyval *kv,
                                 GError **errp);

/*
 * The reverse, for handlers that pass their arguments to a property table
 * (device_add, blockdev-add): nested objects become dotted keys, arrays
 * KEY.0, KEY.1 ..., scalars their text (see qapi_scalar_to_str).
 */
bool qapi_json_to_keyval(json_object *obj, Keyval *kv,
                         const char *prefix, GError **errp);

/* The text form of a scalar JSON value for a property table: bools become
 * "on"/"off".  NULL (and an error) for objects and arrays. */
char *qapi_scalar_to_str(json_object *v, const char *key, GError **errp);

#endif
