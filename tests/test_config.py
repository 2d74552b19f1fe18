"""The one configuration file: defaults, merging, and precise errors."""

import pytest

from ca.errors import ConfigError
from revoca.config import default_text, load_config


def test_defaults_load_with_all_shipped_profiles():
    config = load_config(None)
    assert {"root-ca", "sub-ca", "tls-server", "tls-client", "ocsp-signer"} <= set(config.profiles)
    assert config.store_url.endswith("revoca-data/revoca.db")
    assert config.passphrase.env == "REVOCA_KEY_PASSPHRASE"
    assert "[profiles.tls-server]" in default_text()


def test_user_file_is_merged_and_profiles_replaced_whole(tmp_path):
    path = tmp_path / "revoca.toml"
    path.write_text(
        '[urls]\nbase = "http://va.example.net"\n'
        "[profiles.tls-server]\nvalidity_days = 30\nmax_validity_days = 47\n"
        'key_types = ["ec-p256"]\nsan_types = ["dns"]\n'
    )
    config = load_config(path, data_dir=tmp_path / "d")
    assert config.base_url == "http://va.example.net"
    assert config.profiles["tls-server"].max_validity_days == 47
    assert config.profiles["tls-server"].policies == ()  # nothing inherited
    assert config.profiles["tls-client"].max_validity_days == 825
    assert config.store_url == f"sqlite:///{tmp_path / 'd' / 'revoca.db'}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[nonsense]\nx = 1\n", r"unknown configuration section \[nonsense\]"),
        ("[store]\nurl_typo = 'x'\n", "unknown setting store.url_typo"),
        ("[profiles.p]\nvalidity = 3\n", "profile 'p': unknown setting\\(s\\) validity"),
        ("[profiles.p]\nkey_types = ['rsa-1024']\n", "key_types has unknown value 'rsa-1024'"),
        ("[profiles.p]\nkey_usage = ['sign']\n", "key_usage has unknown value 'sign'"),
        ("[profiles.p]\nsan_types = ['x400']\n", "san_types has unknown value 'x400'"),
        ("[profiles.p]\npolicies = ['not.an.oid']\n", "policies value 'not.an.oid' is not an OID"),
        ("[profiles.p]\nvalidity_days = 500\n", "validity_days must be between 1 and max"),
        ("[profiles.p]\npath_length = 0\n", "path_length needs ca = true"),
        ("[profiles.p]\nallow_hold = true\n", "allow_hold needs certificateHold"),
        ("[profiles.p]\nrevocation_reasons = ['bored']\n", "unknown revocation reason 'bored'"),
        ("[profiles.p]\nkey_types = 'ec-p256'\n", "key_types must be a list of strings"),
        ("[urls\n", "is not valid TOML"),
    ],
)
def test_bad_configuration(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load_config(tmp_path / "nope.toml")
