"""OCSP request parsing, response building, and the whole bytes-in/bytes-out
path, each beside its baseline in cryptography (measured in the same run):

- parse:  va parse_ocsp_request            vs  ocsp.load_der_ocsp_request
- build:  va encoders + the same signature  vs  ocsp.OCSPResponseBuilder.sign
- signature: the VA's signer (libcrypto, context kept)  vs  the same key
          through cryptography
- answer: Responder.answer (pre-signed hit) and (fresh, nonce echoed)
          vs  load_der_ocsp_request + OCSPResponseBuilder.sign
- connection: one worker's HTTP side (va/http.py, va/worker.py) without
          sockets: 32 keep-alive requests, one per connection, answered in
          one event-loop round, pre-signed and fresh (nonce echoed); beside
          the signer's 32 signatures, the part of a fresh answer that is
          not its signature

Run: pytest benchmarks/bench_ocsp.py --benchmark-enable
"""

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from common.der import integer_content
from va import _fastocsp_py
from va import fastocsp as core
from va.issuers import IssuerEntry
from va.presign import presign
from va.responder import Responder, SigningJob, finish_all
from va.signing import Signer
from va.store import GOOD, StatusRecord, VAStore

try:
    from va import _fastocsp
except ImportError:  # pragma: no cover
    _fastocsp = None

VECTOR = Path(__file__).resolve().parent.parent / "tests" / "vectors"


def _certificate(key, subject, issuer_key=None, issuer_name=None, ca=False, serial=1):
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, subject)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name or name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    return builder.sign(issuer_key or key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate(ca_key, "Bench CA", ca=True)
    responder_key = ec.generate_private_key(ec.SECP256R1())
    responder = _certificate(responder_key, "Bench OCSP", ca_key, ca.subject, serial=2)
    leaf = _certificate(
        ec.generate_private_key(ec.SECP256R1()),
        "leaf",
        ca_key,
        ca.subject,
        serial=0x1234567890ABCDEF1234,
    )
    store = VAStore(tmp_path_factory.mktemp("lmdb"))
    entry = IssuerEntry(
        id=1, name="bench", certificate=ca, signer=Signer(responder_key, responder), delegated=True
    )
    serial = integer_content(leaf.serial_number)
    record = StatusRecord(GOOD, 0, -1, int(time.time()) + 86400)
    now = int(time.time())
    store.apply(
        statuses=[(1, serial, record)],
        responses=[(1, 1, serial, presign(entry, 1, serial, record, now))],
    )
    requests = {}
    for nonce in (False, True):
        builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, ca, hashes.SHA1())
        if nonce:
            builder = builder.add_extension(x509.OCSPNonce(b"\x42" * 16), critical=False)
        requests[nonce] = builder.build().public_bytes(Encoding.DER)
    yield {
        "ca": ca,
        "ca_key": ca_key,
        "responder": responder,
        "responder_key": responder_key,
        "leaf": leaf,
        "entry": entry,
        "store": store,
        "requests": requests,
        "responder_obj": Responder(store.reader(), [entry]),
    }
    store.close()


def _cryptography_builder(pki) -> ocsp.OCSPResponseBuilder:
    """The baseline's response, as cryptography builds it."""
    now = datetime.now(UTC).replace(microsecond=0)
    return (
        ocsp.OCSPResponseBuilder()
        .add_response(
            pki["leaf"],
            pki["ca"],
            hashes.SHA1(),
            ocsp.OCSPCertStatus.GOOD,
            now,
            now + timedelta(days=1),
            None,
            None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, pki["responder"])
        .certificates([pki["responder"]])
    )


# -- parse --------------------------------------------------------------------

REQUEST = (VECTOR / "req-sha1-one-certid-nonce.der").read_bytes()


@pytest.mark.benchmark(group="ocsp-parse-request")
def test_parse_native(benchmark):
    if _fastocsp is None:
        pytest.fail("native module not built")
    certids, nonce = benchmark(_fastocsp.parse_ocsp_request, REQUEST)
    assert len(certids) == 1 and nonce


