"""A small asyncio ACME client (RFC 8555) for the issuance benchmark, and the
http-01 responder its clients share.

One ``AcmeClient`` is one account (an ES256 P-256 key) with one HTTP
session; ``issue(name)`` runs one certificate's whole flow for one dns
identifier and returns how long each step took:

    new_order   POST newOrder (7.4)
    authz       POST-as-GET the authorization (7.5)
    challenge   publish the key authorization, POST {} to the http-01
                challenge (7.5.1), poll the authorization until valid
    finalize    POST the CSR to finalize (7.4), poll the order until valid
    download    POST-as-GET the certificate, application/pem-certificate-chain
                (7.4.2); its first certificate must name ``name`` and hold the
                CSR's key

Every poll is bounded in count and in time and waits as long as the
server's Retry-After asks (8.2 and 7.5.1), within the certificate's time
budget. A ``badNonce`` error is retried once with the nonce that came with
the error (6.5).
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import ssl
import time
from dataclasses import dataclass, field

import aiohttp
import josepy
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

STEPS = ("new_order", "authz", "challenge", "finalize", "download")
BAD_NONCE = "urn:ietf:params:acme:error:badNonce"
CHALLENGE_PREFIX = b"/.well-known/acme-challenge/"

# Polls when the server names no Retry-After: start short (a fast server
# validates in milliseconds) and back off to a ceiling.
FIRST_POLL = 0.01
POLL_CEILING = 1.0
MAX_POLLS = 200


def b64(data: bytes) -> str:
    """base64url without padding (RFC 8555 6.1, RFC 7515 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class AcmeError(Exception):
    """An ACME problem document (RFC 8555 6.7), or a flow that went wrong."""

    def __init__(self, kind: str, detail: str = "", status: int | None = None):
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.status = status


@dataclass
class Response:
    status: int
    headers: dict
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Issued:
    name: str
    steps: dict[str, float]
    total: float
    polls: int
    chain: bytes = field(repr=False)


def retry_after(headers, default: float) -> float:
    """Seconds from a Retry-After header (delta-seconds or an HTTP-date, RFC
    9110 10.2.3); ``default`` when absent or unreadable."""
    value = headers.get("Retry-After")
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, when.timestamp() - time.time())


