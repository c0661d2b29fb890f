/*
 * Unit tests for hw/core/props.c: typed property tables.
 */
#include <check.h>

#include "hw/core/props.h"
#include "util/error.h"

enum { TEST_AIO_NATIVE, TEST_AIO_IO_URING };

static const char *const aio_names[] = { "native", "io_uring", NULL };

typedef struct TestState {
    char *drive;
    char *serial;
    char *label;
    bool ro;
    bool flag;
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    uint32_t queues;
    uint8_t clamp;
    uint64_t size;
    uint64_t small_size;
    int aio;
    int mode;
} TestState;

static const PropDef test_props[] = {
    PROP_DEF_STR("drive", TestState, drive, "backing node", .mandatory = true),
    PROP_DEF_STR("serial", TestState, serial, "serial number",
                 .defval = "S0"),
    PROP_DEF_STR("label", TestState, label, NULL),
    PROP_DEF_BOOL("read-only", TestState, ro, "refuse writes",
                  .defval = "off", .runtime = true),
    PROP_DEF_BOOL("flag", TestState, flag, "a flag"),
    PROP_DEF_UINT("u8", TestState, u8, "8 bits"),
    PROP_DEF_UINT("u16", TestState, u16, "16 bits"),
    PROP_DEF_UINT("u32", TestState, u32, "32 bits"),
    PROP_DEF_UINT("u64", TestState, u64, "64 bits"),
    PROP_DEF_UINT("queues", TestState, queues, "number of queues",
                  .min = 1, .max = 64, .defval = "4"),
    PROP_DEF_UINT("clamp", TestState, clamp, "max beyond the type",
                  .max = 1000),
    PROP_DEF_SIZE("size", TestState, size, "capacity", .min = 512,
                  .defval = "1M"),
    PROP_DEF_SIZE("small-size", TestState, small_size, "bounded size",
                  .max = 4096),
    PROP_DEF_ENUM("aio", TestState, aio, aio_names, "I/O engine",
                  .defval = "native"),
    PROP_DEF_ENUM("mode", TestState, mode, aio_names, "no default"),
    PROP_DEF_END
};

static Keyval *kv_parse(const char *str)
{
    GError *err = NULL;
    Keyval *kv = keyval_parse(str, NULL, &err);

    ck_assert_msg(kv != NULL, "'%s': %s", str, err ? err->message : "");
    return kv;
}

/* Apply @str to a fresh state, expecting success. */
static void apply_ok(TestState *s, const char *str)
{
    g_autoptr(Keyval) kv = kv_parse(str);
    GError *err = NULL;

    memset(s, 0, sizeof(*s));
    ck_assert_msg(props_apply(test_props, s, kv, &err), "'%s': %s", str,
                  err ? err->message : "");
    ck_assert_ptr_null(err);
    ck_assert_msg(keyval_check_unused(kv, &err), "'%s': %s", str,
                  err ? err->message : "");
}

/* Apply @str to a fresh state, expecting failure; returns the message. */
static char *apply_err(const char *str)
{
    g_autoptr(Keyval) kv = kv_parse(str);
    TestState s = { 0 };
    GError *err = NULL;
    char *msg;

    ck_assert_msg(!props_apply(test_props, &s, kv, &err), "'%s' applied",
                  str);
    ck_assert_ptr_nonnull(err);
    msg = g_strdup(err->message);
    g_error_free(err);
    props_free(test_props, &s);
    return msg;
}

/* Set one property by name, expecting failure; returns the message. */
static char *set_err(TestState *s, const char *name, const char *value)
{
    const PropDef *def = props_find(test_props, name);
    GError *err = NULL;
    char *msg;

    ck_assert_ptr_nonnull(def);
    ck_assert_msg(!prop_set_str(def, s, value, &err), "%s=%s accepted",
                  name, value);
    ck_assert_ptr_nonnull(err);
    msg = g_strdup(err->message);
    g_error_free(err);
    return msg;
}

static void set_ok(TestState *s, const char *name, const char *value)
{
    const PropDef *def = props_find(test_props, name);
    GError *err = NULL;

    ck_assert_ptr_nonnull(def);
    ck_assert_msg(prop_set_str(def, s, value, &err), "%s=%s: %s", name,
                  value, err ? err->message : "");
    ck_assert_ptr_null(err);
}

static char *get(TestState *s, const char *name)
{
    const PropDef *def = props_find(test_props, name);

    ck_assert_ptr_nonnull(def);
    return prop_get_str(def, s);
}

