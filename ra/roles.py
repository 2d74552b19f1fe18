"""Roles of the RA's operators and the operations each may perform.

Least privilege, after the usual RA separation of duties: RA officers run
the end-entity lifecycle but manage no operators; approvers approve or
reject and read; auditors only read (including the audit log);
administrators do everything, operators included.
"""

from ca.errors import BadInputError, CAError

ADMINISTRATOR = "administrator"
RA_OFFICER = "ra-officer"
APPROVER = "approver"
AUDITOR = "auditor"
ROLES = (ADMINISTRATOR, RA_OFFICER, APPROVER, AUDITOR)

_READERS = frozenset(ROLES)
_OFFICERS = frozenset({ADMINISTRATOR, RA_OFFICER})

# operation -> the roles allowed to perform it
OPERATIONS: dict[str, frozenset[str]] = {
    "entity.read": _READERS,
    "entity.write": _OFFICERS,
    "certificate.read": _READERS,
    "certificate.enroll": _OFFICERS,
    "certificate.renew": _OFFICERS,
    "certificate.revoke": _OFFICERS,
    "inventory.import": _OFFICERS,
    "blocklist.read": _READERS,
    "blocklist.write": _OFFICERS,
    "request.read": _READERS,
    "report.read": _READERS,
    "request.approve": frozenset({ADMINISTRATOR, APPROVER}),
    "user.manage": frozenset({ADMINISTRATOR}),
    "audit.read": frozenset({ADMINISTRATOR, AUDITOR}),
}


class AuthenticationError(CAError):
    """No credentials, or credentials that match no active operator."""

    code = "unauthenticated"


class ForbiddenError(CAError):
    """The operator's role does not allow the operation."""

    code = "forbidden"


def check_role(role: str) -> str:
    if role not in ROLES:
        raise BadInputError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    return role


def authorize(user_name: str, role: str, operation: str) -> None:
    """Raise ForbiddenError unless ``role`` may perform ``operation``."""
    allowed = OPERATIONS[operation]
    if role not in allowed:
        raise ForbiddenError(
            f"{user_name!r} ({role}) may not perform {operation}; "
            f"allowed roles: {', '.join(sorted(allowed))}"
        )
