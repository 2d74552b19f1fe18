"""Reading the CA store's outbox: the publisher's only view of the CA.

Rows are read in id order; the id is the sequence number the VAs track.
"""

import json

from sqlalchemy import Engine, func, select

from ca.store.schema import cas, crls, outbox

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
        """The newest CRL (full or ARL) and delta CRL of every CA, named as
        the VAs serve them: <ca> and <ca>-delta (the profiles' CRL URLs)."""
        newest = (
            select(crls.c.ca_id, crls.c.kind, func.max(crls.c.number).label("number"))
            .group_by(crls.c.ca_id, crls.c.kind)
            .subquery()
        )
        query = (
            select(
                cas.c.name,
                crls.c.kind,
                crls.c.number,
                crls.c.this_update,
                crls.c.next_update,
                crls.c.der,
            )
            .join(
                newest,
                (crls.c.ca_id == newest.c.ca_id)
                & (crls.c.kind == newest.c.kind)
                & (crls.c.number == newest.c.number),
            )
            .join(cas, cas.c.id == crls.c.ca_id)
        )
        newest_by_name: dict[str, dict] = {}
        with self.engine.connect() as conn:
            for name, kind, number, this_update, next_update, der in conn.execute(query):
                served = f"{name}-delta" if kind == "delta" else name
                # A root's ARL and full CRL share <ca>.crl (its sub-CAs' CRL DP):
                # the newest of the two is served.
                if number > newest_by_name.get(served, {"number": -1})["number"]:
                    newest_by_name[served] = {
                        "name": served,
                        "number": number,
                        "this_update": this_update,
                        "next_update": next_update,
                        "der": der,
                    }
        return list(newest_by_name.values())

    def crl_numbers(self) -> dict[str, int]:
        """Newest CRL number per served name, without loading any CRL."""
        query = (
            select(cas.c.name, crls.c.kind, func.max(crls.c.number))
            .join(cas, cas.c.id == crls.c.ca_id)
            .group_by(cas.c.name, crls.c.kind)
        )
        with self.engine.connect() as conn:
            numbers: dict[str, int] = {}
            for n, k, num in conn.execute(query):
                name = f"{n}-delta" if k == "delta" else n
                numbers[name] = max(num, numbers.get(name, 0))
            return numbers
