"""Reading a file that holds a secret (a passphrase, a token, a password):
only its owner may read it, as the files Revoca writes itself (0600)."""

import stat
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
