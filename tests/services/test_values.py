"""Parsing what the inspector types for a slot, and the plausibility check."""

from __future__ import annotations

import unicodedata
from decimal import Decimal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from billing_client.models import ReadingValue
from services.values import (
    MAX_INPUT_LENGTH,
    ParsedReading,
    PlausibilityWarning,
    ValueProblem,
    ValueProblemKind,
    WarningKind,
    check_plausibility,
    parse_reading,
)

# No PostgreSQL or Redis here (pure functions): only the SQLite pass runs
# these (no_services, see tasks.py).
pytestmark = pytest.mark.no_services

Kind = ValueProblemKind
billing_value = TypeAdapter(ReadingValue)


def problem_kind(text: str, digits: int = 5, fraction_digits: int = 1) -> Kind | None:
    result = parse_reading(text, digits, fraction_digits)
    return result.kind if isinstance(result, ValueProblem) else None


def parsed(text: str, digits: int = 5, fraction_digits: int = 1) -> str:
    result = parse_reading(text, digits, fraction_digits)
    assert isinstance(result, ParsedReading), result
    return result.value


# --- accepted values -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "digits", "fraction_digits", "value"),
    [
        ("13305", 5, 0, "13305"),
        ("00412", 5, 0, "00412"),  # leading zeros are what the drum shows
        ("0", 5, 0, "0"),
        ("00000", 5, 0, "00000"),
        ("7", 1, 0, "7"),
        ("13305,4", 5, 1, "13305.4"),
        ("13305.4", 5, 1, "13305.4"),
        ("12,50", 6, 2, "12.50"),  # the fraction is kept as typed, zeros too
        ("0,001", 1, 3, "0.001"),
        ("13 305", 5, 0, "13305"),
        ("1 3 3 0 5", 5, 0, "13305"),
        ("  13305\n", 5, 0, "13305"),
        ("13\u00a0305", 5, 0, "13305"),  # NBSP from a copied number
        ("13\u2009305", 5, 0, "13305"),  # thin space
        ("13\u202f305", 5, 0, "13305"),  # narrow NBSP (French-style grouping on phones)
        ("13\u200b305", 5, 0, "13305"),  # zero-width space: invisible, so ignored
        ("\u200f١٢٣\u200f", 5, 0, "123"),  # RTL marks around Arabic-Indic digits
        ("١٢٣", 5, 0, "123"),
        ("١٢٣٫٤", 5, 1, "123.4"),  # Arabic decimal separator
        ("۱۲۳", 5, 0, "123"),  # Extended Arabic-Indic (Persian)
        ("１２３", 5, 0, "123"),  # fullwidth
        ("１２３．４", 5, 1, "123.4"),  # fullwidth full stop
        ("１２３，４", 5, 1, "123.4"),  # fullwidth comma
        ("१२३", 5, 0, "123"),  # Devanagari
        ("১২৩", 5, 0, "123"),  # Bengali
        ("𝟏𝟐𝟑", 5, 0, "123"),  # mathematical bold digits are Nd too
        ("123456789012.345", 12, 3, "123456789012.345"),
    ],
)
def test_accepted_values_are_stored_as_ascii(
    text: str, digits: int, fraction_digits: int, value: str
) -> None:
    assert parse_reading(text, digits, fraction_digits) == ParsedReading(value)


def test_parsed_reading_exposes_the_exact_decimal() -> None:
    assert ParsedReading("00412.50").decimal == Decimal("412.5")


