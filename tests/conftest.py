"""Shared fixtures: a CA service on a temporary store, helpers to make
requests and to run the third-party validators (openssl, pkilint), and the
one way a test runs on both implementations of a native module."""

import asyncio
import glob
import importlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from sqlalchemy import func, select

from ca.keys import PassphraseSource, generate_private_key
from ca.service import CAService
from ca.token import SoftwareToken
from common import native, pkcs8
from revoca.config import load_config
from store import Store
from store.audit_key import AuditKey
from store.tables.audit import audit_log
from store.tables.ca import certificates
from store.tables.outbox import outbox

PASSPHRASE = "correct horse battery staple"
# pkilint's CA/B Forum lints refuse internal names (127.0.0.1) in AIA and CRL
# URLs, as a public CA must; certificates linted against the BR use this base.
PUBLIC_BASE_URL = "http://pki.example.com"


# -- system packages ------------------------------------------------------------
#
# A test that runs a program from a Debian package skips, naming the package,
# where it is missing (a fresh Debian 12 with Python 3.11 runs the suite; .ci/run
# installs them all and sets REVOCA_TESTS_NEED_ALL=1, so there a missing one
# fails instead). ``need`` is the one check; a test that runs one of these
# programs without it and finds it missing is skipped the same way (the hooks
# below), so no test fails for a package that is not installed.

PACKAGES = {
    "openssl": "openssl",
    "unzip": "unzip",
    "wrk": "wrk",
    "nginx": "nginx-light",
    "gnutls-cli": "gnutls-bin",
    "certtool": "gnutls-bin",
    "ip": "iproute2",
    "ss": "iproute2",
    "taskset": "util-linux",
    "unshare": "util-linux",
    "gcc": "gcc",
    "initdb": "postgresql",
    "pg_ctl": "postgresql",
    "pebble": "pebble",
    "pebble-challtestsrv": "pebble",
    "lego": "lego",
    "scepclient": "scep",
    "curl": "curl",
}
NEED_ALL = "REVOCA_TESTS_NEED_ALL"


def need(tool: str, package: str | None = None, *, found: str | None = None) -> str:
    """The path of the program ``tool``; skip the test, naming the Debian
    package that holds it (``package``, or the one PACKAGES knows), when it is
    missing. ``found``: where the caller looked instead of $PATH (None: not
    there). With $REVOCA_TESTS_NEED_ALL set (CI) a missing one fails the test."""
    package = package or PACKAGES.get(tool, tool)
    path = found if found is not None else shutil.which(tool)
    if not path:
        message = f"needs {tool}: install the Debian package {package}"
        if os.environ.get(NEED_ALL):
            pytest.fail(f"{message} ({NEED_ALL} is set)")
        pytest.skip(message)
    return path


def _missing_program(exc: FileNotFoundError) -> str | None:
    """The known program a test tried to run and did not find."""
    tool = os.path.basename(str(exc.filename or ""))
    return tool if tool in PACKAGES and shutil.which(tool) is None else None


def _skipping_missing_programs():
    """The body of a hook wrapper: a known program a test (or its setup)
    did not find skips it, naming the package (``need``)."""
    try:
        return (yield)
    except FileNotFoundError as exc:
        if (tool := _missing_program(exc)) is not None:
            need(tool)
        raise


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    return (yield from _skipping_missing_programs())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    return (yield from _skipping_missing_programs())


def postgres_bindir() -> Path:
    """Where the PostgreSQL server's programs are (the newest installed)."""
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(need("initdb", found=binaries[-1] if binaries else "")).parent


@pytest.fixture(autouse=True)
def key_passphrase(monkeypatch):
    monkeypatch.setenv("REVOCA_KEY_PASSPHRASE", PASSPHRASE)
    return PASSPHRASE


