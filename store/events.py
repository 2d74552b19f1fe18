"""The outbox event contract: what the CA writes into ``store.tables.outbox``
and the publisher reads from it, typed, in one place.

An outbox row is one issuance or status change, written in the change's own
transaction. Its columns carry what every event has: ``id`` (the sequence
number the VAs track: events are read in id order), ``ca_id``, ``serial``
(40-digit hex, store/tables/base.py), ``event`` (the :class:`EventType`'s
word) and ``created_at_ms``. The JSON ``payload`` carries the rest:

    version 2 (written since this module exists):
      {"v": 2, "not_after": <epoch seconds>}                         issued, released, expired
      {"v": 2, "not_after": ..., "revoked_at": ..., "reason": <CRLReason>}      revoked, hold

    version 1 (rows written before, read as they are): no "v"; "ca" and
    "serial" (which the columns repeat), "status" (which the type implies),
    "not_after", and for revoked and hold "revoked_at", "reason" (null: none)
    and "invalidity_date" (kept on the certificate row, where CRLs read it).

``encode_payload`` writes version 2 and refuses what would not decode;
``decode`` reads either version into an :class:`OutboxEvent` or raises
:class:`EventError` naming the row and the field. A version it does not know
is refused, never guessed at: a publisher older than its CA stops at the first
such row and says so, it does not skip it.
"""

import enum
import json
from dataclasses import dataclass

VERSION = 2
_INT64 = 2**63 - 1


class EventType(enum.Enum):
    """What an outbox row records, by the word in its ``event`` column."""

    ISSUED = "issued"  # a new certificate, good
    REVOKED = "revoked"  # revoked for good (RFC 5280 5.3.1 reason)
    HOLD = "hold"  # revoked with reason certificateHold, may be released
    RELEASED = "released"  # back from hold: good again (removeFromCRL in delta CRLs)
    EXPIRED = "expired"  # past notAfter: no status change

    @property
    def revocation(self) -> bool:
        """Whether the event carries revoked_at and reason."""
        return self in (EventType.REVOKED, EventType.HOLD)


EVENT_TYPES = tuple(kind.value for kind in EventType)


class EventError(ValueError):
    """An outbox event that cannot be written or read as the contract says;
    the message names the row (when there is one) and the field."""


@dataclass(frozen=True)
class OutboxEvent:
    """One outbox row, decoded."""

    seq: int  # the row's id: strictly increasing, the VAs' high-water
    type: EventType
    ca_id: int
    serial: int
    not_after: int  # epoch seconds
    revoked_at: int | None = None  # epoch seconds; revoked and hold only
    reason: int | None = None  # CRLReason (RFC 5280 5.3.1); None: none given


def _check_int(name: str, value, *, minimum: int = 0, maximum: int = _INT64) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise EventError(f"{name} must be an integer from {minimum} to {maximum}")
    return value


def _check_reason(value) -> int | None:
    # CRLReason values 0..10 without 7, which RFC 5280 5.3.1 leaves unused.
    if value is None:
        return None
    if _check_int("reason", value, maximum=10) == 7:
        raise EventError("reason 7 is not a CRLReason (RFC 5280 5.3.1)")
    return value


def encode_payload(
    kind: EventType | str,
    *,
    not_after: int,
    revoked_at: int | None = None,
    reason: int | None = None,
) -> str:
    """The ``payload`` column of an event of ``kind`` (version 2). revoked and
    hold take ``revoked_at`` and may take ``reason``; the others take neither."""
    try:
        kind = EventType(kind)
    except ValueError:
        raise EventError(f"event type {kind!r} is not one of {', '.join(EVENT_TYPES)}") from None
    payload = {"v": VERSION, "not_after": _check_int("not_after", not_after)}
    if kind.revocation:
        if revoked_at is None:
            raise EventError(f"{kind.value} events need revoked_at")
        payload["revoked_at"] = _check_int("revoked_at", revoked_at)
        payload["reason"] = _check_reason(reason)
    elif revoked_at is not None or reason is not None:
        raise EventError(f"{kind.value} events carry no revoked_at or reason")
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


_V2_KEYS = {False: {"v", "not_after"}, True: {"v", "not_after", "revoked_at", "reason"}}
_V1_KEYS = {"ca", "serial", "status", "not_after", "revoked_at", "reason", "invalidity_date"}


def decode(row) -> OutboxEvent:
    """An outbox row (anything with the table's column attributes) as an
    :class:`OutboxEvent`; EventError names the row and what is wrong."""
    try:
        return _decode(row)
    except EventError as exc:
        raise EventError(f"outbox event {row.id}: {exc}") from None


def _decode(row) -> OutboxEvent:
    try:
        kind = EventType(row.event)
    except ValueError:
        raise EventError(
            f"event type {row.event!r} is not one of {', '.join(EVENT_TYPES)}"
        ) from None
    try:
        serial = int(row.serial, 16)
    except (TypeError, ValueError):
        raise EventError(f"serial column {row.serial!r} is not hexadecimal") from None
    try:
        payload = json.loads(row.payload)
    except (TypeError, ValueError):
        raise EventError("payload is not JSON") from None
    if not isinstance(payload, dict):
        raise EventError("payload is not a JSON object")
    version = payload.get("v", 1)
    if version == VERSION:
        expected = _V2_KEYS[kind.revocation]
        if set(payload) != expected:
            extra, missing = set(payload) - expected, expected - set(payload)
            what = f"unknown key {sorted(extra)[0]!r}" if extra else f"no {sorted(missing)[0]}"
            raise EventError(f"payload (version 2) of this {kind.value} event has {what}")
    elif version == 1 and "v" not in payload:
        unknown = set(payload) - _V1_KEYS
        if unknown:
            raise EventError(f"payload (version 1) has unknown key {sorted(unknown)[0]!r}")
        if kind.revocation and "revoked_at" not in payload:
            raise EventError(f"payload (version 1) of this {kind.value} event has no revoked_at")
    else:
        raise EventError(
            f"payload version {version!r} is not known (this code reads 1 and {VERSION}): "
            "upgrade the publisher"
        )
    # Version 1 wrote not_after null for certificates without one; none exist
    # (RFC 5280 4.1.2.5 requires it), so a missing one reads as 0 as it did.
    not_after = (payload.get("not_after") or 0) if version == 1 else payload["not_after"]
    revoked_at = reason = None
    if kind.revocation:
        revoked_at = _check_int("revoked_at", payload["revoked_at"])
        reason = _check_reason(payload.get("reason"))
    return OutboxEvent(
        row.id, kind, row.ca_id, serial, _check_int("not_after", not_after), revoked_at, reason
    )
