/*
 * Device commands: query-pci, query-vfio-user, device_add / device_del and
 * the qom-* property commands.  Everything goes through the device registry
 * and the property tables; vfio-user servers are only read.
 */
#include "qapi/qapi-commands.h"
#include "qapi/events.h"
#include "qapi/qmp.h"
#include "hw/core/device.h"
#include "hw/pci/pci.h"
#include "hw/vfio-user/vfio-user.h"
#include "util/error.h"
#include "util/keyval.h"

static json_object *jstr(const char *s)
{
    return json_object_new_string(s ? s : "");
}

static const char *json_str_arg(json_object *args, const char *key)
{
    json_object *v;

    return json_object_object_get_ex(args, key, &v) ?
           json_object_get_string(v) : NULL;
}

/* ---- query-pci ---- */

typedef struct PciClassName {
    uint16_t class;
    const char *desc;
} PciClassName;

/* Class codes (base << 8 | sub) from the PCI Code and ID Assignment spec. */
static const PciClassName pci_class_names[] = {
    { 0x0100, "SCSI controller" },
    { 0x0101, "IDE controller" },
    { 0x0105, "ATA controller" },
    { 0x0106, "SATA controller" },
    { 0x0107, "SAS controller" },
    { 0x0108, "Non-Volatile memory controller" },
    { 0x0180, "Storage controller" },
    { 0x0200, "Ethernet controller" },
    { 0x0280, "Network controller" },
    { 0x0300, "VGA controller" },
    { 0x0380, "Display controller" },
    { 0x0401, "Audio controller" },
    { 0x0500, "RAM controller" },
    { 0x0600, "Host bridge" },
    { 0x0604, "PCI bridge" },
    { 0x0780, "Communication controller" },
    { 0x0880, "System peripheral" },
    { 0x0c03, "USB controller" },
    { 0x0c05, "SMBus" },
    { 0x1000, "Encryption controller" },
};

static const char *pci_class_desc(uint16_t class)
{
    for (unsigned i = 0; i < ARRAY_SIZE(pci_class_names); i++) {
        if (pci_class_names[i].class == class) {
            return pci_class_names[i].desc;
        }
    }
    return NULL;
}

static json_object *pci_regions(PCIDevice *pdev)
{
    json_object *list = json_object_new_array();

    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        PCIBar *bar = &pdev->bars[i];
        uint32_t off = PCI_BASE_ADDRESS_0 + 4 * i;
        bool io = bar->type & PCI_BAR_IO;
        bool is64 = !io && (bar->type & PCI_BAR_MEM64);
        uint64_t addr;
        json_object *r;

        if (!bar->size) {
            continue;
        }
        addr = pci_get_long(pdev->config + off);
        if (is64 && i + 1 < PCI_NUM_BARS) {
            addr |= (uint64_t)pci_get_long(pdev->config + off + 4) << 32;
        }
        addr &= io ? ~(uint64_t)0x3 : ~(uint64_t)0xf;
        r = json_object_new_object();
        json_object_object_add(r, "bar", json_object_new_int(i));
        json_object_object_add(r, "type",
                               json_object_new_string(io ? "io" : "memory"));
        json_object_object_add(r, "address", json_object_new_uint64(addr));
        json_object_object_add(r, "size",
                               json_object_new_uint64(bar->size));
        if (!io) {
            json_object_object_add(r, "prefetch", json_object_new_boolean(
                                       bar->type & PCI_BAR_PREFETCH));
            json_object_object_add(r, "mem_type_64",
                                   json_object_new_boolean(is64));
        }
        json_object_array_add(list, r);
        if (is64) {
            i++;        /* the upper half of this BAR */
        }
    }
    return list;
}

