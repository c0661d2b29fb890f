/*
 * iovd-ctl end to end: a daemon with a monitor, the tool run as a
 * separate process against it ($IOVD_CTL, or build/iovd-ctl).
 */
#include "util/osdep.h"

#include <check.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "tests/qtest/libqos/qos-check.h"
#include "tests/qtest/libqos/iovd-proc.h"
#include "tests/qtest/libqos/qmp-client.h"
#include "tests/qtest/libqos/vfu-client.h"

static IovdProc *proc;
static char *qmp_path;

typedef struct CtlResult {
    int status;                 /* exit status, or -1 when killed */
    char *out, *err;
    json_object *json;          /* stdout parsed, when it is JSON */
} CtlResult;

static const char *ctl_binary(void)
{
    const char *bin = g_getenv("IOVD_CTL");

    return bin && *bin ? bin : "build/iovd-ctl";
}

static void ctl_result_free(CtlResult *r)
{
    g_free(r->out);
    g_free(r->err);
    json_object_put(r->json);
    g_free(r);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(CtlResult, ctl_result_free)

/* Run iovd-ctl -s QMP ARGS... (NULL-terminated) to completion. */
static CtlResult *ctl_argv(const char *const *args)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_autoptr(GError) err = NULL;
    CtlResult *r = g_new0(CtlResult, 1);
    int wstatus;

    g_ptr_array_add(argv, (gpointer)ctl_binary());
    for (const char *const *a = args; *a; a++) {
        g_ptr_array_add(argv, (gpointer)*a);
    }
    g_ptr_array_add(argv, NULL);
    ck_assert_msg(g_spawn_sync(NULL, (char **)argv->pdata, NULL,
                               G_SPAWN_STDIN_FROM_DEV_NULL, NULL, NULL,
                               &r->out, &r->err, &wstatus, &err),
                  "cannot run %s (set IOVD_CTL?): %s", ctl_binary(),
                  err ? err->message : "");
    r->status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
    r->json = json_tokener_parse(r->out);
    return r;
}

#define ctl(...) ctl_argv((const char *const[]){ "-s", qmp_path, \
                                                  __VA_ARGS__, NULL })

static void assert_ok(CtlResult *r)
{
    ck_assert_msg(r->status == 0, "iovd-ctl exited %d: %s", r->status,
                  r->err);
}

static void setup(void)
{
    qos_check_init();
    proc = iovd_proc_new();
    qmp_path = iovd_proc_path(proc, "qmp.sock");
    iovd_proc_add_args(proc, "-qmp", NULL);
    iovd_proc_add_argf(proc, "unix:%s,server=on,wait=off", qmp_path);
    iovd_proc_add_args(proc, "-device", NULL);
    iovd_proc_add_argf(proc, "pci-testdev,id=t0,socket=%s/t0.sock",
                       iovd_proc_tmpdir(proc));
    iovd_proc_start(proc);
}

static void teardown(void)
{
    if (proc) {
        iovd_proc_stop(proc);
        g_clear_pointer(&proc, iovd_proc_free);
    }
    g_clear_pointer(&qmp_path, g_free);
}

START_TEST(test_query)
{
    g_autoptr(CtlResult) st = ctl("query-status");
    g_autoptr(CtlResult) pci = ctl("query-pci");
    json_object *devs;

    assert_ok(st);
    ck_assert(qmp_get_bool(st->json, "running"));
    /* Pretty-printed: one member per line. */
    ck_assert_msg(strstr(st->out, "\n  \"running\": true"), "%s", st->out);

    assert_ok(pci);
    ck_assert_ptr_nonnull(pci->json);
    devs = qmp_get(json_object_array_get_idx(pci->json, 0), "devices");
    ck_assert_str_eq(qmp_get_str(json_object_array_get_idx(devs, 0),
                                 "qdev_id"), "t0");
}
END_TEST

START_TEST(test_compact_raw_quiet)
{
    g_autofree char *t0 = iovd_proc_path(proc, "t0.sock");
    g_autofree char *want = g_strdup_printf("%s\n", t0);
    g_autoptr(CtlResult) c = ctl("-c", "query-status");
    g_autoptr(CtlResult) r = ctl("-r", "qom-get", "t0", "property=socket");
    g_autoptr(CtlResult) q = ctl("-q", "stop");

    assert_ok(c);
    ck_assert_str_eq(c->out, "{\"running\":true,\"status\":\"running\"}\n");
    assert_ok(r);
    ck_assert_str_eq(r->out, want);
    assert_ok(q);
    ck_assert_str_eq(q->out, "");
}
END_TEST

