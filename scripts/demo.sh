#!/usr/bin/env bash
# The main job on its embedded default: start lfpd on a temporary state dir and socket, apply the demo
# policy in one transaction, show the engine's state, ask it for decisions (one explained), then run
# the same policy offline and classify a ClassBench set with the compiled classifier.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
LFP=build/cli/lfp
LFPD=build/daemon/lfpd

work=$(mktemp -d /tmp/lfp-demo.XXXXXX)
export LFP_SOCKET="$work/lfpd.sock"
daemon_pid=""
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

echo "== lfpd --state-dir $work/state --socket $LFP_SOCKET"
$LFPD --state-dir "$work/state" --socket "$LFP_SOCKET" --log-level warn &
daemon_pid=$!
for _ in $(seq 100); do $LFP show providers >/dev/null 2>&1 && break; sleep 0.05; done

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
  build/bench/lfp-bench classbench --rules "$CB/acl1_1k.rules.xz" --trace "$CB/acl1_1k.trace.xz"
fi
