"""Revoca: certificate lifecycle manager and validation authority.

This package holds what wires the roles together: configuration loading,
logging, the ``revoca`` command line and the all-in-one demo.
"""

__version__ = "0.1.0"
