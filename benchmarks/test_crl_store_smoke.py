"""The CRL store benchmark in a tiny configuration, so it cannot rot (no timing asserted)."""

from benchmarks import crl_store_bench


def test_crl_store_bench_smoke():
    result = crl_store_bench.run(2000, delta_entries=200, repeat=2)
    assert result["entries"] == 2000
    assert result["delta_entries"] == 200
    assert len(result["delta_seconds_each"]) == 2
