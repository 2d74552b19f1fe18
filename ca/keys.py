"""Key types, generation, and the signature algorithm each key signs with.

Key specs are short names used in profiles and on the command line:
``ec-p256``, ``ec-p384``, ``rsa-2048``, ``rsa-3072``, ``rsa-4096``, ``ed25519``.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ca.errors import ConfigError, KeyAccessError, PolicyError
from common.secretfile import SecretFileError, read_secret_file

KEY_SPECS = ("ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096", "ed25519")

# AlgorithmIdentifier DER for each signature algorithm we produce.
# RFC 4055 2.1 / RFC 8017: RSA PKCS#1 v1.5 carries explicit NULL parameters;
# RFC 5758 3.2: ECDSA omits them; RFC 8410 3: Ed25519 omits them.
_SIG_ALG_DER = {
    ("ec", "sha256"): bytes.fromhex("300a06082a8648ce3d040302"),
    ("ec", "sha384"): bytes.fromhex("300a06082a8648ce3d040303"),
    ("ec", "sha512"): bytes.fromhex("300a06082a8648ce3d040304"),
    ("rsa", "sha256"): bytes.fromhex("300d06092a864886f70d01010b0500"),
    ("rsa", "sha384"): bytes.fromhex("300d06092a864886f70d01010c0500"),
    ("rsa", "sha512"): bytes.fromhex("300d06092a864886f70d01010d0500"),
    ("ed25519", None): bytes.fromhex("300506032b6570"),
}

_HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}


def check_key_spec(spec: str) -> str:
    if spec not in KEY_SPECS:
        raise ConfigError(f"unknown key type {spec!r}; choose one of {', '.join(KEY_SPECS)}")
    return spec


def generate_private_key(spec: str):
    check_key_spec(spec)
    if spec == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if spec == "ec-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if spec == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=int(spec.split("-")[1]))


def key_spec_of(public_key) -> str:
    """Describe a public key as a spec (``rsa-<bits>`` for any RSA size).

    Raises PolicyError for key types the CA never certifies.
    """
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"rsa-{public_key.key_size}"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        curve = public_key.curve.name
        if curve == "secp256r1":
            return "ec-p256"
        if curve == "secp384r1":
            return "ec-p384"
        raise PolicyError(f"elliptic curve {curve} is not supported (use P-256 or P-384)")
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "ed25519"
    raise PolicyError(f"public key type {type(public_key).__name__} is not supported")


@dataclass(frozen=True)
class SignatureAlgorithm:
    """How a key signs: the hash (None for Ed25519) and the AlgorithmIdentifier DER."""

    family: str
    hash_name: str | None
    algorithm_identifier: bytes

    def hash(self):
        return _HASHES[self.hash_name]() if self.hash_name else None


def signature_algorithm_for(public_key) -> SignatureAlgorithm:
    """The algorithm a CA key signs with: the hash matches the key's strength.

    CA/B Forum BR 7.1.3.2: P-256 with SHA-256, P-384 with SHA-384; RSA with
    SHA-256 (accepted by every relying party); Ed25519 hashes internally.
    """
    spec = key_spec_of(public_key)
    if spec == "ed25519":
        family, hash_name = "ed25519", None
    elif spec == "ec-p384":
        family, hash_name = "ec", "sha384"
    elif spec == "ec-p256":
        family, hash_name = "ec", "sha256"
    else:
        family, hash_name = "rsa", "sha256"
    return SignatureAlgorithm(family, hash_name, _SIG_ALG_DER[(family, hash_name)])


MIN_PASSPHRASE_LENGTH = 8


@dataclass(frozen=True)
class PassphraseSource:
    """Where the key-encryption passphrase comes from: a file, else an
    environment variable. Never the command line, where ``ps`` shows it."""

    env: str = "REVOCA_KEY_PASSPHRASE"
    file: Path | None = None

    def get(self) -> bytes:
        if self.file is not None:
            try:
                value = read_secret_file(self.file, "passphrase file").rstrip(b"\r\n")
            except SecretFileError as exc:
                raise KeyAccessError(exc.message) from None
            origin = f"passphrase file {self.file}"
        else:
            raw = os.environ.get(self.env)
            if raw is None:
                raise KeyAccessError(
                    f"no key passphrase: set the environment variable {self.env} "
                    "or keys.passphrase_file in the configuration"
                )
            value = raw.encode()
            origin = f"environment variable {self.env}"
        if len(value) < MIN_PASSPHRASE_LENGTH:
            raise KeyAccessError(
                f"the passphrase from {origin} is shorter than {MIN_PASSPHRASE_LENGTH} characters"
            )
        return value
