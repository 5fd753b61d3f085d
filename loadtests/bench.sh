#!/usr/bin/env bash
# Builds suma-auth and the load generator in release, then runs the combined
# benchmark on each backend: the embedded default (SQLite + mail files), and
# PostgreSQL + Redis with one instance and with three behind the harness's own
# round-robin. The harness starts and stops the servers itself (a fresh data
# directory; a fresh database, dropped afterwards; an empty Redis logical
# database, flushed afterwards) and measures this machine's limits (Argon2id,
# RS256 signing, GET /health) in the same run, so every figure is printed with
# its ratio to them. Each run also writes a JSON and an HTML report.
#
# Usage: loadtests/bench.sh [extra `bench` options, e.g. --json or --client-threads 1]
#
# Environment knobs:
#   CARGO_TARGET_DIR   where cargo builds (binaries under $CARGO_TARGET_DIR/release)
#   BENCH_BACKENDS     what to run (default "embedded postgres:1 postgres:3")
#   BENCH_DURATION     measured seconds per run (default 10)
#   BENCH_WARMUP       unmeasured seconds before each run (default 1)
#   BENCH_OUT          report directory (default $CARGO_TARGET_DIR/loadtest-reports)
#   BENCH_SKIP_BUILD   set to 1 to use already built binaries
#   BENCH_KEEP_DATA    set to 1 to keep the data directories (server logs, mails)
#   PG_PORT, REDIS_PORT  PostgreSQL (trust auth, user postgres) and Redis on 127.0.0.1
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

target_dir="${CARGO_TARGET_DIR:-target}"
server_bin="$target_dir/release/suma-auth"
harness_bin="$target_dir/release/suma-auth-loadtests"
backends="${BENCH_BACKENDS:-embedded postgres:1 postgres:3}"
duration="${BENCH_DURATION:-10}"
warmup="${BENCH_WARMUP:-1}"
out_dir="${BENCH_OUT:-$target_dir/loadtest-reports}"
pg_port="${PG_PORT:-5432}"
redis_port="${REDIS_PORT:-6379}"

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

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

keep=()
if [[ "${BENCH_KEEP_DATA:-0}" == "1" ]]; then
    keep=(--keep)
fi

echo "bench.sh: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
status=0
for backend in $backends; do
    case "$backend" in
        embedded)
            args=(--backend embedded)
            ;;
        postgres:*)
            instances="${backend#postgres:}"
            if ! port_open "$pg_port" || ! port_open "$redis_port"; then
                echo "bench.sh: skipping $backend: no PostgreSQL on 127.0.0.1:$pg_port or no Redis on 127.0.0.1:$redis_port" >&2
                continue
            fi
            args=(--backend postgres --instances "$instances" --pg-port "$pg_port" --redis-port "$redis_port")
            ;;
        *)
            echo "bench.sh: unknown backend $backend (embedded, postgres:N)" >&2
            exit 2
            ;;
    esac
    echo "bench.sh: === $backend ===" >&2
    if ! "$harness_bin" bench \
        --server-bin "$server_bin" \
        --duration "$duration" \
        --warmup "$warmup" \
        --out-dir "$out_dir" \
        "${args[@]}" "${keep[@]}" "$@"; then
        status=1
        echo "bench.sh: $backend failed" >&2
    fi
    echo >&2
done
echo "bench.sh: load average after: $(cut -d' ' -f1-3 /proc/loadavg); reports in $out_dir" >&2
exit "$status"