@pytest.mark.benchmark(group="ocsp-parse-request")
def test_parse_python_twin(benchmark):
    certids, _ = benchmark(_fastocsp_py.parse_ocsp_request, REQUEST)
    assert len(certids) == 1


@pytest.mark.benchmark(group="ocsp-parse-request")
def test_parse_baseline_cryptography(benchmark):
    def parse(data):
        request = ocsp.load_der_ocsp_request(data)
        # Touch what the VA needs from it, as parse_ocsp_request returns it all.
        return (
            request.issuer_name_hash,
            request.issuer_key_hash,
            request.serial_number,
            request.hash_algorithm,
            list(request.extensions),
        )

    assert benchmark(parse, REQUEST)[2] > 0


# -- build (encode + sign) ------------------------------------------------------


@pytest.mark.benchmark(group="ocsp-build-response")
def test_build_native(benchmark, pki):
    entry = pki["entry"]
    serial = integer_content(pki["leaf"].serial_number)
    name_hash, key_hash = entry.hashes[1]

    def build():
        now = int(time.time())
        certid = core.encode_certid(1, name_hash, key_hash, serial)
        single = core.encode_single_response(certid, 0, 0, -1, now, now + 86400)
        tbs = core.encode_response_data(entry.responder_id, now, [single], b"")
        signature = entry.signer.sign(tbs)
        return core.encode_ocsp_response(
            tbs, entry.signer.algorithm_identifier, signature, entry.certs
        )

    response = ocsp.load_der_ocsp_response(benchmark(build))
    assert response.certificate_status == ocsp.OCSPCertStatus.GOOD


@pytest.mark.benchmark(group="ocsp-build-response")
def test_build_baseline_cryptography(benchmark, pki):
    def build():
        builder = _cryptography_builder(pki)
        return builder.sign(pki["responder_key"], hashes.SHA256())

    assert benchmark(build).certificate_status == ocsp.OCSPCertStatus.GOOD


@pytest.mark.benchmark(group="ocsp-build-response")
def test_raw_signature_only(benchmark, pki):
    """The floor for both: one ECDSA P-256 signature over a typical ResponseData."""
    data = b"\x30\x81\xdf" + b"\x00" * 223
    key = pki["responder_key"]
    benchmark(key.sign, data, ec.ECDSA(hashes.SHA256()))


# -- the responder's signature: libcrypto with the context kept vs cryptography ----


def _signers(pki) -> tuple[Signer, Signer]:
    """(the VA's signer, the same key through cryptography: the twin)."""
    entry = pki["entry"]
    twin = Signer(pki["responder_key"], entry.signer.certificate, native_allowed=False)
    return entry.signer, twin


@pytest.mark.benchmark(group="ocsp-signature")
@pytest.mark.parametrize("which", ["native", "baseline-cryptography"])
def test_signer(benchmark, pki, which):
    """The VA's signer (va/_evpsign.pyx when built) against the same key and
    message through cryptography (a new context per call)."""
    signer = _signers(pki)[which != "native"]
    data = b"\x30\x81\xdf" + b"\x00" * 223
    signature = benchmark(signer.sign, data)
    pki["responder_key"].public_key().verify(signature, data, ec.ECDSA(hashes.SHA256()))


# -- the whole path: request bytes in, response bytes out -------------------------


@pytest.mark.benchmark(group="ocsp-answer")
def test_answer_presigned(benchmark, pki):
    responder = pki["responder_obj"]
    answer = benchmark(
        lambda data: responder.answer(data, int(time.time())), pki["requests"][False]
    )
    assert answer.kind == "presigned"


