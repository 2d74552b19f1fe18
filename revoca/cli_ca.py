"""``revoca ca``: CA hierarchy, issuance, revocation, export."""

import os
from pathlib import Path

import click
from cryptography.hazmat.primitives import serialization

from ca.errors import BadInputError, CAError, KeyAccessError
from ca.export import FORMATS
from ca.keys import KEY_SPECS, PassphraseSource
from ca.reasons import RevocationReason
from ca.records import parse_serial, serial_hex
from revoca.cli_util import (
    ConfiguredGroup,
    actor,
    config_of,
    examples,
    handle_errors,
    now,
    parse_time,
    read_input,
    write_output,
)
from revoca.output import Column, emit_object, emit_rows, output_options, plural


def _service(ctx: click.Context, *, create: bool = False):
    """The CA service on the configured store; ``create``: the command makes
    a node's first CA and may make the store (`init-root`, `import`)."""
    from revoca.app import build_ca_service

    return build_ca_service(config_of(ctx), create=create)


def _passphrase_option(kind: str, default_env: str):
    """--<kind>-passphrase-env / --<kind>-passphrase-file: never the value itself."""

    def decorate(func):
        func = click.option(
            f"--{kind}-passphrase-file",
            type=click.Path(dir_okay=False, path_type=Path),
            help=f"Read the {kind} passphrase from this file.",
        )(func)
        return click.option(
            f"--{kind}-passphrase-env",
            default=default_env,
            show_default=True,
            help=f"Environment variable holding the {kind} passphrase.",
        )(func)

    return decorate


def option_passphrase(kind: str, env: str, file: Path | None) -> bytes:
    """The passphrase of --<kind>-passphrase-env / --<kind>-passphrase-file;
    when there is none, the error names those options (not the key
    passphrase's configuration)."""
    if file is None and env not in os.environ:
        raise KeyAccessError(
            f"no {kind} passphrase: set the environment variable {env} "
            f"or give --{kind}-passphrase-file FILE"
        )
    return PassphraseSource(env=env, file=file).get()


def _ca_summary(record) -> dict:
    return {
        "name": record.name,
        "subject": record.subject,
        "parent": record.parent,
        "key_type": record.key_type,
        "serial": serial_hex(record.serial),
        "not_before": record.not_before.isoformat(),
        "not_after": record.not_after.isoformat(),
        "origin": record.origin,
    }


key_type_option = click.option(
    "--key-type", type=click.Choice(KEY_SPECS), help="Key algorithm and size."
)
days_option = click.option(
    "--days",
    type=click.IntRange(1),
    help="Validity in days (default and maximum come from the profile).",
)


@click.group(
    cls=ConfiguredGroup,
    epilog=examples(
        'revoca ca init-root --name root --subject "CN=Example Root,O=Example,C=DE"',
        "revoca ca list",
    ),
)
def ca():
    """Certificate authorities: create, import, issue, revoke, export."""


@ca.command(
    "init-root",
    epilog=examples(
        'revoca ca init-root --name root --subject "CN=Example Root,O=Example,C=DE"',
        'revoca ca init-root --name root2 --subject "CN=Root 2" --key-type rsa-4096 --days 7300',
    ),
)
@click.option("--name", required=True, help="Short name of the CA (used in URLs and key ids).")
@click.option(
    "--subject", required=True, help='RFC 4514 subject, e.g. "CN=Example Root,O=Example".'
)
@key_type_option
@days_option
@click.pass_context
@handle_errors
def init_root(ctx, name, subject, key_type, days):
    """Create a self-signed root CA (profile root-ca) with a new key (and the
    store, on a new node)."""
    service = _service(ctx, create=True)
    record = service.init_root(
        name, subject, key_type=key_type or "ec-p384", days=days, actor=actor()
    )
    click.echo(
        f"created root CA {record.name}: {record.subject} (serial {serial_hex(record.serial)})"
    )
    _first_crls(ctx, service, record.name)


