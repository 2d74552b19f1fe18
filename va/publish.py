"""The publish protocol, version 2: how status changes reach a VA.

Owned by the VA (``publisher`` speaks it; ``va`` never imports ``publisher``).

    POST /publish/v2/events
      {"source": "<publisher id>", "after": 16,
       "events": [{"seq": 17, "type": "revoked", "issuer": 2, "serial": "0a1b...",
                   "not_after": 1893456000, "revoked_at": 1767225600, "reason": 1}, ...]}
      -> {"applied": 3, "skipped": 0, "high_water": 19}
      409 {"error": "sequence_gap", "message", "high_water": 12, "after": 16}
    GET  /publish/v2/status?source=<publisher id>
      -> {"source": ..., "high_water": 19, "applied": 1234}
    PUT  /publish/v2/crls/<name>   body: CRL DER; optional headers X-CRL-Number,
                                   X-CRL-This-Update, X-CRL-Next-Update (epoch seconds)
      -> {"stored": "<name>", "number": 7, "unchanged": false}
    PUT  /publish/v2/issuers/<id>  {"name", "certificate" (base64 DER),
                                    "responder_certificate" (base64 DER or null),
                                    "responder_key" (a key file already on the VA),
                                    "parents": [{"name", "certificate"}],
                                    the policies of va/policy.py: nonce_policy,
                                    unissued, responder_id, response_validity_hours}
                                   Private keys never travel over this protocol.
                                   Takes effect at the VA's next reload (SIGHUP).

    PUT  /publish/v2/snapshots/<id>/<chunk>
      {"source": "<publisher id>", "position": 19, "last": false, "complete": true,
       "statuses": [{"issuer": 2, "serial": "0a1b...", "seq": 17, "status": "revoked",
                     "not_after": 1893456000, "revoked_at": 1767225600, "reason": 1}, ...]}
      -> {"snapshot": "<id>", "chunk": 0, "applied": 2, "kept": 1, "high_water": 19}

``type`` is one of issued, revoked, hold, released, expired. ``seq`` strictly
increases per source, and may skip values that are no loss (the outbox's
ids: a PostgreSQL sequence skips the ids of rolled-back transactions).
``after`` says what the sender believes comes before the batch: the seq it
read the outbox from (every event above ``after`` up to the batch's last
is in it, in order), so the first event's seq is above it. A batch is
applied in one LMDB write transaction that also records the source's
highest applied ``seq`` and a running count, and ignores events at or below
it: delivery may repeat, the effect happens once. A batch whose ``after`` is
above that high-water follows events the VA never applied (it was restored
from an older copy, or another sender moved on): it is refused whole (409
``sequence_gap`` with the VA's high-water), as applying it would lift the
high-water past the missing events for ever, and the sender sends again from
the VA's high-water. The same transaction drops the serial's pre-signed
responses, so no reader pairs the new status with old bytes; the VA's
refresher signs new ones.

Version 2 made ``after`` required (version 1 had none, and applied a batch
whatever came before it) and checks each CRL; the version is in every
path, so a publisher and a VA of different versions fail loudly (404)
rather than half work. A publisher and a VA of this repository are of one
version: upgrade them together.

Ordering holds per serial as well: each status record keeps the ``seq`` of
the change it holds, and a change replaces it only when newer
(``StatusRecord.replaces``). So an event older than what a serial holds
(delivered again after a snapshot overtook it) changes nothing.

A CRL is filed under the values it carries (cRLNumber, thisUpdate,
nextUpdate); the X-CRL-* headers, which the publisher sends from the CA
store's row, may be left out, and when sent must be the CRL's own.
va/crlcheck.py checks every CRL, this endpoint's and a co-located
publisher's alike: one DER CRL with nothing after it, signed by a CA
certificate the VA holds (an issuer's or a parent's; issuer Name and
authorityKeyIdentifier matched), its number above the one held under
``<name>`` (RFC 5280 5.2.3), or equal with the same bytes: a resend, which
answers ``unchanged`` and writes nothing. Full (``<ca>``, a root's ARL
too), delta (``<ca>-delta``) and partitioned CRLs (the partition's file
name) are numbered per name. A refusal changes nothing and answers
``{"error": <code>, "message"}``: 400 ``crl_bad_name``, ``crl_bad_header``,
``crl_malformed``, ``crl_incomplete`` (no cRLNumber or nextUpdate),
``crl_number_too_large`` (past 64 bits), ``crl_header_mismatch``; 422
``crl_unknown_issuer`` (the one refusal that may pass later, once the VA
holds the issuer) and ``crl_bad_signature``; 409 ``crl_number_lower`` and
``crl_number_reused``.

A snapshot is every status of a source's CA store as of one outbox
``position`` (its highest event id), read in one transaction and sent in
chunks of at most ``MAX_STATUSES_PER_CHUNK``: ``<id>`` is 32 lowercase hex
digits chosen by the sender, ``<chunk>`` counts from 0, and each chunk is
applied in its own write transaction by the same rule as events, each status
with the ``seq`` of its last change (0: none since issuance). Chunks are
taken in order (a chunk may be sent again); chunk 0 starts a snapshot anew.
The ``last`` chunk of a ``complete`` snapshot (one holding every status the
source publishes) lifts the source's high-water to max(high-water,
position): every event at or below it is in the snapshot or superseded. A
partial snapshot (some CAs only) leaves the high-water alone; its events
are delivered again and change nothing older.
"""

