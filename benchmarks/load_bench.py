"""OCSP under HTTP load: Revoca's VA against nginx and `openssl ocsp`, in one run.

    python -m benchmarks.load_bench                    # 100,000 certificates
    python -m benchmarks.load_bench --certs 10000000   # the 10M point
    python -m benchmarks.load_bench --smoke            # seconds; what CI runs

Steps: a CA hierarchy with a delegated P-256 OCSP signer is made with
Revoca's CA; N certificate statuses under the issuing CA (about 10% revoked,
random 127-bit serials) are written as an OpenSSL ``index.txt``, which both
`openssl ocsp -index` and the VA (``revoca va import-index``) load, so both
answer for the same certificates (OCSP needs the statuses, not the
certificates themselves). The VA pre-signs every response (SHA-1 and SHA-256
CertIDs) on one core, timed against the raw signature and cryptography's
``OCSPResponseBuilder``. A corpus of distinct requests (both CertID hashes,
good and revoked serials) is sent once to every server and each answer is
verified (HTTP 200, successful, right serial, right status, valid signature;
nginx byte-identical to the VA) before any load is measured.

Load: wrk (Lua: ``benchmarks/ocsp_load.lua``) round-robin over the corpus,
keep-alive, 32 connections and 1, a warm-up, then several runs per point;
the server pinned to core 0 and wrk to core 1 (``taskset``). During load
every response is checked again (status 200 and byte-equal to a verified
answer, or a successful OCSPResponse for servers that sign each request). A
point with any failed check is reported as failed, never as a figure.

Compared in the same run: nginx (one worker) sending the VA's pre-signed
bytes as static files, the ceiling for "send stored bytes over HTTP/1.1";
`openssl ocsp`, which signs every request; the VA signing fresh for nonce
requests; N workers with SO_REUSEPORT. Results go to stdout as a table and
to ``--json``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import functools
import hashlib
import http.client
import json
import os
import pickle
import platform
import random
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

HERE = Path(__file__).resolve().parent
LUA = HERE / "ocsp_load.lua"
ISSUER = "load-issuing"
OCSP_PATH = "/ocsp"  # [va] ocsp_path in the default configuration


@dataclass
class Corpus:
    """Distinct requests with what each must get back."""

    posts: list[bytes] = field(default_factory=list)
    gets: list[str] = field(default_factory=list)
    serials: list[int] = field(default_factory=list)
    revoked: list[bool] = field(default_factory=list)


@dataclass
class Setup:
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


def progress_bar(label: str, total: int):
    """A one-line progress bar on stderr: returns advance(n)."""
    done = [0]
    started = time.monotonic()

    def advance(n: int) -> None:
        done[0] += n
        width = 30
        filled = int(width * min(done[0], total) / max(total, 1))
        rate = done[0] / max(time.monotonic() - started, 1e-9)
        print(
            f"\r  {label:<22} [{'#' * filled}{'.' * (width - filled)}] "
            f"{done[0]:>10,}/{total:,} {rate:>9,.0f}/s",
            end="" if done[0] < total else "\n",
            file=sys.stderr,
            flush=True,
        )

    return advance


# ---------------------------------------------------------------- the PKI


def build(workdir: Path, certs: int, seed: int, presign_workers: int) -> Setup:
    """CA, signer, N statuses in index.txt, the VA loaded and pre-signed."""
    import dataclasses

    from ca.fsutil import ensure_private_dir, write_secret_file
    from ca.keys import PassphraseSource
    from revoca.app import build_ca_service
    from revoca.cli_va import va_settings
    from revoca.config import load_config
    from va.app import open_store, presign_all
    from va.openssl_index import import_index
    from va.responder import load_issuers

    ensure_private_dir(workdir)
    passphrase_file = workdir / "key-passphrase"
    write_secret_file(passphrase_file, secrets.token_urlsafe(24).encode())
    config = dataclasses.replace(
        load_config(None, data_dir=workdir), passphrase=PassphraseSource(file=passphrase_file)
    )
    service = build_ca_service(config)
    service.init_root("load-root", "CN=Load Test Root,O=Revoca Benchmarks")
    issuing = service.create_sub("load-issuing", "load-root", "CN=Load Test Issuing CA")
    signer, key_id = service.issue_ocsp_signer("load-issuing")
    issuer_pem = workdir / "issuing.pem"
    issuer_pem.write_bytes(issuing.certificate.public_bytes(serialization.Encoding.PEM))
    (workdir / "signer.pem").write_bytes(
        signer.certificate.public_bytes(serialization.Encoding.PEM)
    )
    signer_key = service.token.key_file(key_id)

    rng = random.Random(seed)
    index = workdir / "index.txt"
    revoked = 0
    advance = progress_bar("index.txt", certs)
    with index.open("w") as out:
        for i in range(certs):
            serial = rng.getrandbits(127) | 1 << 126
            if rng.random() < 0.1:
                revoked += 1
                reason = ("keyCompromise", "superseded", "cessationOfOperation")[i % 3]
                out.write(
                    f"R\t301231235959Z\t250101000000Z,{reason}\t{serial:X}\tunknown\t/CN=c{i}\n"
                )
            else:
                out.write(f"V\t301231235959Z\t\t{serial:X}\tunknown\t/CN=c{i}\n")
            if i % 100_000 == 99_999 or i == certs - 1:
                advance(i % 100_000 + 1)

    settings = va_settings(config)
    store = open_store(settings)
    timings = {}
    started = time.perf_counter()
    loaded = import_index(
        store,
        settings.key_dir,
        name=ISSUER,
        issuer=issuing.certificate,
        responder=signer.certificate,
        responder_key=signer_key,
        key_passphrase=config.passphrase.get(),
        va_passphrase=config.passphrase.get(),
        index_text=index.read_text(),
        policies=config.va,
        progress=progress_bar("importing", certs),
    )
    timings["import_seconds"] = time.perf_counter() - started
    assert loaded == certs, (loaded, certs)
    entries = load_issuers(store, settings.key_dir, config.passphrase.get())
    total = certs * len(settings.presign_algorithms)
    advance = progress_bar("pre-signing", total)
    started = time.perf_counter()
    signed = presign_all(
        store, entries, settings.presign_algorithms, progress=advance, workers=presign_workers
    )
    timings["presign_seconds"] = time.perf_counter() - started
    timings["presign_workers"] = presign_workers
    timings["presigned"] = signed
    store.close()
    env = {**os.environ, "REVOCA_KEY_PASSPHRASE": passphrase_file.read_text().strip()}
    return Setup(
        workdir,
        env,
        issuing.certificate,
        signer.certificate,
        signer_key,
        passphrase_file,
        index,
        certs,
        revoked,
        timings,
    )


def make_corpus(setup: Setup, size: int, seed: int, nonce: bool = False) -> Corpus:
    """``size`` distinct requests over serials taken from index.txt: half
    with SHA-1 CertIDs, half SHA-256, revoked ones in proportion."""
    rng = random.Random(seed)
    lines = setup.index.read_text().splitlines()
    picked = rng.sample(lines, min(size, len(lines)))
    issuer_name = setup.issuer.subject.public_bytes()
    issuer_key = setup.issuer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    from asn1crypto import keys as asn1_keys

    key_bits = asn1_keys.PublicKeyInfo.load(issuer_key)["public_key"].native
    corpus = Corpus()
    for i, line in enumerate(picked):
        status, _, _, serial_hex, _, _ = line.split("\t")
        algorithm = hashes.SHA1() if i % 2 == 0 else hashes.SHA256()
        name_hash = hashlib.new(algorithm.name, issuer_name).digest()
        key_hash = hashlib.new(algorithm.name, key_bits).digest()
        builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
            name_hash, key_hash, int(serial_hex, 16), algorithm
        )
        if nonce:
            builder = builder.add_extension(x509.OCSPNonce(secrets.token_bytes(16)), False)
        der = builder.build().public_bytes(serialization.Encoding.DER)
        corpus.posts.append(der)
        corpus.gets.append(
            OCSP_PATH + "/" + urllib.parse.quote(base64.b64encode(der).decode(), safe="")
        )
        corpus.serials.append(int(serial_hex, 16))
        corpus.revoked.append(status == "R")
    return corpus


def write_records(path: Path, records: list[bytes]) -> Path:
    with path.open("wb") as out:
        for record in records:
            out.write(b"%d\n" % len(record) + record)
    return path


# ---------------------------------------------------------------- servers


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


NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    keepalive_timeout 65;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    types {{ application/ocsp-response der; }}
    server {{
        listen 127.0.0.1:{port};
        root {dir}/static;
        location /r/ {{
            # POST to a static file: answer it as a GET would (405 -> 200).
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


# ---------------------------------------------------------------- checks


class CheckFailed(AssertionError):
    pass


def fetch(port: int, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Content-Type": "application/ocsp-request"} if body is not None else {}
        connection.request(method, path, body=body, headers=headers)
        reply = connection.getresponse()
        return reply.status, reply.read()
    finally:
        connection.close()


def check_answer(setup: Setup, corpus: Corpus, i: int, status: int, body: bytes, what: str):
    if status != 200:
        raise CheckFailed(f"{what}: request {i}: HTTP {status}")
    parsed = ocsp.load_der_ocsp_response(body)
    if parsed.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise CheckFailed(f"{what}: request {i}: {parsed.response_status}")
    if parsed.serial_number != corpus.serials[i]:
        raise CheckFailed(f"{what}: request {i}: answer for serial {parsed.serial_number:x}")
    want = ocsp.OCSPCertStatus.REVOKED if corpus.revoked[i] else ocsp.OCSPCertStatus.GOOD
    if parsed.certificate_status != want:
        raise CheckFailed(f"{what}: request {i}: {parsed.certificate_status}, expected {want}")
    from cryptography.hazmat.primitives.asymmetric import ec

    setup.signer.public_key().verify(
        parsed.signature, parsed.tbs_response_bytes, ec.ECDSA(parsed.signature_hash_algorithm)
    )


def verify_server(setup, corpus, port, what, *, get=True, paths=None, expect=None) -> list[bytes]:
    """Send every corpus request once; check each answer. Returns the answers."""
    answers = []
    for i, der in enumerate(corpus.posts):
        if paths is not None:  # nginx: the stored bytes under /r/<i>.der
            status, body = fetch(port, "GET", paths[i], None)
            if status != 200 or body != expect[i]:
                raise CheckFailed(f"{what}: /r/{i}.der is not the VA's answer")
            status, body = fetch(port, "POST", paths[i], b"")
            if status != 200 or body != expect[i]:
                raise CheckFailed(f"{what}: POST /r/{i}.der: HTTP {status}, wrong bytes")
            answers.append(body)
            continue
        status, body = fetch(port, "POST", OCSP_PATH, der)
        check_answer(setup, corpus, i, status, body, f"{what} POST")
        if get:
            status, by_get = fetch(port, "GET", corpus.gets[i], None)
            check_answer(setup, corpus, i, status, by_get, f"{what} GET")
            if expect is None and by_get != body:
                raise CheckFailed(f"{what}: GET and POST answers differ for request {i}")
        answers.append(body)
    return answers


# ---------------------------------------------------------------- wrk


def run_wrk(port, mode, records, expected, connections, seconds, core, netns=None) -> dict:
    threads = 1
    argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency"]
    argv += ["--timeout", "5s", "-s", str(LUA), f"http://127.0.0.1:{port}{OCSP_PATH}", "--", mode]
    argv += [str(records)] + ([str(expected)] if expected else [])
    argv = pinned(core, argv)
    if netns is not None:
        argv = ["nsenter", f"--net=/proc/{netns}/ns/net", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr.strip() or done.stdout.strip()}")
    line = [x for x in done.stdout.splitlines() if x.startswith("{")][-1]
    result = json.loads(line)
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    errors = (
        sum(
            result[k]
            for k in ("bad_status", "bad_body", "connect_errors", "read_errors", "write_errors")
        )
        + result["status_errors"]
        + result["timeouts"]
    )
    result["failed_checks"] = errors
    return result


@dataclass
class Point:
    label: str
    runs: list[dict]

    @property
    def ok(self) -> bool:
        return all(r["failed_checks"] == 0 and r["ok"] > 0 for r in self.runs)

    def median(self, key: str) -> float:
        return statistics.median(r[key] for r in self.runs)

    def spread(self, key: str) -> tuple[float, float]:
        values = [r[key] for r in self.runs]
        return min(values), max(values)


def measure(label, port, mode, records, expected, connections, args, core, fresh=None) -> Point:
    """Warm-up, then ``args.repeat`` runs. ``fresh``: a callable that starts
    a new server for every run and returns the pid whose network namespace
    wrk joins (for `openssl ocsp`, which a closed idle connection stops)."""

    def one(seconds):
        return run_wrk(
            port, mode, records, expected, connections, seconds, core, fresh() if fresh else None
        )

    one(args.warmup)
    runs = [one(args.seconds) for _ in range(args.repeat)]
    point = Point(label, runs)
    state = "ok" if point.ok else "FAILED CHECKS"
    print(
        f"  {label:<44} {point.median('rps'):>10,.0f} req/s"
        f"  p50 {point.median('p50_us') / 1000:6.2f} ms"
        f"  p99 {point.median('p99_us') / 1000:6.2f} ms  [{state}]",
        file=sys.stderr,
        flush=True,
    )
    return point


# ---------------------------------------------------------------- signing


def raw_signature_seconds(setup: Setup, budget: float) -> float:
    """Seconds per raw ECDSA P-256 signature over a response-sized TBS, with
    the signer's own key, on the calling core."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from ca.token import load_private_key

    key = load_private_key(
        setup.signer_key.read_bytes(), setup.passphrase_file.read_text().strip().encode()
    )
    message = secrets.token_bytes(180)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < budget:
        for _ in range(100):
            key.sign(message, ec.ECDSA(hashes.SHA256()))
        count += 100
    return (time.perf_counter() - started) / count


