"""Pre-signed responses: signing them all, and keeping them fresh.

A full pre-signing signs every known serial under each configured CertID
hash algorithm. After that the refresher works from the store's schedule
(``va/store.py``): serials whose status is new or changed (``pending``) and
responses past half their validity (``due``, CA/B Forum BR 4.9.10), so its
cost follows what changed, not the size of the store. A store whose schedule
is missing, or was built for other hash algorithms, is reconciled once by a
full scan.

Signing runs in this process or in forked workers (the keys never leave
memory); one thread of this process is the single LMDB writer, one
transaction per chunk, storing a chunk while the next is signed. Each signed
response is stored only if the status it was signed from still holds
(``VAStore.store_signed``).
"""

import collections
import contextlib
import gc
import itertools
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from va.responder import IssuerEntry, presign_many, response_data_many
from va.store import (
    SCHEDULE_VERSION,
    Signed,
    StatusRecord,
    VAStore,
    refresh_point,
    status_key,
)

# A job: (issuer id, [(serial, record, hash algorithms, schedule keys)], now).
Job = tuple[int, list[tuple[bytes, StatusRecord | None, tuple[int, ...], tuple]], int]

_WORKER_ENTRIES: dict[int, IssuerEntry] = {}


def _sign_chunk(job: Job) -> list[Signed]:
    """Sign one chunk of one issuer's serials (in this process or a worker).
    Serials asking the same hash algorithms (all of them in a full pass or
    for pending serials; due entries may differ) are signed together."""
    issuer_id, items, now = job
    entry = _WORKER_ENTRIES[issuer_id]
    if all(item[2] == items[0][2] for item in items):
        return _sign_alike(entry, items, now)
    groups: dict[tuple[int, ...], list[int]] = {}  # item indexes per algorithms
    for index, item in enumerate(items):
        groups.setdefault(item[2], []).append(index)
    signed: list = [None] * len(items)
    for indexes in groups.values():
        alike = _sign_alike(entry, [items[index] for index in indexes], now)
        for index, result in zip(indexes, alike, strict=True):
            signed[index] = result
    return signed


def _sign_alike(entry: IssuerEntry, items: list, now: int) -> list[Signed]:
    """Sign serials that all ask the same hash algorithms: every ResponseData
    first (one native call per algorithm), then the signatures in a row
    (``presign_many``), assembled by column."""
    algs = items[0][2] if items else ()
    serials = [item[0] for item in items]
    records = [item[1] for item in items]
    tbs_list: list[bytes] = []
    for algorithm in algs:
        tbs_list += response_data_many(entry, algorithm, serials, records, now)
    responses = presign_many(entry, tbs_list, now)
    count = len(items)
    # One column of (algorithm, response) per algorithm; a row per serial.
    columns = [
        zip(itertools.repeat(algorithm), responses[offset * count : (offset + 1) * count])
        for offset, algorithm in enumerate(algs)
    ]
    rows = zip(*columns, strict=True) if columns else itertools.repeat((), count)
    return [
        Signed(entry.id, serial, record, pairs, due_keys)
        for (serial, record, _, due_keys), pairs in zip(items, rows, strict=True)
    ]


def _run(
    store: VAStore,
    entries: list[IssuerEntry],
    jobs: Iterator[Job],
    workers: int,
    progress: Callable[[int], None],
) -> int:
    """Sign every job and store the results; return how many were stored.

    Signing and storing overlap: one writer thread stores a chunk (one
    transaction) while the next chunk is signed. LMDB releases the GIL
    while a commit writes its pages and syncs, so on one core the disk's
    time hides behind the signatures; at most one chunk waits to be stored.
    """
    _WORKER_ENTRIES.clear()
    _WORKER_ENTRIES.update({entry.id: entry for entry in entries})
    stored = 0
    with (
        _rarer_collections(),
        ThreadPoolExecutor(1, thread_name_prefix="revoca-presign-store") as writer,
    ):
        storing: Future | None = None
        for signed in _signed_chunks(jobs, workers):
            if storing is not None:
                stored += storing.result()
            progress(sum(len(item.responses) for item in signed))
            storing = writer.submit(store.store_signed, signed)
        if storing is not None:
            stored += storing.result()
    return stored


