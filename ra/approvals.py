"""Approvals: enrollments, renewals and revocations that wait for N distinct
approvers before they happen.

A request records what to do (never a passphrase: a key made for an
approved enrollment is handed out later, encrypted with a passphrase the
requester gives when fetching it), how many approvals it needs, who asked,
and when it expires. The requester cannot approve their own request; one
approver counts once; a rejection ends it. The approval that reaches the
count claims the request (pending -> approved, a conditional update, so two
concurrent last approvals cannot both issue) and then carries it out as the
requester; the request ends done (with the certificate) or failed (with the
reason). Every step goes to the audit log.
"""

import json
from dataclasses import dataclass, field

from sqlalchemy import Connection, and_, func, insert, select, update

from ca.errors import BadInputError, ConflictError, NotFoundError
from ca.records import serial_hex
from common.clock import iso8601
from ra.roles import ForbiddenError
from ra.settings import RASettings
from store import Store
from store.tables.ra import approval_requests, approvals, end_entities

KINDS = ("enroll", "renew", "revoke", "user.create", "user.enable", "user.role", "user.token")
# Changes to operators that wait for approvers where approvals are configured:
# each adds someone who could approve (or sign in as an approver).
USER_KINDS = ("user.create", "user.enable", "user.role", "user.token")
# Kept with a request but not shown as what it asks for: the CSR itself (its
# facts are in "details"), the details, and the verifier of a passphrase.
_NOT_SHOWN = ("csr", "details", "passphrase_check", "token_sha256")


def shown(payload: dict) -> dict:
    """The request's own fields as the summary and the audit log show them."""
    return {k: v for k, v in payload.items() if k not in _NOT_SHOWN}


STATUSES = ("pending", "approved", "done", "rejected", "expired", "failed")


@dataclass(frozen=True)
class ApprovalPolicy:
    """How many distinct approvals each operation needs (0: none)."""

    issue: int = 0
    revoke: int = 0
    profiles: dict = field(default_factory=dict)  # profile -> approvals to issue under it
    expiry_seconds: int = 72 * 3600

    def for_issue(self, profile: str) -> int:
        return max(self.issue, int(self.profiles.get(profile, 0)))

    def most(self) -> int:
        """The largest number of approvals any operation needs."""
        return max(self.issue, self.revoke, *(int(n) for n in self.profiles.values()), 0)

    def configured(self) -> bool:
        """Whether any operation waits for approvers."""
        return self.most() > 0

    def for_operators(self) -> int:
        """Approvals a change to the operators (create, enable, role, another's
        token) needs: where any rule wants more than one approver, as many as
        the strictest rule, so no one meets it with accounts of their own
        making; otherwise none."""
        most = self.most()
        return most if most > 1 else 0

    @classmethod
    def from_settings(cls, ra: RASettings) -> "ApprovalPolicy":
        return cls(
            issue=ra.approvals_issue,
            revoke=ra.approvals_revoke,
            profiles=ra.profile_approvals,
            expiry_seconds=int(ra.request_expiry_hours * 3600),
        )


@dataclass(frozen=True)
class ApprovalRequest:
    id: int
    kind: str
    entity: str | None
    payload: dict
    required: int
    approvers: tuple[str, ...]
    requester: str
    status: str
    created_at: int
    expires_at: int
    decided_at: int | None
    decided_by: str | None
    note: str | None
    result_ca: str | None
    result_serial: int | None

    def summary(self) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "entity": self.entity,
            "what": shown(self.payload),
            "details": self.payload.get("details"),
            "has_csr": bool(self.payload.get("csr")),
            "required": self.required,
            "approvers": list(self.approvers),
            "requester": self.requester,
            "status": self.status,
            "created_at": iso8601(self.created_at),
            "expires_at": iso8601(self.expires_at),
            "decided_at": iso8601(self.decided_at),
            "decided_by": self.decided_by,
            "note": self.note,
            "result": (
                {"ca": self.result_ca, "serial": serial_hex(self.result_serial)}
                if self.result_serial is not None
                else None
            ),
        }


