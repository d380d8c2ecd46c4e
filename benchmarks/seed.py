"""Generated buildings and the two databases the bot runs on, written in bulk.

The embedded billing gets an account with buildings and slots; the bot's database
gets the linked account, the simulated inspectors (already logged in) and, for the
data-scale run, a draft per building with every slot: a million rows in a few
seconds through executemany on one transaction, not through the bot.

Every value typed by a simulated inspector fits every generated meter: at least 5
digits, previous reading 100 (or none), values between 100 and 2000, so a value is
never below the previous one nor a suspicious jump; refused values are typed on
purpose (see load.py).
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from argon2 import PasswordHasher

from billing_client.embedded import EmbeddedBilling
from storage.crypto import Vault
from storage.engine import create_engine
from storage.migrate import upgrade_database

LOGIN = "bench"
PASSWORD = "bench-password-1"
COMPANY = "ООО «УК Бенчмарк»"
CITY = "Новосибирск"
SECRET_KEY = "benchmark-secret-key-not-a-real-one"
FIRST_USER_ID = 700_001
# Who entered the seeded accepted values: an inspector who never types in the run. The
# bot finds the slot a message filled by (entered_by, source_message_id) to go on after
# a replay; seeded ids under a simulated inspector would collide with the real message
# ids of its chat (the bot then "goes on" in another building).
PAST_INSPECTOR_ID = FIRST_USER_ID - 1

_NAMES = (
    "Ленина", "Мира", "Гоголя", "Кирова", "Советская", "Октябрьская", "Садовая", "Лесная",
    "Авиастроителей", "Богдана Хмельницкого", "Карла Маркса", "Красный", "Дуси Ковальчук",
    "Фрунзе", "Челюскинцев", "Депутатская", "Сибирская", "Танковая", "Римского-Корсакова",
    "Выборная", "Петухова", "Станиславского", "Зорге", "Кошурникова", "Гагарина",
    "Титова", "Немировича-Данченко", "Котовского", "Блюхера", "Доватора", "Бориса Богаткова",
    "Ипподромская", "Каменская", "Нарымская", "Писарева", "Орджоникидзе", "Трудовая",
    "Урицкого", "Шамшиных", "Щетинкина", "Вокзальная магистраль", "Жуковского", "Объединения",
    "Народная", "Учительская", "Кропоткина", "Линейная", "Дачная", "Магистральная", "Новая",
)  # fmt: skip
_TYPES = ("ул.", "пр-т", "пер.", "б-р", "ш.")
_HOUSES_PER_STREET = 40


@dataclass(frozen=True, slots=True)
class PlannedBuilding:
    """One generated building; its billing id is `b-<number>`."""

    number: int  # 1-based: the billing row id and import position
    name: str  # the street's name without its type: what an inspector types
    street: str
    house: str
    apartments: int

    @property
    def building_id(self) -> str:
        return f"b-{self.number}"

    @property
    def label(self) -> str:
        """The button of this building in the bot's lists (keyboards/readings.py)."""
        return f"{self.street}, {self.house}"

    @property
    def slots(self) -> int:
        return self.apartments + self.apartments // 5

    def query(self, typo: bool) -> str:
        """What an inspector types to find it, optionally with one wrong letter."""
        name = self.name
        if typo:
            words = name.split()
            longest = max(range(len(words)), key=lambda i: len(words[i]))
            word = words[longest]
            if len(word) >= 6:
                middle = len(word) // 2
                wrong = "а" if word[middle] != "а" else "о"
                words[longest] = word[:middle] + wrong + word[middle + 1 :]
            name = " ".join(words)
        return f"{name} {self.house}"


