"""The `revoca` command as scripts use it: exit codes, messages, files."""

import json
import os
import stat
import subprocess

import pytest

from tests.conftest import REVOCA_CMD, free_port, make_csr, openssl_ocsp, run


def test_issue_revoke_and_verify(cli_pki):
    tmp = cli_pki
    (tmp / "req.pem").write_bytes(make_csr())
    result = run(
        tmp,
        "ca",
        "issue",
        "--ca",
        "issuing",
        "--profile",
        "tls-server",
        "--csr",
        "req.pem",
        "--out",
        "leaf.pem",
    )
    assert result.returncode == 0, result.stderr
    serial = result.stderr.decode().split("issued serial ")[1].split()[0]
    run(tmp, "ca", "show", "root", "--pem")
    (tmp / "root.pem").write_bytes(run(tmp, "ca", "show", "root", "--pem").stdout)
    (tmp / "sub.pem").write_bytes(run(tmp, "ca", "show", "issuing", "--pem").stdout)
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", "root.pem", "-untrusted", "sub.pem", "leaf.pem"],
        cwd=tmp,
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stderr
    revoked = run(
        tmp, "ca", "revoke", "--ca", "issuing", "--serial", serial, "--reason", "keyCompromise"
    )
    assert revoked.returncode == 0 and b"revoked (keyCompromise)" in revoked.stdout
    again = run(tmp, "ca", "revoke", "--ca", "issuing", "--serial", serial)
    assert again.returncode == 7 and b"already revoked" in again.stderr
    listing = run(tmp, "ca", "certs", "--ca", "issuing", "--status", "revoked")
    assert serial.encode() in listing.stdout
    assert run(tmp, "audit", "verify").returncode == 0


def test_a_revocation_time_before_not_before_exits_5(cli_pki):
    (cli_pki / "req.pem").write_bytes(make_csr())
    issued = run(
        cli_pki, "ca", "issue", "--ca", "issuing", "--profile", "tls-server", "--csr", "req.pem"
    )
    serial = issued.stderr.decode().split("issued serial ")[1].split()[0]
    revoke = ["ca", "revoke", "--ca", "issuing", "--serial", serial]
    early = run(cli_pki, *revoke, "--time", "2001-01-01T00:00:00Z")
    assert early.returncode == 5, early.stderr
    assert b"revocation time 2001-01-01 00:00:00Z lies before the certificate's notBefore" in (
        early.stderr
    )
    assert early.stderr.count(b"\n") == 1
    shown = json.loads(run(cli_pki, "ca", "show", "issuing", "--serial", serial, "--json").stdout)
    assert shown["status"] == "active"


def test_ca_export_writes_a_roots_own_certificate(cli_pki):
    """`ca export` without --serial, or with the root's own serial, writes
    the CA certificate, and openssl reads it."""
    pem = run(cli_pki, "ca", "export", "--ca", "root", "--format", "pem", "--out", "root.pem")
    assert pem.returncode == 0, pem.stderr
    root_serial = json.loads(run(cli_pki, "ca", "show", "root", "--json").stdout)["serial"]
    der = run(
        cli_pki,
        "ca",
        "export",
        "--ca",
        "root",
        "--serial",
        root_serial,
        "--format",
        "der",
        "--out",
        "root.der",
    )
    assert der.returncode == 0, der.stderr
    for name, form in (("root.pem", "PEM"), ("root.der", "DER")):
        read = subprocess.run(
            ["openssl", "x509", "-inform", form, "-in", name, "-noout", "-subject", "-serial"],
            cwd=cli_pki,
            capture_output=True,
            text=True,
        )
        assert read.returncode == 0, read.stderr
        assert "CN = CLI Root" in read.stdout and root_serial.upper() in read.stdout.upper()
    chain = run(cli_pki, "ca", "export", "--ca", "issuing", "--format", "pem-chain")
    assert chain.returncode == 0 and chain.stdout.count(b"BEGIN CERTIFICATE") == 2
    p12 = run(cli_pki, "ca", "export", "--ca", "root", "--format", "p12", "--out", "root.p12")
    assert p12.returncode == 4 and b"stays in its crypto token" in p12.stderr


