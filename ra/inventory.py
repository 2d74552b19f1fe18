"""Import certificates issued by other CAs into the inventory, so search,
reports and expiry notices cover them too.

Sources: PEM files (any number of certificates each), DER files, folders
(searched recursively for .pem .crt .cer .der), and zip archives of those.
The RA reads and parses them; the CA records them (``CAService.record_inventory``,
ca/inventory.py): CA certificates in the sources identify the issuers, each
leaf's signature is verified against them (or against issuers recorded
before), and an issuer becomes an ``external`` CA, which holds no key. A leaf
whose issuer cannot be found, or any file that cannot be read, stops the
import before anything is written: one transaction, all or nothing.
Certificates already known (same SHA-256) are skipped, so importing again
is harmless. Leaves issued by a CA held here are refused.
"""

import re
import zipfile
from pathlib import Path

from cryptography import x509
from sqlalchemy import select

from ca.errors import BadInputError
from ca.inventory import InventoryResult as ImportResult
from store.tables.ra import end_entities

SUFFIXES = (".pem", ".crt", ".cer", ".der")
MAX_FILE = 4 * 1024 * 1024  # a certificate file (or zip member) larger than this is refused
MAX_ZIP_TOTAL = 1024 * 1024 * 1024  # uncompressed bytes read from one zip
MAX_CERTIFICATES = 2_000_000
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\s+.+?-----END CERTIFICATE-----", re.S)


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


def import_certificates(
    ca, paths: list[Path], *, entity: str | None = None, actor: str = "system", progress=None
) -> ImportResult:
    """Read every source, then have the CA (a ``CAService``) record the
    certificates in one transaction (see the module's notes)."""
    found = read_sources(paths)
    if not found:
        raise BadInputError("no certificates found in the given sources")
    entity_id = None
    if entity is not None:
        with ca.store.read() as conn:
            entity_id = conn.execute(
                select(end_entities.c.id).where(end_entities.c.name == entity)
            ).scalar()
        if entity_id is None:
            raise BadInputError(f"no end entity named {entity!r}")
    return ca.record_inventory(
        found,
        end_entity_id=entity_id,
        actor=actor,
        action="ra.inventory.import",
        target=",".join(str(p) for p in paths)[:500],
        extra_audit={"entity": entity},
        progress=progress,
    )
