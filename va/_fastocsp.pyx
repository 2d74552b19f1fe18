# cython: language_level=3
"""Native OCSP core: a bounds-checked DER reader (X.690 DER subset), the
OCSP request parser and response encoder, and the HTTP fast lane's
recognizer of the simplest complete OCSP requests (``simple_request``).

Bytes in, bytes or tuples out: no sockets, no asyncio, no key material.
``va._fastocsp_py`` is the pure-Python twin; both must return the same
results and raise the same :class:`va.errors.DERError` for every input.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE

from va.errors import DERError

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


cdef inline int _raise(DerStatus status, Py_ssize_t offset) except -1:
    # The one place native status codes become Python exceptions.
    raise DERError(<int>status, offset)


cdef inline void _check_bytes(object data) except *:
    if type(data) is not bytes:
        raise TypeError(f"data must be bytes, not {type(data).__name__}")


def read_tlv(data, Py_ssize_t offset=0, Py_ssize_t end=-1):
    """Read the header of one DER element inside ``data[offset:end]``.

    Returns ``(tag, content_start, content_end)``; ``end=-1`` means the end
    of ``data``. The element's content is guaranteed to lie inside the window.
    """
    _check_bytes(data)
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
    return (tlv.tag, PyBytes_FromStringAndSize(<const char*>buf + tlv.start, tlv.end - tlv.start))


def parse_der(data, int max_depth=DEFAULT_MAX_DEPTH):
    """Decode one complete DER element into a tree.

    A constructed element becomes ``(tag, (child, ...))``, a primitive one
    ``(tag, content_bytes)``. Trailing bytes after the element are refused.
    """
    _check_bytes(data)
    if max_depth < 1:
        raise ValueError("max_depth must be at least 1")
    cdef Py_ssize_t size = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t stop = 0
    node = _parse(<const unsigned char*>PyBytes_AS_STRING(data), 0, size, 0, max_depth, &stop)
    if stop != size:
        _raise(DER_TRAILING_DATA, stop)
    return node


# -- OCSP requests (RFC 6960 4.1.1) ------------------------------------------

from va.errors import RequestError

cdef enum:
    REQ_WRONG_TAG = 20
    REQ_BAD_VERSION = 21
    REQ_EMPTY_REQUEST_LIST = 22
    REQ_TOO_MANY_CERTIDS = 23
    REQ_BAD_HASH_LENGTH = 24
    REQ_BAD_ALGORITHM = 25
    REQ_BAD_SERIAL = 26
    REQ_SERIAL_TOO_LONG = 27
    REQ_BAD_NONCE = 28
    REQ_DUPLICATE_EXTENSION = 29
    REQ_UNSUPPORTED_CRITICAL_EXTENSION = 30
    REQ_BAD_BOOLEAN = 31
    REQ_TRAILING_DATA = 32

HASH_UNKNOWN = 0
HASH_SHA1 = 1
HASH_SHA256 = 2
HASH_SHA384 = 3
HASH_SHA512 = 4
HASH_LENGTHS = {1: 20, 2: 32, 3: 48, 4: 64}
NONCE_OID = b"\x2b\x06\x01\x05\x05\x07\x30\x01\x02"
MAX_SERIAL_OCTETS = 20
MAX_NONCE_OCTETS = 32
DEFAULT_MAX_CERTIDS = 8

cdef const unsigned char* OID_SHA1 = b"\x2b\x0e\x03\x02\x1a"
cdef const unsigned char* OID_SHA2_PREFIX = b"\x60\x86\x48\x01\x65\x03\x04\x02"
cdef const unsigned char* OID_NONCE = b"\x2b\x06\x01\x05\x05\x07\x30\x01\x02"


cdef inline int _req_raise(int code, Py_ssize_t offset) except -1:
    raise RequestError(code, offset)


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
        _req_raise(REQ_WRONG_TAG, pos)
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


cdef object _slice(const unsigned char* buf, Py_ssize_t start, Py_ssize_t stop):
    return PyBytes_FromStringAndSize(<const char*>buf + start, stop - start)


cdef object _parse_certid(const unsigned char* buf, Py_ssize_t pos, Py_ssize_t end,
                          Py_ssize_t* stop_out):
    cdef Tlv seq, alg, oid, null, name, key, serial
    cdef int algorithm
    cdef Py_ssize_t length, hash_len
    _expect(buf, pos, end, 0x30, &seq)
    _expect(buf, seq.start, seq.end, 0x30, &alg)
    _expect(buf, alg.start, alg.end, 0x06, &oid)
    if oid.end != alg.end:
        _expect(buf, oid.end, alg.end, 0x05, &null)
        if null.start != null.end or null.end != alg.end:
            _req_raise(REQ_BAD_ALGORITHM, oid.end)
    algorithm = _hash_algorithm(buf + oid.start, oid.end - oid.start)
    _expect(buf, alg.end, seq.end, 0x04, &name)
    _expect(buf, name.end, seq.end, 0x04, &key)
    if algorithm != 0:
        hash_len = _hash_length(algorithm)
        if not (name.end - name.start == hash_len and key.end - key.start == hash_len):
            _req_raise(REQ_BAD_HASH_LENGTH, name.end)
    _expect(buf, key.end, seq.end, 0x02, &serial)
    length = serial.end - serial.start
    if length == 0 or (
        length > 1
        and ((buf[serial.start] == 0 and buf[serial.start + 1] < 0x80)
             or (buf[serial.start] == 0xFF and buf[serial.start + 1] >= 0x80))
    ):
        _req_raise(REQ_BAD_SERIAL, key.end)
    if length > MAX_SERIAL_OCTETS:
        _req_raise(REQ_SERIAL_TOO_LONG, key.end)
    if serial.end != seq.end:
        _req_raise(REQ_TRAILING_DATA, serial.end)
    stop_out[0] = seq.end
    return (
        algorithm,
        _slice(buf, name.start, name.end),
        _slice(buf, key.start, key.end),
        _slice(buf, serial.start, serial.end),
        _slice(buf, pos, seq.end),
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
    _expect(buf, pos, end, wrapper, &outer)
    if outer.end != end:
        _req_raise(REQ_TRAILING_DATA, outer.end)
    _expect(buf, outer.start, outer.end, 0x30, &seq)
    if seq.end != outer.end:
        _req_raise(REQ_TRAILING_DATA, seq.end)
    cursor = seq.start
    while cursor < seq.end:
        _expect(buf, cursor, seq.end, 0x30, &ext)
        _expect(buf, ext.start, ext.end, 0x06, &oid)
        critical = False
        value_pos = oid.end
        _header(buf, value_pos, ext.end, &tlv)
        if tlv.tag == 0x01:
            if tlv.end - tlv.start != 1 or (buf[tlv.start] != 0x00 and buf[tlv.start] != 0xFF):
                _req_raise(REQ_BAD_BOOLEAN, value_pos)
            critical = buf[tlv.start] == 0xFF
            value_pos = tlv.end
        _expect(buf, value_pos, ext.end, 0x04, &value)
        if value.end != ext.end:
            _req_raise(REQ_TRAILING_DATA, value.end)
        if nonce_allowed and _is_nonce(buf + oid.start, oid.end - oid.start):
            if nonce is not None:
                _req_raise(REQ_DUPLICATE_EXTENSION, cursor)
            # RFC 8954 2.1: Nonce ::= OCTET STRING (SIZE(1..32)).
            _header(buf, value.start, value.end, &inner)
            if (inner.tag != 0x04 or inner.end != value.end
                    or not (1 <= inner.end - inner.start <= MAX_NONCE_OCTETS)):
                _req_raise(REQ_BAD_NONCE, cursor)
            nonce = _slice(buf, value.start, value.end)
        elif critical:
            _req_raise(REQ_UNSUPPORTED_CRITICAL_EXTENSION, cursor)
        cursor = ext.end
    return nonce


def parse_ocsp_request(data, Py_ssize_t max_certids=DEFAULT_MAX_CERTIDS):
    """Parse a DER OCSPRequest; see va._fastocsp_py.parse_ocsp_request."""
    _check_bytes(data)
    cdef const unsigned char* buf = <const unsigned char*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t end = PyBytes_GET_SIZE(data)
    cdef Tlv top, tbs, sig, tlv, version, req
    cdef Py_ssize_t cursor, item, certid_stop = 0
    _expect(buf, 0, end, 0x30, &top)
    if top.end != end:
        _raise(DER_TRAILING_DATA, top.end)
    _expect(buf, top.start, top.end, 0x30, &tbs)
    if tbs.end != top.end:
        _expect(buf, tbs.end, top.end, 0xA0, &sig)
        if sig.end != top.end:
            _req_raise(REQ_TRAILING_DATA, sig.end)
    cursor = tbs.start
    _header(buf, cursor, tbs.end, &tlv)
    if tlv.tag == 0xA0:
        _expect(buf, tlv.start, tlv.end, 0x02, &version)
        if version.end != tlv.end or version.end - version.start != 1 or buf[version.start] != 0:
            _req_raise(REQ_BAD_VERSION, cursor)
        cursor = tlv.end
        _header(buf, cursor, tbs.end, &tlv)
    if tlv.tag == 0xA1:
        cursor = tlv.end
        _header(buf, cursor, tbs.end, &tlv)
    if tlv.tag != 0x30:
        _req_raise(REQ_WRONG_TAG, cursor)
    if tlv.start == tlv.end:
        _req_raise(REQ_EMPTY_REQUEST_LIST, cursor)
    certids = []
    item = tlv.start
    while item < tlv.end:
        if len(certids) == max_certids:
            _req_raise(REQ_TOO_MANY_CERTIDS, item)
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


# -- OCSP responses (RFC 6960 4.2.1) -----------------------------------------

from libc.string cimport memcpy
from libc.time cimport time_t, tm

cdef extern from "<time.h>" nogil:
    tm* gmtime_r(const time_t* timep, tm* result)

STATUS_GOOD = 0
STATUS_REVOKED = 1
STATUS_UNKNOWN = 2
NO_REASON = -1
EXTENDED_REVOKE_EXTENSION = b"\x30\x0f\x06\x09\x2b\x06\x01\x05\x05\x07\x30\x01\x09\x04\x02\x05\x00"
MALFORMED_REQUEST = b"\x30\x03\x0a\x01\x01"
INTERNAL_ERROR = b"\x30\x03\x0a\x01\x02"
TRY_LATER = b"\x30\x03\x0a\x01\x03"
SIG_REQUIRED = b"\x30\x03\x0a\x01\x05"
UNAUTHORIZED = b"\x30\x03\x0a\x01\x06"

_HASH_ALGORITHM_IDS = {
    1: b"\x30\x09\x06\x05\x2b\x0e\x03\x02\x1a\x05\x00",
    2: b"\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00",
    3: b"\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x02\x05\x00",
    4: b"\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x03\x05\x00",
}
cdef bytes _BASIC_RESPONSE_TYPE = b"\x06\x09\x2b\x06\x01\x05\x05\x07\x30\x01\x01"
cdef bytes _NONCE_EXTENSION_OID = b"\x06\x09\x2b\x06\x01\x05\x05\x07\x30\x01\x02"


cdef inline Py_ssize_t _head_len(Py_ssize_t n) noexcept nogil:
    """Octets of a DER tag and length for ``n`` content octets (n < 2**24)."""
    if n < 0x80:
        return 2
    if n < 0x100:
        return 3
    if n < 0x10000:
        return 4
    return 5


cdef inline Py_ssize_t _put_head(char* dst, unsigned char tag, Py_ssize_t n) noexcept nogil:
    """Write a tag and the length ``n`` (n < 2**24); returns octets written."""
    dst[0] = <char>tag
    if n < 0x80:
        dst[1] = <char>n
        return 2
    if n < 0x100:
        dst[1] = <char>0x81
        dst[2] = <char>n
        return 3
    if n < 0x10000:
        dst[1] = <char>0x82
        dst[2] = <char>(n >> 8)
        dst[3] = <char>n
        return 4
    dst[1] = <char>0x83
    dst[2] = <char>(n >> 16)
    dst[3] = <char>(n >> 8)
    dst[4] = <char>n
    return 5


cdef bytes _tlv(unsigned char tag, bytes content):
    cdef Py_ssize_t n = PyBytes_GET_SIZE(content)
    if n >= 0x1000000:
        raise ValueError("element too large")
    cdef Py_ssize_t head_len = _head_len(n)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, head_len + n)
    cdef char* dst = PyBytes_AS_STRING(out)
    _put_head(dst, tag, n)
    memcpy(dst + head_len, PyBytes_AS_STRING(content), n)
    return out


cdef inline void _digits(char* dst, int value, int width) noexcept nogil:
    cdef int i
    for i in range(width - 1, -1, -1):
        dst[i] = <char>(48 + value % 10)
        value //= 10


def generalized_time(long long epoch):
    """GeneralizedTime YYYYMMDDHHMMSSZ (RFC 5280 4.1.2.5.2), from 1970 to 9999."""
    cdef time_t t
    cdef tm parts
    cdef char text[17]
    if not 0 <= epoch <= 253402300799:
        raise ValueError("time outside 1970-01-01..9999-12-31")
    t = <time_t>epoch
    if gmtime_r(&t, &parts) == NULL:
        raise ValueError("time outside 1970-01-01..9999-12-31")
    text[0] = 0x18
    text[1] = 15
    _digits(text + 2, parts.tm_year + 1900, 4)
    _digits(text + 6, parts.tm_mon + 1, 2)
    _digits(text + 8, parts.tm_mday, 2)
    _digits(text + 10, parts.tm_hour, 2)
    _digits(text + 12, parts.tm_min, 2)
    _digits(text + 14, parts.tm_sec, 2)
    text[16] = b"Z"
    return PyBytes_FromStringAndSize(text, 17)


def encode_certid(int hash_algorithm, bytes name_hash not None, bytes key_hash not None,
                  bytes serial not None):
    """CertID with ``serial`` given as the INTEGER's content octets."""
    return _tlv(0x30, _certid_head(hash_algorithm, name_hash, key_hash) + _tlv(0x02, serial))


