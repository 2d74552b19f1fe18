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
    listed = json.loads(run(tmp, "ra", "user", "list").stdout)
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

    shown = json.loads(run(tmp, "ra", "entity", "show", "web").stdout)
    assert len(shown["certificates"]) == 2
    result = run(
        tmp, "ra", "revoke", "--ca", "issuing", "--serial", serial, "--reason", "superseded"
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

    disabled = run(tmp, "ra", "entity", "update", "web", "--status", "disabled")
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
    queued = run(tmp, "--config", "ra.toml", "ra", "enroll", "--entity", "web", "--csr", "req.pem")
    assert queued.returncode == 0, queued.stderr
    assert b"waits for 1 approval" in queued.stderr
    request = json.loads(queued.stdout)
    assert request["status"] == "pending"
    own = run(tmp, "--config", "ra.toml", "ra", "request", "approve", str(request["id"]))
    assert own.returncode == 11 and b"own request" in own.stderr
    listed = json.loads(run(tmp, "--config", "ra.toml", "ra", "request", "list").stdout)
    assert [(r["id"], r["status"]) for r in listed] == [(request["id"], "pending")]
    bad = run(tmp, "--config", "ra.toml", "ra", "request", "reject", "99", "--reason", "x")
    assert bad.returncode == 3  # not found
