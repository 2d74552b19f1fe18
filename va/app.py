"""Running a VA: its parts built from the settings, worker processes
sharing one port, the refresher, the admin listener, the supervisor."""

import asyncio
import contextlib
import errno
import functools
import logging
import os
import select
import signal
import socket
import time
from dataclasses import dataclass

from common.clock import SYSTEM, Clock
from common.httpguard import Limits
from common.listen import bind_listener, effective_backlog
from va.downloads import CRLs, ca_chains, ca_downloads
from va.errors import PortInUseError, WorkerStartError
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


# A worker tells the supervisor it is serving with b"1", or that it could not
# start with b"E" and the reason (bounded), then exits with EX_CONFIG.
READY = b"1"
FAILED = b"E"
EX_CONFIG = 78  # sysexits.h: the worker's configuration cannot be served
MAX_REASON = 4096
# A worker that exits this often within RESTART_WINDOW seconds is not
# restarted again: the VA stops, naming the last exit.
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0


def _worker(
    settings: VASettings,
    passphrase: bytes | None,
    stop_after: float | None = None,
    slot: int = 0,
    ready_fd: int | None = None,
    companion=None,
    clock: Clock = SYSTEM,
    admin_sock: socket.socket | None = None,
    on_ready=None,
):
    """One serving process. ``companion(serving, wake)``, if given, is a
    coroutine run alongside (the all-in-one node runs its publisher there);
    it ending with an error stops the worker with that error. ``admin_sock``
    is the admin listener's socket, bound by the supervisor (slot 0 serves it).

    Anything that stops the worker before it serves is raised; with
    ``ready_fd`` it is also written there for the supervisor."""
    import uvloop

    try:
        serving = build(settings, passphrase, clock=clock)
    except BaseException as exc:
        _report_start(ready_fd, exc)
        raise

    async def main():
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        listener = admin = extra = refresher = None
        try:
            http = settings.http
            sock = bind_listener(settings.host, settings.port, http.backlog, reuse_port=True)
            # The backlog again: create_server() calls listen() itself.
            listener = await loop.create_server(
                serving.front.connection, sock=sock, backlog=http.backlog
            )
            # One worker keeps the pre-signed responses fresh for all of them
            # and runs the admin listener (the publish protocol): one LMDB writer.
            if slot == 0:
                wake = asyncio.Event()
                if admin_sock is not None:
                    admin = await _start_admin(serving, wake, admin_sock, passphrase)
                refresher = asyncio.ensure_future(refresh_loop(serving, wake, clock))
                if companion is not None:
                    extra = asyncio.ensure_future(companion(serving, wake))
                    extra.add_done_callback(lambda _task: stop.set())
        except BaseException as exc:
            _report_start(ready_fd, exc)
            if admin is not None:
                await admin.cleanup()
            if listener is not None:
                listener.close()
            raise
        log.info("worker serving", extra={"pid": os.getpid(), "port": settings.port})
        _report_ready(ready_fd)
        if on_ready is not None:
            on_ready()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), stop_after)
        serving.worker.stopping.set()  # ends a refresher scan running in its thread
        if refresher is not None:
            refresher.cancel()
        failed = None
        if extra is not None:
            if extra.done() and not extra.cancelled():
                failed = extra.exception()
            extra.cancel()
        if admin is not None:
            await admin.cleanup()
        listener.close()  # stop accepting; let in-flight answers finish
        await asyncio.sleep(0.2)
        if failed is not None:
            raise failed

    try:
        uvloop.run(main())
    finally:
        serving.close()


def _report_ready(ready_fd: int | None) -> None:
    if ready_fd is not None:
        os.write(ready_fd, READY)
        os.close(ready_fd)


