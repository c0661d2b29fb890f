/*
 * IOThreads: a thread running one event loop.
 */
#include "util/iothread.h"
#include "util/cmdline.h"
#include "util/error.h"

#include <sys/syscall.h>

struct IOThread {
    char *id;
    EventLoop *loop;
    GThread *thread;
    int tid;
    LoopPollParams poll;
    unsigned users;
    /* Start-up handshake. */
    GMutex lock;
    GCond cond;
    bool started;
};

static GList *iothreads;                /* creation order */
static char *main_loop_id;              /* -object main-loop, if given */

static gpointer iothread_run(gpointer opaque)
{
    IOThread *t = opaque;

    loop_attach_thread(t->loop);
    g_mutex_lock(&t->lock);
    t->tid = syscall(SYS_gettid);
    t->started = true;
    g_cond_signal(&t->cond);
    g_mutex_unlock(&t->lock);
    loop_run(t->loop);
    return NULL;
}

static bool get_int(Keyval *kv, const char *key, int64_t *out,
                    GError **errp)
{
    const char *v = keyval_get(kv, key);
    uint64_t n;

    if (!v) {
        return true;
    }
    if (!parse_uint(v, &n, errp) || n > INT64_MAX) {
        g_clear_error(errp);
        error_setg(errp, "property '%s': '%s' is not a non-negative "
                   "integer", key, v);
        return false;
    }
    *out = n;
    return true;
}

/* id and poll-* of an iothread or main-loop object. */
static bool object_props(Keyval *kv, LoopPollParams *p, GError **errp)
{
    const char *id = keyval_get(kv, "id");

    if (!id) {
        error_setg(errp, "property 'id' is required");
        return false;
    }
    if (!check_id("id", id, SIZE_MAX, errp)) {
        return false;
    }
    if (iothread_find(id) || !g_strcmp0(id, main_loop_id)) {
        error_setg(errp, "attempt to add duplicate property '%s' to object "
                   "(type 'container')", id);
        return false;
    }
    *p = (LoopPollParams) {
        .max_ns = LOOP_POLL_MAX_NS_DEFAULT,
        .idle_ns = LOOP_WATCH_MAX_NS_DEFAULT,
    };
    return get_int(kv, "poll-max-ns", &p->max_ns, errp) &&
           get_int(kv, "poll-grow", &p->grow, errp) &&
           get_int(kv, "poll-shrink", &p->shrink, errp) &&
           get_int(kv, "poll-idle-ns", &p->idle_ns, errp) &&
           keyval_check_unused(kv, errp);
}

/* The main loop's busy polling (it has no thread of its own to make). */
static bool main_loop_configure(Keyval *kv, GError **errp)
{
    LoopPollParams p;

    if (main_loop_id) {
        error_setg(errp, "there is only one main-loop object ('%s')",
                   main_loop_id);
        return false;
    }
    if (!object_props(kv, &p, errp)) {
        return false;
    }
    main_loop_id = g_strdup(keyval_get(kv, "id"));
    loop_set_poll(loop_main(), &p);
    return true;
}

bool iothread_object_add(Keyval *kv, GError **errp)
{
    /* What makes it again (a live upgrade's), before the kv is used. */
    g_autofree char *arg = keyval_to_str(kv);
    const char *type = keyval_get(kv, "qom-type");
    const IovdObjectType *other = type ? iovd_find_object_type(type) : NULL;
    bool ok;

    if (other) {
        ok = other->add(kv, errp);
    } else if (!g_strcmp0(type, "main-loop")) {
        ok = main_loop_configure(kv, errp);
    } else {
        ok = iothread_create(kv, errp) != NULL;
    }
    if (ok) {
        iovd_config_created(iovd_config_key("object", keyval_get(kv, "id")),
                            "object", g_steal_pointer(&arg));
    }
    return ok;
}

