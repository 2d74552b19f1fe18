"""A small secret sealed with a passphrase, for files kept beside the
encrypted private keys (the audit log's HMAC key, store/audit_key.py).

scrypt (RFC 7914) derives a 256-bit key from the passphrase and a random
salt; AES-256-GCM (NIST SP 800-38D) encrypts the secret under it with a
random nonce and authenticates the header as associated data, so a wrong
passphrase, an edited header and a damaged file all fail the tag. The
header names what the secret is (``label``): a file sealed for one purpose
is refused for another. The sealed form is one JSON object.
"""

import base64
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

FORMAT = "revoca-sealed-v1"
# RFC 7914 section 2: N = 2**15, r = 8 costs 32 MiB and about 0.1 s per
# opening; a file carries its own parameters, so they can rise later.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
MAX_SCRYPT_N = 2**20  # a file asking for more (1 GiB at r = 8) is refused, not obeyed


class SealedError(ValueError):
    """Sealed data that cannot be opened; ``message`` says why."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _derive(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase)


def _aad(header: dict) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def seal(secret: bytes, passphrase: bytes, label: str) -> bytes:
    """``secret`` encrypted under ``passphrase``, as the bytes of a file."""
    salt, nonce = os.urandom(16), os.urandom(12)
    header = {
        "format": FORMAT,
        "label": label,
        "kdf": {"name": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _b64(salt)},
        "cipher": {"name": "aes-256-gcm", "nonce": _b64(nonce)},
    }
    key = _derive(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    ciphertext = AESGCM(key).encrypt(nonce, secret, _aad(header))
    return (json.dumps({**header, "ciphertext": _b64(ciphertext)}, indent=1) + "\n").encode()


def unseal(data: bytes, passphrase: bytes, label: str) -> bytes:
    """The secret ``seal`` put in ``data``; SealedError for anything else."""
    try:
        sealed = json.loads(data)
        header = {k: sealed[k] for k in ("format", "label", "kdf", "cipher")}
        kdf, cipher = header["kdf"], header["cipher"]
        n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
        salt = base64.b64decode(kdf["salt"], validate=True)
        nonce = base64.b64decode(cipher["nonce"], validate=True)
        ciphertext = base64.b64decode(sealed["ciphertext"], validate=True)
    except (ValueError, KeyError, TypeError):
        raise SealedError("is not a sealed secret (damaged?)") from None
    if header["format"] != FORMAT or kdf.get("name") != "scrypt":
        raise SealedError(f"has an unknown format (expected {FORMAT} with scrypt)")
    if header["label"] != label:
        raise SealedError(f"holds a {header['label']!r}, not a {label!r}")
    if cipher.get("name") != "aes-256-gcm" or len(nonce) != 12:
        raise SealedError("uses an unknown cipher (expected aes-256-gcm)")
    if not (2 <= n <= MAX_SCRYPT_N and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
        raise SealedError(f"asks for scrypt parameters outside the accepted range (N={n})")
    try:
        return AESGCM(_derive(passphrase, salt, n, r, p)).decrypt(nonce, ciphertext, _aad(header))
    except InvalidTag:
        raise SealedError("does not open with this passphrase (or is damaged)") from None
