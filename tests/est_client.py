"""A small EST client (RFC 7030, with RFC 8951's clarifications) on the
standard library's ``http.client`` and ``ssl``, with cryptography for the
certificates and keys.

One :class:`EstClient` keeps one HTTPS connection open, so that a TLS
channel binding read from it (:meth:`EstClient.tls_unique` on TLS 1.2,
RFC 5929; :meth:`EstClient.tls_exporter` on TLS 1.3, RFC 9266) belongs to
the connection the request then goes on (RFC 7030 3.5). Successful
operations return what they carry; any other answer is an
:class:`EstResponse` with the status, the headers and the body.
"""

import base64
import ctypes
import email.parser
import email.policy
import http.client
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import AttributeOID

PKCS10 = "application/pkcs10"
EXPORTER_LABEL = b"EXPORTER-Channel-Binding"  # RFC 9266 2
EXPORTER_LENGTH = 32
TLS_VERSIONS = {
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}
_WIRE_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


class EstClientError(Exception):
    """An answer this client cannot read as RFC 7030 describes it."""


@dataclass(frozen=True)
class EstResponse:
    """An answer other than 200 (or one read raw): 202 with Retry-After,
    204, a 4xx or 5xx with its text."""

    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def retry_after(self) -> int | None:
        value = self.headers.get("retry-after")
        return int(value) if value is not None and value.isdigit() else None


def b64decode(body: bytes) -> bytes:
    """Base64 with line breaks (RFC 8951 3: the body is base64 whatever
    Content-Transfer-Encoding says)."""
    try:
        return base64.b64decode(b"".join(body.split()), validate=True)
    except ValueError as exc:
        raise EstClientError(f"the body is not base64: {exc}") from None


def certs_only(body: bytes) -> list[x509.Certificate]:
    """The certificates of a base64 PKCS#7 certs-only message."""
    try:
        return pkcs7.load_der_pkcs7_certificates(b64decode(body))
    except ValueError as exc:
        raise EstClientError(f"the body is not a PKCS#7 certs-only message: {exc}") from None


def make_csr(
    key,
    subject: x509.Name,
    *,
    sans: tuple[x509.GeneralName, ...] = (),
    challenge_password: str | None = None,
) -> bytes:
    """A DER PKCS#10 request; ``challenge_password`` carries the base64 of a
    channel binding (RFC 7030 3.5)."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    if challenge_password is not None:
        builder = builder.add_attribute(
            AttributeOID.CHALLENGE_PASSWORD, challenge_password.encode()
        )
    algorithm = None if _is_edwards(key) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.DER)


def _is_edwards(key) -> bool:
    from cryptography.hazmat.primitives.asymmetric import ed448, ed25519

    return isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey)


# -- RFC 9266 tls-exporter: libssl's SSL_export_keying_material ------------------------


def _libssl():
    import _ssl

    lib = ctypes.CDLL(_ssl.__file__)  # its libssl's symbols resolve through it
    export = lib.SSL_export_keying_material
    export.argtypes = [
        ctypes.c_void_p,  # SSL *
        ctypes.c_char_p,  # out
        ctypes.c_size_t,  # olen
        ctypes.c_char_p,  # label
        ctypes.c_size_t,  # llen
        ctypes.c_char_p,  # context
        ctypes.c_size_t,  # contextlen
        ctypes.c_int,  # use_context
    ]
    export.restype = ctypes.c_int
    version = lib.SSL_version
    version.argtypes = [ctypes.c_void_p]
    version.restype = ctypes.c_int
    return export, version


def ssl_pointer(sock: ssl.SSLSocket) -> int:
    """The ``SSL *`` of a connected socket. CPython 3.11's ``_ssl._SSLSocket``
    is ``PyObject_HEAD``, a weak reference to the socket, then ``SSL *``; the
    pointer found there is accepted only when ``SSL_version`` of it is the
    connection's protocol version."""
    inner = sock._sslobj
    if inner is None:
        raise EstClientError("the socket has no TLS connection")
    _, version = _libssl()
    offset = object.__basicsize__ + ctypes.sizeof(ctypes.c_void_p)
    pointer = ctypes.c_void_p.from_address(id(inner) + offset).value
    expected = _WIRE_VERSIONS.get(sock.version() or "")
    if not pointer or expected is None or version(pointer) != expected:
        raise EstClientError("cannot find the SSL * of this connection")
    return pointer


