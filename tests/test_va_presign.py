"""Bulk pre-signing on several cores, and the refresher's BR 4.9.10 timing."""

import asyncio
import time

from cryptography.x509 import ocsp

from tests.va_fixtures import make_va
from va.app import presign_all, refresh_loop
from va.store import GOOD, StatusRecord, serial_bytes


def _responses(store, entry_id, serials, algorithm=1):
    with store.read() as txn:
        return {s: store.get_response(txn, entry_id, algorithm, s) for s in serials}


def test_presign_with_several_workers(tmp_path, service):
    env, thread = make_va(tmp_path, service, presign=False)
    thread.stop()
    store = env.server.responder.store
    entry = next(iter(env.server.responder.issuers.values()))
    extra = [
        (entry.id, serial_bytes(10_000 + i), StatusRecord(GOOD, 0, -1, 2_000_000_000))
        for i in range(300)
    ]
    store.apply(statuses=extra)
    counted = []
    signed = presign_all(store, [entry], (1, 2), workers=2, chunk=50, progress=counted.append)
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
    store = env.server.responder.store
    entries = list(env.server.responder.issuers.values())
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
        task = asyncio.run_coroutine_threadsafe(refresh_loop(env.server, settings), thread.loop)
        store = env.server.responder.store
        entry = next(iter(env.server.responder.issuers.values()))
        serial = serial_bytes(env.good)
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
    store = env.server.responder.store
    entry = next(iter(env.server.responder.issuers.values()))
    store.apply(
        statuses=[
            (entry.id, serial_bytes(20_000 + i), StatusRecord(GOOD, 0, -1, 2_000_000_000))
            for i in range(3000)
        ]
    )
    assert presign_all(store, [entry], (1,), should_stop=lambda: True) == 0
    serials = [s for s, _ in store.iter_status(entry.id)]
    assert not any(_responses(store, entry.id, serials).values())
    polls = []
    signed = presign_all(
        store, [entry], (1,), chunk=100, should_stop=lambda: polls.append(1) or len(polls) > 1
    )
    assert 0 < signed < len(serials)  # the first 1,024 scanned, then it stopped
