"""Finalize, download and revocation (RFC 8555 7.4, 7.4.2, 7.6): the CSR
held to the order, issuance through the RA's enrollment (its checks, its
approvals, the CA's audit and outbox), the certificate chain, revocation
by the account or by the certificate's key."""

import hashlib
import json
import time

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import func, insert, select, update

from acmesrv import jws
from acmesrv.base import (
    CAA_MAX_AGE_SECONDS,
    RETRY_SECONDS,
    STALE_CLAIM_SECONDS,
    SUBSCRIBER_REASONS,
    Account,
    Answer,
    ValidationJob,
    spki_der,
)
from acmesrv.identifiers import (
    Identifier,
    common_name,
    csr_identifiers,
)
from acmesrv.problems import Problem
from ca import catalog
from ca.errors import BadInputError, CAError, KeyCompromisedError, PolicyError
from ca.reasons import RevocationReason
from ca.records import serial_hex
from ra.approvals import ApprovalRequest
from store.errors import ConflictError
from store.tables.acme import (
    acme_authorizations,
    acme_challenges,
    acme_issued_domains,
    acme_orders,
)


class Issuing:
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
        if spki_der(csr.public_key()) == spki_der(account.key.key):
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
        self.observe_issuance(time.monotonic() - started)
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
            if spki_der(key.key) != spki_der(cert.public_key()):
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
