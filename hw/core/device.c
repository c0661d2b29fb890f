/*
 * Device registry and lifecycle.
 */
#include "hw/core/device.h"
#include "util/error.h"
#include "util/loop.h"

static GHashTable *device_classes;      /* name -> DeviceClass */
static GList *devices;                  /* of Device *, creation order */
static const DeviceTransportHooks *transport_hooks;

const PropDef device_common_props[] = {
    PROP_DEF_STR("id", Device, id, "device identifier"),
    PROP_DEF_END
};

void device_class_register(const DeviceClass *cls)
{
    if (!device_classes) {
        device_classes = g_hash_table_new(g_str_hash, g_str_equal);
    }
    g_assert(!g_hash_table_contains(device_classes, cls->name));
    g_hash_table_insert(device_classes, (gpointer)cls->name, (gpointer)cls);
}

const DeviceClass *device_class_find(const char *name)
{
    return device_classes ? g_hash_table_lookup(device_classes, name) : NULL;
}

static gint class_cmp(gconstpointer a, gconstpointer b)
{
    const DeviceClass *ca = a, *cb = b;

    return strcmp(ca->name, cb->name);
}

void device_class_foreach(void (*fn)(const DeviceClass *cls, void *opaque),
                          void *opaque)
{
    GList *l, *sorted;

    if (!device_classes) {
        return;
    }
    sorted = g_list_sort(g_hash_table_get_values(device_classes), class_cmp);
    for (l = sorted; l; l = l->next) {
        fn(l->data, opaque);
    }
    g_list_free(sorted);
}

void device_set_transport_hooks(const DeviceTransportHooks *hooks)
{
    transport_hooks = hooks;
}

unsigned device_class_props(const DeviceClass *cls, const PropDef *tabs[3])
{
    unsigned n = 0;

    tabs[n++] = device_common_props;
    if (cls->base_props) {
        tabs[n++] = cls->base_props;
    }
    if (cls->props) {
        tabs[n++] = cls->props;
    }
    return n;
}

const PropDef *device_find_prop(Device *dev, const char *name)
{
    const PropDef *tabs[3];
    unsigned n = device_class_props(dev->cls, tabs);

    for (unsigned i = 0; i < n; i++) {
        const PropDef *p = props_find(tabs[i], name);

        if (p) {
            return p;
        }
    }
    return NULL;
}

Device *device_find(const char *id)
{
    for (GList *l = devices; l; l = l->next) {
        Device *dev = l->data;

        if (dev->id && strcmp(dev->id, id) == 0) {
            return dev;
        }
    }
    return NULL;
}

static void device_free(Device *dev)
{
    const PropDef *tabs[3];
    unsigned n = device_class_props(dev->cls, tabs);

    for (unsigned i = 0; i < n; i++) {
        props_free(tabs[i], dev);
    }
    g_free(dev);
}

static bool id_valid(const char *id)
{
    if (!g_ascii_isalpha(id[0])) {
        return false;
    }
    for (const char *p = id; *p; p++) {
        if (!g_ascii_isalnum(*p) && *p != '-' && *p != '_' && *p != '.') {
            return false;
        }
    }
    return true;
}

Device *device_create(Keyval *kv, GError **errp)
{
    const char *driver = keyval_get(kv, "driver");
    const DeviceClass *cls;
    const PropDef *tabs[3];
    unsigned n;
    Device *dev;

    if (!driver) {
        error_setg(errp, "missing property 'driver'");
        return NULL;
    }
    cls = device_class_find(driver);
    if (!cls) {
        error_setg(errp, "unknown device type '%s' (try -device help)",
                   driver);
        return NULL;
    }
    dev = g_malloc0(cls->instance_size);
    dev->cls = cls;
    dev->loop = loop_main();
    n = device_class_props(cls, tabs);
    for (unsigned i = 0; i < n; i++) {
        if (!props_apply(tabs[i], dev, kv, errp)) {
            goto fail;
        }
    }
    if (!keyval_check_unused(kv, errp)) {
        goto fail;
    }
    if (dev->id) {
        if (!id_valid(dev->id)) {
            error_setg(errp, "property 'id': '%s' is not a valid identifier "
                       "(a letter, then letters, digits, '-', '_', '.')",
                       dev->id);
            goto fail;
        }
        if (device_find(dev->id)) {
            error_setg(errp, "duplicate device id '%s'", dev->id);
            goto fail;
        }
    } else {
        for (unsigned i = 0;; i++) {
            g_autofree char *id = g_strdup_printf("%s%u", cls->name, i);

            if (!device_find(id)) {
                dev->id = g_steal_pointer(&id);
                break;
            }
        }
    }
    if (cls->realize && !cls->realize(dev, errp)) {
        goto fail;
    }
    dev->realized = true;
    if (cls->is_pci && transport_hooks &&
        !transport_hooks->attach(dev, errp)) {
        if (cls->unrealize) {
            cls->unrealize(dev);
        }
        goto fail;
    }
    devices = g_list_append(devices, dev);
    return dev;

fail:
    device_free(dev);
    return NULL;
}

void device_foreach(void (*fn)(Device *dev, void *opaque), void *opaque)
{
    GList *copy = g_list_copy(devices);

    for (GList *l = copy; l; l = l->next) {
        fn(l->data, opaque);
    }
    g_list_free(copy);
}

void device_foreach_child(Device *parent,
                          void (*fn)(Device *dev, void *opaque),
                          void *opaque)
{
    GList *copy = g_list_copy(devices);

    for (GList *l = copy; l; l = l->next) {
        Device *dev = l->data;

        if (dev->parent == parent) {
            fn(dev, opaque);
        }
    }
    g_list_free(copy);
}

static void device_destroy_deferred(void *opaque)
{
    Device *dev = opaque;

    device_destroy(dev);
}

void device_reset(Device *dev)
{
    if (!dev->cls->reset) {
        return;
    }
    dev->in_reset++;
    dev->cls->reset(dev);
    if (--dev->in_reset == 0 && dev->destroy_pending) {
        /* Not from here: our caller still uses the device. */
        LoopBH *bh = loop_bh_new(dev->loop, device_destroy_deferred, dev);

        dev->destroy_pending = false;
        dev->in_reset = 1;              /* until the BH runs */
        dev->pending_bh = bh;
        loop_bh_schedule(bh);
    }
}

static void destroy_child(Device *dev, void *opaque)
{
    device_destroy(dev);
}

void device_destroy(Device *dev)
{
    if (dev->pending_bh) {
        loop_bh_delete(dev->pending_bh);
        dev->pending_bh = NULL;
        dev->in_reset = 0;
    }
    if (dev->in_reset) {
        dev->destroy_pending = true;
        return;
    }
    device_foreach_child(dev, destroy_child, NULL);
    devices = g_list_remove(devices, dev);
    if (dev->cls->is_pci && transport_hooks) {
        transport_hooks->detach(dev);
    }
    if (dev->realized) {
        device_reset(dev);
        if (dev->cls->unrealize) {
            dev->cls->unrealize(dev);
        }
    }
    device_free(dev);
}

void device_destroy_all(void)
{
    /*
     * Newest first: children are created after their parents.  At shutdown
     * no reset is on the stack, so nothing defers.
     */
    while (devices) {
        Device *dev = g_list_last(devices)->data;

        dev->in_reset = 0;
        device_destroy(dev);
    }
}
