// SPDX-License-Identifier: MIT
#pragma once
// The layer catalogue: every filtering layer LFP offers and the fields WFP offers at each, named as
// WFP names them (without FWPM_LAYER_ / FWPM_CONDITION_). See docs/layers.md.
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "lfp/engine/value.hpp"

namespace lfp {

#define LFP_FIELDS(X)                                                                             \
  X(IP_LOCAL_ADDRESS) X(IP_REMOTE_ADDRESS) X(IP_SOURCE_ADDRESS) X(IP_DESTINATION_ADDRESS)         \
  X(IP_LOCAL_ADDRESS_TYPE) X(IP_DESTINATION_ADDRESS_TYPE) X(IP_LOCAL_PORT) X(IP_REMOTE_PORT)      \
  X(IP_PROTOCOL) X(IP_LOCAL_INTERFACE) X(IP_ARRIVAL_INTERFACE) X(IP_NEXTHOP_INTERFACE)             \
  X(IP_FORWARD_INTERFACE) X(INTERFACE_INDEX) X(SOURCE_INTERFACE_INDEX)                             \
  X(DESTINATION_INTERFACE_INDEX) X(INTERFACE_TYPE) X(FLAGS) X(DIRECTION) X(ICMP_TYPE) X(ICMP_CODE) \
  X(EMBEDDED_LOCAL_ADDRESS_TYPE) X(EMBEDDED_REMOTE_ADDRESS) X(EMBEDDED_PROTOCOL)                   \
  X(EMBEDDED_LOCAL_PORT) X(EMBEDDED_REMOTE_PORT) X(ALE_APP_ID) X(ALE_ORIGINAL_APP_ID)              \
  X(ALE_USER_ID) X(ALE_PROMISCUOUS_MODE) X(ALE_REAUTH_REASON) X(MAC_LOCAL_ADDRESS)                 \
  X(MAC_REMOTE_ADDRESS) X(MAC_LOCAL_ADDRESS_TYPE) X(MAC_REMOTE_ADDRESS_TYPE) X(ETHER_TYPE)         \
  X(VLAN_ID) X(INTERFACE) X(INTERFACE_MAC_ADDRESS) X(L2_FLAGS) X(CGROUP_PATH)

enum class FieldId : uint8_t {
#define X(n) n,
  LFP_FIELDS(X)
#undef X
      COUNT,
  NONE = 0xff,
};
inline constexpr size_t kFieldCount = static_cast<size_t>(FieldId::COUNT);

#define LFP_LAYERS(X)                                                                           \
  X(INBOUND_IPPACKET_V4) X(INBOUND_IPPACKET_V6) X(OUTBOUND_IPPACKET_V4) X(OUTBOUND_IPPACKET_V6) \
  X(IPFORWARD_V4) X(IPFORWARD_V6) X(INBOUND_TRANSPORT_V4) X(INBOUND_TRANSPORT_V6)               \
  X(OUTBOUND_TRANSPORT_V4) X(OUTBOUND_TRANSPORT_V6) X(STREAM_V4) X(STREAM_V6)                   \
  X(DATAGRAM_DATA_V4) X(DATAGRAM_DATA_V6) X(INBOUND_ICMP_ERROR_V4) X(INBOUND_ICMP_ERROR_V6)     \
  X(OUTBOUND_ICMP_ERROR_V4) X(OUTBOUND_ICMP_ERROR_V6) X(ALE_RESOURCE_ASSIGNMENT_V4)             \
  X(ALE_RESOURCE_ASSIGNMENT_V6) X(ALE_RESOURCE_RELEASE_V4) X(ALE_RESOURCE_RELEASE_V6)           \
  X(ALE_AUTH_LISTEN_V4) X(ALE_AUTH_LISTEN_V6) X(ALE_AUTH_RECV_ACCEPT_V4)                        \
  X(ALE_AUTH_RECV_ACCEPT_V6) X(ALE_AUTH_CONNECT_V4) X(ALE_AUTH_CONNECT_V6)                      \
  X(ALE_FLOW_ESTABLISHED_V4) X(ALE_FLOW_ESTABLISHED_V6) X(ALE_ENDPOINT_CLOSURE_V4)              \
  X(ALE_ENDPOINT_CLOSURE_V6) X(ALE_CONNECT_REDIRECT_V4) X(ALE_CONNECT_REDIRECT_V6)              \
  X(ALE_BIND_REDIRECT_V4) X(ALE_BIND_REDIRECT_V6) X(INBOUND_MAC_FRAME_ETHERNET)                 \
  X(OUTBOUND_MAC_FRAME_ETHERNET)

// The run-time layer id (WFP's FWPS_LAYER_* LUID) is this enum's value.
enum class LayerId : uint16_t {
#define X(n) n,
  LFP_LAYERS(X)
#undef X
      COUNT,
};
inline constexpr size_t kLayerCount = static_cast<size_t>(LayerId::COUNT);

enum class IpFamily : uint8_t { NONE, V4, V6 };

// How a layer's filters are indexed by the compiled classifier: which field feeds each dimension.
enum class KeyShape : uint8_t {
  V4,   // <32,32,16,16,8>
  V6,   // <64,64,64,64,16,16,8>: each address as two 64-bit halves
  MAC,  // <48,48,16,16>
};
inline constexpr size_t kMaxKeyFields = 5;  // fields per shape (a v6 address counts once)

struct LayerInfo {
  LayerId id;
  std::string_view name;
  IpFamily family;
  std::span<const FieldId> fields;
  KeyShape shape;
  std::array<FieldId, kMaxKeyFields> key_fields;  // NONE where a dimension is unused here
};

const LayerInfo& layer_info(LayerId id);
std::span<const LayerInfo> all_layers();
std::optional<LayerId> layer_from_string(std::string_view name);

std::string_view field_name(FieldId f);
std::optional<FieldId> field_from_string(std::string_view name);
bool layer_has_field(const LayerInfo& layer, FieldId f);
// The type of a field's value at a layer: addresses are UINT32 at _V4 layers and BYTE_ARRAY16_TYPE at
// _V6 layers, as in WFP.
DataType field_type(FieldId f, IpFamily family);
// True for the Linux-only fields (not in WFP).
bool field_is_linux_only(FieldId f);
// True for the fields that hold an interface (on Linux its ifindex, the LUID fields too): the ones a
// condition may name an interface in (ConditionValue::interface_name).
bool field_is_interface(FieldId f);
// A name Linux could give an interface: 1 to 15 bytes (IFNAMSIZ - 1), no '/', ':' or white space.
bool is_interface_name(std::string_view name);

// FLAGS bits (FWP_CONDITION_FLAG_*).
namespace condition_flag {
inline constexpr uint32_t IS_LOOPBACK = 0x1;
inline constexpr uint32_t IS_IPSEC_SECURED = 0x2;
inline constexpr uint32_t IS_REAUTHORIZE = 0x4;
inline constexpr uint32_t IS_WILDCARD_BIND = 0x8;
inline constexpr uint32_t IS_RAW_ENDPOINT = 0x10;
inline constexpr uint32_t IS_FRAGMENT = 0x20;
inline constexpr uint32_t IS_FRAGMENT_GROUP = 0x40;
inline constexpr uint32_t IS_REASSEMBLED = 0x400;
inline constexpr uint32_t IS_CONNECTION_REDIRECTED = 0x100000;
inline constexpr uint32_t IS_PROXY_CONNECTION = 0x200000;
}  // namespace condition_flag

// L2_FLAGS bits (FWP_CONDITION_L2_*) the data path sets.
namespace l2_flag {
inline constexpr uint32_t IS_NATIVE_ETHERNET = 0x1;
inline constexpr uint32_t IS_IP_FRAGMENT_GROUP = 0x40;
}  // namespace l2_flag

// INTERFACE_TYPE values (IANA ifType, as WFP's): what Linux's device types (ARPHRD_*) map to.
namespace iftype {
inline constexpr uint32_t OTHER = 1, ETHERNET_CSMACD = 6, PPP = 23, SOFTWARE_LOOPBACK = 24, IEEE80211 = 71,
                          TUNNEL = 131;
}  // namespace iftype
// The ifType of a Linux device of type `arphrd` (ARPHRD_*; wireless devices are ARPHRD_ETHER too).
uint32_t iftype_of_arphrd(uint32_t arphrd);

// DIRECTION values (FWP_DIRECTION_*).
inline constexpr uint32_t DIRECTION_OUTBOUND = 0;
inline constexpr uint32_t DIRECTION_INBOUND = 1;

// Named constants the policy format accepts in place of numbers, per field (e.g. "IS_LOOPBACK" for
// FLAGS, "INBOUND" for DIRECTION, "TCP" for IP_PROTOCOL).
std::optional<uint64_t> named_constant(FieldId f, std::string_view name);

}  // namespace lfp
