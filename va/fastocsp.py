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

# The API both implementations provide (tests check they agree on it).
API = (
    "DEFAULT_MAX_CERTIDS",
    "DEFAULT_MAX_DEPTH",
    "EXTENDED_REVOKE_EXTENSION",
    "HASH_SHA1",
    "HASH_SHA256",
    "HASH_SHA384",
    "HASH_SHA512",
    "HASH_UNKNOWN",
    "INTERNAL_ERROR",
    "MALFORMED_REQUEST",
    "NO_REASON",
    "SIG_REQUIRED",
    "SIMPLE_MAX",
    "STATUS_GOOD",
    "STATUS_REVOKED",
    "STATUS_UNKNOWN",
    "TRY_LATER",
    "UNAUTHORIZED",
    "encode_cert_status",
    "encode_certid",
    "encode_nonce_extension",
    "encode_fresh_response_data",
    "encode_ocsp_response",
    "encode_ocsp_responses",
    "encode_response_data",
    "encode_response_data_many",
    "encode_single_response",
    "generalized_time",
    "parse_der",
    "parse_ocsp_request",
    "read_tlv",
    "simple_request",
)
globals().update({name: getattr(_impl, name) for name in API})

__all__ = ["API", "IMPLEMENTATION", *API]
