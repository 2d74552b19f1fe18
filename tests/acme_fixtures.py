"""An ACME server on 127.0.0.1 over a test PKI, an http-01 responder, and
a small ACME client (josepy signs; every request is built here, so tests
can also send what a correct client never would)."""

import base64
import hashlib
import http.client
import json
import time
import urllib.parse
from dataclasses import dataclass, field, replace

import josepy
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from acmesrv.server import AcmeServer, start
from acmesrv.service import AcmeService
from acmesrv.settings import AcmeSettings, Directory
from acmesrv.validation import ValidationSettings
from common import listen
from ra.approvals import ApprovalPolicy
from ra.service import RAService
from tests.conftest import PASSPHRASE

ENTITY = {
    "name": "web",
    "email": "ops@example.com",
    "ca": "issuing",
    "profile": "tls-server",
    "subject_template": "CN={identifier}",
    "allowed_sans": ["dns:*.example.com", "dns:example.com", "ip:127.0.0.1", "ip:127.0.0.2"],
}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Reply:
    status: int
    body: object
    headers: http.client.HTTPMessage
    raw: bytes

    @property
    def problem(self) -> str | None:
        if isinstance(self.body, dict) and str(self.body.get("type", "")).startswith(
            "urn:ietf:params:acme:error:"
        ):
            return self.body["type"].rpartition(":")[2]
        return None

    @property
    def location(self) -> str | None:
        return self.headers.get("Location")


