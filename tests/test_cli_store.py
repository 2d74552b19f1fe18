"""Only the commands that make a store may make one: every other command,
pointed at a place with no Revoca store (a mistyped --data-dir, an empty
PostgreSQL database), says so, exits 3 and creates nothing."""

import os
import subprocess

import pytest

from tests.conftest import PASSPHRASE, REVOCA_CMD, run

# Every command that reads or changes the CA/RA store, or the VA's LMDB,
# with arguments that would get it past its option parsing.
READERS = [
    ("ca", "list"),
    ("ca", "certs"),
    ("ca", "show", "root"),
    ("ca", "crl", "--ca", "root"),
    ("ca", "crl-updater", "--once"),
    (
        "ca",
        "issue",
        "--ca",
        "x",
        "--profile",
        "tls-client",
        "--generate-key",
        "ec-p256",
        "--subject",
        "CN=a",
    ),
    ("ca", "revoke", "--ca", "x", "--serial", "01", "--reason", "superseded"),
    ("ca", "create-sub", "--name", "s", "--parent", "root", "--subject", "CN=s"),
    ("ca", "ocsp-signer", "--ca", "root", "--out", "o.pem"),
    ("ca", "rekey-files"),
    ("ca", "blocklist", "list"),
    ("ra", "user", "list"),
    ("ra", "entity", "list"),
    ("ra", "request", "list"),
    ("ra", "search", "--text", "x"),
    ("ra", "report", "counts"),
    ("ra", "export", "--out", "certs.zip"),
    ("ra", "notify", "--dry-run"),
    ("ra", "serve", "--port", "0", "--seconds", "1"),
    ("acme", "directories"),
    ("acme", "eab", "list"),
    ("acme", "eab", "create", "--entity", "web"),
    ("acme", "eab", "revoke", "kid-x"),
    ("acme", "serve", "--port", "0", "--seconds", "1"),
    ("audit", "verify"),
    ("audit", "list"),
    ("db", "current"),
    ("publisher", "status"),
    ("publisher", "run", "--seconds", "1"),
    ("publisher", "snapshot"),
    ("va", "import"),
    ("va", "status"),
    ("va", "presign"),
    ("va", "serve", "--port", "0"),
    ("serve", "--seconds", "1"),
]


def _tree(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.mark.parametrize("args", READERS, ids=" ".join)
def test_a_command_on_no_store_says_so_and_creates_nothing(tmp_path, args, monkeypatch):
    # In this process, as `revoca` runs it (a subprocess each took 45 s in
    # all; the exit codes are handle_errors', the same in both).
    from click.testing import CliRunner

    from revoca.cli import cli

    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)
    result = CliRunner().invoke(
        cli, ["--data-dir", str(tmp_path / "data"), *args], obj={}, prog_name="revoca"
    )
    stderr = result.stderr
    assert result.exit_code == 3, (stderr, result.exception)
    assert stderr.startswith(f"error: no Revoca store at {tmp_path / 'data'}"), stderr
    assert not (tmp_path / "data").exists()
    assert _tree(tmp_path) == before  # and nothing anywhere else


def test_the_commands_that_make_a_store_make_one(tmp_path):
    upgraded = run(tmp_path, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "data" / "revoca.db").is_file()
    assert run(tmp_path, "ca", "list").returncode == 0
    root = subprocess.run(
        [*REVOCA_CMD, "--data-dir", "fresh", "ca", "init-root", "--name", "r", "--subject", "CN=R"],
        cwd=tmp_path,
        env={**os.environ, "REVOCA_KEY_PASSPHRASE": PASSPHRASE},
        capture_output=True,
        text=True,
    )
    assert root.returncode == 0, root.stderr
    assert (tmp_path / "fresh" / "revoca.db").is_file()


def test_the_va_commands_name_the_missing_lmdb(cli_pki):
    """A CA store without a VA: the VA's commands name its LMDB and the
    command that loads it, and make no VA directory."""
    result = run(cli_pki, "va", "status")
    assert result.returncode == 3
    lmdb = cli_pki / "data" / "va" / "lmdb"
    assert result.stderr.decode().startswith(f"error: no Revoca store at {lmdb}")
    assert "revoca va import" in result.stderr.decode()
    assert not (cli_pki / "data" / "va").exists()


def test_an_empty_sqlite_file_is_no_store(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "revoca.db").write_bytes(b"")
    result = run(tmp_path, "ra", "user", "list")
    assert result.returncode == 3
    assert "has no Revoca tables" in result.stderr.decode()
    import sqlite3

    with sqlite3.connect(tmp_path / "data" / "revoca.db") as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []


def test_an_empty_postgresql_database_is_no_store(tmp_path, postgres_url):
    """A [store] url naming a database without Revoca's tables: exit 3, the
    URL (no password) named, and no table made in it."""
    import psycopg

    url = postgres_url.replace("revoca@", "revoca:hunter2@")
    (tmp_path / "pg.toml").write_text(f'[store]\nurl = "{url}"\n')
    result = run(tmp_path, "--config", "pg.toml", "ca", "list")
    stderr = result.stderr.decode()
    assert result.returncode == 3, stderr
    shown = postgres_url.replace("revoca@", "revoca:***@")
    assert stderr.startswith(f"error: no Revoca store at {shown}: the database has no Revoca"), (
        stderr
    )
    assert "hunter2" not in stderr
    assert not (tmp_path / "data").exists()
    dsn = postgres_url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(dsn) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()[0]
    assert tables == 0
    upgraded = run(tmp_path, "--config", "pg.toml", "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert run(tmp_path, "--config", "pg.toml", "ca", "list").returncode == 0
