/*
 * Event loops: epoll, bottom halves, a timer heap, poll handlers with
 * adaptive busy polling, and cross-thread posting.  See loop.h for the
 * rules; the comments here say how they are kept.
 */
#include "util/loop.h"
#include "util/log.h"

#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#define LOOP_MAX_EVENTS 64
#define LOOP_POLL_START_NS 4000
/* While busy polling, fds are looked at this often (one epoll_wait). */
#define LOOP_POLL_FD_NS 2000
/* A sleeping loop with watch pollers wakes to run them: this often at
 * first after it found work, backing off to watch_max_ns while it finds
 * none. */
#define LOOP_WATCH_MIN_NS 50000

typedef struct LoopFd {
    int fd;
    LoopFunc *read, *write;
    void *opaque;
    uint32_t events;            /* what epoll watches */
    bool deleted;               /* freed once no dispatch can see it */
    bool always_ready;          /* not pollable (a regular file) */
    struct LoopFd *next_zombie;
} LoopFd;

struct LoopBH {
    EventLoop *loop;
    LoopFunc *cb;
    void *opaque;
    bool scheduled;
    LoopBH *prev, *next;        /* in a scheduled list while scheduled */
};

struct LoopTimer {
    EventLoop *loop;
    LoopFunc *cb;
    void *opaque;
    int64_t expire_ns;
    int heap_idx;               /* -1 when not pending */
};

struct LoopPoller {
    EventLoop *loop;
    bool (*poll)(void *opaque);
    void (*started)(void *opaque, bool on);
    void *opaque;
    bool deleted;
    bool watch;                 /* must run while the loop sleeps too */
};

typedef struct LoopHook {
    LoopFunc *cb;
    void *opaque;
} LoopHook;

typedef struct LoopPost {
    LoopFunc *cb;
    void *opaque;
} LoopPost;

struct EventLoop {
    char *name;
    int epfd;
    int wake_fd;                /* eventfd for other threads */
    pthread_t owner;
    bool has_owner;
    /* While the owner waits in loop_run_sync(), the thread it waits for
     * may use this loop in its stead. */
    pthread_t borrower;
    bool has_borrower;
    bool iterating;             /* in loop_iterate (never nested) */
    bool quit;

    /* fd handlers, indexed by fd. */
    LoopFd **fds;
    unsigned nfds_cap;
    unsigned nr_always_ready;
    LoopFd *zombies;

    /* Bottom halves: a circular list with a sentinel. */
    LoopBH bh_list;

    /* Timers: a binary min-heap on expire_ns. */
    LoopTimer **heap;
    unsigned nheap, heap_cap;

    /* Pollers and busy polling. */
    GPtrArray *pollers;
    bool pollers_dirty;
    bool poll_started;
    int64_t poll_ns, poll_max_ns, poll_grow, poll_shrink;
    unsigned nr_watch;          /* pollers with watch set */
    int64_t last_epoll_ns;      /* when fds were last looked at */
    int64_t watch_ns;           /* how long the loop sleeps at most */
    int64_t watch_max_ns;

    GArray *hooks;              /* of LoopHook */

    /* Work posted by other threads. */
    GMutex post_lock;
    GQueue posted;              /* of LoopPost *, under post_lock */
    int post_pending;           /* atomic: posted is not empty */
    int notify_me;              /* atomic: the owner may sleep */

    LoopStats stats;
};

static __thread EventLoop *current_loop;

/* ---- the scheduled list ---- */

static void bh_list_init(LoopBH *head)
{
    head->next = head->prev = head;
}

static bool bh_list_empty(LoopBH *head)
{
    return head->next == head;
}

static void bh_unlink(LoopBH *bh)
{
    bh->prev->next = bh->next;
    bh->next->prev = bh->prev;
    bh->next = bh->prev = NULL;
}

static void bh_append(LoopBH *head, LoopBH *bh)
{
    bh->prev = head->prev;
    bh->next = head;
    head->prev->next = bh;
    head->prev = bh;
}

/* ---- loops ---- */

static void loop_wake_read(void *opaque)
{
    EventLoop *l = opaque;
    eventfd_t v;

    (void)eventfd_read(l->wake_fd, &v);
}

