"""Assemble and sign X.509 certificates (RFC 5280 4.1).

The TBSCertificate is encoded here and signed through a crypto token, so the
same path serves software keys and HSMs. Extensions are encoded by
cryptography (``ExtensionType.public_bytes``); the signed result is parsed
back and its signature verified before anyone sees it.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from ca.errors import CAError
from ca.keys import SignatureAlgorithm
from common import der

# CA/B Forum BR 7.1: at least 64 bits of CSPRNG output. We use 127 bits and
# keep the top bit clear, so the DER INTEGER is positive and at most 16 octets.
SERIAL_BITS = 127


def new_serial(random_bytes: Callable[[int], bytes]) -> int:
    while True:
        serial = int.from_bytes(random_bytes(16), "big") >> 1
        if serial.bit_length() > 64:  # also rules out zero
            return serial


@dataclass(frozen=True)
class Extension:
    value: x509.ExtensionType
    critical: bool

    def encode(self) -> bytes:
        parts = [der.oid(self.value.oid.dotted_string)]
        if self.critical:  # DEFAULT FALSE is omitted in DER (X.690 11.5)
            parts.append(der.boolean(True))
        parts.append(der.octet_string(self.value.public_bytes()))
        return der.sequence(*parts)


def encode_tbs(
    *,
    serial: int,
    algorithm: SignatureAlgorithm,
    issuer: x509.Name,
    subject: x509.Name,
    not_before: datetime,
    not_after: datetime,
    public_key,
    extensions: list[Extension],
) -> bytes:
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der.sequence(
        der.explicit(0, der.integer(2)),  # v3
        der.integer(serial),
        algorithm.algorithm_identifier,
        issuer.public_bytes(),
        der.sequence(der.time(not_before), der.time(not_after)),
        subject.public_bytes(),
        spki,
        der.explicit(3, der.sequence(*(e.encode() for e in extensions))),
    )


def assemble(tbs: bytes, algorithm: SignatureAlgorithm, signature: bytes) -> bytes:
    return der.sequence(tbs, algorithm.algorithm_identifier, der.bit_string(signature))


def sign_certificate(
    tbs: bytes,
    algorithm: SignatureAlgorithm,
    sign: Callable[[bytes], bytes],
    issuer: x509.Certificate | None,
) -> x509.Certificate:
    """Sign ``tbs``, parse the result back and verify it was issued by
    ``issuer`` (``None``: self-signed)."""
    certificate_der = assemble(tbs, algorithm, sign(tbs))
    try:
        certificate = x509.load_der_x509_certificate(certificate_der)
        certificate.verify_directly_issued_by(issuer or certificate)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise CAError(
            f"internal error: the signed certificate failed its self-check: {exc}"
        ) from exc
    return certificate
