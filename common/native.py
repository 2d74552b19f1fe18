"""Choosing between a native module and its pure-Python twin.

Every native module (``va._fastocsp``, ``va._fastlane``, ``va._evpsign``,
``ca._crlcore``) sits behind a plain-Python façade that binds each public
name explicitly, from the twin first and then, when allowed and built, from
the native module (aiohttp's ``_http_parser`` imports are the model). This
is the one place that says whether the native module is allowed:
``REVOCA_NO_EXTENSIONS=1`` forces every twin (aiohttp's
``AIOHTTP_NO_EXTENSIONS``).
"""

import importlib
import os
from types import ModuleType

ENVIRONMENT = "REVOCA_NO_EXTENSIONS"


def extensions_allowed() -> bool:
    """False when ``REVOCA_NO_EXTENSIONS`` is set to anything but "" or "0"."""
    return os.environ.get(ENVIRONMENT, "") in ("", "0")


def load(name: str) -> ModuleType | None:
    """The native module ``name``, or None when extensions are switched off or
    it is not built (a source checkout without ``build_ext``, an optional
    extension that did not compile)."""
    if not extensions_allowed():
        return None
    try:
        return importlib.import_module(name)
    except ImportError:
        return None
