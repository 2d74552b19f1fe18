# cython: language_level=3
"""The HTTP fast lane's recognizer of the simplest complete OCSP requests.

See va._fastlane_py.simple_request (the pure-Python twin) for the rules.
Everything here only says yes to a strict subset of what httptools (llhttp)
parses, with the same meaning; anything else is None and goes to httptools.
Bytes in, a tuple or None out; bounds-checked like the OCSP core.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE

from va._bytes cimport bytes_slice, check_bytes

__all__ = ("SIMPLE_MAX", "simple_request")

SIMPLE_MAX = 8192
cdef enum:
    C_SIMPLE_MAX = 8192
    C_SIMPLE_MAX_HEADERS = 32

# Request-target bytes: RFC 3986 unreserved, pct-encoded, sub-delims, ":@/".
cdef bytes _TARGET_CHARS = (
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%!$&'()*+,;=:@/"
)
# RFC 9110 tchar.
cdef bytes _TOKEN_CHARS = (
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~"
)
cdef unsigned char _target_ok[256]
cdef unsigned char _token_ok[256]


cdef void _init_tables():
    cdef Py_ssize_t i
    cdef const unsigned char* chars
    for i in range(256):
        _target_ok[i] = 0
        _token_ok[i] = 0
    chars = _TARGET_CHARS
    for i in range(len(_TARGET_CHARS)):
        _target_ok[chars[i]] = 1
    chars = _TOKEN_CHARS
    for i in range(len(_TOKEN_CHARS)):
        _token_ok[chars[i]] = 1


_init_tables()

cdef enum:
    H_OTHER = 0
    H_IGNORED = 1
    H_CONTENT_LENGTH = 2
    H_CONTENT_TYPE = 3
    H_CONNECTION = 4


cdef bint _lower_equals(const unsigned char* buf, Py_ssize_t length,
                        const char* lower) noexcept nogil:
    """``buf[:length]`` equals the NUL-terminated lowercase ``lower``, ASCII
    case-insensitively."""
    cdef Py_ssize_t i
    cdef unsigned char c
    for i in range(length):
        if lower[i] == 0:
            return False
        c = buf[i]
        if 0x41 <= c <= 0x5A:
            c += 0x20
        if c != <unsigned char>lower[i]:
            return False
    return lower[length] == 0


cdef int _header_kind(const unsigned char* name, Py_ssize_t length) noexcept nogil:
    if _lower_equals(name, length, b"content-length"):
        return H_CONTENT_LENGTH
    if _lower_equals(name, length, b"content-type"):
        return H_CONTENT_TYPE
    if _lower_equals(name, length, b"connection"):
        return H_CONNECTION
    if (_lower_equals(name, length, b"host")
            or _lower_equals(name, length, b"user-agent")
            or _lower_equals(name, length, b"accept")
            or _lower_equals(name, length, b"accept-encoding")
            or _lower_equals(name, length, b"accept-language")
            or _lower_equals(name, length, b"cache-control")
            or _lower_equals(name, length, b"pragma")):
        return H_IGNORED
    return H_OTHER


def simple_request(data, bytes prefix not None):
    """``(is_post, value)`` for the simplest complete OCSP request, else None.

    See va._fastlane_py.simple_request; both must agree on every input.
    """
    check_bytes(data)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(data)
    cdef const unsigned char* buf = <const unsigned char*>PyBytes_AS_STRING(data)
    cdef const unsigned char* pre = <const unsigned char*>PyBytes_AS_STRING(prefix)
    cdef Py_ssize_t plen = PyBytes_GET_SIZE(prefix)
    cdef Py_ssize_t pos, target, target_end, name, name_end, value, value_end, i
    cdef Py_ssize_t headers = 0, content_length = -1
    cdef bint post, typed = False
    cdef int kind
    if size > C_SIMPLE_MAX:
        return None
    if size >= 4 and buf[0] == b'G' and buf[1] == b'E' and buf[2] == b'T' and buf[3] == b' ':
        post, pos = False, 4
    elif (size >= 5 and buf[0] == b'P' and buf[1] == b'O' and buf[2] == b'S'
          and buf[3] == b'T' and buf[4] == b' '):
        post, pos = True, 5
    else:
        return None
    target = pos
    while pos < size and _target_ok[buf[pos]]:
        pos += 1
    target_end = pos
    if target_end == target or size - pos < 11:
        return None
    if (buf[pos] != b' ' or buf[pos + 1] != b'H' or buf[pos + 2] != b'T' or buf[pos + 3] != b'T'
            or buf[pos + 4] != b'P' or buf[pos + 5] != b'/' or buf[pos + 6] != b'1'
            or buf[pos + 7] != b'.' or buf[pos + 8] != b'1' or buf[pos + 9] != b'\r'
            or buf[pos + 10] != b'\n'):
        return None
    pos += 11
    # The target: the OCSP path itself (POST) or under it (both).
    if target_end - target < plen:
        return None
    for i in range(plen):
        if buf[target + i] != pre[i]:
            return None
    if target_end - target == plen:
        if not post:
            return None
    elif buf[target + plen] != b'/' or (not post and target_end - target == plen + 1):
        return None
    while True:
        if size - pos < 2:
            return None
        if buf[pos] == b'\r':
            if buf[pos + 1] != b'\n':
                return None
            pos += 2
            break
        headers += 1
        if headers > C_SIMPLE_MAX_HEADERS:
            return None
        name = pos
        while pos < size and _token_ok[buf[pos]]:
            pos += 1
        name_end = pos
        if name_end == name or pos >= size or buf[pos] != b':':
            return None
        pos += 1
        while pos < size and (buf[pos] == b' ' or buf[pos] == b'\t'):
            pos += 1
        value = pos
        while pos < size and (buf[pos] == b'\t' or 0x20 <= buf[pos] <= 0x7E):
            pos += 1
        value_end = pos
        if size - pos < 2 or buf[pos] != b'\r' or buf[pos + 1] != b'\n':
            return None
        pos += 2
        while value_end > value and (buf[value_end - 1] == b' ' or buf[value_end - 1] == b'\t'):
            value_end -= 1
        kind = _header_kind(buf + name, name_end - name)
        if kind == H_OTHER:
            return None
        if kind == H_CONNECTION:
            if not _lower_equals(buf + value, value_end - value, b"keep-alive"):
                return None
        elif kind == H_CONTENT_TYPE:
            if not post or typed or not _lower_equals(
                buf + value, value_end - value, b"application/ocsp-request"
            ):
                return None
            typed = True
        elif kind == H_CONTENT_LENGTH:
            if not post or content_length >= 0 or value_end == value or value_end - value > 5:
                return None
            content_length = 0
            for i in range(value, value_end):
                if not (0x30 <= buf[i] <= 0x39):
                    return None
                content_length = content_length * 10 + (buf[i] - 0x30)
    if not post:
        if pos != size:
            return None
        return (False, bytes_slice(buf, target + plen + 1, target_end))
    if not typed or content_length <= 0 or size - pos != content_length:
        return None
    return (True, bytes_slice(buf, pos, pos + content_length))
