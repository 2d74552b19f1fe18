"""``revoca est``, ``revoca scep`` and ``revoca enroll``: the device
enrollment listeners (EST, RFC 7030; SCEP, RFC 8894), and ``revoca ra
secret``: the one-time enrollment secrets devices authenticate with."""

import asyncio

import click

from ca.errors import ConfigError
from revoca.cli_util import ConfiguredGroup, config_of, examples, handle_errors
from revoca.output import Column, emit_object, emit_rows, output_options


def build_enroll_service(config):
    from enroll.service import EnrollService
    from ra.approvals import ApprovalPolicy
    from ra.service import RAService
    from revoca.app import build_ca_service

    ca = build_ca_service(config)
    ra = RAService(ca, ApprovalPolicy.from_settings(config.ra))
    settings = config.enroll
    names = {c.name for c in ca.list_cas()}
    if settings.ca and settings.ca not in names:
        raise ConfigError(f"[enroll] ca names CA {settings.ca!r}, not held here")
    for label in settings.labels:
        if label.ca not in names:
            raise ConfigError(f"[enroll.labels.{label.name}] names CA {label.ca!r}, not held here")
        if label.profile and label.profile not in ca.profiles:
            raise ConfigError(
                f"[enroll.labels.{label.name}] names profile {label.profile!r}, not configured "
                f"(profiles: {', '.join(sorted(ca.profiles))})"
            )
    return EnrollService(ra, settings, config.passphrase.get())


async def serve_enroll(
    config, *, est: bool, scep: bool, seconds=None, socks=None, optional_est: bool = False
) -> None:
    """The EST (TLS) and SCEP (HTTP) listeners until ``seconds`` have passed
    (None: until cancelled). ``socks``: (est, scep) sockets bound already.
    ``optional_est`` (``revoca serve``): a node whose CAs cannot give the EST
    listener a certificate serves SCEP alone, and says why."""
    from common import listen
    from enroll.server import EnrollServer, start, tls_context
    from enroll.service import EnrollError

    settings = config.enroll
    service = build_enroll_service(config)
    service.ra.audit.check_key()
    server = EnrollServer(service, threads=settings.threads)
    est_sock, scep_sock = socks or (None, None)
    est = est and settings.est_port >= 0
    scep = scep and settings.scep_port >= 0
    runners = []
    try:
        if est:
            try:
                context = tls_context(
                    service, settings.tls_cert, settings.tls_key, config.passphrase.get()
                )
            except (OSError, ValueError, ConfigError, EnrollError) as exc:  # bootstrap anchors
                message = getattr(exc, "message", None) or str(exc)
                if not optional_est:
                    raise ConfigError(f"cannot set up the EST listener's TLS: {message}") from None
                click.echo(f"EST not served: {message}", err=True)
                est = False
        if est:
            if est_sock is None:
                est_sock = listen.bind_listener(
                    settings.host, settings.est_port, 256, what=" (EST)"
                )
            runners.append(await start(server, est_sock, est=True, scep=True, ssl_context=context))
            port = est_sock.getsockname()[1]
            click.echo(f"EST on https://{settings.host}:{port}/.well-known/est/", err=True)
        if scep:
            if scep_sock is None:
                scep_sock = listen.bind_listener(
                    settings.host, settings.scep_port, 256, what=" (SCEP)"
                )
            runners.append(await start(server, scep_sock, est=False, scep=True))
            port = scep_sock.getsockname()[1]
            click.echo(f"SCEP on http://{settings.host}:{port}/scep", err=True)
        if not runners:
            if optional_est:
                return
            raise ConfigError("no enrollment listener: est_port and scep_port are both -1")
        if seconds is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(seconds)
    finally:
        for runner in runners:
            await runner.cleanup()
        server.executor.shutdown(wait=False)


def bind_enroll(config):
    """(EST socket, SCEP socket) bound now, so a busy port stops a node at
    once; None for a listener that is off."""
    from common.listen import bind_listener

    settings = config.enroll
    est = scep = None
    if settings.est_port >= 0:
        est = bind_listener(settings.host, settings.est_port, 256, what=" (EST)")
    try:
        if settings.scep_port >= 0:
            scep = bind_listener(settings.host, settings.scep_port, 256, what=" (SCEP)")
    except BaseException:
        if est is not None:
            est.close()
        raise
    return est, scep


def _serve_command(group, name: str, *, est: bool, scep: bool, doc: str, sample: list[str]):
    @group.command("serve", help=doc, epilog=examples(*sample))
    @click.option(
        "--seconds",
        type=click.FloatRange(min=0),
        help="Stop after this long (default: until Ctrl-C).",
    )
    @click.pass_context
    @handle_errors
    def serve(ctx, seconds):
        asyncio.run(serve_enroll(config_of(ctx), est=est, scep=scep, seconds=seconds))

    return serve