EventLoop *loop_new(const char *name, GError **errp)
{
    EventLoop *l = g_new0(EventLoop, 1);

    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        g_set_error(errp, G_FILE_ERROR, g_file_error_from_errno(errno),
                    "epoll_create1: %s", g_strerror(errno));
        g_free(l);
        return NULL;
    }
    l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (l->wake_fd < 0) {
        g_set_error(errp, G_FILE_ERROR, g_file_error_from_errno(errno),
                    "eventfd: %s", g_strerror(errno));
        close(l->epfd);
        g_free(l);
        return NULL;
    }
    l->name = g_strdup(name);
    bh_list_init(&l->bh_list);
    l->pollers = g_ptr_array_new();
    l->hooks = g_array_new(false, false, sizeof(LoopHook));
    l->poll_grow = 2;
    l->watch_max_ns = LOOP_WATCH_MAX_NS_DEFAULT;
    g_mutex_init(&l->post_lock);
    g_queue_init(&l->posted);
    loop_set_fd(l, l->wake_fd, loop_wake_read, NULL, l);
    return l;
}

static void loop_reap_zombies(EventLoop *l)
{
    while (l->zombies) {
        LoopFd *z = l->zombies;

        l->zombies = z->next_zombie;
        g_free(z);
    }
}

void loop_free(EventLoop *l)
{
    if (!l) {
        return;
    }
    /* Whoever frees it owns it now (its thread has ended). */
    l->has_owner = false;
    loop_set_fd(l, l->wake_fd, NULL, NULL, NULL);
    loop_reap_zombies(l);
    for (unsigned i = 0; i < l->nfds_cap; i++) {
        if (l->fds[i]) {
            iovd_warn("loop %s: fd %u still watched at exit", l->name, i);
            g_free(l->fds[i]);
        }
    }
    /* Work posted after the owner stopped: run it here, nobody else will. */
    while (!g_queue_is_empty(&l->posted)) {
        LoopPost *p = g_queue_pop_head(&l->posted);

        p->cb(p->opaque);
        g_free(p);
    }
    while (!bh_list_empty(&l->bh_list)) {
        LoopBH *bh = l->bh_list.next;

        bh_unlink(bh);
        bh->scheduled = false;
    }
    g_free(l->fds);
    g_free(l->heap);
    g_ptr_array_free(l->pollers, true);
    g_array_free(l->hooks, true);
    g_mutex_clear(&l->post_lock);
    close(l->wake_fd);
    close(l->epfd);
    if (current_loop == l) {
        current_loop = NULL;
    }
    g_free(l->name);
    g_free(l);
}

const char *loop_name(EventLoop *l)
{
    return l->name;
}

void loop_attach_thread(EventLoop *l)
{
    l->owner = pthread_self();
    l->has_owner = true;
    current_loop = l;
}

EventLoop *loop_current(void)
{
    return current_loop;
}

bool loop_in_thread(EventLoop *l)
{
    return current_loop == l;
}

/*
 * Handlers are created and run on the owner thread only.  Before a thread
 * attached (start-up builds everything first) any thread may set it up.
 */
static inline void loop_assert_owner(EventLoop *l)
{
    g_assert(!l->has_owner || pthread_equal(l->owner, pthread_self()) ||
             (l->has_borrower && pthread_equal(l->borrower, pthread_self())));
}

/* ---- fd handlers ---- */

static void loop_fd_grow(EventLoop *l, int fd)
{
    unsigned cap = MAX(l->nfds_cap * 2, 64u);

    while (cap <= (unsigned)fd) {
        cap *= 2;
    }
    l->fds = g_renew(LoopFd *, l->fds, cap);
    memset(l->fds + l->nfds_cap, 0, (cap - l->nfds_cap) * sizeof(LoopFd *));
    l->nfds_cap = cap;
}

static void loop_fd_remove(EventLoop *l, LoopFd *h)
{
    if (h->always_ready) {
        l->nr_always_ready--;
    } else {
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, h->fd, NULL);
    }
    l->fds[h->fd] = NULL;
    h->deleted = true;
    /* Events already fetched may point at it: free after dispatch. */
    h->next_zombie = l->zombies;
    l->zombies = h;
}

