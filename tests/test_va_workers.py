"""`revoca va serve --workers N`: shared port, restarts, reload, shutdown."""

import contextlib
import os
import signal
import time
from pathlib import Path

from tests.conftest import demo_pki, free_port, openssl_ocsp, start_va


def _children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def _ocsp_ok(d: Path, port: int) -> bool:
    result = openssl_ocsp(d, port, "www.pem", "-no_nonce")
    return result.returncode == 0 and "www.pem: good" in result.stdout


def _wait(predicate, seconds=15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_workers_restart_reload_and_stop(tmp_path):
    d, env = demo_pki(tmp_path)
    port = free_port()
    server = start_va(d, env, port, "--workers", "2", "--admin-port", "0")
    try:
        assert _wait(lambda: len(_children(server.pid)) == 2)
        assert _wait(lambda: _ocsp_ok(d, port))
        first = _children(server.pid)

        victim = min(first)
        os.kill(victim, signal.SIGKILL)  # a crashed worker is replaced
        assert _wait(
            lambda: len(_children(server.pid)) == 2 and victim not in _children(server.pid)
        )
        assert all(_ocsp_ok(d, port) for _ in range(10))

        before = _children(server.pid)
        server.send_signal(signal.SIGHUP)  # rolling restart: new workers, no outage
        ok = []
        assert _wait(lambda: ok.append(_ocsp_ok(d, port)) or not (before & _children(server.pid)))
        assert ok and all(ok), ok  # no request failed during the rolling restart
        assert len(_children(server.pid)) == 2

        server.send_signal(signal.SIGTERM)
        server.wait(15)
        assert server.returncode == 0
        assert not _ocsp_ok(d, port)
    finally:
        if server.poll() is None:
            server.terminate()  # the supervisor stops its workers
            server.wait(15)


def test_workers_do_not_outlive_a_killed_supervisor(tmp_path):
    d, env = demo_pki(tmp_path)
    port = free_port()
    server = start_va(d, env, port, "--workers", "2", "--admin-port", "0")
    workers = set()
    try:
        assert _wait(lambda: len(_children(server.pid)) == 2)
        workers = _children(server.pid)
        assert _wait(lambda: _ocsp_ok(d, port))
        server.send_signal(signal.SIGKILL)
        server.wait(10)

        def gone(pid: int) -> bool:
            status = Path(f"/proc/{pid}/status")
            # Exited, or a zombie its new parent has not reaped yet.
            return not status.exists() or "State:\tZ" in status.read_text()

        assert _wait(lambda: all(gone(pid) for pid in workers), 10)
        assert not _ocsp_ok(d, port)
    finally:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
