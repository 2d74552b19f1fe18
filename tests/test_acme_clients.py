"""The ACME server (acmesrv/) against ACME clients we did not write:
certbot (in a virtualenv of its own) and lego (Debian's), on 127.0.0.1.

One PKI and one `revoca serve` (VA, RA API, publisher, ACME) for the
module; pebble-challtestsrv is the DNS server the validators ask (every
name is 127.0.0.1) and where certbot's dns-01 hooks put their TXT
records. certbot --standalone and lego listen on the ports [acme]
http_port and tls_port name. Every certificate issued passes `openssl
verify` and pkilint's CA/B Forum lints; revocations show in the store and
over OCSP from the node's VA. Beside it, `revoca acme serve` over TLS on
the same store, for clients that trust our root.

certbot: $REVOCA_CERTBOT_VENV (CI makes it, .ci/run), else a virtualenv
made once under ~/.cache/revoca-tests/certbot. Neither client can roll an
account key over (certbot has no such command, lego 4.9 neither), so
keyChange is left to the ACME server's own tests; nor does certbot 5 send
'replaces' or lego 4.9 ask renewal information, so ARI is seen through
certbot's renew alone.
"""

import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.conftest import (
    NEED_ALL,
    PASSPHRASE,
    PUBLIC_BASE_URL,
    REVOCA_CMD,
    free_port,
    need,
    openssl_verify,
    pkilint,
)

pytestmark = pytest.mark.slow

TIMEOUT = 120  # seconds, for any one client or CLI run
# What the tests read of certbot's output is certbot 5's (--ip-address,
# --preferred-profile and ARI are in 5.x); .ci/run installs the same.
CERTBOT = "certbot>=5,<6"
ISSUING = "issuing"
OPEN = "open"  # the directory where EAB is optional


# -- helpers -----------------------------------------------------------------------


