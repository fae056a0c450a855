#!/usr/bin/env bash
# scripts/tls-cert.sh [DIR] [NAME...]: a self-signed certificate for SIP
# over TLS, made on this machine (never committed: a private key in a
# repository is a key everyone has).
#
# Writes DIR/cert.pem and DIR/key.pem (DIR defaults to data/demo/tls), for
# the names given (default: 127.0.0.1, ::1 and localhost), an ECDSA P-256
# key, valid 825 days. The key file is readable by its owner only.
# Then, in the config's [server] table:
#   sip_tls = "127.0.0.1:5061"
#   tls_cert = "tls/cert.pem"   # relative to the config file's folder
#   tls_key = "tls/key.pem"
# Phones must trust cert.pem (or be told not to verify, for a test).
set -euo pipefail

DIR="${1:-data/demo/tls}"
shift || true
NAMES=("$@")
[[ ${#NAMES[@]} -gt 0 ]] || NAMES=(127.0.0.1 ::1 localhost)
command -v openssl >/dev/null 2>&1 || { echo "scripts/tls-cert.sh: openssl is not installed (apt-get install openssl)" >&2; exit 2; }

san=""
for name in "${NAMES[@]}"; do
    if [[ "$name" =~ ^[0-9.]+$ || "$name" == *:* ]]; then
        san="${san:+$san,}IP:$name"
    else
        san="${san:+$san,}DNS:$name"
    fi
done
mkdir -p "$DIR"
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
    -subj "/CN=${NAMES[0]}" -addext "subjectAltName=$san" \
    -keyout "$DIR/key.pem" -out "$DIR/cert.pem" 2>/dev/null
chmod 644 "$DIR/cert.pem"
echo "wrote $DIR/cert.pem and $DIR/key.pem for $san"
