"""ACME challenge validation (acmesrv/validation.py) against real servers on
127.0.0.1: pebble-challtestsrv (DNS, http-01, tls-alpn-01 and CAA data), and
servers of our own where a test needs a misbehaving one (a body that never
ends, an answer that never comes, a certificate that is wrong in one way, a
DNS server with NXDOMAIN and critical CAA flags)."""

import asyncio
import ipaddress
import json
import secrets
import socket
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from acmesrv.validation import (
    ACME_IDENTIFIER_OID,
    ValidationError,
    ValidationSettings,
    check_caa,
    key_authorization_digest,
    resolve_addresses,
    validate,
)
from tests.conftest import free_port, need

THUMBPRINT = "hTr2Vw0jFAUe3ZxDmdA4m1yXy9yCDZ1D3QOUMYjGKq4"
ISSUER = ("ca.revoca.test",)
ACCOUNT = "https://acme.revoca.test/acme/acct/1"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def key_authorization(token: str) -> str:
    return f"{token}.{THUMBPRINT}"


def new_name(label: str = "www") -> str:
    """A name no other test uses (the challenge server lives for the module)."""
    return f"{label}.t{secrets.token_hex(4)}.example.com"


# -- pebble-challtestsrv ----------------------------------------------------------


@dataclass
class Challtestsrv:
    dns: int
    http: int
    tls: int
    management: int
    https: int

    def post(self, endpoint: str, **body) -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.management}/{endpoint}",
            data=json.dumps(body).encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200, (endpoint, response.status)

    @property
    def settings(self) -> ValidationSettings:
        return ValidationSettings(
            resolver=("127.0.0.1", self.dns), http_port=self.http, tls_port=self.tls, timeout=5.0
        )


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def cts(tmp_path_factory):
    """pebble-challtestsrv on free ports of 127.0.0.1; A queries answer
    127.0.0.1, AAAA queries nothing. Its https port serves the http-01
    answers over TLS (its tls-alpn-01 port answers acme-tls/1 only)."""
    exe = need("pebble-challtestsrv", "pebble")
    server = Challtestsrv(*(free_port() for _ in range(5)))
    log = tmp_path_factory.mktemp("challtestsrv") / "log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [
                exe,
                "-dns01",
                f"127.0.0.1:{server.dns}",
                "-http01",
                f"127.0.0.1:{server.http}",
                "-https01",
                f"127.0.0.1:{server.https}",
                "-tlsalpn01",
                f"127.0.0.1:{server.tls}",
                "-management",
                f"127.0.0.1:{server.management}",
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        for _ in range(100):
            if _answers(server.management) or process.poll() is not None:
                break
            time.sleep(0.1)
        if not _answers(server.management):
            process.kill()
            process.wait(5)
            pytest.fail(f"pebble-challtestsrv did not start: {log.read_text()}")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def failure(coro) -> ValidationError:
    """The ValidationError that ``coro`` raises."""

    async def run():
        with pytest.raises(ValidationError) as caught:
            await coro
        return caught.value

    return asyncio.run(run())


# -- http-01 ------------------------------------------------------------------


def test_http01_succeeds(cts):
    token, name = new_token(), new_name()
    cts.post("add-http01", token=token, content=key_authorization(token))
    asyncio.run(validate("http-01", "dns", name, token, key_authorization(token), cts.settings))


def test_http01_for_an_ip_identifier(cts):
    token = new_token()
    cts.post("add-http01", token=token, content=key_authorization(token))
    asyncio.run(
        validate("http-01", "ip", "127.0.0.1", token, key_authorization(token), cts.settings)
    )


def test_http01_wrong_body(cts):
    token, name = new_token(), new_name()
    cts.post("add-http01", token=token, content="not\x01it")
    error = failure(validate("http-01", "dns", name, token, key_authorization(token), cts.settings))
    assert error.kind == "incorrectResponse"
    assert '"not\\x01it"' in error.detail and name in error.detail