/* ---- lookup ------------------------------------------------------------ */

START_TEST(test_find)
{
    const PropDef *def = props_find(test_props, "queues");

    ck_assert_ptr_nonnull(def);
    ck_assert_str_eq(def->name, "queues");
    ck_assert_int_eq(def->type, PROP_UINT);
    ck_assert_uint_eq(def->size, sizeof(uint32_t));
    ck_assert_uint_eq(def->offset, offsetof(TestState, queues));
    ck_assert_ptr_eq(props_find(test_props, "drive"), &test_props[0]);
    ck_assert_ptr_null(props_find(test_props, "nope"));
    ck_assert_ptr_null(props_find(test_props, "queue"));
    ck_assert_ptr_null(props_find(test_props, ""));
}
END_TEST

START_TEST(test_type_names)
{
    ck_assert_str_eq(prop_type_name(props_find(test_props, "drive")), "str");
    ck_assert_str_eq(prop_type_name(props_find(test_props, "read-only")),
                     "bool");
    ck_assert_str_eq(prop_type_name(props_find(test_props, "u8")), "uint8");
    ck_assert_str_eq(prop_type_name(props_find(test_props, "u16")), "uint16");
    ck_assert_str_eq(prop_type_name(props_find(test_props, "u32")), "uint32");
    ck_assert_str_eq(prop_type_name(props_find(test_props, "u64")), "uint64");
    ck_assert_str_eq(prop_type_name(props_find(test_props, "size")), "size");
    ck_assert_str_eq(prop_type_name(props_find(test_props, "aio")), "enum");
}
END_TEST

/* ---- props_apply ------------------------------------------------------- */

START_TEST(test_apply_defaults)
{
    TestState s;

    apply_ok(&s, "drive=d0");
    ck_assert_str_eq(s.drive, "d0");
    ck_assert_str_eq(s.serial, "S0");
    ck_assert_ptr_null(s.label);
    ck_assert(!s.ro);
    ck_assert(!s.flag);
    ck_assert_uint_eq(s.u8, 0);
    ck_assert_uint_eq(s.u64, 0);
    ck_assert_uint_eq(s.queues, 4);
    ck_assert_uint_eq(s.size, 1 << 20);
    ck_assert_uint_eq(s.small_size, 0);
    ck_assert_int_eq(s.aio, TEST_AIO_NATIVE);
    ck_assert_int_eq(s.mode, 0);
    props_free(test_props, &s);
}
END_TEST

START_TEST(test_apply_defaults_overwrite)
{
    /* Defaults replace whatever the state held before, freeing strings. */
    g_autoptr(Keyval) kv = kv_parse("drive=d0");
    TestState s = { 0 };

    s.label = g_strdup("stale");
    s.serial = g_strdup("old");
    s.flag = true;
    s.u8 = 7;
    s.mode = 1;
    ck_assert(props_apply(test_props, &s, kv, NULL));
    ck_assert_ptr_null(s.label);
    ck_assert_str_eq(s.serial, "S0");
    ck_assert(!s.flag);
    ck_assert_uint_eq(s.u8, 0);
    ck_assert_int_eq(s.mode, 0);
    props_free(test_props, &s);
}
END_TEST

START_TEST(test_apply_all)
{
    TestState s;

    apply_ok(&s, "drive=d1,serial=X,,Y,label=l,read-only=on,flag=yes,"
             "u8=255,u16=0xffff,u32=4294967295,u64=18446744073709551615,"
             "queues=64,clamp=200,size=1.5G,small-size=4k,aio=io_uring,"
             "mode=io_uring");
    ck_assert_str_eq(s.drive, "d1");
    ck_assert_str_eq(s.serial, "X,Y");
    ck_assert_str_eq(s.label, "l");
    ck_assert(s.ro);
    ck_assert(s.flag);
    ck_assert_uint_eq(s.u8, UINT8_MAX);
    ck_assert_uint_eq(s.u16, UINT16_MAX);
    ck_assert_uint_eq(s.u32, UINT32_MAX);
    ck_assert_uint_eq(s.u64, UINT64_MAX);
    ck_assert_uint_eq(s.queues, 64);
    ck_assert_uint_eq(s.clamp, 200);
    ck_assert_uint_eq(s.size, 3ULL << 29);
    ck_assert_uint_eq(s.small_size, 4096);
    ck_assert_int_eq(s.aio, TEST_AIO_IO_URING);
    ck_assert_int_eq(s.mode, TEST_AIO_IO_URING);
    props_free(test_props, &s);
}
END_TEST

