"""ACME accounts (RFC 8555 7.3): creation bound to an RA end entity by an
external account binding key (7.3.4), update and deactivation, the orders
list, key rollover; and the EAB keys RA operators make for end entities."""

import json

from sqlalchemy import and_, insert, or_, select, update

from acmesrv import jws
from acmesrv.base import (
    EAB_LABEL,
    Account,
    Answer,
    account_from_row,
    account_from_values,
    log,
    random_id,
)
from acmesrv.problems import Problem
from ca.errors import NotFoundError, PolicyError
from common import sealed
from common.clock import iso8601
from store.errors import ConflictError
from store.tables.acme import (
    acme_accounts,
    acme_authorizations,
    acme_eab_keys,
    acme_orders,
)


class Accounts:
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
            existing = account_from_row(row)
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
        account_id = random_id(self.random_bytes)
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
        account = account_from_values(values)
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
