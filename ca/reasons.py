"""RFC 5280 5.3.1 CRLReason, with the wire values."""

from enum import IntEnum

from ca.errors import BadInputError


class RevocationReason(IntEnum):
    unspecified = 0
    keyCompromise = 1
    cACompromise = 2
    affiliationChanged = 3
    superseded = 4
    cessationOfOperation = 5
    certificateHold = 6
    # 7 is not used (RFC 5280 5.3.1).
    removeFromCRL = 8
    privilegeWithdrawn = 9
    aACompromise = 10

    @classmethod
    def parse(cls, name: str) -> "RevocationReason":
        """Accept the RFC name in any case, with or without separators, or its number."""
        if name.isdigit() and int(name) in cls._value2member_map_:
            return cls(int(name))
        folded = name.replace("-", "").replace("_", "").lower()
        for reason in cls:
            if reason.name.lower() == folded:
                return reason
        raise BadInputError(
            f"unknown revocation reason {name!r}; choose one of {', '.join(r.name for r in cls)}"
        )
