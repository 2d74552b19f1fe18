"""The EST listener driven by tests/est_client.py, a client written from
RFC 7030: every operation over TLS 1.2 and 1.3, channel bindings
(tls-unique, tls-exporter) made on the client's own connection,
bootstrap certificates of a manufacturer CA, renewal with an expired
certificate, hostile requests, the same request on many connections at
once, labels, serverkeygen and the listener's metrics. Every certificate
issued is checked by ``openssl verify`` (and by pkilint in the test of
every operation)."""

import base64
import http.client
import ssl
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import func, select

from enroll.settings import EnrollSettings, Label
from ra.approvals import ApprovalPolicy
from store.tables.enroll import enroll_transactions
from tests.conftest import new_key
from tests.enroll_fixtures import DEVICE, device_pki, start_enroll, stop_enroll
from tests.est_client import EstClient, EstClientError, EstResponse, make_csr
from tests.test_est import verify as verify_and_lint
from tests.test_est import write_pair

pytestmark = pytest.mark.slow

SANS = (x509.DNSName("r1.devices.example.com"),)
DEVICE_NAME = x509.Name.from_rfc4514_string("CN=router-1,O=Example Networks")
CHALLENGE_PASSWORD_OID = bytes.fromhex("06092a864886f70d010907")
VERSIONS = pytest.mark.parametrize("tls", ["1.2", "1.3"])


class Clock:
    """The CA's clock: now, moved by ``offset``."""

    def __init__(self):
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class Started:
    env: object
    clock: Clock


@pytest.fixture
def start(loop, make_service, tmp_path):
    """start(policy=, settings=, entities=) -> Started, once per test (the
    store is the test's); stopped after the test. The CA's clock is
    ``Started.clock``."""
    runners = []

    def go(*, policy=None, settings=None, entities=()) -> Started:
        clock = Clock()
        pki = device_pki(make_service(clock=clock))
        env, started = start_enroll(
            loop, pki, tmp_path, policy=policy, settings=settings, entities=entities
        )
        runners.extend(started)
        return Started(env, clock)

    yield go
    stop_enroll(loop, runners)


@pytest.fixture
def env(start):
    return start().env


def client(env, tls="1.3", **kwargs) -> EstClient:
    return EstClient(env.est, env.root_pem, tls=tls, **kwargs)


def basic(env, tls="1.3") -> tuple[EstClient, str]:
    """A client with HTTP Basic: router-1 and a new enrollment secret."""
    secret = env.secret()
    return client(env, tls, basic=("router-1", secret)), secret


def counts(env) -> tuple[int, int]:
    """(transactions, certificates of the device CA)."""
    with env.ra.store.read() as conn:
        transactions = conn.execute(select(func.count()).select_from(enroll_transactions)).scalar()
    return transactions, len(env.ra.ca.list_certificates("devices"))


def secret_status(env) -> list[str]:
    return [s["status"] for s in env.ra.list_secrets()]


def refused(answer, status: int, *words: str) -> EstResponse:
    assert isinstance(answer, EstResponse), answer
    assert answer.status == status, (answer.status, answer.text)
    assert answer.headers["content-type"].startswith("text/plain")
    for word in words:
        assert word in answer.text, answer.text
    return answer


def verify(env, cert: x509.Certificate) -> None:
    """``openssl verify`` of an issued certificate under the root, for a
    TLS client (pkilint too: tests/test_est.py's, in the test of every
    operation)."""
    untrusted = env.directory / "untrusted.pem"
    untrusted.write_bytes(env.ra.ca.chain("devices")[0].public_bytes(serialization.Encoding.PEM))
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


def bound_csr(est: EstClient, key, subject=DEVICE_NAME, sans=SANS) -> bytes:
    return make_csr(key, subject, sans=sans, challenge_password=est.channel_binding())


