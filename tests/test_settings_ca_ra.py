"""The CA's and the RA's settings ([paths], [store], [keys], [urls], [crl],
[ra], [notify]): a wrong value gets an exact error, and a value other than
the default, for every key, reaches the running object that uses it (the
VA's and the publisher's are in test_settings.py)."""

import copy
import datetime as dt
import email
import email.policy
import http.client
import json
import ssl
import threading
import time
from pathlib import Path

import click
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ca.settings import CRLSettings, KeysSettings, URLSettings
from common import settings as schema
from ra.settings import NotifySettings, RASettings
from revoca.config import PathSettings, load_config
from store.settings import StoreSettings
from tests.conftest import PASSPHRASE, free_port, make_csr, self_signed, write_tls_files
from tests.ra_fixtures import OFFICER_ENTITY
from tests.test_settings import _toml_table


def _config(tmp_path, **sections) -> Path:
    path = tmp_path / "revoca.toml"
    text = f'[paths]\ndata_dir = "{tmp_path}"\n'
    for section, table in sections.items():
        text += f"[{section}]\n" + _toml_table(table)
    path.write_text(text)
    return path


def _every_key_changed(cls, table: dict) -> None:
    assert set(table) == set(schema.keys(cls)), set(schema.keys(cls)) ^ set(table)
    built = schema.build(cls, table, "x")
    defaults = cls()
    same = [k for k in table if getattr(built, k) == getattr(defaults, k)]
    assert not same, f"not changed from the default: {same}"


@pytest.mark.parametrize(
    ("section", "table", "message"),
    [
        ("ra", {"port": 99999}, "ra.port must be an integer from 0 to 65535"),
        ("ra", {"threads": 0}, "ra.threads must be an integer from 1 to 64"),
        ("ra", {"approvals_issue": 11}, "ra.approvals_issue must be 0 to 10"),
        ("ra", {"approvals_revoke": -1}, "ra.approvals_revoke must be 0 to 10"),
        (
            "ra",
            {"approvals_by_profile": {"tls-server": 11}},
            "ra.approvals_by_profile.tls-server must be 0 to 10",
        ),
        ("ra", {"approvals_by_profile": 2}, "ra.approvals_by_profile must be a table of profile"),
        ("ra", {"request_expiry_hours": 0}, "ra.request_expiry_hours must be more than 0"),
        ("ra", {"request_expiry_hours": 2161}, "ra.request_expiry_hours must be a number from 0"),
        ("ra", {"tls_cert": "a.pem"}, "ra.tls_cert and tls_key go together"),
        ("ra", {"tls_client_ca": "ca.pem"}, "ra.tls_client_ca needs tls_cert and tls_key"),
        ("ra", {"approval": 2}, "unknown setting ra.approval"),
        ("notify", {"thresholds_days": [0]}, "notify.thresholds_days must be a list of days"),
        ("notify", {"thresholds_days": []}, "notify.thresholds_days must be a list of days"),
        ("notify", {"smtp_port": 0}, "notify.smtp_port must be an integer from 1 to 65535"),
        ("notify", {"sender": "nobody"}, "notify.sender must be an email address"),
        ("notify", {"admin_emails": ["a@b", "c"]}, "notify.admin_emails must be a list of email"),
        ("notify", {"username": "pki"}, "notify.username needs password_file"),
        ("notify", {"interval": 0}, "notify.interval must be a number of at least 1"),
        ("crl", {"validity_days": 11}, "crl.validity_days must be an integer from 1 to 10"),
        ("crl", {"arl_validity_days": 400}, "crl.arl_validity_days must be an integer from 1"),
        (
            "crl",
            {"full_interval_hours": 500},
            "crl.full_interval_hours must not exceed validity_days",
        ),
        (
            "crl",
            {"delta_interval_minutes": 1441},
            "crl.delta_interval_minutes must not exceed delta_validity_days",
        ),
        ("crl", {"delta_url": "{base}/{cas}.crl"}, "crl.delta_url may use only {base} and {ca}"),
        ("store", {"url": "mysql://db/revoca"}, "store.url 'mysql://db/revoca' is not allowed"),
        ("store", {"auto_migrate": "yes"}, "store.auto_migrate must be true or false"),
        ("keys", {"passphrase_env": "1X"}, "keys.passphrase_env '1X' is not allowed"),
        ("urls", {"base": "va.example.com"}, "urls.base 'va.example.com' is not allowed"),
        ("paths", {"data_dir": 3}, "paths.data_dir must be a path"),
    ],
)
def test_a_wrong_value_gets_an_exact_error(tmp_path, section, table, message):
    from ca.errors import ConfigError

    path = tmp_path / "revoca.toml"
    path.write_text(f"[{section}]\n" + _toml_table(table))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.message.startswith(message), caught.value.message


