"""The RA's operations: end entities and the certificate lifecycle on their
behalf (enroll, renew, revoke), every step checked against the end entity
and written to the CA's audit log.

Enrollment builds the request itself: the subject from the end entity's
template, the SANs from the CSR (or the caller) after checking each against
the entity's allowed patterns, the public key from the CSR (after its
signature is verified) or from a key generated here. The CA then applies the
profile as for any issuance.
"""

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, replace

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Connection, func, insert, select, update

from ca import catalog
from ca.blocklist_file import parse_blocklist_file
from ca.errors import BadInputError, CAError, ConflictError, NotFoundError, PolicyError
from ca.keys import KEY_SPECS
from ca.reasons import RevocationReason
from ca.records import CertificateRecord, serial_hex
from ca.requests import CertificateRequest, format_san, load_csr, parse_csr
from ca.service import CAService
from common.clock import iso8601
from ra import inventory, search
from ra.approvals import USER_KINDS, ApprovalPolicy, ApprovalQueue, ApprovalRequest
from ra.entities import (
    STATUSES,
    EndEntity,
    check_attributes,
    check_email,
    check_name,
    check_san_patterns,
    check_template,
    entity_from_row,
    parse_sans,
)
from ra.roles import ForbiddenError
from ra.search import CertificateQuery
from ra.secrets import DEFAULT_DAYS, PROTOCOLS, EnrollmentSecrets
from ra.users import User, Users, new_token, token_hash
from store.tables.ra import end_entities

MIN_EXPORT_PASSPHRASE = 8
REPORTS = ("counts", "expiring", "duplicates")
MAX_PAGE = 1000


@dataclass(frozen=True)
class Enrollment:
    """An issued certificate, its chain, and (for a key made here) the PKCS#12."""

    certificate: CertificateRecord
    chain: list[x509.Certificate]
    pkcs12: bytes | None = None


