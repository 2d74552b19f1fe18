"""How the command line shows what it found: an aligned table or a
key/value view for people (the default), JSON or CSV for scripts (--json,
--csv). Every command renders through here, so all of them write times
alike (ISO 8601 in UTC, ``2026-12-03T18:00:00Z``, common.clock.iso8601)
and no table falls out of line on a long or odd value.

The string functions (``table``, ``key_values``, ``to_json``, ``to_csv``)
are pure; ``output_options``, ``emit_rows`` and ``emit_object`` tie them to
a click command's --json / --csv flags."""

import csv
import io
import json
import shutil
import sys
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import click

from common.clock import iso8601

# Fields that hold a time in the summaries the commands print. Their value
# may be epoch seconds, a datetime or an ISO 8601 string (summaries differ,
# and some are moving to ISO strings): each is written as iso8601 writes it.
TIME_FIELDS = frozenset(
    {
        "not_before",
        "not_after",
        "revoked_at",
        "invalidity_date",
        "created_at",
        "updated_at",
        "expires_at",
        "decided_at",
        "added_at",
        "approved_at",
        "disabled_at",
        "issued_at",
        "at",
    }
)

GAP = "  "  # between two columns
ELLIPSIS = "…"
MIN_SHRUNK = 8  # a column cut to fit the width keeps at least this many characters


def when(value):
    """A time as ISO 8601 in UTC, to the second; None stays None. Epoch
    seconds, an aware (or UTC-naive) datetime, or an ISO 8601 string; a
    string that is not one is returned unchanged."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return iso8601(value)
    if isinstance(value, datetime):
        return iso8601(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
        return iso8601(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))
    return value


def with_iso_times(data, fields: Iterable[str] = TIME_FIELDS):
    """``data`` with every value under a key of ``fields`` (at any depth)
    written by ``when``."""
    fields = fields if isinstance(fields, frozenset) else frozenset(fields)
    if isinstance(data, Mapping):
        return {k: when(v) if k in fields else with_iso_times(v, fields) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [with_iso_times(v, fields) for v in data]
    return data


# -- one value as text ----------------------------------------------------------------


def cell(value) -> str:
    """One value as one line of text: None is "-", a list is comma-separated,
    a mapping key=value; line breaks and other control characters become
    spaces, so that no value breaks a row in two."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={cell(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(cell(v) for v in value) or "-"
    if isinstance(value, datetime):
        return when(value)
    text = str(value)
    return "".join(" " if unicodedata.category(c)[0] == "C" else c for c in text)


def _columns_of(c: str) -> int:
    if unicodedata.combining(c):
        return 0
    return 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1


def width_of(text: str) -> int:
    """Columns the text takes on a terminal: wide (East Asian) characters
    two, combining marks none."""
    return sum(_columns_of(c) for c in text)


def cut(text: str, width: int) -> str:
    """``text`` in at most ``width`` columns, ending in "…" when cut."""
    if width_of(text) <= width:
        return text
    out, used = [], 0
    for c in text:
        w = _columns_of(c)
        if used + w > width - 1:
            break
        out.append(c)
        used += w
    return "".join(out) + ELLIPSIS


def pad(text: str, width: int, align: str = "<") -> str:
    space = " " * max(0, width - width_of(text))
    return space + text if align == ">" else text + space


