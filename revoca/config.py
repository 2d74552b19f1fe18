"""One configuration file (TOML), merged over the documented defaults in
revoca/default.toml; each section then becomes its owner's typed settings
(common/settings.py), built by that owner's one validating constructor."""

import copy
import dataclasses
import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from acmesrv.settings import AcmeSettings
from ca.errors import ConfigError
from ca.keys import PassphraseSource
from ca.profiles import Profile, load_profiles
from ca.settings import CRLSettings, KeysSettings, URLSettings
from common.settings import SettingsError, build, setting
from enroll.settings import EnrollSettings
from publisher.settings import PublisherSettings
from ra.settings import NotifySettings, RASettings
from store.settings import StoreSettings
from va.settings import VASettings

CONFIG_ENV = "REVOCA_CONFIG"


def default_text() -> str:
    return resources.files("revoca").joinpath("default.toml").read_text()


def _merge(base: dict, override: dict) -> dict:
    """``override`` over ``base``, section by section. A key's value is taken
    whole (a table value such as ``approvals_by_profile`` too: its owner's
    constructor checks it), and so is a profile."""
    out = copy.deepcopy(base)
    for section, table in override.items():
        if section not in base:
            raise ConfigError(f"unknown configuration section [{section}]")
        if not isinstance(table, dict):
            raise ConfigError(f"[{section}] must be a table")
        for key, value in table.items():
            if section != "profiles" and key not in base[section]:
                raise ConfigError(f"unknown setting {section}.{key}")
            out[section][key] = copy.deepcopy(value)
    return out


@dataclass(frozen=True)
class PathSettings:
    data_dir: Path = setting(
        Path("revoca-data"),
        "Where the SQL store (SQLite), the CA keys (<data_dir>/keys, mode 0700, one 0600 "
        "file per key, and the audit log's HMAC key and checkpoint) and exported files live.",
    )


@dataclass(frozen=True)
class Config:
    """The merged configuration, one typed settings object per section."""

    data_dir: Path
    store: StoreSettings
    keys: KeysSettings
    urls: URLSettings
    profiles: dict[str, Profile]
    source: str
    va: VASettings
    publisher: PublisherSettings
    crl: CRLSettings
    ra: RASettings
    notify: NotifySettings
    acme: AcmeSettings
    enroll: EnrollSettings
    # The merged tables these settings were built from (`revoca config show`).
    tables: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def key_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def store_url(self) -> str:
        return self.store.url_for(self.data_dir)

    @property
    def auto_migrate(self) -> bool:
        return self.store.auto_migrate

    @property
    def passphrase(self) -> PassphraseSource:
        return self.keys.source()

    @property
    def base_url(self) -> str:
        return self.urls.base

    def with_passphrase_file(self, path: Path) -> "Config":
        """This configuration with keys.passphrase_file set (demos, benchmarks)."""
        return dataclasses.replace(
            self, keys=dataclasses.replace(self.keys, passphrase_file=Path(path))
        )

    def delta_crl_url(self, ca_name: str) -> str:
        """Where ``ca_name``'s delta CRLs are published ("" when deltas are off)."""
        return self.crl.delta_url_for(self.urls.base, ca_name)


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
        root = Path(data_dir) if data_dir else build(PathSettings, raw["paths"], "paths").data_dir
        raw["paths"]["data_dir"] = str(root)
        va = VASettings.from_table(raw["va"], root)
        return Config(
            data_dir=root,
            store=StoreSettings.from_table(raw["store"]),
            keys=KeysSettings.from_table(raw["keys"]),
            urls=URLSettings.from_table(raw["urls"]),
            profiles=load_profiles(raw["profiles"]),
            source=source,
            va=va,
            crl=CRLSettings.from_table(raw["crl"]),
            ra=RASettings.from_table(raw["ra"]),
            notify=NotifySettings.from_table(raw["notify"]),
            acme=AcmeSettings.from_table(raw["acme"]),
            enroll=EnrollSettings.from_table(raw["enroll"]),
            publisher=PublisherSettings.from_table(raw["publisher"], va.directory),
            tables=raw,
        )
    except SettingsError as exc:
        raise ConfigError(exc.message) from None


# -- the merged settings, printed (`revoca config show`) -------------------------

# Secrets are never settings values (docs/ARCHITECTURE.md): a setting names the
# file or variable that holds one (*_file, *_env, tls_key: paths are shown).
# Should a key naming a secret by one of these words ever hold the secret
# itself, its value is hidden all the same.
_SECRET_KEY = re.compile(r"password|passphrase|secret|token")
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/?#@:]*):[^/?#@]*@")
HIDDEN = "***"


def redacted(value, key: str = ""):
    """``value`` with every secret replaced by ***: the values of keys that
    name a secret (not a file or variable holding one) and the passwords in
    URLs (``postgresql+psycopg://user:***@host/db``)."""
    if isinstance(value, dict):
        return {k: redacted(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted(v, key) for v in value]
    if isinstance(value, str):
        if value and _SECRET_KEY.search(key) and not key.endswith(("_file", "_env")):
            return HIDDEN
        return _URL_PASSWORD.sub(rf"\g<head>:{HIDDEN}@", value)
    return value


def shown_tables(config: Config) -> dict:
    """Every section and key of the merged, validated configuration, secrets hidden."""
    return redacted(config.tables)


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else json.dumps(name)


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if not isinstance(value, float) or value == value else "nan"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def to_toml(tables: dict) -> str:
    """``tables`` (section -> key -> value; ``profiles`` -> name -> table) as
    TOML that tomllib reads back to the same dict."""
    lines = []
    for section, table in tables.items():
        nested = section == "profiles"
        if not nested:
            lines.append(f"[{_key(section)}]")
            lines += [f"{_key(k)} = {_value(v)}" for k, v in table.items()]
            lines.append("")
            continue
        for name, inner in table.items():
            lines.append(f"[{_key(section)}.{_key(name)}]")
            lines += [f"{_key(k)} = {_value(v)}" for k, v in inner.items()]
            lines.append("")
    return "\n".join(lines)
