"""The embedded billing's rules: periods, the acceptance window, value checks, ids."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

VALUE_RE = re.compile(r"^[0-9]+(\.[0-9]+)?$")
PERIOD_RE = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")
_ID_RE = re.compile(r"^([a-z]+)-([1-9][0-9]{0,17})$")


def period_of(moment: datetime, tz: ZoneInfo) -> str:
    """The billing period ("YYYY-MM") a moment belongs to, in billing's time zone."""
    return moment.astimezone(tz).strftime("%Y-%m")


def is_period(text: str) -> bool:
    """Whether `text` is a period in the form YYYY-MM."""
    return bool(PERIOD_RE.match(text))


def public_id(prefix: str, number: int) -> str:
    """The contract's opaque id of a row: "b-12", "m-5001", "s-9001", "acc-17"."""
    return f"{prefix}-{number}"


def row_id(prefix: str, text: str) -> int | None:
    """The row number behind a public id, or None if it is not one of ours."""
    match = _ID_RE.match(text)
    if match is None or match.group(1) != prefix:
        return None
    return int(match.group(2))


@dataclass(frozen=True)
class AcceptanceWindow:
    """Days of the month on which readings are accepted (both None: always open).

    Only `from_day`: from that day to the month's end; only `to_day`: from the
    1st to that day. When `from_day` > `to_day` the window wraps across the
    month's end (e.g. 25..3); readings still count for the calendar month in
    which they are submitted.
    """

    from_day: int | None = None
    to_day: int | None = None

    @property
    def always_open(self) -> bool:
        """True when no day limits are configured."""
        return self.from_day is None and self.to_day is None

    def is_open(self, moment: datetime, tz: ZoneInfo) -> bool:
        """Whether readings are accepted at `moment` (judged in billing's time zone)."""
        if self.always_open:
            return True
        day = moment.astimezone(tz).day
        low, high = self.from_day or 1, self.to_day or 31
        if low <= high:
            return low <= day <= high
        return day >= low or day <= high

    def describe(self) -> str:
        """The window in Russian, for rejection messages."""
        if self.always_open:
            return "в любой день"
        low, high = self.from_day or 1, self.to_day
        if high is None:
            return f"с {low} числа до конца месяца"
        return f"с {low} по {high} число месяца"


def value_problem(value: object, digits: int, fraction_digits: int) -> str | None:
    """The rejection code for a value on a meter, or None if it fits the meter.

    invalid_value: not ASCII digits with an optional '.' and fraction (a JSON
    number is invalid too: the contract sends values as strings).
    too_many_digits: more integer digits than the drum has (leading zeros count,
    they are on the drum) or more fraction digits than the meter shows.
    """
    if not isinstance(value, str) or not value.isascii() or not VALUE_RE.match(value):
        return "invalid_value"
    whole, _, fraction = value.partition(".")
    if len(whole) > digits or len(fraction) > fraction_digits:
        return "too_many_digits"
    return None


def is_below(value: str, previous: str) -> bool:
    """Numeric comparison of two valid values ("00412" equals "412")."""
    return Decimal(value) < Decimal(previous)