@click.group(cls=ConfiguredGroup, epilog=examples("revoca est serve"))
def est():
    """EST (RFC 7030) over TLS: cacerts, csrattrs, simpleenroll,
    simplereenroll, serverkeygen."""


@click.group(cls=ConfiguredGroup, epilog=examples("revoca scep serve"))
def scep():
    """SCEP (RFC 8894): GetCACaps, GetCACert, PKCSReq, RenewalReq, CertPoll,
    GetCert, GetCRL."""


@click.group(cls=ConfiguredGroup, epilog=examples("revoca enroll serve"))
def enroll():
    """Device enrollment: EST on [enroll] est_port (TLS) and SCEP on
    scep_port (HTTP), together."""


_serve_command(
    est,
    "est",
    est=True,
    scep=False,
    doc="Run the EST listener ([enroll] host, est_port; TLS from tls_cert, or issued here).",
    sample=[
        "revoca est serve",
        "curl --cacert root.pem https://127.0.0.1:9443/.well-known/est/cacerts | "
        "base64 -d | openssl pkcs7 -inform DER -print_certs",
    ],
)
_serve_command(
    scep,
    "scep",
    est=False,
    scep=True,
    doc="Run the SCEP listener ([enroll] host, scep_port).",
    sample=[
        "revoca scep serve",
        "scepclient -server-url http://127.0.0.1:8089/scep -challenge SECRET "
        "-private-key dev.key -cn device-1",
    ],
)
_serve_command(
    enroll,
    "enroll",
    est=True,
    scep=True,
    doc="Run EST (TLS, est_port) and SCEP (HTTP, scep_port) together.",
    sample=["revoca enroll serve", "revoca enroll serve --seconds 60"],
)


# -- revoca ra secret ---------------------------------------------------------------


@click.group(
    "secret",
    cls=ConfiguredGroup,
    epilog=examples(
        "revoca ra secret create --entity router-7",
        "revoca ra secret list --entity router-7",
    ),
)
def secret():
    """One-time enrollment secrets for EST (HTTP Basic password) and SCEP
    (challenge password), made for an end entity."""


def _ra_and_actor(ctx, permission: str):
    from revoca.cli_ra import _operator, _ra

    service = _ra(ctx)
    return service, _operator(ctx, service, permission)[0]


@secret.command(
    "create",
    epilog=examples(
        "revoca ra secret create --entity router-7",
        "revoca ra secret create --entity router-7 --protocol scep --days 1 --json",
    ),
)
@click.option("--entity", required=True, help="The end entity the device enrolls as.")
@click.option(
    "--protocol",
    "protocols",
    multiple=True,
    type=click.Choice(["est", "scep"]),
    help="Only for this protocol (repeat for both; default: both).",
)
@click.option(
    "--days", type=click.IntRange(1, 90), default=7, show_default=True, help="Days it stays valid."
)
@output_options()
@click.pass_context
@handle_errors
def secret_create(ctx, entity, protocols, days):
    """Make a secret; it is shown once and kept only as a digest. It enrolls
    one device once: EST's Basic user is the entity's name, its password the
    secret; SCEP's challenge password is the secret."""
    service, by = _ra_and_actor(ctx, "entity.write")
    emit_object(
        service.create_secret(entity, protocols=protocols or ("est", "scep"), days=days, actor=by)
    )


@secret.command("list", epilog=examples("revoca ra secret list", "revoca ra secret list --json"))
@click.option("--entity", help="Only this end entity's.")
@output_options(csv=True)
@click.pass_context
@handle_errors
def secret_list(ctx, entity):
    """Enrollment secrets (never the secrets themselves): status (unused,
    used, revoked, expired), who made them, what used them."""
    from revoca.cli_ra import _ra

    emit_rows(
        _ra(ctx).list_secrets(entity),
        [
            Column("id", "ID"),
            Column("entity", "ENTITY"),
            Column("protocols", "PROTOCOLS"),
            Column("status", "STATUS"),
            Column("expires_at", "EXPIRES"),
            Column("used_by", "USED BY"),
        ],
    )


@secret.command("revoke", epilog=examples("revoca ra secret revoke es-0123456789abcdef"))
@click.argument("secret_id")
@click.pass_context
@handle_errors
def secret_revoke(ctx, secret_id):
    """Withdraw an unused secret."""
    service, by = _ra_and_actor(ctx, "entity.write")
    service.revoke_secret(secret_id, actor=by)
    click.echo(f"revoked {secret_id}")
