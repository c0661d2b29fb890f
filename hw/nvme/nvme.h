/*
 * NVMe controller state: the controller (a PCI function), its submission
 * and completion queues with per-queue request pools, and namespaces.
 *
 * Files: ctrl.c (properties, registers, doorbells, reset, interrupts),
 * queue.c (queues, request pools, completion posting), admin.c (admin
 * commands), io.c (NVM commands, PRP/SGL mapping), ns.c (namespaces and
 * the nvme-ns device), subsys.c (NVM subsystems: nvme-subsys, shared
 * namespaces), resv.c (reservations, across a subsystem's controllers),
 * state.c (save and load for migration).  Wire formats are in
 * nvme-spec.h.
 */
#ifndef HW_NVME_NVME_H
#define HW_NVME_NVME_H

#include "util/osdep.h"
#include "util/loop.h"
#include "hw/pci/pci.h"
#include "block/block.h"
#include "hw/nvme/nvme-spec.h"

#define NVME_MAX_IOQPAIRS       64
#define NVME_MAX_QUEUES         (NVME_MAX_IOQPAIRS + 1)
#define NVME_MAX_NAMESPACES     256     /* Identify Controller NN */
#define NVME_MDTS               7       /* 2^7 minimum pages: 512 KiB */
#define NVME_MDTS_BYTES         ((1u << NVME_MDTS) * 4096u)
#define NVME_AERL               3       /* 4 outstanding AERs (0's based) */
#define NVME_ACL                3       /* abort command limit */
#define NVME_ELPE               15      /* 16 error log entries */
#define NVME_AER_QUEUE_MAX      16      /* events waiting for an AER */
#define NVME_CAP_TO_VALUE       0x0f    /* 7.5 s */
#define NVME_MPSMAX             4       /* 64 KiB pages */
#define NVME_SUBSYS_MAX_CTRLS   32      /* controllers of one subsystem */

/* Most guest segments (PRP pages, SGL data descriptors) per command. */
#define NVME_MAX_SG             256
/* Most iovecs per request; also holds the 256 ranges of a DSM command. */
#define NVME_MAX_IOV            256
/* Most SGL descriptors (all kinds) walked for one command. */
#define NVME_MAX_SGL_DESCS      1024

/* Reservations (resv.c): registrants of a namespace, queued notices. */
#define NVME_RESV_MAX_REGS      64
#define NVME_RESV_LOG_MAX       32

/* A command handler's "the backend completes it later". */
#define NVME_NO_COMPLETE        0xffff

typedef struct NvmeCtrl NvmeCtrl;
typedef struct NvmeSQueue NvmeSQueue;
typedef struct NvmeCQueue NvmeCQueue;
typedef struct NvmeNamespace NvmeNamespace;
typedef struct NvmeSubsys NvmeSubsys;
typedef struct NvmeSubsysNs NvmeSubsysNs;

typedef struct NvmeResvDomain NvmeResvDomain;

/*
 * A host as reservations know it: its Host Identifier (a 64-bit one in
 * the first 8 bytes), or, while that is zero (not set: what a host that
 * never sets it has), the controller alone (anon = 1 + CNTLID).
 */
typedef struct NvmeResvHost {
    uint8_t id[16];
    uint16_t anon;
    bool ext;                   /* set as a 128-bit identifier */
} NvmeResvHost;

typedef struct NvmeResvReg {
    NvmeResvHost host;
    uint64_t key;
    uint16_t cntlid;            /* registered through (Report) */
} NvmeResvReg;

/*
 * A namespace's reservation: a subsystem namespace's is shared by its
 * views (NvmeSubsysNs.resv), a private one's is the namespace's own.
 * Under its controllers' domain lock (resv.c); rtype is also read
 * without it, atomically, by the I/O path's "is anything held?".
 */
typedef struct NvmeResv {
    uint8_t rtype;              /* 0: no reservation */
    NvmeResvHost holder;        /* types 1-4; 5 and 6: every registrant */
    uint32_t gen;               /* PRGEN */
    uint64_t seq;               /* changes so far: a loaded state that
                                 * is newer replaces it (state.c) */
    unsigned nregs;
    NvmeResvReg regs[NVME_RESV_MAX_REGS];
} NvmeResv;

typedef struct NvmeResvLogEntry {
    uint64_t count;
    uint32_t nsid;
    uint8_t type;
} NvmeResvLogEntry;

