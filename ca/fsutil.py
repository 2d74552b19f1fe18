"""Files that hold secrets: created 0600 in 0700 directories, written atomically."""

import os
from pathlib import Path

from ca.errors import ConflictError, StoreError


def ensure_private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def write_secret_file(path: Path, data: bytes, *, overwrite: bool = False) -> None:
    """Write ``data`` to ``path`` with mode 0600, all or nothing.

    The bytes go to a temporary file in the same directory, are fsynced and
    then renamed into place, so a crash or a full disk never leaves a
    half-written key behind.
    """
    if path.exists() and not overwrite:
        raise ConflictError(f"refusing to overwrite existing file {path}")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"could not write {path}: {exc.strerror or exc}") from exc
