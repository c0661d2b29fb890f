/*
 * NVM subsystems for the monitor (qapi/commands-nvme.c): attach and
 * detach a subsystem's namespaces, describe the subsystems.  Main thread
 * only; each change runs on its controller's loop (hw/nvme/subsys.c).
 */
#ifndef HW_NVME_NVME_SUBSYS_H
#define HW_NVME_NVME_SUBSYS_H

#include "util/osdep.h"

/*
 * Attach namespace @nsid of subsystem @subsys to its controller @ctrl (a
 * device id), or detach it.  Errors: an unknown subsystem, namespace or
 * controller; attached already (or, private, to another controller);
 * not attached.
 */
bool nvme_subsys_attach_ns(const char *subsys, uint32_t nsid,
                           const char *ctrl, GError **errp);
bool nvme_subsys_detach_ns(const char *subsys, uint32_t nsid,
                           const char *ctrl, GError **errp);

typedef struct NvmeSubsysCtrlInfo {
    char *id;
    unsigned cntlid;
} NvmeSubsysCtrlInfo;

typedef struct NvmeSubsysNsInfo {
    uint32_t nsid;
    bool shared;
    char *drive;                /* the block node */
    GPtrArray *ctrls;           /* of char *: attached to these ids */
} NvmeSubsysNsInfo;

typedef struct NvmeSubsysInfo {
    char *id;
    char *nqn;
    GPtrArray *ctrls;           /* of NvmeSubsysCtrlInfo */
    GPtrArray *ns;              /* of NvmeSubsysNsInfo */
} NvmeSubsysInfo;

/* Every subsystem, of NvmeSubsysInfo (g_ptr_array_unref frees it all). */
GPtrArray *nvme_subsys_query(void);

#endif
