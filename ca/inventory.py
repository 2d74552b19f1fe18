"""Recording certificates issued elsewhere (the RA's inventory) as CA data.

The CA is the only writer of ``cas`` and ``certificates``; the RA hands it
the certificates it read (ra/inventory.py) and the CA records them in one
transaction, all or nothing, with its audit record. Each leaf's signature is
verified against the CA certificates given with it (or against issuers
recorded before), and an issuer becomes an ``external`` CA row, which holds
no key: nothing is ever issued, revoked or published under it. Leaves issued
by a CA held here are refused (their records already live in the store);
certificates already known (same SHA-256) are skipped, so recording again is
harmless.
"""

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import insert, select, update

from ca.errors import BadInputError, PolicyError
from ca.keys import key_spec_of
from ca.records import names_sha256, serial_to_db, spki_sha256, to_epoch
from ca.requests import format_san
from store.tables.ca import cas, certificates

EXTERNAL = "external"  # cas.origin (and key_type) of an inventory certificate's issuer
PROFILE = "external"  # certificates.profile of an inventory certificate


@dataclass
class InventoryResult:
    imported: int = 0
    duplicates: int = 0
    issuers_added: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "imported": self.imported,
            "already_present": self.duplicates,
            "issuers_added": self.issuers_added,
        }