class RAService:
    def __init__(self, ca: CAService, policy: ApprovalPolicy | None = None):
        self.ca = ca
        self.store = ca.store
        self.audit = ca.audit  # the CA's audit writer: one chain, one clock
        self.policy = policy or ApprovalPolicy()
        self.users = Users(
            ca.store, self.audit.now_ms, self.audit.record, self._client_certificate_problem
        )
        self.approvals = ApprovalQueue(ca.store, self._now, self.audit.record)
        self.secrets = EnrollmentSecrets(ca.store, self._now, self.audit)

    # -- helpers -------------------------------------------------------------

    def _now(self) -> int:
        return int(self.ca.clock().timestamp())

    def certificate_problem(self, der: bytes) -> str | None:
        """Why a TLS client certificate may not authenticate now (see
        ``_client_certificate_problem``); None when it may."""
        return self._client_certificate_problem(der)

    def _client_certificate_problem(self, der: bytes) -> str | None:
        """Why an operator's TLS client certificate may not sign in now:
        outside its validity period, or revoked or held in the records of
        the CA that issued it here. None when it may."""
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            return "the client certificate cannot be read"
        now = self.ca.clock()
        if now < cert.not_valid_before_utc:
            return (
                f"the client certificate is not valid before {iso8601(cert.not_valid_before_utc)}"
            )
        if now > cert.not_valid_after_utc:
            return f"the client certificate expired at {iso8601(cert.not_valid_after_utc)}"
        with self.store.read() as conn:
            record = catalog.by_fingerprint(conn, hashlib.sha256(der).hexdigest())
        if record is None:
            for ca in self.ca.list_cas():
                if ca.certificate.subject == cert.issuer:
                    return (
                        f"the client certificate names CA {ca.name!r} as its issuer "
                        "but is not in its records"
                    )
            return None  # another PKI's certificate: the TLS layer's client CA vouches for it
        where = f"CA {record.ca!r}, serial {serial_hex(record.serial)}"
        if record.status == "revoked":
            reason = record.reason.name if record.reason is not None else "unspecified"
            return (
                f"the client certificate ({where}) was revoked at "
                f"{iso8601(record.revoked_at)} ({reason})"
            )
        if record.status == "hold":
            return f"the client certificate ({where}) is on hold"
        return None

    def _ca_id(self, conn: Connection, name: str) -> int:
        if not isinstance(name, str):
            raise BadInputError("ca must be the name of a CA")
        return catalog.ca_id(conn, name)

    def _entity_row(self, conn: Connection, name: str):
        row = conn.execute(select(end_entities).where(end_entities.c.name == name)).one_or_none()
        if row is None:
            raise NotFoundError(f"no end entity named {name!r}")
        return row

    def _entity(self, conn: Connection, name: str) -> EndEntity:
        row = self._entity_row(conn, name)
        return entity_from_row(row, catalog.ca_name(conn, row.ca_id))

    def _check_profile(self, name: str) -> str:
        if not isinstance(name, str):
            raise BadInputError("profile must be the name of a profile")
        profile = self.ca.profile(name)
        if profile.ca or name in ("ocsp-signer", "scep-ra"):
            raise PolicyError(
                f"profile {name!r} is for CAs, OCSP signers or SCEP RAs, not end entities"
            )
        return name

    # -- end entities ----------------------------------------------------------

    def create_entity(
        self,
        name: str,
        *,
        email: str,
        ca: str,
        profile: str,
        subject_template: str,
        allowed_sans=(),
        attributes=None,
        actor: str = "system",
    ) -> EndEntity:
        check_name(name)
        check_email(email)
        attributes = check_attributes(attributes or {})
        check_template(subject_template, {**attributes, "name": name, "email": email})
        patterns = check_san_patterns(allowed_sans)
        self._check_profile(profile)
        now = self._now()
        with self.audit.failures(actor, "ra.entity.create", name), self.store.transaction() as conn:
            ca_id = self._ca_id(conn, ca)
            if conn.execute(select(end_entities.c.id).where(end_entities.c.name == name)).first():
                raise ConflictError(f"an end entity named {name!r} exists")
            conn.execute(
                insert(end_entities).values(
                    name=name,
                    email=email,
                    ca_id=ca_id,
                    profile=profile,
                    subject_template=subject_template,
                    allowed_sans=json.dumps(list(patterns)),
                    attributes=json.dumps(attributes, sort_keys=True),
                    status="active",
                    created_at=now,
                    updated_at=now,
                )
            )
            self.audit.ok(
                conn,
                actor,
                "ra.entity.create",
                name,
                ca=ca,
                profile=profile,
                subject_template=subject_template,
                allowed_sans=list(patterns),
            )
            return self._entity(conn, name)

    def update_entity(self, name: str, changes: dict, *, actor: str = "system") -> EndEntity:
        """Change any of email, ca, profile, subject_template, allowed_sans,
        attributes, status; the result is checked as a whole."""
        allowed = {
            "email",
            "ca",
            "profile",
            "subject_template",
            "allowed_sans",
            "attributes",
            "status",
        }
        unknown = set(changes) - allowed
        if unknown:
            raise BadInputError(
                f"unknown field(s) {', '.join(sorted(unknown))}; "
                f"changeable: {', '.join(sorted(allowed))}"
            )
        with self.audit.failures(actor, "ra.entity.update", name), self.store.transaction() as conn:
            row = self._entity_row(conn, name)
            current = entity_from_row(row, catalog.ca_name(conn, row.ca_id))
            email = check_email(changes.get("email", current.email))
            attributes = check_attributes(changes.get("attributes", current.attributes))
            template = changes.get("subject_template", current.subject_template)
            check_template(template, {**attributes, "name": name, "email": email})
            patterns = check_san_patterns(changes.get("allowed_sans", list(current.allowed_sans)))
            profile = self._check_profile(changes.get("profile", current.profile))
            status = changes.get("status", current.status)
            if status not in STATUSES:
                raise BadInputError(f"status must be one of {', '.join(STATUSES)}")
            ca_name = changes.get("ca", current.ca)
            values = {
                "email": email,
                "ca_id": self._ca_id(conn, ca_name),
                "profile": profile,
                "subject_template": template,
                "allowed_sans": json.dumps(list(patterns)),
                "attributes": json.dumps(attributes, sort_keys=True),
                "status": status,
                "updated_at": self._now(),
            }
            conn.execute(update(end_entities).where(end_entities.c.id == row.id).values(**values))
            self.audit.ok(conn, actor, "ra.entity.update", name, changes=sorted(changes))
            return self._entity(conn, name)

    def get_entity_by_id(self, entity_id: int) -> EndEntity:
        with self.store.read() as conn:
            row = conn.execute(
                select(end_entities).where(end_entities.c.id == entity_id)
            ).one_or_none()
            if row is None:
                raise NotFoundError(f"no end entity with id {entity_id}")
            return entity_from_row(row, catalog.ca_name(conn, row.ca_id))

    def get_entity(self, name: str) -> EndEntity:
        with self.store.read() as conn:
            return self._entity(conn, name)

    def list_entities(
        self,
        *,
        name_contains: str | None = None,
        status: str | None = None,
        email: str | None = None,
        ca: str | None = None,
        profile: str | None = None,
        attributes: dict | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> list[EndEntity]:
        """By name (stable order); ``after``: the last name of the previous page.
        Filters combine: name substring, status, contact email (case-blind,
        exact), CA, profile, and attributes (each key equal to its value)."""
        limit = _page_size(limit)
        query = select(end_entities).order_by(end_entities.c.name).limit(limit)
        if name_contains:
            query = query.where(end_entities.c.name.contains(name_contains, autoescape=True))
        if status:
            query = query.where(end_entities.c.status == status)
        if email:
            query = query.where(func.lower(end_entities.c.email) == email.lower())
        if profile:
            query = query.where(end_entities.c.profile == profile)
        for key, value in check_attributes(attributes or {}).items():
            # Stored as json.dumps(sort_keys=True): each pair reads '"key": "value"'.
            pair = json.dumps({key: value})[1:-1]
            query = query.where(end_entities.c.attributes.contains(pair, autoescape=True))
        if after:
            query = query.where(end_entities.c.name > after)
        with self.store.read() as conn:
            if ca:
                try:
                    query = query.where(end_entities.c.ca_id == catalog.ca_id(conn, ca))
                except NotFoundError:
                    return []  # no such CA: no entity uses it
            rows = conn.execute(query).all()
            names = catalog.ca_names(conn) if rows else {}
        return [entity_from_row(r, names[r.ca_id]) for r in rows]

    def entity_certificates(self, name: str) -> list[CertificateRecord]:
        with self.store.read() as conn:
            row = self._entity_row(conn, name)
            found = catalog.find(conn, catalog.CertificateFilter(end_entity_id=row.id))
        return [record for _, record in found]

    # -- certificates --------------------------------------------------------------

    def enroll(
        self,
        entity_name: str,
        *,
        csr: bytes | None = None,
        key_type: str | None = None,
        passphrase: bytes | None = None,
        sans=None,
        days: int | None = None,
        actor: str = "system",
        approved: bool = False,
        profile: str | None = None,
        identifier: str | None = None,
        on_issued=None,
        via: dict | None = None,
        request_key: bytes | None = None,
    ) -> "Enrollment | ApprovalRequest":
        """Issue to an end entity from a PKCS#10 CSR, or with a key made here
        (``key_type``; the PKCS#12 is encrypted with ``passphrase``). Where
        the policy wants approvals, the checked request is queued instead.

        For enrollment protocols (ACME): ``profile`` issues under another
        end-entity profile than the entity's own (the protocol's directory
        decides which it offers), ``identifier`` is the name the subject is
        built for (``EndEntity.subject``), ``on_issued(conn, certificate)``
        runs in the issuing transaction (the protocol's own record of it),
        ``via`` (protocol, credential) goes into the audit record;
        ``request_key`` (SubjectPublicKeyInfo DER, with ``sans``) stands for
        a CSR the protocol has verified, so that a request queued for
        approvers keeps the key and names, not the CSR and what else it
        carries (a SCEP challenge password is an enrollment secret)."""
        with self.audit.failures(actor, "ra.enroll", entity_name):
            entity = self.get_entity(entity_name)
            if profile is not None and profile != entity.profile:
                entity = replace(entity, profile=self._check_profile(profile))
            payload = {
                "entity": entity.name,
                "csr": _b64(csr),
                "key_type": key_type,
                "sans": sans,
                "days": days,
            }
            if request_key is not None:
                payload["request_key"] = _b64(request_key)
            if profile is not None:
                payload["profile"] = entity.profile
            if identifier is not None:
                payload["identifier"] = identifier
            if via is not None:
                payload["via"] = via
            return self._issue_to(
                entity,
                csr,
                key_type,
                passphrase,
                sans,
                days,
                actor,
                None,
                approval=("enroll", payload),
                executing=approved,
                identifier=identifier,
                on_issued=on_issued,
                via=via,
                request_key=request_key,
            )

    def renew(
        self,
        ca_name: str,
        serial: int,
        *,
        csr: bytes | None = None,
        key_type: str | None = None,
        passphrase: bytes | None = None,
        days: int | None = None,
        actor: str = "system",
        approved: bool = False,
        on_issued=None,
        via: dict | None = None,
        request_key: bytes | None = None,
    ) -> "Enrollment | ApprovalRequest":
        """A new certificate for the same end entity and SANs: for a new key
        (a CSR, or ``key_type`` made here), or, with neither, for the same
        public key (and, if it was made here, the same stored key)."""
        target = f"{ca_name}/{serial_hex(serial)}"
        with self.audit.failures(actor, "ra.renew", target):
            with self.store.read() as conn:
                old = catalog.certificate(conn, ca_name, serial)
                if old.end_entity_id is None:
                    raise PolicyError(
                        f"certificate {serial_hex(serial)} was not issued to an end entity; "
                        "renew it through the CA"
                    )
                name = conn.execute(
                    select(end_entities.c.name).where(end_entities.c.id == old.end_entity_id)
                ).scalar_one()
            if old.status == "revoked":
                raise PolicyError(
                    f"certificate {serial_hex(serial)} is revoked; enroll a new one instead"
                )
            entity = self.get_entity(name)
            sans = None if csr is not None else [*old.sans]
            same_key = None
            if csr is None and key_type is None and request_key is None:
                same_key = (old.certificate.public_key(), self.ca.private_key_pem(ca_name, serial))
            payload = {
                "ca": ca_name,
                "serial": serial_hex(serial),
                "csr": _b64(csr),
                "key_type": key_type,
                "days": days,
            }
            if request_key is not None:
                payload["request_key"] = _b64(request_key)
            if via is not None:
                payload["via"] = via
            return self._issue_to(
                entity,
                csr,
                key_type,
                passphrase,
                sans,
                days,
                actor,
                same_key,
                renews=target,
                approval=("renew", payload),
                executing=approved,
                on_issued=on_issued,
                via=via,
                request_key=request_key,
            )

    def _issue_to(
        self,
        entity,
        csr,
        key_type,
        passphrase,
        sans,
        days,
        actor,
        same_key,
        *,
        approval: tuple[str, dict],
        executing: bool,
        renews: str | None = None,
        identifier: str | None = None,
        on_issued=None,
        via: dict | None = None,
        request_key: bytes | None = None,
    ) -> "Enrollment | ApprovalRequest":
        """``approval``: (kind, what to record) should the policy want
        approvals; ``executing``: carrying out an approved request."""
        # Approvals apply to requests, not to carrying out an approved one.
        kind, payload = approval
        needed = 0 if executing else self.policy.for_issue(entity.profile)
        if entity.status != "active":
            raise PolicyError(f"end entity {entity.name!r} is disabled")
        if csr is not None and key_type is not None:
            raise BadInputError("give a CSR or a key type to generate, not both")
        if request_key is not None and (csr is not None or key_type is not None):
            raise BadInputError("give a CSR, a request's key or a key type, one of them")
        if csr is None and key_type is None and same_key is None and request_key is None:
            raise BadInputError("enrollment needs a CSR, or a key type to generate a key here")
        if key_type is not None and key_type not in KEY_SPECS:
            raise BadInputError(
                f"unknown key type {key_type!r}; choose one of {', '.join(KEY_SPECS)}"
            )
        # A key made here is handed out under the passphrase given now: at
        # once, or, after approvals, to whoever gives the same one again
        # (only a verifier of it is kept with the request).
        if key_type is not None and not executing:
            _check_export_passphrase(passphrase)
        public_key = None
        requested = parse_sans(sans) if sans is not None else ()
        if request_key is not None:
            try:
                public_key = serialization.load_der_public_key(request_key)
            except (ValueError, UnsupportedAlgorithm):
                raise BadInputError("the request's public key cannot be read") from None
        if csr is not None:
            parsed = parse_csr(csr)
            public_key = parsed.public_key
            if sans is None:
                requested = parsed.sans
        elif same_key is not None:
            public_key = same_key[0]
        entity.check_sans(requested)
        if public_key is not None:
            # A compromised key is refused before approvers see the request
            # (issuance refuses it again, CA/B Forum BR 6.1.1.3 (4)).
            self.ca.check_key(public_key)
        request = CertificateRequest(entity.subject(identifier), public_key, requested)
        if needed:
            # What can be checked now is checked now, by the CA's own checks,
            # and again when the approved request is carried out.
            template = self.ca.check_request(
                entity.ca, entity.profile, request, generate_key=key_type, days=days
            )
            source = "generated" if key_type else ("same" if same_key else "csr")
            source = "request" if request_key is not None else source
            payload = {**payload, "details": _details(entity, template, csr, key_type, source)}
            if key_type is not None:
                payload["passphrase_check"] = passphrase_verifier(passphrase)
            return self.approvals.submit(
                kind, entity.id, payload, needed, actor, self.policy.expiry_seconds
            )

        def audit_enrollment(conn: Connection, cert, _key_spec) -> None:
            # In the issuing transaction: the RA's record goes with the CA's.
            self.audit.ok(
                conn,
                actor,
                "ra.renew" if renews else "ra.enroll",
                entity.name,
                ca=entity.ca,
                serial=serial_hex(cert.serial_number),
                key="request"
                if request_key is not None
                else "generated"
                if key_type
                else ("same" if same_key else "csr"),
                renews=renews,
                **({"via": via} if via else {}),
            )
            if on_issued is not None:
                on_issued(conn, cert)

        record = self.ca.issue_request(
            entity.ca,
            entity.profile,
            request,
            generate_key=key_type,
            days=days,
            actor=actor,
            end_entity_id=entity.id,
            on_insert=audit_enrollment,
            keep_private_key=same_key[1] if same_key else None,
        )
        chain = self.ca.chain(entity.ca)
        pkcs12 = None
        if key_type is not None and passphrase is not None:
            pkcs12 = self.export(record.ca, record.serial, "p12", passphrase, actor=actor)
        return Enrollment(record, chain, pkcs12)

    def revoke(
        self,
        ca_name: str,
        serial: int,
        reason: str,
        *,
        actor: str = "system",
        approved: bool = False,
    ) -> "CertificateRecord | ApprovalRequest":
        try:
            value = RevocationReason[reason]
        except (KeyError, TypeError):
            names = ", ".join(r.name for r in RevocationReason if r.name != "removeFromCRL")
            raise BadInputError(f"unknown revocation reason {reason!r}; reasons: {names}") from None
        needed = 0 if approved else self.policy.revoke
        if needed:
            with self.audit.failures(actor, "ra.revoke", f"{ca_name}/{serial_hex(serial)}"):
                with self.store.read() as conn:
                    row = catalog.certificate(conn, ca_name, serial)
                # The CA's checks of this revocation, now: a reason the profile
                # forbids, a certificate already revoked.
                self.ca.check_revocation(ca_name, serial, value)
                payload = {
                    "ca": ca_name,
                    "serial": serial_hex(serial),
                    "reason": value.name,
                    "details": {
                        "subject": row.subject,
                        "sans": list(row.sans),
                        "profile": row.profile,
                        "key_type": row.key_type,
                        "not_after": iso8601(row.not_after),
                        "status": row.status,
                        "fingerprint_sha256": row.fingerprint,
                    },
                }
                return self.approvals.submit(
                    "revoke",
                    row.end_entity_id,
                    payload,
                    needed,
                    actor,
                    self.policy.expiry_seconds,
                )
        return self.ca.revoke(ca_name, serial, value, actor=actor)

    def release_hold(
        self, ca_name: str, serial: int, *, actor: str = "system"
    ) -> CertificateRecord:
        """Take a certificate off hold (the CA audits it, as ca.release_hold)."""
        return self.ca.release_hold(ca_name, serial, actor=actor)

    def import_uploads(
        self, files: list[tuple[str, bytes]], *, entity: str | None = None, actor: str = "system"
    ):
        """Record uploaded certificates of other PKIs in the inventory
        (ra/inventory.py); a refusal is audited too."""
        target = ",".join(name for name, _ in files)[:500] or "inventory"
        with self.audit.failures(actor, "ra.inventory.import", target):
            return inventory.import_uploads(self.ca, files, entity=entity, actor=actor)

    # -- the CA's blocklist of compromised keys -----------------------------------------

    def blocked_keys(self, *, limit: int = 100, after: str | None = None) -> list:
        """The listed keys in digest order, a page at a time."""
        return self.ca.list_blocked_keys(limit=limit, after=after)

    def check_blocked(self, text: bytes) -> list[dict]:
        """Whether each key in ``text`` (the blocklist file format:
        ca/blocklist_file.py) is listed, and why."""
        entries = parse_blocklist_file(text)
        found = self.ca.blocked_keys(e.spki_sha256 for e in entries)
        return [
            {
                "line": e.line,
                "kind": e.kind,
                "spki_sha256": e.spki_sha256,
                "listed": e.spki_sha256 in found,
                "entry": found[e.spki_sha256].summary() if e.spki_sha256 in found else None,
            }
            for e in entries
        ]

    def block_keys(self, text: bytes, note: str, *, actor: str = "system") -> dict:
        """List the keys in ``text`` as compromised, all or none (the CA
        audits it, as ca.blocklist.import)."""
        entries = parse_blocklist_file(text)
        added, already = self.ca.import_blocked_keys(
            [e.spki_sha256 for e in entries], note, actor=actor
        )
        return {"keys": len(entries), "added": added, "already_listed": already}

    # -- search and reports ------------------------------------------------------------

    # -- enrollment secrets (EST, SCEP) ---------------------------------------------

    def create_secret(
        self,
        entity_name: str,
        *,
        protocols=PROTOCOLS,
        days: int = DEFAULT_DAYS,
        actor: str = "system",
    ) -> dict:
        """A one-time enrollment secret for an active end entity; the
        secret itself is in the answer and nowhere else."""
        with self.audit.failures(actor, "ra.secret.create", entity_name):
            entity = self.get_entity(entity_name)
            if entity.status != "active":
                raise PolicyError(f"end entity {entity.name!r} is disabled")
            secret_id, secret, expires_at = self.secrets.create(
                entity.id, entity.name, protocols=tuple(protocols), days=days, actor=actor
            )
        return {
            "id": secret_id,
            "entity": entity.name,
            "protocols": sorted(set(protocols)),
            "secret": secret,
            "expires_at": iso8601(expires_at),
        }

    def list_secrets(self, entity_name: str | None = None) -> list[dict]:
        if entity_name is None:
            return self.secrets.list()
        return self.secrets.list(self.get_entity(entity_name).id)

    def revoke_secret(self, secret_id: str, *, actor: str = "system") -> None:
        with self.audit.failures(actor, "ra.secret.revoke", secret_id):
            self.secrets.revoke(secret_id, actor=actor)

    def now(self) -> int:
        """The CA's clock, in epoch seconds: what search, reports and export
        judge status and expiry by."""
        return self._now()

    def search(self, query: CertificateQuery) -> list[tuple[int, CertificateRecord]]:
        with self.store.read() as conn:
            return search.search(conn, query, self._now())

    def search_summaries(self, query: CertificateQuery) -> list[tuple[int, dict]]:
        """As ``search``, each certificate as printed (status at this moment)."""
        now = self._now()
        with self.store.read() as conn:
            found = search.search(conn, query, now)
        return [(i, search.certificate_summary(record, now)) for i, record in found]

    def report(self, name: str, *, days: int = 30) -> list[dict]:
        now = self._now()
        with self.store.read() as conn:
            if name == "counts":
                return search.counts(conn, now)
            if name == "expiring":
                return search.expiring(conn, now, days)
            if name == "duplicates":
                return search.duplicates(conn, now)
        raise NotFoundError(f"no report {name!r}; reports: {', '.join(REPORTS)}")

    # -- approvals -------------------------------------------------------------------

    def approve(self, request_id: int, *, actor: str) -> ApprovalRequest:
        """Approve; the approval that completes the count carries the request
        out as its requester."""
        request, claimed = self.approvals.approve(request_id, actor)
        if not claimed:
            return request
        p = request.payload
        try:
            if request.kind in USER_KINDS:
                self._carry_out_user_change(request)
                return self.approvals.finish(request.id)
            if request.kind == "revoke":
                record = self.revoke(
                    p["ca"],
                    int(p["serial"], 16),
                    p["reason"],
                    actor=request.requester,
                    approved=True,
                )
            else:
                common = {
                    "csr": _unb64(p.get("csr")),
                    "key_type": p.get("key_type"),
                    "days": p.get("days"),
                    "actor": request.requester,
                    "approved": True,
                    "via": p.get("via"),
                    "request_key": _unb64(p.get("request_key")),
                }
                if request.kind == "enroll":
                    result = self.enroll(
                        p["entity"],
                        sans=p.get("sans"),
                        profile=p.get("profile"),
                        identifier=p.get("identifier"),
                        **common,
                    )
                else:
                    result = self.renew(p["ca"], int(p["serial"], 16), **common)
                record = result.certificate
        except CAError as exc:
            return self.approvals.finish(request.id, error=exc.message)
        return self.approvals.finish(request.id, ca=record.ca, serial=record.serial)

    # -- operators ------------------------------------------------------------------

    def create_user(
        self,
        name: str,
        role: str,
        *,
        with_token: bool = True,
        certificate: bytes | None = None,
        actor: str,
    ) -> "tuple[User | ApprovalRequest, str | None]":
        """Add an operator, or, where approvals are configured for operators,
        ask for it: the token is shown now either way and works once the
        operator exists."""
        needed = self.policy.for_operators()
        if not needed:
            return self.users.create(
                name, role, with_token=with_token, certificate=certificate, actor=actor
            )
        with self.audit.failures(actor, "ra.user.create", str(name)):
            fingerprint = self.users.check_new(
                name, role, with_token=with_token, certificate=certificate
            )
            token = new_token() if with_token else None
            payload = {
                "name": name,
                "role": role,
                "certificate_sha256": fingerprint,
                "token": token is not None,
                "token_sha256": token_hash(token) if token else None,
            }
            return self._submit_user("user.create", payload, needed, actor), token

    def set_user_status(self, name: str, status: str, *, actor: str) -> "User | ApprovalRequest":
        """Disabling is at once; enabling waits for approvals where operator
        changes need them."""
        needed = self.policy.for_operators()
        if status != "active" or not needed:
            return self.users.set_status(name, status, actor=actor)
        with self.audit.failures(actor, "ra.user.enable", str(name)):
            if self.users.get(name).status == "active":
                raise ConflictError(f"operator {name!r} is active already")
            return self._submit_user("user.enable", {"name": name}, needed, actor)

    def set_user_role(self, name: str, role: str, *, actor: str) -> "User | ApprovalRequest":
        needed = self.policy.for_operators()
        if not needed:
            return self.users.set_role(name, role, actor=actor)
        with self.audit.failures(actor, "ra.user.role", str(name)):
            self.users.check_role_change(name, role)
            previous = self.users.get(name).role
            payload = {"name": name, "role": role, "previous_role": previous}
            return self._submit_user("user.role", payload, needed, actor)

    def rotate_user_token(
        self, name: str, *, actor: str
    ) -> "tuple[User | ApprovalRequest, str | None]":
        """A new token for ``name``. One's own is changed at once; another
        operator's, where operator changes need approvals, once approved
        (whoever holds the new token could sign in as that operator)."""
        needed = self.policy.for_operators()
        own = actor == f"ra:{name}"
        if own or not needed:
            return self.users.rotate_token(name, actor=actor)
        with self.audit.failures(actor, "ra.user.token", str(name)):
            self.users.get(name)
            token = new_token()
            payload = {"name": name, "token_sha256": token_hash(token)}
            return self._submit_user("user.token", payload, needed, actor), token

    def delete_user(self, name: str, *, actor: str) -> None:
        with self.audit.failures(actor, "ra.user.delete", str(name)):
            self.users.delete(name, actor=actor)

    def _submit_user(self, kind: str, payload: dict, needed: int, actor: str) -> ApprovalRequest:
        return self.approvals.submit(kind, None, payload, needed, actor, self.policy.expiry_seconds)

    def _carry_out_user_change(self, request: ApprovalRequest) -> None:
        p, by = request.payload, request.requester
        if request.kind == "user.create":
            self.users.create(
                p["name"],
                p["role"],
                actor=by,
                token_digest=p.get("token_sha256"),
                fingerprint=p.get("certificate_sha256"),
            )
        elif request.kind == "user.enable":
            self.users.set_status(p["name"], "active", actor=by)
        elif request.kind == "user.role":
            self.users.set_role(p["name"], p["role"], actor=by)
        elif request.kind == "user.token":
            self.users.rotate_token(p["name"], actor=by, token_digest=p["token_sha256"])

    def reject(self, request_id: int, reason: str, *, actor: str) -> ApprovalRequest:
        return self.approvals.reject(request_id, actor, reason)

    def request_pkcs12(
        self, request_id: int, passphrase: bytes | None, *, actor: str, administrator: bool
    ) -> bytes:
        """The PKCS#12 of a key made for an approved request: for its
        requester (or an administrator), encrypted with ``passphrase``."""
        request = self.approvals.get(request_id)
        if request.requester != actor and not administrator:
            raise ForbiddenError("only the requester (or an administrator) may fetch this key")
        if request.status != "done" or request.kind == "revoke":
            raise ConflictError(
                f"request {request_id} has issued no certificate ({request.status})"
            )
        if not request.payload.get("key_type"):
            raise PolicyError("this request's key came from a CSR: there is no PKCS#12")
        _check_export_passphrase(passphrase)
        check_passphrase(request.payload.get("passphrase_check"), passphrase)
        return self.export(request.result_ca, request.result_serial, "p12", passphrase, actor=actor)

    def certificate(self, ca_name: str, serial: int) -> CertificateRecord:
        return self.ca.get_certificate(ca_name, serial)

    def export(
        self, ca_name: str, serial: int, fmt: str, passphrase: bytes | None = None, *, actor: str
    ) -> bytes:
        return self.ca.export(ca_name, serial, fmt, export_passphrase=passphrase, actor=actor)


def _check_export_passphrase(passphrase: bytes | None) -> None:
    if not passphrase or len(passphrase) < MIN_EXPORT_PASSPHRASE:
        raise BadInputError(
            f"a key made here is handed out as PKCS#12: give a passphrase of at least "
            f"{MIN_EXPORT_PASSPHRASE} characters"
        )


# scrypt (RFC 7914) for the verifier of an enrollment's PKCS#12 passphrase.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def passphrase_verifier(passphrase: bytes) -> dict:
    """What a request keeps to recognise its PKCS#12 passphrase: a salt and
    the scrypt of the passphrase under it, never the passphrase."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(passphrase, salt=salt, dklen=32, **_SCRYPT)
    return {"scrypt": _b64(salt) + "$" + _b64(digest)}


def check_passphrase(verifier: dict | None, passphrase: bytes) -> None:
    """Refuse any passphrase but the one given with the request."""
    if not verifier or "scrypt" not in verifier:
        raise PolicyError(
            "this request was made without a PKCS#12 passphrase; its key cannot be "
            "handed out here (enroll again)"
        )
    salt, _, digest = verifier["scrypt"].partition("$")
    mine = hashlib.scrypt(passphrase, salt=base64.b64decode(salt), dklen=32, **_SCRYPT)
    if not hmac.compare_digest(mine, base64.b64decode(digest)):
        raise ForbiddenError(
            "the passphrase is not the one given with the enrollment; nothing was released"
        )


def key_bits(key_spec: str) -> int:
    """The size of a key type: RSA modulus or curve bits (Ed25519: 256)."""
    if key_spec.startswith("rsa-"):
        return int(key_spec.split("-")[1])
    return {"ec-p256": 256, "ec-p384": 384, "ec-p521": 521, "ed25519": 256}.get(key_spec, 0)


def _details(entity, template, csr: bytes | None, generate_key: str | None, source: str) -> dict:
    """What an approver approves: the certificate as the CA would issue it."""
    key_spec = generate_key or template.key_spec
    return {
        "ca": entity.ca,
        "profile": entity.profile,
        "subject": template.subject.rfc4514_string(),
        "sans": [format_san(n) for n in template.sans],
        "key_type": key_spec,
        "key_bits": key_bits(key_spec),
        "key": {
            "generated": "made here",
            "same": "the renewed certificate's",
            "csr": "the CSR's",
            "request": "the device's request's (its CSR checked by the protocol)",
        }[source],
        "validity_days": (template.not_after - template.not_before).days + 1,
        "not_after": iso8601(template.not_after),
        "csr_sha256": (
            hashlib.sha256(load_csr(csr).public_bytes(Encoding.DER)).hexdigest()
            if csr is not None
            else None
        ),
    }


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def _page_size(limit) -> int:
    if not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise BadInputError(f"limit must be 1 to {MAX_PAGE}")
    return limit
