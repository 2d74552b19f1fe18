"""A test that needs a program from a Debian package skips, naming the
package, where it is missing (tests/conftest.py ``need``): on a fresh
Debian 12 the suite passes without them; CI, which installs them all,
fails instead of skipping."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import conftest
from tests.conftest import NEED_ALL, PACKAGES, need

ROOT = Path(__file__).resolve().parent.parent


def test_need_gives_the_path_of_a_program_that_is_there():
    assert need("sh", "dash") == shutil.which("sh")


@pytest.mark.parametrize(
    ("tool", "package"),
    [
        ("openssl", "openssl"),
        ("unzip", "unzip"),
        ("wrk", "wrk"),
        ("nginx", "nginx-light"),
        ("gnutls-cli", "gnutls-bin"),
        ("certtool", "gnutls-bin"),
        ("ip", "iproute2"),
        ("ss", "iproute2"),
    ],
)
def test_a_missing_program_skips_naming_its_package(monkeypatch, tool, package):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv(NEED_ALL, raising=False)
    assert PACKAGES[tool] == package
    with pytest.raises(pytest.skip.Exception) as skipped:
        need(tool)
    assert str(skipped.value) == f"needs {tool}: install the Debian package {package}"


def test_where_every_package_is_required_a_missing_one_fails(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv(NEED_ALL, "1")
    with pytest.raises(pytest.fail.Exception, match="install the Debian package unzip"):
        need("unzip")


def test_no_postgresql_server_skips_naming_the_package(monkeypatch):
    monkeypatch.setattr(conftest.glob, "glob", lambda pattern: [])
    monkeypatch.delenv(NEED_ALL, raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        conftest.postgres_bindir()
    assert str(skipped.value) == "needs initdb: install the Debian package postgresql"


def _pytest_without(tmp_path, *tests: str) -> subprocess.CompletedProcess:
    """The suite's own tests, run where $PATH has none of the packages' programs."""
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("sh", "env"):  # what a test may run that every Debian has
        (bare / tool).symlink_to(shutil.which(tool))
    env = {**os.environ, "PATH": str(bare)}
    env.pop(NEED_ALL, None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *tests],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_suites_tests_skip_without_unzip_and_openssl(tmp_path):
    """unzip checked by ``need``; openssl run straight from a test
    (the hooks), and from a helper that checks first."""
    result = _pytest_without(
        tmp_path,
        "tests/test_zipstream.py::test_small_archive_with_names_and_a_streamed_entry",
        "tests/test_export.py::test_pkcs7_read_by_openssl",
        "tests/test_keyfiles.py::test_openssl_reads_the_key_files",
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "3 skipped" in out, out
    assert re.search(r"SKIPPED \[1\] \S+: needs unzip: install the Debian package unzip\n", out)
    assert re.search(r"SKIPPED \[2\] \S+: needs openssl: install the Debian package openssl\n", out)
