"""The SQL store the roles share (SQLite by default, PostgreSQL for several nodes).

Tables are grouped by the part that owns them (store/tables/: each module
says who writes it and who may read it), in one alembic migration tree
(store/migrations); store/audit.py is the audit log's one writer, used by
the CA and the RA inside their own transactions. The store imports no role.

``Store`` is loaded on first use (PEP 562): the errors and settings here are
imported by processes that never open the SQL store (a VA), and must not
pull SQLAlchemy and alembic into them.
"""

from store.errors import ConflictError, NoStoreError, SchemaError, StoreError

__all__ = ["ConflictError", "NoStoreError", "SchemaError", "Store", "StoreError"]


def __getattr__(name: str):
    if name == "Store":
        from store.store import Store

        return Store
    raise AttributeError(f"module 'store' has no attribute {name!r}")
