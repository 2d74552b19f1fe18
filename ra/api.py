"""The RA's REST API (aiohttp): end entities, enrollment, renewal,
revocation, certificates and chains, operators, the audit log.

One route table drives both the router and the OpenAPI 3 document served at
``/api/openapi.json`` (ra/openapi.py), so the two cannot drift apart.

Every request but the document and ``/api/health`` must be authenticated:
``Authorization: Bearer <token>``, or a TLS client certificate registered to
an operator (when the listener runs TLS with a client CA). Each route names
the operation it performs; the operator's role must allow it (ra/roles.py).
Errors are JSON: ``{"error": {"code": ..., "message": ...}}`` with a stable
code and an HTTP status that follows it.
"""

import asyncio
import base64
import functools
import json
import logging
import re
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from aiohttp import web
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select

from ca.errors import BadInputError, CAError
from ca.records import parse_serial
from common import jsonbody
from common.httpguard import Guard, Limits
from ra.approvals import ApprovalRequest
from ra.export import export_zip
from ra.params import days_field, id_param, id_text, int_param, text_field, time_param
from ra.roles import ADMINISTRATOR, AuthenticationError, authorize
from ra.routes import EXPORT_FIELDS, ROUTES, SEARCH_FIELDS, Route
from ra.search import CertificateQuery, certificate_summary, report_csv
from ra.secrets import DEFAULT_DAYS
from ra.service import RAService
from ra.users import User
from store.tables.audit import audit_log

log = logging.getLogger("revoca.ra.api")

MAX_BODY = 256 * 1024
STATUS_OF_CODE = {
    "bad_input": 400,
    "unauthenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "too_large": 413,
    "policy_violation": 422,
    "key_compromised": 422,
    "store_error": 503,
    "schema_outdated": 503,
}
USER_KEY = web.RequestKey("user", User)


def _error(code: str, message: str, status: int | None = None) -> web.Response:
    response = web.json_response(
        {"error": {"code": code, "message": message}},
        status=status or STATUS_OF_CODE.get(code, 500),
    )
    if code == "unauthenticated":
        response.headers["WWW-Authenticate"] = 'Bearer realm="revoca-ra"'
    return response


_DIGEST = re.compile(r"[0-9a-f]{64}")


