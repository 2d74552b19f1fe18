"""The HTTP fast lane's public face: the native recognizer ``va._fastlane``,
or its pure-Python twin ``va._fastlane_py`` (the same answer for every input).

Names are bound explicitly, from the twin and then, where ``common.native``
allows the native module and it is built, from it. ``REVOCA_NO_EXTENSIONS=1``
forces the twin; ``IMPLEMENTATION`` says which one is in use ("native" or
"python"). Types and docstrings: va/_fastlane.pyi.
"""

from common import native
from va._fastlane_py import SIMPLE_MAX, simple_request

__all__ = ("SIMPLE_MAX", "simple_request")

_native = native.load("va._fastlane")
if _native is not None:
    from va._fastlane import SIMPLE_MAX, simple_request

IMPLEMENTATION = "python" if _native is None else "native"
