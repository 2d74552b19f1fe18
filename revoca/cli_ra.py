"""``revoca ra``: end entities, enrollment, renewal, revocation, operators,
and the RA's REST API."""

import asyncio
from pathlib import Path

import click
from cryptography.hazmat.primitives.serialization import Encoding

from ca.errors import BadInputError, ConfigError
from ca.keys import KEY_SPECS, PassphraseSource
from ca.records import CertificateRecord, parse_serial
from ra.roles import ROLES
from ra.service import MAX_PAGE
from ra.settings import RASettings
from revoca.cli_ca import CERT_COLUMNS, _passphrase_option, option_passphrase
from revoca.cli_util import (
    OPERATOR_TOKEN_ENV,
    ConfiguredGroup,
    actor,
    config_of,
    examples,
    handle_errors,
    now,
    operator_token,
    read_input,
    write_output,
)
from revoca.output import Column, emit_object, emit_rows, output_options, plural

# --limit of the RA's listings: a page is 1 to MAX_PAGE rows.
page_limit = click.IntRange(1, MAX_PAGE)


def _ra(ctx: click.Context):
    from ra.approvals import ApprovalPolicy
    from ra.service import RAService
    from revoca.app import build_ca_service

    config = config_of(ctx)
    return RAService(build_ca_service(config), ApprovalPolicy.from_settings(config.ra))


def _attributes(pairs) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise BadInputError(f"attribute {pair!r}: write it as key=value")
        out[key] = value
    return out


def _operator(ctx: click.Context, service, permission: str, *, always: bool = False):
    """Who a command acts as: the RA operator whose token it was given
    (--operator-token-file, or REVOCA_OPERATOR_TOKEN), checked as the API
    checks it and held to that operator's role; returns (actor, operator).
    Without a token: refused where approvals are configured (or ``always``),
    else the local Unix user, as for the CA's commands."""
    from ra.roles import AuthenticationError, authorize

    token = operator_token(ctx.find_root().obj.get("operator_token_file"))
    if token is not None:
        user = service.users.by_token(token)
        if permission:
            authorize(user.name, user.role, permission)
        return user.actor, user
    if always or service.policy.configured():
        why = "this command" if always else "with approvals configured, this command"
        raise AuthenticationError(
            f"{why} acts as an RA operator: give its API token with "
            f"--operator-token-file FILE (mode 0600) or {OPERATOR_TOKEN_ENV}"
        )
    return actor(), None


@click.group(
    cls=ConfiguredGroup,
    epilog=examples(
        "revoca ra entity list",
        "revoca ra search --hostname www.example.com",
        "revoca ra --operator-token-file ann.token request approve 12",
    ),
)
@click.option(
    "--operator-token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Act as the RA operator whose API token this file (0600) holds "
    f"(or the token in {OPERATOR_TOKEN_ENV}); needed where approvals are configured.",
)
@click.pass_context
def ra(ctx, operator_token_file):
    """Registration authority: end entities, enrollment, approvals, search,
    reports, expiry notices, export and import, operators, the REST API."""
    ctx.find_root().obj["operator_token_file"] = operator_token_file


# -- operators -----------------------------------------------------------------


@ra.group(
    cls=ConfiguredGroup,
    epilog=examples(
        "revoca ra user add --name alice --role ra-officer --token-out alice.token",
        "revoca ra user list",
    ),
)
def user():
    """Operators of the RA API and their roles."""


