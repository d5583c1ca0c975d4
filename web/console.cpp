// SPDX-License-Identifier: MIT
#include "console.hpp"

#include <httplib.h>

#include <chrono>
#include <memory>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "lfp/client/client.hpp"
#include "lfp/client/prompts.hpp"
#include "lfp/engine/catalogue.hpp"
#include "static_files.hpp"

namespace lfp::web {

namespace {

using nlohmann::json;
using httplib::Request;
using httplib::Response;
using Clock = std::chrono::steady_clock;

constexpr uint32_t kReplyTimeoutMs = 15000;  // a hung lfpd fails the request instead of holding a thread
constexpr size_t kMaxFilters = 10000;        // the State page's listing (the total is said)
constexpr size_t kMaxEvents = 1000;          // one netevents request
constexpr int kMaxEventStreams = 8;          // each holds a thread of the server's 16
constexpr auto kKeepAlive = std::chrono::seconds(5);  // a comment on a quiet stream: a gone browser is noticed

// A request the browser got wrong (INVALID_PARAMETER, as lfpd says it).
struct BadRequest : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// Invalid UTF-8 (an executable's path can hold any bytes) is replaced, not thrown on.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

int status_for(const std::string& code) {
  if (code == "UNAUTHORIZED") return 401;
  if (code == "ACCESS_DENIED") return 403;
  if (code.ends_with("NOT_FOUND")) return 404;
  if (code == "NOT_RUNNING" || code == "TOO_MANY_SESSIONS") return 503;
  if (code == "TIMEOUT") return 504;
  if (code == "PROTOCOL") return 502;
  return 400;  // lfpd refused the request as given
}

void send_json(Response& res, const json& body) { res.set_content(dump(body), "application/json"); }

// Errors are lfpd's: its code and message.
void send_error(Response& res, const std::string& code, const std::string& message) {
  res.status = status_for(code);
  send_json(res, {{"error", {{"code", code}, {"message", message}}}});
}

json body_of(const Request& req) {
  json body = json::parse(req.body, nullptr, false);
  if (!body.is_object()) throw BadRequest("the request body must be a JSON object");
  return body;
}

std::string content_type(std::string_view path) {
  if (path.ends_with(".css")) return "text/css; charset=utf-8";
  if (path.ends_with(".js")) return "text/javascript; charset=utf-8";
  return "text/html; charset=utf-8";
}

// The layers and their fields, from the engine's catalogue (the Arbitration form's choices).
json layers_json() {
  json layers = json::array();
  for (const auto& l : all_layers()) {
    json fields = json::array();
    for (auto f : l.fields) fields.push_back(field_name(f));
    layers.push_back({{"layer", l.name}, {"fields", fields}});
  }
  return layers;
}

// An answer to a pending connection, as `lfp prompt answer` gives it (client::answer_prompt).
json answer_prompt(client::Client& c, const json& body) {
  const json id = body.value("id", json());
  const std::string action = body.value("action", ""), scope = body.value("scope", "once");
  if (!id.is_number_unsigned()) throw BadRequest("/id: a pending connection's id (a number)");
  if (action != "allow" && action != "deny") throw BadRequest("/action: allow or deny, not \"" + action + "\"");
  if (scope != "once" && scope != "session" && scope != "forever")
    throw BadRequest("/scope: once, session or forever, not \"" + scope + "\"");
  const auto sc = scope == "once" ? client::PromptScope::ONCE
                  : scope == "session" ? client::PromptScope::SESSION : client::PromptScope::FOREVER;
  return client::answer_prompt(c, id.get<uint64_t>(), action == "allow", sc, "lfp-web");
}

// Compares in a time that does not depend on where they differ.
bool same(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

client::SessionOptions session_options() { return {.name = "lfp-web", .reply_timeout_ms = kReplyTimeoutMs}; }

}  // namespace

Console::Console(const ConsoleOptions& o) : opts_(o), cookie_("lfp_web_" + std::to_string(o.port)) {}

// Runs `work` in a new session with lfpd: its JSON is the reply; lfpd's error (or the request's) the error reply.
template <typename F>
void Console::with_lfpd(Response& res, F&& work) {
  try {
    client::Client c(opts_.socket, session_options());
    send_json(res, work(c));
  } catch (const client::ClientError& e) {
    send_error(res, e.code(), e.message());
  } catch (const BadRequest& e) {
    send_error(res, "INVALID_PARAMETER", e.what());
  } catch (const json::exception& e) {
    send_error(res, "INVALID_PARAMETER", e.what());  // (a member of the wrong type in the request)
  }
}

void Console::add_routes(httplib::Server& s) {
  s.set_pre_routing_handler([this](const Request& req, Response& res) {
    if (!req.path.starts_with("/api/") || authorized(req)) return httplib::Server::HandlerResponse::Unhandled;
    send_error(res, "UNAUTHORIZED", "open the address lfp-web printed when it started: it holds the console's token");
    return httplib::Server::HandlerResponse::Handled;
  });
  s.Get("/", [this](const Request& req, Response& res) { page(req, res); });
  for (const auto& f : kStaticFiles)
    if (f.path != "/index.html")
      s.Get(std::string(f.path), [&f](const Request&, Response& res) {
        res.set_content(f.body.data(), f.body.size(), content_type(f.path).c_str());
      });

  s.Get("/api/layers", [](const Request&, Response& res) { send_json(res, layers_json()); });
  s.Get("/api/state", [this](const Request&, Response& res) {
    with_lfpd(res, [](client::Client& c) {
      c.begin(true);  // one snapshot
      json out = {{"session", c.session()}, {"state", c.call("state", {{"objects", false}})}};
      for (const char* kind : {"provider", "sublayer", "callout"}) out[std::string(kind) + "s"] = c.enumerate(kind);
      const auto filters = c.list("enum", "objects", {{"kind", "filter"}, {"template", json::object()}}, 0, kMaxFilters);
      out["filters"] = filters.items;
      out["filter_total"] = filters.total;
      c.commit();
      return out;
    });
  });
  s.Post("/api/classify", [this](const Request& req, Response& res) {
    with_lfpd(res, [&req](client::Client& c) {
      const json body = body_of(req);
      return c.call("classify", {{"layer", body.value("layer", json())},
                                 {"text_values", body.value("values", json::object())},
                                 {"explain", true}});
    });
  });
  s.Post("/api/netevents", [this](const Request& req, Response& res) {
    with_lfpd(res, [&req](client::Client& c) {
      const json body = body_of(req);
      const size_t limit = std::min<size_t>(body.value("limit", kMaxEvents), kMaxEvents);
      const auto l = c.list("netevents_enum", "events",
                            {{"template", body.value("template", json::object())}, {"order", "newest"}}, 0, limit);
      return json{{"events", l.items}, {"total", l.total}};
    });
  });
  s.Post("/api/diagnose", [this](const Request& req, Response& res) {
    with_lfpd(res, [&req](client::Client& c) {
      const json body = body_of(req);
      return c.call("diagnose", {{"hypothesis", body.value("hypothesis", json::object())}, {"foreign", body.value("foreign", true)}});
    });
  });
  s.Get("/api/prompts", [this](const Request&, Response& res) {
    with_lfpd(res, [](client::Client& c) { return json{{"pending", c.list("pending_list", "pending").items}}; });
  });
  s.Post("/api/prompts/answer", [this](const Request& req, Response& res) {
    with_lfpd(res, [&req](client::Client& c) { return answer_prompt(c, body_of(req)); });
  });
  s.Get("/api/events", [this](const Request&, Response& res) { events(res); });
}

bool Console::authorized(const Request& req) const {
  const std::string cookies = req.get_header_value("Cookie");
  const std::string want = cookie_ + "=";
  for (size_t at = 0; at < cookies.size();) {
    const size_t end = std::min(cookies.find(';', at), cookies.size());
    std::string_view c(cookies.data() + at, end - at);
    while (c.starts_with(' ')) c.remove_prefix(1);
    if (c.starts_with(want) && same(c.substr(want.size()), opts_.token)) return true;
    at = end + 1;
  }
  return false;
}

// "/?token=T" sets the cookie (and takes the token out of the address bar); "/" with it is the page.
void Console::page(const Request& req, Response& res) {
  if (req.has_param("token") && same(req.get_param_value("token"), opts_.token)) {
    res.set_header("Set-Cookie", cookie_ + "=" + opts_.token + "; Path=/; HttpOnly; SameSite=Strict");
    res.set_redirect("/", 303);
    return;
  }
  if (!authorized(req)) {
    res.status = 401;
    res.set_content("<!doctype html><title>lfp-web</title><p>This console needs its token: open the address lfp-web "
                    "printed when it started (http://HOST:PORT/?token=...).</p>",
                    "text/html; charset=utf-8");
    return;
  }
  for (const auto& f : kStaticFiles)
    if (f.path == "/index.html") res.set_content(f.body.data(), f.body.size(), content_type(f.path).c_str());
  res.set_header("Cache-Control", "no-store");
}

// Net events as lfpd writes them, as Server-Sent Events from this stream's own subscription: "ready"
// once subscribed, each event a message, "lfpd" with the error when lfpd goes (the browser connects
// again after `retry`).
void Console::events(Response& res) {
  if (streams_.fetch_add(1) >= kMaxEventStreams) {
    --streams_;
    return send_error(res, "TOO_MANY_SESSIONS", "lfp-web serves at most " + std::to_string(kMaxEventStreams) + " event streams");
  }
  std::shared_ptr<client::Client> c;
  try {
    c = std::make_shared<client::Client>(opts_.socket, session_options());
    c->call("netevents_subscribe", {{"template", json::object()}});
  } catch (const client::ClientError& e) {
    --streams_;
    return send_error(res, e.code(), e.message());
  }
  res.set_header("Cache-Control", "no-store");
  auto last_write = std::make_shared<Clock::time_point>();  // (the epoch until "ready" is sent)
  res.set_chunked_content_provider(
      "text/event-stream",
      [c, last_write](size_t, httplib::DataSink& sink) {
        auto send = [&](const std::string& text) {
          *last_write = Clock::now();
          return sink.write(text.data(), text.size());
        };
        if (*last_write == Clock::time_point()) return send("retry: 2000\nevent: ready\ndata: {}\n\n");
        try {
          const auto e = c->next_event(500);
          if (e && e->value("event", "") == "netevent") return send("data: " + dump((*e)["netevent"]) + "\n\n");
          return Clock::now() - *last_write < kKeepAlive || send(": still here\n\n");
        } catch (const client::ClientError& e) {
          send("event: lfpd\ndata: " + dump({{"error", {{"code", e.code()}, {"message", e.message()}}}}) + "\n\n");
          sink.done();
          return true;
        }
      },
      [this](bool) { --streams_; });
}

}  // namespace lfp::web
