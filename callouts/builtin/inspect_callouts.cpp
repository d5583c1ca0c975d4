// SPDX-License-Identifier: MIT
// lfp_inspect_callouts: LFP's built-in inspection callouts, one version-2 plugin
// (lfpd --callout liblfp_inspect_callouts.so). docs/callouts.md, "Built-in inspection callouts".
//
//   4c460000-0000-4000-8000-000000000101 / ...102  TLS SNI block       STREAM_V4 / STREAM_V6
//   4c460000-0000-4000-8000-000000000103 / ...104  HTTP Host block     STREAM_V4 / STREAM_V6
//   4c460000-0000-4000-8000-000000000105 / ...106  DNS query log/block DATAGRAM_DATA_V4 / _V6
//   4c460000-0000-4000-8000-000000000107 / ...108  per-flow byte count STREAM_V4 / STREAM_V6
//   4c460000-0000-4000-8000-000000000109 / ...10a  rate limit          INBOUND_TRANSPORT_V4 / _V6
//   4c460000-0000-4000-8000-00000000010b / ...10c  transport match     IPFORWARD_V4 / _V6
//   4c460000-0000-4000-8000-00000000010d / ...10e  log                 INBOUND_TRANSPORT_V4 / _V6
//   4c460000-0000-4000-8000-00000000010f / ...110  log                 OUTBOUND_TRANSPORT_V4 / _V6
//   4c460000-0000-4000-8000-000000000111 / ...112  log                 IPFORWARD_V4 / _V6
//
// Configuration: the filter's provider context data, JSON {"block": [NAME, "*.SUFFIX", ...],
// "log": "/path/file.jsonl"} (both optional; empty data: no block list, no log). A configuration
// that does not parse makes the callout answer BLOCK (fail closed); the reason goes to stderr once.
// The rate limit's, the transport match's and the log's configurations are their own (ratelimit.hpp,
// transport_match.hpp, log.hpp). The protocol parsing is parsers.hpp's, the rate limit's table
// ratelimit.hpp's, the transport match transport_match.hpp's, the log's rate log.hpp's; this file
// is the callouts' policy around them.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "lfp/callout/plugin.hpp"
#include "log.hpp"
#include "parsers.hpp"
#include "ratelimit.hpp"
#include "transport_match.hpp"

namespace {

using nlohmann::json;
namespace in = lfp::inspect;

// ---- Configuration --------------------------------------------------------------------------------

struct Config {
  std::vector<in::NamePattern> block;
  std::string log;  // JSON-lines file, empty for none
};

std::optional<Config> parse_config(const std::string& text, std::string* error) {
  auto fail = [&](std::string why) -> std::optional<Config> {
    *error = std::move(why);
    return std::nullopt;
  };
  Config c;
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) return c;  // no configuration
  const json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return fail("not JSON");
  if (!j.is_object()) return fail("not a JSON object");
  for (const auto& [k, v] : j.items()) {
    if (k == "block") {
      if (!v.is_array()) return fail("\"block\" is not an array");
      for (const auto& e : v) {
        if (!e.is_string()) return fail("\"block\" holds a non-string");
        auto p = in::parse_pattern(e.get<std::string>());
        if (!p) return fail("\"block\": not a name or *.name: " + e.get<std::string>());
        c.block.push_back(std::move(*p));
      }
    } else if (k == "log") {
      if (!v.is_string()) return fail("\"log\" is not a string");
      c.log = v.get<std::string>();
    } else {
      return fail("unknown member \"" + k + "\" (known: block, log)");
    }
  }
  return c;
}

std::mutex mu;  // the configuration caches, the flow records, the rate limiter, the warnings

// A callout's configurations, each parsed once per distinct provider context (at most 1024 kept).
// A bad one is said once on stderr and comes back null: its filters' callouts answer BLOCK (the log
// callout's: CONTINUE, without an event). The lookup takes the packet's provider context as it is,
// without a copy.
template <class T>
class ConfigCache {
 public:
  using Parse = std::optional<T> (*)(const std::string&, std::string*);
  ConfigCache(const char* what, Parse parse, const char* consequence = "its filters' callouts answer BLOCK")
      : what_(what), consequence_(consequence), parse_(parse) {}

