/*
 * Device registry and lifecycle.  A device type is a const DeviceClass
 * (name, state size, property table, realize/unrealize/reset); an instance
 * is a state struct whose first member is a Device (PCI devices embed a
 * PCIDevice, which starts with a Device).  No object system beyond that.
 */
#ifndef HW_CORE_DEVICE_H
#define HW_CORE_DEVICE_H

#include "util/osdep.h"
#include "hw/core/props.h"

typedef struct Device Device;
typedef struct DeviceClass DeviceClass;

struct DeviceClass {
    const char *name;           /* "nvme", "virtio-blk-pci", ... */
    const char *desc;
    size_t instance_size;
    bool is_pci;                /* a PCI function served over a socket */
    const PropDef *base_props;  /* e.g. pci_common_props (may be NULL) */
    const PropDef *props;       /* driver properties, PROP_DEF_END-terminated */
    /* Make the device ready; properties are already set. */
    bool (*realize)(Device *dev, GError **errp);
    /* Undo realize (after the transport detached). */
    void (*unrealize)(Device *dev);
    /*
     * The one reset: controller/function reset, DEVICE_RESET, client
     * disconnect and teardown all come here.
     */
    void (*reset)(Device *dev);
    /* Pause / resume queue processing (monitor stop / cont). */
    void (*pause)(Device *dev);
    void (*resume)(Device *dev);
};

struct Device {
    const DeviceClass *cls;
    char *id;
    bool realized;
    Device *parent;             /* e.g. the NVMe controller of an nvme-ns */
    struct EventLoop *loop;     /* the loop that owns it (main or iothread) */
    /*
     * A reset may run the main loop (draining I/O); a destroy requested
     * meanwhile (device_del) waits until the reset has returned.
     */
    unsigned in_reset;
    bool destroy_pending;
    struct LoopBH *pending_bh;
};

void device_class_register(const DeviceClass *cls);
const DeviceClass *device_class_find(const char *name);
void device_class_foreach(void (*fn)(const DeviceClass *cls, void *opaque),
                          void *opaque);

/*
 * Create, configure and realize a device from keyval options
 * ("driver=nvme,id=n0,..."), as -device and device_add do.  Errors name the
 * driver and the offending key.
 */
Device *device_create(Keyval *kv, GError **errp);
/* The property tables of @cls in lookup order (common, base, driver). */
unsigned device_class_props(const DeviceClass *cls, const PropDef *tabs[3]);
/* Find a property of @dev by name, and the table it lives in. */
const PropDef *device_find_prop(Device *dev, const char *name);
/* Call @fn for each device whose parent is @parent. */
void device_foreach_child(Device *parent,
                          void (*fn)(Device *dev, void *opaque),
                          void *opaque);
/* Unrealize and free (the transport is torn down first). */
void device_destroy(Device *dev);
Device *device_find(const char *id);
void device_foreach(void (*fn)(Device *dev, void *opaque), void *opaque);
void device_reset(Device *dev);
/* Destroy every device, children before parents (shutdown). */
void device_destroy_all(void);

/* Common properties of every device: id. */
extern const PropDef device_common_props[];

/*
 * Hooks for the PCI transport: the core calls them when a PCI device is
 * realized / about to be destroyed, so hw/core never includes the
 * transport.  Set once at startup by hw/vfio-user.
 */
typedef struct DeviceTransportHooks {
    bool (*attach)(Device *dev, GError **errp);
    void (*detach)(Device *dev);
} DeviceTransportHooks;
void device_set_transport_hooks(const DeviceTransportHooks *hooks);

#endif