/* -H: a query as the monitor's text (human-monitor-command "info X"). */
START_TEST(test_human)
{
    g_autoptr(CtlResult) pci = ctl("-H", "query-pci");
    g_autoptr(CtlResult) vfu = ctl("query-vfio-user", "-H");
    g_autoptr(CtlResult) st = ctl("-H", "query-status");
    g_autoptr(CtlResult) bad = ctl("-H", "device_del", "t0");

    assert_ok(pci);
    ck_assert_msg(strstr(pci->out, "PCI device 1b36:0005\n      id \"t0\"\n"),
                  "%s", pci->out);
    assert_ok(vfu);
    ck_assert_msg(strstr(vfu->out, "t0 (pci-testdev): "), "%s", vfu->out);
    ck_assert_msg(!strchr(vfu->out, '\r'), "%s", vfu->out);
    assert_ok(st);
    ck_assert_str_eq(st->out, "VM status: running\n");
    ck_assert_int_eq(bad->status, 2);
    ck_assert_msg(strstr(bad->err, "-H: for query commands"), "%s", bad->err);
}
END_TEST

/* Options may come after the command and its arguments too. */
START_TEST(test_options_anywhere)
{
    g_autoptr(CtlResult) c = ctl("query-status", "-c");
    g_autoptr(CtlResult) q = ctl("stop", "-q");
    g_autoptr(CtlResult) r = ctl("qom-get", "t0", "-r", "property=id");

    assert_ok(c);
    ck_assert_str_eq(c->out, "{\"running\":true,\"status\":\"running\"}\n");
    assert_ok(q);
    ck_assert_str_eq(q->out, "");
    assert_ok(r);
    ck_assert_str_eq(r->out, "t0\n");
}
END_TEST

START_TEST(test_device_add_del)
{
    g_autofree char *t1 = iovd_proc_path(proc, "t1.sock");
    g_autofree char *spec = g_strdup_printf("pci-testdev,id=t1,socket=%s",
                                            t1);
    g_autofree char *keyed = g_strdup_printf("driver=pci-testdev,id=t2,"
                                             "socket=%s/t2.sock",
                                             iovd_proc_tmpdir(proc));
    g_autoptr(CtlResult) add = ctl("device_add", spec);
    g_autoptr(CtlResult) add2 = NULL, pci = NULL, del = NULL, del2 = NULL;
    VfuClient *vc;
    struct stat st;

    assert_ok(add);
    ck_assert_str_eq(add->out, "{}\n");
    vc = vfu_client_open(t1);
    vfu_client_free(vc);
    add2 = ctl("device_add", keyed);
    assert_ok(add2);
    pci = ctl("query-pci");
    ck_assert_int_eq(json_object_array_length(qmp_get(
        json_object_array_get_idx(pci->json, 0), "devices")), 3);

    del = ctl("device_del", "t1");
    assert_ok(del);
    ck_assert_int_ne(stat(t1, &st), 0);
    del2 = ctl("device_del", "id=t1");
    ck_assert_int_eq(del2->status, 1);
    ck_assert_msg(strstr(del2->err, "DeviceNotFound"), "%s", del2->err);
}
END_TEST

START_TEST(test_typed_arguments)
{
    g_autoptr(CtlResult) add = ctl("blockdev-add",
                                   "driver=null,node-name=d0,size=1M",
                                   "read-only=on");
    g_autoptr(CtlResult) json = ctl("blockdev-add",
                                    "{\"driver\": \"null\", "
                                    "\"node-name\": \"d1\", "
                                    "\"cache\": {\"direct\": false}}");
    g_autoptr(CtlResult) blk = ctl("query-block");
    g_autoptr(CtlResult) resize = ctl("block_resize", "node-name=d1",
                                      "size=2M");
    g_autoptr(CtlResult) bad = ctl("blockdev-add",
                                   "driver=null,node-name=d2,read-only=maybe");
    g_autoptr(CtlResult) unknown = ctl("query-status", "x=1");
    g_autoptr(CtlResult) dotted = ctl("blockdev-add",
                                      "driver=null,node-name=d3,"
                                      "cache.direct=off");
    json_object *ins;

    assert_ok(add);
    assert_ok(json);
    assert_ok(blk);
    ins = qmp_get(json_object_array_get_idx(blk->json, 0), "inserted");
    ck_assert(qmp_get_bool(ins, "ro"));
    ck_assert_int_eq(qmp_get_int(qmp_get(ins, "image"), "virtual-size"),
                     1 << 20);
    assert_ok(resize);
    ck_assert_int_eq(bad->status, 2);
    ck_assert_msg(strstr(bad->err, "read-only"), "%s", bad->err);
    ck_assert_int_eq(unknown->status, 2);
    ck_assert_msg(strstr(unknown->err, "unknown key 'x'"), "%s",
                  unknown->err);
    assert_ok(dotted);
}
END_TEST

START_TEST(test_error_reply)
{
    g_autoptr(CtlResult) r = ctl("blockdev-del", "node-name=nope");
    g_autoptr(CtlResult) nf = ctl("no-such-command");

    ck_assert_int_eq(r->status, 1);
    ck_assert_msg(strstr(r->err, "GenericError"), "%s", r->err);
    ck_assert_str_eq(r->out, "");
    ck_assert_int_eq(nf->status, 1);
    ck_assert_msg(strstr(nf->err, "CommandNotFound"), "%s", nf->err);
}
END_TEST

