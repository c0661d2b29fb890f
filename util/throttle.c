/*
 * Leaky buckets and throttle groups (see throttle.h).
 */
#include "util/throttle.h"
#include "util/loop.h"

/* ---- buckets ---- */

void throttle_config(Throttle *t, const uint64_t *rates, unsigned n,
                     int64_t now)
{
    g_assert(n <= THROTTLE_MAX_BUCKETS);
    memset(t, 0, sizeof(*t));
    for (unsigned i = 0; i < n; i++) {
        t->b[i].rate = rates[i];
    }
    t->last_ns = now;
}

bool throttle_enabled(const Throttle *t)
{
    for (unsigned i = 0; i < THROTTLE_MAX_BUCKETS; i++) {
        if (t->b[i].rate) {
            return true;
        }
    }
    return false;
}

void throttle_leak(Throttle *t, int64_t now)
{
    double secs = (now - t->last_ns) / 1e9;

    if (secs <= 0) {
        return;
    }
    t->last_ns = now;
    for (unsigned i = 0; i < THROTTLE_MAX_BUCKETS; i++) {
        ThrottleBucket *b = &t->b[i];

        b->level = MAX(0.0, b->level - secs * b->rate);
    }
}

/*
 * A bucket lets an operation go while it holds at most a tenth of a
 * second's worth: small enough that a rate holds over a short window,
 * large enough that a loop's timer slack does not lose throughput.
 */
static double throttle_burst(const ThrottleBucket *b)
{
    return MAX(b->rate / 10.0, 1.0);
}

int64_t throttle_wait_ns(const Throttle *t, unsigned mask)
{
    int64_t wait = 0;

    for (unsigned i = 0; i < THROTTLE_MAX_BUCKETS; i++) {
        const ThrottleBucket *b = &t->b[i];
        double over;

        if (!(mask & (1u << i)) || !b->rate) {
            continue;
        }
        over = b->level - throttle_burst(b);
        if (over > 0) {
            /* +1: never wake a hair too early and spin on the timer */
            wait = MAX(wait, (int64_t)(over / b->rate * 1e9) + 1);
        }
    }
    return wait;
}

/*
 * Is the throttle behind its rates: every limited bucket at most half a
 * burst full?  Requests that wait go as soon as a bucket is one burst
 * full, so a bucket only drains below that when those who should send
 * came late (their loops were not scheduled in time).
 */
static bool throttle_behind(const Throttle *t)
{
    bool limited = false;

    for (unsigned i = 0; i < THROTTLE_MAX_BUCKETS; i++) {
        const ThrottleBucket *b = &t->b[i];

        if (b->rate) {
            if (b->level > throttle_burst(b) / 2) {
                return false;
            }
            limited = true;
        }
    }
    return limited;
}

void throttle_account(Throttle *t, unsigned mask, const uint64_t *cost)
{
    for (unsigned i = 0; i < THROTTLE_MAX_BUCKETS; i++) {
        if (mask & (1u << i)) {
            t->b[i].level += cost[i];
        }
    }
}

/* ---- groups ---- */

struct ThrottleMember {
    ThrottleGroup *g;
    EventLoop *loop;
    char *name;
    void (*restart)(void *opaque);
    void *opaque;
    LoopTimer *timer;           /* the token holder waits for the buckets */
    bool pending;               /* requests waiting (group lock) */
    bool gone;                  /* left the group (its loop only) */
    int refs;                   /* atomic: the group's, posted wake-ups */
    ThrottleMemberStats stats;  /* group lock */
};

struct ThrottleGroup {
    char *id;
    GMutex lock;                /* everything below */
    Throttle t;
    uint64_t rates[THROTTLE_MAX_BUCKETS];
    GList *members;             /* the round-robin order */
    ThrottleMember *token;      /* NULL exactly when none is pending */
};

ThrottleGroup *throttle_group_new(const char *id)
{
    ThrottleGroup *g = g_new0(ThrottleGroup, 1);

    g->id = g_strdup(id);
    g_mutex_init(&g->lock);
    throttle_config(&g->t, NULL, 0, clock_ns());
    return g;
}

