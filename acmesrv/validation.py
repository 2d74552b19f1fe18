"""ACME challenge validation: http-01 and dns-01 (RFC 8555 section 8.3,
8.4) and tls-alpn-01 (RFC 8737), for dns and ip identifiers (RFC 8738), and
the CAA check before issuance (RFC 8659, with RFC 8657's parameters).

Everything a validation does runs under one deadline (the settings'
``timeout``), and everything it reads from the applicant's servers is
bounded in size before it is read: a validation authority talks to servers
anyone can point it at. Each failure is a ValidationError carrying the ACME
error type and a sentence for the applicant.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import os
import re
import ssl
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver
from cryptography import x509


@dataclass(frozen=True)
class ValidationSettings:
    """Where and how long a validation looks.

    resolver: the DNS server (host, port) asked for A/AAAA/TXT/CAA; None asks
    the system's resolver (/etc/resolv.conf). A validation authority runs its
    own recursive resolver, so that what it sees is not an upstream's cache.
    http_port / tls_port: where http-01 and tls-alpn-01 connect (80 and 443
    in production, RFC 8555 8.3 and RFC 8737 3; tests use others); an https
    redirect goes to tls_port. timeout: the whole validation's deadline in
    seconds, lookups, connections and reading included. max_redirects: how
    many http-01 redirects are followed. max_response_bytes: the largest
    http-01 body read (a key authorization is under 200 bytes); the headers
    are limited to MAX_HEADER_BYTES.
    """

    resolver: tuple[str, int] | None = None
    http_port: int = 80
    tls_port: int = 443
    timeout: float = 10.0
    max_redirects: int = 10
    max_response_bytes: int = 8192


ERROR_KINDS = frozenset(
    {"connection", "dns", "incorrectResponse", "unauthorized", "tls", "caa", "malformed"}
)

# The response head (status line and headers) an http-01 server may send.
MAX_HEADER_BYTES = 16 * 1024
# RFC 8737 3: the acmeIdentifier extension of a tls-alpn-01 certificate.
ACME_IDENTIFIER_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")
ACME_TLS_ALPN = "acme-tls/1"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# RFC 8555 8.3: a token is base64url, and nothing else may reach the path.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
# RFC 8659 4: the property tags a CA understands; an unknown one flagged
# critical forbids issuance.
KNOWN_CAA_TAGS = frozenset({"issue", "issuewild", "iodef", "contactemail", "contactphone"})
CAA_CRITICAL = 128
# How much of a wrong answer a detail quotes.
_QUOTED = 64


class ValidationError(Exception):
    """A validation that failed. kind: the ACME error type after
    'urn:ietf:params:acme:error:' (one of ERROR_KINDS); detail: what went
    wrong, for the applicant."""

    def __init__(self, kind: str, detail: str):
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown ACME error type {kind!r}")
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


def key_authorization_digest(key_authorization: str) -> bytes:
    """SHA-256 of the key authorization: what dns-01 publishes (base64url)
    and tls-alpn-01 puts in its certificate (RFC 8555 8.4, RFC 8737 3)."""
    return hashlib.sha256(key_authorization.encode("ascii")).digest()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _quote(data: bytes) -> str:
    """A wrong answer as a detail shows it: printable, and short."""
    text = repr(data[:_QUOTED])[2:-1]  # escapes all but printable ASCII
    return f'"{text}"' + (f" (first {_QUOTED} of {len(data)} bytes)" if len(data) > _QUOTED else "")


# -- the applicant's DNS ------------------------------------------------------


class _Lookup:
    """DNS queries at the settings' resolver, each bounded by what is left
    of the deadline (loop time)."""

    def __init__(self, settings: ValidationSettings, deadline: float):
        try:
            self.resolver = dns.asyncresolver.Resolver(configure=settings.resolver is None)
        except dns.exception.DNSException as exc:  # no /etc/resolv.conf, say
            raise ValidationError("dns", f"no DNS resolver to ask: {exc}") from None
        if settings.resolver is not None:
            host, port = settings.resolver
            self.resolver.nameservers = [host]
            self.resolver.port = port
        self.resolver.cache = None  # each validation asks afresh
        self.deadline = deadline

    async def query(self, name: str, rdtype: str) -> list | None:
        """The records of ``rdtype`` at ``name`` (CNAMEs followed by the
        resolver); [] for none, None for NXDOMAIN. A failure (SERVFAIL,
        refusal, timeout) raises ValidationError('dns')."""
        remaining = self.deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise ValidationError("dns", f"no time left to look up {rdtype} at {name}")
        try:
            answer = await self.resolver.resolve(
                name, rdtype, lifetime=remaining, raise_on_no_answer=False, search=False
            )
        except dns.resolver.NXDOMAIN:
            return None
        except dns.resolver.LifetimeTimeout:
            raise ValidationError("dns", f"the {rdtype} lookup of {name} timed out") from None
        except dns.resolver.NoNameservers as exc:
            raise ValidationError(
                "dns", f"the {rdtype} lookup of {name} failed: {_server_errors(exc)}"
            ) from None
        except dns.exception.DNSException as exc:
            raise ValidationError("dns", f"the {rdtype} lookup of {name} failed: {exc}") from None
        return list(answer.rrset) if answer.rrset is not None else []


def _server_errors(exc: dns.resolver.NoNameservers) -> str:
    """What the servers answered ('SERVFAIL', 'REFUSED'), not dnspython's
    paragraph."""
    errors = exc.kwargs.get("errors") or []
    answers = {str(error[3]) for error in errors if len(error) > 3 and error[3]}
    return ", ".join(sorted(answers)) or "no server answered"


async def _addresses(lookup: _Lookup, host: str) -> list[str]:
    """A then AAAA records of ``host``; one family failing while the other
    answers is no failure (RFC 8555 8.3 lets the server pick an address)."""
    found: list[str] = []
    failure: ValidationError | None = None
    nxdomain = True
    for rdtype in ("A", "AAAA"):
        try:
            records = await lookup.query(host, rdtype)
        except ValidationError as exc:
            failure = failure or exc
            nxdomain = False
            continue
        if records is not None:
            nxdomain = False
            found += [record.address for record in records]
    if found:
        return found
    if failure is not None:
        raise failure
    if nxdomain:
        raise ValidationError("dns", f"no such domain {host} (NXDOMAIN)")
    raise ValidationError("dns", f"no A or AAAA record for {host}")


async def resolve_addresses(host: str, settings: ValidationSettings) -> list[str]:
    """The IPv4 then IPv6 addresses of ``host`` at the settings' resolver
    (an IP literal: itself); none raises ValidationError('dns')."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        async with asyncio.timeout(settings.timeout):
            return await _addresses(_Lookup(settings, _deadline(settings)), host)
    except TimeoutError:
        raise ValidationError(
            "dns", f"looking up {host} timed out after {settings.timeout:g} s"
        ) from None


