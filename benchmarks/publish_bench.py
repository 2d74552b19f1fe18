"""Publication benchmarks (run as a script; CI runs a tiny smoke configuration).

throughput: events per second applied by one VA through its admin listener,
    in batches, beside the baseline of one event per request, same run.
latency:    CA commit of a revocation -> "revoked" from each of several VA
    processes on 127.0.0.1 (their OCSP ports polled), p50 and p99.

    python -m benchmarks.publish_bench throughput --events 100000 --batch 1000
    python -m benchmarks.publish_bench latency --vas 3 --revocations 200

Every loop is bounded in count and in time.
"""

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _events(count: int, start_seq: int = 1) -> list[dict]:
    return [
        {
            "seq": start_seq + i,
            "type": "revoked" if i % 10 == 0 else "issued",
            "issuer": 1,
            "serial": f"{0x10000000 + i:x}",
            "revoked_at": 1_700_000_000,
            "reason": 1,
            "not_after": 1_900_000_000,
        }
        for i in range(count)
    ]


async def _post_all(
    url: str, token: str, source: str, events: list[dict], batch: int, deadline: float
) -> int:
    import aiohttp

    sent = 0
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        for i in range(0, len(events), batch):
            if time.monotonic() > deadline:
                break
            chunk = events[i : i + batch]
            after = chunk[0]["seq"] - 1  # the events are read contiguously from seq 1
            async with session.post(
                url, json={"source": source, "after": after, "events": chunk}
            ) as response:
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}: {await response.text()}")
                sent += len(chunk)
    return sent


def throughput(events: int, batch: int, baseline_events: int, seconds: float) -> dict:
    """Events/s into one VA (in-process admin listener, real HTTP, LMDB with fsync)."""
    from va.admin import make_app, start_admin
    from va.store import VAStore

    with tempfile.TemporaryDirectory() as tmp:
        store = VAStore(Path(tmp) / "lmdb")
        token = secrets.token_urlsafe(32)
        port = _free_port()

        async def main():
            runner = await start_admin(make_app(store, token.encode()), "127.0.0.1", port)
            url = f"http://127.0.0.1:{port}/publish/v2/events"
            try:
                results = {}
                for label, count, size in (
                    ("single", baseline_events, 1),
                    ("batched", events, batch),
                ):
                    data = _events(count, start_seq=1)
                    started = time.perf_counter()
                    sent = await _post_all(
                        url, token, f"bench-{label}", data, size, time.monotonic() + seconds
                    )
                    elapsed = time.perf_counter() - started
                    results[label] = {
                        "events": sent,
                        "seconds": round(elapsed, 3),
                        "events_per_second": round(sent / elapsed),
                    }
                return results
            finally:
                await runner.cleanup()

        results = asyncio.run(main())
        store.close()
    results["ratio"] = round(
        results["batched"]["events_per_second"] / results["single"]["events_per_second"], 1
    )
    return results


def _ocsp_status(port: int, request: bytes) -> str:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/ocsp",
        data=request,
        headers={"Content-Type": "application/ocsp-request"},
    )
    with urllib.request.urlopen(req, timeout=5) as response:
        body = response.read()
    from cryptography.x509 import ocsp

    return ocsp.load_der_ocsp_response(body).certificate_status.name


