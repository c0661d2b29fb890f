/*
 * NVM Express 1.4 facts: controller registers, queue entries, commands,
 * status codes and the data structures of Identify, Get Log Page and the
 * features iovd implements.  Written from the NVMe Base Specification 1.4;
 * shared by the device model (hw/nvme) and the tests.
 *
 * All multi-byte fields are little-endian.  Status codes are kept as the
 * 15-bit value of the CQE status field without the phase bit:
 * (SCT << 8) | SC, plus NVME_DNR / NVME_MORE.
 */
#ifndef HW_NVME_NVME_SPEC_H
#define HW_NVME_NVME_SPEC_H

#include <stddef.h>
#include <stdint.h>

/* ---- controller registers (BAR0), section 3.1 ---- */

enum {
    NVME_REG_CAP    = 0x00,     /* 8 bytes: controller capabilities */
    NVME_REG_VS     = 0x08,     /* version */
    NVME_REG_INTMS  = 0x0c,     /* interrupt mask set */
    NVME_REG_INTMC  = 0x10,     /* interrupt mask clear */
    NVME_REG_CC     = 0x14,     /* controller configuration */
    NVME_REG_CSTS   = 0x1c,     /* controller status */
    NVME_REG_NSSR   = 0x20,     /* NVM subsystem reset */
    NVME_REG_AQA    = 0x24,     /* admin queue attributes */
    NVME_REG_ASQ    = 0x28,     /* 8 bytes: admin SQ base */
    NVME_REG_ACQ    = 0x30,     /* 8 bytes: admin CQ base */
    NVME_REG_CMBLOC = 0x38,
    NVME_REG_CMBSZ  = 0x3c,
    NVME_REG_BPINFO = 0x40,
    NVME_REG_BPRSEL = 0x44,
    NVME_REG_BPMBL  = 0x48,
    NVME_REG_CMBMSC = 0x50,
    NVME_REG_CMBSTS = 0x58,
    NVME_REG_PMRCAP = 0xe00,
    NVME_REG_DBS    = 0x1000,   /* doorbells: SQ y tail, CQ y head */
};

/* Doorbell of SQ @qid (tail) and CQ @qid (head) with stride 4 << dstrd. */
#define NVME_DB_SQ_OFF(qid, dstrd) \
    (NVME_REG_DBS + (2 * (qid)) * (4u << (dstrd)))
#define NVME_DB_CQ_OFF(qid, dstrd) \
    (NVME_REG_DBS + (2 * (qid) + 1) * (4u << (dstrd)))

/* CAP */
#define NVME_CAP_MQES_SHIFT     0       /* 16 bits, 0's based */
#define NVME_CAP_CQR            (1ULL << 16)
#define NVME_CAP_AMS_SHIFT      17      /* 2 bits */
#define NVME_CAP_TO_SHIFT       24      /* 8 bits, 500 ms units */
#define NVME_CAP_DSTRD_SHIFT    32      /* 4 bits */
#define NVME_CAP_NSSRS          (1ULL << 36)
#define NVME_CAP_CSS_SHIFT      37      /* 8 bits */
#define  NVME_CAP_CSS_NVM       (1ULL << 0)
#define NVME_CAP_BPS            (1ULL << 45)
#define NVME_CAP_MPSMIN_SHIFT   48      /* 4 bits: 2^(12+n) */
#define NVME_CAP_MPSMAX_SHIFT   52
#define NVME_CAP_PMRS           (1ULL << 56)
#define NVME_CAP_CMBS           (1ULL << 57)

#define NVME_CAP_MQES(cap)      ((uint16_t)((cap) & 0xffff))
#define NVME_CAP_TO(cap)        (((cap) >> NVME_CAP_TO_SHIFT) & 0xff)
#define NVME_CAP_DSTRD(cap)     (((cap) >> NVME_CAP_DSTRD_SHIFT) & 0xf)
#define NVME_CAP_MPSMIN(cap)    (((cap) >> NVME_CAP_MPSMIN_SHIFT) & 0xf)
#define NVME_CAP_MPSMAX(cap)    (((cap) >> NVME_CAP_MPSMAX_SHIFT) & 0xf)

/* VS: major << 16 | minor << 8 | tertiary */
#define NVME_VS(maj, min, ter)  (((maj) << 16) | ((min) << 8) | (ter))
#define NVME_VS_1_4             NVME_VS(1, 4, 0)

/* CC */
#define NVME_CC_EN              (1u << 0)
#define NVME_CC_CSS_SHIFT       4       /* 3 bits */
#define NVME_CC_MPS_SHIFT       7       /* 4 bits */
#define NVME_CC_AMS_SHIFT       11      /* 3 bits */
#define NVME_CC_SHN_SHIFT       14      /* 2 bits */
#define  NVME_CC_SHN_NONE       0
#define  NVME_CC_SHN_NORMAL     1
#define  NVME_CC_SHN_ABRUPT     2
#define NVME_CC_IOSQES_SHIFT    16      /* 4 bits: 2^n bytes */
#define NVME_CC_IOCQES_SHIFT    20      /* 4 bits */

#define NVME_CC_CSS(cc)         (((cc) >> NVME_CC_CSS_SHIFT) & 0x7)
#define NVME_CC_MPS(cc)         (((cc) >> NVME_CC_MPS_SHIFT) & 0xf)
#define NVME_CC_AMS(cc)         (((cc) >> NVME_CC_AMS_SHIFT) & 0x7)
#define NVME_CC_SHN(cc)         (((cc) >> NVME_CC_SHN_SHIFT) & 0x3)
#define NVME_CC_IOSQES(cc)      (((cc) >> NVME_CC_IOSQES_SHIFT) & 0xf)
#define NVME_CC_IOCQES(cc)      (((cc) >> NVME_CC_IOCQES_SHIFT) & 0xf)

/* CSTS */
#define NVME_CSTS_RDY           (1u << 0)
#define NVME_CSTS_CFS           (1u << 1)
#define NVME_CSTS_SHST_SHIFT    2       /* 2 bits */
#define  NVME_CSTS_SHST_NORMAL  0
#define  NVME_CSTS_SHST_OCCURRING 1
#define  NVME_CSTS_SHST_COMPLETE 2
#define NVME_CSTS_SHST_MASK     (3u << NVME_CSTS_SHST_SHIFT)
#define NVME_CSTS_NSSRO         (1u << 4)
#define NVME_CSTS_PP            (1u << 5)