def plan_buildings(count: int, apartments: Callable[[int], int]) -> list[PlannedBuilding]:
    """`count` buildings on distinct streets and houses; `apartments(i)` for the i-th."""
    buildings = []
    for index in range(count):
        street_no, house_no = divmod(index, _HOUSES_PER_STREET)
        name = _NAMES[street_no % len(_NAMES)]
        kind = _TYPES[(street_no // len(_NAMES)) % len(_TYPES)]
        lap = street_no // (len(_NAMES) * len(_TYPES))
        # After every name and type is used, more streets get a number: "2-я Ленина".
        street_name = f"{lap + 1}-я {name}" if lap else name
        buildings.append(
            PlannedBuilding(
                number=index + 1,
                name=street_name,
                street=f"{street_name} {kind}",
                house=str(house_no + 1),
                apartments=apartments(index),
            )
        )
    return buildings


# One slot as the template has it: apartment, serial number, tariff (None: single),
# digits, fraction digits, previous reading.
_SlotSpec = tuple[str, str, str | None, int, int, str | None]


@functools.cache
def _layout(apartments: int) -> tuple[tuple[int, str | None, int, int, str | None], ...]:
    # Every building with the same number of apartments has the same meters; only
    # the serial numbers differ. Computed once: a million slots are built per run.
    layout = []
    for apartment in range(1, apartments + 1):
        tariffs: tuple[str | None, ...] = ("день", "ночь") if apartment % 5 == 0 else (None,)
        for tariff in tariffs:
            layout.append(
                (
                    apartment,
                    tariff,
                    5 + apartment % 3,
                    1 if apartment % 4 == 0 else 0,
                    None if apartment % 9 == 0 else "100",
                )
            )
    return tuple(layout)


def _slots_of(building: PlannedBuilding) -> Iterator[_SlotSpec]:
    """The building's slots in the bot's walking order (natural apartment order)."""
    prefix = f"{building.number:05d}"
    for apartment, tariff, digits, fraction, previous in _layout(building.apartments):
        yield (str(apartment), f"{prefix}{apartment:04d}", tariff, digits, fraction, previous)


def _sql_time(moment: datetime) -> str:
    # How SQLAlchemy stores a DateTime in SQLite.
    return moment.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA synchronous=OFF")
    # A large page cache keeps the indexes' B-trees in memory while a million rows
    # go in: with the default 2 MB every insert pages index nodes in and out.
    connection.execute("PRAGMA cache_size=-512000")
    return connection


@dataclass(frozen=True)
class Seeded:
    data_dir: Path
    env: dict[str, str]
    buildings: list[PlannedBuilding]
    inspectors: list[int]
    period: str
    slots: int
    draft_slots: int
    seconds: float


async def seed(
    data_dir: Path,
    buildings: list[PlannedBuilding],
    *,
    inspectors: int,
    draft_status: Callable[[PlannedBuilding], str | None] = lambda _b: None,
    database_urls: tuple[str, str] | None = None,
) -> Seeded:
    """Write both databases under `data_dir`; `draft_status` gives a building a draft.

    A draft's slots get the status returned ("empty" or "accepted"); None: no draft,
    the bot creates it when the building is opened.

    `database_urls` (the bot's, the billing's; e.g. PostgreSQL): write there instead of
    SQLite files, through SQLAlchemy (fast enough for the small database; no drafts).
    """
    started = asyncio.get_running_loop().time()
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    bot_db, billing_db = data_dir / "bot.db", data_dir / "billing.db"
    bot_url, billing_url = database_urls or (
        f"sqlite+aiosqlite:///{bot_db}",
        f"sqlite+aiosqlite:///{billing_db}",
    )
    env = {
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": bot_url,
        "BILLING_DATABASE_URL": billing_url,
        "BILLING_DEMO": "false",
        "SECRET_KEY": SECRET_KEY,
    }
    # The migrations and the account row go through the project's own code.
    billing = await EmbeddedBilling.open(env["BILLING_DATABASE_URL"])
    try:
        password_hash = await asyncio.to_thread(PasswordHasher().hash, PASSWORD)
        from pydantic import SecretStr

        account = await billing.add_account(
            LOGIN, COMPANY, SecretStr(PASSWORD), password_hash=password_hash
        )
        period = billing.current_period()
        now = billing.now()
    finally:
        await billing.close()
    engine = create_engine(env["DATABASE_URL"])
    try:
        await upgrade_database(engine)
    finally:
        await engine.dispose()
    users = list(range(FIRST_USER_ID, FIRST_USER_ID + inspectors))
    if database_urls is None:
        slots, draft_slots = await asyncio.to_thread(
            _bulk_write, bot_db, billing_db, account.id, buildings, users, period, now, draft_status
        )
    else:
        if any(draft_status(b) is not None for b in buildings):
            raise ValueError("drafts are seeded into SQLite only")
        slots, draft_slots = (
            await _write_through_sqlalchemy(
                bot_url, billing_url, account.id, buildings, users, now
            ),
            0,
        )
    seconds = asyncio.get_running_loop().time() - started
    return Seeded(data_dir, env, buildings, users, period, slots, draft_slots, seconds)


def _bulk_write(
    bot_db: Path,
    billing_db: Path,
    account_id: str,
    buildings: list[PlannedBuilding],
    users: list[int],
    period: str,
    now: datetime,
    draft_status: Callable[[PlannedBuilding], str | None],
) -> tuple[int, int]:
    previous_date = (now.date().replace(day=1) - timedelta(days=1)).replace(day=20)
    billing_account = int(account_id.split("-")[1])
    # Two files, two threads: SQLite works without the GIL for most of an insert.
    with ThreadPoolExecutor(2) as pool:
        slots = pool.submit(_write_billing, billing_db, billing_account, buildings, previous_date)
        draft_slots = pool.submit(
            _write_bot, bot_db, account_id, buildings, users, period, now, previous_date,
            draft_status,
        )  # fmt: skip
        return slots.result(), draft_slots.result()


async def _write_through_sqlalchemy(
    bot_url: str,
    billing_url: str,
    account_id: str,
    buildings: list[PlannedBuilding],
    users: list[int],
    now: datetime,
) -> int:
    """The billing's buildings and slots, the bot's account and inspectors, on any engine."""
    from sqlalchemy import insert, text
    from sqlalchemy.ext.asyncio import create_async_engine

    from billing_client.embedded.models import BuildingRow, SlotRow
    from storage.models import Account, TelegramUser

    previous_date = (now.date().replace(day=1) - timedelta(days=1)).replace(day=20)
    billing_account = int(account_id.split("-")[1])
    slots = [
        {
            "building_id": building.number, "apartment": apartment, "serial_number": serial,
            "tariff": tariff or "", "digits": digits, "fraction_digits": fraction,
            "previous_value": previous, "previous_date": previous_date if previous else None,
            "position": position,
        }
        for building in buildings
        for position, (apartment, serial, tariff, digits, fraction, previous) in enumerate(
            _slots_of(building)
        )
    ]  # fmt: skip
    billing = create_async_engine(billing_url)
    try:
        async with billing.begin() as connection:
            await connection.execute(
                insert(BuildingRow),
                [
                    {"id": b.number, "account_id": billing_account, "city": CITY,
                     "street": b.street, "house": b.house,
                     "address": f"{CITY}, {b.street}, {b.house}", "position": b.number}
                    for b in buildings
                ],
            )  # fmt: skip
            for start in range(0, len(slots), 10_000):
                await connection.execute(insert(SlotRow), slots[start : start + 10_000])
            if connection.dialect.name == "postgresql":
                # Explicit ids leave the id sequence behind: later inserts must not collide.
                await connection.execute(
                    text(
                        "SELECT setval(pg_get_serial_sequence('billing_buildings', 'id'), "
                        "(SELECT max(id) FROM billing_buildings))"
                    )
                )
    finally:
        await billing.dispose()
    bot = create_async_engine(bot_url)
    try:
        async with bot.begin() as connection:
            await connection.execute(
                insert(Account),
                [{"id": account_id, "name": COMPANY, "inn": None, "login": LOGIN,
                  "password_encrypted": Vault.from_setting(SECRET_KEY).encrypt(PASSWORD),
                  "created_at": now}],
            )  # fmt: skip
            await connection.execute(
                insert(TelegramUser),
                [
                    {"id": uid, "full_name": f"Контролёр {uid}", "username": None,
                     "account_id": account_id, "role": "inspector", "show_previous": False,
                     "linked_at": now}
                    for uid in users
                ],
            )  # fmt: skip
    finally:
        await bot.dispose()
    return len(slots)


class _IndexesLater:
    """Drops a table's secondary indexes for a bulk insert and builds them after it.

    Building an index over sorted data once is several times cheaper than keeping
    it up to date row by row. Indexes of UNIQUE constraints stay (they cannot be
    dropped), so the data is still checked.
    """

    def __init__(self, connection: sqlite3.Connection, *tables: str) -> None:
        marks = ", ".join("?" for _ in tables)
        self._connection = connection
        self._indexes: list[tuple[str, str]] = connection.execute(
            f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            f"AND tbl_name IN ({marks})",
            tables,
        ).fetchall()

    def __enter__(self) -> None:
        for name, _sql in self._indexes:
            self._connection.execute(f'DROP INDEX "{name}"')

    def __exit__(self, *exc: object) -> None:
        for _name, sql in self._indexes:
            self._connection.execute(sql)


def _write_billing(
    path: Path, account: int, buildings: list[PlannedBuilding], previous_date: date
) -> int:
    connection = _connect(path)
    slot_id = 0
    day = previous_date.isoformat()
    try:
        connection.execute("BEGIN")
        connection.executemany(
            "INSERT INTO billing_buildings (id, account_id, city, street, house, address, "
            "position) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                (b.number, account, CITY, b.street, b.house, f"{CITY}, {b.street}, {b.house}",
                 b.number)
                for b in buildings
            ),
        )  # fmt: skip

        def rows() -> Iterator[tuple[object, ...]]:
            nonlocal slot_id
            for building in buildings:
                for position, (apartment, serial, tariff, digits, fraction, previous) in enumerate(
                    _slots_of(building)
                ):
                    slot_id += 1
                    yield (
                        slot_id, building.number, apartment, serial, tariff or "", digits,
                        fraction, previous, day if previous else None, position,
                    )  # fmt: skip

        with _IndexesLater(connection, "billing_slots"):
            connection.executemany(
                "INSERT INTO billing_slots (id, building_id, apartment, serial_number, tariff, "
                "digits, fraction_digits, previous_value, previous_date, position) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows(),
            )
        connection.execute("COMMIT")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    return slot_id


