"""A store's business day, in one place.

Business date D runs from `day_closes_at` local time on D to `day_closes_at` local time on D + 1, in the store's
IANA `timezone`. Both ends come from the same function, so consecutive days share their boundary exactly: no
instant belongs to two days or to none, also on the days a DST change makes 23 or 25 hours long. A closing time
that falls in a DST gap is read as the wall clock before the change (PEP 495, fold=0) — the same for both days it
bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

DEFAULT_DAY_CLOSES_AT = time(4, 0)
ONE_DAY = timedelta(days=1)


def valid_timezone(name: str) -> bool:
    if name not in _known_timezones():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


_ZONES: frozenset[str] | None = None


def _known_timezones() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    return _ZONES


@dataclass(frozen=True, slots=True)
class BusinessDay:
    """Where and when a store's days turn over."""

    timezone: str
    closes_at: time = DEFAULT_DAY_CLOSES_AT

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def start(self, day: date) -> datetime:
        """The instant business date `day` begins (UTC)."""
        return datetime.combine(day, self.closes_at, tzinfo=self.zone).astimezone(UTC)

    def window(self, day: date) -> tuple[datetime, datetime]:
        """[start, end) of business date `day`, in UTC."""
        return self.start(day), self.start(day + ONE_DAY)

    def date_of(self, at: datetime) -> date:
        """The business date an instant belongs to."""
        day = at.astimezone(self.zone).date()
        if at < self.start(day):
            day -= ONE_DAY
        elif at >= self.start(day + ONE_DAY):  # cannot happen with real zones; keeps the rule exact
            day += ONE_DAY
        return day

    def last_ended(self, now: datetime) -> date:
        """The latest business date that is over at `now`."""
        return self.date_of(now) - ONE_DAY
