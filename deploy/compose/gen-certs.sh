#!/bin/sh
# One-shot certificate generator of the compose stack (runs in the postgres image, which
# ships openssl). Writes a throwaway CA and a server certificate for the host name
# "postgres", so the server connects with DB_SSLMODE=verify-full as it does to RDS.
#   $TLS_SERVER_DIR  server.crt + server.key, read by PostgreSQL only (owned by postgres, 0600)
#   $TLS_CA_DIR      ca.crt, mounted read-only into the server (DB_SSLROOTCERT)
# The CA key lives in a temporary directory and is gone when this script ends, so nothing
# else can ever be signed by this CA. A second run keeps certificates that still verify.
set -eu
server_dir="${TLS_SERVER_DIR:-/tls/server}"
ca_dir="${TLS_CA_DIR:-/tls/ca}"
host="${TLS_SERVER_NAME:-postgres}"
days="${TLS_DAYS:-825}"
owner="${TLS_KEY_OWNER:-postgres:postgres}"

if [ -s "$server_dir/server.crt" ] && [ -s "$server_dir/server.key" ] && [ -s "$ca_dir/ca.crt" ] \
  && openssl verify -CAfile "$ca_dir/ca.crt" "$server_dir/server.crt" >/dev/null 2>&1 \
  && openssl x509 -checkend 604800 -noout -in "$server_dir/server.crt" >/dev/null; then
  echo "TLS certificates for $host are present and valid"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT INT TERM
umask 077

cat >"$work/ca.ext" <<EXT
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EXT
cat >"$work/server.ext" <<EXT
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:$host, DNS:localhost, IP:127.0.0.1
authorityKeyIdentifier = keyid
subjectKeyIdentifier = hash
EXT

openssl ecparam -name prime256v1 -genkey -noout -out "$work/ca.key"
openssl req -new -key "$work/ca.key" -subj "/CN=suma-auth compose CA" -out "$work/ca.csr"
openssl x509 -req -in "$work/ca.csr" -signkey "$work/ca.key" -days "$days" -sha256 \
  -extfile "$work/ca.ext" -out "$work/ca.crt" 2>/dev/null

openssl ecparam -name prime256v1 -genkey -noout -out "$work/server.key"
openssl req -new -key "$work/server.key" -subj "/CN=$host" -out "$work/server.csr"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
  -set_serial "0x$(openssl rand -hex 16)" -days "$days" -sha256 \
  -extfile "$work/server.ext" -out "$work/server.crt" 2>/dev/null
openssl verify -CAfile "$work/ca.crt" "$work/server.crt" >/dev/null

mkdir -p "$server_dir" "$ca_dir"
cp "$work/server.crt" "$work/server.key" "$server_dir/"
chown "$owner" "$server_dir/server.crt" "$server_dir/server.key"
chmod 0755 "$server_dir"
chmod 0600 "$server_dir/server.key"
chmod 0644 "$server_dir/server.crt"
cp "$work/ca.crt" "$ca_dir/ca.crt"
chmod 0755 "$ca_dir"
chmod 0644 "$ca_dir/ca.crt"
echo "TLS certificates for $host written (CA valid $days days)"
