"""Validation authority: certificate status in LMDB, OCSP and CRL serving.

Deployable alone: nothing here imports from ``ca``, ``ra`` or ``publisher``.
"""
