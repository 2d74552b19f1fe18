"""Expiry notices through a real SMTP server (aiosmtpd on 127.0.0.1): the
thresholds, the recipients, once per certificate and threshold across
restarts, a dry run, and an SMTP outage that loses nothing."""

import copy
import email
import email.policy
import threading

import pytest
from aiosmtpd.controller import Controller

from ca.records import serial_hex
from common.clock import iso8601
from ra import notify
from ra.service import RAService
from tests.conftest import FIXED_NOW, free_port, make_csr
from tests.ra_fixtures import OFFICER_ENTITY

NOW = int(FIXED_NOW.timestamp())
DAY = 86400


class Inbox:
    def __init__(self):
        self.messages = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
            self.messages.append((envelope.rcpt_tos, parsed))
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


@pytest.fixture
def ra(make_service):
    pki = make_service(clock=lambda: FIXED_NOW)
    pki.init_root("root", "CN=Notify Root,O=Revoca Tests,C=DE", key_type="ec-p384")
    pki.create_sub("issuing", "root", "CN=Notify CA,O=Revoca Tests,C=DE")
    service = RAService(pki)
    body = copy.deepcopy(OFFICER_ENTITY)
    service.create_entity(
        body["name"],
        email="web-team@example.com",
        ca="issuing",
        profile="tls-server",
        subject_template=body["subject_template"],
        allowed_sans=body["allowed_sans"],
    )
    return service


def _issue(service, days):
    return service.enroll(
        "web-1", csr=make_csr("x", ("dns:web-1.example.com",)), days=days
    ).certificate


def _settings(controller, **kw):
    return notify.NotifySettings(
        smtp_host="127.0.0.1",
        smtp_port=controller.port,
        sender="pki@example.com",
        admin_emails=("pki-admins@example.com",),
        **kw,
    )


def test_each_threshold_once_with_its_recipients(ra, smtp):
    controller, inbox = smtp
    short = _issue(ra, 10)  # expires in 10 days: 30 and 14 passed already
    _issue(ra, 60)  # nothing due for 30 days
    settings = _settings(controller)

    result = notify.run(ra.store, settings, NOW)
    assert [(n.serial, n.threshold_days) for n in result.sent] == [(short.serial, 14)]
    assert len(inbox.messages) == 1
    rcpt, msg = inbox.messages[0]
    assert sorted(rcpt) == ["pki-admins@example.com", "web-team@example.com"]
    assert msg["Subject"].startswith("Certificate expires in 9 days")
    assert msg["Auto-Submitted"] == "auto-generated"
    assert serial_hex(short.serial) in msg.get_content()

    # Again, and from a new process: nothing new until the next threshold.
    assert notify.run(ra.store, settings, NOW + 3600).sent == []
    fresh = RAService(ra.ca)
    assert notify.run(fresh.store, settings, NOW + DAY).sent == []
    assert len(inbox.messages) == 1
    # 7 days before, then 1 day before; then nothing after expiry.
    sent = [notify.run(ra.store, settings, NOW + d * DAY).sent for d in (3, 4, 9, 10, 11)]
    assert [[n.threshold_days for n in s] for s in sent] == [[7], [], [1], [], []]
    assert len(inbox.messages) == 3


def test_dry_run_lists_and_records_nothing(ra, smtp):
    controller, inbox = smtp
    cert = _issue(ra, 5)
    settings = _settings(controller, notify_entity=False)
    result = notify.run(ra.store, settings, NOW, dry_run=True)
    assert [n.summary()["serial"] for n in result.due] == [serial_hex(cert.serial)]
    assert result.due[0].recipients == ["pki-admins@example.com"]
    assert result.due[0].summary()["not_after"] == iso8601(cert.not_after)  # ...Z, to the second
    assert inbox.messages == []
    assert len(notify.run(ra.store, settings, NOW).sent) == 1  # still owed


def test_an_smtp_outage_loses_no_notice(ra, smtp):
    controller, inbox = smtp
    _issue(ra, 3)
    down = notify.NotifySettings(
        smtp_host="127.0.0.1", smtp_port=free_port(), admin_emails=("a@example.com",)
    )
    with pytest.raises(notify.NotifyError, match="cannot reach SMTP server"):
        notify.run(ra.store, down, NOW)
    result = notify.run(ra.store, _settings(controller), NOW)
    assert len(result.sent) == 1 and len(inbox.messages) == 1


def test_revoked_and_recipientless_certificates_get_nothing(ra, smtp):
    controller, inbox = smtp
    cert = _issue(ra, 3)
    ra.revoke("issuing", cert.serial, "superseded")
    good = _issue(ra, 3)
    nobody = notify.NotifySettings(
        smtp_host="127.0.0.1", smtp_port=controller.port, notify_entity=False
    )
    result = notify.run(ra.store, nobody, NOW)
    assert result.sent == [] and result.skipped_no_recipient == 1
    assert inbox.messages == []
    # With recipients: only the good one, at 7 and then 1 day; never the revoked one.
    for later, threshold in ((NOW + DAY, 7), (NOW + 2 * DAY + 3600, 1)):
        sent = notify.run(ra.store, _settings(controller), later).sent
        assert [(n.serial, n.threshold_days) for n in sent] == [(good.serial, threshold)]