def unavailable(message: str):
    """Skip, or fail where every tool must be there (CI), as need() does."""
    if os.environ.get(NEED_ALL):
        pytest.fail(f"{message} ({NEED_ALL} is set)")
    pytest.skip(message)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def certificates_in(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


@dataclass
class Node:
    """The module's PKI, `revoca serve` and pebble-challtestsrv."""

    dir: Path
    config: Path
    acme: int
    va: int
    http: int  # http-01 validations connect here
    tls: int  # tls-alpn-01 validations connect here
    dns: int
    management: int  # pebble-challtestsrv's management API
    log: Path

    def url(self, directory: str = ISSUING) -> str:
        return f"http://127.0.0.1:{self.acme}/acme/{directory}/directory"

    def revoca(self, *args: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [*REVOCA_CMD, "--data-dir", str(self.dir / "data"), *args],
            capture_output=True,
            text=True,
            env={**os.environ, "REVOCA_KEY_PASSPHRASE": PASSPHRASE, "REVOCA_CONFIG": self.config},
            cwd=self.dir,
            timeout=TIMEOUT,
        )
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    def eab(self, entity: str = "web") -> tuple[str, str]:
        made = json.loads(self.revoca("acme", "eab", "create", "--entity", entity, "--json").stdout)
        return made["key_id"], made["hmac_key"]

    def status(self, serial: int) -> dict:
        shown = self.revoca("ca", "show", ISSUING, "--serial", f"{serial:x}", "--json")
        return json.loads(shown.stdout)

    def ocsp(self, leaf: Path, expected: str) -> str:
        """`openssl ocsp` at the node's VA until it answers ``expected``
        (good, revoked), at most 15 s."""
        need("openssl")
        deadline = time.monotonic() + 15
        while True:
            result = subprocess.run(
                [
                    "openssl",
                    "ocsp",
                    "-issuer",
                    self.dir / "issuing.pem",
                    "-cert",
                    leaf,
                    "-url",
                    f"http://127.0.0.1:{self.va}/ocsp",
                    "-CAfile",
                    self.dir / "root.pem",
                    "-verify_other",
                    self.dir / "issuing.pem",
                ],
                capture_output=True,
                text=True,
                timeout=10,
            )
            if f": {expected}" in result.stdout or time.monotonic() > deadline:
                assert "Response verify OK" in result.stderr, result.stderr
                assert f": {expected}" in result.stdout, result.stdout + result.stderr
                return result.stdout
            time.sleep(0.3)

    def check_issued(self, path: Path, names: set[str], tmp_path: Path) -> x509.Certificate:
        """The leaf in ``path`` (the first certificate), for ``names``:
        `openssl verify` OK, pkilint's BR lints clean, OCSP good."""
        leaf = certificates_in(path)[0]
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert set(sans.get_values_for_type(x509.DNSName)) == names
        root, issuing = (certificates_in(self.dir / f"{n}.pem")[0] for n in ("root", ISSUING))
        verified = openssl_verify(tmp_path, root, [issuing], leaf)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        assert pkilint("lint_cabf_serverauth_cert", tmp_path / "leaf.pem", "-d") == []
        self.ocsp(tmp_path / "leaf.pem", "good")
        return leaf


def _wait(process: subprocess.Popen, url: str, log: Path, what: str) -> None:
    deadline = time.monotonic() + 30
    while not _answers(url):
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process)
            pytest.fail(f"{what} did not start: {log.read_text()[-3000:]}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    cts_exe = need("pebble-challtestsrv", "pebble")
    need("openssl")
    d = tmp_path_factory.mktemp("acme-clients")
    ports = [free_port() for _ in range(7)]
    n = Node(d, d / "revoca.toml", *ports[:6], log=d / "serve.log")
    n.config.write_text(
        f"""
[urls]
base = "{PUBLIC_BASE_URL}"

[va]
port = {n.va}
admin_port = 0

[ra]
port = {ports[-1]}

[enroll]
est_port = -1
scep_port = -1

[acme]
port = {n.acme}
resolver = "127.0.0.1:{n.dns}"
http_port = {n.http}
tls_port = {n.tls}
validation_timeout = 5.0

[acme.directories.{ISSUING}]
ca = "{ISSUING}"
profiles = ["tls-server"]

[acme.directories.{OPEN}]
ca = "{ISSUING}"
external_account_required = false
default_entity = "web"
"""
    )
    cts_log = d / "challtestsrv.log"
    with cts_log.open("w") as out:
        cts = subprocess.Popen(
            [
                cts_exe,
                "-dns01",
                f"127.0.0.1:{n.dns}",
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-management",
                f"127.0.0.1:{n.management}",
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        n.revoca(
            "ca", "init-root", "--name", "root", "--subject", "CN=Test Root,O=Revoca Tests,C=DE"
        )
        n.revoca(
            "ca",
            "create-sub",
            "--name",
            ISSUING,
            "--parent",
            "root",
            "--subject",
            "CN=Test Issuing,O=Revoca Tests,C=DE",
        )
        n.revoca(
            "ra",
            "entity",
            "create",
            "--name",
            "web",
            "--email",
            "ops@example.com",
            "--ca",
            ISSUING,
            "--profile",
            "tls-server",
            "--subject-template",
            "CN={identifier}",
            "--allow-san",
            "dns:*.example.com",
            "--allow-san",
            "dns:example.com",
        )
        n.revoca(
            "ra", "entity", "create", "--name", "lab", "--email", "ops@example.com",
            "--ca", ISSUING, "--profile", "tls-server", "--subject-template", "CN={identifier}",
            "--allow-san", "ip:127.0.0.1",
        )  # fmt: skip
        for name in ("root", ISSUING):
            n.revoca("ca", "export", "--ca", name, "--format", "pem", "--out", f"{name}.pem")
        n.revoca("ca", "ocsp-signer", "--ca", ISSUING, "--out", "ocsp.pem")
        n.revoca("va", "import")
        with n.log.open("w") as out:
            server = subprocess.Popen(
                [*REVOCA_CMD, "--data-dir", str(d / "data"), "serve"],
                env={**os.environ, "REVOCA_KEY_PASSPHRASE": PASSPHRASE, "REVOCA_CONFIG": n.config},
                cwd=d,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait(server, n.url(), n.log, "revoca serve")
            _wait(server, f"http://127.0.0.1:{n.va}/healthz", n.log, "the VA")
            yield n
        finally:
            _stop(server)
    finally:
        _stop(cts)


# -- certbot -----------------------------------------------------------------------


def _certbot_venv() -> Path:
    given = os.environ.get("REVOCA_CERTBOT_VENV")
    return Path(given) if given else Path.home() / ".cache" / "revoca-tests" / "certbot"


@pytest.fixture(scope="session")
def certbot_exe() -> Path:
    """certbot in a virtualenv of its own (it may need another
    cryptography than ours): made once, then reused (made again when its
    certbot does not run)."""
    venv = _certbot_venv()
    exe = venv / "bin" / "certbot"
    if _runs(exe):
        return exe
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", "--clear", str(venv)],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
        subprocess.run(
            [venv / "bin" / "pip", "install", "-q", CERTBOT],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        detail = (getattr(exc, "stderr", None) or str(exc)).strip()[-500:]
        unavailable(f"needs certbot: could not make its virtualenv in {venv}: {detail}")
    if not _runs(exe):
        unavailable(f"needs certbot: {exe} does not run after pip install {CERTBOT}")
    return exe


def _runs(exe: Path) -> bool:
    try:
        subprocess.run([exe, "--version"], check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


@dataclass
class Certbot:
    exe: Path
    dir: Path
    node: Node
    env: dict = field(default_factory=dict)  # REQUESTS_CA_BUNDLE for an https directory

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [
                self.exe,
                "--config-dir",
                self.dir / "config",
                "--work-dir",
                self.dir / "work",
                "--logs-dir",
                self.dir / "logs",
                "--non-interactive",
                "--agree-tos",
                *args,
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "CTS_MANAGEMENT": str(self.node.management), **self.env},
            timeout=TIMEOUT,
        )
        if check:
            assert result.returncode == 0, result.stdout + result.stderr + self.last_log()
        return result

    def last_log(self) -> str:
        log = self.dir / "logs" / "letsencrypt.log"
        return log.read_text() if log.exists() else ""

    def standalone(self, *names: str, extra=()) -> subprocess.CompletedProcess:
        return self(
            "certonly",
            "--server",
            self.node.url(),
            "--standalone",
            "--http-01-port",
            str(self.node.http),
            "--http-01-address",
            "127.0.0.1",
            *(a for name in names for a in ("-d", name)),
            *extra,
        )

    def live(self, cert_name: str) -> Path:
        return self.dir / "config" / "live" / cert_name


def new_certbot(certbot_exe, node, tmp_path_factory, name: str) -> Certbot:
    return Certbot(certbot_exe, tmp_path_factory.mktemp(name), node)


@pytest.fixture(scope="module")
def certbot(certbot_exe, node, tmp_path_factory) -> Certbot:
    """certbot with an account in the EAB directory."""
    client = new_certbot(certbot_exe, node, tmp_path_factory, "certbot")
    kid, mac = node.eab()
    client(
        "register",
        "--server",
        node.url(),
        "-m",
        "ops@example.com",
        "--eab-kid",
        kid,
        f"--eab-hmac-key={mac}",
    )
    return client


NO_EAB_SCRIPT = """
import sys, josepy
from acme import client, errors, messages
from cryptography.hazmat.primitives.asymmetric import rsa
key = josepy.JWKRSA(key=rsa.generate_private_key(65537, 2048))
net = client.ClientNetwork(key, user_agent="revoca-tests")
acme = client.ClientV2(client.ClientV2.get_directory(sys.argv[1], net), net)
try:
    acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
except messages.Error as exc:
    print(exc.typ)
else:
    print("registered")
"""


def test_certbot_register_needs_eab(certbot_exe, node, tmp_path_factory):
    client = new_certbot(certbot_exe, node, tmp_path_factory, "certbot-register")
    refused = client("register", "--server", node.url(), "-m", "ops@example.com", check=False)
    assert refused.returncode != 0
    assert "requires external account binding" in refused.stderr  # the directory's meta
    # The server refuses, too, a client that does not look at meta: the
    # acme library certbot is built on, with an RSA key (RS256).
    asked = subprocess.run(
        [certbot_exe.parent / "python", "-c", NO_EAB_SCRIPT, node.url()],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert asked.stdout.strip() == "urn:ietf:params:acme:error:externalAccountRequired", (
        asked.stdout + asked.stderr
    )

    kid, mac = node.eab()
    registered = client(
        "register",
        "--server",
        node.url(),
        "-m",
        "ops@example.com",
        "--eab-kid",
        kid,
        f"--eab-hmac-key={mac}",
    )
    assert "Account registered" in registered.stdout + registered.stderr
    keys = json.loads(node.revoca("acme", "eab", "list", "--json").stdout)
    assert next(k for k in keys if k["key_id"] == kid)["status"] == "bound"
    # A key binds one account only.
    again = new_certbot(certbot_exe, node, tmp_path_factory, "certbot-register-again")
    reused = again(
        "register",
        "--server",
        node.url(),
        "-m",
        "ops@example.com",
        "--eab-kid",
        kid,
        f"--eab-hmac-key={mac}",
        check=False,
    )
    assert reused.returncode != 0, reused.stdout

    # Where EAB is optional, an account acts for the directory's default entity.
    open_client = new_certbot(certbot_exe, node, tmp_path_factory, "certbot-open")
    opened = open_client("register", "--server", node.url(OPEN), "-m", "ops@example.com")
    assert "Account registered" in opened.stdout + opened.stderr
    issued = open_client(
        "certonly",
        "--server",
        node.url(OPEN),
        "--standalone",
        "--http-01-port",
        str(node.http),
        "--http-01-address",
        "127.0.0.1",
        "-d",
        "open.example.com",
    )
    assert issued.returncode == 0


def test_certbot_http01(certbot, node, tmp_path):
    certbot.standalone("www.example.com", extra=("--cert-name", "www"))
    node.check_issued(certbot.live("www") / "cert.pem", {"www.example.com"}, tmp_path)


HOOK = """
import json, os, sys, urllib.request
body = {"host": "_acme-challenge." + os.environ["CERTBOT_DOMAIN"] + "."}
if sys.argv[1] == "set-txt":
    body["value"] = os.environ["CERTBOT_VALIDATION"]
request = urllib.request.Request(
    "http://127.0.0.1:" + os.environ["CTS_MANAGEMENT"] + "/" + sys.argv[1],
    data=json.dumps(body).encode(), method="POST")
urllib.request.urlopen(request, timeout=5).read()
"""


def test_certbot_dns01_and_wildcard(certbot, node, tmp_path):
    hook = tmp_path / "hook.py"
    hook.write_text(HOOK)
    certbot(
        "certonly",
        "--server",
        node.url(),
        "--manual",
        "--preferred-challenges",
        "dns",
        "--manual-auth-hook",
        f"{sys.executable} {hook} set-txt",
        "--manual-cleanup-hook",
        f"{sys.executable} {hook} clear-txt",
        "-d",
        "example.com",
        "-d",
        "*.example.com",
        "--cert-name",
        "wildcard",
    )
    log = certbot.last_log()
    assert "dns-01" in log
    node.check_issued(
        certbot.live("wildcard") / "cert.pem", {"example.com", "*.example.com"}, tmp_path
    )


def test_certbot_profiles_and_refused_names(certbot, node, tmp_path):
    certbot.standalone(
        "profile.example.com", extra=("--preferred-profile", "tls-server", "--cert-name", "prof")
    )
    assert '"profile": "tls-server"' in certbot.last_log()  # asked for, and in the order
    node.check_issued(certbot.live("prof") / "cert.pem", {"profile.example.com"}, tmp_path)

    refused = certbot(
        "certonly",
        "--server",
        node.url(),
        "--standalone",
        "--http-01-port",
        str(node.http),
        "-d",
        "noprofile.example.com",
        "--required-profile",
        "nosuch",
        check=False,
    )
    assert refused.returncode != 0
    assert "urn:ietf:params:acme:error:invalidProfile" in certbot.last_log()

    refused = certbot(
        "certonly",
        "--server",
        node.url(),
        "--standalone",
        "--http-01-port",
        str(node.http),
        "-d",
        "www.other.org",
        check=False,
    )
    assert refused.returncode != 0
    assert "www.other.org is not among the names" in refused.stderr
    assert "urn:ietf:params:acme:error:rejectedIdentifier" in certbot.last_log()


def test_certbot_renewal_asks_ari(certbot, node, tmp_path):
    certbot.standalone("renew.example.com", extra=("--cert-name", "renew"))
    first = certificates_in(certbot.live("renew") / "cert.pem")[0]

    # Not forced: certbot asks the renewal information (RFC 9773), which
    # says later, and renews nothing.
    asked = certbot("renew", "--cert-name", "renew", "--no-random-sleep-on-renew")
    assert "not due for renewal" in asked.stdout + asked.stderr
    assert re.search(r'"GET /acme/issuing/renewal-info/[\w.-]+ HTTP/1.1" 200', certbot.last_log())

    certbot("renew", "--cert-name", "renew", "--force-renewal", "--no-random-sleep-on-renew")
    second = node.check_issued(certbot.live("renew") / "cert.pem", {"renew.example.com"}, tmp_path)
    assert second.serial_number != first.serial_number


def test_certbot_revocation(certbot, node, tmp_path):
    certbot.standalone("revoke.example.com", extra=("--cert-name", "revoke"))
    leaf = node.check_issued(certbot.live("revoke") / "cert.pem", {"revoke.example.com"}, tmp_path)
    certbot(
        "revoke",
        "--server",
        node.url(),
        "--cert-path",
        certbot.live("revoke") / "cert.pem",
        "--reason",
        "keycompromise",
        "--no-delete-after-revoke",
    )
    shown = node.status(leaf.serial_number)
    assert (shown["status"], shown["reason"]) == ("revoked", "keyCompromise")
    assert "Reason: keyCompromise" in node.ocsp(tmp_path / "leaf.pem", "revoked")

    # A revoked certificate's renewal information says renew now (RFC 9773
    # 4.2), so an ordinary `certbot renew` renews it.
    renewed = certbot("renew", "--cert-name", "revoke", "--no-random-sleep-on-renew")
    assert "all renewals succeeded" in renewed.stdout + renewed.stderr, renewed.stdout
    log = certbot.last_log()
    assert re.search(r'"GET /acme/issuing/renewal-info/\S+ HTTP/1.1" 200', log), log[-2000:]
    assert "Certificate is due for renewal" in log
    new = node.check_issued(certbot.live("revoke") / "cert.pem", {"revoke.example.com"}, tmp_path)
    assert new.serial_number != leaf.serial_number


def test_certbot_key_types(certbot, node, tmp_path):
    certbot.standalone(
        "rsa.example.com",
        "rsa2.example.com",
        extra=("--key-type", "rsa", "--rsa-key-size", "2048", "--cert-name", "rsa"),
    )
    node.check_issued(
        certbot.live("rsa") / "cert.pem", {"rsa.example.com", "rsa2.example.com"}, tmp_path
    )
    certbot.standalone(
        "p384.example.com",
        extra=("--key-type", "ecdsa", "--elliptic-curve", "secp384r1", "--cert-name", "p384"),
    )
    node.check_issued(certbot.live("p384") / "cert.pem", {"p384.example.com"}, tmp_path)


def test_certbot_revocation_with_the_certificate_key(certbot, node, tmp_path):
    """revokeCert signed by the certificate's own key (RFC 8555 7.6), not
    the account's; a second time: alreadyRevoked."""
    certbot.standalone("revoke-key.example.com", extra=("--cert-name", "revoke-key"))
    live = certbot.live("revoke-key")
    leaf = node.check_issued(live / "cert.pem", {"revoke-key.example.com"}, tmp_path)
    revoke = (
        "revoke",
        "--server",
        node.url(),
        "--cert-path",
        live / "cert.pem",
        "--key-path",
        live / "privkey.pem",
        "--reason",
        "superseded",
        "--no-delete-after-revoke",
    )
    certbot(*revoke)
    shown = node.status(leaf.serial_number)
    assert (shown["status"], shown["reason"]) == ("revoked", "superseded")
    node.ocsp(tmp_path / "leaf.pem", "revoked")
    again = certbot(*revoke, check=False)
    assert again.returncode != 0
    assert "urn:ietf:params:acme:error:alreadyRevoked" in certbot.last_log()


def test_certbot_account_update_and_deactivation(certbot_exe, node, tmp_path_factory):
    client = new_certbot(certbot_exe, node, tmp_path_factory, "certbot-account")
    kid, mac = node.eab()
    server = ("--server", node.url())
    eab = ("--eab-kid", kid, f"--eab-hmac-key={mac}", "--eab-hmac-alg", "HS512")
    client("register", *server, "-m", "ops@example.com", *eab)
    client("update_account", *server, "-m", "new@example.com")
    shown = client("show_account", *server)  # the account as the server has it
    assert "Email contact: new@example.com" in shown.stdout, shown.stdout

    # certbot forgets an account it deactivated; put it back, as a client
    # that kept its key would, and the server refuses it.
    accounts = client.dir / "config" / "accounts"
    kept = client.dir / "kept-accounts"
    shutil.copytree(accounts, kept)
    client("unregister", *server)
    shutil.rmtree(accounts, ignore_errors=True)
    shutil.copytree(kept, accounts)
    refused = client(
        "certonly",
        *server,
        "--standalone",
        "--http-01-port",
        str(node.http),
        "--http-01-address",
        "127.0.0.1",
        "-d",
        "deactivated.example.com",
        check=False,
    )
    assert refused.returncode != 0
    assert "urn:ietf:params:acme:error:unauthorized" in client.last_log()
    assert "the account is deactivated" in refused.stderr


def test_certbot_ip_address(certbot_exe, node, tmp_path_factory, tmp_path):
    """An ip identifier (RFC 8738) for an entity allowed 127.0.0.1: the
    certificate names the address in its SAN alone, with an empty subject
    (certbot reads a CN as a DNS name). pkilint's one error is the BR's
    refusal of an internal address, which is what a test can validate."""
    client = new_certbot(certbot_exe, node, tmp_path_factory, "certbot-ip")
    kid, mac = node.eab("lab")
    client("register", "--server", node.url(), "-m", "ops@example.com",
           "--eab-kid", kid, f"--eab-hmac-key={mac}")  # fmt: skip
    client(
        "certonly", "--server", node.url(), "--standalone", "--http-01-port", str(node.http),
        "--http-01-address", "127.0.0.1", "--ip-address", "127.0.0.1", "--cert-name", "ip",
    )  # fmt: skip
    leaf = certificates_in(client.live("ip") / "cert.pem")[0]
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(a) for a in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert sans.get_values_for_type(x509.DNSName) == []
    assert len(leaf.subject) == 0
    root, issuing = (certificates_in(node.dir / f"{n}.pem")[0] for n in ("root", ISSUING))
    verified = openssl_verify(tmp_path, root, [issuing], leaf)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    findings = pkilint("lint_cabf_serverauth_cert", client.live("ip") / "cert.pem", "-d")
    assert findings and all("cabf.internal_ip_address" in f for f in findings), findings
    node.ocsp(client.live("ip") / "cert.pem", "good")


# -- lego --------------------------------------------------------------------------


@dataclass
class Lego:
    exe: str
    dir: Path
    node: Node
    kid: str
    mac: str
    key_type: str = "ec256"  # of the account and the certificates
    server: str = ""  # the directory; default: the node's

    def __call__(
        self, *args: str, domains=(), check: bool = True, env=None
    ) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [
                self.exe,
                "--server",
                self.server or self.node.url(),
                "--email",
                "ops@example.com",
                "--accept-tos",
                "--eab",
                "--kid",
                self.kid,
                f"--hmac={self.mac}",
                "--path",
                self.dir,
                "--key-type",
                self.key_type,
                *(a for name in domains for a in ("--domains", name)),
                *args,
            ],
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            timeout=TIMEOUT,
        )
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    def http(self) -> tuple[str, ...]:
        return ("--http", "--http.port", f"127.0.0.1:{self.node.http}")

    def tls(self) -> tuple[str, ...]:
        return ("--tls", "--tls.port", f"127.0.0.1:{self.node.tls}")

    def crt(self, name: str) -> Path:
        return self.dir / "certificates" / f"{name}.crt"


@pytest.fixture(scope="module")
def lego(node, tmp_path_factory) -> Lego:
    exe = need("lego")
    return Lego(exe, tmp_path_factory.mktemp("lego"), node, *node.eab())


def test_lego_http01(lego, node, tmp_path):
    lego(*lego.http(), "run", domains=("lego-http.example.com",))
    node.check_issued(lego.crt("lego-http.example.com"), {"lego-http.example.com"}, tmp_path)


def test_lego_tls_alpn01(lego, node, tmp_path):
    lego(*lego.tls(), "run", domains=("lego-tls.example.com",))
    node.check_issued(lego.crt("lego-tls.example.com"), {"lego-tls.example.com"}, tmp_path)


def test_lego_renewal(lego, node, tmp_path):
    name = "lego-renew.example.com"
    lego(*lego.http(), "run", domains=(name,))
    first = certificates_in(lego.crt(name))[0]
    lego(*lego.http(), "renew", "--days", "90", "--no-random-sleep", domains=(name,))
    second = node.check_issued(lego.crt(name), {name}, tmp_path)
    assert second.serial_number != first.serial_number


def test_lego_revocation(lego, node, tmp_path):
    name = "lego-revoke.example.com"
    lego(*lego.tls(), "run", domains=(name,))
    leaf = node.check_issued(lego.crt(name), {name}, tmp_path)
    lego("revoke", "--reason", "4", "--keep", domains=(name,))  # 4: superseded
    shown = node.status(leaf.serial_number)
    assert (shown["status"], shown["reason"]) == ("revoked", "superseded")
    assert "Reason: superseded" in node.ocsp(tmp_path / "leaf.pem", "revoked")


EXEC = """#!{python}
import json, sys, urllib.request
action, fqdn, value = sys.argv[1:4]  # lego's exec provider: present|cleanup FQDN VALUE
body = {{"host": fqdn}}
if action == "present":
    body["value"] = value
endpoint = "set-txt" if action == "present" else "clear-txt"
request = urllib.request.Request(
    "http://127.0.0.1:{port}/" + endpoint, data=json.dumps(body).encode(), method="POST")
urllib.request.urlopen(request, timeout=5).read()
"""


def test_lego_dns01_wildcard_with_an_rsa_account(node, tmp_path_factory, tmp_path):
    """dns-01 through lego's exec provider (TXT records at challtestsrv),
    a wildcard, and RSA keys: the account's (RS256) and the certificate's."""
    client = Lego(
        need("lego"), tmp_path_factory.mktemp("lego-rsa"), node, *node.eab(), key_type="rsa2048"
    )
    script = tmp_path / "exec.py"
    script.write_text(EXEC.format(python=sys.executable, port=node.management))
    script.chmod(0o755)
    names = ("*.example.com", "lego-dns.example.com")
    client(
        "--dns",
        "exec",
        "--dns.resolvers",
        f"127.0.0.1:{node.dns}",
        "--dns.disable-cp",  # challtestsrv answers no SOA queries
        "run",
        domains=names,
        env={
            "EXEC_PATH": str(script),
            "EXEC_PROPAGATION_TIMEOUT": "10",
            "EXEC_POLLING_INTERVAL": "1",
            "EXEC_SEQUENCE_INTERVAL": "1",
        },
    )
    assert "BEGIN RSA PRIVATE KEY" in next((client.dir / "accounts").rglob("*.key")).read_text()
    node.check_issued(client.crt("_.example.com"), set(names), tmp_path)


def test_lego_three_clients_at_once(node, tmp_path_factory, tmp_path):
    """Three accounts ordering two names each at the same time, one by
    http-01, one by tls-alpn-01, one by dns-01: all issued."""
    script = tmp_path / "exec.py"
    script.write_text(EXEC.format(python=sys.executable, port=node.management))
    script.chmod(0o755)
    exe = need("lego")
    ways = {
        "http": ("--http", "--http.port", f"127.0.0.1:{node.http}"),
        "tls": ("--tls", "--tls.port", f"127.0.0.1:{node.tls}"),
        "dns": ("--dns", "exec", "--dns.resolvers", f"127.0.0.1:{node.dns}", "--dns.disable-cp"),
    }
    env = {
        **os.environ,
        "EXEC_PATH": str(script),
        "EXEC_PROPAGATION_TIMEOUT": "10",
        "EXEC_POLLING_INTERVAL": "1",
        "EXEC_SEQUENCE_INTERVAL": "1",
    }
    clients, running = {}, {}
    for way, flags in ways.items():
        client = Lego(exe, tmp_path_factory.mktemp(f"lego-{way}"), node, *node.eab())
        clients[way] = client
        names = (f"{way}-a.example.com", f"{way}-b.example.com")
        command = [
            exe, "--server", node.url(), "--email", "ops@example.com", "--accept-tos",
            "--eab", "--kid", client.kid, f"--hmac={client.mac}", "--path", str(client.dir),
            *(a for name in names for a in ("--domains", name)), *flags, "run",
        ]  # fmt: skip
        running[way] = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    outputs = {}
    try:
        for way, process in running.items():
            outputs[way] = process.communicate(timeout=TIMEOUT)[0]
    finally:
        for process in running.values():
            if process.poll() is None:
                _stop(process)
    for way, process in running.items():
        assert process.returncode == 0, (way, outputs[way])
        names = {f"{way}-a.example.com", f"{way}-b.example.com"}
        node.check_issued(clients[way].crt(f"{way}-a.example.com"), names, tmp_path)


# -- over https -------------------------------------------------------------------


@pytest.fixture(scope="module")
def https_url(node):
    """`revoca acme serve` over TLS (a certificate for 127.0.0.1 from our
    own CA) beside the node, on the same store: its directory's URL."""
    need("openssl")
    key, csr = node.dir / "acme-tls.key", node.dir / "acme-tls.csr"
    made = subprocess.run(
        [
            "openssl",
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-noenc",
            "-keyout",
            key,
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-out",
            csr,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert made.returncode == 0, made.stderr
    cert = node.dir / "acme-tls.pem"
    node.revoca(
        "ca", "issue", "--ca", ISSUING, "--profile", "tls-server", "--csr", str(csr),
        "--format", "pem-chain", "--out", str(cert),
    )  # fmt: skip
    port = free_port()
    config = node.dir / "https.toml"
    config.write_text(
        node.config.read_text().replace(
            f"[acme]\nport = {node.acme}\n",
            f'[acme]\nport = {port}\ntls_cert = "{cert}"\ntls_key = "{key}"\n',
        )
    )
    assert f"port = {port}" in config.read_text()
    log = node.dir / "https.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [*REVOCA_CMD, "--data-dir", str(node.dir / "data"), "acme", "serve"],
            env={**os.environ, "REVOCA_KEY_PASSPHRASE": PASSPHRASE, "REVOCA_CONFIG": config},
            cwd=node.dir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"https://127.0.0.1:{port}/acme/{ISSUING}/directory"
    trust = ssl.create_default_context(cafile=node.dir / "root.pem")
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                with urllib.request.urlopen(url, timeout=1, context=trust) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"revoca acme serve (TLS) did not start: {log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        _stop(server)


def test_clients_over_https(https_url, node, certbot_exe, tmp_path_factory, tmp_path):
    """An https directory, trusted through our root (REQUESTS_CA_BUNDLE for
    certbot, LEGO_CA_CERTIFICATES for lego)."""
    root = str(node.dir / "root.pem")
    lego = Lego(
        need("lego"), tmp_path_factory.mktemp("lego-https"), node, *node.eab(), server=https_url
    )
    lego(
        *lego.http(), "run", domains=("https-lego.example.com",), env={"LEGO_CA_CERTIFICATES": root}
    )
    node.check_issued(lego.crt("https-lego.example.com"), {"https-lego.example.com"}, tmp_path)

    certbot = Certbot(
        certbot_exe, tmp_path_factory.mktemp("certbot-https"), node, {"REQUESTS_CA_BUNDLE": root}
    )
    kid, mac = node.eab()
    certbot("register", "--server", https_url, "-m", "ops@example.com",
            "--eab-kid", kid, f"--eab-hmac-key={mac}")  # fmt: skip
    certbot(
        "certonly", "--server", https_url, "--standalone", "--http-01-port", str(node.http),
        "--http-01-address", "127.0.0.1", "-d", "https-certbot.example.com",
        "--cert-name", "https",
    )  # fmt: skip
    node.check_issued(certbot.live("https") / "cert.pem", {"https-certbot.example.com"}, tmp_path)


def test_the_servers_logged_no_errors(node, https_url):
    """Last: every refusal above was a problem document the server meant,
    none a failure it logged (a server error answers serverInternal)."""
    for log in (node.log, node.dir / "https.log"):
        failures = [
            line
            for line in log.read_text().splitlines()
            if '"level": "error"' in line or "Traceback" in line
        ]
        assert failures == [], "\n".join(failures)[-3000:]
