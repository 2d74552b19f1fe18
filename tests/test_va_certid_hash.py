"""SHA-256 CertIDs get what SHA-1 ones get: RFC 9919 (the lightweight
profile, formerly RFC 5019) recommends SHA-256 over SHA-1, so both are
pre-signed (`presign_algorithms`), answered with the matching CertID and
kept as hot answers and decoded GET paths alike."""

import base64
import time
import urllib.parse
import urllib.request

import pytest
from cryptography.x509 import ocsp

from tests.test_va_http import port_of, raw_http
from tests.test_va_openssl import _post, _request
from va import fastocsp as core
from va.responder import PRESIGNED

pytestmark = pytest.mark.twin  # through the façades: `make test-python` runs it on the twins

DIGESTS = {"-sha1": (core.HASH_SHA1, "sha1"), "-sha256": (core.HASH_SHA256, "sha256")}


def _get(env, request: bytes, headers=None):
    encoded = urllib.parse.quote(base64.b64encode(request).decode(), safe="")
    get = urllib.request.Request(f"{env.url}/{encoded}", headers=headers or {})
    with urllib.request.urlopen(get, timeout=10) as response:
        return response.read(), response.headers, encoded.encode()


@pytest.mark.parametrize("digest", sorted(DIGESTS))
def test_presigned_answer_matches_the_certid(va_env, tmp_path, digest):
    algorithm, name = DIGESTS[digest]
    data = _request(va_env, tmp_path, "good.pem", digest, "-no_nonce")
    (certid,), _ = core.parse_ocsp_request(data)
    assert certid[0] == algorithm
    asked = ocsp.load_der_ocsp_request(data)
    _, body, headers = _post(va_env.url, data)
    # The stored pre-signed response, byte for byte.
    entry = va_env.serving.entries[0]
    stored = va_env.serving.responder.reader.presigned(
        entry.key_prefix, algorithm, certid[3], int(time.time())
    )
    assert stored is not None and body == stored[2]
    assert va_env.serving.worker.hot[data].kind is PRESIGNED
    response = ocsp.load_der_ocsp_response(body)
    assert response.hash_algorithm.name == name
    assert response.issuer_name_hash == asked.issuer_name_hash
    assert response.issuer_key_hash == asked.issuer_key_hash
    assert response.serial_number == asked.serial_number
    assert "max-age" in headers["Cache-Control"] and headers["ETag"]


def test_get_is_cached_for_both(va_env, tmp_path):
    """RFC 9919 GET: the decoded path and the hot answer are kept for a
    SHA-256 request as for a SHA-1 one, and the ETag revalidates."""
    front, worker = va_env.serving.front, va_env.serving.worker
    for digest in sorted(DIGESTS):
        data = _request(va_env, tmp_path, "good.pem", digest, "-no_nonce")
        first, headers, encoded = _get(va_env, data)
        assert front.get_paths[encoded] == data
        kept = worker.hot[data]
        assert kept.kind is PRESIGNED and kept.body == first
        again, again_headers, _ = _get(va_env, data)
        assert again == first and worker.hot[data] is kept
        assert again_headers["ETag"] == headers["ETag"] and "max-age" in headers["Cache-Control"]
        reply = raw_http(
            port_of(va_env),
            b"GET /ocsp/%s HTTP/1.1\r\nHost: x\r\nIf-None-Match: %s\r\n\r\n"
            % (encoded, headers["ETag"].encode()),
        )
        assert reply.startswith(b"HTTP/1.1 304"), digest


def test_openssl_sha256_request_is_presigned(va_env, tmp_path):
    """`openssl ocsp -sha256` verifies the pre-signed answer it gets."""
    result = va_env.ocsp("-sha256", "-no_nonce", "-respout", str(tmp_path / "r.der"))
    assert result.returncode == 0 and "Response verify OK" in result.stderr, result.stderr
    body = (tmp_path / "r.der").read_bytes()
    assert ocsp.load_der_ocsp_response(body).hash_algorithm.name == "sha256"
    assert any(a.body == body and a.kind is PRESIGNED for a in va_env.serving.worker.hot.values())
