"""The CA's operations behind one object: create and import CAs, issue,
revoke, hold, release, look up, export, record inventory certificates.

``CAService`` is a façade over small parts that share one ``CAContext``
(ca/context.py: store, token, profiles, clock, random source, audit):

- ``Lookup`` (ca/lookup.py): the reads, and exports;
- ``IssuingPath`` (ca/issuing.py): the one way a certificate is signed and
  stored with its outbox event and audit record;
- ``Hierarchy`` (ca/hierarchy.py): roots, subordinate and imported CAs;
- ``Issuance`` (ca/issuance.py): certificates from CSRs, with keys made
  here, OCSP signers;
- ``Revocation`` (ca/revocation.py): revocations, holds, releases;
- ``Inventory`` (ca/inventory.py): certificates issued elsewhere;
- ``Blocklist`` (ca/blocklist.py): the compromised keys no certificate is
  issued for, fed by the revocations that compromise them and by imports.

Each change is one SQL transaction holding the certificate row, its outbox
event for the publisher and its audit record, so none exists without the
others; a refusal is audited in a transaction of its own and leaves
certificates and outbox untouched.
"""

import secrets
from collections.abc import Callable
from datetime import datetime

from ca.blocklist import Blocklist
from ca.context import CAContext, utc_now
from ca.hierarchy import Hierarchy, check_ca_name, load_certificate
from ca.inventory import Inventory
from ca.issuance import Issuance, ocsp_signer_subject
from ca.issuing import IssuingPath
from ca.keys import PassphraseSource
from ca.lookup import Lookup
from ca.profiles import Profile
from ca.revocation import Revocation
from ca.token import CryptoToken
from store import Store
from store.audit_key import AuditKey


class CAService:
    """Construct with a store, a crypto token, the profiles, the base URL for
    AIA/CRL URLs, the passphrase source for server-side keys, the audit log's
    HMAC key, and optionally a clock and a random source (tests pin both) and
    where delta CRLs are published ([crl] delta_url; certificates then carry
    FreshestCRL)."""

    def __init__(
        self,
        store: Store,
        token: CryptoToken,
        profiles: dict[str, Profile],
        *,
        base_url: str,
        passphrase: PassphraseSource,
        audit_key: AuditKey,
        clock: Callable[[], datetime] = utc_now,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
        delta_url: str = "",
    ):
        self.context = context = CAContext(
            store, token, profiles, base_url, passphrase, audit_key, clock, random_bytes, delta_url
        )
        lookup = Lookup(context)
        path = IssuingPath(context, lookup)
        hierarchy = Hierarchy(context, lookup, path)
        issuance = Issuance(context, lookup, path)
        revocation = Revocation(context, lookup)
        blocklist = Blocklist(context)
        # The public surface, bound one by one.
        self.get_ca = lookup.get_ca
        self.get_own_ca = lookup.get_own_ca
        self.list_cas = lookup.list_cas
        self.chain = lookup.chain
        self.get_certificate = lookup.get_certificate
        self.private_key_pem = lookup.private_key_pem
        self.list_certificates = lookup.list_certificates
        self.export = lookup.export
        self.init_root = hierarchy.init_root
        self.create_sub = hierarchy.create_sub
        self.import_ca = hierarchy.import_ca
        self.issue = issuance.issue
        self.issue_with_new_key = issuance.issue_with_new_key
        self.issue_request = issuance.issue_request
        self.check_request = issuance.check_request
        self.issue_ocsp_signer = issuance.issue_ocsp_signer
        self.revoke = revocation.revoke
        self.check_revocation = revocation.check_revocation
        self.release_hold = revocation.release_hold
        self.record_inventory = Inventory(context).record_inventory
        self.check_key = blocklist.check_key
        self.blocked_keys = blocklist.find
        self.list_blocked_keys = blocklist.entries
        self.import_blocked_keys = blocklist.import_keys
        self.profile = context.profile

    @property
    def store(self) -> Store:
        return self.context.store

    @property
    def token(self) -> CryptoToken:
        return self.context.token

    @property
    def profiles(self) -> dict[str, Profile]:
        return self.context.profiles

    @property
    def base_url(self) -> str:
        return self.context.base_url

    @property
    def passphrase(self) -> PassphraseSource:
        return self.context.passphrase

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.context.clock

    @property
    def random_bytes(self) -> Callable[[int], bytes]:
        return self.context.random_bytes

    @property
    def audit(self):
        """The audit writer (store/audit.py), shared with the RA."""
        return self.context.audit


__all__ = ["CAService", "check_ca_name", "load_certificate", "ocsp_signer_subject", "utc_now"]
