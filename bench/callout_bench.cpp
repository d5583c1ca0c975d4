// SPDX-License-Identifier: MIT
// The cost of a callout: one classify through a filter whose callout is a plugin that does nothing
// (in its host process: lfpd's isolation), against the same classify with a plain PERMIT filter, in
// the same run.   lfp-callout-bench [N]   (default 20000 classifies each)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "lfp/callout/host.hpp"
#include "lfp/policy/policy.hpp"

using Clock = std::chrono::steady_clock;

namespace {
double median_ns(const lfp::FilterEngine& e, const lfp::FieldValues& v, int n) {
  std::vector<double> t(n);
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    auto r = e.classify(lfp::LayerId::ALE_AUTH_CONNECT_V4, v);
    t[i] = std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
    if (!r.permit) std::abort();  // both policies permit
  }
  std::sort(t.begin(), t.end());
  return t[n / 2];
}
lfp::FilterEngine& engine_with(const std::string& policy, lfp::FilterEngine& e) {
  lfp::policy::apply_policy(e, lfp::policy::parse_policy(policy));
  return e;
}
}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::stoi(argv[1]) : 20000;
  const std::string key = "4c460000-0000-4000-8000-0000000000ca";
  lfp::FilterEngine plain, with_callout;
  engine_with(R"({"filters": [{"name": "permit", "layer": "ALE_AUTH_CONNECT_V4", "action": "PERMIT"}]})", plain);
  lfp::callouts::CalloutHost host(LFP_EXAMPLE_CALLOUT, LFP_CALLOUT_HOST, 1000);
  host.register_with(with_callout);
  engine_with(R"({"callouts": [{"key": ")" + key + R"(", "name": "example", "layer": "ALE_AUTH_CONNECT_V4"}],
                  "provider_contexts": [{"key": "ca110000-0000-4000-8000-0000000000c1", "name": "p", "data": "permit"}],
                  "filters": [{"name": "callout", "layer": "ALE_AUTH_CONNECT_V4", "flags": ["HAS_PROVIDER_CONTEXT"],
                               "provider_context": "ca110000-0000-4000-8000-0000000000c1",
                               "action": {"type": "CALLOUT_TERMINATING", "callout": ")" + key + R"("}}]})",
              with_callout);
  lfp::policy::Request req;
  req.layer = lfp::LayerId::ALE_AUTH_CONNECT_V4;
  req.set_text(lfp::FieldId::IP_REMOTE_ADDRESS, "192.0.2.7");
  req.set_text(lfp::FieldId::IP_REMOTE_PORT, "443");
  req.set_text(lfp::FieldId::IP_PROTOCOL, "TCP");
  req.set_text(lfp::FieldId::ALE_APP_ID, "/usr/bin/curl");
  const double base = median_ns(plain, req.values, n);
  const double callout = median_ns(with_callout, req.values, n);
  std::printf("classify, plain PERMIT filter: %.0f ns (median of %d)\n", base, n);
  std::printf("classify, callout to a plugin that permits (own process): %.0f ns (+%.1f us per classify, %.0fx)\n", callout,
              (callout - base) / 1000, callout / base);
  return 0;
}
