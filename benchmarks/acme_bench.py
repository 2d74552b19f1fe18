"""ACME issuance under load: N concurrent clients issuing certificates through
the whole RFC 8555 flow, against Pebble (started here) or any directory URL.

    python -m benchmarks.acme_bench                        # Pebble, 32 clients, 3 x 500 certs
    python -m benchmarks.acme_bench --clients 2 --certs 4  # seconds
    python -m benchmarks.acme_bench --certs 2000 --repeat 5 --json acme.json
    # a server started elsewhere (Revoca's `revoca acme serve`), pinned to
    # core 0, its http-01 validator connecting to 127.0.0.1:5002 and resolving
    # names with the DNS this bench starts on 127.0.0.1:8053:
    taskset -c 0 revoca acme serve ... & SERVER=$!
    python -m benchmarks.acme_bench --directory http://127.0.0.1:8555/directory \\
        --http-port 5002 --dns-port 8053 --server-pid $SERVER

Each client (benchmarks/acme_client.py) makes its account once, untimed,
issues one certificate untimed (the warm-up), then in each of ``--repeat``
timed runs issues certificates one after another until ``--certs`` have been
started by all of them together or ``--seconds`` have passed: new order
for one name (``c17-n42.bench.test``), authorization, http-01 challenge
and the wait for validation, finalize with a fresh P-256 CSR and the wait
for the order, certificate download. The http-01 responder is one server in
this process on 127.0.0.1:``--http-port`` (the server's validator must
connect there: Pebble's httpPort is set to it), answering from a dict all
clients share. Every name resolves to 127.0.0.1 through
pebble-challtestsrv's DNS (its own challenge listeners off).

Reported per run (the run with the median rate stands for the point):
certificates issued per second over the run, p50 and p99
of every step and of the whole certificate, errors by kind, and CPU seconds
beside the point: this process's (getrusage: the clients and the
responder), the DNS's, and the server's (its process tree in /proc, when
started here or named with ``--server-pid``). With two cores or more the
server runs on core 0 and this process and the DNS on core 1; a client core
over 90% busy marks the point CLIENT-BOUND (its figure is the load
generator's, not the server's).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import aiohttp
import cryptography
import uvloop

from benchmarks.acme_client import STEPS, AcmeClient, AcmeError, Issued, Responder, ssl_context
from benchmarks.acme_pebble import pebble_version, start_dns, start_pebble
from benchmarks.load_servers import free_port, stop
from benchmarks.load_wrk import CLIENT_BOUND, cpu_seconds

# A client stops after this many failures in a row: a broken server gets a
# few tries per client, not a flood.
MAX_CONSECUTIVE_ERRORS = 5


@dataclass
class Run:
    """What the clients share: the tickets left, the clock, the results."""

    remaining: int
    stop_at: float
    cert_timeout: float
    domain: str
    issued: list[Issued] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)

    def fail(self, exc: BaseException) -> None:
        kind = exc.kind if isinstance(exc, AcmeError) else type(exc).__name__
        self.errors[kind] += 1
        self.examples.setdefault(kind, str(exc)[:300])


def _error(exc: BaseException) -> bool:
    return isinstance(exc, AcmeError | aiohttp.ClientError | asyncio.TimeoutError | ValueError)


async def client_loop(number: int, client: AcmeClient, run: Run, names) -> None:
    failures = 0
    for _ in range(run.remaining):  # bounded in count ...
        if run.remaining <= 0 or time.monotonic() >= run.stop_at:  # ... and in time
            return
        run.remaining -= 1
        name = f"c{number}-n{next(names)}.{run.domain}"
        try:
            issued = await asyncio.wait_for(
                client.issue(name, run.cert_timeout), run.cert_timeout + 5
            )
        except Exception as exc:
            if not _error(exc):
                raise
            run.fail(exc)
            failures += 1
            if failures >= MAX_CONSECUTIVE_ERRORS:
                return
            continue
        failures = 0
        run.issued.append(issued)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest rank."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1e3, 3)


def latency(values: list[float]) -> dict:
    return {
        "p50_ms": _ms(percentile(values, 0.5)),
        "p99_ms": _ms(percentile(values, 0.99)),
        "max_ms": _ms(max(values) if values else None),
    }


# Below CLIENT_BOUND but this busy, the client core is near saturation: said
# beside the figure.
CLIENT_NEAR = 0.75

# Other processes using more than this share of the server's or the client's
# core during a run (a shared machine) mark it CONTENDED: its rate is low by
# what they took.
CONTENDED = 0.1


def core_seconds() -> dict[int, tuple[float, float, float]]:
    """Per core, from /proc/stat: seconds in processes (user, nice, system),
    in interrupts (irq, softirq: loopback traffic is handled there, counted
    to no process) and stolen by the hypervisor."""
    tick = os.sysconf("SC_CLK_TCK")
    cores = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/stat").read_text().splitlines():
            name, *fields = line.split()
            if name.startswith("cpu") and name != "cpu":
                user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
                busy = user + nice + system
                cores[int(name[3:])] = (busy / tick, (irq + softirq) / tick, steal / tick)
    return cores


def others(before: dict, after: dict, core: str | None, ours: float, wall: float) -> dict | None:
    """How much of ``core`` went to other processes (its process time less
    ``ours``), to interrupts and to steal, as shares of the run's wall time."""
    if core is None or int(core) not in before or int(core) not in after or not wall:
        return None
    busy, irq, steal = (a - b for a, b in zip(after[int(core)], before[int(core)], strict=True))
    return {
        "core": int(core),
        "others": round(max(0.0, busy - ours) / wall, 3),
        "irq": round(irq / wall, 3),
        "steal": round(steal / wall, 3),
    }


