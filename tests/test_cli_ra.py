"""`revoca ra`: operators, end entities, enrollment and the API server from
the command line, as scripts use them."""

import base64
import json
import os
import stat
import subprocess
import time
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import serialization
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
    """With [ra] approvals_issue = 2 the command line acts as named
    operators (their tokens), held to their roles; the first operators come
    from a bootstrap; later operators wait for two approvers too."""
    tmp = cli_pki
    (tmp / "ra.toml").write_text("[ra]\napprovals_issue = 2\n")

    def ra(*args, who=None, env=None):
        token = ("--operator-token-file", f"tokens/{who}.token") if who else ()
        return run(tmp, "--config", "ra.toml", "ra", *token, *args, env=env)

    boot = ra(
        "user",
        "bootstrap",
        *("--operator", "admin=administrator", "--operator", "ann=approver"),
        *("--operator", "bob=approver", "--operator", "olga=ra-officer"),
        *("--token-dir", "tokens"),
    )
    assert boot.returncode == 0, boot.stderr
    assert stat.S_IMODE((tmp / "tokens" / "ann.token").stat().st_mode) == 0o600
    again = ra("user", "bootstrap", "--operator", "x=administrator", "--token-dir", "t2")
    assert again.returncode == 7 and b"has operators already" in again.stderr
    _entity(tmp)
    (tmp / "req.pem").write_bytes(make_csr("x", ("dns:web.example.com",)))

    anonymous = ra("enroll", "--entity", "web", "--csr", "req.pem")
    assert anonymous.returncode == 10 and b"--operator-token-file" in anonymous.stderr
    queued = ra("enroll", "--entity", "web", "--csr", "req.pem", "--json", who="olga")
    assert queued.returncode == 0, queued.stderr
    assert b"waits for 2 approval" in queued.stderr
    request = json.loads(queued.stdout)
    assert (request["status"], request["requester"]) == ("pending", "ra:olga")
    shown = json.loads(ra("request", "show", str(request["id"]), "--json").stdout)
    assert shown["details"]["subject"] == "CN=web.example.com"
    assert shown["details"]["sans"] == ["dns:web.example.com"]
    assert (shown["details"]["key_type"], shown["details"]["key_bits"]) == ("ec-p256", 256)
    assert len(shown["details"]["csr_sha256"]) == 64 and shown["details"]["profile"] == "tls-server"

    rid = str(request["id"])
    assert ra("request", "approve", rid).returncode == 10  # no one to act as
    officer = ra("request", "approve", rid, who="olga")
    assert officer.returncode == 11  # the requester, and an RA officer may not approve
    token = (tmp / "tokens" / "ann.token").read_text().strip()
    first = run(
        tmp,
        "--config",
        "ra.toml",
        "ra",
        "request",
        "approve",
        rid,
        "--json",
        env={"REVOCA_OPERATOR_TOKEN": token},
    )
    assert first.returncode == 0 and json.loads(first.stdout)["status"] == "pending"
    assert ra("request", "approve", rid, who="ann").returncode == 7  # ann counts once
    done = ra("request", "approve", rid, "--json", who="bob")
    assert json.loads(done.stdout)["status"] == "done", done.stderr
    listed = json.loads(ra("request", "list", "--json").stdout)
    assert [(r["id"], r["status"]) for r in listed] == [(request["id"], "done")]
    assert ra("request", "reject", "99", "--reason", "x", who="ann").returncode == 3

    # A new operator waits for two approvers as an issuance does.
    added = ra(
        "user",
        "add",
        "--name",
        "sock",
        "--role",
        "approver",
        "--token-out",
        "tokens/sock.token",
        "--json",
        who="admin",
    )
    assert added.returncode == 0 and b"waits for 2 approval" in added.stderr, added.stderr
    user_request = str(json.loads(added.stdout)["id"])
    early = ra("user", "token", who="sock")
    assert early.returncode == 10 and b"invalid API token" in early.stderr
    assert ra("request", "approve", user_request, who="admin").returncode == 11  # own request
    assert ra("request", "approve", user_request, who="ann").returncode == 0
    assert ra("request", "approve", user_request, who="bob").returncode == 0
    rotated = ra("user", "token", "--token-out", "tokens/sock.token", who="sock")
    assert rotated.returncode == 0, rotated.stderr
    assert ra("user", "delete", "sock", who="ann").returncode == 11  # an approver manages no one
    assert ra("user", "delete", "admin", who="admin").returncode == 7  # the last administrator

    # A key made after approval: its PKCS#12 under the enrollment's passphrase.
    env = {"REVOCA_EXPORT_PASSPHRASE": "p12 passphrase"}
    keyed = ra(
        *("enroll", "--entity", "web", "--generate-key", "ec-p256", "--p12-out", "k.p12"),
        *("--san", "dns:web.example.com", "--json"),
        who="olga",
        env=env,
    )
    assert keyed.returncode == 0, keyed.stderr
    request_id = str(json.loads(keyed.stdout)["id"])
    assert not (tmp / "k.p12").exists()
    assert ra("request", "approve", request_id, who="ann").returncode == 0
    assert ra("request", "approve", request_id, who="sock").returncode == 0
    wrong = ra(
        "request",
        "pkcs12",
        request_id,
        "--out",
        "k.p12",
        who="olga",
        env={"REVOCA_EXPORT_PASSPHRASE": "another passphrase"},
    )
    assert wrong.returncode == 11 and b"not the one given" in wrong.stderr
    assert not (tmp / "k.p12").exists()
    other = ra("request", "pkcs12", request_id, "--out", "k.p12", who="bob", env=env)
    assert other.returncode == 11 and not (tmp / "k.p12").exists()
    fetched = ra("request", "pkcs12", request_id, "--out", "k.p12", who="olga", env=env)
    assert fetched.returncode == 0, fetched.stderr
    assert stat.S_IMODE((tmp / "k.p12").stat().st_mode) == 0o600
    key, cert, _ = pkcs12.load_key_and_certificates((tmp / "k.p12").read_bytes(), b"p12 passphrase")
    assert key is not None and cert.subject.rfc4514_string() == "CN=web.example.com"

    audit = run(tmp, "audit", "verify")
    assert audit.returncode == 0, audit.stderr


