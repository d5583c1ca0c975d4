// SPDX-License-Identifier: MIT
// An example callout plugin (API version 2), and the one the tests load. Each callout acts on its
// filter's provider context, words separated by spaces:
//
// 4c460000-0000-4000-8000-0000000000ca at ALE_AUTH_CONNECT_V4:
//   "block" / "permit" / "continue": that action;   "block-odd-ports": BLOCK when IP_REMOTE_PORT is odd;
//   "crash": the plugin crashes (lfpd must not);      "hang": the plugin never answers;
//   "pend:MS:permit" / "pend:MS:block": pends the connect and completes it MS ms later, from a thread.
// 4c460000-0000-4000-8000-0000000000cb at STREAM_V4:
//   "need:N": asks for N bytes (NEED_MORE_DATA) before it decides;
//   "block:WORD": BLOCK (the flow is reset) when the bytes hold WORD, else ALLOW_CONNECTION;
//   "inspect": CONTINUE instead of ALLOW_CONNECTION, so it sees every byte of the flow;
//   "count:FILE": counts the flow's bytes in its flow context and, when the flow ends
//   (flow_delete), appends "FLOW BYTES" to FILE.
// 4c460000-0000-4000-8000-0000000000cc at DATAGRAM_DATA_V4:
//   "block:WORD": BLOCK a datagram whose payload holds WORD, else PERMIT;
//   "rewrite:FROM=TO": the datagram goes on with every FROM in its payload made TO;
//   "answer:WORD=REPLY": a datagram holding WORD is blocked, and a datagram with REPLY comes back
//   to its sender as if from its destination (injected on the receive path).
// 4c460000-0000-4000-8000-0000000000cd at INBOUND_TRANSPORT_V4 (a packet layer: lfpd --packet-queue):
//   "block:WORD": BLOCK a packet holding WORD;   "block-odd:FIELD": BLOCK when FIELD's value is odd;
//   else PERMIT.
// 4c460000-0000-4000-8000-0000000000ce at ALE_ENDPOINT_CLOSURE_V4 and ...cf at ALE_RESOURCE_RELEASE_V4
// (notification layers: a socket is released):
//   "log:FILE": appends "LAYER LOCAL_PORT REMOTE_PORT" to FILE ("-" for a field the layer lacks).
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "lfp/callout/plugin.hpp"

