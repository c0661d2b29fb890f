/*
 * Device state streams: what a device writes to move (live migration over
 * vfio-user, live upgrade) and reads back on the other side.
 *
 * A stream is self-describing: a header, then named sections, each with
 * a version and a length, each holding named, typed fields; an end mark
 * closes it.  All integers are little-endian.
 *
 *   stream   "IOVDSTAT" u32 format(=1) u32 flags(=0)  section*  end
 *   section  u8 kind(=1) u8 name_len u16 version u32 length  name  field*
 *   field    u8 name_len u8 type u16 0 u32 length  name  data
 *   end      u8 kind(=0) and 7 zero bytes
 *
 * Versioning rule (docs/device-state.md):
 *   - a field is added without a version change, and the loader reads it
 *     with a default (state_get_*_or): an older stream still loads;
 *   - a field whose meaning changes, or that goes away, bumps its
 *     section's version; the loader keeps reading every older version it
 *     can and refuses a newer one;
 *   - a loader refuses what it would silently drop: a section or a field
 *     it does not know (a newer iovd's stream), a missing field, a field
 *     of another type or size.
 *
 * Writing never fails.  Reading validates the whole stream's structure
 * first (every length inside its parent), then a device reads its
 * sections; field getters record the first error in their section and
 * return 0, so that a loader reads straight through and asks
 * state_section_end() once.
 */
#ifndef UTIL_SAVESTATE_H
#define UTIL_SAVESTATE_H

#include "util/osdep.h"

#define STATE_MAGIC "IOVDSTAT"
#define STATE_FORMAT 1

typedef enum StateType {
    STATE_U8 = 1,
    STATE_U16,
    STATE_U32,
    STATE_U64,
    STATE_BOOL,
    STATE_BYTES,
    STATE_STR,
} StateType;

typedef struct StateWriter StateWriter;
typedef struct StateReader StateReader;
typedef struct StateSection StateSection;

/* ---- writing ---- */

StateWriter *state_writer_new(void);
void state_writer_free(StateWriter *w);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(StateWriter, state_writer_free)

/* Sections do not nest: begin, fields, end. */
void state_begin(StateWriter *w, const char *name, uint16_t version);
void state_end(StateWriter *w);

void state_put_u8(StateWriter *w, const char *name, uint8_t v);
void state_put_u16(StateWriter *w, const char *name, uint16_t v);
void state_put_u32(StateWriter *w, const char *name, uint32_t v);
void state_put_u64(StateWriter *w, const char *name, uint64_t v);
void state_put_bool(StateWriter *w, const char *name, bool v);
void state_put_bytes(StateWriter *w, const char *name, const void *p,
                     size_t len);
/* @s may be NULL: written as absent (the loader reads NULL). */
void state_put_str(StateWriter *w, const char *name, const char *s);

/* Close the stream; the bytes are the caller's (g_bytes_unref). */
GBytes *state_writer_finish(StateWriter *w);

/* ---- reading ---- */

/*
 * Check @data's structure and index its sections.  The reader keeps a
 * reference to @data.  NULL with a reason when it is not a stream this
 * iovd can read.
 */
StateReader *state_reader_new(GBytes *data, GError **errp);
void state_reader_free(StateReader *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(StateReader, state_reader_free)

bool state_has_section(StateReader *r, const char *name);
/*
 * Section @name, whose version must be 1..@max_version; *@version (may be
 * NULL) gets it.  Each section is opened once.
 */
StateSection *state_section(StateReader *r, const char *name,
                            uint16_t max_version, uint16_t *version,
                            GError **errp);
/*
 * Done with @s: false with the first error its getters met, or naming a
 * field nobody read.
 */
bool state_section_end(StateSection *s, GError **errp);
/* Done with the stream: false when a section was never opened. */
bool state_reader_end(StateReader *r, GError **errp);

bool state_has_field(StateSection *s, const char *name);
/* Call @fn for each field's name (a section of named entries). */
void state_foreach_field(StateSection *s,
                         void (*fn)(StateSection *s, const char *name,
                                    void *opaque),
                         void *opaque);
/* Field getters: a missing field or one of another type is an error. */
uint8_t state_get_u8(StateSection *s, const char *name);
uint16_t state_get_u16(StateSection *s, const char *name);
uint32_t state_get_u32(StateSection *s, const char *name);
uint64_t state_get_u64(StateSection *s, const char *name);
bool state_get_bool(StateSection *s, const char *name);
/* Exactly @len bytes into @buf. */
void state_get_bytes(StateSection *s, const char *name, void *buf,
                     size_t len);
/* Bytes of any length: a pointer into the stream, valid with the reader. */
const void *state_get_blob(StateSection *s, const char *name, size_t *len);
/* A new string (NULL when written absent). */
char *state_get_str(StateSection *s, const char *name);

/* Fields added after a section's first version: @def when absent. */
uint32_t state_get_u32_or(StateSection *s, const char *name, uint32_t def);
uint64_t state_get_u64_or(StateSection *s, const char *name, uint64_t def);
bool state_get_bool_or(StateSection *s, const char *name, bool def);

/* A loader's own check failed (a value out of range): the section's error. */
void G_GNUC_PRINTF(2, 3) state_section_fail(StateSection *s,
                                            const char *fmt, ...);
bool state_section_failed(StateSection *s);
const char *state_section_name(StateSection *s);

#endif
