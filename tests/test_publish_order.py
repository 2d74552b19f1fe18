"""Ordering per serial: the VA's status record keeps the seq of the change
it holds, and events and snapshots replace a status only with a newer one.
Snapshots arrive in chunks; the last chunk of a complete one lifts the
source's high-water to its position."""

import struct

import pytest

from common.der import integer_content
from tests.test_publish import call, revoked_event, start_admin_server
from va import publish
from va.store import GOOD, HOLD, REVOKED, Signed, StatusRecord, StoredResponse, VAStore, status_key

OLD_FORMAT = struct.Struct(">Bqbq")  # the record before it kept a seq


def _raw(store, issuer, serial) -> bytes | None:
    with store.env.begin() as txn:
        return txn.get(status_key(issuer, serial), db=store.status_db)


def _record(store, issuer, serial):
    with store.read() as txn:
        return store.get_status(txn, issuer, serial)


def test_a_record_of_the_old_length_reads_as_seq_0_and_keeps_that_form(tmp_path):
    store = VAStore(tmp_path)
    old = OLD_FORMAT.pack(REVOKED, 1_700_000_000, 1, 1_800_000_000)
    store.write(lambda txn: txn.put(status_key(1, b"\x05"), old, db=store.status_db))
    record = _record(store, 1, b"\x05")
    assert record == StatusRecord(REVOKED, 1_700_000_000, 1, 1_800_000_000, 0)
    assert record.pack() == old  # seq 0 is written as it always was
    assert list(store.iter_status(1)) == [(b"\x05", record)]
    reader = store.reader()
    prefix = (1).to_bytes(4, "big")
    assert reader.status(prefix, b"\x05") == (REVOKED, 1_700_000_000, 1, 1_800_000_000)
    newer = record._replace(seq=9)
    store.write(lambda txn: store.put_newer(txn, 1, b"\x05", newer))
    assert len(_raw(store, 1, b"\x05")) == 26 and _record(store, 1, b"\x05") == newer
    # The hot path answers from the same first four fields, whatever the length.
    assert reader.status(prefix, b"\x05") == (REVOKED, 1_700_000_000, 1, 1_800_000_000)
    assert reader.statuses(prefix, [b"\x05", b"\x06"]) == [tuple(newer[:4]), None]


def test_responses_signed_from_an_old_record_are_stored(tmp_path):
    """store_signed compares the record's bytes: an old-format record packs
    back to the very bytes it was read from."""
    store = VAStore(tmp_path)
    old = OLD_FORMAT.pack(GOOD, 0, -1, 2_000_000_000)
    store.write(lambda txn: txn.put(status_key(1, b"\x07"), old, db=store.status_db))
    record = _record(store, 1, b"\x07")
    response = StoredResponse(10, 20, b"\x30\x00")
    assert store.store_signed([Signed(1, b"\x07", record, ((1, response),))]) == 1


@pytest.mark.parametrize(
    ("old", "new", "replaces"),
    [
        (None, StatusRecord(GOOD, 0, -1, 5, 0), True),
        (StatusRecord(GOOD, 0, -1, 5, 3), StatusRecord(REVOKED, 9, 1, 5, 4), True),
        (StatusRecord(REVOKED, 9, 1, 5, 4), StatusRecord(GOOD, 0, -1, 5, 3), False),
        (StatusRecord(REVOKED, 9, 1, 5, 4), StatusRecord(REVOKED, 9, 1, 5, 4), False),
        (StatusRecord(REVOKED, 9, 1, 5, 4), StatusRecord(GOOD, 0, -1, 5, 0), False),
        (StatusRecord(GOOD, 0, -1, 5, 0), StatusRecord(REVOKED, 9, 1, 5, 1), True),
        # Both of unknown order (an old store, an issued-only certificate):
        # the one delivered last wins, as before seq was kept.
        (StatusRecord(REVOKED, 9, 1, 5, 0), StatusRecord(GOOD, 0, -1, 5, 0), True),
        (StatusRecord(GOOD, 0, -1, 5, 0), StatusRecord(GOOD, 0, -1, 5, 0), False),
    ],
)
def test_the_apply_rule(old, new, replaces):
    assert new.replaces(old) is replaces


def _batch(store, source, events, after=0):
    batch = publish.parse_batch({"source": source, "after": after, "events": events})
    return publish.apply_batch(store, batch)


def _issued(seq, serial):
    return {"seq": seq, "type": "issued", "issuer": 1, "serial": f"{serial:x}", "not_after": 9}


