"""The VA's settings: the ``[va]`` table of the configuration, typed.

One frozen object, built once by ``VASettings.from_table`` (the one
validating constructor) and handed whole to what runs the VA; each part
reads the group it uses (``settings.http`` for the HTTP front,
``settings.admin`` for the admin listener, ``settings.policy`` for what
``revoca va import`` writes into issuer records). Every field says what it
is for and how to size it; ``revoca/default.toml`` repeats the same keys
with the same defaults for operators (a test holds them together).
"""

import enum
from dataclasses import dataclass
from pathlib import Path

from common.settings import SettingsError, build, group, setting
from va.policy import IssuerPolicy


class CertIDHash(enum.Enum):
    """A CertID hash algorithm (RFC 6960 4.1.1), by its configuration word;
    ``code`` is the number the OCSP core and the store use for it."""

    SHA1 = "sha1"
    SHA256 = "sha256"
    SHA384 = "sha384"
    SHA512 = "sha512"

    @property
    def code(self) -> int:
        return _CODES[self]


_CODES = {CertIDHash.SHA1: 1, CertIDHash.SHA256: 2, CertIDHash.SHA384: 3, CertIDHash.SHA512: 4}


@dataclass(frozen=True)
class HTTPSettings:
    """The OCSP HTTP front of each worker: limits against hostile clients."""

    ocsp_path: str = setting(
        "/ocsp",
        "OCSP path prefix: POST to it, or GET <prefix>/<url-encoded base64 request> "
        "(RFC 6960 Appendix A). Must match the ocsp_url of the profiles.",
        pattern=r"/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*",
    )
    max_body: int = setting(
        10 * 1024,
        "Largest POST body accepted; larger requests get malformedRequest. A one-CertID "
        "request with a nonce is about 120 bytes, a signed one a few KiB.",
        minimum=1,
        maximum=1 << 20,
    )
    max_url: int = setting(
        8 * 1024,
        "Longest GET URL accepted; longer ones get malformedRequest (RFC 9919 asks "
        "clients to use POST past 255 bytes).",
        minimum=1,
        maximum=1 << 20,
    )
    request_timeout: float = setting(
        10.0,
        "Seconds from a request's first byte until its headers and body have arrived; "
        "slower clients get 408 and the connection closes.",
        minimum=0.001,
    )
    idle_timeout: float = setting(
        60.0,
        "Seconds a keep-alive connection with nothing in progress, or one that stopped "
        "reading its answers, stays open.",
        minimum=0.001,
    )
    max_connections: int = setting(
        10_000,
        "Open connections per worker; more are closed at once. Each costs a few KiB.",
        minimum=1,
    )
    backlog: int = setting(
        4096,
        "Connections the kernel has accepted and no worker has taken yet (the listen(2) "
        "backlog, per worker); a burst of new connections beyond it waits a second for "
        "SYN retransmission. Capped by net.core.somaxconn (4096 on current kernels; a "
        "larger value is logged at start and the cap used).",
        minimum=1,
        maximum=65535,
    )
    max_header_bytes: int = setting(
        16 * 1024,
        "Largest header section; more gets 431.",
        minimum=64,
        maximum=1 << 20,
    )
    max_headers: int = setting(
        100, "Most header lines in one request; more gets 431.", minimum=1, maximum=10_000
    )
    max_pipeline: int = setting(
        64,
        "Answers queued on one connection (pipelining faster than it reads) before the "
        "connection is no longer read until they drain.",
        minimum=1,
        maximum=100_000,
    )
    fresh_signing_cap: int = setting(
        64,
        "Fresh signatures (nonces, SHA-384/512 CertIDs, misses) in flight per worker; past "
        "it the answer is tryLater, never an unbounded queue. About 40 us each on one "
        "core (P-256): 64 bound the wait to a few milliseconds. 0 answers every request "
        "that needs one with tryLater.",
        minimum=0,
    )
    signing_threads: int = setting(
        0,
        "Threads per worker for those signatures: 0 signs in the worker's event loop (best "
        "with one worker per core); more only where cores outnumber workers.",
        minimum=0,
        maximum=64,
    )


