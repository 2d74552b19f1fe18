"""Device enrollment under load: N concurrent clients enrolling over EST
(RFC 7030, TLS with client certificates) and SCEP (RFC 8894) against a
`revoca enroll serve` process, beside the same issuance called in process
(``RAService.enroll``) in the same run, so that what the protocols and TLS
cost shows as a ratio.

    python -m benchmarks.enroll_bench                          # 32 clients, 32 warm-up, 3 x 300
    python -m benchmarks.enroll_bench --clients 4 --enrollments 8 --repeat 1 --warmup 4
    python -m benchmarks.enroll_bench --modes est,scep --json enroll.json

The server's data directory is made the way an operator would (``revoca ca
init-root``, ``revoca ca create-sub`` twice: ``issuing`` under the Baseline
Requirements, which issues the EST listener's TLS certificate, and the
device CA ``devices`` under ``client-sub-ca``; ``revoca ra entity create``
for the end entity ``fleet``); ``[enroll] ca = "devices"``, its bootstrap
anchors a manufacturer CA made here, ``bootstrap_entity = "fleet"``,
``channel_binding = "optional"``. A copy of that directory, made before
the server starts, is the in-process baseline's store.

Everything a device brings is made before anything is timed, on both
cores: for EST a manufacturer (bootstrap) certificate and P-256 key per
enrollment (each enrolls once, as RFC 7030's bootstrap does) and a CSR of
a new P-256 key; for SCEP an RSA-2048 key, its self-signed signer
certificate and a CSR whose challengePassword is a one-time enrollment
secret of ``fleet`` (one per enrollment, made in the server's store).

Modes (``--modes``):

- ``est``: a new TLS connection per enrollment with the bootstrap
  certificate as client certificate, POST of the base64 CSR to
  ``/.well-known/est/simpleenroll``, the PKCS#7 answer read;
- ``est-keepalive``: one TLS connection per client kept for all of its
  enrollments, each authenticated with HTTP Basic (``fleet`` and a secret),
  since a bootstrap certificate (the connection's) enrolls once;
- ``scep``: PKCSReq over plain HTTP, a new connection per enrollment: the
  request built (``enroll.scepmsg.build_request``: AES-256, SHA-256) for
  the RA certificate from GetCACert, POSTed to
  ``/scep?operation=PKIOperation``, the CertRep read (``parse_cert_rep``);
- in process, on the baseline's store: ``RAService.enroll("fleet",
  csr=...)`` from ``--clients`` threads with EST's CSRs, from one thread
  with them, and from ``--clients`` threads with SCEP's (RSA) CSRs.

Every certificate is checked: it holds the CSR's key and the device CA's
signature verifies. Each mode has a warm-up and ``--repeat`` runs of
``--enrollments``, every run also bounded by ``--seconds``; the run with
the median rate stands for the mode. Reported: enrollments per second,
p50/p99/max latency (connect to checked certificate), the server's CPU per
enrollment (its process tree from /proc; in process: this process's), the
load generator's CPU per enrollment and how busy its core was. With two
cores the server runs on core 0 (``taskset``) and the load generator on
core 1; the in-process baseline runs on core 0, the server stopped. Only
127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import resource
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import cryptography
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from benchmarks.acme_bench import CLIENT_NEAR, CONTENDED, core_seconds, latency, others
from benchmarks.load_servers import free_port, pinned, stop, wait_port
from benchmarks.load_wrk import CLIENT_BOUND, cpu_seconds

PASSPHRASE = "revoca enroll benchmark passphrase"
ENTITY = "fleet"
DOMAIN = "devices.bench.test"
PROTOCOL_MODES = ("est", "est-keepalive", "scep")
INPROC_MODES = ("inproc", "inproc-1", "inproc-rsa")
# A client stops after this many failures in a row.
MAX_CONSECUTIVE_ERRORS = 5
DER = serialization.Encoding.DER
PEM = serialization.Encoding.PEM


class EnrollFailed(Exception):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


# -- the server's data directory ------------------------------------------------------


def _revoca(config: Path, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "revoca", "--config", str(config), *args],
        env={**os.environ, "REVOCA_KEY_PASSPHRASE": PASSPHRASE},
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"revoca {' '.join(args)}: {done.stderr.strip()}")


def write_config(workdir: Path, data_dir: Path, anchors: Path, est: int, scep: int) -> Path:
    config = workdir / f"{data_dir.name}.toml"
    lines = [
        "[paths]",
        f'data_dir = "{data_dir}"',
        "[enroll]",
        'host = "127.0.0.1"',
        f"est_port = {est}",
        f"scep_port = {scep}",
        'ca = "devices"',
        f'bootstrap_anchors = "{anchors}"',
        f'bootstrap_entity = "{ENTITY}"',
        'channel_binding = "optional"',
    ]
    config.write_text("\n".join(lines) + "\n")
    return config


def make_pki(config: Path) -> None:
    _revoca(config, "ca", "init-root", "--name", "root", "--subject", "CN=Bench Root,O=Bench")
    _revoca(
        config, "ca", "create-sub", "--name", "issuing", "--parent", "root",
        "--subject", "CN=Bench Issuing CA,O=Bench",
    )  # fmt: skip
    _revoca(
        config, "ca", "create-sub", "--name", "devices", "--parent", "root",
        "--subject", "CN=Bench Device CA,O=Bench", "--profile", "client-sub-ca",
    )  # fmt: skip
    _revoca(
        config, "ra", "entity", "create", "--name", ENTITY, "--email", "ops@bench.test",
        "--ca", "devices", "--profile", "tls-client",
        "--subject-template", "CN={name},O=Bench Devices", "--allow-san", f"dns:*.{DOMAIN}",
    )  # fmt: skip


def ra_service(config: Path):
    """The RA over the store ``config`` names, in this process."""
    from revoca.cli_enroll import build_enroll_service
    from revoca.config import load_config

    os.environ["REVOCA_KEY_PASSPHRASE"] = PASSPHRASE
    return build_enroll_service(load_config(config)).ra


# -- what devices bring, made before anything is timed --------------------------------


def manufacturer_ca(workdir: Path) -> tuple[Path, bytes, bytes]:
    """A device manufacturer's CA (P-256): the bootstrap anchors' file, its
    certificate and key (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bench Manufacturer CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    path = workdir / "manufacturer.pem"
    path.write_bytes(cert.public_bytes(PEM))
    key_pem = key.private_bytes(
        PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return path, cert.public_bytes(PEM), key_pem


def _key_usage(*, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _csr(key, cn: str, password: str | None = None) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    builder = builder.add_extension(
        x509.SubjectAlternativeName([x509.DNSName(f"{cn}.{DOMAIN}")]), critical=False
    )
    if password is not None:
        builder = builder.add_attribute(x509.oid.AttributeOID.CHALLENGE_PASSWORD, password.encode())
    return builder.sign(key, hashes.SHA256()).public_bytes(DER)


def _est_devices(job: tuple) -> list[tuple[bytes, bytes]]:
    """(bootstrap certificate and key as one PEM, CSR DER) for devices
    ``first`` .. ``first + count - 1``."""
    first, count, ca_pem, ca_key_pem = job
    ca = x509.load_pem_x509_certificate(ca_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, None)
    now = dt.datetime.now(dt.UTC)
    out = []
    for number in range(first, first + count):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, f"SN{number}")]))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key()), False
            )
            .sign(ca_key, hashes.SHA256())
        )
        pem = cert.public_bytes(PEM) + key.private_bytes(
            PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        out.append((pem, _csr(ec.generate_private_key(ec.SECP256R1()), f"est-{number}")))
    return out


def _basic_devices(job: tuple) -> list[bytes]:
    first, count = job
    return [
        _csr(ec.generate_private_key(ec.SECP256R1()), f"estb-{n}")
        for n in range(first, first + count)
    ]


def _scep_devices(job: tuple) -> list[tuple[bytes, bytes, bytes]]:
    """(RSA-2048 key DER, self-signed signer certificate DER, CSR DER with
    the secret as challengePassword) per secret."""
    first, secrets = job
    now = dt.datetime.now(dt.UTC)
    out = []
    for number, secret in enumerate(secrets, first):
        key = rsa.generate_private_key(65537, 2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"scep-{number}")])
        signer = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256())
        )
        key_der = key.private_bytes(
            DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        out.append((key_der, signer.public_bytes(DER), _csr(key, f"scep-{number}", secret)))
    return out


def _spread(pool: ProcessPoolExecutor, fn, total: int, extra=None) -> list:
    """``fn`` over ``total`` items in chunks on the pool's processes, in order."""
    chunk = max(1, -(-total // 8))
    jobs = []
    for first in range(0, total, chunk):
        count = min(chunk, total - first)
        if extra is None:
            jobs.append((first, count))
        elif callable(extra):
            jobs.append(extra(first, count))
        else:
            jobs.append((first, count, *extra))
    out: list = []
    for part in pool.map(fn, jobs):
        out += part
    return out


@dataclass
class EstDevice:
    context: ssl.SSLContext
    csr: bytes


@dataclass
class BasicDevice:
    authorization: str
    csr: bytes


@dataclass
class ScepDevice:
    key: rsa.RSAPrivateKey
    signer: x509.Certificate
    csr: bytes


def client_context(root_pem: bytes, pem_file: Path | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=root_pem.decode())
    if pem_file is not None:
        context.load_cert_chain(pem_file)
    return context


# -- HTTP/1.1 over asyncio streams ----------------------------------------------------


async def exchange(reader, writer, path: str, body: bytes, headers: dict) -> tuple[int, bytes]:
    """One POST; (status, body). The answer must carry Content-Length."""
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    writer.write(head.encode() + body)
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    if "content-length" not in fields:
        raise EnrollFailed("http", f"an answer without Content-Length: {lines[0]}")
    data = await reader.readexactly(int(fields["content-length"]))
    return status, data


async def _close(writer) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), 1)


def checked(cert: x509.Certificate, csr_der: bytes, issuer: x509.Certificate) -> x509.Certificate:
    """The certificate holds the CSR's key and the issuer's signature verifies."""
    csr = x509.load_der_x509_csr(csr_der)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(DER, spki) != csr.public_key().public_bytes(DER, spki):
        raise EnrollFailed("wrong key", "the certificate does not hold the CSR's key")
    cert.verify_directly_issued_by(issuer)
    return cert


# -- the clients ----------------------------------------------------------------------


@dataclass
class Run:
    """What a run's clients (tasks or threads) share."""

    items: collections.deque
    stop_at: float
    timeout: float
    latencies: list[float] = field(default_factory=list)
    serials: set = field(default_factory=set)
    errors: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)
    started: int = 0

    def take(self):
        if time.monotonic() >= self.stop_at:
            return None
        try:
            item = self.items.popleft()
        except IndexError:
            return None
        self.started += 1
        return item

    def fail(self, exc: BaseException) -> None:
        kind = exc.kind if isinstance(exc, EnrollFailed) else type(exc).__name__
        self.errors[kind] += 1
        self.examples.setdefault(kind, str(exc)[:300])

    def done(self, seconds: float, cert: x509.Certificate) -> None:
        self.latencies.append(seconds)
        self.serials.add(cert.serial_number)


