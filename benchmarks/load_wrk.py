"""wrk runs for the load benchmark: one run, a measured point (warm-up and
repetitions), and the ratios and table printed from the points."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks.load_servers import OCSP_PATH, pinned

LUA = Path(__file__).resolve().parent / "ocsp_load.lua"
CHECK_SECONDS = 2  # each checking run around a point's timed runs (wrk takes whole seconds)


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(p) for p in task.read_text().split()]
        except OSError:
            continue
    return found


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process and its descendants (all threads)."""
    total, todo = 0.0, [pid]
    tick = os.sysconf("SC_CLK_TCK")
    while todo:
        current = todo.pop()
        try:
            stat = Path(f"/proc/{current}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        todo += _children(current)
    return total


# A client core busier than this sets the pace: the point measures wrk, not
# the server, and says so.
CLIENT_BOUND = 0.9


def _children_cpu() -> float:
    """CPU seconds of this process's waited-for children (wrk, once it exits)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(
    port,
    mode,
    records,
    expected,
    connections,
    seconds,
    core,
    netns=None,
    server=None,
    check=True,
) -> dict:
    """One wrk run. ``server``: the responder's pid, whose CPU time (with its
    workers') is read around the run: CPU per request says what the server
    spends, whether or not it or wrk set the pace. wrk's own CPU time is read
    too (``client_busy``: the share of its one core it used). ``check``: look
    at every response body (the checking runs); without it wrk only sends
    and counts (the timed runs)."""
    threads = 1
    argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency"]
    argv += ["--timeout", "5s", "-s", str(LUA), f"http://127.0.0.1:{port}{OCSP_PATH}", "--", mode]
    argv += [str(records), str(expected) if expected else "-"] + ([] if check else ["count"])
    argv = pinned(core, argv)
    if netns is not None:
        argv = ["nsenter", f"--net=/proc/{netns}/ns/net", *argv]
    cpu_before = cpu_seconds(server) if server else None
    client_before = _children_cpu()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    client = _children_cpu() - client_before
    cpu = cpu_seconds(server) - cpu_before if server else None
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr.strip() or done.stdout.strip()}")
    line = [x for x in done.stdout.splitlines() if x.startswith("{")][-1]
    result = json.loads(line)
    result["checked"] = check
    elapsed = result["duration_us"] / 1e6
    result["rps"] = result["requests"] / elapsed
    result["client_busy"] = client / elapsed
    if result["requests"]:
        result["client_cpu_us"] = client / result["requests"] * 1e6
    if cpu is not None and result["requests"]:
        result["server_cpu_us"] = cpu / result["requests"] * 1e6
        result["server_busy"] = cpu / elapsed
    errors = (
        sum(
            result[k]
            for k in ("bad_status", "bad_body", "connect_errors", "read_errors", "write_errors")
        )
        + result["status_errors"]
        + result["timeouts"]
    )
    result["failed_checks"] = errors
    return result


@dataclass
class Point:
    """The timed ``runs`` of one configuration (wrk only sending) and the
    ``checks`` around them (every response body looked at)."""

    label: str
    runs: list[dict]
    checks: list[dict]

    @property
    def ok(self) -> bool:
        checked = all(r["failed_checks"] == 0 and r["ok"] > 0 for r in self.checks)
        return checked and all(r["failed_checks"] == 0 and r["requests"] > 0 for r in self.runs)

    @property
    def client_bound(self) -> bool:
        """wrk's core was the bottleneck: the figure is the client's."""
        return self.median("client_busy") > CLIENT_BOUND

    def median(self, key: str) -> float:
        return statistics.median(r[key] for r in self.runs)

    @property
    def cpu(self) -> float | None:
        """Median server CPU µs per request, if every run read it."""
        if not all("server_cpu_us" in r for r in self.runs):
            return None
        return self.median("server_cpu_us")

    def cpu_text(self) -> str:
        client = f"  wrk {self.median('client_busy'):.0%} busy"
        if self.client_bound:
            client += " CLIENT-BOUND"
        if self.cpu is None:
            return client
        server = f"  server {self.cpu:5.1f} us CPU/request ({self.median('server_busy'):.0%} busy)"
        return server + client

    def spread(self, key: str) -> tuple[float, float]:
        values = [r[key] for r in self.runs]
        return min(values), max(values)


def measure(
    label, port, mode, records, expected, connections, args, core, fresh=None, server=None
) -> Point:
    """Warm-up, then ``args.repeat`` runs. ``fresh``: a callable that starts
    a new server for every run and returns the pid whose network namespace
    wrk joins (for `openssl ocsp`, which a closed idle connection stops).
    ``server``: the responder's pid, for its CPU time per request."""

    def one(seconds, check):
        netns = fresh() if fresh else None
        return run_wrk(
            port, mode, records, expected, connections, seconds, core, netns, server or netns, check
        )

    check_seconds = min(args.seconds, CHECK_SECONDS)
    one(args.warmup, False)
    checks = [one(check_seconds, True)]  # every answer looked at, before and after
    runs = [one(args.seconds, False) for _ in range(args.repeat)]
    checks.append(one(check_seconds, True))
    point = Point(label, runs, checks)
    state = "ok" if point.ok else "FAILED CHECKS"
    print(
        f"  {label:<44} {point.median('rps'):>10,.0f} req/s"
        f"  p50 {point.median('p50_us') / 1000:6.2f} ms"
        f"  p99 {point.median('p99_us') / 1000:6.2f} ms{point.cpu_text()}  [{state}]",
        file=sys.stderr,
        flush=True,
    )
    return point


def ratios(points: dict[str, Point], signing: dict) -> dict:
    """The ratios of the run. A point wrk's core bounded is marked in the
    table (``client_bound``): a ratio read from it compares wrk, not servers."""
    out = {}

    def rate(label):
        p = points.get(label)
        return p.median("rps") if p is not None and p.ok else None

    def p99(label):
        p = points.get(label)
        return p.median("p99_us") if p is not None and p.ok else None

    for method in ("POST", "GET"):
        ours, theirs = rate(f"revoca pre-signed {method} c32"), rate(f"nginx static {method} c32")
        if ours and theirs:
            out[f"pre-signed {method} c32 / nginx (target >= 0.9)"] = ours / theirs
        ours, theirs = p99(f"revoca pre-signed {method} c32"), p99(f"nginx static {method} c32")
        if ours and theirs:
            out[f"pre-signed {method} c32 p99 / nginx p99 (target <= 1.5)"] = ours / theirs
        ours, theirs = rate(f"revoca pre-signed {method} c1"), rate(f"nginx static {method} c1")
        if ours and theirs:
            out[f"pre-signed {method} c1 / nginx"] = ours / theirs
    fresh, openssl = rate("revoca fresh (nonce) POST c32"), rate("openssl ocsp POST c32")
    if fresh and openssl:
        out["fresh (nonce) / openssl ocsp (target >= 3)"] = fresh / openssl
    floor = signing.get("floor_signature_us")
    if fresh:
        out["fresh (nonce) / raw signature rate (target >= 0.7)"] = (
            fresh * signing["raw_signature_us"] / 1e6
        )
        if floor:
            out["fresh (nonce) / libcrypto signature rate, context kept"] = fresh * floor / 1e6
    # The ceiling for signing every request on one core: the raw signature
    # plus the cheapest HTTP front measured (server CPU per pre-signed or
    # static answer), before any OCSP work.
    fronts = [
        points[label].cpu
        for label in ("revoca pre-signed POST c32", "nginx static POST c32")
        if label in points and points[label].cpu is not None
    ]
    if fresh and fronts:
        ceiling = 1e6 / (signing["raw_signature_us"] + min(fronts))
        out["ceiling for fresh: raw signature + cheapest front, / raw rate"] = (
            ceiling * signing["raw_signature_us"] / 1e6
        )
        if openssl:
            out["ceiling for fresh / openssl ocsp"] = ceiling / openssl
        if floor:
            # The same with libcrypto's signature, as the VA signs.
            floor_ceiling = 1e6 / (floor + min(fronts))
            out["ceiling for fresh with libcrypto's signature, / raw rate"] = (
                floor_ceiling * signing["raw_signature_us"] / 1e6
            )
            if openssl:
                out["ceiling for fresh with libcrypto's signature / openssl ocsp"] = (
                    floor_ceiling / openssl
                )
    presigned, openssl = rate("revoca pre-signed POST c32"), rate("openssl ocsp POST c32")
    if presigned and openssl:
        out["pre-signed POST / openssl ocsp"] = presigned / openssl
    cores = signing.get("presign_workers", 1)
    label = "pre-signing per response / raw signature (target <= 1.25)"
    if cores != 1:
        label = f"pre-signing wall time per response on {cores} processes / raw signature"
    out[label] = signing["presign_vs_raw"]
    if signing.get("presign_vs_floor"):
        out[label.split(" / raw signature")[0] + " / libcrypto signature, context kept"] = signing[
            "presign_vs_floor"
        ]
    out["cryptography builder / our pre-signing per response"] = signing[
        "cryptography_builder_vs_presign"
    ]
    for label in [label for label in points if label.startswith("baseline ")]:
        size, point = label[len("baseline ") :].split(": ", 1)
        ours, theirs = rate(f"revoca {point}"), rate(label)
        if ours and theirs:
            out[f"{point}: this store / {size} statuses (target >= 0.9)"] = ours / theirs
    for kind in ("pre-signed", "fresh (nonce)"):
        many = [
            label
            for label in points
            if label.startswith(f"revoca {kind} POST c32, ") and label.endswith(" workers")
        ]
        single = f"revoca {kind} POST c32, 1 worker, unpinned"
        if not many or not rate(single) or not rate(many[0]):
            continue
        workers = many[0].rsplit(", ", 1)[1]
        out[f"{kind}: {workers} / 1 worker (both unpinned, wrk on the same cores)"] = rate(
            many[0]
        ) / rate(single)
        # Where wrk, not the workers, sets the pace: CPU per request with N
        # workers against one (1.0: each core serves as much as one worker's).
        n_cpu, one_cpu = points[many[0]].cpu, points[single].cpu
        if n_cpu and one_cpu:
            out[f"{kind}: 1 worker's CPU per request / {workers}' (1.0: linear)"] = one_cpu / n_cpu
    return out


def report(results: dict) -> None:
    print("\nmachine: " + ", ".join(f"{k} {v}" for k, v in results["machine"].items()))
    setup = results["setup"]
    print(
        f"certificates: {setup['certs']:,} ({setup['revoked']:,} revoked); import"
        f" {setup['import_seconds']:.1f} s; pre-signing {setup['presigned']:,} responses on"
        f" {setup['presign_workers']} core(s) {setup['presign_seconds']:.1f} s"
    )
    print(
        f"\n{'point':<48} {'req/s (min-max)':>26} {'p50 ms':>8} {'p99 ms (min-max)':>20}"
        f" {'server CPU us/req':>18} {'wrk busy':>9}"
    )
    for label, p in results["points"].items():
        if not p["ok"]:
            print(f"{label:<48} {'FAILED CHECKS: no figure':>26}")
            continue
        low, high = p["rps_spread"]
        p99_low, p99_high = p["p99_ms_spread"]
        print(
            f"{label:<48} {p['rps_median']:>9,.0f} ({low:,.0f}-{high:,.0f})"
            f" {p['p50_ms_median']:>8.2f} {p['p99_ms_median']:>7.2f} ({p99_low:.2f}-{p99_high:.2f})"
            + (f" {cpu:>18.1f}" if (cpu := p.get("server_cpu_us_median")) is not None else " " * 19)
            + f" {p['client_busy_median']:>8.0%}"
            + (" CLIENT-BOUND" if p["client_bound"] else "")
        )
    print("\nratios (same run):")
    for label, value in results["ratios"].items():
        print(f"  {label:<72} {value:8.2f}")
    signing = results["signing"]
    print(
        f"\nraw P-256 signature {signing['raw_signature_us']:.1f} us; pre-signing"
        f" {signing['presign_per_response_us']:.1f} us per response; cryptography's"
        f" OCSPResponseBuilder {signing['cryptography_builder_us']:.1f} us"
    )
    memory = [("VA worker", results.get("revoca_memory_mb", {}))]
    if "baseline" in results:
        baseline = results["baseline"]
        memory.append((f"baseline VA worker ({baseline['certs']:,})", baseline["memory_mb"]))
    for what, workers in memory:
        for pid, values in workers.items():
            print(
                f"{what} {pid}: RSS {values.get('VmRSS', 0):.1f} MB"
                f" (own {values.get('RssAnon', 0):.1f} MB,"
                f" LMDB/file pages {values.get('RssFile', 0):.1f} MB)"
            )