def metric(env, tls: str, name: str) -> dict[str, float]:
    """The samples of one family on the EST listener's /metrics."""
    with client(env, tls) as est:
        answer = est.request("GET", "/metrics")
    assert answer.status == 200
    out = {}
    for line in answer.text.splitlines():
        if line.startswith(name + "{"):
            labels, _, value = line.rpartition(" ")
            out[labels[len(name) :]] = float(value)
    return out


# -- every operation ------------------------------------------------------------------


@VERSIONS
def test_every_operation_with_basic_and_renewal_with_the_certificate(env, tls):
    anonymous = client(env, tls)
    chain = anonymous.cacerts()
    assert set(chain) == set(env.ra.ca.chain("devices"))
    assert anonymous.version == f"TLSv{tls}"
    assert anonymous.csrattrs().status == 204  # no credential, no label: no profile known
    anonymous.close()

    est, _ = basic(env, tls)
    attrs = est.csrattrs()
    assert isinstance(attrs, bytes) and attrs[0] == 0x30
    assert CHALLENGE_PASSWORD_OID in attrs

    key = new_key()
    cert = est.simpleenroll(bound_csr(est, key))
    assert isinstance(cert, x509.Certificate), cert
    assert cert.subject == DEVICE_NAME and cert.public_key() == key.public_key()
    verify_and_lint(env, cert)
    assert est.connections == 1  # the binding and the requests went on one connection
    est.close()

    # Renewal: the certificate is the TLS client certificate, the CSR has
    # its subject and SANs (RFC 7030 4.2.2), and this connection's binding.
    pair = write_pair(env, f"current-{tls}", cert, key)
    renewer = client(env, tls, client_cert=pair)
    new = new_key()
    renewed = renewer.simplereenroll(bound_csr(renewer, new))
    assert isinstance(renewed, x509.Certificate), renewed
    assert renewed.subject == cert.subject and renewed.public_key() == new.public_key()
    verify_and_lint(env, renewed)
    renewer.close()

    # Server-side key generation: the CSR names the key type and names.
    est, _ = basic(env, tls)
    made = est.serverkeygen(bound_csr(est, new_key("rsa-2048")))
    assert isinstance(made, tuple), made
    private_key, issued = made
    assert issued.public_key() == private_key.public_key()
    assert private_key.key_size == 2048
    verify_and_lint(env, issued)
    assert not env.ra.ca.get_certificate("devices", issued.serial_number).has_private_key
    est.close()

    samples = metric(env, tls, "revoca_enroll_requests_total")
    assert samples == {'{protocol="est",result="issued"}': 3.0}


# -- channel bindings -----------------------------------------------------------------


@VERSIONS
def test_a_binding_of_another_connection_is_refused_and_nothing_is_issued(env, tls):
    est, _ = basic(env, tls)
    other = client(env, tls)
    binding = other.channel_binding()
    assert binding != est.channel_binding()
    before = counts(env)
    csr = make_csr(new_key(), DEVICE_NAME, sans=SANS, challenge_password=binding)
    for operation in (est.simpleenroll, est.serverkeygen):
        refused(
            operation(csr), 400, "channel binding", "tls-unique" if tls == "1.2" else "tls-exporter"
        )
    assert counts(env) == before
    assert secret_status(env) == ["unused"]

    # Not a binding at all, or that of a connection since closed.
    other.close()
    for value in ("not-a-binding", binding):
        refused(
            est.simpleenroll(make_csr(new_key(), DEVICE_NAME, sans=SANS, challenge_password=value)),
            400,
            "channel binding",
        )
    assert counts(env) == before and secret_status(env) == ["unused"]

    # The right one is issued, on the same connection as the refusals.
    cert = est.simpleenroll(bound_csr(est, new_key()))
    assert isinstance(cert, x509.Certificate), cert
    verify(env, cert)
    assert secret_status(env) == ["used"]
    est.close()
    assert metric(env, tls, "revoca_enroll_requests_total") == {
        '{protocol="est",result="issued"}': 1.0,
        '{protocol="est",result="refused"}': 4.0,
    }


