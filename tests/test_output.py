"""revoca/output.py: the tables, key/value views, JSON and CSV every
command prints."""

import csv
import io
import json
from datetime import UTC, datetime, timedelta, timezone

import click
import pytest
from click.testing import CliRunner

from revoca.output import (
    Column,
    cell,
    emit_object,
    emit_rows,
    key_values,
    output_options,
    plural,
    table,
    to_csv,
    to_json,
    when,
    width_of,
    with_iso_times,
)

EPOCH = 1796000000  # 2026-11-30T00:53:20Z
ISO = "2026-11-30T00:53:20Z"

COLUMNS = [Column("name"), Column("count", align=">"), Column("subject", shrink=True)]
ROWS = [
    {"name": "root", "count": 3, "subject": "CN=Example Root,O=Example"},
    {"name": "issuing-ca", "count": 12345, "subject": "CN=Example TLS CA"},
]


# -- times --------------------------------------------------------------------------------


def test_every_form_of_a_time_is_written_alike():
    assert when(EPOCH) == ISO
    assert when(EPOCH + 0.9) == ISO
    assert when(datetime.fromtimestamp(EPOCH, UTC)) == ISO
    assert when(datetime.fromtimestamp(EPOCH, UTC).replace(tzinfo=None)) == ISO  # naive is UTC
    assert when("2026-11-30T00:53:20+00:00") == ISO  # datetime.isoformat()
    assert when("2026-11-30T02:53:20+02:00") == ISO
    assert when(ISO) == ISO  # already written
    assert when(None) is None
    assert when("never") == "never"  # not a time: left alone


def test_time_fields_are_converted_at_any_depth_and_others_left_alone():
    data = {
        "name": "web",
        "created_at": EPOCH,
        "map_size": EPOCH,  # a number, not a time
        "certificates": [{"not_after": "2026-11-30T00:53:20+00:00", "serial": "0a"}],
        "approval": {
            "decided_at": None,
            "expires_at": datetime(2026, 11, 30, 2, 53, 20, tzinfo=timezone(timedelta(hours=2))),
        },
    }
    assert with_iso_times(data) == {
        "name": "web",
        "created_at": ISO,
        "map_size": EPOCH,
        "certificates": [{"not_after": ISO, "serial": "0a"}],
        "approval": {"decided_at": None, "expires_at": ISO},
    }
    assert with_iso_times({"from": EPOCH, "week": 0}, {"from"}) == {"from": ISO, "week": 0}


# -- tables ---------------------------------------------------------------------------------


def test_a_table_has_a_header_and_every_column_starts_in_one_place():
    lines = table(ROWS, COLUMNS).splitlines()
    assert lines == [
        "NAME        COUNT  SUBJECT",
        "root            3  CN=Example Root,O=Example",
        "issuing-ca  12345  CN=Example TLS CA",
    ]
    assert all(line == line.rstrip() for line in lines)


def test_values_that_would_break_a_row_do_not():
    rows = [
        {"name": "a\nb", "count": None, "subject": "tab\there\x1b[31m"},
        {"name": ["x", "y"], "count": True, "subject": {"team": "web", "tier": 1}},
    ]
    lines = table(rows, COLUMNS).splitlines()
    assert len(lines) == 3  # the line break stayed inside its cell
    assert "\x1b" not in "".join(lines) and "\t" not in "".join(lines)
    assert lines[1].split()[:2] == ["a", "b"] and lines[1].split()[2] == "-"
    assert "x, y" in lines[2] and "yes" in lines[2] and "team=web, tier=1" in lines[2]
    subject_at = lines[0].index("SUBJECT")
    assert lines[1][subject_at:] == "tab here [31m"
    assert lines[2][subject_at:] == "team=web, tier=1"
    count_ends = lines[0].index("COUNT") + len("COUNT")
    assert lines[1][:count_ends].endswith(" -") and lines[2][:count_ends].endswith(" yes")


def test_wide_characters_keep_the_columns_in_line():
    rows = [
        {"name": "東京", "count": 1, "subject": "x"},
        {"name": "tokyo", "count": 2, "subject": "y"},
    ]
    lines = table(rows, COLUMNS).splitlines()
    # display columns, not characters: 東京 takes four, like "tokyo" and a space
    assert lines[1] == "東京       1  x"
    assert lines[2] == "tokyo      2  y"


