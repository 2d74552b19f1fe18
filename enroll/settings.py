"""The enrollment listeners' settings: the ``[enroll]`` table.

EST (RFC 7030) is served over TLS only, on ``est_port``; SCEP (RFC 8894),
whose messages carry their own signatures and encryption, over plain HTTP
on ``scep_port`` (and on the EST listener too). Labels map a path to a CA
and profile, or to one end entity::

    [enroll.labels.routers]
    ca = "issuing-ca"
    profile = "tls-client"     # empty: the end entity's own profile
    entity = "router-fleet"    # bootstrap certificates enroll as this entity

served at ``/.well-known/est/routers/...`` and ``/scep/routers``. With no
labels configured, each CA that is not self-signed is a label named after
it. The paths without a label use ``ca`` (or the only CA that is not
self-signed).
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.settings import SettingsError, build, setting

_HOST = r"[0-9A-Za-z.:\-]+"
# RFC 7030 3.2.2: a label is a path segment; not one of the operation names.
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
OPERATIONS = ("cacerts", "simpleenroll", "simplereenroll", "csrattrs", "serverkeygen")
LABEL_KEYS = ("ca", "profile", "entity", "bootstrap_anchors")


@dataclass(frozen=True)
class Label:
    name: str  # "" for the paths without a label
    ca: str  # "" for the default label: [enroll] ca, or the only issuing CA
    profile: str | None = None
    entity: str | None = None
    bootstrap_anchors: Path | None = None  # PEM: manufacturer CAs whose certificates enroll


def _labels(key: str, value: Any) -> tuple[Label, ...]:
    if not isinstance(value, dict):
        raise SettingsError(key, "must be a table of labels ([enroll.labels.NAME])")
    out = []
    for name, table in sorted(value.items()):
        where = f"{key}.{name}"
        if not _LABEL.fullmatch(name) or name in OPERATIONS:
            raise SettingsError(
                where, "a label is 1-64 letters, digits, '_', '.', '-', and no EST operation name"
            )
        if not isinstance(table, dict):
            raise SettingsError(where, "must be a table")
        unknown = set(table) - set(LABEL_KEYS)
        if unknown:
            raise SettingsError(f"{where}.{sorted(unknown)[0]}", "is not a label setting")
        values = {}
        for field in LABEL_KEYS:
            v = table.get(field, "")
            if not isinstance(v, str):
                raise SettingsError(f"{where}.{field}", "must be a string")
            values[field] = v or None
        if not values["ca"]:
            raise SettingsError(f"{where}.ca", "names the CA that issues under this label")
        if values["bootstrap_anchors"] and not values["entity"]:
            raise SettingsError(
                f"{where}.entity", "must name the end entity bootstrap certificates enroll as"
            )
        anchors = Path(values["bootstrap_anchors"]) if values["bootstrap_anchors"] else None
        out.append(Label(name, values["ca"], values["profile"], values["entity"], anchors))
    return tuple(out)


@dataclass(frozen=True)
class EnrollSettings:
    """``revoca est serve``, ``revoca scep serve``, ``revoca enroll serve``
    (and ``revoca serve``): the device enrollment listeners."""

    host: str = setting("127.0.0.1", "Address the listeners bind.", pattern=_HOST)
    est_port: int = setting(
        9443, "EST over TLS (0: any free port; -1: no EST listener).", minimum=-1, maximum=65535
    )
    scep_port: int = setting(
        8089, "SCEP over HTTP (0: any free port; -1: no SCEP listener).", minimum=-1, maximum=65535
    )
    tls_cert: Path | None = setting(
        None,
        "TLS certificate (PEM, chain after it) of the EST listener; empty: one is issued "
        "from the enrollment CA for host (and renewed when a third of it is left).",
    )
    tls_key: Path | None = setting(
        None, "Its key (PEM; may be encrypted with the [keys] passphrase)."
    )
    ca: str = setting(
        "", "CA of the paths without a label; empty: the only CA here that is not self-signed."
    )
    bootstrap_anchors: Path | None = setting(
        None,
        "PEM file of manufacturer CAs whose device certificates may enroll over EST "
        "without a secret (with bootstrap_entity).",
    )
    bootstrap_entity: str = setting(
        "", "End entity that bootstrap certificates on the paths without a label enroll as."
    )
    retry_after: int = setting(
        60,
        "Seconds a device is told to wait (EST 202 Retry-After) while approvers decide.",
        minimum=1,
        maximum=86400,
    )
    channel_binding: str = setting(
        "optional",
        "EST: a CSR's challengePassword must carry the TLS channel binding (RFC 7030 3.5; "
        "tls-exporter on TLS 1.3, RFC 9266): optional (checked when present) or required.",
        choices=("optional", "required"),
    )
    scep_legacy: bool = setting(
        False,
        "SCEP: also accept DES3 envelopes and SHA-1 signatures, for old devices.",
    )
    scep_ra_key_type: str = setting(
        "rsa-2048",
        "Key of the SCEP RA certificate issued per CA (SCEP encrypts to RSA).",
        choices=("rsa-2048", "rsa-3072", "rsa-4096"),
    )
    request_timeout: float = setting(
        10.0,
        "Seconds from a request's first byte until its headers and body have arrived.",
        minimum=0.001,
    )
    idle_timeout: float = setting(
        60.0,
        "Seconds a keep-alive connection with no request in progress stays open.",
        minimum=0.001,
    )
    max_connections: int = setting(1024, "Connections held at once per listener.", minimum=1)
    max_body: int = setting(
        64 * 1024, "Largest request body in bytes.", minimum=1024, maximum=1 << 22
    )
    threads: int = setting(
        8, "Threads that run store operations for requests.", minimum=1, maximum=128
    )
    labels: tuple[Label, ...] = setting(
        (), "Labels: a table [enroll.labels.NAME] each.", parse=_labels
    )

    def check(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise SettingsError("tls_cert", "and tls_key go together")
        if self.bootstrap_anchors is not None and not self.bootstrap_entity:
            raise SettingsError(
                "bootstrap_entity", "must name the end entity bootstrap certificates enroll as"
            )

    def default_label(self) -> Label:
        return Label(
            "",
            self.ca,
            None,
            self.bootstrap_entity or None,
            self.bootstrap_anchors,
        )

    @classmethod
    def from_table(cls, table: dict) -> "EnrollSettings":
        return build(cls, table, "enroll")
