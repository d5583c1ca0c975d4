#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds the Debian package and tries it on this machine (root): lintian, dpkg -i, the installed
# lfpd started by hand (its own state dir and socket, no cgroup, no packet layers, inside a throwaway
# network namespace) and asked by the installed lfp, systemd-analyze verify on the units, then
# dpkg -r and dpkg -P, and nothing left. It never starts lfpd through systemd.
# Usage: scripts/package-test.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "package-test: run as root (it installs the package)" >&2; exit 2; }

# dpkg -r runs `lfpd --detach` on the default pin directory, /sys/fs/bpf/lfp: the test runs in a
# mount namespace of its own with an empty /sys/fs/bpf, so that no other lfpd's pins are touched.
# (A marker, not a comparison with PID 1's namespace: in a container the shell's namespace is not PID 1's.)
if [ -z "${LFP_PACKAGE_TEST_NS:-}" ]; then
  LFP_PACKAGE_TEST_NS=1 exec unshare --mount --propagation private "$(realpath "$0")" "$@"
fi
mount -t tmpfs lfp-package-test /sys/fs/bpf

fail() { echo "package-test: FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

# Purge would take these with it: refuse rather than lose an admin's.
if dpkg-query -W -f='${Status}' lfp 2>/dev/null | grep -q installed; then
  fail "the lfp package is installed already (dpkg -P lfp first)"
fi
for path in /etc/lfp /var/lib/lfp; do [ ! -e "$path" ] || fail "$path exists already"; done
for group in lfpadmin lfpwriter; do ! getent group "$group" >/dev/null || fail "group $group exists already"; done
# (The package recommends bash-completion; the test tries the completion with it.)
if ! dpkg-query -W -f='${Status}' bash-completion 2>/dev/null | grep -q "install ok installed"; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bash-completion >/dev/null
fi

step "build"
deb=$(scripts/package.sh "${1:-build-pkg}")
version=$(dpkg-deb -f "$deb" Version)
echo "$deb (version $version)"
dpkg-deb -f "$deb" Depends

step "lintian"
lintian --fail-on error --display-info "$deb" || fail "lintian found errors"

# What the package could leave behind: its own paths, /etc/lfp, /var/lib/lfp, the pins, unit links, the groups.
listing() {
  dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\.||; s|/$||' | while read -r path; do
    if [ -n "$path" ] && [ -e "$path" ]; then echo "$path"; fi
  done
  find /etc/lfp /var/lib/lfp /sys/fs/bpf/lfp /etc/systemd/system /var/lib/systemd/deb-systemd-helper-enabled \
       /var/lib/systemd/deb-systemd-helper-masked 2>/dev/null || true
  getent group lfpadmin lfpwriter || true
}
before=$(mktemp) after=$(mktemp) work=$(mktemp -d)
netns=lfp-pkgtest-$$
lfpd_pid=
cleanup() {
  [ -z "$lfpd_pid" ] || kill "$lfpd_pid" 2>/dev/null || true
  ip netns delete "$netns" 2>/dev/null || true
  if dpkg-query -W -f='${Status}' lfp 2>/dev/null | grep -q installed; then dpkg -P lfp >/dev/null || true; fi
  rm -rf "$work" "$before" "$after"
}
trap cleanup EXIT
listing | sort > "$before"

step "dpkg -i"
dpkg -i "$deb"
for group in lfpadmin lfpwriter; do getent group "$group" >/dev/null || fail "group $group not created"; done
[ -f /etc/lfp/lfpd.conf ] || fail "/etc/lfp/lfpd.conf not installed"
! grep -qv '^#\|^$' /etc/lfp/lfpd.conf || fail "/etc/lfp/lfpd.conf has an uncommented line"
for unit in lfpd.service lfpd-boot.service; do
  [ -z "$(find /etc/systemd/system -name "$unit")" ] || fail "$unit was enabled on install"
done
for exe in /proc/[0-9]*/exe; do
  [ "$(readlink "$exe" 2>/dev/null)" != /usr/sbin/lfpd ] || fail "an lfpd is running after install"
done

step "dpkg -i again (the upgrade path: prerm upgrade, postinst configure OLD-VERSION)"
echo "# changed by package-test" >> /etc/lfp/lfpd.conf
dpkg -i "$deb"
grep -q "changed by package-test" /etc/lfp/lfpd.conf || fail "the upgrade replaced the admin's lfpd.conf"
for group in lfpadmin lfpwriter; do getent group "$group" >/dev/null || fail "group $group gone after the upgrade"; done

step "lfpd --version"
/usr/sbin/lfpd --version | tee "$work/version"
grep -qx "lfpd ${version%%-*}" "$work/version" || fail "lfpd --version is not lfpd ${version%%-*}"

step "the installed lfpd by hand"
# Safety: no cgroup, no packet layers, and in a network namespace of its own all the same.
args=(--state-dir "$work/state" --socket "$work/lfpd.sock" --cgroup none
      --callout /usr/lib/lfp/liblfp_inspect_callouts.so)
# (The help is read whole: with pipefail, grep -q ending the pipe early would fail the test.)
lfpd_help=$(/usr/sbin/lfpd --help)
if grep -q -- --no-packet-layers <<<"$lfpd_help"; then args+=(--no-packet-layers); fi
ip netns add "$netns"
nsenter --net="/run/netns/$netns" /usr/sbin/lfpd "${args[@]}" > "$work/lfpd.log" 2>&1 &
lfpd_pid=$!
for _ in $(seq 600); do
  [ -S "$work/lfpd.sock" ] && break
  kill -0 "$lfpd_pid" 2>/dev/null || { cat "$work/lfpd.log"; fail "the installed lfpd exited"; }
  sleep 0.1
done
[ -S "$work/lfpd.sock" ] || { cat "$work/lfpd.log"; fail "the installed lfpd made no socket in 60 s"; }
cat "$work/lfpd.log"
grep -q "callout plugin .*liblfp_inspect_callouts.so" "$work/lfpd.log" || fail "the inspection callouts did not load"
lfp_help=$(/usr/bin/lfp --help)
if grep -q '^  status ' <<<"$lfp_help"; then query=(status); else query=(show state); fi
step "lfp ${query[*]}"
/usr/bin/lfp --socket "$work/lfpd.sock" "${query[@]}" || fail "lfp ${query[*]} failed"
kill -TERM "$lfpd_pid"
wait "$lfpd_pid" || fail "lfpd exited with $? on SIGTERM"
lfpd_pid=
ip netns delete "$netns"

step "bash completion"
# Completes as bash would on TAB after the words given; prints the candidates.
complete_lfp() {
  bash -c 'source /usr/share/bash-completion/bash_completion
           source /usr/share/bash-completion/completions/lfp
           COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
           _lfp; printf "%s\n" "${COMPREPLY[@]}"' complete_lfp "$@"
}
expect_completion() {  # expect_completion CANDIDATE WORD...: CANDIDATE is among those offered
  local want=$1; shift
  grep -qxF -- "$want" <<<"$(complete_lfp "$@")" || fail "completing '$*' does not offer $want"
}
expect_completion status lfp st
expect_completion filters lfp show ""
expect_completion --socket lfp --so
expect_completion objects lfp monitor ""
expect_completion /etc/lfp lfp import iptables /etc/lf
echo "lfp show <TAB>: $(complete_lfp lfp show "" | tr '\n' ' ')"

step "systemd-analyze verify"
systemd-analyze verify /lib/systemd/system/lfpd.service /lib/systemd/system/lfpd-boot.service \
  || fail "systemd-analyze verify"
echo "(no complaints)"

step "systemctl enable (links only: nothing is started), for purge to remove"
systemctl enable lfpd.service lfpd-boot.service

step "dpkg -r"
# What systemd would have made (StateDirectory=), so that purge is seen to remove it.
install -d -m 0700 /var/lib/lfp && touch /var/lib/lfp/policy.db
dpkg -r lfp
[ ! -e /usr/sbin/lfpd ] && [ ! -e /usr/bin/lfp ] || fail "the programs are still there after dpkg -r"
[ -f /etc/lfp/lfpd.conf ] || fail "dpkg -r removed the conffile (only purge should)"

step "dpkg -P"
dpkg -P lfp
listing | sort > "$after"
diff -u "$before" "$after" || fail "dpkg -P left the above behind"
echo "package-test: OK ($deb)"