#define NVME_CSTS_SHST(csts)    (((csts) >> NVME_CSTS_SHST_SHIFT) & 0x3)

/* AQA: both sizes 0's based, 12 bits */
#define NVME_AQA_ASQS(aqa)      ((aqa) & 0xfff)
#define NVME_AQA_ACQS(aqa)      (((aqa) >> 16) & 0xfff)
#define NVME_AQA(asqs, acqs)    (((uint32_t)(acqs) << 16) | (asqs))

/* NSSR: writing this value requests an NVM subsystem reset ("NVMe"). */
#define NVME_NSSR_RESET         0x4e564d65u

#define NVME_ADMIN_QUEUE_MAX    4096    /* entries */
#define NVME_SQES               6       /* 64-byte submission entries */
#define NVME_CQES               4       /* 16-byte completion entries */

/* ---- submission queue entry, section 4.2 ---- */

typedef struct NvmeSglDesc {
    uint64_t addr;
    uint32_t len;
    uint8_t rsvd[3];
    uint8_t type;               /* descriptor type << 4 | subtype */
} __attribute__((packed)) NvmeSglDesc;

typedef struct NvmeCmd {
    uint8_t opcode;
    uint8_t flags;              /* FUSE 1:0, PSDT 7:6 */
    uint16_t cid;
    uint32_t nsid;
    uint32_t cdw2;
    uint32_t cdw3;
    uint64_t mptr;
    union {
        struct {
            uint64_t prp1;
            uint64_t prp2;
        } __attribute__((packed));
        NvmeSglDesc sgl;
    } dptr;
    uint32_t cdw10;
    uint32_t cdw11;
    uint32_t cdw12;
    uint32_t cdw13;
    uint32_t cdw14;
    uint32_t cdw15;
} __attribute__((packed)) NvmeCmd;

#define NVME_CMD_FUSE(flags)    ((flags) & 0x3)
#define NVME_CMD_PSDT(flags)    (((flags) >> 6) & 0x3)
#define  NVME_PSDT_PRP          0
#define  NVME_PSDT_SGL_MPTR_CONTIG 1
#define  NVME_PSDT_SGL_MPTR_SGL 2
#define NVME_CMD_FLAGS_PSDT(p)  ((uint8_t)((p) << 6))

/* SGL descriptor types (upper nibble of the last byte), section 4.4 */
enum {
    NVME_SGL_TYPE_DATA_BLOCK = 0x0,
    NVME_SGL_TYPE_BIT_BUCKET = 0x1,
    NVME_SGL_TYPE_SEGMENT = 0x2,
    NVME_SGL_TYPE_LAST_SEGMENT = 0x3,
    NVME_SGL_TYPE_KEYED_DATA_BLOCK = 0x4,
    NVME_SGL_TYPE_TRANSPORT_DATA_BLOCK = 0x5,
};
#define NVME_SGL_SUBTYPE_ADDRESS 0x0
#define NVME_SGL_SUBTYPE_OFFSET  0x1
#define NVME_SGL_TYPE(t)        (((t) >> 4) & 0xf)
#define NVME_SGL_SUBTYPE(t)     ((t) & 0xf)
#define NVME_SGL_DESC_TYPE(type, sub) ((uint8_t)(((type) << 4) | (sub)))

/* ---- completion queue entry, section 4.6 ---- */

typedef struct NvmeCqe {
    uint32_t result;            /* DW0: command specific */
    uint32_t dw1;
    uint16_t sq_head;
    uint16_t sq_id;
    uint16_t cid;
    uint16_t status;            /* phase bit 0, status field 15:1 */
} __attribute__((packed)) NvmeCqe;

#define NVME_CQE_PHASE          0x1
#define NVME_CQE_STATUS(st)     ((uint16_t)((st) >> 1))

/* Status field (without the phase bit) */
#define NVME_SC_MASK            0x00ff
#define NVME_SCT_SHIFT          8
#define NVME_SCT_MASK           0x0700
#define NVME_CRD_MASK           0x1800
#define NVME_MORE               0x2000
#define NVME_DNR                0x4000
#define NVME_STATUS_SC(s)       ((s) & NVME_SC_MASK)
#define NVME_STATUS_SCT(s)      (((s) & NVME_SCT_MASK) >> NVME_SCT_SHIFT)
#define NVME_STATUS_CODE(s)     ((s) & (NVME_SCT_MASK | NVME_SC_MASK))

enum {
    NVME_SCT_GENERIC = 0,
    NVME_SCT_CMD_SPECIFIC = 1,
    NVME_SCT_MEDIA = 2,
    NVME_SCT_PATH = 3,
    NVME_SCT_VENDOR = 7,
};

enum {
    /* Generic command status (SCT 0) */
    NVME_SUCCESS                    = 0x0000,
    NVME_INVALID_OPCODE             = 0x0001,
    NVME_INVALID_FIELD              = 0x0002,
    NVME_CID_CONFLICT               = 0x0003,
    NVME_DATA_TRANSFER_ERROR        = 0x0004,
    NVME_POWER_LOSS_ABORT           = 0x0005,
    NVME_INTERNAL_DEV_ERROR         = 0x0006,
    NVME_CMD_ABORT_REQ              = 0x0007,
    NVME_CMD_ABORT_SQ_DEL           = 0x0008,
    NVME_CMD_ABORT_FAILED_FUSE      = 0x0009,
    NVME_CMD_ABORT_MISSING_FUSE     = 0x000a,
    NVME_INVALID_NSID               = 0x000b,
    NVME_CMD_SEQ_ERROR              = 0x000c,
    NVME_INVALID_SGL_SEG_DESC       = 0x000d,
    NVME_INVALID_NUM_SGL_DESCS      = 0x000e,
    NVME_DATA_SGL_LEN_INVALID       = 0x000f,
    NVME_MD_SGL_LEN_INVALID         = 0x0010,
    NVME_SGL_DESCR_TYPE_INVALID     = 0x0011,
    NVME_INVALID_USE_OF_CMB         = 0x0012,
    NVME_INVALID_PRP_OFFSET         = 0x0013,
    NVME_ATOMIC_WRITE_UNIT_EXCEEDED = 0x0014,
    NVME_OPERATION_DENIED           = 0x0015,
    NVME_SGL_OFFSET_INVALID         = 0x0016,
    NVME_HOST_ID_INCONSISTENT       = 0x0018,
    NVME_KATO_EXPIRED               = 0x0019,
    NVME_KATO_INVALID               = 0x001a,
    NVME_CMD_ABORT_PREEMPT          = 0x001b,
    NVME_SANITIZE_FAILED            = 0x001c,
    NVME_SANITIZE_IN_PROGRESS       = 0x001d,
    NVME_SGL_DATA_BLOCK_GRAN_INVALID = 0x001e,
    NVME_CMD_NOT_SUP_CMB_QUEUE      = 0x001f,
    NVME_NS_WRITE_PROTECTED         = 0x0020,
    NVME_CMD_INTERRUPTED            = 0x0021,
    NVME_TRANSIENT_TRANSPORT_ERROR  = 0x0022,
    /* Generic, NVM command set (SCT 0, 80h+) */
    NVME_LBA_RANGE                  = 0x0080,
    NVME_CAP_EXCEEDED               = 0x0081,
    NVME_NS_NOT_READY               = 0x0082,
    NVME_RESERVATION_CONFLICT       = 0x0083,
    NVME_FORMAT_IN_PROGRESS         = 0x0084,