def builder_seconds(setup: Setup, budget: float) -> float:
    """Seconds per response with cryptography's OCSPResponseBuilder (same key)."""
    import datetime

    from ca.token import load_private_key

    key = load_private_key(
        setup.signer_key.read_bytes(), setup.passphrase_file.read_text().strip().encode()
    )
    now = datetime.datetime.now(datetime.UTC)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < budget:
        for i in range(20):
            builder = (
                ocsp.OCSPResponseBuilder()
                .add_response_by_hash(
                    b"\x00" * 20,
                    b"\x01" * 20,
                    (1 << 126) + i,
                    hashes.SHA1(),
                    ocsp.OCSPCertStatus.GOOD,
                    now,
                    now + datetime.timedelta(days=4),
                    None,
                    None,
                )
                .responder_id(ocsp.OCSPResponderEncoding.HASH, setup.signer)
            )
            builder.sign(key, hashes.SHA256())
        count += 20
    return (time.perf_counter() - started) / count


def rss_mb(pid: int) -> dict:
    """Resident memory of a process: anonymous (its own) and file-backed
    (LMDB pages mapped from the page cache, shared by all workers)."""
    values = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                values[key] = int(rest.split()[0]) / 1024
    return values


def worker_pids(supervisor: int) -> list[int]:
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children")
    with contextlib.suppress(OSError):
        return [int(p) for p in children.read_text().split()]
    return []