@dataclass
class Target:
    est_port: int
    scep_port: int
    root_pem: bytes
    device_ca: x509.Certificate
    ra_cert: x509.Certificate | None = None


async def est_enroll(target: Target, device: EstDevice) -> x509.Certificate:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", target.est_port, ssl=device.context, server_hostname="127.0.0.1"
    )
    try:
        headers = {"Content-Type": "application/pkcs10", "Connection": "close"}
        status, body = await exchange(
            reader, writer, "/.well-known/est/simpleenroll", base64.encodebytes(device.csr), headers
        )
    finally:
        await _close(writer)
    return _est_answer(target, status, body, device.csr)


def _est_answer(target: Target, status: int, body: bytes, csr: bytes) -> x509.Certificate:
    if status != 200:
        raise EnrollFailed(f"HTTP {status}", body.decode("utf-8", "replace"))
    (cert,) = pkcs7.load_der_pkcs7_certificates(base64.b64decode(body))
    return checked(cert, csr, target.device_ca)


class KeptConnection:
    """A client's one TLS connection, opened again should the server close it."""

    def __init__(self, target: Target, context: ssl.SSLContext):
        self.target, self.context = target, context
        self.streams = None

    async def enroll(self, device: BasicDevice) -> x509.Certificate:
        if self.streams is None:
            self.streams = await asyncio.open_connection(
                "127.0.0.1", self.target.est_port, ssl=self.context, server_hostname="127.0.0.1"
            )
        reader, writer = self.streams
        headers = {"Content-Type": "application/pkcs10", "Authorization": device.authorization}
        try:
            status, body = await exchange(
                reader,
                writer,
                "/.well-known/est/simpleenroll",
                base64.encodebytes(device.csr),
                headers,
            )
        except BaseException:
            await self.close()
            raise
        return _est_answer(self.target, status, body, device.csr)

    async def close(self) -> None:
        if self.streams is not None:
            await _close(self.streams[1])
            self.streams = None


