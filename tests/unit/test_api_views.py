"""`app.web.views.iso_utc`: the API's `created_at`, exactly what `isoformat` says, to the second."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from app.web.views import iso_utc

MOMENTS = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


def reference(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")[:19] + "Z"


@given(MOMENTS, st.integers(min_value=-3_000_000, max_value=3_000_000))
def test_the_kept_second_never_answers_for_another_one(moment: datetime, step_us: int) -> None:
    """Two moments in turn, a microsecond to three seconds apart either way (before 1970
    too): each gets its own second's text, whichever the last one kept."""
    later = moment + timedelta(microseconds=step_us)
    assert iso_utc(moment) == reference(moment)
    assert iso_utc(later) == reference(later)
    assert iso_utc(moment) == reference(moment)


def test_the_last_microsecond_of_a_second_is_still_that_second() -> None:
    moment = datetime(2026, 12, 2, 3, 4, 5, 999_999, tzinfo=UTC)
    assert iso_utc(moment + timedelta(microseconds=1)) == "2026-12-02T03:04:06Z"
    assert iso_utc(moment) == "2026-12-02T03:04:05Z"


def test_a_moment_of_another_zone_is_shown_in_its_own_clock_time_as_before() -> None:
    """Only UTC moments are stored; any other is shown as `isoformat` shows it, uncached."""
    moscow = datetime(2026, 12, 2, 6, 4, 5, tzinfo=timezone(timedelta(hours=3)))
    iso_utc(moscow.astimezone(UTC))  # the same instant's UTC text is the one kept
    assert iso_utc(moscow) == "2026-12-02T06:04:05Z"
