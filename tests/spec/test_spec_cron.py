"""parse_cron: accepted expressions, the exact message for each rejection, and when schedules fire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labci_spec.cron import MAX_CRON_CHARS, CronSchedule, parse_cron
from labci_spec.errors import CronError

ALL_MINUTES = frozenset(range(60))
ALL_HOURS = frozenset(range(24))
ALL_DAYS = frozenset(range(1, 32))
ALL_MONTHS = frozenset(range(1, 13))
ALL_WEEKDAYS = frozenset(range(7))

# (id, expression, minutes, hours, days of month, months, days of week, dom restricted, dow restricted)
VALID_CASES = [
    (
        "every-15-minutes",
        "*/15 * * * *",
        {0, 15, 30, 45},
        ALL_HOURS,
        ALL_DAYS,
        ALL_MONTHS,
        ALL_WEEKDAYS,
        False,
        False,
    ),
    ("weekday-list", "30 5 * * 1,3", {30}, {5}, ALL_DAYS, ALL_MONTHS, {1, 3}, False, True),
    ("month-name", "0 0 1 JAN *", {0}, {0}, {1}, {1}, ALL_WEEKDAYS, True, False),
    (
        "weekday-name-range",
        "0 12 * * MON-FRI",
        {0},
        {12},
        ALL_DAYS,
        ALL_MONTHS,
        {1, 2, 3, 4, 5},
        False,
        True,
    ),
    ("names-any-case", "0 0 * jan,Feb sun", {0}, {0}, ALL_DAYS, {1, 2}, {0}, False, True),
    ("sunday-as-7", "0 0 * * 7", {0}, {0}, ALL_DAYS, ALL_MONTHS, {0}, False, True),
    ("range-through-7", "0 0 * * 5-7", {0}, {0}, ALL_DAYS, ALL_MONTHS, {5, 6, 0}, False, True),
    ("stepped-range", "0-30/10 1-5/2 * * *", {0, 10, 20, 30}, {1, 3, 5}, ALL_DAYS, ALL_MONTHS,
     ALL_WEEKDAYS, False, False),
    ("start-step", "5/20 * * * *", {5, 25, 45}, ALL_HOURS, ALL_DAYS, ALL_MONTHS, ALL_WEEKDAYS,
     False, False),
    ("mixed-list", "1,2-4,*/30 * * * *", {0, 1, 2, 3, 4, 30}, ALL_HOURS, ALL_DAYS, ALL_MONTHS,
     ALL_WEEKDAYS, False, False),
    ("step-beyond-range", "*/90 * * * *", {0}, ALL_HOURS, ALL_DAYS, ALL_MONTHS, ALL_WEEKDAYS,
     False, False),
    ("star-step-is-unrestricted", "0 0 */2 * 1", {0}, {0}, set(range(1, 32, 2)), ALL_MONTHS,
     {1}, False, True),
    ("extra-whitespace", "  0\t0  1 * *  ", {0}, {0}, {1}, ALL_MONTHS, ALL_WEEKDAYS, True, False),
    ("both-day-fields", "0 0 13 * FRI", {0}, {0}, {13}, ALL_MONTHS, {5}, True, True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("expression", "minutes", "hours", "doms", "months", "dows", "dom_r", "dow_r"),
    [c[1:] for c in VALID_CASES],
    ids=[c[0] for c in VALID_CASES],
)
def test_parse_valid(
    expression: str,
    minutes: set[int],
    hours: set[int],
    doms: set[int],
    months: set[int],
    dows: set[int],
    dom_r: bool,
    dow_r: bool,
) -> None:
    assert parse_cron(expression) == CronSchedule(
        expression=expression,
        minutes=frozenset(minutes),
        hours=frozenset(hours),
        days_of_month=frozenset(doms),
        months=frozenset(months),
        days_of_week=frozenset(dows),
        day_of_month_restricted=dom_r,
        day_of_week_restricted=dow_r,
    )


FIELDS = "(minute hour day-of-month month day-of-week)"
INVALID_CASES = [
    ("too-few-fields", "* * *", f'cron "* * *": expected 5 fields {FIELDS}, got 3'),
    ("empty", "", f'cron "": expected 5 fields {FIELDS}, got 0'),
    ("seconds-field", "0 * * * * *", f'cron "0 * * * * *": expected 5 fields {FIELDS}, got 6'),
    ("hour-24", "0 24 * * *", 'cron "0 24 * * *": hour 24 is out of range 0-23'),
    ("minute-60", "60 * * * *", 'cron "60 * * * *": minute 60 is out of range 0-59'),
    ("dom-0", "0 0 0 * *", 'cron "0 0 0 * *": day-of-month 0 is out of range 1-31'),
    ("month-13", "0 0 * 13 *", 'cron "0 0 * 13 *": month 13 is out of range 1-12'),
    (
        "dow-8",
        "0 0 * * 8",
        'cron "0 0 * * 8": day-of-week 8 is out of range 0-7 (0 and 7 are Sunday)',
    ),
    ("step-zero", "*/0 * * * *", 'cron "*/0 * * * *": minute step 0 in "*/0" must be at least 1'),
    (
        "step-not-number",
        "*/x * * * *",
        'cron "*/x * * * *": minute step "x" in "*/x" is not a number',
    ),
    (
        "reversed-range",
        "0 5-1 * * *",
        'cron "0 5-1 * * *": hour range 5-1 runs backwards; cron ranges do not wrap, write 5-23,0-1',
    ),
    (
        "reversed-day-names",
        "0 0 * * FRI-MON",
        'cron "0 0 * * FRI-MON": day-of-week range FRI-MON runs backwards; '
        "cron ranges do not wrap, write FRI-SAT,SUN-MON",
    ),
    (
        "reversed-from-sunday-7",
        "0 0 * * 7-1",
        'cron "0 0 * * 7-1": day-of-week range 7-1 runs backwards; '
        "cron ranges do not wrap, write 0-1",
    ),
    (
        "negative",
        "-1 * * * *",
        'cron "-1 * * * *": minute range "-1" must be two values around one "-", like 1-5',
    ),
    ("word", "x * * * *", 'cron "x * * * *": minute "x" is not a number'),
    (
        "bad-month-name",
        "0 0 * JANUARY *",
        'cron "0 0 * JANUARY *": month "JANUARY" is not a number or a month name (JAN-DEC)',
    ),
    (
        "month-name-in-day-field",
        "0 0 * * JAN",
        'cron "0 0 * * JAN": day-of-week "JAN" is not a number or a day name (SUN-SAT)',
    ),
    (
        "day-name-in-hour",
        "0 MON * * *",
        'cron "0 MON * * *": hour "MON" is not a number',
    ),
    (
        "quartz-question-mark",
        "0 0 ? * 1",
        'cron "0 0 ? * 1": day-of-month "?" is not a number',
    ),
    (
        "non-ascii-digit",
        "\u0661 * * * *",
        'cron "\u0661 * * * *": minute "\u0661" is not a number',
    ),
    (
        "empty-list-item",
        "1,,2 * * * *",
        'cron "1,,2 * * * *": minute "1,,2" has an empty item between commas',
    ),
    (
        "too-long",
        "0" * (MAX_CRON_CHARS + 1),
        f"cron expression is {MAX_CRON_CHARS + 1} characters long; the limit is {MAX_CRON_CHARS}",
    ),
]


@pytest.mark.parametrize(
    ("expression", "message"), [c[1:] for c in INVALID_CASES], ids=[c[0] for c in INVALID_CASES]
)
def test_parse_invalid(expression: str, message: str) -> None:
    with pytest.raises(CronError) as raised:
        parse_cron(expression)
    assert str(raised.value) == message


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, *, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# 2024-01-01 is a Monday; 2024-02-13 a Tuesday; 2024-09-13 a Friday.
MATCH_CASES = [
    ("every-15-hit", "*/15 * * * *", utc(2024, 1, 1, 10, 45), True),
    ("every-15-miss", "*/15 * * * *", utc(2024, 1, 1, 10, 46), False),
    ("seconds-ignored", "*/15 * * * *", utc(2024, 1, 1, 10, 45, second=59), True),
    ("weekday-hit", "0 12 * * MON-FRI", utc(2024, 1, 5, 12, 0), True),
    ("weekday-saturday", "0 12 * * MON-FRI", utc(2024, 1, 6, 12, 0), False),
    ("sunday-7", "0 0 * * 7", utc(2024, 1, 7, 0, 0), True),
    ("both-days-dom-only", "0 0 13 * FRI", utc(2024, 2, 13, 0, 0), True),
    ("both-days-dow-only", "0 0 13 * FRI", utc(2024, 2, 16, 0, 0), True),
    ("both-days-neither", "0 0 13 * FRI", utc(2024, 2, 14, 0, 0), False),
    ("dom-only-ignores-dow", "0 0 13 * *", utc(2024, 2, 16, 0, 0), False),
    ("star-step-dom-ands", "0 0 */2 * 1", utc(2024, 1, 1, 0, 0), True),
    ("star-step-dom-ands-miss", "0 0 */2 * 1", utc(2024, 1, 8, 0, 0), False),
    ("month-miss", "0 0 1 JAN *", utc(2024, 2, 1, 0, 0), False),
    ("naive-is-utc", "0 5 * * *", datetime(2024, 1, 1, 5, 0), True),
    (
        "aware-converted-to-utc",
        "0 5 * * *",
        datetime(2024, 1, 1, 7, 0, tzinfo=timezone(timedelta(hours=2))),
        True,
    ),
]


@pytest.mark.parametrize(
    ("expression", "when", "expected"),
    [c[1:] for c in MATCH_CASES],
    ids=[c[0] for c in MATCH_CASES],
)
def test_matches(expression: str, when: datetime, expected: bool) -> None:
    assert parse_cron(expression).matches(when) is expected


NEXT_CASES = [
    ("next-quarter", "*/15 * * * *", utc(2024, 1, 1, 10, 45), utc(2024, 1, 1, 11, 0)),
    ("strictly-after", "0 5 * * *", utc(2024, 1, 1, 5, 0), utc(2024, 1, 2, 5, 0)),
    ("mid-minute", "* * * * *", utc(2024, 1, 1, 5, 0, second=30), utc(2024, 1, 1, 5, 1)),
    ("same-day-later", "30 5 * * 1,3", utc(2024, 1, 1, 5, 29), utc(2024, 1, 1, 5, 30)),
    ("skip-to-wednesday", "30 5 * * 1,3", utc(2024, 1, 1, 5, 30), utc(2024, 1, 3, 5, 30)),
    ("friday-to-monday", "0 12 * * MON-FRI", utc(2024, 1, 5, 12, 0), utc(2024, 1, 8, 12, 0)),
    ("next-year", "0 0 1 JAN *", utc(2024, 1, 1, 0, 0), utc(2025, 1, 1, 0, 0)),
    ("year-end-rollover", "59 23 31 12 *", utc(2023, 12, 31, 23, 59), utc(2024, 12, 31, 23, 59)),
    ("dom-or-dow-dow-first", "0 0 13 * FRI", utc(2024, 9, 1), utc(2024, 9, 6)),
    ("dom-or-dow-dom-first", "0 0 13 * FRI", utc(2024, 2, 10), utc(2024, 2, 13)),
    ("leap-day", "0 0 29 2 *", utc(2024, 3, 1), utc(2028, 2, 29)),
    ("leap-day-skips-2100", "0 0 29 2 *", utc(2097, 1, 1), utc(2104, 2, 29)),
    ("day-31-skips-short-months", "0 0 31 * *", utc(2024, 4, 1), utc(2024, 5, 31)),
    ("naive-in-aware-out", "0 0 * * *", datetime(2024, 1, 1, 12), utc(2024, 1, 2)),
    (
        "aware-input",
        "0 0 * * *",
        datetime(2024, 1, 1, 23, 30, tzinfo=timezone(timedelta(hours=-2))),
        utc(2024, 1, 3),
    ),
]


@pytest.mark.parametrize(
    ("expression", "when", "expected"),
    [c[1:] for c in NEXT_CASES],
    ids=[c[0] for c in NEXT_CASES],
)
def test_next_after(expression: str, when: datetime, expected: datetime) -> None:
    fired = parse_cron(expression).next_after(when)
    assert fired == expected
    assert fired.tzinfo is UTC


NEVER_CASES = [
    (
        "february-31",
        "0 0 31 2 *",
        'cron "0 0 31 2 *": never fires; no month in its month field has a day in its '
        "day-of-month field",
    ),
    (
        "short-months-31",
        "0 0 31 APR,JUN,SEP,NOV *",
        'cron "0 0 31 APR,JUN,SEP,NOV *": never fires; no month in its month field has a day '
        "in its day-of-month field",
    ),
    (
        "end-of-calendar",
        "0 0 1 1 *",
        'cron "0 0 1 1 *": does not fire again before the year 10000',
    ),
]


@pytest.mark.parametrize(
    ("expression", "message"), [c[1:] for c in NEVER_CASES], ids=[c[0] for c in NEVER_CASES]
)
def test_next_after_never(expression: str, message: str) -> None:
    with pytest.raises(CronError) as raised:
        parse_cron(expression).next_after(utc(9999, 6, 1))
    assert str(raised.value) == message


def test_february_31_with_a_weekday_still_fires() -> None:
    # Both day fields restricted: "the 31st or any Friday", and February has Fridays.
    assert parse_cron("0 0 31 2 FRI").next_after(utc(2024, 1, 1)) == utc(2024, 2, 2)


CRON_PIECES = ["*", "/", ",", "-", " ", "\t", "0", "1", "5", "7", "12", "23", "31", "59", "60"]
CRON_PIECES += ["MON", "sun", "JAN", "dec", "?", "L", "#", "\u0661", "\u0131"]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.lists(st.sampled_from(CRON_PIECES), max_size=30).map("".join)))
def test_parse_cron_returns_or_raises_cron_error(text: str) -> None:
    try:
        schedule = parse_cron(text)
    except CronError:
        return  # the property: CronError, never any other exception
    assert schedule.expression == text
    assert schedule.days_of_week <= ALL_WEEKDAYS


FIELD_CHOICES = [
    ["*", "*/7", "0", "1-5", "3,45", "10-50/15"],
    ["*", "*/5", "0", "9-17", "3,23"],
    ["*", "*/10", "1", "13", "29-31", "31"],
    ["*", "*/5", "FEB", "1-3", "4,6,9,11", "2"],
    ["*", "*/3", "0", "MON-FRI", "7", "SAT"],
]


@settings(max_examples=200, deadline=None)
@given(
    st.tuples(*(st.sampled_from(choices) for choices in FIELD_CHOICES)).map(" ".join),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
)
def test_next_after_is_later_and_matches(expression: str, when: datetime) -> None:
    schedule = parse_cron(expression)
    if not _fires_within_eight_years(*expression.split()[2:]):
        with pytest.raises(CronError, match="never fires"):
            schedule.next_after(when)
        return
    fired = schedule.next_after(when)
    assert fired > when.replace(tzinfo=UTC)
    assert schedule.matches(fired)
    assert (fired.second, fired.microsecond) == (0, 0)


@cache
def _fires_within_eight_years(day_of_month: str, month: str, day_of_week: str) -> bool:
    """Brute force: eight years hold a leap day, so every (month, day) that exists shows up."""
    schedule = parse_cron(f"0 0 {day_of_month} {month} {day_of_week}")
    return any(schedule.matches(utc(2000, 1, 1) + timedelta(days=d)) for d in range(8 * 366))