def _chunk(statuses, *, snapshot="ab" * 16, chunk=0, position=100, last=True, complete=True):
    body = {
        "source": "ca",
        "position": position,
        "last": last,
        "complete": complete,
        "statuses": statuses,
    }
    return publish.parse_snapshot(snapshot, str(chunk), body)[1]


def _status(serial, seq, status="revoked", **fields):
    entry = {"issuer": 1, "serial": f"{serial:x}", "seq": seq, "status": status, "not_after": 9}
    if status != "good":
        entry.update(revoked_at=1_700_000_000, reason=1)
    entry.update(fields)
    return entry


def test_an_event_older_than_the_serials_change_changes_nothing(tmp_path):
    """A snapshot taken at 100 put serial 0x10's revocation (seq 40) in
    place; the events from 1 are then delivered again (the high-water was
    not lifted: a partial snapshot): the issuance of 0x10 at seq 3 and
    everything else older leave it revoked."""
    store = VAStore(tmp_path)
    chunk = _chunk([_status(0x10, 40)], complete=False)
    assert publish.apply_snapshot(store, "ca", chunk)["high_water"] == 0
    result = _batch(store, "ca", [_issued(3, 0x10), _issued(4, 0x11), revoked_event(40, 0x10)])
    assert (result["applied"], result["superseded"], result["high_water"]) == (3, 2, 40)
    assert _record(store, 1, b"\x10").status == REVOKED
    assert _record(store, 1, b"\x11") == StatusRecord(GOOD, 0, -1, 9, 4)
    assert publish.counters(store, "ca") == (40, 3)


def test_a_hold_released_and_held_again_ends_where_the_last_change_is(tmp_path):
    store = VAStore(tmp_path)
    hold = {**revoked_event(2, 0x20), "type": "hold"}
    released = {**_issued(3, 0x20), "type": "released"}
    again = {**revoked_event(5, 0x20), "type": "hold", "revoked_at": 1_800_000_000}
    _batch(store, "ca", [_issued(1, 0x20), hold, released, again])
    assert _record(store, 1, b"\x20") == StatusRecord(HOLD, 1_800_000_000, 6, 1_900_000_000, 5)
    # An older snapshot (at 3: released, seq 3) arrives late: nothing moves.
    chunk = _chunk([_status(0x20, 3, "good")], position=3)
    assert publish.apply_snapshot(store, "ca", chunk)["kept"] == 1
    assert _record(store, 1, b"\x20").seq == 5
    assert publish.counters(store, "ca") == (5, 4)  # the high-water never goes down


def test_a_complete_snapshot_lifts_the_high_water_at_its_last_chunk(tmp_path):
    store = VAStore(tmp_path)
    _batch(store, "ca", [_issued(1, 0x30), revoked_event(2, 0x31)])
    first = _chunk([_status(0x30, 0, "good"), _status(0x31, 2)], last=False)
    result = publish.apply_snapshot(store, "ca", first)
    assert (result["applied"], result["kept"], result["high_water"]) == (0, 2, 2)
    second = _chunk([_status(0x32, 70), _status(0x33, 0, "good")], chunk=1, last=False)
    assert publish.apply_snapshot(store, "ca", second)["applied"] == 2
    assert publish.apply_snapshot(store, "ca", second)["applied"] == 0  # sent again: once
    last = _chunk([], chunk=2)
    assert publish.apply_snapshot(store, "ca", last)["high_water"] == 100
    assert publish.apply_snapshot(store, "ca", last)["high_water"] == 100  # sent again
    assert publish.counters(store, "ca") == (100, 2)
    assert _record(store, 1, b"\x32") == StatusRecord(REVOKED, 1_700_000_000, 1, 9, 70)
    # Events the snapshot holds are skipped by the high-water; newer ones apply.
    result = _batch(store, "ca", [revoked_event(70, 0x32), revoked_event(101, 0x33)])
    assert (result["applied"], result["skipped"], result["high_water"]) == (1, 1, 101)
    assert _record(store, 1, b"\x33").seq == 101


def test_a_partial_snapshot_leaves_the_high_water(tmp_path):
    store = VAStore(tmp_path)
    _batch(store, "ca", [_issued(1, 0x40)])
    result = publish.apply_snapshot(store, "ca", _chunk([_status(0x40, 50)], complete=False))
    assert result == {"snapshot": "ab" * 16, "chunk": 0, "applied": 1, "kept": 0, "high_water": 1}
    assert publish.counters(store, "ca") == (1, 1)


