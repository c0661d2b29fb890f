/*
 * Unit tests for util/keyval.c: the keyval parser and the bool, uint and
 * size parsers.
 */
#include <check.h>

#include "util/keyval.h"
#include "util/error.h"

/* Parse @str that must fail; return the error message (caller frees). */
static char *parse_err(const char *str, const char *implied)
{
    GError *err = NULL;
    Keyval *kv = keyval_parse(str, implied, &err);
    char *msg;

    ck_assert_msg(kv == NULL, "'%s' parsed but should have failed", str);
    ck_assert_ptr_nonnull(err);
    msg = g_strdup(err->message);
    g_error_free(err);
    return msg;
}

static Keyval *parse_ok(const char *str, const char *implied)
{
    GError *err = NULL;
    Keyval *kv = keyval_parse(str, implied, &err);

    ck_assert_msg(kv != NULL, "'%s' failed: %s", str,
                  err ? err->message : "(no error set)");
    ck_assert_ptr_null(err);
    return kv;
}

static KeyvalPair *pair_at(Keyval *kv, guint i)
{
    ck_assert_uint_lt(i, kv->pairs->len);
    return g_ptr_array_index(kv->pairs, i);
}

/* ---- keyval_parse ------------------------------------------------------ */

START_TEST(test_parse_simple)
{
    g_autoptr(Keyval) kv = parse_ok("a=1,bb=two,c.d-e_f=x", NULL);

    ck_assert_uint_eq(kv->pairs->len, 3);
    ck_assert_str_eq(pair_at(kv, 0)->key, "a");
    ck_assert_str_eq(pair_at(kv, 0)->value, "1");
    ck_assert_str_eq(pair_at(kv, 1)->key, "bb");
    ck_assert_str_eq(pair_at(kv, 1)->value, "two");
    ck_assert_str_eq(pair_at(kv, 2)->key, "c.d-e_f");
    ck_assert_str_eq(pair_at(kv, 2)->value, "x");
    for (guint i = 0; i < kv->pairs->len; i++) {
        ck_assert(!pair_at(kv, i)->used);
    }
}
END_TEST

START_TEST(test_parse_empty)
{
    g_autoptr(Keyval) kv = parse_ok("", NULL);
    g_autoptr(Keyval) kv2 = parse_ok("", "driver");

    ck_assert_uint_eq(kv->pairs->len, 0);
    ck_assert_uint_eq(kv2->pairs->len, 0);
    ck_assert(keyval_check_unused(kv, NULL));
}
END_TEST

START_TEST(test_parse_empty_value)
{
    g_autoptr(Keyval) kv = parse_ok("a=,b=", NULL);

    ck_assert_uint_eq(kv->pairs->len, 2);
    ck_assert_str_eq(pair_at(kv, 0)->value, "");
    ck_assert_str_eq(pair_at(kv, 1)->value, "");
}
END_TEST

START_TEST(test_parse_value_with_equals)
{
    g_autoptr(Keyval) kv = parse_ok("hostfwd=tcp:127.0.0.1:2222-:22,x=a=b",
                                    NULL);

    ck_assert_str_eq(keyval_get(kv, "hostfwd"), "tcp:127.0.0.1:2222-:22");
    ck_assert_str_eq(keyval_get(kv, "x"), "a=b");
}
END_TEST

START_TEST(test_parse_trailing_comma)
{
    g_autoptr(Keyval) kv = parse_ok("a=1,b=2,", NULL);

    ck_assert_uint_eq(kv->pairs->len, 2);
    ck_assert_str_eq(keyval_get(kv, "b"), "2");
}
END_TEST

