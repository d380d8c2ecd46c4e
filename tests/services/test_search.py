"""Building search: how an inspector's typing is read, on real Novosibirsk addresses."""

from __future__ import annotations

import random

import pytest

from billing_client.models import Building
from services.search import (
    MAX_QUERY_LENGTH,
    BuildingIndex,
    Match,
    MatchKind,
    normalize_house,
    normalize_street,
)

# No PostgreSQL or Redis here (in memory): only the SQLite pass runs
# these (no_services, see tasks.py).
pytestmark = pytest.mark.no_services

NOVOSIBIRSK = "Новосибирск"
ADDRESSES = [
    (NOVOSIBIRSK, "Авиастроителей ул.", "10"),
    (NOVOSIBIRSK, "Авиастроителей ул.", "2"),
    (NOVOSIBIRSK, "Авиастроителей ул.", "0/0"),
    (NOVOSIBIRSK, "Авиастроителей ул.", "1"),
    (NOVOSIBIRSK, "Красный пр-т", "17"),
    (NOVOSIBIRSK, "Красный пр-т", "2/1"),
    (NOVOSIBIRSK, "Красный пр-т", "220к1"),
    (NOVOSIBIRSK, "Богдана Хмельницкого ул.", "10"),
    (NOVOSIBIRSK, "Богдана Хмельницкого ул.", "11/1"),
    (NOVOSIBIRSK, "Ленина ул.", "12"),
    (NOVOSIBIRSK, "Ленина ул.", "12к1"),
    (NOVOSIBIRSK, "Ленина ул.", "12а"),
    (NOVOSIBIRSK, "Ленина пл.", "1"),
    (NOVOSIBIRSK, "Дуси Ковальчук ул.", "179"),
    (NOVOSIBIRSK, "Дуси Ковальчук ул.", "1/1"),
    (NOVOSIBIRSK, "Карла Маркса пл.", "7"),
    (NOVOSIBIRSK, "Карла Маркса пр-т", "7"),
    (NOVOSIBIRSK, "Карла Маркса пр-т", "47/1"),
    (NOVOSIBIRSK, "Октябрьская наб.", "7 стр. 2"),
    (NOVOSIBIRSK, "Октябрьская ул.", "42"),
    (NOVOSIBIRSK, "9 Января ул.", "12"),
    (NOVOSIBIRSK, "9 Января ул.", "9"),
    (NOVOSIBIRSK, "40 лет Комсомола ул.", "5"),
    (NOVOSIBIRSK, "1-я Механическая ул.", "4"),
    (NOVOSIBIRSK, "Немировича-Данченко ул.", "144/1"),
    (NOVOSIBIRSK, "Королёва ул.", "3"),
    (NOVOSIBIRSK, "Кирова ул.", "86"),
    (NOVOSIBIRSK, "Кировоградская ул.", "3"),
    (NOVOSIBIRSK, "Станиславского ул.", "8 корп. 2"),
    ("Бердск", "Ленина ул.", "12"),
]


def make_building(number: int, city: str, street: str, house: str) -> Building:
    return Building(
        id=f"b-{number}", city=city, street=street, house=house,
        address=f"{city}, {street}, {house}",
    )  # fmt: skip


BUILDINGS = [make_building(n, *address) for n, address in enumerate(ADDRESSES, start=101)]


@pytest.fixture(scope="module")
def index() -> BuildingIndex[Building]:
    return BuildingIndex(BUILDINGS)


def addresses(matches: list[Match[Building]]) -> list[str]:
    return [match.building.address for match in matches]


def address(street: str, house: str, city: str = NOVOSIBIRSK) -> str:
    return f"{city}, {street}, {house}"


# --- normalization ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("street", "normalized"),
    [
        ("Авиастроителей ул.", "авиастроителей"),
        ("ул. Авиастроителей", "авиастроителей"),
        ("улица Авиастроителей", "авиастроителей"),
        ("Красный пр-т", "красный"),
        ("Красный проспект", "красный"),
        ("Красный пр.", "красный"),
        ("Богдана Хмельницкого ул.", "богдана хмельницкого"),
        ("Дуси Ковальчук ул.", "дуси ковальчук"),
        ("Карла Маркса пл.", "карла маркса"),
        ("площадь Карла Маркса", "карла маркса"),
        ("Октябрьская наб.", "октябрьская"),
        ("набережная Октябрьская", "октябрьская"),
        ("Королёва ул.", "королева"),
        ("Немировича-Данченко ул.", "немировича данченко"),
        ("1-я Механическая ул.", "1я механическая"),
        ("40 лет Комсомола ул.", "40 лет комсомола"),
        ("Тихий пер.", "тихий"),
        ("Гусинобродское ш.", "гусинобродское"),
        ("Военный б-р", "военный"),
        ("Горский мкр.", "горский"),
        ("Горский микрорайон", "горский"),
        ("Дачное шоссе", "дачное"),
        ("  ЛЕНИНА   УЛ. ", "ленина"),
        ("Набережная", "набережная"),  # a name made only of a type word keeps it
    ],
)
def test_normalize_street(street: str, normalized: str) -> None:
    assert normalize_street(street) == normalized


