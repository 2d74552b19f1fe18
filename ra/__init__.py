"""Registration authority: end entities, enrollment, approvals, search, reports.

Uses ``ca``; never ``publisher`` or ``va`` (docs/ARCHITECTURE.md).
"""
