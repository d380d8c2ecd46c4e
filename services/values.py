"""What the inspector types for a slot: parsing into a billing value, and plausibility.

Pure functions, no I/O and no texts: a refused value comes back as a `ValueProblem`
(a kind plus the meter's limits), a doubtful one as a `PlausibilityWarning`; the
handler turns them into words from the text catalogue.

A value in the billing contract is ASCII digits with an optional "." and fraction
digits ("00412", "13305.4"). Leading zeros are real: they are what the drum shows.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

__all__ = [
    "MAX_INPUT_LENGTH",
    "ParsedReading",
    "PlausibilityWarning",
    "ValueProblem",
    "ValueProblemKind",
    "WarningKind",
    "check_plausibility",
    "parse_reading",
]

# A real value is at most 12 + 1 + 3 characters; a generous cap still refuses a
# pasted paragraph before any per-character work is done on it.
MAX_INPUT_LENGTH = 64

# Both Russian habits ("12,5") and phone keyboards ("12.5"), plus their fullwidth and
# Arabic twins: whoever types Arabic-Indic or fullwidth digits gets that separator too.
_SEPARATORS = frozenset(",.\uff0c\uff0e\u066b")
# A leading minus in any of its look-alikes is a negative number, not a typo of letters.
_MINUS_SIGNS = frozenset("-\u2212\u2012\u2013\u2014\ufe63\uff0d")

_BILLING_VALUE_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?")


class ValueProblemKind(StrEnum):
    """Why a typed value was refused; each kind maps to one catalogue text."""

    EMPTY = "empty"
    TOO_LONG = "too_long"
    NOT_A_NUMBER = "not_a_number"
    NEGATIVE = "negative"
    SEVERAL_SEPARATORS = "several_separators"
    MISSING_INTEGER_PART = "missing_integer_part"
    MISSING_FRACTION_DIGITS = "missing_fraction_digits"
    FRACTION_NOT_ALLOWED = "fraction_not_allowed"
    TOO_MANY_INTEGER_DIGITS = "too_many_integer_digits"
    TOO_MANY_FRACTION_DIGITS = "too_many_fraction_digits"


@dataclass(frozen=True, slots=True)
class ValueProblem:
    """A refused value.

    `digits` and `fraction_digits` are the meter's limits, carried with every kind
    so that any refusal can also say what is allowed ("не больше 5 цифр до запятой").
    `character` is the first unexpected character for NOT_A_NUMBER, else None.
    """

    kind: ValueProblemKind
    digits: int
    fraction_digits: int
    character: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedReading:
    """An accepted value in billing format: ASCII digits, optional "." and fraction."""

    value: str

    @property
    def decimal(self) -> Decimal:
        """The exact number, for comparisons; never use it to rebuild the string."""
        return Decimal(self.value)


class WarningKind(StrEnum):
    """Why a well-formed value still needs the inspector's confirmation."""

    BELOW_PREVIOUS = "below_previous"
    BIG_JUMP = "big_jump"


@dataclass(frozen=True, slots=True)
class PlausibilityWarning:
    """A doubtful value.

    `previous` is the previous reading as billing sent it; `difference` is always
    positive: how far below the previous value (BELOW_PREVIOUS) or how far above it
    (BIG_JUMP) the new value is. `jump_limit` is the limit that was exceeded.
    """

    kind: WarningKind
    previous: str
    difference: Decimal
    jump_limit: int


