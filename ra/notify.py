"""Expiry notices by email.

For every valid certificate, at each configured threshold before notAfter
(e.g. 30, 14, 7 and 1 days) one message goes to its end entity's contact
and/or the administrators, through an SMTP server. What was sent is recorded
per certificate and threshold (``expiry_notices``), so a restart never
sends a notice twice; a certificate first seen past several thresholds gets
one message, for the nearest. A threshold is claimed (status "sending")
before the message leaves and marked "sent" after; if the SMTP server
refuses or is unreachable the claim is dropped and the next run tries again.
A process killed between the two leaves the claim: that notice is not sent
again (at most once, never a flood).
"""

import contextlib
import json
import logging
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from sqlalchemy import and_, delete, insert, select, update

from ca import catalog
from ca.errors import CAError
from ca.records import from_epoch, serial_hex
from common.clock import iso8601
from ra.settings import NotifySettings
from store import Store
from store.tables.ra import end_entities, expiry_notices

log = logging.getLogger("revoca.ra.notify")
DAY = 86400
SMTP_TIMEOUT = 30.0  # seconds for each SMTP exchange


class NotifyError(CAError):
    """The SMTP server could not take the messages; nothing was marked sent."""

    code = "smtp_error"


@dataclass
class Notice:
    certificate_id: int
    threshold_days: int
    covers: list[int]  # thresholds this notice settles (it and any passed ones)
    recipients: list[str]
    ca: str
    serial: int
    subject: str
    sans: list[str]
    not_after: int
    entity: str | None
    days_left: int

    def summary(self) -> dict:
        return {
            "ca": self.ca,
            "serial": serial_hex(self.serial),
            "subject": self.subject,
            "not_after": iso8601(self.not_after),
            "days_left": self.days_left,
            "threshold_days": self.threshold_days,
            "entity": self.entity,
            "recipients": self.recipients,
        }


@dataclass
class RunResult:
    sent: list[Notice] = field(default_factory=list)
    due: list[Notice] = field(default_factory=list)  # dry run: what would be sent
    skipped_no_recipient: int = 0


def due_notices(store: Store, settings: NotifySettings, now: int) -> tuple[list[Notice], int]:
    """Notices owed now, and how many certificates had nobody to tell."""
    horizon = now + max(settings.thresholds_days) * DAY
    with store.read() as conn:
        rows = catalog.expiring(conn, now, horizon)
        done: dict[int, set[int]] = {}
        contacts: dict[int, tuple[str, str]] = {}
        ids = [r.id for r in rows]
        for chunk in range(0, len(ids), 500):
            for cid, threshold in conn.execute(
                select(expiry_notices.c.certificate_id, expiry_notices.c.threshold_days).where(
                    expiry_notices.c.certificate_id.in_(ids[chunk : chunk + 500])
                )
            ):
                done.setdefault(cid, set()).add(threshold)
        owners = sorted({r.end_entity_id for r in rows if r.end_entity_id is not None})
        for chunk in range(0, len(owners), 500):
            for eid, name, email in conn.execute(
                select(end_entities.c.id, end_entities.c.name, end_entities.c.email).where(
                    end_entities.c.id.in_(owners[chunk : chunk + 500])
                )
            ):
                contacts[eid] = (name, email)
    notices, nobody = [], 0
    for row in rows:
        left = row.not_after - now
        crossed = [t for t in settings.thresholds_days if left <= t * DAY]
        open_ = [t for t in crossed if t not in done.get(row.id, set())]
        if not open_:
            continue
        entity_name, email = contacts.get(row.end_entity_id, (None, None))
        recipients = []
        if settings.notify_entity and email:
            recipients.append(email)
        recipients += [a for a in settings.admin_emails if a not in recipients]
        if not recipients:
            nobody += 1
            continue
        notices.append(
            Notice(
                certificate_id=row.id,
                threshold_days=min(open_),
                covers=open_,
                recipients=recipients,
                ca=row.ca,
                serial=int(row.serial, 16),
                subject=row.subject,
                sans=json.loads(row.sans),
                not_after=row.not_after,
                entity=entity_name,
                days_left=max(0, left // DAY),
            )
        )
    return notices, nobody


def message(notice: Notice, settings: NotifySettings) -> EmailMessage:
    msg = EmailMessage()
    who = notice.subject or ", ".join(notice.sans) or serial_hex(notice.serial)
    msg["Subject"] = f"Certificate expires in {notice.days_left} days: {who}"
    msg["From"] = settings.sender
    msg["To"] = ", ".join(notice.recipients)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2] or "localhost")
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    lines = [
        f"The certificate below expires on {from_epoch(notice.not_after):%Y-%m-%d %H:%M} UTC,",
        f"in {notice.days_left} days.",
        "",
        f"  Subject:      {notice.subject}",
        f"  SANs:         {', '.join(notice.sans) or '-'}",
        f"  Issuing CA:   {notice.ca}",
        f"  Serial:       {serial_hex(notice.serial)}",
        f"  End entity:   {notice.entity or '-'}",
        "",
        "Renew it before then, e.g.:",
        f"  revoca ra renew --ca {notice.ca} --serial {serial_hex(notice.serial)}"
        if notice.entity
        else "  (not issued to an end entity: renew it where it was issued)",
        "",
        f"This is the {notice.threshold_days}-day notice; each threshold is sent once.",
    ]
    msg.set_content("\n".join(lines) + "\n")
    return msg


