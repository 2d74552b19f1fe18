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
        (
            "[profiles.p]\ndelta_crl_url = 'http://x/d.crl'\n",
            r"^profile 'p': delta_crl_url is not a profile setting; certificates carry "
            r"FreshestCRL to \[crl\] delta_url when their CA publishes delta CRLs$",
        ),
        (
            "[profiles.p]\nbaseline_requirements = 1\n",
            "^profile 'p': baseline_requirements must be true or false$",
        ),
        (
            "[profiles.p]\nbaseline_requirements = true\nallow_hold = true\n"
            "revocation_reasons = ['certificateHold']\n",
            r"^profile 'p': allow_hold is not allowed with baseline_requirements "
            r"\(BR 4\.9\.13: no suspension\)$",
        ),
        (
            "[profiles.p]\nbaseline_requirements = true\nallow_hold = true\n",
            r"^profile 'p': allow_hold is not allowed with baseline_requirements",
        ),
        (
            "[profiles.p]\nbaseline_requirements = true\n"
            "revocation_reasons = ['certificateHold']\n",
            r"^profile 'p': revocation_reasons has certificateHold, which baseline_requirements "
            r"does not allow \(BR 4\.9\.13: no suspension\)$",
        ),
        (
            "[profiles.p]\nbaseline_requirements = true\nca = true\n"
            "revocation_reasons = ['keyCompromise', 'cACompromise']\n",
            r"^profile 'p': revocation_reasons has cACompromise, which BR 7\.2\.2 does not allow "
            r"for CA certificates; allowed: keyCompromise, affiliationChanged, superseded, "
            r"cessationOfOperation, privilegeWithdrawn$",
        ),
        (
            "[profiles.p]\nbaseline_requirements = true\nca = true\n"
            "revocation_reasons = ['unspecified']\n",
            r"^profile 'p': revocation_reasons has unspecified, which BR 7\.2\.2 does not allow "
            r"for CA certificates",
        ),
        (
            "[profiles.p]\nbaseline_requirements = true\nrevocation_reasons = ['aACompromise']\n",
            r"^profile 'p': revocation_reasons has aACompromise, which BR 7\.2\.2 does not allow "
            r"for subscriber certificates; allowed: unspecified, keyCompromise, ",
        ),
        (
            "[profiles.p]\nbaseline_requirements = true\nkey_types = ['ec-p256', 'ed25519']\n",
            r"^profile 'p': key_types has ed25519, which baseline_requirements does not allow "
            r"\(BR 6\.1\.5\); allowed: ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096$",
        ),
        (
            "[profiles.p]\nbaseline_requirements = true\nca = true\n"
            "subject_attributes = ['CN', 'OU']\n",
            r"^profile 'p': subject_attributes has OU, which BR 7\.1\.2\.10\.2 does not allow "
            r"in root or TLS subordinate CA certificates$",
        ),
        ("[urls\n", "is not valid TOML"),
    ],
)
def test_bad_configuration(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_shipped_profiles_under_the_baseline_requirements():
    """root-ca, sub-ca and tls-server are under the BR; what sits beside
    them (client certificates that may be held, their CA, OCSP signers) is not."""
    profiles = load_config(None).profiles
    assert {n for n, p in profiles.items() if p.baseline_requirements} == {
        "root-ca",
        "sub-ca",
        "tls-server",
    }
    assert profiles["tls-client"].allow_hold and profiles["client-sub-ca"].ca
    # BR 7.2.2 for the CA certificates on the root's ARL: no cACompromise, no
    # entry without reasonCode.
    for name in ("sub-ca", "client-sub-ca"):
        assert not {"unspecified", "cACompromise"} & set(profiles[name].revocation_reasons)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load_config(tmp_path / "nope.toml")
