// SPDX-License-Identifier: MIT
#include "verbs.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>

#include "lfp/policy/json_doc.hpp"
#include "lfp/policy/policy.hpp"
#include "lfp/protocol/request.hpp"

namespace lfp::cli {

using nlohmann::json;

client::SessionOptions session_options(const Globals& g, const CLI::App& verb, bool dynamic) {
  client::SessionOptions opts;
  opts.name = "lfp " + verb.get_name();
  opts.dynamic = dynamic;
  opts.reply_timeout_ms = static_cast<uint32_t>(g.timeout_s * 1000);
  return opts;
}

void add_daemon_verb(Verbs& verbs, const Globals& g, const CLI::App* verb, std::function<int(client::Client&)> run) {
  verbs[verb] = [&g, verb, run = std::move(run)] {
    client::Client c(g.socket, session_options(g, *verb));
    return run(c);
  };
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open: " + std::strerror(errno));
  // A file read straight into a string of its size (a 140 MB policy: no stream buffer copied out);
  // what cannot seek (a pipe) through the stream.
  std::string text;
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  in.clear();
  if (size > 0 && in.seekg(0)) {
    text.resize(static_cast<size_t>(size));
    in.read(text.data(), size);
    text.resize(static_cast<size_t>(in.gcount()));
    in.clear();
  }
  text.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());  // (the rest, if any)
  if (in.bad()) throw std::runtime_error(path + ": cannot read: " + std::strerror(errno));
  return text;
}

json request_json(const std::string& text) {
  const auto doc = policy::JsonDoc::parse(text);  // (JsonParseError is an std::runtime_error)
  if (auto dup = protocol::duplicate_member(doc->root())) throw std::invalid_argument(*dup);
  return doc->root().to_json();
}

void load_policy(FilterEngine& engine, const std::string& path) {
  try {
    policy::apply_policy(engine, policy::parse_policy(read_file(path)));
  } catch (const policy::PolicyError& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
}

client::Client::Listing list_objects(client::Client& c, const std::string& kind, const json& tmpl, size_t offset,
                                     size_t limit) {
  return c.list("enum", "objects", {{"kind", kind}, {"template", tmpl}}, offset, limit);
}

void print_warnings(const json& reply) {
  if (reply.is_object() && reply.contains("warnings"))
    for (const auto& w : reply["warnings"]) std::cerr << "lfp: warning: " << (w.is_string() ? w.get<std::string>() : w.dump()) << '\n';
}

namespace {
volatile std::sig_atomic_t g_interrupted = 0;
void on_signal(int) { g_interrupted = 1; }
}  // namespace

volatile std::sig_atomic_t& stop_on_signal() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  return g_interrupted;
}

}  // namespace lfp::cli
