"""The CA's operations: create and import CAs, issue, revoke, hold, release.

Every change is one SQL transaction holding the certificate row, its outbox
event for the publisher and its audit record, so none of them can exist
without the others. Refusals are audited too, in a transaction of their own,
and leave certificates and outbox untouched.
"""

import hashlib
import json
import logging
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import Connection, insert, select, update

from ca import audit
from ca.errors import (
    BadInputError,
    CAError,
    ConflictError,
    NotFoundError,
    PolicyError,
)
from ca.export import export_certificate
from ca.keys import (
    PassphraseSource,
    check_key_spec,
    generate_private_key,
    key_spec_of,
    signature_algorithm_for,
)
from ca.policy import Issuer, apply_profile
from ca.profiles import Profile
from ca.reasons import RevocationReason
from ca.records import (
    CARecord,
    CertificateRecord,
    certificate_from_row,
    from_epoch,
    serial_hex,
    serial_to_db,
    to_epoch,
)
from ca.requests import CertificateRequest, format_san, parse_csr, parse_san, parse_subject
from ca.store import Store
from ca.store.schema import cas, certificates, outbox
from ca.token import CryptoToken, load_private_key
from ca.x509build import encode_tbs, new_serial, sign_certificate

log = logging.getLogger("revoca.ca")

_CA_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
# A revocation time a little ahead of our clock is tolerated (clock skew between nodes).
MAX_FUTURE_SKEW = timedelta(minutes=5)


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


def ocsp_signer_subject(ca: CARecord) -> x509.Name:
    """CA-style naming (BR 7.1.2.8.2 defers to 7.1.2.10.2): the CA's country
    and organization, and a CN that says what the certificate is for."""
    keep = (x509.NameOID.COUNTRY_NAME, x509.NameOID.ORGANIZATION_NAME)
    attributes = [a for a in ca.certificate.subject if a.oid in keep]
    attributes.append(x509.NameAttribute(x509.NameOID.COMMON_NAME, f"{ca.name} OCSP responder"))
    return x509.Name(attributes)