IOThread *iothread_create(Keyval *kv, GError **errp)
{
    const char *type = keyval_get(kv, "qom-type");
    const char *id = keyval_get(kv, "id");
    LoopPollParams p;
    g_autofree char *name = NULL;
    IOThread *t;
    EventLoop *loop;

    if (!type || strcmp(type, "iothread") != 0) {
        g_autofree char *more = iovd_object_type_names();

        error_setg(errp, "unknown object type '%s' (known: iothread, "
                   "main-loop%s)", type ? type : "", more);
        return NULL;
    }
    if (!object_props(kv, &p, errp)) {
        return NULL;
    }
    name = g_strdup_printf("iothread %s", id);
    loop = loop_new(name, errp);
    if (!loop) {
        return NULL;
    }
    t = g_new0(IOThread, 1);
    t->id = g_strdup(id);
    t->loop = loop;
    t->poll = p;
    loop_set_poll(loop, &p);
    g_mutex_init(&t->lock);
    g_cond_init(&t->cond);
    t->thread = g_thread_new(name, iothread_run, t);
    g_mutex_lock(&t->lock);
    while (!t->started) {
        g_cond_wait(&t->cond, &t->lock);
    }
    g_mutex_unlock(&t->lock);
    iothreads = g_list_append(iothreads, t);
    return t;
}

static void iothread_free(IOThread *t)
{
    loop_quit(t->loop);
    g_thread_join(t->thread);
    loop_free(t->loop);
    g_mutex_clear(&t->lock);
    g_cond_clear(&t->cond);
    g_free(t->id);
    g_free(t);
}

bool iothread_delete(const char *id, GError **errp)
{
    IOThread *t = iothread_find(id);

    if (!g_strcmp0(id, main_loop_id)) {
        error_setg(errp, "object '%s' is the main loop: it cannot be "
                   "deleted", id);
        return false;
    }
    if (!t) {
        error_setg(errp, "object '%s' not found", id);
        return false;
    }
    if (t->users) {
        error_setg(errp, "iothread '%s' is in use by %u device(s)", id,
                   t->users);
        return false;
    }
    iothreads = g_list_remove(iothreads, t);
    iothread_free(t);
    return true;
}

IOThread *iothread_find(const char *id)
{
    for (GList *l = iothreads; l; l = l->next) {
        IOThread *t = l->data;

        if (strcmp(t->id, id) == 0) {
            return t;
        }
    }
    return NULL;
}

IOThread *iothread_of_loop(EventLoop *loop)
{
    for (GList *l = iothreads; l; l = l->next) {
        IOThread *t = l->data;

        if (t->loop == loop) {
            return t;
        }
    }
    return NULL;
}

EventLoop *iothread_loop(IOThread *t)
{
    return t->loop;
}

void iothread_get_info(IOThread *t, IOThreadInfo *info)
{
    info->id = t->id;
    info->thread_id = t->tid;
    info->poll = t->poll;
    info->users = t->users;
}

void iothread_foreach(void (*fn)(IOThread *t, void *opaque), void *opaque)
{
    for (GList *l = iothreads; l; l = l->next) {
        fn(l->data, opaque);
    }
}

void iothread_ref(IOThread *t)
{
    t->users++;
}

void iothread_unref(IOThread *t)
{
    g_assert(t->users > 0);
    t->users--;
}

void iothread_delete_all(void)
{
    while (iothreads) {
        IOThread *t = iothreads->data;

        iothreads = g_list_delete_link(iothreads, iothreads);
        iothread_free(t);
    }
}

static bool opt_object(const char *arg, GError **errp)
{
    g_autoptr(Keyval) kv = keyval_parse(arg, "qom-type", errp);

    return kv && iothread_object_add(kv, errp);
}

static bool help_object(const char *arg, FILE *out, GError **errp);

static const IovdOption iothread_options[] = {
    { "object", true, PHASE_OBJECT, opt_object,
      "-object iothread,id=ID[,poll-max-ns=N][,poll-grow=G][,poll-shrink=S]"
      "[,poll-idle-ns=I]"
      "\n                         an event loop on a thread of its own "
      "(devices take iothread=ID)\n"
      "  -object main-loop,id=ID[,poll-max-ns=N][,poll-grow=G]"
      "[,poll-shrink=S][,poll-idle-ns=I]\n"
      "                         busy polling of the main loop (default "
      "poll-max-ns=32768; 0 off)", help_object },
    { NULL }
};

/* -object help: the types above and those other subsystems registered. */
static bool help_object(const char *arg, FILE *out, GError **errp)
{
    fprintf(out, "  %s\n", iothread_options[0].help);
    iovd_print_object_types(out);
    return true;
}

void iothread_init(void)
{
    iovd_register_options(iothread_options);
}