@ca.command(
    "create-sub",
    epilog=examples(
        'revoca ca create-sub --name issuing --parent root --subject "CN=Example CA,O=Example"',
        'revoca ca create-sub --name clients --parent root --subject "CN=Example Client CA" \\',
        "    --profile client-sub-ca",
    ),
)
@click.option("--name", required=True, help="Short name of the new CA.")
@click.option("--parent", required=True, help="Name of the issuing CA held here.")
@click.option("--subject", required=True, help="RFC 4514 subject of the new CA.")
@click.option(
    "--profile",
    default="sub-ca",
    show_default=True,
    help="The CA profile: sub-ca (TLS, under the Baseline Requirements) or client-sub-ca "
    "(client certificates, may hold).",
)
@key_type_option
@days_option
@click.pass_context
@handle_errors
def create_sub(ctx, name, parent, subject, profile, key_type, days):
    """Create a subordinate CA signed by a CA held here."""
    service = _service(ctx)
    record = service.create_sub(
        name,
        parent,
        subject,
        profile=profile,
        key_type=key_type or "ec-p256",
        days=days,
        actor=actor(),
    )
    click.echo(
        f"created CA {record.name} under {record.parent}: {record.subject} "
        f"(serial {serial_hex(record.serial)})"
    )
    _first_crls(ctx, service, record.name)


@ca.command(
    "import",
    epilog=examples(
        "revoca ca import --name legacy --cert ca.pem --key ca.key --key-passphrase-file pass.txt",
    ),
)
@click.option("--name", required=True, help="Short name for the imported CA.")
@click.option("--cert", "cert_path", required=True, help="CA certificate (PEM or DER).")
@click.option(
    "--key", "key_path", required=True, help="CA private key (PEM or DER, PKCS#8 or traditional)."
)
@_passphrase_option("key", "REVOCA_IMPORT_PASSPHRASE")
@click.pass_context
@handle_errors
def import_ca(ctx, name, cert_path, key_path, key_passphrase_env, key_passphrase_file):
    """Take over an existing CA (for example one made with openssl). The key is
    re-encrypted with the configured passphrase. The source key's passphrase,
    if it has one, comes from --key-passphrase-env or --key-passphrase-file."""
    cert = read_input(cert_path, "certificate")
    key = read_input(key_path, "key file")
    source = PassphraseSource(env=key_passphrase_env, file=key_passphrase_file)
    try:
        passphrase = source.get()
    except KeyAccessError:
        passphrase = None  # an unencrypted key; a wrong guess is reported by the loader
    service = _service(ctx, create=True)
    record = service.import_ca(name, cert, key, passphrase, actor=actor())
    parent = f" under {record.parent}" if record.parent else ""
    click.echo(f"imported CA {record.name}{parent}: {record.subject}")
    # No first CRL here: an imported CA may have numbered CRLs elsewhere
    # (RFC 5280 5.2.3); `ca crl` or the updater signs its next one.


def _first_crls(ctx, service, name: str) -> None:
    """A new CA signs its first CRLs at once (its full CRL or ARL, and its
    delta), so that the VAs have one to serve from the start. One that
    cannot be signed is a warning: the CA exists, the updater signs it."""
    from ca.crl_updater import Schedule, run_once

    config = config_of(ctx)
    schedule = Schedule.from_settings(config.crl)
    failures: list[tuple[str, str]] = []
    signed = run_once(
        service,
        schedule,
        delta_url_for=config.delta_crl_url,
        actor=actor(),
        only=name,
        failures=failures,
    )
    for crl in signed:
        click.echo(f"issued {crl}.crl", err=True)
    for crl, reason in failures:  # the CA stands; the updater signs its CRLs later
        click.echo(f"warning: {crl}.crl not signed yet: {reason}", err=True)


@ca.command(
    "issue",
    epilog=examples(
        "revoca ca issue --ca issuing --profile tls-server --csr req.pem --out cert.pem",
        "revoca ca issue --ca issuing --profile tls-client --generate-key ec-p256 \\",
        "    --subject CN=alice --san email:alice@example.com",
    ),
)
@click.option("--ca", "ca_name", required=True, help="Issuing CA.")
@click.option("--profile", required=True, help="Certificate profile (see `revoca ca profiles`).")
@click.option("--csr", "csr_path", help="PKCS#10 request, PEM or DER ('-' for stdin).")
@click.option(
    "--generate-key",
    type=click.Choice(KEY_SPECS),
    help="Generate the key here instead of taking a CSR (export it later as PKCS#12).",
)
@click.option("--subject", help="RFC 4514 subject, with --generate-key.")
@click.option(
    "--san",
    "sans",
    multiple=True,
    help="dns:NAME, ip:ADDR, email:ADDR or uri:URI (repeatable), with --generate-key.",
)
@days_option
@click.option("--out", help="Write the certificate here (default: stdout).")
@click.option(
    "--format",
    "fmt",
    default="pem",
    show_default=True,
    type=click.Choice(["pem", "der", "pem-chain", "p7b"]),
    help="How the certificate is written: pem, der, pem-chain (with its CA chain) or p7b.",
)
@click.pass_context
@handle_errors
def issue(ctx, ca_name, profile, csr_path, generate_key, subject, sans, days, out, fmt):
    """Issue a certificate from a CSR, or with a key generated here."""
    service = _service(ctx)
    if bool(csr_path) == bool(generate_key):
        raise click.UsageError("give exactly one of --csr or --generate-key")
    if csr_path:
        if subject or sans:
            raise click.UsageError(
                "--subject and --san go with --generate-key; a CSR carries its own"
            )
        record = service.issue(
            ca_name, read_input(csr_path, "CSR"), profile, days=days, actor=actor()
        )
    else:
        record = service.issue_with_new_key(
            ca_name,
            profile,
            subject or "",
            list(sans),
            key_type=generate_key,
            days=days,
            actor=actor(),
        )
    click.echo(
        f"issued serial {serial_hex(record.serial)} to {record.subject or record.sans[0]}", err=True
    )
    write_output(out, service.export(ca_name, record.serial, fmt, actor=actor()))


