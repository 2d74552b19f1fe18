"""HTTP/1.x front of the VA: OCSP over POST and GET (RFC 6960 Appendix A,
RFC 5019), CA certificates, health and Prometheus metrics.

One asyncio protocol per connection, httptools for parsing. Responses leave
in request order (pipelining), even when a fresh signature is computed in a
worker thread meanwhile.
"""

import asyncio
import base64
import binascii
import hashlib
import logging
import time
from collections import deque
from urllib.parse import unquote_to_bytes

import httptools

from va import fastocsp as core
from va.responder import Answer, SigningJob
from va.server import HOT_ANSWER_ENTRIES, HOT_KEY_MAX, Server, http_date

log = logging.getLogger("revoca.va.http")
_OCSP_REQUEST = b"application/ocsp-request"
# An answer that must not be cached (a nonce echoed, an error), kept alive.
_UNCACHED_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\n"
    b"Cache-Control: no-cache\r\nContent-Length: "
)


def _response(
    status: bytes, headers: list[tuple[bytes, bytes]], body: bytes, keep_alive: bool
) -> bytes:
    lines = [b"HTTP/1.1 " + status]
    lines += [name + b": " + value for name, value in headers]
    lines.append(b"Content-Length: " + str(len(body)).encode())
    if not keep_alive:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class _HeadersTooLarge(Exception):
    """Raised from a parser callback: stops parsing this connection."""


