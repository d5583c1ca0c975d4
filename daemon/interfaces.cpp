#include "interfaces.hpp"

#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace lfp::daemon {

InterfaceWatch::InterfaceWatch() {
  nl_ = mnl_socket_open2(NETLINK_ROUTE, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (!nl_) throw std::runtime_error(std::string("interfaces: rtnetlink socket: ") + std::strerror(errno));
  if (mnl_socket_bind(nl_, RTMGRP_LINK, MNL_SOCKET_AUTOPID) < 0) {
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
  while (::recv(fd(), buf, sizeof buf, 0) > 0 || errno == ENOBUFS) {  // (ENOBUFS: some were lost; the read below is whole)
  }
  return interface_table();
}

}  // namespace lfp::daemon
