"""Building search on an account of 10,000 buildings on about 1,000 streets.

Checks that the right building comes first at that scale. The timing figures are
printed, never asserted (timings depend on the machine):
    .venv/bin/pytest tests/services/test_search_scale.py -s
"""

from __future__ import annotations

import gc
import random
import statistics
import time
import tracemalloc
from collections.abc import Callable

import pytest

from billing_client.models import Building
from services.apartments import natural_sort_key
from services.search import BuildingIndex, MatchKind, normalize_house, normalize_street

# No PostgreSQL or Redis here (in memory): only the SQLite pass runs
# these (no_services, see tasks.py).
pytestmark = pytest.mark.no_services

BUILDING_COUNT = 10_000
HOUSES_PER_STREET = 10
SEED = 20261120

_SYLLABLES = [
    "ба", "ве", "го", "да", "жу", "за", "ки", "ло", "ми", "но", "пе", "ро",
    "си", "ту", "фа", "ха", "це", "чи", "шу", "ле", "ва", "ны", "ры", "мо",
]  # fmt: skip
_ENDINGS = ["ская", "ова", "ина", "ного", "ева", "цкая"]
_TYPES = ["ул.", "ул.", "ул.", "пр-т", "пер.", "б-р", "ш.", "пл.", "наб.", "мкр."]
_HOUSES = [str(number) for number in range(1, 160)] + [
    "12к1", "7 стр. 2", "0/0", "15а", "2/1", "144/1", "3 корп. 2", "10б",
]  # fmt: skip
_REAL_STREETS = [
    "Авиастроителей ул.",
    "Красный пр-т",
    "Богдана Хмельницкого ул.",
    "Ленина ул.",
    "Дуси Ковальчук ул.",
    "Карла Маркса пл.",
    "Карла Маркса пр-т",
    "Октябрьская наб.",
]


def synthetic_buildings(count: int = BUILDING_COUNT, seed: int = SEED) -> list[Building]:
    """`count` buildings, HOUSES_PER_STREET on each street, realistic streets first."""
    rng = random.Random(seed)
    streets = list(_REAL_STREETS)
    seen = {(normalize_street(street), street.split()[-1]) for street in streets}
    while len(streets) * HOUSES_PER_STREET < count:
        name = "".join(rng.choices(_SYLLABLES, k=rng.randint(2, 3))) + rng.choice(_ENDINGS)
        if rng.random() < 0.2:  # some streets are named after a person: two words
            name = "".join(rng.choices(_SYLLABLES, k=2)) + "а " + name
        street = f"{name.title()} {rng.choice(_TYPES)}"
        identity = (normalize_street(street), street.split()[-1])
        if identity not in seen:
            seen.add(identity)
            streets.append(street)
    buildings: list[Building] = []
    for street in streets:
        for house in rng.sample(_HOUSES, HOUSES_PER_STREET):
            number = len(buildings) + 1
            buildings.append(
                Building(
                    id=f"b-{number}",
                    city="Новосибирск",
                    street=street,
                    house=house,
                    address=f"Новосибирск, {street}, {house}",
                )
            )
    rng.shuffle(buildings)  # billing's order is its own
    return buildings[:count]


@pytest.fixture(scope="module")
def buildings() -> list[Building]:
    return synthetic_buildings()


@pytest.fixture(scope="module")
def index(buildings: list[Building]) -> BuildingIndex[Building]:
    return BuildingIndex(buildings)


def with_typo(word: str, rng: random.Random) -> str:
    """One letter in the middle replaced by a similar one: "авиастраителей"."""
    position = rng.randrange(2, len(word) - 2)
    similar = "аеиоуы" if word[position] in "аеиоуыя" else "бвгдзклмнпрст"
    other = rng.choice([letter for letter in similar if letter != word[position]])
    return word[:position] + other + word[position + 1 :]


def test_the_synthetic_account_is_realistic(buildings: list[Building]) -> None:
    assert len(buildings) == BUILDING_COUNT
    assert len({b.street for b in buildings}) == BUILDING_COUNT // HOUSES_PER_STREET


