/*
 * UNIX listening sockets: see util/sockets.h.
 */
#include "util/sockets.h"
#include "util/error.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

typedef struct UnixListener {
    int fd;
    dev_t dev;                  /* the socket file: what lstat() finds */
    ino_t ino;
    char *path;
    char *owner;
} UnixListener;

/* Devices listen from the main thread and iothreads alike. */
static GMutex listeners_lock;
static GArray *listeners;       /* of UnixListener */
/* Live upgrade: listening fds handed over by the old process, by path. */
static GHashTable *adopted;     /* path -> fd + 1 */
static bool handed_over;        /* ours are the new process's now */

static void listener_add(int fd, const char *path, const char *owner,
                         const struct stat *st)
{
    UnixListener l = {
        .fd = fd, .dev = st->st_dev, .ino = st->st_ino,
        .path = g_strdup(path), .owner = g_strdup(owner),
    };

    g_mutex_lock(&listeners_lock);
    if (!listeners) {
        listeners = g_array_new(false, false, sizeof(UnixListener));
    }
    g_array_append_val(listeners, l);
    g_mutex_unlock(&listeners_lock);
}

void unix_listen_adopt(const char *path, int fd)
{
    if (!adopted) {
        adopted = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                        NULL);
    }
    g_hash_table_insert(adopted, g_strdup(path), GINT_TO_POINTER(fd + 1));
}

/* An adopted fd for @path (then registered), or -1. */
static int unix_listen_take_adopted(const char *path, const char *owner)
{
    int fd = adopted ? GPOINTER_TO_INT(g_hash_table_lookup(adopted, path)) - 1
                     : -1;
    struct stat st;

    if (fd < 0) {
        return -1;
    }
    g_hash_table_remove(adopted, path);
    if (lstat(path, &st) < 0) {
        memset(&st, 0, sizeof(st));     /* removed meanwhile: never unlink */
    }
    listener_add(fd, path, owner, &st);
    return fd;
}

unsigned unix_listen_adopted_unused(void)
{
    return adopted ? g_hash_table_size(adopted) : 0;
}

void unix_listen_foreach(void (*fn)(const char *path, int fd, void *opaque),
                         void *opaque)
{
    g_mutex_lock(&listeners_lock);
    for (guint i = 0; listeners && i < listeners->len; i++) {
        UnixListener *l = &g_array_index(listeners, UnixListener, i);

        fn(l->path, l->fd, opaque);
    }
    g_mutex_unlock(&listeners_lock);
}

void unix_listen_handed_over(void)
{
    handed_over = true;
}

static UnixListener *listener_find(dev_t dev, ino_t ino, int fd)
{
    for (guint i = 0; listeners && i < listeners->len; i++) {
        UnixListener *l = &g_array_index(listeners, UnixListener, i);

        if (fd >= 0 ? l->fd == fd : l->dev == dev && l->ino == ino) {
            return l;
        }
    }
    return NULL;
}

/* Who listens on @path in this process (to free), or NULL. */
static char *unix_listen_owner(const char *path)
{
    char *owner = NULL;
    UnixListener *l;
    struct stat st;

    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        g_mutex_lock(&listeners_lock);
        l = listener_find(st.st_dev, st.st_ino, -1);
        owner = l ? g_strdup(l->owner) : NULL;
        g_mutex_unlock(&listeners_lock);
    }
    return owner;
}

/* May @path be bound?  Removes a stale socket; false with @errp set. */
static bool unix_path_free(const char *path, GError **errp)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    g_autofree char *owner = NULL;
    struct stat st;
    int fd, r, err;

    if (lstat(path, &st) < 0) {
        return true;
    }
    if (!S_ISSOCK(st.st_mode)) {
        error_setg(errp, "'%s' exists and is not a socket", path);
        return false;
    }
    owner = unix_listen_owner(path);
    if (owner) {
        error_setg(errp, "'%s' is in use by %s", path, owner);
        return false;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "socket");
        return false;
    }
    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    err = errno;
    close(fd);
    if (r == 0 || err == EAGAIN || err == EINPROGRESS) {
        /* Accepted, or a full backlog: someone listens there. */
        error_setg(errp, "'%s' is in use by a running server", path);
        return false;
    }
    if (err != ECONNREFUSED) {
        error_setg_errno(errp, err, "'%s'", path);
        return false;
    }
    unlink(path);       /* stale: nobody listens */
    return true;
}

int unix_listen(const char *path, int backlog, const char *owner,
                GError **errp)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct stat st;
    mode_t old_umask;
    int fd;

    if (!*path) {
        error_setg(errp, "empty socket path");
        return -1;
    }
    if (strlen(path) >= sizeof(sa.sun_path)) {
        error_setg(errp, "socket path '%s' longer than %zu bytes", path,
                   sizeof(sa.sun_path) - 1);
        return -1;
    }
    fd = unix_listen_take_adopted(path, owner);
    if (fd >= 0) {
        return fd;
    }
    if (!unix_path_free(path, errp)) {
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "socket");
        return -1;
    }
    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    old_umask = umask(0177);                    /* socket mode 0600 */
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        umask(old_umask);
        error_setg_errno(errp, errno, "bind '%s'", path);
        close(fd);
        return -1;
    }
    umask(old_umask);
    if (listen(fd, backlog) < 0 || lstat(path, &st) < 0) {
        error_setg_errno(errp, errno, "listen '%s'", path);
        unlink(path);
        close(fd);
        return -1;
    }
    listener_add(fd, path, owner, &st);
    return fd;
}

void unix_listen_close(int fd)
{
    UnixListener *l;
    struct stat st;

    if (fd < 0) {
        return;
    }
    g_mutex_lock(&listeners_lock);
    l = listener_find(0, 0, fd);
    if (l) {
        if (!handed_over && lstat(l->path, &st) == 0 &&
            st.st_dev == l->dev && st.st_ino == l->ino) {
            unlink(l->path);
        }
        g_free(l->path);
        g_free(l->owner);
        g_array_remove_index_fast(listeners,
                                  l - (UnixListener *)listeners->data);
    }
    g_mutex_unlock(&listeners_lock);
    close(fd);
}

bool inet_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->
                                   sin6_addr;

        return IN6_IS_ADDR_LOOPBACK(a) ||
               (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

ssize_t unix_send_fds(int sock, const void *buf, size_t len, const int *fds,
                      unsigned nfds, int flags)
{
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    g_autofree uint8_t *ctl = NULL;
    ssize_t n;

    g_assert(nfds <= UNIX_MAX_SEND_FDS);
    if (nfds) {
        struct cmsghdr *c;

        ctl = g_malloc0(CMSG_SPACE(sizeof(int) * nfds));
        mh.msg_control = ctl;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    do {
        n = sendmsg(sock, &mh, flags | MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}
