// SPDX-License-Identifier: MIT
// libFuzzer: lfp import's readers (iptables-save, nft -j, OpenSnitch rule files, netsh wfp XML) on arbitrary text. A malformed file is refused with
// a line-numbered ImportError, never a crash; what it accepts is a policy the policy reader takes.
#include <cstddef>
#include <cstdint>
#include <string>

#include "lfp/import/iptables.hpp"
#include "lfp/import/nft.hpp"
#include "lfp/import/opensnitch.hpp"
#include "lfp/import/wfp.hpp"
#include "lfp/policy/policy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto r = lfp::import::import_iptables(std::string(reinterpret_cast<const char*>(data), size));
    try {
      lfp::policy::policy_from_json(r.policy);
    } catch (const lfp::policy::PolicyError&) {
      // An address or value iptables-save would never write may still be refused by the policy reader.
    }
  } catch (const lfp::import::ImportError&) {
  }
  try {
    lfp::import::import_nft(std::string(reinterpret_cast<const char*>(data), size));
  } catch (const lfp::import::ImportError&) {
  }
  // The OpenSnitch and WFP importers check their own output: it must be a policy the reader takes.
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    lfp::policy::policy_from_json(lfp::import::import_opensnitch({{"fuzz.json", text}}, {.default_action = "deny"}).policy);
  } catch (const lfp::import::ImportError&) {
  }
  try {
    lfp::import::ImportOptions o;
    o.map_app = {{"\\device\\harddiskvolume3\\", "/mnt/c/"}};
    lfp::policy::policy_from_json(lfp::import::import_wfp(text, o).policy);
  } catch (const lfp::import::ImportError&) {
  }
  return 0;
}
