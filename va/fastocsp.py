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
parse_ocsp_request = _impl.parse_ocsp_request
DEFAULT_MAX_DEPTH = _impl.DEFAULT_MAX_DEPTH
DEFAULT_MAX_CERTIDS = _impl.DEFAULT_MAX_CERTIDS
HASH_UNKNOWN, HASH_SHA1, HASH_SHA256, HASH_SHA384, HASH_SHA512 = 0, 1, 2, 3, 4

__all__ = [
    "DEFAULT_MAX_CERTIDS",
    "DEFAULT_MAX_DEPTH",
    "HASH_SHA1",
    "HASH_SHA256",
    "HASH_SHA384",
    "HASH_SHA512",
    "HASH_UNKNOWN",
    "IMPLEMENTATION",
    "parse_der",
    "parse_ocsp_request",
    "read_tlv",
]
