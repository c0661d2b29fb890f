/*
 * Device state streams (see savestate.h for the format and its rules).
 */
#include "util/savestate.h"
#include "util/error.h"

#define STATE_HDR_SIZE 16u
#define STATE_SECT_HDR 8u
#define STATE_FIELD_HDR 8u
#define STATE_NAME_MAX 255u

enum { STATE_KIND_END = 0, STATE_KIND_SECTION = 1 };

struct StateWriter {
    GByteArray *buf;
    size_t sect_start;          /* offset of the open section's header */
    size_t fields_start;        /* ... and of its first field */
    bool in_section;
};

typedef struct StateField {
    char *name;
    StateType type;
    const uint8_t *data;
    uint32_t len;
    bool used;
} StateField;

struct StateSection {
    char *name;
    uint16_t version;
    GHashTable *fields;         /* name -> StateField */
    bool opened;
    char *error;                /* the first error a getter met */
};

struct StateReader {
    GBytes *data;
    GHashTable *sections;       /* name -> StateSection */
    GPtrArray *order;           /* sections as they came */
};

static const char *const type_names[] = {
    [STATE_U8] = "u8", [STATE_U16] = "u16", [STATE_U32] = "u32",
    [STATE_U64] = "u64", [STATE_BOOL] = "bool", [STATE_BYTES] = "bytes",
    [STATE_STR] = "str",
};

/* ---- writing ---- */

StateWriter *state_writer_new(void)
{
    StateWriter *w = g_new0(StateWriter, 1);
    uint8_t hdr[STATE_HDR_SIZE] = { 0 };

    w->buf = g_byte_array_new();
    memcpy(hdr, STATE_MAGIC, 8);
    stl_le_p(hdr + 8, STATE_FORMAT);
    g_byte_array_append(w->buf, hdr, sizeof(hdr));
    return w;
}

void state_writer_free(StateWriter *w)
{
    if (w) {
        if (w->buf) {
            g_byte_array_unref(w->buf);
        }
        g_free(w);
    }
}

void state_begin(StateWriter *w, const char *name, uint16_t version)
{
    size_t nlen = strlen(name);
    uint8_t hdr[STATE_SECT_HDR];

    g_assert(!w->in_section && nlen > 0 && nlen <= STATE_NAME_MAX);
    g_assert(version > 0);
    hdr[0] = STATE_KIND_SECTION;
    hdr[1] = nlen;
    stw_le_p(hdr + 2, version);
    stl_le_p(hdr + 4, 0);       /* the length, once known */
    w->sect_start = w->buf->len;
    w->in_section = true;
    g_byte_array_append(w->buf, hdr, sizeof(hdr));
    g_byte_array_append(w->buf, (const uint8_t *)name, nlen);
    w->fields_start = w->buf->len;
}

void state_end(StateWriter *w)
{
    size_t body = w->buf->len - w->fields_start;

    g_assert(w->in_section && body <= UINT32_MAX);
    stl_le_p(w->buf->data + w->sect_start + 4, body);
    w->in_section = false;
}

static void put_field(StateWriter *w, const char *name, StateType type,
                      const void *data, size_t len)
{
    size_t nlen = strlen(name);
    uint8_t hdr[STATE_FIELD_HDR];

    g_assert(w->in_section && nlen > 0 && nlen <= STATE_NAME_MAX);
    g_assert(len <= UINT32_MAX);
    hdr[0] = nlen;
    hdr[1] = type;
    stw_le_p(hdr + 2, 0);
    stl_le_p(hdr + 4, len);
    g_byte_array_append(w->buf, hdr, sizeof(hdr));
    g_byte_array_append(w->buf, (const uint8_t *)name, nlen);
    if (len) {
        g_byte_array_append(w->buf, data, len);
    }
}

static void put_int(StateWriter *w, const char *name, StateType type,
                    unsigned size, uint64_t v)
{
    uint8_t b[8];

    stn_le_p(b, size, v);
    put_field(w, name, type, b, size);
}

void state_put_u8(StateWriter *w, const char *name, uint8_t v)
{
    put_int(w, name, STATE_U8, 1, v);
}

