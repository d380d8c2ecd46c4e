"""Finding a building of the account by what the inspector types.

The inspector types a street, a house, or both, in any order, with or without
"ул."/"пр-т", with ё or е, with a typo in the street: "авиастраителей 0/0",
"0/0 Авиастроителей ул.", "12к1", "Красный проспект 7 стр. 2". A company can serve
thousands of buildings, so everything that does not depend on the query is done once
in `BuildingIndex` and a search touches only the streets and houses it names.

How a query is read: it is split into words; a house number is a group of words at
the start or the end of the query that begins with a digit ("12к1", "7 стр 2",
"12 а"); the rest names the street. Since street names can start with a number too
("9 Января", "40 лет Комсомола"), every reading of the query is tried and the best
results win. A street may be misspelt (each word is compared on its own, so a typo
costs one word, not the query); a house must be exactly right, because another
house is another building.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import re
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from rapidfuzz import fuzz, process

from services.apartments import natural_sort_key

__all__ = [
    "MAX_QUERY_LENGTH",
    "BuildingIndex",
    "BuildingLike",
    "Match",
    "MatchKind",
    "normalize_house",
    "normalize_street",
]

# Street-type words: ignored when matching, kept as a tie-breaker so that
# "Карла Маркса пл." comes before "Карла Маркса пр-т" when the query says "пл".
_STREET_TYPES: dict[str, str] = {
    "ул": "ул",
    "улица": "ул",
    "пр": "пр",
    "пр-т": "пр",
    "пр-кт": "пр",
    "просп": "пр",
    "проспект": "пр",
    "пер": "пер",
    "переулок": "пер",
    "б-р": "бул",
    "бул": "бул",
    "бульвар": "бул",
    "ш": "ш",
    "шоссе": "ш",
    "пл": "пл",
    "площадь": "пл",
    "наб": "наб",
    "набережная": "наб",
    "мкр": "мкр",
    "мкр-н": "мкр",
    "микрорайон": "мкр",
    "пр-д": "проезд",
    "проезд": "проезд",
}
# Words that belong to an address but never to a street's name.
_ADDRESS_WORDS = frozenset({"г", "город", "д", "дом", "к", "корп", "корпус", "стр", "строение"})
_CITY_WORDS = frozenset({"г", "город"})
_HOUSE_PREFIX_WORDS = frozenset({"д", "дом"})
# Inside a house number, before a digit: "12 корп. 1" is "12к1", "7 строение 2" and
# "7с2" are "7стр2". Not before a digit they are letters: "12к" is house 12к.
_HOUSE_MARKERS: dict[str, str] = {
    "к": "к",
    "корп": "к",
    "корпус": "к",
    "с": "стр",
    "стр": "стр",
    "строение": "стр",
    "лит": "лит",
    "литер": "лит",
    "литера": "лит",
}

# Same look-alike rule as services.apartments: "12a" typed in Latin is "12а".
# Dashes of every kind are "-".
_TRANSLATION = str.maketrans("aceopxyk\u2010\u2011\u2012\u2013\u2014\u2212", "асеорхук------")
# str.translate costs microseconds per call, and most texts have nothing to translate.
_TRANSLATED_RE = re.compile("[aceopxyk\u2010-\u2014\u2212]")
_SLASH_SPACES_RE = re.compile(r"\s*/\s*")
# Everything but letters, digits, "-" and "/" separates words ("ул.", "д.", ",").
_SEPARATOR_RE = re.compile(r"[^\w/-]+|_+")
# A hyphen between a number and a letter is decoration: "1-я" is "1я", "12-а" is "12а".
_NUMBER_LETTER_HYPHEN_RE = re.compile(r"(?<=[0-9])-(?=[^\W\d_])|(?<=[^\W\d_])-(?=[0-9])")
# Between two numbers "-" and "/" are part of the house ("0/0", "12-14"); anywhere
# else they separate words ("Немировича-Данченко").
_WORD_BREAK_RE = re.compile(r"(?<![0-9])[-/]|[-/](?![0-9])")
# "ленина12", "д12", "к1": letters glued to the number that follows them.
_GLUED_WORD_RE = re.compile(r"([^\W\d_]+)([0-9].*)")
_HOUSE_RUN_RE = re.compile(r"[0-9]+|[^\W\d_]+|[/-]")

# The longest real address is well under a hundred characters and ten words.
MAX_QUERY_LENGTH = 200
_MAX_QUERY_WORDS = 12

# A typo costs about one letter in five: fuzz.ratio is 80 for one wrong letter in a
# five-letter word, 93 in "авиастраителей". Shorter words and numbers are compared
# exactly, since one letter there turns them into another real word ("мира"/"мора").
_FUZZY_CUTOFF = 80.0
_FUZZY_MIN_LENGTH = 4


class BuildingLike(Protocol):
    """What the index needs of a building: billing_client.models.Building fits."""

    @property
    def id(self) -> str: ...

    @property
    def city(self) -> str: ...

    @property
    def street(self) -> str: ...

    @property
    def house(self) -> str: ...


BuildingT = TypeVar("BuildingT", bound=BuildingLike)


class MatchKind(IntEnum):
    """How well the street matched; lower is better. A given house always matched exactly.

    EXACT: every word of the street was typed (in any order), or no street was typed.
    PREFIX: every typed word is a word of the street or the start of one ("маркса"
    for "Карла Маркса", "авиастр" for "Авиастроителей").
    FUZZY: at least one typed word is a misspelt word of the street.
    """

    EXACT = 0
    PREFIX = 1
    FUZZY = 2


@dataclass(frozen=True, slots=True)
class Match(Generic[BuildingT]):
    """One search result: the building as given to the index, and how its street matched."""

    building: BuildingT
    kind: MatchKind


def normalize_street(street: str) -> str:
    """The comparable form of a street: "Богдана Хмельницкого ул." -> "богдана хмельницкого".

    Lower case, "ё" is "е", punctuation and street-type words ("ул", "пр-т",
    "проспект", "наб", ...) dropped, hyphenated names split into words.
    """
    words, _ = _street_words(_tokenize(street))
    return " ".join(words)


def normalize_house(house: str) -> str:
    """The comparable form of a house number: "12 корп. 1" -> "12к1", "7 стр. 2" -> "7стр2".

    Lower case, spaces and dots dropped, a leading "д."/"дом" dropped, "корпус"/"корп"/
    "к" before a number become "к", "строение"/"стр"/"с" become "стр"; "0/0" and
    "12-14" keep their "/" and "-".
    """
    return _house_from_words(_tokenize(house))


class _Street(NamedTuple):  # a NamedTuple: built a thousand times per index
    words: tuple[str, ...]
    kind: str  # canonical street type ("ул", "пр"), "" when the billing gave none
    length: int  # letters in `words`, to score how much of the street a query covers


@dataclass(frozen=True, slots=True)
class _Reading:
    """One way to read the query: these words name the street, this is the house."""

    street_words: tuple[str, ...]
    street_kinds: frozenset[str]
    house: str | None


# Sort key of a candidate: (match kind, street type differs from the typed one,
# -share of the street covered, position of the building in the index's order).
_RankKey = tuple[int, int, float, int]
# Per typed word: matching vocabulary word -> (kind, similarity 0..1).
_WordMatches = dict[str, tuple[MatchKind, float]]


class BuildingIndex(Generic[BuildingT]):
    """An immutable search index over one account's buildings.

    Build it once per list of buildings (10,000 buildings take tens of milliseconds);
    it keeps references to the given objects, not copies, plus small tables: the
    distinct streets, their distinct words, and for each building its street and
    normalized house.
    """

    def __init__(self, buildings: Iterable[BuildingT]) -> None:
        """Index `buildings`; their order does not matter, results are deterministic."""
        given = list(buildings)
        # Read each field once: attribute access on a pydantic model costs ten times a
        # tuple index, and everything below is worked out once per distinct text (an
        # account has far fewer streets, house numbers and cities than buildings).
        fields = [(b.street, b.house, b.city, b.id) for b in given]
        streets, street_of_text = _distinct_streets({f[0] for f in fields})
        house_of_text = {text: normalize_house(text) for text in {f[1] for f in fields}}
        city_of_text = {text: _city_words(text) for text in {f[2] for f in fields}}

        # One fixed order for everything the index returns: streets alphabetically,
        # houses naturally within a street ("2" before "10"), then the city, then the
        # billing's id, so that the billing's own order never shows through.
        street_rank = _ranks(range(len(streets)), key=lambda i: (streets[i].words, streets[i].kind))
        house_rank = _ranks(house_of_text.values(), key=lambda h: (natural_sort_key(h), h))
        city_rank = _ranks(city_of_text.values(), key=lambda words: words)
        street_order = {text: street_rank[i] for text, i in street_of_text.items()}
        house_order = {text: house_rank[house] for text, house in house_of_text.items()}
        city_order = {text: city_rank[words] for text, words in city_of_text.items()}
        # Two stable sorts on plain keys cost a third of one sort on tuples.
        houses, cities = len(house_rank), len(city_rank)
        ranks = [
            (street_order[street] * houses + house_order[house]) * cities + city_order[city]
            for street, house, city, _ in fields
        ]
        ids = [building_id for _, _, _, building_id in fields]
        order = sorted(range(len(given)), key=ids.__getitem__)
        order.sort(key=ranks.__getitem__)

        self._buildings = [given[i] for i in order]
        self._street_of = [street_of_text[fields[i][0]] for i in order]
        self._house_of = [house_of_text[fields[i][1]] for i in order]
        self._city_of = [city_order[fields[i][2]] for i in order]
        self._streets = streets
        self._cities = city_rank  # city words -> the id used in _city_of
        # Buildings are sorted by street: each street's buildings are one run.
        counts = Counter(self._street_of)
        self._by_street: list[range] = [range(0)] * len(streets)
        start = 0
        for street_id in sorted(counts, key=street_rank.__getitem__):
            self._by_street[street_id] = range(start, start + counts[street_id])
            start += counts[street_id]
        self._by_house: dict[str, list[int]] = {}
        for position, house in enumerate(self._house_of):
            self._by_house.setdefault(house, []).append(position)
        word_streets: dict[str, list[int]] = {}
        for street_id, street in enumerate(streets):
            for word in dict.fromkeys(street.words):
                word_streets.setdefault(word, []).append(street_id)
        self._word_streets = word_streets
        self._vocabulary = sorted(word_streets)

    def __len__(self) -> int:
        """The number of indexed buildings."""
        return len(self._buildings)

    def in_order(self) -> list[BuildingT]:
        """Every building in the index's stable order: by street, house (naturally), city."""
        return list(self._buildings)

    def search(self, query: str, limit: int = 8) -> list[Match[BuildingT]]:
        """The buildings the query names, best first, at most `limit` of them.

        Best first means: exact street over prefix over misspelt street, then the
        street type the query named if any, then how much of the street name was
        typed, then street alphabetically and houses in natural order. A house given in
        the query must match exactly. A city name in the query restricts the search to
        that city. A query that names nothing known gives an empty list, and so does
        one longer than MAX_QUERY_LENGTH characters or twelve words: a pasted paragraph
        is not an address, and must not cost a hundred fuzzy comparisons.
        """
        if limit <= 0 or len(query) > MAX_QUERY_LENGTH:
            return []
        words, cities = self._without_cities(_tokenize(query))
        if len(words) > _MAX_QUERY_WORDS:
            return []
        word_cache: dict[str, _WordMatches] = {}
        best: dict[int, _RankKey] = {}
        for reading in _readings(words):
            for position, key in self._candidates(reading, cities, word_cache, limit):
                current = best.get(position)
                if current is None or key < current:
                    best[position] = key
        top = heapq.nsmallest(limit, best.items(), key=lambda item: item[1])
        return [Match(self._buildings[position], MatchKind(key[0])) for position, key in top]

    def _without_cities(self, words: list[str]) -> tuple[list[str], frozenset[int] | None]:
        """Drop the known city names from the query; the ones found restrict the search."""
        found: set[int] = set()
        for city_words, city_id in self._cities.items():
            start = _find_run(words, city_words)
            if start is not None:
                del words[start : start + len(city_words)]
                found.add(city_id)
        return words, frozenset(found) if found else None

    def _candidates(
        self,
        reading: _Reading,
        cities: frozenset[int] | None,
        word_cache: dict[str, _WordMatches],
        limit: int,
    ) -> Iterable[tuple[int, _RankKey]]:
        """The buildings this reading of the query names, with their rank keys.

        Only the first `limit` of a run of buildings that share everything but their
        position are produced: the ones after them can never make the top `limit`.
        """
        if not reading.street_words:
            if reading.house is not None:
                positions: Iterable[int] = self._by_house.get(reading.house, ())
            elif cities is not None:
                positions = range(len(self._buildings))  # only a city was typed
            else:
                positions = ()
            return (
                (position, (MatchKind.EXACT, 0, -1.0, position))
                for position in itertools.islice(self._in_cities(positions, cities), limit)
            )
        streets = self._match_streets(reading.street_words, word_cache)
        return self._street_candidates(streets, reading, cities, limit)

    def _street_candidates(
        self,
        streets: dict[int, tuple[MatchKind, float]],
        reading: _Reading,
        cities: frozenset[int] | None,
        limit: int,
    ) -> Iterator[tuple[int, _RankKey]]:
        if reading.house is None:
            # All buildings of one street share their key but for the position.
            positions: Iterable[int] = itertools.chain.from_iterable(
                itertools.islice(self._in_cities(self._by_street[street_id], cities), limit)
                for street_id in streets
            )
        else:
            positions = self._in_cities(
                (
                    position
                    for position in self._by_house.get(reading.house, ())
                    if self._street_of[position] in streets
                ),
                cities,
            )
        for position in positions:
            street_id = self._street_of[position]
            kind, coverage = streets[street_id]
            other_type = bool(reading.street_kinds) and (
                self._streets[street_id].kind not in reading.street_kinds
            )
            yield position, (kind, int(other_type), -coverage, position)

    def _in_cities(self, positions: Iterable[int], cities: frozenset[int] | None) -> Iterable[int]:
        if cities is None:
            return positions
        return (position for position in positions if self._city_of[position] in cities)

    def _match_streets(
        self, words: Sequence[str], word_cache: dict[str, _WordMatches]
    ) -> dict[int, tuple[MatchKind, float]]:
        """Streets having a match for every typed word -> (kind, share of the street typed)."""
        # Per street, the best vocabulary word for each typed word so far.
        per_street: dict[int, list[tuple[MatchKind, float, str]]] | None = None
        for word in words:
            matches = word_cache.get(word)
            if matches is None:
                matches = word_cache[word] = self._match_word(word)
            found: dict[int, tuple[MatchKind, float, str]] = {}
            for vocabulary_word, (kind, similarity) in matches.items():
                for street_id in self._word_streets[vocabulary_word]:
                    candidate = (kind, similarity, vocabulary_word)
                    current = found.get(street_id)
                    if current is None or (kind, -similarity) < (current[0], -current[1]):
                        found[street_id] = candidate
            if per_street is None:
                per_street = {street_id: [match] for street_id, match in found.items()}
            else:
                per_street = {
                    street_id: [*so_far, found[street_id]]
                    for street_id, so_far in per_street.items()
                    if street_id in found
                }
            if not per_street:
                return {}
        return {
            street_id: self._street_match(self._streets[street_id], word_matches)
            for street_id, word_matches in (per_street or {}).items()
        }

    @staticmethod
    def _street_match(
        street: _Street, word_matches: list[tuple[MatchKind, float, str]]
    ) -> tuple[MatchKind, float]:
        kind = max(match[0] for match in word_matches)
        matched = {match[2]: match[1] for match in word_matches}
        if kind == MatchKind.EXACT and len(matched) < len(set(street.words)):
            # "маркса" names "Карла Маркса" only in part: below a street typed in full.
            kind = MatchKind.PREFIX
        covered = sum(similarity * len(word) for word, similarity in matched.items())
        return kind, min(1.0, covered / street.length) if street.length else 1.0

    def _match_word(self, word: str) -> _WordMatches:
        """Vocabulary words matching one typed word: itself, its extensions, or typos."""
        matches: _WordMatches = {}
        vocabulary = self._vocabulary
        # The vocabulary is sorted, so the words starting with `word` are one run.
        for index in range(bisect.bisect_left(vocabulary, word), len(vocabulary)):
            vocabulary_word = vocabulary[index]
            if not vocabulary_word.startswith(word):
                break
            if vocabulary_word == word:
                matches[word] = (MatchKind.EXACT, 1.0)
            else:
                matches[vocabulary_word] = (MatchKind.PREFIX, len(word) / len(vocabulary_word))
        # Typos are looked for even when the word begins other words: a misspelt word
        # may happen to begin an unrelated one ("кирово" for "Кирова").
        if word in matches or len(word) < _FUZZY_MIN_LENGTH or any(c.isdigit() for c in word):
            return matches
        for vocabulary_word, score, _ in process.extract(
            word,
            vocabulary,
            scorer=fuzz.ratio,
            score_cutoff=_FUZZY_CUTOFF,
            limit=None,
        ):
            matches.setdefault(vocabulary_word, (MatchKind.FUZZY, score / 100.0))
        return matches


