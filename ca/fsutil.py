"""Files that hold secrets: created 0600 in 0700 directories, written atomically."""

import os
from pathlib import Path

from ca.errors import ConflictError, StoreError
from common import secretfile


def ensure_private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def write_secret_file(path: Path, data: bytes, *, overwrite: bool = False) -> None:
    """Write ``data`` to ``path`` with mode 0600, all or nothing (the one
    atomic writer, common/secretfile.py), so a crash or a full disk never
    leaves a half-written key behind."""
    if path.exists() and not overwrite:
        raise ConflictError(f"refusing to overwrite existing file {path}")
    try:
        secretfile.write_secret_file(path, data, replace=True)
    except secretfile.SecretFileError as exc:
        raise StoreError(exc.message) from None
