"""OCSP under HTTP load: Revoca's VA against nginx and `openssl ocsp`, in one run.

    python -m benchmarks.load_bench                    # 100,000 certificates
    python -m benchmarks.load_bench --certs 10000000   # the 10M point
    python -m benchmarks.load_bench --smoke            # seconds; what CI runs

Steps: a CA hierarchy with a delegated P-256 OCSP signer is made with
Revoca's CA; N certificate statuses under the issuing CA (about 10% revoked,
random 127-bit serials) are written as an OpenSSL ``index.txt``, which both
`openssl ocsp -index` and the VA (``revoca va import-index``) load, so both
answer for the same certificates (OCSP needs the statuses, not the
certificates themselves). The VA pre-signs every response (SHA-1 and SHA-256
CertIDs) on one core, timed against the raw signature and cryptography's
``OCSPResponseBuilder``. A corpus of distinct requests (both CertID hashes,
good and revoked serials) is sent once to every server and each answer is
verified (HTTP 200, successful, right serial, right status, valid signature;
nginx byte-identical to the VA) before any load is measured.

Load: wrk (Lua: ``benchmarks/ocsp_load.lua``) round-robin over the corpus,
keep-alive, 32 connections and 1, a warm-up, then several timed runs per
point; the server pinned to core 0 and wrk to core 1 (``taskset``). The
timed runs only send and count (wrk counts non-2xx answers and errors): a
Lua callback per response would cost wrk more than some servers spend per
answer, and the point would measure wrk. A checking run before and after
them looks at every response (status 200 and byte-equal to a verified
answer, or a successful OCSPResponse for servers that sign each request). A
point with any failed check is reported as failed, never as a figure. wrk's
own CPU is recorded beside the server's for every run; a point whose wrk
core was over 90% busy is marked client-bound (its figure is wrk's; a
ratio read from it compares wrk, not the servers).

Compared in the same run: nginx (one worker) sending the VA's pre-signed
bytes as static files, the ceiling for "send stored bytes over HTTP/1.1";
`openssl ocsp`, which signs every request; the VA signing fresh for nonce
requests; N workers with SO_REUSEPORT. Results go to stdout as a table and
to ``--json``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp

from benchmarks.load_pki import (
    Setup,
    build,
    floor_signature_seconds,
    make_corpus,
    raw_signature_seconds,
    verify_server,
    write_records,
)
from benchmarks.load_servers import (
    free_port,
    in_netns,
    start_nginx,
    start_openssl,
    start_revoca,
    stop,
)
from benchmarks.load_wrk import Point, measure, ratios, report

# ---------------------------------------------------------------- signing


def _signer_key(setup: Setup):
    """The responder's private key, loaded as the VA loads it."""
    from ca.token import load_private_key

    return load_private_key(
        setup.signer_key.read_bytes(), setup.passphrase_file.read_text().strip().encode()
    )


def builder_seconds(setup: Setup, budget: float) -> float:
    """Seconds per response with cryptography's OCSPResponseBuilder (same key)."""
    import datetime

    key = _signer_key(setup)
    now = datetime.datetime.now(datetime.UTC)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < budget:
        for i in range(20):
            builder = (
                ocsp.OCSPResponseBuilder()
                .add_response_by_hash(
                    b"\x00" * 20,
                    b"\x01" * 20,
                    (1 << 126) + i,
                    hashes.SHA1(),
                    ocsp.OCSPCertStatus.GOOD,
                    now,
                    now + datetime.timedelta(days=4),
                    None,
                    None,
                )
                .responder_id(ocsp.OCSPResponderEncoding.HASH, setup.signer)
            )
            builder.sign(key, hashes.SHA256())
        count += 20
    return (time.perf_counter() - started) / count


def rss_mb(pid: int) -> dict:
    """Resident memory of a process: anonymous (its own) and file-backed
    (LMDB pages mapped from the page cache, shared by all workers)."""
    values = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                values[key] = int(rest.split()[0]) / 1024
    return values


def worker_pids(supervisor: int) -> list[int]:
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children")
    with contextlib.suppress(OSError):
        return [int(p) for p in children.read_text().split()]
    return []


