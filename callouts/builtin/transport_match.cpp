// SPDX-License-Identifier: MIT
#include "transport_match.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace lfp::inspect {

std::optional<TransportHeader> transport_header(std::span<const uint8_t> p) {
  TransportHeader h;
  if (p.size() >= 20 && p[0] >> 4 == 4) {
    const size_t ihl = (p[0] & 0x0F) * 4u;
    if (ihl < 20 || p.size() < ihl) return std::nullopt;
    h.family = 4;
    std::copy_n(p.begin() + 12, 4, h.source.begin());
    std::copy_n(p.begin() + 16, 4, h.destination.begin());
    h.protocol = p[9];
    h.first_fragment = ((p[6] & 0x1F) << 8 | p[7]) == 0;
    h.offset = ihl;
    return h;
  }
  if (p.size() < 40 || p[0] >> 4 != 6) return std::nullopt;
  h.family = 6;
  std::copy_n(p.begin() + 8, 16, h.source.begin());
  std::copy_n(p.begin() + 24, 16, h.destination.begin());
  h.protocol = p[6];
  h.offset = 40;
  // Extension headers: hop-by-hop, routing, fragment, destination options, authentication.
  for (int n = 0; n < 8 && (h.protocol == 0 || h.protocol == 43 || h.protocol == 44 || h.protocol == 60 || h.protocol == 51); ++n) {
    if (p.size() < h.offset + 8) return std::nullopt;
    const size_t at = h.offset;
    const uint8_t next = p[at];
    if (h.protocol == 44 && ((p[at + 2] << 8 | p[at + 3]) & 0xFFF8) != 0) {  // a later fragment: no more headers here
      h.protocol = next;
      h.first_fragment = false;
      return h;
    }
    h.offset += h.protocol == 44 ? 8 : h.protocol == 51 ? (p[at + 1] + 2u) * 4 : (p[at + 1] + 1u) * 8;
    h.protocol = next;
  }
  if (h.offset > p.size()) return std::nullopt;  // the last extension header runs past the packet (fuzz_inspect)
  return h;
}

std::optional<std::pair<uint16_t, uint16_t>> ports_of(std::span<const uint8_t> p, const TransportHeader& h) {
  constexpr uint8_t kWithPorts[] = {6, 17, 33, 132, 136};  // TCP, UDP, DCCP, SCTP, UDP-Lite
  if (!h.first_fragment || std::find(std::begin(kWithPorts), std::end(kWithPorts), h.protocol) == std::end(kWithPorts) ||
      p.size() < h.offset + 4)
    return std::nullopt;
  return std::pair<uint16_t, uint16_t>(p[h.offset] << 8 | p[h.offset + 1], p[h.offset + 2] << 8 | p[h.offset + 3]);
}

std::optional<TransportMatchConfig> parse_transport_match_config(const std::string& text, std::string* error) {
  auto fail = [&](const std::string& why) -> std::optional<TransportMatchConfig> {
    *error = why;
    return std::nullopt;
  };
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return fail("not a JSON object");
  TransportMatchConfig c;
  bool has_action = false;
  for (const auto& [k, v] : j.items()) {
    if (k == "action") {
      if (v != "PERMIT" && v != "BLOCK") return fail("\"action\" is not PERMIT or BLOCK");
      c.permit = v == "PERMIT";
      has_action = true;
      continue;
    }
    auto* list = k == "protocols" ? &c.protocols : k == "source_ports" ? &c.source_ports : k == "destination_ports" ? &c.destination_ports : nullptr;
    if (!list) return fail("unknown member \"" + k + "\" (known: protocols, source_ports, destination_ports, action)");
    const uint32_t max = k == "protocols" ? 255 : 65535;
    const std::string bad = "\"" + k + "\" is not a list of [low, high] ranges from 0 to " + std::to_string(max);
    if (!v.is_array()) return fail(bad);
    list->emplace();
    for (const auto& r : v) {
      if (!r.is_array() || r.size() != 2 || !r[0].is_number_unsigned() || !r[1].is_number_unsigned()) return fail(bad);
      const uint64_t low = r[0], high = r[1];
      if (low > high || high > max) return fail(bad);
      (*list)->emplace_back(static_cast<uint32_t>(low), static_cast<uint32_t>(high));
    }
  }
  if (!has_action) return fail("\"action\" is missing");
  return c;
}

namespace {

bool in(const TransportMatchConfig::Ranges& ranges, uint32_t x) {
  return std::any_of(ranges.begin(), ranges.end(), [&](const auto& r) { return x >= r.first && x <= r.second; });
}

}  // namespace

bool transport_matches(const TransportMatchConfig& c, std::span<const uint8_t> packet) {
  const auto h = transport_header(packet);
  if (!h || (c.protocols && !in(*c.protocols, h->protocol))) return false;
  if (!c.source_ports && !c.destination_ports) return true;
  const auto ports = ports_of(packet, *h);
  return ports && (!c.source_ports || in(*c.source_ports, ports->first)) &&
         (!c.destination_ports || in(*c.destination_ports, ports->second));
}

}  // namespace lfp::inspect