def export_keying_material(sock: ssl.SSLSocket, label: bytes, length: int) -> bytes:
    """RFC 5705 keying material without a context, as RFC 9266 uses it."""
    export, _ = _libssl()
    out = ctypes.create_string_buffer(length)
    if export(ssl_pointer(sock), out, length, label, len(label), None, 0, 0) != 1:
        raise EstClientError("SSL_export_keying_material failed")
    return out.raw


# -- the client --------------------------------------------------------------------------


class EstClient:
    """EST against ``base_url`` (``https://host:port/.well-known/est``),
    trusting ``cafile`` for the server; ``tls`` "1.2" or "1.3";
    ``client_cert`` a (certificate PEM, key PEM) pair of paths;
    ``basic`` a (user, password) pair for HTTP Basic."""

    def __init__(
        self,
        base_url: str,
        cafile: Path,
        *,
        tls: str = "1.3",
        client_cert: tuple[Path, Path] | None = None,
        basic: tuple[str, str] | None = None,
        timeout: float = 20.0,
    ):
        scheme, _, rest = base_url.partition("://")
        if scheme != "https":
            raise ValueError("EST is served over HTTPS only (RFC 7030 3.3)")
        hostport, _, path = rest.partition("/")
        self.host, _, port = hostport.rpartition(":")
        self.port = int(port)
        self.path = "/" + path.rstrip("/")
        self.basic = basic
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cafile))
        context.minimum_version = context.maximum_version = TLS_VERSIONS[tls]
        if client_cert is not None:
            context.load_cert_chain(str(client_cert[0]), str(client_cert[1]))
        self.context = context
        self.timeout = timeout
        self.connection: http.client.HTTPSConnection | None = None
        self.connections = 0  # how many TLS connections this client opened

    # -- the connection ---------------------------------------------------------------

    def connect(self) -> ssl.SSLSocket:
        """A new TLS connection (the previous one closed)."""
        self.close()
        self.connection = http.client.HTTPSConnection(
            self.host, self.port, context=self.context, timeout=self.timeout
        )
        self.connection.connect()
        self.connections += 1
        return self.connection.sock

    @property
    def sock(self) -> ssl.SSLSocket:
        """The open connection's socket (a new connection when none is open)."""
        if self.connection is None or self.connection.sock is None:
            return self.connect()
        return self.connection.sock

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def version(self) -> str:
        return self.sock.version()

    def tls_unique(self) -> bytes:
        """RFC 5929 tls-unique of the open connection (TLS 1.2 only: RFC 9266
        leaves it undefined for TLS 1.3)."""
        sock = self.sock
        if sock.version() != "TLSv1.2":
            raise EstClientError(f"tls-unique is not defined for {sock.version()}")
        value = sock.get_channel_binding("tls-unique")
        if not value:
            raise EstClientError("the connection has no tls-unique value")
        return value

    def tls_exporter(self) -> bytes:
        """RFC 9266 tls-exporter of the open connection (TLS 1.3)."""
        sock = self.sock
        if sock.version() != "TLSv1.3":
            raise EstClientError(f"tls-exporter is for TLS 1.3, not {sock.version()}")
        return export_keying_material(sock, EXPORTER_LABEL, EXPORTER_LENGTH)

    def channel_binding(self) -> str:
        """The base64 channel binding of the open connection for a CSR's
        challengePassword: tls-unique on TLS 1.2, tls-exporter on TLS 1.3."""
        value = self.tls_unique() if self.version == "TLSv1.2" else self.tls_exporter()
        return base64.b64encode(value).decode()

    # -- requests ---------------------------------------------------------------------

    def url(self, operation: str, label: str | None = None) -> str:
        return f"{self.path}/{label}/{operation}" if label else f"{self.path}/{operation}"

    def authorization(self) -> dict[str, str]:
        """The HTTP Basic header (RFC 7617), when the client has a password."""
        if self.basic is None:
            return {}
        token = base64.b64encode(f"{self.basic[0]}:{self.basic[1]}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        *,
        basic: bool = True,
        chunked: bool = False,
    ) -> EstResponse:
        """One request on the open connection (a new one when the server
        closed it): the raw answer; ``chunked`` sends the body in chunks of
        4 KiB without a Content-Length."""
        if self.connection is None or self.connection.sock is None:
            self.connect()
        headers = dict(headers or {})
        if basic:
            headers.update(self.authorization())
        try:
            if chunked and body is not None:
                chunks = [body[i : i + 4096] for i in range(0, len(body), 4096)]
                self.connection.request(
                    method, path, body=iter(chunks), headers=headers, encode_chunked=True
                )
            else:
                self.connection.request(method, path, body=body, headers=headers)
        except OSError:
            # A server may answer (413) and close before the body is sent:
            # its answer is read when it is there.
            if self.connection.sock is None:
                raise
        response = self.connection.getresponse()
        data = response.read()
        answer = EstResponse(
            response.status, {k.lower(): v for k, v in response.getheaders()}, data
        )
        if response.will_close:
            self.close()
        return answer

    def post_csr(
        self, operation: str, csr_der: bytes, label: str | None = None, **kwargs
    ) -> EstResponse:
        """RFC 7030 4.2.1: the base64 DER PKCS#10 as application/pkcs10."""
        headers = {"Content-Type": PKCS10, "Content-Transfer-Encoding": "base64"}
        body = base64.encodebytes(csr_der)
        return self.request("POST", self.url(operation, label), body, headers, **kwargs)

    # -- the operations ---------------------------------------------------------------

    def cacerts(self, label: str | None = None) -> list[x509.Certificate] | EstResponse:
        """RFC 7030 4.1: the CA certificates (no authentication, 4.1.1)."""
        answer = self.request("GET", self.url("cacerts", label), basic=False)
        if answer.status != 200:
            return answer
        return certs_only(answer.body)

    def csrattrs(self, label: str | None = None) -> bytes | EstResponse:
        """RFC 7030 4.5: the DER CsrAttrs; 204 (no attributes) and errors
        as the answer."""
        answer = self.request("GET", self.url("csrattrs", label))
        if answer.status != 200:
            return answer
        return b64decode(answer.body)

    def _enroll(self, operation: str, csr_der: bytes, label: str | None):
        answer = self.post_csr(operation, csr_der, label)
        if answer.status != 200:
            return answer
        certs = certs_only(answer.body)
        if len(certs) != 1:  # RFC 7030 4.2.3: the issued certificate alone
            raise EstClientError(f"{operation} answered {len(certs)} certificates, not one")
        return certs[0]

    def simpleenroll(
        self, csr_der: bytes, label: str | None = None
    ) -> x509.Certificate | EstResponse:
        """RFC 7030 4.2.1; a 202 answer (4.2.3) carries Retry-After."""
        return self._enroll("simpleenroll", csr_der, label)

    def simplereenroll(
        self, csr_der: bytes, label: str | None = None
    ) -> x509.Certificate | EstResponse:
        """RFC 7030 4.2.2: authenticated by the certificate being renewed."""
        return self._enroll("simplereenroll", csr_der, label)

    def serverkeygen(self, csr_der: bytes, label: str | None = None):
        """RFC 7030 4.4: (private key, certificate) from the multipart/mixed
        answer (4.4.2): an application/pkcs8 part (the key, protected by the
        TLS session alone) and an application/pkcs7-mime certs-only part."""
        answer = self.post_csr("serverkeygen", csr_der, label)
        if answer.status != 200:
            return answer
        return parse_serverkeygen(answer.headers.get("content-type", ""), answer.body)


