"""``revoca ra`` (continued): seeing what exists and what expires, and
moving certificates in and out: search, reports, expiry notices, export,
and the inventory import. The commands join the ``ra`` group."""

from pathlib import Path

import click

from ca.errors import BadInputError, ConfigError
from common.secretfile import SecretFileError, read_secret_file
from revoca.cli_ca import CERT_COLUMNS, subject_or_sans
from revoca.cli_ra import _ra, page_limit, ra
from revoca.cli_util import actor, config_of, examples, handle_errors, parse_time
from revoca.output import Column, emit_object, emit_rows, output_options, plural

# -- search and reports ------------------------------------------------------------------


SEARCH_COLUMNS = [Column("id", align=">"), *CERT_COLUMNS]


@ra.command(
    "search",
    epilog=examples(
        "revoca ra search --hostname www.example.com",
        "revoca ra search --text example --status active --expires-before 2027-01-01",
        "revoca ra search --issuer issuing --after 1200 --limit 1000 --csv > page.csv",
    ),
)
@click.option("--text", help="Substring of the subject or a SAN (3+ characters).")
@click.option("--hostname", help="A host name the certificate covers (exactly or by wildcard).")
@click.option("--serial", help="Serial number in hex.")
@click.option("--issuer", help="Issuing CA.")
@click.option("--entity", help="End entity.")
@click.option("--profile", help="Certificate profile.")
@click.option(
    "--status",
    type=click.Choice(["active", "expired", "revoked", "hold"]),
    help="As of now (a revoked certificate stays revoked after it expires).",
)
@click.option("--issued-after", help="ISO 8601 time.")
@click.option("--issued-before", help="ISO 8601 time.")
@click.option("--expires-after", help="ISO 8601 time.")
@click.option("--expires-before", help="ISO 8601 time.")
@click.option(
    "--after", type=click.IntRange(0, 2**62), help="Continue after this id (the last line's id)."
)
@click.option("--limit", default=100, show_default=True, type=page_limit, help="At most this many.")
@output_options(csv=True)
@click.pass_context
@handle_errors
def search_command(
    ctx,
    text,
    hostname,
    serial,
    issuer,
    entity,
    profile,
    status,
    issued_after,
    issued_before,
    expires_after,
    expires_before,
    after,
    limit,
):
    """Search certificates; filters combine."""
    from ra.search import CertificateQuery

    def epoch(value, what):
        parsed = parse_time(value, what)
        return None if parsed is None else int(parsed.timestamp())

    found = _ra(ctx).search_summaries(
        CertificateQuery(
            text=text,
            hostname=hostname,
            serial=serial,
            issuer=issuer,
            entity=entity,
            profile=profile,
            status=status,
            issued_after=epoch(issued_after, "--issued-after"),
            issued_before=epoch(issued_before, "--issued-before"),
            expires_after=epoch(expires_after, "--expires-after"),
            expires_before=epoch(expires_before, "--expires-before"),
            after=after,
            limit=limit,
        )
    )
    rows = [{"id": i, **summary} for i, summary in found]
    emit_rows(rows, SEARCH_COLUMNS, view=subject_or_sans)


# Each report's table; a report not named here shows every key of its rows.
REPORT_COLUMNS = {
    "counts": [Column("ca"), Column("profile"), Column("status"), Column("count", align=">")],
    "expiring": [
        Column("not_after"),
        Column("days_left", "DAYS", align=">"),
        Column("issuer"),
        Column("serial"),
        Column("entity"),
        Column("owner"),
        Column("subject", shrink=True),
    ],
    "duplicates": [
        Column("group", align=">"),
        Column("kind"),
        Column("ca"),
        Column("serial"),
        Column("entity"),
        Column("not_after"),
        Column("subject", shrink=True),
    ],
}


@ra.command(
    "report",
    epilog=examples(
        "revoca ra report counts",
        "revoca ra report expiring --days 60 --csv > expiring.csv",
        "revoca ra report duplicates --json",
    ),
)
@click.argument("name", type=click.Choice(["counts", "expiring", "duplicates"]))
@click.option(
    "--days",
    default=30,
    show_default=True,
    type=click.IntRange(1, 3650),
    help="For expiring: the window from now, in days.",
)
@output_options(csv=True)
@click.pass_context
@handle_errors
def report_command(ctx, name, days):
    """counts (by CA, profile and status now: active, expired, revoked,
    hold), expiring (the certificates expiring in the next --days days, with
    their owners and days left), duplicates (groups of valid certificates
    sharing a public key, or a subject and name set)."""
    from ra.search import report_csv
    from revoca.output import chosen_format

    rows = _ra(ctx).report(name, days=days)
    if chosen_format() == "csv":
        click.echo(report_csv(name, rows), nl=False)
        return
    shown = rows
    if name == "duplicates":  # a table line per certificate, numbered by group
        shown = [
            {"group": i + 1, "kind": g["kind"], "shared": g["shared"], **c}
            for i, g in enumerate(rows)
            for c in g["certificates"]
        ]
    emit_rows(shown, REPORT_COLUMNS[name], data=rows)


# -- export -----------------------------------------------------------------------------


