"""The ACME server's settings: the ``[acme]`` table of the configuration.

Directories are a table of tables, one per directory URL
(``/acme/<name>/directory``)::

    [acme.directories.web]
    ca = "issuing-ca"
    profiles = ["tls-server", "tls-client"]   # offered over ACME, first is the default
    external_account_required = true
    default_entity = ""    # with EAB optional: the entity accounts without it act for

With none configured, ``revoca acme serve`` offers one directory per CA
that is not self-signed, named after it, with the ``tls-server`` profile
and EAB required.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.settings import SettingsError, build, setting

_HOST = r"[0-9A-Za-z.:\-]+"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_RESOLVER = re.compile(r"(\[[0-9A-Fa-f:]+\]|[0-9.]+):[0-9]{1,5}")
DIRECTORY_KEYS = ("ca", "profiles", "external_account_required", "default_entity")


@dataclass(frozen=True)
class Directory:
    name: str
    ca: str
    profiles: tuple[str, ...]
    external_account_required: bool = True
    default_entity: str | None = None

    @property
    def default_profile(self) -> str:
        return self.profiles[0]


def _directories(key: str, value: Any) -> tuple[Directory, ...]:
    if not isinstance(value, dict):
        raise SettingsError(key, "must be a table of directories ([acme.directories.NAME])")
    out = []
    for name, table in sorted(value.items()):
        where = f"{key}.{name}"
        if not _NAME.fullmatch(name):
            raise SettingsError(where, "a directory name is 1-64 letters, digits, '_', '.', '-'")
        if not isinstance(table, dict):
            raise SettingsError(where, "must be a table")
        unknown = set(table) - set(DIRECTORY_KEYS)
        if unknown:
            raise SettingsError(f"{where}.{sorted(unknown)[0]}", "is not a directory setting")
        ca = table.get("ca")
        if not isinstance(ca, str) or not ca:
            raise SettingsError(f"{where}.ca", "names the CA that issues for this directory")
        profiles = table.get("profiles", ["tls-server"])
        if (
            not isinstance(profiles, list)
            or not profiles
            or not all(isinstance(p, str) and _NAME.fullmatch(p) for p in profiles)
            or len(set(profiles)) != len(profiles)
        ):
            raise SettingsError(f"{where}.profiles", "must be a list of distinct profile names")
        required = table.get("external_account_required", True)
        if not isinstance(required, bool):
            raise SettingsError(f"{where}.external_account_required", "must be true or false")
        entity = table.get("default_entity", "") or None
        if entity is not None and not isinstance(entity, str):
            raise SettingsError(f"{where}.default_entity", "must be an end entity's name")
        if required and entity:
            raise SettingsError(
                f"{where}.default_entity", "is only used where external_account_required = false"
            )
        if not required and not entity:
            raise SettingsError(
                f"{where}.default_entity",
                "must name the end entity that accounts without EAB act for",
            )
        out.append(Directory(name, ca, tuple(profiles), required, entity))
    return tuple(out)


def _resolver(key: str, value: Any) -> tuple[str, int] | None:
    if value == "":
        return None
    if not isinstance(value, str) or not _RESOLVER.fullmatch(value):
        raise SettingsError(key, "must be 'address:port' of a DNS server, or '' for the system's")
    host, _, port = value.rpartition(":")
    if not 0 < int(port) < 65536:
        raise SettingsError(key, "port must be 1 to 65535")
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class AcmeSettings:
    """``revoca acme serve`` (and ``revoca serve``): the ACME listener."""

    host: str = setting("127.0.0.1", "Address the ACME server listens on.", pattern=_HOST)
    port: int = setting(8555, "Its port (0: any free port).", minimum=0, maximum=65535)
    base_url: str = setting(
        "",
        "URL clients reach the server at, e.g. https://acme.example.com (every link and "
        "each request's 'url' use it); empty: http(s)://host:port.",
        pattern=r"(https?://[^\s/?#]+)?",
    )
    tls_cert: Path | None = setting(
        None, "TLS certificate (PEM) of the listener; empty: plain HTTP (keep it on 127.0.0.1)."
    )
    tls_key: Path | None = setting(
        None, "Its key (PEM; may be encrypted with the [keys] passphrase)."
    )
    terms_of_service: str = setting(
        "", "URL of the terms of service accounts must agree to; empty: none asked."
    )
    website: str = setting("", "URL of a page about this CA, shown in the directory's meta.")
    caa_identities: tuple[str, ...] = setting(
        (), "Domain names CAA 'issue' records name this CA by (RFC 8659), in the directory."
    )
    caa: str = setting(
        "auto",
        "CAA checking before issuance: on, off, or auto (on for profiles under the Baseline "
        "Requirements, off for the rest).",
        choices=("auto", "on", "off"),
    )
    resolver: tuple[str, int] | None = setting(
        None,
        "DNS server the validators ask, 'address:port'; empty: the system's resolver.",
        parse=_resolver,
    )
    http_port: int = setting(
        80, "Port http-01 validation connects to (80 outside tests).", minimum=1, maximum=65535
    )
    tls_port: int = setting(
        443,
        "Port tls-alpn-01 validation connects to (443 outside tests).",
        minimum=1,
        maximum=65535,
    )
    validation_timeout: float = setting(
        10.0,
        "Seconds one validation may take, connecting and reading included.",
        minimum=0.1,
        maximum=120,
    )
    validations: int = setting(
        16, "Validations running at once; more wait their turn.", minimum=1, maximum=1024
    )
    validations_per_account: int = setting(
        20,
        "Challenges of one account validated at once; more are refused (rateLimited) "
        "until those are done.",
        minimum=1,
        maximum=10000,
    )
    order_lifetime_hours: float = setting(
        24,
        "Hours a pending order (and its authorizations) stays usable.",
        minimum=0.01,
        maximum=24 * 30,
    )
    orders_per_account_per_hour: int = setting(
        300, "New orders one account may create in any hour; 0: no limit.", minimum=0
    )
    certificates_per_domain_per_week: int = setting(
        0,
        "Certificates issued for names under one registered domain in any 7 days; 0: no limit.",
        minimum=0,
    )
    registered_domain_labels: int = setting(
        2,
        "How many labels from the right make a name's registered domain for the rate "
        "limit (2: example.com; 3 under a suffix such as co.uk).",
        minimum=1,
        maximum=10,
    )
    eab_key_days: int = setting(
        30, "Days an unused external account binding key stays valid.", minimum=1, maximum=366
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
    max_connections: int = setting(
        1024, "Connections held at once; more are closed at once.", minimum=1
    )
    threads: int = setting(
        8, "Threads that run store operations for requests.", minimum=1, maximum=128
    )
    directories: tuple[Directory, ...] = setting(
        (), "The directories served: a table [acme.directories.NAME] each.", parse=_directories
    )

    def check(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise SettingsError("tls_cert", "and tls_key go together")

    @classmethod
    def from_table(cls, table: dict) -> "AcmeSettings":
        return build(cls, table, "acme")