@ca.command("ocsp-signer", epilog=examples("revoca ca ocsp-signer --ca issuing --out ocsp.pem"))
@click.option("--ca", "ca_name", required=True, help="CA the responder answers for.")
@key_type_option
@days_option
@click.option("--out", help="Write the signer certificate (PEM) here (default: stdout).")
@click.pass_context
@handle_errors
def ocsp_signer(ctx, ca_name, key_type, days, out):
    """Issue a delegated OCSP signer certificate (EKU OCSPSigning, ocsp-nocheck);
    its key stays in the key store under the printed key id."""
    record, key_id = _service(ctx).issue_ocsp_signer(
        ca_name, key_type=key_type or "ec-p256", days=days, actor=actor()
    )
    click.echo(f"issued OCSP signer serial {serial_hex(record.serial)}, key id {key_id}", err=True)
    write_output(out, record.certificate.public_bytes(serialization.Encoding.PEM))


@ca.command(
    "revoke",
    epilog=examples(
        "revoca ca revoke --ca issuing --serial 3fbb... --reason keyCompromise",
        "revoca ca revoke --ca clients --serial 3fbb... --reason certificateHold",
    ),
)
@click.option("--ca", "ca_name", required=True, help="The CA that issued the certificate.")
@click.option("--serial", required=True, help="Serial number in hex.")
@click.option(
    "--reason",
    default="unspecified",
    show_default=True,
    help="RFC 5280 reason: "
    + ", ".join(r.name for r in RevocationReason if r.name != "removeFromCRL")
    + ". certificateHold puts the certificate on hold.",
)
@click.option("--time", "when", help="Revocation time, ISO 8601 (default: now).")
@click.option(
    "--invalidity-date",
    help="When the key is known or suspected to have been compromised, ISO 8601.",
)
@click.pass_context
@handle_errors
def revoke(ctx, ca_name, serial, reason, when, invalidity_date):
    """Revoke a certificate, or put it on hold."""
    record = _service(ctx).revoke(
        ca_name,
        parse_serial(serial),
        RevocationReason.parse(reason),
        revoked_at=parse_time(when, "--time"),
        invalidity_date=parse_time(invalidity_date, "--invalidity-date"),
        actor=actor(),
    )
    click.echo(f"{serial_hex(record.serial)}: {record.status} ({record.reason.name})")


@ca.command("release-hold", epilog=examples("revoca ca release-hold --ca clients --serial 3fbb..."))
@click.option("--ca", "ca_name", required=True, help="The CA that put the certificate on hold.")
@click.option("--serial", required=True, help="Serial number in hex.")
@click.pass_context
@handle_errors
def release_hold(ctx, ca_name, serial):
    """Take a certificate off hold: it is good again (removeFromCRL on the next delta CRL)."""
    record = _service(ctx).release_hold(ca_name, parse_serial(serial), actor=actor())
    click.echo(f"{serial_hex(record.serial)}: {record.status}")


CA_COLUMNS = [
    Column("name"),
    Column("key_type"),
    Column("not_after"),
    Column("parent"),
    Column("origin"),
    Column("subject", shrink=True),
]


@ca.command(
    "list",
    epilog=examples(
        "revoca ca list",
        "revoca ca list --csv > cas.csv",
        "revoca ca list --json | jq -r '.[].name'",
    ),
)
@output_options(csv=True)
@click.pass_context
@handle_errors
def list_cas(ctx):
    """List the CAs held here (PARENT "-": a top CA, its issuer not held here)."""
    emit_rows([_ca_summary(r) for r in _service(ctx).list_cas()], CA_COLUMNS)


