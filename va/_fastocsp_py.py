"""Pure-Python twin of ``va._fastocsp``: same names, same results, same errors.

Used when the native module is unavailable or ``REVOCA_NO_EXTENSIONS=1``, and
by the tests and fuzzers as the reference the native core must agree with.

DER rules enforced (X.690 section 10 and 8.1): single-octet tags only (OCSP
needs no high tag numbers), definite lengths only, lengths in the minimal
number of octets, no end-of-contents octets, nesting depth capped.
"""

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