def _public_der(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class CAService:
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

    @contextmanager
    def _audited(self, actor: str, action: str, target: str) -> Iterator[None]:
        """Record a refused or failed operation in the audit log, then re-raise."""
        try:
            yield
        except CAError as exc:
            result = "refused" if isinstance(exc, PolicyError | BadInputError) else "error"
            try:
                with self.store.transaction() as conn:
                    audit.append(
                        conn,
                        at_ms=self._now_ms(),
                        actor=actor,
                        action=action,
                        target=target,
                        result=result,
                        detail={"error": exc.code, "message": exc.message},
                    )
            except CAError as audit_exc:
                log.error("could not audit a failed %s: %s", action, audit_exc.message)
            raise

    def _audit_ok(self, conn: Connection, actor: str, action: str, target: str, **detail) -> None:
        audit.append(
            conn,
            at_ms=self._now_ms(),
            actor=actor,
            action=action,
            target=target,
            result="ok",
            detail=detail,
        )

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

    def _ensure_name_free(self, name: str) -> None:
        with self.store.transaction() as conn:
            if conn.execute(select(cas.c.id).where(cas.c.name == name)).first():
                raise ConflictError(f"a CA named {name!r} already exists")

    def _new_ca_key(self, name: str, key_type: str):
        key_id = f"ca-{name}"
        if self.token.has_key(key_id):
            raise ConflictError(
                f"a key {key_id!r} already exists in the token but no CA uses it; "
                "move it away or choose another CA name"
            )
        return key_id, self.token.generate_key(key_id, check_key_spec(key_type))

    # -- CA hierarchy ----------------------------------------------------

    def init_root(
        self,
        name: str,
        subject: str,
        *,
        key_type: str = "ec-p384",
        days: int | None = None,
        actor: str = "system",
    ) -> CARecord:
        with self._audited(actor, "ca.init_root", name):
            check_ca_name(name)
            profile = self.profile("root-ca")
            parsed_subject = parse_subject(subject)
            self._ensure_name_free(name)
            check_key_spec(key_type)
            if key_type not in profile.key_types:
                raise PolicyError(f"profile 'root-ca' does not allow key type {key_type}")
            key_id, public_key = self._new_ca_key(name, key_type)
            try:
                request = CertificateRequest(parsed_subject, public_key, ())
                template = apply_profile(
                    profile,
                    request,
                    None,
                    now=self.clock(),
                    days=days,
                    base_url=self.base_url,
                    ca_name=name,
                )
                serial = new_serial(self.random_bytes)
                cert = self._sign(key_id, public_key, template, serial, template.subject, None)
                with self.store.transaction() as conn:
                    self._insert_ca(conn, name, cert, key_id, template.key_spec, None, "created")
                    self._audit_ok(
                        conn,
                        actor,
                        "ca.init_root",
                        name,
                        serial=serial_hex(serial),
                        subject=cert.subject.rfc4514_string(),
                        key_type=key_type,
                    )
                    return self._ca_record(conn, self._ca_row(conn, name))
            except BaseException:
                self.token.remove_key(key_id)
                raise

    def create_sub(
        self,
        name: str,
        parent: str,
        subject: str,
        *,
        key_type: str = "ec-p256",
        days: int | None = None,
        actor: str = "system",
    ) -> CARecord:
        with self._audited(actor, "ca.create_sub", name):
            check_ca_name(name)
            profile = self.profile("sub-ca")
            parsed_subject = parse_subject(subject)
            self._ensure_name_free(name)
            with self.store.transaction() as conn:
                parent_ca = self._ca_record(conn, self._ca_row(conn, parent))
            check_key_spec(key_type)
            if key_type not in profile.key_types:
                raise PolicyError(f"profile 'sub-ca' does not allow key type {key_type}")
            key_id, public_key = self._new_ca_key(name, key_type)
            try:
                # The sub-CA's own certificate is one of the parent's: it gets a
                # certificates row, an outbox event, and the parent's URLs.
                self._issue(
                    parent_ca,
                    profile,
                    CertificateRequest(parsed_subject, public_key, ()),
                    days=days,
                    actor=actor,
                    action="ca.create_sub",
                    on_insert=lambda conn, cert, spec: self._insert_ca(
                        conn, name, cert, key_id, spec, parent_ca.id, "created"
                    ),
                )
            except BaseException:
                self.token.remove_key(key_id)
                raise
            return self.get_ca(name)

    def import_ca(
        self,
        name: str,
        cert_data: bytes,
        key_data: bytes,
        key_passphrase: bytes | None = None,
        *,
        actor: str = "system",
    ) -> CARecord:
        """Take over a CA made elsewhere (for example with openssl)."""
        with self._audited(actor, "ca.import", name):
            check_ca_name(name)
            cert = load_certificate(cert_data, "CA certificate")
            try:
                constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
            except x509.ExtensionNotFound:
                constraints = None
            if constraints is None or not constraints.ca:
                raise PolicyError("the certificate is not a CA certificate (basicConstraints cA)")
            private_key = load_private_key(key_data, key_passphrase, what="the CA private key")
            if _public_der(private_key.public_key()) != _public_der(cert.public_key()):
                raise BadInputError("the private key does not belong to the CA certificate")
            key_spec = key_spec_of(cert.public_key())
            self._ensure_name_free(name)
            with self.store.transaction() as conn:
                parent_id = self._find_parent(conn, cert)
            key_id = f"ca-{name}"
            if self.token.has_key(key_id):
                raise ConflictError(f"a key {key_id!r} already exists in the token")
            self.token.import_key(key_id, private_key)
            try:
                with self.store.transaction() as conn:
                    self._insert_ca(conn, name, cert, key_id, key_spec, parent_id, "imported")
                    self._audit_ok(
                        conn,
                        actor,
                        "ca.import",
                        name,
                        subject=cert.subject.rfc4514_string(),
                        serial=serial_hex(cert.serial_number),
                    )
                    return self._ca_record(conn, self._ca_row(conn, name))
            except BaseException:
                self.token.remove_key(key_id)
                raise

    def _find_parent(self, conn: Connection, cert: x509.Certificate) -> int | None:
        if cert.issuer == cert.subject:
            try:
                cert.verify_directly_issued_by(cert)
                return None
            except Exception:
                raise BadInputError(
                    "the self-issued CA certificate's signature does not verify"
                ) from None
        for row in conn.execute(select(cas.c.id, cas.c.cert_der)):
            candidate = x509.load_der_x509_certificate(row.cert_der)
            try:
                cert.verify_directly_issued_by(candidate)
                return row.id
            except Exception:
                continue
        return None  # issued by a CA that is not held here; its chain ends at this CA

    def _insert_ca(self, conn, name, cert: x509.Certificate, key_id, key_spec, parent_id, origin):
        conn.execute(
            insert(cas).values(
                name=name,
                subject=cert.subject.rfc4514_string(),
                parent_id=parent_id,
                key_id=key_id,
                key_type=key_spec,
                serial=serial_to_db(cert.serial_number),
                not_before=to_epoch(cert.not_valid_before_utc),
                not_after=to_epoch(cert.not_valid_after_utc),
                key_identifier=x509.SubjectKeyIdentifier.from_public_key(
                    cert.public_key()
                ).digest.hex(),
                cert_der=cert.public_bytes(serialization.Encoding.DER),
                origin=origin,
                created_at=to_epoch(self.clock()),
            )
        )

    # -- queries ------------------------------------------------------------

    def get_ca(self, name: str) -> CARecord:
        with self.store.transaction() as conn:
            return self._ca_record(conn, self._ca_row(conn, name))

    def list_cas(self) -> list[CARecord]:
        with self.store.transaction() as conn:
            rows = conn.execute(select(cas).order_by(cas.c.id)).all()
            return [self._ca_record(conn, row) for row in rows]

    def chain(self, name: str) -> list[x509.Certificate]:
        """The CA's certificate followed by its parents, up to the root held here."""
        out = []
        with self.store.transaction() as conn:
            row = self._ca_row(conn, name)
            while row is not None:
                out.append(x509.load_der_x509_certificate(row.cert_der))
                if row.parent_id is None:
                    break
                row = conn.execute(select(cas).where(cas.c.id == row.parent_id)).one()
        return out

    def get_certificate(self, ca_name: str, serial: int) -> CertificateRecord:
        with self.store.transaction() as conn:
            ca_row = self._ca_row(conn, ca_name)
            row = self._cert_row(conn, ca_row, serial)
            return certificate_from_row(row, ca_name)

    def private_key_pem(self, ca_name: str, serial: int) -> bytes | None:
        """The encrypted PKCS#8 key of a certificate whose key was generated here."""
        with self.store.transaction() as conn:
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
                self._audit_ok(
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
        with self.store.transaction() as conn:
            names = dict(conn.execute(select(cas.c.id, cas.c.name)).all())
            query = select(certificates).order_by(certificates.c.id).limit(limit)
            if ca_name is not None:
                query = query.where(certificates.c.ca_id == self._ca_row(conn, ca_name).id)
            if status is not None:
                query = query.where(certificates.c.status == status)
            return [certificate_from_row(r, names[r.ca_id]) for r in conn.execute(query)]

    # -- issuance -----------------------------------------------------------

    def issue(
        self,
        ca_name: str,
        csr: bytes,
        profile_name: str,
        *,
        days: int | None = None,
        actor: str = "system",
    ) -> CertificateRecord:
        """Issue from a PKCS#10 CSR."""
        with self._audited(actor, "ca.issue", f"{ca_name}/{profile_name}"):
            profile = self._issuing_profile(profile_name)
            request = parse_csr(csr)
            ca = self.get_ca(ca_name)
            return self._issue(ca, profile, request, days=days, actor=actor)

    def issue_with_new_key(
        self,
        ca_name: str,
        profile_name: str,
        subject: str,
        sans: list[str],
        *,
        key_type: str = "ec-p256",
        days: int | None = None,
        actor: str = "system",
    ) -> CertificateRecord:
        """Generate the subject's key here (kept encrypted, for PKCS#12 export) and issue."""
        with self._audited(actor, "ca.issue", f"{ca_name}/{profile_name}"):
            profile = self._issuing_profile(profile_name)
            check_key_spec(key_type)
            if key_type not in profile.key_types:
                raise PolicyError(
                    f"profile {profile.name!r} does not allow key type {key_type}; "
                    f"allowed: {', '.join(profile.key_types)}"
                )
            parsed = CertificateRequest(
                parse_subject(subject), None, tuple(parse_san(s) for s in sans)
            )
            ca = self.get_ca(ca_name)
            private_key = generate_private_key(key_type)
            encrypted = private_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(self.passphrase.get()),
            )
            request = CertificateRequest(parsed.subject, private_key.public_key(), parsed.sans)
            return self._issue(ca, profile, request, days=days, actor=actor, private_key=encrypted)

    def issue_ocsp_signer(
        self,
        ca_name: str,
        *,
        key_type: str = "ec-p256",
        days: int | None = None,
        actor: str = "system",
    ) -> tuple[CertificateRecord, str]:
        """A delegated OCSP responder certificate (RFC 6960 4.2.2.2); its key
        goes into the token. Returns the record and the key id."""
        with self._audited(actor, "ca.ocsp_signer", ca_name):
            profile = self.profile("ocsp-signer")
            ca = self.get_ca(ca_name)
            check_key_spec(key_type)
            if key_type not in profile.key_types:
                raise PolicyError(f"profile 'ocsp-signer' does not allow key type {key_type}")
            serial = new_serial(self.random_bytes)
            key_id = f"ocsp-{ca_name}-{serial_hex(serial)[:16]}"
            public_key = self.token.generate_key(key_id, key_type)
            try:
                record = self._issue(
                    ca,
                    profile,
                    CertificateRequest(ocsp_signer_subject(ca), public_key, ()),
                    days=days,
                    actor=actor,
                    serial=serial,
                    action="ca.ocsp_signer",
                    extra_audit={"key_id": key_id},
                )
            except BaseException:
                self.token.remove_key(key_id)
                raise
            return record, key_id

    def _issuing_profile(self, name: str) -> Profile:
        profile = self.profile(name)
        if name == "root-ca":
            raise PolicyError("profile 'root-ca' is only for self-signed roots: use `ca init-root`")
        return profile

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
    ) -> CertificateRecord:
        if ca.not_after <= self.clock():
            raise PolicyError(f"CA {ca.name!r} expired on {ca.not_after:%Y-%m-%d}")
        template = apply_profile(
            profile,
            request,
            Issuer(ca.name, ca.certificate),
            now=self.clock(),
            days=days,
            base_url=self.base_url,
            ca_name=ca.name,
        )
        issuer_public_key = ca.certificate.public_key()
        with self.store.transaction() as conn:
            if serial is None:
                serial = self._unused_serial(conn, ca.id)
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
                )
            )
            if on_insert is not None:
                on_insert(conn, cert, template.key_spec)
            self._outbox(
                conn, ca, serial, "issued", status="good", not_after=to_epoch(template.not_after)
            )
            self._audit_ok(
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

    def _outbox(self, conn: Connection, ca: CARecord, serial: int, event: str, **payload) -> None:
        conn.execute(
            insert(outbox).values(
                ca_id=ca.id,
                serial=serial_to_db(serial),
                event=event,
                payload=json.dumps(
                    {"ca": ca.name, "serial": serial_hex(serial), **payload}, sort_keys=True
                ),
                created_at_ms=self._now_ms(),
            )
        )

    # -- revocation -----------------------------------------------------------

    def revoke(
        self,
        ca_name: str,
        serial: int,
        reason: RevocationReason,
        *,
        revoked_at: datetime | None = None,
        invalidity_date: datetime | None = None,
        actor: str = "system",
    ) -> CertificateRecord:
        """Revoke, or put on hold with ``certificateHold`` (RFC 5280 5.3.1)."""
        target = f"{ca_name}/{serial_hex(serial)}"
        with self._audited(actor, "ca.revoke", target):
            now = self.clock()
            revoked_at = (revoked_at or now).replace(microsecond=0)
            if revoked_at > now + MAX_FUTURE_SKEW:
                raise BadInputError("the revocation time lies in the future")
            if invalidity_date is not None and invalidity_date > revoked_at:
                raise BadInputError("the invalidity date must not be after the revocation time")
            if reason == RevocationReason.removeFromCRL:
                raise BadInputError(
                    "removeFromCRL is not a revocation reason here: use `ca release-hold` "
                    "to take a certificate off hold"
                )
            with self.store.transaction() as conn:
                ca = self._ca_record(conn, self._ca_row(conn, ca_name))
                row = self._cert_row(conn, self._ca_row(conn, ca_name), serial)
                profile = self.profiles.get(row.profile)
                if profile is not None and reason not in profile.allowed_reasons():
                    raise PolicyError(
                        f"profile {row.profile!r} does not allow revocation reason "
                        f"{reason.name}; allowed: {', '.join(profile.revocation_reasons) or 'none'}"
                    )
                if row.status == "revoked":
                    raise ConflictError(
                        f"certificate {serial_hex(serial)} is already revoked since "
                        f"{from_epoch(row.revoked_at):%Y-%m-%d %H:%M:%S}Z "
                        f"({RevocationReason(row.revocation_reason).name})"
                    )
                hold = reason == RevocationReason.certificateHold
                if hold and row.status == "hold":
                    raise ConflictError(f"certificate {serial_hex(serial)} is already on hold")
                status = "hold" if hold else "revoked"
                values = {
                    "status": status,
                    "revoked_at": to_epoch(revoked_at),
                    "revocation_reason": int(reason),
                    "invalidity_date": to_epoch(invalidity_date) if invalidity_date else None,
                }
                conn.execute(
                    update(certificates).where(certificates.c.id == row.id).values(**values)
                )
                self._outbox(
                    conn,
                    ca,
                    serial,
                    "hold" if hold else "revoked",
                    status=status,
                    revoked_at=values["revoked_at"],
                    reason=int(reason),
                    invalidity_date=values["invalidity_date"],
                    not_after=row.not_after,
                )
                self._audit_ok(
                    conn,
                    actor,
                    "ca.revoke",
                    target,
                    reason=reason.name,
                    revoked_at=revoked_at.isoformat(),
                    previous_status=row.status,
                )
                return certificate_from_row(
                    self._cert_row(conn, self._ca_row(conn, ca_name), serial), ca_name
                )

    def release_hold(
        self, ca_name: str, serial: int, *, actor: str = "system"
    ) -> CertificateRecord:
        target = f"{ca_name}/{serial_hex(serial)}"
        with self._audited(actor, "ca.release_hold", target), self.store.transaction() as conn:
            ca = self._ca_record(conn, self._ca_row(conn, ca_name))
            row = self._cert_row(conn, self._ca_row(conn, ca_name), serial)
            if row.status != "hold":
                raise ConflictError(
                    f"certificate {serial_hex(serial)} is {row.status}, not on hold"
                )
            conn.execute(
                update(certificates)
                .where(certificates.c.id == row.id)
                .values(
                    status="good", revoked_at=None, revocation_reason=None, invalidity_date=None
                )
            )
            self._outbox(conn, ca, serial, "released", status="good", not_after=row.not_after)
            self._audit_ok(conn, actor, "ca.release_hold", target)
            return certificate_from_row(
                self._cert_row(conn, self._ca_row(conn, ca_name), serial), ca_name
            )
