"""Pure-Python twin of ``va._fastocsp``: same names, same results, same errors.

Used when the native module is unavailable or ``REVOCA_NO_EXTENSIONS=1``, and
by the tests and fuzzers as the reference the native core must agree with.
The files mirror the native ones: this one is ``_fastocsp.pyx`` (the DER
reader and the request parser), ``va._responses_py`` is ``_responses.pxi``
(the response encoder, compiled into the native module), whose names this
module re-exports so the two modules' namespaces match.

DER rules enforced (X.690 section 10 and 8.1): single-octet tags only (OCSP
needs no high tag numbers), definite lengths only, lengths in the minimal
number of octets, no end-of-contents octets, nesting depth capped. The
request parser adds the rules of the values it reads: no component equal to
its DEFAULT (11.5), BOOLEAN 0x00 or 0xFF (11.1), OBJECT IDENTIFIERs in the
fewest octets (8.19.2), NULL empty (8.8.2), BIT STRING unused bits zero
(11.2), SET OF in ascending order (11.6), INTEGERs minimal (8.3.2).
"""

from va._responses_py import (
    EXTENDED_REVOKE_EXTENSION,
    INTERNAL_ERROR,
    MALFORMED_REQUEST,
    NO_REASON,
    SIG_REQUIRED,
    STATUS_GOOD,
    STATUS_REVOKED,
    STATUS_UNKNOWN,
    TRY_LATER,
    UNAUTHORIZED,
    encode_cert_status,
    encode_certid,
    encode_fresh_response_data,
    encode_nonce_extension,
    encode_ocsp_response,
    encode_ocsp_responses,
    encode_response_data,
    encode_response_data_many,
    encode_single_response,
    generalized_time,
)
from va.errors import DERError, DERErrorCode, RequestError, RequestErrorCode

__all__ = (
    "DEFAULT_MAX_CERTIDS",
    "DEFAULT_MAX_DEPTH",
    "EXTENDED_REVOKE_EXTENSION",
    "HASH_LENGTHS",
    "HASH_SHA1",
    "HASH_SHA256",
    "HASH_SHA384",
    "HASH_SHA512",
    "HASH_UNKNOWN",
    "INTERNAL_ERROR",
    "MALFORMED_REQUEST",
    "MAX_LENGTH_OCTETS",
    "MAX_NONCE_OCTETS",
    "MAX_SERIAL_OCTETS",
    "NONCE_OID",
    "NO_REASON",
    "SIG_REQUIRED",
    "STATUS_GOOD",
    "STATUS_REVOKED",
    "STATUS_UNKNOWN",
    "TRY_LATER",
    "UNAUTHORIZED",
    "encode_cert_status",
    "encode_certid",
    "encode_fresh_response_data",
    "encode_nonce_extension",
    "encode_ocsp_response",
    "encode_ocsp_responses",
    "encode_response_data",
    "encode_response_data_many",
    "encode_single_response",
    "generalized_time",
    "parse_der",
    "parse_ocsp_request",
    "read_tlv",
)

DEFAULT_MAX_DEPTH = 32
MAX_LENGTH_OCTETS = 4


def _check_bytes(data) -> None:
    if type(data) is not bytes:
        raise TypeError(f"data must be bytes, not {type(data).__name__}")