void loop_set_fd(EventLoop *l, int fd, LoopFunc *read, LoopFunc *write,
                 void *opaque)
{
    LoopFd *h = (unsigned)fd < l->nfds_cap ? l->fds[fd] : NULL;
    uint32_t events = (read ? EPOLLIN : 0) | (write ? EPOLLOUT : 0);

    loop_assert_owner(l);
    g_assert(fd >= 0);
    if (!events) {
        if (h) {
            loop_fd_remove(l, h);
        }
        return;
    }
    if (!h) {
        struct epoll_event ev = { .events = events };

        if ((unsigned)fd >= l->nfds_cap) {
            loop_fd_grow(l, fd);
        }
        h = g_new0(LoopFd, 1);
        h->fd = fd;
        ev.data.ptr = h;
        if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            if (errno != EPERM) {
                iovd_warn("loop %s: cannot watch fd %d: %s", l->name, fd,
                          g_strerror(errno));
                g_free(h);
                return;
            }
            /* A regular file (stdio redirected): always ready, as poll(2). */
            h->always_ready = true;
            l->nr_always_ready++;
        }
        h->events = events;
        l->fds[fd] = h;
    } else if (h->events != events && !h->always_ready) {
        struct epoll_event ev = { .events = events, .data.ptr = h };

        if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0) {
            iovd_warn("loop %s: epoll_ctl MOD fd %d: %s", l->name, fd,
                      g_strerror(errno));
        }
        h->events = events;
    }
    h->read = read;
    h->write = write;
    h->opaque = opaque;
}

static bool loop_fd_dispatch(LoopFd *h, uint32_t revents)
{
    bool ran = false;

    /* Errors and hangups go to the reader, which sees EOF. */
    if ((revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) && h->read) {
        h->read(h->opaque);
        ran = true;
    }
    if (!h->deleted && (revents & (EPOLLOUT | EPOLLERR)) && h->write) {
        h->write(h->opaque);
        ran = true;
    }
    return ran;
}

static bool loop_dispatch_always_ready(EventLoop *l)
{
    bool ran = false;

    for (unsigned i = 0; i < l->nfds_cap && l->nr_always_ready; i++) {
        LoopFd *h = l->fds[i];

        if (h && h->always_ready) {
            ran |= loop_fd_dispatch(h, EPOLLIN | EPOLLOUT);
        }
    }
    return ran;
}

/* ---- bottom halves ---- */

LoopBH *loop_bh_new(EventLoop *l, LoopFunc *cb, void *opaque)
{
    LoopBH *bh = g_new0(LoopBH, 1);

    bh->loop = l;
    bh->cb = cb;
    bh->opaque = opaque;
    return bh;
}

void loop_bh_schedule(LoopBH *bh)
{
    if (bh->scheduled) {
        return;
    }
    loop_assert_owner(bh->loop);
    bh->scheduled = true;
    bh_append(&bh->loop->bh_list, bh);
}

void loop_bh_cancel(LoopBH *bh)
{
    if (bh->scheduled) {
        bh_unlink(bh);
        bh->scheduled = false;
    }
}

bool loop_bh_scheduled(LoopBH *bh)
{
    return bh->scheduled;
}

void loop_bh_delete(LoopBH *bh)
{
    if (bh) {
        loop_bh_cancel(bh);
        g_free(bh);
    }
}

EventLoop *loop_bh_loop(LoopBH *bh)
{
    return bh->loop;
}

void loop_bh_move(LoopBH *bh, EventLoop *to)
{
    bool was = bh->scheduled;

    loop_assert_owner(bh->loop);
    loop_bh_cancel(bh);
    bh->loop = to;
    if (was) {
        loop_bh_schedule(bh);
    }
}

/*
 * Run what was scheduled before this pass.  The list moves to a local
 * head first: what the callbacks schedule goes to the loop's (now empty)
 * list for the next iteration, and a cancel unlinks from either list.
 */
static bool loop_dispatch_bhs(EventLoop *l)
{
    LoopBH run;
    bool ran = false;

    if (bh_list_empty(&l->bh_list)) {
        return false;
    }
    run.next = l->bh_list.next;
    run.prev = l->bh_list.prev;
    run.next->prev = &run;
    run.prev->next = &run;
    bh_list_init(&l->bh_list);
    while (!bh_list_empty(&run)) {
        LoopBH *bh = run.next;

        bh_unlink(bh);
        bh->scheduled = false;
        bh->cb(bh->opaque);
        ran = true;
    }
    return ran;
}

/* ---- timers ---- */

static void heap_set(EventLoop *l, unsigned i, LoopTimer *t)
{
    l->heap[i] = t;
    t->heap_idx = i;
}

