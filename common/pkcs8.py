"""Encrypted PKCS#8 private keys: the one writer of every key file (and of
the keys kept in the store), and the reader of their KDF parameters.

RFC 5958 3: EncryptedPrivateKeyInfo ::= SEQUENCE { encryptionAlgorithm,
encryptedData }. The algorithm is PBES2 (RFC 8018 6.2) with the scrypt KDF
(RFC 7914 7) and AES-256-CBC (RFC 8018 B.2.5 defines the CBC pad; the OID is
NIST's aes256-CBC, its parameter the 16-octet IV). cryptography (50) cannot
choose the KDF or its cost for PKCS#8 (``encryption_builder`` is for
OpenSSH and PKCS#12 only; ``BestAvailableEncryption`` gives PBKDF2 with 2048
iterations), so the structure is built here with asn1crypto; reading keys
stays with cryptography's loader, which reads this format and the old one.

The cost: scrypt N=2^14, r=8, p=5. OpenSSL decrypts PKCS#8 with scrypt only
within 32 MiB (its scrypt maxmem), so N=2^17, r=8 (128 MiB) would make
files ``openssl pkey`` cannot read; OpenSSL's own default (``openssl pkcs8
-scrypt``: N=2^14, r=8, p=1) is a fifth of the work OWASP's Password Storage
Cheat Sheet asks for, which lists N=2^14, r=8, p=5 as the equivalent of its
N=2^17, r=8, p=1 minimum within 16 MiB.
"""

import os
from dataclasses import dataclass
from typing import ClassVar

from asn1crypto import algos, core, keys, pem
from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

# RFC 7914 7: id-scrypt.
SCRYPT_OID = "1.3.6.1.4.1.11591.4.11"
SALT_BYTES = 16  # RFC 8018 4.1: at least eight octets
IV_BYTES = 16  # AES block
KEY_BYTES = 32  # AES-256


@dataclass(frozen=True)
class ScryptCost:
    """RFC 7914 2: N (CPU/memory cost, a power of 2), r (block size), p
    (parallelization). Memory is about 128 * r * N bytes."""

    n: int
    r: int
    p: int


KEY_FILE_COST = ScryptCost(n=2**14, r=8, p=5)


class ScryptParams(core.Sequence):
    """RFC 7914 7.1 scrypt-params."""

    _fields: ClassVar = [
        ("salt", core.OctetString),
        ("cost_parameter", core.Integer),
        ("block_size", core.Integer),
        ("parallelization_parameter", core.Integer),
        ("key_length", core.Integer, {"optional": True}),
    ]


@dataclass(frozen=True)
class KeyEncryption:
    """How an encrypted key was encrypted, read back from its DER."""

    scheme: str  # "pbes2", "pbes1" (PKCS#5 v1.5), "legacy-pem", or "none"
    kdf: str  # "scrypt", "pbkdf2", or the KDF's OID
    cipher: str  # "aes256_cbc", ...
    iterations: int | None = None  # PBKDF2
    prf: str | None = None  # PBKDF2: "sha256", ...
    cost: ScryptCost | None = None  # scrypt

    def is_current(self) -> bool:
        """As strong as what ``encrypt_private_key`` writes for files."""
        return (
            self.scheme == "pbes2"
            and self.kdf == "scrypt"
            and self.cipher == "aes256_cbc"
            and self.cost is not None
            and self.cost.n >= KEY_FILE_COST.n
            and self.cost.r >= KEY_FILE_COST.r
            and self.cost.n * self.cost.r * self.cost.p
            >= KEY_FILE_COST.n * KEY_FILE_COST.r * KEY_FILE_COST.p
        )

    def describe(self) -> str:
        if self.scheme == "none":
            return "unencrypted"
        if self.scheme == "legacy-pem":
            return f"legacy PEM encryption (MD5 key derivation) {self.cipher}"
        if self.kdf == "scrypt" and self.cost is not None:
            kdf = f"scrypt N=2^{self.cost.n.bit_length() - 1} r={self.cost.r} p={self.cost.p}"
        elif self.kdf == "pbkdf2":
            kdf = f"PBKDF2-HMAC-{(self.prf or 'sha1').upper()} {self.iterations} iterations"
        else:
            kdf = self.kdf
        return f"{self.scheme.upper()} {kdf} {self.cipher}"