def _tokenize(text: str) -> list[str]:
    """Split an address or a query into normalized words (see the module docstring)."""
    text = text.casefold().replace("ё", "е")
    if _TRANSLATED_RE.search(text):
        text = text.translate(_TRANSLATION)
    text = _SEPARATOR_RE.sub(" ", _SLASH_SPACES_RE.sub("/", text))
    words: list[str] = []
    for raw in text.split():
        # Plain words are most of them, and street types like "пр-т", "б-р" would fall
        # apart at the hyphen.
        if raw.isalpha() or raw in _STREET_TYPES:
            words.append(raw)
            continue
        for word in _WORD_BREAK_RE.split(_NUMBER_LETTER_HYPHEN_RE.sub("", raw)):
            glued = _GLUED_WORD_RE.fullmatch(word)
            if glued:
                words.extend(glued.groups())
            elif word:
                words.append(word)
    return words


def _distinct_streets(texts: Iterable[str]) -> tuple[list[_Street], dict[str, int]]:
    """The distinct streets, and each billing spelling's street id.

    "Ленина ул." and "ул. Ленина" are one street; "Ленина пл." is another one.
    """
    streets: list[_Street] = []
    ids: dict[tuple[tuple[str, ...], str], int] = {}
    street_of_text: dict[str, int] = {}
    for text in sorted(texts):  # sorted: ids must not depend on set order
        words, kinds = _street_words(_tokenize(text))
        identity = (words, min(kinds, default=""))
        if identity not in ids:
            ids[identity] = len(streets)
            streets.append(_Street(words, identity[1], sum(map(len, words))))
        street_of_text[text] = ids[identity]
    return streets, street_of_text