@contextlib.contextmanager
def _rarer_collections(young: int = 50_000) -> Iterator[None]:
    """Run with the cycle collector's youngest generation collected every
    ``young`` container allocations instead of every 700. Signing makes a few
    tuples per response, none in a cycle, and a chunk lives until it is
    stored: every collection walks it for nothing (about 1.5 µs a response,
    measured in-process). Cycles elsewhere are still collected, later; the
    thresholds are restored when the pass ends."""
    thresholds = gc.get_threshold()
    gc.set_threshold(max(young, thresholds[0]), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def _signed_chunks(jobs: Iterator[Job], workers: int) -> Iterator[list[Signed]]:
    """Each job signed, in order: in this process, or in forked workers."""
    if workers <= 1:
        yield from map(_sign_chunk, jobs)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # fork: the workers inherit the loaded keys; they never touch LMDB.
    # At most two jobs per worker in flight (Executor.map would read every
    # status into jobs before the first result: ten million in memory).
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        in_flight: collections.deque = collections.deque()
        for job in jobs:
            in_flight.append(pool.submit(_sign_chunk, job))
            if len(in_flight) >= 2 * workers:
                yield in_flight.popleft().result()
        while in_flight:
            yield in_flight.popleft().result()


def presign_all(
    store: VAStore,
    entries: list[IssuerEntry],
    algorithms: tuple[int, ...],
    *,
    now: int | None = None,
    only_stale: bool = False,
    progress: Callable[[int], None] = lambda n: None,
    chunk: int = 4000,  # serials per job and per LMDB commit (each commit is an fsync)
    workers: int = 1,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Sign a response for every known serial and hash algorithm.

    ``only_stale`` signs only what the schedule says is pending or due (see
    ``refresh``). ``workers`` > 1 signs in that many forked processes.
    ``should_stop`` is polled while scanning (a stopping worker must not wait
    for a scan of millions). Returns how many responses were stored.
    """
    now = int(time.time()) if now is None else now
    if only_stale:
        return refresh(
            store,
            entries,
            algorithms,
            now=now,
            progress=progress,
            chunk=chunk,
            workers=workers,
            should_stop=should_stop,
        )
    return _full_pass(store, entries, algorithms, now, progress, chunk, workers, should_stop, False)


def refresh(
    store: VAStore,
    entries: list[IssuerEntry],
    algorithms: tuple[int, ...],
    *,
    now: int | None = None,
    progress: Callable[[int], None] = lambda n: None,
    chunk: int = 4000,
    workers: int = 1,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Sign what is pending (new or changed statuses, under every configured
    hash algorithm) and what is due (past half its validity, under its own).
    A store without a current schedule is reconciled first by one full scan.
    Returns how many responses were stored."""
    now = int(time.time()) if now is None else now
    known = {entry.id for entry in entries}
    stored = 0
    if _schedule_stale(store, algorithms):
        stored += _full_pass(
            store, entries, algorithms, now, progress, chunk, workers, should_stop, True
        )
        if should_stop():
            return stored

    def pending_jobs() -> Iterator[Job]:
        start = b""
        while not should_stop():
            keys = store.pending(start, limit=chunk)
            if not keys:
                return
            start = status_key(*keys[-1]) + b"\x00"
            yield from _jobs_for(store, now, known, ((i, s, algorithms, ()) for i, s in keys))
            if len(keys) < chunk:
                return

    def due_jobs() -> Iterator[Job]:
        start = b""
        while not should_stop():
            found = store.due(now, start, limit=chunk)
            if not found:
                return
            start = found[-1].key + b"\x00"
            by_serial: dict[tuple[int, bytes], tuple[list, list]] = {}
            for due in found:
                algs, keys = by_serial.setdefault((due.issuer_id, due.serial), ([], []))
                algs.append(due.hash_algorithm)
                keys.append(due.key)
            yield from _jobs_for(
                store,
                now,
                known,
                ((i, s, tuple(algs), tuple(keys)) for (i, s), (algs, keys) in by_serial.items()),
            )
            if len(found) < chunk:
                return

    stored += _run(store, entries, pending_jobs(), workers, progress)
    stored += _run(store, entries, due_jobs(), workers, progress)
    return stored


def _jobs_for(store: VAStore, now: int, known: set[int], wanted) -> Iterator[Job]:
    """One job per issuer for (issuer, serial, algorithms, schedule keys),
    with each serial's current status (None: not known; nothing to sign)."""
    by_issuer: dict[int, list] = {}
    with store.read() as txn:
        for issuer_id, serial, algs, due_keys in wanted:
            if issuer_id not in known:  # not served here: left as it is
                continue
            record = store.get_status(txn, issuer_id, serial)
            algs = algs if record is not None else ()
            by_issuer.setdefault(issuer_id, []).append((serial, record, algs, due_keys))
    for issuer_id, items in by_issuer.items():
        yield (issuer_id, items, now)


def _schedule_stale(store: VAStore, algorithms: tuple[int, ...]) -> bool:
    schedule = store.schedule()
    return schedule != {"version": SCHEDULE_VERSION, "algorithms": sorted(algorithms)}


def _ensure_schedule(store: VAStore) -> None:
    schedule = store.schedule()
    if schedule is None or schedule.get("version") != SCHEDULE_VERSION:
        store.rebuild_due()


def _full_pass(
    store, entries, algorithms, now, progress, chunk, workers, should_stop, only_missing: bool
) -> int:
    """Make sure the schedule exists, then sign every serial (or, with
    ``only_missing``, what is missing or past its refresh point) under the
    configured hash algorithms; the schedule is current once a pass ends."""
    _ensure_schedule(store)
    stopped = []

    def jobs() -> Iterator[Job]:
        for entry in entries:
            items = []
            for scanned, (serial, record) in enumerate(store.iter_status(entry.id)):
                if scanned % 1024 == 0 and should_stop():
                    stopped.append(True)
                    return
                algs = (
                    _stale(store, entry.id, algorithms, serial, now) if only_missing else algorithms
                )
                if algs:
                    items.append((serial, record, algs, ()))
                if len(items) == chunk:
                    yield (entry.id, items, now)
                    items = []
            if items:
                yield (entry.id, items, now)

    stored = _run(store, entries, jobs(), workers, progress)
    if not stopped:
        store.set_schedule(algorithms)
    return stored


def _stale(store: VAStore, issuer_id: int, algorithms, serial: bytes, now: int) -> tuple:
    """The hash algorithms whose response is missing or past its refresh point."""
    with store.read() as txn:
        return tuple(
            algorithm
            for algorithm in algorithms
            if (stored := store.get_response(txn, issuer_id, algorithm, serial)) is None
            or now >= refresh_point(stored.this_update, stored.next_update)
        )
