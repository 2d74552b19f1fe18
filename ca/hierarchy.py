"""CA hierarchy: self-signed roots, subordinate CAs, and CAs imported from elsewhere."""

import re

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import Connection, insert, select

from ca.blocklist import refuse_compromised
from ca.context import CAContext
from ca.errors import (
    BadInputError,
    ConflictError,
    PolicyError,
)
from ca.inventory import EXTERNAL
from ca.issuing import IssuingPath
from ca.keys import (
    check_key_spec,
    key_spec_of,
)
from ca.lookup import Lookup, own
from ca.policy import apply_profile
from ca.records import (
    CARecord,
    serial_hex,
    serial_to_db,
    to_epoch,
)
from ca.requests import CertificateRequest, parse_subject
from ca.token import load_private_key
from ca.x509build import new_serial
from store.tables.ca import cas

_CA_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


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


class Hierarchy:
    """Roots, subordinate CAs and imported CAs."""

    def __init__(self, context: CAContext, lookup: Lookup, path: IssuingPath):
        self.context = context
        self.lookup = lookup
        self.path = path

    def _ensure_name_free(self, name: str) -> None:
        with self.context.store.transaction() as conn:
            if conn.execute(select(cas.c.id).where(cas.c.name == name)).first():
                raise ConflictError(f"a CA named {name!r} already exists")

    def _new_ca_key(self, name: str, key_type: str):
        key_id = f"ca-{name}"
        if self.context.token.has_key(key_id):
            raise ConflictError(
                f"a key {key_id!r} already exists in the token but no CA uses it; "
                "move it away or choose another CA name"
            )
        return key_id, self.context.token.generate_key(key_id, check_key_spec(key_type))

    def init_root(
        self,
        name: str,
        subject: str,
        *,
        key_type: str = "ec-p384",
        days: int | None = None,
        actor: str = "system",
    ) -> CARecord:
        with self.context.audit.failures(actor, "ca.init_root", name):
            check_ca_name(name)
            profile = self.context.profile("root-ca")
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
                    now=self.context.clock(),
                    days=days,
                    base_url=self.context.base_url,
                    ca_name=name,
                )
                serial = new_serial(self.context.random_bytes)
                cert = self.path.sign(key_id, public_key, template, serial, template.subject, None)
                with self.context.store.transaction() as conn:
                    refuse_compromised(conn, public_key)  # BR 6.1.1.3 (4), even for a new key
                    self._insert_ca(conn, name, cert, key_id, template.key_spec, None, "created")
                    self.context.audit.ok(
                        conn,
                        actor,
                        "ca.init_root",
                        name,
                        serial=serial_hex(serial),
                        subject=cert.subject.rfc4514_string(),
                        key_type=key_type,
                    )
                    return self.lookup.ca_named(conn, name)
            except BaseException:
                self.context.token.remove_key(key_id)
                raise

    def create_sub(
        self,
        name: str,
        parent: str,
        subject: str,
        *,
        profile: str = "sub-ca",
        key_type: str = "ec-p256",
        days: int | None = None,
        actor: str = "system",
    ) -> CARecord:
        """A CA under ``parent``, its certificate issued under ``profile``
        (a CA profile other than root-ca), which also decides whether the
        new CA is under the Baseline Requirements (ca/baseline.py)."""
        with self.context.audit.failures(actor, "ca.create_sub", name):
            check_ca_name(name)
            profile_name = profile
            profile = self.context.profile(profile_name)
            if not profile.ca or profile_name == "root-ca":
                raise PolicyError(
                    f"profile {profile_name!r} is not one for subordinate CAs "
                    "(ca = true, not root-ca)"
                )
            parsed_subject = parse_subject(subject)
            self._ensure_name_free(name)
            with self.context.store.transaction() as conn:
                parent_ca = own(self.lookup.ca_named(conn, parent))
            check_key_spec(key_type)
            if key_type not in profile.key_types:
                raise PolicyError(f"profile {profile_name!r} does not allow key type {key_type}")
            key_id, public_key = self._new_ca_key(name, key_type)
            try:
                # The sub-CA's own certificate is one of the parent's: it gets a
                # certificates row, an outbox event, and the parent's URLs.
                self.path.issue(
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
                self.context.token.remove_key(key_id)
                raise
            return self.lookup.get_ca(name)

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
        with self.context.audit.failures(actor, "ca.import", name):
            check_ca_name(name)
            cert = load_certificate(cert_data, "CA certificate")
            try:
                constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
            except x509.ExtensionNotFound:
                constraints = None
            if constraints is None or not constraints.ca:
                raise PolicyError("the certificate is not a CA certificate (basicConstraints cA)")
            private_key = load_private_key(key_data, key_passphrase, what="the CA private key")
            if public_key_der(private_key.public_key()) != public_key_der(cert.public_key()):
                raise BadInputError("the private key does not belong to the CA certificate")
            key_spec = key_spec_of(cert.public_key())
            self._ensure_name_free(name)
            with self.context.store.transaction() as conn:
                refuse_compromised(conn, cert.public_key())  # BR 6.1.1.3 (4)
                parent_id = self._find_parent(conn, cert)
            key_id = f"ca-{name}"
            if self.context.token.has_key(key_id):
                raise ConflictError(f"a key {key_id!r} already exists in the token")
            self.context.token.import_key(key_id, private_key)
            try:
                with self.context.store.transaction() as conn:
                    self._insert_ca(conn, name, cert, key_id, key_spec, parent_id, "imported")
                    self.context.audit.ok(
                        conn,
                        actor,
                        "ca.import",
                        name,
                        subject=cert.subject.rfc4514_string(),
                        serial=serial_hex(cert.serial_number),
                    )
                    return self.lookup.ca_named(conn, name)
            except BaseException:
                self.context.token.remove_key(key_id)
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
        for row in conn.execute(select(cas.c.id, cas.c.cert_der).where(cas.c.origin != EXTERNAL)):
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
                created_at=to_epoch(self.context.clock()),
            )
        )