START_TEST(test_parse_escape)
{
    g_autoptr(Keyval) kv = parse_ok("file=a,,b,,,,c,x=1", NULL);
    g_autoptr(Keyval) kv2 = parse_ok("f=,,,g=x,,", NULL);
    g_autoptr(Keyval) kv3 = parse_ok("f=,,", NULL);

    ck_assert_uint_eq(kv->pairs->len, 2);
    ck_assert_str_eq(keyval_get(kv, "file"), "a,b,,c");
    ck_assert_str_eq(keyval_get(kv, "x"), "1");

    ck_assert_uint_eq(kv2->pairs->len, 2);
    ck_assert_str_eq(keyval_get(kv2, "f"), ",");
    ck_assert_str_eq(keyval_get(kv2, "g"), "x,");

    ck_assert_uint_eq(kv3->pairs->len, 1);
    ck_assert_str_eq(keyval_get(kv3, "f"), ",");
}
END_TEST

START_TEST(test_parse_escape_swallows_next_element)
{
    /* ",," is an escape, so "b=2" becomes part of a's value. */
    g_autoptr(Keyval) kv = parse_ok("a=1,,b=2", NULL);

    ck_assert_uint_eq(kv->pairs->len, 1);
    ck_assert_str_eq(keyval_get(kv, "a"), "1,b=2");
}
END_TEST

START_TEST(test_parse_implied)
{
    g_autoptr(Keyval) kv = parse_ok("nvme,id=n0,drive=d0", "driver");

    ck_assert_uint_eq(kv->pairs->len, 3);
    ck_assert_str_eq(pair_at(kv, 0)->key, "driver");
    ck_assert_str_eq(pair_at(kv, 0)->value, "nvme");
    ck_assert_str_eq(pair_at(kv, 1)->key, "id");
    ck_assert_str_eq(pair_at(kv, 2)->value, "d0");
}
END_TEST

START_TEST(test_parse_implied_only)
{
    g_autoptr(Keyval) kv = parse_ok("unix:/run/iovd/qmp.sock", "path");

    ck_assert_uint_eq(kv->pairs->len, 1);
    ck_assert_str_eq(keyval_get(kv, "path"), "unix:/run/iovd/qmp.sock");
}
END_TEST

START_TEST(test_parse_implied_escape)
{
    g_autoptr(Keyval) kv = parse_ok("a,,b,id=x", "driver");

    ck_assert_uint_eq(kv->pairs->len, 2);
    ck_assert_str_eq(keyval_get(kv, "driver"), "a,b");
    ck_assert_str_eq(keyval_get(kv, "id"), "x");
}
END_TEST

START_TEST(test_parse_implied_given_explicitly)
{
    /* The first element may still be written as key=value. */
    g_autoptr(Keyval) kv = parse_ok("driver=nvme,id=x", "driver");
    g_autoptr(Keyval) kv2 = parse_ok("id=x,driver=nvme", "driver");

    ck_assert_uint_eq(kv->pairs->len, 2);
    ck_assert_str_eq(keyval_get(kv, "driver"), "nvme");
    ck_assert_uint_eq(kv2->pairs->len, 2);
    ck_assert_str_eq(keyval_get(kv2, "driver"), "nvme");
    ck_assert_str_eq(pair_at(kv2, 0)->key, "id");
}
END_TEST

START_TEST(test_parse_implied_only_first)
{
    /* Only the first element may be a bare value. */
    g_autofree char *msg = parse_err("nvme,id=x,extra", "driver");

    ck_assert_str_eq(msg, "missing '=' in element 'extra' "
                     "(expected key=value)");
}
END_TEST

START_TEST(test_err_missing_equals)
{
    g_autofree char *msg = parse_err("a", NULL);
    g_autofree char *msg2 = parse_err("a=1,bogus,c=2", NULL);

    ck_assert_str_eq(msg, "missing '=' in element 'a' (expected key=value)");
    ck_assert_str_eq(msg2, "missing '=' in element 'bogus' "
                     "(expected key=value)");
}
END_TEST

