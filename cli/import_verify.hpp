// SPDX-License-Identifier: MIT
#pragma once
// lfp import FORMAT FILE --verify CAPTURE (docs/porting.md "Verifying an import"): the capture is
// replayed twice, packet by packet in capture order. Once through the original rules, which the
// kernel runs in two throwaway network namespaces made for the run (the rules in one, the other only
// to inject packets over a veth pair), and once through the imported policy with lfp replay's layer
// walk, with the built-in callouts the import names run as lfpd runs them, on the capture's clock.
// Every packet decided differently is reported. Nothing is ever installed in the caller's
// network namespace, and the namespaces are removed on every exit (errors and signals included).
#include <nlohmann/json.hpp>

#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace lfp::cli {

struct VerifyArgs {
  std::string pcap;
  std::vector<std::string> locals;  // the host's addresses (default: the first IP packet's source)
};

// The original semantics of this format can be run by this machine's kernel (iptables, nft).
bool verify_supported(const std::string& format);

// A --verify that cannot be done here: the format's rules cannot be run on Linux, or no namespaces
// can be made (not root). Exit code 2.
class VerifyUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// format: "iptables" (iptables-save or ip6tables-save text) or "nft" (nft -j list ruleset JSON);
// rules: the file as the importer read it; policy: what it imported. Returns the report:
//   {"capture", "locals", "packets", "compared", "alike", "original_accepted", "original_dropped",
//    "different", "not_compared", "compared_fraction" (compared / packets),
//    "needs_interface": {"docker0": 2} (packets not compared because a rule decides them by an
//    interface the capture does not show),
//    "differences": [{"index", "packet", "direction", "protocol", "source", "source_port",
//                     "destination", "destination_port", "original": "ACCEPT"|"DROP",
//                     "lfp": "PERMIT"|"BLOCK", "layer", "filter": {"key", "name"}|null, "note"?}],
//    "not_compared": [{"index", "packet", "reason"}]}   (not_compared: the count, and the list as "skipped")
// Throws VerifyUnavailable, std::invalid_argument (a bad --local) or std::runtime_error (an
// unreadable capture, rules the kernel refuses, a namespace that cannot be set up).
nlohmann::json verify_import(const std::string& format, const std::string& rules, const nlohmann::json& policy,
                             const VerifyArgs& args);

// The report as text: a summary line, then one line a difference and a packet not compared.
void print_verify_report(const nlohmann::json& report, std::ostream& out);

}  // namespace lfp::cli
