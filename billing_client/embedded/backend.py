"""The embedded billing: the contract's semantics in-process, on its own database.

It is the default when BILLING_URL is unset, the engine behind the reference
server, and the administration API of `python -m billing_client`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import SecretStr
from sqlalchemy import Row, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from billing_client.auth import TokenAuthBilling
from billing_client.embedded import catalog
from billing_client.embedded.db import create_billing_engine, upgrade_billing_database
from billing_client.embedded.models import (
    IDEMPOTENCY_KEY_MAX,
    LOGIN_MAX,
    AccountRow,
    BuildingRow,
    LoginFailureRow,
    ReadingRow,
    SlotRow,
    SubmissionRow,
    TokenRow,
)
from billing_client.embedded.rules import (
    AcceptanceWindow,
    is_below,
    is_period,
    period_of,
    public_id,
    row_id,
    value_problem,
)
from billing_client.errors import (
    BillingRequestError,
    IdempotencyConflict,
    InvalidCredentials,
    NotFound,
    TokenExpired,
    TooManyAttempts,
)
from billing_client.models import (
    AcceptedReading,
    Account,
    Building,
    BuildingList,
    BuildingMeters,
    BuildingRef,
    LoginResult,
    Meter,
    PeriodReadings,
    Previous,
    Rejection,
    SubmitResult,
)
from billing_client.template import TemplateRow

logger = logging.getLogger(__name__)

DEFAULT_TOKEN_TTL = timedelta(hours=12)
MAX_LOGIN_FAILURES = 10
LOGIN_FAILURE_WINDOW = timedelta(minutes=15)
# A building of 500 apartments with three-tariff meters is 1500 slots; ten times
# that is room for any real batch while a runaway client cannot fill memory.
MAX_READINGS_PER_BATCH = 20_000
LOGIN_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
INN_RE = re.compile(r"^([0-9]{10}|[0-9]{12})$")

MESSAGES = {
    "invalid_credentials": "Неверный логин или пароль",
    "too_many_attempts": "Слишком много неудачных попыток входа; повторите через {seconds} с",
    "token_expired": "Сеанс истёк; нужно войти снова",
    "not_found": "Дом не найден среди домов этой учётной записи",
    "idempotency_conflict": "Этот Idempotency-Key уже использован с другим набором показаний",
    "idempotency_key_required": "Нужен заголовок Idempotency-Key",
    "invalid_idempotency_key": "Idempotency-Key длиннее 255 символов",
    "too_many_readings": "В одном пакете больше {limit} показаний",
    "invalid_period": "Период указывается как ГГГГ-ММ",
    "unknown_meter": "Прибор не найден в этом доме",
    "period_closed": "Приём показаний закрыт: показания принимаются {window}",
    "invalid_value": "Показание записывается цифрами, дробная часть — через точку",
    "too_many_digits": "Больше знаков, чем у прибора ({digits} до запятой, {fraction} после)",
    "below_previous": "Показание меньше предыдущего ({previous})",
}


class ReadingLike(Protocol):
    """A reading as submitted; `value` may be anything a client sent (judged here)."""

    @property
    def meter_id(self) -> str: ...

    @property
    def value(self) -> object: ...

    @property
    def taken_at(self) -> datetime: ...


class AdminError(Exception):
    """An administration request that cannot be done; the text is for the operator."""


@dataclass(frozen=True)
class AccountSummary:
    """An account as `account list` shows it."""

    login: str
    name: str
    inn: str | None
    buildings: int
    slots: int


def normalize_login(login: str) -> str:
    """Logins are compared trimmed and case-insensitively ("Demo " is "demo")."""
    return login.strip().casefold()


def _token_hash(token: str) -> str:
    # A token is 256 random bits: a plain SHA-256 is enough, unlike for passwords.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def body_hash(building_id: str, readings: Sequence[ReadingLike]) -> str:
    """A fingerprint of a submission's meaning (not its bytes): building and readings."""
    canonical = {
        "building_id": building_id,
        "readings": [
            {"meter_id": r.meter_id, "value": r.value, "taken_at": r.taken_at.isoformat()}
            for r in readings
        ],
    }
    text = json.dumps(canonical, ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddedBilling(TokenAuthBilling):
    """`Billing` on a local database: the contract's rules without a network."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        timezone: str | ZoneInfo = "Asia/Novosibirsk",
        window: AcceptanceWindow | None = None,
        token_ttl: timedelta = DEFAULT_TOKEN_TTL,
        clock: Callable[[], datetime] | None = None,
        password_hasher: PasswordHasher | None = None,
        max_login_failures: int = MAX_LOGIN_FAILURES,
        login_failure_window: timedelta = LOGIN_FAILURE_WINDOW,
    ) -> None:
        """Serve billing from `engine` (already migrated; see `open`).

        `clock` returns the current aware time (tests move it to expire tokens or
        leave the acceptance window); `password_hasher` lets tests use cheap
        argon2 parameters. The engine is disposed by `close`.
        """
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
        self._tz = timezone if isinstance(timezone, ZoneInfo) else ZoneInfo(timezone)
        self._window = window or AcceptanceWindow()
        self._token_ttl = token_ttl
        self._clock = clock or (lambda: datetime.now(UTC))
        self._hasher = password_hasher or PasswordHasher()
        self._max_failures = max_login_failures
        self._failure_window = login_failure_window
        self._dummy_hash: str | None = None

    @classmethod
    async def open(cls, database_url: str, **options: Any) -> EmbeddedBilling:
        """Apply the billing migrations to `database_url`, then serve from it.

        `options` are the keyword arguments of the constructor.
        """
        await upgrade_billing_database(database_url)
        return cls(create_billing_engine(database_url), **options)

    async def close(self) -> None:
        """Close the database connections."""
        await self._engine.dispose()

    async def ping(self) -> None:
        """Raise unless billing's database answers (readiness)."""
        async with self._engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    @property
    def timezone(self) -> ZoneInfo:
        """Billing's time zone (periods, dates and timestamps are in it)."""
        return self._tz

    def now(self) -> datetime:
        """The current time by billing's clock."""
        return self._clock()

    def current_period(self) -> str:
        """The period readings submitted now count for."""
        return period_of(self.now(), self._tz)

    # -- login and tokens ---------------------------------------------------

    async def login(self, login: str, password: SecretStr) -> LoginResult:
        """Check credentials and issue a token.

        After `max_login_failures` failures for one login within the failure
        window, every attempt for it (even a right one) is TooManyAttempts until
        the oldest failure leaves the window. Unknown logins are throttled too.
        """
        name = normalize_login(login)
        now = self.now()
        since = now - self._failure_window
        account: AccountRow | None = None
        if len(name) <= LOGIN_MAX:
            async with self._sessions() as session:
                count, oldest = (
                    await session.execute(
                        select(func.count(), func.min(LoginFailureRow.failed_at)).where(
                            LoginFailureRow.login == name, LoginFailureRow.failed_at > since
                        )
                    )
                ).one()
                if count >= self._max_failures and oldest is not None:
                    seconds = max(
                        1, math.ceil((oldest + self._failure_window - now).total_seconds())
                    )
                    raise TooManyAttempts(
                        MESSAGES["too_many_attempts"].format(seconds=seconds),
                        retry_after=float(seconds),
                    )
                account = await session.scalar(select(AccountRow).where(AccountRow.login == name))
        # argon2 takes tens of milliseconds: outside any transaction (SQLite holds a
        # write lock for the whole of one) and off the event loop.
        stored = account.password_hash if account is not None else await self._dummy()
        ok = await asyncio.to_thread(self._verify, stored, password.get_secret_value())
        token, expires_at = secrets.token_urlsafe(32), now + self._token_ttl
        async with self._sessions() as session, session.begin():
            if not ok or account is None:
                if len(name) <= LOGIN_MAX:
                    await session.execute(
                        delete(LoginFailureRow).where(
                            LoginFailureRow.login == name, LoginFailureRow.failed_at <= since
                        )
                    )
                    session.add(LoginFailureRow(login=name, failed_at=now))
            else:
                await session.execute(delete(LoginFailureRow).where(LoginFailureRow.login == name))
                await session.execute(
                    delete(TokenRow).where(
                        TokenRow.account_id == account.id, TokenRow.expires_at <= now
                    )
                )
                session.add(
                    TokenRow(
                        account_id=account.id,
                        token_hash=_token_hash(token),
                        issued_at=now,
                        expires_at=expires_at,
                    )
                )
                if self._hasher.check_needs_rehash(account.password_hash):
                    new_hash = await asyncio.to_thread(
                        self._hasher.hash, password.get_secret_value()
                    )
                    await session.execute(
                        update(AccountRow)
                        .where(AccountRow.id == account.id)
                        .values(password_hash=new_hash)
                    )
        if not ok or account is None:
            raise InvalidCredentials(MESSAGES["invalid_credentials"])
        return LoginResult(
            token=token,
            expires_at=expires_at.astimezone(self._tz),
            account=_account_model(account),
        )

    def hash_is_current(self, password_hash: str) -> bool:
        """Whether `password_hash` has this billing's argon2 costs (no rehash at login)."""
        return not self._hasher.check_needs_rehash(password_hash)

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    async def _dummy(self) -> str:
        # Checking a password against a throwaway hash for an unknown login makes
        # "no such login" take as long as "wrong password".
        if self._dummy_hash is None:
            self._dummy_hash = await asyncio.to_thread(self._hasher.hash, secrets.token_hex(16))
        return self._dummy_hash

    async def _account_id(self, session: AsyncSession, token: str) -> int:
        row = (
            await session.execute(
                select(TokenRow.account_id, TokenRow.expires_at).where(
                    TokenRow.token_hash == _token_hash(token)
                )
            )
        ).first()
        # An unknown token is answered like an expired one: the client's remedy
        # (log in again) is the same, and it tells an attacker nothing more.
        if row is None or row.expires_at <= self.now():
            raise TokenExpired(MESSAGES["token_expired"])
        return int(row.account_id)

    async def expire_tokens(self, login: str | None = None) -> int:
        """End the sessions of one account (or of all): their next call is token_expired."""
        now = self.now()
        async with self._sessions() as session, session.begin():
            query = update(TokenRow).where(TokenRow.expires_at > now).values(expires_at=now)
            if login is not None:
                account_ids = select(AccountRow.id).where(
                    AccountRow.login == normalize_login(login)
                )
                query = query.where(TokenRow.account_id.in_(account_ids))
            result = await session.execute(query)
        return int(getattr(result, "rowcount", 0) or 0)

    # -- the contract -------------------------------------------------------

    async def buildings_with_token(self, token: str) -> BuildingList:
        """The account's buildings, in import order."""
        async with self._sessions() as session:
            account_id = await self._account_id(session, token)
            # Plain rows, not BuildingRow objects: an account may have 10,000 buildings,
            # and that many ORM objects cost the process ~10 MB more at its peak.
            rows = (
                await session.execute(
                    select(
                        BuildingRow.id,
                        BuildingRow.city,
                        BuildingRow.street,
                        BuildingRow.house,
                        BuildingRow.address,
                    )
                    .where(BuildingRow.account_id == account_id)
                    .order_by(BuildingRow.position, BuildingRow.id)
                )
            ).all()
        return BuildingList(
            buildings=[
                Building(
                    id=public_id("b", row.id),
                    city=row.city,
                    street=row.street,
                    house=row.house,
                    address=row.address,
                )
                for row in rows
            ]
        )

    async def _building(
        self, session: AsyncSession, account_id: int, building_id: str
    ) -> BuildingRow:
        number = row_id("b", building_id)
        building = await session.get(BuildingRow, number) if number is not None else None
        if building is None or building.account_id != account_id:
            raise NotFound(MESSAGES["not_found"])
        return building

    async def meters_with_token(self, token: str, building_id: str) -> BuildingMeters:
        """Every slot of the building for the current period, with its previous reading."""
        period = self.current_period()
        async with self._sessions() as session:
            account_id = await self._account_id(session, token)
            building = await self._building(session, account_id, building_id)
            slots = await self._slots(session, building.id)
            accepted = await catalog.accepted_before(
                session, period, self._tz, building_id=building.id
            )
        meters = []
        # Unpacked, not read by attribute: a Row's attributes cost ~2 ms per 600 slots.
        for row in slots:
            slot_id, apartment, serial_number, tariff, digits, fraction_digits, value, day = row
            before = catalog.previous_reading(accepted.get(slot_id), value, day)
            meters.append(
                Meter(
                    id=public_id("m", slot_id),
                    apartment=apartment,
                    serial_number=serial_number,
                    digits=digits,
                    fraction_digits=fraction_digits,
                    tariff=tariff or None,
                    previous=Previous(value=before.value, date=before.day) if before else None,
                )
            )
        return BuildingMeters(
            building=BuildingRef(id=public_id("b", building.id), address=building.address),
            period=period,
            meters=meters,
        )

    @staticmethod
    async def _slots(
        session: AsyncSession, building_id: int
    ) -> Sequence[Row[int, str, str, str, int, int, str | None, date | None]]:
        # Plain rows, not SlotRow objects: a building has hundreds of slots and
        # nothing here changes them.
        return (
            await session.execute(
                select(
                    SlotRow.id,
                    SlotRow.apartment,
                    SlotRow.serial_number,
                    SlotRow.tariff,
                    SlotRow.digits,
                    SlotRow.fraction_digits,
                    SlotRow.previous_value,
                    SlotRow.previous_date,
                )
                .where(SlotRow.building_id == building_id)
                .order_by(SlotRow.position, SlotRow.id)
            )
        ).all()

    async def submit_with_token(
        self,
        token: str,
        building_id: str,
        readings: Sequence[ReadingLike],
        idempotency_key: str,
    ) -> SubmitResult:
        """Judge and store one batch; replay or refuse a reused Idempotency-Key."""
        if not idempotency_key or not idempotency_key.strip():
            raise BillingRequestError(
                MESSAGES["idempotency_key_required"],
                status=400,
                code="idempotency_key_required",
            )
        if len(idempotency_key) > IDEMPOTENCY_KEY_MAX:
            raise BillingRequestError(
                MESSAGES["invalid_idempotency_key"], status=400, code="invalid_idempotency_key"
            )
        if len(readings) > MAX_READINGS_PER_BATCH:
            raise BillingRequestError(
                MESSAGES["too_many_readings"].format(limit=MAX_READINGS_PER_BATCH),
                status=400,
                code="too_many_readings",
            )
        fingerprint = body_hash(building_id, readings)
        try:
            return await self._submit_once(
                token, building_id, readings, idempotency_key, fingerprint
            )
        except IntegrityError:
            # A concurrent request with the same key committed first (PostgreSQL;
            # SQLite's BEGIN IMMEDIATE serialises them): answer as its replay.
            logger.info("billing submission raced with its twin; replaying the stored answer")
            return await self._submit_once(
                token, building_id, readings, idempotency_key, fingerprint
            )

    async def _submit_once(
        self,
        token: str,
        building_id: str,
        readings: Sequence[ReadingLike],
        key: str,
        fingerprint: str,
    ) -> SubmitResult:
        now = self.now()
        period = period_of(now, self._tz)
        is_open = self._window.is_open(now, self._tz)
        async with self._sessions() as session, session.begin():
            account_id = await self._account_id(session, token)
            building = await self._building(session, account_id, building_id)
            earlier = await session.scalar(
                select(SubmissionRow).where(
                    SubmissionRow.account_id == account_id, SubmissionRow.idempotency_key == key
                )
            )
            if earlier is not None:
                if earlier.body_hash != fingerprint:
                    raise IdempotencyConflict(MESSAGES["idempotency_conflict"])
                logger.info("billing submission s-%d replayed for its Idempotency-Key", earlier.id)
                return SubmitResult.model_validate_json(earlier.response)
            submission = SubmissionRow(
                account_id=account_id,
                building_id=building.id,
                idempotency_key=key,
                body_hash=fingerprint,
                response="",
                submitted_at=now,
            )
            session.add(submission)
            await session.flush()
            result = await self._judge_and_store(
                session, building.id, submission.id, readings, now, period, is_open
            )
            submission.response = result.model_dump_json()
        logger.info(
            "billing submission s-%d for b-%d: %d accepted, %d rejected",
            submission.id,
            building.id,
            len(result.accepted),
            len(result.rejected),
        )
        return result

    async def _judge_and_store(
        self,
        session: AsyncSession,
        building_id: int,
        submission_id: int,
        readings: Sequence[ReadingLike],
        now: datetime,
        period: str,
        is_open: bool,
    ) -> SubmitResult:
        slots = {slot.id: slot for slot in await self._slots(session, building_id)}
        earlier = await catalog.accepted_before(session, period, self._tz, building_id=building_id)
        previous = {
            slot.id: catalog.previous_reading(
                earlier.get(slot.id), slot.previous_value, slot.previous_date
            )
            for slot in slots.values()
        }
        accepted: list[str] = []
        rejected: list[Rejection] = []
        keep: dict[int, tuple[str, datetime]] = {}
        for reading in readings:
            number = row_id("m", reading.meter_id)
            slot = slots.get(number) if number is not None else None
            before = previous.get(slot.id) if slot is not None else None
            # The order of the checks is documented in docs/billing.md.
            if slot is None:
                code, message = "unknown_meter", MESSAGES["unknown_meter"]
            elif not is_open:
                code = "period_closed"
                message = MESSAGES["period_closed"].format(window=self._window.describe())
            elif (
                problem := value_problem(reading.value, slot.digits, slot.fraction_digits)
            ) is not None:
                code = problem
                message = MESSAGES[problem].format(
                    digits=slot.digits, fraction=slot.fraction_digits
                )
            elif before is not None and is_below(str(reading.value), before.value):
                code = "below_previous"
                message = MESSAGES["below_previous"].format(previous=before.value)
            else:
                accepted.append(reading.meter_id)
                taken_at = reading.taken_at
                if taken_at.tzinfo is None:
                    taken_at = taken_at.replace(tzinfo=self._tz)
                # Within one batch too, the later reading of a slot wins.
                keep[slot.id] = (str(reading.value), taken_at)
                continue
            rejected.append(Rejection(meter_id=reading.meter_id, code=code, message=message))

        stored: dict[int, ReadingRow] = {}
        ids = list(keep)
        for start in range(0, len(ids), catalog.CHUNK):
            chunk = ids[start : start + catalog.CHUNK]
            for row in (
                await session.scalars(
                    select(ReadingRow).where(
                        ReadingRow.slot_id.in_(chunk), ReadingRow.period == period
                    )
                )
            ).all():
                stored[row.slot_id] = row
        fresh: list[dict[str, Any]] = []
        for slot_id, (value, taken_at) in keep.items():
            existing = stored.get(slot_id)
            if existing is None:
                fresh.append(
                    {
                        "slot_id": slot_id,
                        "period": period,
                        "value": value,
                        "taken_at": taken_at,
                        "submitted_at": now,
                        "submission_id": submission_id,
                    }
                )
            else:
                existing.value, existing.taken_at = value, taken_at
                existing.submitted_at, existing.submission_id = now, submission_id
        if fresh:
            await session.execute(insert(ReadingRow), fresh)
        return SubmitResult(
            submission_id=public_id("s", submission_id), accepted=accepted, rejected=rejected
        )

    async def readings_with_token(
        self, token: str, building_id: str, period: str | None
    ) -> PeriodReadings:
        """What was accepted for the building in `period` (default: current), in slot order."""
        if period is None:
            period = self.current_period()
        elif not is_period(period):
            raise BillingRequestError(MESSAGES["invalid_period"], status=400, code="invalid_period")
        async with self._sessions() as session:
            account_id = await self._account_id(session, token)
            building = await self._building(session, account_id, building_id)
            rows = (
                await session.scalars(
                    select(ReadingRow)
                    .join(SlotRow, SlotRow.id == ReadingRow.slot_id)
                    .where(SlotRow.building_id == building.id, ReadingRow.period == period)
                    .order_by(SlotRow.position, SlotRow.id)
                )
            ).all()
        return PeriodReadings(
            period=period,
            readings=[
                AcceptedReading(
                    meter_id=public_id("m", row.slot_id),
                    value=row.value,
                    taken_at=row.taken_at.astimezone(self._tz),
                    submitted_at=row.submitted_at.astimezone(self._tz),
                    submission_id=public_id("s", row.submission_id),
                )
                for row in rows
            ],
        )

    # -- administration (python -m billing_client) --------------------------

    async def add_account(
        self,
        login: str,
        name: str,
        password: SecretStr,
        *,
        inn: str | None = None,
        rows: Sequence[TemplateRow] = (),
        password_hash: str | None = None,
    ) -> Account:
        """Create an account, with `rows` imported in the same transaction.

        Only an argon2 hash of the password is stored. `password_hash` is a ready
        argon2 hash of `password`, for a password that is public anyway (the
        demo's): hashing costs about half a second, and the demo must load fast.
        """
        login = normalize_login(login)
        if not LOGIN_RE.match(login):
            raise AdminError(
                f"логин «{login}» не годится: латинские буквы, цифры, «.», «_», «-», "
                "до 64 символов, начиная с буквы или цифры"
            )
        name = " ".join(name.split())
        if not name or len(name) > 255:
            raise AdminError("название организации должно быть непустым, до 255 символов")
        if inn is not None and not INN_RE.match(inn):
            raise AdminError("ИНН — 10 цифр (организация) или 12 цифр (ИП)")
        if not password.get_secret_value():
            raise AdminError("пароль не может быть пустым")
        if password_hash is None:
            password_hash = await asyncio.to_thread(self._hasher.hash, password.get_secret_value())
        elif not password_hash.startswith("$argon2"):
            raise AdminError("готовый хэш пароля должен быть хэшем argon2")
        try:
            async with self._sessions() as session, session.begin():
                account = AccountRow(
                    login=login,
                    name=name,
                    inn=inn,
                    password_hash=password_hash,
                    created_at=self.now(),
                )
                session.add(account)
                await session.flush()
                if rows:
                    await catalog.import_rows(session, account.id, rows, prune=False)
        except IntegrityError:
            raise AdminError(f"учётная запись «{login}» уже есть") from None
        logger.debug("billing account %s added", login)
        return _account_model(account)

    async def remove_account(self, login: str) -> bool:
        """Delete an account with its buildings, slots, readings and sessions."""
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                delete(AccountRow).where(AccountRow.login == normalize_login(login))
            )
        removed = bool(getattr(result, "rowcount", 0))
        if removed:
            logger.info("billing account %s removed", normalize_login(login))
        return removed

    async def has_accounts(self) -> bool:
        """Whether any account exists (the demo is loaded only into an empty billing)."""
        async with self._sessions() as session:
            return (await session.scalar(select(AccountRow.id).limit(1))) is not None

    async def list_accounts(self) -> list[AccountSummary]:
        """Every account with the number of its buildings and slots."""
        buildings = (
            select(BuildingRow.account_id, func.count().label("n"))
            .group_by(BuildingRow.account_id)
            .subquery()
        )
        slots = (
            select(BuildingRow.account_id, func.count(SlotRow.id).label("n"))
            .join(SlotRow, SlotRow.building_id == BuildingRow.id)
            .group_by(BuildingRow.account_id)
            .subquery()
        )
        query = (
            select(AccountRow, buildings.c.n, slots.c.n)
            .outerjoin(buildings, buildings.c.account_id == AccountRow.id)
            .outerjoin(slots, slots.c.account_id == AccountRow.id)
            .order_by(AccountRow.login)
        )
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return [
            AccountSummary(account.login, account.name, account.inn, n_buildings or 0, n_slots or 0)
            for account, n_buildings, n_slots in rows
        ]

    async def _account_row(self, session: AsyncSession, login: str) -> AccountRow:
        account = await session.scalar(
            select(AccountRow).where(AccountRow.login == normalize_login(login))
        )
        if account is None:
            raise AdminError(f"учётной записи «{normalize_login(login)}» нет")
        return account

    async def import_rows(
        self, login: str, rows: Sequence[TemplateRow], *, prune: bool = False
    ) -> catalog.ImportReport:
        """Load template rows into an account in one transaction (all or nothing)."""
        async with self._sessions() as session, session.begin():
            account = await self._account_row(session, login)
            report = await catalog.import_rows(session, account.id, rows, prune=prune)
        logger.info(
            "billing import into %s: %d buildings (%d new), %d slots (%d new, %d updated, "
            "%d removed)",
            account.login,
            report.buildings,
            report.buildings_added,
            report.slots,
            report.slots_added,
            report.slots_updated,
            report.slots_removed,
        )
        return report

    async def export_rows(self, login: str, period: str | None = None) -> list[TemplateRow]:
        """The account's slots with the readings of `period` (default: current)."""
        if period is None:
            period = self.current_period()
        elif not is_period(period):
            raise AdminError("период указывается как ГГГГ-ММ")
        async with self._sessions() as session:
            account = await self._account_row(session, login)
            return await catalog.export_rows(session, account.id, period, self._tz)

    async def submission_count(self, login: str | None = None) -> int:
        """How many submissions are stored (operators' statistics; tests of idempotency)."""
        query = select(func.count(SubmissionRow.id))
        if login is not None:
            query = query.join(AccountRow, AccountRow.id == SubmissionRow.account_id).where(
                AccountRow.login == normalize_login(login)
            )
        async with self._sessions() as session:
            return int(await session.scalar(query) or 0)


def _account_model(account: AccountRow) -> Account:
    return Account(id=public_id("acc", account.id), name=account.name, inn=account.inn)
