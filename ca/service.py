"""The CA's operations in one object: create and import CAs, issue, revoke,
hold, release, look up and export. See ca/service_core.py for the transaction
and audit rules every operation follows."""

from ca.hierarchy import HierarchyOperations
from ca.inventory import InventoryOperations
from ca.issuance import IssuanceOperations, ocsp_signer_subject
from ca.revocation import RevocationOperations
from ca.service_core import check_ca_name, load_certificate, utc_now


class CAService(HierarchyOperations, IssuanceOperations, RevocationOperations, InventoryOperations):
    """Construct with a store, a crypto token, the profiles, the base URL for
    AIA/CRL URLs, the passphrase source for server-side keys, and optionally a
    clock and a random source (tests pin both)."""


__all__ = ["CAService", "check_ca_name", "load_certificate", "ocsp_signer_subject", "utc_now"]