/* One piece of a command's data buffer in guest memory. */
typedef struct NvmeSg {
    uint64_t addr;
    uint32_t len;
    bool bit_bucket;            /* SGL bit bucket: read data is dropped */
} NvmeSg;

struct NvmeNamespace {
    NvmeCtrl *ctrl;
    uint32_t nsid;
    BlockBackend *blk;
    uint32_t lbasz;
    unsigned lba_shift;
    uint64_t nsze;              /* in logical blocks */
    bool read_only;
    bool attached;              /* in ctrl->ns[] */
    bool shared;                /* NMIC bit 0: may be attached elsewhere */
    NvmeSubsysNs *sns;          /* a subsystem's namespace: this is its
                                 * view from ctrl (NULL: private to ctrl,
                                 * or its subsystem namespace went) */
    BlockReq flush_req;         /* the controller's shutdown flush */
    Device *holder;             /* released when its last request is done */
    NvmeResv *resv;             /* &own_resv, or the subsystem's */
    NvmeResv own_resv;
    uint8_t eui64[8];
    uint8_t nguid[16];
    uint8_t uuid[16];
};

/* How a request's data reaches guest memory. */
typedef enum {
    NVME_DATA_NONE,
    NVME_DATA_IOV,              /* iovecs straight into guest memory */
    NVME_DATA_BOUNCE,           /* the SQ's bounce buffer */
} NvmeDataMode;

/*
 * The controller, as CC and CSTS describe it (hw/core keeps the run
 * state: paused, resetting).  Commands are fetched only in READY, while
 * the device may fetch (device_fetch_allowed()); completions are posted
 * in every state but DISABLED.
 */
typedef enum NvmeCtrlState {
    NVME_CTRL_DISABLED,         /* CC.EN = 0: registers only, no queues */
    NVME_CTRL_READY,            /* CSTS.RDY: queues fetched and completed */
    NVME_CTRL_SHUTDOWN_DRAIN,   /* CC.SHN: nothing fetched; what is in
                                 * flight completes */
    NVME_CTRL_SHUTDOWN_FLUSH,   /* then the namespaces are flushed; then
                                 * SHST complete and READY again */
    NVME_CTRL_FAILED,           /* CSTS.CFS: nothing fetched until reset */
} NvmeCtrlState;

typedef struct NvmeRequest {
    NvmeSQueue *sq;
    NvmeNamespace *ns;
    NvmeCmd cmd;
    uint32_t result;            /* CQE DW0 */
    uint16_t status;
    NvmeDataMode data;
    bool dma_held;              /* pci_dma_hold() for its data mapping */
    bool in_block;              /* in the block layer (holds the device) */
    int blk_ret;                /* the block layer's result, for finishing */
    uint64_t slba;
    uint32_t nlb;
    uint64_t bytes;             /* data transfer length */
    uint32_t step;              /* DSM range / broadcast flush cursor */
    uint32_t nsteps;
    struct iovec *iov;          /* NVME_MAX_IOV entries (I/O queues) */
    unsigned niov;
    BlockReq breq;
    GList link;                 /* free list, CQ wait list, bounce wait,
                                 * completed list */
} NvmeRequest;

struct NvmeSQueue {
    NvmeCtrl *ctrl;
    uint16_t sqid;
    uint16_t cqid;
    uint32_t size;
    uint32_t head;
    uint32_t tail;
    uint64_t dma_addr;
    uint64_t db_addr;           /* shadow doorbell, 0 = none */
    uint64_t ei_addr;           /* event index */
    NvmeRequest *reqs;          /* the pool: size entries */
    struct iovec *iov_pool;     /* size * NVME_MAX_IOV, I/O queues only */
    GQueue free;                /* of NvmeRequest, by link */
    unsigned inflight;          /* requests taken from the pool */
    unsigned blk_inflight;      /* of those, in the block layer */
    bool starved;               /* stopped fetching: pool empty */
    bool deleting;
    NvmeRequest *delete_req;    /* Delete I/O SQ waiting for the queue */
    /* Parse scratch: the current command's guest segments. */
    NvmeSg sg[NVME_MAX_SG];
    unsigned nsg;
    /* Bounce buffer (compare; memory not directly mapped), one user. */
    uint8_t *bounce;
    NvmeSg *bounce_sg;
    unsigned bounce_nsg;
    NvmeRequest *bounce_owner;
    GQueue bounce_wait;         /* requests waiting for the bounce buffer */
};