@user.command(
    "add",
    epilog=examples(
        "revoca ra user add --name alice --role ra-officer --token-out alice.token",
        "revoca ra user add --name bob --role auditor --certificate bob.pem --no-token",
    ),
)
@click.option("--name", required=True, help="Operator name.")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the operator may do.")
@click.option("--certificate", "cert_path", help="Client certificate (PEM/DER) to sign in with.")
@click.option("--no-token", is_flag=True, help="No API token (client certificate only).")
@click.option("--token-out", help="Write the token to this file (0600) instead of stdout.")
@output_options()
@click.pass_context
@handle_errors
def user_add(ctx, name, role, cert_path, no_token, token_out):
    """Add an operator; its API token is shown this once. Where operator
    changes need approvals, this asks for it (the token works once approved).
    The first operator of an RA with none may be added without a token."""
    certificate = read_input(cert_path, "certificate") if cert_path else None
    service = _ra(ctx)
    if operator_token(ctx.find_root().obj.get("operator_token_file")) is None and (
        not service.users.any()
    ):
        if role != "administrator" and service.policy.configured():
            raise BadInputError("the first operator must be an administrator")
        by = actor()  # the bootstrap: no operator exists to act as
        result, token = service.users.create(
            name, role, with_token=not no_token, certificate=certificate, actor=by
        )
    else:
        by, _ = _operator(ctx, service, "user.manage")
        result, token = service.create_user(
            name, role, with_token=not no_token, certificate=certificate, actor=by
        )
    # The token goes to stdout without --token-out: nothing else does.
    _user_result(result, f"operator {name} ({role}) added", show=token_out is not None or not token)
    if token:
        write_output(token_out, (token + "\n").encode(), secret=token_out is not None)


USER_COLUMNS = [
    Column("name"),
    Column("role"),
    Column("status"),
    Column("has_token", "TOKEN"),
    Column("cert_fingerprint_sha256", "CERTIFICATE (SHA-256)", shrink=True),
    Column("created_at"),
]


def _user_result(result, done: str, *, show: bool = True) -> None:
    """A queued request's summary, or the changed operator's (``show``)."""
    from ra.approvals import ApprovalRequest

    if isinstance(result, ApprovalRequest):
        click.echo(
            f"request {result.id} waits for {result.required} approval(s); "
            "it is carried out when approved",
            err=True,
        )
        emit_object(result.summary())
        return
    click.echo(done, err=True)
    if show:
        emit_object(result.summary())


@user.command(
    "bootstrap",
    epilog=examples(
        "revoca ra user bootstrap --operator ann=administrator --operator bob=approver "
        "--token-dir tokens/",
    ),
)
@click.option(
    "--operator",
    "operators",
    multiple=True,
    required=True,
    help="NAME=ROLE (repeatable); at least one administrator.",
)
@click.option(
    "--token-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Each operator's token goes to NAME.token (0600) here.",
)
@click.pass_context
@handle_errors
def user_bootstrap(ctx, operators, token_dir):
    """The first operators of an RA that has none, at once (with approvals
    configured, enough of them to approve each other's later changes)."""
    pairs = []
    for item in operators:
        name, sep, role = item.partition("=")
        if not sep:
            raise BadInputError(f"--operator {item!r}: write it as NAME=ROLE")
        pairs.append((name, role))
    created = _ra(ctx).users.bootstrap(pairs, actor=actor())
    token_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for record, token in created:
        write_output(str(token_dir / f"{record.name}.token"), (token + "\n").encode(), secret=True)
        click.echo(f"operator {record.name} ({record.role}) added", err=True)


@user.command(
    "list",
    epilog=examples("revoca ra user list", "revoca ra user list --json | jq -r '.[].name'"),
)
@output_options(csv=True)
@click.pass_context
@handle_errors
def user_list(ctx):
    """Operators, their roles and how they sign in."""
    emit_rows([u.summary() for u in _ra(ctx).users.list()], USER_COLUMNS)


@user.command("disable", epilog=examples("revoca ra user disable alice"))
@click.argument("name")
@output_options()
@click.pass_context
@handle_errors
def user_disable(ctx, name):
    """Stop an operator from signing in (never the last active administrator)."""
    service = _ra(ctx)
    by, _ = _operator(ctx, service, "user.manage")
    _user_result(service.set_user_status(name, "disabled", actor=by), f"operator {name} disabled")


@user.command("enable", epilog=examples("revoca ra user enable alice"))
@click.argument("name")
@output_options()
@click.pass_context
@handle_errors
def user_enable(ctx, name):
    """Let a disabled operator sign in again (with approvals where configured)."""
    service = _ra(ctx)
    by, _ = _operator(ctx, service, "user.manage")
    result = service.set_user_status(name, "active", actor=by)
    _user_result(result, f"operator {name} enabled")