def test_tls_unique_and_tls_exporter_are_the_connections_own(env):
    one, two = client(env, "1.3"), client(env, "1.3")
    assert len(one.tls_exporter()) == 32 and one.tls_exporter() == one.tls_exporter()
    assert one.tls_exporter() != two.tls_exporter()
    with pytest.raises(EstClientError, match="tls-unique is not defined"):
        one.tls_unique()
    old = client(env, "1.2")
    assert len(old.tls_unique()) == 12  # the Finished message's verify_data
    with pytest.raises(EstClientError, match=r"TLS 1\.3"):
        old.tls_exporter()
    for c in (one, two, old):
        c.close()


@VERSIONS
def test_required_channel_binding_refuses_a_csr_without_one(start, tls):
    env = start(settings=EnrollSettings(ca="devices", channel_binding="required")).env
    est, _ = basic(env, tls)
    before = counts(env)
    plain = make_csr(new_key(), DEVICE_NAME, sans=SANS)
    kind = "tls-unique" if tls == "1.2" else "tls-exporter"
    refused(est.simpleenroll(plain), 400, "requires", kind, "RFC 7030 3.5")
    refused(est.serverkeygen(plain), 400, "requires", kind)
    assert counts(env) == before and secret_status(env) == ["unused"]
    made = est.serverkeygen(bound_csr(est, new_key()))
    assert isinstance(made, tuple), made
    verify(env, made[1])
    est.close()
    assert metric(env, tls, "revoca_enroll_requests_total") == {
        '{protocol="est",result="issued"}': 1.0,
        '{protocol="est",result="refused"}': 2.0,
    }


# -- bootstrap certificates -----------------------------------------------------------


def manufacturer_ca(name: str):
    key = new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=30))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def device_certificate(ca, serial_number: str, *, not_before: datetime, not_after: datetime):
    ca_cert, ca_key = ca
    key = new_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.SERIAL_NUMBER, serial_number),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Maker Inc"),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


@VERSIONS
def test_bootstrap_certificates_enroll_once_within_their_validity(start, tmp_path, tls):
    maker = manufacturer_ca("Maker Device CA")
    anchors = tmp_path / "maker.pem"
    anchors.write_bytes(maker[0].public_bytes(serialization.Encoding.PEM))
    settings = EnrollSettings(ca="devices", bootstrap_anchors=anchors, bootstrap_entity="router-1")
    env = start(settings=settings).env
    now = datetime.now(UTC)
    device = device_certificate(
        maker, "SN-0001", not_before=now - timedelta(days=1), not_after=now + timedelta(days=365)
    )
    pair = write_pair(env, "bootstrap", *device)

    est = client(env, tls, client_cert=pair)
    key = new_key()
    cert = est.simpleenroll(bound_csr(est, key))
    assert isinstance(cert, x509.Certificate), cert
    assert cert.subject == DEVICE_NAME  # the label's end entity, not the maker's subject
    verify(env, cert)
    assert env.ra.ca.get_certificate("devices", cert.serial_number).end_entity_id == (
        env.ra.get_entity("router-1").id
    )
    # Once: another request with the same bootstrap certificate is refused.
    before = counts(env)
    refused(est.simpleenroll(bound_csr(est, new_key())), 403, "enrolled already")
    assert counts(env) == before
    est.close()

    # Expired, from the same anchor: the TLS layer lets it through so that
    # the refusal can say why.
    expired = device_certificate(
        maker, "SN-0002", not_before=now - timedelta(days=30), not_after=now - timedelta(days=1)
    )
    est = client(env, tls, client_cert=write_pair(env, "expired", *expired))
    refused(est.simpleenroll(bound_csr(est, new_key())), 401, "validity period")
    assert counts(env) == before
    est.close()

    # Not valid yet.
    early = device_certificate(
        maker, "SN-0003", not_before=now + timedelta(days=1), not_after=now + timedelta(days=30)
    )
    est = client(env, tls, client_cert=write_pair(env, "early", *early))
    refused(est.simpleenroll(bound_csr(est, new_key())), 401, "validity period")
    est.close()

    # An unknown CA's certificate: the server ends the handshake. OpenSSL's
    # unknown_ca alert is not sent (asyncio's TLS transport closes at a
    # failed handshake without flushing it), so the client sees the
    # connection end: during the handshake on TLS 1.2, at the first read on
    # TLS 1.3 (where the client's Finished precedes the server's check).
    stranger = device_certificate(
        manufacturer_ca("Stranger CA"),
        "SN-0004",
        not_before=now - timedelta(days=1),
        not_after=now + timedelta(days=30),
    )
    est = client(env, tls, client_cert=write_pair(env, "stranger", *stranger))
    if tls == "1.2":
        with pytest.raises(ssl.SSLEOFError) as failed:
            est.connect()
        assert failed.value.reason == "UNEXPECTED_EOF_WHILE_READING", failed.value
    else:
        est.connect()
        # ssl's suppress_ragged_eofs: the EOF reads as the end of the stream.
        with pytest.raises(http.client.RemoteDisconnected):
            est.simpleenroll(make_csr(new_key(), DEVICE_NAME, sans=SANS))
    est.close()
    # The same client without that certificate is served.
    assert set(client(env, tls).cacerts()) == set(env.ra.ca.chain("devices"))
    assert counts(env) == before


