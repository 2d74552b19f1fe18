"""What the ACME service's parts share (acmesrv/service.py puts them
together): the account, answer and validation-job records, the limits and
timings, and the base every part builds on: the store, the RA and CA, the
settings and directories, time, URLs, counters, nonces, and the checks of a
signed request (RFC 8555 6.2-6.5) that find its account."""

import json
import logging
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from sqlalchemy import bindparam, select

from acmesrv import jws
from acmesrv.identifiers import Identifier
from acmesrv.nonces import NonceService
from acmesrv.problems import Problem
from acmesrv.settings import AcmeSettings, Directory
from ca.errors import NotFoundError
from ra.service import RAService
from store.tables.acme import (
    acme_accounts,
    acme_authorizations,
    acme_challenges,
    acme_orders,
)

log = logging.getLogger("revoca.acme")

# Bounds (seconds) of the issuance latency histogram on /metrics.
LATENCY_BOUNDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
EAB_LABEL = "acme-eab-key"
CHALLENGES_DNS = ("http-01", "dns-01", "tls-alpn-01")
CHALLENGES_IP = ("http-01", "tls-alpn-01")  # RFC 8738 7: no dns-01 for an address
# RFC 8555 7.6 leaves reasons to the CA; these are the ones a subscriber may
# give (CA/B Forum BR 4.9.1.1; certificateHold, cACompromise and the rest are
# the CA's own).
SUBSCRIBER_REASONS = (0, 1, 3, 4, 5)
RETRY_SECONDS = 1
ARI_RETRY_SECONDS = 6 * 3600
# A finalize claim older than this with nothing issued was left by a server
# that stopped mid-issuance (issuance itself takes well under a second).
STALE_CLAIM_SECONDS = 300
# CA/B Forum BR 3.2.2.8: CAA is looked up at most 8 hours before issuance.
CAA_MAX_AGE_SECONDS = 8 * 3600


@dataclass(frozen=True)
class Account:
    id: str
    directory: str
    key: jws.AccountKey
    contact: tuple[str, ...]
    status: str
    end_entity_id: int
    eab_key_id: str | None
    tos_agreed: bool


@dataclass(frozen=True)
class Answer:
    """A resource for the web layer: its JSON (or bytes), status, Location,
    extra Link headers and Retry-After."""

    body: object
    status: int = 200
    location: str | None = None
    links: tuple[tuple[str, str], ...] = ()  # (url, rel)
    retry_after: int | None = None
    content_type: str = "application/json"


@dataclass(frozen=True)
class ValidationJob:
    challenge_id: str
    type: str
    identifier: Identifier
    token: str
    key_authorization: str
    account_uri: str
    caa_method: str
    check_caa: bool


def random_id(random_bytes) -> str:
    return jws.b64encode(random_bytes(16))


# The lookups by id every request makes, built once (building a statement
# costs more than running it on SQLite).
ACCOUNT_BY_ID = select(acme_accounts).where(acme_accounts.c.id == bindparam("id"))
ORDER_BY_ID = select(acme_orders).where(acme_orders.c.id == bindparam("id"))
AUTHZ_BY_ID = select(acme_authorizations).where(acme_authorizations.c.id == bindparam("id"))
CHALLENGE_BY_ID = select(acme_challenges).where(acme_challenges.c.id == bindparam("id"))


