/*
 * Keyval option parser: "value,key=value,key2=value2" as QEMU's command line
 * writes it.  A ",," inside a value stands for a literal comma.  The first
 * element may omit its "key=" when the caller names an implied key
 * ("nvme,id=n0" with implied key "driver").
 */
#ifndef UTIL_KEYVAL_H
#define UTIL_KEYVAL_H

#include "util/osdep.h"

typedef struct KeyvalPair {
    char *key;
    char *value;
    bool used;          /* set by keyval_get() and friends */
} KeyvalPair;

typedef struct Keyval {
    GPtrArray *pairs;   /* of KeyvalPair *, in command-line order */
} Keyval;

/*
 * Parse @str.  Errors (empty key, missing '=', duplicate key, invalid key
 * characters) name the offending element.  Keys are [A-Za-z0-9_.-]+.
 */
Keyval *keyval_parse(const char *str, const char *implied_key, GError **errp);
/* An empty Keyval, to be filled with keyval_set() (e.g. from QMP args). */
Keyval *keyval_new(void);
void keyval_free(Keyval *kv);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Keyval, keyval_free)

/* The value for @key (marking it used), or NULL. */
const char *keyval_get(Keyval *kv, const char *key);
/* Remove @key, returning its value (caller frees) or NULL. */
char *keyval_take(Keyval *kv, const char *key);
/* Add or replace a pair. */
void keyval_set(Keyval *kv, const char *key, const char *value);
/*
 * The option text that parses back into @kv: "key=value,..." in order,
 * commas in values doubled.  g_free the result.
 */
char *keyval_to_str(const Keyval *kv);
/* Fails naming the first key that nobody asked for: "unknown property 'k'". */
bool keyval_check_unused(Keyval *kv, GError **errp);

/* Parsers shared with the property tables and the monitor. */
/*
 * Does the option text @str ask for help: "help" or "?" as one of its
 * elements ("help", "nvme,help", "nvme,help,id=x", "driver=file,?")?
 */
bool keyval_wants_help(const char *str);
/*
 * What it asks help about: the value of @implied_key (a bare first
 * element, or implied_key=VALUE), else NULL.  g_free the result.
 */
char *keyval_help_subject(const char *str, const char *implied_key);

/*
 * The one rule for identifiers (id=, node-name=): a letter, then letters,
 * digits, '-', '_' and '.', at most @max characters.  False with @errp
 * naming @what and the rule otherwise.
 */
bool check_id(const char *what, const char *id, size_t max, GError **errp);

bool parse_bool(const char *s, bool *out, GError **errp);   /* on/off/yes/no/true/false */
bool parse_uint(const char *s, uint64_t *out, GError **errp); /* dec, 0x hex, 0 octal */
/* Sizes: a number with an optional suffix k/K, M, G, T, P, E (powers of 1024)
 * or b/B (bytes). "1.5G" is accepted. */
bool parse_size(const char *s, uint64_t *out, GError **errp);

#endif