@user.command("role", epilog=examples("revoca ra user role alice approver"))
@click.argument("name")
@click.argument("role", type=click.Choice(ROLES))
@output_options()
@click.pass_context
@handle_errors
def user_role(ctx, name, role):
    """Change an operator's role (with approvals where configured; never
    demoting the last active administrator)."""
    service = _ra(ctx)
    by, _ = _operator(ctx, service, "user.manage")
    result = service.set_user_role(name, role, actor=by)
    _user_result(result, f"operator {name} is now {role}")


@user.command(
    "token",
    epilog=examples(
        "revoca ra user token --token-out me.token   # REVOCA_OPERATOR_TOKEN: the old one",
        "revoca ra user token alice --token-out alice.token",
    ),
)
@click.argument("name", required=False)
@click.option("--token-out", help="Write the new token to this file (0600) instead of stdout.")
@output_options()
@click.pass_context
@handle_errors
def user_token(ctx, name, token_out):
    """A new API token for NAME (default: the operator acting); the old one
    stops working. Another operator's waits for approvals where configured."""
    service = _ra(ctx)
    by, me = _operator(ctx, service, "", always=True)
    name = name or me.name
    if name != me.name:
        from ra.roles import authorize

        authorize(me.name, me.role, "user.manage")
    result, token = service.rotate_user_token(name, actor=by)
    _user_result(result, f"operator {name} has a new token", show=token_out is not None)
    write_output(token_out, (token + "\n").encode(), secret=token_out is not None)


@user.command("delete", epilog=examples("revoca ra user delete alice"))
@click.argument("name")
@click.pass_context
@handle_errors
def user_delete(ctx, name):
    """Delete an operator (never the last active administrator)."""
    service = _ra(ctx)
    by, _ = _operator(ctx, service, "user.manage")
    service.delete_user(name, actor=by)
    click.echo(f"operator {name} deleted", err=True)


# -- end entities ------------------------------------------------------------------


@ra.group(
    cls=ConfiguredGroup,
    epilog=examples("revoca ra entity list --name web", "revoca ra entity show web"),
)
def entity():
    """End entities: who may hold which certificates."""


@entity.command(
    "create",
    epilog=examples(
        "revoca ra entity create --name web --email ops@example.com --ca issuing \\",
        '    --profile tls-server --subject-template "CN={name}.example.com" \\',
        '    --allow-san "dns:*.web.example.com" --attribute team=web',
    ),
)
@click.option("--name", required=True, help="Name of the end entity (unique).")
@click.option("--email", required=True, help="Contact for notices about its certificates.")
@click.option("--ca", "ca_name", required=True, help="Issuing CA.")
@click.option("--profile", required=True, help="Certificate profile.")
@click.option(
    "--subject-template",
    required=True,
    help="RFC 4514 subject with {name}, {email}, {attribute}: 'CN={name},O=Example'.",
)
@click.option(
    "--allow-san",
    "allowed_sans",
    multiple=True,
    help="dns:host, dns:*.domain, ip:addr or CIDR, email:addr or *@domain, uri:prefix* "
    "(repeatable).",
)
@click.option("--attribute", "attributes", multiple=True, help="key=value (repeatable).")
@output_options()
@click.pass_context
@handle_errors
def entity_create(ctx, name, email, ca_name, profile, subject_template, allowed_sans, attributes):
    """Create an end entity."""
    service = _ra(ctx)
    by, _ = _operator(ctx, service, "entity.write")
    created = service.create_entity(
        name,
        email=email,
        ca=ca_name,
        profile=profile,
        subject_template=subject_template,
        allowed_sans=list(allowed_sans),
        attributes=_attributes(attributes),
        actor=by,
    )
    emit_object(created.summary())