# -- a PKI with TLS certificates for localhost ------------------------------------------


@pytest.fixture
def tls_pki(tmp_path, make_service):
    """A root and issuing CA in tmp_path (the configs below use it as
    data_dir), and tmp_path/tls with a server certificate for 127.0.0.1, an
    operator's client certificate and the chain; keys encrypted with
    PASSPHRASE."""
    service = make_service()
    service.init_root("root", "CN=Settings Root,O=Revoca Tests")
    service.create_sub("issuing", "root", "CN=Settings Issuing CA,O=Revoca Tests")
    tls = write_tls_files(service, tmp_path / "tls", client_subject="CN=operator")
    return service, tls


def _context(config) -> click.Context:
    return click.Context(click.Command("revoca"), obj={"config": config})


# -- [ra] ---------------------------------------------------------------------------------


def test_every_ra_setting_reaches_what_uses_it(tmp_path, tls_pki, loop, monkeypatch, sites):
    """Built as `revoca ra serve` builds it: the listener's address, TLS and
    client-certificate sign-in, the API's threads, and the approval counts
    and expiry of the requests it queues."""
    from ra import api as ra_api
    from revoca.cli_ra import _ra, serve_api

    _, tls = tls_pki
    port = free_port()
    table = {
        "host": "localhost",
        "port": port,
        "tls_cert": str(tls / "server.pem"),
        "tls_key": str(tls / "server.key"),
        "tls_client_ca": str(tls / "chain.pem"),
        "request_timeout": 2.5,
        "idle_timeout": 33.0,
        "threads": 3,
        "approvals_issue": 2,
        "approvals_revoke": 1,
        "approvals_by_profile": {"tls-client": 3},
        "request_expiry_hours": 1.5,
    }
    _every_key_changed(RASettings, table)
    config = load_config(_config(tmp_path, ra=table))
    seen: dict[str, bool] = {}

    threads = []
    original = ra_api.RAApi.__init__

    guards = []

    def recording(self, service, **kw):
        original(self, service, **kw)
        threads.append(self.executor._max_workers)
        guards.append(self.guard)  # holds the listener's deadlines (common/httpguard.py)

    monkeypatch.setattr(ra_api.RAApi, "__init__", recording)
    service = _ra(_context(config))
    operator_cert = (tls / "client.pem").read_bytes()
    service.users.create("tls-operator", "auditor", with_token=False, certificate=operator_cert)
    ra = config.ra  # as `revoca ra serve` starts it
    serving = loop.spawn(serve_api(service, ra, ra.host, ra.port, 30, config.passphrase))
    try:
        client = ssl.create_default_context(cafile=str(tls / "chain.pem"))
        client.load_cert_chain(tls / "client.pem", tls / "client.key", password=PASSPHRASE)
        deadline = time.monotonic() + 20
        while True:
            try:
                conn = http.client.HTTPSConnection("127.0.0.1", port, context=client, timeout=10)
                conn.request("GET", "/api/whoami")
                reply = conn.getresponse()
                body = json.loads(reply.read())
                conn.close()
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, "the RA API did not start"
                time.sleep(0.1)
        # Listening on localhost:port (127.0.0.1 here), TLS with the server
        # certificate (checked against the chain); the client certificate signs in.
        seen["port"] = seen["tls_cert"] = seen["tls_key"] = reply.status == 200
        # localhost and 127.0.0.1 are one address here: the listener's own record.
        seen["host"] = sites == [("localhost", port)]
        seen["tls_client_ca"] = body.get("name") == "tls-operator"
        seen["threads"] = threads == [3]
        limits = guards[0].limits
        seen["request_timeout"] = limits.request_timeout == table["request_timeout"]
        seen["idle_timeout"] = limits.idle_timeout == table["idle_timeout"]
        # and the running listener is held to them: whoami went through its guard
        seen["request_timeout"] &= guards[0].counts["requests"] == 1
    finally:
        serving.cancel()

    # The policy of the service `revoca ra ...` commands build.
    entity = copy.deepcopy(OFFICER_ENTITY)
    service.create_entity(
        entity["name"],
        email=entity["email"],
        ca=entity["ca"],
        profile="tls-server",
        subject_template=entity["subject_template"],
        allowed_sans=entity["allowed_sans"],
    )
    service.create_entity(
        "device-1",
        email="devices@example.com",
        ca="issuing",
        profile="tls-client",
        subject_template="CN={name}",
        allowed_sans=[],
    )
    server = service.enroll("web-1", csr=make_csr("x", ("dns:web-1.example.com",)))
    device = service.enroll("device-1", csr=make_csr("device-1", ()))
    seen["approvals_issue"] = (server.status, server.required) == ("pending", 2)
    seen["approvals_by_profile"] = (device.status, device.required) == ("pending", 3)
    seen["request_expiry_hours"] = server.expires_at - server.created_at == 5400
    issued = service.enroll("web-1", csr=make_csr("x", ("dns:web-1.example.com",)), approved=True)
    revocation = service.revoke("issuing", issued.certificate.serial, "superseded")
    seen["approvals_revoke"] = (revocation.status, revocation.required) == ("pending", 1)
    assert set(seen) == set(table), set(table) - set(seen)
    assert all(seen.values()), {k: v for k, v in seen.items() if not v}


