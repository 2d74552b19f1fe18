"""The RA's settings: the ``[ra]`` and ``[notify]`` tables of the
configuration, typed.

Each is one frozen object built by its ``from_table`` (the one validating
constructor, common/settings.py) and handed whole to what uses it: the REST
API listener and the approval policy (``RASettings``), the expiry notifier
(``NotifySettings``). ``revoca/default.toml`` repeats the same keys with the
same defaults for operators (a test holds them together).
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.settings import SettingsError, build, setting

_HOST = r"[0-9A-Za-z.:\-]+"
_PROFILE = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
MAX_APPROVALS = 10


def _approvals(key: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_APPROVALS:
        raise SettingsError(key, f"must be 0 to {MAX_APPROVALS}")
    return value


def _by_profile(key: str, value: Any) -> tuple[tuple[str, int], ...]:
    if not isinstance(value, dict):
        raise SettingsError(key, "must be a table of profile = count, e.g. { tls-server = 2 }")
    pairs = []
    for profile, count in sorted(value.items()):
        if not isinstance(profile, str) or not re.fullmatch(_PROFILE, profile):
            raise SettingsError(key, f"names {profile!r}, which is not a profile name")
        pairs.append((profile, _approvals(f"{key}.{profile}", count)))
    return tuple(pairs)


@dataclass(frozen=True)
class RASettings:
    """``revoca ra serve`` (and ``revoca serve``): the REST API and its approvals."""

    host: str = setting("127.0.0.1", "Address the REST API listens on.", pattern=_HOST)
    port: int = setting(8443, "Its port (0: any free port).", minimum=0, maximum=65535)
    tls_cert: Path | None = setting(
        None, "TLS certificate (PEM) of the API; empty: plain HTTP (keep it on 127.0.0.1)."
    )
    tls_key: Path | None = setting(
        None, "Its key (PEM; may be encrypted with the [keys] passphrase)."
    )
    tls_client_ca: Path | None = setting(
        None,
        "CA whose client certificates may sign in (they must also be registered to an "
        "operator); needs tls_cert and tls_key.",
    )
    request_timeout: float = setting(
        10.0,
        "Seconds from a request's first byte until its headers and body have arrived; "
        "slower clients get 408 and the connection closes.",
        minimum=0.001,
    )
    idle_timeout: float = setting(
        60.0,
        "Seconds a keep-alive connection with no request in progress stays open.",
        minimum=0.001,
    )
    threads: int = setting(
        4,
        "Threads that run store operations for the API; about one per concurrent "
        "operator, more only on PostgreSQL.",
        minimum=1,
        maximum=64,
    )
    approvals_issue: int = setting(
        0,
        "Distinct approvers an issuance (enroll, renew) needs; 0: issued at once.",
        parse=_approvals,
    )
    approvals_revoke: int = setting(
        0, "Distinct approvers a revocation needs; 0: revoked at once.", parse=_approvals
    )
    approvals_by_profile: tuple[tuple[str, int], ...] = setting(
        (),
        "Approvals for issuance under a profile, raising approvals_issue for it: "
        "{ tls-server = 2 } (pairs sorted by profile).",
        parse=_by_profile,
    )
    request_expiry_hours: float = setting(
        72,
        "Requests not decided within this many hours expire (at most 90 days).",
        minimum=0,
        maximum=24 * 90,
    )

    def check(self) -> None:
        if self.request_expiry_hours <= 0:
            raise SettingsError("request_expiry_hours", "must be more than 0 and at most 2160")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise SettingsError("tls_cert", "and tls_key go together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise SettingsError("tls_client_ca", "needs tls_cert and tls_key (TLS)")

    @classmethod
    def from_table(cls, table: dict) -> "RASettings":
        return build(cls, table, "ra")

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def profile_approvals(self) -> dict[str, int]:
        return dict(self.approvals_by_profile)


def _thresholds(key: str, value: Any) -> tuple[int, ...]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 366 for d in value)
    ):
        raise SettingsError(key, "must be a list of days from 1 to 366")
    return tuple(sorted(set(value), reverse=True))


def _emails(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(
        isinstance(e, str) and "@" in e and not any(c in e for c in "\r\n,") for e in value
    ):
        raise SettingsError(key, "must be a list of email addresses")
    return tuple(value)


def _address(key: str, value: Any) -> str:
    if not isinstance(value, str) or "@" not in value or any(c in value for c in "\r\n,<>"):
        raise SettingsError(key, "must be an email address")
    return value


@dataclass(frozen=True)
class NotifySettings:
    """``revoca ra notify``: expiry notices by email, each certificate and
    threshold once."""

    smtp_host: str = setting("127.0.0.1", "SMTP server.", pattern=_HOST)
    smtp_port: int = setting(25, "Its port.", minimum=1, maximum=65535)
    starttls: bool = setting(False, "Upgrade the connection with STARTTLS before logging in.")
    username: str = setting("", "SMTP login (empty: none).")
    password_file: Path | None = setting(
        None, "File holding the SMTP password (mode 0600); needed with username."
    )
    sender: str = setting("revoca@localhost", "From address of the notices.", parse=_address)
    thresholds_days: tuple[int, ...] = setting(
        (30, 14, 7, 1),
        "Days before notAfter at which a notice goes out (1 to 366; kept largest first).",
        parse=_thresholds,
    )
    notify_entity: bool = setting(True, "Also mail the end entity's contact address.")
    admin_emails: tuple[str, ...] = setting((), "Addresses that get every notice.", parse=_emails)
    interval: float = setting(
        3600,
        "`revoca ra notify --loop` looks for due notices this often (seconds); an hour "
        "is plenty for thresholds counted in days.",
        minimum=1,
    )

    def check(self) -> None:
        if self.username and self.password_file is None:
            raise SettingsError("username", "needs password_file")

    @classmethod
    def from_table(cls, table: dict) -> "NotifySettings":
        return build(cls, table, "notify")
