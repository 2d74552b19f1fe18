"""The outbox: the status events the publisher carries to the VAs.

Writer: the CA, one row per issuance and status change, in the change's own
transaction. Reader: the publisher (publisher/outbox.py), in ``id`` order,
the sequence number the VAs track. The payload's format, its versions and
the event types are the event contract's: store/events.py.
"""

from sqlalchemy import BigInteger, Column, ForeignKey, String, Table, Text

from store.tables.base import Id, metadata

# Every issuance and status change writes one row here in the same
# transaction as the change; the publisher follows ``id`` as its cursor.
outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True),
    Column("ca_id", Id, ForeignKey("cas.id"), nullable=False),
    Column("serial", String(40), nullable=False),
    Column("event", String(16), nullable=False),  # issued | revoked | hold | released
    Column("payload", Text, nullable=False),  # JSON
    Column("created_at_ms", BigInteger, nullable=False),
    sqlite_autoincrement=True,  # never reuse an id, even after rows are pruned
)