def csr_for(name: str) -> tuple[bytes, bytes]:
    """A CSR (DER) for ``name`` with a fresh P-256 key: CN and the one SAN;
    and the key's public point, to find it again in the certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return csr.public_bytes(serialization.Encoding.DER), point


def check_leaf(chain: bytes, name: str, point: bytes) -> None:
    """The chain's first certificate is for ``name`` and the CSR's key."""
    try:
        leaf = x509.load_pem_x509_certificate(chain)
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        key = leaf.public_key()
    except (ValueError, x509.ExtensionNotFound) as exc:
        raise AcmeError("download", f"unreadable certificate: {exc}") from exc
    if names.get_values_for_type(x509.DNSName) != [name]:
        raise AcmeError("download", f"certificate names {names}, not {name}")
    if not isinstance(key, ec.EllipticCurvePublicKey) or point != key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    ):
        raise AcmeError("download", "certificate is not for the CSR's key")


class _Http01(asyncio.Protocol):
    """One connection to the responder: HTTP/1.1 GETs, keep-alive unless the
    validator asks to close. Raw asyncio, not aiohttp's server: the
    responder shares the load generator's core, and every validation (Pebble
    makes three per challenge) costs it a connection and a request."""

    def __init__(self, responder: Responder):
        self.responder = responder
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            method, _, rest = lines[0].partition(b" ")
            target = rest.rpartition(b" ")[0]
            close = any(
                line.lower().startswith(b"connection:") and b"close" in line.lower()
                for line in lines[1:]
            )
            answer = None
            if method in (b"GET", b"HEAD") and target.startswith(CHALLENGE_PREFIX):
                token = target[len(CHALLENGE_PREFIX) :].decode("ascii", "replace")
                answer = self.responder.tokens.get(token)
            if answer is None:
                self.responder.missed += 1
                status, body = b"404 Not Found", b""
            else:
                self.responder.served += 1
                status, body = b"200 OK", answer.encode()
            self.transport.write(
                b"HTTP/1.1 %s\r\nContent-Type: application/octet-stream\r\n"
                b"Content-Length: %d\r\n%s\r\n%s"
                % (
                    status,
                    len(body),
                    b"Connection: close\r\n" if close else b"",
                    b"" if method == b"HEAD" else body,
                )
            )
            if close:
                self.transport.close()
                return
        if len(self.buffer) > 16384:  # no request head is this long
            self.transport.close()


class Responder:
    """The http-01 responder (RFC 8555 8.3): GET
    /.well-known/acme-challenge/{token} answers the key authorization from an
    in-memory dict every client of this process shares."""

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}
        self.served = 0
        self.missed = 0
        self._server: asyncio.Server | None = None

    async def start(self, port: int, host: str = "127.0.0.1") -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Http01(self), host, port, backlog=1024, reuse_address=True
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def ssl_context(directory: str, ca_file: str | None) -> ssl.SSLContext | bool:
    """TLS verified against ``ca_file`` for https (the system store without
    one); plain http needs none."""
    if directory.startswith("http://"):
        return False
    return ssl.create_default_context(cafile=ca_file)


class AcmeClient:
    """One account and its session. Requests are sequential (one nonce in hand)."""

    def __init__(
        self,
        directory_url: str,
        responder: Responder,
        *,
        ssl_context: ssl.SSLContext | bool = False,
        timeout: float = 30.0,
    ):
        self.directory_url = directory_url
        self.responder = responder
        self._ssl = ssl_context
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.jwk = josepy.JWKEC(key=self.key)
        self.thumbprint = b64(self.jwk.thumbprint(hash_function=hashes.SHA256))
        self.directory: dict = {}
        self.kid: str | None = None
        self.nonce: str | None = None
        self.bad_nonces = 0
        self.retry_afters = 0
        self.requests = 0
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AcmeClient:
        connector = aiohttp.TCPConnector(ssl=self._ssl, limit=4)
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout, cookie_jar=aiohttp.DummyCookieJar()
        )
        return self

    async def __aexit__(self, *exc) -> None:
        if self.session is not None:
            await self.session.close()

    # ------------------------------------------------------------ transport

    async def _request(self, method: str, url: str, **kwargs) -> Response:
        self.requests += 1
        async with self.session.request(method, url, **kwargs) as r:
            body = await r.read()
            headers = r.headers
        if "Replay-Nonce" in headers:
            self.nonce = headers["Replay-Nonce"]  # 7.2: every response may carry one
        return Response(r.status, headers, body)

    async def _new_nonce(self) -> str:
        r = await self._request("HEAD", self.directory["newNonce"])
        if r.status not in (200, 204) or not self.nonce:
            raise AcmeError("newNonce", f"HTTP {r.status}, no Replay-Nonce", r.status)
        return self.nonce

    def _jws(self, url: str, payload: dict | None, nonce: str) -> bytes:
        """A flattened JWS (RFC 8555 6.2): ES256, the nonce and url in the
        protected header, jwk before the account exists and kid after.
        ``payload`` None is POST-as-GET (6.3: an empty payload)."""
        protected = {"alg": "ES256", "nonce": nonce, "url": url}
        if self.kid is None:
            protected["jwk"] = self.jwk.public_key().to_partial_json()
        else:
            protected["kid"] = self.kid
        encoded_protected = b64(json.dumps(protected).encode())
        encoded_payload = "" if payload is None else b64(json.dumps(payload).encode())
        der = self.key.sign(
            f"{encoded_protected}.{encoded_payload}".encode(), ec.ECDSA(hashes.SHA256())
        )
        r, s = decode_dss_signature(der)  # RFC 7518 3.4: R || S, 32 octets each
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        jws = {"protected": encoded_protected, "payload": encoded_payload}
        return json.dumps({**jws, "signature": b64(signature)}).encode()

    async def post(
        self, url: str, payload: dict | None, *, accept: str | None = None, expect=(200, 201)
    ) -> Response:
        """A signed POST; one retry on badNonce with the nonce from the error."""
        headers = {"Content-Type": "application/jose+json"}
        if accept:
            headers["Accept"] = accept
        for attempt in (1, 2):
            nonce = self.nonce or await self._new_nonce()
            self.nonce = None  # used: a nonce is good for one request
            body = self._jws(url, payload, nonce)
            r = await self._request("POST", url, data=body, headers=headers)
            if r.status in expect:
                return r
            problem = _problem(r)
            if problem[0] == BAD_NONCE and attempt == 1:
                self.bad_nonces += 1
                continue  # self.nonce holds the error's Replay-Nonce (6.5)
            raise AcmeError(problem[0], problem[1], r.status)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------ the flow

    async def register(self) -> None:
        """The directory, a nonce and the account (7.1.1, 7.2, 7.3)."""
        r = await self._request("GET", self.directory_url)
        if r.status != 200:
            raise AcmeError("directory", f"HTTP {r.status}", r.status)
        self.directory = r.json()
        r = await self.post(self.directory["newAccount"], {"termsOfServiceAgreed": True})
        self.kid = r.headers.get("Location")
        if not self.kid:
            raise AcmeError("newAccount", "no Location (account URL)")

    async def _poll(self, url: str, done: set[str], deadline: float, what: str) -> tuple[dict, int]:
        """POST-as-GET ``url`` until its status is in ``done``; bounded in
        polls and by ``deadline``. Returns the object and the polls made."""
        wait = FIRST_POLL
        for polls in range(1, MAX_POLLS + 1):
            r = await self.post(url, None)
            body = r.json()
            status = body.get("status")
            if status in done:
                return body, polls
            if status in ("invalid", "revoked", "deactivated", "expired"):
                raise AcmeError(f"{what} {status}", json.dumps(body.get("error") or body)[:300])
            pause = retry_after(r.headers, wait)
            if "Retry-After" in r.headers:  # the server sets the pace here
                self.retry_afters += 1
            if time.monotonic() + pause > deadline:
                raise AcmeError(f"{what} timeout", f"still {status} after {polls} polls")
            await asyncio.sleep(pause)
            wait = min(wait * 2, POLL_CEILING)
        raise AcmeError(f"{what} timeout", f"still {status} after {MAX_POLLS} polls")

    async def issue(self, name: str, budget: float = 60.0) -> Issued:
        """One certificate for the dns name ``name``, within ``budget`` seconds."""
        started = time.perf_counter()
        deadline = time.monotonic() + budget
        steps: dict[str, float] = {}
        polls = 0

        mark = time.perf_counter()
        r = await self.post(
            self.directory["newOrder"], {"identifiers": [{"type": "dns", "value": name}]}
        )
        order_url = r.headers.get("Location")
        order = r.json()
        if not order_url or len(order.get("authorizations", ())) != 1:
            raise AcmeError("newOrder", "no order URL or not one authorization")
        steps["new_order"] = time.perf_counter() - mark

        mark = time.perf_counter()
        authz_url = order["authorizations"][0]
        authz = (await self.post(authz_url, None)).json()
        steps["authz"] = time.perf_counter() - mark

        mark = time.perf_counter()
        if authz.get("status") != "valid":  # 7.1.3: a reused authorization needs no challenge
            offered = authz.get("challenges", ())
            challenge = next((c for c in offered if c["type"] == "http-01"), None)
            if challenge is None:
                raise AcmeError("authz", "no http-01 challenge offered")
            token = challenge["token"]
            self.responder.tokens[token] = f"{token}.{self.thumbprint}"  # 8.1
            try:
                await self.post(challenge["url"], {})  # 7.5.1: {} says "ready"
                _, n = await self._poll(authz_url, {"valid"}, deadline, "authz")
                polls += n
            finally:
                self.responder.tokens.pop(token, None)
        steps["challenge"] = time.perf_counter() - mark

        mark = time.perf_counter()
        csr, point = csr_for(name)
        order = (await self.post(order["finalize"], {"csr": b64(csr)})).json()
        if order.get("status") != "valid":
            order, n = await self._poll(order_url, {"valid"}, deadline, "order")
            polls += n
        steps["finalize"] = time.perf_counter() - mark

        mark = time.perf_counter()
        r = await self.post(order["certificate"], None, accept="application/pem-certificate-chain")
        if not r.body.startswith(b"-----BEGIN CERTIFICATE-----"):
            raise AcmeError("download", "not a PEM certificate chain")
        check_leaf(r.body, name, point)
        steps["download"] = time.perf_counter() - mark
        return Issued(name, steps, time.perf_counter() - started, polls, r.body)


def _problem(r: Response) -> tuple[str, str]:
    """The type and detail of a problem document (RFC 7807), or the HTTP status."""
    try:
        body = r.json()
        return body.get("type", f"HTTP {r.status}"), str(body.get("detail", ""))
    except ValueError:
        return f"HTTP {r.status}", r.body[:200].decode(errors="replace")
