# cython: language_level=3
"""Native OCSP core: a bounds-checked DER reader (X.690 DER subset), the
OCSP request parser, and the response encoder (``_responses.pxi``,
compiled into this module).

Bytes in, bytes or tuples out: no sockets, no asyncio, no key material.
``va._fastocsp_py`` is the pure-Python twin (and ``va._responses_py`` the
encoder's); both must return the same results and raise the same
:class:`va.errors.DERError` or :class:`va.errors.RequestError` for every input.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE

from va._bytes cimport bytes_slice, check_bytes

from va.errors import OCSPCoreError as _OCSPCoreError

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

_core_error = _OCSPCoreError.from_code

DEFAULT_MAX_DEPTH = 32
# Lengths up to 2**32 - 1: nothing OCSP carries comes near that.
cdef enum:
    C_MAX_LENGTH_OCTETS = 4
MAX_LENGTH_OCTETS = C_MAX_LENGTH_OCTETS


cdef DerStatus der_read_header(const unsigned char* buf, Py_ssize_t pos,
                               Py_ssize_t end, Tlv* out) noexcept nogil:
    """Read the tag and length at ``pos``; the content must fit before ``end``."""
    cdef unsigned char first
    cdef Py_ssize_t count, i
    cdef unsigned long long length
    if pos >= end:
        return DER_TRUNCATED_TAG
    out.tag = buf[pos]
    if (out.tag & 0x1F) == 0x1F:
        return DER_HIGH_TAG_NUMBER
    if out.tag == 0:
        return DER_END_OF_CONTENTS_TAG
    pos += 1
    if pos >= end:
        return DER_TRUNCATED_LENGTH
    first = buf[pos]
    pos += 1
    if first < 0x80:
        length = first
    elif first == 0x80:
        return DER_INDEFINITE_LENGTH
    elif first == 0xFF:
        return DER_RESERVED_LENGTH
    else:
        count = first & 0x7F
        if count > C_MAX_LENGTH_OCTETS:
            return DER_LENGTH_TOO_LARGE
        if end - pos < count:
            return DER_TRUNCATED_LENGTH
        if buf[pos] == 0:
            return DER_NON_MINIMAL_LENGTH
        length = 0
        for i in range(count):
            length = (length << 8) | buf[pos + i]
        if length < 0x80:
            return DER_NON_MINIMAL_LENGTH
        pos += count
    # length < 2**32 and end - pos >= 0, so the comparison cannot overflow.
    if length > <unsigned long long>(end - pos):
        return DER_TRUNCATED_CONTENT
    out.start = pos
    out.end = pos + <Py_ssize_t>length
    return DER_OK


cdef int _raise(int code, Py_ssize_t offset) except -1:
    # The one place native status codes (DerStatus, RequestStatus) become
    # Python exceptions: DERError or RequestError, by the code's range.
    raise _core_error(code, offset)


def read_tlv(data, Py_ssize_t offset=0, Py_ssize_t end=-1):
    """Read the header of one DER element inside ``data[offset:end]``.

    Returns ``(tag, content_start, content_end)``; ``end=-1`` means the end
    of ``data``. The element's content is guaranteed to lie inside the window.
    """
    check_bytes(data)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(data)
    cdef Tlv tlv
    cdef DerStatus status
    if end == -1:
        end = size
    if offset < 0 or end < offset or end > size:
        _raise(DER_BAD_BOUNDS, offset)
    status = der_read_header(<const unsigned char*>PyBytes_AS_STRING(data), offset, end, &tlv)
    if status != DER_OK:
        _raise(status, offset)
    return (tlv.tag, tlv.start, tlv.end)


cdef object _parse(const unsigned char* buf, Py_ssize_t pos, Py_ssize_t end,
                   int depth, int max_depth, Py_ssize_t* stop):
    cdef Tlv tlv
    cdef Py_ssize_t child
    cdef DerStatus status = der_read_header(buf, pos, end, &tlv)
    if status != DER_OK:
        _raise(status, pos)
    stop[0] = tlv.end
    if tlv.tag & 0x20:
        if depth >= max_depth:
            _raise(DER_TOO_DEEP, pos)
        children = []
        child = tlv.start
        while child < tlv.end:
            children.append(_parse(buf, child, tlv.end, depth + 1, max_depth, &child))
        return (tlv.tag, tuple(children))
    return (tlv.tag, bytes_slice(buf, tlv.start, tlv.end))


def parse_der(data, int max_depth=DEFAULT_MAX_DEPTH):
    """Decode one complete DER element into a tree.

    A constructed element becomes ``(tag, (child, ...))``, a primitive one
    ``(tag, content_bytes)``. Trailing bytes after the element are refused.
    """
    check_bytes(data)
    if max_depth < 1:
        raise ValueError("max_depth must be at least 1")
    cdef Py_ssize_t size = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t stop = 0
    node = _parse(<const unsigned char*>PyBytes_AS_STRING(data), 0, size, 0, max_depth, &stop)
    if stop != size:
        _raise(DER_TRAILING_DATA, stop)
    return node


# -- OCSP requests (RFC 6960 4.1.1) ------------------------------------------

HASH_UNKNOWN = 0
HASH_SHA1 = 1
HASH_SHA256 = 2
HASH_SHA384 = 3
HASH_SHA512 = 4
HASH_LENGTHS = {1: 20, 2: 32, 3: 48, 4: 64}
NONCE_OID = b"\x2b\x06\x01\x05\x05\x07\x30\x01\x02"
MAX_SERIAL_OCTETS = 20
# RFC 9654 2.1: "If the Nonce extension is present, then the length of the
# Nonce MUST be at least 1 octet and can be up to 128 octets." Responders
# "MUST reject any OCSP request that has a Nonce with a length of either 0
# octets or greater than 128 octets, with the malformedRequest
# OCSPResponseStatus". Which lengths are echoed is the responder's choice
# (va/responder.py).
cdef enum:
    C_MAX_NONCE_OCTETS = 128
MAX_NONCE_OCTETS = C_MAX_NONCE_OCTETS
DEFAULT_MAX_CERTIDS = 8

cdef const unsigned char* OID_SHA1 = b"\x2b\x0e\x03\x02\x1a"
cdef const unsigned char* OID_SHA2_PREFIX = b"\x60\x86\x48\x01\x65\x03\x04\x02"
cdef const unsigned char* OID_NONCE = b"\x2b\x06\x01\x05\x05\x07\x30\x01\x02"


cdef inline int _header(const unsigned char* buf, Py_ssize_t pos, Py_ssize_t end,
                        Tlv* out) except -1:
    cdef DerStatus status = der_read_header(buf, pos, end, out)
    if status != DER_OK:
        _raise(status, pos)
    return 0


cdef inline int _expect(const unsigned char* buf, Py_ssize_t pos, Py_ssize_t end,
                        unsigned char tag, Tlv* out) except -1:
    _header(buf, pos, end, out)
    if out.tag != tag:
        _raise(REQ_WRONG_TAG, pos)
    return 0


cdef int _check_oid(const unsigned char* buf, Py_ssize_t start, Py_ssize_t stop,
                    Py_ssize_t offset) except -1:
    # X.690 8.19.2: each subidentifier in the fewest octets (its first octet
    # is never 0x80), the last octet of each with bit 8 clear; at least one.
    cdef Py_ssize_t i
    cdef bint leading = True  # the next octet begins a subidentifier
    if start == stop:
        _raise(REQ_BAD_OID, offset)
    for i in range(start, stop):
        if leading and buf[i] == 0x80:
            _raise(REQ_BAD_OID, offset)
        leading = buf[i] < 0x80
    if not leading:
        _raise(REQ_BAD_OID, offset)
    return 0


cdef inline int _oid(const unsigned char* buf, Py_ssize_t pos, Py_ssize_t end,
                     Tlv* out) except -1:
    _expect(buf, pos, end, 0x06, out)
    _check_oid(buf, out.start, out.end, pos)
    return 0


cdef int _parameters(const unsigned char* buf, Py_ssize_t pos, Py_ssize_t end,
                     bint null_only) except -1:
    # AlgorithmIdentifier parameters filling [pos, end): ANY DEFINED BY the
    # algorithm (RFC 5280 4.1.1.2), one element; NULL has no content (X.690
    # 8.8.2). null_only: NULL or absent (SHA-1, RFC 3279 2.1; SHA-2, RFC 5754 2).
    cdef Tlv params
    _header(buf, pos, end, &params)
    if null_only and params.tag != 0x05:
        _raise(REQ_WRONG_TAG, pos)
    if params.end != end or (params.tag == 0x05 and params.start != params.end):
        _raise(REQ_BAD_ALGORITHM, pos)
    return 0


cdef int _hash_algorithm(const unsigned char* oid, Py_ssize_t length) noexcept nogil:
    cdef Py_ssize_t i
    if length == 5:
        for i in range(5):
            if oid[i] != OID_SHA1[i]:
                return 0
        return 1
    if length == 9:
        for i in range(8):
            if oid[i] != OID_SHA2_PREFIX[i]:
                return 0
        if 1 <= oid[8] <= 3:
            return oid[8] + 1  # ...04 02 01 sha256, 02 sha384, 03 sha512
    return 0


cdef Py_ssize_t _hash_length(int algorithm) noexcept nogil:
    if algorithm == 1:
        return 20
    if algorithm == 2:
        return 32
    if algorithm == 3:
        return 48
    if algorithm == 4:
        return 64
    return -1


cdef object _parse_certid(const unsigned char* buf, Py_ssize_t pos, Py_ssize_t end,
                          Py_ssize_t* stop_out):
    cdef Tlv seq, alg, oid, name, key, serial
    cdef int algorithm
    cdef Py_ssize_t length, hash_len
    _expect(buf, pos, end, 0x30, &seq)
    _expect(buf, seq.start, seq.end, 0x30, &alg)
    _oid(buf, alg.start, alg.end, &oid)
    algorithm = _hash_algorithm(buf + oid.start, oid.end - oid.start)
    if oid.end != alg.end:
        _parameters(buf, oid.end, alg.end, algorithm != 0)
    _expect(buf, alg.end, seq.end, 0x04, &name)
    _expect(buf, name.end, seq.end, 0x04, &key)
    if algorithm != 0:
        hash_len = _hash_length(algorithm)
        if not (name.end - name.start == hash_len and key.end - key.start == hash_len):
            _raise(REQ_BAD_HASH_LENGTH, name.end)
    _expect(buf, key.end, seq.end, 0x02, &serial)
    length = serial.end - serial.start
    if length == 0 or (
        length > 1
        and ((buf[serial.start] == 0 and buf[serial.start + 1] < 0x80)
             or (buf[serial.start] == 0xFF and buf[serial.start + 1] >= 0x80))
    ):
        _raise(REQ_BAD_SERIAL, key.end)
    if length > MAX_SERIAL_OCTETS:
        _raise(REQ_SERIAL_TOO_LONG, key.end)
    if serial.end != seq.end:
        _raise(REQ_TRAILING_DATA, serial.end)
    stop_out[0] = seq.end
    return (
        algorithm,
        bytes_slice(buf, name.start, name.end),
        bytes_slice(buf, key.start, key.end),
        bytes_slice(buf, serial.start, serial.end),
        bytes_slice(buf, pos, seq.end),
    )


cdef inline bint _is_nonce(const unsigned char* oid, Py_ssize_t length) noexcept nogil:
    cdef Py_ssize_t i
    if length != 9:
        return False
    for i in range(9):
        if oid[i] != OID_NONCE[i]:
            return False
    return True


cdef object _parse_extensions(const unsigned char* buf, Py_ssize_t pos, Py_ssize_t end,
                              unsigned char wrapper, bint nonce_allowed):
    cdef Tlv outer, seq, ext, oid, tlv, value, inner
    cdef Py_ssize_t cursor, value_pos
    cdef bint critical
    nonce = None
    seen = set()
    _expect(buf, pos, end, wrapper, &outer)
    if outer.end != end:
        _raise(REQ_TRAILING_DATA, outer.end)
    _expect(buf, outer.start, outer.end, 0x30, &seq)
    if seq.end != outer.end:
        _raise(REQ_TRAILING_DATA, seq.end)
    cursor = seq.start
    while cursor < seq.end:
        # Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue }
        _expect(buf, cursor, seq.end, 0x30, &ext)
        _oid(buf, ext.start, ext.end, &oid)
        critical = False
        value_pos = oid.end
        _header(buf, value_pos, ext.end, &tlv)
        if tlv.tag == 0x01:
            if tlv.end - tlv.start != 1 or (buf[tlv.start] != 0x00 and buf[tlv.start] != 0xFF):
                _raise(REQ_BAD_BOOLEAN, value_pos)
            if buf[tlv.start] == 0x00:  # X.690 11.5: FALSE is the DEFAULT, never encoded
                _raise(REQ_ENCODED_DEFAULT, value_pos)
            critical = True
            value_pos = tlv.end
        _expect(buf, value_pos, ext.end, 0x04, &value)
        if value.end != ext.end:
            _raise(REQ_TRAILING_DATA, value.end)
        # RFC 5280 4.2 (the extensions model of RFC 6960 4.4): one instance each.
        extension = bytes_slice(buf, oid.start, oid.end)
        if extension in seen:
            _raise(REQ_DUPLICATE_EXTENSION, cursor)
        seen.add(extension)
        if nonce_allowed and _is_nonce(buf + oid.start, oid.end - oid.start):
            # RFC 9654 2.1: Nonce ::= OCTET STRING(SIZE(1..128)), and extnValue
            # holds its encoding (a bare or truncated one is no Nonce either).
            if (der_read_header(buf, value.start, value.end, &inner) != DER_OK
                    or inner.tag != 0x04 or inner.end != value.end
                    or not (1 <= inner.end - inner.start <= C_MAX_NONCE_OCTETS)):
                _raise(REQ_BAD_NONCE, cursor)
            nonce = bytes_slice(buf, value.start, value.end)
        elif critical:
            _raise(REQ_UNSUPPORTED_CRITICAL_EXTENSION, cursor)
        cursor = ext.end
    return nonce


cdef int _parse_name(const unsigned char* buf, Py_ssize_t pos, Py_ssize_t end) except -1:
    # Name ::= RDNSequence filling [pos, end) (RFC 5280 4.1.2.4): SEQUENCE OF
    # SET OF AttributeTypeAndValue { type OID, value ANY }, each SET in DER
    # order. The values are not read.
    cdef Tlv seq, rdn, atv, oid, value
    cdef Py_ssize_t cursor, item, previous, previous_end, common, i
    cdef int order
    _expect(buf, pos, end, 0x30, &seq)
    if seq.end != end:
        _raise(REQ_TRAILING_DATA, seq.end)
    cursor = seq.start
    while cursor < seq.end:
        _expect(buf, cursor, seq.end, 0x31, &rdn)
        previous = -1
        previous_end = -1
        item = rdn.start
        while item < rdn.end:
            _expect(buf, item, rdn.end, 0x30, &atv)
            _oid(buf, atv.start, atv.end, &oid)
            _header(buf, oid.end, atv.end, &value)
            if value.end != atv.end:
                _raise(REQ_TRAILING_DATA, value.end)
            # X.690 11.6: ascending encodings (two complete TLVs are never each
            # other's proper prefix, so bytes order is its padded comparison).
            if previous >= 0:
                common = min(previous_end - previous, atv.end - item)
                order = 0
                for i in range(common):
                    if buf[previous + i] != buf[item + i]:
                        order = 1 if buf[previous + i] > buf[item + i] else -1
                        break
                if order > 0 or (order == 0 and previous_end - previous > atv.end - item):
                    _raise(REQ_UNSORTED_SET, item)
            previous = item
            previous_end = atv.end
            item = atv.end
        cursor = rdn.end
    return 0


cdef int _parse_general_name(const unsigned char* buf, Py_ssize_t pos,
                             Py_ssize_t end) except -1:
    # The GeneralName filling [pos, end) (RFC 5280 4.2.1.6), one of its
    # choices; x400Address and ediPartyName are not read further.
    cdef Tlv name, oid, value, inner
    cdef Py_ssize_t i
    _header(buf, pos, end, &name)
    if name.end != end:
        _raise(REQ_TRAILING_DATA, name.end)
    if name.tag == 0x81 or name.tag == 0x82 or name.tag == 0x86:
        # rfc822Name, dNSName, uniformResourceIdentifier: IA5String
        for i in range(name.start, name.end):
            if buf[i] > 0x7F:
                _raise(REQ_BAD_IA5_STRING, pos)
    elif name.tag == 0x88:  # registeredID
        _check_oid(buf, name.start, name.end, pos)
    elif name.tag == 0xA0:  # otherName: SEQUENCE { type-id OID, value [0] EXPLICIT ANY }
        _oid(buf, name.start, name.end, &oid)
        _expect(buf, oid.end, name.end, 0xA0, &value)
        if value.end != name.end:
            _raise(REQ_TRAILING_DATA, value.end)
        _header(buf, value.start, value.end, &inner)
        if inner.end != value.end:
            _raise(REQ_TRAILING_DATA, inner.end)
    elif name.tag == 0xA4:  # directoryName [4] EXPLICIT Name
        _parse_name(buf, name.start, name.end)
    elif name.tag != 0x87 and name.tag != 0xA3 and name.tag != 0xA5:
        # not iPAddress, x400Address or ediPartyName either
        _raise(REQ_BAD_GENERAL_NAME, pos)
    return 0


cdef int _parse_signature(const unsigned char* buf, Py_ssize_t pos,
                          Py_ssize_t end) except -1:
    # Signature ::= SEQUENCE { signatureAlgorithm AlgorithmIdentifier,
    # signature BIT STRING, certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }
    # filling [pos, end) (RFC 6960 4.1.1). Read for its form only: the
    # signature is not verified and the certificates are not read.
    cdef Tlv seq, alg, oid, bits, certs, cert_list, cert
    cdef int unused
    cdef Py_ssize_t item
    _expect(buf, pos, end, 0x30, &seq)
    if seq.end != end:
        _raise(REQ_TRAILING_DATA, seq.end)
    _expect(buf, seq.start, seq.end, 0x30, &alg)
    _oid(buf, alg.start, alg.end, &oid)
    if oid.end != alg.end:
        _parameters(buf, oid.end, alg.end, False)
    _expect(buf, alg.end, seq.end, 0x03, &bits)
    # X.690 8.6.2: an initial octet of 0 to 7 unused bits, 0 when there are
    # no others; 11.2.1: the unused bits are zero.
    unused = buf[bits.start] if bits.start < bits.end else 8
    if unused > 7 or (
        unused and (bits.end - bits.start == 1 or buf[bits.end - 1] & ((1 << unused) - 1))
    ):
        _raise(REQ_BAD_BIT_STRING, alg.end)
    if bits.end != seq.end:
        _expect(buf, bits.end, seq.end, 0xA0, &certs)
        if certs.end != seq.end:
            _raise(REQ_TRAILING_DATA, certs.end)
        _expect(buf, certs.start, certs.end, 0x30, &cert_list)
        if cert_list.end != certs.end:
            _raise(REQ_TRAILING_DATA, cert_list.end)
        item = cert_list.start
        while item < cert_list.end:
            _expect(buf, item, cert_list.end, 0x30, &cert)
            item = cert.end
    return 0


def parse_ocsp_request(data, Py_ssize_t max_certids=DEFAULT_MAX_CERTIDS):
    """Parse a DER OCSPRequest; see va._fastocsp_py.parse_ocsp_request."""
    check_bytes(data)
    cdef const unsigned char* buf = <const unsigned char*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t end = PyBytes_GET_SIZE(data)
    cdef Tlv top, tbs, sig, tlv, version, req
    cdef Py_ssize_t cursor, item, certid_stop = 0
    _expect(buf, 0, end, 0x30, &top)
    if top.end != end:
        _raise(DER_TRAILING_DATA, top.end)
    _expect(buf, top.start, top.end, 0x30, &tbs)
    if tbs.end != top.end:
        # optionalSignature [0] EXPLICIT Signature: read for its form, not verified.
        _expect(buf, tbs.end, top.end, 0xA0, &sig)
        if sig.end != top.end:
            _raise(REQ_TRAILING_DATA, sig.end)
        _parse_signature(buf, sig.start, sig.end)
    cursor = tbs.start
    _header(buf, cursor, tbs.end, &tlv)
    if tlv.tag == 0xA0:  # version [0] EXPLICIT Version DEFAULT v1
        _expect(buf, tlv.start, tlv.end, 0x02, &version)
        if version.end == tlv.end and version.end - version.start == 1 and buf[version.start] == 0:
            # X.690 11.5: v1 is the DEFAULT, so a DER request leaves it out.
            _raise(REQ_ENCODED_DEFAULT, cursor)
        _raise(REQ_BAD_VERSION, cursor)
    if tlv.tag == 0xA1:  # requestorName [1] EXPLICIT GeneralName: checked, not used
        _parse_general_name(buf, tlv.start, tlv.end)
        cursor = tlv.end
        _header(buf, cursor, tbs.end, &tlv)
    if tlv.tag != 0x30:
        _raise(REQ_WRONG_TAG, cursor)
    if tlv.start == tlv.end:
        _raise(REQ_EMPTY_REQUEST_LIST, cursor)
    certids = []
    item = tlv.start
    while item < tlv.end:
        if len(certids) == max_certids:
            _raise(REQ_TOO_MANY_CERTIDS, item)
        _expect(buf, item, tlv.end, 0x30, &req)
        certid = _parse_certid(buf, req.start, req.end, &certid_stop)
        if certid_stop != req.end:
            _parse_extensions(buf, certid_stop, req.end, 0xA0, False)
        certids.append(certid)
        item = req.end
    cursor = tlv.end
    nonce = None
    if cursor < tbs.end:
        nonce = _parse_extensions(buf, cursor, tbs.end, 0xA2, True)
    return tuple(certids), nonce


# The response encoder lives in its own file, compiled into this module.
include "_responses.pxi"
