"""The enrollment listeners (aiohttp under common/httpguard.py's deadlines
and limits): EST over TLS with client certificates optional, SCEP over
plain HTTP (and over the TLS listener too), ``/metrics`` and ``/health``
on both.

Store work runs on a thread pool (the service is synchronous SQL); every
refusal is a short text/plain answer with the status the protocol names
(enroll/est.py, enroll/scep.py), never a traceback.
"""

import asyncio
import functools
import logging
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web
from cryptography.hazmat.primitives import serialization

from ca.errors import CAError
from common import prometheus
from common.httpguard import Guard, Limits, start_guarded
from enroll.est import EstFront, text_error
from enroll.scep import ScepFront
from enroll.service import EnrollError, EnrollService

log = logging.getLogger("revoca.enroll")

LATENCY_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class EnrollServer:
    def __init__(self, service: EnrollService, *, limits: Limits | None = None, threads: int = 8):
        settings = service.settings
        self.service = service
        self.limits = limits or Limits(
            request_timeout=settings.request_timeout,
            idle_timeout=settings.idle_timeout,
            max_connections=settings.max_connections,
            max_body=settings.max_body,
        )
        self.guards: list[Guard] = []
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="enroll")
        self.est = EstFront(service, self._call)
        self.scep = ScepFront(service, self._call, self.limits.max_body)
        self.latency = [0] * (len(LATENCY_BOUNDS) + 1)
        self.latency_sum = 0.0

    async def _call(self, fn: Callable, *args, **kwargs):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    @staticmethod
    def _guard_error(status: int, code: str, message: str) -> web.Response:
        return text_error(status, message)

    def guard(self) -> Guard:
        guard = Guard(self.limits, self._guard_error)
        self.guards.append(guard)
        return guard

    @web.middleware
    async def _errors(self, request: web.Request, handler) -> web.StreamResponse:
        started = time.monotonic()
        try:
            response = await handler(request)
        except EnrollError as exc:
            response = text_error(exc.http_status, exc.message)
        except CAError as exc:  # a store or key problem: said, not shown as a traceback
            log.error("enrollment request %s failed: %s", request.path, exc.message)
            response = text_error(503, exc.message)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = text_error(exc.status, f"{request.method} {request.path}: {exc.reason}")
            if "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
        except Exception:
            log.exception("enrollment request %s failed", request.path)
            response = text_error(500, "the server failed on this request; see its log")
        elapsed = time.monotonic() - started
        if request.method == "POST" or request.query.get("operation") == "PKIOperation":
            self.latency_sum += elapsed
            for i, bound in enumerate(LATENCY_BOUNDS):
                if elapsed <= bound:
                    self.latency[i] += 1
                    break
            else:
                self.latency[-1] += 1
        return response

    def app(self, guard: Guard, *, est: bool, scep: bool) -> web.Application:
        app = web.Application(
            client_max_size=self.limits.max_body,
            middlewares=[guard.middleware, self._errors, guard.body],
        )
        if est:
            self.est.routes(app.router)
        if scep:
            self.scep.routes(app.router)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/health", self.health)
        return app

    async def health(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def metrics(self, _request: web.Request) -> web.Response:
        counts = self.service.counts
        events: dict[str, int] = {}
        for guard in self.guards:
            for key, value in guard.counts.items():
                events[key] = events.get(key, 0) + value
        families = [
            prometheus.family(
                "revoca_enroll_requests_total",
                "counter",
                "Enrollment requests by protocol and result (issued, pending, refused, "
                "failed, malformed).",
                [({"protocol": p, "result": r}, v) for (p, r), v in sorted(counts.items())],
            ),
            prometheus.histogram(
                "revoca_enroll_request_seconds",
                "Seconds to answer an enrollment request (EST POST, SCEP PKIOperation).",
                LATENCY_BOUNDS,
                list(self.latency),
                self.latency_sum,
            ),
            prometheus.family(
                "revoca_enroll_http_events_total",
                "counter",
                "Listener events: requests, refusals, timeouts.",
                [({"event": k}, v) for k, v in sorted(events.items())],
            ),
        ]
        return web.Response(text=prometheus.render(families), content_type="text/plain")


def tls_context(service: EnrollService, cert_file, key_file, passphrase: bytes | None):
    """The EST listener's TLS: TLS 1.2 or 1.3, a client certificate asked
    for but optional, verified under every CA here and the bootstrap
    anchors, its validity judged by the service (which can say why)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is not None:
        key_pem = key_file.read_bytes()
        password = passphrase if b"ENCRYPTED" in key_pem else None
        context.load_cert_chain(cert_file, key_file, password=password)
    else:
        cert, key, chain = service.listener_identity()
        _load_identity(context, cert, key, chain)
    context.verify_mode = ssl.CERT_OPTIONAL
    # X509_V_FLAG_NO_CHECK_TIME: an expired certificate reaches the service,
    # which refuses it with a reason (the TLS alert would not say).
    context.verify_flags |= 0x200000
    pem = b"".join(
        c.public_bytes(serialization.Encoding.PEM) for c in service.trust_anchors()
    ).decode()
    if pem:
        context.load_verify_locations(cadata=pem)
    return context


def _load_identity(context: ssl.SSLContext, cert, key, chain) -> None:
    """Load a certificate and key held in memory: ssl wants files, so a
    private temporary directory holds them, the key encrypted under a
    one-time password, for as long as this takes."""
    import secrets
    import tempfile
    from pathlib import Path

    password = secrets.token_bytes(32).hex().encode()
    with tempfile.TemporaryDirectory(prefix="revoca-enroll-") as tmp:
        cert_path, key_path = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert_path.write_bytes(
            b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (cert, *chain))
        )
        key_path.touch(0o600)
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(password),
            )
        )
        context.load_cert_chain(cert_path, key_path, password=password)


async def start(server: EnrollServer, sock, *, est: bool, scep: bool, ssl_context=None):
    """Serve on ``sock`` (bound by the caller); ``runner.cleanup()`` stops it."""
    guard = server.guard()
    app = server.app(guard, est=est, scep=scep)
    return await start_guarded(app, sock, guard, ssl_context, backlog=256)