def test_csr_from_stdin_and_der_output(cli_pki):
    result = run(
        cli_pki,
        "ca",
        "issue",
        "--ca",
        "issuing",
        "--profile",
        "tls-server",
        "--csr",
        "-",
        "--format",
        "der",
        input=make_csr(),
    )
    assert result.returncode == 0 and result.stdout[:1] == b"\x30"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["ca", "show", "nope"], 3, b"no CA named 'nope'"),
        (
            ["ca", "issue", "--ca", "issuing", "--profile", "tls-server", "--csr", "bad.pem"],
            5,
            b"not a valid PKCS#10",
        ),
        (
            ["ca", "issue", "--ca", "issuing", "--profile", "tls-server", "--csr", "missing.pem"],
            5,
            b"cannot read CSR missing.pem",
        ),
        (
            [
                "ca",
                "issue",
                "--ca",
                "issuing",
                "--profile",
                "tls-server",
                "--csr",
                "req.pem",
                "--days",
                "999",
            ],
            4,
            b"exceeds the 398 days",
        ),
        (["ca", "revoke", "--ca", "issuing", "--serial", "zz"], 5, b"invalid serial 'zz'"),
        (
            ["ca", "revoke", "--ca", "issuing", "--serial", "01", "--reason", "nope"],
            5,
            b"unknown revocation reason",
        ),
        (["ca", "init-root", "--name", "root", "--subject", "CN=x"], 7, b"already exists"),
        (
            ["ca", "issue", "--ca", "issuing", "--profile", "tls-server"],
            2,
            b"give exactly one of --csr or --generate-key",
        ),
        (
            ["ca", "export", "--ca", "issuing", "--serial", "01", "--format", "zip"],
            2,
            b"Invalid value for '--format'",
        ),
    ],
)
def test_exit_codes(cli_pki, args, code, message):
    (cli_pki / "bad.pem").write_bytes(b"not a csr")
    (cli_pki / "req.pem").write_bytes(make_csr())
    result = run(cli_pki, *args)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert b"Traceback" not in result.stderr


def test_wrong_or_missing_passphrase(cli_pki):
    (cli_pki / "req.pem").write_bytes(make_csr())
    args = ["ca", "issue", "--ca", "issuing", "--profile", "tls-server", "--csr", "req.pem"]
    wrong = run(cli_pki, *args, env={"REVOCA_KEY_PASSPHRASE": "not-the-passphrase"})
    assert wrong.returncode == 6 and b"wrong passphrase for key 'ca-issuing'" in wrong.stderr
    env = {k: v for k, v in os.environ.items() if k != "REVOCA_KEY_PASSPHRASE"}
    missing = subprocess.run(
        [*REVOCA_CMD, "--data-dir", str(cli_pki / "data"), *args],
        capture_output=True,
        env=env,
        cwd=cli_pki,
    )
    assert missing.returncode == 6 and b"no key passphrase" in missing.stderr
    # Nothing was issued by the failed attempts.
    listing = run(cli_pki, "ca", "certs", "--ca", "issuing", "--json")
    assert listing.stdout.strip() == b"[]"


def test_p12_export_is_private(cli_pki):
    result = run(
        cli_pki,
        "ca",
        "issue",
        "--ca",
        "issuing",
        "--profile",
        "tls-client",
        "--generate-key",
        "ec-p256",
        "--subject",
        "CN=bob",
        "--san",
        "email:bob@example.com",
    )
    assert result.returncode == 0, result.stderr
    serial = result.stderr.decode().split("issued serial ")[1].split()[0]
    export = ["ca", "export", "--ca", "issuing", "--serial", serial, "--format", "p12"]
    passphrase = {"REVOCA_EXPORT_PASSPHRASE": "export-pass"}
    to_stdout = run(cli_pki, *export, env=passphrase)
    assert to_stdout.returncode == 5 and b"needs --out FILE" in to_stdout.stderr
    ok = run(cli_pki, *export, "--out", "bob.p12", env=passphrase)
    assert ok.returncode == 0, ok.stderr
    assert stat.S_IMODE((cli_pki / "bob.p12").stat().st_mode) == 0o600


def test_import_with_passphrase_file(cli_pki):
    tmp = cli_pki
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-keyout",
            "ca.key",
            "-passout",
            "pass:import-secret",
            "-subj",
            "/CN=Imported",
            "-days",
            "30",
            "-out",
            "ca.pem",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
        ],
        cwd=tmp,
        check=True,
        capture_output=True,
    )
    (tmp / "pass.txt").write_text("import-secret\n")
    (tmp / "pass.txt").chmod(0o600)
    result = run(
        tmp,
        "ca",
        "import",
        "--name",
        "imported",
        "--cert",
        "ca.pem",
        "--key",
        "ca.key",
        "--key-passphrase-file",
        "pass.txt",
    )
    assert result.returncode == 0, result.stderr
    assert b"imported CA imported" in result.stdout