def _rusage() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Fleet:
    """The clients with their accounts, the responder, and what to read CPU from."""

    clients: list[tuple[int, AcmeClient]]
    names: dict[int, itertools.count]
    responder: Responder
    server_pid: int | None
    dns_pid: int | None
    server_core: str | None = None
    client_core: str | None = None


async def timed(fleet: Fleet, certs: int, seconds: float, args) -> dict:
    """One phase: the clients issue up to ``certs`` certificates together,
    starting none after ``seconds``; rates, latencies and CPU around it."""
    clients = [c for _, c in fleet.clients]
    run = Run(certs, 0.0, args.cert_timeout, args.domain)
    requests, served, missed = (
        sum(c.requests for c in clients),
        fleet.responder.served,
        fleet.responder.missed,
    )
    bad_nonces = sum(c.bad_nonces for c in clients)
    retry_afters = sum(c.retry_afters for c in clients)
    server_cpu = cpu_seconds(fleet.server_pid) if fleet.server_pid else None
    dns_cpu = cpu_seconds(fleet.dns_pid) if fleet.dns_pid else None
    cores = core_seconds()
    client_cpu, wall = _rusage(), time.monotonic()
    run.stop_at = wall + seconds
    # Every loop stops starting certificates at ``seconds``; one already
    # started has --cert-timeout to finish; this bounds the whole phase.
    try:
        await asyncio.wait_for(
            asyncio.gather(*(client_loop(n, c, run, fleet.names[n]) for n, c in fleet.clients)),
            seconds + args.cert_timeout + 10,
        )
    except TimeoutError:  # the loops were cancelled: report what was done
        run.fail(AcmeError("phase timeout", f"clients still busy after {seconds} s + grace"))
    wall = time.monotonic() - wall
    client_cpu = _rusage() - client_cpu
    if server_cpu is not None:
        server_cpu = cpu_seconds(fleet.server_pid) - server_cpu
    if dns_cpu is not None:
        dns_cpu = cpu_seconds(fleet.dns_pid) - dns_cpu
    cores_after = core_seconds()

    issued = len(run.issued)
    result = {
        "certs_started": certs - run.remaining,
        "issued": issued,
        "errors": dict(run.errors),
        "error_examples": run.examples,
        "seconds": round(wall, 3),
        "certs_per_second": round(issued / wall, 2) if wall else None,
        "steps": {step: latency([i.steps[step] for i in run.issued]) for step in STEPS},
        "total": latency([i.total for i in run.issued]),
        "requests": sum(c.requests for c in clients) - requests,
        "polls": sum(i.polls for i in run.issued),
        "bad_nonce_retries": sum(c.bad_nonces for c in clients) - bad_nonces,
        "retry_after_polls": sum(c.retry_afters for c in clients) - retry_afters,
        "validations_served": fleet.responder.served - served,
        "validations_missed": fleet.responder.missed - missed,
        "client_cpu_seconds": round(client_cpu, 3),
        "dns_cpu_seconds": None if dns_cpu is None else round(dns_cpu, 3),
        "server_cpu_seconds": None if server_cpu is None else round(server_cpu, 3),
    }
    # The client core holds this process and the DNS; each busy figure is a
    # fraction of one core (both pinned to one when there are two or more).
    client_core = client_cpu + (dns_cpu or 0.0)
    result["client_busy"] = round(client_core / wall, 3) if wall else None
    result["client_bound"] = bool(wall and client_core / wall > CLIENT_BOUND)
    result["server_busy"] = round(server_cpu / wall, 3) if server_cpu is not None else None
    result["server_cpu_ms_per_cert"] = (
        round(server_cpu / issued * 1e3, 3) if server_cpu is not None and issued else None
    )
    result["client_cpu_ms_per_cert"] = round(client_cpu / issued * 1e3, 3) if issued else None
    # A shared machine: what else ran on the two cores meanwhile.
    shared = {
        "server_core": others(cores, cores_after, fleet.server_core, server_cpu or 0.0, wall),
        "client_core": others(cores, cores_after, fleet.client_core, client_core, wall),
    }
    result["other_load"] = shared
    result["contended"] = any(
        c is not None and (c["others"] > CONTENDED or c["steal"] > CONTENDED)
        for c in shared.values()
    )
    return result


