"""The outbox event contract (store/events.py): what the CA writes is what
the publisher reads, old rows still read, a bad row is refused with an exact
error, and the publisher waits at such a row instead of skipping it."""

import json
import time
from types import SimpleNamespace

import pytest
from sqlalchemy import insert, update

from ca.reasons import RevocationReason
from publisher.outbox import Outbox, to_event, to_protocol
from publisher.service import Publisher
from publisher.settings import PublisherSettings
from publisher.targets import LocalTarget
from store.events import (
    EVENT_TYPES,
    VERSION,
    EventError,
    EventType,
    OutboxEvent,
    decode,
    encode_payload,
)
from store.tables.outbox import outbox
from tests.conftest import make_csr
from va import publish
from va.store import VAStore


def _row(event="issued", payload=None, *, id=7, ca_id=2, serial="0" * 36 + "0a1b"):
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return SimpleNamespace(id=id, ca_id=ca_id, serial=serial, event=event, payload=text)


@pytest.mark.parametrize(
    ("kind", "fields", "expected"),
    [
        ("issued", {"not_after": 1_900_000_000}, (None, None)),
        ("released", {"not_after": 1_900_000_000}, (None, None)),
        ("expired", {"not_after": 1_900_000_000}, (None, None)),
        ("revoked", {"not_after": 1, "revoked_at": 1_800_000_000, "reason": 1}, (1_800_000_000, 1)),
        ("revoked", {"not_after": 1, "revoked_at": 5, "reason": None}, (5, None)),
        ("hold", {"not_after": 1, "revoked_at": 5, "reason": 6}, (5, 6)),
    ],
)
def test_what_is_encoded_decodes(kind, fields, expected):
    payload = encode_payload(kind, **fields)
    assert json.loads(payload)["v"] == VERSION == 2
    event = decode(_row(kind, payload))
    assert event == OutboxEvent(7, EventType(kind), 2, 0x0A1B, fields["not_after"], *expected)


@pytest.mark.parametrize(
    ("event", "payload", "expected"),
    [
        (
            "issued",
            {"ca": "issuing", "serial": "0a1b", "status": "good", "not_after": 1_900_000_000},
            OutboxEvent(7, EventType.ISSUED, 2, 0x0A1B, 1_900_000_000),
        ),
        (
            "revoked",
            {
                "ca": "issuing",
                "serial": "0a1b",
                "status": "revoked",
                "revoked_at": 1_800_000_000,
                "reason": 1,
                "invalidity_date": None,
                "not_after": 1_900_000_000,
            },
            OutboxEvent(7, EventType.REVOKED, 2, 0x0A1B, 1_900_000_000, 1_800_000_000, 1),
        ),
        (
            "hold",
            {"ca": "c", "serial": "0a1b", "status": "hold", "revoked_at": 3, "reason": 6},
            OutboxEvent(7, EventType.HOLD, 2, 0x0A1B, 0, 3, 6),
        ),
        (
            "released",
            {"ca": "c", "serial": "0a1b", "status": "good", "not_after": None},
            OutboxEvent(7, EventType.RELEASED, 2, 0x0A1B, 0),
        ),
    ],
)
def test_rows_written_before_the_contract_still_read(event, payload, expected):
    """Version 1: the payload the CA wrote before (ca, serial, status and
    invalidity_date included, which nothing reads)."""
    assert decode(_row(event, payload)) == expected


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (_row("exploded", {"v": 2, "not_after": 1}), "outbox event 7: event type 'exploded' is"),
        (_row(serial="xyz"), "outbox event 7: serial column 'xyz' is not hexadecimal"),
        (_row(payload="{"), "outbox event 7: payload is not JSON"),
        (_row(payload="[1]"), "outbox event 7: payload is not a JSON object"),
        (_row(payload={"v": 3, "not_after": 1}), "outbox event 7: payload version 3 is not known"),
        (_row(payload={"v": "2", "not_after": 1}), "outbox event 7: payload version '2' is not"),
        (_row(payload={"v": 1, "not_after": 1}), "outbox event 7: payload version 1 is not known"),
        (_row(payload={"v": 2}), "outbox event 7: payload (version 2) of this issued event has no"),
        (
            _row(payload={"v": 2, "not_after": 1, "reason": 1}),
            "outbox event 7: payload (version 2) of this issued event has unknown key 'reason'",
        ),
        (
            _row("revoked", {"v": 2, "not_after": 1, "reason": 1}),
            "outbox event 7: payload (version 2) of this revoked event has no revoked_at",
        ),
        (
            _row("revoked", {"v": 2, "not_after": 1, "revoked_at": 1, "reason": 7}),
            "outbox event 7: reason 7 is not a CRLReason",
        ),
        (
            _row("revoked", {"v": 2, "not_after": 1, "revoked_at": "now", "reason": 1}),
            "outbox event 7: revoked_at must be an integer",
        ),
        (_row(payload={"v": 2, "not_after": True}), "outbox event 7: not_after must be an"),
        (
            _row(payload={"serial": "0a1b", "colour": 1}),
            "outbox event 7: payload (version 1) has unknown key 'colour'",
        ),
        (
            _row("hold", {"serial": "0a1b", "reason": 6}),
            "outbox event 7: payload (version 1) of this hold event has no revoked_at",
        ),
    ],
)
def test_a_bad_row_gets_an_exact_error(row, message):
    with pytest.raises(EventError) as caught:
        decode(row)
    assert str(caught.value).startswith(message), str(caught.value)


