/*
 * Event loop on the thread-default GMainContext.  fd handlers are GSources
 * with a unix fd; bottom halves share one GSource that is ready while any
 * is scheduled; timers are GSources with a ready time.
 */
#include "util/main-loop.h"

/* ---- fd handlers ---- */

typedef struct FdSource {
    GSource source;
    int fd;
    gpointer tag;
    IOHandler *read, *write;
    void *opaque;
} FdSource;

static GHashTable *fd_sources;  /* fd -> FdSource */

static gboolean fd_source_dispatch(GSource *source, GSourceFunc cb,
                                   gpointer data)
{
    FdSource *s = (FdSource *)source;
    GIOCondition cond = g_source_query_unix_fd(source, s->tag);

    /* Errors and hangups are reported to the read handler, which sees EOF. */
    if ((cond & (G_IO_IN | G_IO_HUP | G_IO_ERR)) && s->read) {
        s->read(s->opaque);
        /* The handler may have removed or changed us. */
        if (g_source_is_destroyed(source)) {
            return G_SOURCE_REMOVE;
        }
    }
    if ((cond & G_IO_OUT) && s->write) {
        s->write(s->opaque);
    }
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs fd_source_funcs = {
    .dispatch = fd_source_dispatch,
};

void iovd_set_fd_handler(int fd, IOHandler *read, IOHandler *write,
                         void *opaque)
{
    FdSource *s;
    GIOCondition cond = 0;

    if (!fd_sources) {
        fd_sources = g_hash_table_new(g_direct_hash, g_direct_equal);
    }
    s = g_hash_table_lookup(fd_sources, GINT_TO_POINTER(fd));
    if (!read && !write) {
        if (s) {
            g_hash_table_remove(fd_sources, GINT_TO_POINTER(fd));
            g_source_destroy(&s->source);
            g_source_unref(&s->source);
        }
        return;
    }
    if (read) {
        cond |= G_IO_IN | G_IO_HUP | G_IO_ERR;
    }
    if (write) {
        cond |= G_IO_OUT;
    }
    if (!s) {
        s = (FdSource *)g_source_new(&fd_source_funcs, sizeof(FdSource));
        s->fd = fd;
        s->tag = g_source_add_unix_fd(&s->source, fd, cond);
        g_source_attach(&s->source, g_main_context_get_thread_default());
        g_hash_table_insert(fd_sources, GINT_TO_POINTER(fd), s);
    } else {
        g_source_modify_unix_fd(&s->source, s->tag, cond);
    }
    s->read = read;
    s->write = write;
    s->opaque = opaque;
}

/* ---- bottom halves ---- */

struct IovdBH {
    IOHandler *cb;
    void *opaque;
    bool scheduled;
    uint64_t epoch;             /* dispatch round it was scheduled in */
    GList link;
};

static uint64_t bh_epoch;

typedef struct BHSource {
    GSource source;
    GQueue scheduled;           /* of IovdBH, via link */
} BHSource;

static BHSource *bh_source;

static gboolean bh_prepare(GSource *source, gint *timeout)
{
    BHSource *s = (BHSource *)source;

    *timeout = -1;
    return !g_queue_is_empty(&s->scheduled);
}

static gboolean bh_check(GSource *source)
{
    return !g_queue_is_empty(&((BHSource *)source)->scheduled);
}

static gboolean bh_dispatch(GSource *source, GSourceFunc cb, gpointer data)
{
    BHSource *s = (BHSource *)source;
    uint64_t round = ++bh_epoch;

    /*
     * Run what was scheduled before this round; BHs scheduled by these
     * carry this round's epoch and wait for the next iteration.  A BH
     * cancelled meanwhile is simply no longer in the queue.
     */
    while (!g_queue_is_empty(&s->scheduled)) {
        IovdBH *bh = g_queue_peek_head(&s->scheduled);

        if (bh->epoch >= round) {
            break;
        }
        g_queue_pop_head_link(&s->scheduled);
        bh->scheduled = false;
        bh->cb(bh->opaque);
    }
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs bh_source_funcs = {
    .prepare = bh_prepare,
    .check = bh_check,
    .dispatch = bh_dispatch,
};

static BHSource *bh_source_get(void)
{
    if (!bh_source) {
        bh_source = (BHSource *)g_source_new(&bh_source_funcs,
                                             sizeof(BHSource));
        g_queue_init(&bh_source->scheduled);
        /*
         * A BH may wait for I/O (a drain on reset) whose completion is a
         * BH itself: bottom halves run in nested loop iterations too.
         */
        g_source_set_can_recurse(&bh_source->source, true);
        g_source_attach(&bh_source->source,
                        g_main_context_get_thread_default());
    }
    return bh_source;
}

IovdBH *iovd_bh_new(IOHandler *cb, void *opaque)
{
    IovdBH *bh = g_new0(IovdBH, 1);

    bh->cb = cb;
    bh->opaque = opaque;
    bh->link.data = bh;
    return bh;
}

void iovd_bh_schedule(IovdBH *bh)
{
    BHSource *s = bh_source_get();

    if (bh->scheduled) {
        return;
    }
    bh->scheduled = true;
    bh->epoch = bh_epoch;
    g_queue_push_tail_link(&s->scheduled, &bh->link);
    g_main_context_wakeup(g_source_get_context(&s->source));
}

void iovd_bh_cancel(IovdBH *bh)
{
    if (bh->scheduled) {
        g_queue_unlink(&bh_source->scheduled, &bh->link);
        bh->scheduled = false;
    }
}

void iovd_bh_delete(IovdBH *bh)
{
    if (!bh) {
        return;
    }
    iovd_bh_cancel(bh);
    g_free(bh);
}

/* ---- timers ---- */

/*
 * One GSource for all timers, ready at the earliest deadline.  Dispatch
 * fires the expired ones in deadline order and re-checks each before
 * firing, so a timer deleted or postponed by an earlier callback of the
 * same iteration does not fire.
 */
struct IovdTimer {
    IOHandler *cb;
    void *opaque;
    int64_t expire_ns;          /* -1 when not pending */
};

typedef struct TimerSource {
    GSource source;
    GList *pending;             /* of IovdTimer, by deadline */
} TimerSource;

static TimerSource *timer_source;

static void timer_source_rearm(void)
{
    if (timer_source->pending) {
        IovdTimer *t = timer_source->pending->data;

        g_source_set_ready_time(&timer_source->source,
                                MAX(0, DIV_ROUND_UP(t->expire_ns, 1000)));
    } else {
        g_source_set_ready_time(&timer_source->source, -1);
    }
}

static gboolean timer_dispatch(GSource *source, GSourceFunc cb,
                               gpointer data)
{
    int64_t now = clock_ns();

    while (timer_source->pending) {
        IovdTimer *t = timer_source->pending->data;

        /* GLib's clock has microseconds: allow the rounding. */
        if (t->expire_ns > now + 1000) {
            break;
        }
        timer_source->pending = g_list_delete_link(timer_source->pending,
                                                   timer_source->pending);
        t->expire_ns = -1;
        t->cb(t->opaque);
    }
    timer_source_rearm();
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs timer_source_funcs = {
    .dispatch = timer_dispatch,
};

static void timer_source_init(void)
{
    if (!timer_source) {
        timer_source = (TimerSource *)g_source_new(&timer_source_funcs,
                                                   sizeof(TimerSource));
        g_source_set_can_recurse(&timer_source->source, true);
        g_source_set_ready_time(&timer_source->source, -1);
        g_source_attach(&timer_source->source,
                        g_main_context_get_thread_default());
    }
}

IovdTimer *iovd_timer_new(IOHandler *cb, void *opaque)
{
    IovdTimer *t = g_new0(IovdTimer, 1);

    timer_source_init();
    t->cb = cb;
    t->opaque = opaque;
    t->expire_ns = -1;
    return t;
}

static gint timer_cmp(gconstpointer a, gconstpointer b)
{
    const IovdTimer *ta = a, *tb = b;

    return ta->expire_ns < tb->expire_ns ? -1 : ta->expire_ns > tb->expire_ns;
}

void iovd_timer_mod(IovdTimer *t, int64_t expire_ns)
{
    if (t->expire_ns >= 0) {
        timer_source->pending = g_list_remove(timer_source->pending, t);
    }
    t->expire_ns = MAX(0, expire_ns);
    timer_source->pending = g_list_insert_sorted(timer_source->pending, t,
                                                 timer_cmp);
    timer_source_rearm();
}

void iovd_timer_del(IovdTimer *t)
{
    if (t->expire_ns >= 0) {
        timer_source->pending = g_list_remove(timer_source->pending, t);
        t->expire_ns = -1;
        timer_source_rearm();
    }
}

bool iovd_timer_pending(IovdTimer *t)
{
    return t->expire_ns >= 0;
}

void iovd_timer_free(IovdTimer *t)
{
    if (!t) {
        return;
    }
    iovd_timer_del(t);
    g_free(t);
}

/* ---- the loop ---- */

typedef struct PollHook {
    IOHandler *cb;
    void *opaque;
} PollHook;

static GArray *poll_hooks;
static bool quit_requested;

void iovd_add_before_poll(IOHandler *cb, void *opaque)
{
    PollHook h = { cb, opaque };

    if (!poll_hooks) {
        poll_hooks = g_array_new(false, false, sizeof(PollHook));
    }
    g_array_append_val(poll_hooks, h);
}

void iovd_remove_before_poll(IOHandler *cb, void *opaque)
{
    for (guint i = 0; poll_hooks && i < poll_hooks->len; i++) {
        PollHook *h = &g_array_index(poll_hooks, PollHook, i);

        if (h->cb == cb && h->opaque == opaque) {
            g_array_remove_index(poll_hooks, i);
            return;
        }
    }
}

bool main_loop_iterate(bool blocking)
{
    if (poll_hooks && poll_hooks->len) {
        /* A copy: hooks may add or remove hooks. */
        g_autoptr(GArray) hooks = g_array_copy(poll_hooks);

        for (guint i = 0; i < hooks->len; i++) {
            PollHook *h = &g_array_index(hooks, PollHook, i);

            h->cb(h->opaque);
        }
    }
    bh_source_get();
    return g_main_context_iteration(g_main_context_get_thread_default(),
                                    blocking);
}

void main_loop_run(void)
{
    while (!quit_requested) {
        main_loop_iterate(true);
    }
}

void main_loop_quit(void)
{
    quit_requested = true;
    g_main_context_wakeup(g_main_context_get_thread_default());
}

bool main_loop_should_quit(void)
{
    return quit_requested;
}