struct NvmeCQueue {
    NvmeCtrl *ctrl;
    uint16_t cqid;
    uint16_t vector;
    bool irq_enabled;
    bool phase;
    uint32_t size;
    uint32_t head;
    uint32_t tail;
    uint64_t dma_addr;
    uint64_t db_addr;
    uint64_t ei_addr;
    unsigned nr_sqs;            /* SQs completing here */
    GQueue waitq;               /* completed requests awaiting a free slot */
    unsigned coalesced;         /* CQEs posted since the last interrupt */
    bool irq_due;
};

/* Per queue id, since realize (query-stats, target "queue"). */
typedef struct NvmeQueueStats {
    uint64_t requests;          /* commands fetched from the SQ */
    uint64_t errors;            /* completed with a non-zero status */
    uint64_t completions;       /* entries posted to the CQ */
    uint64_t interrupts;        /* MSI/MSI-X messages for the CQ */
} NvmeQueueStats;

typedef struct NvmeFeatures {
    uint32_t arbitration;
    uint32_t power_mgmt;
    uint16_t temp_over;
    uint16_t temp_under;
    uint32_t err_rec;
    bool vwc;                   /* volatile write cache enabled */
    uint32_t irq_coalescing;
    bool ivc_cd[NVME_MAX_QUEUES];   /* coalescing disabled per vector */
    uint32_t write_atomicity;
    uint32_t aec;               /* asynchronous event configuration */
    uint32_t kato;              /* keep alive timeout, ms */
    uint64_t ts_base_ms;        /* timestamp at ts_set_ns */
    int64_t ts_set_ns;
    bool ts_from_host;
    bool nr_queues_set;
} NvmeFeatures;

struct NvmeCtrl {
    PCIDevice pdev;

    /* Properties. */
    char *drive;
    char *serial;
    char *model;
    uint32_t max_ioqpairs;
    uint16_t mqes;
    uint32_t logical_block_size;
    bool share_rw;
    int rerror;
    int werror;
    int doorbells;              /* NVME_DOORBELLS_* */
    char *subsys_id;            /* subsys=: an nvme-subsys device */

    /* The NVM subsystem (subsys.c); identity copied at realize. */
    NvmeSubsys *subsys;         /* NULL: a subsystem of its own */
    uint16_t cntlid;            /* Identify Controller CNTLID */
    char *sn;                   /* Identify Controller SN */
    char *subnqn;               /* Identify Controller SUBNQN */
    GSList *dead_views;         /* of NvmeNamespace, see nvme_ns_reap() */

    /* Registers. */
    uint64_t cap;
    uint32_t vs;
    uint32_t intms;
    uint32_t cc;
    uint32_t csts;
    uint32_t aqa;
    uint64_t asq;
    uint64_t acq;
    uint32_t page_size;
    unsigned page_bits;
    unsigned nr_vectors;

    NvmeSQueue *sq[NVME_MAX_QUEUES];
    NvmeCQueue *cq[NVME_MAX_QUEUES];
    NvmeNamespace ns1;          /* drive= */
    NvmeNamespace *ns[NVME_MAX_NAMESPACES + 1];

    NvmeFeatures features;

    /* Asynchronous events. */
    NvmeRequest *aer_reqs[NVME_AERL + 1];
    unsigned aer_outstanding;
    uint32_t aer_queue[NVME_AER_QUEUE_MAX];
    unsigned aer_queued;
    uint8_t aer_masked;         /* bit per event type, until its log read */

    /* Changed namespace list (log 04h). */
    uint32_t changed_ns[NVME_CHANGED_NSLIST_MAX];
    unsigned nr_changed_ns;
    bool changed_ns_overflow;

    /*
     * Reservations (resv.c).  The other controllers of the subsystem
     * read the host, the masks and write the log: under resv_dom's lock.
     * Host and masks outlive a controller reset (the host stays the
     * registrant it was); the log does not.
     */
    NvmeResvDomain *resv_dom;
    NvmeResvHost host;                  /* feature 81h */
    uint8_t resv_mask[NVME_MAX_NAMESPACES + 1];     /* feature 82h */
    NvmeResvLogEntry resv_log[NVME_RESV_LOG_MAX];   /* log page 80h */
    unsigned resv_log_len;
    uint64_t resv_log_count;

    /* Error information log: a ring of the newest entries. */
    NvmeErrorLogEntry elog[NVME_ELPE + 1];
    unsigned elog_next;
    uint64_t error_count;

