"""The ACME server's operations (RFC 8555), on the SQL store, for the web
layer (acmesrv/server.py) to call from its threads.

Every account acts for an RA end entity: the one its external account
binding key was made for, or the directory's default entity where EAB is
optional. An order may only name identifiers the entity's SAN patterns
allow (``rejectedIdentifier`` otherwise), and its certificate is issued by
the RA's enrollment (``RAService.enroll``), so it goes through the CA's one
issuance path, its audit log and approvals: where the profile wants
approvers, finalize leaves the order ``processing`` until they decide.

State moves forward only through conditional updates (pending -> ready ->
processing -> valid), so two finalize requests cannot both issue and a
challenge is validated once however often it is posted.
"""

from acmesrv.accounts import Accounts
from acmesrv.base import Account, Answer, ServiceBase, ValidationJob
from acmesrv.issuing import Issuing
from acmesrv.orders import Orders
from acmesrv.renewal import Renewal


class AcmeService(Accounts, Orders, Issuing, Renewal, ServiceBase):
    """The ACME service: each part in a module of its own (accounts,
    orders and challenges, issuing and revocation, renewal information) on
    one base of shared state (acmesrv/base.py)."""


__all__ = ["Account", "AcmeService", "Answer", "ValidationJob"]
