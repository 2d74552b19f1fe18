"""What EST and SCEP have in common: who may enroll, as which end entity,
and what became of a request; the HTTP fronts (enroll/est.py,
enroll/scep.py) only translate.

Credentials:

- a one-time enrollment secret of an end entity (ra/secrets.py): EST's HTTP
  Basic password (the user is the entity's name), SCEP's challengePassword;
- a certificate this RA issued, valid and neither revoked nor on hold, for
  renewing it (EST simplereenroll over TLS client authentication, SCEP
  RenewalReq signed with it); the new certificate is for the same end
  entity;
- a device's manufacturer (bootstrap) certificate from a label's trust
  anchors, for EST: it enrolls as the label's end entity, once.

Every request is a transaction (store/tables/enroll.py) keyed by SCEP's
transactionID or the SHA-256 of EST's CSR, so a device told to wait while
approvers decide asks again with the same request and gets the certificate
once they approved. Issuance is the RA's (``RAService.enroll`` and
``renew``): the entity's SAN patterns, the profile, the blocklist, the
approvals, the audit log (with the protocol and the credential) and the
outbox, so the VAs answer for the new certificate at once. The listeners'
own certificates are enroll/identities.py's.
"""

import hashlib
import logging
import threading
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from sqlalchemy import delete, insert, select, update

from ca import catalog
from ca.errors import (
    BadInputError,
    CAError,
    ConflictError,
    NotFoundError,
    PolicyError,
)
from ca.records import serial_hex
from ca.requests import parse_csr
from enroll.identities import Identities
from enroll.settings import EnrollSettings, Label
from ra.approvals import ApprovalRequest
from ra.secrets import SecretRefused
from ra.service import Enrollment, RAService
from store.tables.enroll import enroll_transactions

log = logging.getLogger("revoca.enroll")

STALE_CLAIM_SECONDS = 300
BOOTSTRAP_USED = (
    "this bootstrap certificate has enrolled already; renew the certificate it got "
    "(simplereenroll) instead"
)  # a claimed transaction whose server stopped mid-issuance


class EnrollError(Exception):
    """A refusal the fronts turn into an HTTP status (EST) or a SCEP failInfo."""

    def __init__(
        self, kind: str, message: str, *, fail_info: str = "badRequest", result: str = "refused"
    ):
        super().__init__(message)
        self.kind = kind  # bad_request | unauthorized | forbidden | not_found | conflict
        self.message = message
        self.fail_info = fail_info
        self.result = result  # what the metrics count it as: refused | malformed

    @property
    def http_status(self) -> int:
        return {
            "bad_request": 400,
            "unauthorized": 401,
            "forbidden": 403,
            "not_found": 404,
            "conflict": 409,
            "unsupported": 415,
            "unavailable": 503,
        }[self.kind]


class _Raced(Exception):
    """A transaction could not begin because one with its id began meanwhile
    (``refusal``: what to answer when it is gone again)."""

    def __init__(self, refusal: EnrollError):
        super().__init__(refusal.message)
        self.refusal = refusal


@dataclass(frozen=True)
class Outcome:
    """Issued (``certificate`` and its chain) or pending (``request_id``)."""

    status: str  # issued | pending
    certificate: x509.Certificate | None = None
    chain: list = field(default_factory=list)
    request_id: int | None = None


@dataclass(frozen=True)
class Credential:
    kind: str  # secret | certificate | bootstrap
    name: str  # what the audit log names: the secret's id, CA/serial, a fingerprint
    secret: str | None = None
    entity: str | None = None  # EST's Basic user: the entity the device names
    certificate: bytes | None = None  # DER: the TLS client certificate or SCEP signer


def spki_sha256(public_key) -> str:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


