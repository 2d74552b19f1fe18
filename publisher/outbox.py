"""Reading the CA store's outbox: the publisher's only view of the CA.

Rows are read in id order; the id is the sequence number the VAs track.
Each row is decoded by the store's event contract (store/events.py) and
mapped to an event of the VA's publish protocol (va/publish.py): the
outbox's event words are the protocol's (a test holds them together), the
CA id is the VA's issuer id, a missing reason is -1.
"""

from sqlalchemy import Engine, func, select

from store.events import OutboxEvent, decode
from store.tables.ca import crls
from store.tables.outbox import outbox


def to_protocol(event: OutboxEvent) -> dict:
    """One outbox event as the publish protocol carries it."""
    out = {
        "seq": event.seq,
        "type": event.type.value,
        "issuer": event.ca_id,
        "serial": f"{event.serial:x}",
        "not_after": event.not_after,
    }
    if event.type.revocation:
        out["revoked_at"] = event.revoked_at
        out["reason"] = -1 if event.reason is None else event.reason
    return out


def to_event(row) -> dict:
    """An outbox row as a publish protocol event (EventError for a bad row)."""
    return to_protocol(decode(row))


class Outbox:
    def __init__(self, engine: Engine):
        self.engine = engine

    def read(self, after: int, limit: int) -> list[dict]:
        query = select(outbox).where(outbox.c.id > after).order_by(outbox.c.id).limit(limit)
        with self.engine.connect() as conn:
            return [to_event(row) for row in conn.execute(query)]

    def last_id(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.max(outbox.c.id))).scalar() or 0

    def created_at_ms(self, seq: int) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(select(outbox.c.created_at_ms).where(outbox.c.id == seq)).scalar()

    def latest_crls(self) -> list[dict]:
        """The newest CRL under every served name (<ca>, <ca>-delta, partition
        names): what the VAs serve at /crl/<name>.crl. A root's ARL and full
        CRL share <ca>: the newest of the two is served."""
        newest = (
            select(crls.c.name, func.max(crls.c.number).label("number"))
            .group_by(crls.c.ca_id, crls.c.name)
            .subquery()
        )
        query = select(
            crls.c.name, crls.c.number, crls.c.this_update, crls.c.next_update, crls.c.der
        ).join(newest, (crls.c.name == newest.c.name) & (crls.c.number == newest.c.number))
        with self.engine.connect() as conn:
            return [
                {"name": n, "number": num, "this_update": t, "next_update": nu, "der": der}
                for n, num, t, nu, der in conn.execute(query)
            ]

    def crl_numbers(self) -> dict[str, int]:
        """Newest CRL number per served name, without loading any CRL."""
        query = select(crls.c.name, func.max(crls.c.number)).group_by(crls.c.name)
        with self.engine.connect() as conn:
            return dict(conn.execute(query).all())
