"""Deadlines and limits for the aiohttp listeners: the VA's admin listener
and the RA's REST API.

aiohttp closes idle keep-alive connections, but has no deadline for a
request's header section or body: a client that sends a header line every
few seconds, or declares a large body and sends one byte, holds a
connection (and, past authentication, a handler) for as long as it likes.
The OCSP port has its own HTTP front with these deadlines (va/http.py);
this module gives the aiohttp listeners the same ones:

- ``request_timeout``: from a request's first byte until its headers and
  its whole body have arrived, plus the time its declared body takes at
  ``min_body_rate`` (a large body on a slow link is not a slow client).
  Headers late: 408 and close (counted ``request_timeout``); body late: 408
  and close, the handler never runs.
- ``idle_timeout``: a connection with no request in progress closes after
  this long (counted ``idle_timeout``); one that does not take what it was
  sent is reset at the next sweep, as a graceful close would wait for it.
- ``max_connections``: more are closed at once (counted ``refused``).
- ``max_body``: a declared Content-Length over it is answered 413 before a
  byte of the body is read.

Each connection's protocol (aiohttp's ``RequestHandler``) is wrapped in a
:class:`_Guarded` protocol that notes the first byte of each request; the
outermost :meth:`Guard.middleware` marks when its headers have arrived and
refuses a declared body over the limit; :meth:`Guard.body`, placed after
authentication, reads the body under the deadline (an unauthenticated
client never has its body buffered); a sweeper twice a second closes what
is late.
"""

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

log = logging.getLogger("revoca.http")

SWEEP_SECONDS = 0.5
_BEGAN = web.RequestKey("guard_began", float)  # a request's first byte (monotonic)
TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 16\r\nConnection: close\r\n\r\nrequest timeout\n"
)

# (status, code, message) -> the listener's own error response
ErrorResponse = Callable[[int, str, str], web.StreamResponse]