def parse_serverkeygen(content_type: str, body: bytes):
    """(private key, certificate) of a serverkeygen answer (RFC 7030 4.4.2)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    if message.get_content_type() != "multipart/mixed" or not message.is_multipart():
        raise EstClientError(f"serverkeygen answered {content_type!r}, not multipart/mixed")
    parts = list(message.iter_parts())
    if len(parts) != 2:
        raise EstClientError(f"serverkeygen answered {len(parts)} parts, not two")
    key = cert = None
    for part in parts:
        ctype = part.get_content_type()
        data = part.get_payload(decode=False)
        raw = data.encode() if isinstance(data, str) else bytes(data)
        if ctype == "application/pkcs8":
            key = serialization.load_der_private_key(b64decode(raw), None)
        elif ctype == "application/pkcs7-mime":
            smime = part.get_param("smime-type", "").lower()
            if smime == "server-generated-key":
                raise EstClientError("an encrypted key (RFC 7030 4.4.2) is not supported here")
            if smime != "certs-only":
                raise EstClientError(f"unexpected smime-type {smime!r}")
            (cert,) = certs_only(raw)
        else:
            raise EstClientError(f"unexpected part {ctype!r}")
    if key is None or cert is None:
        raise EstClientError("serverkeygen answered no key or no certificate")
    return key, cert
