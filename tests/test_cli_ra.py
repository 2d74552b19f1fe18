"""`revoca ra`: operators, end entities, enrollment and the API server from
the command line, as scripts use them."""

import json
import os
import stat
import subprocess
import time
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from tests.conftest import REVOCA_CMD, free_port, make_csr, run


def _entity(tmp):
    result = run(
        tmp,
        "ra",
        "entity",
        "create",
        "--name",
        "web",
        "--email",
        "ops@example.com",
        "--ca",
        "issuing",
        "--profile",
        "tls-server",
        "--subject-template",
        "CN={name}.example.com",
        "--allow-san",
        "dns:web.example.com",
        "--allow-san",
        "dns:*.web.example.com",
        "--attribute",
        "team=web",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_operator_token_goes_to_a_private_file(cli_pki):
    tmp = cli_pki
    result = run(
        tmp,
        "ra",
        "user",
        "add",
        "--name",
        "alice",
        "--role",
        "ra-officer",
        "--token-out",
        "alice.token",
    )
    assert result.returncode == 0, result.stderr
    token = (tmp / "alice.token").read_text().strip()
    assert token.startswith("rra_") and token not in result.stdout.decode() + result.stderr.decode()
    assert stat.S_IMODE((tmp / "alice.token").stat().st_mode) == 0o600
    listed = json.loads(run(tmp, "ra", "user", "list", "--json").stdout)
    assert [(u["name"], u["role"]) for u in listed] == [("alice", "ra-officer")]
    assert token not in json.dumps(listed)
    bad = run(tmp, "ra", "user", "add", "--name", "alice", "--role", "auditor")
    assert bad.returncode == 7 and b"exists" in bad.stderr  # conflict


def test_entity_enroll_renew_revoke(cli_pki):
    tmp = cli_pki
    created = _entity(tmp)
    assert created["allowed_sans"] == ["dns:web.example.com", "dns:*.web.example.com"]
    (tmp / "req.pem").write_bytes(make_csr("x", ("dns:web.example.com", "dns:a.web.example.com")))
    result = run(tmp, "ra", "enroll", "--entity", "web", "--csr", "req.pem", "--out", "web.pem")
    assert result.returncode == 0, result.stderr
    cert = x509.load_pem_x509_certificate((tmp / "web.pem").read_bytes())
    assert cert.subject.rfc4514_string() == "CN=web.example.com"
    serial = f"{cert.serial_number:x}"

    env = {"REVOCA_EXPORT_PASSPHRASE": "p12 passphrase"}
    result = run(tmp, "ra", "renew", "--ca", "issuing", "--serial", serial, "--out", "renewed.pem")
    assert result.returncode == 0, result.stderr
    renewed = x509.load_pem_x509_certificate((tmp / "renewed.pem").read_bytes())
    assert renewed.public_key() == cert.public_key() and renewed.serial_number != cert.serial_number

    fetched = run(tmp, "ra", "cert", "--ca", "issuing", "--serial", serial, "--chain")
    chain = x509.load_pem_x509_certificates(fetched.stdout)
    assert len(chain) == 3 and chain[0] == cert
    shown = json.loads(run(tmp, "ra", "entity", "show", "web", "--json").stdout)
    assert len(shown["certificates"]) == 2
    result = run(
        *(tmp, "ra", "revoke", "--ca", "issuing", "--serial", serial),
        *("--reason", "superseded", "--json"),
    )
    assert result.returncode == 0 and json.loads(result.stdout)["status"] == "revoked"

    refused = run(
        tmp,
        "ra",
        "enroll",
        "--entity",
        "web",
        "--generate-key",
        "ec-p256",
        "--p12-out",
        "k.p12",
        "--san",
        "dns:evil.example.com",
        env=env,
    )
    assert refused.returncode == 4 and b"may not have the SAN" in refused.stderr
    assert not (tmp / "k.p12").exists()
    result = run(
        tmp,
        "ra",
        "enroll",
        "--entity",
        "web",
        "--generate-key",
        "ec-p256",
        "--p12-out",
        "k.p12",
        "--san",
        "dns:web.example.com",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE((tmp / "k.p12").stat().st_mode) == 0o600
    _key, p12_cert, _ = pkcs12.load_key_and_certificates(
        (tmp / "k.p12").read_bytes(), b"p12 passphrase"
    )
    assert p12_cert.subject.rfc4514_string() == "CN=web.example.com"

    disabled = run(tmp, "ra", "entity", "update", "web", "--status", "disabled", "--json")
    assert json.loads(disabled.stdout)["status"] == "disabled"
    again = run(tmp, "ra", "enroll", "--entity", "web", "--csr", "req.pem")
    assert again.returncode == 4 and b"disabled" in again.stderr


def test_serve_answers_with_a_token(cli_pki):
    tmp = cli_pki
    run(
        tmp,
        "ra",
        "user",
        "add",
        "--name",
        "root-admin",
        "--role",
        "administrator",
        "--token-out",
        "admin.token",
    )
    token = (tmp / "admin.token").read_text().strip()
    port = free_port()
    environment = {**os.environ, "REVOCA_KEY_PASSPHRASE": "correct horse battery staple"}
    server = subprocess.Popen(
        [
            *REVOCA_CMD,
            "--data-dir",
            str(tmp / "data"),
            "ra",
            "serve",
            "--port",
            str(port),
            "--seconds",
            "20",
        ],
        cwd=tmp,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, server.stderr.read1().decode()
                time.sleep(0.1)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/whoami", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.loads(response.read())["name"] == "root-admin"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/openapi.json", timeout=5) as r:
            assert json.loads(r.read())["openapi"].startswith("3.")
    finally:
        server.terminate()
        server.wait(10)


def test_approvals_from_the_command_line(cli_pki):
    """With [ra] approvals_issue = 1 an enrollment is queued; the same Unix
    user may not approve it (the requester never counts)."""
    tmp = cli_pki
    (tmp / "ra.toml").write_text("[ra]\napprovals_issue = 1\n")
    _entity(tmp)
    (tmp / "req.pem").write_bytes(make_csr("x", ("dns:web.example.com",)))
    queued = run(
        *(tmp, "--config", "ra.toml", "ra", "enroll", "--entity", "web", "--csr", "req.pem"),
        "--json",
    )
    assert queued.returncode == 0, queued.stderr
    assert b"waits for 1 approval" in queued.stderr
    request = json.loads(queued.stdout)
    assert request["status"] == "pending"
    own = run(tmp, "--config", "ra.toml", "ra", "request", "approve", str(request["id"]))
    assert own.returncode == 11 and b"own request" in own.stderr
    listed = json.loads(run(tmp, "--config", "ra.toml", "ra", "request", "list", "--json").stdout)
    assert [(r["id"], r["status"]) for r in listed] == [(request["id"], "pending")]
    bad = run(tmp, "--config", "ra.toml", "ra", "request", "reject", "99", "--reason", "x")
    assert bad.returncode == 3  # not found

    # A key made after approval: queued without a passphrase, approved by
    # someone else, then fetched by its requester as PKCS#12.
    env = {"REVOCA_EXPORT_PASSPHRASE": "p12 passphrase"}
    keyed = run(
        tmp,
        "--config",
        "ra.toml",
        "ra",
        "enroll",
        "--entity",
        "web",
        "--generate-key",
        "ec-p256",
        "--p12-out",
        "k.p12",
        "--san",
        "dns:web.example.com",
        "--json",
        env=env,
    )
    request_id = json.loads(keyed.stdout)["id"]
    assert not (tmp / "k.p12").exists()
    from ra.approvals import ApprovalPolicy
    from ra.service import RAService
    from revoca.app import build_ca_service
    from revoca.config import load_config

    config = load_config(tmp / "ra.toml", data_dir=tmp / "data")
    service = RAService(build_ca_service(config), ApprovalPolicy.from_settings(config.ra))
    assert service.approve(request_id, actor="ra:alice").status == "done"
    service.store.close()
    fetched = run(tmp, "ra", "request", "pkcs12", str(request_id), "--out", "k.p12", env=env)
    assert fetched.returncode == 0, fetched.stderr
    assert stat.S_IMODE((tmp / "k.p12").stat().st_mode) == 0o600
    key, cert, _ = pkcs12.load_key_and_certificates((tmp / "k.p12").read_bytes(), b"p12 passphrase")
    assert key is not None and cert.subject.rfc4514_string() == "CN=web.example.com"


def test_search_and_reports_from_the_command_line(cli_pki):
    tmp = cli_pki
    _entity(tmp)
    (tmp / "req.pem").write_bytes(make_csr("x", ("dns:web.example.com", "dns:a.web.example.com")))
    run(tmp, "ra", "enroll", "--entity", "web", "--csr", "req.pem", "--out", "a.pem")
    run(tmp, "ra", "enroll", "--entity", "web", "--csr", "req.pem", "--out", "b.pem")
    found = json.loads(run(tmp, "ra", "search", "--hostname", "a.web.example.com", "--json").stdout)
    assert len(found) == 2 and found[0]["id"] < found[1]["id"]
    page = json.loads(
        run(
            *(tmp, "ra", "search", "--text", "web.example"),
            *("--after", str(found[0]["id"]), "--json"),
        ).stdout
    )
    assert [c["serial"] for c in page] == [found[1]["serial"]]
    text = run(tmp, "ra", "search", "--entity", "web", "--csv").stdout.decode()
    assert text.splitlines()[0].startswith("id,ca,serial") and len(text.splitlines()) == 3
    dup = json.loads(run(tmp, "ra", "report", "duplicates", "--json").stdout)
    assert dup == [{"entity": "web", "profile": "tls-server", "valid_certificates": 2}]
    counts = run(tmp, "ra", "report", "counts", "--csv").stdout.decode().splitlines()
    assert counts[0] == "ca,profile,status,count" and "issuing,tls-server,good,2" in counts
    bad = run(tmp, "ra", "search", "--text", "ab")
    assert bad.returncode == 5 and b"at least 3" in bad.stderr


def test_notify_from_the_command_line(cli_pki):
    from aiosmtpd.controller import Controller

    received = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append(envelope.rcpt_tos)
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        tmp = cli_pki
        (tmp / "n.toml").write_text(
            f"[notify]\nsmtp_port = {controller.port}\nadmin_emails = ['pki@example.com']\n"
        )
        _entity(tmp)
        (tmp / "req.pem").write_bytes(make_csr("x", ("dns:web.example.com",)))
        run(tmp, "ra", "enroll", "--entity", "web", "--csr", "req.pem", "--days", "5")
        due = run(tmp, "--config", "n.toml", "ra", "notify", "--dry-run", "--json")
        assert due.returncode == 0, due.stderr
        assert [n["recipients"] for n in json.loads(due.stdout)] == [
            ["ops@example.com", "pki@example.com"]
        ]
        assert received == []
        sent = run(tmp, "--config", "n.toml", "ra", "notify")
        assert sent.returncode == 0 and b"sent 1 notice" in sent.stderr
        again = run(tmp, "--config", "n.toml", "ra", "notify")
        assert b"sent 0 notice" in again.stderr
        assert len(received) == 1
    finally:
        controller.stop()


def test_revoca_serve_runs_va_ra_and_publisher_together(tmp_path):
    """All in one: enroll through the RA API, the co-located publisher
    carries it to the VA, `openssl ocsp` sees good, then revoked."""
    from tests.conftest import openssl_ocsp

    built = subprocess.run(
        [*REVOCA_CMD, "demo", "--dir", "d", "--serve-seconds", "0"],
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    d = tmp_path / "d"
    env = {**os.environ, "REVOCA_KEY_PASSPHRASE": (d / "key-passphrase").read_text()}

    def revoca(*args, **kw):
        return subprocess.run(
            [*REVOCA_CMD, "--data-dir", str(d), *args],
            cwd=tmp_path,
            capture_output=True,
            env=env,
            timeout=60,
            **kw,
        )

    assert (
        revoca(
            "ra", "user", "add", "--name", "ops", "--role", "administrator", "--token-out", "tok"
        ).returncode
        == 0
    )
    token = (tmp_path / "tok").read_text().strip()
    va_port, ra_port = free_port(), free_port()
    (tmp_path / "all.toml").write_text(
        f"[va]\nport = {va_port}\nadmin_port = 0\n[ra]\nport = {ra_port}\n"
    )
    server = subprocess.Popen(
        [*REVOCA_CMD, "--config", "all.toml", "--data-dir", str(d), "serve", "--seconds", "40"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )

    def api(method, path, body=None):
        request = urllib.request.Request(
            f"http://127.0.0.1:{ra_port}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                api("GET", "/api/health")
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()
                assert time.monotonic() < deadline
                time.sleep(0.2)
        api(
            "POST",
            "/api/entities",
            {
                "name": "shop",
                "email": "ops@example.com",
                "ca": "demo-issuing",
                "profile": "tls-server",
                "subject_template": "CN=shop.example.com",
                "allowed_sans": ["dns:shop.example.com"],
            },
        )
        issued = api(
            "POST",
            "/api/entities/shop/enroll",
            {"csr": make_csr("x", ("dns:shop.example.com",)).decode()},
        )
        (d / "shop.pem").write_text(issued["pem"])

        def status():
            return openssl_ocsp(d, va_port, "shop.pem").stdout

        for expected in (": good", ": revoked"):
            started = time.monotonic()
            while expected not in status() and time.monotonic() - started < 10:
                time.sleep(0.2)
            assert expected in status()
            if expected == ": good":
                serial = issued["certificate"]["serial"]
                api(
                    "POST",
                    f"/api/certificates/demo-issuing/{serial}/revoke",
                    {"reason": "superseded"},
                )
    finally:
        server.terminate()
        server.wait(15)


def test_import_from_the_command_line(cli_pki):
    from cryptography.hazmat.primitives.serialization import Encoding

    from tests.test_ra_inventory import _cert, new_key

    tmp = cli_pki
    key = new_key()
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Elsewhere CA")])
    ca = _cert("Elsewhere CA", key, name, key, ca=True, days=3000)
    leaf = _cert("db.elsewhere.example", new_key(), name, key, sans=["db.elsewhere.example"])
    (tmp / "in.pem").write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in (leaf, ca)))
    result = run(tmp, "ra", "import", "in.pem", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["imported"] == 1
    found = json.loads(
        run(tmp, "ra", "search", "--hostname", "db.elsewhere.example", "--json").stdout
    )
    assert [c["profile"] for c in found] == ["external"]
    (tmp / "cut.pem").write_bytes((tmp / "in.pem").read_bytes()[:300])
    refused = run(tmp, "ra", "import", "cut.pem")
    assert refused.returncode == 5 and b"truncated" in refused.stderr
