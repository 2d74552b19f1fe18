"""common.clock.iso8601: the one way times are written for people and scripts."""

from datetime import UTC, datetime, timedelta, timezone

from common.clock import iso8601


def test_epoch_seconds_are_written_in_utc_to_the_second():
    assert iso8601(0) == "1970-01-01T00:00:00Z"
    assert iso8601(1796000000.7) == "2026-11-30T00:53:20Z"


def test_an_aware_datetime_is_converted_to_utc():
    plus_two = timezone(timedelta(hours=2))
    assert iso8601(datetime(2026, 1, 1, 5, tzinfo=plus_two)) == "2026-01-01T03:00:00Z"
    assert iso8601(datetime(2026, 1, 1, 5, tzinfo=UTC)) == "2026-01-01T05:00:00Z"


def test_none_stays_none():
    assert iso8601(None) is None
