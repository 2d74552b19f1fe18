"""The one issuance path every certificate goes through (roots excepted:
they sign themselves, ca/hierarchy.py): the profile applied, a fresh
serial, the signature by the token, and one transaction holding the
certificate row, its outbox event and its audit record. A refusal leaves
certificates and outbox untouched."""

import hashlib
import json
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import Connection, insert, select

from ca import baseline
from ca.blocklist import refuse_compromised
from ca.context import CAContext
from ca.errors import PolicyError
from ca.events import append_event
from ca.keys import signature_algorithm_for
from ca.lookup import Lookup, own
from ca.policy import Issuer, apply_profile
from ca.profiles import Profile
from ca.records import (
    CARecord,
    CertificateRecord,
    certificate_from_row,
    names_sha256,
    serial_hex,
    serial_to_db,
    spki_sha256,
    to_epoch,
)
from ca.requests import CertificateRequest, format_san
from ca.x509build import encode_tbs, new_serial, sign_certificate
from store.tables.ca import certificates


class IssuingPath:
    def __init__(self, context: CAContext, lookup: Lookup):
        self.context = context
        self.lookup = lookup

    def sign(
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
        token = self.context.token
        return sign_certificate(
            tbs, algorithm, lambda data: token.sign(key_id, data, algorithm), issuer_cert
        )

    def unused_serial(self, conn: Connection, ca_id: int) -> int:
        while True:
            serial = new_serial(self.context.random_bytes)
            taken = conn.execute(
                select(certificates.c.id).where(
                    certificates.c.ca_id == ca_id, certificates.c.serial == serial_to_db(serial)
                )
            ).first()
            if taken is None:
                return serial

    def event(self, conn: Connection, ca: CARecord, serial: int, event: str, **payload) -> int:
        """The outbox event of a change to one of ``ca``'s certificates."""
        return append_event(conn, ca.id, serial, event, self.context.now_ms(), **payload)

    def _template(self, ca: CARecord, profile: Profile, request, days, serial):
        """The profile applied to ``request`` under ``ca`` (every check but
        the compromised-key one), and the serial it is built for."""
        context = self.context
        own(ca)
        if ca.not_after <= context.clock():
            raise PolicyError(f"CA {ca.name!r} expired on {ca.not_after:%Y-%m-%d}")
        with context.store.read() as conn:
            baseline.check_issuer(context.profiles, conn, ca, profile)
            if serial is None:
                # Chosen first: a partitioned profile's CRL DP depends on it. The
                # unique (ca_id, serial) constraint catches the (2**-127) clash.
                serial = self.unused_serial(conn, ca.id)
        template = apply_profile(
            profile,
            request,
            Issuer(ca.name, ca.certificate),
            now=context.clock(),
            days=days,
            base_url=context.base_url,
            ca_name=ca.name,
            serial=serial,
            delta_url=context.delta_url_for(ca),
        )
        return template, serial

    def check(self, ca: CARecord, profile: Profile, request: CertificateRequest, *, days):
        """Every check ``issue`` makes, without issuing: the certificate
        template it would sign now (PolicyError, BadInputError or
        KeyCompromisedError otherwise)."""
        template, _ = self._template(ca, profile, request, days, None)
        with self.context.store.read() as conn:
            refuse_compromised(conn, template.public_key)
        return template

    def issue(
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
        on_insert: Callable | None = None,
        extra_audit: dict | None = None,
        end_entity_id: int | None = None,
    ) -> CertificateRecord:
        context = self.context
        template, serial = self._template(ca, profile, request, days, serial)
        with context.store.transaction() as conn:
            refuse_compromised(conn, template.public_key)  # BR 6.1.1.3 (4)
            cert = self.sign(
                ca.key_id,
                ca.certificate.public_key(),
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
                    issued_at=to_epoch(context.clock()),
                    crl_shard=profile.shard_of(serial),
                    end_entity_id=end_entity_id,
                    spki_sha256=spki_sha256(cert),
                    names_sha256=names_sha256(cert.subject.rfc4514_string(), sans),
                )
            )
            if on_insert is not None:
                on_insert(conn, cert, template.key_spec)
            self.event(conn, ca, serial, "issued", not_after=to_epoch(template.not_after))
            context.audit.ok(
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
            row = self.lookup.cert_row(conn, self.lookup.ca_row(conn, ca.name), serial)
            return certificate_from_row(row, ca.name)
