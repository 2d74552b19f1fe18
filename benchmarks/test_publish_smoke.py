"""Run the publication benchmarks in a tiny configuration so they cannot rot.
No timing is asserted; only that they ran and measured what they say."""

from benchmarks.publish_bench import latency, throughput


def test_throughput_smoke():
    result = throughput(events=200, batch=50, baseline_events=20, seconds=30)
    assert result["batched"]["events"] == 200 and result["single"]["events"] == 20
    assert result["ratio"] > 0


def test_latency_smoke():
    result = latency(vas=2, revocations=3, seconds=60)
    assert result["samples"] == 6
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
