/*
 * Keyval option parser and the number/bool/size parsers that go with it.
 *
 * Grammar of a keyval string:
 *   str     := "" | element { "," element } [ "," ]
 *   element := key "=" value | value     (bare value: first element only,
 *                                          and only with an implied key)
 *   key     := [A-Za-z0-9_.-]+
 *   value   := any characters; ",," stands for one literal ","
 */
#include "util/keyval.h"
#include "util/error.h"

static void keyval_pair_free(gpointer p)
{
    KeyvalPair *pair = p;

    g_free(pair->key);
    g_free(pair->value);
    g_free(pair);
}

char *keyval_to_str(const Keyval *kv)
{
    GString *s = g_string_new(NULL);

    for (guint i = 0; i < kv->pairs->len; i++) {
        const KeyvalPair *p = g_ptr_array_index(kv->pairs, i);

        g_string_append_printf(s, "%s%s=", i ? "," : "", p->key);
        for (const char *c = p->value; *c; c++) {
            g_string_append_c(s, *c);
            if (*c == ',') {
                g_string_append_c(s, ',');
            }
        }
    }
    return g_string_free(s, false);
}

Keyval *keyval_new(void)
{
    Keyval *kv = g_new0(Keyval, 1);

    kv->pairs = g_ptr_array_new_with_free_func(keyval_pair_free);
    return kv;
}

void keyval_free(Keyval *kv)
{
    if (!kv) {
        return;
    }
    g_ptr_array_unref(kv->pairs);
    g_free(kv);
}

static KeyvalPair *keyval_lookup(Keyval *kv, const char *key, guint *index)
{
    for (guint i = 0; i < kv->pairs->len; i++) {
        KeyvalPair *pair = g_ptr_array_index(kv->pairs, i);

        if (strcmp(pair->key, key) == 0) {
            if (index) {
                *index = i;
            }
            return pair;
        }
    }
    return NULL;
}

static void keyval_append(Keyval *kv, const char *key, char *value)
{
    KeyvalPair *pair = g_new0(KeyvalPair, 1);

    pair->key = g_strdup(key);
    pair->value = value;
    g_ptr_array_add(kv->pairs, pair);
}

static bool keyval_key_char(char c)
{
    return g_ascii_isalnum(c) || c == '_' || c == '.' || c == '-';
}

/*
 * Scan a value starting at @p up to the first single ',' or the end,
 * unescaping ",,".  Returns a pointer to the terminating ',' or NUL.
 */
static const char *keyval_scan_value(const char *p, GString *out)
{
    for (;;) {
        if (*p == ',') {
            if (p[1] != ',') {
                break;
            }
            if (out) {
                g_string_append_c(out, ',');
            }
            p += 2;
            continue;
        }
        if (*p == '\0') {
            break;
        }
        if (out) {
            g_string_append_c(out, *p);
        }
        p++;
    }
    return p;
}

/* The element starting at @elem as the user wrote it (escapes kept). */
static char *keyval_element_text(const char *elem)
{
    const char *end = keyval_scan_value(elem, NULL);

    return g_strndup(elem, end - elem);
}

Keyval *keyval_parse(const char *str, const char *implied_key, GError **errp)
{
    g_autoptr(Keyval) kv = keyval_new();
    const char *p = str;
    bool first = true;

    g_return_val_if_fail(str != NULL, NULL);

    while (*p) {
        const char *elem = p;
        size_t len = strcspn(p, "=,");
        g_autofree char *key = NULL;
        GString *value;

        /*
         * Only the first element can be empty: later ones start after a
         * single ',' (",," belongs to the previous value).
         */
        if (p[0] == ',' && p[1] != ',') {
            error_setg(errp, "empty element at the start of '%s'", str);
            return NULL;
        }

        if (first && implied_key && p[len] != '=') {
            key = g_strdup(implied_key);
        } else {
            if (p[len] != '=') {
                error_setg(errp, "missing '=' in element '%.*s' "
                           "(expected key=value)", (int)len, elem);
                return NULL;
            }
            if (len == 0) {
                g_autofree char *text = keyval_element_text(elem);

                error_setg(errp, "empty key in element '%s'", text);
                return NULL;
            }
            key = g_strndup(p, len);
            for (size_t i = 0; i < len; i++) {
                if (!keyval_key_char(key[i])) {
                    g_autofree char *text = keyval_element_text(elem);

                    error_setg(errp, "invalid character '%c' in key '%s' of "
                               "element '%s' (keys use letters, digits, "
                               "'_', '.' and '-')", key[i], key, text);
                    return NULL;
                }
            }
            if (key[0] == '.' || key[len - 1] == '.' || strstr(key, "..")) {
                g_autofree char *text = keyval_element_text(elem);

                error_setg(errp, "empty part in dotted key '%s' of element "
                           "'%s'", key, text);
                return NULL;
            }
            p += len + 1;
        }

        if (keyval_lookup(kv, key, NULL)) {
            g_autofree char *text = keyval_element_text(elem);

            error_setg(errp, "duplicate key '%s' in element '%s'", key, text);
            return NULL;
        }

        value = g_string_new(NULL);
        p = keyval_scan_value(p, value);
        keyval_append(kv, key, g_string_free(value, FALSE));
        if (*p == ',') {
            p++;
        }
        first = false;
    }

    return g_steal_pointer(&kv);
}