@entity.command(
    "update",
    epilog=examples(
        "revoca ra entity update web --status disabled",
        'revoca ra entity update web --allow-san "dns:*.web.example.com" --email web@example.com',
    ),
)
@click.argument("name")
@click.option("--email", help="New contact for notices about its certificates.")
@click.option("--ca", "ca_name", help="New issuing CA.")
@click.option("--profile", help="New certificate profile.")
@click.option("--subject-template", help="New subject template ({name}, {email}, {attribute}).")
@click.option("--allow-san", "allowed_sans", multiple=True, help="Replaces the list (repeatable).")
@click.option(
    "--attribute", "attributes", multiple=True, help="key=value; replaces the attributes."
)
@click.option(
    "--status",
    type=click.Choice(["active", "disabled"]),
    help="disabled: no certificates are issued to it.",
)
@output_options()
@click.pass_context
@handle_errors
def entity_update(
    ctx, name, email, ca_name, profile, subject_template, allowed_sans, attributes, status
):
    """Change an end entity (only the options given)."""
    changes = {
        key: value
        for key, value in {
            "email": email,
            "ca": ca_name,
            "profile": profile,
            "subject_template": subject_template,
            "status": status,
        }.items()
        if value is not None
    }
    if allowed_sans:
        changes["allowed_sans"] = list(allowed_sans)
    if attributes:
        changes["attributes"] = _attributes(attributes)
    if not changes:
        raise click.UsageError("nothing to change")
    service = _ra(ctx)
    by, _ = _operator(ctx, service, "entity.write")
    emit_object(service.update_entity(name, changes, actor=by).summary())


@entity.command(
    "show",
    epilog=examples("revoca ra entity show web", "revoca ra entity show web --json"),
)
@click.argument("name")
@output_options()
@click.pass_context
@handle_errors
def entity_show(ctx, name):
    """One end entity and its certificates."""
    service = _ra(ctx)
    emit_object(
        {
            **service.get_entity(name).summary(),
            "certificates": [c.summary(now()) for c in service.entity_certificates(name)],
        },
        tables={"certificates": CERT_COLUMNS},
    )


ENTITY_COLUMNS = [
    Column("name"),
    Column("status"),
    Column("ca"),
    Column("profile"),
    Column("email", shrink=True),
    Column("updated_at"),
]


@entity.command(
    "list",
    epilog=examples(
        "revoca ra entity list --name web --status active",
        "revoca ra entity list --attribute team=web --csv > web.csv",
        "revoca ra entity list --after web-099 --limit 100",
    ),
)
@click.option("--name", "name_contains", help="Substring of the name.")
@click.option(
    "--status", type=click.Choice(["active", "disabled"]), help="Only end entities in it."
)
@click.option("--email", help="Contact email (exact, case-blind).")
@click.option("--ca", "ca_name", help="Issuing CA.")
@click.option("--profile", help="Certificate profile.")
@click.option("--attribute", "attributes", multiple=True, help="key=value (repeatable).")
@click.option("--after", help="Start after this name (the last of the previous page).")
@click.option("--limit", default=100, show_default=True, type=page_limit, help="At most this many.")
@output_options(csv=True)
@click.pass_context
@handle_errors
def entity_list(ctx, name_contains, status, email, ca_name, profile, attributes, after, limit):
    """End entities by name; filters combine."""
    entities = _ra(ctx).list_entities(
        name_contains=name_contains,
        status=status,
        email=email,
        ca=ca_name,
        profile=profile,
        attributes=_attributes(attributes),
        after=after,
        limit=limit,
    )
    emit_rows([e.summary() for e in entities], ENTITY_COLUMNS)


# -- certificates ----------------------------------------------------------------------


def _key_options(func):
    func = _passphrase_option("export", "REVOCA_EXPORT_PASSPHRASE")(func)
    func = click.option("--p12-out", help="Where the PKCS#12 goes (0600), with --generate-key.")(
        func
    )
    func = click.option(
        "--generate-key", type=click.Choice(KEY_SPECS), help="Make the key here (PKCS#12)."
    )(func)
    return click.option("--csr", "csr_path", help="PKCS#10 request, PEM or DER ('-': stdin).")(func)


def _export_passphrase(generate_key, p12_out, env, file) -> bytes | None:
    if not generate_key:
        return None
    if not p12_out:
        raise click.UsageError("--generate-key needs --p12-out FILE for the PKCS#12")
    return option_passphrase("export", env, file)


