"""The servers the load benchmark compares, started pinned to a core: the
Revoca VA, nginx serving stored bytes, and `openssl ocsp` in a network
namespace of its own; and the small process helpers they share."""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

OCSP_PATH = "/ocsp"  # [va] ocsp_path in the default configuration


@dataclass
class Setup:
    """A load-test PKI (benchmarks/load_pki.py builds it), what the servers start from."""

    workdir: Path
    env: dict
    issuer: x509.Certificate
    signer: x509.Certificate
    signer_key: Path
    passphrase_file: Path
    index: Path
    certs: int
    revoked: int
    timings: dict = field(default_factory=dict)
    cleanup: list[Path] = field(default_factory=list)


class CheckFailed(AssertionError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def stop(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def pinned(core: str | None, argv: list[str]) -> list[str]:
    return ["taskset", "-c", core, *argv] if core is not None else argv


def start_revoca(setup: Setup, port: int, workers: int, core: str | None) -> subprocess.Popen:
    argv = [sys.executable, "-m", "revoca", "--data-dir", str(setup.workdir), "va", "serve"]
    argv += ["--port", str(port), "--workers", str(workers), "--admin-port", "0"]
    process = subprocess.Popen(
        pinned(core, argv),
        env=setup.env,
        stdout=subprocess.DEVNULL,
        stderr=open(setup.workdir / "va.log", "ab"),  # noqa: SIM115
    )
    wait_port(port, process)
    return process


# nginx at its best for small static files, one worker (as the VA has one):
# each directive says what it buys here.
NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{
    worker_connections 4096;
    # take every pending connection per wake-up, not one
    multi_accept on;
}}
http {{
    # no log line per request
    access_log off;
    # the file's bytes from the page cache, no copy through user space ...
    sendfile on;
    # ... and with the headers in the same packet (TCP_CORK while sending)
    tcp_nopush on;
    tcp_nodelay on;
    # open file descriptors, sizes and mtimes kept: no open()/fstat()/close()
    # per request once a file has been served
    open_file_cache max=200000 inactive=300s;
    open_file_cache_valid 300s;
    open_file_cache_min_uses 1;
    open_file_cache_errors on;
    # a shorter Server header
    server_tokens off;
    # keep-alive connections live as long as the run
    keepalive_requests 1000000;
    keepalive_timeout 65;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    types {{ application/ocsp-response der; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {dir}/static;
        location /r/ {{
            # POST to a static file: answer it as a GET would (405 -> 200).
            # This internal redirect is the POST point's extra cost; the GET
            # points are nginx's static-file path as is.
            error_page 405 =200 $uri;
        }}
    }}
}}
"""


def start_nginx(setup: Setup, port: int, core: str | None, answers: list[bytes]) -> tuple:
    # Outside the private work directory: nginx's workers run as an
    # unprivileged user and read these public bytes (mode 0755/0644).
    directory = Path(tempfile.mkdtemp(prefix="revoca-nginx-"))
    setup.cleanup.append(directory)
    directory.chmod(0o755)
    (directory / "static" / "r").mkdir(parents=True, mode=0o755)
    (directory / "static").chmod(0o755)
    paths = []
    for i, answer in enumerate(answers):
        target = directory / "static" / "r" / f"{i}.der"
        target.write_bytes(answer)
        target.chmod(0o644)
        paths.append(f"/r/{i}.der")
    conf = directory / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=directory, port=port))
    process = subprocess.Popen(
        pinned(core, ["nginx", "-c", str(conf), "-p", str(directory)]),
        stdout=subprocess.DEVNULL,
        stderr=open(directory / "stderr.log", "ab"),  # noqa: SIM115
    )
    wait_port(port, process)
    return process, paths


def start_openssl(setup: Setup, port: int, core: str | None) -> subprocess.Popen:
    """`openssl ocsp` as a responder. It binds every interface (its -port
    takes no address), so it runs in a network namespace of its own with only
    a loopback; the checks and wrk join that namespace."""
    argv = ["openssl", "ocsp", "-index", str(setup.index), "-port", str(port)]
    argv += ["-rsigner", str(setup.workdir / "signer.pem"), "-rkey", str(setup.signer_key)]
    argv += ["-passin", f"file:{setup.passphrase_file}", "-CA", str(setup.workdir / "issuing.pem")]
    argv += ["-nmin", "60", "-ignore_err"]
    script = "ip link set lo up && exec " + " ".join(shlex.quote(a) for a in pinned(core, argv))
    log = setup.workdir / "openssl-ocsp.log"
    log.write_bytes(b"")
    process = subprocess.Popen(
        ["unshare", "--net", "sh", "-c", script],
        stdout=subprocess.DEVNULL,
        stderr=open(log, "ab"),  # noqa: SIM115
    )
    # Not probed with a connection: a connect-and-close without a request
    # leaves this single-threaded responder waiting on it for good.
    deadline = time.monotonic() + 30
    while b"waiting for OCSP client connections" not in log.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise RuntimeError(f"openssl ocsp did not start; see {log}")
        time.sleep(0.05)
    return process


CLONE_NEWNET = 0x40000000


def in_netns(pid: int | None, function, *args):
    """Run ``function(*args)`` in the network namespace of process ``pid``
    (in a forked child; the result comes back pickled). None: right here."""
    if pid is None:
        return function(*args)
    readable, writable = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            os.close(readable)
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns failed")
            result = ("ok", function(*args))
        except BaseException as exc:
            result = ("error", f"{type(exc).__name__}: {exc}")
        with os.fdopen(writable, "wb") as out:
            pickle.dump(result, out)
        os._exit(0)
    os.close(writable)
    with os.fdopen(readable, "rb") as inp:
        data = inp.read()
    os.waitpid(child, 0)
    kind, value = pickle.loads(data)
    if kind == "error":
        raise CheckFailed(value)
    return value
