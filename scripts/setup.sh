#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the Debian packages LFP builds and tests with, then configures and builds it (build/).
# Idempotent; run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev xz-utils
          nlohmann-json3-dev libabsl-dev libcli11-dev libspdlog-dev libgtest-dev libgmock-dev libbenchmark-dev liblzma-dev
          libsqlite3-dev libsystemd-dev util-linux
          libbpf-dev bpftool linux-libc-dev iproute2 socat iperf3 curl iputils-ping
          libnftables-dev libnftnl-dev libsimdjson-dev nftables libnetfilter-queue-dev libmnl-dev iptables libxml2-dev libpcap-dev tcpdump openssl bind9-dnsutils
          ccache dpkg-dev fakeroot lintian systemd
          ufw firewalld dbus   # (the import parity tests run the real ufw and firewalld in namespaces)
          libcpp-httplib-dev prometheus chromium)  # (metrics scraped by a real Prometheus; lfp-web in a real browser)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # No package may start a service (ufw, firewalld would change this host's firewall): policy-rc.d
  # exiting 101 forbids it for the install; one already there is left as it is.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
  # Nor start at the next boot: the firewalls just installed stay off (the tests run them in namespaces).
  for svc in ufw firewalld prometheus; do
    if [[ " ${missing[*]} " == *" $svc "* ]]; then systemctl disable --quiet "$svc.service"; fi
  done
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
cmake --build build -j"$(nproc)"
