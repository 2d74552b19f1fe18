"""Publishing under faults: a publisher or a VA killed mid-stream, a full
LMDB map, a full disk. Acknowledged events are never lost, batches are
applied whole or not at all, and the publisher's retries apply every event
exactly once."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ca.reasons import RevocationReason
from publisher.outbox import Outbox
from publisher.service import Publisher
from publisher.settings import PublisherSettings
from publisher.targets import HTTPTarget
from tests.conftest import PASSPHRASE, demo_pki, free_port, make_csr, start_va
from tests.test_publish import (
    TOKEN,
    _reachable,
    _status,
    _wait,
    call,
    revoked_event,
    start_admin_server,
)
from va import publish
from va.admin import write_token
from va.store import GOOD, REVOKED, VAStore


def _config(tmp_path, url, token_file, batch=10) -> Path:
    path = tmp_path / "publisher.toml"
    path.write_text(
        f'[paths]\ndata_dir = "{tmp_path / "ca"}"\n'
        f"[publisher]\nbatch = {batch}\nmetrics_port = 0\npoll_interval = 0.02\n"
        f'targets = [{{ name = "va", url = "{url}", token_file = "{token_file}" }}]\n'
    )
    return path


def test_kill_9_mid_stream_then_exactly_once(loop, tmp_path, make_service):
    service = make_service(directory=tmp_path / "ca")
    service.init_root("root", "CN=Root")
    service.create_sub("issuing", "root", "CN=Issuing")
    records = [service.issue("issuing", make_csr(), "tls-server") for _ in range(120)]
    for record in records[::2]:
        service.revoke("issuing", record.serial, RevocationReason.keyCompromise)
    with service.store.read() as conn:
        total = conn.exec_driver_sql("SELECT count(*) FROM outbox").scalar()
    store = VAStore(tmp_path / "va")
    base, runner = start_admin_server(loop, store)
    token_file = tmp_path / "token"
    write_token(token_file, TOKEN)
    config = _config(tmp_path, base, token_file, batch=5)
    env = {**os.environ, "REVOCA_KEY_PASSPHRASE": PASSPHRASE}
    cmd = [sys.executable, "-m", "revoca", "--config", str(config), "publisher", "run"]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if not _wait(lambda: publish.counters(store, "revoca-ca")[1] >= 20, 20):
        first.kill()
        raise AssertionError(first.communicate()[1].decode()[-3000:])
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert publish.counters(store, "revoca-ca")[1] < total  # it died part way
    second = subprocess.Popen(
        [*cmd[:-1], "run", "--seconds", "30"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert _wait(lambda: publish.counters(store, "revoca-ca")[0] == total, 30)
        _, applied = publish.counters(store, "revoca-ca")
        assert applied == total  # every event applied exactly once across both runs
        ca_id = service.get_ca("issuing").id
        for i, record in enumerate(records):
            assert _status(store, ca_id, record.serial) == (REVOKED if i % 2 == 0 else GOOD)
    finally:
        second.terminate()
        second.wait(10)
        loop.run(runner.cleanup())


def test_a_restarted_va_keeps_what_it_acknowledged(tmp_path):
    """kill -9 the VA right after it acknowledged: the events are on disk."""
    d, env = demo_pki(tmp_path)
    write_token(d / "va" / "admin-token", TOKEN)
    port, admin = free_port(), free_port()
    va = start_va(d, env, port, "--admin-port", str(admin))
    url = f"http://127.0.0.1:{admin}/publish/v2/events"
    try:
        assert _wait(lambda: _reachable(url), 20)
        events = [revoked_event(i + 1, 0x5000 + i, issuer=2) for i in range(50)]
        status, body = call(url, "POST", {"source": "ack-test", "after": 0, "events": events})
        assert status == 200 and body["applied"] == 50
    finally:
        va.send_signal(signal.SIGKILL)
        va.wait(10)
    store = VAStore(d / "va" / "lmdb")
    assert publish.counters(store, "ack-test") == (50, 50)
    assert all(_status(store, 2, 0x5000 + i) == REVOKED for i in range(50))


def test_kill_9_of_the_va_during_a_publish_batch(loop, tmp_path, pki):
    """The VA dies (kill -9) while batches are being applied: after its
    restart every acknowledged event is there, the publisher retries the
    rest from the VA's high-water mark, and each event is applied once."""
    ca = pki.get_ca("issuing")
    records = [pki.issue("issuing", make_csr(), "tls-server") for _ in range(300)]
    for record in records[::3]:
        pki.revoke("issuing", record.serial, RevocationReason.keyCompromise)
    d, env = demo_pki(tmp_path)
    write_token(d / "va" / "admin-token", TOKEN)
    port, admin = free_port(), free_port()
    va = start_va(d, env, port, "--admin-port", str(admin))
    base = f"http://127.0.0.1:{admin}"
    service = Publisher(
        Outbox(pki.store.engine),
        [HTTPTarget("va", base, TOKEN.encode())],
        PublisherSettings(source="ca", batch=40, max_backoff=0.5),
    )
    total = service.outbox.last_id()
    with pki.store.read() as conn:
        events = conn.exec_driver_sql("SELECT count(*) FROM outbox").scalar()
    lmdb = d / "va" / "lmdb"
    running = None
    try:
        assert _wait(lambda: _reachable(f"{base}/publish/v2/events"), 20)
        running = loop.spawn(service.run())
        # Kill it mid-stream: some batches acknowledged, others not yet.
        assert _wait(lambda: service.state["va"].high_water >= 80, 20)
        va.send_signal(signal.SIGKILL)
        va.wait(10)
        acknowledged = service.state["va"].high_water
        assert acknowledged < total
        store = VAStore(lmdb)
        high_water, applied = publish.counters(store, "ca")
        assert high_water >= acknowledged  # every acknowledged event is on disk
        with pki.store.read() as conn:
            below = conn.exec_driver_sql(
                f"SELECT count(*) FROM outbox WHERE id <= {high_water}"
            ).scalar()
        assert applied == below  # whole batches only: nothing half-applied
        store.close()
        va = start_va(d, env, port, "--admin-port", str(admin))
        assert _wait(lambda: service.state["va"].high_water == total, 30)
    finally:
        service.stop()
        if running is not None:
            running.result(10)
        va.terminate()
        va.wait(15)
    store = VAStore(lmdb)
    assert publish.counters(store, "ca") == (total, events)  # each event applied once
    for i, record in enumerate(records):
        assert _status(store, ca.id, record.serial) == (REVOKED if i % 3 == 0 else GOOD)