def _finish(result, out, p12_out) -> None:
    """The certificate (PEM) on stdout or in --out; or, when the request
    waits for approvers, the request (a key/value view, JSON with --json)."""
    from ra.approvals import ApprovalRequest

    if isinstance(result, ApprovalRequest):
        click.echo(
            f"request {result.id} waits for {plural(result.required, 'approval')}: "
            f"`revoca ra request approve {result.id}`",
            err=True,
        )
        emit_object(result.summary())
        return
    record = result.certificate
    click.echo(f"issued serial {record.summary()['serial']} ({record.subject})", err=True)
    if result.pkcs12 is not None:
        write_output(p12_out, result.pkcs12, secret=True)
    write_output(out, record.certificate.public_bytes(Encoding.PEM))


WAITING_JSON = "A request that waits for approvers is shown as JSON."


@ra.command(
    "enroll",
    epilog=examples(
        "revoca ra enroll --entity web --csr req.pem --out cert.pem",
        "REVOCA_EXPORT_PASSPHRASE=... revoca ra enroll --entity web --generate-key ec-p256 \\",
        "    --p12-out web.p12 --out web.pem",
    ),
)
@click.option("--entity", "entity_name", required=True, help="End entity to issue to.")
@_key_options
@click.option("--san", "sans", multiple=True, help="type:value (default: the CSR's).")
@click.option(
    "--days",
    type=click.IntRange(1),
    help="Validity in days (the profile decides the maximum).",
)
@click.option("--out", help="Write the certificate (PEM) here (default: stdout).")
@output_options(json_help=WAITING_JSON)
@click.pass_context
@handle_errors
def enroll(
    ctx,
    entity_name,
    csr_path,
    generate_key,
    p12_out,
    export_passphrase_env,
    export_passphrase_file,
    sans,
    days,
    out,
):
    """Issue to an end entity from a CSR, or with a key made here."""
    if bool(csr_path) == bool(generate_key):
        raise click.UsageError("give exactly one of --csr or --generate-key")
    passphrase = _export_passphrase(
        generate_key, p12_out, export_passphrase_env, export_passphrase_file
    )
    service = _ra(ctx)
    by, _ = _operator(ctx, service, "certificate.enroll")
    result = service.enroll(
        entity_name,
        csr=read_input(csr_path, "CSR") if csr_path else None,
        key_type=generate_key,
        passphrase=passphrase,
        sans=list(sans) if sans else None,
        days=days,
        actor=by,
    )
    _finish(result, out, p12_out)


@ra.command(
    "renew",
    epilog=examples(
        "revoca ra renew --ca issuing --serial 3fbb... --out new.pem",
        "revoca ra renew --ca issuing --serial 3fbb... --csr new-key.pem --out new.pem",
    ),
)
@click.option("--ca", "ca_name", required=True, help="The CA that issued the certificate.")
@click.option("--serial", required=True, help="Serial (hex) of the certificate to renew.")
@_key_options
@click.option(
    "--days",
    type=click.IntRange(1),
    help="Validity in days (the profile decides the maximum).",
)
@click.option("--out", help="Write the certificate (PEM) here (default: stdout).")
@output_options(json_help=WAITING_JSON)
@click.pass_context
@handle_errors
def renew(
    ctx,
    ca_name,
    serial,
    csr_path,
    generate_key,
    p12_out,
    export_passphrase_env,
    export_passphrase_file,
    days,
    out,
):
    """A new certificate for the same end entity: same key unless --csr or --generate-key."""
    if csr_path and generate_key:
        raise click.UsageError("give at most one of --csr or --generate-key")
    passphrase = _export_passphrase(
        generate_key, p12_out, export_passphrase_env, export_passphrase_file
    )
    service = _ra(ctx)
    by, _ = _operator(ctx, service, "certificate.renew")
    result = service.renew(
        ca_name,
        parse_serial(serial),
        csr=read_input(csr_path, "CSR") if csr_path else None,
        key_type=generate_key,
        passphrase=passphrase,
        days=days,
        actor=by,
    )
    _finish(result, out, p12_out)


