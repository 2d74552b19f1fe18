"""Types of the HTTP fast lane's native recognizer ``va._fastlane``
(va/_fastlane.pyx). Its pure-Python twin ``va._fastlane_py`` gives the same
answer for every input; callers use the façade ``va.fastlane``."""

from typing import Final

SIMPLE_MAX: Final[int]
"""The largest request the lane takes, head and body (8192 bytes); the
server turns the lane off when its own limits are tighter."""

def simple_request(data: bytes, prefix: bytes) -> tuple[bool, bytes] | None:
    """``(is_post, value)`` for the simplest complete OCSP request, else None.

    One whole HTTP/1.1 request in ``data``, nothing before or after it:
    ``GET {prefix}/{encoded}`` (value: the encoded part) or ``POST
    {prefix}[/...]`` with ``Content-Type: application/ocsp-request`` and a
    ``Content-Length`` of exactly the body that follows (value: the body),
    at most 32 headers from a short list, ``SIMPLE_MAX`` bytes in all.
    Anything else is None: the full HTTP parser (httptools) takes it.
    TypeError unless ``data`` and ``prefix`` are bytes.
    """