def test_http01_unknown_token_answers_an_empty_body(cts):
    """challtestsrv answers 200 and no body for a token it does not know."""
    token, name = new_token(), new_name()
    error = failure(validate("http-01", "dns", name, token, key_authorization(token), cts.settings))
    assert error.kind == "incorrectResponse"
    url = f"http://{name}:{cts.http}/.well-known/acme-challenge/{token}"
    assert error.detail == f'{url} answered "", not the key authorization'


def test_http01_nobody_listening(cts):
    token = new_token()
    settings = replace(cts.settings, http_port=free_port())
    error = failure(
        validate("http-01", "dns", new_name(), token, key_authorization(token), settings)
    )
    assert error.kind == "connection"
    assert (
        error.detail
        == f"could not connect to 127.0.0.1 port {settings.http_port}: Connection refused"
    )


@pytest.mark.parametrize("explicit_port", [True, False])
def test_https_redirect_to_the_tls_port(cts, explicit_port):
    """A redirect to https goes to tls_port, named or not (443 in production)."""
    token, name = new_token(), new_name()
    target = new_token()
    authority = f"{name}:{cts.https}" if explicit_port else name
    cts.post("add-http01", token=target, content=key_authorization(token))
    cts.post(
        "add-redirect",
        path=f"/.well-known/acme-challenge/{token}",
        targetURL=f"https://{authority}/.well-known/acme-challenge/{target}",
    )
    settings = replace(cts.settings, tls_port=cts.https)
    asyncio.run(validate("http-01", "dns", name, token, key_authorization(token), settings))


@pytest.mark.parametrize(
    ("target", "detail"),
    [
        (
            "http://{name}:8080/x",
            "redirect to port 8080 refused: only ports {http} (http) and {tls} (https)",
        ),
        (
            "http://{name}:{tls}/x",
            "redirect to http on port {tls} refused: only ports {http} (http) and {tls} (https)",
        ),
        ("http://other.example.net:{http}/x", "redirect to other.example.net refused: only to"),
        ("ftp://{name}/x", "refused: only http and https are followed"),
    ],
    ids=["another-port", "http-to-tls-port", "another-host", "another-scheme"],
)
def test_http01_refused_redirects(cts, target, detail):
    token, name = new_token(), new_name()
    ports = {"name": name, "http": cts.http, "tls": cts.tls}
    cts.post(
        "add-redirect",
        path=f"/.well-known/acme-challenge/{token}",
        targetURL=target.format(**ports),
    )
    error = failure(validate("http-01", "dns", name, token, key_authorization(token), cts.settings))
    assert error.kind == "connection"
    assert detail.format(**ports) in error.detail


def test_http01_redirect_loop(cts):
    token, name = new_token(), new_name()
    path = f"/.well-known/acme-challenge/{token}"
    cts.post("add-redirect", path=path, targetURL=f"http://{name}:{cts.http}{path}")
    settings = replace(cts.settings, max_redirects=3)
    error = failure(validate("http-01", "dns", name, token, key_authorization(token), settings))
    assert error.kind == "connection"
    assert error.detail.startswith("more than 3 redirects")


# -- http-01 against servers of our own ----------------------------------------


class Server:
    """An asyncio TCP server on 127.0.0.1 running ``handler(reader,
    writer)``; closing it ends every connection it still holds."""

    def __init__(self, handler, ssl_context=None, host="127.0.0.1"):
        self.handler = handler
        self.ssl_context = ssl_context
        self.host = host
        self.tasks: set[asyncio.Task] = set()

    async def __aenter__(self):
        self.server = await asyncio.start_server(self.serve, self.host, 0, ssl=self.ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def serve(self, reader, writer):
        self.tasks.add(asyncio.current_task())
        try:
            await asyncio.wait_for(self.handler(reader, writer), 10)
        except (OSError, asyncio.CancelledError, TimeoutError, ssl.SSLError):
            pass
        finally:
            writer.transport.abort()

    async def __aexit__(self, *exc):
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()


async def read_request(reader) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)