_Value = TypeVar("_Value", bound=Hashable)


def _ranks(values: Iterable[_Value], key: Callable[[_Value], Any]) -> dict[_Value, int]:
    """Each distinct value -> its position in sorted order."""
    return {value: rank for rank, value in enumerate(sorted(set(values), key=key))}


def _street_words(words: Sequence[str]) -> tuple[tuple[str, ...], frozenset[str]]:
    """The words naming a street, and the canonical street types among the rest."""
    kinds = frozenset(_STREET_TYPES[word] for word in words if word in _STREET_TYPES)
    name = tuple(word for word in words if word not in _STREET_TYPES and word not in _ADDRESS_WORDS)
    # A street called only by type words ("Площадь") still needs a name to be found by.
    return (name or tuple(words)), kinds


def _city_words(city: str) -> tuple[str, ...]:
    words = tuple(word for word in _tokenize(city) if word not in _CITY_WORDS)
    return words or tuple(_tokenize(city))


def _house_from_words(words: Sequence[str]) -> str:
    start = 0
    while start < len(words) - 1 and words[start] in _HOUSE_PREFIX_WORDS:
        start += 1
    runs = [run for word in words[start:] for run in _HOUSE_RUN_RE.findall(word)]
    parts = [
        _HOUSE_MARKERS[run]
        if run in _HOUSE_MARKERS and index + 1 < len(runs) and _starts_with_digit(runs[index + 1])
        else run
        for index, run in enumerate(runs)
    ]
    return "".join(parts)