def is_ca_certificate(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _issued_by(leaf: x509.Certificate, issuer: x509.Certificate) -> bool:
    return _signature_problem(leaf, issuer) is None and leaf.issuer == issuer.subject


def _signature_problem(leaf: x509.Certificate, issuer: x509.Certificate) -> str | None:
    """None if ``issuer`` signed ``leaf``; else why not, in words."""
    if leaf.issuer != issuer.subject:
        return "another issuer name"
    try:
        leaf.verify_directly_issued_by(issuer)
        return None
    except InvalidSignature:
        return "signature invalid"
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:  # key types, algorithms
        return f"signature cannot be checked ({exc or type(exc).__name__})"


def _refuse_unsigned(origin: str, leaf: x509.Certificate, named: list[x509.Certificate]):
    """The leaf names an issuer nothing signed it as: say which it is."""
    issuer = leaf.issuer.rfc4514_string()
    if named:
        problems = sorted({_signature_problem(leaf, c) for c in named})
        raise BadInputError(
            f"{origin}: {'; '.join(problems)}: the certificate names {issuer} as its issuer, "
            f"but its signature does not verify with the key of the {len(named)} certificate(s) "
            "of that name (altered, or issued by another key of that name)"
        )
    raise BadInputError(
        f"{origin}: issuer unknown: the issuer ({issuer}) is not among the imported "
        "certificates or known issuers; include its certificate"
    )


def _spki_or_none(cert: x509.Certificate) -> str | None:
    try:
        return spki_sha256(cert)
    except (ValueError, UnsupportedAlgorithm):  # a key type cryptography cannot read
        return None


def external_issuer_name(cert: x509.Certificate) -> str:
    """The CA name an external issuer is recorded under: its CN, made safe,
    and the start of its certificate's SHA-256 (two issuers may share a CN)."""
    cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", str(cns[0].value) if cns else "issuer").strip("-.")
    digest = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()[:8]
    return f"ext-{base[:40] or 'issuer'}-{digest}"


class Inventory:
    """Certificates issued elsewhere, recorded under external issuers."""

    def __init__(self, context):
        self.context = context

    def record_inventory(
        self,
        found: list[tuple[str, x509.Certificate]],
        *,
        end_entity_id: int | None = None,
        actor: str = "system",
        action: str = "ca.inventory.record",
        target: str = "inventory",
        extra_audit: dict | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> InventoryResult:
        """Record the leaves among ``found`` ((where it came from, certificate)
        pairs; its CA certificates identify the issuers) as inventory
        certificates, assigned to ``end_entity_id`` if given (known leaves
        too). One transaction with one audit record (``action`` on
        ``target``, the result's summary and ``extra_audit``)."""
        authorities = [cert for _, cert in found if is_ca_certificate(cert)]
        leaves = [(origin, cert) for origin, cert in found if not is_ca_certificate(cert)]
        now = to_epoch(self.context.clock())
        result = InventoryResult()
        with self.context.store.transaction() as conn:
            known = conn.execute(select(cas.c.id, cas.c.name, cas.c.origin, cas.c.cert_der)).all()
            issuers = [
                (r.id, r.name, r.origin, x509.load_der_x509_certificate(r.cert_der)) for r in known
            ]
            plan = []
            for origin, leaf in leaves:
                match = next((i for i in issuers if _issued_by(leaf, i[3])), None)
                if match is not None and match[2] != EXTERNAL:
                    raise PolicyError(
                        f"{origin}: issued by {match[1]!r}, a CA held here; its records are "
                        "already in the store"
                    )
                if match is None:
                    candidates = [*authorities, leaf]  # a self-signed leaf is its own issuer
                    issuer = next((a for a in candidates if _issued_by(leaf, a)), None)
                    if issuer is None:
                        named = [c for c in [*(i[3] for i in issuers), *candidates]]
                        named = [c for c in named if c.subject == leaf.issuer]
                        _refuse_unsigned(origin, leaf, named)
                    name = external_issuer_name(issuer)
                    conn.execute(
                        insert(cas).values(
                            name=name,
                            subject=issuer.subject.rfc4514_string(),
                            parent_id=None,
                            key_id="",
                            key_type=EXTERNAL,
                            serial=serial_to_db(issuer.serial_number),
                            not_before=to_epoch(issuer.not_valid_before_utc),
                            not_after=to_epoch(issuer.not_valid_after_utc),
                            key_identifier=hashlib.sha1(
                                issuer.public_bytes(Encoding.DER)
                            ).hexdigest(),
                            cert_der=issuer.public_bytes(Encoding.DER),
                            origin=EXTERNAL,
                            created_at=now,
                        )
                    )
                    ca_id = conn.execute(select(cas.c.id).where(cas.c.name == name)).scalar_one()
                    match = (ca_id, name, EXTERNAL, issuer)
                    issuers.append(match)
                    result.issuers_added.append(name)
                plan.append((origin, leaf, match))
            for _origin, leaf, (ca_id, _name, _o, _issuer) in plan:
                der = leaf.public_bytes(Encoding.DER)
                fingerprint = hashlib.sha256(der).hexdigest()
                present = conn.execute(
                    select(certificates.c.id).where(certificates.c.fingerprint == fingerprint)
                ).scalar()
                if present is not None:
                    result.duplicates += 1
                    if end_entity_id is not None:
                        conn.execute(
                            update(certificates)
                            .where(certificates.c.id == present)
                            .values(end_entity_id=end_entity_id)
                        )
                    continue
                try:
                    sans_ext = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
                    sans = [format_san(n) for n in sans_ext.value]
                except x509.ExtensionNotFound:
                    sans = []
                try:
                    key_type = key_spec_of(leaf.public_key())
                except (PolicyError, ValueError):
                    key_type = "other"
                conn.execute(
                    insert(certificates).values(
                        ca_id=ca_id,
                        serial=serial_to_db(leaf.serial_number),
                        subject=leaf.subject.rfc4514_string(),
                        sans=json.dumps(sans),
                        not_before=to_epoch(leaf.not_valid_before_utc),
                        not_after=to_epoch(leaf.not_valid_after_utc),
                        status="good",
                        profile=PROFILE,
                        key_type=key_type,
                        fingerprint=fingerprint,
                        der=der,
                        issued_at=to_epoch(leaf.not_valid_before_utc),
                        end_entity_id=end_entity_id,
                        spki_sha256=_spki_or_none(leaf),
                        names_sha256=names_sha256(leaf.subject.rfc4514_string(), sans),
                    )
                )
                result.imported += 1
                if progress is not None:
                    progress(1)
            self.context.audit.ok(
                conn, actor, action, target, **result.summary(), **(extra_audit or {})
            )
        return result
