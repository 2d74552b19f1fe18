"""The store's tables (SQLAlchemy Core), one module per owner:

- ``store.tables.ca``: CAs, certificates, CRLs and the certificate search
  indexes. Written by ``ca`` only; the RA reads them through ``ca.catalog``.
- ``store.tables.ra``: end entities, operators, approvals, expiry notices,
  enrollment secrets.
  Written by ``ra`` only.
- ``store.tables.outbox``: status events, written by the CA in each change's
  transaction, read by the publisher.
- ``store.tables.acme``: ACME accounts, their binding keys, orders,
  authorizations, challenges, nonces. Written by ``acmesrv`` only.
- ``store.tables.enroll``: EST and SCEP transactions. Written by ``enroll``
  only (the enrollment secrets they redeem are the RA's).
- ``store.tables.audit``: the hash-chained audit log, written only through
  ``store.audit`` (by the CA and the RA).

Importing this package declares every table in ``metadata``. Changes go
through an alembic migration in store/migrations/versions; tests check that
the migrations build exactly these tables.
"""

from store.tables import acme, audit, ca, enroll, outbox, ra
from store.tables.base import metadata
from store.tables.ca import SEARCH_OBJECTS


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """For alembic comparisons: leave the search objects alone."""
    return not (reflected and name and name.startswith(SEARCH_OBJECTS))


__all__ = ["acme", "audit", "ca", "enroll", "include_object", "metadata", "outbox", "ra"]
