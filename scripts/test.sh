#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and API tests against real
# PostgreSQL and Redis, then the offline infrastructure checks and the browser
# test of the pages (their tools are installed once into ~/.cache/suma-auth).
# Uses the PostgreSQL and Redis on 127.0.0.1 when they answer; otherwise starts
# throwaway ones (installing the Debian packages when missing) and
# stops them afterwards. Each test creates and drops its own database and uses
# its own Redis key prefix, so tests run in parallel and leave nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."

# Builds are cached outside the clone so repeated runs skip rebuilding.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/suma-auth/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

PG_PORT="${TEST_PG_PORT:-5432}"
REDIS_PORT="${TEST_REDIS_PORT:-6379}"
cleanup_cmds=()
cleanup() {
  for cmd in "${cleanup_cmds[@]}"; do eval "$cmd" || true; done
}
trap cleanup EXIT

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

need_pkg() {
  if ! command -v "$1" >/dev/null 2>&1 && ! compgen -G "/usr/lib/postgresql/*/bin/$1" >/dev/null; then
    echo "installing $2 ..."
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2") >/dev/null
  fi
}

# The TLS test runs a PostgreSQL cluster of its own (server binaries, openssl).
need_pkg initdb postgresql
need_pkg openssl openssl

if port_open "$PG_PORT"; then
  export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:$PG_PORT/postgres}"
else
  need_pkg initdb postgresql
  bin=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -1)
  PG_PORT=55432
  pgdir=$(mktemp -d /tmp/suma-pg.XXXXXX)
  chown -R postgres "$pgdir" 2>/dev/null || true
  as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
  as_pg "$bin/initdb -D $pgdir/data -U postgres -A trust" >/dev/null
  as_pg "$bin/pg_ctl -D $pgdir/data -o '-p $PG_PORT -k $pgdir -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off' -l $pgdir/log -w start" >/dev/null
  cleanup_cmds+=("as_pg '$bin/pg_ctl -D $pgdir/data -m immediate stop' >/dev/null; rm -rf '$pgdir'")
  export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
fi

if port_open "$REDIS_PORT"; then
  export TEST_REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:$REDIS_PORT}"
else
  need_pkg redis-server redis-server
  REDIS_PORT=56379
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --pidfile "/tmp/suma-redis-$REDIS_PORT.pid" >/dev/null
  cleanup_cmds+=("kill \$(cat /tmp/suma-redis-$REDIS_PORT.pid) 2>/dev/null")
  export TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
fi

echo "postgres: $TEST_DATABASE_URL  redis: $TEST_REDIS_URL"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace --quiet "$@"

# Checks beyond cargo, against the binary the tests just built: the infrastructure
# (Dockerfile, compose, workflows, Terraform, dashboards) and the pages in a browser.
export SUMA_AUTH_BIN="$CARGO_TARGET_DIR/debug/suma-auth"
./scripts/infra-checks.sh
./scripts/checks/browser.sh
