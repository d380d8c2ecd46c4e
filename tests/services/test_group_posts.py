"""The group post queue and its poster with Telegram's real numbers, on a manual clock;
and the summary's split into messages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import group_posts, groups
from services.group_posts import ChatMigrated, GroupPoster, Post, PostFailed, RetryAfter
from services.summary import SubmissionSummary, split_lines
from storage.engine import create_engine, create_session_pool
from storage.migrate import upgrade_database
from storage.models import Account, GroupBinding, GroupPost, SubmissionStatus
from texts import summary_lines

T0 = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class FakeTransport:
    """Records what reached each chat; `failures` are raised, in order, before a send."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.sent: list[tuple[datetime, int, str]] = []
        self.failures: list[tuple[int, Exception]] = []  # (chat_id, exception)

    def _fail(self, chat_id: int) -> None:
        for index, (chat, exc) in enumerate(self.failures):
            if chat == chat_id:
                del self.failures[index]
                raise exc

    async def send_text(self, chat_id: int, text: str) -> None:
        self._fail(chat_id)
        self.sent.append((self.clock(), chat_id, text))

    async def send_document(
        self, chat_id: int, data: bytes, filename: str, caption: str | None
    ) -> None:
        self._fail(chat_id)
        self.sent.append((self.clock(), chat_id, f"{filename}:{len(data)}"))


@pytest.fixture
async def pool(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    await upgrade_database(engine)
    yield create_session_pool(engine)
    await engine.dispose()


async def queue(pool: async_sessionmaker[AsyncSession], chat_id: int, key: str, count: int) -> int:
    async with pool() as session:
        return await group_posts.enqueue(
            session,
            chat_id=chat_id,
            account_id=None,
            key=key,
            posts=[Post(text=f"{key} {n}") for n in range(count)],
            now=T0,
        )


async def drain(poster: GroupPoster, clock: Clock, transport: FakeTransport, total: int) -> None:
    """Run the poster's turns, moving the clock by the delay each turn asks for."""
    for _ in range(10_000):
        if len(transport.sent) >= total:
            return
        delay = await poster.tick()
        clock.now += timedelta(seconds=max(delay, 0.001))
    raise AssertionError(f"only {len(transport.sent)} of {total} sent")


def most_per_window(times: list[datetime], window: timedelta) -> int:
    return max(sum(1 for t in times if start <= t < start + window) for start in times)


async def test_each_group_gets_at_most_18_a_minute_in_order_and_none_is_dropped(
    pool: async_sessionmaker[AsyncSession],
) -> None:
    clock = Clock()
    transport = FakeTransport(clock)
    poster = GroupPoster(pool, transport, clock=clock)
    await queue(pool, -1, "a", 50)
    await queue(pool, -2, "b", 30)

    await drain(poster, clock, transport, 80)

    for chat, key, count in ((-1, "a", 50), (-2, "b", 30)):
        mine = [(at, text) for at, c, text in transport.sent if c == chat]
        assert [text for _, text in mine] == [f"{key} {n}" for n in range(count)]
        assert most_per_window([at for at, _ in mine], timedelta(seconds=60)) <= 18
    # Two groups do not wait for each other: both finish in the time 50 posts need.
    assert clock.now - T0 < timedelta(minutes=3)


async def test_a_restarted_poster_remembers_what_it_just_sent(
    pool: async_sessionmaker[AsyncSession],
) -> None:
    clock = Clock()
    transport = FakeTransport(clock)
    await queue(pool, -1, "a", 25)
    await drain(GroupPoster(pool, transport, clock=clock), clock, transport, 18)
    # A new poster (the bot restarted) counts the 18 already sent this minute.
    await drain(GroupPoster(pool, transport, clock=clock), clock, transport, 25)
    assert most_per_window([at for at, _, _ in transport.sent], timedelta(seconds=60)) <= 18


async def test_retry_after_is_waited_out_and_the_post_is_not_lost(
    pool: async_sessionmaker[AsyncSession],
) -> None:
    clock = Clock()
    transport = FakeTransport(clock)
    transport.failures = [(-1, RetryAfter(7))]
    await queue(pool, -1, "a", 2)
    await drain(GroupPoster(pool, transport, clock=clock), clock, transport, 2)
    assert [text for _, _, text in transport.sent] == ["a 0", "a 1"]
    assert transport.sent[0][0] - T0 >= timedelta(seconds=7)


async def test_other_failures_back_off_and_are_retried(
    pool: async_sessionmaker[AsyncSession],
) -> None:
    clock = Clock()
    transport = FakeTransport(clock)
    transport.failures = [(-1, PostFailed("bot is not a member")), (-1, PostFailed("again"))]
    await queue(pool, -1, "a", 1)
    await drain(GroupPoster(pool, transport, clock=clock), clock, transport, 1)
    assert transport.sent[0][0] - T0 >= timedelta(seconds=15)  # 5 s, then 10 s


async def test_a_migrated_group_is_followed_binding_and_waiting_posts(
    pool: async_sessionmaker[AsyncSession],
) -> None:
    async with pool() as session:
        session.add(Account(id="acc-1", name="УК", login="uk"))
        session.add(GroupBinding(account_id="acc-1", chat_id=-77, title="", bound_at=T0))
        await session.commit()
    clock = Clock()
    transport = FakeTransport(clock)
    transport.failures = [(-77, ChatMigrated(-1000077))]
    await queue(pool, -77, "a", 3)
    await drain(GroupPoster(pool, transport, clock=clock), clock, transport, 3)
    assert [(chat, text) for _, chat, text in transport.sent] == [
        (-1000077, "a 0"),
        (-1000077, "a 1"),
        (-1000077, "a 2"),
    ]
    async with pool() as session:
        assert await group_posts.group_of(session, "acc-1") == -1000077


async def test_a_key_is_queued_once(pool: async_sessionmaker[AsyncSession]) -> None:
    assert await queue(pool, -1, "summary:5", 3) == 3
    assert await queue(pool, -1, "summary:5", 3) == 0
    async with pool() as session:
        assert len(list(await session.scalars(select(GroupPost)))) == 3


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="кв.1 ,абв\t<>", max_size=300), max_size=120))
def test_split_keeps_every_line_whole_and_in_order(lines: list[str]) -> None:
    parts = split_lines(lines, 500)
    assert all(len(part) <= 500 for part in parts)
    assert "\n".join(parts) == "\n".join(lines) or not lines
    assert [line for part in parts for line in part.split("\n")] == (lines or [])


