"""ACME problem documents (RFC 8555 6.7, RFC 7807): the one way the
server says no.

A :class:`Problem` carries the error type (the part after
``urn:ietf:params:acme:error:``), a detail a person can act on, the HTTP
status, optional subproblems each naming an identifier (6.7.1), and, for
``rateLimited`` and work in progress, a ``Retry-After``.
"""

from dataclasses import dataclass

PREFIX = "urn:ietf:params:acme:error:"
CONTENT_TYPE = "application/problem+json"

# The HTTP status each type is sent with (RFC 8555 6.7 leaves it to the
# server; these follow Boulder's and Pebble's choices, which clients expect).
STATUS = {
    "accountDoesNotExist": 400,
    "alreadyReplaced": 409,
    "alreadyRevoked": 400,
    "badCSR": 400,
    "badNonce": 400,
    "badPublicKey": 400,
    "badRevocationReason": 400,
    "badSignatureAlgorithm": 400,
    "caa": 403,
    "compound": 400,
    "connection": 400,
    "dns": 400,
    "externalAccountRequired": 400,
    "incorrectResponse": 400,
    "invalidContact": 400,
    "invalidProfile": 400,
    "malformed": 400,
    "orderNotReady": 403,
    "rateLimited": 429,
    "rejectedIdentifier": 400,
    "serverInternal": 500,
    "tls": 400,
    "unauthorized": 403,
    "unsupportedContact": 400,
    "unsupportedIdentifier": 400,
    "userActionRequired": 403,
}


@dataclass
class Problem(Exception):
    type: str
    detail: str
    status: int | None = None
    subproblems: tuple[dict, ...] = ()
    retry_after: int | None = None
    # RFC 8555 6.7: a badSignatureAlgorithm problem lists what is accepted.
    algorithms: tuple[str, ...] = ()
    # 7.3.5: a key change to a key another account holds names that account.
    location: str | None = None

    def __post_init__(self):
        if self.type not in STATUS:
            raise ValueError(f"unknown ACME error type {self.type!r}")
        super().__init__(f"{self.type}: {self.detail}")

    @property
    def http_status(self) -> int:
        return self.status or STATUS[self.type]

    def document(self) -> dict:
        doc = {"type": PREFIX + self.type, "detail": self.detail, "status": self.http_status}
        if self.subproblems:
            doc["subproblems"] = list(self.subproblems)
        if self.algorithms:
            doc["algorithms"] = list(self.algorithms)
        return doc


def subproblem(type_: str, detail: str, identifier: dict) -> dict:
    """One identifier's part of a compound problem (6.7.1)."""
    if type_ not in STATUS:
        raise ValueError(f"unknown ACME error type {type_!r}")
    return {"type": PREFIX + type_, "detail": detail, "identifier": identifier}
