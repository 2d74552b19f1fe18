"""What the commands print: aligned tables with headers and key/value views
for people by default, --json (and --csv) for scripts, times in ISO 8601;
and the option checks and messages around them."""

import csv
import io
import json
import re

from tests.conftest import run

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def out(result) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout.decode()


def aligned(text: str) -> list[dict]:
    """A table read back by its header's column starts, after checking that
    every value of every row starts where its header does."""
    lines = text.splitlines()
    header = lines[0]
    starts = [m.start() for m in re.finditer(r"(?:(?<=  )|^)\S", header)]
    names = [header[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
    rows = []
    for line in lines[1:]:
        for start in starts[1:]:  # nothing runs into the gap before a column
            assert line[start - 2 : start] == "  ", (line, start)
        rows.append(
            {
                n: line[a:b].strip()
                for n, a, b in zip(names, starts, [*starts[1:], None], strict=True)
            }
        )
    return rows


def view(text: str) -> dict:
    """A key/value view read back, after checking its values line up."""
    lines = text.splitlines()
    at = {
        len(line) - len(line.split(":", 1)[1].lstrip())
        for line in lines
        if line[:1] != " " and line.split(":", 1)[1].strip()  # not a block's own line
    }
    assert len(at) == 1, text
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def test_ca_list_is_a_table_with_iso_times_and_json_and_csv_for_scripts(cli_pki):
    rows = aligned(out(run(cli_pki, "ca", "list")))
    assert [r["NAME"] for r in rows] == ["root", "issuing"]
    assert [r["PARENT"] for r in rows] == ["-", "root"]
    assert rows[1]["SUBJECT"] == "CN=CLI Issuing,O=Revoca Tests"
    assert all(ISO.match(r["NOT AFTER"]) for r in rows)
    listed = json.loads(out(run(cli_pki, "ca", "list", "--json")))
    assert [c["name"] for c in listed] == ["root", "issuing"]
    assert all(ISO.match(c["not_before"]) and ISO.match(c["not_after"]) for c in listed)
    parsed = list(csv.DictReader(io.StringIO(out(run(cli_pki, "ca", "list", "--csv")))))
    assert [(r["name"], r["parent"]) for r in parsed] == [("root", ""), ("issuing", "root")]
    assert parsed[1]["not_after"] == listed[1]["not_after"] == rows[1]["NOT AFTER"]


def test_ca_certs_and_show_and_profiles(cli_pki):
    issued = run(
        *(cli_pki, "ca", "issue", "--ca", "issuing", "--profile", "tls-server"),
        *("--generate-key", "ec-p256", "--san", "dns:a.example.com", "--out", "a.pem"),
    )
    serial = issued.stderr.decode().split("issued serial ")[1].split()[0]
    rows = aligned(out(run(cli_pki, "ca", "certs", "--ca", "issuing")))
    assert rows == [
        {
            "CA": "issuing",
            "SERIAL": serial,
            "STATUS": "active",
            "PROFILE": "tls-server",
            "NOT AFTER": rows[0]["NOT AFTER"],
            "SUBJECT": "dns:a.example.com",  # no subject: its SANs
        }
    ]
    assert ISO.match(rows[0]["NOT AFTER"])
    (cert,) = json.loads(out(run(cli_pki, "ca", "certs", "--ca", "issuing", "--json")))
    assert cert["serial"] == serial and cert["not_after"] == rows[0]["NOT AFTER"]
    assert out(run(cli_pki, "ca", "certs", "--status", "revoked")).splitlines() == [
        "CA  SERIAL  STATUS  PROFILE  NOT AFTER  SUBJECT"
    ]

    shown = out(run(cli_pki, "ca", "show", "issuing", "--serial", serial)).splitlines()
    assert f"serial:             {serial}" in shown
    assert "sans:               dns:a.example.com" in shown
    assert f"not_after:          {cert['not_after']}" in shown
    assert "revoked_at:         -" in shown
    ca_view = view(out(run(cli_pki, "ca", "show", "root")))
    assert ca_view["name"] == "root" and ISO.match(ca_view["not_after"])
    assert json.loads(out(run(cli_pki, "ca", "show", "root", "--json")))["name"] == "root"

    profiles = aligned(out(run(cli_pki, "ca", "profiles")))
    tls = next(p for p in profiles if p["NAME"] == "tls-server")
    assert tls["DAYS"] == "90" and tls["MAX DAYS"] == "398"
    assert (
        json.loads(out(run(cli_pki, "ca", "profiles", "--json")))["tls-server"]["validity_days"]
        == 90
    )


def test_crl_counts_its_entries_in_words_that_agree(cli_pki):
    issued = run(
        *(cli_pki, "ca", "issue", "--ca", "issuing", "--profile", "tls-server"),
        *("--generate-key", "ec-p256", "--san", "dns:a.example.com", "--out", "a.pem"),
    )
    serial = issued.stderr.decode().split("issued serial ")[1].split()[0]
    empty = run(cli_pki, "ca", "crl", "--ca", "issuing", "--out", "0.crl")
    assert b": 0 entries, " in empty.stderr, empty.stderr
    assert run(cli_pki, "ca", "revoke", "--ca", "issuing", "--serial", serial).returncode == 0
    one = run(cli_pki, "ca", "crl", "--ca", "issuing", "--out", "1.crl")
    assert b": 1 entry, " in one.stderr, one.stderr


def test_json_and_csv_are_one_or_the_other(tmp_path):
    result = run(tmp_path, "ca", "list", "--json", "--csv")
    assert result.returncode == 2 and b"give one of --json or --csv" in result.stderr


# -- help ---------------------------------------------------------------------------------


def every_command():
    """(path, command) for every command and group of the click tree."""
    import click

    from revoca.cli import cli

    def walk(command, path):
        yield path, command
        if isinstance(command, click.Group):
            for name, sub in sorted(command.commands.items()):
                yield from walk(sub, [*path, name])

    return list(walk(cli, ["revoca"]))


def help_of(path: list[str]) -> str:
    from click.testing import CliRunner

    from revoca.cli import cli

    result = CliRunner().invoke(cli, [*path[1:], "--help"], obj={})
    assert result.exit_code == 0, result.output
    return result.output


def test_every_help_shows_an_example_of_its_own_command():
    missing = []
    commands = every_command()
    assert len(commands) > 60  # the walk reaches the whole tree
    for path, _command in commands:
        text = help_of(path)
        block = re.split(r"^\s*Examples?:\s*$", text, maxsplit=1, flags=re.M)
        lines = block[1].splitlines() if len(block) == 2 else []
        prefix = " ".join(path)
        if not any(re.sub(r"^(\w+=\S+ )+", "", line.strip()).startswith(prefix) for line in lines):
            missing.append(prefix)
    assert missing == []


def test_every_option_says_what_it_is_for():
    import click

    missing = [
        f"{' '.join(path)} {param.opts[0]}"
        for path, command in every_command()
        for param in command.params
        if isinstance(param, click.Option) and not (param.help or "").strip()
    ]
    assert missing == []


def test_ca_is_explained_where_it_is_asked_for():
    for path in (["revoca", "ca", "revoke"], ["revoca", "ca", "export"]):
        text = help_of(path)
        line = next(line for line in text.splitlines() if line.strip().startswith("--ca"))
        assert len(line.split()) > 2, line  # more than "--ca TEXT"


def test_limits_that_mean_nothing_are_refused(tmp_path):
    for args in (
        ["ca", "certs", "--limit", "0"],
        ["ca", "certs", "--limit", "-1"],
        ["ca", "blocklist", "list", "--limit", "-1"],
        ["ra", "search", "--limit", "-1"],
        ["ra", "entity", "list", "--limit", "0"],
        ["ra", "request", "list", "--limit", "-1"],
        ["audit", "list", "--limit", "-1"],
        ["ca", "crl", "--ca", "x", "--days", "0"],
        ["ca", "issue", "--ca", "x", "--profile", "p", "--days", "0"],
        ["ra", "report", "expiring", "--days", "0"],
        ["ra", "notify", "--loop", "--runs", "0"],
        ["publisher", "run", "--seconds", "-1"],
        ["demo", "--port", "0"],
    ):
        result = run(tmp_path, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert b"Invalid value for '--" in result.stderr and b"is not in the range" in (
            result.stderr
        ), result.stderr


# -- the RA, the VA and the audit log -------------------------------------------------------


def test_ra_listings_are_tables_and_single_objects_key_values(cli_pki):
    from tests.conftest import make_csr
    from tests.test_cli_ra import _entity

    tmp = cli_pki
    created = _entity(tmp)
    assert ISO.match(created["created_at"]) and ISO.match(created["updated_at"])
    (tmp / "req.pem").write_bytes(make_csr("x", ("dns:web.example.com",)))
    out(run(tmp, "ra", "enroll", "--entity", "web", "--csr", "req.pem", "--out", "a.pem"))
    (row,) = aligned(out(run(tmp, "ra", "entity", "list")))
    assert row["NAME"] == "web" and row["STATUS"] == "active" and row["CA"] == "issuing"
    assert ISO.match(row["UPDATED AT"]) and row["EMAIL"] == "ops@example.com"
    (listed,) = json.loads(out(run(tmp, "ra", "entity", "list", "--json")))
    assert listed["created_at"] == created["created_at"]
    assert next(csv.DictReader(io.StringIO(out(run(tmp, "ra", "entity", "list", "--csv")))))[
        "allowed_sans"
    ] == ("dns:web.example.com dns:*.web.example.com")

    text = out(run(tmp, "ra", "entity", "show", "web"))
    head, certificates = text.split("certificates:\n")
    shown = view(head)
    assert shown["name"] == "web" and ISO.match(shown["created_at"])
    assert shown["allowed_sans"] == "dns:web.example.com, dns:*.web.example.com"
    (cert,) = aligned("\n".join(line[2:] for line in certificates.splitlines()))
    assert cert["CA"] == "issuing" and cert["SUBJECT"] == "CN=web.example.com"
    assert ISO.match(cert["NOT AFTER"])

    updated = out(run(tmp, "ra", "entity", "update", "web", "--email", "web@example.com"))
    assert view(updated)["email"] == "web@example.com"

    found = aligned(out(run(tmp, "ra", "search", "--entity", "web")))
    assert [(r["CA"], r["SUBJECT"], r["STATUS"]) for r in found] == [
        ("issuing", "CN=web.example.com", "active")
    ]
    (soon,) = aligned(out(run(tmp, "ra", "report", "expiring", "--days", "400")))
    assert (soon["ISSUER"], soon["ENTITY"], soon["OWNER"]) == (
        "issuing",
        "web",
        "web@example.com",
    )  # updated above
    assert ISO.match(soon["NOT AFTER"]) and int(soon["DAYS"]) > 0
    (first,) = json.loads(out(run(tmp, "ra", "report", "expiring", "--days", "400", "--json")))
    assert first["not_after"] == soon["NOT AFTER"] and first["serial"] == soon["SERIAL"]
    counts = aligned(out(run(tmp, "ra", "report", "counts")))
    assert {"CA": "issuing", "PROFILE": "tls-server", "STATUS": "active", "COUNT": "1"} in counts


def test_requests_and_operators(cli_pki):
    from tests.conftest import make_csr
    from tests.test_cli_ra import _entity

    tmp = cli_pki
    added = run(
        tmp, "ra", "user", "add", "--name", "alice", "--role", "auditor", "--token-out", "t"
    )
    assert added.returncode == 0, added.stderr
    (user,) = aligned(out(run(tmp, "ra", "user", "list")))
    assert user["NAME"] == "alice" and user["TOKEN"] == "yes" and ISO.match(user["CREATED AT"])
    assert user["CERTIFICATE (SHA-256)"] == "-"
    assert view(out(run(tmp, "ra", "user", "disable", "alice")))["status"] == "disabled"

    (tmp / "ra.toml").write_text("[ra]\napprovals_issue = 2\n")
    officer = run(
        *(tmp, "ra", "user", "add", "--name", "olga", "--role", "ra-officer"),
        *("--token-out", "olga.token"),
    )
    assert officer.returncode == 0, officer.stderr
    _entity(tmp)
    (tmp / "req.pem").write_bytes(make_csr("x", ("dns:web.example.com",)))
    queued = run(
        *(tmp, "--config", "ra.toml", "ra", "--operator-token-file", "olga.token"),
        *("enroll", "--entity", "web", "--csr", "req.pem"),
    )
    request = view(out(queued))
    assert request["status"] == "pending" and ISO.match(request["expires_at"])
    (row,) = aligned(out(run(tmp, "ra", "request", "list")))
    assert row["ID"] == request["id"] and row["APPROVALS"] == "0/2" and row["KIND"] == "enroll"
    assert ISO.match(row["CREATED AT"]) and ISO.match(row["EXPIRES AT"])
    shown = out(run(tmp, "ra", "request", "show", request["id"]))
    assert f"id:         {request['id']}" in shown.splitlines()
    as_json = json.loads(out(run(tmp, "ra", "request", "show", request["id"], "--json")))
    assert as_json["created_at"] == row["CREATED AT"] and as_json["approvers"] == []


def test_va_status_and_audit_list(cli_pki):
    tmp = cli_pki
    assert run(tmp, "ca", "ocsp-signer", "--ca", "issuing", "--out", "o.pem").returncode == 0
    assert run(tmp, "va", "import").returncode == 0
    status = out(run(tmp, "va", "status"))
    lines = status.splitlines()
    assert lines[1] == "issuers:" and lines[2].startswith("  ") and lines[2].endswith(": issuing")
    top = view("\n".join(line for line in lines if not line.startswith("  ")))
    as_json = json.loads(out(run(tmp, "va", "status", "--json")))
    assert as_json["statuses"] > 0 and top["statuses"] == str(as_json["statuses"])
    assert top["directory"] == as_json["directory"] and top["directory"].endswith("va")

    records = aligned(out(run(tmp, "audit", "list", "--limit", "3")))
    assert len(records) == 3 and all(ISO.match(r["AT"]) for r in records)
    assert [int(r["SEQ"]) for r in records] == sorted(int(r["SEQ"]) for r in records)
    assert (
        json.loads(out(run(tmp, "audit", "list", "--limit", "1", "--json")))[0]["at"]
        == (records[-1]["AT"])
    )


def test_a_missing_export_passphrase_names_its_own_options(cli_pki):
    from tests.test_cli_ra import _entity

    tmp = cli_pki
    _entity(tmp)
    enroll = run(
        *(tmp, "ra", "enroll", "--entity", "web", "--generate-key", "ec-p256"),
        *("--p12-out", "k.p12", "--san", "dns:web.example.com"),
    )
    assert enroll.returncode == 6, enroll.stderr
    assert enroll.stderr.decode() == (
        "error: no export passphrase: set the environment variable REVOCA_EXPORT_PASSPHRASE "
        "or give --export-passphrase-file FILE\n"
    )
    assert not (tmp / "k.p12").exists()
    renamed = run(
        *(tmp, "ra", "enroll", "--entity", "web", "--generate-key", "ec-p256"),
        *("--p12-out", "k.p12", "--export-passphrase-env", "P12_PASS"),
    )
    assert renamed.returncode == 6 and b"variable P12_PASS or give --export-passphrase-file" in (
        renamed.stderr
    )
    issued = run(
        *(tmp, "ca", "issue", "--ca", "issuing", "--profile", "tls-server"),
        *("--generate-key", "ec-p256", "--san", "dns:a.example.com", "--out", "a.pem"),
    )
    serial = issued.stderr.decode().split("issued serial ")[1].split()[0]
    export = run(
        *(tmp, "ca", "export", "--ca", "issuing", "--serial", serial),
        *("--format", "p12", "--out", "a.p12"),
    )
    assert export.returncode == 6 and b"give --export-passphrase-file FILE" in export.stderr
    assert b"keys.passphrase_file" not in export.stderr
