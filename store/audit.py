"""The append-only audit log, hash-chained and MACed: its one writer,
shared by the CA and the RA, and its verifier.

Each record's hash is SHA-256 over the previous record's hash and the
record's own canonical JSON, so editing, removing or reordering a record
breaks the chain from that point on. Anyone who can write to the database
can recompute a hash chain, so each record also carries an HMAC-SHA256
(RFC 2104) under a key the database does not hold (store/audit_key.py):
over the previous record's MAC and the record's canonical JSON. The first
keyed record takes the previous record's hash in place of a MAC, so its MAC
also fixes every unkeyed record before it. The head row carries a MAC of
its own (over its sequence number and the last record's MAC): without the
key, records cannot be cut off the end with the head moved back to match.
After each commit the node's checkpoint, outside the database, records the
newest record it wrote (store/audit_checkpoint.py), which catches a log cut
back to an earlier head that really existed. SECURITY.md says what an
attacker with write access to the database can still do.

Records written before the key existed (a store upgraded to migration
0008) carry no MAC: ``verify`` checks them by the hash chain and reports
them as unkeyed. Once a record is keyed, every later one must be.

A completed operation writes its record inside the transaction that makes
the change (``AuditLog.ok``), so neither exists without the other. A refused
or failed one is recorded by ``AuditLog.failures`` in a transaction of its
own, after the operation's transaction has rolled back.
"""

import functools
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, bindparam, select, update

from common.errors import RevocaError
from store import audit_checkpoint
from store.audit_checkpoint import Checkpoint, CheckpointError
from store.audit_key import AuditKey, fingerprint
from store.errors import AuditKeyError
from store.store import Store, after_commit
from store.tables.audit import audit_head, audit_log

GENESIS_HASH = "0" * 64
log = logging.getLogger("revoca.audit")