class Client:
    """One ACME account's client. ``alg``: ES256, ES384, RS256 or EdDSA."""

    def __init__(self, directory_url: str, alg: str = "ES256"):
        self.directory_url = directory_url
        self.alg = alg
        self.key = new_account_key(alg)
        self.kid: str | None = None
        self.nonce: str | None = None
        self.directory = self.get(directory_url).body

    # -- transport ------------------------------------------------------------------

    def request(self, method: str, url: str, body: bytes | None = None, headers=None) -> Reply:
        parts = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        raw = response.read()
        conn.close()
        parsed = None
        ctype = response.getheader("Content-Type", "")
        if ctype.startswith(("application/json", "application/problem+json")) and raw:
            parsed = json.loads(raw)
        reply = Reply(response.status, parsed, response.headers, raw)
        if response.getheader("Replay-Nonce"):
            self.nonce = response.getheader("Replay-Nonce")
        return reply

    def get(self, url: str) -> Reply:
        return self.request("GET", url)

    def new_nonce(self) -> str:
        self.request("HEAD", self.directory["newNonce"])
        return self.nonce

    def jwk(self, key=None) -> dict:
        return public_jwk(key or self.key)

    def protected(self, url: str, *, use_jwk: bool = False, nonce: str | None = None) -> dict:
        header = {"alg": self.alg, "url": url, "nonce": nonce or self.nonce or self.new_nonce()}
        if use_jwk or self.kid is None:
            header["jwk"] = self.jwk()
        else:
            header["kid"] = self.kid
        return header

    def signed_body(self, protected: dict, payload, key=None, alg=None) -> bytes:
        encoded_header = b64(json.dumps(protected).encode())
        encoded_payload = "" if payload is None else b64(json.dumps(payload).encode())
        signing_input = f"{encoded_header}.{encoded_payload}".encode()
        signature = sign(key or self.key, alg or protected["alg"], signing_input)
        return json.dumps(
            {"protected": encoded_header, "payload": encoded_payload, "signature": b64(signature)}
        ).encode()

    def post(self, url: str, payload=None, *, use_jwk: bool = False, retry: bool = True) -> Reply:
        """A signed POST (payload None: POST-as-GET); a badNonce is retried
        once with the nonce the error brought, as RFC 8555 6.5 asks."""
        body = self.signed_body(self.protected(url, use_jwk=use_jwk), payload)
        self.nonce = None
        reply = self.send(url, body)
        if reply.problem == "badNonce" and retry:
            return self.post(url, payload, use_jwk=use_jwk, retry=False)
        return reply

    def send(self, url: str, body: bytes, content_type: str = "application/jose+json") -> Reply:
        return self.request("POST", url, body, {"Content-Type": content_type})

    # -- the flow ------------------------------------------------------------------------

    def register(self, eab: tuple[str, str] | None = None, **extra) -> Reply:
        url = self.directory["newAccount"]
        payload = {"termsOfServiceAgreed": True, "contact": ["mailto:ops@example.com"], **extra}
        if eab is not None:
            payload["externalAccountBinding"] = eab_jws(eab[0], eab[1], self.jwk(), url)
        reply = self.post(url, payload, use_jwk=True)
        if reply.status in (200, 201):
            self.kid = reply.location
        return reply

    def order(self, *names: str, **extra) -> Reply:
        identifiers = [{"type": "ip" if _is_ip(n) else "dns", "value": n} for n in names]
        return self.post(self.directory["newOrder"], {"identifiers": identifiers, **extra})

    def key_authorization(self, token: str) -> str:
        return f"{token}.{thumbprint(self.jwk())}"

    def poll(self, url: str, until: tuple[str, ...], seconds: float = 20) -> Reply:
        deadline = time.monotonic() + seconds
        while True:
            reply = self.post(url)
            if reply.body.get("status") in until or time.monotonic() > deadline:
                return reply
            time.sleep(0.05)

    def issue(self, responder, *names: str, key=None, challenge="http-01", **extra):
        """The whole flow; returns (order reply, PEM chain bytes, CSR key)."""
        order = self.order(*names, **extra)
        assert order.status == 201, order.body
        order_url = order.location
        for authz_url in order.body["authorizations"]:
            authz = self.post(authz_url).body
            chall = next(c for c in authz["challenges"] if c["type"] == challenge)
            responder.tokens[chall["token"]] = self.key_authorization(chall["token"])
            answered = self.post(chall["url"], {})
            assert answered.status == 200, answered.body
            done = self.poll(authz_url, ("valid", "invalid"))
            assert done.body["status"] == "valid", done.body
        key = key or ec.generate_private_key(ec.SECP256R1())
        csr = make_acme_csr(key, names)
        final = self.post(order.body["finalize"], {"csr": b64(csr)})
        assert final.status == 200, final.body
        final = self.poll(order_url, ("valid", "invalid"))
        assert final.body["status"] == "valid", final.body
        cert = self.post(final.body["certificate"])
        assert cert.status == 200
        assert cert.headers["Content-Type"] == "application/pem-certificate-chain"
        return final, cert.raw, key


def _is_ip(name: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def new_account_key(alg: str):
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "ES384":
        return ec.generate_private_key(ec.SECP384R1())
    if alg == "RS256":
        return rsa.generate_private_key(65537, 2048)
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(alg)


def public_jwk(key) -> dict:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return {"kty": "OKP", "crv": "Ed25519", "x": b64(raw)}
    return josepy.JWK.load(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).to_partial_json()


def thumbprint(jwk: dict) -> str:
    members = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}
    text = json.dumps(
        {k: jwk[k] for k in members[jwk["kty"]]}, sort_keys=True, separators=(",", ":")
    )
    return b64(hashlib.sha256(text.encode()).digest())


def sign(key, alg: str, data: bytes) -> bytes:
    if alg == "EdDSA":
        return key.sign(data)
    if alg.startswith("HS"):
        mac = hmac.HMAC(
            key, {"HS256": hashes.SHA256(), "HS384": hashes.SHA384(), "HS512": hashes.SHA512()}[alg]
        )
        mac.update(data)
        return mac.finalize()
    return josepy.JWASignature.from_json(alg).sign(key, data)