class Connection(asyncio.Protocol):
    def __init__(self, server: Server):
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport = None
        self.url = b""
        self.body = b""
        self.headers: dict[bytes, bytes] = {}
        self.too_large = False
        self.pending: deque = deque()
        self.eof = False
        # Deadlines (time.monotonic): when the request being read began (None
        # between requests), when the last one began (or the connection).
        self.started: float | None = None
        self.last = time.monotonic()
        # Header section size: bytes read since the request began, in whole
        # reads after the first (a line httptools is still collecting counts
        # too), and the complete header lines. A request is in its header
        # section from its first byte until its first body byte or its end.
        self.reading_body = False
        self.header_bytes = 0
        self.max_headers = server.settings.max_headers
        self.max_header_bytes = server.settings.max_header_bytes
        self.header_room = self.max_header_bytes  # left for complete header lines
        self.paused = False  # reading paused: output backed up
        self.write_blocked = False  # the transport's buffer is past its high-water mark

    # asyncio callbacks
    def connection_made(self, transport):
        if not self.server.accept(self):
            transport.abort()
            return
        self.transport = transport
        self.last = time.monotonic()

    def eof_received(self):
        # The client half-closed: answer what it already sent, then close.
        self.eof = True
        if not self.pending and self.transport is not None:
            self.transport.close()
        return True

    def connection_lost(self, exc):
        self.server.release(self)
        self.transport = None

    def pause_writing(self):
        # The client is not reading its answers: stop reading its requests.
        self.write_blocked = True
        self._pause()

    def resume_writing(self):
        self.write_blocked = False
        if len(self.pending) < self.server.settings.max_pipeline:
            self._resume()

    def data_received(self, data: bytes):
        if self.started is None and self.server.fast_lane:
            # The fast lane: one whole, plain OCSP request (core.simple_request
            # says which; everything else goes to httptools below).
            simple = core.simple_request(data, self.server.prefix)
            if simple is not None:
                self.last = time.monotonic()
                self.server.lane_requests += 1
                try:
                    if simple[0]:
                        self._ocsp(simple[1], True, None)
                    else:
                        self._ocsp_get(simple[1], True, None)
                except Exception:  # never a traceback to the client
                    self._internal_error()
                return
        if self.started is not None and not self.reading_body:
            self.header_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError:
            if self.header_room < 0 or len(self.headers) > self.max_headers:
                self.fail(b"431 Request Header Fields Too Large", b"header section too large\n")
            else:  # no other callback raises on purpose; never a traceback to the client
                log.exception("parser callback failed")
                self.fail(b"400 Bad Request", b"bad request\n")
            return
        except httptools.HttpParserUpgrade:
            self.fail(b"400 Bad Request", b"bad request\n")
            return
        except httptools.HttpParserError:
            self.fail(b"400 Bad Request", b"bad request\n")
            return
        # Still within a header section (a header line httptools is still
        # collecting counts too): bounded, whatever the client sends.
        if (
            self.started is not None
            and not self.reading_body
            and self.header_bytes > self.max_header_bytes
        ):
            self.server.metrics.count("header_too_large")
            self.fail(b"431 Request Header Fields Too Large", b"header section too large\n")

    # httptools callbacks
    def on_message_begin(self):
        self.url = b""
        self.body = b""
        self.headers = {}
        self.too_large = False
        self.started = self.last = time.monotonic()
        self.reading_body = False
        self.header_bytes = 0
        self.header_room = self.max_header_bytes

    def on_url(self, url: bytes):
        self.url += url
        if len(self.url) > self.server.settings.max_url:
            self.too_large = True

    def on_header(self, name: bytes, value: bytes):
        headers = self.headers
        headers[name.lower()] = value
        self.header_room -= len(name) + len(value) + 4  # ": " and CRLF
        if self.header_room < 0 or len(headers) > self.max_headers:
            self.server.metrics.count("header_too_large")
            raise _HeadersTooLarge

    def on_body(self, body: bytes):
        self.reading_body = True
        if len(self.body) + len(body) > self.server.settings.max_body:
            self.too_large = True
        else:  # usually one chunk: kept as is, no copy
            self.body = self.body + body if self.body else body

    def on_message_complete(self):
        self.started = None
        keep_alive = self.parser.should_keep_alive() and not self.too_large
        try:
            self._dispatch(keep_alive)
        except Exception:  # never a traceback to the client
            self._internal_error()

    def _internal_error(self) -> None:
        log.exception("internal error while answering")
        self.server.metrics.count("internal_error")
        self._queue(
            _response(
                b"500 Internal Server Error",
                [(b"Content-Type", b"text/plain")],
                b"internal error\n",
                False,
            ),
            False,
        )

    # request handling
    def _dispatch(self, keep_alive: bool):
        server = self.server
        method = self.parser.get_method()
        path, _, _query = self.url.partition(b"?")
        prefix = server.prefix
        if path == prefix or path.startswith(prefix + b"/"):
            if method == b"POST":
                if self.too_large:
                    return self._ocsp_error(core.MALFORMED_REQUEST, "malformed", keep_alive)
                ctype = self.headers.get(b"content-type", b"")
                if ctype != _OCSP_REQUEST and (
                    ctype.split(b";")[0].strip().lower() != _OCSP_REQUEST
                ):
                    return self._plain(
                        b"415 Unsupported Media Type",
                        b"POST needs Content-Type: application/ocsp-request\n",
                        keep_alive,
                    )
                return self._ocsp(self.body, keep_alive, self.headers.get(b"if-none-match"))
            if method == b"GET":
                if self.too_large:
                    return self._ocsp_error(core.MALFORMED_REQUEST, "malformed", keep_alive)
                etag = self.headers.get(b"if-none-match")
                return self._ocsp_get(path[len(prefix) + 1 :], keep_alive, etag)
            return self._plain(
                b"405 Method Not Allowed",
                b"use GET or POST\n",
                keep_alive,
                [(b"Allow", b"GET, POST")],
            )
        if method not in (b"GET", b"HEAD"):
            return self._plain(
                b"405 Method Not Allowed", b"use GET\n", keep_alive, [(b"Allow", b"GET, HEAD")]
            )
        if path == b"/healthz":
            return self._plain(b"200 OK", b"ok\n", keep_alive)
        if path == b"/metrics":
            return self._plain(
                b"200 OK",
                server.metrics.render().encode(),
                keep_alive,
                [(b"Content-Type", b"text/plain; version=0.0.4")],
            )
        if path.startswith(b"/ca/"):
            return self._ca_certificate(path[4:].decode("latin-1"), keep_alive)
        if path.startswith(b"/crl/") and path.endswith(b".crl"):
            return self._crl(path[5:-4].decode("latin-1"), keep_alive)
        return self._plain(b"404 Not Found", b"not found\n", keep_alive)

    def _ocsp_get(self, encoded: bytes, keep_alive: bool, etag: bytes | None):
        """RFC 6960 A.1 GET: ``encoded`` is the path after the OCSP prefix."""
        server = self.server
        request = server.get_paths.get(encoded)
        if request is None:
            request = _decode_get(encoded)
            if request is not None and len(encoded) <= 2 * HOT_KEY_MAX:
                if len(server.get_paths) >= HOT_ANSWER_ENTRIES:
                    server.get_paths.clear()
                server.get_paths[encoded] = request
        if request is None:
            return self._ocsp_error(core.MALFORMED_REQUEST, "malformed", keep_alive)
        return self._ocsp(request, keep_alive, etag)

    def _ocsp(self, request: bytes, keep_alive: bool, etag: bytes | None):
        result, started = self.server.ocsp(request)
        if isinstance(result, Answer):
            return self._queue(self._ocsp_bytes(result, started, keep_alive, etag), keep_alive)
        # A fresh signature, ready later: the answer waits in line (pipelining
        # keeps request order) and this connection is flushed when it is
        # signed. Whatever was queued before it is already sent or waits for
        # an earlier job, so there is nothing to flush now.
        result.started, result.etag, result.waiter = started, etag, self._flush
        result.keep_alive = keep_alive
        pending = self.pending
        pending.append(result)
        if len(pending) >= self.server.settings.max_pipeline:
            self._pause()  # pipelined faster than answers are ready

    def _ocsp_bytes(
        self, answer: Answer, started: float, keep_alive: bool, etag: bytes | None
    ) -> bytes:
        server = self.server
        now = time.time()
        kind = answer.kind
        server.metrics.served(kind, time.perf_counter() - started, now - answer.this_update)
        if answer.cacheable and kind != "error":
            head = server.cached_head(answer)
            if etag != head[0]:
                max_age = max(0, int(answer.next_update - now))
                if keep_alive and head[3] == max_age:  # built within this second
                    return head[4]
                data = b"".join(
                    (
                        head[1],
                        b"%d" % max_age,
                        head[2],
                        b"\r\n" if keep_alive else b"Connection: close\r\n\r\n",
                        answer.body,
                    )
                )
                if keep_alive:
                    head[3], head[4] = max_age, data
                return data
        elif keep_alive:  # nonce echoed, or an error: one fixed head
            return b"%s%d\r\n\r\n%s" % (_UNCACHED_HEAD, len(answer.body), answer.body)
        headers = server.ocsp_headers(answer, now)
        if (
            etag is not None
            and answer.cacheable
            and any(value == b"ETag" and etag == tag for value, tag in headers)
        ):
            return _response(
                b"304 Not Modified",
                [h for h in headers if h[0] != b"Content-Type"],
                b"",
                keep_alive,
            )
        return _response(b"200 OK", headers, answer.body, keep_alive)

    def _ocsp_error(self, body: bytes, kind: str, keep_alive: bool):
        self.server.metrics.count(kind)
        return self._queue(
            _response(
                b"200 OK",
                [(b"Content-Type", b"application/ocsp-response"), (b"Cache-Control", b"no-cache")],
                body,
                keep_alive,
            ),
            keep_alive,
        )

    def _ca_certificate(self, name: str, keep_alive: bool):
        found = self.server.ca_downloads.get(name)
        if found is None:
            return self._plain(b"404 Not Found", b"not found\n", keep_alive)
        content_type, body = found
        return self._cacheable(body, content_type, None, keep_alive)

    def _crl(self, name: str, keep_alive: bool):
        crl = self.server.responder.store.get_crl(name)
        if crl is None:
            return self._plain(b"404 Not Found", b"no such CRL\n", keep_alive)
        return self._cacheable(crl.der, b"application/pkix-crl", crl, keep_alive)

    def _cacheable(self, body: bytes, content_type: bytes, window, keep_alive: bool):
        """A static download with ETag (and, for CRLs, Last-Modified/Expires)."""
        etag = b'"' + hashlib.sha1(body).hexdigest().encode() + b'"'
        headers = [(b"Content-Type", content_type), (b"ETag", etag)]
        if window is not None:
            max_age = max(0, int(window.next_update - time.time()))
            headers += [
                (b"Last-Modified", http_date(window.this_update)),
                (b"Expires", http_date(window.next_update)),
                (b"Cache-Control", f"max-age={max_age}, public, no-transform".encode()),
            ]
        if self.headers.get(b"if-none-match") == etag:
            kept = [h for h in headers if h[0] != b"Content-Type"]
            return self._queue(_response(b"304 Not Modified", kept, b"", keep_alive), keep_alive)
        if self.parser.get_method() == b"HEAD":
            body = b""
        return self._queue(_response(b"200 OK", headers, body, keep_alive), keep_alive)

    def _plain(self, status: bytes, body: bytes, keep_alive: bool, extra=()):
        headers = list(extra)
        if not any(name == b"Content-Type" for name, _ in headers):
            headers.append((b"Content-Type", b"text/plain"))
        return self._queue(_response(status, headers, body, keep_alive), keep_alive)

    # ordered output
    def _queue(self, data: bytes, keep_alive: bool) -> None:
        """Send ``data`` after everything queued before it (``pending``: the
        fresh answers still being signed, each a SigningJob, and what was
        queued behind them as (bytes, keep_alive))."""
        if not self.pending:
            self._write(data, keep_alive)
            return
        self.pending.append((data, keep_alive))
        self._flush()
        if len(self.pending) >= self.server.settings.max_pipeline:
            self._pause()  # pipelined faster than answers are ready

    def _flush(self) -> None:
        pending = self.pending
        while pending:
            head = pending[0]
            if type(head) is SigningJob:
                if head.answer is None:
                    return  # still being signed; its waiter flushes again
                keep_alive = head.keep_alive
                data = self._ocsp_bytes(head.answer, head.started, keep_alive, head.etag)
            else:
                data, keep_alive = head
            pending.popleft()
            self._write(data, keep_alive)
        if self.eof and self.transport is not None:
            self.transport.close()
        pipeline = self.server.settings.max_pipeline
        if self.paused and not self.write_blocked and len(pending) < pipeline:
            self._resume()

    def _write(self, data: bytes, keep_alive: bool) -> None:
        if self.transport is None:
            return
        self.transport.write(data)
        if not keep_alive:
            self.transport.close()
            self.pending.clear()

    def _pause(self) -> None:
        if not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def _resume(self) -> None:
        if self.paused and self.transport is not None:
            self.paused = False
            if self.started is not None:  # time paused by us is not the client's
                self.started = time.monotonic()
            self.transport.resume_reading()

    def fail(self, status: bytes, text: bytes) -> None:
        """Answer ``status`` and close; answers still being signed are dropped."""
        self.started = None
        if self.transport is not None:
            self.pending.clear()
            self.transport.write(_response(status, [(b"Content-Type", b"text/plain")], text, False))
            self.transport.close()
        self.server.release(self)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.server.release(self)


def _decode_get(encoded: bytes) -> bytes | None:
    """RFC 6960 Appendix A.1: the path holds url-encoded base64 of the DER.

    A '+' that a client or proxy turned into a space is put back; slashes
    inside the base64 are part of it (no path normalisation happens here).
    """
    try:
        text = unquote_to_bytes(encoded).replace(b" ", b"+")
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


async def serve(server: Server, host: str, port: int, *, sock=None, ready=None):
    loop = asyncio.get_running_loop()
    if sock is not None:
        listener = await loop.create_server(lambda: Connection(server), sock=sock)
    else:
        listener = await loop.create_server(
            lambda: Connection(server), host, port, reuse_port=True, backlog=1024
        )
    if ready is not None:
        ready(listener)
    async with listener:
        await listener.serve_forever()
