"""``revoca publisher``: carry CA status changes to the VAs."""

import asyncio
import signal
from pathlib import Path

import click

from revoca.cli_util import ConfiguredGroup, config_of, echo_json, handle_errors


def build_targets(config):
    from publisher.targets import HTTPTarget, LocalTarget
    from va.admin import load_token

    targets = []
    for target in config.publisher["targets"]:
        if "local" in target:
            targets.append(LocalTarget(target["name"], Path(target["local"])))
        else:
            token = load_token(Path(target["token_file"]))
            context = None
            if target.get("client_cert"):
                from publisher.targets import client_tls_context

                context = client_tls_context(
                    Path(target["client_cert"]),
                    Path(target["client_key"]),
                    Path(target["ca_file"]),
                    key_passphrase=config.passphrase.get(),
                )
            targets.append(HTTPTarget(target["name"], target["url"], token, ssl_context=context))
    return targets


def build_publisher(config, targets=None):
    from publisher.outbox import Outbox
    from publisher.service import Publisher
    from revoca.app import open_store

    section = config.publisher
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
        source=section["source"],
        batch=section["batch"],
        poll_interval=float(section["poll_interval"]),
        issuers=issuers,
    )


@click.group(cls=ConfiguredGroup)
def publisher():
    """Carry every issuance and status change to every VA."""


@publisher.command("run")
@click.option("--seconds", type=float, help="Stop after this long (default: until SIGTERM).")
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
    asyncio.run(_serve(service, config.publisher, seconds))


async def _serve(service, section, seconds):
    from aiohttp import web

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, service.stop)
    runner = None
    if section["metrics_port"]:
        app = web.Application()

        async def metrics(_request):
            text = await asyncio.to_thread(service.metrics)
            return web.Response(text=text, content_type="text/plain")

        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, section["metrics_host"], section["metrics_port"]).start()
    if seconds is not None:
        loop.call_later(seconds, service.stop)
    try:
        await service.run()
    finally:
        if runner is not None:
            await runner.cleanup()


@publisher.command("status")
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

    echo_json(asyncio.run(gather()))
