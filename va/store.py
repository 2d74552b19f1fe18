"""Certificate status in LMDB: the VA's only state.

Key schema (integers big-endian):

- ``issuers``: issuer id (u32) -> JSON: name, certificate, responder
  certificate and key file, policies (nonce, unissued serials, validity).
- ``status``: issuer id (u32) + serial -> status u8 (0 good, 1 revoked,
  2 hold), revoked_at i64, reason i8 (-1 none), not_after i64, then seq
  i64: the source's sequence number of the change the record holds (the
  certificate's outbox id). A record without seq (18 bytes: written before
  sequences were kept, or seq 0 = not known) reads as seq 0. Status changes
  replace a record only with a newer one (``put_newer``).
- ``responses``: issuer id (u32) + hash algorithm (u8) + serial ->
  this_update i64, next_update i64, then the signed OCSPResponse DER.
- ``crls``: the CRL's file name as the URLs in certificates carry it (for
  example ``issuing``, ``issuing-delta``, ``issuing-p3``; ASCII letters,
  digits, '.', '_', '-') -> thisUpdate i64, nextUpdate i64, CRL number u64,
  then the CRL DER. The latest CRL per name.
- ``meta``: UTF-8 name -> small facts (per-source sequence numbers, the
  refresh schedule's version).
- ``pending`` and ``due``: the refresh schedule (va/schedule.py holds its
  layout and policy; the write paths here keep it in step).

The serial is stored exactly as an OCSP request carries it (the DER
INTEGER's content octets), so a lookup needs no conversion. One writer
applies status changes, and the pre-signed responses they replace, in a
single write transaction: no reader sees a new status with an old response.
Any number of processes read concurrently; ``StoreReader`` holds the
zero-copy reads that answer requests. Responses and the schedule change only
through ``put_status``, ``put_response`` and ``drop_response``, which keep
them in step.
"""

import functools
import itertools
import json
import re
import shutil
import struct
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import lmdb

from common.privatedir import make_private_dir
from va.errors import StoreFullError, StoreWriteError
from va.schedule import Schedule, due_key, due_prefix

GOOD, REVOKED, HOLD = 0, 1, 2
# A status record: the four fields every reader answers from, then the seq
# of the change it holds. Records of seq 0 keep the 18-byte form, so stores
# written before seq existed are read as they are, and a record's bytes are a
# function of its fields (``store_signed`` compares bytes). Readers of the
# hot path unpack the first 18 bytes in place, whatever the length.
_STATUS = struct.Struct(">Bqbq")
_STATUS_SEQ = struct.Struct(">Bqbqq")
_WINDOW = struct.Struct(">qq")
_DUE = struct.Struct(">Q")
HASH_ALGORITHMS = (1, 2, 3, 4)  # CertID hash algorithms a response may be stored under
DEFAULT_MAP_SIZE = 1 << 30


class StatusRecord(NamedTuple):
    """One serial's status as the VA stores it (a tuple: bulk pre-signing
    reads millions; a frozen dataclass costs about a microsecond more each
    and stays tracked by the garbage collector)."""

    status: int
    revoked_at: int = 0
    reason: int = -1
    not_after: int = 0
    # The source's sequence number of the change this record holds (the
    # certificate's outbox id); 0 when not known (an old record, an OpenSSL
    # index import, a certificate whose status never changed since issuance
    # read from a snapshot).
    seq: int = 0

    def pack(self) -> bytes:
        if self.seq:
            return _STATUS_SEQ.pack(*self)
        return _STATUS.pack(self[0], self[1], self[2], self[3])

    @classmethod
    def unpack(cls, data) -> "StatusRecord":
        return _unpack_record(data)

    def replaces(self, old: "StatusRecord | None") -> bool:
        """Whether this record may replace ``old`` (the apply rule of every
        status change, events and snapshots alike): only a newer change does,
        so a delivery that arrives late, twice, or from an older snapshot
        never moves a serial back. Between two records of unknown order (both
        seq 0) the one written last wins, as before sequences were kept."""
        if old is None:
            return True
        if self.seq != old.seq:
            return self.seq > old.seq
        return self.seq == 0 and self[:4] != old[:4]


# StatusRecord from a tuple of its fields without a Python frame (bulk reads).
_record = functools.partial(tuple.__new__, StatusRecord)


def _unpack_record(
    value, _old=_STATUS.unpack, _new=_STATUS_SEQ.unpack, _old_size=_STATUS.size
) -> StatusRecord:
    """A stored record of either length (bulk reads: no method lookups)."""
    if len(value) == _old_size:
        return _record((*_old(value), 0))
    return _record(_new(value))


