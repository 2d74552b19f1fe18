"""Errors the store raises: a failed database, or a change that clashes
with existing data. Nothing was changed when either is raised."""

from common.errors import RevocaError


class ConflictError(RevocaError):
    """The operation clashes with the current state (name taken, already revoked)."""

    code = "conflict"
    exit_code = 7


class StoreError(RevocaError):
    """The SQL store failed (disk full, locked, unreachable); nothing was changed."""

    code = "store_error"
    exit_code = 8
