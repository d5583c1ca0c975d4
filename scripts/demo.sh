#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The main job on its embedded default, in its own sandbox: two network namespaces joined by a veth
# pair, a child cgroup and a private bpffs, all removed on exit. lfpd attaches its ALE hooks to that
# cgroup only; a per-app policy lets curl reach a web server and refuses a copy of curl under another
# path; the net event log shows what was blocked and why. Then the engine's own state and decisions,
# the same policy offline, and a ClassBench set through the compiled classifier.
# LFP_BUILD=DIR: use the binaries of a build directory you built yourself (default: build/, which
# scripts/setup.sh installs and builds first).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${LFP_BUILD:-}" ] || scripts/setup.sh >/dev/null
BUILD=${LFP_BUILD:-build}
LFP=$BUILD/cli/lfp
LFPD=$BUILD/daemon/lfpd

# shellcheck source=scripts/cgroup2_mount.sh
. scripts/cgroup2_mount.sh  # (the repository root is the working directory)

work=$(mktemp -d /tmp/lfp-demo.XXXXXX)
chmod 755 "$work"
export LFP_SOCKET="$work/lfpd.sock"
tag="lfpdemo$$"
NS_HOST="$tag-host" NS_WEB="$tag-web"
CGROUP2=$(cgroup2_mount)
[ -n "$CGROUP2" ] || { echo "demo: no cgroup v2 is mounted (mount -t cgroup2 none /sys/fs/cgroup)" >&2; exit 1; }
CG="$CGROUP2/$tag"
daemon_pid="" web_pid=""
cleanup() {
  [ -n "$web_pid" ] && kill "$web_pid" 2>/dev/null
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  if [ -d "$CG" ]; then echo 1 > "$CG/cgroup.kill" 2>/dev/null || true; sleep 0.2; rmdir "$CG" 2>/dev/null || true; fi
  [ -d "$work/bpf" ] && { $LFPD --detach --bpf-pin "$work/bpf" --log-level warn || true; umount "$work/bpf" 2>/dev/null || true; }
  ip netns del "$NS_HOST" 2>/dev/null || true
  ip netns del "$NS_WEB" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Runs a command inside the sandbox: in the cgroup (joined first), then in the host namespace.
in_sandbox() { sh -c 'ns=$1; shift; echo $$ > "$0/cgroup.procs" && exec nsenter --net="/run/netns/$ns" "$@"' "$CG" "$NS_HOST" "$@"; }
# Starts lfpd in the background, in the sandbox's host namespace (lfpd governs the packet layers of the
# namespace it runs in), with only the options given here (--config none: not the host's lfpd.conf);
# its log goes to $work/lfpd.log.
start_lfpd() {
  nsenter --net="/run/netns/$NS_HOST" "$LFPD" --config none --socket "$LFP_SOCKET" "$@" 2>>"$work/lfpd.log" &
  daemon_pid=$!
  for _ in $(seq 600); do  # (loading and verifying the BPF programs takes seconds on a busy machine)
    $LFP show providers >/dev/null 2>&1 && return
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.05
  done
  cat "$work/lfpd.log" >&2; echo "demo: lfpd did not start" >&2; exit 1
}

echo "== sandbox: namespaces $NS_HOST <-> $NS_WEB (10.199.0.1 <-> 10.199.0.2), cgroup $CG"
ip netns add "$NS_HOST"
ip netns add "$NS_WEB"
ip link add veth-host netns "$NS_HOST" type veth peer name veth-web netns "$NS_WEB"
ip -n "$NS_HOST" addr add 10.199.0.1/24 dev veth-host
ip -n "$NS_WEB" addr add 10.199.0.2/24 dev veth-web
for ns in "$NS_HOST" "$NS_WEB"; do ip -n "$ns" link set lo up; done
ip -n "$NS_HOST" link set veth-host up
ip -n "$NS_WEB" link set veth-web up
mkdir "$CG" "$work/bpf"
mount -t bpf bpf "$work/bpf"
printf 'HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhello\n' > "$work/response"
nsenter --net="/run/netns/$NS_WEB" socat TCP-LISTEN:80,fork,reuseaddr SYSTEM:"cat $work/response" &
web_pid=$!
cp /usr/bin/curl "$work/not-curl"

echo "== lfpd --cgroup $CG --bpf-pin $work/bpf --state-dir $work/state --socket $LFP_SOCKET (in $NS_HOST)"
start_lfpd --state-dir "$work/state" --cgroup "$CG" --bpf-pin "$work/bpf" --log-level info

echo "== lfp apply examples/ale-demo-policy.json (per-app: only /usr/bin/curl may reach port 80)"
$LFP apply examples/ale-demo-policy.json

echo "== /usr/bin/curl http://10.199.0.2/ (allowed)"
in_sandbox curl -sS -m 3 http://10.199.0.2/
echo "== $work/not-curl http://10.199.0.2/ (the same program under another path: blocked)"
in_sandbox "$work/not-curl" -sS -m 3 http://10.199.0.2/ && { echo "demo: not-curl was not blocked" >&2; exit 1; } || true
sleep 0.2

echo "== lfp show netevents: what was blocked (lfpd's net event log)"
$LFP show netevents --since 1m
# (By remote only: not-curl has exited by now, so its event may carry no path; see docs/netevents.md.)
echo "== lfp diagnose --remote 10.199.0.2:80: why can't not-curl connect?"
rc=0; $LFP diagnose --time now --remote 10.199.0.2:80 || rc=$?
[ "$rc" -eq 10 ] || { echo "demo: diagnose did not confirm the block (exit $rc)" >&2; exit 1; }
echo "== lfp diagnose --app /usr/bin/curl: curl was never blocked"
sleep 0.5  # the window below must lie within the log's life (it starts with lfpd)
rc=0; out=$($LFP diagnose --time now --window 0.4 --remote 10.199.0.2:80 --app /usr/bin/curl --no-foreign) || rc=$?
echo "$out"
[ "$rc" -eq 0 ] || { echo "demo: diagnose did not find curl healthy (exit $rc): $out" >&2; exit 1; }
echo "== lfp classify --daemon: the engine's explanation of that decision"
$LFP classify --daemon --layer ALE_AUTH_CONNECT_V4 --set IP_REMOTE_ADDRESS=10.199.0.2 --set IP_REMOTE_PORT=80 \
  --set IP_PROTOCOL=TCP --set ALE_APP_ID="$work/not-curl" --set ALE_USER_ID=0 --explain
kill "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true; daemon_pid=""

echo "== lfpd --cgroup none --no-packet-layers --state-dir $work/state2 --socket $LFP_SOCKET (no data path: the engine alone)"
start_lfpd --state-dir "$work/state2" --cgroup none --no-packet-layers --log-level warn

echo "== lfp apply examples/demo-policy.json"
$LFP apply examples/demo-policy.json

echo "== lfp show state"
$LFP show state

echo "== lfp classify --daemon: why is telnet to 192.0.2.10 blocked?"
$LFP classify --daemon --layer ALE_AUTH_CONNECT_V4 \
  --set IP_REMOTE_ADDRESS=192.0.2.10 --set IP_REMOTE_PORT=23 --set IP_PROTOCOL=TCP \
  --set IP_LOCAL_ADDRESS=198.51.100.2 --set IP_LOCAL_PORT=40000 --set ALE_APP_ID=/usr/bin/telnet \
  --set ALE_USER_ID=1000

echo "== offline: the demo requests against the policy file (one JSON result per request)"
$LFP classify --policy examples/demo-policy.json --requests examples/demo-requests.jsonl

echo "== offline, explained"
$LFP classify --policy examples/demo-policy.json --layer ALE_AUTH_CONNECT_V4 \
  --set IP_REMOTE_ADDRESS=192.0.2.10 --set IP_REMOTE_PORT=23 --set IP_PROTOCOL=TCP \
  --set IP_LOCAL_ADDRESS=198.51.100.2 --set IP_LOCAL_PORT=40000 --set ALE_APP_ID=/usr/bin/telnet \
  --set ALE_USER_ID=1000 --explain

CB=../shared/classbench
if [ -f "$CB/acl1_1k.rules.xz" ]; then
  echo "== ClassBench acl1_1k through the compiled classifier"
  "$BUILD/bench/lfp-bench" classbench --rules "$CB/acl1_1k.rules.xz" --trace "$CB/acl1_1k.trace.xz"
fi
