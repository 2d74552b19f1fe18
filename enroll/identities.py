"""The certificates the enrollment listeners hold themselves, issued by
the CAs here (their keys kept encrypted by the CA, as any key made here):

- the SCEP RA certificate of each CA (profile ``scep-ra``, RSA: devices
  encrypt their requests to it, RFC 8894 2.1), and
- the EST listener's TLS certificate when ``[enroll] tls_cert`` is not set
  (``tls-server``, for ``[enroll] host``).

Each is the newest one with more than a third of its life left, or a new
one; held in memory until that third begins.
"""

import ipaddress
import logging
import threading
from collections.abc import Callable

from ca import catalog
from ca.errors import CAError, ConfigError
from ca.records import serial_hex
from ca.token import load_private_key

log = logging.getLogger("revoca.enroll")

RA_PROFILE = "scep-ra"
TLS_PROFILE = "tls-server"


class Identities:
    def __init__(self, ca, passphrase: bytes, now: Callable[[], int]):
        self.ca = ca
        self.store = ca.store
        self.now = now
        self._passphrase = passphrase
        self._lock = threading.Lock()
        self._held: dict[tuple, tuple] = {}

    def scep_ra(self, ca_name: str, key_type: str):
        """(certificate, key) of the SCEP RA of CA ``ca_name``."""
        ca = self.ca.get_ca(ca_name)
        return self.identity(ca_name, RA_PROFILE, f"CN={ca.name} SCEP RA", [], key_type)

    def listener(self, host: str, first_ca: str | None):
        """(certificate, key, chain) for a TLS listener on ``host``: from
        ``first_ca`` if it issues tls-server, else from the first CA here
        that is not self-signed and does."""
        kind = "ip" if _is_address(host) else "dns"
        first = [first_ca] if first_ca else []
        names = first + [
            ca.name
            for ca in self.ca.list_cas()
            if ca.certificate.issuer != ca.certificate.subject and ca.name not in first
        ]
        reasons = []
        for ca_name in names:
            try:
                cert, key = self.identity(
                    ca_name, TLS_PROFILE, f"CN={host}", [f"{kind}:{host}"], "ec-p256"
                )
            except CAError as exc:
                reasons.append(f"{ca_name}: {exc.message}")
                continue
            return cert, key, self.ca.chain(ca_name)
        raise ConfigError(
            "no CA here can issue the EST listener's TLS certificate; set [enroll] tls_cert "
            "and tls_key" + (f" ({'; '.join(reasons)})" if reasons else "")
        )

    def identity(self, ca_name: str, profile: str, subject: str, sans: list[str], key_type: str):
        """(certificate, private key) issued by ``ca_name`` for this service:
        the newest one of ``profile`` for ``subject`` with more than a third
        of its life left, else a new one (its key kept encrypted by the CA)."""
        key = (ca_name, profile, subject, tuple(sans))
        with self._lock:
            cached = self._held.get(key)
            now = self.now()
            if cached and cached[2] > now:
                return cached[0], cached[1]
            record = self._find_identity(ca_name, profile, subject, now)
            if record is None:
                record = self.ca.issue_with_new_key(
                    ca_name, profile, subject, sans, key_type=key_type, actor="enroll"
                )
                log.info(
                    "issued the %s certificate %s/%s for %s",
                    profile,
                    ca_name,
                    serial_hex(record.serial),
                    subject,
                )
            pem = self.ca.private_key_pem(record.ca, record.serial)
            private_key = load_private_key(pem, self._passphrase, what="the service key")
            start, end = record.not_before.timestamp(), record.not_after.timestamp()
            renew_at = int(end - (end - start) / 3)
            self._held[key] = (record.certificate, private_key, renew_at)
            return record.certificate, private_key

    def _find_identity(self, ca_name: str, profile: str, subject: str, now: int):
        with self.store.read() as conn:
            found = catalog.find(
                conn,
                catalog.CertificateFilter(ca=ca_name, profile=profile, status="active", now=now),
            )
        best = None
        for _, record in found:
            start, end = record.not_before.timestamp(), record.not_after.timestamp()
            if record.subject != subject or not record.has_private_key:
                continue
            if end - now < (end - start) / 3:
                continue
            if best is None or record.not_after > best.not_after:
                best = record
        return best


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
