/*
 * A guest driver for pci-testdev.
 */
#include "util/osdep.h"

#include "tests/qtest/libqos/pci-testdev.h"

uint32_t testdev_readl(QPCIDevice *d, uint32_t reg)
{
    return qpci_bar_readl(d, TESTDEV_BAR_REGS, reg);
}

void testdev_writel(QPCIDevice *d, uint32_t reg, uint32_t v)
{
    qpci_bar_writel(d, TESTDEV_BAR_REGS, reg, v);
}

void testdev_dma_start(QPCIDevice *d, uint64_t addr, uint32_t len,
                       uint32_t buf_off, uint32_t dir, bool posted)
{
    testdev_writel(d, TESTDEV_REG_DMA_ADDR_LO, (uint32_t)addr);
    testdev_writel(d, TESTDEV_REG_DMA_ADDR_HI, (uint32_t)(addr >> 32));
    testdev_writel(d, TESTDEV_REG_DMA_LEN, len);
    testdev_writel(d, TESTDEV_REG_DMA_BUF_OFF, buf_off);
    testdev_writel(d, TESTDEV_REG_DMA_DIR, dir);
    if (posted) {
        qpci_bar_writel_posted(d, TESTDEV_BAR_REGS, TESTDEV_REG_DMA_START,
                               1);
    } else {
        testdev_writel(d, TESTDEV_REG_DMA_START, 1);
    }
}

uint32_t testdev_dma_wait(QPCIDevice *d)
{
    int64_t deadline = qos_deadline(QOS_TIMEOUT_MS);
    uint32_t st;

    for (;;) {
        st = testdev_readl(d, TESTDEV_REG_INT_STATUS);
        if (st & (TESTDEV_INT_DMA_DONE | TESTDEV_INT_DMA_ERROR)) {
            return st;
        }
        if (!qos_remaining_ms(deadline)) {
            qos_fail("testdev DMA did not complete within %d ms "
                     "(INT_STATUS 0x%x, DMA_START 0x%x)", QOS_TIMEOUT_MS,
                     st, testdev_readl(d, TESTDEV_REG_DMA_START));
        }
        vfu_service(qpci_client(d), 1);
    }
}

uint32_t testdev_dma(QPCIDevice *d, uint64_t addr, uint32_t len,
                     uint32_t buf_off, uint32_t dir)
{
    uint32_t st;

    testdev_dma_start(d, addr, len, buf_off, dir, false);
    st = testdev_dma_wait(d);
    testdev_writel(d, TESTDEV_REG_INT_ACK, st);
    return st;
}
