"""Types of the native OCSP core ``va._fastocsp`` (va/_fastocsp.pyx and the
response encoder it includes, va/_responses.pxi). Its pure-Python twin,
``va._fastocsp_py`` (with ``va._responses_py``), has the same names, results
and errors; callers use the façade ``va.fastocsp``.

Malformed input raises :class:`va.errors.DERError` (the DER itself) or
:class:`va.errors.RequestError` (DER that is not an acceptable OCSPRequest);
an argument of the wrong type raises TypeError, a value out of range ValueError.
Times are seconds since 1970-01-01T00:00:00Z, from 1970 to 9999.
"""

from typing import Final

# -- the DER reader (X.690 section 10) ------------------------------------------

DEFAULT_MAX_DEPTH: Final[int]
"""Nesting depth ``parse_der`` allows unless told otherwise (32)."""

MAX_LENGTH_OCTETS: Final[int]
"""Octets a long-form length may have (4: lengths below 2**32)."""

def read_tlv(data: bytes, offset: int = 0, end: int = -1) -> tuple[int, int, int]:
    """Read the header of one DER element inside ``data[offset:end]``.

    Returns ``(tag, content_start, content_end)``; ``end=-1`` means the end
    of ``data``. The element's content is guaranteed to lie inside the window.
    """

def parse_der(data: bytes, max_depth: int = 32) -> tuple[int, bytes | tuple]:
    """Decode one complete DER element into a tree.

    A constructed element becomes ``(tag, (child, ...))``, a primitive one
    ``(tag, content_bytes)``. Trailing bytes after the element are refused.
    """

# -- the request parser (RFC 6960 4.1.1) ----------------------------------------

HASH_UNKNOWN: Final[int]
"""A CertID hash algorithm this responder does not know (0): reported, not refused."""

HASH_SHA1: Final[int]
"""CertID hashed with SHA-1 (1)."""

HASH_SHA256: Final[int]
"""CertID hashed with SHA-256 (2)."""

HASH_SHA384: Final[int]
"""CertID hashed with SHA-384 (3)."""

HASH_SHA512: Final[int]
"""CertID hashed with SHA-512 (4)."""

HASH_LENGTHS: Final[dict[int, int]]
"""Octets of issuerNameHash and issuerKeyHash per known HASH_* value."""

NONCE_OID: Final[bytes]
"""Content octets of id-pkix-ocsp-nonce (1.3.6.1.5.5.7.48.1.2)."""

MAX_SERIAL_OCTETS: Final[int]
"""Longest serial number accepted (20 octets, RFC 5280 4.1.2.2)."""

MAX_NONCE_OCTETS: Final[int]
"""Longest nonce accepted (128 octets, RFC 9654 2.1); an empty one is refused too."""

DEFAULT_MAX_CERTIDS: Final[int]
"""CertIDs ``parse_ocsp_request`` answers in one request unless told otherwise (8)."""

_CertID = tuple[int, bytes, bytes, bytes, bytes]

def parse_ocsp_request(
    data: bytes, max_certids: int = 8
) -> tuple[tuple[_CertID, ...], bytes | None]:
    """Parse a DER OCSPRequest.

    Returns ``(certids, nonce)``: each CertID as ``(hash_algorithm,
    issuer_name_hash, issuer_key_hash, serial, certid_der)`` where
    ``hash_algorithm`` is one of the HASH_* constants (HASH_UNKNOWN for other
    algorithms) and ``serial`` is the INTEGER's content octets; ``nonce`` is
    the nonce extension's extnValue (the encoded OCTET STRING, echoed as is)
    or None. Strictly DER: a component equal to its DEFAULT, a non-minimal
    OBJECT IDENTIFIER, a requestorName that is not one GeneralName or an
    optionalSignature that is not a Signature is refused; the signature is not
    verified.
    """

# -- the response encoder (RFC 6960 4.2.1) --------------------------------------

