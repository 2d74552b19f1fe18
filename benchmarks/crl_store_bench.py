"""A full CRL straight from the SQL store: N revoked certificates in SQLite,
then `issue_full_crl` (stream in serial order: the SQLite row reader hands
the native encoder packed rows; sign, store).
Reports the time and the process's peak memory growth, to show memory follows
the CRL's size, not a Python object per entry; as the baseline, the same CRL
through the DB-API cursor (the PostgreSQL path) in the same run. With
``--delta M``: M changes after that CRL, then delta CRLs (median of
``--repeat``).

    python -m benchmarks.crl_store_bench --entries 1000000 --delta 10000
"""

import argparse
import json
import resource
import secrets
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path


def run(entries: int, delta_entries: int = 0, repeat: int = 5) -> dict:
    from ca.crl import issue_full_crl
    from ca.keys import PassphraseSource
    from ca.service import CAService
    from ca.token import SoftwareToken
    from revoca.config import load_config
    from store import Store
    from store.audit_key import AuditKey

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "pass").write_text(secrets.token_urlsafe(16))
        (tmp / "pass").chmod(0o600)
        passphrase = PassphraseSource(file=tmp / "pass")
        url = f"sqlite:///{tmp / 'ca.db'}"

        def open_service() -> CAService:
            return CAService(
                Store.open(url),
                SoftwareToken(tmp / "keys", passphrase),
                load_config(None, data_dir=tmp).profiles,
                base_url="http://x",
                passphrase=passphrase,
                audit_key=AuditKey.in_directory(tmp / "keys", passphrase.get),
            )

        service = open_service()
        service.init_root("root", "CN=Root")
        service.create_sub("issuing", "root", "CN=Bench Issuing")
        ca_id = service.get_ca("issuing").id
        service.store.close()
        db = sqlite3.connect(tmp / "ca.db")
        rows = (
            (
                ca_id,
                f"{(i * 0x9E3779B97F4A7C15) % (1 << 126) | 1 << 125:040x}",
                "CN=x",
                "[]",
                1_700_000_000,
                2_000_000_000,
                "revoked",
                1_700_000_000 + i,
                (1, 4, 5, 0)[i % 4],
                None,
                "tls-server",
                "ec-p256",
                f"{i:064x}",
                b"\x30",
                None,
                1_700_000_000,
                0,  # status_seq: revoked before any CRL
                1_700_000_000 + i,
            )
            for i in range(entries)
        )
        db.executemany(
            "INSERT INTO certificates (ca_id, serial, subject, sans, not_before, not_after, "
            "status, revoked_at, revocation_reason, invalidity_date, profile, key_type, "
            "fingerprint, der, private_key, issued_at, status_seq, status_changed_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        db.commit()
        db.close()
        service = open_service()  # the rows written behind its back, read afresh
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        record = issue_full_crl(service, "issuing")
        elapsed = time.perf_counter() - started
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result = {
            "entries": record.entries,
            "crl_bytes": len(record.der),
            "seconds": round(elapsed, 3),
            "peak_rss_growth_mb": round((rss_after - rss_before) / 1024, 1),
        }
        # Baseline in the same run: the same CRL with rows fetched through the
        # DB-API cursor (the path PostgreSQL takes) instead of the SQLite row
        # reader.
        from ca import crlrows

        direct = crlrows.sqlite_file
        crlrows.sqlite_file = lambda conn: None
        try:
            started = time.perf_counter()
            issue_full_crl(service, "issuing")
            baseline = time.perf_counter() - started
        finally:
            crlrows.sqlite_file = direct
        result["cursor_path_seconds"] = round(baseline, 3)
        result["cursor_path_ratio"] = round(baseline / elapsed, 2)
        if delta_entries:
            # Changes after the base, as the service writes them: an outbox
            # event per serial, and the certificate's status_seq pointing at it.
            from ca.crl import issue_crl

            service.store.close()
            db = sqlite3.connect(tmp / "ca.db")
            serials = [
                r[0]
                for r in db.execute(
                    "SELECT serial FROM certificates WHERE ca_id = ? AND status = 'revoked' "
                    "LIMIT ?",
                    (ca_id, delta_entries),
                )
            ]
            db.executemany(
                "INSERT INTO outbox (ca_id, serial, event, payload, created_at_ms) "
                "VALUES (?, ?, 'revoked', '{}', 0)",
                [(ca_id, s) for s in serials],
            )
            db.execute(
                "UPDATE certificates SET status_seq = o.id, status_changed_at = 1700000000 "
                "FROM outbox o WHERE o.event = 'revoked' AND certificates.ca_id = o.ca_id "
                "AND certificates.serial = o.serial"
            )
            db.commit()
            db.close()
            service = open_service()  # the rows written behind its back, read afresh
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                delta = issue_crl(service, "issuing", delta=True)
                times.append(time.perf_counter() - started)
            result["delta_entries"] = delta.entries
            result["delta_seconds_each"] = [round(t, 4) for t in times]
            result["delta_seconds_median"] = round(statistics.median(times), 4)
        service.store.close()
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument(
        "--delta", type=int, default=0, help="then time a delta CRL listing this many changes"
    )
    parser.add_argument("--repeat", type=int, default=5, help="delta CRLs to time (median shown)")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.entries, args.delta, args.repeat), indent=2))


if __name__ == "__main__":
    main()
