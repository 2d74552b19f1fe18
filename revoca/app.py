"""Wiring: build the CA service from a configuration."""

from ca.service import CAService
from ca.token import SoftwareToken
from revoca.config import Config
from store import Store
from store.audit_key import AuditKey


def open_store(config: Config) -> Store:
    return Store.open(config.store_url, auto_migrate=config.auto_migrate)


def audit_key(config: Config) -> AuditKey:
    """This node's audit HMAC key: in the CA keys directory, sealed with the
    keys passphrase."""
    return AuditKey.in_directory(config.key_dir, config.passphrase.get)


def build_ca_service(config: Config, **overrides) -> CAService:
    """``overrides`` may pin ``clock`` and ``random_bytes`` (tests, demos)."""
    return CAService(
        open_store(config),
        SoftwareToken(config.key_dir, config.passphrase),
        config.profiles,
        base_url=config.base_url,
        passphrase=config.passphrase,
        audit_key=audit_key(config),
        delta_url=config.crl.delta_url,
        **overrides,
    )
