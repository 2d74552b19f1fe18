"""Typed, frozen settings built from the merged TOML configuration.

Each role owns one settings class (``va.settings.VASettings``,
``publisher.settings.PublisherSettings``, ...): a frozen dataclass whose
fields carry their default, what they mean and how to size them, in the
manner of Boulder's config structs. ``build`` is the one validating
constructor: it turns a TOML table into such an object or raises
:class:`SettingsError` with an exact message naming the key, and it refuses
keys the class does not have. ``revoca/default.toml`` documents the same
keys for operators; a test holds the two to the same set and the same
defaults.

A field's type decides how its TOML value is read:

- ``int`` and ``float`` (an int is a float too; a bool is neither), with
  optional ``minimum`` / ``maximum``;
- ``str``, with optional ``pattern`` (a regular expression it must match
  whole) or ``choices``;
- ``bool``;
- ``Path``; ``Path | None`` reads "" as None (a default derived elsewhere);
- an ``Enum`` whose values are the configuration words
  (``NoncePolicy("echo")``), and ``tuple[E, ...]`` of one from a TOML list;
- ``tuple[str, ...]`` from a list of strings;
- anything else through the field's own ``parse`` function.

A field made with :func:`group` holds a nested settings class whose keys sit
in the same TOML table, each with the group's ``prefix`` (``admin_port`` is
``VASettings.admin.port``), so a table stays flat for operators while the
code hands each part only what it uses.
"""

import dataclasses
import enum
import re
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

_MISSING = dataclasses.MISSING


class SettingsError(ValueError):
    """A setting has a wrong type or value, or is unknown. ``key`` is its
    dotted name (``va.max_certids``)."""

    def __init__(self, key: str, reason: str):
        self.key = key
        self.reason = reason
        self.message = f"{key} {reason}"
        super().__init__(self.message)


def setting(
    default: Any = _MISSING,
    doc: str = "",
    *,
    default_factory: Callable[[], Any] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    pattern: str | None = None,
    choices: tuple[str, ...] | None = None,
    parse: Callable[[str, Any], Any] | None = None,
) -> Any:
    """A settings field. ``doc`` says what it is for and how to size it;
    ``parse(key, value)`` reads a value of a type ``build`` does not know
    (raising :class:`SettingsError`)."""
    metadata = {
        "doc": doc,
        "minimum": minimum,
        "maximum": maximum,
        "pattern": re.compile(pattern) if pattern else None,
        "choices": choices,
        "parse": parse,
    }
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def group(cls: type, prefix: str = "", doc: str = "") -> Any:
    """A nested settings class whose keys live in the parent's table, each
    preceded by ``prefix``."""
    return dataclasses.field(
        default_factory=cls, metadata={"group": cls, "prefix": prefix, "doc": doc}
    )


