"""The load benchmark in its smoke configuration (seconds), so it cannot rot:
every server answers the whole corpus correctly under wrk. No timing is
asserted."""

import json
import os

from benchmarks import load_bench
from tests.conftest import need

TOOLS = ("wrk", "nginx", "openssl", "taskset", "unshare", "ip")


def test_load_bench_smoke(tmp_path):
    for tool in TOOLS:
        need(tool)
    out = tmp_path / "load.json"
    assert load_bench.main(["--smoke", "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    points = results["points"]
    expected = {
        "revoca pre-signed POST c32",
        "revoca pre-signed GET c32",
        "revoca pre-signed POST c1",
        "revoca pre-signed GET c1",
        "revoca fresh (nonce) POST c32",
        "nginx static POST c32",
        "nginx static GET c1",
        "openssl ocsp POST c32",
    }
    if os.cpu_count() >= 2:  # N workers against 1, pre-signed and fresh
        expected |= {
            f"revoca {kind} POST c32, {suffix}"
            for kind in ("pre-signed", "fresh (nonce)")
            for suffix in (f"{os.cpu_count()} workers", "1 worker, unpinned")
        }
    assert expected <= set(points)
    for label, point in points.items():
        assert point["ok"], label
        # checking runs around the timed ones looked at every answer ...
        assert len(point["checks"]) == 2, label
        assert all(
            r["checked"] and r["ok"] > 0 and r["failed_checks"] == 0 for r in point["checks"]
        )
        # ... and the timed runs only sent and counted (no Lua per response)
        assert all(not r["checked"] and r["ok"] == 0 for r in point["runs"]), label
        assert all(r["requests"] > 0 and r["failed_checks"] == 0 for r in point["runs"]), label
        # every server's CPU time, and wrk's, was read around every run
        assert all(run["server_cpu_us"] > 0 for run in point["runs"]), label
        assert all(0 < run["client_busy"] <= 1.05 for run in point["runs"]), label
        assert point["client_bound"] == (point["client_busy_median"] > 0.9), label
    assert results["setup"]["presigned"] == 2 * results["setup"]["certs"]
    # the raw signature baseline is the fastest of its three samples
    signing = results["signing"]
    samples = signing["raw_signature_samples_us"]
    assert len(samples) == 3 and all(sample > 0 for sample in samples)
    assert signing["raw_signature_us"] == min(samples)
    # and so is the libcrypto baseline (the VA's own signer in a loop)
    from va.signing import EVPSigner

    floors = signing["floor_signature_samples_us"]
    if EVPSigner is not None:
        assert len(floors) == 3 and all(sample > 0 for sample in floors)
        assert signing["floor_signature_us"] == min(floors)
        assert signing["presign_vs_floor"] > 0


def test_cpu_seconds_counts_a_process_tree():
    """The CPU column reads user and system time of a process and its
    descendants: a child spinning for 0.4 s shows up under its parent."""
    import subprocess
    import sys
    import time

    from benchmarks.load_wrk import cpu_seconds

    spin = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys; subprocess.run([sys.executable, '-c', {spin!r}])",
        ]
    )
    try:
        deadline = time.monotonic() + 30
        seen = 0.0
        while parent.poll() is None and time.monotonic() < deadline:
            seen = max(seen, cpu_seconds(parent.pid))
            time.sleep(0.05)
    finally:
        parent.kill()
        parent.wait()
    assert seen >= 0.25
    assert cpu_seconds(2**22 + 12345) == 0.0  # no such process: nothing, no error
