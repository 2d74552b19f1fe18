"""The CA/RA SQL store (SQLite by default, PostgreSQL for several nodes)."""

from ca.store.store import Store

__all__ = ["Store"]
