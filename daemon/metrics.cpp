// SPDX-License-Identifier: MIT
#include "metrics.hpp"

#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <charconv>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include <httplib.h>
#include <spdlog/spdlog.h>

#include "server.hpp"

namespace lfp::daemon {

namespace {

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  char buf[32];
  const auto r = std::abs(v) < 9.0e15 && v == std::floor(v) ? std::to_chars(buf, buf + sizeof buf, static_cast<int64_t>(v))
                                                            : std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string escaped(std::string_view v, bool quotes) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '"' && quotes) out += "\\\"";
    else out += c;
  }
  return out;
}

}  // namespace

std::string escape_label_value(std::string_view v) { return escaped(v, true); }
std::string escape_help(std::string_view v) { return escaped(v, false); }

MetricsText& MetricsText::family(std::string_view name, std::string_view type, std::string_view help) {
  name_ = name;
  text_ += "# HELP " + name_ + ' ' + escape_help(help) + "\n# TYPE " + name_ + ' ' + std::string(type) + '\n';
  return *this;
}

MetricsText& MetricsText::sample(double value, const Labels& labels, std::string_view suffix) {
  text_ += name_;
  text_ += suffix;
  if (!labels.empty()) {
    text_ += '{';
    for (size_t i = 0; i < labels.size(); ++i)
      text_ += (i ? "," : "") + std::string(labels[i].first) + "=\"" + escape_label_value(labels[i].second) + '"';
    text_ += '}';
  }
  text_ += ' ' + number(value) + '\n';
  return *this;
}

void Histogram::observe(double seconds) {
  for (size_t i = 0; i < kBounds.size(); ++i)
    if (seconds <= kBounds[i]) {
      ++buckets_[i];
      break;
    }
  ++count_;
  sum_ += seconds;
}

void Histogram::write(MetricsText& page, const MetricsText::Labels& labels) const {
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= kBounds.size(); ++i) {
    cumulative = i < kBounds.size() ? cumulative + buckets_[i] : count_;
    MetricsText::Labels with_le = labels;
    with_le.emplace_back("le", number(i < kBounds.size() ? kBounds[i] : INFINITY));
    page.sample(static_cast<double>(cumulative), with_le, "_bucket");
  }
  page.sample(sum_, labels, "_sum");
  page.sample(static_cast<double>(count_), labels, "_count");
}

ListenAddress parse_listen_address(const std::string& text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos) throw std::invalid_argument("'" + text + "' is not ADDR:PORT (e.g. 127.0.0.1:9464)");
  ListenAddress a{text.substr(0, colon), 0};
  const std::string port = text.substr(colon + 1);
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), a.port);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || a.port < 1 || a.port > 65535)
    throw std::invalid_argument("'" + text + "': the port must be 1..65535");
  const bool v6 = a.host.size() > 2 && a.host.front() == '[' && a.host.back() == ']';
  if (v6) a.host = a.host.substr(1, a.host.size() - 2);
  unsigned char addr[16];
  if (::inet_pton(v6 ? AF_INET6 : AF_INET, a.host.c_str(), addr) != 1)
    throw std::invalid_argument("'" + text + "': not an IPv4 address or an IPv6 one in brackets (e.g. 127.0.0.1:9464, [::1]:9464)");
  return a;
}

MetricsEndpoint::MetricsEndpoint(Server& server, const std::string& listen, std::function<std::string()> page)
    : server_(server), page_(std::move(page)), http_(std::make_unique<httplib::Server>()) {
  const ListenAddress at = parse_listen_address(listen);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
  // Two workers: a scrape waits on the loop, and Prometheus scrapes one at a time.
  http_->new_task_queue = [] { return new httplib::ThreadPool(2); };
  http_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    std::string text = scrape();
    if (text.empty()) {
      res.status = 503;
      res.set_content("lfpd's loop did not answer within 5 s\n", "text/plain");
    } else {
      res.set_content(std::move(text), "text/plain; version=0.0.4; charset=utf-8");
    }
  });
  errno = 0;
  if (!http_->bind_to_port(at.host, at.port)) {
    const int err = errno;
    ::close(wake_fd_);
    throw std::runtime_error("--metrics-listen " + listen + ": cannot listen: " +
                             (err ? std::strerror(err) : "the address is in use or not this host's"));
  }
  server_.watch_fd(wake_fd_, [this] { make_page(); });
  // The HTTP threads take no signals: SIGTERM and SIGINT are the loop's (its signalfd), and a thread
  // that left them unblocked would be killed by them, and lfpd with it.
  sigset_t all, before;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &before);
  thread_ = std::thread([this] { http_->listen_after_bind(); });  // (its workers inherit the mask)
  pthread_sigmask(SIG_SETMASK, &before, nullptr);
  // (httplib's stop() does nothing before its loop runs: the destructor could not end it)
  for (int i = 0; i < 2000 && !http_->is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  spdlog::info("metrics: http://{}/metrics", listen);
}

MetricsEndpoint::~MetricsEndpoint() {
  http_->stop();
  if (thread_.joinable()) thread_.join();
  server_.unwatch_fd(wake_fd_);
  ::close(wake_fd_);
}

std::string MetricsEndpoint::scrape() {
  std::unique_lock lock(mu_);
  const uint64_t mine = ++asked_;
  const uint64_t one = 1;
  if (::write(wake_fd_, &one, sizeof one) != sizeof one) return "";
  if (!made_.wait_for(lock, std::chrono::seconds(5), [&] { return answered_ >= mine; })) return "";
  return text_;
}

void MetricsEndpoint::make_page() {
  uint64_t n;
  while (::read(wake_fd_, &n, sizeof n) > 0) {}
  uint64_t asked;
  {
    std::lock_guard lock(mu_);
    asked = asked_;  // (every scrape asked before now gets this page)
  }
  std::string text;
  try {
    text = page_();
  } catch (const std::exception& e) {
    spdlog::error("metrics: {}", e.what());
    text = "# lfpd could not make its metrics: " + escape_help(e.what()) + '\n';
  }
  std::lock_guard lock(mu_);
  text_ = std::move(text);
  answered_ = asked;
  made_.notify_all();
}

}  // namespace lfp::daemon