STATUS_GOOD: Final[int]
"""CertStatus good (0)."""

STATUS_REVOKED: Final[int]
"""CertStatus revoked (1)."""

STATUS_UNKNOWN: Final[int]
"""CertStatus unknown (2)."""

NO_REASON: Final[int]
"""A revocation without revocationReason (-1; BR 7.2.2: unspecified is never encoded)."""

EXTENDED_REVOKE_EXTENSION: Final[bytes]
"""The id-pkix-ocsp-extended-revoke Extension, value NULL (RFC 6960 4.4.8)."""

MALFORMED_REQUEST: Final[bytes]
"""The unsigned OCSPResponse malformedRequest (1)."""

INTERNAL_ERROR: Final[bytes]
"""The unsigned OCSPResponse internalError (2)."""

TRY_LATER: Final[bytes]
"""The unsigned OCSPResponse tryLater (3)."""

SIG_REQUIRED: Final[bytes]
"""The unsigned OCSPResponse sigRequired (5)."""

UNAUTHORIZED: Final[bytes]
"""The unsigned OCSPResponse unauthorized (6)."""

def generalized_time(epoch: int) -> bytes:
    """GeneralizedTime YYYYMMDDHHMMSSZ (RFC 5280 4.1.2.5.2), from 1970 to 9999."""

def encode_certid(hash_algorithm: int, name_hash: bytes, key_hash: bytes, serial: bytes) -> bytes:
    """CertID with ``serial`` given as the INTEGER's content octets."""

def encode_cert_status(status: int, revocation_time: int, reason: int) -> bytes:
    """CertStatus: good, unknown, or revoked at ``revocation_time``;
    ``reason`` NO_REASON leaves revocationReason out."""

def encode_single_response(
    certid: bytes,
    status: int,
    revocation_time: int,
    reason: int,
    this_update: int,
    next_update: int,
) -> bytes:
    """SingleResponse (see ``encode_cert_status``); ``next_update`` -1 leaves it out."""

def encode_response_data(
    responder_id: bytes, produced_at: int, responses: list[bytes], extensions: bytes
) -> bytes:
    """ResponseData (v1, so no version field). ``responder_id`` is the encoded
    ResponderID choice, ``responses`` the encoded SingleResponses,
    ``extensions`` the encoded Extension elements (b"" for none)."""

def encode_response_data_many(
    responder_id: bytes,
    produced_at: int,
    hash_algorithm: int,
    name_hash: bytes,
    key_hash: bytes,
    serials: list[bytes],
    cert_statuses: list[bytes],
    this_update: int,
    next_update: int,
    extensions: list[bytes],
) -> list[bytes]:
    """One ResponseData per serial, each answering that serial alone (what
    pre-signing stores), with ``cert_statuses[i]`` from ``encode_cert_status``
    and ``extensions[i]`` its Extension elements. The shared parts are encoded
    once."""

def encode_nonce_extension(nonce: bytes) -> bytes:
    """The response's nonce Extension, echoing the request's extnValue content."""

def encode_fresh_response_data(
    responder_id: bytes,
    produced_at: int,
    certid: bytes,
    cert_status: bytes,
    next_update: int,
    nonce: bytes | None,
    extensions: bytes,
) -> bytes:
    """The ResponseData of a fresh answer for one CertID: thisUpdate is
    ``produced_at``; the nonce Extension (unless ``nonce`` is None) comes
    before ``extensions``."""

def encode_ocsp_response(
    response_data: bytes, signature_algorithm: bytes, signature: bytes, certs: bytes
) -> bytes:
    """A successful OCSPResponse around a signed BasicOCSPResponse;
    ``certs`` is the concatenated certificates to include (b"" for none)."""

def encode_ocsp_responses(
    response_data: list[bytes], signature_algorithm: bytes, signatures: list[bytes], certs: bytes
) -> list[bytes]:
    """``encode_ocsp_response`` for each ResponseData and its signature (one
    signer's batch), in one call."""
