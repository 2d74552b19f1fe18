"""One port, one VA: the workers of a VA share their port (SO_REUSEPORT),
nothing else may. A second VA, a foreign listener, a busy admin or RA port:
exit 2 with the port named, and the server already there keeps answering
alone."""

import socket
import subprocess
import time
import urllib.request

import pytest

from tests.conftest import REVOCA_CMD, demo_pki, free_port, run, start_va
from va.errors import PortInUseError
from va.ports import PortClaim


def _serve(d, env, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*REVOCA_CMD, "--data-dir", str(d), "va", "serve", *args],
        cwd=d.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _healthy(port: int, deadline: float = 30) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                return r.status == 200
        except OSError:
            time.sleep(0.1)
    return False


@pytest.fixture
def two_demos(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    return demo_pki(tmp_path / "a"), demo_pki(tmp_path / "b")


def test_a_second_va_on_a_busy_port_exits_2_and_the_first_answers_alone(two_demos):
    (first, env_a), (second, env_b) = two_demos
    port = free_port()
    va = start_va(first, env_a, port, "--workers", "2", "--admin-port", "0")
    try:
        assert _healthy(port)
        refused = _serve(second, env_b, "--port", str(port), "--admin-port", "0")
        assert refused.returncode == 2, refused.stderr
        assert f"error: port 127.0.0.1:{port} is in use by another revoca VA" in refused.stderr
        assert "Traceback" not in refused.stderr and "internal error" not in refused.stderr
        # The first VA still holds its port, alone: every answer comes from it.
        assert va.poll() is None and _healthy(port)
    finally:
        va.terminate()
        va.wait(20)
    # Gone with its process: the port can be claimed again at once.
    claim = PortClaim()
    claim.claim("127.0.0.1", port)
    claim.close()


@pytest.mark.parametrize("reuseport", [False, True], ids=["plain", "so_reuseport"])
def test_a_port_another_program_listens_on_exits_2(two_demos, reuseport):
    """A listener with SO_REUSEPORT (nginx's `reuseport`) is the dangerous
    one: the kernel would let the VA's workers join it."""
    (d, env), _ = two_demos
    other = socket.socket()
    if reuseport:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    other.bind(("127.0.0.1", 0))
    other.listen(8)
    port = other.getsockname()[1]
    try:
        refused = _serve(d, env, "--port", str(port), "--admin-port", "0")
    finally:
        other.close()
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.strip().endswith(f"error: port 127.0.0.1:{port} is in use")


def test_a_busy_admin_port_exits_2_before_serving(two_demos):
    (d, env), _ = two_demos
    made = subprocess.run(
        [*REVOCA_CMD, "--data-dir", str(d), "va", "admin-token"],
        cwd=d.parent,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen(8)
    admin = other.getsockname()[1]
    port = free_port()
    try:
        refused = _serve(d, env, "--port", str(port), "--admin-port", str(admin))
    finally:
        other.close()
    assert refused.returncode == 2, refused.stderr
    assert f"error: port 127.0.0.1:{admin} is in use (admin listener)" in refused.stderr
    with pytest.raises(OSError):  # nothing was left listening on the OCSP port
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_a_busy_ra_port_exits_2(tmp_path):
    assert run(tmp_path, "db", "upgrade").returncode == 0  # a store: `ra serve` makes none
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen(8)
    port = other.getsockname()[1]
    try:
        refused = run(tmp_path, "ra", "serve", "--port", str(port), "--seconds", "5")
    finally:
        other.close()
    assert refused.returncode == 2, refused.stderr
    assert f"error: port 127.0.0.1:{port} is in use".encode() in refused.stderr
    assert b"Traceback" not in refused.stderr


def test_one_process_cannot_claim_a_port_twice():
    port = free_port()
    first = PortClaim()
    first.claim("127.0.0.1", port)
    with pytest.raises(PortInUseError, match=f"port 127.0.0.1:{port} is in use by another"):
        PortClaim().claim("127.0.0.1", port)
    first.close()
    again = PortClaim()
    again.claim("127.0.0.1", port)
    again.close()
    PortClaim().claim("127.0.0.1", 0)  # any free port: nothing to claim


def test_the_demo_on_a_busy_port_exits_2(tmp_path):
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen(8)
    port = other.getsockname()[1]
    try:
        refused = subprocess.run(
            [
                *REVOCA_CMD,
                "demo",
                "--dir",
                "d",
                "--port",
                str(port),
                "--serve-seconds",
                "5",
                "--acme-port",
                "0",
                "--est-port",
                "0",
                "--scep-port",
                "0",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        other.close()
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.strip().endswith(f"error: port 127.0.0.1:{port} is in use")


def test_a_busy_ra_port_stops_revoca_serve_before_it_serves(tmp_path):
    """The all-in-one node binds its RA port before the VA starts: a busy one
    exits 2 at once, not a node serving OCSP without its RA API."""
    d, env = demo_pki(tmp_path)
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen(8)
    ra_port, va_port = other.getsockname()[1], free_port()
    config = tmp_path / "serve.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{d}"\n'
        f"[va]\nport = {va_port}\nadmin_port = 0\n[ra]\nport = {ra_port}\n"
        "[acme]\nport = 0\n[enroll]\nest_port = 0\nscep_port = 0\n"
    )
    try:
        started = time.monotonic()
        refused = subprocess.run(
            [*REVOCA_CMD, "--config", str(config), "serve", "--seconds", "20"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        took = time.monotonic() - started
    finally:
        other.close()
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.strip().endswith(f"error: port 127.0.0.1:{ra_port} is in use (RA API)")
    assert took < 15  # it did not serve its 20 seconds
    with pytest.raises(OSError):  # and nothing listens on the OCSP port
        socket.create_connection(("127.0.0.1", va_port), timeout=1).close()


def test_a_backlog_over_somaxconn_is_capped_and_said(caplog):
    from common.listen import effective_backlog

    with caplog.at_level("WARNING", logger="revoca.listen"):
        assert effective_backlog(8192, "ocsp", cap=4096) == 4096
        assert effective_backlog(1024, "ocsp", cap=4096) == 1024
    said = "listen backlog capped by net.core.somaxconn"
    warned = [r for r in caplog.records if r.getMessage() == said]
    assert len(warned) == 1 and (warned[0].backlog, warned[0].somaxconn) == (8192, 4096)