def latency(vas: int, revocations: int, seconds: float) -> dict:
    """p50/p99 from CA commit to "revoked" on every VA process."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp

    from ca.reasons import RevocationReason
    from revoca.app import build_ca_service
    from revoca.config import load_config
    from revoca.va_import import import_from_ca
    from va.admin import write_token
    from va.store import VAStore

    work = Path(tempfile.mkdtemp(prefix="revoca-latency-"))
    passphrase = secrets.token_urlsafe(16)
    env = {**os.environ, "REVOCA_KEY_PASSPHRASE": passphrase}
    passphrase_file = work / "passphrase"
    passphrase_file.write_text(passphrase)
    passphrase_file.chmod(0o600)
    passphrase_file.chmod(0o600)
    config = load_config(None, data_dir=work / "ca").with_passphrase_file(passphrase_file)
    service = build_ca_service(config, create=True)
    service.init_root("root", "CN=Latency Root")
    service.create_sub("issuing", "root", "CN=Latency Issuing")
    service.issue_ocsp_signer("issuing")
    leaves = [
        service.issue_with_new_key("issuing", "tls-client", f"CN=h{i}", [])
        for i in range(revocations)
    ]
    issuer = service.get_ca("issuing").certificate
    token = secrets.token_urlsafe(32)
    processes, ports, targets = [], [], []
    try:
        for n in range(vas):
            directory = work / f"va{n}"
            store = VAStore(directory / "lmdb")
            import_from_ca(
                service, store, directory / "keys", policy=config.va.policy, ca_names=["issuing"]
            )
            store.close()
            write_token(directory / "admin-token", token)
            port, admin = _free_port(), _free_port()
            cfg = work / f"va{n}.toml"
            cfg.write_text(
                f'[paths]\ndata_dir = "{work / "ca"}"\n[va]\ndirectory = "{directory}"\n'
                f"port = {port}\nadmin_port = {admin}\n"
            )
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "revoca", "--config", str(cfg), "va", "serve"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            ports.append(port)
            targets.append(
                f'{{ name = "va{n}", url = "http://127.0.0.1:{admin}", '
                f'token_file = "{directory / "admin-token"}" }}'
            )
        pub_cfg = work / "publisher.toml"
        pub_cfg.write_text(
            f'[paths]\ndata_dir = "{work / "ca"}"\n[publisher]\nmetrics_port = 0\n'
            f"targets = [{', '.join(targets)}]\n"
        )
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "revoca", "--config", str(pub_cfg), "publisher", "run"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        requests = [
            ocsp.OCSPRequestBuilder()
            .add_certificate(leaf.certificate, issuer, hashes.SHA1())
            .build()
            .public_bytes(serialization.Encoding.DER)
            for leaf in leaves
        ]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # wait until every VA answers good for all
            try:
                if all(_ocsp_status(p, requests[-1]) == "GOOD" for p in ports):
                    break
            except OSError:
                pass
            time.sleep(0.1)
        samples = []
        stop_at = time.monotonic() + seconds
        for leaf, request in zip(leaves, requests, strict=True):
            if time.monotonic() > stop_at:
                break
            service.revoke("issuing", leaf.serial, RevocationReason.keyCompromise)
            committed = time.perf_counter()
            pending = set(ports)
            limit = time.monotonic() + 10
            while pending and time.monotonic() < limit:
                for port in list(pending):
                    if _ocsp_status(port, request) == "REVOKED":
                        samples.append((time.perf_counter() - committed) * 1000)
                        pending.discard(port)
            if pending:
                raise RuntimeError(f"VAs on {sorted(pending)} never answered revoked")
        samples.sort()
        return {
            "vas": vas,
            "samples": len(samples),
            "p50_ms": round(statistics.median(samples), 1),
            "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 1),
            "max_ms": round(samples[-1], 1),
        }
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        service.store.close()
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput", help="events/s into one VA, batched vs one by one")
    t.add_argument("--events", type=int, default=100_000)
    t.add_argument("--batch", type=int, default=1000)
    t.add_argument("--baseline-events", type=int, default=2000)
    t.add_argument("--seconds", type=float, default=60)
    lat = sub.add_parser("latency", help="CA commit to revoked on several VA processes")
    lat.add_argument("--vas", type=int, default=3)
    lat.add_argument("--revocations", type=int, default=200)
    lat.add_argument("--seconds", type=float, default=120)
    args = parser.parse_args(argv)
    if args.what == "throughput":
        result = throughput(args.events, args.batch, args.baseline_events, args.seconds)
    else:
        result = latency(args.vas, args.revocations, args.seconds)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
