"""Revoca's ACME server as the issuance benchmark's target, started the way
an operator would: a fresh data directory, a root and an issuing CA, an end
entity for the benchmark's names, and `revoca acme serve` pinned to the
server's core, its validator asking the benchmark's DNS and connecting to
its http-01 responder.

Every step is as durable as in production (SQLite in WAL mode with
synchronous=FULL, the audit log, the outbox); CAA is off (Pebble checks
none) and so are the rate limits (a benchmark is one account's burst).
With ``tls`` the listener serves HTTPS with a certificate from the
benchmark's own CA, as Pebble does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from benchmarks.acme_pebble import write_tls_cert
from benchmarks.load_servers import free_port, pinned, stop

PASSPHRASE = "revoca acme benchmark passphrase"


@dataclass
class Revoca:
    directory: str
    ca_file: Path | None
    process: subprocess.Popen

    def stop(self) -> None:
        stop(self.process)


def _revoca(workdir: Path, *args: str) -> None:
    env = {**os.environ, "REVOCA_KEY_PASSPHRASE": PASSPHRASE}
    done = subprocess.run(
        [sys.executable, "-m", "revoca", "--config", str(workdir / "revoca.toml"), *args],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"revoca {' '.join(args)}: {done.stderr.strip()}")


def start_revoca(
    workdir: Path, http_port: int, core: str | None, dns_port: int, *, tls: bool = False
) -> Revoca:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    lines = [
        "[paths]",
        f'data_dir = "{workdir / "data"}"',
        "[acme]",
        f"port = {port}",
        f'resolver = "127.0.0.1:{dns_port}"',
        f"http_port = {http_port}",
        'caa = "off"',
        "orders_per_account_per_hour = 0",
        "validations_per_account = 10000",
    ]
    ca_file = None
    if tls:
        cert, key = write_tls_cert(workdir)
        lines += [f'tls_cert = "{cert}"', f'tls_key = "{key}"']
        ca_file = cert
    lines += [
        "[acme.directories.bench]",
        'ca = "issuing"',
        'profiles = ["tls-server"]',
        "external_account_required = false",
        'default_entity = "bench"',
    ]
    (workdir / "revoca.toml").write_text("\n".join(lines) + "\n")
    _revoca(workdir, "ca", "init-root", "--name", "root", "--subject", "CN=Bench Root,O=Bench")
    _revoca(
        workdir, "ca", "create-sub", "--name", "issuing", "--parent", "root",
        "--subject", "CN=Bench Issuing CA,O=Bench",
    )  # fmt: skip
    _revoca(
        workdir, "ra", "entity", "create", "--name", "bench", "--email", "ops@bench.test",
        "--ca", "issuing", "--profile", "tls-server", "--subject-template", "CN={identifier}",
        "--allow-san", "dns:*.bench.test",
    )  # fmt: skip
    argv = [sys.executable, "-m", "revoca", "--config", str(workdir / "revoca.toml")]
    argv += ["acme", "serve"]
    process = subprocess.Popen(
        pinned(core, argv),
        env={**os.environ, "REVOCA_KEY_PASSPHRASE": PASSPHRASE},
        stdout=open(workdir / "revoca.log", "ab"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    scheme = "https" if tls else "http"
    directory = f"{scheme}://127.0.0.1:{port}/acme/bench/directory"
    _wait_health(f"http://127.0.0.1:{port}/health", process, tls)
    return Revoca(directory, ca_file, process)


def _wait_health(url: str, process: subprocess.Popen, tls: bool, timeout: float = 30) -> None:
    import socket
    import time

    deadline = time.monotonic() + timeout
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"revoca acme serve exited ({process.returncode})")
        try:
            if tls:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    stop(process)
    raise RuntimeError("revoca acme serve did not answer within 30 s")