def _deadline(settings: ValidationSettings) -> float:
    return asyncio.get_running_loop().time() + settings.timeout


# -- identifiers ----------------------------------------------------------------


def _dns_name(value: str) -> str:
    """A host name as validated: lower case, no trailing dot; anything else
    raises ValidationError('malformed')."""
    name = value.lower()
    name = name[:-1] if name.endswith(".") else name
    labels = name.split(".")
    if labels[-1].isdigit():  # RFC 8738 3: an address is an 'ip' identifier
        raise ValidationError("malformed", f"{value!r} is an IP address, not a DNS name")
    if len(name) > 253 or len(labels) < 2 or not all(_LABEL.fullmatch(x) for x in labels):
        raise ValidationError("malformed", f"{value!r} is not a valid DNS name")
    return name


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise ValidationError("malformed", f"{value!r} is not an IP address") from None


# -- http-01 (RFC 8555 8.3) --------------------------------------------------------


@dataclass
class _Response:
    status: int
    headers: dict[str, str]
    reader: asyncio.StreamReader


def _authority(host: str, port: int, default: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port == default else f"{shown}:{port}"


async def _connect(
    addresses: list[str], port: int, *, tls: ssl.SSLContext | None, server_hostname: str | None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the first of ``addresses`` that accepts one on
    ``port`` (RFC 8555 8.3: the server picks among the addresses)."""
    errors = []
    for address in addresses:
        try:
            return await asyncio.open_connection(
                address,
                port,
                ssl=tls,
                server_hostname=server_hostname if tls is not None else None,
                limit=MAX_HEADER_BYTES,
            )
        except ssl.SSLError as exc:
            raise ValidationError(
                "tls", f"the TLS handshake with {address} port {port} failed: {exc.reason or exc}"
            ) from None
        except OSError as exc:
            errors.append(f"{address} port {port}: {_os_error(exc)}")
    raise ValidationError("connection", f"could not connect to {'; '.join(errors)}")


def _os_error(exc: OSError) -> str:
    """'Connection refused', not asyncio's 'Connect call failed (...)'."""
    return os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__


async def _read_head(reader: asyncio.StreamReader, url: str) -> tuple[int, dict[str, str]]:
    """The status and headers (names in lower case) of a response, at most
    MAX_HEADER_BYTES of them."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise ValidationError(
            "connection", f"{url}: the response headers are larger than {MAX_HEADER_BYTES} bytes"
        ) from None
    except asyncio.IncompleteReadError as exc:
        what = "before the headers ended" if exc.partial else "without answering"
        raise ValidationError("connection", f"{url} closed the connection {what}") from None
    lines = head[:-4].decode("latin-1").split("\r\n")
    match = re.fullmatch(r"HTTP/1\.[01] ([0-9]{3})(?: .*)?", lines[0])
    if match is None:
        raise ValidationError("connection", f"{url} answered no HTTP/1.1 status line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise ValidationError("connection", f"{url} sent a malformed header line")
        name = name.lower()
        value = value.strip()
        # RFC 9110 5.3: repeated fields combine with commas
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return int(match.group(1)), headers


async def _read_body(response: _Response, url: str, limit: int) -> bytes:
    """The body, framed by chunked encoding, Content-Length or the
    connection's end (RFC 9112 6.3); never more than ``limit`` bytes read."""
    reader, headers = response.reader, response.headers
    too_large = ValidationError("connection", f"{url}: the response is larger than {limit} bytes")
    try:
        encoding = headers.get("transfer-encoding", "").lower()
        if encoding:
            if encoding.split(",")[-1].strip() != "chunked":
                raise ValidationError("connection", f"{url}: unsupported transfer-encoding")
            return await _read_chunked(reader, url, limit, too_large)
        if "content-length" in headers:
            value = headers["content-length"]
            if not value.isdigit():
                raise ValidationError("connection", f"{url}: a malformed Content-Length")
            if int(value) > limit:
                raise too_large
            return await reader.readexactly(int(value))
        body = b""
        while chunk := await reader.read(limit + 1 - len(body)):
            body += chunk
            if len(body) > limit:
                raise too_large
        return body
    except asyncio.IncompleteReadError:
        raise ValidationError("connection", f"{url} closed the connection mid-body") from None
    except OSError as exc:
        raise ValidationError("connection", f"{url}: {_os_error(exc)}") from None


async def _read_chunked(
    reader: asyncio.StreamReader, url: str, limit: int, too_large: ValidationError
) -> bytes:
    # RFC 9112 7.1: size line, data, CRLF; a zero size ends the body. Each
    # chunk adds a byte at least, so ``limit`` bounds the loop.
    body = b""
    while True:
        try:
            line = await reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError:
            raise ValidationError("connection", f"{url}: a chunk size line too long") from None
        size_text = line[:-2].split(b";")[0].strip()
        if not re.fullmatch(rb"[0-9A-Fa-f]{1,8}", size_text):
            raise ValidationError("connection", f"{url}: a malformed chunk size")
        size = int(size_text, 16)
        if size == 0:
            return body  # the trailer section is not needed
        if len(body) + size > limit:
            raise too_large
        body += await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise ValidationError("connection", f"{url}: a chunk without its CRLF")


def _insecure_context(alpn: list[str]) -> ssl.SSLContext:
    """TLS that checks no certificate: a validation proves control of the
    name by the answer, not by a certificate (as Let's Encrypt follows https
    redirects, and RFC 8737 3 has self-signed certificates)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 8737 4
    context.set_alpn_protocols(alpn)
    return context


class _Http01:
    """One http-01 validation: the request, its redirects, the answer."""

    def __init__(self, host: str, is_ip: bool, settings: ValidationSettings, lookup: _Lookup):
        self.host = host
        self.is_ip = is_ip
        self.settings = settings
        self.lookup = lookup
        self._addresses: list[str] | None = None

    async def addresses(self) -> list[str]:
        if self._addresses is None:
            self._addresses = (
                [self.host] if self.is_ip else await _addresses(self.lookup, self.host)
            )
        return self._addresses

    async def run(self, token: str, key_authorization: str) -> None:
        settings = self.settings
        url = (
            f"http://{_authority(self.host, settings.http_port, 80)}"
            f"/.well-known/acme-challenge/{token}"
        )
        scheme, port, target = "http", settings.http_port, f"/.well-known/acme-challenge/{token}"
        for _hop in range(settings.max_redirects + 1):
            response, writer = await self.get(scheme, port, target, url)
            try:
                if response.status in REDIRECT_STATUSES:
                    location = response.headers.get("location")
                    if not location:
                        raise ValidationError(
                            "connection", f"{url} redirected ({response.status}) without a Location"
                        )
                    url = urljoin(url, location)
                    scheme, port, target = self.redirect_target(url)
                    continue
                if response.status != 200:
                    raise ValidationError("unauthorized", f"{url} answered {response.status}")
                body = await _read_body(response, url, settings.max_response_bytes)
            finally:
                writer.transport.abort()
            # RFC 8555 8.3: whitespace at the end of the body is ignored
            if body.rstrip(b" \t\r\n") != key_authorization.encode("ascii"):
                raise ValidationError(
                    "incorrectResponse",
                    f"{url} answered {_quote(body)}, not the key authorization",
                )
            return
        raise ValidationError(
            "connection", f"more than {settings.max_redirects} redirects, the last to {url}"
        )

    def redirect_target(self, url: str) -> tuple[str, int, str]:
        """Where a redirect to ``url`` connects; only to the name being
        validated, by http to http_port or https to tls_port. RFC 8555 8.3
        has the server follow redirects; these limits keep a validation
        from being pointed at other hosts' or other ports' services."""
        settings = self.settings
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValidationError(
                "connection", f"redirect to {url} refused: only http and https are followed"
            )
        try:
            explicit = parts.port
        except ValueError:
            raise ValidationError("connection", f"redirect to {url} refused: a bad port") from None
        host = (parts.hostname or "").rstrip(".")
        same = host == self.host
        if self.is_ip:
            try:
                same = ipaddress.ip_address(host) == ipaddress.ip_address(self.host)
            except ValueError:
                same = False
        if not same:
            raise ValidationError(
                "connection", f"redirect to {host or url} refused: only to {self.host}"
            )
        wanted = settings.http_port if parts.scheme == "http" else settings.tls_port
        port = wanted if explicit is None else explicit
        if port != wanted:
            other = f"{parts.scheme} on " if port in (settings.http_port, settings.tls_port) else ""
            raise ValidationError(
                "connection",
                f"redirect to {other}port {port} refused: only ports {settings.http_port} (http)"
                f" and {settings.tls_port} (https)",
            )
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if any(ord(c) <= 0x20 or ord(c) >= 0x7F for c in target):
            raise ValidationError("connection", f"redirect to {url} refused: a malformed path")
        return parts.scheme, port, target

    async def get(
        self, scheme: str, port: int, target: str, url: str
    ) -> tuple[_Response, asyncio.StreamWriter]:
        tls = _insecure_context(["http/1.1"]) if scheme == "https" else None
        reader, writer = await _connect(
            await self.addresses(),
            port,
            tls=tls,
            server_hostname=None if self.is_ip else self.host,
        )
        try:
            default = 80 if scheme == "http" else 443
            host_header = _authority(self.host, port, default)
            writer.write(
                f"GET {target} HTTP/1.1\r\nHost: {host_header}\r\n"
                "User-Agent: Revoca-ACME-validation\r\nAccept: */*\r\n"
                "Connection: close\r\n\r\n".encode("ascii")
            )
            await writer.drain()
            status, headers = await _read_head(reader, url)
        except OSError as exc:
            writer.transport.abort()
            raise ValidationError("connection", f"{url}: {_os_error(exc)}") from None
        except BaseException:
            writer.transport.abort()
            raise
        return _Response(status, headers, reader), writer


# -- dns-01 (RFC 8555 8.4) -----------------------------------------------------------


async def _dns01(domain: str, key_authorization: str, lookup: _Lookup) -> None:
    name = f"_acme-challenge.{domain}"
    records = await lookup.query(name, "TXT")
    if records is None:
        raise ValidationError("dns", f"no such name {name} (NXDOMAIN)")
    expected = _b64url(key_authorization_digest(key_authorization)).encode("ascii")
    # a TXT record of several strings is their concatenation (RFC 7208 3.3 does so too)
    found = [b"".join(record.strings) for record in records]
    if expected in found:
        return
    if not found:
        raise ValidationError("unauthorized", f"no TXT record at {name}")
    raise ValidationError(
        "unauthorized",
        f"found {len(found)} TXT record{'s' if len(found) > 1 else ''} at {name}, none the"
        f" key authorization's digest (the first: {_quote(found[0])})",
    )


# -- tls-alpn-01 (RFC 8737) ------------------------------------------------------------


async def _tls_alpn01(
    host: str, is_ip: bool, key_authorization: str, settings: ValidationSettings, lookup: _Lookup
) -> None:
    # RFC 8738 6: an IP address is named in SNI by its reverse-DNS name
    sni = ipaddress.ip_address(host).reverse_pointer if is_ip else host
    addresses = [host] if is_ip else await _addresses(lookup, host)
    where = f"{_authority(host, settings.tls_port, 443)} (tls-alpn-01)"
    _reader, writer = await _connect(
        addresses, settings.tls_port, tls=_insecure_context([ACME_TLS_ALPN]), server_hostname=sni
    )
    # RFC 8737 4: after the handshake, no data is exchanged; close at once
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        protocol = ssl_object.selected_alpn_protocol()
        der = ssl_object.getpeercert(binary_form=True)
    finally:
        writer.transport.abort()
    if protocol != ACME_TLS_ALPN:
        raise ValidationError(
            "tls", f"{where} did not select the ALPN protocol {ACME_TLS_ALPN} (got {protocol!r})"
        )
    if not der:
        raise ValidationError("tls", f"{where} sent no certificate")
    try:
        certificate = x509.load_der_x509_certificate(der)
        extensions = certificate.extensions
    except ValueError as exc:
        raise ValidationError(
            "tls", f"{where} sent a certificate that does not parse: {exc}"
        ) from None
    _check_acme_certificate(extensions, host, is_ip, key_authorization, where)


def _check_acme_certificate(
    extensions: x509.Extensions, host: str, is_ip: bool, key_authorization: str, where: str
) -> None:
    """RFC 8737 3: exactly one subjectAltName, the identifier; a critical
    acmeIdentifier extension holding the key authorization's digest."""
    try:
        names = list(extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        raise ValidationError(
            "unauthorized", f"{where}: the certificate has no subjectAltName"
        ) from None
    wanted: x509.GeneralName = (
        x509.IPAddress(ipaddress.ip_address(host)) if is_ip else x509.DNSName(host)
    )
    matches = (
        len(names) == 1
        and type(names[0]) is type(wanted)
        and (names[0].value == wanted.value if is_ip else str(names[0].value).lower() == host)
    )
    if not matches:
        shown = ", ".join(f"{type(n).__name__}:{n.value}" for n in names) or "none"
        raise ValidationError(
            "unauthorized",
            f"{where}: the certificate's subjectAltName must be exactly {host}; it has {shown}",
        )
    try:
        extension = extensions.get_extension_for_oid(ACME_IDENTIFIER_OID)
    except x509.ExtensionNotFound:
        raise ValidationError(
            "unauthorized", f"{where}: the certificate has no acmeIdentifier extension"
        ) from None
    if not extension.critical:
        raise ValidationError(
            "unauthorized", f"{where}: the certificate's acmeIdentifier extension is not critical"
        )
    value = getattr(extension.value, "value", b"")
    # the extension's value: a DER OCTET STRING of the SHA-256 digest
    if len(value) != 34 or value[:2] != b"\x04\x20":
        raise ValidationError(
            "unauthorized",
            f"{where}: the acmeIdentifier extension is not an OCTET STRING of 32 bytes",
        )
    digest = key_authorization_digest(key_authorization)
    if value[2:] != digest:
        raise ValidationError(
            "unauthorized",
            f"{where}: the acmeIdentifier digest {value[2:].hex()} is not the key"
            f" authorization's {digest.hex()}",
        )


# -- the dispatch ---------------------------------------------------------------------


async def validate(
    challenge_type: str,
    identifier_type: str,
    identifier_value: str,
    token: str,
    key_authorization: str,
    settings: ValidationSettings,
) -> None:
    """Check one challenge of one identifier; return on success, raise
    ValidationError otherwise. A wildcard name ('*.example.com') is
    validated by dns-01 only, on its base name (RFC 8555 7.1.4); an ip
    identifier by http-01 or tls-alpn-01 only (RFC 8738 7). Everything runs
    under the settings' timeout."""
    if challenge_type not in ("http-01", "dns-01", "tls-alpn-01"):
        raise ValidationError("malformed", f"unknown challenge type {challenge_type!r}")
    if not _TOKEN.fullmatch(token):
        raise ValidationError("malformed", "the token is not base64url")
    if not key_authorization.isascii() or not key_authorization.startswith(f"{token}."):
        raise ValidationError("malformed", "the key authorization is not token.thumbprint")
    if identifier_type == "ip":
        if challenge_type == "dns-01":
            raise ValidationError(
                "malformed", "dns-01 cannot validate an ip identifier (RFC 8738 7)"
            )
        host, is_ip = str(_ip(identifier_value)), True
    elif identifier_type == "dns":
        wildcard = identifier_value.startswith("*.")
        if wildcard and challenge_type != "dns-01":
            raise ValidationError(
                "malformed", f"{identifier_value} is a wildcard name: only dns-01 validates it"
            )
        host, is_ip = _dns_name(identifier_value[2:] if wildcard else identifier_value), False
    else:
        raise ValidationError("malformed", f"unknown identifier type {identifier_type!r}")
    try:
        async with asyncio.timeout(settings.timeout):
            lookup = _Lookup(settings, _deadline(settings))
            if challenge_type == "http-01":
                await _Http01(host, is_ip, settings, lookup).run(token, key_authorization)
            elif challenge_type == "dns-01":
                await _dns01(host, key_authorization, lookup)
            else:
                await _tls_alpn01(host, is_ip, key_authorization, settings, lookup)
    except TimeoutError:
        raise ValidationError(
            "connection", f"{challenge_type} of {host}: timed out after {settings.timeout:g} s"
        ) from None


# -- CAA (RFC 8659, RFC 8657) -------------------------------------------------------------


def _parse_issue_value(value: str) -> tuple[str, dict[str, str]] | None:
    """RFC 8659 4.2: issuer-domain-name, then ';'-separated key=value
    parameters; None when malformed (a malformed property authorizes
    no one)."""
    domain, *rest = value.split(";")
    parameters: dict[str, str] = {}
    for item in rest:
        item = item.strip()
        if not item:
            continue
        key, sep, val = item.partition("=")
        key, val = key.strip(), val.strip()
        if not sep or not re.fullmatch(r"[A-Za-z0-9]+", key) or not val or " " in val:
            return None
        parameters[key.lower()] = val
    return domain.strip().lower().rstrip("."), parameters


def _why_not(
    value: str,
    issuer_domains: tuple[str, ...],
    account_uri: str | None,
    method: str,
) -> str | None:
    """None if the issue/issuewild value authorizes us, for this account and
    method; otherwise why not."""
    parsed = _parse_issue_value(value)
    if parsed is None:
        return f"{value!r} is malformed"
    domain, parameters = parsed
    if not domain:
        return f"{value!r} allows no CA"
    if domain not in issuer_domains:
        return f"{value!r} names another CA"
    # RFC 8657 3: the account whose request it is, exactly
    if "accounturi" in parameters and parameters["accounturi"] != account_uri:
        return f"{value!r} is for another account"
    # RFC 8657 4: the methods allowed, by their ACME names
    if "validationmethods" in parameters:
        methods = [m.strip() for m in parameters["validationmethods"].split(",")]
        if method not in methods:
            return f"{value!r} does not allow validation by {method}"
    return None


async def check_caa(
    domain: str,
    *,
    issuer_domains: tuple[str, ...],
    account_uri: str | None,
    method: str,
    wildcard: bool,
    settings: ValidationSettings,
) -> None:
    """Whether CAA allows us (a CA known by ``issuer_domains``) to issue
    for ``domain`` (the base name of a wildcard, ``wildcard`` True), to the
    account ``account_uri``, validated by ``method`` ('http-01'...). For
    dns identifiers: an ip identifier has no CAA to consult.

    RFC 8659 3: the relevant RRset is the first non-empty CAA RRset met
    climbing from ``domain`` towards the root; none at all allows anyone. A
    lookup that fails (SERVFAIL, a timeout) refuses as 'dns': a failure is
    no permission; NXDOMAIN and an empty answer go on up. A refusal by
    policy is ValidationError('caa')."""
    if domain.startswith("*."):
        domain, wildcard = domain[2:], True
    issuers = tuple(d.lower().rstrip(".") for d in issuer_domains)
    try:
        name = dns.name.from_text(domain)
    except dns.exception.DNSException:
        raise ValidationError("malformed", f"{domain!r} is not a valid DNS name") from None
    try:
        async with asyncio.timeout(settings.timeout):
            lookup = _Lookup(settings, _deadline(settings))
            found: list = []
            while name != dns.name.root:
                found = await lookup.query(name.to_text(omit_final_dot=True), "CAA") or []
                if found:
                    break
                name = name.parent()
    except TimeoutError:
        raise ValidationError(
            "dns", f"the CAA lookup of {domain} timed out after {settings.timeout:g} s"
        ) from None
    if not found:
        return
    at = name.to_text(omit_final_dot=True)
    # RFC 8659 4.1: tag names are matched without regard to case
    properties = [
        (record.flags, record.tag.decode("ascii", "replace").lower(), record) for record in found
    ]
    for flags, tag, _record in properties:
        if flags & CAA_CRITICAL and tag not in KNOWN_CAA_TAGS:
            raise ValidationError(
                "caa", f"the CAA records at {at} have a critical property {tag!r} we do not know"
            )
    # RFC 8659 4.3: for a wildcard, issuewild when there is one, else issue
    kind = (
        "issuewild" if wildcard and any(t == "issuewild" for _f, t, _r in properties) else "issue"
    )
    values = [r.value.decode("utf-8", "replace") for _f, t, r in properties if t == kind]
    if not values:
        return  # RFC 8659 4: no property that restricts issuance (iodef alone)
    reasons = []
    for value in values:
        reason = _why_not(value, issuers, account_uri, method)
        if reason is None:
            return
        reasons.append(reason)
    raise ValidationError(
        "caa",
        f"the CAA {kind} records at {at} do not allow issuance for"
        f" {'*.' if wildcard else ''}{domain}: {'; '.join(reasons)}",
    )
