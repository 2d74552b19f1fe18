"""The RA search benchmark in a tiny configuration, so it cannot rot: every
query must find what its baseline finds (no timing asserted)."""

import json

from benchmarks import ra_search_bench


def test_ra_search_bench_smoke(tmp_path):
    ra_search_bench.main(
        ["--certs", "2000", "--repeat", "1", "--export", "--json", str(tmp_path / "r.json")]
    )
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["setup"]["certs"] == 2000
    assert all(q["rows"] == q["baseline_rows"] > 0 for q in result["queries"].values())
    assert result["export"]["certificates"] == 2000
