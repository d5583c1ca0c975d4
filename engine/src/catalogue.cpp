// SPDX-License-Identifier: MIT
#include "lfp/engine/catalogue.hpp"

#include <array>
#include <cctype>
#include <string>

namespace lfp {
namespace {

using F = FieldId;
constexpr F N = F::NONE;

// Field lists per layer, after WFP's "Filtering conditions available at each filtering layer"
// (the Linux data path fills the ones it can observe; see docs/layers.md).
constexpr F kIpPacket[] = {F::FLAGS, F::INTERFACE_INDEX, F::INTERFACE_TYPE, F::IP_LOCAL_INTERFACE,
                           F::IP_LOCAL_ADDRESS, F::IP_REMOTE_ADDRESS, F::IP_LOCAL_ADDRESS_TYPE};
constexpr F kIpForward[] = {F::FLAGS, F::IP_SOURCE_ADDRESS, F::IP_DESTINATION_ADDRESS,
                            F::IP_DESTINATION_ADDRESS_TYPE, F::SOURCE_INTERFACE_INDEX,
                            F::DESTINATION_INTERFACE_INDEX, F::IP_FORWARD_INTERFACE, F::IP_LOCAL_INTERFACE};
constexpr F kInTransport[] = {F::FLAGS, F::INTERFACE_INDEX, F::INTERFACE_TYPE, F::IP_LOCAL_INTERFACE,
                              F::IP_LOCAL_ADDRESS, F::IP_REMOTE_ADDRESS, F::IP_LOCAL_PORT, F::IP_REMOTE_PORT,
                              F::IP_LOCAL_ADDRESS_TYPE, F::IP_PROTOCOL};
constexpr F kOutTransport[] = {F::FLAGS, F::INTERFACE_INDEX, F::INTERFACE_TYPE, F::IP_LOCAL_INTERFACE,
                               F::IP_LOCAL_ADDRESS, F::IP_REMOTE_ADDRESS, F::IP_LOCAL_PORT, F::IP_REMOTE_PORT,
                               F::IP_LOCAL_ADDRESS_TYPE, F::IP_PROTOCOL, F::IP_DESTINATION_ADDRESS_TYPE};
constexpr F kStream[] = {F::DIRECTION, F::FLAGS, F::IP_LOCAL_ADDRESS, F::IP_REMOTE_ADDRESS,
                         F::IP_LOCAL_PORT, F::IP_REMOTE_PORT, F::IP_LOCAL_ADDRESS_TYPE};
constexpr F kDatagram[] = {F::DIRECTION, F::FLAGS, F::INTERFACE_INDEX, F::INTERFACE_TYPE,
                           F::IP_LOCAL_INTERFACE, F::IP_LOCAL_ADDRESS, F::IP_REMOTE_ADDRESS,
                           F::IP_LOCAL_PORT, F::IP_REMOTE_PORT, F::IP_LOCAL_ADDRESS_TYPE, F::IP_PROTOCOL};
constexpr F kInIcmpError[] = {F::FLAGS, F::ICMP_TYPE, F::ICMP_CODE, F::EMBEDDED_LOCAL_ADDRESS_TYPE,
                              F::EMBEDDED_REMOTE_ADDRESS, F::EMBEDDED_PROTOCOL, F::EMBEDDED_LOCAL_PORT,
                              F::EMBEDDED_REMOTE_PORT, F::IP_LOCAL_ADDRESS, F::IP_REMOTE_ADDRESS,
                              F::IP_LOCAL_INTERFACE, F::IP_ARRIVAL_INTERFACE, F::INTERFACE_INDEX,
                              F::INTERFACE_TYPE};
constexpr F kOutIcmpError[] = {F::FLAGS, F::ICMP_TYPE, F::ICMP_CODE, F::INTERFACE_INDEX, F::INTERFACE_TYPE,
                               F::IP_LOCAL_INTERFACE, F::IP_LOCAL_ADDRESS, F::IP_REMOTE_ADDRESS,
                               F::IP_LOCAL_ADDRESS_TYPE};
constexpr F kResourceAssignment[] = {F::ALE_APP_ID, F::ALE_USER_ID, F::ALE_PROMISCUOUS_MODE, F::FLAGS,
                                     F::INTERFACE_TYPE, F::IP_LOCAL_ADDRESS, F::IP_LOCAL_ADDRESS_TYPE,
                                     F::IP_LOCAL_INTERFACE, F::IP_LOCAL_PORT, F::IP_PROTOCOL, F::CGROUP_PATH};
constexpr F kResourceRelease[] = {F::ALE_APP_ID, F::ALE_USER_ID, F::FLAGS, F::IP_LOCAL_ADDRESS,
                                  F::IP_LOCAL_ADDRESS_TYPE, F::IP_LOCAL_INTERFACE, F::IP_LOCAL_PORT,
                                  F::IP_PROTOCOL, F::CGROUP_PATH};
constexpr F kEndpointClosure[] = {F::ALE_APP_ID, F::ALE_USER_ID, F::FLAGS, F::IP_LOCAL_ADDRESS,
                                  F::IP_LOCAL_ADDRESS_TYPE, F::IP_LOCAL_INTERFACE, F::IP_LOCAL_PORT,
                                  F::IP_PROTOCOL, F::IP_REMOTE_ADDRESS, F::IP_REMOTE_PORT, F::CGROUP_PATH};
constexpr F kListen[] = {F::ALE_APP_ID, F::ALE_USER_ID, F::FLAGS, F::INTERFACE_TYPE, F::IP_LOCAL_ADDRESS,
                         F::IP_LOCAL_ADDRESS_TYPE, F::IP_LOCAL_INTERFACE, F::IP_LOCAL_PORT, F::CGROUP_PATH};
constexpr F kRecvAccept[] = {F::ALE_APP_ID, F::ALE_USER_ID, F::FLAGS, F::IP_LOCAL_ADDRESS,
                             F::IP_REMOTE_ADDRESS, F::IP_LOCAL_PORT, F::IP_REMOTE_PORT,
                             F::IP_LOCAL_ADDRESS_TYPE, F::IP_PROTOCOL, F::IP_LOCAL_INTERFACE,
                             F::IP_ARRIVAL_INTERFACE, F::INTERFACE_INDEX, F::INTERFACE_TYPE,
                             F::ALE_REAUTH_REASON, F::CGROUP_PATH};
constexpr F kConnect[] = {F::ALE_APP_ID, F::ALE_USER_ID, F::FLAGS, F::IP_LOCAL_ADDRESS, F::IP_REMOTE_ADDRESS,
                          F::IP_LOCAL_PORT, F::IP_REMOTE_PORT, F::IP_LOCAL_ADDRESS_TYPE,
                          F::IP_DESTINATION_ADDRESS_TYPE, F::IP_PROTOCOL, F::IP_LOCAL_INTERFACE,
                          F::INTERFACE_TYPE, F::IP_NEXTHOP_INTERFACE, F::ALE_REAUTH_REASON, F::CGROUP_PATH};
constexpr F kFlowEstablished[] = {F::ALE_APP_ID, F::ALE_USER_ID, F::DIRECTION, F::FLAGS, F::INTERFACE_TYPE,
                                  F::IP_LOCAL_ADDRESS, F::IP_REMOTE_ADDRESS, F::IP_LOCAL_PORT,
                                  F::IP_REMOTE_PORT, F::IP_LOCAL_ADDRESS_TYPE, F::IP_DESTINATION_ADDRESS_TYPE,
                                  F::IP_LOCAL_INTERFACE, F::IP_PROTOCOL, F::CGROUP_PATH};
constexpr F kConnectRedirect[] = {F::ALE_APP_ID, F::ALE_ORIGINAL_APP_ID, F::ALE_USER_ID, F::FLAGS,
                                  F::IP_LOCAL_ADDRESS, F::IP_REMOTE_ADDRESS, F::IP_LOCAL_PORT,
                                  F::IP_REMOTE_PORT, F::IP_LOCAL_ADDRESS_TYPE, F::IP_DESTINATION_ADDRESS_TYPE,
                                  F::IP_PROTOCOL, F::CGROUP_PATH};
constexpr F kBindRedirect[] = {F::ALE_APP_ID, F::ALE_USER_ID, F::FLAGS, F::IP_LOCAL_ADDRESS,
                               F::IP_LOCAL_ADDRESS_TYPE, F::IP_LOCAL_PORT, F::IP_PROTOCOL, F::CGROUP_PATH};
constexpr F kMacFrame[] = {F::INTERFACE_MAC_ADDRESS, F::MAC_LOCAL_ADDRESS, F::MAC_REMOTE_ADDRESS,
                           F::MAC_LOCAL_ADDRESS_TYPE, F::MAC_REMOTE_ADDRESS_TYPE, F::ETHER_TYPE, F::VLAN_ID,
                           F::INTERFACE, F::INTERFACE_INDEX, F::L2_FLAGS};

// Classifier dimensions: remote address, local address, remote port, local port, protocol.
constexpr std::array<F, kMaxKeyFields> kKey5 = {F::IP_REMOTE_ADDRESS, F::IP_LOCAL_ADDRESS, F::IP_REMOTE_PORT,
                                                F::IP_LOCAL_PORT, F::IP_PROTOCOL};
constexpr std::array<F, kMaxKeyFields> kKeyAddr = {F::IP_REMOTE_ADDRESS, F::IP_LOCAL_ADDRESS, N, N, N};
constexpr std::array<F, kMaxKeyFields> kKeyForward = {F::IP_SOURCE_ADDRESS, F::IP_DESTINATION_ADDRESS, N, N, N};
constexpr std::array<F, kMaxKeyFields> kKeyIcmp = {F::IP_REMOTE_ADDRESS, F::IP_LOCAL_ADDRESS, F::ICMP_TYPE,
                                                   F::ICMP_CODE, N};
constexpr std::array<F, kMaxKeyFields> kKeyLocal = {N, F::IP_LOCAL_ADDRESS, N, F::IP_LOCAL_PORT, F::IP_PROTOCOL};
constexpr std::array<F, kMaxKeyFields> kKeyMac = {F::MAC_REMOTE_ADDRESS, F::MAC_LOCAL_ADDRESS, F::ETHER_TYPE,
                                                  F::VLAN_ID, N};

#define PAIR(base, list, key)                                                              \
  LayerInfo{LayerId::base##_V4, #base "_V4", IpFamily::V4, list, KeyShape::V4, key},        \
      LayerInfo{LayerId::base##_V6, #base "_V6", IpFamily::V6, list, KeyShape::V6, key}

const std::array<LayerInfo, kLayerCount> kLayers = {
    PAIR(INBOUND_IPPACKET, kIpPacket, kKeyAddr),
    PAIR(OUTBOUND_IPPACKET, kIpPacket, kKeyAddr),
    PAIR(IPFORWARD, kIpForward, kKeyForward),
    PAIR(INBOUND_TRANSPORT, kInTransport, kKey5),
    PAIR(OUTBOUND_TRANSPORT, kOutTransport, kKey5),
    PAIR(STREAM, kStream, kKey5),
    PAIR(DATAGRAM_DATA, kDatagram, kKey5),
    PAIR(INBOUND_ICMP_ERROR, kInIcmpError, kKeyIcmp),
    PAIR(OUTBOUND_ICMP_ERROR, kOutIcmpError, kKeyIcmp),
    PAIR(ALE_RESOURCE_ASSIGNMENT, kResourceAssignment, kKeyLocal),
    PAIR(ALE_RESOURCE_RELEASE, kResourceRelease, kKeyLocal),
    PAIR(ALE_AUTH_LISTEN, kListen, kKeyLocal),
    PAIR(ALE_AUTH_RECV_ACCEPT, kRecvAccept, kKey5),
    PAIR(ALE_AUTH_CONNECT, kConnect, kKey5),
    PAIR(ALE_FLOW_ESTABLISHED, kFlowEstablished, kKey5),
    PAIR(ALE_ENDPOINT_CLOSURE, kEndpointClosure, kKey5),
    PAIR(ALE_CONNECT_REDIRECT, kConnectRedirect, kKey5),
    PAIR(ALE_BIND_REDIRECT, kBindRedirect, kKeyLocal),
    LayerInfo{LayerId::INBOUND_MAC_FRAME_ETHERNET, "INBOUND_MAC_FRAME_ETHERNET", IpFamily::NONE, kMacFrame,
              KeyShape::MAC, kKeyMac},
    LayerInfo{LayerId::OUTBOUND_MAC_FRAME_ETHERNET, "OUTBOUND_MAC_FRAME_ETHERNET", IpFamily::NONE, kMacFrame,
              KeyShape::MAC, kKeyMac},
};
#undef PAIR

constexpr std::string_view kFieldNames[] = {
#define X(n) #n,
    LFP_FIELDS(X)
#undef X
};

bool is_address_field(FieldId f) {
  return f == F::IP_LOCAL_ADDRESS || f == F::IP_REMOTE_ADDRESS || f == F::IP_SOURCE_ADDRESS ||
         f == F::IP_DESTINATION_ADDRESS || f == F::EMBEDDED_REMOTE_ADDRESS;
}

}  // namespace

const LayerInfo& layer_info(LayerId id) { return kLayers[static_cast<size_t>(id)]; }
std::span<const LayerInfo> all_layers() { return kLayers; }

std::optional<LayerId> layer_from_string(std::string_view name) {
  for (const auto& l : kLayers)
    if (l.name == name) return l.id;
  return std::nullopt;
}

std::string_view field_name(FieldId f) {
  return static_cast<size_t>(f) < kFieldCount ? kFieldNames[static_cast<size_t>(f)] : "NONE";
}

std::optional<FieldId> field_from_string(std::string_view name) {
  for (size_t i = 0; i < kFieldCount; ++i)
    if (kFieldNames[i] == name) return static_cast<FieldId>(i);
  return std::nullopt;
}

bool layer_has_field(const LayerInfo& layer, FieldId f) {
  for (auto x : layer.fields)
    if (x == f) return true;
  return false;
}

DataType field_type(FieldId f, IpFamily family) {
  if (is_address_field(f)) return family == IpFamily::V6 ? DataType::BYTE_ARRAY16_TYPE : DataType::UINT32;
  switch (f) {
    case F::IP_LOCAL_ADDRESS_TYPE:
    case F::IP_DESTINATION_ADDRESS_TYPE:
    case F::IP_PROTOCOL:
    case F::EMBEDDED_LOCAL_ADDRESS_TYPE:
    case F::EMBEDDED_PROTOCOL:
    case F::MAC_LOCAL_ADDRESS_TYPE:
    case F::MAC_REMOTE_ADDRESS_TYPE:
      return DataType::UINT8;
    case F::IP_LOCAL_PORT:
    case F::IP_REMOTE_PORT:
    case F::ICMP_TYPE:
    case F::ICMP_CODE:
    case F::EMBEDDED_LOCAL_PORT:
    case F::EMBEDDED_REMOTE_PORT:
    case F::ETHER_TYPE:
    case F::VLAN_ID:
      return DataType::UINT16;
    case F::IP_LOCAL_INTERFACE:
    case F::IP_ARRIVAL_INTERFACE:
    case F::IP_NEXTHOP_INTERFACE:
    case F::IP_FORWARD_INTERFACE:
    case F::INTERFACE:
      return DataType::UINT64;
    case F::ALE_APP_ID:
    case F::ALE_ORIGINAL_APP_ID:
    case F::CGROUP_PATH:
      return DataType::BYTE_BLOB_TYPE;
    case F::ALE_USER_ID:
      return DataType::TOKEN_INFORMATION_TYPE;
    case F::MAC_LOCAL_ADDRESS:
    case F::MAC_REMOTE_ADDRESS:
    case F::INTERFACE_MAC_ADDRESS:
      return DataType::BYTE_ARRAY6_TYPE;
    default:
      return DataType::UINT32;  // FLAGS, DIRECTION, indexes, types, reasons, L2_FLAGS
  }
}

bool field_is_linux_only(FieldId f) { return f == F::CGROUP_PATH; }

bool is_interface_name(std::string_view name) {
  return !name.empty() && name.size() <= 15 && name.find_first_of(std::string_view("/: \t\n\r\v\f\0", 9)) == std::string_view::npos;
}

bool field_is_interface(FieldId f) {
  switch (f) {
    case F::IP_LOCAL_INTERFACE:
    case F::IP_ARRIVAL_INTERFACE:
    case F::IP_NEXTHOP_INTERFACE:
    case F::IP_FORWARD_INTERFACE:
    case F::INTERFACE:
    case F::INTERFACE_INDEX:
    case F::SOURCE_INTERFACE_INDEX:
    case F::DESTINATION_INTERFACE_INDEX: return true;
    default: return false;
  }
}

uint32_t iftype_of_arphrd(uint32_t arphrd) {
  switch (arphrd) {
    case 1: return iftype::ETHERNET_CSMACD;  // ARPHRD_ETHER
    case 512: return iftype::PPP;            // ARPHRD_PPP
    case 772: return iftype::SOFTWARE_LOOPBACK;
    case 801: case 802: case 803: return iftype::IEEE80211;  // ARPHRD_IEEE80211(_PRISM, _RADIOTAP)
    case 768: case 769: case 776: case 778: case 823: case 0xfffe:  // IPIP, IP6IP6, SIT, GRE, IP6GRE, NONE (tun, wg)
      return iftype::TUNNEL;
    default: return iftype::OTHER;
  }
}

std::optional<uint64_t> named_constant(FieldId f, std::string_view name) {
  struct Named {
    std::string_view name;
    uint64_t value;
  };
  static constexpr Named kFlags[] = {
      {"IS_LOOPBACK", 0x1},          {"IS_IPSEC_SECURED", 0x2},       {"IS_REAUTHORIZE", 0x4},
      {"IS_WILDCARD_BIND", 0x8},     {"IS_RAW_ENDPOINT", 0x10},       {"IS_FRAGMENT", 0x20},
      {"IS_FRAGMENT_GROUP", 0x40},   {"IS_IPSEC_NATT_RECLASSIFY", 0x80}, {"REQUIRES_ALE_CLASSIFY", 0x100},
      {"IS_IMPLICIT_BIND", 0x200},   {"IS_REASSEMBLED", 0x400},       {"IS_NAME_APP_SPECIFIED", 0x4000},
      {"IS_PROMISCUOUS", 0x8000},    {"IS_AUTH_FW", 0x10000},         {"IS_RECLASSIFY", 0x20000},
      {"IS_OUTBOUND_PASS_THRU", 0x40000}, {"IS_INBOUND_PASS_THRU", 0x80000},
      {"IS_CONNECTION_REDIRECTED", 0x100000}, {"IS_PROXY_CONNECTION", 0x200000},
  };
  static constexpr Named kDirection[] = {{"OUTBOUND", DIRECTION_OUTBOUND}, {"INBOUND", DIRECTION_INBOUND}};
  static constexpr Named kProtocol[] = {{"ICMP", 1}, {"IGMP", 2},   {"TCP", 6},      {"UDP", 17},
                                        {"GRE", 47}, {"ESP", 50},   {"AH", 51},      {"ICMPV6", 58},
                                        {"SCTP", 132}, {"UDPLITE", 136}};
  static constexpr Named kEther[] = {{"IPV4", 0x0800}, {"ARP", 0x0806}, {"VLAN", 0x8100}, {"IPV6", 0x86DD}};
  static constexpr Named kL2Flags[] = {  // FWP_CONDITION_L2_*
      {"IS_NATIVE_ETHERNET", 0x1}, {"IS_WIFI", 0x2},             {"IS_MOBILE_BROADBAND", 0x4},
      {"IS_WIFI_DIRECT_DATA", 0x8}, {"IS_VM2VM", 0x10},          {"IS_MALFORMED_PACKET", 0x20},
      {"IS_IP_FRAGMENT_GROUP", 0x40}, {"IF_CONNECTOR_PRESENT", 0x80}};
  static constexpr Named kIfType[] = {  // IANA ifType, the values INTERFACE_TYPE takes
      {"OTHER", iftype::OTHER}, {"ETHERNET_CSMACD", iftype::ETHERNET_CSMACD}, {"PPP", iftype::PPP},
      {"SOFTWARE_LOOPBACK", iftype::SOFTWARE_LOOPBACK}, {"IEEE80211", iftype::IEEE80211}, {"TUNNEL", iftype::TUNNEL}};
  std::span<const Named> table;
  switch (f) {
    case F::FLAGS: table = kFlags; break;
    case F::DIRECTION: table = kDirection; break;
    case F::IP_PROTOCOL:
    case F::EMBEDDED_PROTOCOL: table = kProtocol; break;
    case F::ETHER_TYPE: table = kEther; break;
    case F::L2_FLAGS: table = kL2Flags; break;
    case F::INTERFACE_TYPE: table = kIfType; break;
    default: return std::nullopt;
  }
  std::string upper(name);
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (const auto& n : table)
    if (n.name == upper) return n.value;
  return std::nullopt;
}

}  // namespace lfp
