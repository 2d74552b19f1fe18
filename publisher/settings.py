"""The publisher's settings: the ``[publisher]`` table of the configuration, typed.

One frozen object, built once by ``PublisherSettings.from_table`` (the one
validating constructor, common/settings.py) and handed whole to what runs
the publisher: ``revoca publisher run`` and ``snapshot``, and the co-located
publisher of ``revoca serve`` and ``revoca demo``. Every field says what it
is for and how to size it; ``revoca/default.toml`` repeats the same keys with
the same defaults for operators (a test holds them together).
"""

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.settings import SettingsError, build, group, setting

_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"


def _source(key: str, value: Any) -> str:
    # The publish protocol's rule for a source (va/publish.py), so that no VA
    # refuses what the configuration took.
    if not isinstance(value, str) or not 1 <= len(value) <= 128 or not value.isprintable():
        raise SettingsError(key, "must be a printable string of 1 to 128 characters")
    return value


@dataclass(frozen=True)
class LocalTargetSettings:
    """A co-located VA, written through its LMDB directory with the VA's own
    apply code (no admin listener, no token)."""

    name: str = setting("", "The VA's name in logs, status and metrics.", pattern=_NAME)
    local: Path | None = setting(
        None, "The VA's directory (its lmdb/ inside); empty: this node's [va] directory."
    )

    def check(self) -> None:
        if not self.name:
            raise SettingsError("name", "is needed")


@dataclass(frozen=True)
class HTTPTargetSettings:
    """A VA reached over its admin listener (va/admin.py)."""

    name: str = setting("", "The VA's name in logs, status and metrics.", pattern=_NAME)
    url: str = setting(
        "",
        "The admin listener, http://host:port or https://host:port (mutual TLS).",
        pattern=r"https?://[A-Za-z0-9.\-\[\]:]+(:[0-9]{1,5})?/?",
    )
    token_file: Path | None = setting(
        None, "The VA's admin token (mode 0600; `revoca va admin-token` made it)."
    )
    client_cert: Path | None = setting(
        None, "Mutual TLS (all three, or none; https only): this publisher's certificate."
    )
    client_key: Path | None = setting(
        None, "Its key (PEM; may be encrypted with the [keys] passphrase)."
    )
    ca_file: Path | None = setting(None, "The CA that issued the VA's listener certificate.")

    def check(self) -> None:
        if not self.name:
            raise SettingsError("name", "is needed")
        if not self.url:
            raise SettingsError("url", "is needed")
        if self.token_file is None:
            raise SettingsError("token_file", "is needed for a VA reached over HTTP")
        tls = (self.client_cert, self.client_key, self.ca_file)
        if any(tls) and not all(tls):
            raise SettingsError("client_cert", "needs client_key and ca_file: all three, or none")
        if all(tls) and not self.url.startswith("https://"):
            raise SettingsError("url", "must be https:// for mutual TLS")

    @property
    def tls(self) -> tuple[Path, Path, Path] | None:
        """(client certificate, client key, server CA), or None for plain HTTP."""
        if self.client_cert is None or self.client_key is None or self.ca_file is None:
            return None
        return self.client_cert, self.client_key, self.ca_file


TargetSettings = LocalTargetSettings | HTTPTargetSettings


def _targets(key: str, value: Any) -> tuple[TargetSettings, ...]:
    if not isinstance(value, list):
        raise SettingsError(key, "must be a list of tables")
    targets: list[TargetSettings] = []
    for index, table in enumerate(value):
        where = f"{key}[{index}]"
        if not isinstance(table, dict):
            raise SettingsError(where, "must be a table")
        if "local" in table:
            target = build(LocalTargetSettings, table, where)
        elif "url" in table:
            target = build(HTTPTargetSettings, table, where)
        else:
            raise SettingsError(where, "needs either local = DIR, or url and token_file")
        if any(t.name == target.name for t in targets):
            raise SettingsError(key, f"use the name {target.name!r} once")
        targets.append(target)
    return tuple(targets)


