"""Differential fuzzer for the native OCSP request parser and DER reader
(and the HTTP fast lane's recognizer, on requests wrapped around them).

Every input goes to the Cython core (``va._fastocsp``) and to its
pure-Python twin (``va._fastocsp_py``), and, wrapped in HTTP, to the fast
lane (``va._fastlane`` and ``va._fastlane_py``); both must give the same result or
the same error (type, code, offset, message), and neither may crash. The
request they agree on then meets a third reader, pyca/cryptography
(``tests/fuzz_reference.py``): what it refuses and we accept, and what we
refuse and it accepts, are findings unless listed there with the reason.
Inputs are real requests (``tests/vectors``) mutated with DER-aware
operators: byte flips, inserts and deletes, interesting length octets
(0x00, 0x7f, 0x80, 0x81-0x84, 0xff), tag swaps, truncation, duplicated and
spliced regions, nesting, and random bytes.

    python -m tests.fuzz_ocsp --executions 10000000 --workers 2

A disagreement or finding is written to ``--crashes`` (default
``fuzz-crashes/``) and the run exits 1. Under AddressSanitizer see
SECURITY.md. ``tests/test_fuzz_ocsp.py`` runs a bounded campaign in CI.
"""

import argparse
import base64
import multiprocessing
import os
import random
import sys
import time
from pathlib import Path

from tests import fuzz_reference
from va import _fastlane_py as twin_lane
from va import _fastocsp_py as twin
from va.errors import DERError, RequestError

VECTORS = Path(__file__).with_name("vectors")
INTERESTING_LENGTHS = (0x00, 0x01, 0x7F, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x88, 0xFF)
TAGS = (0x01, 0x02, 0x04, 0x05, 0x06, 0x0A, 0x18, 0x30, 0x31, 0xA0, 0xA1, 0xA2, 0x1F, 0x3F)


def seeds() -> list[bytes]:
    found = (path.read_bytes() for path in sorted(VECTORS.glob("req-*.der")))
    return [data for data in found if data]


def native_core():
    from va import _fastocsp

    return _fastocsp


def native_lane():
    from va import _fastlane

    return _fastlane


def mutate(rng: random.Random, corpus: list[bytes]) -> bytes:
    """One input: a seed with 1-6 mutations (or, rarely, random bytes)."""
    if rng.random() < 0.02:
        return rng.randbytes(rng.randint(0, 64))
    data = bytearray(rng.choice(corpus))
    for _ in range(rng.randint(1, 6)):
        size = len(data)
        op = rng.randrange(10)
        pos = rng.randrange(size) if size else 0
        if op == 0 and size:  # flip bits
            data[pos] ^= 1 << rng.randrange(8)
        elif op == 1 and size:  # any byte
            data[pos] = rng.randrange(256)
        elif op == 2:  # interesting length octet
            if size:
                data[pos] = rng.choice(INTERESTING_LENGTHS)
            else:
                data.append(rng.choice(INTERESTING_LENGTHS))
        elif op == 3 and size:  # tag swap
            data[pos] = rng.choice(TAGS)
        elif op == 4:  # insert bytes
            data[pos:pos] = rng.randbytes(rng.randint(1, 4))
        elif op == 5 and size:  # delete a run
            del data[pos : pos + rng.randint(1, 8)]
        elif op == 6 and size:  # truncate
            del data[rng.randrange(size) :]
        elif op == 7 and size:  # duplicate a region in place
            end = min(size, pos + rng.randint(1, 32))
            data[pos:pos] = data[pos:end]
        elif op == 8:  # splice from another seed
            other = rng.choice(corpus)
            start = rng.randrange(len(other))
            data[pos:] = other[start : start + rng.randint(1, 64)] + data[pos:]
        elif op == 9:  # wrap in a SEQUENCE (nesting), long form sometimes
            body = bytes(data)
            if len(body) < 128 and rng.random() < 0.5:
                data = bytearray(b"\x30" + bytes((len(body),)) + body)
            else:
                data = bytearray(b"\x30\x82" + len(body).to_bytes(2, "big") + body)
    if rng.random() < 0.05:  # trailing bytes
        data += rng.randbytes(rng.randint(1, 3))
    return bytes(data)