def _report_start(ready_fd: int | None, exc: BaseException) -> None:
    """Tell the supervisor why this worker could not start (once)."""
    if ready_fd is None:
        return
    kind = b"P" if isinstance(exc, PortInUseError) else b"W"
    reason = (str(exc.strerror if isinstance(exc, OSError) and exc.strerror else exc)) or repr(exc)
    with contextlib.suppress(OSError):
        os.write(ready_fd, FAILED + kind + reason.encode()[:MAX_REASON])
        os.close(ready_fd)
        with contextlib.suppress(AttributeError):
            exc.reported = True


def _admin_tls(settings: VASettings, passphrase: bytes | None):
    from va.admin import mutual_tls_context

    admin = settings.admin
    if admin.tls is None:
        return None
    return mutual_tls_context(*admin.tls, key_passphrase=passphrase)


async def _start_admin(
    serving: Serving, wake: asyncio.Event, sock: socket.socket, passphrase: bytes | None = None
):
    from va.admin import MAX_CONNECTIONS, load_token, make_app, start_admin

    admin = serving.settings.admin
    token = load_token(admin.token_file)
    http = serving.settings.http
    limits = Limits(
        request_timeout=http.request_timeout,
        idle_timeout=http.idle_timeout,
        max_connections=MAX_CONNECTIONS,
    )
    app = make_app(serving.store, token, serving.worker.after_write(wake), limits)
    return await start_admin(app, ssl_context=_admin_tls(serving.settings, passphrase), sock=sock)


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
    announce=None,
) -> None:
    """Serve with ``settings.workers`` processes sharing the port (SO_REUSEPORT).
    ``announce(line)``, if given, is called with each of ``listener_lines``
    once every worker serves.

    The parent supervises: a worker that dies is restarted (one that keeps
    dying, or cannot start at all, stops the VA with its reason); SIGTERM/
    SIGINT stops all; SIGHUP replaces the workers one at a time (re-reading
    issuers and keys), each replacement listening before its predecessor
    stops, so the port never goes unanswered (a replacement that cannot start
    leaves the running workers serving).
    """
    first = build(settings, passphrase, clock=clock)  # fail early, in the parent
    names = [entry.name for entry in first.entries]
    first.close()

    def serving() -> None:
        if announce is not None:
            for line in listener_lines(settings, names):
                announce(line)

    admin_sock = None
    if settings.admin.port:
        from va.admin import load_token

        load_token(settings.admin.token_file)  # a missing or open token file stops us here
        _admin_tls(settings, passphrase)  # and unreadable TLS files
    effective_backlog(settings.http.backlog, "ocsp")
    # Held until this process ends; workers inherit it (and die with it).
    claim = PortClaim()
    try:
        claim.claim(settings.host, settings.port)
        if settings.admin.port:
            # Bound here, once, for slot 0 of every generation of workers.
            from va.admin import BACKLOG

            admin = settings.admin
            admin_sock = bind_listener(admin.host, admin.port, BACKLOG, what=" (admin listener)")
        _supervise(settings, passphrase, stop_after, companion, clock, admin_sock, serving)
    finally:
        claim.close()
        if admin_sock is not None:
            admin_sock.close()