import re
import struct
from dataclasses import dataclass

from common.der import integer_content
from common.settings import SettingsError
from va.errors import ProtocolError, SequenceGapError
from va.policy import IssuerPolicy
from va.store import GOOD, HOLD, REVOKED, StatusRecord, VAStore

VERSION = 2  # 2: batches carry "after"; CRLs are checked (see above)
EVENT_TYPES = ("issued", "revoked", "hold", "released", "expired")
SNAPSHOT_STATUSES = ("good", "revoked", "hold")
MAX_EVENTS_PER_BATCH = 10_000
MAX_STATUSES_PER_CHUNK = 10_000
_COUNTERS = struct.Struct(">QQ")  # high-water seq, applied count
# A source's snapshot in progress: its id, position, and the next chunk expected.
_SNAPSHOT = struct.Struct(">16sQI")
_SNAPSHOT_ID = re.compile(r"[0-9a-f]{32}")
CERTIFICATE_HOLD = 6


@dataclass(frozen=True)
class Batch:
    """A batch of events, checked whole (see the module's docstring)."""

    source: str
    after: int  # the seq the sender read the outbox from: its events follow it
    events: list


@dataclass(frozen=True)
class Event:
    seq: int
    type: str
    issuer: int
    serial: bytes
    record: StatusRecord | None  # None: no status change (expired)


_INT64 = 2**63 - 1  # the store keeps times and seq as signed 64-bit integers
_GOOD_KINDS = frozenset(("issued", "released", "good"))


def _int(item: dict, key: str, index: int | None, default=None, minimum=0, what="event") -> int:
    value = item.get(key, default)
    # type() and not isinstance(): a bool is an int subclass and is refused.
    if type(value) is not int or not minimum <= value <= _INT64:
        where = what if index is None else f"{what} {index}"
        raise ProtocolError(f"{where}: {key} must be an integer >= {minimum}")
    return value


def _issuer(item: dict, index: int, what: str) -> int:
    issuer = _int(item, "issuer", index, None, 1, what)
    if issuer >= 2**32:  # the store keys an issuer by 4 octets
        raise ProtocolError(f"{what} {index}: issuer must be below 2**32")
    return issuer


def _serial(item: dict, index: int, what: str) -> bytes:
    try:
        serial = int(item.get("serial"), 16)
    except (TypeError, ValueError):
        raise ProtocolError(f"{what} {index}: serial must be hexadecimal") from None
    if serial <= 0 or serial.bit_length() > 159:
        raise ProtocolError(f"{what} {index}: serial must be positive and at most 20 octets")
    return integer_content(serial)


def _record(kind: str, item: dict, index: int, seq: int, what: str) -> StatusRecord:
    """The status record an event (issued, released, revoked, hold) or a
    snapshot's status (good, revoked, hold) sets, holding ``seq``."""
    not_after = _int(item, "not_after", index, 0, 0, what)
    if kind in _GOOD_KINDS:
        return StatusRecord(GOOD, 0, -1, not_after, seq)
    revoked_at = _int(item, "revoked_at", index, None, 0, what)
    reason = _int(item, "reason", index, -1, -1, what)
    if reason > 10 or reason == 7:
        raise ProtocolError(f"{what} {index}: reason {reason} is not a CRLReason")
    if kind == "hold":
        return StatusRecord(HOLD, revoked_at, CERTIFICATE_HOLD, not_after, seq)
    return StatusRecord(REVOKED, revoked_at, reason, not_after, seq)


def _source(body: dict) -> str:
    source = body.get("source")
    if not isinstance(source, str) or not 1 <= len(source) <= 128 or not source.isprintable():
        raise ProtocolError("source must be a printable string of 1 to 128 characters")
    return source


