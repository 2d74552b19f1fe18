"""A node's checkpoint of the audit log, kept outside the database.

The MACs of the records and of the chain's head stop anyone without the
key from editing, inserting or removing a record in the middle, and from
cutting records off the end and rewriting the head to match (store/audit.py).
What a MAC cannot stop is a return to a state the chain really had: the
whole log cut back to an earlier head someone saved, or a restored backup.
So each node records, after each commit, the newest record it wrote (its
sequence number and MAC, MACed in turn) in a file beside its key;
``revoca audit verify`` holds the log to it. A log that ends before the
checkpoint, or whose record there differs, has lost records.

The file only moves forward: writers (threads and processes of the node)
take an exclusive lock on the directory and replace it only with a newer
record.
"""

import fcntl
import hashlib
import hmac
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from common.secretfile import SecretFileError, read_secret_file, write_secret_file

CHECKPOINT_FILE = "audit-checkpoint.json"
log = logging.getLogger("revoca.audit")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read or fails its MAC."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    seq: int
    mac: str


def _check(key: bytes, seq: int, mac: str) -> str:
    return hmac.new(key, f"checkpoint\n{seq}\n{mac}".encode(), hashlib.sha256).hexdigest()


def beside(key_path: Path) -> Path:
    """Where the node keeps its checkpoint: beside its audit key."""
    return Path(key_path).with_name(CHECKPOINT_FILE)


def read(path: Path, key: bytes) -> Checkpoint | None:
    """The checkpoint at ``path`` (None if there is none); CheckpointError
    if it is unreadable or its MAC does not verify with ``key``."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        data = json.loads(read_secret_file(path, "audit checkpoint"))
        seq, mac, check = int(data["seq"]), str(data["mac"]), str(data["check"])
    except SecretFileError as exc:
        raise CheckpointError(exc.message) from None
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"the audit checkpoint {path} is damaged") from None
    if not hmac.compare_digest(check, _check(key, seq, mac)):
        raise CheckpointError(
            f"the audit checkpoint {path} fails its MAC (edited, or made with another key)"
        )
    return Checkpoint(path, seq, mac)


def advance(path: Path, key: bytes, seq: int, mac: str) -> None:
    """Record ``seq`` (a committed record and its MAC) unless the file
    already holds a newer one. Called after a commit: a failure here is
    logged, not raised, for the change it follows has been made."""
    path = Path(path)
    try:
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        log.error("cannot advance the audit checkpoint %s: %s", path, exc.strerror)
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            current = json.loads(path.read_bytes())["seq"] if path.exists() else 0
        except (OSError, ValueError, KeyError, TypeError):
            current = 0  # damaged: verify reports it; the next record replaces it
        if isinstance(current, int) and current >= seq:
            return
        body = {"seq": seq, "mac": mac, "check": _check(key, seq, mac)}
        write_secret_file(path, (json.dumps(body) + "\n").encode(), replace=True)
    except (OSError, SecretFileError) as exc:
        log.error("cannot advance the audit checkpoint %s: %s", path, exc)
    finally:
        os.close(fd)  # releases the lock
