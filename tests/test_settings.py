"""Every role's settings: the documented defaults (revoca/default.toml) and
the typed settings objects hold the same keys and the same values, values
are checked with exact messages, and a value other than the default, for
every setting, reaches the running object that uses it."""

import asyncio
import http.client
import os
import signal
import ssl
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from acmesrv.settings import AcmeSettings
from ca.settings import CRLSettings, KeysSettings, URLSettings
from common import settings as schema
from publisher.settings import PublisherSettings
from ra.settings import NotifySettings, RASettings
from revoca.config import PathSettings, default_text, load_config
from store.settings import StoreSettings
from tests.conftest import PASSPHRASE, free_port, make_csr, need, write_tls_files
from va.settings import CertIDHash, VASettings

ROLES = {
    "va": VASettings,
    "publisher": PublisherSettings,
    "ra": RASettings,
    "acme": AcmeSettings,
    "notify": NotifySettings,
    "crl": CRLSettings,
    "store": StoreSettings,
    "keys": KeysSettings,
    "urls": URLSettings,
    "paths": PathSettings,
}


@pytest.mark.parametrize("section", sorted(ROLES))
def test_default_toml_documents_every_setting_with_its_default(section):
    cls = ROLES[section]
    table = tomllib.loads(default_text())[section]
    assert set(table) == set(schema.keys(cls)), "default.toml and the settings disagree"
    assert schema.build(cls, table, section) == cls()
    assert all(schema.describe(cls).values()), "a setting without documentation"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("max_certids", 0, "va.max_certids must be an integer from 1 to 256"),
        ("max_certids", True, "va.max_certids must be an integer from 1 to 256"),
        ("max_certids", 2.5, "va.max_certids must be an integer from 1 to 256"),
        ("port", 99999, "va.port must be an integer from 0 to 65535"),
        ("request_timeout", "10", "va.request_timeout must be a number of at least 0.001"),
        ("ocsp_path", "ocsp", "va.ocsp_path 'ocsp' is not allowed"),
        ("nonce_policy", "always", "va.nonce_policy must be one of 'echo', 'ignore'"),
        ("presign_algorithms", ["md5"], "va.presign_algorithms must be one of 'sha1'"),
        ("presign_algorithms", [], "va.presign_algorithms must name each algorithm once"),
        ("presign_algorithms", "sha1", "va.presign_algorithms must be a list"),
        ("response_validity_hours", 241, "va.response_validity_hours must be an integer from 8"),
        ("max_map_size", 1 << 20, "va.max_map_size must not be smaller than map_size"),
        ("admin_tls_cert", "a.pem", "va.admin_tls_cert needs admin_tls_key and admin_tls_client"),
        ("max_cert_ids", 8, "unknown setting va.max_cert_ids"),
    ],
)
def test_a_wrong_value_gets_an_exact_error(tmp_path, key, value, message):
    from ca.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        load_config(_config(tmp_path, "va", {key: value}))
    assert caught.value.message.startswith(message), caught.value.message


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Path):
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def _config(tmp_path: Path, section: str, table: dict) -> Path:
    path = tmp_path / "revoca.toml"
    lines = [f'[paths]\ndata_dir = "{tmp_path}"', f"[{section}]"]
    lines += [f"{key} = {_toml(value)}" for key, value in table.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


# -- the VA: a value other than the default for every [va] key ----------------


def _va_nondefault(tmp_path: Path, port: int, admin_port: int) -> dict:
    return {
        "directory": tmp_path / "va-elsewhere",
        "host": "localhost",
        "port": port,
        "workers": 2,
        "max_certids": 3,
        "map_size": 1 << 22,
        "max_map_size": 1 << 23,
        "refresh_seconds": 7.5,
        "presign_workers": 3,
        "presign_algorithms": ["sha256", "sha384"],
        "ocsp_path": "/status",
        "max_body": 9000,
        "max_url": 7000,
        "request_timeout": 4.5,
        "idle_timeout": 30.5,
        "max_connections": 7,
        "backlog": 777,
        "max_header_bytes": 6000,
        "max_headers": 55,
        "max_pipeline": 9,
        "fresh_signing_cap": 5,
        "signing_threads": 2,
        "admin_host": "localhost",
        "admin_port": admin_port,
        "admin_token_file": tmp_path / "secrets" / "va-admin.token",
        "admin_tls_cert": tmp_path / "tls" / "server.pem",
        "admin_tls_key": tmp_path / "tls" / "server.key",
        "admin_tls_client_ca": tmp_path / "tls" / "chain.pem",
        "nonce_policy": "ignore",
        "unissued": "unknown",
        "responder_id": "name",
        "response_validity_hours": 30,
    }


@pytest.fixture
def va_nondefault(tmp_path, make_service):
    """A CA, and a VA loaded from it under a configuration that changes every
    [va] setting; (config, service, table, leaf certificate, issuer certificate)."""
    from revoca.va_import import import_from_ca
    from va.admin import write_token
    from va.app import open_store

    service = make_service()
    service.init_root("root", "CN=Settings Root,O=Revoca Tests")
    service.create_sub("issuing", "root", "CN=Settings Issuing CA,O=Revoca Tests")
    service.issue_ocsp_signer("issuing")
    leaf = service.issue("issuing", make_csr("a.example.com", ["dns:a.example.com"]), "tls-server")
    write_tls_files(service, tmp_path / "tls")
    chain = service.chain("issuing")
    table = _va_nondefault(tmp_path, free_port(), free_port())
    defaults = schema.defaults(VASettings)
    assert set(table) == set(schema.keys(VASettings))
    for key, value in table.items():
        assert _toml(value) != _toml(_plain(defaults[key])), key
    config = load_config(_config(tmp_path, "va", table))
    settings = config.va
    store = open_store(settings)
    try:
        import_from_ca(
            service, store, settings.key_dir, policy=settings.policy, ca_names=["issuing"]
        )
    finally:
        store.close()
    write_token(settings.admin.token_file, "t" * 40)
    return config, service, table, leaf.certificate, chain[0]


def _plain(value):
    """A settings value as TOML writes it."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "value"):
        return value.value
    return "" if value is None else value


class _Transport:
    def __init__(self):
        self.out: list[bytes] = []
        self.closed = self.paused = False

    def write(self, data: bytes) -> None:
        self.out.append(data)

    def close(self) -> None:
        self.closed = True

    abort = close

    def get_write_buffer_size(self) -> int:
        return 0  # everything written was taken

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


def _request(leaf, issuer, *, nonce: bool = False, algorithm=None) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, algorithm or hashes.SHA1())
    if nonce:
        builder = builder.add_extension(x509.OCSPNonce(b"\x07" * 16), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def _post(path: bytes, body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"POST "
        + path
        + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
        + extra
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


def _body(raw: bytes) -> bytes:
    return raw.partition(b"\r\n\r\n")[2]


def test_every_va_setting_reaches_what_uses_it_in_a_worker(va_nondefault, monkeypatch):
    """Built as `revoca va serve` builds a worker (va.app.build), each
    setting is observed where it acts: the store, the responder, the issuer
    records, the HTTP front's limits and deadlines, the fresh signer, the
    refresher, `revoca va presign`. The listeners and worker processes are
    the next test's."""
    from common.clock import Clock
    from va import app

    config, _service, table, leaf, issuer = va_nondefault
    settings = config.va
    seen: dict[str, bool] = {}
    moment = [1000.0]
    clock = Clock(monotonic=lambda: moment[0])
    serving = app.build(settings, PASSPHRASE.encode(), clock=clock)
    front, store = serving.front, serving.store
    try:
        seen["directory"] = store.path == table["directory"] / "lmdb"
        seen["map_size"] = store.env.info()["map_size"] == table["map_size"]
        seen["max_map_size"] = store.max_map_size == table["max_map_size"]
        seen["max_certids"] = serving.responder.max_certids == table["max_certids"]
        seen["signing_threads"] = serving.worker.executor._max_workers == table["signing_threads"]

        async def http_probes():
            def connect():
                transport = _Transport()
                connection = front.connection()
                connection.connection_made(transport)
                return connection, transport

            async def ask(data: bytes):
                connection, transport = connect()
                connection.data_received(data)
                for _ in range(5):
                    await asyncio.sleep(0.01)
                front.release(connection)  # max_connections is small
                return connection, transport

            request = _request(leaf, issuer, nonce=True)
            _, t = await ask(_post(b"/status", request))
            answer = ocsp.load_der_ocsp_response(_body(t.out[0]))
            seen["ocsp_path"] = answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
            _, t = await ask(_post(b"/ocsp", request))
            seen["ocsp_path"] &= t.out[0].startswith(b"HTTP/1.1 405")  # not an OCSP path
            # nonce_policy ignore: no nonce comes back; responder_id name;
            # response_validity_hours: the window.
            seen["nonce_policy"] = not any(
                isinstance(e.value, x509.OCSPNonce) for e in answer.extensions
            )
            seen["responder_id"] = answer.responder_name is not None
            window = answer.next_update_utc - answer.this_update_utc
            seen["response_validity_hours"] = window.total_seconds() == 30 * 3600
            unknown = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
                answer.issuer_name_hash, answer.issuer_key_hash, 0x5EED, hashes.SHA1()
            )
            der = unknown.build().public_bytes(serialization.Encoding.DER)
            _, t = await ask(_post(b"/status", der))
            status = ocsp.load_der_ocsp_response(_body(t.out[0])).certificate_status
            seen["unissued"] = status == ocsp.OCSPCertStatus.UNKNOWN
            # Body and URL limits: one byte over closes the connection after
            # malformedRequest; at the limit it stays open.
            _, t = await ask(_post(b"/status", b"\x30" * table["max_body"]))
            _, over = await ask(_post(b"/status", b"\x30" * (table["max_body"] + 1)))
            seen["max_body"] = not t.closed and over.closed
            path = b"/status/" + b"A" * (table["max_url"] - 8)
            _, t = await ask(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            _, over = await ask(b"GET " + path + b"A HTTP/1.1\r\nHost: x\r\n\r\n")
            seen["max_url"] = not t.closed and over.closed
            many = b"".join(b"X-%d: 1\r\n" % i for i in range(table["max_headers"] - 3))
            _, t = await ask(_post(b"/status", request, many))
            _, over = await ask(_post(b"/status", request, many + b"X-a: 1\r\nX-b: 1\r\n"))
            seen["max_headers"] = t.out[0].startswith(b"HTTP/1.1 200") and over.out[0].startswith(
                b"HTTP/1.1 431"
            )
            big = b"X-Big: " + b"v" * (table["max_header_bytes"] - 200) + b"\r\n"
            _, t = await ask(_post(b"/status", request, big))
            _, over = await ask(
                _post(b"/status", request, big + b"X-More: " + b"v" * 300 + b"\r\n")
            )
            seen["max_header_bytes"] = t.out[0].startswith(b"HTTP/1.1 200") and over.out[
                0
            ].startswith(b"HTTP/1.1 431")
            # Pipelined fresh answers: five signed at once, the rest tryLater;
            # the ninth queued answer stops reading the connection.
            before = serving.metrics.requests["try_later"]
            connection, t = connect()
            connection.data_received(_post(b"/status", request) * table["max_pipeline"])
            seen["max_pipeline"] = t.paused
            seen["fresh_signing_cap"] = (
                serving.metrics.requests["try_later"] - before
                == table["max_pipeline"] - table["fresh_signing_cap"]
            )
            for _ in range(5):
                await asyncio.sleep(0.01)
            # Connections and deadlines (the sweeper runs on the monotonic clock).
            for connection in list(front.connections):
                connection.close()
            opened = [connect() for _ in range(table["max_connections"] + 1)]
            seen["max_connections"] = [t.closed for _, t in opened] == [False] * table[
                "max_connections"
            ] + [True]
            for connection, _ in opened:
                connection.close()
            slow, t_slow = connect()
            slow.data_received(b"POST /status HTTP/1.1\r\nHost: x\r\n")  # and nothing more
            _idle, t_idle = connect()
            start = moment[0]
            moment[0] = start + table["request_timeout"] - 0.1
            front.sweep()
            early = not t_slow.closed
            moment[0] = start + table["request_timeout"] + 0.1
            front.sweep()
            seen["request_timeout"] = early and t_slow.out[0].startswith(b"HTTP/1.1 408")
            moment[0] = start + table["idle_timeout"] - 0.1
            front.sweep()
            early = not t_idle.closed
            moment[0] = start + table["idle_timeout"] + 0.1
            front.sweep()
            seen["idle_timeout"] = early and t_idle.closed

        asyncio.run(http_probes())

        # The refresher signs under the configured algorithms and sleeps
        # refresh_seconds (the next refresh point is 15 hours away).
        waits = []

        async def one_round(awaitable, timeout):
            awaitable.close()
            waits.append(timeout)
            raise asyncio.CancelledError

        monkeypatch.setattr(app.asyncio, "wait_for", one_round)
        with pytest.raises(asyncio.CancelledError):
            asyncio.run(app.refresh_loop(serving, clock=clock))
        serial = serving.entries[0].id, leaf.serial_number
        with store.read() as txn:
            from common.der import integer_content

            found = {
                alg
                for alg in (1, 2, 3, 4)
                if store.get_response(txn, serial[0], alg, integer_content(serial[1]))
            }
        seen["presign_algorithms"] = found == {CertIDHash.SHA256.code, CertIDHash.SHA384.code}
        seen["refresh_seconds"] = waits == [table["refresh_seconds"]]
    finally:
        serving.close()

    # `revoca va presign` signs in presign_workers processes.
    from click.testing import CliRunner

    from revoca.cli import cli
    from va import presign

    asked = {}

    def capture(*args, **kwargs):
        asked.update(kwargs)
        return 0

    monkeypatch.setattr(presign, "presign_all", capture)
    result = CliRunner().invoke(
        cli, ["--config", str(config.source), "va", "presign"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    seen["presign_workers"] = asked.get("workers") == table["presign_workers"]

    listeners = {"host", "port", "workers", "backlog"}
    listeners |= {k for k in table if k.startswith("admin_")}
    assert set(seen) | listeners == set(table), set(table) - set(seen) - listeners
    assert [key for key, ok in seen.items() if not ok] == []


def test_every_va_setting_reaches_the_listeners(va_nondefault):
    """`revoca --config FILE va serve`: the workers, the OCSP listener's
    address, and the admin listener's address, token file and mutual TLS."""
    config, _service, table, leaf, issuer = va_nondefault
    server = subprocess.Popen(
        [sys.executable, "-m", "revoca", "--config", str(config.source), "va", "serve"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "REVOCA_KEY_PASSPHRASE": PASSPHRASE},
    )
    try:
        deadline = time.monotonic() + 30
        children: set[int] = set()
        answered = None
        while time.monotonic() < deadline and (len(children) < 2 or answered is None):
            time.sleep(0.2)
            path = Path(f"/proc/{server.pid}/task/{server.pid}/children")
            children = {int(p) for p in path.read_text().split()} if path.exists() else set()
            try:
                connection = http.client.HTTPConnection("127.0.0.1", table["port"], timeout=5)
                connection.request(
                    "POST",
                    "/status",
                    _request(leaf, issuer),
                    {"Content-Type": "application/ocsp-request"},
                )
                answered = ocsp.load_der_ocsp_response(connection.getresponse().read())
            except OSError:
                continue
        assert server.poll() is None, server.stderr.read().decode()
        assert len(children) == table["workers"]
        assert answered.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
        tls = table["admin_tls_cert"].parent
        context = ssl.create_default_context(cafile=str(tls / "chain.pem"))
        context.load_cert_chain(tls / "client.pem", tls / "client.key", password=PASSPHRASE)

        def admin_status(token: str, context=context) -> int:
            connection = http.client.HTTPSConnection(
                "127.0.0.1", table["admin_port"], context=context, timeout=5
            )
            connection.request(
                "GET", "/publish/v2/status", headers={"Authorization": f"Bearer {token}"}
            )
            return connection.getresponse().status

        assert admin_status("t" * 40) == 200  # the token of admin_token_file
        assert admin_status("u" * 40) == 403
        no_client = ssl.create_default_context(cafile=str(tls / "chain.pem"))
        with pytest.raises((ssl.SSLError, ConnectionError)):
            admin_status("t" * 40, no_client)  # mutual TLS: no certificate, no entry
        # The backlog of each worker's listening socket (ss: Send-Q of a LISTEN socket).
        need("ss")  # iproute2's, to read the listen backlog
        listening = subprocess.run(
            ["ss", "-Hltn", f"sport = :{table['port']}"], capture_output=True, text=True
        ).stdout.split("\n")
        backlogs = [int(line.split()[2]) for line in listening if line.strip()]
        assert backlogs == [table["backlog"]] * table["workers"], listening
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(20)


# -- the publisher: a value other than the default for every [publisher] key ----


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"batch": 0}, "publisher.batch must be an integer from 1 to 10000"),
        ({"batch": 10_001}, "publisher.batch must be an integer from 1 to 10000"),
        ({"source": ""}, "publisher.source must be a printable string of 1 to 128"),
        ({"source": "a\tb"}, "publisher.source must be a printable string"),
        ({"poll_interval": 0}, "publisher.poll_interval must be a number of at least 0.001"),
        ({"max_backoff": "30"}, "publisher.max_backoff must be a number"),
        ({"metrics_port": 70000}, "publisher.metrics_port must be an integer from 0 to 65535"),
        ({"targets": "va1"}, "publisher.targets must be a list of tables"),
        ({"targets": ["va1"]}, "publisher.targets[0] must be a table"),
        ({"targets": [{"name": "a"}]}, "publisher.targets[0] needs either local = DIR, or url"),
        ({"targets": [{"local": ""}]}, "publisher.targets[0].name is needed"),
        (
            {"targets": [{"name": "a", "local": ""}, {"name": "a", "local": "/x"}]},
            "publisher.targets use the name 'a' once",
        ),
        (
            {"targets": [{"name": "a", "url": "http://127.0.0.1:1"}]},
            "publisher.targets[0].token_file is needed for a VA reached over HTTP",
        ),
        (
            {"targets": [{"name": "a", "url": "ftp://x", "token_file": "/t"}]},
            "publisher.targets[0].url 'ftp://x' is not allowed",
        ),
        (
            {"targets": [{"name": "a", "url": "http://x:1", "token_file": "/t", "ca_file": "c"}]},
            "publisher.targets[0].client_cert needs client_key and ca_file",
        ),
        (
            {
                "targets": [
                    {
                        "name": "a",
                        "url": "http://x:1",
                        "token_file": "/t",
                        "client_cert": "c",
                        "client_key": "k",
                        "ca_file": "f",
                    }
                ]
            },
            "publisher.targets[0].url must be https:// for mutual TLS",
        ),
        (
            {"targets": [{"name": "a", "local": "", "colour": 1}]},
            "publisher.targets[0].colour is not a setting",
        ),
        ({"batches": 3}, "unknown setting publisher.batches"),
    ],
)
def test_a_wrong_publisher_value_gets_an_exact_error(tmp_path, table, message):
    from ca.errors import ConfigError

    path = tmp_path / "revoca.toml"
    path.write_text(f'[paths]\ndata_dir = "{tmp_path}"\n[publisher]\n' + _toml_table(table))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.message.startswith(message), caught.value.message


