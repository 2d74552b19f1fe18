"""The store's settings: the ``[store]`` table of the configuration, typed
(built by common/settings.py's one validating constructor)."""

from dataclasses import dataclass
from pathlib import Path

from common.settings import build, setting


@dataclass(frozen=True)
class StoreSettings:
    url: str = setting(
        "",
        "SQLAlchemy URL of the CA/RA store; empty: a SQLite file <data_dir>/revoca.db. "
        "PostgreSQL when several CA/RA nodes share one store "
        '("postgresql+psycopg://user@host/revoca").',
        pattern=r"|(sqlite|postgresql)(\+[a-z0-9]+)?://.*",
    )
    auto_migrate: bool = setting(
        True,
        "Apply schema migrations when the store is opened; off when an operator runs "
        "`revoca db upgrade` as a separate, reviewed step.",
    )

    @classmethod
    def from_table(cls, table: dict) -> "StoreSettings":
        return build(cls, table, "store")

    def url_for(self, data_dir: Path) -> str:
        """The URL to open: ``url``, or the SQLite file in ``data_dir``."""
        return self.url or f"sqlite:///{data_dir / 'revoca.db'}"