async def bench(
    args, directory: str, ca_file: str | None, server_pid, dns_pid, cores=(None, None)
) -> dict:
    """Accounts (untimed), a warm-up, then ``--repeat`` timed phases."""
    responder = Responder()
    await responder.start(args.http_port)
    context = ssl_context(directory, ca_file)
    clients = [AcmeClient(directory, responder, ssl_context=context) for _ in range(args.clients)]
    result: dict = {"directory": directory, "clients": args.clients}
    try:
        for client in clients:
            await client.__aenter__()
        # Accounts, untimed: once per client, as a real fleet would.
        started = time.monotonic()
        registered = await asyncio.gather(
            *(asyncio.wait_for(c.register(), args.cert_timeout) for c in clients),
            return_exceptions=True,
        )
        account_errors = Counter()
        ready = []
        for number, (client, outcome) in enumerate(zip(clients, registered, strict=True)):
            if isinstance(outcome, BaseException):
                if not _error(outcome):
                    raise outcome
                account_errors[getattr(outcome, "kind", type(outcome).__name__)] += 1
            else:
                ready.append((number, client))
        result["accounts"] = {
            "made": len(ready),
            "seconds": round(time.monotonic() - started, 3),
            "errors": dict(account_errors),
        }
        names = {n: itertools.count() for n, _ in ready}
        fleet = Fleet(ready, names, responder, server_pid, dns_pid, *cores)
        if args.warmup and ready:
            result["warmup"] = await timed(fleet, args.warmup, args.seconds, args)
        result["runs"] = [
            await timed(fleet, args.certs, args.seconds, args) for _ in range(args.repeat)
        ]
    finally:
        for client in clients:
            await client.__aexit__(None, None, None)
        await responder.stop()
    runs = result["runs"]
    # The run with the median rate stands for the point, among the runs no
    # other load disturbed when there are any; all are kept.
    clean = [i for i, run in enumerate(runs) if not run["contended"]] or list(range(len(runs)))
    ranked = sorted(clean, key=lambda i: runs[i]["certs_per_second"] or 0)
    result["median"] = ranked[len(ranked) // 2]
    result["median_of"] = "uncontended runs" if len(clean) < len(runs) else "all runs"
    return result


def machine() -> dict:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": f"{platform.python_version()} ({os.path.realpath(sys.executable)})",
        "pebble": pebble_version() if shutil.which("pebble") else None,
        "aiohttp": aiohttp.__version__,
        "josepy": version("josepy"),
        "cryptography": cryptography.__version__,
    }


