"""Reading the RA API's query strings and JSON bodies: each malformed value
is a BadInputError that names the field."""

from datetime import UTC, datetime

from ca.errors import BadInputError


def _whole(text: str, what: str, digits: int) -> int:
    """ASCII digits only (``isdigit`` alone takes '²'), and few enough that
    the value fits the store's 64-bit integers."""
    if not (text.isascii() and text.isdigit()) or len(text) > digits:
        raise BadInputError(f"{what} must be a whole number of at most {digits} digits")
    return int(text)


def int_param(query, key: str, default: int) -> int:
    text = query.get(key)
    return default if text is None else _whole(text, key, 9)


def id_param(query, key: str) -> int | None:
    """A row id (a page's ``after``); None when absent."""
    text = query.get(key)
    return None if not text else _whole(text, key, 18)


def id_text(text: str, what: str) -> int:
    return _whole(text, what, 18)


def time_param(query, key: str) -> int | None:
    """An ISO 8601 time (or epoch seconds) from the query string."""
    text = query.get(key)
    if text is None:
        return None
    if text.isascii() and text.isdigit():
        return _whole(text, key, 12)  # epoch seconds; 12 digits reach year 33658
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadInputError(f"{key} must be an ISO 8601 time or epoch seconds") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


def text_field(body: dict, key: str) -> bytes | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadInputError(f"{key} must be a string")
    return value.encode()


def days_field(body: dict) -> int | None:
    days = body.get("days")
    if days is not None and (not isinstance(days, int) or isinstance(days, bool) or days < 1):
        raise BadInputError("days must be a positive whole number")
    return days