START_TEST(test_err_empty_key)
{
    g_autofree char *msg = parse_err("a,=b", "driver");
    g_autofree char *msg2 = parse_err("a,=b", NULL);
    g_autofree char *msg3 = parse_err("=b", NULL);
    g_autofree char *msg4 = parse_err("x=1,=b,,c", NULL);

    ck_assert_str_eq(msg, "empty key in element '=b'");
    /* Without an implied key, "a" is the first thing wrong. */
    ck_assert_str_eq(msg2, "missing '=' in element 'a' (expected key=value)");
    ck_assert_str_eq(msg3, "empty key in element '=b'");
    /* The element is shown as typed, escapes included. */
    ck_assert_str_eq(msg4, "empty key in element '=b,,c'");
}
END_TEST

START_TEST(test_err_empty_element)
{
    g_autofree char *msg = parse_err(",a=b", NULL);
    g_autofree char *msg2 = parse_err(",a=b", "driver");

    ck_assert_ptr_nonnull(strstr(msg, "empty element"));
    ck_assert_ptr_nonnull(strstr(msg, "',a=b'"));
    ck_assert_ptr_nonnull(strstr(msg2, "empty element"));
}
END_TEST

START_TEST(test_err_invalid_key)
{
    g_autofree char *msg = parse_err("a b=1", NULL);
    g_autofree char *msg2 = parse_err("x=1,k:y=2", "driver");

    ck_assert_ptr_nonnull(strstr(msg, "invalid character ' ' in key 'a b'"));
    ck_assert_ptr_nonnull(strstr(msg, "element 'a b=1'"));
    ck_assert_ptr_nonnull(strstr(msg2, "invalid character ':' in key 'k:y'"));
}
END_TEST

START_TEST(test_err_duplicate)
{
    g_autofree char *msg = parse_err("id=a,x=1,id=b", NULL);
    g_autofree char *msg2 = parse_err("nvme,driver=virtio", "driver");

    ck_assert_str_eq(msg, "duplicate key 'id' in element 'id=b'");
    ck_assert_str_eq(msg2, "duplicate key 'driver' in element 'driver=virtio'");
}
END_TEST

START_TEST(test_err_empty_key_part)
{
    /* A fuzzer's "server....=/": a dotted key has no empty parts. */
    g_autofree char *msg = parse_err("server....=/", NULL);
    g_autofree char *msg2 = parse_err("a=1,.b=2", NULL);
    g_autofree char *msg3 = parse_err("a.=1", NULL);

    ck_assert_str_eq(msg, "empty part in dotted key 'server....' of element "
                     "'server....=/'");
    ck_assert_ptr_nonnull(strstr(msg2, "dotted key '.b'"));
    ck_assert_ptr_nonnull(strstr(msg3, "dotted key 'a.'"));
}
END_TEST

START_TEST(test_err_null_errp)
{
    /* Errors with errp == NULL just fail. */
    ck_assert_ptr_null(keyval_parse("a", NULL, NULL));
    ck_assert_ptr_null(keyval_parse("a=1,a=2", NULL, NULL));
}
END_TEST

/* ---- get / take / set / check_unused ----------------------------------- */

START_TEST(test_get_marks_used)
{
    g_autoptr(Keyval) kv = parse_ok("a=1,b=2", NULL);

    ck_assert_ptr_null(keyval_get(kv, "zz"));
    ck_assert(!pair_at(kv, 0)->used);
    ck_assert_str_eq(keyval_get(kv, "a"), "1");
    ck_assert(pair_at(kv, 0)->used);
    ck_assert(!pair_at(kv, 1)->used);
}
END_TEST

START_TEST(test_take)
{
    g_autoptr(Keyval) kv = parse_ok("a=1,b=2,c=3", NULL);
    g_autofree char *b = keyval_take(kv, "b");

    ck_assert_str_eq(b, "2");
    ck_assert_uint_eq(kv->pairs->len, 2);
    ck_assert_ptr_null(keyval_get(kv, "b"));
    ck_assert_ptr_null(keyval_take(kv, "b"));
    ck_assert_str_eq(pair_at(kv, 0)->key, "a");
    ck_assert_str_eq(pair_at(kv, 1)->key, "c");
}
END_TEST

