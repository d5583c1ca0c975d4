// SPDX-License-Identifier: MIT
#include "lfp/datapath/redirect.hpp"

#include <arpa/inet.h>

#include <cstring>
#include <memory>

#include "lfp/engine/callout.hpp"
#include "lfp/engine/error.hpp"

namespace lfp::datapath {

using nlohmann::json;

const Guid REDIRECT_CALLOUT_V4 = *Guid::parse("4c460000-0000-4000-8000-000000000004");
const Guid REDIRECT_CALLOUT_V6 = *Guid::parse("4c460000-0000-4000-8000-000000000006");

const Guid BIND_REDIRECT_CALLOUT_V4 = *Guid::parse("4c460000-0000-4000-8000-000000000014");
const Guid BIND_REDIRECT_CALLOUT_V6 = *Guid::parse("4c460000-0000-4000-8000-000000000016");

bool is_redirect_callout(const Guid& key) {
  return key == REDIRECT_CALLOUT_V4 || key == REDIRECT_CALLOUT_V6 || key == BIND_REDIRECT_CALLOUT_V4 ||
         key == BIND_REDIRECT_CALLOUT_V6;
}

std::optional<lfp_redirect> redirect_target(const FilterEngine& engine, const Filter& f, std::string* why) {
  auto no = [&](std::string w) -> std::optional<lfp_redirect> {
    if (why) *why = std::move(w);
    return std::nullopt;
  };
  const ProviderContext* pc = f.provider_context ? engine.provider_context(*f.provider_context) : nullptr;
  if (!pc) return no("a redirect filter needs HAS_PROVIDER_CONTEXT and a provider context with its target");
  const json j = json::parse(pc->data, nullptr, false);
  // A bind redirect may keep the port asked for (0); a connect redirect needs one.
  const bool bind = f.layer == LayerId::ALE_BIND_REDIRECT_V4 || f.layer == LayerId::ALE_BIND_REDIRECT_V6;
  const uint64_t min_port = bind ? 0 : 1;
  if (!j.is_object() || !j.contains("address") || !j["address"].is_string() ||
      (!bind && !j.contains("port")) || (j.contains("port") && (!j["port"].is_number_unsigned() ||
      j["port"].get<uint64_t>() < min_port || j["port"].get<uint64_t>() > 65535)))
    return no(bind ? "the provider context's data must be {\"address\": \"ADDR\", \"port\": 0..65535 (optional)}"
                   : "the provider context's data must be {\"address\": \"ADDR\", \"port\": 1..65535}");
  lfp_redirect t{};
  const bool v6 = f.layer == LayerId::ALE_CONNECT_REDIRECT_V6 || f.layer == LayerId::ALE_BIND_REDIRECT_V6;
  if (inet_pton(v6 ? AF_INET6 : AF_INET, j["address"].get<std::string>().c_str(), t.addr) != 1)
    return no("'" + j["address"].get<std::string>() + "' is not an IPv" + (v6 ? "6" : "4") + " address");
  t.port = static_cast<uint16_t>(j.value("port", uint64_t{0}));
  return t;
}

namespace {
class RedirectCallout : public CalloutDriver {
 public:
  explicit RedirectCallout(const FilterEngine& e) : engine_(e) {}
  void classify(const CalloutClassifyIn&, CalloutClassifyOut& out) override { out.verdict = CalloutVerdict::PERMIT; }
  bool notify(NotifyType type, const Filter& f) override {
    return type != NotifyType::ADD_FILTER || redirect_target(engine_, f, nullptr).has_value();
  }

 private:
  const FilterEngine& engine_;
};
}  // namespace

void register_redirect_callouts(FilterEngine& engine) {
  engine.register_callout(REDIRECT_CALLOUT_V4, std::make_shared<RedirectCallout>(engine));
  engine.register_callout(REDIRECT_CALLOUT_V6, std::make_shared<RedirectCallout>(engine));
  engine.register_callout(BIND_REDIRECT_CALLOUT_V4, std::make_shared<RedirectCallout>(engine));
  engine.register_callout(BIND_REDIRECT_CALLOUT_V6, std::make_shared<RedirectCallout>(engine));
}

std::optional<json> redirect_record(const KernelPath& kernel, const std::string& peer) {
  lfp_redirect_key k{};
  std::string addr, port;
  if (!peer.empty() && peer[0] == '[') {
    const size_t close = peer.find("]:");
    if (close == std::string::npos) throw std::invalid_argument("'" + peer + "': expected [V6ADDR]:PORT");
    addr = peer.substr(1, close - 1);
    port = peer.substr(close + 2);
    k.family = 6;
  } else {
    const size_t colon = peer.rfind(':');
    if (colon == std::string::npos) throw std::invalid_argument("'" + peer + "': expected ADDR:PORT");
    addr = peer.substr(0, colon);
    port = peer.substr(colon + 1);
    k.family = 4;
  }
  if (inet_pton(k.family == 6 ? AF_INET6 : AF_INET, addr.c_str(), k.addr) != 1)
    throw std::invalid_argument("'" + addr + "' is not an address");
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(port) > 65535)
    throw std::invalid_argument("'" + port + "' is not a port");
  k.port = static_cast<uint16_t>(std::stoul(port));
  auto r = kernel.redirect_record(k);
  if (!r) return std::nullopt;
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(k.family == 6 ? AF_INET6 : AF_INET, r->orig_addr, buf, sizeof buf);
  const std::string a = buf;
  return json{{"original", (k.family == 6 ? "[" + a + "]" : a) + ":" + std::to_string(r->orig_port)},
              {"original_address", a},
              {"original_port", r->orig_port},
              {"pid", r->pid},
              {"uid", r->uid},
              {"gid", r->gid},
              {"filter_id", r->filter_id}};
}

}  // namespace lfp::datapath
