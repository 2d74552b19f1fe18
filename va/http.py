"""The VA's HTTP/1.1 front: OCSP over POST and GET (RFC 6960 Appendix A,
RFC 9919), CA certificates and CRLs, /healthz and Prometheus /metrics.

One asyncio protocol per connection (``Connection``), httptools (llhttp)
parsing whatever the fast lane (va/fastlane.py: one whole, plain OCSP
request in one read) does not take. Answers leave in request order
(pipelining), also when a fresh signature is still being computed. A
worker's connections share one ``Front``: the worker behind them, the
connection registry with its limits and deadlines, the answer heads and the
downloads. Everything that belongs to one request (its headers, its ETag,
keep-alive, when it began) stays here; the worker and the responder see the
request's DER only.
"""

import asyncio
import base64
import binascii
import logging
from collections import deque
from urllib.parse import unquote_to_bytes

import httptools

from common import prometheus
from common.clock import SYSTEM, Clock
from va import fastlane as lane
from va import headers
from va.downloads import CRLs, Download
from va.metrics import Metrics
from va.responder import MALFORMED, Answer
from va.settings import HTTPSettings
from va.worker import HOT_ANSWER_ENTRIES, HOT_KEY_MAX, Worker

log = logging.getLogger("revoca.va.http")
_OCSP_REQUEST = b"application/ocsp-request"
SWEEP_SECONDS = 1.0  # how often request and idle deadlines are checked
_METRICS_TYPE = prometheus.CONTENT_TYPE.encode()


class Front:
    """One worker's HTTP serving state, shared by its connections."""

    def __init__(
        self,
        worker: Worker,
        settings: HTTPSettings,
        metrics: Metrics,
        downloads: dict[str, Download],
        crls: CRLs,
        *,
        clock: Clock = SYSTEM,
    ):
        self.worker = worker
        self.settings = settings
        self.metrics = metrics
        self.downloads = downloads
        self.crls = crls
        self.clock = clock
        self.heads = headers.OCSPHeads()
        self.prefix = settings.ocsp_path.rstrip("/").encode()
        # The fast lane takes requests up to SIMPLE_MAX bytes and 32 headers;
        # with tighter limits configured, httptools' path (which enforces
        # them) takes every request.
        self.fast_lane = (
            min(settings.max_header_bytes, settings.max_url, settings.max_body) >= lane.SIMPLE_MAX
            and settings.max_headers >= 32
        )
        self.lane_requests = 0  # answered through the fast lane (a counter)
        metrics.fast_lane = lambda: self.lane_requests
        # GET paths already decoded to their request (url-unquoting is slow).
        self.get_paths: dict[bytes, bytes] = {}
        # Open connections; their request and idle deadlines are checked by
        # ``sweep`` once a second (the monotonic clock).
        self.connections: set[Connection] = set()
        self.sweeper: asyncio.TimerHandle | None = None

    def connection(self) -> "Connection":
        """A protocol for one new connection (``loop.create_server``'s factory)."""
        return Connection(self)

    def accept(self, connection: "Connection") -> bool:
        """Admit a new connection unless the cap is reached."""
        if len(self.connections) >= self.settings.max_connections:
            self.metrics.count("connection_refused")
            return False
        if self.sweeper is None:
            self.sweeper = asyncio.get_running_loop().call_later(SWEEP_SECONDS, self.sweep)
        self.connections.add(connection)
        self.metrics.connections += 1
        return True

    def release(self, connection: "Connection") -> None:
        if connection in self.connections:
            self.connections.remove(connection)
            self.metrics.connections -= 1

    def sweep(self) -> None:
        """Close connections past their request or idle deadline."""
        now = self.clock.monotonic()
        settings = self.settings
        for connection in list(self.connections):
            if connection.paused:  # its answers are not being read
                if now - connection.last > settings.idle_timeout:
                    self.metrics.count("idle_timeout")
                    connection.abort()  # a graceful close would wait on them
            elif connection.started is not None:
                if now - connection.started > settings.request_timeout:
                    self.metrics.count("request_timeout")
                    connection.fail(b"408 Request Timeout", b"request timeout\n")
            elif not connection.pending and now - connection.last > settings.idle_timeout:
                self.metrics.count("idle_timeout")
                if (
                    connection.transport is not None
                    and connection.transport.get_write_buffer_size()
                ):
                    connection.abort()  # answers it has not taken: a close would wait on them
                else:
                    connection.close()
        loop = asyncio.get_running_loop()
        self.sweeper = loop.call_later(SWEEP_SECONDS, self.sweep) if self.connections else None

    def decode_get(self, encoded: bytes) -> bytes | None:
        """The request DER of an RFC 6960 A.1 GET path, remembered for
        ordinary requests."""
        request = self.get_paths.get(encoded)
        if request is None:
            request = decode_get(encoded)
            if request is not None and len(encoded) <= 2 * HOT_KEY_MAX:
                if len(self.get_paths) >= HOT_ANSWER_ENTRIES:
                    self.get_paths.clear()
                self.get_paths[encoded] = request
        return request


