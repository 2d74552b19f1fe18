"""``revoca ra`` (continued): seeing what exists and what expires, and
moving certificates in and out: search, reports, expiry notices, export,
and the inventory import. The commands join the ``ra`` group."""

from pathlib import Path

import click

from ca.errors import BadInputError, ConfigError
from common.secretfile import SecretFileError, read_secret_file
from revoca.cli_ra import _ra, ra
from revoca.cli_util import actor, config_of, echo_json, handle_errors, parse_time

# -- search and reports ------------------------------------------------------------------


@ra.command("search")
@click.option("--text", help="Substring of the subject or a SAN (3+ characters).")
@click.option("--hostname", help="A host name the certificate covers (exactly or by wildcard).")
@click.option("--serial")
@click.option("--issuer", help="Issuing CA.")
@click.option("--entity", help="End entity.")
@click.option("--profile")
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
@click.option("--limit", default=100, show_default=True, type=int)
@click.option("--csv", "as_csv", is_flag=True, help="CSV instead of JSON.")
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
    as_csv,
):
    """Search certificates; filters combine."""
    from ra.search import CertificateQuery, to_csv

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
    if as_csv:
        for row in rows:
            row["sans"] = " ".join(row["sans"])
        click.echo(to_csv(rows), nl=False)
    else:
        echo_json(rows)


@ra.command("report")
@click.argument("name", type=click.Choice(["counts", "expiring", "duplicates"]))
@click.option(
    "--days", default=30, show_default=True, type=int, help="For expiring: the window from now."
)
@click.option("--csv", "as_csv", is_flag=True, help="CSV instead of JSON.")
@click.pass_context
@handle_errors
def report_command(ctx, name, days, as_csv):
    """counts (by CA, profile and status now: active, expired, revoked,
    hold), expiring (the certificates expiring in the next --days days, with
    their owners and days left), duplicates (groups of valid certificates
    sharing a public key, or a subject and name set)."""
    from ra.search import report_csv

    rows = _ra(ctx).report(name, days=days)
    if as_csv:
        click.echo(report_csv(name, rows), nl=False)
    else:
        echo_json(rows)


# -- export -----------------------------------------------------------------------------


@ra.command("export")
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
            click.echo(f"\r  exported {done[0]:,} certificates", err=True, nl=False)

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
    click.echo(f"\r  exported {count:,} certificates to {out}", err=True)


@ra.command("import")
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--entity",
    help="Tie the imported certificates to this end entity (its contact "
    "gets their expiry notices).",
)
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
    echo_json(result.summary())


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


@ra.command("notify")
@click.option("--dry-run", is_flag=True, help="List the notices due; send and record nothing.")
@click.option("--loop", is_flag=True, help="Keep running: look again every [notify] interval.")
@click.option("--runs", type=int, help="With --loop: stop after this many passes.")
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
            echo_json([n.summary() for n in result.due])
        else:
            click.echo(
                f"sent {len(result.sent)} notice(s); {result.skipped_no_recipient} "
                "certificate(s) had no recipient",
                err=True,
            )
        passes += 1
        if not loop or dry_run or (runs is not None and passes >= runs):
            return
        time.sleep(settings.interval)
