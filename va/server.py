"""One VA worker's serving state, shared by its connections: the OCSP
answer path with its hot-answer and header caches (RFC 5019 6.2 headers),
fresh-signing admission, the connection registry with its deadlines, and
the CA certificate downloads. The HTTP protocol itself is ``va/http.py``."""

import asyncio
import email.utils
import functools
import hashlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from va import fastocsp as core
from va.metrics import Metrics
from va.responder import Answer, Responder, SigningJob, finish_all

if TYPE_CHECKING:
    from va.http import Connection

log = logging.getLogger("revoca.va.server")


@dataclass(frozen=True)
class HTTPSettings:
    ocsp_path: str = "/ocsp"
    max_body: int = 10 * 1024
    max_url: int = 8 * 1024
    fresh_signing_cap: int = 64
    # Hostile clients: a request's headers and body must arrive within
    # request_timeout seconds of its first byte (slow clients get 408); a
    # keep-alive connection with nothing in progress, or one that stopped
    # reading its answers, closes after idle_timeout; past max_connections
    # per worker new connections are closed at once; header sections over
    # max_header_bytes or max_headers get 431; past max_pipeline queued
    # answers a connection is not read.
    request_timeout: float = 10.0
    idle_timeout: float = 60.0
    max_connections: int = 10_000
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    max_pipeline: int = 64
    # 0: fresh signatures are computed in the event loop's thread (one worker
    # per core: a thread only adds a hand-off per batch). N: a pool of N
    # threads, each signing a loop iteration's batch with the GIL released
    # (native signer), for cores beyond the workers.
    signing_threads: int = 0


@functools.lru_cache(maxsize=4096)
def http_date(epoch: float) -> bytes:
    return email.utils.formatdate(epoch, usegmt=True).encode()


# Pre-signed answers: the bytes before and after max-age of their 200
# response, built once per answer and worker (RFC 5019 6.2 headers), so a hit
# costs one dict lookup and one join. Bounded; cleared when full.
HEAD_CACHE_ENTRIES = 16384
HOT_ANSWER_ENTRIES = 16384
# Only ordinary requests are kept (one CertID: about 80-120 bytes), so padded
# or signed ones of up to max_body cannot fill a worker's memory.
HOT_KEY_MAX = 512
GENERATION_CHECK_SECONDS = 0.002
SWEEP_SECONDS = 1.0  # how often request and idle deadlines are checked
_CACHE_SUFFIX = b", public, no-transform, must-revalidate\r\nContent-Length: "