    /* SMART / health counters (persist across resets). */
    uint64_t bytes_read;
    uint64_t bytes_written;
    uint64_t read_cmds;
    uint64_t write_cmds;
    uint64_t media_errors;
    uint64_t power_on_ns;       /* monotonic time of realize */
    NvmeQueueStats qstats[NVME_MAX_QUEUES];

    /*
     * Doorbells in memory: BAR0's doorbell page is a sparse-mmap area the
     * client maps into the guest, and a watch poller on the device's loop
     * takes what the guest writes there (nvme_db_poll).
     */
    uint32_t *db_page;          /* NULL: doorbell writes are trapped */
    LoopPoller *db_poller;
    bool db_mem_used;           /* one taken since enable (traced once) */

    /* Shadow doorbells (Doorbell Buffer Config). */
    uint64_t dbbuf_dbs;
    uint64_t dbbuf_eis;
    bool dbbuf_enabled;
    /*
     * Trapped doorbells on a loop that busy-polls: while it polls, this
     * poller reads the shadow tails and the event indexes ask the host
     * for no doorbell write (nvme_shadow_poll).
     */
    LoopPoller *shadow_poller;
    bool shadow_polled;         /* the loop is polling now */

    /* Interrupts. */
    uint32_t msi_pending;       /* MSI vectors raised while INTMS masked */

    /* Processing: all of it is work (hw/core/device.h). */
    NvmeCtrlState state;
    DeviceBH *bh;               /* drains SQs, CQ wait lists, AERs */
    DeviceBH *complete_bh;      /* finishes what the block layer did */
    DeviceBH *irq_bh;           /* raises interrupts for posted CQEs */
    DeviceTimer *coalesce_timer;
    DeviceTimer *kato_timer;
    GQueue completed;           /* of NvmeRequest, by link */
    unsigned blk_inflight;      /* requests in the block layer */
    unsigned shutdown_flushes;  /* namespace flushes of a shutdown */
    uint8_t *bit_bucket;        /* scratch for SGL bit buckets (reads) */
};

static inline const char *nvme_id(NvmeCtrl *n)
{
    return device_id(&n->pdev.dev);
}

/* Do the queues exist and take doorbells and completions? */
static inline bool nvme_queues_live(NvmeCtrl *n)
{
    return n->state == NVME_CTRL_READY ||
           n->state == NVME_CTRL_SHUTDOWN_DRAIN ||
           n->state == NVME_CTRL_SHUTDOWN_FLUSH;
}

/* May commands be fetched? */
static inline bool nvme_ready(NvmeCtrl *n)
{
    return n->state == NVME_CTRL_READY &&
           device_fetch_allowed(&n->pdev.dev);
}

static inline bool nvme_resetting(NvmeCtrl *n)
{
    return device_resetting(&n->pdev.dev);
}

static inline NvmeNamespace *nvme_ns(NvmeCtrl *n, uint32_t nsid)
{
    if (nsid == 0 || nsid > NVME_MAX_NAMESPACES) {
        return NULL;
    }
    return n->ns[nsid];
}

/* ctrl.c */
enum { NVME_DOORBELLS_AUTO, NVME_DOORBELLS_TRAP, NVME_DOORBELLS_MMAP };
extern const DeviceClass nvme_class;
#define NVME(dev) ((NvmeCtrl *)device_check((dev), &nvme_class))
/* A queue is made: its doorbell starts at 0 (in memory too). */
void nvme_db_reset(NvmeCtrl *n, uint16_t qid, bool cq);
void nvme_schedule(NvmeCtrl *n);
/* The block layer finished @req (not work): finish it in the worker. */
void nvme_req_complete_later(NvmeRequest *req);
void nvme_blk_idle(NvmeCtrl *n);
void nvme_irq_schedule(NvmeCtrl *n);
void nvme_update_intx(NvmeCtrl *n);
void nvme_set_fatal(NvmeCtrl *n, const char *why);
void nvme_error_log_add(NvmeCtrl *n, uint16_t sqid, uint16_t cid,
                        uint16_t status, uint32_t nsid, uint64_t lba);
void nvme_kato_restart(NvmeCtrl *n);

/* queue.c */
NvmeCQueue *nvme_cq_new(NvmeCtrl *n, uint16_t cqid, uint64_t dma_addr,
                        uint32_t size, uint16_t vector, bool irq_enabled);
void nvme_cq_free(NvmeCtrl *n, NvmeCQueue *cq);
NvmeSQueue *nvme_sq_new(NvmeCtrl *n, uint16_t sqid, uint16_t cqid,
                        uint64_t dma_addr, uint32_t size);
