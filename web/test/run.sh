#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# web_console (ctest): lfp-web in a real browser. In a sandbox of its own (two network namespaces
# joined by a veth pair, a child cgroup, a private bpffs; all removed on exit, even on failure) it
# starts lfpd with the demo policy and a prompt filter, and lfp-web, both in namespace A; then
# Playwright drives Debian's Chromium (headless) through each page (console.spec.mjs), and lfp-web's
# bad input is checked: --listen refused, lfpd not running, lfpd gone.
#
#   web/test/run.sh LFP_WEB LFPD LFP      (ctest gives the built programs)
#   UPDATE_SCREENSHOTS=1: also writes docs/img/web-*.png
# Needs root. Without a sandbox (not root, no cgroup v2) it is skipped (77), or fails under
# LFP_REQUIRE_LIVE=1; without chromium or npm it fails (scripts/setup.sh installs chromium; npm is
# installed here when missing; the node packages, package-lock.json's, go beside LFP_WEB).
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 LFP_WEB LFPD LFP" >&2; exit 2; }
LFP_WEB=$(realpath "$1") LFPD=$(realpath "$2") LFP=$(realpath "$3")
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
fail() { echo "web_console: $*" >&2; exit 1; }
cannot_run() {
  [ "${LFP_REQUIRE_LIVE:-}" = 1 ] && fail "$* (and LFP_REQUIRE_LIVE=1)"
  echo "web_console: skipped: $*" >&2
  exit 77
}

# shellcheck source=scripts/cgroup2_mount.sh
. "$src/scripts/cgroup2_mount.sh"

[ "$(id -u)" = 0 ] || cannot_run "not root (namespaces, a cgroup and lfpd's hooks need it)"
CGROUP2=$(cgroup2_mount)
[ -n "$CGROUP2" ] || cannot_run "no cgroup v2 is mounted"
command -v ip >/dev/null && command -v socat >/dev/null && command -v curl >/dev/null || cannot_run "ip, socat or curl is missing"
CHROMIUM=/usr/bin/chromium
[ -x "$CHROMIUM" ] || fail "no $CHROMIUM: apt-get install chromium (scripts/setup.sh does)"
if ! command -v npm >/dev/null; then
  echo "web_console: installing nodejs and npm (apt-get)" >&2
  apt-get install -y -qq nodejs npm >/dev/null || fail "npm is missing and apt-get install nodejs npm failed"
fi

