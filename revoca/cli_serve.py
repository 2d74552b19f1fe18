"""``revoca serve``: the all-in-one node. The VA (OCSP, CRLs, CA downloads,
/metrics), the RA's REST API, the ACME server, a co-located publisher that carries every
CA change into this VA's LMDB, and the timed jobs (CRLs, expiry notices,
revoca/schedules.py), on one event loop in the first VA worker."""

import click

from ca.errors import CAError
from revoca.cli_util import config_of, ensure_config, examples, handle_errors


@click.command(
    "serve", epilog=examples("revoca serve", "revoca --config node.toml serve --seconds 3600")
)
@click.option(
    "--seconds", type=click.FloatRange(min=0), help="Stop after this long (default: until Ctrl-C)."
)
@click.pass_context
@handle_errors
def serve(ctx, seconds):
    """VA, RA API, ACME server, EST and SCEP, publisher, CRL updater and
    expiry notices together (settings: [va], [ra], [acme], [enroll],
    [publisher], [crl], [notify])."""
    from dataclasses import replace

    from common.listen import bind_listener
    from publisher.targets import LocalTarget
    from ra.approvals import ApprovalPolicy
    from ra.listen import BACKLOG
    from ra.service import RAService
    from revoca import schedules
    from revoca.app import build_ca_service
    from revoca.cli_acme import acme_tls_context, serve_acme
    from revoca.cli_enroll import bind_enroll, serve_enroll
    from revoca.cli_publisher import build_publisher
    from revoca.cli_ra import ra_tls_context, serve_api
    from revoca.cli_ra_inventory import smtp_password
    from revoca.cli_va import va_settings
    from va.admin import TokenError
    from va.app import run

    ensure_config(ctx)
    config = config_of(ctx)
    settings = va_settings(config)
    # This node's publisher writes the LMDB directly; other publishers may
    # still use the admin listener if its token file exists.
    if settings.admin.port and not settings.admin.token_file.exists():
        settings = replace(settings, admin=replace(settings.admin, port=0))

    # The RA's changes are audited: no store (exit 3), no key, the wrong
    # passphrase or another node's key stops the node now (making the key if
    # the log has none yet).
    ca_service = build_ca_service(config)
    try:
        ca_service.audit.check_key()
    finally:
        ca_service.store.close()  # the workers fork: each opens its own

    password = smtp_password(config.notify)  # an unreadable file stops us here
    ra_tls_context(config.ra, config.passphrase)  # and so do unusable TLS files
    # Bound here, before the VA starts, so that a busy port stops the node at
    # once (exit 2) rather than leaving it serving without its RA API.
    ra_sock = bind_listener(config.ra.host, config.ra.port, BACKLOG, what=" (RA API)")
    acme_tls_context(config.acme, config.passphrase)
    try:
        acme_sock = bind_listener(config.acme.host, config.acme.port, BACKLOG, what=" (ACME)")
    except BaseException:
        ra_sock.close()
        raise
    try:
        enroll_socks = bind_enroll(config)
    except BaseException:
        ra_sock.close()
        acme_sock.close()
        raise

    async def companion(serving, wake):
        import asyncio

        target = LocalTarget(
            "local", store=serving.store, on_applied=serving.worker.after_write(wake)
        )
        service = RAService(build_ca_service(config), ApprovalPolicy.from_settings(config.ra))
        ra = config.ra
        await asyncio.gather(
            build_publisher(config, targets=[target]).run(),
            serve_api(service, ra, ra.host, ra.port, None, config.passphrase, sock=ra_sock),
            serve_acme(config, config.acme.host, config.acme.port, None, sock=acme_sock),
            serve_enroll(config, est=True, scep=True, socks=enroll_socks, optional_est=True),
            # CRLs on the [crl] schedule, expiry notices every [notify] interval.
            schedules.run_all(service.ca, service.store, config, password),
        )

    click.echo(
        f"VA on http://{settings.host}:{settings.port}/, RA API on "
        f"{config.ra.host}:{config.ra.port}/api/, ACME on "
        f"{config.acme.host}:{acme_sock.getsockname()[1]}/acme/",
        err=True,
    )
    try:
        run(settings, config.passphrase.get(), stop_after=seconds, companion=companion)
    except CAError:
        raise  # carries its code: a responder key 6, the LMDB store 8
    except (RuntimeError, ValueError, TokenError) as exc:
        raise CAError(str(exc)) from None
    finally:
        ra_sock.close()
        acme_sock.close()
        for sock in enroll_socks:
            if sock is not None:
                sock.close()
