/*
 * Virtio network device facts from the specification (Virtio 1.2, OASIS,
 * section 5.1): feature bits, the configuration layout, the per-packet
 * header and the control virtqueue's commands.  Written from the
 * specification text; the device model and the tests both include it.
 *
 * Wire formats are little-endian, given as byte offsets for the *_le_p
 * helpers.
 */
#ifndef HW_VIRTIO_VIRTIO_NET_SPEC_H
#define HW_VIRTIO_VIRTIO_NET_SPEC_H

#include "hw/virtio/virtio-spec.h"

/* ---- feature bits (5.1.3) ---- */

#define VIRTIO_NET_F_CSUM               0   /* device handles partial csum */
#define VIRTIO_NET_F_GUEST_CSUM         1   /* driver handles partial csum */
#define VIRTIO_NET_F_CTRL_GUEST_OFFLOADS 2
#define VIRTIO_NET_F_MTU                3
#define VIRTIO_NET_F_MAC                5
#define VIRTIO_NET_F_GUEST_TSO4         7
#define VIRTIO_NET_F_GUEST_TSO6         8
#define VIRTIO_NET_F_GUEST_ECN          9
#define VIRTIO_NET_F_GUEST_UFO          10
#define VIRTIO_NET_F_HOST_TSO4          11
#define VIRTIO_NET_F_HOST_TSO6          12
#define VIRTIO_NET_F_HOST_ECN           13
#define VIRTIO_NET_F_HOST_UFO           14
#define VIRTIO_NET_F_MRG_RXBUF          15
#define VIRTIO_NET_F_STATUS             16
#define VIRTIO_NET_F_CTRL_VQ            17
#define VIRTIO_NET_F_CTRL_RX            18
#define VIRTIO_NET_F_CTRL_VLAN          19
#define VIRTIO_NET_F_CTRL_RX_EXTRA      20
#define VIRTIO_NET_F_GUEST_ANNOUNCE     21
#define VIRTIO_NET_F_MQ                 22
#define VIRTIO_NET_F_CTRL_MAC_ADDR      23
#define VIRTIO_NET_F_HASH_REPORT        57
#define VIRTIO_NET_F_RSS                60
#define VIRTIO_NET_F_SPEED_DUPLEX       63

/* ---- struct virtio_net_config (5.1.4) ---- */

#define VIRTIO_NET_CFG_MAC              0   /* u8[6] */
#define VIRTIO_NET_CFG_STATUS           6   /* le16 (STATUS) */
#define VIRTIO_NET_CFG_MAX_VQ_PAIRS     8   /* le16 (MQ or RSS) */
#define VIRTIO_NET_CFG_MTU              10  /* le16 (MTU) */
#define VIRTIO_NET_CFG_SPEED            12  /* le32, Mbit/s (SPEED_DUPLEX) */
#define VIRTIO_NET_CFG_DUPLEX           16  /* u8 */
#define VIRTIO_NET_CFG_RSS_MAX_KEY      17  /* u8 (RSS / HASH_REPORT) */
#define VIRTIO_NET_CFG_RSS_MAX_IND      18  /* le16 */
#define VIRTIO_NET_CFG_HASH_TYPES       20  /* le32 */
#define VIRTIO_NET_CFG_SIZE             24

/* status */
#define VIRTIO_NET_S_LINK_UP            1
#define VIRTIO_NET_S_ANNOUNCE           2

#define VIRTIO_NET_SPEED_UNKNOWN        0xffffffffu
#define VIRTIO_NET_DUPLEX_UNKNOWN       0xff

/* max_virtqueue_pairs: 1 to 0x8000. */
#define VIRTIO_NET_VQ_PAIRS_MIN         1
#define VIRTIO_NET_VQ_PAIRS_MAX         0x8000
/* mtu: at least 68 (5.1.4.1). */
#define VIRTIO_NET_MTU_MIN              68

/*
 * Virtqueues (5.1.2): receiveq1, transmitq1, ... receiveqN, transmitqN,
 * then controlq (CTRL_VQ).  N is 1 unless MQ (or RSS) was negotiated,
 * then max_virtqueue_pairs; so the control queue's index depends on the
 * features the driver accepted.
 */

/* ---- struct virtio_net_hdr (5.1.6) ---- */

