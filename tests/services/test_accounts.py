"""Linking a Telegram user to the account: throttle, roles, logout, secrets at rest."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import func, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from billing_client.errors import BillingUnavailable, InvalidCredentials, TooManyAttempts
from billing_client.models import Account as BillingAccount
from billing_client.models import LoginResult
from services.accounts import (
    MAX_FAILURES_PER_LOGIN,
    BillingDown,
    Linked,
    LinkResult,
    RevokedByAdmin,
    Throttled,
    WrongCredentials,
    link_account,
    logout,
    minutes_until_login_allowed,
)
from services.credentials import AccountNotLinked, CredentialsProvider
from storage.crypto import Vault
from storage.engine import create_engine, create_session_pool
from storage.migrate import upgrade_database
from storage.models import Account, LoginAttempt, Role, TelegramUser
from tests.harness.databases import Databases, on_postgresql

PASSWORD = "canary-Pa55word-7f3e"
TOKEN = "canary-token-91c2d4"
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


class FakeBilling:
    """Billing's login only: one account per login, a switch for outages and lockouts."""

    def __init__(self) -> None:
        self.accounts = {
            "uk-sibir": ("acc-17", "ООО «УК Сибирь»", PASSWORD),
            "tsj-les": ("acc-18", "ТСЖ <Лесное> & Ко", "other-password"),
        }
        self.down = False
        self.retry_after: float | None = None
        self.calls = 0

    async def login(self, login: str, password: SecretStr) -> LoginResult:
        self.calls += 1
        if self.down:
            raise BillingUnavailable("timeout")
        if self.retry_after is not None:
            raise TooManyAttempts(retry_after=self.retry_after)
        known = self.accounts.get(login)
        if known is None or known[2] != password.get_secret_value():
            raise InvalidCredentials()
        account_id, name, _ = known
        return LoginResult(
            token=TOKEN,
            expires_at=T0 + timedelta(hours=1),
            account=BillingAccount(id=account_id, name=name, inn="5405000000"),
        )


