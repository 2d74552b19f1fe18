"""`revoca ra secret` and `revoca enroll serve` from the command line: a
demo PKI's device entity, a secret made, listed and revoked, and both
listeners answering real clients (curl over TLS, SCEP GetCACaps)."""

import json
import re
import subprocess
import time
import urllib.request

import pytest
from click.testing import CliRunner

from revoca.cli import cli
from tests.conftest import REVOCA_CMD, demo_pki, need

pytestmark = pytest.mark.slow


def invoke(d, env, *args):
    result = CliRunner().invoke(
        cli, ["--data-dir", str(d), *args], obj={}, prog_name="revoca", env=env
    )
    return result


def test_secrets_from_the_command_line_and_both_listeners_serve(tmp_path):
    d, env = demo_pki(tmp_path)
    made = invoke(d, env, "ra", "secret", "create", "--entity", "device-1", "--json")
    assert made.exit_code == 0, made.output
    secret = json.loads(made.stdout)
    assert secret["protocols"] == ["est", "scep"] and len(secret["secret"]) == 32
    listed = invoke(d, env, "ra", "secret", "list", "--entity", "device-1", "--json")
    rows = json.loads(listed.stdout)
    assert secret["id"] in {r["id"] for r in rows} and secret["secret"] not in listed.stdout
    table = invoke(d, env, "ra", "secret", "list")
    assert "ID" in table.stdout and "unused" in table.stdout
    bad = invoke(d, env, "ra", "secret", "create", "--entity", "nobody")
    assert bad.exit_code != 0 and "nobody" in bad.stderr
    assert (
        invoke(d, env, "ra", "secret", "create", "--entity", "device-1", "--days", "91").exit_code
        == 2
    )
    revoked = invoke(d, env, "ra", "secret", "revoke", secret["id"])
    assert revoked.exit_code == 0 and secret["id"] in revoked.stdout
    again = invoke(d, env, "ra", "secret", "revoke", secret["id"])
    assert again.exit_code != 0 and "revoked" in again.stderr

    config = tmp_path / "enroll.toml"
    config.write_text('[enroll]\nest_port = 0\nscep_port = 0\nca = "demo-clients"\n')
    server = subprocess.Popen(
        [*REVOCA_CMD, "--config", str(config), "--data-dir", str(d), "enroll", "serve",
         "--seconds", "30"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        ports = {}
        deadline = time.monotonic() + 20
        while len(ports) < 2:
            assert time.monotonic() < deadline and server.poll() is None
            line = server.stderr.readline()
            found = re.match(r"(EST|SCEP) on \w+://127\.0\.0\.1:(\d+)/", line)
            if found:
                ports[found[1]] = int(found[2])
        url = f"http://127.0.0.1:{ports['SCEP']}/scep?operation=GetCACaps"
        with urllib.request.urlopen(url, timeout=10) as response:
            caps = response.read().decode().split()
        assert "AES" in caps and "SHA-256" in caps and "DES3" not in caps
        done = subprocess.run(
            [need("curl"), "-sf", "--cacert", str(d / "root.pem"),
             f"https://127.0.0.1:{ports['EST']}/.well-known/est/cacerts"],
            capture_output=True,
            timeout=20,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['SCEP']}/metrics", timeout=10) as r:
            assert "revoca_enroll_http_events_total" in r.read().decode()
    finally:
        server.terminate()
        server.wait(10)


def test_a_ca_of_the_config_that_is_not_held_here_stops_the_listeners(tmp_path):
    d, env = demo_pki(tmp_path)
    for table in ('[enroll]\nca = "nope"\n', '[enroll.labels.x]\nca = "nope"\n'):
        config = tmp_path / "enroll.toml"
        config.write_text(
            "[enroll]\nest_port = 0\nscep_port = 0\n" + table.replace("[enroll]\n", "")
        )
        result = CliRunner().invoke(
            cli,
            ["--config", str(config), "--data-dir", str(d), "enroll", "serve", "--seconds", "0"],
            obj={},
            prog_name="revoca",
            env=env,
        )
        assert result.exit_code == 2, (table, result.output)
        assert "'nope', not held here" in result.stderr and "Traceback" not in result.output


def test_bootstrap_anchors_that_cannot_be_read_are_a_configuration_error(tmp_path):
    d, env = demo_pki(tmp_path)
    (tmp_path / "garbage.pem").write_text("not PEM\n")
    for anchors in (tmp_path / "missing.pem", tmp_path / "garbage.pem"):
        config = tmp_path / "enroll.toml"
        config.write_text(
            "[enroll]\nest_port = 0\nscep_port = 0\n[enroll.labels.fleet]\n"
            f'ca = "demo-clients"\nentity = "device-1"\nbootstrap_anchors = "{anchors}"\n'
        )
        result = CliRunner().invoke(
            cli,
            ["--config", str(config), "--data-dir", str(d), "est", "serve", "--seconds", "0"],
            obj={},
            prog_name="revoca",
            env=env,
        )
        assert result.exit_code == 2, result.output
        assert "cannot read the bootstrap anchors" in result.stderr
        assert "internal error" not in result.stderr


def test_a_label_naming_an_unknown_profile_stops_the_listeners(tmp_path):
    d, env = demo_pki(tmp_path)
    config = tmp_path / "enroll.toml"
    config.write_text(
        '[enroll]\nest_port = 0\nscep_port = 0\n[enroll.labels.x]\nca = "demo-clients"\n'
        'profile = "tls-clent"\n'
    )
    result = CliRunner().invoke(
        cli,
        ["--config", str(config), "--data-dir", str(d), "scep", "serve", "--seconds", "0"],
        obj={},
        prog_name="revoca",
        env=env,
    )
    assert result.exit_code == 2, result.output
    assert "[enroll.labels.x]" in result.stderr and "'tls-clent'" in result.stderr
