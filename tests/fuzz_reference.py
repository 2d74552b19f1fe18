"""The fuzzer's third oracle: pyca/cryptography's reading of an OCSPRequest
(``load_der_ocsp_request``, then its extensions, which it parses on first
use) against what the parser and its twin agreed on.

- Both accept: the one CertID's hashes and serial, and the nonce, must be
  the same.
- cryptography refuses what we accept: a finding, unless the input is one of
  ``STRICTER``, the cases where cryptography is stricter than the standard or
  refuses something for a reason outside DER, each with why.
- cryptography's strictness differs by release (``cryptography>=42`` admits
  several): a STRICTER case a release accepts must then read alike.
- We refuse what cryptography accepts: a finding, unless our refusal is one
  the standard or our documented limits (SECURITY.md, "Limits and
  timeouts") require: ``REQUIRED``.
"""

from collections.abc import Callable

from cryptography import x509
from cryptography.x509 import ocsp

from va import _fastocsp_py as twin
from va.errors import DERError, DERErrorCode, RequestError, RequestErrorCode

HASH_NAMES = {twin.HASH_SHA1: "sha1", twin.HASH_SHA256: "sha256"}
HASH_NAMES |= {twin.HASH_SHA384: "sha384", twin.HASH_SHA512: "sha512"}
NONCE = x509.ObjectIdentifier("1.3.6.1.5.5.7.48.1.2")
ACCEPTABLE_RESPONSES = bytes.fromhex("2b0601050507300104")  # id-pkix-ocsp-response
OID_MAX_OCTETS = 63  # rust-asn1's ObjectIdentifier
ARC_LIMIT = 1 << 128  # rust-asn1 reads each arc as a u128


def reference(data: bytes):
    """cryptography's request, or the text of its refusal (starting
    "extensions:" where it came from reading the request's extensions)."""
    stage = ""
    try:
        request = ocsp.load_der_ocsp_request(data)
        stage = "extensions: "
        list(request.extensions)
    except (ValueError, NotImplementedError, x509.DuplicateExtension) as exc:
        return f"{stage}{type(exc).__name__}: {exc}"
    return request


def _oids(data: bytes) -> list[bytes]:
    """Content octets of every OBJECT IDENTIFIER in ``data``'s DER tree
    (empty when the tree is not DER)."""
    try:
        tree = twin.parse_der(data, 64)
    except (DERError, RequestError):
        return []
    found, stack = [], [tree]
    while stack:
        tag, value = stack.pop()
        if tag == 0x06:
            found.append(value)
        elif type(value) is tuple:
            stack.extend(value)
    return found


def _arcs(oid: bytes) -> list[int]:
    arcs, arc = [], 0
    for octet in oid:
        arc = arc << 7 | octet & 0x7F
        if octet < 0x80:
            arcs.append(arc)
            arc = 0
    return arcs


def _several_certids(data: bytes, ours, refusal: str) -> bool:
    return len(ours[0]) > 1 and refusal.startswith("NotImplementedError")


def _oid_too_long(data: bytes, ours, refusal: str) -> bool:
    return "OidTooLong" in refusal and any(len(o) > OID_MAX_OCTETS for o in _oids(data))


def _arc_too_large(data: bytes, ours, refusal: str) -> bool:
    return "InvalidValue" in refusal and any(
        arc >= ARC_LIMIT for oid in _oids(data) for arc in _arcs(oid)
    )


def _attribute_value(data: bytes, ours, refusal: str) -> bool:
    return '"AttributeValue::' in refusal


def _acceptable_responses(data: bytes, ours, refusal: str) -> bool:
    return refusal.startswith("extensions: ValueError") and ACCEPTABLE_RESPONSES in _oids(data)


def _other_algorithm_parameters(data: bytes, ours, refusal: str) -> bool:
    return ours[0][0][0] == twin.HASH_UNKNOWN and '"CertID::hash_algorithm"' in refusal


# cryptography refuses, the standard does not: (name, test, why).
STRICTER: list[tuple[str, Callable[[bytes, tuple, str], bool], str]] = [
    (
        "several CertIDs",
        _several_certids,
        "RFC 6960 4.1.1: requestList is a SEQUENCE OF Request; cryptography's "
        "OCSPRequest holds one and raises NotImplementedError for more",
    ),
    (
        "OBJECT IDENTIFIER over 63 octets",
        _oid_too_long,
        "rust-asn1 caps an OID's content at 63 octets; X.690 8.19 sets no limit",
    ),
    (
        "OBJECT IDENTIFIER arc of 2**128 or more",
        _arc_too_large,
        "rust-asn1 reads each arc as a 128-bit integer; X.690 8.19 sets no limit",
    ),
    (
        "character set of a directoryName's attribute value",
        _attribute_value,
        "cryptography checks the alphabet of some string types (PrintableString) in "
        "a Name; an AttributeTypeAndValue's value is ANY DEFINED BY its type (RFC 5280 "
        "4.1.2.4), its alphabet is not a DER rule, and requestorName is never used",
    ),
    (
        "a non-critical AcceptableResponses extension's value",
        _acceptable_responses,
        "RFC 5280 4.2: a non-critical extension the responder does not process may be "
        "ignored; cryptography parses AcceptableResponses (RFC 6960 4.4.3), this "
        "responder only ever answers id-pkix-ocsp-basic, which 4.4.3 has every "
        "responder support",
    ),
    (
        "parameters of a CertID hash algorithm we do not know",
        _other_algorithm_parameters,
        "cryptography applies the parameter rules of algorithms it knows (e.g. RFC 5758 "
        "3.1: absent for DSA with SHA-2) in CertID.hashAlgorithm too; to us the "
        "parameters are ANY (RFC 5280 4.1.1.2) and such a CertID is answered unauthorized",
    ),
]

