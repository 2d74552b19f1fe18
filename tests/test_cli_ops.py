"""What an operator sees when running things: `va serve` saying what it
serves and what is missing, quiet third-party logs, the demo's next step."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from revoca.config import load_config
from tests.conftest import REVOCA_CMD, demo_pki, free_port, run, start_va
from va.app import listener_lines


def _va(tmp_path, **changes):
    from dataclasses import replace

    settings = load_config(None, data_dir=tmp_path).va
    admin = changes.pop("admin", {})
    return replace(settings, admin=replace(settings.admin, **admin), **changes)


def test_listener_lines_name_every_listener(tmp_path):
    lines = listener_lines(_va(tmp_path, port=8090, workers=3), ["issuing", "clients"])
    assert lines == [
        "OCSP on http://127.0.0.1:8090/ocsp (POST, GET; also /ca/, /crl/, /healthz, /metrics): "
        "3 workers, CAs served: issuing, clients",
        f"admin listener (publish protocol) on 127.0.0.1:8081, http, bearer token "
        f"{tmp_path / 'va' / 'admin-token'}",
    ]
    off = listener_lines(_va(tmp_path, host="::1", workers=1, admin={"port": 0}), ["a"])
    assert off[0].startswith("OCSP on http://[::1]:8080/ocsp ") and "1 worker," in off[0]
    assert off[1] == "admin listener off (va.admin.port = 0): no publisher can reach this VA"


def _stderr_until(process, marker: str, seconds: float = 60) -> list[str]:
    """Lines of ``process``'s stderr up to the first one holding ``marker``."""
    lines = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if marker in line:
            return lines
    raise AssertionError(f"no {marker!r} on stderr: {lines}")


def test_va_serve_says_what_it_serves_where(tmp_path):
    d, env = demo_pki(tmp_path)
    port = free_port()
    va = start_va(d, env, port, "--workers", "2", "--admin-port", "0", stderr=subprocess.PIPE)
    try:
        lines = _stderr_until(va, "admin listener")
    finally:
        va.terminate()
        va.wait(10)
    assert (
        f"OCSP on http://127.0.0.1:{port}/ocsp (POST, GET; also /ca/, /crl/, /healthz, /metrics): "
        "2 workers, CAs served: demo-issuing, demo-clients"
    ) in lines
    assert lines[-1].startswith("admin listener off")
    # The demo's root has no OCSP signer: the VA says it is not served, and why.
    assert any(
        line.startswith("warning: not served: CA 'demo-root' has no OCSP signer") for line in lines
    ), lines


def test_va_serve_names_the_ca_without_a_signer_and_the_fix_works(cli_pki):
    tmp = cli_pki
    imported = run(tmp, "va", "import")
    assert imported.returncode == 0, imported.stderr
    refused = run(tmp, "va", "serve", "--port", str(free_port()))
    assert refused.returncode == 3, refused.stderr
    message = refused.stderr.decode()
    assert message.startswith("error: CA 'root' has no OCSP signer: run `revoca ca ocsp-signer")
    assert "CA 'issuing' has no OCSP signer" in message
    # The commands it names, as named, make the CA served.
    fix = re.search(
        r"CA 'issuing' has no OCSP signer: run `revoca ([^`]*)`, then `revoca ([^`]*)`", message
    )
    assert fix, message
    for command in fix.groups():
        done = run(tmp, *command.split())
        assert done.returncode == 0, done.stderr
    status = json.loads(run(tmp, "va", "status", "--json").stdout)
    assert "issuing" in status["issuers"].values(), status


def test_info_logs_leave_out_the_libraries_lines(tmp_path):
    info = run(tmp_path, "--log-level", "info", "--log-format", "text", "db", "upgrade")
    assert info.returncode == 0, info.stderr
    assert "alembic" not in info.stderr.decode()
    assert "sqlalchemy" not in info.stderr.decode()
    debug = run(tmp_path, "--log-level", "debug", "--log-format", "text", "db", "upgrade")
    assert debug.returncode == 0
    assert "DEBUG alembic" in debug.stderr.decode() or "INFO alembic" in debug.stderr.decode()


def test_info_logs_show_the_libraries_warnings():
    """At info the libraries' warnings still show (only their info is cut)."""
    code = (
        "import logging; from revoca.logs import setup_logging; setup_logging('info', 'text');"
        "logging.getLogger('alembic.x').info('quiet');"
        "logging.getLogger('alembic.x').warning('loud');"
        "logging.getLogger('revoca.x').info('ours')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stderr.splitlines() == ["WARNING alembic.x: loud", "INFO revoca.x: ours"]


def _shim(tmp_path: Path) -> dict:
    """An environment whose PATH starts with a `revoca` that is this checkout's."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "revoca"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m revoca "$@"\n')
    shim.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_the_demo_without_serving_prints_how_to_start_the_va(tmp_path):
    port = free_port()
    env = _shim(tmp_path)
    built = subprocess.run(
        [*REVOCA_CMD, "demo", "--dir", "d", "--port", str(port), "--serve-seconds", "0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert built.returncode == 0, built.stderr
    lines = built.stdout.splitlines()
    start = lines.index(
        "Start the VA on this directory (the demo did not serve: --serve-seconds 0):"
    )
    command = lines[start + 1].strip()
    assert command.endswith(f"va serve --port {port} --admin-port 0"), command
    # The command as printed, in a shell, serves the demo's OCSP.
    va = subprocess.Popen(
        ["sh", "-c", command],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline, answered = time.monotonic() + 60, None
        while time.monotonic() < deadline and answered is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    answered = r.status
            except OSError:
                assert va.poll() is None, "the printed command stopped"
                time.sleep(0.3)
        assert answered == 200
    finally:
        os.killpg(va.pid, signal.SIGTERM)  # the shell and the VA it started
        va.wait(10)


def test_a_va_alone_serves_without_a_ca_store_and_makes_none(tmp_path):
    """A VA node has its LMDB and keys only: `va serve` there names no CA,
    and neither reads nor makes a CA store."""
    d, env = demo_pki(tmp_path)
    node = tmp_path / "va-node"
    node.mkdir()
    shutil.copytree(d / "va", node / "va")
    port = free_port()
    va = start_va(node, env, port, "--admin-port", "0", stderr=subprocess.PIPE)
    try:
        lines = _stderr_until(va, "admin listener")
    finally:
        va.terminate()
        va.wait(10)
    assert not any(line.startswith("warning") for line in lines), lines
    assert f"OCSP on http://127.0.0.1:{port}/ocsp" in lines[-2]
    assert not (node / "revoca.db").exists()
