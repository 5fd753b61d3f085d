#!/usr/bin/env bash
# Browser test of the pages that mailed links open: headless Chromium (Debian's
# `chromium`) with JavaScript off, driven by playwright-core through register ->
# open the mailed link -> confirm -> sign in through the API, and reset -> open
# the link -> new password (a refused one first) -> sign in. Runs the server
# binary on a free port with a fresh DATA_DIR (mail as files) and every
# tests/browser/*.mjs under node's test runner. A screenshot of each page is
# kept in $SUMA_ARTIFACTS (default: $CARGO_TARGET_DIR/browser-artifacts).
#
# Installs what is missing, once, outside the clone: Chromium with apt-get,
# playwright-core with npm into $HOME/.cache/suma-auth/node-<rev>. Skips, saying
# why, only where Chromium cannot be installed.
set -euo pipefail
cd "$(dirname "$0")/../.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/suma-auth/target}"
TOOLS="${SUMA_TOOLS_DIR:-$HOME/.cache/suma-auth}"
NODE_REV=1   # bump when the npm packages change
NODE_DIR="$TOOLS/node-$NODE_REV"
ARTIFACTS="${SUMA_ARTIFACTS:-$CARGO_TARGET_DIR/browser-artifacts}"

apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing $* (once) ..."
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@") >/dev/null 2>&1 || true
  fi
}

CHROMIUM="${CHROMIUM:-$(command -v chromium || true)}"
if [ -z "$CHROMIUM" ]; then
  apt_install chromium fonts-dejavu-core
  CHROMIUM="$(command -v chromium || true)"
fi
if [ -z "$CHROMIUM" ]; then
  echo "browser test SKIPPED: Debian's chromium is not installed and cannot be installed here (needs root and apt-get)"
  exit 0
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt_install nodejs npm
fi
if ! command -v node >/dev/null 2>&1; then
  echo "browser test SKIPPED: node is not installed and cannot be installed here"
  exit 0
fi
# playwright-core 1.65 wants node >= 20; Debian's node 18 gets the last release for it.
if [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ]; then PW=1.65.1; else PW=1.49.1; fi
if [ ! -f "$NODE_DIR/.complete-$PW" ]; then
  echo "installing playwright-core@$PW into $NODE_DIR (once) ..."
  mkdir -p "$NODE_DIR"
  npm install --prefix "$NODE_DIR" --no-audit --no-fund --no-package-lock --silent "playwright-core@$PW"
  touch "$NODE_DIR/.complete-$PW"
fi

BIN="${SUMA_AUTH_BIN:-$CARGO_TARGET_DIR/debug/suma-auth}"
if [ -z "${SUMA_AUTH_BIN:-}" ]; then
  cargo build --quiet --bin suma-auth
fi

work=$(mktemp -d /tmp/suma-browser.XXXXXX)
server_pid=""
# shellcheck disable=SC2329 # invoked by the EXIT trap
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# As a newcomer runs it: development, generated keys, mail as files, PUBLIC_URL
# defaulting to the server itself.
(cd "$work" && exec env -i PATH="$PATH" HOME="$HOME" HOST=127.0.0.1 PORT="$port" \
  DATA_DIR="$work/data" HTTP_WORKERS=2 LOG_LEVEL=warn RATE_LIMIT_PASSWORD_RESET=20 \
  "$BIN" >"$work/server.out" 2>"$work/server.err") &
server_pid=$!
for _ in $(seq 600); do
  if curl -fs "http://127.0.0.1:$port/ready" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then cat "$work/server.err" >&2; echo "the server exited" >&2; exit 1; fi
  sleep 0.1
done
curl -fs "http://127.0.0.1:$port/ready" >/dev/null || { cat "$work/server.err" >&2; exit 1; }

mkdir -p "$ARTIFACTS"
echo "browser test: screenshots go to $ARTIFACTS"
status=0
SUMA_API="http://127.0.0.1:$port" SUMA_MAIL_DIR="$work/data/mail" SUMA_ARTIFACTS="$ARTIFACTS" \
  SUMA_NODE_MODULES="$NODE_DIR/node_modules" CHROMIUM="$CHROMIUM" \
  node --test --test-concurrency=1 tests/browser/*.mjs || status=$?
if [ "$status" != 0 ]; then
  echo "--- server stderr ---" >&2
  tail -50 "$work/server.err" >&2
fi
exit "$status"
