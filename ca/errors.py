"""Errors the CA reports to its callers.

Each class has a stable ``code`` (for JSON APIs and logs); the CLI maps
codes to exit codes (revoca/cli_util.py), the REST API to HTTP statuses.
``CAError`` is the project's error base (common/errors.py); the store's
errors (``ConflictError``, ``StoreError``) are among its subclasses.
"""

from common.errors import RevocaError
from store.errors import ConflictError, StoreError

CAError = RevocaError


class ConfigError(CAError):
    """The configuration file or a profile in it is wrong."""

    code = "config_error"


class NotFoundError(CAError):
    code = "not_found"


class PolicyError(CAError):
    """The request is well formed, but the profile or the CA does not allow it."""

    code = "policy_violation"
    refused = True


class KeyCompromisedError(PolicyError):
    """The public key is on the blocklist of compromised keys (CA/B Forum BR
    6.1.1.3 (4)): no certificate is issued for it."""

    code = "key_compromised"


class BaselineRequirementsError(PolicyError):
    """Refused by the CA/Browser Forum Baseline Requirements across
    certificates: a hold under a CA that is under them, a profile that is
    under them issued by a CA that is not (ca/baseline.py)."""


class BadInputError(CAError):
    """The input could not be parsed or verified (CSR, certificate, key file)."""

    code = "bad_input"
    refused = True


class KeyAccessError(CAError):
    """A private key could not be used: missing or wrong passphrase, missing file."""

    code = "key_access"


__all__ = [
    "BadInputError",
    "BaselineRequirementsError",
    "CAError",
    "ConfigError",
    "ConflictError",
    "KeyAccessError",
    "KeyCompromisedError",
    "NotFoundError",
    "PolicyError",
    "StoreError",
]
