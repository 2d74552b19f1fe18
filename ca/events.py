"""The CA's end of the outbox: the one writer of status events.

Every event is written in the transaction of the change it reports (the
certificate row and its audit record), so none exists without the others.
The payload is ``store.events``' typed contract, read by the publisher.
"""

from sqlalchemy import Connection, insert, text

from ca.records import serial_to_db
from store.events import encode_payload
from store.tables.outbox import outbox

OUTBOX_LOCK = 0x7265766F  # pg_advisory_xact_lock key for outbox writers ("revo")


def append_event(
    conn: Connection, ca_id: int, serial: int, event: str, created_at_ms: int, **payload
) -> int:
    """Write the event; returns its outbox id (the certificate's status_seq
    for status changes)."""
    if conn.dialect.name == "postgresql":
        # Ids come from a sequence before commit: two writers could make id
        # 11 visible before id 10, and a publisher past 11 would never see
        # 10. Serialising outbox writers until commit keeps ids in commit
        # order. (SQLite's BEGIN IMMEDIATE already serialises writers.)
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": OUTBOX_LOCK})
    return conn.execute(
        insert(outbox).values(
            ca_id=ca_id,
            serial=serial_to_db(serial),
            event=event,
            payload=encode_payload(event, **payload),
            created_at_ms=created_at_ms,
        )
    ).inserted_primary_key[0]
