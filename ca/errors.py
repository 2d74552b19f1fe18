"""Errors the CA reports to its callers.

Each class has a stable ``code`` (for JSON APIs and logs) and an ``exit_code``
(for the CLI, so scripts can tell a refusal from a missing object).
"""


class CAError(Exception):
    code = "ca_error"
    exit_code = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ConfigError(CAError):
    """The configuration file or a profile in it is wrong."""

    code = "config_error"
    exit_code = 2


class NotFoundError(CAError):
    code = "not_found"
    exit_code = 3


class PolicyError(CAError):
    """The request is well formed, but the profile or the CA does not allow it."""

    code = "policy_violation"
    exit_code = 4


class BadInputError(CAError):
    """The input could not be parsed or verified (CSR, certificate, key file)."""

    code = "bad_input"
    exit_code = 5


class KeyAccessError(CAError):
    """A private key could not be used: missing or wrong passphrase, missing file."""

    code = "key_access"
    exit_code = 6


class ConflictError(CAError):
    """The operation clashes with the current state (name taken, already revoked)."""

    code = "conflict"
    exit_code = 7


class StoreError(CAError):
    """The SQL store failed (disk full, locked, unreachable); nothing was changed."""

    code = "store_error"
    exit_code = 8