def _readings(words: Sequence[str]) -> list[_Reading]:
    """Every way to split the query into a street and a house at its start or end."""
    splits: list[tuple[Sequence[str], Sequence[str]]] = [(words, ())]
    splits += [(words[end:], words[:end]) for end in _house_ends(words, 0)]
    splits += [
        (words[:start], words[start:])
        for start in range(1, len(words))
        if len(words) in _house_ends(words, start)
    ]
    readings: dict[tuple[tuple[str, ...], str | None], _Reading] = {}
    for street_part, house_part in splits:
        street, kinds = _street_words(street_part)
        house = _house_from_words(house_part) if house_part else None
        if all(word in _ADDRESS_WORDS or word in _STREET_TYPES for word in street):
            # Only "ул.", "д." and the like: most likely no street was named ("0/0 ул.");
            # the words are still tried as a name, for a street called "Набережная".
            readings.setdefault(((), house), _Reading((), kinds, house))
        readings.setdefault((street, house), _Reading(street, kinds, house))
    return list(readings.values())


def _house_ends(words: Sequence[str], start: int) -> list[int]:
    """Every end such that words[start:end] reads as a house number.

    "12", "12 а", "12 к 1", "7 стр 2 а"; none when words[start] is not a number.
    """
    if start >= len(words) or not _starts_with_digit(words[start]):
        return []
    ends = [start + 1]
    index = start + 1
    while index < len(words):
        word = words[index]
        if (
            word in _HOUSE_MARKERS
            and index + 1 < len(words)
            and _starts_with_digit(words[index + 1])
        ):
            index += 2
        elif len(word) == 1 and word.isalpha():
            index += 1
        else:
            break
        ends.append(index)
    return ends


def _find_run(words: Sequence[str], run: Sequence[str]) -> int | None:
    if not run:
        return None
    for start in range(len(words) - len(run) + 1):
        if tuple(words[start : start + len(run)]) == tuple(run):
            return start
    return None


def _starts_with_digit(word: str) -> bool:
    # ASCII only, as everywhere in addresses: "0" <= "" is false, so "" is no number.
    return "0" <= word[:1] <= "9"
