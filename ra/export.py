"""Export issued certificates as a zip: a folder per CA and per status
(``active``, ``revoked``, and ``hold`` when any are on hold), one PEM per
certificate named by its serial, and ``manifest.csv`` with a line each.

Rows are read through the CA's catalog (ca/catalog.py) a batch at a time
and written straight into the archive (ra/zipstream.py spools the zip's
central directory to a temporary file too); the manifest goes to a
temporary file meanwhile and into the archive last. Memory stays flat whatever the count.
"""

import csv
import json
import ssl
import tempfile
from collections.abc import Callable
from typing import BinaryIO

from ca import catalog
from ca.errors import BadInputError
from ca.records import from_epoch, serial_hex
from ra.search import entity_names
from ra.zipstream import ZipStreamWriter
from store import Store

FOLDERS = {"good": "active", "revoked": "revoked", "hold": "hold"}
MANIFEST_FIELDS = (
    "path",
    "ca",
    "serial",
    "status",
    "subject",
    "sans",
    "not_before",
    "not_after",
    "revoked_at",
    "profile",
    "end_entity",
    "fingerprint_sha256",
)
BATCH = 1000


def export_zip(
    store: Store,
    out: BinaryIO,
    *,
    ca: str | None = None,
    issued_after: int | None = None,
    issued_before: int | None = None,
    progress: Callable[[int], None] = lambda n: None,
) -> int:
    """Write the archive to ``out``; returns how many certificates it holds."""
    if issued_after is not None and issued_before is not None and issued_after >= issued_before:
        raise BadInputError("the issuance window is empty (after must be before before)")
    ca_id = None
    if ca is not None:
        with store.read() as conn:
            ca_id = catalog.ca_id(conn, ca)
    count = 0
    with (
        tempfile.TemporaryFile("w+", newline="", encoding="utf-8") as manifest,
        ZipStreamWriter(out) as archive,
    ):
        writer = csv.writer(manifest, lineterminator="\r\n")
        writer.writerow(MANIFEST_FIELDS)
        last_id = 0
        while True:
            # Keyset batches, each its own short read: no long-held snapshot.
            with store.read() as conn:
                rows = catalog.listing(
                    conn,
                    after_id=last_id,
                    limit=BATCH,
                    ca_id=ca_id,
                    issued_after=issued_after,
                    issued_before=issued_before,
                )
                entities = entity_names(conn, (row.end_entity_id for row in rows))
            if not rows:
                break
            for row in rows:
                serial = serial_hex(int(row.serial, 16))
                path = f"{row.ca}/{FOLDERS.get(row.status, row.status)}/{serial}.pem"
                archive.add(path, ssl.DER_cert_to_PEM_cert(row.der).encode())
                writer.writerow(
                    (
                        path,
                        row.ca,
                        serial,
                        row.status,
                        row.subject,
                        " ".join(json.loads(row.sans)),
                        from_epoch(row.not_before).isoformat(),
                        from_epoch(row.not_after).isoformat(),
                        from_epoch(row.revoked_at).isoformat() if row.revoked_at else "",
                        row.profile,
                        entities.get(row.end_entity_id, ""),
                        row.fingerprint,
                    )
                )
            count += len(rows)
            last_id = rows[-1].id
            progress(len(rows))
        manifest.flush()
        with open(manifest.fileno(), "rb", closefd=False) as raw:
            raw.seek(0)
            archive.add_stream("manifest.csv", raw)
    return count
