"""The refresh schedule: which pre-signed responses to sign next, and when.

Its data lives in two LMDB databases of the VA's store (va/store.py):

- ``pending``: issuer id (u32) + serial -> empty: the serial's status is new
  or changed and its responses are not signed yet (every configured CertID
  hash algorithm is owed);
- ``due``: refresh point u64 + issuer id (u32) + hash algorithm (u8) +
  serial -> empty, in time order: when each stored response passes half its
  validity (CA/B Forum BR 4.9.10: responses are refreshed before half their
  validity has passed, so a relying party never sees one older than that).

and one fact in ``meta``: what the schedule was built for (its version and
the hash algorithms), so a store written before the schedule existed, or
for other algorithms, is reconciled once by a full scan.

The store keeps ``due`` in step with the responses inside its own write
transactions (``due_key`` here says where an entry goes); the refresher
reads its work here, in one read transaction per chunk: the pending and due
entries with each serial's current status.
"""

import json
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

SCHEDULE_VERSION = 1
_DUE = struct.Struct(">Q")
_SCHEDULE_KEY = b"refresh:schedule"
_STATUS_AT = 4  # in both keys: issuer id (u32), then the serial


def refresh_point(this_update: int, next_update: int) -> int:
    """When a response should be re-signed: half its validity (BR 4.9.10)."""
    return (this_update + next_update) // 2


def due_prefix(this_update: int, next_update: int) -> bytes:
    """The refresh point that opens the ``due`` key of a response with this window."""
    return _DUE.pack(max(0, refresh_point(this_update, next_update)))


def due_key(this_update: int, next_update: int, response_key: bytes) -> bytes:
    """The ``due`` entry of the response stored under ``response_key``."""
    return due_prefix(this_update, next_update) + response_key


@dataclass(frozen=True)
class Due:
    """One entry of the schedule."""

    key: bytes  # as stored in the ``due`` database
    at: int
    issuer_id: int
    hash_algorithm: int
    serial: bytes

    @classmethod
    def parse(cls, key: bytes) -> "Due":
        (at,) = _DUE.unpack_from(key)
        return cls(key, at, int.from_bytes(key[8:12], "big"), key[12], key[13:])


@dataclass(frozen=True)
class Item:
    """A serial to sign: its current status (None: the VA does not know it
    any more, nothing to sign), the hash algorithms owed, and the ``due``
    entries the signing answers."""

    serial: bytes
    record: object  # va.store.StatusRecord | None
    algorithms: tuple[int, ...]
    due_keys: tuple[bytes, ...] = ()


class Schedule:
    """The schedule of one store: ``store`` is its va.store.VAStore (its
    environment, databases and status unpacking)."""

    def __init__(self, store):
        self.store = store

    # -- what it was built for -------------------------------------------------

    def built_for(self) -> dict | None:
        with self.store.env.begin() as txn:
            value = txn.get(_SCHEDULE_KEY, db=self.store.meta_db)
        return None if value is None else json.loads(value)

    def current(self, algorithms: Iterable[int]) -> bool:
        """Whether the schedule covers every stored response for ``algorithms``."""
        return self.built_for() == {"version": SCHEDULE_VERSION, "algorithms": sorted(algorithms)}

    def has_version(self) -> bool:
        built = self.built_for()
        return built is not None and built.get("version") == SCHEDULE_VERSION

    def mark_built(self, algorithms: Iterable[int]) -> None:
        data = json.dumps({"version": SCHEDULE_VERSION, "algorithms": sorted(algorithms)})
        self.store.write(lambda txn: txn.put(_SCHEDULE_KEY, data.encode(), db=self.store.meta_db))

    # -- the refresher's work ----------------------------------------------------

    def work(
        self, now: int, algorithms: tuple[int, ...], known: set[int], chunk: int
    ) -> Iterator[tuple[int, list[Item]]]:
        """What is owed at ``now``, as (issuer id, items) for issuers in
        ``known``, at most ``chunk`` schedule entries per read transaction:
        first every pending serial under all ``algorithms``, then every due
        response under its own algorithm. Issuers not served here are left
        as they are."""
        yield from self._scan(self.store.pending_db, now, algorithms, known, chunk, pending=True)
        yield from self._scan(self.store.due_db, now, algorithms, known, chunk, pending=False)

    def _scan(self, db, now, algorithms, known, chunk, *, pending: bool):
        if db is None:  # a read-only store written before the schedule existed
            return
        store = self.store
        start = b""
        while True:
            by_serial: dict[tuple[int, bytes], tuple[list, list]] = {}
            seen = 0
            with store.env.begin() as txn:
                cursor = txn.cursor(db=db)
                statuses = txn.cursor(db=store.status_db)
                if cursor.set_range(start):
                    for key in cursor.iternext(keys=True, values=False):
                        if pending:
                            issuer_id, serial, algorithm, due = (
                                int.from_bytes(key[:_STATUS_AT], "big"),
                                key[_STATUS_AT:],
                                None,
                                None,
                            )
                        else:
                            entry = Due.parse(key)
                            if entry.at > now:
                                break
                            issuer_id, serial, algorithm, due = (
                                entry.issuer_id,
                                entry.serial,
                                entry.hash_algorithm,
                                key,
                            )
                        seen += 1
                        start = key + b"\x00"  # the next key after this one
                        if issuer_id in known:
                            algs, keys = by_serial.setdefault((issuer_id, serial), ([], []))
                            if algorithm is not None:
                                algs.append(algorithm)
                                keys.append(due)
                        if seen == chunk:
                            break
                by_issuer: dict[int, list[Item]] = {}
                for (issuer_id, serial), (algs, keys) in by_serial.items():
                    value = statuses.get(issuer_id.to_bytes(4, "big") + serial)
                    record = None if value is None else store.unpack_status(value)
                    owed = (algorithms if pending else tuple(algs)) if record is not None else ()
                    by_issuer.setdefault(issuer_id, []).append(
                        Item(serial, record, owed, tuple(keys))
                    )
            yield from by_issuer.items()
            if seen < chunk:
                return

    def next_due(self) -> int | None:
        """The earliest refresh point in the schedule."""
        if self.store.due_db is None:
            return None
        with self.store.env.begin() as txn:
            cursor = txn.cursor(db=self.store.due_db)
            if not cursor.first():
                return None
            return Due.parse(cursor.key()).at

    def pending(self, start: bytes = b"", limit: int = 10_000) -> list[tuple[int, bytes]]:
        """(issuer id, serial) pending re-signing, from key ``start`` on."""
        keys = self._keys(self.store.pending_db, start, limit)
        return [(int.from_bytes(key[:4], "big"), key[4:]) for key in keys]

    def due(self, now: int, start: bytes = b"", limit: int = 10_000) -> list[Due]:
        """Schedule entries whose refresh point is at or before ``now``."""
        found = []
        for key in self._keys(self.store.due_db, start, limit):
            entry = Due.parse(key)
            if entry.at > now:
                break
            found.append(entry)
        return found

    def _keys(self, db, start: bytes, limit: int) -> list[bytes]:
        if db is None:
            return []
        keys = []
        with self.store.env.begin() as txn:
            cursor = txn.cursor(db=db)
            if cursor.set_range(start):
                for key in cursor.iternext(keys=True, values=False):
                    keys.append(key)
                    if len(keys) == limit:
                        break
        return keys