def _read_header(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Return (tag, content_start, content_end) of the element at ``pos``."""
    start = pos
    if pos >= end:
        raise DERError(DERErrorCode.TRUNCATED_TAG, start)
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise DERError(DERErrorCode.HIGH_TAG_NUMBER, start)
    if tag == 0:
        raise DERError(DERErrorCode.END_OF_CONTENTS_TAG, start)
    pos += 1
    if pos >= end:
        raise DERError(DERErrorCode.TRUNCATED_LENGTH, start)
    first = data[pos]
    pos += 1
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise DERError(DERErrorCode.INDEFINITE_LENGTH, start)
    elif first == 0xFF:
        raise DERError(DERErrorCode.RESERVED_LENGTH, start)
    else:
        count = first & 0x7F
        if count > MAX_LENGTH_OCTETS:
            raise DERError(DERErrorCode.LENGTH_TOO_LARGE, start)
        if end - pos < count:
            raise DERError(DERErrorCode.TRUNCATED_LENGTH, start)
        if data[pos] == 0:
            raise DERError(DERErrorCode.NON_MINIMAL_LENGTH, start)
        length = int.from_bytes(data[pos : pos + count], "big")
        if length < 0x80:
            raise DERError(DERErrorCode.NON_MINIMAL_LENGTH, start)
        pos += count
    if length > end - pos:
        raise DERError(DERErrorCode.TRUNCATED_CONTENT, start)
    return tag, pos, pos + length


def read_tlv(data: bytes, offset: int = 0, end: int = -1) -> tuple[int, int, int]:
    """Read the header of one DER element inside ``data[offset:end]``.

    Returns ``(tag, content_start, content_end)``; ``end=-1`` means the end
    of ``data``. The element's content is guaranteed to lie inside the window.
    """
    _check_bytes(data)
    if end == -1:
        end = len(data)
    if offset < 0 or end < offset or end > len(data):
        raise DERError(DERErrorCode.BAD_BOUNDS, offset)
    return _read_header(data, offset, end)


def _parse(data: bytes, pos: int, end: int, depth: int, max_depth: int):
    tag, start, stop = _read_header(data, pos, end)
    if tag & 0x20:
        if depth >= max_depth:
            raise DERError(DERErrorCode.TOO_DEEP, pos)
        children = []
        child = start
        while child < stop:
            node, child = _parse(data, child, stop, depth + 1, max_depth)
            children.append(node)
        return (tag, tuple(children)), stop
    return (tag, data[start:stop]), stop


def parse_der(data: bytes, max_depth: int = DEFAULT_MAX_DEPTH) -> tuple:
    """Decode one complete DER element into a tree.

    A constructed element becomes ``(tag, (child, ...))``, a primitive one
    ``(tag, content_bytes)``. Trailing bytes after the element are refused.
    """
    _check_bytes(data)
    if max_depth < 1:
        raise ValueError("max_depth must be at least 1")
    node, stop = _parse(data, 0, len(data), 0, max_depth)
    if stop != len(data):
        raise DERError(DERErrorCode.TRAILING_DATA, stop)
    return node


# -- OCSP requests (RFC 6960 4.1.1) ------------------------------------------

HASH_UNKNOWN, HASH_SHA1, HASH_SHA256, HASH_SHA384, HASH_SHA512 = 0, 1, 2, 3, 4
# DER content octets of the hash algorithm OIDs.
_HASH_OIDS = {
    bytes.fromhex("2b0e03021a"): HASH_SHA1,
    bytes.fromhex("608648016503040201"): HASH_SHA256,
    bytes.fromhex("608648016503040202"): HASH_SHA384,
    bytes.fromhex("608648016503040203"): HASH_SHA512,
}
HASH_LENGTHS = {HASH_SHA1: 20, HASH_SHA256: 32, HASH_SHA384: 48, HASH_SHA512: 64}
NONCE_OID = bytes.fromhex("2b0601050507300102")  # id-pkix-ocsp-nonce
MAX_SERIAL_OCTETS = 20
# RFC 9654 2.1: "If the Nonce extension is present, then the length of the
# Nonce MUST be at least 1 octet and can be up to 128 octets." Responders
# "MUST reject any OCSP request that has a Nonce with a length of either 0
# octets or greater than 128 octets, with the malformedRequest
# OCSPResponseStatus". Which lengths are echoed is the responder's choice
# (va/responder.py).
MAX_NONCE_OCTETS = 128
DEFAULT_MAX_CERTIDS = 8
_IA5_NAMES = (0x81, 0x82, 0x86)  # GeneralName rfc822Name, dNSName, uniformResourceIdentifier


def _expect(data: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    found, start, stop = _read_header(data, pos, end)
    if found != tag:
        raise RequestError(RequestErrorCode.WRONG_TAG, pos)
    return start, stop


def _check_oid(data: bytes, start: int, stop: int, offset: int) -> None:
    """X.690 8.19.2: each subidentifier in the fewest octets (its first octet
    is never 0x80), the last octet of each with bit 8 clear; at least one."""
    if start == stop:
        raise RequestError(RequestErrorCode.BAD_OID, offset)
    leading = True  # the next octet begins a subidentifier
    for octet in data[start:stop]:
        if leading and octet == 0x80:
            raise RequestError(RequestErrorCode.BAD_OID, offset)
        leading = octet < 0x80
    if not leading:
        raise RequestError(RequestErrorCode.BAD_OID, offset)


def _oid(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """An OBJECT IDENTIFIER element at ``pos``: its content window."""
    start, stop = _expect(data, pos, end, 0x06)
    _check_oid(data, start, stop, pos)
    return start, stop


def _parameters(data: bytes, pos: int, end: int, null_only: bool) -> None:
    """AlgorithmIdentifier parameters filling ``data[pos:end]``: ANY DEFINED BY
    the algorithm (RFC 5280 4.1.1.2), one element; NULL has no content (X.690
    8.8.2). ``null_only``: the algorithm's parameters are NULL or absent (SHA-1,
    RFC 3279 2.1; SHA-2, RFC 5754 2)."""
    tag, start, stop = _read_header(data, pos, end)
    if null_only and tag != 0x05:
        raise RequestError(RequestErrorCode.WRONG_TAG, pos)
    if stop != end or (tag == 0x05 and start != stop):
        raise RequestError(RequestErrorCode.BAD_ALGORITHM, pos)


def _parse_certid(data: bytes, pos: int, end: int):
    """CertID ::= SEQUENCE { hashAlgorithm, issuerNameHash, issuerKeyHash, serialNumber }"""
    start, stop = _expect(data, pos, end, 0x30)
    # AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL }
    alg_start, alg_stop = _expect(data, start, stop, 0x30)
    oid_start, oid_stop = _oid(data, alg_start, alg_stop)
    algorithm = _HASH_OIDS.get(data[oid_start:oid_stop], HASH_UNKNOWN)
    if oid_stop != alg_stop:
        _parameters(data, oid_stop, alg_stop, algorithm != HASH_UNKNOWN)
    name_start, name_stop = _expect(data, alg_stop, stop, 0x04)
    key_start, key_stop = _expect(data, name_stop, stop, 0x04)
    if algorithm != HASH_UNKNOWN and not (
        name_stop - name_start == key_stop - key_start == HASH_LENGTHS[algorithm]
    ):
        raise RequestError(RequestErrorCode.BAD_HASH_LENGTH, name_stop)
    serial_start, serial_stop = _expect(data, key_stop, stop, 0x02)
    length = serial_stop - serial_start
    if length == 0 or (
        length > 1
        and (
            (data[serial_start] == 0 and data[serial_start + 1] < 0x80)
            or (data[serial_start] == 0xFF and data[serial_start + 1] >= 0x80)
        )
    ):
        raise RequestError(RequestErrorCode.BAD_SERIAL, key_stop)
    if length > MAX_SERIAL_OCTETS:
        raise RequestError(RequestErrorCode.SERIAL_TOO_LONG, key_stop)
    if serial_stop != stop:
        raise RequestError(RequestErrorCode.TRAILING_DATA, serial_stop)
    return (
        algorithm,
        data[name_start:name_stop],
        data[key_start:key_stop],
        data[serial_start:serial_stop],
        data[pos:stop],
    ), stop


def _parse_extensions(data: bytes, pos: int, end: int, wrapper: int, nonce_allowed: bool):
    """``[n] EXPLICIT Extensions`` filling exactly ``data[pos:end]``, where
    Extensions ::= SEQUENCE OF Extension. Returns the nonce's extnValue or None."""
    outer_start, outer_stop = _expect(data, pos, end, wrapper)
    if outer_stop != end:
        raise RequestError(RequestErrorCode.TRAILING_DATA, outer_stop)
    start, stop = _expect(data, outer_start, outer_stop, 0x30)
    if stop != outer_stop:
        raise RequestError(RequestErrorCode.TRAILING_DATA, stop)
    nonce = None
    seen = set()
    cursor = start
    while cursor < stop:
        # Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue }
        ext_start, ext_stop = _expect(data, cursor, stop, 0x30)
        oid_start, oid_stop = _oid(data, ext_start, ext_stop)
        critical = False
        value_pos = oid_stop
        tag, bool_start, bool_stop = _read_header(data, value_pos, ext_stop)
        if tag == 0x01:
            if bool_stop - bool_start != 1 or data[bool_start] not in (0x00, 0xFF):
                raise RequestError(RequestErrorCode.BAD_BOOLEAN, value_pos)
            if data[bool_start] == 0x00:  # X.690 11.5: FALSE is the DEFAULT, never encoded
                raise RequestError(RequestErrorCode.ENCODED_DEFAULT, value_pos)
            critical = True
            value_pos = bool_stop
        value_start, value_stop = _expect(data, value_pos, ext_stop, 0x04)
        if value_stop != ext_stop:
            raise RequestError(RequestErrorCode.TRAILING_DATA, value_stop)
        # RFC 5280 4.2 (the extensions model of RFC 6960 4.4): one instance each.
        extension = data[oid_start:oid_stop]
        if extension in seen:
            raise RequestError(RequestErrorCode.DUPLICATE_EXTENSION, cursor)
        seen.add(extension)
        if nonce_allowed and extension == NONCE_OID:
            # RFC 9654 2.1: Nonce ::= OCTET STRING(SIZE(1..128)), and extnValue
            # holds its encoding (a bare or truncated one is no Nonce either).
            try:
                inner_tag, inner_start, inner_stop = _read_header(data, value_start, value_stop)
            except DERError:
                raise RequestError(RequestErrorCode.BAD_NONCE, cursor) from None
            if (
                inner_tag != 0x04
                or inner_stop != value_stop
                or not 1 <= inner_stop - inner_start <= MAX_NONCE_OCTETS
            ):
                raise RequestError(RequestErrorCode.BAD_NONCE, cursor)
            nonce = data[value_start:value_stop]
        elif critical:
            raise RequestError(RequestErrorCode.UNSUPPORTED_CRITICAL_EXTENSION, cursor)
        cursor = ext_stop
    return nonce


