"""The built-in demo account: ten Novosibirsk buildings with realistic meters.

Loaded into an empty embedded billing on first start (BILLING_DEMO=true, the
default) so that the bot can be tried at once: login `demo`, password `demo`.
The data is generated from a fixed seed, so every installation sees the same
apartments, serial numbers and previous readings; only the dates follow the
calendar (previous readings are dated in the month before the current one).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import date, timedelta

from pydantic import SecretStr

from billing_client.embedded.backend import AdminError, EmbeddedBilling
from billing_client.template import TemplateRow

logger = logging.getLogger(__name__)

DEMO_LOGIN = "demo"
DEMO_PASSWORD = "demo"
# argon2id of "demo" with argon2-cffi's default costs, made once: the password is
# public, and hashing it at every first start would cost half a second.
DEMO_PASSWORD_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$IEvWyJG3kENMFRnFuD+9sQ"
    "$gK393vHeI50Peb7DBlhy7SYRmD4vClwMWrH/h4I+NHQ"
)
DEMO_NAME = "ООО «УК Демо-Сибирь»"
DEMO_INN = "5405000000"
DEMO_CITY = "Новосибирск"
DEMO_SEED = 2026


@dataclass(frozen=True)
class _DemoBuilding:
    street: str
    house: str
    apartments: int


# Real street names of Novosibirsk as the retailer writes them; house numbers and
# sizes are made up (from a small house of 20 flats to a high-rise of 300).
DEMO_BUILDINGS = (
    _DemoBuilding("Авиастроителей ул.", "3", 84),
    _DemoBuilding("Красный пр-т", "17", 120),
    _DemoBuilding("Богдана Хмельницкого ул.", "44", 216),
    _DemoBuilding("Дуси Ковальчук ул.", "250", 300),
    _DemoBuilding("Гоголя ул.", "38", 60),
    _DemoBuilding("Кирова ул.", "86", 150),
    _DemoBuilding("Выборная ул.", "115/1", 180),
    _DemoBuilding("Титова ул.", "7", 20),
    _DemoBuilding("Петухова ул.", "12к2", 264),
    _DemoBuilding("Народная ул.", "37", 96),
)


def _apartment_names(rng: random.Random, count: int) -> list[str]:
    names = []
    for number in range(1, count + 1):
        names.append(str(number))
        # Now and then a flat was split in two: "12" and "12а".
        if rng.random() < 0.03:
            names.append(f"{number}а")
    # Non-residential premises (shops, offices) on the ground floor.
    names.extend(f"НП-{n}" for n in range(1, rng.randint(1, 3) + 1))
    return names


def _serial(rng: random.Random, taken: set[str]) -> str:
    while True:
        length = rng.randint(7, 12)
        # Some manufacturers print serials with leading zeros; keep them.
        head = "00" if rng.random() < 0.15 else str(rng.randint(1, 9))
        serial = head + "".join(str(rng.randint(0, 9)) for _ in range(length - len(head)))
        if serial not in taken:
            taken.add(serial)
            return serial


def _value(rng: random.Random, digits: int, fraction_digits: int) -> str:
    # Realistic consumption so far: a few hundred to some tens of thousands of kWh,
    # written to the full width of the drum ("00412").
    whole = str(rng.randint(100, min(10**digits - 1, 60_000))).zfill(digits)
    if fraction_digits:
        whole += "." + "".join(str(rng.randint(0, 9)) for _ in range(fraction_digits))
    return whole


def demo_rows(today: date, *, seed: int = DEMO_SEED) -> list[TemplateRow]:
    """The demo account's slots as template rows (deterministic for a given `today`)."""
    rng = random.Random(seed)
    last_month_end = today.replace(day=1) - timedelta(days=1)
    rows: list[TemplateRow] = []
    for building in DEMO_BUILDINGS:
        serials: set[str] = set()
        for apartment in _apartment_names(rng, building.apartments):
            kind = rng.random()
            tariffs: tuple[str | None, ...]
            if kind < 0.6:
                tariffs = (None,)
            elif kind < 0.9:
                tariffs = ("день", "ночь")
            else:
                tariffs = ("пик", "полупик", "ночь")
            digits = rng.choice((5, 5, 6, 6, 6, 7, 8))
            fraction_digits = rng.choices((0, 1, 2), weights=(80, 15, 5))[0]
            serial = _serial(rng, serials)
            is_new = rng.random() < 0.07  # a freshly installed meter: no reading yet
            read_on = last_month_end.replace(day=rng.randint(20, min(25, last_month_end.day)))
            for tariff in tariffs:
                previous = None if is_new else _value(rng, digits, fraction_digits)
                rows.append(
                    TemplateRow(
                        city=DEMO_CITY,
                        street=building.street,
                        house=building.house,
                        apartment=apartment,
                        serial_number=serial,
                        digits=digits,
                        fraction_digits=fraction_digits,
                        tariff=tariff,
                        previous_value=previous,
                        previous_date=None if is_new else read_on,
                    )
                )
    return rows


async def load_demo(billing: EmbeddedBilling) -> bool:
    """Create the demo account with its buildings; False if it exists already."""
    today = billing.now().astimezone(billing.timezone).date()
    try:
        await billing.add_account(
            DEMO_LOGIN,
            DEMO_NAME,
            SecretStr(DEMO_PASSWORD),
            inn=DEMO_INN,
            rows=demo_rows(today),
            # A billing with other argon2 costs (tests' cheap ones) hashes "demo" itself:
            # the ready hash would cost production's argon2 at every demo login.
            password_hash=(
                DEMO_PASSWORD_HASH if billing.hash_is_current(DEMO_PASSWORD_HASH) else None
            ),
        )
    except AdminError:
        return False  # another process (the CLI's `serve`, a second bot) was first
    return True


async def load_demo_if_empty(billing: EmbeddedBilling) -> bool:
    """Load the demo into a billing without accounts, and say so in the log once."""
    if await billing.has_accounts():
        return False
    if not await load_demo(billing):
        return False
    logger.info(
        "billing: loaded the demo account (login %r, password %r, %d buildings); "
        "set BILLING_DEMO=false to start without it",
        DEMO_LOGIN,
        DEMO_PASSWORD,
        len(DEMO_BUILDINGS),
    )
    return True