uint16_t nvme_sq_delete(NvmeCtrl *n, NvmeSQueue *sq, NvmeRequest *req);
void nvme_sq_delete_finish(NvmeCtrl *n, NvmeSQueue *sq);
void nvme_sq_free(NvmeCtrl *n, NvmeSQueue *sq);
void nvme_queue_set_shadow(NvmeCtrl *n, uint16_t qid);
void nvme_process_sq(NvmeCtrl *n, NvmeSQueue *sq);
/* A request from @sq's pool, or NULL when it is empty. */
NvmeRequest *nvme_req_alloc(NvmeSQueue *sq);
void nvme_req_complete(NvmeRequest *req);
void nvme_req_release(NvmeRequest *req);
/* Let go of the request's guest memory (its DMA hold, the bounce buffer). */
void nvme_req_unmap(NvmeRequest *req);
/* A reset: the request goes back to its pool, the host is not told. */
void nvme_req_drop(NvmeRequest *req);
void nvme_cq_flush_waitq(NvmeCtrl *n, NvmeCQueue *cq);
bool nvme_cq_full(NvmeCtrl *n, NvmeCQueue *cq);
bool nvme_shadow_poll(void *opaque);
void nvme_shadow_poll_started(void *opaque, bool on);
uint32_t nvme_cq_used(NvmeCQueue *cq);
bool nvme_bounce_get(NvmeRequest *req);
void nvme_bounce_put(NvmeRequest *req);

/* admin.c */
uint16_t nvme_admin_cmd(NvmeCtrl *n, NvmeRequest *req);
void nvme_aer_enqueue(NvmeCtrl *n, uint8_t type, uint8_t info, uint8_t log);
void nvme_aer_process(NvmeCtrl *n);
void nvme_ns_changed(NvmeCtrl *n, uint32_t nsid);
void nvme_features_reset(NvmeCtrl *n);
void nvme_check_temperature(NvmeCtrl *n);

/* io.c */
uint16_t nvme_io_cmd(NvmeCtrl *n, NvmeRequest *req);
/* After the block layer: copy out a bounced read, compare, account. */
void nvme_req_finish(NvmeCtrl *n, NvmeRequest *req);
uint16_t nvme_map_dptr(NvmeCtrl *n, NvmeRequest *req, uint64_t len,
                       bool to_guest);
uint16_t nvme_dma_to_guest(NvmeCtrl *n, NvmeRequest *req, const void *buf,
                           uint64_t len);
uint16_t nvme_dma_from_guest(NvmeCtrl *n, NvmeRequest *req, void *buf,
                             uint64_t len);
void nvme_bounce_retry(NvmeSQueue *sq);

struct StateWriter;
struct StateReader;

/*
 * resv.c: reservations.  A domain is the controllers that share
 * namespaces: a subsystem's, or a lone controller's own.
 */
NvmeResvDomain *nvme_resv_domain_new(void);
void nvme_resv_domain_unref(NvmeResvDomain *d);
/* Realize (once the CNTLID is known) / unrealize; @d NULL: a new one. */
void nvme_resv_ctrl_join(NvmeCtrl *n, NvmeResvDomain *d);
void nvme_resv_ctrl_leave(NvmeCtrl *n);
void nvme_resv_ctrl_reset(NvmeCtrl *n);
/* Reservation Register, Report, Acquire, Release. */
uint16_t nvme_resv_cmd(NvmeCtrl *n, NvmeRequest *req);
/* May @opcode reach @ns from @n?  0 or Reservation Conflict. */
uint16_t nvme_resv_check(NvmeCtrl *n, NvmeNamespace *ns, uint8_t opcode);
/* Log page 80h: the oldest notice, which is then gone. */
void nvme_resv_log_pop(NvmeCtrl *n, NvmeResvNotifyLog *log);
/* Features 81h, 82h, 83h. */
uint16_t nvme_resv_get_feature(NvmeCtrl *n, NvmeRequest *req, unsigned sel);
uint16_t nvme_resv_set_feature(NvmeCtrl *n, NvmeRequest *req);
/* Device state: the controller's part (inside section "nvme"), and the
 * reservations of its namespaces (sections "nvme/resv/NSID"). */
struct StateSection;
void nvme_resv_save_ctrl(NvmeCtrl *n, struct StateWriter *w);
void nvme_resv_load_ctrl(NvmeCtrl *n, struct StateSection *s);
void nvme_resv_save_ns(NvmeCtrl *n, struct StateWriter *w);
bool nvme_resv_load_ns(NvmeCtrl *n, struct StateReader *r, GError **errp);

