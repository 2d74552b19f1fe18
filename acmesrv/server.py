"""The ACME server's HTTP front (aiohttp): RFC 8555's resources under
``/acme/<directory>/``, each answer with a fresh ``Replay-Nonce``, the
directory's ``Link: rel="index"`` and ``Cache-Control: no-store``; every
error a problem document (acmesrv/problems.py).

Store work runs on a thread pool (the service is synchronous SQL);
validations run as tasks of their own, at most ``[acme] validations`` at
once, each under its deadline, so a request never waits for a challenge
target. Challenges left ``processing`` by a stopped server are validated
again when it starts.
"""

import asyncio
import functools
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from aiohttp import web

from acmesrv import jws, validation
from acmesrv.base import LATENCY_BOUNDS
from acmesrv.problems import CONTENT_TYPE, Problem
from acmesrv.service import AcmeService, Answer, ValidationJob
from ca.errors import CAError, NotFoundError
from common import prometheus
from common.httpguard import Guard, Limits

log = logging.getLogger("revoca.acme")

MAX_BODY = 64 * 1024  # a JWS with a CSR of an RSA-8192 key fits many times over
CHALLENGE_WAIT = 0.5  # seconds a challenge's answer waits for a quick validation
JOSE = "application/jose+json"


def _problem_response(problem: Problem) -> web.Response:
    response = web.Response(
        text=json.dumps(problem.document()), status=problem.http_status, content_type=CONTENT_TYPE
    )
    if problem.retry_after is not None:
        response.headers["Retry-After"] = str(problem.retry_after)
    if problem.location is not None:
        response.headers["Location"] = problem.location
    return response