  std::shared_ptr<const T> get(const char* provider_context) {
    const std::string_view text = provider_context ? provider_context : "";
    std::lock_guard lock(mu);
    if (auto it = by_text_.find(text); it != by_text_.end()) return it->second;
    std::string error;
    auto parsed = parse_(std::string(text), &error);
    std::shared_ptr<const T> c = parsed ? std::make_shared<const T>(std::move(*parsed)) : nullptr;
    if (!c)
      std::fprintf(stderr, "lfp_inspect_callouts: bad %s configuration (%s): %s; %s\n", what_, error.c_str(),
                   std::string(text.substr(0, 200)).c_str(), consequence_);
    if (by_text_.size() >= 1024) by_text_.clear();
    by_text_.emplace(text, c);
    return c;
  }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  const char* what_;
  const char* consequence_;
  Parse parse_;
  std::unordered_map<std::string, std::shared_ptr<const T>, Hash, std::equal_to<>> by_text_;  // (under mu)
};

ConfigCache<Config> inspect_configs("inspection", parse_config);

// ---- Helpers --------------------------------------------------------------------------------------

const char* field(const lfp_callout_classify_in* in, const char* name) {
  for (size_t i = 0; i < in->nfields; ++i)
    if (in->fields[i].name && in->fields[i].value && std::strcmp(in->fields[i].name, name) == 0) return in->fields[i].value;
  return nullptr;
}

// "192.0.2.7:443", "[2001:db8::1]:443", without the port if the layer gives none, "" without an address.
std::string endpoint(const lfp_callout_classify_in* in, const char* addr_field, const char* port_field) {
  const char* a = field(in, addr_field);
  const char* p = field(in, port_field);
  if (!a || !*a) return "";
  std::string s = a;
  if (s.find(':') != std::string::npos) s = "[" + s + "]";
  if (p && *p) s += std::string(":") + p;
  return s;
}

std::string now_utc() {
  const auto t = std::chrono::system_clock::now();
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms));
  return out;
}

std::set<std::string> warned_logs;  // (under mu)

// Appends one JSON line with one write() to an O_APPEND file: lines of several writers do not mix,
// and a rotated file is picked up at the next line.
void append_line(const std::string& path, const json& j) {
  if (path.empty()) return;
  const std::string line = j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  bool ok = fd >= 0 && ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  if (fd >= 0) ok = ::close(fd) == 0 && ok;
  if (!ok) {
    std::lock_guard lock(mu);
    if (warned_logs.insert(path).second)
      std::fprintf(stderr, "lfp_inspect_callouts: cannot append to the log %s: %s\n", path.c_str(), std::strerror(errno));
  }
}

const char* action_text(int a) { return a == LFP_CALLOUT_BLOCK ? "BLOCK" : a == LFP_CALLOUT_PERMIT ? "PERMIT" : "CONTINUE"; }

void block(lfp_callout_classify_out2* out) {
  out->v1.action = LFP_CALLOUT_BLOCK;
  out->v1.clear_action_write = 1;  // a hard BLOCK, as WFP's callouts do (rights &= ~ACTION_WRITE)
  out->stream_action = LFP_STREAM_ACTION_NONE;
}

void allow_connection(lfp_callout_classify_out2* out) {
  out->v1.action = LFP_CALLOUT_PERMIT;  // (moot: the stream action decides)
  out->stream_action = LFP_STREAM_ACTION_ALLOW_CONNECTION;
}

void need_more(lfp_callout_classify_out2* out, size_t need) {
  out->v1.action = LFP_CALLOUT_CONTINUE;
  out->stream_action = LFP_STREAM_ACTION_NEED_MORE_DATA;
  out->count_bytes_required = static_cast<uint32_t>(std::clamp<size_t>(need, 1, std::numeric_limits<uint32_t>::max()));
}

