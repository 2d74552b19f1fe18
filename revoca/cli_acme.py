"""``revoca acme``: the ACME server (RFC 8555) and the external account
binding keys that tie its accounts to RA end entities."""

import asyncio

import click

from ca.errors import ConfigError
from revoca.cli_util import ConfiguredGroup, config_of, examples, handle_errors
from revoca.output import Column, emit_object, emit_rows, output_options


def directories_of(config, ca_service) -> dict:
    """The configured directories, or one per CA that is not self-signed
    (named after it, tls-server, EAB required). Each must name a CA held
    here and profiles for end entities."""
    from acmesrv.settings import Directory

    configured = config.acme.directories
    if not configured:
        configured = tuple(
            Directory(ca.name, ca.name, ("tls-server",))
            for ca in ca_service.list_cas()
            if ca.certificate.issuer != ca.certificate.subject
        )
    names = {ca.name for ca in ca_service.list_cas()}
    for d in configured:
        if d.ca not in names:
            raise ConfigError(
                f"[acme.directories.{d.name}] names CA {d.ca!r}, which is not held here"
            )
        for profile in d.profiles:
            found = ca_service.profiles.get(profile)
            if found is None or found.ca or profile in ("ocsp-signer", "scep-ra"):
                raise ConfigError(
                    f"[acme.directories.{d.name}] offers profile {profile!r}, which is not a "
                    "profile for end entities"
                )
    return {d.name: d for d in configured}


def build_acme_service(config, *, base_url: str):
    from acmesrv.service import AcmeService
    from ra.approvals import ApprovalPolicy
    from ra.service import RAService
    from revoca.app import build_ca_service

    ca = build_ca_service(config)
    ra = RAService(ca, ApprovalPolicy.from_settings(config.ra))
    return AcmeService(
        ra,
        config.acme,
        directories_of(config, ca),
        base_url,
        passphrase=config.passphrase.get(),
    )


@click.group(
    cls=ConfiguredGroup,
    epilog=examples(
        "revoca acme serve",
        "revoca acme eab create --entity web --directory issuing-ca",
        "revoca acme eab list --json",
    ),
)
def acme():
    """The ACME server (RFC 8555): directories, EAB keys, serving."""


@acme.command(
    "directories", epilog=examples("revoca acme directories", "revoca acme directories --json")
)
@output_options()
@click.pass_context
@handle_errors
def list_directories(ctx):
    """The ACME directories served, their CA, profiles and EAB rule."""
    config = config_of(ctx)
    from revoca.app import build_ca_service

    found = directories_of(config, build_ca_service(config))
    base = _base_url(config.acme, config.acme.port)
    rows = [
        {
            "name": d.name,
            "url": f"{base}/acme/{d.name}/directory",
            "ca": d.ca,
            "profiles": ", ".join(d.profiles),
            "eab": "required" if d.external_account_required else f"optional ({d.default_entity})",
        }
        for d in found.values()
    ]
    emit_rows(
        rows,
        [
            Column("name", "NAME"),
            Column("url", "URL"),
            Column("ca", "CA"),
            Column("profiles", "PROFILES"),
            Column("eab", "EAB"),
        ],
    )


@acme.group("eab", epilog=examples("revoca acme eab create --entity web", "revoca acme eab list"))
def eab():
    """External account binding keys (RFC 8555 7.3.4): one per account,
    made by an RA operator for an end entity."""


def _as_operator(ctx, service):
    from revoca.cli_ra import _operator

    return _operator(ctx, service.ra, "entity.write")[0]


@eab.command(
    "create",
    epilog=examples(
        "revoca acme eab create --entity web",
        "revoca acme eab create --entity web --directory issuing-ca --json",
        "certbot register --server URL --eab-kid KID --eab-hmac-key=KEY",
    ),
)
@click.option("--entity", required=True, help="The end entity the account will act for.")
@click.option("--directory", help="Only for this directory (default: any of the entity's CA).")
@output_options()
@click.pass_context
@handle_errors
def eab_create(ctx, entity, directory):
    """Make a key for one ACME account of an end entity. The MAC key is
    shown once; give it and the key id to the ACME client."""
    config = config_of(ctx)
    service = build_acme_service(config, base_url=_base_url(config.acme, config.acme.port))
    key_id, mac = service.create_eab_key(
        entity, directory=directory, actor=_as_operator(ctx, service)
    )
    emit_object(
        {
            "key_id": key_id,
            "hmac_key": mac,
            "entity": entity,
            "directory": directory or "any",
            "expires_in_days": config.acme.eab_key_days,
        }
    )


