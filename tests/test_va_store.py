"""The VA's LMDB store: schema round trips, atomic batches, a full map."""

import multiprocessing

import pytest

from common.der import integer_content
from va.store import (
    GOOD,
    HOLD,
    REVOKED,
    Signed,
    StatusRecord,
    StoredResponse,
    StoreFullError,
    VAStore,
)


def test_serials_are_der_integer_content():
    assert integer_content(1) == b"\x01"
    assert integer_content(0x80) == b"\x00\x80"  # positive: a leading zero octet
    assert integer_content(0x7F) == b"\x7f"
    assert integer_content(2**127 - 1) == b"\x7f" + b"\xff" * 15


def test_status_and_response_round_trip(tmp_path):
    store = VAStore(tmp_path)
    record = StatusRecord(REVOKED, 1_700_000_000, 1, 1_800_000_000)
    stored = StoredResponse(10, 20, b"\x30\x03\x0a\x01\x00")
    store.apply(statuses=[(7, b"\x01\x02", record)], responses=[(7, 1, b"\x01\x02", stored)])
    with store.read() as txn:
        assert store.get_status(txn, 7, b"\x01\x02") == record
        assert store.get_status(txn, 8, b"\x01\x02") is None
        assert store.get_response(txn, 7, 1, b"\x01\x02") == stored
        assert store.get_response(txn, 7, 2, b"\x01\x02") is None
    store.apply(responses=[(7, 1, b"\x01\x02", None)])
    with store.read() as txn:
        assert store.get_response(txn, 7, 1, b"\x01\x02") is None
    assert list(store.iter_status(7)) == [(b"\x01\x02", record)]
    assert list(store.iter_status(8)) == []


def test_map_grows_when_full(tmp_path):
    store = VAStore(tmp_path, map_size=256 * 1024, max_map_size=64 << 20)
    records = [(1, integer_content(i), StatusRecord(GOOD, 0, -1, i)) for i in range(1, 20001)]
    store.apply(statuses=records)
    assert store.count_status() == 20000
    assert store.env.info()["map_size"] > 256 * 1024


def test_full_map_beyond_the_cap_writes_nothing(tmp_path):
    store = VAStore(tmp_path, map_size=128 * 1024, max_map_size=128 * 1024)
    store.apply(statuses=[(1, b"\x01", StatusRecord(HOLD, 5, 6, 7))])
    big = [(1, integer_content(i), StatusRecord(GOOD, 0, -1, i)) for i in range(2, 30000)]
    with pytest.raises(StoreFullError, match="nothing was written"):
        store.apply(statuses=big)
    assert store.count_status() == 1  # the failed batch left no trace


def _read_in_child(path, queue):
    store = VAStore(path, readonly=True)
    with store.read() as txn:
        queue.put(store.get_status(txn, 3, b"\x05"))


def test_another_process_reads_what_was_committed(tmp_path):
    store = VAStore(tmp_path)
    store.apply(statuses=[(3, b"\x05", StatusRecord(REVOKED, 1, 4, 2))])
    queue = multiprocessing.get_context("spawn").Queue()
    child = multiprocessing.get_context("spawn").Process(
        target=_read_in_child, args=(tmp_path, queue)
    )
    child.start()
    child.join(30)
    assert queue.get(timeout=5) == StatusRecord(REVOKED, 1, 4, 2)


def test_iter_status_survives_map_growth_between_items(tmp_path):
    """Pre-signing writes while it iterates; when a write grows the LMDB map,
    every open transaction of the process ends. The iteration must go on,
    in order, with nothing lost or repeated."""
    from va.store import GOOD, StatusRecord, VAStore

    store = VAStore(tmp_path / "lmdb", map_size=1 << 20)  # 1 MiB: grows quickly
    serials = [integer_content(i) for i in range(1, 25_001)]
    store.apply(statuses=[(1, s, StatusRecord(GOOD, 0, -1, 2_000_000_000)) for s in serials])
    seen = []
    for serial, _record in store.iter_status(1, batch=1000):
        seen.append(serial)
        if len(seen) % 5000 == 0:  # enough to force the map to double
            store.put_crl("big", 1, 2, 3, b"\x00" * (2 << 20))
    assert seen == sorted(serials)
    store.close()


def _schedule(store):
    return store.schedule.pending(), [
        (d.at, d.issuer_id, d.hash_algorithm, d.serial) for d in store.schedule.due(2**62)
    ]


def test_the_schedule_follows_statuses_and_responses(tmp_path):
    """A status change leaves the serial pending and takes its responses and
    their refresh points with it; a stored response is due at half its
    validity; entries come out in time order."""
    store = VAStore(tmp_path)
    good = StatusRecord(GOOD, 0, -1, 2_000_000_000)
    store.apply(statuses=[(1, b"\x05", good), (1, b"\x06", good)])
    assert _schedule(store) == ([(1, b"\x05"), (1, b"\x06")], [])
    signed = [
        Signed(
            1,
            b"\x05",
            good,
            [(1, StoredResponse(100, 300, b"a")), (2, StoredResponse(100, 500, b"b"))],
        ),
        Signed(1, b"\x06", good, [(1, StoredResponse(0, 100, b"c"))]),
    ]
    assert store.store_signed(signed) == 3
    assert _schedule(store) == (
        [],
        [(50, 1, 1, b"\x06"), (200, 1, 1, b"\x05"), (300, 1, 2, b"\x05")],
    )
    assert [d.serial for d in store.schedule.due(200)] == [b"\x06", b"\x05"]
    assert store.schedule.next_due() == 50
    # Re-signing replaces the refresh point; it does not add one.
    store.store_signed([Signed(1, b"\x06", good, [(1, StoredResponse(400, 600, b"d"))])])
    assert store.schedule.next_due() == 200
    store.apply(statuses=[(1, b"\x05", StatusRecord(REVOKED, 7, 1, 2_000_000_000))])
    assert _schedule(store) == ([(1, b"\x05")], [(500, 1, 1, b"\x06")])
    with store.read() as txn:
        assert store.get_response(txn, 1, 1, b"\x05") is None
        assert store.get_response(txn, 1, 2, b"\x05") is None
    store.apply(responses=[(1, 1, b"\x06", None)])
    assert _schedule(store) == ([(1, b"\x05")], [])