in::Bytes data_of(const lfp_callout_classify_in2* i) {
  return i->v1.data && i->v1.data_len ? in::Bytes(i->v1.data, i->v1.data_len) : in::Bytes{};
}

// No more bytes of this direction will come: the data path's buffer is full, or the peer closed.
bool final_call(const lfp_callout_classify_in2* i) {
  return i->stream_flags & (LFP_STREAM_FLAG_BUFFER_LIMIT_REACHED | LFP_STREAM_FLAG_SEND_DISCONNECT |
                            LFP_STREAM_FLAG_RECEIVE_DISCONNECT);
}

bool blocked(const Config& c, const std::vector<std::string>& names) {
  return std::any_of(names.begin(), names.end(), [&](const std::string& n) { return in::any_matches(c.block, n); });
}

// The stream callouts' common decision, given what the parser made of the direction's first bytes.
void decide_stream(const char* what, const lfp_callout_classify_in2* i, lfp_callout_classify_out2* out,
                   const Config& c, in::Parse status, size_t need, const std::vector<std::string>& names) {
  if (status == in::Parse::INCOMPLETE && !final_call(i)) return need_more(out, need);
  const bool is_block = blocked(c, names);
  if (is_block) block(out);
  else allow_connection(out);
  if (status != in::Parse::NOT_THIS || !names.empty())
    append_line(c.log, {{"time", now_utc()},
                        {"callout", what},
                        {"name", names.empty() ? json(nullptr) : json(names.front())},
                        {"remote", endpoint(&i->v1, "IP_REMOTE_ADDRESS", "IP_REMOTE_PORT")},
                        {"action", is_block ? "BLOCK" : "PERMIT"}});
}

// ---- The callouts ---------------------------------------------------------------------------------

void tls_classify(const lfp_callout_classify_in2* i, lfp_callout_classify_out2* out) {
  const auto c = inspect_configs.get(i->v1.provider_context);
  if (!c) return block(out);
  if (i->stream_offset != 0) return allow_connection(out);  // the ClientHello went by unseen
  const in::TlsHello h = in::parse_tls_client_hello(data_of(i));
  decide_stream("tls_sni", i, out, *c, h.status, h.need, h.names);
}

void http_classify(const lfp_callout_classify_in2* i, lfp_callout_classify_out2* out) {
  const auto c = inspect_configs.get(i->v1.provider_context);
  if (!c) return block(out);
  if (i->stream_offset != 0) return allow_connection(out);  // the request line went by unseen
  const in::HttpRequest r = in::parse_http_request(data_of(i));
  decide_stream("http_host", i, out, *c, r.status, r.need, r.names);
}

void dns_classify(const lfp_callout_classify_in2* i, lfp_callout_classify_out2* out) {
  const auto c = inspect_configs.get(i->v1.provider_context);
  if (!c) return block(out);
  const auto m = in::parse_dns(data_of(i));
  if (!m) {
    out->v1.action = LFP_CALLOUT_CONTINUE;  // not DNS: not ours to decide
    return;
  }
  if (m->response) {
    out->v1.action = LFP_CALLOUT_PERMIT;
    return;
  }
  std::vector<std::string> names;
  for (const auto& q : m->questions) names.push_back(q.name);
  if (blocked(*c, names)) block(out);
  else out->v1.action = LFP_CALLOUT_PERMIT;
  const in::DnsQuestion& q = m->questions.front();
  append_line(c->log, {{"time", now_utc()},
                       {"name", q.name},
                       {"type", in::dns_type_name(q.qtype)},
                       {"remote", endpoint(&i->v1, "IP_REMOTE_ADDRESS", "IP_REMOTE_PORT")},
                       {"action", action_text(out->v1.action)}});
}

