"""Certificate authority: keys, CA hierarchy, profiles, issuance, revocation.

Imports nothing from ``ra``, ``publisher`` or ``va`` (docs/ARCHITECTURE.md).
"""
