"""The SQL store the roles share (SQLite by default, PostgreSQL for several nodes).

Tables are grouped by the part that owns them (store/tables/: each module
says who writes it and who may read it), in one alembic migration tree
(store/migrations); store/audit.py is the audit log's one writer, used by
the CA and the RA inside their own transactions. The store imports no role.
"""

from store.errors import ConflictError, SchemaError, StoreError
from store.store import Store

__all__ = ["ConflictError", "SchemaError", "Store", "StoreError"]
