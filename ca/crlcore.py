"""The CRL encoder's public face: native ``ca._crlcore`` or the twin
``ca._crlcore_py`` (``REVOCA_NO_EXTENSIONS=1`` forces the twin)."""

import os

from ca import _crlcore_py

if os.environ.get("REVOCA_NO_EXTENSIONS"):
    _impl = _crlcore_py
else:
    try:
        from ca import _crlcore as _impl
    except ImportError:  # not compiled
        _impl = _crlcore_py

IMPLEMENTATION = "native" if _impl is not _crlcore_py else "python"
API = ("CRLEntryWriter", "NO_DATE", "NO_REASON", "encode_time", "serial_content")
globals().update({name: getattr(_impl, name) for name in API})

__all__ = ["API", "IMPLEMENTATION", *API]