/* On the device's loop: its configuration space is its own. */
static void pci_device_info_on_loop(Device *dev, void *opaque)
{
    json_object *devices = opaque;
    PCIDevice *pdev;
    json_object *d, *cls, *id;
    uint16_t class;
    const char *desc;

    if (!dev->cls->is_pci || !dev->realized) {
        return;
    }
    pdev = PCI_DEVICE(dev);
    if (!pdev->config) {
        return;
    }
    class = pci_get_word(pdev->config + PCI_CLASS_DEVICE);
    desc = pci_class_desc(class);
    d = json_object_new_object();
    json_object_object_add(d, "bus", json_object_new_int(0));
    json_object_object_add(d, "slot", json_object_new_int(
                               json_object_array_length(devices)));
    json_object_object_add(d, "function", json_object_new_int(0));
    cls = json_object_new_object();
    if (desc) {
        json_object_object_add(cls, "desc", json_object_new_string(desc));
    }
    json_object_object_add(cls, "class", json_object_new_int(class));
    json_object_object_add(d, "class_info", cls);
    id = json_object_new_object();
    json_object_object_add(id, "device", json_object_new_int(
                               pci_get_word(pdev->config + PCI_DEVICE_ID)));
    json_object_object_add(id, "vendor", json_object_new_int(
                               pci_get_word(pdev->config + PCI_VENDOR_ID)));
    json_object_object_add(id, "subsystem", json_object_new_int(
                               pci_get_word(pdev->config +
                                            PCI_SUBSYSTEM_ID)));
    json_object_object_add(id, "subsystem-vendor", json_object_new_int(
                               pci_get_word(pdev->config +
                                            PCI_SUBSYSTEM_VENDOR_ID)));
    json_object_object_add(d, "id", id);
    if (pdev->config[PCI_INTERRUPT_PIN]) {
        json_object_object_add(d, "irq", json_object_new_int(
                                   pdev->config[PCI_INTERRUPT_LINE]));
    }
    json_object_object_add(d, "irq_pin", json_object_new_int(
                               pdev->config[PCI_INTERRUPT_PIN]));
    json_object_object_add(d, "qdev_id", jstr(dev->id));
    json_object_object_add(d, "regions", pci_regions(pdev));
    json_object_array_add(devices, d);
}

static void pci_device_info(Device *dev, void *opaque)
{
    device_run_sync(dev, pci_device_info_on_loop, opaque);
}

bool qmp_query_pci(json_object *args, json_object **ret, GError **errp)
{
    json_object *bus = json_object_new_object();
    json_object *devices = json_object_new_array();
    json_object *list = json_object_new_array();

    device_foreach(pci_device_info, devices);
    json_object_object_add(bus, "bus", json_object_new_int(0));
    json_object_object_add(bus, "devices", devices);
    json_object_array_add(list, bus);
    *ret = list;
    return true;
}

/* ---- query-vfio-user ---- */

static const char *const vfu_irq_names[VFU_NUM_IRQS] = {
    "intx", "msi", "msix", "err", "req",
};

static void vfu_info(const VfuServerInfo *i, void *opaque)
{
    json_object *list = opaque;
    json_object *o = json_object_new_object();
    json_object *irqs = json_object_new_array();

    json_object_object_add(o, "id", jstr(i->id));
    json_object_object_add(o, "driver", jstr(i->driver));
    if (i->socket) {
        json_object_object_add(o, "socket", jstr(i->socket));
    }
    json_object_object_add(o, "listening",
                           json_object_new_boolean(i->listening));
    json_object_object_add(o, "connected",
                           json_object_new_boolean(i->connected));
    json_object_object_add(o, "negotiated",
                           json_object_new_boolean(i->negotiated));
    if (i->negotiated) {
        json_object *v = json_object_new_object();

        json_object_object_add(v, "major", json_object_new_int(0));
        json_object_object_add(v, "minor", json_object_new_int(i->minor));
        json_object_object_add(o, "version", v);
        if (i->caps_json) {
            json_object *caps = json_tokener_parse(i->caps_json);
            json_object *inner;

            /* Report the inner object of {"capabilities": {...}}. */
            if (caps && json_object_object_get_ex(caps, "capabilities",
                                                  &inner)) {
                json_object_object_add(o, "capabilities",
                                       json_object_get(inner));
                json_object_put(caps);
            } else if (caps) {
                json_object_object_add(o, "capabilities", caps);
            }
        }
    }
    json_object_object_add(o, "dma-regions",
                           json_object_new_int(i->dma_regions));
    json_object_object_add(o, "dma-bytes",
                           json_object_new_uint64(i->dma_bytes));
    for (unsigned k = 0; k < VFU_NUM_IRQS; k++) {
        if (i->irqs[k]) {
            json_object *irq = json_object_new_object();

            json_object_object_add(irq, "type",
                                   json_object_new_string(vfu_irq_names[k]));
            json_object_object_add(irq, "count",
                                   json_object_new_int(i->irqs[k]));
            json_object_array_add(irqs, irq);
        }
    }
    json_object_object_add(o, "irqs", irqs);
    json_object_object_add(o, "messages", json_object_new_uint64(i->messages));
    json_object_object_add(o, "errors", json_object_new_uint64(i->errors));
    json_object_object_add(o, "clients", json_object_new_uint64(i->clients));
    json_object_array_add(list, o);
}

