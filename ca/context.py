"""What every part of the CA service shares: the store, the crypto token,
the profiles, the base URL of the AIA and CRL URLs, the passphrase of keys
made here, the audit key, the clock, the random source, where delta CRLs
are published and the audit writer.

Time and randomness are passed in (tests pin both and compare outputs byte
for byte); nothing in the CA reads the global clock but ``utc_now``, the
default.
"""

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ca.errors import NotFoundError
from ca.keys import PassphraseSource
from ca.profiles import Profile
from ca.records import CARecord
from ca.token import CryptoToken
from store import Store
from store.audit import AuditLog
from store.audit_key import AuditKey


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class CAContext:
    store: Store
    token: CryptoToken
    profiles: dict[str, Profile]
    base_url: str
    passphrase: PassphraseSource
    # The audit log's HMAC key (store/audit_key.py), beside the CA keys.
    audit_key: AuditKey
    clock: Callable[[], datetime] = utc_now
    random_bytes: Callable[[int], bytes] = secrets.token_bytes
    # [crl] delta_url: where each CA's delta CRLs are published ({base},
    # {ca}); "" when there are none.
    delta_url: str = ""
    # The audit writer, shared with the RA: its records go into the caller's
    # transaction, timed by this clock.
    audit: AuditLog = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "audit", AuditLog(self.store, self.now_ms, self.audit_key))

    def now_ms(self) -> int:
        return int(self.clock().timestamp() * 1000)

    def delta_url_for(self, ca: CARecord) -> str:
        """Where ``ca`` publishes its delta CRLs, written into the FreshestCRL
        of its certificates ("" when it publishes none: deltas are off, or
        ``ca`` is a root made here, which signs ARLs)."""
        if not self.delta_url or ca.signs_arls:
            return ""
        return self.delta_url.format(base=self.base_url.rstrip("/"), ca=ca.name)

    def profile(self, name: str) -> Profile:
        try:
            return self.profiles[name]
        except KeyError:
            raise NotFoundError(
                f"no profile {name!r}; configured: {', '.join(sorted(self.profiles))}"
            ) from None
