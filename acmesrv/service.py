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

import hashlib
import json
import logging
import time
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import and_, func, insert, or_, select, update

from acmesrv import jws
from acmesrv.identifiers import (
    Identifier,
    common_name,
    csr_identifiers,
    parse_identifiers,
)
from acmesrv.nonces import NonceService
from acmesrv.problems import Problem, subproblem
from acmesrv.settings import AcmeSettings, Directory
from ca import catalog
from ca.errors import BadInputError, CAError, KeyCompromisedError, NotFoundError, PolicyError
from ca.reasons import RevocationReason
from ca.records import serial_hex
from common import sealed
from common.clock import iso8601
from ra.approvals import ApprovalRequest
from ra.service import RAService
from store.errors import ConflictError
from store.tables.acme import (
    acme_accounts,
    acme_authorizations,
    acme_challenges,
    acme_eab_keys,
    acme_issued_domains,
    acme_orders,
)

log = logging.getLogger("revoca.acme")

NONCE_SECONDS = 3600
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


def _rid(random_bytes) -> str:
    return jws.b64encode(random_bytes(16))


class AcmeService:
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
        self.issuance_seconds: list[float] = []

    # -- time, URLs, counters ---------------------------------------------------------

    def now(self) -> int:
        return int(self.ca.clock().timestamp())

    def url(self, directory: str, *parts: str) -> str:
        return "/".join([self.base_url, "acme", directory, *parts])

    def count(self, *key) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

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
        row = conn.execute(
            select(acme_accounts).where(acme_accounts.c.id == account_id)
        ).one_or_none()
        return None if row is None else _account(row)

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

    # -- accounts (7.3) -------------------------------------------------------------------

    def new_account(
        self, directory: str, request: jws.SignedRequest, key: jws.AccountKey, url: str
    ) -> Answer:
        d = self.directory(directory)
        payload = request.json() or {}
        thumbprint = key.thumbprint()
        with self.store.read() as conn:
            row = conn.execute(
                select(acme_accounts).where(acme_accounts.c.thumbprint == thumbprint)
            ).one_or_none()
        if row is not None:
            existing = _account(row)
            if existing.directory != directory:
                raise Problem("unauthorized", "this key belongs to an account of another directory")
            # 7.3.1: the existing account, 200, its URL in Location.
            return Answer(self.account_object(existing), 200, self.account_url(existing))
        if payload.get("onlyReturnExisting") is True:
            raise Problem("accountDoesNotExist", "no account has this key")
        contact = _contacts(payload.get("contact", []))
        agreed = payload.get("termsOfServiceAgreed")
        if agreed is not None and not isinstance(agreed, bool):
            raise Problem("malformed", "termsOfServiceAgreed must be true or false")
        if self.settings.terms_of_service and agreed is not True:
            raise Problem(
                "userActionRequired",
                f"agree to the terms of service at {self.settings.terms_of_service} "
                "(termsOfServiceAgreed: true)",
            )
        eab = payload.get("externalAccountBinding")
        now = self.now()
        account_id = _rid(self.random_bytes)
        binding = None
        if eab is not None:
            binding = jws.binding(eab, request.jwk, url)
            entity_id = self._check_eab(directory, binding, now)
        elif d.external_account_required:
            raise Problem(
                "externalAccountRequired",
                "this directory needs an external account binding: ask an RA operator for a "
                "key (revoca acme eab create)",
            )
        else:
            entity_id = self.ra.get_entity(d.default_entity).id
        values = {
            "id": account_id,
            "directory": directory,
            "thumbprint": thumbprint,
            "jwk": json.dumps(key.jwk, sort_keys=True),
            "contact": json.dumps(contact),
            "status": "valid",
            "end_entity_id": entity_id,
            "eab_key_id": binding.key_id if binding else None,
            "tos_agreed_at": now if agreed else None,
            "created_at": now,
            "updated_at": now,
        }
        try:
            with self.store.transaction() as conn:
                if binding is not None:
                    # Each key binds one account: the first to use it wins.
                    claimed = conn.execute(
                        update(acme_eab_keys)
                        .where(
                            acme_eab_keys.c.key_id == binding.key_id,
                            acme_eab_keys.c.status == "unused",
                        )
                        .values(status="bound", account_id=account_id, bound_at=now)
                    ).rowcount
                    if claimed != 1:
                        raise Problem("unauthorized", "the external account binding key is used")
                conn.execute(insert(acme_accounts).values(**values))
                self.audit.ok(
                    conn,
                    f"acme:{account_id}",
                    "acme.account.create",
                    account_id,
                    directory=directory,
                    end_entity_id=entity_id,
                    eab_key_id=values["eab_key_id"],
                    thumbprint=thumbprint,
                )
        except ConflictError:
            # Another request made an account with this key meanwhile.
            return self.new_account(directory, request, key, url)
        self.count("accounts", directory)
        account = _account_from_values(values)
        return Answer(self.account_object(account), 201, self.account_url(account))

    def _check_eab(self, directory: str, binding: jws.Binding, now: int) -> int:
        with self.store.read() as conn:
            row = conn.execute(
                select(acme_eab_keys).where(acme_eab_keys.c.key_id == binding.key_id)
            ).one_or_none()
        if row is None:
            raise Problem("unauthorized", f"no external account binding key {binding.key_id!r}")
        if row.directory is not None and row.directory != directory:
            raise Problem(
                "unauthorized", "the external account binding key is for another directory"
            )
        if row.status != "unused":
            raise Problem("unauthorized", f"the external account binding key is {row.status}")
        if row.expires_at < now:
            raise Problem("unauthorized", "the external account binding key has expired")
        try:
            mac_key = sealed.unseal(row.sealed_key.encode(), self._passphrase, EAB_LABEL)
        except sealed.SealedError as exc:
            log.error("EAB key %s cannot be opened: %s", binding.key_id, exc.message)
            raise Problem(
                "serverInternal", "the external account binding key cannot be read"
            ) from None
        binding.check(mac_key)
        entity = self.ra.get_entity_by_id(row.end_entity_id)
        if entity.status != "active":
            raise Problem("unauthorized", f"end entity {entity.name!r} is disabled")
        return row.end_entity_id

    def update_account(self, account: Account, payload: dict | None) -> Answer:
        """7.3.2 (contact), 7.3.6 (deactivation); POST-as-GET reads it."""
        if payload:
            changes = {}
            if "contact" in payload:
                changes["contact"] = json.dumps(_contacts(payload["contact"]))
            status = payload.get("status")
            if status == account.status:
                status = None  # the status it has: nothing to change
            if status is not None:
                if status != "deactivated":
                    raise Problem("malformed", "an account's status can only become 'deactivated'")
                changes["status"] = "deactivated"
            if changes:
                now = self.now()
                with self.store.transaction() as conn:
                    conn.execute(
                        update(acme_accounts)
                        .where(acme_accounts.c.id == account.id)
                        .values(**changes, updated_at=now)
                    )
                    if status == "deactivated":
                        # 7.3.6: its pending and valid authorizations go too.
                        conn.execute(
                            update(acme_authorizations)
                            .where(
                                acme_authorizations.c.account_id == account.id,
                                acme_authorizations.c.status.in_(("pending", "valid")),
                            )
                            .values(status="deactivated")
                        )
                    self.audit.ok(
                        conn,
                        f"acme:{account.id}",
                        "acme.account.deactivate" if status else "acme.account.update",
                        account.id,
                        **(
                            {"contact": json.loads(changes["contact"])}
                            if "contact" in changes
                            else {}
                        ),
                    )
                account = self._load_account(account.id)
        return Answer(self.account_object(account), 200, self.account_url(account))

    def account_orders(self, account: Account) -> Answer:
        """7.1.2.1: the account's orders that are not invalid (pending and
        ready ones not expired, processing, valid), newest first, at most 1000."""
        with self.store.read() as conn:
            now = self.now()
            ids = conn.execute(
                select(acme_orders.c.id)
                .where(
                    acme_orders.c.account_id == account.id,
                    or_(
                        acme_orders.c.status.in_(("processing", "valid")),
                        and_(
                            acme_orders.c.status.in_(("pending", "ready")),
                            acme_orders.c.expires_at >= now,
                        ),
                    ),
                )
                .order_by(acme_orders.c.created_at.desc())
                .limit(1000)
            ).scalars()
            urls = [self.url(account.directory, "order", i) for i in ids]
        return Answer({"orders": urls})

    def key_change(self, account: Account, outer: jws.SignedRequest) -> Answer:
        """7.3.5: the inner JWS, signed by the new key, names the account
        and the old key; the new key must not belong to another account."""
        inner = jws.parse(outer.payload)
        if inner.jwk is None:
            raise Problem("malformed", "the inner JWS of keyChange is signed with 'jwk' (7.3.5)")
        if inner.url != outer.url:
            raise Problem("malformed", "the inner JWS's 'url' differs from the outer one")
        if "nonce" in inner.protected:
            raise Problem("malformed", "the inner JWS of keyChange carries no nonce (7.3.5)")
        new_key = jws.account_key(inner.jwk)
        new_key.verify(inner)
        body = inner.json() or {}
        if body.get("account") != self.account_url(account):
            raise Problem("malformed", "the inner JWS names another account")
        try:
            old = jws.account_key(body.get("oldKey"))
        except Problem:
            raise Problem("malformed", "the inner JWS's oldKey is not a key") from None
        if old.thumbprint() != account.key.thumbprint():
            raise Problem("unauthorized", "oldKey is not the account's current key")
        thumbprint = new_key.thumbprint()
        with self.store.read() as conn:
            other = conn.execute(
                select(acme_accounts.c.id).where(acme_accounts.c.thumbprint == thumbprint)
            ).scalar_one_or_none()
        if other is not None:
            raise Problem(
                "malformed",
                "the new key already belongs to an account",
                status=409,
                location=self.url(account.directory, "acct", other),
            )
        try:
            with self.store.transaction() as conn:
                conn.execute(
                    update(acme_accounts)
                    .where(acme_accounts.c.id == account.id)
                    .values(
                        thumbprint=thumbprint,
                        jwk=json.dumps(new_key.jwk, sort_keys=True),
                        updated_at=self.now(),
                    )
                )
                self.audit.ok(
                    conn,
                    f"acme:{account.id}",
                    "acme.account.key_change",
                    account.id,
                    old=old.thumbprint(),
                    new=thumbprint,
                )
        except ConflictError:
            raise Problem(
                "malformed", "the new key already belongs to an account", status=409
            ) from None
        return Answer(
            self.account_object(self._load_account(account.id)), 200, self.account_url(account)
        )

    # -- orders (7.4) -----------------------------------------------------------------

    def new_order(self, account: Account, payload: dict | None) -> Answer:
        if not payload:
            raise Problem("malformed", "newOrder needs a payload with 'identifiers'")
        d = self.directory(account.directory)
        identifiers = parse_identifiers(payload.get("identifiers"))
        for field in ("notBefore", "notAfter"):
            if payload.get(field) is not None:
                raise Problem(
                    "malformed", f"{field} is not supported: the profile sets the validity"
                )
        profile = payload.get("profile", d.default_profile)
        if not isinstance(profile, str) or profile not in d.profiles:
            raise Problem(
                "invalidProfile",
                f"profile {profile!r} is not offered here; offered: {', '.join(d.profiles)}",
            )
        entity = self.ra.get_entity_by_id(account.end_entity_id)
        if entity.status != "active":
            raise Problem("unauthorized", f"end entity {entity.name!r} is disabled")
        refused = []
        for ident in identifiers:
            try:
                entity.check_sans([ident.san()])
            except PolicyError:
                refused.append(
                    subproblem(
                        "rejectedIdentifier",
                        f"{ident.value} is not among the names end entity {entity.name!r} may "
                        f"have ({', '.join(entity.allowed_sans) or 'none'})",
                        ident.json(),
                    )
                )
        if refused:
            detail = (
                refused[0]["detail"]
                if len(refused) == 1
                else f"{len(refused)} of the identifiers are not allowed for this account"
            )
            raise Problem("rejectedIdentifier", detail, subproblems=tuple(refused))
        now = self.now()
        replaces = payload.get("replaces")
        if replaces is not None:
            replaces = self._check_replaces(account, replaces, identifiers)
        self._check_order_rate(account, now)
        self._check_domain_rate(identifiers, now)
        expires = now + int(self.settings.order_lifetime_hours * 3600)
        order_id = _rid(self.random_bytes)
        with self.store.transaction() as conn:
            if replaces is not None and self._replaced_by(conn, replaces, now):
                raise Problem("alreadyReplaced", "another order replaces that certificate already")
            conn.execute(
                insert(acme_orders).values(
                    id=order_id,
                    account_id=account.id,
                    directory=account.directory,
                    status="pending",
                    identifiers=json.dumps([i.json() for i in identifiers]),
                    profile=profile,
                    replaces=replaces,
                    expires_at=expires,
                    created_at=now,
                    updated_at=now,
                )
            )
            for ident in identifiers:
                authz_id = _rid(self.random_bytes)
                conn.execute(
                    insert(acme_authorizations).values(
                        id=authz_id,
                        order_id=order_id,
                        account_id=account.id,
                        identifier_type=ident.type,
                        identifier_value=ident.base,
                        wildcard=int(ident.wildcard),
                        status="pending",
                        expires_at=expires,
                    )
                )
                types = (
                    ("dns-01",)
                    if ident.wildcard
                    else (CHALLENGES_IP if ident.type == "ip" else CHALLENGES_DNS)
                )
                conn.execute(
                    insert(acme_challenges),
                    [
                        {
                            "id": _rid(self.random_bytes),
                            "authorization_id": authz_id,
                            "type": t,
                            "token": jws.b64encode(self.random_bytes(32)),
                            "status": "pending",
                        }
                        for t in types
                    ],
                )
            obj = self._order(account, order_id, conn)
        self.count("orders", account.directory)
        return Answer(obj, 201, self.url(account.directory, "order", order_id))

    def _check_order_rate(self, account: Account, now: int) -> None:
        limit = self.settings.orders_per_account_per_hour
        if not limit:
            return
        with self.store.read() as conn:
            times = (
                conn.execute(
                    select(acme_orders.c.created_at)
                    .where(
                        acme_orders.c.account_id == account.id,
                        acme_orders.c.created_at > now - 3600,
                    )
                    .order_by(acme_orders.c.created_at)
                    .limit(limit)
                )
                .scalars()
                .all()
            )
        if len(times) >= limit:
            retry = max(1, times[0] + 3600 - now)
            raise Problem(
                "rateLimited",
                f"at most {limit} new orders per account in an hour; retry after {retry} s",
                retry_after=retry,
            )

    def _check_domain_rate(self, identifiers, now: int) -> None:
        limit = self.settings.certificates_per_domain_per_week
        if not limit:
            return
        week = 7 * 86400
        domains = {
            d
            for i in identifiers
            if (d := i.registered_domain(self.settings.registered_domain_labels))
        }
        with self.store.read() as conn:
            for domain in sorted(domains):
                times = (
                    conn.execute(
                        select(acme_issued_domains.c.issued_at)
                        .where(
                            acme_issued_domains.c.domain == domain,
                            acme_issued_domains.c.issued_at > now - week,
                        )
                        .order_by(acme_issued_domains.c.issued_at)
                        .limit(limit)
                    )
                    .scalars()
                    .all()
                )
                if len(times) >= limit:
                    retry = max(1, times[0] + week - now)
                    raise Problem(
                        "rateLimited",
                        f"at most {limit} certificates for names under {domain} in 7 days; "
                        f"retry after {retry} s",
                        retry_after=retry,
                    )

    def _order_row(self, conn, account: Account, order_id: str):
        row = conn.execute(select(acme_orders).where(acme_orders.c.id == order_id)).one_or_none()
        if row is None or row.account_id != account.id:
            raise Problem("malformed", f"no order {order_id!r} of this account", status=404)
        return row

    def _order(self, account: Account, order_id: str, conn=None) -> dict:
        if conn is None:
            with self.store.read() as conn:
                return self._order(account, order_id, conn)
        row = self._order_row(conn, account, order_id)
        authz = conn.execute(
            select(acme_authorizations.c.id)
            .where(acme_authorizations.c.order_id == order_id)
            .order_by(acme_authorizations.c.identifier_value)
        ).scalars()
        status = row.status
        if status in ("pending", "ready") and row.expires_at < self.now():
            status = "invalid"
        obj = {
            "status": status,
            "expires": iso8601(row.expires_at),
            "identifiers": json.loads(row.identifiers),
            "authorizations": [self.url(row.directory, "authz", a) for a in authz],
            "finalize": self.url(row.directory, "order", order_id, "finalize"),
            "profile": row.profile,
        }
        if row.replaces:
            obj["replaces"] = row.replaces
        if row.error:
            obj["error"] = json.loads(row.error)
        if status == "valid":
            obj["certificate"] = self.url(row.directory, "cert", order_id)
        return obj

    def get_order(self, account: Account, order_id: str) -> Answer:
        self._follow_approval(account, order_id)
        obj = self._order(account, order_id)
        retry = RETRY_SECONDS if obj["status"] == "processing" else None
        location = self.url(account.directory, "order", order_id)
        return Answer(obj, 200, location, retry_after=retry)

    def release_stale_claims(self, order_id: str | None = None) -> int:
        """Orders a finalize claimed (processing, no certificate, no approval
        request) longer than STALE_CLAIM_SECONDS ago, by a server that
        stopped mid-issuance: ready again, so the client may finalize once
        more. Returns how many."""
        where = [
            acme_orders.c.status == "processing",
            acme_orders.c.serial.is_(None),
            acme_orders.c.approval_request_id.is_(None),
            acme_orders.c.updated_at < self.now() - STALE_CLAIM_SECONDS,
        ]
        if order_id is not None:
            where.append(acme_orders.c.id == order_id)
        with self.store.transaction() as conn:
            return conn.execute(
                update(acme_orders).where(*where).values(status="ready", updated_at=self.now())
            ).rowcount

    # -- authorizations and challenges (7.5, 8) --------------------------------------------

    def _authz_row(self, conn, account: Account, authz_id: str):
        row = conn.execute(
            select(acme_authorizations).where(acme_authorizations.c.id == authz_id)
        ).one_or_none()
        if row is None or row.account_id != account.id:
            raise Problem("malformed", f"no authorization {authz_id!r} of this account", status=404)
        return row

    def _authz(self, account: Account, authz_id: str, conn=None) -> dict:
        if conn is None:
            with self.store.read() as conn:
                return self._authz(account, authz_id, conn)
        row = self._authz_row(conn, account, authz_id)
        challenges = conn.execute(
            select(acme_challenges)
            .where(acme_challenges.c.authorization_id == authz_id)
            .order_by(acme_challenges.c.type)
        ).all()
        status = row.status
        if status in ("pending", "valid") and row.expires_at < self.now():
            status = "expired"
        obj = {
            "identifier": {
                "type": row.identifier_type,
                "value": row.identifier_value,
            },
            "status": status,
            "expires": iso8601(row.expires_at),
            "challenges": [self._challenge_object(account.directory, c) for c in challenges],
        }
        if row.wildcard:
            obj["wildcard"] = True
        return obj

    def _challenge_object(self, directory: str, row) -> dict:
        obj = {
            "type": row.type,
            "url": self.url(directory, "chall", row.id),
            "status": row.status,
            "token": row.token,
        }
        if row.validated_at is not None:
            obj["validated"] = iso8601(row.validated_at)
        if row.error:
            obj["error"] = json.loads(row.error)
        return obj

    def get_authz(self, account: Account, authz_id: str, payload: dict | None) -> Answer:
        if payload:
            if payload != {"status": "deactivated"}:
                raise Problem("malformed", "an authorization can only be deactivated (7.5.2)")
            with self.store.transaction() as conn:
                row = self._authz_row(conn, account, authz_id)
                if row.status not in ("pending", "valid"):
                    raise Problem("malformed", f"the authorization is {row.status}")
                conn.execute(
                    update(acme_authorizations)
                    .where(acme_authorizations.c.id == authz_id)
                    .values(status="deactivated")
                )
                # An order that needs it can no longer complete.
                conn.execute(
                    update(acme_orders)
                    .where(
                        acme_orders.c.id == row.order_id,
                        acme_orders.c.status.in_(("pending", "ready")),
                    )
                    .values(status="invalid", updated_at=self.now())
                )
        return Answer(self._authz(account, authz_id))

    def challenge(self, account: Account, challenge_id: str, payload: dict | None):
        """POST-as-GET reads a challenge; a POST with ``{}`` asks for
        validation (7.5.1), once: a job is returned for the validator when the
        challenge moved from pending to processing, None otherwise."""
        with self.store.transaction() as conn:
            row = conn.execute(
                select(acme_challenges).where(acme_challenges.c.id == challenge_id)
            ).one_or_none()
            authz = None if row is None else self._authz_row_or_none(conn, row.authorization_id)
            if row is None or authz is None or authz.account_id != account.id:
                raise Problem(
                    "malformed", f"no challenge {challenge_id!r} of this account", status=404
                )
            job = None
            if payload is not None:
                if payload != {}:
                    raise Problem("malformed", "a challenge is answered with an empty object {}")
                if authz.status != "pending" or authz.expires_at < self.now():
                    pass  # decided (or expired): the challenge as it stands, as Boulder answers
                elif row.status == "pending":
                    self._check_validation_rate(conn, account)
                    # One challenge per authorization is tried (7.1.4).
                    moved = conn.execute(
                        update(acme_challenges)
                        .where(
                            acme_challenges.c.id == challenge_id,
                            acme_challenges.c.status == "pending",
                        )
                        .values(status="processing")
                    ).rowcount
                    busy = conn.execute(
                        select(func.count())
                        .select_from(acme_challenges)
                        .where(
                            acme_challenges.c.authorization_id == authz.id,
                            acme_challenges.c.status == "processing",
                            acme_challenges.c.id != challenge_id,
                        )
                    ).scalar_one()
                    if busy:
                        raise Problem(
                            "malformed",
                            "another challenge of this authorization is being validated",
                        )
                    if moved:
                        job = self._job(account, row, authz, conn)
            row = conn.execute(
                select(acme_challenges).where(acme_challenges.c.id == challenge_id)
            ).one()
            obj = self._challenge_object(account.directory, row)
        links = ((self.url(account.directory, "authz", authz.id), "up"),)
        # While it is validated, when to look again (8.2): lego polls every
        # 5 s where a challenge's answer has no Retry-After.
        retry = RETRY_SECONDS if obj["status"] == "processing" else None
        return Answer(obj, 200, links=links, retry_after=retry), job

    def _check_validation_rate(self, conn, account: Account) -> None:
        """At most ``validations_per_account`` of an account's challenges
        validated at once (RFC 8555 10.4: validation requests are the
        attacker's lever), so one account cannot fill the validator."""
        limit = self.settings.validations_per_account
        busy = conn.execute(
            select(func.count())
            .select_from(acme_challenges)
            .join(
                acme_authorizations,
                acme_authorizations.c.id == acme_challenges.c.authorization_id,
            )
            .where(
                acme_authorizations.c.account_id == account.id,
                acme_challenges.c.status == "processing",
            )
        ).scalar_one()
        if busy >= limit:
            raise Problem(
                "rateLimited",
                f"{busy} of this account's challenges are being validated (at most {limit} "
                "at once); answer this one when they are done",
                retry_after=RETRY_SECONDS * 5,
            )

    def _authz_row_or_none(self, conn, authz_id: str):
        return conn.execute(
            select(acme_authorizations).where(acme_authorizations.c.id == authz_id)
        ).one_or_none()

    def _job(self, account: Account, challenge, authz, conn=None) -> ValidationJob:
        if conn is None:
            with self.store.read() as conn:
                return self._job(account, challenge, authz, conn)
        profile = conn.execute(
            select(acme_orders.c.profile).where(acme_orders.c.id == authz.order_id)
        ).scalar_one()
        return ValidationJob(
            challenge_id=challenge.id,
            type=challenge.type,
            identifier=Identifier(
                authz.identifier_type,
                ("*." if authz.wildcard else "") + authz.identifier_value,
            ),
            token=challenge.token,
            key_authorization=f"{challenge.token}.{account.key.thumbprint()}",
            account_uri=self.account_url(account),
            caa_method=challenge.type,
            check_caa=self._caa_applies(profile) and authz.identifier_type == "dns",
        )

    def _caa_applies(self, profile: str) -> bool:
        if self.settings.caa == "auto":
            return bool(self.ca.profile(profile).baseline_requirements)
        return self.settings.caa == "on"

    def pending_jobs(self) -> list[ValidationJob]:
        """Challenges left processing (a server stopped mid-validation):
        validated again when it starts."""
        with self.store.read() as conn:
            rows = conn.execute(
                select(acme_challenges, acme_authorizations.c.account_id)
                .join(
                    acme_authorizations,
                    acme_authorizations.c.id == acme_challenges.c.authorization_id,
                )
                .where(acme_challenges.c.status == "processing")
            ).all()
        jobs = []
        for row in rows:
            account = self._load_account(row.account_id)
            with self.store.read() as conn:
                authz = self._authz_row_or_none(conn, row.authorization_id)
            jobs.append(self._job(account, row, authz))
        return jobs

    def record_validation(self, job: ValidationJob, error: Problem | None) -> None:
        """The outcome of a validation: the challenge and its authorization
        valid or invalid; the order ready when all its authorizations are
        valid, invalid when one is not (7.1.6)."""
        now = self.now()
        with self.store.transaction() as conn:
            challenge = conn.execute(
                select(acme_challenges).where(acme_challenges.c.id == job.challenge_id)
            ).one()
            if challenge.status != "processing":
                return
            authz = self._authz_row_or_none(conn, challenge.authorization_id)
            conn.execute(
                update(acme_challenges)
                .where(acme_challenges.c.id == job.challenge_id)
                .values(
                    status="invalid" if error else "valid",
                    validated_at=None if error else now,
                    error=json.dumps(error.document()) if error else None,
                )
            )
            conn.execute(
                update(acme_authorizations)
                .where(
                    acme_authorizations.c.id == authz.id, acme_authorizations.c.status == "pending"
                )
                .values(status="invalid" if error else "valid")
            )
            if error:
                conn.execute(
                    update(acme_orders)
                    .where(acme_orders.c.id == authz.order_id, acme_orders.c.status == "pending")
                    .values(
                        status="invalid",
                        error=json.dumps(
                            {
                                **error.document(),
                                "subproblems": [
                                    subproblem(error.type, error.detail, job.identifier.json())
                                ],
                            }
                        ),
                        updated_at=now,
                    )
                )
            else:
                left = conn.execute(
                    select(func.count())
                    .select_from(acme_authorizations)
                    .where(
                        acme_authorizations.c.order_id == authz.order_id,
                        acme_authorizations.c.status != "valid",
                    )
                ).scalar_one()
                if left == 0:
                    conn.execute(
                        update(acme_orders)
                        .where(
                            acme_orders.c.id == authz.order_id, acme_orders.c.status == "pending"
                        )
                        .values(status="ready", updated_at=now)
                    )
        self.count("validations", job.type, "invalid" if error else "valid")

    # -- finalize and certificates (7.4, 7.4.2) -----------------------------------------

    def finalize(self, account: Account, order_id: str, payload: dict | None) -> Answer:
        if not payload or not isinstance(payload.get("csr"), str):
            raise Problem("malformed", "finalize needs a payload with 'csr' (base64url DER)")
        der = jws.b64decode(payload["csr"], "csr")
        try:
            csr = x509.load_der_x509_csr(der)
        except ValueError:
            raise Problem("badCSR", "the CSR is not a DER PKCS#10 request") from None
        if not csr.is_signature_valid:
            raise Problem("badCSR", "the CSR's signature does not verify")
        if _spki(csr.public_key()) == _spki(account.key.key):
            # One key for the account and the certificate lets whoever holds
            # the server's key act as the account (Boulder refuses it too).
            raise Problem("badCSR", "the certificate's key must not be the account's key")
        with self.store.read() as conn:
            row = self._order_row(conn, account, order_id)
        if row.expires_at < self.now() and row.status in ("pending", "ready"):
            raise Problem("orderNotReady", "the order has expired")
        if row.status != "ready":
            raise Problem(
                "orderNotReady",
                f"the order is {row.status}"
                + ("; answer its challenges first" if row.status == "pending" else ""),
            )
        identifiers = {Identifier(i["type"], i["value"]) for i in json.loads(row.identifiers)}
        asked = csr_identifiers(csr)
        if asked != identifiers:
            missing = sorted(i.value for i in identifiers - asked)
            extra = sorted(i.value for i in asked - identifiers)
            parts = []
            if missing:
                parts.append(f"lacks {', '.join(missing)}")
            if extra:
                parts.append(f"adds {', '.join(extra)}")
            raise Problem(
                "badCSR", f"the CSR's names differ from the order's: it {' and '.join(parts)}"
            )
        cn = common_name(csr, sorted(identifiers))
        pem = csr.public_bytes(serialization.Encoding.PEM)
        entity = self.ra.get_entity_by_id(account.end_entity_id)
        directory = self.directory(account.directory)
        if entity.ca != directory.ca:
            raise Problem(
                "unauthorized",
                f"end entity {entity.name!r} is issued by CA {entity.ca!r}, not by this "
                f"directory's CA {directory.ca!r}",
            )
        now = self.now()
        with self.store.transaction() as conn:
            claimed = conn.execute(
                update(acme_orders)
                .where(acme_orders.c.id == order_id, acme_orders.c.status == "ready")
                .values(status="processing", updated_at=now)
            ).rowcount
        if claimed != 1:
            raise Problem("orderNotReady", "the order is being finalized already")
        started = time.monotonic()

        def record(conn, cert) -> None:
            # In the issuing transaction: the order is valid with its certificate.
            self._issued(conn, order_id, directory.ca, cert.serial_number, identifiers)

        try:
            result = self.ra.enroll(
                entity.name,
                csr=pem,
                sans=[_san_text(i) for i in sorted(identifiers)],
                profile=row.profile,
                identifier=cn,
                actor=f"acme:{account.id}",
                on_issued=record,
            )
        except (KeyCompromisedError, PolicyError, BadInputError, CAError) as exc:
            problem = _issuance_problem(exc)
            with self.store.transaction() as conn:
                # A request that cannot be met changes nothing: the order is
                # ready again for a CSR that can (a bad key, a weak one).
                conn.execute(
                    update(acme_orders)
                    .where(acme_orders.c.id == order_id, acme_orders.c.status == "processing")
                    .values(status="ready", updated_at=self.now())
                )
            raise problem from None
        except Exception:
            with self.store.transaction() as conn:
                conn.execute(
                    update(acme_orders)
                    .where(acme_orders.c.id == order_id, acme_orders.c.status == "processing")
                    .values(status="ready", updated_at=self.now())
                )
            raise
        if isinstance(result, ApprovalRequest):
            with self.store.transaction() as conn:
                conn.execute(
                    update(acme_orders)
                    .where(acme_orders.c.id == order_id)
                    .values(approval_request_id=result.id, updated_at=self.now())
                )
            obj = self._order(account, order_id)
            location = self.url(account.directory, "order", order_id)
            return Answer(obj, 200, location, retry_after=RETRY_SECONDS * 5)
        self.issuance_seconds.append(time.monotonic() - started)
        self.count("certificates", account.directory)
        return Answer(
            self._order(account, order_id), 200, self.url(account.directory, "order", order_id)
        )

    def _issued(self, conn, order_id: str, ca: str, serial: int, identifiers) -> None:
        now = self.now()
        labels = self.settings.registered_domain_labels
        domains = {d for i in identifiers if (d := i.registered_domain(labels))}
        conn.execute(
            update(acme_orders)
            .where(acme_orders.c.id == order_id)
            .values(status="valid", ca=ca, serial=serial_hex(serial), updated_at=now)
        )
        if domains:
            conn.execute(
                insert(acme_issued_domains),
                [{"order_id": order_id, "domain": d, "issued_at": now} for d in sorted(domains)],
            )

    def caa_rechecks(self, account: Account, order_id: str) -> list[ValidationJob]:
        """The order's DNS names whose CAA was looked up more than 8 hours
        ago (or never, before CAA applied): to look up again before
        finalize issues (CA/B Forum BR 3.2.2.8)."""
        with self.store.read() as conn:
            row = self._order_row(conn, account, order_id)
            if row.status != "ready" or not self._caa_applies(row.profile):
                return []
            found = conn.execute(
                select(acme_authorizations, acme_challenges.c.type, acme_challenges.c.validated_at)
                .join(
                    acme_challenges,
                    acme_challenges.c.authorization_id == acme_authorizations.c.id,
                )
                .where(
                    acme_authorizations.c.order_id == order_id,
                    acme_authorizations.c.identifier_type == "dns",
                    acme_challenges.c.status == "valid",
                )
            ).all()
        oldest = self.now() - CAA_MAX_AGE_SECONDS
        return [
            ValidationJob(
                challenge_id="",
                type=r.type,
                identifier=Identifier("dns", ("*." if r.wildcard else "") + r.identifier_value),
                token="",
                key_authorization="",
                account_uri=self.account_url(account),
                caa_method=r.type,
                check_caa=True,
            )
            for r in found
            if (r.validated_at or 0) < oldest
        ]

    def _follow_approval(self, account: Account, order_id: str) -> None:
        """An order waiting for approvers: valid once they approved and the
        certificate was issued, invalid once they rejected."""
        with self.store.read() as conn:
            row = self._order_row(conn, account, order_id)
        if row.status != "processing":
            return
        if row.approval_request_id is None:
            if row.serial is None and row.updated_at < self.now() - STALE_CLAIM_SECONDS:
                self.release_stale_claims(order_id)
            return
        request = self.ra.approvals.get(row.approval_request_id)
        if request.status == "done" and request.result_serial is not None:
            identifiers = [Identifier(i["type"], i["value"]) for i in json.loads(row.identifiers)]
            with self.store.transaction() as conn:
                # Two pollers may both see it done: one records it.
                claimed = conn.execute(
                    update(acme_orders)
                    .where(acme_orders.c.id == order_id, acme_orders.c.status == "processing")
                    .values(updated_at=self.now())
                ).rowcount
                if claimed:
                    ca, serial = request.result_ca, request.result_serial
                    self._issued(conn, order_id, ca, serial, identifiers)
        elif request.status in ("rejected", "expired", "failed"):
            problem = Problem(
                "unauthorized",
                f"the RA's approvers did not issue it: the request is {request.status}"
                + (f" ({request.note})" if request.note else ""),
            )
            with self.store.transaction() as conn:
                conn.execute(
                    update(acme_orders)
                    .where(acme_orders.c.id == order_id, acme_orders.c.status == "processing")
                    .values(
                        status="invalid",
                        error=json.dumps(problem.document()),
                        updated_at=self.now(),
                    )
                )

    def certificate(self, account: Account, order_id: str) -> Answer:
        """7.4.2: the certificate and its chain, PEM, leaf first."""
        with self.store.read() as conn:
            row = self._order_row(conn, account, order_id)
            if row.status != "valid":
                raise Problem(
                    "malformed", f"the order is {row.status}; it has no certificate", status=404
                )
            record = catalog.certificate(conn, row.ca, int(row.serial, 16))
        chain = self.ca.chain(row.ca)
        # The root stays out: relying parties have it as a trust anchor.
        if chain and chain[-1].issuer == chain[-1].subject and len(chain) > 1:
            chain = chain[:-1]
        pem = record.certificate.public_bytes(serialization.Encoding.PEM) + b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in chain
        )
        return Answer(pem, 200, content_type="application/pem-certificate-chain")

    # -- revocation (7.6) -------------------------------------------------------------

    def revoke(
        self, directory: str, account: Account | None, key: jws.AccountKey, payload
    ) -> Answer:
        if not payload or not isinstance(payload.get("certificate"), str):
            raise Problem("malformed", "revokeCert needs 'certificate' (base64url DER)")
        der = jws.b64decode(payload["certificate"], "certificate")
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            raise Problem("malformed", "'certificate' is not a DER certificate") from None
        reason = payload.get("reason", 0)
        if (
            not isinstance(reason, int)
            or isinstance(reason, bool)
            or reason not in SUBSCRIBER_REASONS
        ):
            raise Problem(
                "badRevocationReason",
                f"reason {reason!r} is not one a subscriber may give "
                f"({', '.join(RevocationReason(r).name + f' ({r})' for r in SUBSCRIBER_REASONS)})",
            )
        with self.store.read() as conn:
            record = catalog.by_fingerprint(conn, hashlib.sha256(der).hexdigest())
        if record is None:
            raise Problem("malformed", "this server did not issue that certificate", status=404)
        if record.ca != self.directory(directory).ca:
            raise Problem("unauthorized", "the certificate is not of this directory's CA")
        if account is None:
            # Signed by the certificate's own key (7.6, second option).
            if _spki(key.key) != _spki(cert.public_key()):
                raise Problem("unauthorized", "the JWS key is not the certificate's key")
            actor = "acme:certificate-key"
        else:
            if not self._may_revoke(account, record):
                raise Problem(
                    "unauthorized",
                    "this account neither ordered the certificate nor holds valid "
                    "authorizations for all its names",
                )
            actor = f"acme:{account.id}"
        if record.status == "revoked":
            raise Problem("alreadyRevoked", "the certificate is revoked already")
        waiting = self._pending_revocation(record)
        if waiting is not None:
            raise Problem(
                "unauthorized",
                f"the revocation waits for the RA's approvers (request {waiting.id}); "
                "the certificate is not revoked yet",
            )
        try:
            result = self.ra.revoke(
                record.ca, record.serial, RevocationReason(reason).name, actor=actor
            )
        except ConflictError as exc:
            raise Problem("alreadyRevoked", exc.message) from None
        except (PolicyError, BadInputError) as exc:
            raise Problem("badRevocationReason", exc.message) from None
        if isinstance(result, ApprovalRequest):
            # RFC 8555 7.6 answers 200 only for a revocation made: this one
            # waits for approvers ([ra] approvals_revoke), and says so.
            raise Problem(
                "unauthorized",
                f"the revocation waits for {result.required} RA approver(s) (request "
                f"{result.id}); the certificate is not revoked yet",
            )
        self.count("revocations", directory)
        return Answer(None, 200)

    def _pending_revocation(self, record) -> ApprovalRequest | None:
        """A revocation of ``record`` already waiting for approvers."""
        if not self.ra.policy.revoke:
            return None
        after = None
        while True:
            page = self.ra.approvals.list(status="pending", after=after, limit=500)
            for request in page:
                p = request.payload
                if (
                    request.kind == "revoke"
                    and p.get("ca") == record.ca
                    and p.get("serial") == serial_hex(record.serial)
                ):
                    return request
            if len(page) < 500:
                return None
            after = page[-1].id

    def _may_revoke(self, account: Account, record) -> bool:
        with self.store.read() as conn:
            owned = conn.execute(
                select(func.count())
                .select_from(acme_orders)
                .where(
                    acme_orders.c.account_id == account.id,
                    acme_orders.c.ca == record.ca,
                    acme_orders.c.serial == serial_hex(record.serial),
                )
            ).scalar_one()
            if owned:
                return True
            # 7.6: an account holding valid authorizations for every name.
            now = self.now()
            for san in record.sans:
                kind, _, value = san.partition(":")
                found = conn.execute(
                    select(func.count())
                    .select_from(acme_authorizations)
                    .where(
                        acme_authorizations.c.account_id == account.id,
                        acme_authorizations.c.identifier_type == kind,
                        acme_authorizations.c.identifier_value == value.removeprefix("*."),
                        acme_authorizations.c.status == "valid",
                        acme_authorizations.c.expires_at >= now,
                    )
                ).scalar_one()
                if not found:
                    return False
        return bool(record.sans)

    # -- renewal information (RFC 9773) ------------------------------------------------------

    def _by_cert_id(self, cert_id: str):
        key_id_text, dot, serial_text = cert_id.partition(".")
        if not dot:
            raise Problem(
                "malformed", "a renewal-info id is base64url(AKI keyIdentifier).base64url(serial)"
            )
        key_id = jws.b64decode(key_id_text, "the certificate id's key identifier")
        serial_bytes = jws.b64decode(serial_text, "the certificate id's serial")
        if (
            not serial_bytes
            or serial_bytes[0] & 0x80
            or (len(serial_bytes) > 1 and serial_bytes[0] == 0 and not serial_bytes[1] & 0x80)
        ):
            # X.690 8.3.2: the minimal two's complement encoding, positive.
            raise Problem("malformed", "the certificate id's serial is not a positive DER INTEGER")
        serial = int.from_bytes(serial_bytes, "big")
        for ca in self.ca.list_cas():
            try:
                ski = ca.certificate.extensions.get_extension_for_class(
                    x509.SubjectKeyIdentifier
                ).value.digest
            except x509.ExtensionNotFound:
                continue
            if ski == key_id:
                try:
                    with self.store.read() as conn:
                        return catalog.certificate(conn, ca.name, serial), ca
                except NotFoundError:
                    break
        raise Problem("malformed", f"no certificate {cert_id!r} was issued here", status=404)

    def renewal_info(self, cert_id: str) -> Answer:
        """RFC 9773 4.2: a suggested window to renew in, two thirds into the
        validity period; in the past (renew now) when the certificate is
        revoked, its key is on the blocklist, or its CA's certificate ends
        before it or is revoked."""
        record, ca = self._by_cert_id(cert_id)
        nb, na = int(record.not_before.timestamp()), int(record.not_after.timestamp())
        life = na - nb
        start, end = nb + life * 2 // 3, nb + life * 5 // 6
        now = self.now()
        why = self._replace_now(record, ca)
        if why:
            start, end = now - 86400, now - 1
        body = {"suggestedWindow": {"start": iso8601(start), "end": iso8601(end)}}
        return Answer(body, 200, retry_after=ARI_RETRY_SECONDS)

    def _replace_now(self, record, ca) -> str | None:
        if record.status in ("revoked", "hold"):
            return "revoked"
        if ca.not_after < record.not_after:
            return "ca-expires"
        try:
            self.ca.check_key(record.certificate.public_key())
        except KeyCompromisedError:
            return "key-compromised"
        return None

    def _check_replaces(self, account: Account, replaces, identifiers) -> str:
        """RFC 9773 5: the certificate replaced is this account's and shares
        a name with the new order. Returns its identifier as this server
        writes it (one spelling per certificate, so a re-encoded one cannot
        replace it twice)."""
        if not isinstance(replaces, str):
            raise Problem("malformed", "'replaces' is a certificate identifier (RFC 9773)")
        record, _ = self._by_cert_id(replaces)
        with self.store.read() as conn:
            owner = conn.execute(
                select(acme_orders.c.account_id).where(
                    acme_orders.c.ca == record.ca, acme_orders.c.serial == serial_hex(record.serial)
                )
            ).scalar_one_or_none()
            if owner != account.id:
                raise Problem(
                    "unauthorized",
                    "the certificate 'replaces' names was not ordered by this account",
                )
            if self._replaced_by(conn, replaces, self.now()):
                raise Problem("alreadyReplaced", "another order replaces that certificate already")
        names = {san.partition(":")[2] for san in record.sans}
        if not names & {i.value for i in identifiers}:
            raise Problem("malformed", "the replaced certificate shares no name with this order")
        return replaces

    def _replaced_by(self, conn, replaces: str, now: int):
        """An order that is not invalid (RFC 9773 5), nor expired unfinished,
        replacing the certificate."""
        return conn.execute(
            select(acme_orders.c.id).where(
                acme_orders.c.replaces == replaces,
                or_(
                    acme_orders.c.status.in_(("processing", "valid")),
                    and_(
                        acme_orders.c.status.in_(("pending", "ready")),
                        acme_orders.c.expires_at >= now,
                    ),
                ),
            )
        ).first()

    # -- external account binding keys (for operators) -------------------------------------

    def create_eab_key(
        self, entity_name: str, *, directory: str | None, actor: str
    ) -> tuple[str, str]:
        """A new EAB key for an end entity: (key id, base64url MAC key). The
        MAC key is shown once; it is kept sealed under the keys' passphrase."""
        entity = self.ra.get_entity(entity_name)
        if entity.status != "active":
            raise PolicyError(f"end entity {entity.name!r} is disabled")
        if directory is not None:
            d = self.directory(directory)
            if d.ca != entity.ca:
                raise PolicyError(
                    f"directory {directory!r} issues from CA {d.ca!r}; end entity "
                    f"{entity.name!r} is issued by {entity.ca!r}"
                )
        key_id = "kid-" + jws.b64encode(self.random_bytes(12))
        mac_key = self.random_bytes(32)
        now = self.now()
        blob = sealed.seal(mac_key, self._passphrase, EAB_LABEL).decode()
        with self.store.transaction() as conn:
            conn.execute(
                insert(acme_eab_keys).values(
                    key_id=key_id,
                    directory=directory,
                    end_entity_id=entity.id,
                    sealed_key=blob,
                    status="unused",
                    created_by=actor,
                    created_at=now,
                    expires_at=now + self.settings.eab_key_days * 86400,
                )
            )
            self.audit.ok(
                conn, actor, "acme.eab.create", key_id, entity=entity.name, directory=directory
            )
        return key_id, jws.b64encode(mac_key)

    def list_eab_keys(self) -> list[dict]:
        from store.tables.ra import end_entities

        with self.store.read() as conn:
            rows = conn.execute(
                select(acme_eab_keys, end_entities.c.name.label("entity"))
                .join(end_entities, end_entities.c.id == acme_eab_keys.c.end_entity_id)
                .order_by(acme_eab_keys.c.created_at, acme_eab_keys.c.key_id)
            ).all()
        now = self.now()
        return [
            {
                "key_id": r.key_id,
                "entity": r.entity,
                "directory": r.directory,
                "status": "expired" if r.status == "unused" and r.expires_at < now else r.status,
                "account": r.account_id,
                "created_by": r.created_by,
                "created_at": iso8601(r.created_at),
                "expires_at": iso8601(r.expires_at),
            }
            for r in rows
        ]

    def revoke_eab_key(self, key_id: str, *, actor: str) -> None:
        with self.store.transaction() as conn:
            changed = conn.execute(
                update(acme_eab_keys)
                .where(acme_eab_keys.c.key_id == key_id, acme_eab_keys.c.status == "unused")
                .values(status="revoked")
            ).rowcount
            if not changed:
                exists = conn.execute(
                    select(acme_eab_keys.c.status).where(acme_eab_keys.c.key_id == key_id)
                ).scalar_one_or_none()
                if exists is None:
                    raise NotFoundError(f"no EAB key {key_id!r}")
                raise PolicyError(f"EAB key {key_id!r} is {exists}; only an unused key is revoked")
            self.audit.ok(conn, actor, "acme.eab.revoke", key_id)