START_TEST(test_set)
{
    g_autoptr(Keyval) kv = parse_ok("a=1", NULL);

    ck_assert_str_eq(keyval_get(kv, "a"), "1");
    keyval_set(kv, "a", "new");
    ck_assert_uint_eq(kv->pairs->len, 1);
    ck_assert(!pair_at(kv, 0)->used);
    ck_assert_str_eq(keyval_get(kv, "a"), "new");
    keyval_set(kv, "b", "2");
    ck_assert_uint_eq(kv->pairs->len, 2);
    ck_assert_str_eq(pair_at(kv, 1)->key, "b");
    ck_assert_str_eq(keyval_get(kv, "b"), "2");
}
END_TEST

START_TEST(test_new)
{
    g_autoptr(Keyval) kv = keyval_new();
    GError *err = NULL;

    ck_assert_uint_eq(kv->pairs->len, 0);
    ck_assert(keyval_check_unused(kv, NULL));
    keyval_set(kv, "x", "y");
    ck_assert(!keyval_check_unused(kv, &err));
    ck_assert_str_eq(err->message, "unknown property 'x'");
    g_error_free(err);
    keyval_free(NULL);  /* allowed, like g_free(NULL) */
}
END_TEST

START_TEST(test_check_unused)
{
    g_autoptr(Keyval) kv = parse_ok("nvme,zz=1,foo=2,id=x", "driver");
    GError *err = NULL;

    keyval_get(kv, "driver");
    keyval_get(kv, "id");
    ck_assert(!keyval_check_unused(kv, &err));
    /* The first unused key in command-line order, not alphabetical. */
    ck_assert_str_eq(err->message, "unknown property 'zz'");
    g_clear_error(&err);

    keyval_get(kv, "zz");
    ck_assert(!keyval_check_unused(kv, &err));
    ck_assert_str_eq(err->message, "unknown property 'foo'");
    g_clear_error(&err);

    keyval_get(kv, "foo");
    ck_assert(keyval_check_unused(kv, &err));
    ck_assert_ptr_null(err);
}
END_TEST

/* ---- parse_bool -------------------------------------------------------- */

START_TEST(test_bool)
{
    static const char *const t[] = { "on", "yes", "true" };
    static const char *const f[] = { "off", "no", "false" };
    bool b;

    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        b = false;
        ck_assert(parse_bool(t[i], &b, NULL));
        ck_assert(b);
        b = true;
        ck_assert(parse_bool(f[i], &b, NULL));
        ck_assert(!b);
    }
}
END_TEST

START_TEST(test_bool_errors)
{
    static const char *const bad[] = { "", "1", "0", "On ", "maybe", "o",
                                       "onn", "y" };
    GError *err = NULL;
    bool b = true;

    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        ck_assert_msg(!parse_bool(bad[i], &b, &err), "'%s'", bad[i]);
        ck_assert_ptr_nonnull(err);
        ck_assert(b);   /* untouched */
        g_clear_error(&err);
    }
    ck_assert(!parse_bool("maybe", &b, &err));
    ck_assert_str_eq(err->message, "'maybe' is not a boolean "
                     "(use on/off, yes/no or true/false)");
    g_error_free(err);
}
END_TEST

/* ---- parse_uint -------------------------------------------------------- */

static uint64_t uint_ok(const char *s)
{
    GError *err = NULL;
    uint64_t v = 0xdeadbeef;

    ck_assert_msg(parse_uint(s, &v, &err), "'%s': %s", s,
                  err ? err->message : "");
    ck_assert_ptr_null(err);
    return v;
}