    /* Command specific status (SCT 1) */
    NVME_INVALID_CQID               = 0x0100,
    NVME_INVALID_QID                = 0x0101,
    NVME_MAX_QSIZE_EXCEEDED         = 0x0102,
    NVME_ABORT_LIMIT_EXCEEDED       = 0x0103,
    NVME_AER_LIMIT_EXCEEDED         = 0x0105,
    NVME_INVALID_FW_SLOT            = 0x0106,
    NVME_INVALID_FW_IMAGE           = 0x0107,
    NVME_INVALID_IRQ_VECTOR         = 0x0108,
    NVME_INVALID_LOG_ID             = 0x0109,
    NVME_INVALID_FORMAT             = 0x010a,
    NVME_FW_REQ_RESET               = 0x010b,
    NVME_INVALID_QUEUE_DEL          = 0x010c,
    NVME_FID_NOT_SAVEABLE           = 0x010d,
    NVME_FEAT_NOT_CHANGEABLE        = 0x010e,
    NVME_FEAT_NOT_NS_SPEC           = 0x010f,
    NVME_FW_REQ_SUSYSTEM_RESET      = 0x0110,
    /* Command specific, NVM command set (SCT 1, 80h+) */
    NVME_CONFLICTING_ATTRS          = 0x0180,
    NVME_INVALID_PROT_INFO          = 0x0181,
    NVME_WRITE_TO_RO                = 0x0182,

    /* Media and data integrity errors (SCT 2) */
    NVME_WRITE_FAULT                = 0x0280,
    NVME_UNRECOVERED_READ           = 0x0281,
    NVME_E2E_GUARD_ERROR            = 0x0282,
    NVME_E2E_APP_ERROR              = 0x0283,
    NVME_E2E_REF_ERROR              = 0x0284,
    NVME_CMP_FAILURE                = 0x0285,
    NVME_ACCESS_DENIED              = 0x0286,
    NVME_DULB                       = 0x0287,
};

/* ---- opcodes ---- */

enum {
    NVME_ADM_CMD_DELETE_SQ          = 0x00,
    NVME_ADM_CMD_CREATE_SQ          = 0x01,
    NVME_ADM_CMD_GET_LOG_PAGE       = 0x02,
    NVME_ADM_CMD_DELETE_CQ          = 0x04,
    NVME_ADM_CMD_CREATE_CQ          = 0x05,
    NVME_ADM_CMD_IDENTIFY           = 0x06,
    NVME_ADM_CMD_ABORT              = 0x08,
    NVME_ADM_CMD_SET_FEATURES       = 0x09,
    NVME_ADM_CMD_GET_FEATURES       = 0x0a,
    NVME_ADM_CMD_ASYNC_EV_REQ       = 0x0c,
    NVME_ADM_CMD_NS_MANAGEMENT      = 0x0d,
    NVME_ADM_CMD_FW_COMMIT          = 0x10,
    NVME_ADM_CMD_FW_DOWNLOAD        = 0x11,
    NVME_ADM_CMD_DEV_SELF_TEST      = 0x14,
    NVME_ADM_CMD_NS_ATTACHMENT      = 0x15,
    NVME_ADM_CMD_KEEP_ALIVE         = 0x18,
    NVME_ADM_CMD_DIRECTIVE_SEND     = 0x19,
    NVME_ADM_CMD_DIRECTIVE_RECV     = 0x1a,
    NVME_ADM_CMD_VIRT_MNGMT         = 0x1c,
    NVME_ADM_CMD_DBBUF_CONFIG       = 0x7c,
    NVME_ADM_CMD_FORMAT_NVM         = 0x80,
    NVME_ADM_CMD_SECURITY_SEND      = 0x81,
    NVME_ADM_CMD_SECURITY_RECV      = 0x82,
    NVME_ADM_CMD_SANITIZE           = 0x84,
    NVME_ADM_CMD_GET_LBA_STATUS     = 0x86,
};

enum {
    NVME_CMD_FLUSH                  = 0x00,
    NVME_CMD_WRITE                  = 0x01,
    NVME_CMD_READ                   = 0x02,
    NVME_CMD_WRITE_UNCOR            = 0x04,
    NVME_CMD_COMPARE                = 0x05,
    NVME_CMD_WRITE_ZEROES           = 0x08,
    NVME_CMD_DSM                    = 0x09,
    NVME_CMD_VERIFY                 = 0x0c,
    NVME_CMD_RESV_REGISTER          = 0x0d,
    NVME_CMD_RESV_REPORT            = 0x0e,
    NVME_CMD_RESV_ACQUIRE           = 0x11,
    NVME_CMD_RESV_RELEASE           = 0x15,
};

#define NVME_NSID_BROADCAST     0xffffffffu

/* ---- admin command fields ---- */

/* Create I/O Completion Queue: CDW10 QID 15:0, QSIZE 31:16 (0's based);
 * CDW11 PC bit 0, IEN bit 1, IV 31:16. */