# Key files cost about 0.2 s each to write and to read at the real scrypt cost
# (common/pkcs8.py). Tests that are not about that encryption make their keys
# in this process at a cheap cost (as test settings swap in a fast password
# hasher); tests marked ``key_file_cost`` keep the real one, and every
# `revoca` subprocess always has it.
CHEAP_KEY_COST = pkcs8.ScryptCost(n=2**4, r=8, p=1)


@pytest.fixture(autouse=True)
def key_file_cost(request, monkeypatch):
    if request.node.get_closest_marker("key_file_cost") is None:
        monkeypatch.setattr(pkcs8, "KEY_FILE_COST", CHEAP_KEY_COST)
    return pkcs8.KEY_FILE_COST


# -- native modules and their pure-Python twins --------------------------------
#
# A codec-level test takes ``impl`` (or ``implementation``) and runs once per
# implementation, as aiohttp runs its parser tests over [Py, C]. A test that
# goes through a façade (va.fastocsp, va.fastlane, ca.crlcore, va.signing)
# is marked ``twin``: `make test-python` runs every ``twin`` test (the
# ``python`` runs of ``impl`` included) with REVOCA_NO_EXTENSIONS=1, so the
# twin's set is defined here and by the markers alone. A test that needs the
# native module itself is marked ``needs_native`` and skips under the twin.

TWIN_ONLY = "REVOCA_NO_EXTENSIONS=1: the native modules are switched off"

needs_native = pytest.mark.skipif(
    not native.extensions_allowed(), reason=f"needs the native module; {TWIN_ONLY}"
)


def native_module(name: str):
    """The native module ``name`` for a test that needs it: a failure, not a
    skip, when it is not built (the build must provide it)."""
    if not native.extensions_allowed():
        pytest.skip(f"needs {name}; {TWIN_ONLY}")
    module = native.load(name)
    if module is None:
        pytest.fail(f"{name} is not built: run `make compile` (or `pip install -e .`)")
    return module


@pytest.fixture(
    params=[pytest.param("python", marks=pytest.mark.twin), pytest.param("native")],
)
def implementation(request) -> str:
    """ "python" (the twin) or "native": the test runs once with each."""
    if request.param == "native" and not native.extensions_allowed():
        pytest.skip(f"the native run; {TWIN_ONLY}")
    return request.param


@pytest.fixture
def impl(request, implementation):
    """The module under test in each implementation, named by the closest
    ``codec`` marker: ``pytestmark = pytest.mark.codec("va._fastocsp",
    "va._fastocsp_py")`` gives the native module, then its twin."""
    marker = request.node.get_closest_marker("codec")
    if marker is None:
        raise pytest.UsageError(f"{request.node.nodeid}: impl needs a codec(native, twin) marker")
    native_name, twin_name = marker.args
    if implementation == "python":
        return importlib.import_module(twin_name)
    return native_module(native_name)


@pytest.fixture
def make_service(tmp_path):
    stores = []

    def make(*, base_url="http://127.0.0.1:8080", clock=None, directory=None, url=None, **kwargs):
        directory = directory or tmp_path
        config = load_config(None, data_dir=directory)
        store = Store.open(url or f"sqlite:///{directory / 'revoca.db'}")
        stores.append(store)
        extra = {"clock": clock} if clock else {}
        kwargs.setdefault("delta_url", config.crl.delta_url)  # as the shipped configuration
        return CAService(
            store,
            SoftwareToken(directory / "keys", PassphraseSource()),
            config.profiles,
            base_url=base_url,
            passphrase=PassphraseSource(),
            audit_key=AuditKey.in_directory(directory / "keys", PassphraseSource().get),
            **extra,
            **kwargs,
        )

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def service(make_service):
    return make_service()


@pytest.fixture
def pki(service):
    """A root (P-384) and an issuing CA (P-256)."""
    service.init_root("root", "CN=Test Root,O=Revoca Tests,C=DE", key_type="ec-p384")
    service.create_sub("issuing", "root", "CN=Test Issuing CA,O=Revoca Tests,C=DE")
    return service


