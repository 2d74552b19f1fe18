"""What a scan saw: the records the scanners return and the RA records.

Every certificate is DER bytes as found; nothing here is parsed or judged
(that is ``ra/discovery.py``'s work), so a scanner's output can be compared
byte for byte with what the server sent or the file held.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class Endpoint:
    """One place a TLS server may answer: an address (an IP literal, IPv4
    or IPv6, as connected to), a port, and the server name sent in SNI
    (None: no SNI sent). ``target`` is the job's target it came from (a host
    name, an address or a CIDR range)."""

    address: str
    port: int
    sni: str | None = None
    target: str = ""

    def key(self) -> str:
        """A stable text key: ``address|port|sni``."""
        return f"{self.address}|{self.port}|{self.sni or ''}"


@dataclass
class TLSResult:
    """What one endpoint answered. ``error`` is None when a TLS handshake
    completed; otherwise one line saying what happened instead (``closed``:
    the connection was refused; ``timeout``: no answer within the deadline;
    ``reset``; ``not_tls``; ``starttls_refused``; ``handshake``), with
    ``detail`` in words."""

    endpoint: Endpoint
    error: str | None = None
    detail: str = ""
    chain: list[bytes] = field(default_factory=list)  # DER, in the order sent, leaf first
    tls_version: str | None = None  # "TLSv1.3", "TLSv1.2", ...
    cipher: str | None = None  # OpenSSL's name, e.g. "TLS_AES_256_GCM_SHA384"
    ocsp_staple: bytes | None = None  # the DER OCSPResponse stapled, if any
    starttls: str | None = None  # the protocol used before TLS (smtp, imap, ...), if any
    seconds: float = 0.0


@dataclass
class FileEntry:
    """One certificate found on disk or in a cluster: where (``path``, and
    ``entry``: the keystore alias, the PEM block's position as ``#2``, the
    Kubernetes ``namespace/name`` and data key), what kind of container held
    it (pem, der, pkcs7, pkcs12, jks, jceks, kubernetes), the certificate
    and the rest of the chain stored with it, and whether a private key for
    it sits beside it (in the same entry, or in a key file next to it):
    ``key_path`` and its permission bits."""

    path: str
    entry: str
    kind: str
    certificate: bytes
    chain: list[bytes] = field(default_factory=list)
    has_private_key: bool = False
    key_path: str | None = None
    key_mode: int | None = None  # st_mode & 0o777 of the file holding the key

    def key(self) -> str:
        return f"{self.path}|{self.entry}"


@dataclass
class ScanProblem:
    """Something a scan could not read: a file, a store whose passwords all
    failed, a secret that is not a certificate. Reported, never fatal."""

    path: str
    message: str


@dataclass
class FileScan:
    entries: list[FileEntry] = field(default_factory=list)
    problems: list[ScanProblem] = field(default_factory=list)
    files_examined: int = 0