@dataclass(frozen=True)
class Limits:
    request_timeout: float = 10.0
    idle_timeout: float = 60.0
    max_connections: int = 1024
    max_body: int = 1 << 20
    min_body_rate: int = 64 * 1024  # bytes/s a declared body may take on top


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol for one connection, with the times the guard needs."""

    def __init__(self, guard: "Guard", inner: asyncio.Protocol):
        self.guard = guard
        self.inner = inner
        self.transport = None
        self.started: float | None = None  # first byte of a request whose headers are awaited
        self.active = 0  # requests past their headers, not yet answered
        self.last = guard.monotonic()
        self.closing = False  # closed by the sweeper; still here: it is reset

    def connection_made(self, transport):
        if not self.guard.admit(self):
            transport.abort()
            return
        self.transport = transport
        self.inner.connection_made(transport)

    def data_received(self, data: bytes):
        now = self.guard.monotonic()
        self.last = now
        if self.started is None and not self.active:
            self.started = now
        self.inner.data_received(data)

    def eof_received(self):
        return self.inner.eof_received()

    def connection_lost(self, exc):
        self.guard.release(self)
        if self.transport is not None:
            self.transport = None
            self.inner.connection_lost(exc)

    def pause_writing(self):
        self.inner.pause_writing()

    def resume_writing(self):
        self.inner.resume_writing()


class Guard:
    """The deadlines and limits of one listener; ``error`` makes its error
    responses (so each keeps its own JSON error format)."""

    def __init__(
        self,
        limits: Limits,
        error: ErrorResponse,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.limits = limits
        self.error = error
        self.monotonic = monotonic
        self.connections: set[_Guarded] = set()
        self.counts: Counter[str] = Counter()
        self._sweeper: asyncio.TimerHandle | None = None

    # -- connections -----------------------------------------------------------

    def wrap(self, inner: asyncio.Protocol) -> _Guarded:
        return _Guarded(self, inner)

    def admit(self, connection: _Guarded) -> bool:
        if len(self.connections) >= self.limits.max_connections:
            self.counts["refused"] += 1
            return False
        self.connections.add(connection)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(SWEEP_SECONDS, self.sweep)
        return True

    def release(self, connection: _Guarded) -> None:
        self.connections.discard(connection)

    def sweep(self) -> None:
        """Close connections past their header or idle deadline (a request
        past its headers is the middleware's)."""
        now = self.monotonic()
        limits = self.limits
        for connection in list(self.connections):
            transport = connection.transport
            if transport is None:
                continue
            if connection.closing:
                # A graceful close waits for the client to take what is queued:
                # one that does not is reset (released in connection_lost).
                transport.abort()
            elif connection.active:
                continue
            elif connection.started is not None:
                if now - connection.started > limits.request_timeout:
                    self.counts["request_timeout"] += 1
                    connection.closing = True
                    transport.write(TIMEOUT_RESPONSE)
                    transport.close()
            elif now - connection.last > limits.idle_timeout:
                self.counts["idle_timeout"] += 1
                connection.closing = True
                transport.close()
        loop = asyncio.get_running_loop()
        self._sweeper = loop.call_later(SWEEP_SECONDS, self.sweep) if self.connections else None

    # -- requests --------------------------------------------------------------

    def _connection(self, request: web.Request) -> _Guarded | None:
        transport = request.transport
        protocol = transport.get_protocol() if transport is not None else None
        return protocol if isinstance(protocol, _Guarded) else None

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        """Outermost: the headers are here (their deadline is met), a declared
        body over the limit is refused before a byte of it is read."""
        self.counts["requests"] += 1
        connection = self._connection(request)
        began = now = self.monotonic()
        if connection is not None:
            began = connection.started if connection.started is not None else now
            connection.started = None  # the headers are here: the body is timed in body()
            connection.active += 1
        request[_BEGAN] = began
        try:
            length = request.content_length
            if length is not None and length > self.limits.max_body:
                too_large = f"request body over {self.limits.max_body} bytes"
                return self._close(request, self.error(413, "too_large", too_large))
            return await handler(request)
        finally:
            if connection is not None:
                connection.active -= 1
                connection.last = self.monotonic()

    @web.middleware
    async def body(self, request: web.Request, handler) -> web.StreamResponse:
        """After authentication: the whole body, read within the request's
        deadline (from its first byte, plus its declared size at
        ``min_body_rate``), kept by aiohttp for the handler."""
        limits = self.limits
        if request.can_read_body:
            elapsed = self.monotonic() - request.get(_BEGAN, self.monotonic())
            allowed = limits.request_timeout + (request.content_length or 0) / limits.min_body_rate
            try:
                async with asyncio.timeout(max(0.0, allowed - elapsed)):
                    await request.read()
            except TimeoutError:
                self.counts["request_timeout"] += 1
                message = f"the request body did not arrive within {allowed:g} s"
                return self._close(request, self.error(408, "request_timeout", message))
            except web.HTTPRequestEntityTooLarge:  # a chunked body past the limit
                too_large = f"request body over {limits.max_body} bytes"
                return self._close(request, self.error(413, "too_large", too_large))
        return await handler(request)

    @staticmethod
    def _close(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        """The body was not read: this connection cannot carry another request."""
        response.force_close()
        return response


class GuardedSite(web.SockSite):
    """An aiohttp site on a socket bound by the caller (common/listen.py),
    whose connections are held to ``guard``'s deadlines and limits."""

    __slots__ = ("guard",)

    def __init__(
        self, runner: web.BaseRunner, sock, guard: Guard, *, ssl_context=None, backlog: int = 128
    ):
        # create_server() calls listen() again, with this backlog.
        super().__init__(runner, sock, ssl_context=ssl_context, backlog=backlog)
        self.guard = guard

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None
        guard = self.guard
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: guard.wrap(server()),
            sock=self._sock,
            ssl=self._ssl_context,
            backlog=self._backlog,
            # The guard sees a TLS connection only once its handshake is
            # done: one that never sends a ClientHello is held to the same
            # deadline as a request's headers, not to asyncio's 60 s.
            ssl_handshake_timeout=guard.limits.request_timeout if self._ssl_context else None,
        )


async def start_guarded(
    app: web.Application, sock, guard: Guard, ssl_context=None, backlog: int = 128
) -> web.AppRunner:
    """Serve ``app`` on ``sock``; ``runner.cleanup()`` stops it."""
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        # aiohttp's own idle close, a little after the guard's (which counts it).
        keepalive_timeout=guard.limits.idle_timeout + 2 * SWEEP_SECONDS,
        # A request refused before its body was read (413, 408) closes at once,
        # instead of reading and dropping the rest for up to 10 s.
        lingering_time=0,
    )
    await runner.setup()
    site = GuardedSite(runner, sock, guard, ssl_context=ssl_context, backlog=backlog)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