@pytest.mark.benchmark(group="ocsp-answer")
def test_answer_fresh_with_nonce(benchmark, pki):
    responder = pki["responder_obj"]

    def answer(data):
        result = responder.answer(data, int(time.time()))
        if isinstance(result, SigningJob):
            finish_all([result])
            return result.answer
        return result

    result = benchmark(answer, pki["requests"][True])
    assert result.kind == "signed"
    assert ocsp.load_der_ocsp_response(result.body).certificate_status == ocsp.OCSPCertStatus.GOOD


@pytest.mark.benchmark(group="ocsp-answer")
def test_answer_baseline_cryptography(benchmark, pki):
    """The same job done with cryptography alone: parse, look up, build, sign."""

    def answer(data):
        request = ocsp.load_der_ocsp_request(data)
        assert request.serial_number == pki["leaf"].serial_number
        builder = _cryptography_builder(pki)
        for extension in request.extensions:
            builder = builder.add_extension(extension.value, critical=False)
        return builder.sign(pki["responder_key"], hashes.SHA256()).public_bytes(Encoding.DER)

    assert benchmark(answer, pki["requests"][True])


# -- one worker's HTTP side, without sockets -----------------------------------

ROUND = 32  # connections, one request each per event-loop round


class _Transport:
    """Keeps the last response written; counts them."""

    def __init__(self):
        self.written = 0
        self.last = b""

    def write(self, data: bytes) -> None:
        self.written += 1
        self.last = data

    def close(self) -> None:  # pragma: no cover - keep-alive throughout
        raise AssertionError("closed")


@pytest.fixture(scope="module")
def worker(pki):
    """A worker with its HTTP front and ROUND connections on an event loop of
    their own (the worker's responder is its own: it keeps statuses)."""
    from va.http import Front
    from va.metrics import Metrics
    from va.settings import HTTPSettings
    from va.worker import Worker

    loop = asyncio.new_event_loop()
    metrics = Metrics()
    responder = Responder(pki["store"].reader(), [pki["entry"]], keep_statuses=True)
    front = Front(Worker(responder, HTTPSettings(), metrics), HTTPSettings(), metrics, {}, None)
    transports = [_Transport() for _ in range(ROUND)]
    connections = [front.connection() for _ in range(ROUND)]

    async def open_all():
        for connection, transport in zip(connections, transports, strict=True):
            connection.connection_made(transport)

    loop.run_until_complete(open_all())
    yield loop, connections, transports
    loop.close()


def _round(worker, request: bytes):
    """One round: each connection's request read, answered, written."""
    loop, connections, transports = worker
    data = (
        b"POST /ocsp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/ocsp-request\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(request), request)
    )

    async def serve():
        for connection in connections:
            connection.data_received(data)
        await asyncio.sleep(0)  # the round's fresh signatures (one batch)

    def run():
        before = sum(t.written for t in transports)
        loop.run_until_complete(serve())
        assert sum(t.written for t in transports) == before + ROUND

    return run


def _answered(transport) -> ocsp.OCSPResponse:
    head, _, body = transport.last.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    return ocsp.load_der_ocsp_response(body)


@pytest.mark.benchmark(group="ocsp-connection")
def test_connection_presigned(benchmark, pki, worker):
    benchmark(_round(worker, pki["requests"][False]))
    response = _answered(worker[2][0])
    assert response.certificate_status == ocsp.OCSPCertStatus.GOOD


@pytest.mark.benchmark(group="ocsp-connection")
def test_connection_fresh_with_nonce(benchmark, pki, worker):
    benchmark(_round(worker, pki["requests"][True]))
    response = _answered(worker[2][-1])
    assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"\x42" * 16


@pytest.mark.benchmark(group="ocsp-connection")
def test_connection_signatures_only(benchmark, pki):
    """The signer's part of a fresh round: ROUND signatures in one call."""
    signer = pki["entry"].signer
    messages = [b"\x30\x81\xdf" + bytes([i]) * 223 for i in range(ROUND)]
    signatures = benchmark(signer.sign_many, messages)
    assert len(signatures) == ROUND
