"""Certificate status in LMDB: the VA's only state.

Key schema (integers big-endian):

- ``issuers``: issuer id (u32) -> JSON: name, certificate, responder
  certificate and key file, policies (nonce, unissued serials, validity).
- ``status``: issuer id (u32) + serial -> status u8 (0 good, 1 revoked,
  2 hold), revoked_at i64, reason i8 (-1 none), not_after i64.
- ``responses``: issuer id (u32) + hash algorithm (u8) + serial ->
  this_update i64, next_update i64, then the signed OCSPResponse DER.
- ``crls``: the CRL's file name as the URLs in certificates carry it (for
  example ``issuing``, ``issuing-delta``, ``issuing-p3``; ASCII letters,
  digits, '.', '_', '-') -> thisUpdate i64, nextUpdate i64, CRL number u64,
  then the CRL DER. The latest CRL per name.
- ``meta``: UTF-8 name -> small facts (per-source sequence numbers).

The serial is stored exactly as an OCSP request carries it (the DER
INTEGER's content octets), so a lookup needs no conversion. One writer
applies status changes, and the pre-signed responses they replace, in a
single write transaction: no reader sees a new status with an old response.
Any number of processes read concurrently.
"""

import json
import re
import struct
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import lmdb

GOOD, REVOKED, HOLD = 0, 1, 2
_STATUS = struct.Struct(">Bqbq")
_WINDOW = struct.Struct(">qq")
DEFAULT_MAP_SIZE = 1 << 30


class StoreFullError(RuntimeError):
    """The LMDB map is full and may not grow further."""


@dataclass(frozen=True)
class StatusRecord:
    status: int
    revoked_at: int = 0
    reason: int = -1
    not_after: int = 0

    def pack(self) -> bytes:
        return _STATUS.pack(self.status, self.revoked_at, self.reason, self.not_after)

    @classmethod
    def unpack(cls, data) -> "StatusRecord":
        return cls(*_STATUS.unpack(data))


def serial_bytes(serial: int) -> bytes:
    """The DER INTEGER content octets of a serial (two's complement, minimal)."""
    return serial.to_bytes((serial.bit_length() + 8) // 8, "big", signed=True)


def status_key(issuer_id: int, serial: bytes) -> bytes:
    return issuer_id.to_bytes(4, "big") + serial


def response_key(issuer_id: int, hash_algorithm: int, serial: bytes) -> bytes:
    return issuer_id.to_bytes(4, "big") + bytes((hash_algorithm,)) + serial


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


@dataclass(frozen=True)
class StoredResponse:
    this_update: int
    next_update: int
    der: bytes


class VAStore:
    def __init__(
        self,
        path: Path,
        *,
        map_size: int = DEFAULT_MAP_SIZE,
        max_map_size: int = 1 << 40,
        readonly: bool = False,
    ):
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
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
        )
        self.issuers_db = self.env.open_db(b"issuers", create=not readonly)
        self.status_db = self.env.open_db(b"status", create=not readonly)
        self.responses_db = self.env.open_db(b"responses", create=not readonly)
        self.crls_db = self.env.open_db(b"crls", create=not readonly)
        self.meta_db = self.env.open_db(b"meta", create=not readonly)

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

    def apply(
        self,
        statuses: Iterable[tuple[int, bytes, StatusRecord]] = (),
        responses: Iterable[tuple[int, int, bytes, StoredResponse | None]] = (),
    ) -> None:
        """Write status records and replace (or, with None, drop) pre-signed
        responses, all in one transaction."""
        statuses = list(statuses)
        responses = list(responses)

        def apply(txn):
            for issuer_id, serial, record in statuses:
                txn.put(status_key(issuer_id, serial), record.pack(), db=self.status_db)
            for issuer_id, algorithm, serial, stored in responses:
                key = response_key(issuer_id, algorithm, serial)
                if stored is None:
                    txn.delete(key, db=self.responses_db)
                else:
                    value = _WINDOW.pack(stored.this_update, stored.next_update) + stored.der
                    txn.put(key, value, db=self.responses_db)

        self.write(apply)

    # -- CRLs ----------------------------------------------------------------------

    def put_crl(
        self, name: str, this_update: int, next_update: int, number: int, der: bytes
    ) -> None:
        key = check_crl_name(name).encode()
        value = _CRL_HEADER.pack(this_update, next_update, number) + der
        self.write(lambda txn: txn.put(key, value, db=self.crls_db))

    def get_crl(self, name: str) -> StoredCRL | None:
        if not _CRL_NAME.match(name) or ".." in name:
            return None
        with self.env.begin() as txn:
            value = txn.get(name.encode(), db=self.crls_db)
        if value is None:
            return None
        this_update, next_update, number = _CRL_HEADER.unpack_from(value)
        return StoredCRL(this_update, next_update, number, value[_CRL_HEADER.size :])

    def iter_status(
        self, issuer_id: int, batch: int = 10_000
    ) -> Iterator[tuple[bytes, StatusRecord]]:
        """(serial, status) of one issuer in serial order, read ``batch`` at
        a time, each batch in a read transaction of its own: the caller may
        write between items (pre-signing does), and a write that grows the
        map ends every open transaction of this process."""
        prefix = issuer_id.to_bytes(4, "big")
        start = prefix
        while True:
            rows = []
            with self.env.begin() as txn:
                cursor = txn.cursor(db=self.status_db)
                if cursor.set_range(start):
                    for key, value in cursor:
                        if not key.startswith(prefix):
                            break
                        rows.append((key[4:], StatusRecord.unpack(value)))
                        if len(rows) == batch:
                            start = key + b"\x00"  # the next key after this one
                            break
            yield from rows
            if len(rows) < batch:
                return

    def count_status(self) -> int:
        with self.env.begin() as txn:
            return txn.stat(self.status_db)["entries"]