def new_key(spec: str = "ec-p256"):
    """A private key by spec; also specs the CA refuses (ec-p521, rsa-1024)."""
    if spec == "ec-p521":
        return ec.generate_private_key(ec.SECP521R1())
    if spec == "rsa-1024":
        return rsa.generate_private_key(65537, 1024)
    return generate_private_key(spec)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def self_signed(
    key, common_name: str, *, days: int = 2, ca: bool = True, dns_names: tuple[str, ...] = ()
) -> x509.Certificate:
    """A minimal self-signed certificate for tests that need one from outside
    the CA (``dns_names``: a SAN extension, for a TLS server's host name)."""
    from datetime import timedelta

    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(5)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if dns_names:
        san = x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names])
        builder = builder.add_extension(san, critical=False)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


def make_csr(
    cn: str | None = "www.example.com", sans=("dns:www.example.com",), key=None, extra_attributes=()
) -> bytes:
    key = key or new_key()
    attrs = [x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)] if cn else []
    attrs += list(extra_attributes)
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    names = []
    for san in sans:
        kind, _, value = san.partition(":")
        names.append(
            {
                "dns": x509.DNSName,
                "email": x509.RFC822Name,
                "uri": x509.UniformResourceIdentifier,
            }[kind](value)
            if kind != "ip"
            else x509.IPAddress(__import__("ipaddress").ip_address(value))
        )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM)


def write_tls_files(service, directory: Path, client_subject: str = "CN=publisher") -> Path:
    """``directory`` with server.pem/.key (for 127.0.0.1), client.pem/.key
    (``client_subject``) issued by the service's CA "issuing", and
    chain.pem; keys encrypted with PASSPHRASE."""
    directory.mkdir()
    for name, profile, subject, sans in (
        ("server", "tls-server", "CN=127.0.0.1", ["ip:127.0.0.1"]),
        ("client", "tls-client", client_subject, []),
    ):
        record = service.issue_with_new_key("issuing", profile, subject, sans)
        (directory / f"{name}.pem").write_bytes(pem(record.certificate))
        (directory / f"{name}.key").write_bytes(service.private_key_pem("issuing", record.serial))
    (directory / "chain.pem").write_bytes(b"".join(pem(c) for c in service.chain("issuing")))
    return directory


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def counts(service) -> dict:
    """Row counts of what a refused operation must not touch."""
    with service.store.transaction() as conn:
        return {
            "certificates": conn.execute(select(func.count()).select_from(certificates)).scalar(),
            "outbox": conn.execute(select(func.count()).select_from(outbox)).scalar(),
        }


def last_audit(service):
    with service.store.transaction() as conn:
        return conn.execute(select(audit_log).order_by(audit_log.c.seq.desc()).limit(1)).one()


def openssl_verify(tmp_path: Path, root, chain: list, leaf, *options: str):
    """`openssl verify -x509_strict` of ``leaf`` against ``root`` via ``chain``."""
    need("openssl")
    (tmp_path / "v-root.pem").write_bytes(pem(root))
    (tmp_path / "v-untrusted.pem").write_bytes(b"".join(pem(c) for c in chain) or pem(root))
    (tmp_path / "v-leaf.pem").write_bytes(pem(leaf))
    return subprocess.run(
        [
            "openssl",
            "verify",
            "-x509_strict",
            *options,
            "-CAfile",
            tmp_path / "v-root.pem",
            "-untrusted",
            tmp_path / "v-untrusted.pem",
            tmp_path / "v-leaf.pem",
        ],
        capture_output=True,
        text=True,
    )


def pkilint(tool: str, path: Path, *extra: str) -> list[str]:
    """Findings at ERROR or above from a pkilint command (empty: clean)."""
    exe = shutil.which(tool)
    assert exe, f"{tool} is not installed (pip install pkilint)"
    result = subprocess.run(
        [exe, "lint", *extra, "-s", "ERROR", str(path)], capture_output=True, text=True
    )
    findings = [
        line for line in result.stdout.splitlines() if "(ERROR)" in line or "(FATAL)" in line
    ]
    assert result.returncode == len(findings) or findings, result.stdout + result.stderr
    return findings