def parse_batch(body: object) -> Batch:
    """Validate a decoded JSON batch completely before anything is applied."""
    if not isinstance(body, dict):
        raise ProtocolError("the body must be a JSON object")
    source = _source(body)
    after = _int(body, "after", None, None, 0, "batch")
    raw = body.get("events")
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_EVENTS_PER_BATCH:
        raise ProtocolError(f"events must be a list of 1 to {MAX_EVENTS_PER_BATCH} events")
    events, previous = [], after
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ProtocolError(f"event {index}: must be an object")
        seq = _int(item, "seq", index, None, 1, "event")
        if seq <= previous and index == 0:
            raise ProtocolError(f"event 0: seq {seq} is not above after ({after})")
        if seq <= previous:
            raise ProtocolError(f"event {index}: seq {seq} does not increase")
        previous = seq
        kind = item.get("type")
        if kind not in EVENT_TYPES:
            raise ProtocolError(f"event {index}: type must be one of {', '.join(EVENT_TYPES)}")
        issuer = _issuer(item, index, "event")
        serial_der = _serial(item, index, "event")
        record = None if kind == "expired" else _record(kind, item, index, seq, "event")
        events.append(Event(seq, kind, issuer, serial_der, record))
    return Batch(source, after, events)


def _meta_key(source: str) -> bytes:
    return b"publish:" + source.encode()


def counters(store: VAStore, source: str) -> tuple[int, int]:
    """(highest seq applied, events applied) for ``source``."""
    with store.env.begin() as txn:
        value = txn.get(_meta_key(source), db=store.meta_db)
    return _COUNTERS.unpack(value) if value else (0, 0)


def sources(store: VAStore) -> dict[str, tuple[int, int]]:
    with store.env.begin() as txn:
        cursor = txn.cursor(db=store.meta_db)
        out = {}
        if cursor.set_range(b"publish:"):
            for key, value in cursor:
                if not key.startswith(b"publish:"):
                    break
                out[key[8:].decode()] = _COUNTERS.unpack(value)
        return out


def apply_batch(store: VAStore, batch: Batch) -> dict:
    """Apply what is new in one write transaction; return the counters. A
    batch that follows events this VA has not applied (its ``after`` above
    the high-water) raises SequenceGapError and applies nothing."""
    result = {}
    source, events = batch.source, batch.events

    def apply(txn):
        key = _meta_key(source)
        value = txn.get(key, db=store.meta_db)
        high_water, applied = _COUNTERS.unpack(value) if value else (0, 0)
        if batch.after > high_water:
            # The events between the two are not here: applying this batch
            # would lift the high-water past them, and they would never come.
            raise SequenceGapError(source, batch.after, high_water)
        fresh = [e for e in events if e.seq > high_water]
        superseded = 0
        put_newer = store.put_newer
        for event in fresh:
            if event.record is not None and not put_newer(
                txn, event.issuer, event.serial, event.record
            ):
                superseded += 1  # the serial holds a newer change (from a snapshot)
        if fresh:
            high_water = fresh[-1].seq
            applied += len(fresh)
            txn.put(key, _COUNTERS.pack(high_water, applied), db=store.meta_db)
        result.update(
            applied=len(fresh),
            skipped=len(events) - len(fresh),
            superseded=superseded,
            high_water=high_water,
            total_applied=applied,
        )

    store.write(apply)
    return result


@dataclass(frozen=True)
class SnapshotChunk:
    """One chunk of a snapshot, checked whole (see the module's docstring)."""

    snapshot: str  # the sender's id of the snapshot: 32 lowercase hex digits
    chunk: int  # its place, from 0
    position: int  # the source's outbox position the snapshot was read at
    last: bool
    complete: bool  # the snapshot holds every status the source publishes
    statuses: tuple  # of (issuer id, serial DER content, StatusRecord)


def parse_snapshot(snapshot: str, chunk: str, body: object) -> tuple[str, SnapshotChunk]:
    """Validate a snapshot chunk (the path's id and chunk number, the decoded
    JSON body) completely before anything of it is applied."""
    if not isinstance(snapshot, str) or not _SNAPSHOT_ID.fullmatch(snapshot):
        raise ProtocolError("the snapshot id must be 32 lowercase hexadecimal digits")
    if not isinstance(chunk, str) or not chunk.isdigit() or len(chunk) > 9:
        raise ProtocolError("the chunk number must be a decimal integer from 0")
    if not isinstance(body, dict):
        raise ProtocolError("the body must be a JSON object")
    source = _source(body)
    position = _int(body, "position", None, None, 0, "snapshot")
    flags = {}
    for key in ("last", "complete"):
        if not isinstance(body.get(key), bool):
            raise ProtocolError(f"snapshot: {key} must be true or false")
        flags[key] = body[key]
    raw = body.get("statuses")
    if not isinstance(raw, list) or len(raw) > MAX_STATUSES_PER_CHUNK:
        raise ProtocolError(f"statuses must be a list of at most {MAX_STATUSES_PER_CHUNK}")
    statuses = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ProtocolError(f"status {index}: must be an object")
        kind = item.get("status")
        if kind not in SNAPSHOT_STATUSES:
            raise ProtocolError(
                f"status {index}: status must be one of {', '.join(SNAPSHOT_STATUSES)}"
            )
        seq = _int(item, "seq", index, None, 0, "status")
        if seq > position:
            raise ProtocolError(
                f"status {index}: seq {seq} is past the snapshot's position {position}"
            )
        issuer = _issuer(item, index, "status")
        serial = _serial(item, index, "status")
        statuses.append((issuer, serial, _record(kind, item, index, seq, "status")))
    return source, SnapshotChunk(
        snapshot, int(chunk), position, flags["last"], flags["complete"], tuple(statuses)
    )