async def validate_against(handler, cts, token, *, timeout=5.0, name=None):
    """validate() http-01 for a name that resolves to 127.0.0.1, at our
    server running ``handler``."""
    async with Server(handler) as server:
        settings = replace(cts.settings, http_port=server.port, timeout=timeout)
        name = name or new_name()
        await validate("http-01", "dns", name, token, key_authorization(token), settings)


def chunked(body: bytes, size: int = 7) -> bytes:
    parts = [
        b"%x;ext=1\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size])
        for i in range(0, len(body), size)
    ]
    return b"".join(parts) + b"0\r\nX-Trailer: yes\r\n\r\n"


@pytest.mark.parametrize("framing", ["content-length", "chunked", "close"])
def test_http01_body_framings(cts, framing):
    token = new_token()
    body = key_authorization(token).encode() + b"\r\n  \n"
    seen = []

    async def handler(reader, writer):
        seen.append(await read_request(reader))
        if framing == "content-length":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        elif framing == "chunked":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(body))
        else:
            writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body)
        await writer.drain()

    asyncio.run(validate_against(handler, cts, token))
    request = seen[0].decode()
    assert request.startswith(f"GET /.well-known/acme-challenge/{token} HTTP/1.1\r\n")
    assert "\r\nHost: www.t" in request


def test_http01_relative_redirect(cts):
    token = new_token()
    seen = []

    async def handler(reader, writer):
        seen.append((await read_request(reader)).split(b"\r\n")[0])
        if len(seen) == 1:
            writer.write(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /elsewhere?x=1\r\n\r\n")
        else:
            body = key_authorization(token).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()

    asyncio.run(validate_against(handler, cts, token))
    assert seen[1] == b"GET /elsewhere?x=1 HTTP/1.1"


def test_http01_not_found(cts):
    token, name = new_token(), new_name()

    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found")
        await writer.drain()

    error = failure(validate_against(handler, cts, token, name=name))
    assert error.kind == "unauthorized"
    assert error.detail.startswith(f"http://{name}:")
    assert error.detail.endswith(f"/.well-known/acme-challenge/{token} answered 404")


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_http01_ipv6_host_header(cts):
    """An IPv6 identifier's Host header is in brackets (RFC 3986 3.2.2)."""
    if not ipv6_loopback():
        pytest.skip("no IPv6 on the loopback")
    token = new_token()
    seen = []

    async def handler(reader, writer):
        seen.append(await read_request(reader))
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    async def scenario():
        async with Server(handler, host="::1") as server:
            settings = replace(cts.settings, http_port=server.port)
            with pytest.raises(ValidationError) as caught:
                await validate("http-01", "ip", "::1", token, key_authorization(token), settings)
        return caught.value, server.port

    error, port = asyncio.run(scenario())
    url = f"http://[::1]:{port}/.well-known/acme-challenge/{token}"
    assert error.detail == f"{url} answered 404"
    assert f"\r\nHost: [::1]:{port}\r\n".encode() in seen[0]


GIB = 1 << 30


@pytest.mark.parametrize("framing", ["content-length", "chunked", "close"])
def test_http01_gigabyte_body_is_refused_at_the_limit(cts, framing):
    token = new_token()
    sent = []

    async def handler(reader, writer):
        await read_request(reader)
        head = {
            "content-length": b"Content-Length: %d\r\n" % GIB,
            "chunked": b"Transfer-Encoding: chunked\r\n",
            "close": b"",
        }[framing]
        writer.write(b"HTTP/1.1 200 OK\r\n" + head + b"\r\n")
        block = b"a" * 65536
        piece = b"%x\r\n%s\r\n" % (len(block), block) if framing == "chunked" else block
        total = 0
        while total < GIB:  # until the client hangs up, 1 GiB at most
            writer.write(piece)
            await writer.drain()
            total += len(block)
            sent.append(len(block))

    start = time.monotonic()
    error = failure(validate_against(handler, cts, token))
    assert error.kind == "connection"
    assert "the response is larger than 8192 bytes" in error.detail
    assert time.monotonic() - start < 3
    assert sum(sent) < 64 * 1024 * 1024  # the client stopped reading, far from 1 GiB


def test_http01_headers_are_limited(cts):
    token = new_token()

    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n")
        for _ in range(10_000):  # 600 KB of headers at most
            writer.write(b"X-Padding: " + b"p" * 48 + b"\r\n")
            await writer.drain()

    error = failure(validate_against(handler, cts, token))
    assert error.kind == "connection"
    assert "the response headers are larger than 16384 bytes" in error.detail


def test_http01_server_that_never_answers(cts):
    token = new_token()

    async def handler(reader, writer):
        await read_request(reader)
        await asyncio.sleep(30)

    start = time.monotonic()
    error = failure(validate_against(handler, cts, token, timeout=1.0))
    assert time.monotonic() - start < 3
    assert error.kind == "connection"
    assert error.detail.endswith("timed out after 1 s")


def test_http01_trickling_server(cts):
    token = new_token()
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n" + b"x" * 200

    async def handler(reader, writer):
        await read_request(reader)
        for byte in answer:  # one byte every 50 ms: 12 s in all
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.05)

    start = time.monotonic()
    error = failure(validate_against(handler, cts, token, timeout=1.0))
    assert time.monotonic() - start < 3
    assert error.kind == "connection" and "timed out after 1 s" in error.detail