# -- [notify] -----------------------------------------------------------------------------


def _localhost_certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for the name localhost (our profiles want
    fully qualified names), to test STARTTLS with its host name checked."""
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed(key, "localhost", days=1, ca=False, dns_names=("localhost",))
    cert_path, key_path = tmp_path / "localhost.pem", tmp_path / "localhost.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Inbox:
    def __init__(self):
        self.messages = []
        self.logins = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
            self.messages.append((envelope.mail_from, envelope.rcpt_tos, parsed, session))
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        self.logins.append((auth_data.login, auth_data.password, session.ssl is not None))
        ok = (auth_data.login, auth_data.password) == (b"notifier", b"smtp-password-7")
        return AuthResult(success=ok)


def test_every_notify_setting_reaches_what_uses_it(tmp_path, tls_pki, monkeypatch):
    """`revoca ra notify --loop` against an SMTP server on localhost that
    requires STARTTLS (its certificate checked) and a login: the server,
    port, TLS, login and password file, sender, thresholds, recipients and
    the interval between passes."""
    from revoca.cli import cli as main

    service, _ = tls_pki
    inbox = _Inbox()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(*_localhost_certificate(tmp_path))
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=server_tls,
        require_starttls=True,
        authenticator=inbox.authenticate,
        auth_require_tls=True,
    )
    controller.start()
    password = tmp_path / "smtp-password"
    password.write_text("smtp-password-7\n")
    password.chmod(0o600)
    table = {
        "smtp_host": "localhost",
        "smtp_port": controller.port,
        "starttls": True,
        "username": "notifier",
        "password_file": str(password),
        "sender": "pki-notices@example.org",
        "thresholds_days": [20, 5],
        "notify_entity": False,
        "admin_emails": ["pki-ops@example.org", "security@example.org"],
        "interval": 7,
    }
    _every_key_changed(NotifySettings, table)
    from ra.service import RAService

    ra = RAService(service)
    entity = copy.deepcopy(OFFICER_ENTITY)
    ra.create_entity(
        entity["name"],
        email="web-team@example.com",
        ca="issuing",
        profile="tls-server",
        subject_template=entity["subject_template"],
        allowed_sans=entity["allowed_sans"],
    )
    cert = ra.enroll("web-1", csr=make_csr("x", ("dns:web-1.example.com",)), days=10).certificate
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "localhost.pem"))  # trust it
    sleeps = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    try:
        result = CliRunner().invoke(
            main,
            [
                "--config",
                str(_config(tmp_path, notify=table)),
                "ra",
                "notify",
                "--loop",
                "--runs=2",
            ],
        )
    finally:
        controller.stop()
    assert result.exit_code == 0, result.output
    seen: dict[str, bool] = {}
    assert len(inbox.messages) == 1, inbox.messages
    mail_from, rcpt, msg, session = inbox.messages[0]
    seen["smtp_host"] = seen["smtp_port"] = True  # the one message came through it
    seen["starttls"] = session.ssl is not None
    seen["username"] = seen["password_file"] = inbox.logins == [
        (b"notifier", b"smtp-password-7", True)
    ]
    seen["sender"] = mail_from == "pki-notices@example.org" and msg["From"] == mail_from
    # 10 days left: the 20-day threshold is due (the default 30/14/7/1 would give 14).
    seen["thresholds_days"] = "Certificate expires in 9 days" in msg["Subject"] and (
        f"{cert.serial:X}" in msg.get_content().replace(":", "").upper()
    )
    seen["admin_emails"] = sorted(rcpt) == ["pki-ops@example.org", "security@example.org"]
    seen["notify_entity"] = "web-team@example.com" not in rcpt
    seen["interval"] = sleeps == [7]
    assert set(seen) == set(table), set(table) - set(seen)
    assert all(seen.values()), {k: v for k, v in seen.items() if not v}


# -- [crl], [urls], [keys], [store], [paths] --------------------------------------------


def test_every_crl_setting_reaches_the_crls_signed(tmp_path, tls_pki, monkeypatch):
    """`revoca ca crl-updater` and `revoca ca crl` under a configuration that
    changes every [crl] key: each CRL's nextUpdate (full, delta, ARL), the
    FreshestCRL pointer, and the updater's intervals."""
    from sqlalchemy import select

    from ca import crl_updater
    from revoca.cli import cli as main
    from store.tables.ca import crls as crl_table

    service, _ = tls_pki
    table = {
        "validity_days": 3,
        "delta_validity_days": 2,
        "arl_validity_days": 30,
        "delta_url": "{base}/deltas/{ca}.crl",
        "full_interval_hours": 12,
        "delta_interval_minutes": 15,
        "revocation_delay_minutes": 7,
    }
    _every_key_changed(CRLSettings, table)
    config = _config(tmp_path, crl=table, urls={"base": "http://crl.example.net:8000"})
    runner = CliRunner()

    def days(der: bytes) -> float:
        crl = x509.load_der_x509_crl(der)
        return (crl.next_update_utc - crl.last_update_utc) / dt.timedelta(days=1)

    schedules = []
    run_once = crl_updater.run_once

    def recording(service, schedule, **kw):
        schedules.append(schedule)
        return run_once(service, schedule, **kw)

    monkeypatch.setattr(crl_updater, "run_once", recording)
    # A new PKI: the root's ARL and the issuing CA's full CRL are due at once.
    result = runner.invoke(main, ["--config", str(config), "ca", "crl-updater", "--once"])
    assert result.exit_code == 0, result.output
    with service.store.read() as conn:
        signed = {r.kind: r.der for r in conn.execute(select(crl_table.c.kind, crl_table.c.der))}
    assert set(signed) == {"arl", "full", "delta"}, signed.keys()
    (schedule,) = schedules
    seen = {
        "full_interval_hours": schedule.full_interval == 12 * 3600,
        "delta_interval_minutes": schedule.delta_interval == 15 * 60,
    }
    now = int(time.time())
    assert crl_updater.due_work(service, schedule, now) == []
    assert [j.get("delta") for j in crl_updater.due_work(service, schedule, now + 901)] == [True]
    # A revocation is on a new full CRL once it is revocation_delay_minutes old.
    from ca.reasons import RevocationReason

    leaf = service.issue("issuing", make_csr(), "tls-server")
    service.revoke("issuing", leaf.serial, RevocationReason.superseded)
    at = int(time.time())

    def due(when: int) -> list[str]:
        return [job["name"] for job in crl_updater.due_work(service, schedule, when)]

    seen["revocation_delay_minutes"] = "issuing" not in due(at + 7 * 60 - 5)
    seen["revocation_delay_minutes"] &= due(at + 7 * 60 + 5)[:1] == ["issuing"]

    cli_crls = {}
    for name, args in (("full", []), ("delta", ["--delta"]), ("arl", ["--arl"])):
        ca = "root" if name == "arl" else "issuing"
        out = tmp_path / f"{name}.crl"
        result = runner.invoke(
            main, ["--config", str(config), "ca", "crl", "--ca", ca, "--out", str(out), *args]
        )
        assert result.exit_code == 0, result.output
        cli_crls[name] = out.read_bytes()
    seen["validity_days"] = days(signed["full"]) == days(cli_crls["full"]) == 3
    seen["delta_validity_days"] = days(cli_crls["delta"]) == 2
    seen["arl_validity_days"] = days(signed["arl"]) == days(cli_crls["arl"]) == 30
    urls = []
    for der in (signed["full"], cli_crls["full"]):
        freshest = x509.load_der_x509_crl(der).extensions.get_extension_for_class(x509.FreshestCRL)
        urls += [n.value for point in freshest.value for n in point.full_name]
    seen["delta_url"] = urls == ["http://crl.example.net:8000/deltas/issuing.crl"] * 2
    assert set(seen) == set(table), set(table) - set(seen)
    assert all(seen.values()), {k: v for k, v in seen.items() if not v}