def test_a_bootstrap_certificate_on_a_listener_without_anchors_is_refused(env):
    # Our own device certificate (trusted by the TLS layer) on simpleenroll
    # without Basic: it is no bootstrap certificate here.
    est, _ = basic(env)
    key = new_key()
    cert = est.simpleenroll(bound_csr(est, key))
    est.close()
    est = client(env, client_cert=write_pair(env, "ours", cert, key))
    before = counts(env)
    refused(est.simpleenroll(bound_csr(est, new_key())), 401, "no bootstrap certificates")
    assert counts(env) == before
    est.close()


# -- renewal with an expired certificate ----------------------------------------------


@VERSIONS
def test_renewal_with_an_expired_certificate_is_refused_naming_the_expiry(start, tls):
    started = start()
    env = started.env
    est, _ = basic(env, tls)
    key = new_key()
    cert = est.simpleenroll(bound_csr(est, key))
    assert isinstance(cert, x509.Certificate), cert
    est.close()
    started.clock.offset = cert.not_valid_after_utc - datetime.now(UTC) + timedelta(days=1)
    renewer = client(env, tls, client_cert=write_pair(env, "old", cert, key))
    before = counts(env)
    expiry = cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%S")
    refused(renewer.simplereenroll(bound_csr(renewer, new_key())), 401, "expired", expiry)
    assert counts(env) == before
    renewer.close()


# -- hostile and malformed requests ---------------------------------------------------