void state_put_u16(StateWriter *w, const char *name, uint16_t v)
{
    put_int(w, name, STATE_U16, 2, v);
}

void state_put_u32(StateWriter *w, const char *name, uint32_t v)
{
    put_int(w, name, STATE_U32, 4, v);
}

void state_put_u64(StateWriter *w, const char *name, uint64_t v)
{
    put_int(w, name, STATE_U64, 8, v);
}

void state_put_bool(StateWriter *w, const char *name, bool v)
{
    put_int(w, name, STATE_BOOL, 1, v);
}

void state_put_bytes(StateWriter *w, const char *name, const void *p,
                     size_t len)
{
    put_field(w, name, STATE_BYTES, p, len);
}

void state_put_str(StateWriter *w, const char *name, const char *s)
{
    if (s) {
        /* With its NUL: an empty string is not an absent one. */
        put_field(w, name, STATE_STR, s, strlen(s) + 1);
    } else {
        put_field(w, name, STATE_STR, NULL, 0);
    }
}

GBytes *state_writer_finish(StateWriter *w)
{
    static const uint8_t end[STATE_SECT_HDR] = { STATE_KIND_END };
    GByteArray *buf = w->buf;

    g_assert(!w->in_section);
    g_byte_array_append(buf, end, sizeof(end));
    w->buf = NULL;
    return g_byte_array_free_to_bytes(buf);
}

/* ---- reading ---- */

static void field_free(gpointer p)
{
    StateField *f = p;

    g_free(f->name);
    g_free(f);
}

static void section_free(gpointer p)
{
    StateSection *s = p;

    g_free(s->name);
    g_free(s->error);
    g_hash_table_unref(s->fields);
    g_free(s);
}

void state_reader_free(StateReader *r)
{
    if (r) {
        g_hash_table_unref(r->sections);
        g_ptr_array_unref(r->order);
        g_bytes_unref(r->data);
        g_free(r);
    }
}

static bool fixed_size_ok(StateType type, uint32_t len)
{
    switch (type) {
    case STATE_U8:
    case STATE_BOOL:
        return len == 1;
    case STATE_U16:
        return len == 2;
    case STATE_U32:
        return len == 4;
    case STATE_U64:
        return len == 8;
    case STATE_BYTES:
        return true;
    case STATE_STR:
        return true;
    }
    return false;
}

/* The fields of section @s in [p, p + len). */
static bool parse_fields(StateSection *s, const uint8_t *p, size_t len,
                         GError **errp)
{
    size_t off = 0;

    while (off < len) {
        StateField *f;
        uint8_t nlen, type;
        uint32_t flen;

        if (len - off < STATE_FIELD_HDR) {
            error_setg(errp, "section '%s': a field header runs past the "
                       "section's end", s->name);
            return false;
        }
        nlen = p[off];
        type = p[off + 1];
        flen = ldl_le_p(p + off + 4);
        off += STATE_FIELD_HDR;
        if (nlen == 0 || len - off < nlen || len - off - nlen < flen) {
            error_setg(errp, "section '%s': a field runs past the "
                       "section's end", s->name);
            return false;
        }
        f = g_new0(StateField, 1);
        f->name = g_strndup((const char *)p + off, nlen);
        off += nlen;
        if (type < STATE_U8 || type > STATE_STR ||
            !fixed_size_ok(type, flen) ||
            (type == STATE_STR && flen && p[off + flen - 1] != '\0')) {
            error_setg(errp, "section '%s': field '%s' has type %u and "
                       "length %u, which this iovd cannot read", s->name,
                       f->name, type, flen);
            field_free(f);
            return false;
        }
        if (g_hash_table_contains(s->fields, f->name)) {
            error_setg(errp, "section '%s': field '%s' appears twice",
                       s->name, f->name);
            field_free(f);
            return false;
        }
        f->type = type;
        f->data = p + off;
        f->len = flen;
        off += flen;
        g_hash_table_insert(s->fields, f->name, f);
    }
    return true;
}

