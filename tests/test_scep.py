"""SCEP (RFC 8894) with Debian's scepclient (micromdm scep 2.1): enrollment
with a challenge password (a one-time enrollment secret), pending while
approvers decide, renewal with the certificate; and with our own client
(enroll/scepmsg.py's request side) for what scepclient does not send:
CertPoll, GetCert, GetCRL, hostile messages. Every certificate checked by
``openssl verify`` and pkilint."""

import base64
import json
import os
import subprocess
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from ca.records import serial_hex, serial_to_db
from enroll import scepmsg
from enroll.settings import EnrollSettings
from ra.approvals import ApprovalPolicy
from store.tables.enroll import enroll_transactions
from tests.conftest import need, self_signed
from tests.enroll_fixtures import device_pki, start_enroll, stop_enroll
from tests.test_est import verify

pytestmark = pytest.mark.slow


@pytest.fixture
def env(loop, service, tmp_path):
    # scepclient 2.1 signs with SHA-1: old devices' algorithms, allowed here.
    settings = EnrollSettings(ca="devices", scep_legacy=True)
    env, runners = start_enroll(loop, device_pki(service), tmp_path, settings=settings)
    yield env
    stop_enroll(loop, runners)


def scepclient(env, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    tool = need("scepclient", "scep")
    return subprocess.run(
        [tool, "-server-url", env.scep, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=env.directory,
    )


def test_scepclient_enrolls_with_a_challenge_password(env):
    key = env.directory / "dev.key"
    cert = env.directory / "dev.pem"
    done = scepclient(
        env, "-challenge", env.secret(), "-private-key", str(key), "-certificate", str(cert),
        "-cn", "router-1",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    issued = x509.load_pem_x509_certificate(cert.read_bytes())
    print(issued.subject)


def issued(env, entity: str = "router-1") -> list:
    return env.ra.entity_certificates(entity)


def test_scepclient_is_told_bad_alg_where_old_algorithms_are_not_allowed(loop, service, tmp_path):
    env, runners = start_enroll(loop, device_pki(service), tmp_path)
    try:
        secret = env.secret()
        done = scepclient(env, "-challenge", secret, "-private-key", str(tmp_path / "k"))
        assert done.returncode != 0 and "badAlg" in done.stdout + done.stderr
        assert issued(env) == []
        assert [s["status"] for s in env.ra.list_secrets("router-1")] == ["unused"]
    finally:
        stop_enroll(loop, runners)


def test_scepclient_enrolls_again_with_the_same_key_and_a_new_secret(env):
    """scepclient's transactionID is a digest of the public key: a device
    that keeps its key and is given a new secret (its certificate expired,
    say) sends the transactionID of its finished enrollment again. A wrong
    secret is still refused and changes nothing."""
    key = env.directory / "dev.key"
    cert_path = env.directory / "dev.pem"
    args = ["-private-key", str(key), "-certificate", str(cert_path), "-cn", "router-1"]
    done = scepclient(env, "-challenge", env.secret(), *args)
    assert done.returncode == 0, done.stdout + done.stderr
    first = x509.load_pem_x509_certificate(cert_path.read_bytes())
    for leftover in ("dev.pem", "csr.pem", "self.pem"):
        (env.directory / leftover).unlink(missing_ok=True)
    done = scepclient(env, "-challenge", "NOTASECRET", *args)
    assert done.returncode != 0 and len(issued(env)) == 1
    # A new secret whose request the RA refuses changes nothing.
    (env.directory / "csr.pem").unlink(missing_ok=True)
    refused = env.secret()
    env.ra.update_entity("router-1", {"status": "disabled"}, actor="test")
    done = scepclient(env, "-challenge", refused, *args)
    assert done.returncode != 0 and len(issued(env)) == 1
    env.ra.update_entity("router-1", {"status": "active"}, actor="test")
    with env.ra.store.read() as conn:
        rows = conn.execute(select(enroll_transactions.c.transaction_id)).scalars().all()
    assert len(rows) == 1 and "/done/" not in rows[0]
    assert [s["status"] for s in env.ra.list_secrets("router-1")].count("unused") == 1
    (env.directory / "csr.pem").unlink(missing_ok=True)
    done = scepclient(env, "-challenge", env.secret(), *args)
    assert done.returncode == 0, done.stdout + done.stderr
    second = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert second.serial_number != first.serial_number
    assert second.public_key() == first.public_key()
    assert len(issued(env)) == 2


def test_scepclient_enrolls_then_renews_and_ocsp_knows_the_certificates(env):
    from sqlalchemy import select

    from store.tables.outbox import outbox

    key = env.directory / "dev.key"
    cert_path = env.directory / "dev.pem"
    args = ["-private-key", str(key), "-certificate", str(cert_path), "-cn", "router-1"]
    done = scepclient(env, "-challenge", env.secret(), *args)
    assert done.returncode == 0, done.stdout + done.stderr
    first = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert first.subject.rfc4514_string() == "CN=router-1,O=Example Networks"
    verify(env, first)
    # Renewal: scepclient signs a RenewalReq with the certificate it has.
    renewed_path = env.directory / "renewed.pem"
    cert_path.rename(renewed_path)
    done = scepclient(
        env, "-private-key", str(key), "-certificate", str(renewed_path), "-cn", "router-1"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    records = issued(env)
    assert len(records) == 2
    second = next(r.certificate for r in records if r.serial != first.serial_number)
    verify(env, second)
    # Each went out through the outbox: the VAs answer for it at once.
    with env.ra.store.read() as conn:
        events = set(conn.execute(select(outbox.c.serial, outbox.c.event)).all())
    for cert in (first, second):
        assert (serial_to_db(cert.serial_number), "issued") in events
    # The audit log names the protocol and the credential of each.
    from store.tables.audit import audit_log

    with env.ra.store.read() as conn:
        rows = conn.execute(
            select(audit_log.c.action, audit_log.c.detail).where(
                audit_log.c.action.in_(("ra.enroll", "ra.renew"))
            )
        ).all()
    assert [r.action for r in rows] == ["ra.enroll", "ra.renew"]
    enrolled, renewed = (json.loads(r.detail)["via"] for r in rows)
    assert enrolled["protocol"] == "scep" and enrolled["credential"].startswith("secret es-")
    assert renewed["credential"] == f"certificate devices/{serial_hex(first.serial_number)}"


def test_scepclient_waits_while_approvers_decide_then_gets_the_certificate(loop, service, tmp_path):
    settings = EnrollSettings(ca="devices", scep_legacy=True)
    env, runners = start_enroll(
        loop, device_pki(service), tmp_path, settings=settings, policy=ApprovalPolicy(issue=1)
    )
    try:
        env.ra.users.create("ann", "ra-officer", with_token=True, actor="test")
        cert_path = tmp_path / "dev.pem"
        tool = need("scepclient", "scep")
        # scepclient sleeps 30 s after PENDING, then sends its request again.
        client = subprocess.Popen(
            [
                tool, "-server-url", env.scep, "-challenge", env.secret(),
                "-private-key", str(tmp_path / "dev.key"), "-certificate", str(cert_path),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 20
            while not env.ra.approvals.list(status="pending", after=None, limit=5):
                assert time.monotonic() < deadline and client.poll() is None
                time.sleep(0.2)
            (pending,) = env.ra.approvals.list(status="pending", after=None, limit=5)
            assert pending.payload["via"]["protocol"] == "scep"
            env.ra.approve(pending.id, actor="ann")
            output, _ = client.communicate(timeout=60)
        finally:
            client.kill()
        assert client.returncode == 0, output
        assert "PENDING" in output
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        assert cert.serial_number == env.ra.approvals.get(pending.id).result_serial
        verify(env, cert)
    finally:
        stop_enroll(loop, runners)


# -- our own client: what scepclient does not send -------------------------------------


class Device:
    """A SCEP client on enroll/scepmsg.py's request side: a key, a
    self-signed signer certificate, the RA's certificate from GetCACert."""

    def __init__(self, env, key=None):
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.hazmat.primitives.serialization import pkcs7

        self.env = env
        self.key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.cert = self_signed(self.key, "SCEP SIGNER", ca=False)
        status, body = self.http("GET", "?operation=GetCACert")
        assert status == 200
        (self.ra,) = [
            c
            for c in pkcs7.load_der_pkcs7_certificates(body)
            if c.subject.rfc4514_string().endswith("SCEP RA")
        ]

    def http(self, method: str, query: str, body: bytes | None = None) -> tuple[int, bytes]:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(self.env.scep + query, data=body, method=method)
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def send(
        self, kind: str, content: bytes, *, txid: str = "tx-1", signer=None, get=False, **options
    ):
        cert, key = signer or (self.cert, self.key)
        message = scepmsg.build_request(
            kind,
            content,
            signer_cert=cert,
            signer_key=key,
            recipient_cert=self.ra,
            transaction_id=txid,
            sender_nonce=os.urandom(16),
            **options,
        )
        if get:  # RFC 8894 4.3: the message base64 (and URL-encoded) in the query
            import urllib.parse

            encoded = base64.b64encode(message).decode()
            if get != "raw":  # "raw": as devices that do not URL-encode it send it
                encoded = urllib.parse.quote(encoded, safe="")
            status, body = self.http("GET", f"?operation=PKIOperation&message={encoded}")
        else:
            status, body = self.http("POST", "?operation=PKIOperation", message)
        assert status == 200, body
        return scepmsg.parse_cert_rep(
            body, signer_cert_expected=self.ra, recipient_key=key, recipient_cert=cert
        )

    def csr(self, secret: str | None, key=None) -> bytes:
        from cryptography.hazmat.primitives import hashes

        builder = x509.CertificateSigningRequestBuilder().subject_name(
            x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "router-1")])
        )
        if secret is not None:
            builder = builder.add_attribute(
                x509.oid.AttributeOID.CHALLENGE_PASSWORD, secret.encode()
            )
        return builder.sign(key or self.key, hashes.SHA256()).public_bytes(
            serialization.Encoding.DER
        )


def _issuer_and_serial(issuer: x509.Name, serial: int) -> bytes:
    from asn1crypto import cms
    from asn1crypto import x509 as ax509

    return cms.IssuerAndSerialNumber(
        {"issuer": ax509.Name.load(issuer.public_bytes()), "serial_number": serial}
    ).dump()


def _issuer_and_subject(issuer: x509.Name, subject: x509.Name) -> bytes:
    from asn1crypto import x509 as ax509

    return scepmsg.IssuerAndSubject(
        {
            "issuer": ax509.Name.load(issuer.public_bytes()),
            "subject": ax509.Name.load(subject.public_bytes()),
        }
    ).dump()


@pytest.fixture
def strict(loop, service, tmp_path):
    """Current algorithms only (the default), approvals for issuance."""
    env, runners = start_enroll(loop, device_pki(service), tmp_path, policy=ApprovalPolicy(issue=1))
    env.ra.users.create("ann", "ra-officer", with_token=True, actor="test")
    yield env
    stop_enroll(loop, runners)


def test_pending_then_certpoll_getcert_and_getcrl(strict):
    from ca.crl_updater import Schedule, run_once
    from revoca.config import load_config

    env = strict
    device = Device(env)
    secret = env.secret()
    reply = device.send("PKCSReq", device.csr(secret), txid="poll-me", get=True)
    assert reply.status == "PENDING" and reply.transaction_id == "poll-me"
    issuer = env.ra.ca.get_ca("devices").certificate.subject
    poll = _issuer_and_subject(issuer, x509.Name([]))
    assert device.send("CertPoll", poll, txid="poll-me").status == "PENDING"
    # Another device cannot poll this transaction.
    assert Device(env).send("CertPoll", poll, txid="poll-me").fail_info == "badRequest"
    (pending,) = env.ra.approvals.list(status="pending", after=None, limit=5)
    # The queued request keeps the device's key and names, not its CSR with
    # the challenge password (the secret) in it.
    assert pending.payload["csr"] is None and secret not in json.dumps(pending.payload)
    assert pending.payload["details"]["key_type"] == "rsa-2048"
    env.ra.approve(pending.id, actor="ann")
    reply = device.send("CertPoll", poll, txid="poll-me")
    assert reply.status == "SUCCESS"
    (cert,) = reply.certificates
    assert cert.public_key() == device.key.public_key()
    verify(env, cert)
    # GetCert: by issuer and serial.
    reply = device.send("GetCert", _issuer_and_serial(issuer, cert.serial_number), txid="gc")
    assert reply.status == "SUCCESS" and reply.certificates == [cert]
    reply = device.send("GetCert", _issuer_and_serial(issuer, 12345), txid="gc2")
    assert reply.status == "FAILURE" and reply.fail_info == "badCertId"
    # GetCRL: the CA's newest CRL, which openssl checks against the CA.
    reply = device.send("GetCRL", _issuer_and_serial(issuer, cert.serial_number), txid="crl")
    assert reply.fail_info == "badCertId"  # no CRL signed yet
    run_once(env.ra.ca, Schedule.from_settings(load_config(None).crl), actor="test")
    reply = device.send("GetCRL", _issuer_and_serial(issuer, cert.serial_number), txid="crl2")
    assert reply.status == "SUCCESS"
    crl = x509.load_der_x509_crl(reply.crl)
    assert crl.issuer == issuer and crl.is_signature_valid(
        env.ra.ca.get_ca("devices").certificate.public_key()
    )


def test_hostile_messages_get_a_fail_info_or_400_and_change_nothing(strict):
    env = strict
    device = Device(env)

    def nothing_changed():
        assert env.ra.approvals.list(status="pending", after=None, limit=5) == []
        assert issued(env) == []

    secret = env.secret()
    # Garbage, truncated, empty: not a SCEP message at all.
    message = scepmsg.build_request(
        "PKCSReq",
        device.csr(secret),
        signer_cert=device.cert,
        signer_key=device.key,
        recipient_cert=device.ra,
        transaction_id="t",
        sender_nonce=os.urandom(16),
    )
    for body in (b"garbage", message[: len(message) // 2], b"\x30\x00"):
        status, text = device.http("POST", "?operation=PKIOperation", body)
        assert status == 400 and b"SCEP" in text, text
    assert device.http("GET", "?operation=Nonsense")[0] == 400
    # SHA-1 and DES3 where old algorithms are not allowed: badAlg.
    assert device.send("PKCSReq", device.csr(secret), digest="sha1").fail_info == "badAlg"
    assert device.send("PKCSReq", device.csr(secret), cipher="des3").fail_info == "badAlg"
    # A CSR without a challenge password, with a wrong one.
    assert device.send("PKCSReq", device.csr(None)).fail_info == "badRequest"
    assert device.send("PKCSReq", device.csr("NOTASECRET")).fail_info == "badRequest"
    # PKCSReq signed with another key than the CSR's.
    other = Device(env)
    reply = device.send("PKCSReq", other.csr(secret), txid="mixed")
    assert reply.fail_info == "badMessageCheck"
    # RenewalReq signed by a certificate that is not ours.
    assert device.send("RenewalReq", device.csr(None), txid="r").fail_info == "badCertId"
    # CertPoll for a transaction that does not exist.
    issuer = env.ra.ca.get_ca("devices").certificate.subject
    poll = _issuer_and_subject(issuer, x509.Name([]))
    assert device.send("CertPoll", poll, txid="none").fail_info == "badCertId"
    nothing_changed()
    assert [s["status"] for s in env.ra.list_secrets("router-1")] == ["unused"]
    # The secret works once; a second device with it is refused.
    assert device.send("PKCSReq", device.csr(secret), txid="ok").status == "PENDING"
    reply = other.send("PKCSReq", other.csr(secret), txid="again")
    assert reply.status == "FAILURE" and reply.fail_info == "badRequest"


def test_a_message_signed_a_day_away_from_the_clock_is_bad_time(strict):
    import datetime as dt

    device = Device(strict)
    secret = strict.secret()
    for days in (2, -2):
        when = dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
        reply = device.send("PKCSReq", device.csr(secret), txid=f"t{days}", signing_time=when)
        assert reply.status == "FAILURE" and reply.fail_info == "badTime"
    assert [s["status"] for s in strict.ra.list_secrets("router-1")] == ["unused"]
    when = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    reply = device.send("PKCSReq", device.csr(secret), txid="now", signing_time=when)
    assert reply.status == "PENDING"


def test_a_get_message_whose_base64_is_not_url_encoded_is_read(env):
    """A '+' of base64 left as it is in the query (as some devices send it)
    is not a space (a message of 2 kB without a '+' is as good as impossible)."""
    device = Device(env)
    reply = device.send("PKCSReq", device.csr(env.secret()), txid="raw", get="raw")
    assert reply.status == "SUCCESS", reply
