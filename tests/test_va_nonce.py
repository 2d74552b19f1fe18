"""Nonces through the VA's HTTP server (RFC 9654 2.1): 16 to 32 octets are
echoed in a fresh signature; 1 to 15 and 33 to 128 get the pre-signed
response, as a request without a nonce does, with its caching headers but
never kept as a hot answer; 0 and over 128 are malformedRequest."""

import pytest
from cryptography.x509 import ocsp

from tests.test_va_openssl import _post, _request
from tests.vectors.make_malformed import nonce_ext, seq, tlv
from va import fastocsp as core
from va.responder import ECHOED_NONCE_OCTETS, nonce_octets

pytestmark = pytest.mark.twin  # through the façades: `make test-python` runs it on the twins


def _with_nonce(request: bytes, octets: int) -> bytes:
    """``request`` (one CertID, no extensions) with a nonce of ``octets``."""
    certid = core.parse_ocsp_request(request)[0][0][4]
    return seq(seq(seq(seq(certid)), tlv(0xA2, seq(nonce_ext(bytes([octets]) * octets)))))


def _cache_control(headers) -> tuple[int, str]:
    """Cache-Control's max-age and its other directives."""
    directives = [d.strip() for d in headers["Cache-Control"].split(",")]
    ages = [int(d[len("max-age=") :]) for d in directives if d.startswith("max-age=")]
    return (ages[0] if ages else -1), ",".join(d for d in directives if "max-age=" not in d)


def _nonces(body: bytes) -> list[bytes]:
    response = ocsp.load_der_ocsp_response(body)
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    return [e.value.nonce for e in response.extensions if e.oid.dotted_string.endswith("48.1.2")]


def test_the_lengths_echoed():
    assert list(ECHOED_NONCE_OCTETS) == list(range(16, 33))
    for octets in (1, 16, 127, 128):
        assert nonce_octets(tlv(0x04, b"\x00" * octets)) == octets


@pytest.mark.parametrize("digest", ["-sha1", "-sha256"])
def test_nonce_lengths(va_env, tmp_path, digest):
    plain = _request(va_env, tmp_path, "good.pem", digest, "-no_nonce")
    _, presigned, presigned_headers = _post(va_env.url, plain)
    assert "max-age" in presigned_headers["Cache-Control"]
    hot = va_env.serving.worker.hot
    assert plain in hot  # a request without a nonce is kept
    for octets in (1, 8, 15, 16, 20, 32, 33, 64, 127, 128):
        request = _with_nonce(plain, octets)
        status, body, headers = _post(va_env.url, request)
        assert status == 200, octets
        if octets in ECHOED_NONCE_OCTETS:
            assert _nonces(body) == [bytes([octets]) * octets], octets
            assert headers["Cache-Control"] == "no-cache" and "ETag" not in headers, octets
        else:
            # Answered as without a nonce: the same pre-signed bytes and headers.
            assert body == presigned and _nonces(body) == [], octets
            # max-age counts down to nextUpdate: a second may pass between the two
            age, rest = _cache_control(headers)
            first_age, first_rest = _cache_control(presigned_headers)
            assert rest == first_rest and 0 <= first_age - age <= 2, octets
            assert headers["ETag"] == presigned_headers["ETag"], octets
        assert request not in hot, octets  # a nonce never comes twice
    for octets in (0, 129, 200):
        _, body, headers = _post(va_env.url, _with_nonce(plain, octets))
        assert body == core.MALFORMED_REQUEST and headers["Cache-Control"] == "no-cache", octets


def test_openssl_nonce_is_echoed(va_env, tmp_path):
    """`openssl ocsp` sends a 16-octet nonce and checks the echo itself."""
    result = va_env.ocsp(
        "-nonce", "-reqout", str(tmp_path / "q.der"), "-respout", str(tmp_path / "r.der")
    )
    assert result.returncode == 0 and "Response verify OK" in result.stderr, result.stderr
    assert "nonce" not in result.stderr.lower(), result.stderr  # no missing or wrong nonce
    nonce = core.parse_ocsp_request((tmp_path / "q.der").read_bytes())[1]
    assert nonce_octets(nonce) == 16
    assert _nonces((tmp_path / "r.der").read_bytes()) == [nonce[2:]]
