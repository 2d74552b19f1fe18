"""Export issued certificates as a zip: a folder per CA and per status at
the time of the export (``active``, ``expired``, ``revoked``, ``hold``: the
folders that have certificates), one PEM per certificate named by its
serial, and ``manifest.csv`` with a line each (times in ISO 8601, UTC).
Filters combine: CA, status, issuance window, expiry window.

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
from ca.records import serial_hex
from common.clock import iso8601
from ra.search import entity_names
from ra.zipstream import ZipStreamWriter
from store import Store

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
    now: int,
    ca: str | None = None,
    status: str | None = None,
    issued_after: int | None = None,
    issued_before: int | None = None,
    expires_after: int | None = None,
    expires_before: int | None = None,
    progress: Callable[[int], None] = lambda n: None,
) -> int:
    """Write the archive to ``out``; returns how many certificates it holds.
    ``now`` (epoch seconds) is the time the statuses are judged at."""
    for what, after, before in (
        ("issuance", issued_after, issued_before),
        ("expiry", expires_after, expires_before),
    ):
        if after is not None and before is not None and after >= before:
            raise BadInputError(f"the {what} window is empty (its start must be before its end)")
    if status is not None and status not in catalog.STATUSES:
        raise BadInputError(f"status must be one of {', '.join(catalog.STATUSES)}")
    ca_id = None
    if ca is not None:
        with store.read() as conn:
            ca_id = catalog.ca_id(conn, ca)
    count = 0
    with (
        tempfile.TemporaryFile("w+", newline="", encoding="utf-8") as manifest,
        ZipStreamWriter(out, when=now) as archive,
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
                    status=status,
                    expires_after=expires_after,
                    expires_before=expires_before,
                    now=now,
                )
                entities = entity_names(conn, (row.end_entity_id for row in rows))
            if not rows:
                break
            for row in rows:
                serial = serial_hex(int(row.serial, 16))
                state = catalog.status_at(row.status, row.not_after, now)
                path = f"{row.ca}/{state}/{serial}.pem"
                archive.add(path, ssl.DER_cert_to_PEM_cert(row.der).encode())
                writer.writerow(
                    (
                        path,
                        row.ca,
                        serial,
                        state,
                        row.subject,
                        " ".join(json.loads(row.sans)),
                        iso8601(row.not_before),
                        iso8601(row.not_after),
                        iso8601(row.revoked_at) or "",
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