@dataclass(frozen=True)
class MetricsSettings:
    """The Prometheus /metrics listener of ``revoca publisher run``."""

    host: str = setting("127.0.0.1", "Its address.", pattern=r"[0-9A-Za-z.:-]+")
    port: int = setting(8082, "Its port; 0 turns it off.", minimum=0, maximum=65535)


@dataclass(frozen=True)
class PublisherSettings:
    source: str = setting(
        "revoca-ca",
        "This publisher's name to the VAs, which track the highest event they applied per "
        "source: keep it stable, and distinct per CA store (a second publisher of the same "
        "store under another name sends every event again, harmlessly but in full).",
        parse=_source,
    )
    batch: int = setting(
        1000,
        "Most events in one delivery (one VA write transaction). Larger batches cost fewer "
        "round trips (benchmarks/publish_bench.py: some 60 times the events/s of one "
        "event per request at 1000); each event is about 150 bytes of JSON. At most the "
        "protocol's 10 000.",
        minimum=1,
        maximum=10_000,
    )
    poll_interval: float = setting(
        0.05,
        "Seconds an idle publisher waits before looking for new events (a co-located CA "
        "wakes it at once): the bound on a revocation's delay to the VAs, paid as one "
        "small query per interval.",
        minimum=0.001,
    )
    max_backoff: float = setting(
        30.0,
        "Longest wait in seconds between tries to a failing VA; the wait doubles from "
        "0.5 s up to this, with a random factor of 0.5 to 1.5 so that publishers do not "
        "retry in step. A VA back from an outage waits at most this long for its events.",
        minimum=0.01,
    )
    http_timeout: float = setting(
        10.0,
        "Seconds one request to a VA's admin listener may take before it counts as failed "
        "and is retried: above a batch's apply time (tens of milliseconds; longer while "
        "the VA's LMDB map grows).",
        minimum=0.01,
    )
    crl_interval: float = setting(
        1.0,
        "Seconds between looks for new CRLs to push (one query of the CRL numbers each).",
        minimum=0.01,
    )
    snapshot_chunk: int = setting(
        10_000,
        "Statuses per chunk of a snapshot (`revoca va import`, `revoca publisher snapshot`): "
        "each chunk is one VA write transaction and about 150 bytes a status on the wire "
        "(1.5 MB at 10 000, the protocol's most); smaller chunks hold the VA's writer for "
        "less time between the publisher's batches.",
        minimum=1,
        maximum=10_000,
    )
    metrics: MetricsSettings = group(
        MetricsSettings, prefix="metrics_", doc="Prometheus metrics of the running publisher."
    )
    targets: tuple[TargetSettings, ...] = setting(
        doc="The VAs: each a table, either { name, url, token_file } (with client_cert, "
        "client_key and ca_file for mutual TLS) or { name, local = DIR } for a co-located "
        'VA ("" is this node\'s [va] directory).',
        default_factory=lambda: (LocalTargetSettings("local"),),
        parse=_targets,
    )

    @classmethod
    def from_table(cls, table: dict, va_directory: Path) -> "PublisherSettings":
        """``[publisher]`` of the merged configuration; local targets left
        empty are this node's VA (``va_directory``)."""
        return build(cls, table, "publisher").resolved(va_directory)

    def resolved(self, va_directory: Path) -> "PublisherSettings":
        """These settings with every local target's directory filled in."""
        targets = tuple(
            dataclasses.replace(t, local=Path(va_directory))
            if isinstance(t, LocalTargetSettings) and t.local is None
            else t
            for t in self.targets
        )
        return dataclasses.replace(self, targets=targets)

    def target(self, name: str) -> TargetSettings:
        for target in self.targets:
            if target.name == name:
                return target
        names = ", ".join(repr(t.name) for t in self.targets)
        raise SettingsError("publisher.targets", f"has no VA named {name!r} (it has {names})")