def encode_cert_status(int status, long long revocation_time, int reason):
    """CertStatus; see va._fastocsp_py.encode_cert_status."""
    cdef bytes info
    if status == 0:
        return b"\x80\x00"
    if status == 2:
        return b"\x82\x00"
    if status == 1:
        info = generalized_time(revocation_time)
        if reason != -1:
            if not 0 <= reason <= 10 or reason == 7:
                raise ValueError(f"invalid CRLReason {reason}")
            info += _tlv(0xA0, bytes((0x0A, 0x01, reason)))
        return _tlv(0xA1, info)
    raise ValueError(f"invalid certificate status {status}")


cdef bytes _validity(long long this_update, long long next_update):
    if next_update == -1:
        return generalized_time(this_update)
    return generalized_time(this_update) + _tlv(0xA0, generalized_time(next_update))


def encode_single_response(bytes certid not None, int status, long long revocation_time, int reason,
                           long long this_update, long long next_update):
    """SingleResponse; see va._fastocsp_py.encode_single_response."""
    return _tlv(0x30, certid + encode_cert_status(status, revocation_time, reason)
                + _validity(this_update, next_update))


cdef bytes _certid_head(int hash_algorithm, bytes name_hash, bytes key_hash):
    if hash_algorithm not in _HASH_ALGORITHM_IDS:
        raise ValueError(f"unsupported hash algorithm {hash_algorithm}")
    return _HASH_ALGORITHM_IDS[hash_algorithm] + _tlv(0x04, name_hash) + _tlv(0x04, key_hash)


