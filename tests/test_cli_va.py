"""`revoca va` as scripts see it: the README's exit codes for a wrong key
passphrase (6) and a store that cannot be written (8), one line of error."""

import os
import shutil
import subprocess

import pytest

from tests.conftest import REVOCA_CMD, demo_pki, free_port


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return demo_pki(tmp_path_factory.mktemp("va-cli"))


def revoca(d, env, *args, timeout=60):
    return subprocess.run(
        [*REVOCA_CMD, "--data-dir", str(d), *args],
        cwd=d.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_error_line(result) -> str:
    """The one ``error:`` line of stderr (a progress bar's label may precede
    it), with no traceback and no log record beside it."""
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert not any(line.startswith("{") for line in lines), result.stderr
    return errors[0]


@pytest.mark.parametrize(
    "command",
    [
        ["va", "import"],
        ["va", "presign"],
        ["va", "serve", "--admin-port", "0", "--workers", "1"],
    ],
    ids=["import", "presign", "serve"],
)
def test_a_wrong_passphrase_exits_6(demo, command):
    d, env = demo
    if command[1] == "serve":
        command = [*command, "--port", str(free_port())]
    before = revoca(d, env, "va", "status").stdout
    result = revoca(d, {**env, "REVOCA_KEY_PASSPHRASE": "not-the-passphrase"}, *command)
    assert result.returncode == 6, result.stderr
    assert "wrong passphrase for responder key" in one_error_line(result)
    assert revoca(d, env, "va", "status").stdout == before  # nothing written


@pytest.fixture
def full_disk(tmp_path):
    """A 4 MiB tmpfs (mounted here, root only), filled to the last block by
    the caller; unmounted afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs to fill needs root")
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def fill(directory) -> None:
    """Write zeros to ``directory`` until its filesystem has no block left."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        block = bytes(4096)
        for _ in range(10_000):  # 40 MiB at most: far more than the tmpfs holds
            try:
                os.write(fd, block)
            except OSError:
                return
        pytest.fail("the small filesystem never filled")
    finally:
        os.close(fd)


def test_presign_on_a_full_disk_exits_8(demo, full_disk):
    d, env = demo
    copy = full_disk / "d"
    shutil.copytree(d, copy, symlinks=True)
    fill(full_disk)
    result = revoca(copy, env, "va", "presign")
    assert result.returncode == 8, result.stderr
    line = one_error_line(result)
    assert "LMDB write failed" in line and "nothing was written" in line