@pytest.fixture
async def engine(databases: Databases) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(databases.bot)
    await upgrade_database(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def pool(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_pool(engine)


@pytest.fixture
async def session(pool: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with pool() as session:
        yield session


@pytest.fixture
def billing() -> FakeBilling:
    return FakeBilling()


@pytest.fixture
def credentials() -> CredentialsProvider:
    return CredentialsProvider(Vault(["test-secret-key"]))


async def try_login(
    session: AsyncSession,
    billing: FakeBilling,
    credentials: CredentialsProvider,
    *,
    user_id: int = 1001,
    login: str = "uk-sibir",
    password: str = PASSWORD,
    now: datetime = T0,
) -> LinkResult:
    return await link_account(
        session,
        billing,
        credentials,
        telegram_user_id=user_id,
        full_name=f"Inspector {user_id}",
        username=None,
        login=login,
        password=SecretStr(password),
        now=now,
    )


# --- linking -----------------------------------------------------------------


async def test_first_user_of_an_account_becomes_admin_the_next_inspector(
    session: AsyncSession, billing: FakeBilling, credentials: CredentialsProvider
) -> None:
    first = await try_login(session, billing, credentials, user_id=1001)
    second = await try_login(session, billing, credentials, user_id=1002)

    assert first == Linked(account_id="acc-17", account_name="ООО «УК Сибирь»", role=Role.ADMIN)
    assert second == Linked(
        account_id="acc-17", account_name="ООО «УК Сибирь»", role=Role.INSPECTOR
    )
    users = (await session.scalars(select(TelegramUser).order_by(TelegramUser.id))).all()
    assert [(u.id, u.account_id, u.role) for u in users] == [
        (1001, "acc-17", Role.ADMIN),
        (1002, "acc-17", Role.INSPECTOR),
    ]
    account = await session.get(Account, "acc-17")
    assert account is not None
    assert (account.name, account.inn, account.login) == (
        "ООО «УК Сибирь»",
        "5405000000",
        "uk-sibir",
    )


async def test_two_first_logins_at_once_link_both_and_make_one_admin(
    pool: async_sessionmaker[AsyncSession],
    billing: FakeBilling,
    credentials: CredentialsProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two inspectors of a company new to the bot log in at the same moment."""
    both_asked = asyncio.Barrier(2)
    login = billing.login

    async def answered_together(login_: str, password: SecretStr) -> LoginResult:
        await both_asked.wait()  # billing answers both before either is saved
        return await login(login_, password)

    monkeypatch.setattr(billing, "login", answered_together)

    async def log_in(user_id: int) -> LinkResult:
        async with pool() as session:
            return await try_login(session, billing, credentials, user_id=user_id)

    results = await asyncio.wait_for(asyncio.gather(log_in(1001), log_in(1002)), 10)

    assert all(isinstance(r, Linked) for r in results), results
    assert sorted(r.role for r in results if isinstance(r, Linked)) == [Role.ADMIN, Role.INSPECTOR]
    async with pool() as session:
        users = (await session.scalars(select(TelegramUser))).all()
    assert sorted((u.account_id, u.role) for u in users) == [
        ("acc-17", Role.ADMIN),
        ("acc-17", Role.INSPECTOR),
    ]


async def test_admin_linking_again_stays_admin(
    session: AsyncSession, billing: FakeBilling, credentials: CredentialsProvider
) -> None:
    await try_login(session, billing, credentials, user_id=1001)
    again = await try_login(session, billing, credentials, user_id=1001, now=T0 + timedelta(1))

    assert isinstance(again, Linked)
    assert again.role is Role.ADMIN


async def test_a_revoked_user_cannot_relink_the_same_account_with_the_password(
    session: AsyncSession, billing: FakeBilling, credentials: CredentialsProvider
) -> None:
    await try_login(session, billing, credentials, user_id=1001)
    await try_login(session, billing, credentials, user_id=1002)
    user = await session.get(TelegramUser, 1002)
    assert user is not None
    user.revoked_at = T0
    await session.commit()

    result = await try_login(
        session, billing, credentials, user_id=1002, now=T0 + timedelta(hours=1)
    )

    assert isinstance(result, RevokedByAdmin)  # only a new invite brings them back
    await session.refresh(user)
    assert user.revoked_at is not None


async def test_linking_another_account_clears_a_revocation(
    session: AsyncSession, billing: FakeBilling, credentials: CredentialsProvider
) -> None:
    await try_login(session, billing, credentials, user_id=1001)
    user = await session.get(TelegramUser, 1001)
    assert user is not None
    user.revoked_at = T0
    await session.commit()

    result = await try_login(
        session,
        billing,
        credentials,
        user_id=1001,
        login="tsj-les",
        password="other-password",
        now=T0 + timedelta(hours=1),
    )

    assert isinstance(result, Linked)
    await session.refresh(user)
    assert user.revoked_at is None
    assert user.account_id == "acc-18"


async def test_a_linked_account_gives_billing_a_cached_session_with_the_token(
    session: AsyncSession, billing: FakeBilling, credentials: CredentialsProvider
) -> None:
    await try_login(session, billing, credentials)

    auth = await credentials.auth_for(session, "acc-17")
    assert auth.login == "uk-sibir"
    assert auth.password.get_secret_value() == PASSWORD
    assert auth.token is not None and auth.token.get_secret_value() == TOKEN


async def test_stored_password_decrypts_after_a_restart(
    pool: async_sessionmaker[AsyncSession], billing: FakeBilling
) -> None:
    async with pool() as session:
        await try_login(session, billing, CredentialsProvider(Vault(["test-secret-key"])))

    fresh = CredentialsProvider(Vault(["test-secret-key"]))  # empty cache: a new process
    async with pool() as session:
        auth = await fresh.auth_for(session, "acc-17")
    assert auth.password.get_secret_value() == PASSWORD


async def test_an_instance_follows_a_login_and_a_logout_made_on_another(
    pool: async_sessionmaker[AsyncSession], billing: FakeBilling
) -> None:
    """Two instances of the bot on one database (PostgreSQL, Redis): each has its cache."""
    here = CredentialsProvider(Vault(["test-secret-key"]))
    elsewhere = CredentialsProvider(Vault(["test-secret-key"]))
    async with pool() as session:
        await try_login(session, billing, here)
        assert (await here.auth_for(session, "acc-17")).password.get_secret_value() == PASSWORD

    # The company changed its password in billing; its admin logged in again elsewhere.
    async with pool() as session:
        account = await session.get(Account, "acc-17")
        assert account is not None
        account.password_encrypted = elsewhere.encrypt(SecretStr("new-Pa55word"))
        await session.commit()
    async with pool() as session:
        auth = await here.auth_for(session, "acc-17")
    assert auth.password.get_secret_value() == "new-Pa55word"

    # The last user's /logout elsewhere erased it.
    async with pool() as session:
        account = await session.get(Account, "acc-17")
        assert account is not None
        account.password_encrypted = None
        await session.commit()
    async with pool() as session:
        with pytest.raises(AccountNotLinked):
            await here.auth_for(session, "acc-17")


async def test_a_password_stored_with_another_key_asks_for_a_new_login(
    pool: async_sessionmaker[AsyncSession], billing: FakeBilling
) -> None:
    async with pool() as session:
        await try_login(session, billing, CredentialsProvider(Vault(["test-secret-key"])))
    other_key = CredentialsProvider(Vault(["not-the-key-it-was-stored-with"]))
    async with pool() as session:
        with pytest.raises(AccountNotLinked):
            await other_key.auth_for(session, "acc-17")
        # A new login stores it with the key in use, and billing calls work again.
        await try_login(session, billing, other_key)
        auth = await CredentialsProvider(Vault(["not-the-key-it-was-stored-with"])).auth_for(
            session, "acc-17"
        )
    assert auth.password.get_secret_value() == PASSWORD


async def test_wrong_password_links_nothing_and_counts_down(
    session: AsyncSession, billing: FakeBilling, credentials: CredentialsProvider
) -> None:
    result = await try_login(session, billing, credentials, password="wrong")

    assert result == WrongCredentials(attempts_left=2)
    assert await session.get(Account, "acc-17") is None
    user = await session.get(TelegramUser, 1001)
    assert user is None or user.account_id is None


async def test_billing_outage_does_not_count_as_a_failed_try(
    session: AsyncSession, billing: FakeBilling, credentials: CredentialsProvider
) -> None:
    billing.down = True
    for minute in range(6):
        result = await try_login(session, billing, credentials, now=T0 + timedelta(minutes=minute))
        assert result == BillingDown()
    billing.down = False

    assert isinstance(await try_login(session, billing, credentials), Linked)


# --- throttle ----------------------------------------------------------------


async def test_third_failure_on_one_login_blocks_it_for_everyone(
    session: AsyncSession, billing: FakeBilling, credentials: CredentialsProvider
) -> None:
    """Three different users guessing one login: the company's account is protected."""
    results = [
        await try_login(
            session,
            billing,
            credentials,
            user_id=2000 + i,
            password="x",
            now=T0 + timedelta(minutes=i),
        )
        for i in range(3)
    ]
    assert [r.attempts_left for r in results if isinstance(r, WrongCredentials)] == [2, 1, 0]
    assert results[-1] == WrongCredentials(attempts_left=0, retry_in_minutes=13)

    calls_before = billing.calls
    blocked = await try_login(
        session, billing, credentials, user_id=2999, now=T0 + timedelta(minutes=5)
    )
    assert blocked == Throttled(minutes=10)  # the failure at T0 leaves the window at T0+15
    assert billing.calls == calls_before, "a throttled try must not reach billing"


async def test_concurrent_guesses_on_one_login_never_pass_its_limit(
    pool: async_sessionmaker[AsyncSession], billing: FakeBilling, credentials: CredentialsProvider
) -> None:
    """Six users typing a wrong password for the company's login at the same moment.

    Each try checks the throttle, then waits for billing: checked one after another,
    all six would pass before any was counted and billing would lock the account.
    """

    async def guess(user_id: int) -> LinkResult:
        async with pool() as session:
            return await try_login(session, billing, credentials, user_id=user_id, password="x")

    results = await asyncio.gather(*(guess(6000 + i) for i in range(6)))

    assert billing.calls <= MAX_FAILURES_PER_LOGIN
    assert all(isinstance(r, WrongCredentials | Throttled) for r in results)
    assert sum(isinstance(r, Throttled) for r in results) == 6 - billing.calls
    async with pool() as session:
        counted = await session.scalar(select(func.count()).select_from(LoginAttempt))
    assert counted == billing.calls, "a try refused by the throttle is not counted"


async def test_login_throttle_ignores_case_and_spaces(
    session: AsyncSession, billing: FakeBilling, credentials: CredentialsProvider
) -> None:
    for i, spelling in enumerate(["UK-Sibir", " uk-sibir ", "uk-SIBIR"]):
        await try_login(
            session, billing, credentials, user_id=3000 + i, login=spelling, password="x"
        )

    assert isinstance(await try_login(session, billing, credentials, user_id=3999), Throttled)


async def test_login_throttle_opens_when_the_oldest_failure_leaves_the_window(
    session: AsyncSession, billing: FakeBilling, credentials: CredentialsProvider
) -> None:
    for minute in (0, 4, 8):
        await try_login(
            session, billing, credentials, password="x", now=T0 + timedelta(minutes=minute)
        )

    just_before = T0 + timedelta(minutes=14, seconds=59)
    assert await try_login(session, billing, credentials, now=just_before) == Throttled(minutes=1)
    after = T0 + timedelta(minutes=15, seconds=1)
    assert isinstance(await try_login(session, billing, credentials, now=after), Linked)


async def test_fifth_failure_of_one_user_blocks_that_user_on_any_login(
    session: AsyncSession, billing: FakeBilling, credentials: CredentialsProvider
) -> None:
    """Five different logins (each under its own limit) from one user: the user is stopped."""
    for i in range(5):
        result = await try_login(
            session, billing, credentials, login=f"guess-{i}", now=T0 + timedelta(minutes=2 * i)
        )
        assert isinstance(result, WrongCredentials)
        assert result.attempts_left == min(4 - i, 2)

    at = T0 + timedelta(minutes=9)
    assert await try_login(session, billing, credentials, now=at) == Throttled(minutes=6)
    # Another Telegram user on the same (right) login is not affected.
    assert isinstance(await try_login(session, billing, credentials, user_id=4242, now=at), Linked)
    # The user is let in again once the first failure (T0) is 15 minutes old.
    assert isinstance(
        await try_login(session, billing, credentials, now=T0 + timedelta(minutes=15, seconds=1)),
        Linked,
    )


async def test_throttle_can_be_checked_before_the_password_is_asked(
    session: AsyncSession, billing: FakeBilling, credentials: CredentialsProvider
) -> None:
    for _ in range(3):
        await try_login(session, billing, credentials, password="x")

    wait = await minutes_until_login_allowed(
        session, telegram_user_id=5555, login="uk-sibir", now=T0 + timedelta(minutes=1)
    )
    other = await minutes_until_login_allowed(
        session, telegram_user_id=5555, login="tsj-les", now=T0 + timedelta(minutes=1)
    )
    assert (wait, other) == (14, None)


async def test_billing_lockout_is_honoured_with_its_wait(
    session: AsyncSession, billing: FakeBilling, credentials: CredentialsProvider
) -> None:
    billing.retry_after = 601

    assert await try_login(session, billing, credentials) == Throttled(minutes=11)


async def test_a_successful_login_is_recorded_as_such(
    session: AsyncSession, billing: FakeBilling, credentials: CredentialsProvider
) -> None:
    await try_login(session, billing, credentials, password="x")
    await try_login(session, billing, credentials)

    rows = (await session.scalars(select(LoginAttempt).order_by(LoginAttempt.id))).all()
    assert [r.succeeded for r in rows] == [False, True]
    assert all("sibir" not in r.login_key for r in rows)


# --- logout ------------------------------------------------------------------


async def test_logout_of_one_user_keeps_the_account_for_the_others(
    session: AsyncSession, billing: FakeBilling, credentials: CredentialsProvider
) -> None:
    await try_login(session, billing, credentials, user_id=1001)
    await try_login(session, billing, credentials, user_id=1002)

    assert await logout(session, credentials, 1001) is True

    account = await session.get(Account, "acc-17")
    assert account is not None and account.password_encrypted
    auth = await credentials.auth_for(session, "acc-17")
    assert auth.password.get_secret_value() == PASSWORD


async def test_logout_of_the_last_user_erases_the_password(
    session: AsyncSession, billing: FakeBilling, credentials: CredentialsProvider
) -> None:
    await try_login(session, billing, credentials, user_id=1001)
    await try_login(session, billing, credentials, user_id=1002)

    assert await logout(session, credentials, 1001) is True
    assert await logout(session, credentials, 1002) is True

    account = await session.get(Account, "acc-17")
    assert account is not None and account.password_encrypted is None
    users = (await session.scalars(select(TelegramUser))).all()
    assert {(u.account_id, u.role) for u in users} == {(None, None)}
    with pytest.raises(AccountNotLinked):
        await credentials.auth_for(session, "acc-17")


async def test_logout_of_a_user_who_is_not_linked(
    session: AsyncSession, credentials: CredentialsProvider
) -> None:
    assert await logout(session, credentials, 777) is False


async def test_after_the_admin_leaves_the_next_user_becomes_admin(
    session: AsyncSession, billing: FakeBilling, credentials: CredentialsProvider
) -> None:
    await try_login(session, billing, credentials, user_id=1001)
    await logout(session, credentials, 1001)

    result = await try_login(session, billing, credentials, user_id=1002)

    assert isinstance(result, Linked) and result.role is Role.ADMIN


async def test_moving_the_last_user_to_another_account_erases_the_old_password(
    session: AsyncSession, billing: FakeBilling, credentials: CredentialsProvider
) -> None:
    await try_login(session, billing, credentials, user_id=1001)

    moved = await try_login(
        session, billing, credentials, user_id=1001, login="tsj-les", password="other-password"
    )

    assert isinstance(moved, Linked) and moved.account_id == "acc-18"
    old = await session.get(Account, "acc-17")
    assert old is not None and old.password_encrypted is None


# --- secrets at rest ---------------------------------------------------------


async def test_password_and_token_are_in_no_column_and_no_database_byte(
    engine: AsyncEngine,
    session: AsyncSession,
    billing: FakeBilling,
    credentials: CredentialsProvider,
    tmp_path: Path,
) -> None:
    await try_login(session, billing, credentials, user_id=1001, password="wrong")
    await try_login(session, billing, credentials, user_id=1001)
    await try_login(session, billing, credentials, user_id=1002)

    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        cells: list[str] = []
        for table in tables:
            for row in (await conn.execute(text(f'SELECT * FROM "{table}"'))).all():
                cells.extend(str(value) for value in row)
        stored = await conn.scalar(select(Account.password_encrypted))
    assert stored, "the scan must see the stored (encrypted) password"
    assert not [c for c in cells if PASSWORD in c or TOKEN in c]

    if on_postgresql():
        return  # the server's files are not ours to read; the cells above are the rows
    files = database_files(tmp_path / "data")
    assert any(name.endswith("-wal") for name in files), "the WAL must be scanned too"
    assert not [name for name, data in files.items() if PASSWORD.encode() in data]
    assert not [name for name, data in files.items() if TOKEN.encode() in data]


def database_files(folder: Path) -> dict[str, bytes]:
    """Every byte of the SQLite database, the WAL included (recent pages live there)."""
    return {path.name: path.read_bytes() for path in folder.glob("bot.db*")}