@pytest.mark.parametrize(
    ("args", "fields", "message"),
    [
        (("exploded",), {"not_after": 1}, "event type 'exploded' is not one of issued, revoked"),
        (("issued",), {"not_after": -1}, "not_after must be an integer from 0"),
        (("issued",), {"not_after": 1, "reason": 1}, "issued events carry no revoked_at or reason"),
        (("revoked",), {"not_after": 1, "reason": 1}, "revoked events need revoked_at"),
        (("hold",), {"not_after": 1, "revoked_at": 1, "reason": 11}, "reason must be an integer"),
        (("revoked",), {"not_after": 1, "revoked_at": 1, "reason": 7}, "reason 7 is not a"),
    ],
)
def test_the_encoder_refuses_what_would_not_decode(args, fields, message):
    with pytest.raises(EventError, match=message):
        encode_payload(*args, **fields)


def test_every_event_type_is_a_publish_protocol_event():
    """The publisher maps each outbox event to the VA's protocol, which takes it."""
    assert set(EVENT_TYPES) <= set(publish.EVENT_TYPES)
    events = []
    for seq, kind in enumerate(EventType, start=1):
        fields = {"revoked_at": 5, "reason": None} if kind.revocation else {}
        events.append(
            to_event(_row(kind.value, encode_payload(kind, not_after=9, **fields), id=seq))
        )
    assert events[1] == {
        "seq": 2,
        "type": "revoked",
        "issuer": 2,
        "serial": "a1b",
        "not_after": 9,
        "revoked_at": 5,
        "reason": -1,
    }
    batch = publish.parse_batch({"source": "s", "after": 0, "events": events})
    assert [e.type for e in batch.events] == list(EVENT_TYPES)
    assert to_protocol(OutboxEvent(1, EventType.ISSUED, 3, 255, 9)) == {
        "seq": 1,
        "type": "issued",
        "issuer": 3,
        "serial": "ff",
        "not_after": 9,
    }


def test_the_ca_writes_what_the_publisher_reads(pki):
    record = pki.issue("issuing", make_csr(), "tls-server")
    pki.revoke("issuing", record.serial, RevocationReason.keyCompromise)
    events = Outbox(pki.store.engine).read(0, 1000)
    issued, revoked = events[-2:]
    ca = pki.get_ca("issuing")
    assert issued == {
        "seq": issued["seq"],
        "type": "issued",
        "issuer": ca.id,
        "serial": f"{record.serial:x}",
        "not_after": int(record.not_after.timestamp()),
    }
    assert revoked["type"] == "revoked" and revoked["reason"] == 1
    with pki.store.read() as conn:
        row = conn.execute(outbox.select().where(outbox.c.id == revoked["seq"])).one()
    assert set(json.loads(row.payload)) == {"v", "not_after", "revoked_at", "reason"}


def test_the_publisher_waits_at_a_bad_row_and_goes_on_once_it_is_fixed(loop, tmp_path, pki):
    store = VAStore(tmp_path / "va")
    ca = pki.get_ca("issuing")
    with pki.store.transaction() as conn:
        bad = conn.execute(
            insert(outbox).values(
                ca_id=ca.id,
                serial="0" * 39 + "5",
                event="issued",
                payload='{"v": 9, "not_after": 1}',
                created_at_ms=0,
            )
        ).inserted_primary_key[0]
    service = Publisher(
        Outbox(pki.store.engine),
        [LocalTarget("va", store=store)],
        PublisherSettings(source="ca", max_backoff=0.2),
    )
    running = loop.spawn(service.run())
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not service.state["va"].failures:
            time.sleep(0.02)
        state = service.state["va"]
        assert f"outbox event {bad}: payload version 9 is not known" in state.last_error
        assert publish.counters(store, "ca")[0] < bad  # the row was not skipped
        with pki.store.transaction() as conn:
            conn.execute(
                update(outbox)
                .where(outbox.c.id == bad)
                .values(payload=encode_payload("issued", not_after=1))
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and publish.counters(store, "ca")[0] < bad:
            time.sleep(0.02)
        assert publish.counters(store, "ca")[0] == bad
    finally:
        service.stop()
        running.result(10)