# ---------------------------------------------------------------- main


def machine() -> dict:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    openssl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": wrk.strip(),
        "nginx": nginx,
        "openssl": openssl,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--certs", type=int, default=100_000, help="certificate statuses (N)")
    parser.add_argument("--corpus", type=int, default=1024, help="distinct requests")
    parser.add_argument("--seconds", type=int, default=10, help="length of each measured run")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up before each point")
    parser.add_argument("--repeat", type=int, default=3, help="runs per point (median shown)")
    parser.add_argument("--workdir", type=Path, help="keep the PKI and VA here (default: temp)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--seed", type=int, default=6960)
    parser.add_argument(
        "--presign-workers",
        type=int,
        default=1,
        help="processes for the initial pre-signing (1: timed on one core against the raw "
        "signature; more for large --certs)",
    )
    parser.add_argument("--skip", default="", help="comma-separated: nginx,openssl,fresh,workers")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny and quick (CI): 2,000 certs, 1 s runs"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.certs, args.corpus, args.seconds, args.warmup, args.repeat = 2000, 64, 1, 1, 1
    skip = {s for s in args.skip.split(",") if s}
    cores = os.cpu_count() or 1
    server_core, client_core = ("0", "1") if cores >= 2 else (None, None)
    for tool in ("wrk", "nginx", "openssl", "taskset"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed (Debian: apt-get install wrk nginx-light)")

    results: dict = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}}
    temporary = None
    if args.workdir is None:
        temporary = tempfile.TemporaryDirectory(prefix="revoca-load-")
        workdir = Path(temporary.name) / "w"
    else:
        workdir = args.workdir
    processes: list[subprocess.Popen] = []
    setup = None
    try:
        print(f"Building {args.certs:,} certificate statuses in {workdir}", file=sys.stderr)
        if server_core is not None and args.presign_workers == 1:
            os.sched_setaffinity(0, {int(server_core)})  # pre-signing: one core
        setup = build(workdir, args.certs, args.seed, presign_workers=args.presign_workers)
        results["setup"] = {"certs": setup.certs, "revoked": setup.revoked, **setup.timings}

        raw = raw_signature_seconds(setup, 0.5 if args.smoke else 3.0)
        builder = builder_seconds(setup, 0.5 if args.smoke else 3.0)
        per_response = setup.timings["presign_seconds"] / setup.timings["presigned"]
        results["signing"] = {
            "raw_signature_us": raw * 1e6,
            "presign_per_response_us": per_response * 1e6,
            "presign_vs_raw": per_response / raw,
            "presign_workers": args.presign_workers,
            "cryptography_builder_us": builder * 1e6,
            "cryptography_builder_vs_presign": builder / per_response,
        }
        os.sched_setaffinity(0, set(range(cores)))
        print(
            f"  raw P-256 signature {raw * 1e6:.1f} us; pre-signing {per_response * 1e6:.1f} us"
            f" per response ({per_response / raw:.2f}x raw); cryptography's builder"
            f" {builder * 1e6:.1f} us",
            file=sys.stderr,
        )

        corpus = make_corpus(setup, args.corpus, args.seed)
        files = workdir / "load"
        files.mkdir(exist_ok=True)
        posts = write_records(files / "posts.rec", corpus.posts)
        gets = write_records(files / "gets.rec", [g.encode() for g in corpus.gets])

        points: dict[str, Point] = {}
        port = free_port()
        va = start_revoca(setup, port, 1, server_core)
        processes.append(va)
        answers = verify_server(setup, corpus, port, "revoca")
        expected = write_records(files / "expected.rec", answers)
        print(f"  verified {len(answers)} VA answers (POST and GET)", file=sys.stderr)
        for connections in (32, 1):
            for mode, records in (("post", posts), ("get", gets)):
                label = f"revoca pre-signed {mode.upper()} c{connections}"
                points[label] = measure(
                    label, port, mode, records, expected, connections, args, client_core
                )
        workers = worker_pids(va.pid) or [va.pid]  # one worker: the process itself
        results["revoca_memory_mb"] = {str(p): rss_mb(p) for p in workers}

        if "fresh" not in skip:
            nonce_corpus = make_corpus(setup, args.corpus, args.seed + 1, nonce=True)
            verify_server(setup, nonce_corpus, port, "revoca fresh", get=False)
            nonce_posts = write_records(files / "nonce-posts.rec", nonce_corpus.posts)
            label = "revoca fresh (nonce) POST c32"
            points[label] = measure(label, port, "post", nonce_posts, None, 32, args, client_core)
        stop(va)
        processes.remove(va)

        if "nginx" not in skip:
            port = free_port()
            nginx, paths = start_nginx(setup, port, server_core, answers)
            processes.append(nginx)
            verify_server(setup, corpus, port, "nginx", paths=paths, expect=answers)
            static = write_records(files / "static.rec", [p.encode() for p in paths])
            for connections in (32, 1):
                for mode in ("static-post", "static-get"):
                    label = f"nginx static {mode.split('-')[1].upper()} c{connections}"
                    points[label] = measure(
                        label, port, mode, static, expected, connections, args, client_core
                    )
            stop(nginx)
            processes.remove(nginx)

        if "openssl" not in skip:
            # `openssl ocsp` (3.0) serves one connection at a time and spins
            # for good on one closed before its request, which is how wrk
            # leaves its idle connections when a run ends: each run gets a
            # new responder process (started before the clock runs).
            port = free_port()
            current: list[subprocess.Popen] = []

            def fresh_openssl() -> int:
                for old in current:
                    stop(old)
                    processes.remove(old)
                current[:] = [start_openssl(setup, port, server_core)]
                processes.append(current[0])
                return current[0].pid

            in_netns(
                fresh_openssl(),
                functools.partial(verify_server, setup, corpus, port, "openssl ocsp", get=False),
            )
            for connections in (32, 1):
                label = f"openssl ocsp POST c{connections}"
                points[label] = measure(
                    label, port, "post", posts, None, connections, args, client_core, fresh_openssl
                )
            for old in current:
                stop(old)
                processes.remove(old)

        if "workers" not in skip and cores >= 2:
            # All cores for the VA, wrk on the same cores: what N workers give
            # when the load generator competes with them (2-core machines).
            port = free_port()
            va = start_revoca(setup, port, cores, None)
            processes.append(va)
            verify_server(setup, corpus, port, f"revoca {cores} workers", get=False)
            label = f"revoca pre-signed POST c32, {cores} workers"
            points[label] = measure(label, port, "post", posts, expected, 32, args, None)
            label = "revoca pre-signed POST c32, 1 worker, unpinned"
            stop(va)
            processes.remove(va)
            va = start_revoca(setup, port, 1, None)
            processes.append(va)
            points[label] = measure(label, port, "post", posts, expected, 32, args, None)
            stop(va)
            processes.remove(va)

        results["points"] = {
            label: {
                "ok": p.ok,
                "rps_median": p.median("rps"),
                "rps_spread": p.spread("rps"),
                "p50_ms_median": p.median("p50_us") / 1000,
                "p99_ms_median": p.median("p99_us") / 1000,
                "p99_ms_spread": [v / 1000 for v in p.spread("p99_us")],
                "runs": p.runs,
            }
            for label, p in points.items()
        }
        results["ratios"] = ratios(points, results["signing"])
        report(results)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
        return 0 if all(p.ok for p in points.values()) else 1
    finally:
        for process in processes:
            stop(process)
        for directory in setup.cleanup if setup is not None else ():
            shutil.rmtree(directory, ignore_errors=True)
        if temporary is not None:
            temporary.cleanup()