static char *uint_err(const char *s)
{
    GError *err = NULL;
    uint64_t v = 42;
    char *msg;

    ck_assert_msg(!parse_uint(s, &v, &err), "'%s' parsed", s);
    ck_assert_ptr_nonnull(err);
    ck_assert_uint_eq(v, 42);
    msg = g_strdup(err->message);
    g_error_free(err);
    return msg;
}

START_TEST(test_uint)
{
    ck_assert_uint_eq(uint_ok("0"), 0);
    ck_assert_uint_eq(uint_ok("1"), 1);
    ck_assert_uint_eq(uint_ok("4096"), 4096);
    ck_assert_uint_eq(uint_ok("0x10"), 16);
    ck_assert_uint_eq(uint_ok("0XfF"), 255);
    ck_assert_uint_eq(uint_ok("010"), 8);
    ck_assert_uint_eq(uint_ok("00"), 0);
    ck_assert_uint_eq(uint_ok("18446744073709551615"), UINT64_MAX);
    ck_assert_uint_eq(uint_ok("0xffffffffffffffff"), UINT64_MAX);
    ck_assert_uint_eq(uint_ok("01777777777777777777777"), UINT64_MAX);
}
END_TEST

START_TEST(test_uint_errors)
{
    g_autofree char *neg = uint_err("-1");
    g_autofree char *junk = uint_err("12x");
    g_autofree char *ovf = uint_err("18446744073709551616");
    g_autofree char *ovf_hex = uint_err("0x10000000000000000");
    g_autofree char *empty = uint_err("");
    g_autofree char *octal = uint_err("08");
    g_autofree char *hex_only = uint_err("0x");
    g_autofree char *word = uint_err("abc");

    ck_assert_str_eq(neg, "'-1' is negative (expected a number >= 0)");
    ck_assert_str_eq(junk, "'12x' is not a number "
                     "(unexpected 'x' after the digits)");
    ck_assert_str_eq(ovf, "'18446744073709551616' is too large "
                     "(maximum 18446744073709551615)");
    ck_assert_ptr_nonnull(strstr(ovf_hex, "too large"));
    ck_assert_str_eq(empty, "'' is not a number");
    ck_assert_ptr_nonnull(strstr(octal, "octal"));
    ck_assert_str_eq(hex_only, "'0x' is not a number");
    ck_assert_str_eq(word, "'abc' is not a number");

    g_free(uint_err("-0"));
    g_free(uint_err("+1"));
    g_free(uint_err(" 1"));
    g_free(uint_err("1 "));
    g_free(uint_err("1.5"));
    g_free(uint_err("1k"));
    g_free(uint_err("0x1g"));
    g_free(uint_err("99999999999999999999999999"));
}
END_TEST

/* ---- parse_size -------------------------------------------------------- */

static uint64_t size_ok(const char *s)
{
    GError *err = NULL;
    uint64_t v = 0xdeadbeef;

    ck_assert_msg(parse_size(s, &v, &err), "'%s': %s", s,
                  err ? err->message : "");
    ck_assert_ptr_null(err);
    return v;
}

static char *size_err(const char *s)
{
    GError *err = NULL;
    uint64_t v = 42;
    char *msg;

    ck_assert_msg(!parse_size(s, &v, &err), "'%s' parsed", s);
    ck_assert_ptr_nonnull(err);
    ck_assert_uint_eq(v, 42);
    msg = g_strdup(err->message);
    g_error_free(err);
    return msg;
}