START_TEST(test_apply_fields_independent)
{
    /* Narrow fields are written at their own size, not over neighbours. */
    TestState s;

    apply_ok(&s, "drive=d,u8=1,u16=2,u32=3,u64=4,clamp=5");
    ck_assert_uint_eq(s.u8, 1);
    ck_assert_uint_eq(s.u16, 2);
    ck_assert_uint_eq(s.u32, 3);
    ck_assert_uint_eq(s.u64, 4);
    ck_assert_uint_eq(s.queues, 4);
    ck_assert_uint_eq(s.clamp, 5);
    ck_assert(!s.ro);
    ck_assert(!s.flag);
    props_free(test_props, &s);
}
END_TEST

START_TEST(test_apply_mandatory)
{
    g_autofree char *msg = apply_err("serial=x");
    TestState s = { 0 };
    GError *err = NULL;

    ck_assert_str_eq(msg, "property 'drive': a value is required");
    /* A NULL Keyval applies defaults only, so mandatory ones fail. */
    ck_assert(!props_apply(test_props, &s, NULL, &err));
    ck_assert_str_eq(err->message, "property 'drive': a value is required");
    g_error_free(err);
    props_free(test_props, &s);
}
END_TEST

START_TEST(test_apply_marks_used)
{
    g_autoptr(Keyval) kv = kv_parse("drive=d,bogus=1,queues=2,other=3");
    TestState s = { 0 };
    GError *err = NULL;

    ck_assert(props_apply(test_props, &s, kv, &err));
    ck_assert(!keyval_check_unused(kv, &err));
    ck_assert_str_eq(err->message, "unknown property 'bogus'");
    g_error_free(err);
    ck_assert_uint_eq(s.queues, 2);
    props_free(test_props, &s);
}
END_TEST

typedef struct CommonState {
    char *id;
    bool debug;
} CommonState;

typedef struct TwoTables {
    CommonState common;
    TestState dev;
} TwoTables;

static const PropDef common_props[] = {
    PROP_DEF_STR("id", TwoTables, common.id, "identifier", .mandatory = true),
    PROP_DEF_BOOL("debug", TwoTables, common.debug, "debug output"),
    PROP_DEF_END
};

START_TEST(test_apply_two_tables)
{
    g_autoptr(Keyval) kv = kv_parse("id=n0,drive=d0,debug=on,queues=8");
    TwoTables t = { 0 };
    GError *err = NULL;

    ck_assert(props_apply(common_props, &t, kv, &err));
    /* The device's keys are still unused after the common table. */
    ck_assert(!keyval_check_unused(kv, &err));
    ck_assert_str_eq(err->message, "unknown property 'drive'");
    g_clear_error(&err);

    ck_assert(props_apply(test_props, &t.dev, kv, &err));
    ck_assert(keyval_check_unused(kv, &err));
    ck_assert_str_eq(t.common.id, "n0");
    ck_assert(t.common.debug);
    ck_assert_str_eq(t.dev.drive, "d0");
    ck_assert_uint_eq(t.dev.queues, 8);
    props_free(common_props, &t);
    props_free(test_props, &t.dev);
    ck_assert_ptr_null(t.common.id);
}
END_TEST

START_TEST(test_apply_errors)
{
    g_autofree char *q0 = apply_err("drive=d,queues=0");
    g_autofree char *q65 = apply_err("drive=d,queues=65");
    g_autofree char *qjunk = apply_err("drive=d,queues=12x");
    g_autofree char *qneg = apply_err("drive=d,queues=-1");
    g_autofree char *aio = apply_err("drive=d,aio=foo");
    g_autofree char *ro = apply_err("drive=d,read-only=maybe");
    g_autofree char *size = apply_err("drive=d,size=1x");

    ck_assert_str_eq(q0, "property 'queues': value 0 out of range [1, 64]");
    ck_assert_str_eq(q65, "property 'queues': value 65 out of range [1, 64]");
    ck_assert_str_eq(qjunk, "property 'queues': '12x' is not a number "
                     "(unexpected 'x' after the digits)");
    ck_assert_str_eq(qneg, "property 'queues': '-1' is negative "
                     "(expected a number >= 0)");
    ck_assert_str_eq(aio, "property 'aio': 'foo' is not one of "
                     "native, io_uring");
    ck_assert_str_eq(ro, "property 'read-only': 'maybe' is not a boolean "
                     "(use on/off, yes/no or true/false)");
    ck_assert_str_eq(size, "property 'size': '1x' is not a valid size "
                     "(expected a number with an optional suffix B, K, M, "
                     "G, T, P or E)");
}
END_TEST

