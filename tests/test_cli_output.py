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
    at = {len(line) - len(line.split(":", 1)[1].lstrip()) for line in lines if line[:1] != " "}
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
            "STATUS": "good",
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
