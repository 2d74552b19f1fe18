"""The README's shell blocks, run as written, in order, in one shell, in an
empty directory, on the embedded defaults (127.0.0.1 only).

A block is a run of lines indented by four spaces after a blank line. The
HTML comment on the line before it (blank lines between) may say:

- ``<!-- doc-test: skip (REASON) -->``: not run, for the reason given;
- ``<!-- doc-test: server URL -->``: a server, as typed in a shell of its
  own: started in the background, the next block runs once URL answers,
  and it is stopped after the last block.

Any other ``doc-test:`` comment is an error, as is a skip without a reason.
"""

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import need

README = Path(__file__).resolve().parent.parent / "README.md"
MARKER = re.compile(r"<!--\s*doc-test:\s*(?P<what>.*?)\s*-->")
SKIP = re.compile(r"skip \((?P<reason>.+)\)")
SERVER = re.compile(r"server (?P<url>http://127\.0\.0\.1:\d+/\S*)")
DEADLINE = 240  # seconds for the whole README (about a minute here)


@dataclass
class Block:
    line: int  # where it starts in README.md (1-based)
    text: str
    marker: str | None  # what its doc-test comment says


def blocks(markdown: str) -> list[Block]:
    lines = markdown.split("\n")
    found: list[Block] = []
    i = 0
    while i < len(lines):
        starts = lines[i].startswith("    ") and (i == 0 or not lines[i - 1].strip())
        if not starts:
            i += 1
            continue
        first, body = i, []
        while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
            body.append(lines[i][4:])
            i += 1
        before = first - 1
        while before >= 0 and not lines[before].strip():
            before -= 1
        marker = MARKER.search(lines[before]) if before >= 0 else None
        text = "\n".join(body).rstrip("\n") + "\n"
        found.append(Block(first + 1, text, marker.group("what") if marker else None))
    return found


def test_the_readme_blocks_are_found_and_their_markers_are_known():
    found = blocks(README.read_text())
    assert len(found) >= 6, found
    for block in found:
        if block.marker is None:
            continue
        assert SKIP.fullmatch(block.marker) or SERVER.fullmatch(block.marker), (
            f"README.md line {block.line}: unknown doc-test marker {block.marker!r}"
        )
    # The quick start is two commands, skipped by name: it installs and serves.
    quick = found[0]
    assert quick.text.splitlines() == [
        "pip install . && revoca demo",
        "pip install -e '.[test]' && python3 -m pytest",
    ]
    assert SKIP.fullmatch(quick.marker or "")


def test_blocks_reads_markers_and_indented_lines():
    text = (
        "Intro:\n\n    a\n    b \\\n        c\n\ntext\n\n<!-- doc-test: skip (why) -->\n\n    d\n"
    )
    assert blocks(text) == [
        Block(3, "a\nb \\\n    c\n", None),
        Block(11, "d\n", "skip (why)"),
    ]


WAIT = """
import sys, time, urllib.request
url, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    try:
        urllib.request.urlopen(url, timeout=2).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.3)
sys.exit(f"{url} did not answer")
"""


def script(found: list[Block], python: str) -> str:
    """One bash script running the blocks in order; servers in the background."""
    out = ["set -euo pipefail", "set -x"]
    for n, block in enumerate(found):
        if block.marker and SKIP.fullmatch(block.marker):
            continue
        out.append(f": README.md line {block.line}")
        server = SERVER.fullmatch(block.marker or "")
        if server:
            log = f"server-{n}.log"
            out.append(f"( set +x\n{block.text}) > {log} 2>&1 &")
            out.append(f"{python} wait-url.py {server['url']} 60 || {{ cat {log} >&2; exit 1; }}")
        else:
            out.append(block.text)
    out.append(": README.md done")
    return "\n".join(out) + "\n"


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_every_readme_block_runs_as_written(tmp_path):
    need("openssl")
    # The embedded defaults: the VA on 8080, its admin listener on 8081, ACME on
    # 8555, EST on 9443, SCEP on 8089.
    busy = [port for port in (8080, 8081, 8555, 9443, 8089) if not _free(port)]
    assert not busy, f"127.0.0.1 port(s) {busy} in use: the README's servers listen there"
    found = blocks(README.read_text())
    work = tmp_path / "work"
    work.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "revoca"  # `revoca` is this checkout's, installed or not
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m revoca "$@"\n')
    shim.chmod(0o755)
    (work / "wait-url.py").write_text(WAIT)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("REVOCA_") or k == "REVOCA_NO_EXTENSIONS"
    }
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    env["PYTHONPATH"] = str(README.parent)
    (tmp_path / "readme.sh").write_text(script(found, sys.executable))
    shell = subprocess.Popen(
        [shutil.which("bash"), str(tmp_path / "readme.sh")],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its servers too: stopped as one group
    )
    try:
        output, _ = shell.communicate(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        os.killpg(shell.pid, signal.SIGKILL)
        output, _ = shell.communicate()
        pytest.fail(f"the README took longer than {DEADLINE} s:\n{output[-6000:]}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGTERM)  # the servers left running
    assert shell.returncode == 0, output[-8000:]
    assert "+ : README.md done" in output
    # What the blocks say they show.
    assert re.search(r"cert\.pem: good\n", output), output[-4000:]
    assert re.search(r"cert\.pem: revoked\n", output), output[-4000:]
    assert "audit log intact" in output
