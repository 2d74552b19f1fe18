"""The ``revoca`` command line.

Exit codes: 0 success, 1 internal error, 2 usage or configuration error,
3 not found, 4 refused by policy, 5 bad input, 6 key or passphrase problem,
7 conflict with the current state, 8 store failure, 9 audit log tampered.
"""

import contextlib
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from ca.errors import CAError
from revoca import (
    __version__,
    cli_ca_keys,  # noqa: F401 (adds its commands to `ca`)
    cli_ra_inventory,  # noqa: F401 (adds its commands to `ra`)
)
from revoca.cli_acme import acme
from revoca.cli_ca import ca
from revoca.cli_enroll import enroll, est, scep, secret
from revoca.cli_publisher import publisher
from revoca.cli_ra import ra
from revoca.cli_serve import serve
from revoca.cli_util import (
    AUDIT_TAMPERED,
    ConfiguredGroup,
    config_of,
    echo_json,
    examples,
    handle_errors,
)
from revoca.cli_va import va
from revoca.config import default_text, load_config
from revoca.logs import setup_logging
from revoca.output import Column, emit_rows, output_options, plural
from va.errors import PortInUseError


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=examples(
        "revoca demo",
        "revoca config default > revoca.toml",
        "revoca --config revoca.toml ca list",
    ),
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Configuration file (TOML), merged over the defaults. Also $REVOCA_CONFIG.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Override paths.data_dir (SQLite store and keys).",
)
@click.option(
    "--log-level",
    default="warning",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="The least severe log records written (on stderr).",
)
@click.option(
    "--log-format",
    default="json",
    show_default=True,
    type=click.Choice(["json", "text"]),
    help="Log records as JSON lines or as text.",
)
@click.version_option(__version__, prog_name="revoca")
@click.pass_context
def cli(ctx, config_path, data_dir, log_level, log_format):
    """Revoca: certificate authority, lifecycle manager and validation authority.

    Start with `revoca demo`, or `revoca config default > revoca.toml` to see
    every setting. Key passphrases come from $REVOCA_KEY_PASSPHRASE or the file
    named by keys.passphrase_file, never from the command line.
    """
    setup_logging(log_level, log_format)
    ctx.ensure_object(dict)
    ctx.obj.update(config_path=config_path, data_dir=data_dir)


cli.add_command(ca)
cli.add_command(va)
cli.add_command(publisher)
cli.add_command(ra)
cli.add_command(acme)
cli.add_command(est)
cli.add_command(scep)
cli.add_command(enroll)
ra.add_command(secret)
cli.add_command(serve)


@cli.group(epilog=examples("revoca config default > revoca.toml", "revoca config show"))
def config():
    """Show the configuration."""


@config.command("default", epilog=examples("revoca config default > revoca.toml"))
def config_default():
    """Print the documented default configuration file."""
    click.echo(default_text(), nl=False)


@config.command(
    "show", epilog=examples("revoca config show", "revoca --config revoca.toml config show")
)
@click.option("--json", "as_json", is_flag=True, help="The same settings as one JSON object.")
@click.pass_context
@handle_errors
def config_show(ctx, as_json):
    """Print every setting in effect: the defaults with your file merged over
    them (and --data-dir), checked as the commands check them, as TOML that
    `--config` reads back. Secrets are never printed: passwords in URLs, and
    any value given for a secret rather than for the file or variable that
    holds it, show as ***."""
    from revoca.config import shown_tables, to_toml
    from store.store import shown_url

    root = ctx.find_root().obj
    cfg = load_config(root["config_path"], data_dir=root["data_dir"])
    tables = shown_tables(cfg)
    if as_json:
        echo_json(tables)
        return
    passphrase = cfg.passphrase
    where = f"file {passphrase.file}" if passphrase.file else f"${passphrase.env}"
    merged = "" if cfg.source == "built-in defaults" else " merged over the built-in defaults"
    click.echo(f"# settings in effect: {cfg.source}{merged}")
    click.echo(f"# store: {shown_url(cfg.store_url)}; VA directory: {cfg.va.directory}")
    click.echo(f"# key passphrase from {where}")
    click.echo(to_toml(tables), nl=False)


@cli.group(cls=ConfiguredGroup, epilog=examples("revoca db current", "revoca db upgrade"))
def db():
    """Schema migrations of the SQL store."""


@db.command("upgrade", epilog=examples("revoca db upgrade"))
@click.pass_context
@handle_errors
def db_upgrade(ctx):
    """Apply all pending migrations (making the store if there is none)."""
    from store import Store

    store = Store.open(config_of(ctx).store_url, auto_migrate=True, create=True)
    click.echo(f"store at revision {store.current_revision()}")


@db.command("current", epilog=examples("revoca db current"))
@click.pass_context
@handle_errors
def db_current(ctx):
    """Show the schema revision of the store and the one the code needs."""
    from store import Store

    # As it is: neither made nor migrated.
    store = Store.attach(config_of(ctx).store_url, create=False)
    click.echo(f"store: {store.current_revision()}  code: {store.head_revision()}")


@cli.group(
    cls=ConfiguredGroup, epilog=examples("revoca audit verify", "revoca audit list --limit 20")
)
def audit():
    """The tamper-evident audit log."""


# A log this long shows a progress bar on stderr while it is verified
# (about 50,000 records a second on one core).
PROGRESS_FROM = 50_000