START_TEST(test_size)
{
    ck_assert_uint_eq(size_ok("0"), 0);
    ck_assert_uint_eq(size_ok("512"), 512);
    ck_assert_uint_eq(size_ok("512b"), 512);
    ck_assert_uint_eq(size_ok("512B"), 512);
    ck_assert_uint_eq(size_ok("1k"), 1024);
    ck_assert_uint_eq(size_ok("1K"), 1024);
    ck_assert_uint_eq(size_ok("4M"), 4ULL << 20);
    ck_assert_uint_eq(size_ok("1G"), 1ULL << 30);
    ck_assert_uint_eq(size_ok("2T"), 2ULL << 40);
    ck_assert_uint_eq(size_ok("3P"), 3ULL << 50);
    ck_assert_uint_eq(size_ok("15E"), 15ULL << 60);
    ck_assert_uint_eq(size_ok("010"), 10);    /* sizes are decimal */
    ck_assert_uint_eq(size_ok("0x10"), 16);
    ck_assert_uint_eq(size_ok("0x10M"), 16ULL << 20);
    ck_assert_uint_eq(size_ok("18446744073709551615"), UINT64_MAX);
}
END_TEST

START_TEST(test_size_fraction)
{
    ck_assert_uint_eq(size_ok("1.5k"), 1536);
    ck_assert_uint_eq(size_ok("1.5G"), 3ULL << 29);
    ck_assert_uint_eq(size_ok("0.5M"), 512 * 1024);
    ck_assert_uint_eq(size_ok("0.25K"), 256);
    /* Fractions of bytes round down. */
    ck_assert_uint_eq(size_ok("1.1k"), 1126);
    ck_assert_uint_eq(size_ok("0.001k"), 1);
    ck_assert_uint_eq(size_ok("0.0001k"), 0);
    /* Exact with many digits: 0.999...9 E is just under 1 E. */
    ck_assert_uint_eq(size_ok("0.99999999999999999999999999E"),
                      (1ULL << 60) - 1);
    ck_assert_uint_eq(size_ok("15.9375E"), 0xFF00000000000000ULL);
    /* The largest size, reached through a fraction. */
    ck_assert_uint_eq(size_ok("15.99999999999999999999E"), UINT64_MAX);
    ck_assert_uint_eq(size_ok("2.0"), 2);
    ck_assert_uint_eq(size_ok("2.000B"), 2);
}
END_TEST

START_TEST(test_size_errors)
{
    g_autofree char *ovf = size_err("16E");
    g_autofree char *ovf2 = size_err("18446744073709551616");
    g_autofree char *ovf3 = size_err("16.5E");
    g_autofree char *ovf4 = size_err("16384P");
    g_autofree char *neg = size_err("-1");
    g_autofree char *junk = size_err("12x");
    g_autofree char *frac_bytes = size_err("1.5");

    ck_assert_str_eq(ovf, "size '16E' is too large "
                     "(maximum 18446744073709551615 bytes)");
    ck_assert_ptr_nonnull(strstr(ovf2, "too large"));
    ck_assert_ptr_nonnull(strstr(ovf3, "too large"));
    ck_assert_ptr_nonnull(strstr(ovf4, "too large"));
    ck_assert_str_eq(neg, "size '-1' is negative");
    ck_assert_str_eq(junk, "'12x' is not a valid size (expected a number "
                     "with an optional suffix B, K, M, G, T, P or E)");
    ck_assert_str_eq(frac_bytes, "size '1.5' is not a whole number of bytes");

    g_free(size_err(""));
    g_free(size_err("k"));
    g_free(size_err("1KB"));
    g_free(size_err("1KiB"));
    g_free(size_err("1 k"));
    g_free(size_err(" 1k"));
    g_free(size_err("1.k"));
    g_free(size_err(".5k"));
    g_free(size_err("1.5.5k"));
    g_free(size_err("0x"));
    g_free(size_err("0x1.8k"));
    g_free(size_err("+1k"));
    g_free(size_err("1.5B"));
}
END_TEST