def encode_response_data_many(bytes responder_id not None, long long produced_at,
                              int hash_algorithm, bytes name_hash not None,
                              bytes key_hash not None, serials, cert_statuses,
                              long long this_update, long long next_update, extensions):
    """One single-serial ResponseData per serial; see
    va._fastocsp_py.encode_response_data_many. The shared parts are encoded
    once, and each ResponseData is written into one allocation."""
    if not (type(serials) is type(cert_statuses) is type(extensions) is list):
        raise TypeError("serials, cert_statuses and extensions must be lists")
    cdef list serial_list = <list>serials, status_list = <list>cert_statuses
    cdef list extension_list = <list>extensions
    cdef Py_ssize_t count = len(serial_list)
    if len(status_list) != count or len(extension_list) != count:
        raise ValueError("serials, cert_statuses and extensions differ in length")
    cdef bytes certid_head = _certid_head(hash_algorithm, name_hash, key_hash)
    cdef bytes head = responder_id + generalized_time(produced_at)
    cdef bytes tail = _validity(this_update, next_update)
    cdef Py_ssize_t certid_head_n = PyBytes_GET_SIZE(certid_head)
    cdef Py_ssize_t head_n = PyBytes_GET_SIZE(head), tail_n = PyBytes_GET_SIZE(tail)
    cdef Py_ssize_t i, serial_n, status_n, extension_n, certid, single, responses
    cdef Py_ssize_t extension_seq, body, total, pos
    cdef object serial, cert_status, extension
    cdef bytes item
    cdef char* dst
    cdef list out = []
    for i in range(count):
        serial = serial_list[i]
        cert_status = status_list[i]
        extension = extension_list[i]
        if type(serial) is not bytes or type(cert_status) is not bytes:
            raise TypeError("serials and cert_statuses must be bytes")
        if type(extension) is not bytes:
            raise TypeError("extensions must be bytes")
        serial_n = PyBytes_GET_SIZE(serial)
        status_n = PyBytes_GET_SIZE(cert_status)
        extension_n = PyBytes_GET_SIZE(extension)
        if serial_n >= 0x10000 or status_n >= 0x10000 or extension_n >= 0x10000:
            raise ValueError("element too large")
        certid = certid_head_n + _head_len(serial_n) + serial_n
        single = _head_len(certid) + certid + status_n + tail_n
        responses = _head_len(single) + single
        body = head_n + _head_len(responses) + responses
        extension_seq = 0
        if extension_n:
            extension_seq = _head_len(extension_n) + extension_n
            body += _head_len(extension_seq) + extension_seq
        if body >= 0x1000000:
            raise ValueError("element too large")
        total = _head_len(body) + body
        item = PyBytes_FromStringAndSize(NULL, total)
        dst = PyBytes_AS_STRING(item)
        pos = _put_head(dst, 0x30, body)
        memcpy(dst + pos, PyBytes_AS_STRING(head), head_n)
        pos += head_n
        pos += _put_head(dst + pos, 0x30, responses)
        pos += _put_head(dst + pos, 0x30, single)
        pos += _put_head(dst + pos, 0x30, certid)
        memcpy(dst + pos, PyBytes_AS_STRING(certid_head), certid_head_n)
        pos += certid_head_n
        pos += _put_head(dst + pos, 0x02, serial_n)
        memcpy(dst + pos, PyBytes_AS_STRING(serial), serial_n)
        pos += serial_n
        memcpy(dst + pos, PyBytes_AS_STRING(cert_status), status_n)
        pos += status_n
        memcpy(dst + pos, PyBytes_AS_STRING(tail), tail_n)
        pos += tail_n
        if extension_n:
            pos += _put_head(dst + pos, 0xA1, extension_seq)
            pos += _put_head(dst + pos, 0x30, extension_n)
            memcpy(dst + pos, PyBytes_AS_STRING(extension), extension_n)
            pos += extension_n
        if pos != total:  # cannot happen: the lengths above are the layout
            raise AssertionError("ResponseData layout mismatch")
        out.append(item)
    return out


