"""One configuration file (TOML), merged over the documented defaults in
revoca/default.toml."""

import copy
import os
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ca.errors import ConfigError
from ca.keys import PassphraseSource
from ca.profiles import Profile, load_profiles
from common.settings import SettingsError
from publisher.settings import PublisherSettings
from va.settings import VASettings

CONFIG_ENV = "REVOCA_CONFIG"


def default_text() -> str:
    return resources.files("revoca").joinpath("default.toml").read_text()


def _merge(base: dict, override: dict, path: str = "") -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        where = f"{path}{key}"
        if path == "" and key not in base:
            raise ConfigError(f"unknown configuration section [{where}]")
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            # Profiles are replaced whole: a partial profile would silently
            # inherit the defaults' limits.
            if path == "profiles.":
                out[key] = copy.deepcopy(value)
            else:
                out[key] = _merge(out[key], value, f"{where}.")
        else:
            if path and path != "profiles." and key not in base:
                raise ConfigError(f"unknown setting {where}")
            out[key] = value
    return out


@dataclass(frozen=True)
class Config:
    data_dir: Path
    store_url: str
    auto_migrate: bool
    passphrase: PassphraseSource
    base_url: str
    profiles: dict[str, Profile]
    source: str
    va: VASettings
    publisher: PublisherSettings
    crl: dict
    ra: dict
    notify: dict

    @property
    def key_dir(self) -> Path:
        return self.data_dir / "keys"


def load_config(path: Path | None = None, *, data_dir: Path | None = None) -> Config:
    """Load ``path`` (or $REVOCA_CONFIG) over the defaults; ``data_dir`` overrides
    paths.data_dir (the CLI's --data-dir)."""
    raw = tomllib.loads(default_text())
    source = "built-in defaults"
    if path is None and os.environ.get(CONFIG_ENV):
        path = Path(os.environ[CONFIG_ENV])
    if path is not None:
        try:
            user = tomllib.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read configuration {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration {path} is not valid TOML: {exc}") from None
        raw = _merge(raw, user)
        source = str(path)
    try:
        root = Path(data_dir or raw["paths"]["data_dir"])
        va = VASettings.from_table(raw["va"], root)
        url = raw["store"]["url"] or f"sqlite:///{root / 'revoca.db'}"
        passphrase_file = raw["keys"]["passphrase_file"]
        return Config(
            data_dir=root,
            store_url=url,
            auto_migrate=bool(raw["store"]["auto_migrate"]),
            passphrase=PassphraseSource(
                env=raw["keys"]["passphrase_env"],
                file=Path(passphrase_file) if passphrase_file else None,
            ),
            base_url=raw["urls"]["base"],
            profiles=load_profiles(raw["profiles"]),
            source=source,
            va=va,
            crl=_crl_section(raw["crl"], raw["urls"]["base"]),
            ra=_ra_section(raw["ra"]),
            notify=_notify_section(raw["notify"]),
            publisher=PublisherSettings.from_table(raw["publisher"], va.directory),
        )
    except SettingsError as exc:
        raise ConfigError(exc.message) from None
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"configuration is incomplete or mistyped: {exc}") from None


def _ra_section(table: dict) -> dict:
    ra = dict(table)
    if not isinstance(ra["port"], int) or not 0 <= ra["port"] <= 65535:
        raise ConfigError("ra.port must be 0 to 65535")
    if not isinstance(ra["threads"], int) or not 1 <= ra["threads"] <= 64:
        raise ConfigError("ra.threads must be 1 to 64")
    if bool(ra["tls_cert"]) != bool(ra["tls_key"]):
        raise ConfigError("ra.tls_cert and ra.tls_key go together")
    if ra["tls_client_ca"] and not ra["tls_cert"]:
        raise ConfigError("ra.tls_client_ca needs ra.tls_cert and ra.tls_key (TLS)")
    counts = {"approvals_issue": ra["approvals_issue"], "approvals_revoke": ra["approvals_revoke"]}
    counts.update({f"approvals_by_profile.{k}": v for k, v in ra["approvals_by_profile"].items()})
    for key, value in counts.items():
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 10:
            raise ConfigError(f"ra.{key} must be 0 to 10")
    hours = ra["request_expiry_hours"]
    if not isinstance(hours, int | float) or isinstance(hours, bool) or not 0 < hours <= 24 * 90:
        raise ConfigError("ra.request_expiry_hours must be more than 0 and at most 2160")
    return ra


def _notify_section(table: dict) -> dict:
    notify = dict(table)
    days = notify["thresholds_days"]
    if (
        not isinstance(days, list)
        or not days
        or not all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 366 for d in days)
    ):
        raise ConfigError("notify.thresholds_days must be a list of days from 1 to 366")
    if not isinstance(notify["smtp_port"], int) or not 1 <= notify["smtp_port"] <= 65535:
        raise ConfigError("notify.smtp_port must be 1 to 65535")
    emails = notify["admin_emails"]
    if not isinstance(emails, list) or not all(
        isinstance(e, str) and "@" in e and not any(c in e for c in "\r\n,") for e in emails
    ):
        raise ConfigError("notify.admin_emails must be a list of email addresses")
    if not isinstance(notify["interval"], int | float) or notify["interval"] <= 0:
        raise ConfigError("notify.interval must be a positive number of seconds")
    return notify


def _crl_section(table: dict, base_url: str) -> dict:
    section = dict(table)
    for key in ("validity_days", "delta_validity_days"):
        if not isinstance(section[key], int) or not 1 <= section[key] <= 10:
            raise ConfigError(f"crl.{key} must be 1 to 10 days (BR 4.9.7)")
    for key in ("full_interval_hours", "delta_interval_minutes"):
        if not isinstance(section[key], int) or section[key] < 1:
            raise ConfigError(f"crl.{key} must be a positive integer")
    if section["full_interval_hours"] > section["validity_days"] * 24:
        raise ConfigError("crl.full_interval_hours must not exceed crl.validity_days")
    section["base_url"] = base_url.rstrip("/")
    return section


def crl_delta_url(config: "Config", ca_name: str) -> str:
    template = config.crl["delta_url"]
    return template.format(base=config.crl["base_url"], ca=ca_name) if template else ""
