"""The VA's HTTP behaviour: malformed input, caching headers, limits, ordering,
and status changes that readers never see half-applied."""

import base64
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from common.der import integer_content
from tests.test_va_openssl import _post, _request
from tests.va_fixtures import make_va
from va import fastocsp as core
from va.presign import presign
from va.settings import HTTPSettings
from va.store import REVOKED, StatusRecord

VECTORS = Path(__file__).with_name("vectors")
pytestmark = pytest.mark.twin  # through the façades: `make test-python` runs it on the twins


def raw_http(port: int, payload: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)


def port_of(env) -> int:
    return int(env.url.split(":")[2].split("/")[0])


def post_bytes(body: bytes, path=b"/ocsp", ctype=b"application/ocsp-request") -> bytes:
    return (
        b"POST "
        + path
        + b" HTTP/1.1\r\nHost: x\r\nContent-Type: "
        + ctype
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


@pytest.mark.parametrize("name", sorted(p.name for p in VECTORS.glob("req-invalid-*.der")))
def test_every_malformed_vector_gets_malformed_request(va_env, name):
    status, body, headers = _post(va_env.url, (VECTORS / name).read_bytes())
    assert status == 200 and body == core.MALFORMED_REQUEST
    assert headers["Cache-Control"] == "no-cache"


def test_server_keeps_serving_after_garbage(va_env, tmp_path):
    port = port_of(va_env)
    for junk in (
        b"\x00" * 100,
        b"GET / HTTP/9.9\r\n\r\n",
        b"POST /ocsp HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
    ):
        raw_http(port, junk)
    status, body, _ = _post(va_env.url, _request(va_env, tmp_path, "good.pem", "-no_nonce"))
    assert status == 200
    assert ocsp.load_der_ocsp_response(body).certificate_status == ocsp.OCSPCertStatus.GOOD


def test_bad_get_and_oversized_body(va_env):
    port = port_of(va_env)
    reply = raw_http(port, b"GET /ocsp/%%%not-base64 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(core.MALFORMED_REQUEST)
    reply = raw_http(port, post_bytes(b"\x30" * 20000))
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(core.MALFORMED_REQUEST)
    assert b"Connection: close" in reply


def test_unknown_issuer_is_unauthorized(va_env):
    data = (VECTORS / "req-valid-sha1-nonce-built.der").read_bytes()
    _, body, _ = _post(va_env.url, data)
    assert body == core.UNAUTHORIZED


def test_methods_paths_and_content_types(va_env):
    port = port_of(va_env)
    assert raw_http(port, b"PUT /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").startswith(
        b"HTTP/1.1 405"
    )
    assert raw_http(port, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 404")
    assert raw_http(port, post_bytes(b"x", ctype=b"text/plain")).startswith(b"HTTP/1.1 415")
    health = raw_http(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert health.startswith(b"HTTP/1.1 200") and health.endswith(b"ok\n")
    metrics = raw_http(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b'revoca_ocsp_requests_total{outcome="malformed"}' in metrics
    cert = raw_http(port, b"GET /ca/issuing.crt HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"application/pkix-cert" in cert
    assert b"Traceback" not in metrics + cert


def test_etag_and_304(va_env, tmp_path):
    data = _request(va_env, tmp_path, "good.pem", "-no_nonce")
    _, _, headers = _post(va_env.url, data)
    etag = headers["ETag"]
    reply = raw_http(
        port_of(va_env),
        post_bytes(data).replace(
            b"\r\n\r\n", b"\r\nIf-None-Match: " + etag.encode() + b"\r\n\r\n", 1
        ),
    )
    assert reply.startswith(b"HTTP/1.1 304")
    _, _, nonce_headers = _post(va_env.url, _request(va_env, tmp_path, "good.pem"))
    assert nonce_headers["Cache-Control"] == "no-cache" and "ETag" not in nonce_headers


def test_pipelined_requests_keep_their_order(va_env, tmp_path):
    """A fresh-signed answer (nonce) between two pre-signed ones stays in place."""
    _check_order(va_env, tmp_path)


def test_pipelined_order_with_a_signing_thread_pool(tmp_path, service):
    """The same with fresh signatures computed in threads (signing_threads)."""
    env, thread = make_va(tmp_path, service, http=HTTPSettings(signing_threads=2))
    try:
        _check_order(env, tmp_path)
    finally:
        thread.stop()


@pytest.mark.parametrize("threads", [0, 2])
def test_a_failing_signer_answers_internal_error_then_recovers(tmp_path, service, threads):
    """In the loop's batch or in a signing thread: a signer that fails
    answers internalError (no traceback, no hang); once it works again, the
    next fresh request is signed."""
    env, thread = make_va(tmp_path, service, http=HTTPSettings(signing_threads=threads))
    try:
        signer = env.serving.entries[0].signer
        working = signer.sign_many

        def broken(messages):
            raise RuntimeError("token unavailable")

        signer.sign_many = broken
        status, body, _ = _post(env.url, _nonce_request(env, b"n" * 16))
        assert status == 200 and body == core.INTERNAL_ERROR
        signer.sign_many = working
        status, body, _ = _post(env.url, _nonce_request(env, b"m" * 16))
        response = ocsp.load_der_ocsp_response(body)
        assert status == 200 and response.certificate_status == ocsp.OCSPCertStatus.GOOD
        assert env.serving.worker.in_flight == 0
    finally:
        thread.stop()


def _check_order(va_env, tmp_path):
    good = _request(va_env, tmp_path, "good.pem", "-no_nonce")
    nonce = _request(va_env, tmp_path, "revoked.pem")
    payload = post_bytes(good) + post_bytes(nonce) + post_bytes(good)
    reply = raw_http(port_of(va_env), payload)
    bodies = []
    for part in reply.split(b"HTTP/1.1 200 OK")[1:]:
        head, _, rest = part.partition(b"\r\n\r\n")
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        bodies.append(rest[:length])
    statuses = [ocsp.load_der_ocsp_response(b).certificate_status for b in bodies]
    assert statuses == [
        ocsp.OCSPCertStatus.GOOD,
        ocsp.OCSPCertStatus.REVOKED,
        ocsp.OCSPCertStatus.GOOD,
    ]


def _nonce_request(env, nonce: bytes, cert="good.pem") -> bytes:
    leaf = x509.load_pem_x509_certificate((env.files / cert).read_bytes())
    issuer = x509.load_pem_x509_certificate((env.files / "issuing.pem").read_bytes())
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA256())
    builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def _bodies(reply: bytes) -> list[bytes]:
    bodies = []
    for part in reply.split(b"HTTP/1.1 200 OK")[1:]:
        head, _, rest = part.partition(b"\r\n\r\n")
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        bodies.append(rest[:length])
    return bodies


def _nonce_of(body: bytes) -> bytes:
    response = ocsp.load_der_ocsp_response(body)
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    return response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce


def test_fresh_signatures_of_one_batch_go_to_their_own_requests(va_env):
    """Fresh answers are signed in batches per loop iteration: 40 pipelined
    requests (one batch) and 8 connections at once each get their own nonce
    back, in request order, every signature valid."""
    nonces = [b"pipelined-%06d" % i for i in range(40)]  # 16 octets: echoed (RFC 9654)
    payload = b"".join(post_bytes(_nonce_request(va_env, n)) for n in nonces)
    bodies = _bodies(raw_http(port_of(va_env), payload))
    assert [_nonce_of(b) for b in bodies] == nonces
    responder = ocsp.load_der_ocsp_response(bodies[0]).certificates[0]
    for body in bodies:
        response = ocsp.load_der_ocsp_response(body)
        responder.public_key().verify(
            response.signature,
            response.tbs_response_bytes,
            ec.ECDSA(response.signature_hash_algorithm),
        )

    results: dict[int, list[bytes]] = {}

    def client(n: int) -> None:
        mine = [b"connection-%d-%03d" % (n, i) for i in range(10)]  # 16 octets: echoed
        payload = b"".join(post_bytes(_nonce_request(va_env, m)) for m in mine)
        results[n] = [_nonce_of(b) for b in _bodies(raw_http(port_of(va_env), payload))]
        assert results[n] == mine

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == list(range(8))


def test_fresh_signing_cap_answers_try_later(tmp_path, service):
    env, thread = make_va(tmp_path, service, http=HTTPSettings(fresh_signing_cap=0))
    try:
        _, body, _ = _post(env.url, _request(env, tmp_path, "good.pem"))  # nonce: fresh
        assert body == core.TRY_LATER
        _, body, _ = _post(env.url, _request(env, tmp_path, "good.pem", "-no_nonce"))
        assert ocsp.load_der_ocsp_response(body).certificate_status == ocsp.OCSPCertStatus.GOOD
    finally:
        thread.stop()


def test_get_with_space_for_plus_and_slashes(va_env, tmp_path):
    """RFC 6960 A.1: url-encoded base64; a '+' turned into a space still decodes."""
    for _ in range(40):
        data = _request(va_env, tmp_path, "good.pem", "-no_nonce")
        text = base64.b64encode(data)
        if b"+" in text or b"/" in text:
            break
    raw = text.replace(b"+", b" ").replace(b" ", b"%20")
    reply = raw_http(port_of(va_env), b"GET /ocsp/" + raw + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    body = reply.partition(b"\r\n\r\n")[2]
    assert ocsp.load_der_ocsp_response(body).certificate_status == ocsp.OCSPCertStatus.GOOD


def test_revocation_is_never_followed_by_good(va_env, tmp_path):
    """Readers hammer the pre-signed path while the status changes. Every
    request begun after the write committed answers revoked, and no reader
    sees good again once it has seen revoked."""
    from va.responder import SigningJob, finish_all

    serving = va_env.serving
    store = serving.store
    entry = serving.entries[0]
    request = _request(va_env, tmp_path, "good.pem", "-no_nonce")
    serial = integer_content(va_env.good)
    deadline = time.monotonic() + 2.5
    observations: list[list[tuple[float, object]]] = [[] for _ in range(3)]

    def reader(out):
        while time.monotonic() < deadline:
            started = time.monotonic()
            answer = serving.responder.answer(request, int(time.time()))
            if isinstance(answer, SigningJob):
                finish_all([answer])
                answer = answer.answer
            out.append((started, ocsp.load_der_ocsp_response(answer.body).certificate_status))

    threads = [threading.Thread(target=reader, args=(out,)) for out in observations]
    for t in threads:
        t.start()
    time.sleep(0.5)
    now = int(time.time())
    record = StatusRecord(REVOKED, now, 1, now + 86400)
    responses = [
        (entry.id, alg, serial, presign(entry, alg, serial, record, now)) for alg in (1, 2)
    ]
    store.apply(statuses=[(entry.id, serial, record)], responses=responses)
    committed = time.monotonic()
    for t in threads:
        t.join()
    good, revoked = ocsp.OCSPCertStatus.GOOD, ocsp.OCSPCertStatus.REVOKED
    for out in observations:
        statuses = [status for _, status in out]
        assert good in statuses and revoked in statuses
        first_revoked = statuses.index(revoked)
        assert good not in statuses[first_revoked:], "good again after revoked"
        assert all(status == revoked for started, status in out if started > committed)


def test_ca_certificate_downloads(va_env):
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import pkcs7

    port = port_of(va_env)

    def get(path: bytes) -> tuple[bytes, bytes]:
        reply = raw_http(port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = reply.partition(b"\r\n\r\n")
        return head, body

    issuing = va_env.service.get_ca("issuing").certificate
    root = va_env.service.get_ca("root").certificate
    head, body = get(b"/ca/issuing.crt")
    assert b"Content-Type: application/pkix-cert" in head
    assert x509.load_der_x509_certificate(body) == issuing
    # The root is reachable too: the sub-CA's caIssuers URL points at it.
    assert x509.load_der_x509_certificate(get(b"/ca/root.crt")[1]) == root
    assert x509.load_pem_x509_certificate(get(b"/ca/issuing.pem")[1]) == issuing
    assert x509.load_pem_x509_certificates(get(b"/ca/issuing-chain.pem")[1]) == [issuing, root]
    head, body = get(b"/ca/issuing.p7c")
    assert b"application/pkcs7-mime" in head
    assert set(pkcs7.load_der_pkcs7_certificates(body)) == {issuing, root}  # a SET OF
    for path in (b"/ca/../keys/x.crt", b"/ca/nope.crt", b"/ca/issuing.key", b"/ca/%2e%2e.crt"):
        assert get(path)[0].startswith(b"HTTP/1.1 404")


def _store_issuing_crl(va_env) -> bytes:
    """An empty CRL signed by the issuing CA, put in the VA's store as
    "issuing" (number 1, valid a week); its DER."""
    from datetime import UTC, datetime, timedelta

    from cryptography.hazmat.primitives.serialization import Encoding

    from ca.token import load_private_key

    ca = va_env.service.get_ca("issuing")
    key = load_private_key(
        va_env.service.token.key_file(ca.key_id).read_bytes(), b"correct horse battery staple"
    )
    now = datetime.now(UTC).replace(microsecond=0)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now)
        .next_update(now + timedelta(days=7))
        .sign(key, hashes.SHA256())
    )
    der = crl.public_bytes(Encoding.DER)
    stamp = int(now.timestamp())
    va_env.serving.store.put_crl("issuing", stamp, stamp + 7 * 86400, 1, der)
    return der


def test_crl_download_with_etag(va_env, tmp_path):
    der = _store_issuing_crl(va_env)
    store = va_env.serving.store
    port = port_of(va_env)
    reply = raw_http(port, b"GET /crl/issuing.crl HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"Content-Type: application/pkix-crl" in head and body == der
    assert b"Last-Modified: " in head and b"Expires: " in head
    (tmp_path / "c.crl").write_bytes(body)
    (tmp_path / "ca.pem").write_bytes(va_env.files.joinpath("issuing.pem").read_bytes())
    verify = subprocess.run(
        [
            "openssl",
            "crl",
            "-inform",
            "DER",
            "-in",
            tmp_path / "c.crl",
            "-CAfile",
            tmp_path / "ca.pem",
            "-noout",
        ],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0 and "verify OK" in verify.stderr + verify.stdout
    etag = next(line for line in head.split(b"\r\n") if line.startswith(b"ETag: "))[6:]
    again = raw_http(
        port, b"GET /crl/issuing.crl HTTP/1.1\r\nHost: x\r\nIf-None-Match: " + etag + b"\r\n\r\n"
    )
    assert again.startswith(b"HTTP/1.1 304")
    for bad in (b"/crl/../lmdb/data.crl", b"/crl/nope.crl", b"/crl/..crl", b"/crl/a%2fb.crl"):
        assert raw_http(port, b"GET " + bad + b" HTTP/1.1\r\nHost: x\r\n\r\n").startswith(
            b"HTTP/1.1 404"
        )
    with pytest.raises(ValueError, match="invalid CRL name"):
        store.put_crl("../evil", 0, 1, 1, b"x")


def test_ocsp_heads_carry_the_caching_headers():
    """A pre-signed answer's 200 response carries the caching headers of
    RFC 9919 (RFC 5019 6.2) from its validity window, with and without
    keep-alive; built again within the second it is the same bytes; an
    If-None-Match with its ETag gets 304 without a body, a Content-Type or a
    Content-Length (RFC 9110 8.6, 15.4.5)."""
    import hashlib

    from va.headers import OCSPHeads, http_date
    from va.responder import Answer

    heads = OCSPHeads()
    body = b"\x30\x03\x0a\x01\x00" + bytes(range(200))
    answer = Answer(body, "presigned", 1_800_000_000, 1_800_345_600, True)
    now = 1_800_100_000.5
    tag = b'"' + hashlib.sha1(body).hexdigest().encode() + b'"'

    def parts(raw):
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        return lines[0], dict(line.split(b": ", 1) for line in lines[1:]), rest

    for keep_alive in (True, False):
        first = heads.response(answer, now, keep_alive, None)
        assert heads.response(answer, now + 0.2, keep_alive, None) == first
        status, fields, rest = parts(first)
        assert status == b"HTTP/1.1 200 OK" and rest == body
        assert fields.pop(b"Connection", b"keep-alive") == (
            b"keep-alive" if keep_alive else b"close"
        )
        assert fields == {
            b"Content-Type": b"application/ocsp-response",
            b"Last-Modified": http_date(answer.this_update),
            b"Expires": http_date(answer.next_update),
            b"ETag": tag,
            b"Cache-Control": b"max-age=245599, public, no-transform, must-revalidate",
            b"Content-Length": b"%d" % len(body),
        }
        status, fields, rest = parts(heads.response(answer, now, keep_alive, tag))
        assert status == b"HTTP/1.1 304 Not Modified" and rest == b""
        assert b"Content-Type" not in fields and b"Content-Length" not in fields
        assert fields[b"ETag"] == tag and fields[b"Expires"] == http_date(answer.next_update)
        assert parts(heads.response(answer, now, keep_alive, b'"other"'))[0].endswith(b"200 OK")
    assert len(heads.heads) == 1
    fresh = Answer(body, "signed", 1_800_000_000, 1_800_345_600, False)  # a nonce echoed
    status, fields, rest = parts(heads.response(fresh, now, True, tag))
    assert status == b"HTTP/1.1 200 OK" and fields[b"Cache-Control"] == b"no-cache"
    assert b"ETag" not in fields and rest == body


@pytest.mark.parametrize("kind", ["presigned", "fresh"])
def test_kept_answers_follow_writes_from_other_processes(tmp_path, service, kind):
    """What a worker keeps is dropped once the store commits a change, even
    one this process did not make (another worker's admin listener, a
    publisher's co-located target): a pre-signed answer from the hot answers,
    a status kept for fresh (nonce) answers. An in-process writer's
    ``invalidate`` drops both at once."""
    import time as _time

    from va.store import REVOKED, StatusRecord

    env, thread = make_va(tmp_path, service)
    worker = env.serving.worker
    try:
        if kind == "presigned":
            request = _request(env, tmp_path, "good.pem", "-no_nonce")
        else:
            request = _request(env, tmp_path, "good.pem")  # with a nonce: signed fresh
        for _ in range(3):  # the first reads the store, the rest what the worker kept
            _, body, _ = _post(env.url, request)
            assert ocsp.load_der_ocsp_response(body).certificate_status == ocsp.OCSPCertStatus.GOOD
        statuses = env.serving.responder.live.statuses
        if kind == "presigned":
            assert request in worker.hot
        else:
            assert statuses
        issuer_id = env.serving.entries[0].id
        serial = integer_content(env.good)
        env.serving.store.apply(
            statuses=[(issuer_id, serial, StatusRecord(REVOKED, 1_800_000_000, 1, 2_000_000_000))],
            responses=[(issuer_id, alg, serial, None) for alg in (1, 2, 3, 4)],
        )
        _time.sleep(0.01)  # past GENERATION_CHECK_SECONDS
        _, body, _ = _post(env.url, request)
        parsed = ocsp.load_der_ocsp_response(body)
        assert parsed.certificate_status == ocsp.OCSPCertStatus.REVOKED
        assert parsed.revocation_reason == x509.ReasonFlags.key_compromise
        assert worker.hot or statuses
        worker.invalidate()
        assert not worker.hot and not statuses
    finally:
        thread.stop()


def test_hot_answers_keep_only_ordinary_sized_requests():
    """A client padding valid requests (up to max_body) must not fill the hot
    answers with large keys: only requests up to HOT_KEY_MAX are kept."""
    from va.metrics import Metrics
    from va.responder import Answer
    from va.worker import HOT_KEY_MAX, Worker

    answer = Answer(b"\x30\x03\x0a\x01\x00", "presigned", 0, 4_000_000_000, True, True)

    class Presigned:
        class reader:
            generation = staticmethod(lambda: 0)

        def answer(self, request, now):
            return answer

        def forget(self):
            pass

    worker = Worker(Presigned(), HTTPSettings(), Metrics())
    now = time.time()
    assert worker.ocsp(b"r" * HOT_KEY_MAX, 0.0, now, None) is answer
    assert worker.ocsp(b"r" * (HOT_KEY_MAX + 1), 0.0, now, None) is answer
    assert list(worker.hot) == [b"r" * HOT_KEY_MAX]


def test_head_answers_are_their_get_heads_without_a_body(va_env):
    """RFC 9110 9.3.2: the same header fields as GET, and no content, on every
    path: errors and OCSP paths included."""
    _store_issuing_crl(va_env)
    port = port_of(va_env)
    for path in (
        b"/ca/issuing.crt",
        b"/ca/issuing-chain.pem",
        b"/crl/issuing.crl",
        b"/healthz",
        b"/ocsp",
        b"/ocsp/MAo=",
        b"/nope",
        b"/ca/nope.crt",
        b"/crl/nope.crl",
    ):
        got = raw_http(port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        head = raw_http(port, b"HEAD " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        get_head, _, get_body = got.partition(b"\r\n\r\n")
        head_head, _, head_body = head.partition(b"\r\n\r\n")
        assert head_body == b"", (path, head)
        if path.startswith(b"/ocsp"):  # OCSP is GET and POST only
            assert head_head.startswith(b"HTTP/1.1 405") and b"Allow: GET, POST" in head_head
            continue
        assert head_head == get_head, path  # Content-Length included: the GET body's
        assert b"Content-Length: %d" % len(get_body) in head_head, path
    # /metrics changes between two requests: its head, no body.
    metrics = raw_http(port, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = metrics.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: " in head and body == b""
    # On one keep-alive connection, a HEAD answer leaves nothing to misread.
    both = raw_http(
        port,
        b"HEAD /ca/issuing.crt HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    first, _, rest = both.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200") and rest.startswith(b"HTTP/1.1 200 OK"), both


def test_an_http_0_9_request_gets_400_at_once(va_env):
    port = port_of(va_env)
    before = va_env.serving.metrics.requests["bad_request"]
    for line in (b"GET /\r\n", b"GET /healthz\n", b"GET /ocsp/MAo=\r\n"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            started = time.monotonic()
            sock.sendall(line)  # and wait: no shutdown, so only the VA can end this
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            took = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 400") and b"no HTTP version" in answer, answer
        assert took < 1.0
    assert va_env.serving.metrics.requests["bad_request"] == before + 3
    # Empty lines before a request line are allowed (RFC 9112 2.2).
    ok = raw_http(port, b"\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200"), ok
