"""Pure-Python twin of ``va._fastocsp``: same names, same results, same errors.

Used when the native module is unavailable or ``REVOCA_NO_EXTENSIONS=1``, and
by the tests and fuzzers as the reference the native core must agree with.

DER rules enforced (X.690 section 10 and 8.1): single-octet tags only (OCSP
needs no high tag numbers), definite lengths only, lengths in the minimal
number of octets, no end-of-contents octets, nesting depth capped.
"""

from va._fastlane_py import SIMPLE_MAX, simple_request  # noqa: F401 (the twin's API)
from va.errors import DERError, DERErrorCode

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

from va.errors import RequestError, RequestErrorCode  # noqa: E402

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
MAX_NONCE_OCTETS = 32
DEFAULT_MAX_CERTIDS = 8


def _expect(data: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    found, start, stop = _read_header(data, pos, end)
    if found != tag:
        raise RequestError(RequestErrorCode.WRONG_TAG, pos)
    return start, stop


def _parse_certid(data: bytes, pos: int, end: int):
    """CertID ::= SEQUENCE { hashAlgorithm, issuerNameHash, issuerKeyHash, serialNumber }"""
    start, stop = _expect(data, pos, end, 0x30)
    # AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters NULL OPTIONAL }
    alg_start, alg_stop = _expect(data, start, stop, 0x30)
    oid_start, oid_stop = _expect(data, alg_start, alg_stop, 0x06)
    if oid_stop != alg_stop:
        null_start, null_stop = _expect(data, oid_stop, alg_stop, 0x05)
        if null_start != null_stop or null_stop != alg_stop:
            raise RequestError(RequestErrorCode.BAD_ALGORITHM, oid_stop)
    algorithm = _HASH_OIDS.get(data[oid_start:oid_stop], HASH_UNKNOWN)
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
    cursor = start
    while cursor < stop:
        ext_start, ext_stop = _expect(data, cursor, stop, 0x30)
        oid_start, oid_stop = _expect(data, ext_start, ext_stop, 0x06)
        critical = False
        value_pos = oid_stop
        tag, bool_start, bool_stop = _read_header(data, value_pos, ext_stop)
        if tag == 0x01:
            if bool_stop - bool_start != 1 or data[bool_start] not in (0x00, 0xFF):
                raise RequestError(RequestErrorCode.BAD_BOOLEAN, value_pos)
            critical = data[bool_start] == 0xFF
            value_pos = bool_stop
        value_start, value_stop = _expect(data, value_pos, ext_stop, 0x04)
        if value_stop != ext_stop:
            raise RequestError(RequestErrorCode.TRAILING_DATA, value_stop)
        if nonce_allowed and data[oid_start:oid_stop] == NONCE_OID:
            if nonce is not None:
                raise RequestError(RequestErrorCode.DUPLICATE_EXTENSION, cursor)
            # RFC 8954 2.1: Nonce ::= OCTET STRING (SIZE(1..32)).
            inner_tag, inner_start, inner_stop = _read_header(data, value_start, value_stop)
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
        # optionalSignature [0] EXPLICIT Signature: accepted, not verified.
        _, sig_stop = _expect(data, tbs_stop, stop, 0xA0)
        if sig_stop != stop:
            raise RequestError(RequestErrorCode.TRAILING_DATA, sig_stop)
    cursor = tbs_start
    tag, inner, after = _read_header(data, cursor, tbs_stop)
    if tag == 0xA0:  # version [0] EXPLICIT INTEGER, v1 = 0
        v_start, v_stop = _expect(data, inner, after, 0x02)
        if v_stop != after or data[v_start:v_stop] != b"\x00":
            raise RequestError(RequestErrorCode.BAD_VERSION, cursor)
        cursor = after
        tag, inner, after = _read_header(data, cursor, tbs_stop)
    if tag == 0xA1:  # requestorName [1] EXPLICIT GeneralName: not used
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


# -- OCSP responses (RFC 6960 4.2.1) -----------------------------------------

import time as _time  # noqa: E402

STATUS_GOOD, STATUS_REVOKED, STATUS_UNKNOWN = 0, 1, 2
NO_REASON = -1
_HASH_ALGORITHM_IDS = {  # AlgorithmIdentifier with NULL parameters, as OpenSSL sends them
    HASH_SHA1: bytes.fromhex("300906052b0e03021a0500"),
    HASH_SHA256: bytes.fromhex("300d06096086480165030402010500"),
    HASH_SHA384: bytes.fromhex("300d06096086480165030402020500"),
    HASH_SHA512: bytes.fromhex("300d06096086480165030402030500"),
}
# id-pkix-ocsp-basic
_BASIC_RESPONSE_TYPE = bytes.fromhex("06092b0601050507300101")
# Extension { id-pkix-ocsp-nonce, extnValue }: the prefix before extnValue's content.
_NONCE_EXTENSION_OID = bytes.fromhex("06092b0601050507300102")
# RFC 6960 4.4.8: id-pkix-ocsp-extended-revoke, value NULL.
EXTENDED_REVOKE_EXTENSION = bytes.fromhex("300f06092b060105050730010904020500")

# Unsigned error responses (RFC 6960 4.2.1), as byte constants.
MALFORMED_REQUEST = bytes.fromhex("30030a0101")
INTERNAL_ERROR = bytes.fromhex("30030a0102")
TRY_LATER = bytes.fromhex("30030a0103")
SIG_REQUIRED = bytes.fromhex("30030a0105")
UNAUTHORIZED = bytes.fromhex("30030a0106")


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    if n >= 0x1000000:  # as the native encoder: up to three length octets
        raise ValueError("element too large")
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(body))) + body + content