// Per-flow byte counts, in flow contexts: a context is an id into `flows`.
struct FlowRecord {
  uint64_t flow = 0;
  std::string local, remote, log;
  uint64_t sent = 0, received = 0;  // bytes of each direction seen (the furthest offset reached)
};
std::unordered_map<uint64_t, FlowRecord> flows;  // (under mu)
uint64_t next_context = 1;
constexpr size_t kMaxFlows = 1 << 20;

void count_classify(const lfp_callout_classify_in2* i, lfp_callout_classify_out2* out) {
  const auto c = inspect_configs.get(i->v1.provider_context);
  if (!c) return block(out);
  out->v1.action = LFP_CALLOUT_CONTINUE;  // and stream action NONE: it keeps being called
  out->stream_action = LFP_STREAM_ACTION_NONE;
  std::lock_guard lock(mu);
  auto it = i->flow_context ? flows.find(i->flow_context) : flows.end();
  if (it == flows.end()) {  // first sight of the flow
    if (flows.size() >= kMaxFlows) return;  // not counted rather than unbounded
    FlowRecord r{i->v1.flow_handle, endpoint(&i->v1, "IP_LOCAL_ADDRESS", "IP_LOCAL_PORT"),
                 endpoint(&i->v1, "IP_REMOTE_ADDRESS", "IP_REMOTE_PORT"), c->log, 0, 0};
    const uint64_t id = next_context++;
    it = flows.emplace(id, std::move(r)).first;
    out->set_flow_context = 1;
    out->flow_context = id;
  }
  const uint64_t end = i->stream_offset + i->v1.data_len;
  if (i->stream_flags & LFP_STREAM_FLAG_SEND) it->second.sent = std::max(it->second.sent, end);
  if (i->stream_flags & LFP_STREAM_FLAG_RECEIVE) it->second.received = std::max(it->second.received, end);
}

void count_flow_delete(uint64_t flow, uint64_t context) {
  FlowRecord r;
  {
    std::lock_guard lock(mu);
    auto it = flows.find(context);
    if (it == flows.end()) return;
    r = std::move(it->second);
    flows.erase(it);
  }
  append_line(r.log, {{"flow", flow}, {"local", r.local}, {"remote", r.remote}, {"sent", r.sent}, {"received", r.received}});
}

// New TCP connections per source (ufw's `limit`) or a packet rate (`-m limit`, `-m hashlimit`, nft's
// `limit`), counted on SYNs without ACK: BLOCK where the limit says so, every other packet permitted
// (docs/callouts.md, "Rate limit").
in::RateLimiter limiter;  // (under mu)
ConfigCache<in::RateLimitConfig> limit_configs("rate limit", in::parse_rate_limit_config);

void ratelimit_classify(const lfp_callout_classify_in2* i, lfp_callout_classify_out2* out) {
  const auto config = limit_configs.get(i->v1.provider_context);
  if (!config) return block(out);
  out->v1.action = LFP_CALLOUT_PERMIT;
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
  std::lock_guard lock(mu);
  const uint64_t dropped_before = limiter.stats(config->name).dropped;
  if (limiter.blocks(*config, data_of(i), now_ms)) block(out);
  // The table's cap: say when it first drops a key, then at every power of two.
  const uint64_t dropped = limiter.stats(config->name).dropped;
  if (dropped != dropped_before && (dropped & (dropped - 1)) == 0)
    std::fprintf(stderr, "lfp_inspect_callouts: rate limit table %s is full (%zu keys): %llu keys dropped so far\n",
                 config->name.c_str(), config->max_sources, static_cast<unsigned long long>(dropped));
}

// The protocol and ports of a forwarded packet, which IPFORWARD has no fields for (an imported
// FORWARD rule's `-p tcp --dport 80`): the configured action when the packet matches, otherwise
// CONTINUE, so that arbitration goes on as if the filter had not matched (docs/callouts.md,
// "Transport match").
ConfigCache<in::TransportMatchConfig> match_configs("transport match", in::parse_transport_match_config);