def _parse_name(data: bytes, pos: int, end: int) -> None:
    """Name ::= RDNSequence filling ``data[pos:end]`` (RFC 5280 4.1.2.4):
    SEQUENCE OF SET OF AttributeTypeAndValue { type OID, value ANY }, each
    SET in DER order. The values are not read."""
    start, stop = _expect(data, pos, end, 0x30)
    if stop != end:
        raise RequestError(RequestErrorCode.TRAILING_DATA, stop)
    cursor = start
    while cursor < stop:
        set_start, set_stop = _expect(data, cursor, stop, 0x31)
        previous = None
        item = set_start
        while item < set_stop:
            atv_start, atv_stop = _expect(data, item, set_stop, 0x30)
            _, oid_stop = _oid(data, atv_start, atv_stop)
            _, _, value_stop = _read_header(data, oid_stop, atv_stop)
            if value_stop != atv_stop:
                raise RequestError(RequestErrorCode.TRAILING_DATA, value_stop)
            # X.690 11.6: ascending encodings (two complete TLVs are never each
            # other's proper prefix, so bytes order is its padded comparison).
            current = data[item:atv_stop]
            if previous is not None and previous > current:
                raise RequestError(RequestErrorCode.UNSORTED_SET, item)
            previous = current
            item = atv_stop
        cursor = set_stop


