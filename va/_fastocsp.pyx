# cython: language_level=3
"""Native OCSP core: a bounds-checked DER reader (X.690 DER subset).

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