def _account(row) -> Account:
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


def _account_from_values(values: dict) -> Account:
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


def _contacts(value) -> list[str]:
    """7.3: contact URLs; this server sends email, so mailto: only, one
    address each, no header fields (hfields)."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Problem("malformed", "contact must be a list of URLs")
    if len(value) > 10:
        raise Problem("invalidContact", "at most 10 contact URLs")
    out = []
    for url in value:
        if not url.startswith("mailto:"):
            raise Problem("unsupportedContact", f"{url!r}: only mailto: contacts are supported")
        address = url[len("mailto:") :]
        local, at, domain = address.rpartition("@")
        if (
            not at
            or not local
            or "." not in domain
            or any(c in address for c in ",?&<>\r\n \t")
            or len(address) > 254
        ):
            raise Problem("invalidContact", f"{url!r} is not a single email address")
        out.append(url)
    return out


def _spki(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _san_text(identifier: Identifier) -> str:
    return f"{identifier.type}:{identifier.value}"


def _issuance_problem(exc: CAError) -> Problem:
    if isinstance(exc, KeyCompromisedError):
        return Problem("badPublicKey", exc.message)
    if isinstance(exc, ConflictError):
        return Problem("serverInternal", exc.message)
    if isinstance(exc, PolicyError | BadInputError):
        text = exc.message
        if "key" in text.lower():
            return Problem("badPublicKey", text)
        return Problem("badCSR", text)
    return Problem("serverInternal", "the certificate could not be issued")
