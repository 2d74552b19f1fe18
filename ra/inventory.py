"""Import certificates issued by other CAs into the inventory, so search,
reports and expiry notices cover them too.

Sources: PEM files (any number of certificates each), DER files, folders
(searched recursively for .pem .crt .cer .der), and zip archives of those.
CA certificates in the sources identify the issuers: each leaf's signature
is verified against them (or against issuers imported before), and an
issuer becomes an ``external`` CA row, which holds no key (nothing is ever
issued, revoked or published under it; see ``ServiceCore._own``). A leaf
whose issuer cannot be found, or any file that cannot be read, stops the
import before anything is written: one transaction, all or nothing.
Certificates already known (same SHA-256) are skipped, so importing again
is harmless. Leaves issued by a CA held here are refused: they are not
external, and their records already live in the store.
"""

import hashlib
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import insert, select, update

from ca.errors import BadInputError, PolicyError
from ca.keys import key_spec_of
from ca.records import serial_to_db, to_epoch
from ca.requests import format_san
from ca.service_core import EXTERNAL
from store.tables.ca import cas, certificates
from store.tables.ra import end_entities

SUFFIXES = (".pem", ".crt", ".cer", ".der")
MAX_FILE = 4 * 1024 * 1024  # a certificate file (or zip member) larger than this is refused
MAX_ZIP_TOTAL = 1024 * 1024 * 1024  # uncompressed bytes read from one zip
MAX_CERTIFICATES = 2_000_000
PROFILE = "external"
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\s+.+?-----END CERTIFICATE-----", re.S)


@dataclass
class ImportResult:
    imported: int = 0
    duplicates: int = 0
    issuers_added: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "imported": self.imported,
            "already_present": self.duplicates,
            "issuers_added": self.issuers_added,
        }


def _parse(data: bytes, origin: str) -> list[x509.Certificate]:
    if b"-----BEGIN" in data:
        blocks = _PEM.findall(data)
        if not blocks:
            raise BadInputError(f"{origin}: no complete PEM certificate (truncated?)")
        if data.count(b"-----BEGIN CERTIFICATE-----") != len(blocks):
            raise BadInputError(f"{origin}: a PEM certificate is cut off (truncated file?)")
        out = []
        for i, block in enumerate(blocks):
            try:
                out.append(x509.load_pem_x509_certificate(block))
            except ValueError as exc:
                raise BadInputError(f"{origin}: certificate {i + 1} is damaged: {exc}") from None
        return out
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise BadInputError(f"{origin}: not a certificate (PEM or DER): {exc}") from None


def read_sources(paths: list[Path]) -> list[tuple[str, x509.Certificate]]:
    """Every certificate in the given files, folders and zips, with where it came from."""
    found: list[tuple[str, x509.Certificate]] = []

    def add(data: bytes, origin: str) -> None:
        found.extend((origin, cert) for cert in _parse(data, origin))
        if len(found) > MAX_CERTIFICATES:
            raise BadInputError(f"more than {MAX_CERTIFICATES:,} certificates in one import")

    def read_file(path: Path) -> None:
        try:
            if path.stat().st_size > MAX_FILE and not zipfile.is_zipfile(path):
                raise BadInputError(f"{path}: larger than {MAX_FILE // 1024} KiB")
            if zipfile.is_zipfile(path):
                read_zip(path)
            else:
                add(path.read_bytes(), str(path))
        except OSError as exc:
            raise BadInputError(f"cannot read {path}: {exc.strerror}") from None

    def read_zip(path: Path) -> None:
        total = 0
        try:
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    if info.is_dir() or not info.filename.lower().endswith(SUFFIXES):
                        continue
                    if info.file_size > MAX_FILE:
                        raise BadInputError(f"{path}:{info.filename}: larger than allowed")
                    total += info.file_size
                    if total > MAX_ZIP_TOTAL:
                        raise BadInputError(f"{path}: more than 1 GiB uncompressed")
                    with archive.open(info) as member:
                        data = member.read(MAX_FILE + 1)
                    if len(data) > MAX_FILE:  # the directory lied about the size
                        raise BadInputError(f"{path}:{info.filename}: larger than allowed")
                    add(data, f"{path}:{info.filename}")
        except (zipfile.BadZipFile, EOFError) as exc:
            raise BadInputError(f"{path}: damaged zip archive: {exc}") from None

    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and child.suffix.lower() in SUFFIXES:
                    read_file(child)
        elif path.exists():
            read_file(path)
        else:
            raise BadInputError(f"{path}: no such file or folder")
    return found


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _issued_by(leaf: x509.Certificate, issuer: x509.Certificate) -> bool:
    if leaf.issuer != issuer.subject:
        return False
    try:
        leaf.verify_directly_issued_by(issuer)
        return True
    except Exception:  # InvalidSignature, unsupported key types: not this issuer
        return False


def _issuer_name(cert: x509.Certificate) -> str:
    cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", str(cns[0].value) if cns else "issuer").strip("-.")
    digest = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()[:8]
    return f"ext-{base[:40] or 'issuer'}-{digest}"


def import_certificates(
    service, paths: list[Path], *, entity: str | None = None, actor: str = "system", progress=None
) -> ImportResult:
    """Read, check, then import in one transaction (see the module's notes)."""
    found = read_sources(paths)
    if not found:
        raise BadInputError("no certificates found in the given sources")
    authorities = [cert for _, cert in found if _is_ca(cert)]
    leaves = [(origin, cert) for origin, cert in found if not _is_ca(cert)]
    now = int(service.clock().timestamp())
    result = ImportResult()
    with service.store.transaction() as conn:
        entity_id = None
        if entity is not None:
            entity_id = conn.execute(
                select(end_entities.c.id).where(end_entities.c.name == entity)
            ).scalar()
            if entity_id is None:
                raise BadInputError(f"no end entity named {entity!r}")
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
                    raise BadInputError(
                        f"{origin}: the issuer ({leaf.issuer.rfc4514_string()}) is not among "
                        "the imported certificates or known issuers; include its certificate"
                    )
                name = _issuer_name(issuer)
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
                        key_identifier=hashlib.sha1(issuer.public_bytes(Encoding.DER)).hexdigest(),
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
                if entity_id is not None:
                    conn.execute(
                        update(certificates)
                        .where(certificates.c.id == present)
                        .values(end_entity_id=entity_id)
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
                    end_entity_id=entity_id,
                )
            )
            result.imported += 1
            if progress is not None:
                progress(1)
        service.audit_ok(
            conn,
            actor,
            "ra.inventory.import",
            ",".join(str(p) for p in paths)[:500],
            **result.summary(),
            entity=entity,
        )
    return result