static void heap_up(EventLoop *l, unsigned i)
{
    LoopTimer *t = l->heap[i];

    while (i > 0) {
        unsigned parent = (i - 1) / 2;

        if (l->heap[parent]->expire_ns <= t->expire_ns) {
            break;
        }
        heap_set(l, i, l->heap[parent]);
        i = parent;
    }
    heap_set(l, i, t);
}

static void heap_down(EventLoop *l, unsigned i)
{
    LoopTimer *t = l->heap[i];

    for (;;) {
        unsigned c = 2 * i + 1;

        if (c >= l->nheap) {
            break;
        }
        if (c + 1 < l->nheap &&
            l->heap[c + 1]->expire_ns < l->heap[c]->expire_ns) {
            c++;
        }
        if (t->expire_ns <= l->heap[c]->expire_ns) {
            break;
        }
        heap_set(l, i, l->heap[c]);
        i = c;
    }
    heap_set(l, i, t);
}

static void heap_remove(EventLoop *l, LoopTimer *t)
{
    unsigned i = t->heap_idx;
    LoopTimer *last = l->heap[--l->nheap];

    t->heap_idx = -1;
    if (last != t) {
        heap_set(l, i, last);
        heap_down(l, i);
        heap_up(l, last->heap_idx);
    }
}

LoopTimer *loop_timer_new(EventLoop *l, LoopFunc *cb, void *opaque)
{
    LoopTimer *t = g_new0(LoopTimer, 1);

    t->loop = l;
    t->cb = cb;
    t->opaque = opaque;
    t->expire_ns = -1;
    t->heap_idx = -1;
    return t;
}

void loop_timer_mod(LoopTimer *t, int64_t expire_ns)
{
    EventLoop *l = t->loop;

    loop_assert_owner(l);
    expire_ns = MAX(0, expire_ns);
    if (t->heap_idx >= 0) {
        int64_t old = t->expire_ns;

        t->expire_ns = expire_ns;
        if (expire_ns < old) {
            heap_up(l, t->heap_idx);
        } else {
            heap_down(l, t->heap_idx);
        }
        return;
    }
    if (l->nheap == l->heap_cap) {
        l->heap_cap = MAX(16u, l->heap_cap * 2);
        l->heap = g_renew(LoopTimer *, l->heap, l->heap_cap);
    }
    t->expire_ns = expire_ns;
    heap_set(l, l->nheap++, t);
    heap_up(l, t->heap_idx);
}

void loop_timer_del(LoopTimer *t)
{
    if (t->heap_idx >= 0) {
        heap_remove(t->loop, t);
    }
    t->expire_ns = -1;
}

bool loop_timer_pending(LoopTimer *t)
{
    return t->heap_idx >= 0;
}

int64_t loop_timer_expire(LoopTimer *t)
{
    return t->heap_idx >= 0 ? t->expire_ns : -1;
}

void loop_timer_move(LoopTimer *t, EventLoop *to)
{
    int64_t expire = loop_timer_expire(t);

    loop_assert_owner(t->loop);
    loop_timer_del(t);
    t->loop = to;
    if (expire >= 0) {
        loop_timer_mod(t, expire);
    }
}

void loop_timer_free(LoopTimer *t)
{
    if (t) {
        loop_timer_del(t);
        g_free(t);
    }
}

/* Fire expired timers; one pass over those due when it started. */
static bool loop_dispatch_timers(EventLoop *l)
{
    int64_t now;
    unsigned budget = l->nheap;
    bool ran = false;

    if (!l->nheap) {
        return false;
    }
    now = clock_ns();
    while (budget-- && l->nheap && l->heap[0]->expire_ns <= now) {
        LoopTimer *t = l->heap[0];

        heap_remove(l, t);
        t->expire_ns = -1;
        t->cb(t->opaque);
        ran = true;
    }
    return ran;
}

/* ns until the first timer, 0 when one is due, -1 when none is pending. */
static int64_t loop_timer_timeout(EventLoop *l)
{
    int64_t left;

    if (!l->nheap) {
        return -1;
    }
    left = l->heap[0]->expire_ns - clock_ns();
    return MAX(0, left);
}

/* ---- pollers ---- */