static const PropDef bad_default_props[] = {
    PROP_DEF_ENUM("aio", TestState, aio, aio_names, "engine",
                  .defval = "posix"),
    PROP_DEF_END
};

START_TEST(test_apply_bad_default)
{
    TestState s = { 0 };
    GError *err = NULL;

    ck_assert(!props_apply(bad_default_props, &s, NULL, &err));
    ck_assert_ptr_nonnull(strstr(err->message, "default"));
    ck_assert_ptr_nonnull(strstr(err->message, "'posix' is not one of"));
    g_error_free(err);
}
END_TEST

/* ---- prop_set_str: ranges ---------------------------------------------- */

START_TEST(test_range_explicit)
{
    TestState s = { 0 };
    g_autofree char *low = set_err(&s, "queues", "0");
    g_autofree char *high = set_err(&s, "queues", "0x41");

    ck_assert_str_eq(low, "property 'queues': value 0 out of range [1, 64]");
    ck_assert_str_eq(high, "property 'queues': value 65 out of range [1, 64]");
    set_ok(&s, "queues", "1");
    ck_assert_uint_eq(s.queues, 1);
    set_ok(&s, "queues", "64");
    ck_assert_uint_eq(s.queues, 64);
}
END_TEST

START_TEST(test_range_type_max)
{
    TestState s = { 0 };
    g_autofree char *u8 = set_err(&s, "u8", "256");
    g_autofree char *u16 = set_err(&s, "u16", "65536");
    g_autofree char *u32 = set_err(&s, "u32", "4294967296");
    g_autofree char *u64 = set_err(&s, "u64", "18446744073709551616");
    g_autofree char *clamp = set_err(&s, "clamp", "256");

    ck_assert_str_eq(u8, "property 'u8': value 256 out of range [0, 255]");
    ck_assert_str_eq(u16, "property 'u16': value 65536 out of range "
                     "[0, 65535]");
    ck_assert_str_eq(u32, "property 'u32': value 4294967296 out of range "
                     "[0, 4294967295]");
    ck_assert_str_eq(u64, "property 'u64': '18446744073709551616' is too "
                     "large (maximum 18446744073709551615)");
    /* A .max beyond what the field holds is clamped to the field. */
    ck_assert_str_eq(clamp, "property 'clamp': value 256 out of range "
                     "[0, 255]");
    ck_assert_uint_eq(s.u8, 0);
    ck_assert_uint_eq(s.u16, 0);
    ck_assert_uint_eq(s.u32, 0);
    ck_assert_uint_eq(s.clamp, 0);

    set_ok(&s, "u8", "255");
    ck_assert_uint_eq(s.u8, 255);
    set_ok(&s, "u16", "65535");
    ck_assert_uint_eq(s.u16, 65535);
    set_ok(&s, "u32", "0xffffffff");
    ck_assert_uint_eq(s.u32, UINT32_MAX);
    set_ok(&s, "u64", "0xffffffffffffffff");
    ck_assert_uint_eq(s.u64, UINT64_MAX);
}
END_TEST

START_TEST(test_range_size)
{
    TestState s = { 0 };
    g_autofree char *low = set_err(&s, "size", "511");
    g_autofree char *high = set_err(&s, "small-size", "4097");
    g_autofree char *ovf = set_err(&s, "size", "16E");

    ck_assert_str_eq(low, "property 'size': value 511 out of range "
                     "[512, 18446744073709551615]");
    ck_assert_str_eq(high, "property 'small-size': value 4097 out of range "
                     "[0, 4096]");
    ck_assert_str_eq(ovf, "property 'size': size '16E' is too large "
                     "(maximum 18446744073709551615 bytes)");
    set_ok(&s, "size", "512");
    ck_assert_uint_eq(s.size, 512);
    set_ok(&s, "size", "15E");
    ck_assert_uint_eq(s.size, 15ULL << 60);
    set_ok(&s, "small-size", "4K");
    ck_assert_uint_eq(s.small_size, 4096);
}
END_TEST

