/*
 * Typed property tables.  A device, block node or net backend describes its
 * options with a const PropDef array; the command line, device_add,
 * qom-get and qom-set all go through these functions, so every path checks
 * the same things and reports the same errors.
 */
#ifndef HW_CORE_PROPS_H
#define HW_CORE_PROPS_H

#include "util/osdep.h"
#include "util/keyval.h"

typedef enum {
    PROP_STR,       /* char * (g_strdup'd; NULL when unset) */
    PROP_BOOL,      /* bool */
    PROP_UINT,      /* uint64_t, uint32_t, uint16_t or uint8_t: see .size */
    PROP_SIZE,      /* uint64_t with k/M/G suffixes */
    PROP_ENUM,      /* int, index into .enum_names */
} PropType;

typedef struct PropDef {
    const char *name;
    PropType type;
    size_t offset;              /* of the field in the state struct */
    size_t size;                /* PROP_UINT: sizeof the field (1/2/4/8) */
    const char *const *enum_names;  /* PROP_ENUM: NULL-terminated */
    uint64_t min, max;          /* PROP_UINT/SIZE bounds; max 0 = type max */
    const char *defval;         /* default as text, NULL = zero/NULL */
    bool mandatory;             /* must be given at creation */
    bool runtime;               /* may be changed by qom-set after realize */
    const char *desc;           /* one line for --help / qom-list */
} PropDef;

/* Helpers for building tables. */
#define PROP_DEF_STR(n, st, f, d, ...) \
    { .name = (n), .type = PROP_STR, .offset = offsetof(st, f), \
      .desc = (d), __VA_ARGS__ }
#define PROP_DEF_BOOL(n, st, f, d, ...) \
    { .name = (n), .type = PROP_BOOL, .offset = offsetof(st, f), \
      .desc = (d), __VA_ARGS__ }
#define PROP_DEF_UINT(n, st, f, d, ...) \
    { .name = (n), .type = PROP_UINT, .offset = offsetof(st, f), \
      .size = sizeof(((st *)0)->f), .desc = (d), __VA_ARGS__ }
#define PROP_DEF_SIZE(n, st, f, d, ...) \
    { .name = (n), .type = PROP_SIZE, .offset = offsetof(st, f), \
      .size = sizeof(uint64_t), .desc = (d), __VA_ARGS__ }
#define PROP_DEF_ENUM(n, st, f, names, d, ...) \
    { .name = (n), .type = PROP_ENUM, .offset = offsetof(st, f), \
      .enum_names = (names), .desc = (d), __VA_ARGS__ }
#define PROP_DEF_END { .name = NULL }

const PropDef *props_find(const PropDef *defs, const char *name);

/*
 * Apply every property of @defs to @state: the value from @kv when present
 * (marking it used), else the default.  A missing mandatory property, a
 * value that does not parse or is out of range fails with
 * "property 'name': reason".  Keys in @kv that no table names are left
 * unused for keyval_check_unused(); several tables may be applied to one
 * Keyval (common properties, then the driver's).
 */
bool props_apply(const PropDef *defs, void *state, Keyval *kv, GError **errp);

/* Set one property from its text form. */
bool prop_set_str(const PropDef *def, void *state, const char *value,
                  GError **errp);
/* The current value as text (caller frees): "on"/"off", decimal, enum name. */
char *prop_get_str(const PropDef *def, void *state);
/* Type name as the monitor reports it: "str", "bool", "uint64", "size", "enum". */
const char *prop_type_name(const PropDef *def);
/* Free the PROP_STR fields of @state. */
void props_free(const PropDef *defs, void *state);
/* Print "  name=<type>  desc (default: x)" lines for --help. */
void props_print_help(const PropDef *defs, FILE *out);

#endif