bool qmp_query_vfio_user(json_object *args, json_object **ret,
                         GError **errp)
{
    json_object *list = json_object_new_array();

    vfu_query_servers(vfu_info, list);
    *ret = list;
    return true;
}

/* ---- device_add / device_del ---- */

bool qmp_device_add(json_object *args, json_object **ret, GError **errp)
{
    g_autoptr(Keyval) kv = keyval_new();

    if (!qmp_config_may_change("device_add", errp) ||
        !qapi_json_to_keyval(args, kv, NULL, errp)) {
        return false;
    }
    /* The device announces itself to a live upgrade (device_create). */
    return device_create(kv, errp) != NULL;
}

Device *qmp_find_device(const char *path, GError **errp)
{
    Device *dev;

    if (g_str_has_prefix(path, PERIPHERAL_PREFIX)) {
        path += strlen(PERIPHERAL_PREFIX);
    }
    dev = device_find(path);
    if (!dev) {
        error_setg_class(errp, IOVD_ERROR_DEVICE_NOT_FOUND,
                         "Device '%s' not found", path);
    }
    return dev;
}

/* The device is gone (its requests in flight finished): tell. */
static void device_deleted(const char *id, void *opaque)
{
    g_autofree char *path = g_strdup_printf(PERIPHERAL_PREFIX "%s", id);
    json_object *data = json_object_new_object();

    json_object_object_add(data, "device", json_object_new_string(id));
    json_object_object_add(data, "path", json_object_new_string(path));
    qapi_event_send("DEVICE_DELETED", data);
}

/*
 * As QEMU: the command returns at once; DEVICE_DELETED says when the
 * device is gone (at once, or once its requests in flight finished).
 */
bool qmp_device_del(json_object *args, json_object **ret, GError **errp)
{
    const char *id = json_str_arg(args, "id");
    Device *dev;

    if (!qmp_config_may_change("device_del", errp)) {
        return false;
    }
    dev = qmp_find_device(id, errp);
    if (!dev) {
        return false;
    }
    if (dev->state == DEVICE_DELETING) {
        error_setg(errp, "Device '%s' is already being deleted", id);
        return false;
    }
    device_destroy(dev, device_deleted, NULL);
    return true;
}

/* ---- qom-* ---- */

static const char *prop_type_desc(const PropDef *def)
{
    static const char *const uint_names[] = {
        [1] = "uint8", [2] = "uint16", [4] = "uint32", [8] = "uint64",
    };

    if (def->type == PROP_UINT && def->size <= 8 && uint_names[def->size]) {
        return uint_names[def->size];
    }
    return prop_type_name(def);
}

/* A property's text as the JSON type qom-get returns. */
static json_object *prop_text_to_json(const PropDef *def, const char *text)
{
    bool b;
    uint64_t u;

    if (!text) {
        return NULL;
    }
    switch (def->type) {
    case PROP_BOOL:
        if (parse_bool(text, &b, NULL)) {
            return json_object_new_boolean(b);
        }
        break;
    case PROP_UINT:
    case PROP_SIZE:
        if ((def->type == PROP_SIZE ? parse_size(text, &u, NULL)
                                    : parse_uint(text, &u, NULL))) {
            return json_object_new_uint64(u);
        }
        break;
    default:
        break;
    }
    return json_object_new_string(text);
}

static void list_device(Device *dev, void *opaque)
{
    json_object *o = json_object_new_object();
    g_autofree char *type = g_strdup_printf("child<%s>", dev->cls->name);

    json_object_object_add(o, "name", jstr(dev->id));
    json_object_object_add(o, "type", json_object_new_string(type));
    if (dev->cls->desc) {
        json_object_object_add(o, "description",
                               json_object_new_string(dev->cls->desc));
    }
    json_object_array_add(opaque, o);
}

