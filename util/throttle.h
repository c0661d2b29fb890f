/*
 * Rate limits: leaky buckets, and groups of members sharing them.
 *
 * A bucket has a rate (units per second: bytes, operations, frames) and a
 * level, what was spent and has not leaked away yet.  An operation may go
 * while the level is at most one tenth of a second's worth (the burst);
 * it then adds its cost, so over any long window the units that went are
 * the rate times the window, plus at most one burst and one operation.
 * A Throttle is a set of such buckets that one user owns (one thread, no
 * lock): the network layer's per-direction limits use one directly.
 *
 * A ThrottleGroup is a Throttle shared by members that may run on
 * different loops (block backends of devices on several iothreads): its
 * buckets are under the group's lock.  Each member keeps its own queue
 * of waiting requests; the group decides whose turn it is.  One member
 * at a time holds the group's token: it alone waits (on its own loop's
 * timer) for the buckets, sends one request, then passes the token to
 * the next member that waits, round robin, so a busy member cannot
 * starve the others.  (A holder that finds the group behind its rates,
 * its buckets drained by late wake-ups, sends on while they have that
 * much to spare, so that the group still gets its rate.)  A member that gets the token from another thread
 * is woken on its own loop (loop_post), so every request leaves from the
 * loop of its device.
 */
#ifndef UTIL_THROTTLE_H
#define UTIL_THROTTLE_H

#include "util/osdep.h"

struct EventLoop;

#define THROTTLE_MAX_BUCKETS 6

typedef struct ThrottleBucket {
    uint64_t rate;              /* units per second; 0 = unlimited */
    double level;               /* units spent, leaking at rate */
} ThrottleBucket;

typedef struct Throttle {
    ThrottleBucket b[THROTTLE_MAX_BUCKETS];
    int64_t last_ns;            /* when the levels were last leaked */
} Throttle;

/* Set the rates of buckets 0..@n-1 (the others: unlimited); levels 0. */
void throttle_config(Throttle *t, const uint64_t *rates, unsigned n,
                     int64_t now);
/* Any bucket limited? */
bool throttle_enabled(const Throttle *t);
/* Let the levels leak down to @now. */
void throttle_leak(Throttle *t, int64_t now);
/*
 * Nanoseconds until an operation charged to the buckets in @mask (bit i:
 * bucket i) may go: 0 when each of them is at most one burst full.
 * Leak first.
 */
int64_t throttle_wait_ns(const Throttle *t, unsigned mask);
/* Charge @cost[i] units to each bucket i in @mask. */
void throttle_account(Throttle *t, unsigned mask, const uint64_t *cost);

/* ---- groups ---- */

typedef struct ThrottleGroup ThrottleGroup;
typedef struct ThrottleMember ThrottleMember;

/* The group's own statistics and one member's (query output). */
typedef struct ThrottleMemberStats {
    uint64_t delayed;           /* requests that waited for the group */
    uint64_t delay_ns;          /* their waiting time, summed */
} ThrottleMemberStats;

ThrottleGroup *throttle_group_new(const char *id);
/* Free a group without members. */
void throttle_group_free(ThrottleGroup *g);
const char *throttle_group_id(ThrottleGroup *g);
/* New rates, any thread; the member holding the token looks again. */
void throttle_group_config(ThrottleGroup *g, const uint64_t *rates,
                           unsigned n);
void throttle_group_rates(ThrottleGroup *g, uint64_t *rates, unsigned n);
unsigned throttle_group_members(ThrottleGroup *g);
/* Any thread: @fn for each member, with the group's lock held. */
void throttle_group_foreach(ThrottleGroup *g,
                            void (*fn)(ThrottleMember *m, void *opaque),
                            void *opaque);

/*
 * Join @g.  @restart runs on @loop when the member's turn came or the
 * limits changed: it calls throttle_member_turn() for its first waiting
 * request, sends it when allowed, and throttle_member_passed() after.
 * Call on @loop's thread; so are the functions below, except
 * throttle_member_name() and throttle_member_stats(), which are for
 * throttle_group_foreach()'s callback (the group's lock held).
 */
ThrottleMember *throttle_member_new(ThrottleGroup *g, struct EventLoop *loop,
                                    const char *name,
                                    void (*restart)(void *opaque),
                                    void *opaque);
/* Leave the group (nothing of it may wait any more). */
void throttle_member_free(ThrottleMember *m);
ThrottleGroup *throttle_member_group(ThrottleMember *m);
const char *throttle_member_name(ThrottleMember *m);
void throttle_member_stats(ThrottleMember *m, ThrottleMemberStats *st);

/*
 * A new request (@mask, @cost as throttle_account) when the member has
 * none waiting: true when it may go now (it was charged); false when it
 * must wait in the member's queue (the member then waits for its turn).
 */
bool throttle_member_may_go(ThrottleMember *m, unsigned mask,
                            const uint64_t *cost);
/*
 * From @restart, for the first waiting request: true when it may go now
 * (charged; send it, then call throttle_member_passed); false when it is
 * not this member's turn or the buckets are full (the member's timer or
 * another member's turn restarts it later).
 */
bool throttle_member_turn(ThrottleMember *m, unsigned mask,
                          const uint64_t *cost);
/*
 * After a request that throttle_member_turn() let go, which had waited
 * @waited_ns: pass the token on.  @more: the member still has requests
 * waiting.  True when it is this member's turn again (call turn again).
 */
bool throttle_member_passed(ThrottleMember *m, int64_t waited_ns,
                            bool more);
/* The member's queue was emptied without sending (cancelled). */
void throttle_member_cancelled(ThrottleMember *m);

#endif