/* One section at *off; false at the end mark (*end set) or an error. */
static bool parse_section(StateReader *r, const uint8_t *p, size_t size,
                          size_t *off, bool *end, GError **errp)
{
    StateSection *s;
    uint8_t nlen;
    uint32_t len;

    if (size - *off < STATE_SECT_HDR) {
        error_setg(errp, "the stream ends without its end mark");
        return false;
    }
    if (p[*off] == STATE_KIND_END) {
        *end = true;
        *off += STATE_SECT_HDR;
        return false;
    }
    if (p[*off] != STATE_KIND_SECTION) {
        error_setg(errp, "unknown record kind %u at offset %zu", p[*off],
                   *off);
        return false;
    }
    nlen = p[*off + 1];
    len = ldl_le_p(p + *off + 4);
    if (nlen == 0 || size - *off - STATE_SECT_HDR < (size_t)nlen + len) {
        error_setg(errp, "a section at offset %zu runs past the stream's "
                   "end", *off);
        return false;
    }
    s = g_new0(StateSection, 1);
    s->version = lduw_le_p(p + *off + 2);
    s->name = g_strndup((const char *)p + *off + STATE_SECT_HDR, nlen);
    s->fields = g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
                                      field_free);
    if (g_hash_table_contains(r->sections, s->name)) {
        error_setg(errp, "section '%s' appears twice", s->name);
        section_free(s);
        return false;
    }
    g_hash_table_insert(r->sections, s->name, s);
    g_ptr_array_add(r->order, s);
    *off += STATE_SECT_HDR + nlen;
    if (!parse_fields(s, p + *off, len, errp)) {
        return false;
    }
    *off += len;
    return true;
}

StateReader *state_reader_new(GBytes *data, GError **errp)
{
    g_autoptr(StateReader) r = g_new0(StateReader, 1);
    size_t size, off = STATE_HDR_SIZE;
    const uint8_t *p = g_bytes_get_data(data, &size);
    bool end = false;
    uint32_t format;

    r->data = g_bytes_ref(data);
    r->sections = g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
                                        section_free);
    r->order = g_ptr_array_new();
    if (size < STATE_HDR_SIZE || memcmp(p, STATE_MAGIC, 8)) {
        error_setg(errp, "not an iovd device state stream (no '%s' header)",
                   STATE_MAGIC);
        return NULL;
    }
    format = ldl_le_p(p + 8);
    if (format != STATE_FORMAT || ldl_le_p(p + 12) != 0) {
        error_setg(errp, "device state stream format %u (flags 0x%x): this "
                   "iovd reads format %u", format, ldl_le_p(p + 12),
                   STATE_FORMAT);
        return NULL;
    }
    while (parse_section(r, p, size, &off, &end, errp)) {
    }
    if (!end) {
        return NULL;
    }
    if (off != size) {
        error_setg(errp, "%zu bytes after the stream's end mark",
                   size - off);
        return NULL;
    }
    return g_steal_pointer(&r);
}

bool state_has_section(StateReader *r, const char *name)
{
    return g_hash_table_contains(r->sections, name);
}

StateSection *state_section(StateReader *r, const char *name,
                            uint16_t max_version, uint16_t *version,
                            GError **errp)
{
    StateSection *s = g_hash_table_lookup(r->sections, name);

    if (!s) {
        error_setg(errp, "device state: section '%s' is missing", name);
        return NULL;
    }
    if (s->opened) {
        error_setg(errp, "device state: section '%s' read twice", name);
        return NULL;
    }
    if (s->version == 0 || s->version > max_version) {
        error_setg(errp, "device state: section '%s' has version %u; this "
                   "iovd loads versions 1 to %u", name, s->version,
                   max_version);
        return NULL;
    }
    s->opened = true;
    if (version) {
        *version = s->version;
    }
    return s;
}

void state_section_fail(StateSection *s, const char *fmt, ...)
{
    va_list ap;

    if (s->error) {
        return;
    }
    va_start(ap, fmt);
    s->error = g_strdup_vprintf(fmt, ap);
    va_end(ap);
}

bool state_section_failed(StateSection *s)
{
    return s->error != NULL;
}

const char *state_section_name(StateSection *s)
{
    return s->name;
}

