"""The VA's admin listener: the publish protocol (va/publish.py) over HTTP.

Separate from the public OCSP port. Every request must carry
``Authorization: Bearer <token>``; the token is read from a 0600 file and
compared in constant time. Missing credentials get 401, wrong ones 403, and
neither changes anything. Tokens never reach the logs. With ``tls_context``
the listener also demands a client certificate issued by the configured CA
(mutual TLS), so a stolen token alone is not enough.
"""

import asyncio
import hmac
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from common import jsonbody
from common.httpguard import Guard, Limits, start_guarded
from common.listen import bind_listener
from common.secretfile import SecretFileError, read_secret_file
from va import crlcheck, publish
from va.errors import CRLRefused, SequenceGapError, StoreWriteError, TokenError
from va.store import VAStore

log = logging.getLogger("revoca.va.admin")
MAX_BODY = 16 * 1024 * 1024
MAX_CONNECTIONS = 256  # a few publishers
BACKLOG = 128
GUARD = web.AppKey("guard", Guard)


def load_token(path: Path) -> bytes:
    """The admin token, from a file only its owner can read."""
    try:
        token = read_secret_file(path, "admin token file").strip()
    except SecretFileError as exc:
        raise TokenError(exc.message) from None
    if len(token) < 32:
        raise TokenError(f"the admin token in {path} is shorter than 32 characters")
    return token


def write_token(path: Path, token: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")


def _json_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


async def _json_body(request: web.Request):
    """The body's JSON value; raises a 400 answer (web.HTTPBadRequest)."""
    try:
        return jsonbody.loads(await request.read())
    except jsonbody.JSONBodyError as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "bad_json", "message": exc.message}),
            content_type="application/json",
        ) from None


def _write_failed(exc: StoreWriteError) -> web.Response:
    """Map or disk full, I/O error: the transaction was rolled back, nothing
    written; 507 tells the publisher to retry later."""
    log.error("store write failed", extra={"error": str(exc)})
    return _json_error(507, "store_write_failed", str(exc))


def make_app(
    store: VAStore,
    token: bytes,
    on_applied: Callable[[], None] = lambda: None,
    limits: Limits | None = None,
):
    """The publish protocol's application. ``limits``: the listener's
    deadlines (common/httpguard.py); ``max_body`` is always ``MAX_BODY``."""
    from dataclasses import replace

    limits = replace(limits or Limits(max_connections=MAX_CONNECTIONS), max_body=MAX_BODY)
    guard = Guard(limits, _json_error)

    @web.middleware
    async def authenticate(request: web.Request, handler):
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented:
            return _json_error(401, "unauthenticated", "send Authorization: Bearer <token>")
        if not hmac.compare_digest(presented.strip().encode(), token):
            log.warning(
                "refused an admin request with a wrong token", extra={"peer": request.remote}
            )
            return _json_error(403, "forbidden", "wrong token")
        return await handler(request)

    async def events(request: web.Request) -> web.Response:
        body = await _json_body(request)
        try:
            batch = publish.parse_batch(body)
        except publish.ProtocolError as exc:
            return _json_error(400, "bad_batch", str(exc))
        try:
            result = publish.apply_batch(store, batch)
        except SequenceGapError as exc:
            log.warning(
                "refused a batch after a gap", extra={"source": exc.source, "reason": str(exc)}
            )
            return web.json_response(
                {
                    "error": exc.code,
                    "message": str(exc),
                    "high_water": exc.high_water,
                    "after": exc.after,
                },
                status=409,
            )
        except StoreWriteError as exc:
            return _write_failed(exc)
        if result["applied"]:
            on_applied()
        return web.json_response(result)

    async def snapshot(request: web.Request) -> web.Response:
        body = await _json_body(request)
        try:
            source, chunk = publish.parse_snapshot(
                request.match_info["snapshot"], request.match_info["chunk"], body
            )
            result = publish.apply_snapshot(store, source, chunk)
        except publish.ProtocolError as exc:
            return _json_error(400, "bad_snapshot", str(exc))
        except StoreWriteError as exc:
            return _write_failed(exc)
        if result["applied"]:
            on_applied()
        return web.json_response(result)

    async def status(request: web.Request) -> web.Response:
        source = request.query.get("source")
        if source:
            high_water, applied = publish.counters(store, source)
            return web.json_response(
                {"source": source, "high_water": high_water, "applied": applied}
            )
        return web.json_response(
            {
                name: {"high_water": h, "applied": a}
                for name, (h, a) in publish.sources(store).items()
            }
        )

    async def put_crl(request: web.Request) -> web.Response:
        # Checked and stored by va/crlcheck.py, as a co-located publisher's are.
        try:
            der = await request.read()
            result = await asyncio.to_thread(
                crlcheck.publish_crl_request,
                store,
                request.match_info["name"],
                request.headers,
                der,
            )
        except CRLRefused as exc:
            return _json_error(exc.status, exc.code, str(exc))
        except StoreWriteError as exc:
            return _write_failed(exc)
        return web.json_response(result)

    async def put_issuer(request: web.Request) -> web.Response:
        try:
            issuer_id = int(request.match_info["issuer_id"])
            record = publish.parse_issuer(issuer_id, await _json_body(request))
        except (ValueError, publish.ProtocolError) as exc:
            return _json_error(400, "bad_issuer", str(exc))
        try:
            store.put_issuer(issuer_id, record)
        except StoreWriteError as exc:
            return _write_failed(exc)
        return web.json_response({"stored": issuer_id, "name": record["name"]})

    app = web.Application(
        middlewares=[guard.middleware, authenticate, guard.body], client_max_size=MAX_BODY
    )
    app[GUARD] = guard
    app.router.add_put(f"/publish/v{publish.VERSION}/issuers/{{issuer_id}}", put_issuer)
    app.router.add_post(f"/publish/v{publish.VERSION}/events", events)
    app.router.add_get(f"/publish/v{publish.VERSION}/status", status)
    app.router.add_put(f"/publish/v{publish.VERSION}/snapshots/{{snapshot}}/{{chunk}}", snapshot)
    app.router.add_put(f"/publish/v{publish.VERSION}/crls/{{name}}", put_crl)
    return app


async def start_admin(
    app: web.Application, host: str = "", port: int = 0, ssl_context=None, *, sock=None
) -> web.AppRunner:
    """Serve ``app`` on ``sock`` (the VA's supervisor binds it once for all
    generations of workers), or on a socket bound here to ``host:port``."""
    if sock is None:
        sock = bind_listener(host, port, BACKLOG, what=" (admin listener)")
    return await start_guarded(app, sock, app[GUARD], ssl_context, backlog=BACKLOG)


def mutual_tls_context(
    cert_file: Path, key_file: Path, client_ca_file: Path, key_passphrase: bytes | None = None
):
    """TLS for the admin listener that refuses clients without a certificate
    from ``client_ca_file``."""
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(client_ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(str(cert_file), str(key_file), password=key_passphrase)
    return context
