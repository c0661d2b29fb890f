/*
 * Device state streams: round trip, and the versioning rule's refusals.
 */
#include "util/osdep.h"
#include "util/savestate.h"

#include <check.h>

/* A stream with one section "dev" (version @version) of every type. */
static GBytes *sample(uint16_t version, bool extra_field)
{
    g_autoptr(StateWriter) w = state_writer_new();
    static const uint8_t blob[5] = { 1, 2, 3, 4, 5 };

    state_begin(w, "dev", version);
    state_put_u8(w, "a8", 0xab);
    state_put_u16(w, "a16", 0xbeef);
    state_put_u32(w, "a32", 0xdeadbeef);
    state_put_u64(w, "a64", 0x0123456789abcdefull);
    state_put_bool(w, "flag", true);
    state_put_bytes(w, "blob", blob, sizeof(blob));
    state_put_str(w, "name", "nvme0");
    state_put_str(w, "none", NULL);
    if (extra_field) {
        state_put_u32(w, "later", 7);
    }
    state_end(w);
    state_begin(w, "dev/q/0", 1);
    state_end(w);
    return state_writer_finish(w);
}

/* Read every field of sample(); the section stays open on error. */
static StateSection *read_sample(StateReader *r, GError **errp)
{
    StateSection *s = state_section(r, "dev", 1, NULL, errp);
    uint8_t blob[5];
    g_autofree char *name = NULL, *none = NULL;

    if (!s) {
        return NULL;
    }
    ck_assert_uint_eq(state_get_u8(s, "a8"), 0xab);
    ck_assert_uint_eq(state_get_u16(s, "a16"), 0xbeef);
    ck_assert_uint_eq(state_get_u32(s, "a32"), 0xdeadbeef);
    ck_assert(state_get_u64(s, "a64") == 0x0123456789abcdefull);
    ck_assert(state_get_bool(s, "flag"));
    state_get_bytes(s, "blob", blob, sizeof(blob));
    ck_assert_uint_eq(blob[4], 5);
    name = state_get_str(s, "name");
    none = state_get_str(s, "none");
    ck_assert_str_eq(name, "nvme0");
    ck_assert_ptr_null(none);
    return s;
}

START_TEST(test_round_trip)
{
    g_autoptr(GBytes) b = sample(1, false);
    g_autoptr(GError) err = NULL;
    g_autoptr(StateReader) r = state_reader_new(b, &err);
    StateSection *s;

    ck_assert_msg(r, "%s", err ? err->message : "");
    ck_assert(state_has_section(r, "dev/q/0"));
    ck_assert(!state_has_section(r, "dev/q/1"));
    s = read_sample(r, &err);
    ck_assert_ptr_nonnull(s);
    /* A field added later reads as its default from an older stream. */
    ck_assert_uint_eq(state_get_u32_or(s, "later", 42), 42);
    ck_assert(state_section_end(s, &err));
    /* A section nobody opened is state this iovd would drop. */
    ck_assert(!state_reader_end(r, &err));
    ck_assert_str_eq(err->message, "device state: section 'dev/q/0' "
                     "(version 1) is not known to this iovd");
    g_clear_error(&err);
    s = state_section(r, "dev/q/0", 1, NULL, &err);
    ck_assert(s && state_section_end(s, &err));
    ck_assert(state_reader_end(r, &err));
}
END_TEST

START_TEST(test_newer_refused)
{
    g_autoptr(GBytes) b = sample(2, false);
    g_autoptr(GBytes) b2 = sample(1, true);
    g_autoptr(GError) err = NULL;
    g_autoptr(StateReader) r = state_reader_new(b, NULL);
    g_autoptr(StateReader) r2 = state_reader_new(b2, NULL);
    StateSection *s;

    /* A newer section version than the loader knows. */
    ck_assert_ptr_null(state_section(r, "dev", 1, NULL, &err));
    ck_assert_str_eq(err->message, "device state: section 'dev' has "
                     "version 2; this iovd loads versions 1 to 1");
    g_clear_error(&err);
    /* A field the loader does not read (a newer iovd added it). */
    s = read_sample(r2, &err);
    ck_assert(!state_section_end(s, &err));
    ck_assert_str_eq(err->message, "device state: section 'dev' version 1: "
                     "field 'later' is not known to this iovd");
}
END_TEST

START_TEST(test_field_errors)
{
    g_autoptr(GBytes) b = sample(1, false);
    g_autoptr(GError) err = NULL;
    g_autoptr(StateReader) r = state_reader_new(b, NULL);
    StateSection *s = state_section(r, "dev", 1, NULL, &err);
    uint8_t small[2];

    ck_assert_uint_eq(state_get_u64(s, "a32"), 0);     /* wrong type */
    ck_assert_uint_eq(state_get_u32(s, "gone"), 0);     /* missing: later */
    state_get_bytes(s, "blob", small, sizeof(small));
    ck_assert(state_section_failed(s));
    ck_assert(!state_section_end(s, &err));
    /* The first error is the one reported. */
    ck_assert_str_eq(err->message, "device state: section 'dev': field "
                     "'a32' is u32, expected u64");
    g_clear_error(&err);
    ck_assert_ptr_null(state_section(r, "dev", 1, NULL, &err));
    ck_assert_str_eq(err->message, "device state: section 'dev' read twice");
    g_clear_error(&err);
    ck_assert_ptr_null(state_section(r, "nosuch", 1, NULL, &err));
    ck_assert_str_eq(err->message, "device state: section 'nosuch' is "
                     "missing");
}
END_TEST

/* Every truncation and a corrupted length are refused, never overrun. */
START_TEST(test_malformed)
{
    g_autoptr(GBytes) b = sample(1, false);
    size_t size;
    const uint8_t *p = g_bytes_get_data(b, &size);
    g_autofree uint8_t *copy = g_memdup2(p, size);

    for (size_t n = 0; n < size; n++) {
        g_autoptr(GBytes) cut = g_bytes_new(p, n);
        g_autoptr(GError) err = NULL;
        StateReader *r = state_reader_new(cut, &err);

        ck_assert_msg(!r, "a stream cut at %zu bytes was accepted", n);
        ck_assert_ptr_nonnull(err);
    }
    /* The section length (bytes 20..23) pointing past the end. */
    stl_le_p(copy + 20, 0x7fffffff);
    {
        g_autoptr(GBytes) bad = g_bytes_new(copy, size);
        g_autoptr(GError) err = NULL;

        ck_assert_ptr_null(state_reader_new(bad, &err));
        ck_assert_ptr_nonnull(strstr(err->message, "runs past"));
    }
    /* A stream format this iovd does not know. */
    memcpy(copy, p, size);
    stl_le_p(copy + 8, 2);
    {
        g_autoptr(GBytes) bad = g_bytes_new(copy, size);
        g_autoptr(GError) err = NULL;

        ck_assert_ptr_null(state_reader_new(bad, &err));
        ck_assert_str_eq(err->message, "device state stream format 2 "
                         "(flags 0x0): this iovd reads format 1");
    }
}
END_TEST

static Suite *savestate_suite(void)
{
    Suite *s = suite_create("savestate");
    TCase *tc = tcase_create("stream");

    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_newer_refused);
    tcase_add_test(tc, test_field_errors);
    tcase_add_test(tc, test_malformed);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(savestate_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