def _fill_until_refused(loop, pki, store, port):
    """Publish into ``store`` (which cannot take the batch); wait until the
    publisher has been refused twice; return the running publisher."""
    records = [pki.issue("issuing", make_csr(), "tls-server") for _ in range(300)]
    _, runner = start_admin_server(loop, store, port)
    service = Publisher(
        Outbox(pki.store.engine),
        [HTTPTarget("va", f"http://127.0.0.1:{port}", TOKEN.encode())],
        PublisherSettings(source="ca", batch=1000, max_backoff=0.3),
    )
    running = loop.spawn(service.run())
    assert _wait(lambda: service.state["va"].failures >= 2, 20), service.state["va"]
    return records, runner, service, running


def _delivered_in_the_end(service, store, pki, records):
    """The publisher's retries bring every event, and each status, to the VA."""
    last = service.outbox.last_id()
    assert _wait(lambda: publish.counters(store, "ca")[0] == last, 20)
    ca = pki.get_ca("issuing")
    assert all(_status(store, ca.id, r.serial) == GOOD for r in records)


def test_a_full_lmdb_map_refuses_the_batch_whole_and_the_publisher_retries(loop, tmp_path, pki):
    path, port = tmp_path / "va", free_port()
    store = VAStore(path, map_size=64 * 1024, max_map_size=64 * 1024)  # may not grow
    records, runner, service, running = _fill_until_refused(loop, pki, store, port)
    try:
        assert "507" in service.state["va"].last_error
        assert "map full" in service.state["va"].last_error
        assert publish.counters(store, "ca") == (0, 0)  # no partial batch
        with store.read() as txn:
            assert txn.stat(store.status_db)["entries"] == 0
        loop.run(runner.cleanup())
        store.close()
        store = VAStore(path, max_map_size=1 << 30)  # the operator raises va.max_map_size
        _, runner = start_admin_server(loop, store, port)
        _delivered_in_the_end(service, store, pki, records)
    finally:
        service.stop()
        running.result(10)
        loop.run(runner.cleanup())


def _tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    return done.returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_disk_refuses_the_batch_whole_and_the_publisher_retries(loop, tmp_path, pki):
    """A real ENOSPC: the VA's LMDB on a 2 MiB tmpfs, nearly filled."""
    disk = tmp_path / "disk"
    if not _tmpfs(disk, "2m"):
        pytest.skip("cannot mount tmpfs here")
    try:
        store = VAStore(disk / "va")
        filler = disk / "filler"
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        filler.write_bytes(b"\0" * (free - 16 * 1024))  # leave 16 KiB
        port = free_port()
        records, runner, service, running = _fill_until_refused(loop, pki, store, port)
        try:
            assert "507" in service.state["va"].last_error
            assert "LMDB write failed" in service.state["va"].last_error
            assert "bytes free" in service.state["va"].last_error
            assert publish.counters(store, "ca") == (0, 0)  # no partial batch
            filler.unlink()  # space again: the publisher's next retry goes through
            _delivered_in_the_end(service, store, pki, records)
        finally:
            service.stop()
            running.result(10)
            loop.run(runner.cleanup())
            store.close()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
