"""The CA service's shared machinery: configuration, the audit wrapper,
lookups, and the one issuance path every certificate goes through.

Every change is one SQL transaction holding the certificate row, its outbox
event for the publisher and its audit record, so none of them can exist
without the others. Refusals are audited too, in a transaction of their own,
and leave certificates and outbox untouched.
"""

import hashlib
import json
import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import Connection, insert, select, text

from ca.errors import (
    BadInputError,
    NotFoundError,
    PolicyError,
)
from ca.export import export_certificate
from ca.inventory import EXTERNAL
from ca.keys import (
    PassphraseSource,
    signature_algorithm_for,
)
from ca.policy import Issuer, apply_profile
from ca.profiles import Profile
from ca.records import (
    CARecord,
    CertificateRecord,
    certificate_from_row,
    from_epoch,
    serial_hex,
    serial_to_db,
    to_epoch,
)
from ca.requests import CertificateRequest, format_san
from ca.token import CryptoToken
from ca.x509build import encode_tbs, new_serial, sign_certificate
from store import Store
from store.audit import AuditLog
from store.events import encode_payload
from store.tables.ca import cas, certificates
from store.tables.outbox import outbox

OUTBOX_LOCK = 0x7265766F  # pg_advisory_xact_lock key for outbox writers ("revo")

_CA_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def utc_now() -> datetime:
    return datetime.now(UTC)


def check_ca_name(name: str) -> str:
    if not _CA_NAME.match(name):
        raise BadInputError(
            f"invalid CA name {name!r}: use lowercase letters, digits, '.', '_' and '-' "
            "(at most 64, starting with a letter or digit)"
        )
    return name


def load_certificate(data: bytes, what: str = "certificate") -> x509.Certificate:
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise BadInputError(f"{what} is not a valid X.509 certificate (PEM or DER)") from None


