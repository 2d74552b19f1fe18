"""Pre-signed responses: signing them all, and keeping them fresh.

A full pre-signing signs every known serial under each configured CertID
hash algorithm. After that the refresher works from the store's schedule
(``va/schedule.py``): serials whose status is new or changed (``pending``) and
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
import functools
import gc
import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from va import fastocsp as core
from va.issuers import IssuerEntry
from va.responder import encoded_status
from va.schedule import Item, refresh_point
from va.store import Signed, StatusRecord, StoredResponse, VAStore

# A job: (issuer id, items to sign, now).
Job = tuple[int, list[Item], int]

_WORKER_ENTRIES: dict[int, IssuerEntry] = {}


def response_data_many(
    entry: IssuerEntry,
    algorithm: int,
    serials: list[bytes],
    records: list[StatusRecord | None],
    now: int,
) -> list[bytes]:
    """The ResponseData of a pre-signed response for each serial (record:
    its status, None for a serial the VA does not know), one native call."""
    unissued = entry.unissued_status
    if unissued is None:
        if any(record is None for record in records):
            raise ValueError(f"issuer {entry.name} answers unauthorized for unknown serials")
        unissued = (b"", b"")
    cert_statuses = [unissued[0] if r is None else encoded_status(r) for r in records]
    extensions = [unissued[1] if r is None else b"" for r in records]
    name_hash, key_hash = entry.hashes[algorithm]
    return core.encode_response_data_many(
        entry.responder_id,
        now,
        algorithm,
        name_hash,
        key_hash,
        serials,
        cert_statuses,
        now,
        now + entry.validity,
        extensions,
    )


def presign_many(entry: IssuerEntry, tbs_list: list[bytes], now: int) -> list[StoredResponse]:
    """Sign ResponseData values back to back, then wrap each: in a row the
    key's precomputed tables stay in the core's cache (a P-256 signature
    between other work costs up to 15% more)."""
    signer = entry.signer
    signatures = signer.sign_many(tbs_list)
    bodies = core.encode_ocsp_responses(
        tbs_list, signer.algorithm_identifier, signatures, entry.certs
    )
    next_update = now + entry.validity
    # tuple.__new__ without the NamedTuple's Python-level __new__ (0.3 µs each)
    stored = functools.partial(tuple.__new__, StoredResponse)
    return [stored((now, next_update, body)) for body in bodies]


def presign(
    entry: IssuerEntry, algorithm: int, serial: bytes, record: StatusRecord | None, now: int
) -> StoredResponse:
    """A complete signed response for one serial, to store and serve as is."""
    tbs = response_data_many(entry, algorithm, [serial], [record], now)
    return presign_many(entry, tbs, now)[0]


def _sign_chunk(job: Job) -> list[Signed]:
    """Sign one chunk of one issuer's serials (in this process or a worker).
    Serials asking the same hash algorithms (all of them in a full pass or
    for pending serials; due entries may differ) are signed together."""
    issuer_id, items, now = job
    entry = _WORKER_ENTRIES[issuer_id]
    if all(item.algorithms == items[0].algorithms for item in items):
        return _sign_alike(entry, items, now)
    groups: dict[tuple[int, ...], list[int]] = {}  # item indexes per algorithms
    for index, item in enumerate(items):
        groups.setdefault(item.algorithms, []).append(index)
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
    algs = items[0].algorithms if items else ()
    serials = [item.serial for item in items]
    records = [item.record for item in items]
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
        Signed(entry.id, item.serial, item.record, pairs, item.due_keys)
        for item, pairs in zip(items, rows, strict=True)
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
    now: int,
    only_stale: bool = False,
    progress: Callable[[int], None] = lambda n: None,
    chunk: int = 4000,  # serials per job and per LMDB commit (each commit is an fsync)
    workers: int = 1,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Sign a response for every known serial and hash algorithm, at ``now``
    (seconds since the epoch).

    ``only_stale`` signs only what the schedule says is pending or due (see
    ``refresh``). ``workers`` > 1 signs in that many forked processes.
    ``should_stop`` is polled while scanning (a stopping worker must not wait
    for a scan of millions). Returns how many responses were stored.
    """
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
    now: int,
    progress: Callable[[int], None] = lambda n: None,
    chunk: int = 4000,
    workers: int = 1,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Sign what the schedule owes at ``now`` (va/schedule.py: new or changed
    statuses under every configured hash algorithm, responses past half their
    validity under their own). A store without a current schedule is
    reconciled first by one full scan. Returns how many responses were stored."""
    stored = 0
    if not store.schedule.current(algorithms):
        stored += _full_pass(
            store, entries, algorithms, now, progress, chunk, workers, should_stop, True
        )
        if should_stop():
            return stored
    known = {entry.id for entry in entries}

    def jobs() -> Iterator[Job]:
        for issuer_id, items in store.schedule.work(now, algorithms, known, chunk):
            if should_stop():
                return
            yield (issuer_id, items, now)

    return stored + _run(store, entries, jobs(), workers, progress)


def _full_pass(
    store, entries, algorithms, now, progress, chunk, workers, should_stop, only_missing: bool
) -> int:
    """Make sure the schedule exists, then sign every serial (or, with
    ``only_missing``, what is missing or past its refresh point) under the
    configured hash algorithms; the schedule is current once a pass ends."""
    if not store.schedule.has_version():
        store.rebuild_due()
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
                    items.append(Item(serial, record, algs))
                if len(items) == chunk:
                    yield (entry.id, items, now)
                    items = []
            if items:
                yield (entry.id, items, now)

    stored = _run(store, entries, jobs(), workers, progress)
    if not stopped:
        store.schedule.mark_built(algorithms)
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
