"""Files that hold a secret (a passphrase, a token, a password, a sealed
key): only their owner may read them. Reading refuses a file its group or
others may read; writing makes it 0600, atomically."""

import os
import stat
import threading
from pathlib import Path


class SecretFileError(ValueError):
    """The file cannot be read, or others may read it; ``message`` says which."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def read_secret_file(path: Path, what: str) -> bytes:
    """The bytes of ``path`` (``what`` names it in errors: "passphrase
    file"), refused when its group or others have any access."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SecretFileError(f"the {what} {path} must be mode 0600 (it is {mode & 0o777:o})")
        return path.read_bytes()
    except OSError as exc:
        raise SecretFileError(f"cannot read the {what} {path}: {exc.strerror}") from None


def write_secret_file(path: Path, data: bytes, *, replace: bool) -> bool:
    """Write ``data`` to ``path`` with mode 0600, whole or not at all: a
    temporary file beside it, fsynced, then moved into place. With
    ``replace`` False an existing ``path`` is kept (a hard link cannot
    overwrite) and False is returned: another writer was first."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
    except OSError as exc:
        raise SecretFileError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
