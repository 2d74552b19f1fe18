"""ACME orders, authorizations and challenges (RFC 8555 7.4, 7.5, 8): an
order only for names the account's end entity may have, rate limits,
challenges moved to processing once and validated outside the request,
the outcome carried to the authorization and the order."""

import json

from sqlalchemy import func, insert, select, update

from acmesrv import jws
from acmesrv.base import (
    AUTHZ_BY_ID,
    CHALLENGE_BY_ID,
    CHALLENGES_DNS,
    CHALLENGES_IP,
    ORDER_BY_ID,
    RETRY_SECONDS,
    STALE_CLAIM_SECONDS,
    Account,
    Answer,
    ValidationJob,
    random_id,
)
from acmesrv.identifiers import (
    Identifier,
    parse_identifiers,
)
from acmesrv.problems import Problem, subproblem
from ca.errors import PolicyError
from common.clock import iso8601
from store.tables.acme import (
    acme_authorizations,
    acme_challenges,
    acme_issued_domains,
    acme_orders,
)


class Orders:
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
        replaces = issuing_order = payload.get("replaces")
        if replaces is not None:
            replaces, issuing_order = self._check_replaces(account, replaces, identifiers)
        self._check_order_rate(account, now)
        self._check_domain_rate(identifiers, now)
        expires = now + int(self.settings.order_lifetime_hours * 3600)
        order_id = random_id(self.random_bytes)
        with self.store.transaction() as conn:
            if replaces is not None:
                # Renewals of one certificate take turns (FOR UPDATE on the
                # order that issued it; SQLite's writers take turns anyway).
                conn.execute(
                    select(acme_orders.c.id)
                    .where(acme_orders.c.id == issuing_order)
                    .with_for_update()
                )
                if self._replaced_by(conn, replaces, now):
                    raise Problem(
                        "alreadyReplaced", "another order replaces that certificate already"
                    )
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
                authz_id = random_id(self.random_bytes)
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
                            "id": random_id(self.random_bytes),
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
        row = conn.execute(ORDER_BY_ID, {"id": order_id}).one_or_none()
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
        row = conn.execute(AUTHZ_BY_ID, {"id": authz_id}).one_or_none()
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
            row = conn.execute(CHALLENGE_BY_ID, {"id": challenge_id}).one_or_none()
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
            row = conn.execute(CHALLENGE_BY_ID, {"id": challenge_id}).one()
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
        return conn.execute(AUTHZ_BY_ID, {"id": authz_id}).one_or_none()

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
            challenge = conn.execute(CHALLENGE_BY_ID, {"id": job.challenge_id}).one()
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
