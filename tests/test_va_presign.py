"""Bulk pre-signing on several cores, and the refresher's BR 4.9.10 timing."""

import asyncio
import gc
import time

import pytest
from cryptography.x509 import ocsp

from common.der import integer_content
from tests.va_fixtures import make_va
from va.app import refresh_loop
from va.presign import presign_all, refresh
from va.schedule import Item
from va.store import GOOD, REVOKED, StatusRecord, StoreFullError

NOW = 1_900_000_000
pytestmark = pytest.mark.twin  # through the façades: `make test-python` runs it on the twins


def _responses(store, entry_id, serials, algorithm=1):
    with store.read() as txn:
        return {s: store.get_response(txn, entry_id, algorithm, s) for s in serials}


def test_presign_with_several_workers(tmp_path, service):
    env, thread = make_va(tmp_path, service, presign=False)
    thread.stop()
    store = env.serving.store
    entry = env.serving.entries[0]
    extra = [
        (entry.id, integer_content(10_000 + i), StatusRecord(GOOD, 0, -1, 2_000_000_000))
        for i in range(300)
    ]
    store.apply(statuses=extra)
    counted = []
    signed = presign_all(
        store, [entry], (1, 2), now=NOW, workers=2, chunk=50, progress=counted.append
    )
    total = store.count_status()
    assert signed == sum(counted) == total * 2
    serials = [s for s, _ in store.iter_status(entry.id)]
    for algorithm in (1, 2):
        found = _responses(store, entry.id, serials, algorithm)
        assert all(found.values())
        for serial, stored in list(found.items())[:20]:
            response = ocsp.load_der_ocsp_response(stored.der)
            assert response.serial_number == int.from_bytes(serial, "big", signed=True)