def parse_reading(text: str, digits: int, fraction_digits: int) -> ParsedReading | ValueProblem:
    """Parse what the inspector typed for a slot with the given digit capacity.

    Whitespace (including NBSP and thin spaces) and invisible format characters are
    ignored; decimal digits of any script become ASCII; one "," or "." separates at
    most `fraction_digits` fraction digits from at most `digits` integer digits.
    Returns the normalized value, or the first problem found. Never raises on user
    input; raises ValueError only for impossible meter limits.
    """
    if digits < 1 or fraction_digits < 0:
        raise ValueError(f"impossible meter limits: digits={digits}, fraction={fraction_digits}")

    def problem(kind: ValueProblemKind, character: str | None = None) -> ValueProblem:
        return ValueProblem(kind, digits, fraction_digits, character)

    if len(text) > MAX_INPUT_LENGTH:
        return problem(ValueProblemKind.TOO_LONG)
    compact = _strip_invisible(text)
    if not compact:
        return problem(ValueProblemKind.EMPTY)

    if compact[0] in _MINUS_SIGNS and _is_number_shape(compact[1:]):
        return problem(ValueProblemKind.NEGATIVE)

    chars: list[str] = []
    for char in compact:
        ascii_char = _to_ascii(char)
        if ascii_char is None:
            return problem(ValueProblemKind.NOT_A_NUMBER, char)
        chars.append(ascii_char)
    ascii_text = "".join(chars)

    if ascii_text.count(".") > 1:
        return problem(ValueProblemKind.SEVERAL_SEPARATORS)
    integer, separator, fraction = ascii_text.partition(".")
    if separator and fraction_digits == 0:
        # Checked before the shape of the parts: "12." or ",5" on a whole-number
        # meter is best answered with "whole numbers only".
        return problem(ValueProblemKind.FRACTION_NOT_ALLOWED)
    if not integer:
        return problem(ValueProblemKind.MISSING_INTEGER_PART)
    if separator and not fraction:
        return problem(ValueProblemKind.MISSING_FRACTION_DIGITS)
    if len(integer) > digits:
        return problem(ValueProblemKind.TOO_MANY_INTEGER_DIGITS)
    if len(fraction) > fraction_digits:
        return problem(ValueProblemKind.TOO_MANY_FRACTION_DIGITS)
    return ParsedReading(f"{integer}.{fraction}" if fraction else integer)


def check_plausibility(
    value: str, previous: str | None, jump_limit: int
) -> PlausibilityWarning | None:
    """Say whether a well-formed value needs confirmation against the previous reading.

    BELOW_PREVIOUS when `value` < `previous` (a typo, a replaced meter or a drum that
    rolled over), BIG_JUMP when `value` - `previous` > `jump_limit` (usually a typo).
    Compared as exact decimals, so "00412" equals "412" and "12.50" equals "12.5".
    No previous reading, no warning. Raises ValueError if `value` or `previous` is
    not in billing format or `jump_limit` is negative: those are programming errors.
    """
    if jump_limit < 0:
        raise ValueError(f"jump_limit must not be negative: {jump_limit}")
    new = _billing_decimal(value)
    if previous is None:
        return None
    old = _billing_decimal(previous)
    if new < old:
        return PlausibilityWarning(WarningKind.BELOW_PREVIOUS, previous, old - new, jump_limit)
    if new - old > jump_limit:
        return PlausibilityWarning(WarningKind.BIG_JUMP, previous, new - old, jump_limit)
    return None


def _strip_invisible(text: str) -> str:
    # Spaces of every kind are digit grouping ("13 305"); format characters (Cf:
    # zero-width space, left-to-right marks that come with Arabic-script digits) are
    # invisible, so refusing a value because of them would baffle the inspector.
    return "".join(
        char for char in text if not char.isspace() and unicodedata.category(char) != "Cf"
    )


def _to_ascii(char: str) -> str | None:
    """The ASCII form of a digit or separator, or None for anything else."""
    if char in _SEPARATORS:
        return "."
    # unicodedata.decimal covers exactly the Nd digits ("١", "１", "३"), not "²" or "①",
    # which only look like digits and cannot be typed on a meter's drum.
    value = unicodedata.decimal(char, None)
    return None if value is None else str(value)


def _is_number_shape(text: str) -> bool:
    return any(char.isdecimal() for char in text) and all(
        char.isdecimal() or char in _SEPARATORS for char in text
    )


def _billing_decimal(value: str) -> Decimal:
    # Decimal() alone would also take "1e3", "NaN" and non-ASCII digits; [0-9] is
    # ASCII only, unlike \d.
    if not _BILLING_VALUE_RE.fullmatch(value):
        raise ValueError(f"not a billing value: {value!r}")
    return Decimal(value)