def encode_nonce_extension(bytes nonce not None):
    """The response's nonce Extension, echoing the request's extnValue content."""
    return _tlv(0x30, _NONCE_EXTENSION_OID + _tlv(0x04, nonce))


def encode_response_data(bytes responder_id not None, long long produced_at, responses,
                         bytes extensions not None):
    """ResponseData; see va._fastocsp_py.encode_response_data."""
    cdef bytes body = responder_id + generalized_time(produced_at) + _tlv(0x30, b"".join(responses))
    if extensions:
        body += _tlv(0xA1, _tlv(0x30, extensions))
    return _tlv(0x30, body)


def encode_ocsp_response(bytes response_data not None, bytes signature_algorithm not None,
                         bytes signature not None, bytes certs not None):
    """A successful OCSPResponse around a signed BasicOCSPResponse; see
    va._fastocsp_py.encode_ocsp_response. Every length is computed first and
    the response written into one allocation (the twin nests six copies)."""
    cdef Py_ssize_t data_n = PyBytes_GET_SIZE(response_data)
    cdef Py_ssize_t alg_n = PyBytes_GET_SIZE(signature_algorithm)
    cdef Py_ssize_t sig_n = PyBytes_GET_SIZE(signature)
    cdef Py_ssize_t certs_n = PyBytes_GET_SIZE(certs)
    cdef Py_ssize_t type_n = PyBytes_GET_SIZE(_BASIC_RESPONSE_TYPE)
    cdef Py_ssize_t bits = 1 + sig_n
    cdef Py_ssize_t certs_seq = 0, certs_tagged = 0
    if certs_n:
        certs_seq = _head_len(certs_n) + certs_n
        certs_tagged = _head_len(certs_seq) + certs_seq
    cdef Py_ssize_t basic = data_n + alg_n + _head_len(bits) + bits + certs_tagged
    cdef Py_ssize_t basic_seq = _head_len(basic) + basic
    cdef Py_ssize_t response_bytes = type_n + _head_len(basic_seq) + basic_seq
    cdef Py_ssize_t response_bytes_seq = _head_len(response_bytes) + response_bytes
    cdef Py_ssize_t outer = 3 + _head_len(response_bytes_seq) + response_bytes_seq
    if outer >= 0x1000000:  # every inner element is smaller
        raise ValueError("element too large")
    cdef Py_ssize_t total = _head_len(outer) + outer
    cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
    cdef char* dst = PyBytes_AS_STRING(out)
    cdef Py_ssize_t pos = _put_head(dst, 0x30, outer)
    memcpy(dst + pos, b"\x0a\x01\x00", 3)  # responseStatus successful
    pos += 3
    pos += _put_head(dst + pos, 0xA0, response_bytes_seq)
    pos += _put_head(dst + pos, 0x30, response_bytes)
    memcpy(dst + pos, PyBytes_AS_STRING(_BASIC_RESPONSE_TYPE), type_n)
    pos += type_n
    pos += _put_head(dst + pos, 0x04, basic_seq)
    pos += _put_head(dst + pos, 0x30, basic)
    memcpy(dst + pos, PyBytes_AS_STRING(response_data), data_n)
    pos += data_n
    memcpy(dst + pos, PyBytes_AS_STRING(signature_algorithm), alg_n)
    pos += alg_n
    pos += _put_head(dst + pos, 0x03, bits)
    dst[pos] = 0  # no unused bits
    pos += 1
    memcpy(dst + pos, PyBytes_AS_STRING(signature), sig_n)
    pos += sig_n
    if certs_n:
        pos += _put_head(dst + pos, 0xA0, certs_seq)
        pos += _put_head(dst + pos, 0x30, certs_n)
        memcpy(dst + pos, PyBytes_AS_STRING(certs), certs_n)
        pos += certs_n
    if pos != total:  # cannot happen: the lengths above are the layout
        raise AssertionError("OCSPResponse layout mismatch")
    return out


# The HTTP fast lane's recognizer lives in its own file, compiled into this
# module (it shares the byte helpers above).
include "_fastlane.pxi"