def test_responses_signed_from_a_status_that_changed_are_not_stored(tmp_path):
    """The refresher signs outside the write lock: a publish that changes the
    status meanwhile must win, or a revoked serial would be answered good."""
    store = VAStore(tmp_path)
    good = StatusRecord(GOOD, 0, -1, 2_000_000_000)
    store.apply(statuses=[(1, b"\x05", good)])
    signed_from_good = Signed(1, b"\x05", good, [(1, StoredResponse(0, 100, b"good"))])
    store.apply(statuses=[(1, b"\x05", StatusRecord(REVOKED, 7, 1, 2_000_000_000))])
    assert store.store_signed([signed_from_good]) == 0
    with store.read() as txn:
        assert store.get_response(txn, 1, 1, b"\x05") is None
    assert store.schedule.pending() == [(1, b"\x05")]  # still to sign, from the new status
    assert store.schedule.next_due() is None


def test_a_due_entry_is_consumed_even_when_its_response_is_gone(tmp_path):
    store = VAStore(tmp_path)
    good = StatusRecord(GOOD, 0, -1, 2_000_000_000)
    store.apply(statuses=[(1, b"\x05", good)])
    store.store_signed([Signed(1, b"\x05", good, [(1, StoredResponse(0, 100, b"r"))])])
    (due,) = store.schedule.due(100)
    store.apply(statuses=[(1, b"\x05", StatusRecord(HOLD, 7, -1, 2_000_000_000))])
    assert store.store_signed([Signed(1, b"\x05", good, [], (due.key,))]) == 0
    assert store.schedule.next_due() is None


def test_the_schedule_is_rebuilt_from_stored_responses(tmp_path):
    store = VAStore(tmp_path)
    good = StatusRecord(GOOD, 0, -1, 2_000_000_000)
    serials = [integer_content(i) for i in range(1, 2001)]
    store.apply(statuses=[(1, s, good) for s in serials])
    store.store_signed(
        [Signed(1, s, good, [(2, StoredResponse(i, i + 10, b"r"))]) for i, s in enumerate(serials)]
    )
    before = _schedule(store)
    store.write(lambda txn: txn.drop(store.due_db, delete=False))
    assert store.schedule.next_due() is None
    assert store.rebuild_due(batch=300) == 2000
    assert _schedule(store) == before


@pytest.mark.parametrize(
    "stored_before",
    [(), (0,), (9,), (4,), (0, 9), (3, 4, 5), tuple(range(10))],
    ids=["none", "first", "last", "middle", "ends", "run", "all"],
)
def test_a_batch_of_new_and_stored_responses(tmp_path, stored_before):
    """Responses are written in key order, new keys in one putmulti; keys
    stored before (wherever they fall in the batch) are replaced and their
    old refresh points retired, and keys given twice keep the last."""
    store = VAStore(tmp_path)
    good = StatusRecord(GOOD, 0, -1, 2_000_000_000)
    serials = [integer_content(100 + i) for i in range(10)]
    store.apply(statuses=[(1, serial, good) for serial in serials])
    store.store_signed(
        [Signed(1, serials[i], good, ((1, StoredResponse(0, 100, b"old")),)) for i in stored_before]
    )
    batch = [
        Signed(1, serial, good, ((1, StoredResponse(200, 400, b"new")),)) for serial in serials
    ]
    batch[5] = batch[5]._replace(
        responses=(
            (1, StoredResponse(200, 400, b"first")),
            (1, StoredResponse(200, 600, b"second")),
        )
    )
    assert store.store_signed(batch) == 11
    with store.read() as txn:
        found = {s: store.get_response(txn, 1, 1, s) for s in serials}
    assert {s: (r.this_update, r.next_update, r.der) for s, r in found.items()} == {
        s: (200, 600, b"second") if i == 5 else (200, 400, b"new") for i, s in enumerate(serials)
    }
    assert sorted(_schedule(store)[1]) == sorted(
        (400 if i == 5 else 300, 1, 1, s) for i, s in enumerate(serials)
    )


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077], ids=["000", "022", "077"])
def test_the_store_makes_its_directory_and_parents_private(tmp_path, umask):
    """The LMDB directory and each parent made for it are 0700 whatever the
    umask; a directory that was there before keeps its mode."""
    import os
    import stat

    tmp_path.chmod(0o750)
    old = os.umask(umask)
    try:
        VAStore(tmp_path / "va" / "lmdb").close()
    finally:
        os.umask(old)
    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "va", tmp_path / "va" / "lmdb")}
    assert set(modes.values()) == {0o700}, modes
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o750
    files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "va" / "lmdb").iterdir()}
    assert files == {"data.mdb": 0o600, "lock.mdb": 0o600}


def test_a_store_with_readable_files_is_made_private_when_opened(tmp_path):
    import stat

    VAStore(tmp_path / "lmdb").close()
    for name in ("data.mdb", "lock.mdb"):
        (tmp_path / "lmdb" / name).chmod(0o644)
    VAStore(tmp_path / "lmdb").close()
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "lmdb").iterdir()}
    assert modes == {"data.mdb": 0o600, "lock.mdb": 0o600}
