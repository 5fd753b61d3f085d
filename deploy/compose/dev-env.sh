#!/usr/bin/env bash
# Writes the .env that `docker compose up` reads, with fresh development secrets: a random
# PostgreSQL password and Redis token, a data-encryption key, and an RS256 key pair made by
# `suma-auth keys generate` ($SUMA_AUTH_BIN, else `cargo run`). Never overwrites a file.
#   deploy/compose/dev-env.sh [OUT]     (default: .env at the repository root)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$root/.env}"
if [ -e "$out" ]; then
  echo "$out exists; remove it to make new secrets" >&2
  exit 1
fi

keys="$(mktemp -d)"
trap 'rm -rf "$keys"' EXIT
if [ -n "${SUMA_AUTH_BIN:-}" ]; then
  "$SUMA_AUTH_BIN" keys generate --out "$keys" >/dev/null
else
  (cd "$root" && cargo run --quiet --bin suma-auth -- keys generate --out "$keys" >/dev/null)
fi

# A PEM file as one double-quoted line with \n escapes (compose turns them back into newlines).
pem_line() { printf '"%s"' "$(awk '{ printf "%s\\n", $0 }' "$1")"; }
token() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }

umask 077
{
  echo "# Development secrets written by deploy/compose/dev-env.sh. Never commit this file."
  echo "POSTGRES_PASSWORD=$(token)"
  echo "REDIS_AUTH_TOKEN=$(token)"
  echo "DATA_ENCRYPTION_KEY=$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
  echo "JWT_PRIVATE_KEY=$(pem_line "$keys/jwt-private.pem")"
  echo "JWT_PUBLIC_KEY=$(pem_line "$keys/jwt-public.pem")"
} >"$out"
echo "wrote $out"