namespace {

const char* field(const lfp_callout_classify_in* in, const char* name) {
  for (size_t i = 0; i < in->nfields; ++i)
    if (std::strcmp(in->fields[i].name, name) == 0) return in->fields[i].value;
  return nullptr;
}

// The value of "KEY:value" in the configuration, or empty.
std::string option(std::string_view config, std::string_view key) {
  size_t at = 0;
  while (at < config.size()) {
    size_t end = config.find(' ', at);
    if (end == std::string_view::npos) end = config.size();
    const std::string_view word = config.substr(at, end - at);
    if (word.size() > key.size() && word.substr(0, key.size()) == key && word[key.size()] == ':')
      return std::string(word.substr(key.size() + 1));
    at = end + 1;
  }
  return {};
}
bool has_word(std::string_view config, std::string_view w) {
  return (" " + std::string(config) + " ").find(" " + std::string(w) + " ") != std::string::npos;
}
bool holds(const lfp_callout_classify_in* in, const std::string& word) {
  return !word.empty() && in->data &&
         std::string_view(reinterpret_cast<const char*>(in->data), in->data_len).find(word) != std::string_view::npos;
}

void connect_classify(const lfp_callout_classify_in2* in2, lfp_callout_classify_out2* out2) {
  const lfp_callout_classify_in* in = &in2->v1;
  lfp_callout_classify_out* out = &out2->v1;
  const char* how = in->provider_context;
  out->clear_action_write = 0;
  const std::string pend = option(how, "pend");
  if (!pend.empty() && in2->pend_handle) {
    const int ms = std::atoi(pend.c_str());
    const int action = pend.find(":permit") != std::string::npos ? LFP_CALLOUT_PERMIT : LFP_CALLOUT_BLOCK;
    const uint64_t h = in2->pend_handle;
    std::thread([=] {
      ::usleep(static_cast<useconds_t>(ms) * 1000);
      lfp_callout_complete(h, action);
    }).detach();
    out2->pend = 1;
    out->action = LFP_CALLOUT_BLOCK;  // (meanwhile, as WFP has it)
    return;
  }
  if (!std::strcmp(how, "block")) out->action = LFP_CALLOUT_BLOCK;
  else if (!std::strcmp(how, "permit")) out->action = LFP_CALLOUT_PERMIT;
  else if (!std::strcmp(how, "block-odd-ports")) {
    const char* port = field(in, "IP_REMOTE_PORT");
    out->action = port && std::atoi(port) % 2 ? LFP_CALLOUT_BLOCK : LFP_CALLOUT_PERMIT;
  } else if (!std::strcmp(how, "crash")) {
    std::raise(SIGSEGV);
  } else if (!std::strcmp(how, "hang")) {
    for (;;) ::pause();
  } else {
    out->action = LFP_CALLOUT_CONTINUE;
  }
}

std::mutex count_mu;
std::string count_file;  // from "count:FILE" (flow_delete has no provider context)

void stream_classify(const lfp_callout_classify_in2* in2, lfp_callout_classify_out2* out) {
  const lfp_callout_classify_in* in = &in2->v1;
  const std::string_view config = in->provider_context;
  if (const std::string file = option(config, "count"); !file.empty()) {
    std::lock_guard lock(count_mu);
    count_file = file;
    out->set_flow_context = 1;
    out->flow_context = in2->flow_context + in->data_len;
  }
  const size_t need = std::strtoul(option(config, "need").c_str(), nullptr, 10);
  const bool limit = in2->stream_flags & LFP_STREAM_FLAG_BUFFER_LIMIT_REACHED;
  if (in->data_len < need && !limit) {
    out->stream_action = LFP_STREAM_ACTION_NEED_MORE_DATA;
    out->count_bytes_required = static_cast<uint32_t>(need - in->data_len);
    return;
  }
  if (holds(in, option(config, "block"))) {
    out->v1.action = LFP_CALLOUT_BLOCK;
    return;
  }
  if (has_word(config, "inspect")) out->v1.action = LFP_CALLOUT_CONTINUE;
  else out->stream_action = LFP_STREAM_ACTION_ALLOW_CONNECTION;
}

void stream_flow_delete(uint64_t flow, uint64_t bytes) {
  std::lock_guard lock(count_mu);
  if (count_file.empty()) return;
  if (FILE* f = std::fopen(count_file.c_str(), "a")) {
    std::fprintf(f, "%llu %llu\n", static_cast<unsigned long long>(flow), static_cast<unsigned long long>(bytes));
    std::fclose(f);
  }
}

thread_local std::string out_bytes, out_packet;  // valid until the next classify

// An IPv4 UDP datagram (lengths and checksums are lfpd's to fix).
std::string udp4(const char* src, const char* sport, const char* dst, const char* dport, const std::string& payload) {
  std::string p(28, '\0');
  p[0] = 0x45;
  p[8] = 64;
  p[9] = 17;
  unsigned a[4];
  auto addr = [&](const char* text, size_t at) {
    if (text && std::sscanf(text, "%u.%u.%u.%u", &a[0], &a[1], &a[2], &a[3]) == 4)
      for (int i = 0; i < 4; ++i) p[at + i] = static_cast<char>(a[i]);
  };
  addr(src, 12);
  addr(dst, 16);
  const int sp = sport ? std::atoi(sport) : 0, dp = dport ? std::atoi(dport) : 0;
  p[20] = static_cast<char>(sp >> 8), p[21] = static_cast<char>(sp);
  p[22] = static_cast<char>(dp >> 8), p[23] = static_cast<char>(dp);
  return p + payload;
}

void datagram_classify(const lfp_callout_classify_in2* in2, lfp_callout_classify_out2* out) {
  const lfp_callout_classify_in* in = &in2->v1;
  const std::string_view config = in->provider_context;
  const std::string payload(reinterpret_cast<const char*>(in->data), in->data ? in->data_len : 0);
  out->v1.action = holds(in, option(config, "block")) ? LFP_CALLOUT_BLOCK : LFP_CALLOUT_PERMIT;
  if (const std::string r = option(config, "rewrite"); r.find('=') != std::string::npos) {
    const std::string from = r.substr(0, r.find('=')), to = r.substr(r.find('=') + 1);
    out_bytes = payload;
    for (size_t at = 0; !from.empty() && (at = out_bytes.find(from, at)) != std::string::npos; at += to.size())
      out_bytes.replace(at, from.size(), to);
    if (out_bytes != payload) {
      out->new_data = reinterpret_cast<const uint8_t*>(out_bytes.data());
      out->new_data_len = out_bytes.size();
    }
  }
  if (const std::string a = option(config, "answer"); a.find('=') != std::string::npos && holds(in, a.substr(0, a.find('=')))) {
    out->v1.action = LFP_CALLOUT_BLOCK;
    out_packet = udp4(field(in, "IP_REMOTE_ADDRESS"), field(in, "IP_REMOTE_PORT"), field(in, "IP_LOCAL_ADDRESS"),
                      field(in, "IP_LOCAL_PORT"), a.substr(a.find('=') + 1));
    out->inject = reinterpret_cast<const uint8_t*>(out_packet.data());
    out->inject_len = out_packet.size();
  }
}

void packet_classify(const lfp_callout_classify_in2* in2, lfp_callout_classify_out2* out) {
  const lfp_callout_classify_in* in = &in2->v1;
  const std::string_view config = in->provider_context;
  const std::string odd = option(config, "block-odd");
  const char* v = odd.empty() ? nullptr : field(in, odd.c_str());
  out->v1.action = holds(in, option(config, "block")) || (v && std::atoi(v) % 2) ? LFP_CALLOUT_BLOCK : LFP_CALLOUT_PERMIT;
}

void release_classify(const lfp_callout_classify_in2* in2, lfp_callout_classify_out2* out) {
  const lfp_callout_classify_in* in = &in2->v1;
  const std::string file = option(in->provider_context, "log");
  if (FILE* f = file.empty() ? nullptr : std::fopen(file.c_str(), "a")) {
    const char *local = field(in, "IP_LOCAL_PORT"), *remote = field(in, "IP_REMOTE_PORT");
    std::fprintf(f, "%s %s %s\n", in->layer, local ? local : "-", remote ? remote : "-");
    std::fclose(f);
  }
  out->v1.action = LFP_CALLOUT_PERMIT;  // (nothing is refused at these layers)
}

const lfp_callout2 kCallouts[] = {
    {"4c460000-0000-4000-8000-0000000000ca", "ALE_AUTH_CONNECT_V4", connect_classify, nullptr, nullptr},
    {"4c460000-0000-4000-8000-0000000000cb", "STREAM_V4", stream_classify, nullptr, stream_flow_delete},
    {"4c460000-0000-4000-8000-0000000000cc", "DATAGRAM_DATA_V4", datagram_classify, nullptr, nullptr},
    {"4c460000-0000-4000-8000-0000000000cd", "INBOUND_TRANSPORT_V4", packet_classify, nullptr, nullptr},
    {"4c460000-0000-4000-8000-0000000000ce", "ALE_ENDPOINT_CLOSURE_V4", release_classify, nullptr, nullptr},
    {"4c460000-0000-4000-8000-0000000000cf", "ALE_RESOURCE_RELEASE_V4", release_classify, nullptr, nullptr},
};
const lfp_callout_plugin2 kPlugin = {2, "lfp example callout", kCallouts, std::size(kCallouts)};

}  // namespace

extern "C" const lfp_callout_plugin2* lfp_callout_plugin_v2(void) { return &kPlugin; }