bool state_section_end(StateSection *s, GError **errp)
{
    GHashTableIter it;
    StateField *f;

    if (s->error) {
        error_setg(errp, "device state: section '%s': %s", s->name,
                   s->error);
        return false;
    }
    g_hash_table_iter_init(&it, s->fields);
    while (g_hash_table_iter_next(&it, NULL, (gpointer *)&f)) {
        if (!f->used) {
            error_setg(errp, "device state: section '%s' version %u: field "
                       "'%s' is not known to this iovd", s->name, s->version,
                       f->name);
            return false;
        }
    }
    return true;
}

bool state_reader_end(StateReader *r, GError **errp)
{
    for (guint i = 0; i < r->order->len; i++) {
        StateSection *s = g_ptr_array_index(r->order, i);

        if (!s->opened) {
            error_setg(errp, "device state: section '%s' (version %u) is "
                       "not known to this iovd", s->name, s->version);
            return false;
        }
    }
    return true;
}

bool state_has_field(StateSection *s, const char *name)
{
    return g_hash_table_contains(s->fields, name);
}

void state_foreach_field(StateSection *s,
                         void (*fn)(StateSection *s, const char *name,
                                    void *opaque),
                         void *opaque)
{
    g_autofree gpointer *names =
        g_hash_table_get_keys_as_array(s->fields, NULL);

    for (unsigned i = 0; names[i]; i++) {
        fn(s, names[i], opaque);
    }
}

/* Field @name of @type, or NULL (the section's error set unless @opt). */
static StateField *get_field(StateSection *s, const char *name,
                             StateType type, bool opt)
{
    StateField *f = g_hash_table_lookup(s->fields, name);

    if (!f) {
        if (!opt) {
            state_section_fail(s, "field '%s' is missing", name);
        }
        return NULL;
    }
    f->used = true;
    if (f->type != type) {
        state_section_fail(s, "field '%s' is %s, expected %s", name,
                           type_names[f->type], type_names[type]);
        return NULL;
    }
    return f;
}

static uint64_t get_int(StateSection *s, const char *name, StateType type,
                        bool opt, uint64_t def)
{
    StateField *f = get_field(s, name, type, opt);

    return f ? ldn_le_p(f->data, f->len) : def;
}

uint8_t state_get_u8(StateSection *s, const char *name)
{
    return get_int(s, name, STATE_U8, false, 0);
}

uint16_t state_get_u16(StateSection *s, const char *name)
{
    return get_int(s, name, STATE_U16, false, 0);
}

uint32_t state_get_u32(StateSection *s, const char *name)
{
    return get_int(s, name, STATE_U32, false, 0);
}

uint64_t state_get_u64(StateSection *s, const char *name)
{
    return get_int(s, name, STATE_U64, false, 0);
}

bool state_get_bool(StateSection *s, const char *name)
{
    return get_int(s, name, STATE_BOOL, false, 0) != 0;
}

uint32_t state_get_u32_or(StateSection *s, const char *name, uint32_t def)
{
    return get_int(s, name, STATE_U32, true, def);
}

uint64_t state_get_u64_or(StateSection *s, const char *name, uint64_t def)
{
    return get_int(s, name, STATE_U64, true, def);
}

bool state_get_bool_or(StateSection *s, const char *name, bool def)
{
    return get_int(s, name, STATE_BOOL, true, def) != 0;
}

void state_get_bytes(StateSection *s, const char *name, void *buf,
                     size_t len)
{
    StateField *f = get_field(s, name, STATE_BYTES, false);

    if (f && f->len != len) {
        state_section_fail(s, "field '%s' has %u bytes, expected %zu", name,
                           f->len, len);
        f = NULL;
    }
    if (!len) {
        return;                 /* @buf may be NULL */
    }
    if (f) {
        memcpy(buf, f->data, len);
    } else {
        memset(buf, 0, len);
    }
}

const void *state_get_blob(StateSection *s, const char *name, size_t *len)
{
    StateField *f = get_field(s, name, STATE_BYTES, false);

    *len = f ? f->len : 0;
    return f ? f->data : NULL;
}

char *state_get_str(StateSection *s, const char *name)
{
    StateField *f = get_field(s, name, STATE_STR, false);

    return f && f->len ? g_strdup((const char *)f->data) : NULL;
}