def _fields(cls: type) -> Iterator[tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.init:
            yield field, hints[field.name]


def keys(cls: type, prefix: str = "") -> dict[str, tuple[type, str]]:
    """Every TOML key of ``cls`` (groups flattened), in field order:
    key -> (the class holding it, its field name)."""
    out: dict[str, tuple[type, str]] = {}
    for field, _ in _fields(cls):
        nested = field.metadata.get("group")
        if nested is not None:
            out.update(keys(nested, prefix + field.metadata["prefix"]))
        else:
            out[prefix + field.name] = (cls, field.name)
    return out


def defaults(cls: type, prefix: str = "") -> dict[str, Any]:
    """Each key's default, as the settings object holds it."""
    instance_values = {}
    for field, _ in _fields(cls):
        nested = field.metadata.get("group")
        if nested is not None:
            instance_values.update(defaults(nested, prefix + field.metadata["prefix"]))
        elif field.default is not _MISSING:
            instance_values[prefix + field.name] = field.default
        elif field.default_factory is not _MISSING:
            instance_values[prefix + field.name] = field.default_factory()
    return instance_values


def build(cls: type, table: dict, section: str) -> Any:
    """``cls`` from the TOML ``table`` of ``section``: every value checked,
    unknown keys refused, missing keys at their defaults. The object's
    ``check()`` method, if it has one, then checks fields against each other."""
    if not isinstance(table, dict):
        raise SettingsError(f"[{section}]", "must be a table")
    known = keys(cls)
    for key in table:
        if key not in known:
            raise SettingsError(f"{section}.{key}", "is not a setting")
    return _build(cls, table, section, "")


def _build(cls: type, table: dict, section: str, prefix: str) -> Any:
    values = {}
    for field, hint in _fields(cls):
        nested = field.metadata.get("group")
        if nested is not None:
            values[field.name] = _build(nested, table, section, prefix + field.metadata["prefix"])
            continue
        key = prefix + field.name
        if key in table:
            values[field.name] = read(field, hint, f"{section}.{key}", table[key])
    settings = cls(**values)
    check = getattr(settings, "check", None)
    if check is not None:
        try:
            check()
        except SettingsError as exc:  # check() names keys of its own table
            raise SettingsError(f"{section}.{prefix}{exc.key}", exc.reason) from None
    return settings


def read(field: dataclasses.Field, hint: Any, key: str, value: Any) -> Any:
    """One TOML value, checked and converted to the field's type."""
    meta = field.metadata
    if meta.get("parse") is not None:
        return meta["parse"](key, value)
    optional = False
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional, hint = len(args) < len(typing.get_args(hint)), args[0]
    if optional and value == "":
        return None
    if hint is bool:
        if not isinstance(value, bool):
            raise SettingsError(key, "must be true or false")
        return value
    if hint is int or hint is float:
        return _number(key, value, hint, meta)
    if hint is str:
        return _text(key, value, meta)
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise SettingsError(key, "must be a path")
        return Path(value)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum(key, value, hint)
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        if not isinstance(value, list):
            raise SettingsError(key, "must be a list")
        if isinstance(item, type) and issubclass(item, enum.Enum):
            return tuple(_enum(key, v, item) for v in value)
        if item is str:
            return tuple(_text(key, v, meta) for v in value)
    raise TypeError(f"{key}: no reader for {hint!r}; give the field a parse function")


def _number(key: str, value: Any, kind: type, meta) -> int | float:
    ok = isinstance(value, int) if kind is int else isinstance(value, int | float)
    low, high = meta.get("minimum"), meta.get("maximum")
    if not ok or isinstance(value, bool) or value != value:  # NaN
        raise SettingsError(key, f"must be {_range_text(kind, low, high)}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise SettingsError(key, f"must be {_range_text(kind, low, high)}")
    return kind(value)


def _range_text(kind: type, low, high) -> str:
    what = "an integer" if kind is int else "a number"
    if low is not None and high is not None:
        return f"{what} from {low:g} to {high:g}"
    if low is not None:
        return f"{what} of at least {low:g}"
    if high is not None:
        return f"{what} of at most {high:g}"
    return what


def _text(key: str, value: Any, meta) -> str:
    if not isinstance(value, str):
        raise SettingsError(key, "must be a string")
    choices, pattern = meta.get("choices"), meta.get("pattern")
    if choices is not None and value not in choices:
        raise SettingsError(key, f"must be one of {', '.join(map(repr, choices))}")
    if pattern is not None and not pattern.fullmatch(value):
        raise SettingsError(key, f"{value!r} is not allowed (must match {pattern.pattern})")
    return value


def _enum(key: str, value: Any, kind: type[enum.Enum]) -> enum.Enum:
    try:
        return kind(value)
    except ValueError:
        words = ", ".join(repr(member.value) for member in kind)
        raise SettingsError(key, f"must be one of {words}") from None


def describe(cls: type, prefix: str = "") -> dict[str, str]:
    """Each key's documentation (for ``revoca config explain`` and tests)."""
    out = {}
    for field, _ in _fields(cls):
        nested = field.metadata.get("group")
        if nested is not None:
            out.update(describe(nested, prefix + field.metadata["prefix"]))
        else:
            out[prefix + field.name] = field.metadata.get("doc", "")
    return out
