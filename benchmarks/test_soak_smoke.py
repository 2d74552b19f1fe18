"""The soak harness in a few seconds, so it cannot rot: every answer of the
mixed stream (good, revoked, unauthorized, malformed) checks out. The memory
bound is the real run's (SECURITY.md); a few seconds only prove it measures."""

import json

from benchmarks import soak
from tests.conftest import need


def test_soak_smoke(tmp_path):
    need("wrk")
    out = tmp_path / "soak.json"
    argv = ["--certs", "500", "--seconds", "4", "--sample", "2", "--warmup", "0"]
    assert soak.main([*argv, "--max-growth", "1.0", "--json", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert summary["failed_checks"] == 0 and summary["ok"] == summary["requests"] > 1000
    assert summary["corpus"]["unauthorized"] == summary["corpus"]["malformed"] == 100
    assert all(sample["RssAnon"] > 0 for sample in summary["samples"])
