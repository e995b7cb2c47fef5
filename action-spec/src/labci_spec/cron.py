"""`on.schedule[].cron`: parse POSIX cron as GitHub Actions accepts it, and find when it fires.

Five fields, minute hour day-of-month month day-of-week, each a list (`,`) of
`*`, a value, or a range (`-`), optionally stepped (`/`). Months may be JAN-DEC
and days SUN-SAT, in any case; day-of-week 7 is Sunday like 0. `N/step` means
`N-max/step`. Schedules run in UTC, as on GitHub.

The two day fields combine as in cron itself (Vixie cron, which GitHub's POSIX
syntax follows): when both are restricted a day matches if *either* does, so
`0 0 1 * MON` fires on the 1st and on every Monday; otherwise both must match. A
field counts as unrestricted when it starts with `*` (so `*/2` is too), cron's
own rule, which matters only when the other day field is restricted.

Every rejection is a `CronError` that quotes the expression and names the field,
because it ends up on a pull request in front of someone who has to fix it.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from labci_spec.errors import CronError

MAX_CRON_CHARS = 200
_GREGORIAN_CYCLE_DAYS = 146_097  # 400 years: dates and weekdays repeat exactly after this
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


@dataclass(frozen=True)
class _Field:
    """One of the five fields: its name, the values it accepts, what `*` covers."""

    name: str
    low: int
    high: int
    star_high: int
    names: dict[str, int]
    names_hint: str = ""


_FIELDS = (
    _Field("minute", 0, 59, 59, {}),
    _Field("hour", 0, 23, 23, {}),
    _Field("day-of-month", 1, 31, 31, {}),
    _Field("month", 1, 12, 12, {n: i + 1 for i, n in enumerate(_MONTHS)}, "a month name (JAN-DEC)"),
    _Field("day-of-week", 0, 7, 6, {n: i for i, n in enumerate(_DAYS)}, "a day name (SUN-SAT)"),
)


class _Bad(Exception):
    """Internal: a field is invalid; parse_cron adds the quoted expression."""


@dataclass(frozen=True)
class CronSchedule:
    """A parsed cron expression: the set of values each field allows (day-of-week 0 = Sunday).

    `matches` and `next_after` read a naive datetime as UTC and convert an aware one
    to UTC; seconds are ignored, as cron works in whole minutes.
    """

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]
    day_of_month_restricted: bool
    day_of_week_restricted: bool

    def matches(self, when: datetime) -> bool:
        """Whether the schedule fires in the UTC minute that contains `when`."""
        minute = _utc_minute(when)
        return (
            minute.minute in self.minutes
            and minute.hour in self.hours
            and minute.month in self.months
            and self._day_matches(minute.date())
        )

    def next_after(self, when: datetime) -> datetime:
        """The first minute strictly after `when` at which the schedule fires, as aware UTC.

        Raises CronError if it never fires (`0 0 31 2 *`) or not before the year 10000.
        The search skips whole months and is bounded by one 400-year Gregorian cycle.
        """
        if not self._can_fire():
            raise CronError(
                f"{_quoted(self.expression)}: never fires; no month in its month field "
                "has a day in its day-of-month field"
            )
        times = sorted((hour, minute) for hour in self.hours for minute in self.minutes)
        try:
            start = _utc_minute(when) + timedelta(minutes=1)
            day = start.date()
            for _ in range(_GREGORIAN_CYCLE_DAYS + 1):
                if day.month not in self.months:
                    day = _first_of_next_month(day)
                    continue
                if self._day_matches(day):
                    earliest = (start.hour, start.minute) if day == start.date() else (0, 0)
                    fire = next((t for t in times if t >= earliest), None)
                    if fire is not None:
                        return datetime(day.year, day.month, day.day, *fire, tzinfo=UTC)
                day += timedelta(days=1)
        except OverflowError:
            pass
        raise CronError(f"{_quoted(self.expression)}: does not fire again before the year 10000")

    def _day_matches(self, day: date) -> bool:
        in_month = day.day in self.days_of_month
        in_week = day.isoweekday() % 7 in self.days_of_week
        if self.day_of_month_restricted and self.day_of_week_restricted:
            return in_month or in_week
        return in_month and in_week

    def _can_fire(self) -> bool:
        """False only when day-of-month and month never meet (31 Feb, 31 Apr, ...).

        With both day fields restricted, any week has a matching weekday; and an
        unrestricted day-of-month always includes the 1st, which every month has.
        """
        if self.day_of_month_restricted and self.day_of_week_restricted:
            return True
        longest = {month: calendar.monthrange(2000, month)[1] for month in self.months}
        return any(day <= longest[month] for month in self.months for day in self.days_of_month)


def parse_cron(expression: str) -> CronSchedule:
    """Parse a five-field cron expression; raises CronError naming the field at fault."""
    if len(expression) > MAX_CRON_CHARS:
        raise CronError(
            f"cron expression is {len(expression)} characters long; the limit is {MAX_CRON_CHARS}"
        )
    parts = expression.split()
    if len(parts) != len(_FIELDS):
        names = " ".join(field.name for field in _FIELDS)
        raise CronError(f"{_quoted(expression)}: expected 5 fields ({names}), got {len(parts)}")
    try:
        values = [_parse_field(text, field) for text, field in zip(parts, _FIELDS, strict=True)]
    except _Bad as exc:
        raise CronError(f"{_quoted(expression)}: {exc}") from exc
    minutes, hours, days_of_month, months, days_of_week = values
    return CronSchedule(
        expression=expression,
        minutes=minutes,
        hours=hours,
        days_of_month=days_of_month,
        months=months,
        days_of_week=frozenset(day % 7 for day in days_of_week),
        day_of_month_restricted=not parts[2].startswith("*"),
        day_of_week_restricted=not parts[4].startswith("*"),
    )


def _parse_field(text: str, field: _Field) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise _Bad(f'{field.name} "{text}" has an empty item between commas')
        values.update(_parse_item(item, field))
    return frozenset(values)


def _parse_item(item: str, field: _Field) -> range:
    """One list item: `*`, `N`, `A-B`, each optionally followed by `/step`."""
    span, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not _is_number(step_text):
            raise _Bad(f'{field.name} step "{step_text}" in "{item}" is not a number')
        step = int(step_text)
        if step == 0:
            raise _Bad(f'{field.name} step 0 in "{item}" must be at least 1')
    if span == "*":
        return range(field.low, field.star_high + 1, step)
    if "-" not in span:
        first = _value(span, field)
        return range(first, (max(first, field.star_high) if slash else first) + 1, step)
    if span.count("-") > 1 or span.startswith("-") or span.endswith("-"):
        raise _Bad(f'{field.name} range "{span}" must be two values around one "-", like 1-5')
    first_text, _, last_text = span.partition("-")
    first, last = _value(first_text, field), _value(last_text, field)
    if first > last:
        tail = _span(_like(first_text, field.low, field), last_text)
        if first <= field.star_high:  # not day-of-week 7, which is already Sunday
            tail = f"{_span(first_text, _like(first_text, field.star_high, field))},{tail}"
        raise _Bad(
            f"{field.name} range {span} runs backwards; cron ranges do not wrap, write {tail}"
        )
    return range(first, last + 1, step)


def _value(token: str, field: _Field) -> int:
    if _is_number(token):
        number = int(token)
        if not field.low <= number <= field.high:
            sunday = " (0 and 7 are Sunday)" if field.name == "day-of-week" else ""
            raise _Bad(f"{field.name} {token} is out of range {field.low}-{field.high}{sunday}")
        return number
    named = field.names.get(token.upper()) if token.isascii() else None
    if named is None:
        or_name = f" or {field.names_hint}" if field.names_hint else ""
        raise _Bad(f'{field.name} "{token}" is not a number{or_name}')
    return named


def _is_number(token: str) -> bool:
    return token.isascii() and token.isdigit()


def _like(token: str, value: int, field: _Field) -> str:
    """`value` spelt like `token`: as a name if the user wrote a name, else a number."""
    if _is_number(token):
        return str(value)
    return next(name for name, named in field.names.items() if named == value)


def _span(first: str | int, last: str | int) -> str:
    return str(first) if str(first) == str(last) else f"{first}-{last}"


def _quoted(expression: str) -> str:
    return f'cron "{expression}"'


def _utc_minute(when: datetime) -> datetime:
    aware = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return aware.replace(second=0, microsecond=0)


def _first_of_next_month(day: date) -> date:
    if day.month == 12:
        if day.year == date.max.year:
            raise OverflowError("past the last date datetime can represent")
        return date(day.year + 1, 1, 1)
    return date(day.year, day.month + 1, 1)