#define NVME_CQ_FLAGS_PC        (1u << 0)
#define NVME_CQ_FLAGS_IEN       (1u << 1)
/* Create I/O Submission Queue: CDW11 PC bit 0, QPRIO 2:1, CQID 31:16. */
#define NVME_SQ_FLAGS_PC        (1u << 0)
#define NVME_SQ_FLAGS_QPRIO_SHIFT 1

/* Identify CNS values (CDW10 7:0) */
enum {
    NVME_ID_CNS_NS                  = 0x00,
    NVME_ID_CNS_CTRL                = 0x01,
    NVME_ID_CNS_NS_ACTIVE_LIST      = 0x02,
    NVME_ID_CNS_NS_DESCR_LIST       = 0x03,
    NVME_ID_CNS_NVM_SET_LIST        = 0x04,
    NVME_ID_CNS_CS_NS               = 0x05,     /* NVMe 2.0: per CSI */
    NVME_ID_CNS_CS_CTRL             = 0x06,     /* NVMe 2.0: per CSI */
    NVME_ID_CNS_NS_PRESENT_LIST     = 0x10,
    NVME_ID_CNS_NS_PRESENT          = 0x11,
    NVME_ID_CNS_CTRL_LIST_NS        = 0x12,
    NVME_ID_CNS_CTRL_LIST           = 0x13,
};

/* Get Log Page: CDW10 LID 7:0, LSP 11:8, RAE 15, NUMDL 31:16;
 * CDW11 NUMDU 15:0; CDW12/13 offset (LPOL/LPOU). */
#define NVME_LOG_RAE            (1u << 15)

enum {
    NVME_LOG_ERROR_INFO             = 0x01,
    NVME_LOG_SMART_INFO             = 0x02,
    NVME_LOG_FW_SLOT_INFO           = 0x03,
    NVME_LOG_CHANGED_NSLIST         = 0x04,
    NVME_LOG_CMD_EFFECTS            = 0x05,
    NVME_LOG_DEVICE_SELF_TEST       = 0x06,
    NVME_LOG_TELEMETRY_HOST         = 0x07,
    NVME_LOG_RESV_NOTIFY            = 0x80,
};

/* Feature identifiers (CDW10 7:0); Set Features SV is CDW10 bit 31,
 * Get Features SEL is CDW10 10:8. */
enum {
    NVME_FEAT_ARBITRATION           = 0x01,
    NVME_FEAT_POWER_MGMT            = 0x02,
    NVME_FEAT_LBA_RANGE_TYPE        = 0x03,
    NVME_FEAT_TEMP_THRESHOLD        = 0x04,
    NVME_FEAT_ERROR_RECOVERY        = 0x05,
    NVME_FEAT_VOLATILE_WC           = 0x06,
    NVME_FEAT_NUM_QUEUES            = 0x07,
    NVME_FEAT_IRQ_COALESCING        = 0x08,
    NVME_FEAT_IRQ_VECTOR_CONF       = 0x09,
    NVME_FEAT_WRITE_ATOMICITY       = 0x0a,
    NVME_FEAT_ASYNC_EVENT_CONF      = 0x0b,
    NVME_FEAT_AUTO_PST              = 0x0c,
    NVME_FEAT_HOST_MEM_BUF          = 0x0d,
    NVME_FEAT_TIMESTAMP             = 0x0e,
    NVME_FEAT_KEEP_ALIVE            = 0x0f,
    NVME_FEAT_HOST_CTRL_THERMAL     = 0x10,
    NVME_FEAT_NON_OP_POWER_STATE    = 0x11,
    NVME_FEAT_SW_PROGRESS_MARKER    = 0x80,
    NVME_FEAT_HOST_ID               = 0x81,
    NVME_FEAT_RESV_MASK             = 0x82,
    NVME_FEAT_RESV_PERSIST          = 0x83,
};

#define NVME_FEAT_SET_SV        (1u << 31)
#define NVME_FEAT_GET_SEL(cdw10) (((cdw10) >> 8) & 0x7)
enum {
    NVME_GETFEAT_SEL_CURRENT = 0,
    NVME_GETFEAT_SEL_DEFAULT = 1,
    NVME_GETFEAT_SEL_SAVED = 2,
    NVME_GETFEAT_SEL_SUPPORTED = 3,
};
/* Supported capabilities (SEL 3) result bits */
#define NVME_FEAT_CAP_SAVE      (1u << 0)
#define NVME_FEAT_CAP_NS        (1u << 1)
#define NVME_FEAT_CAP_CHANGE    (1u << 2)

/* Temperature threshold: TMPTH 15:0 (Kelvin), TMPSEL 19:16, THSEL 21:20 */
#define NVME_TEMP_TMPTH(v)      ((v) & 0xffff)
#define NVME_TEMP_TMPSEL(v)     (((v) >> 16) & 0xf)
#define NVME_TEMP_THSEL(v)      (((v) >> 20) & 0x3)
#define  NVME_TEMP_THSEL_OVER   0
#define  NVME_TEMP_THSEL_UNDER  1
/* Interrupt coalescing: THR 7:0 (0's based), TIME 15:8 (100 us units) */
#define NVME_IRQC_THR(v)        ((v) & 0xff)
#define NVME_IRQC_TIME(v)       (((v) >> 8) & 0xff)
/* Interrupt vector configuration: IV 15:0, CD bit 16 */
#define NVME_IVC_IV(v)          ((v) & 0xffff)
#define NVME_IVC_CD             (1u << 16)
/* Error recovery: TLER 15:0, DULBE bit 16 */
#define NVME_ERR_REC_DULBE      (1u << 16)

/* Asynchronous Event Configuration bits (feature 0Bh) */
#define NVME_AEC_SMART_MASK     0xffu
#define NVME_AEC_NS_ATTR        (1u << 8)
#define NVME_AEC_FW_ACTIVATION  (1u << 9)

