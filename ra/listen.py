"""Where the RA API listens: plain HTTP on 127.0.0.1 by default, or TLS
with optional client certificates (operators may sign in with them)."""

from pathlib import Path

from aiohttp import web

from common import listen
from common.httpguard import start_guarded
from ra.api import RAApi

BACKLOG = 256


async def start(
    api: RAApi, host: str, port: int, ssl_context=None, *, sock=None
) -> tuple[web.AppRunner, int]:
    """Listen on host:port (0: any free port), or on ``sock`` if the caller
    bound it; returns the runner and the port. A port that cannot be bound
    raises PortInUseError, naming it."""
    if sock is None:
        sock = listen.bind_listener(host, port, BACKLOG, what=" (RA API)")
    bound = sock.getsockname()[1]
    runner = await start_guarded(api.app(), sock, api.guard, ssl_context, backlog=BACKLOG)
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
