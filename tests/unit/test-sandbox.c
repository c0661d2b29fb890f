/*
 * Unit tests for util/sandbox.c: each case confines a child process and
 * checks what it may still do (threads, the allowed socket families,
 * files, ioctls) and that a forbidden call kills it with SIGSYS, saying
 * which call.
 */
#include <check.h>

#include "util/osdep.h"
#include "util/sandbox.h"

#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>

typedef void (*ChildFn)(void);

/*
 * Run @fn in a child confined by sandbox_confine(); returns its wait
 * status, with what it wrote to stderr in *err.
 */
static int run_confined(ChildFn fn, bool on, char **err)
{
    int pipefd[2];
    GString *out = g_string_new(NULL);
    char buf[256];
    ssize_t n;
    int status;
    pid_t pid;

    ck_assert_int_eq(pipe(pipefd), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        GError *gerr = NULL;

        dup2(pipefd[1], STDERR_FILENO);
        close(pipefd[0]);
        sandbox_set_mode(on ? SANDBOX_ON : SANDBOX_OFF);
        if (!sandbox_confine(&gerr)) {
            fprintf(stderr, "confine: %s\n", gerr->message);
            _exit(2);
        }
        fn();
        _exit(0);
    }
    close(pipefd[1]);
    while ((n = read(pipefd[0], buf, sizeof(buf))) > 0) {
        g_string_append_len(out, buf, n);
    }
    close(pipefd[0]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    *err = g_string_free(out, false);
    return status;
}

static void assert_killed(int status, const char *err, int nr)
{
    g_autofree char *want = g_strdup_printf("forbidden system call %d ", nr);

    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS,
                  "status 0x%x, stderr: %s", status, err);
    ck_assert_msg(strstr(err, want), "stderr: %s", err);
}

static void assert_exited_ok(int status, const char *err)
{
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "status 0x%x, stderr: %s", status, err);
}

static gpointer thread_fn(gpointer opaque)
{
    return opaque;
}

/* What a confined daemon does all day. */
static void child_allowed(void)
{
    static const int families[] = { AF_UNIX, AF_INET, AF_INET6 };
    char path[] = "/tmp/iovd-sandbox-XXXXXX";
    GThread *t = g_thread_new("confined", thread_fn, (gpointer)path);
    struct termios tio;
    int sv[2], fd;
    uint64_t size;

    if (g_thread_join(t) != path) {
        _exit(3);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(families); i++) {
        fd = socket(families[i], SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            _exit(4);
        }
        close(fd);
    }
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
        _exit(5);
    }
    /* Resuming an interrupted timed wait (nothing to resume: EINTR). */
    if (syscall(__NR_restart_syscall) != -1 || errno != EINTR) {
        _exit(8);
    }
    fd = mkstemp(path);
    if (fd < 0 || ftruncate(fd, 4096) < 0 || fdatasync(fd) < 0) {
        _exit(6);
    }
    /* allowed requests fail as usual on the wrong kind of fd */
    if (ioctl(fd, BLKGETSIZE64, &size) == 0 || ioctl(fd, TCGETS, &tio) == 0) {
        _exit(7);
    }
    close(fd);
    unlink(path);
}

START_TEST(test_allowed)
{
    g_autofree char *err = NULL;
    int status = run_confined(child_allowed, true, &err);

    assert_exited_ok(status, err);
}
END_TEST

#ifndef CONFIG_SANITIZERS
static void child_fork(void)
{
    pid_t pid = fork();

    if (pid == 0) {
        _exit(0);
    }
}
#endif

static void child_exec(void)
{
    char *argv[] = { (char *)"/bin/true", NULL };

    execv(argv[0], argv);
}

static void child_packet_socket(void)
{
    socket(AF_PACKET, SOCK_RAW, 0);
}

static void child_tiocsti(void)
{
    char c = 'x';

    ioctl(STDIN_FILENO, TIOCSTI, &c);
}

static void child_setuid(void)
{
    if (setuid(0) < 0) {
        _exit(3);
    }
}

START_TEST(test_forbidden)
{
    g_autofree char *err = NULL;
    int status;

    status = run_confined(child_exec, true, &err);
    assert_killed(status, err, __NR_execve);
    g_free(err);
    status = run_confined(child_packet_socket, true, &err);
    assert_killed(status, err, __NR_socket);
    g_free(err);
    status = run_confined(child_tiocsti, true, &err);
    assert_killed(status, err, __NR_ioctl);
    g_free(err);
    status = run_confined(child_setuid, true, &err);
    assert_killed(status, err, __NR_setuid);
#ifdef CONFIG_SANITIZERS
    /* LeakSanitizer's exit-time tracer needs clone without CLONE_THREAD. */
    printf("SKIP: test_forbidden_fork: sanitizer builds allow fork-like "
           "clone for LeakSanitizer\n");
#else
    g_free(err);
    status = run_confined(child_fork, true, &err);
    assert_killed(status, err, __NR_clone);
#endif
}
END_TEST

START_TEST(test_off)
{
    g_autofree char *err = NULL;
    int status = run_confined(child_exec, false, &err);

    assert_exited_ok(status, err);
}
END_TEST

START_TEST(test_run_as_errors)
{
    GError *err = NULL;

    ck_assert(!sandbox_set_run_as("no-such-user-iovd", &err));
    ck_assert_msg(strstr(err->message, "not found"), "%s", err->message);
    g_clear_error(&err);
    ck_assert(!sandbox_set_run_as("root", &err));
    ck_assert_msg(strstr(err->message, "root"), "%s", err->message);
    g_clear_error(&err);
    ck_assert(!sandbox_set_run_as("0:0", &err));
    g_clear_error(&err);
    ck_assert(!sandbox_set_run_as("12:x", &err));
    g_clear_error(&err);
}
END_TEST

static Suite *sandbox_suite(void)
{
    Suite *s = suite_create("sandbox");
    TCase *tc = tcase_create("seccomp");

    tcase_add_test(tc, test_allowed);
    tcase_add_test(tc, test_forbidden);
    tcase_add_test(tc, test_off);
    tcase_add_test(tc, test_run_as_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sandbox_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