def _run_line(name: str, run: dict) -> str:
    errors = sum(run["errors"].values())
    server = f", server {run['server_busy']:.0%} busy" if run["server_busy"] is not None else ""
    return (
        f"  {name}: {run['issued']} of {run['certs_started']} in {run['seconds']:.2f} s,"
        f" {run['certs_per_second']} certificates/s{server},"
        f" client core {run['client_busy']:.0%} busy; errors {errors}"
        + (f" {run['errors']}" if errors else "")
        + (" CLIENT-BOUND" if run["client_bound"] else "")
        + (f" CONTENDED ({_shared(run)})" if run["contended"] else "")
    )


def _shared(run: dict) -> str:
    parts = []
    for role, load in run["other_load"].items():
        if load is not None:
            parts.append(
                f"{role.replace('_', ' ')} {load['core']}: others {load['others']:.0%},"
                f" steal {load['steal']:.0%}, interrupts {load['irq']:.0%}"
            )
    return "; ".join(parts)


def report(result: dict, label: str) -> str:
    accounts = result["accounts"]
    lines = [
        f"ACME issuance, {result['clients']} clients: {label} ({result['directory']})",
        f"  accounts: {accounts['made']} in {accounts['seconds']:.2f} s"
        + (f", errors {accounts['errors']}" if accounts["errors"] else ""),
    ]
    if "warmup" in result:
        lines.append(_run_line("warm-up", result["warmup"]))
    for number, run in enumerate(result["runs"], 1):
        lines.append(_run_line(f"run {number}", run))
    median = result["runs"][result["median"]]
    lines += [
        "",
        f"  run {result['median'] + 1} (the median rate of {result['median_of']}):"
        f" {median['certs_per_second']}"
        f" certificates/s; {median['requests']} requests, {median['polls']} polls"
        f" ({median['retry_after_polls']} after a Retry-After),"
        f" {median['bad_nonce_retries']} badNonce retries,"
        f" {median['validations_served']} validation fetches answered"
        f" ({median['validations_missed']} unknown tokens)",
        f"  {'step':<12}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}",
    ]

    def row(name, figures):
        cells = "".join(
            f"{'-' if figures[k] is None else f'{figures[k]:.1f}':>10}"
            for k in ("p50_ms", "p99_ms", "max_ms")
        )
        lines.append(f"  {name:<12}{cells}")

    for step in STEPS:
        row(step, median["steps"][step])
    row("total", median["total"])
    server = (
        f"server {median['server_cpu_seconds']:.2f} s ({median['server_busy']:.0%} of a core,"
        f" {median['server_cpu_ms_per_cert']} ms/cert)"
        if median["server_cpu_seconds"] is not None and median["issued"]
        else "server not measured (no --server-pid)"
    )
    dns = f"; dns {median['dns_cpu_seconds']:.2f} s" if median["dns_cpu_seconds"] else ""
    lines.append(
        f"  CPU: {server}; client {median['client_cpu_seconds']:.2f} s"
        f" ({median['client_cpu_ms_per_cert']} ms/cert){dns};"
        f" client core {median['client_busy']:.0%} busy"
    )
    if not median["client_bound"] and (median["client_busy"] or 0) > CLIENT_NEAR:
        lines.append(
            f"  near saturation: the client core was {median['client_busy']:.0%} busy (over"
            f" {CLIENT_NEAR:.0%}); compare servers by their CPU per certificate as well as by"
            " the rate"
        )
    if any(run["client_bound"] for run in result["runs"]):
        lines.append(
            f"  CLIENT-BOUND: the load generator's core was over {CLIENT_BOUND:.0%} busy"
            " in a marked run; its rate is the client's, not the server's"
        )
    if any(run["contended"] for run in result["runs"]):
        lines.append(
            f"  CONTENDED: other processes or the hypervisor took over {CONTENDED:.0%} of the"
            " server's or the client's core in a marked run (a shared machine); its rate is"
            " low by what they took"
        )
    for kind, example in median["error_examples"].items():
        lines.append(f"  error {kind}: {example}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (accounts)")
    parser.add_argument("--certs", type=int, default=500, help="certificates, all clients together")
    parser.add_argument(
        "--seconds", type=float, default=60, help="stop starting certificates after this"
    )
    parser.add_argument(
        "--cert-timeout", type=float, default=30, help="seconds one certificate may take"
    )
    parser.add_argument(
        "--directory", help="the ACME directory URL of a running server (default: start Pebble)"
    )
    parser.add_argument("--ca-file", help="CA file verifying an https --directory")
    parser.add_argument(
        "--http-port",
        type=int,
        help="where the http-01 responder listens, which the server's validator must connect to"
        " (required with --directory; with Pebble a free port)",
    )
    parser.add_argument(
        "--dns-port",
        type=int,
        default=0,
        help="with --directory: start pebble-challtestsrv's DNS on 127.0.0.1:PORT answering"
        " 127.0.0.1 for every name (0: none; the server resolves the names itself)",
    )
    parser.add_argument(
        "--server-pid", type=int, help="with --directory: the server's process, for its CPU time"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed runs (the median rate is the point's)"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="certificates issued untimed before the runs (default: one per client; 0: none)",
    )
    parser.add_argument("--domain", default="bench.test", help="names are cN-nM.DOMAIN")
    parser.add_argument("--workdir", type=Path, help="Pebble's files and logs (default: temp)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--target",
        default="pebble,revoca",
        help="servers this bench starts and drives one after the other: pebble, revoca, or"
        " both (default), the ratio then printed; ignored with --directory",
    )
    parser.add_argument(
        "--tls", action="store_true", help="Revoca's listener over HTTPS, as Pebble's always is"
    )
    args = parser.parse_args(argv)
    if args.warmup is None:
        args.warmup = args.clients
    for option in ("clients", "certs", "seconds", "cert_timeout", "repeat"):
        if getattr(args, option) <= 0:
            parser.error(f"--{option.replace('_', '-')} must be positive")
    if args.directory and not args.http_port:
        parser.error("--directory needs --http-port (where its validator connects)")
    if not args.directory:
        unknown = set(args.target.split(",")) - {"pebble", "revoca"}
        if unknown:
            parser.error(f"--target: unknown {', '.join(sorted(unknown))} (pebble, revoca)")
        for tool in ("pebble", "pebble-challtestsrv"):
            if shutil.which(tool) is None:
                parser.error(f"{tool} is not installed (Debian: apt-get install pebble)")
    if args.http_port is None:
        args.http_port = free_port()

    cores = os.cpu_count() or 1
    server_core, client_core = ("0", "1") if cores >= 2 else (None, None)
    temporary = None
    if args.workdir is None:
        temporary = tempfile.TemporaryDirectory(prefix="revoca-acme-")
        workdir = Path(temporary.name)
    else:
        workdir = args.workdir
        workdir.mkdir(parents=True, exist_ok=True)
    results: dict = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}}
    targets = ["target"] if args.directory else args.target.split(",")
    results["targets"] = {}
    try:
        for label in targets:
            results["targets"][label] = _one_target(
                label, args, workdir / label, server_core, client_core
            )
    finally:
        if temporary is not None:
            temporary.cleanup()
    for label, run in results["targets"].items():
        print(report(run, label))
    if {"pebble", "revoca"} <= set(results["targets"]):
        results["ratio"] = compare(results["targets"]["revoca"], results["targets"]["pebble"])
        print(ratio_report(results["ratio"]))
    # The first target's figures where a single one was asked for (older readers).
    results["target"] = targets[0]
    results["run"] = results["targets"][targets[0]]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    clean = True
    for run in results["targets"].values():
        runs = run["runs"] + [run.get("warmup", {"issued": 1, "errors": {}})]
        clean &= all(r["issued"] and not r["errors"] for r in runs)
        clean &= not run["accounts"]["errors"]
    return 0 if clean else 1


