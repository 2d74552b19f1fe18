"""Reading the RA API's query strings and JSON bodies: each malformed value
is a BadInputError that names the field."""

from datetime import UTC, datetime

from ca.errors import BadInputError


def int_param(query, key: str, default: int) -> int:
    text = query.get(key)
    if text is None:
        return default
    if not text.isdigit():
        raise BadInputError(f"{key} must be a whole number")
    return int(text)


def time_param(query, key: str) -> int | None:
    """An ISO 8601 time (or epoch seconds) from the query string."""
    text = query.get(key)
    if text is None:
        return None
    if text.isdigit():
        return int(text)
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