def eab_jws(key_id: str, mac_key_b64: str, account_jwk: dict, url: str, alg="HS256") -> dict:
    mac_key = base64.urlsafe_b64decode(mac_key_b64 + "=" * (-len(mac_key_b64) % 4))
    protected = b64(json.dumps({"alg": alg, "kid": key_id, "url": url}).encode())
    payload = b64(json.dumps(account_jwk).encode())
    mac = sign(mac_key, alg, f"{protected}.{payload}".encode())
    return {"protected": protected, "payload": payload, "signature": b64(mac)}


def make_acme_csr(key, names, cn: str | None = None) -> bytes:
    import ipaddress

    sans = [
        x509.IPAddress(ipaddress.ip_address(n)) if _is_ip(n) else x509.DNSName(n) for n in names
    ]
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn or names[0])])
    )
    builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.DER)


# -- the http-01 responder ---------------------------------------------------------------


@dataclass
class Responder:
    port: int
    tokens: dict = field(default_factory=dict)
    runner: object = None


async def start_responder() -> Responder:
    responder = Responder(0)

    async def answer(request: web.Request) -> web.Response:
        value = responder.tokens.get(request.match_info["token"])
        if value is None:
            return web.Response(status=404, text="no such token")
        return web.Response(text=value)

    app = web.Application()
    app.router.add_get("/.well-known/acme-challenge/{token}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = listen.bind_listener("127.0.0.1", 0, 64)
    site = web.SockSite(runner, sock)
    await site.start()
    responder.port = sock.getsockname()[1]
    responder.runner = runner
    return responder


# -- the server ---------------------------------------------------------------------------


@dataclass
class AcmeEnv:
    service: AcmeService
    server: AcmeServer
    port: int
    responder: Responder
    eab: tuple[str, str]  # (key id, MAC key) for ENTITY, any directory

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def directory_url(self, name: str = "issuing") -> str:
        return f"{self.base}/acme/{name}/directory"

    def client(self, name: str = "issuing", alg: str = "ES256", register: bool = True) -> Client:
        client = Client(self.directory_url(name), alg)
        if register:
            eab = (
                self.new_eab() if self.service.directories[name].external_account_required else None
            )
            reply = client.register(eab)
            assert reply.status == 201, reply.body
        return client

    def new_eab(self, entity: str = "web", directory: str | None = None) -> tuple[str, str]:
        return self.service.create_eab_key(entity, directory=directory, actor="test")


def start_acme(
    loop, pki, *, policy=None, settings: AcmeSettings | None = None, directories=None, entity=None
) -> tuple[AcmeEnv, list]:
    """The ACME server over ``pki`` (a CAService with CAs root and issuing)
    with the end entity ENTITY, a responder for http-01, and directories
    ``issuing`` (EAB required) and ``open`` (EAB optional, for ENTITY)."""
    ra = RAService(pki, policy or ApprovalPolicy())
    ra.create_entity(**(entity or ENTITY))
    responder = loop.run(start_responder())
    settings = settings or AcmeSettings()
    settings = replace(
        settings, http_port=responder.port, caa="off" if settings.caa == "auto" else settings.caa
    )
    if directories is None:
        directories = {
            "issuing": Directory("issuing", "issuing", ("tls-server", "tls-client")),
            "open": Directory("open", "issuing", ("tls-server",), False, "web"),
        }
    sock = listen.bind_listener("127.0.0.1", 0, 64)
    port = sock.getsockname()[1]
    service = AcmeService(
        ra, settings, directories, f"http://127.0.0.1:{port}", passphrase=PASSPHRASE.encode()
    )
    server = AcmeServer(
        service,
        validation_settings=ValidationSettings(
            resolver=settings.resolver,
            http_port=settings.http_port,
            tls_port=settings.tls_port,
            timeout=settings.validation_timeout,
        ),
    )
    runner = loop.run(start(server, sock))
    eab = service.create_eab_key("web", directory=None, actor="test")
    return AcmeEnv(service, server, port, responder, eab), [runner, responder.runner]


def stop_acme(loop, runners) -> None:
    for runner in runners:
        loop.run(runner.cleanup())
