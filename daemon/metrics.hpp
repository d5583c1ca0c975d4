// SPDX-License-Identifier: MIT
#pragma once
// lfpd --metrics-listen (docs/metrics.md): Prometheus metrics in the text exposition format, served
// at /metrics by cpp-httplib on a thread of its own. The page is made in lfpd's loop, which alone
// touches the engine and the services; the HTTP thread only asks for it (MetricsEndpoint).
#include <array>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace httplib {
class Server;
}

namespace lfp::daemon {

class Server;

// One metric page in the text exposition format (version 0.0.4). A family's HELP and TYPE lines come
// first, then its samples; label values and HELP texts are escaped as the format says.
class MetricsText {
 public:
  using Labels = std::vector<std::pair<std::string_view, std::string>>;
  // type: counter | gauge | histogram.
  MetricsText& family(std::string_view name, std::string_view type, std::string_view help);
  // A sample of the family last begun; `suffix` for a histogram's _bucket, _sum and _count.
  MetricsText& sample(double value, const Labels& labels = {}, std::string_view suffix = "");
  const std::string& text() const { return text_; }

 private:
  std::string text_, name_;
};
std::string escape_label_value(std::string_view v);  // \ " and newline escaped
std::string escape_help(std::string_view v);         // \ and newline escaped

// A latency histogram in seconds, with fixed buckets (1 us .. 1 s).
class Histogram {
 public:
  static constexpr std::array<double, 13> kBounds = {1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3,
                                                     5e-3, 1e-2, 5e-2, 0.1,  0.5,  1.0};
  void observe(double seconds);
  // Its _bucket (cumulative, with +Inf), _sum and _count samples into `page`, under the family last begun.
  void write(MetricsText& page, const MetricsText::Labels& labels = {}) const;
  uint64_t count() const { return count_; }

 private:
  std::array<uint64_t, kBounds.size()> buckets_{};  // (not cumulative)
  uint64_t count_ = 0;
  double sum_ = 0;
};

// "ADDR:PORT" (IPv4, or IPv6 in brackets: "[::1]:9464"), as --metrics-listen takes it.
struct ListenAddress {
  std::string host;
  int port = 0;
};
// The address, or throws std::invalid_argument saying what is wrong.
ListenAddress parse_listen_address(const std::string& text);

// GET /metrics on `listen`, from a thread of its own. A scrape wakes the loop through an eventfd the
// server watches; the loop makes the page (`page`, which may read anything lfpd has) and hands it
// back. So the engine and the services stay the loop's alone, the values are those of the moment of
// the scrape, and nothing is computed while nobody scrapes. A scrape the loop cannot answer within
// 5 s (a long transaction's commit) gets 503.
class MetricsEndpoint {
 public:
  // Binds at once: throws std::runtime_error naming the address and why it cannot listen.
  MetricsEndpoint(Server& server, const std::string& listen, std::function<std::string()> page);
  ~MetricsEndpoint();
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

 private:
  std::string scrape();  // (the HTTP thread) the page the loop made, or "" on a timeout
  void make_page();      // (the loop)

  Server& server_;
  std::function<std::string()> page_;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  int wake_fd_ = -1;
  std::mutex mu_;  // what follows
  std::condition_variable made_;
  uint64_t asked_ = 0, answered_ = 0;  // scrapes asked for, and the last one the page answers
  std::string text_;
};

}  // namespace lfp::daemon
