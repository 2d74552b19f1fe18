"""The HTTP fast lane's recognizer of the simplest complete OCSP requests,
pure Python: the twin of ``va._fastlane`` (va/_fastlane.pyx). Both must
return the same answer for every input."""

__all__ = ("SIMPLE_MAX", "simple_request")

SIMPLE_MAX = 8192
_SIMPLE_MAX_HEADERS = 32
# Request-target bytes: RFC 3986 unreserved, pct-encoded, sub-delims, ":@/".
_TARGET_CHARS = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%!$&'()*+,;=:@/"
)
# RFC 9110 tchar.
_TOKEN_CHARS = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~"
)
_VALUE_CHARS = frozenset(range(0x20, 0x7F)) | {0x09}
_IGNORED_HEADERS = frozenset(
    {
        b"host",
        b"user-agent",
        b"accept",
        b"accept-encoding",
        b"accept-language",
        b"cache-control",
        b"pragma",
    }
)


_LOWER = bytes(c + 0x20 if 0x41 <= c <= 0x5A else c for c in range(256))


def _ascii_lower(value: bytes) -> bytes:
    return value.translate(_LOWER)


def _run(data: bytes, pos: int, allowed) -> int:
    while pos < len(data) and data[pos] in allowed:
        pos += 1
    return pos


def simple_request(data: bytes, prefix: bytes):
    """``(is_post, value)`` for the simplest complete OCSP request, else None.

    The VA's fast lane: one whole HTTP/1.1 request in ``data``, nothing
    before or after it, ``GET {prefix}/{encoded}`` (value: the encoded
    part) or ``POST {prefix}[/...]`` with ``Content-Type:
    application/ocsp-request`` and a ``Content-Length`` of exactly the body
    that follows (value: the body). Request-target bytes are RFC 3986 path
    characters (no query), header names tokens, values visible ASCII, SP or
    HTAB, lines end in CRLF, at most 32 headers, ``SIMPLE_MAX`` bytes in all.
    Only these headers may appear: Host, User-Agent, Accept,
    Accept-Encoding, Accept-Language, Cache-Control, Pragma (ignored),
    Connection: keep-alive, and for POST the two above, once each. Such a
    request is answered on a kept-alive connection without conditions.
    Anything else is None: the full HTTP parser (httptools) takes it, so
    the lane only ever says yes to what that parser reads the same way.
    """
    if type(data) is not bytes:
        raise TypeError(f"data must be bytes, not {type(data).__name__}")
    if type(prefix) is not bytes:
        raise TypeError(f"prefix must be bytes, not {type(prefix).__name__}")
    size = len(data)
    if size > SIMPLE_MAX:
        return None
    if data.startswith(b"GET "):
        post, pos = False, 4
    elif data.startswith(b"POST "):
        post, pos = True, 5
    else:
        return None
    target = pos
    pos = _run(data, pos, _TARGET_CHARS)
    target_end = pos
    if target_end == target or data[pos : pos + 11] != b" HTTP/1.1\r\n":
        return None
    pos += 11
    path = data[target:target_end]
    plen = len(prefix)
    if not path.startswith(prefix):
        return None
    if len(path) == plen:
        if not post:
            return None
    elif path[plen] != 0x2F or (not post and len(path) == plen + 1):
        return None
    headers, content_length, typed = 0, -1, False
    while True:
        if size - pos < 2:
            return None
        if data[pos] == 0x0D:
            if data[pos + 1] != 0x0A:
                return None
            pos += 2
            break
        headers += 1
        if headers > _SIMPLE_MAX_HEADERS:
            return None
        name = pos
        pos = _run(data, pos, _TOKEN_CHARS)
        name_end = pos
        if name_end == name or data[pos : pos + 1] != b":":
            return None
        pos = _run(data, pos + 1, b" \t")
        value = pos
        pos = _run(data, pos, _VALUE_CHARS)
        if data[pos : pos + 2] != b"\r\n":
            return None
        field = data[value:pos].rstrip(b" \t")
        pos += 2
        key = _ascii_lower(data[name:name_end])
        if key == b"connection":
            if _ascii_lower(field) != b"keep-alive":
                return None
        elif key == b"content-type":
            if not post or typed or _ascii_lower(field) != b"application/ocsp-request":
                return None
            typed = True
        elif key == b"content-length":
            if not post or content_length >= 0 or not 1 <= len(field) <= 5:
                return None
            if any(not 0x30 <= c <= 0x39 for c in field):
                return None
            content_length = int(field)
        elif key not in _IGNORED_HEADERS:
            return None
    if not post:
        if pos != size:
            return None
        return (False, path[plen + 1 :])
    if not typed or content_length <= 0 or size - pos != content_length:
        return None
    return (True, data[pos:])
