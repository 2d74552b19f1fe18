"""The responder's signer: libcrypto with a reused context (va/_evpsign.pyx)
and its twin, cryptography (va/signing.py). Both checked by cryptography's
verifier; RSA PKCS#1 v1.5 is deterministic, so there they agree byte for byte."""

import datetime
import os
import secrets
import subprocess
import threading

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

from common import native
from tests.conftest import TWIN_ONLY
from va import signing
from va.signing import Signer

# Signing goes through va.signing's switch; the native signer is optional
# (setup.py), so a test that needs it skips where it is switched off or not built.
pytestmark = pytest.mark.twin
NATIVE = signing.EVPSigner is not None
needs_native = pytest.mark.skipif(
    not NATIVE,
    reason=f"needs va._evpsign; {TWIN_ONLY}" if not native.extensions_allowed() else "not built",
)

KEYS = {
    "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "rsa2048": lambda: rsa.generate_private_key(65537, 2048),
    "ed25519": ed25519.Ed25519PrivateKey.generate,
}


def _certificate(key) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "signer test")])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


def _verify(key, signature: bytes, message: bytes) -> None:
    public = key.public_key()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        digest = hashes.SHA384() if key.curve.key_size >= 384 else hashes.SHA256()
        public.verify(signature, message, ec.ECDSA(digest))
    elif isinstance(key, rsa.RSAPrivateKey):
        public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    else:
        public.verify(signature, message)


def _twin(key) -> Signer:
    return Signer(key, _certificate(key), native_allowed=False)


MESSAGES = [b"", b"x", secrets.token_bytes(180), secrets.token_bytes(5000)]


@pytest.mark.parametrize("kind", sorted(KEYS))
def test_signatures_verify(implementation, kind):
    """Each implementation's signatures verify; Ed25519 always signs through
    cryptography (the twin)."""
    if implementation == "native" and not NATIVE:
        pytest.skip("va._evpsign is not built (an optional extension)")
    key = KEYS[kind]()
    signer = Signer(key, _certificate(key), native_allowed=implementation == "native")
    assert (signer.native is not None) == (implementation == "native" and kind != "ed25519")
    for message in MESSAGES:
        _verify(key, signer.sign(message), message)
    for message, signature in zip(MESSAGES, signer.sign_many(MESSAGES), strict=True):
        _verify(key, signature, message)
    if signer.native is not None and kind != "rsa2048":  # ECDSA: a fresh random k each time
        assert signer.sign(b"m") != signer.sign(b"m")


@needs_native
@pytest.mark.parametrize("kind", ["rsa2048", "ed25519"])
def test_deterministic_signatures_are_the_twins_bytes(kind):
    key = KEYS[kind]()
    assert Signer(key, _certificate(key)).sign_many(MESSAGES) == _twin(key).sign_many(MESSAGES)


@needs_native
def test_a_native_signature_fails_for_another_message():
    key = KEYS["p256"]()
    signature = Signer(key, _certificate(key)).sign(b"signed")
    with pytest.raises(InvalidSignature):
        _verify(key, signature, b"not signed")