void throttle_group_free(ThrottleGroup *g)
{
    if (!g) {
        return;
    }
    g_assert(!g->members);
    g_mutex_clear(&g->lock);
    g_free(g->id);
    g_free(g);
}

const char *throttle_group_id(ThrottleGroup *g)
{
    return g->id;
}

unsigned throttle_group_members(ThrottleGroup *g)
{
    unsigned n;

    g_mutex_lock(&g->lock);
    n = g_list_length(g->members);
    g_mutex_unlock(&g->lock);
    return n;
}

void throttle_group_foreach(ThrottleGroup *g,
                            void (*fn)(ThrottleMember *m, void *opaque),
                            void *opaque)
{
    g_mutex_lock(&g->lock);
    for (GList *l = g->members; l; l = l->next) {
        fn(l->data, opaque);
    }
    g_mutex_unlock(&g->lock);
}

static void member_unref(ThrottleMember *m)
{
    if (__atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        g_free(m->name);
        g_free(m);
    }
}

static void member_wake_cb(void *opaque)
{
    ThrottleMember *m = opaque;

    if (!m->gone) {
        m->restart(m->opaque);
    }
    member_unref(m);
}

/*
 * Let @m look at its queue again, on its own loop.  From that loop a
 * timer due now does it without allocating; from another thread the
 * loop is posted to (holding a reference: @m may leave meanwhile).
 */
static void member_wake(ThrottleMember *m)
{
    if (loop_in_thread(m->loop)) {
        loop_timer_mod(m->timer, clock_ns());
        return;
    }
    __atomic_add_fetch(&m->refs, 1, __ATOMIC_ACQ_REL);
    loop_post(m->loop, member_wake_cb, m);
}

void throttle_group_config(ThrottleGroup *g, const uint64_t *rates,
                           unsigned n)
{
    ThrottleMember *tok;

    g_mutex_lock(&g->lock);
    memset(g->rates, 0, sizeof(g->rates));
    memcpy(g->rates, rates, n * sizeof(*rates));
    throttle_config(&g->t, rates, n, clock_ns());
    tok = g->token;
    if (tok) {
        /* Its timer may be set for the old rates: look again now. */
        __atomic_add_fetch(&tok->refs, 1, __ATOMIC_ACQ_REL);
    }
    g_mutex_unlock(&g->lock);
    if (tok) {
        loop_post(tok->loop, member_wake_cb, tok);
    }
}

void throttle_group_rates(ThrottleGroup *g, uint64_t *rates, unsigned n)
{
    g_mutex_lock(&g->lock);
    memcpy(rates, g->rates, n * sizeof(*rates));
    g_mutex_unlock(&g->lock);
}

static void member_timer_cb(void *opaque)
{
    ThrottleMember *m = opaque;

    m->restart(m->opaque);
}

ThrottleMember *throttle_member_new(ThrottleGroup *g, EventLoop *loop,
                                    const char *name,
                                    void (*restart)(void *opaque),
                                    void *opaque)
{
    ThrottleMember *m = g_new0(ThrottleMember, 1);

    m->g = g;
    m->loop = loop;
    m->name = g_strdup(name);
    m->restart = restart;
    m->opaque = opaque;
    m->refs = 1;
    m->timer = loop_timer_new(loop, member_timer_cb, m);
    g_mutex_lock(&g->lock);
    g->members = g_list_append(g->members, m);
    g_mutex_unlock(&g->lock);
    return m;
}

/*
 * With the lock: the member after @m in the ring that has requests
 * waiting, @m itself last; NULL when none has.
 */
static ThrottleMember *next_pending(ThrottleGroup *g, ThrottleMember *m)
{
    GList *at = g_list_find(g->members, m);

    for (GList *l = at->next; l; l = l->next) {
        if (((ThrottleMember *)l->data)->pending) {
            return l->data;
        }
    }
    for (GList *l = g->members; l != at->next; l = l->next) {
        if (((ThrottleMember *)l->data)->pending) {
            return l->data;
        }
    }
    return NULL;
}

