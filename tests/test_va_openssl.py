"""The VA answers the real `openssl ocsp` client, and pkilint and cryptography
accept every kind of response it produces."""

import base64
import subprocess
import urllib.parse
import urllib.request

import pytest
from cryptography.x509 import ocsp

from tests.conftest import pkilint
from tests.va_fixtures import make_va

pytestmark = pytest.mark.twin  # through the façades: `make test-python` runs it on the twins


def status_line(result, name="good.pem") -> str:
    assert result.returncode == 0, result.stderr
    assert "Response verify OK" in result.stderr, result.stderr
    return next(
        line
        for line in result.stdout.splitlines()
        if line.startswith(str(name)) or line.split(":")[0].endswith(name)
    )


@pytest.mark.parametrize("nonce", [True, False], ids=["nonce", "no-nonce"])
@pytest.mark.parametrize("digest", ["-sha1", "-sha256"])
def test_good_revoked_held(va_env, nonce, digest):
    extra = [digest] + ([] if nonce else ["-no_nonce"])
    assert status_line(va_env.ocsp(*extra, cert="good.pem")).endswith(": good")
    revoked = va_env.ocsp(*extra, cert="revoked.pem")
    assert status_line(revoked, "revoked.pem").endswith(": revoked")
    assert "Reason: keyCompromise" in revoked.stdout
    held = va_env.ocsp(*extra, cert="held.pem")
    assert status_line(held, "held.pem").endswith(": revoked")
    assert "Reason: certificateHold" in held.stdout


def test_never_issued_serial_is_revoked_per_rfc6960(va_env, tmp_path):
    result = subprocess.run(
        [
            "openssl",
            "ocsp",
            "-issuer",
            va_env.files / "issuing.pem",
            "-serial",
            "0x0badc0ffee",
            "-url",
            va_env.url,
            "-CAfile",
            va_env.files / "chain.pem",
            "-resp_text",
            "-respout",
            tmp_path / "r.der",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0 and "Response verify OK" in result.stderr, result.stderr
    assert "0x0badc0ffee: revoked" in result.stdout
    assert "Revocation Time: Jan  1 00:00:00 1970 GMT" in result.stdout
    assert "certificateHold" in result.stdout
    # RFC 6960 4.4.8 extended revoked definition (OpenSSL 3.0 labels the OID "valid").
    response = ocsp.load_der_ocsp_response((tmp_path / "r.der").read_bytes())
    oids = [e.oid.dotted_string for e in response.extensions]
    assert "1.3.6.1.5.5.7.48.1.9" in oids


def test_get_request(va_env, tmp_path):
    req = tmp_path / "req.der"
    subprocess.run(
        [
            "openssl",
            "ocsp",
            "-issuer",
            va_env.files / "issuing.pem",
            "-cert",
            va_env.files / "revoked.pem",
            "-no_nonce",
            "-reqout",
            req,
        ],
        check=True,
        capture_output=True,
    )
    encoded = urllib.parse.quote(base64.b64encode(req.read_bytes()).decode(), safe="")
    with urllib.request.urlopen(f"{va_env.url}/{encoded}", timeout=10) as response:
        body = response.read()
        headers = response.headers
    (tmp_path / "resp.der").write_bytes(body)
    result = subprocess.run(
        [
            "openssl",
            "ocsp",
            "-respin",
            tmp_path / "resp.der",
            "-issuer",
            va_env.files / "issuing.pem",
            "-cert",
            va_env.files / "revoked.pem",
            "-CAfile",
            va_env.files / "chain.pem",
        ],
        capture_output=True,
        text=True,
    )
    assert "Response verify OK" in result.stderr and ": revoked" in result.stdout
    # RFC 9919 (formerly RFC 5019 6.2) caching headers on a cacheable response.
    assert headers["Content-Type"] == "application/ocsp-response"
    assert "max-age=" in headers["Cache-Control"] and "public" in headers["Cache-Control"]
    assert headers["Last-Modified"] and headers["Expires"] and headers["ETag"]


def _post(url: str, data: bytes, headers=None):
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/ocsp-request", **(headers or {})}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read(), response.headers


def _request(env, tmp_path, cert="good.pem", *extra) -> bytes:
    req = tmp_path / "r.der"
    subprocess.run(
        [
            "openssl",
            "ocsp",
            *extra,
            "-issuer",
            env.files / "issuing.pem",
            "-cert",
            env.files / cert,
            "-reqout",
            req,
        ],
        check=True,
        capture_output=True,
    )
    return req.read_bytes()


@pytest.mark.parametrize("cert", ["good.pem", "revoked.pem", "held.pem", "unissued"])
@pytest.mark.parametrize("nonce", [True, False], ids=["nonce", "no-nonce"])
def test_pkilint_and_cryptography_accept_every_response(va_env, tmp_path, cert, nonce):
    args = [] if nonce else ["-no_nonce"]
    if cert == "unissued":
        req = tmp_path / "r.der"
        subprocess.run(
            [
                "openssl",
                "ocsp",
                *args,
                "-issuer",
                va_env.files / "issuing.pem",
                "-serial",
                "0x1234",
                "-reqout",
                req,
            ],
            check=True,
            capture_output=True,
        )
        data = req.read_bytes()
    else:
        data = _request(va_env, tmp_path, cert, *args)
    status, body, _ = _post(va_env.url, data)
    assert status == 200
    (tmp_path / "resp.der").write_bytes(body)
    assert pkilint("lint_ocsp_response", tmp_path / "resp.der", "--document-format", "DER") == []
    response = ocsp.load_der_ocsp_response(body)
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    signer = response.certificates[0]
    signer.public_key().verify(
        response.signature, response.tbs_response_bytes, *_verify_args(signer, response)
    )
    issuer = va_env.service.get_ca("issuing").certificate
    signer.verify_directly_issued_by(issuer)


def _verify_args(cert, response):
    from cryptography.hazmat.primitives.asymmetric import ec

    if isinstance(cert.public_key(), ec.EllipticCurvePublicKey):
        return (ec.ECDSA(response.signature_hash_algorithm),)
    return ()


def test_signed_by_the_ca_key(tmp_path, service):
    env, thread = make_va(tmp_path, service, sign_with_ca_key=True, signer=False)
    try:
        result = env.ocsp("-no_nonce")
        assert status_line(result).endswith(": good")
        nonce = env.ocsp()
        assert status_line(nonce).endswith(": good")
        data = _request(env, tmp_path)
        _, body, _ = _post(env.url, data)
        response = ocsp.load_der_ocsp_response(body)
        assert response.certificates == []  # the CA signs for itself: no certificate needed
        ca = service.get_ca("issuing").certificate
        assert response.responder_key_hash is not None
        ca.public_key().verify(
            response.signature, response.tbs_response_bytes, *_verify_args(ca, response)
        )
        (tmp_path / "resp.der").write_bytes(body)
        assert (
            pkilint("lint_ocsp_response", tmp_path / "resp.der", "--document-format", "DER") == []
        )
    finally:
        thread.stop()