def generalized_time(epoch: int) -> bytes:
    """GeneralizedTime YYYYMMDDHHMMSSZ (RFC 5280 4.1.2.5.2), from 1970 to 9999."""
    if not 0 <= epoch <= 253402300799:
        raise ValueError("time outside 1970-01-01..9999-12-31")
    return _tlv(0x18, _time.strftime("%Y%m%d%H%M%SZ", _time.gmtime(epoch)).encode())


def encode_certid(hash_algorithm: int, name_hash: bytes, key_hash: bytes, serial: bytes) -> bytes:
    """CertID with ``serial`` given as the INTEGER's content octets."""
    return _tlv(0x30, _certid_head(hash_algorithm, name_hash, key_hash) + _tlv(0x02, serial))


def _certid_head(hash_algorithm: int, name_hash: bytes, key_hash: bytes) -> bytes:
    """A CertID's content before serialNumber."""
    if hash_algorithm not in _HASH_ALGORITHM_IDS:
        raise ValueError(f"unsupported hash algorithm {hash_algorithm}")
    return _HASH_ALGORITHM_IDS[hash_algorithm] + _tlv(0x04, name_hash) + _tlv(0x04, key_hash)


def encode_cert_status(status: int, revocation_time: int, reason: int) -> bytes:
    """CertStatus: good, unknown, or revoked at ``revocation_time``;
    ``reason`` NO_REASON leaves revocationReason out (BR 7.2.2: unspecified
    is never encoded)."""
    if status == STATUS_GOOD:
        return b"\x80\x00"
    if status == STATUS_UNKNOWN:
        return b"\x82\x00"
    if status == STATUS_REVOKED:
        info = generalized_time(revocation_time)
        if reason != NO_REASON:
            if not 0 <= reason <= 10 or reason == 7:
                raise ValueError(f"invalid CRLReason {reason}")
            info += _tlv(0xA0, bytes((0x0A, 0x01, reason)))
        return _tlv(0xA1, info)
    raise ValueError(f"invalid certificate status {status}")


def encode_single_response(
    certid: bytes,
    status: int,
    revocation_time: int,
    reason: int,
    this_update: int,
    next_update: int,
) -> bytes:
    """SingleResponse (see ``encode_cert_status``); ``next_update`` -1 leaves
    it out."""
    body = (
        certid
        + encode_cert_status(status, revocation_time, reason)
        + _validity(this_update, next_update)
    )
    return _tlv(0x30, body)


def _validity(this_update: int, next_update: int) -> bytes:
    """A SingleResponse's thisUpdate and (unless -1) [0] nextUpdate."""
    if next_update == -1:
        return generalized_time(this_update)
    return generalized_time(this_update) + _tlv(0xA0, generalized_time(next_update))