def _parse_general_name(data: bytes, pos: int, end: int) -> None:
    """The GeneralName filling ``data[pos:end]`` (RFC 5280 4.2.1.6), one of its
    choices; x400Address and ediPartyName are not read further."""
    tag, start, stop = _read_header(data, pos, end)
    if stop != end:
        raise RequestError(RequestErrorCode.TRAILING_DATA, stop)
    if tag in _IA5_NAMES:
        if any(octet > 0x7F for octet in data[start:stop]):
            raise RequestError(RequestErrorCode.BAD_IA5_STRING, pos)
    elif tag == 0x88:  # registeredID
        _check_oid(data, start, stop, pos)
    elif tag == 0xA0:  # otherName: SEQUENCE { type-id OID, value [0] EXPLICIT ANY }
        _, oid_stop = _oid(data, start, stop)
        value_start, value_stop = _expect(data, oid_stop, stop, 0xA0)
        if value_stop != stop:
            raise RequestError(RequestErrorCode.TRAILING_DATA, value_stop)
        _, _, inner_stop = _read_header(data, value_start, value_stop)
        if inner_stop != value_stop:
            raise RequestError(RequestErrorCode.TRAILING_DATA, inner_stop)
    elif tag == 0xA4:  # directoryName [4] EXPLICIT Name
        _parse_name(data, start, stop)
    elif tag not in (0x87, 0xA3, 0xA5):  # iPAddress, x400Address, ediPartyName
        raise RequestError(RequestErrorCode.BAD_GENERAL_NAME, pos)