def run(
    store: Store,
    settings: NotifySettings,
    now: int,
    *,
    password: str = "",
    dry_run: bool = False,
    send: Callable[[list[tuple[Notice, EmailMessage]]], list[Exception | None]] | None = None,
) -> RunResult:
    """Send what is owed (or, with ``dry_run``, only list it). ``password`` is
    the SMTP login's, read from ``settings.password_file`` by the caller."""
    notices, nobody = due_notices(store, settings, now)
    result = RunResult(skipped_no_recipient=nobody)
    if dry_run:
        result.due = notices
        return result
    claimed = []
    for notice in notices:
        try:
            with store.transaction() as conn:
                for threshold in notice.covers:
                    conn.execute(
                        insert(expiry_notices).values(
                            certificate_id=notice.certificate_id,
                            threshold_days=threshold,
                            status="sending",
                            recipients=json.dumps(notice.recipients),
                            at=now,
                        )
                    )
            claimed.append(notice)
        except CAError as exc:  # another notifier claimed it first
            log.info(
                "notice already claimed",
                extra={"serial": serial_hex(notice.serial), "reason": exc.message},
            )
    outcomes = (send or (lambda batch: smtp_send(batch, settings, password)))(
        [(n, message(n, settings)) for n in claimed]
    )
    failures = []
    for notice, error in zip(claimed, outcomes, strict=True):
        where = and_(
            expiry_notices.c.certificate_id == notice.certificate_id,
            expiry_notices.c.threshold_days.in_(notice.covers),
        )
        with store.transaction() as conn:
            if error is None:
                conn.execute(update(expiry_notices).where(where).values(status="sent"))
            else:
                conn.execute(delete(expiry_notices).where(where))
        if error is None:
            result.sent.append(notice)
            log.info("expiry notice sent", extra=notice.summary())
        else:
            failures.append(f"{serial_hex(notice.serial)}: {error}")
    if failures:
        raise NotifyError(
            f"{len(failures)} of {len(claimed)} notices could not be sent (they will be tried "
            f"again): {'; '.join(failures[:3])}"
        )
    return result


def smtp_send(batch, settings: NotifySettings, password: str = "") -> list[Exception | None]:
    """One SMTP session for the batch; per-message outcomes."""
    if not batch:
        return []
    try:
        client = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT)
    except OSError as exc:
        error = NotifyError(
            f"cannot reach SMTP server {settings.smtp_host}:{settings.smtp_port}: "
            f"{exc.strerror or exc}"
        )
        return [error] * len(batch)
    outcomes: list[Exception | None] = []
    try:
        client.ehlo()
        if settings.starttls:
            client.starttls(context=ssl.create_default_context())
            client.ehlo()
        if settings.username:
            client.login(settings.username, password)
        for _notice, msg in batch:
            try:
                client.send_message(msg)
                outcomes.append(None)
            except smtplib.SMTPException as exc:
                outcomes.append(exc)
    except (smtplib.SMTPException, OSError) as exc:
        outcomes += [exc] * (len(batch) - len(outcomes))
    finally:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            client.quit()
    return outcomes