@pytest.mark.parametrize(
    ("house", "normalized"),
    [
        ("0/0", "0/0"),
        ("0 / 0", "0/0"),
        ("12к1", "12к1"),
        ("12 к1", "12к1"),
        ("12 к. 1", "12к1"),
        ("12 корп. 1", "12к1"),
        ("12 корпус 1", "12к1"),
        ("12К1", "12к1"),
        ("7 стр. 2", "7стр2"),
        ("7 строение 2", "7стр2"),
        ("7с2", "7стр2"),
        ("7 стр2", "7стр2"),
        ("д. 12", "12"),
        ("дом 12", "12"),
        ("12а", "12а"),
        ("12 А", "12а"),
        ("12-а", "12а"),
        ("12a", "12а"),  # Latin "a"
        ("12к", "12к"),  # a letter, not a building block
        ("12-14", "12-14"),
        ("144/1", "144/1"),
    ],
)
def test_normalize_house(house: str, normalized: str) -> None:
    assert normalize_house(house) == normalized


# --- the examples of the brief ---------------------------------------------------


def test_street_only_lists_its_houses_in_natural_order(index: BuildingIndex[Building]) -> None:
    assert addresses(index.search("авиастроителей")) == [
        address("Авиастроителей ул.", "0/0"),
        address("Авиастроителей ул.", "1"),
        address("Авиастроителей ул.", "2"),
        address("Авиастроителей ул.", "10"),
    ]


@pytest.mark.parametrize(
    "query",
    [
        "авиастроителей 0/0",
        "Авиастроителей ул., 0/0",
        "0/0 Авиастроителей ул.",
        "0/0 авиастроителей",
        "ул. Авиастроителей, д. 0/0",
        "АВИАСТРОИТЕЛЕЙ 0 / 0",
        "Новосибирск, Авиастроителей ул., 0/0",  # the address as billing spells it
        "г. Новосибирск ул Авиастроителей 0/0",
    ],
)
def test_street_and_house_in_any_order(index: BuildingIndex[Building], query: str) -> None:
    matches = index.search(query)
    assert addresses(matches) == [address("Авиастроителей ул.", "0/0")]
    assert matches[0].kind == MatchKind.EXACT


@pytest.mark.parametrize(
    "query", ["авиастраителей 0/0", "0/0 авиастраитилей", "авиастроитилей ул 0/0"]
)
def test_a_typo_in_the_street_is_forgiven(index: BuildingIndex[Building], query: str) -> None:
    matches = index.search(query)
    assert addresses(matches) == [address("Авиастроителей ул.", "0/0")]
    assert matches[0].kind == MatchKind.FUZZY


@pytest.mark.parametrize(
    "query", ["авиастроителей 0/1", "авиастраителей 3", "ленина 13", "ленина 12б", "ленина 2"]
)
def test_a_different_house_is_a_different_building(
    index: BuildingIndex[Building], query: str
) -> None:
    assert index.search(query) == []


def test_a_house_is_matched_whole_not_by_its_beginning(index: BuildingIndex[Building]) -> None:
    found = addresses(index.search("ленина 12"))
    assert address("Ленина ул.", "12") in found
    assert address("Ленина ул.", "12к1") not in found
    assert address("Ленина ул.", "12а") not in found


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("0/0", address("Авиастроителей ул.", "0/0")),
        ("12к1", address("Ленина ул.", "12к1")),
        ("12 к1", address("Ленина ул.", "12к1")),
        ("д. 12 корп. 1", address("Ленина ул.", "12к1")),
        ("220 к 1", address("Красный пр-т", "220к1")),
        ("7 стр. 2", address("Октябрьская наб.", "7 стр. 2")),
        ("7с2", address("Октябрьская наб.", "7 стр. 2")),
        ("144/1", address("Немировича-Данченко ул.", "144/1")),
        ("8 корпус 2", address("Станиславского ул.", "8 корп. 2")),
    ],
)
def test_house_only(index: BuildingIndex[Building], query: str, expected: str) -> None:
    assert addresses(index.search(query)) == [expected]