/* state.c: live migration and upgrade */
void nvme_save_state(Device *dev, struct StateWriter *w);
bool nvme_load_state(Device *dev, struct StateReader *r, GError **errp);

/* ns.c */
bool nvme_ns_init(NvmeCtrl *n, NvmeNamespace *ns, const char *drive,
                  uint32_t nsid, uint32_t lbasz, bool share_rw,
                  const char *dev_id, GError **errp);
/* Stable identifiers (NGUID, EUI-64, UUID) from @seed and @nsid. */
void nvme_ns_make_ids(NvmeNamespace *ns, const char *seed, uint32_t nsid);
/* Does no request of @n name @ns any more? */
bool nvme_ns_unused(NvmeCtrl *n, NvmeNamespace *ns);
/* Free the dead views of @n nothing refers to any more. */
void nvme_ns_reap(NvmeCtrl *n);
void nvme_ns_cleanup(NvmeNamespace *ns);
void nvme_ns_attach(NvmeCtrl *n, NvmeNamespace *ns);
void nvme_ns_detach(NvmeCtrl *n, NvmeNamespace *ns);
void nvme_ns_cancel_queued(NvmeCtrl *n, bool throttled);

/*
 * subsys.c: NVM subsystems (nvme-subsys) and their namespaces.
 *
 * A subsystem is a set of controllers (each its own PCI function, so
 * each can serve another VM) and of namespaces that may be attached to
 * several of them.  A subsystem namespace has one view per controller it
 * was ever attached to: an NvmeNamespace with that controller's own
 * block backend, so its requests complete on the controller's loop
 * whatever loop the other controllers run on.  Attached means the view is
 * in ctrl->ns[].
 *
 * Threads: subsystem state is changed only on the main thread or on a
 * thread the main thread waits for (realize, unrealize, the monitor's
 * device_run_sync); a view and ctrl->ns[] only on its controller's loop.
 * What a controller reads of the others (Identify CNS 12h and 13h) is in
 * atomic masks.
 */
struct NvmeSubsysNs {
    NvmeSubsys *subsys;
    Device *dev;                /* the nvme-ns device */
    char *drive;
    uint32_t nsid;
    uint32_t lbasz;
    bool shared;
    bool detached;              /* at start: attached to no controller */
    GStrv attached;             /* attached= (NULL: the rules above) */
    bool pending;               /* attach to the first controller to come */
    NvmeNamespace *view[NVME_SUBSYS_MAX_CTRLS];     /* by CNTLID */
    NvmeResv resv;              /* shared by the views (resv.c) */
};

struct NvmeSubsys {
    Device dev;
    char *nqn;                  /* property nqn= */
    char *subnqn;               /* what controllers report */
    char *serial;               /* the first controller's */
    NvmeCtrl *ctrls[NVME_SUBSYS_MAX_CTRLS];
    NvmeSubsysNs *ns[NVME_MAX_NAMESPACES + 1];
    uint32_t ctrl_mask;         /* atomic: CNTLIDs in use */
    uint32_t ns_ctrls[NVME_MAX_NAMESPACES + 1];  /* atomic: attached to */
    NvmeResvDomain *resv_dom;   /* its controllers' reservations */
};

extern const DeviceClass nvme_subsys_class;
#define NVME_SUBSYS(dev) ((NvmeSubsys *)device_check((dev), &nvme_subsys_class))

/* Controller realize / unrealize (on its loop, the main thread waits). */
bool nvme_subsys_register_ctrl(NvmeCtrl *n, GError **errp);
void nvme_subsys_unregister_ctrl(NvmeCtrl *n);
/* An nvme-ns,subsys= device comes and goes (on its loop). */
bool nvme_subsys_ns_add(NvmeSubsys *s, NvmeSubsysNs *sns, GError **errp);
void nvme_subsys_ns_quiesce(NvmeSubsysNs *sns);
void nvme_subsys_ns_remove(NvmeSubsysNs *sns);
/* Is @nsid free in @n's subsystem (for a namespace private to @n)? */
bool nvme_subsys_nsid_free(NvmeCtrl *n, uint32_t nsid, GError **errp);
/* Identify CNS 12h (@nsid > 0) / 13h (@nsid 0): a controller list. */
void nvme_subsys_ctrl_list(NvmeCtrl *n, uint32_t nsid, uint16_t min,
                           uint16_t *list);

#endif