def _parse_signature(data: bytes, pos: int, end: int) -> None:
    """Signature ::= SEQUENCE { signatureAlgorithm AlgorithmIdentifier,
    signature BIT STRING, certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }
    filling ``data[pos:end]`` (RFC 6960 4.1.1). Read for its form only: the
    signature is not verified and the certificates are not read."""
    start, stop = _expect(data, pos, end, 0x30)
    if stop != end:
        raise RequestError(RequestErrorCode.TRAILING_DATA, stop)
    alg_start, alg_stop = _expect(data, start, stop, 0x30)
    _, oid_stop = _oid(data, alg_start, alg_stop)
    if oid_stop != alg_stop:
        _parameters(data, oid_stop, alg_stop, False)
    bits_start, bits_stop = _expect(data, alg_stop, stop, 0x03)
    # X.690 8.6.2: an initial octet of 0 to 7 unused bits, 0 when there are
    # no others; 11.2.1: the unused bits are zero.
    unused = data[bits_start] if bits_start < bits_stop else 8
    if unused > 7 or (
        unused and (bits_stop - bits_start == 1 or data[bits_stop - 1] & ((1 << unused) - 1))
    ):
        raise RequestError(RequestErrorCode.BAD_BIT_STRING, alg_stop)
    if bits_stop != stop:
        certs_start, certs_stop = _expect(data, bits_stop, stop, 0xA0)
        if certs_stop != stop:
            raise RequestError(RequestErrorCode.TRAILING_DATA, certs_stop)
        list_start, list_stop = _expect(data, certs_start, certs_stop, 0x30)
        if list_stop != certs_stop:
            raise RequestError(RequestErrorCode.TRAILING_DATA, list_stop)
        item = list_start
        while item < list_stop:
            _, item = _expect(data, item, list_stop, 0x30)


def parse_ocsp_request(data: bytes, max_certids: int = DEFAULT_MAX_CERTIDS):
    """Parse a DER OCSPRequest.

    Returns ``(certids, nonce)``: each CertID as ``(hash_algorithm,
    issuer_name_hash, issuer_key_hash, serial, certid_der)`` where
    ``hash_algorithm`` is one of the HASH_* constants (HASH_UNKNOWN for other
    algorithms) and ``serial`` is the INTEGER's content octets; ``nonce`` is
    the nonce extension's extnValue (the encoded OCTET STRING, echoed as is)
    or None. Raises DERError or RequestError.
    """
    _check_bytes(data)
    end = len(data)
    start, stop = _expect(data, 0, end, 0x30)
    if stop != end:
        raise DERError(DERErrorCode.TRAILING_DATA, stop)
    # TBSRequest
    tbs_start, tbs_stop = _expect(data, start, stop, 0x30)
    if tbs_stop != stop:
        # optionalSignature [0] EXPLICIT Signature: read for its form, not verified.
        sig_start, sig_stop = _expect(data, tbs_stop, stop, 0xA0)
        if sig_stop != stop:
            raise RequestError(RequestErrorCode.TRAILING_DATA, sig_stop)
        _parse_signature(data, sig_start, sig_stop)
    cursor = tbs_start
    tag, inner, after = _read_header(data, cursor, tbs_stop)
    if tag == 0xA0:  # version [0] EXPLICIT Version DEFAULT v1
        v_start, v_stop = _expect(data, inner, after, 0x02)
        if v_stop == after and data[v_start:v_stop] == b"\x00":
            # X.690 11.5: v1 is the DEFAULT, so a DER request leaves it out.
            raise RequestError(RequestErrorCode.ENCODED_DEFAULT, cursor)
        raise RequestError(RequestErrorCode.BAD_VERSION, cursor)
    if tag == 0xA1:  # requestorName [1] EXPLICIT GeneralName: checked, not used
        _parse_general_name(data, inner, after)
        cursor = after
        tag, inner, after = _read_header(data, cursor, tbs_stop)
    if tag != 0x30:
        raise RequestError(RequestErrorCode.WRONG_TAG, cursor)
    if inner == after:
        raise RequestError(RequestErrorCode.EMPTY_REQUEST_LIST, cursor)
    certids = []
    item = inner
    while item < after:
        if len(certids) == max_certids:
            raise RequestError(RequestErrorCode.TOO_MANY_CERTIDS, item)
        req_start, req_stop = _expect(data, item, after, 0x30)
        certid, certid_stop = _parse_certid(data, req_start, req_stop)
        if certid_stop != req_stop:  # singleRequestExtensions [0] EXPLICIT
            _parse_extensions(data, certid_stop, req_stop, 0xA0, False)
        certids.append(certid)
        item = req_stop
    cursor = after
    nonce = None
    if cursor < tbs_stop:  # requestExtensions [2] EXPLICIT
        nonce = _parse_extensions(data, cursor, tbs_stop, 0xA2, True)
    return tuple(certids), nonce