def _canonical(seq, at_ms, actor, action, target, result, detail: str) -> str:
    return json.dumps(
        [seq, at_ms, actor, action, target, result, detail],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _hash(prev_hash: str, canonical: str) -> str:
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


def record_mac(key: bytes, prev_mac: str, canonical: str) -> str:
    """A record's MAC: over the previous MAC (for the first keyed record,
    the previous record's hash) and the record's canonical JSON."""
    return hmac.new(key, f"{prev_mac}\n{canonical}".encode(), hashlib.sha256).hexdigest()


def head_mac(key: bytes, seq: int, mac: str) -> str:
    """The head's MAC: which record is the last one. Its input starts with
    "head", which no record's (a hex MAC or hash) does."""
    return hmac.new(key, f"head\n{seq}\n{mac}".encode(), hashlib.sha256).hexdigest()


def _head(conn: Connection) -> tuple[int, str | None, str | None]:
    """The head's seq and MAC, and the MAC of the record it names."""
    seq, mac = conn.execute(
        select(audit_head.c.seq, audit_head.c.mac).where(audit_head.c.id == 1)
    ).one()
    last_mac = conn.execute(select(audit_log.c.mac).where(audit_log.c.seq == seq)).scalar()
    return seq, mac, last_mac


def _writing_key(key: AuditKey, seq: int, stored_head_mac: str | None, last_mac: str | None):
    """The key to extend a chain whose head is record ``seq``: this node's
    (made now if neither it nor a keyed record exists), and only if it
    verifies the head, so no node writes records under another key."""
    if stored_head_mac is None and last_mac is None:
        return key.load() or key.create()  # the keyed chain starts with the next record
    secret = key.load()
    if secret is None:
        raise AuditKeyError(
            f"the audit log is keyed (up to record {seq}) but there is no audit key at "
            f"{key.path}: every node writing to this store needs a copy of the same key file; "
            "nothing was written"
        )
    if last_mac is None or not hmac.compare_digest(
        stored_head_mac or "", head_mac(secret, seq, last_mac)
    ):
        raise AuditKeyError(
            f"the audit key at {key.path} (fingerprint {fingerprint(secret)}) does not verify "
            f"the audit log's head (record {seq}): the log is keyed with another node's key, "
            "or its end was rewritten; nothing was written"
        )
    return secret


def check_key(conn: Connection, key: AuditKey) -> str:
    """Make sure this node can extend the log (making its key if the log has
    none yet); returns the key's fingerprint. AuditKeyError if it cannot."""
    seq, stored_head_mac, last_mac = _head(conn)
    return fingerprint(_writing_key(key, seq, stored_head_mac, last_mac))


# The statements every append runs, built once: building them per call
# (clauses, cache keys) cost more than running them.
_BUMP = update(audit_head).where(audit_head.c.id == 1).values(seq=audit_head.c.seq + 1)
_HEAD = select(audit_head.c.seq, audit_head.c.hash, audit_head.c.mac).where(audit_head.c.id == 1)
_MAC_OF = select(audit_log.c.mac).where(audit_log.c.seq == bindparam("seq"))
_INSERT = audit_log.insert()
_SET_HEAD = (
    update(audit_head)
    .where(audit_head.c.id == 1)
    .values(hash=bindparam("head_hash"), mac=bindparam("head_mac"))
)


def append(
    conn: Connection,
    key: AuditKey,
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
    conn.execute(_BUMP)
    seq, prev_hash, stored_head_mac = conn.execute(_HEAD).one()
    prev_mac = conn.execute(_MAC_OF, {"seq": seq - 1}).scalar()
    secret = _writing_key(key, seq - 1, stored_head_mac, prev_mac)
    detail_json = json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str)
    canonical = _canonical(seq, at_ms, actor, action, target, result, detail_json)
    mac = record_mac(secret, prev_mac or prev_hash, canonical)
    digest = _hash(prev_hash, canonical)
    conn.execute(
        _INSERT,
        {
            "seq": seq,
            "at_ms": at_ms,
            "actor": actor,
            "action": action,
            "target": target,
            "result": result,
            "detail": detail_json,
            "prev_hash": prev_hash,
            "hash": digest,
            "mac": mac,
        },
    )
    conn.execute(_SET_HEAD, {"head_hash": digest, "head_mac": head_mac(secret, seq, mac)})
    checkpoint = audit_checkpoint.beside(key.path)
    advance = functools.partial(audit_checkpoint.advance, checkpoint, secret, seq, mac)
    after_commit(conn, advance, name=("audit checkpoint", checkpoint))
    return seq


class AuditLog:
    """The audit writer of one node: records carry the time of ``now_ms``
    (milliseconds since the epoch; the CA's clock, so tests can pin it) and
    MACs under ``key``."""

    def __init__(self, store: Store, now_ms: Callable[[], int], key: AuditKey):
        self.store = store
        self.now_ms = now_ms
        self.key = key

    def check_key(self) -> str:
        """Fail now, not at the first change, if this node cannot extend the
        log (no key, the wrong passphrase, another node's key); makes the
        key if the log has none yet. Returns its fingerprint."""
        with self.store.read() as conn:
            return check_key(conn, self.key)

    def record(
        self, conn: Connection, actor: str, action: str, target: str, result: str, **detail
    ) -> int:
        """Add a record inside ``conn``'s transaction; returns its sequence number."""
        return append(
            conn,
            self.key,
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


def record_count(conn: Connection) -> int:
    """How many records the head says the log has (no scan)."""
    return conn.execute(select(audit_head.c.seq).where(audit_head.c.id == 1)).scalar_one()


@dataclass(frozen=True)
class AuditProblem:
    seq: int | None  # None: about a checkpoint file, not a record
    message: str

    def __str__(self) -> str:
        return self.message if self.seq is None else f"record {self.seq}: {self.message}"


@dataclass
class AuditReport:
    """What ``verify`` found: how many records, how many keyed, the last of
    the unkeyed ones written before the key existed (0: none), the key's
    fingerprint, the checkpoints held against the log, and every problem."""

    records: int = 0
    keyed: int = 0
    unkeyed_through: int = 0
    key_fingerprint: str | None = None
    checkpoints: list[Checkpoint] = field(default_factory=list)
    problems: list[AuditProblem] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "records": self.records,
            "keyed": self.keyed,
            "unkeyed_through": self.unkeyed_through,
            "key_fingerprint": self.key_fingerprint,
            "checkpoints": [{"file": str(c.path), "seq": c.seq} for c in self.checkpoints],
            "problems": [{"seq": p.seq, "message": p.message} for p in self.problems],
        }


def verify(
    conn: Connection,
    key: AuditKey,
    *,
    checkpoints: Iterable[Path] = (),
    observe: Callable[[object], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> AuditReport:
    """Walk the log once, in order: sequence, hash chain, MACs, the head,
    and the checkpoint files (``checkpoints``; those that do not exist are
    skipped). ``observe`` sees every row (the CA's replay of certificate
    statuses); ``progress`` is told how many rows were read, every 1000.
    AuditKeyError when keyed records or checkpoints exist but the key does
    not."""
    report = AuditReport()
    secret: bytes | None = None

    def need_key(why: str) -> bytes:
        nonlocal secret
        if secret is None:
            secret = key.load()
            if secret is None:
                raise AuditKeyError(
                    f"{why}, but there is no audit key at {key.path}: verifying the MACs "
                    "needs a copy of the key file of the nodes that write the log"
                )
            report.key_fingerprint = fingerprint(secret)
        return secret

    held: dict[int, list[Checkpoint]] = {}
    for path in checkpoints:
        if not Path(path).exists():
            continue
        try:
            checkpoint = audit_checkpoint.read(path, need_key(f"there is a checkpoint {path}"))
        except CheckpointError as exc:
            report.problems.append(AuditProblem(None, exc.message))
            continue
        report.checkpoints.append(checkpoint)
        held.setdefault(checkpoint.seq, []).append(checkpoint)
    seen_macs: dict[int, str | None] = {}

    expected_seq, prev_hash, prev_mac, count = 1, GENESIS_HASH, None, 0
    problems = report.problems
    rows = conn.execute(
        select(audit_log).order_by(audit_log.c.seq).execution_options(yield_per=2000)
    )
    for row in rows:
        count += 1
        if row.seq != expected_seq:
            problems.append(AuditProblem(row.seq, f"expected sequence {expected_seq} (removed?)"))
        if row.prev_hash != prev_hash:
            problems.append(AuditProblem(row.seq, "does not follow the previous record"))
        canonical = _canonical(
            row.seq, row.at_ms, row.actor, row.action, row.target, row.result, row.detail
        )
        edited = _hash(row.prev_hash, canonical) != row.hash
        if edited:
            problems.append(AuditProblem(row.seq, "content does not match its hash (edited)"))
        if row.mac is None:
            if report.keyed:
                problems.append(
                    AuditProblem(row.seq, "has no MAC but follows keyed records (MAC removed?)")
                )
            else:
                report.unkeyed_through = row.seq
        else:
            expected = record_mac(
                need_key(f"record {row.seq} carries a MAC"), prev_mac or row.prev_hash, canonical
            )
            if not edited and not hmac.compare_digest(row.mac, expected):
                problems.append(
                    AuditProblem(
                        row.seq,
                        "its MAC does not verify: it, or a record before it, was edited and "
                        "its hash recomputed, or it was written without the key",
                    )
                )
            report.keyed += 1
        if row.seq in held:
            seen_macs[row.seq] = row.mac
        if observe is not None:
            observe(row)
        if progress is not None and count % 1000 == 0:
            progress(1000)
        expected_seq, prev_hash, prev_mac = row.seq + 1, row.hash, row.mac
    if progress is not None:
        progress(count % 1000)
    report.records = count
    last = expected_seq - 1

    head_seq, head_hash, stored_head_mac = conn.execute(
        select(audit_head.c.seq, audit_head.c.hash, audit_head.c.mac)
    ).one()
    if head_seq != last or head_hash != prev_hash:
        problems.append(
            AuditProblem(
                head_seq,
                f"the chain head does not match the last record, {last} (records cut off the end?)",
            )
        )
    elif prev_mac is not None:
        if not hmac.compare_digest(
            stored_head_mac or "", head_mac(need_key("the log is keyed"), head_seq, prev_mac)
        ):
            problems.append(
                AuditProblem(
                    head_seq,
                    "the chain head's MAC does not verify: records were cut off the end and "
                    "the head moved back, or the head was edited",
                )
            )
    elif stored_head_mac is not None:
        problems.append(
            AuditProblem(head_seq, "the chain head has a MAC but the last record has none")
        )
    for seq, found in sorted(held.items()):
        for checkpoint in found:
            if seq > last:
                problems.append(
                    AuditProblem(
                        seq,
                        f"missing: the log ends at record {last}, but the checkpoint "
                        f"{checkpoint.path} records record {seq} (records removed from the end)",
                    )
                )
            elif seq not in seen_macs:
                problems.append(
                    AuditProblem(seq, f"missing, though the checkpoint {checkpoint.path} has it")
                )
            elif seen_macs[seq] != checkpoint.mac:
                problems.append(
                    AuditProblem(
                        seq,
                        f"differs from the checkpoint {checkpoint.path} (replaced, or its MAC "
                        "removed)",
                    )
                )
    return report