LoopPoller *loop_poller_new(EventLoop *l, bool (*poll)(void *opaque),
                            void (*started)(void *opaque, bool on),
                            void *opaque)
{
    LoopPoller *p = g_new0(LoopPoller, 1);

    loop_assert_owner(l);
    p->loop = l;
    p->poll = poll;
    p->started = started;
    p->opaque = opaque;
    g_ptr_array_add(l->pollers, p);
    if (l->poll_started && started) {
        started(opaque, true);
    }
    return p;
}

void loop_poller_free(LoopPoller *p)
{
    if (!p) {
        return;
    }
    loop_assert_owner(p->loop);
    /* Freed by the loop once no pass walks the array. */
    loop_poller_set_watch(p, false);
    p->deleted = true;
    p->loop->pollers_dirty = true;
    if (!p->loop->iterating) {
        g_ptr_array_remove(p->loop->pollers, p);
        g_free(p);
    }
}

void loop_set_poll(EventLoop *l, const LoopPollParams *p)
{
    loop_set_poll_params(l, p->max_ns, p->grow, p->shrink);
    loop_set_watch_max(l, p->idle_ns);
}

void loop_set_watch_max(EventLoop *l, int64_t ns)
{
    l->watch_max_ns = MAX(ns, LOOP_WATCH_MIN_NS);
}

void loop_poller_set_watch(LoopPoller *p, bool on)
{
    EventLoop *l = p->loop;

    loop_assert_owner(l);
    if (p->watch != on) {
        p->watch = on;
        l->nr_watch += on ? 1 : -1;
        l->watch_ns = LOOP_WATCH_MIN_NS;
    }
}

static void loop_pollers_compact(EventLoop *l)
{
    for (guint i = 0; i < l->pollers->len;) {
        LoopPoller *p = g_ptr_array_index(l->pollers, i);

        if (p->deleted) {
            g_ptr_array_remove_index(l->pollers, i);
            g_free(p);
        } else {
            i++;
        }
    }
    l->pollers_dirty = false;
}

static bool loop_run_pollers(EventLoop *l)
{
    bool progress = false;

    l->stats.polls++;
    for (guint i = 0; i < l->pollers->len; i++) {
        LoopPoller *p = g_ptr_array_index(l->pollers, i);

        if (!p->deleted && p->poll(p->opaque)) {
            progress = true;
        }
    }
    if (progress) {
        l->stats.poll_hits++;
    }
    return progress;
}

static void loop_poll_set_started(EventLoop *l, bool on)
{
    if (l->poll_started == on) {
        return;
    }
    l->poll_started = on;
    for (guint i = 0; i < l->pollers->len; i++) {
        LoopPoller *p = g_ptr_array_index(l->pollers, i);

        if (!p->deleted && p->started) {
            p->started(p->opaque, on);
        }
    }
}

void loop_set_poll_params(EventLoop *l, int64_t max_ns, int64_t grow,
                          int64_t shrink)
{
    l->poll_max_ns = MAX(0, max_ns);
    l->poll_grow = grow > 1 ? grow : 2;
    l->poll_shrink = MAX(0, shrink);
    if (l->poll_ns > l->poll_max_ns) {
        l->poll_ns = l->poll_max_ns;
    }
}

int64_t loop_poll_ns(EventLoop *l)
{
    return l->poll_ns;
}

int64_t loop_poll_max_ns(EventLoop *l)
{
    return l->poll_max_ns;
}

/*
 * Adapt poll_ns to how long the loop just slept (QEMU's rule): polling
 * for as long as the loop would have slept is ideal; sleeping longer
 * than poll_max_ns means polling is wasted; in between, poll longer.
 */
static void loop_poll_grow(EventLoop *l)
{
    if (l->poll_ns < l->poll_max_ns) {
        l->poll_ns = l->poll_ns ? l->poll_ns * l->poll_grow
                                : LOOP_POLL_START_NS;
        l->poll_ns = MIN(l->poll_ns, l->poll_max_ns);
    }
}

static void loop_poll_adjust(EventLoop *l, int64_t block_ns)
{
    if (block_ns <= l->poll_ns) {
        return;
    }
    if (block_ns > l->poll_max_ns) {
        l->poll_ns = l->poll_shrink ? l->poll_ns / l->poll_shrink : 0;
    } else {
        loop_poll_grow(l);
    }
}

static int loop_epoll_wait(EventLoop *l, struct epoll_event *ev,
                           int64_t timeout_ns);

