"""The enrollment benchmark in a tiny configuration (4 clients, 8
enrollments a mode, seconds) so it cannot rot: EST with bootstrap
certificates, EST over a kept connection, SCEP and the in-process
baseline all enroll against `revoca enroll serve`, every certificate
checked, and the report has its fields. No timing is asserted."""

import json

from benchmarks import enroll_bench
from tests.conftest import need


def test_enroll_bench_smoke(tmp_path, capsys):
    need("taskset")
    out = tmp_path / "enroll.json"
    argv = ["--clients", "4", "--enrollments", "8", "--repeat", "1", "--warmup", "4"]
    argv += ["--seconds", "20", "--timeout", "15", "--workdir", str(tmp_path / "work")]
    assert enroll_bench.main([*argv, "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert set(results["modes"]) == {*enroll_bench.PROTOCOL_MODES, *enroll_bench.INPROC_MODES}
    assert {"cpu", "cores", "kernel", "python", "cryptography", "aiohttp"} <= set(
        results["machine"]
    )
    for name, mode in results["modes"].items():
        assert mode["warmup"]["enrolled"] == 4, name
        assert len(mode["runs"]) == 1 and mode["median"] == 0
        run = mode["runs"][0]
        # Every enrollment gave a certificate with the CSR's key under the
        # device CA, each a new one.
        assert run["started"] == run["enrolled"] == run["distinct_serials"] == 8, name
        assert run["errors"] == {}, run["error_examples"]
        assert run["enrollments_per_second"] > 0
        assert 0 < run["p50_ms"] <= run["p99_ms"] <= run["max_ms"]
        assert run["server_cpu_seconds"] > 0 and run["server_cpu_ms_per_enrollment"] > 0
        if name in enroll_bench.PROTOCOL_MODES:
            assert run["client_cpu_ms_per_enrollment"] > 0 and run["client_busy"] > 0
        else:
            assert run["client_cpu_seconds"] is None
        assert isinstance(run["contended"], bool) and isinstance(run["client_bound"], bool)
    assert results["modes"]["inproc-1"]["threads"] == 1
    assert results["modes"]["inproc"]["threads"] == 4
    ratios = results["ratios"]
    assert set(ratios) == {"est/inproc", "est-keepalive/inproc", "scep/inproc-rsa"}
    assert all(r["rate"] > 0 and r["server_cpu_per_enrollment"] > 0 for r in ratios.values())
    printed = capsys.readouterr().out
    assert "enroll/s" in printed and "p99 ms" in printed and "est/inproc: rate" in printed
