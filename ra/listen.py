"""Where the RA API listens: plain HTTP on 127.0.0.1 by default, or TLS
with optional client certificates (operators may sign in with them)."""

from pathlib import Path

from aiohttp import web

from ra.api import RAApi


async def start(api: RAApi, host: str, port: int, ssl_context=None) -> tuple[web.AppRunner, int]:
    """Listen on host:port (0: any free port); returns the runner and the port."""
    runner = web.AppRunner(api.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context, backlog=256)
    try:
        await site.start()
    except BaseException:  # a busy port: nothing left running (the API's threads too)
        await runner.cleanup()
        raise
    bound = site._server.sockets[0].getsockname()[1]
    return runner, bound


def tls_context(
    cert_file: str | Path, key_file: str | Path, client_ca_file: str | Path | None, passphrase=None
):
    """A TLS server context; with ``client_ca_file``, client certificates
    issued under it are asked for (optional: tokens still work)."""
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file, password=passphrase)
    if client_ca_file:
        context.load_verify_locations(client_ca_file)
        context.verify_mode = ssl.CERT_OPTIONAL
    return context