# ---------------------------------------------------------------- main


def machine() -> dict:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    openssl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        # The VA runs on this interpreter: how it was built matters (a
        # distribution's PGO/LTO build runs the VA's Python parts about a
        # quarter faster than a plain source build).
        "python": f"{platform.python_version()} ({os.path.realpath(sys.executable)})",
        "wrk": wrk.strip(),
        "nginx": nginx,
        "openssl": openssl,
    }


def presigned_points(prefix, port, posts, gets, expected, args, core, pid) -> dict:
    """The pre-signed points: POST and GET, 32 connections and 1."""
    points = {}
    for connections in (32, 1):
        for mode, records in (("post", posts), ("get", gets)):
            label = f"{prefix} {mode.upper()} c{connections}"
            points[label] = measure(
                label, port, mode, records, expected, connections, args, core, server=pid
            )
    return points


def measure_baseline(workdir: Path, args, server_core, client_core, processes) -> dict:
    """The same pre-signed points on a store of ``--baseline-certs`` statuses,
    in this run: the large store's figures are read against these."""
    base = build(
        workdir.with_name(workdir.name + "-baseline"),
        args.baseline_certs,
        args.seed,
        presign_workers=args.presign_workers,
    )
    corpus = make_corpus(base, args.corpus, args.seed)
    files = base.workdir / "load"
    files.mkdir(exist_ok=True)
    posts = write_records(files / "posts.rec", corpus.posts)
    gets = write_records(files / "gets.rec", [g.encode() for g in corpus.gets])
    port = free_port()
    va = start_revoca(base, port, 1, server_core)
    processes.append(va)
    try:
        answers = verify_server(base, corpus, port, "revoca baseline")
        expected = write_records(files / "expected.rec", answers)
        prefix = f"baseline {args.baseline_certs:,}: pre-signed"
        points = presigned_points(prefix, port, posts, gets, expected, args, client_core, va.pid)
        memory = {str(p): rss_mb(p) for p in worker_pids(va.pid) or [va.pid]}
    finally:
        stop(va)
        processes.remove(va)
        shutil.rmtree(base.workdir, ignore_errors=True)
    return {"certs": args.baseline_certs, "points": points, "memory_mb": memory}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--certs", type=int, default=100_000, help="certificate statuses (N)")
    parser.add_argument("--corpus", type=int, default=1024, help="distinct requests")
    parser.add_argument("--seconds", type=int, default=10, help="length of each measured run")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up before each point")
    parser.add_argument("--repeat", type=int, default=3, help="runs per point (median shown)")
    parser.add_argument("--workdir", type=Path, help="keep the PKI and VA here (default: temp)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--seed", type=int, default=6960)
    parser.add_argument(
        "--presign-workers",
        type=int,
        default=1,
        help="processes for the initial pre-signing (1: timed on one core against the raw "
        "signature; more for large --certs)",
    )
    parser.add_argument(
        "--baseline-certs",
        type=int,
        default=0,
        help="also measure the pre-signed points on a store this size, in the same run "
        "(e.g. 100000 beside --certs 10000000)",
    )
    parser.add_argument("--skip", default="", help="comma-separated: nginx,openssl,fresh,workers")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny and quick (CI): 2,000 certs, 1 s runs"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.certs, args.corpus, args.seconds, args.warmup, args.repeat = 2000, 64, 1, 1, 1
    skip = {s for s in args.skip.split(",") if s}
    cores = os.cpu_count() or 1
    server_core, client_core = ("0", "1") if cores >= 2 else (None, None)
    for tool in ("wrk", "nginx", "openssl", "taskset"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed (Debian: apt-get install wrk nginx-light)")

    results: dict = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}}
    temporary = None
    if args.workdir is None:
        temporary = tempfile.TemporaryDirectory(prefix="revoca-load-")
        workdir = Path(temporary.name) / "w"
    else:
        workdir = args.workdir
    processes: list[subprocess.Popen] = []
    setup = None
    try:
        print(f"Building {args.certs:,} certificate statuses in {workdir}", file=sys.stderr)
        if server_core is not None and args.presign_workers == 1:
            os.sched_setaffinity(0, {int(server_core)})  # pre-signing: one core
        budget = 0.5 if args.smoke else 3.0
        setup = build(
            workdir, args.certs, args.seed, presign_workers=args.presign_workers, raw_budget=budget
        )
        results["setup"] = {"certs": setup.certs, "revoked": setup.revoked, **setup.timings}

        # This machine's signature time drifts by 10% between minutes: the raw
        # time is the fastest of three samples (before, right after and after
        # the build), the strictest baseline for every ratio against it.
        key = _signer_key(setup)
        raws = (
            setup.timings["raw_signature_before_seconds"],
            setup.timings["raw_signature_after_seconds"],
            raw_signature_seconds(key, budget),
        )
        raw = min(raws)
        # The second baseline: libcrypto signing with its context made once,
        # as the VA's signer does (va/_evpsign.pyx); sampled beside the first.
        floors = (
            setup.timings["floor_signature_before_seconds"],
            setup.timings["floor_signature_after_seconds"],
            floor_signature_seconds(key, budget),
        )
        floor = min(floors) if None not in floors else None
        builder = builder_seconds(setup, budget)
        per_response = setup.timings["presign_seconds"] / setup.timings["presigned"]
        results["signing"] = {
            "raw_signature_us": raw * 1e6,
            "raw_signature_samples_us": [r * 1e6 for r in raws],
            "floor_signature_us": floor * 1e6 if floor else None,
            "floor_signature_samples_us": [f * 1e6 for f in floors] if floor else None,
            "presign_per_response_us": per_response * 1e6,
            "presign_vs_raw": per_response / raw,
            "presign_vs_floor": per_response / floor if floor else None,
            "presign_workers": args.presign_workers,
            "cryptography_builder_us": builder * 1e6,
            "cryptography_builder_vs_presign": builder / per_response,
        }
        os.sched_setaffinity(0, set(range(cores)))
        floor_text = (
            f"; libcrypto, context kept {floor * 1e6:.1f} us (fastest of"
            f" {', '.join(f'{f * 1e6:.1f}' for f in floors)})"
            if floor
            else ""
        )
        print(
            f"  raw P-256 signature, cryptography {raw * 1e6:.1f} us (fastest of"
            f" {', '.join(f'{r * 1e6:.1f}' for r in raws)}){floor_text};"
            f" pre-signing {per_response * 1e6:.1f} us"
            f" per response ({per_response / raw:.2f}x raw); cryptography's builder"
            f" {builder * 1e6:.1f} us",
            file=sys.stderr,
        )

        corpus = make_corpus(setup, args.corpus, args.seed)
        files = workdir / "load"
        files.mkdir(exist_ok=True)
        posts = write_records(files / "posts.rec", corpus.posts)
        gets = write_records(files / "gets.rec", [g.encode() for g in corpus.gets])

        points: dict[str, Point] = {}
        port = free_port()
        va = start_revoca(setup, port, 1, server_core)
        processes.append(va)
        answers = verify_server(setup, corpus, port, "revoca")
        expected = write_records(files / "expected.rec", answers)
        print(f"  verified {len(answers)} VA answers (POST and GET)", file=sys.stderr)
        points.update(
            presigned_points(
                "revoca pre-signed", port, posts, gets, expected, args, client_core, va.pid
            )
        )
        workers = worker_pids(va.pid) or [va.pid]  # one worker: the process itself
        results["revoca_memory_mb"] = {str(p): rss_mb(p) for p in workers}
        if args.baseline_certs:
            stop(va)
            processes.remove(va)
            baseline = measure_baseline(workdir, args, server_core, client_core, processes)
            points.update(baseline.pop("points"))
            results["baseline"] = baseline
            va = start_revoca(setup, port, 1, server_core)
            processes.append(va)

        if "fresh" not in skip:
            nonce_corpus = make_corpus(setup, args.corpus, args.seed + 1, nonce=True)
            verify_server(setup, nonce_corpus, port, "revoca fresh", get=False)
            nonce_posts = write_records(files / "nonce-posts.rec", nonce_corpus.posts)
            label = "revoca fresh (nonce) POST c32"
            points[label] = measure(
                label, port, "post", nonce_posts, None, 32, args, client_core, server=va.pid
            )
        stop(va)
        processes.remove(va)

        if "nginx" not in skip:
            port = free_port()
            nginx, paths = start_nginx(setup, port, server_core, answers)
            processes.append(nginx)
            verify_server(setup, corpus, port, "nginx", paths=paths, expect=answers)
            static = write_records(files / "static.rec", [p.encode() for p in paths])
            for connections in (32, 1):
                for mode in ("static-post", "static-get"):
                    label = f"nginx static {mode.split('-')[1].upper()} c{connections}"
                    points[label] = measure(
                        label,
                        port,
                        mode,
                        static,
                        expected,
                        connections,
                        args,
                        client_core,
                        server=nginx.pid,
                    )
            stop(nginx)
            processes.remove(nginx)

        if "openssl" not in skip:
            # `openssl ocsp` (3.0) serves one connection at a time and spins
            # for good on one closed before its request, which is how wrk
            # leaves its idle connections when a run ends: each run gets a
            # new responder process (started before the clock runs).
            port = free_port()
            current: list[subprocess.Popen] = []

            def fresh_openssl() -> int:
                for old in current:
                    stop(old)
                    processes.remove(old)
                current[:] = [start_openssl(setup, port, server_core)]
                processes.append(current[0])
                return current[0].pid

            in_netns(
                fresh_openssl(),
                functools.partial(verify_server, setup, corpus, port, "openssl ocsp", get=False),
            )
            for connections in (32, 1):
                label = f"openssl ocsp POST c{connections}"
                points[label] = measure(
                    label, port, "post", posts, None, connections, args, client_core, fresh_openssl
                )
            for old in current:
                stop(old)
                processes.remove(old)

        if "workers" not in skip and cores >= 2:
            # All cores for the VA, wrk on the same cores: what N workers give
            # when the load generator competes with them (2-core machines).
            # Pre-signed answers cost wrk about what they cost the VA; fresh
            # ones cost the VA several times more, so there the workers set
            # the pace and the ratio says more about scaling.
            kinds = [("pre-signed", posts, expected)]
            if "fresh" not in skip:
                kinds.append(("fresh (nonce)", nonce_posts, None))
            for workers in (cores, 1):
                port = free_port()
                va = start_revoca(setup, port, workers, None)
                processes.append(va)
                verify_server(setup, corpus, port, f"revoca {workers} worker(s)", get=False)
                for kind, records, check in kinds:
                    label = f"revoca {kind} POST c32, " + (
                        f"{cores} workers" if workers > 1 else "1 worker, unpinned"
                    )
                    points[label] = measure(
                        label, port, "post", records, check, 32, args, None, server=va.pid
                    )
                stop(va)
                processes.remove(va)

        results["points"] = {
            label: {
                "ok": p.ok,
                "rps_median": p.median("rps"),
                "rps_spread": p.spread("rps"),
                "p50_ms_median": p.median("p50_us") / 1000,
                "p99_ms_median": p.median("p99_us") / 1000,
                "p99_ms_spread": [v / 1000 for v in p.spread("p99_us")],
                "server_cpu_us_median": p.cpu,
                "client_busy_median": p.median("client_busy"),
                "client_cpu_us_median": p.median("client_cpu_us"),
                "client_bound": p.client_bound,
                "runs": p.runs,
                "checks": p.checks,
            }
            for label, p in points.items()
        }
        results["ratios"] = ratios(points, results["signing"])
        report(results)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
        return 0 if all(p.ok for p in points.values()) else 1
    finally:
        for process in processes:
            stop(process)
        for directory in setup.cleanup if setup is not None else ():
            shutil.rmtree(directory, ignore_errors=True)
        if temporary is not None:
            temporary.cleanup()


if __name__ == "__main__":
    sys.exit(main())