def _toml_table(table: dict) -> str:
    """Keys of a TOML table, inline tables in lists included."""

    def value(v):
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return _toml(v)

    return "".join(f"{key} = {value(v)}\n" for key, v in table.items())


def test_every_publisher_setting_reaches_what_uses_it(va_nondefault, loop, monkeypatch, sites):
    """Built as `revoca publisher run` builds it (build_publisher, its
    /metrics listener), each [publisher] setting is observed where it acts:
    the source and batch size the VAs see, the local and mutual-TLS targets,
    the idle poll, the retry backoff against a refused VA, the request timeout
    against a VA that never answers, the CRL poll, the metrics listener."""
    import socket
    import urllib.request

    from common import prometheus
    from publisher.outbox import Outbox
    from revoca.cli_publisher import _serve, build_publisher, build_targets, send_snapshots
    from va import publish
    from va.admin import make_app, mutual_tls_context, start_admin
    from va.store import VAStore

    va_config, service, _, _, _ = va_nondefault
    tmp_path = va_config.data_dir
    tls = tmp_path / "tls"
    token = tmp_path / "publisher.token"
    from va.admin import write_token

    write_token(token, "p" * 40)
    tls_store = VAStore(tmp_path / "va-tls" / "lmdb")
    context = mutual_tls_context(
        tls / "server.pem",
        tls / "server.key",
        tls / "chain.pem",
        key_passphrase=PASSPHRASE.encode(),
    )
    tls_port, refused_port, metrics_port = free_port(), free_port(), free_port()
    runner = loop.run(
        start_admin(make_app(tls_store, b"p" * 40), "127.0.0.1", tls_port, ssl_context=context)
    )
    silent = socket.socket()  # accepts connections (the backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    table = {
        "source": "settings-source",
        "batch": 3,
        "poll_interval": 0.25,
        "max_backoff": 0.05,
        "http_timeout": 0.3,
        "crl_interval": 0.2,
        "snapshot_chunk": 2,
        "metrics_host": "localhost",
        "metrics_port": metrics_port,
        "targets": [
            {"name": "here", "local": str(tmp_path / "va-here")},
            {
                "name": "tls",
                "url": f"https://127.0.0.1:{tls_port}",
                "token_file": str(token),
                "client_cert": str(tls / "client.pem"),
                "client_key": str(tls / "client.key"),
                "ca_file": str(tls / "chain.pem"),
            },
            {
                "name": "refused",
                "url": f"http://127.0.0.1:{refused_port}",
                "token_file": str(token),
            },
            {
                "name": "silent",
                "url": f"http://127.0.0.1:{silent.getsockname()[1]}",
                "token_file": str(token),
            },
        ],
    }
    path = tmp_path / "publisher.toml"
    path.write_text(f'[paths]\ndata_dir = "{tmp_path}"\n[publisher]\n' + _toml_table(table))
    config = load_config(path)
    assert set(table) == set(schema.keys(PublisherSettings))  # every key is changed here
    assert all(
        getattr(config.publisher, k, None) != getattr(PublisherSettings(), k, None)
        for k in table
        if hasattr(PublisherSettings, k)
    )
    batches: list[int] = []
    apply_batch = publish.apply_batch

    def counting_apply(store, batch):
        batches.append(len(batch.events))
        return apply_batch(store, batch)

    monkeypatch.setattr(publish, "apply_batch", counting_apply)
    for _ in range(7):
        service.issue("issuing", make_csr(), "tls-server")
    publisher = build_publisher(config)
    calls = {"read": 0, "crl_numbers": 0}
    for name in calls:
        original = getattr(Outbox, name)

        def counted(self, *args, _name=name, _original=original):
            calls[_name] += 1
            return _original(self, *args)

        monkeypatch.setattr(Outbox, name, counted)
    running = loop.spawn(_serve(publisher, config.publisher.metrics, None, signals=False))
    seen: dict[str, bool] = {}
    try:
        last = publisher.outbox.last_id()
        here = publisher.targets[0].store
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (
            publish.counters(here, "settings-source")[0] == last
            and publish.counters(tls_store, "settings-source")[0] == last
        ):
            time.sleep(0.05)
        seen["source"] = publish.counters(tls_store, "settings-source")[0] == last > 0
        seen["targets"] = (
            here.path == tmp_path / "va-here" / "lmdb"
            and publish.counters(here, "settings-source")[0] == last
        )
        seen["batch"] = max(batches) == 3 and sum(batches) >= 2 * last
        # Idle now: count what 1.5 s hold.
        time.sleep(0.5)
        before = dict(calls)
        failures = {n: publisher.state[n].failures for n in ("refused", "silent")}
        time.sleep(1.5)
        reads = calls["read"] - before["read"]  # two live targets, every poll_interval
        seen["poll_interval"] = 6 <= reads <= 20  # 12 expected; 0.05 s: about 60
        # The two targets that answer (CRLs wait for a VA to take the issuers).
        crls = calls["crl_numbers"] - before["crl_numbers"]
        seen["crl_interval"] = 7 <= crls <= 23  # 15 expected; 1 s: about 3
        refused = publisher.state["refused"].failures - failures["refused"]
        seen["max_backoff"] = refused >= 10  # about 30; 30 s (0.5 s doubling): 1 or 2
        stalled = publisher.state["silent"].failures - failures["silent"]
        seen["http_timeout"] = 2 <= stalled <= 6  # each try waits 0.3 s; 10 s: none
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
            seen["metrics_port"] = r.headers["Content-Type"].startswith(prometheus.CONTENT_TYPE)
        seen["metrics_port"] &= 'revoca_publisher_delivered_total{va="tls"} ' in text
        # localhost and 127.0.0.1 are one address here: the listener's own record.
        seen["metrics_host"] = ("localhost", metrics_port) in sites
        # `revoca publisher snapshot --va tls`
        sent = loop.run(send_snapshots(config, build_targets(config, ["tls"])))["tls"]
        seen["snapshot_chunk"] = sent["statuses"] > 4 and sent["chunks"] == -(
            -sent["statuses"] // 2
        )
    finally:
        loop.loop.call_soon_threadsafe(publisher.stop)
        running.result(20)
        loop.run(runner.cleanup())
        silent.close()
    assert set(seen) == set(table), set(table) - set(seen)
    assert all(seen.values()), {k: v for k, v in seen.items() if not v}
