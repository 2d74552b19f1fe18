"""``revoca publisher``: carry CA status changes to the VAs."""

import asyncio
import signal

import click

from revoca.cli_util import ConfiguredGroup, config_of, examples, handle_errors
from revoca.output import emit_object, output_options


def build_targets(config, names: list[str] | None = None):
    """The configured VAs (``names``: only these), ready to deliver to."""
    from publisher.settings import LocalTargetSettings
    from publisher.targets import HTTPTarget, LocalTarget, client_tls_context
    from va.admin import load_token

    settings = config.publisher
    chosen = [settings.target(n) for n in names] if names else settings.targets
    targets = []
    for target in chosen:
        if isinstance(target, LocalTargetSettings):
            targets.append(LocalTarget(target.name, target.local))
            continue
        context = None
        if target.tls is not None:
            cert, key, ca_file = target.tls
            context = client_tls_context(cert, key, ca_file, key_passphrase=config.passphrase.get())
        targets.append(
            HTTPTarget(
                target.name,
                target.url,
                load_token(target.token_file),
                timeout=settings.http_timeout,
                ssl_context=context,
            )
        )
    return targets


def build_publisher(config, targets=None):
    from publisher.outbox import Outbox
    from publisher.service import Publisher
    from revoca.app import open_store

    issuers = []
    if targets is None:
        from revoca.app import build_ca_service
        from revoca.va_import import issuer_records

        service = build_ca_service(config)
        issuers = [
            (ca.id, record)
            for ca, record, _ in issuer_records(service, config.va.policy)
            if record is not None
        ]
    return Publisher(
        Outbox(open_store(config).engine),
        targets if targets is not None else build_targets(config),
        config.publisher,
        issuers=issuers,
    )


@click.group(
    cls=ConfiguredGroup,
    epilog=examples("revoca publisher run", "revoca publisher status"),
)
def publisher():
    """Carry every issuance and status change to every VA."""


@publisher.command(
    "run", epilog=examples("revoca publisher run", "revoca publisher run --seconds 60")
)
@click.option(
    "--seconds", type=click.FloatRange(min=0), help="Stop after this long (default: until SIGTERM)."
)
@click.pass_context
@handle_errors
def run(ctx, seconds):
    """Run the publisher service: follow the outbox, deliver to every VA, retry."""
    from ca.errors import CAError
    from va.admin import TokenError

    config = config_of(ctx)
    try:
        service = build_publisher(config)
    except TokenError as exc:
        raise CAError(str(exc)) from None
    asyncio.run(_serve(service, config.publisher.metrics, seconds))


async def _serve(service, metrics_settings, seconds, *, signals: bool = True):
    """Run ``service`` with its /metrics listener until stopped (SIGTERM,
    SIGINT when ``signals``, or after ``seconds``)."""
    from aiohttp import web

    from common import prometheus

    loop = asyncio.get_running_loop()
    if signals:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, service.stop)
    runner = None
    if metrics_settings.port:
        app = web.Application()

        async def metrics(_request):
            text = await asyncio.to_thread(service.metrics)
            return web.Response(text=text, headers={"Content-Type": prometheus.CONTENT_TYPE})

        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, metrics_settings.host, metrics_settings.port).start()
    if seconds is not None:
        loop.call_later(seconds, service.stop)
    try:
        await service.run()
    finally:
        if runner is not None:
            await runner.cleanup()


@publisher.command(
    "status", epilog=examples("revoca publisher status", "revoca publisher status --json")
)
@output_options()
@click.pass_context
@handle_errors
def status(ctx):
    """Lag and queue depth per VA, asked of each VA and of the outbox."""
    config = config_of(ctx)
    service = build_publisher(config)

    async def gather():
        out = {}
        last = service.outbox.last_id()
        for target in service.targets:
            try:
                high = await target.high_water(service.source)
                out[target.name] = {"high_water": high, "queue_depth": max(0, last - high)}
            except Exception as exc:  # an unreachable VA is a status, not a crash
                out[target.name] = {"error": str(exc)}
            finally:
                await target.close()
        return {"source": service.source, "outbox_last_id": last, "vas": out}

    emit_object(asyncio.run(gather()))


async def send_snapshots(config, targets) -> dict:
    """A snapshot of every CA that publishes, to each of ``targets`` in
    turn (publisher/snapshot.py): {VA name: its outcome or its error}."""
    from publisher.outbox import Outbox
    from publisher.snapshot import send_snapshot
    from publisher.targets import DeliveryError
    from revoca.app import open_store

    settings = config.publisher
    outbox = Outbox(open_store(config).engine)
    out = {}
    for target in targets:
        try:
            result = await send_snapshot(
                outbox, target, settings.source, chunk=settings.snapshot_chunk
            )
            result["statuses"] = sum(result["statuses"].values())
            out[target.name] = result
        except DeliveryError as exc:
            out[target.name] = {"error": exc.message}
        finally:
            await target.close()
    return out


@publisher.command(
    "snapshot",
    epilog=examples("revoca publisher snapshot", "revoca publisher snapshot --va va2 --json"),
)
@click.option("--va", "names", multiple=True, help="Only these VAs (default: every target).")
@output_options()
@click.pass_context
@handle_errors
def snapshot(ctx, names):
    """Send every certificate status, as of now, to the VAs: a VA that is new,
    restored from a backup, or suspected of drifting catches up without
    replaying the outbox. Safe while `publisher run` delivers: a VA never
    takes an older status over a newer one."""
    from ca.errors import CAError, ConfigError
    from common.settings import SettingsError
    from revoca.app import open_store
    from va.admin import TokenError

    config = config_of(ctx)
    open_store(config).close()  # no store: exit 3, before a target is opened
    try:
        targets = build_targets(config, list(names) or None)
    except SettingsError as exc:
        raise ConfigError(exc.message) from None
    except TokenError as exc:
        raise CAError(str(exc)) from None
    result = asyncio.run(send_snapshots(config, targets))
    emit_object({"source": config.publisher.source, "vas": result})
    if any("error" in outcome for outcome in result.values()):
        ctx.exit(1)