# --- refused values --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "digits", "fraction_digits", "kind"),
    [
        ("", 5, 1, Kind.EMPTY),
        ("   ", 5, 1, Kind.EMPTY),
        ("\u00a0\u2009\n", 5, 1, Kind.EMPTY),
        ("1" * (MAX_INPUT_LENGTH + 1), 5, 1, Kind.TOO_LONG),
        (" " * 4000, 5, 1, Kind.TOO_LONG),
        ("abc", 5, 1, Kind.NOT_A_NUMBER),
        ("12кВт", 5, 1, Kind.NOT_A_NUMBER),
        ("1e3", 5, 1, Kind.NOT_A_NUMBER),
        ("+5", 5, 1, Kind.NOT_A_NUMBER),
        ("12-3", 5, 1, Kind.NOT_A_NUMBER),
        ("-", 5, 1, Kind.NOT_A_NUMBER),
        ("--5", 5, 1, Kind.NOT_A_NUMBER),
        ("1'234", 5, 1, Kind.NOT_A_NUMBER),
        ("½", 5, 1, Kind.NOT_A_NUMBER),
        ("²", 5, 1, Kind.NOT_A_NUMBER),  # looks like a digit, is not a decimal digit
        ("①", 5, 1, Kind.NOT_A_NUMBER),
        ("Ⅻ", 5, 1, Kind.NOT_A_NUMBER),  # Roman numeral
        ("NaN", 5, 1, Kind.NOT_A_NUMBER),
        ("Infinity", 5, 1, Kind.NOT_A_NUMBER),
        ("0x1F", 5, 1, Kind.NOT_A_NUMBER),
        ("12;5", 5, 1, Kind.NOT_A_NUMBER),
        ("<b>1</b>", 5, 1, Kind.NOT_A_NUMBER),
        ("-5", 5, 1, Kind.NEGATIVE),
        ("-12,5", 5, 1, Kind.NEGATIVE),
        ("\u22125", 5, 1, Kind.NEGATIVE),  # the typographic minus
        ("\u20135", 5, 1, Kind.NEGATIVE),  # en dash, what phones put for "-"
        ("- 5", 5, 1, Kind.NEGATIVE),
        ("12,3,4", 5, 1, Kind.SEVERAL_SEPARATORS),
        ("12..3", 5, 1, Kind.SEVERAL_SEPARATORS),
        ("1.234,5", 5, 1, Kind.SEVERAL_SEPARATORS),
        (",5", 5, 1, Kind.MISSING_INTEGER_PART),
        (".", 5, 1, Kind.MISSING_INTEGER_PART),
        ("12.", 5, 1, Kind.MISSING_FRACTION_DIGITS),
        ("12,", 5, 1, Kind.MISSING_FRACTION_DIGITS),
        ("12,5", 5, 0, Kind.FRACTION_NOT_ALLOWED),
        ("12,0", 5, 0, Kind.FRACTION_NOT_ALLOWED),
        ("12.", 5, 0, Kind.FRACTION_NOT_ALLOWED),
        (",5", 5, 0, Kind.FRACTION_NOT_ALLOWED),
        ("123456", 5, 1, Kind.TOO_MANY_INTEGER_DIGITS),
        ("000001", 5, 1, Kind.TOO_MANY_INTEGER_DIGITS),  # leading zeros are digits too
        ("123456,1", 5, 1, Kind.TOO_MANY_INTEGER_DIGITS),
        ("１２３４５６", 5, 0, Kind.TOO_MANY_INTEGER_DIGITS),
        ("1,23", 5, 1, Kind.TOO_MANY_FRACTION_DIGITS),
        ("1,2345", 5, 3, Kind.TOO_MANY_FRACTION_DIGITS),
    ],
)
def test_refused_values_say_why(text: str, digits: int, fraction_digits: int, kind: Kind) -> None:
    assert problem_kind(text, digits, fraction_digits) == kind


def test_a_problem_carries_the_meter_limits_for_the_message() -> None:
    assert parse_reading("1234567", 6, 2) == ValueProblem(
        Kind.TOO_MANY_INTEGER_DIGITS, digits=6, fraction_digits=2
    )
    assert parse_reading("1,2", 6, 0) == ValueProblem(
        Kind.FRACTION_NOT_ALLOWED, digits=6, fraction_digits=0
    )


def test_not_a_number_names_the_first_unexpected_character() -> None:
    result = parse_reading("12 кВт", 5, 0)
    assert isinstance(result, ValueProblem)
    assert result.character == "к"


def test_exactly_the_capacity_is_allowed_and_one_more_is_not() -> None:
    assert parsed("99999,9", 5, 1) == "99999.9"
    assert problem_kind("999999", 5, 1) == Kind.TOO_MANY_INTEGER_DIGITS
    assert problem_kind("9,99", 5, 1) == Kind.TOO_MANY_FRACTION_DIGITS


def test_the_length_cap_counts_what_was_typed() -> None:
    at_cap = "1" + " " * (MAX_INPUT_LENGTH - 1)
    assert parsed(at_cap) == "1"
    assert problem_kind(at_cap + " ") == Kind.TOO_LONG


@pytest.mark.parametrize(("digits", "fraction_digits"), [(0, 0), (-1, 0), (5, -1)])
def test_impossible_meter_limits_are_a_programming_error(digits: int, fraction_digits: int) -> None:
    with pytest.raises(ValueError, match="impossible meter limits"):
        parse_reading("1", digits, fraction_digits)


# --- properties ------------------------------------------------------------------

limits = st.tuples(st.integers(1, 12), st.integers(0, 3))
# Plenty of digits of many scripts, separators, spaces and signs, mixed with anything.
decimal_digits = st.characters(categories=["Nd"])
interesting = st.sampled_from(list(",.،٫，．-−–+ \u00a0\u2009\u200be²½①"))
typed_text = st.text(
    st.one_of(decimal_digits, interesting, st.characters()), max_size=MAX_INPUT_LENGTH + 4
)


@pytest.mark.duration(10)
@settings(max_examples=2500, deadline=None)
@given(text=typed_text, limit=limits)
@example(text="١٢٣", limit=(5, 0))
@example(text="-0", limit=(5, 0))
def test_never_crashes_and_never_returns_non_ascii_digits(
    text: str, limit: tuple[int, int]
) -> None:
    digits, fraction_digits = limit
    result = parse_reading(text, digits, fraction_digits)
    if isinstance(result, ValueProblem):
        assert (result.digits, result.fraction_digits) == limit
        return
    value = result.value
    assert value.isascii()
    assert billing_value.validate_python(value) == value  # the billing contract's own check
    integer, _, fraction = value.partition(".")
    assert 1 <= len(integer) <= digits
    assert len(fraction) <= fraction_digits


