"""The publish protocol, version 1: how status changes reach a VA.

Owned by the VA (``publisher`` speaks it; ``va`` never imports ``publisher``).

    POST /publish/v1/events
      {"source": "<publisher id>",
       "events": [{"seq": 17, "type": "revoked", "issuer": 2, "serial": "0a1b...",
                   "not_after": 1893456000, "revoked_at": 1767225600, "reason": 1}, ...]}
      -> {"applied": 3, "skipped": 0, "high_water": 19}
    GET  /publish/v1/status?source=<publisher id>
      -> {"source": ..., "high_water": 19, "applied": 1234}
    PUT  /publish/v1/crls/<name>   body: CRL DER; headers X-CRL-Number,
                                   X-CRL-This-Update, X-CRL-Next-Update (epoch seconds)
    PUT  /publish/v1/issuers/<id>  {"name", "certificate" (base64 DER),
                                    "responder_certificate" (base64 DER or null),
                                    "responder_key" (a key file already on the VA),
                                    "parents": [{"name", "certificate"}],
                                    the policies of va/policy.py: nonce_policy,
                                    unissued, responder_id, response_validity_hours}
                                   Private keys never travel over this protocol.
                                   Takes effect at the VA's next reload (SIGHUP).

``type`` is one of issued, revoked, hold, released, expired. ``seq`` strictly
increases per source. A batch is applied in one LMDB write transaction that
also records the source's highest applied ``seq`` and a running count, and
ignores events at or below it: delivery may repeat, the effect happens once.
The same transaction drops the serial's pre-signed responses, so no reader
pairs the new status with old bytes; the VA's refresher signs new ones.
"""

import struct
from dataclasses import dataclass

from common.der import integer_content
from common.settings import SettingsError
from va.errors import ProtocolError
from va.policy import IssuerPolicy
from va.store import GOOD, HOLD, REVOKED, StatusRecord, VAStore

VERSION = 1
EVENT_TYPES = ("issued", "revoked", "hold", "released", "expired")
MAX_EVENTS_PER_BATCH = 10_000
_COUNTERS = struct.Struct(">QQ")  # high-water seq, applied count
CERTIFICATE_HOLD = 6


@dataclass(frozen=True)
class Event:
    seq: int
    type: str
    issuer: int
    serial: bytes
    record: StatusRecord | None  # None: no status change (expired)


def _int(event: dict, key: str, index: int, default=None, minimum=0) -> int:
    value = event.get(key, default)
    if value is None or isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ProtocolError(f"event {index}: {key} must be an integer >= {minimum}")
    return value


def parse_batch(body: object) -> tuple[str, list[Event]]:
    """Validate a decoded JSON batch completely before anything is applied."""
    if not isinstance(body, dict):
        raise ProtocolError("the body must be a JSON object")
    source = body.get("source")
    if not isinstance(source, str) or not 1 <= len(source) <= 128 or not source.isprintable():
        raise ProtocolError("source must be a printable string of 1 to 128 characters")
    raw = body.get("events")
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_EVENTS_PER_BATCH:
        raise ProtocolError(f"events must be a list of 1 to {MAX_EVENTS_PER_BATCH} events")
    events, previous = [], -1
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ProtocolError(f"event {index}: must be an object")
        seq = _int(item, "seq", index, minimum=1)
        if seq <= previous:
            raise ProtocolError(f"event {index}: seq {seq} does not increase")
        previous = seq
        kind = item.get("type")
        if kind not in EVENT_TYPES:
            raise ProtocolError(f"event {index}: type must be one of {', '.join(EVENT_TYPES)}")
        issuer = _int(item, "issuer", index, minimum=1)
        serial_hex = item.get("serial")
        try:
            serial = int(serial_hex, 16)
        except (TypeError, ValueError):
            raise ProtocolError(f"event {index}: serial must be hexadecimal") from None
        if serial <= 0 or serial.bit_length() > 159:
            raise ProtocolError(f"event {index}: serial must be positive and at most 20 octets")
        serial_der = integer_content(serial)
        not_after = _int(item, "not_after", index, default=0)
        if kind in ("issued", "released"):
            record = StatusRecord(GOOD, 0, -1, not_after)
        elif kind in ("revoked", "hold"):
            revoked_at = _int(item, "revoked_at", index)
            reason = _int(item, "reason", index, default=-1, minimum=-1)
            if reason > 10 or reason == 7:
                raise ProtocolError(f"event {index}: reason {reason} is not a CRLReason")
            if kind == "hold":
                record = StatusRecord(HOLD, revoked_at, CERTIFICATE_HOLD, not_after)
            else:
                record = StatusRecord(REVOKED, revoked_at, reason, not_after)
        else:
            record = None
        events.append(Event(seq, kind, issuer, serial_der, record))
    return source, events


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


def apply_batch(store: VAStore, source: str, events: list[Event]) -> dict:
    """Apply what is new in one write transaction; return the counters."""
    result = {}

    def apply(txn):
        key = _meta_key(source)
        value = txn.get(key, db=store.meta_db)
        high_water, applied = _COUNTERS.unpack(value) if value else (0, 0)
        fresh = [e for e in events if e.seq > high_water]
        for event in fresh:
            if event.record is not None:
                store.put_status(txn, event.issuer, event.serial, event.record)
        if fresh:
            high_water = fresh[-1].seq
            applied += len(fresh)
            txn.put(key, _COUNTERS.pack(high_water, applied), db=store.meta_db)
        result.update(
            applied=len(fresh),
            skipped=len(events) - len(fresh),
            high_water=high_water,
            total_applied=applied,
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
