"""Certificate requests: PKCS#10 CSRs (RFC 2986) and server-side key requests.

Whatever the source, a request becomes a :class:`CertificateRequest`: a
subject, a public key and the SANs asked for. The profile decides what of
that is allowed (ca/policy.py).
"""

import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from ca.errors import BadInputError


@dataclass(frozen=True)
class CertificateRequest:
    subject: x509.Name
    public_key: object
    sans: tuple[x509.GeneralName, ...]


def load_csr(data: bytes) -> x509.CertificateSigningRequest:
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_csr(data)
        return x509.load_der_x509_csr(data)
    except ValueError:
        raise BadInputError("not a valid PKCS#10 certificate request (PEM or DER)") from None


def parse_csr(data: bytes) -> CertificateRequest:
    csr = load_csr(data)
    try:
        valid = csr.is_signature_valid
    except UnsupportedAlgorithm as exc:
        raise BadInputError(f"CSR signature algorithm is not supported: {exc}") from None
    if not valid:
        raise BadInputError(
            "CSR signature does not verify: the request was altered or not signed "
            "with the key it carries"
        )
    try:
        public_key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise BadInputError(f"CSR public key cannot be used: {exc}") from None
    try:
        san_ext = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        sans = tuple(san_ext.value)
    except x509.ExtensionNotFound:
        sans = ()
    except ValueError as exc:
        raise BadInputError(f"CSR extensions are malformed: {exc}") from None
    try:
        subject = csr.subject
        subject.rfc4514_string()
    except ValueError as exc:
        raise BadInputError(f"CSR subject is malformed: {exc}") from None
    return CertificateRequest(subject=subject, public_key=public_key, sans=sans)


def parse_subject(text: str) -> x509.Name:
    """An RFC 4514 string such as ``CN=www.example.com,O=Example``."""
    try:
        return x509.Name.from_rfc4514_string(text)
    except ValueError as exc:
        raise BadInputError(f"invalid subject {text!r}: {exc}") from None


def parse_san(text: str) -> x509.GeneralName:
    """``dns:name``, ``ip:address``, ``email:address`` or ``uri:URI``."""
    kind, sep, value = text.partition(":")
    kind = kind.strip().lower()
    if not sep or not value:
        raise BadInputError(f"invalid SAN {text!r}: write it as dns:, ip:, email: or uri:VALUE")
    if kind == "dns":
        return x509.DNSName(value)
    if kind == "ip":
        try:
            return x509.IPAddress(ipaddress.ip_address(value))
        except ValueError:
            raise BadInputError(f"invalid SAN {text!r}: not an IP address") from None
    if kind == "email":
        return x509.RFC822Name(value)
    if kind == "uri":
        return x509.UniformResourceIdentifier(value)
    raise BadInputError(f"invalid SAN {text!r}: unknown type {kind!r} (dns, ip, email, uri)")


def san_type(name: x509.GeneralName) -> str:
    if isinstance(name, x509.DNSName):
        return "dns"
    if isinstance(name, x509.IPAddress):
        return "ip"
    if isinstance(name, x509.RFC822Name):
        return "email"
    if isinstance(name, x509.UniformResourceIdentifier):
        return "uri"
    return type(name).__name__


def format_san(name: x509.GeneralName) -> str:
    value = name.value
    return f"{san_type(name)}:{value}"
