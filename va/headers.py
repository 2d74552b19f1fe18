"""The bytes of every HTTP response the VA's front sends.

OCSP answers carry the caching headers of RFC 9919 (as RFC 5019 6.2 had
them): Last-Modified (thisUpdate), Expires (nextUpdate), an ETag, and
Cache-Control ``max-age`` (the seconds to nextUpdate), ``public,
no-transform, must-revalidate``; a request whose If-None-Match holds that
ETag gets 304 Not Modified. An answer that must not be cached (a nonce
echoed, an unsigned error) says ``no-cache``. Downloads (CA certificates,
CRLs) carry an ETag, and CRLs their validity window too. A HEAD request gets
the same head as its GET, without the body (RFC 9110 9.3.2).

``OCSPHeads`` keeps, per worker, each cacheable answer's head in pieces, so
a pre-signed answer costs one dict lookup and one join, and the same answer
within the same second and connection state costs the lookup alone.
"""

import email.utils
import functools
import hashlib

OCSP_RESPONSE = b"application/ocsp-response"
HEAD_CACHE_ENTRIES = 16384  # answers whose head is kept; cleared when full
_CACHE_CONTROL = b", public, no-transform, must-revalidate\r\n"
_OK_OCSP = b"HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\n"
# An answer that must not be cached (a nonce echoed, an error).
_UNCACHED = _OK_OCSP + b"Cache-Control: no-cache\r\nContent-Length: "
_END = b"\r\n"
_CLOSE_END = b"Connection: close\r\n\r\n"


@functools.lru_cache(maxsize=4096)
def http_date(epoch: float) -> bytes:
    """An IMF-fixdate (RFC 9110 5.6.7)."""
    return email.utils.formatdate(epoch, usegmt=True).encode()


def etag(body: bytes) -> bytes:
    """A strong entity tag for ``body`` (RFC 9110 8.8.3): its SHA-1, quoted."""
    return b'"' + hashlib.sha1(body).hexdigest().encode() + b'"'


def response(
    status: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    keep_alive: bool,
    *,
    head_only: bool = False,
) -> bytes:
    """A complete response. Content-Length is the body's, also for HEAD
    (``head_only``), which sends no body; a 304 carries none at all."""
    lines = [b"HTTP/1.1 " + status]
    lines += [name + b": " + value for name, value in headers]
    if not status.startswith(b"304"):
        lines.append(b"Content-Length: %d" % len(body))
    if not keep_alive:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + (b"" if head_only else body)


def plain(
    status: bytes,
    text: bytes,
    keep_alive: bool,
    extra: tuple[tuple[bytes, bytes], ...] = (),
    *,
    head_only: bool = False,
    content_type: bytes = b"text/plain",
) -> bytes:
    """A short text response (errors, /healthz, /metrics)."""
    headers = [(b"Content-Type", content_type), *extra]
    return response(status, headers, text, keep_alive, head_only=head_only)


def uncached_ocsp(body: bytes, keep_alive: bool) -> bytes:
    """A 200 OCSP response that must not be cached."""
    return b"%s%d\r\n%s%s" % (_UNCACHED, len(body), _END if keep_alive else _CLOSE_END, body)


class _Head:
    """A cacheable answer's 200 head in pieces: the bytes before and after
    max-age's value, and the last keep-alive response built (with its
    max-age: one per answer and second)."""

    __slots__ = ("after", "before", "etag", "last", "last_max_age", "validators")

    def __init__(self, body: bytes, this_update: int, next_update: int):
        self.etag = etag(body)
        self.validators = (
            b"Last-Modified: " + http_date(this_update) + b"\r\n"
            b"Expires: " + http_date(next_update) + b"\r\n"
            b"ETag: " + self.etag + b"\r\n"
        )
        self.before = _OK_OCSP + self.validators + b"Cache-Control: max-age="
        self.after = _CACHE_CONTROL + b"Content-Length: %d\r\n" % len(body)
        self.last_max_age = -1
        self.last = b""


class OCSPHeads:
    """The response bytes of OCSP answers, heads kept per answer body."""

    def __init__(self, entries: int = HEAD_CACHE_ENTRIES):
        self.entries = entries
        self.heads: dict[bytes, _Head] = {}

    def response(self, answer, now: float, keep_alive: bool, if_none_match: bytes | None) -> bytes:
        """The bytes that answer with ``answer`` (a va.responder.Answer) at
        ``now``; ``if_none_match`` is the request's If-None-Match, if any."""
        if not answer.cacheable:
            return uncached_ocsp(answer.body, keep_alive)
        body = answer.body
        head = self.heads.get(body)
        if head is None:
            if len(self.heads) >= self.entries:
                self.heads.clear()
            head = self.heads[body] = _Head(body, answer.this_update, answer.next_update)
        max_age = int(answer.next_update - now)
        if max_age < 0:
            max_age = 0
        if if_none_match is not None and if_none_match == head.etag:
            return b"HTTP/1.1 304 Not Modified\r\n%sCache-Control: max-age=%d%s%s" % (
                head.validators,
                max_age,
                _CACHE_CONTROL,
                _END if keep_alive else _CLOSE_END,
            )
        if keep_alive:
            if head.last_max_age == max_age:  # built within this second
                return head.last
            data = b"".join((head.before, b"%d" % max_age, head.after, _END, body))
            head.last_max_age, head.last = max_age, data
            return data
        return b"".join((head.before, b"%d" % max_age, head.after, _CLOSE_END, body))


def download(
    body: bytes,
    content_type: bytes,
    tag: bytes,
    keep_alive: bool,
    if_none_match: bytes | None,
    *,
    window: tuple[int, int] | None = None,
    now: float = 0.0,
    head_only: bool = False,
) -> bytes:
    """A static download with its ETag ``tag``; ``window`` (thisUpdate,
    nextUpdate) adds Last-Modified, Expires and max-age (CRLs)."""
    headers = [(b"Content-Type", content_type), (b"ETag", tag)]
    if window is not None:
        max_age = max(0, int(window[1] - now))
        headers += [
            (b"Last-Modified", http_date(window[0])),
            (b"Expires", http_date(window[1])),
            (b"Cache-Control", b"max-age=%d, public, no-transform" % max_age),
        ]
    if if_none_match is not None and if_none_match == tag:
        kept = [h for h in headers if h[0] != b"Content-Type"]
        return response(b"304 Not Modified", kept, b"", keep_alive)
    return response(b"200 OK", headers, body, keep_alive, head_only=head_only)
