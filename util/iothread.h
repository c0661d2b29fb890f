/*
 * IOThreads: event loops on threads of their own (-object iothread,
 * object-add / object-del, query-iothreads).  A device with iothread=ID is
 * owned by that thread's loop (hw/core/device.h); with none it runs on the
 * main loop.  Creating, finding and deleting iothreads is control path:
 * main thread only.
 */
#ifndef UTIL_IOTHREAD_H
#define UTIL_IOTHREAD_H

#include "util/osdep.h"
#include "util/keyval.h"
#include "util/loop.h"

typedef struct IOThread IOThread;

typedef struct IOThreadInfo {
    const char *id;
    int thread_id;              /* the kernel's thread id */
    LoopPollParams poll;
    unsigned users;             /* devices on it */
} IOThreadInfo;

/*
 * Create and start one from "qom-type=iothread,id=io0[,poll-max-ns=N]
 * [,poll-grow=G][,poll-shrink=S][,poll-idle-ns=I]" (as -object and
 * object-add take it).
 */
IOThread *iothread_create(Keyval *kv, GError **errp);
/*
 * -object / object-add: an iothread, or "qom-type=main-loop,id=ID
 * [,poll-*]" which sets the main loop's busy polling (once).
 */
bool iothread_object_add(Keyval *kv, GError **errp);
/* Stop and free @t; fails while devices use it. */
bool iothread_delete(const char *id, GError **errp);
IOThread *iothread_find(const char *id);
EventLoop *iothread_loop(IOThread *t);
void iothread_get_info(IOThread *t, IOThreadInfo *info);
void iothread_foreach(void (*fn)(IOThread *t, void *opaque), void *opaque);
/* Devices take a reference while they run on it. */
void iothread_ref(IOThread *t);
void iothread_unref(IOThread *t);
/* The loop whose thread is @loop's, or NULL for the main loop. */
IOThread *iothread_of_loop(EventLoop *loop);
/* Stop every iothread (exit, after the devices are gone). */
void iothread_delete_all(void);
/* -object (PHASE_OBJECT). */
void iothread_init(void);

#endif