# Our refusals of what cryptography accepts, by code, and what requires them.
REQUIRED: dict[int, str] = {
    RequestErrorCode.SERIAL_TOO_LONG: "SECURITY.md: serial at most 20 octets (RFC 5280 4.1.2.2)",
    RequestErrorCode.BAD_HASH_LENGTH: "SECURITY.md: CertID hashes of the algorithm's length",
    RequestErrorCode.TOO_MANY_CERTIDS: "SECURITY.md: max_certids",
    RequestErrorCode.BAD_NONCE: "RFC 9654 2.1: Nonce ::= OCTET STRING (SIZE(1..128))",
    RequestErrorCode.DUPLICATE_EXTENSION: "RFC 5280 4.2: one instance of each extension "
    "(cryptography checks requestExtensions only)",
    RequestErrorCode.UNSUPPORTED_CRITICAL_EXTENSION: "RFC 5280 4.2: an unrecognized "
    "critical extension is refused",
    RequestErrorCode.BAD_ALGORITHM: "X.690 8.8.2: a NULL has no contents (cryptography "
    "does not read an unknown algorithm's parameters)",
    RequestErrorCode.BAD_IA5_STRING: "X.680 41: IA5String is 7-bit (cryptography takes UTF-8)",
    RequestErrorCode.BAD_VERSION: "RFC 6960 4.1.1: Version ::= INTEGER { v1(0) }, the only "
    "version defined (cryptography before 50 does not read it)",
    DERErrorCode.HIGH_TAG_NUMBER: "SECURITY.md: high tag numbers, which OCSP never uses",
    DERErrorCode.END_OF_CONTENTS_TAG: "X.690 8.1.5: end-of-contents only ends an "
    "indefinite length, which DER never has",
    DERErrorCode.LENGTH_TOO_LARGE: "SECURITY.md: lengths over 4 octets",
}
IN_SIGNATURE = (
    "RFC 6960 4.1.1 and X.690: optionalSignature is a Signature in DER; "
    "cryptography does not read its contents"
)


def _in_signature(data: bytes, offset: int) -> bool:
    """Whether ``offset`` lies after the TBSRequest, in optionalSignature."""
    try:
        _, start, end = twin.read_tlv(data)
        _, _, tbs_end = twin.read_tlv(data, start, end)
    except (DERError, RequestError):
        return False
    return offset >= tbs_end


def why_allowed(data: bytes, ours: tuple, refusal: str) -> str | None:
    """The STRICTER case ``data`` is in, or None."""
    for name, test, why in STRICTER:
        if test(data, ours, refusal):
            return f"{name}: {why}"
    return None


def why_required(data: bytes, error) -> str | None:
    """What requires our refusal ``error`` of an input cryptography accepts, or None."""
    if _in_signature(data, error.offset):
        return IN_SIGNATURE
    return REQUIRED.get(error.code)


def problem(data: bytes, ours) -> str | None:
    """None when cryptography's reading of ``data`` fits ``ours`` (the
    parser's result, or the error both implementations raised)."""
    theirs = reference(data)
    refused = isinstance(theirs, str)
    if isinstance(ours, (DERError, RequestError)):
        if refused or why_required(data, ours) is not None:
            return None
        return f"cryptography accepts what we refuse ({ours!r}) and nothing requires it"
    if refused:
        if why_allowed(data, ours, theirs) is not None:
            return None
        return f"cryptography refuses what we accept: {theirs}"
    return _compare(ours, theirs)


def _compare(ours: tuple, theirs: ocsp.OCSPRequest) -> str | None:
    certids, nonce = ours
    algorithm, name_hash, key_hash, serial, _ = certids[0]
    if algorithm in HASH_NAMES and theirs.hash_algorithm.name != HASH_NAMES[algorithm]:
        return f"hash algorithm: ours {algorithm}, cryptography {theirs.hash_algorithm.name}"
    if (name_hash, key_hash) != (theirs.issuer_name_hash, theirs.issuer_key_hash):
        return "issuer hashes differ from cryptography's"
    if int.from_bytes(serial, "big", signed=True) != theirs.serial_number:
        return f"serial: ours {serial.hex()}, cryptography {theirs.serial_number:x}"
    found = [e for e in theirs.extensions if e.oid == NONCE]
    theirs_nonce = found[0].value.nonce if found else None
    ours_nonce = None if nonce is None else twin.parse_der(nonce)[1]
    if ours_nonce != theirs_nonce:
        return f"nonce: ours {ours_nonce!r}, cryptography {theirs_nonce!r}"
    return None
