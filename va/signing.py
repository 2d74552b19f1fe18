"""Responder keys and the signature algorithms OCSP responses are signed with.

The VA is deployable alone, so it reads its own keys: PKCS#8 files,
encrypted, the passphrase handed in by whoever starts the VA.
"""

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from common import native
from va.errors import ResponderKeyError, SigningError

log = logging.getLogger(__name__)

# The native signer, or None where cryptography signs (its twin, below): not
# built (the extension is optional), or REVOCA_NO_EXTENSIONS=1.
_evpsign = native.load("va._evpsign")
EVPSigner = _evpsign.EVPSigner if _evpsign is not None else None
IMPLEMENTATION = "native" if EVPSigner is not None else "python"

# AlgorithmIdentifier DER per (key family, hash): RSA PKCS#1 v1.5 with NULL
# parameters (RFC 4055), ECDSA and Ed25519 without (RFC 5758, RFC 8410).
_ALGORITHMS = {
    ("ec", "sha256"): bytes.fromhex("300a06082a8648ce3d040302"),
    ("ec", "sha384"): bytes.fromhex("300a06082a8648ce3d040303"),
    ("rsa", "sha256"): bytes.fromhex("300d06092a864886f70d01010b0500"),
    ("ed25519", None): bytes.fromhex("300506032b6570"),
}


# Decrypted responder keys by file content and passphrase. A key file costs
# one scrypt to decrypt (about 0.2 s, common/pkcs8.py); the supervisor's
# check at start decrypts each once, and the workers it forks, at start and
# on reload, find the key here instead of paying again. A changed file is a
# new entry; the set is the key files of one VA, a handful.
_decrypted: dict[bytes, object] = {}


def load_key(pem: bytes, passphrase: bytes | None, what: str):
    tag = hmac.new(passphrase or b"", pem, hashlib.sha256).digest()
    key = _decrypted.get(tag)
    if key is None:
        key = _decrypted[tag] = _load_key(pem, passphrase, what)
    return key


def _load_key(pem: bytes, passphrase: bytes | None, what: str):
    try:
        return serialization.load_pem_private_key(pem, password=passphrase)
    except TypeError as exc:
        if passphrase is not None and "not encrypted" in str(exc):
            return serialization.load_pem_private_key(pem, password=None)
        raise ResponderKeyError(f"{what} is encrypted and no passphrase was given") from None
    except ValueError as exc:
        # About once in 256 wrong passphrases the CBC padding is valid and only
        # the parse fails: for an encrypted key, any failure is the passphrase.
        encrypted = b"ENCRYPTED" in pem
        if "password" in str(exc).lower() or (passphrase is not None and encrypted):
            raise ResponderKeyError(
                f"wrong passphrase for {what} (or the key is damaged)"
            ) from None
        raise ResponderKeyError(f"{what} is not a valid PEM private key") from None


def native_signer(key, family: str, hash_name: str | None):
    """``key`` in libcrypto with a signing context made once
    (va/_evpsign.pyx), or None where cryptography signs: Ed25519, a build
    without the extension, a key this libcrypto cannot use (logged)."""
    if EVPSigner is None or family not in ("ec", "rsa"):
        return None
    # Handed over encrypted under a passphrase used once, so no unencrypted
    # copy of the key is ever a Python object. Not a key file: the passphrase
    # is 256 random bits made for this one load, so a KDF work factor would
    # only slow every start (key files: common/pkcs8.py); cryptography
    # encrypts it inside OpenSSL, where common/pkcs8.py would hold the
    # plaintext PKCS#8 as Python bytes.
    passphrase = secrets.token_hex(32).encode()
    encrypted = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )
    try:
        return EVPSigner(encrypted, passphrase, family, hash_name)
    except SigningError as exc:
        log.warning("responder key stays with cryptography: %s", exc)
        return None


@dataclass
class Signer:
    """Signs ResponseData with one key: the CA's own or a delegated responder's."""

    private_key: object
    certificate: x509.Certificate
    # False: always the cryptography path (the twin; tests and benchmarks).
    native_allowed: bool = True

    def __post_init__(self):
        key = self.private_key
        if isinstance(key, ed25519.Ed25519PrivateKey):
            self.family, self.hash_name = "ed25519", None
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            self.family = "ec"
            self.hash_name = "sha384" if key.curve.key_size >= 384 else "sha256"
        elif isinstance(key, rsa.RSAPrivateKey):
            self.family, self.hash_name = "rsa", "sha256"
        else:
            raise ResponderKeyError(f"unsupported responder key type {type(key).__name__}")
        public = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if key.public_key().public_bytes(*public) != self.certificate.public_key().public_bytes(
            *public
        ):
            raise ResponderKeyError("the responder key does not match the responder certificate")
        self.algorithm_identifier = _ALGORITHMS[(self.family, self.hash_name)]
        # EC and RSA keys sign through libcrypto with a signing context made
        # once (va/_evpsign.pyx): cryptography makes one per signature, about
        # 9 µs of a 49 µs P-256 signature. Ed25519, and builds without the
        # extension, sign through cryptography (the twin).
        self.native = (
            native_signer(key, self.family, self.hash_name) if self.native_allowed else None
        )
        if self.native is not None:
            self.sign = self.native.sign
            self.sign_many = self.native.sign_many
            return
        # Made once: building ec.ECDSA(...) costs about 7 µs a signature. The
        # digest is taken with hashlib and handed over prehashed: cryptography
        # would otherwise build a Python hash object per signature (about 5 µs
        # of a 48 µs P-256 signature); the signature is the same algorithm.
        self._digest = {"sha256": hashlib.sha256, "sha384": hashlib.sha384}.get(self.hash_name)
        if self.family == "ec":
            prehashed = utils.Prehashed(
                {"sha256": hashes.SHA256, "sha384": hashes.SHA384}[self.hash_name]()
            )
            self._sign_args = (ec.ECDSA(prehashed),)
        elif self.family == "rsa":
            self._sign_args = (padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        else:
            self._sign_args = ()

    def sign(self, data: bytes) -> bytes:
        """The signature of ``data`` (replaced by the native signer's when in use)."""
        if self._digest is None:  # Ed25519 signs the message itself
            return self.private_key.sign(data)
        return self.private_key.sign(self._digest(data).digest(), *self._sign_args)

    def sign_many(self, messages: list[bytes]) -> list[bytes]:
        """``sign`` each message, back to back (bulk pre-signing)."""
        sign, digest, args = self.private_key.sign, self._digest, self._sign_args
        if digest is None:
            return [sign(message) for message in messages]
        return [sign(digest(message).digest(), *args) for message in messages]


def spki_key_hash(certificate: x509.Certificate, algorithm: str = "sha1") -> bytes:
    """Hash of the subjectPublicKey BIT STRING's value (RFC 6960 4.1.1 issuerKeyHash,
    and ResponderID byKey)."""
    from asn1crypto import keys

    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_bits = keys.PublicKeyInfo.load(spki)["public_key"].contents[1:]  # skip unused-bits octet
    return hashlib.new(algorithm, key_bits).digest()


def subject_der(certificate: x509.Certificate) -> bytes:
    """The certificate's subject Name exactly as encoded in the certificate."""
    from asn1crypto import x509 as asn1_x509

    der = certificate.public_bytes(serialization.Encoding.DER)
    return asn1_x509.Certificate.load(der)["tbs_certificate"]["subject"].dump()