def issuer_prefix(issuer_id: int) -> bytes:
    """What every ``status`` and ``responses`` key of an issuer starts with."""
    return issuer_id.to_bytes(4, "big")


def status_key(issuer_id: int, serial: bytes) -> bytes:
    return issuer_prefix(issuer_id) + serial


def response_key(issuer_id: int, hash_algorithm: int, serial: bytes) -> bytes:
    return issuer_prefix(issuer_id) + ALGORITHM_BYTES[hash_algorithm] + serial


def _due_key_of(value, key: bytes) -> bytes:
    """The ``due`` key of a stored response value (its window first)."""
    return due_key(*_WINDOW.unpack_from(value), key)


class Signed(NamedTuple):
    """Responses signed from one status record, to store if it still holds.
    (Tuples: bulk pre-signing makes one per serial, a frozen dataclass costs
    about a microsecond more each.)"""

    issuer_id: int
    serial: bytes
    record: "StatusRecord | None"
    responses: tuple  # of (hash algorithm, StoredResponse)
    due_keys: tuple = ()  # schedule entries this signing answers


# The hash algorithm octet of a ``responses`` key, prebuilt (hot paths).
ALGORITHM_BYTES = tuple(bytes((algorithm,)) for algorithm in range(256))


class _ResponseWriter:
    """Stores responses with their ``due`` entries inside one write
    transaction. ``put`` gathers; ``flush`` writes in key order: keys not yet
    stored (bulk pre-signing into an empty store) in one ``putmulti``, keys
    already stored replaced one by one, each old ``due`` entry retired."""

    def __init__(self, store: "VAStore", txn):
        self.responses = txn.cursor(db=store.responses_db)
        self.due = txn.cursor(db=store.due_db)
        self.windows: dict[tuple[int, int], tuple[bytes, bytes]] = {}
        self.values: dict[bytes, bytes] = {}  # response key: stored value
        self.due_keys: dict[bytes, bytes] = {}  # response key: its due key

    def put(self, key: bytes, stored: "StoredResponse") -> None:
        span = (stored.this_update, stored.next_update)
        encoded = self.windows.get(span)
        if encoded is None:
            encoded = (_WINDOW.pack(*span), due_prefix(*span))
            self.windows[span] = encoded
        self.values[key] = encoded[0] + stored.der
        self.due_keys[key] = encoded[1] + key

    def flush(self) -> None:
        if not self.values:
            return
        writes = sorted(self.values.items())
        due_keys = self.due_keys
        self.values, self.due_keys = {}, {}
        responses, due = self.responses, self.due
        added = 0
        if not responses.set_key(writes[0][0]) and not responses.set_key(writes[-1][0]):
            added = responses.putmulti(writes, overwrite=False)[1]
        if added != len(writes):  # some were stored before: replace those
            for key, value in writes:
                old = responses.replace(key, value)
                if old is not None and old != value:
                    old_due = _due_key_of(old, key)
                    if old_due != due_keys[key] and due.set_key(old_due):
                        due.delete()
        due.putmulti(zip(sorted(due_keys.values()), itertools.repeat(b"")))


_CRL_HEADER = struct.Struct(">qqQ")
_CRL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_crl_name(name: str) -> str:
    """CRL names live in one flat namespace: no separators, no dot-dot tricks."""
    if not _CRL_NAME.match(name) or ".." in name:
        raise ValueError(f"invalid CRL name {name!r}")
    return name


@dataclass(frozen=True)
class StoredCRL:
    this_update: int
    next_update: int
    number: int
    der: bytes


class StoredResponse(NamedTuple):
    """A signed response and its validity window (one per bulk-signed response)."""

    this_update: int
    next_update: int
    der: bytes


def _make_files_private(path: Path) -> None:
    """A store made before its files were 0600 (status, pre-signed responses)
    is tightened when it is next opened for writing."""
    for name in ("data.mdb", "lock.mdb"):
        file = path / name
        if file.exists() and file.stat().st_mode & 0o077:
            file.chmod(0o600)