def pkilint_findings(tool: str, path: Path, *extra: str) -> set[tuple[str, str, str]]:
    """Every finding at NOTICE or above from a pkilint command, as (severity,
    code, message) (message "" when pkilint gives none)."""
    import json

    exe = shutil.which(tool)
    assert exe, f"{tool} is not installed (pip install pkilint)"
    result = subprocess.run(
        [exe, "lint", *extra, "-s", "NOTICE", "-f", "JSON", str(path)],
        capture_output=True,
        text=True,
    )
    report = json.loads(result.stdout)
    findings = [
        (finding["severity"], finding["code"], finding["message"] or "")
        for item in report["results"]
        for finding in item["finding_descriptions"]
    ]
    assert result.returncode == len(findings), result.stdout + result.stderr  # pkilint's count
    return set(findings)


FIXED_NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


# -- a throwaway PostgreSQL server on 127.0.0.1 ------------------------------


def _as_postgres(args, **kwargs):
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *args], check=True, capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="session")
def postgres_server():
    """Start a private PostgreSQL cluster for the session; yield its admin URL."""
    bindir = postgres_bindir()
    data = Path(tempfile.mkdtemp(prefix="revoca-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    port = free_port()
    _as_postgres([bindir / "initdb", "-D", data / "db", "-A", "trust", "-U", "revoca"])
    _as_postgres(
        [
            bindir / "pg_ctl",
            "-D",
            data / "db",
            "-w",
            "-t",
            "60",
            "-l",
            data / "log",
            "-o",
            f"-c listen_addresses=127.0.0.1 -p {port} -k {data} -c fsync=off",
            "start",
        ]
    )
    try:
        yield f"postgresql+psycopg://revoca@127.0.0.1:{port}"
    finally:
        _as_postgres([bindir / "pg_ctl", "-D", data / "db", "-m", "immediate", "stop"])
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server):
    """A fresh, empty database on the session's server."""
    import psycopg

    name = f"t{uuid.uuid4().hex[:12]}"
    dsn = postgres_server.replace("postgresql+psycopg", "postgresql") + "/postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{postgres_server}/{name}"


@pytest.fixture
def va_env(tmp_path, service):
    """A CA with good, revoked and held certificates, a VA loaded from it,
    and its server on 127.0.0.1 (see tests/va_fixtures.py)."""
    from tests.va_fixtures import make_va

    env, thread = make_va(tmp_path, service)
    yield env
    thread.stop()


def openssl_ocsp(d: Path, port: int, cert: str = "www.pem", *extra: str):
    """`openssl ocsp` against a VA on 127.0.0.1:``port`` for a `revoca demo` directory."""
    need("openssl")
    return subprocess.run(
        [
            "openssl",
            "ocsp",
            *extra,
            "-issuer",
            d / "issuing.pem",
            "-cert",
            d / cert,
            "-url",
            f"http://127.0.0.1:{port}/ocsp",
            "-CAfile",
            d / "chain.pem",
        ],
        capture_output=True,
        text=True,
        timeout=10,
    )


REVOCA_CMD = [sys.executable, "-m", "revoca"]


def demo_pki(tmp_path: Path) -> tuple[Path, dict]:
    """Build a `revoca demo` PKI (no serving) in tmp_path/d; return the
    directory and an environment holding its key passphrase."""
    built = subprocess.run(
        [*REVOCA_CMD, "demo", "--dir", "d", "--serve-seconds", "0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    d = tmp_path / "d"
    env = {**os.environ, "REVOCA_KEY_PASSPHRASE": (d / "key-passphrase").read_text().strip()}
    return d, env


def start_va(
    d: Path, env: dict, port: int, *extra: str, stderr=subprocess.DEVNULL
) -> subprocess.Popen:
    """`revoca va serve` for a demo directory on 127.0.0.1:``port``
    (``stderr=subprocess.PIPE``: its log, as text)."""
    return subprocess.Popen(
        [*REVOCA_CMD, "--data-dir", str(d), "va", "serve", "--port", str(port), *extra],
        cwd=d.parent,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
    )


class LoopThread:
    """An asyncio loop in a thread, for servers and the publisher."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def spawn(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def sites(monkeypatch) -> list[tuple[str, int]]:
    """The (host, port) of every aiohttp TCPSite started, and every socket
    bound through common/listen.py, during the test: a listener's own record
    of where it was asked to listen."""
    from aiohttp import web

    from common import listen

    recorded: list[tuple[str, int]] = []

    class RecordedSite(web.TCPSite):
        def __init__(self, runner, host=None, port=None, **kwargs):
            recorded.append((host, port))
            super().__init__(runner, host, port, **kwargs)

    bind_listener = listen.bind_listener

    def recorded_bind(host, port, *args, **kwargs):  # the listeners common/listen.py binds
        recorded.append((host, port))
        return bind_listener(host, port, *args, **kwargs)

    monkeypatch.setattr(web, "TCPSite", RecordedSite)
    monkeypatch.setattr(listen, "bind_listener", recorded_bind)
    return recorded


@pytest.fixture
def loop():
    thread = LoopThread()
    yield thread
    thread.stop()


# -- the `revoca` command ---------------------------------------------------------


def run(tmp_path, *args, env=None, input=None):
    environment = {**os.environ, "REVOCA_KEY_PASSPHRASE": PASSPHRASE, **(env or {})}
    return subprocess.run(
        [*REVOCA_CMD, "--data-dir", str(tmp_path / "data"), *args],
        capture_output=True,
        env=environment,
        input=input,
        cwd=tmp_path,
    )


@pytest.fixture
def cli_pki(tmp_path):
    assert (
        run(
            tmp_path, "ca", "init-root", "--name", "root", "--subject", "CN=CLI Root,O=Revoca Tests"
        ).returncode
        == 0
    )
    result = run(
        tmp_path,
        "ca",
        "create-sub",
        "--name",
        "issuing",
        "--parent",
        "root",
        "--subject",
        "CN=CLI Issuing,O=Revoca Tests",
    )
    assert result.returncode == 0, result.stderr
    return tmp_path


def key_file_kdf(data: bytes) -> dict:
    """The PBES2 parameters of an encrypted PKCS#8 key (PEM or DER), read with
    asn1crypto alone: the KDF's OID and parameters, the cipher and its IV."""
    from asn1crypto import core, keys
    from asn1crypto import pem as asn1_pem

    if asn1_pem.detect(data):
        label, _, data = asn1_pem.unarmor(data)
        assert label == "ENCRYPTED PRIVATE KEY", label
    algorithm = keys.EncryptedPrivateKeyInfo.load(data)["encryption_algorithm"]
    assert algorithm["algorithm"].dotted == "1.2.840.113549.1.5.13"  # RFC 8018 A.4 id-PBES2
    kdf = algorithm["parameters"]["key_derivation_func"]
    scheme = algorithm["parameters"]["encryption_scheme"]
    # scrypt-params (RFC 7914 7.1), read as the plain SEQUENCE it is: salt
    # OCTET STRING, then costParameter, blockSize, parallelizationParameter.
    contents, fields = core.load(kdf["parameters"].dump()).contents, []
    while contents:
        item = core.load(contents, strict=False)
        fields.append(item.native)
        contents = contents[len(item.dump()) :]
    return {
        "kdf": kdf["algorithm"].dotted,
        "params": fields,
        "cipher": scheme["algorithm"].dotted,
        "iv": scheme["parameters"].native,
    }
