/*
 * Fuzz target: e1000 transmit: the TX descriptor walk (legacy, context
 * and data descriptors: checksum offload, TSO, VLAN insertion) and, in
 * MAC loopback, the receive path the frames then take.  An e1000 without
 * a backend runs in process (tests/fuzz/fuzz-device.h); each input is a
 * fresh connection and bring-up as Linux does it, then:
 *
 *   byte 0        how many descriptors (1 + n % 8)
 *   byte 1        bit 0: MAC loopback (frames come back to the receiver)
 *   n x 16 bytes  descriptors; the first 8 bytes (buffer address) based
 *                 in the data area modulo its size unless the top bit is
 *                 set; context descriptors have no address and are
 *                 mangled the same way, which the fuzzer learns to use
 *   the rest      written into the data area: frame bytes
 *
 * TDT is rung once; the device gets up to 5 ms to consume them.
 */
#include "tests/fuzz/fuzz-device.h"
#include "tests/qtest/libqos/e1000.h"
#include "tests/qtest/libqos/guest-mem.h"
#include "tests/qtest/libqos/pci.h"
#include "tests/qtest/libqos/vfu-client.h"

#define DATA_SIZE   (64u << 10)

static FuzzDevice nic = {
    .device = "driver=e1000,id=nic0",
};

static QE1000 *e;
static uint64_t area;
static uint32_t tctl, rctl, rdt;

static void bring_up(void)
{
    VfuClient *c = vfu_client_open(nic.sock_path);
    QPCIDevice *dev = qpci_device_new(c);
    GuestMem *gm = guest_mem_new(GUEST_MEM_DEFAULT_BASE,
                                 GUEST_MEM_DEFAULT_SIZE);

    guest_mem_map_checked(gm, c, true);
    e = qe1000_new(dev, gm);
    qe1000_init(e, &(QE1000Config) {
        .rx_ring = 8, .tx_ring = 16, .no_link_wait = true,
    });
    area = guest_alloc_aligned(gm, DATA_SIZE, 4096);
    tctl = qe1000_readl(e, E1000_TCTL);
    rctl = qe1000_readl(e, E1000_RCTL);
    rdt = qe1000_readl(e, E1000_RDT);
}

/* Empty rings, as after the bring-up; MAC loopback on or off. */
static void rings_reset(bool loopback)
{
    qe1000_writel(e, E1000_TCTL, tctl & ~E1000_TCTL_EN);
    qe1000_writel(e, E1000_RCTL, rctl & ~E1000_RCTL_EN);
    qe1000_writel(e, E1000_TDH, 0);
    qe1000_writel(e, E1000_TDT, 0);
    qe1000_writel(e, E1000_RDH, 0);
    qe1000_writel(e, E1000_RDT, rdt);
    e->tx_tail = e->tx_clean = 0;
    e->rx_next = 0;
    qe1000_writel(e, E1000_RCTL, rctl | (loopback ? E1000_RCTL_LBM_MAC : 0));
    qe1000_writel(e, E1000_TCTL, tctl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t descs[8][E1000_TXD_SIZE];
    unsigned n;

    fuzz_device_start(&nic);
    if (!e) {
        bring_up();
    }
    if (size < 2 + E1000_TXD_SIZE) {
        return 0;
    }
    n = MIN(1 + data[0] % 8, (size - 2) / E1000_TXD_SIZE);
    rings_reset(data[1] & 1);
    guest_memwrite(e->gm, area, data + 2 + E1000_TXD_SIZE * n,
                   MIN(size - 2 - E1000_TXD_SIZE * n, DATA_SIZE));

    memcpy(descs, data + 2, E1000_TXD_SIZE * n);
    for (unsigned i = 0; i < n; i++) {
        uint64_t addr = ldq_le_p(descs[i]);

        if (!(addr >> 63)) {
            stq_le_p(descs[i], area + addr % DATA_SIZE);
        }
    }
    qe1000_tx_raw(e, (const uint8_t (*)[E1000_TXD_SIZE])descs, n);
    for (unsigned i = 0; i < 5 && qe1000_readl(e, E1000_TDH) != e->tx_tail;
         i++) {
        g_usleep(1000);
    }
    return 0;
}