/* Asynchronous events: completion DW0 = type 2:0, info 15:8, log 23:16 */
enum {
    NVME_AER_TYPE_ERROR = 0,
    NVME_AER_TYPE_SMART = 1,
    NVME_AER_TYPE_NOTICE = 2,
    NVME_AER_TYPE_IO_SPECIFIC = 6,
    NVME_AER_TYPE_VENDOR = 7,
};
enum {
    NVME_AER_INFO_ERR_INVALID_DB_REGISTER = 0x00,
    NVME_AER_INFO_ERR_INVALID_DB_VALUE = 0x01,
    NVME_AER_INFO_ERR_DIAG_FAIL = 0x02,
    NVME_AER_INFO_ERR_PERSIST_INTERNAL = 0x03,
    NVME_AER_INFO_ERR_TRANS_INTERNAL = 0x04,
    NVME_AER_INFO_ERR_FW_IMG_LOAD = 0x05,
};
enum {
    NVME_AER_INFO_SMART_RELIABILITY = 0x00,
    NVME_AER_INFO_SMART_TEMP_THRESH = 0x01,
    NVME_AER_INFO_SMART_SPARE_THRESH = 0x02,
};
enum {
    NVME_AER_INFO_NOTICE_NS_ATTR_CHANGED = 0x00,
    NVME_AER_INFO_NOTICE_FW_ACT_STARTING = 0x01,
};
#define NVME_AER_RESULT(type, info, log) \
    ((uint32_t)(type) | ((uint32_t)(info) << 8) | ((uint32_t)(log) << 16))
#define NVME_AER_RESULT_TYPE(r) ((r) & 0x7)
#define NVME_AER_RESULT_INFO(r) (((r) >> 8) & 0xff)
#define NVME_AER_RESULT_LOG(r)  (((r) >> 16) & 0xff)

/* I/O command specific events (type 6) */
enum {
    NVME_AER_INFO_IO_RESV_LOG = 0x00,   /* reservation log page available */
};

/* Abort: CDW10 SQID 15:0, CID 31:16; result bit 0 set = not aborted. */
#define NVME_ABORT_NOT_ABORTED  1u

/* Timestamp feature data: 6 bytes of milliseconds, then attributes. */
typedef struct NvmeTimestamp {
    uint8_t timestamp[6];
    uint8_t attr;               /* bit 0 synch, 3:1 origin */
    uint8_t rsvd;
} __attribute__((packed)) NvmeTimestamp;
#define NVME_TS_ATTR_ORIGIN_SHIFT 1
#define  NVME_TS_ORIGIN_ZERO    0       /* since reset */
#define  NVME_TS_ORIGIN_HOST    1       /* set by Set Features */

/* ---- NVM command fields ---- */

/* Read / Write / Compare / Write Zeroes: CDW10-11 SLBA, CDW12 NLB 15:0
 * (0's based), DEAC bit 25 (Write Zeroes), PRINFO 29:26, FUA 30, LR 31. */
#define NVME_RW_NLB(cdw12)      ((cdw12) & 0xffff)
#define NVME_RW_DEAC            (1u << 25)
#define NVME_RW_PRINFO_SHIFT    26
#define NVME_RW_PRINFO_MASK     (0xfu << NVME_RW_PRINFO_SHIFT)
#define NVME_RW_FUA             (1u << 30)
#define NVME_RW_LR              (1u << 31)

/* Dataset Management: CDW10 NR 7:0 (0's based), CDW11 IDR 0, IDW 1, AD 2 */
#define NVME_DSM_NR(cdw10)      ((cdw10) & 0xff)
#define NVME_DSM_IDR            (1u << 0)
#define NVME_DSM_IDW            (1u << 1)
#define NVME_DSM_AD             (1u << 2)
#define NVME_DSM_MAX_RANGES     256

typedef struct NvmeDsmRange {
    uint32_t cattr;
    uint32_t nlb;               /* not 0's based */
    uint64_t slba;
} __attribute__((packed)) NvmeDsmRange;

/* ---- Reservations (NVMe 2.0 Base, "Reservations" and its four I/O
 * commands: Reservation Acquire, Register, Release and Report) ---- */

/* Reservation types (RTYPE) */
enum {
    NVME_RESV_WRITE_EXCLUSIVE       = 1,
    NVME_RESV_EXCLUSIVE_ACCESS      = 2,
    NVME_RESV_WE_REGS_ONLY          = 3,
    NVME_RESV_EA_REGS_ONLY          = 4,
    NVME_RESV_WE_ALL_REGS           = 5,
    NVME_RESV_EA_ALL_REGS           = 6,
};

/* Register: CDW10 RREGA 2:0, IEKEY bit 3, CPTPL 31:30.  Acquire: RACQA
 * 2:0, IEKEY bit 3, RTYPE 15:8.  Release: RRELA 2:0, IEKEY bit 3, RTYPE
 * 15:8.  Report: CDW10 NUMD (0's based dwords), CDW11 EDS bit 0. */
#define NVME_RESV_ACTION(cdw10) ((cdw10) & 0x7)
#define NVME_RESV_IEKEY         (1u << 3)
#define NVME_RESV_RTYPE(cdw10)  (((cdw10) >> 8) & 0xff)
#define NVME_RESV_CPTPL(cdw10)  ((cdw10) >> 30)
#define NVME_RESV_REPORT_EDS    (1u << 0)
enum {
    NVME_RESV_REGISTER = 0,
    NVME_RESV_UNREGISTER = 1,
    NVME_RESV_REPLACE = 2,
};
enum {
    NVME_RESV_ACQUIRE = 0,
    NVME_RESV_PREEMPT = 1,
    NVME_RESV_PREEMPT_ABORT = 2,
};
enum {
    NVME_RESV_RELEASE = 0,
    NVME_RESV_CLEAR = 1,
};
enum {
    NVME_CPTPL_NO_CHANGE = 0,
    NVME_CPTPL_CLEAR = 2,
    NVME_CPTPL_SET = 3,         /* 1 is reserved */
};

/* Register data: CRKEY, NRKEY.  Acquire data: CRKEY, PRKEY.  Release
 * data: CRKEY. */
typedef struct NvmeResvKeys {
    uint64_t crkey;
    uint64_t key2;
} __attribute__((packed)) NvmeResvKeys;

/* Reservation Status (Report), 24 bytes; the extended one is 64. */
typedef struct NvmeResvStatus {
    uint32_t gen;
    uint8_t rtype;
    uint16_t regctl;
    uint8_t rsvd7[2];
    uint8_t ptpls;
    uint8_t rsvd10[14];
} __attribute__((packed)) NvmeResvStatus;
#define NVME_RESV_STATUS_EXT_SIZE 64

