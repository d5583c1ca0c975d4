// SPDX-License-Identifier: MIT
// lfp-web: the web console (docs/web.md). An unprivileged program: it reaches lfpd only through the
// client library, with the socket access of whoever runs it, and serves one page on a loopback
// address (another only with --allow-remote) to a browser that holds its token.
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/random.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <httplib.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "console.hpp"
#include "lfp/client/client.hpp"

namespace {

constexpr int kThreads = 16;  // (event streams hold one each; lfp-web serves at most 8)

struct Listen {
  std::string host;  // numeric: 127.0.0.1, ::1
  int port = 0;
  bool loopback = false;
  std::string url() const {
    return "http://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port) + "/";
  }
};

// ADDR:PORT, [V6]:PORT or localhost:PORT; throws std::invalid_argument saying what is wrong.
Listen parse_listen(const std::string& text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos) throw std::invalid_argument("give ADDR:PORT, e.g. 127.0.0.1:8470");
  Listen l{.host = text.substr(0, colon)};
  const std::string port = text.substr(colon + 1);
  if (l.host.size() >= 2 && l.host.front() == '[' && l.host.back() == ']') l.host = l.host.substr(1, l.host.size() - 2);
  if (l.host == "localhost") l.host = "127.0.0.1";
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      (l.port = std::stoi(port)) < 1 || l.port > 65535)
    throw std::invalid_argument("'" + port + "' is not a port (1 to 65535)");
  in_addr v4;
  in6_addr v6;
  if (inet_pton(AF_INET, l.host.c_str(), &v4) == 1) l.loopback = (ntohl(v4.s_addr) >> 24) == 127;
  else if (inet_pton(AF_INET6, l.host.c_str(), &v6) == 1) l.loopback = IN6_IS_ADDR_LOOPBACK(&v6);
  else throw std::invalid_argument("'" + l.host + "' is not an IP address (127.0.0.1, [::1] or localhost)");
  return l;
}

// 32 random bytes, in hex.
std::string new_token() {
  unsigned char bytes[32];
  if (getrandom(bytes, sizeof bytes, 0) != static_cast<ssize_t>(sizeof bytes)) throw std::runtime_error("getrandom failed");
  static const char* kHex = "0123456789abcdef";
  std::string token;
  for (unsigned char b : bytes) token += {kHex[b >> 4], kHex[b & 15]};
  return token;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"lfp-web - the Linux Filtering Platform's web console (docs/web.md)"};
  app.set_version_flag("--version", "lfp-web " LFP_VERSION);
  const char* env = std::getenv("LFP_SOCKET");
  std::string socket = env && *env ? env : lfp::client::kDefaultSocket, listen_text = "127.0.0.1:8470";
  bool allow_remote = false;
  app.add_option("--socket", socket, "lfpd's socket (also $LFP_SOCKET)")->capture_default_str();
  app.add_option("--listen", listen_text, "ADDR:PORT to serve the page on (a loopback address)")->capture_default_str();
  app.add_flag("--allow-remote", allow_remote,
               "serve on an address that is not loopback: whoever reaches it with the token acts with your lfpd rights, "
               "over plain HTTP");
  CLI11_PARSE(app, argc, argv);

  Listen listen;
  try {
    listen = parse_listen(listen_text);
  } catch (const std::invalid_argument& e) {
    std::cerr << "lfp-web: --listen " << listen_text << ": " << e.what() << '\n';
    return 2;
  }
  if (!listen.loopback && !allow_remote) {
    std::cerr << "lfp-web: --listen " << listen_text
              << ": not a loopback address; whoever reached it would act with your rights at lfpd (give --allow-remote "
                 "to mean it)\n";
    return 2;
  }

  // SIGINT and SIGTERM end the server from a thread of their own; a write to a gone lfpd is an error, not SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);  // (before any thread starts: they inherit it)

  httplib::Server server;
  server.new_task_queue = [] { return new httplib::ThreadPool(kThreads); };
  // SO_REUSEADDR (a restart need not wait for TIME_WAIT), not httplib's SO_REUSEPORT too: a second
  // lfp-web on a port in use must fail, not share it.
  server.set_socket_options([](int sock) {
    const int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  const std::string token = new_token();
  lfp::web::Console console({.socket = socket, .token = token, .port = listen.port});
  console.add_routes(server);
  if (!server.bind_to_port(listen.host, listen.port)) {
    std::cerr << "lfp-web: --listen " << listen_text << ": cannot listen there (" << std::strerror(errno) << ")\n";
    return 1;
  }
  std::atomic<bool> signalled{false};
  std::thread stopper([&] {
    int sig;
    sigwait(&stop_signals, &sig);
    signalled = true;
    server.stop();  // (event streams end too)
  });
  std::cout << "lfp-web: the console of lfpd at " << socket << ": open " << listen.url() << "?token=" << token
            << std::endl;
  server.listen_after_bind();
  const bool stopped = signalled;
  if (!stopped) std::cerr << "lfp-web: the server stopped unexpectedly\n";
  kill(getpid(), SIGTERM);  // (the stopper's end, if no signal came: it is blocked everywhere, sigwait takes it)
  stopper.join();
  return stopped ? 0 : 1;
}