#define VIRTIO_NET_HDR_FLAGS            0   /* u8 */
#define VIRTIO_NET_HDR_GSO_TYPE         1   /* u8 */
#define VIRTIO_NET_HDR_HDR_LEN          2   /* le16 */
#define VIRTIO_NET_HDR_GSO_SIZE         4   /* le16 */
#define VIRTIO_NET_HDR_CSUM_START       6   /* le16 */
#define VIRTIO_NET_HDR_CSUM_OFFSET      8   /* le16 */
#define VIRTIO_NET_HDR_NUM_BUFFERS      10  /* le16 */
/* With VERSION_1 the header always has num_buffers: 12 bytes. */
#define VIRTIO_NET_HDR_SIZE             12

#define VIRTIO_NET_HDR_F_NEEDS_CSUM     1
#define VIRTIO_NET_HDR_F_DATA_VALID     2
#define VIRTIO_NET_HDR_F_RSC_INFO       4

#define VIRTIO_NET_HDR_GSO_NONE         0
#define VIRTIO_NET_HDR_GSO_TCPV4        1
#define VIRTIO_NET_HDR_GSO_UDP          3
#define VIRTIO_NET_HDR_GSO_TCPV6        4
#define VIRTIO_NET_HDR_GSO_UDP_L4       5
#define VIRTIO_NET_HDR_GSO_ECN          0x80

/* ---- control virtqueue (5.1.6.5) ---- */

/*
 * A command: u8 class, u8 command, command-specific data (all
 * device-readable), then u8 ack (device-writable).
 */
#define VIRTIO_NET_CTRL_CLASS           0
#define VIRTIO_NET_CTRL_CMD             1
#define VIRTIO_NET_CTRL_HDR_SIZE        2

#define VIRTIO_NET_OK                   0
#define VIRTIO_NET_ERR                  1

/* Receive filtering (CTRL_RX; the last three need CTRL_RX_EXTRA). */
#define VIRTIO_NET_CTRL_RX              0
#define VIRTIO_NET_CTRL_RX_PROMISC      0   /* data: u8 on */
#define VIRTIO_NET_CTRL_RX_ALLMULTI     1
#define VIRTIO_NET_CTRL_RX_ALLUNI       2
#define VIRTIO_NET_CTRL_RX_NOMULTI      3
#define VIRTIO_NET_CTRL_RX_NOUNI        4
#define VIRTIO_NET_CTRL_RX_NOBCAST      5

/*
 * MAC filtering.  TABLE_SET (CTRL_RX): two struct virtio_net_ctrl_mac,
 * unicast then multicast, each le32 entries and entries * 6 bytes.
 * ADDR_SET (CTRL_MAC_ADDR): the 6-byte default MAC.
 */
#define VIRTIO_NET_CTRL_MAC             1
#define VIRTIO_NET_CTRL_MAC_TABLE_SET   0
#define VIRTIO_NET_CTRL_MAC_ADDR_SET    1

/* VLAN filtering (CTRL_VLAN): data le16 vid (12 bits). */
#define VIRTIO_NET_CTRL_VLAN            2
#define VIRTIO_NET_CTRL_VLAN_ADD        0
#define VIRTIO_NET_CTRL_VLAN_DEL        1
#define VIRTIO_NET_VLAN_MAX             4096

/* Gratuitous packets sent (GUEST_ANNOUNCE): no data. */
#define VIRTIO_NET_CTRL_ANNOUNCE        3
#define VIRTIO_NET_CTRL_ANNOUNCE_ACK    0

/* Multiqueue (MQ): VQ_PAIRS_SET data le16 virtqueue_pairs. */
#define VIRTIO_NET_CTRL_MQ              4
#define VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET 0
#define VIRTIO_NET_CTRL_MQ_RSS_CONFIG   1
#define VIRTIO_NET_CTRL_MQ_HASH_CONFIG  2

/* Offload state (CTRL_GUEST_OFFLOADS): data le64, GUEST_* feature bits. */
#define VIRTIO_NET_CTRL_GUEST_OFFLOADS  5
#define VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET 0

/* ---- Ethernet facts the device needs ---- */

#define VIRTIO_NET_ETH_ALEN             6
#define VIRTIO_NET_ETH_HLEN             14
#define VIRTIO_NET_ETH_P_IP             0x0800
#define VIRTIO_NET_ETH_P_IPV6           0x86dd
#define VIRTIO_NET_ETH_P_VLAN           0x8100
#define VIRTIO_NET_VLAN_HLEN            4

#endif
