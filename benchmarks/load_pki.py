"""The load benchmark's test PKI: a CA with a delegated OCSP signer, N
certificate statuses in an OpenSSL index.txt loaded into a VA and
pre-signed, a corpus of distinct requests, and the checks every answer must
pass before a figure counts. Shared by ``load_bench.py`` and ``soak.py``."""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import random
import secrets
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from benchmarks.load_servers import (
    OCSP_PATH,
    CheckFailed,
    Setup,
)

ISSUER = "load-issuing"


@dataclass
class Corpus:
    """Distinct requests with what each must get back."""

    posts: list[bytes] = field(default_factory=list)
    gets: list[str] = field(default_factory=list)
    serials: list[int] = field(default_factory=list)
    revoked: list[bool] = field(default_factory=list)


def progress_bar(label: str, total: int):
    """A one-line progress bar on stderr: returns advance(n)."""
    done = [0]
    started = time.monotonic()

    def advance(n: int) -> None:
        done[0] += n
        width = 30
        filled = int(width * min(done[0], total) / max(total, 1))
        rate = done[0] / max(time.monotonic() - started, 1e-9)
        print(
            f"\r  {label:<22} [{'#' * filled}{'.' * (width - filled)}] "
            f"{done[0]:>10,}/{total:,} {rate:>9,.0f}/s",
            end="" if done[0] < total else "\n",
            file=sys.stderr,
            flush=True,
        )

    return advance


# ---------------------------------------------------------------- the PKI


def raw_signature_seconds(key, budget: float) -> float:
    """Seconds per raw ECDSA P-256 signature over a response-sized message
    with ``key`` (cryptography, the digest included), on the calling core."""
    from cryptography.hazmat.primitives.asymmetric import ec

    algorithm = ec.ECDSA(hashes.SHA256())  # made once, as the cryptography path (the twin) does
    return _seconds_per_call(lambda message: key.sign(message, algorithm), budget)


def floor_signature_seconds(key, budget: float) -> float | None:
    """Seconds per signature by libcrypto with its signing context made once
    (va/_evpsign.pyx, the digest included): what ``openssl speed`` measures,
    the fastest this key signs on this core. None without the extension."""
    from va.signing import native_signer

    signer = native_signer(key, "ec", "sha256")
    return None if signer is None else _seconds_per_call(signer.sign, budget)


def _seconds_per_call(sign, budget: float) -> float:
    message = secrets.token_bytes(180)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < budget:
        for _ in range(100):
            sign(message)
        count += 100
    return (time.perf_counter() - started) / count


def build(
    workdir: Path, certs: int, seed: int, presign_workers: int, raw_budget: float = 3.0
) -> Setup:
    """CA, signer, N statuses in index.txt, the VA loaded and pre-signed.
    The raw signature time is measured just before and just after
    pre-signing (``timings``), in this process, with the responder's key."""

    from ca.fsutil import ensure_private_dir, write_secret_file
    from revoca.app import build_ca_service
    from revoca.cli_va import va_settings
    from revoca.config import load_config
    from va.app import open_store
    from va.issuers import load_issuers
    from va.openssl_index import import_index
    from va.presign import presign_all

    ensure_private_dir(workdir)
    passphrase_file = workdir / "key-passphrase"
    write_secret_file(passphrase_file, secrets.token_urlsafe(24).encode())
    config = load_config(None, data_dir=workdir).with_passphrase_file(passphrase_file)
    service = build_ca_service(config, create=True)
    service.init_root("load-root", "CN=Load Test Root,O=Revoca Benchmarks")
    issuing = service.create_sub("load-issuing", "load-root", "CN=Load Test Issuing CA")
    signer, key_id = service.issue_ocsp_signer("load-issuing")
    issuer_pem = workdir / "issuing.pem"
    issuer_pem.write_bytes(issuing.certificate.public_bytes(serialization.Encoding.PEM))
    (workdir / "signer.pem").write_bytes(
        signer.certificate.public_bytes(serialization.Encoding.PEM)
    )
    signer_key = service.token.key_file(key_id)

    rng = random.Random(seed)
    index = workdir / "index.txt"
    revoked = 0
    advance = progress_bar("index.txt", certs)
    with index.open("w") as out:
        for i in range(certs):
            serial = rng.getrandbits(127) | 1 << 126
            if rng.random() < 0.1:
                revoked += 1
                reason = ("keyCompromise", "superseded", "cessationOfOperation")[i % 3]
                out.write(
                    f"R\t301231235959Z\t250101000000Z,{reason}\t{serial:X}\tunknown\t/CN=c{i}\n"
                )
            else:
                out.write(f"V\t301231235959Z\t\t{serial:X}\tunknown\t/CN=c{i}\n")
            if i % 100_000 == 99_999 or i == certs - 1:
                advance(i % 100_000 + 1)

    settings = va_settings(config)
    store = open_store(settings)
    timings = {}
    started = time.perf_counter()
    loaded = import_index(
        store,
        settings.key_dir,
        name=ISSUER,
        issuer=issuing.certificate,
        responder=signer.certificate,
        responder_key=signer_key,
        key_passphrase=config.passphrase.get(),
        va_passphrase=config.passphrase.get(),
        index_text=index.read_text(),
        policy=config.va.policy,
        progress=progress_bar("importing", certs),
    )
    timings["import_seconds"] = time.perf_counter() - started
    assert loaded == certs, (loaded, certs)
    entries = load_issuers(store, settings.key_dir, config.passphrase.get())
    total = certs * len(settings.presign_algorithms)
    key = entries[0].signer.private_key
    timings["raw_signature_before_seconds"] = raw_signature_seconds(key, raw_budget)
    timings["floor_signature_before_seconds"] = floor_signature_seconds(key, raw_budget)
    advance = progress_bar("pre-signing", total)
    started = time.perf_counter()
    signed = presign_all(
        store,
        entries,
        settings.algorithm_codes,
        now=int(time.time()),
        progress=advance,
        workers=presign_workers,
    )
    timings["presign_seconds"] = time.perf_counter() - started
    timings["raw_signature_after_seconds"] = raw_signature_seconds(key, raw_budget)
    timings["floor_signature_after_seconds"] = floor_signature_seconds(key, raw_budget)
    timings["presign_workers"] = presign_workers
    timings["presigned"] = signed
    store.close()
    env = {**os.environ, "REVOCA_KEY_PASSPHRASE": passphrase_file.read_text().strip()}
    return Setup(
        workdir,
        env,
        issuing.certificate,
        signer.certificate,
        signer_key,
        passphrase_file,
        index,
        certs,
        revoked,
        timings,
    )