def http_envelope(rng: random.Random, der: bytes) -> bytes:
    """An HTTP request around ``der`` (POST, or GET with its base64), with up
    to three byte edits: input for the fast lane's ``simple_request``."""
    if rng.random() < 0.5:
        data = bytearray(
            b"POST /ocsp HTTP/1.1\r\nHost: a\r\nContent-Type: application/ocsp-request\r\n"
            b"Content-Length: %d\r\n\r\n" % len(der) + der
        )
    else:
        encoded = base64.b64encode(der)[:300]
        data = bytearray(b"GET /ocsp/" + encoded + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    for _ in range(rng.randint(0, 3)):
        pos = rng.randrange(len(data)) if data else 0
        op = rng.randrange(5)
        if op == 0 and data:
            data[pos] = rng.choice(b"\r\n :/\t0aA\x00\x7f\xff")
        elif op == 1 and data:
            data[pos] = rng.randrange(256)
        elif op == 2:
            data[pos:pos] = rng.randbytes(rng.randint(1, 3))
        elif op == 3 and data:
            del data[pos : pos + rng.randint(1, 4)]
        elif data:
            del data[pos:]
    return bytes(data)


def outcome(func, *args):
    try:
        return ("ok", func(*args))
    except (DERError, RequestError) as exc:
        return (type(exc).__name__, exc.code, exc.offset, str(exc))


def check(
    native,
    data: bytes,
    max_certids: int = 8,
    depth: int = 32,
    http: bytes | None = None,
    lane=None,
    reference: bool = True,
) -> str | None:
    """None when both agree on every entry point of the OCSP core ``native``
    (and, given ``http``, on the fast lane's recognizer ``lane``) and, with
    ``reference``, their request fits cryptography's reading; otherwise what
    differed."""
    a = outcome(native.parse_ocsp_request, data, max_certids)
    try:
        ours = twin.parse_ocsp_request(data, max_certids)
        b = ("ok", ours)
    except (DERError, RequestError) as exc:
        ours = exc
        b = (type(exc).__name__, exc.code, exc.offset, str(exc))
    if a != b:
        return f"parse_ocsp_request(max_certids={max_certids}): native {a!r} twin {b!r}"
    if reference:
        found = fuzz_reference.problem(data, ours)
        if found is not None:
            return f"against cryptography: {found}"
    a, b = outcome(native.parse_der, data, depth), outcome(twin.parse_der, data, depth)
    if a != b:
        return f"parse_der(depth={depth}): native {a!r} twin {b!r}"
    a, b = outcome(native.read_tlv, data), outcome(twin.read_tlv, data)
    if a != b:
        return f"read_tlv: native {a!r} twin {b!r}"
    if http is not None:
        a, b = lane.simple_request(http, b"/ocsp"), twin_lane.simple_request(http, b"/ocsp")
        if a != b:
            return f"simple_request({http!r}): native {a!r} twin {b!r}"
    return None


def campaign(seed: int, executions: int, seconds: float, crashes: Path) -> tuple[int, int]:
    """Run up to ``executions`` inputs or ``seconds``; return (executed, disagreements
    and findings)."""
    native, lane = native_core(), native_lane()
    rng = random.Random(seed)
    corpus = seeds()
    deadline = time.monotonic() + seconds
    failures = 0
    done = 0
    while done < executions:
        data = mutate(rng, corpus)
        # Limits drawn per input: the defaults mostly, tight ones sometimes.
        max_certids = 8 if rng.random() < 0.8 else rng.randint(1, 3)
        depth = 32 if rng.random() < 0.8 else rng.randint(1, 4)
        http = http_envelope(rng, data) if rng.random() < 0.3 else None
        problem = check(native, data, max_certids, depth, http, lane)
        done += 1
        if problem is not None:
            failures += 1
            crashes.mkdir(parents=True, exist_ok=True)
            name = crashes / f"disagree-{seed}-{done}.der"
            name.write_bytes(data)
            name.with_suffix(".txt").write_text(
                f"{problem}\nmax_certids={max_certids} depth={depth}\n"
            )
            if http is not None:
                name.with_suffix(".http").write_bytes(http)
        if done % 4096 == 0 and time.monotonic() > deadline:
            break
    return done, failures


def _worker(args) -> tuple[int, int]:
    return campaign(*args)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Differential fuzzing of the native OCSP parser against its Python twin"
        " and cryptography."
    )
    parser.add_argument("--executions", type=int, default=1_000_000, help="inputs in all")
    parser.add_argument("--seconds", type=float, default=3600.0, help="stop after this long")
    parser.add_argument("--workers", type=int, default=1, help="processes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--crashes", type=Path, default=Path("fuzz-crashes"))
    args = parser.parse_args(argv)
    slices = 64 * args.workers  # progress every slice
    per_slice = -(-args.executions // slices)
    jobs = [
        (args.seed * 1_000_003 + i, per_slice, args.seconds / slices * args.workers, args.crashes)
        for i in range(slices)
    ]
    started = time.monotonic()
    executed = failures = 0
    with multiprocessing.get_context("fork").Pool(args.workers) as pool:
        for done, bad in pool.imap_unordered(_worker, jobs):
            executed += done
            failures += bad
            rate = executed / max(time.monotonic() - started, 1e-9)
            print(
                f"\r  fuzzing {executed:>12,}/{args.executions:,}  {rate:>9,.0f}/s"
                f"  disagreements and findings {failures}",
                end="",
                file=sys.stderr,
                flush=True,
            )
            if time.monotonic() - started > args.seconds:
                pool.terminate()
                break
    elapsed = time.monotonic() - started
    print(file=sys.stderr)
    print(
        f"executions {executed:,} in {elapsed:.1f} s ({executed / elapsed:,.0f}/s) on"
        f" {args.workers} process(es), seed {args.seed}: {failures} disagreement(s) or"
        f" finding(s);"
        f" native modules {native_core().__file__}, {native_lane().__file__}; pid {os.getpid()}"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