def test_house_only_lists_every_street_with_that_house(index: BuildingIndex[Building]) -> None:
    assert addresses(index.search("7")) == [
        address("Карла Маркса пл.", "7"),
        address("Карла Маркса пр-т", "7"),
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ленина 12к1", address("Ленина ул.", "12к1")),
        ("Ленина 12 корп. 1", address("Ленина ул.", "12к1")),
        ("ленина, д. 12, корпус 1", address("Ленина ул.", "12к1")),
        ("ленина12к1", address("Ленина ул.", "12к1")),
        ("ленина 12 а", address("Ленина ул.", "12а")),
        ("ленина 12-а", address("Ленина ул.", "12а")),
        ("12к1 ленина", address("Ленина ул.", "12к1")),
        ("октябрьская наб 7 стр 2", address("Октябрьская наб.", "7 стр. 2")),
        ("октябрьская 7с2", address("Октябрьская наб.", "7 стр. 2")),
        ("7 строение 2 октябрьская набережная", address("Октябрьская наб.", "7 стр. 2")),
        ("красный проспект 17", address("Красный пр-т", "17")),
        ("Красный пр-т, 17", address("Красный пр-т", "17")),
        ("красный пр. 17", address("Красный пр-т", "17")),
        ("КРАСНЫЙ 17", address("Красный пр-т", "17")),
        ("красный 2/1", address("Красный пр-т", "2/1")),
        ("дуси ковальчук 179", address("Дуси Ковальчук ул.", "179")),
        ("ул. Дуси Ковальчук, д. 1/1", address("Дуси Ковальчук ул.", "1/1")),
        ("немировича данченко 144/1", address("Немировича-Данченко ул.", "144/1")),
        ("Немировича-Данченко 144 / 1", address("Немировича-Данченко ул.", "144/1")),
        ("королева 3", address("Королёва ул.", "3")),
        ("КОРОЛЁВА 3", address("Королёва ул.", "3")),
        ("40 лет комсомола 5", address("40 лет Комсомола ул.", "5")),
        ("5 40 лет комсомола", address("40 лет Комсомола ул.", "5")),
        ("1-я механическая 4", address("1-я Механическая ул.", "4")),
        ("1я механическая 4", address("1-я Механическая ул.", "4")),
        ("9 января 12", address("9 Января ул.", "12")),
        ("12 9 января", address("9 Января ул.", "12")),
        ("станиславского 8к2", address("Станиславского ул.", "8 корп. 2")),
    ],
)
def test_realistic_queries_find_the_building_first(
    index: BuildingIndex[Building], query: str, expected: str
) -> None:
    found = addresses(index.search(query))
    assert found[:1] == [expected], found


def test_a_street_beginning_with_a_number_is_not_read_as_a_house(
    index: BuildingIndex[Building],
) -> None:
    assert addresses(index.search("9 января")) == [
        address("9 Января ул.", "9"),
        address("9 Января ул.", "12"),
    ]


# --- ranking ---------------------------------------------------------------------


def test_exact_beats_prefix_beats_fuzzy(index: BuildingIndex[Building]) -> None:
    assert [match.kind for match in index.search("хмельницкого богдана 10")] == [MatchKind.EXACT]
    assert [match.kind for match in index.search("хмельницкого 10")] == [MatchKind.PREFIX]
    assert [match.kind for match in index.search("хмельницково 10")] == [MatchKind.FUZZY]
    assert [match.kind for match in index.search("хмельн 10")] == [MatchKind.PREFIX]


def test_a_fully_named_street_comes_before_one_that_only_starts_alike(
    index: BuildingIndex[Building],
) -> None:
    matches = index.search("кирова")
    assert addresses(matches) == [address("Кирова ул.", "86")]
    matches = index.search("киров")
    assert addresses(matches) == [
        address("Кирова ул.", "86"),  # more of its name was typed
        address("Кировоградская ул.", "3"),
    ]
    assert {match.kind for match in matches} == {MatchKind.PREFIX}


def test_the_street_type_typed_decides_between_namesakes(index: BuildingIndex[Building]) -> None:
    assert addresses(index.search("карла маркса пл 7")) == [
        address("Карла Маркса пл.", "7"),
        address("Карла Маркса пр-т", "7"),
    ]
    assert addresses(index.search("проспект карла маркса 7")) == [
        address("Карла Маркса пр-т", "7"),
        address("Карла Маркса пл.", "7"),
    ]


