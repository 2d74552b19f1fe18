"""Claiming the ports a VA listens on, before its workers bind them.

The workers of one VA share the OCSP port with SO_REUSEPORT, so the kernel
spreads connections over them. SO_REUSEPORT lets any process of the same
user join: a second VA (another data directory, or a stale instance) would
silently take half of the connections and answer them from its own store.
So before any worker binds, the VA claims each port twice:

- a name in Linux's abstract socket namespace, ``revoca-va-port:<port>``,
  held for the VA's life and released by the kernel when it dies (no stale
  lock file): a second VA fails here;
- a bind of the port without SO_REUSEPORT, closed at once: any other
  listener, with or without SO_REUSEPORT, makes it fail.
"""

import errno
import socket

from common.listen import PortInUseError, family, port_error


def _probe(host: str, port: int) -> None:
    """Refuse a port someone listens on (or that cannot be bound)."""
    probe = socket.socket(family(host), socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
        probe.bind((host, port))
    except OSError as exc:
        raise port_error(exc, host, port) from None
    finally:
        probe.close()


class PortClaim:
    """The VA's hold on its ports; ``close()`` (or process exit) releases them."""

    def __init__(self):
        self.names: list[socket.socket] = []

    def claim(self, host: str, port: int, what: str = "") -> None:
        if port == 0:
            return  # any free port: nobody else can have it
        name = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            name.bind(f"\0revoca-va-port:{port}")
        except OSError as exc:
            name.close()
            if exc.errno != errno.EADDRINUSE:
                raise
            raise PortInUseError(
                exc.errno, f"port {host}:{port} is in use by another revoca VA{what}"
            ) from None
        self.names.append(name)
        try:
            _probe(host, port)
        except PortInUseError as exc:
            raise PortInUseError(exc.errno, f"{exc.strerror}{what}") from None

    def close(self) -> None:
        for name in self.names:
            name.close()
        self.names.clear()
