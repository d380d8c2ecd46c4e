"""Apartment labels: natural order and finding one by what the inspector types.

Billing sends an apartment as free text: "12", "12а", "НП-3" (non-residential),
"1/2", sometimes "кв. 5". The inspector walks a building in the order of the doors,
so "10" comes after "2", and the non-residential rooms come after every flat.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = [
    "ApartmentSortKey",
    "NaturalKey",
    "apartment_sort_key",
    "find_apartment",
    "natural_sort_key",
    "normalize_apartment_query",
]

# A chunk of a natural key: (0, 0, text) for a run of non-digits, (1, length, digits)
# for a run of digits with leading zeros stripped. Comparing numbers by (length,
# digits) orders them like integers without int(), which refuses very long strings.
NaturalChunk = tuple[int, int, str]
NaturalKey = tuple[NaturalChunk, ...]
# (group, natural key of the normalized label, the label as given). The label as
# given breaks ties between spellings of one apartment ("12А", "12а") so that the
# order is total and never depends on the input order.
ApartmentSortKey = tuple[int, NaturalKey, str]

_RESIDENTIAL, _NON_RESIDENTIAL, _UNLABELLED = 0, 1, 2

# Latin letters that look exactly like Cyrillic ones once lower-cased: "12a" typed on
# a Latin keyboard is "12а". Letters that only look alike in upper case (b/в, h/н, m/м,
# t/т) are left alone: a lower-case "b" more likely means "б".
_LOOKALIKES = str.maketrans("aceopxyk", "асеорхук")
_DASHES = str.maketrans("\u2010\u2011\u2012\u2013\u2014\u2212", "------")
# "кв", "кв.", "квартира", "кв №" before the number say "a flat", nothing more.
_FLAT_PREFIX_RE = re.compile(r"^(?:квартира|кв)[\s.№]*(?=[0-9])")
# A hyphen joins two numbers ("12-14" is not "1214"); anywhere else it is decoration
# ("НП-3" is "нп3", "12-а" is "12а").
_LOOSE_HYPHEN_RE = re.compile(r"(?<![0-9])-|-(?![0-9])")
_IGNORED_RE = re.compile(r"[\s.№]+")
_CHUNK_RE = re.compile(r"[0-9]+|[^0-9]+")


def normalize_apartment_query(text: str) -> str:
    """Bring an apartment label or a typed query to one comparable form.

    Case-insensitive, "ё" is "е", Latin look-alikes are Cyrillic, spaces, dots and
    "№" are dropped, a leading "кв"/"квартира" is dropped, a hyphen is kept only
    between two numbers: "12а", "12 А", "кв 12а", "№12а" all give "12а"; "НП-3" gives
    "нп3"; "12-14" stays "12-14". Applied to both the query and the labels.
    """
    text = text.casefold().replace("ё", "е").translate(_LOOKALIKES).translate(_DASHES)
    text = _FLAT_PREFIX_RE.sub("", text.strip())
    text = _IGNORED_RE.sub("", text)
    return _LOOSE_HYPHEN_RE.sub("", text)


def natural_sort_key(text: str) -> NaturalKey:
    """A key that orders numbers inside text by value: "2" < "10" < "10а" < "10б".

    Compares `text` as given (no normalization); leading zeros do not count
    ("05" and "5" give the same key).
    """
    return tuple(_chunk(part) for part in _CHUNK_RE.findall(text))


def apartment_sort_key(apartment: str) -> ApartmentSortKey:
    """The key for walking a building door by door.

    Flats (labels starting with a number once "кв."/"№" are dropped) come first in
    natural order: 1, 1/2, 1а, 2, 10, 10а, 10б, 11, 12-14, 100. Then non-residential
    rooms ("НП-1", "НП-2", "НП-10", "Нежилое 2", "пом. 3"), grouped by their word and
    numbered naturally within it. An empty label comes last. Case and ё/е do not
    matter; different spellings of one label keep a fixed order.
    """
    if apartment.isascii() and apartment.isdecimal():  # most labels: nothing to normalize
        return _RESIDENTIAL, (_chunk(apartment),), apartment
    normalized = normalize_apartment_query(apartment)
    if not normalized:
        group = _UNLABELLED
    elif _is_digit(normalized[0]):
        group = _RESIDENTIAL
    else:
        group = _NON_RESIDENTIAL
    return group, natural_sort_key(normalized), apartment


def find_apartment(query: str, apartments: Sequence[str]) -> int | None:
    """The index of the first slot of the apartment the inspector asked for, or None.

    An exact match after normalization wins ("кв 12А" finds "12а"). Otherwise, when
    the query is the beginning of exactly one apartment's label ("12" when the
    building has "12а" and no "12"), that apartment is found; a number never matches
    a longer number ("1" does not find "12"). Ambiguity gives None, never a guess.
    `apartments` is the building's slots in walking order, one label per slot, so an
    apartment with several meters appears several times.
    """
    wanted = normalize_apartment_query(query)
    if not wanted:
        return None
    labels = [normalize_apartment_query(apartment) for apartment in apartments]
    for index, label in enumerate(labels):
        if label == wanted:
            return index
    extended = {label for label in labels if _extends(label, wanted)}
    if len(extended) != 1:
        return None
    return labels.index(extended.pop())


def _extends(label: str, prefix: str) -> bool:
    if not label.startswith(prefix) or len(label) == len(prefix):
        return False
    # "1" must not find "12": a number is only extended by what is not a digit.
    return not (_is_digit(prefix[-1]) and _is_digit(label[len(prefix)]))


def _chunk(part: str) -> NaturalChunk:
    if _is_digit(part[0]):
        digits = part.lstrip("0") or "0"
        return (1, len(digits), digits)
    return (0, 0, part)


def _is_digit(char: str) -> bool:
    # ASCII only: str.isdigit() is also true for "²" and "١", which are text here.
    return "0" <= char <= "9"
