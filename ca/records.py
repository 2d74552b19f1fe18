"""What the CA hands back to callers: plain records, no database rows."""

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509

from ca.errors import BadInputError
from ca.reasons import RevocationReason
from common.clock import iso8601


def serial_to_db(serial: int) -> str:
    return f"{serial:040x}"


def serial_hex(serial: int) -> str:
    """Display form: lowercase hex, even number of digits (as openssl prints it)."""
    text = f"{serial:x}"
    return text if len(text) % 2 == 0 else "0" + text


def parse_serial(text: str) -> int:
    """A serial as hex, optionally with a 0x prefix or colons (AA:BB:...)."""
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "")
    try:
        value = int(cleaned, 16)
    except ValueError:
        raise BadInputError(f"invalid serial {text!r}: expected hexadecimal digits") from None
    if value <= 0 or value.bit_length() > 159:
        raise BadInputError(f"invalid serial {text!r}: must be positive and at most 20 octets")
    return value


def names_sha256(subject: str, sans) -> str:
    """A certificate's name set: the SHA-256 of its subject (as stored) and
    its SANs ("type:value"; DNS and IP lowercased), sorted, without repeats."""
    names = sorted({s.lower() if s.startswith(("dns:", "ip:")) else s for s in sans})
    return hashlib.sha256("\n".join([subject, *names]).encode()).hexdigest()


def spki_sha256(certificate: x509.Certificate) -> str:
    """The SHA-256 of a certificate's SubjectPublicKeyInfo (the blocklist's
    name of a key, ca/blocklist.py)."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    spki = certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def to_epoch(value: datetime) -> int:
    return int(value.timestamp())


def from_epoch(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


@dataclass(frozen=True)
class CARecord:
    id: int
    name: str
    subject: str
    parent: str | None
    key_id: str
    key_type: str
    serial: int
    not_before: datetime
    not_after: datetime
    origin: str
    certificate: x509.Certificate

    @property
    def signs_arls(self) -> bool:
        """A root made here lists only the CA certificates it signed: its CRL
        is an ARL, and it publishes no delta CRLs."""
        return self.parent is None and self.origin == "created"

    @property
    def cert_der(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding

        return self.certificate.public_bytes(Encoding.DER)


@dataclass(frozen=True)
class CertificateRecord:
    ca: str
    serial: int
    subject: str
    sans: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    status: str  # good | revoked | hold
    revoked_at: datetime | None
    reason: RevocationReason | None
    invalidity_date: datetime | None
    profile: str
    key_type: str
    fingerprint: str
    der: bytes
    has_private_key: bool
    issued_at: datetime
    # The RA's end entity the certificate was issued or assigned to.
    end_entity_id: int | None = None

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.der)

    def summary(self, now: int | None = None) -> dict:
        """The certificate for people and scripts, times in ISO 8601. With
        ``now`` (epoch seconds) its status as of then (``status_at``: active,
        expired, revoked, hold); without, the stored one (good, revoked,
        hold), as audit records keep it."""
        status = self.status if now is None else status_at(self.status, self.not_after, now)
        return {
            "ca": self.ca,
            "serial": serial_hex(self.serial),
            "subject": self.subject,
            "sans": list(self.sans),
            "profile": self.profile,
            "key_type": self.key_type,
            "not_before": iso8601(self.not_before),
            "not_after": iso8601(self.not_after),
            "status": status,
            "revoked_at": iso8601(self.revoked_at),
            "reason": self.reason.name if self.reason is not None else None,
            "invalidity_date": iso8601(self.invalidity_date),
            "fingerprint_sha256": self.fingerprint,
        }


def status_at(stored: str, not_after: "int | datetime", now: int) -> str:
    """The status at ``now`` of a certificate whose stored status is
    ``stored`` (good, revoked, hold) and whose notAfter is ``not_after``: a
    good one is active until its notAfter (inclusive, RFC 5280 4.1.2.5) and
    expired after it; a revoked or held one stays revoked or held after it
    expires."""
    if isinstance(not_after, datetime):
        not_after = int(not_after.timestamp())
    if stored == "good":
        return "active" if not_after >= now else "expired"
    return stored


def certificate_from_row(row, ca_name: str) -> CertificateRecord:
    return CertificateRecord(
        ca=ca_name,
        serial=int(row.serial, 16),
        subject=row.subject,
        sans=tuple(json.loads(row.sans)),
        not_before=from_epoch(row.not_before),
        not_after=from_epoch(row.not_after),
        status=row.status,
        revoked_at=from_epoch(row.revoked_at),
        reason=None if row.revocation_reason is None else RevocationReason(row.revocation_reason),
        invalidity_date=from_epoch(row.invalidity_date),
        profile=row.profile,
        key_type=row.key_type,
        fingerprint=row.fingerprint,
        der=row.der,
        has_private_key=row.private_key is not None,
        issued_at=from_epoch(row.issued_at),
        end_entity_id=row.end_entity_id,
    )
