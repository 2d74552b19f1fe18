"""EST (RFC 7030) driven by curl and openssl as the RFC's appendix does:
base64 PKCS#10 in, ``openssl pkcs7 -print_certs`` out, over TLS with HTTP
Basic and with client certificates; every certificate checked by
``openssl verify`` and pkilint."""

import base64
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import func, select

from ca.records import serial_hex
from ra.approvals import ApprovalPolicy
from store.tables.enroll import enroll_transactions
from store.tables.ra import enrollment_secrets
from tests.conftest import make_csr, need, new_key, pkilint
from tests.enroll_fixtures import device_pki, start_enroll, stop_enroll

pytestmark = pytest.mark.slow
SANS = ("dns:r1.devices.example.com",)


@pytest.fixture
def env(loop, service, tmp_path):
    env, runners = start_enroll(loop, device_pki(service), tmp_path)
    yield env
    stop_enroll(loop, runners)


def curl(env, path: str, *args: str, data: bytes | None = None, cert=None) -> tuple[int, bytes]:
    """curl against the EST listener: (HTTP status, body)."""
    need("curl")
    out = env.directory / "curl.out"
    command = [
        "curl", "-sS", "--cacert", str(env.root_pem), "-o", str(out), "-w", "%{http_code}",
        "--max-time", "20", f"{env.est}{path}", *args,
    ]  # fmt: skip
    if cert is not None:
        command += ["--cert", str(cert[0]), "--key", str(cert[1])]
    if data is not None:
        command += ["-H", "Content-Type: application/pkcs10", "--data-binary", "@-"]
    done = subprocess.run(command, input=data, capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return int(done.stdout), out.read_bytes()


def csr_b64(key, sans=SANS, cn="router-1") -> bytes:
    pem = make_csr(cn, sans, key=key)
    der = x509.load_pem_x509_csr(pem).public_bytes(serialization.Encoding.DER)
    return base64.encodebytes(der)


def print_certs(env, body: bytes) -> list[x509.Certificate]:
    """``base64 -d | openssl pkcs7 -inform DER -print_certs``, as RFC 7030's examples."""
    der = base64.b64decode(body)
    done = subprocess.run(
        ["openssl", "pkcs7", "-inform", "DER", "-print_certs"],
        input=der,
        capture_output=True,
        check=True,
    )
    return x509.load_pem_x509_certificates(done.stdout)


def write_pair(env, name: str, cert: x509.Certificate, key) -> tuple:
    cert_path = env.directory / f"{name}.pem"
    key_path = env.directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def verify(env, cert: x509.Certificate) -> None:
    chain = env.ra.ca.chain("devices")
    untrusted = env.directory / "untrusted.pem"
    untrusted.write_bytes(chain[0].public_bytes(serialization.Encoding.PEM))
    leaf = env.directory / "leaf.pem"
    leaf.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    done = subprocess.run(
        [
            "openssl", "verify", "-CAfile", str(env.root_pem), "-untrusted", str(untrusted),
            "-purpose", "sslclient", str(leaf),
        ],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert not [f for f in pkilint("lint_pkix_cert", leaf) if "ERROR" in f or "FATAL" in f]


def test_cacerts_csrattrs_enroll_with_basic_then_reenroll_with_the_certificate(env):
    status, body = curl(env, "/cacerts")
    assert status == 200
    chain = print_certs(env, body)
    assert set(chain) == set(env.ra.ca.chain("devices"))  # the device CA and the root

    status, body = curl(env, "/csrattrs")
    assert status == 204  # no label, no credential: no profile known
    status, body = curl(env, "/csrattrs", "-u", "router-1:x")
    assert status == 204  # a wrong secret says nothing of the entity
    secret = env.secret()
    status, body = curl(env, "/csrattrs", "-u", f"router-1:{secret}")
    assert status == 200
    parsed = subprocess.run(
        ["openssl", "asn1parse", "-inform", "DER"],
        input=base64.b64decode(body),
        capture_output=True,
        check=True,
    ).stdout.decode()
    assert "challengePassword" in parsed and "id-ecPublicKey" in parsed

    key = new_key()
    status, body = curl(env, "/simpleenroll", "-u", f"router-1:{secret}", data=csr_b64(key))
    assert status == 200, body
    (cert,) = print_certs(env, body)
    assert cert.subject.rfc4514_string() == "CN=router-1,O=Example Networks"
    verify(env, cert)

    # The secret was used once: a second enrollment with it is refused.
    status, body = curl(env, "/simpleenroll", "-u", f"router-1:{secret}", data=csr_b64(new_key()))
    assert status == 401 and b"already been used" in body

    # Re-enrollment: the certificate is the TLS client certificate, the
    # new CSR has its subject and SANs (RFC 7030 4.2.2).
    pair = write_pair(env, "current", cert, key)
    new = new_key()
    req = csr_b64(new)
    status, body = curl(env, "/simplereenroll", data=req, cert=pair)
    assert status == 400 and b"subject" in body  # CN=router-1 alone is not the subject
    csr = make_csr_with_subject(new, cert.subject, SANS)
    status, body = curl(env, "/simplereenroll", data=csr, cert=pair)
    assert status == 200, body
    (renewed,) = print_certs(env, body)
    assert renewed.public_key() == new.public_key() and renewed.subject == cert.subject
    verify(env, renewed)
    record = env.ra.ca.get_certificate("devices", renewed.serial_number)
    assert record.end_entity_id == env.ra.get_entity("router-1").id
    audit = env.ra.ca.audit
    del audit


def make_csr_with_subject(key, subject: x509.Name, sans) -> bytes:
    from cryptography.hazmat.primitives import hashes

    names = [x509.DNSName(s.partition(":")[2]) for s in sans]
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    return base64.encodebytes(csr.public_bytes(serialization.Encoding.DER))


def test_reenrollment_with_the_same_key_renews_each_time(env):
    """RFC 7030 4.2.2: simplereenroll renews with the same key too. An RSA
    CSR (PKCS#1 v1.5 signs deterministically) of the same key and names is
    the same bytes each time: not a repeat of the enrollment, nor of the
    last renewal, but a renewal of the certificate presented."""
    key = new_key("rsa-2048")
    csr = make_csr_with_subject(
        key, x509.Name.from_rfc4514_string("CN=router-1,O=Example Networks"), SANS
    )
    status, body = curl(env, "/simpleenroll", "-u", f"router-1:{env.secret()}", data=csr)
    assert status == 200, body
    (cert,) = print_certs(env, body)
    status, body = curl(env, "/simplereenroll", data=csr, cert=write_pair(env, "c1", cert, key))
    assert status == 200, body
    (renewed,) = print_certs(env, body)
    assert renewed.serial_number != cert.serial_number
    status, body = curl(env, "/simplereenroll", data=csr, cert=write_pair(env, "c2", renewed, key))
    assert status == 200, body
    (again,) = print_certs(env, body)
    assert again.serial_number not in (cert.serial_number, renewed.serial_number)
    assert again.public_key() == key.public_key()


def test_bad_requests_are_refused_and_change_nothing(env):
    def counts():
        with env.ra.store.read() as conn:
            return (
                conn.execute(select(func.count()).select_from(enroll_transactions)).scalar(),
                len(env.ra.ca.list_certificates("devices")),
            )

    before = counts()
    secret = env.secret()
    # No credential: 401 with a Basic challenge.
    status, body = curl(env, "/simpleenroll", data=csr_b64(new_key()))
    assert status == 401
    # Not base64.
    status, body = curl(env, "/simpleenroll", "-u", f"router-1:{secret}", data=b"%%%")
    assert status == 400 and b"base64" in body
    # Base64 of garbage.
    status, body = curl(
        env, "/simpleenroll", "-u", f"router-1:{secret}", data=base64.b64encode(b"\x30\x03abc")
    )
    assert status == 400
    # A CSR whose signature does not verify (a byte of it changed).
    der = bytearray(base64.b64decode(csr_b64(new_key())))
    der[-5] ^= 1
    status, body = curl(
        env, "/simpleenroll", "-u", f"router-1:{secret}", data=base64.b64encode(bytes(der))
    )
    assert status == 400 and b"signature" in body
    # A SAN the entity may not have: refused by the RA, the secret given back.
    status, body = curl(
        env,
        "/simpleenroll",
        "-u",
        f"router-1:{secret}",
        data=csr_b64(new_key(), sans=("dns:www.example.org",)),
    )
    assert status == 403 and b"may not have the SAN" in body
    # A wrong secret, another entity's name.
    status, _ = curl(env, "/simpleenroll", "-u", "router-1:WRONG", data=csr_b64(new_key()))
    assert status == 401
    status, _ = curl(env, "/simpleenroll", "-u", f"nobody:{secret}", data=csr_b64(new_key()))
    assert status == 401
    # Re-enrollment without a client certificate.
    status, body = curl(env, "/simplereenroll", data=csr_b64(new_key()))
    assert status == 401
    # An unknown label.
    status, _ = curl(env, "/nolabel/cacerts")
    assert status == 404
    assert counts() == before
    with env.ra.store.read() as conn:
        assert conn.execute(select(enrollment_secrets.c.status)).scalars().all() == ["unused"]
    # And the secret still works.
    status, body = curl(env, "/simpleenroll", "-u", f"router-1:{secret}", data=csr_b64(new_key()))
    assert status == 200, body


def test_an_expired_or_revoked_secret_and_certificate_are_refused(env, loop):
    secret_id = env.ra.create_secret("router-1", actor="test")
    env.ra.revoke_secret(secret_id["id"], actor="test")
    status, body = curl(
        env, "/simpleenroll", "-u", f"router-1:{secret_id['secret']}", data=csr_b64(new_key())
    )
    assert status == 401 and b"revoked" in body

    key = new_key()
    status, body = curl(env, "/simpleenroll", "-u", f"router-1:{env.secret()}", data=csr_b64(key))
    (cert,) = print_certs(env, body)
    env.ra.revoke("devices", cert.serial_number, "keyCompromise", actor="test")
    pair = write_pair(env, "revoked", cert, key)
    status, body = curl(
        env, "/simplereenroll", data=make_csr_with_subject(new_key(), cert.subject, SANS), cert=pair
    )
    assert status == 401 and b"revoked" in body, body
    assert f"serial {serial_hex(cert.serial_number)}".encode() in body


def test_a_request_that_waits_for_approvers_is_answered_202_then_issued(loop, service, tmp_path):
    env, runners = start_enroll(loop, device_pki(service), tmp_path, policy=ApprovalPolicy(issue=1))
    try:
        env.ra.users.create("ann", "ra-officer", with_token=True, actor="test")
        secret = env.secret()
        request = csr_b64(new_key())
        status, body = curl(env, "/simpleenroll", "-u", f"router-1:{secret}", data=request)
        assert status == 202, body
        assert b"approvers" in body
        # Asked again before the approval: 202 again, nothing more queued.
        status, _ = curl(env, "/simpleenroll", "-u", f"router-1:{secret}", data=request)
        assert status == 202
        (pending,) = env.ra.approvals.list(status="pending", after=None, limit=10)
        assert pending.payload["via"] == {
            "protocol": "est",
            "credential": pending.payload["via"]["credential"],
        }
        env.ra.approve(pending.id, actor="ann")
        status, body = curl(env, "/simpleenroll", "-u", f"router-1:{secret}", data=request)
        assert status == 200, body
        (cert,) = print_certs(env, body)
        # The same request under another secret is not the same device's.
        status, _ = curl(env, "/simpleenroll", "-u", f"router-1:{env.secret()}", data=request)
        assert status == 401
        assert cert.serial_number == env.ra.approvals.get(pending.id).result_serial
    finally:
        stop_enroll(loop, runners)


def test_serverkeygen_for_a_profile_with_approvers_is_refused_and_changes_nothing(
    loop, service, tmp_path
):
    """Whether the Basic user names the entity or is left empty (the secret
    alone names it), a key made here is never queued for approvers."""
    env, runners = start_enroll(loop, device_pki(service), tmp_path, policy=ApprovalPolicy(issue=1))
    try:
        secret = env.secret()
        for user in ("router-1", ""):
            status, body = curl(
                env, "/serverkeygen", "-u", f"{user}:{secret}", data=csr_b64(new_key())
            )
            assert status == 403 and b"approvers" in body, body
        assert env.ra.approvals.list(status="pending", after=None, limit=10) == []
        with env.ra.store.read() as conn:
            assert conn.execute(select(func.count()).select_from(enroll_transactions)).scalar() == 0
            assert conn.execute(select(enrollment_secrets.c.status)).scalars().all() == ["unused"]
    finally:
        stop_enroll(loop, runners)


def test_serverkeygen_returns_the_key_and_certificate_as_multipart(env):
    import email

    secret = env.secret()
    out = env.directory / "multipart"
    done = subprocess.run(
        [
            "curl", "-sS", "--cacert", str(env.root_pem), "-D", "-", "-o", str(out),
            "-u", f"router-1:{secret}", "-H", "Content-Type: application/pkcs10",
            "--data-binary", "@-", f"{env.est}/serverkeygen",
        ],
        input=csr_b64(new_key()),
        capture_output=True,
        check=True,
    )  # fmt: skip
    headers = done.stdout.decode()
    assert " 200" in headers.splitlines()[0]
    content_type = next(
        line.split(":", 1)[1].strip()
        for line in headers.splitlines()
        if line.lower().startswith("content-type:")
    )
    message = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + out.read_bytes()
    )
    key_part, cert_part = message.get_payload()
    assert key_part.get_content_type() == "application/pkcs8"
    key = serialization.load_der_private_key(key_part.get_payload(decode=True), None)
    (cert,) = print_certs(env, cert_part.get_payload().encode())
    assert cert.public_key() == key.public_key()
    # The key is nowhere in the store.
    record = env.ra.ca.get_certificate("devices", cert.serial_number)
    assert not record.has_private_key


def test_each_issuing_ca_is_a_label_when_none_are_configured(env):
    status, body = curl(env, "/devices/cacerts")
    assert status == 200 and set(print_certs(env, body)) == set(env.ra.ca.chain("devices"))
    status, body = curl(env, "/issuing/cacerts")
    assert status == 200 and set(print_certs(env, body)) == set(env.ra.ca.chain("issuing"))
    assert curl(env, "/root/cacerts")[0] == 404  # self-signed: no label
    # An entity of the devices CA does not enroll under the issuing CA's label.
    status, body = curl(env, "/issuing/simpleenroll", "-u", f"router-1:{env.secret()}",
                        data=csr_b64(new_key()))  # fmt: skip
    assert status == 403 and b"issued by CA 'devices'" in body
    status, body = curl(env, "/devices/simpleenroll", "-u", f"router-1:{env.secret()}",
                        data=csr_b64(new_key()))  # fmt: skip
    assert status == 200, body


def test_the_issuing_transaction_marks_the_request_issued_with_its_ca(env):
    """The transaction row names the CA and serial from the issuing
    transaction on, so the same request sent again is answered with the
    same certificate."""
    secret = env.secret()
    request = csr_b64(new_key())
    status, body = curl(env, "/simpleenroll", "-u", f"router-1:{secret}", data=request)
    assert status == 200, body
    (cert,) = print_certs(env, body)
    with env.ra.store.read() as conn:
        (row,) = conn.execute(select(enroll_transactions)).all()
    assert (row.status, row.ca, row.serial) == ("issued", "devices", serial_hex(cert.serial_number))
    status, again = curl(env, "/simpleenroll", "-u", f"router-1:{secret}", data=request)
    assert status == 200, again
    assert print_certs(env, again) == [cert]


def test_a_tls_handshake_that_never_comes_is_closed_at_the_request_deadline(
    loop, service, tmp_path
):
    """A connection that sends no ClientHello is held to request_timeout,
    not to asyncio's 60 s handshake timeout."""
    import socket
    import time

    from enroll.settings import EnrollSettings

    settings = EnrollSettings(ca="devices", request_timeout=1.0)
    env, runners = start_enroll(loop, device_pki(service), tmp_path, settings=settings)
    try:
        with socket.create_connection(("127.0.0.1", env.est_port), timeout=10) as sock:
            began = time.monotonic()
            try:
                assert sock.recv(1) == b""
            except TimeoutError:
                pytest.fail("the connection was still open after 10 s")
            assert time.monotonic() - began < 5
    finally:
        stop_enroll(loop, runners)


def test_a_label_for_one_entity_renews_only_its_certificates(loop, service, tmp_path):
    """[enroll.labels.fleet] entity = router-2: router-1's certificate does
    not renew there (it does on its own paths)."""
    from enroll.settings import EnrollSettings, Label
    from tests.enroll_fixtures import DEVICE

    settings = EnrollSettings(ca="devices", labels=(Label("fleet", "devices", None, "router-2"),))
    entities = (DEVICE, {**DEVICE, "name": "router-2"})
    env, runners = start_enroll(
        loop, device_pki(service), tmp_path, settings=settings, entities=entities
    )
    try:
        key = new_key()
        status, body = curl(
            env, "/simpleenroll", "-u", f"router-1:{env.secret()}", data=csr_b64(key)
        )
        assert status == 200, body
        (cert,) = print_certs(env, body)
        pair = write_pair(env, "r1", cert, key)
        csr = make_csr_with_subject(new_key(), cert.subject, SANS)
        status, body = curl(env, "/fleet/simplereenroll", data=csr, cert=pair)
        assert status == 403 and b"router-2" in body, body
        assert len(env.ra.entity_certificates("router-1")) == 1
    finally:
        stop_enroll(loop, runners)
