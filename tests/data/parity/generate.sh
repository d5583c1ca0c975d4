#!/bin/sh
# The ruleset a real firewall tool generates, captured for the import parity tests
# (tests/import_parity_live_test.cpp). Usage:
#   generate.sh ufw OUTDIR 'ARGS' ...        each ARGS one `ufw ARGS` command (after `ufw --force enable`);
#                                            writes OUTDIR/iptables.rules and OUTDIR/ip6tables.rules
#   generate.sh firewalld OUTDIR 'ARGS' ...  each ARGS one `firewall-offline-cmd ARGS` command, then
#                                            firewalld applies them; writes OUTDIR/ruleset.nft
# The tool runs in a fresh network namespace and a private mount namespace of its own: what it writes
# (/etc/ufw, /etc/default/ufw, /etc/firewalld, /run, /var/log) lands on a tmpfs there, and its rules
# in that namespace, which goes when the script ends. This host's firewall and files are not touched.
set -eu
if [ -z "${PARITY_UNSHARED:-}" ]; then
  PARITY_UNSHARED=1 exec unshare --mount --net --fork -- "$0" "$@"
fi
tool=$1 out=$2
shift 2
mount --make-rprivate /
scratch=$out/scratch
mkdir -p "$scratch"
mount -t tmpfs parity "$scratch"
private_copy() {  # a writable copy of $1 (a file or a directory), over $1
  copy=$scratch/$(echo "$1" | tr / _)
  cp -a "$1" "$copy"
  mount --bind "$copy" "$1"
}
mount -t tmpfs parity /run

case $tool in
ufw)
  private_copy /etc/ufw
  private_copy /etc/default/ufw
  sed 's/^IPT_SYSCTL=.*/IPT_SYSCTL=/; s/^IPT_MODULES=.*/IPT_MODULES=/' /etc/default/ufw >"$scratch/default"
  cat "$scratch/default" >/etc/default/ufw  # (through the bind mount: sed -i cannot rename over it)
  ufw --force enable >/dev/null
  for args in "$@"; do eval "ufw $args" >/dev/null; done
  iptables-save >"$out/iptables.rules"
  ip6tables-save >"$out/ip6tables.rules"
  ;;
firewalld)
  private_copy /etc/firewalld
  mkdir -p "$scratch/log" /run/dbus
  mount --bind "$scratch/log" /var/log
  for args in "$@"; do eval "firewall-offline-cmd $args" >/dev/null; done
  # firewalld needs the system bus: a private one (no service activation), on this namespace's /run.
  dbus-daemon --config-file="$(dirname "$0")/dbus-system.conf" --nofork --nopidfile 2>/dev/null &
  bus=$!
  for _ in $(seq 100); do [ -S /run/dbus/system_bus_socket ] && break; sleep 0.05; done
  firewalld --nofork --nopid &
  daemon=$!
  trap 'kill $daemon $bus 2>/dev/null; wait' EXIT
  state=
  for _ in $(seq 150); do
    state=$(firewall-cmd --state 2>/dev/null) && break
    sleep 0.1
  done
  [ "$state" = running ] || { echo "generate.sh: firewalld did not start" >&2; exit 1; }
  nft list ruleset >"$out/ruleset.nft"
  ;;
*)
  echo "generate.sh: unknown tool '$tool' (ufw, firewalld)" >&2
  exit 2
  ;;
esac