def test_http01_connection_closed_without_an_answer(cts):
    token = new_token()

    async def handler(reader, writer):
        await read_request(reader)

    error = failure(validate_against(handler, cts, token))
    assert error.kind == "connection"
    assert "closed the connection without answering" in error.detail


# -- dns-01 ---------------------------------------------------------------------


def txt_value(token: str) -> str:
    import base64

    digest = key_authorization_digest(key_authorization(token))
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_key_authorization_digest():
    import hashlib

    assert key_authorization_digest("a.b") == hashlib.sha256(b"a.b").digest()


def test_dns01_succeeds(cts):
    token, name = new_token(), new_name()
    cts.post("set-txt", host=f"_acme-challenge.{name}.", value="another value")
    cts.post("set-txt", host=f"_acme-challenge.{name}.", value=txt_value(token))
    asyncio.run(validate("dns-01", "dns", name, token, key_authorization(token), cts.settings))


def test_dns01_for_a_wildcard_validates_the_base_name(cts):
    token, name = new_token(), new_name()
    cts.post("set-txt", host=f"_acme-challenge.{name}.", value=txt_value(token))
    asyncio.run(
        validate("dns-01", "dns", f"*.{name}", token, key_authorization(token), cts.settings)
    )


def test_dns01_no_txt(cts):
    token, name = new_token(), new_name()
    error = failure(validate("dns-01", "dns", name, token, key_authorization(token), cts.settings))
    assert error.kind == "unauthorized"
    assert error.detail == f"no TXT record at _acme-challenge.{name}"


def test_dns01_wrong_txt(cts):
    token, name = new_token(), new_name()
    cts.post("set-txt", host=f"_acme-challenge.{name}.", value="wrong")
    cts.post("set-txt", host=f"_acme-challenge.{name}.", value=txt_value(new_token()))
    error = failure(validate("dns-01", "dns", name, token, key_authorization(token), cts.settings))
    assert error.kind == "unauthorized"
    assert f"found 2 TXT records at _acme-challenge.{name}, none the" in error.detail


def test_dns01_for_an_ip_identifier_is_refused(cts):
    token = new_token()
    error = failure(
        validate("dns-01", "ip", "127.0.0.1", token, key_authorization(token), cts.settings)
    )
    assert error.kind == "malformed" and "ip identifier" in error.detail


@pytest.mark.parametrize("challenge", ["http-01", "tls-alpn-01"])
def test_a_wildcard_only_by_dns01(cts, challenge):
    token = new_token()
    error = failure(
        validate(challenge, "dns", "*.example.com", token, key_authorization(token), cts.settings)
    )
    assert error.kind == "malformed" and "only dns-01" in error.detail