/*
 * Busy-poll for up to poll_ns (and not past @timeout_ns when >= 0):
 * true when a poller found work or something else became due.  Events
 * on fds (the vfio-user socket, eventfds) do not wait for the end of the
 * poll: epoll is looked at every LOOP_POLL_FD_NS, and what it returns
 * is left in @ev / *@nev for the caller to dispatch.
 */
static bool loop_busy_poll(EventLoop *l, int64_t timeout_ns,
                           struct epoll_event *ev, int *nev)
{
    int64_t start = clock_ns(), now = start, fd_check = start;
    int64_t budget = timeout_ns >= 0 ? MIN(l->poll_ns, timeout_ns)
                                     : l->poll_ns;

    loop_poll_set_started(l, true);
    do {
        if (loop_run_pollers(l)) {
            l->watch_ns = LOOP_WATCH_MIN_NS;
            return true;
        }
        if (!bh_list_empty(&l->bh_list) ||
            __atomic_load_n(&l->post_pending, __ATOMIC_RELAXED)) {
            return true;
        }
        now = clock_ns();
        if (now - fd_check >= LOOP_POLL_FD_NS) {
            fd_check = now;
            *nev = loop_epoll_wait(l, ev, 0);
            if (*nev > 0) {
                return true;
            }
        }
    } while (now - start < budget);
    return false;
}

/* ---- hooks ---- */

void loop_add_before_poll(EventLoop *l, LoopFunc *cb, void *opaque)
{
    LoopHook h = { cb, opaque };

    g_array_append_val(l->hooks, h);
}

void loop_remove_before_poll(EventLoop *l, LoopFunc *cb, void *opaque)
{
    for (guint i = 0; i < l->hooks->len; i++) {
        LoopHook *h = &g_array_index(l->hooks, LoopHook, i);

        if (h->cb == cb && h->opaque == opaque) {
            g_array_remove_index(l->hooks, i);
            return;
        }
    }
}

static void loop_run_hooks(EventLoop *l)
{
    LoopHook hooks[8];
    unsigned n = l->hooks->len;
    g_autofree LoopHook *big = NULL;
    LoopHook *h = hooks;

    if (!n) {
        return;
    }
    /* A copy: hooks may add or remove hooks. */
    if (n > G_N_ELEMENTS(hooks)) {
        h = big = g_new(LoopHook, n);
    }
    memcpy(h, l->hooks->data, n * sizeof(LoopHook));
    for (unsigned i = 0; i < n; i++) {
        h[i].cb(h[i].opaque);
    }
}

/* ---- posting from other threads ---- */

static void loop_notify(EventLoop *l)
{
    /*
     * Pairs with the barrier in loop_iterate: either the owner sees
     * post_pending before it sleeps, or we see notify_me and wake it.
     */
    smp_mb();
    if (__atomic_load_n(&l->notify_me, __ATOMIC_RELAXED)) {
        __atomic_fetch_add(&l->stats.notifies, 1, __ATOMIC_RELAXED);
        (void)eventfd_write(l->wake_fd, 1);
    }
}

void loop_post(EventLoop *l, LoopFunc *cb, void *opaque)
{
    LoopPost *p = g_new(LoopPost, 1);

    p->cb = cb;
    p->opaque = opaque;
    g_mutex_lock(&l->post_lock);
    g_queue_push_tail(&l->posted, p);
    __atomic_store_n(&l->post_pending, 1, __ATOMIC_RELAXED);
    g_mutex_unlock(&l->post_lock);
    if (!loop_in_thread(l)) {
        loop_notify(l);
    }
}

static bool loop_dispatch_posted(EventLoop *l)
{
    GQueue q = G_QUEUE_INIT;
    bool ran = false;

    if (!__atomic_load_n(&l->post_pending, __ATOMIC_ACQUIRE)) {
        return false;
    }
    g_mutex_lock(&l->post_lock);
    q = l->posted;
    g_queue_init(&l->posted);
    __atomic_store_n(&l->post_pending, 0, __ATOMIC_RELAXED);
    g_mutex_unlock(&l->post_lock);
    while (!g_queue_is_empty(&q)) {
        LoopPost *p = g_queue_pop_head(&q);

        p->cb(p->opaque);
        g_free(p);
        ran = true;
    }
    return ran;
}

