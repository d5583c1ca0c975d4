// SPDX-License-Identifier: MIT
#include "interfaces.hpp"

#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>

#include <spdlog/spdlog.h>

namespace lfp::daemon {

InterfaceWatch::InterfaceWatch() {
  nl_ = mnl_socket_open2(NETLINK_ROUTE, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (!nl_) throw std::runtime_error(std::string("interfaces: rtnetlink socket: ") + std::strerror(errno));
  if (mnl_socket_bind(nl_, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR, MNL_SOCKET_AUTOPID) < 0) {
    const int e = errno;
    mnl_socket_close(nl_);
    throw std::runtime_error(std::string("interfaces: rtnetlink bind: ") + std::strerror(e));
  }
}

InterfaceWatch::~InterfaceWatch() { mnl_socket_close(nl_); }

int InterfaceWatch::fd() const { return mnl_socket_get_fd(nl_); }

FilterEngine::InterfaceTable interface_table() {
  struct if_nameindex* all = ::if_nameindex();
  if (!all) throw std::runtime_error(std::string("interfaces: if_nameindex: ") + std::strerror(errno));
  FilterEngine::InterfaceTable table;
  for (struct if_nameindex* i = all; i->if_index != 0; ++i) table.emplace(i->if_name, i->if_index);
  ::if_freenameindex(all);
  return table;
}

FilterEngine::InterfaceTable InterfaceWatch::read() {
  char buf[8192];
  while (::recv(fd(), buf, sizeof buf, 0) > 0 || errno == ENOBUFS) {  // (ENOBUFS: some were lost; the reads below are whole)
  }
  for (const auto& listener : listeners_) {
    try {
      listener();
    } catch (const std::exception& e) {  // (the next change tries again)
      spdlog::error("interfaces: {}", e.what());
    }
  }
  return interface_table();
}

void keep_interfaces_current(Server& server, InterfaceWatch& watch) {
  server.engine().set_interfaces(watch.read());
  server.watch_fd(watch.fd(), [&server, &watch] {
    const auto start = std::chrono::steady_clock::now();
    size_t changed = 0;
    try {
      changed = server.engine().set_interfaces(watch.read()).size();
    } catch (const std::exception& e) {  // (the next link change reads the table again)
      spdlog::error("{}: filters naming interfaces keep the indexes they had", e.what());
    }
    if (changed == 0) return;
    server.notify_policy_changed();
    spdlog::info("interfaces: {} filters name one that came, went or was renamed; enforced again in {} us", changed,
                 std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count());
  });
}

}  // namespace lfp::daemon
