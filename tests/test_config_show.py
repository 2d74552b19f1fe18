"""`revoca config show`: every section and key in effect, as TOML (and
JSON), read back by --config, with no secret in it."""

import json
import tomllib

from revoca.config import default_text, redacted, to_toml
from tests.conftest import run

USER = """
[va]
port = 9090
presign_algorithms = ["sha256"]

[store]
url = "postgresql+psycopg://ca:s3cret-pw@db.example.net/revoca"

[publisher]
targets = [
  { name = "va1", url = "http://va1.example.net:8081", token_file = "/etc/va1.token" },
]

[ra]
approvals_by_profile = { "tls-server" = 2 }
"""


def _expected(tmp_path) -> dict:
    tables = tomllib.loads(default_text())
    for section, table in tomllib.loads(USER).items():
        for key, value in table.items():
            tables[section][key] = value
    tables["paths"]["data_dir"] = str(tmp_path / "data")
    tables["store"]["url"] = "postgresql+psycopg://ca:***@db.example.net/revoca"
    return tables


def test_config_show_prints_every_setting_in_effect(tmp_path):
    (tmp_path / "my.toml").write_text(USER)
    shown = run(tmp_path, "--config", "my.toml", "config", "show")
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout.decode()
    assert "s3cret-pw" not in text
    assert text.startswith("# settings in effect: my.toml merged over the built-in defaults\n")
    printed = tomllib.loads(text)
    assert printed == _expected(tmp_path)
    # Every section and key of the documented defaults, none left out.
    defaults = tomllib.loads(default_text())
    assert printed.keys() == defaults.keys()
    for section, table in defaults.items():
        assert printed[section].keys() >= table.keys(), section
    assert 'passphrase_env = "REVOCA_KEY_PASSPHRASE"' in text  # where it comes from, shown

    as_json = run(tmp_path, "--config", "my.toml", "config", "show", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == printed


def test_config_show_reads_back_as_the_same_configuration(tmp_path):
    (tmp_path / "my.toml").write_text("[va]\nport = 9091\n[notify]\nthresholds_days = [10, 2]\n")
    first = run(tmp_path, "--config", "my.toml", "config", "show")
    assert first.returncode == 0, first.stderr
    (tmp_path / "shown.toml").write_bytes(first.stdout)
    again = run(tmp_path, "--config", "shown.toml", "config", "show", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == tomllib.loads(first.stdout.decode())


def test_config_show_refuses_what_the_commands_refuse(tmp_path):
    (tmp_path / "bad.toml").write_text("[va]\nport = 70000\n")
    result = run(tmp_path, "--config", "bad.toml", "config", "show")
    assert result.returncode == 2
    assert "va.port" in result.stderr.decode()


def test_a_secret_value_is_hidden_but_where_it_comes_from_is_shown():
    tables = {
        "notify": {"password": "hunter2", "password_file": "/etc/revoca/smtp", "host": "x"},
        "keys": {"passphrase_env": "REVOCA_KEY_PASSPHRASE", "api_token": ""},
        "store": {"url": "postgresql://u:p%40ss@h/db", "other": "sqlite:///a:b@c"},
    }
    assert redacted(tables) == {
        "notify": {"password": "***", "password_file": "/etc/revoca/smtp", "host": "x"},
        "keys": {"passphrase_env": "REVOCA_KEY_PASSPHRASE", "api_token": ""},
        "store": {"url": "postgresql://u:***@h/db", "other": "sqlite:///a:b@c"},
    }


def test_to_toml_reads_back_with_tomllib():
    tables = {
        "a": {"s": 'quote " and \\ and ünï', "i": -3, "f": 0.5, "b": False, "l": [1, 2]},
        "b": {"t": [{"name": "x", "n": 1}], "m": {"tls-server": 2, "x y": 1}, "e": {}},
        "profiles": {"tls-server": {"k": ["a"]}},
    }
    assert tomllib.loads(to_toml(tables)) == tables
