"""Reading the CA store's outbox: the publisher's only view of the CA.

Rows are read in id order; the id is the sequence number the VAs track.
"""

import json

from sqlalchemy import Engine, func, select

from store.tables.ca import crls
from store.tables.outbox import outbox

EVENT_TYPES = {"issued", "revoked", "hold", "released", "expired"}


def to_event(row) -> dict:
    payload = json.loads(row.payload)
    event = {
        "seq": row.id,
        "type": row.event,
        "issuer": row.ca_id,
        "serial": payload["serial"],
        "not_after": payload.get("not_after") or 0,
    }
    if row.event in ("revoked", "hold"):
        event["revoked_at"] = payload["revoked_at"]
        event["reason"] = payload["reason"] if payload.get("reason") is not None else -1
    return event


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