bool qmp_qom_list(json_object *args, json_object **ret, GError **errp)
{
    const char *path = json_str_arg(args, "path");
    json_object *list;
    const PropDef *tabs[3];
    unsigned n;
    Device *dev;

    if (!strcmp(path, "/") || !strcmp(path, "/machine/peripheral") ||
        !strcmp(path, PERIPHERAL_PREFIX)) {
        list = json_object_new_array();
        device_foreach(list_device, list);
        *ret = list;
        return true;
    }
    dev = qmp_find_device(path, errp);
    if (!dev) {
        return false;
    }
    list = json_object_new_array();
    n = device_class_props(dev->cls, tabs);
    for (unsigned i = 0; i < n; i++) {
        for (const PropDef *p = tabs[i]; p->name; p++) {
            json_object *o = json_object_new_object();

            json_object_object_add(o, "name", json_object_new_string(p->name));
            json_object_object_add(o, "type",
                                   json_object_new_string(prop_type_desc(p)));
            if (p->desc) {
                json_object_object_add(o, "description",
                                       json_object_new_string(p->desc));
            }
            if (p->defval) {
                json_object_object_add(o, "default-value",
                                       prop_text_to_json(p, p->defval));
            }
            json_object_object_add(o, "runtime",
                                   json_object_new_boolean(p->runtime));
            json_object_array_add(list, o);
        }
    }
    *ret = list;
    return true;
}

static const PropDef *find_prop(json_object *args, Device **pdev,
                                GError **errp)
{
    const char *name = json_str_arg(args, "property");
    Device *dev = qmp_find_device(json_str_arg(args, "path"), errp);
    const PropDef *def;

    if (!dev) {
        return NULL;
    }
    def = device_find_prop(dev, name);
    if (!def) {
        error_setg(errp, "Property '%s' not found on device '%s' (%s)", name,
                   dev->id, dev->cls->name);
        return NULL;
    }
    *pdev = dev;
    return def;
}

typedef struct QomAccess {
    const PropDef *def;
    char *text;                 /* get: out; set: in */
    GError **errp;
    bool ok;
} QomAccess;

/* On the device's loop: runtime properties are the device's state. */
static void qom_get_on_loop(Device *dev, void *opaque)
{
    QomAccess *a = opaque;

    a->text = prop_get_str(a->def, dev);
}

static void qom_set_on_loop(Device *dev, void *opaque)
{
    QomAccess *a = opaque;

    a->ok = prop_set_str(a->def, dev, a->text, a->errp);
}

bool qmp_qom_get(json_object *args, json_object **ret, GError **errp)
{
    Device *dev;
    QomAccess a = { 0 };
    bool ok;

    if (qmp_throttle_group_qom(args, false, ret, &ok, errp)) {
        return ok;
    }
    a.def = find_prop(args, &dev, errp);
    if (!a.def) {
        return false;
    }
    device_run_sync(dev, qom_get_on_loop, &a);
    *ret = prop_text_to_json(a.def, a.text);
    g_free(a.text);
    return true;
}

bool qmp_qom_set(json_object *args, json_object **ret, GError **errp)
{
    Device *dev;
    const PropDef *def;
    g_autofree char *text = NULL;
    QomAccess a = { 0 };
    json_object *value;
    bool ok;

    if (qmp_throttle_group_qom(args, true, ret, &ok, errp)) {
        return ok;
    }
    def = find_prop(args, &dev, errp);
    if (!def) {
        return false;
    }
    if (!def->runtime) {
        error_setg(errp, "property '%s' of device '%s' cannot be changed at "
                   "run time", def->name, dev->id);
        return false;
    }
    if (!qmp_config_may_change("qom-set", errp)) {
        return false;
    }
    json_object_object_get_ex(args, "value", &value);
    text = qapi_scalar_to_str(value, "value", errp);
    if (!text) {
        return false;
    }
    a.def = def;
    a.text = text;
    a.errp = errp;
    device_run_sync(dev, qom_set_on_loop, &a);
    if (a.ok) {
        g_autofree char *what = g_strdup_printf("%s.%s", dev->id,
                                                def->name);

        qmp_config_changed("qom-set", what);
    }
    return a.ok;
}