def listener_lines(settings: VASettings, issuers: list[str]) -> list[str]:
    """What a VA serves, one line per listener: where, with how many
    workers, for which CAs; the admin listener's address or that it is off."""
    workers = f"{settings.workers} worker{'s' if settings.workers != 1 else ''}"
    base = f"http://{_host(settings.host)}:{settings.port}"
    path = "/" + settings.http.ocsp_path.strip("/")
    lines = [
        f"OCSP on {base}{path} (POST, GET; also /ca/, /crl/, /healthz, /metrics): "
        f"{workers}, CAs served: {', '.join(issuers)}"
    ]
    admin = settings.admin
    if admin.port:
        scheme = "https (mutual TLS)" if admin.tls_cert else "http"
        lines.append(
            f"admin listener (publish protocol) on {admin.host}:{admin.port}, {scheme}, "
            f"bearer token {admin.token_file}"
        )
    else:
        lines.append("admin listener off (va.admin.port = 0): no publisher can reach this VA")
    return lines


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _supervise(
    settings: VASettings, passphrase, stop_after, companion, clock: Clock, admin_sock, serving
) -> None:
    if settings.workers == 1:
        _worker(
            settings,
            passphrase,
            stop_after,
            companion=companion,
            clock=clock,
            admin_sock=admin_sock,
            on_ready=serving,
        )
        return
    children: dict[int, int] = {}  # pid -> slot
    exits: dict[int, list[float]] = {}  # slot -> monotonic times of recent exits
    stopping = False
    reload_requested = False

    def spawn(slot: int) -> int:
        """Fork a worker for ``slot`` and wait (bounded) until it serves;
        raises what stopped it, if it could not start."""
        ready_r, ready_w = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            # The supervisor's handlers only set its flags: a worker stops at
            # SIGTERM until its event loop installs its own.
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(signum, signal.SIG_DFL)
            _die_with(parent)
            code = 0
            try:
                _worker(
                    settings,
                    passphrase,
                    slot=slot,
                    ready_fd=ready_w,
                    companion=companion if slot == 0 else None,
                    clock=clock,
                    admin_sock=admin_sock if slot == 0 else None,
                )
            except BaseException as exc:  # the supervisor decides what follows
                if not getattr(exc, "reported", False):  # else the supervisor logs it
                    log.error(
                        "worker stopped",
                        extra={"pid": os.getpid(), "slot": slot, "error": str(exc)},
                    )
                code = EX_CONFIG
            finally:
                logging.shutdown()
                os._exit(code)
        os.close(ready_w)
        children[pid] = slot
        # EOF without a word means it died first; its exit is seen below.
        ready, _, _ = select.select([ready_r], [], [], 30)
        message = os.read(ready_r, 2 + MAX_REASON) if ready else b""
        os.close(ready_r)
        if message.startswith(FAILED):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            del children[pid]
            reason = message[2:].decode(errors="replace")
            if message[1:2] == b"P":
                raise PortInUseError(errno.EADDRINUSE, reason)
            raise WorkerStartError(f"worker {slot} could not start: {reason}")
        return pid

    def restarting(slot: int, status: int) -> None:
        """Restart ``slot``'s worker, unless it keeps exiting."""
        now = time.monotonic()
        recent = [t for t in exits.get(slot, []) if now - t < RESTART_WINDOW] + [now]
        exits[slot] = recent
        if len(recent) > MAX_RESTARTS:
            raise WorkerStartError(
                f"worker {slot} exited {len(recent)} times in {RESTART_WINDOW:.0f} s "
                f"(last {_exit_text(status)}); not restarting it"
            )
        log.warning("worker exited, restarting", extra={"slot": slot, "exit": _exit_text(status)})
        spawn(slot)

    def on_stop(_signum, _frame):
        nonlocal stopping
        stopping = True

    def on_hup(_signum, _frame):
        nonlocal reload_requested
        reload_requested = True

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    try:
        for slot in range(settings.workers):
            spawn(slot)
        serving()
        while not stopping:
            if reload_requested:
                reload_requested = False
                _reload(children, spawn)
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.2)
                continue
            slot = children.pop(pid, None)
            if slot is not None and not stopping:
                restarting(slot, status)
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in list(children):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def _reload(children: dict[int, int], spawn) -> None:
    """Replace each worker by a new one, which serves before the old stops;
    one that cannot start leaves the rest as they are."""
    for old, slot in list(children.items()):
        try:
            spawn(slot)
        except (WorkerStartError, PortInUseError) as exc:
            log.error("reload failed; the running workers go on serving", extra={"error": str(exc)})
            return
        del children[old]
        with contextlib.suppress(ProcessLookupError):
            os.kill(old, signal.SIGTERM)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(old, 0)


def _exit_text(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.WEXITSTATUS(status)}"