def test_type_words_are_not_part_of_the_name(index: BuildingIndex[Building]) -> None:
    assert addresses(index.search("октябрьская")) == [
        address("Октябрьская наб.", "7 стр. 2"),
        address("Октябрьская ул.", "42"),
    ]
    assert addresses(index.search("октябрьская ул")) == [
        address("Октябрьская ул.", "42"),
        address("Октябрьская наб.", "7 стр. 2"),
    ]


def test_a_street_name_finds_every_street_of_that_name(index: BuildingIndex[Building]) -> None:
    matches = index.search("ленина")
    assert [match.kind for match in matches] == [MatchKind.EXACT] * len(matches)
    assert addresses(matches) == [
        address("Ленина пл.", "1"),
        address("Ленина ул.", "12", city="Бердск"),
        address("Ленина ул.", "12"),
        address("Ленина ул.", "12а"),
        address("Ленина ул.", "12к1"),
    ]


# --- cities ----------------------------------------------------------------------


def test_a_city_in_the_query_restricts_the_search(index: BuildingIndex[Building]) -> None:
    both = addresses(index.search("ленина 12"))
    assert both == [address("Ленина ул.", "12", city="Бердск"), address("Ленина ул.", "12")]
    assert addresses(index.search("бердск ленина 12")) == [
        address("Ленина ул.", "12", city="Бердск")
    ]
    assert addresses(index.search("г. Новосибирск, ул. Ленина, д. 12")) == [
        address("Ленина ул.", "12")
    ]


def test_a_city_alone_lists_its_buildings(index: BuildingIndex[Building]) -> None:
    assert addresses(index.search("Бердск")) == [address("Ленина ул.", "12", city="Бердск")]
    assert len(index.search("новосибирск", limit=100)) == len(BUILDINGS) - 1


# --- nothing found, limits, determinism ------------------------------------------


@pytest.mark.parametrize(
    "query",
    ["", "   ", ",./", "ул.", "ул. д.", "xyz", "сибирская 5", "мира", "0/0 xyz", "🏠", "1" * 500],
)
def test_no_match_is_an_empty_list(index: BuildingIndex[Building], query: str) -> None:
    assert index.search(query) == []


def test_a_pasted_paragraph_is_no_address(index: BuildingIndex[Building]) -> None:
    assert index.search("авиастроителей 0/0 " + "а" * MAX_QUERY_LENGTH) == []
    assert index.search(" ".join(["ленина"] * 13)) == []
    assert index.search(" ".join(["ленина"] * 12)) != []


def test_a_misspelt_word_that_begins_another_word_is_still_a_typo(
    index: BuildingIndex[Building],
) -> None:
    matches = index.search("кирово")
    assert [(m.building.street, m.kind) for m in matches] == [
        ("Кировоградская ул.", MatchKind.PREFIX),
        ("Кирова ул.", MatchKind.FUZZY),
    ]


def test_limit(index: BuildingIndex[Building]) -> None:
    assert len(index.search("авиастроителей", limit=2)) == 2
    assert index.search("авиастроителей", limit=0) == []
    assert len(index.search("новосибирск")) == 8  # the default: one page of buttons


def test_results_do_not_depend_on_the_billing_order() -> None:
    shuffled = BUILDINGS[:]
    random.Random(7).shuffle(shuffled)
    queries = ["ленина", "7", "киров", "авиастраителей 0/0", "новосибирск"]
    first, second = BuildingIndex(BUILDINGS), BuildingIndex(shuffled)
    for query in queries:
        assert first.search(query, limit=50) == second.search(query, limit=50)
    assert first.in_order() == second.in_order()


def test_matches_hold_the_buildings_given(index: BuildingIndex[Building]) -> None:
    (match,) = index.search("0/0")
    assert match.building is BUILDINGS[2]


def test_in_order_lists_every_building_by_street_then_house() -> None:
    index = BuildingIndex(BUILDINGS)
    assert len(index) == len(BUILDINGS)
    ordered = index.in_order()
    assert sorted(ordered, key=lambda b: b.id) == sorted(BUILDINGS, key=lambda b: b.id)
    aviastroiteley = [b.house for b in ordered if b.street == "Авиастроителей ул."]
    assert aviastroiteley == ["0/0", "1", "2", "10"]
    assert ordered[0].street == "1-я Механическая ул."


def test_an_empty_account() -> None:
    index: BuildingIndex[Building] = BuildingIndex([])
    assert len(index) == 0
    assert index.search("ленина 12") == []