def _snapshot_key(source: str) -> bytes:
    return b"snapshot:" + source.encode()


def apply_snapshot(store: VAStore, source: str, chunk: SnapshotChunk) -> dict:
    """Apply one snapshot chunk in one write transaction: each status only
    where it is newer than what the serial holds; the last chunk of a
    complete snapshot lifts the source's high-water to its position. A chunk
    that does not follow the ones applied raises ProtocolError and changes
    nothing."""
    result = {}
    ident = bytes.fromhex(chunk.snapshot)

    def apply(txn):
        key = _snapshot_key(source)
        value = txn.get(key, db=store.meta_db)
        if chunk.chunk == 0:
            next_chunk = 0
        else:
            held, position, next_chunk = _SNAPSHOT.unpack(value) if value else (b"", 0, 0)
            if held != ident or position != chunk.position:
                raise ProtocolError(
                    f"snapshot {chunk.snapshot} at position {chunk.position} is not the one in "
                    "progress here (its chunk 0 was not applied, or another snapshot followed): "
                    "send it again from chunk 0"
                )
            if chunk.chunk > next_chunk:
                raise ProtocolError(
                    f"snapshot {chunk.snapshot}: chunk {chunk.chunk} does not follow chunk "
                    f"{next_chunk - 1}"
                )
        applied = 0
        put_newer = store.put_newer
        for issuer, serial, record in chunk.statuses:
            applied += put_newer(txn, issuer, serial, record)
        next_chunk = max(next_chunk, chunk.chunk + 1)
        txn.put(key, _SNAPSHOT.pack(ident, chunk.position, next_chunk), db=store.meta_db)
        meta = _meta_key(source)
        counters_value = txn.get(meta, db=store.meta_db)
        high_water, events = _COUNTERS.unpack(counters_value) if counters_value else (0, 0)
        if chunk.last and chunk.complete and chunk.position > high_water:
            high_water = chunk.position
            txn.put(meta, _COUNTERS.pack(high_water, events), db=store.meta_db)
        result.update(
            snapshot=chunk.snapshot,
            chunk=chunk.chunk,
            applied=applied,
            kept=len(chunk.statuses) - applied,
            high_water=high_water,
        )

    store.write(apply)
    return result


def parse_issuer(issuer_id: int, body: object) -> dict:
    """Validate an issuer record completely before it is stored."""
    import base64
    import binascii
    import re

    from cryptography import x509

    if not isinstance(body, dict):
        raise ProtocolError("the body must be a JSON object")
    if not 1 <= issuer_id < 2**32:
        raise ProtocolError("issuer id must be 1 to 2**32-1")

    def certificate(value, what):
        try:
            der = base64.b64decode(value, validate=True)
            x509.load_der_x509_certificate(der)
        except (TypeError, ValueError, binascii.Error):
            raise ProtocolError(f"{what} must be a base64 DER certificate") from None
        return value

    name = body.get("name")
    if not isinstance(name, str) or not re.match(r"^[a-z0-9][a-z0-9_.-]{0,63}$", name):
        raise ProtocolError("name must be a CA name (lowercase letters, digits, '.', '_', '-')")
    key = body.get("responder_key")
    if not isinstance(key, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}$", key):
        raise ProtocolError("responder_key must name a key file in the VA's key directory")
    record = {
        "name": name,
        "certificate": certificate(body.get("certificate"), "certificate"),
        "responder_certificate": (
            certificate(body["responder_certificate"], "responder_certificate")
            if body.get("responder_certificate")
            else None
        ),
        "responder_key": key,
        "parents": [],
    }
    try:
        record.update(IssuerPolicy.of_record(body, "issuer").record())
    except SettingsError as exc:
        raise ProtocolError(exc.message) from None
    for index, parent in enumerate(body.get("parents") or []):
        if not isinstance(parent, dict) or not isinstance(parent.get("name"), str):
            raise ProtocolError(f"parents[{index}] needs a name and a certificate")
        record["parents"].append(
            {
                "name": parent["name"],
                "certificate": certificate(parent.get("certificate"), f"parents[{index}]"),
            }
        )
    return record
