#!/usr/bin/env bash
# Builds suma-auth and the load generator in release, starts the server in embedded
# mode (SQLite + mail files) on 127.0.0.1 with a fresh data directory, registers and
# verifies users, runs the combined benchmark, then stops the server and removes the
# data directory. All traffic goes to 127.0.0.1.
#
# Usage: loadtests/bench.sh [extra `bench` options, e.g. --json or --client-threads 1]
#
# Environment knobs:
#   CARGO_TARGET_DIR   where cargo builds (binaries under $CARGO_TARGET_DIR/release)
#   BENCH_USERS        users to register and verify (default 64)
#   BENCH_DURATION     measured seconds per run (default 10)
#   BENCH_WARMUP       unmeasured seconds before each run (default 1)
#   BENCH_PORT         server port (default: a free port)
#   BENCH_SKIP_BUILD   set to 1 to use already built binaries
#   BENCH_KEEP_DATA    set to 1 to keep the data directory (server log, mails, users.json)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

target_dir="${CARGO_TARGET_DIR:-target}"
server_bin="$target_dir/release/suma-auth"
harness_bin="$target_dir/release/suma-auth-loadtests"
users="${BENCH_USERS:-64}"
duration="${BENCH_DURATION:-10}"
warmup="${BENCH_WARMUP:-1}"

if [[ "${BENCH_SKIP_BUILD:-0}" != "1" ]]; then
    echo "bench.sh: building suma-auth and suma-auth-loadtests (release)…" >&2
    cargo build --release -p suma-auth -p suma-auth-loadtests
fi
for bin in "$server_bin" "$harness_bin"; do
    if [[ ! -x "$bin" ]]; then
        echo "bench.sh: $bin is missing; build it first" >&2
        exit 1
    fi
done

port="${BENCH_PORT:-$("$harness_bin" free-port)}"
base_url="http://127.0.0.1:$port"
data_dir="$(mktemp -d "${TMPDIR:-/tmp}/suma-auth-bench.XXXXXX")"
server_log="$data_dir/server.log"
server_pid=""

cleanup() {
    local status=$?
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        # The server drains within its shutdown timeout; don't wait forever.
        for _ in $(seq 1 100); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ $status -ne 0 && -f "$server_log" ]]; then
        echo "bench.sh: last lines of the server log:" >&2
        tail -n 20 "$server_log" >&2 || true
    fi
    if [[ "${BENCH_KEEP_DATA:-0}" == "1" ]]; then
        echo "bench.sh: kept $data_dir" >&2
    else
        rm -rf "$data_dir"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rss() {
    awk '/^VmRSS/ {printf "%.1f MB", $2 / 1024}' "/proc/$server_pid/status" 2>/dev/null || echo "n/a"
}

# Embedded mode: no database, Redis or SMTP settings may leak in from the caller's
# environment. The rate limits are raised because every request comes from one IP.
echo "bench.sh: starting $server_bin serve on $base_url (DATA_DIR=$data_dir)" >&2
env -u DATABASE_URL -u DB_HOST -u DB_PORT -u DB_NAME -u DB_USER -u DB_PASSWORD -u DB_SSLMODE \
    -u REDIS_ENDPOINT -u REDIS_AUTH_TOKEN \
    -u SMTP_HOST -u SMTP_PORT -u SMTP_USERNAME -u SMTP_PASSWORD -u SMTP_TLS -u SENDGRID_API_KEY \
    -u DD_AGENT_HOST -u TRUSTED_PROXIES \
    HOST=127.0.0.1 \
    PORT="$port" \
    PUBLIC_URL="$base_url" \
    DATA_DIR="$data_dir" \
    ENVIRONMENT=development \
    LOG_LEVEL=warn \
    RATE_LIMIT_LOGIN=1000000 \
    RATE_LIMIT_REGISTER=1000000 \
    RATE_LIMIT_PASSWORD_RESET=1000000 \
    RATE_LIMIT_OTP=1000000 \
    MFA_CHALLENGES_PER_HOUR=1000000 \
    "$server_bin" serve >"$server_log" 2>&1 &
server_pid=$!

# Prints how long the server took to answer GET /ready with 200 (target: < 0.3 s).
"$harness_bin" wait-ready --base-url "$base_url" --timeout 30 --pid "$server_pid" >&2
echo "bench.sh: server RSS when ready: $(rss)" >&2

"$harness_bin" setup \
    --base-url "$base_url" \
    --users "$users" \
    --mail-dir "$data_dir/mail" \
    --out "$data_dir/users.json"
echo "bench.sh: server RSS after setup: $(rss)" >&2

"$harness_bin" bench \
    --base-url "$base_url" \
    --users "$data_dir/users.json" \
    --duration "$duration" \
    --warmup "$warmup" \
    "$@"
echo "bench.sh: server RSS after the bench: $(rss)" >&2
