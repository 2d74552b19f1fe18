"""Certificate discovery: finding the certificates in use on networks, in
files and keystores, and in Kubernetes secrets (docs/ARCHITECTURE.md).

The scanners here contact only the targets they are given and return what
they saw (``discover.model``); they import nothing of the project but
``common``. Recording what was seen, matching it with the store and judging
it (findings) is the RA's (``ra/discovery.py``).
"""
