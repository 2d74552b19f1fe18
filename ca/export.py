"""Certificates out of the CA: PEM, DER, PEM chain, PKCS#7, PKCS#12; and CA
certificates (a root's own included), which have no PKCS#12."""

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12

from ca.errors import BadInputError, PolicyError
from ca.records import CertificateRecord, serial_hex
from ca.token import load_private_key

FORMATS = ("pem", "der", "pem-chain", "p7b", "p12")


def _pem(certs: list[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def export_certificate(
    record: CertificateRecord,
    chain: list[x509.Certificate],
    fmt: str,
    *,
    private_key_pem: bytes | None = None,
    key_passphrase: bytes | None = None,
    export_passphrase: bytes | None = None,
) -> bytes:
    """Encode ``record`` followed by ``chain`` (its issuer up to the root).

    ``p12`` needs the key generated here (``private_key_pem``, encrypted with
    ``key_passphrase``); the file is encrypted with ``export_passphrase``
    (PBES2 with AES-256-CBC, SHA-256 MAC), which OpenSSL 3 and current
    browsers and OSes read.
    """
    cert = record.certificate
    if fmt == "p12":
        if private_key_pem is None:
            raise PolicyError(
                f"certificate {serial_hex(record.serial)} was issued from a CSR: its private "
                "key never came here, so there is no PKCS#12 to export"
            )
        if not export_passphrase:
            raise BadInputError("a PKCS#12 export needs an export passphrase")
        key = load_private_key(
            private_key_pem, key_passphrase, what="the certificate's private key"
        )
        encryption = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(200_000)
            .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
            .hmac_hash(hashes.SHA256())
            .build(export_passphrase)
        )
        name = record.subject.encode() or serial_hex(record.serial).encode()
        return pkcs12.serialize_key_and_certificates(name, key, cert, chain, encryption)
    return _encode(cert, chain, fmt)


def export_ca_certificate(chain: list[x509.Certificate], fmt: str) -> bytes:
    """A CA's own certificate, ``chain[0]``, followed by its parents held
    here: any format but ``p12``, for a CA's key never leaves its token."""
    if fmt == "p12":
        raise PolicyError(
            "a CA's private key stays in its crypto token: there is no PKCS#12 of a CA certificate"
        )
    return _encode(chain[0], chain[1:], fmt)


def _encode(cert: x509.Certificate, chain: list[x509.Certificate], fmt: str) -> bytes:
    if fmt == "pem":
        return _pem([cert])
    if fmt == "der":
        return cert.public_bytes(serialization.Encoding.DER)
    if fmt == "pem-chain":
        return _pem([cert, *chain])
    if fmt == "p7b":
        # RFC 5652 degenerate SignedData ("certs-only").
        return pkcs7.serialize_certificates([cert, *chain], serialization.Encoding.DER)
    raise BadInputError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
