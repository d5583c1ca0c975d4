#!/usr/bin/env bash
# The main job on its embedded default: load the demo policy, decide its sample requests, explain
# one decision, and classify a ClassBench set with the compiled classifier.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/cli/lfp ] || scripts/setup.sh
LFP=build/cli/lfp

echo "== policy: examples/demo-policy.json"
$LFP validate examples/demo-policy.json

echo "== decisions for examples/demo-requests.jsonl (one JSON result per request)"
$LFP classify --policy examples/demo-policy.json --requests examples/demo-requests.jsonl

echo "== why is telnet to 192.0.2.10 blocked? (--explain)"
$LFP classify --policy examples/demo-policy.json --layer ALE_AUTH_CONNECT_V4 \
  --set IP_REMOTE_ADDRESS=192.0.2.10 --set IP_REMOTE_PORT=23 --set IP_PROTOCOL=TCP \
  --set IP_LOCAL_ADDRESS=198.51.100.2 --set IP_LOCAL_PORT=40000 --set ALE_APP_ID=/usr/bin/telnet \
  --set ALE_USER_ID=1000 --explain

CB=../shared/classbench
if [ -f "$CB/acl1_1k.rules.xz" ]; then
  echo "== ClassBench acl1_1k through the compiled classifier"
  build/bench/lfp-bench classbench --rules "$CB/acl1_1k.rules.xz" --trace "$CB/acl1_1k.trace.xz"
fi
