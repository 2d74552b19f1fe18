"""Build the native core.

Environment switches:
  REVOCA_DEBUG_BUILD=1   line tracing, C assertions, -O0 -g (for coverage and gdb)
  REVOCA_ANNOTATE=1      write Cython's annotated HTML next to each .pyx
  REVOCA_ASAN=1          build with AddressSanitizer (run with LD_PRELOAD=libasan)
"""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup

debug = os.environ.get("REVOCA_DEBUG_BUILD") == "1"
asan = os.environ.get("REVOCA_ASAN") == "1"

directives = {
    "language_level": 3,
    # The reader checks every offset itself; keep Cython's own checks on too,
    # so any memoryview or list index added later is covered as well.
    "boundscheck": True,
    "wraparound": False,
    "cdivision": True,
    "embedsignature": True,
}
macros = []
cflags = ["-O2"]
ldflags = []
if debug:
    directives["linetrace"] = True
    macros += [("CYTHON_TRACE_NOGIL", "1")]
    cflags = ["-O0", "-g", "-UNDEBUG"]
if asan:
    cflags += ["-fsanitize=address", "-fno-omit-frame-pointer", "-g"]
    ldflags += ["-fsanitize=address"]


def _sqlite_library() -> list[str]:
    """The CRL core steps SQLite statements in C, against the same shared
    library Python's sqlite3 module uses (libsqlite3-dev is not needed)."""
    import ctypes.util

    found = ctypes.util.find_library("sqlite3")
    return [":" + found] if found and found.startswith("lib") and ".so" in found else ["sqlite3"]


def _crypto_library() -> list[str]:
    """The responder's signer (va/_evpsign.pyx) calls the libcrypto.so.3
    Python's hashlib loads (libssl-dev is not needed)."""
    import ctypes.util

    found = ctypes.util.find_library("crypto")
    return [":" + found] if found and found.startswith("lib") and ".so" in found else ["crypto"]


extensions = [
    Extension(
        "va._fastocsp",
        ["va/_fastocsp.pyx"],
        define_macros=macros,
        extra_compile_args=cflags,
        extra_link_args=ldflags,
    ),
    Extension(
        "va._evpsign",
        ["va/_evpsign.pyx"],
        libraries=_crypto_library(),
        # Without it cryptography signs (va/signing.py): slower, the same
        # responses; a machine without libcrypto.so.3 still installs.
        optional=True,
        define_macros=macros,
        extra_compile_args=cflags,
        extra_link_args=ldflags,
    ),
    Extension(
        "ca._crlcore",
        ["ca/_crlcore.pyx"],
        libraries=_sqlite_library(),
        define_macros=macros,
        extra_compile_args=cflags,
        extra_link_args=ldflags,
    ),
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        annotate=os.environ.get("REVOCA_ANNOTATE") == "1",
    ),
)