typedef struct LoopSync {
    LoopFunc *cb;
    void *opaque;
    GMutex lock;
    GCond cond;
    bool done;
} LoopSync;

static void loop_sync_run(void *opaque)
{
    LoopSync *s = opaque;

    s->cb(s->opaque);
    g_mutex_lock(&s->lock);
    s->done = true;
    g_cond_signal(&s->cond);
    g_mutex_unlock(&s->lock);
}

void loop_run_sync(EventLoop *l, LoopFunc *cb, void *opaque)
{
    LoopSync s = { .cb = cb, .opaque = opaque };
    EventLoop *mine = current_loop;

    if (loop_in_thread(l) || !l->has_owner) {
        cb(opaque);
        return;
    }
    g_mutex_init(&s.lock);
    g_cond_init(&s.cond);
    /*
     * Our own loop does not run until @cb returned: lend it, so that @cb
     * may move handlers between the two (a netdev joining its NIC's loop).
     * The mutex orders what it does before what we do next.
     */
    if (mine) {
        mine->borrower = l->owner;
        mine->has_borrower = true;
    }
    loop_post(l, loop_sync_run, &s);
    g_mutex_lock(&s.lock);
    while (!s.done) {
        g_cond_wait(&s.cond, &s.lock);
    }
    g_mutex_unlock(&s.lock);
    if (mine) {
        mine->has_borrower = false;
    }
    g_mutex_clear(&s.lock);
    g_cond_clear(&s.cond);
}

/* ---- one iteration ---- */

static int loop_epoll_wait(EventLoop *l, struct epoll_event *ev,
                           int64_t timeout_ns)
{
    struct timespec ts, *tsp = NULL;
    int n;

    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        tsp = &ts;
    }
    n = epoll_pwait2(l->epfd, ev, LOOP_MAX_EVENTS, tsp, NULL);
    if (n < 0 && errno == ENOSYS) {
        /* Kernels before 5.11: millisecond timeouts, rounded up. */
        n = epoll_wait(l->epfd, ev, LOOP_MAX_EVENTS,
                       timeout_ns < 0 ? -1 : (int)DIV_ROUND_UP(timeout_ns,
                                                               1000000));
    }
    return n;
}

/* How long this iteration may sleep: 0 not at all, -1 until an event. */
static int64_t loop_sleep_budget(EventLoop *l, bool blocking)
{
    int64_t timeout;

    if (!blocking || !bh_list_empty(&l->bh_list) || l->nr_always_ready ||
        l->quit) {
        return 0;
    }
    timeout = loop_timer_timeout(l);
    if (l->nr_watch && (timeout < 0 || timeout > l->watch_ns)) {
        timeout = l->watch_ns;
    }
    return timeout;
}

/*
 * About to sleep up to @timeout: pollers re-arm their notifications and
 * take one last look (*progress when they found work), then notify_me
 * tells other threads to wake us.  Returns the timeout, or 0 when work
 * came meanwhile.
 */
static int64_t loop_prepare_sleep(EventLoop *l, int64_t timeout,
                                  bool *progress)
{
    if (l->poll_started) {
        loop_poll_set_started(l, false);
        if (loop_run_pollers(l)) {
            *progress = true;
            timeout = 0;
        }
    }
    __atomic_store_n(&l->notify_me, 1, __ATOMIC_RELAXED);
    smp_mb();
    if (__atomic_load_n(&l->post_pending, __ATOMIC_RELAXED) ||
        !bh_list_empty(&l->bh_list)) {
        timeout = 0;
    }
    return timeout;
}

/*
 * The events of this iteration into @ev: those busy polling found (@n >
 * 0), else epoll's, waiting up to @timeout.  Bottom halves scheduled by
 * bottom halves (a request going through a device, its backend and back)
 * run without the system call; fds are looked at every LOOP_POLL_FD_NS
 * anyway.
 */
static int loop_wait(EventLoop *l, struct epoll_event *ev, int64_t timeout,
                     int n)
{
    if (n <= 0) {
        if (timeout == 0 && !bh_list_empty(&l->bh_list) &&
            clock_ns() - l->last_epoll_ns < LOOP_POLL_FD_NS) {
            return 0;
        }
        n = loop_epoll_wait(l, ev, timeout);
    }
    l->last_epoll_ns = clock_ns();
    return n;
}