/* Registered Controller data structure (EDS 0) */
typedef struct NvmeRegCtrl {
    uint16_t cntlid;
    uint8_t rcsts;
    uint8_t rsvd3[5];
    uint64_t hostid;
    uint64_t rkey;
} __attribute__((packed)) NvmeRegCtrl;

/* Registered Controller Extended data structure (EDS 1) */
typedef struct NvmeRegCtrlExt {
    uint16_t cntlid;
    uint8_t rcsts;
    uint8_t rsvd3[5];
    uint64_t rkey;
    uint8_t hostid[16];
    uint8_t rsvd32[32];
} __attribute__((packed)) NvmeRegCtrlExt;

#define NVME_RCSTS_HOLDS        (1u << 0)
#define NVME_CNTLID_DYNAMIC     0xffff

/* Reservation Notification log page (80h) */
typedef struct NvmeResvNotifyLog {
    uint64_t count;             /* 0: empty */
    uint8_t type;
    uint8_t nalp;               /* pages still queued, at most FFh */
    uint8_t rsvd10[2];
    uint32_t nsid;
    uint8_t rsvd16[48];
} __attribute__((packed)) NvmeResvNotifyLog;

enum {
    NVME_RESV_LOG_EMPTY = 0,
    NVME_RESV_LOG_REG_PREEMPTED = 1,
    NVME_RESV_LOG_RELEASED = 2,
    NVME_RESV_LOG_PREEMPTED = 3,
};

/* Features: Host Identifier (81h) CDW11 EXHID bit 0; Reservation
 * Notification Mask (82h) REGPRE bit 1, RESREL bit 2, RESPRE bit 3 (the
 * bit of each log page type); Reservation Persistence (83h) PTPL bit 0. */
#define NVME_FEAT_HOSTID_EXHID  (1u << 0)
#define NVME_RESV_MASK_ALL      0xeu
#define NVME_RESV_PTPL          (1u << 0)

/* ---- Identify Controller, figure 247 ---- */

typedef struct NvmePsd {
    uint16_t mp;                /* centiwatts */
    uint8_t rsvd2;
    uint8_t flags;              /* MXPS bit 0, NOPS bit 1 */
    uint32_t enlat;
    uint32_t exlat;
    uint8_t rrt, rrl, rwt, rwl;
    uint16_t idlp;
    uint8_t ips;
    uint8_t rsvd19;
    uint16_t actp;
    uint8_t apws;
    uint8_t rsvd23[9];
} __attribute__((packed)) NvmePsd;

typedef struct NvmeIdCtrl {
    uint16_t vid;
    uint16_t ssvid;
    char sn[20];
    char mn[40];
    char fr[8];
    uint8_t rab;
    uint8_t ieee[3];
    uint8_t cmic;
    uint8_t mdts;
    uint16_t cntlid;
    uint32_t ver;
    uint32_t rtd3r;
    uint32_t rtd3e;
    uint32_t oaes;
    uint32_t ctratt;
    uint16_t rrls;
    uint8_t rsvd102[9];
    uint8_t cntrltype;
    uint8_t fguid[16];
    uint16_t crdt1, crdt2, crdt3;
    uint8_t rsvd134[122];
    uint16_t oacs;
    uint8_t acl;
    uint8_t aerl;
    uint8_t frmw;
    uint8_t lpa;
    uint8_t elpe;
    uint8_t npss;
    uint8_t avscc;
    uint8_t apsta;
    uint16_t wctemp;
    uint16_t cctemp;
    uint16_t mtfa;
    uint32_t hmpre;
    uint32_t hmmin;
    uint8_t tnvmcap[16];
    uint8_t unvmcap[16];
    uint32_t rpmbs;
    uint16_t edstt;
    uint8_t dsto;
    uint8_t fwug;
    uint16_t kas;
    uint16_t hctma;
    uint16_t mntmt;
    uint16_t mxtmt;
    uint32_t sanicap;
    uint32_t hmminds;
    uint16_t hmmaxd;
    uint16_t nsetidmax;
    uint16_t endgidmax;
    uint8_t anatt;
    uint8_t anacap;
    uint32_t anagrpmax;
    uint32_t nanagrpid;
    uint32_t pels;
    uint8_t rsvd356[156];
    uint8_t sqes;
    uint8_t cqes;
    uint16_t maxcmd;
    uint32_t nn;
    uint16_t oncs;
    uint16_t fuses;
    uint8_t fna;
    uint8_t vwc;
    uint16_t awun;
    uint16_t awupf;
    uint8_t nvscc;
    uint8_t nwpc;
    uint16_t acwu;
    uint16_t rsvd534;
    uint32_t sgls;
    uint32_t mnan;
    uint8_t rsvd544[224];
    char subnqn[256];
    uint8_t rsvd1024[768];
    uint8_t nvmeof[256];
    NvmePsd psd[32];
    uint8_t vs[1024];
} __attribute__((packed)) NvmeIdCtrl;