def public_key_der(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class ServiceCore:
    def __init__(
        self,
        store: Store,
        token: CryptoToken,
        profiles: dict[str, Profile],
        *,
        base_url: str,
        passphrase: PassphraseSource,
        clock: Callable[[], datetime] = utc_now,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ):
        self.store = store
        self.token = token
        self.profiles = profiles
        self.base_url = base_url
        self.passphrase = passphrase
        self.clock = clock
        self.random_bytes = random_bytes
        # The audit writer, shared with the RA: its records go into the
        # caller's transaction, timed by this service's clock.
        self.audit = AuditLog(store, self._now_ms)

    # -- helpers -----------------------------------------------------------

    def profile(self, name: str) -> Profile:
        try:
            return self.profiles[name]
        except KeyError:
            raise NotFoundError(
                f"no profile {name!r}; configured: {', '.join(sorted(self.profiles))}"
            ) from None

    def _now_ms(self) -> int:
        return int(self.clock().timestamp() * 1000)

    def _audited(self, actor: str, action: str, target: str):
        """Record a refused or failed operation in the audit log, then re-raise."""
        return self.audit.failures(actor, action, target)

    def audit_ok(self, conn: Connection, actor: str, action: str, target: str, **detail) -> None:
        """Record a completed operation in the audit log, inside ``conn``'s transaction."""
        self.audit.ok(conn, actor, action, target, **detail)

    @staticmethod
    def _own(ca: CARecord) -> CARecord:
        """Refuse to sign, revoke or publish for an external issuer."""
        if ca.origin == EXTERNAL:
            raise PolicyError(
                f"{ca.name!r} is the issuer of inventory certificates: its key is not "
                "here, so nothing is issued, revoked or published under it"
            )
        return ca

    def _ca_row(self, conn: Connection, name: str):
        row = conn.execute(select(cas).where(cas.c.name == name)).one_or_none()
        if row is None:
            raise NotFoundError(f"no CA named {name!r}")
        return row

    def _ca_record(self, conn: Connection, row) -> CARecord:
        parent = None
        if row.parent_id is not None:
            parent = conn.execute(select(cas.c.name).where(cas.c.id == row.parent_id)).scalar_one()
        return CARecord(
            id=row.id,
            name=row.name,
            subject=row.subject,
            parent=parent,
            key_id=row.key_id,
            key_type=row.key_type,
            serial=int(row.serial, 16),
            not_before=from_epoch(row.not_before),
            not_after=from_epoch(row.not_after),
            origin=row.origin,
            certificate=x509.load_der_x509_certificate(row.cert_der),
        )

    def _sign(
        self,
        key_id: str,
        signer_public_key,
        template,
        serial: int,
        issuer_name: x509.Name,
        issuer_cert: x509.Certificate | None,
    ) -> x509.Certificate:
        algorithm = signature_algorithm_for(signer_public_key)
        tbs = encode_tbs(
            serial=serial,
            algorithm=algorithm,
            issuer=issuer_name,
            subject=template.subject,
            not_before=template.not_before,
            not_after=template.not_after,
            public_key=template.public_key,
            extensions=list(template.extensions),
        )
        return sign_certificate(
            tbs, algorithm, lambda data: self.token.sign(key_id, data, algorithm), issuer_cert
        )

    def _unused_serial(self, conn: Connection, ca_id: int) -> int:
        while True:
            serial = new_serial(self.random_bytes)
            taken = conn.execute(
                select(certificates.c.id).where(
                    certificates.c.ca_id == ca_id, certificates.c.serial == serial_to_db(serial)
                )
            ).first()
            if taken is None:
                return serial

    # -- queries ------------------------------------------------------------

    def get_ca(self, name: str) -> CARecord:
        with self.store.read() as conn:
            return self._ca_record(conn, self._ca_row(conn, name))

    def get_own_ca(self, name: str) -> CARecord:
        """A CA whose key is held here: PolicyError for an issuer of
        inventory certificates (nothing is signed or published under it)."""
        return self._own(self.get_ca(name))

    def list_cas(self, *, external: bool = False) -> list[CARecord]:
        """The CAs held here (with ``external``, also the issuers of
        inventory certificates, which have no key here)."""
        with self.store.read() as conn:
            query = select(cas).order_by(cas.c.id)
            if not external:
                query = query.where(cas.c.origin != EXTERNAL)
            rows = conn.execute(query).all()
            return [self._ca_record(conn, row) for row in rows]

    def chain(self, name: str) -> list[x509.Certificate]:
        """The CA's certificate followed by its parents, up to the root held here."""
        out = []
        with self.store.read() as conn:
            row = self._ca_row(conn, name)
            while row is not None:
                out.append(x509.load_der_x509_certificate(row.cert_der))
                if row.parent_id is None:
                    break
                row = conn.execute(select(cas).where(cas.c.id == row.parent_id)).one()
        return out

    def get_certificate(self, ca_name: str, serial: int) -> CertificateRecord:
        with self.store.read() as conn:
            ca_row = self._ca_row(conn, ca_name)
            row = self._cert_row(conn, ca_row, serial)
            return certificate_from_row(row, ca_name)

    def private_key_pem(self, ca_name: str, serial: int) -> bytes | None:
        """The encrypted PKCS#8 key of a certificate whose key was generated here."""
        with self.store.read() as conn:
            return self._cert_row(conn, self._ca_row(conn, ca_name), serial).private_key

    def export(
        self,
        ca_name: str,
        serial: int,
        fmt: str,
        *,
        export_passphrase: bytes | None = None,
        actor: str = "system",
    ) -> bytes:
        """A certificate with its chain in one of ``ca.export.FORMATS``."""
        with self._audited(actor, "ca.export", f"{ca_name}/{serial_hex(serial)}"):
            record = self.get_certificate(ca_name, serial)
            chain = self.chain(ca_name)
            if fmt != "p12":
                return export_certificate(record, chain, fmt)
            data = export_certificate(
                record,
                chain,
                fmt,
                private_key_pem=self.private_key_pem(ca_name, serial),
                key_passphrase=self.passphrase.get(),
                export_passphrase=export_passphrase,
            )
            # Handing out a private key is worth an audit record of its own.
            with self.store.transaction() as conn:
                self.audit_ok(
                    conn, actor, "ca.export", f"{ca_name}/{serial_hex(serial)}", format=fmt
                )
            return data

    def _cert_row(self, conn, ca_row, serial: int):
        row = conn.execute(
            select(certificates).where(
                certificates.c.ca_id == ca_row.id, certificates.c.serial == serial_to_db(serial)
            )
        ).one_or_none()
        if row is None:
            raise NotFoundError(
                f"CA {ca_row.name!r} has no certificate with serial {serial_hex(serial)}"
            )
        return row

    def list_certificates(
        self, ca_name: str | None = None, status: str | None = None, limit: int = 1000
    ) -> list[CertificateRecord]:
        with self.store.read() as conn:
            names = dict(conn.execute(select(cas.c.id, cas.c.name)).all())
            query = select(certificates).order_by(certificates.c.id).limit(limit)
            if ca_name is not None:
                query = query.where(certificates.c.ca_id == self._ca_row(conn, ca_name).id)
            if status is not None:
                query = query.where(certificates.c.status == status)
            return [certificate_from_row(r, names[r.ca_id]) for r in conn.execute(query)]

    # -- the issuance path -------------------------------------------------

    def _issue(
        self,
        ca: CARecord,
        profile: Profile,
        request: CertificateRequest,
        *,
        days: int | None,
        actor: str,
        private_key: bytes | None = None,
        serial: int | None = None,
        action: str = "ca.issue",
        on_insert=None,
        extra_audit: dict | None = None,
        end_entity_id: int | None = None,
    ) -> CertificateRecord:
        self._own(ca)
        if ca.not_after <= self.clock():
            raise PolicyError(f"CA {ca.name!r} expired on {ca.not_after:%Y-%m-%d}")
        if serial is None:
            # Chosen first: a partitioned profile's CRL DP depends on it. The
            # unique (ca_id, serial) constraint catches the (2**-127) clash.
            with self.store.read() as conn:
                serial = self._unused_serial(conn, ca.id)
        template = apply_profile(
            profile,
            request,
            Issuer(ca.name, ca.certificate),
            now=self.clock(),
            days=days,
            base_url=self.base_url,
            ca_name=ca.name,
            serial=serial,
        )
        issuer_public_key = ca.certificate.public_key()
        with self.store.transaction() as conn:
            cert = self._sign(
                ca.key_id,
                issuer_public_key,
                template,
                serial,
                ca.certificate.subject,
                ca.certificate,
            )
            der = cert.public_bytes(serialization.Encoding.DER)
            sans = [format_san(n) for n in template.sans]
            conn.execute(
                insert(certificates).values(
                    ca_id=ca.id,
                    serial=serial_to_db(serial),
                    subject=cert.subject.rfc4514_string(),
                    sans=json.dumps(sans),
                    not_before=to_epoch(template.not_before),
                    not_after=to_epoch(template.not_after),
                    status="good",
                    profile=profile.name,
                    key_type=template.key_spec,
                    fingerprint=hashlib.sha256(der).hexdigest(),
                    der=der,
                    private_key=private_key,
                    issued_at=to_epoch(self.clock()),
                    crl_shard=profile.shard_of(serial),
                    end_entity_id=end_entity_id,
                )
            )
            if on_insert is not None:
                on_insert(conn, cert, template.key_spec)
            self._outbox(conn, ca, serial, "issued", not_after=to_epoch(template.not_after))
            self.audit_ok(
                conn,
                actor,
                action,
                f"{ca.name}/{serial_hex(serial)}",
                profile=profile.name,
                subject=cert.subject.rfc4514_string(),
                sans=sans,
                not_after=template.not_after.isoformat(),
                **(extra_audit or {}),
            )
            row = self._cert_row(conn, self._ca_row(conn, ca.name), serial)
            return certificate_from_row(row, ca.name)

    def _outbox(self, conn: Connection, ca: CARecord, serial: int, event: str, **payload) -> int:
        """Write the event; returns its outbox id (the certificate's status_seq
        for status changes)."""
        if conn.dialect.name == "postgresql":
            # Ids come from a sequence before commit: two writers could make id
            # 11 visible before id 10, and a publisher past 11 would never see
            # 10. Serialising outbox writers until commit keeps ids in commit
            # order. (SQLite's BEGIN IMMEDIATE already serialises writers.)
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": OUTBOX_LOCK})
        return conn.execute(
            insert(outbox).values(
                ca_id=ca.id,
                serial=serial_to_db(serial),
                event=event,
                payload=encode_payload(event, **payload),
                created_at_ms=self._now_ms(),
            )
        ).inserted_primary_key[0]
