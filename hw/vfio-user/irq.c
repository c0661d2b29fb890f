/*
 * vfio-user interrupts: GET_IRQ_INFO, SET_IRQS (validated completely,
 * then applied), the eventfds per index and vector, and signalling them
 * once per loop iteration.
 */
#include "hw/vfio-user/vfio-user-int.h"
#include "hw/vfio-user/trace.h"
#include "util/bitops.h"
#include "util/loop.h"

#include <sys/eventfd.h>


static unsigned irq_count(VfuServer *s, unsigned index)
{
    PCIDevice *pdev = s->pdev;

    switch (index) {
    case VFIO_PCI_INTX_IRQ_INDEX:
        return pdev->config[PCI_INTERRUPT_PIN] ? 1 : 0;
    case VFIO_PCI_MSI_IRQ_INDEX:
        if (!pdev->msi_cap) {
            return 0;
        }
        return 1u << ((pci_get_word(pdev->config + pdev->msi_cap +
                                    PCI_MSI_FLAGS) & PCI_MSI_FLAGS_QMASK) >> 1);
    case VFIO_PCI_MSIX_IRQ_INDEX:
        return pdev->msix_nvec;
    case VFIO_PCI_ERR_IRQ_INDEX:
    case VFIO_PCI_REQ_IRQ_INDEX:
        return 1;
    }
    return 0;
}

int vfu_handle_irq_info(VfuServer *s, VfuMsg *m)
{
    const VfuIrqInfo *in = (const VfuIrqInfo *)m->payload;
    VfuIrqInfo out = { .argsz = sizeof(out) };

    if (m->len != sizeof(*in) || in->argsz < sizeof(*in)) {
        return vfu_msg_fail(s, m, EINVAL, "GET_IRQ_INFO size");
    }
    if (in->index >= VFU_NUM_IRQS) {
        return vfu_msg_fail(s, m, EINVAL, "irq index out of range");
    }
    out.index = in->index;
    out.count = irq_count(s, in->index);
    out.flags = VFIO_IRQ_INFO_EVENTFD;
    switch (in->index) {
    case VFIO_PCI_INTX_IRQ_INDEX:
        out.flags |= VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED;
        break;
    case VFIO_PCI_MSI_IRQ_INDEX:
    case VFIO_PCI_MSIX_IRQ_INDEX:
        out.flags |= VFIO_IRQ_INFO_MASKABLE;
        break;
    }
    vfu_send_reply(s, &m->hdr, &out, sizeof(out), -1);
    return VFU_REPLIED;
}

static void irq_fds_ensure(VfuServer *s, unsigned index)
{
    unsigned n = irq_count(s, index);

    if (!s->irq_fds[index] && n) {
        s->irq_fds[index] = g_new(int, n);
        for (unsigned i = 0; i < n; i++) {
            s->irq_fds[index][i] = -1;
        }
        s->irq_raised[index] = bitmap_new(n);
        s->irq_nfds[index] = n;
    }
}

static void irq_set_fd(VfuServer *s, unsigned index, unsigned v, int fd)
{
    int *slot = &s->irq_fds[index][v];

    if (*slot >= 0) {
        close(*slot);
    }
    *slot = fd;
}

static unsigned irq_wired(VfuServer *s, unsigned index)
{
    unsigned last = 0;

    for (unsigned v = 0; v < s->irq_nfds[index]; v++) {
        if (s->irq_fds[index][v] >= 0) {
            last = v + 1;
        }
    }
    return last;
}

/* The mode follows what the client wired, as with a VFIO device. */
static void irq_update_mode(VfuServer *s)
{
    PCIIrqMode mode = PCI_IRQ_NONE;
    unsigned count = 0;

    if ((count = irq_wired(s, VFIO_PCI_MSIX_IRQ_INDEX))) {
        mode = PCI_IRQ_MSIX;
    } else if ((count = irq_wired(s, VFIO_PCI_MSI_IRQ_INDEX))) {
        mode = PCI_IRQ_MSI;
    } else if ((count = irq_wired(s, VFIO_PCI_INTX_IRQ_INDEX))) {
        mode = PCI_IRQ_INTX;
    }
    if (mode != s->pdev->irq_mode ||
        (mode != PCI_IRQ_NONE && mode != PCI_IRQ_INTX &&
         count != s->pdev->irq_count[mode == PCI_IRQ_MSIX ? 2 : 1])) {
        trace_vfu_irq_mode(vfu_id(s), mode, count);
    }
    pci_irq_set_mode(s->pdev, mode, count);
}