# -- tables -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One column of a table: the row key it shows, its header, its
    alignment, and whether it may be cut to fit the width (free text such
    as subjects; identifiers such as serials and names never are)."""

    key: str
    header: str | None = None
    align: str = "<"
    shrink: bool = False

    @property
    def title(self) -> str:
        return self.header if self.header is not None else self.key.replace("_", " ").upper()


def _fit(widths: list[int], columns: Sequence[Column], limit: int) -> list[int]:
    """Narrow the shrinkable columns, widest first, until the row fits in
    ``limit`` columns or none can give more."""
    widths = list(widths)
    floors = [
        min(w, max(MIN_SHRUNK, width_of(c.title))) for w, c in zip(widths, columns, strict=True)
    ]
    total = sum(widths) + len(GAP) * (len(widths) - 1)
    while total > limit:
        candidates = [i for i, c in enumerate(columns) if c.shrink and widths[i] > floors[i]]
        if not candidates:
            break
        i = max(candidates, key=lambda j: widths[j])
        step = min(total - limit, widths[i] - floors[i])
        widths[i] -= step
        total -= step
    return widths


def table(rows: Sequence[Mapping], columns: Sequence[Column], *, width: int | None = None) -> str:
    """Rows under a header line, every column as wide as its widest value
    (or narrowed to fit ``width``, cutting only shrinkable columns), two
    spaces between columns, no trailing spaces. Ends with a newline."""
    body = [[cell(row.get(c.key)) for c in columns] for row in rows]
    widths = [
        max([width_of(c.title)] + [width_of(line[i]) for line in body])
        for i, c in enumerate(columns)
    ]
    if width is not None:
        widths = _fit(widths, columns, width)
    out = []
    for line in [[c.title for c in columns], *body]:
        cells = [
            pad(cut(text, w), w, c.align) for text, w, c in zip(line, widths, columns, strict=True)
        ]
        out.append(GAP.join(cells).rstrip())
    return "\n".join(out) + "\n"


# -- key/value views --------------------------------------------------------------------


def key_values(
    data: Mapping, *, width: int | None = None, indent: int = 0, tables: Mapping | None = None
) -> str:
    """One ``key: value`` line per key, the values aligned. A nested mapping
    is a block indented under its key; a list of mappings is a table
    indented under its key (``tables`` may name its columns by key; by
    default every key of its rows). Ends with a newline."""
    tables = tables or {}
    pad_to = max((width_of(str(k)) for k in data), default=0) + 1
    lead = " " * indent
    out = []
    for key, value in data.items():
        label = pad(f"{key}:", pad_to)
        if isinstance(value, Mapping) and value:
            out.append(f"{lead}{key}:\n")
            out.append(key_values(value, width=width, indent=indent + 2, tables=tables))
        elif (
            isinstance(value, list | tuple) and value and all(isinstance(v, Mapping) for v in value)
        ):
            columns = tables.get(key) or [Column(k) for k in _keys(value)]
            inner = None if width is None else max(20, width - indent - 2)
            rows = table(value, columns, width=inner).splitlines()
            out.append(f"{lead}{key}:\n")
            out.extend(f"{lead}  {line}\n" for line in rows)
        else:
            out.append(f"{lead}{label} {cell(value)}".rstrip() + "\n")
    return "".join(out)


def _keys(rows: Iterable[Mapping]) -> list[str]:
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    return list(keys)


# -- for scripts ------------------------------------------------------------------------


def to_json(data) -> str:
    """Indented JSON; times and other values JSON has no type for as text."""

    def default(value):
        if isinstance(value, datetime):
            return when(value)
        if isinstance(value, set | frozenset):
            return sorted(value)
        return str(value)

    return json.dumps(data, indent=2, default=default)


def csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return " ".join(csv_cell(v) for v in value)
    if isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, datetime):
        return when(value)
    return str(value)


def to_csv(rows: Sequence[Mapping], keys: Sequence[str]) -> str:
    """A header line of ``keys``, then one line per row (RFC 4180, CRLF);
    a list is written space-separated, a mapping as JSON."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(keys)
    for row in rows:
        writer.writerow([csv_cell(row.get(k)) for k in keys])
    return out.getvalue()


def plural(count: int, singular: str, plural_form: str | None = None, *, grouped=False) -> str:
    """``1 entry``, ``2 entries``, ``0 entries``; ``grouped``: ``1,000 entries``."""
    word = singular if count == 1 else plural_form or singular + "s"
    return f"{count:,} {word}" if grouped else f"{count} {word}"


# -- tied to a click command ------------------------------------------------------------

_FORMAT = "revoca.output"


def _choose(fmt: str):
    def remember(ctx: click.Context, _param, value):
        if not value:
            return
        chosen = ctx.meta.get(_FORMAT)
        if chosen is not None and chosen != fmt:
            raise click.UsageError(f"give one of --{chosen} or --{fmt}", ctx)
        ctx.meta[_FORMAT] = fmt

    return remember


def output_options(*, csv: bool = False, json_help: str | None = None):
    """--json (and with ``csv``, --csv) for a command: read by emit_rows
    and emit_object through the command's context."""

    def decorate(func):
        if csv:
            func = click.option(
                "--csv",
                is_flag=True,
                expose_value=False,
                callback=_choose("csv"),
                help="CSV for scripts (RFC 4180, a header line first).",
            )(func)
        return click.option(
            "--json",
            is_flag=True,
            expose_value=False,
            callback=_choose("json"),
            help=json_help or "JSON for scripts instead of the view for people.",
        )(func)

    return decorate


def chosen_format() -> str:
    """ "table", "json" or "csv", as the running command was asked."""
    return click.get_current_context().meta.get(_FORMAT, "table")


def terminal_width() -> int | None:
    """The width to fit tables to: the terminal's ($COLUMNS first) when
    stdout is one, else None (a file or pipe gets every value whole)."""
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def emit_rows(
    rows: Sequence[Mapping],
    columns: Sequence[Column],
    *,
    times: Iterable[str] = TIME_FIELDS,
    csv_keys: Sequence[str] | None = None,
    view=None,
    data=None,
) -> None:
    """Print ``rows`` as the command was asked: a table of ``columns``
    (of ``view(row)`` for each row, if given), JSON (``data`` if given,
    else the rows, whole) or CSV (``csv_keys``, default every key of the
    rows, else the columns' keys). Time fields are written as ISO 8601 in
    all three."""
    rows = with_iso_times(list(rows), times)
    fmt = chosen_format()
    if fmt == "json":
        click.echo(to_json(rows if data is None else with_iso_times(data, times)))
    elif fmt == "csv":
        keys = csv_keys or _keys(rows) or [c.key for c in columns]
        click.echo(to_csv(rows, keys), nl=False)
    else:
        shown = rows if view is None else [view(row) for row in rows]
        click.echo(table(shown, columns, width=terminal_width()), nl=False)


def emit_object(data: Mapping, *, times: Iterable[str] = TIME_FIELDS, tables=None) -> None:
    """Print one object: key/value lines, or JSON with --json."""
    data = with_iso_times(data, times)
    if chosen_format() == "json":
        click.echo(to_json(data))
    else:
        click.echo(key_values(data, width=terminal_width(), tables=tables), nl=False)
