"""Running a VA: load issuers and keys, pre-sign, serve with N workers."""

import asyncio
import base64
import contextlib
import logging
import os
import select
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from va.metrics import Metrics
from va.presign import refresh
from va.responder import Responder, load_issuers
from va.server import HTTPSettings, Server
from va.store import VAStore

log = logging.getLogger("revoca.va")


@dataclass(frozen=True)
class VASettings:
    directory: Path
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    http: HTTPSettings = field(default_factory=HTTPSettings)
    map_size: int = 1 << 30
    presign_algorithms: tuple[int, ...] = (1, 2)  # SHA-1 and SHA-256 CertIDs
    refresh_seconds: float = 300.0
    admin_host: str = "127.0.0.1"
    admin_port: int = 0  # 0: no admin listener (publish protocol off)
    admin_token_file: Path | None = None
    admin_tls: tuple[Path, Path, Path] | None = None  # cert, key, client CA

    @property
    def lmdb_dir(self) -> Path:
        return self.directory / "lmdb"

    @property
    def key_dir(self) -> Path:
        return self.directory / "keys"


def open_store(settings: VASettings, readonly: bool = False) -> VAStore:
    return VAStore(settings.lmdb_dir, map_size=settings.map_size, readonly=readonly)


def build_server(settings: VASettings, passphrase: bytes | None) -> Server:
    store = open_store(settings)
    entries = load_issuers(store, settings.key_dir, passphrase)
    if not entries:
        raise RuntimeError(f"no issuers in {settings.lmdb_dir}: run `revoca va import` first")
    for entry in entries:
        log.info(
            "responder key loaded",
            extra={
                "issuer": entry.name,
                "key": entry.signer.family,
                "signer": "libcrypto" if entry.signer.native is not None else "cryptography",
            },
        )
    return Server(Responder(store, entries), settings.http, Metrics(), ca_chains(store))


def ca_chains(store: VAStore) -> dict[str, list[bytes]]:
    """Each issuer and each of its parents by name, with the parents after it."""
    chains: dict[str, list[bytes]] = {}
    for record in store.issuers().values():
        links = [(record["name"], record["certificate"])]
        links += [(p["name"], p["certificate"]) for p in record.get("parents", [])]
        ders = [base64.b64decode(der) for _, der in links]
        for i, (name, _) in enumerate(links):
            chains.setdefault(name, ders[i:])
    return chains


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
):
    """One serving process. ``companion(server, wake)``, if given, is a coroutine
    run alongside (the all-in-one demo runs its publisher there)."""
    import uvloop

    server = build_server(settings, passphrase)

    async def main():
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        sock = _listen(settings.host, settings.port)
        listener = await loop.create_server(lambda: _connection(server), sock=sock)
        log.info("worker serving", extra={"pid": os.getpid(), "port": settings.port})
        if ready_fd is not None:  # tell the supervisor this worker is listening
            os.write(ready_fd, b"1")
            os.close(ready_fd)
        # One worker keeps the pre-signed responses fresh for all of them and
        # runs the admin listener (the publish protocol): one LMDB writer.
        refresher = admin = None
        if slot == 0:
            wake = asyncio.Event()
            refresher = asyncio.ensure_future(refresh_loop(server, settings, wake))
            if settings.admin_port:
                admin = await _start_admin(server, settings, wake, passphrase)
            if companion is not None:
                extra = asyncio.ensure_future(companion(server, wake))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), stop_after)
        server.stopping.set()  # ends a refresher scan running in its thread
        if refresher is not None:
            refresher.cancel()
        if companion is not None and slot == 0:
            extra.cancel()
        if admin is not None:
            await admin.cleanup()
        listener.close()  # stop accepting; let in-flight answers finish
        await asyncio.sleep(0.2)

    uvloop.run(main())


async def _start_admin(
    server: Server,
    settings: VASettings,
    wake: asyncio.Event,
    server_passphrase: bytes | None = None,
):
    from va.admin import load_token, make_app, start_admin

    if settings.admin_token_file is None:
        raise RuntimeError("va.admin_port is set but no admin token file is configured")
    token = load_token(settings.admin_token_file)
    app = make_app(server.responder.store, token, on_applied=server.wake_after_write(wake))
    context = None
    if settings.admin_tls is not None:
        from va.admin import mutual_tls_context

        context = mutual_tls_context(*settings.admin_tls, key_passphrase=server_passphrase)
    return await start_admin(app, settings.admin_host, settings.admin_port, context)


async def refresh_loop(
    server: Server, settings: VASettings, wake: asyncio.Event | None = None
) -> None:
    """Sign what the schedule says is pending or due (BR 4.9.10), in a thread
    so answering never waits; then sleep until the next refresh point, at
    most ``settings.refresh_seconds``, or until ``wake`` is set (a publish
    changed statuses)."""
    wake = wake or asyncio.Event()
    responder = server.responder
    store = responder.store
    entries = list(responder.issuers.values())
    loop = asyncio.get_running_loop()
    while True:
        try:
            signed = await loop.run_in_executor(
                None,
                lambda: refresh(
                    store,
                    entries,
                    settings.presign_algorithms,
                    should_stop=server.stopping.is_set,
                ),
            )
            if signed:
                server.invalidate()
                log.info("refreshed pre-signed responses", extra={"signed": signed})
            wait = settings.refresh_seconds
            next_due = store.next_due()
            if next_due is not None:
                wait = min(wait, max(1.0, next_due - time.time()))
        except Exception:
            log.exception("refreshing pre-signed responses failed; retrying later")
            wait = settings.refresh_seconds
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), wait)
        wake.clear()


def _connection(server: Server):
    from va.http import Connection

    return Connection(server)


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
    settings: VASettings, passphrase: bytes | None, stop_after: float | None = None, companion=None
) -> None:
    """Serve with ``settings.workers`` processes sharing the port (SO_REUSEPORT).

    The parent supervises: a worker that dies is restarted; SIGTERM/SIGINT
    stops all; SIGHUP replaces the workers one at a time (re-reading issuers
    and keys), each replacement listening before its predecessor stops, so
    the port never goes unanswered.
    """
    build_server(settings, passphrase).responder.store.close()  # fail early, in the parent
    if settings.admin_port:
        from va.admin import load_token

        load_token(settings.admin_token_file)  # a missing or open token file stops us here
    if settings.workers == 1:
        _worker(settings, passphrase, stop_after, companion=companion)
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