static void intx_unmask_fd_read(void *opaque)
{
    VfuServer *s = opaque;
    eventfd_t v;

    if (eventfd_read(s->intx_unmask_fd, &v) == 0) {
        pci_irq_mask(s->pdev, PCI_IRQ_INDEX_INTX, 0, false);
    }
}

static void intx_unmask_fd_set(VfuServer *s, int fd)
{
    if (s->intx_unmask_fd >= 0) {
        loop_set_fd(s->loop, s->intx_unmask_fd, NULL, NULL, NULL);
        close(s->intx_unmask_fd);
    }
    s->intx_unmask_fd = fd;
    if (fd >= 0) {
        loop_set_fd(s->loop, fd, intx_unmask_fd_read, NULL, s);
    }
}

void vfu_irq_adopt(VfuServer *s, unsigned index, const int *fds,
                   unsigned n)
{
    irq_fds_ensure(s, index);
    for (unsigned v = 0; v < n && v < s->irq_nfds[index]; v++) {
        irq_set_fd(s, index, v, fds[v]);
    }
    irq_update_mode(s);
}

void vfu_irq_adopt_unmask(VfuServer *s, int fd)
{
    intx_unmask_fd_set(s, fd);
}

void vfu_irq_release(VfuServer *s)
{
    for (unsigned i = 0; i < VFU_NUM_IRQS; i++) {
        for (unsigned v = 0; v < s->irq_nfds[i]; v++) {
            if (s->irq_fds[i][v] >= 0) {
                close(s->irq_fds[i][v]);
            }
        }
        g_clear_pointer(&s->irq_fds[i], g_free);
        g_clear_pointer(&s->irq_raised[i], g_free);
        s->irq_nfds[i] = 0;
    }
    s->irq_any_raised = false;
    intx_unmask_fd_set(s, -1);
    pci_irq_reset(s->pdev);
}

/* Raised now, signalled when the loop iteration ends (vfu_irq_flush). */
void vfu_irq_signal(void *opaque, unsigned index, unsigned vector)
{
    VfuServer *s = opaque;

    if (index < VFU_NUM_IRQS && vector < s->irq_nfds[index]) {
        set_bit(vector, s->irq_raised[index]);
        s->irq_any_raised = true;
    }
}

/* One eventfd write per raised vector: its fd may have changed since. */
void vfu_irq_flush(VfuServer *s)
{
    if (!s->irq_any_raised) {
        return;
    }
    s->irq_any_raised = false;
    for (unsigned i = 0; i < VFU_NUM_IRQS; i++) {
        unsigned n = s->irq_nfds[i];

        for (unsigned v = find_first_bit(s->irq_raised[i], n); v < n;
             v = find_next_bit(s->irq_raised[i], n, v + 1)) {
            clear_bit(v, s->irq_raised[i]);
            if (s->irq_fds[i][v] >= 0) {
                eventfd_write(s->irq_fds[i][v], 1);
                s->nr_irqs++;
            }
        }
    }
}

/*
 * Check a SET_IRQS completely before anything is done: NULL when it can be
 * applied, else why not with *err the errno to reply.  Nothing of the body
 * is read before its size is known.
 */
