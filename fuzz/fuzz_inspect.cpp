// SPDX-License-Identifier: MIT
// libFuzzer target: the built-in inspection callouts' parsers (callouts/builtin/parsers.hpp) on
// arbitrary bytes: the TLS ClientHello, the HTTP request and the DNS message parsers, every input to
// each, the block-list patterns, and the transport-match callout's packet walk and configuration. Checks their invariants:
// - a stream parser's `need` is a lower bound: a prefix that is INCOMPLETE and needs `need` more
//   bytes is never COMPLETE with fewer than that (the data path would wait for bytes it need not);
// - INCOMPLETE always needs at least one byte; names are normalized (what normalize_name keeps);
// - a DNS name ends inside the message, and re-parsing it gives the same text.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "parsers.hpp"
#include "transport_match.hpp"

using namespace lfp::inspect;

namespace {
void check(bool ok) {
  if (!ok) __builtin_trap();
}

void check_names(const std::vector<std::string>& names) {
  for (const auto& n : names) check(normalize_name(n) == n);
}

// The prefix of `len` bytes against the whole input.
template <class Parser>
void check_prefix(Parser parse, Bytes all, size_t len) {
  const auto whole = parse(all);
  check(whole.status != Parse::INCOMPLETE || whole.need >= 1);
  check_names(whole.names);
  if (len >= all.size()) return;
  const auto part = parse(all.first(len));
  check(part.status != Parse::INCOMPLETE || part.need >= 1);
  check_names(part.names);
  if (part.status == Parse::INCOMPLETE && all.size() < len + part.need) check(whole.status != Parse::COMPLETE);
  if (part.status == Parse::NOT_THIS) check(whole.status == Parse::NOT_THIS);  // more bytes do not make it so
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t cut = size_t{data[0]} << 8 | data[1];  // where to cut the input for the prefix checks
  const Bytes all(data + 2, size - 2);
  const size_t len = all.empty() ? 0 : cut % all.size();

  check_prefix(parse_tls_client_hello, all, len);
  check_prefix(parse_http_request, all, len);

  if (const auto m = parse_dns(all)) {
    check(!m->questions.empty() && m->questions.size() <= kMaxDnsQuestions);
    for (const auto& q : m->questions) check(!q.name.empty() && q.name.size() <= 255 * 4);
    const auto first = parse_dns_name(all, 12);
    check(first && first->second <= all.size() && first->first == m->questions[0].name);
    (void)dns_type_name(m->questions[0].qtype);
  }
  if (const auto n = parse_dns_name(all, len)) check(n->second <= all.size() && n->second > len);

  // The input as block-list text: patterns parse or not, and match without reading out of bounds.
  const std::string_view text(reinterpret_cast<const char*>(all.data()), all.size());
  const std::string_view a = text.substr(0, len), b = text.substr(len);
  if (const auto p = parse_pattern(a)) {
    check(!p->suffix.empty());
    if (const auto n = normalize_name(b)) {
      const bool m = name_matches(*p, *n);
      check(m == any_matches({*p}, b));
      if (!p->wildcard) check(m == (*n == p->suffix));
      else check(!m || (n->size() > p->suffix.size() && n->ends_with("." + p->suffix)));
    }
  }

  // The input as a forwarded packet (the transport-match callout's header walk): the transport
  // header starts inside the packet, and ports are read only from inside it.
  if (const auto h = transport_header(all)) {
    check(h->family == 4 || h->family == 6);
    check(!h->first_fragment || h->offset <= all.size());
    if (ports_of(all, *h)) check(h->first_fragment && h->offset + 4 <= all.size());
  }
  // The text before the cut as the callout's configuration, the rest as a packet for it.
  std::string error;
  if (const auto c = parse_transport_match_config(std::string(a), &error)) (void)transport_matches(*c, all.subspan(len));
  else check(!error.empty());
  return 0;
}