@ra.command(
    "export",
    epilog=examples(
        "revoca ra export --out certs.zip",
        "revoca ra export --out issuing-2026.zip --ca issuing --issued-after 2026-01-01 \\",
        "    --issued-before 2027-01-01",
    ),
)
@click.option("--out", required=True, help="The zip to write.")
@click.option("--ca", "ca_name", help="Only this CA (default: all).")
@click.option(
    "--status",
    type=click.Choice(["active", "expired", "revoked", "hold"]),
    help="Only certificates in this status now.",
)
@click.option("--issued-after", help="ISO 8601 time.")
@click.option("--issued-before", help="ISO 8601 time.")
@click.option("--expires-after", help="ISO 8601 time: notAfter at or after it.")
@click.option("--expires-before", help="ISO 8601 time: notAfter before it.")
@click.pass_context
@handle_errors
def export_command(
    ctx, out, ca_name, status, issued_after, issued_before, expires_after, expires_before
):
    """Issued certificates as a zip: CA/STATUS/SERIAL.pem (the status now:
    active, expired, revoked, hold) and manifest.csv; filters combine."""
    import os
    import sys

    from ra.export import export_zip

    def epoch(value, what):
        parsed = parse_time(value, what)
        return None if parsed is None else int(parsed.timestamp())

    window = {
        "issued_after": epoch(issued_after, "--issued-after"),
        "issued_before": epoch(issued_before, "--issued-before"),
        "expires_after": epoch(expires_after, "--expires-after"),
        "expires_before": epoch(expires_before, "--expires-before"),
    }
    service = _ra(ctx)
    store = service.store
    done = [0]

    def progress(n: int) -> None:
        done[0] += n
        if sys.stderr.isatty() or done[0] % 100_000 < n:
            so_far = plural(done[0], "certificate", grouped=True)
            click.echo(f"\r  exported {so_far}", err=True, nl=False)

    partial = out + ".partial"
    try:
        with open(partial, "wb") as handle:
            count = export_zip(
                store,
                handle,
                now=service.now(),
                ca=ca_name,
                status=status,
                **window,
                progress=progress,
            )
        os.replace(partial, out)  # a reader never sees half an archive
    except OSError as exc:
        raise BadInputError(f"cannot write {out}: {exc.strerror}") from None
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    click.echo(f"\r  exported {plural(count, 'certificate', grouped=True)} to {out}", err=True)


@ra.command(
    "import",
    epilog=examples(
        "revoca ra import bundle.pem certs/ more.zip",
        "revoca ra import partner-certs/ --entity partner",
    ),
)
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--entity",
    help="Tie the imported certificates to this end entity (its contact "
    "gets their expiry notices).",
)
@output_options()
@click.pass_context
@handle_errors
def import_command(ctx, sources, entity):
    """Import certificates issued by other CAs (PEM/DER files, folders, zips)
    into the inventory; their issuers' certificates must be among them or
    imported before."""
    from ra.inventory import import_certificates

    service = _ra(ctx)
    done = [0]

    def progress(n: int) -> None:
        done[0] += n
        if done[0] % 10_000 == 0:
            click.echo(f"\r  imported {done[0]:,}", err=True, nl=False)

    result = import_certificates(
        service.ca, list(sources), entity=entity, actor=actor(), progress=progress
    )
    emit_object(result.summary())


# -- expiry notices ----------------------------------------------------------------------


def smtp_password(settings) -> str:
    """The [notify] SMTP password, from its 0600 file ("" without one)."""
    if settings.password_file is None:
        return ""
    try:
        password = read_secret_file(settings.password_file, "SMTP password file")
    except SecretFileError as exc:
        raise ConfigError(exc.message) from None
    return password.decode().strip()


NOTICE_COLUMNS = [
    Column("ca"),
    Column("serial"),
    Column("not_after"),
    Column("days_left", align=">"),
    Column("entity"),
    Column("recipients", shrink=True),
    Column("subject", shrink=True),
]


@ra.command(
    "notify",
    epilog=examples(
        "revoca ra notify --dry-run",
        "revoca ra notify",
        "revoca ra notify --loop",
    ),
)
@click.option("--dry-run", is_flag=True, help="List the notices due; send and record nothing.")
@click.option("--loop", is_flag=True, help="Keep running: look again every [notify] interval.")
@click.option("--runs", type=click.IntRange(1), help="With --loop: stop after this many passes.")
@output_options(csv=True, json_help="With --dry-run: the notices due as JSON.")
@click.pass_context
@handle_errors
def notify(ctx, dry_run, loop, runs):
    """Email expiry notices at the configured thresholds (once each)."""
    import time

    from ra import notify as notices

    config = config_of(ctx)
    settings = config.notify
    password = smtp_password(settings)
    store = _ra(ctx).store
    passes = 0
    while True:
        try:
            result = notices.run(
                store, settings, int(time.time()), password=password, dry_run=dry_run
            )
        except notices.NotifyError as exc:
            if not loop:
                raise
            click.echo(f"error: {exc.message}", err=True)  # the next pass tries again
            result = notices.RunResult()
        if dry_run:
            emit_rows([n.summary() for n in result.due], NOTICE_COLUMNS)
        else:
            click.echo(
                f"sent {plural(len(result.sent), 'notice')}; "
                f"{plural(result.skipped_no_recipient, 'certificate')} had no recipient",
                err=True,
            )
        passes += 1
        if not loop or dry_run or (runs is not None and passes >= runs):
            return
        time.sleep(settings.interval)