@ca.command(
    "show",
    epilog=examples(
        "revoca ca show issuing",
        "revoca ca show issuing --serial 3fbb...",
        "revoca ca show root --pem > root.pem",
        "revoca ca show issuing --json | jq -r .not_after",
    ),
)
@click.argument("name")
@click.option("--serial", help="Show this certificate of the CA instead of the CA itself.")
@click.option("--pem", is_flag=True, help="Print the certificate as PEM.")
@output_options()
@click.pass_context
@handle_errors
def show(ctx, name, serial, pem):
    """Show a CA, or one of its certificates with --serial."""
    service = _service(ctx)
    if serial:
        record = service.get_certificate(name, parse_serial(serial))
        cert = record.certificate
        summary = record.summary(now())
    else:
        record = service.get_ca(name)
        cert = record.certificate
        summary = _ca_summary(record)
    if pem:
        click.echo(cert.public_bytes(serialization.Encoding.PEM).decode(), nl=False)
    else:
        emit_object(summary)


CERT_COLUMNS = [
    Column("ca"),
    Column("serial"),
    Column("status"),
    Column("profile"),
    Column("not_after"),
    Column("subject", shrink=True),
]


def subject_or_sans(row: dict) -> dict:
    """A certificate summary for a table: a subjectless certificate shows its SANs."""
    return {**row, "subject": row["subject"] or ", ".join(row["sans"])}


@ca.command(
    "certs",
    epilog=examples(
        "revoca ca certs --ca issuing --status revoked",
        "revoca ca certs --limit 50000 --csv > certs.csv",
        "revoca ca certs --ca issuing --json | jq -r '.[].serial'",
    ),
)
@click.option("--ca", "ca_name", help="Only this CA's certificates.")
@click.option(
    "--status",
    type=click.Choice(["active", "expired", "revoked", "hold"]),
    help="Only certificates in it now (a revoked one stays revoked after it expires).",
)
@click.option(
    "--limit",
    default=1000,
    show_default=True,
    type=click.IntRange(1),
    help="At most this many certificates.",
)
@output_options(csv=True)
@click.pass_context
@handle_errors
def certs(ctx, ca_name, status, limit):
    """List issued certificates."""
    at = now()
    records = _service(ctx).list_certificates(ca_name, status, limit, now=at)
    emit_rows([r.summary(at) for r in records], CERT_COLUMNS, view=subject_or_sans)


@ca.command(
    "export",
    epilog=examples(
        "revoca ca export --ca issuing --serial 3fbb... --format p7b --out chain.p7b",
        "revoca ca export --ca root --format pem --out root.pem",
        "REVOCA_EXPORT_PASSPHRASE=... revoca ca export --ca issuing --serial 3fbb... \\",
        "    --format p12 --out alice.p12",
    ),
)
@click.option(
    "--ca", "ca_name", required=True, help="The CA whose certificate, or one it issued, to export."
)
@click.option(
    "--serial", help="Serial number in hex of a certificate the CA issued (default: the CA's own)."
)
@click.option(
    "--format",
    "fmt",
    required=True,
    type=click.Choice(FORMATS),
    help="pem, der, pem-chain, p7b, or p12 (with the key, only for keys made here).",
)
@click.option("--out", help="Output file (required for p12; written 0600).")
@_passphrase_option("export", "REVOCA_EXPORT_PASSPHRASE")
@click.pass_context
@handle_errors
def export(ctx, ca_name, serial, fmt, out, export_passphrase_env, export_passphrase_file):
    """Export a certificate: pem, der, pem-chain, p7b (PKCS#7 with the chain) or
    p12 (with the key, only for keys generated here). Without --serial, the
    CA's own certificate (a root's too), in any format but p12."""
    passphrase = None
    if fmt == "p12" and serial is not None:
        passphrase = option_passphrase("export", export_passphrase_env, export_passphrase_file)
    data = _service(ctx).export(
        ca_name,
        None if serial is None else parse_serial(serial),
        fmt,
        export_passphrase=passphrase,
        actor=actor(),
    )
    write_output(out, data, secret=fmt == "p12")


PROFILE_COLUMNS = [
    Column("name"),
    Column("validity_days", "DAYS", align=">"),
    Column("max_validity_days", "MAX DAYS", align=">"),
    Column("description", shrink=True),
]