def _one_target(label: str, args, workdir: Path, server_core, client_core) -> dict:
    """Start ``label``'s server (Pebble, Revoca, or none for --directory),
    drive it, stop it; the run's figures."""
    from benchmarks.acme_revoca import start_revoca

    affinity = os.sched_getaffinity(0)
    server = dns = None
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        if label == "target":
            directory, ca_file = args.directory, args.ca_file
            server_pid = args.server_pid
            if args.dns_port:
                dns, _, _ = start_dns(workdir, client_core, port=args.dns_port)
        elif label == "pebble":
            server = start_pebble(workdir, args.http_port, server_core, client_core)
            directory, ca_file = server.directory, str(server.ca_file)
            server_pid, dns = server.process.pid, server.dns
        else:
            dns, dns_port, _ = start_dns(workdir, client_core)
            server = start_revoca(workdir, args.http_port, server_core, dns_port, tls=args.tls)
            directory = server.directory
            ca_file = str(server.ca_file) if server.ca_file else None
            server_pid = server.process.pid
        pinned_cores = {"server_core": server_core, "client_core": client_core}
        if client_core is not None:
            os.sched_setaffinity(0, {int(client_core)})
        # Other load on the server's core is read only where the server is
        # known to run alone: a server pinned here, or one pinned to it.
        server_on = server_core if server is not None else None
        if server_pid and server is None:
            # A server started elsewhere is not pinned here: say where it may run.
            with contextlib.suppress(OSError):
                cores_of_server = sorted(os.sched_getaffinity(server_pid))
                pinned_cores["server_affinity"] = cores_of_server
                if server_core is not None and cores_of_server == [int(server_core)]:
                    server_on = server_core
                if client_core is not None and int(client_core) in cores_of_server:
                    print(
                        f"note: the server (pid {server_pid}) may run on core {client_core}, the"
                        f" load generator's: start it with `taskset -c {server_core}`",
                        file=sys.stderr,
                    )
        print(
            f"{label}: {args.clients} clients, {args.certs} certificates, at most"
            f" {args.seconds:g} s, against {directory} (http-01 on 127.0.0.1:{args.http_port})",
            file=sys.stderr,
        )
        run = uvloop.run(
            bench(
                args,
                directory,
                ca_file,
                server_pid,
                dns.pid if dns else None,
                (server_on, client_core),
            )
        )
        run["pinned"] = pinned_cores
        return run
    finally:
        os.sched_setaffinity(0, affinity)
        if server is not None:
            server.stop()
        stop(dns)


