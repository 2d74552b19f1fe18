"""Soak: one VA worker under sustained load with a mixed request stream.

Good and revoked statuses (pre-signed), CertIDs of an issuer the VA does not
serve (unauthorized) and malformed requests, in one corpus that wrk sends
round-robin; every answer must be byte-equal to the answer verified for its
request. The worker's resident memory is sampled between wrk runs; after the
warm-up it must stay flat (growth under 5%).

    python -m benchmarks.soak --seconds 600

Server pinned to core 0, wrk to core 1 (when there are two). Exit status 0
only when every answer checked out and memory stayed flat.
"""

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.load_bench import rss_mb, worker_pids
from benchmarks.load_pki import build, make_corpus, verify_server, write_records
from benchmarks.load_servers import free_port, start_revoca, stop
from benchmarks.load_wrk import run_wrk
from va import fastocsp as core


def hostile_requests(posts: list[bytes], rng: random.Random, count: int):
    """(unauthorized, malformed) requests derived from real ones."""
    unauthorized, malformed = [], []
    for der in rng.sample(posts, min(count, len(posts))):
        (certid, *_), _nonce = core.parse_ocsp_request(der)
        name_hash = certid[1]
        at = der.index(name_hash)
        # Another issuer's name hash: parses, but no issuer served here matches.
        other = bytes(b ^ 0x5A for b in name_hash)
        unauthorized.append(der[:at] + other + der[at + len(name_hash) :])
        cut = rng.randrange(1, len(der) - 1)
        malformed.append(der[:cut] if rng.random() < 0.5 else der + b"\x00")
    return unauthorized, malformed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--certs", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=600, help="length of the soak")
    parser.add_argument("--sample", type=int, default=10, help="seconds per wrk run")
    parser.add_argument(
        "--warmup", type=int, default=120, help="seconds before the memory baseline"
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--max-growth", type=float, default=0.05, help="allowed memory growth after warm-up"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (Debian: apt-get install wrk)")
    cores = os.cpu_count() or 1
    server_core, client_core = ("0", "1") if cores >= 2 else (None, None)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="revoca-soak-") as temporary:
        workdir = Path(temporary) / "w"
        setup = build(workdir, args.certs, args.seed, presign_workers=cores)
        corpus = make_corpus(setup, 1000, args.seed)
        port = free_port()
        va = start_revoca(setup, port, 1, server_core)
        try:
            answers = verify_server(setup, corpus, port, "revoca", get=False)
            unauthorized, malformed = hostile_requests(corpus.posts, rng, 100)
            posts = corpus.posts + unauthorized + malformed
            expected = [*answers, core.UNAUTHORIZED, core.MALFORMED_REQUEST]
            order = list(range(len(posts)))
            rng.shuffle(order)  # the kinds interleaved
            files = workdir / "soak"
            files.mkdir()
            records = write_records(files / "posts.rec", [posts[i] for i in order])
            expect = write_records(files / "expected.rec", expected)
            (worker,) = worker_pids(va.pid) or [va.pid]
            samples, totals = [], {"requests": 0, "ok": 0, "failed_checks": 0}
            started = time.monotonic()
            while time.monotonic() - started < args.seconds:
                result = run_wrk(
                    port, "post", records, expect, args.connections, args.sample, client_core
                )
                for key in totals:
                    totals[key] += result[key]
                elapsed = time.monotonic() - started
                rss = rss_mb(worker)
                samples.append({"t": round(elapsed, 1), "rps": result["rps"], **rss})
                print(
                    f"  {elapsed:6.0f} s  {result['rps']:>9,.0f} req/s  p99"
                    f" {result['p99_us'] / 1000:6.2f} ms  failed {result['failed_checks']}"
                    f"  RSS {rss.get('VmRSS', 0):7.1f} MB (own {rss.get('RssAnon', 0):.1f})",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            stop(va)
    after_warmup = [s for s in samples if s["t"] >= args.warmup] or samples[-1:]
    base, last = after_warmup[0]["RssAnon"], samples[-1]["RssAnon"]
    growth = (last - base) / base
    peak = max(s["RssAnon"] for s in after_warmup)
    summary = {
        "certs": args.certs,
        "seconds": args.seconds,
        "requests": totals["requests"],
        "ok": totals["ok"],
        "failed_checks": totals["failed_checks"],
        "own_rss_mb_after_warmup": base,
        "own_rss_mb_last": last,
        "own_rss_mb_peak": peak,
        "growth_after_warmup": growth,
        "corpus": {"answers": len(answers), "unauthorized": len(unauthorized)}
        | {"malformed": len(malformed)},
        "samples": samples,
    }
    print(
        f"soak {args.seconds} s: {totals['requests']:,} requests, {totals['ok']:,} checked"
        f" ok, {totals['failed_checks']} failed; worker's own memory {base:.1f} MB after"
        f" warm-up, {last:.1f} MB at the end (growth {growth:+.1%}, peak {peak:.1f} MB)"
    )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    checked = totals["failed_checks"] == 0 and totals["ok"] > 0
    return 0 if checked and growth < args.max_growth else 1


if __name__ == "__main__":
    sys.exit(main())