def encrypt_private_key(
    private_key,
    passphrase: bytes,
    *,
    encoding: serialization.Encoding = serialization.Encoding.PEM,
    cost: ScryptCost | None = None,
) -> bytes:
    """``private_key`` (a cryptography key object) as an EncryptedPrivateKeyInfo
    under ``passphrase``: PEM ("ENCRYPTED PRIVATE KEY", RFC 7468 11) or DER,
    at ``cost`` (default ``KEY_FILE_COST``)."""
    cost = cost or KEY_FILE_COST
    if not isinstance(passphrase, bytes) or not passphrase:
        raise TypeError("passphrase must be non-empty bytes")
    plain = private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    salt = os.urandom(SALT_BYTES)
    iv = os.urandom(IV_BYTES)
    # RFC 8018 6.2.1 steps 2-4: derive the key, pad (B.2.5: PKCS#5 padding to
    # the block size), encrypt.
    key = Scrypt(salt=salt, length=KEY_BYTES, n=cost.n, r=cost.r, p=cost.p).derive(passphrase)
    padder = padding.PKCS7(algorithms.AES.block_size).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    encrypted = encryptor.update(padded) + encryptor.finalize()
    params = ScryptParams(
        {
            "salt": salt,
            "cost_parameter": cost.n,
            "block_size": cost.r,
            "parallelization_parameter": cost.p,
        }
    )
    info = keys.EncryptedPrivateKeyInfo(
        {
            "encryption_algorithm": {
                "algorithm": "pbes2",
                "parameters": {
                    "key_derivation_func": {"algorithm": SCRYPT_OID, "parameters": params},
                    "encryption_scheme": {"algorithm": "aes256_cbc", "parameters": iv},
                },
            },
            "encrypted_data": encrypted,
        }
    )
    der = info.dump()
    if encoding == serialization.Encoding.DER:
        return der
    if encoding == serialization.Encoding.PEM:
        return pem.armor("ENCRYPTED PRIVATE KEY", der)
    raise ValueError(f"encoding must be PEM or DER, not {encoding}")


def key_encryption(data: bytes) -> KeyEncryption:
    """How the PEM or DER key ``data`` is encrypted (``scheme`` "none" for an
    unencrypted or legacy "Proc-Type: 4,ENCRYPTED" PEM key); ValueError for
    something that is not a key at all."""
    der = data
    if pem.detect(data):
        label, headers, der = pem.unarmor(data)
        if headers.get("Proc-Type") == "4,ENCRYPTED":  # RFC 1421 4.6.1.1, OpenSSL's legacy PEM
            cipher = headers.get("DEK-Info", "").partition(",")[0].lower()
            return KeyEncryption("legacy-pem", "md5", cipher or "unknown")
        if label != "ENCRYPTED PRIVATE KEY":
            return KeyEncryption("none", "none", "none")
    try:
        info = keys.EncryptedPrivateKeyInfo.load(der)
        algorithm = info["encryption_algorithm"]
        name = algorithm["algorithm"].native
    except ValueError as exc:
        try:
            keys.PrivateKeyInfo.load(der)["private_key_algorithm"].native  # noqa: B018
        except ValueError:
            raise ValueError(f"not a PKCS#8 private key: {exc}") from None
        return KeyEncryption("none", "none", "none")
    if name != "pbes2":
        return KeyEncryption("pbes1", name, name)
    params = algorithm["parameters"]
    kdf = params["key_derivation_func"]
    cipher = params["encryption_scheme"]["algorithm"].native
    if kdf["algorithm"].dotted == SCRYPT_OID:
        scrypt = kdf["parameters"].parse(ScryptParams)
        cost = ScryptCost(
            scrypt["cost_parameter"].native,
            scrypt["block_size"].native,
            scrypt["parallelization_parameter"].native,
        )
        return KeyEncryption("pbes2", "scrypt", cipher, cost=cost)
    if kdf["algorithm"].native == "pbkdf2":
        pbkdf2: algos.Pbkdf2Params = kdf["parameters"]
        prf = pbkdf2["prf"]["algorithm"].native  # RFC 8018 A.2: default hmacWithSHA1
        return KeyEncryption(
            "pbes2",
            "pbkdf2",
            cipher,
            iterations=pbkdf2["iteration_count"].native,
            prf=prf.removeprefix("hmac_with_") if isinstance(prf, str) else prf,
        )
    return KeyEncryption("pbes2", kdf["algorithm"].dotted, cipher)
