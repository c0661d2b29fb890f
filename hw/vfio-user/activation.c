/*
 * systemd-style socket activation: LISTEN_PID / LISTEN_FDS (fds from 3 on)
 * and LISTEN_FDNAMES.  A device without socket= or fd= takes the fd named
 * after its id, else the next unnamed one in order.
 */
#include "hw/vfio-user/vfio-user-int.h"

#define SD_LISTEN_FDS_START 3

static int *act_fds;
static char **act_names;
static unsigned act_n;

void vfu_activation_init(void)
{
    const char *pid = getenv("LISTEN_PID");
    const char *fds = getenv("LISTEN_FDS");
    const char *names = getenv("LISTEN_FDNAMES");
    g_auto(GStrv) split = NULL;
    uint64_t n;

    if (!pid || !fds || strtoll(pid, NULL, 10) != getpid()) {
        return;
    }
    n = g_ascii_strtoull(fds, NULL, 10);
    if (n == 0 || n > 1024) {
        return;
    }
    act_n = n;
    act_fds = g_new(int, n);
    act_names = g_new0(char *, n + 1);
    split = names ? g_strsplit(names, ":", -1) : NULL;
    for (unsigned i = 0; i < n; i++) {
        act_fds[i] = SD_LISTEN_FDS_START + i;
        g_unix_set_fd_nonblocking(act_fds[i], true, NULL);
        /* Ours now: children must not inherit them. */
        fcntl(act_fds[i], F_SETFD, FD_CLOEXEC);
        if (split && i < g_strv_length(split) && split[i][0] &&
            strcmp(split[i], "unknown") != 0) {
            act_names[i] = g_strdup(split[i]);
        }
    }
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
}

int vfu_activation_take(const char *id)
{
    int fd;

    for (unsigned i = 0; i < act_n; i++) {
        if (act_fds[i] >= 0 && act_names[i] && id &&
            strcmp(act_names[i], id) == 0) {
            fd = act_fds[i];
            act_fds[i] = -1;
            return fd;
        }
    }
    for (unsigned i = 0; i < act_n; i++) {
        if (act_fds[i] >= 0 && !act_names[i]) {
            fd = act_fds[i];
            act_fds[i] = -1;
            return fd;
        }
    }
    return -1;
}

unsigned vfu_activation_unused(void)
{
    unsigned n = 0;

    for (unsigned i = 0; i < act_n; i++) {
        n += act_fds[i] >= 0;
    }
    return n;
}
