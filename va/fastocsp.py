"""The OCSP core's public face: the native module, or its pure-Python twin.

Set ``REVOCA_NO_EXTENSIONS=1`` to force the twin (as aiohttp does with
``AIOHTTP_NO_EXTENSIONS``). ``IMPLEMENTATION`` says which one is in use.
"""

import os

from va import _fastocsp_py

if os.environ.get("REVOCA_NO_EXTENSIONS"):
    _impl = _fastocsp_py
else:
    try:
        from va import _fastocsp as _impl
    except ImportError:  # not compiled (e.g. a source checkout without build_ext)
        _impl = _fastocsp_py

IMPLEMENTATION = "native" if _impl is not _fastocsp_py else "python"

read_tlv = _impl.read_tlv
parse_der = _impl.parse_der
DEFAULT_MAX_DEPTH = _impl.DEFAULT_MAX_DEPTH

__all__ = ["DEFAULT_MAX_DEPTH", "IMPLEMENTATION", "parse_der", "read_tlv"]