def encode_response_data_many(
    responder_id: bytes,
    produced_at: int,
    hash_algorithm: int,
    name_hash: bytes,
    key_hash: bytes,
    serials: list,
    cert_statuses: list,
    this_update: int,
    next_update: int,
    extensions: list,
) -> list:
    """One ResponseData per serial, each answering that serial alone (what
    pre-signing stores): item i is ``encode_response_data(responder_id,
    produced_at, [SingleResponse(CertID(hash_algorithm, name_hash, key_hash,
    serials[i]), cert_statuses[i], this_update, next_update)],
    extensions[i])``, with ``cert_statuses[i]`` from ``encode_cert_status``.
    The shared parts are encoded once."""
    if not (type(serials) is type(cert_statuses) is type(extensions) is list):
        raise TypeError("serials, cert_statuses and extensions must be lists")
    if not len(serials) == len(cert_statuses) == len(extensions):
        raise ValueError("serials, cert_statuses and extensions differ in length")
    certid_head = _certid_head(hash_algorithm, name_hash, key_hash)
    head = responder_id + generalized_time(produced_at)
    tail = _validity(this_update, next_update)
    out = []
    for serial, cert_status, extension in zip(serials, cert_statuses, extensions, strict=True):
        if type(serial) is not bytes or type(cert_status) is not bytes:
            raise TypeError("serials and cert_statuses must be bytes")
        if type(extension) is not bytes:
            raise TypeError("extensions must be bytes")
        certid = _tlv(0x30, certid_head + _tlv(0x02, serial))
        body = head + _tlv(0x30, _tlv(0x30, certid + cert_status + tail))
        if extension:
            body += _tlv(0xA1, _tlv(0x30, extension))
        out.append(_tlv(0x30, body))
    return out


def encode_nonce_extension(nonce: bytes) -> bytes:
    """The response's nonce Extension, echoing the request's extnValue content."""
    return _tlv(0x30, _NONCE_EXTENSION_OID + _tlv(0x04, nonce))


def encode_fresh_response_data(
    responder_id: bytes,
    produced_at: int,
    certid: bytes,
    cert_status: bytes,
    next_update: int,
    nonce: bytes | None,
    extensions: bytes,
) -> bytes:
    """The ResponseData of a fresh answer for one CertID: ``encode_response_data(
    responder_id, produced_at, [SingleResponse(certid, cert_status, thisUpdate
    produced_at, next_update)], nonce Extension (unless ``nonce`` is None) +
    extensions)``, with ``cert_status`` from ``encode_cert_status``."""
    for name, value in (
        ("responder_id", responder_id),
        ("certid", certid),
        ("cert_status", cert_status),
        ("extensions", extensions),
    ):
        if type(value) is not bytes:
            raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    if nonce is not None and type(nonce) is not bytes:
        raise TypeError("nonce must be bytes or None")
    if max(len(responder_id), len(certid), len(cert_status), len(extensions)) >= 0x10000 or (
        nonce is not None and len(nonce) >= 0x10000
    ):
        raise ValueError("element too large")
    single = _tlv(0x30, certid + cert_status + _validity(produced_at, next_update))
    if nonce is not None:
        extensions = encode_nonce_extension(nonce) + extensions
    return encode_response_data(responder_id, produced_at, [single], extensions)


def encode_response_data(
    responder_id: bytes, produced_at: int, responses, extensions: bytes
) -> bytes:
    """ResponseData (v1, so no version field). ``responder_id`` is the encoded
    ResponderID choice, ``responses`` the encoded SingleResponses,
    ``extensions`` the encoded Extension elements (b"" for none)."""
    if type(extensions) is not bytes:
        raise TypeError(f"extensions must be bytes, not {type(extensions).__name__}")
    body = responder_id + generalized_time(produced_at) + _tlv(0x30, b"".join(responses))
    if extensions:
        body += _tlv(0xA1, _tlv(0x30, extensions))
    return _tlv(0x30, body)


def encode_ocsp_response(
    response_data: bytes, signature_algorithm: bytes, signature: bytes, certs: bytes
) -> bytes:
    """A successful OCSPResponse around a signed BasicOCSPResponse;
    ``certs`` is the concatenated certificates to include (b"" for none)."""
    if type(certs) is not bytes:
        raise TypeError(f"certs must be bytes, not {type(certs).__name__}")
    basic = response_data + signature_algorithm + _tlv(0x03, b"\x00" + signature)
    if certs:
        basic += _tlv(0xA0, _tlv(0x30, certs))
    response_bytes = _tlv(0x30, _BASIC_RESPONSE_TYPE + _tlv(0x04, _tlv(0x30, basic)))
    return _tlv(0x30, b"\x0a\x01\x00" + _tlv(0xA0, response_bytes))


def encode_ocsp_responses(
    response_data: list, signature_algorithm: bytes, signatures: list, certs: bytes
) -> list:
    """``encode_ocsp_response`` for each ResponseData and its signature (one
    signer's batch)."""
    if type(response_data) is not list or type(signatures) is not list:
        raise TypeError("response_data and signatures must be lists")
    if len(response_data) != len(signatures):
        raise ValueError("response_data and signatures differ in length")
    out = []
    for data, signature in zip(response_data, signatures, strict=True):
        if type(data) is not bytes or type(signature) is not bytes:
            raise TypeError("response_data and signatures must be bytes")
        out.append(encode_ocsp_response(data, signature_algorithm, signature, certs))
    return out