const char *keyval_get(Keyval *kv, const char *key)
{
    KeyvalPair *pair = keyval_lookup(kv, key, NULL);

    if (!pair) {
        return NULL;
    }
    pair->used = true;
    return pair->value;
}

char *keyval_take(Keyval *kv, const char *key)
{
    guint index;
    KeyvalPair *pair = keyval_lookup(kv, key, &index);
    char *value;

    if (!pair) {
        return NULL;
    }
    value = g_steal_pointer(&pair->value);
    g_ptr_array_remove_index(kv->pairs, index);
    return value;
}

void keyval_set(Keyval *kv, const char *key, const char *value)
{
    KeyvalPair *pair = keyval_lookup(kv, key, NULL);

    if (pair) {
        g_free(pair->value);
        pair->value = g_strdup(value);
        pair->used = false;
        return;
    }
    keyval_append(kv, key, g_strdup(value));
}

bool keyval_check_unused(Keyval *kv, GError **errp)
{
    for (guint i = 0; i < kv->pairs->len; i++) {
        KeyvalPair *pair = g_ptr_array_index(kv->pairs, i);

        if (!pair->used) {
            error_setg(errp, "unknown property '%s'", pair->key);
            return false;
        }
    }
    return true;
}

bool parse_bool(const char *s, bool *out, GError **errp)
{
    static const char *const yes[] = { "on", "yes", "true" };
    static const char *const no[] = { "off", "no", "false" };

    for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
        if (strcmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    error_setg(errp, "'%s' is not a boolean (use on/off, yes/no or "
               "true/false)", s);
    return false;
}

static int digit_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return 99;
}

/*
 * Accumulate the digits of @base at *@pp into *@val, advancing *@pp past
 * them.  Sets *@overflow when the value does not fit.  Returns the number
 * of digits consumed.
 */
static size_t scan_digits(const char **pp, unsigned base, uint64_t *val,
                          bool *overflow)
{
    const char *p = *pp;
    size_t n = 0;
    int d;

    while ((d = digit_value(*p)) < (int)base) {
        if (*val > (UINT64_MAX - d) / base) {
            *overflow = true;
        } else {
            *val = *val * base + d;
        }
        p++;
        n++;
    }
    *pp = p;
    return n;
}

bool parse_uint(const char *s, uint64_t *out, GError **errp)
{
    const char *p = s;
    uint64_t val = 0;
    bool overflow = false;
    unsigned base = 10;
    size_t n;

    if (*p == '-') {
        error_setg(errp, "'%s' is negative (expected a number >= 0)", s);
        return false;
    }
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        base = 16;
        p += 2;
    } else if (p[0] == '0' && p[1] != '\0') {
        base = 8;
        p++;
    }
    n = scan_digits(&p, base, &val, &overflow);
    if (base == 8 && g_ascii_isdigit(*p)) {
        error_setg(errp, "'%s' is not a valid octal number (a leading 0 "
                   "means octal)", s);
        return false;
    }
    if (n == 0) {
        error_setg(errp, "'%s' is not a number", s);
        return false;
    }
    if (*p != '\0') {
        error_setg(errp, "'%s' is not a number (unexpected '%s' after the "
                   "digits)", s, p);
        return false;
    }
    if (overflow) {
        error_setg(errp, "'%s' is too large (maximum %" G_GUINT64_FORMAT
                   ")", s, (guint64)UINT64_MAX);
        return false;
    }
    *out = val;
    return true;
}

/* Shift for a size suffix, or -1. */
static int size_suffix_shift(char c)
{
    switch (c) {
    case 'b': case 'B':
        return 0;
    case 'k': case 'K':
        return 10;
    case 'm': case 'M':
        return 20;
    case 'g': case 'G':
        return 30;
    case 't': case 'T':
        return 40;
    case 'p': case 'P':
        return 50;
    case 'e': case 'E':
        return 60;
    default:
        return -1;
    }
}

/*
 * floor(0.<digits> * 2^shift), exactly: double the decimal fraction
 * @shift times, collecting the digit carried out each time.
 */
