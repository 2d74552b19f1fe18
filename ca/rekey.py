"""Rewriting encrypted keys made in an older format (PBES2 with PBKDF2 at
2048 iterations, cryptography's BestAvailableEncryption) in the current one
(common/pkcs8.py): the key files of the token and of a co-located VA, and
the keys made here that the store keeps for PKCS#12 export.

Every key is decrypted before anything is written, so a wrong passphrase or
a damaged file changes nothing. Each file is then replaced atomically (mode
0600, ca/fsutil.py) and the store's keys in one transaction; a key already
in the current format is left as it is, so running it again does nothing.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, update

from ca.errors import BadInputError, KeyAccessError
from ca.fsutil import write_secret_file
from ca.records import serial_hex
from ca.token import load_private_key
from common.pkcs8 import encrypt_private_key, key_encryption
from store import Store
from store.audit import AuditLog
from store.tables.ca import cas, certificates

KEY_FILE_GLOB = "*.key.pem"


@dataclass(frozen=True)
class RekeyItem:
    """One encrypted key: a file, or a certificate's key in the store."""

    where: str  # the file's path, or "store:<ca>/<serial>"
    was: str  # how it was encrypted (common.pkcs8.KeyEncryption.describe)
    action: str  # "rewritten" | "current" | "changed" (modified meanwhile, left alone)

    def summary(self) -> dict:
        return {"where": self.where, "was": self.was, "action": self.action}


def reencrypt(
    data: bytes, passphrase: bytes, what: str, *, verify: bool = True
) -> tuple[bytes | None, str]:
    """``data`` in the current format (None when it already is), and how it
    was encrypted. With ``verify``, a key already current is decrypted too,
    to check the passphrase. KeyAccessError for a wrong passphrase,
    BadInputError for something that is not a key."""
    try:
        encryption = key_encryption(data)
    except ValueError:
        raise BadInputError(f"{what} is not a PEM or DER private key") from None
    if encryption.is_current() and not verify:
        return None, encryption.describe()
    private_key = load_private_key(data, passphrase, what=what)
    if encryption.is_current():
        return None, encryption.describe()
    return encrypt_private_key(private_key, passphrase), encryption.describe()


def key_files(directories: Iterable[Path]) -> list[Path]:
    """The key files of ``directories`` (those that exist), in name order."""
    found: list[Path] = []
    for directory in directories:
        if directory.is_dir():
            found += sorted(p for p in directory.glob(KEY_FILE_GLOB) if p.is_file())
    return found


def rekey(
    store: Store,
    audit: AuditLog,
    directories: Iterable[Path],
    passphrase: bytes,
    *,
    actor: str,
    progress: Callable[[int, int, str], None] = lambda done, total, where: None,
) -> list[RekeyItem]:
    """Rewrite every older-format key of ``directories`` and of the store.
    ``progress(done, total, where)`` follows the slow part: each key
    decrypted and, where needed, encrypted again (about 0.2 s each)."""
    with audit.failures(actor, "ca.rekey_files", "keys"):
        files = key_files(directories)
        with store.read() as conn:
            rows = conn.execute(
                select(certificates.c.id, certificates.c.serial, cas.c.name)
                .join(cas, cas.c.id == certificates.c.ca_id)
                .where(certificates.c.private_key.is_not(None))
                .order_by(certificates.c.id)
            ).all()
        total = len(files) + len(rows)
        # Phase 1: read and decrypt everything; nothing is written yet.
        planned_files = []
        for path in files:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise KeyAccessError(f"cannot read key file {path}: {exc.strerror}") from exc
            new, was = reencrypt(data, passphrase, f"key file {path}")
            planned_files.append((path, data, new, was))
            progress(len(planned_files), total, str(path))
        planned_rows = []
        for row in rows:
            where = f"store:{row.name}/{serial_hex(int(row.serial, 16))}"
            with store.read() as conn:  # one at a time: the keys are never all in memory
                data = conn.execute(
                    select(certificates.c.private_key).where(certificates.c.id == row.id)
                ).scalar_one()
            new, was = reencrypt(data, passphrase, f"the stored key of {where[6:]}")
            planned_rows.append((row.id, where, data, new, was))
            progress(len(files) + len(planned_rows), total, where)
        # Phase 2: write, each file atomically, the store's keys in one transaction.
        done: list[RekeyItem] = []
        for path, data, new, was in planned_files:
            action = "current"
            if new is not None:
                if path.read_bytes() != data:
                    action = "changed"
                else:
                    write_secret_file(path, new, overwrite=True)
                    action = "rewritten"
            done.append(RekeyItem(str(path), was, action))
        with store.transaction() as conn:
            for row_id, where, data, new, was in planned_rows:
                action = "current"
                if new is not None:
                    # Only if the key is still the one decrypted above.
                    changed = conn.execute(
                        update(certificates)
                        .where(certificates.c.id == row_id, certificates.c.private_key == data)
                        .values(private_key=new)
                    ).rowcount
                    action = "rewritten" if changed else "changed"
                done.append(RekeyItem(where, was, action))
            audit.ok(
                conn,
                actor,
                "ca.rekey_files",
                "keys",
                rewritten=sum(item.action == "rewritten" for item in done),
                current=sum(item.action == "current" for item in done),
                changed=sum(item.action == "changed" for item in done),
            )
        return done