async def scep_enroll(target: Target, device: ScepDevice) -> x509.Certificate:
    from enroll.scepmsg import build_request, parse_cert_rep

    spki = device.key.public_key().public_bytes(
        DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    message = build_request(
        "PKCSReq",
        device.csr,
        signer_cert=device.signer,
        signer_key=device.key,
        recipient_cert=target.ra_cert,
        transaction_id=hashlib.sha256(spki).hexdigest(),
        sender_nonce=os.urandom(16),
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", target.scep_port)
    try:
        headers = {"Content-Type": "application/x-pki-message", "Connection": "close"}
        status, body = await exchange(
            reader, writer, "/scep?operation=PKIOperation", message, headers
        )
    finally:
        await _close(writer)
    if status != 200:
        raise EnrollFailed(f"HTTP {status}", body.decode("utf-8", "replace"))
    rep = parse_cert_rep(
        body,
        signer_cert_expected=target.ra_cert,
        recipient_key=device.key,
        recipient_cert=device.signer,
    )
    if rep.status != "SUCCESS":
        raise EnrollFailed(f"SCEP {rep.status}", f"{rep.fail_info}: {rep.fail_info_text}")
    (cert,) = [c for c in rep.certificates if c.public_key() == device.key.public_key()] or [None]
    if cert is None:
        raise EnrollFailed("wrong key", "no certificate in the CertRep holds the device's key")
    return checked(cert, device.csr, target.device_ca)


async def get_ra_cert(target: Target) -> x509.Certificate:
    url = f"http://127.0.0.1:{target.scep_port}/scep?operation=GetCACert"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        body = await response.read()
        if response.status != 200:
            raise RuntimeError(f"GetCACert: HTTP {response.status}: {body[:200]!r}")
    certs = pkcs7.load_der_pkcs7_certificates(body)
    for cert in certs:
        try:
            ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            ca = False
        if not ca:
            return cert
    raise RuntimeError("GetCACert carries no RA certificate")


async def protocol_clients(mode: str, target: Target, run: Run, clients: int) -> None:
    async def client() -> None:
        kept = KeptConnection(target, client_context(target.root_pem))
        failures = 0
        try:
            while (item := run.take()) is not None:
                started = time.perf_counter()
                try:
                    if mode == "est":
                        call = est_enroll(target, item)
                    elif mode == "est-keepalive":
                        call = kept.enroll(item)
                    else:
                        call = scep_enroll(target, item)
                    cert = await asyncio.wait_for(call, run.timeout)
                except Exception as exc:
                    run.fail(exc)
                    failures += 1
                    if failures >= MAX_CONSECUTIVE_ERRORS:
                        return
                    continue
                failures = 0
                run.done(time.perf_counter() - started, cert)
        finally:
            await kept.close()

    await asyncio.gather(*(client() for _ in range(clients)))


def inproc_clients(ra, device_ca, run: Run, threads: int) -> None:
    def client() -> None:
        failures = 0
        while (csr := run.take()) is not None:
            started = time.perf_counter()
            try:
                enrollment = ra.enroll(ENTITY, csr=csr, actor="bench")
                cert = checked(enrollment.certificate.certificate, csr, device_ca)
            except Exception as exc:
                run.fail(exc)
                failures += 1
                if failures >= MAX_CONSECUTIVE_ERRORS:
                    return
                continue
            failures = 0
            run.done(time.perf_counter() - started, cert)

    workers = [threading.Thread(target=client, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    deadline = run.stop_at + run.timeout + 10
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
    if any(worker.is_alive() for worker in workers):
        run.fail(EnrollFailed("phase timeout", "threads still busy after the run's bound"))


# -- one timed run --------------------------------------------------------------------


def _rusage() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(items: list, args, server_pid: int | None, cores: tuple, drive) -> dict:
    """Drive one run of ``items`` (``drive(run)``); figures around it.
    ``server_pid`` None: the work is in this process (in process)."""
    run = Run(collections.deque(items), 0.0, args.timeout)
    server_core, client_core = cores
    before_cores = core_seconds()
    server_cpu = cpu_seconds(server_pid) if server_pid else None
    own, wall = _rusage(), time.monotonic()
    run.stop_at = wall + args.seconds
    drive(run)
    wall = time.monotonic() - wall
    own = _rusage() - own
    if server_pid:
        server_cpu = cpu_seconds(server_pid) - server_cpu
        client_cpu = own
    else:
        server_cpu, client_cpu = own, None
    after_cores = core_seconds()
    issued = len(run.latencies)
    result = {
        "started": run.started,
        "enrolled": issued,
        "distinct_serials": len(run.serials),
        "errors": dict(run.errors),
        "error_examples": run.examples,
        "seconds": round(wall, 3),
        "enrollments_per_second": round(issued / wall, 2) if wall else None,
        **latency(run.latencies),
        "server_cpu_seconds": round(server_cpu, 3),
        "server_cpu_ms_per_enrollment": round(server_cpu / issued * 1e3, 3) if issued else None,
        "server_busy": round(server_cpu / wall, 3) if wall else None,
        "client_cpu_seconds": None if client_cpu is None else round(client_cpu, 3),
        "client_cpu_ms_per_enrollment": (
            round(client_cpu / issued * 1e3, 3) if client_cpu is not None and issued else None
        ),
        "client_busy": round(client_cpu / wall, 3) if client_cpu is not None and wall else None,
    }
    result["client_bound"] = bool(result["client_busy"] and result["client_busy"] > CLIENT_BOUND)
    shared = {
        "server_core": others(before_cores, after_cores, server_core, server_cpu, wall),
        "client_core": (
            others(before_cores, after_cores, client_core, client_cpu, wall)
            if client_cpu is not None
            else None
        ),
    }
    result["other_load"] = shared
    result["contended"] = any(
        c is not None and (c["others"] > CONTENDED or c["steal"] > CONTENDED)
        for c in shared.values()
    )
    return result


def phases(items: list, args, server_pid, cores, drive) -> dict:
    """The warm-up and ``--repeat`` runs of one mode, over ``items`` (enough
    for all of them, each used once); the median run by rate."""
    out: dict = {}
    at = 0
    if args.warmup:
        out["warmup"] = measure(items[: args.warmup], args, server_pid, cores, drive)
        at = args.warmup
    out["runs"] = []
    for _ in range(args.repeat):
        batch = items[at : at + args.enrollments]
        at += args.enrollments
        out["runs"].append(measure(batch, args, server_pid, cores, drive))
    runs = out["runs"]
    clean = [i for i, r in enumerate(runs) if not r["contended"]] or list(range(len(runs)))
    ranked = sorted(clean, key=lambda i: runs[i]["enrollments_per_second"] or 0)
    out["median"] = ranked[len(ranked) // 2]
    out["median_of"] = "uncontended runs" if len(clean) < len(runs) else "all runs"
    return out


# -- the whole benchmark --------------------------------------------------------------


def machine() -> dict:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": f"{platform.python_version()} ({os.path.realpath(sys.executable)})",
        "openssl": ssl.OPENSSL_VERSION,
        "aiohttp": aiohttp.__version__,
        "cryptography": cryptography.__version__,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def bench(args, workdir: Path) -> dict:
    cores = os.cpu_count() or 1
    server_core, client_core = ("0", "1") if cores >= 2 else (None, None)
    results: dict = {
        "machine": machine(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "pinned": {"server_core": server_core, "client_core": client_core},
        "modes": {},
    }
    per_mode = args.warmup + args.repeat * args.enrollments
    modes = args.modes
    timings: dict = {}
    started = time.monotonic()

    anchors, ca_pem, ca_key_pem = manufacturer_ca(workdir)
    est_port, scep_port = free_port(), free_port()
    server_config = write_config(workdir, workdir / "server", anchors, est_port, scep_port)
    make_pki(server_config)
    # The baseline's store: the same PKI, copied before the server ever ran.
    shutil.copytree(workdir / "server", workdir / "inproc")
    inproc_config = write_config(workdir, workdir / "inproc", anchors, -1, -1)
    timings["pki_seconds"] = round(time.monotonic() - started, 3)

    started = time.monotonic()
    ra = ra_service(server_config)
    device_ca = ra.ca.get_ca("devices").certificate
    root_pem = ra.ca.get_ca("root").certificate.public_bytes(PEM)
    needs_scep = "scep" in modes or "inproc-rsa" in modes
    scep_secrets = (
        [ra.create_secret(ENTITY, actor="bench")["secret"] for _ in range(per_mode)]
        if needs_scep
        else []
    )
    basic_secrets = (
        [ra.create_secret(ENTITY, actor="bench")["secret"] for _ in range(per_mode)]
        if "est-keepalive" in modes
        else []
    )
    del ra
    with ProcessPoolExecutor(max(1, cores)) as pool:
        est_raw = _spread(pool, _est_devices, per_mode, (ca_pem, ca_key_pem))
        basic_raw = _spread(pool, _basic_devices, per_mode) if basic_secrets else []
        scep_raw = (
            _spread(
                pool,
                _scep_devices,
                per_mode,
                lambda first, count: (first, scep_secrets[first : first + count]),
            )
            if needs_scep
            else []
        )
    pem_dir = workdir / "devices"
    pem_dir.mkdir()
    est_devices = []
    for number, (pem, csr) in enumerate(est_raw):
        path = pem_dir / f"est-{number}.pem"
        path.write_bytes(pem)
        est_devices.append(EstDevice(client_context(root_pem, path), csr))
    basic_devices = [
        BasicDevice("Basic " + base64.b64encode(f"{ENTITY}:{s}".encode()).decode(), csr)
        for s, csr in zip(basic_secrets, basic_raw, strict=True)
    ]
    scep_devices = [
        ScepDevice(
            serialization.load_der_private_key(key, None),
            x509.load_der_x509_certificate(signer),
            csr,
        )
        for key, signer, csr in scep_raw
    ]
    timings["devices_seconds"] = round(time.monotonic() - started, 3)
    results["preparation"] = timings

    affinity = os.sched_getaffinity(0)
    target = Target(est_port, scep_port, root_pem, device_ca)
    wanted = [m for m in PROTOCOL_MODES if m in modes]
    if wanted:
        argv = [sys.executable, "-m", "revoca", "--config", str(server_config)]
        process = subprocess.Popen(
            pinned(server_core, [*argv, "enroll", "serve"]),
            env={**os.environ, "REVOCA_KEY_PASSPHRASE": PASSPHRASE},
            stdout=open(workdir / "server.log", "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        try:
            wait_port(scep_port, process, timeout=60)
            wait_port(est_port, process, timeout=60)
            if client_core is not None:
                os.sched_setaffinity(0, {int(client_core)})
            results["server_pid"] = process.pid
            with contextlib.suppress(OSError):
                results["pinned"]["server_affinity"] = sorted(os.sched_getaffinity(process.pid))
            loop = _new_loop()
            try:
                if "scep" in wanted:
                    target.ra_cert = loop.run_until_complete(get_ra_cert(target))
                items = {"est": est_devices, "est-keepalive": basic_devices, "scep": scep_devices}
                for mode in wanted:
                    print(f"{mode}: {args.clients} clients ...", file=sys.stderr)

                    def drive(run, mode=mode):
                        loop.run_until_complete(
                            asyncio.wait_for(
                                protocol_clients(mode, target, run, args.clients),
                                args.seconds + args.timeout + 10,
                            )
                        )

                    results["modes"][mode] = phases(
                        items[mode],
                        args,
                        process.pid,
                        (server_core, client_core),
                        _bounded(drive),
                    )
            finally:
                loop.close()
        finally:
            os.sched_setaffinity(0, affinity)
            stop(process)

    wanted = [m for m in INPROC_MODES if m in modes]
    if wanted:
        ra = ra_service(inproc_config)
        if server_core is not None:
            os.sched_setaffinity(0, {int(server_core)})
        try:
            est_csrs = [d.csr for d in est_devices]
            scep_csrs = [d.csr for d in scep_devices]
            for mode in wanted:
                print(f"{mode} ...", file=sys.stderr)
                threads = 1 if mode == "inproc-1" else args.clients
                csrs = scep_csrs if mode == "inproc-rsa" else est_csrs

                def drive(run, threads=threads):
                    inproc_clients(ra, device_ca, run, threads)

                results["modes"][mode] = phases(csrs, args, None, (server_core, None), drive)
                results["modes"][mode]["threads"] = threads
        finally:
            os.sched_setaffinity(0, affinity)
    results["ratios"] = ratios(results["modes"])
    return results


def _new_loop():
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


def _bounded(drive):
    def bounded(run: Run) -> None:
        try:
            drive(run)
        except TimeoutError:
            run.fail(EnrollFailed("phase timeout", "clients still busy after the run's bound"))

    return bounded


def median_run(mode: dict) -> dict:
    return mode["runs"][mode["median"]]


def ratios(modes: dict) -> dict:
    """Each protocol against the in-process issuance with the same CSRs and
    as many callers, at the median runs: rate and server CPU per enrollment."""
    out = {}
    for protocol, baseline in (
        ("est", "inproc"),
        ("est-keepalive", "inproc"),
        ("scep", "inproc-rsa"),
    ):
        if protocol in modes and baseline in modes:
            p, b = median_run(modes[protocol]), median_run(modes[baseline])
            out[f"{protocol}/{baseline}"] = {
                "rate": _ratio(p["enrollments_per_second"], b["enrollments_per_second"]),
                "p99": _ratio(p["p99_ms"], b["p99_ms"]),
                "server_cpu_per_enrollment": _ratio(
                    p["server_cpu_ms_per_enrollment"], b["server_cpu_ms_per_enrollment"]
                ),
            }
    return out


def _ratio(a, b) -> float | None:
    return round(a / b, 3) if a and b else None


LABELS = {
    "est": "EST, TLS per enrollment, bootstrap cert",
    "est-keepalive": "EST, kept TLS, HTTP Basic",
    "scep": "SCEP PKCSReq, HTTP",
    "inproc": "in process, {clients} threads",
    "inproc-1": "in process, 1 thread",
    "inproc-rsa": "in process, {clients} thr., RSA CSRs",
}


def report(results: dict) -> str:
    clients = results["args"]["clients"]
    m = results["machine"]
    lines = [
        f"Enrollment, {clients} clients; {m['cpu']}, {m['cores']} cores, load average"
        f" {m['load_average']}; preparation {results['preparation']}",
    ]
    for mode, figures in results["modes"].items():
        named = [("warm-up", figures["warmup"])] if "warmup" in figures else []
        named += [(f"run {i}", r) for i, r in enumerate(figures["runs"], 1)]
        for name, r in named:
            errors = sum(r["errors"].values())
            lines.append(
                f"  {mode} {name}: {r['enrolled']} of {r['started']} in {r['seconds']:.2f} s,"
                f" {r['enrollments_per_second']}/s; errors {errors}"
                + (f" {r['errors']}" if errors else "")
                + (" CLIENT-BOUND" if r["client_bound"] else "")
                + (" CONTENDED" if r["contended"] else "")
            )
    head = (
        f"  {'mode (median run)':<40}{'enroll/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'srv ms':>8}{'srv busy':>9}{'cli ms':>8}{'cli busy':>9}"
    )
    lines += ["", head]

    def cell(value, fmt, width):
        return f"{'-' if value is None else format(value, fmt):>{width}}"

    for mode, figures in results["modes"].items():
        r = median_run(figures)
        lines.append(
            f"  {LABELS[mode].format(clients=clients):<40}"
            + cell(r["enrollments_per_second"], ".1f", 9)
            + cell(r["p50_ms"], ".1f", 9)
            + cell(r["p99_ms"], ".1f", 9)
            + cell(r["server_cpu_ms_per_enrollment"], ".2f", 8)
            + cell(r["server_busy"], ".0%", 9)
            + cell(r["client_cpu_ms_per_enrollment"], ".2f", 8)
            + cell(r["client_busy"], ".0%", 9)
        )
        for kind, example in r["error_examples"].items():
            lines.append(f"    error {kind}: {example}")
    for name, ratio in results["ratios"].items():
        lines.append(
            f"  {name}: rate {ratio['rate']}, p99 {ratio['p99']},"
            f" server CPU per enrollment {ratio['server_cpu_per_enrollment']}"
        )
    busy = [
        mode
        for mode, f in results["modes"].items()
        if (median_run(f)["client_busy"] or 0) > CLIENT_NEAR
    ]
    if busy:
        lines.append(
            f"  near saturation: the client core was over {CLIENT_NEAR:.0%} busy in"
            f" {', '.join(busy)}"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (threads)")
    parser.add_argument("--enrollments", type=int, default=300, help="enrollments per timed run")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per mode")
    parser.add_argument(
        "--warmup", type=int, default=None, help="enrollments before the runs (default: --clients)"
    )
    parser.add_argument(
        "--seconds", type=float, default=60, help="a run starts no enrollment after this"
    )
    parser.add_argument("--timeout", type=float, default=30, help="seconds one enrollment may take")
    parser.add_argument(
        "--modes",
        default=",".join(PROTOCOL_MODES + INPROC_MODES),
        help="comma-separated: " + ", ".join(PROTOCOL_MODES + INPROC_MODES),
    )
    parser.add_argument(
        "--workdir", type=Path, help="data directories and logs, a new directory (default: temp)"
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    if args.warmup is None:
        args.warmup = args.clients
    for option in ("clients", "enrollments", "repeat", "seconds", "timeout"):
        if getattr(args, option) <= 0:
            parser.error(f"--{option} must be positive")
    args.modes = [m for m in args.modes.split(",") if m]
    unknown = set(args.modes) - set(PROTOCOL_MODES + INPROC_MODES)
    if unknown:
        parser.error(f"--modes: unknown {', '.join(sorted(unknown))}")
    if args.workdir is not None and args.workdir.exists() and any(args.workdir.iterdir()):
        parser.error(f"--workdir {args.workdir} is not empty")
    if shutil.which("taskset") is None and (os.cpu_count() or 1) >= 2:
        parser.error("taskset is not installed (Debian: util-linux)")
    temporary = None
    if args.workdir is None:
        temporary = tempfile.TemporaryDirectory(prefix="revoca-enroll-")
        workdir = Path(temporary.name)
    else:
        workdir = args.workdir
        workdir.mkdir(parents=True, exist_ok=True)
    try:
        results = bench(args, workdir)
    finally:
        if temporary is not None:
            temporary.cleanup()
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    clean = all(
        r["enrolled"] and not r["errors"] and r["distinct_serials"] == r["enrolled"]
        for mode in results["modes"].values()
        for r in [*mode["runs"], *([mode["warmup"]] if "warmup" in mode else [])]
    )
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