def test_a_narrow_width_cuts_only_the_free_text_and_keeps_the_columns():
    long = {"name": "issuing", "count": 7, "subject": "CN=" + "very long subject " * 8}
    text = table([*ROWS, long], COLUMNS, width=50)
    lines = text.splitlines()
    assert max(width_of(line) for line in lines) == 50
    assert lines[3].endswith("…") and "issuing" in lines[3]  # the name is whole
    subject_at = lines[0].index("SUBJECT")
    assert all(line[subject_at - 2 : subject_at] == "  " for line in lines)
    # identifiers are never cut, even when the row cannot fit
    text = table(ROWS, [Column("name"), Column("subject")], width=10)
    assert "CN=Example Root,O=Example" in text


def test_a_table_without_rows_is_its_header():
    assert table([], COLUMNS) == "NAME  COUNT  SUBJECT\n"


# -- key/value views ---------------------------------------------------------------------------


def test_key_values_align_the_values_and_nest_lists_of_objects_as_tables():
    text = key_values(
        {
            "name": "web",
            "allowed_sans": ["dns:a.example", "dns:*.b.example"],
            "attributes": {"team": "web"},
            "note": None,
            "certificates": [
                {"serial": "0a", "status": "good"},
                {"serial": "0bcd", "status": "revoked"},
            ],
        },
        tables={"certificates": [Column("serial"), Column("status")]},
    )
    assert text.splitlines() == [
        "name:         web",
        "allowed_sans: dns:a.example, dns:*.b.example",
        "attributes:",
        "  team: web",
        "note:         -",
        "certificates:",
        "  SERIAL  STATUS",
        "  0a      good",
        "  0bcd    revoked",
    ]


# -- for scripts ---------------------------------------------------------------------------------


def test_json_and_csv_read_back():
    rows = [{"id": 1, "sans": ["dns:a", "dns:b"], "what": {"k": "v"}, "note": None, "ok": True}]
    assert json.loads(to_json(rows)) == rows
    text = to_csv(rows, ["id", "sans", "what", "note", "ok"])
    assert text.endswith("\r\n")
    assert list(csv.reader(io.StringIO(text))) == [
        ["id", "sans", "what", "note", "ok"],
        ["1", "dns:a dns:b", '{"k": "v"}', "", "true"],
    ]
    assert json.loads(to_json({"at": datetime.fromtimestamp(EPOCH, UTC)})) == {"at": ISO}


def test_counts_agree_with_their_noun():
    assert plural(1, "entry", "entries") == "1 entry"
    assert plural(0, "entry", "entries") == "0 entries"
    assert plural(2, "certificate") == "2 certificates"
    assert plural(1, "certificate") == "1 certificate"
    assert plural(12345, "certificate", grouped=True) == "12,345 certificates"
    assert plural(1, "certificate", grouped=True) == "1 certificate"


def test_cell_of_an_empty_list_is_a_dash():
    assert cell([]) == "-" and cell({}) == "-"


# -- the flags ----------------------------------------------------------------------------------


@click.command()
@output_options(csv=True)
def listing():
    emit_rows([{"name": "web", "created_at": EPOCH}], [Column("name"), Column("created_at")])


@click.command()
@output_options()
def single():
    emit_object({"name": "web", "created_at": EPOCH})


@pytest.mark.parametrize(
    ("command", "args", "expected"),
    [
        (listing, [], f"NAME  CREATED AT\nweb   {ISO}\n"),
        (listing, ["--json"], json.dumps([{"name": "web", "created_at": ISO}], indent=2) + "\n"),
        (listing, ["--csv"], f"name,created_at\r\nweb,{ISO}\r\n"),
        (single, [], f"name:       web\ncreated_at: {ISO}\n"),
        (single, ["--json"], json.dumps({"name": "web", "created_at": ISO}, indent=2) + "\n"),
    ],
)
def test_the_flags_choose_the_format(command, args, expected):
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == expected.encode()


def test_json_and_csv_together_are_refused():
    result = CliRunner().invoke(listing, ["--json", "--csv"])
    assert result.exit_code == 2 and "give one of --json or --csv" in result.output