@ra.command(
    "revoke",
    epilog=examples("revoca ra revoke --ca issuing --serial 3fbb... --reason superseded"),
)
@click.option("--ca", "ca_name", required=True, help="The CA that issued the certificate.")
@click.option("--serial", required=True, help="Serial number in hex.")
@click.option("--reason", required=True, help="RFC 5280 name, e.g. keyCompromise, superseded.")
@output_options(json_help="JSON for scripts (the certificate, or the request that waits).")
@click.pass_context
@handle_errors
def revoke(ctx, ca_name, serial, reason):
    """Revoke a certificate (the profile decides which reasons are allowed)."""
    service = _ra(ctx)
    by, _ = _operator(ctx, service, "certificate.revoke")
    result = service.revoke(ca_name, parse_serial(serial), reason, actor=by)
    emit_object(
        result.summary(now()) if isinstance(result, CertificateRecord) else result.summary()
    )


@ra.command(
    "cert",
    epilog=examples(
        "revoca ra cert --ca issuing --serial 3fbb... --out cert.pem",
        "revoca ra cert --ca issuing --serial 3fbb... --chain > chain.pem",
    ),
)
@click.option("--ca", "ca_name", required=True, help="The CA that issued the certificate.")
@click.option("--serial", required=True, help="Serial number in hex.")
@click.option("--chain", is_flag=True, help="The certificate followed by its CA chain (PEM).")
@click.option("--out", help="Write it here (default: stdout).")
@click.pass_context
@handle_errors
def cert_command(ctx, ca_name, serial, chain, out):
    """Fetch a certificate (PEM), or with --chain its chain too."""
    service = _ra(ctx)
    by, _ = _operator(ctx, service, "certificate.read")
    data = service.export(ca_name, parse_serial(serial), "pem-chain" if chain else "pem", actor=by)
    write_output(out, data)


# -- approvals -----------------------------------------------------------------------


@ra.group(
    cls=ConfiguredGroup,
    epilog=examples("revoca ra request list --status pending", "revoca ra request approve 42"),
)
def request():
    """Requests waiting for approvers."""


REQUEST_COLUMNS = [
    Column("id", align=">"),
    Column("kind"),
    Column("entity"),
    Column("status"),
    Column("approvals", align=">"),
    Column("requester"),
    Column("created_at"),
    Column("expires_at"),
]


def _approvals(row: dict) -> dict:
    """A request for a table: APPROVALS given/required."""
    return {**row, "approvals": f"{len(row['approvers'])}/{row['required']}"}


@request.command(
    "list",
    epilog=examples(
        "revoca ra request list --status pending",
        "revoca ra request list --after 100 --limit 50 --json",
    ),
)
@click.option(
    "--status",
    type=click.Choice(["pending", "approved", "done", "rejected", "expired", "failed"]),
    help="Only requests in it.",
)
@click.option("--after", type=click.IntRange(0, 2**62), help="Start after this request id.")
@click.option("--limit", default=100, show_default=True, type=page_limit, help="At most this many.")
@output_options(csv=True)
@click.pass_context
@handle_errors
def request_list(ctx, status, after, limit):
    """Requests, oldest first."""
    found = _ra(ctx).approvals.list(status=status, after=after, limit=limit)
    emit_rows([r.summary() for r in found], REQUEST_COLUMNS, view=_approvals)


@request.command(
    "show", epilog=examples("revoca ra request show 42", "revoca ra request show 42 --json")
)
@click.argument("request_id", type=int)
@output_options()
@click.pass_context
@handle_errors
def request_show(ctx, request_id):
    """One request and its approvals."""
    emit_object(_ra(ctx).approvals.get(request_id).summary())


@request.command("approve", epilog=examples("revoca ra request approve 42"))
@click.argument("request_id", type=int)
@output_options()
@click.pass_context
@handle_errors
def request_approve(ctx, request_id):
    """Approve as the RA operator whose token is given (never your own
    request); the operator's role must allow approving."""
    service = _ra(ctx)
    by, _ = _operator(ctx, service, "request.approve", always=True)
    emit_object(service.approve(request_id, actor=by).summary())