def test_chunks_out_of_order_change_nothing(tmp_path):
    store = VAStore(tmp_path)
    with pytest.raises(publish.ProtocolError, match="send it again from chunk 0"):
        publish.apply_snapshot(store, "ca", _chunk([_status(0x50, 5)], chunk=1))
    publish.apply_snapshot(store, "ca", _chunk([_status(0x50, 5)], last=False))
    with pytest.raises(publish.ProtocolError, match="chunk 2 does not follow chunk 0"):
        publish.apply_snapshot(store, "ca", _chunk([_status(0x51, 5)], chunk=2))
    other = _chunk([_status(0x51, 5)], snapshot="cd" * 16, chunk=1)
    with pytest.raises(publish.ProtocolError, match="not the one in progress"):
        publish.apply_snapshot(store, "ca", other)
    moved = _chunk([_status(0x51, 5)], chunk=1, position=101)
    with pytest.raises(publish.ProtocolError, match="not the one in progress"):
        publish.apply_snapshot(store, "ca", moved)
    assert _record(store, 1, b"\x51") is None and publish.counters(store, "ca") == (0, 0)
    # Another source's snapshot is its own.
    with pytest.raises(publish.ProtocolError, match="send it again from chunk 0"):
        publish.apply_snapshot(store, "other", _chunk([_status(0x51, 5)], chunk=1))


@pytest.mark.parametrize(
    ("snapshot", "chunk", "body", "message"),
    [
        ("AB" * 16, "0", {}, "the snapshot id must be 32 lowercase hexadecimal digits"),
        ("ab" * 15, "0", {}, "the snapshot id must be 32"),
        ("ab" * 16, "-1", {}, "the chunk number must be a decimal integer"),
        ("ab" * 16, "0", [], "the body must be a JSON object"),
        ("ab" * 16, "0", {"position": 1}, "source must be"),
        ("ab" * 16, "0", {"source": "ca", "position": -1}, "snapshot: position must be"),
        (
            "ab" * 16,
            "0",
            {"source": "ca", "position": 1, "last": 1},
            "snapshot: last must be true or",
        ),
        (
            "ab" * 16,
            "0",
            {"source": "ca", "position": 1, "last": True, "complete": True, "statuses": {}},
            "statuses must be a list of at most 10000",
        ),
        ("ab" * 16, "0", [_status(1, 0, "valid")], "status 0: status must be one of good"),
        ("ab" * 16, "0", [_status(1, 101)], "status 0: seq 101 is past the snapshot's position"),
        ("ab" * 16, "0", [_status(1, 5, issuer=2**32)], "status 0: issuer must be below 2**32"),
        (
            "ab" * 16,
            "0",
            [{**_status(1, 5), "serial": "g"}],
            "status 0: serial must be hexadecimal",
        ),
        ("ab" * 16, "0", [_status(1, 5), _status(1, 5, reason=7)], "status 1: reason 7 is not"),
        ("ab" * 16, "0", [_status(1, 5, revoked_at=2**63)], "status 0: revoked_at must be"),
        ("ab" * 16, "0", [_status(1, 5), 3], "status 1: must be an object"),
    ],
)
def test_a_bad_chunk_gets_an_exact_error(snapshot, chunk, body, message):
    if isinstance(body, list) and body:
        body = {"source": "ca", "position": 100, "last": True, "complete": True, "statuses": body}
    with pytest.raises(publish.ProtocolError) as caught:
        publish.parse_snapshot(snapshot, chunk, body)
    assert str(caught.value).startswith(message), str(caught.value)


def test_snapshots_over_the_admin_listener(loop, tmp_path):
    store = VAStore(tmp_path / "lmdb")
    base, runner = start_admin_server(loop, store)
    url = f"{base}/publish/v2/snapshots/{'ab' * 16}"
    body = {
        "source": "ca",
        "position": 100,
        "last": True,
        "complete": True,
        "statuses": [_status(0x60, 7)],
    }
    try:
        assert call(f"{url}/0", "PUT", body, token=None)[0] == 401
        assert call(f"{url}/0", "PUT", body, token="x" * 43)[0] == 403
        assert store.count_status() == 0
        status, answer = call(f"{url}/1", "PUT", body)
        assert status == 400 and "send it again from chunk 0" in answer["message"]
        status, answer = call(f"{url}/0", "PUT", {**body, "position": 5})
        assert status == 400 and "past the snapshot's position" in answer["message"]
        assert store.count_status() == 0 and publish.counters(store, "ca") == (0, 0)
        status, answer = call(f"{url}/0", "PUT", body)
        assert status == 200 and answer["applied"] == 1 and answer["high_water"] == 100
        assert _record(store, 1, integer_content(0x60)).seq == 7
        status, answer = call(f"{base}/publish/v2/status?source=ca")
        assert answer["high_water"] == 100
    finally:
        loop.run(runner.cleanup())
