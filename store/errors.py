"""Errors the store raises: a failed database, or a change that clashes
with existing data. Nothing was changed when either is raised."""

from common.errors import RevocaError


class ConflictError(RevocaError):
    """The operation clashes with the current state (name taken, already revoked)."""

    code = "conflict"


class StoreError(RevocaError):
    """The SQL store failed (disk full, locked, unreachable); nothing was changed."""

    code = "store_error"


class SchemaError(StoreError):
    """The store's schema is older than this version of the code needs, and
    migrations are not applied automatically (``[store] auto_migrate``)."""

    code = "schema_outdated"


class NoStoreError(StoreError):
    """There is no Revoca store where the configuration points (no SQLite
    file, or a database without Revoca's tables), and the command is not
    one that creates a store; nothing was created."""

    code = "no_store"


class AuditKeyError(RevocaError):
    """The audit log's HMAC key cannot be used: missing where the log is
    keyed, sealed with another passphrase, or not the key the log was keyed
    with; nothing was written."""

    code = "key_access"
