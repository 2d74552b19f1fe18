"""Certificate search and reports over N certificates (default 1,000,000)
in the SQLite store, through the RA's own query code; as the baseline, in
the same run, the same questions answered without the search indexes
(substrings by LIKE over every row, the other filters with the table
scanned: SQLite's NOT INDEXED). Median of --repeat runs per query.

    python -m benchmarks.ra_search_bench --certs 1000000
"""

import argparse
import json
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.load_pki import progress_bar

NOW = 1_800_000_000
DAY = 86400


def _rows(ca_id: int, start: int, count: int, entities: int):
    for i in range(start, start + count):
        host = f"host{i}.dept{i % 97}.example{i % 13}.com"
        sans = [f"dns:{host}"]
        if i % 10 == 0:
            sans.append(f"dns:*.dept{i % 97}.example{i % 13}.com")
        if i % 7 == 0:
            sans.append(f"dns:alt{i}.example.net")
        revoked = i % 10 == 3
        issued = NOW - (i % 730) * DAY
        yield (
            ca_id,
            f"{(i * 0x9E3779B97F4A7C15) % (1 << 126) | 1 << 125:040x}",
            f"CN={host},O=Example {i % 13}",
            json.dumps(sans),
            issued,
            issued + (90 if i % 3 else 398) * DAY,
            "revoked" if revoked else "good",
            issued + DAY if revoked else None,
            1 if revoked else None,
            ("tls-server", "tls-client", "tls-server")[i % 3],
            "ec-p256",
            f"{i:064x}",
            b"\x30",
            issued,
            (i % entities) + 1 if i % 4 == 0 else None,
            # Stand-ins for the digests: every 500th certificate shares its
            # key with the one before, every 700th its name set.
            f"{i - (i % 500 == 1):064x}",
            f"{i - (i % 700 == 1):064x}",
        )


