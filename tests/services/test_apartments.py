"""Natural apartment order and jumping to an apartment by its number."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.apartments import (
    apartment_sort_key,
    find_apartment,
    natural_sort_key,
    normalize_apartment_query,
)

# No PostgreSQL or Redis here (pure functions): only the SQLite pass runs
# these (no_services, see tasks.py).
pytestmark = pytest.mark.no_services

WALKING_ORDER = [
    "1",
    "1/2",
    "1а",
    "2",
    "3",
    "кв. 5",
    "10",
    "10а",
    "10Б",
    "10в",
    "11",
    "12-14",
    "12а",
    "100",
    "101",
    "Нежилое 2",
    "НП-1",
    "НП-2",
    "НП-10",
    "пом. 3",
    "пом. 12",
    "",
]


def test_a_building_is_walked_in_natural_order_flats_first() -> None:
    shuffled = WALKING_ORDER[:]
    for seed in range(20):
        random.Random(seed).shuffle(shuffled)
        assert sorted(shuffled, key=apartment_sort_key) == WALKING_ORDER


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("2", "10"),
        ("9", "10"),
        ("10", "10а"),
        ("10а", "10б"),
        ("10б", "11"),
        ("99", "100"),
        ("кв. 5", "6"),  # "кв." only says "a flat"
        ("4", "кв. 5"),
        ("№7", "8"),
        ("999", "НП-1"),  # every flat before any non-residential room
        ("1000а", "Нежилое 1"),
        ("НП-2", "НП-10"),
        ("пом. 3", "пом. 10"),
        ("НП-10", ""),  # an unlabelled slot goes last
        ("12", "12-14"),
        ("1", "1/2"),
        ("1/2", "1/10"),
    ],
)
def test_pairwise_order(before: str, after: str) -> None:
    assert apartment_sort_key(before) < apartment_sort_key(after)


@pytest.mark.parametrize(
    ("left", "right"),
    [("10А", "10а"), ("НП-3", "нп-3"), ("Нежилое 2", "нежилое 2"), ("подъезд 1", "Подъезд 1")],
)
def test_case_does_not_change_the_position(left: str, right: str) -> None:
    # Only the final tie-break (the label as given) may differ.
    assert apartment_sort_key(left)[:2] == apartment_sort_key(right)[:2]


def test_yo_and_ye_sort_alike() -> None:
    assert apartment_sort_key("Ёмкость 1")[:2] == apartment_sort_key("емкость 1")[:2]


def test_leading_zeros_do_not_move_a_number() -> None:
    assert sorted(["10", "05", "7"], key=apartment_sort_key) == ["05", "7", "10"]


def test_a_huge_number_does_not_break_sorting() -> None:
    # int() refuses numbers over 4300 digits; the key must not use it.
    huge = "9" * 5000
    assert sorted([huge, "1"], key=apartment_sort_key) == ["1", huge]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=8), max_size=12))
def test_order_is_total_and_independent_of_input_order(labels: list[str]) -> None:
    once = sorted(labels, key=apartment_sort_key)
    assert sorted(reversed(labels), key=apartment_sort_key) == once
    keys = [apartment_sort_key(label) for label in once]
    assert keys == sorted(keys)


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("12а", "12а"),
        ("12 А", "12а"),
        ("12А", "12а"),
        ("кв 12а", "12а"),
        ("кв. 12а", "12а"),
        ("Кв.№ 12а", "12а"),
        ("квартира 12а", "12а"),
        ("№12а", "12а"),
        ("№ 12 а", "12а"),
        ("12-а", "12а"),
        ("12a", "12а"),  # Latin "a" from a Latin keyboard
        ("  12а  ", "12а"),
        ("НП-3", "нп3"),
        ("нп 3", "нп3"),
        ("пом. 3", "пом3"),
        ("12-14", "12-14"),  # a hyphen between numbers means something
        ("1/2", "1/2"),
        ("Ёлка", "елка"),
        ("кв", "кв"),  # nothing after "кв": leave it
        ("", ""),
    ],
)
def test_normalize_apartment_query(text: str, normalized: str) -> None:
    assert normalize_apartment_query(text) == normalized


SLOTS = ["1", "2", "2", "10", "12а", "12а", "12б", "13а", "14", "14а", "НП-3", "1/2"]


@pytest.mark.parametrize(
    ("query", "index"),
    [
        ("12а", 4),  # the first slot of an apartment with two meters
        ("12 А", 4),
        ("кв 12а", 4),
        ("№12а", 4),
        ("кв. 12A", 4),
        ("2", 1),
        ("14", 8),  # exact wins over "14а"
        ("13", 7),  # only "13а" starts with 13
        ("нп 3", 10),
        ("НП3", 10),
        ("1/2", 11),
        ("12", None),  # "12а" or "12б": no guess
        ("1", 0),
        ("4", None),
        ("кв", None),
        ("", None),
        ("   ", None),
    ],
)
def test_find_apartment(query: str, index: int | None) -> None:
    assert find_apartment(query, SLOTS) == index


def test_a_number_never_finds_a_longer_number() -> None:
    assert find_apartment("1", ["12", "13"]) is None
    assert find_apartment("1", ["12", "1а"]) == 1


def test_find_apartment_in_an_empty_building() -> None:
    assert find_apartment("1", []) is None


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("10а", ((1, 2, "10"), (0, 0, "а"))),
        ("010", ((1, 2, "10"),)),
        ("0", ((1, 1, "0"),)),
        ("нп10", ((0, 0, "нп"), (1, 2, "10"))),
        ("", ()),
    ],
)
def test_natural_sort_key(text: str, key: tuple[tuple[int, int, str], ...]) -> None:
    assert natural_sort_key(text) == key