/* With the lock: @m has nothing waiting any more; who holds the token? */
static ThrottleMember *member_idle_locked(ThrottleMember *m)
{
    ThrottleGroup *g = m->g;

    m->pending = false;
    if (g->token != m) {
        return NULL;
    }
    g->token = next_pending(g, m);
    return g->token;
}

void throttle_member_free(ThrottleMember *m)
{
    ThrottleGroup *g;
    ThrottleMember *next;

    if (!m) {
        return;
    }
    g = m->g;
    g_mutex_lock(&g->lock);
    next = member_idle_locked(m);
    g->members = g_list_remove(g->members, m);
    g_mutex_unlock(&g->lock);
    if (next) {
        member_wake(next);
    }
    m->gone = true;
    loop_timer_free(m->timer);
    m->timer = NULL;
    member_unref(m);
}

ThrottleGroup *throttle_member_group(ThrottleMember *m)
{
    return m->g;
}

const char *throttle_member_name(ThrottleMember *m)
{
    return m->name;
}

void throttle_member_stats(ThrottleMember *m, ThrottleMemberStats *st)
{
    *st = m->stats;
}

bool throttle_member_may_go(ThrottleMember *m, unsigned mask,
                            const uint64_t *cost)
{
    ThrottleGroup *g = m->g;
    int64_t now = clock_ns();
    int64_t wait;

    g_mutex_lock(&g->lock);
    throttle_leak(&g->t, now);
    wait = throttle_enabled(&g->t) ? throttle_wait_ns(&g->t, mask) : 0;
    /* Others waiting go first, or a busy member would overtake them. */
    if (!g->token && wait == 0) {
        throttle_account(&g->t, mask, cost);
        g_mutex_unlock(&g->lock);
        return true;
    }
    m->pending = true;
    if (g->token) {
        g_mutex_unlock(&g->lock);
        return false;
    }
    g->token = m;
    g_mutex_unlock(&g->lock);
    loop_timer_mod(m->timer, now + wait);
    return false;
}

bool throttle_member_turn(ThrottleMember *m, unsigned mask,
                          const uint64_t *cost)
{
    ThrottleGroup *g = m->g;
    int64_t now = clock_ns();
    int64_t wait;

    g_mutex_lock(&g->lock);
    if (g->token != m) {
        g_mutex_unlock(&g->lock);
        return false;
    }
    throttle_leak(&g->t, now);
    wait = throttle_enabled(&g->t) ? throttle_wait_ns(&g->t, mask) : 0;
    if (wait == 0) {
        throttle_account(&g->t, mask, cost);
    }
    g_mutex_unlock(&g->lock);
    if (wait) {
        loop_timer_mod(m->timer, now + wait);
        return false;
    }
    return true;
}

bool throttle_member_passed(ThrottleMember *m, int64_t waited_ns, bool more)
{
    ThrottleGroup *g = m->g;
    ThrottleMember *next;

    g_mutex_lock(&g->lock);
    m->stats.delayed++;
    m->stats.delay_ns += waited_ns;
    m->pending = more;
    throttle_leak(&g->t, clock_ns());
    /*
     * One request per turn keeps the members fair while the group keeps
     * up.  When it fell behind (each hand-over is a wake-up of another
     * thread, which a busy machine may serve late), the holder goes on
     * while the buckets have that much to spare: the group still gets
     * its rate, and each holder in turn gets such a run.
     */
    next = more && throttle_behind(&g->t) ? m : next_pending(g, m);
    g->token = next;
    g_mutex_unlock(&g->lock);
    if (next == m) {
        return true;
    }
    if (next) {
        member_wake(next);
    }
    return false;
}

void throttle_member_cancelled(ThrottleMember *m)
{
    ThrottleMember *next;

    g_mutex_lock(&m->g->lock);
    next = member_idle_locked(m);
    g_mutex_unlock(&m->g->lock);
    if (next && next != m) {
        member_wake(next);
    }
}