def build(path: Path, certs: int) -> dict:
    from store import Store

    store = Store.open(f"sqlite:///{path}")  # migrations, FTS5 triggers included
    store.close()
    db = sqlite3.connect(path)
    db.execute(
        "INSERT INTO cas (name, subject, key_id, key_type, serial, not_before, not_after, "
        "key_identifier, cert_der, origin, created_at) VALUES "
        "('bench', 'CN=Bench', 'k', 'ec-p256', '01', 0, 4000000000, 'x', x'30', 'created', 0)"
    )
    ca_id = db.execute("SELECT id FROM cas").fetchone()[0]
    entities = max(1, certs // 20)
    db.executemany(
        "INSERT INTO end_entities (name, email, ca_id, profile, subject_template, allowed_sans, "
        "attributes, status, created_at, updated_at) VALUES (?, 'ops@example.com', ?, "
        "'tls-server', 'CN={name}', '[]', '{}', 'active', 0, 0)",
        ((f"entity-{i}", ca_id) for i in range(entities)),
    )
    advance = progress_bar("certificates", certs)
    started = time.perf_counter()
    batch = 20_000
    for start in range(0, certs, batch):
        count = min(batch, certs - start)
        db.executemany(
            "INSERT INTO certificates (ca_id, serial, subject, sans, not_before, not_after, "
            "status, revoked_at, revocation_reason, profile, key_type, fingerprint, der, "
            "issued_at, end_entity_id, spki_sha256, names_sha256) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            _rows(ca_id, start, count, entities),
        )
        advance(count)
    db.commit()
    db.execute("ANALYZE")
    # One huge load leaves a WAL as large as the database, and every reader
    # pays for looking pages up in it; ordinary traffic checkpoints as it goes.
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return {"certs": certs, "entities": entities, "insert_seconds": time.perf_counter() - started}


def _median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def measure(path: Path, certs: int, repeat: int) -> dict:
    from ra.search import CertificateQuery, counts, duplicates, expiring, search
    from store import Store

    store = Store.open(f"sqlite:///{path}")
    raw = sqlite3.connect(path)
    probe = certs // 2 + 1
    host = f"host{probe}.dept{probe % 97}.example{probe % 13}.com"
    serial = f"{(probe * 0x9E3779B97F4A7C15) % (1 << 126) | 1 << 125:x}"
    # Every fourth certificate belongs to entity (i % entities): pick one that has some.
    entity = f"entity-{(probe - probe % 4) % max(1, certs // 20)}"
    page = 100

    def indexed(query: CertificateQuery):
        def run():
            with store.read() as conn:
                return search(conn, query, NOW)

        return run

    def report(fn, *args):
        def run():
            with store.read() as conn:
                return fn(conn, *args)

        return run

    def scan(sql: str, *params):
        return lambda: raw.execute(sql, params).fetchall()

    cols = "id, subject, sans"
    table = "certificates NOT INDEXED"
    cases = {
        "substring of a subject or SAN": (
            indexed(CertificateQuery(text=f"host{probe}.", limit=page)),
            scan(
                f"SELECT {cols} FROM certificates WHERE subject LIKE ? OR sans LIKE ? "
                "ORDER BY id LIMIT 100",
                f"%host{probe}.%",
                f"%host{probe}.%",
            ),
        ),
        "hostname (exact or wildcard SAN)": (
            indexed(CertificateQuery(hostname=host, limit=page)),
            scan(
                f"SELECT {cols} FROM certificates WHERE lower(sans) LIKE ? OR lower(sans) LIKE ? "
                "ORDER BY id LIMIT 100",
                f'%"dns:{host}"%',
                f'%"dns:*.{host.split(".", 1)[1]}"%',
            ),
        ),
        "serial": (
            indexed(CertificateQuery(serial=serial, limit=page)),
            scan(f"SELECT {cols} FROM {table} WHERE serial = ?", f"{int(serial, 16):040x}"),
        ),
        "end entity": (
            indexed(CertificateQuery(entity=entity, limit=page)),
            scan(
                f"SELECT {cols} FROM {table} WHERE end_entity_id = "
                "(SELECT id FROM end_entities WHERE name = ?) ORDER BY id LIMIT 100",
                entity,
            ),
        ),
        "revoked, issued in a 4-day window": (
            indexed(
                CertificateQuery(
                    status="revoked",
                    issued_after=NOW - 104 * DAY,
                    issued_before=NOW - 100 * DAY,
                    limit=page,
                )
            ),
            scan(
                f"SELECT {cols} FROM {table} WHERE status = 'revoked' AND issued_at >= ? "
                "AND issued_at < ? ORDER BY id LIMIT 100",
                NOW - 104 * DAY,
                NOW - 100 * DAY,
            ),
        ),
        "report: counts by CA, profile, status now": (
            report(counts, NOW),
            scan(
                "SELECT ca_id, profile, CASE WHEN status = 'good' AND not_after >= ? THEN "
                "'active' WHEN status = 'good' THEN 'expired' ELSE status END AS s, count(*) "
                "FROM certificates NOT INDEXED GROUP BY ca_id, profile, s",
                NOW,
            ),
        ),
        "report: certificates expiring in the next 7 days": (
            report(expiring, NOW, 7),
            scan(
                f"SELECT {cols} FROM {table} WHERE status = 'good' AND not_after >= ? "
                "AND not_after <= ? ORDER BY not_after",
                NOW,
                NOW + 7 * DAY,
            ),
        ),
        "report: duplicates (valid certificates sharing a key or a name set)": (
            report(duplicates, NOW),
            lambda: [
                row
                for column in ("spki_sha256", "names_sha256")
                for row in raw.execute(
                    f"SELECT {column} FROM {table} WHERE status = 'good' AND not_after >= ? "
                    f"GROUP BY {column} HAVING count(*) > 1",
                    (NOW,),
                ).fetchall()
            ],
        ),
    }
    out = {}
    for name, (fast, slow) in cases.items():
        found, baseline_rows = fast(), slow()
        if not found or len(found) != len(baseline_rows):
            raise RuntimeError(f"{name}: {len(found)} rows, baseline {len(baseline_rows)}")
        indexed_ms, scan_ms = _median_ms(fast, repeat), _median_ms(slow, repeat)
        out[name] = {
            "indexed_ms": round(indexed_ms, 3),
            "scan_ms": round(scan_ms, 3),
            "ratio": round(scan_ms / indexed_ms, 1),
            "rows": len(found),
            "baseline_rows": len(baseline_rows),
        }
    store.close()
    raw.close()
    return out


def export(path: Path, out: Path) -> dict:
    """Time the zip export of every row and the process's peak memory growth."""
    import resource

    from ra.export import export_zip
    from store import Store

    store = Store.open(f"sqlite:///{path}")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with out.open("wb") as handle:
        count = export_zip(store, handle, now=NOW)
    elapsed = time.perf_counter() - started
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    store.close()
    return {
        "certificates": count,
        "seconds": round(elapsed, 1),
        "per_second": round(count / elapsed),
        "peak_rss_growth_mb": round(grown, 1),
        "zip_mb": round(out.stat().st_size / 1e6, 1),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--certs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--export", action="store_true", help="also time `ra.export.export_zip` of every row"
    )
    args = parser.parse_args(argv)
    if args.certs < 100 or args.repeat < 1:
        parser.error("--certs at least 100, --repeat at least 1")
    with tempfile.TemporaryDirectory(prefix="revoca-search-") as tmp:
        path = Path(tmp) / f"search-{secrets.token_hex(4)}.db"
        setup = build(path, args.certs)
        results = {"setup": setup, "queries": measure(path, args.certs, args.repeat)}
        if args.export:
            results["export"] = export(path, Path(tmp) / "export.zip")
        results["db_mb"] = round(path.stat().st_size / 1e6, 1)
    print(
        f"{args.certs:,} certificates; inserted in {setup['insert_seconds']:.1f} s "
        f"(with the trigram index kept by triggers); store {results['db_mb']} MB",
        file=sys.stderr,
    )
    print(f"{'query':58} {'indexed ms':>11} {'scan ms':>9} {'ratio':>7}")
    for name, r in results["queries"].items():
        print(f"{name:58} {r['indexed_ms']:>11.2f} {r['scan_ms']:>9.1f} {r['ratio']:>6.1f}x")
    if "export" in results:
        e = results["export"]
        print(
            f"export: {e['certificates']:,} certificates in {e['seconds']} s "
            f"({e['per_second']:,}/s), peak RSS growth {e['peak_rss_growth_mb']} MB, "
            f"zip {e['zip_mb']} MB"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
