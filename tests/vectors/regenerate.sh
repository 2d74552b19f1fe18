#!/usr/bin/env bash
# Remake the OCSP request vectors from a fresh `revoca demo` PKI.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && revoca demo --dir pki --serve-seconds 0 >/dev/null)
cd "$work/pki"
openssl ocsp -issuer issuing.pem -cert www.pem -reqout "$here/req-sha1-one-certid-nonce.der"
openssl ocsp -issuer issuing.pem -cert www.pem -cert api.pem -no_nonce \
  -reqout "$here/req-sha1-two-certids.der"
openssl ocsp -sha256 -issuer issuing.pem -cert www.pem -no_nonce \
  -reqout "$here/req-sha256-one-certid.der"
# A signed request: a throwaway requestor key and certificate (nothing verifies them).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj "/C=DE/O=Example/CN=Requestor" -keyout requestor.key -out requestor.pem 2>/dev/null
openssl ocsp -issuer issuing.pem -cert www.pem -signer requestor.pem -signkey requestor.key \
  -reqout "$here/req-sha1-signed-nonce.der"
