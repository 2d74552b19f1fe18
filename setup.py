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


def _system_library(name: str) -> list[str]:
    """Link against the shared library Python itself loads, by its soname,
    so no -dev package is needed: libsqlite3.so.0 (sqlite3; the CRL row
    reader steps SQLite statements in C) and libcrypto.so.3 (hashlib; the
    responder's signer, va/_evpsign.pyx)."""
    import ctypes.util

    found = ctypes.util.find_library(name)
    return [":" + found] if found and found.startswith("lib") and ".so" in found else [name]


def _extension(name: str, source: str, **options) -> Extension:
    return Extension(
        name,
        [source],
        define_macros=macros,
        extra_compile_args=cflags,
        extra_link_args=ldflags,
        **options,
    )


extensions = [
    _extension("va._fastocsp", "va/_fastocsp.pyx"),
    _extension("va._fastlane", "va/_fastlane.pyx"),
    # Optional: without it cryptography signs (va/signing.py), slower, the
    # same responses; a machine without libcrypto.so.3 still installs.
    _extension(
        "va._evpsign", "va/_evpsign.pyx", libraries=_system_library("crypto"), optional=True
    ),
    # The CRL entry encoder (a codec: no store) and, beside it, the reader
    # that steps the store's SQLite SELECT in C and hands it packed rows.
    _extension("ca._crlcore", "ca/_crlcore.pyx"),
    _extension("ca._crlsqlite", "ca/_crlsqlite.pyx", libraries=_system_library("sqlite3")),
]

# The project root, so `cimport common._dertime` (a .pxd shared by the native
# modules of several roles) is found wherever the build runs from.
ROOT = os.path.dirname(os.path.abspath(__file__))

setup(
    ext_modules=cythonize(
        extensions,
        include_path=[ROOT],
        compiler_directives=directives,
        annotate=os.environ.get("REVOCA_ANNOTATE") == "1",
    ),
)
