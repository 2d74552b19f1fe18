"""What a VA answers for one issuer: the policies of RFC 6960, RFC 9654 and
the CA/Browser Forum Baseline Requirements that differ between deployments.

Each issuer record in the VA's store (va/store.py) carries them; they are
read and checked here, in one place, whether they come from the
configuration (``[va]`` defaults applied by ``revoca va import``), from a
publisher (``PUT /publish/v2/issuers/<id>``) or from the store itself.
"""

import enum
from dataclasses import dataclass

from common.settings import SettingsError, build, setting

# CA/B Forum BR 4.9.10: OCSP responses valid at least 8 hours, at most 10 days.
MIN_VALIDITY, MAX_VALIDITY = 8 * 3600, 10 * 86400


class NoncePolicy(enum.Enum):
    """What a request's nonce (RFC 9654) gets."""

    ECHO = "echo"  # signed fresh, a nonce of 16 to 32 octets echoed (va/responder.py)
    IGNORE = "ignore"  # the pre-signed response, as RFC 9919 (lightweight profile) allows


class UnissuedPolicy(enum.Enum):
    """The answer for a serial the VA has no status for. RFC 6960 2.2 allows
    "revoked" with reason certificateHold at 1970-01-01T00:00:00Z and the
    extended revoked definition extension (4.4.8); BR 4.9.10 forbids "good"."""

    REVOKED = "revoked"
    UNKNOWN = "unknown"
    UNAUTHORIZED = "unauthorized"


class ResponderIdBy(enum.Enum):
    """How the response names its signer (RFC 6960 4.2.1 ResponderID)."""

    KEY = "key"  # byKey: SHA-1 of the signer's public key, RFC 9919's recommendation
    NAME = "name"  # byName: the signer's subject


@dataclass(frozen=True)
class IssuerPolicy:
    nonce_policy: NoncePolicy = setting(
        NoncePolicy.ECHO,
        '"echo" signs a fresh response and echoes a nonce of 16 to 32 octets (RFC 9654; '
        'other lengths get the pre-signed response, as its 2.1 allows); "ignore" serves '
        "the pre-signed response (RFC 9919), the cheaper answer.",
    )
    unissued: UnissuedPolicy = setting(
        UnissuedPolicy.REVOKED,
        'Answer for a serial the CA never issued: "revoked" (RFC 6960 2.2, certificateHold '
        'at 1970-01-01 with the extended revoked definition; the BR forbid "good"), '
        '"unknown", or "unauthorized".',
    )
    responder_id: ResponderIdBy = setting(
        ResponderIdBy.KEY,
        '"key" (ResponderID byKey, RFC 9919\'s recommendation) or "name" (byName).',
    )
    response_validity_hours: int = setting(
        96,
        "nextUpdate - thisUpdate of every response, 8 to 240 hours (BR 4.9.10); responses "
        "are re-signed after half of it has passed, so a VA that stops being fed keeps "
        "answering for at least half of it.",
        minimum=MIN_VALIDITY // 3600,
        maximum=MAX_VALIDITY // 3600,
    )

    @property
    def validity_seconds(self) -> int:
        return self.response_validity_hours * 3600

    def record(self) -> dict:
        """The policy fields of an issuer record (va/store.py, the publish protocol)."""
        return {
            "nonce_policy": self.nonce_policy.value,
            "unissued": self.unissued.value,
            "responder_id": self.responder_id.value,
            "response_validity_hours": self.response_validity_hours,
        }

    @classmethod
    def of_record(cls, record: dict, what: str) -> "IssuerPolicy":
        """The policies of an issuer record, missing ones at their defaults;
        a wrong one raises SettingsError naming ``what``.field. Records
        written before the validity was kept in hours carry
        ``validity_seconds``: a whole number of hours is taken as such."""
        fields = {key: record[key] for key in _RECORD_KEYS if key in record}
        seconds = record.get("validity_seconds")
        if "response_validity_hours" not in fields and seconds is not None:
            if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds % 3600:
                raise SettingsError(f"{what}.validity_seconds", "must be a whole number of hours")
            fields["response_validity_hours"] = seconds // 3600
        return build(cls, fields, what)


_RECORD_KEYS = ("nonce_policy", "unissued", "responder_id", "response_validity_hours")


__all__ = [
    "MAX_VALIDITY",
    "MIN_VALIDITY",
    "IssuerPolicy",
    "NoncePolicy",
    "ResponderIdBy",
    "SettingsError",
    "UnissuedPolicy",
]