@needs_native
def test_openssl_verifies_a_native_signature(tmp_path):
    key = KEYS["p256"]()
    message = secrets.token_bytes(300)
    (tmp_path / "message").write_bytes(message)
    (tmp_path / "signature").write_bytes(Signer(key, _certificate(key)).sign(message))
    (tmp_path / "public.pem").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    result = subprocess.run(
        [
            "openssl",
            "dgst",
            "-sha256",
            "-verify",
            "public.pem",
            "-signature",
            "signature",
            "message",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and "Verified OK" in result.stdout, result.stderr


@needs_native
def test_threads_never_share_a_signing_context():
    """Signing threads release the GIL inside libcrypto; one that finds the
    shared context busy signs with a context of its own."""
    key = KEYS["p256"]()
    signer = Signer(key, _certificate(key))
    results: list[tuple[bytes, bytes]] = []
    lock = threading.Lock()

    def work(seed: int) -> None:
        for i in range(150):
            message = b"%d-%d" % (seed, i)
            signature = signer.sign(message)
            with lock:
                results.append((message, signature))

    def work_many(seed: int) -> None:  # a list at a time: one GIL release each
        for i in range(10):
            messages = [b"%d-%d-%d" % (seed, i, n) for n in range(15)]
            signatures = signer.sign_many(messages)
            with lock:
                results.extend(zip(messages, signatures, strict=True))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(2)]
    threads += [threading.Thread(target=work_many, args=(n,)) for n in range(2, 4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 600
    for message, signature in results:
        _verify(key, signature, message)


@needs_native
def test_signer_refusals():
    from va._evpsign import EVPSigner, SigningError

    key = KEYS["p256"]()
    passphrase = b"one time"
    encrypted = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )
    with pytest.raises(SigningError, match="could not load the responder key"):
        EVPSigner(encrypted, b"another", "ec", "sha256")
    with pytest.raises(SigningError, match="could not load the responder key"):
        EVPSigner(encrypted[: len(encrypted) // 2], passphrase, "ec", "sha256")
    with pytest.raises(SigningError, match="not an RSA key"):
        EVPSigner(encrypted, passphrase, "rsa", "sha256")
    with pytest.raises(ValueError, match="unsupported digest"):
        EVPSigner(encrypted, passphrase, "ec", "md5")
    with pytest.raises(ValueError, match="unsupported key family"):
        EVPSigner(encrypted, passphrase, "dsa", "sha256")
    with pytest.raises(ValueError, match="NUL"):
        EVPSigner(encrypted, b"a\x00b", "ec", "sha256")
    with pytest.raises(TypeError):
        EVPSigner(None, passphrase, "ec", "sha256")
    signer = EVPSigner(encrypted, passphrase, "ec", "sha256")
    with pytest.raises(TypeError):
        signer.sign(None)
    with pytest.raises(TypeError):
        signer.sign("text")
    with pytest.raises(TypeError, match="must be bytes"):
        signer.sign_many([b"a", None])
    with pytest.raises(TypeError):
        signer.sign_many((b"a",))  # a list, not any sequence
    assert signer.sign_many([]) == []
    _verify(key, signer.sign(b"still works"), b"still works")


@needs_native
def test_a_forked_child_signs_with_the_inherited_context():
    """Pre-signing forks workers that inherit the loaded key (va/presign.py)."""
    key = KEYS["p256"]()
    signer = Signer(key, _certificate(key))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: sign, hand the signature back, leave at once
        try:
            os.write(write, signer.sign(b"from the child"))
        finally:
            os._exit(0)
    os.close(write)
    signature = os.read(read, 512)
    os.close(read)
    os.waitpid(pid, 0)
    _verify(key, signature, b"from the child")


_ENTRIES: dict = {}


def _job(signer, tbs: bytes):
    """A job of the issuer ``signer`` signs for (one entry per signer, as
    load_issuers builds them)."""
    from types import SimpleNamespace

    from va.responder import SigningJob

    entry = _ENTRIES.setdefault(id(signer), SimpleNamespace(signer=signer, certs=b""))
    return SigningJob(entry, tbs, 100, 200, False)


def _response_data(serial: int) -> bytes:
    from va import fastocsp as core

    certid = core.encode_certid(core.HASH_SHA1, b"\x01" * 20, b"\x02" * 20, bytes([serial + 1]))
    single = core.encode_single_response(
        certid, core.STATUS_GOOD, 0, core.NO_REASON, 1_700_000_000, 1_700_086_400
    )
    responder_id = b"\xa2\x16\x04\x14" + b"\x03" * 20
    return core.encode_response_data(responder_id, 1_700_000_000, [single], b"")


def test_a_batch_is_signed_per_signer_and_each_job_answered():
    """The server signs one loop iteration's jobs with ``finish_all``: each
    issuer's messages in one call to its signer, every job wrapped around its
    own signature."""
    from cryptography.x509 import ocsp

    from va.responder import finish_all

    keys = [KEYS["p256"](), KEYS["rsa2048"]()]
    signers = [Signer(key, _certificate(key)) for key in keys]
    calls = []
    for signer in signers:
        sign_many = signer.sign_many
        signer.sign_many = lambda messages, sign_many=sign_many: (
            calls.append(len(messages)) or sign_many(messages)
        )
    jobs = [_job(signers[i % 2], _response_data(i)) for i in range(5)]
    finish_all(jobs)
    assert sorted(calls) == [2, 3]
    for i, job in enumerate(jobs):
        response = ocsp.load_der_ocsp_response(job.answer.body)
        assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
        assert response.tbs_response_bytes == job.tbs
        _verify(keys[i % 2], response.signature, job.tbs)


def test_a_failing_signer_answers_internal_error_for_its_jobs_only():
    from va import fastocsp as core
    from va.responder import finish_all

    key = KEYS["p256"]()
    good, bad = Signer(key, _certificate(key)), Signer(key, _certificate(key))

    def broken(messages):
        raise RuntimeError("token unavailable")

    bad.sign_many = broken
    jobs = [_job(bad, b"\x30\x00"), _job(good, b"\x30\x00"), _job(bad, b"\x30\x00")]
    with pytest.raises(RuntimeError, match="token unavailable"):
        finish_all(jobs)
    assert jobs[0].answer.body == jobs[2].answer.body == core.INTERNAL_ERROR
    assert jobs[1].answer.kind == "signed"


def test_a_responder_key_is_decrypted_once_per_file_content(monkeypatch):
    """The supervisor's check at start decrypts each key file (one scrypt,
    common/pkcs8.py); its workers, forked at start and on reload, reuse the
    key. A changed file, or another passphrase, is decrypted again."""
    from common.pkcs8 import encrypt_private_key
    from va.errors import ResponderKeyError

    monkeypatch.setattr(signing, "_decrypted", {})
    decryptions = []
    real = signing._load_key
    monkeypatch.setattr(
        signing, "_load_key", lambda *args: decryptions.append(args[0]) or real(*args)
    )
    key = ec.generate_private_key(ec.SECP256R1())
    pem = encrypt_private_key(key, b"va passphrase")
    first = signing.load_key(pem, b"va passphrase", "responder key")
    assert signing.load_key(pem, b"va passphrase", "responder key") is first
    assert decryptions == [pem]
    with pytest.raises(ResponderKeyError, match="wrong passphrase"):
        signing.load_key(pem, b"another passphrase", "responder key")
    rewritten = encrypt_private_key(key, b"va passphrase")
    assert signing.load_key(rewritten, b"va passphrase", "responder key") is not first
    assert decryptions == [pem, pem, rewritten]
