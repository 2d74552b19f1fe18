"""Reading the CA store's outbox: the publisher's only view of the CA.

Rows are read in id order; the id is the sequence number the VAs track.
Each row is decoded by the store's event contract (store/events.py) and
mapped to an event of the VA's publish protocol (va/publish.py): the
outbox's event words are the protocol's (a test holds them together), the
CA id is the VA's issuer id, a missing reason is -1.
"""

from collections.abc import Collection, Iterator

from sqlalchemy import Engine, func, select

from store.events import OutboxEvent, decode
from store.tables.ca import cas, certificates, crls
from store.tables.outbox import outbox

# cas.origin of an inventory certificate's issuer (ca/inventory.py): its
# key is not here, so it has no events and is never published.
_EXTERNAL = "external"


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


def _snapshot_status(row, position: int) -> dict:
    """A certificates row as a snapshot's status. Its seq is the outbox id of
    its last status change (status_seq); a certificate good since issuance
    has none (0: any recorded change is newer). A revoked or held row without
    one (written before status_seq existed, its events gone) is known only to
    be current at the snapshot: it gets the position."""
    seq = row.status_seq
    if seq is None:
        seq = 0 if row.status == "good" else position
    status = {
        "issuer": row.ca_id,
        "serial": row.serial.lstrip("0") or "0",
        "seq": seq,
        "status": row.status,
        "not_after": row.not_after,
    }
    if row.status != "good":
        status["revoked_at"] = row.revoked_at
        status["reason"] = -1 if row.revocation_reason is None else row.revocation_reason
    return status


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

    def snapshot(self, ca_ids: Collection[int] | None, chunk: int) -> Iterator:
        """Every status of the CAs ``ca_ids`` (None: every CA that publishes)
        read in one read transaction together with the outbox position it is
        taken at (the highest event id). A generator: first ``(position,
        complete)``, where complete means every CA that has events is in it,
        then lists of at most ``chunk`` statuses as the publish protocol's
        snapshots carry them (va/publish.py), each with the seq of its last
        change. Consume it in one thread (its connection stays open between
        items) and close it when done."""
        with self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                # Statements of READ COMMITTED see each its own snapshot; the
                # position and the statuses must come from one. Outbox writers
                # commit in id order (the advisory lock in ca/events.py),
                # so every event up to the position is visible in it.
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():  # SQLite: BEGIN, the snapshot fixed at the first read
                position = conn.execute(select(func.max(outbox.c.id))).scalar() or 0
                published = set(
                    conn.execute(select(cas.c.id).where(cas.c.origin != _EXTERNAL)).scalars()
                )
                wanted = published if ca_ids is None else set(ca_ids)
                yield position, published <= wanted
                query = select(
                    certificates.c.ca_id,
                    certificates.c.serial,
                    certificates.c.status,
                    certificates.c.revoked_at,
                    certificates.c.revocation_reason,
                    certificates.c.not_after,
                    certificates.c.status_seq,
                ).where(certificates.c.ca_id.in_(sorted(wanted)))
                rows = conn.execution_options(yield_per=chunk).execute(query)
                for part in rows.partitions():
                    yield [_snapshot_status(row, position) for row in part]

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