def make_corpus(setup: Setup, size: int, seed: int, nonce: bool = False) -> Corpus:
    """``size`` distinct requests over serials taken from index.txt: half
    with SHA-1 CertIDs, half SHA-256, revoked ones in proportion."""
    rng = random.Random(seed)
    lines = setup.index.read_text().splitlines()
    picked = rng.sample(lines, min(size, len(lines)))
    issuer_name = setup.issuer.subject.public_bytes()
    issuer_key = setup.issuer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    from asn1crypto import keys as asn1_keys

    key_bits = asn1_keys.PublicKeyInfo.load(issuer_key)["public_key"].native
    corpus = Corpus()
    for i, line in enumerate(picked):
        status, _, _, serial_hex, _, _ = line.split("\t")
        algorithm = hashes.SHA1() if i % 2 == 0 else hashes.SHA256()
        name_hash = hashlib.new(algorithm.name, issuer_name).digest()
        key_hash = hashlib.new(algorithm.name, key_bits).digest()
        builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
            name_hash, key_hash, int(serial_hex, 16), algorithm
        )
        if nonce:
            builder = builder.add_extension(x509.OCSPNonce(secrets.token_bytes(16)), False)
        der = builder.build().public_bytes(serialization.Encoding.DER)
        corpus.posts.append(der)
        corpus.gets.append(
            OCSP_PATH + "/" + urllib.parse.quote(base64.b64encode(der).decode(), safe="")
        )
        corpus.serials.append(int(serial_hex, 16))
        corpus.revoked.append(status == "R")
    return corpus


def write_records(path: Path, records: list[bytes]) -> Path:
    with path.open("wb") as out:
        for record in records:
            out.write(b"%d\n" % len(record) + record)
    return path


# ---------------------------------------------------------------- checks


def fetch(port: int, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Content-Type": "application/ocsp-request"} if body is not None else {}
        connection.request(method, path, body=body, headers=headers)
        reply = connection.getresponse()
        return reply.status, reply.read()
    finally:
        connection.close()


def check_answer(setup: Setup, corpus: Corpus, i: int, status: int, body: bytes, what: str):
    if status != 200:
        raise CheckFailed(f"{what}: request {i}: HTTP {status}")
    parsed = ocsp.load_der_ocsp_response(body)
    if parsed.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise CheckFailed(f"{what}: request {i}: {parsed.response_status}")
    if parsed.serial_number != corpus.serials[i]:
        raise CheckFailed(f"{what}: request {i}: answer for serial {parsed.serial_number:x}")
    want = ocsp.OCSPCertStatus.REVOKED if corpus.revoked[i] else ocsp.OCSPCertStatus.GOOD
    if parsed.certificate_status != want:
        raise CheckFailed(f"{what}: request {i}: {parsed.certificate_status}, expected {want}")
    from cryptography.hazmat.primitives.asymmetric import ec

    setup.signer.public_key().verify(
        parsed.signature, parsed.tbs_response_bytes, ec.ECDSA(parsed.signature_hash_algorithm)
    )


def verify_server(setup, corpus, port, what, *, get=True, paths=None, expect=None) -> list[bytes]:
    """Send every corpus request once; check each answer. Returns the answers."""
    answers = []
    for i, der in enumerate(corpus.posts):
        if paths is not None:  # nginx: the stored bytes under /r/<i>.der
            status, body = fetch(port, "GET", paths[i], None)
            if status != 200 or body != expect[i]:
                raise CheckFailed(f"{what}: /r/{i}.der is not the VA's answer")
            status, body = fetch(port, "POST", paths[i], b"")
            if status != 200 or body != expect[i]:
                raise CheckFailed(f"{what}: POST /r/{i}.der: HTTP {status}, wrong bytes")
            answers.append(body)
            continue
        status, body = fetch(port, "POST", OCSP_PATH, der)
        check_answer(setup, corpus, i, status, body, f"{what} POST")
        if get:
            status, by_get = fetch(port, "GET", corpus.gets[i], None)
            check_answer(setup, corpus, i, status, by_get, f"{what} GET")
            if expect is None and by_get != body:
                raise CheckFailed(f"{what}: GET and POST answers differ for request {i}")
        answers.append(body)
    return answers