async def test_two_instances_draining_one_table_send_each_post_once(
    pool: async_sessionmaker[AsyncSession],
) -> None:
    clock = Clock()
    transport = FakeTransport(clock)
    first, second = (GroupPoster(pool, transport, clock=clock) for _ in range(2))
    await queue(pool, -1, "a", 30)
    for _ in range(1000):
        if len(transport.sent) >= 30:
            break
        delays = [await first.tick(), await second.tick()]
        clock.now += timedelta(seconds=max(min(delays), 0.001))
    assert [text for _, _, text in transport.sent] == [f"a {n}" for n in range(30)]
    assert most_per_window([at for at, _, _ in transport.sent], timedelta(seconds=60)) <= 18


async def test_a_post_claimed_by_an_instance_that_died_is_sent_after_the_claim_lapses(
    pool: async_sessionmaker[AsyncSession],
) -> None:
    clock = Clock()
    transport = FakeTransport(clock)
    await queue(pool, -1, "a", 1)
    async with pool() as session:
        post = await session.scalar(select(GroupPost))
        assert post is not None
        post.claimed_until = T0 + timedelta(minutes=2)  # taken, then the process died
        await session.commit()
    poster = GroupPoster(pool, transport, clock=clock)
    await poster.tick()
    assert transport.sent == []
    clock.now = T0 + timedelta(minutes=2, seconds=1)
    await drain(poster, clock, transport, 1)
    assert [text for _, _, text in transport.sent] == ["a 0"]


async def queue_for(
    pool: async_sessionmaker[AsyncSession], account_id: str, chat_id: int, key: str
) -> None:
    async with pool() as session:
        await group_posts.enqueue(
            session,
            chat_id=chat_id,
            account_id=account_id,
            key=key,
            posts=[Post(text=key)],
            now=T0,
        )


async def waiting(pool: async_sessionmaker[AsyncSession]) -> list[tuple[str | None, int, str]]:
    async with pool() as session:
        posts = await session.scalars(
            select(GroupPost).where(GroupPost.sent_at.is_(None)).order_by(GroupPost.id)
        )
        return [(post.account_id, post.chat_id, post.text or "") for post in posts]


async def test_a_group_bound_by_another_account_never_gets_the_first_ones_waiting_posts(
    pool: async_sessionmaker[AsyncSession],
) -> None:
    async with pool() as session:
        session.add_all(
            [Account(id="a", name="УК А", login="a"), Account(id="b", name="УК Б", login="b")]
        )
        await session.commit()
        await groups.bind(session, account_id="a", chat_id=-1, title="", bound_by=1, now=T0)
    await queue_for(pool, "a", -1, "summary of А")
    await queue_for(pool, "b", -2, "summary of Б")
    async with pool() as session:
        await groups.bind(session, account_id="b", chat_id=-1, title="", bound_by=2, now=T0)
    # Б's summary follows Б to its new group; А's is not posted into a group now Б's.
    assert await waiting(pool) == [("b", -1, "summary of Б")]


async def test_unbinding_a_group_drops_its_waiting_posts_and_keeps_the_sent_ones(
    pool: async_sessionmaker[AsyncSession],
) -> None:
    clock = Clock()
    transport = FakeTransport(clock)
    async with pool() as session:
        session.add(Account(id="a", name="УК А", login="a"))
        await session.commit()
        await groups.bind(session, account_id="a", chat_id=-1, title="", bound_by=1, now=T0)
    await queue_for(pool, "a", -1, "sent")
    await drain(GroupPoster(pool, transport, clock=clock), clock, transport, 1)
    await queue_for(pool, "a", -1, "waiting")
    async with pool() as session:
        assert await groups.unbind(session, -1) == "УК А"
    assert await waiting(pool) == []
    async with pool() as session:
        assert [p.text for p in await session.scalars(select(GroupPost))] == ["sent"]


@pytest.mark.parametrize(
    ("sent", "words"), [(1, "из 1 показания;"), (3, "из 3 показаний;"), (11, "из 11 показаний;")]
)
def test_a_failed_batchs_summary_counts_its_readings_in_good_russian(sent: int, words: str) -> None:
    failed = SubmissionSummary(
        submission_id=1,
        account_id="a",
        address="Новосибирск, Авиастроителей ул., 3",
        period="2026-11",
        inspector_name="Анна",
        inspector_username=None,
        finished_at=T0,
        status=SubmissionStatus.FAILED,
        sent=sent,
        total=128,
        accepted=0,
        rejected=[],
    )
    assert any(words in line for line in summary_lines(failed))