static const char *set_irqs_validate(VfuServer *s, VfuMsg *m, int *err)
{
    const VfuIrqSet *is = (const VfuIrqSet *)m->payload;
    uint32_t data, action;

    *err = EINVAL;
    if (m->len < sizeof(*is) || is->argsz < sizeof(*is)) {
        return "SET_IRQS size";
    }
    data = is->flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
    action = is->flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
    trace_vfu_set_irqs(vfu_id(s), is->flags, is->index, is->start, is->count,
                       m->nfds);
    if (is->index >= VFU_NUM_IRQS) {
        return "irq index out of range";
    }
    if (is->flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK |
                      VFIO_IRQ_SET_ACTION_TYPE_MASK) ||
        __builtin_popcount(data) != 1 || __builtin_popcount(action) != 1) {
        return "SET_IRQS flags";
    }
    if (!range_within(is->start, is->count, irq_count(s, is->index)) ||
        (is->count == 0 && !(data == VFIO_IRQ_SET_DATA_NONE &&
                             action == VFIO_IRQ_SET_ACTION_TRIGGER))) {
        return "SET_IRQS vector range";
    }
    if (data == VFIO_IRQ_SET_DATA_BOOL ? m->len != sizeof(*is) + is->count
                                       : m->len != sizeof(*is)) {
        return data == VFIO_IRQ_SET_DATA_BOOL ? "SET_IRQS bool array size"
                                              : "SET_IRQS payload size";
    }
    if (data == VFIO_IRQ_SET_DATA_EVENTFD) {
        if (m->nfds != 0 && m->nfds != is->count) {
            return "SET_IRQS fd count";
        }
    } else if (m->nfds) {
        return "SET_IRQS fds without EVENTFD data";
    }
    if (action != VFIO_IRQ_SET_ACTION_TRIGGER) {
        *err = ENOTSUP;
        if (data == VFIO_IRQ_SET_DATA_EVENTFD &&
            (is->index != VFIO_PCI_INTX_IRQ_INDEX ||
             action != VFIO_IRQ_SET_ACTION_UNMASK)) {
            return "SET_IRQS mask eventfd";
        }
        if (data != VFIO_IRQ_SET_DATA_EVENTFD &&
            is->index > VFIO_PCI_MSIX_IRQ_INDEX) {
            return "SET_IRQS mask of ERR/REQ";
        }
    }
    return NULL;
}

/* ACTION_TRIGGER: (un)assign eventfds, or fire vectors (loopback). */
static void set_irqs_trigger(VfuServer *s, VfuMsg *m, uint32_t data)
{
    const VfuIrqSet *is = (const VfuIrqSet *)m->payload;
    const uint8_t *bools = m->payload + sizeof(*is);

    if (data == VFIO_IRQ_SET_DATA_EVENTFD) {
        /* Assign, or with no fds unassign, the eventfds of the range. */
        for (unsigned i = 0; i < is->count; i++) {
            irq_set_fd(s, is->index, is->start + i,
                       m->nfds ? m->fds[i] : -1);
            if (m->nfds) {
                m->fds[i] = -1;     /* consumed */
            }
        }
        irq_update_mode(s);
    } else if (data == VFIO_IRQ_SET_DATA_NONE && is->count == 0) {
        for (unsigned v = 0; v < s->irq_nfds[is->index]; v++) {
            irq_set_fd(s, is->index, v, -1);
        }
        irq_update_mode(s);
    } else {
        for (unsigned i = 0; i < is->count; i++) {
            if (data == VFIO_IRQ_SET_DATA_NONE || bools[i]) {
                vfu_irq_signal(s, is->index, is->start + i);
            }
        }
    }
}

/* ACTION_MASK / UNMASK of vectors, or INTx's resample (unmask) eventfd. */
static void set_irqs_mask(VfuServer *s, VfuMsg *m, uint32_t data, bool mask)
{
    const VfuIrqSet *is = (const VfuIrqSet *)m->payload;
    const uint8_t *bools = m->payload + sizeof(*is);

    if (data == VFIO_IRQ_SET_DATA_EVENTFD) {
        /* INTx resample fd: unmask whenever it is signalled. */
        intx_unmask_fd_set(s, m->nfds ? m->fds[0] : -1);
        if (m->nfds) {
            m->fds[0] = -1;
        }
        return;
    }
    for (unsigned i = 0; i < is->count; i++) {
        if (data == VFIO_IRQ_SET_DATA_NONE || bools[i]) {
            pci_irq_mask(s->pdev, is->index, is->start + i, mask);
        }
    }
}

int vfu_handle_set_irqs(VfuServer *s, VfuMsg *m)
{
    const VfuIrqSet *is = (const VfuIrqSet *)m->payload;
    const char *why;
    uint32_t action;
    int err;

    why = set_irqs_validate(s, m, &err);
    if (why) {
        return vfu_msg_fail(s, m, err, why);
    }
    action = is->flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
    irq_fds_ensure(s, is->index);
    if (action == VFIO_IRQ_SET_ACTION_TRIGGER) {
        set_irqs_trigger(s, m, is->flags & VFIO_IRQ_SET_DATA_TYPE_MASK);
    } else {
        set_irqs_mask(s, m, is->flags & VFIO_IRQ_SET_DATA_TYPE_MASK,
                      action == VFIO_IRQ_SET_ACTION_MASK);
    }
    return 0;
}