def test_oversized_mistyped_and_truncated_requests_are_refused(env):
    est, _ = basic(env)
    before = counts(env)
    limit = EnrollSettings().max_body
    big = b"A" * (limit + 4)
    # Declared too large: 413 before the body is read, and the connection closed.
    connection = est.connection or (est.connect() and est.connection)
    connection.putrequest("POST", est.url("simpleenroll"))
    for name, value in {
        "Content-Type": "application/pkcs10",
        "Content-Length": str(limit + 1),
        **est.authorization(),
    }.items():
        connection.putheader(name, value)
    connection.endheaders()  # and no body: the answer does not wait for it
    response = connection.getresponse()
    assert response.status == 413 and response.will_close
    assert f"over {limit} bytes" in response.read().decode()
    est.close()
    # The same, its body sent (or cut short when the server closes).
    answer = est.request(
        "POST", est.url("simpleenroll"), big, {"Content-Type": "application/pkcs10"}
    )
    refused(answer, 413, f"over {limit} bytes")
    assert est.connection is None
    # Chunked, no declared length: 413 once it passes the limit.
    answer = est.request(
        "POST",
        est.url("simpleenroll"),
        big,
        {"Content-Type": "application/pkcs10"},
        chunked=True,
    )
    refused(answer, 413, f"over {limit} bytes")
    # Wrong Content-Type.
    csr = bound_csr(est, new_key())
    answer = est.request(
        "POST", est.url("simpleenroll"), base64.encodebytes(csr), {"Content-Type": "text/plain"}
    )
    refused(answer, 415, "application/pkcs10")
    # GET on an operation that is POSTed.
    answer = est.request("GET", est.url("simpleenroll"))
    refused(answer, 405)
    assert answer.headers["allow"] == "POST"
    # POST on one that is GOT.
    refused(est.request("POST", est.url("cacerts"), b""), 405)
    # Truncated base64: not base64, then base64 of a truncated DER.
    text = base64.b64encode(csr)
    for cut in (text[:-3], text[: len(text) // 8 * 4]):
        answer = est.request(
            "POST", est.url("simpleenroll"), cut, {"Content-Type": "application/pkcs10"}
        )
        refused(answer, 400)
    refused(
        est.request(
            "POST", est.url("simpleenroll"), text[:-3], {"Content-Type": "application/pkcs10"}
        ),
        400,
        "base64",
    )
    # An empty body.
    refused(
        est.request("POST", est.url("simpleenroll"), b"", {"Content-Type": "application/pkcs10"}),
        400,
    )
    # A certificate where the CSR goes.
    chain_der = env.ra.ca.chain("devices")[0].public_bytes(serialization.Encoding.DER)
    refused(est.simpleenroll(chain_der), 400)
    # A Basic header that is not base64 of user:password.
    answer = est.request(
        "POST",
        est.url("simpleenroll"),
        base64.encodebytes(csr),
        {"Content-Type": "application/pkcs10", "Authorization": "Basic !!!"},
        basic=False,
    )
    refused(answer, 401, "not HTTP Basic")
    assert answer.headers["www-authenticate"].startswith("Basic")
    assert counts(env) == before and secret_status(env) == ["unused"]
    # And the secret still enrolls, after all that.
    cert = est.simpleenroll(bound_csr(est, new_key()))
    assert isinstance(cert, x509.Certificate), cert
    verify(env, cert)
    est.close()
    # 415, three truncations, the empty body, the certificate: malformed;
    # the bad Basic header: refused (the 413s and 405s reach no handler).
    assert metric(env, "1.3", "revoca_enroll_requests_total") == {
        '{protocol="est",result="issued"}': 1.0,
        '{protocol="est",result="malformed"}': 6.0,
        '{protocol="est",result="refused"}': 1.0,
    }


# -- approvals --------------------------------------------------------------------------


def test_with_approvers_simpleenroll_waits_and_serverkeygen_is_refused(start):
    env = start(policy=ApprovalPolicy(issue=1)).env
    est, _ = basic(env)
    before = counts(env)
    refused(est.serverkeygen(bound_csr(est, new_key())), 403, "approvers")
    assert counts(env) == before and secret_status(env) == ["unused"]
    assert env.ra.approvals.list(status="pending", after=None, limit=10) == []

    csr = make_csr(new_key(), DEVICE_NAME, sans=SANS)
    answer = est.simpleenroll(csr)
    assert isinstance(answer, EstResponse) and answer.status == 202, answer
    assert answer.retry_after == EnrollSettings().retry_after
    (pending,) = env.ra.approvals.list(status="pending", after=None, limit=10)
    # The same request again: 202 again, nothing more queued.
    assert est.simpleenroll(csr).status == 202
    assert len(env.ra.approvals.list(status="pending", after=None, limit=10)) == 1
    env.ra.users.create("ann", "ra-officer", with_token=True, actor="test")
    env.ra.approve(pending.id, actor="ann")
    cert = est.simpleenroll(csr)
    assert isinstance(cert, x509.Certificate), cert
    verify(env, cert)
    est.close()
    samples = metric(env, "1.3", "revoca_enroll_requests_total")
    assert samples['{protocol="est",result="pending"}'] == 1.0
    assert samples['{protocol="est",result="issued"}'] == 1.0


@VERSIONS
def test_a_bound_request_that_waited_is_repeated_on_a_new_connection(start, tls):
    """RFC 7030 4.2.3: after a 202 the device sends the same request again,
    on a connection of its own by then; the transaction made on the first
    connection, with the same credential, is what it repeats."""
    env = start(policy=ApprovalPolicy(issue=1)).env
    est, secret = basic(env, tls)
    key = new_key()
    csr = bound_csr(est, key)
    answer = est.simpleenroll(csr)
    assert isinstance(answer, EstResponse) and answer.status == 202, answer
    est.close()
    (pending,) = env.ra.approvals.list(status="pending", after=None, limit=10)

    later = client(env, tls, basic=("router-1", secret))
    answer = later.simpleenroll(csr)
    assert isinstance(answer, EstResponse) and answer.status == 202, answer
    env.ra.users.create("ann", "ra-officer", with_token=True, actor="test")
    env.ra.approve(pending.id, actor="ann")
    later.close()
    cert = client(env, tls, basic=("router-1", secret)).simpleenroll(csr)
    assert isinstance(cert, x509.Certificate), cert
    assert cert.public_key() == key.public_key()
    verify(env, cert)

    # Under another credential the stale binding is refused as before, and
    # a new request bound to another connection is refused too.
    other = client(env, tls, basic=("router-1", env.secret()))
    refused(other.simpleenroll(csr), 400, "channel binding")
    stale = make_csr(new_key(), DEVICE_NAME, sans=SANS, challenge_password=est.channel_binding())
    refused(other.simpleenroll(stale), 400, "channel binding")
    assert len(env.ra.approvals.list(status="pending", after=None, limit=10)) == 0
    other.close()
    est.close()


def test_one_secret_or_bootstrap_certificate_sent_at_once_on_many_connections_enrolls_once(
    start, tmp_path
):
    from concurrent.futures import ThreadPoolExecutor

    maker = manufacturer_ca("Maker Device CA")
    anchors = tmp_path / "maker.pem"
    anchors.write_bytes(maker[0].public_bytes(serialization.Encoding.PEM))
    settings = EnrollSettings(ca="devices", bootstrap_anchors=anchors, bootstrap_entity="router-1")
    env = start(settings=settings).env
    now = datetime.now(UTC)
    pair = write_pair(
        env,
        "bootstrap",
        *device_certificate(
            maker, "SN-0001", not_before=now - timedelta(days=1), not_after=now + timedelta(days=9)
        ),
    )
    secret = env.secret()

    def attempt(kwargs):
        est = client(env, **kwargs)
        try:
            answer = est.simpleenroll(bound_csr(est, new_key()))
        finally:
            est.close()
        return answer if isinstance(answer, EstResponse) else 200

    for kwargs, refusal in (
        ({"basic": ("router-1", secret)}, 401),
        ({"client_cert": pair}, 403),
    ):
        before = counts(env)
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(attempt, [kwargs] * 6))
        assert results.count(200) == 1, results
        for answer in results:
            if answer != 200:
                refused(answer, refusal)
        assert counts(env)[1] == before[1] + 1


def test_a_label_enrolls_its_end_entity_and_takes_its_bootstrap_certificates(start, tmp_path):
    maker = manufacturer_ca("Maker Device CA")
    anchors = tmp_path / "maker.pem"
    anchors.write_bytes(maker[0].public_bytes(serialization.Encoding.PEM))
    settings = EnrollSettings(
        ca="devices",
        labels=(Label("routers", "devices", entity="router-1", bootstrap_anchors=anchors),),
    )
    switch = {**DEVICE, "name": "switch-1"}
    env = start(settings=settings, entities=(DEVICE, switch)).env
    anonymous = client(env)
    assert set(anonymous.cacerts("routers")) == set(env.ra.ca.chain("devices"))
    assert isinstance(anonymous.csrattrs("routers"), bytes)  # the label's entity's profile
    refused(anonymous.cacerts("switches"), 404, "no enrollment label 'switches'")
    anonymous.close()

    # Another entity's secret on the label: refused, the secret given back.
    before = counts(env)
    est = client(env, basic=("switch-1", env.secret("switch-1")))
    switch_name = x509.Name.from_rfc4514_string("CN=switch-1,O=Example Networks")
    refused(
        est.simpleenroll(bound_csr(est, new_key(), subject=switch_name), "routers"),
        403,
        "enrolls end entity 'router-1' only",
    )
    assert counts(env) == before and secret_status(env) == ["unused"]
    cert = est.simpleenroll(bound_csr(est, new_key(), subject=switch_name))  # no label: served
    assert isinstance(cert, x509.Certificate) and cert.subject == switch_name, cert
    verify(env, cert)
    est.close()

    # The label's bootstrap certificates: on the label only.
    now = datetime.now(UTC)
    device = device_certificate(
        maker, "SN-0001", not_before=now - timedelta(days=1), not_after=now + timedelta(days=9)
    )
    est = client(env, client_cert=write_pair(env, "bootstrap", *device))
    refused(est.simpleenroll(bound_csr(est, new_key())), 401, "no bootstrap certificates")
    refused(
        est.simplereenroll(bound_csr(est, new_key()), "routers"),
        401,
        "not issued to an end entity here",
    )
    cert = est.simpleenroll(bound_csr(est, new_key()), "routers")
    assert isinstance(cert, x509.Certificate) and cert.subject == DEVICE_NAME, cert
    verify(env, cert)
    est.close()


@pytest.mark.parametrize("how", ["secret", "bootstrap", "renewal"])
def test_the_same_request_sent_at_once_on_many_connections_is_one_transaction(start, tmp_path, how):
    """A device that sends its request again before the answer came (a
    timeout, a retry on another connection) gets that request's answer:
    the certificate, or 202 while it is being issued; never a refusal of
    its own credential as used, and one certificate."""
    from concurrent.futures import ThreadPoolExecutor

    maker = manufacturer_ca("Maker Device CA")
    anchors = tmp_path / "maker.pem"
    anchors.write_bytes(maker[0].public_bytes(serialization.Encoding.PEM))
    settings = EnrollSettings(ca="devices", bootstrap_anchors=anchors, bootstrap_entity="router-1")
    env = start(settings=settings).env
    operation = "simpleenroll"
    if how == "secret":
        kwargs = {"basic": ("router-1", env.secret())}
    elif how == "bootstrap":
        now = datetime.now(UTC)
        device = device_certificate(
            maker, "SN-0001", not_before=now - timedelta(days=1), not_after=now + timedelta(days=9)
        )
        kwargs = {"client_cert": write_pair(env, "bootstrap", *device)}
    else:
        est, _ = basic(env)
        key = new_key()
        cert = est.simpleenroll(make_csr(key, DEVICE_NAME, sans=SANS))
        est.close()
        kwargs = {"client_cert": write_pair(env, "current", cert, key)}
        operation = "simplereenroll"
    key = new_key()
    csr = make_csr(key, DEVICE_NAME, sans=SANS)
    before = counts(env)

    def attempt(_):
        est = client(env, **kwargs)
        try:
            return getattr(est, operation)(csr)
        finally:
            est.close()

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(attempt, range(6)))
    issued = {r.serial_number for r in results if isinstance(r, x509.Certificate)}
    assert len(issued) == 1, results
    for answer in results:
        if isinstance(answer, EstResponse):
            assert answer.status == 202 and "being issued" in answer.text, answer
            assert answer.retry_after == 5
    assert counts(env)[1] == before[1] + 1
    (serial,) = issued
    again = attempt(0)
    assert isinstance(again, x509.Certificate) and again.serial_number == serial, again
    assert again.public_key() == key.public_key()
    verify(env, again)
