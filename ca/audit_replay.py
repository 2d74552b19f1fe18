"""The audit log replayed against the certificates table.

Every certificate a CA held here issued has its issuance in the log
(``ca.issue``, ``ca.create_sub``, ``ca.ocsp_signer``, target
``CA/serial``), and every change of its status too: ``ca.revoke`` (the
reason, the revocation time, and since this replay exists the status and
the invalidity date) and ``ca.release_hold``. Replaying those records in
order gives each certificate's status as the log has it (RFC 5280 5.3.1:
certificateHold is a hold, removeFromCRL its release); the certificates
table must hold the same status, reason, revocation time and (where the
record has it) invalidity date. A row the log never issued, a certificate
the log issued that the table lacks, and every difference are reported.

Inventory certificates (issued elsewhere, ca/inventory.py) are recorded by
import, not one by one, and cannot be revoked here: they must be good.

One small entry per certificate is held in memory while the log is read.
"""

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from ca.inventory import EXTERNAL
from ca.reasons import RevocationReason
from ca.records import from_epoch, serial_hex, to_epoch
from store.tables.ca import cas, certificates

ISSUANCE = frozenset({"ca.issue", "ca.create_sub", "ca.ocsp_signer"})
REVOKE, RELEASE = "ca.revoke", "ca.release_hold"
_UNRECORDED = object()  # a revocation record from before invalidity dates were audited


@dataclass(frozen=True)
class Mismatch:
    """A certificate whose row and audit records disagree; ``table`` and
    ``audit`` are what each says (None: it has no such certificate)."""

    ca: str
    serial: int
    table: dict | None
    audit: dict | None
    seq: int | None  # the last audit record of the certificate

    @property
    def message(self) -> str:
        name = f"{self.ca}/{serial_hex(self.serial)}"
        if self.audit is None:
            return f"{name} is in the certificates table, but no audit record issued it"
        if self.table is None:
            return (
                f"{name} was issued by audit record {self.seq}, but is not in the "
                "certificates table (deleted?)"
            )
        return (
            f"{name} is {_describe(self.table)} in the certificates table, "
            f"{_describe(self.audit)} by the audit log (record {self.seq})"
        )

    def summary(self) -> dict:
        return {
            "ca": self.ca,
            "serial": serial_hex(self.serial),
            "table": self.table,
            "audit": self.audit,
            "seq": self.seq,
            "message": self.message,
        }


def _describe(state: dict) -> str:
    fields = [f"{state['reason']}"] if state["reason"] is not None else []
    if state["revoked_at"] is not None:
        fields.append(f"since {state['revoked_at']}")
    if state.get("invalidity_date") is not None:
        fields.append(f"invalid since {state['invalidity_date']}")
    return f"{state['status']} ({', '.join(fields)})" if fields else state["status"]


def _reason_name(value: int | None) -> str | None:
    if value is None:
        return None
    try:
        return RevocationReason(value).name
    except ValueError:
        return f"reason {value}"  # a value no CRLReason has: the row was edited


def _iso(epoch: int | None) -> str | None:
    return None if epoch is None else from_epoch(epoch).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(text: str | None) -> int | None:
    return None if text is None else to_epoch(datetime.fromisoformat(text))


def _state(status, reason, revoked_at, invalidity) -> dict:
    state = {
        "status": status,
        "reason": _reason_name(reason),
        "revoked_at": _iso(revoked_at),
    }
    if invalidity is not _UNRECORDED:
        state["invalidity_date"] = _iso(invalidity)
    return state


class Replay:
    """Feed it every audit row in order (``observe``, the verifier's
    callback), then ``compare`` with the certificates table."""

    def __init__(self):
        # (CA name, serial) -> (status, reason, revoked_at, invalidity date, last seq)
        self.expected: dict[tuple[str, int], tuple] = {}

    def observe(self, row) -> None:
        action = row.action
        if row.result != "ok" or not (action in ISSUANCE or action in (REVOKE, RELEASE)):
            return
        ca_name, _, serial_text = row.target.partition("/")
        try:
            key = (ca_name, int(serial_text, 16))
        except ValueError:
            return  # not a certificate's record (verify reports a record edited to this)
        if action in ISSUANCE or action == RELEASE:
            self.expected[key] = ("good", None, None, None, row.seq)
            return
        detail = json.loads(row.detail)
        reason = RevocationReason[detail["reason"]]
        status = detail.get("status") or (
            "hold" if reason == RevocationReason.certificateHold else "revoked"
        )
        invalidity = (
            _epoch(detail["invalidity_date"]) if "invalidity_date" in detail else _UNRECORDED
        )
        self.expected[key] = (
            status,
            int(reason),
            _epoch(detail["revoked_at"]),
            invalidity,
            row.seq,
        )

    def compare(self, conn: Connection) -> tuple[int, list[Mismatch]]:
        """(certificates checked, every mismatch)."""
        mismatches = []
        checked = 0
        query = (
            select(
                cas.c.name,
                cas.c.origin,
                certificates.c.serial,
                certificates.c.status,
                certificates.c.revocation_reason,
                certificates.c.revoked_at,
                certificates.c.invalidity_date,
            )
            .join(cas, cas.c.id == certificates.c.ca_id)
            .order_by(cas.c.name, certificates.c.serial)
            .execution_options(yield_per=5000)
        )
        expected = self.expected
        for row in conn.execute(query):
            checked += 1
            serial = int(row.serial, 16)
            key = (row.name, serial)
            audit = expected.pop(key, None)
            if row.origin == EXTERNAL:
                audit = ("good", None, None, None, None)  # never revoked here
            table = (row.status, row.revocation_reason, row.revoked_at, row.invalidity_date)
            if audit is None:
                mismatches.append(Mismatch(row.name, serial, _state(*table), None, None))
                continue
            want, seq = audit[:4], audit[4]
            if want[3] is _UNRECORDED:
                table = (*table[:3], _UNRECORDED)
            if table != want:
                mismatches.append(Mismatch(row.name, serial, _state(*table), _state(*want), seq))
        for (ca_name, serial), audit in sorted(expected.items()):
            mismatches.append(Mismatch(ca_name, serial, None, _state(*audit[:4]), audit[4]))
        return checked, mismatches
