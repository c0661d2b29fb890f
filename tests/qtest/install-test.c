/*
 * make install DESTDIR=... as a packager runs it: the file list, the
 * prefix substituted into the systemd units and man pages, and man pages
 * that say what --help says.
 */
#include "util/osdep.h"
#include "tests/qtest/libqos/qos-check.h"

#include <sys/wait.h>

static const char *const installed[] = {
    "usr/bin/iovd", "usr/bin/iovd-ctl",
    "usr/share/man/man1/iovd.1", "usr/share/man/man1/iovd-ctl.1",
    "usr/lib/systemd/system/iovd@.service",
    "usr/lib/systemd/system/iovd@.socket",
    "usr/share/doc/iovd/qmp.md", "usr/share/doc/iovd/README.md",
    "usr/share/doc/iovd/architecture.md",
    "usr/share/doc/iovd/iovd.conf.example",
};

static char *read_file(const char *dir, const char *rel)
{
    g_autofree char *path = g_build_filename(dir, rel, NULL);
    char *text = NULL;

    ck_assert_msg(g_file_get_contents(path, &text, NULL, NULL), "%s", path);
    return text;
}

START_TEST(test_make_install)
{
    g_autofree char *dest = g_dir_make_tmp("iovd-install-XXXXXX", NULL);
    g_autofree char *build = g_path_get_dirname(iovd_binary());
    g_autofree char *destdir = g_strdup_printf("DESTDIR=%s", dest);
    g_autofree char *builddir = g_strdup_printf("BUILD=%s", build);
    const char *argv[] = { "make", "-s", "--no-print-directory", "install",
                           destdir, "PREFIX=/usr", builddir, NULL };
    g_auto(GStrv) env = g_get_environ();
    g_autofree char *out = NULL, *err = NULL, *unit = NULL, *sock = NULL;
    g_autofree char *man = NULL, *ctlman = NULL;
    g_autofree char *rm = g_strdup_printf("rm -rf '%s'", dest);
    int status;

    /* a make of our own, not a sub-make of the one running the suite */
    env = g_environ_unsetenv(env, "MAKEFLAGS");
    env = g_environ_unsetenv(env, "MFLAGS");
    env = g_environ_unsetenv(env, "MAKELEVEL");
    ck_assert(g_spawn_sync(NULL, (char **)argv, env, G_SPAWN_SEARCH_PATH,
                           NULL, NULL, &out, &err, &status, NULL));
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "make install: %s%s", out, err);
    for (size_t i = 0; i < G_N_ELEMENTS(installed); i++) {
        g_autofree char *p = g_build_filename(dest, installed[i], NULL);

        ck_assert_msg(g_file_test(p, G_FILE_TEST_IS_REGULAR), "missing %s",
                      installed[i]);
    }
    /* the prefix reached every placeholder */
    unit = read_file(dest, "usr/lib/systemd/system/iovd@.service");
    ck_assert_msg(strstr(unit, "ExecStart=/usr/bin/iovd $IOVD_ARGS"), "%s",
                  unit);
    ck_assert_msg(strstr(unit, "Type=notify"), "%s", unit);
    ck_assert_msg(strstr(unit, "NoNewPrivileges=yes"), "%s", unit);
    sock = read_file(dest, "usr/lib/systemd/system/iovd@.socket");
    ck_assert_msg(strstr(sock, "FileDescriptorName=%i"), "%s", sock);
    man = read_file(dest, "usr/share/man/man1/iovd.1");
    ctlman = read_file(dest, "usr/share/man/man1/iovd-ctl.1");
    ck_assert_msg(!strstr(man, "@PREFIX@") && !strstr(man, "@UNITDIR@"),
                  "%s", man);
    ck_assert_msg(strstr(man, "/usr/share/doc/iovd/qmp.md"), "%s", man);
    /* the options come from --help: the newest ones are there */
    ck_assert_msg(strstr(man, "-sandbox on|off|log"), "%s", man);
    ck_assert_msg(strstr(man, "-run-with user=U"), "%s", man);
    ck_assert_msg(strstr(ctlman, "--events"), "%s", ctlman);
    ck_assert_int_eq(system(rm), 0);
}
END_TEST

static Suite *install_suite(void)
{
    Suite *s = suite_create("install");
    TCase *tc = tcase_create("install");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_make_install);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return qos_check_run(install_suite());
}