START_TEST(test_set_failure_keeps_value)
{
    TestState s = { 0 };

    set_ok(&s, "queues", "7");
    g_free(set_err(&s, "queues", "99"));
    g_free(set_err(&s, "queues", "x"));
    ck_assert_uint_eq(s.queues, 7);

    set_ok(&s, "read-only", "on");
    g_free(set_err(&s, "read-only", "2"));
    ck_assert(s.ro);

    set_ok(&s, "aio", "io_uring");
    g_free(set_err(&s, "aio", "Native"));
    g_free(set_err(&s, "aio", ""));
    ck_assert_int_eq(s.aio, TEST_AIO_IO_URING);

    set_ok(&s, "size", "2M");
    g_free(set_err(&s, "size", "1"));
    ck_assert_uint_eq(s.size, 2 << 20);
}
END_TEST

START_TEST(test_set_str_replaces)
{
    TestState s = { 0 };

    set_ok(&s, "serial", "first");
    ck_assert_str_eq(s.serial, "first");
    set_ok(&s, "serial", "second");    /* ASan catches a leaked "first" */
    ck_assert_str_eq(s.serial, "second");
    set_ok(&s, "serial", "");
    ck_assert_str_eq(s.serial, "");
    props_free(test_props, &s);
}
END_TEST

START_TEST(test_set_bool_spellings)
{
    static const char *const t[] = { "on", "yes", "true" };
    static const char *const f[] = { "off", "no", "false" };
    TestState s = { 0 };

    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        set_ok(&s, "flag", t[i]);
        ck_assert(s.flag);
        set_ok(&s, "flag", f[i]);
        ck_assert(!s.flag);
    }
}
END_TEST

/* ---- prop_get_str ------------------------------------------------------ */

START_TEST(test_get_str)
{
    TestState s;
    g_autofree char *drive = NULL, *label = NULL, *ro = NULL, *flag = NULL;
    g_autofree char *u8 = NULL, *u64 = NULL, *queues = NULL, *size = NULL;
    g_autofree char *aio = NULL;

    apply_ok(&s, "drive=d0,read-only=yes,u8=0x7f,u64=18446744073709551615,"
             "size=1.5k,aio=io_uring");
    drive = get(&s, "drive");
    label = get(&s, "label");
    ro = get(&s, "read-only");
    flag = get(&s, "flag");
    u8 = get(&s, "u8");
    u64 = get(&s, "u64");
    queues = get(&s, "queues");
    size = get(&s, "size");
    aio = get(&s, "aio");

    ck_assert_str_eq(drive, "d0");
    ck_assert_str_eq(label, "");    /* unset string */
    ck_assert_str_eq(ro, "on");
    ck_assert_str_eq(flag, "off");
    ck_assert_str_eq(u8, "127");
    ck_assert_str_eq(u64, "18446744073709551615");
    ck_assert_str_eq(queues, "4");
    ck_assert_str_eq(size, "1536");
    ck_assert_str_eq(aio, "io_uring");
    props_free(test_props, &s);
}
END_TEST

START_TEST(test_get_str_bad_enum)
{
    TestState s = { 0 };
    g_autofree char *v = NULL;

    s.aio = 7;
    v = get(&s, "aio");
    ck_assert_str_eq(v, "7");
}
END_TEST

START_TEST(test_round_trip)
{
    /* For every property: set from text, read back, set that, read again. */
    static const struct {
        const char *name, *in, *canonical;
    } cases[] = {
        { "drive", "a,b=c", "a,b=c" },
        { "read-only", "true", "on" },
        { "flag", "no", "off" },
        { "u8", "0xff", "255" },
        { "u16", "0x1234", "4660" },
        { "u32", "010", "8" },
        { "u64", "12345678901234567890", "12345678901234567890" },
        { "queues", "33", "33" },
        { "clamp", "0", "0" },
        { "size", "2G", "2147483648" },
        { "small-size", "1.5K", "1536" },
        { "aio", "native", "native" },
        { "mode", "io_uring", "io_uring" },
    };
    TestState s = { 0 }, s2 = { 0 };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        g_autofree char *out = NULL;
        g_autofree char *out2 = NULL;

        set_ok(&s, cases[i].name, cases[i].in);
        out = get(&s, cases[i].name);
        ck_assert_msg(strcmp(out, cases[i].canonical) == 0,
                      "%s=%s reads back as '%s', expected '%s'",
                      cases[i].name, cases[i].in, out, cases[i].canonical);
        set_ok(&s2, cases[i].name, out);
        out2 = get(&s2, cases[i].name);
        ck_assert_str_eq(out2, out);
    }
    ck_assert_uint_eq(s2.u16, 0x1234);
    ck_assert_uint_eq(s2.small_size, 1536);
    props_free(test_props, &s);
    props_free(test_props, &s2);
}
END_TEST