def test_help_for_every_command():
    from revoca.cli import cli

    def walk(group, path):
        yield path
        for name, command in getattr(group, "commands", {}).items():
            yield from walk(command, [*path, name])

    paths = list(walk(cli, []))
    assert len(paths) > 15
    # In this process (a subprocess each took a minute and a half in all);
    # the installed entry point itself answers once.
    from click.testing import CliRunner

    runner = CliRunner()
    for path in paths:
        result = runner.invoke(cli, [*path, "--help"], obj={}, prog_name="revoca")
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output
    result = subprocess.run([*REVOCA_CMD, "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "Usage:" in result.stdout, result.stderr


def test_no_option_takes_a_secret_on_the_command_line():
    """Passphrases come from files or the environment: `ps` must never show one."""
    import click

    from revoca.cli import cli

    def options(command):
        for param in command.params:
            if isinstance(param, click.Option):
                yield from param.opts
        for sub in getattr(command, "commands", {}).values():
            yield from options(sub)

    secret_opts = [o for o in options(cli) if "passphrase" in o or "password" in o]
    assert secret_opts, "expected the -env/-file passphrase options"
    assert all(o.endswith(("-env", "-file")) for o in secret_opts), secret_opts


def test_bad_config_file(tmp_path):
    (tmp_path / "bad.toml").write_text("[profiles.x]\nvalidity = 1\n")
    result = subprocess.run(
        [*REVOCA_CMD, "--config", str(tmp_path / "bad.toml"), "ca", "list"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "unknown setting(s) validity" in result.stderr


def test_demo(tmp_path):
    result = subprocess.run(
        [*REVOCA_CMD, "demo", "--dir", "d", "--serve-seconds", "0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "REVOCA_KEY_PASSPHRASE": ""},
    )
    assert result.returncode == 0, result.stderr
    assert "revoked" in result.stdout and "on hold" in result.stdout
    d = tmp_path / "d"
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", "root.pem", "-untrusted", "issuing.pem", "www.pem"],
        cwd=d,
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stderr
    assert stat.S_IMODE((d / "key-passphrase").stat().st_mode) == 0o600
    assert stat.S_IMODE((d / "revoca.db").stat().st_mode) == 0o600
    # A second run starts afresh; a directory the demo did not make is left alone.
    assert (
        subprocess.run(
            [*REVOCA_CMD, "demo", "--dir", "d", "--serve-seconds", "0"],
            cwd=tmp_path,
            capture_output=True,
        ).returncode
        == 0
    )
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("x")
    refused = subprocess.run(
        [*REVOCA_CMD, "demo", "--dir", "mine", "--serve-seconds", "0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 7 and "was not made by `revoca demo`" in refused.stderr
    assert (tmp_path / "mine" / "precious.txt").exists()


def _modes_of_directories(top) -> dict[str, str]:
    """The mode of ``top`` and of every directory below it, by relative path."""
    found = [top, *(p for p in top.rglob("*") if p.is_dir())]
    return {str(p.relative_to(top)): oct(stat.S_IMODE(p.stat().st_mode)) for p in found}


def test_the_va_directories_commands_create_are_private(cli_pki):
    """`revoca va import` and `revoca va admin-token` make the VA's directory,
    its lmdb/ and keys/, and each missing parent, 0700 (responder keys and
    the status store live there)."""
    tmp = cli_pki
    va_dir = tmp / "srv" / "revoca" / "va"
    config = tmp / "va.toml"
    config.write_text(f'[va]\ndirectory = "{va_dir}"\n')
    assert run(tmp, "ca", "ocsp-signer", "--ca", "issuing").returncode == 0
    result = run(tmp, "--config", str(config), "va", "import")
    assert result.returncode == 0, result.stderr
    modes = _modes_of_directories(tmp / "srv")
    assert set(modes) >= {".", "revoca", "revoca/va", "revoca/va/lmdb", "revoca/va/keys"}
    assert set(modes.values()) == {"0o700"}, modes
    token_dir = tmp / "elsewhere" / "va"
    config.write_text(f'[va]\ndirectory = "{token_dir}"\n')
    result = run(tmp, "--config", str(config), "va", "admin-token")
    assert result.returncode == 0, result.stderr
    assert _modes_of_directories(tmp / "elsewhere") == {".": "0o700", "va": "0o700"}


def test_the_demo_makes_its_directories_private(tmp_path):
    """The demo's directory, the parents it makes for it and everything of
    the VA's in it are 0700."""
    result = subprocess.run(
        [*REVOCA_CMD, "demo", "--dir", "a/b/d", "--serve-seconds", "0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    modes = _modes_of_directories(tmp_path / "a")
    assert set(modes) >= {".", "b", "b/d", "b/d/va", "b/d/va/lmdb", "b/d/va/keys"}
    assert set(modes.values()) == {"0o700"}, modes


def test_demo_serves_ocsp(tmp_path):
    """The demo's VA answers the real openssl client while it runs."""
    import time

    port = free_port()
    demo = subprocess.Popen(
        [
            *REVOCA_CMD,
            "demo",
            "--dir",
            "d",
            "--port",
            str(port),
            "--serve-seconds",
            "20",
            "--acme-port",
            "0",
            "--est-port",
            "0",
            "--scep-port",
            "0",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        d = tmp_path / "d"
        deadline = time.monotonic() + 20
        result = None
        while time.monotonic() < deadline:
            if (d / "api.pem").exists():
                result = subprocess.run(
                    [
                        "openssl",
                        "ocsp",
                        "-issuer",
                        d / "issuing.pem",
                        "-cert",
                        d / "api.pem",
                        "-url",
                        f"http://127.0.0.1:{port}/ocsp",
                        "-CAfile",
                        d / "chain.pem",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=10,
                )
                if result.returncode == 0:
                    break
            time.sleep(0.3)
        assert result is not None and result.returncode == 0, result and result.stderr
        assert "Response verify OK" in result.stderr and ": revoked" in result.stdout

        # A revocation from the CLI reaches the running VA through the
        # co-located publisher within seconds.
        def www_status():
            out = openssl_ocsp(d, port, "www.pem")
            return out.stdout

        assert ": good" in www_status()
        serial = (
            subprocess.run(
                ["openssl", "x509", "-in", d / "www.pem", "-noout", "-serial"],
                capture_output=True,
                text=True,
            )
            .stdout.split("=")[1]
            .strip()
        )
        env = {**os.environ, "REVOCA_KEY_PASSPHRASE": (d / "key-passphrase").read_text()}
        revoked = subprocess.run(
            [
                *REVOCA_CMD,
                "--data-dir",
                str(d),
                "ca",
                "revoke",
                "--ca",
                "demo-issuing",
                "--serial",
                serial,
                "--reason",
                "superseded",
            ],
            capture_output=True,
            env=env,
        )
        assert revoked.returncode == 0, revoked.stderr
        started = time.monotonic()
        while ": revoked" not in www_status() and time.monotonic() - started < 5:
            time.sleep(0.1)
        assert ": revoked" in www_status()
        assert time.monotonic() - started < 5

        status = subprocess.run(
            [*REVOCA_CMD, "--data-dir", str(d), "publisher", "status", "--json"],
            capture_output=True,
            text=True,
            env=env,
        )
        report = json.loads(status.stdout)
        assert report["vas"]["local"]["queue_depth"] == 0, status.stderr
    finally:
        demo.terminate()
        demo.wait(10)


def test_the_demo_prints_and_logs_no_secret(tmp_path):
    """The all-in-one demo creates keys, a passphrase and an admin token: none
    of them appears in what it prints or in any log it leaves."""
    done = subprocess.run(
        [
            *REVOCA_CMD,
            "demo",
            "--dir",
            "d",
            "--serve-seconds",
            "1",
            "--port",
            str(free_port()),
            "--acme-port",
            "0",
            "--est-port",
            "0",
            "--scep-port",
            "0",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    d = tmp_path / "d"
    secrets = [(d / "key-passphrase").read_text().strip()]
    secrets += [p.read_text().strip() for p in d.rglob("admin-token")]
    keys = [p for p in d.rglob("*.pem") if p.read_bytes().startswith(b"-----BEGIN ENCRYPTED")]
    assert keys  # the demo did write keys
    for key in keys:  # a line from the middle of each encrypted key
        lines = key.read_text().splitlines()
        secrets.append(lines[len(lines) // 2])
    logs = [p.read_text(errors="replace") for p in d.rglob("*.log")]
    for text in (done.stdout, done.stderr, *logs):
        for secret in secrets:
            assert secret not in text
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_secret_files_others_may_read_are_refused(tmp_path):
    """A key passphrase file and the SMTP password file: mode 0600 or exit
    (6: a key problem; 2: the configuration names a bad file), as the VA's
    admin token file."""
    passphrase = tmp_path / "pass"
    passphrase.write_text("a long enough passphrase\n")
    passphrase.chmod(0o644)
    config = tmp_path / "revoca.toml"
    config.write_text(f'[keys]\npassphrase_file = "{passphrase}"\n')
    refused = run(
        tmp_path, "--config", str(config), "ca", "init-root", "--name", "r", "--subject", "CN=R"
    )
    assert refused.returncode == 6, refused.stderr
    assert (
        f"the passphrase file {passphrase} must be mode 0600 (it is 644)".encode() in refused.stderr
    )
    assert not (tmp_path / "data" / "keys").exists() or not list(
        (tmp_path / "data" / "keys").iterdir()
    )
    password = tmp_path / "smtp"
    password.write_text("pw\n")
    password.chmod(0o604)
    config.write_text(f'[notify]\nusername = "u"\npassword_file = "{password}"\n')
    refused = run(tmp_path, "--config", str(config), "ra", "notify")
    assert refused.returncode == 2, refused.stderr
    assert (
        f"the SMTP password file {password} must be mode 0600 (it is 604)".encode()
        in refused.stderr
    )