@eab.command("list", epilog=examples("revoca acme eab list", "revoca acme eab list --csv"))
@output_options(csv=True)
@click.pass_context
@handle_errors
def eab_list(ctx):
    """Every EAB key: its entity, status (unused, bound, revoked, expired), account."""
    config = config_of(ctx)
    service = build_acme_service(config, base_url=_base_url(config.acme, config.acme.port))
    emit_rows(
        service.list_eab_keys(),
        [
            Column("key_id", "KEY ID"),
            Column("entity", "ENTITY"),
            Column("directory", "DIRECTORY"),
            Column("status", "STATUS"),
            Column("account", "ACCOUNT"),
            Column("expires_at", "EXPIRES"),
        ],
    )


@eab.command("revoke", epilog=examples("revoca acme eab revoke kid-Abc123"))
@click.argument("key_id")
@click.pass_context
@handle_errors
def eab_revoke(ctx, key_id):
    """Withdraw an unused EAB key, so no account can be made with it."""
    config = config_of(ctx)
    service = build_acme_service(config, base_url=_base_url(config.acme, config.acme.port))
    service.revoke_eab_key(key_id, actor=_as_operator(ctx, service))
    click.echo(f"revoked {key_id}")


def _base_url(settings, port: int) -> str:
    if settings.base_url:
        return settings.base_url
    scheme = "https" if settings.tls_cert else "http"
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"{scheme}://{host}:{port}"


@acme.command(
    "serve",
    epilog=examples(
        "revoca acme serve",
        "revoca acme serve --port 14000",
        "certbot certonly --standalone -d www.example.com \\\n"
        "    --server http://127.0.0.1:8555/acme/issuing-ca/directory",
    ),
)
@click.option("--host", help="Listen address. Default: [acme] host.")
@click.option("--port", type=click.IntRange(0, 65535), help="Listen port. Default: [acme] port.")
@click.option(
    "--seconds", type=click.FloatRange(min=0), help="Stop after this long (default: until Ctrl-C)."
)
@click.pass_context
@handle_errors
def serve(ctx, host, port, seconds):
    """Run the ACME server: a directory per CA (or as [acme.directories]
    say), http-01, dns-01 and tls-alpn-01, renewal information, EAB."""
    config = config_of(ctx)
    asyncio.run(
        serve_acme(
            config,
            host or config.acme.host,
            config.acme.port if port is None else port,
            seconds,
        )
    )


def acme_tls_context(settings, passphrase):
    if settings.tls_cert is None:
        return None
    import ssl

    try:
        key_pem = settings.tls_key.read_bytes()
        password = passphrase.get() if b"ENCRYPTED" in key_pem else None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(settings.tls_cert, settings.tls_key, password=password)
        return context
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            f"cannot load the ACME listener's TLS certificate and key: {reason}"
        ) from None


def build_acme_server(config, base_url: str):
    """The ACME service and its HTTP front, every [acme] setting applied."""
    from acmesrv.server import AcmeServer
    from acmesrv.validation import ValidationSettings
    from common.httpguard import Limits

    settings = config.acme
    service = build_acme_service(config, base_url=base_url)
    server = AcmeServer(
        service,
        limits=Limits(
            request_timeout=settings.request_timeout,
            idle_timeout=settings.idle_timeout,
            max_connections=settings.max_connections,
            max_body=64 * 1024,
        ),
        threads=settings.threads,
        validation_settings=ValidationSettings(
            resolver=settings.resolver,
            http_port=settings.http_port,
            tls_port=settings.tls_port,
            timeout=settings.validation_timeout,
        ),
        concurrent_validations=settings.validations,
    )
    return service, server


async def serve_acme(config, host, port, seconds, sock=None) -> None:
    """The ACME server until ``seconds`` have passed (None: until cancelled)."""
    from dataclasses import replace

    from acmesrv.server import start
    from common import listen

    settings = config.acme
    context = acme_tls_context(settings, config.passphrase)
    if sock is None:
        sock = listen.bind_listener(host, port, 256, what=" (ACME)")
    bound = sock.getsockname()[1]
    service, server = build_acme_server(config, _base_url(replace(settings, host=host), bound))
    service.audit.check_key()
    runner = await start(server, sock, context)
    for name in service.directories:
        click.echo(f"ACME directory {service.url(name, 'directory')}", err=True)
    try:
        if seconds is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(seconds)
    finally:
        await runner.cleanup()