class VAStore:
    def __init__(
        self,
        path: Path,
        *,
        map_size: int = DEFAULT_MAP_SIZE,
        max_map_size: int = 1 << 40,
        readonly: bool = False,
    ):
        make_private_dir(path)
        self.path = path
        self.max_map_size = max_map_size
        self.env = lmdb.open(
            str(path),
            map_size=map_size,
            max_dbs=8,
            max_readers=1024,
            readonly=readonly,
            readahead=False,  # random lookups: readahead only evicts useful pages
            lock=True,
            mode=0o700,  # lmdb makes its files with this & 0o666: data.mdb, lock.mdb 0600
        )
        if not readonly:
            _make_files_private(path)
        self.issuers_db = self.env.open_db(b"issuers", create=not readonly)
        self.status_db = self.env.open_db(b"status", create=not readonly)
        self.responses_db = self.env.open_db(b"responses", create=not readonly)
        self.crls_db = self.env.open_db(b"crls", create=not readonly)
        self.meta_db = self.env.open_db(b"meta", create=not readonly)
        self.pending_db = self._optional_db(b"pending", readonly)
        self.due_db = self._optional_db(b"due", readonly)
        self.schedule = Schedule(self)

    unpack_status = staticmethod(StatusRecord.unpack)

    def reader(self) -> "StoreReader":
        return StoreReader(self)

    def _optional_db(self, name: bytes, readonly: bool):
        # A read-only open of a store written before the schedule existed.
        try:
            return self.env.open_db(name, create=not readonly)
        except lmdb.NotFoundError:
            return None

    def close(self) -> None:
        self.env.close()

    @contextmanager
    def read(self) -> Iterator[lmdb.Transaction]:
        """A zero-copy read transaction: values are memoryviews valid inside it."""
        with self.env.begin(buffers=True) as txn:
            yield txn

    def write(self, apply) -> None:
        """Run ``apply(txn)`` in one write transaction; grow the map when full."""
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    apply(txn)
                return
            except lmdb.MapFullError:
                size = self.env.info()["map_size"]
                if size * 2 > self.max_map_size:
                    raise StoreFullError(
                        f"LMDB map full at {size} bytes and va.max_map_size "
                        f"({self.max_map_size}) forbids growing it; nothing was written"
                    ) from None
                self.env.set_mapsize(size * 2)
            except (lmdb.Error, OSError) as exc:  # disk full, I/O error: rolled back
                free = shutil.disk_usage(self.path).free
                raise StoreWriteError(
                    f"LMDB write failed ({exc}; {free} bytes free on the store's "
                    "filesystem); the transaction was rolled back, nothing was written"
                ) from None

    # -- issuers ---------------------------------------------------------------

    def put_issuer(self, issuer_id: int, record: dict) -> None:
        data = json.dumps(record, sort_keys=True).encode()
        self.write(lambda txn: txn.put(issuer_id.to_bytes(4, "big"), data, db=self.issuers_db))

    def issuers(self) -> dict[int, dict]:
        with self.env.begin() as txn:
            return {
                int.from_bytes(k, "big"): json.loads(v) for k, v in txn.cursor(db=self.issuers_db)
            }

    # -- status and responses ------------------------------------------------------

    def get_status(self, txn, issuer_id: int, serial: bytes) -> StatusRecord | None:
        value = txn.get(status_key(issuer_id, serial), db=self.status_db)
        return None if value is None else StatusRecord.unpack(value)

    def get_response(
        self, txn, issuer_id: int, hash_algorithm: int, serial: bytes
    ) -> StoredResponse | None:
        value = txn.get(response_key(issuer_id, hash_algorithm, serial), db=self.responses_db)
        if value is None:
            return None
        this_update, next_update = _WINDOW.unpack_from(value)
        return StoredResponse(this_update, next_update, bytes(value[_WINDOW.size :]))

    # Inside a write transaction: the only ways responses and the schedule change.

    def put_status(self, txn, issuer_id: int, serial: bytes, record: StatusRecord) -> None:
        """A new or changed status: its responses go, the serial is pending."""
        key = status_key(issuer_id, serial)
        txn.put(key, record.pack(), db=self.status_db)
        self._status_changed(txn, key, issuer_id, serial)

    def put_newer(self, txn, issuer_id: int, serial: bytes, record: StatusRecord) -> bool:
        """``put_status`` if ``record`` replaces what is stored
        (``StatusRecord.replaces``); returns whether it did. The one apply
        rule of published events and snapshots."""
        key = issuer_id.to_bytes(4, "big") + serial
        # One B-tree walk for the common case (a newer change, or a new
        # serial): write, and put the old record back if it was newer.
        old = txn.replace(key, record.pack(), db=self.status_db)
        if old is not None and not record.replaces(_unpack_record(old)):
            txn.put(key, old, db=self.status_db)
            return False
        self._status_changed(txn, key, issuer_id, serial)
        return True

    def _status_changed(self, txn, key: bytes, issuer_id: int, serial: bytes) -> None:
        prefix = key[:4]
        for algorithm in HASH_ALGORITHMS:
            self.drop_response(txn, prefix + ALGORITHM_BYTES[algorithm] + serial)
        txn.put(key, b"", db=self.pending_db)

    def drop_response(self, txn, key: bytes) -> None:
        old = txn.pop(key, db=self.responses_db)
        if old is not None:
            txn.delete(_due_key_of(old, key), db=self.due_db)

    def put_response(self, txn, key: bytes, stored: StoredResponse) -> None:
        writer = _ResponseWriter(self, txn)
        writer.put(key, stored)
        writer.flush()

    def apply(
        self,
        statuses: Iterable[tuple[int, bytes, StatusRecord]] = (),
        responses: Iterable[tuple[int, int, bytes, StoredResponse | None]] = (),
    ) -> None:
        """Write status records (dropping their responses), then store (or,
        with None, drop) responses, all in one transaction."""
        statuses = list(statuses)
        responses = list(responses)

        def apply(txn):
            for issuer_id, serial, record in statuses:
                self.put_status(txn, issuer_id, serial, record)
            writer = _ResponseWriter(self, txn)
            for issuer_id, algorithm, serial, stored in responses:
                key = response_key(issuer_id, algorithm, serial)
                if stored is None:
                    writer.flush()  # in the order given
                    self.drop_response(txn, key)
                else:
                    writer.put(key, stored)
            writer.flush()

        self.write(apply)

    def store_signed(self, signed: Iterable[Signed]) -> int:
        """Store responses signed from a status, in one transaction, only where
        that status still holds: a publish that changed it while they were
        being signed left the serial pending, to be signed again. Returns how
        many responses were stored."""
        signed = list(signed)
        stored = 0

        def apply(txn):
            nonlocal stored
            stored = 0
            writer = _ResponseWriter(self, txn)
            statuses, pending, due = (
                txn.cursor(db=self.status_db),
                txn.cursor(db=self.pending_db),
                writer.due,
            )
            put, issuers = writer.put, {}
            for issuer_id, serial, record, responses, due_keys in signed:
                for key in due_keys:  # answered, or made moot by a change
                    if due.set_key(key):
                        due.delete()
                issuer = issuers.get(issuer_id)
                if issuer is None:
                    issuer = issuers[issuer_id] = issuer_id.to_bytes(4, "big")
                key = issuer + serial
                if statuses.get(key) != (None if record is None else record.pack()):
                    continue
                for algorithm, response in responses:
                    put(issuer + ALGORITHM_BYTES[algorithm] + serial, response)
                if pending.set_key(key):
                    pending.delete()
                stored += len(responses)
            writer.flush()

        self.write(apply)
        return stored

    # -- the refresh schedule's data ---------------------------------------------------

    def rebuild_due(self, batch: int = 50_000) -> int:
        """Rebuild the ``due`` schedule from the stored responses (a store
        written before the schedule existed). Each batch is read and written
        in one write transaction, so a concurrent publish keeps it exact."""
        self.write(lambda txn: txn.drop(self.due_db, delete=False))
        start = [b""]  # the first key of the next batch
        scanned: list[bytes] = []

        def apply(txn):
            scanned.clear()
            cursor = txn.cursor(db=self.responses_db)
            if cursor.set_range(start[0]):
                for key, value in cursor:
                    txn.put(_due_key_of(value, key), b"", db=self.due_db)
                    scanned.append(key)
                    if len(scanned) == batch:
                        break

        total = 0
        while True:
            self.write(apply)
            total += len(scanned)
            if len(scanned) < batch:
                return total
            start[0] = scanned[-1] + b"\x00"  # the next key after the last one

    # -- CRLs ----------------------------------------------------------------------

    def put_crl(
        self, name: str, this_update: int, next_update: int, number: int, der: bytes
    ) -> None:
        key = check_crl_name(name).encode()
        value = _CRL_HEADER.pack(this_update, next_update, number) + der
        self.write(lambda txn: txn.put(key, value, db=self.crls_db))

    def update_crl(
        self, name: str, decide: Callable[[StoredCRL | None], StoredCRL | None]
    ) -> StoredCRL | None:
        """In one write transaction: ``decide(held)``, given the CRL held under
        ``name`` (None: none), returns the CRL to store in its place, or None
        to leave it; an exception it raises writes nothing. Returns what it
        returned. (The one writer sees the latest CRL: two publishers cannot
        both replace the same one.)"""
        key = check_crl_name(name).encode()
        chosen: list[StoredCRL | None] = [None]

        def apply(txn):
            value = txn.get(key, db=self.crls_db)
            held = None if value is None else _stored_crl(value)
            chosen[0] = new = decide(held)
            if new is not None:
                header = _CRL_HEADER.pack(new.this_update, new.next_update, new.number)
                txn.put(key, header + new.der, db=self.crls_db)

        self.write(apply)
        return chosen[0]

    def get_crl(self, name: str) -> StoredCRL | None:
        return StoreReader(self).crl(name)

    def iter_status(
        self, issuer_id: int, batch: int = 10_000
    ) -> Iterator[tuple[bytes, StatusRecord]]:
        """(serial, status) of one issuer in serial order, read ``batch`` at
        a time, each batch in a read transaction of its own: the caller may
        write between items (pre-signing does), and a write that grows the
        map ends every open transaction of this process."""
        prefix = issuer_id.to_bytes(4, "big")
        start = prefix
        unpack = _unpack_record
        while True:
            rows = []
            with self.env.begin() as txn:
                cursor = txn.cursor(db=self.status_db)
                if cursor.set_range(start):
                    for key, value in cursor:
                        if not key.startswith(prefix):
                            break
                        rows.append((key[4:], unpack(value)))
                        if len(rows) == batch:
                            start = key + b"\x00"  # the next key after this one
                            break
            yield from rows
            if len(rows) < batch:
                return

    def count_status(self) -> int:
        with self.env.begin() as txn:
            return txn.stat(self.status_db)["entries"]


