# OCSP response encoding (RFC 6960 4.2.1), compiled into va._fastocsp by an
# ``include`` in _fastocsp.pyx: every length computed first and each element
# written into one allocation where it matters. The twin is
# va/_responses_py.py (re-exported by va/_fastocsp_py.py, as this file's
# names are va._fastocsp's); both must produce the same bytes for every input.

from libc.string cimport memcpy

from common._dertime cimport DER_TIME_MAX, der_time

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


# RFC 6960 writes every time as GeneralizedTime: der_time(..., True) writes
# TIME_N octets (tag, length, YYYYMMDDHHMMSSZ).
cdef enum:
    TIME_N = DER_TIME_MAX


def generalized_time(long long epoch):
    """GeneralizedTime YYYYMMDDHHMMSSZ (RFC 5280 4.1.2.5.2), from 1970 to 9999."""
    cdef unsigned char text[TIME_N]
    der_time(text, epoch, True)
    return PyBytes_FromStringAndSize(<const char*>text, TIME_N)


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


def encode_fresh_response_data(bytes responder_id not None, long long produced_at,
                                bytes certid not None, bytes cert_status not None,
                                long long next_update, nonce, bytes extensions not None):
    """The ResponseData of a fresh answer for one CertID; see
    va._fastocsp_py.encode_fresh_response_data. Written into one allocation."""
    cdef Py_ssize_t rid_n = PyBytes_GET_SIZE(responder_id)
    cdef Py_ssize_t certid_n = PyBytes_GET_SIZE(certid)
    cdef Py_ssize_t status_n = PyBytes_GET_SIZE(cert_status)
    cdef Py_ssize_t ext_n = PyBytes_GET_SIZE(extensions)
    cdef Py_ssize_t nonce_n = 0, nonce_ext = 0, nonce_ext_n = 0, all_ext = 0, ext_seq = 0
    cdef Py_ssize_t single, responses, body, total, pos
    cdef const char* nonce_buf = NULL
    if nonce is not None:
        if type(nonce) is not bytes:
            raise TypeError("nonce must be bytes or None")
        nonce_n = PyBytes_GET_SIZE(nonce)
        nonce_buf = PyBytes_AS_STRING(nonce)
    if (rid_n >= 0x10000 or certid_n >= 0x10000 or status_n >= 0x10000
            or ext_n >= 0x10000 or nonce_n >= 0x10000):
        raise ValueError("element too large")
    single = certid_n + status_n + TIME_N + 2 + TIME_N  # thisUpdate, [0] nextUpdate
    responses = _head_len(single) + single
    body = rid_n + TIME_N + _head_len(responses) + responses
    if nonce is not None:
        nonce_ext_n = PyBytes_GET_SIZE(_NONCE_EXTENSION_OID) + _head_len(nonce_n) + nonce_n
        nonce_ext = _head_len(nonce_ext_n) + nonce_ext_n
    all_ext = nonce_ext + ext_n
    if all_ext:
        ext_seq = _head_len(all_ext) + all_ext
        body += _head_len(ext_seq) + ext_seq
    total = _head_len(body) + body
    cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
    cdef char* dst = PyBytes_AS_STRING(out)
    pos = _put_head(dst, 0x30, body)
    memcpy(dst + pos, PyBytes_AS_STRING(responder_id), rid_n)
    pos += rid_n
    der_time(<unsigned char*>dst + pos, produced_at, True)
    cdef Py_ssize_t produced = pos
    pos += TIME_N
    pos += _put_head(dst + pos, 0x30, responses)
    pos += _put_head(dst + pos, 0x30, single)
    memcpy(dst + pos, PyBytes_AS_STRING(certid), certid_n)
    pos += certid_n
    memcpy(dst + pos, PyBytes_AS_STRING(cert_status), status_n)
    pos += status_n
    memcpy(dst + pos, dst + produced, TIME_N)  # thisUpdate is producedAt
    pos += TIME_N
    pos += _put_head(dst + pos, 0xA0, TIME_N)
    der_time(<unsigned char*>dst + pos, next_update, True)
    pos += TIME_N
    if all_ext:
        pos += _put_head(dst + pos, 0xA1, ext_seq)
        pos += _put_head(dst + pos, 0x30, all_ext)
        if nonce is not None:
            pos += _put_head(dst + pos, 0x30, nonce_ext_n)
            memcpy(dst + pos, PyBytes_AS_STRING(_NONCE_EXTENSION_OID),
                   PyBytes_GET_SIZE(_NONCE_EXTENSION_OID))
            pos += PyBytes_GET_SIZE(_NONCE_EXTENSION_OID)
            pos += _put_head(dst + pos, 0x04, nonce_n)
            memcpy(dst + pos, nonce_buf, nonce_n)
            pos += nonce_n
        memcpy(dst + pos, PyBytes_AS_STRING(extensions), ext_n)
        pos += ext_n
    if pos != total:  # cannot happen: the lengths above are the layout
        raise AssertionError("ResponseData layout mismatch")
    return out


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
    return _ocsp_response(response_data, signature_algorithm, signature, certs)


def encode_ocsp_responses(response_data, bytes signature_algorithm not None, signatures,
                          bytes certs not None):
    """``encode_ocsp_response`` for each ResponseData and its signature (one
    signer's batch), in one call; see va._fastocsp_py.encode_ocsp_responses."""
    if type(response_data) is not list or type(signatures) is not list:
        raise TypeError("response_data and signatures must be lists")
    cdef list data_list = <list>response_data, signature_list = <list>signatures
    cdef Py_ssize_t i, count = len(data_list)
    if len(signature_list) != count:
        raise ValueError("response_data and signatures differ in length")
    cdef list out = []
    cdef object data, signature
    for i in range(count):
        data = data_list[i]
        signature = signature_list[i]
        if type(data) is not bytes or type(signature) is not bytes:
            raise TypeError("response_data and signatures must be bytes")
        out.append(_ocsp_response(data, signature_algorithm, signature, certs))
    return out


cdef bytes _ocsp_response(bytes response_data, bytes signature_algorithm, bytes signature,
                          bytes certs):
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