def _no_version(data: bytes) -> bool:
    """Whether ``data``, the start of a request, has a whole first line that
    names no HTTP version (an HTTP/0.9 request). Leading empty lines are
    httptools' to skip (RFC 9112 2.2)."""
    end = data.find(b"\n", 0, 8192)
    return end > 0 and data[0] not in b"\r\n" and data.rfind(b" HTTP/", 0, end) < 0


class _HeadersTooLarge(Exception):
    """Raised from a parser callback: stops parsing this connection."""


class _Waiting:
    """An answer being signed, in the connection's queue with what its
    response needs from the request."""

    __slots__ = ("etag", "job", "keep_alive", "started")

    def __init__(self, job, etag: bytes | None, keep_alive: bool, started: float):
        self.job = job
        self.etag = etag
        self.keep_alive = keep_alive
        self.started = started


class Connection(asyncio.Protocol):
    def __init__(self, front: Front):
        self.front = front
        self.worker = front.worker
        self.metrics = front.metrics
        self.clock = front.clock
        self._monotonic = front.clock.monotonic
        self._perf = front.clock.perf
        self._wall = front.clock.wall
        self.parser = httptools.HttpRequestParser(self)
        self.transport = None
        self.url = b""
        self.body = b""
        self.headers: dict[bytes, bytes] = {}
        self.too_large = False
        # In request order: _Waiting (still being signed, or signed and not
        # yet written) and (bytes, keep_alive) queued behind one.
        self.pending: deque = deque()
        self.eof = False
        # Deadlines (monotonic): when the request being read began (None
        # between requests), when the last one began (or the connection).
        self.started: float | None = None
        self.last = self._monotonic()
        # Header section size: bytes read since the request began, in whole
        # reads after the first (a line httptools is still collecting counts
        # too), and the complete header lines. A request is in its header
        # section from its first byte until its first body byte or its end.
        self.reading_body = False
        self.header_bytes = 0
        settings = front.settings
        self.max_headers = settings.max_headers
        self.max_header_bytes = settings.max_header_bytes
        self.max_pipeline = settings.max_pipeline
        self.header_room = self.max_header_bytes  # left for complete header lines
        self.head_only = False  # the request being answered is a HEAD
        self.paused = False  # reading paused: output backed up
        self.write_blocked = False  # the transport's buffer is past its high-water mark
        self.flush = self._flush  # the waiter handed to the worker, bound once

    # asyncio callbacks
    def connection_made(self, transport):
        if not self.front.accept(self):
            transport.abort()
            return
        self.transport = transport
        self.last = self._monotonic()

    def eof_received(self):
        # The client half-closed: answer what it already sent, then close.
        self.eof = True
        if not self.pending and self.transport is not None:
            self.transport.close()
        return True

    def connection_lost(self, exc):
        self.front.release(self)
        self.transport = None

    def pause_writing(self):
        # The client is not reading its answers: stop reading its requests.
        self.write_blocked = True
        self._pause()

    def resume_writing(self):
        self.write_blocked = False
        if len(self.pending) < self.max_pipeline:
            self._resume()

    def data_received(self, data: bytes):
        front = self.front
        if self.started is None and front.fast_lane:
            # The fast lane: one whole, plain OCSP request (everything else
            # goes to httptools below).
            simple = lane.simple_request(data, front.prefix)
            if simple is not None:
                self.last = self._monotonic()
                front.lane_requests += 1
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
        elif self.started is None and _no_version(data):
            # httptools takes "GET /" + CRLF as HTTP/0.9 and waits for header
            # lines that never come: answer now (RFC 9112 2.3: HTTP/1.1 names
            # its version in the request line).
            self.metrics.count("bad_request")
            self.fail(b"400 Bad Request", b"the request line has no HTTP version\n")
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError:
            if self.header_room < 0 or len(self.headers) > self.max_headers:
                self.fail(b"431 Request Header Fields Too Large", b"header section too large\n")
            else:  # no other callback raises on purpose; never a traceback to the client
                log.exception("parser callback failed")
                self.fail(b"400 Bad Request", b"bad request\n")
            return
        except (httptools.HttpParserUpgrade, httptools.HttpParserError):
            self.metrics.count("bad_request")
            self.fail(b"400 Bad Request", b"bad request\n")
            return
        # Still within a header section (a header line httptools is still
        # collecting counts too): bounded, whatever the client sends.
        if (
            self.started is not None
            and not self.reading_body
            and self.header_bytes > self.max_header_bytes
        ):
            self.metrics.count("header_too_large")
            self.fail(b"431 Request Header Fields Too Large", b"header section too large\n")

    # httptools callbacks
    def on_message_begin(self):
        self.url = b""
        self.body = b""
        self.headers = {}
        self.too_large = False
        self.started = self.last = self._monotonic()
        self.reading_body = False
        self.header_bytes = 0
        self.header_room = self.max_header_bytes

    def on_url(self, url: bytes):
        self.url += url
        if len(self.url) > self.front.settings.max_url:
            self.too_large = True

    def on_header(self, name: bytes, value: bytes):
        headers_ = self.headers
        headers_[name.lower()] = value
        self.header_room -= len(name) + len(value) + 4  # ": " and CRLF
        if self.header_room < 0 or len(headers_) > self.max_headers:
            self.metrics.count("header_too_large")
            raise _HeadersTooLarge

    def on_body(self, body: bytes):
        self.reading_body = True
        if len(self.body) + len(body) > self.front.settings.max_body:
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
        self.metrics.count("internal_error")
        self._queue(headers.plain(b"500 Internal Server Error", b"internal error\n", False), False)

    # request handling
    def _dispatch(self, keep_alive: bool):
        front = self.front
        method = self.parser.get_method()
        # RFC 9110 9.3.2: a HEAD answer is its GET's head, without the body.
        self.head_only = method == b"HEAD"
        path, _, _query = self.url.partition(b"?")
        prefix = front.prefix
        if path == prefix or path.startswith(prefix + b"/"):
            if method == b"POST":
                if self.too_large:
                    return self._ocsp_error(keep_alive)
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
                    return self._ocsp_error(keep_alive)
                etag = self.headers.get(b"if-none-match")
                return self._ocsp_get(path[len(prefix) + 1 :], keep_alive, etag)
            return self._plain(
                b"405 Method Not Allowed",
                b"use GET or POST\n",
                keep_alive,
                ((b"Allow", b"GET, POST"),),
            )
        if method not in (b"GET", b"HEAD"):
            return self._plain(
                b"405 Method Not Allowed", b"use GET\n", keep_alive, ((b"Allow", b"GET, HEAD"),)
            )
        head_only = self.head_only
        if path == b"/healthz":
            return self._plain(b"200 OK", b"ok\n", keep_alive)
        if path == b"/metrics":
            return self._queue(
                headers.plain(
                    b"200 OK",
                    self.metrics.render().encode(),
                    keep_alive,
                    head_only=head_only,
                    content_type=_METRICS_TYPE,
                ),
                keep_alive,
            )
        if_none_match = self.headers.get(b"if-none-match")
        if path.startswith(b"/ca/"):
            found = front.downloads.get(path[4:].decode("latin-1"))
            if found is None:
                return self._plain(b"404 Not Found", b"not found\n", keep_alive)
            data = headers.download(
                found.body,
                found.content_type,
                found.etag,
                keep_alive,
                if_none_match,
                head_only=head_only,
            )
            return self._queue(data, keep_alive)
        if path.startswith(b"/crl/") and path.endswith(b".crl"):
            crl = front.crls.get(path[5:-4].decode("latin-1"))
            if crl is None:
                return self._plain(b"404 Not Found", b"no such CRL\n", keep_alive)
            der, tag, window = crl
            data = headers.download(
                der,
                b"application/pkix-crl",
                tag,
                keep_alive,
                if_none_match,
                window=window,
                now=self._wall(),
                head_only=head_only,
            )
            return self._queue(data, keep_alive)
        return self._plain(b"404 Not Found", b"not found\n", keep_alive)

    def _ocsp_get(self, encoded: bytes, keep_alive: bool, etag: bytes | None):
        """RFC 6960 A.1 GET: ``encoded`` is the path after the OCSP prefix."""
        request = self.front.decode_get(encoded)
        if request is None:
            return self._ocsp_error(keep_alive)
        return self._ocsp(request, keep_alive, etag)

    def _ocsp(self, request: bytes, keep_alive: bool, etag: bytes | None):
        started = self._perf()
        now = self._wall()
        result = self.worker.ocsp(request, started, now, self.flush)
        if type(result) is Answer:
            self.metrics.served(result.kind, self._perf() - started, now - result.this_update)
            data = self.front.heads.response(result, now, keep_alive, etag)
            return self._queue(data, keep_alive)
        # A fresh signature, ready later: the answer waits in line (pipelining
        # keeps request order) and this connection is flushed when it is
        # signed. Whatever was queued before it is already sent or waits for
        # an earlier job, so there is nothing to flush now.
        pending = self.pending
        pending.append(_Waiting(result, etag, keep_alive, started))
        if len(pending) >= self.max_pipeline:
            self._pause()  # pipelined faster than answers are ready

    def _ocsp_error(self, keep_alive: bool):
        """malformedRequest for what never reached the parser (too large, a
        GET path that is not base64)."""
        self.metrics.count("malformed")
        return self._queue(headers.uncached_ocsp(MALFORMED.body, keep_alive), keep_alive)

    def _plain(
        self,
        status: bytes,
        body: bytes,
        keep_alive: bool,
        extra: tuple[tuple[bytes, bytes], ...] = (),
    ):
        data = headers.plain(status, body, keep_alive, extra, head_only=self.head_only)
        return self._queue(data, keep_alive)

    # ordered output
    def _queue(self, data: bytes, keep_alive: bool) -> None:
        """Send ``data`` after everything queued before it."""
        if not self.pending:
            self._write(data, keep_alive)
            return
        self.pending.append((data, keep_alive))
        self._flush()
        if len(self.pending) >= self.max_pipeline:
            self._pause()  # pipelined faster than answers are ready

    def _flush(self) -> None:
        pending = self.pending
        while pending:
            head = pending[0]
            if type(head) is _Waiting:
                answer = head.job.answer
                if answer is None:
                    return  # still being signed; the worker flushes again
                keep_alive = head.keep_alive
                now = self._wall()
                self.metrics.served(
                    answer.kind, self._perf() - head.started, now - answer.this_update
                )
                data = self.front.heads.response(answer, now, keep_alive, head.etag)
            else:
                data, keep_alive = head
            pending.popleft()
            self._write(data, keep_alive)
        if self.eof and self.transport is not None:
            self.transport.close()
        if self.paused and not self.write_blocked and len(pending) < self.max_pipeline:
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
                self.started = self._monotonic()
            self.transport.resume_reading()

    def fail(self, status: bytes, text: bytes) -> None:
        """Answer ``status`` and close; answers still being signed are dropped."""
        self.started = None
        if self.transport is not None:
            self.pending.clear()
            self.transport.write(headers.plain(status, text, False))
            self.transport.close()
        self.front.release(self)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.front.release(self)

    def abort(self) -> None:
        """Drop the connection now, with what it has not read (a reset)."""
        if self.transport is not None:
            self.transport.abort()
        self.front.release(self)


def decode_get(encoded: bytes) -> bytes | None:
    """RFC 6960 Appendix A.1: the path holds url-encoded base64 of the DER.

    A '+' that a client or proxy turned into a space is put back; slashes
    inside the base64 are part of it (no path normalisation happens here).
    """
    try:
        text = unquote_to_bytes(encoded).replace(b" ", b"+")
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
