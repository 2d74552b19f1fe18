"""Crypto tokens: the only place private keys are used.

Callers name keys by id and ask for signatures over bytes; they never hold a
private key object. A PKCS#11 token can implement the same interface.
"""

import re
import threading
from abc import ABC, abstractmethod
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

from ca.errors import BadInputError, KeyAccessError, NotFoundError
from ca.fsutil import ensure_private_dir, write_secret_file
from ca.keys import PassphraseSource, SignatureAlgorithm, generate_private_key
from common.pkcs8 import encrypt_private_key

_KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_key_id(key_id: str) -> str:
    if not _KEY_ID.match(key_id):
        raise BadInputError(
            f"invalid key id {key_id!r}: use letters, digits, '.', '_' and '-' (max 128)"
        )
    return key_id


def sign_with(private_key, data: bytes, algorithm: SignatureAlgorithm) -> bytes:
    """Sign ``data`` with a private key object according to ``algorithm``."""
    if algorithm.family == "ed25519":
        return private_key.sign(data)
    if algorithm.family == "ec":
        return private_key.sign(data, ec.ECDSA(algorithm.hash()))
    return private_key.sign(data, padding.PKCS1v15(), algorithm.hash())


class CryptoToken(ABC):
    """Holds private keys and signs with them."""

    @abstractmethod
    def generate_key(self, key_id: str, spec: str):
        """Create a key pair under ``key_id``; return its public key."""

    @abstractmethod
    def import_key(self, key_id: str, private_key) -> None:
        """Take over an existing private key (for ``ca import``)."""

    @abstractmethod
    def public_key(self, key_id: str):
        """The public key of ``key_id``."""

    @abstractmethod
    def sign(self, key_id: str, data: bytes, algorithm: SignatureAlgorithm) -> bytes:
        """Signature over ``data`` (the token hashes it)."""

    @abstractmethod
    def has_key(self, key_id: str) -> bool: ...

    @abstractmethod
    def remove_key(self, key_id: str) -> None:
        """Delete a key that was created for an operation that then failed."""


class SoftwareToken(CryptoToken):
    """Keys as PKCS#8 files encrypted with a passphrase (PBES2, AES-256-CBC),
    mode 0600 in a 0700 directory. Decrypted keys are kept in memory only."""

    def __init__(self, directory: Path, passphrase: PassphraseSource):
        self.directory = directory
        self._passphrase = passphrase
        self._cache: dict[str, object] = {}
        self._lock = threading.Lock()

    def _path(self, key_id: str) -> Path:
        return self.directory / f"{check_key_id(key_id)}.key.pem"

    def has_key(self, key_id: str) -> bool:
        return self._path(key_id).exists()

    def key_file(self, key_id: str) -> Path:
        """The encrypted key file, for handing a responder key to a VA."""
        path = self._path(key_id)
        if not path.exists():
            raise NotFoundError(f"key {key_id!r} not found in {self.directory}")
        return path

    def remove_key(self, key_id: str) -> None:
        self._path(key_id).unlink(missing_ok=True)
        with self._lock:
            self._cache.pop(key_id, None)

    def _store(self, key_id: str, private_key) -> None:
        pem = encrypt_private_key(private_key, self._passphrase.get())
        ensure_private_dir(self.directory)
        write_secret_file(self._path(key_id), pem)
        with self._lock:
            self._cache[key_id] = private_key

    def generate_key(self, key_id: str, spec: str):
        private_key = generate_private_key(spec)
        self._store(key_id, private_key)
        return private_key.public_key()

    def import_key(self, key_id: str, private_key) -> None:
        self._store(key_id, private_key)

    def _load(self, key_id: str):
        with self._lock:
            cached = self._cache.get(key_id)
        if cached is not None:
            return cached
        path = self._path(key_id)
        try:
            pem = path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"key {key_id!r} not found in {self.directory}") from None
        except OSError as exc:
            raise KeyAccessError(f"cannot read key file {path}: {exc.strerror}") from exc
        private_key = load_private_key(pem, self._passphrase.get(), what=f"key {key_id!r}")
        with self._lock:
            self._cache[key_id] = private_key
        return private_key

    def public_key(self, key_id: str):
        return self._load(key_id).public_key()

    def sign(self, key_id: str, data: bytes, algorithm: SignatureAlgorithm) -> bytes:
        return sign_with(self._load(key_id), data, algorithm)


def load_private_key(data: bytes, passphrase: bytes | None, *, what: str = "private key"):
    """Load a PEM or DER private key, encrypted or not, with clear errors."""
    loader = (
        serialization.load_pem_private_key
        if b"-----BEGIN" in data
        else serialization.load_der_private_key
    )
    try:
        return loader(data, password=passphrase)
    except TypeError as exc:
        # cryptography: "Password was given but private key is not encrypted"
        # or "Password was not given but private key is encrypted".
        if passphrase is not None and "not encrypted" in str(exc):
            return loader(data, password=None)
        raise KeyAccessError(f"{what} is encrypted and no passphrase was given") from exc
    except ValueError as exc:
        # A wrong passphrase usually fails the decryption ("password" in the
        # message), but about once in 256 tries the CBC padding happens to be
        # valid and only the parse of the garbage fails: for an encrypted key,
        # any failure with a passphrase given is a passphrase failure.
        if "password" in str(exc).lower() or (passphrase is not None and _encrypted(data)):
            raise KeyAccessError(
                f"wrong passphrase for {what} (or the key file is damaged)"
            ) from exc
        raise BadInputError(f"{what} is not a valid PEM or DER private key") from exc
    except UnsupportedAlgorithm as exc:
        raise BadInputError(f"{what} uses an unsupported algorithm: {exc}") from exc


def _encrypted(data: bytes) -> bool:
    """PKCS#8 EncryptedPrivateKeyInfo (PEM or DER) or a legacy encrypted PEM."""
    if b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data or b"Proc-Type: 4,ENCRYPTED" in data:
        return True
    # DER EncryptedPrivateKeyInfo starts SEQUENCE { SEQUENCE { OID ... } }, a
    # PrivateKeyInfo SEQUENCE { INTEGER version ... }.
    try:
        from asn1crypto import keys

        keys.EncryptedPrivateKeyInfo.load(data).native  # noqa: B018
        return True
    except Exception:
        return False
