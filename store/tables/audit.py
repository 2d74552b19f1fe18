"""The audit log: append-only, hash-chained and MACed (store/audit.py says how).

Written only through ``store.audit`` (the CA's and the RA's operations,
inside their own transactions). Readers: ``revoca audit verify|list`` and the
RA API's audit endpoint; nobody updates or deletes a row.
"""

from sqlalchemy import BigInteger, Column, Integer, String, Table, Text

from store.tables.base import metadata

# Append-only, hash-chained: hash = SHA-256(prev_hash || canonical record),
# mac = HMAC-SHA256(key, previous mac || canonical record).
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("actor", String(255), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", Text, nullable=False),
    Column("result", String(16), nullable=False),  # ok | refused | error
    Column("detail", Text, nullable=False),  # JSON
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    # HMAC-SHA256 over the previous MAC and the canonical record, under a key
    # outside the database (migration 0008); NULL for records written before
    # the key existed.
    Column("mac", String(64)),
)

# One row: the chain's head. Appenders update it first, which serialises
# them on PostgreSQL (row lock) as well as on SQLite (database lock).
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    # HMAC-SHA256 of the head (its seq and the last record's MAC): without the
    # key, records cannot be cut off the end and the head moved back.
    Column("mac", String(64)),
)
