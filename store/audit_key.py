"""The audit log's HMAC key, kept where the database cannot reach it.

32 random bytes (HMAC-SHA256, RFC 2104: a key of the hash's output length)
in a file beside the CA's private keys, sealed with the same passphrase
(common/sealed.py: scrypt and AES-256-GCM) and mode 0600. Every node that
writes to a shared store needs the same file; its fingerprint (an HMAC of a
fixed label, so it says nothing about the key) tells copies apart.

The key is made once, by the first node that writes an audit record when
neither the file nor a keyed record exists (store/audit.py). The file is
created with a hard link, which cannot overwrite: of two processes racing
to make it, one wins and the other uses the winner's key.
"""

import hashlib
import hmac
import os
import threading
from collections.abc import Callable
from pathlib import Path

from common.sealed import SealedError, seal, unseal
from common.secretfile import SecretFileError, read_secret_file, write_secret_file
from store.errors import AuditKeyError

KEY_FILE = "audit-hmac.key"
LABEL = "audit-hmac-sha256"
KEY_BYTES = 32


def fingerprint(key: bytes) -> str:
    """A short name for a key that reveals nothing of it."""
    return hmac.new(key, b"revoca audit key fingerprint", hashlib.sha256).hexdigest()[:16]


class AuditKey:
    """The key file at ``path``, opened with ``passphrase()`` (the CA keys'
    passphrase source) on first use and kept in memory afterwards."""

    def __init__(self, path: Path, passphrase: Callable[[], bytes]):
        self.path = Path(path)
        self._passphrase = passphrase
        self._key: bytes | None = None
        self._lock = threading.Lock()

    @classmethod
    def in_directory(cls, key_dir: Path, passphrase: Callable[[], bytes]) -> "AuditKey":
        return cls(Path(key_dir) / KEY_FILE, passphrase)

    def load(self) -> bytes | None:
        """The key, or None when there is no key file."""
        with self._lock:
            if self._key is None and self.path.exists():
                self._key = self._open()
            return self._key

    def create(self) -> bytes:
        """Make the key file (unless another process just made it) and return the key."""
        with self._lock:
            if self._key is not None:
                return self._key
            key = os.urandom(KEY_BYTES)
            sealed = seal(key, self._passphrase(), LABEL)
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                made = write_secret_file(self.path, sealed, replace=False)
            except SecretFileError as exc:
                raise AuditKeyError(f"cannot make the audit key: {exc.message}") from None
            self._key = key if made else self._open()
            return self._key

    def _open(self) -> bytes:
        try:
            data = read_secret_file(self.path, "audit key file")
        except SecretFileError as exc:
            raise AuditKeyError(exc.message) from None
        try:
            key = unseal(data, self._passphrase(), LABEL)
        except SealedError as exc:
            raise AuditKeyError(f"the audit key file {self.path} {exc.message}") from None
        if len(key) != KEY_BYTES:
            raise AuditKeyError(f"the audit key file {self.path} holds no {KEY_BYTES}-byte key")
        return key