def ratios(points: dict[str, Point], signing: dict) -> dict:
    out = {}

    def rate(label):
        p = points.get(label)
        return p.median("rps") if p is not None and p.ok else None

    def p99(label):
        p = points.get(label)
        return p.median("p99_us") if p is not None and p.ok else None

    for method in ("POST", "GET"):
        ours, theirs = rate(f"revoca pre-signed {method} c32"), rate(f"nginx static {method} c32")
        if ours and theirs:
            out[f"pre-signed {method} c32 / nginx (target >= 0.9)"] = ours / theirs
        ours, theirs = p99(f"revoca pre-signed {method} c32"), p99(f"nginx static {method} c32")
        if ours and theirs:
            out[f"pre-signed {method} c32 p99 / nginx p99 (target <= 1.5)"] = ours / theirs
        ours, theirs = rate(f"revoca pre-signed {method} c1"), rate(f"nginx static {method} c1")
        if ours and theirs:
            out[f"pre-signed {method} c1 / nginx"] = ours / theirs
    fresh, openssl = rate("revoca fresh (nonce) POST c32"), rate("openssl ocsp POST c32")
    if fresh and openssl:
        out["fresh (nonce) / openssl ocsp (target >= 3)"] = fresh / openssl
    if fresh:
        out["fresh (nonce) / raw signature rate (target >= 0.7)"] = (
            fresh * signing["raw_signature_us"] / 1e6
        )
    presigned, openssl = rate("revoca pre-signed POST c32"), rate("openssl ocsp POST c32")
    if presigned and openssl:
        out["pre-signed POST / openssl ocsp"] = presigned / openssl
    cores = signing.get("presign_workers", 1)
    label = "pre-signing per response / raw signature (target <= 1.25)"
    if cores != 1:
        label = f"pre-signing wall time per response on {cores} processes / raw signature"
    out[label] = signing["presign_vs_raw"]
    out["cryptography builder / our pre-signing per response"] = signing[
        "cryptography_builder_vs_presign"
    ]
    many = [label for label in points if label.endswith("workers")]
    single = rate("revoca pre-signed POST c32, 1 worker, unpinned")
    if many and single and rate(many[0]):
        out[f"{many[0].rsplit(', ', 1)[1]} / 1 worker (both unpinned, wrk on the same cores)"] = (
            rate(many[0]) / single
        )
    return out