@settings(max_examples=1000, deadline=None)
@given(
    integer=st.text(decimal_digits, min_size=1, max_size=12),
    fraction=st.text(decimal_digits, max_size=3),
    separator=st.sampled_from([",", ".", "，", "．", "٫"]),
    spaces=st.lists(st.sampled_from([" ", "\u00a0", "\u2009", "\u202f"]), max_size=3),
)
def test_any_script_digits_within_capacity_give_their_ascii_value(
    integer: str, fraction: str, separator: str, spaces: list[str]
) -> None:
    typed = "".join(spaces) + integer + (separator + fraction if fraction else "")
    result = parse_reading(typed, 12, 3)
    ascii_integer = "".join(str(unicodedata.decimal(char)) for char in integer)
    ascii_fraction = "".join(str(unicodedata.decimal(char)) for char in fraction)
    expected = ascii_integer + ("." + ascii_fraction if fraction else "")
    assert result == ParsedReading(expected)


@settings(max_examples=500, deadline=None)
@given(text=typed_text, limit=limits)
def test_a_parsed_value_parses_to_itself(text: str, limit: tuple[int, int]) -> None:
    result = parse_reading(text, *limit)
    if isinstance(result, ParsedReading):
        assert parse_reading(result.value, *limit) == result


# --- plausibility ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "previous", "expected"),
    [
        ("13420", None, None),  # a new meter: nothing to compare with
        ("13420", "13305", None),
        ("13305", "13305", None),
        ("00412", "412", None),  # compared as numbers, not as text
        ("412", "00412", None),
        ("12.50", "12.5", None),
        ("16305", "13305", None),  # exactly the limit is still plausible
        (
            "16305.1",
            "13305",
            PlausibilityWarning(WarningKind.BIG_JUMP, "13305", Decimal("3000.1"), 3000),
        ),
        (
            "99999",
            "13305",
            PlausibilityWarning(WarningKind.BIG_JUMP, "13305", Decimal(86694), 3000),
        ),
        (
            "13304",
            "13305",
            PlausibilityWarning(WarningKind.BELOW_PREVIOUS, "13305", Decimal(1), 3000),
        ),
        (
            "00012",
            "99990",  # a drum that rolled over still needs the inspector's word
            PlausibilityWarning(WarningKind.BELOW_PREVIOUS, "99990", Decimal(99978), 3000),
        ),
        (
            "13305.3",
            "13305.45",
            PlausibilityWarning(WarningKind.BELOW_PREVIOUS, "13305.45", Decimal("0.15"), 3000),
        ),
    ],
)
def test_plausibility(
    value: str, previous: str | None, expected: PlausibilityWarning | None
) -> None:
    assert check_plausibility(value, previous, 3000) == expected


def test_the_jump_limit_comes_from_the_caller() -> None:
    assert check_plausibility("150", "100", 50) is None
    warning = check_plausibility("151", "100", 50)
    assert warning is not None
    assert (warning.kind, warning.difference, warning.jump_limit) == (
        WarningKind.BIG_JUMP,
        Decimal(51),
        50,
    )


def test_a_zero_jump_limit_questions_any_growth() -> None:
    assert check_plausibility("100", "100", 0) is None
    assert check_plausibility("100.1", "100", 0) is not None


@pytest.mark.parametrize(
    ("value", "previous", "jump_limit"),
    [
        ("12,5", "1", 3000),
        ("1e3", "1", 3000),
        ("NaN", "1", 3000),
        ("١٢٣", "1", 3000),
        ("", "1", 3000),
        ("12", "-1", 3000),
        ("12", "1", -1),
    ],
)
def test_plausibility_refuses_values_that_are_not_in_billing_format(
    value: str, previous: str, jump_limit: int
) -> None:
    with pytest.raises(ValueError):
        check_plausibility(value, previous, jump_limit)


@settings(max_examples=500, deadline=None)
@given(
    value=st.decimals(min_value=0, max_value=10**12 - 1, places=3),
    previous=st.decimals(min_value=0, max_value=10**12 - 1, places=3),
    jump_limit=st.integers(0, 10**6),
)
def test_plausibility_agrees_with_arithmetic(
    value: Decimal, previous: Decimal, jump_limit: int
) -> None:
    warning = check_plausibility(f"{value:f}", f"{previous:f}", jump_limit)
    if value < previous:
        assert warning is not None
        assert warning.kind == WarningKind.BELOW_PREVIOUS
        assert warning.difference == previous - value
    elif value - previous > jump_limit:
        assert warning is not None
        assert warning.kind == WarningKind.BIG_JUMP
        assert warning.difference == value - previous
    else:
        assert warning is None
