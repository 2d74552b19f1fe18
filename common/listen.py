"""Listening sockets: bound once, with the backlog asked for, or refused
with an error that names the port.

A listener bound without SO_REUSEPORT excludes every other listener on its
address, so a second server on a busy port fails here, at start, instead of
sharing the port. Servers bind in the process that starts them (where an
error still reaches the operator) and hand the socket to the event loop
that serves it.

The backlog is the length of the queue of connections the kernel has
accepted and the server has not yet taken: a burst of new connections
larger than it is dropped (SYNs retried after a second). Linux silently
caps ``listen(2)``'s backlog at ``net.core.somaxconn``, so a larger setting
is reported once, not left to look as if it took effect.
"""

import errno
import logging
import socket
from pathlib import Path

log = logging.getLogger("revoca.listen")

SOMAXCONN = Path("/proc/sys/net/core/somaxconn")


class PortInUseError(OSError):
    """A port a server should listen on is taken (by another program, or by
    another instance), or cannot be bound at all; ``strerror`` says which,
    naming the address."""


def family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def port_error(exc: OSError, host: str, port: int, what: str = "") -> PortInUseError:
    """The operator's message for a failed bind of ``host:port``."""
    if exc.errno == errno.EADDRINUSE:
        return PortInUseError(exc.errno, f"port {host}:{port} is in use{what}")
    reason = exc.strerror or str(exc)
    return PortInUseError(exc.errno, f"cannot listen on {host}:{port}{what}: {reason}")


def somaxconn(path: Path = SOMAXCONN) -> int | None:
    """The kernel's cap on listen backlogs, or None where it cannot be read."""
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def effective_backlog(wanted: int, what: str, cap: int | None = None) -> int:
    """``wanted``, or the kernel's cap (logged once, as a warning) if that is lower."""
    cap = somaxconn() if cap is None else cap
    if cap is not None and wanted > cap:
        log.warning(
            "listen backlog capped by net.core.somaxconn",
            extra={"listener": what, "backlog": wanted, "somaxconn": cap},
        )
        return cap
    return wanted


def bind_listener(
    host: str, port: int, backlog: int, *, reuse_port: bool = False, what: str = ""
) -> socket.socket:
    """A non-blocking socket listening on ``host:port``. ``reuse_port`` is
    for the workers of one server sharing a port it has already claimed
    (va/ports.py); ``what`` names the listener in errors."""
    sock = socket.socket(family(host), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise port_error(exc, host, port, what) from None
    sock.setblocking(False)
    return sock