void transport_match_classify(const lfp_callout_classify_in2* i, lfp_callout_classify_out2* out) {
  const auto config = match_configs.get(i->v1.provider_context);
  if (!config) return block(out);
  out->v1.action = LFP_CALLOUT_CONTINUE;
  if (!in::transport_matches(*config, data_of(i))) return;
  if (config->permit) out->v1.action = LFP_CALLOUT_PERMIT;
  else block(out);
}

// An imported LOG rule: CONTINUE always (it decides nothing), and a net event for the packets that
// reach it, within its rate (docs/callouts.md, "Log").
in::PacketLog packet_log;  // (under mu)
ConfigCache<in::LogConfig> log_configs("log", in::parse_log_config, "its filters log nothing");

void log_classify(const lfp_callout_classify_in2* i, lfp_callout_classify_out2* out) {
  const auto config = log_configs.get(i->v1.provider_context);
  out->v1.action = LFP_CALLOUT_CONTINUE;  // (a bad configuration too: a log decides nothing either way)
  if (!config) return;
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
  std::lock_guard lock(mu);
  const in::PacketLog::Entry e = packet_log.log(i->v1.filter_key ? i->v1.filter_key : "", *config, data_of(i), now_ms);
  if (!e.write) return;
  static thread_local std::string text;  // (valid until the next classify, as plugin.hpp asks)
  text = config->prefix;
  out->log_text = text.c_str();
  out->log_suppressed = e.suppressed;
}

const lfp_callout2 kCallouts[] = {
    {"4c460000-0000-4000-8000-000000000101", "STREAM_V4", tls_classify, nullptr, nullptr},
    {"4c460000-0000-4000-8000-000000000102", "STREAM_V6", tls_classify, nullptr, nullptr},
    {"4c460000-0000-4000-8000-000000000103", "STREAM_V4", http_classify, nullptr, nullptr},
    {"4c460000-0000-4000-8000-000000000104", "STREAM_V6", http_classify, nullptr, nullptr},
    {"4c460000-0000-4000-8000-000000000105", "DATAGRAM_DATA_V4", dns_classify, nullptr, nullptr},
    {"4c460000-0000-4000-8000-000000000106", "DATAGRAM_DATA_V6", dns_classify, nullptr, nullptr},
    {"4c460000-0000-4000-8000-000000000107", "STREAM_V4", count_classify, nullptr, count_flow_delete},
    {"4c460000-0000-4000-8000-000000000108", "STREAM_V6", count_classify, nullptr, count_flow_delete},
    {in::kRateLimitCalloutV4, "INBOUND_TRANSPORT_V4", ratelimit_classify, nullptr, nullptr},
    {in::kRateLimitCalloutV6, "INBOUND_TRANSPORT_V6", ratelimit_classify, nullptr, nullptr},
    {in::kTransportMatchCalloutV4, "IPFORWARD_V4", transport_match_classify, nullptr, nullptr},
    {in::kTransportMatchCalloutV6, "IPFORWARD_V6", transport_match_classify, nullptr, nullptr},
    {in::kLogCalloutInboundV4, "INBOUND_TRANSPORT_V4", log_classify, nullptr, nullptr},
    {in::kLogCalloutInboundV6, "INBOUND_TRANSPORT_V6", log_classify, nullptr, nullptr},
    {in::kLogCalloutOutboundV4, "OUTBOUND_TRANSPORT_V4", log_classify, nullptr, nullptr},
    {in::kLogCalloutOutboundV6, "OUTBOUND_TRANSPORT_V6", log_classify, nullptr, nullptr},
    {in::kLogCalloutForwardV4, "IPFORWARD_V4", log_classify, nullptr, nullptr},
    {in::kLogCalloutForwardV6, "IPFORWARD_V6", log_classify, nullptr, nullptr},
};
const lfp_callout_plugin2 kPlugin = {2, "lfp inspection callouts", kCallouts, std::size(kCallouts)};

}  // namespace

extern "C" const lfp_callout_plugin2* lfp_callout_plugin_v2(void) { return &kPlugin; }