class AcmeServer:
    def __init__(
        self,
        service: AcmeService,
        *,
        limits: Limits | None = None,
        threads: int = 8,
        validation_settings: validation.ValidationSettings | None = None,
        concurrent_validations: int = 16,
    ):
        self.service = service
        self.guard = Guard(limits or Limits(max_body=MAX_BODY), self._guard_error)
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="acme")
        self.validation = validation_settings or validation.ValidationSettings()
        self._slots = asyncio.Semaphore(concurrent_validations)
        self._tasks: set[asyncio.Task] = set()

    # -- plumbing -------------------------------------------------------------------------

    async def _call(self, fn: Callable, *args, **kwargs):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    def _guard_error(self, status: int, code: str, message: str) -> web.Response:
        """The listener's own refusals (413, 408, ...) as problem documents,
        with a nonce as every error carries (RFC 8555 6.5)."""
        kind = "malformed" if status != 503 else "serverInternal"
        response = _problem_response(Problem(kind, message, status=status))
        self._headers(response, None, self.service.new_nonce())
        return response

    @web.middleware
    async def _http_errors(self, request: web.Request, handler) -> web.StreamResponse:
        """aiohttp's own answers (no such resource, method not allowed) as
        problem documents with a nonce, like every other error here."""
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            problem = Problem("malformed", f"{request.method} {request.path}: {exc.reason}")
            response = _problem_response(replace(problem, status=exc.status))
            if exc.status == 405 and "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
            self._headers(response, request.match_info.get("d"), self.service.new_nonce())
            return response

    def app(self) -> web.Application:
        app = web.Application(
            client_max_size=MAX_BODY,
            middlewares=[self.guard.middleware, self._http_errors, self.guard.body],
        )
        r = app.router
        r.add_get("/acme/{d}/directory", self.directory)
        r.add_route("HEAD", "/acme/{d}/new-nonce", self.new_nonce)
        r.add_get("/acme/{d}/new-nonce", self.new_nonce, allow_head=False)
        r.add_get("/acme/{d}/renewal-info/{cert_id}", self.renewal_info)
        for path, name in (
            ("new-account", "new_account"),
            ("new-order", "new_order"),
            ("revoke-cert", "revoke_cert"),
            ("key-change", "key_change"),
            ("acct/{id}", "account"),
            ("acct/{id}/orders", "orders"),
            ("order/{id}", "order"),
            ("order/{id}/finalize", "finalize"),
            ("authz/{id}", "authz"),
            ("chall/{id}", "challenge"),
            ("cert/{id}", "certificate"),
        ):
            r.add_post(f"/acme/{{d}}/{path}", functools.partial(self.signed, name))
        r.add_get("/metrics", self.metrics)
        r.add_get("/health", self.health)
        app.on_startup.append(self._startup)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _startup(self, _app) -> None:
        released = await self._call(self.service.release_stale_claims)
        if released:
            log.warning("%d ACME orders left mid-issuance are ready to finalize again", released)
        for job in await self._call(self.service.pending_jobs):
            self.start_validation(job)

    async def _cleanup(self, _app) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.executor.shutdown(wait=False)

    def _headers(self, response: web.StreamResponse, directory: str | None, nonce: str) -> None:
        response.headers["Replay-Nonce"] = nonce
        response.headers["Cache-Control"] = "no-store"
        if directory is not None and directory in self.service.directories:
            response.headers.add(
                "Link", f'<{self.service.url(directory, "directory")}>;rel="index"'
            )

    async def _answer(self, directory: str | None, work) -> web.StreamResponse:
        """Run ``work`` (a coroutine giving an Answer) and turn what it gives
        or raises into the response."""
        try:
            answer: Answer = await work
            if isinstance(answer.body, bytes):
                response = web.Response(body=answer.body, status=answer.status)
                response.content_type = answer.content_type
            elif answer.body is None:
                response = web.Response(status=answer.status)
            else:
                response = web.json_response(answer.body, status=answer.status)
            if answer.location:
                response.headers["Location"] = answer.location
            for url, rel in answer.links:
                response.headers.add("Link", f'<{url}>;rel="{rel}"')
            if answer.retry_after is not None:
                response.headers["Retry-After"] = str(answer.retry_after)
        except Problem as problem:
            response = _problem_response(problem)
        except NotFoundError as exc:
            response = _problem_response(Problem("malformed", exc.message, status=404))
        except CAError as exc:
            log.warning("ACME request refused: %s", exc.message)
            response = _problem_response(Problem("serverInternal", exc.message))
        except Exception:
            log.exception("ACME request failed")
            response = _problem_response(Problem("serverInternal", "the server failed; try again"))
        self._headers(response, directory, self.service.new_nonce())
        return response

    # -- unsigned resources ----------------------------------------------------------

    async def directory(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["d"]

        async def work():
            return Answer(self.service.directory_object(name))

        response = await self._answer(None, work())
        del response.headers["Replay-Nonce"]
        return response

    async def new_nonce(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["d"]

        async def work():
            self.service.directory(name)
            # 7.2: 200 for HEAD, 204 for GET.
            return Answer(None, 200 if request.method == "HEAD" else 204)

        return await self._answer(name, work())

    async def renewal_info(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["d"]

        async def work():
            self.service.directory(name)
            return await self._call(self.service.renewal_info, request.match_info["cert_id"])

        return await self._answer(name, work())

    async def health(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def metrics(self, _request: web.Request) -> web.Response:
        counts = self.service.counters
        families = []
        for key, name, help_text in (
            ("accounts", "revoca_acme_accounts_created_total", "ACME accounts created."),
            ("orders", "revoca_acme_orders_created_total", "ACME orders created."),
            ("certificates", "revoca_acme_certificates_issued_total", "Certificates issued."),
            ("revocations", "revoca_acme_revocations_total", "Certificates revoked over ACME."),
        ):
            families.append(
                prometheus.family(
                    name,
                    "counter",
                    help_text,
                    [({"directory": k[1]}, v) for k, v in sorted(counts.items()) if k[0] == key]
                    or [({"directory": d}, 0) for d in sorted(self.service.directories)],
                )
            )
        families.append(
            prometheus.family(
                "revoca_acme_validations_total",
                "counter",
                "Challenge validations by type and result.",
                [
                    ({"type": k[1], "result": k[2]}, v)
                    for k, v in sorted(counts.items())
                    if k[0] == "validations"
                ],
            )
        )
        families.append(
            prometheus.histogram(
                "revoca_acme_issuance_seconds",
                "Seconds from a finalize request to its certificate.",
                LATENCY_BOUNDS,
                list(self.service.issuance_buckets),
                self.service.issuance_total,
            )
        )
        families.append(
            prometheus.family(
                "revoca_acme_http_events_total",
                "counter",
                "Listener events: requests, refusals, timeouts.",
                [({"event": k}, v) for k, v in sorted(self.guard.counts.items())],
            )
        )
        return web.Response(text=prometheus.render(families), content_type="text/plain")

    # -- signed resources (6.2) --------------------------------------------------------

    async def signed(self, name: str, request: web.Request) -> web.StreamResponse:
        directory = request.match_info["d"]
        return await self._answer(directory, self._signed(name, directory, request))

    async def _signed(self, name: str, directory: str, request: web.Request) -> Answer:
        if request.content_type != JOSE:
            raise Problem("malformed", f"the Content-Type must be {JOSE}", status=415)
        body = await request.read()
        signed = jws.parse(body)
        url = self.service.base_url + request.path
        ident = request.match_info.get("id")
        # The checks and the work in one trip to a store thread.
        answer, account, more = await self._call(self._handle, name, directory, signed, url, ident)
        if name == "challenge" and more is not None:
            task = self.start_validation(more)
            # A validation often takes milliseconds: answer with its outcome
            # when it comes within CHALLENGE_WAIT, else processing with
            # Retry-After, and the client polls (RFC 8555 7.5.1).
            done, _ = await asyncio.wait({task}, timeout=CHALLENGE_WAIT)
            if done:
                answer, _ = await self._call(self.service.challenge, account, ident, None)
        elif name == "finalize" and more is not None:
            # CAA looked up again first (BR 3.2.2.8), then the issuance.
            for job in more:
                try:
                    await self._check_caa(job)
                except validation.ValidationError as exc:
                    raise Problem(exc.kind, exc.detail) from None
            answer = await self._call(self.service.finalize, account, ident, signed.json())
        return answer

    def _handle(self, name: str, directory: str, signed, url: str, ident: str | None):
        """On a store thread: authenticate (6.2-6.5), then the resource's
        work. Returns (answer, account, what the event loop does next: a
        validation job, or the CAA lookups before a finalize)."""
        service = self.service
        mode = {"new_account": "required", "revoke_cert": "allowed"}.get(name, "never")
        account, key = service.authenticate(directory, signed, url, jwk=mode)
        payload = signed.json()
        if name in ("account", "orders") and ident != account.id:
            raise Problem("unauthorized", "the account URL is not the signer's account")
        if name in ("order", "certificate"):
            _post_as_get(payload)
        if name == "challenge":
            answer, job = service.challenge(account, ident, payload)
            return answer, account, job
        if name == "finalize":
            rechecks = service.caa_rechecks(account, ident)
            if rechecks:
                return None, account, rechecks
            return service.finalize(account, ident, payload), account, None
        handlers = {
            "new_account": lambda: service.new_account(directory, signed, key, url),
            "revoke_cert": lambda: service.revoke(directory, account, key, payload),
            "key_change": lambda: service.key_change(account, signed),
            "account": lambda: service.update_account(account, payload),
            "orders": lambda: service.account_orders(account),
            "new_order": lambda: service.new_order(account, payload),
            "order": lambda: service.get_order(account, ident),
            "authz": lambda: service.get_authz(account, ident, payload),
            "certificate": lambda: service.certificate(account, ident),
        }
        if name not in handlers:
            raise Problem("malformed", f"no resource {name!r}", status=404)
        return handlers[name](), account, None

    # -- validation ---------------------------------------------------------------------

    async def _check_caa(self, job: ValidationJob) -> None:
        await validation.check_caa(
            job.identifier.base,
            issuer_domains=self.service.settings.caa_identities,
            account_uri=job.account_uri,
            method=job.caa_method,
            wildcard=job.identifier.wildcard,
            settings=self.validation,
        )

    def start_validation(self, job: ValidationJob) -> asyncio.Task:
        task = asyncio.create_task(self._validate(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _validate(self, job: ValidationJob) -> None:
        async with self._slots:
            problem = None
            started = time.monotonic()
            try:
                await validation.validate(
                    job.type,
                    job.identifier.type,
                    job.identifier.value,
                    job.token,
                    job.key_authorization,
                    self.validation,
                )
                if job.check_caa:
                    await self._check_caa(job)
            except validation.ValidationError as exc:
                problem = Problem(exc.kind, exc.detail)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("validating challenge %s failed", job.challenge_id)
                problem = Problem("serverInternal", "the validation failed on the server")
            log.info(
                "acme validation %s %s %s: %s in %.3f s",
                job.challenge_id,
                job.type,
                job.identifier.value,
                problem.type if problem else "valid",
                time.monotonic() - started,
            )
            try:
                await self._call(self.service.record_validation, job, problem)
            except Exception:  # left processing: validated again at the next start
                log.exception("recording the validation of %s failed", job.challenge_id)


async def start(server: AcmeServer, sock, ssl_context=None) -> web.AppRunner:
    """Serve on ``sock`` (bound by the caller, common/listen.py) under the
    server's deadlines and limits; ``runner.cleanup()`` stops it."""
    from common.httpguard import start_guarded

    return await start_guarded(server.app(), sock, server.guard, ssl_context, backlog=256)


def _post_as_get(payload) -> None:
    if payload is not None:
        raise Problem("malformed", "this resource is read with POST-as-GET (an empty payload)")
