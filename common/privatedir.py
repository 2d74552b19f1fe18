"""Directories only their owner may enter (0700): those that hold keys, a
status store or a token, and every parent made for them.

``Path.mkdir(mode=0o700, parents=True)`` gives the mode to the last
directory alone; the parents it makes get the umask's default (0755 under
the usual 022). Here each directory made is 0700 whatever the umask, and
directories that already exist are left as they are: they are not ours.
"""

import os
from pathlib import Path


def make_private_dir(path: Path) -> Path:
    """Create ``path`` and each missing parent, each mode 0700; return ``path``."""
    path = Path(path)
    missing = []
    current = path
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            if not directory.is_dir():
                raise
            continue  # made meanwhile by another process: not ours to change
        os.chmod(directory, 0o700)  # mkdir's mode passed through the umask
    return path
