"""Per-issuer response policies, responder key types, and HTTP/1.0."""

import subprocess

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509 import ocsp

from tests.conftest import pkilint, self_signed
from tests.test_va_http import port_of, raw_http
from tests.test_va_openssl import _post, _request
from tests.va_fixtures import make_va
from va import fastocsp as core
from va.issuers import IssuerEntry
from va.presign import presign
from va.signing import Signer
from va.store import GOOD, StatusRecord

pytestmark = pytest.mark.twin  # through the façades: `make test-python` runs it on the twins


@pytest.fixture
def make(tmp_path, service):
    threads = []

    def build(**policies):
        env, thread = make_va(tmp_path, service, policies=policies)
        threads.append(thread)
        return env

    yield build
    for thread in threads:
        thread.stop()


def _unissued_request(env, tmp_path, *extra) -> bytes:
    req = tmp_path / "u.der"
    subprocess.run(
        [
            "openssl",
            "ocsp",
            *extra,
            "-issuer",
            env.files / "issuing.pem",
            "-serial",
            "0x4242",
            "-reqout",
            req,
        ],
        check=True,
        capture_output=True,
    )
    return req.read_bytes()


def test_unissued_unknown(make, tmp_path):
    env = make(unissued="unknown")
    _, body, _ = _post(env.url, _unissued_request(env, tmp_path))
    response = ocsp.load_der_ocsp_response(body)
    assert response.certificate_status == ocsp.OCSPCertStatus.UNKNOWN
    assert "1.3.6.1.5.5.7.48.1.9" not in [e.oid.dotted_string for e in response.extensions]
    (tmp_path / "r.der").write_bytes(body)
    assert pkilint("lint_ocsp_response", tmp_path / "r.der", "--document-format", "DER") == []


def test_unissued_unauthorized(make, tmp_path):
    env = make(unissued="unauthorized")
    _, body, _ = _post(env.url, _unissued_request(env, tmp_path, "-no_nonce"))
    assert body == core.UNAUTHORIZED
    _, body, _ = _post(env.url, _request(env, tmp_path, "good.pem", "-no_nonce"))
    assert ocsp.load_der_ocsp_response(body).certificate_status == ocsp.OCSPCertStatus.GOOD


def test_nonce_policy_ignore_serves_the_presigned_response(make, tmp_path):
    env = make(nonce_policy="ignore")
    _, body, headers = _post(env.url, _request(env, tmp_path, "good.pem"))  # with a nonce
    response = ocsp.load_der_ocsp_response(body)
    assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert list(response.extensions) == []  # RFC 9919 (formerly RFC 5019): no nonce echoed
    assert "max-age" in headers["Cache-Control"]
    assert not env.serving.worker.hot  # a request with a nonce never comes twice
    result = env.ocsp()  # openssl warns about the missing nonce but verifies
    assert "Response verify OK" in result.stderr and ": good" in result.stdout
    assert "WARNING: no nonce in response" in result.stderr


def test_responder_id_by_name(make, tmp_path):
    env = make(responder_id="name")
    _, body, _ = _post(env.url, _request(env, tmp_path, "good.pem"))
    response = ocsp.load_der_ocsp_response(body)
    assert response.responder_name == response.certificates[0].subject
    assert response.responder_key_hash is None
    assert "Response verify OK" in env.ocsp().stderr


@pytest.mark.parametrize("kind", ["rsa", "ed25519", "p384"])
def test_responder_key_types(kind, tmp_path):

    key = {
        "rsa": lambda: rsa.generate_private_key(65537, 2048),
        "ed25519": ed25519.Ed25519PrivateKey.generate,
        "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    }[kind]()
    cert = self_signed(key, f"{kind} CA")
    now = cert.not_valid_before_utc
    entry = IssuerEntry(id=1, name="x", certificate=cert, signer=Signer(key, cert), delegated=False)
    stored = presign(entry, 1, b"\x05", StatusRecord(GOOD, 0, -1, 0), int(now.timestamp()))
    response = ocsp.load_der_ocsp_response(stored.der)
    args = {
        "rsa": lambda: (padding.PKCS1v15(), response.signature_hash_algorithm),
        "ed25519": lambda: (),
        "p384": lambda: (ec.ECDSA(response.signature_hash_algorithm),),
    }[kind]()
    key.public_key().verify(response.signature, response.tbs_response_bytes, *args)
    if kind == "p384":
        assert response.signature_hash_algorithm.name == "sha384"
    (tmp_path / "r.der").write_bytes(stored.der)
    assert pkilint("lint_ocsp_response", tmp_path / "r.der", "--document-format", "DER") == []


def test_http_1_0_closes_after_the_answer(va_env, tmp_path):
    data = _request(va_env, tmp_path, "good.pem", "-no_nonce")
    reply = raw_http(
        port_of(va_env),
        b"POST /ocsp HTTP/1.0\r\nContent-Type: "
        b"application/ocsp-request\r\nContent-Length: "
        + str(len(data)).encode()
        + b"\r\n\r\n"
        + data,
    )
    assert reply.startswith(b"HTTP/1.1 200") and b"Connection: close" in reply
    body = reply.partition(b"\r\n\r\n")[2]
    assert ocsp.load_der_ocsp_response(body).certificate_status == ocsp.OCSPCertStatus.GOOD