def test_only_stale_follows_the_half_validity_rule(tmp_path, service):
    env, thread = make_va(tmp_path, service, presign=False)
    thread.stop()
    store = env.serving.store
    entries = env.serving.entries
    validity = entries[0].validity
    t0 = 1_900_000_000
    first = presign_all(store, entries, (1,), now=t0)
    assert first == store.count_status()
    assert presign_all(store, entries, (1,), now=t0 + validity // 2 - 1, only_stale=True) == 0
    assert presign_all(store, entries, (1,), now=t0 + validity // 2, only_stale=True) == first


def test_refresher_signs_what_is_missing(tmp_path, service):
    env, thread = make_va(tmp_path, service, presign=False)
    try:
        from dataclasses import replace

        settings = replace(env.settings, refresh_seconds=0.2)
        serving = replace(env.serving, settings=settings)
        task = asyncio.run_coroutine_threadsafe(refresh_loop(serving), thread.loop)
        store = env.serving.store
        entry = env.serving.entries[0]
        serial = integer_content(env.good)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(
            _responses(store, entry.id, [serial]).values()
        ):
            time.sleep(0.1)
        assert all(_responses(store, entry.id, [serial]).values())
        task.cancel()
    finally:
        thread.stop()


def test_a_stopping_worker_ends_the_scan(tmp_path, service):
    """``should_stop`` ends a scan early (a VA stopping must not wait for a
    refresher walking millions of statuses); nothing half-written."""
    env, thread = make_va(tmp_path, service, presign=False)
    thread.stop()
    store = env.serving.store
    entry = env.serving.entries[0]
    store.apply(
        statuses=[
            (entry.id, integer_content(20_000 + i), StatusRecord(GOOD, 0, -1, 2_000_000_000))
            for i in range(3000)
        ]
    )
    assert presign_all(store, [entry], (1,), now=NOW, should_stop=lambda: True) == 0
    serials = [s for s, _ in store.iter_status(entry.id)]
    assert not any(_responses(store, entry.id, serials).values())
    polls = []
    signed = presign_all(
        store,
        [entry],
        (1,),
        now=NOW,
        chunk=100,
        should_stop=lambda: polls.append(1) or len(polls) > 1,
    )
    assert 0 < signed < len(serials)  # the first 1,024 scanned, then it stopped


def _stopped_va(tmp_path, service):
    """A VA with nothing pre-signed, not serving: (env, store, issuer entries)."""
    env, thread = make_va(tmp_path, service, presign=False)
    thread.stop()
    return env, env.serving.store, env.serving.entries


def _no_full_scan(store, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the refresher scanned every status")

    monkeypatch.setattr(store, "iter_status", refuse)


def test_the_refresher_reads_the_schedule_not_the_store(tmp_path, service, monkeypatch):
    """Once pre-signed, a refresh signs only the changed serial and what is
    due: its cost follows the changes, not the store's size (10M statuses)."""
    env, store, entries = _stopped_va(tmp_path, service)
    entry = entries[0]
    t0 = int(time.time())
    assert presign_all(store, entries, (1, 2), now=t0) == store.count_status() * 2
    _no_full_scan(store, monkeypatch)
    assert refresh(store, entries, (1, 2), now=t0 + 1) == 0
    serial = integer_content(env.good)
    store.apply(statuses=[(entry.id, serial, StatusRecord(REVOKED, t0, 1, 2_000_000_000))])
    assert refresh(store, entries, (1, 2), now=t0 + 2) == 2
    for algorithm in (1, 2):
        stored = _responses(store, entry.id, [serial], algorithm)[serial]
        response = ocsp.load_der_ocsp_response(stored.der)
        assert response.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert store.schedule.pending() == []
    assert refresh(store, entries, (1, 2), now=t0 + 3) == 0
    # Half the validity later everything is due, in time order.
    half = t0 + entry.validity // 2
    assert refresh(store, entries, (1, 2), now=half) == (store.count_status() - 1) * 2
    assert store.schedule.next_due() == half + 2  # the serial re-signed at t0 + 2


def test_a_store_without_a_schedule_is_reconciled_once(tmp_path, service, monkeypatch):
    """A store written before the schedule existed (or for other hash
    algorithms): one full scan signs only what is missing, then the
    schedule takes over."""
    env, store, entries = _stopped_va(tmp_path, service)
    entry = entries[0]
    t0 = int(time.time())
    total = store.count_status()
    presign_all(store, entries, (1,), now=t0)
    missing = integer_content(env.revoked)
    store.apply(responses=[(entry.id, 1, missing, None)])

    def forget_schedule(txn):
        txn.drop(store.due_db, delete=False)
        txn.drop(store.pending_db, delete=False)
        txn.delete(b"refresh:schedule", db=store.meta_db)

    store.write(forget_schedule)
    assert refresh(store, entries, (1,), now=t0 + 1) == 1
    assert _responses(store, entry.id, [missing])[missing] is not None
    assert store.schedule.built_for() == {"version": 1, "algorithms": [1]}
    assert len(store.schedule.due(2**62)) == total
    # SHA-256 CertIDs added to the configuration: reconciled once more,
    # signing only what is missing.
    assert refresh(store, entries, (1, 2), now=t0 + 2) == total
    assert len(store.schedule.due(2**62)) == 2 * total
    _no_full_scan(store, monkeypatch)
    assert refresh(store, entries, (1, 2), now=t0 + 3) == 0


def test_a_failed_store_ends_the_pass_and_restores_the_collector(tmp_path, service, monkeypatch):
    """Chunks are stored by a writer thread while the next is signed: a store
    that fails (a full map) ends the pass with that error, chunks stored
    before it stay, none after it is written, and the cycle collector's
    thresholds come back as they were."""
    env, thread = make_va(tmp_path, service, presign=False)
    thread.stop()
    store = env.serving.store
    entry = env.serving.entries[0]
    good = StatusRecord(GOOD, 0, -1, 2_000_000_000)
    store.apply(statuses=[(entry.id, integer_content(20_000 + i), good) for i in range(40)])
    thresholds = gc.get_threshold()
    seen, real = [], store.store_signed

    def store_signed(signed):
        seen.append(gc.get_threshold())
        if len(seen) == 3:
            raise StoreFullError("LMDB map full; nothing was written")
        return real(signed)

    monkeypatch.setattr(store, "store_signed", store_signed)
    with pytest.raises(StoreFullError, match="nothing was written"):
        presign_all(store, [entry], (1,), now=NOW, chunk=10)
    assert gc.get_threshold() == thresholds
    assert seen[0][0] >= 50_000  # collections were rarer during the pass
    assert len(seen) == 3  # the pass ended at the failed chunk
    serials = [s for s, _ in store.iter_status(entry.id)]
    stored = [s for s, r in _responses(store, entry.id, serials).items() if r is not None]
    assert stored == serials[:20]  # the first two chunks, in serial order


def test_a_chunk_signs_each_serial_under_its_own_algorithms(tmp_path, service):
    """A refresh chunk may ask different hash algorithms per serial (due
    entries) or none (a status gone since it was scheduled); a full pass asks
    the same for all. Either way each serial gets a verified response for
    exactly its algorithms, in a chunk of its own or among others."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from va import presign

    env, thread = make_va(tmp_path, service, presign=False)
    thread.stop()
    store = env.serving.store
    entry = env.serving.entries[0]
    serials = [s for s, _ in store.iter_status(entry.id)][:3]
    with store.read() as txn:
        records = [store.get_status(txn, entry.id, s) for s in serials]
    items = [
        Item(serials[0], records[0], (1, 2), ()),
        Item(serials[1], records[1], (2,), (b"due key",)),
        Item(serials[2], None, (), ()),
        Item(serials[2], records[2], (1,), ()),
    ]
    presign._WORKER_ENTRIES[entry.id] = entry
    public_key = entry.signer.certificate.public_key()
    now = int(time.time())
    for chunk in (items, [items[0]] * 3, [items[2]] * 2, items[1:2], []):
        signed = presign._sign_chunk((entry.id, chunk, now))
        assert [(s.serial, s.record, s.due_keys) for s in signed] == [
            (item.serial, item.record, item.due_keys) for item in chunk
        ]
        for item, result in zip(chunk, signed, strict=True):
            assert sorted(algorithm for algorithm, _ in result.responses) == sorted(item.algorithms)
            for algorithm, stored in result.responses:
                response = ocsp.load_der_ocsp_response(stored.der)
                assert response.serial_number == int.from_bytes(item.serial, "big", signed=True)
                assert response.hash_algorithm.name == {1: "sha1", 2: "sha256"}[algorithm]
                assert stored.this_update == now
                public_key.verify(
                    response.signature, response.tbs_response_bytes, ec.ECDSA(hashes.SHA256())
                )
