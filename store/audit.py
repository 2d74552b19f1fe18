"""The append-only, hash-chained audit log: its one writer, shared by the
CA and the RA, and its verifier.

Each record's hash is SHA-256 over the previous record's hash and the
record's own canonical JSON, so editing, removing or reordering a record
breaks the chain from that point on; ``verify`` reports where.

A completed operation writes its record inside the transaction that makes
the change (``AuditLog.ok``), so neither exists without the other. A refused
or failed one is recorded by ``AuditLog.failures`` in a transaction of its
own, after the operation's transaction has rolled back.
"""

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, select, update

from common.errors import RevocaError
from store.store import Store
from store.tables.audit import audit_head, audit_log

GENESIS_HASH = "0" * 64
log = logging.getLogger("revoca.audit")


def _digest(prev_hash: str, seq, at_ms, actor, action, target, result, detail: str) -> str:
    canonical = json.dumps(
        [seq, at_ms, actor, action, target, result, detail],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


def append(
    conn: Connection,
    *,
    at_ms: int,
    actor: str,
    action: str,
    target: str,
    result: str,
    detail: dict,
) -> int:
    """Add a record inside the caller's transaction; returns its sequence number."""
    # Bump the head first: the row lock serialises concurrent appenders.
    conn.execute(update(audit_head).where(audit_head.c.id == 1).values(seq=audit_head.c.seq + 1))
    seq, prev_hash = conn.execute(
        select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
    ).one()
    detail_json = json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str)
    digest = _digest(prev_hash, seq, at_ms, actor, action, target, result, detail_json)
    conn.execute(
        audit_log.insert().values(
            seq=seq,
            at_ms=at_ms,
            actor=actor,
            action=action,
            target=target,
            result=result,
            detail=detail_json,
            prev_hash=prev_hash,
            hash=digest,
        )
    )
    conn.execute(update(audit_head).where(audit_head.c.id == 1).values(hash=digest))
    return seq


class AuditLog:
    """The audit writer of one node: records carry the time of ``now_ms``
    (milliseconds since the epoch; the CA's clock, so tests can pin it)."""

    def __init__(self, store: Store, now_ms: Callable[[], int]):
        self.store = store
        self.now_ms = now_ms

    def record(
        self, conn: Connection, actor: str, action: str, target: str, result: str, **detail
    ) -> int:
        """Add a record inside ``conn``'s transaction; returns its sequence number."""
        return append(
            conn,
            at_ms=self.now_ms(),
            actor=actor,
            action=action,
            target=target,
            result=result,
            detail=detail,
        )

    def ok(self, conn: Connection, actor: str, action: str, target: str, **detail) -> int:
        """Record a completed operation inside the transaction that made it."""
        return self.record(conn, actor, action, target, "ok", **detail)

    @contextmanager
    def failures(self, actor: str, action: str, target: str) -> Iterator[None]:
        """Record an operation the block refuses or fails (any RevocaError),
        in a transaction of its own, then re-raise."""
        try:
            yield
        except RevocaError as exc:
            result = "refused" if exc.refused else "error"
            try:
                with self.store.transaction() as conn:
                    self.record(
                        conn, actor, action, target, result, error=exc.code, message=exc.message
                    )
            except RevocaError as audit_exc:
                log.error("could not audit a failed %s: %s", action, audit_exc.message)
            raise


@dataclass(frozen=True)
class AuditProblem:
    seq: int
    message: str

    def __str__(self) -> str:
        return f"record {self.seq}: {self.message}"


def verify(conn: Connection) -> tuple[int, list[AuditProblem]]:
    """Walk the chain; return (records checked, problems found)."""
    problems: list[AuditProblem] = []
    expected_seq, prev_hash, count = 1, GENESIS_HASH, 0
    for row in conn.execute(select(audit_log).order_by(audit_log.c.seq)):
        count += 1
        if row.seq != expected_seq:
            problems.append(AuditProblem(row.seq, f"expected sequence {expected_seq} (removed?)"))
        if row.prev_hash != prev_hash:
            problems.append(AuditProblem(row.seq, "does not follow the previous record"))
        digest = _digest(
            row.prev_hash,
            row.seq,
            row.at_ms,
            row.actor,
            row.action,
            row.target,
            row.result,
            row.detail,
        )
        if digest != row.hash:
            problems.append(AuditProblem(row.seq, "content does not match its hash (edited)"))
        expected_seq, prev_hash = row.seq + 1, row.hash
    head_seq, head_hash = conn.execute(select(audit_head.c.seq, audit_head.c.hash)).one()
    if head_seq != expected_seq - 1 or head_hash != prev_hash:
        problems.append(
            AuditProblem(head_seq, "the chain head does not match the last record (truncated?)")
        )
    return count, problems