@ca.command(
    "profiles",
    epilog=examples(
        "revoca ca profiles",
        "revoca ca profiles --json | jq '.\"tls-server\".max_validity_days'",
    ),
)
@output_options(csv=True)
@click.pass_context
@handle_errors
def profiles(ctx):
    """List the certificate profiles of the configuration (--json: every
    setting of each, by name)."""
    from dataclasses import asdict

    items = {name: asdict(p) for name, p in config_of(ctx).profiles.items()}
    rows = [{"name": name, **p} for name, p in items.items()]
    emit_rows(rows, PROFILE_COLUMNS, data=items, csv_keys=[c.key for c in PROFILE_COLUMNS])


@ca.command(
    "crl",
    epilog=examples(
        "revoca ca crl --ca issuing --out issuing.crl",
        "revoca ca crl --ca issuing --delta --out issuing-delta.crl",
        "revoca ca crl --ca root --arl --out root.crl",
        "revoca ca crl --ca issuing --partition tls-server:0 --out shard0.crl",
    ),
)
@click.option("--ca", "ca_name", required=True, help="The CA whose CRL to sign.")
@click.option("--delta", is_flag=True, help="A delta CRL against the latest full CRL.")
@click.option(
    "--arl", is_flag=True, help="An ARL: only CA certificates (a root's CRL), up to 12 months."
)
@click.option(
    "--partition",
    metavar="PROFILE:SHARD",
    help="One shard of a partitioned profile's CRL (profile setting crl_partitions).",
)
@click.option(
    "--days",
    type=click.IntRange(1),
    help="nextUpdate after this many days (default from [crl]; at most 10, BR 4.9.7).",
)
@click.option("--out", help="Write the CRL (DER) here (default: stdout).")
@click.pass_context
@handle_errors
def crl(ctx, ca_name, delta, arl, partition, days, out):
    """Sign the next CRL of a CA now (full, delta, ARL or one partition),
    streamed from the store."""
    from ca.crl import issue_crl

    config = config_of(ctx)
    shard = None
    if partition:
        profile_name, _, number = partition.partition(":")
        if not profile_name or not number.isdigit():
            raise BadInputError(f"--partition {partition!r}: write it as PROFILE:SHARD")
        shard = (profile_name, int(number))
    if days is None:
        days = (
            config.crl.arl_validity_days
            if arl
            else config.crl.delta_validity_days
            if delta
            else config.crl.validity_days
        )
    record = issue_crl(
        _service(ctx),
        ca_name,
        delta=delta,
        arl=arl,
        partition=shard,
        days=days,
        delta_url="" if arl or shard else config.delta_crl_url(ca_name),
        actor=actor(),
    )
    kind = "delta CRL" if delta else "ARL" if arl else "partition CRL" if shard else "CRL"
    click.echo(
        f"{kind} number {record.number} of {ca_name}: "
        f"{plural(record.entries, 'entry', 'entries')}, "
        f"{len(record.der)} bytes",
        err=True,
    )
    write_output(out, record.der)


@ca.command(
    "crl-updater",
    epilog=examples("revoca ca crl-updater --once", "revoca ca crl-updater --seconds 3600"),
)
@click.option("--once", is_flag=True, help="Issue what is due now, then exit.")
@click.option(
    "--seconds", type=click.FloatRange(min=0), help="Stop after this long (default: until SIGTERM)."
)
@click.pass_context
@handle_errors
def crl_updater(ctx, once, seconds):
    """Issue full, delta, ARL and partition CRLs on the [crl] schedule."""
    import signal
    import time

    from ca.crl_updater import Changes, Schedule, pass_seconds, run_once

    config = config_of(ctx)
    service = _service(ctx)
    schedule = Schedule.from_settings(config.crl)
    changes = Changes()  # kept between passes: each reads only the new outbox events
    interval = pass_seconds(schedule)
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    deadline = None if seconds is None else time.monotonic() + seconds
    while True:
        failures: list[tuple[str, str]] = []
        for name in run_once(
            service,
            schedule,
            actor=actor(),
            delta_url_for=config.delta_crl_url,
            changes=changes,
            failures=failures,
        ):
            click.echo(f"issued {name}.crl", err=True)
        for name, reason in failures:
            click.echo(f"error: {name}.crl not signed: {reason}", err=True)
        if once and failures:
            raise CAError(f"{plural(len(failures), 'CRL')} not signed (above); the others were")
        if once or stop["now"] or (deadline is not None and time.monotonic() >= deadline):
            return
        left = (deadline - time.monotonic()) if deadline else interval
        time.sleep(min(interval, max(1.0, left)))