def test_operators_from_the_command_line_without_approvals(cli_pki):
    """Role changes, tokens and deletion as a named operator; the last
    active administrator stays; an approver may manage no one."""
    tmp = cli_pki
    boot = run(
        tmp, "ra", "user", "bootstrap", "--operator", "admin=administrator", "--token-dir", "t"
    )
    assert boot.returncode == 0, boot.stderr
    assert run(tmp, "ra", "user", "add", "--name", "bob", "--role", "approver").returncode == 0
    as_admin = ("ra", "--operator-token-file", "t/admin.token", "user")
    role = run(tmp, *as_admin, "role", "bob", "auditor", "--json")
    assert role.returncode == 0 and json.loads(role.stdout)["role"] == "auditor"
    last = run(tmp, *as_admin, "disable", "admin")
    assert last.returncode == 7 and b"last active administrator" in last.stderr
    assert run(tmp, *as_admin, "role", "admin", "approver").returncode == 7
    old = (tmp / "t" / "admin.token").read_text()
    rotated = run(tmp, *as_admin, "token", "--token-out", "t/admin.token")
    assert rotated.returncode == 0, rotated.stderr
    assert (tmp / "t" / "admin.token").read_text() != old
    (tmp / "old.token").write_text(old)
    (tmp / "old.token").chmod(0o600)
    stale = run(tmp, "ra", "--operator-token-file", "old.token", "user", "delete", "bob")
    assert stale.returncode == 10
    loose = tmp / "t" / "admin.token"
    loose.chmod(0o644)
    assert run(tmp, *as_admin, "delete", "bob").returncode == 5  # a token file others may read
    loose.chmod(0o600)
    assert run(tmp, *as_admin, "delete", "bob").returncode == 0
    names = [u["name"] for u in json.loads(run(tmp, "ra", "user", "list", "--json").stdout)]
    assert names == ["admin"]
    audit = run(tmp, "audit", "list").stdout.decode()
    deletion = [line for line in audit.splitlines() if "ra.user.delete" in line]
    assert deletion and "ra:admin" in deletion[-1], audit


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
    # One CSR twice: one key and one name set in two valid certificates.
    dup = json.loads(run(tmp, "ra", "report", "duplicates", "--json").stdout)
    assert [(g["kind"], [c["entity"] for c in g["certificates"]]) for g in dup] == [
        ("key", ["web", "web"]),
        ("names", ["web", "web"]),
    ]
    counts = run(tmp, "ra", "report", "counts", "--csv").stdout.decode().splitlines()
    assert counts[0] == "ca,profile,status,count" and "issuing,tls-server,active,2" in counts
    soon = run(tmp, "ra", "report", "expiring", "--days", "100", "--csv").stdout.decode()
    lines = soon.splitlines()
    assert lines[0] == "subject,sans,issuer,serial,not_after,days_left,entity,owner"
    assert len(lines) == 3 and ",issuing," in lines[1] and lines[1].endswith(",web,ops@example.com")
    assert json.loads(run(tmp, "ra", "report", "expiring", "--days", "1", "--json").stdout) == []
    active = json.loads(
        run(tmp, "ra", "search", "--status", "active", "--entity", "web", "--json").stdout
    )
    assert [c["status"] for c in active] == ["active", "active"]
    assert active[0]["not_after"].endswith("Z")
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
    va_port, ra_port, est_port, scep_port = free_port(), free_port(), free_port(), free_port()
    (tmp_path / "all.toml").write_text(
        f"[va]\nport = {va_port}\nadmin_port = 0\n[ra]\nport = {ra_port}\n"
        f"[acme]\nport = 0\n[enroll]\nest_port = {est_port}\nscep_port = {scep_port}\n"
        'ca = "demo-clients"\n'
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
        # EST and SCEP run beside them: the device entity enrolls over EST.
        secret = api("POST", "/api/entities/device-1/secrets", {})["secret"]
        scep = f"http://127.0.0.1:{scep_port}/scep?operation=GetCACaps"
        with urllib.request.urlopen(scep, timeout=10) as response:
            assert "SCEPStandard" in response.read().decode()
        csr = x509.load_pem_x509_csr(make_csr("device-1", ()))
        enrolled = subprocess.run(
            [
                "curl", "-sf", "--cacert", str(d / "root.pem"), "-u", f"device-1:{secret}",
                "-H", "Content-Type: application/pkcs10", "--data-binary", "@-",
                f"https://127.0.0.1:{est_port}/.well-known/est/simpleenroll",
            ],
            input=base64.b64encode(csr.public_bytes(serialization.Encoding.DER)),
            capture_output=True,
            timeout=20,
        )  # fmt: skip
        assert enrolled.returncode == 0, enrolled.stderr
        assert api("GET", "/api/entities/device-1/certificates")["items"]
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
