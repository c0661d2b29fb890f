/*
 * wakeup-bench: what one timed sleep and wake-up costs this machine, the
 * floor under anything that must look at memory nobody notifies about
 * (NVMe doorbells in guest-mapped memory, on an idle polling iothread).
 * For each interval, one thread sleeps in epoll_pwait2() with that timeout
 * for two seconds; it reports the CPU time it was charged per wake-up.
 *
 *   wakeup-bench [INTERVAL_US ...]      (default: 500 1000 2000)
 *
 * One line per interval: "wakeup-bench: interval_us=... wakeups_per_s=...
 * cpu_us_per_wakeup=... cpu_pct=...", then the round trip of one byte
 * between two processes over a UNIX socket, both sleeping in read() (the
 * floor under any request/reply protocol, QMP's included):
 * "wakeup-bench: pingpong_us=..."
 */
#include "util/osdep.h"

#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

static double cpu_us(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec * 1e6 + ru.ru_utime.tv_usec +
           ru.ru_stime.tv_sec * 1e6 + ru.ru_stime.tv_usec;
}

int main(int argc, char **argv)
{
    static const char *const defaults[] = { "500", "1000", "2000" };
    const char *const *args = argc > 1 ? (const char *const *)argv + 1
                                       : defaults;
    int n = argc > 1 ? argc - 1 : (int)G_N_ELEMENTS(defaults);
    int ep = epoll_create1(EPOLL_CLOEXEC);

    if (ep < 0) {
        perror("epoll_create1");
        return 1;
    }
    for (int i = 0; i < n; i++) {
        long us = atol(args[i]);
        struct timespec ts = { us / 1000000, us % 1000000 * 1000 };
        struct epoll_event ev;
        double c0 = cpu_us(), c1;
        int64_t t0 = clock_ns(), t1;
        unsigned wakeups = 0;

        if (us <= 0) {
            fprintf(stderr, "wakeup-bench: bad interval '%s'\n", args[i]);
            return 2;
        }
        do {
            epoll_pwait2(ep, &ev, 1, &ts, NULL);
            wakeups++;
        } while (clock_ns() - t0 < 2000000000LL);
        c1 = cpu_us();
        t1 = clock_ns();
        printf("wakeup-bench: interval_us=%ld wakeups_per_s=%.0f "
               "cpu_us_per_wakeup=%.1f cpu_pct=%.2f\n", us,
               wakeups * 1e9 / (t1 - t0), (c1 - c0) / wakeups,
               (c1 - c0) * 100e3 / (t1 - t0));
    }
    close(ep);
    {
        int sv[2];
        char b = 0;
        pid_t pid;
        int64_t t0;
        unsigned rounds = 0;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
            perror("socketpair");
            return 1;
        }
        pid = fork();
        if (pid == 0) {
            close(sv[0]);
            while (read(sv[1], &b, 1) == 1 && write(sv[1], &b, 1) == 1) {
            }
            _exit(0);
        }
        close(sv[1]);
        t0 = clock_ns();
        do {
            if (write(sv[0], &b, 1) != 1 || read(sv[0], &b, 1) != 1) {
                perror("pingpong");
                return 1;
            }
            rounds++;
        } while (clock_ns() - t0 < 2000000000LL);
        printf("wakeup-bench: pingpong_us=%.1f\n",
               (clock_ns() - t0) / 1e3 / rounds);
        close(sv[0]);
        waitpid(pid, NULL, 0);
    }
    return 0;
}