/*
 * After a wait of up to @timeout that began at @start (0: no wait): the
 * pollers nothing notifies, and the adaptive polling window.  True when
 * the pollers found work.
 */
static bool loop_after_wait(EventLoop *l, bool blocking, int64_t timeout,
                            int n, int64_t start)
{
    int64_t block_ns = start ? clock_ns() - start : 0;
    bool progress = false, watch_found = false;

    if (l->nr_watch && timeout != 0) {
        /* Woken after a sleep: what no notification tells us. */
        if (loop_run_pollers(l)) {
            progress = true;
            watch_found = n == 0;
            l->watch_ns = LOOP_WATCH_MIN_NS;
        } else {
            l->watch_ns = MIN(l->watch_ns * 2, l->watch_max_ns);
        }
    }
    if (blocking && l->poll_max_ns && start) {
        if (watch_found) {
            /*
             * Work came at some point of a sleep that nothing could cut
             * short (doorbells in memory notify no one): the sleep's
             * length says nothing against polling, while the work says
             * a longer poll may have caught it.  Grow; with the plain
             * rule a watch period longer than poll-max-ns would shrink
             * the window to 0 on every such wake, and the loop would
             * never poll again under a steady load.
             */
            loop_poll_grow(l);
        } else {
            loop_poll_adjust(l, block_ns);
        }
    }
    return progress;
}

/* Handlers of @n events, then what is always ready, posted, BHs, timers. */
static bool loop_dispatch(EventLoop *l, struct epoll_event *ev, int n)
{
    bool progress = false;

    for (int i = 0; i < n; i++) {
        LoopFd *h = ev[i].data.ptr;

        if (!h->deleted && loop_fd_dispatch(h, ev[i].events)) {
            progress |= h->fd != l->wake_fd;
        }
    }
    if (l->nr_always_ready) {
        progress |= loop_dispatch_always_ready(l);
    }
    progress |= loop_dispatch_posted(l);
    progress |= loop_dispatch_bhs(l);
    progress |= loop_dispatch_timers(l);
    return progress;
}

bool loop_iterate(EventLoop *l, bool blocking)
{
    struct epoll_event ev[LOOP_MAX_EVENTS];
    int64_t timeout, start = 0;
    bool progress = false;
    int n = -1;

    if (l->iterating) {
        /*
         * No nested event loops: a callback that waits by running its
         * loop lets any other callback run under it.  Wait by parking
         * (a device's work item) or by posting and returning.
         */
        fprintf(stderr, "loop %s: loop_iterate() inside an iteration\n",
                l->name);
        abort();
    }
    l->iterating = true;
    l->stats.iterations++;
    loop_run_hooks(l);

    timeout = loop_sleep_budget(l, blocking);
    if (timeout != 0 && l->poll_ns) {
        start = clock_ns();
        if (loop_busy_poll(l, timeout, ev, &n)) {
            progress = true;
            timeout = 0;
        }
    }
    if (timeout != 0) {
        timeout = loop_prepare_sleep(l, timeout, &progress);
    }
    if (timeout != 0) {
        start = start ? start : clock_ns();
        l->stats.wakeups++;
    }
    n = loop_wait(l, ev, timeout, n);
    __atomic_store_n(&l->notify_me, 0, __ATOMIC_RELAXED);
    progress |= loop_after_wait(l, blocking, timeout, n, start);
    progress |= loop_dispatch(l, ev, n);

    l->iterating = false;
    loop_reap_zombies(l);
    if (l->pollers_dirty) {
        loop_pollers_compact(l);
    }
    return progress;
}

void loop_run(EventLoop *l)
{
    while (!__atomic_load_n(&l->quit, __ATOMIC_ACQUIRE)) {
        loop_iterate(l, true);
    }
}

static void loop_quit_bh(void *opaque)
{
    EventLoop *l = opaque;

    __atomic_store_n(&l->quit, true, __ATOMIC_RELEASE);
}

void loop_quit(EventLoop *l)
{
    if (loop_in_thread(l) || !l->has_owner) {
        loop_quit_bh(l);
    } else {
        loop_post(l, loop_quit_bh, l);
    }
}

void loop_get_stats(EventLoop *l, LoopStats *st)
{
    *st = l->stats;
}

static EventLoop *the_main_loop;

EventLoop *loop_main(void)
{
    return the_main_loop;
}

void loop_set_main(EventLoop *l)
{
    the_main_loop = l;
}
