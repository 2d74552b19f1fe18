"""benchmarks/c/ecdsa_cost.c builds against the system's libcrypto and
measures every step it names (a few calls each, so it cannot rot). No
timing is asserted."""

import re
import subprocess
from pathlib import Path

from tests.conftest import need

SOURCE = Path(__file__).parent / "c" / "ecdsa_cost.c"
STEPS = 7


def test_ecdsa_cost_builds_and_measures(tmp_path):
    need("gcc")
    header = Path("/usr/include/openssl/evp.h")
    need("openssl/evp.h", "libssl-dev", found=str(header) if header.exists() else "")
    binary = tmp_path / "ecdsa_cost"
    subprocess.run(
        [
            "gcc",
            "-O2",
            "-Wall",
            "-Werror",
            "-Wno-deprecated-declarations",
            str(SOURCE),
            "-o",
            str(binary),
            "-lcrypto",
        ],
        check=True,
        capture_output=True,
    )
    done = subprocess.run([str(binary), "50"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 * STEPS
    for line in lines:
        match = re.fullmatch(r"(.+?)\s+(\d+\.\d\d) us", line)
        assert match and float(match.group(2)) > 0, line
    refused = subprocess.run([str(binary), "zero"], capture_output=True, text=True)
    assert refused.returncode == 2 and "usage" in refused.stderr
