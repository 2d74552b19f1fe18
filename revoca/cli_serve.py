"""``revoca serve``: the all-in-one node. The VA (OCSP, CRLs, CA downloads,
/metrics), the RA's REST API, and a co-located publisher that carries every
CA change into this VA's LMDB, on one event loop in the first VA worker."""

import click

from ca.errors import CAError
from revoca.cli_util import config_of, ensure_config, handle_errors


@click.command("serve")
@click.option("--seconds", type=float, help="Stop after this long (default: until Ctrl-C).")
@click.pass_context
@handle_errors
def serve(ctx, seconds):
    """VA, RA API and publisher together (settings: [va], [ra], [publisher])."""
    from dataclasses import replace

    from publisher.targets import LocalTarget
    from ra.approvals import ApprovalPolicy
    from ra.service import RAService
    from revoca.app import build_ca_service
    from revoca.cli_publisher import build_publisher
    from revoca.cli_ra import serve_api
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

    # Bound here, before the VA starts, so that a busy port stops the node at
    # once (exit 2) rather than leaving it serving without its RA API.
    from common.listen import bind_listener
    from ra.listen import BACKLOG

    ra_sock = bind_listener(config.ra.host, config.ra.port, BACKLOG, what=" (RA API)")

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
        )

    click.echo(
        f"VA on http://{settings.host}:{settings.port}/, RA API on "
        f"{config.ra.host}:{config.ra.port}/api/",
        err=True,
    )
    try:
        run(settings, config.passphrase.get(), stop_after=seconds, companion=companion)
    except (RuntimeError, ValueError, TokenError) as exc:
        raise CAError(str(exc)) from None
    finally:
        ra_sock.close()
