"""Certificate requests: PKCS#10 CSRs (RFC 2986) and server-side key requests.

Whatever the source, a request becomes a :class:`CertificateRequest`: a
subject, a public key and the SANs asked for. The profile decides what of
that is allowed (ca/policy.py).
"""

import ipaddress
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509.oid import NameOID, ObjectIdentifier

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


# Attribute names a subject may use: RFC 4514's short names, the names the
# profiles allow (ca/profiles.py SUBJECT_ATTRIBUTES: serialNumber,
# emailAddress) and a few more of X.520; matched case-blind (RFC 4514 3).
# A dotted OID (2.5.4.5=...) names any attribute.
SUBJECT_NAMES = {
    "CN": NameOID.COMMON_NAME,
    "L": NameOID.LOCALITY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "C": NameOID.COUNTRY_NAME,
    "STREET": NameOID.STREET_ADDRESS,
    "DC": NameOID.DOMAIN_COMPONENT,
    "UID": NameOID.USER_ID,
    "serialNumber": NameOID.SERIAL_NUMBER,
    "emailAddress": NameOID.EMAIL_ADDRESS,
    "title": NameOID.TITLE,
    "givenName": NameOID.GIVEN_NAME,
    "surname": NameOID.SURNAME,
    "initials": NameOID.INITIALS,
    "pseudonym": NameOID.PSEUDONYM,
    "postalCode": NameOID.POSTAL_CODE,
    "businessCategory": NameOID.BUSINESS_CATEGORY,
    "organizationIdentifier": NameOID.ORGANIZATION_IDENTIFIER,
}
_BY_LOWER = {name.lower(): oid for name, oid in SUBJECT_NAMES.items()}
_OID = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")
_ESCAPABLE = ' "#+,;<=>\\'
_HEX = "0123456789abcdefABCDEF"
# DER string types a '#' value may hold (RFC 4514 2.4): tag -> encoding.
_DER_STRINGS = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x14: "latin-1", 0x1E: "utf-16-be"}


def _split(text: str) -> list[tuple[int, str]]:
    """``text`` cut at every unescaped ``,`` and ``+``: (offset, piece, the
    separator that ended it) with escapes left in place."""
    pieces = []
    start = 0
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char in ",+":
            pieces.append((start, text[start:i], char))
            start = i + 1
        i += 1
    pieces.append((start, text[start:], ""))
    return pieces


def _unescape(raw: str, name: str) -> str:
    out = bytearray()
    i = 0
    while i < len(raw):
        char = raw[i]
        if char != "\\":
            out += char.encode()
            i += 1
            continue
        pair = raw[i + 1 : i + 3]
        if i + 1 >= len(raw):
            raise ValueError(f"the value of {name} ends in a backslash that escapes nothing")
        if len(pair) == 2 and pair[0] in _HEX and pair[1] in _HEX:
            out.append(int(pair, 16))
            i += 3
        elif raw[i + 1] in _ESCAPABLE:
            out += raw[i + 1].encode()
            i += 2
        else:
            raise ValueError(
                f"'\\{raw[i + 1]}' in the value of {name} is no escape: a backslash comes "
                f"before a space, one of {_ESCAPABLE.strip()} or two hex digits"
            )
    try:
        return out.decode()
    except UnicodeDecodeError:
        raise ValueError(f"the hex escapes in the value of {name} are not UTF-8") from None


def _hex_value(raw: str, name: str) -> str:
    """A '#' value: the hex of a DER string (RFC 4514 2.4)."""
    try:
        der = bytes.fromhex(raw[1:])
    except ValueError:
        raise ValueError(f"the value of {name} starts with '#' but is not hex digits") from None
    if len(der) < 2 or der[1] >= 0x80 or der[1] != len(der) - 2 or der[0] not in _DER_STRINGS:
        raise ValueError(
            f"the '#' value of {name} is not a DER string (UTF8String, PrintableString, "
            "IA5String, TeletexString or BMPString of under 128 bytes)"
        )
    try:
        return der[2:].decode(_DER_STRINGS[der[0]])
    except UnicodeDecodeError:
        raise ValueError(f"the '#' value of {name} does not decode as its string type") from None


def _attribute(piece: str, offset: int) -> x509.NameAttribute:
    kind, sep, raw = piece.partition("=")
    kind = kind.strip()
    if not sep:
        raise ValueError(
            f"{piece.strip()!r} (at character {offset + 1}) has no '=': each attribute is "
            "NAME=value"
        )
    if not kind:
        raise ValueError(f"an attribute at character {offset + 1} has a value but no name")
    if _OID.fullmatch(kind):
        oid = ObjectIdentifier(kind)
    elif kind.lower() in _BY_LOWER:
        oid = _BY_LOWER[kind.lower()]
    else:
        raise ValueError(
            f"unknown attribute name {kind!r}; known: {', '.join(SUBJECT_NAMES)} (or a dotted OID)"
        )
    # Spaces around the value are taken as layout (RFC 4514 wants them
    # escaped: "\\ " keeps one); a trailing escaped space stays.
    raw = raw.lstrip(" ")
    while raw.endswith(" ") and not raw.endswith("\\ "):
        raw = raw[:-1]
    value = _hex_value(raw, kind) if raw.startswith("#") else _unescape(raw, kind)
    if not value:
        raise ValueError(f"{kind} has an empty value")
    try:
        return x509.NameAttribute(oid, value)
    except ValueError as exc:
        raise ValueError(f"{kind}={value!r}: {exc}") from None


def parse_subject(text: str) -> x509.Name:
    """An RFC 4514 string such as ``CN=www.example.com,O=Example``: the
    attribute names in SUBJECT_NAMES (any case) or dotted OIDs, ``+`` joining
    the attributes of one multi-valued RDN. Every malformed input is a
    BadInputError that says what is wrong and where."""
    if not isinstance(text, str):
        raise BadInputError("a subject must be a string such as CN=www.example.com,O=Example")
    if not text.strip():
        return x509.Name([])  # no subject: the SANs name the holder (RFC 5280 4.1.2.6)
    try:
        rdns: list[list[x509.NameAttribute]] = [[]]
        for offset, piece, separator in _split(text):
            if not piece.strip():
                where = f"at character {offset + 1}"
                raise ValueError(
                    f"an empty attribute {where} (two separators in a row, or one at an end)"
                )
            rdns[-1].append(_attribute(piece, offset))
            if separator == ",":
                rdns.append([])
        # RFC 4514 writes the last RDN first.
        return x509.Name([x509.RelativeDistinguishedName(rdn) for rdn in reversed(rdns)])
    except ValueError as exc:
        message = str(exc) or "not an RFC 4514 name"
        raise BadInputError(f"invalid subject {text!r}: {message}") from None


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