class ServiceBase:
    def __init__(
        self,
        ra: RAService,
        settings: AcmeSettings,
        directories: dict[str, Directory],
        base_url: str,
        *,
        passphrase: bytes,
    ):
        self.ra = ra
        self.ca = ra.ca
        self.store = ra.store
        self.audit = ra.audit
        self.settings = settings
        self.directories = directories
        self.base_url = base_url.rstrip("/")
        self.random_bytes = ra.ca.random_bytes
        self._passphrase = passphrase
        self.nonces = NonceService(self.random_bytes, self.now)
        self.counters: dict[tuple, int] = {}
        # The issuance latency histogram: a count per bucket and the sum,
        # so nothing grows between two scrapes of /metrics.
        self.issuance_buckets = [0] * (len(LATENCY_BOUNDS) + 1)
        self.issuance_total = 0.0

    # -- time, URLs, counters ---------------------------------------------------------

    def now(self) -> int:
        return int(self.ca.clock().timestamp())

    def url(self, directory: str, *parts: str) -> str:
        return "/".join([self.base_url, "acme", directory, *parts])

    def count(self, *key) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def observe_issuance(self, seconds: float) -> None:
        bucket = next(
            (i for i, bound in enumerate(LATENCY_BOUNDS) if seconds <= bound), len(LATENCY_BOUNDS)
        )
        self.issuance_buckets[bucket] += 1
        self.issuance_total += seconds

    def directory(self, name: str) -> Directory:
        found = self.directories.get(name)
        if found is None:
            raise NotFoundError(f"no ACME directory named {name!r}")
        return found

    def directory_object(self, name: str) -> dict:
        """The directory resource (7.1.1), with meta: terms, website, CAA
        identities, EAB, and the profiles offered (the ACME profiles draft)."""
        d = self.directory(name)
        meta = {"externalAccountRequired": d.external_account_required}
        if self.settings.terms_of_service:
            meta["termsOfService"] = self.settings.terms_of_service
        if self.settings.website:
            meta["website"] = self.settings.website
        if self.settings.caa_identities:
            meta["caaIdentities"] = list(self.settings.caa_identities)
        meta["profiles"] = {p: self.ca.profile(p).description or p for p in d.profiles}
        return {
            "newNonce": self.url(name, "new-nonce"),
            "newAccount": self.url(name, "new-account"),
            "newOrder": self.url(name, "new-order"),
            "revokeCert": self.url(name, "revoke-cert"),
            "keyChange": self.url(name, "key-change"),
            "renewalInfo": self.url(name, "renewal-info"),
            "meta": meta,
        }

    # -- nonces (7.2) ---------------------------------------------------------------------

    def new_nonce(self) -> str:
        return self.nonces.make()

    def use_nonce(self, value: str | None) -> None:
        if value is None:
            raise Problem("badNonce", "the request has no nonce")
        self.nonces.redeem(value)

    # -- requests -----------------------------------------------------------------------

    def authenticate(
        self, directory: str, request: jws.SignedRequest, url: str, *, jwk: str = "never"
    ) -> tuple[Account | None, jws.AccountKey]:
        """Check a signed request (6.2-6.5): its url, its key (``jwk``:
        "never" for kid only, "required" for newAccount, "allowed" for
        revokeCert), its signature, its nonce. Returns the account (None for
        a jwk request) and the key that signed."""
        self.directory(directory)
        if request.url != url:
            raise Problem(
                "unauthorized", f"the JWS 'url' {request.url!r} is not the request's URL {url!r}"
            )
        account = None
        if request.jwk is not None:
            if jwk == "never":
                raise Problem("malformed", "this resource wants 'kid' (an account URL), not 'jwk'")
            key = jws.account_key(request.jwk)
        else:
            if jwk == "required":
                raise Problem("malformed", "newAccount is signed with 'jwk', not 'kid'")
            account = self._account_from_kid(directory, request.kid)
            key = account.key
        key.verify(request)
        self.use_nonce(request.nonce)
        if account is not None and account.status != "valid":
            raise Problem("unauthorized", f"the account is {account.status}")
        return account, key

    def _account_from_kid(self, directory: str, kid: str) -> Account:
        prefix = self.url(directory, "acct") + "/"
        if not kid.startswith(prefix) or "/" in kid[len(prefix) :]:
            raise Problem("accountDoesNotExist", f"{kid!r} is not an account URL of this directory")
        account = self._load_account(kid[len(prefix) :])
        if account is None or account.directory != directory:
            raise Problem("accountDoesNotExist", f"no account at {kid}")
        return account

    def _load_account(self, account_id: str, conn=None) -> Account | None:
        if conn is None:
            with self.store.read() as conn:
                return self._load_account(account_id, conn)
        row = conn.execute(ACCOUNT_BY_ID, {"id": account_id}).one_or_none()
        return None if row is None else account_from_row(row)

    def account_url(self, account: Account) -> str:
        return self.url(account.directory, "acct", account.id)

    def account_object(self, account: Account) -> dict:
        obj = {
            "status": account.status,
            "contact": list(account.contact),
            "orders": self.url(account.directory, "acct", account.id, "orders"),
        }
        if account.tos_agreed:
            obj["termsOfServiceAgreed"] = True
        return obj


def account_from_row(row) -> Account:
    return Account(
        id=row.id,
        directory=row.directory,
        key=jws.stored_key(row.jwk),
        contact=tuple(json.loads(row.contact)),
        status=row.status,
        end_entity_id=row.end_entity_id,
        eab_key_id=row.eab_key_id,
        tos_agreed=row.tos_agreed_at is not None,
    )


def account_from_values(values: dict) -> Account:
    return Account(
        id=values["id"],
        directory=values["directory"],
        key=jws.stored_key(values["jwk"]),
        contact=tuple(json.loads(values["contact"])),
        status=values["status"],
        end_entity_id=values["end_entity_id"],
        eab_key_id=values["eab_key_id"],
        tos_agreed=values["tos_agreed_at"] is not None,
    )


def spki_der(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
