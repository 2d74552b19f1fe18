"""Running a VA: its parts built from the settings, worker processes
sharing one port, the refresher, the admin listener, the supervisor."""

import asyncio
import contextlib
import functools
import logging
import os
import select
import signal
import socket
import time
from dataclasses import dataclass

from common.clock import SYSTEM, Clock
from va.downloads import CRLs, ca_chains, ca_downloads
from va.http import Front
from va.issuers import IssuerEntry, load_issuers
from va.metrics import Metrics
from va.ports import PortClaim
from va.presign import refresh
from va.responder import Responder
from va.settings import VASettings
from va.store import VAStore
from va.worker import Worker

log = logging.getLogger("revoca.va")


def open_store(settings: VASettings, readonly: bool = False) -> VAStore:
    return VAStore(
        settings.lmdb_dir,
        map_size=settings.map_size,
        max_map_size=settings.max_map_size,
        readonly=readonly,
    )


@dataclass
class Serving:
    """One worker process's parts, from the store up to the HTTP front."""

    settings: VASettings
    store: VAStore
    entries: list[IssuerEntry]
    metrics: Metrics
    responder: Responder
    worker: Worker
    front: Front

    def close(self) -> None:
        self.worker.close()
        self.store.close()


def build(settings: VASettings, passphrase: bytes | None, *, clock: Clock = SYSTEM) -> Serving:
    """A worker's parts: the store, the issuers with their keys loaded, the
    responder, the worker in front of it and the HTTP front."""
    store = open_store(settings)
    try:
        entries = load_issuers(store, settings.key_dir, passphrase)
        if not entries:
            raise RuntimeError(f"no issuers in {settings.lmdb_dir}: there is nothing to answer for")
        for entry in entries:
            log.info(
                "responder key loaded",
                extra={
                    "issuer": entry.name,
                    "key": entry.signer.family,
                    "signer": "libcrypto" if entry.signer.native is not None else "cryptography",
                },
            )
        metrics = Metrics()
        responder = Responder(
            store.reader(), entries, max_certids=settings.max_certids, keep_statuses=True
        )
        worker = Worker(responder, settings.http, metrics, clock=clock)
        front = Front(
            worker,
            settings.http,
            metrics,
            ca_downloads(ca_chains(store)),
            CRLs(store.reader()),
            clock=clock,
        )
    except BaseException:
        store.close()
        raise
    return Serving(settings, store, entries, metrics, responder, worker, front)


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _worker(
    settings: VASettings,
    passphrase: bytes | None,
    stop_after: float | None = None,
    slot: int = 0,
    ready_fd: int | None = None,
    companion=None,
    clock: Clock = SYSTEM,
):
    """One serving process. ``companion(serving, wake)``, if given, is a
    coroutine run alongside (the all-in-one node runs its publisher there)."""
    import uvloop

    serving = build(settings, passphrase, clock=clock)

    async def main():
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        sock = _listen(settings.host, settings.port)
        listener = await loop.create_server(serving.front.connection, sock=sock)
        log.info("worker serving", extra={"pid": os.getpid(), "port": settings.port})
        if ready_fd is not None:  # tell the supervisor this worker is listening
            os.write(ready_fd, b"1")
            os.close(ready_fd)
        # One worker keeps the pre-signed responses fresh for all of them and
        # runs the admin listener (the publish protocol): one LMDB writer.
        refresher = admin = None
        if slot == 0:
            wake = asyncio.Event()
            refresher = asyncio.ensure_future(refresh_loop(serving, wake, clock))
            if settings.admin.port:
                admin = await _start_admin(serving, wake, passphrase)
            if companion is not None:
                extra = asyncio.ensure_future(companion(serving, wake))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), stop_after)
        serving.worker.stopping.set()  # ends a refresher scan running in its thread
        if refresher is not None:
            refresher.cancel()
        if companion is not None and slot == 0:
            extra.cancel()
        if admin is not None:
            await admin.cleanup()
        listener.close()  # stop accepting; let in-flight answers finish
        await asyncio.sleep(0.2)

    try:
        uvloop.run(main())
    finally:
        serving.close()


async def _start_admin(serving: Serving, wake: asyncio.Event, passphrase: bytes | None = None):
    from va.admin import load_token, make_app, mutual_tls_context, start_admin

    admin = serving.settings.admin
    token = load_token(admin.token_file)
    app = make_app(serving.store, token, on_applied=serving.worker.after_write(wake))
    context = None
    if admin.tls is not None:
        context = mutual_tls_context(*admin.tls, key_passphrase=passphrase)
    return await start_admin(app, admin.host, admin.port, context)