@pytest.mark.parametrize(
    ("args", "detail"),
    [
        (("http-02", "dns", "www.example.com"), "unknown challenge type"),
        (("http-01", "email", "a@example.com"), "unknown identifier type"),
        (("http-01", "dns", "www..example.com"), "is not a valid DNS name"),
        (("http-01", "ip", "300.1.1.1"), "is not an IP address"),
        (("http-01", "dns", "127.0.0.1"), "is an IP address, not a DNS name"),
    ],
)
def test_malformed_requests(cts, args, detail):
    token = new_token()
    error = failure(validate(*args, token, key_authorization(token), cts.settings))
    assert error.kind == "malformed" and detail in error.detail


def test_a_token_outside_base64url_is_refused(cts):
    error = failure(validate("http-01", "dns", "a.example.com", "../x", "../x.t", cts.settings))
    assert error.kind == "malformed"


def test_resolve_addresses(cts):
    assert asyncio.run(resolve_addresses(new_name(), cts.settings)) == ["127.0.0.1"]
    cts.post("add-a", host="two.example.org.", addresses=["127.0.0.2", "127.0.0.3"])
    assert sorted(asyncio.run(resolve_addresses("two.example.org", cts.settings))) == [
        "127.0.0.2",
        "127.0.0.3",
    ]


def test_resolve_addresses_servfail(cts):
    name = new_name()
    cts.post("set-servfail", host=f"{name}.")
    error = failure(resolve_addresses(name, cts.settings))
    assert error.kind == "dns" and "SERVFAIL" in error.detail


# -- a DNS server of our own ----------------------------------------------------


class DnsServer(asyncio.DatagramProtocol):
    """Answers from ``records`` {(name, type): [rdata text]}; names in
    ``nxdomain`` answer NXDOMAIN, everything else NOERROR with no data."""

    def __init__(self, records: dict, nxdomain: set[str]):
        self.records = records
        self.nxdomain = nxdomain

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        if name in self.nxdomain:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif (name, rdtype) in self.records:
            response.answer.append(
                dns.rrset.from_text_list(
                    question.name, 60, dns.rdataclass.IN, rdtype, self.records[name, rdtype]
                )
            )
        self.transport.sendto(response.to_wire(), addr)


async def dns_server(records: dict, nxdomain: set[str] = frozenset()):
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: DnsServer(records, set(nxdomain)), local_addr=("127.0.0.1", 0)
    )
    return transport, transport.get_extra_info("sockname")[1]


def test_dns01_nxdomain():
    token = new_token()

    async def scenario():
        transport, port = await dns_server({}, {"_acme-challenge.gone.example.com"})
        try:
            settings = ValidationSettings(resolver=("127.0.0.1", port), timeout=5.0)
            with pytest.raises(ValidationError) as caught:
                await validate(
                    "dns-01", "dns", "gone.example.com", token, key_authorization(token), settings
                )
            return caught.value
        finally:
            transport.close()

    error = asyncio.run(scenario())
    assert error.kind == "dns"
    assert error.detail == "no such name _acme-challenge.gone.example.com (NXDOMAIN)"


def test_resolve_addresses_nxdomain():
    async def scenario():
        transport, port = await dns_server({}, {"gone.example.com"})
        try:
            settings = ValidationSettings(resolver=("127.0.0.1", port), timeout=5.0)
            with pytest.raises(ValidationError) as caught:
                await resolve_addresses("gone.example.com", settings)
            return caught.value
        finally:
            transport.close()

    error = asyncio.run(scenario())
    assert error.kind == "dns" and "NXDOMAIN" in error.detail


def test_dns_server_that_never_answers():
    """A resolver that swallows queries: the deadline holds."""
    token = new_token()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        settings = ValidationSettings(resolver=silent.getsockname(), timeout=1.0)
        start = time.monotonic()
        error = failure(
            validate("dns-01", "dns", "a.example.com", token, key_authorization(token), settings)
        )
    assert time.monotonic() - start < 3
    assert error.kind in ("dns", "connection") and "timed out" in error.detail