static uint64_t fraction_times_pow2(const char *digits, size_t n,
                                    unsigned shift)
{
    g_autofree char *d = g_strndup(digits, n);
    uint64_t result = 0;

    for (unsigned i = 0; i < shift; i++) {
        unsigned carry = 0;

        for (size_t j = n; j-- > 0;) {
            unsigned v = (unsigned)(d[j] - '0') * 2 + carry;

            d[j] = '0' + v % 10;
            carry = v / 10;
        }
        result = result * 2 + carry;
    }
    return result;
}

bool parse_size(const char *s, uint64_t *out, GError **errp)
{
    const char *p = s;
    const char *frac = NULL;
    size_t nfrac = 0;
    uint64_t val = 0;
    uint64_t frac_bytes;
    bool overflow = false;
    int shift = 0;

    if (*p == '-') {
        error_setg(errp, "size '%s' is negative", s);
        return false;
    }
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        p += 2;
        if (scan_digits(&p, 16, &val, &overflow) == 0) {
            goto invalid;
        }
    } else {
        if (scan_digits(&p, 10, &val, &overflow) == 0) {
            goto invalid;
        }
        if (*p == '.') {
            p++;
            frac = p;
            while (g_ascii_isdigit(*p)) {
                p++;
            }
            nfrac = p - frac;
            if (nfrac == 0) {
                goto invalid;
            }
        }
    }
    if (*p != '\0') {
        shift = size_suffix_shift(*p);
        if (shift < 0 || p[1] != '\0') {
            goto invalid;
        }
    }
    if (nfrac && shift == 0 && strspn(frac, "0") < nfrac) {
        error_setg(errp, "size '%s' is not a whole number of bytes", s);
        return false;
    }
    if (overflow || val > UINT64_MAX >> shift) {
        goto too_large;
    }
    /*
     * No overflow: frac_bytes < 1 << shift, and the low @shift bits of
     * val << shift are zero.
     */
    frac_bytes = nfrac ? fraction_times_pow2(frac, nfrac, shift) : 0;
    *out = (val << shift) + frac_bytes;
    return true;

invalid:
    error_setg(errp, "'%s' is not a valid size (expected a number with an "
               "optional suffix B, K, M, G, T, P or E)", s);
    return false;

too_large:
    error_setg(errp, "size '%s' is too large (maximum %" G_GUINT64_FORMAT
               " bytes)", s, (guint64)UINT64_MAX);
    return false;
}

bool check_id(const char *what, const char *id, size_t max, GError **errp)
{
    bool ok = g_ascii_isalpha(id[0]) && strlen(id) <= max;

    for (const char *p = id; ok && *p; p++) {
        ok = g_ascii_isalnum(*p) || *p == '-' || *p == '_' || *p == '.';
    }
    if (!ok) {
        char limit[32] = "";

        if (max < SIZE_MAX) {
            snprintf(limit, sizeof(limit), "; at most %zu", max);
        }
        error_setg(errp, "property '%s': '%s' is not a valid identifier (a "
                   "letter, then letters, digits, '-', '_', '.'%s)", what,
                   id, limit);
    }
    return ok;
}

/* The elements of @str, ",," unescaped. */
static GPtrArray *keyval_elements(const char *str)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    GString *cur = g_string_new(NULL);

    for (const char *p = str; *p; p++) {
        if (*p == ',' && p[1] == ',') {
            g_string_append_c(cur, ',');
            p++;
        } else if (*p == ',') {
            g_ptr_array_add(out, g_string_free(cur, false));
            cur = g_string_new(NULL);
        } else {
            g_string_append_c(cur, *p);
        }
    }
    g_ptr_array_add(out, g_string_free(cur, false));
    return out;
}

static bool is_help(const char *element)
{
    return !strcmp(element, "help") || !strcmp(element, "?");
}

bool keyval_wants_help(const char *str)
{
    g_autoptr(GPtrArray) el = keyval_elements(str);

    for (guint i = 0; i < el->len; i++) {
        if (is_help(el->pdata[i])) {
            return true;
        }
    }
    return false;
}

char *keyval_help_subject(const char *str, const char *implied_key)
{
    g_autoptr(GPtrArray) el = keyval_elements(str);
    size_t klen = strlen(implied_key);

    for (guint i = 0; i < el->len; i++) {
        const char *e = el->pdata[i];

        if (i == 0 && !strchr(e, '=') && !is_help(e) && *e) {
            return g_strdup(e);
        }
        if (!strncmp(e, implied_key, klen) && e[klen] == '=') {
            return g_strdup(e + klen + 1);
        }
    }
    return NULL;
}
