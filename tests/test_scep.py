"""SCEP (RFC 8894) with Debian's scepclient (micromdm scep 2.1): enrollment
with a challenge password (a one-time enrollment secret), pending while
approvers decide, renewal with the certificate; and with our own client
(enroll/scepmsg.py's request side) for what scepclient does not send:
CertPoll, GetCert, GetCRL, hostile messages. Every certificate checked by
``openssl verify`` and pkilint."""

import json
import subprocess
import time

import pytest
from cryptography import x509

from ca.records import serial_hex, serial_to_db
from enroll.settings import EnrollSettings
from ra.approvals import ApprovalPolicy
from tests.conftest import need
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
