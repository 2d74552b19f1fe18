"""The blocklist of compromised keys.

CA/B Forum BR 6.1.1.3 (4): the CA rejects a certificate request whose
public key is known to be compromised, such as the key of a certificate
revoked for keyCompromise. Every revocation that compromises a key adds it
here in the revocation's own transaction (``block_revoked``); operators
import the keys they learn of elsewhere (ca/blocklist_file.py); every
issuance path refuses a listed key (``refuse_compromised``, called where
the certificate would be written).

A key is named by the SHA-256 of its DER SubjectPublicKeyInfo, lowercase
hex, as cryptography encodes it (EC points uncompressed, as ``openssl pkey
-pubin -outform DER`` writes them), so a key is found whatever file it came
in. The table is ``compromised_keys`` (store/tables/ca.py).
"""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import Connection, select

from ca.context import CAContext
from ca.errors import BadInputError, KeyCompromisedError
from ca.reasons import RevocationReason
from ca.records import from_epoch, serial_hex, to_epoch
from common.clock import iso8601
from store.tables.ca import cas, compromised_keys

# How many keys one IN (...) asks about (SQLite's variable limit is 32766).
_CHUNK = 500


def spki_sha256(public_key) -> str:
    """The blocklist's name of a public key (a cryptography key object)."""
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


@dataclass(frozen=True)
class BlockedKey:
    spki_sha256: str
    added_at: datetime
    source: str  # "revocation" | "import"
    ca: str | None  # revocation: the issuer's name
    serial: int | None  # revocation: the certificate's serial
    reason: RevocationReason | None
    note: str | None  # import: the operator's note
    actor: str

    def why(self) -> str:
        if self.source == "revocation":
            reason = self.reason.name if self.reason is not None else "revocation"
            return f"{self.ca}/{serial_hex(self.serial)} revoked for {reason}"
        return f"imported: {self.note}"

    def summary(self) -> dict:
        return {
            "spki_sha256": self.spki_sha256,
            "added_at": iso8601(self.added_at),
            "source": self.source,
            "ca": self.ca,
            "serial": serial_hex(self.serial) if self.serial is not None else None,
            "reason": self.reason.name if self.reason is not None else None,
            "note": self.note,
            "actor": self.actor,
        }


def _query():
    return select(compromised_keys, cas.c.name.label("ca_name")).join(
        cas, cas.c.id == compromised_keys.c.ca_id, isouter=True
    )


def _record(row) -> BlockedKey:
    return BlockedKey(
        spki_sha256=row.spki_sha256,
        added_at=from_epoch(row.added_at),
        source=row.source,
        ca=row.ca_name,
        serial=int(row.serial, 16) if row.serial is not None else None,
        reason=RevocationReason(row.reason) if row.reason is not None else None,
        note=row.note,
        actor=row.actor,
    )


def blocked(conn: Connection, digests: Iterable[str]) -> dict[str, BlockedKey]:
    """The listed keys among ``digests``, by digest."""
    wanted = sorted(set(digests))
    found: dict[str, BlockedKey] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        for row in conn.execute(_query().where(compromised_keys.c.spki_sha256.in_(chunk))):
            found[row.spki_sha256] = _record(row)
    return found


def refuse_compromised(conn: Connection, public_key) -> None:
    """KeyCompromisedError if ``public_key`` is on the blocklist (BR 6.1.1.3 (4))."""
    digest = spki_sha256(public_key)
    entry = blocked(conn, [digest]).get(digest)
    if entry is not None:
        raise KeyCompromisedError(
            f"the public key (SPKI SHA-256 {digest}) is known to be compromised "
            f"({entry.why()}, listed since {entry.added_at:%Y-%m-%d %H:%M:%S}Z): "
            "no certificate is issued for it"
        )


def compromises_key(reason: RevocationReason, certificate: x509.Certificate) -> bool:
    """Whether revoking ``certificate`` for ``reason`` says its key is compromised.

    RFC 5280 5.3.1 and X.509's reasonCode: keyCompromise, the subject's
    private key; cACompromise on a CA certificate, that CA's own key (on an
    end entity's certificate it speaks of the issuer's, which is not this key).
    """
    if reason == RevocationReason.keyCompromise:
        return True
    if reason != RevocationReason.cACompromise:
        return False
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def block_revoked(
    conn: Connection, row, reason: RevocationReason, at: datetime, actor: str
) -> bool:
    """In a revocation's transaction: list the key of the certificate
    ``row`` (a ``certificates`` row) if ``reason`` compromises it. Returns
    whether the key was added (False: the reason does not compromise it, or
    the key was listed before and keeps its first entry)."""
    certificate = x509.load_der_x509_certificate(row.der)
    if not compromises_key(reason, certificate):
        return False
    entry = {
        "spki_sha256": spki_sha256(certificate.public_key()),
        "added_at": to_epoch(at),
        "source": "revocation",
        "ca_id": row.ca_id,
        "serial": row.serial,
        "reason": int(reason),
        "note": None,
        "actor": actor,
    }
    return insert_absent(conn, [entry]) == 1


def insert_absent(conn: Connection, entries: list[dict]) -> int:
    """Insert the entries whose key is not listed yet; returns how many.
    Concurrent writers of the same key do not clash (ON CONFLICT DO NOTHING)."""
    listed = set(blocked(conn, [e["spki_sha256"] for e in entries]))
    new = [e for e in entries if e["spki_sha256"] not in listed]
    if not new:
        return 0
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(compromised_keys).on_conflict_do_nothing(index_elements=["spki_sha256"])
    conn.execute(statement, new)
    return len(new)


class Blocklist:
    """The operator's side: look keys up, list them, import them."""

    def __init__(self, context: CAContext):
        self.context = context

    def check_key(self, public_key) -> None:
        """KeyCompromisedError if ``public_key`` is listed (the RA asks before
        queueing a request for approvers; issuance asks again)."""
        with self.context.store.read() as conn:
            refuse_compromised(conn, public_key)

    def find(self, digests: Iterable[str]) -> dict[str, BlockedKey]:
        with self.context.store.read() as conn:
            return blocked(conn, digests)

    def entries(self, *, limit: int = 1000, after: str | None = None) -> list[BlockedKey]:
        """In digest order; ``after``: the last digest of the previous page."""
        query = _query().order_by(compromised_keys.c.spki_sha256).limit(limit)
        if after is not None:
            query = query.where(compromised_keys.c.spki_sha256 > after)
        with self.context.store.read() as conn:
            return [_record(row) for row in conn.execute(query)]

    def import_keys(self, digests: list[str], note: str, *, actor: str) -> tuple[int, int]:
        """List ``digests`` (checked by ca/blocklist_file.py) with the
        operator's ``note``, in one transaction with its audit record.
        Returns (added, already listed)."""
        note = note.strip()
        with self.context.audit.failures(actor, "ca.blocklist.import", note or "-"):
            if not note:
                raise BadInputError("an import needs a note saying where the keys come from")
            unique = list(dict.fromkeys(digests))
            now = to_epoch(self.context.clock())
            entries = [
                {
                    "spki_sha256": digest,
                    "added_at": now,
                    "source": "import",
                    "ca_id": None,
                    "serial": None,
                    "reason": None,
                    "note": note,
                    "actor": actor,
                }
                for digest in unique
            ]
            with self.context.store.transaction() as conn:
                added = insert_absent(conn, entries)
                self.context.audit.ok(
                    conn,
                    actor,
                    "ca.blocklist.import",
                    note,
                    added=added,
                    already_listed=len(digests) - added,
                )
            return added, len(digests) - added