def test_street_and_house_find_the_building_first(
    index: BuildingIndex[Building], buildings: list[Building]
) -> None:
    for building in random.Random(1).sample(buildings, 300):
        for query in (
            f"{building.street} {building.house}",
            f"{building.house} {building.street}",
            f"{normalize_street(building.street)}, д. {building.house}",
        ):
            matches = index.search(query)
            assert matches, query
            assert matches[0].building is building, (query, matches[0].building.address)
            assert matches[0].kind == MatchKind.EXACT


def test_a_typo_in_the_street_still_finds_the_building(
    index: BuildingIndex[Building], buildings: list[Building]
) -> None:
    rng = random.Random(2)
    vocabulary = {word for b in buildings for word in normalize_street(b.street).split()}
    checked = first = 0
    for building in rng.sample(buildings, 600):
        words = normalize_street(building.street).split()
        longest = max(words, key=len)
        if len(longest) < 8:
            continue
        typo = with_typo(longest, rng)
        if typo in vocabulary:  # the typo spelt another street: not a typo any more
            continue
        query = " ".join(typo if word == longest else word for word in words)
        matches = index.search(f"{query} {building.house}")
        assert building in [match.building for match in matches], (query, building.house)
        assert {match.building.house for match in matches} == {building.house}
        assert {match.kind for match in matches} == {MatchKind.FUZZY}
        checked += 1
        first += matches[0].building is building
    assert checked >= 100
    # Synthetic names are close to each other ("сироская", "сисиская"): a typo can be
    # as near to another street as to its own, and then both are offered.
    assert first >= checked * 0.9, (first, checked)


def test_a_street_alone_lists_its_houses_in_natural_order(
    index: BuildingIndex[Building], buildings: list[Building]
) -> None:
    for street in random.Random(3).sample(sorted({b.street for b in buildings}), 100):
        on_street = [b for b in buildings if b.street == street]
        expected = sorted(on_street, key=lambda b: natural_sort_key(normalize_house(b.house)))
        matches = index.search(street, limit=len(on_street))
        assert [m.building for m in matches] == expected, street


def test_a_house_alone_finds_it_on_every_street(
    index: BuildingIndex[Building], buildings: list[Building]
) -> None:
    expected = {b.id for b in buildings if b.house == "12к1"}
    matches = index.search("12к1", limit=len(buildings))
    assert {m.building.id for m in matches} == expected
    assert expected


def _percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _time_ms(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def test_report_build_time_memory_and_latency(buildings: list[Building]) -> None:
    """Prints the figures of issue 7; asserts only that the queries found something."""
    gc.collect()
    build_ms = min(_time_ms(lambda: BuildingIndex(buildings)) for _ in range(5))
    tracemalloc.start()
    index = BuildingIndex(buildings)
    index_bytes, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    rng = random.Random(4)
    queries: list[str] = []
    for building in rng.sample(buildings, 400):
        name = normalize_street(building.street)
        longest = max(name.split(), key=len)
        queries += [
            f"{building.street} {building.house}",  # the full address
            f"{building.house} {name}",  # house first
            name,  # street only
            name[: max(3, len(name) // 2)],  # half-typed street
            building.house,  # house only
        ]
        if len(longest) >= 8:
            queries.append(f"{name.replace(longest, with_typo(longest, rng))} {building.house}")
    for query in queries[:200]:  # warm-up
        index.search(query)

    latencies = [_time_ms(lambda q=query: index.search(q)) for query in queries]  # type: ignore[misc]
    found = sum(1 for query in queries if index.search(query))
    print(
        f"\nbuilding search over {len(buildings)} buildings, "
        f"{len({b.street for b in buildings})} streets, {len(queries)} queries:"
        f"\n  build {build_ms:.1f} ms, index memory {index_bytes / 1024:.0f} KiB"
        f"\n  p50 {statistics.median(latencies):.3f} ms, p90 {_percentile(latencies, 0.9):.3f} ms, "
        f"p99 {_percentile(latencies, 0.99):.3f} ms, max {max(latencies):.3f} ms"
    )
    assert found >= len(queries) * 0.95
