"""`revoca va serve --workers N`: shared port, restarts, reload, shutdown."""

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from common.der import integer_content
from tests.conftest import demo_pki, free_port, openssl_ocsp, start_va

pytestmark = pytest.mark.twin  # through the façades: `make test-python` runs it on the twins


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


def test_kill_9_of_a_worker_under_load(tmp_path):
    """Clients hammer two workers; one is killed: the other keeps answering,
    the supervisor starts a replacement, and the LMDB environment is intact
    (every answer after the restart is the right, verified one)."""
    import threading
    import urllib.request

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp

    from va.store import VAStore

    d, env = demo_pki(tmp_path)
    port = free_port()
    cert = x509.load_pem_x509_certificate((d / "www.pem").read_bytes())
    issuer = x509.load_pem_x509_certificate((d / "issuing.pem").read_bytes())
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(cert, issuer, hashes.SHA1())
        .build()
        .public_bytes(serialization.Encoding.DER)
    )

    def ask() -> bool:
        post = urllib.request.Request(
            f"http://127.0.0.1:{port}/ocsp",
            data=request,
            headers={"Content-Type": "application/ocsp-request"},
        )
        try:
            with urllib.request.urlopen(post, timeout=5) as response:
                answer = ocsp.load_der_ocsp_response(response.read())
        except (OSError, ValueError):
            return False
        return answer.certificate_status == ocsp.OCSPCertStatus.GOOD

    server = start_va(d, env, port, "--workers", "2", "--admin-port", "0")
    results: list[tuple[float, bool]] = []
    stop = threading.Event()

    def hammer():
        deadline = time.monotonic() + 60  # bounded whatever happens
        while not stop.is_set() and time.monotonic() < deadline:
            results.append((time.monotonic(), ask()))

    clients = [threading.Thread(target=hammer, daemon=True) for _ in range(4)]
    try:
        assert _wait(lambda: len(_children(server.pid)) == 2 and ask())
        for client in clients:
            client.start()
        time.sleep(1.0)
        victim = min(_children(server.pid))
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        assert _wait(
            lambda: len(_children(server.pid)) == 2 and victim not in _children(server.pid)
        )
        replaced_at = time.monotonic()
        time.sleep(1.5)
        stop.set()
        for client in clients:
            client.join(10)
        during = [ok for t, ok in results if killed_at <= t < replaced_at]
        after = [ok for t, ok in results if t >= replaced_at + 0.5]
        # Only requests caught on the dying worker's connections may fail.
        assert during.count(True) > during.count(False), (during.count(True), during.count(False))
        assert after and all(after), after.count(False)
        store = VAStore(d / "va" / "lmdb", readonly=True)
        with store.read() as txn:
            record = store.get_status(txn, 2, integer_content(cert.serial_number))
        store.close()
        assert record is not None  # the environment opens and reads back
    finally:
        stop.set()
        server.terminate()
        server.wait(15)


def test_a_worker_that_cannot_start_is_not_restarted_in_a_loop(tmp_path):
    """A reload whose workers cannot start leaves the running ones serving;
    a worker that dies and cannot be replaced stops the VA, saying why once."""
    d, env = demo_pki(tmp_path)
    port = free_port()
    server = start_va(d, env, port, "--workers", "2", "--admin-port", "0", stderr=subprocess.PIPE)
    try:
        assert _wait(lambda: len(_children(server.pid)) == 2)
        assert _wait(lambda: _ocsp_ok(d, port))
        workers = _children(server.pid)
        for key in (d / "va" / "keys").iterdir():
            key.write_text("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n")  # unreadable now
        server.send_signal(signal.SIGHUP)
        time.sleep(3)
        if _children(server.pid) != workers:  # the running workers go on
            server.kill()
            pytest.fail(f"workers {workers} gone after a failed reload: {server.stderr.read()}")
        assert all(_ocsp_ok(d, port) for _ in range(5))
        os.kill(min(workers), signal.SIGKILL)  # and one of them cannot be replaced
        server.wait(20)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
    log = server.stderr.read()
    assert server.returncode == 1, log
    last = log.strip().splitlines()[-1]
    assert last.startswith("error: worker ") and "could not start" in last, log
    assert "responder key" in last or "key" in last, last
    assert log.count("reload failed") == 1, log
    assert "worker stopped" not in log, log  # the supervisor says it, once
    assert log.count("worker exited, restarting") == 1, log  # tried once, not in a loop