def compare(revoca: dict, pebble: dict) -> dict:
    """Revoca against Pebble, each at its median run: the rate ratio, the
    CPU per certificate ratio, and each step's p50 and p99 side by side."""
    r, p = revoca["runs"][revoca["median"]], pebble["runs"][pebble["median"]]
    steps = {}
    for step in r["steps"]:
        steps[step] = {
            "revoca_p50_ms": r["steps"][step]["p50_ms"],
            "pebble_p50_ms": p["steps"].get(step, {}).get("p50_ms"),
            "revoca_p99_ms": r["steps"][step]["p99_ms"],
            "pebble_p99_ms": p["steps"].get(step, {}).get("p99_ms"),
        }
    rate = (r["certs_per_second"] or 0) / (p["certs_per_second"] or 1)
    cpu = (p["server_cpu_ms_per_cert"] or 0) / (r["server_cpu_ms_per_cert"] or 1)
    return {
        "rate_revoca_over_pebble": round(rate, 3),
        "cpu_per_cert_pebble_over_revoca": round(cpu, 3),
        "revoca_certs_per_second": r["certs_per_second"],
        "pebble_certs_per_second": p["certs_per_second"],
        "revoca_server_cpu_ms_per_cert": r["server_cpu_ms_per_cert"],
        "pebble_server_cpu_ms_per_cert": p["server_cpu_ms_per_cert"],
        "steps": steps,
    }


def ratio_report(ratio: dict) -> str:
    lines = [
        "Revoca / Pebble, same run, same machine, each at its median run:",
        f"  rate {ratio['revoca_certs_per_second']} / {ratio['pebble_certs_per_second']}"
        f" certificates/s = {ratio['rate_revoca_over_pebble']}",
        f"  server CPU per certificate {ratio['revoca_server_cpu_ms_per_cert']} /"
        f" {ratio['pebble_server_cpu_ms_per_cert']} ms"
        f" (Pebble's is {ratio['cpu_per_cert_pebble_over_revoca']} of Revoca's)",
    ]
    for step, f in ratio["steps"].items():
        lines.append(
            f"  {step:<10} p50 {f['revoca_p50_ms']} / {f['pebble_p50_ms']} ms,"
            f" p99 {f['revoca_p99_ms']} / {f['pebble_p99_ms']} ms"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
