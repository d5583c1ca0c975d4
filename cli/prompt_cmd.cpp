// SPDX-License-Identifier: MIT
#include "prompt_cmd.hpp"

#include <poll.h>
#include <unistd.h>

#include <iostream>
#include <memory>
#include <set>
#include <sstream>

#include "lfp/client/prompts.hpp"

namespace lfp::cli {

using nlohmann::json;

namespace {

struct PromptArgs {
  CLI::App* list = nullptr;
  CLI::App* answer = nullptr;
  uint64_t id = 0;
  std::string action, scope = "once";
  size_t offset = 0, limit = 0;  // list: a page (0: all)
};

std::string describe(const json& p) {
  std::ostringstream s;
  const int proto = p.value("ip_protocol", 0);
  s << '[' << p["id"] << "] " << p.value("app_id", "(unknown app)") << " (uid " << p.value("uid", 0) << ", pid "
    << p.value("pid", 0) << ") -> " << p.value("remote_address", "") << ':' << p.value("remote_port", 0) << '/'
    << (proto == 6 ? "tcp" : proto == 17 ? "udp" : std::to_string(proto)) << "  waiting " << p.value("waiting_ms", 0)
    << " of " << p.value("timeout_ms", 0) << " ms";
  return s.str();
}

// Answers one pending connection; returns what was done, as JSON.
json answer(client::Client& c, uint64_t id, const std::string& action, const std::string& scope) {
  if (action != "allow" && action != "deny") throw std::invalid_argument("answer: allow or deny, not '" + action + "'");
  if (scope != "once" && scope != "session" && scope != "forever")
    throw std::invalid_argument("answer: --scope once, session or forever, not '" + scope + "'");
  const auto sc = scope == "once" ? client::PromptScope::ONCE
                  : scope == "session" ? client::PromptScope::SESSION : client::PromptScope::FOREVER;
  return client::answer_prompt(c, id, action == "allow", sc, "lfp prompt");
}

CLI::App* add_prompt_command(CLI::App& app, PromptArgs& a) {
  auto* p = app.add_subcommand("prompt",
                               "Connections waiting for a person (a PROMPT_CALLOUT filter): list them, answer them, or "
                               "(no verb) watch and answer from standard input");
  a.list = p->add_subcommand("list", "The pending connections");
  a.list->add_option("--offset", a.offset, "from the N-th on (0: the first)");
  a.list->add_option("--limit", a.limit, "at most this many (0: all)");
  a.answer = p->add_subcommand("answer", "Answer one pending connection");
  a.answer->add_option("id", a.id, "its id (lfp prompt list)")->required();
  a.answer->add_option("action", a.action, "allow | deny")->required()->check(CLI::IsMember({"allow", "deny"}));
  a.answer->add_option("--scope", a.scope,
                       "once (this connection) | session (a filter until lfpd stops) | forever (a persistent filter)")
      ->check(CLI::IsMember({"once", "session", "forever"}))
      ->capture_default_str();
  return p;
}

int run_prompt(client::Client& c, const PromptArgs& a, bool as_json, volatile std::sig_atomic_t& stop) {
  if (*a.list) {
    const auto l = c.list("pending_list", "pending", json::object(), a.offset, a.limit);
    if (as_json) std::cout << json(l.items).dump() << '\n';
    else if (l.items.empty()) std::cout << "no pending connections" << (l.total ? " from offset " + std::to_string(a.offset) : "") << '\n';
    else
      for (const auto& p : l.items) std::cout << describe(p) << '\n';
    if (!as_json && l.items.size() != l.total) std::cerr << l.items.size() << " of " << l.total << " shown\n";
    return 0;
  }
  if (*a.answer) {
    const json r = answer(c, a.id, a.action, a.scope);
    if (as_json) std::cout << r.dump() << '\n';
    else std::cout << a.action << ' ' << a.id << " (" << a.scope << ")\n";
    return 0;
  }
  // Watch: each new pending connection once; answers as lines on stdin.
  std::set<uint64_t> shown;
  std::string buf;
  bool input_open = true;
  if (!as_json) std::cerr << "waiting for connections; answer with: ID allow|deny [once|session|forever]\n";
  while (!stop && input_open) {
    for (const auto& p : c.list("pending_list", "pending").items)
      if (shown.insert(p["id"].get<uint64_t>()).second) std::cout << (as_json ? p.dump() : describe(p)) << std::endl;
    pollfd in{0, POLLIN, 0};
    if (::poll(&in, 1, 250) <= 0) continue;
    char chunk[4096];
    const ssize_t n = ::read(0, chunk, sizeof chunk);
    if (n <= 0) input_open = false;
    else buf.append(chunk, static_cast<size_t>(n));
    for (size_t nl; (nl = buf.find('\n')) != std::string::npos;) {
      std::istringstream line(buf.substr(0, nl));
      buf.erase(0, nl + 1);
      uint64_t id;
      std::string action, scope = "once";
      if (!(line >> id >> action)) continue;
      line >> scope;
      try {
        const json r = answer(c, id, action, scope);
        std::cout << (as_json ? r.dump() : action + " " + std::to_string(id) + " (" + scope + ")") << std::endl;
      } catch (const std::exception& e) {
        std::cerr << "lfp prompt: " << e.what() << '\n';
      }
    }
  }
  return 0;
}

}  // namespace

void add_prompt_verb(CLI::App& app, Globals& g, Verbs& verbs) {
  auto a = std::make_shared<PromptArgs>();
  auto* prompt = add_prompt_command(app, *a);
  for (auto* sc : {prompt, a->list, a->answer}) sc->add_flag("--json", g.as_json, "JSON output");
  add_daemon_verb(verbs, g, prompt, [&g, a](client::Client& c) {
    volatile std::sig_atomic_t& stop = stop_on_signal();
    return run_prompt(c, *a, g.as_json, stop);
  });
}

int show_flows(client::Client& c, size_t offset, size_t limit, bool as_json) {
  const auto l = c.list("flows", "flows", json::object(), offset, limit);
  const json stats = c.call("flows", {{"limit", 0}})["stats"];
  if (as_json) {
    std::cout << json{{"flows", l.items}, {"total", l.total}, {"stats", stats}}.dump() << '\n';
    return 0;
  }
  for (const auto& f : l.items)
    std::cout << "flow " << f["flow"] << "  " << f.value("local", "") << " -> " << f.value("remote", "") << "  "
              << f.value("direction", "") << "  sent " << f["bytes_sent"] << "  received " << f["bytes_received"] << "  "
              << f.value("state", "") << '\n';
  if (l.items.size() != l.total) std::cout << l.items.size() << " of " << l.total << " flows shown\n";
  std::cout << "stats " << stats.dump() << '\n';
  return 0;
}

int show_packet_queue(client::Client& c, bool as_json) {
  const json r = c.call("packet_queue");
  if (as_json) {
    std::cout << r.dump() << '\n';
    return 0;
  }
  // LFP_QUEUED_HOOK bits: hook * 2 + (IPv6).
  static const char* kHooks[] = {"PRE_ROUTING", "LOCAL_IN", "FORWARD", "LOCAL_OUT"};
  std::string hooks;
  const uint32_t mask = r.value("queued_hooks", 0u);
  for (int b = 0; b < 8; ++b)
    if (mask >> b & 1) hooks += std::string(hooks.empty() ? "" : " ") + kHooks[b / 2] + (b % 2 ? "/v6" : "/v4");
  std::cout << "hooks decided in lfpd: " << (hooks.empty() ? "none" : hooks) << '\n';
  for (const char* k : {"packets", "dropped", "classifies", "reads", "verdict_messages", "unparsed", "overflowed"})
    std::cout << k << ' ' << r.value(k, uint64_t{0}) << '\n';
  return 0;
}

}  // namespace lfp::cli