class EnrollService:
    def __init__(self, ra: RAService, settings: EnrollSettings, passphrase: bytes):
        self.ra = ra
        self.ca = ra.ca
        self.store = ra.store
        self.settings = settings
        self.identities = Identities(ra.ca, passphrase, self.now)
        self.labels = {label.name: label for label in settings.labels}
        self.labels[""] = settings.default_label()
        self.counts: dict[tuple[str, str], int] = {}
        self._count_lock = threading.Lock()

    def now(self) -> int:
        return self.ra.now()

    def count(self, protocol: str, result: str) -> None:
        """One more request of ``protocol`` ended ``result`` (from any of the
        store's threads: counted under a lock, none lost)."""
        key = (protocol, result)
        with self._count_lock:
            self.counts[key] = self.counts.get(key, 0) + 1

    # -- labels and CAs -----------------------------------------------------------------

    def label(self, name: str) -> Label:
        """A path's label; with none configured, every CA here that is not
        self-signed is a label named after it (as ACME's directories)."""
        label = self.labels.get(name)
        if (
            label is None
            and not self.settings.labels
            and any(
                ca.name == name and ca.certificate.issuer != ca.certificate.subject
                for ca in self.ca.list_cas()
            )
        ):
            return Label(name, name)
        if label is None:
            raise EnrollError("not_found", f"no enrollment label {name!r}")
        if not label.ca:
            return Label(
                "", self.default_ca(), label.profile, label.entity, label.bootstrap_anchors
            )
        return label

    def default_ca(self) -> str:
        if self.settings.ca:
            return self.settings.ca
        issuing = [
            ca.name for ca in self.ca.list_cas() if ca.certificate.issuer != ca.certificate.subject
        ]
        if len(issuing) != 1:
            raise EnrollError(
                "not_found",
                "the paths without a label need [enroll] ca: this RA holds "
                f"{len(issuing)} CAs that are not self-signed",
            )
        return issuing[0]

    def chain(self, label: Label) -> list[x509.Certificate]:
        """The label's CA and its parents (EST /cacerts, SCEP GetCACert)."""
        return self.ca.chain(label.ca)

    def profile_of(
        self, label: Label, entity: str | None = None, secret: str | None = None
    ) -> str | None:
        """The profile a request on this label is issued under: the label's,
        else its entity's, else that of the entity ``secret`` is an unused
        secret of (when ``entity`` is given, only if it is that one: so no
        one learns which entities exist); None when none of them is known."""
        if label.profile:
            return label.profile
        try:
            if label.entity:
                return self.ra.get_entity(label.entity).profile
            holder = self.ra.secrets.holder(secret) if secret else None
            if holder is not None:  # the Basic user may be left empty: the secret names it
                found = self.ra.get_entity_by_id(holder)
                if not entity or found.name == entity:
                    return found.profile
        except NotFoundError:
            return None
        return None

    # -- service identities (enroll/identities.py) -------------------------------------

    def listener_identity(self):
        """(certificate, key, chain) of the EST listener when no tls_cert is
        configured."""
        try:
            first = self.default_ca()
        except EnrollError:
            first = None
        return self.identities.listener(self.settings.host, first)

    def scep_ra(self, label: Label):
        """The SCEP RA certificate and key of the label's CA."""
        return self.identities.scep_ra(label.ca, self.settings.scep_ra_key_type)

    def bootstrap_credential(self, label: Label, der: bytes) -> Credential:
        """A manufacturer (bootstrap) certificate: issued directly by one of
        the label's trust anchors and within its validity period (the TLS
        layer checked the chain but not the time, so that this can say
        so)."""
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            raise EnrollError("unauthorized", "the client certificate cannot be read") from None
        if label.bootstrap_anchors is None or not label.entity:
            raise EnrollError(
                "unauthorized",
                "this label takes no bootstrap certificates: authenticate with HTTP Basic "
                "(end entity name and enrollment secret)",
            )
        now = self.ca.clock()
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise EnrollError(
                "unauthorized", "the bootstrap certificate is outside its validity period"
            )
        for anchor in self.anchors(label):
            try:
                cert.verify_directly_issued_by(anchor)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return Credential("bootstrap", f"bootstrap sha256:{hashlib.sha256(der).hexdigest()}")
        raise EnrollError(
            "unauthorized", "the client certificate is not from this label's bootstrap anchors"
        )

    def anchors(self, label: Label) -> list[x509.Certificate]:
        if label.bootstrap_anchors is None:
            return []
        try:
            return x509.load_pem_x509_certificates(label.bootstrap_anchors.read_bytes())
        except (OSError, ValueError) as exc:
            raise EnrollError(
                "unavailable", f"cannot read the bootstrap anchors {label.bootstrap_anchors}: {exc}"
            ) from None

    def trust_anchors(self) -> list[x509.Certificate]:
        """What the EST listener accepts client certificates under: every CA
        held here (renewals) and every label's bootstrap anchors."""
        out = [ca.certificate for ca in self.ca.list_cas()]
        for name in self.labels:
            out += self.anchors(self.label(name)) if self.labels[name].bootstrap_anchors else []
        return out

    # -- enrollment ---------------------------------------------------------------------

    def enroll(
        self,
        protocol: str,
        label: Label,
        csr: bytes,
        credential: Credential,
        *,
        transaction_id: str | None = None,
        renewal: bool = False,
        repeat_only: EnrollError | None = None,
    ) -> Outcome:
        """Enroll (or, with ``renewal``, renew the credential's certificate)
        from ``csr``; a repeated request returns what became of the first.
        With ``repeat_only`` (why the request may not start a transaction:
        EST's channel binding of an earlier connection) only a repeat of a
        transaction of this credential is answered; else that is raised."""
        try:
            return self._enroll_or_repeat(
                protocol,
                label,
                csr,
                credential,
                transaction_id=transaction_id,
                renewal=renewal,
                repeat_only=repeat_only,
            )
        except EnrollError as exc:
            self.count(protocol, exc.result)
            raise

    def _enroll_or_repeat(
        self, protocol, label, csr, credential, *, transaction_id, renewal, repeat_only
    ) -> Outcome:
        try:
            request = parse_csr(csr)
        except CAError as exc:
            raise EnrollError("bad_request", exc.message, result="malformed") from None
        spki = spki_sha256(request.public_key)
        txid = transaction_id or hashlib.sha256(csr).hexdigest()
        if transaction_id is None and credential.kind == "certificate":
            # EST renewal with the same key (RFC 7030 4.2.2): the CSR may be
            # the very bytes of the enrollment or the last renewal (RSA
            # signs deterministically); the certificate renewed tells them
            # apart, as SCEP's transaction_key does.
            txid += "/renews/" + hashlib.sha256(credential.certificate).hexdigest()[:32]
        if credential.kind == "bootstrap":
            # One transaction per bootstrap certificate, whatever the CSR:
            # the store's unique (protocol, transaction_id) lets it enroll
            # once, however many nodes and connections race.
            txid = credential.name
        row = self._transaction(protocol, txid)
        live = row is not None and not (
            row.status == "claimed" and row.updated_at < self.now() - STALE_CLAIM_SECONDS
        )
        if repeat_only is not None and not (
            live and row.spki_sha256 == spki and self._same_credential(row, credential)
        ):
            raise repeat_only
        finished = None
        if live and protocol == "scep" and self._new_secret_for_finished(row, spki, credential):
            # The same key enrolling again with a new secret: SCEP clients
            # keep one transactionID per key (RFC 8894 3.2.1.1), and a
            # PKCSReq is signed with the key, so it is its holder's (an EST
            # CSR may be replayed by anyone). A new transaction; the finished
            # one is set aside when the secret is redeemed.
            finished = row.id
        elif live:
            return self._repeat(row, spki, credential)
        elif row is not None:  # a claim its server never finished: start again
            self._forget(row.id, row.secret_id, f"{protocol}:{txid}")
        try:
            if renewal or credential.kind == "certificate":
                return self._renew(protocol, label, csr, request, credential, txid, spki)
            return self._enroll(protocol, label, csr, credential, txid, spki, finished)
        except _Raced as raced:
            # The same request, sent at once on another connection, began
            # its transaction first: this one is its repeat.
            row = self._transaction(protocol, txid)
            if row is None:
                raise raced.refusal from None
            return self._repeat(row, spki, credential)

    def _new_secret_for_finished(self, row, spki: str, credential: Credential) -> bool:
        return (
            credential.kind == "secret"
            and row.status in ("issued", "failed")
            and row.spki_sha256 == spki
            and not self._same_credential(row, credential)
        )

    def _transaction(self, protocol: str, txid: str):
        with self.store.read() as conn:
            return conn.execute(
                select(enroll_transactions).where(
                    enroll_transactions.c.protocol == protocol,
                    enroll_transactions.c.transaction_id == txid,
                )
            ).one_or_none()

    def _enroll(self, protocol, label, csr, credential, txid, spki, finished=None) -> Outcome:
        used_by = f"{protocol}:{txid}"
        now = self.now()
        values = dict(
            protocol=protocol,
            transaction_id=txid,
            credential=credential.name,
            spki_sha256=spki,
            status="claimed",
            created_at=now,
            updated_at=now,
        )
        secret_id = None
        if credential.kind == "secret":
            entity_id = None
            if credential.entity is not None:
                try:
                    entity_id = self.ra.get_entity(credential.entity).id
                except NotFoundError:
                    raise EnrollError("unauthorized", "no such enrollment secret") from None

            def claim(conn, sid, eid):
                if finished is not None:
                    t = enroll_transactions.c
                    conn.execute(
                        update(enroll_transactions)
                        .where(t.id == finished, t.transaction_id == txid)
                        .values(transaction_id=f"{txid}/done/{finished}")
                    )
                row = {**values, "credential": f"secret {sid}"}
                conn.execute(
                    insert(enroll_transactions).values(**row, end_entity_id=eid, secret_id=sid)
                )

            try:
                secret_id, entity_id = self.ra.secrets.redeem(
                    credential.secret or "",
                    protocol=protocol,
                    used_by=used_by,
                    entity_id=entity_id,
                    on_redeemed=claim,
                )
            except SecretRefused as exc:
                refusal = EnrollError("unauthorized", str(exc), fail_info="badRequest")
                if self._transaction(protocol, txid) is not None:
                    raise _Raced(refusal) from None
                log.warning("%s enrollment refused: %s", protocol, exc)
                raise refusal from None
            entity = self.ra.get_entity_by_id(entity_id)
            if label.entity and entity.name != label.entity:
                self._forget_claim(txid, protocol, secret_id, used_by, finished)
                raise EnrollError(
                    "forbidden", f"label {label.name!r} enrolls end entity {label.entity!r} only"
                )
            via = {"protocol": protocol, "credential": f"secret {secret_id}"}
        else:  # bootstrap: the label's entity, once per bootstrap certificate
            entity = self.ra.get_entity(label.entity)
            try:
                with self.store.transaction() as conn:
                    conn.execute(
                        insert(enroll_transactions).values(**values, end_entity_id=entity.id)
                    )
            except ConflictError:  # its transaction began meanwhile
                raise _Raced(EnrollError("forbidden", BOOTSTRAP_USED)) from None
            via = {"protocol": protocol, "credential": credential.name}
        if entity.ca != label.ca:
            self._forget_claim(txid, protocol, secret_id, used_by, finished)
            raise EnrollError(
                "forbidden",
                f"end entity {entity.name!r} is issued by CA {entity.ca!r}, not by this "
                f"label's CA {label.ca!r}",
            )
        return self._issue(
            protocol,
            txid,
            secret_id,
            used_by,
            entity.ca,
            lambda on_issued: self.ra.enroll(
                entity.name,
                **_verified(csr),
                profile=label.profile,
                actor=protocol,
                on_issued=on_issued,
                via=via,
            ),
            finished,
        )

    def _renew(self, protocol, label, csr, request, credential, txid, spki) -> Outcome:
        record = self.current_certificate(credential.certificate)
        if renewal_mismatch := _renewal_mismatch(record, request, protocol):
            raise EnrollError("bad_request", renewal_mismatch)
        if record.ca != label.ca:
            raise EnrollError(
                "forbidden", f"the certificate is of CA {record.ca!r}, not of this label's CA"
            )
        if label.entity and self.ra.get_entity_by_id(record.end_entity_id).name != label.entity:
            raise EnrollError(
                "forbidden", f"label {label.name!r} renews end entity {label.entity!r} only"
            )
        now = self.now()
        used_by = f"{protocol}:{txid}"
        try:
            with self.store.transaction() as conn:
                conn.execute(
                    insert(enroll_transactions).values(
                        protocol=protocol,
                        transaction_id=txid,
                        end_entity_id=record.end_entity_id,
                        credential=credential.name,
                        spki_sha256=spki,
                        status="claimed",
                        created_at=now,
                        updated_at=now,
                    )
                )
        except ConflictError as exc:  # the same transaction, begun meanwhile
            raise _Raced(EnrollError("conflict", exc.message)) from None
        via = {"protocol": protocol, "credential": credential.name}
        return self._issue(
            protocol,
            txid,
            None,
            used_by,
            record.ca,
            lambda on_issued: self.ra.renew(
                record.ca,
                record.serial,
                request_key=_verified(csr)["request_key"],
                actor=protocol,
                on_issued=on_issued,
                via=via,
            ),
        )

    def is_ours(self, der: bytes) -> bool:
        """Whether this certificate is one the CAs here issued."""
        with self.store.read() as conn:
            return catalog.by_fingerprint(conn, hashlib.sha256(der).hexdigest()) is not None

    def current_certificate(self, der: bytes | None):
        """The record of a certificate this RA issued that may renew itself now."""
        if der is None:
            raise EnrollError("unauthorized", "renewal needs the certificate being renewed")
        problem = self.ra.certificate_problem(der)
        if problem:
            raise EnrollError("unauthorized", problem, fail_info="badCertId")
        with self.store.read() as conn:
            record = catalog.by_fingerprint(conn, hashlib.sha256(der).hexdigest())
        if record is None or record.end_entity_id is None:
            raise EnrollError(
                "unauthorized",
                "the certificate was not issued to an end entity here",
                fail_info="badCertId",
            )
        return record

    def _issue(self, protocol, txid, secret_id, used_by, ca_name, call, finished=None) -> Outcome:
        """Issue by ``call`` (the RA's enroll or renew, from ``ca_name``); the
        transaction is marked issued, with the CA and serial, in the
        transaction that issues, so a repeat never sees it issued without
        them."""

        def on_issued(conn, cert):
            conn.execute(
                update(enroll_transactions)
                .where(
                    enroll_transactions.c.protocol == protocol,
                    enroll_transactions.c.transaction_id == txid,
                )
                .values(
                    status="issued",
                    ca=ca_name,
                    serial=serial_hex(cert.serial_number),
                    updated_at=self.now(),
                )
            )

        try:
            result = call(on_issued)
        except CAError as exc:
            # Refused by the RA's or the CA's checks: nothing issued or
            # queued, so the secret is given back and the request forgotten.
            self._forget_claim(txid, protocol, secret_id, used_by, finished)
            kind = "forbidden" if isinstance(exc, PolicyError) else "bad_request"
            if not isinstance(exc, (PolicyError, BadInputError, NotFoundError)):
                log.error("%s enrollment failed: %s", protocol, exc.message)
                kind = "unavailable"
            raise EnrollError(kind, exc.message) from None
        except BaseException:
            self._forget_claim(txid, protocol, secret_id, used_by, finished)
            raise
        if isinstance(result, ApprovalRequest):
            with self.store.transaction() as conn:
                conn.execute(
                    update(enroll_transactions)
                    .where(
                        enroll_transactions.c.protocol == protocol,
                        enroll_transactions.c.transaction_id == txid,
                    )
                    .values(status="pending", approval_request_id=result.id, updated_at=self.now())
                )
            self.count(protocol, "pending")
            return Outcome("pending", request_id=result.id)
        assert isinstance(result, Enrollment)
        if result.certificate.ca != ca_name:  # the end entity moved to another CA meanwhile
            with self.store.transaction() as conn:
                conn.execute(
                    update(enroll_transactions)
                    .where(
                        enroll_transactions.c.protocol == protocol,
                        enroll_transactions.c.transaction_id == txid,
                    )
                    .values(ca=result.certificate.ca)
                )
        self.count(protocol, "issued")
        return Outcome("issued", result.certificate.certificate, result.chain)

    def _forget_claim(self, txid, protocol, secret_id, used_by, finished=None) -> None:
        """Drop a refused request's claim (and give its secret back); the
        ``finished`` transaction it set aside takes its transaction id again."""

        def drop(conn):
            conn.execute(
                delete(enroll_transactions).where(
                    enroll_transactions.c.protocol == protocol,
                    enroll_transactions.c.transaction_id == txid,
                    enroll_transactions.c.status == "claimed",
                )
            )
            if finished is not None:
                conn.execute(
                    update(enroll_transactions)
                    .where(enroll_transactions.c.id == finished)
                    .values(transaction_id=txid)
                )

        if secret_id is not None:
            self.ra.secrets.restore(secret_id, used_by, on_restored=drop)
        else:
            with self.store.transaction() as conn:
                drop(conn)

    def _forget(self, row_id: int, secret_id: str | None, used_by: str) -> None:
        def drop(conn):
            conn.execute(delete(enroll_transactions).where(enroll_transactions.c.id == row_id))

        if secret_id is not None:
            self.ra.secrets.restore(secret_id, used_by, on_restored=drop)
        else:
            with self.store.transaction() as conn:
                drop(conn)

    # -- a repeated request, a poll -----------------------------------------------------

    def _repeat(self, row, spki: str, credential: Credential | None) -> Outcome:
        if row.spki_sha256 != spki and credential is not None and credential.kind == "bootstrap":
            raise EnrollError("forbidden", BOOTSTRAP_USED)
        if row.spki_sha256 != spki:
            raise EnrollError(
                "conflict",
                "this transaction belongs to another public key",
                fail_info="badRequest",
            )
        if credential is not None and not self._same_credential(row, credential):
            raise EnrollError(
                "unauthorized", "the request repeats a transaction under another credential"
            )
        return self.status(row)

    def _same_credential(self, row, credential: Credential) -> bool:
        """A repeated request comes with the credential of the first: the
        same secret (used by then), the same certificate."""
        if row.secret_id is not None:
            return credential.kind == "secret" and self.ra.secrets.matches(
                row.secret_id, credential.secret or ""
            )
        return credential.name == row.credential

    def poll(self, protocol: str, transaction_id: str, spki: str) -> Outcome:
        """SCEP CertPoll (RFC 8894 3.3.3): what became of a transaction."""
        with self.store.read() as conn:
            row = conn.execute(
                select(enroll_transactions).where(
                    enroll_transactions.c.protocol == protocol,
                    enroll_transactions.c.transaction_id == transaction_id,
                )
            ).one_or_none()
        if row is None:
            raise EnrollError(
                "not_found", f"no transaction {transaction_id!r}", fail_info="badCertId"
            )
        return self._repeat(row, spki, None)

    def status(self, row) -> Outcome:
        if row.status == "issued":
            return self._issued_outcome(row.ca, row.serial)
        if row.status == "failed":
            raise EnrollError("forbidden", row.note or "the request failed")
        if row.status == "claimed":
            # Another request with this transaction is being issued right now.
            return Outcome("pending")
        request = self.ra.approvals.get(row.approval_request_id)
        if request.status == "done" and request.result_serial is not None:
            with self.store.transaction() as conn:
                conn.execute(
                    update(enroll_transactions)
                    .where(enroll_transactions.c.id == row.id)
                    .values(
                        status="issued",
                        ca=request.result_ca,
                        serial=serial_hex(request.result_serial),
                        updated_at=self.now(),
                    )
                )
            self.count(row.protocol, "issued")
            return self._issued_outcome(request.result_ca, serial_hex(request.result_serial))
        if request.status in ("rejected", "expired", "failed"):
            note = f"the RA's approvers did not issue it: the request is {request.status}" + (
                f" ({request.note})" if request.note else ""
            )
            with self.store.transaction() as conn:
                conn.execute(
                    update(enroll_transactions)
                    .where(enroll_transactions.c.id == row.id)
                    .values(status="failed", note=note[:255], updated_at=self.now())
                )
            raise EnrollError("forbidden", note)
        return Outcome("pending", request_id=request.id)

    def _issued_outcome(self, ca_name: str, serial: str) -> Outcome:
        with self.store.read() as conn:
            record = catalog.certificate(conn, ca_name, int(serial, 16))
        return Outcome("issued", record.certificate, self.ca.chain(ca_name))

    # -- reads --------------------------------------------------------------------------

    def certificate_by_issuer_serial(self, issuer: x509.Name, serial: int):
        """SCEP GetCert: a certificate of one of our CAs, by issuer and serial."""
        for ca in self.ca.list_cas():
            if ca.certificate.subject == issuer:
                with self.store.read() as conn:
                    try:
                        return catalog.certificate(conn, ca.name, serial).certificate
                    except NotFoundError:
                        break
        raise EnrollError("not_found", "no such certificate here", fail_info="badCertId")

    def crl_of(self, issuer: x509.Name) -> bytes:
        """SCEP GetCRL: the newest full CRL of the CA named ``issuer``."""
        for ca in self.ca.list_cas():
            if ca.certificate.subject == issuer:
                with self.store.read() as conn:
                    der = catalog.latest_crl(conn, ca.name)
                if der is None:
                    raise EnrollError(
                        "not_found", f"CA {ca.name!r} has no CRL yet", fail_info="badCertId"
                    )
                return der
        raise EnrollError("not_found", "no CA here has that name", fail_info="badCertId")


def _renewal_mismatch(record, request, protocol: str) -> str | None:
    """RFC 7030 4.2.2: a re-enrollment's subject and subjectAltName are the
    certificate's (SCEP RenewalReq: its SANs)."""
    from ca.requests import format_san

    current = record.certificate
    try:
        sans = tuple(current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        sans = ()
    if sorted(map(format_san, sans)) != sorted(map(format_san, request.sans)):
        return "the CSR's subjectAltName must be the certificate's being renewed"
    if protocol == "est" and request.subject != current.subject:
        return "the CSR's subject must be the certificate's being renewed (RFC 7030 4.2.2)"
    return None


def _verified(csr: bytes) -> dict:
    """A CSR this service has verified, as the RA takes it from a protocol:
    its key and names, not the CSR itself, whose challengePassword (SCEP's
    enrollment secret, or EST's channel binding) would otherwise be kept
    with a request that waits for approvers."""
    from ca.requests import format_san

    request = parse_csr(csr)
    key = request.public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {"request_key": key, "sans": [format_san(n) for n in request.sans]}