# -- tls-alpn-01 ----------------------------------------------------------------


def test_tls_alpn01_succeeds(cts):
    token, name = new_token(), new_name()
    cts.post("add-tlsalpn01", host=name, content=key_authorization(token))
    asyncio.run(validate("tls-alpn-01", "dns", name, token, key_authorization(token), cts.settings))


def test_tls_alpn01_for_another_key_authorization(cts):
    token, name = new_token(), new_name()
    cts.post("add-tlsalpn01", host=name, content=key_authorization(new_token()))
    error = failure(
        validate("tls-alpn-01", "dns", name, token, key_authorization(token), cts.settings)
    )
    assert error.kind == "unauthorized"
    assert "the acmeIdentifier digest" in error.detail


def acme_certificate(
    sans: list[x509.GeneralName],
    key_authorization_text: str,
    *,
    extension: str = "good",
) -> tuple[bytes, bytes]:
    """A self-signed tls-alpn-01 certificate and its key (PEM), with the
    acmeIdentifier extension as ``extension`` says: good, missing,
    non-critical, wrong-digest, not-octet-string."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "acme tls alpn")])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
    )
    digest = key_authorization_digest(key_authorization_text)
    value = {
        "good": b"\x04\x20" + digest,
        "non-critical": b"\x04\x20" + digest,
        "wrong-digest": b"\x04\x20" + bytes(32),
        "not-octet-string": b"\x0c\x20" + digest,
    }.get(extension)
    if value is not None:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(ACME_IDENTIFIER_OID, value),
            critical=extension != "non-critical",
        )
    certificate = builder.sign(key, hashes.SHA256())
    return (
        certificate.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def tls_alpn_failure(tmp_path, cts, identifier, sans, *, extension="good", alpn=("acme-tls/1",)):
    """validate() tls-alpn-01 of ``identifier`` ('dns:x' or 'ip:x') against
    our TLS server presenting a certificate made so; returns the error (or
    None) and the SNI names the server saw."""
    token = new_token()
    kind, _, value = identifier.partition(":")
    cert_pem, key_pem = acme_certificate(sans, key_authorization(token), extension=extension)
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    context.set_alpn_protocols(list(alpn))
    seen_sni = []
    context.sni_callback = lambda sock, server_name, ctx: seen_sni.append(server_name)

    async def handler(reader, writer):
        await reader.read(1)  # until the client closes

    async def scenario():
        async with Server(handler, context) as server:
            settings = replace(cts.settings, tls_port=server.port)
            try:
                await validate(
                    "tls-alpn-01", kind, value, token, key_authorization(token), settings
                )
            except ValidationError as exc:
                return exc
        return None

    return asyncio.run(scenario()), seen_sni


def test_tls_alpn01_ip_identifier_uses_the_reverse_name_as_sni(tmp_path, cts):
    sans = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    error, sni = tls_alpn_failure(tmp_path, cts, "ip:127.0.0.1", sans)
    assert error is None
    assert sni == ["1.0.0.127.in-addr.arpa"]


def test_tls_alpn01_our_server_with_a_good_certificate(tmp_path, cts):
    name = new_name()
    error, sni = tls_alpn_failure(tmp_path, cts, f"dns:{name}", [x509.DNSName(name)])
    assert error is None and sni == [name]


@pytest.mark.parametrize(
    ("extension", "detail"),
    [
        ("missing", "the certificate has no acmeIdentifier extension"),
        ("non-critical", "the certificate's acmeIdentifier extension is not critical"),
        ("wrong-digest", "the acmeIdentifier digest 0000"),
        ("not-octet-string", "is not an OCTET STRING of 32 bytes"),
    ],
)
def test_tls_alpn01_bad_extension(tmp_path, cts, extension, detail):
    name = new_name()
    error, _ = tls_alpn_failure(
        tmp_path, cts, f"dns:{name}", [x509.DNSName(name)], extension=extension
    )
    assert error is not None and error.kind == "unauthorized"
    assert detail in error.detail


@pytest.mark.parametrize(
    "sans",
    [
        [x509.DNSName("other.example.com")],
        [x509.DNSName("{name}"), x509.DNSName("other.example.com")],
        [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    ],
    ids=["another-name", "two-names", "an-ip-address"],
)
def test_tls_alpn01_wrong_subject_alt_name(tmp_path, cts, sans):
    name = new_name()
    sans = [x509.DNSName(name) if s.value == "{name}" else s for s in sans]
    error, _ = tls_alpn_failure(tmp_path, cts, f"dns:{name}", sans)
    assert error is not None and error.kind == "unauthorized"
    assert f"the certificate's subjectAltName must be exactly {name}; it has" in error.detail


def test_tls_alpn01_server_without_acme_tls_alpn(tmp_path, cts):
    name = new_name()
    error, _ = tls_alpn_failure(tmp_path, cts, f"dns:{name}", [x509.DNSName(name)], alpn=["h2"])
    assert error is not None and error.kind == "tls"
    assert "did not select the ALPN protocol acme-tls/1" in error.detail


def test_tls_alpn01_not_tls(cts):
    """A plain-HTTP server on the TLS port fails the handshake as 'tls'."""
    token, name = new_token(), new_name()
    settings = replace(cts.settings, tls_port=cts.http)
    error = failure(validate("tls-alpn-01", "dns", name, token, key_authorization(token), settings))
    assert error.kind == "tls" and "handshake" in error.detail


# -- CAA ----------------------------------------------------------------------------


def caa(cts, name, domain=None, *, wildcard=False, account=ACCOUNT, method="http-01"):
    """check_caa of ``domain`` (default ``name``) at the challenge server."""
    return check_caa(
        domain or name,
        issuer_domains=ISSUER,
        account_uri=account,
        method=method,
        wildcard=wildcard,
        settings=cts.settings,
    )


def add_caa(cts, name, *policies: tuple[str, str]):
    cts.post(
        "add-caa",
        host=f"{name}.",
        policies=[{"tag": tag, "value": value} for tag, value in policies],
    )


def test_caa_none_anywhere_allows(cts):
    asyncio.run(caa(cts, new_name()))


def test_caa_issue_for_us_allows(cts):
    name = new_name()
    add_caa(cts, name, ("issue", "other.ca"), ("issue", "CA.revoca.test"), ("iodef", "x"))
    asyncio.run(caa(cts, name))


def test_caa_issue_for_another_ca_refuses(cts):
    name = new_name()
    add_caa(cts, name, ("issue", "letsencrypt.org"))
    error = failure(caa(cts, name))
    assert error.kind == "caa"
    assert f"the CAA issue records at {name} do not allow" in error.detail
    assert "'letsencrypt.org' names another CA" in error.detail


def test_caa_empty_issue_refuses(cts):
    name = new_name()
    add_caa(cts, name, ("issue", ";"))
    error = failure(caa(cts, name))
    assert error.kind == "caa" and "allows no CA" in error.detail


def test_caa_at_the_parent_applies(cts):
    parent = new_name("parent")
    add_caa(cts, parent, ("issue", "letsencrypt.org"))
    error = failure(caa(cts, f"www.sub.{parent}"))
    assert error.kind == "caa" and f"records at {parent} do" in error.detail


def test_caa_the_closest_rrset_wins(cts):
    parent = new_name("parent")
    add_caa(cts, parent, ("issue", "letsencrypt.org"))
    add_caa(cts, f"www.{parent}", ("issue", "ca.revoca.test"))
    asyncio.run(caa(cts, f"www.{parent}"))


def test_caa_issuewild_governs_wildcards(cts):
    name = new_name()
    add_caa(cts, name, ("issue", "ca.revoca.test"), ("issuewild", "letsencrypt.org"))
    asyncio.run(caa(cts, name))
    error = failure(caa(cts, name, wildcard=True))
    assert error.kind == "caa" and "issuewild" in error.detail
    error = failure(caa(cts, name, f"*.{name}"))
    assert error.kind == "caa" and "issuewild" in error.detail


def test_caa_issue_governs_wildcards_without_issuewild(cts):
    name = new_name()
    add_caa(cts, name, ("issue", "ca.revoca.test"))
    asyncio.run(caa(cts, name, wildcard=True))
    other = new_name()
    add_caa(cts, other, ("issuewild", "ca.revoca.test"), ("issue", "letsencrypt.org"))
    asyncio.run(caa(cts, other, wildcard=True))
    assert failure(caa(cts, other)).kind == "caa"


def test_caa_accounturi(cts):
    name = new_name()
    add_caa(cts, name, ("issue", f"ca.revoca.test; accounturi={ACCOUNT}"))
    asyncio.run(caa(cts, name))
    error = failure(caa(cts, name, account="https://acme.revoca.test/acme/acct/2"))
    assert error.kind == "caa" and "is for another account" in error.detail
    assert failure(caa(cts, name, account=None)).kind == "caa"


def test_caa_validationmethods(cts):
    name = new_name()
    add_caa(cts, name, ("issue", "ca.revoca.test; validationmethods=dns-01,tls-alpn-01"))
    asyncio.run(caa(cts, name, method="dns-01"))
    asyncio.run(caa(cts, name, method="tls-alpn-01"))
    error = failure(caa(cts, name, method="http-01"))
    assert error.kind == "caa" and "does not allow validation by http-01" in error.detail


def test_caa_servfail_refuses(cts):
    name = new_name()
    cts.post("set-servfail", host=f"{name}.")
    error = failure(caa(cts, name))
    assert error.kind == "dns" and "SERVFAIL" in error.detail


def test_caa_malformed_issue_value_authorizes_no_one(cts):
    name = new_name()
    add_caa(cts, name, ("issue", "ca.revoca.test; accounturi"))
    error = failure(caa(cts, name))
    assert error.kind == "caa" and "is malformed" in error.detail


def caa_at_own_server(records: dict, domain: str, nxdomain: set[str] = frozenset()):
    async def scenario():
        transport, port = await dns_server(records, nxdomain)
        try:
            await check_caa(
                domain,
                issuer_domains=ISSUER,
                account_uri=ACCOUNT,
                method="dns-01",
                wildcard=False,
                settings=ValidationSettings(resolver=("127.0.0.1", port), timeout=5.0),
            )
        finally:
            transport.close()

    return scenario()


def test_caa_critical_unknown_tag_refuses():
    records = {("x.example.com", "CAA"): ['0 issue "ca.revoca.test"', '128 tbs "unknown"']}
    error = failure(caa_at_own_server(records, "x.example.com"))
    assert error.kind == "caa"
    assert "critical property 'tbs'" in error.detail


def test_caa_unknown_tag_without_the_critical_flag_is_ignored():
    records = {("x.example.com", "CAA"): ['0 issue "ca.revoca.test"', '0 tbs "unknown"']}
    asyncio.run(caa_at_own_server(records, "x.example.com"))


def test_caa_critical_known_tag_is_obeyed():
    records = {("x.example.com", "CAA"): ['128 issue "ca.revoca.test"']}
    asyncio.run(caa_at_own_server(records, "x.example.com"))


def test_caa_nxdomain_climbs_to_the_parent():
    records = {("example.com", "CAA"): ['0 issue "letsencrypt.org"']}
    error = failure(caa_at_own_server(records, "gone.example.com", {"gone.example.com"}))
    assert error.kind == "caa" and "records at example.com" in error.detail


def test_validation_error_kinds():
    with pytest.raises(ValueError):
        ValidationError("badNonce", "x")
    error = ValidationError("dns", "what happened")
    assert (error.kind, error.detail, str(error)) == ("dns", "what happened", "dns: what happened")