/* ---- props_free -------------------------------------------------------- */

START_TEST(test_free)
{
    TestState s;

    apply_ok(&s, "drive=d0,label=x,queues=9,read-only=on");
    ck_assert_ptr_nonnull(s.serial);
    props_free(test_props, &s);
    ck_assert_ptr_null(s.drive);
    ck_assert_ptr_null(s.serial);
    ck_assert_ptr_null(s.label);
    /* Other fields are left alone. */
    ck_assert_uint_eq(s.queues, 9);
    ck_assert(s.ro);
    /* Freeing again is harmless. */
    props_free(test_props, &s);
    ck_assert_ptr_null(s.drive);
}
END_TEST

/* ---- props_print_help -------------------------------------------------- */

START_TEST(test_print_help)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    g_auto(GStrv) lines = NULL;
    int n = 0;

    ck_assert_ptr_nonnull(f);
    props_print_help(test_props, f);
    ck_assert_int_eq(fclose(f), 0);

    lines = g_strsplit(buf, "\n", -1);
    free(buf);
    n = g_strv_length(lines);
    /* One line per property, then the empty string after the last '\n'. */
    ck_assert_int_eq(n, (int)ARRAY_SIZE(test_props));
    ck_assert_str_eq(lines[n - 1], "");

    ck_assert(g_str_has_prefix(lines[0], "  drive=<str>  "));
    ck_assert_ptr_nonnull(strstr(lines[0], "backing node"));
    ck_assert_ptr_nonnull(strstr(lines[0], "(mandatory)"));
    ck_assert_ptr_nonnull(strstr(lines[1], "(default: S0)"));
    ck_assert_str_eq(lines[2], "  label=<str>");
    ck_assert(g_str_has_prefix(lines[3], "  read-only=<bool>"));
    ck_assert_ptr_nonnull(strstr(lines[3], "(default: off)"));
    ck_assert_ptr_null(strstr(lines[4], "default"));
    ck_assert(g_str_has_prefix(lines[5], "  u8=<uint8>"));
    ck_assert_ptr_nonnull(strstr(lines[9], "(default: 4)"));
    ck_assert(g_str_has_prefix(lines[11], "  size=<size>"));
    ck_assert(g_str_has_prefix(lines[13], "  aio=<enum>"));
    ck_assert_ptr_nonnull(strstr(lines[13], "native, io_uring"));
    ck_assert_ptr_nonnull(strstr(lines[13], "(default: native)"));

    /* Descriptions line up in one column. */
    ck_assert_int_eq(strstr(lines[0], "backing node") - lines[0],
                     strstr(lines[13], "I/O engine") - lines[13]);
}
END_TEST

static Suite *props_suite(void)
{
    Suite *s = suite_create("props");
    TCase *tc;

    tc = tcase_create("table");
    tcase_add_test(tc, test_find);
    tcase_add_test(tc, test_type_names);
    suite_add_tcase(s, tc);

    tc = tcase_create("apply");
    tcase_add_test(tc, test_apply_defaults);
    tcase_add_test(tc, test_apply_defaults_overwrite);
    tcase_add_test(tc, test_apply_all);
    tcase_add_test(tc, test_apply_fields_independent);
    tcase_add_test(tc, test_apply_mandatory);
    tcase_add_test(tc, test_apply_marks_used);
    tcase_add_test(tc, test_apply_two_tables);
    tcase_add_test(tc, test_apply_errors);
    tcase_add_test(tc, test_apply_bad_default);
    suite_add_tcase(s, tc);

    tc = tcase_create("set");
    tcase_add_test(tc, test_range_explicit);
    tcase_add_test(tc, test_range_type_max);
    tcase_add_test(tc, test_range_size);
    tcase_add_test(tc, test_set_failure_keeps_value);
    tcase_add_test(tc, test_set_str_replaces);
    tcase_add_test(tc, test_set_bool_spellings);
    suite_add_tcase(s, tc);

    tc = tcase_create("get");
    tcase_add_test(tc, test_get_str);
    tcase_add_test(tc, test_get_str_bad_enum);
    tcase_add_test(tc, test_round_trip);
    suite_add_tcase(s, tc);

    tc = tcase_create("free-help");
    tcase_add_test(tc, test_free);
    tcase_add_test(tc, test_print_help);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(props_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