@audit.command(
    "verify",
    epilog=examples(
        "revoca audit verify",
        "revoca audit verify --json --checkpoint node2-audit.checkpoint",
    ),
)
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@click.option(
    "--checkpoint",
    "checkpoints",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also hold the log to this checkpoint file (another node's, copied here); repeatable.",
)
@click.pass_context
@handle_errors
def audit_verify(ctx, as_json, checkpoints):
    """Check the log and replay it against the certificates: exit 9 if a
    record was edited, removed or reordered, the end was cut off, or a
    certificate's status differs from what the log says."""
    from ca.audit_replay import Replay
    from revoca.app import audit_key, open_store
    from store import audit as audit_log
    from store.audit_checkpoint import beside

    config = config_of(ctx)
    key = audit_key(config)
    replay = Replay()
    with open_store(config).read() as conn:
        total = audit_log.record_count(conn)
        bar = click.progressbar(length=total, label="verifying", file=sys.stderr)
        with bar if total >= PROGRESS_FROM else contextlib.nullcontext() as shown:
            report = audit_log.verify(
                conn,
                key,
                checkpoints=[beside(key.path), *checkpoints],
                observe=replay.observe,
                progress=shown.update if shown is not None else None,
            )
        checked, mismatches = replay.compare(conn)
    tampered = bool(report.problems or mismatches)
    if as_json:
        echo_json(
            {
                "intact": not tampered,
                **report.summary(),
                "certificates": checked,
                "mismatches": [m.summary() for m in mismatches],
            }
        )
    else:
        for problem in report.problems:
            click.echo(f"TAMPERED {problem}")
        for mismatch in mismatches:
            click.echo(f"MISMATCH {mismatch.message}")
        click.echo(_audit_summary(report, checked, len(mismatches)))
    if tampered:
        sys.exit(AUDIT_TAMPERED)


def _audit_summary(report, checked: int, mismatched: int) -> str:
    parts = [plural(report.records, "record")]
    if report.unkeyed_through:
        parts.append(f"1-{report.unkeyed_through} unkeyed (hash chain only, before the key)")
    if report.keyed:
        parts.append(f"{report.keyed} keyed (HMAC-SHA256, key {report.key_fingerprint})")
    for checkpoint in report.checkpoints:
        parts.append(f"checkpoint at record {checkpoint.seq} ({checkpoint.path})")
    verdict = "audit log intact" if not report.problems else "audit log TAMPERED"
    differ = "differs" if mismatched == 1 else "differ"
    certs = f"{plural(checked, 'certificate')} replayed, {mismatched} {differ} from the log"
    return f"{verdict}: {'; '.join(parts)}\n{certs}"


AUDIT_COLUMNS = [
    Column("seq", align=">"),
    Column("at"),
    Column("actor"),
    Column("action"),
    Column("target", shrink=True),
    Column("result"),
]


@audit.command(
    "list",
    epilog=examples(
        "revoca audit list",
        "revoca audit list --limit 1000 --csv > audit.csv",
    ),
)
@click.option(
    "--limit",
    default=50,
    show_default=True,
    type=click.IntRange(1),
    help="How many of the newest records.",
)
@output_options(csv=True)
@click.pass_context
@handle_errors
def audit_list(ctx, limit):
    """Show the newest audit records, oldest first."""
    from sqlalchemy import select

    from revoca.app import open_store
    from store.tables.audit import audit_log

    with open_store(config_of(ctx)).transaction() as conn:
        query = select(audit_log).order_by(audit_log.c.seq.desc()).limit(limit)
        rows = conn.execute(query).all()
    emit_rows(
        [
            {
                "seq": row.seq,
                "at": datetime.fromtimestamp(row.at_ms / 1000, UTC),
                "actor": row.actor,
                "action": row.action,
                "target": row.target,
                "result": row.result,
            }
            for row in reversed(rows)
        ],
        AUDIT_COLUMNS,
    )


@cli.command(
    epilog=examples("revoca demo", "revoca demo --dir /tmp/demo --port 8081 --serve-seconds 60")
)
@click.option(
    "--dir",
    "directory",
    default="revoca-demo",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the demo's store, keys and files (recreated on each run).",
)
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="VA port on 127.0.0.1.",
)
@click.option(
    "--serve-seconds",
    type=click.FloatRange(min=0),
    help="Stop the VA after this many seconds (0: build everything, do not serve).",
)
@click.option(
    "--acme-port",
    default=8555,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="ACME server port on 127.0.0.1 (0: any free port).",
)
@click.option(
    "--http-01-port",
    "http01_port",
    default=8402,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port ACME's http-01 validation connects to (certbot --standalone listens there).",
)
@click.option(
    "--est-port",
    default=9443,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="EST (TLS) port on 127.0.0.1 (0: any free port).",
)
@click.option(
    "--scep-port",
    default=8089,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="SCEP port on 127.0.0.1 (0: any free port).",
)
@handle_errors
def demo(directory, port, serve_seconds, acme_port, http01_port, est_port, scep_port):
    """All-in-one demo on embedded defaults: a root and an issuing CA, a handful
    of certificates, one revoked, one on hold, the files to check them, the
    VA serving OCSP for them on 127.0.0.1 until Ctrl-C, the ACME server
    beside it (with certbot installed, one certificate over ACME), and EST and
    SCEP for a device entity with a one-time secret."""
    from revoca.demo import run_demo

    try:
        run_demo(
            directory,
            echo=click.echo,
            port=port,
            serve_seconds=serve_seconds,
            acme_port=acme_port,
            http01_port=http01_port,
            est_port=est_port,
            scep_port=scep_port,
        )
    except PortInUseError:
        raise  # exit 2, the port named (handle_errors)
    except OSError as exc:
        raise CAError(f"cannot serve the VA on 127.0.0.1:{port}: {exc.strerror}") from None


def main() -> None:
    cli(obj={})
