"""The CA's settings: the ``[keys]``, ``[urls]`` and ``[crl]`` tables of the
configuration, typed (built by common/settings.py's one validating
constructor; ``revoca/default.toml`` documents the same keys)."""

from dataclasses import dataclass
from pathlib import Path

from ca.keys import PassphraseSource
from common.settings import SettingsError, build, setting


@dataclass(frozen=True)
class KeysSettings:
    """Where the passphrase that encrypts every private key (PKCS#8, PBES2
    with scrypt and AES-256-CBC, common/pkcs8.py) comes from. Never the
    command line."""

    passphrase_env: str = setting(
        "REVOCA_KEY_PASSPHRASE",
        "Environment variable holding the passphrase (at least 8 characters).",
        pattern=r"[A-Za-z_][A-Za-z0-9_]*",
    )
    passphrase_file: Path | None = setting(
        None, "File holding the passphrase (mode 0600); when set, it wins over passphrase_env."
    )

    @classmethod
    def from_table(cls, table: dict) -> "KeysSettings":
        return build(cls, table, "keys")

    def source(self) -> PassphraseSource:
        return PassphraseSource(env=self.passphrase_env, file=self.passphrase_file)


@dataclass(frozen=True)
class URLSettings:
    base: str = setting(
        "http://127.0.0.1:8080",
        "Base URL of the validation authority, written into certificates (AIA, CRL "
        "distribution points) as {base}; relying parties reach it over plain HTTP.",
        pattern=r"https?://[^\s/?#]+(/[^\s?#]*)?",
    )

    @classmethod
    def from_table(cls, table: dict) -> "URLSettings":
        return build(cls, table, "urls")


@dataclass(frozen=True)
class CRLSettings:
    """What each CA's CRLs carry, and how often `revoca ca crl-updater`
    signs them."""

    validity_days: int = setting(
        7,
        "nextUpdate of a full CRL this many days after thisUpdate (BR 4.9.7: at most 10 "
        "for subscriber CRLs).",
        minimum=1,
        maximum=10,
    )
    delta_validity_days: int = setting(
        1, "nextUpdate of a delta CRL (1 to 10 days).", minimum=1, maximum=10
    )
    arl_validity_days: int = setting(
        365,
        "nextUpdate of a root's ARL (the CRL of its CA certificates): at most 366 days "
        "(BR 4.9.7: 12 months).",
        minimum=1,
        maximum=366,
    )
    delta_url: str = setting(
        "{base}/crl/{ca}-delta.crl",
        "Where delta CRLs are published ({base}, {ca}); non-empty: the updater signs "
        "deltas, and full CRLs and the certificates of every CA that publishes them carry "
        "FreshestCRL pointing here.",
    )
    full_interval_hours: int = setting(
        24,
        "A new full CRL (an ARL for roots, every shard of partitioned profiles) this often; "
        "well inside validity_days, so a CRL is replaced long before it expires.",
        minimum=1,
    )
    delta_interval_minutes: int = setting(
        60, "A new delta CRL this often between full CRLs.", minimum=1
    )
    revocation_delay_minutes: int = setting(
        5,
        "A revocation, hold or release is on a new full CRL (and delta) at most this long "
        "after it (BR 4.9.7: within 24 hours); changes within it share one CRL. 0: at the "
        "updater's next pass (about a minute).",
        minimum=0,
        maximum=1440,
    )

    def check(self) -> None:
        if self.full_interval_hours > self.validity_days * 24:
            raise SettingsError("full_interval_hours", "must not exceed validity_days")
        if self.delta_interval_minutes > self.delta_validity_days * 24 * 60:
            raise SettingsError("delta_interval_minutes", "must not exceed delta_validity_days")
        try:
            self.delta_url.format(base="", ca="")
        except (KeyError, IndexError, ValueError):
            raise SettingsError(
                "delta_url", "may use only {base} and {ca} as placeholders"
            ) from None

    @classmethod
    def from_table(cls, table: dict) -> "CRLSettings":
        return build(cls, table, "crl")

    @property
    def deltas(self) -> bool:
        return bool(self.delta_url)

    def delta_url_for(self, base_url: str, ca_name: str) -> str:
        """The delta CRL's URL for ``ca_name`` ("" when deltas are off)."""
        if not self.delta_url:
            return ""
        return self.delta_url.format(base=base_url.rstrip("/"), ca=ca_name)
