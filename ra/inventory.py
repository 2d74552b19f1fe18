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

import io
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
_LABEL = re.compile(rb"-----BEGIN ([A-Z0-9 ]{1,40})-----")


def _parse(data: bytes, origin: str) -> list[x509.Certificate]:
    """Every certificate in one file; anything else is one line saying which
    file and what is wrong with it (never the parser's own dump)."""
    if b"-----BEGIN" in data:
        blocks = _PEM.findall(data)
        if not blocks:
            if b"-----BEGIN CERTIFICATE-----" in data:
                raise BadInputError(f"{origin}: the PEM certificate is cut off (truncated file?)")
            labels = sorted({m.decode(errors="replace") for m in _LABEL.findall(data)})
            held = ", ".join(labels) or "an unreadable PEM block"
            raise BadInputError(f"{origin}: holds {held}, not a certificate")
        if data.count(b"-----BEGIN CERTIFICATE-----") != len(blocks):
            raise BadInputError(f"{origin}: a PEM certificate is cut off (truncated file?)")
        out = []
        for i, block in enumerate(blocks):
            try:
                out.append(x509.load_pem_x509_certificate(block))
            except ValueError:
                raise BadInputError(
                    f"{origin}: certificate {i + 1} of {len(blocks)} is damaged: its base64 "
                    "does not decode to an X.509 certificate"
                ) from None
        return out
    if not data.strip():
        raise BadInputError(f"{origin}: the file is empty")
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        what = (
            "DER that is not an X.509 certificate" if data[:1] == b"\x30" else "neither PEM nor DER"
        )
        raise BadInputError(f"{origin}: not a certificate ({what})") from None


class _Reader:
    """Collects (origin, certificate) pairs from files, folders, zips and
    uploaded bytes, within the limits above."""

    def __init__(self):
        self.found: list[tuple[str, x509.Certificate]] = []

    def add(self, data: bytes, origin: str) -> None:
        self.found.extend((origin, cert) for cert in _parse(data, origin))
        if len(self.found) > MAX_CERTIFICATES:
            raise BadInputError(f"more than {MAX_CERTIFICATES:,} certificates in one import")

    def file(self, path: Path) -> None:
        try:
            if zipfile.is_zipfile(path):
                with path.open("rb") as handle:
                    self.zip(handle, str(path))
            elif path.stat().st_size > MAX_FILE:
                raise BadInputError(f"{path}: larger than {MAX_FILE // 1024} KiB")
            else:
                self.add(path.read_bytes(), str(path))
        except OSError as exc:
            raise BadInputError(f"cannot read {path}: {exc.strerror}") from None

    def blob(self, data: bytes, origin: str) -> None:
        """An uploaded file: a zip, or PEM or DER."""
        if data[:4] == b"PK\x03\x04":
            self.zip(io.BytesIO(data), origin)
        elif len(data) > MAX_FILE:
            raise BadInputError(f"{origin}: larger than {MAX_FILE // 1024} KiB")
        else:
            self.add(data, origin)

    def zip(self, handle, label: str) -> None:
        total = 0
        try:
            with zipfile.ZipFile(handle) as archive:
                for info in archive.infolist():
                    if info.is_dir() or not info.filename.lower().endswith(SUFFIXES):
                        continue
                    if info.file_size > MAX_FILE:
                        raise BadInputError(f"{label}:{info.filename}: larger than allowed")
                    total += info.file_size
                    if total > MAX_ZIP_TOTAL:
                        raise BadInputError(f"{label}: more than 1 GiB uncompressed")
                    with archive.open(info) as member:
                        data = member.read(MAX_FILE + 1)
                    if len(data) > MAX_FILE:  # the directory lied about the size
                        raise BadInputError(f"{label}:{info.filename}: larger than allowed")
                    self.add(data, f"{label}:{info.filename}")
        except (zipfile.BadZipFile, EOFError) as exc:
            raise BadInputError(f"{label}: damaged zip archive: {exc}") from None


def read_sources(paths: list[Path]) -> list[tuple[str, x509.Certificate]]:
    """Every certificate in the given files, folders and zips, with where it came from."""
    reader = _Reader()
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and child.suffix.lower() in SUFFIXES:
                    reader.file(child)
        elif path.exists():
            reader.file(path)
        else:
            raise BadInputError(f"{path}: no such file or folder")
    return reader.found


def read_uploads(files: list[tuple[str, bytes]]) -> list[tuple[str, x509.Certificate]]:
    """Every certificate in uploaded files ((name, content) pairs: PEM, DER
    or a zip of those), with the file (and member) it came from."""
    reader = _Reader()
    for name, data in files:
        reader.blob(data, name)
    return reader.found


def _entity_id(ca, entity: str | None) -> int | None:
    if entity is None:
        return None
    with ca.store.read() as conn:
        found = conn.execute(
            select(end_entities.c.id).where(end_entities.c.name == entity)
        ).scalar()
    if found is None:
        raise BadInputError(f"no end entity named {entity!r}")
    return found


def import_certificates(
    ca, paths: list[Path], *, entity: str | None = None, actor: str = "system", progress=None
) -> ImportResult:
    """Read every source, then have the CA (a ``CAService``) record the
    certificates in one transaction (see the module's notes)."""
    found = read_sources(paths)
    return _record(ca, found, ",".join(str(p) for p in paths), entity, actor, progress)


def import_uploads(
    ca, files: list[tuple[str, bytes]], *, entity: str | None = None, actor: str = "system"
) -> ImportResult:
    """As ``import_certificates``, for files sent in a request (the REST API)."""
    found = read_uploads(files)
    return _record(ca, found, ",".join(name for name, _ in files), entity, actor, None)


def _record(ca, found, target: str, entity, actor, progress) -> ImportResult:
    if not found:
        raise BadInputError("no certificates found in the given sources")
    entity_id = _entity_id(ca, entity)
    return ca.record_inventory(
        found,
        end_entity_id=entity_id,
        actor=actor,
        action="ra.inventory.import",
        target=target[:500],
        extra_audit={"entity": entity},
        progress=progress,
    )
