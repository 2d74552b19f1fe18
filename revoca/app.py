"""Wiring: build the CA service from a configuration."""

from ca.service import CAService
from ca.token import SoftwareToken
from revoca.config import Config
from store import Store
from store.audit_key import AuditKey

# The commands that may make a new store where the configuration points:
# `ca init-root` and `ca import` (a node's first CA), `db upgrade` and `demo`.
# Every other command refuses a missing store (NoStoreError, exit 3) and
# creates nothing, so that a mistyped --data-dir is not an empty new PKI.


def open_store(config: Config, *, create: bool = False) -> Store:
    return Store.open(config.store_url, auto_migrate=config.auto_migrate, create=create)


def audit_key(config: Config) -> AuditKey:
    """This node's audit HMAC key: in the CA keys directory, sealed with the
    keys passphrase."""
    return AuditKey.in_directory(config.key_dir, config.passphrase.get)


def build_ca_service(config: Config, *, create: bool = False, **overrides) -> CAService:
    """``create``: make the store if there is none (see open_store);
    ``overrides`` may pin ``clock`` and ``random_bytes`` (tests, demos)."""
    return CAService(
        open_store(config, create=create),
        SoftwareToken(config.key_dir, config.passphrase),
        config.profiles,
        base_url=config.base_url,
        passphrase=config.passphrase,
        audit_key=audit_key(config),
        delta_url=config.crl.delta_url,
        **overrides,
    )