class Server:
    """Shared by every connection of one worker process."""

    def __init__(
        self,
        responder: Responder,
        settings: HTTPSettings,
        metrics: Metrics,
        ca_certificates: dict[str, list[bytes]],
    ):
        self.responder = responder
        self.settings = settings
        self.metrics = metrics
        # name -> [certificate DER, then its parents]; every download precomputed.
        self.ca_downloads = ca_downloads(ca_certificates)
        self.executor = (
            ThreadPoolExecutor(max_workers=settings.signing_threads, thread_name_prefix="ocsp-sign")
            if settings.signing_threads > 0
            else None
        )
        self.in_flight = 0
        self.batch: list[SigningJob] = []  # fresh signatures for the end of this iteration
        self.prefix = settings.ocsp_path.rstrip("/").encode()
        # The fast lane (core.simple_request) takes requests up to SIMPLE_MAX
        # bytes and 32 headers; with tighter limits configured, httptools'
        # path (which enforces them) takes every request.
        self.fast_lane = (
            min(settings.max_header_bytes, settings.max_url, settings.max_body) >= core.SIMPLE_MAX
            and settings.max_headers >= 32
        )
        self.heads: dict[bytes, list] = {}
        # Pre-signed answers by request DER; emptied when the LMDB environment
        # has committed a new transaction since (checked at most every
        # GENERATION_CHECK_SECONDS while serving), bounded, always within
        # their validity. In-process writers call ``invalidate``.
        self.hot: dict[bytes, Answer] = {}
        # Statuses read for fresh answers, emptied with ``hot``.
        responder.status_cache = {}
        self.stopping = threading.Event()  # set when the worker stops
        # GET paths already decoded to their request (url-unquoting is slow).
        self.get_paths: dict[bytes, bytes] = {}
        self.generation = responder.generation()
        self.checked = time.perf_counter()
        metrics.fresh_signing = lambda: self.in_flight
        self.lane_requests = 0  # answered through the fast lane (a counter)
        metrics.fast_lane = lambda: self.lane_requests
        # Open connections; their request and idle deadlines are checked by
        # ``sweep`` once a second (time.monotonic).
        self.connections: set[Connection] = set()
        self.sweeper: asyncio.TimerHandle | None = None

    # -- connections ----------------------------------------------------------

    def accept(self, connection: "Connection") -> bool:
        """Admit a new connection unless the cap is reached."""
        if len(self.connections) >= self.settings.max_connections:
            self.metrics.count("connection_refused")
            return False
        if self.sweeper is None:
            self.sweeper = asyncio.get_running_loop().call_later(SWEEP_SECONDS, self.sweep)
        self.connections.add(connection)
        self.metrics.gauge_add("connections", 1)
        return True

    def release(self, connection: "Connection") -> None:
        if connection in self.connections:
            self.connections.remove(connection)
            self.metrics.gauge_add("connections", -1)

    def sweep(self) -> None:
        """Close connections past their request or idle deadline."""
        now = time.monotonic()
        settings = self.settings
        for connection in list(self.connections):
            if connection.paused:  # its answers are not being read
                if now - connection.last > settings.idle_timeout:
                    self.metrics.count("idle_timeout")
                    connection.close()
            elif connection.started is not None:
                if now - connection.started > settings.request_timeout:
                    self.metrics.count("request_timeout")
                    connection.fail(b"408 Request Timeout", b"request timeout\n")
            elif not connection.pending and now - connection.last > settings.idle_timeout:
                self.metrics.count("idle_timeout")
                connection.close()
        loop = asyncio.get_running_loop()
        self.sweeper = loop.call_later(SWEEP_SECONDS, self.sweep) if self.connections else None

    # -- OCSP -----------------------------------------------------------------

    def ocsp(self, request: bytes):
        """(answer, perf_counter at the start): an Answer, or a SigningJob whose
        ``answer`` is filled later in this loop iteration (or by a signing
        thread), after which its ``waiter`` is called."""
        started = time.perf_counter()
        if started - self.checked > GENERATION_CHECK_SECONDS:
            self.checked = started
            generation = self.responder.generation()
            if generation != self.generation:  # a publish or refresh committed
                self.generation = generation
                self.hot.clear()
                self.responder.status_cache.clear()
        answer = self.hot.get(request)
        if answer is not None and answer.next_update > time.time():
            return answer, started
        result = self.responder.answer(request)
        if isinstance(result, Answer):
            if result.kind == "presigned" and len(request) <= HOT_KEY_MAX:
                if len(self.hot) >= HOT_ANSWER_ENTRIES:
                    self.hot.clear()
                self.hot[request] = result
            return result, started
        if isinstance(result, SigningJob):
            if self.in_flight >= self.settings.fresh_signing_cap:
                self.metrics.count("try_later")
                return Answer(core.TRY_LATER, "error"), started
            self.in_flight += 1
            if not self.batch:
                asyncio.get_running_loop().call_soon(self._sign_batch)
            self.batch.append(result)
        return result, started

    def _sign_batch(self) -> None:
        """Sign the jobs of one event-loop iteration back to back, then hand
        each answer to its connection. In a row, the key's precomputed tables
        stay in the core's cache: a signature costs about what it costs alone
        instead of 15-20% more between two requests' Python work. With
        signing threads the batch is signed in one of them (the native signer
        releases the GIL once for the batch) while the loop serves on."""
        batch, self.batch = self.batch, []
        if self.executor is None:
            try:
                finish_all(batch)
            except Exception:
                log.exception("signing failed")  # those jobs answer internalError
            self._answered(batch)
            return
        future = asyncio.get_running_loop().run_in_executor(self.executor, finish_all, batch)
        future.add_done_callback(functools.partial(self._signed_in_thread, batch))

    def _signed_in_thread(self, batch: list[SigningJob], future) -> None:
        if not future.cancelled() and future.exception() is not None:
            log.error("signing failed", exc_info=future.exception())
        self._answered(batch)

    def _answered(self, batch: list[SigningJob]) -> None:
        """Hand each job's answer to its connection; a job left without one
        (its signing failed) answers internalError."""
        self.in_flight -= len(batch)
        for job in batch:
            if job.answer is None:
                job.answer = Answer(core.INTERNAL_ERROR, "error")
            if job.waiter is not None:
                job.waiter()

    def invalidate(self) -> None:
        """Forget hot answers and statuses now (this process has just written
        the store)."""
        self.hot.clear()
        self.responder.status_cache.clear()
        self.checked = 0.0

    def wake_after_write(self, wake: asyncio.Event):
        """A callback for in-process writers: drop hot answers, wake ``wake``
        (the refresher)."""

        def applied() -> None:
            self.invalidate()
            wake.set()

        return applied

    def cached_head(self, answer: Answer) -> list:
        """[ETag, bytes up to max-age=, bytes after it up to the blank line,
        max-age of the last keep-alive response built, that response] of a
        cacheable answer's 200 response (the last two filled by the caller)."""
        head = self.heads.get(answer.body)
        if head is None:
            if len(self.heads) >= HEAD_CACHE_ENTRIES:
                self.heads.clear()
            etag = b'"' + hashlib.sha1(answer.body).hexdigest().encode() + b'"'
            head = [
                etag,
                b"HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\n"
                b"Last-Modified: " + http_date(answer.this_update) + b"\r\n"
                b"Expires: " + http_date(answer.next_update) + b"\r\n"
                b"ETag: " + etag + b"\r\nCache-Control: max-age=",
                _CACHE_SUFFIX + b"%d\r\n" % len(answer.body),
                -1,
                b"",
            ]
            self.heads[answer.body] = head
        return head

    def ocsp_headers(self, answer: Answer, now: float) -> list[tuple[bytes, bytes]]:
        headers = [(b"Content-Type", b"application/ocsp-response")]
        if answer.cacheable and answer.kind != "error":
            # RFC 5019 6.2: caching headers follow the response's validity.
            max_age = max(0, int(answer.next_update - now))
            headers += [
                (b"Last-Modified", http_date(answer.this_update)),
                (b"Expires", http_date(answer.next_update)),
                (
                    b"Cache-Control",
                    f"max-age={max_age}, public, no-transform, must-revalidate".encode(),
                ),
                (b"ETag", b'"' + hashlib.sha1(answer.body).hexdigest().encode() + b'"'),
            ]
        else:
            headers.append((b"Cache-Control", b"no-cache"))
        return headers


def ca_downloads(chains: dict[str, list[bytes]]) -> dict[str, tuple[bytes, bytes]]:
    """Every CA certificate download, keyed by the name after /ca/:
    NAME.crt / NAME.der (DER, RFC 5280 4.2.2.1 caIssuers), NAME.pem,
    NAME-chain.pem (the certificate and its parents), NAME.p7c (PKCS#7
    certs-only, RFC 5280 4.2.2.1)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

    out = {}
    for name, chain in chains.items():
        certs = [x509.load_der_x509_certificate(der) for der in chain]
        pem = [c.public_bytes(Encoding.PEM) for c in certs]
        out[f"{name}.crt"] = (b"application/pkix-cert", chain[0])
        out[f"{name}.der"] = (b"application/pkix-cert", chain[0])
        out[f"{name}.pem"] = (b"application/x-pem-file", pem[0])
        out[f"{name}-chain.pem"] = (b"application/x-pem-file", b"".join(pem))
        out[f"{name}.p7c"] = (
            b"application/pkcs7-mime",
            pkcs7.serialize_certificates(certs, Encoding.DER),
        )
    return out