/* CTRATT bit 0: 128-bit Host Identifier supported. */
#define NVME_CTRATT_HOSTID_128  (1u << 0)
/* OAES */
#define NVME_OAES_NS_ATTR       (1u << 8)
/* CMIC bit 1: the subsystem may have several controllers. */
#define NVME_CMIC_MULTI_CTRL    (1u << 1)
/* NMIC bit 0: the namespace may be attached to several controllers. */
#define NVME_NMIC_SHARED        (1u << 0)
/* An NQN is at most 223 bytes (NVMe 1.4 7.9), SUBNQN holds it with NUL. */
#define NVME_NQN_MAX            223
#define NVME_OAES_FW_ACTIVATION (1u << 9)
/* CNTRLTYPE */
#define NVME_CNTRLTYPE_IO       1
/* OACS */
#define NVME_OACS_SECURITY      (1u << 0)
#define NVME_OACS_FORMAT        (1u << 1)
#define NVME_OACS_FW            (1u << 2)
#define NVME_OACS_NS_MGMT       (1u << 3)
#define NVME_OACS_SELF_TEST     (1u << 4)
#define NVME_OACS_DIRECTIVES    (1u << 5)
#define NVME_OACS_NVME_MI       (1u << 6)
#define NVME_OACS_VIRT_MGMT     (1u << 7)
#define NVME_OACS_DBBUF         (1u << 8)
/* FRMW: slot 1 read-only bit 0, number of slots 3:1 */
#define NVME_FRMW_SLOT1_RO      (1u << 0)
#define NVME_FRMW_NUM_SLOTS(n)  ((n) << 1)
/* LPA */
#define NVME_LPA_NS_SMART       (1u << 0)
#define NVME_LPA_CSE_LOG        (1u << 1)
#define NVME_LPA_EXTENDED       (1u << 2)
/* ONCS */
#define NVME_ONCS_COMPARE       (1u << 0)
#define NVME_ONCS_WRITE_UNCORR  (1u << 1)
#define NVME_ONCS_DSM           (1u << 2)
#define NVME_ONCS_WRITE_ZEROES  (1u << 3)
#define NVME_ONCS_FEAT_SAVE     (1u << 4)
#define NVME_ONCS_RESERVATIONS  (1u << 5)
#define NVME_ONCS_TIMESTAMP     (1u << 6)
#define NVME_ONCS_VERIFY        (1u << 7)
/* VWC: present bit 0; 2:1 = 11b flush with NSID FFFFFFFFh supported */
#define NVME_VWC_PRESENT        (1u << 0)
#define NVME_VWC_NSID_BROADCAST (3u << 1)
/* SGLS */
#define NVME_SGLS_SUPPORTED     (1u << 0)   /* no alignment requirement */
#define NVME_SGLS_SUPPORTED_DW  (2u << 0)   /* dword alignment required */
#define NVME_SGLS_KEYED         (1u << 2)
#define NVME_SGLS_BIT_BUCKET    (1u << 16)
#define NVME_SGLS_MPTR_BYTE     (1u << 17)
#define NVME_SGLS_EXCESS_LENGTH (1u << 18)
#define NVME_SGLS_MPTR_SGL      (1u << 19)
#define NVME_SGLS_OFFSET        (1u << 20)

/* ---- Identify Namespace, figure 249 ---- */

typedef struct NvmeLbaf {
    uint16_t ms;                /* metadata bytes */
    uint8_t ds;                 /* LBA data size, 2^n */
    uint8_t rp;                 /* relative performance 1:0 */
} __attribute__((packed)) NvmeLbaf;

typedef struct NvmeIdNs {
    uint64_t nsze;
    uint64_t ncap;
    uint64_t nuse;
    uint8_t nsfeat;
    uint8_t nlbaf;              /* 0's based */
    uint8_t flbas;              /* format index 3:0 */
    uint8_t mc;
    uint8_t dpc;
    uint8_t dps;
    uint8_t nmic;
    uint8_t rescap;
    uint8_t fpi;
    uint8_t dlfeat;
    uint16_t nawun;
    uint16_t nawupf;
    uint16_t nacwu;
    uint16_t nabsn;
    uint16_t nabo;
    uint16_t nabspf;
    uint16_t noiob;
    uint8_t nvmcap[16];
    uint16_t npwg;
    uint16_t npwa;
    uint16_t npdg;
    uint16_t npda;
    uint16_t nows;
    uint8_t rsvd74[18];
    uint32_t anagrpid;
    uint8_t rsvd96[3];
    uint8_t nsattr;
    uint16_t nvmsetid;
    uint16_t endgid;
    uint8_t nguid[16];
    uint8_t eui64[8];
    NvmeLbaf lbaf[16];
    uint8_t rsvd192[192];
    uint8_t vs[3712];
} __attribute__((packed)) NvmeIdNs;

#define NVME_NSFEAT_THIN        (1u << 0)
#define NVME_NSFEAT_NSABP       (1u << 1)
#define NVME_NSFEAT_DAE         (1u << 2)
#define NVME_NSFEAT_UIDREUSE    (1u << 3)
#define NVME_NSFEAT_OPTPERF     (1u << 4)
#define NVME_FLBAS_INDEX(f)     ((f) & 0xf)
/* DLFEAT: 2:0 read behaviour of deallocated blocks (001b zeroes),
 * bit 3 Write Zeroes may deallocate */
#define NVME_DLFEAT_READ_ZEROES 0x1
#define NVME_DLFEAT_WZ_DEAC     (1u << 3)
#define NVME_NSATTR_WRITE_PROTECTED (1u << 0)
/* RESCAP: PTPL bit 0, the six types bits 6:1, IEKEY as of NVMe 1.3 bit 7 */
#define NVME_RESCAP_PTPL        (1u << 0)
#define NVME_RESCAP_TYPES       0x7eu
#define NVME_RESCAP_IEK_13      (1u << 7)

/* Namespace identification descriptor (CNS 03h), figure 250 */
typedef struct NvmeIdNsDescr {
    uint8_t nidt;
    uint8_t nidl;
    uint8_t rsvd[2];
    /* nidl bytes of identifier follow */
} __attribute__((packed)) NvmeIdNsDescr;

enum {
    NVME_NIDT_EUI64 = 0x01,
    NVME_NIDT_NGUID = 0x02,
    NVME_NIDT_UUID = 0x03,
    NVME_NIDT_CSI = 0x04,
};
#define NVME_NIDL_EUI64         8
#define NVME_NIDL_NGUID         16
#define NVME_NIDL_UUID          16

#define NVME_IDENTIFY_DATA_SIZE 4096
#define NVME_ID_NS_LIST_MAX     1024    /* u32 entries in a 4 KiB list */

/* ---- log pages ---- */

typedef struct NvmeErrorLogEntry {
    uint64_t error_count;
    uint16_t sqid;
    uint16_t cid;
    uint16_t status_field;      /* phase bit 0 */
    uint16_t param_error_location;
    uint64_t lba;
    uint32_t nsid;
    uint8_t vs;
    uint8_t trtype;
    uint8_t rsvd30[2];
    uint64_t csi;
    uint16_t trtype_spec_info;
    uint8_t rsvd42[22];
} __attribute__((packed)) NvmeErrorLogEntry;

/* Parameter error location: byte 7:0, bit 10:8 within the command. */
#define NVME_ERR_LOC(byte, bit) ((uint16_t)((byte) | ((bit) << 8)))
#define NVME_ERR_LOC_NONE       0xffff