def report(results: dict) -> None:
    print("\nmachine: " + ", ".join(f"{k} {v}" for k, v in results["machine"].items()))
    setup = results["setup"]
    print(
        f"certificates: {setup['certs']:,} ({setup['revoked']:,} revoked); import"
        f" {setup['import_seconds']:.1f} s; pre-signing {setup['presigned']:,} responses on"
        f" {setup['presign_workers']} core(s) {setup['presign_seconds']:.1f} s"
    )
    print(f"\n{'point':<48} {'req/s (min-max)':>26} {'p50 ms':>8} {'p99 ms (min-max)':>20}")
    for label, p in results["points"].items():
        if not p["ok"]:
            print(f"{label:<48} {'FAILED CHECKS: no figure':>26}")
            continue
        low, high = p["rps_spread"]
        p99_low, p99_high = p["p99_ms_spread"]
        print(
            f"{label:<48} {p['rps_median']:>9,.0f} ({low:,.0f}-{high:,.0f})"
            f" {p['p50_ms_median']:>8.2f} {p['p99_ms_median']:>7.2f} ({p99_low:.2f}-{p99_high:.2f})"
        )
    print("\nratios (same run):")
    for label, value in results["ratios"].items():
        print(f"  {label:<72} {value:8.2f}")
    signing = results["signing"]
    print(
        f"\nraw P-256 signature {signing['raw_signature_us']:.1f} us; pre-signing"
        f" {signing['presign_per_response_us']:.1f} us per response; cryptography's"
        f" OCSPResponseBuilder {signing['cryptography_builder_us']:.1f} us"
    )
    memory = results.get("revoca_memory_mb", {})
    for pid, values in memory.items():
        print(
            f"VA worker {pid}: RSS {values.get('VmRSS', 0):.1f} MB"
            f" (own {values.get('RssAnon', 0):.1f} MB,"
            f" LMDB/file pages {values.get('RssFile', 0):.1f} MB)"
        )


if __name__ == "__main__":
    sys.exit(main())