@dataclass(frozen=True)
class AdminSettings:
    """The admin listener: the publish protocol (status events, CRLs, issuers)."""

    host: str = setting("127.0.0.1", "Address of the admin listener.", pattern=r"[0-9A-Za-z.:-]+")
    port: int = setting(
        8081, "Its port; 0 turns it off (no publisher can reach this VA).", minimum=0, maximum=65535
    )
    token_file: Path | None = setting(
        None,
        "The bearer token publishers must send (mode 0600, at least 32 characters; "
        "`revoca va admin-token` makes one). Empty: <va directory>/admin-token.",
    )
    tls_cert: Path | None = setting(
        None, "Mutual TLS (all three, or none): the listener's certificate (PEM)."
    )
    tls_key: Path | None = setting(
        None, "Its key (PEM; may be encrypted with the [keys] passphrase)."
    )
    tls_client_ca: Path | None = setting(
        None, "The CA whose client certificates publishers must present. The token is still needed."
    )

    def check(self) -> None:
        tls = (self.tls_cert, self.tls_key, self.tls_client_ca)
        if any(tls) and not all(tls):
            # check() names its own fields; the table's keys carry the "admin_" prefix.
            raise SettingsError(
                "tls_cert", "needs admin_tls_key and admin_tls_client_ca: all three, or none"
            )

    @property
    def tls(self) -> tuple[Path, Path, Path] | None:
        """(certificate, key, client CA), or None for plain HTTP."""
        if self.tls_cert is None or self.tls_key is None or self.tls_client_ca is None:
            return None
        return self.tls_cert, self.tls_key, self.tls_client_ca


@dataclass(frozen=True)
class VASettings:
    directory: Path | None = setting(
        None,
        "The VA's own directory: LMDB (lmdb/) and responder keys (keys/, each a 0600 PKCS#8 "
        "file encrypted with the [keys] passphrase). Empty: <paths.data_dir>/va.",
    )
    host: str = setting("127.0.0.1", "Where `revoca va serve` listens.", pattern=r"[0-9A-Za-z.:-]+")
    port: int = setting(
        8080,
        "Its port (0: any free port). The workers of one VA share it; nothing else may.",
        minimum=0,
        maximum=65535,
    )
    workers: int = setting(1, "Serving processes; one per core.", minimum=1, maximum=256)
    max_certids: int = setting(
        8,
        "Most CertIDs answered in one request; more get malformedRequest. Each costs a "
        "status read and a SingleResponse in a fresh signature.",
        minimum=1,
        maximum=256,
    )
    map_size: int = setting(
        1 << 30,
        "Initial LMDB map size in bytes; it doubles when full, up to max_map_size. Budget "
        "about 1 KiB per certificate for its status and two pre-signed responses.",
        minimum=1 << 16,
    )
    max_map_size: int = setting(
        1 << 40,
        "Largest the LMDB map may grow (bytes); a write that needs more fails with a "
        "clear error and changes nothing.",
        minimum=1 << 16,
    )
    refresh_seconds: float = setting(
        300.0,
        "How often a running VA looks for responses to re-sign (missing, changed, or past "
        "half their validity). Much shorter than half the validity.",
        minimum=1,
    )
    presign_workers: int = setting(
        0,
        "Processes that sign during `revoca va presign` (0: one per core).",
        minimum=0,
        maximum=256,
    )
    presign_algorithms: tuple[CertIDHash, ...] = setting(
        (CertIDHash.SHA1, CertIDHash.SHA256),
        "CertID hash algorithms a response is pre-signed for, per serial: each costs a "
        "signature and about 400 bytes. SHA-1 is what OpenSSL and most clients send, "
        "SHA-256 what RFC 9919 (the lightweight profile) recommends; requests with "
        "others are signed fresh.",
    )
    http: HTTPSettings = group(HTTPSettings, doc="The OCSP HTTP front.")
    admin: AdminSettings = group(AdminSettings, prefix="admin_", doc="The admin listener.")
    policy: IssuerPolicy = group(
        IssuerPolicy, doc="Issuer policies `revoca va import` writes into issuer records."
    )

    def check(self) -> None:
        if self.max_map_size < self.map_size:
            raise SettingsError("max_map_size", "must not be smaller than map_size")
        if not self.presign_algorithms or len(set(self.presign_algorithms)) != len(
            self.presign_algorithms
        ):
            raise SettingsError("presign_algorithms", "must name each algorithm once, at least one")

    @classmethod
    def from_table(cls, table: dict, data_dir: Path) -> "VASettings":
        """``[va]`` of the merged configuration; paths left empty are derived
        from ``data_dir`` and the VA's directory."""
        settings = build(cls, table, "va")
        return settings.resolved(data_dir)

    def resolved(self, data_dir: Path) -> "VASettings":
        """These settings with the derived paths filled in."""
        from dataclasses import replace

        directory = self.directory or Path(data_dir) / "va"
        admin = self.admin
        if admin.token_file is None:
            admin = replace(admin, token_file=directory / "admin-token")
        return replace(self, directory=directory, admin=admin)

    @property
    def lmdb_dir(self) -> Path:
        return self._directory / "lmdb"

    @property
    def key_dir(self) -> Path:
        return self._directory / "keys"

    @property
    def _directory(self) -> Path:
        if self.directory is None:
            raise ValueError("VASettings.directory is not resolved (call resolved(data_dir))")
        return self.directory

    @property
    def algorithm_codes(self) -> tuple[int, ...]:
        """``presign_algorithms`` as the OCSP core's hash algorithm numbers."""
        return tuple(algorithm.code for algorithm in self.presign_algorithms)