START_TEST(test_check_id)
{
    GError *err = NULL;

    ck_assert(check_id("id", "a", SIZE_MAX, NULL));
    ck_assert(check_id("id", "n0.disk-1_x", SIZE_MAX, NULL));
    ck_assert(check_id("node-name", "abc", 3, NULL));
    ck_assert(!check_id("node-name", "abcd", 3, &err));
    ck_assert_str_eq(err->message, "property 'node-name': 'abcd' is not a "
                     "valid identifier (a letter, then letters, digits, "
                     "'-', '_', '.'; at most 3)");
    g_clear_error(&err);
    ck_assert(!check_id("id", "", SIZE_MAX, NULL));
    ck_assert(!check_id("id", "0a", SIZE_MAX, NULL));
    ck_assert(!check_id("id", "a b", SIZE_MAX, &err));
    ck_assert_str_eq(err->message, "property 'id': 'a b' is not a valid "
                     "identifier (a letter, then letters, digits, '-', '_', "
                     "'.')");
    g_clear_error(&err);
}
END_TEST

/* keyval_to_str() parses back into the same pairs, commas and all. */
START_TEST(test_to_str_round_trip)
{
    static const char *const texts[] = {
        "driver=nvme,id=n0,serial=a,,b,,,,c",
        "a=,b=x=y,c.d.e=1",
        "k=,,",
    };

    for (unsigned i = 0; i < G_N_ELEMENTS(texts); i++) {
        g_autoptr(Keyval) kv = keyval_parse(texts[i], NULL, NULL);
        g_autofree char *str = keyval_to_str(kv);
        g_autoptr(Keyval) back = keyval_parse(str, NULL, NULL);

        ck_assert_str_eq(str, texts[i]);
        ck_assert_uint_eq(back->pairs->len, kv->pairs->len);
        for (guint k = 0; k < kv->pairs->len; k++) {
            KeyvalPair *p = g_ptr_array_index(kv->pairs, k);
            KeyvalPair *q = g_ptr_array_index(back->pairs, k);

            ck_assert_str_eq(p->key, q->key);
            ck_assert_str_eq(p->value, q->value);
        }
    }
}
END_TEST

static Suite *keyval_suite(void)
{
    Suite *s = suite_create("keyval");
    TCase *tc;

    tc = tcase_create("parse");
    tcase_add_test(tc, test_parse_simple);
    tcase_add_test(tc, test_parse_empty);
    tcase_add_test(tc, test_parse_empty_value);
    tcase_add_test(tc, test_parse_value_with_equals);
    tcase_add_test(tc, test_parse_trailing_comma);
    tcase_add_test(tc, test_parse_escape);
    tcase_add_test(tc, test_parse_escape_swallows_next_element);
    tcase_add_test(tc, test_parse_implied);
    tcase_add_test(tc, test_parse_implied_only);
    tcase_add_test(tc, test_parse_implied_escape);
    tcase_add_test(tc, test_parse_implied_given_explicitly);
    tcase_add_test(tc, test_parse_implied_only_first);
    suite_add_tcase(s, tc);

    tc = tcase_create("parse-errors");
    tcase_add_test(tc, test_err_missing_equals);
    tcase_add_test(tc, test_err_empty_key);
    tcase_add_test(tc, test_err_empty_element);
    tcase_add_test(tc, test_err_invalid_key);
    tcase_add_test(tc, test_err_duplicate);
    tcase_add_test(tc, test_err_empty_key_part);
    tcase_add_test(tc, test_err_null_errp);
    suite_add_tcase(s, tc);

    tc = tcase_create("access");
    tcase_add_test(tc, test_get_marks_used);
    tcase_add_test(tc, test_take);
    tcase_add_test(tc, test_set);
    tcase_add_test(tc, test_new);
    tcase_add_test(tc, test_check_unused);
    tcase_add_test(tc, test_to_str_round_trip);
    suite_add_tcase(s, tc);

    tc = tcase_create("parsers");
    tcase_add_test(tc, test_check_id);
    tcase_add_test(tc, test_bool);
    tcase_add_test(tc, test_bool_errors);
    tcase_add_test(tc, test_uint);
    tcase_add_test(tc, test_uint_errors);
    tcase_add_test(tc, test_size);
    tcase_add_test(tc, test_size_fraction);
    tcase_add_test(tc, test_size_errors);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(keyval_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