typedef struct NvmeSmartLog {
    uint8_t critical_warning;
    uint16_t temperature;       /* Kelvin */
    uint8_t available_spare;
    uint8_t available_spare_threshold;
    uint8_t percentage_used;
    uint8_t endurance_group_warning;
    uint8_t rsvd7[25];
    uint64_t data_units_read[2];    /* 1000 x 512 bytes, rounded up */
    uint64_t data_units_written[2];
    uint64_t host_read_commands[2];
    uint64_t host_write_commands[2];
    uint64_t controller_busy_time[2];
    uint64_t power_cycles[2];
    uint64_t power_on_hours[2];
    uint64_t unsafe_shutdowns[2];
    uint64_t media_errors[2];
    uint64_t num_err_log_entries[2];
    uint32_t warning_temp_time;
    uint32_t critical_comp_temp_time;
    uint16_t temp_sensor[8];
    uint32_t thm_temp1_trans_count;
    uint32_t thm_temp2_trans_count;
    uint32_t thm_temp1_total_time;
    uint32_t thm_temp2_total_time;
    uint8_t rsvd232[280];
} __attribute__((packed)) NvmeSmartLog;

#define NVME_SMART_WARN_SPARE       (1u << 0)
#define NVME_SMART_WARN_TEMPERATURE (1u << 1)
#define NVME_SMART_WARN_RELIABILITY (1u << 2)
#define NVME_SMART_WARN_READ_ONLY   (1u << 3)
#define NVME_SMART_WARN_VOLATILE_MEM (1u << 4)

typedef struct NvmeFwSlotLog {
    uint8_t afi;                /* active slot 2:0, next slot 6:4 */
    uint8_t rsvd1[7];
    char frs[7][8];
    uint8_t rsvd64[448];
} __attribute__((packed)) NvmeFwSlotLog;

#define NVME_CHANGED_NSLIST_MAX 1024
#define NVME_CHANGED_NSLIST_OVERFLOW 0xffffffffu

typedef struct NvmeEffectsLog {
    uint32_t acs[256];
    uint32_t iocs[256];
    uint8_t rsvd2048[2048];
} __attribute__((packed)) NvmeEffectsLog;

#define NVME_CSE_CSUPP          (1u << 0)
#define NVME_CSE_LBCC           (1u << 1)
#define NVME_CSE_NCC            (1u << 2)
#define NVME_CSE_NIC            (1u << 3)
#define NVME_CSE_CCC            (1u << 4)

/* Temperatures in Kelvin */
#define NVME_TEMPERATURE        0x143   /* 50 C: what iovd reports */
#define NVME_TEMPERATURE_WARNING 0x157  /* 70 C */
#define NVME_TEMPERATURE_CRITICAL 0x175 /* 100 C */

/* PCI identity iovd uses: the QEMU NVM Express id pair. */
#define NVME_PCI_VENDOR_ID      0x1b36
#define NVME_PCI_DEVICE_ID      0x0010
#define NVME_PCI_CLASS          0x010802    /* mass storage, NVM, NVMe */
#define NVME_BAR_REGS           0
#define NVME_BAR_MSIX           4

_Static_assert(sizeof(NvmeCmd) == 64, "NvmeCmd");
_Static_assert(sizeof(NvmeCqe) == 16, "NvmeCqe");
_Static_assert(sizeof(NvmeSglDesc) == 16, "NvmeSglDesc");
_Static_assert(sizeof(NvmePsd) == 32, "NvmePsd");
_Static_assert(sizeof(NvmeIdCtrl) == 4096, "NvmeIdCtrl");
_Static_assert(sizeof(NvmeIdNs) == 4096, "NvmeIdNs");
_Static_assert(sizeof(NvmeErrorLogEntry) == 64, "NvmeErrorLogEntry");
_Static_assert(sizeof(NvmeSmartLog) == 512, "NvmeSmartLog");
_Static_assert(sizeof(NvmeFwSlotLog) == 512, "NvmeFwSlotLog");
_Static_assert(sizeof(NvmeEffectsLog) == 4096, "NvmeEffectsLog");
_Static_assert(sizeof(NvmeDsmRange) == 16, "NvmeDsmRange");
_Static_assert(sizeof(NvmeTimestamp) == 8, "NvmeTimestamp");
_Static_assert(sizeof(NvmeResvKeys) == 16, "NvmeResvKeys");
_Static_assert(sizeof(NvmeResvStatus) == 24, "NvmeResvStatus");
_Static_assert(sizeof(NvmeRegCtrl) == 24, "NvmeRegCtrl");
_Static_assert(sizeof(NvmeRegCtrlExt) == 64, "NvmeRegCtrlExt");
_Static_assert(sizeof(NvmeResvNotifyLog) == 64, "NvmeResvNotifyLog");
_Static_assert(offsetof(NvmeIdCtrl, oacs) == 256, "NvmeIdCtrl.oacs");
_Static_assert(offsetof(NvmeIdCtrl, kas) == 320, "NvmeIdCtrl.kas");
_Static_assert(offsetof(NvmeIdCtrl, sqes) == 512, "NvmeIdCtrl.sqes");
_Static_assert(offsetof(NvmeIdCtrl, sgls) == 536, "NvmeIdCtrl.sgls");
_Static_assert(offsetof(NvmeIdCtrl, subnqn) == 768, "NvmeIdCtrl.subnqn");
_Static_assert(offsetof(NvmeIdCtrl, psd) == 2048, "NvmeIdCtrl.psd");
_Static_assert(offsetof(NvmeIdNs, nvmcap) == 48, "NvmeIdNs.nvmcap");
_Static_assert(offsetof(NvmeIdNs, anagrpid) == 92, "NvmeIdNs.anagrpid");
_Static_assert(offsetof(NvmeIdNs, nsattr) == 99, "NvmeIdNs.nsattr");
_Static_assert(offsetof(NvmeIdNs, nguid) == 104, "NvmeIdNs.nguid");
_Static_assert(offsetof(NvmeIdNs, lbaf) == 128, "NvmeIdNs.lbaf");
_Static_assert(offsetof(NvmeSmartLog, data_units_read) == 32, "smart");
_Static_assert(offsetof(NvmeSmartLog, num_err_log_entries) == 176, "smart");
_Static_assert(offsetof(NvmeSmartLog, temp_sensor) == 200, "smart");
_Static_assert(offsetof(NvmeCmd, cdw10) == 40, "NvmeCmd.cdw10");

#endif