class ApprovalQueue:
    def __init__(self, store: Store, now, record):
        """``now()``: epoch seconds; ``record``: ``store.audit.AuditLog.record``."""
        self.store = store
        self.now = now
        self.record = record

    def _audit(self, conn, actor: str, action: str, target: str, result="ok", **detail):
        self.record(conn, actor, action, target, result, **detail)

    def submit(
        self,
        kind: str,
        entity_id: int | None,
        payload: dict,
        required: int,
        requester: str,
        expiry_seconds: int,
    ) -> ApprovalRequest:
        now = self.now()
        with self.store.transaction() as conn:
            request_id = conn.execute(
                insert(approval_requests).values(
                    kind=kind,
                    end_entity_id=entity_id,
                    payload=json.dumps(payload, sort_keys=True),
                    required=required,
                    requester=requester,
                    status="pending",
                    created_at=now,
                    expires_at=now + expiry_seconds,
                )
            ).inserted_primary_key[0]
            self._audit(
                conn,
                requester,
                "ra.request.create",
                f"request/{request_id}",
                kind=kind,
                required=required,
                what=shown(payload),
                details=payload.get("details"),
            )
            return self._load(conn, request_id)

    def _row(self, conn: Connection, request_id: int):
        row = conn.execute(
            select(approval_requests, end_entities.c.name.label("entity_name"))
            .outerjoin(end_entities, end_entities.c.id == approval_requests.c.end_entity_id)
            .where(approval_requests.c.id == request_id)
        ).one_or_none()
        if row is None:
            raise NotFoundError(f"no request {request_id}")
        return row

    def _load(self, conn: Connection, request_id: int) -> ApprovalRequest:
        row = self._row(conn, request_id)
        names = conn.execute(
            select(approvals.c.approver)
            .where(approvals.c.request_id == request_id)
            .order_by(approvals.c.at, approvals.c.approver)
        ).scalars()
        return _request(row, tuple(names))

    def _expire_if_due(self, conn: Connection, row) -> bool:
        if row.status == "pending" and self.now() >= row.expires_at:
            conn.execute(
                update(approval_requests)
                .where(
                    and_(approval_requests.c.id == row.id, approval_requests.c.status == "pending")
                )
                .values(status="expired", decided_at=self.now())
            )
            self._audit(conn, "system", "ra.request.expire", f"request/{row.id}")
            return True
        return False

    def get(self, request_id: int) -> ApprovalRequest:
        with self.store.transaction() as conn:
            self._expire_if_due(conn, self._row(conn, request_id))
            return self._load(conn, request_id)

    def list(self, *, status: str | None, after: int | None, limit: int) -> list[ApprovalRequest]:
        if status is not None and status not in STATUSES:
            raise BadInputError(f"status must be one of {', '.join(STATUSES)}")
        with self.store.transaction() as conn:
            for row in conn.execute(
                select(approval_requests).where(
                    and_(
                        approval_requests.c.status == "pending",
                        approval_requests.c.expires_at <= self.now(),
                    )
                )
            ).all():
                self._expire_if_due(conn, row)
            query = select(approval_requests.c.id).order_by(approval_requests.c.id).limit(limit)
            if status:
                query = query.where(approval_requests.c.status == status)
            if after is not None:
                query = query.where(approval_requests.c.id > after)
            return [self._load(conn, i) for i in conn.execute(query).scalars().all()]

    def approve(self, request_id: int, approver: str) -> tuple[ApprovalRequest, bool]:
        """Add one approval; returns the request and whether this approval
        claimed it for execution (the caller then carries it out)."""
        with self.store.transaction() as conn:
            row = self._row(conn, request_id)
            if self._expire_if_due(conn, row):
                raise ConflictError(f"request {request_id} expired; submit it again")
            if row.status != "pending":
                raise ConflictError(f"request {request_id} is {row.status}, not pending")
            if approver == row.requester:
                raise ForbiddenError("the requester cannot approve their own request")
            if row.kind in USER_KINDS and approver == f"ra:{json.loads(row.payload)['name']}":
                raise ForbiddenError("an operator cannot approve a change to their own account")
            if conn.execute(
                select(approvals.c.at).where(
                    and_(approvals.c.request_id == request_id, approvals.c.approver == approver)
                )
            ).first():
                raise ConflictError(f"{approver} has already approved request {request_id}")
            conn.execute(
                insert(approvals).values(request_id=request_id, approver=approver, at=self.now())
            )
            count = conn.execute(
                select(func.count()).where(approvals.c.request_id == request_id)
            ).scalar_one()
            claimed = False
            if count >= row.required:
                claimed = (
                    conn.execute(
                        update(approval_requests)
                        .where(
                            and_(
                                approval_requests.c.id == request_id,
                                approval_requests.c.status == "pending",
                            )
                        )
                        .values(status="approved", decided_at=self.now(), decided_by=approver)
                    ).rowcount
                    == 1
                )
            self._audit(
                conn,
                approver,
                "ra.request.approve",
                f"request/{request_id}",
                approvals=count,
                required=row.required,
                kind=row.kind,
                what=shown(json.loads(row.payload)),
            )
            return self._load(conn, request_id), claimed

    def reject(self, request_id: int, approver: str, reason: str) -> ApprovalRequest:
        if not isinstance(reason, str) or not reason.strip() or len(reason) > 1000:
            raise BadInputError("a rejection needs a reason (1 to 1000 characters)")
        with self.store.transaction() as conn:
            row = self._row(conn, request_id)
            if self._expire_if_due(conn, row):
                raise ConflictError(f"request {request_id} expired")
            if row.status != "pending":
                raise ConflictError(f"request {request_id} is {row.status}, not pending")
            if approver == row.requester:
                raise ForbiddenError("the requester cannot reject their own request; let it expire")
            conn.execute(
                update(approval_requests)
                .where(approval_requests.c.id == request_id)
                .values(status="rejected", decided_at=self.now(), decided_by=approver, note=reason)
            )
            self._audit(conn, approver, "ra.request.reject", f"request/{request_id}", reason=reason)
            return self._load(conn, request_id)

    def finish(
        self,
        request_id: int,
        *,
        ca: str | None = None,
        serial: int | None = None,
        error: str | None = None,
    ) -> ApprovalRequest:
        with self.store.transaction() as conn:
            conn.execute(
                update(approval_requests)
                .where(approval_requests.c.id == request_id)
                .values(
                    status="failed" if error else "done",
                    note=error,
                    result_ca=ca,
                    result_serial=None if serial is None else f"{serial:040x}",
                )
            )
            if error:
                self._audit(
                    conn, "system", "ra.request.fail", f"request/{request_id}", "error", error=error
                )
            return self._load(conn, request_id)


def _request(row, approvers: tuple[str, ...]) -> ApprovalRequest:
    return ApprovalRequest(
        id=row.id,
        kind=row.kind,
        entity=row.entity_name,
        payload=json.loads(row.payload),
        required=row.required,
        approvers=approvers,
        requester=row.requester,
        status=row.status,
        created_at=row.created_at,
        expires_at=row.expires_at,
        decided_at=row.decided_at,
        decided_by=row.decided_by,
        note=row.note,
        result_ca=row.result_ca,
        result_serial=None if row.result_serial is None else int(row.result_serial, 16),
    )