def test_every_ca_store_and_path_setting_reaches_what_uses_it(tmp_path):
    """[paths] data_dir, [store] url and auto_migrate, [keys] passphrase_env
    and passphrase_file, [urls] base, through `revoca` commands."""
    from revoca.cli import cli as main

    data = tmp_path / "elsewhere"
    db = tmp_path / "db" / "ca.sqlite"
    passphrase = tmp_path / "key-passphrase"
    passphrase.write_text("a passphrase from a file\n")
    passphrase.chmod(0o600)
    sections = {
        "paths": {"data_dir": str(data)},
        "store": {"url": f"sqlite:///{db}", "auto_migrate": False},
        "keys": {"passphrase_env": "OTHER_PASSPHRASE", "passphrase_file": str(passphrase)},
        "urls": {"base": "http://va.example.org:8080/pki"},
    }
    for cls, section in (
        (PathSettings, "paths"),
        (StoreSettings, "store"),
        (KeysSettings, "keys"),
        (URLSettings, "urls"),
    ):
        _every_key_changed(cls, sections[section])
    path = tmp_path / "revoca.toml"
    path.write_text("".join(f"[{s}]\n" + _toml_table(t) for s, t in sections.items()))
    runner = CliRunner()

    def revoca(*args):
        return runner.invoke(main, ["--config", str(path), *args])

    seen = {}
    # auto_migrate = false: a new store is not migrated by an ordinary command.
    refused = revoca("ca", "init-root", "--name", "root", "--subject", "CN=Root")
    seen["auto_migrate"] = refused.exit_code == 8 and "hint: run `revoca db upgrade`" in (
        refused.output
    )
    assert revoca("db", "upgrade").exit_code == 0
    made = revoca("ca", "init-root", "--name", "root", "--subject", "CN=Root")
    assert made.exit_code == 0, made.output
    made = revoca("ca", "create-sub", "--name", "issuing", "--parent", "root", "--subject", "CN=I")
    assert made.exit_code == 0, made.output
    seen["url"] = db.exists() and not (data / "revoca.db").exists()
    keys = sorted((data / "keys").glob("*.key.pem"))  # beside them: the audit key, checkpoint
    seen["data_dir"] = len(keys) == 2 and (data / "keys" / "audit-hmac.key").exists()
    # Each key is encrypted with the file's passphrase (it wins over the variable).
    key = serialization.load_pem_private_key(keys[0].read_bytes(), b"a passphrase from a file")
    seen["passphrase_file"] = key is not None
    other_env = {"OTHER_PASSPHRASE": "the passphrase in the variable"}
    sections["keys"] = {"passphrase_env": "OTHER_PASSPHRASE"}
    path.write_text("".join(f"[{s}]\n" + _toml_table(t) for s, t in sections.items()))
    refused = runner.invoke(
        main, ["--config", str(path), "ca", "crl", "--ca", "issuing", "--out", "-"]
    )
    wrong = runner.invoke(
        main,
        ["--config", str(path), "ca", "crl", "--ca", "issuing", "--out", str(tmp_path / "c")],
        env=other_env,
    )
    # With the file gone from [keys], the key is looked for in OTHER_PASSPHRASE:
    # unset, then set to another passphrase; both refused, each naming it.
    seen["passphrase_env"] = (
        refused.exit_code != 0
        and "OTHER_PASSPHRASE" in refused.output
        and wrong.exit_code != 0
        and "passphrase" in wrong.output
    )
    sections["keys"] = {"passphrase_file": str(passphrase)}
    path.write_text("".join(f"[{s}]\n" + _toml_table(t) for s, t in sections.items()))
    csr = tmp_path / "leaf.csr"
    csr.write_bytes(make_csr("a.example.com", ["dns:a.example.com"]))
    out = tmp_path / "leaf.pem"
    issued = revoca(
        "ca",
        "issue",
        "--ca",
        "issuing",
        "--profile",
        "tls-server",
        "--csr",
        str(csr),
        "--out",
        str(out),
    )
    assert issued.exit_code == 0, issued.output
    cert = x509.load_pem_x509_certificate(out.read_bytes())
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    seen["base"] = "http://va.example.org:8080/pki/ocsp" in [d.access_location.value for d in aia]
    every = {
        k
        for cls in (PathSettings, StoreSettings, KeysSettings, URLSettings)
        for k in schema.keys(cls)
    }
    assert set(seen) == every, every - set(seen)
    assert all(seen.values()), {k: v for k, v in seen.items() if not v}
