// SPDX-License-Identifier: MIT
#pragma once
// The web console's page and JSON API on an httplib server (docs/web.md). Each API request is a
// session of its own with lfpd, opened with lfp-web's socket access: lfpd's roles decide what it may
// do. Only a browser that holds the console's token (a cookie, set when the address lfp-web printed
// is opened) reaches the API.
#include <atomic>
#include <string>

namespace httplib {
class Server;
struct Request;
struct Response;
}

namespace lfp::web {

struct ConsoleOptions {
  std::string socket;  // lfpd's
  std::string token;   // the secret in the printed address
  int port = 0;        // (names the cookie: browsers do not keep cookies apart by port)
};

class Console {
 public:
  explicit Console(const ConsoleOptions& options);
  // The page at /, its files, and the API under /api/. The console must outlive the server.
  void add_routes(httplib::Server& server);

 private:
  template <typename F>
  void with_lfpd(httplib::Response& res, F&& work);
  bool authorized(const httplib::Request& req) const;
  void page(const httplib::Request& req, httplib::Response& res);
  void events(httplib::Response& res);

  const ConsoleOptions opts_;
  const std::string cookie_;
  std::atomic<int> streams_{0};
};

}  // namespace lfp::web