class StoreReader:
    """The reads that answer requests, each in one read transaction with the
    values read in place (``buffers=True``: LMDB hands out its memory map,
    nothing is copied until a response's bytes leave the transaction). The
    key layout and record formats are this module's; callers pass an issuer's
    ``issuer_prefix`` and a serial's DER INTEGER content."""

    __slots__ = ("_crls", "_env", "_responses", "_status")

    def __init__(self, store: VAStore):
        self._env = store.env
        self._responses = store.responses_db
        self._status = store.status_db
        self._crls = store.crls_db

    def generation(self) -> int:
        """The id of the store's last committed write transaction: it changes
        whenever any process commits a write (a publish, a refresh)."""
        return self._env.info()["last_txnid"]

    def presigned(
        self, prefix: bytes, algorithm: int, serial: bytes, now: int
    ) -> tuple[int, int, bytes] | None:
        """(thisUpdate, nextUpdate, response DER) of the stored response for one
        serial under one CertID hash algorithm, if it is valid at ``now``."""
        txn = self._env.begin(buffers=True)
        try:
            value = txn.get(prefix + ALGORITHM_BYTES[algorithm] + serial, db=self._responses)
            if value is not None:
                this_update, next_update = _WINDOW_UNPACK(value)
                if this_update <= now < next_update:
                    return this_update, next_update, bytes(value[16:])
            return None
        finally:
            txn.abort()

    def status(self, prefix: bytes, serial: bytes) -> tuple[int, int, int, int] | None:
        """(status, revoked_at, reason, not_after) of one serial, or None
        (the record's first 18 bytes, unpacked in place; its seq is not read)."""
        txn = self._env.begin(buffers=True)
        try:
            value = txn.get(prefix + serial, db=self._status)
            return None if value is None else _STATUS_UNPACK(value)
        finally:
            txn.abort()

    def statuses(self, prefix: bytes, serials) -> list[tuple[int, int, int, int] | None]:
        """``status`` of several serials of one issuer, in one transaction."""
        txn = self._env.begin(buffers=True)
        try:
            get, db = txn.get, self._status
            return [
                None if (value := get(prefix + serial, db=db)) is None else _STATUS_UNPACK(value)
                for serial in serials
            ]
        finally:
            txn.abort()

    def crl(self, name: str) -> StoredCRL | None:
        """The latest CRL stored under ``name``; None for no such CRL or a
        name that cannot be one (CRL names are one flat namespace)."""
        if not _CRL_NAME.match(name) or ".." in name:
            return None
        with self._env.begin() as txn:
            value = txn.get(name.encode(), db=self._crls)
        return None if value is None else _stored_crl(value)


def _stored_crl(value: bytes) -> StoredCRL:
    this_update, next_update, number = _CRL_HEADER.unpack_from(value)
    return StoredCRL(this_update, next_update, number, bytes(value[_CRL_HEADER.size :]))


_WINDOW_UNPACK = _WINDOW.unpack_from
_STATUS_UNPACK = _STATUS.unpack_from  # the answering fields of either record length