async def refresh_loop(serving: Serving, wake: asyncio.Event | None = None, clock: Clock = SYSTEM):
    """Sign what the schedule says is pending or due (BR 4.9.10), in a thread
    so answering never waits; then sleep until the next refresh point, at
    most ``refresh_seconds``, or until ``wake`` is set (a publish changed
    statuses)."""
    wake = wake or asyncio.Event()
    settings = serving.settings
    store, worker = serving.store, serving.worker
    algorithms = settings.algorithm_codes
    loop = asyncio.get_running_loop()
    while True:
        try:
            signed = await loop.run_in_executor(
                None,
                functools.partial(
                    refresh,
                    store,
                    serving.entries,
                    algorithms,
                    now=int(clock.wall()),
                    should_stop=worker.stopping.is_set,
                ),
            )
            if signed:
                worker.invalidate()
                log.info("refreshed pre-signed responses", extra={"signed": signed})
            wait = settings.refresh_seconds
            next_due = store.schedule.next_due()
            if next_due is not None:
                wait = min(wait, max(1.0, next_due - clock.wall()))
        except Exception:
            log.exception("refreshing pre-signed responses failed; retrying later")
            wait = settings.refresh_seconds
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), wait)
        wake.clear()


def _die_with(parent: int) -> None:
    """A worker must not outlive its supervisor (even a SIGKILLed one): Linux
    delivers SIGTERM to this process when the parent dies."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the supervisor stops us on exit
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(0)


def run(
    settings: VASettings,
    passphrase: bytes | None,
    stop_after: float | None = None,
    companion=None,
    clock: Clock = SYSTEM,
) -> None:
    """Serve with ``settings.workers`` processes sharing the port (SO_REUSEPORT).

    The parent supervises: a worker that dies is restarted; SIGTERM/SIGINT
    stops all; SIGHUP replaces the workers one at a time (re-reading issuers
    and keys), each replacement listening before its predecessor stops, so
    the port never goes unanswered.
    """
    build(settings, passphrase, clock=clock).close()  # fail early, in the parent
    if settings.admin.port:
        from va.admin import load_token

        load_token(settings.admin.token_file)  # a missing or open token file stops us here
    # Held until this process ends; workers inherit it (and die with it).
    claim = PortClaim()
    try:
        claim.claim(settings.host, settings.port)
        if settings.admin.port:
            claim.claim(settings.admin.host, settings.admin.port, " (admin listener)")
        _supervise(settings, passphrase, stop_after, companion, clock)
    finally:
        claim.close()


def _supervise(settings: VASettings, passphrase, stop_after, companion, clock: Clock) -> None:
    if settings.workers == 1:
        _worker(settings, passphrase, stop_after, companion=companion, clock=clock)
        return
    children: dict[int, int] = {}  # pid -> slot
    stopping = False
    reload_requested = False

    def spawn(slot: int) -> int:
        ready_r, ready_w = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            _die_with(parent)
            try:
                _worker(
                    settings,
                    passphrase,
                    slot=slot,
                    ready_fd=ready_w,
                    companion=companion if slot == 0 else None,
                    clock=clock,
                )
            finally:
                os._exit(0)
        os.close(ready_w)
        children[pid] = slot
        # Wait (bounded) until the worker listens; EOF means it died first.
        ready, _, _ = select.select([ready_r], [], [], 30)
        if ready:
            os.read(ready_r, 1)
        os.close(ready_r)
        return pid

    def on_stop(_signum, _frame):
        nonlocal stopping
        stopping = True

    def on_hup(_signum, _frame):
        nonlocal reload_requested
        reload_requested = True

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    for slot in range(settings.workers):
        spawn(slot)
    while not stopping:
        if reload_requested:
            reload_requested = False
            for old, slot in list(children.items()):
                spawn(slot)
                del children[old]
                with contextlib.suppress(ProcessLookupError):
                    os.kill(old, signal.SIGTERM)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(old, 0)
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            time.sleep(0.2)
            continue
        slot = children.pop(pid, None)
        if slot is not None and not stopping:
            log.warning("worker exited, restarting", extra={"pid": pid, "status": status})
            spawn(slot)
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    for pid in list(children):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