# The node packages, in the build directory (the source tree stays clean), again when the lock changes.
node_dir=$(dirname "$LFP_WEB")/test-node
mkdir -p "$node_dir"
cp "$here/package.json" "$here/playwright.config.mjs" "$here/console.spec.mjs" "$node_dir/"
if ! cmp -s "$here/package-lock.json" "$node_dir/package-lock.json" || [ ! -d "$node_dir/node_modules/@playwright/test" ]; then
  cp "$here/package-lock.json" "$node_dir/"
  (cd "$node_dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error) ||
    fail "npm ci failed in $node_dir"
fi

tag="lfpweb$$"
NS_A="$tag-a" NS_B="$tag-b"
IP_A=10.197.0.1 IP_B=10.197.0.2
CG="$CGROUP2/$tag"
work=$(mktemp -d /tmp/lfp-web-test.XXXXXX)
chmod 755 "$work"
SOCK="$work/lfpd.sock"
pids=()
daemon_pid=""
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for ns in "$NS_A" "$NS_B"; do  # (and whatever else this test left in its namespaces)
    ip netns pids "$ns" 2>/dev/null | grep -vx "${daemon_pid:-none}" | xargs -r kill 2>/dev/null || true
  done
  [ -n "$daemon_pid" ] && { kill "$daemon_pid" 2>/dev/null; wait "$daemon_pid" 2>/dev/null || true; }
  if [ -d "$CG" ]; then echo 1 > "$CG/cgroup.kill" 2>/dev/null || true; sleep 0.2; rmdir "$CG" 2>/dev/null || true; fi
  if mountpoint -q "$work/bpf" 2>/dev/null; then
    "$LFPD" --detach --bpf-pin "$work/bpf" --log-level warn || true
    umount "$work/bpf" || true
  fi
  ip netns del "$NS_A" 2>/dev/null || true
  ip netns del "$NS_B" 2>/dev/null || true
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
    echo "== lfpd's log" >&2; cat "$work/lfpd.log" >&2 2>/dev/null || true
    echo "== lfp-web's output" >&2; cat "$work"/web*.out >&2 2>/dev/null || true
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$NS_A"
ip netns add "$NS_B"
ip link add veth-a netns "$NS_A" type veth peer name veth-b netns "$NS_B"
ip -n "$NS_A" addr add "$IP_A/24" dev veth-a
ip -n "$NS_B" addr add "$IP_B/24" dev veth-b
for ns in "$NS_A" "$NS_B"; do ip -n "$ns" link set lo up; done
ip -n "$NS_A" link set veth-a up
ip -n "$NS_B" link set veth-b up
mkdir "$CG" "$work/bpf"
mount -t bpf bpf "$work/bpf"

# The remote side: a web server on 80 and a server that says hi on 8080.
printf 'HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhello\n' > "$work/response"
nsenter --net="/run/netns/$NS_B" socat TCP-LISTEN:80,fork,reuseaddr SYSTEM:"cat $work/response" &
pids+=($!)
nsenter --net="/run/netns/$NS_B" socat TCP-LISTEN:8080,fork,reuseaddr SYSTEM:"echo hi" &
pids+=($!)
cp /usr/bin/curl "$work/not-curl"
# Runs a command as the sandbox's host: in the cgroup (joined first), then in namespace A.
cat > "$work/in-sandbox" <<EOF
#!/bin/sh
echo \$\$ > "$CG/cgroup.procs" && exec nsenter --net="/run/netns/$NS_A" "\$@"
EOF
chmod 755 "$work/in-sandbox"

# lfpd in namespace A, governing only the child cgroup, with the user-space path prompts need.
nsenter --net="/run/netns/$NS_A" "$LFPD" --config none --socket "$SOCK" --state-dir "$work/state" --cgroup "$CG" \
  --bpf-pin "$work/bpf" --queue 7353 --pend-timeout-ms 30000 --log-level info 2>>"$work/lfpd.log" &
daemon_pid=$!
for _ in $(seq 600); do
  "$LFP" --socket "$SOCK" show providers >/dev/null 2>&1 && break
  kill -0 "$daemon_pid" 2>/dev/null || fail "lfpd did not start"
  sleep 0.05
done
"$LFP" --socket "$SOCK" apply "$src/examples/ale-demo-policy.json" >/dev/null
"$LFP" --socket "$SOCK" apply "$here/prompt-policy.json" >/dev/null
in_a() { nsenter --net="/run/netns/$NS_A" "$@"; }

# Starts lfp-web in namespace A (not in the cgroup: its connects are not the policy's business); the
# address it gives, token included, in $started_url.
start_web() {
  local name=$1; shift
  nsenter --net="/run/netns/$NS_A" "$LFP_WEB" "$@" >"$work/$name.out" 2>&1 &  # (nsenter execs it: $! is lfp-web)
  pids+=($!)
  for _ in $(seq 100); do
    started_url=$(grep -o 'http://[^ ]*token=[0-9a-f]*' "$work/$name.out" 2>/dev/null) && return
    sleep 0.05
  done
  fail "lfp-web did not start: $(cat "$work/$name.out")"
}
start_web web --socket "$SOCK" --listen 127.0.0.1:8470
url=$started_url web_pid=${pids[-1]}
start_web web-down --socket "$work/no-lfpd.sock" --listen 127.0.0.1:8471
down_url=$started_url
token=${url##*token=}

echo "== bad input"
expect_refused() {  # CODE TEXT ARGS...: lfp-web exits with CODE and says TEXT
  local code=$1 text=$2 out rc=0; shift 2
  out=$(in_a timeout 10 "$LFP_WEB" --socket "$SOCK" "$@" 2>&1) || rc=$?
  [ "$rc" = "$code" ] && grep -qF -- "$text" <<<"$out" || fail "lfp-web $*: exit $rc, '$out' (wanted exit $code, '$text')"
  echo "lfp-web $*: $out"
}
expect_refused 2 "'' is not a port (1 to 65535)" --listen 127.0.0.1:
expect_refused 2 "'nohost' is not an IP address" --listen nohost:8470
expect_refused 2 "not a loopback address" --listen "$IP_A:8470"
expect_refused 2 "not a loopback address" --listen "[::]:8470"
expect_refused 1 "cannot listen there" --listen 127.0.0.1:8470
status=$(in_a curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8470/api/state)
[ "$status" = 401 ] || fail "the API without the token answered $status, not 401"
body=$(in_a curl -s -b "lfp_web_8471=${down_url##*token=}" http://127.0.0.1:8471/api/state)
grep -q '"code":"NOT_RUNNING"' <<<"$body" || fail "lfp-web without lfpd: $body"
echo "lfp-web without lfpd: $body"

echo "== Playwright and Chromium"
shots=""
if [ "${UPDATE_SCREENSHOTS:-}" = 1 ]; then shots="$src/docs/img"; mkdir -p "$shots"; fi
(cd "$node_dir" && in_a env LFP_WEB_URL="$url" LFP_WEB_DOWN_URL="$down_url" IN_SANDBOX="$work/in-sandbox" \
  NOT_CURL="$work/not-curl" REMOTE="$IP_B" SCREENSHOT_DIR="$shots" CHROMIUM="$CHROMIUM" \
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 ./node_modules/.bin/playwright test)

echo "== lfp-web run by nobody: lfpd's roles decide (a reader, who does not see root's drop)"
nsenter --net="/run/netns/$NS_A" setpriv --reuid 65534 --regid 65534 --clear-groups "$LFP_WEB" --socket "$SOCK" --listen 127.0.0.1:8472 >"$work/web-nobody.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q token= "$work/web-nobody.out" && break; sleep 0.05; done
cookie="lfp_web_8472=$(grep -o 'token=[0-9a-f]*' "$work/web-nobody.out" | cut -d= -f2)"
session=$(in_a curl -s -b "$cookie" http://127.0.0.1:8472/api/state | grep -o '"session":{[^}]*}')
grep -q '"role":"reader"' <<<"$session" || fail "lfp-web run by nobody: not a reader: $session $(cat "$work/web-nobody.out")"
mine=$(in_a curl -s -b "lfp_web_8470=$token" -X POST -H 'Content-Type: application/json' -d '{"template": {}}' http://127.0.0.1:8470/api/netevents)
theirs=$(in_a curl -s -b "$cookie" -X POST -H 'Content-Type: application/json' -d '{"template": {}}' http://127.0.0.1:8472/api/netevents)
grep -q '"total":0' <<<"$mine" && fail "root's lfp-web lists no net events: $mine"
grep -q '"total":0' <<<"$theirs" || fail "nobody's lfp-web lists root's net events: $theirs"
echo "as nobody: $session, $theirs"

echo "== lfpd gone: lfp-web says so and keeps serving"
kill "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true; daemon_pid=""
body=$(in_a curl -s -b "lfp_web_8470=$token" http://127.0.0.1:8470/api/prompts)
grep -q '"code":"NOT_RUNNING"' <<<"$body" || fail "lfp-web after lfpd stopped: $body"
kill -0 "$web_pid" || fail "lfp-web died when lfpd stopped"
echo "$body"
echo "web_console: passed"