START_TEST(test_events)
{
    /* A command first: its reply tells us the follower is negotiated. */
    const char *argv[] = { ctl_binary(), "-s", qmp_path, "-c", "--events",
                           "--count", "3", "--timeout", "10",
                           "query-status", NULL };
    g_autoptr(GError) err = NULL;
    g_autoptr(QmpClient) q = qmp_client_open(qmp_path);
    g_autofree char *sock = iovd_proc_path(proc, "t9.sock");
    g_autoptr(GString) out = g_string_new(NULL);
    g_auto(GStrv) lines = NULL;
    int out_fd, status;
    char buf[4096];
    ssize_t n;
    GPid pid;

    ck_assert(g_spawn_async_with_pipes(NULL, (char **)argv, NULL,
                                       G_SPAWN_DO_NOT_REAP_CHILD, NULL,
                                       NULL, &pid, NULL, &out_fd, NULL,
                                       &err));
    while (!strchr(out->str, '\n')) {
        n = read(out_fd, buf, sizeof(buf));
        ck_assert_int_gt(n, 0);
        g_string_append_len(out, buf, n);
    }
    json_object_put(qmp_ok(q, "stop", NULL));
    json_object_put(qmp_ok(q, "cont", NULL));
    json_object_put(qmp_okf(q, "device_add", "{'driver': 'pci-testdev', "
                            "'id': 't9', 'socket': '%s'}", sock));
    json_object_put(qmp_ok(q, "device_del", "{'id': 't9'}"));
    while ((n = read(out_fd, buf, sizeof(buf))) > 0) {
        g_string_append_len(out, buf, n);
    }
    close(out_fd);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    lines = g_strsplit(out->str, "\n", -1);
    ck_assert_int_eq(g_strv_length(lines), 5);
    ck_assert_str_eq(lines[0], "{\"running\":true,\"status\":\"running\"}");
    ck_assert_msg(strstr(lines[1], "\"event\":\"STOP\""), "%s", out->str);
    ck_assert_msg(strstr(lines[2], "\"event\":\"RESUME\""), "%s", out->str);
    ck_assert_msg(strstr(lines[3], "\"event\":\"DEVICE_DELETED\""), "%s",
                  out->str);
}
END_TEST

START_TEST(test_help_and_usage)
{
    g_autoptr(CtlResult) list = ctl_argv((const char *const[]){ "help",
                                                                NULL });
    g_autoptr(CtlResult) one = ctl_argv((const char *const[]){
        "help", "device_add", NULL });
    g_autoptr(CtlResult) bad = ctl_argv((const char *const[]){
        "help", "frobnicate", NULL });
    g_autoptr(CtlResult) nosock = ctl_argv((const char *const[]){
        "-s", "/nonexistent/qmp.sock", "query-status", NULL });
    g_autoptr(CtlResult) nocmd = ctl_argv((const char *const[]){
        "-s", qmp_path, NULL });

    assert_ok(list);
    ck_assert(strstr(list->out, "query-pci"));
    ck_assert(strstr(list->out, "device_add"));
    assert_ok(one);
    ck_assert(strstr(one->out, "driver=<str>"));
    ck_assert_int_eq(bad->status, 2);
    ck_assert_int_eq(nosock->status, 2);
    ck_assert_msg(strstr(nosock->err, "cannot connect"), "%s", nosock->err);
    ck_assert_int_eq(nocmd->status, 2);
}
END_TEST

START_TEST(test_socket_from_env)
{
    g_autoptr(CtlResult) r = NULL;

    g_setenv("IOVD_QMP_SOCKET", qmp_path, true);
    r = ctl_argv((const char *const[]){ "query-version", NULL });
    g_unsetenv("IOVD_QMP_SOCKET");
    assert_ok(r);
    ck_assert(g_str_has_prefix(qmp_get_str(r->json, "package"), "iovd "));
}
END_TEST

START_TEST(test_quit)
{
    g_autoptr(CtlResult) r = ctl("quit");

    assert_ok(r);
    iovd_proc_stop(proc);       /* it exited 0 on its own */
    g_clear_pointer(&proc, iovd_proc_free);
}
END_TEST

static Suite *ctl_suite(void)
{
    Suite *s = suite_create("iovd-ctl");
    TCase *tc = tcase_create("ctl");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_query);
    tcase_add_test(tc, test_compact_raw_quiet);
    tcase_add_test(tc, test_options_anywhere);
    tcase_add_test(tc, test_human);
    tcase_add_test(tc, test_device_add_del);
    tcase_add_test(tc, test_typed_arguments);
    tcase_add_test(tc, test_error_reply);
    tcase_add_test(tc, test_events);
    tcase_add_test(tc, test_help_and_usage);
    tcase_add_test(tc, test_socket_from_env);
    tcase_add_test(tc, test_quit);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    g_setenv("IOVD_QMP_STRICT", "1", true);
    return qos_check_run(ctl_suite());
}