class RAApi:
    def __init__(self, service: RAService, *, threads: int = 4, limits: Limits | None = None):
        self.service = service
        limits = replace(limits or Limits(), max_body=MAX_BODY)
        # Deadlines, connection and body limits of the listener (common/httpguard.py).
        self.guard = Guard(limits, lambda status, code, message: _error(code, message, status))
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="ra-api")
        self.handlers: dict[str, Callable] = {
            "openapi": self.openapi,
            "health": self.health,
            "whoami": self.whoami,
            "listEntities": self.list_entities,
            "createEntity": self.create_entity,
            "getEntity": self.get_entity,
            "updateEntity": self.update_entity,
            "entityCertificates": self.entity_certificates,
            "enroll": self.enroll,
            "listSecrets": self.list_secrets,
            "createSecret": self.create_secret,
            "revokeSecret": self.revoke_secret,
            "searchCertificates": self.search_certificates,
            "report": self.report,
            "export": self.export,
            "getCertificate": self.get_certificate,
            "getChain": self.get_chain,
            "renew": self.renew,
            "revoke": self.revoke,
            "releaseHold": self.release_hold,
            "importInventory": self.import_inventory,
            "listBlockedKeys": self.list_blocked_keys,
            "blockKeys": self.block_keys,
            "checkBlockedKeys": self.check_blocked_keys,
            "listRequests": self.list_requests,
            "getRequest": self.get_request,
            "approveRequest": self.approve_request,
            "rejectRequest": self.reject_request,
            "requestPkcs12": self.request_pkcs12,
            "listUsers": self.list_users,
            "createUser": self.create_user,
            "updateUser": self.update_user,
            "deleteUser": self.delete_user,
            "rotateToken": self.rotate_token,
            "rotateOwnToken": self.rotate_own_token,
            "listAudit": self.list_audit,
        }

    def app(self) -> web.Application:
        app = web.Application(
            client_max_size=MAX_BODY,
            middlewares=[self.guard.middleware, self._errors, self._authenticate, self.guard.body],
        )
        for route in ROUTES:
            handler = self._guarded(route, self.handlers[route.operation_id])
            app.router.add_route(route.method, route.path, handler)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _cleanup(self, _app) -> None:
        self.executor.shutdown(wait=False)

    async def _call(self, fn, *args, **kwargs):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    # -- middleware ------------------------------------------------------------

    @web.middleware
    async def _errors(self, request: web.Request, handler):
        try:
            return await handler(request)
        except CAError as exc:
            user = request.get(USER_KEY)
            log.info(
                "refused",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "code": exc.code,
                    "operator": user.name if user else None,
                },
            )
            return _error(exc.code, exc.message)
        except web.HTTPRequestEntityTooLarge:
            return _error("too_large", f"request body over {MAX_BODY} bytes")
        except web.HTTPNotFound:
            return _error("not_found", f"no such resource: {request.path}")
        except web.HTTPMethodNotAllowed as exc:
            response = _error(
                "method_not_allowed", f"{request.method} is not allowed on {request.path}"
            )
            response.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
            return response
        except web.HTTPException:
            raise
        except Exception:  # never a traceback to the client
            log.exception("internal error", extra={"path": request.path})
            return _error("internal_error", "internal error; see the server log", 500)

    @web.middleware
    async def _authenticate(self, request: web.Request, handler):
        public = request.path in ("/api/openapi.json", "/api/health")
        if not public:
            request[USER_KEY] = await self._user(request)
        return await handler(request)

    async def _user(self, request: web.Request) -> User:
        header = request.headers.get("Authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthenticationError("Authorization must be 'Bearer <token>'")
            return await self._call(self.service.users.by_token, token.strip())
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if der:
            return await self._call(self.service.users.by_certificate, der)
        raise AuthenticationError("sign in with an API token (Bearer) or a client certificate")

    def _guarded(self, route: Route, handler):
        async def guarded(request: web.Request):
            if route.permission:
                user = request[USER_KEY]
                authorize(user.name, user.role, route.permission)
            return await handler(request)

        return guarded

    # -- helpers ---------------------------------------------------------------

    @staticmethod
    async def _body(request: web.Request) -> dict:
        try:
            data = jsonbody.loads(await request.read())
        except jsonbody.JSONBodyError as exc:
            raise BadInputError(f"the request body is not acceptable JSON: {exc.message}") from None
        if not isinstance(data, dict):
            raise BadInputError("the request body must be a JSON object")
        return data

    @staticmethod
    def _actor(request: web.Request) -> str:
        return request[USER_KEY].actor

    @staticmethod
    def _serial(request: web.Request) -> int:
        return parse_serial(request.match_info["serial"])

    @staticmethod
    def _limit(request: web.Request, default: int) -> int:
        return int_param(request.query, "limit", default)

    def _enrollment(self, result) -> dict:
        out = {
            "certificate": result.certificate.summary(self.service.now()),
            "pem": result.certificate.certificate.public_bytes(Encoding.PEM).decode(),
            "chain_pem": "".join(c.public_bytes(Encoding.PEM).decode() for c in result.chain),
        }
        if result.pkcs12 is not None:
            out["pkcs12"] = base64.b64encode(result.pkcs12).decode()
        return out

    # -- handlers --------------------------------------------------------------

    async def openapi(self, request):
        from ra.openapi import document

        return web.json_response(document(ROUTES))

    async def health(self, request):
        return web.json_response({"status": "ok"})

    async def whoami(self, request):
        return web.json_response(request[USER_KEY].summary())

    async def list_entities(self, request):
        q = request.query
        attributes = {}
        for pair in q.getall("attribute", []):
            key, sep, value = pair.partition("=")
            if not sep:
                raise BadInputError(f"attribute {pair!r}: write it as key=value")
            attributes[key] = value
        entities = await self._call(
            self.service.list_entities,
            name_contains=q.get("name"),
            status=q.get("status"),
            email=q.get("email"),
            ca=q.get("ca"),
            profile=q.get("profile"),
            attributes=attributes,
            after=q.get("after"),
            limit=self._limit(request, 100),
        )
        items = [e.summary() for e in entities]
        return web.json_response(
            {"items": items, "next_after": items[-1]["name"] if items else None}
        )

    async def create_entity(self, request):
        body = await self._body(request)
        required = ("name", "email", "ca", "profile", "subject_template")
        missing = [k for k in required if k not in body]
        if missing:
            raise BadInputError(f"missing field(s): {', '.join(missing)}")
        unknown = set(body) - {*required, "allowed_sans", "attributes"}
        if unknown:
            raise BadInputError(f"unknown field(s): {', '.join(sorted(unknown))}")
        entity = await self._call(
            self.service.create_entity,
            body["name"],
            email=body["email"],
            ca=body["ca"],
            profile=body["profile"],
            subject_template=body["subject_template"],
            allowed_sans=body.get("allowed_sans", []),
            attributes=body.get("attributes", {}),
            actor=self._actor(request),
        )
        return web.json_response(entity.summary(), status=201)

    async def get_entity(self, request):
        entity = await self._call(self.service.get_entity, request.match_info["name"])
        return web.json_response(entity.summary())

    async def update_entity(self, request):
        body = await self._body(request)
        entity = await self._call(
            self.service.update_entity,
            request.match_info["name"],
            body,
            actor=self._actor(request),
        )
        return web.json_response(entity.summary())

    async def entity_certificates(self, request):
        records = await self._call(self.service.entity_certificates, request.match_info["name"])
        now = self.service.now()
        return web.json_response({"items": [certificate_summary(r, now) for r in records]})

    async def list_secrets(self, request):
        items = await self._call(self.service.list_secrets, request.match_info["name"])
        return web.json_response({"items": items})

    async def create_secret(self, request):
        body = await self._body(request)
        unknown = set(body) - {"protocols", "days"}
        if unknown:
            raise BadInputError(f"unknown field(s): {', '.join(sorted(unknown))}")
        protocols = body.get("protocols", ["est", "scep"])
        if not isinstance(protocols, list) or not all(isinstance(p, str) for p in protocols):
            raise BadInputError("protocols must be a list of 'est' and 'scep'")
        created = await self._call(
            self.service.create_secret,
            request.match_info["name"],
            protocols=tuple(protocols),
            days=body.get("days", DEFAULT_DAYS),
            actor=self._actor(request),
        )
        return web.json_response(created, status=201)

    async def revoke_secret(self, request):
        await self._call(
            self.service.revoke_secret, request.match_info["id"], actor=self._actor(request)
        )
        return web.Response(status=204)

    async def enroll(self, request):
        body = await self._body(request)
        unknown = set(body) - {"csr", "key_type", "passphrase", "sans", "days"}
        if unknown:
            raise BadInputError(f"unknown field(s): {', '.join(sorted(unknown))}")
        result = await self._call(
            self.service.enroll,
            request.match_info["name"],
            csr=text_field(body, "csr"),
            key_type=body.get("key_type"),
            passphrase=text_field(body, "passphrase"),
            sans=body.get("sans"),
            days=days_field(body),
            actor=self._actor(request),
        )
        return self._issued_or_queued(result)

    async def search_certificates(self, request):
        q = request.query
        unknown = set(q) - {*SEARCH_FIELDS, "after", "limit"}
        if unknown:
            raise BadInputError(f"unknown search field(s): {', '.join(sorted(unknown))}")
        query = CertificateQuery(
            text=q.get("text"),
            hostname=q.get("hostname"),
            serial=q.get("serial"),
            issuer=q.get("issuer"),
            entity=q.get("entity"),
            profile=q.get("profile"),
            status=q.get("status"),
            issued_after=time_param(q, "issued_after"),
            issued_before=time_param(q, "issued_before"),
            expires_after=time_param(q, "expires_after"),
            expires_before=time_param(q, "expires_before"),
            after=id_param(q, "after"),
            limit=self._limit(request, 100),
        )
        found = await self._call(self.service.search_summaries, query)
        return web.json_response(
            {
                "items": [summary for _, summary in found],
                "next_after": str(found[-1][0]) if found else None,
            }
        )

    async def report(self, request):
        name = request.match_info["report"]
        unknown = set(request.query) - {"days", "format"}
        if unknown:
            raise BadInputError(f"unknown field(s): {', '.join(sorted(unknown))}")
        days = int_param(request.query, "days", 30)
        fmt = request.query.get("format", "json")
        if fmt not in ("json", "csv"):
            raise BadInputError("format must be json or csv")
        rows = await self._call(self.service.report, name, days=days)
        if fmt == "csv":
            return web.Response(
                text=report_csv(name, rows), content_type="text/csv", charset="utf-8"
            )
        return web.json_response({"items": rows})

    async def export(self, request):
        q = request.query
        unknown = set(q) - set(EXPORT_FIELDS)
        if unknown:
            raise BadInputError(f"unknown field(s): {', '.join(sorted(unknown))}")

        def build():
            handle = tempfile.TemporaryFile()  # noqa: SIM115 (closed after streaming)
            try:
                export_zip(
                    self.service.store,
                    handle,
                    now=self.service.now(),
                    ca=q.get("issuer"),
                    status=q.get("status"),
                    issued_after=time_param(q, "issued_after"),
                    issued_before=time_param(q, "issued_before"),
                    expires_after=time_param(q, "expires_after"),
                    expires_before=time_param(q, "expires_before"),
                )
            except BaseException:
                handle.close()
                raise
            handle.seek(0)
            return handle

        handle = await self._call(build)
        try:
            response = web.StreamResponse(
                headers={
                    "Content-Type": "application/zip",
                    "Content-Disposition": 'attachment; filename="certificates.zip"',
                }
            )
            await response.prepare(request)
            while chunk := await self._call(handle.read, 1 << 16):
                await response.write(chunk)
            await response.write_eof()
            return response
        finally:
            handle.close()

    async def get_certificate(self, request):
        record = await self._call(
            self.service.certificate, request.match_info["ca"], self._serial(request)
        )
        pem = record.certificate.public_bytes(Encoding.PEM).decode()
        return web.json_response({**record.summary(self.service.now()), "pem": pem})

    async def get_chain(self, request):
        data = await self._call(
            self.service.export,
            request.match_info["ca"],
            self._serial(request),
            "pem-chain",
            actor=self._actor(request),
        )
        return web.Response(body=data, content_type="application/pem-certificate-chain")

    async def renew(self, request):
        body = await self._body(request) if request.body_exists else {}
        unknown = set(body) - {"csr", "key_type", "passphrase", "days"}
        if unknown:
            raise BadInputError(f"unknown field(s): {', '.join(sorted(unknown))}")
        result = await self._call(
            self.service.renew,
            request.match_info["ca"],
            self._serial(request),
            csr=text_field(body, "csr"),
            key_type=body.get("key_type"),
            passphrase=text_field(body, "passphrase"),
            days=days_field(body),
            actor=self._actor(request),
        )
        return self._issued_or_queued(result)

    async def revoke(self, request):
        body = await self._body(request)
        if "reason" not in body:
            raise BadInputError("missing field: reason (e.g. keyCompromise, superseded)")
        record = await self._call(
            self.service.revoke,
            request.match_info["ca"],
            self._serial(request),
            body["reason"],
            actor=self._actor(request),
        )
        if isinstance(record, ApprovalRequest):
            return web.json_response({"request": record.summary()}, status=202)
        return web.json_response(record.summary(self.service.now()))

    async def release_hold(self, request):
        record = await self._call(
            self.service.release_hold,
            request.match_info["ca"],
            self._serial(request),
            actor=self._actor(request),
        )
        return web.json_response(record.summary(self.service.now()))

    async def import_inventory(self, request):
        body = await self._body(request)
        unknown = set(body) - {"files", "pem", "entity"}
        if unknown:
            raise BadInputError(f"unknown field(s): {', '.join(sorted(unknown))}")
        files = []
        if body.get("pem") is not None:
            files.append(("pem", text_field(body, "pem")))
        uploads = body.get("files", [])
        if not isinstance(uploads, list):
            raise BadInputError("files must be a list of {name, content} objects")
        for i, item in enumerate(uploads):
            if not isinstance(item, dict) or set(item) != {"name", "content"}:
                raise BadInputError(f"files[{i}] must be an object with name and content")
            name, content = item["name"], item["content"]
            if not isinstance(name, str) or not name or not isinstance(content, str):
                raise BadInputError(f"files[{i}]: name and content (base64) must be strings")
            if len(name) > 255 or not name.isprintable():
                raise BadInputError(f"files[{i}]: name must be printable, at most 255 characters")
            try:
                data = base64.b64decode(content, validate=True)
            except ValueError:
                raise BadInputError(f"files[{i}] ({name}): content is not base64") from None
            files.append((name, data))
        if not files:
            raise BadInputError("nothing to import: give pem (PEM text) or files")
        entity = body.get("entity")
        if entity is not None and not isinstance(entity, str):
            raise BadInputError("entity must be the name of an end entity")
        result = await self._call(
            self.service.import_uploads, files, entity=entity, actor=self._actor(request)
        )
        return web.json_response(result.summary())

    # the blocklist of compromised keys

    async def list_blocked_keys(self, request):
        limit = self._limit(request, 100)
        if not 1 <= limit <= 1000:
            raise BadInputError("limit must be 1 to 1000")
        after = request.query.get("after")
        if after is not None and not _DIGEST.fullmatch(after):
            raise BadInputError("after must be a key's SHA-256: 64 lowercase hex digits")
        found = await self._call(self.service.blocked_keys, limit=limit, after=after)
        items = [r.summary() for r in found]
        after = items[-1]["spki_sha256"] if len(items) == limit else None
        return web.json_response({"items": items, "next_after": after})

    async def _keys_text(self, request, allowed: set[str]) -> tuple[bytes, dict]:
        body = await self._body(request)
        unknown = set(body) - allowed
        if unknown:
            raise BadInputError(f"unknown field(s): {', '.join(sorted(unknown))}")
        if "keys" not in body:
            raise BadInputError(
                "missing field: keys (PEM public keys, certificates or CSRs, or lines of "
                "64 hex digits: the SHA-256 of a SubjectPublicKeyInfo)"
            )
        return text_field(body, "keys"), body

    async def block_keys(self, request):
        text, body = await self._keys_text(request, {"keys", "note"})
        note = body.get("note")
        if not isinstance(note, str) or not note.strip():
            raise BadInputError("missing field: note (where these keys come from)")
        result = await self._call(self.service.block_keys, text, note, actor=self._actor(request))
        return web.json_response(result, status=201 if result["added"] else 200)

    async def check_blocked_keys(self, request):
        text, _ = await self._keys_text(request, {"keys"})
        items = await self._call(self.service.check_blocked, text)
        return web.json_response({"items": items, "listed": sum(i["listed"] for i in items)})

    # approvals

    def _issued_or_queued(self, result) -> web.Response:
        if isinstance(result, ApprovalRequest):
            return web.json_response({"request": result.summary()}, status=202)
        return web.json_response(self._enrollment(result), status=201)

    @staticmethod
    def _request_id(request: web.Request) -> int:
        return id_text(request.match_info["id"], "request id")

    async def list_requests(self, request):
        q = request.query
        limit = self._limit(request, 100)
        if not 1 <= limit <= 1000:
            raise BadInputError("limit must be 1 to 1000")
        found = await self._call(
            self.service.approvals.list,
            status=q.get("status"),
            after=id_param(q, "after"),
            limit=limit,
        )
        items = [r.summary() for r in found]
        return web.json_response(
            {"items": items, "next_after": str(items[-1]["id"]) if items else None}
        )

    async def get_request(self, request):
        found = await self._call(self.service.approvals.get, self._request_id(request))
        out = found.summary()
        if found.status == "done" and found.result_serial is not None:
            record = await self._call(
                self.service.certificate, found.result_ca, found.result_serial
            )
            out["certificate"] = record.summary(self.service.now())
            out["pem"] = record.certificate.public_bytes(Encoding.PEM).decode()
        return web.json_response(out)

    async def approve_request(self, request):
        result = await self._call(
            self.service.approve, self._request_id(request), actor=self._actor(request)
        )
        return web.json_response(result.summary())

    async def reject_request(self, request):
        body = await self._body(request)
        result = await self._call(
            self.service.reject,
            self._request_id(request),
            body.get("reason"),
            actor=self._actor(request),
        )
        return web.json_response(result.summary())

    async def request_pkcs12(self, request):
        body = await self._body(request)
        user = request[USER_KEY]
        data = await self._call(
            self.service.request_pkcs12,
            self._request_id(request),
            text_field(body, "passphrase"),
            actor=user.actor,
            administrator=user.role == ADMINISTRATOR,
        )
        return web.json_response({"pkcs12": base64.b64encode(data).decode()})

    async def list_users(self, request):
        users = await self._call(self.service.users.list)
        return web.json_response({"items": [u.summary() for u in users]})

    async def create_user(self, request):
        body = await self._body(request)
        if "name" not in body or "role" not in body:
            raise BadInputError("missing field(s): name and role")
        unknown = set(body) - {"name", "role", "token", "certificate"}
        if unknown:
            raise BadInputError(f"unknown field(s): {', '.join(sorted(unknown))}")
        certificate = text_field(body, "certificate")
        user, token = await self._call(
            self.service.create_user,
            body["name"],
            body["role"],
            with_token=bool(body.get("token", True)),
            certificate=certificate,
            actor=self._actor(request),
        )
        if isinstance(user, ApprovalRequest):
            return web.json_response({"request": user.summary(), "token": token}, status=202)
        return web.json_response({**user.summary(), "token": token}, status=201)

    async def update_user(self, request):
        body = await self._body(request)
        if len(body) != 1 or not set(body) <= {"status", "role"}:
            raise BadInputError("change one of status (active or disabled) and role")
        name, actor = request.match_info["name"], self._actor(request)
        if "status" in body:
            result = await self._call(
                self.service.set_user_status, name, body["status"], actor=actor
            )
        else:
            result = await self._call(self.service.set_user_role, name, body["role"], actor=actor)
        if isinstance(result, ApprovalRequest):
            return web.json_response({"request": result.summary()}, status=202)
        return web.json_response(result.summary())

    async def delete_user(self, request):
        name = request.match_info["name"]
        await self._call(self.service.delete_user, name, actor=self._actor(request))
        return web.json_response({"name": name, "deleted": True})

    async def rotate_token(self, request):
        return await self._rotate(request, request.match_info["name"])

    async def rotate_own_token(self, request):
        return await self._rotate(request, request[USER_KEY].name)

    async def _rotate(self, request, name: str):
        result, token = await self._call(
            self.service.rotate_user_token, name, actor=self._actor(request)
        )
        if isinstance(result, ApprovalRequest):
            return web.json_response({"request": result.summary(), "token": token}, status=202)
        return web.json_response({**result.summary(), "token": token})

    async def list_audit(self, request):
        limit = self._limit(request, 100)
        if not 1 <= limit <= 1000:
            raise BadInputError("limit must be 1 to 1000")

        def read():
            with self.service.store.read() as conn:
                rows = conn.execute(
                    select(audit_log).order_by(audit_log.c.seq.desc()).limit(limit)
                ).all()
            return [
                {
                    "seq": r.seq,
                    "at_ms": r.at_ms,
                    "actor": r.actor,
                    "action": r.action,
                    "target": r.target,
                    "result": r.result,
                    "detail": json.loads(r.detail),
                }
                for r in reversed(rows)
            ]

        return web.json_response({"items": await self._call(read)})