@request.command(
    "pkcs12",
    epilog=examples("REVOCA_EXPORT_PASSPHRASE=... revoca ra request pkcs12 42 --out key.p12"),
)
@click.argument("request_id", type=int)
@click.option("--out", required=True, help="Where the PKCS#12 goes (0600).")
@_passphrase_option("export", "REVOCA_EXPORT_PASSPHRASE")
@click.pass_context
@handle_errors
def request_pkcs12(ctx, request_id, out, export_passphrase_env, export_passphrase_file):
    """The key made for an approved request, as PKCS#12, under the passphrase
    given with the enrollment (its requester, or an administrator)."""
    passphrase = option_passphrase("export", export_passphrase_env, export_passphrase_file)
    service = _ra(ctx)
    by, me = _operator(ctx, service, "certificate.enroll", always=True)
    data = service.request_pkcs12(
        request_id, passphrase, actor=by, administrator=me.role == "administrator"
    )
    write_output(out, data, secret=True)


@request.command(
    "reject",
    epilog=examples('revoca ra request reject 42 --reason "not our domain"'),
)
@click.argument("request_id", type=int)
@click.option("--reason", required=True, help="Why (kept with the request).")
@output_options()
@click.pass_context
@handle_errors
def request_reject(ctx, request_id, reason):
    """Reject with a reason, as the RA operator whose token is given."""
    service = _ra(ctx)
    by, _ = _operator(ctx, service, "request.approve", always=True)
    emit_object(service.reject(request_id, reason, actor=by).summary())


# -- the API ---------------------------------------------------------------------------


@ra.command(
    "serve",
    epilog=examples("revoca ra serve", "revoca ra serve --host 0.0.0.0 --port 8443"),
)
@click.option("--host", help="Listen address. Default: [ra] host.")
@click.option("--port", type=click.IntRange(0, 65535), help="Listen port. Default: [ra] port.")
@click.option(
    "--seconds", type=click.FloatRange(min=0), help="Stop after this long (default: until Ctrl-C)."
)
@click.pass_context
@handle_errors
def serve(ctx, host, port, seconds):
    """Run the RA's REST API (OpenAPI document at /api/openapi.json)."""
    config = config_of(ctx)
    settings = config.ra
    service = _ra(ctx)
    # Every change is audited: no key, the wrong passphrase or another node's
    # key stops the server now rather than its first write.
    service.audit.check_key()
    asyncio.run(
        serve_api(
            service,
            settings,
            host or settings.host,
            settings.port if port is None else port,
            seconds,
            config.passphrase,
        )
    )


def ra_tls_context(settings: RASettings, passphrase: PassphraseSource):
    """The API listener's TLS context, or None for plain HTTP."""
    if not settings.tls:
        return None
    import ssl

    from ra.listen import tls_context

    try:
        key_pem = settings.tls_key.read_bytes()
        password = passphrase.get() if b"ENCRYPTED" in key_pem else None
        return tls_context(settings.tls_cert, settings.tls_key, settings.tls_client_ca, password)
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        where = getattr(exc, "filename", None) or "the [ra] TLS files"
        raise ConfigError(
            f"cannot load the RA API's TLS certificate and key ({where}): {reason}"
        ) from None


async def serve_api(service, settings, host, port, seconds, passphrase, sock=None) -> None:
    """The RA API until ``seconds`` have passed (None: until cancelled), on
    host:port or on ``sock`` (bound by the caller)."""
    from common.httpguard import Limits
    from common.listen import PortInUseError
    from ra.api import RAApi
    from ra.listen import start

    limits = Limits(request_timeout=settings.request_timeout, idle_timeout=settings.idle_timeout)
    api = RAApi(service, threads=settings.threads, limits=limits)
    try:
        runner, bound = await start(
            api, host, port, ra_tls_context(settings, passphrase), sock=sock
        )
    except PortInUseError as exc:  # a configuration problem: pick another address or port
        raise ConfigError(exc.strerror) from None
    scheme = "https" if settings.tls else "http"
    click.echo(f"RA API on {scheme}://{host}:{bound}/api/ (OpenAPI: /api/openapi.json)", err=True)
    try:
        if seconds is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(seconds)
    finally:
        await runner.cleanup()