def _write_bot(
    path: Path,
    account_id: str,
    buildings: list[PlannedBuilding],
    users: list[int],
    period: str,
    now: datetime,
    previous_date: date,
    draft_status: Callable[[PlannedBuilding], str | None],
) -> int:
    connection = _connect(path)
    stamp = _sql_time(now)
    password = Vault.from_setting(SECRET_KEY).encrypt(PASSWORD)
    written = 0
    try:
        connection.execute("BEGIN")
        connection.execute(
            "INSERT INTO accounts (id, name, inn, login, password_encrypted, created_at) "
            "VALUES (?, ?, NULL, ?, ?, ?)",
            (account_id, COMPANY, LOGIN, password, stamp),
        )
        connection.executemany(
            "INSERT INTO telegram_users (id, full_name, username, account_id, role, "
            "show_previous, linked_at) VALUES (?, ?, ?, ?, ?, 0, ?)",
            (
                (uid, f"Контролёр {uid}", None, account_id, "inspector", stamp)
                for uid in [PAST_INSPECTOR_ID, *users]
            ),
        )
        slot_id = 0  # the billing's slot ids, in the same order as _write_billing
        drafts: list[tuple[object, ...]] = []
        day = previous_date.isoformat()

        def rows() -> Iterator[tuple[object, ...]]:
            nonlocal slot_id, written
            for building in buildings:
                status = draft_status(building)
                if status is None:
                    slot_id += building.slots
                    continue
                draft_id = len(drafts) + 1
                drafts.append(
                    (draft_id, account_id, building.building_id, period,
                     f"{CITY}, {building.street}, {building.house}", building.apartments,
                     building.slots, stamp)
                )  # fmt: skip
                accepted = status == "accepted"
                for position, (apartment, serial, tariff, digits, fraction, previous) in enumerate(
                    _slots_of(building)
                ):
                    slot_id += 1
                    written += 1
                    yield (
                        draft_id, position, f"m-{slot_id}", apartment, serial, digits, fraction,
                        tariff, previous, day if previous else None, status,
                        "1500" if accepted else None,
                        PAST_INSPECTOR_ID if accepted else None,
                        stamp if accepted else None, written if accepted else None,
                    )  # fmt: skip

        with _IndexesLater(connection, "draft_slots"):
            connection.executemany(
                "INSERT INTO draft_slots (draft_id, position, meter_id, apartment, "
                "serial_number, digits, fraction_digits, tariff, previous_value, "
                "previous_date, status, value, entered_by, entered_at, source_message_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows(),
            )
        connection.executemany(
            "INSERT INTO drafts (id, account_id, building_id, period, address, apartments, "
            "slots_total, refreshed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            drafts,
        )
        connection.execute("COMMIT")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    return written
